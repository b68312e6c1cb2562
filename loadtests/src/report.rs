//! Results: aligned tables on stdout, and one JSON document (`--json PATH`) with the machine,
//! the command (secrets redacted), the times and every figure.

use std::fmt::Display;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

use crate::procfs::{self, WatchedProcess};

/// What a scenario hands back.
pub(crate) struct Report {
    pub(crate) scenario: &'static str,
    pub(crate) tables: Vec<Table>,
    /// Warnings and observations printed under the tables (and kept in the JSON).
    pub(crate) notes: Vec<String>,
    /// The figures, for the JSON document.
    pub(crate) result: Value,
}

/// A titled table of strings.
pub(crate) struct Table {
    title: String,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(title: impl Into<String>, headers: &[&str]) -> Self {
        Self {
            title: title.into(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// A two-column `metric | value` table.
    pub(crate) fn metrics(title: impl Into<String>) -> Self {
        Self::new(title, &["metric", "value"])
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(crate) fn metric(&mut self, name: &str, value: impl Display) {
        self.rows.push(vec![name.to_string(), value.to_string()]);
    }

    pub(crate) fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let padded: Vec<String> = (0..columns)
                .map(|i| {
                    let cell = cells.get(i).map(String::as_str).unwrap_or("");
                    // Text left, figures right: a table of numbers reads down the units.
                    if i == 0 {
                        format!("{cell:<width$}", width = widths[i])
                    } else {
                        format!("{cell:>width$}", width = widths[i])
                    }
                })
                .collect();
            format!("| {} |\n", padded.join(" | "))
        };
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        let mut out = format!("\n{}\n", self.title);
        out += &line(&self.headers);
        out += &format!("|-{}-|\n", rule.join("-|-"));
        for row in &self.rows {
            out += &line(row);
        }
        out
    }
}

impl Report {
    pub(crate) fn print(&self) {
        for table in &self.tables {
            print!("{}", table.render());
        }
        if !self.notes.is_empty() {
            println!();
            for note in &self.notes {
                println!("note: {note}");
            }
        }
    }

    /// Writes the run as one JSON document.
    pub(crate) fn write_json(&self, path: &Path, run: &RunInfo) -> Result<()> {
        let document = JsonDocument {
            tool: "tidings-load",
            version: env!("CARGO_PKG_VERSION"),
            scenario: self.scenario,
            started_at: rfc3339(run.started_unix_s),
            finished_at: rfc3339(run.finished_unix_s),
            command: redact(&run.command),
            machine: &run.machine,
            notes: &self.notes,
            result: &self.result,
        };
        let text = serde_json::to_string_pretty(&document)?;
        fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }
}

/// Facts about the run that are not results.
pub(crate) struct RunInfo {
    pub(crate) started_unix_s: u64,
    pub(crate) finished_unix_s: u64,
    pub(crate) command: Vec<String>,
    pub(crate) machine: Machine,
}

#[derive(Serialize)]
struct JsonDocument<'a> {
    tool: &'static str,
    version: &'static str,
    scenario: &'static str,
    started_at: String,
    finished_at: String,
    command: Vec<String>,
    machine: &'a Machine,
    notes: &'a [String],
    result: &'a Value,
}

/// The machine, and where the tool and the hub were pinned.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Machine {
    pub(crate) hostname: Option<String>,
    pub(crate) kernel: Option<String>,
    pub(crate) cpu_model: Option<String>,
    pub(crate) cpus: usize,
    pub(crate) memory_kib: Option<u64>,
    pub(crate) tool_cpus_allowed: Option<String>,
    pub(crate) hub_pid: Option<u32>,
    pub(crate) hub_cpus_allowed: Option<String>,
}

impl Machine {
    pub(crate) fn probe(hub: Option<&WatchedProcess>) -> Self {
        let read = |path: &str| fs::read_to_string(path).ok().map(|s| s.trim().to_string());
        let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
        let meminfo = read("/proc/meminfo").unwrap_or_default();
        Self {
            hostname: read("/proc/sys/kernel/hostname"),
            kernel: read("/proc/sys/kernel/osrelease"),
            cpu_model: cpuinfo
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string()),
            cpus: cpuinfo
                .lines()
                .filter(|l| l.starts_with("processor"))
                .count(),
            memory_kib: procfs::parse_status_kib(&meminfo, "MemTotal"),
            tool_cpus_allowed: procfs::own_cpus_allowed(),
            hub_pid: hub.map(WatchedProcess::pid),
            hub_cpus_allowed: hub.and_then(WatchedProcess::cpus_allowed),
        }
    }
}

/// The command line with the values of secret options replaced.
pub(crate) fn redact(args: &[String]) -> Vec<String> {
    const SECRET: [&str; 4] = [
        "--api-key",
        "--jwt-secret",
        "--victim-api-key",
        "--victim-jwt-secret",
    ];
    let mut out = Vec::with_capacity(args.len());
    let mut hide_next = false;
    for arg in args {
        if hide_next {
            out.push("***".to_string());
            hide_next = false;
        } else if SECRET.contains(&arg.as_str()) {
            out.push(arg.clone());
            hide_next = true;
        } else if let Some(option) = SECRET.iter().find(|s| arg.starts_with(&format!("{s}="))) {
            out.push(format!("{option}=***"));
        } else {
            out.push(arg.clone());
        }
    }
    out
}

/// `2026-11-27T10:00:00Z` from Unix seconds (UTC).
pub(crate) fn rfc3339(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let seconds = unix_seconds % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3_600,
        seconds % 3_600 / 60,
        seconds % 60
    )
}

/// Microseconds as milliseconds with two decimals.
pub(crate) fn ms(micros: u64) -> String {
    format!("{:.2}", micros as f64 / 1_000.0)
}

/// A float with the given decimals, or `-` when absent.
pub(crate) fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.decimals$}"))
}

/// KiB as MiB with one decimal.
pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_773_600), "2026-11-27T10:00:00Z");
    }

    #[test]
    fn secrets_never_reach_the_json() {
        let args: Vec<String> = [
            "tidings-load",
            "--api-key",
            "k1",
            "--jwt-secret=s1",
            "steady",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            redact(&args),
            [
                "tidings-load",
                "--api-key",
                "***",
                "--jwt-secret=***",
                "steady"
            ]
        );
    }

    #[test]
    fn tables_align_their_columns() {
        let mut table = Table::new("t", &["rate", "p99 ms"]);
        table.row(vec!["2000/s".into(), "3.10".into()]);
        table.row(vec!["10000/s".into(), "120.00".into()]);
        let text = table.render();
        let widths: Vec<usize> = text.lines().skip(2).map(str::len).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "{text}");
        assert!(text.contains("|  10000/s | 120.00 |") || text.contains("| 10000/s | 120.00 |"));
    }
}

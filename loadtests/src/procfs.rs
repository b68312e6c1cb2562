//! What the tool reads from /proc: the hub's CPU time and memory (given `--hub-pid`), its open
//! descriptors, and the tool's own memory and limits.

use std::fs;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// A process watched through /proc (the hub, usually pinned with `taskset -c 0`).
#[derive(Debug, Clone)]
pub(crate) struct WatchedProcess {
    pid: u32,
    /// Clock ticks per second of `utime`/`stime` (`getconf CLK_TCK`, 100 on Linux in practice).
    ticks_per_second: f64,
}

/// Memory figures of a process, KiB.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Memory {
    pub(crate) rss_kib: u64,
    pub(crate) hwm_kib: u64,
}

impl WatchedProcess {
    pub(crate) fn new(pid: u32) -> Result<Self> {
        fs::metadata(format!("/proc/{pid}/stat"))
            .with_context(|| format!("--hub-pid {pid}: no such process"))?;
        Ok(Self {
            pid,
            ticks_per_second: clock_ticks_per_second(),
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// User + system CPU seconds the process (all its threads) has used so far.
    pub(crate) fn cpu_seconds(&self) -> Result<f64> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .with_context(|| format!("reading /proc/{}/stat", self.pid))?;
        let ticks = parse_stat_cpu_ticks(&stat)
            .with_context(|| format!("unexpected /proc/{}/stat format", self.pid))?;
        Ok(ticks as f64 / self.ticks_per_second)
    }

    pub(crate) fn memory(&self) -> Result<Memory> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid))
            .with_context(|| format!("reading /proc/{}/status", self.pid))?;
        match (
            parse_status_kib(&status, "VmRSS"),
            parse_status_kib(&status, "VmHWM"),
        ) {
            (Some(rss_kib), Some(hwm_kib)) => Ok(Memory { rss_kib, hwm_kib }),
            _ => bail!("no VmRSS/VmHWM in /proc/{}/status", self.pid),
        }
    }

    /// Open file descriptors (sockets included); `None` if /proc does not let us look.
    pub(crate) fn open_fds(&self) -> Option<u64> {
        fs::read_dir(format!("/proc/{}/fd", self.pid))
            .ok()
            .map(|dir| dir.count() as u64)
    }

    /// The process's soft limit on open files: how many connections it can hold.
    pub(crate) fn open_files_limit(&self) -> Option<u64> {
        open_files_limit(&format!("/proc/{}/limits", self.pid))
    }

    /// The CPUs the process may run on (`Cpus_allowed_list`), to show the pinning in reports.
    pub(crate) fn cpus_allowed(&self) -> Option<String> {
        cpus_allowed(&format!("/proc/{}/status", self.pid))
    }
}

/// Resident memory of this process, KiB (0 if unreadable).
pub(crate) fn own_rss_kib() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| parse_status_kib(&status, "VmRSS"))
        .unwrap_or(0)
}

/// The CPUs this process may run on.
pub(crate) fn own_cpus_allowed() -> Option<String> {
    cpus_allowed("/proc/self/status")
}

/// The soft limit on open files of this process (`Max open files` in /proc/self/limits).
pub(crate) fn own_open_files_limit() -> Option<u64> {
    open_files_limit("/proc/self/limits")
}

fn open_files_limit(limits_path: &str) -> Option<u64> {
    let limits = fs::read_to_string(limits_path).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The local (ephemeral) port range: how many connections one source address can open to one
/// destination.
pub(crate) fn ephemeral_port_count() -> Option<u64> {
    let range = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut bounds = range.split_whitespace().map(|v| v.parse::<u64>().ok());
    let (low, high) = (bounds.next()??, bounds.next()??);
    Some(high.saturating_sub(low) + 1)
}

fn cpus_allowed(status_path: &str) -> Option<String> {
    let status = fs::read_to_string(status_path).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_string())
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// `utime + stime` (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name (field 2)
/// may contain spaces and parentheses, so fields are counted after its last `)`.
pub(crate) fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
    // cmajflt utime(14) stime(15): indexes 11 and 12 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `Key:   1234 kB` line of `/proc/<pid>/status`, in KiB.
pub(crate) fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_ticks_skip_a_name_with_spaces_and_parens() {
        let stat = "4242 (tid (ings) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    250 75 0 0 20 0 9 0 123456 1000000 2500 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(325));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn status_kib_reads_the_named_line_only() {
        let status = "Name:\ttidings\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(102_400));
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(204_800));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn own_process_is_readable() {
        assert!(own_rss_kib() > 0);
        let me = WatchedProcess::new(std::process::id()).unwrap();
        assert!(me.cpu_seconds().unwrap() >= 0.0);
        assert!(me.memory().unwrap().rss_kib > 0);
        assert!(me.open_fds().unwrap() > 0);
    }
}

//! `GET /v1/messages/export.csv`: the message list as CSV, produced page by page so
//! an export of a year of messages never sits in memory.
//!
//! RFC 4180: comma separated, CRLF line ends, a field is quoted when it holds a
//! comma, a quote, CR or LF (quotes doubled). The output starts with a UTF-8 BOM so
//! Excel reads it as UTF-8 (Arabic names and bodies otherwise turn to mojibake).
//! Every field that starts with `=`, `+`, `-`, `@`, tab or CR gets a leading `'`
//! so a spreadsheet does not run it as a formula (CSV injection, OWASP): not only
//! free text: an address (`to`), a provider's id or a template name can be chosen
//! by whoever sends, so no column is trusted. A phone number reads `'+9665...`.

use std::sync::Arc;

use futures_util::Stream;

use super::Outbound;
use crate::domain::ids::TenantId;
use crate::service::ServiceError;
use crate::store::outbound::{MessageFilter, MessageRecord};
use crate::store::PageRequest;

/// Rows read from the store per page of the export.
pub const EXPORT_PAGE_ROWS: u32 = 500;

/// The header row (after the BOM).
pub const CSV_COLUMNS: [&str; 22] = [
    "id",
    "created_at",
    "updated_at",
    "status",
    "reason",
    "channel",
    "to",
    "patient_id",
    "language",
    "kind",
    "template",
    "template_version",
    "subject",
    "body",
    "send_at",
    "group_key",
    "batch_id",
    "provider",
    "provider_message_id",
    "price",
    "currency",
    "attempts",
];

/// Appends one field, quoted if needed, formula-guarded if it could be one.
fn field(out: &mut String, value: &str) {
    let guard = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if guard || value.contains([',', '"', '\r', '\n']) {
        out.push('"');
        if guard {
            out.push('\'');
        }
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

fn line(out: &mut String, fields: &[&str]) {
    for (i, v) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(out, v);
    }
    out.push_str("\r\n");
}

/// The BOM and the header row.
pub fn csv_header() -> String {
    let mut out = String::from('\u{FEFF}');
    line(&mut out, &CSV_COLUMNS);
    out
}

/// One message as a CSV row.
pub fn csv_row(out: &mut String, m: &MessageRecord) {
    let price = m.price.as_ref().map(|p| {
        let sign = if p.micros < 0 { "-" } else { "" };
        let abs = p.micros.unsigned_abs();
        format!("{sign}{}.{:06}", abs / 1_000_000, abs % 1_000_000)
    });
    let id = m.id.to_string();
    // The same time format as the JSON API, so a CSV row and GET /v1/messages agree.
    let created = crate::wire::time(m.created_at);
    let updated = crate::wire::time(m.updated_at);
    let send_at = crate::wire::time(m.send_at);
    let version = m
        .template
        .as_ref()
        .map(|t| t.version.to_string())
        .unwrap_or_default();
    let batch = m.batch.map(|b| b.to_string()).unwrap_or_default();
    let attempts = m.attempts.to_string();
    let fields: [&str; 22] = [
        &id,
        &created,
        &updated,
        m.status.as_str(),
        m.suppression.as_ref().map(|s| s.0.as_str()).unwrap_or(""),
        m.channel.as_str(),
        m.to.as_ref().map(|a| a.as_str()).unwrap_or(""),
        m.patient.as_ref().map(|p| p.as_str()).unwrap_or(""),
        m.language.code(),
        m.kind.as_str(),
        m.template.as_ref().map(|t| t.name.as_str()).unwrap_or(""),
        &version,
        m.subject.as_deref().unwrap_or(""),
        &m.body,
        &send_at,
        m.group_key.as_deref().unwrap_or(""),
        &batch,
        m.provider.as_deref().unwrap_or(""),
        m.provider_message_id.as_deref().unwrap_or(""),
        price.as_deref().unwrap_or(""),
        m.price.as_ref().map(|p| p.currency.as_str()).unwrap_or(""),
        &attempts,
    ];
    line(out, &fields);
}

impl Outbound {
    /// The export as a stream of text chunks (the header, then one chunk per page,
    /// newest first). A store failure mid-way ends the stream with the error: the
    /// HTTP layer then aborts the response, so a truncated file is never mistaken
    /// for a complete one.
    pub fn export_csv(
        self: Arc<Self>,
        tenant: TenantId,
        filter: MessageFilter,
    ) -> impl Stream<Item = Result<String, ServiceError>> + Send + 'static {
        enum Step {
            Header,
            Page(Option<i64>),
            Done,
        }
        futures_util::stream::unfold(Step::Header, move |step| {
            let this = self.clone();
            let tenant = tenant.clone();
            let filter = filter.clone();
            async move {
                match step {
                    Step::Header => Some((Ok(csv_header()), Step::Page(None))),
                    Step::Page(before) => {
                        let page = PageRequest {
                            limit: EXPORT_PAGE_ROWS,
                            before,
                        };
                        match this.store.list_messages(&tenant, &filter, page).await {
                            Ok(p) => {
                                let mut out = String::new();
                                for m in &p.items {
                                    csv_row(&mut out, m);
                                }
                                let next = match p.next {
                                    Some(n) => Step::Page(Some(n)),
                                    None => Step::Done,
                                };
                                Some((Ok(out), next))
                            }
                            Err(e) => Some((Err(e.into()), Step::Done)),
                        }
                    }
                    Step::Done => None,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_needed_and_formulas_are_defused() {
        let mut out = String::new();
        line(
            &mut out,
            &[
                "plain",
                "a,b",
                "say \"hi\"",
                "two\nlines",
                "=HYPERLINK(\"x\")",
                "+966501234567",
                "\u{200F}مرحباً، أحمد",
                "-1.5",
                "@SUM(A1)",
                "=cmd|' /C calc'!A0@clinic.example",
            ],
        );
        assert_eq!(
            out,
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\"'=HYPERLINK(\"\"x\"\")\",\"'+966501234567\",\u{200F}مرحباً، أحمد,\"'-1.5\",\"'@SUM(A1)\",\"'=cmd|' /C calc'!A0@clinic.example\"\r\n"
        );
        assert!(csv_header().starts_with("\u{FEFF}id,created_at,"));
    }
}

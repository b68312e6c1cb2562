//! Outbound rows in the shape both backends store them: templates and their versions,
//! patient preferences, messages, and the stats a few GROUP BYs add up to. One decoder
//! per table, so SQLite and PostgreSQL cannot drift apart; the only column types that
//! differ (booleans: INTEGER / BOOLEAN) are read by the backend and passed in.

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveTime};
use sqlx::Row;

use super::from_millis;
use crate::domain::contact::{Address, EmailAddress, PhoneNumber};
use crate::domain::ids::{BatchId, PatientId, TemplateId, TenantId};
use crate::domain::message::{
    ChannelSwitches, KindSwitches, MessageId, MessageStatus, Money, PatientPreferences,
};
use crate::domain::template::{Channel, Language, MessageKind, Template, TemplateDraft};
use crate::domain::Invalid;
use crate::store::outbound::{
    AuditEntry, AuditRecord, DailyCount, MessageEvent, MessageRecord, MessageStats, NewMessage,
    StoredTemplate, TemplateRef, TemplateVersion,
};
use crate::store::StoreError;

/// The message columns every read selects, in the names [`message_from_row`] reads.
/// `variables` is a placeholder for the backend's expression (PostgreSQL casts JSONB to text).
pub(crate) const MESSAGE_COLUMNS: &str =
    "seq, id, tenant_id, patient_id, channel, to_address, language, kind, template_id, \
     template_name, template_version, {variables}, subject, body, status, suppression_code, \
     suppression_reason, send_at, group_key, batch_id, provider, provider_message_id, \
     price_micros, price_currency, attempts, failures, last_error, created_at, updated_at, \
     redacted_at";

/// [`MESSAGE_COLUMNS`] with the backend's `variables` expression.
pub(crate) fn message_columns(variables: &str) -> String {
    MESSAGE_COLUMNS.replace("{variables}", variables)
}

fn corrupt(what: &'static str) -> impl Fn(Invalid) -> StoreError {
    move |e| StoreError::Internal(format!("bad {what} row: {e}"))
}

fn bad_json(what: &'static str) -> impl Fn(serde_json::Error) -> StoreError {
    move |e| StoreError::Internal(format!("bad {what} row: {e}"))
}

fn uuid_of(what: &'static str, raw: &str) -> Result<uuid::Uuid, StoreError> {
    uuid::Uuid::try_parse(raw).map_err(|e| StoreError::Internal(format!("bad {what} id: {e}")))
}

/// Serializes a value the store itself wrote (cannot fail for maps of strings).
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Internal(e.to_string()))
}

/// A version's content (the `template_versions` columns) as a validated template.
/// `is_active` is passed in because its column type differs between the backends.
pub(crate) fn template_from_row<'r, R>(row: &'r R, is_active: bool) -> Result<Template, StoreError>
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let variables: Vec<String> =
        serde_json::from_str(&row.get::<String, _>("variables")).map_err(bad_json("template"))?;
    // Rebuilt through the domain's own validation: a stored template is known to be
    // well-formed, and a corrupt one is reported instead of rendered.
    let mut template = Template::create(TemplateDraft {
        name: row.get("name"),
        channel: row.get("channel"),
        kind: row.get("kind"),
        body_en: row.get("body_en"),
        body_ar: row.get("body_ar"),
        subject_en: row.get("subject_en"),
        subject_ar: row.get("subject_ar"),
        variables,
        is_active,
    })
    .map_err(corrupt("template"))?;
    template.version = u32::try_from(row.get::<i64, _>("version"))
        .map_err(|e| StoreError::Internal(format!("bad template version: {e}")))?;
    Ok(template)
}

/// A `templates` row joined with its current version.
pub(crate) fn stored_template_from_row<'r, R>(
    row: &'r R,
    is_active: bool,
) -> Result<StoredTemplate, StoreError>
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(StoredTemplate {
        id: TemplateId::from_uuid(uuid_of("template", &row.get::<String, _>("id"))?),
        template: template_from_row(row, is_active)?,
        created_at: from_millis(row.get("created_at")),
        updated_at: from_millis(row.get("updated_at")),
    })
}

/// A `template_versions` row as history.
pub(crate) fn template_version_from_row<'r, R>(
    row: &'r R,
    is_active: bool,
) -> Result<TemplateVersion, StoreError>
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(TemplateVersion {
        template: template_from_row(row, is_active)?,
        created_at: from_millis(row.get("created_at")),
        actor: row.get("actor"),
    })
}

/// The kinds a patient switched explicitly, as the stored JSON object.
pub(crate) fn kinds_json(kinds: &KindSwitches) -> Result<String, StoreError> {
    let map: BTreeMap<&str, bool> = kinds.explicit().map(|(k, on)| (k.as_str(), on)).collect();
    to_json(&map)
}

/// A `patient_preferences` row; the three channel switches are read by the backend.
pub(crate) fn patient_prefs_from_row<'r, R>(
    row: &'r R,
    channels: ChannelSwitches,
) -> Result<PatientPreferences, StoreError>
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let c = corrupt("patient preferences");
    let explicit: BTreeMap<String, bool> = serde_json::from_str(&row.get::<String, _>("kinds"))
        .map_err(bad_json("patient preferences"))?;
    let mut kinds = KindSwitches::default();
    for (kind, on) in explicit {
        kinds.set(MessageKind::parse(&kind).map_err(&c)?, on);
    }
    Ok(PatientPreferences {
        phone: row
            .get::<Option<String>, _>("phone")
            .map(|p| PhoneNumber::parse(&p))
            .transpose()
            .map_err(&c)?,
        email: row
            .get::<Option<String>, _>("email")
            .map(|e| EmailAddress::parse(&e))
            .transpose()
            .map_err(&c)?,
        language: Language::parse(&row.get::<String, _>("language")).map_err(&c)?,
        preferred_channel: row
            .get::<Option<String>, _>("preferred_channel")
            .map(|ch| Channel::parse(&ch))
            .transpose()
            .map_err(&c)?,
        channels,
        kinds,
    })
}

/// The stored form of an address: the channel says whether it is a phone or an email.
fn address_from_column(channel: Channel, raw: Option<String>) -> Result<Option<Address>, Invalid> {
    raw.map(|a| {
        if channel.uses_phone() {
            PhoneNumber::parse(&a).map(Address::Phone)
        } else {
            EmailAddress::parse(&a).map(Address::Email)
        }
    })
    .transpose()
}

/// A `messages` row (the columns of [`MESSAGE_COLUMNS`]).
pub(crate) fn message_from_row<'r, R>(row: &'r R) -> Result<MessageRecord, StoreError>
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let c = corrupt("message");
    let channel = Channel::parse(&row.get::<String, _>("channel")).map_err(&c)?;
    let template = match (
        row.get::<Option<String>, _>("template_id"),
        row.get::<Option<String>, _>("template_name"),
        row.get::<Option<i64>, _>("template_version"),
    ) {
        (Some(id), Some(name), Some(version)) => Some(TemplateRef {
            id: TemplateId::from_uuid(uuid_of("template", &id)?),
            name,
            version: u32::try_from(version)
                .map_err(|e| StoreError::Internal(format!("bad template version: {e}")))?,
        }),
        _ => None,
    };
    let suppression = match (
        row.get::<Option<String>, _>("suppression_code"),
        row.get::<Option<String>, _>("suppression_reason"),
    ) {
        (Some(code), Some(reason)) => Some((code, reason)),
        _ => None,
    };
    let price = match (
        row.get::<Option<i64>, _>("price_micros"),
        row.get::<Option<String>, _>("price_currency"),
    ) {
        (Some(micros), Some(currency)) => Some(Money { micros, currency }),
        _ => None,
    };
    let count = |col: &'static str| {
        u32::try_from(row.get::<i64, _>(col))
            .map_err(|e| StoreError::Internal(format!("bad message {col}: {e}")))
    };
    Ok(MessageRecord {
        seq: row.get("seq"),
        id: MessageId::from_uuid(uuid_of("message", &row.get::<String, _>("id"))?),
        tenant: TenantId::parse(&row.get::<String, _>("tenant_id")).map_err(&c)?,
        patient: row
            .get::<Option<String>, _>("patient_id")
            .map(|p| PatientId::parse(&p))
            .transpose()
            .map_err(&c)?,
        channel,
        to: address_from_column(channel, row.get("to_address")).map_err(&c)?,
        language: Language::parse(&row.get::<String, _>("language")).map_err(&c)?,
        kind: MessageKind::parse(&row.get::<String, _>("kind")).map_err(&c)?,
        template,
        variables: serde_json::from_str(&row.get::<String, _>("variables"))
            .map_err(bad_json("message"))?,
        subject: row.get("subject"),
        body: row.get("body"),
        status: MessageStatus::parse(&row.get::<String, _>("status")).map_err(&c)?,
        suppression,
        send_at: from_millis(row.get("send_at")),
        group_key: row.get("group_key"),
        batch: row
            .get::<Option<String>, _>("batch_id")
            .map(|b| uuid_of("batch", &b).map(BatchId::from_uuid))
            .transpose()?,
        provider: row.get("provider"),
        provider_message_id: row.get("provider_message_id"),
        price,
        attempts: count("attempts")?,
        failures: count("failures")?,
        last_error: row.get("last_error"),
        created_at: from_millis(row.get("created_at")),
        updated_at: from_millis(row.get("updated_at")),
        redacted_at: row.get::<Option<i64>, _>("redacted_at").map(from_millis),
    })
}

/// A `message_events` row (`event`, `at`, `detail` as text).
pub(crate) fn event_from_row<'r, R>(row: &'r R) -> MessageEvent
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    MessageEvent {
        event: row.get("event"),
        at: from_millis(row.get("at")),
        detail: row.get("detail"),
    }
}

/// An `audit_log` row (`detail` as text).
pub(crate) fn audit_from_row<'r, R>(row: &'r R) -> AuditRecord
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    AuditRecord {
        seq: row.get("seq"),
        entry: AuditEntry {
            actor: row.get("actor"),
            action: row.get("action"),
            target: row.get("target"),
            detail: row.get("detail"),
            at: from_millis(row.get("at")),
        },
    }
}

/// An event row to insert for one message (of the tenant the insert is for).
#[derive(Debug, Clone)]
pub(crate) struct NewEvent {
    pub(crate) id: MessageId,
    pub(crate) event: String,
    pub(crate) at: chrono::DateTime<chrono::Utc>,
    pub(crate) detail: String,
}

/// The two events a new message starts its trail with: `created`, then `queued` or
/// `suppressed` (with the suppression code and sentence).
pub(crate) fn initial_events(m: &NewMessage) -> Result<[(&'static str, String); 2], StoreError> {
    let created = to_json(&serde_json::json!({
        "channel": m.channel.as_str(),
        "template": m.template.as_ref().map(|t| serde_json::json!({"name": t.name, "version": t.version})),
    }))?;
    let second = match (m.status, &m.suppression) {
        (MessageStatus::Suppressed, Some((code, reason))) => (
            "suppressed",
            to_json(&serde_json::json!({"code": code, "reason": reason}))?,
        ),
        (MessageStatus::Suppressed, None) => ("suppressed", "{}".to_owned()),
        (_, _) => (
            "queued",
            to_json(
                &serde_json::json!({"send_at": m.send_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)}),
            )?,
        ),
    };
    Ok([("created", created), second])
}

/// Refuses a new message whose status the store does not insert.
pub(crate) fn check_new_status(m: &NewMessage) -> Result<(), StoreError> {
    match m.status {
        MessageStatus::Queued | MessageStatus::Suppressed => Ok(()),
        other => Err(StoreError::Internal(format!(
            "a new message is queued or suppressed, not {other}"
        ))),
    }
}

/// The JSON of the `sending` event a claim writes.
pub(crate) fn claim_detail(previous: &str, lease_until: chrono::DateTime<chrono::Utc>) -> String {
    serde_json::json!({
        "previous_status": previous,
        "lease_until": lease_until.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
    .to_string()
}

/// `[from, to)` whole UTC days as unix milliseconds.
pub(crate) fn day_range_millis(from: NaiveDate, to: NaiveDate) -> (i64, i64) {
    let ms = |d: NaiveDate| d.and_time(NaiveTime::MIN).and_utc().timestamp_millis();
    (ms(from), ms(to))
}

const DAY_MS: i64 = 86_400_000;

/// One `GROUP BY day, status, channel` row of the stats query.
pub(crate) struct StatsGroup {
    /// `created_at / 86400000`: days since the epoch.
    pub(crate) day: i64,
    pub(crate) status: String,
    pub(crate) channel: String,
    pub(crate) count: i64,
}

/// Adds the grouped counts up into the stats: totals, per status and channel, and a
/// daily row for every day of `[from, to)` (zeros included), oldest first.
pub(crate) fn assemble_stats(
    from: NaiveDate,
    to: NaiveDate,
    groups: Vec<StatsGroup>,
    cost: Vec<(String, String, i64)>,
) -> Result<MessageStats, StoreError> {
    let c = corrupt("stats");
    let mut stats = MessageStats::default();
    let mut per_day: BTreeMap<i64, DailyCount> = BTreeMap::new();
    let (from_ms, to_ms) = day_range_millis(from, to);
    let mut day = from_ms / DAY_MS;
    while day < to_ms / DAY_MS {
        per_day.insert(
            day,
            DailyCount {
                date: from_millis(day * DAY_MS).date_naive(),
                total: 0,
                delivered: 0,
                failed: 0,
            },
        );
        day += 1;
    }
    for g in groups {
        let n = u64::try_from(g.count).unwrap_or_default();
        let status = MessageStatus::parse(&g.status).map_err(&c)?;
        let channel = Channel::parse(&g.channel).map_err(&c)?;
        stats.total += n;
        *stats.by_status.entry(status).or_default() += n;
        *stats.by_channel.entry(channel).or_default() += n;
        let daily = per_day.get_mut(&g.day).ok_or_else(|| {
            StoreError::Internal(format!("stats day {} outside the range", g.day))
        })?;
        daily.total += n;
        match status {
            MessageStatus::Delivered | MessageStatus::Read => daily.delivered += n,
            MessageStatus::Failed | MessageStatus::Bounced => daily.failed += n,
            _ => {}
        }
    }
    stats.daily = per_day.into_values().collect();
    stats.cost = cost
        .into_iter()
        .map(|(channel, currency, micros)| {
            Ok((Channel::parse(&channel).map_err(&c)?, currency, micros))
        })
        .collect::<Result<_, StoreError>>()?;
    stats.cost.sort();
    Ok(stats)
}

/// The `LIKE` pattern of a case-insensitive substring search: lower-cased, with
/// `%`, `_` and `\` escaped (the queries say `ESCAPE '\'`).
pub(crate) fn contains_pattern(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 2);
    out.push('%');
    for ch in q.to_lowercase().chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

/// Why a guarded UPDATE of a message matched no row: the tenant has no such message
/// (`NotFound`), or its `status` is not one the move starts from (`rule` says which).
pub(crate) fn refused_move(status: Option<String>, rule: &str) -> StoreError {
    match status {
        Some(status) => StoreError::Conflict(format!("the message is {status}; {rule}")),
        None => StoreError::NotFound,
    }
}

/// `(status, COUNT(*))` rows folded into the total and the count per status.
pub(crate) fn status_counts(
    rows: impl IntoIterator<Item = (String, i64)>,
) -> Result<(u64, BTreeMap<MessageStatus, u64>), StoreError> {
    let mut by_status = BTreeMap::new();
    let mut total = 0;
    for (status, n) in rows {
        let status = MessageStatus::parse(&status)
            .map_err(|e| StoreError::Internal(format!("bad message row: {e}")))?;
        let n = u64::try_from(n).unwrap_or_default(); // a COUNT is never negative
        total += n;
        by_status.insert(status, n);
    }
    Ok((total, by_status))
}

/// The detail of an event an administrator caused: who.
pub(crate) fn actor_detail(audit: &AuditEntry) -> String {
    serde_json::json!({ "by": audit.actor }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_patterns_escape_like_wildcards() {
        assert_eq!(contains_pattern("AbC"), "%abc%");
        assert_eq!(contains_pattern("50%_x\\"), "%50\\%\\_x\\\\%");
        assert_eq!(contains_pattern("مريض"), "%مريض%");
    }

    #[test]
    fn stats_fill_every_day_of_the_range() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let (from_ms, _) = day_range_millis(d("2026-11-01"), d("2026-11-04"));
        let groups = vec![
            StatsGroup {
                day: from_ms / DAY_MS + 2,
                status: "delivered".into(),
                channel: "sms".into(),
                count: 3,
            },
            StatsGroup {
                day: from_ms / DAY_MS,
                status: "bounced".into(),
                channel: "email".into(),
                count: 1,
            },
        ];
        let s = assemble_stats(d("2026-11-01"), d("2026-11-04"), groups, vec![]).unwrap();
        let daily: Vec<_> = s
            .daily
            .iter()
            .map(|c| (c.date.to_string(), c.total, c.delivered, c.failed))
            .collect();
        assert_eq!(
            daily,
            vec![
                ("2026-11-01".to_owned(), 1, 0, 1),
                ("2026-11-02".to_owned(), 0, 0, 0),
                ("2026-11-03".to_owned(), 3, 3, 0),
            ]
        );
        assert_eq!(s.total, 4);
    }
}

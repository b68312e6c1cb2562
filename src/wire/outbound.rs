//! The JSON shapes of outbound messaging (../shared/API.md, "Outbound messages to
//! patients"), converted from the domain and store types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::time;
use crate::domain::message::{MessageStatus, Money, PatientPreferences};
use crate::domain::template::Channel;
use crate::service::outbound::stats::StatsReport;
use crate::store::outbound::{
    AuditRecord, BatchStatus, MessageEvent, MessageRecord, StoredTemplate, TemplateVersion,
};

// --- templates ---------------------------------------------------------------

/// A template as written by a client (create, or the full next version on PUT).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    /// a-z 0-9 _ - . (1..100); unique among the tenant's templates; fixed after creation.
    pub name: String,
    /// sms | whatsapp | email
    pub channel: String,
    /// appointment_reminder | appointment_confirmation | appointment_update | results | billing | marketing
    pub kind: String,
    /// `{name}` placeholders; `{{` / `}}` for literal braces.
    pub body_en: String,
    pub body_ar: String,
    /// Email only, and required there.
    pub subject_en: Option<String>,
    pub subject_ar: Option<String>,
    /// Every placeholder must be declared here; rendering needs a value for each.
    #[serde(default)]
    pub variables: Vec<String>,
    #[serde(default = "yes")]
    pub is_active: bool,
    // The template object's read-only fields, accepted and ignored so a client may
    // PUT back what it read (any other unknown field is a 422).
    #[serde(default)]
    #[schema(ignore)]
    pub id: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[schema(ignore)]
    pub version: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[schema(ignore)]
    pub created_at: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[schema(ignore)]
    pub updated_at: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    #[schema(ignore)]
    pub used_by_rules: Option<serde::de::IgnoredAny>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateWire {
    pub id: String,
    pub name: String,
    pub channel: &'static str,
    pub kind: &'static str,
    pub body_en: String,
    pub body_ar: String,
    pub subject_en: Option<String>,
    pub subject_ar: Option<String>,
    pub variables: Vec<String>,
    pub is_active: bool,
    /// 1 at creation, +1 per edit.
    pub version: u32,
    pub created_at: String,
    pub updated_at: String,
    /// The clinic-event rules that send this template (an extension), e.g.
    /// `events.confirmed.messages[0]`, `reminders`; empty when none. A template
    /// some rule uses cannot be deleted (409 `template_in_use`).
    pub used_by_rules: Vec<String>,
}

impl TemplateWire {
    /// `used_by_rules`: the rules that send it (`Outbound::rules_using`).
    pub fn new(s: &StoredTemplate, used_by_rules: Vec<String>) -> Self {
        let t = &s.template;
        TemplateWire {
            id: s.id.to_string(),
            name: t.name.as_str().to_owned(),
            channel: t.channel.as_str(),
            kind: t.kind.as_str(),
            body_en: t.body.en.as_str().to_owned(),
            body_ar: t.body.ar.as_str().to_owned(),
            subject_en: t.subject.as_ref().map(|s| s.en.as_str().to_owned()),
            subject_ar: t.subject.as_ref().map(|s| s.ar.as_str().to_owned()),
            variables: t.variables.clone(),
            is_active: t.is_active,
            version: t.version,
            created_at: time(s.created_at),
            updated_at: time(s.updated_at),
            used_by_rules,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplatePage {
    pub items: Vec<TemplateWire>,
    pub next_cursor: Option<String>,
}

/// One version in a template's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateVersionWire {
    pub version: u32,
    pub channel: &'static str,
    pub kind: &'static str,
    pub body_en: String,
    pub body_ar: String,
    pub subject_en: Option<String>,
    pub subject_ar: Option<String>,
    pub variables: Vec<String>,
    pub is_active: bool,
    pub created_at: String,
    /// Who made it (`api_key:<prefix>` or `user:<id>`).
    pub actor: String,
}

impl From<&TemplateVersion> for TemplateVersionWire {
    fn from(v: &TemplateVersion) -> Self {
        let t = &v.template;
        TemplateVersionWire {
            version: t.version,
            channel: t.channel.as_str(),
            kind: t.kind.as_str(),
            body_en: t.body.en.as_str().to_owned(),
            body_ar: t.body.ar.as_str().to_owned(),
            subject_en: t.subject.as_ref().map(|s| s.en.as_str().to_owned()),
            subject_ar: t.subject.as_ref().map(|s| s.ar.as_str().to_owned()),
            variables: t.variables.clone(),
            is_active: t.is_active,
            created_at: time(v.created_at),
            actor: v.actor.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateVersionsWire {
    pub items: Vec<TemplateVersionWire>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRenderBody {
    /// en (default) | ar
    pub language: Option<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RenderedWire {
    /// Email templates only; null otherwise.
    pub subject: Option<String>,
    pub body: String,
}

// --- patients ------------------------------------------------------------------

/// A patient's preferences. On PUT, absent channels are on and absent kinds take
/// their default (marketing off, everything else on).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferencesWire {
    /// E.164 (`+966501234567`).
    pub phone: Option<String>,
    pub email: Option<String>,
    /// en | ar
    pub language: Option<String>,
    /// sms | whatsapp | email | null
    pub preferred_channel: Option<String>,
    #[serde(default)]
    pub channels: BTreeMap<String, bool>,
    #[serde(default)]
    pub kinds: BTreeMap<String, bool>,
    /// Response only (ignored on PUT): whether the clinic stored preferences for this
    /// patient (false: these are the defaults a message would use).
    #[serde(default)]
    pub stored: bool,
}

impl PreferencesWire {
    pub fn from_domain(p: &PatientPreferences, stored: bool) -> Self {
        PreferencesWire {
            phone: p.phone.as_ref().map(|x| x.as_str().to_owned()),
            email: p.email.as_ref().map(|x| x.as_str().to_owned()),
            language: Some(p.language.code().to_owned()),
            preferred_channel: p.preferred_channel.map(|c| c.as_str().to_owned()),
            channels: Channel::FALLBACK_ORDER
                .into_iter()
                .map(|c| (c.as_str().to_owned(), p.channels.get(c)))
                .collect(),
            kinds: p
                .kinds
                .effective()
                .into_iter()
                .map(|(k, on)| (k.as_str().to_owned(), on))
                .collect(),
            stored,
        }
    }
}

// --- sending -------------------------------------------------------------------

/// `POST /v1/messages`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    pub patient_id: Option<String>,
    /// E.164 phone or email; with `patient_id` it replaces the stored address.
    pub to: Option<String>,
    pub channel: Option<String>,
    /// A template name; or give `body` (and `subject` for email).
    pub template: Option<String>,
    pub body: Option<String>,
    pub subject: Option<String>,
    /// en | ar (default: the patient's language)
    pub language: Option<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Required without a template; with one it defaults to the template's kind.
    pub kind: Option<String>,
    /// RFC 3339; absent: now.
    pub send_at: Option<String>,
    pub group_key: Option<String>,
}

/// `202 {"id", "status": "queued", "channel"}` or `200 {"id", "status":
/// "suppressed", "reason", "channel", "detail"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SendResponse {
    pub id: String,
    /// queued | suppressed
    pub status: &'static str,
    pub channel: &'static str,
    /// Suppressed only: kind_disabled | channel_disabled | no_address | no_usable_channel
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Suppressed only: the reason as a sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `POST /v1/messages/bulk`. `recipients` are kept as raw JSON and parsed chunk by
/// chunk while the batch is written.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkBody<'a> {
    pub template: String,
    pub channel: Option<String>,
    /// 1..10,000 of `{"patient_id"? | "to"?, "variables", "language"?}`.
    #[serde(borrow)]
    #[schema(value_type = Vec<RecipientWire>)]
    pub recipients: Vec<&'a RawValue>,
    pub send_at: Option<String>,
    pub group_key: Option<String>,
}

/// One bulk recipient.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecipientWire {
    pub patient_id: Option<String>,
    pub to: Option<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    pub language: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResponse {
    pub batch_id: String,
    pub queued: u64,
    pub suppressed: u64,
}

// --- messages ------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateRefWire {
    pub id: String,
    pub name: String,
    pub version: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PriceWire {
    /// Decimal string, exact (`"0.007500"`).
    pub amount: String,
    pub currency: String,
}

fn decimal(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    format!("{sign}{}.{:06}", abs / 1_000_000, abs % 1_000_000)
}

impl From<&Money> for PriceWire {
    fn from(m: &Money) -> Self {
        PriceWire {
            amount: decimal(m.micros),
            currency: m.currency.clone(),
        }
    }
}

/// A message (list item).
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageWire {
    pub id: String,
    pub patient_id: Option<String>,
    pub channel: &'static str,
    pub to: Option<String>,
    pub language: &'static str,
    pub kind: &'static str,
    pub template: Option<TemplateRefWire>,
    pub subject: Option<String>,
    /// `null` once the message was redacted (see `redacted_at`).
    pub body: Option<String>,
    pub status: &'static str,
    /// Suppressed only: the reason code.
    pub reason: Option<String>,
    pub send_at: String,
    pub group_key: Option<String>,
    pub batch_id: Option<String>,
    pub provider: Option<String>,
    pub provider_message_id: Option<String>,
    pub price: Option<PriceWire>,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// When the tenant's PHI retention or the patient's erasure removed the address,
    /// subject, body, variables and provider texts; `null` while the message is whole.
    pub redacted_at: Option<String>,
}

impl From<&MessageRecord> for MessageWire {
    fn from(m: &MessageRecord) -> Self {
        MessageWire {
            id: m.id.to_string(),
            patient_id: m.patient.as_ref().map(|p| p.as_str().to_owned()),
            channel: m.channel.as_str(),
            to: m.to.as_ref().map(|a| a.as_str().to_owned()),
            language: m.language.code(),
            kind: m.kind.as_str(),
            template: m.template.as_ref().map(|t| TemplateRefWire {
                id: t.id.to_string(),
                name: t.name.clone(),
                version: t.version,
            }),
            subject: m.subject.clone(),
            body: m.redacted_at.is_none().then(|| m.body.clone()),
            status: m.status.as_str(),
            reason: m.suppression.as_ref().map(|s| s.0.clone()),
            send_at: time(m.send_at),
            group_key: m.group_key.clone(),
            batch_id: m.batch.map(|b| b.to_string()),
            provider: m.provider.clone(),
            provider_message_id: m.provider_message_id.clone(),
            price: m.price.as_ref().map(PriceWire::from),
            attempts: m.attempts,
            last_error: m.last_error.clone(),
            created_at: time(m.created_at),
            updated_at: time(m.updated_at),
            redacted_at: m.redacted_at.map(time),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    pub items: Vec<MessageWire>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventWire {
    /// created | queued | sending | sent | delivered | read | failed | retry | bounced |
    /// cancelled | suppressed | failover | callback
    pub event: String,
    pub at: String,
    /// Provider, response or error, attempt, reason.
    #[schema(value_type = Object)]
    pub detail: Box<RawValue>,
}

impl From<&MessageEvent> for EventWire {
    fn from(e: &MessageEvent) -> Self {
        // Stored details are JSON objects; anything else is shown as text, not dropped.
        let detail = RawValue::from_string(e.detail.clone()).unwrap_or_else(|_| {
            RawValue::from_string(serde_json::json!({"text": e.detail}).to_string())
                .expect("valid JSON")
        });
        EventWire {
            event: e.event.clone(),
            at: time(e.at),
            detail,
        }
    }
}

/// A message with what it was rendered from and its timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageDetailWire {
    #[serde(flatten)]
    pub message: MessageWire,
    pub variables: BTreeMap<String, String>,
    /// The suppression sentence, when suppressed.
    pub reason_detail: Option<String>,
    pub failures: u32,
    /// Oldest first.
    pub events: Vec<EventWire>,
}

impl MessageDetailWire {
    pub fn new(m: &MessageRecord, events: &[MessageEvent]) -> Self {
        MessageDetailWire {
            message: MessageWire::from(m),
            variables: m.variables.clone(),
            reason_detail: m.suppression.as_ref().map(|s| s.1.clone()),
            failures: m.failures,
            events: events.iter().map(EventWire::from).collect(),
        }
    }
}

/// `DELETE /v1/patients/{patient_id}/data`: what the erasure changed (counts only).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureWire {
    pub patient_id: String,
    /// Messages whose address, texts and patient id were removed.
    pub messages: u64,
    /// Of those, queued messages that were cancelled first.
    pub cancelled: u64,
    /// Clinic events whose payload was removed.
    pub events: u64,
    /// Whether a preferences / contact record was deleted.
    pub preferences: bool,
    /// Staff notifications about the patient (from their clinic events, or published
    /// with `related` `{"type": "patient", "id": patient_id}`) whose title, message,
    /// link and data were redacted; their read state and creation time stay.
    pub notifications: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelGroupBody {
    pub group_key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CancelGroupResponse {
    pub group_key: String,
    /// How many queued messages were cancelled.
    pub cancelled: u64,
}

/// `GET /v1/messages/batches/{id}`: a bulk send's messages counted by status.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchWire {
    pub batch_id: String,
    pub template: Option<String>,
    pub created_at: String,
    pub total: u64,
    /// Every status, zeros included.
    pub by_status: BTreeMap<&'static str, u64>,
}

fn every_status(counts: &BTreeMap<MessageStatus, u64>) -> BTreeMap<&'static str, u64> {
    MessageStatus::ALL
        .into_iter()
        .map(|s| (s.as_str(), counts.get(&s).copied().unwrap_or(0)))
        .collect()
}

impl From<&BatchStatus> for BatchWire {
    fn from(b: &BatchStatus) -> Self {
        BatchWire {
            batch_id: b.id.to_string(),
            template: b.template.clone(),
            created_at: time(b.created_at),
            total: b.total,
            by_status: every_status(&b.by_status),
        }
    }
}

// --- stats ---------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct DailyWire {
    /// YYYY-MM-DD (UTC).
    pub date: String,
    pub total: u64,
    /// delivered or read
    pub delivered: u64,
    /// failed or bounced
    pub failed: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CostWire {
    /// In `currency`, as a number with up to 6 decimals.
    pub total: f64,
    pub by_channel: BTreeMap<&'static str, f64>,
    /// The currency of `total` and `by_channel` (the one most spent in); null when
    /// nothing was priced.
    pub currency: Option<String>,
    /// Costs in other currencies, if providers priced in several (not converted).
    pub other_currencies: Vec<OtherCurrencyWire>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OtherCurrencyWire {
    pub currency: String,
    pub total: f64,
    pub by_channel: BTreeMap<&'static str, f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatsWire {
    /// First and last day counted (UTC, inclusive).
    pub from: String,
    pub to: String,
    pub total: u64,
    /// Every status, zeros included.
    pub by_status: BTreeMap<&'static str, u64>,
    /// Every channel, zeros included.
    pub by_channel: BTreeMap<&'static str, u64>,
    /// (delivered + read) / (sent + delivered + read + failed + bounced): of the
    /// messages a provider has answered for, the share that reached the patient.
    /// Queued, sending, cancelled and suppressed messages are not counted. 0 when none.
    pub success_rate: f64,
    /// The denominator of `success_rate`.
    pub attempted: u64,
    /// Every day of the window, oldest first, zeros included.
    pub daily: Vec<DailyWire>,
    pub cost: CostWire,
}

fn amount(micros: i64) -> f64 {
    micros as f64 / 1_000_000.0
}

impl From<&StatsReport> for StatsWire {
    fn from(r: &StatsReport) -> Self {
        let s = &r.stats;
        // Sum per currency, then per channel.
        let mut per_currency: BTreeMap<&str, BTreeMap<Channel, i64>> = BTreeMap::new();
        for (channel, currency, micros) in &s.cost {
            *per_currency
                .entry(currency.as_str())
                .or_default()
                .entry(*channel)
                .or_default() += micros;
        }
        let mut currencies: Vec<(&str, i64, BTreeMap<Channel, i64>)> = per_currency
            .into_iter()
            .map(|(c, by)| (c, by.values().sum(), by))
            .collect();
        currencies.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let by_channel = |by: &BTreeMap<Channel, i64>| {
            Channel::FALLBACK_ORDER
                .into_iter()
                .map(|c| (c.as_str(), amount(by.get(&c).copied().unwrap_or(0))))
                .collect::<BTreeMap<_, _>>()
        };
        let mut rest = currencies.into_iter();
        let cost = match rest.next() {
            Some((currency, total, by)) => CostWire {
                total: amount(total),
                by_channel: by_channel(&by),
                currency: Some(currency.to_owned()),
                other_currencies: rest
                    .map(|(c, total, by)| OtherCurrencyWire {
                        currency: c.to_owned(),
                        total: amount(total),
                        by_channel: by_channel(&by),
                    })
                    .collect(),
            },
            None => CostWire {
                total: 0.0,
                by_channel: by_channel(&BTreeMap::new()),
                currency: None,
                other_currencies: Vec::new(),
            },
        };
        StatsWire {
            from: r.from.to_string(),
            to: r.to.to_string(),
            total: s.total,
            by_status: every_status(&s.by_status),
            by_channel: Channel::FALLBACK_ORDER
                .into_iter()
                .map(|c| (c.as_str(), s.by_channel.get(&c).copied().unwrap_or(0)))
                .collect(),
            success_rate: r.success_rate,
            attempted: r.attempted,
            daily: s
                .daily
                .iter()
                .map(|d| DailyWire {
                    date: d.date.to_string(),
                    total: d.total,
                    delivered: d.delivered,
                    failed: d.failed,
                })
                .collect(),
            cost,
        }
    }
}

// --- audit ---------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditWire {
    /// The entry's position in the log (increasing).
    pub id: String,
    /// `api_key:<prefix>` | `user:<id>` | `system:<name>`
    pub actor: String,
    /// template.create | template.update | template.delete | template.toggle |
    /// message.retry | message.cancel | message.cancel_group | message.bulk | patient.preferences
    pub action: String,
    /// `template:<id>`, `message:<id>`, `group:<key>`, `batch:<id>`, `patient:<id>`
    pub target: String,
    #[schema(value_type = Object)]
    pub detail: Box<RawValue>,
    pub at: String,
}

impl From<&AuditRecord> for AuditWire {
    fn from(r: &AuditRecord) -> Self {
        let e = &r.entry;
        let detail = RawValue::from_string(e.detail.clone()).unwrap_or_else(|_| {
            RawValue::from_string(serde_json::json!({"text": e.detail}).to_string())
                .expect("valid JSON")
        });
        AuditWire {
            id: r.seq.to_string(),
            actor: e.actor.clone(),
            action: e.action.clone(),
            target: e.target.clone(),
            detail,
            at: time(e.at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditWire>,
    pub next_cursor: Option<String>,
}

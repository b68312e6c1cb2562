//! Sending one message: THE use case the REST API (`POST /v1/messages`), the bulk
//! send and the clinic-events rules share.
//!
//! preferences (stored, or an ad-hoc address) → channel
//! ([`PatientPreferences::route`]) → template (by name, active, for that
//! channel) → render in the patient's (or the requested) language → a
//! [`NewMessage`] that is either `queued` or `suppressed` with the reason →
//! committed before the caller hears back.
//!
//! Nothing here knows HTTP: callers pass typed inputs ([`SendRequest`]) and get a
//! typed [`SendOutcome`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::Outbound;
use crate::domain::clinic_plan::ClinicName;
use crate::domain::contact::{Address, EmailAddress, PhoneNumber};
use crate::domain::ids::{BatchId, PatientId, TenantId};
use crate::domain::message::{KindSwitches, MessageId, MessageStatus, PatientPreferences};
use crate::domain::preferences::ChannelRoute;
use crate::domain::template::{Channel, Language, MessageKind, Rendered, TEMPLATE_TEXT_MAX_LEN};
use crate::domain::Invalid;
use crate::service::ServiceError;
use crate::store::outbound::{
    EnqueueFeed, EnqueueOutcome, NewMessage, StoredTemplate, TemplateRef,
};
use crate::store::IdempotencyClaim;

/// Longest `group_key` (it groups a patient's messages for one appointment, e.g.
/// `appointment:8a6f…`, so that they can be cancelled together).
pub const MAX_GROUP_KEY_LEN: usize = 200;
/// Longest free-text subject, in bytes (one line; RFC 5322's line limit).
pub const MAX_SUBJECT_LEN: usize = 998;

/// What a message says.
#[derive(Debug, Clone)]
pub enum MessageContent {
    /// A stored template by name, rendered with these values (values for names the
    /// template does not declare are ignored, so one set of facts fits many templates).
    Template {
        name: String,
        variables: BTreeMap<String, String>,
    },
    /// Free text; `subject` is needed when the message goes by email.
    Text {
        subject: Option<String>,
        body: String,
    },
}

/// One message to send.
#[derive(Debug, Clone)]
pub struct SendRequest {
    /// Whose preferences apply (kinds, channels, language, addresses).
    pub patient: Option<PatientId>,
    /// An address to use: instead of the patient's (with `patient`), or alone for
    /// an ad-hoc send to someone without stored preferences (then every kind is allowed).
    pub to: Option<Address>,
    /// Requested channel. With a template it must be the template's channel
    /// (a template is written for one channel), and may be omitted.
    pub channel: Option<Channel>,
    pub content: MessageContent,
    /// Overrides the patient's language.
    pub language: Option<Language>,
    /// Required for free text; with a template it defaults to (and must equal) the template's kind.
    pub kind: Option<MessageKind>,
    /// When it becomes due; now if absent.
    pub send_at: Option<DateTime<Utc>>,
    pub group_key: Option<String>,
}

/// What became of a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Committed as `queued`: a worker will send it.
    Queued { id: MessageId, channel: Channel },
    /// Committed as `suppressed`: the patient's preferences forbid it.
    Suppressed {
        id: MessageId,
        channel: Channel,
        /// `Suppression::code()`: `kind_disabled`, `channel_disabled`, `no_address`, `no_usable_channel`.
        reason: String,
        /// The sentence for staff.
        detail: String,
    },
}

impl SendOutcome {
    pub fn id(&self) -> MessageId {
        match self {
            SendOutcome::Queued { id, .. } | SendOutcome::Suppressed { id, .. } => *id,
        }
    }

    /// The idempotency record's text (internal: decoded by [`SendOutcome::decode`]).
    fn encode(&self) -> String {
        match self {
            SendOutcome::Queued { id, channel } => serde_json::json!({
                "id": id.to_string(), "status": "queued", "channel": channel.as_str()
            }),
            SendOutcome::Suppressed {
                id,
                channel,
                reason,
                detail,
            } => serde_json::json!({
                "id": id.to_string(), "status": "suppressed", "channel": channel.as_str(),
                "reason": reason, "detail": detail
            }),
        }
        .to_string()
    }

    fn decode(text: &str) -> Result<Self, ServiceError> {
        let bad = || ServiceError::Internal(format!("unreadable idempotency record {text:?}"));
        let v: serde_json::Value = serde_json::from_str(text).map_err(|_| bad())?;
        let field = |k: &str| v[k].as_str().ok_or_else(bad);
        let id = MessageId::parse(field("id")?).map_err(|_| bad())?;
        let channel = Channel::parse(field("channel")?).map_err(|_| bad())?;
        match field("status")? {
            "queued" => Ok(SendOutcome::Queued { id, channel }),
            "suppressed" => Ok(SendOutcome::Suppressed {
                id,
                channel,
                reason: field("reason")?.to_owned(),
                detail: field("detail")?.to_owned(),
            }),
            _ => Err(bad()),
        }
    }
}

/// A message ready for `OutboundStore::enqueue`, and the outcome it stands for.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub message: NewMessage,
    pub outcome: SendOutcome,
}

/// Parses a `to` address: `+…` is a phone number (E.164), anything with `@` an email.
pub fn parse_address(field: &str, raw: &str) -> Result<Address, Invalid> {
    if raw.starts_with('+') {
        PhoneNumber::parse_field(field, raw).map(Address::Phone)
    } else if raw.contains('@') {
        EmailAddress::parse_field(field, raw).map(Address::Email)
    } else {
        Err(Invalid::new(
            field,
            "must be an E.164 phone number (+966501234567) or an email address",
        ))
    }
}

/// Validates a group key (1..=200 printable characters).
pub fn check_group_key(field: &str, key: &str) -> Result<(), Invalid> {
    if key.is_empty() || key.len() > MAX_GROUP_KEY_LEN || key.chars().any(char::is_control) {
        return Err(Invalid::new(
            field,
            format!("must be 1 to {MAX_GROUP_KEY_LEN} bytes without control characters"),
        ));
    }
    Ok(())
}

/// The parts of a message that do not depend on the recipient.
pub(crate) struct Recipe<'a> {
    pub template: Option<&'a StoredTemplate>,
    /// Free text (when `template` is `None`).
    pub text: Option<(Option<&'a str>, &'a str)>,
    pub channel: Option<Channel>,
    pub kind: MessageKind,
    pub send_at: DateTime<Utc>,
    pub group_key: Option<&'a str>,
    pub batch: Option<BatchId>,
    /// The sending clinic's name: the default subject of an email without one.
    pub clinic: &'a ClinicName,
}

/// The parts that do.
pub(crate) struct Recipient<'a> {
    pub patient: Option<&'a PatientId>,
    /// The patient's stored preferences (`None`: defaults, or ad-hoc without a patient).
    pub prefs: Option<&'a PatientPreferences>,
    pub to: Option<&'a Address>,
    pub language: Option<Language>,
    pub variables: &'a BTreeMap<String, String>,
}

/// Builds one message. `prefix` is prepended to error fields (`recipients[7].`).
pub(crate) fn build(
    recipe: &Recipe<'_>,
    who: &Recipient<'_>,
    prefix: &str,
) -> Result<Prepared, ServiceError> {
    let mut prefs = match (who.patient, who.prefs) {
        (Some(_), Some(p)) => p.clone(),
        (Some(_), None) => PatientPreferences::default(),
        // Ad hoc: no patient record, so no switches; the caller decided to write.
        (None, _) => {
            let mut kinds = KindSwitches::default();
            for k in MessageKind::ALL {
                kinds.set(k, true);
            }
            PatientPreferences {
                kinds,
                ..PatientPreferences::default()
            }
        }
    };
    let requested = recipe
        .template
        .map(|t| t.template.channel)
        .or(recipe.channel);
    if let Some(to) = who.to {
        match (to, requested) {
            (Address::Phone(_), Some(Channel::Email)) => {
                return Err(Invalid::new(
                    format!("{prefix}to"),
                    "an email message needs an email address",
                )
                .into())
            }
            (Address::Email(_), Some(c)) if c.uses_phone() => {
                return Err(Invalid::new(
                    format!("{prefix}to"),
                    format!("a {c} message needs a phone number"),
                )
                .into())
            }
            _ => {}
        }
        match to {
            Address::Phone(p) => prefs.phone = Some(p.clone()),
            Address::Email(e) => prefs.email = Some(e.clone()),
        }
    }
    let language = who.language.unwrap_or(prefs.language);
    let (rendered, variables) = match (recipe.template, recipe.text) {
        (Some(t), _) => {
            let rendered = t
                .template
                .render(language, who.variables)
                .map_err(|error| ServiceError::Render {
                    field: format!("{prefix}variables"),
                    error,
                })?;
            let declared: BTreeMap<String, String> = t
                .template
                .variables
                .iter()
                .filter_map(|v| who.variables.get(v).map(|val| (v.clone(), val.clone())))
                .collect();
            (rendered, declared)
        }
        (None, Some((subject, body))) => (
            Rendered {
                subject: subject.map(str::to_owned),
                body: body.to_owned(),
            },
            BTreeMap::new(),
        ),
        (None, None) => {
            return Err(ServiceError::Internal(
                "a recipe without template or text".into(),
            ))
        }
    };
    let id = MessageId::new_random();
    let (channel, to, status, suppression) = match prefs.route(requested, recipe.kind) {
        ChannelRoute::Send { channel, to } => (channel, Some(to), MessageStatus::Queued, None),
        ChannelRoute::Suppress { channel, to, why } => (
            channel,
            to,
            MessageStatus::Suppressed,
            Some((why.code().to_owned(), why.to_string())),
        ),
    };
    // A subject only means something by email. Text without one (free text, which
    // may fall back to email from the patient's channels) gets its kind and the
    // clinic's name; only a template that declares a subject must render one.
    let subject = match channel {
        Channel::Email => Some(rendered.subject.unwrap_or_else(|| {
            let clinic = match language {
                Language::En => &recipe.clinic.en,
                Language::Ar => &recipe.clinic.ar,
            };
            recipe.kind.default_subject(language, clinic)
        })),
        _ => None,
    };
    let outcome = match &suppression {
        None => SendOutcome::Queued { id, channel },
        Some((code, sentence)) => SendOutcome::Suppressed {
            id,
            channel,
            reason: code.clone(),
            detail: sentence.clone(),
        },
    };
    let message = NewMessage {
        id,
        patient: who.patient.cloned(),
        channel,
        to,
        language,
        kind: recipe.kind,
        template: recipe.template.map(|t| TemplateRef {
            id: t.id,
            name: t.template.name.as_str().to_owned(),
            version: t.template.version,
        }),
        variables,
        subject,
        body: rendered.body,
        status,
        suppression,
        send_at: recipe.send_at,
        group_key: recipe.group_key.map(str::to_owned),
        batch: recipe.batch,
    };
    Ok(Prepared { message, outcome })
}

fn check_text(subject: Option<&str>, body: &str) -> Result<(), Invalid> {
    if body.trim().is_empty() {
        return Err(Invalid::new("body", "must not be empty"));
    }
    if body.len() > TEMPLATE_TEXT_MAX_LEN {
        return Err(Invalid::new(
            "body",
            format!("must be at most {TEMPLATE_TEXT_MAX_LEN} bytes"),
        ));
    }
    if let Some(s) = subject {
        if s.trim().is_empty() || s.len() > MAX_SUBJECT_LEN || s.contains(['\r', '\n']) {
            return Err(Invalid::new(
                "subject",
                format!("must be one non-empty line of at most {MAX_SUBJECT_LEN} bytes"),
            ));
        }
    }
    Ok(())
}

impl Outbound {
    /// The named template, if it may be used for a send on `channel`.
    pub(crate) async fn sendable_template(
        &self,
        tenant: &TenantId,
        name: &str,
        channel: Option<Channel>,
    ) -> Result<StoredTemplate, ServiceError> {
        let t = self
            .store
            .template_by_name(tenant, name)
            .await?
            .ok_or_else(|| Invalid::new("template", format!("no template named {name:?}")))?;
        if !t.template.is_active {
            return Err(Invalid::new("template", format!("template {name:?} is inactive")).into());
        }
        if let Some(c) = channel {
            if c != t.template.channel {
                return Err(Invalid::new(
                    "channel",
                    format!(
                        "template {name:?} is for {} messages, not {c}",
                        t.template.channel
                    ),
                )
                .into());
            }
        }
        Ok(t)
    }

    /// Resolves and renders a message without writing it: for callers that put
    /// several messages in one transaction through `OutboundStore::enqueue`.
    pub async fn prepare(
        &self,
        tenant: &TenantId,
        req: &SendRequest,
        now: DateTime<Utc>,
    ) -> Result<Prepared, ServiceError> {
        if let Some(g) = &req.group_key {
            check_group_key("group_key", g)?;
        }
        if req.patient.is_none() && req.to.is_none() {
            return Err(Invalid::new("patient_id", "give patient_id or to (or both)").into());
        }
        let (template, text, kind) = match &req.content {
            MessageContent::Template { name, .. } => {
                let t = self.sendable_template(tenant, name, req.channel).await?;
                let kind = match req.kind {
                    Some(k) if k != t.template.kind => {
                        return Err(Invalid::new(
                            "kind",
                            format!("template {name:?} is for {} messages", t.template.kind),
                        )
                        .into())
                    }
                    _ => t.template.kind,
                };
                (Some(t), None, kind)
            }
            MessageContent::Text { subject, body } => {
                check_text(subject.as_deref(), body)?;
                let kind = req.kind.ok_or_else(|| {
                    Invalid::new("kind", "is required for a message without a template")
                })?;
                (None, Some((subject.as_deref(), body.as_str())), kind)
            }
        };
        let prefs = match &req.patient {
            Some(p) => self.store.patient_preferences(tenant, p).await?,
            None => None,
        };
        let empty = BTreeMap::new();
        let variables = match &req.content {
            MessageContent::Template { variables, .. } => variables,
            MessageContent::Text { .. } => &empty,
        };
        build(
            &Recipe {
                template: template.as_ref(),
                text,
                channel: req.channel,
                kind,
                send_at: req.send_at.unwrap_or(now),
                group_key: req.group_key.as_deref(),
                batch: None,
                clinic: &self.clinics.for_tenant(tenant).clinic,
            },
            &Recipient {
                patient: req.patient.as_ref(),
                prefs: prefs.as_ref(),
                to: req.to.as_ref(),
                language: req.language,
                variables,
            },
            "",
        )
    }

    /// Sends one message: committed as `queued` (or `suppressed`) before this
    /// returns. With an idempotency claim, a retry with the same key and body
    /// returns the first outcome and writes nothing; another body is a 409.
    pub async fn send(
        &self,
        tenant: &TenantId,
        req: &SendRequest,
        idempotency: Option<&IdempotencyClaim>,
    ) -> Result<SendOutcome, ServiceError> {
        let now = self.now();
        let prepared = self.prepare(tenant, req, now).await?;
        let response = prepared.outcome.encode();
        let (tx, rx) = mpsc::channel(2);
        // The channel has room for both items: nothing waits for the store here.
        let fed = tx
            .try_send(EnqueueFeed::Chunk(vec![prepared.message]))
            .is_ok()
            && tx.try_send(EnqueueFeed::Commit).is_ok();
        drop(tx);
        if !fed {
            return Err(ServiceError::Internal(
                "enqueue feed refused a message".into(),
            ));
        }
        let outcome = self
            .store
            .enqueue(
                tenant,
                None,
                rx,
                idempotency.map(|c| (c, response.as_str())),
                None,
                now,
            )
            .await?;
        match outcome {
            EnqueueOutcome::Committed { .. } => {
                self.wake_worker();
                Ok(prepared.outcome)
            }
            EnqueueOutcome::Replayed { response } => SendOutcome::decode(&response),
            EnqueueOutcome::KeyReused => Err(key_reused()),
            EnqueueOutcome::Aborted => Err(ServiceError::Internal(
                "enqueue aborted although the feed was committed".into(),
            )),
        }
    }
}

pub(crate) fn key_reused() -> ServiceError {
    ServiceError::Conflict {
        code: "idempotency_key_reused",
        message: "this Idempotency-Key was used with a different request body".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::TemplateId;
    use crate::domain::template::{Template, TemplateDraft};

    /// A fixed time: nothing here depends on when the test runs.
    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn template(channel: &str) -> StoredTemplate {
        let t = Template::create(TemplateDraft {
            name: "reminder".into(),
            channel: channel.into(),
            kind: "appointment_reminder".into(),
            body_en: "Hi {name}".into(),
            body_ar: "\u{200F}مرحباً {name}".into(),
            subject_en: (channel == "email").then(|| "S {name}".into()),
            subject_ar: (channel == "email").then(|| "م {name}".into()),
            variables: vec!["name".into()],
            is_active: true,
        })
        .unwrap();
        StoredTemplate {
            id: TemplateId::new_random(),
            template: t,
            created_at: t0(),
            updated_at: t0(),
        }
    }

    fn recipe(t: &StoredTemplate) -> Recipe<'_> {
        Recipe {
            template: Some(t),
            text: None,
            channel: None,
            kind: t.template.kind,
            send_at: t0(),
            group_key: None,
            batch: None,
            clinic: &CLINIC,
        }
    }

    static CLINIC: ClinicName = ClinicName {
        en: String::new(),
        ar: String::new(),
    };

    #[test]
    fn patient_language_and_preferences_decide() {
        let t = template("sms");
        let patient = PatientId::parse("p-1").unwrap();
        let prefs = PatientPreferences {
            phone: Some(PhoneNumber::parse("+966501234567").unwrap()),
            language: Language::Ar,
            ..Default::default()
        };
        let vars = BTreeMap::from([
            ("name".to_owned(), "علي".to_owned()),
            ("x".to_owned(), "y".to_owned()),
        ]);
        let who = Recipient {
            patient: Some(&patient),
            prefs: Some(&prefs),
            to: None,
            language: None,
            variables: &vars,
        };
        let p = build(&recipe(&t), &who, "").unwrap();
        assert_eq!(p.message.body, "\u{200F}مرحباً علي");
        assert_eq!(p.message.status, MessageStatus::Queued);
        assert_eq!(p.message.to.as_ref().unwrap().as_str(), "+966501234567");
        assert_eq!(
            p.message.variables.len(),
            1,
            "undeclared values are not kept"
        );

        // SMS off: suppressed, on the template's channel, with the reason.
        let mut off = prefs.clone();
        off.channels.sms = false;
        let who = Recipient {
            prefs: Some(&off),
            ..who
        };
        let p = build(&recipe(&t), &who, "").unwrap();
        assert_eq!(p.message.status, MessageStatus::Suppressed);
        assert_eq!(
            p.message.suppression.as_ref().unwrap().0,
            "channel_disabled"
        );
        assert!(matches!(
            p.outcome,
            SendOutcome::Suppressed {
                channel: Channel::Sms,
                ..
            }
        ));
    }

    #[test]
    fn missing_variables_are_named_with_the_prefix() {
        let t = template("email");
        let vars = BTreeMap::new();
        let to = parse_address("to", "p@clinic.example").unwrap();
        let who = Recipient {
            patient: None,
            prefs: None,
            to: Some(&to),
            language: None,
            variables: &vars,
        };
        match build(&recipe(&t), &who, "recipients[3].") {
            Err(ServiceError::Render { field, error }) => {
                assert_eq!(field, "recipients[3].variables");
                assert_eq!(error.missing, vec!["name"]);
            }
            other => panic!("{other:?}"),
        }
        let phone = parse_address("to", "+966501234567").unwrap();
        let vars = BTreeMap::from([("name".to_owned(), "A".to_owned())]);
        let who = Recipient {
            to: Some(&phone),
            variables: &vars,
            ..who
        };
        match build(&recipe(&t), &who, "recipients[3].") {
            Err(ServiceError::Invalid(inv)) => assert_eq!(inv.field, "recipients[3].to"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn outcomes_round_trip_through_the_idempotency_record() {
        let q = SendOutcome::Queued {
            id: MessageId::new_random(),
            channel: Channel::Whatsapp,
        };
        assert_eq!(SendOutcome::decode(&q.encode()).unwrap(), q);
        let s = SendOutcome::Suppressed {
            id: MessageId::new_random(),
            channel: Channel::Email,
            reason: "no_address".into(),
            detail: "the patient has no email address for email".into(),
        };
        assert_eq!(SendOutcome::decode(&s.encode()).unwrap(), s);
        assert!(parse_address("to", "0501234567").is_err());
    }
}

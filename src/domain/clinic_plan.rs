//! The planner: from an event, the rules, what the hub knows about the appointment
//! and the patient, and the time, decide everything the event causes — pure, so
//! every row of the rules table is testable without a database.
//!
//! The plan is then resolved (role recipients, staff locales, tenant templates) and
//! applied in one transaction by the events service.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::clinic_event::{AppointmentState, ClinicEvent, Disposition};
use super::clinic_format;
use super::clinic_rules::{InAppText, MessageAction, Recipient, ReminderEffect, Rules};
use super::contact::Address;
use super::escalation::EscalationStep;
use super::message::{PatientPreferences, Suppression};
use super::notification::NotificationType;
use super::priority::Priority;
use super::template::{Channel, Language, MessageKind};

/// The clinic's display name in both languages (when the event names none).
#[derive(Debug, Clone)]
pub struct ClinicName {
    pub en: String,
    pub ar: String,
}

/// Everything the planner reads besides the event.
pub struct PlanContext<'a> {
    pub rules: &'a Rules,
    pub in_app: &'a BTreeMap<String, InAppText>,
    /// The appointment's state before this event (`None`: never heard of).
    pub state: Option<&'a AppointmentState>,
    /// The patient's stored preferences, if the clinic stored any.
    pub patient_prefs: Option<&'a PatientPreferences>,
    /// The provider's language (from their directory locale).
    pub provider_language: Language,
    pub now: DateTime<Utc>,
    pub tz: Tz,
    pub clinic: &'a ClinicName,
}

/// An in-app notification to publish, rendered in both languages; the service
/// picks each recipient's language from their directory locale.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedNotification {
    pub to: Recipient,
    pub kind: NotificationType,
    pub category: String,
    /// (title, message) in English and in Arabic.
    pub en: (String, String),
    pub ar: (String, String),
    pub link: String,
    pub priority: Priority,
    pub escalate: Vec<EscalationStep>,
}

/// An outbound message to record: queued, or suppressed with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedMessage {
    pub to: Recipient,
    /// The full template name (`appointment.confirmed.sms`).
    pub template: String,
    pub channel: Channel,
    /// `None` when suppressed for want of an address.
    pub address: Option<Address>,
    /// `(code, sentence)` when it must not be sent.
    pub suppression: Option<(String, String)>,
    pub language: Language,
    pub kind: MessageKind,
    pub variables: BTreeMap<String, String>,
    pub send_at: DateTime<Utc>,
    /// The appointment's reminder group for reminders.
    pub group_key: Option<String>,
}

/// What one event causes.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub disposition: Disposition,
    pub notifications: Vec<PlannedNotification>,
    /// Immediate messages.
    pub messages: Vec<PlannedMessage>,
    /// Cancel every still-queued message of [`reminder_group`] before scheduling.
    pub cancel_reminders: bool,
    pub reminders: Vec<PlannedMessage>,
    /// The appointment's state after the event (unchanged when ignored).
    pub state: Option<AppointmentState>,
}

/// The group every reminder of an appointment belongs to (cancelled together).
pub fn reminder_group(appointment: &str) -> String {
    format!("appt:{appointment}:reminders")
}

/// Staff locales are BCP 47-ish strings (`ar`, `ar-SA`, `en-GB`): Arabic if they
/// start with `ar`, else English.
pub fn language_of_locale(locale: Option<&str>) -> Language {
    match locale {
        Some(l) if l.to_ascii_lowercase().starts_with("ar") => Language::Ar,
        _ => Language::En,
    }
}

/// The patient's preferences as used for this event: the stored ones, with the
/// event's phone and email filling in missing addresses; a patient with no stored
/// preferences gets the defaults in the event's language.
pub fn effective_preferences(
    stored: Option<&PatientPreferences>,
    event: &ClinicEvent,
) -> PatientPreferences {
    let p = &event.appointment.patient;
    let mut prefs = match stored {
        Some(s) => s.clone(),
        None => PatientPreferences {
            language: p.language.unwrap_or_default(),
            ..PatientPreferences::default()
        },
    };
    if prefs.phone.is_none() {
        prefs.phone = p.phone.clone();
    }
    if prefs.email.is_none() {
        prefs.email = p.email.clone();
    }
    prefs
}

fn yes_no(v: Option<bool>, language: Language, yes: [&str; 2], no: [&str; 2]) -> String {
    let i = usize::from(language == Language::Ar);
    match v {
        Some(true) => yes[i].to_owned(),
        Some(false) => no[i].to_owned(),
        None => ["not reported", "لم يُبلَّغ عنه"][i].to_owned(),
    }
}

/// The values every template and in-app text may use, formatted for `language`.
pub fn variables(
    event: &ClinicEvent,
    previous_start: Option<DateTime<Utc>>,
    clinic: &ClinicName,
    tz: Tz,
    language: Language,
) -> BTreeMap<String, String> {
    let a = &event.appointment;
    let ar = language == Language::Ar;
    let dash = if ar { "غير محدد" } else { "not set" };
    let previous = a.previous_start_at.or(previous_start);
    let clinic_name = a.clinic.clone().unwrap_or_else(|| {
        if ar {
            clinic.ar.clone()
        } else {
            clinic.en.clone()
        }
    });
    let values = [
        ("patient_name", a.patient.name.clone()),
        ("provider_name", a.provider.name.clone()),
        ("date", clinic_format::date(a.start_at, tz, language)),
        ("time", clinic_format::time(a.start_at, tz, language)),
        (
            "previous_date",
            previous.map_or_else(|| dash.to_owned(), |t| clinic_format::date(t, tz, language)),
        ),
        (
            "previous_time",
            previous.map_or_else(|| dash.to_owned(), |t| clinic_format::time(t, tz, language)),
        ),
        ("appointment_number", a.number.clone()),
        ("appointment_id", a.id.as_str().to_owned()),
        ("clinic", clinic_name),
        (
            "reason",
            a.reason
                .clone()
                .unwrap_or_else(|| if ar { "لم يُذكر" } else { "not given" }.to_owned()),
        ),
        (
            "financial_status",
            yes_no(
                a.financially_cleared,
                language,
                ["financially cleared", "تمت التسوية المالية"],
                ["NOT financially cleared", "لم تتم التسوية المالية"],
            ),
        ),
        (
            "consent_status",
            yes_no(
                a.consent_verified,
                language,
                ["consent verified", "تم التحقق من الموافقة"],
                ["consent NOT verified", "لم يتم التحقق من الموافقة"],
            ),
        ),
    ];
    values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Picks the channel for a patient message among the rule's candidates: the
/// patient's preferred channel if it is a candidate and usable, else the first
/// usable candidate; a kind switched off suppresses it whatever the channel.
/// Returns the channel tried (for the record) and the address or the reason.
pub fn choose_patient_channel(
    prefs: &PatientPreferences,
    candidates: &[Channel],
    kind: MessageKind,
) -> (Channel, Result<Address, Suppression>) {
    let first = prefs
        .preferred_channel
        .filter(|c| candidates.contains(c))
        .unwrap_or(candidates[0]);
    if !prefs.kinds.get(kind) {
        return (first, Err(Suppression::KindDisabled(kind)));
    }
    let usable = |c: Channel| {
        if prefs.channels.get(c) {
            prefs.address_for(c)
        } else {
            None
        }
    };
    let order = std::iter::once(first).chain(candidates.iter().copied());
    for c in order {
        if let Some(a) = usable(c) {
            return (c, Ok(a));
        }
    }
    let why = match candidates {
        [only] if !prefs.channels.get(*only) => Suppression::ChannelDisabled(*only),
        [only] => Suppression::NoAddress(*only),
        _ => Suppression::NoUsableChannel,
    };
    (first, Err(why))
}

struct Facts<'a> {
    event: &'a ClinicEvent,
    ctx: &'a PlanContext<'a>,
    prefs: PatientPreferences,
    values: [BTreeMap<String, String>; 2],
}

impl Facts<'_> {
    fn values(&self, language: Language) -> &BTreeMap<String, String> {
        &self.values[usize::from(language == Language::Ar)]
    }

    fn message(
        &self,
        action: &MessageAction,
        send_at: DateTime<Utc>,
        group_key: Option<String>,
    ) -> PlannedMessage {
        let (channel, language, outcome) = match action.to {
            Recipient::Provider => {
                let to = self.event.appointment.provider.email.clone();
                let outcome = to.map(Address::Email).ok_or_else(|| {
                    (
                        "no_address".to_owned(),
                        "the event gave no email address for the provider".to_owned(),
                    )
                });
                (Channel::Email, self.ctx.provider_language, outcome)
            }
            _ => {
                let (c, r) = choose_patient_channel(&self.prefs, &action.channels, action.kind);
                let r = r.map_err(|s| (s.code().to_owned(), s.to_string()));
                (c, self.prefs.language, r)
            }
        };
        let (address, suppression) = match outcome {
            Ok(a) => (Some(a), None),
            Err(s) => (None, Some(s)),
        };
        PlannedMessage {
            to: action.to,
            template: action.template_for(channel),
            channel,
            address,
            suppression,
            language,
            kind: action.kind,
            variables: self.values(language).clone(),
            send_at,
            group_key,
        }
    }
}

/// Renders an in-app text; the rules were validated against the same texts and
/// variables, so a missing value here is a bug, reported as the variable's name.
fn render_in_app(
    text: &InAppText,
    values: &BTreeMap<String, String>,
    language: Language,
) -> Result<(String, String), String> {
    let title = text
        .title
        .get(language)
        .render_text(values)
        .map_err(|m| m.join(", "))?;
    let message = text
        .message
        .get(language)
        .render_text(values)
        .map_err(|m| m.join(", "))?;
    Ok((title, message))
}

/// Plans one event. `Err` only for an inconsistent catalog (an in-app text the
/// rules name is gone), which validation at start rules out.
pub fn plan(event: &ClinicEvent, ctx: &PlanContext<'_>) -> Result<Plan, String> {
    let disposition = super::clinic_event::decide(ctx.state, event);
    let Disposition::Apply { rule: rule_kind } = disposition else {
        return Ok(Plan {
            disposition,
            notifications: Vec::new(),
            messages: Vec::new(),
            cancel_reminders: false,
            reminders: Vec::new(),
            state: ctx.state.cloned(),
        });
    };
    let a = &event.appointment;
    let previous_start = ctx.state.map(|s| s.start_at).filter(|s| *s != a.start_at);
    let values = [Language::En, Language::Ar]
        .map(|l| variables(event, previous_start, ctx.clinic, ctx.tz, l));
    let facts = Facts {
        event,
        ctx,
        prefs: effective_preferences(ctx.patient_prefs, event),
        values,
    };
    let rule = ctx.rules.rule(rule_kind);
    let link = ctx.rules.link.replace("{appointment_id}", a.id.as_str());

    let mut notifications = Vec::new();
    for action in &rule.in_app {
        let text = ctx
            .in_app
            .get(&action.text)
            .ok_or_else(|| format!("in-app text {} is missing", action.text))?;
        notifications.push(PlannedNotification {
            to: action.to,
            kind: action.kind,
            category: action.category.clone(),
            en: render_in_app(text, facts.values(Language::En), Language::En)?,
            ar: render_in_app(text, facts.values(Language::Ar), Language::Ar)?,
            link: link.clone(),
            priority: action.priority,
            escalate: action.escalate.clone(),
        });
    }
    let messages = rule
        .messages
        .iter()
        .map(|m| facts.message(m, ctx.now, None))
        .collect();

    let pending_for = ctx.state.and_then(|s| s.reminders_for);
    let (cancel_reminders, reminders, reminders_for) = match rule.reminders {
        ReminderEffect::Keep => (false, Vec::new(), pending_for),
        ReminderEffect::Cancel => (true, Vec::new(), None),
        ReminderEffect::Schedule if pending_for == Some(a.start_at) => {
            (false, Vec::new(), pending_for)
        }
        ReminderEffect::Schedule => {
            let group = reminder_group(a.id.as_str());
            let reminders = ctx
                .rules
                .reminders
                .offsets
                .iter()
                .map(|off| a.start_at - *off)
                .filter(|at| *at > ctx.now)
                .map(|at| facts.message(&ctx.rules.reminders.action, at, Some(group.clone())))
                .collect();
            (true, reminders, Some(a.start_at))
        }
    };

    let state = AppointmentState {
        status: rule_kind,
        start_at: a.start_at,
        last_occurred_at: ctx.state.map_or(event.occurred_at, |s| {
            s.last_occurred_at.max(event.occurred_at)
        }),
        reminders_for,
        version: ctx.state.map_or(0, |s| s.version),
    };
    // A terminal appointment never keeps reminders, whatever a rules file says.
    let terminal = rule_kind.is_terminal();
    Ok(Plan {
        disposition,
        notifications,
        messages,
        cancel_reminders: cancel_reminders || terminal,
        reminders: if terminal { Vec::new() } else { reminders },
        state: Some(AppointmentState {
            reminders_for: if terminal { None } else { state.reminders_for },
            ..state
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::contact::{EmailAddress, PhoneNumber};

    fn prefs() -> PatientPreferences {
        PatientPreferences {
            phone: Some(PhoneNumber::parse("+966501234567").unwrap()),
            email: Some(EmailAddress::parse("a@example.com").unwrap()),
            ..Default::default()
        }
    }

    #[test]
    fn the_preferred_channel_goes_first_only_among_the_candidates() {
        let phone = [Channel::Sms, Channel::Whatsapp];
        let mut p = prefs();
        assert_eq!(
            choose_patient_channel(&p, &phone, MessageKind::AppointmentUpdate).0,
            Channel::Sms
        );
        p.preferred_channel = Some(Channel::Whatsapp);
        assert_eq!(
            choose_patient_channel(&p, &phone, MessageKind::AppointmentUpdate).0,
            Channel::Whatsapp
        );
        // Email preferred, but this message is SMS/WhatsApp: SMS.
        p.preferred_channel = Some(Channel::Email);
        assert_eq!(
            choose_patient_channel(&p, &phone, MessageKind::AppointmentUpdate).0,
            Channel::Sms
        );
        // SMS off: WhatsApp.
        p.channels.sms = false;
        let (c, r) = choose_patient_channel(&p, &phone, MessageKind::AppointmentUpdate);
        assert_eq!((c, r.is_ok()), (Channel::Whatsapp, true));
    }

    #[test]
    fn suppression_says_why() {
        let mut p = prefs();
        p.kinds.set(MessageKind::AppointmentReminder, false);
        let (_, r) = choose_patient_channel(
            &p,
            &Channel::FALLBACK_ORDER,
            MessageKind::AppointmentReminder,
        );
        assert_eq!(r.unwrap_err().code(), "kind_disabled");
        let mut p = prefs();
        p.phone = None;
        let (c, r) = choose_patient_channel(
            &p,
            &[Channel::Sms, Channel::Whatsapp],
            MessageKind::AppointmentUpdate,
        );
        assert_eq!(
            (c, r.unwrap_err().code()),
            (Channel::Sms, "no_usable_channel")
        );
        let (_, r) = choose_patient_channel(&p, &[Channel::Sms], MessageKind::AppointmentUpdate);
        assert_eq!(r.unwrap_err().code(), "no_address");
        // Reminders fall back to email when there is no phone.
        let (c, r) = choose_patient_channel(
            &p,
            &Channel::FALLBACK_ORDER,
            MessageKind::AppointmentReminder,
        );
        assert_eq!(c, Channel::Email);
        assert!(matches!(r, Ok(Address::Email(_))));
    }

    #[test]
    fn staff_locales_pick_the_language() {
        assert_eq!(language_of_locale(Some("ar-SA")), Language::Ar);
        assert_eq!(language_of_locale(Some("AR")), Language::Ar);
        assert_eq!(language_of_locale(Some("en-GB")), Language::En);
        assert_eq!(language_of_locale(None), Language::En);
    }
}

//! The clinic-events rules: for each event type, who hears about it, on which
//! channels, with which template, and what happens to the appointment's reminders.
//!
//! Rules are data (config/rules.toml, overridable per tenant); this module is the
//! validated model. [`RulesDraft`] is what a rules file says, as strings;
//! [`Rules::build`] checks it against the default templates and in-app texts and
//! names the bad rule in every error (`events.confirmed.messages[1].channels`).

use std::collections::BTreeMap;

use chrono::Duration;

use super::auth::Role;
use super::clinic_event::EventType;
use super::escalation::{parse_steps, EscalationStep, StepInput};
use super::notification::NotificationType;
use super::priority::Priority;
use super::template::{Bilingual, Channel, MessageKind, Template, TemplateText};

/// Who a rule addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient {
    /// The appointment's provider (a directory user; emails go to `provider.email`).
    Provider,
    /// The patient (outbound messages by their preferences; in-app notifications to
    /// the hub user with the patient's id, for a patient portal).
    Patient,
    /// Every directory user with this role (in-app only), e.g. `role:front_desk`.
    Role(Role),
}

impl Recipient {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "provider" => Some(Recipient::Provider),
            "patient" => Some(Recipient::Patient),
            _ => raw
                .strip_prefix("role:")
                .and_then(|r| r.parse::<Role>().ok())
                .map(Recipient::Role),
        }
    }
}

/// An in-app notification a rule publishes.
#[derive(Debug, Clone, PartialEq)]
pub struct InAppAction {
    pub to: Recipient,
    /// The in-app text's name (title and message, both languages).
    pub text: String,
    pub kind: NotificationType,
    pub category: String,
    pub priority: Priority,
    /// Escalation steps of each notification it publishes (none by default).
    pub escalate: Vec<EscalationStep>,
}

/// An outbound message a rule enqueues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAction {
    /// `Patient` or `Provider` (email only).
    pub to: Recipient,
    /// The template's base name; the template used is `{template}.{channel}`.
    pub template: String,
    /// Candidate channels in the rule's order. The patient's preferred channel is
    /// taken first when it is one of them; else the first that is switched on and
    /// has an address.
    pub channels: Vec<Channel>,
    pub kind: MessageKind,
}

impl MessageAction {
    pub fn template_for(&self, channel: Channel) -> String {
        format!("{}.{}", self.template, channel.as_str())
    }

    /// Whether the template named `name` is one this action may send.
    pub fn sends(&self, name: &str) -> bool {
        self.channels.iter().any(|c| self.template_for(*c) == name)
    }
}

/// What an event does to the appointment's pending reminders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReminderEffect {
    /// Make sure reminders are pending for the event's start time (replacing
    /// reminders scheduled for another time).
    Schedule,
    /// Cancel what is pending.
    Cancel,
    /// Leave them alone.
    Keep,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventRule {
    pub in_app: Vec<InAppAction>,
    pub messages: Vec<MessageAction>,
    pub reminders: ReminderEffect,
}

impl EventRule {
    /// `in_progress` by default: recorded in the event log, nobody notified.
    pub fn is_log_only(&self) -> bool {
        self.in_app.is_empty() && self.messages.is_empty() && self.reminders == ReminderEffect::Keep
    }
}

/// How reminders are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReminderRule {
    /// Before the start, e.g. 24 h and 2 h; one reminder each, past ones skipped.
    pub offsets: Vec<Duration>,
    pub action: MessageAction,
}

/// An in-app notification's text, both languages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InAppText {
    pub title: Bilingual,
    pub message: Bilingual,
}

/// The validated rules of one tenant (or the shipped defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub events: BTreeMap<EventType, EventRule>,
    pub reminders: ReminderRule,
    /// Where staff open the appointment: `{appointment_id}` is replaced.
    pub link: String,
}

// ---------------------------------------------------------------------------
// Drafts: a rules file's content, as strings.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
pub struct InAppDraft {
    pub to: String,
    pub text: String,
    pub kind: String,
    pub category: String,
    /// `None`: normal.
    pub priority: Option<String>,
    pub escalate: Vec<StepDraft>,
}

/// An escalation step of a rule, as written (`{ after_s, to = { user_id | role } }`).
#[derive(Debug, Clone, Default)]
pub struct StepDraft {
    pub after_s: Option<i64>,
    pub user_id: Option<String>,
    pub role: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct MessageDraft {
    pub to: String,
    pub template: String,
    pub channels: Vec<String>,
    pub kind: String,
}

#[derive(Debug, Clone, Default)]
pub struct EventRuleDraft {
    pub in_app: Vec<InAppDraft>,
    pub messages: Vec<MessageDraft>,
    pub reminders: String,
}

#[derive(Debug, Clone, Default)]
pub struct RulesDraft {
    /// Keyed by the short event name (`booked`).
    pub events: BTreeMap<String, EventRuleDraft>,
    pub reminder_offsets_minutes: Vec<i64>,
    pub reminder_template: String,
    pub reminder_channels: Vec<String>,
    pub link: String,
}

/// What rules may refer to: the default channel templates and in-app texts.
pub struct Catalog<'a> {
    pub templates: &'a BTreeMap<String, Template>,
    pub in_app: &'a BTreeMap<String, InAppText>,
}

/// The variables every event provides to templates and in-app texts (values are
/// formatted per language; see `clinic_plan::variables`).
pub const EVENT_VARIABLES: [&str; 12] = [
    "patient_name",
    "provider_name",
    "date",
    "time",
    "previous_date",
    "previous_time",
    "appointment_number",
    "clinic",
    "reason",
    "financial_status",
    "consent_status",
    "appointment_id",
];

/// A rule error: `rule` is the path in the rules file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule {rule}: {message}")]
pub struct RuleError {
    pub rule: String,
    pub message: String,
}

fn err<T>(rule: impl Into<String>, message: impl Into<String>) -> Result<T, RuleError> {
    Err(RuleError {
        rule: rule.into(),
        message: message.into(),
    })
}

/// `"preferred"` expands to SMS → WhatsApp → email (the contract's fallback order).
fn channels(path: &str, raw: &[String]) -> Result<Vec<Channel>, RuleError> {
    let mut out: Vec<Channel> = Vec::new();
    for (i, c) in raw.iter().enumerate() {
        let expanded: Vec<Channel> = if c == "preferred" {
            Channel::FALLBACK_ORDER.to_vec()
        } else {
            match Channel::parse(c) {
                Ok(ch) => vec![ch],
                Err(_) => {
                    return err(
                        format!("{path}.channels[{i}]"),
                        "must be sms, whatsapp, email or preferred",
                    )
                }
            }
        };
        for ch in expanded {
            if !out.contains(&ch) {
                out.push(ch);
            }
        }
    }
    if out.is_empty() {
        return err(format!("{path}.channels"), "must name at least one channel");
    }
    Ok(out)
}

fn check_vars(path: &str, texts: &[&TemplateText]) -> Result<(), RuleError> {
    for t in texts {
        for p in t.placeholders() {
            if !EVENT_VARIABLES.contains(&p) {
                return err(path, format!("uses {{{p}}}, which events do not provide"));
            }
        }
    }
    Ok(())
}

fn message_action(
    path: &str,
    d: &MessageDraft,
    catalog: &Catalog<'_>,
) -> Result<MessageAction, RuleError> {
    let to = match Recipient::parse(&d.to) {
        Some(r @ (Recipient::Patient | Recipient::Provider)) => r,
        _ => return err(format!("{path}.to"), "must be patient or provider"),
    };
    let kind = MessageKind::parse(&d.kind).or_else(|e| err(format!("{path}.kind"), e.message))?;
    let channels = channels(path, &d.channels)?;
    if to == Recipient::Provider && channels != [Channel::Email] {
        return err(
            format!("{path}.channels"),
            "messages to the provider go by email only",
        );
    }
    let action = MessageAction {
        to,
        template: d.template.clone(),
        channels,
        kind,
    };
    for ch in &action.channels {
        let name = action.template_for(*ch);
        let Some(t) = catalog.templates.get(&name) else {
            return err(
                format!("{path}.template"),
                format!("no default template named {name}"),
            );
        };
        if t.channel != *ch {
            return err(
                format!("{path}.template"),
                format!("template {name} is a {} template", t.channel),
            );
        }
        if t.kind != kind {
            return err(
                format!("{path}.template"),
                format!(
                    "template {name} is of kind {}, the rule says {kind}",
                    t.kind
                ),
            );
        }
        if let Some(v) = t
            .variables
            .iter()
            .find(|v| !EVENT_VARIABLES.contains(&v.as_str()))
        {
            return err(
                format!("{path}.template"),
                format!("template {name} declares {{{v}}}, which events do not provide"),
            );
        }
    }
    Ok(action)
}

impl Rules {
    /// Validates a draft. Every event type must have a rule (an empty one is
    /// "log only"), so a typo in a rules file cannot silently mute an event.
    pub fn build(draft: &RulesDraft, catalog: &Catalog<'_>) -> Result<Self, RuleError> {
        for key in draft.events.keys() {
            if EventType::from_short(key).is_none() {
                return err(
                    format!("events.{key}"),
                    "is not an event type (booked, confirmed, rescheduled, arrived, \
                     in_progress, completed, cancelled, no_show)",
                );
            }
        }
        let mut events = BTreeMap::new();
        for kind in EventType::ALL {
            let path = format!("events.{}", kind.short());
            let Some(d) = draft.events.get(kind.short()) else {
                return err(path, "is missing (write an empty table for log only)");
            };
            let mut in_app = Vec::new();
            for (i, a) in d.in_app.iter().enumerate() {
                let p = format!("{path}.in_app[{i}]");
                let Some(to) = Recipient::parse(&a.to) else {
                    return err(
                        format!("{p}.to"),
                        "must be provider, patient or role:<admin|front_desk|provider|patient>",
                    );
                };
                let Some(text) = catalog.in_app.get(&a.text) else {
                    return err(
                        format!("{p}.text"),
                        format!("no in-app text named {}", a.text),
                    );
                };
                check_vars(
                    &format!("{p}.text"),
                    &[
                        &text.title.en,
                        &text.title.ar,
                        &text.message.en,
                        &text.message.ar,
                    ],
                )?;
                let kind = NotificationType::parse(&a.kind)
                    .or_else(|e| err(format!("{p}.type"), e.message))?;
                let n = a.category.chars().count();
                if n == 0 || n > 100 {
                    return err(format!("{p}.category"), "must be 1..100 characters");
                }
                let priority = match &a.priority {
                    Some(raw) => {
                        Priority::parse(raw).or_else(|e| err(format!("{p}.priority"), e.message))?
                    }
                    None => Priority::Normal,
                };
                let escalate = if a.escalate.is_empty() {
                    Vec::new()
                } else {
                    let steps: Vec<StepInput<'_>> = a
                        .escalate
                        .iter()
                        .map(|s| StepInput {
                            after_s: s.after_s,
                            user_id: s.user_id.as_deref(),
                            role: s.role.as_deref(),
                        })
                        .collect();
                    parse_steps(&steps).or_else(|e| err(format!("{p}.{}", e.field), e.message))?
                };
                in_app.push(InAppAction {
                    to,
                    text: a.text.clone(),
                    kind,
                    category: a.category.clone(),
                    priority,
                    escalate,
                });
            }
            let messages = d
                .messages
                .iter()
                .enumerate()
                .map(|(i, m)| message_action(&format!("{path}.messages[{i}]"), m, catalog))
                .collect::<Result<Vec<_>, _>>()?;
            let reminders = match d.reminders.as_str() {
                "schedule" => ReminderEffect::Schedule,
                "cancel" => ReminderEffect::Cancel,
                "" | "keep" => ReminderEffect::Keep,
                _ => {
                    return err(
                        format!("{path}.reminders"),
                        "must be schedule, cancel or keep",
                    )
                }
            };
            events.insert(
                kind,
                EventRule {
                    in_app,
                    messages,
                    reminders,
                },
            );
        }
        if draft.reminder_offsets_minutes.is_empty()
            || draft
                .reminder_offsets_minutes
                .iter()
                .any(|m| !(1..=60 * 24 * 30).contains(m))
        {
            return err(
                "reminders.offsets_minutes",
                "must list 1 or more offsets of 1..43200 minutes",
            );
        }
        let mut offsets: Vec<Duration> = draft
            .reminder_offsets_minutes
            .iter()
            .map(|m| Duration::minutes(*m))
            .collect();
        offsets.sort_by(|a, b| b.cmp(a));
        offsets.dedup();
        let action = message_action(
            "reminders",
            &MessageDraft {
                to: "patient".into(),
                template: draft.reminder_template.clone(),
                channels: draft.reminder_channels.clone(),
                kind: MessageKind::AppointmentReminder.as_str().into(),
            },
            catalog,
        )?;
        if !draft.link.starts_with('/') && !draft.link.starts_with("https://") {
            return err("link", "must be an absolute path or an https URL");
        }
        Ok(Rules {
            events,
            reminders: ReminderRule { offsets, action },
            link: draft.link.clone(),
        })
    }

    pub fn rule(&self, kind: EventType) -> &EventRule {
        // `build` inserts every event type.
        &self.events[&kind]
    }

    /// The rules that send the template named `name`, as paths in the rules file
    /// (`events.confirmed.messages[0]`, `reminders`), in file order: deleting that
    /// template would make each of them fail with `template_unavailable`.
    pub fn rules_using(&self, name: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .events
            .iter()
            .flat_map(|(kind, rule)| {
                rule.messages
                    .iter()
                    .enumerate()
                    .filter(move |(_, a)| a.sends(name))
                    .map(move |(i, _)| format!("events.{}.messages[{i}]", kind.short()))
            })
            .collect();
        if self.reminders.action.sends(name) {
            out.push("reminders".to_owned());
        }
        out
    }

    /// Every template name the rules may use (what a tenant is seeded with).
    pub fn template_names(&self) -> Vec<String> {
        let actions = self
            .events
            .values()
            .flat_map(|r| r.messages.iter())
            .chain(std::iter::once(&self.reminders.action));
        let mut names: Vec<String> = actions
            .flat_map(|a| a.channels.iter().map(|c| a.template_for(*c)))
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

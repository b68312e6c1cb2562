//! Clinic-events configuration: the rules files (config/rules.toml and per-tenant
//! overrides) and the default texts (config/templates.toml), read and validated at
//! start. A bad rule is a configuration error naming the file and the rule.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use chrono_tz::Tz;
use figment::providers::{Format, Toml};
use figment::Figment;
use serde::Deserialize;

use super::ConfigError;
use crate::domain::clinic_plan::ClinicName;
use crate::domain::clinic_rules::{
    Catalog, EventRuleDraft, InAppDraft, InAppText, MessageDraft, Rules, RulesDraft, StepDraft,
};
use crate::domain::ids::TenantId;
use crate::domain::template::{Bilingual, Template, TemplateDraft, TemplateText};

/// The shipped rules and texts, compiled in.
pub const DEFAULT_RULES: &str = include_str!("../../config/rules.toml");
pub const DEFAULT_TEMPLATES: &str = include_str!("../../config/templates.toml");

/// `[events]` in tidings.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsSection {
    /// Empty: the shipped config/rules.toml.
    pub rules_path: String,
    /// Empty: the shipped config/templates.toml.
    pub templates_path: String,
    /// The clinic's IANA time zone: reminder texts show local dates and times.
    pub timezone: String,
    /// `{clinic}` when an event names no clinic.
    pub clinic_name_en: String,
    pub clinic_name_ar: String,
    /// Per-tenant overrides: `[events.tenants.<tenant>]`.
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantEventsSection>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TenantEventsSection {
    pub rules_path: Option<String>,
    pub timezone: Option<String>,
    pub clinic_name_en: Option<String>,
    pub clinic_name_ar: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    link: String,
    reminders: ReminderFile,
    #[serde(default)]
    events: BTreeMap<String, EventFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReminderFile {
    offsets_minutes: Vec<i64>,
    template: String,
    channels: Vec<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EventFile {
    #[serde(default)]
    reminders: String,
    #[serde(default)]
    in_app: Vec<InAppFile>,
    #[serde(default)]
    messages: Vec<MessageFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InAppFile {
    to: String,
    text: String,
    #[serde(rename = "type")]
    kind: String,
    category: String,
    priority: Option<String>,
    #[serde(default)]
    escalate: Vec<StepFile>,
}

/// `{ after_s = 600, to = { role = "front_desk" } }` (or `to = { user_id = "u-1" }`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    after_s: Option<i64>,
    to: StepToFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepToFile {
    user_id: Option<String>,
    role: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageFile {
    to: String,
    template: String,
    channels: Vec<String>,
    kind: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplatesFile {
    #[serde(default)]
    templates: BTreeMap<String, TemplateFile>,
    #[serde(default)]
    in_app: BTreeMap<String, InAppTextFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    channel: String,
    kind: String,
    body_en: String,
    body_ar: String,
    subject_en: Option<String>,
    subject_ar: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InAppTextFile {
    title_en: String,
    title_ar: String,
    message_en: String,
    message_ar: String,
}

/// The default texts: channel templates (seeded into tenants) and in-app texts.
#[derive(Debug, Clone)]
pub struct TextCatalog {
    pub templates: BTreeMap<String, Template>,
    pub in_app: BTreeMap<String, InAppText>,
}

/// One tenant's (or the default) rules with their time zone and clinic name.
#[derive(Debug, Clone)]
pub struct TenantRules {
    pub rules: Rules,
    pub tz: Tz,
    pub clinic: ClinicName,
}

/// Everything the events service needs from configuration.
#[derive(Debug, Clone)]
pub struct EventsBook {
    pub texts: Arc<TextCatalog>,
    pub default: Arc<TenantRules>,
    pub tenants: HashMap<TenantId, Arc<TenantRules>>,
}

impl EventsBook {
    pub fn for_tenant(&self, tenant: &TenantId) -> &Arc<TenantRules> {
        self.tenants.get(tenant).unwrap_or(&self.default)
    }
}

fn read(kind: &str, path: &str, embedded: &'static str) -> Result<(String, String), ConfigError> {
    if path.is_empty() {
        return Ok((format!("(shipped {kind})"), embedded.to_owned()));
    }
    std::fs::read_to_string(Path::new(path))
        .map(|text| (path.to_owned(), text))
        .map_err(|e| ConfigError(format!("cannot read {kind} file {path}: {e}")))
}

fn parse_toml<T: for<'de> Deserialize<'de>>(name: &str, text: &str) -> Result<T, ConfigError> {
    Figment::from(Toml::string(text)).extract().map_err(|e| {
        let key = e.path.join(".");
        ConfigError(format!("{name}: key `{key}`: {e}"))
    })
}

/// Variables a template declares: every placeholder its texts use, in order.
fn declared(texts: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in texts {
        if let Ok(parsed) = TemplateText::parse("text", t) {
            for p in parsed.placeholders() {
                if !out.iter().any(|o| o == p) {
                    out.push(p.to_owned());
                }
            }
        }
    }
    out
}

/// Parses and validates a templates file.
pub fn load_texts(path: &str) -> Result<TextCatalog, ConfigError> {
    let (name, text) = read("templates", path, DEFAULT_TEMPLATES)?;
    let file: TemplatesFile = parse_toml(&name, &text)?;
    let mut templates = BTreeMap::new();
    for (key, t) in file.templates {
        let texts: Vec<&str> = [
            Some(&t.body_en),
            Some(&t.body_ar),
            t.subject_en.as_ref(),
            t.subject_ar.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
        let draft = TemplateDraft {
            name: key.clone(),
            channel: t.channel.clone(),
            kind: t.kind.clone(),
            variables: declared(&texts),
            body_en: t.body_en,
            body_ar: t.body_ar,
            subject_en: t.subject_en,
            subject_ar: t.subject_ar,
            is_active: true,
        };
        let template = Template::create(draft)
            .map_err(|e| ConfigError(format!("{name}: templates.\"{key}\".{e}")))?;
        templates.insert(key, template);
    }
    let mut in_app = BTreeMap::new();
    for (key, t) in file.in_app {
        let parse = |field: &str, raw: &str| {
            TemplateText::parse(field, raw)
                .map_err(|e| ConfigError(format!("{name}: in_app.\"{key}\".{e}")))
        };
        in_app.insert(
            key.clone(),
            InAppText {
                title: Bilingual {
                    en: parse("title_en", &t.title_en)?,
                    ar: parse("title_ar", &t.title_ar)?,
                },
                message: Bilingual {
                    en: parse("message_en", &t.message_en)?,
                    ar: parse("message_ar", &t.message_ar)?,
                },
            },
        );
    }
    Ok(TextCatalog { templates, in_app })
}

/// Parses and validates a rules file against the texts.
pub fn load_rules(path: &str, texts: &TextCatalog) -> Result<Rules, ConfigError> {
    let (name, text) = read("rules", path, DEFAULT_RULES)?;
    let file: RulesFile = parse_toml(&name, &text)?;
    let draft = RulesDraft {
        events: file
            .events
            .into_iter()
            .map(|(k, e)| {
                (
                    k,
                    EventRuleDraft {
                        reminders: e.reminders,
                        in_app: e
                            .in_app
                            .into_iter()
                            .map(|a| InAppDraft {
                                to: a.to,
                                text: a.text,
                                kind: a.kind,
                                category: a.category,
                                priority: a.priority,
                                escalate: a
                                    .escalate
                                    .into_iter()
                                    .map(|s| StepDraft {
                                        after_s: s.after_s,
                                        user_id: s.to.user_id,
                                        role: s.to.role,
                                    })
                                    .collect(),
                            })
                            .collect(),
                        messages: e
                            .messages
                            .into_iter()
                            .map(|m| MessageDraft {
                                to: m.to,
                                template: m.template,
                                channels: m.channels,
                                kind: m.kind,
                            })
                            .collect(),
                    },
                )
            })
            .collect(),
        reminder_offsets_minutes: file.reminders.offsets_minutes,
        reminder_template: file.reminders.template,
        reminder_channels: file.reminders.channels,
        link: file.link,
    };
    Rules::build(
        &draft,
        &Catalog {
            templates: &texts.templates,
            in_app: &texts.in_app,
        },
    )
    .map_err(|e| ConfigError(format!("{name}: {e}")))
}

fn timezone(key: &str, raw: &str) -> Result<Tz, ConfigError> {
    raw.parse::<Tz>().map_err(|_| {
        ConfigError(format!(
            "key `{key}`: unknown time zone {raw:?} (IANA name, e.g. Asia/Riyadh)"
        ))
    })
}

/// Loads and validates everything `[events]` names.
pub fn load(section: &EventsSection) -> Result<EventsBook, ConfigError> {
    let texts = Arc::new(load_texts(&section.templates_path)?);
    let clinic = ClinicName {
        en: section.clinic_name_en.clone(),
        ar: section.clinic_name_ar.clone(),
    };
    let default_rules = load_rules(&section.rules_path, &texts)?;
    let default = Arc::new(TenantRules {
        rules: default_rules,
        tz: timezone("events.timezone", &section.timezone)?,
        clinic: clinic.clone(),
    });
    let mut tenants = HashMap::new();
    for (id, t) in &section.tenants {
        let key = format!("events.tenants.{id}");
        let tenant =
            TenantId::parse(id).map_err(|e| ConfigError(format!("key `{key}`: {}", e.message)))?;
        let rules = match &t.rules_path {
            Some(p) => load_rules(p, &texts)?,
            None => default.rules.clone(),
        };
        let tz = match &t.timezone {
            Some(z) => timezone(&format!("{key}.timezone"), z)?,
            None => default.tz,
        };
        tenants.insert(
            tenant,
            Arc::new(TenantRules {
                rules,
                tz,
                clinic: ClinicName {
                    en: t
                        .clinic_name_en
                        .clone()
                        .unwrap_or_else(|| clinic.en.clone()),
                    ar: t
                        .clinic_name_ar
                        .clone()
                        .unwrap_or_else(|| clinic.ar.clone()),
                },
            }),
        );
    }
    Ok(EventsBook {
        texts,
        default,
        tenants,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clinic_event::EventType;
    use crate::domain::clinic_rules::{Recipient, ReminderEffect};
    use crate::domain::template::Channel;

    #[test]
    fn shipped_rules_reproduce_the_seed_table() {
        let texts = load_texts("").unwrap();
        let rules = load_rules("", &texts).unwrap();
        let summary = |k: EventType| {
            let r = rules.rule(k);
            let mut out: Vec<String> = r
                .in_app
                .iter()
                .map(|a| format!("{:?}:in_app", a.to))
                .collect();
            out.extend(r.messages.iter().map(|m| {
                let ch: Vec<&str> = m.channels.iter().map(|c| c.as_str()).collect();
                format!("{:?}:{}", m.to, ch.join("/"))
            }));
            out
        };
        assert_eq!(
            summary(EventType::Booked),
            ["Provider:in_app", "Provider:email"]
        );
        assert_eq!(
            summary(EventType::Confirmed),
            ["Patient:in_app", "Patient:sms/whatsapp", "Patient:email"]
        );
        assert_eq!(
            summary(EventType::Rescheduled),
            [
                "Patient:in_app",
                "Provider:in_app",
                "Patient:sms/whatsapp",
                "Patient:email",
                "Provider:email"
            ]
        );
        assert_eq!(summary(EventType::Arrived), ["Provider:in_app"]);
        assert!(rules.rule(EventType::InProgress).is_log_only());
        assert_eq!(summary(EventType::Completed), ["Patient:email"]);
        assert_eq!(
            summary(EventType::Cancelled),
            summary(EventType::Rescheduled)
        );
        assert_eq!(
            summary(EventType::NoShow),
            [
                "Patient:in_app",
                "Provider:in_app",
                "Patient:email",
                "Provider:email"
            ]
        );
        assert_eq!(
            rules.rule(EventType::Booked).reminders,
            ReminderEffect::Schedule
        );
        assert_eq!(
            rules.rule(EventType::Cancelled).reminders,
            ReminderEffect::Cancel
        );
        assert_eq!(
            rules.reminders.offsets,
            [chrono::Duration::hours(24), chrono::Duration::hours(2)]
        );
        assert_eq!(rules.reminders.action.channels, Channel::FALLBACK_ORDER);
        assert_eq!(rules.reminders.action.to, Recipient::Patient);
        // Every template a rule can use ships in both languages.
        for name in rules.template_names() {
            assert!(texts.templates.contains_key(&name), "{name}");
        }
        assert_eq!(rules.template_names().len(), texts.templates.len());
    }

    #[test]
    fn a_bad_rule_is_named() {
        let texts = load_texts("").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.toml");
        let bad = DEFAULT_RULES.replace(
            "template = \"appointment.completed\", channels = [\"email\"]",
            "template = \"appointment.completed\", channels = [\"sms\"]",
        );
        std::fs::write(&path, bad).unwrap();
        let err = load_rules(path.to_str().unwrap(), &texts)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rule events.completed.messages[0].template")
                && err.contains("appointment.completed.sms"),
            "{err}"
        );
        let missing = DEFAULT_RULES.replace("[events.in_progress]", "[events.in_progres]");
        std::fs::write(&path, missing).unwrap();
        let err = load_rules(path.to_str().unwrap(), &texts)
            .unwrap_err()
            .to_string();
        assert!(err.contains("rule events.in_progres"), "{err}");
    }

    #[test]
    fn arrivals_escalate_to_the_front_desk_and_bad_steps_are_named() {
        use crate::domain::escalation::{EscalationStep, EscalationTarget};
        use crate::domain::priority::Priority;
        let texts = load_texts("").unwrap();
        let rules = load_rules("", &texts).unwrap();
        let arrived = &rules.rule(EventType::Arrived).in_app[0];
        assert_eq!(arrived.priority, Priority::High);
        assert_eq!(
            arrived.escalate,
            [EscalationStep {
                after_secs: 600,
                to: EscalationTarget::Role(crate::domain::auth::Role::FrontDesk)
            }]
        );
        let booked = &rules.rule(EventType::Booked).in_app[0];
        assert_eq!(
            (booked.priority, booked.escalate.len()),
            (Priority::Normal, 0)
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.toml");
        for (from, to, named) in [
            (
                "after_s = 600",
                "after_s = 0",
                "rule events.arrived.in_app[0].escalate[0].after_s",
            ),
            (
                "{ role = \"front_desk\" }",
                "{ role = \"janitor\" }",
                "rule events.arrived.in_app[0].escalate[0].to.role",
            ),
            (
                "priority = \"high\"",
                "priority = \"urgent\"",
                "rule events.arrived.in_app[0].priority",
            ),
        ] {
            assert!(DEFAULT_RULES.contains(from), "{from}");
            std::fs::write(&path, DEFAULT_RULES.replace(from, to)).unwrap();
            let err = load_rules(path.to_str().unwrap(), &texts)
                .unwrap_err()
                .to_string();
            assert!(err.contains(named), "{err}");
        }
    }
}

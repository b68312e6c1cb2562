//! Message templates: bilingual text with `{name}` placeholders, and the
//! vocabulary (channel, kind, language) messages are described with.
//!
//! A template's text is parsed when the template is built, so a stored template is
//! known to be well-formed; rendering then only substitutes values. Rendering never
//! produces a silent blank: a placeholder without a value is an error that names
//! every offending variable at once, so the clinic fixes them in one round trip.
//!
//! Text is copied byte for byte: no Unicode normalisation, no trimming, so Arabic
//! right-to-left marks (U+200F), diacritics (tashkeel) and joiners survive intact.

use std::collections::BTreeMap;
use std::fmt;

use super::Invalid;

/// A channel an outbound message travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Sms,
    Whatsapp,
    Email,
}

impl Channel {
    /// Every channel, in the contract's fallback order: SMS → WhatsApp → email.
    pub const FALLBACK_ORDER: [Channel; 3] = [Channel::Sms, Channel::Whatsapp, Channel::Email];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Whatsapp => "whatsapp",
            Channel::Email => "email",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::FALLBACK_ORDER
            .into_iter()
            .find(|c| c.as_str() == raw)
            .ok_or_else(|| Invalid::new("channel", "must be one of sms, whatsapp, email"))
    }

    /// Whether this channel needs a phone number (else an email address).
    pub fn uses_phone(self) -> bool {
        matches!(self, Channel::Sms | Channel::Whatsapp)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a message is about; patients switch kinds on and off.
///
/// The first five are the contract's preference keys. `AppointmentUpdate` covers the
/// seed's rescheduling, cancellation, no-show and completion notices: transactional
/// messages about an appointment the patient has, which are not reminders or
/// confirmations and must not be silenced by turning reminders off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageKind {
    AppointmentReminder,
    AppointmentConfirmation,
    AppointmentUpdate,
    Results,
    Billing,
    Marketing,
}

impl MessageKind {
    pub const ALL: [MessageKind; 6] = [
        MessageKind::AppointmentReminder,
        MessageKind::AppointmentConfirmation,
        MessageKind::AppointmentUpdate,
        MessageKind::Results,
        MessageKind::Billing,
        MessageKind::Marketing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::AppointmentReminder => "appointment_reminder",
            MessageKind::AppointmentConfirmation => "appointment_confirmation",
            MessageKind::AppointmentUpdate => "appointment_update",
            MessageKind::Results => "results",
            MessageKind::Billing => "billing",
            MessageKind::Marketing => "marketing",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == raw)
            .ok_or_else(|| {
                Invalid::new(
                    "kind",
                    "must be one of appointment_reminder, appointment_confirmation, \
                     appointment_update, results, billing, marketing",
                )
            })
    }

    /// Whether a patient with no stored preference for this kind receives it.
    /// Marketing is opt-in; everything else is care-related and on by default.
    pub fn enabled_by_default(self) -> bool {
        !matches!(self, MessageKind::Marketing)
    }

    /// The subject of an email whose text has none (free text, or a template that
    /// declares no subject): what kind of message it is and who sends it, in the
    /// reader's language (`clinic` is the clinic's name in that language). An email
    /// without a subject looks like spam to patients and to filters alike.
    pub fn default_subject(self, language: Language, clinic: &str) -> String {
        let (en, ar) = match self {
            MessageKind::AppointmentReminder => ("Appointment reminder", "تذكير بالموعد"),
            MessageKind::AppointmentConfirmation => ("Appointment confirmation", "تأكيد الموعد"),
            MessageKind::AppointmentUpdate => ("Appointment update", "تحديث الموعد"),
            MessageKind::Results => ("Results", "نتائج"),
            MessageKind::Billing => ("Billing", "الفواتير"),
            MessageKind::Marketing => ("News", "أخبار"),
        };
        match language {
            Language::En => format!("{en} from {clinic}"),
            Language::Ar => format!("{ar} من {clinic}"),
        }
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The language a patient reads; every template carries both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Language {
    #[default]
    En,
    Ar,
}

impl Language {
    /// The ISO 639-1 code, also WhatsApp's template language code.
    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Ar => "ar",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw {
            "en" => Ok(Language::En),
            "ar" => Ok(Language::Ar),
            _ => Err(Invalid::new("language", "must be en or ar")),
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A template's name: what messages, rules and WhatsApp (whose approved templates
/// are looked up by name) refer to it by. Lower-case ASCII, digits, `_`, `-`, `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TemplateName(String);

const TEMPLATE_NAME_MAX_LEN: usize = 100;

impl TemplateName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let ok = !raw.is_empty()
            && raw.len() <= TEMPLATE_NAME_MAX_LEN
            && raw.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
            });
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Invalid::new(
                "name",
                "must be 1 to 100 of a-z, 0-9, _ - . (e.g. appointment_reminder_24h)",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TemplateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest template text (body or subject), in bytes. Twilio caps a body at 1,600
/// characters; email bodies may be longer, but a template is not a newsletter engine.
pub const TEMPLATE_TEXT_MAX_LEN: usize = 16 * 1024;

/// One piece of a parsed template text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Variable(String),
}

/// A template text, parsed: literal runs (with `{{` and `}}` already unescaped) and
/// `{name}` placeholders. `name` is `[a-z_][a-z0-9_]*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateText {
    raw: String,
    segments: Vec<Segment>,
}

impl TemplateText {
    /// Parses `raw`. `field` names the text in errors (`body_ar`, `subject_en`).
    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        if raw.len() > TEMPLATE_TEXT_MAX_LEN {
            return Err(Invalid::new(field, "is longer than 16384 bytes"));
        }
        let mut segments = Vec::new();
        let mut literal = String::new();
        let bytes = raw.as_bytes();
        let mut i = 0;
        // `{` and `}` are ASCII, so byte positions next to them are always char
        // boundaries: slicing `raw` there never splits an Arabic character.
        let mut run_start = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'{' if bytes.get(i + 1) == Some(&b'{') => {
                    literal.push_str(&raw[run_start..i]);
                    literal.push('{');
                    i += 2;
                    run_start = i;
                }
                b'}' if bytes.get(i + 1) == Some(&b'}') => {
                    literal.push_str(&raw[run_start..i]);
                    literal.push('}');
                    i += 2;
                    run_start = i;
                }
                b'{' => {
                    literal.push_str(&raw[run_start..i]);
                    let close = raw[i + 1..].find('}').map(|at| i + 1 + at).ok_or_else(|| {
                        Invalid::new(
                            field,
                            format!("has a {{ at byte {i} that is never closed (write {{{{ for a literal brace)"),
                        )
                    })?;
                    let name = &raw[i + 1..close];
                    if !is_variable_name(name) {
                        return Err(Invalid::new(
                            field,
                            format!(
                                "has a placeholder {{{name}}} that is not a variable name \
                                 (a-z, 0-9, _; write {{{{ for a literal brace)"
                            ),
                        ));
                    }
                    if !literal.is_empty() {
                        segments.push(Segment::Literal(std::mem::take(&mut literal)));
                    }
                    segments.push(Segment::Variable(name.to_owned()));
                    i = close + 1;
                    run_start = i;
                }
                b'}' => {
                    return Err(Invalid::new(
                        field,
                        format!("has a }} at byte {i} without a matching {{ (write }}}} for a literal brace)"),
                    ));
                }
                _ => i += 1,
            }
        }
        literal.push_str(&raw[run_start..]);
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(Self {
            raw: raw.to_owned(),
            segments,
        })
    }

    /// The text as written (escapes included): what is stored.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Every variable name the text uses, in order of first appearance.
    pub fn placeholders(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        for s in &self.segments {
            if let Segment::Variable(name) = s {
                if !seen.contains(&name.as_str()) {
                    seen.push(name);
                }
            }
        }
        seen
    }

    /// Renders this one text on its own (the clinic-events in-app titles and
    /// messages, which are not channel templates). `Err` lists every placeholder
    /// without a value, in order of first appearance.
    pub fn render_text(&self, values: &BTreeMap<String, String>) -> Result<String, Vec<String>> {
        let missing: Vec<String> = self
            .placeholders()
            .into_iter()
            .filter(|p| !values.contains_key(*p))
            .map(str::to_owned)
            .collect();
        if missing.is_empty() {
            Ok(self.substitute(values))
        } else {
            Err(missing)
        }
    }

    /// Substitutes values. The caller has checked that every placeholder has one.
    fn substitute(&self, values: &BTreeMap<String, String>) -> String {
        let mut out = String::with_capacity(self.raw.len());
        for s in &self.segments {
            match s {
                Segment::Literal(text) => out.push_str(text),
                Segment::Variable(name) => out.push_str(&values[name]),
            }
        }
        out
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A text in both languages. English and Arabic are both required: a patient's
/// language must never select an empty text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bilingual {
    pub en: TemplateText,
    pub ar: TemplateText,
}

impl Bilingual {
    pub fn get(&self, language: Language) -> &TemplateText {
        match language {
            Language::En => &self.en,
            Language::Ar => &self.ar,
        }
    }
}

/// What a client supplies to create or edit a template, before validation.
#[derive(Debug, Clone, Default)]
pub struct TemplateDraft {
    pub name: String,
    pub channel: String,
    pub kind: String,
    pub body_en: String,
    pub body_ar: String,
    pub subject_en: Option<String>,
    pub subject_ar: Option<String>,
    pub variables: Vec<String>,
    pub is_active: bool,
}

/// A validated template version. Editing produces a new version
/// ([`Template::revise`]); a message records the version it was rendered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub name: TemplateName,
    pub channel: Channel,
    pub kind: MessageKind,
    pub body: Bilingual,
    /// Email only (and required there); SMS and WhatsApp have no subject line.
    pub subject: Option<Bilingual>,
    /// The declared variables, in declared order. Order matters for WhatsApp,
    /// whose approved templates take positional parameters `{{1}}`, `{{2}}`, ….
    pub variables: Vec<String>,
    pub is_active: bool,
    /// 1 for a new template, +1 per edit.
    pub version: u32,
}

/// Most variables one template may declare.
const MAX_VARIABLES: usize = 50;

impl Template {
    /// Validates a draft into version 1 of a template.
    pub fn create(draft: TemplateDraft) -> Result<Self, Invalid> {
        Self::build(draft, 1)
    }

    /// Validates an edit of `self` into the next version. The name is the template's
    /// identity and cannot change.
    pub fn revise(&self, draft: TemplateDraft) -> Result<Self, Invalid> {
        if draft.name != self.name.as_str() {
            return Err(Invalid::new("name", "cannot change; create a new template"));
        }
        Self::build(draft, self.version + 1)
    }

    fn build(draft: TemplateDraft, version: u32) -> Result<Self, Invalid> {
        let name = TemplateName::parse(&draft.name)?;
        let channel = Channel::parse(&draft.channel)?;
        let kind = MessageKind::parse(&draft.kind)?;
        let body = Bilingual {
            en: TemplateText::parse("body_en", &draft.body_en)?,
            ar: TemplateText::parse("body_ar", &draft.body_ar)?,
        };
        for (field, text) in [("body_en", &body.en), ("body_ar", &body.ar)] {
            if text.as_str().trim().is_empty() {
                return Err(Invalid::new(field, "must not be empty"));
            }
        }
        let subject = match (channel, draft.subject_en, draft.subject_ar) {
            (Channel::Email, Some(en), Some(ar)) => {
                let s = Bilingual {
                    en: TemplateText::parse("subject_en", &en)?,
                    ar: TemplateText::parse("subject_ar", &ar)?,
                };
                for (field, text) in [("subject_en", &s.en), ("subject_ar", &s.ar)] {
                    if text.as_str().trim().is_empty() {
                        return Err(Invalid::new(field, "must not be empty"));
                    }
                    if text.as_str().contains(['\r', '\n']) {
                        return Err(Invalid::new(field, "must be one line"));
                    }
                }
                Some(s)
            }
            (Channel::Email, None, _) => {
                return Err(Invalid::new(
                    "subject_en",
                    "is required for email templates",
                ))
            }
            (Channel::Email, _, None) => {
                return Err(Invalid::new(
                    "subject_ar",
                    "is required for email templates",
                ))
            }
            (_, None, None) => None,
            (_, Some(_), _) => {
                return Err(Invalid::new(
                    "subject_en",
                    "only email templates have a subject",
                ))
            }
            (_, None, Some(_)) => {
                return Err(Invalid::new(
                    "subject_ar",
                    "only email templates have a subject",
                ))
            }
        };
        if draft.variables.len() > MAX_VARIABLES {
            return Err(Invalid::new("variables", "at most 50 variables"));
        }
        for (i, v) in draft.variables.iter().enumerate() {
            if !is_variable_name(v) {
                return Err(Invalid::new(
                    format!("variables[{i}]"),
                    "must be a variable name: a-z, 0-9, _ (not starting with a digit)",
                ));
            }
            if draft.variables[..i].contains(v) {
                return Err(Invalid::new(
                    format!("variables[{i}]"),
                    format!("{v} is declared twice"),
                ));
            }
        }
        let template = Template {
            name,
            channel,
            kind,
            body,
            subject,
            variables: draft.variables,
            is_active: draft.is_active,
            version,
        };
        // Every placeholder, in every text, must be declared: a typo such as
        // {patient_nmae} is caught when the template is saved, not when a patient
        // would have received a blank.
        let undeclared = template.undeclared_placeholders();
        if !undeclared.is_empty() {
            return Err(Invalid::new(
                "variables",
                format!(
                    "not declared but used in the text: {}",
                    undeclared.join(", ")
                ),
            ));
        }
        Ok(template)
    }

    fn texts(&self) -> impl Iterator<Item = &TemplateText> {
        let subject = self.subject.iter().flat_map(|s| [&s.en, &s.ar]);
        [&self.body.en, &self.body.ar].into_iter().chain(subject)
    }

    fn undeclared_placeholders(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for text in self.texts() {
            for name in text.placeholders() {
                if !self.variables.iter().any(|v| v == name) && !out.iter().any(|o| o == name) {
                    out.push(name.to_owned());
                }
            }
        }
        out
    }

    /// Renders the subject (email) and body in `language`.
    ///
    /// Every declared variable is required, whether or not this language's text
    /// uses it (the two texts say the same thing; a value missing for one language is
    /// a bug in the caller). Values for names the template does not declare are
    /// ignored, so a caller such as the clinic-events rules can pass one set of
    /// appointment facts to many templates. Values are inserted verbatim.
    pub fn render(
        &self,
        language: Language,
        values: &BTreeMap<String, String>,
    ) -> Result<Rendered, RenderError> {
        let missing: Vec<String> = self
            .variables
            .iter()
            .filter(|v| !values.contains_key(*v))
            .cloned()
            .collect();
        // Templates built by `create` have none; this guards templates loaded from
        // data written by an older version with looser rules.
        let undeclared = self.undeclared_placeholders();
        if !missing.is_empty() || !undeclared.is_empty() {
            return Err(RenderError {
                missing,
                undeclared,
            });
        }
        Ok(Rendered {
            subject: self
                .subject
                .as_ref()
                .map(|s| s.get(language).substitute(values)),
            body: self.body.get(language).substitute(values),
        })
    }

    /// The declared variables' values in declared order: WhatsApp's positional
    /// template parameters. Call after a successful [`Template::render`].
    pub fn positional_values(&self, values: &BTreeMap<String, String>) -> Vec<String> {
        self.variables
            .iter()
            .map(|v| values.get(v).cloned().unwrap_or_default())
            .collect()
    }
}

/// A rendered message text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: Option<String>,
    pub body: String,
}

/// Why rendering failed, naming every offending variable (sorted as declared /
/// as first used), so one 422 lists them all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct RenderError {
    /// Declared variables that were given no value.
    pub missing: Vec<String>,
    /// Placeholders in the text that the template does not declare.
    pub undeclared: Vec<String>,
}

impl RenderError {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!("missing variables: {}", self.missing.join(", ")));
        }
        if !self.undeclared.is_empty() {
            parts.push(format!(
                "undeclared variables: {}",
                self.undeclared.join(", ")
            ));
        }
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_subjects_name_the_kind_and_the_clinic_in_the_language() {
        use super::{Language, MessageKind};
        assert_eq!(
            MessageKind::Results.default_subject(Language::En, "Nour Clinic"),
            "Results from Nour Clinic"
        );
        assert_eq!(
            MessageKind::Billing.default_subject(Language::Ar, "عيادة نور"),
            "الفواتير من عيادة نور"
        );
        for kind in MessageKind::ALL {
            for language in [Language::En, Language::Ar] {
                let s = kind.default_subject(language, "C");
                assert!(
                    s.ends_with(" C") && !s.contains('\n'),
                    "{kind} {language}: {s}"
                );
            }
        }
    }

    use super::*;

    fn draft() -> TemplateDraft {
        TemplateDraft {
            name: "appointment_reminder_24h".into(),
            channel: "sms".into(),
            kind: "appointment_reminder".into(),
            body_en:
                "Hi {patient_name}, your appointment with {provider_name} is on {date} at {time}."
                    .into(),
            body_ar:
                "\u{200F}مرحباً {patient_name}، موعدك مع {provider_name} يوم {date} الساعة {time}."
                    .into(),
            subject_en: None,
            subject_ar: None,
            variables: vec![
                "patient_name".into(),
                "provider_name".into(),
                "date".into(),
                "time".into(),
            ],
            is_active: true,
        }
    }

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn renders_both_languages() {
        let t = Template::create(draft()).unwrap();
        assert_eq!(t.version, 1);
        let v = values(&[
            ("patient_name", "Ahmed Al-Saud"),
            ("provider_name", "Dr. Sara"),
            ("date", "2025-11-15"),
            ("time", "10:00 AM"),
        ]);
        let en = t.render(Language::En, &v).unwrap();
        assert_eq!(
            en,
            Rendered {
                subject: None,
                body:
                    "Hi Ahmed Al-Saud, your appointment with Dr. Sara is on 2025-11-15 at 10:00 AM."
                        .into()
            }
        );
        let ar = t.render(Language::Ar, &v).unwrap();
        assert_eq!(
            ar.body,
            "\u{200F}مرحباً Ahmed Al-Saud، موعدك مع Dr. Sara يوم 2025-11-15 الساعة 10:00 AM."
        );
    }

    #[test]
    fn arabic_text_and_values_are_byte_exact() {
        // RLM, ALM, tashkeel (fatha, shadda, kasra, sukun, tanween), tatweel, ZWJ/ZWNJ.
        let body_ar =
            "\u{200F}عَزِيزِي {patient_name}،\u{061C} مَوْعِدُكَ غَدًا ـ شُكْرًا\u{200D}\u{200C} {{مرحبا}}";
        let d = TemplateDraft {
            body_ar: body_ar.into(),
            variables: vec![
                "patient_name".into(),
                "provider_name".into(),
                "date".into(),
                "time".into(),
            ],
            ..draft()
        };
        let t = Template::create(d).unwrap();
        assert_eq!(t.body.ar.as_str().as_bytes(), body_ar.as_bytes());
        let name = "مُحَمَّد\u{200F} الْعُتَيْبِيّ";
        let v = values(&[
            ("patient_name", name),
            ("provider_name", "x"),
            ("date", "x"),
            ("time", "x"),
        ]);
        let out = t.render(Language::Ar, &v).unwrap().body;
        let expected =
            format!("\u{200F}عَزِيزِي {name}،\u{061C} مَوْعِدُكَ غَدًا ـ شُكْرًا\u{200D}\u{200C} {{مرحبا}}");
        assert_eq!(out.as_bytes(), expected.as_bytes());
    }

    #[test]
    fn missing_variables_are_all_named() {
        let t = Template::create(draft()).unwrap();
        let err = t
            .render(
                Language::En,
                &values(&[("patient_name", "A"), ("unrelated", "x")]),
            )
            .unwrap_err();
        assert_eq!(
            err,
            RenderError {
                missing: vec!["provider_name".into(), "date".into(), "time".into()],
                undeclared: vec![]
            }
        );
        assert_eq!(
            err.to_string(),
            "missing variables: provider_name, date, time"
        );
    }

    #[test]
    fn an_empty_value_is_a_value() {
        let t = Template::create(TemplateDraft {
            body_en: "A{x}B".into(),
            body_ar: "ا{x}ب".into(),
            variables: vec!["x".into()],
            ..draft()
        })
        .unwrap();
        assert_eq!(
            t.render(Language::En, &values(&[("x", "")])).unwrap().body,
            "AB"
        );
    }

    #[test]
    fn undeclared_placeholders_are_all_named_at_creation() {
        let err = Template::create(TemplateDraft {
            body_en: "Hi {patient_name} {clinic} {date}".into(),
            body_ar: "{patient_nmae} {clinic}".into(),
            variables: vec!["patient_name".into()],
            ..draft()
        })
        .unwrap_err();
        assert_eq!(
            err,
            Invalid::new(
                "variables",
                "not declared but used in the text: clinic, date, patient_nmae"
            )
        );
    }

    #[test]
    fn render_reports_missing_and_undeclared_together() {
        // A template loaded from older data, bypassing `create`'s check.
        let mut t = Template::create(draft()).unwrap();
        t.body.en = TemplateText::parse("body_en", "{patient_name} {room} {floor}").unwrap();
        let err = t
            .render(Language::En, &values(&[("patient_name", "A")]))
            .unwrap_err();
        assert_eq!(err.missing, vec!["provider_name", "date", "time"]);
        assert_eq!(err.undeclared, vec!["room", "floor"]);
        assert_eq!(
            err.to_string(),
            "missing variables: provider_name, date, time; undeclared variables: room, floor"
        );
    }

    #[test]
    fn braces_escape_and_malformed_placeholders_are_refused() {
        let t = TemplateText::parse("body_en", "{{literal}} and {x} }} {{").unwrap();
        assert_eq!(t.placeholders(), vec!["x"]);
        assert_eq!(t.substitute(&values(&[("x", "V")])), "{literal} and V } {");
        assert_eq!(t.as_str(), "{{literal}} and {x} }} {{");

        let cases = [
            ("Hi {name", "has a { at byte 3 that is never closed (write {{ for a literal brace)"),
            ("Hi }", "has a } at byte 3 without a matching { (write }} for a literal brace)"),
            ("{Name}", "has a placeholder {Name} that is not a variable name (a-z, 0-9, _; write {{ for a literal brace)"),
            ("{}", "has a placeholder {} that is not a variable name (a-z, 0-9, _; write {{ for a literal brace)"),
            ("{1st}", "has a placeholder {1st} that is not a variable name (a-z, 0-9, _; write {{ for a literal brace)"),
            ("{ name }", "has a placeholder { name } that is not a variable name (a-z, 0-9, _; write {{ for a literal brace)"),
            ("{اسم}", "has a placeholder {اسم} that is not a variable name (a-z, 0-9, _; write {{ for a literal brace)"),
        ];
        for (raw, why) in cases {
            assert_eq!(
                TemplateText::parse("body_en", raw).unwrap_err(),
                Invalid::new("body_en", why),
                "input {raw:?}"
            );
        }
    }

    #[test]
    fn email_templates_need_one_line_subjects_others_have_none() {
        let email = TemplateDraft {
            channel: "email".into(),
            subject_en: Some("Reminder for {patient_name}".into()),
            subject_ar: Some("تذكير لـ {patient_name}".into()),
            ..draft()
        };
        let t = Template::create(email.clone()).unwrap();
        let v = values(&[
            ("patient_name", "Ali"),
            ("provider_name", "x"),
            ("date", "x"),
            ("time", "x"),
        ]);
        assert_eq!(
            t.render(Language::Ar, &v).unwrap().subject.as_deref(),
            Some("تذكير لـ Ali")
        );

        let no_subject = TemplateDraft {
            subject_ar: None,
            ..email.clone()
        };
        assert_eq!(
            Template::create(no_subject).unwrap_err(),
            Invalid::new("subject_ar", "is required for email templates")
        );
        let two_lines = TemplateDraft {
            subject_en: Some("a\r\nBcc: x".into()),
            ..email
        };
        assert_eq!(
            Template::create(two_lines).unwrap_err(),
            Invalid::new("subject_en", "must be one line")
        );
        let sms_subject = TemplateDraft {
            subject_en: Some("x".into()),
            ..draft()
        };
        assert_eq!(
            Template::create(sms_subject).unwrap_err(),
            Invalid::new("subject_en", "only email templates have a subject")
        );
    }

    #[test]
    fn draft_fields_are_validated_by_name() {
        let cases = [
            (
                TemplateDraft {
                    name: "Bad Name".into(),
                    ..draft()
                },
                "name",
            ),
            (
                TemplateDraft {
                    channel: "fax".into(),
                    ..draft()
                },
                "channel",
            ),
            (
                TemplateDraft {
                    kind: "spam".into(),
                    ..draft()
                },
                "kind",
            ),
            (
                TemplateDraft {
                    body_ar: "  ".into(),
                    ..draft()
                },
                "body_ar",
            ),
            (
                TemplateDraft {
                    variables: vec!["date".into(), "date".into()],
                    body_en: "{date}".into(),
                    body_ar: "{date}".into(),
                    ..draft()
                },
                "variables[1]",
            ),
            (
                TemplateDraft {
                    variables: vec!["Date".into()],
                    ..draft()
                },
                "variables[0]",
            ),
        ];
        for (d, field) in cases {
            assert_eq!(Template::create(d).unwrap_err().field, field);
        }
    }

    #[test]
    fn revise_bumps_the_version_and_keeps_the_name() {
        let t = Template::create(draft()).unwrap();
        let t2 = t
            .revise(TemplateDraft {
                is_active: false,
                ..draft()
            })
            .unwrap();
        assert_eq!((t2.version, t2.is_active), (2, false));
        assert_eq!(t2.revise(draft()).unwrap().version, 3);
        let renamed = TemplateDraft {
            name: "other".into(),
            ..draft()
        };
        assert_eq!(
            t.revise(renamed).unwrap_err(),
            Invalid::new("name", "cannot change; create a new template")
        );
    }

    #[test]
    fn positional_values_follow_declared_order() {
        let t = Template::create(draft()).unwrap();
        let v = values(&[
            ("time", "T"),
            ("date", "D"),
            ("patient_name", "P"),
            ("provider_name", "R"),
        ]);
        assert_eq!(t.positional_values(&v), vec!["P", "R", "D", "T"]);
    }

    #[test]
    fn vocabulary_round_trips() {
        for c in Channel::FALLBACK_ORDER {
            assert_eq!(Channel::parse(c.as_str()).unwrap(), c);
        }
        for k in MessageKind::ALL {
            assert_eq!(MessageKind::parse(k.as_str()).unwrap(), k);
        }
        assert_eq!(Language::parse("ar").unwrap(), Language::Ar);
        assert_eq!(Language::parse("AR").unwrap_err().field, "language");
        assert!(!MessageKind::Marketing.enabled_by_default());
        assert!(MessageKind::Results.enabled_by_default());
    }
}

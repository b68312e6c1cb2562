//! A patient's messaging preferences: channels and kinds on or off, language,
//! preferred channel, addresses (E.164 phone, validated email).

use std::collections::BTreeMap;

use serde_json::json;

use super::audit::{entry, Actor};
use super::Outbound;
use crate::domain::contact::{EmailAddress, PhoneNumber};
use crate::domain::ids::{PatientId, TenantId};
use crate::domain::message::{ChannelSwitches, KindSwitches, PatientPreferences};
use crate::domain::template::{Channel, Language, MessageKind};
use crate::domain::Invalid;
use crate::service::ServiceError;
use crate::store::outbound::ErasureCounts;

/// Preferences as a client sends them, before validation. Absent channels are on;
/// absent kinds take [`MessageKind::enabled_by_default`].
#[derive(Debug, Clone, Default)]
pub struct PreferencesDraft {
    pub phone: Option<String>,
    pub email: Option<String>,
    pub language: Option<String>,
    pub preferred_channel: Option<String>,
    pub channels: BTreeMap<String, bool>,
    pub kinds: BTreeMap<String, bool>,
}

/// Validates a draft; errors name the JSON path (`phone`, `channels.fax`, `kinds.spam`).
pub fn parse_preferences(draft: PreferencesDraft) -> Result<PatientPreferences, Invalid> {
    let phone = draft
        .phone
        .as_deref()
        .map(|p| PhoneNumber::parse_field("phone", p))
        .transpose()?;
    let email = draft
        .email
        .as_deref()
        .map(|e| EmailAddress::parse_field("email", e))
        .transpose()?;
    let language = draft
        .language
        .as_deref()
        .map(Language::parse)
        .transpose()?
        .unwrap_or_default();
    let preferred_channel = draft
        .preferred_channel
        .as_deref()
        .map(|c| Channel::parse(c).map_err(|e| Invalid::new("preferred_channel", e.message)))
        .transpose()?;
    let mut channels = ChannelSwitches::default();
    for (name, on) in &draft.channels {
        let c = Channel::parse(name)
            .map_err(|e| Invalid::new(format!("channels.{name}"), e.message))?;
        match c {
            Channel::Sms => channels.sms = *on,
            Channel::Whatsapp => channels.whatsapp = *on,
            Channel::Email => channels.email = *on,
        }
    }
    let mut kinds = KindSwitches::default();
    for (name, on) in &draft.kinds {
        let k = MessageKind::parse(name)
            .map_err(|e| Invalid::new(format!("kinds.{name}"), e.message))?;
        kinds.set(k, *on);
    }
    Ok(PatientPreferences {
        phone,
        email,
        language,
        preferred_channel,
        channels,
        kinds,
    })
}

impl Outbound {
    /// The stored preferences, or the defaults a message to this patient would use
    /// (`stored` says which).
    /// Audited as `read.patient` (a read of the patient's contact details).
    pub async fn patient_preferences(
        &self,
        tenant: &TenantId,
        patient: &PatientId,
        actor: &Actor,
    ) -> Result<(PatientPreferences, bool), ServiceError> {
        let found = match self.store.patient_preferences(tenant, patient).await? {
            Some(p) => (p, true),
            None => (PatientPreferences::default(), false),
        };
        let detail = json!({"stored": found.1});
        self.audit_read(
            tenant,
            actor,
            "read.patient",
            format!("patient:{patient}"),
            detail,
        )
        .await?;
        Ok(found)
    }

    /// Erases the patient's personal data everywhere the hub keeps it (preferences,
    /// message addresses and texts, clinic-event payloads, the texts of the staff
    /// notifications about them), cancelling what is still queued; the rows stay as
    /// anonymous counts. One transaction, audited as `patient.erased` with the counts.
    /// `NotFound` when the tenant holds nothing of the patient and never erased them; a
    /// repeat answers with zero counts.
    pub async fn erase_patient(
        &self,
        tenant: &TenantId,
        patient: &PatientId,
        actor: &Actor,
    ) -> Result<ErasureCounts, ServiceError> {
        let now = self.now();
        let audit = |c: &ErasureCounts| {
            entry(
                actor,
                "patient.erased",
                format!("patient:{patient}"),
                json!({"messages": c.messages, "cancelled": c.cancelled,
                       "events": c.events, "preferences": c.preferences,
                       "notifications": c.notifications}),
                now,
            )
        };
        self.store
            .erase_patient(tenant, patient, &audit, now)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// Replaces the patient's preferences (audited as `patient.preferences`).
    pub async fn put_patient_preferences(
        &self,
        tenant: &TenantId,
        patient: &PatientId,
        prefs: &PatientPreferences,
        actor: &Actor,
    ) -> Result<(), ServiceError> {
        let now = self.now();
        let channels: Vec<&str> = Channel::FALLBACK_ORDER
            .into_iter()
            .filter(|c| prefs.channels.get(*c))
            .map(Channel::as_str)
            .collect();
        let kinds_off: Vec<&str> = prefs
            .kinds
            .effective()
            .into_iter()
            .filter(|(_, on)| !on)
            .map(|(k, _)| k.as_str())
            .collect();
        // Addresses are personal data: the log says that they are set, not what they are.
        let audit = entry(
            actor,
            "patient.preferences",
            format!("patient:{patient}"),
            json!({"phone_set": prefs.phone.is_some(), "email_set": prefs.email.is_some(),
                   "language": prefs.language.code(),
                   "preferred_channel": prefs.preferred_channel.map(Channel::as_str),
                   "channels_on": channels, "kinds_off": kinds_off}),
            now,
        );
        Ok(self
            .store
            .put_patient_preferences(tenant, patient, prefs, Some(&audit), now)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drafts_validate_by_field() {
        let ok = parse_preferences(PreferencesDraft {
            phone: Some("+966501234567".into()),
            email: Some("p@clinic.example".into()),
            language: Some("ar".into()),
            preferred_channel: Some("whatsapp".into()),
            channels: [("email".to_owned(), false)].into(),
            kinds: [
                ("marketing".to_owned(), true),
                ("billing".to_owned(), false),
            ]
            .into(),
        })
        .unwrap();
        assert_eq!(ok.language, Language::Ar);
        assert_eq!(ok.preferred_channel, Some(Channel::Whatsapp));
        assert!(ok.channels.sms && ok.channels.whatsapp && !ok.channels.email);
        assert!(ok.kinds.get(MessageKind::Marketing) && !ok.kinds.get(MessageKind::Billing));
        assert!(ok.kinds.get(MessageKind::Results));

        let cases = [
            (
                PreferencesDraft {
                    phone: Some("0501234567".into()),
                    ..Default::default()
                },
                "phone",
            ),
            (
                PreferencesDraft {
                    email: Some("nope".into()),
                    ..Default::default()
                },
                "email",
            ),
            (
                PreferencesDraft {
                    language: Some("fr".into()),
                    ..Default::default()
                },
                "language",
            ),
            (
                PreferencesDraft {
                    preferred_channel: Some("fax".into()),
                    ..Default::default()
                },
                "preferred_channel",
            ),
            (
                PreferencesDraft {
                    channels: [("fax".to_owned(), true)].into(),
                    ..Default::default()
                },
                "channels.fax",
            ),
            (
                PreferencesDraft {
                    kinds: [("spam".to_owned(), true)].into(),
                    ..Default::default()
                },
                "kinds.spam",
            ),
        ];
        for (draft, field) in cases {
            assert_eq!(parse_preferences(draft).unwrap_err().field, field);
        }
    }
}

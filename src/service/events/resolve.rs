//! From a plan to the rows of the event's transaction: recipients resolved to
//! users (roles through the directory), each user's language, the tenant's
//! templates looked up and rendered.
//!
//! A template the rules need but the tenant no longer has (deleted), of another
//! channel, or that cannot be rendered with the event's variables fails the whole
//! event with 409 `template_unavailable` naming it: nothing is written, so the
//! clinic can fix the template and post the same event again.

use chrono::{DateTime, Utc};

use super::ClinicEvents;
use crate::domain::clinic_event::{AppointmentState, ClinicEvent, Disposition};
use crate::domain::clinic_plan::{language_of_locale, reminder_group, Plan, PlannedMessage};
use crate::domain::clinic_rules::Recipient;
use crate::domain::ids::{TenantId, UserId};
use crate::domain::message::{MessageId, MessageStatus};
use crate::domain::notification::{ContentInput, NotificationContent};
use crate::domain::template::Language;
use crate::service::ServiceError;
use crate::store::events::EventApplication;
use crate::store::outbound::{NewMessage, TemplateRef};
use crate::store::PublishRequest;

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

fn unavailable(message: String) -> ServiceError {
    ServiceError::Conflict {
        code: "template_unavailable",
        message,
    }
}

impl ClinicEvents {
    async fn users_for(
        &self,
        tenant: &TenantId,
        event: &ClinicEvent,
        to: Recipient,
    ) -> Result<Vec<UserId>, ServiceError> {
        let a = &event.appointment;
        Ok(match to {
            Recipient::Provider => vec![a.provider.id.clone()],
            // The patient portal's user has the patient's id (both are the clinic's ids).
            Recipient::Patient => vec![UserId::parse(a.patient.id.as_str())?],
            Recipient::Role(role) => self.directory.with_role(tenant, role).await?,
        })
    }

    async fn message(
        &self,
        tenant: &TenantId,
        event: &ClinicEvent,
        planned: &PlannedMessage,
    ) -> Result<NewMessage, ServiceError> {
        let name = &planned.template;
        let stored = self
            .store
            .template_by_name(tenant, name)
            .await?
            .ok_or_else(|| {
                unavailable(format!(
                    "the rules need template {name}, which this tenant does not have"
                ))
            })?;
        let t = &stored.template;
        if t.channel != planned.channel {
            return Err(unavailable(format!(
                "template {name} is a {} template, the rules send it by {}",
                t.channel, planned.channel
            )));
        }
        let rendered = t
            .render(planned.language, &planned.variables)
            .map_err(|e| unavailable(format!("template {name}: {e}")))?;
        let mut suppression = planned.suppression.clone();
        if suppression.is_none() && !t.is_active {
            suppression = Some((
                "template_inactive".to_owned(),
                format!("the template {name} is switched off"),
            ));
        }
        Ok(NewMessage {
            id: MessageId::new_random(),
            patient: (planned.to == Recipient::Patient)
                .then(|| event.appointment.patient.id.clone()),
            channel: planned.channel,
            to: planned.address.clone(),
            language: planned.language,
            kind: planned.kind,
            template: Some(TemplateRef {
                id: stored.id,
                name: name.clone(),
                version: t.version,
            }),
            variables: planned.variables.clone(),
            subject: rendered.subject,
            body: rendered.body,
            status: if suppression.is_some() {
                MessageStatus::Suppressed
            } else {
                MessageStatus::Queued
            },
            suppression,
            send_at: planned.send_at,
            group_key: planned.group_key.clone(),
            batch: None,
        })
    }

    pub(super) async fn resolve(
        &self,
        tenant: &TenantId,
        event: &ClinicEvent,
        plan: &Plan,
        state: Option<&AppointmentState>,
        payload: String,
        now: DateTime<Utc>,
    ) -> Result<EventApplication, ServiceError> {
        let a = &event.appointment;
        let mut recipients = Vec::with_capacity(plan.notifications.len());
        for n in &plan.notifications {
            recipients.push(self.users_for(tenant, event, n.to).await?);
        }
        let everyone: Vec<UserId> = recipients.iter().flatten().cloned().collect();
        let locales = self.store.user_locales(tenant, &everyone).await?;
        let data = serde_json::json!({
            "event_id": event.id.as_str(),
            "event_type": event.kind.as_str(),
            "appointment_id": a.id.as_str(),
            "appointment_number": a.number,
        })
        .to_string();
        let mut notifications = Vec::new();
        for (n, users) in plan.notifications.iter().zip(recipients) {
            for user in users {
                let language = match locales.get(&user) {
                    Some(l) => language_of_locale(Some(l)),
                    // A patient's portal user without a directory locale reads the
                    // patient's language.
                    None if n.to == Recipient::Patient => a.patient.language.unwrap_or_default(),
                    None => Language::En,
                };
                let (title, message) = match language {
                    Language::En => &n.en,
                    Language::Ar => &n.ar,
                };
                // A long patient name must not fail the event: clip to the contract's limit.
                let title = clip(title, crate::domain::notification::TITLE_MAX_CHARS);
                let content = NotificationContent::parse(ContentInput {
                    title: &title,
                    message,
                    kind: Some(n.kind.as_str()),
                    category: Some(&n.category),
                    related: Some(("appointment", a.id.as_str())),
                    link: Some(&n.link),
                    data_json: Some(data.clone()),
                    priority: Some(n.priority.as_str()),
                })
                .map_err(|e| ServiceError::Internal(format!("event notification: {e}")))?;
                let mut req = PublishRequest::new(tenant.clone(), vec![user], content, now);
                req.escalate = n.escalate.clone();
                notifications.push(req);
            }
        }
        let mut messages = Vec::with_capacity(plan.messages.len() + plan.reminders.len());
        for m in plan.messages.iter().chain(&plan.reminders) {
            messages.push(self.message(tenant, event, m).await?);
        }
        let group = reminder_group(a.id.as_str());
        let applies = matches!(plan.disposition, Disposition::Apply { .. });
        Ok(EventApplication {
            tenant: tenant.clone(),
            event_id: event.id.clone(),
            kind: event.kind,
            appointment: a.id.clone(),
            patient: Some(a.patient.id.clone()),
            occurred_at: event.occurred_at,
            outcome: plan.disposition.outcome(event.kind).to_owned(),
            payload,
            expected_version: state.map(|s| s.version),
            new_state: if applies { plan.state.clone() } else { None },
            notifications,
            messages,
            cancel_group: plan.cancel_reminders.then(|| group.clone()),
            reminder_group: group,
            now,
        })
    }
}

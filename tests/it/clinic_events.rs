//! Clinic events (`POST /v1/events`, `GET /v1/events`): every row of the rules
//! table, reminders, idempotency, out-of-order events, atomicity, and a simulated
//! clinic day of 500 appointments — on a real hub with a `ManualClock`, checked
//! against the stored notifications and messages.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tidings::domain::ids::{PatientId, TenantId, UserId};
use tidings::domain::message::{MessageStatus, PatientPreferences};
use tidings::domain::template::{Channel, Language, MessageKind};
use tidings::service::clock::ManualClock;
use tidings::store::outbound::{MessageFilter, MessageRecord};
use tidings::store::{InboxFilter, PageRequest};

use crate::support::{assert_error, spawn_app_with_clock, split, TestApp};

/// Friday 27 November 2026, 09:00 in Riyadh.
fn start_of_day() -> DateTime<Utc> {
    t("2026-11-27T06:00:00Z")
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

struct Clinic {
    app: TestApp,
    clock: Arc<ManualClock>,
    tenant: TenantId,
}

async fn clinic() -> Clinic {
    let clock = Arc::new(ManualClock::new(start_of_day()));
    let app = spawn_app_with_clock(|_| {}, Some(clock.clone())).await;
    let tenant = TenantId::parse(&app.tenant).unwrap();
    Clinic { app, clock, tenant }
}

/// An event for appointment `apt` of patient `p-<apt>` with provider `dr-1`.
fn event(id: &str, kind: &str, apt: &str, start: DateTime<Utc>, occurred: DateTime<Utc>) -> Value {
    json!({
        "id": id,
        "type": format!("appointment.{kind}"),
        "occurred_at": iso(occurred),
        "appointment": {
            "id": apt,
            "number": format!("APT-{apt}"),
            "start_at": iso(start),
            "previous_start_at": iso(start - Duration::hours(1)),
            "provider": {"id": "dr-1", "name": "Dr. Sara Al-Harbi", "email": "sara@clinic.example"},
            "patient": {"id": format!("p-{apt}"), "name": "Ahmed Al-Saud",
                        "phone": "+966501234567", "email": "ahmed@example.com"},
            "clinic": "Agdar Centre",
            "financially_cleared": true,
            "consent_verified": false
        }
    })
}

impl Clinic {
    async fn post(&self, body: &Value) -> (StatusCode, Value) {
        self.app.post_key("/v1/events", body.clone()).await
    }

    async fn apply(&self, body: &Value) -> [u64; 4] {
        let (status, answer) = self.post(body).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        [
            "notifications",
            "messages",
            "reminders_scheduled",
            "reminders_cancelled",
        ]
        .map(|k| answer[k].as_u64().unwrap())
    }

    /// Every message the filter matches, oldest first (all pages).
    async fn messages(&self, filter: MessageFilter) -> Vec<MessageRecord> {
        let mut out = Vec::new();
        let mut before = None;
        loop {
            let page = self
                .app
                .app_store
                .list_messages(&self.tenant, &filter, PageRequest { limit: 200, before })
                .await
                .unwrap();
            out.extend(page.items);
            match page.next {
                Some(next) => before = Some(next),
                None => break,
            }
        }
        out.reverse();
        out
    }

    async fn reminders(&self, apt: &str) -> Vec<MessageRecord> {
        self.messages(MessageFilter {
            group_key: Some(format!("appt:{apt}:reminders")),
            ..Default::default()
        })
        .await
    }

    /// The patient's messages once the node's worker has settled every one that is
    /// due (the `log` provider marks them `sent`); reminders in the future stay queued.
    async fn patient_messages(&self, apt: &str) -> Vec<MessageRecord> {
        let filter = MessageFilter {
            patient: Some(PatientId::parse(&format!("p-{apt}")).unwrap()),
            ..Default::default()
        };
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let ms = self.messages(filter.clone()).await;
            let now = self.clock.now_for_test();
            let busy = ms.iter().any(|m| {
                m.status == MessageStatus::Sending
                    || (m.status == MessageStatus::Queued && m.send_at <= now)
            });
            if !busy {
                return ms;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the worker never settled {apt}'s due messages: {:?}",
                summary(&ms)
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// (title, message) of a user's notifications, oldest first.
    async fn inbox(&self, user: &str) -> Vec<(String, String)> {
        let mut items = self
            .app
            .app_store
            .list(
                &self.tenant,
                &UserId::parse(user).unwrap(),
                InboxFilter::All,
                PageRequest {
                    limit: 1000,
                    before: None,
                },
            )
            .await
            .unwrap()
            .items;
        items.reverse();
        items
            .into_iter()
            .map(|n| (n.content.title, n.content.message))
            .collect()
    }

    async fn log(&self, apt: &str) -> Vec<Value> {
        let res = self
            .app
            .http
            .get(self.app.url(&format!("/v1/events?appointment_id={apt}")))
            .bearer_auth(&self.app.api_key)
            .send()
            .await
            .unwrap();
        let (status, body) = crate::support::split(res).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["items"].as_array().unwrap().clone()
    }

    async fn put_user(&self, id: &str, role: &str, locale: &str) {
        let res = self
            .app
            .http
            .put(self.app.url(&format!("/v1/users/{id}")))
            .bearer_auth(&self.app.api_key)
            .json(&json!({"role": role, "name": id, "locale": locale}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    async fn put_prefs(&self, patient: &str, prefs: &PatientPreferences) {
        self.app
            .app_store
            .put_patient_preferences(
                &self.tenant,
                &PatientId::parse(patient).unwrap(),
                prefs,
                None,
                self.clock.now_for_test(),
            )
            .await
            .unwrap();
    }
}

trait Now {
    fn now_for_test(&self) -> DateTime<Utc>;
}

impl Now for ManualClock {
    fn now_for_test(&self) -> DateTime<Utc> {
        tidings::service::clock::Clock::now(self)
    }
}

fn summary(messages: &[MessageRecord]) -> Vec<String> {
    messages
        .iter()
        .map(|m| {
            format!(
                "{}:{}:{}",
                m.template.as_ref().map_or("-", |t| t.name.as_str()),
                m.channel,
                m.status
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The rules table
// ---------------------------------------------------------------------------

#[tokio::test]
async fn every_row_of_the_rules_table() {
    let c = clinic().await;
    let start = start_of_day() + Duration::hours(48);
    let now = start_of_day();

    // booked → provider in-app + email; reminders 24 h and 2 h before.
    assert_eq!(
        c.apply(&event("e1", "booked", "a1", start, now)).await,
        [1, 1, 2, 0]
    );
    let provider = c.inbox("dr-1").await;
    assert_eq!(provider[0].0, "New appointment: Ahmed Al-Saud");
    assert_eq!(
        provider[0].1,
        "Ahmed Al-Saud booked with you on Sunday 29 November 2026 at 9:00 AM (no. APT-a1)."
    );
    let to_provider = c
        .messages(MessageFilter {
            template: Some("appointment.booked.provider.email".into()),
            ..Default::default()
        })
        .await;
    assert_eq!(to_provider.len(), 1);
    assert_eq!(
        to_provider[0].to.as_ref().unwrap().as_str(),
        "sara@clinic.example"
    );
    assert_eq!(to_provider[0].patient, None);
    assert_eq!(
        to_provider[0].subject.as_deref(),
        Some("New appointment: Ahmed Al-Saud, Sunday 29 November 2026 at 9:00 AM")
    );
    assert_eq!(
        summary(&c.reminders("a1").await),
        [
            "appointment.reminder.sms:sms:queued",
            "appointment.reminder.sms:sms:queued"
        ]
    );

    // confirmed → patient SMS (preferred default) + email + in-app; reminders already pending.
    assert_eq!(
        c.apply(&event("e2", "confirmed", "a1", start, now)).await,
        [1, 2, 0, 0]
    );
    assert_eq!(
        summary(&c.patient_messages("a1").await),
        [
            "appointment.reminder.sms:sms:queued",
            "appointment.reminder.sms:sms:queued",
            "appointment.confirmed.sms:sms:sent",
            "appointment.confirmed.email:email:sent"
        ]
    );
    assert_eq!(c.inbox("p-a1").await[0].0, "Appointment confirmed");

    // rescheduled → patient and provider, multi-channel; reminders replaced.
    let later = start + Duration::hours(3);
    assert_eq!(
        c.apply(&event(
            "e3",
            "rescheduled",
            "a1",
            later,
            now + Duration::minutes(1)
        ))
        .await,
        [2, 3, 2, 2]
    );
    let provider = c.inbox("dr-1").await;
    assert_eq!(provider[1].0, "Rescheduled: Ahmed Al-Saud");

    // arrived → provider in-app stating financial clearance and consent.
    assert_eq!(
        c.apply(&event(
            "e4",
            "arrived",
            "a1",
            later,
            now + Duration::minutes(2)
        ))
        .await,
        [1, 0, 0, 0]
    );
    let arrived = &c.inbox("dr-1").await[2];
    assert_eq!(arrived.0, "Patient arrived: Ahmed Al-Saud");
    assert_eq!(
        arrived.1,
        "Ahmed Al-Saud has arrived for the 12:00 PM appointment (no. APT-a1): \
         financially cleared, consent NOT verified."
    );

    // in_progress → log only.
    assert_eq!(
        c.apply(&event(
            "e5",
            "in_progress",
            "a1",
            later,
            now + Duration::minutes(3)
        ))
        .await,
        [0, 0, 0, 0]
    );
    // completed → patient email; pending reminders cancelled.
    assert_eq!(
        c.apply(&event(
            "e6",
            "completed",
            "a1",
            later,
            now + Duration::minutes(4)
        ))
        .await,
        [0, 1, 0, 2]
    );
    let completed = c
        .messages(MessageFilter {
            template: Some("appointment.completed.email".into()),
            ..Default::default()
        })
        .await;
    assert_eq!(
        completed[0].subject.as_deref(),
        Some("Thank you for visiting Agdar Centre")
    );

    // cancelled → patient and provider, multi-channel; reminders cancelled.
    assert_eq!(
        c.apply(&event("e7", "booked", "a2", start, now)).await,
        [1, 1, 2, 0]
    );
    assert_eq!(
        c.apply(&event(
            "e8",
            "cancelled",
            "a2",
            start,
            now + Duration::minutes(1)
        ))
        .await,
        [2, 3, 0, 2]
    );
    assert_eq!(
        summary(&c.patient_messages("a2").await),
        [
            "appointment.reminder.sms:sms:cancelled",
            "appointment.reminder.sms:sms:cancelled",
            "appointment.cancelled.sms:sms:sent",
            "appointment.cancelled.email:email:sent"
        ]
    );

    // no_show → patient and provider, email + in-app; reminders cancelled.
    assert_eq!(
        c.apply(&event("e9", "booked", "a3", start, now)).await,
        [1, 1, 2, 0]
    );
    assert_eq!(
        c.apply(&event(
            "e10",
            "no_show",
            "a3",
            start,
            now + Duration::minutes(1)
        ))
        .await,
        [2, 2, 0, 2]
    );
    assert_eq!(
        summary(&c.patient_messages("a3").await),
        [
            "appointment.reminder.sms:sms:cancelled",
            "appointment.reminder.sms:sms:cancelled",
            "appointment.no_show.email:email:sent"
        ]
    );
    assert_eq!(c.inbox("p-a3").await[0].0, "We missed you");
}

#[tokio::test]
async fn arabic_patients_and_staff_read_arabic_with_riyadh_times() {
    let c = clinic().await;
    c.put_user("dr-1", "provider", "ar-SA").await;
    let mut prefs = PatientPreferences {
        language: Language::Ar,
        preferred_channel: Some(Channel::Whatsapp),
        ..Default::default()
    };
    prefs.phone = Some(tidings::domain::contact::PhoneNumber::parse("+966555000111").unwrap());
    c.put_prefs("p-a1", &prefs).await;
    let start = t("2026-11-29T13:30:00Z"); // 16:30 in Riyadh
    c.apply(&event("e1", "confirmed", "a1", start, start_of_day()))
        .await;
    let msgs = c.patient_messages("a1").await;
    let confirm = msgs
        .iter()
        .find(|m| m.template.as_ref().unwrap().name == "appointment.confirmed.whatsapp")
        .expect("WhatsApp is the preferred channel");
    assert_eq!(confirm.language, Language::Ar);
    // Stored preferences' phone wins over the event's.
    assert_eq!(confirm.to.as_ref().unwrap().as_str(), "+966555000111");
    assert_eq!(
        confirm.body,
        "مرحباً Ahmed Al-Saud، تم تأكيد موعدك مع Dr. Sara Al-Harbi في Agdar Centre يوم الأحد 29 نوفمبر 2026 الساعة 4:30 م. رقم الموعد APT-a1. نسعد بزيارتك."
    );
    let reminders = c.reminders("a1").await;
    assert_eq!(reminders[0].channel, Channel::Whatsapp);
    assert_eq!(reminders[0].send_at, start - Duration::hours(24));
    assert_eq!(reminders[1].send_at, start - Duration::hours(2));
    assert!(reminders[0]
        .body
        .starts_with("مرحباً Ahmed Al-Saud، نذكّرك بموعدك"));

    c.apply(&event(
        "e2",
        "cancelled",
        "a1",
        start,
        start_of_day() + Duration::minutes(5),
    ))
    .await;
    let staff = c.inbox("dr-1").await;
    assert_eq!(staff[0].0, "إلغاء موعد: Ahmed Al-Saud");
    assert_eq!(
        staff[0].1,
        "تم إلغاء موعد المراجع Ahmed Al-Saud يوم الأحد 29 نوفمبر 2026 الساعة 4:30 م (رقم APT-a1). السبب: لم يُذكر."
    );
}

// ---------------------------------------------------------------------------
// Reminders
// ---------------------------------------------------------------------------

#[tokio::test]
async fn reminders_skip_the_past_follow_reschedules_and_stop_at_the_end() {
    let c = clinic().await;
    let now = start_of_day();
    // 5 h ahead: the 24 h reminder is already past, only the 2 h one is scheduled.
    let soon = now + Duration::hours(5);
    assert_eq!(
        c.apply(&event("e1", "booked", "a1", soon, now)).await,
        [1, 1, 1, 0]
    );
    assert_eq!(
        c.reminders("a1")
            .await
            .iter()
            .map(|m| m.send_at)
            .collect::<Vec<_>>(),
        [soon - Duration::hours(2)]
    );
    // 1 h ahead: nothing left to remind.
    let now_ish = now + Duration::hours(1);
    assert_eq!(
        c.apply(&event("e2", "booked", "a2", now_ish, now)).await,
        [1, 1, 0, 0]
    );

    // A reschedule cancels the old reminder and schedules both new ones.
    let moved = now + Duration::days(3);
    assert_eq!(
        c.apply(&event(
            "e3",
            "rescheduled",
            "a1",
            moved,
            now + Duration::minutes(1)
        ))
        .await,
        [2, 3, 2, 1]
    );
    let r = c.reminders("a1").await;
    assert_eq!(
        r.iter().map(|m| (m.send_at, m.status)).collect::<Vec<_>>(),
        [
            (soon - Duration::hours(2), MessageStatus::Cancelled),
            (moved - Duration::hours(24), MessageStatus::Queued),
            (moved - Duration::hours(2), MessageStatus::Queued),
        ]
    );
    // The clock moves on; a confirmation for the same time keeps the pending reminders.
    c.clock.advance(Duration::hours(10));
    assert_eq!(
        c.apply(&event(
            "e4",
            "confirmed",
            "a1",
            moved,
            now + Duration::hours(10)
        ))
        .await,
        [1, 2, 0, 0]
    );
    // A confirmation naming another start time moves them (past ones skipped).
    let moved_again = c.clock.now_for_test() + Duration::hours(20);
    assert_eq!(
        c.apply(&event(
            "e5",
            "confirmed",
            "a1",
            moved_again,
            now + Duration::hours(11)
        ))
        .await,
        [1, 2, 1, 2]
    );
    // Completion cancels what is pending.
    assert_eq!(
        c.apply(&event(
            "e6",
            "completed",
            "a1",
            moved_again,
            now + Duration::hours(12)
        ))
        .await,
        [0, 1, 0, 1]
    );
    assert!(c
        .reminders("a1")
        .await
        .iter()
        .all(|m| m.status == MessageStatus::Cancelled));
}

#[tokio::test]
async fn reminders_respect_the_reminder_preference_when_scheduled() {
    let c = clinic().await;
    let mut prefs = PatientPreferences::default();
    prefs.kinds.set(MessageKind::AppointmentReminder, false);
    c.put_prefs("p-a1", &prefs).await;
    let start = start_of_day() + Duration::days(2);
    assert_eq!(
        c.apply(&event("e1", "booked", "a1", start, start_of_day()))
            .await,
        [1, 1, 2, 0]
    );
    let r = c.reminders("a1").await;
    assert_eq!(r.len(), 2);
    for m in &r {
        assert_eq!(m.status, MessageStatus::Suppressed);
        assert_eq!(m.suppression.as_ref().unwrap().0, "kind_disabled");
    }
}

/// Waits (real time, bounded) until message `i` of the appointment's reminders has
/// `want`: the node's worker polls every second and reads the `ManualClock`.
async fn reminder_reaches(c: &Clinic, apt: &str, i: usize, want: MessageStatus) -> MessageRecord {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let r = c.reminders(apt).await;
        if r[i].status == want {
            return r[i].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "reminder {i} of {apt} never became {want}: {:?}",
            summary(&r)
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn reminders_recheck_the_reminder_preference_when_they_fall_due() {
    let c = clinic().await;
    let start = start_of_day() + Duration::days(2);
    assert_eq!(
        c.apply(&event("e1", "booked", "a1", start, start_of_day()))
            .await,
        [1, 1, 2, 0]
    );
    let r = c.reminders("a1").await;
    assert_eq!(r.len(), 2);
    assert!(r.iter().all(|m| m.status == MessageStatus::Queued));

    // After booking, the patient turns appointment reminders off…
    let mut prefs = PatientPreferences {
        phone: Some(tidings::domain::contact::PhoneNumber::parse("+966501234567").unwrap()),
        ..Default::default()
    };
    prefs.kinds.set(MessageKind::AppointmentReminder, false);
    c.put_prefs("p-a1", &prefs).await;
    // …so the 24-hour reminder, when due, is suppressed by the worker, not sent.
    c.clock
        .set(start - Duration::hours(24) + Duration::minutes(1));
    let first = reminder_reaches(&c, "a1", 0, MessageStatus::Suppressed).await;
    assert_eq!(first.attempts, 0, "no provider was called");
    assert_eq!(c.reminders("a1").await[1].status, MessageStatus::Queued);

    // Turned back on before the 2-hour reminder: that one goes out.
    prefs.kinds.set(MessageKind::AppointmentReminder, true);
    c.put_prefs("p-a1", &prefs).await;
    c.clock
        .set(start - Duration::hours(2) + Duration::minutes(1));
    let second = reminder_reaches(&c, "a1", 1, MessageStatus::Sent).await;
    assert_eq!(second.attempts, 1);
    assert_eq!(second.provider.as_deref(), Some("log"));
}

// ---------------------------------------------------------------------------
// Idempotency, validation, out of order
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_same_event_id_twice_answers_the_same_and_changes_nothing() {
    let c = clinic().await;
    let e = event(
        "e1",
        "booked",
        "a1",
        start_of_day() + Duration::days(2),
        start_of_day(),
    );
    let first = c.post(&e).await;
    let second = c.post(&e).await;
    assert_eq!(first, second);
    assert_eq!(
        first.1,
        json!({"notifications": 1, "messages": 1, "reminders_scheduled": 2, "reminders_cancelled": 0})
    );
    assert_eq!(c.inbox("dr-1").await.len(), 1);
    assert_eq!(c.messages(MessageFilter::default()).await.len(), 3);
    assert_eq!(c.log("a1").await.len(), 1);
}

#[tokio::test]
async fn malformed_events_are_422_naming_the_field_and_change_nothing() {
    let c = clinic().await;
    let good = event(
        "e1",
        "booked",
        "a1",
        start_of_day() + Duration::days(2),
        start_of_day(),
    );
    type Breaker = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(Breaker, &str)> = vec![
        (
            Box::new(|e| e["type"] = json!("appointment.teleported")),
            "type",
        ),
        (
            Box::new(|e| e["appointment"]["start_at"] = json!("next tuesday")),
            "appointment.start_at",
        ),
        (
            Box::new(|e| e["occurred_at"] = json!("2026-11-27 09:00")),
            "occurred_at",
        ),
        (
            Box::new(|e| e["appointment"]["patient"]["phone"] = json!("0501234567")),
            "appointment.patient.phone",
        ),
        (
            Box::new(|e| e["appointment"]["patient"]["language"] = json!("fr")),
            "appointment.patient.language",
        ),
        (
            Box::new(|e| {
                e["appointment"].as_object_mut().unwrap().remove("patient");
            }),
            "appointment.patient",
        ),
        (
            Box::new(|e| e["appointment"]["provider"]["id"] = json!(42)),
            "appointment.provider.id",
        ),
        (Box::new(|e| e["id"] = json!("")), "id"),
    ];
    for (break_it, field) in cases {
        let mut e = good.clone();
        break_it(&mut e);
        let (status, body) = c.post(&e).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let mut resched = good.clone();
    resched["type"] = json!("appointment.rescheduled");
    resched["appointment"]
        .as_object_mut()
        .unwrap()
        .remove("previous_start_at");
    let (status, body) = c.post(&resched).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "appointment.previous_start_at");
    assert!(c.log("a1").await.is_empty());
    assert!(c.messages(MessageFilter::default()).await.is_empty());
    assert!(c.inbox("dr-1").await.is_empty());
}

#[tokio::test]
async fn out_of_order_events_follow_the_documented_rule() {
    let c = clinic().await;
    let now = start_of_day();
    let start = now + Duration::days(2);
    let at = |m: i64| now + Duration::minutes(m);

    // A reschedule for an appointment never booked is a booking at the new time.
    assert_eq!(
        c.apply(&event("r1", "rescheduled", "a1", start, at(10)))
            .await,
        [1, 1, 2, 0]
    );
    // An older booking arriving late is recorded and ignored.
    assert_eq!(
        c.apply(&event("b1", "booked", "a1", start, at(5))).await,
        [0, 0, 0, 0]
    );
    // The cancellation (newer) cancels the reminders.
    assert_eq!(
        c.apply(&event("c1", "cancelled", "a1", start, at(20)))
            .await,
        [2, 3, 0, 2]
    );
    // A confirmation after the cancellation (even a newer one) resurrects nothing.
    assert_eq!(
        c.apply(&event("f1", "confirmed", "a1", start, at(30)))
            .await,
        [0, 0, 0, 0]
    );
    assert!(c
        .reminders("a1")
        .await
        .iter()
        .all(|m| m.status == MessageStatus::Cancelled));
    let outcomes: Vec<String> = c
        .log("a1")
        .await
        .iter()
        .rev()
        .map(|e| {
            format!(
                "{}:{}",
                e["type"].as_str().unwrap(),
                e["outcome"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            "appointment.rescheduled:applied_as_booking",
            "appointment.booked:ignored_stale",
            "appointment.cancelled:applied",
            "appointment.confirmed:ignored_closed"
        ]
    );

    // A late cancellation of the slot the appointment still has wins...
    assert_eq!(
        c.apply(&event("b2", "booked", "a2", start, at(0))).await,
        [1, 1, 2, 0]
    );
    assert_eq!(
        c.apply(&event("f2", "confirmed", "a2", start, at(30)))
            .await,
        [1, 2, 0, 0]
    );
    assert_eq!(
        c.apply(&event("c2", "cancelled", "a2", start, at(20)))
            .await,
        [2, 3, 0, 2]
    );
    // ...but not of a slot a newer reschedule moved away from.
    assert_eq!(
        c.apply(&event("b3", "booked", "a3", start, at(0))).await,
        [1, 1, 2, 0]
    );
    let moved = start + Duration::days(1);
    assert_eq!(
        c.apply(&event("r3", "rescheduled", "a3", moved, at(30)))
            .await,
        [2, 3, 2, 2]
    );
    assert_eq!(
        c.apply(&event("c3", "cancelled", "a3", start, at(20)))
            .await,
        [0, 0, 0, 0]
    );
    let pending: Vec<DateTime<Utc>> = c
        .reminders("a3")
        .await
        .iter()
        .filter(|m| m.status == MessageStatus::Queued)
        .map(|m| m.send_at)
        .collect();
    assert_eq!(
        pending,
        [moved - Duration::hours(24), moved - Duration::hours(2)]
    );
    // A newer re-booking re-opens a cancelled appointment.
    assert_eq!(
        c.apply(&event("r4", "rescheduled", "a1", moved, at(40)))
            .await,
        [2, 3, 2, 0]
    );
}

// ---------------------------------------------------------------------------
// Atomicity and live delivery
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_missing_template_fails_the_whole_event() {
    let c = clinic().await;
    let start = start_of_day() + Duration::days(2);
    // The first event seeds the tenant's templates.
    c.apply(&event("e0", "booked", "a0", start, start_of_day()))
        .await;
    let store = &c.app.app_store;
    let email = store
        .template_by_name(&c.tenant, "appointment.cancelled.email")
        .await
        .unwrap()
        .unwrap();
    store
        .delete_template(
            &c.tenant,
            email.id,
            &tidings::store::outbound::AuditEntry {
                actor: "test".into(),
                action: "template.delete".into(),
                target: format!("template:{}", email.id),
                detail: "{}".into(),
                at: start_of_day(),
            },
        )
        .await
        .unwrap();
    let before = (
        c.inbox("dr-1").await.len(),
        c.messages(MessageFilter::default()).await.len(),
    );
    let (status, body) = c
        .post(&event(
            "e1",
            "cancelled",
            "a0",
            start,
            start_of_day() + Duration::minutes(1),
        ))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "template_unavailable");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("appointment.cancelled.email"));
    // Nothing: no notification, no message, the reminders still pending, no log row.
    assert_eq!(
        (
            c.inbox("dr-1").await.len(),
            c.messages(MessageFilter::default()).await.len()
        ),
        before
    );
    assert!(c
        .reminders("a0")
        .await
        .iter()
        .all(|m| m.status == MessageStatus::Queued));
    assert_eq!(c.log("a0").await.len(), 1);
}

/// `DELETE /v1/templates/{id}` of a template the rules send is a 409 naming the
/// rules, and changes nothing: the template stays and the events that use it work.
/// A template no rule sends is deleted as before. Lists and details say which
/// rules use a template (`used_by_rules`).
#[tokio::test]
async fn a_template_the_rules_use_cannot_be_deleted() {
    let c = clinic().await;
    let start = start_of_day() + Duration::days(2);
    // The first event seeds the tenant's templates.
    c.apply(&event("e0", "booked", "a0", start, start_of_day()))
        .await;
    let key = &c.app.api_key;
    let get = |path: String| c.app.http.get(c.app.url(&path)).bearer_auth(key).send();
    let delete = |path: String| c.app.http.delete(c.app.url(&path)).bearer_auth(key).send();
    let (_, page) = split(get("/v1/templates?limit=200".into()).await.unwrap()).await;
    let by_name = |name: &str| {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("{name} seeded: {page}"))
            .clone()
    };
    // The SMS and WhatsApp cancellations come from messages[0], the email from messages[1].
    let email = by_name("appointment.cancelled.email");
    assert_eq!(
        email["used_by_rules"],
        json!(["events.cancelled.messages[1]"])
    );
    assert_eq!(
        by_name("appointment.reminder.sms")["used_by_rules"],
        json!(["reminders"])
    );
    let path = format!("/v1/templates/{}", email["id"].as_str().unwrap());
    let (status, body) = split(delete(path.clone()).await.unwrap()).await;
    assert_error(status, &body, 409, "template_in_use");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("appointment.cancelled.email"), "{message}");
    assert!(
        message.contains("events.cancelled.messages[1]"),
        "{message}"
    );
    // Nothing changed: the template is there, and the event that sends it works.
    let (status, detail) = split(get(path).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(
        detail["used_by_rules"],
        json!(["events.cancelled.messages[1]"])
    );
    c.apply(&event(
        "e1",
        "cancelled",
        "a0",
        start,
        start_of_day() + Duration::minutes(1),
    ))
    .await;
    // A template of the clinic's own, which no rule sends, is deleted as before.
    let (status, own) = c
        .app
        .post_key(
            "/v1/templates",
            json!({"name": "own_note", "channel": "sms", "kind": "billing",
                   "body_en": "Hi {patient_name}", "body_ar": "مرحباً {patient_name}",
                   "variables": ["patient_name"], "is_active": true}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{own}");
    assert_eq!(own["used_by_rules"], json!([]));
    let own_path = format!("/v1/templates/{}", own["id"].as_str().unwrap());
    let res = delete(own_path).await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
}

/// Breaks the message event trail under the running hub: the event's transaction
/// fails after its notifications and reminder cancellations were written.
async fn drop_message_events(c: &Clinic) {
    use sqlx::{Connection, Executor};
    if c.app.database_url.starts_with("postgres") {
        let mut conn = sqlx::PgConnection::connect(&c.app.database_url)
            .await
            .unwrap();
        conn.execute("DROP TABLE message_events").await.unwrap();
    } else {
        let mut conn = sqlx::SqliteConnection::connect(&c.app.database_url)
            .await
            .unwrap();
        conn.execute("DROP TABLE message_events").await.unwrap();
    }
}

#[tokio::test]
async fn a_store_failure_half_way_leaves_nothing_behind() {
    let c = clinic().await;
    let start = start_of_day() + Duration::days(2);
    c.apply(&event("e0", "booked", "a0", start, start_of_day()))
        .await;
    drop_message_events(&c).await;
    let (status, _) = c
        .post(&event(
            "e1",
            "cancelled",
            "a0",
            start,
            start_of_day() + Duration::minutes(1),
        ))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    // The provider's cancellation notification was inserted before the failure: rolled back.
    assert_eq!(c.inbox("dr-1").await.len(), 1);
    assert!(c.inbox("p-a0").await.is_empty());
    assert!(c
        .reminders("a0")
        .await
        .iter()
        .all(|m| m.status == MessageStatus::Queued));
    assert_eq!(c.log("a0").await.len(), 1);
    let state = c
        .app
        .app_store
        .appointment_state(
            &c.tenant,
            &tidings::domain::ids::AppointmentId::parse("a0").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.status.short(), "booked");
}

#[tokio::test]
async fn event_notifications_reach_open_connections_live() {
    let c = clinic().await;
    let token = c.app.token("dr-1", "provider").await;
    let mut ws = c.app.ws(&token, None).await;
    ws.expect("hello").await;
    c.apply(&event(
        "e1",
        "booked",
        "a1",
        start_of_day() + Duration::days(2),
        start_of_day(),
    ))
    .await;
    let n = ws.expect("notification").await;
    assert_eq!(n["title"], "New appointment: Ahmed Al-Saud");
    assert_eq!(n["link"], "/appointments/a1");
    assert_eq!(n["related"], json!({"type": "appointment", "id": "a1"}));
    assert_eq!(n["category"], "appointments");
    assert_eq!(ws.expect("unread_count").await["unread"], 1);
}

// ---------------------------------------------------------------------------
// A clinic day
// ---------------------------------------------------------------------------

/// A tiny deterministic generator: the same day every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[derive(Default, Debug, PartialEq, Eq)]
struct Expect {
    /// per user: notification count.
    inbox: BTreeMap<String, usize>,
    /// per template name: (queued, suppressed) immediate messages.
    messages: BTreeMap<String, (usize, usize)>,
}

#[tokio::test]
async fn a_full_clinic_day_of_500_appointments() {
    let c = clinic().await;
    let day = start_of_day();
    // Patients with stored preferences: every 5th prefers WhatsApp, every 7th turned
    // reminders off, every 11th has no phone (email only).
    for i in (0..500).filter(|i| i % 5 == 0 || i % 7 == 0 || i % 11 == 0) {
        let mut p = PatientPreferences::default();
        if i % 5 == 0 {
            p.preferred_channel = Some(Channel::Whatsapp);
        }
        if i % 7 == 0 {
            p.kinds.set(MessageKind::AppointmentReminder, false);
        }
        if i % 11 != 0 {
            p.phone = Some(tidings::domain::contact::PhoneNumber::parse("+966500000001").unwrap());
        }
        p.email = Some(tidings::domain::contact::EmailAddress::parse("p@example.com").unwrap());
        c.put_prefs(&format!("p-d{i}"), &p).await;
    }
    let mut rng = Lcg(20261127);
    let mut expect = Expect::default();
    let bump_inbox = |e: &mut Expect, user: &str| *e.inbox.entry(user.to_owned()).or_default() += 1;
    let mut pending: BTreeMap<String, (DateTime<Utc>, bool)> = BTreeMap::new();
    let mut totals = [0_u64; 4];
    for i in 0..500_u64 {
        let apt = format!("d{i}");
        let provider = format!("dr-{}", i % 12);
        // Tomorrow between 10:00 and 22:00 Riyadh, on quarter hours (both reminders ahead).
        let mut start = day + Duration::hours(25) + Duration::minutes(15 * rng.next(48) as i64);
        let mut minute = 0;
        let mut ev = |kind: &str, start: DateTime<Utc>| {
            minute += 1;
            let mut e = event(
                &format!("{apt}-{minute}"),
                kind,
                &apt,
                start,
                day + Duration::minutes(minute),
            );
            e["appointment"]["provider"]["id"] = json!(provider);
            e["appointment"]["patient"]["id"] = json!(format!("p-{apt}"));
            if i % 11 == 0 {
                e["appointment"]["patient"]
                    .as_object_mut()
                    .unwrap()
                    .remove("phone");
            }
            e
        };
        let reminders_on = i % 7 != 0;
        let has_phone = i % 11 != 0;
        // The SMS/WhatsApp message: the preferred one of the two, suppressed (and
        // recorded under the channel tried) without a phone number.
        let phone_template = |base: &str| {
            let channel = if i % 5 == 0 { "whatsapp" } else { "sms" };
            (format!("{base}.{channel}"), has_phone)
        };
        let add_msg = |e: &mut Expect, (name, queued): (String, bool)| {
            let entry = e.messages.entry(name).or_default();
            if queued {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        };
        let sent = |name: &str| (name.to_owned(), true);
        // Suppressed reminders stay suppressed: only queued ones are cancelled.
        let cancels = if reminders_on { 2 } else { 0 };
        let mut check = |got: [u64; 4], want: [u64; 4], what: &str| {
            assert_eq!(got, want, "{apt} {what}");
            for k in 0..4 {
                totals[k] += got[k];
            }
        };

        // Booked.
        check(c.apply(&ev("booked", start)).await, [1, 1, 2, 0], "booked");
        bump_inbox(&mut expect, &provider);
        add_msg(&mut expect, sent("appointment.booked.provider.email"));
        pending.insert(apt.clone(), (start, reminders_on));

        let roll = rng.next(100);
        // 70% confirm.
        if roll < 70 {
            check(
                c.apply(&ev("confirmed", start)).await,
                [1, 2, 0, 0],
                "confirmed",
            );
            bump_inbox(&mut expect, &format!("p-{apt}"));
            add_msg(&mut expect, phone_template("appointment.confirmed"));
            add_msg(&mut expect, sent("appointment.confirmed.email"));
        }
        // 15% reschedule by one to three hours.
        if (70..85).contains(&roll) || roll % 9 == 0 {
            start += Duration::hours(1 + rng.next(3) as i64);
            check(
                c.apply(&ev("rescheduled", start)).await,
                [2, 3, 2, cancels],
                "rescheduled",
            );
            bump_inbox(&mut expect, &provider);
            bump_inbox(&mut expect, &format!("p-{apt}"));
            add_msg(&mut expect, phone_template("appointment.rescheduled"));
            add_msg(&mut expect, sent("appointment.rescheduled.email"));
            add_msg(&mut expect, sent("appointment.rescheduled.provider.email"));
            pending.insert(apt.clone(), (start, reminders_on));
        }
        let outcome = rng.next(100);
        if outcome < 10 {
            check(
                c.apply(&ev("cancelled", start)).await,
                [2, 3, 0, cancels],
                "cancelled",
            );
            bump_inbox(&mut expect, &provider);
            bump_inbox(&mut expect, &format!("p-{apt}"));
            add_msg(&mut expect, phone_template("appointment.cancelled"));
            add_msg(&mut expect, sent("appointment.cancelled.email"));
            add_msg(&mut expect, sent("appointment.cancelled.provider.email"));
            pending.remove(&apt);
            // The clinic's system re-sends a late confirmation: nothing happens.
            check(
                c.apply(&ev("confirmed", start)).await,
                [0, 0, 0, 0],
                "late confirmation",
            );
        } else if outcome < 15 {
            check(
                c.apply(&ev("no_show", start)).await,
                [2, 2, 0, cancels],
                "no_show",
            );
            bump_inbox(&mut expect, &provider);
            bump_inbox(&mut expect, &format!("p-{apt}"));
            add_msg(&mut expect, sent("appointment.no_show.email"));
            add_msg(&mut expect, sent("appointment.no_show.provider.email"));
            pending.remove(&apt);
        } else if outcome < 60 {
            check(
                c.apply(&ev("arrived", start)).await,
                [1, 0, 0, 0],
                "arrived",
            );
            bump_inbox(&mut expect, &provider);
            check(
                c.apply(&ev("in_progress", start)).await,
                [0, 0, 0, 0],
                "in_progress",
            );
            check(
                c.apply(&ev("completed", start)).await,
                [0, 1, 0, cancels],
                "completed",
            );
            add_msg(&mut expect, sent("appointment.completed.email"));
            pending.remove(&apt);
        }
        // Else: still booked at the end of the day, reminders pending.
    }

    // Every notification the rules call for, and no other.
    let mut users: Vec<String> = (0..12).map(|p| format!("dr-{p}")).collect();
    users.extend((0..500).map(|i| format!("p-d{i}")));
    let mut got = Expect::default();
    for u in &users {
        let n = c.inbox(u).await.len();
        if n > 0 {
            got.inbox.insert(u.clone(), n);
        }
    }
    assert_eq!(got.inbox, expect.inbox);
    // Every immediate message, by template: accepted into the queue (the node's
    // worker may already have handed it to the `log` provider) or suppressed.
    let mut by_template: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for name in expect.messages.keys() {
        let ms = c
            .messages(MessageFilter {
                template: Some(name.clone()),
                ..Default::default()
            })
            .await;
        let entry = by_template.entry(name.clone()).or_default();
        for m in ms {
            match m.status {
                MessageStatus::Queued | MessageStatus::Sending | MessageStatus::Sent => {
                    entry.0 += 1
                }
                MessageStatus::Suppressed => entry.1 += 1,
                other => panic!("unexpected status {other}"),
            }
        }
    }
    assert_eq!(by_template, expect.messages);

    // Reminders: exactly two pending for every open appointment (suppressed when the
    // patient turned reminders off), at 24 h and 2 h before its current start;
    // none for the closed ones.
    for i in 0..500 {
        let apt = format!("d{i}");
        let r = c.reminders(&apt).await;
        match pending.get(&apt) {
            None => assert!(
                r.iter().all(|m| m.status == MessageStatus::Cancelled
                    || (m.status == MessageStatus::Suppressed && i % 7 == 0)),
                "{apt}: {:?}",
                summary(&r)
            ),
            Some((start, on)) => {
                let want_status = if *on {
                    MessageStatus::Queued
                } else {
                    MessageStatus::Suppressed
                };
                let want = [*start - Duration::hours(24), *start - Duration::hours(2)];
                for at in want {
                    assert!(
                        r.iter().any(|m| m.send_at == at && m.status == want_status),
                        "{apt}: no {want_status} reminder at {at}: {:?}",
                        summary(&r)
                    );
                }
                assert!(
                    r.iter()
                        .filter(|m| m.status == MessageStatus::Queued)
                        .all(|m| want.contains(&m.send_at)),
                    "{apt}: a reminder for an old start time is still queued"
                );
            }
        }
    }
    // The answers added up to what the store holds.
    let log_total: usize = {
        let mut n = 0;
        for i in 0..500 {
            n += c.log(&format!("d{i}")).await.len();
        }
        n
    };
    assert!(log_total >= 500 * 2);
    assert_eq!(
        totals[0] as usize,
        expect.inbox.values().sum::<usize>(),
        "notification answers"
    );
}

// ---------------------------------------------------------------------------
// Rules are validated at start
// ---------------------------------------------------------------------------

#[test]
fn a_bad_rules_file_stops_the_start_naming_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/rules.toml")).unwrap();
    let bad = shipped.replace(
        "{ to = \"provider\", text = \"appointment.arrived.provider\", type = \"info\"",
        "{ to = \"role:janitor\", text = \"appointment.arrived.provider\", type = \"info\"",
    );
    assert_ne!(bad, shipped);
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, bad).unwrap();
    let run = |envs: &[(&str, String)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"));
        cmd.env(
            "TIDINGS_DATABASE_URL",
            format!("sqlite://{}/t.db", dir.path().display()),
        )
        .env("TIDINGS_LOG_LEVEL", "error");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.arg("serve").output().unwrap()
    };
    let out = run(&[("TIDINGS_EVENTS__RULES_PATH", rules.display().to_string())]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rule events.arrived.in_app[0].to"), "{err}");

    let config = dir.path().join("tidings.toml");
    std::fs::write(
        &config,
        "[events.tenants.acme]\ntimezone = \"Mars/Olympus\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .env(
            "TIDINGS_DATABASE_URL",
            format!("sqlite://{}/t.db", dir.path().display()),
        )
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("events.tenants.acme.timezone"), "{err}");
}

#[tokio::test]
async fn a_tenant_override_uses_its_own_rules_and_time_zone() {
    let dir = tempfile::tempdir().unwrap();
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/rules.toml")).unwrap();
    // This clinic also alerts the front desk when a patient arrives, and reminds 3 h before.
    let custom = shipped
        .replace(
            "  { to = \"provider\", text = \"appointment.arrived.provider\", type = \"info\", category = \"arrivals\", priority = \"high\", escalate = [{ after_s = 600, to = { role = \"front_desk\" } }] },\n",
            "  { to = \"provider\", text = \"appointment.arrived.provider\", type = \"info\", category = \"arrivals\" },\n  { to = \"role:front_desk\", text = \"appointment.arrived.provider\", type = \"info\", category = \"arrivals\" },\n",
        )
        .replace("offsets_minutes = [1440, 120]", "offsets_minutes = [180]");
    assert_ne!(custom, shipped);
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, custom).unwrap();
    let clock = Arc::new(ManualClock::new(start_of_day()));
    let rules_path = rules.display().to_string();
    let app = spawn_app_with_clock(
        |c| {
            let tenant = c.dev_tenant.clone();
            c.events.tenants.insert(
                tenant,
                tidings::config::events::TenantEventsSection {
                    rules_path: Some(rules_path),
                    timezone: Some("Asia/Dubai".into()),
                    ..Default::default()
                },
            );
        },
        Some(clock.clone()),
    )
    .await;
    let c = Clinic {
        tenant: TenantId::parse(&app.tenant).unwrap(),
        app,
        clock,
    };
    c.put_user("fd-1", "front_desk", "en").await;
    c.put_user("fd-2", "front_desk", "ar").await;
    let start = t("2026-11-29T06:00:00Z"); // 10:00 in Dubai
    assert_eq!(
        c.apply(&event("e1", "booked", "a1", start, start_of_day()))
            .await,
        [1, 1, 1, 0]
    );
    assert_eq!(
        c.reminders("a1").await[0].send_at,
        start - Duration::hours(3)
    );
    assert_eq!(
        c.apply(&event("e2", "arrived", "a1", start, start_of_day()))
            .await,
        [3, 0, 0, 0]
    );
    assert!(c.inbox("fd-1").await[0]
        .1
        .contains("for the 10:00 AM appointment"));
    assert!(c.inbox("fd-2").await[0]
        .1
        .starts_with("وصل المراجع Ahmed Al-Saud لموعد الساعة 10:00 ص"));
}

#[tokio::test]
async fn concurrent_posts_apply_each_event_once_and_leave_no_reminder_behind() {
    let c = clinic().await;
    let now = start_of_day();
    let start = now + Duration::days(2);
    let e = event("e1", "booked", "a1", start, now);
    let answers = futures_util::future::join_all((0..8).map(|_| c.post(&e))).await;
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body, &answers[0].1);
    }
    assert_eq!(answers[0].1["reminders_scheduled"], 2);
    assert_eq!(c.inbox("dr-1").await.len(), 1);
    assert_eq!(c.reminders("a1").await.len(), 2);

    // Three events of one appointment at once: whatever order they commit in, each is
    // applied or ignored exactly once, and the cancellation leaves nothing queued.
    let batch = [
        event("e2", "confirmed", "a1", start, now + Duration::minutes(1)),
        event("e3", "cancelled", "a1", start, now + Duration::minutes(3)),
        event("e4", "arrived", "a1", start, now + Duration::minutes(2)),
    ];
    let answers = futures_util::future::join_all(batch.iter().map(|e| c.post(e))).await;
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::ACCEPTED, "{body}");
    }
    assert_eq!(c.log("a1").await.len(), 4);
    assert!(c
        .reminders("a1")
        .await
        .iter()
        .all(|m| m.status == MessageStatus::Cancelled));
    let state = c
        .app
        .app_store
        .appointment_state(
            &c.tenant,
            &tidings::domain::ids::AppointmentId::parse("a1").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.status.short(), "cancelled");
    assert_eq!(state.reminders_for, None);
}

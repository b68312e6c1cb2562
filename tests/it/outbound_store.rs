//! The outbound store's conformance suite: every case runs against SQLite (a tempfile)
//! and PostgreSQL (a fresh database on `TIDINGS_TEST_POSTGRES_URL`), through the
//! `Store` trait only, and asserts the same exact values on both.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use tidings::domain::clinic_event::EventType;
use tidings::domain::contact::{Address, EmailAddress, PhoneNumber};
use tidings::domain::ids::{
    AppointmentId, BatchId, EventId, PatientId, TemplateId, TenantId, UserId,
};
use tidings::domain::message::{
    ChannelSwitches, KindSwitches, MessageId, MessageStatus, Money, PatientPreferences,
};
use tidings::domain::notification::{ContentInput, Notification, NotificationContent};
use tidings::domain::template::{Channel, Language, MessageKind, Template, TemplateDraft};
use tidings::store::events::EventApplication;
use tidings::store::outbound::{
    AttemptUpdate, AuditEntry, AuditFilter, CallbackOutcome, CallbackTarget, CallbackUpdate,
    ClaimedMessage, DailyCount, EnqueueFeed, EnqueueOutcome, MessageEvent, MessageFilter,
    MessageRecord, NewBatch, NewMessage, PhiScope, RedactionCounts, TemplateFilter, TemplateRef,
};
use tidings::store::{
    IdempotencyClaim, InboxFilter, PageRequest, PublishRequest, Store, StoreError,
};
use tokio::sync::mpsc;

use crate::store_conformance::Backend;
use crate::support::conformance;

conformance!(
    templates_versions_names_toggle_and_soft_delete,
    concurrent_template_edits_conflict,
    patient_preferences_round_trip,
    enqueue_commits_rows_events_batch_and_audit,
    enqueue_without_commit_writes_nothing,
    enqueue_idempotent_replay_and_key_reuse,
    concurrent_enqueues_with_one_key_commit_once,
    ten_thousand_messages_in_one_feed,
    concurrent_claimers_never_share_a_message,
    expired_lease_is_reclaimed_as_sending,
    future_sends_wait_and_oldest_due_goes_first,
    finish_attempt_follows_the_lease,
    callbacks_move_forward_only_and_replays_change_nothing,
    a_late_send_result_keeps_the_callback_status,
    cancel_cancel_group_and_retry,
    list_filters_search_and_paging,
    stats_are_exact_with_zero_days_and_costs,
    audit_log_filters_and_pages,
    every_call_is_scoped_by_tenant,
    redaction_is_bounded_scoped_and_keeps_counts,
    retention_redacts_the_notifications_about_patients,
    erasure_redacts_cancels_audits_and_is_scoped,
);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn t(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

fn pid(s: &str) -> PatientId {
    PatientId::parse(s).unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    // A fixed instant with milliseconds, so both backends must keep them.
    Utc.timestamp_millis_opt(1_790_000_000_000 + secs * 1000 + 123)
        .unwrap()
}

fn page(limit: u32, before: Option<i64>) -> PageRequest {
    PageRequest { limit, before }
}

/// Arabic with a right-to-left mark, tashkeel and a joiner: must come back byte for byte.
const BODY_AR: &str = "مَرْحَبًا {patient_name}،\u{200F} موعدك {date}\u{200D}.";

fn draft(name: &str) -> TemplateDraft {
    TemplateDraft {
        name: name.into(),
        channel: "sms".into(),
        kind: "appointment_reminder".into(),
        body_en: "Hi {patient_name}, see you {date}.".into(),
        body_ar: BODY_AR.into(),
        subject_en: None,
        subject_ar: None,
        variables: vec!["patient_name".into(), "date".into()],
        is_active: true,
    }
}

fn email_draft(name: &str) -> TemplateDraft {
    TemplateDraft {
        channel: "email".into(),
        kind: "results".into(),
        subject_en: Some("Results for {patient_name}".into()),
        subject_ar: Some("نتائج {patient_name}".into()),
        ..draft(name)
    }
}

fn entry(actor: &str, action: &str, target: &str, when: DateTime<Utc>) -> AuditEntry {
    AuditEntry {
        actor: actor.into(),
        action: action.into(),
        target: target.into(),
        detail: r#"{"z": 1, "a": [true, null]}"#.into(),
        at: when,
    }
}

fn audit(action: &str, when: DateTime<Utc>) -> AuditEntry {
    entry("api_key:tdk_test", action, "test:1", when)
}

fn phone(s: &str) -> Address {
    Address::Phone(PhoneNumber::parse(s).unwrap())
}

fn msg(patient: Option<&str>, to: &str, body: &str) -> NewMessage {
    NewMessage {
        id: MessageId::new_random(),
        patient: patient.map(pid),
        channel: Channel::Sms,
        to: Some(phone(to)),
        language: Language::En,
        kind: MessageKind::AppointmentReminder,
        template: None,
        variables: BTreeMap::from([("patient_name".to_owned(), "Ahmed".to_owned())]),
        subject: None,
        body: body.into(),
        status: MessageStatus::Queued,
        suppression: None,
        send_at: at(0),
        group_key: None,
        batch: None,
    }
}

fn queued(n: usize) -> Vec<NewMessage> {
    (0..n)
        .map(|i| msg(None, "+966501234567", &format!("message {i}")))
        .collect()
}

/// Feeds `messages` in chunks of 500 from another task and commits.
async fn enqueue_with(
    s: &dyn Store,
    tenant: &TenantId,
    messages: Vec<NewMessage>,
    batch: Option<&NewBatch>,
    idempotency: Option<(&IdempotencyClaim, &str)>,
    audit: Option<&AuditEntry>,
    now: DateTime<Utc>,
) -> EnqueueOutcome {
    let (tx, rx) = mpsc::channel(2);
    let producer = tokio::spawn(async move {
        for chunk in messages.chunks(500) {
            if tx.send(EnqueueFeed::Chunk(chunk.to_vec())).await.is_err() {
                return;
            }
        }
        let _ = tx.send(EnqueueFeed::Commit).await;
    });
    let out = s
        .enqueue(tenant, batch, rx, idempotency, audit, now)
        .await
        .unwrap();
    producer.await.unwrap();
    out
}

async fn enqueue(s: &dyn Store, tenant: &TenantId, messages: Vec<NewMessage>) -> EnqueueOutcome {
    enqueue_with(s, tenant, messages, None, None, None, at(0)).await
}

async fn claim(s: &dyn Store, now: i64, lease: i64, limit: u32) -> Vec<ClaimedMessage> {
    s.claim_due(at(now), at(lease), limit).await.unwrap()
}

fn ev(event: &str, when: DateTime<Utc>) -> MessageEvent {
    MessageEvent {
        event: event.into(),
        at: when,
        detail: format!(r#"{{"provider": "twilio", "step": "{event}"}}"#),
    }
}

fn attempt(status: MessageStatus, due_at: Option<DateTime<Utc>>, when: i64) -> AttemptUpdate {
    AttemptUpdate {
        status,
        due_at,
        provider: Some("twilio".into()),
        provider_message_id: None,
        price: None,
        attempted: true,
        failures: 0,
        last_error: None,
        events: vec![ev(status.as_str(), at(when))],
    }
}

fn sent(provider_id: &str, when: i64) -> AttemptUpdate {
    AttemptUpdate {
        provider_message_id: Some(provider_id.into()),
        ..attempt(MessageStatus::Sent, None, when)
    }
}

fn usd(amount: &str) -> Money {
    Money::parse_price(amount, "USD").unwrap()
}

fn callback(status: MessageStatus, receipt: &str, when: i64) -> CallbackUpdate {
    CallbackUpdate {
        status,
        provider_message_id: None,
        price: None,
        error: None,
        receipt: receipt.into(),
        event: ev(status.as_str(), at(when)),
    }
}

async fn message(s: &dyn Store, tenant: &TenantId, id: MessageId) -> MessageRecord {
    s.get_message(tenant, id)
        .await
        .unwrap()
        .expect("message exists")
}

async fn status(s: &dyn Store, tenant: &TenantId, id: MessageId) -> MessageStatus {
    message(s, tenant, id).await.status
}

async fn event_names(s: &dyn Store, tenant: &TenantId, id: MessageId) -> Vec<String> {
    s.message_events(tenant, id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect()
}

async fn list_ids(s: &dyn Store, tenant: &TenantId, filter: MessageFilter) -> Vec<MessageId> {
    s.list_messages(tenant, &filter, page(100, None))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|m| m.id)
        .collect()
}

fn assert_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
}

fn assert_not_found<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
}

// ---------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------

async fn templates_versions_names_toggle_and_soft_delete(b: &Backend) {
    let s = b.store.as_ref();
    let a = t("clinic-a");
    let v1 = Template::create(draft("reminder_24h")).unwrap();
    let id = TemplateId::new_random();
    let created = s
        .create_template(&a, id, &v1, &audit("template.create", at(0)))
        .await
        .unwrap();
    assert_eq!(
        (
            created.id,
            &created.template,
            created.created_at,
            created.updated_at
        ),
        (id, &v1, at(0), at(0))
    );
    assert_eq!(created.template.body.ar.as_str(), BODY_AR);
    assert_conflict(
        s.create_template(
            &a,
            TemplateId::new_random(),
            &v1,
            &audit("template.create", at(1)),
        )
        .await,
    );
    assert_eq!(s.get_template(&a, id).await.unwrap(), Some(created.clone()));
    assert_eq!(
        s.template_by_name(&a, "reminder_24h").await.unwrap(),
        Some(created.clone())
    );

    // Edit: version 2 becomes current, version 1 stays readable.
    let v2 = v1
        .revise(TemplateDraft {
            body_en: "Hello {patient_name}, your visit is {date}.".into(),
            ..draft("reminder_24h")
        })
        .unwrap();
    let edited = s
        .update_template(
            &a,
            id,
            &v2,
            &entry("user:dr-1", "template.update", "t", at(10)),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            edited.template.version,
            edited.created_at,
            edited.updated_at
        ),
        (2, at(0), at(10))
    );
    assert_eq!(edited.template, v2);
    assert_eq!(
        s.template_version(&a, id, 1).await.unwrap(),
        Some(v1.clone())
    );
    assert_eq!(
        s.template_version(&a, id, 2).await.unwrap(),
        Some(v2.clone())
    );
    assert_eq!(s.template_version(&a, id, 3).await.unwrap(), None);
    let history = s.template_versions(&a, id).await.unwrap();
    let summary: Vec<_> = history
        .iter()
        .map(|h| (h.template.version, h.actor.as_str(), h.created_at))
        .collect();
    assert_eq!(
        summary,
        vec![(2, "user:dr-1", at(10)), (1, "api_key:tdk_test", at(0))]
    );
    assert_eq!(history[1].template, v1);

    // An edit based on version 1 now conflicts; one based on version 2 succeeds.
    assert_conflict(
        s.update_template(&a, id, &v2, &audit("template.update", at(11)))
            .await,
    );
    let v3 = v2.revise(draft("reminder_24h")).unwrap();
    assert_eq!(
        s.update_template(&a, id, &v3, &audit("template.update", at(12)))
            .await
            .unwrap()
            .template
            .version,
        3
    );

    // Toggle: no new version.
    let off = s
        .set_template_active(&a, id, false, &audit("template.toggle", at(13)))
        .await
        .unwrap();
    assert_eq!(
        (off.template.is_active, off.template.version, off.updated_at),
        (false, 3, at(13))
    );
    assert_eq!(s.template_versions(&a, id).await.unwrap().len(), 3);

    // Lists: newest first, filters, cursor.
    let results = TemplateId::new_random();
    s.create_template(
        &a,
        results,
        &Template::create(email_draft("results_ready")).unwrap(),
        &audit("template.create", at(14)),
    )
    .await
    .unwrap();
    let names = |p: tidings::store::Page<tidings::store::outbound::StoredTemplate>| {
        p.items
            .into_iter()
            .map(|x| x.template.name.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    let all = TemplateFilter::default();
    assert_eq!(
        names(s.list_templates(&a, &all, page(10, None)).await.unwrap()),
        vec!["results_ready", "reminder_24h"]
    );
    let email = TemplateFilter {
        channel: Some(Channel::Email),
        ..Default::default()
    };
    assert_eq!(
        names(s.list_templates(&a, &email, page(10, None)).await.unwrap()),
        vec!["results_ready"]
    );
    let reminders = TemplateFilter {
        kind: Some(MessageKind::AppointmentReminder),
        ..Default::default()
    };
    assert_eq!(
        names(
            s.list_templates(&a, &reminders, page(10, None))
                .await
                .unwrap()
        ),
        vec!["reminder_24h"]
    );
    let inactive = TemplateFilter {
        active: Some(false),
        ..Default::default()
    };
    assert_eq!(
        names(
            s.list_templates(&a, &inactive, page(10, None))
                .await
                .unwrap()
        ),
        vec!["reminder_24h"]
    );
    let first = s.list_templates(&a, &all, page(1, None)).await.unwrap();
    assert!(first.next.is_some());
    let second = s
        .list_templates(&a, &all, page(1, first.next))
        .await
        .unwrap();
    assert_eq!(names(first), vec!["results_ready"]);
    assert_eq!(second.next, None);
    assert_eq!(names(second), vec!["reminder_24h"]);

    // Soft delete frees the name and keeps the versions.
    s.delete_template(&a, id, &audit("template.delete", at(20)))
        .await
        .unwrap();
    assert_eq!(s.get_template(&a, id).await.unwrap(), None);
    assert_eq!(s.template_by_name(&a, "reminder_24h").await.unwrap(), None);
    assert_not_found(
        s.delete_template(&a, id, &audit("template.delete", at(21)))
            .await,
    );
    let v4 = v3.revise(draft("reminder_24h")).unwrap();
    assert_not_found(
        s.update_template(&a, id, &v4, &audit("template.update", at(21)))
            .await,
    );
    assert_not_found(
        s.set_template_active(&a, id, true, &audit("template.toggle", at(21)))
            .await,
    );
    assert_eq!(
        s.template_version(&a, id, 1).await.unwrap(),
        Some(v1.clone())
    );
    assert_eq!(s.template_versions(&a, id).await.unwrap().len(), 3);
    assert_eq!(
        names(s.list_templates(&a, &all, page(10, None)).await.unwrap()),
        vec!["results_ready"]
    );
    let again = TemplateId::new_random();
    s.create_template(&a, again, &v1, &audit("template.create", at(22)))
        .await
        .unwrap();
    assert_eq!(
        s.template_by_name(&a, "reminder_24h")
            .await
            .unwrap()
            .map(|x| x.id),
        Some(again)
    );
}

async fn concurrent_template_edits_conflict(b: &Backend) {
    let [n1, n2] = b.two_nodes().await;
    let a = t("clinic-a");
    let id = TemplateId::new_random();
    let v1 = Template::create(draft("reminder_24h")).unwrap();
    n1.create_template(&a, id, &v1, &audit("template.create", at(0)))
        .await
        .unwrap();
    let left = v1
        .revise(TemplateDraft {
            body_en: "left {patient_name} {date}".into(),
            ..draft("reminder_24h")
        })
        .unwrap();
    let right = v1
        .revise(TemplateDraft {
            body_en: "right {patient_name} {date}".into(),
            ..draft("reminder_24h")
        })
        .unwrap();
    let audit_l = audit("template.update", at(1));
    let audit_r = audit("template.update", at(1));
    let (l, r) = tokio::join!(
        n1.update_template(&a, id, &left, &audit_l),
        n2.update_template(&a, id, &right, &audit_r),
    );
    let oks = [l.is_ok(), r.is_ok()];
    assert_eq!(oks.iter().filter(|ok| **ok).count(), 1, "{l:?} {r:?}");
    let winner = if l.is_ok() { left } else { right };
    let loser = if l.is_ok() { r } else { l };
    assert_conflict(loser);
    assert_eq!(
        n1.get_template(&a, id).await.unwrap().unwrap().template,
        winner
    );
    assert_eq!(n1.template_versions(&a, id).await.unwrap().len(), 2);
    let audits = n1
        .list_audit(&a, &AuditFilter::default(), page(10, None))
        .await
        .unwrap();
    // The losing edit left no audit entry: the log only records what happened.
    assert_eq!(audits.items.len(), 2);
}

// ---------------------------------------------------------------------------
// Patients
// ---------------------------------------------------------------------------

async fn patient_preferences_round_trip(b: &Backend) {
    let s = b.store.as_ref();
    let a = t("clinic-a");
    assert_eq!(s.patient_preferences(&a, &pid("p-1")).await.unwrap(), None);

    // Defaults stay defaults: English, every channel on, no kind stored explicitly.
    let defaults = PatientPreferences::default();
    s.put_patient_preferences(&a, &pid("p-1"), &defaults, None, at(0))
        .await
        .unwrap();
    let got = s
        .patient_preferences(&a, &pid("p-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, defaults);
    assert_eq!(got.language, Language::En);
    assert_eq!(got.kinds.explicit().count(), 0);
    assert!(!got.kinds.get(MessageKind::Marketing));

    let mut kinds = KindSwitches::default();
    kinds.set(MessageKind::Marketing, true);
    kinds.set(MessageKind::Billing, false);
    kinds.set(MessageKind::Results, true);
    let full = PatientPreferences {
        phone: Some(PhoneNumber::parse("+966501234567").unwrap()),
        email: Some(EmailAddress::parse("patient@clinic.example").unwrap()),
        language: Language::Ar,
        preferred_channel: Some(Channel::Whatsapp),
        channels: ChannelSwitches {
            sms: false,
            whatsapp: true,
            email: false,
        },
        kinds,
    };
    let change = entry(
        "api_key:tdk_test",
        "patient.preferences",
        "patient:p-2",
        at(5),
    );
    s.put_patient_preferences(&a, &pid("p-2"), &full, Some(&change), at(5))
        .await
        .unwrap();
    assert_eq!(
        s.patient_preferences(&a, &pid("p-2")).await.unwrap(),
        Some(full.clone())
    );

    // Overwrite.
    let changed = PatientPreferences {
        language: Language::En,
        preferred_channel: None,
        email: None,
        ..full.clone()
    };
    s.put_patient_preferences(&a, &pid("p-2"), &changed, None, at(6))
        .await
        .unwrap();
    assert_eq!(
        s.patient_preferences(&a, &pid("p-2")).await.unwrap(),
        Some(changed.clone())
    );

    let many = s
        .patient_preferences_many(&a, &[pid("p-1"), pid("p-2"), pid("p-3")])
        .await
        .unwrap();
    assert_eq!(
        many,
        BTreeMap::from([(pid("p-1"), defaults), (pid("p-2"), changed)])
    );
    assert!(s
        .patient_preferences_many(&a, &[])
        .await
        .unwrap()
        .is_empty());
    let audits = s
        .list_audit(&a, &AuditFilter::default(), page(10, None))
        .await
        .unwrap();
    assert_eq!(audits.items.len(), 1);
    assert_eq!(audits.items[0].entry, change);
}

// ---------------------------------------------------------------------------
// Enqueue
// ---------------------------------------------------------------------------

async fn enqueue_commits_rows_events_batch_and_audit(b: &Backend) {
    let s = b.store.as_ref();
    let a = t("clinic-a");
    let batch = NewBatch {
        id: BatchId::new_random(),
        template: Some("reminder_24h".into()),
    };
    let tref = TemplateRef {
        id: TemplateId::new_random(),
        name: "reminder_24h".into(),
        version: 3,
    };
    let first = NewMessage {
        template: Some(tref.clone()),
        group_key: Some("appt-1".into()),
        batch: Some(batch.id),
        send_at: at(30),
        ..msg(Some("p-1"), "+966501234567", "مرحباً Ahmed\u{200F}")
    };
    let email = NewMessage {
        channel: Channel::Email,
        to: Some(Address::Email(
            EmailAddress::parse("p2@clinic.example").unwrap(),
        )),
        subject: Some("Your results".into()),
        language: Language::Ar,
        kind: MessageKind::Results,
        batch: Some(batch.id),
        ..msg(Some("p-2"), "+966501234567", "results")
    };
    let suppressed = NewMessage {
        to: None,
        status: MessageStatus::Suppressed,
        suppression: Some((
            "kind_disabled".into(),
            "the patient turned off marketing messages".into(),
        )),
        kind: MessageKind::Marketing,
        batch: Some(batch.id),
        ..msg(Some("p-3"), "+966501234567", "offer")
    };
    let bulk = audit("message.bulk", at(1));
    let out = enqueue_with(
        s,
        &a,
        vec![first.clone(), email.clone(), suppressed.clone()],
        Some(&batch),
        None,
        Some(&bulk),
        at(1),
    )
    .await;
    assert_eq!(
        out,
        EnqueueOutcome::Committed {
            queued: 2,
            suppressed: 1
        }
    );

    let got = message(s, &a, first.id).await;
    let expected = MessageRecord {
        seq: got.seq,
        id: first.id,
        tenant: a.clone(),
        patient: first.patient.clone(),
        channel: Channel::Sms,
        to: first.to.clone(),
        language: Language::En,
        kind: MessageKind::AppointmentReminder,
        template: Some(tref),
        variables: first.variables.clone(),
        subject: None,
        body: "مرحباً Ahmed\u{200F}".into(),
        status: MessageStatus::Queued,
        suppression: None,
        send_at: at(30),
        group_key: Some("appt-1".into()),
        batch: Some(batch.id),
        provider: None,
        provider_message_id: None,
        price: None,
        attempts: 0,
        failures: 0,
        last_error: None,
        created_at: at(1),
        updated_at: at(1),
        redacted_at: None,
    };
    assert_eq!(got, expected);
    let got_email = message(s, &a, email.id).await;
    assert_eq!(
        (
            got_email.to.clone(),
            got_email.subject.as_deref(),
            got_email.language,
            got_email.kind
        ),
        (
            email.to.clone(),
            Some("Your results"),
            Language::Ar,
            MessageKind::Results
        )
    );
    assert!(got_email.seq > got.seq);
    let got_sup = message(s, &a, suppressed.id).await;
    assert_eq!(
        (got_sup.status, got_sup.to, got_sup.suppression),
        (
            MessageStatus::Suppressed,
            None,
            suppressed.suppression.clone()
        )
    );

    let events = s.message_events(&a, first.id).await.unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.event.as_str(), e.at))
            .collect::<Vec<_>>(),
        vec![("created", at(1)), ("queued", at(1))]
    );
    assert_eq!(
        event_names(s, &a, suppressed.id).await,
        vec!["created", "suppressed"]
    );
    let why: serde_json::Value =
        serde_json::from_str(&s.message_events(&a, suppressed.id).await.unwrap()[1].detail)
            .unwrap();
    assert_eq!(why["code"], "kind_disabled");

    let status = s.batch_status(&a, batch.id).await.unwrap().unwrap();
    assert_eq!(
        (
            status.id,
            status.template.as_deref(),
            status.created_at,
            status.total
        ),
        (batch.id, Some("reminder_24h"), at(1), 3)
    );
    assert_eq!(
        status.by_status,
        BTreeMap::from([(MessageStatus::Queued, 2), (MessageStatus::Suppressed, 1)])
    );
    assert_eq!(
        s.batch_status(&a, BatchId::new_random()).await.unwrap(),
        None
    );
    let audits = s
        .list_audit(&a, &AuditFilter::default(), page(10, None))
        .await
        .unwrap();
    assert_eq!(
        audits.items.iter().map(|r| &r.entry).collect::<Vec<_>>(),
        vec![&bulk]
    );
    // Suppressed messages are not pending; queued ones are, whatever their send_at.
    assert_eq!(s.pending_messages().await.unwrap(), 2);
}

async fn enqueue_without_commit_writes_nothing(b: &Backend) {
    let s = b.store.as_ref();
    let a = t("clinic-a");
    let batch = NewBatch {
        id: BatchId::new_random(),
        template: None,
    };
    let claim = IdempotencyClaim {
        key: "bulk-1".into(),
        request_hash: "h1".into(),
    };
    let messages = queued(700);
    let first_id = messages[0].id;
    let (tx, rx) = mpsc::channel(2);
    let producer = tokio::spawn(async move {
        // Two chunks, then the producer fails: the channel closes without Commit.
        tx.send(EnqueueFeed::Chunk(messages[..500].to_vec()))
            .await
            .unwrap();
        tx.send(EnqueueFeed::Chunk(messages[500..].to_vec()))
            .await
            .unwrap();
    });
    let bulk = audit("message.bulk", at(0));
    let out = s
        .enqueue(
            &a,
            Some(&batch),
            rx,
            Some((&claim, "{}")),
            Some(&bulk),
            at(0),
        )
        .await
        .unwrap();
    producer.await.unwrap();
    assert_eq!(out, EnqueueOutcome::Aborted);
    assert_eq!(s.get_message(&a, first_id).await.unwrap(), None);
    assert_eq!(s.batch_status(&a, batch.id).await.unwrap(), None);
    assert!(list_ids(s, &a, MessageFilter::default()).await.is_empty());
    assert!(s
        .list_audit(&a, &AuditFilter::default(), page(10, None))
        .await
        .unwrap()
        .items
        .is_empty());
    assert_eq!(s.pending_messages().await.unwrap(), 0);
    // The key was not kept either: the same request can be sent again.
    let out = enqueue_with(
        s,
        &a,
        queued(1),
        Some(&batch),
        Some((&claim, "{}")),
        None,
        at(1),
    )
    .await;
    assert_eq!(
        out,
        EnqueueOutcome::Committed {
            queued: 1,
            suppressed: 0
        }
    );
}

async fn enqueue_idempotent_replay_and_key_reuse(b: &Backend) {
    let s = b.store.as_ref();
    let a = t("clinic-a");
    let claim = IdempotencyClaim {
        key: "send-1".into(),
        request_hash: "hash-1".into(),
    };
    let response = r#"{"id": "m-1", "status": "queued", "channel": "sms"}"#;
    let out = enqueue_with(
        s,
        &a,
        queued(2),
        None,
        Some((&claim, response)),
        None,
        at(0),
    )
    .await;
    assert_eq!(
        out,
        EnqueueOutcome::Committed {
            queued: 2,
            suppressed: 0
        }
    );
    let out = enqueue_with(s, &a, queued(2), None, Some((&claim, "other")), None, at(1)).await;
    assert_eq!(
        out,
        EnqueueOutcome::Replayed {
            response: response.into()
        }
    );
    let reused = IdempotencyClaim {
        request_hash: "hash-2".into(),
        ..claim.clone()
    };
    let out = enqueue_with(s, &a, queued(2), None, Some((&reused, "x")), None, at(2)).await;
    assert_eq!(out, EnqueueOutcome::KeyReused);
    assert_eq!(list_ids(s, &a, MessageFilter::default()).await.len(), 2);
    // Retention forgets keys older than its cutoff, and only those.
    s.purge_before(at(0), 100).await.unwrap();
    let out = enqueue_with(s, &a, queued(2), None, Some((&reused, "x")), None, at(4)).await;
    assert_eq!(out, EnqueueOutcome::KeyReused);
    s.purge_before(at(1), 100).await.unwrap();
    let out = enqueue_with(s, &a, queued(2), None, Some((&reused, "x")), None, at(4)).await;
    assert_eq!(
        out,
        EnqueueOutcome::Committed {
            queued: 2,
            suppressed: 0
        }
    );
    // Keys are per tenant.
    let out = enqueue_with(
        s,
        &t("clinic-b"),
        queued(1),
        None,
        Some((&claim, response)),
        None,
        at(3),
    )
    .await;
    assert_eq!(
        out,
        EnqueueOutcome::Committed {
            queued: 1,
            suppressed: 0
        }
    );
}

async fn concurrent_enqueues_with_one_key_commit_once(b: &Backend) {
    let [n1, n2] = b.two_nodes().await;
    let a = t("clinic-a");
    let claim = IdempotencyClaim {
        key: "bulk-7".into(),
        request_hash: "same-body".into(),
    };
    let (feed1, rx1) = mpsc::channel(2);
    let (feed2, rx2) = mpsc::channel(2);
    let first = {
        let (store, a, claim) = (n1.clone(), a.clone(), claim.clone());
        tokio::spawn(async move {
            store
                .enqueue(&a, None, rx1, Some((&claim, "first")), None, at(0))
                .await
        })
    };
    feed1.send(EnqueueFeed::Chunk(queued(3))).await.unwrap();
    // The first request holds its key (its transaction is open) while the second arrives.
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let second = {
        let (store, a, claim) = (n2.clone(), a.clone(), claim.clone());
        tokio::spawn(async move {
            store
                .enqueue(&a, None, rx2, Some((&claim, "second")), None, at(1))
                .await
        })
    };
    // Ignored results: the second request may stop reading its feed (a replay).
    let _ = feed2.send(EnqueueFeed::Chunk(queued(3))).await;
    let _ = feed2.send(EnqueueFeed::Commit).await;
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    feed1.send(EnqueueFeed::Commit).await.unwrap();
    assert_eq!(
        first.await.unwrap().unwrap(),
        EnqueueOutcome::Committed {
            queued: 3,
            suppressed: 0
        }
    );
    assert_eq!(
        second.await.unwrap().unwrap(),
        EnqueueOutcome::Replayed {
            response: "first".into()
        }
    );
    assert_eq!(
        list_ids(n1.as_ref(), &a, MessageFilter::default())
            .await
            .len(),
        3
    );
}

async fn ten_thousand_messages_in_one_feed(b: &Backend) {
    let s = b.store.as_ref();
    let a = t("clinic-a");
    let batch = NewBatch {
        id: BatchId::new_random(),
        template: Some("reminder_24h".into()),
    };
    let messages: Vec<NewMessage> = (0..10_000)
        .map(|i| NewMessage {
            batch: Some(batch.id),
            ..msg(
                Some(&format!("p-{i}")),
                "+966501234567",
                &format!("Reminder {i} for تذكير"),
            )
        })
        .collect();
    let (first, last) = (messages[0].id, messages[9_999].id);
    let started = std::time::Instant::now();
    let out = enqueue_with(s, &a, messages, Some(&batch), None, None, at(0)).await;
    let took = started.elapsed();
    eprintln!(
        "outbound_store: 10,000 messages enqueued in one feed in {took:?} (bound printed, not asserted)"
    );
    assert_eq!(
        out,
        EnqueueOutcome::Committed {
            queued: 10_000,
            suppressed: 0
        }
    );
    let status = s.batch_status(&a, batch.id).await.unwrap().unwrap();
    assert_eq!(status.total, 10_000);
    assert_eq!(
        status.by_status,
        BTreeMap::from([(MessageStatus::Queued, 10_000)])
    );
    assert_eq!(s.pending_messages().await.unwrap(), 10_000);
    let newest = s
        .list_messages(&a, &MessageFilter::default(), page(1, None))
        .await
        .unwrap();
    assert_eq!(newest.items[0].id, last);
    assert_eq!(message(s, &a, first).await.body, "Reminder 0 for تذكير");
    assert_eq!(event_names(s, &a, last).await, vec!["created", "queued"]);
}

// ---------------------------------------------------------------------------
// Claims and attempts
// ---------------------------------------------------------------------------

async fn concurrent_claimers_never_share_a_message(b: &Backend) {
    let nodes = b.two_nodes().await;
    let a = t("clinic-a");
    let messages = queued(400);
    let all: HashSet<MessageId> = messages.iter().map(|m| m.id).collect();
    enqueue(nodes[0].as_ref(), &a, messages).await;
    let mut loops = Vec::new();
    for i in 0..6 {
        let store: Arc<dyn Store> = nodes[i % 2].clone();
        loops.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store.claim_due(at(1), at(61), 7).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got);
            }
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for l in loops {
        for c in l.await.unwrap() {
            total += 1;
            assert!(seen.insert(c.message.id), "claimed twice: {}", c.message.id);
            assert_eq!(c.previous_status, MessageStatus::Queued);
            assert_eq!(c.message.status, MessageStatus::Sending);
        }
    }
    assert_eq!(total, 400);
    assert_eq!(seen, all);
    // While the leases hold, nothing more is due.
    assert!(claim(nodes[1].as_ref(), 60, 120, 100).await.is_empty());
    let one = *all.iter().next().unwrap();
    assert_eq!(
        event_names(nodes[0].as_ref(), &a, one).await,
        vec!["created", "queued", "sending"]
    );
    assert_eq!(nodes[0].pending_messages().await.unwrap(), 400);
}

async fn expired_lease_is_reclaimed_as_sending(b: &Backend) {
    let s = b.store.as_ref();
    let a = t("clinic-a");
    let m = msg(None, "+966501234567", "hello");
    enqueue(s, &a, vec![m.clone()]).await;
    let first = claim(s, 1, 31, 10).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].previous_status, MessageStatus::Queued);
    // The lease holds up to and including its end.
    assert!(claim(s, 30, 60, 10).await.is_empty());
    assert!(claim(s, 31, 60, 10).await.is_empty());
    let second = claim(s, 32, 62, 10).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].message.id, m.id);
    assert_eq!(second[0].previous_status, MessageStatus::Sending);
    assert_ne!(second[0].lease_token, first[0].lease_token);

    // The first worker comes back: its lease is gone, nothing is written.
    let before = message(s, &a, m.id).await;
    assert!(!s
        .finish_attempt(&a, m.id, first[0].lease_token, &sent("SM-old", 33), at(33))
        .await
        .unwrap());
    assert_eq!(message(s, &a, m.id).await, before);
    assert!(s
        .finish_attempt(&a, m.id, second[0].lease_token, &sent("SM-new", 34), at(34))
        .await
        .unwrap());
    let done = message(s, &a, m.id).await;
    assert_eq!(
        (
            done.status,
            done.provider_message_id.as_deref(),
            done.attempts,
            done.updated_at
        ),
        (MessageStatus::Sent, Some("SM-new"), 1, at(34))
    );
    assert_eq!(
        event_names(s, &a, m.id).await,
        vec!["created", "queued", "sending", "sending", "sent"]
    );
    let details = s.message_events(&a, m.id).await.unwrap();
    let claim_detail: serde_json::Value = serde_json::from_str(&details[3].detail).unwrap();
    assert_eq!(claim_detail["previous_status"], "sending");
    assert_eq!(s.pending_messages().await.unwrap(), 0);
}

async fn future_sends_wait_and_oldest_due_goes_first(b: &Backend) {
    let s = b.store.as_ref();
    let a = t("clinic-a");
    let later = NewMessage {
        send_at: at(100),
        ..msg(None, "+966501234567", "later")
    };
    let soon = NewMessage {
        send_at: at(20),
        ..msg(None, "+966501234567", "soon")
    };
    let sooner = NewMessage {
        send_at: at(10),
        ..msg(None, "+966501234567", "sooner")
    };
    enqueue(s, &a, vec![later.clone(), soon.clone(), sooner.clone()]).await;
    assert!(claim(s, 9, 70, 10).await.is_empty());
    let got = claim(s, 30, 500, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message.id, sooner.id, "oldest due first");
    let got = claim(s, 99, 160, 10).await;
    assert_eq!(
        got.iter().map(|c| c.message.id).collect::<Vec<_>>(),
        vec![soon.id]
    );
    // Due exactly at send_at.
    let got = claim(s, 100, 160, 10).await;
    assert_eq!(
        got.iter().map(|c| c.message.id).collect::<Vec<_>>(),
        vec![later.id]
    );
    assert_eq!(got[0].message.send_at, at(100));
}

async fn finish_attempt_follows_the_lease(b: &Backend) {
    let s = b.store.as_ref();
    let a = t("clinic-a");
    let m = msg(None, "+966501234567", "hello");
    enqueue(s, &a, vec![m.clone()]).await;
    let c = claim(s, 1, 31, 1).await.remove(0);

    // A stale token writes nothing at all.
    let before = message(s, &a, m.id).await;
    let events_before = s.message_events(&a, m.id).await.unwrap();
    assert!(!s
        .finish_attempt(&a, m.id, uuid::Uuid::new_v4(), &sent("SM-x", 2), at(2))
        .await
        .unwrap());
    assert_eq!(message(s, &a, m.id).await, before);
    assert_eq!(s.message_events(&a, m.id).await.unwrap(), events_before);

    // A transient failure: back to the queue until the retry time.
    let retry = AttemptUpdate {
        failures: 1,
        last_error: Some("timeout after 10s".into()),
        ..attempt(MessageStatus::Queued, Some(at(120)), 2)
    };
    assert!(s
        .finish_attempt(&a, m.id, c.lease_token, &retry, at(2))
        .await
        .unwrap());
    let got = message(s, &a, m.id).await;
    assert_eq!(
        (
            got.status,
            got.attempts,
            got.failures,
            got.provider.as_deref(),
            got.last_error.as_deref()
        ),
        (
            MessageStatus::Queued,
            1,
            1,
            Some("twilio"),
            Some("timeout after 10s")
        )
    );
    // The lease ended with the result: the same token cannot write twice.
    assert!(!s
        .finish_attempt(&a, m.id, c.lease_token, &sent("SM-x", 3), at(3))
        .await
        .unwrap());
    assert!(claim(s, 119, 200, 1).await.is_empty());
    let c = claim(s, 120, 200, 1).await.remove(0);
    assert_eq!(c.previous_status, MessageStatus::Queued);
    assert_eq!(c.message.failures, 1);

    // Outcome unknown: it stays sending until the deadline, then is claimed again.
    let unknown = AttemptUpdate {
        failures: 1,
        ..attempt(MessageStatus::Sending, Some(at(700)), 121)
    };
    assert!(s
        .finish_attempt(&a, m.id, c.lease_token, &unknown, at(121))
        .await
        .unwrap());
    assert_eq!(status(s, &a, m.id).await, MessageStatus::Sending);
    assert!(claim(s, 699, 800, 1).await.is_empty());
    let c = claim(s, 701, 800, 1).await.remove(0);
    assert_eq!(c.previous_status, MessageStatus::Sending);
    assert_eq!(c.message.attempts, 2);

    let ok = AttemptUpdate {
        price: Some(usd("0.0075")),
        failures: 0,
        ..sent("SM-ok", 702)
    };
    assert!(s
        .finish_attempt(&a, m.id, c.lease_token, &ok, at(702))
        .await
        .unwrap());
    let got = message(s, &a, m.id).await;
    assert_eq!(
        (
            got.status,
            got.attempts,
            got.failures,
            got.provider_message_id.as_deref(),
            got.price.clone(),
            got.last_error.as_deref()
        ),
        (
            MessageStatus::Sent,
            3,
            0,
            Some("SM-ok"),
            Some(usd("0.0075")),
            None
        )
    );
    assert_eq!(
        event_names(s, &a, m.id).await,
        vec!["created", "queued", "sending", "queued", "sending", "sending", "sending", "sent"]
    );
    // Terminal failures leave the queue for good.
    let bounced = NewMessage {
        ..msg(None, "+966501234567", "bounce me")
    };
    enqueue(s, &a, vec![bounced.clone()]).await;
    let c = claim(s, 800, 900, 1).await.remove(0);
    let update = AttemptUpdate {
        last_error: Some("21211 invalid number".into()),
        ..attempt(MessageStatus::Bounced, None, 801)
    };
    assert!(s
        .finish_attempt(&a, bounced.id, c.lease_token, &update, at(801))
        .await
        .unwrap());
    assert_eq!(status(s, &a, bounced.id).await, MessageStatus::Bounced);
    assert!(claim(s, 5000, 6000, 10).await.is_empty());
    assert_eq!(s.pending_messages().await.unwrap(), 0);
}

// ---------------------------------------------------------------------------
// Callbacks
// ---------------------------------------------------------------------------

async fn callbacks_move_forward_only_and_replays_change_nothing(b: &Backend) {
    let s = b.store.as_ref();
    let a = t("clinic-a");
    let m = msg(None, "+966501234567", "hello");
    enqueue(s, &a, vec![m.clone()]).await;
    let c = claim(s, 1, 31, 1).await.remove(0);
    assert!(s
        .finish_attempt(&a, m.id, c.lease_token, &sent("SM42", 2), at(2))
        .await
        .unwrap());

    let expected = CallbackTarget {
        tenant: a.clone(),
        id: m.id,
        provider: Some("twilio".into()),
        status: MessageStatus::Sent,
    };
    assert_eq!(
        s.callback_target(None, Some("SM42")).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        s.callback_target(Some(m.id), None).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(s.callback_target(None, Some("SM43")).await.unwrap(), None);
    assert_eq!(
        s.callback_target(Some(MessageId::new_random()), None)
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.callback_target(None, None).await.unwrap(), None);

    let delivered = CallbackUpdate {
        price: Some(usd("0.0075")),
        ..callback(MessageStatus::Delivered, "r-delivered", 10)
    };
    assert_eq!(
        s.apply_callback(&a, m.id, &delivered, at(10))
            .await
            .unwrap(),
        CallbackOutcome::Applied
    );
    let got = message(s, &a, m.id).await;
    assert_eq!(
        (got.status, got.price.clone(), got.updated_at),
        (MessageStatus::Delivered, Some(usd("0.0075")), at(10))
    );

    // Out of order: `sent` after `delivered` is recorded but does not move the status.
    assert_eq!(
        s.apply_callback(
            &a,
            m.id,
            &callback(MessageStatus::Sent, "r-sent", 11),
            at(11)
        )
        .await
        .unwrap(),
        CallbackOutcome::Stale
    );
    let failed = CallbackUpdate {
        error: Some("30003 unreachable".into()),
        ..callback(MessageStatus::Failed, "r-failed", 12)
    };
    assert_eq!(
        s.apply_callback(&a, m.id, &failed, at(12)).await.unwrap(),
        CallbackOutcome::Stale
    );
    let got = message(s, &a, m.id).await;
    assert_eq!(
        (got.status, got.last_error, got.updated_at),
        (MessageStatus::Delivered, None, at(10))
    );

    // The same bytes again: nothing written, not even an event.
    let events = s.message_events(&a, m.id).await.unwrap();
    assert_eq!(
        s.apply_callback(&a, m.id, &delivered, at(13))
            .await
            .unwrap(),
        CallbackOutcome::Replay
    );
    assert_eq!(s.message_events(&a, m.id).await.unwrap(), events);

    assert_eq!(
        s.apply_callback(
            &a,
            m.id,
            &callback(MessageStatus::Read, "r-read", 14),
            at(14)
        )
        .await
        .unwrap(),
        CallbackOutcome::Applied
    );
    assert_eq!(status(s, &a, m.id).await, MessageStatus::Read);
    let events = s.message_events(&a, m.id).await.unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.event.as_str(), e.at))
            .skip(3)
            .collect::<Vec<_>>(),
        vec![
            ("sent", at(2)),
            ("delivered", at(10)),
            ("sent", at(11)),
            ("failed", at(12)),
            ("read", at(14))
        ]
    );
    assert_eq!(
        events[4].detail,
        r#"{"provider": "twilio", "step": "delivered"}"#
    );

    assert_not_found(
        s.apply_callback(
            &a,
            MessageId::new_random(),
            &callback(MessageStatus::Delivered, "r-unknown", 15),
            at(15),
        )
        .await,
    );
    // A receipt of a callback for an unknown message was not kept.
    assert_eq!(
        s.apply_callback(
            &a,
            m.id,
            &callback(MessageStatus::Delivered, "r-unknown", 16),
            at(16)
        )
        .await
        .unwrap(),
        CallbackOutcome::Stale
    );
}

async fn a_late_send_result_keeps_the_callback_status(b: &Backend) {
    let s = b.store.as_ref();
    let a = t("clinic-a");
    let fast = msg(None, "+966501234567", "fast callback");
    let failing = msg(None, "+966501234567", "failed callback");
    enqueue(s, &a, vec![fast.clone(), failing.clone()]).await;
    let claims = claim(s, 1, 31, 10).await;
    let token = |id: MessageId| {
        claims
            .iter()
            .find(|c| c.message.id == id)
            .unwrap()
            .lease_token
    };

    // The delivery callback beats the provider's HTTP answer.
    assert_eq!(
        s.apply_callback(
            &a,
            fast.id,
            &callback(MessageStatus::Delivered, "r-1", 2),
            at(2)
        )
        .await
        .unwrap(),
        CallbackOutcome::Applied
    );
    let late = AttemptUpdate {
        price: Some(usd("0.05")),
        ..sent("SM-fast", 3)
    };
    assert!(s
        .finish_attempt(&a, fast.id, token(fast.id), &late, at(3))
        .await
        .unwrap());
    let got = message(s, &a, fast.id).await;
    assert_eq!(
        (
            got.status,
            got.provider_message_id.as_deref(),
            got.price,
            got.attempts
        ),
        (
            MessageStatus::Delivered,
            Some("SM-fast"),
            Some(usd("0.05")),
            1
        )
    );

    // A retry decision after a failure callback is stale: nothing written.
    assert_eq!(
        s.apply_callback(
            &a,
            failing.id,
            &callback(MessageStatus::Failed, "r-2", 2),
            at(2)
        )
        .await
        .unwrap(),
        CallbackOutcome::Applied
    );
    let before = message(s, &a, failing.id).await;
    let retry = attempt(MessageStatus::Queued, Some(at(60)), 3);
    assert!(!s
        .finish_attempt(&a, failing.id, token(failing.id), &retry, at(3))
        .await
        .unwrap());
    assert_eq!(message(s, &a, failing.id).await, before);
    assert!(claim(s, 100, 200, 10).await.is_empty());
}

// ---------------------------------------------------------------------------
// Administrative transitions
// ---------------------------------------------------------------------------

async fn cancel_cancel_group_and_retry(b: &Backend) {
    let s = b.store.as_ref();
    let a = t("clinic-a");
    let single = NewMessage {
        send_at: at(1000),
        ..msg(None, "+966501234567", "single")
    };
    let in_flight = msg(None, "+966501234567", "in flight");
    let g1 = NewMessage {
        send_at: at(1000),
        group_key: Some("appt-9".into()),
        ..msg(None, "+966501234567", "g1")
    };
    let g2 = NewMessage {
        send_at: at(2000),
        group_key: Some("appt-9".into()),
        ..msg(None, "+966501234567", "g2")
    };
    let g3 = NewMessage {
        group_key: Some("appt-9".into()),
        ..msg(None, "+966501234567", "g3 already sending")
    };
    let other_group = NewMessage {
        send_at: at(1000),
        group_key: Some("appt-10".into()),
        ..msg(None, "+966501234567", "other group")
    };
    enqueue(
        s,
        &a,
        vec![
            single.clone(),
            in_flight.clone(),
            g1.clone(),
            g2.clone(),
            g3.clone(),
            other_group.clone(),
        ],
    )
    .await;
    let claims = claim(s, 1, 5000, 10).await;
    assert_eq!(
        claims.iter().map(|c| c.message.id).collect::<Vec<_>>(),
        vec![in_flight.id, g3.id]
    );

    let cancel = audit("message.cancel", at(5));
    let got = s
        .cancel_message(&a, single.id, &cancel, at(5))
        .await
        .unwrap();
    assert_eq!(
        (got.status, got.updated_at),
        (MessageStatus::Cancelled, at(5))
    );
    assert_eq!(
        event_names(s, &a, single.id).await,
        vec!["created", "queued", "cancelled"]
    );
    assert_conflict(s.cancel_message(&a, single.id, &cancel, at(6)).await);
    assert_conflict(s.cancel_message(&a, in_flight.id, &cancel, at(6)).await);
    assert_not_found(
        s.cancel_message(&a, MessageId::new_random(), &cancel, at(6))
            .await,
    );

    let group = audit("message.cancel_group", at(7));
    assert_eq!(
        s.cancel_group(&a, "appt-9", Some(&group), at(7))
            .await
            .unwrap(),
        2
    );
    assert_eq!(status(s, &a, g1.id).await, MessageStatus::Cancelled);
    assert_eq!(status(s, &a, g2.id).await, MessageStatus::Cancelled);
    assert_eq!(status(s, &a, g3.id).await, MessageStatus::Sending);
    assert_eq!(status(s, &a, other_group.id).await, MessageStatus::Queued);
    assert_eq!(
        event_names(s, &a, g2.id).await,
        vec!["created", "queued", "cancelled"]
    );
    assert_eq!(s.cancel_group(&a, "appt-9", None, at(8)).await.unwrap(), 0);
    assert_eq!(s.cancel_group(&a, "nobody", None, at(8)).await.unwrap(), 0);
    // Cancelled messages are never claimed.
    assert_eq!(
        claim(s, 2500, 2600, 10)
            .await
            .iter()
            .map(|c| c.message.id)
            .collect::<Vec<_>>(),
        vec![other_group.id]
    );

    // Manual retry: failed or bounced only.
    let retry = audit("message.retry", at(9));
    assert_conflict(s.retry_message(&a, in_flight.id, &retry, at(9)).await);
    assert_conflict(s.retry_message(&a, single.id, &retry, at(9)).await);
    let token = claims
        .iter()
        .find(|c| c.message.id == in_flight.id)
        .unwrap()
        .lease_token;
    let failed = AttemptUpdate {
        failures: 4,
        last_error: Some("503 after 3 retries".into()),
        ..attempt(MessageStatus::Failed, None, 10)
    };
    assert!(s
        .finish_attempt(&a, in_flight.id, token, &failed, at(10))
        .await
        .unwrap());
    let got = s
        .retry_message(&a, in_flight.id, &retry, at(20))
        .await
        .unwrap();
    assert_eq!(
        (
            got.status,
            got.failures,
            got.provider.clone(),
            got.attempts,
            got.updated_at
        ),
        (MessageStatus::Queued, 0, None, 1, at(20))
    );
    assert_eq!(
        event_names(s, &a, in_flight.id).await,
        vec!["created", "queued", "sending", "failed", "retry"]
    );
    assert_conflict(s.retry_message(&a, in_flight.id, &retry, at(21)).await);
    assert_not_found(
        s.retry_message(&a, MessageId::new_random(), &retry, at(21))
            .await,
    );
    // Due now: the next claim takes it, from the top of the provider chain.
    let again = claim(s, 20, 80, 10).await;
    assert_eq!(
        again.iter().map(|c| c.message.id).collect::<Vec<_>>(),
        vec![in_flight.id]
    );
    assert_eq!(again[0].previous_status, MessageStatus::Queued);
    let actions: Vec<String> = s
        .list_audit(&a, &AuditFilter::default(), page(10, None))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| r.entry.action)
        .collect();
    assert_eq!(
        actions,
        vec!["message.retry", "message.cancel_group", "message.cancel"]
    );
}

// ---------------------------------------------------------------------------
// Lists and stats
// ---------------------------------------------------------------------------

async fn list_filters_search_and_paging(b: &Backend) {
    let s = b.store.as_ref();
    let a = t("clinic-a");
    let batch = NewBatch {
        id: BatchId::new_random(),
        template: None,
    };
    let ahmed = NewMessage {
        template: Some(TemplateRef {
            id: TemplateId::new_random(),
            name: "reminder_24h".into(),
            version: 1,
        }),
        send_at: at(1000),
        ..msg(
            Some("p-100"),
            "+966501234567",
            "Reminder for AHMED, 50% off_x",
        )
    };
    let sara = NewMessage {
        channel: Channel::Email,
        to: Some(Address::Email(
            EmailAddress::parse("Sara.Q@Clinic.example").unwrap(),
        )),
        subject: Some("Results".into()),
        send_at: at(1000),
        ..msg(Some("p-200"), "+966501234567", "Your results are ready")
    };
    let arabic = NewMessage {
        channel: Channel::Whatsapp,
        group_key: Some("g-1".into()),
        batch: Some(batch.id),
        ..msg(Some("p-300"), "+966555000111", "موعدك غداً الساعة ١٠")
    };
    enqueue_with(s, &a, vec![ahmed.clone()], None, None, None, at(0)).await;
    enqueue_with(s, &a, vec![sara.clone()], None, None, None, at(10)).await;
    enqueue_with(
        s,
        &a,
        vec![arabic.clone()],
        Some(&batch),
        None,
        None,
        at(20),
    )
    .await;
    s.cancel_message(&a, sara.id, &audit("message.cancel", at(21)), at(21))
        .await
        .unwrap();
    let c = claim(s, 21, 80, 10).await.remove(0);
    assert_eq!(c.message.id, arabic.id);
    assert!(s
        .finish_attempt(&a, arabic.id, c.lease_token, &sent("SMabcDEF", 22), at(22))
        .await
        .unwrap());

    let f = MessageFilter::default;
    assert_eq!(
        list_ids(s, &a, f()).await,
        vec![arabic.id, sara.id, ahmed.id]
    );
    let cases: Vec<(MessageFilter, Vec<MessageId>)> = vec![
        (
            MessageFilter {
                status: Some(MessageStatus::Cancelled),
                ..f()
            },
            vec![sara.id],
        ),
        (
            MessageFilter {
                status: Some(MessageStatus::Sent),
                ..f()
            },
            vec![arabic.id],
        ),
        (
            MessageFilter {
                channel: Some(Channel::Whatsapp),
                ..f()
            },
            vec![arabic.id],
        ),
        (
            MessageFilter {
                template: Some("reminder_24h".into()),
                ..f()
            },
            vec![ahmed.id],
        ),
        (
            MessageFilter {
                patient: Some(pid("p-200")),
                ..f()
            },
            vec![sara.id],
        ),
        (
            MessageFilter {
                batch: Some(batch.id),
                ..f()
            },
            vec![arabic.id],
        ),
        (
            MessageFilter {
                group_key: Some("g-1".into()),
                ..f()
            },
            vec![arabic.id],
        ),
        (
            MessageFilter {
                from: Some(at(10)),
                to: Some(at(20)),
                ..f()
            },
            vec![sara.id],
        ),
        (
            MessageFilter {
                from: Some(at(10)),
                ..f()
            },
            vec![arabic.id, sara.id],
        ),
        // Search: case-insensitive substring of body, address, patient id, provider id.
        (
            MessageFilter {
                q: Some("ahmed".into()),
                ..f()
            },
            vec![ahmed.id],
        ),
        (
            MessageFilter {
                q: Some("sara.q@clinic".into()),
                ..f()
            },
            vec![sara.id],
        ),
        (
            MessageFilter {
                q: Some("غداً".into()),
                ..f()
            },
            vec![arabic.id],
        ),
        (
            MessageFilter {
                q: Some("P-30".into()),
                ..f()
            },
            vec![arabic.id],
        ),
        (
            MessageFilter {
                q: Some("smabcdef".into()),
                ..f()
            },
            vec![arabic.id],
        ),
        (
            MessageFilter {
                q: Some("+96655500".into()),
                ..f()
            },
            vec![arabic.id],
        ),
        // LIKE wildcards are literal characters.
        (
            MessageFilter {
                q: Some("50% off_x".into()),
                ..f()
            },
            vec![ahmed.id],
        ),
        (
            MessageFilter {
                q: Some("%".into()),
                ..f()
            },
            vec![ahmed.id],
        ),
        (
            MessageFilter {
                q: Some("r_sults".into()),
                ..f()
            },
            vec![],
        ),
        (
            MessageFilter {
                q: Some("ahmed".into()),
                channel: Some(Channel::Email),
                ..f()
            },
            vec![],
        ),
    ];
    for (filter, want) in cases {
        assert_eq!(list_ids(s, &a, filter.clone()).await, want, "{filter:?}");
    }

    // Cursor paging, newest first.
    enqueue(s, &a, queued(2)).await;
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let p = s.list_messages(&a, &f(), page(2, cursor)).await.unwrap();
        pages += 1;
        seen.extend(p.items.iter().map(|m| m.seq));
        match p.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 5);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "{seen:?}");
}

async fn stats_are_exact_with_zero_days_and_costs(b: &Backend) {
    let s = b.store.as_ref();
    let a = t("clinic-a");
    let day = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
    let when = |iso: &str| {
        DateTime::parse_from_rfc3339(iso)
            .unwrap()
            .with_timezone(&Utc)
    };
    let sms1 = msg(None, "+966501234567", "sms 1");
    let sms2 = msg(None, "+966501234567", "sms 2");
    let email = NewMessage {
        channel: Channel::Email,
        to: Some(Address::Email(
            EmailAddress::parse("p@clinic.example").unwrap(),
        )),
        ..msg(None, "+966501234567", "email")
    };
    let wa = NewMessage {
        channel: Channel::Whatsapp,
        ..msg(None, "+966501234567", "whatsapp")
    };
    let queued_msg = msg(None, "+966501234567", "still queued");
    let before = msg(None, "+966501234567", "before the range");
    let after = msg(None, "+966501234567", "after the range");
    let feed = |m: &NewMessage, iso: &str| (vec![m.clone()], when(iso));
    for (messages, now) in [
        feed(&before, "2026-10-31T23:59:59.999Z"),
        feed(&sms1, "2026-11-02T00:00:00Z"),
        feed(&sms2, "2026-11-02T10:00:00Z"),
        feed(&email, "2026-11-02T23:59:59.999Z"),
        feed(&wa, "2026-11-04T00:00:00Z"),
        feed(&queued_msg, "2026-11-04T12:00:00Z"),
        feed(&after, "2026-11-05T00:00:00Z"),
    ] {
        enqueue_with(s, &a, messages, None, None, None, now).await;
    }
    enqueue_with(
        s,
        &t("clinic-b"),
        queued(3),
        None,
        None,
        None,
        when("2026-11-02T12:00:00Z"),
    )
    .await;
    let priced = |status, receipt: &str, price: Option<Money>| CallbackUpdate {
        price,
        ..callback(status, receipt, 0)
    };
    let eur = Money::parse_price("0.001", "EUR").unwrap();
    for (id, update) in [
        (
            sms1.id,
            priced(MessageStatus::Delivered, "r1", Some(usd("0.0075"))),
        ),
        (
            sms2.id,
            priced(MessageStatus::Failed, "r2", Some(usd("0.008"))),
        ),
        (email.id, priced(MessageStatus::Bounced, "r3", Some(eur))),
        (wa.id, priced(MessageStatus::Read, "r4", Some(usd("0.05")))),
        (
            before.id,
            priced(MessageStatus::Delivered, "r5", Some(usd("9"))),
        ),
    ] {
        assert_eq!(
            s.apply_callback(&a, id, &update, at(0)).await.unwrap(),
            CallbackOutcome::Applied
        );
    }

    let stats = s
        .message_stats(&a, day("2026-11-01"), day("2026-11-05"))
        .await
        .unwrap();
    assert_eq!(stats.total, 5);
    assert_eq!(
        stats.by_status,
        BTreeMap::from([
            (MessageStatus::Queued, 1),
            (MessageStatus::Delivered, 1),
            (MessageStatus::Read, 1),
            (MessageStatus::Failed, 1),
            (MessageStatus::Bounced, 1),
        ])
    );
    assert_eq!(
        stats.by_channel,
        BTreeMap::from([
            (Channel::Sms, 3),
            (Channel::Whatsapp, 1),
            (Channel::Email, 1)
        ])
    );
    let daily = |date: &str, total, delivered, failed| DailyCount {
        date: day(date),
        total,
        delivered,
        failed,
    };
    assert_eq!(
        stats.daily,
        vec![
            daily("2026-11-01", 0, 0, 0),
            daily("2026-11-02", 3, 1, 2),
            daily("2026-11-03", 0, 0, 0),
            daily("2026-11-04", 2, 1, 0),
        ]
    );
    assert_eq!(
        stats.cost,
        vec![
            (Channel::Sms, "USD".to_owned(), 15_500),
            (Channel::Whatsapp, "USD".to_owned(), 50_000),
            (Channel::Email, "EUR".to_owned(), 1_000),
        ]
    );

    let empty = s
        .message_stats(&a, day("2026-12-01"), day("2026-12-03"))
        .await
        .unwrap();
    assert_eq!(
        (empty.total, empty.by_status.len(), empty.cost.len()),
        (0, 0, 0)
    );
    assert_eq!(
        empty.daily,
        vec![daily("2026-12-01", 0, 0, 0), daily("2026-12-02", 0, 0, 0)]
    );
}

// ---------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------

async fn audit_log_filters_and_pages(b: &Backend) {
    let s = b.store.as_ref();
    let a = t("clinic-a");
    let id = TemplateId::new_random();
    let v1 = Template::create(draft("reminder_24h")).unwrap();
    let created = entry("api_key:tdk_a", "template.create", "template:1", at(0));
    let updated = entry("user:dr-1", "template.update", "template:1", at(10));
    let cancelled = entry("api_key:tdk_a", "message.cancel", "message:1", at(20));
    let prefs = entry("user:dr-1", "patient.preferences", "patient:p-1", at(30));
    s.create_template(&a, id, &v1, &created).await.unwrap();
    s.update_template(&a, id, &v1.revise(draft("reminder_24h")).unwrap(), &updated)
        .await
        .unwrap();
    let m = NewMessage {
        send_at: at(1000),
        ..msg(None, "+966501234567", "x")
    };
    enqueue(s, &a, vec![m.clone()]).await;
    s.cancel_message(&a, m.id, &cancelled, at(20))
        .await
        .unwrap();
    s.put_patient_preferences(
        &a,
        &pid("p-1"),
        &PatientPreferences::default(),
        Some(&prefs),
        at(30),
    )
    .await
    .unwrap();

    let list = |filter: AuditFilter| {
        let a = a.clone();
        async move {
            s.list_audit(&a, &filter, page(10, None))
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|r| r.entry)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(AuditFilter::default()).await,
        vec![
            prefs.clone(),
            cancelled.clone(),
            updated.clone(),
            created.clone()
        ]
    );
    let by_action = |action: &str| AuditFilter {
        action: Some(action.into()),
        ..Default::default()
    };
    assert_eq!(
        list(by_action("template.")).await,
        vec![updated.clone(), created.clone()]
    );
    assert_eq!(
        list(by_action("template.update")).await,
        vec![updated.clone()]
    );
    assert_eq!(list(by_action("template")).await, vec![]);
    assert_eq!(list(by_action("templ")).await, vec![]);
    assert_eq!(
        list(AuditFilter {
            actor: Some("user:dr-1".into()),
            ..Default::default()
        })
        .await,
        vec![prefs.clone(), updated.clone()]
    );
    assert_eq!(
        list(AuditFilter {
            from: Some(at(10)),
            to: Some(at(30)),
            ..Default::default()
        })
        .await,
        vec![cancelled.clone(), updated.clone()]
    );
    // The detail comes back byte for byte.
    assert_eq!(created.detail, r#"{"z": 1, "a": [true, null]}"#);

    let first = s
        .list_audit(&a, &AuditFilter::default(), page(3, None))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 3);
    let rest = s
        .list_audit(&a, &AuditFilter::default(), page(3, first.next))
        .await
        .unwrap();
    assert_eq!(
        rest.items.into_iter().map(|r| r.entry).collect::<Vec<_>>(),
        vec![created]
    );
    assert_eq!(rest.next, None);
}

// ---------------------------------------------------------------------------
// Tenants
// ---------------------------------------------------------------------------

async fn every_call_is_scoped_by_tenant(b: &Backend) {
    let s = b.store.as_ref();
    let a = t("clinic-a");
    let other = t("clinic-b");
    let id = TemplateId::new_random();
    let v1 = Template::create(draft("reminder_24h")).unwrap();
    s.create_template(&a, id, &v1, &audit("template.create", at(0)))
        .await
        .unwrap();
    s.put_patient_preferences(
        &a,
        &pid("p-1"),
        &PatientPreferences::default(),
        Some(&audit("patient.preferences", at(0))),
        at(0),
    )
    .await
    .unwrap();
    let batch = NewBatch {
        id: BatchId::new_random(),
        template: None,
    };
    let m = NewMessage {
        group_key: Some("g".into()),
        batch: Some(batch.id),
        ..msg(Some("p-1"), "+966501234567", "secret")
    };
    let waiting = NewMessage {
        group_key: Some("g".into()),
        send_at: at(1000),
        ..msg(Some("p-1"), "+966501234567", "waiting")
    };
    enqueue_with(
        s,
        &a,
        vec![m.clone(), waiting.clone()],
        Some(&batch),
        None,
        None,
        at(0),
    )
    .await;
    let c = claim(s, 1, 31, 10).await.remove(0);

    // The other tenant sees nothing and changes nothing.
    let x = audit("x", at(2));
    assert_eq!(s.get_template(&other, id).await.unwrap(), None);
    assert_eq!(
        s.template_by_name(&other, "reminder_24h").await.unwrap(),
        None
    );
    assert_eq!(s.template_version(&other, id, 1).await.unwrap(), None);
    assert!(s.template_versions(&other, id).await.unwrap().is_empty());
    assert!(s
        .list_templates(&other, &TemplateFilter::default(), page(10, None))
        .await
        .unwrap()
        .items
        .is_empty());
    let v2 = v1.revise(draft("reminder_24h")).unwrap();
    assert_not_found(s.update_template(&other, id, &v2, &x).await);
    assert_not_found(s.set_template_active(&other, id, false, &x).await);
    assert_not_found(s.delete_template(&other, id, &x).await);
    assert_eq!(
        s.patient_preferences(&other, &pid("p-1")).await.unwrap(),
        None
    );
    assert!(s
        .patient_preferences_many(&other, &[pid("p-1")])
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.get_message(&other, m.id).await.unwrap(), None);
    assert!(s.message_events(&other, m.id).await.unwrap().is_empty());
    assert!(list_ids(s, &other, MessageFilter::default())
        .await
        .is_empty());
    assert_not_found(s.cancel_message(&other, waiting.id, &x, at(2)).await);
    assert_not_found(s.retry_message(&other, m.id, &x, at(2)).await);
    assert_eq!(
        s.cancel_group(&other, "g", Some(&x), at(2)).await.unwrap(),
        0
    );
    assert!(!s
        .finish_attempt(&other, m.id, c.lease_token, &sent("SM-b", 2), at(2))
        .await
        .unwrap());
    assert_not_found(
        s.apply_callback(
            &other,
            m.id,
            &callback(MessageStatus::Delivered, "r-b", 2),
            at(2),
        )
        .await,
    );
    assert_eq!(s.batch_status(&other, batch.id).await.unwrap(), None);
    let day = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
    assert_eq!(
        s.message_stats(&other, day("2026-09-01"), day("2026-10-01"))
            .await
            .unwrap()
            .total,
        0
    );
    // B's log holds only B's own (empty) group cancel.
    assert_eq!(
        s.list_audit(&other, &AuditFilter::default(), page(10, None))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|r| r.entry)
            .collect::<Vec<_>>(),
        vec![x.clone()]
    );

    // Nothing of tenant A moved, and B may use the same template name.
    assert_eq!(status(s, &a, m.id).await, MessageStatus::Sending);
    assert_eq!(status(s, &a, waiting.id).await, MessageStatus::Queued);
    assert_eq!(s.get_template(&a, id).await.unwrap().unwrap().template, v1);
    s.create_template(&other, TemplateId::new_random(), &v1, &x)
        .await
        .unwrap();
    assert_eq!(
        s.list_audit(&a, &AuditFilter::default(), page(10, None))
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    // The worker's own tenant can still finish it.
    assert!(s
        .finish_attempt(&a, m.id, c.lease_token, &sent("SM-a", 3), at(3))
        .await
        .unwrap());
}

// ---------------------------------------------------------------------------
// PHI lifecycle
// ---------------------------------------------------------------------------

const PHI_PHONE: &str = "+966501112233";

/// A message naming the patient, as the clinic would send it.
fn phi_msg(patient: Option<&str>) -> NewMessage {
    NewMessage {
        subject: Some("Results for Fatimah".into()),
        ..msg(patient, PHI_PHONE, "Dear Fatimah, call +966501112233")
    }
}

/// A provider answer that echoes the address (as Twilio's does) and an error text.
fn echoing(status: MessageStatus, when: i64) -> AttemptUpdate {
    AttemptUpdate {
        provider_message_id: Some(format!("SM-{}", uuid::Uuid::new_v4().simple())),
        last_error: (status == MessageStatus::Failed)
            .then(|| format!("21211: invalid To {PHI_PHONE}")),
        events: vec![MessageEvent {
            event: status.as_str().into(),
            at: at(when),
            detail: format!(
                r#"{{"provider":"twilio","code":"21211","error":"bad {PHI_PHONE}","response":"{{\"to\":\"{PHI_PHONE}\"}}"}}"#
            ),
        }],
        ..attempt(status, None, when)
    }
}

/// Asserts that nothing of the message names or reaches the patient any more.
async fn assert_redacted(s: &dyn Store, tenant: &TenantId, id: MessageId, when: DateTime<Utc>) {
    let m = message(s, tenant, id).await;
    assert_eq!(
        (
            m.to.clone(),
            m.subject.clone(),
            m.body.as_str(),
            m.last_error.clone()
        ),
        (None, None, "", None),
        "{m:?}"
    );
    assert!(m.variables.is_empty());
    assert_eq!(m.redacted_at, Some(when));
    for e in s.message_events(tenant, id).await.unwrap() {
        assert!(
            !e.detail.contains(PHI_PHONE),
            "event {} kept PHI: {}",
            e.event,
            e.detail
        );
        assert!(!e.detail.contains("response"), "{}", e.detail);
    }
}

async fn redaction_is_bounded_scoped_and_keeps_counts(b: &Backend) {
    let s = b.store.as_ref();
    let (a, other) = (t("clinic-a"), t("clinic-b"));
    let mine: Vec<NewMessage> = (0..3).map(|_| phi_msg(Some("p-1"))).collect();
    let future = NewMessage {
        send_at: at(100_000),
        ..phi_msg(Some("p-1"))
    };
    let theirs = phi_msg(None);
    let mut all = mine.clone();
    all.push(future.clone());
    enqueue(s, &a, all).await;
    enqueue(s, &other, vec![theirs.clone()]).await;
    let claims = claim(s, 1, 60, 10).await;
    assert_eq!(claims.len(), 4, "the future send is not due");
    for (i, c) in claims.iter().enumerate() {
        let status = if i == 0 {
            MessageStatus::Failed
        } else {
            MessageStatus::Sent
        };
        let tenant = &c.message.tenant;
        assert!(s
            .finish_attempt(
                tenant,
                c.message.id,
                c.lease_token,
                &echoing(status, 2),
                at(2)
            )
            .await
            .unwrap());
    }
    let day = at(0).date_naive();
    let next = day.succ_opt().unwrap();
    let stats_before = s.message_stats(&a, day, next).await.unwrap();

    // A cutoff before the rows were created redacts nothing.
    let none = s
        .redact_phi(&PhiScope::Tenant(a.clone()), at(-10), 10, at(20))
        .await;
    assert_eq!(none.unwrap(), RedactionCounts::default());
    // Bounded: 2, then the last 1, then nothing; the queued one is never touched.
    let mut done = Vec::new();
    for want in [2, 1, 0] {
        let r = s
            .redact_phi(&PhiScope::Tenant(a.clone()), at(10), 2, at(20))
            .await
            .unwrap();
        assert_eq!(r.messages, want);
        done.push(r.messages);
    }
    for m in &mine {
        assert_redacted(s, &a, m.id, at(20)).await;
        let kept = message(s, &a, m.id).await;
        assert_eq!(
            kept.patient,
            Some(pid("p-1")),
            "retention keeps the pseudonymous id"
        );
        assert!(
            kept.provider_message_id.is_some(),
            "late callbacks still find it"
        );
    }
    let f = message(s, &a, future.id).await;
    assert_eq!(
        (f.status, f.redacted_at, f.body.as_str()),
        (MessageStatus::Queued, None, future.body.as_str())
    );
    // Another tenant's row waits for its own pass.
    assert_eq!(message(s, &other, theirs.id).await.redacted_at, None);
    let r = s
        .redact_phi(
            &PhiScope::AllExcept(vec![a.clone(), other.clone()]),
            at(10),
            10,
            at(30),
        )
        .await
        .unwrap();
    assert_eq!(r.messages, 0);
    let r = s
        .redact_phi(&PhiScope::AllExcept(vec![a.clone()]), at(10), 10, at(30))
        .await
        .unwrap();
    assert_eq!(r.messages, 1);
    assert_redacted(s, &other, theirs.id, at(30)).await;

    assert_eq!(s.message_stats(&a, day, next).await.unwrap(), stats_before);
    // A redacted failed message has nothing left to send.
    let failed = claims[0].message.id;
    let tenant = &claims[0].message.tenant;
    let retry = s
        .retry_message(tenant, failed, &audit("message.retry", at(40)), at(40))
        .await;
    assert!(matches!(retry, Err(StoreError::Conflict(_))), "{retry:?}");
}

/// A staff notification to `user` naming the patient (title, message, link, data),
/// with `related` as given.
fn naming_patient(tenant: &TenantId, user: &str, related: (&str, &str)) -> PublishRequest {
    let content = NotificationContent::parse(ContentInput {
        title: "Lab results for Fatimah",
        message: "Call Fatimah at +966501112233",
        related: Some(related),
        link: Some("/patients/p-1/results"),
        data_json: Some(r#"{"phone": "+966501112233"}"#.into()),
        ..ContentInput::default()
    })
    .unwrap();
    PublishRequest::new(
        tenant.clone(),
        vec![UserId::parse(user).unwrap()],
        content,
        at(5),
    )
}

/// A clinic event about `patient` whose one staff notice (to `dr-1`, related to the
/// appointment as the event path makes it) names them.
fn event_about(tenant: &TenantId, patient: &str) -> EventApplication {
    EventApplication {
        tenant: tenant.clone(),
        event_id: EventId::parse("ev-1").unwrap(),
        kind: EventType::Booked,
        appointment: AppointmentId::parse("apt-1").unwrap(),
        patient: Some(pid(patient)),
        occurred_at: at(5),
        outcome: "applied".into(),
        payload: r#"{"appointment": {"patient": {"name": "Fatimah"}}}"#.into(),
        expected_version: None,
        new_state: None,
        notifications: vec![naming_patient(tenant, "dr-1", ("appointment", "apt-1"))],
        messages: Vec::new(),
        cancel_group: None,
        reminder_group: "apt-1".into(),
        now: at(5),
    }
}

/// The user's notifications (read ones too), newest first.
async fn inbox(s: &dyn Store, tenant: &TenantId, user: &str) -> Vec<Notification> {
    let user = UserId::parse(user).unwrap();
    s.list(tenant, &user, InboxFilter::All, page(100, None))
        .await
        .unwrap()
        .items
}

fn assert_notification_redacted(n: &Notification, before: &Notification, at: DateTime<Utc>) {
    let c = &n.content;
    assert_eq!(
        (c.title.as_str(), c.message.as_str()),
        ("[redacted]", "[redacted]")
    );
    assert_eq!(
        (c.link.as_deref(), c.data.as_str()),
        (None, r#"{"redacted":true}"#)
    );
    assert_eq!(
        (c.kind, &c.category),
        (before.content.kind, &before.content.category)
    );
    assert_eq!(
        (n.id, &n.user, n.read_at),
        (before.id, &before.user, before.read_at)
    );
    assert_eq!((n.created_at, n.updated_at), (before.created_at, at));
}

/// PHI retention reaches the staff notifications about a patient (both links, as an
/// erasure finds them), bounded per pass, scoped to the tenant, once each; the
/// notifications that name no patient and the newer ones stay whole.
async fn retention_redacts_the_notifications_about_patients(b: &Backend) {
    let s = b.store.as_ref();
    let (a, other) = (t("clinic-a"), t("clinic-b"));
    s.insert_batch(&[
        naming_patient(&a, "desk-1", ("patient", "p-1")),
        naming_patient(&a, "desk-1", ("invoice", "p-1")),
        naming_patient(&other, "desk-1", ("patient", "p-1")),
    ])
    .await
    .unwrap();
    s.apply_event(&event_about(&a, "p-2")).await.unwrap();
    let newer = PublishRequest {
        now: at(30),
        ..naming_patient(&a, "desk-1", ("patient", "p-3"))
    };
    s.insert_batch(&[newer]).await.unwrap();
    let (desk_before, dr_before) = (inbox(s, &a, "desk-1").await, inbox(s, &a, "dr-1").await);
    let other_before = inbox(s, &other, "desk-1").await;
    let desk = UserId::parse("desk-1").unwrap();
    let unread_before = s.unread_count(&a, &desk).await.unwrap().unread;

    let scope = PhiScope::Tenant(a.clone());
    let none = s.redact_phi(&scope, at(0), 10, at(40)).await.unwrap();
    assert_eq!(none.notifications, 0, "a cutoff before them redacts none");
    // Bounded: one per pass, then nothing is left before the cutoff.
    for want in [1, 1, 0] {
        let r = s.redact_phi(&scope, at(10), 1, at(40)).await.unwrap();
        assert_eq!(r.notifications, want);
    }
    let desk_now = inbox(s, &a, "desk-1").await;
    // Newest first: p-3's (after the cutoff), the invoice one (no patient link), p-1's.
    assert_eq!(desk_now[..2], desk_before[..2]);
    assert_notification_redacted(&desk_now[2], &desk_before[2], at(40));
    assert_eq!(desk_now[2].content.related, None, "it named the patient");
    let dr_now = inbox(s, &a, "dr-1").await;
    assert_notification_redacted(&dr_now[0], &dr_before[0], at(40));
    assert_eq!(
        dr_now[0].content.related, dr_before[0].content.related,
        "an appointment link stays"
    );
    assert_eq!(
        s.unread_count(&a, &desk).await.unwrap().unread,
        unread_before
    );
    assert_eq!(inbox(s, &other, "desk-1").await, other_before);
    // Done once: a later pass finds nothing more of this tenant's.
    let again = s.redact_phi(&scope, at(10), 10, at(50)).await.unwrap();
    assert_eq!(again.notifications, 0);
    let r = s
        .redact_phi(&PhiScope::AllExcept(vec![a.clone()]), at(10), 10, at(50))
        .await
        .unwrap();
    assert_eq!(r.notifications, 1);
    let theirs = inbox(s, &other, "desk-1").await;
    assert_notification_redacted(&theirs[0], &other_before[0], at(50));
}

async fn erasure_redacts_cancels_audits_and_is_scoped(b: &Backend) {
    let s = b.store.as_ref();
    let (a, other) = (t("clinic-a"), t("clinic-b"));
    let prefs = PatientPreferences {
        phone: Some(PhoneNumber::parse(PHI_PHONE).unwrap()),
        ..PatientPreferences::default()
    };
    s.put_patient_preferences(&a, &pid("p-1"), &prefs, None, at(0))
        .await
        .unwrap();
    s.put_patient_preferences(&a, &pid("p-2"), &prefs, None, at(0))
        .await
        .unwrap();
    let sent = phi_msg(Some("p-1"));
    let in_flight = phi_msg(Some("p-1"));
    let queued = NewMessage {
        send_at: at(100_000),
        ..phi_msg(Some("p-1"))
    };
    let someone_else = phi_msg(Some("p-2"));
    enqueue(
        s,
        &a,
        vec![
            sent.clone(),
            in_flight.clone(),
            queued.clone(),
            someone_else.clone(),
        ],
    )
    .await;
    let claims = claim(s, 1, 60, 10).await;
    let lease = |id: MessageId| {
        claims
            .iter()
            .find(|c| c.message.id == id)
            .unwrap()
            .lease_token
    };
    s.finish_attempt(
        &a,
        sent.id,
        lease(sent.id),
        &echoing(MessageStatus::Sent, 2),
        at(2),
    )
    .await
    .unwrap();
    s.finish_attempt(
        &a,
        someone_else.id,
        lease(someone_else.id),
        &echoing(MessageStatus::Sent, 2),
        at(2),
    )
    .await
    .unwrap();

    let audit_for = |c: &tidings::store::outbound::ErasureCounts| AuditEntry {
        detail: format!(r#"{{"messages":{}}}"#, c.messages),
        ..audit("patient.erased", at(50))
    };
    // Unknown here, or another tenant's: nothing written.
    assert_eq!(
        s.erase_patient(&a, &pid("p-9"), &audit_for, at(50))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.erase_patient(&other, &pid("p-1"), &audit_for, at(50))
            .await
            .unwrap(),
        None
    );

    // Staff notifications: about p-1 (published with `related` naming them, and a
    // clinic event's notice), about p-2, related to something else with the same id,
    // and another tenant's about its own p-1.
    s.insert_batch(&[
        naming_patient(&a, "desk-1", ("patient", "p-1")),
        naming_patient(&a, "desk-1", ("patient", "p-2")),
        naming_patient(&a, "desk-1", ("invoice", "p-1")),
        naming_patient(&other, "desk-1", ("patient", "p-1")),
    ])
    .await
    .unwrap();
    s.apply_event(&event_about(&a, "p-1")).await.unwrap();
    let desk = UserId::parse("desk-1").unwrap();
    let (desk_before, dr_before) = (inbox(s, &a, "desk-1").await, inbox(s, &a, "dr-1").await);
    let other_before = inbox(s, &other, "desk-1").await;
    let unread_before = s.unread_count(&a, &desk).await.unwrap().unread;

    let counts = s
        .erase_patient(&a, &pid("p-1"), &audit_for, at(50))
        .await
        .unwrap()
        .expect("the patient is known");
    assert_eq!(
        (
            counts.messages,
            counts.cancelled,
            counts.events,
            counts.preferences,
            counts.notifications
        ),
        (3, 1, 1, true, 2)
    );
    let desk_now = inbox(s, &a, "desk-1").await;
    // Newest first: the invoice one, p-2's, p-1's.
    assert_notification_redacted(&desk_now[2], &desk_before[2], at(50));
    assert_eq!(desk_now[2].content.related, None, "it named the patient");
    assert_eq!(desk_now[..2], desk_before[..2]);
    let dr_now = inbox(s, &a, "dr-1").await;
    assert_notification_redacted(&dr_now[0], &dr_before[0], at(50));
    assert_eq!(dr_now[0].content.related, dr_before[0].content.related);
    assert_eq!(inbox(s, &other, "desk-1").await, other_before);
    assert_eq!(
        s.unread_count(&a, &desk).await.unwrap().unread,
        unread_before
    );
    assert_eq!(s.patient_preferences(&a, &pid("p-1")).await.unwrap(), None);
    for id in [sent.id, in_flight.id, queued.id] {
        assert_redacted(s, &a, id, at(50)).await;
        assert_eq!(message(s, &a, id).await.patient, None, "anonymous now");
    }
    assert_eq!(status(s, &a, queued.id).await, MessageStatus::Cancelled);
    assert_eq!(
        status(s, &a, sent.id).await,
        MessageStatus::Sent,
        "counts stay"
    );
    // The send that was in flight answers after the erasure: its texts do not come back.
    assert!(s
        .finish_attempt(
            &a,
            in_flight.id,
            lease(in_flight.id),
            &echoing(MessageStatus::Failed, 60),
            at(60)
        )
        .await
        .unwrap());
    assert_redacted(s, &a, in_flight.id, at(50)).await;
    // So does a late callback's error text.
    let late = CallbackUpdate {
        error: Some(format!("undeliverable {PHI_PHONE}")),
        event: echoing(MessageStatus::Delivered, 61).events.remove(0),
        ..callback(MessageStatus::Delivered, "late-receipt", 61)
    };
    s.apply_callback(&a, sent.id, &late, at(61)).await.unwrap();
    assert_redacted(s, &a, sent.id, at(50)).await;

    // The other patient is whole.
    let o = message(s, &a, someone_else.id).await;
    assert_eq!((o.redacted_at, o.patient), (None, Some(pid("p-2"))));
    assert!(s
        .patient_preferences(&a, &pid("p-2"))
        .await
        .unwrap()
        .is_some());

    let log = |s: &'static str| AuditFilter {
        action: Some(s.into()),
        ..Default::default()
    };
    let entries = s
        .list_audit(&a, &log("patient.erased"), page(10, None))
        .await
        .unwrap();
    assert_eq!(entries.items.len(), 1);
    assert_eq!(entries.items[0].entry.detail, r#"{"messages":3}"#);
    // Idempotent: a repeat finds nothing left, answers, and is logged.
    let again = s
        .erase_patient(&a, &pid("p-1"), &audit_for, at(70))
        .await
        .unwrap();
    assert_eq!(
        again,
        Some(tidings::store::outbound::ErasureCounts::default())
    );
    let entries = s
        .list_audit(&a, &log("patient.erased"), page(10, None))
        .await
        .unwrap();
    assert_eq!(entries.items.len(), 2);
    assert!(entries
        .items
        .iter()
        .all(|e| !e.entry.detail.contains(PHI_PHONE)));
}

//! One conformance suite, two backends: every test here runs against SQLite (a
//! tempfile) and PostgreSQL (a fresh database on `TIDINGS_TEST_POSTGRES_URL`),
//! through the `Store` trait only, and asserts the same exact values on both.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tidings::domain::auth::Role;
use tidings::domain::escalation::{EscalationStep, EscalationTarget};
use tidings::domain::ids::{NotificationId, TenantId, UserId};
use tidings::domain::notification::{ContentInput, NotificationContent, UnreadCount};
use tidings::domain::preferences::{QuietHours, StaffPreferences};
use tidings::domain::priority::Priority;
use tidings::domain::user::DirectoryUser;
use tidings::store::{
    self, IdempotencyClaim, InboxFilter, PageRequest, PublishOutcome, PublishRequest, Store,
    StoreError, StoreOptions,
};

use tidings::store::escalations::{EscalationState, FireOutcome};

use crate::support::{conformance, postgres_admin_url, PgTestDb};

/// A store under test plus what keeps its database alive (also used by `outbound_store`).
pub(crate) struct Backend {
    pub(crate) store: Arc<dyn Store>,
    options: StoreOptions,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<PgTestDb>,
}

fn options(url: String) -> StoreOptions {
    StoreOptions {
        url,
        max_connections: 8,
        acquire_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(5),
    }
}

impl Backend {
    pub(crate) async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let options = options(format!("sqlite://{}/conformance.db", dir.path().display()));
        Backend {
            store: store::open(&options).await.expect("sqlite opens"),
            options,
            _dir: Some(dir),
            _pg: None,
        }
    }

    pub(crate) async fn postgres(test: &str) -> Option<Self> {
        let admin = postgres_admin_url(test, false)?;
        let db = PgTestDb::create(&admin).await;
        let options = options(db.url.clone());
        Some(Backend {
            store: store::open(&options).await.expect("postgres opens"),
            options,
            _dir: None,
            _pg: Some(db),
        })
    }

    /// Two writers as two hub nodes would be. PostgreSQL: a second, independent store
    /// (its own pool) on the same database. SQLite serves a single node by design: its
    /// commit order comes from the one writer connection of the process, so both
    /// "nodes" share that store there.
    pub(crate) async fn two_nodes(&self) -> [Arc<dyn Store>; 2] {
        let second = if self._pg.is_some() {
            store::open(&self.options).await.expect("second node opens")
        } else {
            self.store.clone()
        };
        [self.store.clone(), second]
    }
}

conformance!(
    health_ping_answers,
    tenants_and_api_keys,
    jwt_secret_rotation_keeps_the_previous_one,
    token_revocations_keep_the_latest_stamp,
    directory_upserts_filters_and_pages,
    directory_batch_upsert_spans_tenants_and_chunks,
    preferences_round_trip_per_tenant_and_user,
    batch_assigns_ascending_ids_and_counts_in_one_transaction,
    list_pages_newest_first_and_filters_unread,
    replay_after_is_oldest_first_and_skips_silent_and_archived,
    mark_read_changes_only_own_unread_and_bumps_version,
    concurrent_mark_read_on_two_nodes_counts_each_id_once,
    archive_lowers_count_once_and_hides,
    idempotent_replay_and_key_reuse,
    idempotency_holds_under_concurrent_nodes,
    silent_flag_follows_muted_categories_and_quiet_hours,
    everything_is_scoped_by_tenant_and_user,
    purge_deletes_only_old_read_or_archived,
    ten_thousand_recipients_in_one_batch,
    no_gap_for_a_tailing_reader_with_two_writer_nodes,
    ids_count_per_tenant_without_gaps_from_other_tenants,
    equal_ids_in_two_tenants_stay_apart,
    two_tenants_on_two_writer_nodes_each_get_gapless_ids,
    webhook_endpoints_round_trip_scoped_by_tenant,
    webhook_deliveries_are_emitted_claimed_leased_finished_and_replayed,
    webhook_endpoints_are_disabled_by_the_policy_and_by_410,
    priority_is_stored_and_critical_is_never_silent,
    escalation_steps_are_claimed_under_a_lease_and_fired_once,
    a_read_of_any_notification_of_a_chain_cancels_its_pending_steps,
);

fn t(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

fn u(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    // A fixed instant with milliseconds, so both backends must keep them.
    Utc.timestamp_millis_opt(1_790_000_000_000 + secs * 1000 + 123)
        .unwrap()
}

fn content(title: &str, category: Option<&str>) -> NotificationContent {
    NotificationContent::parse(ContentInput {
        title,
        message: "body",
        kind: Some("warning"),
        category,
        related: Some(("appointment", "8a6f")),
        link: Some("/appointments/8a6f"),
        // Key order and spacing kept byte for byte (PostgreSQL stores it as JSON, not JSONB).
        data_json: Some(r#"{"z": 1, "a": [true, null]}"#.into()),
        priority: None,
    })
    .unwrap()
}

fn publish(tenant: &str, users: &[&str], title: &str) -> PublishRequest {
    PublishRequest::new(
        t(tenant),
        users.iter().map(|x| u(x)).collect(),
        content(title, None),
        at(0),
    )
}

fn with_key(mut req: PublishRequest, key: &str, hash: &str) -> PublishRequest {
    req.idempotency = Some(IdempotencyClaim {
        key: key.into(),
        request_hash: hash.into(),
    });
    req
}

fn created(outcome: &PublishOutcome) -> Vec<(NotificationId, UserId)> {
    match outcome {
        PublishOutcome::Created { notifications, .. } => notifications
            .iter()
            .map(|n| (n.id, n.user.clone()))
            .collect(),
        other => panic!("expected Created, got {other:?}"),
    }
}

async fn insert_one(store: &dyn Store, req: PublishRequest) -> Vec<(NotificationId, UserId)> {
    let out = store.insert_batch(&[req]).await.unwrap();
    created(&out[0])
}

fn count(unread: i64, version: i64, head: i64) -> UnreadCount {
    UnreadCount {
        unread,
        version,
        head,
    }
}

fn page(limit: u32, before: Option<i64>) -> PageRequest {
    PageRequest { limit, before }
}

async fn health_ping_answers(b: &Backend) {
    b.store.ping().await.unwrap();
}

async fn tenants_and_api_keys(b: &Backend) {
    let s = b.store.as_ref();
    let a = t("clinic-a");
    assert!(!s.tenant_exists(&a).await.unwrap());
    assert_eq!(s.jwt_secret(&a).await.unwrap(), None);
    s.create_tenant(&a, "Clinic A", "secret-1", Utc::now())
        .await
        .unwrap();
    assert!(s.tenant_exists(&a).await.unwrap());
    assert_eq!(s.jwt_secret(&a).await.unwrap().as_deref(), Some("secret-1"));
    assert!(matches!(
        s.create_tenant(&a, "again", "x", Utc::now()).await,
        Err(StoreError::Conflict(_))
    ));
    s.upsert_tenant(&a, "Clinic A2", "secret-2", Utc::now())
        .await
        .unwrap();
    assert_eq!(s.jwt_secret(&a).await.unwrap().as_deref(), Some("secret-2"));
    s.upsert_tenant(&t("clinic-b"), "B", "secret-b", Utc::now())
        .await
        .unwrap();
    assert!(s.tenant_exists(&t("clinic-b")).await.unwrap());

    s.insert_api_key(&a, "tdk_aaaa1111", "hash-1", Utc::now())
        .await
        .unwrap();
    // The same hash again is a no-op, not an error.
    s.insert_api_key(&a, "tdk_aaaa1111", "hash-1", Utc::now())
        .await
        .unwrap();
    s.insert_api_key(&a, "tdk_aaaa2222", "hash-2", Utc::now())
        .await
        .unwrap();
    s.insert_api_key(&t("clinic-b"), "tdk_bbbb1111", "hash-3", Utc::now())
        .await
        .unwrap();
    // Another key with a taken prefix is a conflict.
    assert!(matches!(
        s.insert_api_key(&a, "tdk_aaaa1111", "hash-9", Utc::now())
            .await,
        Err(StoreError::Conflict(_))
    ));
    let k = s.find_api_key("hash-1").await.unwrap().unwrap();
    assert_eq!(
        (k.tenant, k.prefix.as_str(), k.revoked),
        (a.clone(), "tdk_aaaa1111", false)
    );
    assert!(s.find_api_key("nope").await.unwrap().is_none());

    // Exact prefix within one tenant: no prefix matching, no case folding, no
    // reaching into another tenant.
    assert!(!s.revoke_api_key(&a, "tdk_aaaa", Utc::now()).await.unwrap());
    assert!(!s
        .revoke_api_key(&a, "TDK_AAAA1111", Utc::now())
        .await
        .unwrap());
    assert!(!s
        .revoke_api_key(&a, "tdk_bbbb1111", Utc::now())
        .await
        .unwrap());
    assert!(!s.revoke_api_key(&a, "tdk_%", Utc::now()).await.unwrap());
    assert!(s
        .revoke_api_key(&a, "tdk_aaaa1111", Utc::now())
        .await
        .unwrap());
    assert!(
        !s.revoke_api_key(&a, "tdk_aaaa1111", Utc::now())
            .await
            .unwrap(),
        "already revoked"
    );
    assert!(s.find_api_key("hash-1").await.unwrap().unwrap().revoked);
    assert!(!s.find_api_key("hash-2").await.unwrap().unwrap().revoked);
    assert!(!s.find_api_key("hash-3").await.unwrap().unwrap().revoked);
}

async fn jwt_secret_rotation_keeps_the_previous_one(b: &Backend) {
    use tidings::store::{SigningSecret, TenantSecrets};
    let s = b.store.as_ref();
    let a = t("clinic-a");
    let next = SigningSecret {
        kid: "k2".into(),
        secret: "secret-2".into(),
    };
    assert!(matches!(
        s.rotate_jwt_secret(&a, &next, 1).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.jwt_secrets(&a).await.unwrap(), None);
    s.create_tenant(&a, "A", "secret-1", Utc::now())
        .await
        .unwrap();
    let first = s.jwt_secrets(&a).await.unwrap().unwrap();
    assert_eq!(first.current.secret, "secret-1");
    assert_eq!(first.previous, None);
    s.rotate_jwt_secret(&a, &next, 5_000).await.unwrap();
    assert_eq!(
        s.jwt_secrets(&a).await.unwrap().unwrap(),
        TenantSecrets {
            current: next.clone(),
            previous: Some((first.current.clone(), 5_000)),
        }
    );
    assert_eq!(s.jwt_secret(&a).await.unwrap().as_deref(), Some("secret-2"));
    // A second rotation drops the first secret for good.
    let third = SigningSecret {
        kid: "k3".into(),
        secret: "secret-3".into(),
    };
    s.rotate_jwt_secret(&a, &third, 9_000).await.unwrap();
    let now = s.jwt_secrets(&a).await.unwrap().unwrap();
    assert_eq!(now.current, third);
    assert_eq!(now.previous, Some((next, 9_000)));
}

async fn token_revocations_keep_the_latest_stamp(b: &Backend) {
    let s = b.store.as_ref();
    let (a, other) = (t("clinic-a"), t("clinic-b"));
    s.revoke_user_tokens(&a, &u("u1"), 2_000, 100)
        .await
        .unwrap();
    s.revoke_user_tokens(&a, &u("u2"), 3_000, 200)
        .await
        .unwrap();
    s.revoke_user_tokens(&other, &u("u1"), 9_000, 300)
        .await
        .unwrap();
    // An earlier stamp never replaces a later one; the write time moves on.
    s.revoke_user_tokens(&a, &u("u1"), 1_000, 400)
        .await
        .unwrap();
    let mut mine = s.token_revocations(&a, 0).await.unwrap();
    mine.sort();
    assert_eq!(mine, vec![(u("u1"), 2_000), (u("u2"), 3_000)]);
    assert_eq!(
        s.token_revocations(&a, 2_500).await.unwrap(),
        vec![(u("u2"), 3_000)]
    );
    let mut recent: Vec<_> = s
        .recent_token_revocations(250)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.tenant.as_str().to_owned(),
                r.user.as_str().to_owned(),
                r.not_before,
            )
        })
        .collect();
    recent.sort();
    assert_eq!(
        recent,
        vec![
            ("clinic-a".to_owned(), "u1".to_owned(), 2_000),
            ("clinic-b".to_owned(), "u1".to_owned(), 9_000)
        ]
    );
}

fn person(id: &str, role: Role, secs: i64) -> DirectoryUser {
    DirectoryUser {
        user: u(id),
        role,
        name: Some(format!("Name {id}")),
        locale: (role == Role::Provider).then(|| "ar".to_owned()),
        updated_at: at(secs),
    }
}

async fn directory_upserts_filters_and_pages(b: &Backend) {
    let s = b.store.as_ref();
    let a = t("clinic-a");
    for (i, id) in ["u1", "u2", "u3", "u4", "u5"].iter().enumerate() {
        let role = if i % 2 == 0 {
            Role::Provider
        } else {
            Role::FrontDesk
        };
        s.upsert_user(&a, &person(id, role, i as i64))
            .await
            .unwrap();
    }
    s.upsert_user(&t("clinic-b"), &person("u9", Role::Provider, 0))
        .await
        .unwrap();
    // An update keeps the user's place in the list and changes role and fields.
    s.upsert_user(&a, &person("u2", Role::Provider, 60))
        .await
        .unwrap();

    let first = s.list_users(&a, None, page(2, None)).await.unwrap();
    let ids = |p: &[DirectoryUser]| {
        p.iter()
            .map(|x| x.user.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&first.items), ["u5", "u4"]);
    let second = s.list_users(&a, None, page(2, first.next)).await.unwrap();
    assert_eq!(ids(&second.items), ["u3", "u2"]);
    assert_eq!(second.items[1], person("u2", Role::Provider, 60));
    let third = s.list_users(&a, None, page(2, second.next)).await.unwrap();
    assert_eq!(ids(&third.items), ["u1"]);
    assert_eq!(third.next, None);

    let providers = s
        .list_users(&a, Some(Role::Provider), page(10, None))
        .await
        .unwrap();
    assert_eq!(ids(&providers.items), ["u5", "u3", "u2", "u1"]);
    assert_eq!(providers.next, None);
    let ids_by_role = s.user_ids_with_role(&a, Role::Provider).await.unwrap();
    assert_eq!(ids_by_role, [u("u1"), u("u2"), u("u3"), u("u5")]);
    assert_eq!(
        s.user_ids_with_role(&a, Role::FrontDesk).await.unwrap(),
        [u("u4")]
    );
    assert!(s
        .user_ids_with_role(&a, Role::Admin)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.user_ids_with_role(&t("clinic-b"), Role::Provider)
            .await
            .unwrap(),
        [u("u9")]
    );
}

async fn directory_batch_upsert_spans_tenants_and_chunks(b: &Backend) {
    let s = b.store.as_ref();
    let (a, c) = (t("clinic-a"), t("clinic-c"));
    // 450 rows: more than one statement's worth, two tenants interleaved.
    let rows: Vec<(TenantId, DirectoryUser)> = (0..450)
        .map(|i| {
            let tenant = if i % 3 == 0 { c.clone() } else { a.clone() };
            (tenant, person(&format!("b{i}"), Role::FrontDesk, i))
        })
        .collect();
    s.upsert_users(&rows).await.unwrap();
    assert_eq!(
        s.user_ids_with_role(&a, Role::FrontDesk)
            .await
            .unwrap()
            .len(),
        300
    );
    assert_eq!(
        s.user_ids_with_role(&c, Role::FrontDesk)
            .await
            .unwrap()
            .len(),
        150
    );
    // Written again with new claims: updated in place, nothing duplicated.
    let again: Vec<_> = rows
        .iter()
        .map(|(tenant, p)| (tenant.clone(), person(p.user.as_str(), Role::Provider, 999)))
        .collect();
    s.upsert_users(&again).await.unwrap();
    assert!(s
        .user_ids_with_role(&a, Role::FrontDesk)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.user_ids_with_role(&a, Role::Provider)
            .await
            .unwrap()
            .len(),
        300
    );
    let listed = s.list_users(&c, None, page(500, None)).await.unwrap();
    assert_eq!(listed.items.len(), 150);
    assert!(listed
        .items
        .iter()
        .all(|p| p.updated_at == at(999) && p.role == Role::Provider));
    s.upsert_users(&[]).await.unwrap();
}

async fn preferences_round_trip_per_tenant_and_user(b: &Backend) {
    let s = b.store.as_ref();
    let (a, x) = (t("clinic-a"), u("u1"));
    assert_eq!(
        s.staff_preferences(&a, &x).await.unwrap(),
        StaffPreferences::default()
    );
    let prefs = StaffPreferences::new(
        vec!["lab.result".into(), "billing".into()],
        Some(QuietHours::parse("22:00", "07:00", "Asia/Riyadh").unwrap()),
    )
    .unwrap();
    s.put_staff_preferences(&a, &x, &prefs, Utc::now())
        .await
        .unwrap();
    assert_eq!(s.staff_preferences(&a, &x).await.unwrap(), prefs);
    let fewer = StaffPreferences::new(vec!["billing".into()], None).unwrap();
    s.put_staff_preferences(&a, &x, &fewer, Utc::now())
        .await
        .unwrap();
    assert_eq!(s.staff_preferences(&a, &x).await.unwrap(), fewer);
    assert_eq!(
        s.staff_preferences(&t("clinic-b"), &x).await.unwrap(),
        StaffPreferences::default()
    );
    assert_eq!(
        s.staff_preferences(&a, &u("u2")).await.unwrap(),
        StaffPreferences::default()
    );
}

async fn batch_assigns_ascending_ids_and_counts_in_one_transaction(b: &Backend) {
    let s = b.store.as_ref();
    let out = s
        .insert_batch(&[
            publish("clinic-a", &["u1", "u2"], "first"),
            publish("clinic-a", &["u1"], "second"),
            publish("clinic-b", &["u1"], "other tenant"),
        ])
        .await
        .unwrap();
    assert_eq!(out.len(), 3);
    let all: Vec<_> = out.iter().flat_map(created).collect();
    let seqs: Vec<i64> = all.iter().map(|(id, _)| id.seq()).collect();
    // Ids count per tenant, in request order: clinic-b's first id is 1.
    assert_eq!(seqs, [1, 2, 3, 1], "ids per tenant in request order");
    let users: Vec<&str> = all.iter().map(|(_, x)| x.as_str()).collect();
    assert_eq!(users, ["u1", "u2", "u1", "u1"]);

    // Each recipient's count is the count after the whole batch, with one version bump.
    let PublishOutcome::Created {
        notifications,
        counts,
    } = &out[0]
    else {
        panic!()
    };
    assert_eq!(
        counts,
        &vec![
            (u("u1"), count(2, 1, seqs[2])),
            (u("u2"), count(1, 1, seqs[1]))
        ]
    );
    assert_eq!(notifications[0].content, content("first", None));
    assert_eq!(notifications[0].created_at, at(0));
    assert!(!notifications[0].silent);
    let PublishOutcome::Created { counts, .. } = &out[2] else {
        panic!()
    };
    assert_eq!(counts, &vec![(u("u1"), count(1, 1, seqs[3]))]);

    let (a, u1) = (t("clinic-a"), u("u1"));
    assert_eq!(s.unread_count(&a, &u1).await.unwrap(), count(2, 1, seqs[2]));
    assert_eq!(
        s.unread_count(&a, &u("nobody")).await.unwrap(),
        count(0, 0, 0)
    );
    // What the store returns is what it stored, to the millisecond and the byte.
    let listed = s
        .list(&a, &u1, InboxFilter::All, page(10, None))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
    let stored = &listed.items[1];
    assert_eq!(stored.id.seq(), seqs[0]);
    assert_eq!(
        (stored.tenant.as_str(), stored.user.as_str()),
        ("clinic-a", "u1")
    );
    assert_eq!(stored.content, content("first", None));
    assert_eq!(stored.content.data, r#"{"z": 1, "a": [true, null]}"#);
    assert_eq!((stored.created_at, stored.updated_at), (at(0), at(0)));
    assert_eq!((stored.read_at, stored.silent), (None, false));

    // A second batch bumps the version once more and moves the head.
    let more = insert_one(s, publish("clinic-a", &["u1"], "third")).await;
    assert_eq!(
        s.unread_count(&a, &u1).await.unwrap(),
        count(3, 2, more[0].0.seq())
    );
    assert_eq!(more[0].0.seq(), 4);
    assert!(s.insert_batch(&[]).await.unwrap().is_empty());
}

async fn list_pages_newest_first_and_filters_unread(b: &Backend) {
    let s = b.store.as_ref();
    let (a, x) = (t("clinic-a"), u("u1"));
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(insert_one(s, publish("clinic-a", &["u1"], &format!("n{i}"))).await[0].0);
    }
    insert_one(s, publish("clinic-a", &["u2"], "someone else")).await;
    let titles = |p: &[tidings::domain::notification::Notification]| {
        p.iter()
            .map(|n| n.content.title.clone())
            .collect::<Vec<_>>()
    };
    let p1 = s
        .list(&a, &x, InboxFilter::All, page(2, None))
        .await
        .unwrap();
    assert_eq!(titles(&p1.items), ["n4", "n3"]);
    assert_eq!(p1.next, Some(ids[3].seq()));
    let p2 = s
        .list(&a, &x, InboxFilter::All, page(2, p1.next))
        .await
        .unwrap();
    assert_eq!(titles(&p2.items), ["n2", "n1"]);
    let p3 = s
        .list(&a, &x, InboxFilter::All, page(2, p2.next))
        .await
        .unwrap();
    assert_eq!(titles(&p3.items), ["n0"]);
    assert_eq!(p3.next, None);
    // Exactly `limit` rows left: no next cursor.
    let exact = s
        .list(&a, &x, InboxFilter::All, page(5, None))
        .await
        .unwrap();
    assert_eq!((exact.items.len(), exact.next), (5, None));

    s.mark_read(&a, &x, &[ids[1], ids[3]], at(5)).await.unwrap();
    s.archive(&a, &x, ids[4], at(6)).await.unwrap();
    let unread = s
        .list(&a, &x, InboxFilter::Unread, page(10, None))
        .await
        .unwrap();
    assert_eq!(titles(&unread.items), ["n2", "n0"]);
    let all = s
        .list(&a, &x, InboxFilter::All, page(10, None))
        .await
        .unwrap();
    assert_eq!(titles(&all.items), ["n3", "n2", "n1", "n0"]);
    assert_eq!(all.items[0].read_at, Some(at(5)));
    assert_eq!(all.items[0].updated_at, at(5));
    let unread_paged = s
        .list(&a, &x, InboxFilter::Unread, page(1, None))
        .await
        .unwrap();
    assert_eq!(titles(&unread_paged.items), ["n2"]);
    let rest = s
        .list(&a, &x, InboxFilter::Unread, page(1, unread_paged.next))
        .await
        .unwrap();
    assert_eq!(
        (titles(&rest.items), rest.next),
        (vec!["n0".to_owned()], None)
    );
}

async fn replay_after_is_oldest_first_and_skips_silent_and_archived(b: &Backend) {
    let s = b.store.as_ref();
    let (a, x) = (t("clinic-a"), u("u1"));
    s.put_staff_preferences(
        &a,
        &x,
        &StaffPreferences::new(vec!["muted".into()], None).unwrap(),
        Utc::now(),
    )
    .await
    .unwrap();
    let mut ids = Vec::new();
    for i in 0..6 {
        let mut req = publish("clinic-a", &["u1"], &format!("n{i}"));
        if i == 2 {
            req.content = content("n2", Some("muted"));
        }
        ids.push(insert_one(s, req).await[0].0);
    }
    s.archive(&a, &x, ids[3], at(1)).await.unwrap();
    s.mark_read(&a, &x, &[ids[4]], at(1)).await.unwrap();
    let titles = |v: Vec<tidings::domain::notification::Notification>| {
        v.into_iter().map(|n| n.content.title).collect::<Vec<_>>()
    };
    let from0 = NotificationId::from_seq(0);
    assert_eq!(
        titles(s.replay_after(&a, &x, from0, 100).await.unwrap()),
        ["n0", "n1", "n4", "n5"]
    );
    assert_eq!(
        titles(s.replay_after(&a, &x, from0, 2).await.unwrap()),
        ["n0", "n1"]
    );
    assert_eq!(
        titles(s.replay_after(&a, &x, ids[1], 100).await.unwrap()),
        ["n4", "n5"]
    );
    assert!(s
        .replay_after(&a, &x, ids[5], 100)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .replay_after(&a, &u("u2"), from0, 100)
        .await
        .unwrap()
        .is_empty());
}

async fn mark_read_changes_only_own_unread_and_bumps_version(b: &Backend) {
    let s = b.store.as_ref();
    let (a, x) = (t("clinic-a"), u("u1"));
    let mine: Vec<_> = insert_one(s, publish("clinic-a", &["u1"], "a"))
        .await
        .into_iter()
        .chain(insert_one(s, publish("clinic-a", &["u1"], "b")).await)
        .chain(insert_one(s, publish("clinic-a", &["u1"], "c")).await)
        .map(|(id, _)| id)
        .collect();
    let theirs = insert_one(s, publish("clinic-a", &["u2"], "x")).await[0].0;
    let head = mine[2].seq();
    assert_eq!(s.unread_count(&a, &x).await.unwrap(), count(3, 3, head));

    // Unknown, other user's and duplicate ids are ignored; the result is sorted.
    let ghost = NotificationId::from_seq(999_999);
    let out = s
        .mark_read(&a, &x, &[mine[2], theirs, mine[0], ghost, mine[2]], at(1))
        .await
        .unwrap();
    assert_eq!(out.changed, [mine[0], mine[2]]);
    assert_eq!(out.count, count(1, 4, head));
    // Already read: nothing changes, not even the version.
    let again = s.mark_read(&a, &x, &[mine[0]], at(2)).await.unwrap();
    assert!(again.changed.is_empty());
    assert_eq!(again.count, count(1, 4, head));
    let none = s.mark_read(&a, &x, &[], at(2)).await.unwrap();
    assert_eq!((none.changed.len(), none.count), (0, count(1, 4, head)));
    assert_eq!(
        s.unread_count(&a, &u("u2")).await.unwrap(),
        count(1, 1, theirs.seq())
    );

    let all = s.mark_all_read(&a, &x, at(3)).await.unwrap();
    assert!(all.changed.is_empty());
    assert_eq!(all.count, count(0, 5, head));
    let all_again = s.mark_all_read(&a, &x, at(4)).await.unwrap();
    assert_eq!(all_again.count, count(0, 5, head));
    let listed = s
        .list(&a, &x, InboxFilter::All, page(10, None))
        .await
        .unwrap();
    let read_at: Vec<_> = listed.items.iter().map(|n| n.read_at).collect();
    assert_eq!(read_at, [Some(at(1)), Some(at(3)), Some(at(1))]);
    // The other user's notification is untouched.
    assert_eq!(
        s.list(&a, &u("u2"), InboxFilter::Unread, page(10, None))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

async fn concurrent_mark_read_on_two_nodes_counts_each_id_once(b: &Backend) {
    let s = b.store.as_ref();
    let (a, x) = (t("clinic-a"), u("u1"));
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(insert_one(s, publish("clinic-a", &["u1"], &format!("n{i}"))).await[0].0);
    }
    let nodes = b.two_nodes().await;
    let mut tasks = Vec::new();
    for k in 0..6 {
        let store = nodes[k % 2].clone();
        let (a, x) = (a.clone(), x.clone());
        // Every task marks every id, in a different order.
        let mut mine = ids.clone();
        mine.rotate_left(k * 3);
        tasks.push(tokio::spawn(async move {
            loop {
                match store.mark_read(&a, &x, &mine, at(1)).await {
                    Ok(out) => return out.changed.len(),
                    Err(StoreError::Unavailable(_)) => {
                        tokio::time::sleep(Duration::from_millis(2)).await
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    let mut changed = 0;
    for task in tasks {
        changed += task.await.unwrap();
    }
    assert_eq!(changed, 20, "each id changes state exactly once");
    let c = s.unread_count(&a, &x).await.unwrap();
    assert_eq!(c.unread, 0);
    assert_eq!(c.head, ids[19].seq());
}

async fn archive_lowers_count_once_and_hides(b: &Backend) {
    let s = b.store.as_ref();
    let (a, x) = (t("clinic-a"), u("u1"));
    let ids: Vec<_> = insert_one(s, publish("clinic-a", &["u1"], "a"))
        .await
        .into_iter()
        .chain(insert_one(s, publish("clinic-a", &["u1"], "b")).await)
        .map(|(id, _)| id)
        .collect();
    let head = ids[1].seq();
    assert!(s.owns(&a, &x, ids[0]).await.unwrap());
    assert!(!s.owns(&a, &u("u2"), ids[0]).await.unwrap());
    assert!(!s.owns(&t("clinic-b"), &x, ids[0]).await.unwrap());

    assert_eq!(
        s.archive(&a, &x, ids[0], at(1)).await.unwrap(),
        count(1, 3, head)
    );
    assert!(!s.owns(&a, &x, ids[0]).await.unwrap());
    assert!(matches!(
        s.archive(&a, &x, ids[0], at(2)).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.archive(&a, &u("u2"), ids[1], at(2)).await,
        Err(StoreError::NotFound)
    ));
    // Archived ids can no longer be marked read.
    let out = s.mark_read(&a, &x, &[ids[0]], at(2)).await.unwrap();
    assert!(out.changed.is_empty());
    // Archiving a read notification leaves the count (and its version) alone.
    s.mark_read(&a, &x, &[ids[1]], at(2)).await.unwrap();
    assert_eq!(
        s.archive(&a, &x, ids[1], at(3)).await.unwrap(),
        count(0, 4, head)
    );
    assert!(s
        .list(&a, &x, InboxFilter::All, page(10, None))
        .await
        .unwrap()
        .items
        .is_empty());
}

async fn idempotent_replay_and_key_reuse(b: &Backend) {
    let s = b.store.as_ref();
    let first = with_key(publish("clinic-a", &["u1", "u2"], "t"), "k1", "h1");
    let made = insert_one(s, first.clone()).await;
    assert_eq!(made.len(), 2);

    let out = s
        .insert_batch(&[
            first.clone(),
            with_key(publish("clinic-a", &["u1"], "t"), "k1", "other"),
            // A new key used twice in one batch: created once, replayed once.
            with_key(publish("clinic-a", &["u3"], "t"), "k2", "h2"),
            with_key(publish("clinic-a", &["u3"], "t"), "k2", "h2"),
            with_key(publish("clinic-a", &["u3"], "t"), "k2", "h-other"),
            // The same key in another tenant is another key.
            with_key(publish("clinic-b", &["u1"], "t"), "k1", "h1"),
        ])
        .await
        .unwrap();
    match &out[0] {
        PublishOutcome::Replayed { created } => assert_eq!(created, &made),
        other => panic!("expected Replayed, got {other:?}"),
    }
    assert!(matches!(out[1], PublishOutcome::KeyReused));
    let k2 = created(&out[2]);
    match &out[3] {
        PublishOutcome::Replayed { created } => assert_eq!(created, &k2),
        other => panic!("expected Replayed, got {other:?}"),
    }
    assert!(matches!(out[4], PublishOutcome::KeyReused));
    assert_eq!(created(&out[5]).len(), 1);
    // Replays stored nothing: u1 has one notification in clinic-a, u3 one.
    let (a, u1, u3) = (t("clinic-a"), u("u1"), u("u3"));
    assert_eq!(s.unread_count(&a, &u1).await.unwrap().unread, 1);
    assert_eq!(s.unread_count(&a, &u3).await.unwrap().unread, 1);
    // And a replay in a later batch returns the record committed earlier.
    match &s.insert_batch(&[first]).await.unwrap()[0] {
        PublishOutcome::Replayed { created } => assert_eq!(created, &made),
        other => panic!("expected Replayed, got {other:?}"),
    }
}

async fn idempotency_holds_under_concurrent_nodes(b: &Backend) {
    let nodes = b.two_nodes().await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = nodes[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let req = with_key(publish("clinic-a", &["u1"], "t"), "same-key", "h");
            loop {
                match store.insert_batch(std::slice::from_ref(&req)).await {
                    Ok(mut out) => return out.remove(0),
                    // A busy database is a retry for the caller (503), not a result.
                    Err(StoreError::Unavailable(_)) => {
                        tokio::time::sleep(Duration::from_millis(5)).await
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    let mut made = Vec::new();
    let mut replayed = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            PublishOutcome::Created { notifications, .. } => made.push(
                notifications
                    .iter()
                    .map(|n| (n.id, n.user.clone()))
                    .collect::<Vec<_>>(),
            ),
            PublishOutcome::Replayed { created } => replayed.push(created),
            PublishOutcome::KeyReused => panic!("same body must not be KeyReused"),
        }
    }
    assert_eq!(made.len(), 1, "exactly one request creates");
    assert_eq!(replayed.len(), 7);
    assert!(replayed.iter().all(|r| r == &made[0]));
    assert_eq!(
        b.store
            .unread_count(&t("clinic-a"), &u("u1"))
            .await
            .unwrap()
            .unread,
        1
    );
}

async fn silent_flag_follows_muted_categories_and_quiet_hours(b: &Backend) {
    let s = b.store.as_ref();
    let a = t("clinic-a");
    s.put_staff_preferences(
        &a,
        &u("muter"),
        &StaffPreferences::new(vec!["lab.result".into()], None).unwrap(),
        Utc::now(),
    )
    .await
    .unwrap();
    // at(0) is 2026-09-21 14:13:20.123 UTC: inside 14:00-15:00 UTC.
    s.put_staff_preferences(
        &a,
        &u("sleeper"),
        &StaffPreferences::new(
            vec![],
            Some(QuietHours::parse("14:00", "15:00", "UTC").unwrap()),
        )
        .unwrap(),
        Utc::now(),
    )
    .await
    .unwrap();
    // Same user id in another tenant: that tenant's (absent) preferences apply.
    let mut lab = publish("clinic-a", &["muter", "sleeper", "plain"], "lab");
    lab.content = content("lab", Some("lab.result"));
    let mut lab_b = publish("clinic-b", &["muter"], "lab");
    lab_b.content = content("lab", Some("lab.result"));
    let mut other = publish("clinic-a", &["muter", "sleeper"], "other");
    other.content = content("other", Some("billing"));
    let mut later = other.clone();
    later.now = at(3600); // 15:13 UTC: outside the quiet hours
    let out = s.insert_batch(&[lab, lab_b, other, later]).await.unwrap();
    let silent = |o: &PublishOutcome| match o {
        PublishOutcome::Created { notifications, .. } => {
            notifications.iter().map(|n| n.silent).collect::<Vec<_>>()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(silent(&out[0]), [true, true, false]);
    assert_eq!(silent(&out[1]), [false]);
    assert_eq!(silent(&out[2]), [false, true]);
    assert_eq!(silent(&out[3]), [false, false]);
    // Silent rows are stored, listed and counted; only replay (live push) skips them.
    let muter = u("muter");
    assert_eq!(s.unread_count(&a, &muter).await.unwrap().unread, 3);
    let listed = s
        .list(&a, &muter, InboxFilter::All, page(10, None))
        .await
        .unwrap();
    let flags: Vec<bool> = listed.items.iter().map(|n| n.silent).collect();
    assert_eq!(flags, [false, false, true]);
    let replay = s
        .replay_after(&a, &muter, NotificationId::from_seq(0), 10)
        .await
        .unwrap();
    assert_eq!(replay.len(), 2);
}

async fn everything_is_scoped_by_tenant_and_user(b: &Backend) {
    let s = b.store.as_ref();
    let (a, bb, x) = (t("clinic-a"), t("clinic-b"), u("u1"));
    // Ids count per tenant: clinic-a's second id is one clinic-b does not have.
    insert_one(s, publish("clinic-a", &["u2"], "a for u2")).await;
    let in_a = insert_one(s, publish("clinic-a", &["u1"], "a")).await[0].0;
    let in_b = insert_one(s, publish("clinic-b", &["u1"], "b")).await[0].0;
    assert_eq!((in_a.seq(), in_b.seq()), (2, 1));
    assert_eq!(
        s.unread_count(&a, &x).await.unwrap(),
        count(1, 1, in_a.seq())
    );
    assert_eq!(
        s.unread_count(&bb, &x).await.unwrap(),
        count(1, 1, in_b.seq())
    );
    let listed = s
        .list(&a, &x, InboxFilter::All, page(10, None))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].content.title, "a");
    let replay = s
        .replay_after(&bb, &x, NotificationId::from_seq(0), 10)
        .await
        .unwrap();
    assert_eq!(replay.len(), 1);
    assert_eq!(replay[0].id, in_b);
    // Tenant b cannot read or archive tenant a's notification.
    let out = s.mark_read(&bb, &x, &[in_a], at(1)).await.unwrap();
    assert!(out.changed.is_empty());
    assert!(matches!(
        s.archive(&bb, &x, in_a, at(1)).await,
        Err(StoreError::NotFound)
    ));
    assert!(!s.owns(&bb, &x, in_a).await.unwrap());
    s.mark_all_read(&bb, &x, at(1)).await.unwrap();
    assert_eq!(
        s.unread_count(&a, &x).await.unwrap(),
        count(1, 1, in_a.seq())
    );
    assert_eq!(
        s.unread_count(&bb, &x).await.unwrap(),
        count(0, 2, in_b.seq())
    );
}

async fn purge_deletes_only_old_read_or_archived(b: &Backend) {
    let s = b.store.as_ref();
    let (a, x) = (t("clinic-a"), u("u1"));
    let old = |title: &str, key: Option<&str>| {
        let mut r = publish("clinic-a", &["u1"], title);
        r.now = at(-10_000);
        if let Some(k) = key {
            r = with_key(r, k, "h");
        }
        r
    };
    let read_old = insert_one(s, old("read old", Some("old-key"))).await[0].0;
    let archived_old = insert_one(s, old("archived old", None)).await[0].0;
    let unread_old = insert_one(s, old("unread old", None)).await[0].0;
    let read_old_2 = insert_one(s, old("read old 2", None)).await[0].0;
    let read_new = insert_one(
        s,
        with_key(publish("clinic-a", &["u1"], "new"), "new-key", "h"),
    )
    .await[0]
        .0;
    s.mark_read(&a, &x, &[read_old, read_old_2, read_new], at(0))
        .await
        .unwrap();
    s.archive(&a, &x, archived_old, at(0)).await.unwrap();
    let before = s.unread_count(&a, &x).await.unwrap();

    assert_eq!(s.purge_before(at(-1), 2).await.unwrap(), 2);
    assert_eq!(s.purge_before(at(-1), 2).await.unwrap(), 1);
    assert_eq!(s.purge_before(at(-1), 2).await.unwrap(), 0);
    let left: Vec<_> = s
        .list(&a, &x, InboxFilter::All, page(10, None))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(left, [read_new, unread_old]);
    assert_eq!(s.unread_count(&a, &x).await.unwrap(), before);
    // The old idempotency record is gone (the key creates again); the new one stays.
    assert_eq!(
        insert_one(s, old("read old", Some("old-key"))).await.len(),
        1
    );
    let replay = s
        .insert_batch(&[with_key(
            publish("clinic-a", &["u1"], "new"),
            "new-key",
            "h",
        )])
        .await
        .unwrap();
    assert!(matches!(replay[0], PublishOutcome::Replayed { .. }));
}

async fn ten_thousand_recipients_in_one_batch(b: &Backend) {
    let s = b.store.as_ref();
    let users: Vec<String> = (0..10_000).map(|i| format!("staff-{i:05}")).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    let started = std::time::Instant::now();
    let made = insert_one(s, publish("clinic-a", &refs, "broadcast")).await;
    let took = started.elapsed();
    assert_eq!(made.len(), 10_000);
    let distinct: BTreeSet<i64> = made.iter().map(|(id, _)| id.seq()).collect();
    assert_eq!(distinct.len(), 10_000);
    assert!(made.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(made[9_999].1, u("staff-09999"));
    let c = s
        .unread_count(&t("clinic-a"), &u("staff-04242"))
        .await
        .unwrap();
    assert_eq!(c, count(1, 1, made[4_242].0.seq()));
    // Bulk statements, not 10,000 round trips: generous for a loaded 2-core machine.
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

/// The resume invariant under concurrency: writers on two nodes (two pools) insert
/// for one user while a reader tails with `replay_after(last_seen)`. A notification
/// committed with an id below one the reader already saw would be skipped for ever,
/// so the reader must end with every id exactly once.
async fn no_gap_for_a_tailing_reader_with_two_writer_nodes(b: &Backend) {
    const WRITERS: usize = 4;
    const BATCHES: usize = 40;
    let nodes = b.two_nodes().await;
    let (a, x) = (t("clinic-a"), u("u1"));
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = nodes[w % 2].clone();
        let done = done.clone();
        writers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..BATCHES {
                // 1-3 publishes per batch, some with other recipients too.
                let batch: Vec<_> = (0..1 + i % 3)
                    .map(|j| {
                        let others = if j == 1 { vec!["u1", "u2"] } else { vec!["u1"] };
                        publish("clinic-a", &others, &format!("w{w}-{i}-{j}"))
                    })
                    .collect();
                let out = loop {
                    match store.insert_batch(&batch).await {
                        Ok(out) => break out,
                        // A busy database is a 503 to a caller, who retries.
                        Err(StoreError::Unavailable(_)) => {
                            tokio::time::sleep(Duration::from_millis(2)).await
                        }
                        Err(e) => panic!("{e}"),
                    }
                };
                mine.extend(
                    out.iter()
                        .flat_map(created)
                        .filter(|(_, user)| user.as_str() == "u1")
                        .map(|(id, _)| id.seq()),
                );
                tokio::task::yield_now().await;
            }
            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            mine
        }));
    }
    let reader = {
        let store = nodes[1].clone();
        let (a, x) = (a.clone(), x.clone());
        let done = done.clone();
        tokio::spawn(async move {
            let mut seen: Vec<i64> = Vec::new();
            let mut last = NotificationId::from_seq(0);
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst) == WRITERS;
                let page = store.replay_after(&a, &x, last, 50).await.unwrap();
                if page.is_empty() && finished {
                    return seen;
                }
                for n in page {
                    assert!(n.id > last, "replay goes forward");
                    last = n.id;
                    seen.push(n.id.seq());
                }
            }
        })
    };
    let mut written: Vec<i64> = Vec::new();
    for w in writers {
        written.extend(w.await.unwrap());
    }
    let seen = reader.await.unwrap();
    written.sort_unstable();
    let per_writer: usize = (0..BATCHES).map(|i| 1 + i % 3).sum();
    assert_eq!(written.len(), WRITERS * per_writer, "writers' count");
    let mut seen_sorted = seen.clone();
    seen_sorted.sort_unstable();
    assert_eq!(seen, seen_sorted, "the reader saw ids in ascending order");
    let missing: Vec<_> = written
        .iter()
        .filter(|id| seen_sorted.binary_search(id).is_err())
        .collect();
    assert!(missing.is_empty(), "the tailing reader skipped {missing:?}");
    assert_eq!(seen_sorted, written, "every id exactly once");
    let c = b.store.unread_count(&a, &x).await.unwrap();
    assert_eq!(
        (c.unread, c.head),
        (written.len() as i64, *written.last().unwrap())
    );
}

/// Issue #11: ids count per tenant. Two tenants publishing interleaved (in batches of
/// their own and in shared ones, with idempotent replays and a reused key in between)
/// each see 1, 2, 3, ... with no gap caused by the other. With one global sequence a
/// tenant could read the other's volume off the gaps.
async fn ids_count_per_tenant_without_gaps_from_other_tenants(b: &Backend) {
    let s = b.store.as_ref();
    let mut ids: HashMap<String, Vec<i64>> = HashMap::new();
    let mut note = |out: &[PublishOutcome], batch: &[PublishRequest]| {
        for (o, req) in out.iter().zip(batch) {
            if let PublishOutcome::Created { notifications, .. } = o {
                let mine = ids.entry(req.tenant.as_str().to_owned()).or_default();
                mine.extend(notifications.iter().map(|n| n.id.seq()));
            }
        }
    };
    for i in 0..3 {
        for tenant in ["clinic-a", "clinic-b"] {
            let batch = [publish(tenant, &["u1", "u2"], &format!("{tenant} {i}"))];
            note(&s.insert_batch(&batch).await.unwrap(), &batch);
        }
    }
    let keyed = with_key(publish("clinic-a", &["u1"], "keyed"), "k1", "h1");
    let first = [keyed.clone()];
    note(&s.insert_batch(&first).await.unwrap(), &first);
    let mixed = [
        publish("clinic-b", &["u1"], "b mixed"),
        keyed.clone(),
        publish("clinic-a", &["u2"], "a mixed"),
        with_key(publish("clinic-a", &["u1", "u2", "u3"], "t"), "k1", "other"),
        publish("clinic-b", &["u2", "u3"], "b mixed 2"),
    ];
    let out = s.insert_batch(&mixed).await.unwrap();
    assert!(matches!(out[1], PublishOutcome::Replayed { .. }));
    assert!(matches!(out[3], PublishOutcome::KeyReused));
    note(&out, &mixed);
    // A later batch shows the replay and the reused key took no ids.
    let after = [publish("clinic-a", &["u1"], "after")];
    note(&s.insert_batch(&after).await.unwrap(), &after);

    assert_eq!(ids["clinic-a"], (1..=9).collect::<Vec<i64>>(), "clinic-a");
    assert_eq!(ids["clinic-b"], (1..=9).collect::<Vec<i64>>(), "clinic-b");
    // What is stored is what was returned: clinic-a's u1 holds its ids 1, 3, 5, 7, 9.
    let listed: Vec<i64> = s
        .list(&t("clinic-a"), &u("u1"), InboxFilter::All, page(10, None))
        .await
        .unwrap()
        .items
        .iter()
        .map(|n| n.id.seq())
        .collect();
    assert_eq!(listed, [9, 7, 5, 3, 1]);
}

/// With ids per tenant, one id names a notification in each tenant. Resume, read,
/// archive and retention act on the caller's tenant only.
async fn equal_ids_in_two_tenants_stay_apart(b: &Backend) {
    let s = b.store.as_ref();
    let (a, bb, x) = (t("clinic-a"), t("clinic-b"), u("u1"));
    let old = |tenant: &str, title: &str| {
        let mut r = publish(tenant, &["u1"], title);
        r.now = at(-10_000);
        r
    };
    let a1 = insert_one(s, old("clinic-a", "a1")).await[0].0;
    let b1 = insert_one(s, old("clinic-b", "b1")).await[0].0;
    let a2 = insert_one(s, publish("clinic-a", &["u1"], "a2")).await[0].0;
    let b2 = insert_one(s, publish("clinic-b", &["u1"], "b2")).await[0].0;
    insert_one(s, publish("clinic-a", &["u1"], "a3")).await;
    assert_eq!((a1, a2), (b1, b2), "the same ids in both tenants");

    // Resume from the same id: each tenant's client gets its own tenant's later ones.
    let titles = |v: Vec<tidings::domain::notification::Notification>| -> Vec<String> {
        v.into_iter().map(|n| n.content.title).collect()
    };
    assert_eq!(
        titles(s.replay_after(&a, &x, a1, 10).await.unwrap()),
        ["a2", "a3"]
    );
    assert_eq!(
        titles(s.replay_after(&bb, &x, b1, 10).await.unwrap()),
        ["b2"]
    );

    // Reading clinic-a's n1 leaves clinic-b's n1 unread.
    let read = s.mark_read(&a, &x, &[a1], at(0)).await.unwrap();
    assert_eq!(read.changed, [a1]);
    assert_eq!(s.unread_count(&bb, &x).await.unwrap().unread, 2);
    // Archiving clinic-b's n2 leaves clinic-a's n2.
    s.archive(&bb, &x, b2, at(0)).await.unwrap();
    assert!(s.owns(&a, &x, a2).await.unwrap());
    assert!(!s.owns(&bb, &x, b2).await.unwrap());

    // Retention deletes clinic-a's old read n1, not clinic-b's old unread n1.
    assert_eq!(s.purge_before(at(-1), 10).await.unwrap(), 1);
    let left = |tenant: TenantId| async move {
        s.list(&tenant, &u("u1"), InboxFilter::All, page(10, None))
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|n| n.content.title)
            .collect::<Vec<_>>()
    };
    assert_eq!(left(a.clone()).await, ["a3", "a2"]);
    assert_eq!(left(bb.clone()).await, ["b1"]);
}

/// Issue #11 under concurrency: writers on two nodes publish for two tenants at once,
/// in single-tenant and mixed batches. Each tenant ends with exactly the ids 1..=N:
/// no gap, no duplicate, whatever the interleaving.
async fn two_tenants_on_two_writer_nodes_each_get_gapless_ids(b: &Backend) {
    const WRITERS: usize = 4;
    const BATCHES: usize = 25;
    let nodes = b.two_nodes().await;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = nodes[w % 2].clone();
        writers.push(tokio::spawn(async move {
            let mut mine: Vec<(String, i64)> = Vec::new();
            for i in 0..BATCHES {
                let tenants: &[&str] = match (w + i) % 3 {
                    0 => &["clinic-a"],
                    1 => &["clinic-b"],
                    _ => &["clinic-b", "clinic-a", "clinic-b"],
                };
                let batch: Vec<_> = tenants
                    .iter()
                    .map(|t| publish(t, &["u1", "u2"], &format!("w{w}-{i}")))
                    .collect();
                let out = loop {
                    match store.insert_batch(&batch).await {
                        Ok(out) => break out,
                        Err(StoreError::Unavailable(_)) => {
                            tokio::time::sleep(Duration::from_millis(2)).await
                        }
                        Err(e) => panic!("{e}"),
                    }
                };
                for (req, o) in batch.iter().zip(&out) {
                    let tenant = req.tenant.as_str().to_owned();
                    mine.extend(
                        created(o)
                            .into_iter()
                            .map(|(id, _)| (tenant.clone(), id.seq())),
                    );
                }
            }
            mine
        }));
    }
    let mut per_tenant: HashMap<String, Vec<i64>> = HashMap::new();
    for w in writers {
        for (tenant, seq) in w.await.unwrap() {
            per_tenant.entry(tenant).or_default().push(seq);
        }
    }
    for (tenant, mut ids) in per_tenant {
        ids.sort_unstable();
        let want: Vec<i64> = (1..=ids.len() as i64).collect();
        assert_eq!(ids, want, "{tenant}: every id once, no gap");
    }
}

/// Issue #11, existing databases: migration 0006 keeps every id written under the
/// global sequence, continues each existing tenant above the highest id ever handed
/// out (7 here, although retention deleted rows 6 and 7: a client may still resume
/// from n7), and starts a tenant new to the database at 1.
mod migration {
    use super::*;
    use tidings::domain::ids::PatientId;
    use tidings::store::outbound::{AuditEntry, ErasureCounts};

    /// Rows as the global sequence left them: clinic-a holds 1, 3, 5 and clinic-b 2, 4;
    /// 6 and 7 were handed out and purged since. clinic-a has an idempotency record.
    const LEGACY_ROWS: [(i64, &str); 7] = [
        (1, "clinic-a"),
        (2, "clinic-b"),
        (3, "clinic-a"),
        (4, "clinic-b"),
        (5, "clinic-a"),
        (6, "clinic-a"),
        (7, "clinic-b"),
    ];

    /// The migrations before `version`, read from the source tree as the store embeds them.
    async fn legacy_migrator(backend: &str, version: i64) -> sqlx::migrate::Migrator {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        let mut m = sqlx::migrate::Migrator::new(dir).await.unwrap();
        let before: Vec<_> = m.iter().filter(|m| m.version < version).cloned().collect();
        m.migrations = before.into();
        m
    }

    /// A SQLite database in `dir` migrated up to `version` (excluded) and filled with
    /// `sql`, then opened as the store, which runs the remaining migrations.
    async fn sqlite_from(dir: &std::path::Path, version: i64, sql: &[String]) -> Arc<dyn Store> {
        use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
        let path = dir.join("legacy.db");
        let legacy = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true),
            )
            .await
            .unwrap();
        legacy_migrator("sqlite", version)
            .await
            .run(&legacy)
            .await
            .unwrap();
        for sql in sql {
            sqlx::query(sql).execute(&legacy).await.unwrap();
        }
        legacy.close().await;
        store::open(&options(format!("sqlite://{}", path.display())))
            .await
            .expect("the legacy database migrates")
    }

    /// As [`sqlite_from`], on the fresh PostgreSQL database `db`.
    async fn postgres_from(db: &PgTestDb, version: i64, sql: &[String]) -> Arc<dyn Store> {
        let legacy = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&db.url)
            .await
            .unwrap();
        legacy_migrator("postgres", version)
            .await
            .run(&legacy)
            .await
            .unwrap();
        for sql in sql {
            sqlx::query(sql).execute(&legacy).await.unwrap();
        }
        legacy.close().await;
        store::open(&options(db.url.clone()))
            .await
            .expect("the legacy database migrates")
    }

    /// The legacy rows, as SQL both databases accept (literals only: test data).
    fn legacy_sql() -> Vec<String> {
        let mut sql = vec![
            "INSERT INTO tenants (id, name, jwt_secret, created_at) VALUES
               ('clinic-a', 'A', 's', 0), ('clinic-b', 'B', 's', 0)"
                .to_owned(),
        ];
        for (seq, tenant) in LEGACY_ROWS {
            sql.push(format!(
                "INSERT INTO notifications (seq, tenant_id, user_id, title, message, type, data,
                   created_at, updated_at)
                 VALUES ({seq}, '{tenant}', 'u1', 'old {seq}', 'm', 'info', '{{}}', 0, 0)"
            ));
        }
        sql.push("DELETE FROM notifications WHERE seq IN (6, 7)".to_owned());
        sql.push(
            "INSERT INTO idempotency_keys (tenant_id, scope, key, request_hash, result, created_at)
             VALUES ('clinic-a', 'publish', 'k-old', 'h', '[[5,\"u1\"]]', 1790000000000)"
                .to_owned(),
        );
        sql.push(
            "INSERT INTO unread_counters (tenant_id, user_id, unread, version, head) VALUES
               ('clinic-a', 'u1', 3, 3, 5), ('clinic-b', 'u1', 2, 2, 4)"
                .to_owned(),
        );
        sql
    }

    async fn migrated_keeps_ids_and_continues_above(store: &dyn Store) {
        let (a, bb, x) = (t("clinic-a"), t("clinic-b"), u("u1"));
        let ids = |tenant: TenantId| async move {
            store
                .list(&tenant, &u("u1"), InboxFilter::All, page(10, None))
                .await
                .unwrap()
                .items
                .iter()
                .map(|n| n.id.seq())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(a.clone()).await, [5, 3, 1]);
        assert_eq!(ids(bb.clone()).await, [4, 2]);
        let replay = store
            .insert_batch(&[with_key(publish("clinic-a", &["u1"], "t"), "k-old", "h")])
            .await
            .unwrap();
        match &replay[0] {
            PublishOutcome::Replayed { created } => {
                assert_eq!(created, &[(NotificationId::from_seq(5), x.clone())])
            }
            other => panic!("expected Replayed, got {other:?}"),
        }

        let new_a = insert_one(store, publish("clinic-a", &["u1"], "new a")).await[0].0;
        let new_b = insert_one(store, publish("clinic-b", &["u1"], "new b")).await[0].0;
        let next_a = insert_one(store, publish("clinic-a", &["u1"], "next a")).await[0].0;
        let new_c = insert_one(store, publish("clinic-c", &["u1"], "new c")).await[0].0;
        assert_eq!(
            [new_a.seq(), new_b.seq(), next_a.seq(), new_c.seq()],
            [8, 8, 9, 1]
        );
        // Clients resuming from a kept id, or from a purged one, miss nothing.
        let replayed = |v: Vec<tidings::domain::notification::Notification>| -> Vec<i64> {
            v.iter().map(|n| n.id.seq()).collect()
        };
        let from = NotificationId::from_seq;
        let after_a = store.replay_after(&a, &x, from(5), 10).await.unwrap();
        assert_eq!(replayed(after_a), [8, 9]);
        let after_b = store.replay_after(&bb, &x, from(7), 10).await.unwrap();
        assert_eq!(replayed(after_b), [8]);
        assert_eq!(
            store.unread_count(&a, &x).await.unwrap(),
            count(5, 5, 9),
            "counters carry on"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_from(dir.path(), 6, &legacy_sql()).await;
        migrated_keeps_ids_and_continues_above(store.as_ref()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(admin) = postgres_admin_url("store_conformance::migration::postgres", false)
        else {
            return;
        };
        let db = PgTestDb::create(&admin).await;
        let mut sql = legacy_sql();
        // What the global sequence had handed out: rows 6 and 7 were purged since.
        sql.push("SELECT setval('notification_seq', 7)".to_owned());
        let store = postgres_from(&db, 6, &sql).await;
        migrated_keeps_ids_and_continues_above(store.as_ref()).await;
    }

    /// Migration 0007, existing databases: a clinic event's notice written before it
    /// (its `data` names the event, its `related` the appointment) is linked to the
    /// event's patient, so erasing that patient redacts it. A look-alike (the same
    /// `data.event_id` on another appointment, or in another tenant) is not.
    fn event_notices_sql() -> Vec<String> {
        let notice = |seq: i64, tenant: &str, apt: &str| {
            format!(
                "INSERT INTO notifications (seq, tenant_id, user_id, title, message, type,
                   related_type, related_id, data, created_at, updated_at)
                 VALUES ({seq}, '{tenant}', 'dr-1', 'New appointment: Fatimah Zahra', 'm',
                   'info', 'appointment', '{apt}', '{{\"event_id\": \"ev-1\"}}', 0, 0)"
            )
        };
        vec![
            "INSERT INTO tenants (id, name, jwt_secret, created_at) VALUES
               ('clinic-a', 'A', 's', 0), ('clinic-b', 'B', 's', 0)"
                .to_owned(),
            "INSERT INTO clinic_events (tenant_id, event_id, type, appointment_id, occurred_at,
               received_at, outcome, notifications, messages, reminders_scheduled,
               reminders_cancelled, payload, patient_id)
             VALUES ('clinic-a', 'ev-1', 'booked', 'apt-1', 0, 0, 'applied', 1, 0, 0, 0,
               '{\"appointment\": {\"patient\": {\"id\": \"p-1\"}}}', 'p-1')"
                .to_owned(),
            notice(1, "clinic-a", "apt-1"),
            notice(2, "clinic-a", "apt-2"),
            notice(1, "clinic-b", "apt-1"),
        ]
    }

    async fn migrated_links_event_notices(store: &dyn Store) {
        let titles = |tenant: &'static str| async move {
            let page = store
                .list(&t(tenant), &u("dr-1"), InboxFilter::All, page(10, None))
                .await
                .unwrap();
            page.items
                .into_iter()
                .map(|n| (n.id.seq(), n.content.title))
                .collect::<Vec<_>>()
        };
        let erased = |c: &ErasureCounts| AuditEntry {
            actor: "api_key:test".into(),
            action: "patient.erased".into(),
            target: "patient:p-1".into(),
            detail: format!(r#"{{"notifications":{}}}"#, c.notifications),
            at: at(1),
        };
        let counts = store
            .erase_patient(
                &t("clinic-a"),
                &PatientId::parse("p-1").unwrap(),
                &erased,
                at(1),
            )
            .await
            .unwrap()
            .expect("the patient is known");
        assert_eq!((counts.events, counts.notifications), (1, 1));
        let whole = "New appointment: Fatimah Zahra".to_owned();
        assert_eq!(
            titles("clinic-a").await,
            [(2, whole.clone()), (1, "[redacted]".to_owned())]
        );
        assert_eq!(titles("clinic-b").await, [(1, whole)]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_links_event_notices() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_from(dir.path(), 7, &event_notices_sql()).await;
        migrated_links_event_notices(store.as_ref()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_links_event_notices() {
        let test = "store_conformance::migration::postgres_links_event_notices";
        let Some(admin) = postgres_admin_url(test, false) else {
            return;
        };
        let db = PgTestDb::create(&admin).await;
        let store = postgres_from(&db, 7, &event_notices_sql()).await;
        migrated_links_event_notices(store.as_ref()).await;
    }
}

// --- webhooks to clinic systems ------------------------------------------------

mod webhook_cases {
    use super::*;
    use tidings::domain::message::{MessageId, MessageStatus};
    use tidings::domain::template::{Channel, MessageKind};
    use tidings::domain::webhook::DisablePolicy;
    pub(super) use tidings::domain::webhook::{
        DisableReason as Reason, EventType as Type, SigningSecret as Secret,
    };
    pub(super) use tidings::store::webhooks::{
        AttemptNext, AttemptRecorded as Recorded, AttemptResult, DeliveryStatus as Status,
        EndpointDraft, WebhookEvent,
    };

    pub(super) fn draft(url: &str, types: &[Type], enabled: bool) -> EndpointDraft {
        EndpointDraft {
            url: url.into(),
            event_types: types.to_vec(),
            enabled,
        }
    }

    pub(super) fn failed_message() -> WebhookEvent {
        WebhookEvent::MessageStatus {
            message: MessageId::new_random(),
            channel: Channel::Sms,
            kind: MessageKind::Results,
            from: MessageStatus::Sending,
            to: MessageStatus::Failed,
        }
    }

    pub(super) fn result(secs: i64, status: Option<u16>, next: AttemptNext) -> AttemptResult {
        AttemptResult {
            at: at(secs),
            response_status: status,
            error: status.filter(|s| *s >= 300).map(|s| format!("HTTP {s}")),
            duration_ms: 7,
            next,
        }
    }

    pub(super) const POLICY: DisablePolicy = DisablePolicy {
        after_failed_deliveries: 2,
        after_failing_for: Duration::from_secs(5 * 86_400),
    };
}

async fn webhook_endpoints_round_trip_scoped_by_tenant(b: &Backend) {
    use webhook_cases::*;
    let s = &b.store;
    let (a, other) = (t("clinic-a"), t("clinic-b"));
    let secret = Secret::generate();
    let id = uuid::Uuid::new_v4();
    let e = s
        .create_endpoint(
            &a,
            id,
            &draft(
                "https://a.example/h",
                &[Type::MessageFailed, Type::MessageStatusChanged],
                true,
            ),
            &secret,
            at(0),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            e.id,
            e.url.as_str(),
            e.enabled,
            e.event_types.clone(),
            e.created_at
        ),
        (
            id,
            "https://a.example/h",
            true,
            vec![Type::MessageStatusChanged, Type::MessageFailed],
            at(0)
        )
    );
    assert_eq!(s.get_endpoint(&a, id).await.unwrap(), Some(e.clone()));
    // Another tenant sees nothing and changes nothing.
    assert_eq!(s.get_endpoint(&other, id).await.unwrap(), None);
    let upd = draft("https://evil.example/", &[Type::NotificationRead], true);
    assert!(matches!(
        s.update_endpoint(&other, id, &upd, at(1)).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.delete_endpoint(&other, id).await,
        Err(StoreError::NotFound)
    ));
    assert!(s
        .list_endpoints(&other, page(10, None))
        .await
        .unwrap()
        .items
        .is_empty());
    // Update replaces url, types and enabled.
    let e2 = s
        .update_endpoint(
            &a,
            id,
            &draft("https://a.example/v2", &[Type::NotificationRead], false),
            at(2),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            e2.url.as_str(),
            e2.event_types.clone(),
            e2.enabled,
            e2.updated_at
        ),
        (
            "https://a.example/v2",
            vec![Type::NotificationRead],
            false,
            at(2)
        )
    );
    let second = uuid::Uuid::new_v4();
    s.create_endpoint(
        &a,
        second,
        &draft("https://a.example/2", &[Type::PatientReplied], true),
        &Secret::generate(),
        at(3),
    )
    .await
    .unwrap();
    let first_page = s.list_endpoints(&a, page(1, None)).await.unwrap();
    assert_eq!(first_page.items[0].id, second, "newest first");
    let rest = s
        .list_endpoints(&a, page(1, first_page.next))
        .await
        .unwrap();
    assert_eq!((rest.items[0].id, rest.next), (id, None));
    s.delete_endpoint(&a, id).await.unwrap();
    assert_eq!(s.get_endpoint(&a, id).await.unwrap(), None);
    assert!(matches!(
        s.delete_endpoint(&a, id).await,
        Err(StoreError::NotFound)
    ));
}

async fn webhook_deliveries_are_emitted_claimed_leased_finished_and_replayed(b: &Backend) {
    use webhook_cases::*;
    let s = &b.store;
    let a = t("clinic-a");
    let (msgs, reads, off) = (
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
    );
    let both = [Type::MessageStatusChanged, Type::MessageFailed];
    s.create_endpoint(
        &a,
        msgs,
        &draft("https://m.example/", &both, true),
        &Secret::generate(),
        at(0),
    )
    .await
    .unwrap();
    s.create_endpoint(
        &a,
        reads,
        &draft("https://r.example/", &[Type::NotificationRead], true),
        &Secret::generate(),
        at(0),
    )
    .await
    .unwrap();
    s.create_endpoint(
        &a,
        off,
        &draft("https://o.example/", &both, false),
        &Secret::generate(),
        at(0),
    )
    .await
    .unwrap();
    // Another tenant's endpoint never gets clinic-a's events.
    s.create_endpoint(
        &t("clinic-b"),
        uuid::Uuid::new_v4(),
        &draft("https://b.example/", &both, true),
        &Secret::generate(),
        at(0),
    )
    .await
    .unwrap();

    // A failure makes two events (status_changed, failed) for the one listening endpoint.
    assert_eq!(s.emit(&a, &failed_message(), at(1)).await.unwrap(), 2);
    // A read, through the real mark_read: only the opted-in endpoint.
    let ids = insert_one(s.as_ref(), publish("clinic-a", &["u-1"], "n")).await;
    s.mark_read(&a, &u("u-1"), &[ids[0].0], at(2))
        .await
        .unwrap();
    s.mark_all_read(&a, &u("u-1"), at(2)).await.unwrap(); // nothing left unread: no event
    assert_eq!(s.pending_deliveries().await.unwrap(), 3);

    let claimed = s.claim_deliveries(at(3), at(63), 10).await.unwrap();
    assert_eq!(claimed.len(), 3);
    assert!(
        s.claim_deliveries(at(4), at(64), 10)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    let read = claimed
        .iter()
        .find(|c| c.delivery.endpoint == reads)
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&read.delivery.payload).unwrap();
    assert_eq!(body["type"], "notification.read");
    assert_eq!(body["data"]["user_id"], "u-1");
    assert_eq!(body["data"]["notification_ids"][0], ids[0].0.to_string());
    let on_msgs: Vec<_> = claimed
        .iter()
        .filter(|c| c.delivery.endpoint == msgs)
        .collect();
    let types: BTreeSet<&str> = on_msgs
        .iter()
        .map(|c| c.delivery.event_type.as_str())
        .collect();
    assert_eq!(
        types,
        BTreeSet::from(["message.failed", "message.status_changed"])
    );
    assert_ne!(on_msgs[0].delivery.event_id, on_msgs[1].delivery.event_id);
    let msg_body: serde_json::Value = serde_json::from_str(&on_msgs[0].delivery.payload).unwrap();
    assert_eq!(msg_body["data"]["status"], "failed");
    assert_eq!(msg_body["data"]["previous_status"], "sending");
    assert!(
        msg_body["data"].get("body").is_none(),
        "ids and statuses only"
    );
    assert_eq!(read.url, "https://r.example/");
    assert!(read.secret.expose().starts_with("whsec_"));
    assert_eq!(read.window_start, at(3));

    // Success; a wrong token records nothing.
    let ok = result(5, Some(200), AttemptNext::Succeeded);
    assert_eq!(
        s.finish_delivery(&a, read.delivery.id, uuid::Uuid::new_v4(), &ok, &POLICY)
            .await
            .unwrap(),
        Recorded::LeaseLost
    );
    assert_eq!(
        s.finish_delivery(&a, read.delivery.id, read.lease_token, &ok, &POLICY)
            .await
            .unwrap(),
        Recorded::Recorded { disabled: None }
    );
    // A retry goes back to pending until its time; a crashed worker's lease runs out.
    let retry = &on_msgs[0];
    s.finish_delivery(
        &a,
        retry.delivery.id,
        retry.lease_token,
        &result(5, Some(500), AttemptNext::RetryAt(at(50))),
        &POLICY,
    )
    .await
    .unwrap();
    assert!(s
        .claim_deliveries(at(49), at(110), 10)
        .await
        .unwrap()
        .is_empty());
    let again = s.claim_deliveries(at(50), at(110), 10).await.unwrap();
    let ids_again: Vec<_> = again.iter().map(|c| c.delivery.id).collect();
    assert_eq!(
        ids_again,
        vec![retry.delivery.id],
        "the other one is still leased until 63"
    );
    assert_eq!(
        again[0].delivery.event_id, retry.delivery.event_id,
        "same webhook-id"
    );
    assert_eq!(
        (again[0].delivery.attempts, again[0].window_start),
        (1, at(3))
    );
    let crashed = &on_msgs[1];
    let reclaimed = s.claim_deliveries(at(200), at(260), 10).await.unwrap();
    let by_id: Vec<_> = reclaimed
        .iter()
        .map(|c| (c.delivery.id, c.delivery.event_id.clone()))
        .collect();
    assert!(
        by_id.contains(&(crashed.delivery.id, crashed.delivery.event_id.clone())),
        "an expired lease is claimed again with the same webhook-id: {by_id:?}"
    );

    // The log, newest first, with attempts; the replay of a settled delivery only.
    let log = s.list_deliveries(&a, reads, page(10, None)).await.unwrap();
    assert_eq!(log.items.len(), 1);
    assert_eq!(
        (
            log.items[0].status,
            log.items[0].attempts,
            log.items[0].last_response_status
        ),
        (Status::Succeeded, 1, Some(200))
    );
    let (d, attempts) = s
        .get_delivery(&a, reads, read.delivery.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.id, read.delivery.id);
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        (
            attempts[0].attempt,
            attempts[0].response_status,
            attempts[0].duration_ms
        ),
        (1, Some(200), 7)
    );
    assert!(s
        .get_delivery(&t("clinic-b"), reads, read.delivery.id)
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        s.list_deliveries(&t("clinic-b"), reads, page(10, None))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.replay_delivery(&a, msgs, crashed.delivery.id, at(300))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.replay_delivery(&t("clinic-b"), reads, read.delivery.id, at(300))
            .await,
        Err(StoreError::NotFound)
    ));
    let replayed = s
        .replay_delivery(&a, reads, read.delivery.id, at(300))
        .await
        .unwrap();
    assert_eq!(
        (replayed.status, replayed.event_id.clone()),
        (Status::Pending, read.delivery.event_id.clone())
    );
    let back = s.claim_deliveries(at(300), at(360), 10).await.unwrap();
    let replay_claim = back
        .iter()
        .find(|c| c.delivery.id == read.delivery.id)
        .expect("claimed");
    assert_eq!(
        replay_claim.window_start,
        at(300),
        "a replay starts a new window"
    );
}

async fn webhook_endpoints_are_disabled_by_the_policy_and_by_410(b: &Backend) {
    use webhook_cases::*;
    let s = &b.store;
    let a = t("clinic-a");
    let id = uuid::Uuid::new_v4();
    let types = [Type::MessageStatusChanged];
    s.create_endpoint(
        &a,
        id,
        &draft("https://x.example/", &types, true),
        &Secret::generate(),
        at(0),
    )
    .await
    .unwrap();
    let fail = |secs| result(secs, Some(500), AttemptNext::Failed { gone: false });
    for (round, want) in [(1, None), (2, Some(Reason::Failures))] {
        s.emit(&a, &failed_message(), at(round)).await.unwrap();
        let c = s
            .claim_deliveries(at(round), at(round + 60), 10)
            .await
            .unwrap();
        assert_eq!(c.len(), 1);
        let got = s
            .finish_delivery(
                &a,
                c[0].delivery.id,
                c[0].lease_token,
                &fail(round),
                &POLICY,
            )
            .await
            .unwrap();
        assert_eq!(got, Recorded::Recorded { disabled: want }, "round {round}");
    }
    let e = s.get_endpoint(&a, id).await.unwrap().unwrap();
    assert_eq!(
        (
            e.enabled,
            e.disabled_reason,
            e.failed_deliveries,
            e.failing_since
        ),
        (false, Some(Reason::Failures), 2, Some(at(1)))
    );
    // Disabled: no new deliveries.
    assert_eq!(s.emit(&a, &failed_message(), at(10)).await.unwrap(), 0);
    // Enabled again: a clean run; a success also ends a run.
    let e = s
        .update_endpoint(&a, id, &draft("https://x.example/", &types, true), at(11))
        .await
        .unwrap();
    assert_eq!(
        (
            e.enabled,
            e.disabled_reason,
            e.failed_deliveries,
            e.failing_since
        ),
        (true, None, 0, None)
    );
    s.emit(&a, &failed_message(), at(12)).await.unwrap();
    let c = s.claim_deliveries(at(12), at(72), 10).await.unwrap();
    s.finish_delivery(
        &a,
        c[0].delivery.id,
        c[0].lease_token,
        &result(12, None, AttemptNext::RetryAt(at(20))),
        &POLICY,
    )
    .await
    .unwrap();
    assert_eq!(
        s.get_endpoint(&a, id).await.unwrap().unwrap().failing_since,
        Some(at(12))
    );
    let c = s.claim_deliveries(at(20), at(80), 10).await.unwrap();
    s.finish_delivery(
        &a,
        c[0].delivery.id,
        c[0].lease_token,
        &result(20, Some(204), AttemptNext::Succeeded),
        &POLICY,
    )
    .await
    .unwrap();
    assert_eq!(
        s.get_endpoint(&a, id).await.unwrap().unwrap().failing_since,
        None
    );
    // A deliveries of a disabled endpoint waits; 410 disables at once.
    s.emit(&a, &failed_message(), at(30)).await.unwrap();
    s.emit(&a, &failed_message(), at(30)).await.unwrap();
    let c = s.claim_deliveries(at(30), at(90), 1).await.unwrap();
    let got = s
        .finish_delivery(
            &a,
            c[0].delivery.id,
            c[0].lease_token,
            &result(30, Some(410), AttemptNext::Failed { gone: true }),
            &POLICY,
        )
        .await
        .unwrap();
    assert_eq!(
        got,
        Recorded::Recorded {
            disabled: Some(Reason::Gone)
        }
    );
    assert!(
        s.claim_deliveries(at(31), at(91), 10)
            .await
            .unwrap()
            .is_empty(),
        "waits while disabled"
    );
    assert_eq!(
        s.pending_deliveries().await.unwrap(),
        0,
        "the backlog counts enabled endpoints"
    );
    s.update_endpoint(&a, id, &draft("https://x.example/", &types, true), at(32))
        .await
        .unwrap();
    assert_eq!(
        s.claim_deliveries(at(33), at(93), 10).await.unwrap().len(),
        1,
        "resumes when enabled"
    );
}

async fn priority_is_stored_and_critical_is_never_silent(b: &Backend) {
    let s = b.store.as_ref();
    let a = t("clinic-a");
    s.put_staff_preferences(
        &a,
        &u("muter"),
        &StaffPreferences::new(vec!["lab.result".into()], None).unwrap(),
        Utc::now(),
    )
    .await
    .unwrap();
    let mut batch = Vec::new();
    for p in Priority::ALL {
        let mut req = publish("clinic-a", &["muter"], p.as_str());
        req.content = content(p.as_str(), Some("lab.result"));
        req.content.priority = p;
        batch.push(req);
    }
    let out = s.insert_batch(&batch).await.unwrap();
    let rows: Vec<(Priority, bool)> = out
        .iter()
        .flat_map(|o| match o {
            PublishOutcome::Created { notifications, .. } => notifications.clone(),
            other => panic!("{other:?}"),
        })
        .map(|n| (n.content.priority, n.silent))
        .collect();
    use Priority::*;
    let want = [(Low, true), (Normal, true), (High, true), (Critical, false)];
    assert_eq!(rows, want);
    let listed = s
        .list(&a, &u("muter"), InboxFilter::All, page(10, None))
        .await
        .unwrap();
    let stored: Vec<(Priority, bool)> = listed
        .items
        .iter()
        .rev()
        .map(|n| (n.content.priority, n.silent))
        .collect();
    assert_eq!(stored, want, "read back as written");
    let replay = s
        .replay_after(&a, &u("muter"), NotificationId::from_seq(0), 10)
        .await
        .unwrap();
    assert_eq!(replay.len(), 1);
    assert_eq!(replay[0].content.priority, Critical);
    assert!(listed
        .items
        .iter()
        .all(|n| n.chain.is_none() && n.escalated_from.is_none()));
}

/// A publish to `users` with two steps: the front desk after 300 s, `u-3` after 600 s.
fn escalated(tenant: &str, users: &[&str]) -> PublishRequest {
    let mut req = publish(tenant, users, "escalated");
    req.escalate = vec![
        EscalationStep {
            after_secs: 300,
            to: EscalationTarget::Role(Role::FrontDesk),
        },
        EscalationStep {
            after_secs: 600,
            to: EscalationTarget::User(u("u-3")),
        },
    ];
    req
}

async fn escalation_steps_are_claimed_under_a_lease_and_fired_once(b: &Backend) {
    let [one, two] = b.two_nodes().await;
    let a = t("clinic-a");
    let ids = insert_one(one.as_ref(), escalated("clinic-a", &["u-1", "u-2"])).await;
    let chain = ids[0].0;
    let plain = insert_one(one.as_ref(), publish("clinic-a", &["u-1"], "plain")).await;
    let steps = one.escalation_steps(&a, chain).await.unwrap();
    assert_eq!(
        steps
            .iter()
            .map(|s| (s.step, s.due_at, s.state))
            .collect::<Vec<_>>(),
        [
            (1, at(300), EscalationState::Pending),
            (2, at(600), EscalationState::Pending)
        ]
    );
    assert!(one
        .escalation_steps(&a, plain[0].0)
        .await
        .unwrap()
        .is_empty());
    // Nothing is due before its time.
    assert!(one
        .claim_escalations(at(299), at(329), 10)
        .await
        .unwrap()
        .is_empty());
    let claimed = one.claim_escalations(at(300), at(330), 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        (claimed[0].chain, claimed[0].step, claimed[0].due_at),
        (chain, 1, at(300))
    );
    assert_eq!(claimed[0].to, EscalationTarget::Role(Role::FrontDesk));
    // Leased: the other node gets nothing until the lease ends, then takes it over.
    assert!(two
        .claim_escalations(at(310), at(340), 10)
        .await
        .unwrap()
        .is_empty());
    let taken = two.claim_escalations(at(330), at(360), 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_ne!(taken[0].lease_token, claimed[0].lease_token);
    // The first claim's token no longer holds: it writes nothing.
    let late = one
        .fire_escalation(&claimed[0], vec![u("fd-1")], at(331))
        .await
        .unwrap();
    assert!(matches!(late, FireOutcome::NotMine), "{late:?}");
    let fired = two
        .fire_escalation(&taken[0], vec![u("fd-1"), u("fd-2")], at(332))
        .await
        .unwrap();
    let FireOutcome::Fired(PublishOutcome::Created {
        notifications,
        counts,
    }) = fired
    else {
        panic!("{fired:?}")
    };
    assert_eq!(notifications.len(), 2);
    for n in &notifications {
        assert_eq!((n.chain, n.escalated_from), (Some(chain), Some(chain)));
        assert_eq!(n.content.title, "escalated");
        assert_eq!(n.created_at, at(332));
    }
    assert_eq!(counts.len(), 2);
    // Fired once: firing again, or claiming again, does nothing.
    let again = two
        .fire_escalation(&taken[0], vec![u("fd-1")], at(333))
        .await
        .unwrap();
    assert!(matches!(again, FireOutcome::NotMine), "{again:?}");
    let listed = one
        .list(&a, &u("fd-1"), InboxFilter::All, page(10, None))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].escalated_from, Some(chain));
    let next = one.claim_escalations(at(600), at(630), 10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!((next[0].chain, next[0].step), (chain, 2));
    assert_eq!(next[0].to, EscalationTarget::User(u("u-3")));
    let states: Vec<EscalationState> = one
        .escalation_steps(&a, chain)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.state)
        .collect();
    assert_eq!(states, [EscalationState::Fired, EscalationState::Pending]);
    // Another tenant sees none of it.
    assert!(one
        .escalation_steps(&t("clinic-b"), chain)
        .await
        .unwrap()
        .is_empty());
}

async fn a_read_of_any_notification_of_a_chain_cancels_its_pending_steps(b: &Backend) {
    let s = b.store.as_ref();
    let a = t("clinic-a");
    let tenant = &a;
    let states = |chain: NotificationId| async move {
        s.escalation_steps(tenant, chain)
            .await
            .unwrap()
            .into_iter()
            .map(|x| x.state)
            .collect::<Vec<_>>()
    };
    use EscalationState::*;
    // Read by a co-recipient of the original (mark_read).
    let first = insert_one(s, escalated("clinic-a", &["u-1", "u-2"])).await;
    // The same recipient in another tenant reading its own does not touch this chain.
    let other = insert_one(s, escalated("clinic-b", &["u-2"])).await;
    s.mark_read(&t("clinic-b"), &u("u-2"), &[other[0].0], at(10))
        .await
        .unwrap();
    assert_eq!(states(first[0].0).await, [Pending, Pending]);
    s.mark_read(&a, &u("u-2"), &[first[1].0], at(11))
        .await
        .unwrap();
    assert_eq!(states(first[0].0).await, [Cancelled, Cancelled]);
    assert!(s
        .claim_escalations(at(900), at(930), 10)
        .await
        .unwrap()
        .iter()
        .all(|c| c.tenant != a));

    // Read of a copy (mark_all_read) after step 1 fired cancels step 2 only.
    let second = insert_one(s, escalated("clinic-a", &["u-1"])).await;
    let chain = second[0].0;
    let claimed = s.claim_escalations(at(300), at(330), 10).await.unwrap();
    let step1 = claimed
        .iter()
        .find(|c| c.chain == chain && c.tenant == a)
        .unwrap();
    let FireOutcome::Fired(_) = s
        .fire_escalation(step1, vec![u("fd-1")], at(301))
        .await
        .unwrap()
    else {
        panic!("step 1 fires")
    };
    // A read of something else of fd-1 leaves the chain alone.
    let unrelated = insert_one(s, publish("clinic-a", &["fd-1"], "unrelated")).await;
    s.mark_read(&a, &u("fd-1"), &[unrelated[0].0], at(302))
        .await
        .unwrap();
    assert_eq!(states(chain).await, [Fired, Pending]);
    s.mark_all_read(&a, &u("fd-1"), at(303)).await.unwrap();
    assert_eq!(states(chain).await, [Fired, Cancelled]);
    // A cancelled step cannot be fired by a claim taken before the read.
    let third = insert_one(s, escalated("clinic-a", &["u-1"])).await;
    let claimed = s.claim_escalations(at(300), at(330), 10).await.unwrap();
    let step1 = claimed.iter().find(|c| c.chain == third[0].0).unwrap();
    s.mark_read(&a, &u("u-1"), &[third[0].0], at(304))
        .await
        .unwrap();
    let lost = s
        .fire_escalation(step1, vec![u("fd-1")], at(305))
        .await
        .unwrap();
    assert!(matches!(lost, FireOutcome::NotMine), "{lost:?}");
    assert_eq!(states(third[0].0).await, [Cancelled, Cancelled]);
}

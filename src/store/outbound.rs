//! The outbound-messages port: templates (versioned), patient preferences, the
//! durable message queue with its event trail, batches, provider callbacks and the
//! administrative audit log.
//!
//! Both backends implement [`OutboundStore`]; the conformance suite
//! (`tests/it/store_conformance.rs`) runs the same checks through this trait on
//! SQLite and PostgreSQL.
//!
//! # Who decides what
//! The store is the place where transitions become durable and atomic; the rules
//! (which status may follow which, the retry schedule, the channel choice) live in
//! `domain::message` and the services. The one rule the store applies itself is
//! [`crate::domain::message::advance`] for provider callbacks, because "never
//! backwards" must be checked and written in the same transaction.
//!
//! # Times
//! Every time is passed in (`now`), never read from a clock here, so the queue can
//! be driven by an injected clock in tests.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use tokio::sync::mpsc;

use super::{IdempotencyClaim, Page, PageRequest, StoreError};
use crate::domain::contact::Address;
use crate::domain::ids::{BatchId, PatientId, TemplateId, TenantId};
use crate::domain::message::{MessageId, MessageStatus, Money, PatientPreferences};
use crate::domain::template::{Channel, Language, MessageKind, Template};

// ---------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------

/// A template as stored: its id, the current version's content, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTemplate {
    pub id: TemplateId,
    /// The current version (`template.version`).
    pub template: Template,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One past or current version of a template (the version history).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateVersion {
    pub template: Template,
    pub created_at: DateTime<Utc>,
    /// Who made this version (the audit actor).
    pub actor: String,
}

/// Which templates a list shows.
#[derive(Debug, Clone, Default)]
pub struct TemplateFilter {
    pub channel: Option<Channel>,
    pub kind: Option<MessageKind>,
    pub active: Option<bool>,
}

// ---------------------------------------------------------------------------
// Audit log
// ---------------------------------------------------------------------------

/// An administrative action, written in the same transaction as the change it
/// describes (so the log cannot claim a change that did not happen, or miss one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Who: `api_key:<prefix>` or `user:<user id>`.
    pub actor: String,
    /// What, dotted: `template.create`, `template.update`, `template.delete`,
    /// `template.toggle`, `message.retry`, `message.cancel`, `message.cancel_group`,
    /// `message.bulk`, `patient.preferences`, `patient.erased`; reads of patient data:
    /// `read.message`, `read.messages`, `read.export`, `read.patient`.
    pub action: String,
    /// The object acted on (`template:<id>`, `message:<id>`, `group:<key>`,
    /// `batch:<id>`, `patient:<id>`).
    pub target: String,
    /// Details as a JSON object text (the service builds it).
    pub detail: String,
    pub at: DateTime<Utc>,
}

/// An audit entry as stored; `seq` orders the log and is the list cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: i64,
    pub entry: AuditEntry,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Exact action (`template.update`) or a prefix ending in `.` (`template.`).
    pub action: Option<String>,
    pub actor: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/// The template version a message was rendered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRef {
    pub id: TemplateId,
    pub name: String,
    pub version: u32,
}

/// A message to insert: rendered, addressed, and already decided to be either
/// `Queued` or `Suppressed` (with the reason) by the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub id: MessageId,
    pub patient: Option<PatientId>,
    pub channel: Channel,
    /// `None` only for a suppressed message that had no address.
    pub to: Option<Address>,
    pub language: Language,
    pub kind: MessageKind,
    pub template: Option<TemplateRef>,
    /// The variables it was rendered with (kept for the WhatsApp template
    /// parameters and for the admin's message detail).
    pub variables: BTreeMap<String, String>,
    pub subject: Option<String>,
    pub body: String,
    /// `Queued` or `Suppressed`.
    pub status: MessageStatus,
    /// For `Suppressed`: `Suppression::code()` and its sentence.
    pub suppression: Option<(String, String)>,
    /// When it becomes due (now for an immediate send).
    pub send_at: DateTime<Utc>,
    pub group_key: Option<String>,
    pub batch: Option<BatchId>,
}

/// A batch (bulk send) row, created with its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBatch {
    pub id: BatchId,
    pub template: Option<String>,
}

/// One item of an enqueue feed (see [`OutboundStore::enqueue`]).
#[derive(Debug)]
pub enum EnqueueFeed {
    Chunk(Vec<NewMessage>),
    /// Everything was sent: commit.
    Commit,
}

/// What one enqueue did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// Committed: how many queued and suppressed.
    Committed { queued: u64, suppressed: u64 },
    /// The idempotency key was used before with the same body: the first response body.
    Replayed { response: String },
    /// The idempotency key was used before with a different body.
    KeyReused,
    /// The feed ended without `Commit` (the producer found an invalid recipient or
    /// failed): rolled back, nothing was written.
    Aborted,
}

/// One row of a message's event trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEvent {
    /// `created`, `queued`, `sending`, `sent`, `delivered`, `read`, `failed`,
    /// `retry`, `bounced`, `cancelled`, `suppressed`, `failover`, `callback`.
    pub event: String,
    pub at: DateTime<Utc>,
    /// A JSON object text: provider, response or error, attempt number, reason.
    pub detail: String,
}

/// A message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// Insertion order; the list cursor.
    pub seq: i64,
    pub id: MessageId,
    pub tenant: TenantId,
    pub patient: Option<PatientId>,
    pub channel: Channel,
    pub to: Option<Address>,
    pub language: Language,
    pub kind: MessageKind,
    pub template: Option<TemplateRef>,
    pub variables: BTreeMap<String, String>,
    pub subject: Option<String>,
    pub body: String,
    pub status: MessageStatus,
    pub suppression: Option<(String, String)>,
    pub send_at: DateTime<Utc>,
    pub group_key: Option<String>,
    pub batch: Option<BatchId>,
    /// The provider of the last attempt (its retries continue there; failover moves it).
    pub provider: Option<String>,
    pub provider_message_id: Option<String>,
    pub price: Option<Money>,
    /// Provider calls made (claims that reached a provider).
    pub attempts: u32,
    /// Transient failures on the current provider (drives `RetryPolicy::next`).
    pub failures: u32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When its personal data was removed (retention or the patient's erasure): the
    /// address, subject, body, variables and provider texts are gone (`body` is empty);
    /// status, channel, template, kind, times and cost stay for the stats.
    pub redacted_at: Option<DateTime<Utc>>,
}

/// Which messages a list, export or count covers. Every field narrows.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub status: Option<MessageStatus>,
    pub channel: Option<Channel>,
    /// Template name.
    pub template: Option<String>,
    pub patient: Option<PatientId>,
    pub batch: Option<BatchId>,
    pub group_key: Option<String>,
    /// `created_at >= from`.
    pub from: Option<DateTime<Utc>>,
    /// `created_at < to`.
    pub to: Option<DateTime<Utc>>,
    /// Case-insensitive substring of the address, the body, the patient id or the
    /// provider message id.
    pub q: Option<String>,
}

/// A message a worker claimed: leased to `lease_token` until `lease_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedMessage {
    pub message: MessageRecord,
    /// The status before the claim: `Queued` (a normal or retried send) or
    /// `Sending` (its previous worker died, or its unknown-outcome wait ran out).
    pub previous_status: MessageStatus,
    pub lease_token: uuid::Uuid,
}

/// What the worker learned from one attempt, applied atomically if the worker
/// still holds the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptUpdate {
    /// `Sent`, `Queued` (retry or deferral), `Sending` (outcome unknown: wait for
    /// the callback until `due_at`), `Failed`, `Bounced`, `Suppressed` (preferences
    /// changed before the send).
    pub status: MessageStatus,
    /// Next time the queue looks at it (`Queued`: retry time; `Sending`: the
    /// unknown-outcome deadline). Ignored for other statuses.
    pub due_at: Option<DateTime<Utc>>,
    pub provider: Option<String>,
    pub provider_message_id: Option<String>,
    pub price: Option<Money>,
    /// Add 1 to `attempts` (a provider was called).
    pub attempted: bool,
    /// The new value of `failures`.
    pub failures: u32,
    pub last_error: Option<String>,
    pub events: Vec<MessageEvent>,
}

/// Where a provider callback points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackTarget {
    pub tenant: TenantId,
    pub id: MessageId,
    pub provider: Option<String>,
    pub status: MessageStatus,
}

/// A provider status callback to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackUpdate {
    pub status: MessageStatus,
    pub provider_message_id: Option<String>,
    pub price: Option<Money>,
    pub error: Option<String>,
    /// SHA-256 of the provider name and raw body: a replayed callback (same bytes)
    /// is acknowledged and changes nothing.
    pub receipt: String,
    pub event: MessageEvent,
}

/// What applying a callback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackOutcome {
    /// The status moved forward.
    Applied,
    /// Recorded as an event; the status did not move (out of order or same).
    Stale,
    /// The same callback was received before: nothing written.
    Replay,
}

/// A batch's status: its messages counted by status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchStatus {
    pub id: BatchId,
    pub template: Option<String>,
    pub created_at: DateTime<Utc>,
    pub total: u64,
    pub by_status: BTreeMap<MessageStatus, u64>,
}

/// Counts for `GET /v1/messages/stats` over messages created in `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MessageStats {
    pub total: u64,
    pub by_status: BTreeMap<MessageStatus, u64>,
    pub by_channel: BTreeMap<Channel, u64>,
    /// Per UTC day of `created_at`, every day of the range present (zeros included),
    /// oldest first: (date, total, delivered or read, failed or bounced).
    pub daily: Vec<DailyCount>,
    /// Summed prices per channel and currency, in micros.
    pub cost: Vec<(Channel, String, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyCount {
    pub date: NaiveDate,
    pub total: u64,
    pub delivered: u64,
    pub failed: u64,
}

// ---------------------------------------------------------------------------
// PHI lifecycle
// ---------------------------------------------------------------------------

/// Which tenants a retention pass redacts: one tenant with its own `phi_days`, or
/// every tenant but those (the default `phi_days`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhiScope {
    Tenant(TenantId),
    AllExcept(Vec<TenantId>),
}

/// Rows one retention pass redacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RedactionCounts {
    pub messages: u64,
    pub events: u64,
    /// Staff notifications about a patient (see `redact_notification_set`).
    pub notifications: u64,
}

/// What erasing one patient changed (no personal data: only counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ErasureCounts {
    /// Messages whose address, texts and patient id were removed.
    pub messages: u64,
    /// Of those, still queued ones that were cancelled first.
    pub cancelled: u64,
    /// Clinic events whose payload (the patient's name and contacts) was removed.
    pub events: u64,
    /// Whether a preferences / contact record was deleted.
    pub preferences: bool,
    /// Staff notifications about the patient whose texts were removed: those of the
    /// clinic events about them and those published with `related` naming them.
    pub notifications: u64,
}

/// Builds the erasure's audit entry from its counts (known only inside the transaction).
pub type ErasureAudit<'a> = &'a (dyn Fn(&ErasureCounts) -> AuditEntry + Send + Sync);

/// Every outbound port, implemented by one backend (as [`crate::store::Store`] is the
/// sum of all ports): services that need several of them hold one `Arc<dyn OutboundStore>`.
pub trait OutboundStore:
    TemplateStore + PatientStore + QueueStore + MessageStore + CallbackStore + AuditStore
{
}
impl<T> OutboundStore for T where
    T: TemplateStore + PatientStore + QueueStore + MessageStore + CallbackStore + AuditStore
{
}

/// Message templates with their versions (a version is never changed, only added).
#[async_trait]
pub trait TemplateStore: Send + Sync {
    /// Creates version 1. `Conflict` if a (non-deleted) template of the tenant has the name.
    async fn create_template(
        &self,
        tenant: &TenantId,
        id: TemplateId,
        template: &Template,
        audit: &AuditEntry,
    ) -> Result<StoredTemplate, StoreError>;
    async fn get_template(
        &self,
        tenant: &TenantId,
        id: TemplateId,
    ) -> Result<Option<StoredTemplate>, StoreError>;
    /// The current version of the named, non-deleted template (active or not).
    async fn template_by_name(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Option<StoredTemplate>, StoreError>;
    /// A specific version (what a stored message was rendered from), deleted templates included.
    async fn template_version(
        &self,
        tenant: &TenantId,
        id: TemplateId,
        version: u32,
    ) -> Result<Option<Template>, StoreError>;
    /// Newest first by creation; cursor is an internal sequence number.
    async fn list_templates(
        &self,
        tenant: &TenantId,
        filter: &TemplateFilter,
        page: PageRequest,
    ) -> Result<Page<StoredTemplate>, StoreError>;
    /// Stores `template` (whose `version` is the current one + 1) as the new
    /// current version and keeps the old one in the history. `Conflict` if the
    /// current version is no longer `template.version - 1` (a concurrent edit);
    /// `NotFound` if unknown or deleted.
    async fn update_template(
        &self,
        tenant: &TenantId,
        id: TemplateId,
        template: &Template,
        audit: &AuditEntry,
    ) -> Result<StoredTemplate, StoreError>;
    /// Sets `is_active` without a new version. `NotFound` if unknown or deleted.
    async fn set_template_active(
        &self,
        tenant: &TenantId,
        id: TemplateId,
        active: bool,
        audit: &AuditEntry,
    ) -> Result<StoredTemplate, StoreError>;
    /// Soft delete: the name becomes free, the versions stay for the messages
    /// that used them. `NotFound` if unknown or already deleted.
    async fn delete_template(
        &self,
        tenant: &TenantId,
        id: TemplateId,
        audit: &AuditEntry,
    ) -> Result<(), StoreError>;
    /// Every version, newest first.
    async fn template_versions(
        &self,
        tenant: &TenantId,
        id: TemplateId,
    ) -> Result<Vec<TemplateVersion>, StoreError>;
}

/// Patients' contact preferences and the PHI lifecycle (retention redaction, erasure).
#[async_trait]
pub trait PatientStore: Send + Sync {
    /// `None` when the clinic never stored preferences for the patient.
    async fn patient_preferences(
        &self,
        tenant: &TenantId,
        patient: &PatientId,
    ) -> Result<Option<PatientPreferences>, StoreError>;
    /// Several at once (bulk sends); missing patients are absent from the map.
    async fn patient_preferences_many(
        &self,
        tenant: &TenantId,
        patients: &[PatientId],
    ) -> Result<BTreeMap<PatientId, PatientPreferences>, StoreError>;
    async fn put_patient_preferences(
        &self,
        tenant: &TenantId,
        patient: &PatientId,
        prefs: &PatientPreferences,
        audit: Option<&AuditEntry>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Redacts up to `limit` messages and up to `limit` clinic events of `scope`
    /// created (received) before `cutoff` and not redacted yet, oldest first:
    /// messages that left the queue (never `queued` or `sending`: their text is still
    /// to be sent) lose address, subject, body, variables, last error and the free
    /// texts of their event trail; events lose their payload. One short transaction.
    async fn redact_phi(
        &self,
        scope: &PhiScope,
        cutoff: DateTime<Utc>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<RedactionCounts, StoreError>;

    /// Erases one patient in one transaction: deletes their preferences, cancels
    /// their queued messages, redacts every message and clinic event of theirs
    /// (patient id included, so the rows stay as anonymous counts) and the texts of
    /// the staff notifications about them (read state kept), records the
    /// erasure and writes `audit(counts)`. `None` (nothing written) when the tenant
    /// has no data of the patient and never erased them.
    async fn erase_patient(
        &self,
        tenant: &TenantId,
        patient: &PatientId,
        audit: ErasureAudit<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<ErasureCounts>, StoreError>;
}

/// The leased message queue: enqueue, claim under a lease, record the outcome.
#[async_trait]
pub trait QueueStore: Send + Sync {
    /// Inserts messages in ONE transaction fed in chunks, so a 10,000-recipient
    /// bulk send is atomic without the whole batch in memory: the producer sends
    /// `Chunk`s and then `Commit`; if the channel closes without `Commit`, the
    /// transaction is rolled back and `Aborted` returned.
    ///
    /// For each message: the row, and the events `created` + `queued` (or
    /// `created` + `suppressed` with the reason). With `batch`, the batch row.
    /// With `idempotency`, the key is checked first (`Replayed` / `KeyReused`
    /// without reading the feed further) and recorded with `response` on commit.
    /// `audit` is written in the same transaction.
    #[allow(clippy::too_many_arguments)]
    async fn enqueue(
        &self,
        tenant: &TenantId,
        batch: Option<&NewBatch>,
        feed: mpsc::Receiver<EnqueueFeed>,
        idempotency: Option<(&IdempotencyClaim, &str)>,
        audit: Option<&AuditEntry>,
        now: DateTime<Utc>,
    ) -> Result<EnqueueOutcome, StoreError>;

    /// Claims up to `limit` due messages of any tenant, oldest due first: those
    /// `Queued` with `send_at/due_at <= now`, and those `Sending` whose lease (or
    /// unknown-outcome wait) ended before `now`. Each becomes `Sending`, leased
    /// to a fresh token until `lease_until`, with a `sending` event. Two workers
    /// (on one node or many) never claim the same message while a lease holds
    /// (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: one atomic UPDATE).
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedMessage>, StoreError>;

    /// Applies a worker's result if `lease_token` still holds the message
    /// (`Ok(false)` otherwise: the lease expired and another worker took it, or a
    /// callback already finished it; nothing written). A `Sent` that arrives
    /// after a callback moved the message further keeps the later status but
    /// stores the provider id and price.
    async fn finish_attempt(
        &self,
        tenant: &TenantId,
        id: MessageId,
        lease_token: uuid::Uuid,
        update: &AttemptUpdate,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

/// Messages as the clinic sees them: detail, trail, lists, cancel, retry, batches, stats.
#[async_trait]
pub trait MessageStore: Send + Sync {
    async fn get_message(
        &self,
        tenant: &TenantId,
        id: MessageId,
    ) -> Result<Option<MessageRecord>, StoreError>;
    /// The event trail, oldest first.
    async fn message_events(
        &self,
        tenant: &TenantId,
        id: MessageId,
    ) -> Result<Vec<MessageEvent>, StoreError>;
    /// Newest first (by `seq`).
    async fn list_messages(
        &self,
        tenant: &TenantId,
        filter: &MessageFilter,
        page: PageRequest,
    ) -> Result<Page<MessageRecord>, StoreError>;

    /// `Queued` → `Cancelled` with a `cancelled` event. `NotFound` if unknown;
    /// `Conflict` if it is past `Queued`.
    async fn cancel_message(
        &self,
        tenant: &TenantId,
        id: MessageId,
        audit: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<MessageRecord, StoreError>;
    /// Cancels every `Queued` message of the group; returns how many.
    async fn cancel_group(
        &self,
        tenant: &TenantId,
        group_key: &str,
        audit: Option<&AuditEntry>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    /// Manual retry: `Failed`/`Bounced` → `Queued`, due now, `failures` reset,
    /// provider cleared (starts again at the top of the chain), a `retry` event.
    /// `Conflict` in any other status.
    async fn retry_message(
        &self,
        tenant: &TenantId,
        id: MessageId,
        audit: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<MessageRecord, StoreError>;

    async fn batch_status(
        &self,
        tenant: &TenantId,
        id: BatchId,
    ) -> Result<Option<BatchStatus>, StoreError>;
    /// Stats over messages created in `[from, to)` (whole UTC days).
    async fn message_stats(
        &self,
        tenant: &TenantId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<MessageStats, StoreError>;
    /// How many messages are `Queued` or `Sending` (all tenants): for shutdown and metrics.
    async fn pending_messages(&self) -> Result<u64, StoreError>;

    /// How many messages a list with `filter` covers (the export's audit entry).
    async fn count_messages(
        &self,
        tenant: &TenantId,
        filter: &MessageFilter,
    ) -> Result<u64, StoreError>;
}

/// Provider status callbacks: find the message, apply the update once and in order.
#[async_trait]
pub trait CallbackStore: Send + Sync {
    /// Finds the message a callback is about: by our id when the callback carries
    /// it, else by the provider's message id (any tenant: the provider does not know
    /// tenants).
    async fn callback_target(
        &self,
        message_id: Option<MessageId>,
        provider_message_id: Option<&str>,
    ) -> Result<Option<CallbackTarget>, StoreError>;
    /// Applies a callback atomically: replay check (receipt), `advance` check,
    /// status/price/provider id, and the event row (recorded for `Applied` and `Stale`).
    async fn apply_callback(
        &self,
        tenant: &TenantId,
        id: MessageId,
        update: &CallbackUpdate,
        now: DateTime<Utc>,
    ) -> Result<CallbackOutcome, StoreError>;
}

/// The audit log of changes to and reads of patient data.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends one entry on its own (reads of patient data: nothing else to commit).
    async fn record_audit(&self, tenant: &TenantId, entry: &AuditEntry) -> Result<(), StoreError>;

    async fn list_audit(
        &self,
        tenant: &TenantId,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditRecord>, StoreError>;
}

-- Outbound patient messages (SQLite): templates with their version history, patient
-- preferences, the durable message queue with its event trail, batches, provider
-- callback receipts, idempotency records and the administrative audit log.
-- Times are unix milliseconds (INTEGER); every table carries tenant_id and every
-- query filters on it (the queue claim and callback lookup are the only cross-tenant
-- reads, by design: workers and providers do not know tenants).

CREATE TABLE templates (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,  -- list order and cursor
    id          TEXT NOT NULL UNIQUE,               -- UUID
    tenant_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,                   -- the current version
    is_active   INTEGER NOT NULL,
    deleted_at  INTEGER,                            -- soft delete: versions stay for old messages
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
-- A name is unique among a tenant's live templates; deleting one frees its name.
CREATE UNIQUE INDEX templates_live_name ON templates (tenant_id, name) WHERE deleted_at IS NULL;
CREATE INDEX templates_by_tenant ON templates (tenant_id, seq);

-- Every version's full content (the current one included), so a message can always be
-- shown with the exact text it was rendered from.
CREATE TABLE template_versions (
    tenant_id    TEXT NOT NULL,
    template_id  TEXT NOT NULL,
    version      INTEGER NOT NULL,
    name         TEXT NOT NULL,
    channel      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    body_en      TEXT NOT NULL,
    body_ar      TEXT NOT NULL,
    subject_en   TEXT,
    subject_ar   TEXT,
    variables    TEXT NOT NULL,     -- JSON array of names, in declared order
    is_active    INTEGER NOT NULL,  -- the flag as it was when this version was made
    actor        TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, template_id, version)
) WITHOUT ROWID;

CREATE TABLE patient_preferences (
    tenant_id          TEXT NOT NULL,
    patient_id         TEXT NOT NULL,
    phone              TEXT,
    email              TEXT,
    language           TEXT NOT NULL,
    preferred_channel  TEXT,
    sms_on             INTEGER NOT NULL,
    whatsapp_on        INTEGER NOT NULL,
    email_on           INTEGER NOT NULL,
    kinds              TEXT NOT NULL,   -- JSON object of the kinds set explicitly: {"marketing": true}
    updated_at         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, patient_id)
) WITHOUT ROWID;

CREATE TABLE batches (
    id          TEXT PRIMARY KEY,       -- UUID
    tenant_id   TEXT NOT NULL,
    template    TEXT,
    created_at  INTEGER NOT NULL
);

CREATE TABLE messages (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,  -- insertion order; list cursor
    id                   TEXT NOT NULL UNIQUE,               -- UUID, handed to providers
    tenant_id            TEXT NOT NULL,
    patient_id           TEXT,
    channel              TEXT NOT NULL,
    to_address           TEXT,
    language             TEXT NOT NULL,
    kind                 TEXT NOT NULL,
    template_id          TEXT,
    template_name        TEXT,
    template_version     INTEGER,
    variables            TEXT NOT NULL,    -- JSON object
    subject              TEXT,
    body                 TEXT NOT NULL,
    status               TEXT NOT NULL,
    suppression_code     TEXT,
    suppression_reason   TEXT,
    send_at              INTEGER NOT NULL,
    -- When the queue next looks at it: send_at / retry time while queued, the lease or
    -- unknown-outcome deadline while sending; NULL once it left the queue.
    due_at               INTEGER,
    group_key            TEXT,
    batch_id             TEXT,
    provider             TEXT,
    provider_message_id  TEXT,
    price_micros         INTEGER,
    price_currency       TEXT,
    attempts             INTEGER NOT NULL DEFAULT 0,
    failures             INTEGER NOT NULL DEFAULT 0,
    last_error           TEXT,
    lease_token          TEXT,
    lease_until          INTEGER,
    claimed_from         TEXT,   -- the status the last claim took it from (queued / sending)
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
-- The claim: due queued rows and expired sending rows, oldest due first.
CREATE INDEX messages_due ON messages (status, due_at);
CREATE INDEX messages_by_tenant ON messages (tenant_id, seq);
CREATE INDEX messages_by_status ON messages (tenant_id, status, seq);
CREATE INDEX messages_by_patient ON messages (tenant_id, patient_id, seq);
CREATE INDEX messages_by_template ON messages (tenant_id, template_name, seq);
CREATE INDEX messages_by_created ON messages (tenant_id, created_at);
CREATE INDEX messages_by_group ON messages (tenant_id, group_key) WHERE group_key IS NOT NULL;
CREATE INDEX messages_by_batch ON messages (tenant_id, batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX messages_by_provider_id ON messages (provider_message_id) WHERE provider_message_id IS NOT NULL;

CREATE TABLE message_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    event       TEXT NOT NULL,
    at          INTEGER NOT NULL,
    detail      TEXT NOT NULL       -- JSON object
);
CREATE INDEX message_events_by_message ON message_events (tenant_id, message_id, seq);

-- Provider callbacks already applied: SHA-256 of provider name + raw body.
CREATE TABLE webhook_receipts (
    receipt     TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    at          INTEGER NOT NULL
) WITHOUT ROWID;

-- Idempotency of message sends: the first response body, returned again on replay.
CREATE TABLE outbound_idempotency (
    tenant_id     TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    response      TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, key)
) WITHOUT ROWID;
CREATE INDEX outbound_idempotency_age ON outbound_idempotency (created_at);

CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,   -- order and cursor
    tenant_id  TEXT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    detail     TEXT NOT NULL,       -- JSON object
    at         INTEGER NOT NULL
);
CREATE INDEX audit_by_tenant ON audit_log (tenant_id, seq);
CREATE INDEX audit_by_action ON audit_log (tenant_id, action, seq);

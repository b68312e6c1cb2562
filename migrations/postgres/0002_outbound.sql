-- Outbound patient messages (PostgreSQL): the same tables as migrations/sqlite/0002_outbound.sql.
-- Times are unix milliseconds (BIGINT) as in 0001_core.sql; every table carries tenant_id and
-- every query filters on it (the queue claim and callback lookup are the only cross-tenant
-- reads, by design: workers and providers do not know tenants).
-- JSON texts the caller hands back verbatim (event and audit details) are JSON, not JSONB
-- (JSONB would reorder keys); lists and maps the store itself reads are JSONB.

CREATE TABLE templates (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- list order and cursor
    id          TEXT NOT NULL UNIQUE,               -- UUID
    tenant_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     BIGINT NOT NULL,                   -- the current version
    is_active   BOOLEAN NOT NULL,
    deleted_at  BIGINT,                            -- soft delete: versions stay for old messages
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
-- A name is unique among a tenant's live templates; deleting one frees its name.
CREATE UNIQUE INDEX templates_live_name ON templates (tenant_id, name) WHERE deleted_at IS NULL;
CREATE INDEX templates_by_tenant ON templates (tenant_id, seq);

-- Every version's full content (the current one included), so a message can always be
-- shown with the exact text it was rendered from.
CREATE TABLE template_versions (
    tenant_id    TEXT NOT NULL,
    template_id  TEXT NOT NULL,
    version      BIGINT NOT NULL,
    name         TEXT NOT NULL,
    channel      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    body_en      TEXT NOT NULL,
    body_ar      TEXT NOT NULL,
    subject_en   TEXT,
    subject_ar   TEXT,
    variables    JSONB NOT NULL,    -- array of names, in declared order
    is_active    BOOLEAN NOT NULL,  -- the flag as it was when this version was made
    actor        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, template_id, version)
);

CREATE TABLE patient_preferences (
    tenant_id          TEXT NOT NULL,
    patient_id         TEXT NOT NULL,
    phone              TEXT,
    email              TEXT,
    language           TEXT NOT NULL,
    preferred_channel  TEXT,
    sms_on             BOOLEAN NOT NULL,
    whatsapp_on        BOOLEAN NOT NULL,
    email_on           BOOLEAN NOT NULL,
    kinds              JSONB NOT NULL,  -- object of the kinds set explicitly: {"marketing": true}
    updated_at         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, patient_id)
);

CREATE TABLE batches (
    id          TEXT PRIMARY KEY,       -- UUID
    tenant_id   TEXT NOT NULL,
    template    TEXT,
    created_at  BIGINT NOT NULL
);

CREATE TABLE messages (
    seq                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- insertion order; list cursor
    id                   TEXT NOT NULL UNIQUE,               -- UUID, handed to providers
    tenant_id            TEXT NOT NULL,
    patient_id           TEXT,
    channel              TEXT NOT NULL,
    to_address           TEXT,
    language             TEXT NOT NULL,
    kind                 TEXT NOT NULL,
    template_id          TEXT,
    template_name        TEXT,
    template_version     BIGINT,
    variables            JSONB NOT NULL,   -- object
    subject              TEXT,
    body                 TEXT NOT NULL,
    status               TEXT NOT NULL,
    suppression_code     TEXT,
    suppression_reason   TEXT,
    send_at              BIGINT NOT NULL,
    -- When the queue next looks at it: send_at / retry time while queued, the lease or
    -- unknown-outcome deadline while sending; NULL once it left the queue.
    due_at               BIGINT,
    group_key            TEXT,
    batch_id             TEXT,
    provider             TEXT,
    provider_message_id  TEXT,
    price_micros         BIGINT,
    price_currency       TEXT,
    attempts             BIGINT NOT NULL DEFAULT 0,
    failures             BIGINT NOT NULL DEFAULT 0,
    last_error           TEXT,
    lease_token          TEXT,
    lease_until          BIGINT,
    claimed_from         TEXT,   -- the status the last claim took it from (queued / sending)
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
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
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    event       TEXT NOT NULL,
    at          BIGINT NOT NULL,
    detail      JSON NOT NULL
);
CREATE INDEX message_events_by_message ON message_events (tenant_id, message_id, seq);

-- Provider callbacks already applied: SHA-256 of provider name + raw body.
CREATE TABLE webhook_receipts (
    receipt     TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    at          BIGINT NOT NULL
);

-- Idempotency of message sends: the first response body, returned again on replay.
CREATE TABLE outbound_idempotency (
    tenant_id     TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    response      TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX outbound_idempotency_age ON outbound_idempotency (created_at);

CREATE TABLE audit_log (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,   -- order and cursor
    tenant_id  TEXT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    detail     JSON NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX audit_by_tenant ON audit_log (tenant_id, seq);
CREATE INDEX audit_by_action ON audit_log (tenant_id, action, seq);

-- Hub core schema (PostgreSQL), the same tables as migrations/sqlite/0001_core.sql.
--
-- Times are unix milliseconds (BIGINT), as in the SQLite schema: both backends hold the
-- same values to the millisecond, so one conformance suite can compare them exactly, and
-- no session time zone or driver conversion is involved. Read them with
-- to_timestamp(created_at / 1000.0).
-- JSON: `data` is JSON (not JSONB) because it is handed back byte for byte as the caller
-- sent it (JSONB would reorder keys); lists the store itself writes are JSONB.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    -- HS256 signing secret for the tenant's user tokens. Needed in clear to verify.
    jwt_secret  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    prefix      TEXT PRIMARY KEY,          -- first characters of the key, shown to admins, used to revoke
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    key_hash    TEXT NOT NULL UNIQUE,      -- SHA-256 of the whole key; the key itself is never stored
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE users (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- list order and cursor
    tenant_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    role        TEXT NOT NULL,
    name        TEXT,
    locale      TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (tenant_id, user_id)
);
CREATE INDEX users_by_role ON users (tenant_id, role, seq);

-- Notification ids. Sequences are not commit-ordered, so ids are only ever taken by
-- insert_batch while it holds its tenants' advisory locks (store/postgres/notifications.rs);
-- `seq` has no default on purpose, so no other path can take one.
CREATE SEQUENCE notification_seq AS BIGINT;

CREATE TABLE notifications (
    seq          BIGINT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    title        TEXT NOT NULL,
    message      TEXT NOT NULL,
    type         TEXT NOT NULL,
    category     TEXT,
    related_type TEXT,
    related_id   TEXT,
    link         TEXT,
    data         JSON NOT NULL,
    silent       BOOLEAN NOT NULL DEFAULT false,
    read_at      BIGINT,
    archived_at  BIGINT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX notifications_by_user ON notifications (tenant_id, user_id, seq);
CREATE INDEX notifications_unread ON notifications (tenant_id, user_id, seq)
    WHERE read_at IS NULL AND archived_at IS NULL;
CREATE INDEX notifications_retention ON notifications (created_at)
    WHERE read_at IS NOT NULL OR archived_at IS NOT NULL;

-- The unread count, kept in step with notifications in the same transactions,
-- so reading it never costs a COUNT over a user's history.
CREATE TABLE unread_counters (
    tenant_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    unread     BIGINT NOT NULL,
    version    BIGINT NOT NULL,   -- bumped by every change: orders updates across nodes
    head       BIGINT NOT NULL,   -- newest notification seq of the user
    PRIMARY KEY (tenant_id, user_id)
);

CREATE TABLE staff_preferences (
    tenant_id         TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    muted_categories  JSONB NOT NULL,   -- array of strings
    quiet_start       TEXT,
    quiet_end         TEXT,
    quiet_tz          TEXT,
    updated_at        BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);

CREATE TABLE idempotency_keys (
    tenant_id     TEXT NOT NULL,
    scope         TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    result        JSONB NOT NULL,     -- what the first request created: [[seq, user_id], ...]
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, scope, key)
);
CREATE INDEX idempotency_age ON idempotency_keys (created_at);

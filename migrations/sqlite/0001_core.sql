-- Hub core schema (SQLite). Times are unix milliseconds (INTEGER).

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    -- HS256 signing secret for the tenant's user tokens. Needed in clear to verify.
    jwt_secret  TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    prefix      TEXT PRIMARY KEY,          -- first characters of the key, shown to admins, used to revoke
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    key_hash    TEXT NOT NULL UNIQUE,      -- SHA-256 of the whole key; the key itself is never stored
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE users (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,  -- list order and cursor
    tenant_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    role        TEXT NOT NULL,
    name        TEXT,
    locale      TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (tenant_id, user_id)
);
CREATE INDEX users_by_role ON users (tenant_id, role);

-- seq is assigned by the single writer in commit order (see store/sqlite/notifications.rs).
CREATE TABLE notifications (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id    TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    title        TEXT NOT NULL,
    message      TEXT NOT NULL,
    type         TEXT NOT NULL,
    category     TEXT,
    related_type TEXT,
    related_id   TEXT,
    link         TEXT,
    data         TEXT NOT NULL,
    silent       INTEGER NOT NULL DEFAULT 0,
    read_at      INTEGER,
    archived_at  INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
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
    unread     INTEGER NOT NULL,
    version    INTEGER NOT NULL,   -- bumped by every change: orders updates across nodes
    head       INTEGER NOT NULL,   -- newest notification seq of the user
    PRIMARY KEY (tenant_id, user_id)
) WITHOUT ROWID;

CREATE TABLE staff_preferences (
    tenant_id         TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    muted_categories  TEXT NOT NULL,   -- JSON array of strings
    quiet_start       TEXT,
    quiet_end         TEXT,
    quiet_tz          TEXT,
    updated_at        INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
) WITHOUT ROWID;

CREATE TABLE idempotency_keys (
    tenant_id     TEXT NOT NULL,
    scope         TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    result        TEXT NOT NULL,     -- what the first request created (store-internal JSON)
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, scope, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_age ON idempotency_keys (created_at);

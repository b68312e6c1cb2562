-- Webhooks to clinic systems (SQLite): per-tenant endpoints, the event types each
-- listens to, the durable delivery queue (one row per event and endpoint, leased like
-- the message queue) and every attempt's answer (the delivery log).
-- Times are unix milliseconds; every table carries tenant_id and every query filters on
-- it (the worker's claim is the only cross-tenant read, as for messages).

CREATE TABLE webhook_endpoints (
    seq                   INTEGER PRIMARY KEY AUTOINCREMENT,  -- list order and cursor
    id                    TEXT NOT NULL UNIQUE,               -- UUID
    tenant_id             TEXT NOT NULL,
    url                   TEXT NOT NULL,
    -- `whsec_<base64>`, kept as the tenant's JWT secret is (the hub signs with it, so it
    -- cannot be hashed); the database file is private (0600).
    secret                TEXT NOT NULL,
    enabled               INTEGER NOT NULL,
    -- Why the hub disabled it (`failures`, `gone`); NULL when enabled or disabled by a person.
    disabled_reason       TEXT,
    -- Deliveries that ended `failed` since the last successful attempt.
    consecutive_failures  INTEGER NOT NULL DEFAULT 0,
    -- The first failed attempt since the last successful one (NULL: not failing).
    failing_since         INTEGER,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
);
CREATE INDEX webhook_endpoints_by_tenant ON webhook_endpoints (tenant_id, seq);

CREATE TABLE webhook_endpoint_events (
    tenant_id    TEXT NOT NULL,
    endpoint_id  TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    PRIMARY KEY (endpoint_id, event_type)
);
-- What an emit looks up: the tenant's endpoints listening to one type.
CREATE INDEX webhook_endpoint_events_by_type ON webhook_endpoint_events (tenant_id, event_type);

CREATE TABLE webhook_deliveries (
    seq                   INTEGER PRIMARY KEY AUTOINCREMENT,  -- log order and cursor
    id                    TEXT NOT NULL UNIQUE,               -- UUID, the log's delivery id
    tenant_id             TEXT NOT NULL,
    endpoint_id           TEXT NOT NULL,
    -- `webhook-id`: one per event, the same for every attempt (and every endpoint).
    event_id              TEXT NOT NULL,
    event_type            TEXT NOT NULL,
    payload               TEXT NOT NULL,   -- the exact body signed and sent
    status                TEXT NOT NULL,   -- pending | delivering | succeeded | failed
    attempts              INTEGER NOT NULL,
    -- pending: the next attempt; delivering: the end of the lease. NULL once settled.
    due_at                INTEGER,
    lease_token           TEXT,
    -- The start of the retry window (the first attempt; a replay starts a new one).
    window_start          INTEGER,
    last_attempt_at       INTEGER,
    last_response_status  INTEGER,
    last_error            TEXT,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (due_at, seq)
    WHERE status IN ('pending', 'delivering');
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (tenant_id, endpoint_id, seq);

CREATE TABLE webhook_attempts (
    tenant_id        TEXT NOT NULL,
    delivery_id      TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    at               INTEGER NOT NULL,
    response_status  INTEGER,   -- NULL: no HTTP answer (refused, timeout, blocked address)
    error            TEXT,
    duration_ms      INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

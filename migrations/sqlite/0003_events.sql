-- Clinic events (SQLite): the event log (idempotent by event id), each appointment's
-- state (orders late and duplicate events, see docs/EVENTS.md), and which tenants
-- already received the default templates. Times are unix milliseconds.

CREATE TABLE clinic_events (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,  -- arrival order; list cursor
    tenant_id            TEXT NOT NULL,
    event_id             TEXT NOT NULL,
    type                 TEXT NOT NULL,                      -- booked, confirmed, ...
    appointment_id       TEXT NOT NULL,
    occurred_at          INTEGER NOT NULL,
    received_at          INTEGER NOT NULL,
    outcome              TEXT NOT NULL,  -- applied, applied_as_booking, ignored_stale, ignored_closed
    notifications        INTEGER NOT NULL,
    messages             INTEGER NOT NULL,
    reminders_scheduled  INTEGER NOT NULL,
    reminders_cancelled  INTEGER NOT NULL,
    payload              TEXT NOT NULL   -- the event as received (JSON)
);
CREATE UNIQUE INDEX clinic_events_id ON clinic_events (tenant_id, event_id);
CREATE INDEX clinic_events_by_tenant ON clinic_events (tenant_id, seq);
CREATE INDEX clinic_events_by_appointment ON clinic_events (tenant_id, appointment_id, seq);

CREATE TABLE appointment_states (
    tenant_id         TEXT NOT NULL,
    appointment_id    TEXT NOT NULL,
    status            TEXT NOT NULL,     -- the last applied event type (short name)
    start_at          INTEGER NOT NULL,
    last_occurred_at  INTEGER NOT NULL,  -- newest applied occurred_at
    reminders_for     INTEGER,           -- start time of the pending reminders
    version           INTEGER NOT NULL,  -- optimistic concurrency
    updated_at        INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, appointment_id)
) WITHOUT ROWID;

CREATE TABLE event_template_seeds (
    tenant_id  TEXT PRIMARY KEY,
    seeded_at  INTEGER NOT NULL
) WITHOUT ROWID;

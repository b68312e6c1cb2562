-- Clinic events (PostgreSQL): the event log (idempotent by event id), each appointment's
-- state (orders late and duplicate events, see docs/EVENTS.md), and which tenants
-- already received the default templates. Times are unix milliseconds.

CREATE TABLE clinic_events (
    seq                  BIGSERIAL PRIMARY KEY,  -- arrival order; list cursor
    tenant_id            TEXT NOT NULL,
    event_id             TEXT NOT NULL,
    type                 TEXT NOT NULL,                      -- booked, confirmed, ...
    appointment_id       TEXT NOT NULL,
    occurred_at          BIGINT NOT NULL,
    received_at          BIGINT NOT NULL,
    outcome              TEXT NOT NULL,  -- applied, applied_as_booking, ignored_stale, ignored_closed
    notifications        BIGINT NOT NULL,
    messages             BIGINT NOT NULL,
    reminders_scheduled  BIGINT NOT NULL,
    reminders_cancelled  BIGINT NOT NULL,
    payload              TEXT NOT NULL   -- the event as received (JSON)
);
CREATE UNIQUE INDEX clinic_events_id ON clinic_events (tenant_id, event_id);
CREATE INDEX clinic_events_by_tenant ON clinic_events (tenant_id, seq);
CREATE INDEX clinic_events_by_appointment ON clinic_events (tenant_id, appointment_id, seq);

CREATE TABLE appointment_states (
    tenant_id         TEXT NOT NULL,
    appointment_id    TEXT NOT NULL,
    status            TEXT NOT NULL,     -- the last applied event type (short name)
    start_at          BIGINT NOT NULL,
    last_occurred_at  BIGINT NOT NULL,  -- newest applied occurred_at
    reminders_for     BIGINT,           -- start time of the pending reminders
    version           BIGINT NOT NULL,  -- optimistic concurrency
    updated_at        BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, appointment_id)
);

CREATE TABLE event_template_seeds (
    tenant_id  TEXT PRIMARY KEY,
    seeded_at  BIGINT NOT NULL
);

-- PHI lifecycle (SQLite): redaction after the tenant's retention (`[retention] phi_days`) and
-- the erasure of one patient (`DELETE /v1/patients/{id}/data`). A redacted row keeps what the
-- stats and exports count (status, channel, template, kind, times, cost) and loses what names
-- or reaches the patient (address, subject, body, variables, provider texts, event payload).

-- When the row's personal data was removed (retention or erasure); NULL while it is whole.
ALTER TABLE messages ADD COLUMN redacted_at INTEGER;
-- The retention job's scan: rows still whole, oldest first.
CREATE INDEX messages_unredacted ON messages (created_at) WHERE redacted_at IS NULL;
-- The patient a message is about when it is not addressed to them: a clinic event's
-- notices to staff name the patient ("New appointment: <name>"). Set for the messages
-- of a clinic event, so an erasure finds them too. (Rows from before this migration
-- cannot be linked; the retention job still redacts them.)
ALTER TABLE messages ADD COLUMN about_patient_id TEXT;
CREATE INDEX messages_about_patient ON messages (tenant_id, about_patient_id)
    WHERE about_patient_id IS NOT NULL;

-- The patient an event names (the payload's appointment.patient.id), so an erasure finds
-- the patient's events without parsing every payload.
ALTER TABLE clinic_events ADD COLUMN patient_id TEXT;
ALTER TABLE clinic_events ADD COLUMN redacted_at INTEGER;
UPDATE clinic_events SET patient_id = json_extract(payload, '$.appointment.patient.id')
 WHERE json_valid(payload);
CREATE INDEX clinic_events_by_patient ON clinic_events (tenant_id, patient_id)
    WHERE patient_id IS NOT NULL;
CREATE INDEX clinic_events_unredacted ON clinic_events (received_at) WHERE redacted_at IS NULL;

-- Patients erased on request: a second erasure of the same patient is answered (idempotent)
-- instead of a 404, and the clinic can show when it happened. Holds the clinic's
-- pseudonymous id only, as the audit log does.
CREATE TABLE erased_patients (
    tenant_id   TEXT NOT NULL,
    patient_id  TEXT NOT NULL,
    erased_at   INTEGER NOT NULL,   -- the latest erasure
    PRIMARY KEY (tenant_id, patient_id)
) WITHOUT ROWID;

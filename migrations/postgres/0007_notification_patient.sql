-- Staff notifications that name a patient: the same changes as
-- migrations/sqlite/0007_notification_patient.sql. An erasure of the patient redacts
-- the notifications an event about them created (`about_patient_id`, set by the
-- clinic-event path) and those published with `related` `{"type": "patient", "id": …}`.

ALTER TABLE notifications ADD COLUMN about_patient_id TEXT;
CREATE INDEX notifications_about_patient ON notifications (tenant_id, about_patient_id)
    WHERE about_patient_id IS NOT NULL;
CREATE INDEX notifications_related_patient ON notifications (tenant_id, related_id)
    WHERE related_type = 'patient';

-- Event notices from before this migration, linked through their event (named by
-- `data.event_id`, with the same appointment as `related`). `data` is JSON the hub
-- validated before storing it, so `->>` cannot fail.
UPDATE notifications n SET about_patient_id = e.patient_id
  FROM clinic_events e
 WHERE n.related_type = 'appointment' AND e.tenant_id = n.tenant_id
   AND e.event_id = n.data ->> 'event_id' AND e.appointment_id = n.related_id
   AND e.patient_id IS NOT NULL;

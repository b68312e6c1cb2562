-- Staff notifications that name a patient (issue #11): an erasure of the patient
-- (`DELETE /v1/patients/{id}/data`) redacts them too. Two links find them:
-- `about_patient_id`, set by the clinic-event path for the notices of an event about
-- the patient ("New appointment: <name>"), as `messages.about_patient_id` is; and
-- `related` `{"type": "patient", "id": …}` on a notification published through the API.

ALTER TABLE notifications ADD COLUMN about_patient_id TEXT;
CREATE INDEX notifications_about_patient ON notifications (tenant_id, about_patient_id)
    WHERE about_patient_id IS NOT NULL;
CREATE INDEX notifications_related_patient ON notifications (tenant_id, related_id)
    WHERE related_type = 'patient';

-- Event notices from before this migration: their `data` names the event and their
-- `related` its appointment, and the event row still knows its patient (unless that
-- patient was already erased). Both must match, so a notification published through
-- the API with a look-alike `data` is not linked by chance.
UPDATE notifications SET about_patient_id = (
    SELECT e.patient_id FROM clinic_events e
     WHERE e.tenant_id = notifications.tenant_id
       AND e.event_id = json_extract(notifications.data, '$.event_id')
       AND e.appointment_id = notifications.related_id)
 WHERE related_type = 'appointment' AND json_valid(data)
   AND json_type(data, '$.event_id') = 'text';

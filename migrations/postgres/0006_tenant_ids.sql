-- Notification ids per tenant (issue #11). Ids came from one global sequence, so the
-- gap between two of a tenant's ids told it how much every other tenant published.
-- Each tenant now has its own counter, and `seq` is unique per tenant only. The
-- wire form (`n` + 16 hex digits) and every existing id stay as they are.

-- The newest id handed out to each tenant. Taken only by insert_batch while it holds
-- the tenant's advisory lock (store/postgres/notifications.rs), so ids stay in
-- commit order across nodes.
CREATE TABLE notification_counters (
    tenant_id  TEXT PRIMARY KEY,
    last_seq   BIGINT NOT NULL
);

-- Every existing tenant continues above the highest id ever handed out, not only
-- above its own newest row: retention may have deleted that row while a client
-- still resumes from its id. New tenants start at 1.
INSERT INTO notification_counters (tenant_id, last_seq)
SELECT k.tenant_id, GREATEST(
    (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM notification_seq),
    (SELECT COALESCE(MAX(seq), 0) FROM notifications))
FROM (SELECT id AS tenant_id FROM tenants UNION SELECT tenant_id FROM notifications) AS k;

ALTER TABLE notifications DROP CONSTRAINT notifications_pkey;
ALTER TABLE notifications ADD PRIMARY KEY (tenant_id, seq);

-- Dropped, not left behind: a node of an older release (still calling nextval) then
-- fails its publishes loudly instead of mixing global ids into per-tenant ones.
DROP SEQUENCE notification_seq;

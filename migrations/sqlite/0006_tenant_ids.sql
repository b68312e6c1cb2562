-- Notification ids per tenant (issue #11). Ids came from one global sequence, so the
-- gap between two of a tenant's ids told it how much every other tenant published.
-- Each tenant now has its own counter, and `seq` is unique per tenant only. The
-- wire form (`n` + 16 hex digits) and every existing id stay as they are.

-- The newest id handed out to each tenant; the single writer bumps it in the
-- publish transaction (store/sqlite/notifications.rs), so ids stay in commit order.
CREATE TABLE notification_counters (
    tenant_id  TEXT PRIMARY KEY,
    last_seq   INTEGER NOT NULL
) WITHOUT ROWID;

-- Every existing tenant continues above the highest id ever handed out, not only
-- above its own newest row: retention may have deleted that row while a client
-- still resumes from its id. New tenants start at 1.
INSERT INTO notification_counters (tenant_id, last_seq)
SELECT k.tenant_id, MAX(
    COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'notifications'), 0),
    COALESCE((SELECT MAX(seq) FROM notifications), 0))
FROM (SELECT id AS tenant_id FROM tenants UNION SELECT tenant_id FROM notifications) AS k;

-- `seq` was the rowid (globally unique); SQLite cannot change a primary key in
-- place, so the table is rebuilt with the same columns and rows.
CREATE TABLE notifications_per_tenant (
    seq          INTEGER NOT NULL,   -- the id, counted per tenant
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
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
INSERT INTO notifications_per_tenant (seq, tenant_id, user_id, title, message, type, category,
    related_type, related_id, link, data, silent, read_at, archived_at, created_at, updated_at)
SELECT seq, tenant_id, user_id, title, message, type, category,
    related_type, related_id, link, data, silent, read_at, archived_at, created_at, updated_at
FROM notifications ORDER BY seq;
DROP TABLE notifications;
ALTER TABLE notifications_per_tenant RENAME TO notifications;

CREATE INDEX notifications_by_user ON notifications (tenant_id, user_id, seq);
CREATE INDEX notifications_unread ON notifications (tenant_id, user_id, seq)
    WHERE read_at IS NULL AND archived_at IS NULL;
CREATE INDEX notifications_retention ON notifications (created_at)
    WHERE read_at IS NOT NULL OR archived_at IS NOT NULL;

-- Priority and escalation (issue #16): the same changes as
-- migrations/sqlite/0009_priority_escalation.sql (which says what each column means).
-- Numbered 0009: 0008 belongs to another branch.
ALTER TABLE notifications ADD COLUMN priority SMALLINT NOT NULL DEFAULT 1;
ALTER TABLE notifications ADD COLUMN chain_seq BIGINT;
ALTER TABLE notifications ADD COLUMN escalated_from BIGINT;
CREATE INDEX notifications_chain ON notifications (tenant_id, chain_seq)
    WHERE chain_seq IS NOT NULL;

CREATE TABLE escalations (
    tenant_id   TEXT NOT NULL,
    chain_seq   BIGINT NOT NULL,
    step        SMALLINT NOT NULL,
    due_at      BIGINT NOT NULL,
    to_user     TEXT,
    to_role     TEXT,
    state       SMALLINT NOT NULL DEFAULT 0,
    lease_token TEXT,
    lease_until BIGINT,
    ended_at    BIGINT,
    PRIMARY KEY (tenant_id, chain_seq, step)
);
CREATE INDEX escalations_due ON escalations (due_at) WHERE state = 0;
-- A read acknowledges the chains of what it read: found among the tenant's pending steps.
CREATE INDEX escalations_pending ON escalations (tenant_id, chain_seq) WHERE state = 0;
CREATE INDEX escalations_ended ON escalations (ended_at) WHERE state <> 0;

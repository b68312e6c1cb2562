-- Priority and escalation (issue #16). Numbered 0009: 0008 belongs to another branch.
--
-- `priority`: 0 low, 1 normal, 2 high, 3 critical (a small integer: one more column of
-- the publish's one INSERT, nothing else on the hot path).
-- `chain_seq`: the escalation chain a notification belongs to, named by the seq of the
-- chain's original (the first notification of the publish that asked for escalation);
-- NULL for every notification published without `escalate`. Reading any notification
-- of a chain acknowledges it.
-- `escalated_from`: on an escalation's copy only, the same seq: what the API shows.
ALTER TABLE notifications ADD COLUMN priority INTEGER NOT NULL DEFAULT 1;
ALTER TABLE notifications ADD COLUMN chain_seq INTEGER;
ALTER TABLE notifications ADD COLUMN escalated_from INTEGER;
CREATE INDEX notifications_chain ON notifications (tenant_id, chain_seq)
    WHERE chain_seq IS NOT NULL;

-- The pending and past steps of every chain: written with the publish that asked for
-- them, claimed under a lease by one node's worker when due, then `fired` (the copy
-- was published in the same transaction), `cancelled` (the chain was read first) or
-- `dropped` (the original is gone). state: 0 pending, 1 fired, 2 cancelled, 3 dropped.
-- Exactly one of `to_user` / `to_role`.
CREATE TABLE escalations (
    tenant_id   TEXT NOT NULL,
    chain_seq   INTEGER NOT NULL,
    step        INTEGER NOT NULL,
    due_at      INTEGER NOT NULL,
    to_user     TEXT,
    to_role     TEXT,
    state       INTEGER NOT NULL DEFAULT 0,
    lease_token TEXT,
    lease_until INTEGER,
    ended_at    INTEGER,
    PRIMARY KEY (tenant_id, chain_seq, step)
);
CREATE INDEX escalations_due ON escalations (due_at) WHERE state = 0;
-- A read acknowledges the chains of what it read: found among the tenant's pending steps.
CREATE INDEX escalations_pending ON escalations (tenant_id, chain_seq) WHERE state = 0;
CREATE INDEX escalations_ended ON escalations (ended_at) WHERE state <> 0;

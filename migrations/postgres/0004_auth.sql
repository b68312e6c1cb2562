-- Credentials (PostgreSQL): JWT secret rotation with an overlap window, and per-user
-- token revocation. Times are unix milliseconds.

-- The key id (`kid` header) of the current secret; tokens minted here carry it.
ALTER TABLE tenants ADD COLUMN jwt_kid TEXT NOT NULL DEFAULT 'k0';
-- The secret before the last rotation: it still verifies until previous_valid_until.
ALTER TABLE tenants ADD COLUMN previous_jwt_secret TEXT;
ALTER TABLE tenants ADD COLUMN previous_jwt_kid TEXT;
ALTER TABLE tenants ADD COLUMN previous_valid_until BIGINT;

-- "Revoke every token of this user": tokens issued before not_before are refused.
CREATE TABLE token_revocations (
    tenant_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    not_before  BIGINT NOT NULL,
    revoked_at  BIGINT NOT NULL,    -- when it was written: what every node polls to close live connections
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX token_revocations_recent ON token_revocations (revoked_at);

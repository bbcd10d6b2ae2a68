-- API keys for BI tools, wallboard screens and the telephony adapter.
--
-- A key belongs to an organization and to the user who created it; it acts with the
-- intersection of its scopes and that user's CURRENT role, so demoting or deactivating the
-- creator weakens or kills the key. Only a SHA-256 of the secret is stored (the secret is
-- 256 random bits, so a fast hash is enough: there is nothing to brute-force); `prefix` is the
-- public part of the secret (`ovx_<16 hex>`), by which a presented key is found.
CREATE TABLE api_keys (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    created_by      uuid NOT NULL,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    prefix          text NOT NULL UNIQUE CHECK (prefix ~ '^ovx_[0-9a-f]{16}$'),
    secret_hash     bytea NOT NULL CHECK (length(secret_hash) = 32),
    scopes          text[] NOT NULL CHECK (
        cardinality(scopes) >= 1
        AND scopes <@ ARRAY['kpi:read', 'reports:read', 'realtime:read', 'ingest:write']::text[]),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NULL CHECK (expires_at IS NULL OR expires_at > created_at),
    -- Written at most about once a minute per key, not on every request.
    last_used_at    timestamptz NULL,
    revoked_at      timestamptz NULL,
    revoked_by      uuid NULL,
    FOREIGN KEY (organization_id, created_by) REFERENCES users (organization_id, id) ON DELETE CASCADE
);
-- The listing: an organization's keys, newest first.
CREATE INDEX api_keys_org_created_idx ON api_keys (organization_id, created_at DESC, id);

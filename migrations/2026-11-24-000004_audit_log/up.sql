-- Append-only audit trail, hash-chained per organization (organization_id NULL = platform
-- events such as a failed login for an unknown address). Each row's hash covers the previous
-- row's hash and this row's content, so a removed or altered row breaks the chain.

CREATE TABLE audit_log (
    id              bigserial PRIMARY KEY,
    organization_id uuid NULL REFERENCES organizations (id),
    chain_seq       bigint NOT NULL CHECK (chain_seq >= 1),
    occurred_at     timestamptz NOT NULL,
    actor_user_id   uuid NULL,
    actor_role      text NULL,
    action          text NOT NULL CHECK (length(action) BETWEEN 1 AND 100),
    target_type     text NULL,
    target_id       text NULL,
    details         jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_id      text NULL,
    prev_hash       bytea NULL,
    hash            bytea NOT NULL
);
CREATE UNIQUE INDEX audit_log_chain_idx
    ON audit_log (COALESCE(organization_id, '00000000-0000-0000-0000-000000000000'::uuid), chain_seq);
CREATE INDEX audit_log_org_time_idx ON audit_log (organization_id, occurred_at);

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

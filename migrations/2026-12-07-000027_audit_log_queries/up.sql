-- The audit log becomes something people query (`auditLog`) and verify (`verifyAuditChain`):
-- each record keeps the client address of the request that caused it, and the filters of the
-- query (actor, action, target, time) each have an index that also serves the keyset order
-- (newest first by chain sequence, within one organization's chain).
--
-- Adding a nullable column rewrites no row, so the append-only trigger is not involved.

ALTER TABLE audit_log ADD COLUMN client_addr text NULL;

-- The chain's unique index is on an expression (COALESCE over the organization) and does not
-- serve `organization_id = $1 ORDER BY chain_seq DESC`; this one does (unfiltered pages, the
-- verifier's range scans).
CREATE INDEX audit_log_org_seq_idx ON audit_log (organization_id, chain_seq);
CREATE INDEX audit_log_org_actor_seq_idx ON audit_log (organization_id, actor_user_id, chain_seq);
CREATE INDEX audit_log_org_action_seq_idx ON audit_log (organization_id, action, chain_seq);
CREATE INDEX audit_log_org_target_seq_idx ON audit_log (organization_id, target_id, chain_seq);

DROP INDEX audit_log_org_target_seq_idx;
DROP INDEX audit_log_org_action_seq_idx;
DROP INDEX audit_log_org_actor_seq_idx;
DROP INDEX audit_log_org_seq_idx;
ALTER TABLE audit_log DROP COLUMN client_addr;

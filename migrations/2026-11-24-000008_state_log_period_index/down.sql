CREATE INDEX agent_state_log_org_started_idx ON agent_state_log (organization_id, started_at);
DROP INDEX agent_state_log_org_period_idx;
DROP EXTENSION IF EXISTS btree_gist;

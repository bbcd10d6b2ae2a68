DROP INDEX agent_state_log_org_period_idx;
DROP EXTENSION IF EXISTS btree_gist;

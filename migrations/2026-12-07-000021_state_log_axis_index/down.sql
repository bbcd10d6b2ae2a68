CREATE INDEX agent_state_log_agent_started_idx ON agent_state_log (organization_id, agent_id, started_at);
DROP INDEX agent_state_log_agent_axis_started_idx;

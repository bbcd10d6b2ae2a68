DROP VIEW agent_state_periods;

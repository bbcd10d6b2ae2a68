DROP TABLE agent_state_log;
DROP TABLE interactions;

DROP TABLE dispositions;
DROP TABLE campaigns;
DROP TABLE coaching_sessions;
DROP TABLE agent_skills;
DROP TABLE agents;
DROP TABLE skills;
DROP TABLE teams;

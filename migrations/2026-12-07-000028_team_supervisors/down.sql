DROP INDEX agents_org_name_idx;
ALTER TABLE business_settings DROP COLUMN supervisors_see_all_agents;
DROP TABLE team_supervisors;

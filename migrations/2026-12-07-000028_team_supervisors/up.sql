-- Who supervises which team: a SUPERVISOR sees and manages the agents of the teams listed here
-- (unless the organization widens that to every agent, `supervisors_see_all_agents`). The
-- foreign keys go through (organization_id, id), so a team of one tenant cannot name a user
-- of another.
CREATE TABLE team_supervisors (
    organization_id uuid NOT NULL,
    team_id         uuid NOT NULL,
    user_id         uuid NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, user_id),
    FOREIGN KEY (organization_id, team_id) REFERENCES teams (organization_id, id) ON DELETE CASCADE,
    FOREIGN KEY (organization_id, user_id) REFERENCES users (organization_id, id) ON DELETE CASCADE
);
-- "Which teams does this supervisor supervise": read on every scoped agent request.
CREATE INDEX team_supervisors_user_idx ON team_supervisors (organization_id, user_id);

ALTER TABLE business_settings
    ADD COLUMN supervisors_see_all_agents boolean NOT NULL DEFAULT false;

-- The agents listing pages by (display_name, id) within a tenant.
CREATE INDEX agents_org_name_idx ON agents (organization_id, display_name, id);

-- The contact-centre model: teams, skills, agents, campaigns, dispositions, coaching.
-- Every child row carries organization_id and references its parents through
-- (organization_id, id), so the database itself refuses a cross-tenant reference.

CREATE TABLE teams (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, name),
    UNIQUE (organization_id, id)
);

CREATE TABLE skills (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description     text NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, name),
    UNIQUE (organization_id, id)
);

-- Presence (what the agent chose) and routing state (what the system sees) are separate axes.
CREATE TABLE agents (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id         uuid NULL UNIQUE,
    display_name    text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    extension       text NULL CHECK (extension ~ '^[0-9A-Za-z*#+-]{1,32}$'),
    team_id         uuid NULL,
    presence        text NOT NULL DEFAULT 'OFFLINE'
        CHECK (presence IN ('AVAILABLE', 'BREAK', 'LUNCH', 'TRAINING', 'MEETING', 'AWAY', 'OFFLINE')),
    presence_reason text NULL,
    routing_state   text NOT NULL DEFAULT 'IDLE' CHECK (routing_state IN ('IDLE', 'RINGING', 'ON_CALL', 'WRAP_UP')),
    state_since     timestamptz NOT NULL DEFAULT now(),
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id),
    UNIQUE (organization_id, extension),
    FOREIGN KEY (organization_id, user_id) REFERENCES users (organization_id, id),
    FOREIGN KEY (organization_id, team_id) REFERENCES teams (organization_id, id)
);
CREATE INDEX agents_org_team_idx ON agents (organization_id, team_id);

CREATE TABLE agent_skills (
    organization_id uuid NOT NULL,
    agent_id        uuid NOT NULL,
    skill_id        uuid NOT NULL,
    proficiency     smallint NOT NULL CHECK (proficiency BETWEEN 1 AND 5),
    PRIMARY KEY (agent_id, skill_id),
    FOREIGN KEY (organization_id, agent_id) REFERENCES agents (organization_id, id) ON DELETE CASCADE,
    FOREIGN KEY (organization_id, skill_id) REFERENCES skills (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX agent_skills_skill_idx ON agent_skills (organization_id, skill_id);

CREATE TABLE coaching_sessions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL,
    agent_id        uuid NOT NULL,
    coach_user_id   uuid NULL,
    topic           text NOT NULL CHECK (length(topic) BETWEEN 1 AND 500),
    notes           text NULL,
    scheduled_at    timestamptz NOT NULL,
    completed_at    timestamptz NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (organization_id, agent_id) REFERENCES agents (organization_id, id) ON DELETE CASCADE,
    FOREIGN KEY (organization_id, coach_user_id) REFERENCES users (organization_id, id)
);
CREATE INDEX coaching_sessions_agent_idx ON coaching_sessions (organization_id, agent_id, scheduled_at);

CREATE TABLE campaigns (
    id                              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id                 uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name                            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    direction                       text NOT NULL CHECK (direction IN ('INBOUND', 'OUTBOUND')),
    dial_mode                       text NULL CHECK (dial_mode IN ('PREVIEW', 'PROGRESSIVE', 'PREDICTIVE', 'MANUAL')),
    status                          text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'PAUSED', 'ARCHIVED')),
    -- Per-campaign overrides of the organization's business settings; NULL = use the org's.
    service_level_threshold_seconds integer NULL CHECK (service_level_threshold_seconds BETWEEN 1 AND 3600),
    service_level_target_percent    double precision NULL CHECK (service_level_target_percent BETWEEN 0 AND 100),
    max_abandon_rate_percent        double precision NULL CHECK (max_abandon_rate_percent BETWEEN 0 AND 100),
    created_at                      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, name),
    UNIQUE (organization_id, id),
    CHECK (direction = 'OUTBOUND' OR dial_mode IS NULL)
);

-- The flags drive metrics: contact rate counts `contact`, conversion counts `success`, the
-- outbound abandon adjustment counts `answering_machine`.
CREATE TABLE dispositions (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id   uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    code              text NOT NULL CHECK (code ~ '^[A-Z0-9_]{1,64}$'),
    label             text NOT NULL CHECK (length(label) BETWEEN 1 AND 200),
    human_answered    boolean NOT NULL DEFAULT false,
    contact           boolean NOT NULL DEFAULT false,
    success           boolean NOT NULL DEFAULT false,
    callback          boolean NOT NULL DEFAULT false,
    do_not_call       boolean NOT NULL DEFAULT false,
    answering_machine boolean NOT NULL DEFAULT false,
    active            boolean NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, code),
    UNIQUE (organization_id, id),
    -- A right-party contact is a human; a sale is a contact; a machine is not a human.
    CHECK (NOT contact OR human_answered),
    CHECK (NOT success OR contact),
    CHECK (NOT (answering_machine AND human_answered))
);

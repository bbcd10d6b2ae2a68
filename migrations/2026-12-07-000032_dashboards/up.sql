-- Dashboards: saved, shareable layouts of KPI widgets (issue #17).
--
-- Every table carries `organization_id` itself — widgets and role defaults too — so a tenant
-- policy needs no join. Widgets are a child table (one row per widget, `position` is its index
-- in the layout); their query lives in `spec` as JSON that `dashboards::widgets` shapes and
-- validates against the metric registry before every write. `version` starts at 1 and moves
-- on every update (optimistic concurrency, as reports do).
CREATE TABLE dashboards (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    owner_id        uuid NOT NULL,
    title           text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description     text NULL CHECK (description IS NULL OR length(description) <= 2000),
    -- PRIVATE: the owner; TEAM: members and supervisors of `team_id`, or of the owner's teams
    -- when it is null; ORGANIZATION: everyone in the organization.
    visibility      text NOT NULL CHECK (visibility IN ('PRIVATE', 'TEAM', 'ORGANIZATION')),
    team_id         uuid NULL,
    version         integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, owner_id) REFERENCES users (organization_id, id) ON DELETE CASCADE,
    FOREIGN KEY (organization_id, team_id) REFERENCES teams (organization_id, id) ON DELETE SET NULL (team_id)
);
CREATE INDEX dashboards_org_title_idx ON dashboards (organization_id, title, id);

CREATE TABLE dashboard_widgets (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    dashboard_id    uuid NOT NULL,
    position        integer NOT NULL CHECK (position BETWEEN 0 AND 23),
    title           text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    kind            text NOT NULL CHECK (kind IN ('KPI_TILE', 'TIME_SERIES', 'TABLE', 'AGENT_GRID', 'COMPLIANCE_GAUGE')),
    spec            jsonb NOT NULL CHECK (jsonb_typeof(spec) = 'object'),
    grid_x          integer NOT NULL,
    grid_y          integer NOT NULL,
    grid_width      integer NOT NULL,
    grid_height     integer NOT NULL,
    UNIQUE (dashboard_id, position),
    FOREIGN KEY (organization_id, dashboard_id) REFERENCES dashboards (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX dashboard_widgets_org_dashboard_idx ON dashboard_widgets (organization_id, dashboard_id);

-- The dashboard an ADMIN chose for each role: `dashboard(id: null)` and `defaultDashboard`.
CREATE TABLE dashboard_defaults (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    role            text NOT NULL,
    dashboard_id    uuid NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, role),
    FOREIGN KEY (organization_id, dashboard_id) REFERENCES dashboards (organization_id, id) ON DELETE CASCADE
);

-- Saved reports: a stored analytics query (metrics, dimensions, filter, granularity, order,
-- limit) with a range — absolute, or relative and resolved in the organization's time zone
-- when the report runs — and its presentation (column order and labels, totals row, chart).
--
-- `definition` holds the query, range and presentation as JSON; the application validates it
-- with the analytics planner's own checks before every write, so the column only ever holds a
-- definition the engine accepts. `version` starts at 1 and moves on every update: an update
-- names the version it read (optimistic concurrency, as business settings do). A report is
-- private to its owner, or shared with the organization (`shared`).
CREATE TABLE reports (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    owner_id        uuid NOT NULL,
    title           text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description     text NULL CHECK (description IS NULL OR length(description) <= 2000),
    shared          boolean NOT NULL DEFAULT false,
    definition      jsonb NOT NULL CHECK (jsonb_typeof(definition) = 'object'),
    -- The template the report was copied from, if any (templates ship with the code).
    template_key    text NULL,
    version         integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (organization_id, owner_id) REFERENCES users (organization_id, id) ON DELETE CASCADE
);
-- Listings: an organization's reports by title.
CREATE INDEX reports_org_title_idx ON reports (organization_id, title, id);

-- Agent time at the edges of an interval (the partial hours the rollups do not cover) is read
-- from the closed agent_state_log intervals that OVERLAP a window. A btree on started_at can
-- only bound one side ("started before the window ends"), which reads the organization's
-- whole history up to the window; an index on the period finds the overlapping rows directly
-- (about a millisecond instead of seconds on months of history). btree_gist lets the same
-- GiST index lead with the organization. It is a trusted extension shipped with PostgreSQL.
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE INDEX IF NOT EXISTS agent_state_log_org_period_idx
    ON agent_state_log USING gist (organization_id, tstzrange(started_at, ended_at, '[)'));

-- Every time-range read of the log now goes through the period index (the per-agent index
-- serves per-agent reads and the open-interval index the current state), so the btree on
-- (organization, started_at) only cost each insert.
DROP INDEX agent_state_log_org_started_idx;

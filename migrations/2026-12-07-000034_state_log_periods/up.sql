-- The agents' time in grouped views reads the closed state intervals that OVERLAP each window
-- through the GiST index on (organization_id, tstzrange(started_at, ended_at)). Under row-level
-- security PostgreSQL may use a condition as an index condition only when its functions are
-- LEAKPROOF, and the range constructor and `&&` are not: the read fell back to every interval
-- of the organization (seconds instead of milliseconds on 16M intervals; found by kpi_bench).
--
-- This view is the one read of agent_state_log that needs that index. It belongs to the
-- tables' owner, so the table's policy does not apply through it; it applies the same tenant
-- condition itself, as an ordinary condition the planner may combine with the overlap. A
-- session of the owner (or a role it is granted to) sees every organization, as it does in the
-- table. The application may only SELECT from it.
CREATE VIEW agent_state_periods AS
    SELECT organization_id, agent_id, axis, state, started_at, ended_at
      FROM agent_state_log
     WHERE ended_at IS NOT NULL
       AND (organization_id = omnivox_tenant()
            OR pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = 'agent_state_log'::regclass), 'MEMBER'));
REVOKE ALL ON agent_state_periods FROM omnivox_app;
GRANT SELECT ON agent_state_periods TO omnivox_app;

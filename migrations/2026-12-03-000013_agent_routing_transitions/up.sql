-- Agents' routing state as a function of the stored call events, whatever their arrival order.
--
-- Each call moves its agents through routing states (RINGING, ON_CALL, WRAP_UP, IDLE: the
-- call's `agent_timeline` in src/ingest/lifecycle.rs). Those transitions are kept here, one row
-- per (agent, instant, call), replaced whenever the call's events change. An agent's ROUTING
-- intervals in agent_state_log are the fold of ALL its transitions in time order, so a call or
-- a state change delivered late is inserted where it happened and the intervals after it are
-- re-derived (src/ingest/store.rs), instead of being skipped as older than the current state.
--
-- `external_id` is the call; '' marks a transition that no call explains: the start of a
-- ROUTING interval written before this table existed (backfilled below) or written directly
-- (demo seed), so that the fold reproduces those intervals too.

CREATE TABLE agent_routing_transitions (
    organization_id uuid NOT NULL,
    agent_id        uuid NOT NULL,
    at              timestamptz NOT NULL,
    external_id     text NOT NULL CHECK (length(external_id) <= 128),
    state           text NOT NULL CHECK (state IN ('IDLE', 'RINGING', 'ON_CALL', 'WRAP_UP')),
    PRIMARY KEY (organization_id, agent_id, at, external_id),
    FOREIGN KEY (organization_id, agent_id) REFERENCES agents (organization_id, id) ON DELETE CASCADE
);

INSERT INTO agent_routing_transitions (organization_id, agent_id, at, external_id, state)
SELECT DISTINCT ON (organization_id, agent_id, started_at) organization_id, agent_id, started_at, '', state
FROM agent_state_log
WHERE axis = 'ROUTING'
ORDER BY organization_id, agent_id, started_at, id DESC;

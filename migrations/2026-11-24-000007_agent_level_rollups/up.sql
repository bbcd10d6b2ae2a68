-- Two rollups for per-agent reads (agent performance, analytics by agent), which otherwise sum
-- one row per (campaign, agent, hour) and one row per (agent, hour, state):
--
-- 1. A fourth level of kpi_hourly: campaign_key = ALL, agent_key = the agent — every campaign
--    of an agent in one row per hour and direction. Read when agents are grouped or filtered
--    and campaigns are not; the (campaign, agent) cells stay for reads that need both.
--    The same level is added to kpi_hourly_disposition.
-- 2. kpi_agent_time_hourly: the four agent-time measures the metrics use, one row per agent
--    (and for ALL agents) and hour, maintained beside kpi_agent_state_hourly (which keeps the
--    time of every state for reports) by the same writer, in the same transaction.
--
-- Both are backfilled from the existing rollups, so history is answered at once.

INSERT INTO kpi_hourly (organization_id, hour, campaign_key, agent_key, direction, dials, offered, answered,
    handled, abandoned, answered_within_sl, abandoned_within_sl, short_abandoned, answered_wait_ms,
    handled_talk_ms, handled_hold_ms, handled_wrap_ms, max_wait_ms, human_answered, machine_answered, drops,
    contacts, successes)
SELECT organization_id, hour, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid, agent_key, direction, sum(dials),
    sum(offered), sum(answered), sum(handled), sum(abandoned), sum(answered_within_sl), sum(abandoned_within_sl),
    sum(short_abandoned), sum(answered_wait_ms), sum(handled_talk_ms), sum(handled_hold_ms), sum(handled_wrap_ms),
    max(max_wait_ms), sum(human_answered), sum(machine_answered), sum(drops), sum(contacts), sum(successes)
FROM kpi_hourly
WHERE campaign_key <> 'ffffffff-ffff-ffff-ffff-ffffffffffff' AND agent_key <> 'ffffffff-ffff-ffff-ffff-ffffffffffff'
GROUP BY organization_id, hour, agent_key, direction;

INSERT INTO kpi_hourly_disposition (organization_id, hour, campaign_key, agent_key, direction, disposition_id, calls)
SELECT organization_id, hour, 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid, agent_key, direction, disposition_id,
    sum(calls)
FROM kpi_hourly_disposition
WHERE campaign_key <> 'ffffffff-ffff-ffff-ffff-ffffffffffff' AND agent_key <> 'ffffffff-ffff-ffff-ffff-ffffffffffff'
GROUP BY organization_id, hour, agent_key, direction, disposition_id;

CREATE TABLE kpi_agent_time_hourly (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    agent_key       uuid NOT NULL,
    hour            timestamptz NOT NULL CHECK (extract(epoch FROM hour)::bigint % 3600 = 0),
    -- Microseconds: ROUTING ON_CALL, ROUTING WRAP_UP, PRESENCE AVAILABLE, and PRESENCE other
    -- than OFFLINE (logged in).
    on_call_us      bigint NOT NULL DEFAULT 0,
    wrap_up_us      bigint NOT NULL DEFAULT 0,
    available_us    bigint NOT NULL DEFAULT 0,
    logged_in_us    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, agent_key, hour)
);

INSERT INTO kpi_agent_time_hourly (organization_id, agent_key, hour, on_call_us, wrap_up_us, available_us, logged_in_us)
SELECT organization_id, agent_key, hour,
    coalesce(sum(us) FILTER (WHERE axis = 'ROUTING' AND state = 'ON_CALL'), 0),
    coalesce(sum(us) FILTER (WHERE axis = 'ROUTING' AND state = 'WRAP_UP'), 0),
    coalesce(sum(us) FILTER (WHERE axis = 'PRESENCE' AND state = 'AVAILABLE'), 0),
    coalesce(sum(us) FILTER (WHERE axis = 'PRESENCE' AND state <> 'OFFLINE'), 0)
FROM kpi_agent_state_hourly
GROUP BY organization_id, agent_key, hour;

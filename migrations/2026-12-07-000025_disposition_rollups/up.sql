-- Disposition rollups: the counts analytics may group by DISPOSITION (offered, answered,
-- handled, abandoned, short_abandoned — the metrics of unit Count) kept per disposition in the
-- hourly and daily rollups, so that DISPOSITION (alone or with CAMPAIGN, AGENT, DIRECTION or
-- time) over a quarter reads rollups instead of every raw call, like every other dimension.
--
-- 1. kpi_hourly_disposition already held `calls` per disposition at the four levels of
--    kpi_hourly (only dispositioned calls; the disposition breakdown reads it). It gains the five
--    counters, and rows for calls WITHOUT a disposition under the nil UUID (analytics' "(no
--    disposition)" group, so that the groups add up to the undivided counts). `calls` of those
--    rows counts the undispositioned calls; readers of dispositioned calls skip the nil key.
-- 2. kpi_daily_disposition: the same by local date, under the contract of kpi_daily (migration
--    daily_rollups): a daily row is the sum of the hourly rows of its keys whose hour starts on
--    that local date in the organization's time zone.
--
-- The counters do not depend on the disposition's flags (contact, success…): a flag change
-- re-states nothing. `short_abandoned` depends on the short-abandon threshold and is re-stated
-- with kpi_hourly's threshold counters when it changes (src/kpi/writer.rs,
-- `recompute_threshold_counters`), in the transaction of the change.
--
-- Every row is rebuilt here from the calls (the rules of src/kpi/facts.rs as of this
-- migration), so a database upgraded in place answers at once and as before.

ALTER TABLE kpi_hourly_disposition
    ADD COLUMN offered         bigint NOT NULL DEFAULT 0,
    ADD COLUMN answered        bigint NOT NULL DEFAULT 0,
    ADD COLUMN handled         bigint NOT NULL DEFAULT 0,
    ADD COLUMN abandoned       bigint NOT NULL DEFAULT 0,
    ADD COLUMN short_abandoned bigint NOT NULL DEFAULT 0;

CREATE TABLE kpi_daily_disposition (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    day             date NOT NULL,
    campaign_key    uuid NOT NULL,
    agent_key       uuid NOT NULL,
    direction       text NOT NULL CHECK (direction IN ('INBOUND', 'OUTBOUND')),
    disposition_id  uuid NOT NULL,
    calls           bigint NOT NULL DEFAULT 0,
    offered         bigint NOT NULL DEFAULT 0,
    answered        bigint NOT NULL DEFAULT 0,
    handled         bigint NOT NULL DEFAULT 0,
    abandoned       bigint NOT NULL DEFAULT 0,
    short_abandoned bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, campaign_key, agent_key, day, direction, disposition_id)
);

-- The table is rebuilt whole: TRUNCATE frees its old rows at once (a DELETE would leave them
-- beside the new ones until a vacuum). The (campaign, agent) cells come from the calls, the
-- three other levels from those cells (one pass over the calls; on 11M calls the aggregation
-- of all four levels from one CTE spilled tens of GB of temporary files).
TRUNCATE kpi_hourly_disposition;
SET LOCAL work_mem = '128MB';

INSERT INTO kpi_hourly_disposition (organization_id, hour, campaign_key, agent_key, direction, disposition_id, calls,
    offered, answered, handled, abandoned, short_abandoned)
SELECT i.organization_id, date_trunc('hour', i.offered_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
       coalesce(i.campaign_id, '00000000-0000-0000-0000-000000000000'::uuid),
       coalesce(i.agent_id, '00000000-0000-0000-0000-000000000000'::uuid),
       i.direction,
       coalesce(i.disposition_id, '00000000-0000-0000-0000-000000000000'::uuid),
       count(*),
       count(*) FILTER (WHERE (i.outcome = 'ANSWERED' AND (i.direction = 'INBOUND' OR i.answered_by = 'HUMAN'))
                          OR i.outcome = 'ABANDONED'),
       count(*) FILTER (WHERE i.outcome = 'ANSWERED' AND (i.direction = 'INBOUND' OR i.answered_by = 'HUMAN')),
       count(*) FILTER (WHERE i.outcome = 'ANSWERED' AND (i.direction = 'INBOUND' OR i.answered_by = 'HUMAN')
                          AND i.wrap_ended_at IS NOT NULL),
       count(*) FILTER (WHERE i.outcome = 'ABANDONED'),
       count(*) FILTER (WHERE i.outcome = 'ABANDONED'
                          AND coalesce(i.wait_ms, 0) < bs.short_abandon_seconds::int8 * 1000)
FROM interactions i
JOIN business_settings bs ON bs.organization_id = i.organization_id
GROUP BY 1, 2, 3, 4, 5, 6;

-- (campaign, ALL), (ALL, agent) and (ALL, ALL), each summed from the cells above only.
INSERT INTO kpi_hourly_disposition (organization_id, hour, campaign_key, agent_key, direction, disposition_id, calls,
    offered, answered, handled, abandoned, short_abandoned)
SELECT organization_id, hour, campaign_key, 'ffffffff-ffff-ffff-ffff-ffffffffffff', direction, disposition_id,
    sum(calls), sum(offered), sum(answered), sum(handled), sum(abandoned), sum(short_abandoned)
FROM kpi_hourly_disposition
WHERE campaign_key <> 'ffffffff-ffff-ffff-ffff-ffffffffffff' AND agent_key <> 'ffffffff-ffff-ffff-ffff-ffffffffffff'
GROUP BY organization_id, hour, campaign_key, direction, disposition_id;

INSERT INTO kpi_hourly_disposition (organization_id, hour, campaign_key, agent_key, direction, disposition_id, calls,
    offered, answered, handled, abandoned, short_abandoned)
SELECT organization_id, hour, 'ffffffff-ffff-ffff-ffff-ffffffffffff', agent_key, direction, disposition_id,
    sum(calls), sum(offered), sum(answered), sum(handled), sum(abandoned), sum(short_abandoned)
FROM kpi_hourly_disposition
WHERE campaign_key <> 'ffffffff-ffff-ffff-ffff-ffffffffffff' AND agent_key <> 'ffffffff-ffff-ffff-ffff-ffffffffffff'
GROUP BY organization_id, hour, agent_key, direction, disposition_id;

INSERT INTO kpi_hourly_disposition (organization_id, hour, campaign_key, agent_key, direction, disposition_id, calls,
    offered, answered, handled, abandoned, short_abandoned)
SELECT organization_id, hour, 'ffffffff-ffff-ffff-ffff-ffffffffffff', 'ffffffff-ffff-ffff-ffff-ffffffffffff',
    direction, disposition_id,
    sum(calls), sum(offered), sum(answered), sum(handled), sum(abandoned), sum(short_abandoned)
FROM kpi_hourly_disposition
WHERE campaign_key <> 'ffffffff-ffff-ffff-ffff-ffffffffffff' AND agent_key <> 'ffffffff-ffff-ffff-ffff-ffffffffffff'
GROUP BY organization_id, hour, direction, disposition_id;

INSERT INTO kpi_daily_disposition (organization_id, day, campaign_key, agent_key, direction, disposition_id, calls,
    offered, answered, handled, abandoned, short_abandoned)
SELECT k.organization_id, (k.hour AT TIME ZONE o.timezone)::date, k.campaign_key, k.agent_key, k.direction,
    k.disposition_id, sum(k.calls), sum(k.offered), sum(k.answered), sum(k.handled), sum(k.abandoned),
    sum(k.short_abandoned)
FROM kpi_hourly_disposition k JOIN organizations o ON o.id = k.organization_id
GROUP BY 1, 2, 3, 4, 5, 6;

-- Reads at the (campaign, agent) level filter by agent, as kpi_hourly_org_agent_hour_idx serves
-- kpi_hourly; the other levels lead with their campaign key and use the primary keys.
CREATE INDEX kpi_hourly_disposition_org_agent_hour_idx ON kpi_hourly_disposition (organization_id, agent_key, hour);
CREATE INDEX kpi_daily_disposition_org_agent_day_idx ON kpi_daily_disposition (organization_id, agent_key, day);

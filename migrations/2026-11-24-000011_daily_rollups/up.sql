-- Daily rollups in the organization's time zone, for reads that group or cut by local day
-- (analytics by DATE, DAY_OF_WEEK, DAY/WEEK/MONTH buckets, agentPerformance over weeks): a month
-- of 500 agents is ~15,000 daily rows instead of ~90,000 hourly ones.
--
-- Definition (the whole contract): a daily row is the sum of the hourly rows of the same keys
-- whose `hour` starts on that local date in the organization's time zone, i.e.
--     day = (hour AT TIME ZONE organizations.timezone)::date
-- and max_wait_ms is their maximum. The one writer (src/kpi/writer.rs) adds every hourly delta
-- to its day in the same statement batch and transaction; a change of the time zone rebuilds an
-- organization's daily rows from its hourly rows in the transaction of the change; a change of
-- a threshold re-states them from the re-stated hourly rows. A day is read only when it is
-- exactly a set of whole UTC hours (true in zones whose offset is a whole number of hours,
-- DST days included); in other zones reads keep to hourly rows and raw facts.

CREATE TABLE kpi_daily (
    organization_id     uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    day                 date NOT NULL,
    campaign_key        uuid NOT NULL,
    agent_key           uuid NOT NULL,
    direction           text NOT NULL CHECK (direction IN ('INBOUND', 'OUTBOUND')),
    dials               bigint NOT NULL DEFAULT 0,
    offered             bigint NOT NULL DEFAULT 0,
    answered            bigint NOT NULL DEFAULT 0,
    handled             bigint NOT NULL DEFAULT 0,
    abandoned           bigint NOT NULL DEFAULT 0,
    answered_within_sl  bigint NOT NULL DEFAULT 0,
    abandoned_within_sl bigint NOT NULL DEFAULT 0,
    short_abandoned     bigint NOT NULL DEFAULT 0,
    answered_wait_ms    bigint NOT NULL DEFAULT 0,
    handled_talk_ms     bigint NOT NULL DEFAULT 0,
    handled_hold_ms     bigint NOT NULL DEFAULT 0,
    handled_wrap_ms     bigint NOT NULL DEFAULT 0,
    max_wait_ms         bigint NULL,
    human_answered      bigint NOT NULL DEFAULT 0,
    machine_answered    bigint NOT NULL DEFAULT 0,
    drops               bigint NOT NULL DEFAULT 0,
    contacts            bigint NOT NULL DEFAULT 0,
    successes           bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, campaign_key, agent_key, day, direction)
);
-- Per-agent reads (campaign = ALL level), as kpi_hourly_agent_level_idx does for hours.
CREATE INDEX kpi_daily_agent_level_idx ON kpi_daily (organization_id, agent_key, day, direction)
    INCLUDE (dials, offered, answered, handled, abandoned, answered_within_sl, abandoned_within_sl,
             short_abandoned, answered_wait_ms, handled_talk_ms, handled_hold_ms, handled_wrap_ms, max_wait_ms,
             human_answered, machine_answered, drops, contacts, successes)
    WHERE campaign_key = 'ffffffff-ffff-ffff-ffff-ffffffffffff';

CREATE TABLE kpi_agent_time_daily (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    agent_key       uuid NOT NULL,
    day             date NOT NULL,
    on_call_us      bigint NOT NULL DEFAULT 0,
    wrap_up_us      bigint NOT NULL DEFAULT 0,
    available_us    bigint NOT NULL DEFAULT 0,
    logged_in_us    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, agent_key, day)
);

INSERT INTO kpi_daily (organization_id, day, campaign_key, agent_key, direction, dials, offered, answered, handled,
    abandoned, answered_within_sl, abandoned_within_sl, short_abandoned, answered_wait_ms, handled_talk_ms,
    handled_hold_ms, handled_wrap_ms, max_wait_ms, human_answered, machine_answered, drops, contacts, successes)
SELECT k.organization_id, (k.hour AT TIME ZONE o.timezone)::date, k.campaign_key, k.agent_key, k.direction,
    sum(k.dials), sum(k.offered), sum(k.answered), sum(k.handled), sum(k.abandoned), sum(k.answered_within_sl),
    sum(k.abandoned_within_sl), sum(k.short_abandoned), sum(k.answered_wait_ms), sum(k.handled_talk_ms),
    sum(k.handled_hold_ms), sum(k.handled_wrap_ms), max(k.max_wait_ms), sum(k.human_answered),
    sum(k.machine_answered), sum(k.drops), sum(k.contacts), sum(k.successes)
FROM kpi_hourly k JOIN organizations o ON o.id = k.organization_id
GROUP BY 1, 2, 3, 4, 5;

INSERT INTO kpi_agent_time_daily (organization_id, agent_key, day, on_call_us, wrap_up_us, available_us, logged_in_us)
SELECT t.organization_id, t.agent_key, (t.hour AT TIME ZONE o.timezone)::date,
    sum(t.on_call_us), sum(t.wrap_up_us), sum(t.available_us), sum(t.logged_in_us)
FROM kpi_agent_time_hourly t JOIN organizations o ON o.id = t.organization_id
GROUP BY 1, 2, 3;

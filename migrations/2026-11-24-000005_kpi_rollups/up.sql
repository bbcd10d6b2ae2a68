-- Hourly KPI rollups: additive counters and sums only (never ratios), keyed by the UTC hour in
-- which a call was OFFERED, maintained by the one rollup writer (src/kpi/writer.rs) in the same
-- transaction as the facts.
--
-- Each contribution is written at three levels so that a query reads as few rows as possible:
--   campaign_key, agent_key = the call's campaign and agent      (agent or team filters)
--   campaign_key = campaign, agent_key = ALL                      (campaign filters)
--   campaign_key = ALL,      agent_key = ALL                      (whole organization)
-- "No campaign" / "no agent" is the nil UUID 00000000-…; ALL is ffffffff-ffff-ffff-ffff-ffffffffffff.
--
-- The *_within_sl and short_abandoned columns depend on business settings (service-level
-- threshold, short-abandon threshold, per-campaign overrides). They are materialized for the
-- settings in force and recomputed from the facts, in the same transaction, when a setting
-- that affects them changes (src/kpi/writer.rs, `recompute_threshold_counters`).

CREATE TABLE kpi_hourly (
    organization_id     uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    hour                timestamptz NOT NULL CHECK (extract(epoch FROM hour)::bigint % 3600 = 0),
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
    -- Longest wait of an answered or abandoned call in this cell.
    max_wait_ms         bigint NULL,
    human_answered      bigint NOT NULL DEFAULT 0,
    machine_answered    bigint NOT NULL DEFAULT 0,
    -- Outbound calls answered by a live person with no agent to take them.
    drops               bigint NOT NULL DEFAULT 0,
    contacts            bigint NOT NULL DEFAULT 0,
    successes           bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, campaign_key, agent_key, hour, direction)
);
CREATE INDEX kpi_hourly_org_agent_hour_idx ON kpi_hourly (organization_id, agent_key, hour);

CREATE TABLE kpi_hourly_disposition (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    hour            timestamptz NOT NULL,
    campaign_key    uuid NOT NULL,
    agent_key       uuid NOT NULL,
    direction       text NOT NULL,
    disposition_id  uuid NOT NULL,
    calls           bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, campaign_key, agent_key, hour, direction, disposition_id)
);

-- Time in state per agent (and for ALL agents), hour, axis and state, from CLOSED
-- agent_state_log intervals split at hour boundaries.
CREATE TABLE kpi_agent_state_hourly (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    agent_key       uuid NOT NULL,
    hour            timestamptz NOT NULL,
    axis            text NOT NULL,
    state           text NOT NULL,
    -- Microseconds, so sums of split intervals are exact.
    us              bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (organization_id, agent_key, hour, axis, state)
);

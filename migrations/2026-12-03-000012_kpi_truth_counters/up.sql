-- KPI truth (the UK drop rate and short abandons).
--
-- 1. `machine_answered` counted every outbound call a machine answered. The UK (Ofcom) rule's AM
--    is the machine-answered calls PASSED TO AN AGENT: a machine the dialler hung up on (answering-
--    machine detection) never reached anyone and must not lower the drop rate. From now on
--    `machine_answered` counts machine answers connected to an agent (outcome ANSWERED with an
--    agent), and `machine_detected` the other machine answers, kept as evidence. Both are
--    re-stated here from the facts.
-- 2. `short_abandoned_within_sl`: short abandons that also waited no longer than the service-level
--    threshold, so the service-level variants can leave short abandons out exactly even where a
--    campaign's threshold is below the short-abandon threshold.
-- 3. Business settings: whether short abandons leave the abandon rate, and the service level
--    (where the variant does not already decide).

ALTER TABLE kpi_hourly
    ADD COLUMN machine_detected          bigint NOT NULL DEFAULT 0,
    ADD COLUMN short_abandoned_within_sl bigint NOT NULL DEFAULT 0;
ALTER TABLE kpi_daily
    ADD COLUMN machine_detected          bigint NOT NULL DEFAULT 0,
    ADD COLUMN short_abandoned_within_sl bigint NOT NULL DEFAULT 0;

ALTER TABLE business_settings
    ADD COLUMN exclude_short_abandons_from_abandon_rate  boolean NOT NULL DEFAULT false,
    ADD COLUMN exclude_short_abandons_from_service_level boolean NOT NULL DEFAULT false;

-- The three counters of every hourly cell, at its four levels, from the calls (the rules of
-- src/kpi/facts.rs as of this migration).
WITH cells AS (
    SELECT i.organization_id AS o, date_trunc('hour', i.offered_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour,
           coalesce(i.campaign_id, '00000000-0000-0000-0000-000000000000'::uuid) AS c,
           coalesce(i.agent_id, '00000000-0000-0000-0000-000000000000'::uuid) AS a,
           i.direction AS d,
           count(*) FILTER (WHERE i.direction = 'OUTBOUND' AND i.answered_by = 'MACHINE'
                              AND i.outcome = 'ANSWERED' AND i.agent_id IS NOT NULL) AS passed,
           count(*) FILTER (WHERE i.direction = 'OUTBOUND' AND i.answered_by = 'MACHINE'
                              AND NOT (i.outcome = 'ANSWERED' AND i.agent_id IS NOT NULL)) AS detected,
           count(*) FILTER (WHERE i.outcome = 'ABANDONED'
                              AND coalesce(i.wait_ms, 0) < bs.short_abandon_seconds::int8 * 1000
                              AND coalesce(i.wait_ms, 0) <= coalesce(cp.service_level_threshold_seconds,
                                                                     bs.service_level_threshold_seconds)::int8 * 1000)
               AS short_within
    FROM interactions i
    JOIN business_settings bs ON bs.organization_id = i.organization_id
    LEFT JOIN campaigns cp ON cp.id = i.campaign_id
    GROUP BY 1, 2, 3, 4, 5
), levels AS (
    SELECT o, hour, c, a, d, passed, detected, short_within FROM cells
    UNION ALL SELECT o, hour, c, 'ffffffff-ffff-ffff-ffff-ffffffffffff', d, sum(passed), sum(detected), sum(short_within)
        FROM cells GROUP BY o, hour, c, d
    UNION ALL SELECT o, hour, 'ffffffff-ffff-ffff-ffff-ffffffffffff', a, d, sum(passed), sum(detected), sum(short_within)
        FROM cells GROUP BY o, hour, a, d
    UNION ALL SELECT o, hour, 'ffffffff-ffff-ffff-ffff-ffffffffffff', 'ffffffff-ffff-ffff-ffff-ffffffffffff', d,
        sum(passed), sum(detected), sum(short_within)
        FROM cells GROUP BY o, hour, d
)
UPDATE kpi_hourly k
SET machine_answered = l.passed, machine_detected = l.detected, short_abandoned_within_sl = l.short_within
FROM levels l
WHERE k.organization_id = l.o AND k.hour = l.hour AND k.campaign_key = l.c AND k.agent_key = l.a AND k.direction = l.d;

-- Daily cells: the sums of their hours by local date (the daily_rollups contract).
UPDATE kpi_daily dd
SET machine_answered = s.passed, machine_detected = s.detected, short_abandoned_within_sl = s.short_within
FROM (SELECT k.organization_id AS o, (k.hour AT TIME ZONE org.timezone)::date AS day, k.campaign_key, k.agent_key,
             k.direction, sum(k.machine_answered) AS passed, sum(k.machine_detected) AS detected,
             sum(k.short_abandoned_within_sl) AS short_within
      FROM kpi_hourly k JOIN organizations org ON org.id = k.organization_id
      GROUP BY 1, 2, 3, 4, 5) s
WHERE dd.organization_id = s.o AND dd.day = s.day AND dd.campaign_key = s.campaign_key
  AND dd.agent_key = s.agent_key AND dd.direction = s.direction;

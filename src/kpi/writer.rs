//! The one rollup writer. Every call and every agent-state interval enters the database
//! through this module, which writes the facts and their rollups in the caller's transaction:
//! the demo seeder, the data generator and ingest all call it, so rollups can never disagree
//! with the facts they summarize.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::contact_centre::{self as facts_db, NewInteraction, NewStateInterval};
use crate::error::AppResult;
use crate::kpi::facts::{contribution, hour_of, CallFacts, CellKey, Counters, CountingRules, ABANDONED_SQL, ANSWERED_SQL};
use crate::kpi::ALL_KEY;

/// Inserts calls and adds their contributions to the rollups. Returns the rows inserted.
pub async fn insert_calls(conn: &mut AsyncPgConnection, tenant: &Tenant, calls: &[NewInteraction]) -> AppResult<usize> {
    let rules = CountingRules::load(conn, tenant).await?;
    let inserted = facts_db::insert_interactions(conn, tenant, calls).await?;
    let mut cells: BTreeMap<CellKey, Counters> = BTreeMap::new();
    let mut dispositions: BTreeMap<(CellKey, Uuid), i64> = BTreeMap::new();
    for call in calls {
        let facts = CallFacts::from(call);
        let (key, counters) = contribution(&facts, &rules);
        for level in key.levels() {
            cells.entry(level).or_default().add(&counters);
            if let Some(disposition) = facts.disposition_id {
                *dispositions.entry((level, disposition)).or_default() += 1;
            }
        }
    }
    add_to_cells(conn, tenant, &cells).await?;
    add_to_dispositions(conn, tenant, &dispositions).await?;
    Ok(inserted)
}

/// Adds counters to rollup cells (one statement; keys sorted, so concurrent writers lock cells
/// in the same order and cannot deadlock each other).
async fn add_to_cells(conn: &mut AsyncPgConnection, tenant: &Tenant, cells: &BTreeMap<CellKey, Counters>) -> AppResult<()> {
    if cells.is_empty() {
        return Ok(());
    }
    let mut hours = Vec::with_capacity(cells.len());
    let mut campaigns = Vec::with_capacity(cells.len());
    let mut agents = Vec::with_capacity(cells.len());
    let mut directions = Vec::with_capacity(cells.len());
    let mut columns: [Vec<i64>; 17] = Default::default();
    let mut max_waits = Vec::with_capacity(cells.len());
    for (key, c) in cells {
        hours.push(key.hour);
        campaigns.push(key.campaign_key);
        agents.push(key.agent_key);
        directions.push(key.direction.to_owned());
        let values = [
            c.dials,
            c.offered,
            c.answered,
            c.handled,
            c.abandoned,
            c.answered_within_sl,
            c.abandoned_within_sl,
            c.short_abandoned,
            c.answered_wait_ms,
            c.handled_talk_ms,
            c.handled_hold_ms,
            c.handled_wrap_ms,
            c.human_answered,
            c.machine_answered,
            c.drops,
            c.contacts,
            c.successes,
        ];
        for (column, value) in columns.iter_mut().zip(values) {
            column.push(value);
        }
        max_waits.push(c.max_wait_ms);
    }
    let [dials, offered, answered, handled, abandoned, aw, bw, short, wait, talk, hold, wrap, human, machine, drops, contacts, successes] =
        columns;
    diesel::sql_query(
        "INSERT INTO kpi_hourly AS k (organization_id, hour, campaign_key, agent_key, direction,
            dials, offered, answered, handled, abandoned, answered_within_sl, abandoned_within_sl,
            short_abandoned, answered_wait_ms, handled_talk_ms, handled_hold_ms, handled_wrap_ms,
            human_answered, machine_answered, drops, contacts, successes, max_wait_ms)
         SELECT $1, * FROM unnest($2::timestamptz[], $3::uuid[], $4::uuid[], $5::text[],
            $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::int8[],
            $13::int8[], $14::int8[], $15::int8[], $16::int8[], $17::int8[], $18::int8[], $19::int8[],
            $20::int8[], $21::int8[], $22::int8[], $23::int8[])
         ON CONFLICT (organization_id, campaign_key, agent_key, hour, direction) DO UPDATE SET
            dials = k.dials + EXCLUDED.dials,
            offered = k.offered + EXCLUDED.offered,
            answered = k.answered + EXCLUDED.answered,
            handled = k.handled + EXCLUDED.handled,
            abandoned = k.abandoned + EXCLUDED.abandoned,
            answered_within_sl = k.answered_within_sl + EXCLUDED.answered_within_sl,
            abandoned_within_sl = k.abandoned_within_sl + EXCLUDED.abandoned_within_sl,
            short_abandoned = k.short_abandoned + EXCLUDED.short_abandoned,
            answered_wait_ms = k.answered_wait_ms + EXCLUDED.answered_wait_ms,
            handled_talk_ms = k.handled_talk_ms + EXCLUDED.handled_talk_ms,
            handled_hold_ms = k.handled_hold_ms + EXCLUDED.handled_hold_ms,
            handled_wrap_ms = k.handled_wrap_ms + EXCLUDED.handled_wrap_ms,
            human_answered = k.human_answered + EXCLUDED.human_answered,
            machine_answered = k.machine_answered + EXCLUDED.machine_answered,
            drops = k.drops + EXCLUDED.drops,
            contacts = k.contacts + EXCLUDED.contacts,
            successes = k.successes + EXCLUDED.successes,
            max_wait_ms = GREATEST(k.max_wait_ms, EXCLUDED.max_wait_ms)",
    )
    .bind::<SqlUuid, _>(tenant.org_id())
    .bind::<Array<Timestamptz>, _>(hours)
    .bind::<Array<SqlUuid>, _>(campaigns)
    .bind::<Array<SqlUuid>, _>(agents)
    .bind::<Array<Text>, _>(directions)
    .bind::<Array<BigInt>, _>(dials)
    .bind::<Array<BigInt>, _>(offered)
    .bind::<Array<BigInt>, _>(answered)
    .bind::<Array<BigInt>, _>(handled)
    .bind::<Array<BigInt>, _>(abandoned)
    .bind::<Array<BigInt>, _>(aw)
    .bind::<Array<BigInt>, _>(bw)
    .bind::<Array<BigInt>, _>(short)
    .bind::<Array<BigInt>, _>(wait)
    .bind::<Array<BigInt>, _>(talk)
    .bind::<Array<BigInt>, _>(hold)
    .bind::<Array<BigInt>, _>(wrap)
    .bind::<Array<BigInt>, _>(human)
    .bind::<Array<BigInt>, _>(machine)
    .bind::<Array<BigInt>, _>(drops)
    .bind::<Array<BigInt>, _>(contacts)
    .bind::<Array<BigInt>, _>(successes)
    .bind::<Array<Nullable<BigInt>>, _>(max_waits)
    .execute(conn)
    .await?;
    Ok(())
}

async fn add_to_dispositions(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    counts: &BTreeMap<(CellKey, Uuid), i64>,
) -> AppResult<()> {
    if counts.is_empty() {
        return Ok(());
    }
    let (mut hours, mut campaigns, mut agents, mut directions, mut ids, mut calls) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((key, disposition), n) in counts {
        hours.push(key.hour);
        campaigns.push(key.campaign_key);
        agents.push(key.agent_key);
        directions.push(key.direction.to_owned());
        ids.push(*disposition);
        calls.push(*n);
    }
    diesel::sql_query(
        "INSERT INTO kpi_hourly_disposition AS k (organization_id, hour, campaign_key, agent_key, direction, disposition_id, calls)
         SELECT $1, * FROM unnest($2::timestamptz[], $3::uuid[], $4::uuid[], $5::text[], $6::uuid[], $7::int8[])
         ON CONFLICT (organization_id, campaign_key, agent_key, hour, direction, disposition_id)
         DO UPDATE SET calls = k.calls + EXCLUDED.calls",
    )
    .bind::<SqlUuid, _>(tenant.org_id())
    .bind::<Array<Timestamptz>, _>(hours)
    .bind::<Array<SqlUuid>, _>(campaigns)
    .bind::<Array<SqlUuid>, _>(agents)
    .bind::<Array<Text>, _>(directions)
    .bind::<Array<SqlUuid>, _>(ids)
    .bind::<Array<BigInt>, _>(calls)
    .execute(conn)
    .await?;
    Ok(())
}

/// Microseconds of `[start, end)` falling in each UTC hour.
pub fn split_by_hour(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<(DateTime<Utc>, i64)> {
    let mut pieces = Vec::new();
    let mut cursor = start;
    while cursor < end {
        let hour = hour_of(cursor);
        let next = (hour + TimeDelta::hours(1)).min(end);
        let us = (next - cursor).num_microseconds().unwrap_or(i64::MAX);
        pieces.push((hour, us));
        cursor = next;
    }
    pieces
}

/// Inserts agent-state intervals; closed ones add their time to the state rollups (an open
/// interval is counted when it closes). Returns the rows inserted.
pub async fn insert_state_intervals(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    intervals: &[NewStateInterval],
) -> AppResult<usize> {
    let inserted = facts_db::insert_state_intervals(conn, tenant, intervals).await?;
    let mut cells: BTreeMap<(Uuid, DateTime<Utc>, &'static str, &'static str), i64> = BTreeMap::new();
    for interval in intervals {
        let Some(end) = interval.ended_at else { continue };
        for (hour, us) in split_by_hour(interval.started_at, end) {
            for agent_key in [interval.agent_id, ALL_KEY] {
                *cells.entry((agent_key, hour, interval.state.axis(), interval.state.as_str())).or_default() += us;
            }
        }
    }
    add_state_time(conn, tenant, &cells).await?;
    Ok(inserted)
}

async fn add_state_time(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    cells: &BTreeMap<(Uuid, DateTime<Utc>, &'static str, &'static str), i64>,
) -> AppResult<()> {
    if cells.is_empty() {
        return Ok(());
    }
    let (mut agents, mut hours, mut axes, mut states, mut us) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((agent, hour, axis, state), micros) in cells {
        agents.push(*agent);
        hours.push(*hour);
        axes.push((*axis).to_owned());
        states.push((*state).to_owned());
        us.push(*micros);
    }
    diesel::sql_query(
        "INSERT INTO kpi_agent_state_hourly AS k (organization_id, agent_key, hour, axis, state, us)
         SELECT $1, * FROM unnest($2::uuid[], $3::timestamptz[], $4::text[], $5::text[], $6::int8[])
         ON CONFLICT (organization_id, agent_key, hour, axis, state) DO UPDATE SET us = k.us + EXCLUDED.us",
    )
    .bind::<SqlUuid, _>(tenant.org_id())
    .bind::<Array<SqlUuid>, _>(agents)
    .bind::<Array<Timestamptz>, _>(hours)
    .bind::<Array<Text>, _>(axes)
    .bind::<Array<Text>, _>(states)
    .bind::<Array<BigInt>, _>(us)
    .execute(conn)
    .await?;
    Ok(())
}

/// Recomputes the settings-dependent counters (answered/abandoned within service level, short
/// abandons) of every rollup cell of the organization from the facts. Called in the same
/// transaction as a change of the service-level or short-abandon threshold, so history is
/// always counted with the settings in force: a threshold change re-states past service levels.
pub async fn recompute_threshold_counters(conn: &mut AsyncPgConnection, tenant: &Tenant) -> AppResult<usize> {
    let sql = format!(
        "WITH rules AS (
            SELECT service_level_threshold_seconds AS t, short_abandon_seconds AS s
            FROM business_settings WHERE organization_id = $1
         ), cells AS (
            SELECT date_trunc('hour', i.offered_at) AS hour,
                   coalesce(i.campaign_id, '00000000-0000-0000-0000-000000000000'::uuid) AS c,
                   coalesce(i.agent_id, '00000000-0000-0000-0000-000000000000'::uuid) AS a,
                   i.direction AS d,
                   count(*) FILTER (WHERE {ANSWERED_SQL} AND coalesce(i.wait_ms, 0) <= coalesce(cp.service_level_threshold_seconds, rules.t)::bigint * 1000) AS aw,
                   count(*) FILTER (WHERE {ABANDONED_SQL} AND coalesce(i.wait_ms, 0) <= coalesce(cp.service_level_threshold_seconds, rules.t)::bigint * 1000) AS bw,
                   count(*) FILTER (WHERE {ABANDONED_SQL} AND coalesce(i.wait_ms, 0) < rules.s::bigint * 1000) AS sh
            FROM interactions i CROSS JOIN rules LEFT JOIN campaigns cp ON cp.id = i.campaign_id
            WHERE i.organization_id = $1
            GROUP BY 1, 2, 3, 4
         ), levels AS (
            SELECT hour, c, a, d, aw, bw, sh FROM cells
            UNION ALL SELECT hour, c, $2, d, sum(aw), sum(bw), sum(sh) FROM cells GROUP BY hour, c, d
            UNION ALL SELECT hour, $2, $2, d, sum(aw), sum(bw), sum(sh) FROM cells GROUP BY hour, d
         )
         UPDATE kpi_hourly k SET answered_within_sl = l.aw, abandoned_within_sl = l.bw, short_abandoned = l.sh
         FROM levels l
         WHERE k.organization_id = $1 AND k.hour = l.hour AND k.campaign_key = l.c AND k.agent_key = l.a AND k.direction = l.d"
    );
    Ok(diesel::sql_query(sql)
        .bind::<SqlUuid, _>(tenant.org_id())
        .bind::<SqlUuid, _>(ALL_KEY)
        .execute(conn)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_split_at_hour_boundaries_without_loss() {
        let start = DateTime::parse_from_rfc3339("2026-03-29T00:45:30.250Z").map(|d| d.to_utc()).unwrap_or_default();
        let end = DateTime::parse_from_rfc3339("2026-03-29T03:10:00Z").map(|d| d.to_utc()).unwrap_or_default();
        let pieces = split_by_hour(start, end);
        assert_eq!(pieces.len(), 4);
        assert_eq!(pieces[0].1, (14 * 60 + 29) * 1_000_000 + 750_000);
        assert_eq!(pieces[1].1, 3_600_000_000);
        assert_eq!(pieces.iter().map(|p| p.1).sum::<i64>(), (end - start).num_microseconds().unwrap_or(0));
        assert!(split_by_hour(end, start).is_empty());
    }
}

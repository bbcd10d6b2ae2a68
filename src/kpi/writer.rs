//! The one rollup writer. Every call and every agent-state interval enters the database
//! through this module, which writes the facts and their rollups in ONE transaction: the demo
//! seeder, the data generator and ingest all call it, so rollups can never disagree with the
//! facts they summarize.
//!
//! Writing is split in two steps that every path shares:
//!
//! 1. the facts: `INSERT` through the data layer ([`insert_calls`], [`insert_state_intervals`],
//!    in the caller's transaction), or `COPY … FROM STDIN (FORMAT binary)` ([`bulk_load`]);
//! 2. the rollups for exactly those facts: [`add_call_rollups`] / [`add_state_rollups`] (the
//!    aggregation through [`contribution`] and one `unnest` upsert per rollup table). Both
//!    paths run this same code, on a diesel connection, in the transaction of the facts.
//!
//! ## Why the bulk path hands its connection to diesel
//!
//! diesel-async 0.9 has no COPY entry point, and a COPY must run on the same session (hence
//! the same transaction) as the rollup upserts. [`bulk_load`] therefore opens a plain
//! `tokio_postgres` connection, runs `BEGIN` and the COPYs on it, then wraps that very client
//! in an [`AsyncPgConnection`] (`AsyncPgConnection::try_from`) and runs the shared rollup code
//! and `COMMIT` through it. The alternatives were a second implementation of the upserts on
//! tokio-postgres (two bindings of every statement to keep in step) or a COPY into a staging
//! table on another session (a second transaction). The cost is one new connection per batch
//! (a few milliseconds per 100,000 calls). So there is one aggregation ([`aggregate_calls`],
//! [`aggregate_state_time`]) and one SQL text and binding per rollup upsert, whichever path
//! wrote the facts. The bulk path may also check foreign keys once per batch instead of once
//! per row ([`ReferenceChecks`]).

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::LazyLock;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::SinkExt;
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::contact_centre::{self as facts_db, NewStateInterval};
use crate::db::interactions::{self, NewInteraction};
use crate::domain::{AgentState, RoutingState};
use crate::error::{AppError, AppResult};
use crate::kpi::facts::{
    contribution, disposition_key, hour_of, CallFacts, CellKey, Counters, CountingRules, DispositionCounters,
    ABANDONED_SQL, ANSWERED_SQL, DISPOSITION_COUNTERS,
};
use crate::kpi::query::{raw_counter_sql, AgentTime, COUNTER_COLUMNS, MAX_WAIT_COLUMN};
use crate::kpi::ALL_KEY;

/// Inserts calls and adds their contributions to the rollups. Returns the rows inserted.
pub async fn insert_calls(conn: &mut AsyncPgConnection, tenant: &Tenant, calls: &[NewInteraction]) -> AppResult<usize> {
    let rules = CountingRules::load(conn, tenant).await?;
    let inserted = interactions::insert_interactions(conn, tenant, calls).await?;
    add_call_rollups(conn, tenant, &rules, calls).await?;
    Ok(inserted)
}

/// Counters per (cell, disposition key) of the disposition rollups.
type DispositionCells = BTreeMap<(CellKey, Uuid), DispositionCounters>;

/// Rollup cells of a set of calls: counters per cell, and per (cell, disposition key).
type CallCells = (BTreeMap<CellKey, Counters>, DispositionCells);

/// The aggregation: each call's [`contribution`], added to its cell at every level.
fn aggregate_calls(rules: &CountingRules, calls: &[NewInteraction]) -> CallCells {
    let mut cells: BTreeMap<CellKey, Counters> = BTreeMap::new();
    let mut dispositions = DispositionCells::new();
    for call in calls {
        let facts = CallFacts::from(call);
        let (key, counters) = contribution(&facts, rules);
        let per_disposition = DispositionCounters::of_call(&counters, 1);
        for level in key.levels() {
            cells.entry(level).or_default().add(&counters);
            dispositions
                .entry((level, disposition_key(&facts)))
                .or_default()
                .add(&per_disposition);
        }
    }
    (cells, dispositions)
}

/// Adds the contributions of calls that were just written to the facts, on the connection
/// (and in the transaction) that wrote them. `rules` must have been read in that transaction
/// ([`CountingRules::load`] takes the share lock on the settings) before any rollup cell is
/// touched, as a settings change locks the settings first and the cells second.
async fn add_call_rollups(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    rules: &CountingRules,
    calls: &[NewInteraction],
) -> AppResult<()> {
    let (cells, dispositions) = aggregate_calls(rules, calls);
    add_to_cells(conn, tenant, &cells).await?;
    add_to_dispositions(conn, tenant, &dispositions).await
}

/// Adds counters to rollup cells (one statement; keys sorted, so concurrent writers lock cells
/// in the same order and cannot deadlock each other).
async fn add_to_cells(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    cells: &BTreeMap<CellKey, Counters>,
) -> AppResult<()> {
    if cells.is_empty() {
        return Ok(());
    }
    let mut hours = Vec::with_capacity(cells.len());
    let mut campaigns = Vec::with_capacity(cells.len());
    let mut agents = Vec::with_capacity(cells.len());
    let mut directions = Vec::with_capacity(cells.len());
    let mut columns: [Vec<i64>; Counters::ADDITIVE_LEN] = std::array::from_fn(|_| Vec::with_capacity(cells.len()));
    let mut max_waits = Vec::with_capacity(cells.len());
    for (key, c) in cells {
        hours.push(key.hour);
        campaigns.push(key.campaign_key);
        agents.push(key.agent_key);
        directions.push(key.direction.to_owned());
        // The additive counters in `Counters::ADDITIVE` order, as ADD_TO_CELLS_SQL expects them.
        for (column, value) in columns.iter_mut().zip(c.additive_values()) {
            column.push(value);
        }
        max_waits.push(c.max_wait_ms);
    }
    let mut statement = diesel::sql_query(ADD_TO_CELLS_SQL.as_str())
        .into_boxed::<diesel::pg::Pg>()
        .bind::<SqlUuid, _>(tenant.org_id())
        .bind::<Array<Timestamptz>, _>(hours)
        .bind::<Array<SqlUuid>, _>(campaigns)
        .bind::<Array<SqlUuid>, _>(agents)
        .bind::<Array<Text>, _>(directions);
    for column in columns {
        statement = statement.bind::<Array<BigInt>, _>(column);
    }
    statement
        .bind::<Array<Nullable<BigInt>>, _>(max_waits)
        .execute(conn)
        .await?;
    Ok(())
}

/// The upsert of [`add_to_cells`]: the deltas go to their hourly cells and, in the same
/// statement, summed per local date of the organization's time zone, to the daily cells
/// (migration `daily_rollups` defines `day` as `(hour AT TIME ZONE timezone)::date`). The
/// time zone read here cannot change before the transaction ends: a change of it rewrites the
/// business settings row, which every writer has share-locked ([`CountingRules::load`]).
static ADD_TO_CELLS_SQL: LazyLock<String> = LazyLock::new(add_to_cells_sql);

/// The counters of rows aliased `alias` summed into one row, in [`COUNTER_COLUMNS`] order
/// (`max_wait_ms`, a maximum, is the greatest).
fn counter_aggregates(alias: &str) -> String {
    COUNTER_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i == MAX_WAIT_COLUMN {
                format!("max({alias}.{c})")
            } else {
                format!("sum({alias}.{c})")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds [`ADD_TO_CELLS_SQL`] from [`COUNTER_COLUMNS`], so that the hourly and the daily
/// tables are always updated with the same counters: the additive ones in their order (as
/// [`add_to_cells`] binds them, `$6` onwards), then `max_wait_ms`, a maximum, bound last.
fn add_to_cells_sql() -> String {
    let max_wait = COUNTER_COLUMNS[MAX_WAIT_COLUMN];
    let additive: Vec<&str> = COUNTER_COLUMNS.iter().copied().filter(|c| *c != max_wait).collect();
    let columns = format!("{}, {max_wait}", additive.join(", "));
    let params = (6..=6 + additive.len())
        .map(|i| format!("${i}::int8[]"))
        .collect::<Vec<_>>()
        .join(", ");
    let set = additive
        .iter()
        .map(|c| format!("{c} = k.{c} + EXCLUDED.{c}"))
        .chain([format!("{max_wait} = GREATEST(k.{max_wait}, EXCLUDED.{max_wait})")])
        .collect::<Vec<_>>()
        .join(", ");
    let all = COUNTER_COLUMNS.join(", ");
    let sums = counter_aggregates("d");
    format!(
        "WITH delta (hour, campaign_key, agent_key, direction, {columns}) AS (
            SELECT * FROM unnest($2::timestamptz[], $3::uuid[], $4::uuid[], $5::text[], {params})
         ), hourly AS (
            INSERT INTO kpi_hourly AS k (organization_id, hour, campaign_key, agent_key, direction, {columns})
            SELECT $1, * FROM delta
            ON CONFLICT (organization_id, campaign_key, agent_key, hour, direction) DO UPDATE SET {set}
         )
         INSERT INTO kpi_daily AS k (organization_id, day, campaign_key, agent_key, direction, {all})
         SELECT $1, (d.hour AT TIME ZONE o.timezone)::date AS day, d.campaign_key, d.agent_key, d.direction, {sums}
         FROM delta d JOIN organizations o ON o.id = $1
         GROUP BY 2, 3, 4, 5
         ORDER BY 3, 4, 2, 5
         ON CONFLICT (organization_id, campaign_key, agent_key, day, direction) DO UPDATE SET {set}"
    )
}

/// Adds to the disposition rollups: the hourly rows and, in the same statement, their local
/// days (as [`ADD_TO_CELLS_SQL`] does for `kpi_hourly` and `kpi_daily`). Keys sorted, as there.
async fn add_to_dispositions(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    counts: &DispositionCells,
) -> AppResult<()> {
    if counts.is_empty() {
        return Ok(());
    }
    let (mut hours, mut campaigns, mut agents, mut directions, mut ids, mut calls) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut columns: [Vec<i64>; DISPOSITION_COUNTERS.len()] = std::array::from_fn(|_| Vec::with_capacity(counts.len()));
    for ((key, disposition), n) in counts {
        hours.push(key.hour);
        campaigns.push(key.campaign_key);
        agents.push(key.agent_key);
        directions.push(key.direction.to_owned());
        ids.push(*disposition);
        calls.push(n.calls);
        for (column, value) in columns.iter_mut().zip(n.counters) {
            column.push(value);
        }
    }
    let mut statement = diesel::sql_query(ADD_TO_DISPOSITIONS_SQL.as_str())
        .into_boxed::<diesel::pg::Pg>()
        .bind::<SqlUuid, _>(tenant.org_id())
        .bind::<Array<Timestamptz>, _>(hours)
        .bind::<Array<SqlUuid>, _>(campaigns)
        .bind::<Array<SqlUuid>, _>(agents)
        .bind::<Array<Text>, _>(directions)
        .bind::<Array<SqlUuid>, _>(ids)
        .bind::<Array<BigInt>, _>(calls);
    for column in columns {
        statement = statement.bind::<Array<BigInt>, _>(column);
    }
    statement.execute(conn).await?;
    Ok(())
}

/// The upsert of [`add_to_dispositions`]: `calls` and [`DISPOSITION_COUNTERS`] (bound from
/// `$8` on) to the hourly rows, and summed per local date to the daily rows.
static ADD_TO_DISPOSITIONS_SQL: LazyLock<String> = LazyLock::new(|| {
    let counters: Vec<&str> = std::iter::once("calls").chain(DISPOSITION_COUNTERS).collect();
    let columns = counters.join(", ");
    let params = (7..7 + counters.len())
        .map(|i| format!("${i}::int8[]"))
        .collect::<Vec<_>>()
        .join(", ");
    let set = counters
        .iter()
        .map(|c| format!("{c} = k.{c} + EXCLUDED.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sums = counters
        .iter()
        .map(|c| format!("sum(d.{c})"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "WITH delta (hour, campaign_key, agent_key, direction, disposition_id, {columns}) AS (
            SELECT * FROM unnest($2::timestamptz[], $3::uuid[], $4::uuid[], $5::text[], $6::uuid[], {params})
         ), hourly AS (
            INSERT INTO kpi_hourly_disposition AS k (organization_id, hour, campaign_key, agent_key, direction,
                disposition_id, {columns})
            SELECT $1, * FROM delta
            ON CONFLICT (organization_id, campaign_key, agent_key, hour, direction, disposition_id) DO UPDATE SET {set}
         )
         INSERT INTO kpi_daily_disposition AS k (organization_id, day, campaign_key, agent_key, direction,
             disposition_id, {columns})
         SELECT $1, (d.hour AT TIME ZONE o.timezone)::date AS day, d.campaign_key, d.agent_key, d.direction,
             d.disposition_id, {sums}
         FROM delta d JOIN organizations o ON o.id = $1
         GROUP BY 2, 3, 4, 5, 6
         ORDER BY 3, 4, 2, 5, 6
         ON CONFLICT (organization_id, campaign_key, agent_key, day, direction, disposition_id) DO UPDATE SET {set}"
    )
});

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
/// interval is counted when it closes). Returns the rows inserted. The start of each ROUTING
/// interval is also recorded as a routing transition no call explains, so that re-deriving the
/// agent's routing log from its transitions (ingest, when a call arrives late) reproduces it.
pub async fn insert_state_intervals(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    intervals: &[NewStateInterval],
) -> AppResult<usize> {
    let inserted = insert_derived_state_intervals(conn, tenant, intervals).await?;
    let starts: Vec<(Uuid, DateTime<Utc>, &str, RoutingState)> = intervals
        .iter()
        .filter_map(|i| match i.state {
            AgentState::Routing(state) => Some((i.agent_id, i.started_at, "", state)),
            AgentState::Presence(_) => None,
        })
        .collect();
    crate::db::calls::insert_routing_transitions(conn, tenant, &starts).await?;
    Ok(inserted)
}

/// [`insert_state_intervals`] for intervals that are already a function of stored transitions
/// (ingest's routing log): nothing else is recorded.
pub async fn insert_derived_state_intervals(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    intervals: &[NewStateInterval],
) -> AppResult<usize> {
    // The daily rollups are keyed in the organization's time zone: hold the settings row, as a
    // time-zone change rewrites it before rebuilding them.
    CountingRules::hold_settings(conn, tenant).await?;
    let inserted = facts_db::insert_state_intervals(conn, tenant, intervals).await?;
    add_state_rollups(conn, tenant, intervals).await?;
    Ok(inserted)
}

/// Takes the time of intervals that were just deleted from the state log out of the state
/// rollups (open ones never reached them), in the transaction that deleted them.
pub async fn remove_state_time(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    intervals: &[NewStateInterval],
) -> AppResult<()> {
    CountingRules::hold_settings(conn, tenant).await?;
    let mut cells = aggregate_state_time(intervals);
    for us in cells.values_mut() {
        *us = -*us;
    }
    add_state_time(conn, tenant, &cells).await
}

/// Time in state per (agent key, hour, axis, state), in microseconds.
type StateCells = BTreeMap<(Uuid, DateTime<Utc>, &'static str, &'static str), i64>;

/// The aggregation of agent time: closed intervals split at hour boundaries, per agent and
/// for ALL agents.
fn aggregate_state_time(intervals: &[NewStateInterval]) -> StateCells {
    let mut cells = StateCells::new();
    for interval in intervals {
        let Some(end) = interval.ended_at else { continue };
        for (hour, us) in split_by_hour(interval.started_at.trunc_subsecs(6), end.trunc_subsecs(6)) {
            for agent_key in [interval.agent_id, ALL_KEY] {
                *cells
                    .entry((agent_key, hour, interval.state.axis(), interval.state.as_str()))
                    .or_default() += us;
            }
        }
    }
    cells
}

/// Adds the time of intervals that were just written to the state log, on the connection
/// (and in the transaction) that wrote them.
async fn add_state_rollups(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    intervals: &[NewStateInterval],
) -> AppResult<()> {
    add_state_time(conn, tenant, &aggregate_state_time(intervals)).await
}

async fn add_state_time(conn: &mut AsyncPgConnection, tenant: &Tenant, cells: &StateCells) -> AppResult<()> {
    if cells.is_empty() {
        return Ok(());
    }
    let (mut agents, mut hours, mut axes, mut states, mut us) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
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
    add_agent_time(conn, tenant, cells).await
}

/// The same time as the four measures of the metrics, one row per (agent key, hour) in
/// `kpi_agent_time_hourly` and per (agent key, local date) in `kpi_agent_time_daily` (as for
/// [`ADD_TO_CELLS_SQL`]); the states are classified by [`AgentTime::add_state`], as for reads
/// of the raw log.
async fn add_agent_time(conn: &mut AsyncPgConnection, tenant: &Tenant, cells: &StateCells) -> AppResult<()> {
    let mut measures: BTreeMap<(Uuid, DateTime<Utc>), AgentTime> = BTreeMap::new();
    for ((agent, hour, axis, state), micros) in cells {
        measures
            .entry((*agent, *hour))
            .or_default()
            .add_state(axis, state, *micros);
    }
    let (mut agents, mut hours) = (Vec::new(), Vec::new());
    let (mut on_call, mut wrap_up, mut available, mut logged_in) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((agent, hour), time) in measures {
        agents.push(agent);
        hours.push(hour);
        on_call.push(time.on_call_us);
        wrap_up.push(time.wrap_up_us);
        available.push(time.available_us);
        logged_in.push(time.logged_in_us);
    }
    diesel::sql_query(
        "WITH delta (agent_key, hour, on_call_us, wrap_up_us, available_us, logged_in_us) AS (
            SELECT * FROM unnest($2::uuid[], $3::timestamptz[], $4::int8[], $5::int8[], $6::int8[], $7::int8[])
         ), hourly AS (
            INSERT INTO kpi_agent_time_hourly AS k (organization_id, agent_key, hour, on_call_us, wrap_up_us,
                    available_us, logged_in_us)
            SELECT $1, * FROM delta
            ON CONFLICT (organization_id, agent_key, hour) DO UPDATE SET
                on_call_us = k.on_call_us + EXCLUDED.on_call_us, wrap_up_us = k.wrap_up_us + EXCLUDED.wrap_up_us,
                available_us = k.available_us + EXCLUDED.available_us,
                logged_in_us = k.logged_in_us + EXCLUDED.logged_in_us
         )
         INSERT INTO kpi_agent_time_daily AS k (organization_id, agent_key, day, on_call_us, wrap_up_us,
                available_us, logged_in_us)
         SELECT $1, d.agent_key, (d.hour AT TIME ZONE o.timezone)::date, sum(d.on_call_us), sum(d.wrap_up_us),
                sum(d.available_us), sum(d.logged_in_us)
         FROM delta d JOIN organizations o ON o.id = $1
         GROUP BY 2, 3
         ORDER BY 2, 3
         ON CONFLICT (organization_id, agent_key, day) DO UPDATE SET
            on_call_us = k.on_call_us + EXCLUDED.on_call_us, wrap_up_us = k.wrap_up_us + EXCLUDED.wrap_up_us,
            available_us = k.available_us + EXCLUDED.available_us, logged_in_us = k.logged_in_us + EXCLUDED.logged_in_us",
    )
    .bind::<SqlUuid, _>(tenant.org_id())
    .bind::<Array<SqlUuid>, _>(agents)
    .bind::<Array<Timestamptz>, _>(hours)
    .bind::<Array<BigInt>, _>(on_call)
    .bind::<Array<BigInt>, _>(wrap_up)
    .bind::<Array<BigInt>, _>(available)
    .bind::<Array<BigInt>, _>(logged_in)
    .execute(conn)
    .await?;
    Ok(())
}

/// The counters that depend on the thresholds of the business settings and campaigns.
pub const THRESHOLD_COUNTERS: [&str; 4] = [
    "answered_within_sl",
    "abandoned_within_sl",
    "short_abandoned",
    "short_abandoned_within_sl",
];

/// Recomputes the settings-dependent counters ([`THRESHOLD_COUNTERS`]) of every rollup cell of
/// the organization from the facts, in the call rollups and in the disposition rollups (which
/// keep one of them, `short_abandoned`). Called in the same transaction as a change of the
/// service-level or short-abandon threshold, so history is always counted with the settings in
/// force: a threshold change re-states past service levels.
pub async fn recompute_threshold_counters(conn: &mut AsyncPgConnection, tenant: &Tenant) -> AppResult<usize> {
    let cells = restate_counters(conn, tenant, &THRESHOLD_COUNTERS).await?;
    let in_dispositions: Vec<&str> = THRESHOLD_COUNTERS
        .iter()
        .copied()
        .filter(|c| DISPOSITION_COUNTERS.contains(c))
        .collect();
    restate_in(conn, tenant, &DISPOSITION_ROLLUPS, &in_dispositions).await?;
    Ok(cells)
}

/// Recomputes `columns` (names of [`Counters::ADDITIVE`]) of every hourly and daily rollup
/// cell of the organization from its calls, by the raw counting rules of
/// [`crate::kpi::query`] (the ones the property tests hold equal to [`contribution`]). The
/// other counters are left as they are. Returns the hourly cells updated.
pub async fn restate_counters(conn: &mut AsyncPgConnection, tenant: &Tenant, columns: &[&str]) -> AppResult<usize> {
    restate_in(conn, tenant, &CALL_ROLLUPS, columns).await
}

/// An hourly rollup table and its daily one, keyed by (campaign key, agent key, hour or day,
/// direction) at the four levels of [`CellKey::levels`], and perhaps by one more key.
struct RollupFamily {
    hourly: &'static str,
    daily: &'static str,
    /// The further key column and its value for a call `i` (`$3` is [`crate::kpi::NONE_KEY`]).
    extra_key: Option<(&'static str, &'static str)>,
    /// The counters the tables keep.
    counters: &'static [&'static str],
}

const CALL_ROLLUPS: RollupFamily = RollupFamily {
    hourly: "kpi_hourly",
    daily: "kpi_daily",
    extra_key: None,
    counters: Counters::ADDITIVE,
};

const DISPOSITION_ROLLUPS: RollupFamily = RollupFamily {
    hourly: "kpi_hourly_disposition",
    daily: "kpi_daily_disposition",
    extra_key: Some(("disposition_id", "coalesce(i.disposition_id, $3)")),
    counters: &DISPOSITION_COUNTERS,
};

/// The calls whose counting a change of a campaign's override or a disposition's flags alters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallsOf {
    Campaign(Uuid),
    Disposition(Uuid),
}

/// The offer hours of the calls of one campaign or one disposition (`{column}`), in order.
const TOUCHED_HOURS_SQL: &str =
    "SELECT DISTINCT date_trunc('hour', i.offered_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour
     FROM interactions i WHERE i.organization_id = $1 AND i.{column} = $2 ORDER BY 1";

#[derive(diesel::QueryableByName)]
struct TouchedHour {
    #[diesel(sql_type = Timestamptz)]
    hour: DateTime<Utc>,
}

/// [`restate_counters`] limited to the hours in which `calls` were offered: every hourly cell
/// of those hours (at all four levels, so the cells the calls share with other campaigns or
/// dispositions too) and the daily cells of their local dates are recomputed from the facts.
/// A change of one campaign's service-level override or of one disposition's flags alters the
/// counting of those calls only, so nothing else can have changed. Returns the hours, in
/// order. Run it in the transaction of the change, after the change, holding the business
/// settings row (as a threshold change does), so that no writer adds to those cells meanwhile
/// with the rules of before.
pub async fn restate_scoped(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    calls: CallsOf,
    columns: &[&str],
) -> AppResult<Vec<DateTime<Utc>>> {
    let (column, id) = match calls {
        CallsOf::Campaign(id) => ("campaign_id", id),
        CallsOf::Disposition(id) => ("disposition_id", id),
    };
    let hours: Vec<DateTime<Utc>> = diesel::sql_query(TOUCHED_HOURS_SQL.replace("{column}", column))
        .bind::<SqlUuid, _>(tenant.org_id())
        .bind::<SqlUuid, _>(id)
        .load::<TouchedHour>(conn)
        .await?
        .into_iter()
        .map(|h| h.hour)
        .collect();
    if !hours.is_empty() {
        restate_in_hours(conn, tenant, &CALL_ROLLUPS, columns, Some(&hours)).await?;
    }
    Ok(hours)
}

/// [`restate_counters`] for the tables of `family`. Only existing rows are updated: every call
/// has added its row at each level when it was written, so a row with calls exists for every
/// key the facts produce.
async fn restate_in(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    family: &RollupFamily,
    columns: &[&str],
) -> AppResult<usize> {
    restate_in_hours(conn, tenant, family, columns, None).await
}

/// [`restate_in`], over every hour of the organization (`hours` None) or over the given UTC
/// hours only (and the local days that contain them).
async fn restate_in_hours(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    family: &RollupFamily,
    columns: &[&str],
    hours: Option<&[DateTime<Utc>]>,
) -> AppResult<usize> {
    if let Some(unknown) = columns.iter().find(|c| !family.counters.contains(c)) {
        return Err(AppError::internal(format!(
            "restate: `{unknown}` is no additive counter of {}",
            family.hourly
        )));
    }
    if columns.is_empty() {
        return Ok(0);
    }
    let computed = |f: &dyn Fn(&str) -> String| columns.iter().map(|c| f(c)).collect::<Vec<_>>().join(", ");
    let raw = computed(&|c| format!("{} AS {c}", raw_counter_sql(c)));
    let sums = computed(&|c| format!("sum({c}) AS {c}"));
    let set_from = |alias: &str| computed(&|c| format!("{c} = {alias}.{c}"));
    let (extra_select, extra_column, extra_group, extra_match) = match family.extra_key {
        Some((column, value)) => (
            format!(", {value} AS x"),
            ", x".to_owned(),
            ", x".to_owned(),
            format!(" AND k.{column} = l.x"),
        ),
        None => (String::new(), String::new(), String::new(), String::new()),
    };
    let extra_position = if family.extra_key.is_some() { ", 5" } else { "" };
    // The facts read: all the organization's calls, or those offered in the given hours
    // (`$4`, read by the offer-time index).
    let (source, hour_filter) = match hours {
        None => ("FROM interactions i".to_owned(), ""),
        Some(_) => (
            "FROM unnest($4::timestamptz[]) AS t(hour)
             JOIN interactions i ON i.organization_id = $1 AND i.offered_at >= t.hour
                  AND i.offered_at < t.hour + interval '1 hour'"
                .to_owned(),
            " AND k.hour = ANY($4::timestamptz[])",
        ),
    };
    let sql = format!(
        "WITH cells AS (
            SELECT date_trunc('hour', i.offered_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour,
                   coalesce(i.campaign_id, $3) AS c, coalesce(i.agent_id, $3) AS a, i.direction AS dir{extra_select},
                   {raw}
            {source}
            JOIN business_settings bs ON bs.organization_id = $1
            LEFT JOIN campaigns cp ON cp.id = i.campaign_id
            LEFT JOIN dispositions d ON d.id = i.disposition_id
            WHERE i.organization_id = $1
            GROUP BY 1, 2, 3, 4{extra_position}
         ), levels AS (
            SELECT hour, c, a, dir{extra_column}, {all} FROM cells
            UNION ALL SELECT hour, c, $2, dir{extra_column}, {sums} FROM cells GROUP BY hour, c, dir{extra_group}
            UNION ALL SELECT hour, $2, a, dir{extra_column}, {sums} FROM cells GROUP BY hour, a, dir{extra_group}
            UNION ALL SELECT hour, $2, $2, dir{extra_column}, {sums} FROM cells GROUP BY hour, dir{extra_group}
         )
         UPDATE {hourly} k SET {set}
         FROM levels l
         WHERE k.organization_id = $1 AND k.hour = l.hour AND k.campaign_key = l.c AND k.agent_key = l.a
           AND k.direction = l.dir{extra_match}{hour_filter}",
        all = columns.join(", "),
        set = set_from("l"),
        hourly = family.hourly,
    );
    let mut statement = diesel::sql_query(sql)
        .into_boxed::<diesel::pg::Pg>()
        .bind::<SqlUuid, _>(tenant.org_id())
        .bind::<SqlUuid, _>(ALL_KEY)
        .bind::<SqlUuid, _>(crate::kpi::NONE_KEY);
    if let Some(hours) = hours {
        statement = statement.bind::<Array<Timestamptz>, _>(hours.to_vec());
    }
    let cells = statement.execute(conn).await?;
    let (extra_k, extra_match) = match family.extra_key {
        Some((column, _)) => (format!(", k.{column}"), format!(" AND d.{column} = s.{column}")),
        None => (String::new(), String::new()),
    };
    // The daily cells of the local dates of those hours, summed again from all their hours
    // (`$2`: a window around the hours that every such date falls in, for the index).
    let day_filter = if hours.is_some() {
        " AND k.hour >= $2 AND k.hour < $3
          AND (k.hour AT TIME ZONE o.timezone)::date IN (
              SELECT (t.hour AT TIME ZONE o.timezone)::date FROM unnest($4::timestamptz[]) AS t(hour))"
    } else {
        ""
    };
    let mut statement = diesel::sql_query(format!(
        "UPDATE {daily} d SET {set}
         FROM (SELECT (k.hour AT TIME ZONE o.timezone)::date AS day, k.campaign_key, k.agent_key, k.direction{extra_k},
                      {sums}
               FROM {hourly} k JOIN organizations o ON o.id = k.organization_id
               WHERE k.organization_id = $1{day_filter}
               GROUP BY 1, 2, 3, 4{extra_position}) s
         WHERE d.organization_id = $1 AND d.day = s.day AND d.campaign_key = s.campaign_key
           AND d.agent_key = s.agent_key AND d.direction = s.direction{extra_match}",
        daily = family.daily,
        hourly = family.hourly,
        set = set_from("s"),
        sums = computed(&|c| format!("sum(k.{c}) AS {c}")),
    ))
    .into_boxed::<diesel::pg::Pg>()
    .bind::<SqlUuid, _>(tenant.org_id());
    if let Some(hours) = hours {
        // A local date spans at most 26 UTC hours around any of its hours (zones reach ±14 h).
        let first = hours.iter().min().copied().unwrap_or_default() - TimeDelta::hours(40);
        let last = hours.iter().max().copied().unwrap_or_default() + TimeDelta::hours(40);
        statement = statement
            .bind::<Timestamptz, _>(first)
            .bind::<Timestamptz, _>(last)
            .bind::<Array<Timestamptz>, _>(hours.to_vec());
    }
    statement.execute(conn).await?;
    Ok(cells)
}

/// Rebuilds the organization's daily rollups from its hourly rollups, for a new time zone. Runs
/// in the transaction that changes the zone (after it), which holds the business settings row,
/// so no writer adds to the rollups meanwhile.
pub async fn rebuild_daily_rollups(conn: &mut AsyncPgConnection, tenant: &Tenant) -> AppResult<()> {
    let org = tenant.org_id();
    diesel::sql_query("DELETE FROM kpi_daily WHERE organization_id = $1")
        .bind::<SqlUuid, _>(org)
        .execute(conn)
        .await?;
    diesel::sql_query("DELETE FROM kpi_agent_time_daily WHERE organization_id = $1")
        .bind::<SqlUuid, _>(org)
        .execute(conn)
        .await?;
    diesel::sql_query(REBUILD_DAILY_SQL.as_str())
        .bind::<SqlUuid, _>(org)
        .execute(conn)
        .await?;
    diesel::sql_query("DELETE FROM kpi_daily_disposition WHERE organization_id = $1")
        .bind::<SqlUuid, _>(org)
        .execute(conn)
        .await?;
    diesel::sql_query(REBUILD_DAILY_DISPOSITION_SQL.as_str())
        .bind::<SqlUuid, _>(org)
        .execute(conn)
        .await?;
    diesel::sql_query(
        "INSERT INTO kpi_agent_time_daily (organization_id, agent_key, day, on_call_us, wrap_up_us, available_us,
            logged_in_us)
         SELECT $1, t.agent_key, (t.hour AT TIME ZONE o.timezone)::date,
            sum(t.on_call_us), sum(t.wrap_up_us), sum(t.available_us), sum(t.logged_in_us)
         FROM kpi_agent_time_hourly t JOIN organizations o ON o.id = t.organization_id
         WHERE t.organization_id = $1
         GROUP BY 2, 3",
    )
    .bind::<SqlUuid, _>(org)
    .execute(conn)
    .await?;
    Ok(())
}

/// The daily call rollups of organization `$1`, summed from its hourly ones by local date.
static REBUILD_DAILY_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO kpi_daily (organization_id, day, campaign_key, agent_key, direction, {})
         SELECT $1, (k.hour AT TIME ZONE o.timezone)::date, k.campaign_key, k.agent_key, k.direction, {}
         FROM kpi_hourly k JOIN organizations o ON o.id = k.organization_id
         WHERE k.organization_id = $1
         GROUP BY 2, 3, 4, 5",
        COUNTER_COLUMNS.join(", "),
        counter_aggregates("k")
    )
});

/// The daily disposition rollups of organization `$1`, summed from its hourly ones by local date.
static REBUILD_DAILY_DISPOSITION_SQL: LazyLock<String> = LazyLock::new(|| {
    let counters: Vec<&str> = std::iter::once("calls").chain(DISPOSITION_COUNTERS).collect();
    format!(
        "INSERT INTO kpi_daily_disposition (organization_id, day, campaign_key, agent_key, direction, disposition_id, {})
         SELECT $1, (k.hour AT TIME ZONE o.timezone)::date, k.campaign_key, k.agent_key, k.direction, k.disposition_id, {}
         FROM kpi_hourly_disposition k JOIN organizations o ON o.id = k.organization_id
         WHERE k.organization_id = $1
         GROUP BY 2, 3, 4, 5, 6",
        counters.join(", "),
        counters
            .iter()
            .map(|c| format!("sum(k.{c})"))
            .collect::<Vec<_>>()
            .join(", ")
    )
});

/// How [`bulk_load`] enforces the foreign keys of the rows it writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReferenceChecks {
    /// PostgreSQL's foreign-key triggers, once per row, as for `INSERT`.
    #[default]
    PerRow,
    /// Once per batch, with the same effect: every distinct key the batch references
    /// (organization, campaigns, agents, dispositions) is locked `FOR KEY SHARE` in the
    /// transaction — the lock each row's trigger takes — and must exist, else the batch fails;
    /// the row triggers themselves are skipped (`SET LOCAL session_replication_role =
    /// replica`). The checks run after the COPYs, as the row triggers do (at the end of the
    /// statement), and before `COMMIT`. Skipping triggers needs a superuser and would also skip
    /// any other trigger, so it is used only when the role is a superuser and the five tables
    /// written have no trigger but their foreign keys; otherwise the batch falls back to
    /// [`ReferenceChecks::PerRow`]. It roughly halves the server's work per row.
    PerBatch,
}

/// What one [`bulk_load`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BulkLoaded {
    pub calls: u64,
    pub intervals: u64,
    /// The checks actually used.
    pub checks: ReferenceChecks,
}

/// Whether this session may skip row triggers without skipping anything but foreign keys.
const CAN_CHECK_PER_BATCH_SQL: &str = "SELECT current_setting('is_superuser') = 'on' AND NOT EXISTS (
        SELECT 1 FROM pg_trigger WHERE NOT tgisinternal AND tgrelid = ANY (ARRAY['interactions', 'agent_state_log',
            'kpi_hourly', 'kpi_hourly_disposition', 'kpi_daily_disposition', 'kpi_agent_state_hourly',
            'kpi_agent_time_hourly']::regclass[]))";

/// `COPY` of calls. `id` is sent by the loader (see [`encode_interaction`]); the other columns
/// not listed keep their defaults, as with the `INSERT` path.
const COPY_INTERACTIONS_SQL: &str = "COPY interactions (id, organization_id, campaign_id, agent_id, external_id, \
     direction, customer_number, offered_at, answered_at, ended_at, wrap_ended_at, wait_ms, talk_ms, hold_ms, \
     wrap_ms, outcome, disposition_id, answered_by, notes) FROM STDIN (FORMAT binary)";
const INTERACTION_COLUMNS: i16 = 19;
/// `COPY` of agent-state intervals (`id` is the table's sequence).
const COPY_STATE_LOG_SQL: &str = "COPY agent_state_log (organization_id, agent_id, axis, state, reason, started_at, \
     ended_at) FROM STDIN (FORMAT binary)";
const STATE_LOG_COLUMNS: i16 = 7;
/// Bytes of COPY data sent per message.
const COPY_CHUNK_BYTES: usize = 1 << 20;
/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// Loads calls and agent-state intervals with `COPY … (FORMAT binary)` and adds their rollups,
/// all in ONE transaction on ONE session: `BEGIN`, COPY the calls, COPY the intervals, then —
/// on the same client, wrapped in an [`AsyncPgConnection`] — [`CountingRules::load`] (share
/// lock on the settings, taken before any rollup cell, as in [`insert_calls`]), the shared
/// rollup code ([`add_call_rollups`], [`add_state_rollups`]) and `COMMIT`. Any error drops the
/// session before `COMMIT`, so PostgreSQL rolls the whole batch back.
///
/// The result is the same as [`insert_calls`] + [`insert_state_intervals`] in one transaction,
/// except that call ids are time-ordered (UUIDv7 layout) rather than random, which keeps the
/// id indexes appending at their right edge during large loads. It opens its own connection to
/// `database_url` (a COPY cannot go through the pool's diesel connections); the statement
/// timeout of the pool does not apply. Meant for batches of about 10⁴–10⁵ calls. `checks`
/// chooses how foreign keys are enforced (see [`ReferenceChecks`]).
pub async fn bulk_load(
    database_url: &str,
    tenant: &Tenant,
    calls: &[NewInteraction],
    intervals: &[NewStateInterval],
    checks: ReferenceChecks,
) -> AppResult<BulkLoaded> {
    bulk_load_audited(database_url, tenant, calls, intervals, checks, None).await
}

/// [`bulk_load`], with an audit record written in the batch's transaction (before `COMMIT`),
/// for loads that are an operation of someone (a history import) rather than seeding.
pub async fn bulk_load_audited(
    database_url: &str,
    tenant: &Tenant,
    calls: &[NewInteraction],
    intervals: &[NewStateInterval],
    checks: ReferenceChecks,
    audit: Option<crate::audit::AuditEvent>,
) -> AppResult<BulkLoaded> {
    let started = std::time::Instant::now();
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .map_err(|e| AppError::Unavailable(format!("cannot reach PostgreSQL: {e}")))?;
    // The task ends when the client (later owned by the diesel connection) is dropped.
    let driver = tokio::spawn(connection);
    client.batch_execute("BEGIN").await.map_err(pg_error)?;
    let checks = match checks {
        ReferenceChecks::PerBatch
            if client
                .query_one(CAN_CHECK_PER_BATCH_SQL, &[])
                .await
                .map_err(pg_error)?
                .get(0) =>
        {
            client
                .batch_execute("SET LOCAL session_replication_role = replica")
                .await
                .map_err(pg_error)?;
            ReferenceChecks::PerBatch
        }
        _ => ReferenceChecks::PerRow,
    };
    let org = tenant.org_id();
    let copied_calls = copy_rows(
        &client,
        COPY_INTERACTIONS_SQL,
        INTERACTION_COLUMNS,
        calls,
        |buf, call| encode_interaction(buf, org, call),
    )
    .await?;
    let copy_calls = started.elapsed();
    let copied_intervals = copy_rows(
        &client,
        COPY_STATE_LOG_SQL,
        STATE_LOG_COLUMNS,
        intervals,
        |buf, interval| encode_state_interval(buf, org, interval),
    )
    .await?;
    let copy_intervals = started.elapsed();
    let mut conn = AsyncPgConnection::try_from(client)
        .await
        .map_err(|e| AppError::Unavailable(format!("wrapping the COPY session: {e}")))?;
    if checks == ReferenceChecks::PerBatch {
        lock_references(&mut conn, tenant, calls, intervals).await?;
    }
    let rules = CountingRules::load(&mut conn, tenant).await?;
    let checked = started.elapsed();
    add_call_rollups(&mut conn, tenant, &rules, calls).await?;
    let call_rollups = started.elapsed();
    add_state_rollups(&mut conn, tenant, intervals).await?;
    let state_rollups = started.elapsed();
    match audit {
        None => conn.batch_execute("COMMIT").await?,
        // The audit writer insists on a transaction diesel knows of, and diesel's transaction
        // manager never saw the `BEGIN` sent on the raw client: the record goes through
        // `transaction`, whose `BEGIN` PostgreSQL ignores inside the open transaction (with a
        // warning) and whose `COMMIT` (or `ROLLBACK`, when the record fails) ends the batch's
        // one transaction, facts, rollups and record together.
        Some(event) => {
            conn.transaction(async |conn| crate::audit::record(conn, event).await)
                .await?;
        }
    }
    drop(conn);
    tracing::debug!(
        calls = copied_calls,
        intervals = copied_intervals,
        ?checks,
        copy_calls_ms = copy_calls.as_millis() as u64,
        copy_intervals_ms = (copy_intervals - copy_calls).as_millis() as u64,
        checks_ms = (checked - copy_intervals).as_millis() as u64,
        call_rollups_ms = (call_rollups - checked).as_millis() as u64,
        state_rollups_ms = (state_rollups - call_rollups).as_millis() as u64,
        commit_ms = (started.elapsed() - state_rollups).as_millis() as u64,
        "bulk load batch"
    );
    // The connection task only reports an error the statements above have already returned.
    let _ = driver.await;
    Ok(BulkLoaded {
        calls: copied_calls,
        intervals: copied_intervals,
        checks,
    })
}

/// The foreign-key checks of a batch, once per distinct key ([`ReferenceChecks::PerBatch`]):
/// each referenced row is locked `FOR KEY SHARE`, as the row triggers would, and must exist.
async fn lock_references(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    calls: &[NewInteraction],
    intervals: &[NewStateInterval],
) -> AppResult<()> {
    use diesel::{ExpressionMethods, OptionalExtension, QueryDsl};

    use crate::db::schema::{agents, campaigns, dispositions, organizations};

    let missing = |what: &str| AppError::bad_input(format!("bulk load: a {what} id is not one of the organization"));
    let org: Option<Uuid> = organizations::table
        .find(tenant.org_id())
        .select(organizations::id)
        .for_key_share()
        .first(conn)
        .await
        .optional()?;
    if org.is_none() {
        return Err(AppError::NotFound("organization not found".into()));
    }
    let distinct = |ids: &mut dyn Iterator<Item = Uuid>| ids.collect::<std::collections::BTreeSet<Uuid>>();
    let campaign_ids = distinct(&mut calls.iter().filter_map(|c| c.campaign_id));
    let agent_ids = distinct(
        &mut calls
            .iter()
            .filter_map(|c| c.agent_id)
            .chain(intervals.iter().map(|i| i.agent_id)),
    );
    let disposition_ids = distinct(&mut calls.iter().filter_map(|c| c.disposition_id));
    let found: Vec<Uuid> = campaigns::table
        .filter(campaigns::organization_id.eq(tenant.org_id()))
        .filter(campaigns::id.eq_any(&campaign_ids))
        .select(campaigns::id)
        .for_key_share()
        .load(conn)
        .await?;
    if found.len() != campaign_ids.len() {
        return Err(missing("campaign"));
    }
    let found: Vec<Uuid> = agents::table
        .filter(agents::organization_id.eq(tenant.org_id()))
        .filter(agents::id.eq_any(&agent_ids))
        .select(agents::id)
        .for_key_share()
        .load(conn)
        .await?;
    if found.len() != agent_ids.len() {
        return Err(missing("agent"));
    }
    let found: Vec<Uuid> = dispositions::table
        .filter(dispositions::organization_id.eq(tenant.org_id()))
        .filter(dispositions::id.eq_any(&disposition_ids))
        .select(dispositions::id)
        .for_key_share()
        .load(conn)
        .await?;
    if found.len() != disposition_ids.len() {
        return Err(missing("disposition"));
    }
    Ok(())
}

fn pg_error(e: tokio_postgres::Error) -> AppError {
    AppError::internal(format!("bulk load: {e}"))
}

/// Streams `rows` through one `COPY … FROM STDIN (FORMAT binary)`; returns the rows copied.
async fn copy_rows<T>(
    client: &tokio_postgres::Client,
    sql: &str,
    columns: i16,
    rows: &[T],
    encode: impl Fn(&mut Vec<u8>, &T) -> AppResult<()>,
) -> AppResult<u64> {
    let sink = client.copy_in::<_, Cursor<Vec<u8>>>(sql).await.map_err(pg_error)?;
    let mut sink = std::pin::pin!(sink);
    let mut buf = Vec::with_capacity(COPY_CHUNK_BYTES + 4096);
    // Signature, flags, header extension length.
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buf.extend_from_slice(&0_i32.to_be_bytes());
    buf.extend_from_slice(&0_i32.to_be_bytes());
    for row in rows {
        buf.extend_from_slice(&columns.to_be_bytes());
        encode(&mut buf, row)?;
        if buf.len() >= COPY_CHUNK_BYTES {
            let full = std::mem::replace(&mut buf, Vec::with_capacity(COPY_CHUNK_BYTES + 4096));
            sink.send(Cursor::new(full)).await.map_err(pg_error)?;
        }
    }
    buf.extend_from_slice(&(-1_i16).to_be_bytes());
    sink.send(Cursor::new(buf)).await.map_err(pg_error)?;
    sink.as_mut().finish().await.map_err(pg_error)
}

/// One binary COPY field: its length, then its bytes (PostgreSQL's binary send format).
fn put_field(buf: &mut Vec<u8>, bytes: &[u8]) -> AppResult<()> {
    let len = i32::try_from(bytes.len()).map_err(|_| AppError::internal("bulk load: field longer than 2 GiB"))?;
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(bytes);
    Ok(())
}

fn put_null(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&(-1_i32).to_be_bytes());
}

fn put_uuid(buf: &mut Vec<u8>, id: Option<Uuid>) -> AppResult<()> {
    match id {
        Some(id) => put_field(buf, id.as_bytes()),
        None => {
            put_null(buf);
            Ok(())
        }
    }
}

fn put_text(buf: &mut Vec<u8>, text: Option<&str>) -> AppResult<()> {
    match text {
        Some(text) => put_field(buf, text.as_bytes()),
        None => {
            put_null(buf);
            Ok(())
        }
    }
}

fn put_i64(buf: &mut Vec<u8>, value: Option<i64>) -> AppResult<()> {
    match value {
        Some(value) => put_field(buf, &value.to_be_bytes()),
        None => {
            put_null(buf);
            Ok(())
        }
    }
}

/// `timestamptz`: microseconds since 2000-01-01 UTC.
fn put_timestamp(buf: &mut Vec<u8>, at: Option<DateTime<Utc>>) -> AppResult<()> {
    put_i64(buf, at.map(|t| t.timestamp_micros() - PG_EPOCH_OFFSET_US))
}

/// A call id in the UUIDv7 layout: the offer's Unix milliseconds, then 74 random bits.
fn time_ordered_id(offered_at: DateTime<Utc>) -> Uuid {
    let millis = u64::try_from(offered_at.timestamp_millis()).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &rand::random::<[u8; 10]>()).into_uuid()
}

/// One `interactions` row, in the column order of [`COPY_INTERACTIONS_SQL`].
fn encode_interaction(buf: &mut Vec<u8>, org: Uuid, c: &NewInteraction) -> AppResult<()> {
    put_uuid(buf, Some(time_ordered_id(c.offered_at)))?;
    put_uuid(buf, Some(org))?;
    put_uuid(buf, c.campaign_id)?;
    put_uuid(buf, c.agent_id)?;
    put_text(buf, Some(&c.external_id))?;
    put_text(buf, Some(c.direction.as_str()))?;
    put_text(buf, c.customer_number.as_deref())?;
    put_timestamp(buf, Some(c.offered_at))?;
    put_timestamp(buf, c.answered_at)?;
    put_timestamp(buf, c.ended_at)?;
    put_timestamp(buf, c.wrap_ended_at)?;
    put_i64(buf, c.wait_ms)?;
    put_i64(buf, Some(c.talk_ms))?;
    put_i64(buf, Some(c.hold_ms))?;
    put_i64(buf, Some(c.wrap_ms))?;
    put_text(buf, Some(c.outcome.as_str()))?;
    put_uuid(buf, c.disposition_id)?;
    put_text(buf, c.answered_by.map(|a| a.as_str()))?;
    put_text(buf, c.notes.as_deref())
}

/// One `agent_state_log` row, in the column order of [`COPY_STATE_LOG_SQL`].
fn encode_state_interval(buf: &mut Vec<u8>, org: Uuid, s: &NewStateInterval) -> AppResult<()> {
    put_uuid(buf, Some(org))?;
    put_uuid(buf, Some(s.agent_id))?;
    put_text(buf, Some(s.state.axis()))?;
    put_text(buf, Some(s.state.as_str()))?;
    put_text(buf, s.reason.as_deref())?;
    put_timestamp(buf, Some(s.started_at))?;
    put_timestamp(buf, s.ended_at)
}

/// Moves calls' contributions in the rollups from what they were to what they are now, in
/// the caller's transaction: the update path of ingest, where a call's facts change as its
/// events arrive. `before` is what the rollups hold for the call (None: a call they do not
/// hold yet), `after` what they must hold. The interaction rows must already hold `after`.
///
/// Counters are additive: the old contribution is added negated, through the same upsert as
/// new calls, at the four levels of its cell, and the new one at the four levels of its
/// cell — so a call whose offer hour, campaign, agent or direction changed leaves its old cell
/// and joins its new one. `max_wait_ms` cannot be subtracted: where an old wait was at least
/// the cell's stored maximum (and the call's new contribution to that cell does not restore
/// it), that cell's maximum is recomputed from the interactions. The disposition rollups move the
/// same way (their calls and counters, under the disposition or the none key). Cells whose net change is nothing are not touched.
pub async fn replace_calls(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    changes: &[(Option<CallFacts>, CallFacts)],
) -> AppResult<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let rules = CountingRules::load(conn, tenant).await?;
    let mut cells: BTreeMap<CellKey, Counters> = BTreeMap::new();
    let mut dispositions = DispositionCells::new();
    // Per cell, the largest wait an old contribution took out of it.
    let mut removed_max: BTreeMap<CellKey, i64> = BTreeMap::new();
    for (before, after) in changes {
        let (after_key, after_counters) = contribution(after, &rules);
        if let Some(before) = before {
            let (before_key, before_counters) = contribution(before, &rules);
            let negated = before_counters.negated();
            let removed = DispositionCounters::of_call(&before_counters, -1);
            for level in before_key.levels() {
                cells.entry(level).or_default().add(&negated);
                dispositions
                    .entry((level, disposition_key(before)))
                    .or_default()
                    .add(&removed);
                if let Some(wait) = before_counters.max_wait_ms {
                    let restored = after_key.levels().contains(&level)
                        && after_counters.max_wait_ms.is_some_and(|new_wait| new_wait >= wait);
                    if !restored {
                        let removed = removed_max.entry(level).or_insert(wait);
                        *removed = (*removed).max(wait);
                    }
                }
            }
        }
        let added = DispositionCounters::of_call(&after_counters, 1);
        for level in after_key.levels() {
            cells.entry(level).or_default().add(&after_counters);
            dispositions
                .entry((level, disposition_key(after)))
                .or_default()
                .add(&added);
        }
    }
    cells.retain(|_, delta| *delta != Counters::default());
    dispositions.retain(|_, delta| *delta != DispositionCounters::default());
    add_to_cells(conn, tenant, &cells).await?;
    add_to_dispositions(conn, tenant, &dispositions).await?;
    recompute_max_waits(conn, tenant, &removed_max).await
}

/// [`replace_calls`] for one call.
pub async fn replace_call(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    before: Option<&CallFacts>,
    after: &CallFacts,
) -> AppResult<()> {
    replace_calls(conn, tenant, &[(before.copied(), *after)]).await
}

/// Re-reads `max_wait_ms` from the interactions for each cell whose stored maximum may have
/// left it (stored maximum ≤ the wait removed), at the cell's own level (campaign and agent,
/// campaign only, agent only, or the whole organization). One statement; the cells are already locked by
/// the upsert that preceded it in the same transaction.
async fn recompute_max_waits(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    removed: &BTreeMap<CellKey, i64>,
) -> AppResult<()> {
    if removed.is_empty() {
        return Ok(());
    }
    let mut hours = Vec::with_capacity(removed.len());
    let mut campaigns = Vec::with_capacity(removed.len());
    let mut agents = Vec::with_capacity(removed.len());
    let mut directions = Vec::with_capacity(removed.len());
    let mut waits = Vec::with_capacity(removed.len());
    for (key, wait) in removed {
        hours.push(key.hour);
        campaigns.push(key.campaign_key);
        agents.push(key.agent_key);
        directions.push(key.direction.to_owned());
        waits.push(*wait);
    }
    let sql = format!(
        "UPDATE kpi_hourly k SET max_wait_ms = (
            SELECT max(coalesce(i.wait_ms, 0)) FROM interactions i
            WHERE i.organization_id = $1 AND i.offered_at >= c.hour AND i.offered_at < c.hour + interval '1 hour'
              AND i.direction = c.direction
              AND (c.campaign_key = $7 OR coalesce(i.campaign_id, $8) = c.campaign_key)
              AND (c.agent_key = $7 OR coalesce(i.agent_id, $8) = c.agent_key)
              AND ({ANSWERED_SQL} OR {ABANDONED_SQL}))
         FROM unnest($2::timestamptz[], $3::uuid[], $4::uuid[], $5::text[], $6::int8[])
              AS c(hour, campaign_key, agent_key, direction, removed)
         WHERE k.organization_id = $1 AND k.hour = c.hour AND k.campaign_key = c.campaign_key
           AND k.agent_key = c.agent_key AND k.direction = c.direction
           AND (k.max_wait_ms IS NULL OR k.max_wait_ms <= c.removed)"
    );
    diesel::sql_query(sql)
        .bind::<SqlUuid, _>(tenant.org_id())
        .bind::<Array<Timestamptz>, _>(&hours)
        .bind::<Array<SqlUuid>, _>(&campaigns)
        .bind::<Array<SqlUuid>, _>(&agents)
        .bind::<Array<Text>, _>(&directions)
        .bind::<Array<BigInt>, _>(waits)
        .bind::<SqlUuid, _>(ALL_KEY)
        .bind::<SqlUuid, _>(crate::kpi::NONE_KEY)
        .execute(conn)
        .await?;
    // The daily cells of those hours take the largest of their hours again.
    diesel::sql_query(
        "UPDATE kpi_daily d SET max_wait_ms = (
            SELECT max(k.max_wait_ms) FROM kpi_hourly k
            WHERE k.organization_id = $1 AND k.campaign_key = d.campaign_key AND k.agent_key = d.agent_key
              AND k.direction = d.direction
              AND k.hour >= d.day::timestamp AT TIME ZONE 'UTC' - interval '1 day'
              AND k.hour < d.day::timestamp AT TIME ZONE 'UTC' + interval '2 days'
              AND (k.hour AT TIME ZONE o.timezone)::date = d.day)
         FROM organizations o,
              (SELECT DISTINCT (c.hour AT TIME ZONE z.timezone)::date AS day, c.campaign_key, c.agent_key, c.direction
               FROM unnest($2::timestamptz[], $3::uuid[], $4::uuid[], $5::text[]) AS c(hour, campaign_key, agent_key, direction)
               JOIN organizations z ON z.id = $1) c
         WHERE o.id = $1 AND d.organization_id = $1 AND d.day = c.day AND d.campaign_key = c.campaign_key
           AND d.agent_key = c.agent_key AND d.direction = c.direction",
    )
    .bind::<SqlUuid, _>(tenant.org_id())
    .bind::<Array<Timestamptz>, _>(&hours)
    .bind::<Array<SqlUuid>, _>(&campaigns)
    .bind::<Array<SqlUuid>, _>(&agents)
    .bind::<Array<Text>, _>(&directions)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_split_at_hour_boundaries_without_loss() {
        let start = DateTime::parse_from_rfc3339("2026-03-29T00:45:30.250Z")
            .map(|d| d.to_utc())
            .unwrap_or_default();
        let end = DateTime::parse_from_rfc3339("2026-03-29T03:10:00Z")
            .map(|d| d.to_utc())
            .unwrap_or_default();
        let pieces = split_by_hour(start, end);
        assert_eq!(pieces.len(), 4);
        assert_eq!(pieces[0].1, (14 * 60 + 29) * 1_000_000 + 750_000);
        assert_eq!(pieces[1].1, 3_600_000_000);
        assert_eq!(
            pieces.iter().map(|p| p.1).sum::<i64>(),
            (end - start).num_microseconds().unwrap_or(0)
        );
        assert!(split_by_hour(end, start).is_empty());
    }
}

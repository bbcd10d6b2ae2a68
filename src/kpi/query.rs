//! Aggregates over time windows. Each window `[from, to)` is answered from the hourly rollups
//! for the whole UTC hours it covers, and from the raw facts for the partial hours at its edges
//! (a window inside one hour is all edge). All windows of a request are answered by at most
//! four statements (rollup and raw, for calls and for agent time), whatever their number.

use chrono::{DateTime, TimeDelta, Utc};
use diesel::sql_types::{Array, BigInt, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::contact_centre::Direction;
use crate::error::AppResult;
use crate::kpi::facts::{hour_of, Counters, ABANDONED_SQL, ANSWERED_SQL};
use crate::kpi::ALL_KEY;

/// Which calls and agents a query covers. Team filters are resolved to agent ids by the caller.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub campaign_ids: Option<Vec<Uuid>>,
    pub agent_ids: Option<Vec<Uuid>>,
    pub direction: Option<Direction>,
}

/// Agent time from the state log, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentTime {
    pub on_call_us: i64,
    pub wrap_up_us: i64,
    pub available_us: i64,
    pub logged_in_us: i64,
}

impl AgentTime {
    pub fn add(&mut self, o: &AgentTime) {
        self.on_call_us += o.on_call_us;
        self.wrap_up_us += o.wrap_up_us;
        self.available_us += o.available_us;
        self.logged_in_us += o.logged_in_us;
    }

    fn add_state(&mut self, axis: &str, state: &str, us: i64) {
        match (axis, state) {
            ("ROUTING", "ON_CALL") => self.on_call_us += us,
            ("ROUTING", "WRAP_UP") => self.wrap_up_us += us,
            ("PRESENCE", "OFFLINE") => {}
            ("PRESENCE", presence) => {
                self.logged_in_us += us;
                if presence == "AVAILABLE" {
                    self.available_us += us;
                }
            }
            _ => {}
        }
    }
}

/// Everything the metric registry needs for one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Aggregates {
    pub calls: Counters,
    pub agents: AgentTime,
}

/// A window split into its rollup part (whole hours) and its raw edges.
fn split(from: DateTime<Utc>, to: DateTime<Utc>) -> (Option<(DateTime<Utc>, DateTime<Utc>)>, Vec<(DateTime<Utc>, DateTime<Utc>)>) {
    let first_full = {
        let h = hour_of(from);
        if h == from {
            h
        } else {
            h + TimeDelta::hours(1)
        }
    };
    let last_full = hour_of(to);
    if first_full >= last_full {
        return (None, vec![(from, to)]);
    }
    let mut edges = Vec::new();
    if from < first_full {
        edges.push((from, first_full));
    }
    if last_full < to {
        edges.push((last_full, to));
    }
    (Some((first_full, last_full)), edges)
}

/// Aggregates for each window (in order). Windows may overlap; each is answered on its own.
pub async fn aggregate_windows(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    windows: &[(DateTime<Utc>, DateTime<Utc>)],
    scope: &Scope,
) -> AppResult<Vec<Aggregates>> {
    let mut rollup_windows = Windows::default();
    let mut raw_windows = Windows::default();
    for (index, (from, to)) in windows.iter().enumerate() {
        if from >= to {
            continue;
        }
        let (whole, edges) = split(*from, *to);
        if let Some((s, e)) = whole {
            rollup_windows.push(s, e, index);
        }
        for (s, e) in edges {
            raw_windows.push(s, e, index);
        }
    }
    let mut out = vec![Aggregates::default(); windows.len()];
    for (index, counters) in rollup_counters(conn, tenant, &rollup_windows, scope).await? {
        out[index].calls.add(&counters);
    }
    for (index, counters) in raw_counters(conn, tenant, &raw_windows, scope).await? {
        out[index].calls.add(&counters);
    }
    for (index, axis, state, us) in rollup_agent_time(conn, tenant, &rollup_windows, scope).await? {
        out[index].agents.add_state(&axis, &state, us);
    }
    for (index, axis, state, us) in raw_agent_time(conn, tenant, &raw_windows, scope).await? {
        out[index].agents.add_state(&axis, &state, us);
    }
    Ok(out)
}

/// Time windows as parallel arrays, for `unnest`.
#[derive(Debug, Default)]
pub struct Windows {
    starts: Vec<DateTime<Utc>>,
    ends: Vec<DateTime<Utc>>,
    indexes: Vec<i32>,
}

impl Windows {
    pub fn push(&mut self, start: DateTime<Utc>, end: DateTime<Utc>, index: usize) {
        self.starts.push(start);
        self.ends.push(end);
        self.indexes.push(i32::try_from(index).unwrap_or(i32::MAX));
    }
    pub fn single(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        let mut w = Self::default();
        w.push(start, end, 0);
        w
    }
    fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }
}

#[derive(QueryableByName)]
struct CounterRow {
    #[diesel(sql_type = Int4)]
    idx: i32,
    #[diesel(sql_type = BigInt)]
    dials: i64,
    #[diesel(sql_type = BigInt)]
    offered: i64,
    #[diesel(sql_type = BigInt)]
    answered: i64,
    #[diesel(sql_type = BigInt)]
    handled: i64,
    #[diesel(sql_type = BigInt)]
    abandoned: i64,
    #[diesel(sql_type = BigInt)]
    answered_within_sl: i64,
    #[diesel(sql_type = BigInt)]
    abandoned_within_sl: i64,
    #[diesel(sql_type = BigInt)]
    short_abandoned: i64,
    #[diesel(sql_type = BigInt)]
    answered_wait_ms: i64,
    #[diesel(sql_type = BigInt)]
    handled_talk_ms: i64,
    #[diesel(sql_type = BigInt)]
    handled_hold_ms: i64,
    #[diesel(sql_type = BigInt)]
    handled_wrap_ms: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    max_wait_ms: Option<i64>,
    #[diesel(sql_type = BigInt)]
    human_answered: i64,
    #[diesel(sql_type = BigInt)]
    machine_answered: i64,
    #[diesel(sql_type = BigInt)]
    drops: i64,
    #[diesel(sql_type = BigInt)]
    contacts: i64,
    #[diesel(sql_type = BigInt)]
    successes: i64,
}

impl CounterRow {
    fn into_pair(self) -> (usize, Counters) {
        (
            usize::try_from(self.idx).unwrap_or(0),
            Counters {
                dials: self.dials,
                offered: self.offered,
                answered: self.answered,
                handled: self.handled,
                abandoned: self.abandoned,
                answered_within_sl: self.answered_within_sl,
                abandoned_within_sl: self.abandoned_within_sl,
                short_abandoned: self.short_abandoned,
                answered_wait_ms: self.answered_wait_ms,
                handled_talk_ms: self.handled_talk_ms,
                handled_hold_ms: self.handled_hold_ms,
                handled_wrap_ms: self.handled_wrap_ms,
                max_wait_ms: self.max_wait_ms,
                human_answered: self.human_answered,
                machine_answered: self.machine_answered,
                drops: self.drops,
                contacts: self.contacts,
                successes: self.successes,
            },
        )
    }
}

/// The rollup level that answers a scope with the fewest rows.
fn level_condition(scope: &Scope) -> &'static str {
    match (&scope.agent_ids, &scope.campaign_ids) {
        (Some(_), _) => "k.agent_key = ANY($6) AND ($5::uuid[] IS NULL OR k.campaign_key = ANY($5))",
        (None, Some(_)) => "k.agent_key = $8 AND k.campaign_key = ANY($5)",
        (None, None) => "k.agent_key = $8 AND k.campaign_key = $8",
    }
}

/// Counters from `kpi_hourly` for hour-aligned windows.
pub async fn rollup_counters(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    windows: &Windows,
    scope: &Scope,
) -> AppResult<Vec<(usize, Counters)>> {
    if windows.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT w.idx,
            sum(k.dials)::int8 AS dials, sum(k.offered)::int8 AS offered, sum(k.answered)::int8 AS answered,
            sum(k.handled)::int8 AS handled, sum(k.abandoned)::int8 AS abandoned,
            sum(k.answered_within_sl)::int8 AS answered_within_sl, sum(k.abandoned_within_sl)::int8 AS abandoned_within_sl,
            sum(k.short_abandoned)::int8 AS short_abandoned, sum(k.answered_wait_ms)::int8 AS answered_wait_ms,
            sum(k.handled_talk_ms)::int8 AS handled_talk_ms, sum(k.handled_hold_ms)::int8 AS handled_hold_ms,
            sum(k.handled_wrap_ms)::int8 AS handled_wrap_ms, max(k.max_wait_ms) AS max_wait_ms,
            sum(k.human_answered)::int8 AS human_answered, sum(k.machine_answered)::int8 AS machine_answered, sum(k.drops)::int8 AS drops,
            sum(k.contacts)::int8 AS contacts, sum(k.successes)::int8 AS successes
         FROM unnest($2::timestamptz[], $3::timestamptz[], $4::int4[]) AS w(s, e, idx)
         JOIN kpi_hourly k ON k.organization_id = $1 AND k.hour >= w.s AND k.hour < w.e
         WHERE {} AND ($7::text IS NULL OR k.direction = $7)
         GROUP BY w.idx",
        level_condition(scope)
    );
    let rows: Vec<CounterRow> = diesel::sql_query(sql)
        .bind::<SqlUuid, _>(tenant.org_id())
        .bind::<Array<Timestamptz>, _>(&windows.starts)
        .bind::<Array<Timestamptz>, _>(&windows.ends)
        .bind::<Array<Int4>, _>(&windows.indexes)
        .bind::<Nullable<Array<SqlUuid>>, _>(scope.campaign_ids.as_ref())
        .bind::<Nullable<Array<SqlUuid>>, _>(scope.agent_ids.as_ref())
        .bind::<Nullable<Text>, _>(scope.direction.map(Direction::as_str))
        .bind::<SqlUuid, _>(ALL_KEY)
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(CounterRow::into_pair).collect())
}

/// Counters computed directly from `interactions` with the same rules as the writer. Used
/// for window edges, and by tests as the ground truth the rollups must equal.
pub async fn raw_counters(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    windows: &Windows,
    scope: &Scope,
) -> AppResult<Vec<(usize, Counters)>> {
    if windows.is_empty() {
        return Ok(Vec::new());
    }
    let within = "coalesce(i.wait_ms, 0) <= coalesce(cp.service_level_threshold_seconds, bs.service_level_threshold_seconds)::int8 * 1000";
    let handled = format!("{ANSWERED_SQL} AND i.wrap_ended_at IS NOT NULL");
    let sql = format!(
        "SELECT w.idx,
            count(*) FILTER (WHERE i.direction = 'OUTBOUND') AS dials,
            count(*) FILTER (WHERE {ANSWERED_SQL} OR {ABANDONED_SQL}) AS offered,
            count(*) FILTER (WHERE {ANSWERED_SQL}) AS answered,
            count(*) FILTER (WHERE {handled}) AS handled,
            count(*) FILTER (WHERE {ABANDONED_SQL}) AS abandoned,
            count(*) FILTER (WHERE {ANSWERED_SQL} AND {within}) AS answered_within_sl,
            count(*) FILTER (WHERE {ABANDONED_SQL} AND {within}) AS abandoned_within_sl,
            count(*) FILTER (WHERE {ABANDONED_SQL} AND coalesce(i.wait_ms, 0) < bs.short_abandon_seconds::int8 * 1000) AS short_abandoned,
            coalesce(sum(coalesce(i.wait_ms, 0)) FILTER (WHERE {ANSWERED_SQL}), 0)::int8 AS answered_wait_ms,
            coalesce(sum(i.talk_ms) FILTER (WHERE {handled}), 0)::int8 AS handled_talk_ms,
            coalesce(sum(i.hold_ms) FILTER (WHERE {handled}), 0)::int8 AS handled_hold_ms,
            coalesce(sum(i.wrap_ms) FILTER (WHERE {handled}), 0)::int8 AS handled_wrap_ms,
            max(coalesce(i.wait_ms, 0)) FILTER (WHERE {ANSWERED_SQL} OR {ABANDONED_SQL}) AS max_wait_ms,
            count(*) FILTER (WHERE i.direction = 'OUTBOUND' AND i.answered_by = 'HUMAN') AS human_answered,
            count(*) FILTER (WHERE i.direction = 'OUTBOUND' AND i.answered_by = 'MACHINE') AS machine_answered,
            count(*) FILTER (WHERE i.direction = 'OUTBOUND' AND {ABANDONED_SQL}) AS drops,
            count(*) FILTER (WHERE i.direction = 'OUTBOUND' AND d.contact) AS contacts,
            count(*) FILTER (WHERE i.direction = 'OUTBOUND' AND d.success) AS successes
         FROM unnest($2::timestamptz[], $3::timestamptz[], $4::int4[]) AS w(s, e, idx)
         JOIN interactions i ON i.organization_id = $1 AND i.offered_at >= w.s AND i.offered_at < w.e
         JOIN business_settings bs ON bs.organization_id = $1
         LEFT JOIN campaigns cp ON cp.id = i.campaign_id
         LEFT JOIN dispositions d ON d.id = i.disposition_id
         WHERE ($5::uuid[] IS NULL OR i.campaign_id = ANY($5))
           AND ($6::uuid[] IS NULL OR i.agent_id = ANY($6))
           AND ($7::text IS NULL OR i.direction = $7)
         GROUP BY w.idx"
    );
    let rows: Vec<CounterRow> = diesel::sql_query(sql)
        .bind::<SqlUuid, _>(tenant.org_id())
        .bind::<Array<Timestamptz>, _>(&windows.starts)
        .bind::<Array<Timestamptz>, _>(&windows.ends)
        .bind::<Array<Int4>, _>(&windows.indexes)
        .bind::<Nullable<Array<SqlUuid>>, _>(scope.campaign_ids.as_ref())
        .bind::<Nullable<Array<SqlUuid>>, _>(scope.agent_ids.as_ref())
        .bind::<Nullable<Text>, _>(scope.direction.map(Direction::as_str))
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(CounterRow::into_pair).collect())
}

#[derive(QueryableByName)]
struct StateRow {
    #[diesel(sql_type = Int4)]
    idx: i32,
    #[diesel(sql_type = Text)]
    axis: String,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = BigInt)]
    us: i64,
}

type StateTime = (usize, String, String, i64);

fn state_rows(rows: Vec<StateRow>) -> Vec<StateTime> {
    rows.into_iter().map(|r| (usize::try_from(r.idx).unwrap_or(0), r.axis, r.state, r.us)).collect()
}

/// Agent time from `kpi_agent_state_hourly` (campaign and direction filters do not apply to
/// agent time).
pub async fn rollup_agent_time(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    windows: &Windows,
    scope: &Scope,
) -> AppResult<Vec<StateTime>> {
    if windows.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<StateRow> = diesel::sql_query(
        "SELECT w.idx, k.axis, k.state, sum(k.us)::int8 AS us
         FROM unnest($2::timestamptz[], $3::timestamptz[], $4::int4[]) AS w(s, e, idx)
         JOIN kpi_agent_state_hourly k ON k.organization_id = $1 AND k.hour >= w.s AND k.hour < w.e
         WHERE CASE WHEN $5::uuid[] IS NULL THEN k.agent_key = $6 ELSE k.agent_key = ANY($5) END
         GROUP BY 1, 2, 3",
    )
    .bind::<SqlUuid, _>(tenant.org_id())
    .bind::<Array<Timestamptz>, _>(&windows.starts)
    .bind::<Array<Timestamptz>, _>(&windows.ends)
    .bind::<Array<Int4>, _>(&windows.indexes)
    .bind::<Nullable<Array<SqlUuid>>, _>(scope.agent_ids.as_ref())
    .bind::<SqlUuid, _>(ALL_KEY)
    .load(conn)
    .await?;
    Ok(state_rows(rows))
}

/// Agent time computed directly from closed `agent_state_log` intervals clipped to each window.
pub async fn raw_agent_time(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    windows: &Windows,
    scope: &Scope,
) -> AppResult<Vec<StateTime>> {
    if windows.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<StateRow> = diesel::sql_query(
        "SELECT w.idx, l.axis, l.state,
                sum((extract(epoch FROM (least(l.ended_at, w.e) - greatest(l.started_at, w.s))) * 1000000)::int8)::int8 AS us
         FROM unnest($2::timestamptz[], $3::timestamptz[], $4::int4[]) AS w(s, e, idx)
         JOIN agent_state_log l ON l.organization_id = $1 AND l.ended_at IS NOT NULL
              AND l.started_at < w.e AND l.ended_at > w.s
         WHERE ($5::uuid[] IS NULL OR l.agent_id = ANY($5))
         GROUP BY 1, 2, 3",
    )
    .bind::<SqlUuid, _>(tenant.org_id())
    .bind::<Array<Timestamptz>, _>(&windows.starts)
    .bind::<Array<Timestamptz>, _>(&windows.ends)
    .bind::<Array<Int4>, _>(&windows.indexes)
    .bind::<Nullable<Array<SqlUuid>>, _>(scope.agent_ids.as_ref())
    .load(conn)
    .await?;
    Ok(state_rows(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).map(|d| d.to_utc()).unwrap_or_default()
    }

    #[test]
    fn windows_split_into_whole_hours_and_edges() {
        let (whole, edges) = split(at("2026-01-01T10:15:00Z"), at("2026-01-01T13:30:00Z"));
        assert_eq!(whole, Some((at("2026-01-01T11:00:00Z"), at("2026-01-01T13:00:00Z"))));
        assert_eq!(
            edges,
            vec![
                (at("2026-01-01T10:15:00Z"), at("2026-01-01T11:00:00Z")),
                (at("2026-01-01T13:00:00Z"), at("2026-01-01T13:30:00Z"))
            ]
        );
        let (whole, edges) = split(at("2026-01-01T10:00:00Z"), at("2026-01-01T12:00:00Z"));
        assert_eq!((whole.is_some(), edges.len()), (true, 0));
        let (whole, edges) = split(at("2026-01-01T10:05:00Z"), at("2026-01-01T10:55:00Z"));
        assert_eq!((whole, edges.len()), (None, 1));
    }
}

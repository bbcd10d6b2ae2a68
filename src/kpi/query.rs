//! The statements of the KPI planner ([`crate::kpi::plan`]): call counters and agent time per
//! group from the daily and hourly rollups and from the raw facts, each source answering every
//! group and time slot of a request in ONE statement. Ungrouped reads (`kpiSummary`,
//! `kpiSeries`, `liveKpis`) are the same statements with no grouping but time slots; there is
//! no second path. The SQL form of the writer's counting rules ([`raw_counter_sql`]) lives here
//! too, beside the reads that use it.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use diesel::sql_types::{Array, BigInt, Date, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::cached_sql::CachedSql;
use crate::domain::Direction;
use crate::error::AppResult;
use crate::kpi::facts::{
    hour_of, Counters, ABANDONED_SQL, ANSWERED_SQL, DISPOSITION_COUNTERS, MACHINE_DETECTED_SQL, MACHINE_PASSED_SQL,
};
use crate::kpi::{ALL_KEY, NONE_KEY};

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

    /// Adds time spent in one state: which states count as on call, wrap-up, available and
    /// logged in is decided here only.
    pub fn add_state(&mut self, axis: &str, state: &str, us: i64) {
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

impl Aggregates {
    pub fn add(&mut self, o: &Aggregates) {
        self.calls.add(&o.calls);
        self.agents.add(&o.agents);
    }
}

/// A time window `[start, end)`.
pub type Window = (DateTime<Utc>, DateTime<Utc>);

/// The whole UTC hours of `[from, to)` (for the rollups) and the partial hours at its edges (a
/// window inside one hour is all edge).
pub fn whole_hours_and_edges(from: DateTime<Utc>, to: DateTime<Utc>) -> (Option<Window>, Vec<Window>) {
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

/// How many counter columns a call read returns: the additive ones and `max_wait_ms`.
pub const COUNTER_COLUMN_COUNT: usize = Counters::ADDITIVE_LEN + 1;

/// The place of `max_wait_ms` in [`COUNTER_COLUMNS`], the one counter that is a maximum: last.
pub(crate) const MAX_WAIT_COLUMN: usize = Counters::ADDITIVE_LEN;

/// The counter columns of `kpi_hourly` and `kpi_daily` (and of [`Counters`]), in order: the
/// additive ones as [`Counters::ADDITIVE`] declares them, then `max_wait_ms`.
pub const COUNTER_COLUMNS: [&str; COUNTER_COLUMN_COUNT] = {
    let mut columns = ["max_wait_ms"; COUNTER_COLUMN_COUNT];
    let mut i = 0;
    while i < Counters::ADDITIVE_LEN {
        columns[i] = Counters::ADDITIVE[i];
        i += 1;
    }
    columns
};

/// Builds counters from values in [`COUNTER_COLUMNS`] order (`max_wait_ms` is `Some`).
pub fn counters_from_columns(v: [i64; COUNTER_COLUMN_COUNT]) -> Counters {
    let mut additive = [0_i64; Counters::ADDITIVE_LEN];
    additive.copy_from_slice(&v[..Counters::ADDITIVE_LEN]);
    Counters::from_values(additive, Some(v[MAX_WAIT_COLUMN]))
}

/// Which counter columns a read computes ([`COUNTER_COLUMNS`] order); the others read as 0
/// (`max_wait_ms` as NULL), so a read that serves a few metrics aggregates only what they use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterMask(pub [bool; COUNTER_COLUMN_COUNT]);

impl CounterMask {
    pub const ALL: CounterMask = CounterMask([true; COUNTER_COLUMN_COUNT]);

    /// The counters the disposition rollups keep ([`DISPOSITION_COUNTERS`]).
    pub fn per_disposition() -> CounterMask {
        CounterMask(COUNTER_COLUMNS.map(|c| DISPOSITION_COUNTERS.contains(&c)))
    }

    /// Whether every counter of `self` is one of `other`.
    pub fn within(self, other: CounterMask) -> bool {
        self.0.iter().zip(other.0).all(|(a, b)| !*a || b)
    }

    /// Whether a call read with this mask may be kept prepared ([`CachedSql`]): with every
    /// counter (or every counter of the disposition rollups, which their reads always take)
    /// its text is one of a few shapes (grouping × level × source); with a subset it
    /// would have one text per set of metrics a client asks for, each left prepared on every
    /// pooled connection, so such reads are parsed every time instead.
    fn is_bounded_text(self) -> bool {
        self == CounterMask::ALL || self == CounterMask::per_disposition()
    }
}

impl Default for CounterMask {
    fn default() -> Self {
        CounterMask::ALL
    }
}

/// The counters of a call read as ONE array column `counters` in [`COUNTER_COLUMNS`] order:
/// `expr` for the counters of `mask`, a constant for the others (0, or NULL for
/// `max_wait_ms`). One array rather than a named column per counter: diesel finds each named
/// column of each row by a search over the row's column names, which for a month of daily
/// rows cost more than reading them, and the row types need no field per counter.
fn counter_array(mask: CounterMask, expr: impl Fn(&str) -> String) -> String {
    let values = COUNTER_COLUMNS
        .iter()
        .enumerate()
        .map(|(i, column)| match (mask.0[i], i == MAX_WAIT_COLUMN) {
            (true, _) => expr(column),
            (false, true) => "NULL::int8".to_owned(),
            (false, false) => "0::int8".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!("ARRAY[{values}]::int8[] AS counters")
}

/// The counters of each rollup row `k` as stored, for reads that add rows up in Rust.
fn stored_counter_array(mask: CounterMask) -> String {
    counter_array(mask, |column| format!("k.{column}"))
}

/// The counters of a [`counter_array`] (`max_wait_ms` may be null, the others are not).
fn counters_from_array(values: &[Option<i64>]) -> Counters {
    let mut additive = [0_i64; Counters::ADDITIVE_LEN];
    for (column, value) in additive.iter_mut().zip(values) {
        *column = value.unwrap_or(0);
    }
    Counters::from_values(additive, values.get(MAX_WAIT_COLUMN).copied().flatten())
}

/// The counter columns summed over rollup rows `k` (`kpi_hourly`).
fn rollup_counter_columns(mask: CounterMask) -> String {
    counter_array(mask, |column| match column {
        "max_wait_ms" => "max(k.max_wait_ms)".to_owned(),
        _ => format!("sum(k.{column})::int8"),
    })
}

/// The counter columns computed from raw calls `i` (joined with `business_settings bs`,
/// `campaigns cp` and `dispositions d`) by the writer's counting rules.
fn raw_counter_columns(mask: CounterMask) -> String {
    counter_array(mask, raw_counter_sql)
}

/// One counter computed from raw calls `i`: the SQL form of [`crate::kpi::facts::contribution`]
/// (the property tests check that both agree). A column without a rule here reads as NULL,
/// which fails `every_counter_has_a_raw_rule` below.
pub(crate) fn raw_counter_sql(column: &str) -> String {
    let within = "coalesce(i.wait_ms, 0) <= coalesce(cp.service_level_threshold_seconds, bs.service_level_threshold_seconds)::int8 * 1000";
    let short = "coalesce(i.wait_ms, 0) < bs.short_abandon_seconds::int8 * 1000";
    let handled = format!("{ANSWERED_SQL} AND i.wrap_ended_at IS NOT NULL");
    let count = |condition: &str| format!("count(*) FILTER (WHERE {condition})");
    let sum = |expr: &str, condition: &str| format!("coalesce(sum({expr}) FILTER (WHERE {condition}), 0)::int8");
    match column {
        "dials" => count("i.direction = 'OUTBOUND'"),
        "offered" => count(&format!("{ANSWERED_SQL} OR {ABANDONED_SQL}")),
        "answered" => count(ANSWERED_SQL),
        "handled" => count(&handled),
        "abandoned" => count(ABANDONED_SQL),
        "answered_within_sl" => count(&format!("{ANSWERED_SQL} AND {within}")),
        "abandoned_within_sl" => count(&format!("{ABANDONED_SQL} AND {within}")),
        "short_abandoned" => count(&format!("{ABANDONED_SQL} AND {short}")),
        "short_abandoned_within_sl" => count(&format!("{ABANDONED_SQL} AND {short} AND {within}")),
        "answered_wait_ms" => sum("coalesce(i.wait_ms, 0)", ANSWERED_SQL),
        "handled_talk_ms" => sum("i.talk_ms", &handled),
        "handled_hold_ms" => sum("i.hold_ms", &handled),
        "handled_wrap_ms" => sum("i.wrap_ms", &handled),
        "max_wait_ms" => format!("max(coalesce(i.wait_ms, 0)) FILTER (WHERE {ANSWERED_SQL} OR {ABANDONED_SQL})"),
        "human_answered" => count("i.direction = 'OUTBOUND' AND i.answered_by = 'HUMAN'"),
        "machine_answered" => count(MACHINE_PASSED_SQL),
        "machine_detected" => count(MACHINE_DETECTED_SQL),
        "drops" => count(&format!("i.direction = 'OUTBOUND' AND {ABANDONED_SQL}")),
        "contacts" => count("i.direction = 'OUTBOUND' AND d.contact"),
        "successes" => count("i.direction = 'OUTBOUND' AND d.success"),
        _ => "NULL::int8".to_owned(),
    }
}

/// [`ALL_KEY`] as an SQL literal. Conditions on `campaign_key = ALL` spell it out rather than
/// bind it, so the planner can always match the partial covering index of the agent and
/// organization levels (migration 9), in generic plans of prepared statements too.
macro_rules! all_key_sql {
    () => {
        "'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid"
    };
}

/// The agent-time columns of each rollup row `k` as stored.
const AGENT_TIME_STORED: &str = "k.on_call_us, k.wrap_up_us, k.available_us, k.logged_in_us";
/// The four agent-time measures summed over agent-time rollup rows `k`.
const AGENT_TIME_SUMS: &str = "sum(k.on_call_us)::int8 AS on_call_us, sum(k.wrap_up_us)::int8 AS wrap_up_us,
    sum(k.available_us)::int8 AS available_us, sum(k.logged_in_us)::int8 AS logged_in_us";

#[derive(QueryableByName)]
struct AgentTimeColumns {
    #[diesel(sql_type = BigInt)]
    on_call_us: i64,
    #[diesel(sql_type = BigInt)]
    wrap_up_us: i64,
    #[diesel(sql_type = BigInt)]
    available_us: i64,
    #[diesel(sql_type = BigInt)]
    logged_in_us: i64,
}

impl From<AgentTimeColumns> for AgentTime {
    fn from(c: AgentTimeColumns) -> Self {
        AgentTime {
            on_call_us: c.on_call_us,
            wrap_up_us: c.wrap_up_us,
            available_us: c.available_us,
            logged_in_us: c.logged_in_us,
        }
    }
}

/// Planner settings for the KPI reads of the current transaction (`SET LOCAL`: they end with
/// it). The time windows are bound as arrays, so the planner cannot estimate how many rows a
/// window selects nor how many groups an expression over them makes. Measured on months of
/// history: (1) it would estimate a raw edge of a few minutes at a million calls and scan the
/// whole table in parallel (6 s) instead of the `(organization, offered_at)` index (1 ms) —
/// hence no sequential scans; every read here is bounded by organization and time and has an
/// index for it; (2) it would sort hundreds of thousands of rollup rows to group them where
/// hashing the few groups in memory is several times faster — hence no sorts. (3) Statements
/// kept prepared ([`CachedSql`]) are planned for their actual windows every time: after five
/// runs PostgreSQL may switch to a generic plan, which for a 30-day summary took 8 s instead of
/// 5 ms — hence custom plans only.
pub async fn tune_kpi_reads(conn: &mut AsyncPgConnection) -> AppResult<()> {
    use diesel_async::SimpleAsyncConnection;
    conn.batch_execute(
        "SET LOCAL work_mem = '64MB'; SET LOCAL enable_sort = off; SET LOCAL enable_incremental_sort = off;
         SET LOCAL enable_seqscan = off; SET LOCAL plan_cache_mode = force_custom_plan",
    )
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Grouped aggregates: per-agent and per-campaign views and ad-hoc analytics. Each source
// (rollup or raw, calls or agent time) answers every group of a request in ONE statement.

/// Time grouping: every instant of an interval falls in one slot (`starts` sorted ascending,
/// the first at the interval's start); `classes[i]` is the group of slot `i` (a local date, an
/// hour of day, a bucket… as the caller defines it). Rows carry the class, so any number of
/// slots collapses into as few groups as there are classes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeSlots {
    pub starts: Vec<DateTime<Utc>>,
    pub classes: Vec<i32>,
}

/// What a grouped query groups by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupSpec {
    pub campaign: bool,
    pub agent: bool,
    pub direction: bool,
    /// Rollup reads then come from the disposition rollups, which keep the
    /// [`DISPOSITION_COUNTERS`] only: a read of other counters per disposition is refused.
    pub disposition: bool,
    pub time: Option<TimeSlots>,
}

/// The keys of one group; a dimension that is not grouped by is `None`. "No campaign", "no
/// agent" and "no disposition" are [`NONE_KEY`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct GroupKey {
    pub campaign: Option<Uuid>,
    pub agent: Option<Uuid>,
    pub direction: Option<String>,
    pub disposition: Option<Uuid>,
    pub time_class: Option<i32>,
}

/// A grouped query: the scope, the grouping, and the keys the rollup level may hold.
#[derive(Debug, Clone, Copy)]
pub struct GroupedQuery<'a> {
    pub scope: &'a Scope,
    pub group: &'a GroupSpec,
    /// Used when the scope names no agents: the tenant's agent ids (plus [`NONE_KEY`] when calls
    /// no agent took should count). Bound as `agent_key = ANY(…)`, so the agent level is read
    /// through the `(organization_id, agent_key, hour)` index rather than by scanning the tenant.
    pub agent_keys: &'a [Uuid],
    /// Likewise the tenant's campaign ids (plus [`NONE_KEY`]) for the campaign level.
    pub campaign_keys: &'a [Uuid],
    /// The call counters to compute.
    pub counters: CounterMask,
}

/// Whole UTC hours `[start, end)` answered from the rollups, except `excluded_hours` (hours the
/// caller answers from raw facts because a time-group boundary falls inside them).
#[derive(Debug, Clone, Copy)]
pub struct RollupRange<'a> {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub excluded_hours: &'a [DateTime<Utc>],
}

/// Whole local days answered from the daily rollups (`kpi_daily`, `kpi_agent_time_daily`),
/// consecutive from `start` to `end`. Each day is exactly the UTC hours from its local midnight
/// to the next, which is what a daily row sums (migration `daily_rollups`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaySpan {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The local dates, in order, with the instant each starts.
    pub days: Vec<(NaiveDate, DateTime<Utc>)>,
}

/// The part of an interval one grouped rollup statement reads.
#[derive(Debug, Clone, Copy)]
pub enum RollupSlice<'a> {
    /// Whole hours of `kpi_hourly` / `kpi_agent_time_hourly`.
    Hours(RollupRange<'a>),
    /// Whole local days of `kpi_daily` / `kpi_agent_time_daily`.
    Days(&'a DaySpan),
}

impl RollupSlice<'_> {
    fn is_empty(&self) -> bool {
        match self {
            RollupSlice::Hours(range) => range.start >= range.end,
            RollupSlice::Days(span) => span.days.is_empty(),
        }
    }

    /// The bounds bound as `$2`, `$3`, `$4` (the hour range and its excluded hours; unused, but
    /// still typed, for days).
    fn hour_params(&self) -> (DateTime<Utc>, DateTime<Utc>, Vec<DateTime<Utc>>) {
        match self {
            RollupSlice::Hours(range) => (range.start, range.end, range.excluded_hours.to_vec()),
            RollupSlice::Days(span) => (span.start, span.end, Vec::new()),
        }
    }

    /// The days and the time class of each, for the day parameters (empty for hours). A day
    /// never straddles a time slot (the planner only uses days no slot boundary cuts), so its
    /// class is the class of the slot its first instant falls in.
    fn day_params(&self, group: &GroupSpec) -> (Vec<NaiveDate>, Vec<i32>) {
        let RollupSlice::Days(span) = self else {
            return (Vec::new(), Vec::new());
        };
        span.days
            .iter()
            .map(|(date, start)| {
                let class = group.time.as_ref().map_or(0, |slots| {
                    let i = slots.starts.partition_point(|s| s <= start);
                    i.checked_sub(1)
                        .and_then(|i| slots.classes.get(i))
                        .copied()
                        .unwrap_or(0)
                });
                (*date, class)
            })
            .unzip()
    }

    /// Whether the statement sums its rows per group (hours) or returns them as stored, to be
    /// added up by the caller (days). A daily read is close to one row per group (an agent × day
    /// is one row per direction), and PostgreSQL's hash aggregation costs about 2.5 µs per group
    /// (≈ 28 ms for a month of 500 agents, against ≈ 7 ms to read the rows); hourly reads fold
    /// ~24 rows into each group and stay in SQL.
    fn sums_in_sql(&self) -> bool {
        matches!(self, RollupSlice::Hours(_))
    }

    /// FROM and WHERE of a grouped read of `hourly` or `daily` (alias `k`), with the time
    /// column (hours) or class column (days) that decides a row's time slot.
    fn source_sql(&self, hourly: &str, daily: &str, days: &str, classes: &str) -> (String, TimeKey) {
        match self {
            RollupSlice::Hours(_) => (
                format!(
                    "{hourly} k WHERE k.organization_id = $1 AND k.hour >= $2 AND k.hour < $3 \
                     AND k.hour <> ALL($4::timestamptz[])"
                ),
                TimeKey::Instant("k.hour"),
            ),
            // The days are consecutive: a range on `day` (an index range per key) and the
            // class of a row by its offset from the first day.
            RollupSlice::Days(_) => (
                format!(
                    "{daily} k WHERE k.organization_id = $1 AND k.day >= ({days}::date[])[1] \
                     AND k.day <= ({days}::date[])[cardinality({days}::date[])]"
                ),
                TimeKey::Class(format!("({classes}::int4[])[k.day - ({days}::date[])[1] + 1]")),
            ),
        }
    }
}

/// How a grouped statement finds a row's time class.
#[derive(Debug, Clone)]
enum TimeKey {
    /// An instant, mapped to its slot's class with `width_bucket`.
    Instant(&'static str),
    /// An expression giving the class itself.
    Class(String),
}

/// The level of `kpi_hourly` (and of the disposition rollups) a read uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallLevel {
    /// (campaign, agent) cells.
    Cells,
    /// (ALL, agent).
    Agents,
    /// (campaign, ALL).
    Campaigns,
    /// (ALL, ALL).
    Organization,
}

impl CallLevel {
    /// The level with the fewest rows for a read that filters or groups by agent and/or by
    /// campaign: the one place that decides it, for summaries and grouped reads alike.
    fn answering(by_agent: bool, by_campaign: bool) -> CallLevel {
        match (by_agent, by_campaign) {
            (true, true) => CallLevel::Cells,
            (true, false) => CallLevel::Agents,
            (false, true) => CallLevel::Campaigns,
            (false, false) => CallLevel::Organization,
        }
    }
}

impl GroupedQuery<'_> {
    fn call_level(&self) -> CallLevel {
        CallLevel::answering(
            self.group.agent || self.scope.agent_ids.is_some(),
            self.group.campaign || self.scope.campaign_ids.is_some(),
        )
    }

    fn agent_level_keys(&self) -> Vec<Uuid> {
        self.scope.agent_ids.clone().unwrap_or_else(|| self.agent_keys.to_vec())
    }

    /// The keys bound as `$5` of a grouped call rollup read.
    fn call_level_keys(&self) -> Vec<Uuid> {
        match self.call_level() {
            CallLevel::Cells | CallLevel::Agents => self.agent_level_keys(),
            CallLevel::Campaigns => self
                .scope
                .campaign_ids
                .clone()
                .unwrap_or_else(|| self.campaign_keys.to_vec()),
            CallLevel::Organization => Vec::new(),
        }
    }
}

/// The level condition of a grouped call rollup read ($5 level keys, $6 campaign filter, $10 ALL).
fn grouped_level_condition(level: CallLevel) -> &'static str {
    match level {
        CallLevel::Cells => {
            "k.agent_key = ANY($5) AND k.campaign_key <> $10 AND ($6::uuid[] IS NULL OR k.campaign_key = ANY($6))"
        }
        CallLevel::Agents => concat!("k.agent_key = ANY($5) AND k.campaign_key = ", all_key_sql!()),
        CallLevel::Campaigns => "k.agent_key = $10 AND k.campaign_key = ANY($5)",
        CallLevel::Organization => concat!("k.agent_key = $10 AND k.campaign_key = ", all_key_sql!()),
    }
}

/// The five key columns of a grouped statement; `c.time` decides a row's time slot (an
/// instant mapped through `$starts`/`$classes`, the parameters holding [`TimeSlots`], or a
/// day's class given directly).
fn group_columns(group: &GroupSpec, c: &GroupColumnSql<'_>) -> String {
    let pick = |on: bool, expr: &str, null: &str| if on { expr.to_owned() } else { null.to_owned() };
    let time = match (&group.time, &c.time) {
        (Some(_), TimeKey::Instant(t)) => format!(
            "({classes}::int4[])[width_bucket({t}, {starts}::timestamptz[])]",
            classes = c.classes,
            starts = c.starts
        ),
        (Some(_), TimeKey::Class(class)) => class.clone(),
        (None, _) => "NULL::int4".to_owned(),
    };
    format!(
        "{} AS g_campaign, {} AS g_agent, {} AS g_direction, {} AS g_disposition, {time} AS g_time",
        pick(group.campaign, c.campaign, "NULL::uuid"),
        pick(group.agent, c.agent, "NULL::uuid"),
        pick(group.direction, c.direction, "NULL::text"),
        pick(group.disposition, c.disposition, "NULL::uuid"),
    )
}

struct GroupColumnSql<'a> {
    campaign: &'a str,
    agent: &'a str,
    direction: &'a str,
    disposition: &'a str,
    time: TimeKey,
    starts: &'a str,
    classes: &'a str,
}

#[derive(QueryableByName)]
struct GroupColumns {
    #[diesel(sql_type = Nullable<SqlUuid>)]
    g_campaign: Option<Uuid>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    g_agent: Option<Uuid>,
    #[diesel(sql_type = Nullable<Text>)]
    g_direction: Option<String>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    g_disposition: Option<Uuid>,
    #[diesel(sql_type = Nullable<Int4>)]
    g_time: Option<i32>,
}

impl From<GroupColumns> for GroupKey {
    fn from(g: GroupColumns) -> Self {
        GroupKey {
            campaign: g.g_campaign,
            agent: g.g_agent,
            direction: g.g_direction,
            disposition: g.g_disposition,
            time_class: g.g_time,
        }
    }
}

/// A group's counters ([`counter_array`]): summed per group, or a rollup row as stored.
#[derive(QueryableByName)]
struct GroupedCounterRow {
    #[diesel(embed)]
    key: GroupColumns,
    #[diesel(sql_type = Array<Nullable<BigInt>>)]
    counters: Vec<Option<i64>>,
}

#[derive(QueryableByName)]
struct GroupedStateRow {
    #[diesel(embed)]
    key: GroupColumns,
    #[diesel(sql_type = Text)]
    axis: String,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = BigInt)]
    us: i64,
}

#[derive(QueryableByName)]
struct GroupedAgentTimeRow {
    #[diesel(embed)]
    key: GroupColumns,
    #[diesel(embed)]
    time: AgentTimeColumns,
}

fn collect_agent_time(rows: Vec<GroupedStateRow>) -> Vec<(GroupKey, AgentTime)> {
    let mut out: std::collections::BTreeMap<GroupKey, AgentTime> = std::collections::BTreeMap::new();
    for row in rows {
        out.entry(row.key.into())
            .or_default()
            .add_state(&row.axis, &row.state, row.us);
    }
    out.into_iter().collect()
}

fn time_slot_arrays(group: &GroupSpec) -> (Vec<DateTime<Utc>>, Vec<i32>) {
    group
        .time
        .as_ref()
        .map(|t| (t.starts.clone(), t.classes.clone()))
        .unwrap_or_default()
}

/// Call counters per group from `kpi_hourly` (whole hours) or `kpi_daily` (whole local days),
/// in one statement. A key may come more than once (daily rows are not summed in SQL, see
/// [`RollupSlice::sums_in_sql`]): callers add the counters of equal keys.
pub async fn grouped_rollup_counters(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    query: GroupedQuery<'_>,
    slice: RollupSlice<'_>,
) -> AppResult<Vec<(GroupKey, Counters)>> {
    if slice.is_empty() {
        return Ok(Vec::new());
    }
    // Per disposition, the disposition rollups answer: every counter they keep is read (one
    // statement text, kept prepared), the others read as 0.
    let (hourly, daily, disposition, counters) = if query.group.disposition {
        let kept = CounterMask::per_disposition();
        if !query.counters.within(kept) {
            return Err(crate::error::AppError::internal(format!(
                "the disposition rollups keep only {}",
                DISPOSITION_COUNTERS.join(", ")
            )));
        }
        (
            "kpi_hourly_disposition",
            "kpi_daily_disposition",
            "k.disposition_id",
            kept,
        )
    } else {
        ("kpi_hourly", "kpi_daily", "NULL::uuid", query.counters)
    };
    let query = GroupedQuery { counters, ..query };
    let (source, time) = slice.source_sql(hourly, daily, "$11", "$12");
    let keys = group_columns(
        query.group,
        &GroupColumnSql {
            campaign: "k.campaign_key",
            agent: "k.agent_key",
            direction: "k.direction",
            disposition,
            time,
            starts: "$8",
            classes: "$9",
        },
    );
    let (columns, group_by) = if slice.sums_in_sql() {
        (rollup_counter_columns(query.counters), "GROUP BY 1, 2, 3, 4, 5")
    } else {
        (stored_counter_array(query.counters), "")
    };
    let sql = format!(
        "SELECT {keys}, {columns}
         FROM {source}
           AND {} AND ($7::text IS NULL OR k.direction = $7)
         {group_by}",
        grouped_level_condition(query.call_level())
    );
    let (starts, classes) = time_slot_arrays(query.group);
    let (start, end, excluded) = slice.hour_params();
    let (days, day_classes) = slice.day_params(query.group);
    let statement = diesel::sql_query(sql)
        .bind::<SqlUuid, _>(tenant.org_id())
        .bind::<Timestamptz, _>(start)
        .bind::<Timestamptz, _>(end)
        .bind::<Array<Timestamptz>, _>(excluded)
        .bind::<Array<SqlUuid>, _>(query.call_level_keys())
        .bind::<Nullable<Array<SqlUuid>>, _>(query.scope.campaign_ids.as_ref())
        .bind::<Nullable<Text>, _>(query.scope.direction.map(Direction::as_str))
        .bind::<Array<Timestamptz>, _>(starts)
        .bind::<Array<Int4>, _>(classes)
        .bind::<SqlUuid, _>(ALL_KEY)
        .bind::<Array<Date>, _>(days)
        .bind::<Array<Int4>, _>(day_classes);
    let rows: Vec<GroupedCounterRow> = if query.counters.is_bounded_text() {
        CachedSql(statement).load(conn).await?
    } else {
        statement.load(conn).await?
    };
    Ok(rows
        .into_iter()
        .map(|r| (r.key.into(), counters_from_array(&r.counters)))
        .collect())
}

/// Call counters per group computed from `interactions` over `windows` (disjoint), by the
/// writer's counting rules, in one statement.
pub async fn grouped_raw_counters(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    query: GroupedQuery<'_>,
    windows: &[(DateTime<Utc>, DateTime<Utc>)],
) -> AppResult<Vec<(GroupKey, Counters)>> {
    if windows.is_empty() {
        return Ok(Vec::new());
    }
    let keys = group_columns(
        query.group,
        &GroupColumnSql {
            campaign: "coalesce(i.campaign_id, $9)",
            agent: "coalesce(i.agent_id, $9)",
            direction: "i.direction",
            disposition: "coalesce(i.disposition_id, $9)",
            time: TimeKey::Instant("i.offered_at"),
            starts: "$7",
            classes: "$8",
        },
    );
    let sql = format!(
        "SELECT {keys}, {}
         FROM unnest($2::timestamptz[], $3::timestamptz[]) AS w(s, e)
         JOIN interactions i ON i.organization_id = $1 AND i.offered_at >= w.s AND i.offered_at < w.e
         JOIN business_settings bs ON bs.organization_id = $1
         LEFT JOIN campaigns cp ON cp.id = i.campaign_id
         LEFT JOIN dispositions d ON d.id = i.disposition_id
         WHERE ($4::uuid[] IS NULL OR i.campaign_id = ANY($4))
           AND ($5::uuid[] IS NULL OR i.agent_id = ANY($5))
           AND ($6::text IS NULL OR i.direction = $6)
         GROUP BY 1, 2, 3, 4, 5",
        raw_counter_columns(query.counters)
    );
    let (window_starts, window_ends): (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) = windows.iter().copied().unzip();
    let (starts, classes) = time_slot_arrays(query.group);
    let statement = diesel::sql_query(sql)
        .bind::<SqlUuid, _>(tenant.org_id())
        .bind::<Array<Timestamptz>, _>(window_starts)
        .bind::<Array<Timestamptz>, _>(window_ends)
        .bind::<Nullable<Array<SqlUuid>>, _>(query.scope.campaign_ids.as_ref())
        .bind::<Nullable<Array<SqlUuid>>, _>(query.scope.agent_ids.as_ref())
        .bind::<Nullable<Text>, _>(query.scope.direction.map(Direction::as_str))
        .bind::<Array<Timestamptz>, _>(starts)
        .bind::<Array<Int4>, _>(classes)
        .bind::<SqlUuid, _>(NONE_KEY);
    let rows: Vec<GroupedCounterRow> = if query.counters.is_bounded_text() {
        CachedSql(statement).load(conn).await?
    } else {
        statement.load(conn).await?
    };
    Ok(rows
        .into_iter()
        .map(|r| (r.key.into(), counters_from_array(&r.counters)))
        .collect())
}

/// Agent time per group (agent and time keys only: agent time belongs to no campaign,
/// direction or disposition) from `kpi_agent_time_hourly` (whole hours) or
/// `kpi_agent_time_daily` (whole local days), in one statement; a key may come more than once,
/// as in [`grouped_rollup_counters`].
pub async fn grouped_rollup_agent_time(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    query: GroupedQuery<'_>,
    slice: RollupSlice<'_>,
) -> AppResult<Vec<(GroupKey, AgentTime)>> {
    if slice.is_empty() {
        return Ok(Vec::new());
    }
    let group = GroupSpec {
        agent: query.group.agent,
        time: query.group.time.clone(),
        ..GroupSpec::default()
    };
    let (source, time) = slice.source_sql("kpi_agent_time_hourly", "kpi_agent_time_daily", "$9", "$10");
    let keys = group_columns(
        &group,
        &GroupColumnSql {
            campaign: "NULL::uuid",
            agent: "k.agent_key",
            direction: "NULL::text",
            disposition: "NULL::uuid",
            time,
            starts: "$6",
            classes: "$7",
        },
    );
    let by_agent = query.group.agent || query.scope.agent_ids.is_some();
    let level = if by_agent {
        "k.agent_key = ANY($5)"
    } else {
        "k.agent_key = $8"
    };
    let (columns, group_by) = if slice.sums_in_sql() {
        (AGENT_TIME_SUMS, "GROUP BY 1, 2, 3, 4, 5")
    } else {
        (AGENT_TIME_STORED, "")
    };
    let sql = format!(
        "SELECT {keys}, {columns}
         FROM {source} AND {level}
         {group_by}"
    );
    let (starts, classes) = time_slot_arrays(query.group);
    let (start, end, excluded) = slice.hour_params();
    let (days, day_classes) = slice.day_params(query.group);
    // Agent-time statements have a few shapes only (grouping by agent or not, hours or days).
    let rows: Vec<GroupedAgentTimeRow> = CachedSql(
        diesel::sql_query(sql)
            .bind::<SqlUuid, _>(tenant.org_id())
            .bind::<Timestamptz, _>(start)
            .bind::<Timestamptz, _>(end)
            .bind::<Array<Timestamptz>, _>(excluded)
            .bind::<Array<SqlUuid>, _>(if by_agent { query.agent_level_keys() } else { Vec::new() })
            .bind::<Array<Timestamptz>, _>(starts)
            .bind::<Array<Int4>, _>(classes)
            .bind::<SqlUuid, _>(ALL_KEY)
            .bind::<Array<Date>, _>(days)
            .bind::<Array<Int4>, _>(day_classes),
    )
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.key.into(), r.time.into())).collect())
}

/// Agent time per group from closed `agent_state_log` intervals clipped to `windows`. A
/// window's time slot is that of its start: the caller splits windows at slot boundaries.
pub async fn grouped_raw_agent_time(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    query: GroupedQuery<'_>,
    windows: &[(DateTime<Utc>, DateTime<Utc>)],
) -> AppResult<Vec<(GroupKey, AgentTime)>> {
    if windows.is_empty() {
        return Ok(Vec::new());
    }
    let group = GroupSpec {
        agent: query.group.agent,
        time: query.group.time.clone(),
        ..GroupSpec::default()
    };
    let keys = group_columns(
        &group,
        &GroupColumnSql {
            campaign: "NULL::uuid",
            agent: "l.agent_id",
            direction: "NULL::text",
            disposition: "NULL::uuid",
            time: TimeKey::Instant("w.s"),
            starts: "$5",
            classes: "$6",
        },
    );
    let sql = format!(
        "SELECT {keys}, l.axis, l.state,
                sum((extract(epoch FROM (least(l.ended_at, w.e) - greatest(l.started_at, w.s))) * 1000000)::int8)::int8 AS us
         FROM unnest($2::timestamptz[], $3::timestamptz[]) AS w(s, e)
         JOIN agent_state_periods l ON l.organization_id = $1
              AND l.started_at < w.e AND l.ended_at > w.s
              AND tstzrange(l.started_at, l.ended_at, '[)') && tstzrange(w.s, w.e, '[)')
         WHERE ($4::uuid[] IS NULL OR l.agent_id = ANY($4))
         GROUP BY 1, 2, 3, 4, 5, 6, 7"
    );
    let (window_starts, window_ends): (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) = windows.iter().copied().unzip();
    let (starts, classes) = time_slot_arrays(query.group);
    let rows: Vec<GroupedStateRow> = CachedSql(
        diesel::sql_query(sql)
            .bind::<SqlUuid, _>(tenant.org_id())
            .bind::<Array<Timestamptz>, _>(window_starts)
            .bind::<Array<Timestamptz>, _>(window_ends)
            .bind::<Nullable<Array<SqlUuid>>, _>(query.scope.agent_ids.as_ref())
            .bind::<Array<Timestamptz>, _>(starts)
            .bind::<Array<Int4>, _>(classes),
    )
    .load(conn)
    .await?;
    Ok(collect_agent_time(rows))
}

#[derive(QueryableByName)]
struct DispositionCallsRow {
    #[diesel(sql_type = SqlUuid)]
    disposition_id: Uuid,
    #[diesel(sql_type = BigInt)]
    calls: i64,
}

/// Calls per disposition from `kpi_hourly_disposition` over whole hours (the level follows
/// the scope, as for call counters; grouping fields of `query.group` are ignored). The rows of
/// calls without a disposition ([`NONE_KEY`]) are left out.
pub async fn rollup_disposition_calls(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    query: GroupedQuery<'_>,
    range: RollupRange<'_>,
) -> AppResult<Vec<(Uuid, i64)>> {
    if range.start >= range.end {
        return Ok(Vec::new());
    }
    let group = GroupSpec::default();
    let query = GroupedQuery { group: &group, ..query };
    let sql = format!(
        "SELECT k.disposition_id, sum(k.calls)::int8 AS calls
         FROM kpi_hourly_disposition k
         WHERE k.organization_id = $1 AND k.hour >= $2 AND k.hour < $3 AND k.hour <> ALL($4::timestamptz[])
           AND {} AND ($7::text IS NULL OR k.direction = $7) AND k.disposition_id <> $11
         GROUP BY 1",
        grouped_level_condition(query.call_level())
    );
    let rows: Vec<DispositionCallsRow> = diesel::sql_query(sql)
        .bind::<SqlUuid, _>(tenant.org_id())
        .bind::<Timestamptz, _>(range.start)
        .bind::<Timestamptz, _>(range.end)
        .bind::<Array<Timestamptz>, _>(range.excluded_hours.to_vec())
        .bind::<Array<SqlUuid>, _>(query.call_level_keys())
        .bind::<Nullable<Array<SqlUuid>>, _>(query.scope.campaign_ids.as_ref())
        .bind::<Nullable<Text>, _>(query.scope.direction.map(Direction::as_str))
        .bind::<Array<Timestamptz>, _>(Vec::<DateTime<Utc>>::new())
        .bind::<Array<Int4>, _>(Vec::<i32>::new())
        .bind::<SqlUuid, _>(ALL_KEY)
        .bind::<SqlUuid, _>(NONE_KEY)
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|r| (r.disposition_id, r.calls)).collect())
}

/// Calls per disposition counted from `interactions` over `windows` (disjoint).
pub async fn raw_disposition_calls(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    scope: &Scope,
    windows: &[(DateTime<Utc>, DateTime<Utc>)],
) -> AppResult<Vec<(Uuid, i64)>> {
    if windows.is_empty() {
        return Ok(Vec::new());
    }
    let (window_starts, window_ends): (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) = windows.iter().copied().unzip();
    let rows: Vec<DispositionCallsRow> = diesel::sql_query(
        "SELECT i.disposition_id, count(*)::int8 AS calls
         FROM unnest($2::timestamptz[], $3::timestamptz[]) AS w(s, e)
         JOIN interactions i ON i.organization_id = $1 AND i.offered_at >= w.s AND i.offered_at < w.e
         WHERE i.disposition_id IS NOT NULL
           AND ($4::uuid[] IS NULL OR i.campaign_id = ANY($4))
           AND ($5::uuid[] IS NULL OR i.agent_id = ANY($5))
           AND ($6::text IS NULL OR i.direction = $6)
         GROUP BY 1",
    )
    .bind::<SqlUuid, _>(tenant.org_id())
    .bind::<Array<Timestamptz>, _>(window_starts)
    .bind::<Array<Timestamptz>, _>(window_ends)
    .bind::<Nullable<Array<SqlUuid>>, _>(scope.campaign_ids.as_ref())
    .bind::<Nullable<Array<SqlUuid>>, _>(scope.agent_ids.as_ref())
    .bind::<Nullable<Text>, _>(scope.direction.map(Direction::as_str))
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.disposition_id, r.calls)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_wait_column_is_where_the_columns_say() {
        assert_eq!(COUNTER_COLUMNS[MAX_WAIT_COLUMN], "max_wait_ms");
        assert_eq!(&COUNTER_COLUMNS[..MAX_WAIT_COLUMN], Counters::ADDITIVE);
    }

    #[test]
    fn every_counter_has_a_raw_rule() {
        for column in COUNTER_COLUMNS {
            assert_ne!(raw_counter_sql(column), "NULL::int8", "no raw SQL for {column}");
        }
    }

    #[test]
    fn counters_round_trip_through_their_columns() {
        let values: [i64; COUNTER_COLUMN_COUNT] = std::array::from_fn(|i| i as i64 * 7 + 1);
        let counters = counters_from_columns(values);
        assert_eq!(counters.additive_values()[..], values[..MAX_WAIT_COLUMN]);
        assert_eq!(counters.max_wait_ms, Some(values[MAX_WAIT_COLUMN]));
        let array: Vec<Option<i64>> = values.iter().map(|v| Some(*v)).collect();
        assert_eq!(counters_from_array(&array), counters);
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).map(|d| d.to_utc()).unwrap_or_default()
    }

    #[test]
    fn the_all_key_literal_is_all_key() {
        assert_eq!(all_key_sql!(), format!("'{ALL_KEY}'::uuid"));
    }

    #[test]
    fn windows_split_into_whole_hours_and_edges() {
        let (whole, edges) = whole_hours_and_edges(at("2026-01-01T10:15:00Z"), at("2026-01-01T13:30:00Z"));
        assert_eq!(whole, Some((at("2026-01-01T11:00:00Z"), at("2026-01-01T13:00:00Z"))));
        assert_eq!(
            edges,
            vec![
                (at("2026-01-01T10:15:00Z"), at("2026-01-01T11:00:00Z")),
                (at("2026-01-01T13:00:00Z"), at("2026-01-01T13:30:00Z"))
            ]
        );
        let (whole, edges) = whole_hours_and_edges(at("2026-01-01T10:00:00Z"), at("2026-01-01T12:00:00Z"));
        assert_eq!((whole.is_some(), edges.len()), (true, 0));
        let (whole, edges) = whole_hours_and_edges(at("2026-01-01T10:05:00Z"), at("2026-01-01T10:55:00Z"));
        assert_eq!((whole, edges.len()), (None, 1));
    }
}

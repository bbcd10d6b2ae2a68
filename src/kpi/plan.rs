//! The one KPI planner: every KPI read goes through it, grouped (the views of
//! [`crate::kpi::analytics`]) or not (`kpiSummary`, `kpiSeries`, `liveKpis` through
//! [`aggregate_windows`]). It decides which counters the requested metrics need (probed from the
//! registry), which sources answer `[from, to)` (daily rollups, hourly rollups, raw facts, cut
//! at every boundary of the time dimensions), and runs the grouped reads of
//! [`crate::kpi::query`]. The module doc of [`crate::kpi::analytics`] explains the plan.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::domain::ServiceLevelVariant;
use crate::error::{AppError, AppResult};
use crate::kpi::facts::hour_of;
use crate::kpi::metrics::{MetricDef, ServiceLevelRule};
use crate::kpi::query::{
    self, AgentTime, Aggregates, CounterMask, DaySpan, GroupKey, GroupSpec, GroupedQuery, RollupRange, RollupSlice,
    Scope, TimeSlots,
};
use crate::kpi::time::{self, buckets, Granularity};

pub(super) fn probe_rule() -> ServiceLevelRule {
    ServiceLevelRule {
        threshold_seconds: 20,
        variant: ServiceLevelVariant::AnsweredWithinOverOffered,
        exclude_short_abandons_from_abandon_rate: false,
        exclude_short_abandons_from_service_level: false,
    }
}

/// Whether a metric reads agent time (the state log): such a metric cannot be split by
/// campaign, direction or disposition, which agent time does not belong to.
pub fn uses_agent_time(def: &MetricDef) -> bool {
    let probe = Aggregates {
        agents: AgentTime {
            on_call_us: 3,
            wrap_up_us: 5,
            available_us: 7,
            logged_in_us: 11,
        },
        ..Aggregates::default()
    };
    (def.parts)(&probe, &probe_rule()) != (def.parts)(&Aggregates::default(), &probe_rule())
}

/// Generic, pairwise different counter values to probe the registry's formulas with, in
/// [`query::COUNTER_COLUMNS`] order: every value is a distinct prime times a distinct power of
/// ten apart from the others, so no sum or difference of a few of them cancels out.
pub(super) fn probe_counters() -> [i64; query::COUNTER_COLUMN_COUNT] {
    const PRIMES: [i64; 24] = [
        101, 89, 83, 79, 73, 61, 59, 53, 9_001, 90_007, 8_009, 7_013, 71, 67, 47, 43, 37, 31, 29, 23, 19, 17, 13, 4_019,
    ];
    std::array::from_fn(|i| PRIMES[i % PRIMES.len()] * (1 + i as i64 / PRIMES.len() as i64))
}

/// The call counters the metrics read under `rule`: a counter is needed when changing it alone
/// changes one of the metrics' numerator or denominator (read from the registry, no second
/// list to keep in step).
pub fn counter_mask(defs: &[&MetricDef], rule: &ServiceLevelRule) -> CounterMask {
    let probe = probe_counters();
    let base = Aggregates {
        calls: query::counters_from_columns(probe),
        ..Aggregates::default()
    };
    let mut mask = [false; query::COUNTER_COLUMN_COUNT];
    for (i, needed) in mask.iter_mut().enumerate() {
        let mut values = probe;
        values[i] += 1;
        let changed = Aggregates {
            calls: query::counters_from_columns(values),
            ..base
        };
        *needed = defs.iter().any(|d| (d.parts)(&changed, rule) != (d.parts)(&base, rule));
    }
    CounterMask(mask)
}

/// `mask` plus the evidence-only counter the compliance views report beside the rates.
pub(super) fn with_evidence(mut mask: CounterMask) -> CounterMask {
    if let Some(i) = query::COUNTER_COLUMNS.iter().position(|c| *c == "machine_detected") {
        mask.0[i] = true;
    }
    mask
}

/// Whether a metric reads call counters.
pub fn uses_calls(def: &MetricDef) -> bool {
    counter_mask(&[def], &probe_rule()).0.iter().any(|c| *c)
}

// ---------------------------------------------------------------------------------------------
// Planning: time classes, rollup hours and raw windows.

/// The values a time class stands for; `None` for time dimensions not grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TimeClass {
    pub date: Option<NaiveDate>,
    pub hour_of_day: Option<u32>,
    pub day_of_week: Option<u32>,
    pub bucket: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct TimeDimensions {
    pub date: bool,
    pub hour_of_day: bool,
    pub day_of_week: bool,
    pub granularity: Option<Granularity>,
}

impl TimeDimensions {
    pub(super) fn any(&self) -> bool {
        self.date || self.hour_of_day || self.day_of_week || self.granularity.is_some()
    }
}

/// Slots and classes of the time dimensions over `[from, to)`; `None` without time dimensions.
pub(super) fn time_plan(
    tz: Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    dims: TimeDimensions,
) -> Option<(TimeSlots, Vec<TimeClass>)> {
    if !dims.any() || from >= to {
        return None;
    }
    let mut starts: BTreeSet<DateTime<Utc>> = BTreeSet::new();
    starts.insert(from);
    if dims.date || dims.day_of_week {
        starts.extend(buckets(tz, from, to, Granularity::Day).into_iter().map(|b| b.0));
    }
    if dims.hour_of_day {
        starts.extend(buckets(tz, from, to, Granularity::Hour).into_iter().map(|b| b.0));
    }
    let bucket_list = dims.granularity.map(|g| buckets(tz, from, to, g));
    if let Some(list) = &bucket_list {
        starts.extend(list.iter().map(|b| b.0));
    }
    let mut classes: Vec<TimeClass> = Vec::new();
    let mut class_ids: HashMap<TimeClass, i32> = HashMap::new();
    let mut slots = TimeSlots::default();
    for start in starts {
        let local = start.with_timezone(&tz);
        let class = TimeClass {
            date: dims.date.then(|| local.date_naive()),
            hour_of_day: dims.hour_of_day.then(|| local.hour()),
            day_of_week: dims.day_of_week.then(|| local.weekday().number_from_monday()),
            bucket: bucket_list.as_ref().and_then(|list| {
                let i = list.partition_point(|b| b.0 <= start);
                i.checked_sub(1).and_then(|i| list.get(i)).copied()
            }),
        };
        let next_id = i32::try_from(classes.len()).unwrap_or(i32::MAX);
        let id = *class_ids.entry(class).or_insert_with(|| {
            classes.push(class);
            next_id
        });
        slots.starts.push(start);
        slots.classes.push(id);
    }
    Some((slots, classes))
}

/// Which parts of an interval come from the rollups and which from raw facts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    pub rollup: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Whole hours inside `rollup` that a time boundary cuts: answered from raw facts.
    pub excluded_hours: Vec<DateTime<Utc>>,
    /// Disjoint raw windows, none crossing a time boundary.
    pub raw: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// Whole local days inside `rollup` answered from the daily rollups instead of its hours
    /// ([`Sources::with_days`]).
    pub days: Option<DaySpan>,
}

impl Sources {
    /// The rollup statements of the plan: the hours of `rollup` — before and after `days`, when
    /// there are days — and the days.
    pub(super) fn rollup_slices(&self) -> Vec<RollupSlice<'_>> {
        let Some((start, end)) = self.rollup else {
            return Vec::new();
        };
        let hours = |start, end| {
            RollupSlice::Hours(RollupRange {
                start,
                end,
                excluded_hours: &self.excluded_hours,
            })
        };
        match &self.days {
            Some(span) => vec![hours(start, span.start), RollupSlice::Days(span), hours(span.end, end)],
            None => vec![hours(start, end)],
        }
    }

    /// How many whole hours the rollups answer (the hours raw facts answer within it included).
    pub(super) fn rollup_hours(&self) -> i64 {
        self.rollup.map_or(0, |(start, end)| (end - start).num_hours())
    }

    /// The whole hours of the plan as one range, for reads that have no daily rollup (calls per
    /// disposition): only for a plan made without [`Sources::with_days`].
    pub(super) fn hour_range(&self) -> Option<RollupRange<'_>> {
        debug_assert!(self.days.is_none(), "a plan with days read as hours");
        self.rollup.map(|(start, end)| RollupRange {
            start,
            end,
            excluded_hours: &self.excluded_hours,
        })
    }

    /// Answers the longest run of whole local days inside the rollup range from the daily
    /// rollups (≈ 24 times fewer rows). A day qualifies when it starts and ends on UTC hours
    /// (so it is exactly the hours a daily row sums: zones with whole-hour offsets, DST days
    /// included) and no time boundary (`boundaries`) and no raw-answered hour falls inside it:
    /// grouping by local hour or by 15-minute or hourly buckets therefore never uses days.
    #[must_use]
    pub fn with_days(mut self, tz: Tz, boundaries: &[DateTime<Utc>]) -> Self {
        let Some((start, end)) = self.rollup else {
            return self;
        };
        let inside = |s: DateTime<Utc>, e: DateTime<Utc>, t: &DateTime<Utc>| s < *t && *t < e;
        let mut best: Vec<(NaiveDate, DateTime<Utc>, DateTime<Utc>)> = Vec::new();
        let mut run: Vec<(NaiveDate, DateTime<Utc>, DateTime<Utc>)> = Vec::new();
        for (date, s, e) in time::whole_days(tz, start, end) {
            let usable = hour_of(s) == s
                && hour_of(e) == e
                && !boundaries.iter().any(|b| inside(s, e, b))
                && !self.excluded_hours.iter().any(|h| s <= *h && *h < e);
            let follows = run.last().is_none_or(|last| last.2 == s);
            if !usable || !follows {
                if run.len() > best.len() {
                    best = std::mem::take(&mut run);
                }
                run.clear();
            }
            if usable {
                run.push((date, s, e));
            }
        }
        if run.len() > best.len() {
            best = run;
        }
        if let (Some(first), Some(last)) = (best.first(), best.last()) {
            self.days = Some(DaySpan {
                start: first.1,
                end: last.2,
                days: best.iter().map(|(date, s, _)| (*date, *s)).collect(),
            });
        }
        self
    }

    /// Total length of the raw windows.
    pub fn raw_span(&self) -> TimeDelta {
        self.raw
            .iter()
            .map(|(s, e)| *e - *s)
            .fold(TimeDelta::zero(), |a, b| a + b)
    }
}

/// Cuts windows at every boundary strictly inside them.
pub(super) fn split_at(
    windows: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    boundaries: &[DateTime<Utc>],
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::with_capacity(windows.len());
    for (start, end) in windows {
        let mut cursor = start;
        let first = boundaries.partition_point(|b| *b <= start);
        for b in boundaries[first..].iter().take_while(|b| **b < end) {
            out.push((cursor, *b));
            cursor = *b;
        }
        out.push((cursor, end));
    }
    out
}

/// Plans the sources of `[from, to)` given the time-slot boundaries; `all_raw` answers
/// everything from raw facts.
pub fn plan_sources(from: DateTime<Utc>, to: DateTime<Utc>, boundaries: &[DateTime<Utc>], all_raw: bool) -> Sources {
    if from >= to {
        return Sources::default();
    }
    if all_raw {
        return Sources {
            rollup: None,
            excluded_hours: Vec::new(),
            raw: split_at(vec![(from, to)], boundaries),
            days: None,
        };
    }
    let (whole, edges) = query::whole_hours_and_edges(from, to);
    let excluded_hours: Vec<DateTime<Utc>> = match whole {
        Some((s, e)) => boundaries
            .iter()
            .filter(|b| hour_of(**b) != **b)
            .map(|b| hour_of(*b))
            .filter(|h| *h >= s && *h < e)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        None => Vec::new(),
    };
    let mut raw: Vec<(DateTime<Utc>, DateTime<Utc>)> = edges;
    raw.extend(excluded_hours.iter().map(|h| (*h, *h + TimeDelta::hours(1))));
    raw.sort();
    let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::with_capacity(raw.len());
    for (s, e) in raw {
        match merged.last_mut() {
            Some(last) if last.1 == s => last.1 = e,
            _ => merged.push((s, e)),
        }
    }
    Sources {
        rollup: whole,
        excluded_hours,
        raw: split_at(merged, boundaries),
        days: None,
    }
}

/// The keys a grouped read may meet, from the tenant's directories.
pub(super) struct LevelKeys {
    pub(super) agents: Vec<Uuid>,
    pub(super) campaigns: Vec<Uuid>,
}

/// One grouped read: what to group, over which sources, and which facts to read.
pub(super) struct GroupRead<'a> {
    pub(super) scope: &'a Scope,
    pub(super) group: &'a GroupSpec,
    pub(super) sources: &'a Sources,
    pub(super) keys: &'a LevelKeys,
    /// The call counters to read (none: no call counters at all).
    pub(super) calls: Option<CounterMask>,
    pub(super) agent_time: bool,
}

impl<'a> GroupRead<'a> {
    pub(super) fn query(&self, counters: CounterMask) -> GroupedQuery<'a> {
        GroupedQuery {
            scope: self.scope,
            group: self.group,
            agent_keys: &self.keys.agents,
            campaign_keys: &self.keys.campaigns,
            counters,
        }
    }

    /// Agent time is keyed by agent and time only: it is read only when the grouping has no
    /// campaign, direction or disposition.
    pub(super) fn reads_agent_time(&self) -> bool {
        self.agent_time && !(self.group.campaign || self.group.direction || self.group.disposition)
    }
}

pub(super) type Groups = BTreeMap<GroupKey, Aggregates>;

/// Call counters per group: rollups for whole hours (or days), raw facts for the rest. Runs
/// inside the caller's transaction (see [`aggregate_groups`]).
async fn read_calls(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    read: &GroupRead<'_>,
    counters: CounterMask,
) -> AppResult<Groups> {
    let q = read.query(counters);
    let mut out = Groups::new();
    for slice in read.sources.rollup_slices() {
        for (key, c) in query::grouped_rollup_counters(conn, tenant, q, slice).await? {
            out.entry(key).or_default().calls.add(&c);
        }
    }
    for (key, c) in query::grouped_raw_counters(conn, tenant, q, &read.sources.raw).await? {
        out.entry(key).or_default().calls.add(&c);
    }
    Ok(out)
}

/// Agent time per group, like [`read_calls`].
async fn read_agent_time(conn: &mut AsyncPgConnection, tenant: &Tenant, read: &GroupRead<'_>) -> AppResult<Groups> {
    let q = read.query(CounterMask::ALL);
    let mut out = Groups::new();
    for slice in read.sources.rollup_slices() {
        for (key, t) in query::grouped_rollup_agent_time(conn, tenant, q, slice).await? {
            out.entry(key).or_default().agents.add(&t);
        }
    }
    for (key, t) in query::grouped_raw_agent_time(conn, tenant, q, &read.sources.raw).await? {
        out.entry(key).or_default().agents.add(&t);
    }
    Ok(out)
}

/// Sums the aggregates of every group. With a second connection, calls and agent time are
/// read concurrently (they are independent statements, one transaction on each connection);
/// otherwise one after the other in one transaction. Each transaction applies the planner
/// settings of [`query::tune_kpi_reads`], which end with it.
pub(super) async fn aggregate_groups(
    conn: &mut AsyncPgConnection,
    second: Option<&mut AsyncPgConnection>,
    tenant: &Tenant,
    read: GroupRead<'_>,
) -> AppResult<Groups> {
    let with_time = read.reads_agent_time();
    let read = &read;
    let (mut calls, time) = match (read.calls, with_time, second) {
        (Some(mask), true, Some(other)) => tokio::try_join!(
            conn.transaction(async |c| -> AppResult<Groups> {
                query::tune_kpi_reads(c).await?;
                read_calls(c, tenant, read, mask).await
            }),
            other.transaction(async |c| -> AppResult<Groups> {
                query::tune_kpi_reads(c).await?;
                read_agent_time(c, tenant, read).await
            })
        )?,
        (calls, _, _) => {
            conn.transaction(async |c| -> AppResult<(Groups, Groups)> {
                query::tune_kpi_reads(c).await?;
                let calls = match calls {
                    Some(mask) => read_calls(c, tenant, read, mask).await?,
                    None => Groups::new(),
                };
                let time = if with_time {
                    read_agent_time(c, tenant, read).await?
                } else {
                    Groups::new()
                };
                Ok((calls, time))
            })
            .await?
        }
    };
    for (key, t) in time {
        calls.entry(key).or_default().add(&t);
    }
    Ok(calls)
}

/// Up to this many whole hours, an ungrouped read takes them all from the hourly rollups: one
/// rollup statement per source costs less than the three (hours before, days, hours after)
/// that the daily rollups take, although it reads ~24 times more rows. Measured with
/// `kpi_bench` on 10M calls: the 30-day `kpiSummary` (≈ 720 hours) read 28 local days from the
/// daily rollups in 4.2–5.3 ms (planner alone) against 2.8–3.4 ms for one hourly statement.
/// Grouped views keep the days: they read one row per group and day instead of 24.
const HOURS_BEFORE_DAILY_ROLLUPS_PAY: i64 = 24 * 62;

/// Which facts answer [`aggregate_windows`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sourcing {
    /// The plan: daily rollups for whole local days of the organization's zone, hourly rollups
    /// for the other whole hours, raw facts for the rest.
    Planned(Tz),
    /// Raw facts only (calls and the state log): the definitions the rollups must equal, read
    /// by the exactness tests and timed as the benchmark's baseline.
    RawOnly,
    /// Hourly rollups only, for windows on whole UTC hours (the exactness tests check the
    /// rollups alone); a window bound inside an hour is refused.
    HourlyRollupsOnly,
}

/// The aggregates of each window (in order), through the same planner as the grouped views:
/// `kpiSummary` is one window, `kpiSeries` one per bucket, `liveKpis` three that overlap (the
/// day so far, the last hour, the last quarter hour). The windows are cut at every window's
/// bounds into disjoint segments, the segments are the time slots of ONE ungrouped read (two
/// to six statements in one transaction, whatever the number of windows), and each window is
/// the sum of the segments it covers.
pub async fn aggregate_windows(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    windows: &[(DateTime<Utc>, DateTime<Utc>)],
    scope: &Scope,
    sourcing: Sourcing,
) -> AppResult<Vec<Aggregates>> {
    let bounds = segment_bounds(windows);
    let (Some(first), Some(last)) = (bounds.first().copied(), bounds.last().copied()) else {
        return Ok(vec![Aggregates::default(); windows.len()]);
    };
    let starts = bounds[..bounds.len() - 1].to_vec();
    let sources = match sourcing {
        Sourcing::Planned(tz) => {
            let sources = plan_sources(first, last, &starts, false);
            if sources.rollup_hours() > HOURS_BEFORE_DAILY_ROLLUPS_PAY {
                sources.with_days(tz, &starts)
            } else {
                sources
            }
        }
        Sourcing::RawOnly => plan_sources(first, last, &starts, true),
        Sourcing::HourlyRollupsOnly => {
            if bounds.iter().any(|b| hour_of(*b) != *b) {
                return Err(AppError::internal("hourly rollups answer whole UTC hours only"));
            }
            Sources {
                rollup: Some((first, last)),
                ..Sources::default()
            }
        }
    };
    let segments = starts.len();
    let group = GroupSpec {
        time: Some(TimeSlots {
            classes: (0..segments).map(|i| i32::try_from(i).unwrap_or(i32::MAX)).collect(),
            starts,
        }),
        ..GroupSpec::default()
    };
    let read = GroupRead {
        scope,
        group: &group,
        sources: &sources,
        // An ungrouped read takes its rollup level's keys from the scope.
        keys: &LevelKeys {
            agents: Vec::new(),
            campaigns: Vec::new(),
        },
        calls: Some(CounterMask::ALL),
        agent_time: true,
    };
    let mut per_segment = vec![Aggregates::default(); segments];
    for (key, aggregates) in aggregate_groups(conn, None, tenant, read).await? {
        if let Some(segment) = key.time_class.and_then(|c| usize::try_from(c).ok()) {
            if let Some(slot) = per_segment.get_mut(segment) {
                slot.add(&aggregates);
            }
        }
    }
    Ok(windows
        .iter()
        .map(|(from, to)| {
            let mut sum = Aggregates::default();
            for segment in &per_segment[covered_segments(&bounds, *from, *to)] {
                sum.add(segment);
            }
            sum
        })
        .collect())
}

/// The bounds of the disjoint segments the windows cut each other into: every bound of every
/// non-empty window, sorted; segment `i` is `[bounds[i], bounds[i + 1])`.
fn segment_bounds(windows: &[(DateTime<Utc>, DateTime<Utc>)]) -> Vec<DateTime<Utc>> {
    let mut bounds: Vec<DateTime<Utc>> = windows
        .iter()
        .filter(|(from, to)| from < to)
        .flat_map(|(from, to)| [*from, *to])
        .collect();
    bounds.sort();
    bounds.dedup();
    bounds
}

/// The segments (of [`segment_bounds`]) that make up `[from, to)`; none for an empty window.
fn covered_segments(bounds: &[DateTime<Utc>], from: DateTime<Utc>, to: DateTime<Utc>) -> std::ops::Range<usize> {
    if from >= to {
        return 0..0;
    }
    bounds.partition_point(|b| *b < from)..bounds.partition_point(|b| *b < to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kpi::metrics;
    use crate::kpi::metrics::MetricName;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).map(|d| d.to_utc()).unwrap_or_default()
    }

    #[test]
    fn dependencies_are_read_from_the_registry() {
        let agent_time: Vec<&str> = metrics::METRICS
            .iter()
            .filter(|d| uses_agent_time(d))
            .map(|d| d.name)
            .collect();
        assert_eq!(agent_time, vec!["occupancy", "callsPerAgentHour"]);
        let no_calls: Vec<&str> = metrics::METRICS
            .iter()
            .filter(|d| !uses_calls(d))
            .map(|d| d.name)
            .collect();
        assert_eq!(no_calls, vec!["occupancy"]);
    }

    #[test]
    fn overlapping_windows_are_sums_of_disjoint_segments() {
        let t = |m: i64| at("2026-03-10T08:00:00Z") + TimeDelta::minutes(m);
        // The live tiles' shape: the day so far, the last hour, the last quarter hour; plus an
        // empty window and one that ends where another starts.
        let windows = [
            (t(0), t(600)),
            (t(540), t(600)),
            (t(585), t(600)),
            (t(30), t(30)),
            (t(-60), t(0)),
        ];
        let bounds = segment_bounds(&windows);
        assert_eq!(bounds, vec![t(-60), t(0), t(540), t(585), t(600)]);
        let covered: Vec<_> = windows
            .iter()
            .map(|(from, to)| covered_segments(&bounds, *from, *to))
            .collect();
        assert_eq!(covered, vec![1..4, 2..4, 3..4, 0..0, 0..1]);
        // Every segment is inside each window that covers it, and the segments tile the window.
        for ((from, to), range) in windows.iter().zip(covered) {
            if let (Some(first), Some(last)) = (range.clone().next(), range.clone().last()) {
                assert_eq!((bounds[first], bounds[last + 1]), (*from, *to));
            }
        }
        assert!(segment_bounds(&[(t(5), t(5))]).is_empty());
    }

    #[test]
    fn counter_masks_follow_the_formulas() {
        let rule = probe_rule();
        let names = |defs: &[&MetricDef]| -> Vec<&str> {
            let mask = counter_mask(defs, &rule);
            query::COUNTER_COLUMNS
                .iter()
                .zip(mask.0)
                .filter(|(_, on)| *on)
                .map(|(c, _)| *c)
                .collect()
        };
        let def = |m: MetricName| m.def().unwrap_or(&metrics::METRICS[0]);
        assert_eq!(names(&[def(MetricName::Handled)]), ["handled"]);
        assert_eq!(
            names(&[def(MetricName::AverageHandleTime)]),
            ["handled", "handled_talk_ms", "handled_hold_ms", "handled_wrap_ms"]
        );
        assert_eq!(
            names(&[def(MetricName::OutboundAbandonRateUk)]),
            ["human_answered", "machine_answered", "drops"]
        );
        assert_eq!(names(&[def(MetricName::Occupancy)]), Vec::<&str>::new());
        // The service level reads what the organization's variant reads.
        assert_eq!(
            names(&[def(MetricName::ServiceLevel)]),
            ["answered", "abandoned", "answered_within_sl"]
        );
        let short = ServiceLevelRule {
            variant: ServiceLevelVariant::AnsweredWithinOverOfferedExcludingShortAbandons,
            ..rule
        };
        let mask = counter_mask(&[def(MetricName::ServiceLevel)], &short);
        assert!(mask.0[7], "short_abandoned");
        // Every counter serves some metric but the evidence-only machine_detected;
        // abandoned_within_sl only the variants that read it, short_abandoned_within_sl only
        // those that count abandons within T with short abandons excluded.
        let all: Vec<&MetricDef> = metrics::METRICS.iter().collect();
        let all_but = |names: &[&str]| {
            let mut mask = CounterMask::ALL;
            for name in names {
                let i = query::COUNTER_COLUMNS
                    .iter()
                    .position(|c| c == name)
                    .unwrap_or(usize::MAX);
                mask.0[i] = false;
            }
            mask
        };
        assert_eq!(
            counter_mask(&all, &short),
            all_but(&["abandoned_within_sl", "machine_detected", "short_abandoned_within_sl"])
        );
        let within = ServiceLevelRule {
            variant: ServiceLevelVariant::AnsweredAndAbandonedWithinOverOffered,
            ..rule
        };
        assert_eq!(
            counter_mask(&all, &within),
            all_but(&["machine_detected", "short_abandoned_within_sl"])
        );
        let within_excluding_short = ServiceLevelRule {
            exclude_short_abandons_from_service_level: true,
            ..within
        };
        assert_eq!(
            counter_mask(&all, &within_excluding_short),
            all_but(&["machine_detected"])
        );
    }

    #[test]
    fn whole_hour_zones_answer_days_from_rollups() {
        let tz: Tz = chrono_tz::Europe::London;
        let (from, to) = (at("2026-03-27T00:00:00Z"), at("2026-03-31T00:00:00Z"));
        let dims = TimeDimensions {
            date: true,
            ..TimeDimensions::default()
        };
        let (slots, classes) = time_plan(tz, from, to, dims).unwrap_or_default();
        // 27 (GMT), 28, 29 (spring forward at 01:00 UTC), 30 (BST from midnight 23:00Z), and the
        // hour of the 31st that starts at 23:00Z on the 30th.
        assert_eq!(slots.starts.len(), 5);
        assert_eq!(slots.starts[4], at("2026-03-30T23:00:00Z"));
        assert_eq!(classes.len(), 5);
        let sources = plan_sources(from, to, &slots.starts, false);
        assert_eq!(sources.rollup, Some((from, to)));
        assert!(sources.excluded_hours.is_empty() && sources.raw.is_empty());
    }

    #[test]
    fn half_hour_zones_read_straddling_hours_raw() {
        let tz: Tz = chrono_tz::Asia::Kolkata; // local midnight = 18:30Z
        let (from, to) = (at("2026-01-05T10:10:00Z"), at("2026-01-07T12:00:00Z"));
        let dims = TimeDimensions {
            date: true,
            ..TimeDimensions::default()
        };
        let (slots, _) = time_plan(tz, from, to, dims).unwrap_or_default();
        assert_eq!(
            slots.starts,
            vec![from, at("2026-01-05T18:30:00Z"), at("2026-01-06T18:30:00Z")]
        );
        let sources = plan_sources(from, to, &slots.starts, false);
        assert_eq!(
            sources.rollup,
            Some((at("2026-01-05T11:00:00Z"), at("2026-01-07T12:00:00Z")))
        );
        assert_eq!(
            sources.excluded_hours,
            vec![at("2026-01-05T18:00:00Z"), at("2026-01-06T18:00:00Z")]
        );
        assert_eq!(
            sources.raw,
            vec![
                (from, at("2026-01-05T11:00:00Z")),
                (at("2026-01-05T18:00:00Z"), at("2026-01-05T18:30:00Z")),
                (at("2026-01-05T18:30:00Z"), at("2026-01-05T19:00:00Z")),
                (at("2026-01-06T18:00:00Z"), at("2026-01-06T18:30:00Z")),
                (at("2026-01-06T18:30:00Z"), at("2026-01-06T19:00:00Z")),
            ]
        );
        assert_eq!(sources.raw_span(), TimeDelta::minutes(50 + 120));
    }

    #[test]
    fn hour_of_day_and_weekday_classes_collapse_slots() {
        let tz: Tz = chrono_tz::America::New_York;
        let (from, to) = (at("2026-01-05T05:00:00Z"), at("2026-01-19T05:00:00Z")); // two local weeks
        let dims = TimeDimensions {
            hour_of_day: true,
            day_of_week: true,
            ..TimeDimensions::default()
        };
        let (slots, classes) = time_plan(tz, from, to, dims).unwrap_or_default();
        assert_eq!(slots.starts.len(), 14 * 24);
        assert_eq!(classes.len(), 7 * 24, "each (weekday, hour) once");
        assert_eq!(
            classes[0],
            TimeClass {
                hour_of_day: Some(0),
                day_of_week: Some(1),
                ..TimeClass::default()
            }
        );
        let all_raw = plan_sources(from, to, &slots.starts, true);
        assert_eq!(all_raw.rollup, None);
        assert_eq!(all_raw.raw.len(), 14 * 24);
    }
}

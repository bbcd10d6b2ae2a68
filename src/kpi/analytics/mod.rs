//! Grouped KPI views over the one metric registry: per-agent and per-campaign performance, the
//! disposition breakdown, outbound-abandonment compliance, and ad-hoc analytics (metrics ×
//! dimensions × interval × granularity) for BI tools.
//!
//! Every view reduces to one planner, [`crate::kpi::plan`] (`aggregate_groups`): the counters of each group are read
//! by a few statements per source — call rollups and agent-time rollups (hours before a run of
//! whole local days, the days, the hours after), raw call edges, raw agent-time edges — never
//! one statement per agent or per campaign; metrics are
//! then evaluated by the registry ([`metrics::evaluate`] / [`metrics::evaluate_one`]) on each
//! group's [`Aggregates`], so a number here equals `kpiSummary` for the same slice.
//!
//! Planning a grouped read over `[from, to)`:
//! * the rollup level is the one holding the keys needed: agent (or team, or an agent filter)
//!   → the (campaign, agent) cells; campaign (or a campaign filter) → (campaign, ALL); else
//!   (ALL, ALL). Direction is a key of every level. Agent time comes from
//!   `kpi_agent_time_hourly` and `kpi_agent_time_daily`, per agent or for ALL.
//! * whole local days (a day that starts and ends on UTC hours, cut by no requested time
//!   boundary) are read from the daily rollups, the hours around them from the hourly ones.
//! * time dimensions (local DATE, HOUR_OF_DAY, DAY_OF_WEEK, granularity buckets) are computed in
//!   Rust with `chrono-tz`, exactly as `kpiSeries` buckets are: the interval is cut into slots at
//!   every boundary of every time dimension (local midnights, local hour starts, bucket starts,
//!   DST included), each slot gets a "time class" (its date, hour, weekday, bucket), and SQL
//!   maps an instant to its class with `width_bucket` over the slot starts. A rollup hour is used
//!   only when no boundary falls inside it: always true for zones whose offset is a whole number
//!   of hours; in zones such as Asia/Kolkata (+05:30) the UTC hours that straddle a local
//!   boundary are answered from the raw facts instead, as are the partial hours at the edges of
//!   the interval. Results are therefore exact in every zone; only their cost differs.
//! * DISPOSITION is answered like the other dimensions, from the disposition rollups
//!   (`kpi_hourly_disposition`, `kpi_daily_disposition`: the same keys and levels plus the
//!   disposition, "none" included) and raw edges. They keep the counters of the Count metrics
//!   ([`crate::kpi::facts::DISPOSITION_COUNTERS`]), the only metrics that may be grouped by it.
//! * Raw reads are costly: a query whose raw part would exceed [`adhoc::MAX_RAW_DAYS`] (15-minute
//!   buckets, local hours of a zone with a fractional offset) is refused with BAD_USER_INPUT
//!   naming the cause.
//!
//! Cost: a month of agent × day reads one daily row per (campaign, agent, day, direction) and
//! per (agent, day) for agent time, plus the hours at the edges. To keep that cheap, a read
//! computes only the counter columns the requested metrics use ([`crate::kpi::plan::counter_mask`], probed from
//! the registry), returns daily rows as stored (one counter array each) and adds them up in
//! Rust, and reads calls and agent time concurrently on two pooled connections when one is
//! free.
//!
//! One file per view: [`performance`] (per agent, per campaign), [`dispositions`],
//! [`compliance`] and [`adhoc`] (the `analytics` query); the planner they share is
//! [`crate::kpi::plan`], which answers `kpiSummary`, `kpiSeries` and `liveKpis` too.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};

use crate::kpi::metrics::{self, ServiceLevelRule};
use crate::kpi::query::Aggregates;
use crate::kpi::WindowValues;

pub mod adhoc;
pub mod compliance;
pub mod dispositions;
pub mod performance;

pub use adhoc::*;
pub use compliance::*;
pub use dispositions::*;
pub use performance::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, async_graphql::Enum, serde::Serialize, serde::Deserialize)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SortDirection {
    #[default]
    Asc,
    Desc,
}

pub(crate) fn window_values(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    rule: ServiceLevelRule,
    a: &Aggregates,
) -> WindowValues {
    WindowValues {
        start: from,
        end: to,
        rule,
        metrics: metrics::evaluate(a, &rule),
        aggregates: *a,
    }
}

/// Orders optional values with `None` last whatever the direction.
pub(crate) fn cmp_nulls_last<T>(
    a: Option<T>,
    b: Option<T>,
    descending: bool,
    cmp: impl Fn(&T, &T) -> Ordering,
) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => {
            let o = cmp(&a, &b);
            if descending {
                o.reverse()
            } else {
                o
            }
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Case-insensitive, then exact; allocation-free, as sorts call it for every comparison.
pub(crate) fn cmp_names(a: &str, b: &str) -> Ordering {
    a.chars()
        .flat_map(char::to_lowercase)
        .cmp(b.chars().flat_map(char::to_lowercase))
        .then_with(|| a.cmp(b))
}

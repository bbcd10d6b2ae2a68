//! The KPI engine: one metric registry, hourly rollups maintained in the same transaction as
//! the facts, and a planner that answers any interval from rollups plus raw edges.
//!
//! The engine owns its SQL: the rollup tables and the statements over facts that must agree
//! with them (in `query`, `facts` and `writer`) are written here, beside the counter
//! definitions they implement, rather than in `db/`.
//!
//! * [`facts`]    — what one call contributes to the rollups (the single definition of answered,
//!   abandoned, handled, within service level… used by the writer AND by the raw SQL);
//! * [`writer`]   — the one entry point through which calls and state intervals are written
//!   (row by row in the caller's transaction, or in bulk with COPY — the demo seed and the
//!   traffic generator of `seed` come through it like ingest);
//! * [`plan`]     — the one planner: which sources (daily and hourly rollups, raw facts at the
//!   edges) answer any set of windows, grouped or not;
//! * [`query`]    — its statements, one per source for every group of a request;
//! * [`metrics`]  — the registry: every KPI formula, with its explanation;
//! * [`time`]     — buckets in the organization's time zone (DST days have 23 or 25 hours).

pub mod analytics;
pub mod facts;
pub mod filter;
pub mod metrics;
pub mod plan;
pub mod query;
pub mod time;
pub mod writer;

use uuid::Uuid;

/// Rollup key of "no campaign" / "no agent".
pub const NONE_KEY: Uuid = Uuid::nil();
/// Rollup key of the level that sums every campaign / every agent.
pub const ALL_KEY: Uuid = Uuid::max();

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use diesel_async::AsyncPgConnection;

use crate::auth::Tenant;
use crate::db::orgs;
use crate::domain::ServiceLevelVariant;
use crate::error::{AppError, AppResult, FieldError};

/// Largest number of buckets one series may return.
pub const MAX_SERIES_BUCKETS: i64 = 2_000;

/// The organization's service-level rule and time zone, as metrics and buckets need them.
pub async fn organization_rule(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
) -> AppResult<(metrics::ServiceLevelRule, Tz)> {
    let org = orgs::get(conn, tenant).await?;
    let settings = orgs::settings(conn, tenant).await?;
    let rule = metrics::ServiceLevelRule {
        threshold_seconds: settings.service_level_threshold_seconds,
        variant: ServiceLevelVariant::from_stored(&settings.service_level_variant)?,
        exclude_short_abandons_from_abandon_rate: settings.exclude_short_abandons_from_abandon_rate,
        exclude_short_abandons_from_service_level: settings.exclude_short_abandons_from_service_level,
    };
    // Stored zones were validated on write; fall back to UTC rather than fail a read.
    let tz = org.timezone.parse::<Tz>().unwrap_or(Tz::UTC);
    Ok((rule, tz))
}

/// One evaluated window: its bounds and every metric of the registry.
#[derive(Debug, Clone)]
pub struct WindowValues {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub rule: metrics::ServiceLevelRule,
    pub metrics: Vec<metrics::Evaluated>,
    /// The counters the metrics were evaluated from (for [`metrics::evidence`]).
    pub aggregates: query::Aggregates,
}

impl WindowValues {
    /// The evaluation of one metric (every metric of the registry is evaluated).
    pub fn metric(&self, metric: metrics::MetricName) -> Option<&metrics::Evaluated> {
        let name = metric.registry_name();
        self.metrics.iter().find(|m| m.name == name)
    }

    /// The value of one metric; `None` when its denominator is 0.
    pub fn value(&self, metric: metrics::MetricName) -> Option<f64> {
        self.metric(metric).and_then(|m| m.value)
    }

    /// The value of a count metric (0 when absent). Counts are whole numbers held in an f64
    /// far below 2^53, so the conversion is exact.
    pub fn count(&self, metric: metrics::MetricName) -> i64 {
        self.value(metric).map_or(0, |v| v as i64)
    }
}

/// Evaluates every metric over each window (they may overlap) of an organization whose zone is
/// `tz` (its local days are the daily rollups'), through the one planner.
pub async fn evaluate_windows(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    (rule, tz): (metrics::ServiceLevelRule, Tz),
    windows: &[(DateTime<Utc>, DateTime<Utc>)],
    scope: &query::Scope,
) -> AppResult<Vec<WindowValues>> {
    let aggregates = plan::aggregate_windows(conn, tenant, windows, scope, plan::Sourcing::Planned(tz)).await?;
    Ok(windows
        .iter()
        .zip(aggregates)
        .map(|((start, end), a)| WindowValues {
            start: *start,
            end: *end,
            rule,
            metrics: metrics::evaluate(&a, &rule),
            aggregates: a,
        })
        .collect())
}

/// `kpiSummary`: every metric over the filter's interval, its ids checked against the tenant
/// (errors name `prefix.*`), and the resolved scope. Dashboard widgets call this same
/// function, so a tile equals the query asked directly.
pub async fn summary(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    prefix: &str,
    raw: &filter::RawFilter,
) -> AppResult<(WindowValues, query::Scope)> {
    let resolved = filter::resolve(conn, tenant, prefix, raw).await?;
    let rule = organization_rule(conn, tenant).await?;
    let mut values = evaluate_windows(conn, tenant, rule, &[(resolved.from, resolved.to)], &resolved.scope).await?;
    let values = values
        .pop()
        .ok_or_else(|| AppError::internal("no summary window evaluated"))?;
    Ok((values, resolved.scope))
}

/// Refuses a series of more than [`MAX_SERIES_BUCKETS`] buckets, naming `field`.
pub fn check_series(
    field: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    granularity: time::Granularity,
) -> AppResult<()> {
    if time::bucket_count_estimate(from, to, granularity) > MAX_SERIES_BUCKETS {
        return Err(AppError::invalid_fields(vec![FieldError::new(
            field,
            format!("the series would have more than {MAX_SERIES_BUCKETS} buckets; use a coarser granularity"),
        )]));
    }
    Ok(())
}

/// `kpiSeries`: every metric per bucket of the organization's zone (returned with the
/// buckets) and the resolved scope. The bucket cap is checked by the caller
/// ([`check_series`]) before it gets here.
pub async fn series(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    prefix: &str,
    raw: &filter::RawFilter,
    granularity: time::Granularity,
) -> AppResult<(Tz, Vec<WindowValues>, query::Scope)> {
    let resolved = filter::resolve(conn, tenant, prefix, raw).await?;
    let (rule, tz) = organization_rule(conn, tenant).await?;
    let windows = time::buckets(tz, resolved.from, resolved.to, granularity);
    let values = evaluate_windows(conn, tenant, (rule, tz), &windows, &resolved.scope).await?;
    Ok((tz, values, resolved.scope))
}

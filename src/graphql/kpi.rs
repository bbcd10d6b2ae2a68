//! KPI queries: `kpiSummary` and `kpiSeries`. Organization KPIs are readable by every role
//! (VIEWER+: wallboards and BI accounts).

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use crate::auth::Permission;
use crate::domain::Direction;
use crate::domain::ServiceLevelVariant;
use crate::graphql::context::{state, tenant_for};
use crate::graphql::guards::PermissionGuard;
use crate::kpi;
use crate::kpi::filter::RawFilter;
use crate::kpi::metrics::{evidence, service_level_excludes_short, MetricName, Unit};
use crate::kpi::time::Granularity;
use crate::kpi::WindowValues;

pub use crate::kpi::MAX_SERIES_BUCKETS;

/// Which calls a KPI covers. Calls count in the interval in which they were OFFERED.
/// Filters combine with AND; team filters use agents' current team.
#[derive(InputObject, Clone)]
pub struct KpiFilter {
    /// Inclusive start.
    pub from: DateTime<Utc>,
    /// Exclusive end; at most 400 days after `from`.
    pub to: DateTime<Utc>,
    pub campaign_ids: Option<Vec<ID>>,
    pub team_ids: Option<Vec<ID>>,
    pub agent_ids: Option<Vec<ID>>,
    pub direction: Option<Direction>,
}

impl KpiFilter {
    pub fn raw(&self) -> RawFilter {
        let ids = |v: &Option<Vec<ID>>| v.as_ref().map(|ids| ids.iter().map(|i| i.0.clone()).collect());
        RawFilter {
            from: self.from,
            to: self.to,
            campaign_ids: ids(&self.campaign_ids),
            team_ids: ids(&self.team_ids),
            agent_ids: ids(&self.agent_ids),
            direction: self.direction,
        }
    }
}

/// How one metric value was computed.
#[derive(SimpleObject)]
pub struct MetricExplanation {
    metric: String,
    unit: Unit,
    value: Option<f64>,
    numerator: f64,
    /// Absent for plain counts.
    denominator: Option<f64>,
    formula: String,
    /// The named counts behind the value, where the formula adjusts them (the outbound
    /// abandon rates: drops, live calls, machine answers passed to agents and those the
    /// dialler's detection hung up on, which are not counted); empty for other metrics.
    evidence: Vec<MetricEvidence>,
}

/// One named count a metric was computed from.
#[derive(SimpleObject)]
pub struct MetricEvidence {
    name: String,
    count: i64,
}

/// Every metric over one interval (a summary, or one bucket of a series). Durations are in
/// seconds, rates in percent (0–100); a ratio whose denominator is 0 is null.
pub struct KpiValues(pub WindowValues);

#[Object(name = "KpiValues")]
impl KpiValues {
    async fn start(&self) -> DateTime<Utc> {
        self.0.start
    }
    async fn end(&self) -> DateTime<Utc> {
        self.0.end
    }
    async fn offered(&self) -> i64 {
        self.0.count(MetricName::Offered)
    }
    async fn answered(&self) -> i64 {
        self.0.count(MetricName::Answered)
    }
    async fn handled(&self) -> i64 {
        self.0.count(MetricName::Handled)
    }
    async fn abandoned(&self) -> i64 {
        self.0.count(MetricName::Abandoned)
    }
    async fn short_abandoned(&self) -> i64 {
        self.0.count(MetricName::ShortAbandoned)
    }
    /// Percent, by the organization's variant and threshold (returned alongside).
    async fn service_level(&self) -> Option<f64> {
        self.0.value(MetricName::ServiceLevel)
    }
    async fn service_level_variant(&self) -> ServiceLevelVariant {
        self.0.rule.variant
    }
    async fn service_level_threshold_seconds(&self) -> i32 {
        self.0.rule.threshold_seconds
    }
    /// Whether `serviceLevel` left short abandons out (by its variant, or by the
    /// organization's `excludeShortAbandonsFromServiceLevel` where the variant leaves it open).
    async fn service_level_excludes_short_abandons(&self) -> bool {
        service_level_excludes_short(&self.0.rule)
    }
    /// Whether `abandonRate` left short abandons out (`excludeShortAbandonsFromAbandonRate`).
    async fn abandon_rate_excludes_short_abandons(&self) -> bool {
        self.0.rule.exclude_short_abandons_from_abandon_rate
    }
    async fn average_speed_of_answer(&self) -> Option<f64> {
        self.0.value(MetricName::AverageSpeedOfAnswer)
    }
    async fn average_handle_time(&self) -> Option<f64> {
        self.0.value(MetricName::AverageHandleTime)
    }
    async fn average_talk_time(&self) -> Option<f64> {
        self.0.value(MetricName::AverageTalkTime)
    }
    async fn average_hold_time(&self) -> Option<f64> {
        self.0.value(MetricName::AverageHoldTime)
    }
    async fn average_wrap_time(&self) -> Option<f64> {
        self.0.value(MetricName::AverageWrapTime)
    }
    async fn abandon_rate(&self) -> Option<f64> {
        self.0.value(MetricName::AbandonRate)
    }
    async fn longest_wait(&self) -> Option<f64> {
        self.0.value(MetricName::LongestWait)
    }
    async fn occupancy(&self) -> Option<f64> {
        self.0.value(MetricName::Occupancy)
    }
    async fn contact_rate(&self) -> Option<f64> {
        self.0.value(MetricName::ContactRate)
    }
    async fn conversion_rate(&self) -> Option<f64> {
        self.0.value(MetricName::ConversionRate)
    }
    async fn calls_per_agent_hour(&self) -> Option<f64> {
        self.0.value(MetricName::CallsPerAgentHour)
    }
    /// UK (Ofcom) outbound abandoned-call rate over this interval, answering-machine adjusted.
    async fn outbound_abandon_rate_uk(&self) -> Option<f64> {
        self.0.value(MetricName::OutboundAbandonRateUk)
    }
    /// US outbound abandonment over this interval: drops / live-answered.
    async fn outbound_abandon_rate_us(&self) -> Option<f64> {
        self.0.value(MetricName::OutboundAbandonRateUs)
    }
    /// Numerator, denominator and formula of every metric, for drill-down.
    async fn explain(&self) -> Vec<MetricExplanation> {
        self.0
            .metrics
            .iter()
            .map(|m| MetricExplanation {
                metric: m.name.to_owned(),
                unit: m.unit,
                value: m.value,
                numerator: m.numerator,
                denominator: m.denominator,
                formula: m.formula.to_owned(),
                evidence: evidence(m.name, &self.0.aggregates)
                    .into_iter()
                    .map(|(name, count)| MetricEvidence {
                        name: name.to_owned(),
                        count,
                    })
                    .collect(),
            })
            .collect()
    }
}

#[derive(SimpleObject)]
pub struct KpiSeries {
    granularity: Granularity,
    /// The organization's IANA zone the buckets follow.
    timezone: String,
    buckets: Vec<KpiValues>,
}

#[derive(Default)]
pub struct KpiQuery;

#[Object]
impl KpiQuery {
    /// Every metric over `filter.from`..`filter.to`.
    #[graphql(guard = "PermissionGuard(Permission::ReadOrganization)")]
    async fn kpi_summary(
        &self,
        ctx: &Context<'_>,
        filter: KpiFilter,
        org_id: Option<ID>,
    ) -> async_graphql::Result<KpiValues> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let (mut conn, _, _) = state(ctx)?.reads.conn(&tenant).await?;
        Ok(KpiValues(
            kpi::summary(&mut conn, &tenant, "filter", &filter.raw()).await?.0,
        ))
    }

    /// Every metric per bucket, buckets in the organization's time zone (a DST day has 23 or 25
    /// hourly buckets); empty buckets are present; the first and last bucket are clipped to the
    /// interval, so additive metrics of the buckets sum to the summary.
    #[graphql(
        guard = "PermissionGuard(Permission::ReadOrganization)",
        complexity = "50 * child_complexity"
    )]
    async fn kpi_series(
        &self,
        ctx: &Context<'_>,
        filter: KpiFilter,
        granularity: Granularity,
        org_id: Option<ID>,
    ) -> async_graphql::Result<KpiSeries> {
        kpi::check_series("granularity", filter.from, filter.to, granularity)?;
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let (mut conn, _, _) = state(ctx)?.reads.conn(&tenant).await?;
        let (tz, values, _) = kpi::series(&mut conn, &tenant, "filter", &filter.raw(), granularity).await?;
        Ok(KpiSeries {
            granularity,
            timezone: tz.name().to_owned(),
            buckets: values.into_iter().map(KpiValues).collect(),
        })
    }
}

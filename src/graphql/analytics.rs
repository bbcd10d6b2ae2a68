//! Performance and analytics views over the metric registry:
//!
//! * `agentPerformance` — one row per agent. AGENT+: an AGENT sees only their own row (none
//!   without an agent profile); SUPERVISOR and above see every agent.
//! * `campaignPerformance`, `dispositionBreakdown`, `analytics` (ad-hoc metrics × dimensions for
//!   BI tools) and `complianceStatus` (outbound abandonment, UK and US) — SUPERVISOR+.
//!
//! Resolvers only read arguments, resolve the tenant and the caller's visibility, call
//! `kpi::analytics`, and convert its results; every number is a registry metric evaluated on
//! grouped aggregates, so it equals `kpiSummary` over the same slice.

use async_graphql::connection::{Connection, Edge};
use async_graphql::resolver_utils::enum_value;
use async_graphql::{ComplexObject, Context, InputObject, Object, ScalarType, SimpleObject, Value, ID};
use chrono::{DateTime, NaiveDate, Utc};

use crate::audit::{Actor, AuditEvent};
use crate::auth::Permission;
use crate::db::contact_centre as cc;
use crate::domain::Direction;
use crate::domain::ServiceLevelVariant;
use crate::error::AppResult;
use crate::graphql::context::{client_addr, principal, request_id, settings, state, tenant_for};
use crate::graphql::guards::PermissionGuard;
use crate::graphql::kpi::{KpiFilter, KpiValues};
use crate::graphql::pagination::{decode_offset, encode_offset, page_size};
use crate::graphql::plain::{PlainList, PlainObject, Selection};
use crate::graphql::DEFAULT_PAGE_SIZE;
use crate::kpi::analytics::{
    self as views, AgentOrder, AgentPerformanceOrderField, AgentVisibility, AnalyticsRequest, ComplianceLevel,
    Dimension, DispositionFlag, OrderTerm, SortDirection,
};
use crate::kpi::filter;
use crate::kpi::metrics::{Evaluated, MetricName, Unit};
use crate::kpi::time::Granularity;

/// A named entity of a KPI row. `id` is null for the "none" group of an analytics dimension
/// (calls without a campaign, an agent, or agents without a team).
#[derive(SimpleObject, Clone)]
pub struct KpiEntity {
    id: Option<ID>,
    name: String,
}

impl From<views::Named> for KpiEntity {
    fn from(n: views::Named) -> Self {
        KpiEntity {
            id: n.id.map(|id| ID(id.to_string())),
            name: n.name,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// agentPerformance

/// One agent's registry metrics over the filter's interval (`metrics` equals `kpiSummary` with
/// `agentIds: [agentId]` and the same filter).
pub struct AgentPerformance(views::AgentPerformanceRow);

#[Object]
impl AgentPerformance {
    async fn agent_id(&self) -> ID {
        ID(self.0.agent.id.to_string())
    }
    async fn display_name(&self) -> &str {
        &self.0.agent.display_name
    }
    /// Inactive agents are listed only when they have activity in the interval.
    async fn active(&self) -> bool {
        self.0.agent.active
    }
    /// The agent's current team.
    async fn team(&self) -> Option<KpiEntity> {
        self.0.agent.team_id.map(|id| KpiEntity {
            id: Some(ID(id.to_string())),
            name: self.0.agent.team_name.clone().unwrap_or_default(),
        })
    }
    async fn metrics(&self) -> KpiValues {
        KpiValues(self.0.values.clone())
    }
}

#[derive(InputObject, Clone, Copy)]
pub struct AgentPerformanceOrder {
    field: AgentPerformanceOrderField,
    /// Null metric values sort last in either direction; ties are ordered by name.
    #[graphql(default)]
    direction: SortDirection,
}

#[derive(SimpleObject)]
pub struct AgentPerformanceTotals {
    /// Rows visible to the caller, whatever the page.
    total_count: i64,
}

pub type AgentPerformanceConnection = Connection<String, AgentPerformance, AgentPerformanceTotals>;

// ---------------------------------------------------------------------------------------------
// campaignPerformance

/// One campaign's registry metrics over the filter's interval. Call metrics equal `kpiSummary`
/// with `campaignIds: [campaignId]`; agent-time metrics (occupancy, calls per agent hour) are
/// null, because agent time belongs to no campaign.
pub struct CampaignPerformance(views::CampaignPerformanceRow);

#[Object]
impl CampaignPerformance {
    async fn campaign_id(&self) -> ID {
        ID(self.0.campaign.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.campaign.name
    }
    async fn direction(&self) -> Direction {
        Direction::parse(&self.0.campaign.direction).unwrap_or(Direction::Inbound)
    }
    /// `ACTIVE`, `PAUSED` or `ARCHIVED`.
    async fn status(&self) -> &str {
        &self.0.campaign.status
    }
    async fn metrics(&self) -> KpiValues {
        KpiValues(self.0.values.clone())
    }
}

// ---------------------------------------------------------------------------------------------
// dispositionBreakdown

/// Calls with one disposition. `share` is the percentage of the dispositioned calls in scope
/// (null when there are none).
#[derive(SimpleObject)]
pub struct DispositionCount {
    disposition_id: ID,
    code: String,
    label: String,
    active: bool,
    human_answered: bool,
    contact: bool,
    success: bool,
    callback: bool,
    do_not_call: bool,
    answering_machine: bool,
    calls: i64,
    share: Option<f64>,
}

/// Calls whose disposition carries one flag, and their share of the dispositioned calls.
#[derive(SimpleObject)]
pub struct DispositionFlagCount {
    flag: DispositionFlag,
    calls: i64,
    share: Option<f64>,
}

/// Calls per disposition and per disposition flag over the filter's interval (calls count in
/// the interval in which they were offered).
#[derive(SimpleObject)]
pub struct DispositionBreakdown {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    /// Calls in scope with a disposition: the denominator of every share.
    dispositioned_calls: i64,
    /// Every disposition of the organization (zero counts included), most frequent first.
    dispositions: Vec<DispositionCount>,
    flags: Vec<DispositionFlagCount>,
}

impl From<views::DispositionBreakdown> for DispositionBreakdown {
    fn from(b: views::DispositionBreakdown) -> Self {
        DispositionBreakdown {
            start: b.start,
            end: b.end,
            dispositioned_calls: b.dispositioned,
            dispositions: b
                .dispositions
                .into_iter()
                .map(|d| DispositionCount {
                    disposition_id: ID(d.disposition.id.to_string()),
                    code: d.disposition.code,
                    label: d.disposition.label,
                    active: d.disposition.active,
                    human_answered: d.disposition.human_answered,
                    contact: d.disposition.contact,
                    success: d.disposition.success,
                    callback: d.disposition.callback,
                    do_not_call: d.disposition.do_not_call,
                    answering_machine: d.disposition.answering_machine,
                    calls: d.calls,
                    share: d.share,
                })
                .collect(),
            flags: b
                .flags
                .into_iter()
                .map(|f| DispositionFlagCount {
                    flag: f.flag,
                    calls: f.calls,
                    share: f.share,
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// complianceStatus

/// Outbound abandonment of one campaign over one rolling window. Rates are percentages.
#[derive(SimpleObject)]
pub struct ComplianceWindow {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    /// Null when the window has no live calls.
    rate: Option<f64>,
    limit: f64,
    /// `limit − rate`; negative in breach; null when `rate` is.
    headroom: Option<f64>,
    status: ComplianceLevel,
    /// Outbound calls answered by a live person with no agent to take them.
    drops: i64,
    /// Live calls connected to an agent (human answered − drops).
    live_calls: i64,
    /// Machine answers passed to an agent: the AM of the UK adjustment.
    machine_answered: i64,
    /// Machine answers the dialler hung up on without connecting them to an agent (answering-
    /// machine detection): evidence only, they do not enter either rate.
    machine_detected: i64,
    human_answered: i64,
    /// The registry's numerator (UK: machine-adjusted drops D'; US: drops) and denominator.
    numerator: f64,
    denominator: Option<f64>,
    formula: String,
}

impl From<views::ComplianceWindow> for ComplianceWindow {
    fn from(w: views::ComplianceWindow) -> Self {
        ComplianceWindow {
            headroom: w.headroom(),
            start: w.start,
            end: w.end,
            rate: w.rate.value,
            limit: w.limit,
            status: w.status,
            drops: w.drops,
            live_calls: w.live,
            machine_answered: w.machine_answered,
            machine_detected: w.machine_detected,
            human_answered: w.human_answered,
            numerator: w.rate.numerator,
            denominator: w.rate.denominator,
            formula: w.rate.formula.to_owned(),
        }
    }
}

/// Outbound abandonment of one OUTBOUND campaign: UK (Ofcom, answering-machine adjusted) over
/// the last 24 hours and US (FTC safe harbour) over the last 30 days, against the campaign's
/// `max_abandon_rate_percent` (3 % when the campaign sets none).
#[derive(SimpleObject)]
pub struct ComplianceStatus {
    campaign_id: ID,
    campaign_name: String,
    limit: f64,
    /// The worse of `uk.status` and `us.status`.
    status: ComplianceLevel,
    /// Rolling 24 hours (now − 24 h .. now).
    uk: ComplianceWindow,
    /// Rolling 30 days (now − 30 days .. now).
    us: ComplianceWindow,
}

impl From<views::ComplianceRow> for ComplianceStatus {
    fn from(r: views::ComplianceRow) -> Self {
        ComplianceStatus {
            status: r.status(),
            campaign_id: ID(r.campaign.id.to_string()),
            campaign_name: r.campaign.name,
            limit: r.limit,
            uk: r.uk.into(),
            us: r.us.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// analytics

/// One ordering term: set exactly one of `metric` (one of the query's metrics), `dimension`
/// (one of its groupBy) or `bucketStart: true` (when it has a granularity).
#[derive(InputObject, Clone, Copy)]
pub struct AnalyticsOrder {
    pub(crate) metric: Option<MetricName>,
    pub(crate) dimension: Option<Dimension>,
    pub(crate) bucket_start: Option<bool>,
    /// Null metric values and "none" groups sort last in either direction.
    #[graphql(default)]
    pub(crate) direction: SortDirection,
}

impl AnalyticsOrder {
    /// The engine's ordering term (saved reports store the same term).
    pub fn term(&self) -> OrderTerm {
        OrderTerm {
            metric: self.metric,
            dimension: self.dimension,
            bucket: self.bucket_start.unwrap_or(false),
            direction: self.direction,
        }
    }
}

/// An ad-hoc aggregate for BI tools: registry metrics per combination of dimension values.
///
/// * `groupBy`: at most 4 dimensions. DATE, HOUR_OF_DAY and DAY_OF_WEEK are in the
///   organization's time zone (DST included); TEAM is the agent's current team; TEAM and AGENT
///   combine. `granularity` adds time buckets (`bucketStart`/`bucketEnd`) as kpiSeries has them.
/// * Refused (BAD_USER_INPUT, naming the field): DISPOSITION with a metric that is not a count;
///   an agent-time metric (occupancy, callsPerAgentHour) grouped by CAMPAIGN, DIRECTION or
///   DISPOSITION; more than 4 dimensions; a limit over 10000; more than 2000 buckets; an
///   interval over 400 days; more than 100000 groups; more than 31 days read from raw calls
///   (15-minute buckets, or local hours/days of a zone whose offset is not whole hours).
///   DISPOSITION is read from rollups over any interval.
/// * Rows are the groups that have data, ordered by `orderBy` then by bucket and the groupBy
///   dimensions; at most `limit` (default 1000) are returned, `totalRows` counts them all.
#[derive(InputObject)]
#[graphql(name = "AnalyticsQuery")]
pub struct AnalyticsQueryInput {
    metrics: Vec<MetricName>,
    #[graphql(default)]
    group_by: Vec<Dimension>,
    filter: KpiFilter,
    granularity: Option<Granularity>,
    #[graphql(default)]
    order_by: Vec<AnalyticsOrder>,
    /// Default 1000, at most 10000.
    limit: Option<i32>,
}

/// A requested metric, with the unit and formula its values use.
#[derive(SimpleObject)]
pub struct AnalyticsMetric {
    name: MetricName,
    unit: Unit,
    formula: String,
}

/// A disposition group; `id` and `code` are null for calls without a disposition.
#[derive(SimpleObject)]
pub struct AnalyticsDisposition {
    id: Option<ID>,
    code: Option<String>,
    label: String,
}

/// The dimension values of a row: the groupBy dimensions are set, the others are null.
#[derive(SimpleObject)]
pub struct AnalyticsDimensions {
    campaign: Option<KpiEntity>,
    agent: Option<KpiEntity>,
    team: Option<KpiEntity>,
    direction: Option<Direction>,
    disposition: Option<AnalyticsDisposition>,
    /// Local date.
    date: Option<NaiveDate>,
    /// Local hour, 0–23.
    hour_of_day: Option<i32>,
    /// ISO weekday: 1 = Monday … 7 = Sunday.
    day_of_week: Option<i32>,
    /// With a granularity: the bucket, clipped to the filter's interval.
    bucket_start: Option<DateTime<Utc>>,
    bucket_end: Option<DateTime<Utc>>,
}

/// One metric's value in a row, with what it was computed from.
#[derive(SimpleObject)]
pub struct AnalyticsValue {
    metric: MetricName,
    /// Seconds, percent (0–100), per hour, or a count, per the metric's unit; null when the
    /// denominator is 0.
    value: Option<f64>,
    numerator: f64,
    denominator: Option<f64>,
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct AnalyticsRow {
    dimensions: AnalyticsDimensions,
    /// What `values` and `explain` are built from, when asked for: results run to 10,000 rows.
    #[graphql(skip)]
    evaluated: Vec<Evaluated>,
}

#[ComplexObject]
impl AnalyticsRow {
    /// One value per requested metric, in the order of `AnalyticsResult.metrics` (a compact,
    /// tabular shape for large results); null where a ratio's denominator is 0.
    async fn values(&self) -> Vec<Option<f64>> {
        self.evaluated.iter().map(|e| e.value).collect()
    }

    /// The same values with their metric, numerator and denominator, for drill-down.
    async fn explain(&self) -> Vec<AnalyticsValue> {
        self.explained()
    }
}

impl AnalyticsRow {
    fn explained(&self) -> Vec<AnalyticsValue> {
        self.evaluated
            .iter()
            .filter_map(|e| MetricName::from_registry_name(e.name).map(|m| analytics_value(m, e)))
            .collect()
    }
}

#[derive(SimpleObject)]
pub struct AnalyticsResult {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    /// The organization's IANA zone of the time dimensions.
    timezone: String,
    service_level_variant: ServiceLevelVariant,
    service_level_threshold_seconds: i32,
    metrics: Vec<AnalyticsMetric>,
    group_by: Vec<Dimension>,
    granularity: Option<Granularity>,
    /// Rows before the limit.
    total_rows: i64,
    /// Whether rows were left out by the limit.
    truncated: bool,
    // Resolved without one future per field (see `graphql::plain`): results run to 10,000 rows
    // of nested objects. A plain comment, so that the schema's description does not change.
    rows: PlainList<AnalyticsRow>,
}

// Plain resolution of the row types; each `field` answers exactly what the derived
// `SimpleObject` would, which `plain_rows_equal_the_derived_resolution` checks field by field.

fn opt_scalar<T: ScalarType>(v: Option<&T>) -> Value {
    v.map_or(Value::Null, ScalarType::to_value)
}

impl PlainObject for KpiEntity {
    const TYPE_NAME: &'static str = "KpiEntity";

    fn field(&self, name: &str, _sub: &Selection) -> Option<Value> {
        Some(match name {
            "id" => opt_scalar(self.id.as_ref()),
            "name" => Value::String(self.name.clone()),
            _ => return None,
        })
    }
}

impl PlainObject for AnalyticsDisposition {
    const TYPE_NAME: &'static str = "AnalyticsDisposition";

    fn field(&self, name: &str, _sub: &Selection) -> Option<Value> {
        Some(match name {
            "id" => opt_scalar(self.id.as_ref()),
            "code" => self.code.clone().map_or(Value::Null, Value::String),
            "label" => Value::String(self.label.clone()),
            _ => return None,
        })
    }
}

impl PlainObject for AnalyticsDimensions {
    const TYPE_NAME: &'static str = "AnalyticsDimensions";

    fn field(&self, name: &str, sub: &Selection) -> Option<Value> {
        Some(match name {
            "campaign" => sub.resolve_opt(self.campaign.as_ref())?,
            "agent" => sub.resolve_opt(self.agent.as_ref())?,
            "team" => sub.resolve_opt(self.team.as_ref())?,
            "direction" => self.direction.map_or(Value::Null, enum_value),
            "disposition" => sub.resolve_opt(self.disposition.as_ref())?,
            "date" => opt_scalar(self.date.as_ref()),
            "hourOfDay" => opt_scalar(self.hour_of_day.as_ref()),
            "dayOfWeek" => opt_scalar(self.day_of_week.as_ref()),
            "bucketStart" => opt_scalar(self.bucket_start.as_ref()),
            "bucketEnd" => opt_scalar(self.bucket_end.as_ref()),

            _ => return None,
        })
    }
}

impl PlainObject for AnalyticsValue {
    const TYPE_NAME: &'static str = "AnalyticsValue";

    fn field(&self, name: &str, _sub: &Selection) -> Option<Value> {
        Some(match name {
            "metric" => enum_value(self.metric),
            "value" => opt_scalar(self.value.as_ref()),
            "numerator" => ScalarType::to_value(&self.numerator),
            "denominator" => opt_scalar(self.denominator.as_ref()),
            _ => return None,
        })
    }
}

impl PlainObject for AnalyticsRow {
    const TYPE_NAME: &'static str = "AnalyticsRow";

    fn field(&self, name: &str, sub: &Selection) -> Option<Value> {
        Some(match name {
            "dimensions" => sub.resolve(&self.dimensions)?,
            "values" => Value::List(self.evaluated.iter().map(|e| opt_scalar(e.value.as_ref())).collect()),
            "explain" => sub.resolve_all(&self.explained())?,
            _ => return None,
        })
    }
}

fn analytics_value(metric: MetricName, e: &Evaluated) -> AnalyticsValue {
    AnalyticsValue {
        metric,
        value: e.value,
        numerator: e.numerator,
        denominator: e.denominator,
    }
}

impl AnalyticsResult {
    /// The output type of an engine answer (`analytics`, and a saved report's `result`).
    pub(crate) fn new(out: views::AnalyticsOutput) -> AppResult<Self> {
        let metrics = out
            .metrics
            .iter()
            .map(|m| {
                let def = m.def()?;
                Ok(AnalyticsMetric {
                    name: *m,
                    unit: def.unit,
                    formula: (def.formula)(&out.rule).to_owned(),
                })
            })
            .collect::<AppResult<Vec<_>>>()?;
        let rows = out
            .rows
            .into_iter()
            .map(|row| {
                let d = row.dimensions;
                AnalyticsRow {
                    dimensions: AnalyticsDimensions {
                        campaign: d.campaign.map(Into::into),
                        agent: d.agent.map(Into::into),
                        team: d.team.map(Into::into),
                        direction: d.direction,
                        disposition: d.disposition.map(|k| AnalyticsDisposition {
                            id: k.id.map(|id| ID(id.to_string())),
                            code: k.code,
                            label: k.label,
                        }),
                        date: d.date,
                        hour_of_day: d.hour_of_day.and_then(|h| i32::try_from(h).ok()),
                        day_of_week: d.day_of_week.and_then(|w| i32::try_from(w).ok()),
                        bucket_start: d.bucket.map(|b| b.0),
                        bucket_end: d.bucket.map(|b| b.1),
                    },
                    evaluated: row.values,
                }
            })
            .collect();
        Ok(AnalyticsResult {
            start: out.from,
            end: out.to,
            timezone: out.timezone,
            service_level_variant: out.rule.variant,
            service_level_threshold_seconds: out.rule.threshold_seconds,
            metrics,
            group_by: out.group_by,
            granularity: out.granularity,
            total_rows: i64::try_from(out.total_rows).unwrap_or(i64::MAX),
            truncated: out.truncated,
            rows: PlainList(rows),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Root fields

#[derive(Default)]
pub struct AnalyticsQueries;

#[Object]
impl AnalyticsQueries {
    /// One row per agent with the registry's metrics over `filter` (computed for all agents at
    /// once). SUPERVISOR+ see every agent in the filter's scope; an AGENT sees only their own
    /// row (an empty connection without an agent profile). Default order: NAME ascending.
    /// Cursors are opaque offsets into that order.
    #[graphql(
        guard = "PermissionGuard(Permission::ActAsAgent)",
        complexity = "usize::try_from(first.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, 1_000)).unwrap_or(1) * child_complexity"
    )]
    async fn agent_performance(
        &self,
        ctx: &Context<'_>,
        filter: KpiFilter,
        order_by: Option<AgentPerformanceOrder>,
        first: Option<i32>,
        after: Option<String>,
        org_id: Option<ID>,
    ) -> async_graphql::Result<AgentPerformanceConnection> {
        let limit = usize::try_from(page_size(first, DEFAULT_PAGE_SIZE, settings(ctx)?.max_page_size)?).unwrap_or(0);
        let start = after
            .as_deref()
            .map(decode_offset)
            .transpose()?
            .map_or(0, |o| o.saturating_add(1));
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let caller = principal(ctx)?;
        let (mut conn, pool, _) = state(ctx)?.reads.conn(&tenant).await?;
        let resolved = filter::resolve(&mut conn, &tenant, "filter", &filter.raw()).await?;
        let visibility = if caller.role.has(Permission::Supervise) {
            AgentVisibility::All
        } else {
            AgentVisibility::Own(cc::agent_of_user(&mut conn, &tenant, caller.user_id).await?)
        };
        let order = order_by.map_or_else(AgentOrder::default, |o| AgentOrder {
            field: o.field,
            direction: o.direction,
        });
        let mut spare = pool.try_get(&tenant).await;
        let rows =
            views::agent_performance(&mut conn, spare.as_deref_mut(), &tenant, &resolved, visibility, order).await?;
        let total_count = i64::try_from(rows.len()).unwrap_or(i64::MAX);
        let has_next = rows.len() > start.saturating_add(limit);
        if visibility == AgentVisibility::All {
            // Other agents' performance: audited when the organization asks for it (one
            // settings row by key; queued off the request path).
            let settings = crate::db::orgs::settings(&mut conn, &tenant).await?;
            if settings.audit_performance_reads {
                let agents: Vec<String> = rows
                    .iter()
                    .skip(start)
                    .take(limit)
                    .map(|row| row.agent.id.to_string())
                    .collect();
                let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(caller)), "agent.performance_read")
                    .target("agent_performance", tenant.org_id())
                    .details(serde_json::json!({
                        "from": resolved.from,
                        "to": resolved.to,
                        "agentIds": agents,
                    }))
                    .request_id(request_id(ctx))
                    .client_addr(client_addr(ctx));
                state(ctx)?.audit_queue.record_read(event);
            }
        }
        let mut connection =
            Connection::with_additional_fields(start > 0, has_next, AgentPerformanceTotals { total_count });
        connection.edges.extend(
            rows.into_iter()
                .enumerate()
                .skip(start)
                .take(limit)
                .map(|(i, row)| Edge::new(encode_offset(i), AgentPerformance(row))),
        );
        Ok(connection)
    }

    /// One row per campaign in the filter's scope (its campaigns, or all; of its direction when
    /// it names one), by name. SUPERVISOR+.
    #[graphql(
        guard = "PermissionGuard(Permission::Supervise)",
        complexity = "50 * child_complexity"
    )]
    async fn campaign_performance(
        &self,
        ctx: &Context<'_>,
        filter: KpiFilter,
        org_id: Option<ID>,
    ) -> async_graphql::Result<Vec<CampaignPerformance>> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let (mut conn, _, _) = state(ctx)?.reads.conn(&tenant).await?;
        let resolved = filter::resolve(&mut conn, &tenant, "filter", &filter.raw()).await?;
        let rows = views::campaign_performance(&mut conn, &tenant, &resolved).await?;
        Ok(rows.into_iter().map(CampaignPerformance).collect())
    }

    /// Calls per disposition and per disposition flag, with shares. SUPERVISOR+.
    #[graphql(
        guard = "PermissionGuard(Permission::Supervise)",
        complexity = "20 * child_complexity"
    )]
    async fn disposition_breakdown(
        &self,
        ctx: &Context<'_>,
        filter: KpiFilter,
        org_id: Option<ID>,
    ) -> async_graphql::Result<DispositionBreakdown> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let (mut conn, _, _) = state(ctx)?.reads.conn(&tenant).await?;
        let resolved = filter::resolve(&mut conn, &tenant, "filter", &filter.raw()).await?;
        Ok(views::disposition_breakdown(&mut conn, &tenant, &resolved)
            .await?
            .into())
    }

    /// Ad-hoc aggregates for BI tools (see `AnalyticsQuery`). SUPERVISOR+.
    #[graphql(
        guard = "PermissionGuard(Permission::Supervise)",
        complexity = "50 * child_complexity"
    )]
    async fn analytics(
        &self,
        ctx: &Context<'_>,
        query: AnalyticsQueryInput,
        org_id: Option<ID>,
    ) -> async_graphql::Result<AnalyticsResult> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let (mut conn, pool, _) = state(ctx)?.reads.conn(&tenant).await?;
        let request = AnalyticsRequest {
            metrics: query.metrics,
            group_by: query.group_by,
            filter: query.filter.raw(),
            granularity: query.granularity,
            order_by: query.order_by.iter().map(AnalyticsOrder::term).collect(),
            limit: query.limit,
        };
        let mut spare = pool.try_get(&tenant).await;
        let out = views::run_analytics(&mut conn, spare.as_deref_mut(), &tenant, &request, "query").await?;
        Ok(AnalyticsResult::new(out)?)
    }

    /// Outbound abandonment per OUTBOUND campaign (`campaignIds`, or every outbound campaign):
    /// UK over the last 24 hours, US over the last 30 days. SUPERVISOR+.
    #[graphql(
        guard = "PermissionGuard(Permission::Supervise)",
        complexity = "20 * child_complexity"
    )]
    async fn compliance_status(
        &self,
        ctx: &Context<'_>,
        campaign_ids: Option<Vec<ID>>,
        org_id: Option<ID>,
    ) -> async_graphql::Result<Vec<ComplianceStatus>> {
        let tenant = tenant_for(ctx, org_id.as_ref()).await?;
        let (mut conn, _, _) = state(ctx)?.reads.conn(&tenant).await?;
        let ids: Option<Vec<String>> = campaign_ids.map(|ids| ids.into_iter().map(|id| id.0).collect());
        let rows = views::compliance_status(&mut conn, &tenant, "campaignIds", ids.as_deref(), Utc::now()).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graphql::plain::resolve_plain;
    use crate::kpi::metrics::Evaluated;
    use async_graphql::parser::types::Field;
    use async_graphql::registry::Registry;
    use async_graphql::{
        ContextSelectionSet, EmptyMutation, EmptySubscription, OutputType, Positioned, Schema, ServerError,
        ServerResult, Variables,
    };
    use chrono::TimeZone;
    use std::borrow::Cow;
    use uuid::Uuid;

    fn evaluated(name: &'static str, value: Option<f64>, numerator: f64, denominator: Option<f64>) -> Evaluated {
        Evaluated {
            name,
            unit: Unit::Percent,
            value,
            numerator,
            denominator,
            formula: "n / d",
        }
    }

    /// Rows with every dimension set, every dimension null, and mixed nulls in values.
    fn sample_rows() -> Vec<AnalyticsRow> {
        let entity = |name: &str| KpiEntity {
            id: Some(ID(Uuid::from_u128(name.len() as u128).to_string())),
            name: name.to_owned(),
        };
        let start = Utc.with_ymd_and_hms(2026, 3, 29, 0, 0, 0).single();
        let full = AnalyticsDimensions {
            campaign: Some(entity("Sales")),
            agent: Some(entity("Ada")),
            team: Some(KpiEntity {
                id: None,
                name: "(no team)".into(),
            }),
            direction: Some(Direction::Outbound),
            disposition: Some(AnalyticsDisposition {
                id: None,
                code: None,
                label: "(none)".into(),
            }),
            date: NaiveDate::from_ymd_opt(2026, 3, 29),
            hour_of_day: Some(23),
            day_of_week: Some(7),
            bucket_start: start,
            bucket_end: start.map(|s| s + chrono::TimeDelta::minutes(15)),
        };
        let empty = AnalyticsDimensions {
            campaign: None,
            agent: None,
            team: None,
            direction: Some(Direction::Inbound),
            disposition: Some(AnalyticsDisposition {
                id: Some(ID(Uuid::from_u128(7).to_string())),
                code: Some("SALE".into()),
                label: "Sale".into(),
            }),
            date: None,
            hour_of_day: None,
            day_of_week: None,
            bucket_start: None,
            bucket_end: None,
        };
        [full, empty]
            .into_iter()
            .map(|dimensions| {
                let evaluated = vec![
                    evaluated("serviceLevel", Some(87.5), 7.0, Some(8.0)),
                    evaluated("abandonRate", None, 0.0, Some(0.0)),
                    evaluated("offered", Some(12.0), 12.0, None),
                ];
                AnalyticsRow { dimensions, evaluated }
            })
            .collect()
    }

    /// The plain path only, failing instead of falling back.
    struct StrictPlain(Vec<AnalyticsRow>);

    impl OutputType for StrictPlain {
        fn type_name() -> Cow<'static, str> {
            <Vec<AnalyticsRow> as OutputType>::type_name()
        }
        fn create_type_info(registry: &mut Registry) -> String {
            <Vec<AnalyticsRow> as OutputType>::create_type_info(registry)
        }
        async fn resolve(&self, ctx: &ContextSelectionSet<'_>, _field: &Positioned<Field>) -> ServerResult<Value> {
            resolve_plain(ctx, &self.0).ok_or_else(|| ServerError::new("plain resolution fell back", None))
        }
    }

    struct RowsQuery;

    #[Object]
    impl RowsQuery {
        async fn derived(&self) -> Vec<AnalyticsRow> {
            sample_rows()
        }
        async fn plain(&self) -> StrictPlain {
            StrictPlain(sample_rows())
        }
        async fn listed(&self) -> PlainList<AnalyticsRow> {
            PlainList(sample_rows())
        }
    }

    type RowsSchema = Schema<RowsQuery, EmptyMutation, EmptySubscription>;

    async fn run(schema: &RowsSchema, document: &str, variables: serde_json::Value) -> Value {
        let request = async_graphql::Request::new(document).variables(Variables::from_json(variables));
        let response = schema.execute(request).await;
        assert!(response.errors.is_empty(), "{document}: {:?}", response.errors);
        response.data
    }

    /// The JSON text of one root field's value, in response order (key order matters).
    fn field_json(data: &Value, field: &str) -> String {
        match data {
            Value::Object(map) => map
                .get(field)
                .and_then(|v| serde_json::to_string(v).ok())
                .unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// Every field reachable from `type_name`, recursively, read from the schema's introspection,
    /// so a field added to a row type is covered without editing this test.
    async fn every_field(schema: &RowsSchema, type_name: &str) -> String {
        let query = format!(
            r#"{{ __type(name: "{type_name}") {{ fields {{ name type {{ kind name ofType {{ kind name ofType {{ kind name ofType {{ kind name }} }} }} }} }} }} }}"#
        );
        let data = run(schema, &query, serde_json::json!({}))
            .await
            .into_json()
            .unwrap_or_default();
        let mut out = String::from("__typename ");
        for field in data["__type"]["fields"].as_array().into_iter().flatten() {
            let mut ty = &field["type"];
            while ty["name"].is_null() {
                ty = &ty["ofType"];
            }
            let name = field["name"].as_str().unwrap_or_default();
            if ty["kind"] == "OBJECT" {
                let inner = Box::pin(every_field(schema, ty["name"].as_str().unwrap_or_default())).await;
                out.push_str(&format!("{name} {{ {inner} }} "));
            } else {
                out.push_str(name);
                out.push(' ');
            }
        }
        out
    }

    #[tokio::test]
    async fn plain_rows_equal_the_derived_resolution() {
        let schema = Schema::new(RowsQuery, EmptyMutation, EmptySubscription);
        let all = every_field(&schema, "AnalyticsRow").await;
        assert!(
            all.contains("explain { __typename metric value numerator denominator"),
            "{all}"
        );
        let selections = [
            all,
            // Aliases, and one response key spread over several fields and fragments.
            "v: values d: dimensions { a: agent { name } } d: dimensions { a: agent { id } date } values".into(),
            "...Row dimensions { ... on AnalyticsDimensions { campaign { name } } ... { team { id } } }".into(),
            "explain @include(if: $on) { metric } dimensions @skip(if: $on) { date } __typename".into(),
            "dimensions { disposition { ...Disposition code } bucketStart }".into(),
        ];
        for selection in selections {
            let fragments = "fragment Row on AnalyticsRow { values explain { value denominator } } \
                             fragment Disposition on AnalyticsDisposition { id label }";
            // Every document uses the variable and both fragments (GraphQL refuses unused ones).
            let uses = "... @include(if: $on) { ...Row } dimensions { disposition { ...Disposition } }";
            let document =
                |field: &str| format!("query($on: Boolean = true) {{ {field} {{ {selection} {uses} }} }} {fragments}");
            for on in [true, false] {
                let vars = serde_json::json!({ "on": on });
                let derived = run(&schema, &document("derived"), vars.clone()).await;
                let plain = run(&schema, &document("plain"), vars.clone()).await;
                let listed = run(&schema, &document("listed"), vars).await;
                let expected = field_json(&derived, "derived");
                assert!(
                    expected.starts_with("[{") && expected.contains("},{"),
                    "two rows: {expected}"
                );
                assert_eq!(field_json(&plain, "plain"), expected, "{selection}");
                assert_eq!(field_json(&listed, "listed"), expected, "{selection}");
            }
        }
    }
}

//! `reports`, `report`, `reportTemplates`, `createReport`, `updateReport`, `duplicateReport`,
//! `deleteReport`, `createReportFromTemplate`: saved reports (rules in `reports::saved`, the
//! stored shape in `reports::definition`), and `Report.result`, the report's answer from the
//! analytics engine in the output type of `analytics` itself.
//!
//! Resolvers convert the input into a definition (the one-of choices of ranges and columns,
//! id parsing, naming the field at fault), call the domain, and convert back.

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::auth::Role;
use crate::domain::ids::parse_id_list;
use crate::domain::Direction;
use crate::error::{AppError, AppResult, FieldError};
use crate::graphql::analytics::{AnalyticsOrder, AnalyticsResult};
use crate::graphql::context::{parse_id, principal, request_id, state};
use crate::graphql::guards::{ReportReaderGuard, RoleGuard};
use crate::kpi::analytics::{Dimension, SortDirection};
use crate::kpi::metrics::MetricName;
use crate::kpi::time::Granularity;
use crate::reports::definition::{
    Chart, ChartKind, Column, ColumnKey, Definition, Presentation, ReportFilter, ReportKind, ReportOrder, ReportQuery,
    ReportRange,
};
use crate::reports::range::RelativeRange;
use crate::reports::saved::{self, ReportInput as DomainInput, SavedReport};
use crate::reports::templates::{self, Template};
use crate::reports::{self as domain, log, run};

// ---------------------------------------------------------------------------------------------
// Inputs

/// Which calls a report covers (the filter of `analytics` without `from` and `to`, which the
/// report's range gives). Filters combine with AND.
#[derive(InputObject, Default)]
pub struct ReportFilterInput {
    campaign_ids: Option<Vec<ID>>,
    team_ids: Option<Vec<ID>>,
    agent_ids: Option<Vec<ID>>,
    direction: Option<Direction>,
}

/// The analytics query of a report, validated exactly as `analytics` validates its query.
/// An INTERACTION_LOG report keeps only `filter`: leave the rest empty.
#[derive(InputObject)]
pub struct ReportQueryInput {
    #[graphql(default)]
    metrics: Vec<MetricName>,
    #[graphql(default)]
    group_by: Vec<Dimension>,
    #[graphql(default)]
    filter: ReportFilterInput,
    granularity: Option<Granularity>,
    #[graphql(default)]
    order_by: Vec<AnalyticsOrder>,
    /// Default 1000, at most 10000.
    limit: Option<i32>,
}

/// Set `relative`, or both `from` and `to` (at most 400 days apart).
#[derive(InputObject)]
pub struct ReportRangeInput {
    relative: Option<RelativeRange>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

/// An edge of a granularity's bucket.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum ReportBucketEdge {
    Start,
    End,
}

/// One column: set exactly one of `metric` (one of the query's metrics), `dimension` (one of
/// its groupBy) or `bucket` (when it has a granularity). `label`: 1 to 100 characters, or null
/// for the default heading.
#[derive(InputObject)]
pub struct ReportColumnInput {
    metric: Option<MetricName>,
    dimension: Option<Dimension>,
    bucket: Option<ReportBucketEdge>,
    label: Option<String>,
}

/// The chart a client draws: NONE (no series), or a kind and the metrics it plots (among the
/// query's). LINE needs a time axis (granularity, DATE, HOUR_OF_DAY or DAY_OF_WEEK); BAR and
/// STACKED_BAR a groupBy dimension or a granularity; PIE exactly one metric over at least one
/// dimension; PIE and STACKED_BAR add parts up, so they plot counts only.
#[derive(InputObject)]
pub struct ReportChartInput {
    kind: ChartKind,
    #[graphql(default)]
    series: Vec<MetricName>,
}

/// How a report is shown and exported.
#[derive(InputObject, Default)]
pub struct ReportPresentationInput {
    /// Columns in order; empty: the bucket (start, end), the groupBy dimensions, the metrics.
    #[graphql(default)]
    columns: Vec<ReportColumnInput>,
    /// Exports end with a totals row: every metric recomputed over the whole scope (ratios from
    /// their numerator and denominator totals, never summed).
    #[graphql(default)]
    totals: bool,
    /// Default: no chart.
    chart: Option<ReportChartInput>,
}

/// A whole report (an update replaces all of it).
#[derive(InputObject)]
pub struct ReportInput {
    /// 1 to 200 characters.
    title: String,
    /// At most 2000 characters.
    description: Option<String>,
    /// Shared with the organization (VIEWER and up read it), or private to its owner.
    #[graphql(default)]
    shared: bool,
    /// ANALYTICS (figures) or INTERACTION_LOG (the calls of the range, one per row, with fixed
    /// columns, produced by `runReport` only; its query keeps only the filter, its presentation
    /// stays empty).
    #[graphql(default_with = "ReportKind::Analytics")]
    kind: ReportKind,
    query: ReportQueryInput,
    range: ReportRangeInput,
    #[graphql(default)]
    presentation: ReportPresentationInput,
}

pub fn range_of(input: &ReportRangeInput, field: &str) -> Result<ReportRange, FieldError> {
    match (input.relative, input.from, input.to) {
        (Some(period), None, None) => Ok(ReportRange::Relative { period }),
        (None, Some(from), Some(to)) => Ok(ReportRange::Absolute { from, to }),
        _ => Err(FieldError::new(field, "set `relative`, or both `from` and `to`")),
    }
}

fn ids(field: String, ids: &Option<Vec<ID>>, errors: &mut Vec<FieldError>) -> Option<Vec<Uuid>> {
    let ids = ids.as_ref()?;
    match parse_id_list(&field, ids) {
        Ok(parsed) => Some(parsed),
        Err(refused) => {
            errors.extend(refused);
            None
        }
    }
}

/// The domain's input, or BAD_USER_INPUT naming every field that cannot even be read.
fn domain_input(input: ReportInput) -> AppResult<DomainInput> {
    let mut errors = Vec::new();
    let range = match range_of(&input.range, "input.range") {
        Ok(range) => Some(range),
        Err(error) => {
            errors.push(error);
            None
        }
    };
    let f = &input.query.filter;
    let filter = ReportFilter {
        campaign_ids: ids("input.query.filter.campaignIds".into(), &f.campaign_ids, &mut errors),
        team_ids: ids("input.query.filter.teamIds".into(), &f.team_ids, &mut errors),
        agent_ids: ids("input.query.filter.agentIds".into(), &f.agent_ids, &mut errors),
        direction: f.direction,
    };
    let mut columns = Vec::new();
    for (i, c) in input.presentation.columns.iter().enumerate() {
        let key = match (c.metric, c.dimension, c.bucket) {
            (Some(m), None, None) => ColumnKey::Metric(m),
            (None, Some(d), None) => ColumnKey::Dimension(d),
            (None, None, Some(ReportBucketEdge::Start)) => ColumnKey::BucketStart,
            (None, None, Some(ReportBucketEdge::End)) => ColumnKey::BucketEnd,
            _ => {
                errors.push(FieldError::new(
                    format!("input.presentation.columns[{i}]"),
                    "set exactly one of metric, dimension or bucket",
                ));
                continue;
            }
        };
        columns.push(Column {
            key,
            label: c.label.clone(),
        });
    }
    let Some(range) = range.filter(|_| errors.is_empty()) else {
        return Err(AppError::invalid_fields(errors));
    };
    let query = input.query;
    Ok(DomainInput {
        title: input.title,
        description: input.description,
        shared: input.shared,
        definition: Definition {
            kind: input.kind,
            query: ReportQuery {
                metrics: query.metrics,
                group_by: query.group_by,
                filter,
                granularity: query.granularity,
                order_by: query.order_by.iter().map(|o| ReportOrder::from(o.term())).collect(),
                limit: query.limit,
            },
            range,
            presentation: Presentation {
                columns,
                totals: input.presentation.totals,
                chart: input.presentation.chart.map_or_else(Chart::default, |c| Chart {
                    kind: c.kind,
                    series: c.series,
                }),
            },
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Outputs

#[derive(SimpleObject)]
#[graphql(name = "ReportFilter")]
pub struct ReportFilterView {
    campaign_ids: Option<Vec<ID>>,
    team_ids: Option<Vec<ID>>,
    agent_ids: Option<Vec<ID>>,
    direction: Option<Direction>,
}

#[derive(SimpleObject)]
#[graphql(name = "ReportOrder")]
pub struct ReportOrderView {
    metric: Option<MetricName>,
    dimension: Option<Dimension>,
    bucket_start: bool,
    direction: SortDirection,
}

/// A report's analytics query (its interval comes from the range).
#[derive(SimpleObject)]
#[graphql(name = "ReportQuery")]
pub struct ReportQueryView {
    metrics: Vec<MetricName>,
    group_by: Vec<Dimension>,
    filter: ReportFilterView,
    granularity: Option<Granularity>,
    order_by: Vec<ReportOrderView>,
    limit: Option<i32>,
}

/// `relative` (resolved in the organization's time zone at each run), or `from` and `to`.
#[derive(SimpleObject)]
#[graphql(name = "ReportRange")]
pub struct ReportRangeView {
    relative: Option<RelativeRange>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

/// A column as exports show it: what it holds, its key in JSON exports, and its heading.
#[derive(SimpleObject)]
#[graphql(name = "ReportColumn")]
pub struct ReportColumnView {
    metric: Option<MetricName>,
    dimension: Option<Dimension>,
    bucket: Option<ReportBucketEdge>,
    key: String,
    label: String,
}

#[derive(SimpleObject)]
#[graphql(name = "ReportChart")]
pub struct ReportChartView {
    kind: ChartKind,
    series: Vec<MetricName>,
}

#[derive(SimpleObject)]
#[graphql(name = "ReportPresentation")]
pub struct ReportPresentationView {
    /// The columns shown, in order (the default order when the report names none).
    columns: Vec<ReportColumnView>,
    totals: bool,
    chart: ReportChartView,
}

fn id_list(ids: &Option<Vec<Uuid>>) -> Option<Vec<ID>> {
    ids.as_ref()
        .map(|ids| ids.iter().map(|id| ID(id.to_string())).collect())
}

fn query_view(q: &ReportQuery) -> ReportQueryView {
    ReportQueryView {
        metrics: q.metrics.clone(),
        group_by: q.group_by.clone(),
        filter: ReportFilterView {
            campaign_ids: id_list(&q.filter.campaign_ids),
            team_ids: id_list(&q.filter.team_ids),
            agent_ids: id_list(&q.filter.agent_ids),
            direction: q.filter.direction,
        },
        granularity: q.granularity,
        order_by: q
            .order_by
            .iter()
            .map(|o| ReportOrderView {
                metric: o.metric,
                dimension: o.dimension,
                bucket_start: o.bucket,
                direction: o.direction,
            })
            .collect(),
        limit: q.limit,
    }
}

fn range_view(r: &ReportRange) -> ReportRangeView {
    match *r {
        ReportRange::Relative { period } => ReportRangeView {
            relative: Some(period),
            from: None,
            to: None,
        },
        ReportRange::Absolute { from, to } => ReportRangeView {
            relative: None,
            from: Some(from),
            to: Some(to),
        },
    }
}

/// A log's columns are fixed: shown by key and label, naming no metric, dimension or bucket.
fn presentation_view(d: &Definition) -> ReportPresentationView {
    if d.kind == ReportKind::InteractionLog {
        let columns = log::columns()
            .into_iter()
            .map(|c| ReportColumnView {
                metric: None,
                dimension: None,
                bucket: None,
                key: c.key,
                label: c.label,
            })
            .collect();
        return ReportPresentationView {
            columns,
            totals: false,
            chart: ReportChartView {
                kind: ChartKind::NoChart,
                series: Vec::new(),
            },
        };
    }
    let columns = d
        .presentation
        .columns(&d.query)
        .into_iter()
        .map(|c| {
            let (metric, dimension, bucket) = match c.key {
                ColumnKey::Metric(m) => (Some(m), None, None),
                ColumnKey::Dimension(x) => (None, Some(x), None),
                ColumnKey::BucketStart => (None, None, Some(ReportBucketEdge::Start)),
                ColumnKey::BucketEnd => (None, None, Some(ReportBucketEdge::End)),
            };
            ReportColumnView {
                metric,
                dimension,
                bucket,
                key: c.key.name(),
                label: c.label().to_owned(),
            }
        })
        .collect();
    ReportPresentationView {
        columns,
        totals: d.presentation.totals,
        chart: ReportChartView {
            kind: d.presentation.chart.kind,
            series: d.presentation.chart.series.clone(),
        },
    }
}

/// A saved report: a stored analytics query, its range and its presentation.
pub struct Report(pub SavedReport);

#[Object]
impl Report {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// Shared with the organization, or private to its owner.
    async fn shared(&self) -> bool {
        self.0.shared
    }
    /// The user who created (and owns) the report.
    async fn owner_id(&self) -> ID {
        ID(self.0.owner_id.to_string())
    }
    /// Starts at 1, moves on with every update; `updateReport` names the version it read.
    async fn version(&self) -> i32 {
        self.0.version
    }
    /// The template the report was copied from, if any.
    async fn template_key(&self) -> Option<&str> {
        self.0.template_key.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// ANALYTICS, or INTERACTION_LOG (run it with `runReport`; it has no `result`).
    async fn kind(&self) -> ReportKind {
        self.0.definition.kind
    }
    async fn query(&self) -> ReportQueryView {
        query_view(&self.0.definition.query)
    }
    async fn range(&self) -> ReportRangeView {
        range_view(&self.0.definition.range)
    }
    async fn presentation(&self) -> ReportPresentationView {
        presentation_view(&self.0.definition)
    }
    /// Whether the caller may change or delete the report (its owner, or an ADMIN).
    async fn can_edit(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let caller = principal(ctx)?;
        Ok(caller.api_key.is_none() && domain::may_edit(caller, self.0.owner_id))
    }
    /// The report's answer: `analytics` for its query over its range resolved now in the
    /// organization's time zone — or over `range` instead — in the same output type, number
    /// for number. An INTERACTION_LOG has none (BAD_USER_INPUT): run it with `runReport`.
    #[graphql(complexity = "50 * child_complexity")]
    async fn result(
        &self,
        ctx: &Context<'_>,
        range: Option<ReportRangeInput>,
    ) -> async_graphql::Result<AnalyticsResult> {
        let range = range
            .map(|r| range_of(&r, "range"))
            .transpose()
            .map_err(|e| AppError::invalid_fields(vec![e]))?;
        let output = run::result(state(ctx)?, principal(ctx)?, &self.0, range).await?;
        Ok(AnalyticsResult::new(output)?)
    }
}

/// A report shipped with the product: read-only; `createReportFromTemplate` copies it.
pub struct ReportTemplate(Template);

#[Object]
impl ReportTemplate {
    /// Stable: name it in `createReportFromTemplate`.
    async fn key(&self) -> &str {
        self.0.key
    }
    async fn title(&self) -> &str {
        self.0.title
    }
    async fn description(&self) -> &str {
        self.0.description
    }
    async fn kind(&self) -> ReportKind {
        self.0.definition.kind
    }
    async fn query(&self) -> ReportQueryView {
        query_view(&self.0.definition.query)
    }
    async fn range(&self) -> ReportRangeView {
        range_view(&self.0.definition.range)
    }
    async fn presentation(&self) -> ReportPresentationView {
        presentation_view(&self.0.definition)
    }
}

// ---------------------------------------------------------------------------------------------
// Root fields

#[derive(Default)]
pub struct ReportQueries;

#[Object]
impl ReportQueries {
    /// The reports the caller may see, by title (at most 500): VIEWER the shared ones;
    /// SUPERVISOR the shared ones and their own; ADMIN+ all of the organization's. AGENT:
    /// FORBIDDEN.
    #[graphql(guard = "ReportReaderGuard", complexity = "20 * child_complexity")]
    async fn reports(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Report>> {
        let rows = saved::list(state(ctx)?, principal(ctx)?).await?;
        Ok(rows.into_iter().map(Report).collect())
    }

    /// One report the caller may see (NOT_FOUND otherwise, and for another organization's).
    #[graphql(guard = "ReportReaderGuard")]
    async fn report(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Report> {
        let report_id = parse_id(&id, "id")?;
        Ok(Report(saved::get(state(ctx)?, principal(ctx)?, report_id).await?))
    }

    /// The templates shipped with the product (read-only; copy one with
    /// `createReportFromTemplate`).
    #[graphql(guard = "ReportReaderGuard")]
    async fn report_templates(&self) -> Vec<ReportTemplate> {
        templates::all().into_iter().map(ReportTemplate).collect()
    }
}

#[derive(Default)]
pub struct ReportMutations;

#[Object]
impl ReportMutations {
    /// Saves a report owned by the caller. SUPERVISOR+. Every problem of the input is
    /// BAD_USER_INPUT naming its field: the query is checked by the analytics engine's own
    /// validation over the range resolved now (unknown ids, illegal groupings, limits, caps),
    /// the range and presentation by the report's rules. Audited.
    #[graphql(guard = "RoleGuard(Role::Supervisor)")]
    async fn create_report(&self, ctx: &Context<'_>, input: ReportInput) -> async_graphql::Result<Report> {
        let input = domain_input(input)?;
        let report = saved::create(state(ctx)?, principal(ctx)?, input, request_id(ctx)).await?;
        Ok(Report(report))
    }

    /// Replaces a report (title, description, sharing, query, range, presentation) if it is
    /// still at `expectedVersion` (CONFLICT otherwise: read it again). Its owner or an ADMIN
    /// (FORBIDDEN for others who see it). Validated as `createReport`. Audited.
    #[graphql(guard = "RoleGuard(Role::Supervisor)")]
    async fn update_report(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: i32,
        input: ReportInput,
    ) -> async_graphql::Result<Report> {
        let report_id = parse_id(&id, "id")?;
        let input = domain_input(input)?;
        let report = saved::update(
            state(ctx)?,
            principal(ctx)?,
            report_id,
            expected_version,
            input,
            request_id(ctx),
        )
        .await?;
        Ok(Report(report))
    }

    /// Copies a report the caller sees into a private report of theirs, titled
    /// "<title> (copy)". SUPERVISOR+. Audited.
    #[graphql(guard = "RoleGuard(Role::Supervisor)")]
    async fn duplicate_report(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Report> {
        let report_id = parse_id(&id, "id")?;
        let report = saved::duplicate(state(ctx)?, principal(ctx)?, report_id, request_id(ctx)).await?;
        Ok(Report(report))
    }

    /// Deletes a report: its owner or an ADMIN. Returns its id. Audited.
    #[graphql(guard = "RoleGuard(Role::Supervisor)")]
    async fn delete_report(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        let report_id = parse_id(&id, "id")?;
        let deleted = saved::delete(state(ctx)?, principal(ctx)?, report_id, request_id(ctx)).await?;
        Ok(ID(deleted.to_string()))
    }

    /// Copies a template (see `reportTemplates`) into a private report of the caller, titled
    /// `title` or as the template. SUPERVISOR+. An unknown key is BAD_USER_INPUT naming
    /// `templateKey`. Audited.
    #[graphql(guard = "RoleGuard(Role::Supervisor)")]
    async fn create_report_from_template(
        &self,
        ctx: &Context<'_>,
        template_key: String,
        title: Option<String>,
    ) -> async_graphql::Result<Report> {
        let report =
            saved::create_from_template(state(ctx)?, principal(ctx)?, &template_key, title, request_id(ctx)).await?;
        Ok(Report(report))
    }
}

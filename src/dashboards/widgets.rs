//! Widgets: what a caller writes ([`WidgetInput`]), what is stored ([`WidgetSpec`], JSON in
//! `dashboard_widgets.spec`), and the query a widget's value comes from ([`WidgetQuery`]).
//!
//! Every widget is validated before it is stored, by the checks of the query it stands for —
//! the metric registry for metrics, `kpi::check_series` for the bucket cap, the analytics
//! engine's own `validate_analytics` for tables, `complianceStatus`' own checks for gauges, and
//! the KPI filter's resolution for ids (another tenant's id is unknown) — so a stored widget is
//! one its direct query would answer. Every problem of every widget is reported at once, each
//! message naming the widget by its index in the layout (0-based, as the field path
//! `input.widgets[i]` does) and its title: `widget 3 ("Drop rate"): unknown metric foo`.
//!
//! The value of a widget depends on its [`WidgetQuery`] only, which leaves out what does not
//! change the computation (title, grid, the tile's metric, target and thresholds): every widget
//! with the same query shares one computation, in a request and across all live viewers.

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{Principal, Role, Tenant};
use crate::domain::ids::parse_id_list;
use crate::domain::Direction;
use crate::error::{AppError, AppResult, FieldError};
use crate::kpi::analytics::{compliance_status, validate_analytics, Dimension, OrderTerm};
use crate::kpi::filter::{self, RawFilter};
use crate::kpi::metrics::MetricName;
use crate::kpi::time::Granularity;
use crate::kpi::{check_series, organization_rule};
use crate::reports::definition::{ReportFilter, ReportKind, ReportOrder, ReportQuery, ReportRange};
use crate::reports::range::{self, RelativeRange};
use crate::reports::{saved, sees};

/// At most this many widgets on one dashboard.
pub const MAX_WIDGETS: usize = 24;
/// Longest widget title, in characters.
pub const MAX_WIDGET_TITLE_CHARS: usize = 200;
/// The layout grid: columns are 0..GRID_COLUMNS, a widget spans 1..=MAX_SPAN cells each way.
pub const GRID_COLUMNS: i32 = 48;
pub const GRID_ROWS: i32 = 1_000;
pub const MAX_SPAN: i32 = 48;

/// What a widget shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, async_graphql::Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum WidgetKind {
    /// One metric over the range, with its target and colour thresholds.
    KpiTile,
    /// One metric per bucket of a granularity over the range.
    TimeSeries,
    /// An analytics query (metrics × dimensions), or a saved report.
    Table,
    /// Agent states, optionally for some teams or agents.
    AgentGrid,
    /// One outbound campaign's UK and US drop rate against its limit.
    ComplianceGauge,
}

impl WidgetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WidgetKind::KpiTile => "KPI_TILE",
            WidgetKind::TimeSeries => "TIME_SERIES",
            WidgetKind::Table => "TABLE",
            WidgetKind::AgentGrid => "AGENT_GRID",
            WidgetKind::ComplianceGauge => "COMPLIANCE_GAUGE",
        }
    }

    pub fn from_stored(text: &str) -> AppResult<Self> {
        [
            WidgetKind::KpiTile,
            WidgetKind::TimeSeries,
            WidgetKind::Table,
            WidgetKind::AgentGrid,
            WidgetKind::ComplianceGauge,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
        .ok_or_else(|| AppError::internal(format!("unknown stored widget kind {text}")))
    }

    /// Whether the value is the figures of `analytics` or `complianceStatus` (SUPERVISOR+ when
    /// asked directly), hidden from lower roles on a shared dashboard.
    pub fn supervisor_only(self) -> bool {
        matches!(self, WidgetKind::Table | WidgetKind::ComplianceGauge)
    }
}

/// Colour thresholds of a tile. `critical` beyond `warning` in the direction where the metric
/// gets worse: `critical >= warning` means higher is worse (abandon rate), `critical < warning`
/// means lower is worse (service level).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Thresholds {
    pub warning: f64,
    pub critical: f64,
}

/// A tile's colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TileStatus {
    Green,
    Amber,
    Red,
}

impl Thresholds {
    /// The colour of `value`; a value at a threshold takes that threshold's colour.
    pub fn status(&self, value: f64) -> TileStatus {
        let worse_when_higher = self.critical >= self.warning;
        let beyond = |limit: f64| {
            if worse_when_higher {
                value >= limit
            } else {
                value <= limit
            }
        };
        if beyond(self.critical) {
            TileStatus::Red
        } else if beyond(self.warning) {
            TileStatus::Amber
        } else {
            TileStatus::Green
        }
    }
}

/// A widget's place on the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grid {
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
}

/// The analytics query of a table widget, as written (metrics by name, so that an unknown one
/// is reported naming the widget).
#[derive(Debug, Clone, Default)]
pub struct TableInput {
    pub metrics: Vec<String>,
    pub group_by: Vec<Dimension>,
    pub granularity: Option<Granularity>,
    pub order_by: Vec<OrderTerm>,
    pub limit: Option<i32>,
}

/// A widget's filter as written (ids unparsed).
#[derive(Debug, Clone, Default)]
pub struct FilterInput {
    pub campaign_ids: Option<Vec<String>>,
    pub team_ids: Option<Vec<String>>,
    pub agent_ids: Option<Vec<String>>,
    pub direction: Option<Direction>,
}

/// A widget as a caller writes it; which fields count depends on `kind`.
#[derive(Debug, Clone)]
pub struct WidgetInput {
    pub title: String,
    pub kind: WidgetKind,
    pub grid: Grid,
    pub filter: FilterInput,
    /// Tiles, series and tables (default TODAY).
    pub range: Option<RelativeRange>,
    /// Tiles and series: the metric, by its enum name (`SERVICE_LEVEL`).
    pub metric: Option<String>,
    pub target: Option<f64>,
    pub thresholds: Option<Thresholds>,
    /// Series.
    pub granularity: Option<Granularity>,
    /// Tables: an analytics query, or `report_id` (exactly one).
    pub table: Option<TableInput>,
    pub report_id: Option<String>,
    /// Compliance gauges.
    pub campaign_id: Option<String>,
}

/// What is stored of a widget besides its title, kind and grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct WidgetSpec {
    #[serde(default)]
    pub filter: ReportFilter,
    #[serde(default)]
    pub range: Option<RelativeRange>,
    #[serde(default)]
    pub metric: Option<MetricName>,
    #[serde(default)]
    pub target: Option<f64>,
    #[serde(default)]
    pub thresholds: Option<Thresholds>,
    #[serde(default)]
    pub granularity: Option<Granularity>,
    /// A table's own query (its filter is the widget's).
    #[serde(default)]
    pub table: Option<ReportQuery>,
    #[serde(default)]
    pub report_id: Option<Uuid>,
    #[serde(default)]
    pub campaign_id: Option<Uuid>,
}

/// A validated widget, ready to store.
#[derive(Debug, Clone)]
pub struct ValidWidget {
    pub title: String,
    pub kind: WidgetKind,
    pub grid: Grid,
    pub spec: WidgetSpec,
}

/// The computation behind a widget's value: equal queries share one computation. Ids are
/// sorted, so the same filter written differently is the same query; its JSON is its key.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WidgetQuery {
    /// Every metric over the range (`kpiSummary`); tiles pick their metric from it.
    Summary { filter: ReportFilter, range: RelativeRange },
    /// Every metric per bucket (`kpiSeries`).
    Series {
        filter: ReportFilter,
        range: RelativeRange,
        granularity: Granularity,
    },
    /// An analytics query over a range (`analytics`; a saved report's query and range).
    Analytics { query: ReportQuery, range: ReportRange },
    /// Agent states (`agentStates`).
    Agents { filter: ReportFilter },
    /// One campaign's outbound abandonment (`complianceStatus`).
    Compliance { campaign_id: Uuid },
}

impl WidgetQuery {
    /// The canonical text of the query: its identity in the shared registry.
    pub fn canonical(&self) -> String {
        // Serializing plain data (ids, enums, numbers) cannot fail; fall back to Debug anyway.
        serde_json::to_string(self).unwrap_or_else(|_| format!("{self:?}"))
    }
}

/// The filter with its ids sorted and deduplicated.
pub fn normalized(mut filter: ReportFilter) -> ReportFilter {
    for ids in [&mut filter.campaign_ids, &mut filter.team_ids, &mut filter.agent_ids]
        .into_iter()
        .flatten()
    {
        ids.sort_unstable();
        ids.dedup();
    }
    filter
}

/// The raw KPI filter of a stored filter over `[from, to)`.
pub fn raw_filter(filter: &ReportFilter, from: DateTime<Utc>, to: DateTime<Utc>) -> RawFilter {
    let ids = |ids: &Option<Vec<Uuid>>| ids.as_ref().map(|ids| ids.iter().map(Uuid::to_string).collect());
    RawFilter {
        from,
        to,
        campaign_ids: ids(&filter.campaign_ids),
        team_ids: ids(&filter.team_ids),
        agent_ids: ids(&filter.agent_ids),
        direction: filter.direction,
    }
}

/// A metric by its enum name (`SERVICE_LEVEL`) or its registry name (`serviceLevel`).
pub fn parse_metric(name: &str) -> Option<MetricName> {
    serde_json::from_value::<MetricName>(serde_json::Value::String(name.to_owned()))
        .ok()
        .or_else(|| MetricName::from_registry_name(name))
}

/// Who writes the widgets, as validation needs them.
pub struct Author<'a> {
    pub principal: &'a Principal,
    /// An AGENT's own agent profile (their widgets are forced to it).
    pub own_agent: Option<Uuid>,
    /// Whether the dashboard is shared beyond its owner (a table may then only show a shared
    /// report).
    pub shared: bool,
}

/// Problems of one widget, collected with their field paths.
struct Problems {
    path: String,
    fields: Vec<FieldError>,
}

impl Problems {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        let field = if field.is_empty() {
            self.path.clone()
        } else {
            format!("{}.{field}", self.path)
        };
        self.fields.push(FieldError::new(field, message));
    }

    /// Takes the field errors of a check that names fields itself.
    fn absorb(&mut self, result: AppResult<()>) -> AppResult<()> {
        match result {
            Ok(()) => Ok(()),
            Err(AppError::BadUserInput { message, fields }) if fields.is_empty() => {
                self.fields.push(FieldError::new(self.path.clone(), message));
                Ok(())
            }
            Err(AppError::BadUserInput { fields, .. }) => {
                self.fields.extend(fields);
                Ok(())
            }
            Err(other) => Err(other),
        }
    }
}

fn parse_filter_ids(problems: &mut Problems, field: &str, ids: &Option<Vec<String>>) -> Option<Vec<Uuid>> {
    let ids = ids.as_ref()?;
    match parse_id_list(&format!("{}.filter.{field}", problems.path), ids) {
        Ok(parsed) => Some(parsed),
        Err(errors) => {
            problems.fields.extend(errors);
            None
        }
    }
}

/// Validates every widget (all problems at once, see the module doc) and returns them as they
/// will be stored, an AGENT's forced to their own agent.
pub async fn validate(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    author: &Author<'_>,
    widgets: Vec<WidgetInput>,
    now: DateTime<Utc>,
) -> AppResult<Vec<ValidWidget>> {
    if widgets.len() > MAX_WIDGETS {
        return Err(AppError::invalid_fields(vec![FieldError::new(
            "input.widgets",
            format!("at most {MAX_WIDGETS} widgets per dashboard"),
        )]));
    }
    let (_, tz) = organization_rule(conn, tenant).await?;
    let mut messages = Vec::new();
    let mut fields = Vec::new();
    let mut valid = Vec::new();
    for (i, input) in widgets.into_iter().enumerate() {
        let title = input.title.trim().to_owned();
        let mut problems = Problems {
            path: format!("input.widgets[{i}]"),
            fields: Vec::new(),
        };
        let widget = validate_one(conn, tenant, author, &mut problems, input, tz, now).await?;
        let label: String = title.chars().take(60).collect();
        for mut error in problems.fields {
            error.message = format!("widget {i} ({label:?}): {}", error.message);
            messages.push(error.message.clone());
            fields.push(error);
        }
        valid.extend(widget);
    }
    if fields.is_empty() {
        Ok(valid)
    } else {
        Err(AppError::BadUserInput {
            message: messages.join("; "),
            fields,
        })
    }
}

async fn validate_one(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    author: &Author<'_>,
    problems: &mut Problems,
    input: WidgetInput,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> AppResult<Option<ValidWidget>> {
    let title = input.title.trim().to_owned();
    let chars = title.chars().count();
    if chars == 0 || chars > MAX_WIDGET_TITLE_CHARS {
        problems.add(
            "title",
            format!("the title must be 1 to {MAX_WIDGET_TITLE_CHARS} characters"),
        );
    }
    let grid = input.grid;
    if !(0..GRID_COLUMNS).contains(&grid.x) || !(0..GRID_ROWS).contains(&grid.y) {
        problems.add(
            "grid",
            format!("x must be 0 to {} and y 0 to {}", GRID_COLUMNS - 1, GRID_ROWS - 1),
        );
    }
    if !(1..=MAX_SPAN).contains(&grid.width) || !(1..=MAX_SPAN).contains(&grid.height) {
        problems.add("grid", format!("width and height must be 1 to {MAX_SPAN}"));
    }
    let kind = input.kind;
    let before = problems.fields.len();
    let mut filter = ReportFilter {
        campaign_ids: parse_filter_ids(problems, "campaignIds", &input.filter.campaign_ids),
        team_ids: parse_filter_ids(problems, "teamIds", &input.filter.team_ids),
        agent_ids: parse_filter_ids(problems, "agentIds", &input.filter.agent_ids),
        direction: input.filter.direction,
    };
    if author.principal.role == Role::Agent {
        if !matches!(
            kind,
            WidgetKind::KpiTile | WidgetKind::TimeSeries | WidgetKind::AgentGrid
        ) {
            problems.add(
                "kind",
                "an agent's dashboard shows their own numbers: KPI_TILE, TIME_SERIES or AGENT_GRID",
            );
        }
        if filter.team_ids.as_ref().is_some_and(|t| !t.is_empty()) {
            problems.add("filter.teamIds", "an agent's widgets cannot name teams");
        }
        match author.own_agent {
            None => problems.add("", "you have no agent profile to show numbers of"),
            Some(own) => {
                if filter
                    .agent_ids
                    .as_ref()
                    .is_some_and(|ids| ids.iter().any(|id| *id != own))
                {
                    problems.add("filter.agentIds", "an agent's widgets show their own numbers only");
                }
                filter.team_ids = None;
                filter.agent_ids = Some(vec![own]);
            }
        }
    }
    let filter = normalized(filter);
    let mut spec = WidgetSpec {
        filter,
        ..WidgetSpec::default()
    };
    let ranged = matches!(kind, WidgetKind::KpiTile | WidgetKind::TimeSeries | WidgetKind::Table);
    if ranged {
        spec.range = Some(input.range.unwrap_or(RelativeRange::Today));
    } else if input.range.is_some() {
        problems.add("range", format!("a {} has no range", kind.as_str()));
    }
    if matches!(kind, WidgetKind::KpiTile | WidgetKind::TimeSeries) {
        match input.metric.as_deref() {
            None => problems.add("metric", "a metric is required"),
            Some(name) => match parse_metric(name) {
                Some(metric) => spec.metric = Some(metric),
                None => problems.add("metric", format!("unknown metric {name}")),
            },
        }
    } else if input.metric.is_some() {
        problems.add("metric", format!("a {} has no single metric", kind.as_str()));
    }
    if kind == WidgetKind::KpiTile {
        if input.target.is_some_and(|t| !t.is_finite()) {
            problems.add("target", "must be a finite number");
        }
        if input
            .thresholds
            .is_some_and(|t| !t.warning.is_finite() || !t.critical.is_finite())
        {
            problems.add("thresholds", "must be finite numbers");
        }
        spec.target = input.target;
        spec.thresholds = input.thresholds;
    } else if input.target.is_some() || input.thresholds.is_some() {
        problems.add("target", "only a KPI_TILE has a target and thresholds");
    }
    if kind == WidgetKind::TimeSeries {
        if input.granularity.is_none() {
            problems.add("granularity", "a granularity is required");
        }
        spec.granularity = input.granularity;
    } else if input.granularity.is_some() {
        problems.add(
            "granularity",
            "only a TIME_SERIES has a granularity (a table's is in `table`)",
        );
    }
    match kind {
        WidgetKind::Table => match (input.table, input.report_id) {
            (Some(_), Some(_)) | (None, None) => problems.add(
                "table",
                "a TABLE shows either an analytics query (`table`) or a saved report (`reportId`)",
            ),
            (Some(table), None) => {
                let mut metrics = Vec::new();
                for (m, name) in table.metrics.iter().enumerate() {
                    match parse_metric(name) {
                        Some(metric) => metrics.push(metric),
                        None => problems.add(&format!("table.metrics[{m}]"), format!("unknown metric {name}")),
                    }
                }
                spec.table = Some(ReportQuery {
                    metrics,
                    group_by: table.group_by,
                    filter: spec.filter.clone(),
                    granularity: table.granularity,
                    order_by: table.order_by.into_iter().map(ReportOrder::from).collect(),
                    limit: table.limit,
                });
            }
            (None, Some(id)) => match Uuid::parse_str(&id) {
                Err(_) => problems.add("reportId", "not a valid id"),
                Ok(id) => {
                    let report = saved::load(conn, tenant, id)
                        .await?
                        .filter(|r| sees(author.principal, r.owner_id, r.shared));
                    match report {
                        None => problems.add("reportId", "unknown report"),
                        Some(r) if r.definition.kind != ReportKind::Analytics => {
                            problems.add("reportId", "an interaction log has no result to show")
                        }
                        Some(r) if author.shared && !r.shared => problems.add(
                            "reportId",
                            "a shared dashboard may only show a shared report (share the report first)",
                        ),
                        Some(_) => spec.report_id = Some(id),
                    }
                }
            },
        },
        WidgetKind::AgentGrid => {
            if spec.filter.campaign_ids.is_some() || spec.filter.direction.is_some() {
                problems.add("filter", "an agent grid filters by teams and agents only");
            }
        }
        WidgetKind::ComplianceGauge => match input.campaign_id {
            None => problems.add("campaignId", "a campaign is required"),
            Some(id) => {
                let field = format!("{}.campaignId", problems.path);
                let checked = compliance_status(conn, tenant, &field, Some(std::slice::from_ref(&id)), now).await;
                if checked.is_ok() {
                    spec.campaign_id = Uuid::parse_str(&id).ok();
                }
                problems.absorb(checked.map(|_| ()))?;
            }
        },
        WidgetKind::KpiTile | WidgetKind::TimeSeries => {}
    }
    if kind != WidgetKind::Table && (spec.table.is_some() || spec.report_id.is_some()) {
        problems.add("table", "only a TABLE has a table or a report");
    }
    if kind != WidgetKind::ComplianceGauge && spec.campaign_id.is_some() {
        problems.add("campaignId", "only a COMPLIANCE_GAUGE names a campaign");
    }
    // The checks of the direct query, once the widget's own shape is right.
    if problems.fields.len() == before {
        let (from, to) = range::resolve(spec.range.unwrap_or(RelativeRange::Today), tz, now);
        let prefix = format!("{}.filter", problems.path);
        if kind != WidgetKind::ComplianceGauge {
            let resolved = filter::resolve(conn, tenant, &prefix, &raw_filter(&spec.filter, from, to)).await;
            problems.absorb(resolved.map(|_| ()))?;
        }
        if let (WidgetKind::TimeSeries, Some(granularity)) = (kind, spec.granularity) {
            let field = format!("{}.granularity", problems.path);
            problems.absorb(check_series(&field, from, to, granularity))?;
        }
        if let Some(query) = &spec.table {
            let prefix = format!("{}.table", problems.path);
            problems.absorb(validate_analytics(conn, tenant, &query.request(from, to), &prefix).await)?;
        }
    }
    Ok(Some(ValidWidget {
        title,
        kind,
        grid,
        spec,
    }))
}

/// The query behind a stored widget. A saved report's table is the report's query and range
/// as they are now (read by the caller: `report`), so its value is the report's result.
pub fn query_of(kind: WidgetKind, spec: &WidgetSpec, report: Option<&saved::SavedReport>) -> AppResult<WidgetQuery> {
    let filter = normalized(spec.filter.clone());
    let range = spec.range.unwrap_or(RelativeRange::Today);
    Ok(match kind {
        WidgetKind::KpiTile => WidgetQuery::Summary { filter, range },
        WidgetKind::TimeSeries => WidgetQuery::Series {
            filter,
            range,
            granularity: spec.granularity.unwrap_or(Granularity::Hour),
        },
        WidgetKind::Table => match (&spec.table, report) {
            (Some(query), _) => {
                let mut query = query.clone();
                query.filter = normalized(query.filter);
                WidgetQuery::Analytics {
                    query,
                    range: ReportRange::Relative { period: range },
                }
            }
            (None, Some(report)) => {
                let mut query = report.definition.query.clone();
                query.filter = normalized(query.filter);
                WidgetQuery::Analytics {
                    query,
                    range: report.definition.range,
                }
            }
            (None, None) => return Err(crate::reports::saved::not_found()),
        },
        WidgetKind::AgentGrid => WidgetQuery::Agents { filter },
        WidgetKind::ComplianceGauge => WidgetQuery::Compliance {
            campaign_id: spec
                .campaign_id
                .ok_or_else(|| AppError::internal("stored compliance gauge without a campaign"))?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_colour_in_the_direction_that_gets_worse() {
        let abandon = Thresholds {
            warning: 3.0,
            critical: 5.0,
        };
        assert_eq!(abandon.status(1.0), TileStatus::Green);
        assert_eq!(abandon.status(3.0), TileStatus::Amber);
        assert_eq!(abandon.status(7.5), TileStatus::Red);
        let service_level = Thresholds {
            warning: 80.0,
            critical: 70.0,
        };
        assert_eq!(service_level.status(90.0), TileStatus::Green);
        assert_eq!(service_level.status(75.0), TileStatus::Amber);
        assert_eq!(service_level.status(70.0), TileStatus::Red);
    }

    #[test]
    fn equal_filters_written_differently_are_one_query() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let one = WidgetQuery::Summary {
            filter: normalized(ReportFilter {
                campaign_ids: Some(vec![b, a, b]),
                ..ReportFilter::default()
            }),
            range: RelativeRange::Today,
        };
        let two = WidgetQuery::Summary {
            filter: normalized(ReportFilter {
                campaign_ids: Some(vec![a, b]),
                ..ReportFilter::default()
            }),
            range: RelativeRange::Today,
        };
        assert_eq!(one.canonical(), two.canonical());
        let other_range = WidgetQuery::Summary {
            filter: ReportFilter::default(),
            range: RelativeRange::Yesterday,
        };
        assert_ne!(one.canonical(), other_range.canonical());
    }

    #[test]
    fn metrics_are_named_by_enum_or_registry_name() {
        assert_eq!(parse_metric("SERVICE_LEVEL"), Some(MetricName::ServiceLevel));
        assert_eq!(parse_metric("serviceLevel"), Some(MetricName::ServiceLevel));
        assert_eq!(parse_metric("foo"), None);
    }
}

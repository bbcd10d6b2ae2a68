//! A saved report's definition: the analytics query it asks (metrics, dimensions, filter,
//! granularity, order, limit), the range it covers, and how it is presented (column order and
//! labels, a totals row, a chart). Stored as JSON in `reports.definition`; this module is its
//! one shape, so what is stored, what templates ship and what the API shows cannot drift apart.
//!
//! A definition is of one of two kinds ([`ReportKind`]): an ANALYTICS report (the default, and
//! the only kind stored before the interaction log existed, so stored JSON without `kind`
//! reads as one), or an INTERACTION_LOG, which lists the calls of its range one per row with
//! a fixed set of columns (`reports::log`). A log keeps the query's filter and the range; the
//! rest of the query and of the presentation must be left empty, so a stored log never
//! carries settings that would silently be ignored.
//!
//! What the analytics engine checks (metrics, grouping, order, limit, buckets, the raw-read
//! cap, ids of the tenant) is checked by the engine itself, through
//! [`crate::kpi::analytics::validate_analytics`]; this module checks only what the engine does
//! not know of: the range and the presentation.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::Direction;
use crate::error::FieldError;
use crate::kpi::analytics::{AnalyticsRequest, Dimension, OrderTerm, SortDirection};
use crate::kpi::filter::{self, RawFilter};
use crate::kpi::metrics::{MetricName, Unit};
use crate::kpi::time::Granularity;
use crate::reports::range::{self, RelativeRange};

/// Longest column label, in characters.
pub const MAX_LABEL_CHARS: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Definition {
    /// Omitted from the stored JSON of analytics reports, which stay as they were stored.
    #[serde(default, skip_serializing_if = "ReportKind::is_analytics")]
    pub kind: ReportKind,
    pub query: ReportQuery,
    pub range: ReportRange,
    #[serde(default)]
    pub presentation: Presentation,
}

/// What a report answers: analytics figures, or the calls themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, async_graphql::Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum ReportKind {
    /// The analytics query's answer (metrics, grouped and bucketed as asked).
    #[default]
    Analytics,
    /// Every call of the range that passes the filter, one row per call, oldest first, with
    /// fixed columns; customer numbers masked below SUPERVISOR. Produced by runs only
    /// (`runReport`, schedules), streamed into the file whatever its size.
    InteractionLog,
}

impl ReportKind {
    pub fn is_analytics(&self) -> bool {
        *self == ReportKind::Analytics
    }
}

/// An analytics query without its interval (the range gives it at each run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportQuery {
    pub metrics: Vec<MetricName>,
    #[serde(default)]
    pub group_by: Vec<Dimension>,
    #[serde(default)]
    pub filter: ReportFilter,
    #[serde(default)]
    pub granularity: Option<Granularity>,
    #[serde(default)]
    pub order_by: Vec<ReportOrder>,
    #[serde(default)]
    pub limit: Option<i32>,
}

/// The filter of `analytics` without `from` and `to`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportFilter {
    #[serde(default)]
    pub campaign_ids: Option<Vec<Uuid>>,
    #[serde(default)]
    pub team_ids: Option<Vec<Uuid>>,
    #[serde(default)]
    pub agent_ids: Option<Vec<Uuid>>,
    #[serde(default)]
    pub direction: Option<Direction>,
}

/// One ordering term, as `analytics` takes it. The stored (JSON) shape of the engine's
/// `OrderTerm`, kept as its own type so that stored definitions do not change with the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportOrder {
    #[serde(default)]
    pub metric: Option<MetricName>,
    #[serde(default)]
    pub dimension: Option<Dimension>,
    #[serde(default)]
    pub bucket: bool,
    #[serde(default)]
    pub direction: SortDirection,
}

impl From<OrderTerm> for ReportOrder {
    fn from(t: OrderTerm) -> Self {
        ReportOrder {
            metric: t.metric,
            dimension: t.dimension,
            bucket: t.bucket,
            direction: t.direction,
        }
    }
}

impl From<ReportOrder> for OrderTerm {
    fn from(o: ReportOrder) -> Self {
        OrderTerm {
            metric: o.metric,
            dimension: o.dimension,
            bucket: o.bucket,
            direction: o.direction,
        }
    }
}

/// The period a report covers: fixed instants, or a period relative to the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReportRange {
    Relative { period: RelativeRange },
    Absolute { from: DateTime<Utc>, to: DateTime<Utc> },
}

impl ReportRange {
    /// The instants the range stands for at `now` in zone `tz`.
    pub fn resolve(self, tz: Tz, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        match self {
            ReportRange::Relative { period } => range::resolve(period, tz, now),
            ReportRange::Absolute { from, to } => (from, to),
        }
    }

    /// An absolute range must be ordered and at most 400 days long (the KPI interval rules,
    /// from [`filter::check_interval`]); `p` names the range in error paths (`p.to`), and an
    /// empty `p` names `from` and `to` themselves (query parameters of an export).
    pub fn check(&self, p: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let ReportRange::Absolute { from, to } = self {
            filter::check_interval(p, *from, *to, &mut errors);
        }
        if p.is_empty() {
            for error in &mut errors {
                error.field = error.field.trim_start_matches('.').to_owned();
            }
        }
        errors
    }
}

/// What a column shows: a dimension of the query's groupBy, a bucket edge of its granularity,
/// or one of its metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ColumnKey {
    Dimension(Dimension),
    BucketStart,
    BucketEnd,
    Metric(MetricName),
}

impl ColumnKey {
    /// The column's key in exports: the GraphQL name of its dimension or metric, or
    /// `BUCKET_START` / `BUCKET_END`.
    pub fn name(self) -> String {
        match self {
            ColumnKey::Dimension(d) => d.api_name().to_owned(),
            ColumnKey::BucketStart => "BUCKET_START".to_owned(),
            ColumnKey::BucketEnd => "BUCKET_END".to_owned(),
            ColumnKey::Metric(m) => metric_api_name(m),
        }
    }

    /// The label a column has when the report gives none.
    pub fn default_label(self) -> &'static str {
        match self {
            ColumnKey::Dimension(d) => match d {
                Dimension::Campaign => "Campaign",
                Dimension::Agent => "Agent",
                Dimension::Team => "Team",
                Dimension::Direction => "Direction",
                Dimension::Disposition => "Disposition",
                Dimension::Date => "Date",
                Dimension::HourOfDay => "Hour of day",
                Dimension::DayOfWeek => "Day of week",
            },
            ColumnKey::BucketStart => "Period start",
            ColumnKey::BucketEnd => "Period end",
            ColumnKey::Metric(m) => metric_label(m),
        }
    }
}

/// A metric's GraphQL enum name (as stored), e.g. `AVERAGE_HANDLE_TIME`.
pub fn metric_api_name(metric: MetricName) -> String {
    match serde_json::to_value(metric) {
        Ok(serde_json::Value::String(name)) => name,
        _ => metric.registry_name().to_owned(),
    }
}

/// A column heading for a metric, with its unit where it has one.
pub fn metric_label(metric: MetricName) -> &'static str {
    match metric {
        MetricName::Offered => "Offered",
        MetricName::Answered => "Answered",
        MetricName::Handled => "Handled",
        MetricName::Abandoned => "Abandoned",
        MetricName::ShortAbandoned => "Short abandoned",
        MetricName::ServiceLevel => "Service level %",
        MetricName::AverageSpeedOfAnswer => "Average speed of answer (s)",
        MetricName::AverageHandleTime => "Average handle time (s)",
        MetricName::AverageTalkTime => "Average talk time (s)",
        MetricName::AverageHoldTime => "Average hold time (s)",
        MetricName::AverageWrapTime => "Average wrap-up time (s)",
        MetricName::AbandonRate => "Abandon rate %",
        MetricName::LongestWait => "Longest wait (s)",
        MetricName::Occupancy => "Occupancy %",
        MetricName::ContactRate => "Contact rate %",
        MetricName::ConversionRate => "Conversion rate %",
        MetricName::CallsPerAgentHour => "Calls per agent hour",
        MetricName::OutboundAbandonRateUk => "Outbound abandon rate, UK %",
        MetricName::OutboundAbandonRateUs => "Outbound abandon rate, US %",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Column {
    pub key: ColumnKey,
    /// None: [`ColumnKey::default_label`].
    #[serde(default)]
    pub label: Option<String>,
}

impl Column {
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or_else(|| self.key.default_label())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, async_graphql::Enum, Serialize, Deserialize)]
pub enum ChartKind {
    #[default]
    #[graphql(name = "NONE")]
    #[serde(rename = "NONE")]
    NoChart,
    #[graphql(name = "LINE")]
    #[serde(rename = "LINE")]
    Line,
    #[graphql(name = "BAR")]
    #[serde(rename = "BAR")]
    Bar,
    #[graphql(name = "STACKED_BAR")]
    #[serde(rename = "STACKED_BAR")]
    StackedBar,
    #[graphql(name = "PIE")]
    #[serde(rename = "PIE")]
    Pie,
}

/// The chart a client draws, and the metrics it plots (its series).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Chart {
    #[serde(default)]
    pub kind: ChartKind,
    #[serde(default)]
    pub series: Vec<MetricName>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Presentation {
    /// Columns in order; empty: [`Presentation::columns`]' default.
    #[serde(default)]
    pub columns: Vec<Column>,
    /// A totals row in exports (see `reports::run`).
    #[serde(default)]
    pub totals: bool,
    #[serde(default)]
    pub chart: Chart,
}

impl Presentation {
    /// The columns shown, in order: those the report names, or by default the bucket (start and
    /// end) when there is a granularity, the groupBy dimensions in order, then the metrics.
    pub fn columns(&self, query: &ReportQuery) -> Vec<Column> {
        if !self.columns.is_empty() {
            return self.columns.clone();
        }
        let bucket = query
            .granularity
            .map(|_| [ColumnKey::BucketStart, ColumnKey::BucketEnd])
            .into_iter()
            .flatten();
        bucket
            .chain(query.group_by.iter().map(|d| ColumnKey::Dimension(*d)))
            .chain(query.metrics.iter().map(|m| ColumnKey::Metric(*m)))
            .map(|key| Column { key, label: None })
            .collect()
    }
}

fn unit_of(metric: MetricName) -> Option<Unit> {
    metric.def().ok().map(|def| def.unit)
}

/// Whether the query has a time axis a line can follow.
fn has_time_axis(query: &ReportQuery) -> bool {
    query.granularity.is_some()
        || query
            .group_by
            .iter()
            .any(|d| matches!(d, Dimension::Date | Dimension::HourOfDay | Dimension::DayOfWeek))
}

impl Definition {
    /// An interaction detail log of the calls that pass `filter` over `range`: everything else
    /// of the query and the presentation empty, as the log's rules require.
    pub fn interaction_log(filter: ReportFilter, range: ReportRange) -> Definition {
        Definition {
            kind: ReportKind::InteractionLog,
            query: ReportQuery {
                metrics: Vec::new(),
                group_by: Vec::new(),
                filter,
                granularity: None,
                order_by: Vec::new(),
                limit: None,
            },
            range,
            presentation: Presentation::default(),
        }
    }

    /// The checks the analytics engine does not make: the range and the presentation. `p`
    /// prefixes error paths (`input`: `input.range.to`, `input.presentation.columns[2].metric`).
    pub fn check_own_rules(&self, p: &str) -> Vec<FieldError> {
        if self.kind == ReportKind::InteractionLog {
            return self.check_log_rules(p);
        }
        let mut errors = self.range.check(&format!("{p}.range"));
        let query = &self.query;
        let pp = format!("{p}.presentation");
        for (i, column) in self.presentation.columns.iter().enumerate() {
            let at = format!("{pp}.columns[{i}]");
            if self.presentation.columns[..i].iter().any(|c| c.key == column.key) {
                errors.push(FieldError::new(at.clone(), "listed twice"));
            }
            match column.key {
                ColumnKey::Metric(m) if !query.metrics.contains(&m) => {
                    errors.push(FieldError::new(format!("{at}.metric"), "not among the query's metrics"));
                }
                ColumnKey::Dimension(d) if !query.group_by.contains(&d) => {
                    errors.push(FieldError::new(
                        format!("{at}.dimension"),
                        "not among the query's groupBy",
                    ));
                }
                ColumnKey::BucketStart | ColumnKey::BucketEnd if query.granularity.is_none() => {
                    errors.push(FieldError::new(format!("{at}.bucket"), "the query has no granularity"));
                }
                _ => {}
            }
            if let Some(label) = &column.label {
                let chars = label.trim().chars().count();
                if chars == 0 || chars > MAX_LABEL_CHARS {
                    errors.push(FieldError::new(
                        format!("{at}.label"),
                        format!("must be 1 to {MAX_LABEL_CHARS} characters, or null for the default"),
                    ));
                }
            }
        }
        let chart = &self.presentation.chart;
        let cp = format!("{pp}.chart");
        for (i, m) in chart.series.iter().enumerate() {
            if !query.metrics.contains(m) {
                errors.push(FieldError::new(
                    format!("{cp}.series[{i}]"),
                    "not among the query's metrics",
                ));
            } else if chart.series[..i].contains(m) {
                errors.push(FieldError::new(format!("{cp}.series[{i}]"), "listed twice"));
            } else if matches!(chart.kind, ChartKind::Pie | ChartKind::StackedBar) && unit_of(*m) != Some(Unit::Count) {
                errors.push(FieldError::new(
                    format!("{cp}.series[{i}]"),
                    "pies and stacked bars add their parts up: only counts (offered, answered, handled, abandoned, shortAbandoned) can be drawn so",
                ));
            }
        }
        match chart.kind {
            ChartKind::NoChart if !chart.series.is_empty() => {
                errors.push(FieldError::new(
                    format!("{cp}.series"),
                    "a report without a chart has no series",
                ));
            }
            ChartKind::NoChart => {}
            _ if chart.series.is_empty() => {
                errors.push(FieldError::new(
                    format!("{cp}.series"),
                    "name at least one metric to draw",
                ));
            }
            ChartKind::Pie if chart.series.len() != 1 || query.group_by.is_empty() => {
                errors.push(FieldError::new(
                    format!("{cp}.kind"),
                    "a pie draws one metric over the groups of at least one groupBy dimension",
                ));
            }
            ChartKind::Line if !has_time_axis(query) => {
                errors.push(FieldError::new(
                    format!("{cp}.kind"),
                    "a line needs a time axis: a granularity, or a DATE, HOUR_OF_DAY or DAY_OF_WEEK dimension",
                ));
            }
            ChartKind::Bar | ChartKind::StackedBar if query.group_by.is_empty() && query.granularity.is_none() => {
                errors.push(FieldError::new(
                    format!("{cp}.kind"),
                    "bars need something to compare: a groupBy dimension or a granularity",
                ));
            }
            _ => {}
        }
        errors
    }
}

impl Definition {
    /// An interaction log's rules: its range, and nothing of the query but the filter, nothing
    /// of the presentation at all (its columns are fixed, it has no totals and no chart).
    fn check_log_rules(&self, p: &str) -> Vec<FieldError> {
        let mut errors = self.range.check(&format!("{p}.range"));
        let q = &self.query;
        let log = "an interaction log lists calls";
        let mut refuse = |field: &str, what: &str| {
            errors.push(FieldError::new(format!("{p}.{field}"), format!("{log}: {what}")));
        };
        if !q.metrics.is_empty() {
            refuse("query.metrics", "it has no metrics; leave metrics empty");
        }
        if !q.group_by.is_empty() {
            refuse("query.groupBy", "it has no grouping; leave groupBy empty");
        }
        if q.granularity.is_some() {
            refuse("query.granularity", "it has no buckets; leave granularity null");
        }
        if !q.order_by.is_empty() {
            refuse("query.orderBy", "they are always in time order; leave orderBy empty");
        }
        if q.limit.is_some() {
            refuse("query.limit", "it lists every call of its range; leave limit null");
        }
        let pr = &self.presentation;
        if !pr.columns.is_empty() {
            refuse("presentation.columns", "its columns are fixed; leave columns empty");
        }
        if pr.totals {
            refuse("presentation.totals", "it has no totals row");
        }
        if pr.chart.kind != ChartKind::NoChart || !pr.chart.series.is_empty() {
            refuse("presentation.chart", "it has no chart; leave chart NONE");
        }
        errors
    }
}

impl ReportQuery {
    /// The analytics request of this query over `[from, to)`.
    pub fn request(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> AnalyticsRequest {
        let ids = |ids: &Option<Vec<Uuid>>| ids.as_ref().map(|ids| ids.iter().map(Uuid::to_string).collect());
        AnalyticsRequest {
            metrics: self.metrics.clone(),
            group_by: self.group_by.clone(),
            filter: RawFilter {
                from,
                to,
                campaign_ids: ids(&self.filter.campaign_ids),
                team_ids: ids(&self.filter.team_ids),
                agent_ids: ids(&self.filter.agent_ids),
                direction: self.filter.direction,
            },
            granularity: self.granularity,
            order_by: self.order_by.iter().copied().map(OrderTerm::from).collect(),
            limit: self.limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition() -> Definition {
        Definition {
            kind: ReportKind::Analytics,
            query: ReportQuery {
                metrics: vec![MetricName::Handled, MetricName::ServiceLevel],
                group_by: vec![Dimension::Agent],
                filter: ReportFilter {
                    campaign_ids: Some(vec![Uuid::from_u128(7)]),
                    direction: Some(Direction::Inbound),
                    ..ReportFilter::default()
                },
                granularity: Some(Granularity::Day),
                order_by: vec![ReportOrder {
                    metric: Some(MetricName::Handled),
                    dimension: None,
                    bucket: false,
                    direction: SortDirection::Desc,
                }],
                limit: Some(50),
            },
            range: ReportRange::Relative {
                period: RelativeRange::Last7Days,
            },
            presentation: Presentation {
                columns: vec![
                    Column {
                        key: ColumnKey::Dimension(Dimension::Agent),
                        label: Some("Who".into()),
                    },
                    Column {
                        key: ColumnKey::BucketStart,
                        label: None,
                    },
                    Column {
                        key: ColumnKey::Metric(MetricName::Handled),
                        label: None,
                    },
                ],
                totals: true,
                chart: Chart {
                    kind: ChartKind::Line,
                    series: vec![MetricName::ServiceLevel],
                },
            },
        }
    }

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn definitions_round_trip_through_their_stored_json() {
        let def = definition();
        let json = serde_json::to_value(&def).unwrap_or_default();
        assert_eq!(
            json["query"]["metrics"],
            serde_json::json!(["HANDLED", "SERVICE_LEVEL"])
        );
        assert_eq!(
            json["range"],
            serde_json::json!({"kind": "RELATIVE", "period": "LAST_7_DAYS"})
        );
        assert_eq!(
            json["presentation"]["columns"][0]["key"],
            serde_json::json!({"dimension": "AGENT"})
        );
        assert_eq!(
            json["presentation"]["columns"][1]["key"],
            serde_json::json!("bucketStart")
        );
        assert_eq!(json["presentation"]["chart"]["kind"], serde_json::json!("LINE"));
        assert!(json.get("kind").is_none(), "analytics definitions are stored as before");
        let back: Definition = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, def);
        assert!(def.check_own_rules("input").is_empty());
    }

    #[test]
    fn every_presentation_problem_is_named() {
        let mut def = definition();
        def.range = ReportRange::Absolute {
            from: DateTime::UNIX_EPOCH,
            to: DateTime::UNIX_EPOCH,
        };
        def.query.granularity = None;
        def.presentation.columns.push(Column {
            key: ColumnKey::Metric(MetricName::Occupancy),
            label: Some("  ".into()),
        });
        def.presentation.columns.push(Column {
            key: ColumnKey::Dimension(Dimension::Agent),
            label: None,
        });
        def.presentation.chart = Chart {
            kind: ChartKind::Pie,
            series: vec![MetricName::ServiceLevel],
        };
        assert_eq!(
            fields(def.check_own_rules("input")),
            vec![
                "input.range.to",
                "input.presentation.columns[1].bucket",
                "input.presentation.columns[3].metric",
                "input.presentation.columns[3].label",
                "input.presentation.columns[4]",
                "input.presentation.chart.series[0]",
            ]
        );
        def.presentation.chart = Chart {
            kind: ChartKind::Line,
            series: vec![MetricName::Handled],
        };
        assert_eq!(
            fields(def.check_own_rules("input")).last().map(String::as_str),
            Some("input.presentation.chart.kind")
        );
        def.presentation.chart = Chart {
            kind: ChartKind::NoChart,
            series: vec![MetricName::Handled],
        };
        assert_eq!(
            fields(def.check_own_rules("input")).last().map(String::as_str),
            Some("input.presentation.chart.series")
        );
    }

    #[test]
    fn default_columns_are_bucket_dimensions_then_metrics() {
        let mut def = definition();
        def.presentation.columns.clear();
        let keys: Vec<String> = def
            .presentation
            .columns(&def.query)
            .iter()
            .map(|c| format!("{}={}", c.key.name(), c.label()))
            .collect();
        assert_eq!(
            keys,
            [
                "BUCKET_START=Period start",
                "BUCKET_END=Period end",
                "AGENT=Agent",
                "HANDLED=Handled",
                "SERVICE_LEVEL=Service level %"
            ]
        );
    }

    #[test]
    fn the_request_carries_the_query_over_the_interval() {
        let def = definition();
        let from = DateTime::UNIX_EPOCH;
        let to = from + chrono::TimeDelta::days(1);
        let req = def.query.request(from, to);
        assert_eq!((req.filter.from, req.filter.to), (from, to));
        assert_eq!(req.filter.campaign_ids, Some(vec![Uuid::from_u128(7).to_string()]));
        assert_eq!(req.metrics, def.query.metrics);
        assert_eq!(req.order_by.len(), 1);
        assert_eq!(req.limit, Some(50));
    }

    fn log() -> Definition {
        Definition::interaction_log(
            ReportFilter::default(),
            ReportRange::Relative {
                period: RelativeRange::Yesterday,
            },
        )
    }

    #[test]
    fn a_log_stores_its_kind_and_keeps_only_filter_and_range() {
        let def = log();
        let json = serde_json::to_value(&def).unwrap_or_default();
        assert_eq!(json["kind"], serde_json::json!("INTERACTION_LOG"));
        let back: Definition = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, def);
        assert!(def.check_own_rules("input").is_empty());
        let analytics = definition();
        let mut wrong = Definition {
            kind: ReportKind::InteractionLog,
            ..analytics
        };
        wrong.range = def.range;
        assert_eq!(
            fields(wrong.check_own_rules("input")),
            vec![
                "input.query.metrics",
                "input.query.groupBy",
                "input.query.granularity",
                "input.query.orderBy",
                "input.query.limit",
                "input.presentation.columns",
                "input.presentation.totals",
                "input.presentation.chart",
            ]
        );
    }
}

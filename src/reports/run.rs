//! A report's result and its exports.
//!
//! A report runs as `analytics` runs, through [`run_analytics`]: its query over its range
//! resolved now in the organization's zone (or over a range the caller gives instead), so its
//! answer is the `analytics` answer for the same query and interval, number for number.
//!
//! Exports (CSV, JSON) are a table built from that answer: the presentation's columns in its
//! order with its labels; dimensions as names (campaign, agent, team, disposition label),
//! directions as `INBOUND`/`OUTBOUND`, dates as `YYYY-MM-DD`, bucket edges as ISO-8601 in the
//! organization's zone; metrics as numbers (empty where a ratio has no denominator). The
//! totals row, when the presentation asks for one, is not a sum of the rows: it is the same
//! query run again ungrouped over the same filter and interval, so every metric is recomputed
//! over the report's whole scope by the registry — counts add up to the rows' sum, ratios are
//! the totals of their numerators over the totals of their denominators, the longest wait is
//! the longest — and it covers rows beyond the report's limit too. A report without any
//! dimension or bucket column has no totals row: its one row is the total.
//!
//! Each export writes one audit record (`report.export`: format, interval, rows, bytes, and the
//! API key when one was used).

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::audit::{self, Actor, AuditEvent};
use crate::auth::{Principal, Tenant};
use crate::db;
use crate::error::{AppError, AppResult};
use crate::kpi::analytics::{run_analytics, spare_connection, AnalyticsOutput, AnalyticsRequest, RowDimensions};
use crate::kpi::metrics::{self, Evaluated, Unit};
use crate::kpi::organization_rule;
use crate::kpi::query::Aggregates;
use crate::reports::definition::{ColumnKey, Definition, ReportRange};
use crate::reports::saved::{self, SavedReport};
use crate::state::AppState;

/// A report's answer: the request it made and the engine's output.
struct Answer {
    request: AnalyticsRequest,
    output: AnalyticsOutput,
    tz: Tz,
}

/// Runs the report's query over its range, or over `range` instead (checked as an absolute
/// range, its fields named under `range_prefix`).
async fn answer(
    conn: &mut AsyncPgConnection,
    spare: Option<&mut AsyncPgConnection>,
    tenant: &Tenant,
    report: &SavedReport,
    range: Option<ReportRange>,
    range_prefix: &str,
    now: DateTime<Utc>,
) -> AppResult<Answer> {
    if let Some(range) = &range {
        let errors = range.check(range_prefix);
        if !errors.is_empty() {
            return Err(AppError::invalid_fields(errors));
        }
    }
    let (_, tz) = organization_rule(conn, tenant).await?;
    let (from, to) = range.unwrap_or(report.definition.range).resolve(tz, now);
    let request = report.definition.query.request(from, to);
    let output = run_analytics(conn, spare, tenant, &request, "query").await?;
    Ok(Answer { request, output, tz })
}

/// The report's result, as `analytics` answers the same query over the resolved range (or
/// over `range`, whose fields are named `range.from`/`range.to`). The caller has already read
/// the report through [`saved::get`] (or a listing), so it may see it.
pub async fn result(
    state: &AppState,
    principal: &Principal,
    report: &SavedReport,
    range: Option<ReportRange>,
) -> AppResult<AnalyticsOutput> {
    let tenant = Tenant::of(principal);
    let (mut conn, pool, _) = state.reads.conn().await?;
    let mut spare = spare_connection(pool).await;
    let answer = answer(
        &mut conn,
        spare.as_deref_mut(),
        &tenant,
        report,
        range,
        "range",
        Utc::now(),
    )
    .await?;
    Ok(answer.output)
}

/// Every metric of `request` over its whole filter and interval, ungrouped (see the module
/// documentation): the registry recomputes each from the scope's counters.
async fn totals(
    conn: &mut AsyncPgConnection,
    spare: Option<&mut AsyncPgConnection>,
    tenant: &Tenant,
    request: &AnalyticsRequest,
) -> AppResult<Vec<Evaluated>> {
    let whole = AnalyticsRequest {
        metrics: request.metrics.clone(),
        group_by: Vec::new(),
        filter: request.filter.clone(),
        granularity: None,
        order_by: Vec::new(),
        limit: None,
    };
    let output = run_analytics(conn, spare, tenant, &whole, "query").await?;
    let rule = output.rule;
    match output.rows.into_iter().next() {
        Some(row) => Ok(row.values),
        // Nothing in scope: the registry's values of no calls (0, or null for ratios).
        None => whole
            .metrics
            .iter()
            .map(|m| Ok(metrics::evaluate_one(m.def()?, &Aggregates::default(), &rule)))
            .collect(),
    }
}

/// One cell of an export.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Integer(i64),
    /// A metric value; None where a ratio's denominator is 0.
    Number(Option<f64>),
    Empty,
}

impl Cell {
    fn csv(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Integer(n) => n.to_string(),
            // `Display` of f64 is the shortest text that reads back as the same number.
            Cell::Number(Some(v)) => v.to_string(),
            Cell::Number(None) | Cell::Empty => String::new(),
        }
    }

    fn json(&self) -> Value {
        match self {
            Cell::Text(s) => Value::String(s.clone()),
            Cell::Integer(n) => json!(n),
            Cell::Number(Some(v)) => serde_json::Number::from_f64(*v).map_or(Value::Null, Value::Number),
            Cell::Number(None) | Cell::Empty => Value::Null,
        }
    }
}

/// A column of an export: what it shows and its heading.
#[derive(Debug, Clone)]
pub struct TableColumn {
    pub key: ColumnKey,
    pub label: String,
}

/// A report's answer laid out as its presentation asks.
#[derive(Debug, Clone)]
pub struct Table {
    pub columns: Vec<TableColumn>,
    pub rows: Vec<Vec<Cell>>,
    pub totals: Option<Vec<Cell>>,
}

fn local_time(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz).to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

fn dimension_cell(key: ColumnKey, d: &RowDimensions, tz: Tz) -> Cell {
    use crate::kpi::analytics::Dimension;
    let name = |n: &Option<crate::kpi::analytics::Named>| n.as_ref().map(|n| Cell::Text(n.name.clone()));
    let cell = match key {
        ColumnKey::Dimension(Dimension::Campaign) => name(&d.campaign),
        ColumnKey::Dimension(Dimension::Agent) => name(&d.agent),
        ColumnKey::Dimension(Dimension::Team) => name(&d.team),
        ColumnKey::Dimension(Dimension::Direction) => d.direction.map(|x| Cell::Text(x.as_str().to_owned())),
        ColumnKey::Dimension(Dimension::Disposition) => d.disposition.as_ref().map(|x| Cell::Text(x.label.clone())),
        ColumnKey::Dimension(Dimension::Date) => d.date.map(|x| Cell::Text(x.to_string())),
        ColumnKey::Dimension(Dimension::HourOfDay) => d.hour_of_day.map(|x| Cell::Integer(i64::from(x))),
        ColumnKey::Dimension(Dimension::DayOfWeek) => d.day_of_week.map(|x| Cell::Integer(i64::from(x))),
        ColumnKey::BucketStart => d.bucket.map(|b| Cell::Text(local_time(b.0, tz))),
        ColumnKey::BucketEnd => d.bucket.map(|b| Cell::Text(local_time(b.1, tz))),
        ColumnKey::Metric(_) => None,
    };
    cell.unwrap_or(Cell::Empty)
}

impl Table {
    /// Lays `output` out in the columns of `definition`'s presentation; `totals` (one value per
    /// metric of the query, in its order) becomes the totals row when there is a column to
    /// label it.
    pub fn build(definition: &Definition, output: &AnalyticsOutput, totals: Option<&[Evaluated]>, tz: Tz) -> Table {
        let columns: Vec<TableColumn> = definition
            .presentation
            .columns(&definition.query)
            .into_iter()
            .map(|c| TableColumn {
                key: c.key,
                label: c.label().to_owned(),
            })
            .collect();
        let metric_at = |key: ColumnKey| match key {
            ColumnKey::Metric(m) => output.metrics.iter().position(|x| *x == m),
            _ => None,
        };
        let value = |values: &[Evaluated], key: ColumnKey| {
            Cell::Number(metric_at(key).and_then(|i| values.get(i)).and_then(|e| e.value))
        };
        let rows = output
            .rows
            .iter()
            .map(|row| {
                columns
                    .iter()
                    .map(|c| match c.key {
                        ColumnKey::Metric(_) => value(&row.values, c.key),
                        key => dimension_cell(key, &row.dimensions, tz),
                    })
                    .collect()
            })
            .collect();
        let labelled = columns.iter().position(|c| !matches!(c.key, ColumnKey::Metric(_)));
        let totals = totals.zip(labelled).map(|(values, label_at)| {
            columns
                .iter()
                .enumerate()
                .map(|(i, c)| match c.key {
                    ColumnKey::Metric(_) => value(values, c.key),
                    _ if i == label_at => Cell::Text("Total".to_owned()),
                    _ => Cell::Empty,
                })
                .collect()
        });
        Table { columns, rows, totals }
    }

    /// RFC 4180 CSV (CRLF line ends, quoting as needed), UTF-8, with a byte-order mark first
    /// when `bom` (Excel reads UTF-8 only then): the header row, the rows, the totals row.
    pub fn csv(&self, bom: bool) -> AppResult<Vec<u8>> {
        let start = if bom { b"\xEF\xBB\xBF".to_vec() } else { Vec::new() };
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(start);
        let failed = |e: csv::Error| AppError::internal(format!("csv: {e}"));
        writer
            .write_record(self.columns.iter().map(|c| c.label.as_str()))
            .map_err(failed)?;
        for row in self.rows.iter().chain(self.totals.iter()) {
            writer.write_record(row.iter().map(Cell::csv)).map_err(failed)?;
        }
        writer
            .into_inner()
            .map_err(|e| AppError::internal(format!("csv: {}", e.error())))
    }

    /// The JSON export: the report, its interval and zone, the columns (key, label, unit of
    /// metrics), the rows as arrays in column order, the totals row (or null).
    pub fn json(&self, report: &SavedReport, output: &AnalyticsOutput) -> Value {
        let unit = |key: ColumnKey| match key {
            ColumnKey::Metric(m) => m.def().ok().map(|d| match d.unit {
                Unit::Count => "COUNT",
                Unit::Seconds => "SECONDS",
                Unit::Percent => "PERCENT",
                Unit::PerHour => "PER_HOUR",
            }),
            _ => None,
        };
        let columns: Vec<Value> = self
            .columns
            .iter()
            .map(|c| json!({ "key": c.key.name(), "label": c.label, "unit": unit(c.key) }))
            .collect();
        let cells = |row: &Vec<Cell>| Value::Array(row.iter().map(Cell::json).collect());
        json!({
            "report": { "id": report.id, "title": report.title, "version": report.version },
            "start": output.from,
            "end": output.to,
            "timezone": output.timezone,
            "columns": columns,
            "rows": self.rows.iter().map(cells).collect::<Vec<_>>(),
            "totals": self.totals.as_ref().map(cells),
            "totalRows": output.total_rows,
            "truncated": output.truncated,
        })
    }
}

/// The formats of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Json,
}

impl ExportFormat {
    /// The format of a file extension (`csv`, `json`).
    pub fn from_extension(extension: &str) -> Option<Self> {
        match extension {
            "csv" => Some(ExportFormat::Csv),
            "json" => Some(ExportFormat::Json),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Json => "json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Json => "application/json",
        }
    }
}

/// What an export asks for.
#[derive(Debug, Clone, Copy)]
pub struct ExportRequest {
    pub report_id: Uuid,
    pub format: ExportFormat,
    /// Instead of the report's range (fields named `from` and `to`).
    pub range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// CSV only: a UTF-8 byte-order mark first.
    pub bom: bool,
}

/// A rendered export.
#[derive(Debug, Clone)]
pub struct ExportFile {
    pub content_type: &'static str,
    pub filename: String,
    pub body: Vec<u8>,
}

/// A file name from a title: ASCII letters, digits and dashes, lower case.
fn file_stem(title: &str) -> String {
    let mut stem = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            stem.push(c.to_ascii_lowercase());
        } else if !stem.ends_with('-') && !stem.is_empty() {
            stem.push('-');
        }
        if stem.len() >= 80 {
            break;
        }
    }
    let stem = stem.trim_end_matches('-');
    if stem.is_empty() {
        "report".to_owned()
    } else {
        stem.to_owned()
    }
}

/// Runs a report the caller may see and renders it; audited as `report.export`.
pub async fn export(
    state: &AppState,
    principal: &Principal,
    request: ExportRequest,
    request_id: Option<String>,
) -> AppResult<ExportFile> {
    let report = saved::get(state, principal, request.report_id).await?;
    let tenant = Tenant::of(principal);
    let range = request.range.map(|(from, to)| ReportRange::Absolute { from, to });
    let (answer, totals) = {
        let (mut conn, pool, _) = state.reads.conn().await?;
        let mut spare = spare_connection(pool).await;
        let answer = answer(&mut conn, spare.as_deref_mut(), &tenant, &report, range, "", Utc::now()).await?;
        let totals = if report.definition.presentation.totals {
            Some(totals(&mut conn, spare.as_deref_mut(), &tenant, &answer.request).await?)
        } else {
            None
        };
        (answer, totals)
    };
    let table = Table::build(&report.definition, &answer.output, totals.as_deref(), answer.tz);
    let body = match request.format {
        ExportFormat::Csv => table.csv(request.bom)?,
        ExportFormat::Json => serde_json::to_vec(&table.json(&report, &answer.output))?,
    };
    let event = AuditEvent::new(
        Some(tenant.org_id()),
        Some(Actor {
            user_id: principal.user_id,
            role: principal.role,
        }),
        "report.export",
    )
    .target("report", report.id)
    .details(json!({
        "title": report.title,
        "version": report.version,
        "format": request.format.extension(),
        "from": answer.output.from,
        "to": answer.output.to,
        "rows": table.rows.len(),
        "bytes": body.len(),
        "apiKeyId": principal.api_key.as_ref().map(|k| k.key_id),
    }))
    .request_id(request_id);
    let mut conn = db::conn(&state.db).await?;
    conn.transaction(async |conn| audit::record(conn, event).await).await?;
    Ok(ExportFile {
        content_type: request.format.content_type(),
        filename: format!("{}.{}", file_stem(&report.title), request.format.extension()),
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kpi::analytics::{AnalyticsRow, Dimension, Named};
    use crate::kpi::metrics::{MetricName, ServiceLevelRule};
    use crate::reports::definition::{Column, Presentation, ReportFilter, ReportQuery};
    use crate::reports::range::RelativeRange;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).map(|d| d.to_utc()).unwrap_or_default()
    }

    fn value(v: Option<f64>) -> Evaluated {
        Evaluated {
            name: "x",
            unit: Unit::Count,
            value: v,
            numerator: 0.0,
            denominator: None,
            formula: "",
        }
    }

    fn definition(columns: Vec<Column>) -> Definition {
        Definition {
            query: ReportQuery {
                metrics: vec![MetricName::Handled, MetricName::ServiceLevel],
                group_by: vec![Dimension::Agent],
                filter: ReportFilter::default(),
                granularity: Some(crate::kpi::time::Granularity::Day),
                order_by: Vec::new(),
                limit: None,
            },
            range: ReportRange::Relative {
                period: RelativeRange::Yesterday,
            },
            presentation: Presentation {
                columns,
                totals: true,
                chart: Default::default(),
            },
        }
    }

    fn output() -> AnalyticsOutput {
        let row = |agent: &str, handled: f64, sl: Option<f64>| AnalyticsRow {
            dimensions: RowDimensions {
                agent: Some(Named {
                    id: Some(Uuid::from_u128(agent.len() as u128)),
                    name: agent.to_owned(),
                }),
                bucket: Some((at("2026-03-29T00:00:00Z"), at("2026-03-29T23:00:00Z"))),
                ..RowDimensions::default()
            },
            values: vec![value(Some(handled)), value(sl)],
        };
        AnalyticsOutput {
            from: at("2026-03-29T00:00:00Z"),
            to: at("2026-03-29T23:00:00Z"),
            timezone: "Europe/London".into(),
            rule: ServiceLevelRule {
                threshold_seconds: 20,
                variant: crate::domain::ServiceLevelVariant::AnsweredWithinOverOffered,
                exclude_short_abandons_from_abandon_rate: false,
                exclude_short_abandons_from_service_level: false,
            },
            metrics: vec![MetricName::Handled, MetricName::ServiceLevel],
            group_by: vec![Dimension::Agent],
            granularity: Some(crate::kpi::time::Granularity::Day),
            total_rows: 2,
            truncated: false,
            rows: vec![row("Ada, \"the\" first", 3.0, Some(100.0 / 3.0)), row("Bo", 0.0, None)],
        }
    }

    #[test]
    fn csv_follows_the_presentation_and_reads_back() {
        let def = definition(vec![
            Column {
                key: ColumnKey::Metric(MetricName::ServiceLevel),
                label: Some("SL".into()),
            },
            Column {
                key: ColumnKey::Dimension(Dimension::Agent),
                label: None,
            },
            Column {
                key: ColumnKey::BucketEnd,
                label: None,
            },
        ]);
        let totals = [value(Some(3.0)), value(Some(75.0))];
        let table = Table::build(&def, &output(), Some(&totals), chrono_tz::Europe::London);
        let bytes = table.csv(true).unwrap_or_default();
        assert!(bytes.starts_with(b"\xEF\xBB\xBF"));
        let text = String::from_utf8(bytes[3..].to_vec()).unwrap_or_default();
        assert!(text.contains("\r\n"), "{text:?}");
        let mut reader = csv::ReaderBuilder::new().from_reader(&bytes[3..]);
        let header: Vec<String> = reader
            .headers()
            .map(|h| h.iter().map(str::to_owned).collect())
            .unwrap_or_default();
        assert_eq!(header, ["SL", "Agent", "Period end"]);
        let rows: Vec<Vec<String>> = reader
            .records()
            .map(|r| r.map(|r| r.iter().map(str::to_owned).collect()).unwrap_or_default())
            .collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0][0].parse::<f64>().ok(), Some(100.0 / 3.0));
        assert_eq!(rows[0][1], "Ada, \"the\" first");
        // The bucket ends at local midnight, BST.
        assert_eq!(rows[0][2], "2026-03-30T00:00:00+01:00");
        assert_eq!(rows[1][0], "", "null is an empty cell");
        assert_eq!(rows[2], ["75", "Total", ""]);
    }

    #[test]
    fn json_has_columns_rows_and_totals() {
        let def = definition(Vec::new());
        let table = Table::build(&def, &output(), None, chrono_tz::Europe::London);
        let report = SavedReport {
            id: Uuid::from_u128(5),
            owner_id: Uuid::from_u128(6),
            title: "T".into(),
            description: None,
            shared: false,
            template_key: None,
            version: 2,
            created_at: at("2026-01-01T00:00:00Z"),
            updated_at: at("2026-01-01T00:00:00Z"),
            definition: def,
        };
        let doc = table.json(&report, &output());
        assert_eq!(doc["columns"][0]["key"], "BUCKET_START");
        assert_eq!(doc["columns"][3]["unit"], "COUNT");
        assert_eq!(doc["rows"][0][2], "Ada, \"the\" first");
        assert_eq!(doc["rows"][1][4], Value::Null);
        assert_eq!(doc["totals"], Value::Null);
        assert_eq!(doc["report"]["version"], 2);
    }

    #[test]
    fn metrics_only_reports_have_no_totals_row_and_file_names_are_tame() {
        let def = definition(vec![Column {
            key: ColumnKey::Metric(MetricName::Handled),
            label: None,
        }]);
        let totals = [value(Some(3.0)), value(None)];
        assert!(Table::build(&def, &output(), Some(&totals), chrono_tz::UTC)
            .totals
            .is_none());
        assert_eq!(
            file_stem("Agent performance (daily) — März"),
            "agent-performance-daily-m-rz"
        );
        assert_eq!(file_stem("  ¿?  "), "report");
    }
}

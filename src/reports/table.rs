//! A report's answer laid out for a file: the presentation's columns in its order with its
//! labels and their kinds; dimensions as names (campaign, agent, team, disposition label),
//! directions as `INBOUND`/`OUTBOUND`, dates as dates and bucket edges as instants in the
//! organization's zone; metrics as numbers (no value where a ratio has no denominator). The
//! totals row is labelled `Total` in the first non-metric column (see `reports::run` for how
//! it is computed); a report without such a column has none, its one row being the total.
//!
//! The writers of `reports::formats` take it from here; this module knows the report, they
//! know their format.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::kpi::analytics::{AnalyticsOutput, Dimension, Named, RowDimensions};
use crate::kpi::metrics::{Evaluated, MetricName};
use crate::reports::definition::{metric_api_name, ChartKind, ColumnKey, Definition};
use crate::reports::formats::{Cell, ChartSpec, ColumnKind, ExportMeta, TableColumn};
use crate::reports::saved::SavedReport;

/// A report's answer as rows of cells, with the key of each column.
#[derive(Debug, Clone)]
pub struct Table {
    pub keys: Vec<ColumnKey>,
    pub columns: Vec<TableColumn>,
    pub rows: Vec<Vec<Cell>>,
    pub totals: Option<Vec<Cell>>,
}

fn kind_of(key: ColumnKey) -> ColumnKind {
    match key {
        ColumnKey::Dimension(Dimension::Date) => ColumnKind::Date,
        ColumnKey::Dimension(Dimension::HourOfDay | Dimension::DayOfWeek) => ColumnKind::Integer,
        ColumnKey::Dimension(_) => ColumnKind::Text,
        ColumnKey::BucketStart | ColumnKey::BucketEnd => ColumnKind::Time,
        ColumnKey::Metric(m) => m.def().map_or(ColumnKind::Text, |d| ColumnKind::Metric(d.unit)),
    }
}

fn dimension_cell(key: ColumnKey, d: &RowDimensions, tz: Tz) -> Cell {
    let name = |n: &Option<Named>| n.as_ref().map(|n| Cell::Text(n.name.clone()));
    let cell = match key {
        ColumnKey::Dimension(Dimension::Campaign) => name(&d.campaign),
        ColumnKey::Dimension(Dimension::Agent) => name(&d.agent),
        ColumnKey::Dimension(Dimension::Team) => name(&d.team),
        ColumnKey::Dimension(Dimension::Direction) => d.direction.map(|x| Cell::Text(x.as_str().to_owned())),
        ColumnKey::Dimension(Dimension::Disposition) => d.disposition.as_ref().map(|x| Cell::Text(x.label.clone())),
        ColumnKey::Dimension(Dimension::Date) => d.date.map(Cell::Date),
        ColumnKey::Dimension(Dimension::HourOfDay) => d.hour_of_day.map(|x| Cell::Integer(i64::from(x))),
        ColumnKey::Dimension(Dimension::DayOfWeek) => d.day_of_week.map(|x| Cell::Integer(i64::from(x))),
        ColumnKey::BucketStart => d.bucket.map(|b| Cell::local_time(b.0, tz)),
        ColumnKey::BucketEnd => d.bucket.map(|b| Cell::local_time(b.1, tz)),
        ColumnKey::Metric(_) => None,
    };
    cell.unwrap_or(Cell::Empty)
}

impl Table {
    /// Lays `output` out in the columns of `definition`'s presentation; `totals` (one value per
    /// metric of the query, in its order) becomes the totals row when there is a column to
    /// label it.
    pub fn build(definition: &Definition, output: &AnalyticsOutput, totals: Option<&[Evaluated]>, tz: Tz) -> Table {
        let keys: Vec<ColumnKey> = definition
            .presentation
            .columns(&definition.query)
            .iter()
            .map(|c| c.key)
            .collect();
        let columns = definition
            .presentation
            .columns(&definition.query)
            .into_iter()
            .map(|c| TableColumn {
                key: c.key.name(),
                label: c.label().to_owned(),
                kind: kind_of(c.key),
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
                keys.iter()
                    .map(|key| match key {
                        ColumnKey::Metric(_) => value(&row.values, *key),
                        key => dimension_cell(*key, &row.dimensions, tz),
                    })
                    .collect()
            })
            .collect();
        let labelled = keys.iter().position(|k| !matches!(k, ColumnKey::Metric(_)));
        let totals = totals.zip(labelled).map(|(values, label_at)| {
            keys.iter()
                .enumerate()
                .map(|(i, key)| match key {
                    ColumnKey::Metric(_) => value(values, *key),
                    _ if i == label_at => Cell::Text("Total".to_owned()),
                    _ => Cell::Empty,
                })
                .collect()
        });
        Table {
            keys,
            columns,
            rows,
            totals,
        }
    }

    /// The chart in column positions: categories from the first non-metric column, the series'
    /// metric columns. None without a chart, or when the presentation hides what it needs.
    pub fn chart(&self, definition: &Definition) -> Option<ChartSpec> {
        let chart = &definition.presentation.chart;
        if chart.kind == ChartKind::NoChart {
            return None;
        }
        let category = self.keys.iter().position(|k| !matches!(k, ColumnKey::Metric(_)))?;
        let series: Vec<usize> = chart
            .series
            .iter()
            .filter_map(|m| self.keys.iter().position(|k| *k == ColumnKey::Metric(*m)))
            .collect();
        (!series.is_empty()).then_some(ChartSpec {
            kind: chart.kind,
            category,
            series,
        })
    }

    /// The file's header: the report, interval, parameters, columns and chart.
    pub fn meta(
        &self,
        report: &SavedReport,
        output: &AnalyticsOutput,
        tz: Tz,
        generated_at: DateTime<Utc>,
    ) -> ExportMeta {
        ExportMeta {
            report_id: report.id,
            report_version: report.version,
            title: report.title.clone(),
            description: report.description.clone(),
            timezone: tz,
            from: output.from,
            to: output.to,
            generated_at,
            parameters: parameters(&report.definition, tz),
            columns: self.columns.clone(),
            chart: self.chart(&report.definition),
            total_rows: u64::try_from(output.total_rows).ok(),
            truncated: output.truncated,
            bom: false,
        }
    }
}

/// What a report asks, as a reader of its file wants to see it.
fn parameters(definition: &Definition, tz: Tz) -> Vec<(String, String)> {
    let query = &definition.query;
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "—".to_owned()
        } else {
            items.join(", ")
        }
    };
    let mut out = vec![
        (
            "Metrics".to_owned(),
            list(query.metrics.iter().map(|m: &MetricName| metric_api_name(*m)).collect()),
        ),
        (
            "Grouped by".to_owned(),
            list(query.group_by.iter().map(|d| d.api_name().to_owned()).collect()),
        ),
    ];
    if let Some(g) = query.granularity {
        let name = serde_json::to_value(g).ok().and_then(|v| v.as_str().map(str::to_owned));
        out.push(("Granularity".to_owned(), name.unwrap_or_default()));
    }
    let filter = &query.filter;
    let count = |ids: &Option<Vec<uuid::Uuid>>| ids.as_ref().map(Vec::len);
    for (label, n) in [
        ("Campaigns", count(&filter.campaign_ids)),
        ("Teams", count(&filter.team_ids)),
        ("Agents", count(&filter.agent_ids)),
    ] {
        if let Some(n) = n {
            out.push((label.to_owned(), format!("{n} selected")));
        }
    }
    if let Some(direction) = filter.direction {
        out.push(("Direction".to_owned(), direction.as_str().to_owned()));
    }
    if let Some(limit) = query.limit {
        out.push(("Row limit".to_owned(), limit.to_string()));
    }
    out.push(("Time zone".to_owned(), tz.name().to_owned()));
    out
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek, SeekFrom};

    use serde_json::Value;
    use uuid::Uuid;

    use super::*;
    use crate::kpi::analytics::AnalyticsRow;
    use crate::kpi::metrics::{ServiceLevelRule, Unit};
    use crate::reports::definition::{Column, Presentation, ReportFilter, ReportQuery, ReportRange};
    use crate::reports::formats::{self, ExportFormat};
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
            kind: crate::reports::definition::ReportKind::Analytics,
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

    fn report(def: Definition) -> SavedReport {
        SavedReport {
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
        }
    }

    /// The table written in `format` and read back.
    fn render(table: &Table, def: Definition, format: ExportFormat, bom: bool) -> Vec<u8> {
        let report = report(def);
        let mut meta = table.meta(
            &report,
            &output(),
            chrono_tz::Europe::London,
            at("2026-03-30T06:00:00Z"),
        );
        meta.bom = bom;
        let mut bytes = Vec::new();
        let written = tempfile::tempfile().and_then(|mut file| {
            let copy = file.try_clone()?;
            formats::write_all(format, &meta, copy, &table.rows, table.totals.as_deref())
                .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
            file.seek(SeekFrom::Start(0))?;
            file.read_to_end(&mut bytes)
        });
        assert!(written.is_ok(), "{written:?}");
        bytes
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
        let bytes = render(&table, def, ExportFormat::Csv, true);
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
        let doc: Value = serde_json::from_slice(&render(&table, def, ExportFormat::Json, false)).unwrap_or_default();
        assert_eq!(doc["columns"][0]["key"], "BUCKET_START");
        assert_eq!(doc["columns"][3]["unit"], "COUNT");
        assert_eq!(doc["rows"][0][2], "Ada, \"the\" first");
        assert_eq!(doc["rows"][1][4], Value::Null);
        assert_eq!(doc["totals"], Value::Null);
        assert_eq!(doc["report"]["version"], 2);
        assert_eq!(doc["columns"][0]["unit"], Value::Null);
        // Bucket edges in the organization's zone, dates as dates.
        assert_eq!(doc["rows"][0][0], "2026-03-29T00:00:00+00:00");
        assert_eq!(doc["totalRows"], 2);
        assert_eq!(doc["truncated"], false);
    }

    #[test]
    fn metrics_only_reports_have_no_totals_row() {
        let def = definition(vec![Column {
            key: ColumnKey::Metric(MetricName::Handled),
            label: None,
        }]);
        let totals = [value(Some(3.0)), value(None)];
        assert!(Table::build(&def, &output(), Some(&totals), chrono_tz::UTC)
            .totals
            .is_none());
    }

    #[test]
    fn the_chart_is_placed_on_the_columns() {
        let mut def = definition(Vec::new());
        def.presentation.chart = crate::reports::definition::Chart {
            kind: ChartKind::Bar,
            series: vec![MetricName::ServiceLevel],
        };
        let table = Table::build(&def, &output(), None, chrono_tz::UTC);
        // Columns: bucket start, bucket end, agent, handled, service level.
        assert_eq!(
            table.chart(&def),
            Some(ChartSpec {
                kind: ChartKind::Bar,
                category: 0,
                series: vec![4]
            })
        );
        assert_eq!(table.columns[4].kind, ColumnKind::Metric(Unit::Percent));
        assert_eq!(table.columns[0].kind, ColumnKind::Time);
    }
}

//! Export files: one writer per format, all fed the same way — a header known up front
//! ([`ExportMeta`]), then rows one at a time, then the totals row — so a run streams rows from
//! PostgreSQL into the file and memory stays flat however many rows there are.
//!
//! A writer is synchronous (the file libraries are) and writes to a file it owns; the run
//! (`reports::jobs`) drives it from a blocking thread. What a cell is ([`Cell`]) and what a
//! column holds ([`ColumnKind`]) are decided by the report before the writer sees them, so each
//! writer only maps typed values onto its format:
//!
//! * [`csv`]: RFC 4180, UTF-8, optional byte-order mark for Excel;
//! * [`json`]: one JSON document (metadata, columns, rows as arrays, totals), written as a
//!   stream;
//! * [`xlsx`]: an Excel workbook with typed, formatted cells, a native chart and an About
//!   sheet, written in constant memory (rows past a sheet's limit go on in new sheets);
//! * [`pdf`]: a laid-out document (title, parameters, chart, paginated table, page numbers).
//!   The one format that holds its rows until the end — pages are laid out once every row is
//!   known — so it refuses more than [`pdf::MAX_ROWS`] rows.

pub mod csv;
pub mod json;
pub mod pdf;
pub mod xlsx;

use std::fs::File;

use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat, Utc};
use chrono_tz::Tz;

use crate::error::AppResult;
use crate::kpi::metrics::Unit;
use crate::reports::definition::ChartKind;

/// One cell of an export.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Integer(i64),
    /// A metric value (its unit is the column's); None where a ratio's denominator is 0.
    Number(Option<f64>),
    /// A calendar date in the organization's zone.
    Date(NaiveDate),
    /// An instant, with the organization's offset at that instant.
    Time(DateTime<FixedOffset>),
    Empty,
}

impl Cell {
    /// An instant as the organization's local time.
    pub fn local_time(at: DateTime<Utc>, tz: Tz) -> Cell {
        Cell::Time(at.with_timezone(&tz).fixed_offset())
    }

    /// The cell as text (CSV, JSON strings): ISO-8601 for dates and times, the shortest text
    /// that reads back as the same number for numbers, empty for no value.
    pub fn text(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Integer(n) => n.to_string(),
            Cell::Number(Some(v)) => v.to_string(),
            Cell::Date(d) => d.to_string(),
            Cell::Time(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, false),
            Cell::Number(None) | Cell::Empty => String::new(),
        }
    }
}

/// What a column holds, for formats with typed cells (XLSX number formats, JSON units, PDF
/// alignment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Text,
    Integer,
    Date,
    Time,
    /// A metric of this unit (seconds, percent, count, per hour).
    Metric(Unit),
}

impl ColumnKind {
    /// The unit's name in JSON exports, for metric columns.
    pub fn unit_name(self) -> Option<&'static str> {
        match self {
            ColumnKind::Metric(Unit::Count) => Some("COUNT"),
            ColumnKind::Metric(Unit::Seconds) => Some("SECONDS"),
            ColumnKind::Metric(Unit::Percent) => Some("PERCENT"),
            ColumnKind::Metric(Unit::PerHour) => Some("PER_HOUR"),
            _ => None,
        }
    }
}

/// A column of an export.
#[derive(Debug, Clone, PartialEq)]
pub struct TableColumn {
    /// A stable key (the GraphQL name of a dimension or metric, `BUCKET_START`, …).
    pub key: String,
    pub label: String,
    pub kind: ColumnKind,
}

impl TableColumn {
    /// The heading of formats that show durations as `h:mm:ss` (XLSX, PDF): a label that
    /// announces seconds (`… (s)`, the default of duration metrics) says `(h:mm:ss)` instead.
    pub fn display_label(&self) -> String {
        match (self.kind, self.label.strip_suffix(" (s)")) {
            (ColumnKind::Metric(Unit::Seconds), Some(stem)) => format!("{stem} (h:mm:ss)"),
            _ => self.label.clone(),
        }
    }
}

/// The chart of an export, in column positions: the category axis and the plotted series.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartSpec {
    pub kind: ChartKind,
    /// The column whose values label the categories (x axis, pie slices).
    pub category: usize,
    /// Metric columns plotted, in order.
    pub series: Vec<usize>,
}

/// Everything a file shows besides its rows.
#[derive(Debug, Clone)]
pub struct ExportMeta {
    /// The saved report and the version of its definition that ran.
    pub report_id: uuid::Uuid,
    pub report_version: i32,
    pub title: String,
    pub description: Option<String>,
    /// The organization's zone: timestamps in the file are local to it.
    pub timezone: Tz,
    /// The interval reported, `[from, to)`.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub generated_at: DateTime<Utc>,
    /// What the report asked, as label and value (metrics, grouping, filter …), for the
    /// parameters block of a PDF and the metadata of other formats.
    pub parameters: Vec<(String, String)>,
    pub columns: Vec<TableColumn>,
    pub chart: Option<ChartSpec>,
    /// Rows the query found before the report's limit, when known up front.
    pub total_rows: Option<u64>,
    /// Whether the limit left rows out.
    pub truncated: bool,
    /// CSV only: a UTF-8 byte-order mark first.
    pub bom: bool,
}

/// A writer of one export file.
pub trait TableWriter: Send {
    /// One row, a cell per column in order.
    fn row(&mut self, row: &[Cell]) -> AppResult<()>;
    /// Writes the totals row (if any) and completes the file.
    fn finish(self: Box<Self>, totals: Option<&[Cell]>) -> AppResult<()>;
}

/// The formats of an export (GraphQL `ReportFormat`; stored by [`ExportFormat::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, async_graphql::Enum)]
#[graphql(name = "ReportFormat", rename_items = "SCREAMING_SNAKE_CASE")]
pub enum ExportFormat {
    Csv,
    Json,
    Xlsx,
    Pdf,
}

impl ExportFormat {
    /// The format of a file extension (`csv`, `json`, `xlsx`, `pdf`).
    pub fn from_extension(extension: &str) -> Option<Self> {
        match extension {
            "csv" => Some(ExportFormat::Csv),
            "json" => Some(ExportFormat::Json),
            "xlsx" => Some(ExportFormat::Xlsx),
            "pdf" => Some(ExportFormat::Pdf),
            _ => None,
        }
    }

    /// The stored and GraphQL name (`CSV`, `JSON`, `XLSX`, `PDF`).
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Csv => "CSV",
            ExportFormat::Json => "JSON",
            ExportFormat::Xlsx => "XLSX",
            ExportFormat::Pdf => "PDF",
        }
    }

    /// The format of a stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::from_extension(&name.to_ascii_lowercase())
    }

    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Json => "json",
            ExportFormat::Xlsx => "xlsx",
            ExportFormat::Pdf => "pdf",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Json => "application/json",
            ExportFormat::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ExportFormat::Pdf => "application/pdf",
        }
    }

    /// A writer of this format into `file`.
    pub fn writer(self, meta: &ExportMeta, file: File) -> AppResult<Box<dyn TableWriter>> {
        Ok(match self {
            ExportFormat::Csv => Box::new(csv::CsvWriter::create(meta, file)?),
            ExportFormat::Json => Box::new(json::JsonWriter::create(meta, file)?),
            ExportFormat::Xlsx => Box::new(xlsx::XlsxWriter::create(meta, file)?),
            ExportFormat::Pdf => Box::new(pdf::PdfWriter::create(meta, file)?),
        })
    }
}

/// Writes a whole table held in memory into `file` (exports of at most the analytics row cap).
pub fn write_all(
    format: ExportFormat,
    meta: &ExportMeta,
    file: File,
    rows: &[Vec<Cell>],
    totals: Option<&[Cell]>,
) -> AppResult<()> {
    let mut writer = format.writer(meta, file)?;
    for row in rows {
        writer.row(row)?;
    }
    writer.finish(totals)
}

/// A report's header and rows for the writers' unit tests: an organization in London, a July
/// interval (so local times are +01:00), one column of each unit.
#[cfg(test)]
pub(crate) mod tests_support {
    #![allow(clippy::unwrap_used)]

    use chrono::{DateTime, Utc};

    use super::{Cell, ChartSpec, ColumnKind, ExportMeta, TableColumn};
    use crate::kpi::metrics::Unit;

    pub fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    pub fn meta(chart: Option<ChartSpec>) -> ExportMeta {
        let column = |key: &str, label: &str, kind| TableColumn {
            key: key.to_owned(),
            label: label.to_owned(),
            kind,
        };
        ExportMeta {
            report_id: uuid::Uuid::nil(),
            report_version: 3,
            title: "Agents today".to_owned(),
            description: Some("Handled calls and service level per agent.".to_owned()),
            timezone: chrono_tz::Europe::London,
            from: at("2026-07-01T00:00:00Z"),
            to: at("2026-07-02T00:00:00Z"),
            generated_at: at("2026-07-02T06:30:00Z"),
            parameters: vec![
                (
                    "Metrics".to_owned(),
                    "Handled, Average handle time, Service level".to_owned(),
                ),
                ("Group by".to_owned(), "Agent, day".to_owned()),
            ],
            columns: vec![
                column("AGENT", "Agent", ColumnKind::Text),
                column("BUCKET_START", "Day", ColumnKind::Time),
                column("HANDLED", "Handled", ColumnKind::Metric(Unit::Count)),
                column(
                    "AVERAGE_HANDLE_TIME",
                    "Average handle time",
                    ColumnKind::Metric(Unit::Seconds),
                ),
                column("SERVICE_LEVEL", "Service level", ColumnKind::Metric(Unit::Percent)),
                column("CALLS_PER_HOUR", "Calls per hour", ColumnKind::Metric(Unit::PerHour)),
            ],
            chart,
            total_rows: None,
            truncated: false,
            bom: false,
        }
    }

    /// `n` rows (agent `i`: `10 + i` handled, AHT `143.5 + i` s, service level 87.5 % on even
    /// rows and none on odd ones) and their totals row.
    pub fn sample_rows(n: usize) -> (Vec<Vec<Cell>>, Vec<Cell>) {
        let day = Cell::local_time(at("2026-07-01T00:00:00Z"), chrono_tz::Europe::London);
        let rows = (0..n)
            .map(|i| {
                vec![
                    Cell::Text(format!("Agent {i}")),
                    day.clone(),
                    Cell::Number(Some(10.0 + i as f64)),
                    Cell::Number(Some(143.5 + i as f64)),
                    Cell::Number((i % 2 == 0).then_some(87.5)),
                    Cell::Number(Some(12.25)),
                ]
            })
            .collect();
        let handled: f64 = (0..n).map(|i| 10.0 + i as f64).sum();
        let totals = vec![
            Cell::Text("Total".to_owned()),
            Cell::Empty,
            Cell::Number(Some(handled)),
            Cell::Number(Some(150.0)),
            Cell::Number(Some(90.0)),
            Cell::Number(Some(12.25)),
        ];
        (rows, totals)
    }
}

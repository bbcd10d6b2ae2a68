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
//!   stream.

pub mod csv;
pub mod json;

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

    /// The stored and GraphQL name (`CSV`, `JSON`).
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Csv => "CSV",
            ExportFormat::Json => "JSON",
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
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Json => "application/json",
        }
    }

    /// A writer of this format into `file`.
    pub fn writer(self, meta: &ExportMeta, file: File) -> AppResult<Box<dyn TableWriter>> {
        Ok(match self {
            ExportFormat::Csv => Box::new(csv::CsvWriter::create(meta, file)?),
            ExportFormat::Json => Box::new(json::JsonWriter::create(meta, file)?),
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

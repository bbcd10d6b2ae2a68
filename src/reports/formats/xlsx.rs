//! XLSX exports, for people who open the file in Excel or LibreOffice: typed cells with number
//! formats, a bold and frozen header row with an autofilter, a bold totals row, a native chart,
//! and an `About` sheet with what the report asked.
//!
//! Written with `rust_xlsxwriter` in its constant-memory mode: each row goes to a temporary
//! file as soon as the next one starts, so a million-row export keeps memory flat. That mode
//! writes rows strictly in order, which is how a [`TableWriter`] is fed; column widths come
//! from the labels and column kinds (the rows are not known when the widths are set).
//! Measured in a debug build: 1,100,000 rows of five columns (two sheets) in 9.6 s with a peak
//! of 9.4 MB, as 100,000 rows (10.6 MB).
//!
//! How values are stored — the rule a reader of the cells needs:
//! * counts, integers and per-hour rates: numbers (`#,##0`, `0`, `0.00`);
//! * `Seconds` metrics: Excel durations, i.e. days (the value ÷ 86,400) shown as `[h]:mm:ss`,
//!   so that a person reads `0:02:23`, sums and averages stay durations, and a pivot table
//!   formats them as time. A BI tool reading raw cells multiplies by 86,400 to get seconds
//!   back (the CSV and JSON exports carry seconds);
//! * `Percent` metrics: fractions (the value ÷ 100) shown as `0.0%`, as Excel stores percents;
//! * dates: Excel dates (`yyyy-mm-dd`); instants: Excel date-times in the organization's local
//!   time (the offset is applied before the cell is written; Excel has no zones), shown as
//!   `yyyy-mm-dd hh:mm`, with the zone named on the About sheet;
//! * a metric without a value (a ratio over nothing): an empty cell.
//!
//! A sheet holds at most 1,048,576 rows, header included: past that the rows go on in new
//! sheets `Data 2`, `Data 3`, … each with the header repeated, and the About sheet says how
//! the rows were split. The chart plots the first [`CHART_ROWS`] rows of the first sheet.

use std::fs::File;

use rust_xlsxwriter::{
    Chart, ChartLegendPosition, ChartType, Format, FormatAlign, FormatBorder, Workbook, Worksheet, XlsxError,
};

use super::{Cell, ColumnKind, ExportMeta, TableColumn, TableWriter};
use crate::error::{AppError, AppResult};
use crate::kpi::metrics::Unit;
use crate::reports::definition::ChartKind;

/// Rows of an Excel sheet, the header included.
pub const SHEET_ROWS: u32 = 1_048_576;

/// Rows a chart plots at most: past that a chart is unreadable (and slow to open).
pub const CHART_ROWS: u32 = 500;

/// The name of the `n`th data sheet (1-based).
fn sheet_name(n: usize) -> String {
    if n == 1 {
        "Data".to_owned()
    } else {
        format!("Data {n}")
    }
}

fn failed(error: XlsxError) -> AppError {
    AppError::internal(format!("writing XLSX: {error}"))
}

/// A column's cell formats: body and totals (bold).
struct ColumnFormat {
    body: Format,
    total: Format,
}

fn number_format(kind: ColumnKind) -> Option<&'static str> {
    match kind {
        ColumnKind::Text => None,
        ColumnKind::Integer => Some("0"),
        ColumnKind::Date => Some("yyyy-mm-dd"),
        ColumnKind::Time => Some("yyyy-mm-dd hh:mm"),
        ColumnKind::Metric(Unit::Count) => Some("#,##0"),
        ColumnKind::Metric(Unit::Seconds) => Some("[h]:mm:ss"),
        ColumnKind::Metric(Unit::Percent) => Some("0.0%"),
        ColumnKind::Metric(Unit::PerHour) => Some("0.00"),
    }
}

impl ColumnFormat {
    fn new(kind: ColumnKind) -> Self {
        let mut body = Format::new();
        if let Some(format) = number_format(kind) {
            body = body.set_num_format(format);
        }
        let total = body.clone().set_bold().set_border_top(FormatBorder::Thin);
        ColumnFormat { body, total }
    }
}

/// A column's width in characters: its label (plus the autofilter's button) or what its
/// values need, whichever is wider.
fn column_width(column: &TableColumn) -> f64 {
    let values = match column.kind {
        ColumnKind::Text => 24,
        ColumnKind::Integer => 6,
        ColumnKind::Date => 11,
        ColumnKind::Time => 17,
        ColumnKind::Metric(Unit::Seconds) => 10,
        ColumnKind::Metric(_) => 9,
    };
    let label = column.display_label().chars().count() + 3;
    label.max(values).min(60) as f64
}

/// A cell's value as Excel stores it for its column (see the module header).
fn scaled(kind: ColumnKind, value: f64) -> f64 {
    match kind {
        ColumnKind::Metric(Unit::Seconds) => value / 86_400.0,
        ColumnKind::Metric(Unit::Percent) => value / 100.0,
        _ => value,
    }
}

pub struct XlsxWriter {
    workbook: Workbook,
    file: File,
    meta: ExportMeta,
    formats: Vec<ColumnFormat>,
    header: Format,
    /// Rows a sheet holds, the header included ([`SHEET_ROWS`] but in tests).
    sheet_rows: u32,
    /// Data sheets so far (the current one is the last); index of the current sheet.
    sheets: usize,
    /// The next row to write in the current sheet.
    next: u32,
    /// Data rows written, over all sheets.
    rows: u64,
    /// Data rows of the first sheet (what the chart can plot).
    first_sheet_rows: u32,
}

impl XlsxWriter {
    pub fn create(meta: &ExportMeta, file: File) -> AppResult<Self> {
        Self::with_sheet_rows(meta, file, SHEET_ROWS)
    }

    /// A writer whose sheets hold `sheet_rows` rows (header included), to test the split.
    pub fn with_sheet_rows(meta: &ExportMeta, file: File, sheet_rows: u32) -> AppResult<Self> {
        let mut writer = XlsxWriter {
            workbook: Workbook::new(),
            file,
            meta: meta.clone(),
            formats: meta.columns.iter().map(|c| ColumnFormat::new(c.kind)).collect(),
            header: Format::new()
                .set_bold()
                .set_border_bottom(FormatBorder::Thin)
                .set_align(FormatAlign::Center)
                .set_text_wrap(),
            sheet_rows: sheet_rows.clamp(2, SHEET_ROWS),
            sheets: 0,
            next: 0,
            rows: 0,
            first_sheet_rows: 0,
        };
        writer.new_sheet()?;
        Ok(writer)
    }

    fn sheet(&mut self) -> AppResult<&mut Worksheet> {
        self.workbook.worksheet_from_index(self.sheets - 1).map_err(failed)
    }

    /// Opens the next data sheet and writes its header row.
    fn new_sheet(&mut self) -> AppResult<()> {
        self.sheets += 1;
        let name = sheet_name(self.sheets);
        let sheet = self.workbook.add_worksheet_with_constant_memory();
        sheet.set_name(name).map_err(failed)?;
        sheet.set_freeze_panes(1, 0).map_err(failed)?;
        // Printed: landscape, one page wide, the header on every page.
        sheet.set_landscape().set_print_fit_to_pages(1, 0);
        sheet.set_repeat_rows(0, 0).map_err(failed)?;
        for (c, column) in self.meta.columns.iter().enumerate() {
            let c = col(c)?;
            sheet.set_column_width(c, column_width(column)).map_err(failed)?;
            sheet
                .write_string_with_format(0, c, column.display_label(), &self.header)
                .map_err(failed)?;
        }
        self.next = 1;
        Ok(())
    }

    /// Writes `row` in the next row of the current sheet (a new sheet when it is full).
    fn put(&mut self, row: &[Cell], totals: bool) -> AppResult<()> {
        if self.next >= self.sheet_rows {
            self.new_sheet()?;
        }
        let r = self.next;
        let kinds: Vec<ColumnKind> = self.meta.columns.iter().map(|c| c.kind).collect();
        let formats = std::mem::take(&mut self.formats);
        let written = (|| {
            let sheet = self.sheet()?;
            for (c, cell) in row.iter().enumerate() {
                let (Some(kind), Some(format)) = (kinds.get(c), formats.get(c)) else {
                    break;
                };
                let format = if totals { &format.total } else { &format.body };
                write_cell(sheet, r, col(c)?, *kind, cell, format).map_err(failed)?;
            }
            Ok::<_, AppError>(())
        })();
        self.formats = formats;
        written?;
        self.next += 1;
        Ok(())
    }

    /// The chart of `meta.chart` over the first sheet's rows, or None.
    fn chart(&self) -> Option<Chart> {
        let spec = self.meta.chart.as_ref()?;
        let rows = self.first_sheet_rows.min(CHART_ROWS);
        if rows == 0 {
            return None;
        }
        let mut chart = Chart::new(match spec.kind {
            ChartKind::Line => ChartType::Line,
            ChartKind::Bar => ChartType::Column,
            ChartKind::StackedBar => ChartType::ColumnStacked,
            ChartKind::Pie => ChartType::Pie,
            ChartKind::NoChart => return None,
        });
        let data = sheet_name(1);
        let category = u16::try_from(spec.category).ok()?;
        let series: &[usize] = if spec.kind == ChartKind::Pie {
            &spec.series[..spec.series.len().min(1)]
        } else {
            &spec.series
        };
        // Series of the first series' unit on the primary axis, the others (a percent beside
        // counts, say) on a secondary one, each axis formatted for its unit. Columns on two
        // axes would hide each other: beside columns, the secondary series are lines.
        let kind_of = |c: usize| self.meta.columns.get(c).map_or(ColumnKind::Text, |c| c.kind);
        let primary = series.first().map(|c| kind_of(*c));
        let mut secondary = None;
        let mut lines = Chart::new(ChartType::Line);
        for &c in series {
            let on_secondary = spec.kind != ChartKind::StackedBar && Some(kind_of(c)) != primary;
            let s = u16::try_from(c).ok()?;
            let target = if on_secondary && spec.kind == ChartKind::Bar {
                &mut lines
            } else {
                &mut chart
            };
            target
                .add_series()
                .set_name((data.as_str(), 0, s))
                .set_categories((data.as_str(), 1, category, rows, category))
                .set_values((data.as_str(), 1, s, rows, s))
                .set_secondary_axis(on_secondary);
            if on_secondary {
                secondary.get_or_insert(kind_of(c));
            }
        }
        chart.title().set_name(&self.meta.title);
        if spec.kind != ChartKind::Pie {
            let category_label = self.meta.columns.get(spec.category).map(|c| c.label.clone());
            if let Some(label) = category_label {
                chart.x_axis().set_name(&label);
            }
            if let Some(format) = primary.and_then(number_format) {
                chart.y_axis().set_num_format(format);
            }
            if let Some(format) = secondary.and_then(number_format) {
                chart.y2_axis().set_num_format(format);
                lines.y2_axis().set_num_format(format);
            }
        }
        if spec.kind == ChartKind::Bar && secondary.is_some() {
            chart.combine(&lines);
        }
        chart.legend().set_position(ChartLegendPosition::Bottom);
        chart.set_width(720).set_height(400);
        Some(chart)
    }

    /// The About sheet: title, description, interval, generated-at, parameters, rows.
    fn about(&mut self) -> AppResult<()> {
        let meta = &self.meta;
        let tz = meta.timezone;
        let local = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %:z").to_string();
        let mut lines: Vec<(String, String)> = Vec::new();
        if let Some(description) = meta.description.as_ref().filter(|d| !d.is_empty()) {
            lines.push(("Description".to_owned(), description.clone()));
        }
        lines.push(("From".to_owned(), local(meta.from)));
        lines.push(("To".to_owned(), local(meta.to)));
        if !meta.parameters.iter().any(|(label, _)| label == "Time zone") {
            lines.push(("Time zone".to_owned(), tz.name().to_owned()));
        }
        lines.push(("Generated at".to_owned(), local(meta.generated_at)));
        lines.extend(meta.parameters.iter().cloned());
        let mut rows = format!("{}", self.rows);
        if meta.truncated {
            rows.push_str(" (the report's row limit left rows out");
            if let Some(total) = meta.total_rows {
                rows.push_str(&format!(": {total} rows found"));
            }
            rows.push(')');
        }
        lines.push(("Rows".to_owned(), rows));
        if self.sheets > 1 {
            let names: Vec<String> = (1..=self.sheets).map(sheet_name).collect();
            lines.push((
                "Sheets".to_owned(),
                format!(
                    "The rows are split over {} sheets ({}), {} rows each at most: an Excel sheet holds {} rows.",
                    self.sheets,
                    names.join(", "),
                    self.sheet_rows - 1,
                    SHEET_ROWS
                ),
            ));
        }
        if let Some(spec) = &meta.chart {
            if spec.kind != ChartKind::NoChart && self.first_sheet_rows > CHART_ROWS {
                lines.push((
                    "Chart".to_owned(),
                    format!("The chart plots the first {CHART_ROWS} rows."),
                ));
            }
        }
        let title = meta.title.clone();
        let bold = Format::new().set_bold();
        let heading = Format::new().set_bold().set_font_size(14);
        let wrap = Format::new().set_text_wrap().set_align(FormatAlign::Top);
        let sheet = self.workbook.add_worksheet();
        sheet.set_name("About").map_err(failed)?;
        sheet.set_column_width(0, 16).map_err(failed)?;
        sheet.set_column_width(1, 80).map_err(failed)?;
        sheet.write_string_with_format(0, 0, &title, &heading).map_err(failed)?;
        for (i, (label, value)) in lines.iter().enumerate() {
            let r = u32::try_from(i + 2).map_err(AppError::internal)?;
            sheet.write_string_with_format(r, 0, label, &bold).map_err(failed)?;
            sheet.write_string_with_format(r, 1, value, &wrap).map_err(failed)?;
        }
        Ok(())
    }
}

fn col(c: usize) -> AppResult<u16> {
    u16::try_from(c).map_err(|_| AppError::internal("an XLSX sheet has at most 16,384 columns"))
}

fn write_cell(
    sheet: &mut Worksheet,
    r: u32,
    c: u16,
    kind: ColumnKind,
    cell: &Cell,
    format: &Format,
) -> Result<(), XlsxError> {
    match cell {
        Cell::Text(s) => sheet.write_string_with_format(r, c, s, format)?,
        Cell::Integer(n) => sheet.write_number_with_format(r, c, *n as f64, format)?,
        Cell::Number(Some(v)) => sheet.write_number_with_format(r, c, scaled(kind, *v), format)?,
        Cell::Date(d) => sheet.write_datetime_with_format(r, c, d, format)?,
        Cell::Time(t) => sheet.write_datetime_with_format(r, c, t.naive_local(), format)?,
        Cell::Number(None) | Cell::Empty => sheet.write_blank(r, c, format)?,
    };
    Ok(())
}

impl TableWriter for XlsxWriter {
    fn row(&mut self, row: &[Cell]) -> AppResult<()> {
        self.put(row, false)?;
        self.rows += 1;
        if self.sheets == 1 {
            self.first_sheet_rows += 1;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>, totals: Option<&[Cell]>) -> AppResult<()> {
        if let Some(totals) = totals {
            self.put(totals, true)?;
        }
        // The autofilter of each data sheet spans its header and rows (not the totals row).
        let last_col = col(self.meta.columns.len().saturating_sub(1))?;
        let full = self.sheet_rows - 1;
        for s in 0..self.sheets {
            let data_rows = if s + 1 < self.sheets {
                full
            } else {
                let before = u64::from(full) * s as u64;
                u32::try_from(self.rows.saturating_sub(before)).map_err(AppError::internal)?
            };
            let sheet = self.workbook.worksheet_from_index(s).map_err(failed)?;
            sheet.autofilter(0, 0, data_rows, last_col).map_err(failed)?;
        }
        if let Some(chart) = self.chart() {
            let anchor = col(self.meta.columns.len() + 1)?;
            self.workbook
                .worksheet_from_index(0)
                .map_err(failed)?
                .insert_chart(1, anchor, &chart)
                .map_err(failed)?;
        }
        self.about()?;
        self.workbook.worksheet_from_index(0).map_err(failed)?.set_active(true);
        let file = self.file.try_clone()?;
        self.workbook
            .save_to_writer(std::io::BufWriter::new(file))
            .map_err(failed)?;
        self.file.sync_all()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::reports::formats::tests_support::{meta, sample_rows};
    use crate::reports::formats::ChartSpec;
    use calamine::{open_workbook, Data, Reader, Xlsx};

    fn written(meta: &ExportMeta, rows: &[Vec<Cell>], totals: Option<&[Cell]>, sheet_rows: u32) -> tempfile::TempPath {
        let path = tempfile::NamedTempFile::new().unwrap().into_temp_path();
        let file = File::create(&path).unwrap();
        let mut writer: Box<dyn TableWriter> = Box::new(XlsxWriter::with_sheet_rows(meta, file, sheet_rows).unwrap());
        for row in rows {
            writer.row(row).unwrap();
        }
        writer.finish(totals).unwrap();
        path
    }

    #[test]
    fn cells_are_typed_and_scaled_per_unit() {
        let meta = meta(None);
        let (rows, totals) = sample_rows(3);
        let path = written(&meta, &rows, Some(&totals), SHEET_ROWS);
        let mut book: Xlsx<_> = open_workbook(&path).unwrap();
        assert_eq!(book.sheet_names(), ["Data", "About"]);
        let data = book.worksheet_range("Data").unwrap();
        assert_eq!(data.get_size(), (5, 6), "header, 3 rows, totals");
        assert_eq!(data.get((0, 0)), Some(&Data::String("Agent".into())));
        assert_eq!(data.get((1, 0)), Some(&Data::String("Agent 0".into())));
        // Bucket start: a date-time in local time; seconds as days, percent as a fraction.
        let start = data.get((1, 1)).unwrap();
        assert!(matches!(start, Data::DateTime(_)), "{start:?}");
        let Data::DateTime(start) = start else { unreachable!() };
        assert_eq!(
            start.as_datetime().unwrap().to_string(),
            "2026-07-01 01:00:00",
            "UTC midnight is 01:00 in London in July"
        );
        assert_eq!(data.get((1, 2)), Some(&Data::Float(10.0)));
        let Some(Data::DateTime(aht)) = data.get((1, 3)) else {
            panic!("{:?}", data.get((1, 3)))
        };
        assert!(aht.is_duration());
        assert!((aht.as_f64() * 86_400.0 - 143.5).abs() < 1e-9);
        assert_eq!(data.get((1, 4)), Some(&Data::Float(0.875)));
        assert_eq!(data.get((2, 4)), Some(&Data::Empty), "no value: an empty cell");
        assert_eq!(data.get((4, 0)), Some(&Data::String("Total".into())));
        assert_eq!(data.get((4, 2)), Some(&Data::Float(33.0)));
        let about = book.worksheet_range("About").unwrap();
        let text: Vec<String> = about.rows().flatten().map(|c| c.to_string()).collect();
        assert!(text.contains(&"Agents today".to_owned()));
        assert!(text.contains(&"Europe/London".to_owned()));
        assert!(text.iter().any(|t| t.ends_with("+01:00")), "{text:?}");
        assert!(text.contains(&"Metrics".to_owned()));
    }

    /// A part of the workbook at `path`, as text.
    fn part(path: &std::path::Path, name: &str) -> String {
        use std::io::Read;
        let mut archive = zip::ZipArchive::new(File::open(path).unwrap()).unwrap();
        let mut text = String::new();
        archive.by_name(name).unwrap().read_to_string(&mut text).unwrap();
        text
    }

    #[test]
    fn each_chart_kind_is_its_native_excel_chart_over_the_data_cells() {
        let (rows, totals) = sample_rows(5);
        for (kind, expected) in [
            (ChartKind::Line, vec!["<c:lineChart>"]),
            (ChartKind::Bar, vec!["<c:barChart>", r#"<c:grouping val="clustered"/>"#]),
            (
                ChartKind::StackedBar,
                vec!["<c:barChart>", r#"<c:grouping val="stacked"/>"#],
            ),
            (ChartKind::Pie, vec!["<c:pieChart>"]),
        ] {
            let meta = meta(Some(ChartSpec {
                kind,
                category: 0,
                series: vec![2],
            }));
            let path = written(&meta, &rows, Some(&totals), SHEET_ROWS);
            let chart = part(&path, "xl/charts/chart1.xml");
            for expected in expected {
                assert!(chart.contains(expected), "{kind:?}: {expected}");
            }
            // The rows, not the totals row.
            assert!(chart.contains("Data!$C$2:$C$6"), "{kind:?}");
            assert!(chart.contains("Data!$A$2:$A$6"), "{kind:?}");
        }
        // Counts and a percent: the percent on a secondary axis, as a line beside the columns.
        let mixed = meta(Some(ChartSpec {
            kind: ChartKind::Bar,
            category: 0,
            series: vec![2, 4],
        }));
        let path = written(&mixed, &rows, Some(&totals), SHEET_ROWS);
        let chart = part(&path, "xl/charts/chart1.xml");
        assert!(chart.contains("<c:barChart>") && chart.contains("<c:lineChart>"));
        assert!(chart.contains("Data!$E$2:$E$6"));
        assert!(
            chart.contains(r#"<c:numFmt formatCode="0.0%" sourceLinked="0"/>"#),
            "{chart}"
        );
        // No chart asked, none drawn.
        let path = written(&meta(None), &rows, None, SHEET_ROWS);
        let archive = zip::ZipArchive::new(File::open(&path).unwrap()).unwrap();
        assert!(!archive.file_names().any(|n| n.starts_with("xl/charts/")));
    }

    #[test]
    fn rows_past_a_sheet_go_on_in_new_sheets_with_the_header_repeated() {
        let meta = meta(Some(ChartSpec {
            kind: ChartKind::Bar,
            category: 0,
            series: vec![2, 4],
        }));
        let (rows, totals) = sample_rows(10);
        // Sheets of 4 rows: a header and 3 data rows; 10 rows and the totals take 4 sheets.
        let path = written(&meta, &rows, Some(&totals), 4);
        let mut book: Xlsx<_> = open_workbook(&path).unwrap();
        assert_eq!(book.sheet_names(), ["Data", "Data 2", "Data 3", "Data 4", "About"]);
        let mut agents = Vec::new();
        for name in ["Data", "Data 2", "Data 3", "Data 4"] {
            let sheet = book.worksheet_range(name).unwrap();
            assert_eq!(sheet.get((0, 0)), Some(&Data::String("Agent".into())), "{name}");
            agents.extend(sheet.rows().skip(1).map(|r| r[0].to_string()));
        }
        let expected: Vec<String> = (0..10)
            .map(|i| format!("Agent {i}"))
            .chain(["Total".to_owned()])
            .collect();
        assert_eq!(agents, expected);
        let about = book.worksheet_range("About").unwrap();
        let text: Vec<String> = about.rows().flatten().map(|c| c.to_string()).collect();
        assert!(text.iter().any(|t| t.contains("split over 4 sheets")), "{text:?}");
    }
}

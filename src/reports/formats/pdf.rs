//! PDF exports, for people who print or mail a report: the title and description, what the
//! report asked (its parameters), the interval and the time it was generated in the
//! organization's zone, the chart drawn as vector graphics, then the table over as many pages
//! as it takes — header row repeated on every page, numbers right-aligned and formatted per
//! unit, the totals row last — with "Page n of N" at the foot of each page.
//!
//! Laid out by `genpdfi` (a maintained fork of genpdf, on printpdf): it flows paragraphs and
//! elements over pages, breaks pages and calls a page decorator for each new page. The chart
//! and the table are elements of ours, drawn with its render API (lines and text in an area);
//! the page count is known by laying the document out once without keeping it, then again.
//!
//! The font is DejaVu Sans Condensed (regular and bold, open licence, see `fonts/`), compiled
//! into the binary: the file never depends on the fonts of the machine it is rendered on. The
//! file embeds only the glyphs it uses (printpdf's subsetting, which keeps the text mapping, so
//! the text can be searched and copied): a one-page report is about 90 KB, not 1.6 MB.
//!
//! Unlike the other writers this one holds its rows until `finish` (a page can only be laid out
//! with the widths of every row known, and the page count needs all of them), so it refuses a
//! report of more than [`MAX_ROWS`] rows at the row that passes the cap — pointing to CSV or
//! XLSX, which stream. The layout engine keeps every page's drawing operations until it writes
//! the file, about 17 KB per table row: measured in a debug build, 10,000 rows of five columns
//! made 320 pages in 2.6 s with a peak of 190 MB, 50,000 rows 1,600 pages and 860 MB. 10,000
//! rows (also the analytics engine's answer limit) keeps one export's memory bounded; more
//! pages than that are not read as a PDF anyway.

use std::cell::Cell as Counter;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::rc::Rc;
use std::sync::Arc;

use genpdfi::elements::{Break, Paragraph, TableLayout};
use genpdfi::fonts::{FontData, FontFamily};
use genpdfi::render::Area;
use genpdfi::style::{Color, LineStyle, Style, StyledString};
use genpdfi::{Context, Document, Element, Margins, Mm, PageDecorator, Position, RenderResult, Size};

use super::{Cell, ColumnKind, ExportMeta, TableWriter};
use crate::error::{AppError, AppResult};
use crate::kpi::metrics::Unit;
use crate::reports::definition::ChartKind;

/// Rows a PDF export holds at most.
pub const MAX_ROWS: usize = 10_000;

static REGULAR: &[u8] = include_bytes!("fonts/DejaVuSansCondensed.ttf");
static BOLD: &[u8] = include_bytes!("fonts/DejaVuSansCondensed-Bold.ttf");

/// A4, landscape: report tables are wide.
const PAPER: (f32, f32) = (297.0, 210.0);
const BODY_SIZE: u8 = 8;
const GREY: Color = Color::Rgb(110, 110, 110);
const RULE: Color = Color::Rgb(160, 160, 160);
const HEADER_FILL: Color = Color::Rgb(225, 229, 235);
const STRIPE: Color = Color::Rgb(244, 246, 248);
const PALETTE: [Color; 10] = [
    Color::Rgb(31, 119, 180),
    Color::Rgb(255, 127, 14),
    Color::Rgb(44, 160, 44),
    Color::Rgb(214, 39, 40),
    Color::Rgb(148, 103, 189),
    Color::Rgb(140, 86, 75),
    Color::Rgb(227, 119, 194),
    Color::Rgb(127, 127, 127),
    Color::Rgb(188, 189, 34),
    Color::Rgb(23, 190, 207),
];

/// The error of a report with more rows than a PDF holds.
pub fn too_many_rows(cap: usize) -> AppError {
    AppError::bad_input(format!(
        "A PDF export holds at most {} rows and this report has more: export it as CSV or XLSX, \
         or narrow its interval or grouping.",
        thousands(cap as f64)
    ))
}

fn failed(error: genpdfi::error::Error) -> AppError {
    AppError::internal(format!("writing PDF: {error}"))
}

fn mm(v: f32) -> Mm {
    Mm::from(v)
}

fn f(v: Mm) -> f32 {
    v.into()
}

/// `1234567.0` as `1,234,567`.
fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 && digits != "0" {
        out.insert(0, '-');
    }
    out
}

/// A metric value as the PDF shows it: counts with thousands separators, durations as
/// `h:mm:ss`, percents with one decimal, rates with two.
pub fn format_value(kind: ColumnKind, v: f64) -> String {
    match kind {
        ColumnKind::Metric(Unit::Seconds) => {
            let total = v.round() as i64;
            let sign = if total < 0 { "-" } else { "" };
            let total = total.abs();
            format!("{sign}{}:{:02}:{:02}", total / 3600, total / 60 % 60, total % 60)
        }
        ColumnKind::Metric(Unit::Percent) => format!("{v:.1}%"),
        ColumnKind::Metric(Unit::PerHour) => format!("{v:.2}"),
        ColumnKind::Metric(Unit::Count) if v.fract() != 0.0 => {
            let whole = thousands(v.trunc());
            format!("{whole}.{:02}", ((v.abs().fract()) * 100.0).round() as i64)
        }
        _ => thousands(v),
    }
}

/// A cell as the PDF shows it.
fn text(kind: ColumnKind, cell: &Cell) -> String {
    match cell {
        Cell::Text(s) => s.clone(),
        Cell::Integer(n) => n.to_string(),
        Cell::Number(Some(v)) => format_value(kind, *v),
        Cell::Number(None) => "–".to_owned(),
        Cell::Date(d) => d.format("%Y-%m-%d").to_string(),
        Cell::Time(t) => t.format("%Y-%m-%d %H:%M").to_string(),
        Cell::Empty => String::new(),
    }
}

fn right_aligned(kind: ColumnKind) -> bool {
    matches!(kind, ColumnKind::Integer | ColumnKind::Metric(_))
}

pub struct PdfWriter {
    file: File,
    meta: ExportMeta,
    rows: Vec<Vec<Cell>>,
    cap: usize,
}

impl PdfWriter {
    pub fn create(meta: &ExportMeta, file: File) -> AppResult<Self> {
        Self::with_cap(meta, file, MAX_ROWS)
    }

    /// A writer that refuses more than `cap` rows.
    pub fn with_cap(meta: &ExportMeta, file: File, cap: usize) -> AppResult<Self> {
        Ok(PdfWriter {
            file,
            meta: meta.clone(),
            rows: Vec::new(),
            cap,
        })
    }
}

impl TableWriter for PdfWriter {
    fn row(&mut self, row: &[Cell]) -> AppResult<()> {
        if self.rows.len() >= self.cap {
            return Err(too_many_rows(self.cap));
        }
        self.rows.push(row.to_vec());
        Ok(())
    }

    fn finish(self: Box<Self>, totals: Option<&[Cell]>) -> AppResult<()> {
        let PdfWriter { file, meta, rows, .. } = *self;
        let kinds: Vec<ColumnKind> = meta.columns.iter().map(|c| c.kind).collect();
        let texts =
            |row: &[Cell]| -> Vec<String> { kinds.iter().zip(row).map(|(kind, cell)| text(*kind, cell)).collect() };
        let table = Rc::new(TextTable {
            labels: meta.columns.iter().map(|c| c.display_label()).collect(),
            right: kinds.iter().map(|k| right_aligned(*k)).collect(),
            rows: rows.iter().map(|r| texts(r)).collect(),
            totals: totals.map(texts),
        });
        let chart = meta
            .chart
            .as_ref()
            .and_then(|spec| ChartData::new(&meta, spec, &rows))
            .map(Rc::new);
        drop(rows);
        // Once to count the pages, then for good with "of N".
        let pages = render(&meta, &table, chart.as_ref(), None, std::io::sink())?;
        let mut out = BufWriter::with_capacity(64 * 1024, file);
        render(&meta, &table, chart.as_ref(), Some(pages), &mut out)?;
        out.flush()?;
        out.into_inner()
            .map_err(|e| AppError::internal(format!("writing PDF: {}", e.error())))?
            .sync_all()?;
        Ok(())
    }
}

fn fonts() -> AppResult<FontFamily<FontData>> {
    let regular = Arc::new(REGULAR.to_vec());
    let bold = Arc::new(BOLD.to_vec());
    Ok(FontFamily {
        regular: FontData::new_shared(regular.clone(), None).map_err(failed)?,
        bold: FontData::new_shared(bold.clone(), None).map_err(failed)?,
        italic: FontData::new_shared(regular, None).map_err(failed)?,
        bold_italic: FontData::new_shared(bold, None).map_err(failed)?,
    })
}

/// Lays the document out into `out`; returns its page count.
fn render(
    meta: &ExportMeta,
    table: &Rc<TextTable>,
    chart: Option<&Rc<ChartData>>,
    pages: Option<usize>,
    out: impl Write,
) -> AppResult<usize> {
    let mut doc = Document::new(fonts()?);
    doc.set_title(meta.title.clone());
    doc.set_paper_size(Size::new(PAPER.0, PAPER.1));
    doc.set_font_size(BODY_SIZE);
    doc.set_line_spacing(1.2);
    let count = Rc::new(Counter::new(0));
    doc.set_page_decorator(Pages {
        page: 0,
        total: pages,
        count: count.clone(),
        title: meta.title.clone(),
    });

    doc.push(Paragraph::new(StyledString::new(
        meta.title.clone(),
        Style::new().bold().with_font_size(16),
        None,
    )));
    if let Some(description) = meta.description.as_ref().filter(|d| !d.trim().is_empty()) {
        doc.push(Break::new(0.3));
        doc.push(Paragraph::new(StyledString::new(
            description.clone(),
            Style::new().with_font_size(10),
            None,
        )));
    }
    doc.push(Break::new(0.8));

    let tz = meta.timezone;
    let local = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %:z").to_string();
    let mut lines: Vec<(String, String)> = vec![
        (
            "Interval".to_owned(),
            format!("{} to {} ({})", local(meta.from), local(meta.to), tz.name()),
        ),
        (
            "Generated at".to_owned(),
            format!("{} ({})", local(meta.generated_at), tz.name()),
        ),
    ];
    lines.extend(meta.parameters.iter().cloned());
    let mut rows = thousands(table.rows.len() as f64);
    if meta.truncated {
        rows.push_str(" (the report's row limit left rows out");
        if let Some(total) = meta.total_rows {
            rows.push_str(&format!(": {} found", thousands(total as f64)));
        }
        rows.push(')');
    }
    lines.push(("Rows".to_owned(), rows));
    let mut parameters = TableLayout::new(vec![1, 6]);
    for (label, value) in lines {
        parameters
            .row()
            .element(Paragraph::new(StyledString::new(
                label,
                Style::new().bold().with_color(GREY),
                None,
            )))
            .element(Paragraph::new(value))
            .push()
            .map_err(failed)?;
    }
    doc.push(parameters);
    doc.push(Break::new(1.0));

    if let Some(chart) = chart {
        doc.push(ChartElement { data: chart.clone() });
        doc.push(Break::new(1.0));
    }
    doc.push(TableElement {
        data: table.clone(),
        next: 0,
        totals_done: false,
        widths: None,
    });
    doc.render(out).map_err(failed)?;
    Ok(count.get())
}

/// Page margins, the running foot (report title, "Page n of N") and the page count.
struct Pages {
    page: usize,
    total: Option<usize>,
    count: Rc<Counter<usize>>,
    title: String,
}

impl PageDecorator for Pages {
    fn decorate_page<'a>(
        &mut self,
        context: &Context,
        mut area: Area<'a>,
        style: Style,
    ) -> Result<Area<'a>, genpdfi::error::Error> {
        self.page += 1;
        self.count.set(self.page);
        area.add_margins(Margins::trbl(12, 14, 9, 14));
        let small = style.with_font_size(7).with_color(GREY);
        let cache = &context.font_cache;
        let line = f(small.line_height(cache));
        let size = area.size();
        let (width, height) = (f(size.width), f(size.height));
        let y = height - line;
        let number = match self.total {
            Some(total) => format!("Page {} of {}", self.page, total),
            None => format!("Page {}", self.page),
        };
        let number_width = f(small.str_width(cache, &number));
        area.print_str(cache, Position::new(mm(width - number_width), mm(y)), small, &number)?;
        let title = fit(cache, small, &self.title, width - number_width - 10.0);
        area.print_str(cache, Position::new(mm(0.0), mm(y)), small, title)?;
        area.draw_line(
            [
                Position::new(mm(0.0), mm(y - 1.2)),
                Position::new(mm(width), mm(y - 1.2)),
            ],
            LineStyle::new().with_thickness(mm(0.2)).with_color(RULE),
        );
        area.set_height(mm(y - 4.0));
        Ok(area)
    }
}

/// `s`, cut with an ellipsis to fit `width` millimetres in `style`.
fn fit(cache: &genpdfi::fonts::FontCache, style: Style, s: &str, width: f32) -> String {
    if f(style.str_width(cache, s)) <= width {
        return s.to_owned();
    }
    let mut cut: Vec<char> = s.chars().collect();
    while !cut.is_empty() {
        cut.pop();
        let candidate: String = cut.iter().collect::<String>() + "…";
        if f(style.str_width(cache, &candidate)) <= width {
            return candidate;
        }
    }
    String::new()
}

/// Draws a filled rectangle (x, y from the area's top left) as one stroke as wide as the
/// rectangle: the render API strokes lines, and a butt-capped stroke is a rectangle.
fn rect(area: &Area<'_>, x: f32, y: f32, w: f32, h: f32, color: Color) {
    if w <= 0.0 || h <= 0.0 {
        return;
    }
    area.draw_line(
        [
            Position::new(mm(x), mm(y + h / 2.0)),
            Position::new(mm(x + w), mm(y + h / 2.0)),
        ],
        LineStyle::new().with_thickness(mm(h)).with_color(color),
    );
}

fn line(area: &Area<'_>, points: &[(f32, f32)], thickness: f32, color: Color) {
    area.draw_line(
        points.iter().map(|(x, y)| Position::new(mm(*x), mm(*y))),
        LineStyle::new().with_thickness(mm(thickness)).with_color(color),
    );
}

/// The table as the PDF shows it: every cell already text.
struct TextTable {
    labels: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
    totals: Option<Vec<String>>,
}

/// The table, as many rows per page as fit, its header row first on every page.
struct TableElement {
    data: Rc<TextTable>,
    next: usize,
    totals_done: bool,
    widths: Option<Vec<f32>>,
}

const CELL_PAD: f32 = 1.5;

impl TableElement {
    /// Column widths: what the widest cell (of the first thousands of rows) and the label need,
    /// scaled down to the page when they do not fit.
    fn widths(&self, cache: &genpdfi::fonts::FontCache, style: Style, available: f32) -> Vec<f32> {
        let bold = style.bold();
        let mut widths: Vec<f32> = self
            .data
            .labels
            .iter()
            .map(|l| f(bold.str_width(cache, l)) + 2.0 * CELL_PAD)
            .collect();
        let sample = self.data.rows.iter().take(5_000).chain(self.data.totals.iter());
        for row in sample {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = w.max(f(bold.str_width(cache, cell)) + 2.0 * CELL_PAD);
            }
        }
        for w in &mut widths {
            *w = w.min(90.0);
        }
        let total: f32 = widths.iter().sum();
        if total > available {
            let scale = available / total;
            widths.iter_mut().for_each(|w| *w *= scale);
        }
        widths
    }

    fn draw_row(
        &self,
        area: &Area<'_>,
        cache: &genpdfi::fonts::FontCache,
        widths: &[f32],
        cells: &[String],
        (y, row_height): (f32, f32),
        style: Style,
    ) -> Result<(), genpdfi::error::Error> {
        let text_y = y + (row_height - f(style.line_height(cache))) / 2.0;
        let mut x = 0.0;
        for ((w, cell), right) in widths.iter().zip(cells).zip(&self.data.right) {
            let shown = fit(cache, style, cell, w - 2.0 * CELL_PAD);
            let width = f(style.str_width(cache, &shown));
            let at = if *right { x + w - CELL_PAD - width } else { x + CELL_PAD };
            if !shown.is_empty() {
                area.print_str(cache, Position::new(mm(at), mm(text_y)), style, shown)?;
            }
            x += w;
        }
        Ok(())
    }
}

impl Element for TableElement {
    fn render(
        &mut self,
        context: &Context,
        area: Area<'_>,
        style: Style,
    ) -> Result<RenderResult, genpdfi::error::Error> {
        let cache = &context.font_cache;
        let size = area.size();
        let (width, height) = (f(size.width), f(size.height));
        let widths = match &self.widths {
            Some(widths) => widths.clone(),
            None => {
                let widths = self.widths(cache, style, width);
                self.widths = Some(widths.clone());
                widths
            }
        };
        let table_width: f32 = widths.iter().sum();
        let row_height = f(style.line_height(cache)) + 1.6;
        let rows_left = self.data.rows.len() - self.next + usize::from(self.data.totals.is_some() && !self.totals_done);
        // The header and one row, or nothing on this page (no header alone at a page's foot).
        if height < 2.0 * row_height {
            return Ok(RenderResult {
                size: Size::new(0, 0),
                has_more: true,
            });
        }
        let bold = style.bold();
        rect(&area, 0.0, 0.0, table_width, row_height, HEADER_FILL);
        self.draw_row(&area, cache, &widths, &self.data.labels, (0.0, row_height), bold)?;
        line(&area, &[(0.0, row_height), (table_width, row_height)], 0.3, RULE);
        let mut y = row_height;
        if rows_left == 0 {
            let none = Style::new().italic().with_color(GREY);
            area.print_str(
                cache,
                Position::new(mm(CELL_PAD), mm(y + 0.8)),
                none,
                "No rows in this interval.",
            )?;
            y += row_height;
        }
        while self.next < self.data.rows.len() {
            // The last row stays with the totals row: never the totals alone on a page.
            let last_with_totals = self.next + 1 == self.data.rows.len() && self.data.totals.is_some();
            let needed = if last_with_totals {
                2.0 * row_height + 0.5
            } else {
                row_height
            };
            if y + needed > height {
                return Ok(RenderResult {
                    size: Size::new(mm(width), mm(y)),
                    has_more: true,
                });
            }
            if self.next % 2 == 1 {
                rect(&area, 0.0, y, table_width, row_height, STRIPE);
            }
            let row = &self.data.rows[self.next];
            self.draw_row(&area, cache, &widths, row, (y, row_height), style)?;
            y += row_height;
            self.next += 1;
        }
        if let (Some(totals), false) = (&self.data.totals, self.totals_done) {
            if y + row_height + 0.5 > height {
                return Ok(RenderResult {
                    size: Size::new(mm(width), mm(y)),
                    has_more: true,
                });
            }
            line(
                &area,
                &[(0.0, y + 0.2), (table_width, y + 0.2)],
                0.4,
                Color::Rgb(60, 60, 60),
            );
            self.draw_row(&area, cache, &widths, totals, (y + 0.5, row_height), bold)?;
            y += row_height + 0.5;
            self.totals_done = true;
        }
        Ok(RenderResult {
            size: Size::new(mm(width), mm(y)),
            has_more: false,
        })
    }
}

/// What a chart plots: category labels, and per series its label, kind and values.
struct ChartData {
    kind: ChartKind,
    category_label: String,
    categories: Vec<String>,
    series: Vec<(String, ColumnKind, Vec<Option<f64>>)>,
    /// Rows left out (past [`CHART_POINTS`] or folded into "Other" of a pie).
    omitted: usize,
}

/// Categories a line or bar chart shows at most; slices of a pie (the rest is "Other").
const CHART_POINTS: usize = 60;
const PIE_SLICES: usize = 9;
const CHART_HEIGHT: f32 = 78.0;

impl ChartData {
    fn new(meta: &ExportMeta, spec: &super::ChartSpec, rows: &[Vec<Cell>]) -> Option<ChartData> {
        if spec.kind == ChartKind::NoChart || rows.is_empty() {
            return None;
        }
        let category_column = meta.columns.get(spec.category)?;
        let series_columns: Vec<usize> = if spec.kind == ChartKind::Pie {
            spec.series.iter().copied().take(1).collect()
        } else {
            spec.series.clone()
        };
        let value = |row: &Vec<Cell>, c: usize| match row.get(c) {
            Some(Cell::Number(v)) => *v,
            Some(Cell::Integer(n)) => Some(*n as f64),
            _ => None,
        };
        let label = |row: &Vec<Cell>| {
            row.get(spec.category)
                .map_or_else(String::new, |c| text(category_column.kind, c))
        };
        let mut categories: Vec<String>;
        let mut series: Vec<(String, ColumnKind, Vec<Option<f64>>)> = series_columns
            .iter()
            .filter_map(|c| {
                meta.columns
                    .get(*c)
                    .map(|col| (col.label.clone(), col.kind, Vec::new()))
            })
            .collect();
        let omitted;
        if spec.kind == ChartKind::Pie {
            let c = *series_columns.first()?;
            let shown = rows.len().min(if rows.len() > PIE_SLICES + 1 {
                PIE_SLICES
            } else {
                PIE_SLICES + 1
            });
            categories = rows[..shown].iter().map(label).collect();
            let mut values: Vec<Option<f64>> = rows[..shown].iter().map(|r| value(r, c)).collect();
            if shown < rows.len() {
                categories.push(format!("Other ({} rows)", rows.len() - shown));
                values.push(Some(rows[shown..].iter().filter_map(|r| value(r, c)).sum()));
            }
            omitted = 0;
            series.first_mut()?.2 = values;
        } else {
            let shown = rows.len().min(CHART_POINTS);
            categories = rows[..shown].iter().map(label).collect();
            for (s, c) in series.iter_mut().zip(&series_columns) {
                s.2 = rows[..shown].iter().map(|r| value(r, *c)).collect();
            }
            omitted = rows.len() - shown;
        }
        Some(ChartData {
            kind: spec.kind,
            category_label: category_column.label.clone(),
            categories,
            series,
            omitted,
        })
    }
}

/// A "nice" step for about `ticks` intervals up to `max`: 1, 2 or 5 times a power of ten.
fn nice_step(max: f64, ticks: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / ticks;
    let power = 10f64.powf(raw.log10().floor());
    let unit = raw / power;
    let nice = if unit <= 1.0 {
        1.0
    } else if unit <= 2.0 {
        2.0
    } else if unit <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

struct ChartElement {
    data: Rc<ChartData>,
}

/// A value axis: ticks every `step` from 0 to `top`, labelled in the unit of `kind`.
struct Scale {
    kind: ColumnKind,
    step: f64,
    top: f64,
}

impl Scale {
    fn new(kind: ColumnKind, max: f64) -> Scale {
        // Seconds ticks at whole minutes read better than at 0:01:23.
        let step = match kind {
            ColumnKind::Metric(Unit::Seconds) if max > 60.0 => nice_step(max / 60.0, 5.0).max(1.0) * 60.0,
            _ => nice_step(max, 5.0),
        };
        let top = if max > 0.0 { (max / step).ceil() * step } else { step };
        Scale { kind, step, top }
    }

    fn labels(&self) -> Vec<String> {
        (0..=((self.top / self.step).round() as usize))
            .map(|k| format_value(self.kind, k as f64 * self.step))
            .collect()
    }
}

impl ChartElement {
    fn legend(
        &self,
        area: &Area<'_>,
        cache: &genpdfi::fonts::FontCache,
        style: Style,
        (x, y): (f32, f32),
        width: f32,
        entries: &[(String, Color)],
    ) -> Result<(), genpdfi::error::Error> {
        let line_height = f(style.line_height(cache)) + 0.8;
        for (i, (label, color)) in entries.iter().enumerate() {
            let top = y + i as f32 * line_height;
            rect(area, x, top + 0.6, 3.0, 3.0, *color);
            let label = fit(cache, style, label, width - 5.0);
            area.print_str(cache, Position::new(mm(x + 4.5), mm(top)), style, label)?;
        }
        Ok(())
    }

    fn pie(
        &self,
        area: &Area<'_>,
        cache: &genpdfi::fonts::FontCache,
        style: Style,
        width: f32,
    ) -> Result<(), genpdfi::error::Error> {
        let Some((label, kind, values)) = self.data.series.first() else {
            return Ok(());
        };
        let heading = style.bold();
        area.print_str(cache, Position::new(mm(0.0), mm(0.0)), heading, label)?;
        let total: f64 = values.iter().flatten().filter(|v| **v > 0.0).sum();
        let radius = (CHART_HEIGHT - 12.0) / 2.0;
        let (cx, cy) = (radius + 8.0, 8.0 + radius);
        let mut entries = Vec::new();
        let mut start = -std::f64::consts::FRAC_PI_2;
        for (i, (category, value)) in self.data.categories.iter().zip(values).enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let v = value.unwrap_or(0.0).max(0.0);
            let share = if total > 0.0 { v / total } else { 0.0 };
            entries.push((
                format!(
                    "{category}: {} ({:.1}%)",
                    value.map_or("–".to_owned(), |v| format_value(*kind, v)),
                    share * 100.0
                ),
                color,
            ));
            if share <= 0.0 {
                continue;
            }
            let sweep = share * std::f64::consts::TAU;
            // A wedge: an arc at half the radius, stroked as wide as the radius, so that the
            // stroke covers the wedge from the centre to the rim.
            let steps = ((sweep.to_degrees() / 2.0).ceil() as usize).max(2);
            let points: Vec<(f32, f32)> = (0..=steps)
                .map(|k| {
                    let a = start + sweep * k as f64 / steps as f64;
                    (
                        cx + (radius / 2.0) * a.cos() as f32,
                        cy + (radius / 2.0) * a.sin() as f32,
                    )
                })
                .collect();
            line(area, &points, radius, color);
            start += sweep;
        }
        // Slice edges in white, so neighbouring slices of close colours stay apart.
        let mut a = -std::f64::consts::FRAC_PI_2;
        for value in values {
            let share = if total > 0.0 {
                value.unwrap_or(0.0).max(0.0) / total
            } else {
                0.0
            };
            if share > 0.0 && share < 1.0 {
                line(
                    area,
                    &[(cx, cy), (cx + radius * a.cos() as f32, cy + radius * a.sin() as f32)],
                    0.4,
                    Color::Rgb(255, 255, 255),
                );
            }
            a += share * std::f64::consts::TAU;
        }
        let legend_x = cx + radius + 12.0;
        self.legend(area, cache, style, (legend_x, 8.0), width - legend_x, &entries)
    }

    fn axes(
        &self,
        area: &Area<'_>,
        cache: &genpdfi::fonts::FontCache,
        style: Style,
        width: f32,
    ) -> Result<(), genpdfi::error::Error> {
        let data = &self.data;
        let stacked = data.kind == ChartKind::StackedBar;
        let n = data.categories.len().max(1);
        // The first series' unit on the left axis; series of another unit (a percent beside
        // counts) on a right one, as lines — except in a stack, whose parts share one axis.
        let primary = data.series.first().map_or(ColumnKind::Metric(Unit::Count), |s| s.1);
        let on_right = |kind: ColumnKind| !stacked && kind != primary;
        let right_kinds: Vec<ColumnKind> = data.series.iter().map(|s| s.1).filter(|k| on_right(*k)).collect();
        let right_kind = match right_kinds.first() {
            Some(first) if right_kinds.iter().all(|k| k == first) => Some(*first),
            // Several other units: plain numbers.
            Some(_) => Some(ColumnKind::Metric(Unit::Count)),
            None => None,
        };
        let max_of = |right: bool| -> f64 {
            data.series
                .iter()
                .filter(|s| on_right(s.1) == right)
                .flat_map(|s| s.2.iter().flatten())
                .copied()
                .fold(0.0, f64::max)
        };
        let left_max = if stacked {
            (0..n)
                .map(|i| {
                    data.series
                        .iter()
                        .filter_map(|s| s.2.get(i).copied().flatten())
                        .filter(|v| *v > 0.0)
                        .sum::<f64>()
                })
                .fold(0.0, f64::max)
        } else {
            max_of(false)
        };
        let left = Scale::new(primary, left_max);
        let right = right_kind.map(|kind| Scale::new(kind, max_of(true)));
        let small = style.with_font_size(7);
        let legend_width = 48.0;
        let widest = |scale: &Scale| {
            scale
                .labels()
                .iter()
                .map(|t| f(small.str_width(cache, t)))
                .fold(0.0, f32::max)
        };
        let line_height = f(small.line_height(cache));
        let (plot_top, plot_bottom) = (4.0, CHART_HEIGHT - 2.0 * line_height - 4.0);
        let right_width = right.as_ref().map_or(0.0, |r| widest(r) + 3.0);
        let (plot_left, plot_right) = (widest(&left) + 3.0, width - legend_width - 4.0 - right_width);
        let plot_w = plot_right - plot_left;
        let plot_h = plot_bottom - plot_top;
        let y_on = |scale: &Scale, v: f64| plot_bottom - (v / scale.top) as f32 * plot_h;
        let y_of = |v: f64| y_on(&left, v);

        for (k, label) in left.labels().iter().enumerate() {
            let y = y_of(k as f64 * left.step);
            if k > 0 {
                line(
                    area,
                    &[(plot_left, y), (plot_right, y)],
                    0.15,
                    Color::Rgb(215, 215, 215),
                );
            }
            let w = f(small.str_width(cache, label));
            area.print_str(
                cache,
                Position::new(mm(plot_left - 1.5 - w), mm(y - line_height / 2.0)),
                small,
                label,
            )?;
        }
        if let Some(right) = &right {
            for (k, label) in right.labels().iter().enumerate() {
                let y = y_on(right, k as f64 * right.step);
                area.print_str(
                    cache,
                    Position::new(mm(plot_right + 1.5), mm(y - line_height / 2.0)),
                    small,
                    label,
                )?;
            }
            line(
                area,
                &[(plot_right, plot_top), (plot_right, plot_bottom)],
                0.3,
                Color::Rgb(60, 60, 60),
            );
        }

        let slot = plot_w / n as f32;
        let x_of = |i: usize| plot_left + slot * (i as f32 + 0.5);
        let draw_line = |s: usize, values: &[Option<f64>], scale: &Scale| {
            let color = PALETTE[s % PALETTE.len()];
            let mut run: Vec<(f32, f32)> = Vec::new();
            for (i, v) in values.iter().enumerate() {
                match v {
                    Some(v) => {
                        let point = (x_of(i), y_on(scale, *v));
                        rect(area, point.0 - 0.8, point.1 - 0.8, 1.6, 1.6, color);
                        run.push(point);
                    }
                    None => {
                        if run.len() > 1 {
                            line(area, &run, 0.6, color);
                        }
                        run.clear();
                    }
                }
            }
            if run.len() > 1 {
                line(area, &run, 0.6, color);
            }
        };
        match data.kind {
            ChartKind::Line => {
                for (s, (_, kind, values)) in data.series.iter().enumerate() {
                    let scale = if on_right(*kind) {
                        right.as_ref().unwrap_or(&left)
                    } else {
                        &left
                    };
                    draw_line(s, values, scale);
                }
            }
            ChartKind::Bar => {
                let bars = data.series.iter().filter(|s| !on_right(s.1)).count().max(1);
                let group = slot * 0.8;
                let bar = group / bars as f32;
                let mut b = 0;
                for (s, (_, kind, values)) in data.series.iter().enumerate() {
                    if on_right(*kind) {
                        continue;
                    }
                    let color = PALETTE[s % PALETTE.len()];
                    for (i, v) in values.iter().enumerate() {
                        if let Some(v) = v.filter(|v| *v > 0.0) {
                            let x = x_of(i) - group / 2.0 + bar * b as f32;
                            rect(area, x, y_of(v), bar * 0.92, plot_bottom - y_of(v), color);
                        }
                    }
                    b += 1;
                }
                // Series of the right axis, as lines over the bars.
                for (s, (_, kind, values)) in data.series.iter().enumerate() {
                    if let (true, Some(scale)) = (on_right(*kind), right.as_ref()) {
                        draw_line(s, values, scale);
                    }
                }
            }
            ChartKind::StackedBar => {
                let bar = slot * 0.7;
                for i in 0..n {
                    let mut base = 0.0;
                    for (s, (_, _, values)) in data.series.iter().enumerate() {
                        if let Some(v) = values.get(i).copied().flatten().filter(|v| *v > 0.0) {
                            let color = PALETTE[s % PALETTE.len()];
                            rect(
                                area,
                                x_of(i) - bar / 2.0,
                                y_of(base + v),
                                bar,
                                y_of(base) - y_of(base + v),
                                color,
                            );
                            base += v;
                        }
                    }
                }
            }
            ChartKind::Pie | ChartKind::NoChart => {}
        }
        // Axes over the bars.
        line(
            area,
            &[
                (plot_left, plot_top),
                (plot_left, plot_bottom),
                (plot_right, plot_bottom),
            ],
            0.3,
            Color::Rgb(60, 60, 60),
        );

        // Category labels: every k-th, so that they do not overlap.
        let widest = data
            .categories
            .iter()
            .map(|c| f(small.str_width(cache, c)))
            .fold(0.0, f32::max)
            .min(40.0)
            + 2.0;
        let every = ((widest / slot).ceil() as usize).max(1);
        let label_width = (slot * every as f32 - 1.0).min(40.0);
        for (i, category) in data.categories.iter().enumerate().step_by(every) {
            let shown = fit(cache, small, category, label_width);
            let w = f(small.str_width(cache, &shown));
            area.print_str(
                cache,
                Position::new(mm(x_of(i) - w / 2.0), mm(plot_bottom + 1.0)),
                small,
                shown,
            )?;
        }
        let mut axis_title = data.category_label.clone();
        if data.omitted > 0 {
            axis_title.push_str(&format!(
                " (first {} rows of {})",
                data.categories.len(),
                data.categories.len() + data.omitted
            ));
        }
        let title_width = f(small.bold().str_width(cache, &axis_title));
        area.print_str(
            cache,
            Position::new(
                mm(plot_left + (plot_w - title_width) / 2.0),
                mm(plot_bottom + 1.5 + line_height),
            ),
            small.bold(),
            axis_title,
        )?;
        let entries: Vec<(String, Color)> = data
            .series
            .iter()
            .enumerate()
            .map(|(s, (label, kind, _))| {
                let label = if right.is_some() && on_right(*kind) {
                    format!("{label} (right)")
                } else {
                    label.clone()
                };
                (label, PALETTE[s % PALETTE.len()])
            })
            .collect();
        let legend_x = plot_right + right_width + 6.0;
        self.legend(area, cache, style, (legend_x, plot_top), legend_width - 2.0, &entries)
    }
}

impl Element for ChartElement {
    fn render(
        &mut self,
        context: &Context,
        area: Area<'_>,
        style: Style,
    ) -> Result<RenderResult, genpdfi::error::Error> {
        let size = area.size();
        if f(size.height) < CHART_HEIGHT {
            return Ok(RenderResult {
                size: Size::new(0, 0),
                has_more: true,
            });
        }
        let width = f(size.width).min(240.0);
        if self.data.kind == ChartKind::Pie {
            self.pie(&area, &context.font_cache, style, width)?;
        } else {
            self.axes(&area, &context.font_cache, style, width)?;
        }
        Ok(RenderResult {
            size: Size::new(size.width, mm(CHART_HEIGHT)),
            has_more: false,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::error::ErrorCode;
    use crate::reports::formats::tests_support::{meta, sample_rows};
    use crate::reports::formats::ChartSpec;

    fn written(meta: &ExportMeta, rows: &[Vec<Cell>], totals: Option<&[Cell]>) -> Vec<u8> {
        let path = tempfile::NamedTempFile::new().unwrap().into_temp_path();
        let mut writer: Box<dyn TableWriter> = Box::new(PdfWriter::create(meta, File::create(&path).unwrap()).unwrap());
        for row in rows {
            writer.row(row).unwrap();
        }
        writer.finish(totals).unwrap();
        std::fs::read(&path).unwrap()
    }

    #[test]
    fn values_are_formatted_per_unit() {
        let count = ColumnKind::Metric(Unit::Count);
        assert_eq!(format_value(count, 1_234_567.0), "1,234,567");
        assert_eq!(format_value(count, 12.5), "12.50");
        assert_eq!(format_value(count, 0.0), "0");
        assert_eq!(format_value(ColumnKind::Metric(Unit::Seconds), 143.5), "0:02:24");
        assert_eq!(format_value(ColumnKind::Metric(Unit::Seconds), 3_725.0), "1:02:05");
        assert_eq!(format_value(ColumnKind::Metric(Unit::Percent), 87.54), "87.5%");
        assert_eq!(format_value(ColumnKind::Metric(Unit::PerHour), 12.0), "12.00");
        assert_eq!(text(ColumnKind::Metric(Unit::Percent), &Cell::Number(None)), "–");
        assert_eq!(nice_step(87.0, 5.0), 20.0);
        assert_eq!(nice_step(1.0, 5.0), 0.2);
    }

    #[test]
    fn every_chart_kind_lays_out_into_a_pdf() {
        let (rows, totals) = sample_rows(40);
        for kind in [ChartKind::Line, ChartKind::Bar, ChartKind::StackedBar, ChartKind::Pie] {
            let meta = meta(Some(ChartSpec {
                kind,
                category: 0,
                series: vec![2, 4],
            }));
            let pdf = written(&meta, &rows, Some(&totals));
            assert!(pdf.starts_with(b"%PDF-"), "{kind:?}");
            // To look at them: EXPORT_SAMPLES=<dir> cargo test --lib reports::formats::pdf
            if let Some(dir) = std::env::var_os("EXPORT_SAMPLES") {
                std::fs::write(std::path::Path::new(&dir).join(format!("{kind:?}.pdf")), &pdf).unwrap();
            }
            assert!(pdf.len() > 1_000);
        }
        // No rows, no chart: still a document.
        let pdf = written(&meta(None), &[], None);
        assert!(pdf.starts_with(b"%PDF-"));
    }

    #[test]
    fn a_report_past_the_cap_is_refused_at_the_row_that_passes_it() {
        let (rows, _) = sample_rows(4);
        let file = tempfile::tempfile().unwrap();
        let mut writer = PdfWriter::with_cap(&meta(None), file, 3).unwrap();
        for row in &rows[..3] {
            writer.row(row).unwrap();
        }
        let refused = writer.row(&rows[3]).unwrap_err();
        assert_eq!(refused.code(), ErrorCode::BadUserInput);
        let message = refused.client_message();
        assert!(message.contains("CSV or XLSX"), "{message}");
        assert!(too_many_rows(MAX_ROWS).client_message().contains("10,000"));
    }
}

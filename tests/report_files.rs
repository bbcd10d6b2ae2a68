//! A saved report's XLSX and PDF exports, pulled over HTTP from the app against a real
//! PostgreSQL and read back by readers independent of the writers: the workbook by calamine
//! (every value equal to the `analytics` answer, durations and percents converted back) and its
//! parts by zip (chart, frozen header, autofilter); the PDF by poppler's `pdftotext -layout`
//! (title, parameters, generated-at with the organization's offset, every row, totals, page
//! numbers, the header repeated on page 2). A last test renders both files to PNG (pdftoppm;
//! LibreOffice for the workbook) under the target directory, for a person to look at.
//!
//! pdftotext, pdftoppm and LibreOffice come from Debian's poppler-utils and libreoffice-calc
//! (CI installs them); without them these tests fail, on purpose, saying so.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;
mod reports_support;

use reports_support::*;

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use calamine::{Data, Reader, Xlsx};
use common::TestApp;
use omnivox::auth::Role;
use serde_json::{json, Value};

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
const FROM: &str = "2026-01-05T00:00:00Z";
const TO: &str = "2026-01-07T00:00:00Z";

/// The export report with a bar chart of handled calls and service level.
fn charted_report() -> Value {
    let mut report = export_report();
    report["presentation"]["chart"] = json!({ "kind": "BAR", "series": ["HANDLED", "SERVICE_LEVEL"] });
    report
}

/// A relative difference small enough to be the rounding of one division and multiplication.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

/// The file's bytes, after checking the status and the content type and name.
async fn pull(app: &TestApp, token: &str, id: &str, extension: &str, content_type: &str) -> Vec<u8> {
    let response = get(
        app,
        Some(token),
        &format!("/api/reports/{id}.{extension}?from={FROM}&to={TO}"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], content_type);
    let disposition = response.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(disposition.contains(&format!(".{extension}")), "{disposition}");
    response.bytes().await.unwrap().to_vec()
}

/// A part of the workbook (a zip archive), as text.
fn part(xlsx: &[u8], name: &str) -> String {
    let mut archive = zip::ZipArchive::new(Cursor::new(xlsx)).unwrap();
    let mut text = String::new();
    archive.by_name(name).unwrap().read_to_string(&mut text).unwrap();
    text
}

/// A metric cell as the analytics value it stores: durations (days) and percents (fractions)
/// converted back; None for an empty cell.
fn metric(cell: &Data, unit: &str) -> Option<f64> {
    match (cell, unit) {
        (Data::Empty, _) => None,
        (Data::DateTime(d), "SECONDS") => {
            assert!(d.is_duration(), "{cell:?}");
            Some(d.as_f64() * 86_400.0)
        }
        (Data::Float(v), "PERCENT") => Some(v * 100.0),
        (Data::Float(v), _) => Some(*v),
        _ => panic!("{cell:?} is not a {unit} metric"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_xlsx_export_reads_back_as_the_analytics_answer_value_for_value() {
    let app = TestApp::spawn().await;
    let org = seeded(&app, "repxlsx").await;
    let supervisor = org.token(&app.state, Role::Supervisor).await;
    let report = charted_report();
    let id = created_id(&app, &supervisor, report.clone()).await;
    let body = pull(&app, &supervisor, &id, "xlsx", XLSX).await;

    let mut book = Xlsx::new(Cursor::new(body.clone())).unwrap();
    assert_eq!(book.sheet_names(), ["Data", "About"]);
    let data = book.worksheet_range("Data").unwrap();
    let header: Vec<String> = data.rows().next().unwrap().iter().map(|c| c.to_string()).collect();
    assert_eq!(
        header,
        [
            "Agent",
            "Day",
            "Handled calls",
            "SL, %",
            "Offered",
            "Average handle time (h:mm:ss)",
            "Occupancy %",
            "Longest wait (h:mm:ss)"
        ]
    );
    let direct = analytics(&app, &supervisor, &report["query"], &json!(FROM), &json!(TO)).await;
    let rows = direct["rows"].as_array().unwrap();
    let units: Vec<&str> = direct["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["unit"].as_str().unwrap())
        .collect();
    assert_eq!(units, ["COUNT", "COUNT", "PERCENT", "SECONDS", "PERCENT", "SECONDS"]);
    let records: Vec<&[Data]> = data.rows().skip(1).collect();
    assert_eq!(records.len(), rows.len() + 1, "the rows and a totals row");
    assert!(rows.len() >= 6);
    // Analytics' metrics order: OFFERED, HANDLED, SERVICE_LEVEL, AHT, OCCUPANCY, LONGEST_WAIT.
    let column_of_metric = [4, 2, 3, 5, 6, 7];
    let mut compared = 0;
    for (row, record) in rows.iter().zip(&records) {
        assert_eq!(
            record[0],
            Data::String(row["dimensions"]["agent"]["name"].as_str().unwrap().to_owned())
        );
        let Data::DateTime(day) = &record[1] else {
            panic!("{:?}", record[1])
        };
        let bucket = at(row["dimensions"]["bucketStart"].as_str().unwrap());
        assert_eq!(day.as_datetime(), Some(bucket.naive_utc()), "January in London is UTC");
        for (m, column) in column_of_metric.iter().enumerate() {
            let expected = row["values"][m].as_f64();
            let got = metric(&record[*column], units[m]);
            match (got, expected) {
                (Some(got), Some(expected)) => assert!(close(got, expected), "{got} vs {expected} in {row}"),
                (got, expected) => assert_eq!(got, expected, "{row}"),
            }
            compared += 1;
        }
    }
    assert!(compared >= 36);
    // Totals: the ungrouped answer, in bold under the rows.
    let totals = records.last().unwrap();
    assert_eq!((&totals[0], &totals[1]), (&Data::String("Total".into()), &Data::Empty));
    let mut whole = report["query"].clone();
    whole["groupBy"] = json!([]);
    whole["granularity"] = Value::Null;
    let whole = analytics(&app, &supervisor, &whole, &json!(FROM), &json!(TO)).await;
    for (m, column) in column_of_metric.iter().enumerate() {
        let expected = whole["rows"][0]["values"][m].as_f64().unwrap();
        let got = metric(&totals[*column], units[m]).unwrap();
        assert!(close(got, expected), "metric {m}: {got} vs {expected}");
    }

    // The About sheet: title, interval in the organization's zone, parameters.
    let about = book.worksheet_range("About").unwrap();
    let about: Vec<String> = about.rows().flatten().map(|c| c.to_string()).collect();
    for expected in [
        "Agents by day",
        "2026-01-05 00:00:00 +00:00",
        "Europe/London",
        "Metrics",
        "Grouped by",
        "DAY",
    ] {
        assert!(about.iter().any(|t| t.contains(expected)), "{expected} in {about:?}");
    }

    // What calamine does not read: the frozen, bold header, the autofilter, the number
    // formats and the chart over the data cells.
    let sheet = part(&body, "xl/worksheets/sheet1.xml");
    assert!(
        sheet.contains(r#"<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>"#),
        "{sheet:.600}"
    );
    let last = rows.len() + 1;
    assert!(sheet.contains(&format!(r#"<autoFilter ref="A1:H{last}"/>"#)));
    let styles = part(&body, "xl/styles.xml");
    for format in ["[h]:mm:ss", "0.0%", "yyyy-mm-dd hh:mm"] {
        assert!(styles.contains(format), "{format}");
    }
    assert!(styles.contains("<b/>"), "a bold font for the header and totals");
    let chart = part(&body, "xl/charts/chart1.xml");
    assert!(chart.contains("<c:barChart>") && chart.contains(r#"<c:barDir val="col"/>"#));
    assert!(chart.contains(&format!("Data!$C$2:$C${last}")), "handled calls plotted");
    assert!(chart.contains(&format!("Data!$D$2:$D${last}")), "service level plotted");
    assert!(chart.contains(&format!("Data!$A$2:$A${last}")), "agents as categories");
}

/// `pdftotext -layout` of a PDF: its pages, split at form feeds.
fn pdf_pages(pdf: &[u8]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = Command::new("pdftotext")
        .args(["-layout", path.to_str().unwrap(), "-"])
        .output()
        .expect("pdftotext (Debian: poppler-utils) must be installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut pages: Vec<String> = text.split('\x0c').map(str::to_owned).collect();
    if pages.last().is_some_and(|p| p.trim().is_empty()) {
        pages.pop();
    }
    pages
}

fn thousands(v: f64) -> String {
    let digits = format!("{v:.0}");
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn hms(seconds: f64) -> String {
    let s = seconds.round() as i64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// An hourly report with enough rows for two pages, in an organization in New York.
fn hourly_report() -> Value {
    json!({
        "title": "Hourly agents",
        "description": "Handled calls and service level per agent and hour.",
        "query": { "metrics": ["OFFERED", "HANDLED", "SERVICE_LEVEL", "AVERAGE_HANDLE_TIME"],
                   "groupBy": ["AGENT"], "granularity": "HOUR" },
        "range": { "relative": "LAST_7_DAYS" },
        "presentation": {
            "columns": [
                { "bucket": "START", "label": "Hour" },
                { "dimension": "AGENT", "label": "Agent" },
                { "metric": "OFFERED" },
                { "metric": "HANDLED", "label": "Handled calls" },
                { "metric": "SERVICE_LEVEL", "label": "SL, %" },
                { "metric": "AVERAGE_HANDLE_TIME", "label": "AHT" }
            ],
            "totals": true,
            "chart": { "kind": "LINE", "series": ["HANDLED"] }
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pdf_export_shows_the_report_every_row_and_page_numbers() {
    let app = TestApp::spawn().await;
    let org = seeded_in(&app, "reppdf", "America/New_York").await;
    let supervisor = org.token(&app.state, Role::Supervisor).await;
    let report = hourly_report();
    let id = created_id(&app, &supervisor, report.clone()).await;
    let pdf = pull(&app, &supervisor, &id, "pdf", "application/pdf").await;
    assert!(pdf.starts_with(b"%PDF-"));
    let pages = pdf_pages(&pdf);
    assert!(pages.len() >= 2, "{} pages", pages.len());
    let first = &pages[0];
    for expected in [
        "Hourly agents",
        "Handled calls and service level per agent and hour.",
        "Metrics",
        "OFFERED, HANDLED, SERVICE_LEVEL, AVERAGE_HANDLE_TIME",
        "Grouped by",
        "HOUR",
        // The interval, in New York's winter offset.
        "2026-01-04 19:00:00 -05:00 to 2026-01-06 19:00:00 -05:00 (America/New_York)",
    ] {
        assert!(first.contains(expected), "{expected} in\n{first}");
    }
    let generated = first.lines().find(|l| l.contains("Generated at")).unwrap();
    let offset = if generated.contains(" -05:00 ") {
        "-05:00"
    } else {
        "-04:00"
    };
    assert!(
        generated.contains(&format!("{offset} (America/New_York)")),
        "{generated}"
    );
    for (n, page) in pages.iter().enumerate() {
        assert!(
            page.contains(&format!("Page {} of {}", n + 1, pages.len())),
            "page {}",
            n + 1
        );
        let header = page
            .lines()
            .find(|l| l.contains("Hour") && l.contains("Handled calls") && l.contains("AHT"));
        assert!(header.is_some(), "the header row on page {}:\n{page}", n + 1);
    }

    // Every row on a line of its own: hour (local), agent, the counts, SL and AHT formatted.
    let direct = analytics(&app, &supervisor, &report["query"], &json!(FROM), &json!(TO)).await;
    let rows = direct["rows"].as_array().unwrap();
    assert!(rows.len() > 12, "{} rows: not enough for two pages", rows.len());
    let lines: Vec<&str> = pages.iter().flat_map(|p| p.lines()).collect();
    let tz: chrono_tz::Tz = "America/New_York".parse().unwrap();
    for row in rows {
        let hour = at(row["dimensions"]["bucketStart"].as_str().unwrap()).with_timezone(&tz);
        let agent = row["dimensions"]["agent"]["name"].as_str().unwrap();
        let values = &row["values"];
        let mut expected = vec![
            hour.format("%Y-%m-%d %H:%M").to_string(),
            agent.to_owned(),
            thousands(values[0].as_f64().unwrap()),
            thousands(values[1].as_f64().unwrap()),
        ];
        expected.push(values[2].as_f64().map_or("–".to_owned(), |v| format!("{v:.1}%")));
        expected.push(values[3].as_f64().map_or("–".to_owned(), hms));
        let found = lines.iter().any(|line| {
            let words: Vec<&str> = line.split("  ").map(str::trim).filter(|w| !w.is_empty()).collect();
            words == expected
        });
        assert!(found, "{expected:?} not found in\n{}", lines.join("\n"));
    }
    // The totals: the ungrouped answer.
    let mut whole = report["query"].clone();
    whole["groupBy"] = json!([]);
    whole["granularity"] = Value::Null;
    let whole = analytics(&app, &supervisor, &whole, &json!(FROM), &json!(TO)).await;
    let values = &whole["rows"][0]["values"];
    let totals = lines.iter().find(|l| l.trim_start().starts_with("Total")).unwrap();
    let words: Vec<&str> = totals.split("  ").map(str::trim).filter(|w| !w.is_empty()).collect();
    assert_eq!(
        words,
        [
            "Total".to_owned(),
            thousands(values[0].as_f64().unwrap()),
            thousands(values[1].as_f64().unwrap()),
            format!("{:.1}%", values[2].as_f64().unwrap()),
            hms(values[3].as_f64().unwrap()),
        ]
    );
    for agent in ["Alice", "Bob", "Carol, \"CJ\""] {
        assert!(lines.iter().any(|l| l.contains(agent)), "{agent}");
    }
}

/// Where the PNGs go: `target/test-output/` beside the test binaries.
fn output_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("..").join("test-output");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(command: &mut Command, what: &str) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what} must be installed (Debian: poppler-utils, libreoffice-calc): {e}"));
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `pdftoppm -png -r 60` of pages `first..=last` of `pdf` into `prefix-N.png`; the PNGs made.
fn png_pages(pdf: &Path, prefix: &Path, first: u32, last: u32) -> Vec<PathBuf> {
    run(
        Command::new("pdftoppm")
            .args(["-png", "-r", "60", "-f", &first.to_string(), "-l", &last.to_string()])
            .arg(pdf)
            .arg(prefix),
        "pdftoppm",
    );
    let stem = prefix.file_name().unwrap().to_str().unwrap().to_owned();
    let mut pngs: Vec<PathBuf> = std::fs::read_dir(prefix.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.starts_with(&format!("{stem}-")) && name.ends_with(".png")
        })
        .collect();
    pngs.sort();
    pngs
}

#[tokio::test(flavor = "multi_thread")]
async fn both_files_render_to_png_for_a_person_to_look_at() {
    let app = TestApp::spawn().await;
    let org = seeded(&app, "reppng").await;
    let supervisor = org.token(&app.state, Role::Supervisor).await;
    let dir = output_dir();
    let id = created_id(&app, &supervisor, charted_report()).await;
    let pdf = pull(&app, &supervisor, &id, "pdf", "application/pdf").await;
    let xlsx = pull(&app, &supervisor, &id, "xlsx", XLSX).await;

    let pdf_path = dir.join("report-pdf.pdf");
    std::fs::write(&pdf_path, &pdf).unwrap();
    let pngs = png_pages(&pdf_path, &dir.join("report-pdf"), 1, 1);
    assert_eq!(pngs.len(), 1);
    assert!(
        std::fs::metadata(&pngs[0]).unwrap().len() > 5_000,
        "a page with a chart on it"
    );

    // The workbook as LibreOffice prints it (every sheet; the chart is beside the table).
    let xlsx_path = dir.join("report-xlsx.xlsx");
    std::fs::write(&xlsx_path, &xlsx).unwrap();
    let profile = tempfile::tempdir().unwrap();
    run(
        Command::new("libreoffice")
            .arg(format!("-env:UserInstallation=file://{}", profile.path().display()))
            .args(["--headless", "--convert-to", "pdf", "--outdir"])
            .arg(&dir)
            .arg(&xlsx_path),
        "libreoffice",
    );
    let converted = dir.join("report-xlsx.pdf");
    assert!(converted.exists());
    let pngs = png_pages(&converted, &dir.join("report-xlsx"), 1, 4);
    assert!(!pngs.is_empty());
    eprintln!("PNGs in {}", dir.display());
}

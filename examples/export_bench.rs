//! Export benchmark: how fast a report run writes a large report into its file, and how much
//! memory that takes.
//!
//! ```text
//! cargo run --release --example export_bench -- [--calls 1000000] [--days 7] [--format csv|xlsx|json|pdf]
//!     [--report detail-log|agent-performance-daily] [--database-url postgres://…/omnivox_export_bench]
//! ```
//!
//! Two reports: `detail-log` (the default) is the interaction detail log, one row per call
//! streamed from PostgreSQL — the 1M-row CSV and XLSX figures. `agent-performance-daily` is the
//! template of that name (handled, handle times, occupancy and calls per agent hour per agent
//! and local day, limit 10,000 rows, a bar chart of calls handled) answered by the analytics
//! engine — the PDF figure: `--calls 250000 --days 60 --agents 250`
//! gives more than 10,000 agent-days worked, so the PDF holds the 10,000 rows of the cap and the chart.
//!
//! 1. **Data.** A dedicated database (its name must contain `bench`; the default is
//!    `omnivox_export_bench`, or `omnivox_export_bench_daily` for `agent-performance-daily`).
//!    When org `bench` already has exactly `--calls` calls it is reused; otherwise the database
//!    is dropped, recreated, migrated and filled by the traffic generator
//!    (`omnivox::seed::generator`, the code behind `omnivox seed --calls …`) with `--calls`
//!    calls over the last `--days` days.
//! 2. **Run.** In this process: an `AppState` and the real run worker (`reports::jobs::spawn`).
//!    A SUPERVISOR of `bench` creates the report (the detail log lists every call, so customer
//!    numbers in full) and asks for a run over the whole generated range in `--format`
//!    (`reports::runs::request`, as `runReport` does); the program polls the run until it
//!    SUCCEEDED.
//! 3. **Figures.** Rows written, seconds from the request to SUCCEEDED (claim, streaming the
//!    calls into the file, storing the file in PostgreSQL), rows per second, file bytes, and
//!    the process's resident memory: the peak of VmRSS sampled every 50 ms during the run
//!    minus VmRSS just before it (and VmHWM before and after, the kernel's own high-water
//!    mark). The figures are printed as a markdown row for README's table.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly
#![allow(clippy::print_stdout)]

#[path = "support/bench_db.rs"]
mod bench_db;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use clap::Parser;
use diesel::sql_types::BigInt;
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use omnivox::auth::{password, Principal, Role, Tenant};
use omnivox::config::Settings;
use omnivox::db::{self, orgs, users};
use omnivox::reports::definition::{Definition, ReportFilter, ReportRange};
use omnivox::reports::formats::ExportFormat;
use omnivox::reports::jobs;
use omnivox::reports::range::RelativeRange;
use omnivox::reports::runs::{self, RunRequest};
use omnivox::reports::saved::{self, ReportInput};
use omnivox::reports::templates;
use omnivox::seed::generator::{self, GeneratorSettings};
use omnivox::state::AppState;

#[derive(Debug, Parser)]
#[command(about = "Streams an interaction detail log of --calls calls through a report run")]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    calls: u64,
    /// Days of history, ending today.
    #[arg(long, default_value_t = 7)]
    days: u32,
    #[arg(long, default_value_t = 200)]
    agents: u32,
    #[arg(long, default_value_t = 10)]
    campaigns: u32,
    /// csv, xlsx, json or pdf.
    #[arg(long, default_value = "csv")]
    format: String,
    /// `detail-log` or `agent-performance-daily`.
    #[arg(long, default_value = "detail-log")]
    report: String,
    /// Defaults to `omnivox_export_bench` (or `omnivox_export_bench_daily` for
    /// `agent-performance-daily`) on the local PostgreSQL.
    #[arg(long)]
    database_url: Option<String>,
}

/// The report a run writes: the detail log, or a template answered by the analytics engine.
fn definition(report: &str) -> (String, Definition) {
    match report {
        "detail-log" => (
            "Export bench log".to_owned(),
            Definition::interaction_log(
                ReportFilter::default(),
                ReportRange::Relative {
                    period: RelativeRange::Yesterday,
                },
            ),
        ),
        key => {
            let template =
                templates::find(key).unwrap_or_else(|| panic!("--report detail-log or a template key, not {key}"));
            (template.title.to_owned(), template.definition)
        }
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Calls of org `bench`, or `None` when the database or the organization is missing.
async fn existing_calls(url: &str) -> Option<i64> {
    let mut conn = AsyncPgConnection::establish(url).await.ok()?;
    let org = orgs::find_by_slug(&mut conn, "bench").await.ok()??;
    let sql = format!(
        "SELECT count(*) AS n FROM interactions WHERE organization_id = '{}'",
        org.id
    );
    diesel::sql_query(sql)
        .get_result::<Count>(&mut conn)
        .await
        .ok()
        .map(|c| c.n)
}

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let format =
        ExportFormat::from_extension(&args.format.to_ascii_lowercase()).expect("--format csv, json, xlsx or pdf");
    let command = format!(
        "cargo run {}--example export_bench --{}",
        if cfg!(debug_assertions) { "" } else { "--release " },
        std::env::args().skip(1).map(|a| format!(" {a}")).collect::<String>()
    );
    let url = args.database_url.clone().unwrap_or_else(|| {
        let name = if args.report == "detail-log" {
            "omnivox_export_bench"
        } else {
            "omnivox_export_bench_daily"
        };
        format!("postgres://postgres@127.0.0.1:5432/{name}")
    });
    let (title, definition) = definition(&args.report);

    // 1. Data.
    let existing = existing_calls(&url).await;
    if existing == Some(i64::try_from(args.calls).unwrap()) {
        println!("reusing the data in {url} ({} calls in org `bench`)", args.calls);
    } else {
        if AsyncPgConnection::establish(&url).await.is_ok() {
            bench_db::recreate_database(&url).await;
        }
        db::create_database_if_missing(&url).await.unwrap();
        db::run_migrations(&url).await.unwrap();
        let pool = db::build_pool(&url, 4, Duration::from_secs(10), Duration::from_secs(600)).unwrap();
        let settings = GeneratorSettings {
            org_slug: "bench".into(),
            calls: args.calls,
            days: args.days,
            agents: args.agents,
            campaigns: args.campaigns,
            ..GeneratorSettings::default()
        };
        println!("generating {} calls over {} days", args.calls, args.days);
        let report = generator::run(&url, &pool, &settings, &mut |_| {}).await.unwrap();
        println!("  loaded {} calls in {:.1} s", report.calls, report.load.as_secs_f64());
        db::conn(&pool)
            .await
            .unwrap()
            .batch_execute("VACUUM ANALYZE")
            .await
            .unwrap();
    }

    // 2. Run, through the real worker.
    let mut settings = Settings::for_database(&url);
    // This benchmark measures exports, not the rate limits (examples/rate_limit_bench.rs does).
    settings.rate_limits_enabled = false;
    settings.jwt_secret = Some("export-bench-secret-that-is-at-least-32-bytes".to_owned());
    settings.db_statement_timeout = Duration::from_secs(300);
    let state = AppState::new(settings).unwrap();
    let mut conn = state.system_db.get().await.unwrap();
    let org = orgs::find_by_slug(&mut conn, "bench")
        .await
        .unwrap()
        .expect("org `bench`");
    let tenant = Tenant::for_system(org.id);
    let hash = password::hash("export-bench-password".to_owned()).await.unwrap();
    let user = users::upsert_for_seed(
        &mut conn,
        &tenant,
        "export-bench@bench.example",
        "Export Bench",
        Role::Supervisor,
        &hash,
    )
    .await
    .unwrap();
    drop(conn);
    let principal = Principal {
        user_id: user.id,
        org_id: org.id,
        role: Role::Supervisor,
        email: user.email.clone(),
        display_name: user.display_name.clone(),
        token_expires_at: i64::MAX,
        api_key: None,
    };
    let report = saved::create(
        &state,
        &principal,
        ReportInput {
            title,
            description: None,
            shared: false,
            definition,
        },
        None,
    )
    .await
    .unwrap();
    let _worker = jobs::spawn(&state);

    // Memory: sampled every 50 ms from just before the request until the run has ended.
    let baseline_rss = status_kib("VmRSS");
    let hwm_before = status_kib("VmHWM");
    let peak_rss = Arc::new(AtomicU64::new(baseline_rss));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (Arc::clone(&peak_rss), Arc::clone(&sampling));
        std::thread::spawn(move || {
            while AtomicBool::load(&sampling, Ordering::Relaxed) {
                peak.fetch_max(status_kib("VmRSS"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let today = Utc::now();
    let (from, to) = (
        today - TimeDelta::days(i64::from(args.days) + 1),
        today + TimeDelta::days(1),
    );
    let started = Instant::now();
    let queued = runs::request(
        &state,
        &principal,
        RunRequest {
            report_id: report.id,
            format,
            range: Some(ReportRange::Absolute { from, to }),
            bom: false,
        },
        None,
    )
    .await
    .unwrap();
    let run = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let run = runs::get(&state, &principal, queued.id).await.unwrap();
        match run.status.as_str() {
            "SUCCEEDED" => break run,
            "FAILED" | "CANCELLED" => panic!("the run ended {}: {:?}", run.status, run.error),
            _ => {}
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    let growth = mib(AtomicU64::load(&peak_rss, Ordering::Relaxed).saturating_sub(baseline_rss));
    let hwm_after = status_kib("VmHWM");

    // 3. Figures.
    let rows = run.rows_written;
    let bytes = run.bytes.unwrap_or(0);
    let in_worker = match (run.started_at, run.finished_at) {
        (Some(s), Some(f)) => (f - s).as_seconds_f64(),
        _ => elapsed,
    };
    println!("command: {command}");
    println!(
        "rows {rows}, {elapsed:.2} s from request to SUCCEEDED ({in_worker:.2} s in the worker), {:.0} rows/s, {bytes} bytes ({:.1} MiB)",
        rows as f64 / elapsed,
        bytes as f64 / 1_048_576.0
    );
    println!(
        "resident memory: {:.1} MiB before, peak growth {growth:.1} MiB (sampled every 50 ms); VmHWM {:.1} → {:.1} MiB",
        mib(baseline_rss),
        mib(hwm_before),
        mib(hwm_after)
    );
    println!();
    println!("| Report | Format | Rows | Seconds | Rows/s | File | Peak RSS growth |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {rows} | {elapsed:.1} | {:.0} | {:.1} MiB | {growth:.0} MiB |",
        args.report,
        format.name(),
        rows as f64 / elapsed,
        bytes as f64 / 1_048_576.0
    );
}

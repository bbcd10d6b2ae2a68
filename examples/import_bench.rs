//! History import benchmark: how fast `omnivox import calls` loads a large file of completed
//! calls, with their rollups, and how fast a second import of the same file finds nothing to do.
//!
//! ```text
//! cargo run --release --example import_bench -- [--calls 1000000] [--format csv|ndjson]
//!     [--batch-calls 20000] [--per-row-fk-checks]
//!     [--database-url postgres://postgres@127.0.0.1:5432/omnivox_import_bench]
//! ```
//!
//! 1. **Data.** A dedicated database (its name must contain `bench`) is dropped, recreated and
//!    migrated; org `bench` gets 100 agents (extensions 1000–1099), 10 campaigns, 6
//!    dispositions and a history horizon 120 days back. A file of `--calls` completed calls over
//!    the last 90 days (every shape: answered with hold and wrap-up, abandoned, unanswered,
//!    inbound and outbound, agents by extension, campaigns by name, disposition codes) is
//!    written to a temporary directory.
//! 2. **Import.** `ingest::history::import_calls`, the code behind the command and the HTTP
//!    upload: the checking pass, then the batches through `kpi::writer::bulk_load_audited`.
//! 3. **Re-import** of the same file: every row a duplicate, nothing written.
//! 4. **Check.** The organization holds `--calls` calls, and the hourly rollups over the whole
//!    range equal the raw calls. The figures are printed as a markdown row for README.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly
#![allow(clippy::print_stdout)]

#[path = "support/bench_db.rs"]
mod bench_db;

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DurationRound, TimeDelta, Utc};
use clap::Parser;
use diesel_async::RunQueryDsl;
use omnivox::auth::Tenant;
use omnivox::config::Settings;
use omnivox::db::contact_centre::{self as cc, NewAgent, NewCampaign, NewDisposition};
use omnivox::db::{self, orgs};
use omnivox::domain::{CampaignStatus, DialMode, Direction, Presence, RoutingState};
use omnivox::ingest::history::{self, Format, ImportOptions, Importer, Progress, Source};
use omnivox::kpi::plan::{aggregate_windows, Sourcing};
use omnivox::kpi::query::Scope;
use omnivox::kpi::writer::ReferenceChecks;
use omnivox::state::AppState;

#[derive(Debug, Parser)]
#[command(about = "Imports --calls historical calls through the history import, twice")]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    calls: u64,
    /// csv or ndjson.
    #[arg(long, default_value = "csv")]
    format: String,
    #[arg(long, default_value_t = history::DEFAULT_BATCH_CALLS)]
    batch_calls: usize,
    #[arg(long)]
    per_row_fk_checks: bool,
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/omnivox_import_bench")]
    database_url: String,
}

const DISPOSITIONS: [&str; 6] = [
    "SALE",
    "CALLBACK",
    "NO_INTEREST",
    "WRONG_NUMBER",
    "VOICEMAIL",
    "RESOLVED",
];

/// The file: `calls` completed calls over the 90 days before `end`, deterministic.
fn write_file(path: &std::path::Path, format: Format, calls: u64, end: chrono::DateTime<Utc>) {
    let file = std::fs::File::create(path).unwrap();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let start = end - TimeDelta::days(90);
    let span_s = (end - start).num_seconds() - 3_600;
    let columns = [
        "externalId",
        "direction",
        "offeredAt",
        "answeredAt",
        "endedAt",
        "wrapEndedAt",
        "holdSeconds",
        "outcome",
        "answeredBy",
        "agent",
        "campaign",
        "disposition",
        "customerNumber",
    ];
    if format == Format::Csv {
        writeln!(out, "{}", columns.join(",")).unwrap();
    }
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..calls {
        let offered = start + TimeDelta::seconds(i64::try_from(i).unwrap() * span_s / i64::try_from(calls).unwrap());
        let r = next();
        let t = |s: u64| (offered + TimeDelta::seconds(i64::try_from(s).unwrap())).to_rfc3339();
        let campaign = r % 10;
        let outbound = campaign % 2 == 1;
        let wait = (r >> 8) % 90;
        let talk = 30 + (r >> 16) % 600;
        let hold = if (r >> 28) % 4 == 0 { (r >> 30) % 60 } else { 0 };
        let agent = format!("{}", 1000 + (r >> 40) % 100);
        let kind = (r >> 48) % 10;
        let values: Vec<String> = match kind {
            0..=6 => vec![
                t(wait),
                t(wait + talk + hold),
                t(wait + talk + hold + 20 + (r >> 36) % 60),
                hold.to_string(),
                String::new(),
                if outbound { "HUMAN".into() } else { String::new() },
                agent,
                DISPOSITIONS[usize::try_from((r >> 52) % 6).unwrap()].to_owned(),
            ],
            7 | 8 => vec![
                String::new(),
                t(wait),
                String::new(),
                String::new(),
                "ABANDONED".into(),
                if outbound { "HUMAN".into() } else { String::new() },
                String::new(),
                String::new(),
            ],
            _ => vec![
                String::new(),
                t(25),
                String::new(),
                String::new(),
                "NO_ANSWER".into(),
                String::new(),
                String::new(),
                String::new(),
            ],
        };
        let mut row = vec![
            format!("hist-{i}"),
            if outbound { "OUTBOUND" } else { "INBOUND" }.to_owned(),
            t(0),
        ];
        row.extend(values[..6].iter().cloned());
        row.push(values[6].clone());
        row.push(format!("Campaign {campaign}"));
        row.push(values[7].clone());
        row.push(format!("+4420{:07}", r % 10_000_000));
        match format {
            Format::Csv => writeln!(out, "{}", row.join(",")).unwrap(),
            Format::Ndjson => {
                let object: serde_json::Map<String, serde_json::Value> = columns
                    .iter()
                    .zip(row)
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| ((*k).to_owned(), v.into()))
                    .collect();
                writeln!(out, "{}", serde_json::Value::Object(object)).unwrap();
            }
        }
    }
    out.flush().unwrap();
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let format = Format::from_name(&format!(".{}", args.format)).expect("--format csv or ndjson");
    bench_db::recreate_database(&args.database_url).await;
    db::run_migrations(&args.database_url).await.unwrap();
    let mut settings = Settings::for_database(&args.database_url);
    settings.db_statement_timeout = std::time::Duration::from_secs(600);
    let state = AppState::new(settings).unwrap();
    let mut conn = state.system_db.get().await.unwrap();
    let org = orgs::create(&mut conn, "bench", "Import bench", "Europe/London", "en-GB")
        .await
        .unwrap();
    let tenant = Tenant::for_system(org.id);
    let now = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap();
    diesel::sql_query("UPDATE business_settings SET history_horizon = $2 WHERE organization_id = $1")
        .bind::<diesel::sql_types::Uuid, _>(org.id)
        .bind::<diesel::sql_types::Timestamptz, _>(now - TimeDelta::days(120))
        .execute(&mut conn)
        .await
        .unwrap();
    for i in 0..100 {
        let extension = format!("{}", 1000 + i);
        cc::insert_agent(
            &mut conn,
            &tenant,
            &NewAgent {
                user_id: None,
                display_name: &format!("Agent {i}"),
                extension: Some(&extension),
                team_id: None,
                presence: Presence::Offline,
                presence_reason: None,
                routing_state: RoutingState::Idle,
                state_since: now,
            },
        )
        .await
        .unwrap();
    }
    for c in 0..10 {
        let outbound = c % 2 == 1;
        cc::insert_campaign(
            &mut conn,
            &tenant,
            &NewCampaign {
                name: &format!("Campaign {c}"),
                direction: if outbound {
                    Direction::Outbound
                } else {
                    Direction::Inbound
                },
                dial_mode: outbound.then_some(DialMode::Predictive),
                status: CampaignStatus::Active,
                service_level_threshold_seconds: (c == 0).then_some(30),
                service_level_target_percent: None,
                max_abandon_rate_percent: None,
            },
        )
        .await
        .unwrap();
    }
    for (i, code) in DISPOSITIONS.iter().enumerate() {
        cc::insert_disposition(
            &mut conn,
            &tenant,
            &NewDisposition {
                code,
                label: code,
                human_answered: i < 3,
                contact: i < 2,
                success: i == 0,
                ..NewDisposition::default()
            },
        )
        .await
        .unwrap();
    }
    drop(conn);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("calls.{}", args.format));
    let started = Instant::now();
    write_file(&path, format, args.calls, now);
    let bytes = std::fs::metadata(&path).unwrap().len();
    println!(
        "wrote {} calls ({:.1} MiB of {}) in {:.1} s",
        args.calls,
        bytes as f64 / 1_048_576.0,
        args.format,
        started.elapsed().as_secs_f64()
    );

    let mut options = ImportOptions::new(format);
    options.batch_calls = args.batch_calls;
    options.checks = if args.per_row_fk_checks {
        ReferenceChecks::PerRow
    } else {
        ReferenceChecks::PerBatch
    };
    let progress = Arc::new(|p: Progress| {
        if let Progress::Loaded { done, total, .. } = p {
            if done % 200_000 < 20_000 || done == total {
                println!("  {done} / {total}");
            }
        }
    });
    let first = history::import_calls(
        &state,
        &tenant,
        Importer::operator(),
        Source::File(path.clone()),
        options.clone(),
        progress.clone(),
    )
    .await
    .unwrap();
    assert_eq!(first.rejected_rows, 0, "{:?}", first.errors);
    assert_eq!(first.imported, args.calls);
    let second = history::import_calls(
        &state,
        &tenant,
        Importer::operator(),
        Source::File(path),
        options,
        progress,
    )
    .await
    .unwrap();
    assert_eq!((second.imported, second.duplicates), (0, args.calls));

    let mut conn = state.system_db.get().await.unwrap();
    let range = [(now - TimeDelta::days(91), now + TimeDelta::hours(1))];
    let scope = Scope::default();
    let rolled = aggregate_windows(&mut conn, &tenant, &range, &scope, Sourcing::HourlyRollupsOnly)
        .await
        .unwrap();
    let raw = aggregate_windows(&mut conn, &tenant, &range, &scope, Sourcing::RawOnly)
        .await
        .unwrap();
    assert_eq!(rolled, raw, "rollups equal the raw calls after the import");
    let offered = raw[0].calls.offered;
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    println!(
        "import: {} calls in {:.1} s = {:.0} calls/s; re-import (all duplicates): {:.1} s = {:.0} rows/s; \
         {offered} offered; rollups = raw",
        first.imported,
        first.seconds,
        first.imported as f64 / first.seconds,
        second.seconds,
        second.rows as f64 / second.seconds
    );
    println!(
        "| {} calls, {} ({:.0} MiB), {profile} build, {} per batch, FK checks {} | {:.0} calls/s ({:.1} s) | re-import {:.0} rows/s ({:.1} s) |",
        args.calls,
        args.format,
        bytes as f64 / 1_048_576.0,
        args.batch_calls,
        if args.per_row_fk_checks { "per row" } else { "per batch" },
        first.imported as f64 / first.seconds,
        first.seconds,
        second.rows as f64 / second.seconds,
        second.seconds
    );
}

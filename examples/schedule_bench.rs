//! Report schedule benchmark: `--schedules` schedules (default 1,000) due in the same minute,
//! two instances on one database, each running the scheduler and the senders; every fire must
//! be delivered exactly once to a webhook receiver. Prints the time to drain (all runs
//! enqueued; all webhooks answered) and the counts that prove "once".
//!
//! What it does, all on this machine:
//! 1. recreates the database `--database-url` (default `omnivox_schedule_bench`), migrated,
//!    with one organization and a supervisor owning one report;
//! 2. writes the schedules (each with a webhook to a receiver this program serves on
//!    127.0.0.1) and makes them all due at one instant;
//! 3. starts two instances' scheduler, run worker and sender loops in this process (two pools,
//!    as two processes would have): every fire is claimed, its report executed into a CSV file,
//!    stored, and delivered;
//! 4. waits until every delivery is SENT, then checks: one run per schedule, one webhook per
//!    run, no run twice.
//!
//! ```sh
//! cargo run --release --example schedule_bench -- --schedules 1000
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a benchmark fails loudly

#[path = "support/bench_db.rs"]
mod bench_db;
#[path = "../tests/common/fixture.rs"]
mod fixture;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use diesel_async::RunQueryDsl;
use omnivox::auth::Role;
use omnivox::config::{Backoff, Settings};
use omnivox::db::{self, report_schedules, reports};
use omnivox::reports::{delivery, jobs, scheduler, templates};
use omnivox::state::AppState;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1_000)]
    schedules: usize,
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/omnivox_schedule_bench")]
    database_url: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

fn instance(url: &str) -> AppState {
    let mut settings = Settings::for_database(url);
    // This benchmark measures the scheduler, not the rate limits (examples/rate_limit_bench.rs does).
    settings.rate_limits_enabled = false;
    settings.jwt_secret = Some("schedule-bench-secret-that-is-long-enough!".into());
    settings.schedule_tick = Duration::from_millis(100);
    settings.delivery_poll = Duration::from_millis(100);
    settings.delivery_backoff = Backoff(vec![Duration::from_millis(200); 3]);
    AppState::new(settings).unwrap()
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

async fn count(state: &AppState, sql: &str) -> i64 {
    let mut conn = state.system_db.get().await.unwrap();
    let row: Count = diesel::sql_query(sql).get_result(&mut conn).await.unwrap();
    row.n
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    bench_db::recreate_database(&args.database_url).await;
    db::run_migrations(&args.database_url).await.unwrap();
    let a = instance(&args.database_url);
    let b = instance(&args.database_url);
    let org = fixture::FixtureOrg::builder("schedbench").build(&a).await;
    let owner = org.user(Role::Supervisor).id;

    // The receiver: records each delivery id and run id it is sent.
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    {
        let seen = Arc::clone(&seen);
        let router = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let seen = Arc::clone(&seen);
                async move {
                    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let delivery = headers["omnivox-delivery"].to_str().unwrap().to_owned();
                    seen.lock()
                        .unwrap()
                        .push((delivery, body["runId"].as_str().unwrap().to_owned()));
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    }

    let mut conn = a.system_db.get().await.unwrap();
    let template = &templates::all()[0];
    let report = reports::insert(
        &mut conn,
        &org.tenant,
        reports::NewReport {
            owner_id: owner,
            title: "Bench",
            description: None,
            shared: true,
            definition: serde_json::to_value(&template.definition).unwrap(),
            template_key: None,
        },
    )
    .await
    .unwrap();
    for _ in 0..args.schedules {
        let fields = report_schedules::ScheduleFields {
            cron: "0 0 1 1 *",
            timezone: "UTC",
            format: "CSV",
            recipients: &[],
            webhook_url: Some(&hook),
            next_fire_at: None,
        };
        report_schedules::insert(&mut conn, &org.tenant, report.id, owner, fields, "whsec_bench")
            .await
            .unwrap();
    }
    diesel::sql_query("UPDATE report_schedules SET next_fire_at = '2026-01-01T00:00:00Z'")
        .execute(&mut conn)
        .await
        .unwrap();
    println!(
        "{} schedules due at 2026-01-01T00:00Z; two instances start",
        args.schedules
    );

    let started = Instant::now();
    for state in [&a, &b] {
        scheduler::spawn(state);
        jobs::spawn(state);
        delivery::spawn(state);
    }
    let n = args.schedules as i64;
    let mut enqueued_at = None;
    loop {
        let runs = count(&a, "SELECT count(*) AS n FROM report_runs").await;
        if runs >= n && enqueued_at.is_none() {
            enqueued_at = Some(started.elapsed());
        }
        let sent = count(&a, "SELECT count(*) AS n FROM report_deliveries WHERE status = 'SENT'").await;
        if sent >= n {
            break;
        }
        assert!(
            started.elapsed().as_secs() < args.timeout,
            "not drained in {} s",
            args.timeout
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = started.elapsed();
    // A few more ticks of both instances: nothing fires or sends twice.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let runs = count(&a, "SELECT count(*) AS n FROM report_runs").await;
    let distinct = count(&a, "SELECT count(DISTINCT schedule_id) AS n FROM report_runs").await;
    let failed = count(&a, "SELECT count(*) AS n FROM report_deliveries WHERE status <> 'SENT'").await;
    let executed = count(
        &a,
        "SELECT count(*) AS n FROM report_runs WHERE status = 'SUCCEEDED' AND attempt = 1",
    )
    .await;
    let seen = seen.lock().unwrap().clone();
    let deliveries: HashSet<&String> = seen.iter().map(|(d, _)| d).collect();
    let run_ids: HashSet<&String> = seen.iter().map(|(_, r)| r).collect();
    println!(
        "all runs enqueued after {:.2} s",
        enqueued_at.unwrap_or(drained).as_secs_f64()
    );
    println!("all webhooks delivered after {:.2} s", drained.as_secs_f64());
    println!(
        "runs {runs} (schedules fired {distinct}, executed once {executed}), webhooks received {} (distinct deliveries {}, distinct runs {}), not SENT {failed}",
        seen.len(),
        deliveries.len(),
        run_ids.len()
    );
    assert_eq!((runs, distinct, executed, failed), (n, n, n, 0));
    assert_eq!(
        (seen.len(), deliveries.len(), run_ids.len()),
        (args.schedules, args.schedules, args.schedules)
    );
    println!("OK: every fire ran once and was delivered once");
}

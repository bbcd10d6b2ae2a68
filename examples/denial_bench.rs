//! Denied-access audit benchmark: what recording a denial costs the request that was denied.
//!
//! 1. recreates the database `--database-url` (default `omnivox_denial_bench`), migrated, with
//!    one organization, and serves the app on 127.0.0.1;
//! 2. `--concurrency` clients send `--requests` GraphQL requests as a VIEWER, twice: first a
//!    query the VIEWER may run (`{ organization { slug } }`), then one its role refuses
//!    (`{ users { totalCount } }`, FORBIDDEN, one audit record each). Prints p50/p99 of both;
//! 3. measures the two halves of the recording itself: queueing one denial
//!    (`AuditQueue::record`, what the request path pays) and, for comparison, writing one record
//!    synchronously in its own transaction (what the request would pay without the queue);
//! 4. waits for the queue to drain and checks that every denial is in the chain, intact.
//!
//! ```sh
//! cargo run --release --example denial_bench -- --requests 5000 --concurrency 16
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a benchmark fails loudly

#[path = "support/bench_db.rs"]
mod bench_db;
#[path = "../tests/common/fixture.rs"]
mod fixture;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use diesel_async::AsyncConnection;
use omnivox::audit::{self, Actor, AuditEvent};
use omnivox::auth::Role;
use omnivox::config::Settings;
use omnivox::error::ErrorCode;
use omnivox::state::audit_queue::{Denial, DeniedCaller};
use omnivox::state::AppState;
use serde_json::json;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 5_000)]
    requests: usize,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/omnivox_denial_bench")]
    database_url: String,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1_000.0)
}

/// `requests` POSTs of `query` from `concurrency` clients; returns the sorted latencies.
async fn hammer(addr: SocketAddr, token: &str, query: &str, requests: usize, concurrency: usize) -> Vec<Duration> {
    let client = reqwest::Client::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, next, token, query) = (client.clone(), next.clone(), token.to_owned(), query.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < requests {
                let started = Instant::now();
                let response = client
                    .post(format!("http://{addr}/graphql"))
                    .bearer_auth(&token)
                    .json(&json!({ "query": query }))
                    .send()
                    .await
                    .unwrap();
                let _ = response.bytes().await.unwrap();
                latencies.push(started.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort();
    all
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    bench_db::recreate_database(&args.database_url).await;
    omnivox::db::run_migrations(&args.database_url).await.unwrap();
    let mut settings = Settings::for_database(&args.database_url);
    settings.jwt_secret = Some("denial-bench-secret-that-is-long-enough!".into());
    let state = AppState::new(settings).unwrap();
    let org = fixture::FixtureOrg::builder("denialbench").build(&state).await;
    let token = org.token(&state, Role::Viewer).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = omnivox::http::app(state.clone());
    tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });

    let (n, c) = (args.requests, args.concurrency);
    let baseline = {
        let mut conn = state.system_db.get().await.unwrap();
        audit::verify_chain(&mut conn, Some(org.id)).await.unwrap().records
    };
    // Warm-up: connections, caches.
    hammer(addr, &token, "{ organization { slug } }", 200, c).await;
    let allowed = hammer(addr, &token, "{ organization { slug } }", n, c).await;
    let started = Instant::now();
    let denied = hammer(addr, &token, "{ users { totalCount } }", n, c).await;
    let denied_elapsed = started.elapsed();
    println!("{n} requests from {c} clients:");
    println!(
        "  allowed (organization)      p50 {}  p99 {}",
        ms(percentile(&allowed, 0.5)),
        ms(percentile(&allowed, 0.99))
    );
    println!(
        "  denied (users, FORBIDDEN)   p50 {}  p99 {}   ({:.0} denials/s)",
        ms(percentile(&denied, 0.5)),
        ms(percentile(&denied, 0.99)),
        n as f64 / denied_elapsed.as_secs_f64()
    );
    tokio::time::timeout(Duration::from_secs(120), state.lifecycle.idle())
        .await
        .expect("the queue drains");
    let drained = started.elapsed();
    println!(
        "  all {n} denials written {} after the first request (queue drop count: {})",
        ms(drained),
        state.audit_queue.dropped()
    );

    // The two halves of recording one denial.
    let caller = DeniedCaller::Principal {
        organization_id: org.id,
        actor: Actor {
            user_id: org.user(Role::Viewer).id,
            role: Role::Viewer,
        },
        api_key_id: None,
    };
    let samples = 4_000;
    let started = Instant::now();
    for i in 0..samples {
        state.audit_queue.record(Denial::new(
            caller.clone(),
            ErrorCode::Forbidden,
            "bench",
            format!("queued {i}"),
        ));
    }
    let per_enqueue = started.elapsed() / samples;
    tokio::time::timeout(Duration::from_secs(120), state.lifecycle.idle())
        .await
        .expect("the queue drains");
    let mut conn = state.system_db.get().await.unwrap();
    let mut sync = Vec::new();
    for i in 0..500 {
        let event = AuditEvent::new(Some(org.id), None, "access.forbidden").details(json!({ "sync": i }));
        let started = Instant::now();
        conn.transaction(async |conn| audit::record(conn, event).await)
            .await
            .unwrap();
        sync.push(started.elapsed());
    }
    sync.sort();
    println!(
        "  per denial: queued {:.2} µs on the request path; a synchronous write would be p50 {}  p99 {}",
        per_enqueue.as_secs_f64() * 1e6,
        ms(percentile(&sync, 0.5)),
        ms(percentile(&sync, 0.99))
    );

    let report = audit::verify_chain(&mut conn, Some(org.id)).await.unwrap();
    let expected = baseline + n + samples as usize + 500;
    println!(
        "  chain: {} records (expected {expected}), intact: {}",
        report.records,
        report.intact()
    );
    assert_eq!(report.records, expected);
    assert!(report.intact());
}

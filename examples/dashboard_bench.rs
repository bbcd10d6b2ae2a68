//! Dashboard benchmark: many `dashboardUpdated` viewers over many dashboards while calls are
//! ingested.
//!
//! What it does, all in this one process (the server is the real router, served on a local
//! port; the viewers are real `graphql-transport-ws` WebSocket clients; so the CPU figure is the
//! server's AND the clients'):
//! 1. creates a fresh database (`omnivox_dashboard_bench`, dropped first), migrated, with one
//!    organization of `--agents` agents in 5 teams, 10 inbound and 2 outbound campaigns;
//! 2. creates `--dashboards` ORGANIZATION dashboards of 12 widgets through `createDashboard`:
//!    per dashboard, the organization's offered/answered/abandoned/service-level tiles (shared by
//!    every dashboard), four tiles and a series of one campaign (10 campaigns), a series of the
//!    whole organization, a table of campaigns, an agent grid of one team and a compliance gauge
//!    of one outbound campaign — 35 distinct widget queries in all;
//! 3. opens `--viewers` WebSocket subscriptions (`dashboardUpdated`, viewer i on dashboard
//!    i mod dashboards), 100 connecting at a time, and waits for every snapshot;
//! 4. ingests `--rate` calls per second for `--duration` through `recordCallEvents` (the real
//!    ingest path: validation, one transaction, rollups, bus event after commit), each call
//!    offered and abandoned in one request of its own (requests overlap when one takes longer
//!    than the interval), on campaign k mod 10;
//! 5. prints the shared computations' recomputes per second (the registry's counter), the push
//!    latency (p50/p99/max) from the start of the ingest request to a viewer receiving the
//!    organization's offered tile that counts that call (the tile is on every dashboard, so every
//!    viewer measures every call; "start of the request" includes the ingest transaction itself,
//!    so the figure is an upper bound of commit → viewer), and the process's CPU over the ingest
//!    phase from `/proc/self/stat` (utime + stime).
//!
//! Run (one descriptor per socket on each side; raise the limit first):
//!
//! ```sh
//! ulimit -n 8000
//! cargo run --release --example dashboard_bench -- --viewers 1000 --dashboards 50 --rate 2 --duration 60s
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a benchmark fails loudly

#[path = "support/bench_db.rs"]
mod bench_db;
#[path = "../tests/common/fixture.rs"]
mod fixture;
#[path = "../tests/common/ws.rs"]
mod ws;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use clap::Parser;
use fixture::{AgentSpec, CampaignSpec, FixtureOrg};
use omnivox::auth::Role;
use omnivox::config::{parse_duration, Settings};
use omnivox::state::AppState;
use serde_json::{json, Value};
use ws::{WsClient, WsEvent};

const JWT_SECRET: &str = "dashboard-bench-secret-that-is-at-least-32-bytes";
const UPDATED: &str = "subscription($id: ID) { dashboardUpdated(id: $id) { kind widgets { position value } } }";
const RECORD: &str = "mutation($e: [CallEventInput!]!) { recordCallEvents(events: $e) { accepted rejected } }";
const CREATE: &str = "mutation($i: DashboardInput!) { createDashboard(input: $i) { id } }";

#[derive(Parser, Debug)]
#[command(about = "dashboardUpdated benchmark: shared widget computations under ingest")]
struct Args {
    #[arg(long, default_value_t = 1_000)]
    viewers: usize,
    #[arg(long, default_value_t = 50)]
    dashboards: usize,
    #[arg(long, default_value_t = 20)]
    agents: usize,
    /// Calls ingested per second during the measured phase.
    #[arg(long, default_value_t = 2.0)]
    rate: f64,
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/omnivox_dashboard_bench")]
    database_url: String,
    /// Redis for the event bus (the production path); `none` for the in-process bus.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
}

/// utime + stime of this process, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // The kernel's USER_HZ is 100 on Linux.
    ticks / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn grid(i: usize) -> Value {
    json!({ "x": (i % 4) * 12, "y": (i / 4) * 4, "width": 12, "height": 4 })
}

fn tile(i: usize, title: &str, metric: &str, filter: Value) -> Value {
    json!({ "title": title, "kind": "KPI_TILE", "grid": grid(i), "metric": metric, "filter": filter })
}

fn widgets(d: usize, org: &FixtureOrg) -> Vec<Value> {
    let campaign = json!({ "campaignIds": [org.campaigns[d % 10]] });
    vec![
        // Position 0, on every dashboard: the latency probe.
        tile(0, "Offered", "OFFERED", json!({})),
        tile(1, "Answered", "ANSWERED", json!({})),
        tile(2, "Abandoned", "ABANDONED", json!({})),
        tile(3, "Service level", "SERVICE_LEVEL", json!({})),
        tile(4, "Campaign offered", "OFFERED", campaign.clone()),
        tile(5, "Campaign abandon rate", "ABANDON_RATE", campaign.clone()),
        tile(6, "Campaign ASA", "AVERAGE_SPEED_OF_ANSWER", campaign.clone()),
        json!({ "title": "Campaign per hour", "kind": "TIME_SERIES", "grid": grid(7), "metric": "OFFERED",
                "granularity": "HOUR", "filter": campaign }),
        json!({ "title": "Offered per hour", "kind": "TIME_SERIES", "grid": grid(8), "metric": "OFFERED",
                "granularity": "HOUR" }),
        json!({ "title": "Campaigns", "kind": "TABLE", "grid": grid(9),
                "table": { "metrics": ["OFFERED", "ABANDON_RATE"], "groupBy": ["CAMPAIGN"] } }),
        json!({ "title": "Team", "kind": "AGENT_GRID", "grid": grid(10),
                "filter": { "teamIds": [org.teams[d % 5]] } }),
        json!({ "title": "Drop rate", "kind": "COMPLIANCE_GAUGE", "grid": grid(11),
                "campaignId": org.campaigns[10 + d % 2] }),
    ]
}

async fn gql(http: &reqwest::Client, addr: SocketAddr, token: &str, query: &str, variables: Value) -> Value {
    let body: Value = http
        .post(format!("http://{addr}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    body["data"].clone()
}

/// The organization's offered count in a message, when it carries widget 0.
fn offered(message: &Value) -> Option<i64> {
    message["widgets"]
        .as_array()?
        .iter()
        .find(|w| w["position"] == 0)
        .and_then(|w| w["value"]["value"].as_f64())
        .map(|v| v as i64)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = Args::parse();
    assert!(args.dashboards >= 1 && args.viewers >= 1 && args.agents >= 5);
    bench_db::recreate_database(&args.database_url).await;
    omnivox::db::run_migrations(&args.database_url).await.unwrap();
    let mut settings = Settings::for_database(&args.database_url);
    settings.jwt_secret = Some(JWT_SECRET.to_owned());
    settings.rate_limits_enabled = false;
    settings.ws_max_sockets_per_user = 1_000_000;
    settings.max_subscriptions_per_user = 1_000_000;
    settings.db_pool_size = 32;
    if args.redis_url != "none" {
        settings.redis_url = Some(args.redis_url.clone());
        settings.redis_prefix = format!("omnivox-dashboard-bench-{}:", std::process::id());
    }
    let state = AppState::new(settings).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = omnivox::http::app(state.clone());
    tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, service).await.unwrap();
    });

    let mut builder = FixtureOrg::builder("dashboard-bench").teams((0..5).map(|t| format!("Team {t}")));
    for a in 0..args.agents {
        builder = builder.agent(AgentSpec::new(format!("Agent {a:03}")).team(a % 5));
    }
    for c in 0..10 {
        builder = builder.campaign(CampaignSpec::inbound(&format!("Inbound {c}")));
    }
    for c in 0..2 {
        builder = builder.campaign(CampaignSpec::outbound(&format!("Outbound {c}")));
    }
    let org = builder.build(&state).await;
    let admin = org.token(&state, Role::Admin).await;
    let supervisor = org.token(&state, Role::Supervisor).await;
    let http = reqwest::Client::new();

    let mut ids = Vec::new();
    for d in 0..args.dashboards {
        let input =
            json!({ "title": format!("Dashboard {d:02}"), "visibility": "ORGANIZATION", "widgets": widgets(d, &org) });
        let data = gql(&http, addr, &admin, CREATE, json!({ "i": input })).await;
        ids.push(data["createDashboard"]["id"].as_str().unwrap().to_owned());
    }
    println!(
        "{} dashboards of 12 widgets created; opening {} viewers",
        args.dashboards, args.viewers
    );

    // Send times of the calls, by the offered count they bring the organization to.
    let sent: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let (go, ready) = tokio::sync::watch::channel(false);
    // Viewers connect 100 at a time, as screens coming up over a few seconds do (a thousand
    // subscriptions started in the same instant queue on the database pool).
    let connecting = Arc::new(tokio::sync::Semaphore::new(100));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for v in 0..args.viewers {
        let id = ids[v % ids.len()].clone();
        let token = supervisor.clone();
        let (sent, latencies) = (sent.clone(), latencies.clone());
        let mut ready = ready.clone();
        let connecting = connecting.clone();
        let (snapshot_tx, snapshot_rx) = tokio::sync::oneshot::channel();
        tasks.push((
            snapshot_rx,
            tokio::spawn(async move {
                let permit = connecting.acquire_owned().await.unwrap();
                let mut ws = WsClient::subscribed(addr, &token, UPDATED, json!({ "id": id })).await;
                let snapshot = ws.expect_data("dashboardUpdated").await;
                drop(permit);
                assert_eq!(snapshot["kind"], "SNAPSHOT");
                let mut seen = offered(&snapshot).unwrap();
                let base = seen;
                snapshot_tx.send(base).unwrap();
                ready.wait_for(|go| *go).await.unwrap();
                loop {
                    match ws.next(Duration::from_secs(30)).await {
                        WsEvent::Json(message) => {
                            let at = Instant::now();
                            let data = &message["payload"]["data"]["dashboardUpdated"];
                            let Some(now) = offered(data) else { continue };
                            let sent = sent.lock().unwrap();
                            let mut latencies = latencies.lock().unwrap();
                            // Every call newly counted by this message.
                            for count in (seen + 1)..=now {
                                let index = usize::try_from(count - base - 1).unwrap();
                                if let Some(at_send) = sent.get(index) {
                                    latencies.push(at.duration_since(*at_send).as_secs_f64() * 1_000.0);
                                }
                            }
                            seen = seen.max(now);
                        }
                        WsEvent::Timeout => break,
                        WsEvent::Closed(code) => panic!("viewer closed ({code:?})"),
                    }
                }
            }),
        ));
    }
    let mut joins = Vec::new();
    for (snapshot, join) in tasks {
        snapshot.await.unwrap();
        joins.push(join);
    }
    println!(
        "{} snapshots received in {:.1} s; {} shared widget computations",
        args.viewers,
        started.elapsed().as_secs_f64(),
        state.widgets.len()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    go.send(true).unwrap();

    let recomputes_before = omnivox::realtime::live::recomputes();
    let cpu_before = cpu_seconds();
    let phase = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let mut ticker = tokio::time::interval(interval);
    let mut n = 0usize;
    let ingest_ms: Arc<Mutex<Vec<f64>>> = Arc::default();
    let mut ingests = Vec::new();
    while phase.elapsed() < args.duration {
        ticker.tick().await;
        let call = format!("BENCH-{n:06}");
        let now = Utc::now();
        let events = json!([
            { "externalId": call, "type": "OFFERED", "occurredAt": (now - TimeDelta::seconds(2)).to_rfc3339(),
              "direction": "INBOUND", "campaignId": org.campaigns[n % 10] },
            { "externalId": call, "type": "ENDED", "occurredAt": (now - TimeDelta::seconds(1)).to_rfc3339() },
        ]);
        // Each call in its own task, so the rate holds whatever one request takes (two calls
        // that commit out of order swap their send times, half a second apart).
        let (http, admin, sent, ingest_ms) = (http.clone(), admin.clone(), sent.clone(), ingest_ms.clone());
        ingests.push(tokio::spawn(async move {
            let at = Instant::now();
            sent.lock().unwrap().push(at);
            let data = gql(&http, addr, &admin, RECORD, json!({ "e": events })).await;
            assert_eq!(data["recordCallEvents"]["rejected"], 0, "{data}");
            ingest_ms.lock().unwrap().push(at.elapsed().as_secs_f64() * 1_000.0);
        }));
        n += 1;
    }
    for ingest in ingests {
        ingest.await.unwrap();
    }
    let elapsed = phase.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let recomputes = omnivox::realtime::live::recomputes() - recomputes_before;
    // Let the last pushes arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort_by(f64::total_cmp);
    let mut ingest_ms = ingest_ms.lock().unwrap().clone();
    ingest_ms.sort_by(f64::total_cmp);
    let expected = n * args.viewers;
    println!();
    println!(
        "viewers {} | dashboards {} x 12 widgets | shared computations {} | calls ingested {n} in {elapsed:.1} s",
        args.viewers,
        args.dashboards,
        state.widgets.len()
    );
    println!(
        "recomputes: {recomputes} ({:.2}/s; every shared computation of the instance, widgets and liveKpis)",
        recomputes as f64 / elapsed
    );
    println!(
        "push latency, ingest request start -> viewer (ms): p50 {:.1}  p99 {:.1}  max {:.1}  ({} of {expected} call x viewer deliveries)",
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(f64::NAN),
        latencies.len()
    );
    println!(
        "ingest request (ms): p50 {:.1}  p99 {:.1}",
        percentile(&ingest_ms, 50.0),
        percentile(&ingest_ms, 99.0)
    );
    println!(
        "process CPU over the ingest phase: {cpu:.1} s in {elapsed:.1} s = {:.0} % of one core (server and viewers)",
        100.0 * cpu / elapsed
    );
    for join in joins {
        join.abort();
    }
}

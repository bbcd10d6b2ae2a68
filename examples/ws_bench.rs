//! WebSocket subscription benchmark: many `graphql-transport-ws` clients on one instance.
//!
//! What it does, all on this machine:
//! 1. starts its own `redis-server` on a spare port and creates a fresh database
//!    (`omnivox_ws_bench`, dropped first), migrated, with one organization, `--agents` agents in
//!    `--kpi-filters` teams, a VIEWER and a SUPERVISOR;
//! 2. starts the server (`--server-binary`, build it with `cargo build --release`) with Redis,
//!    as a separate process so its memory and CPU can be read from `/proc/<pid>`;
//! 3. connects `--clients` sockets (default 10,000), each subscribed to `agentStates`, waits for
//!    every snapshot, and reads the server's RSS: (RSS after − RSS before) / clients is the cost
//!    of one idle subscriber;
//! 4. sets agents' presence through the GraphQL mutation at `--rate` changes per second for
//!    `--duration`; every client measures publish → receive latency from the delta's
//!    `presenceSince` (the server's clock at the change, same machine): p50, p99, max; the
//!    server's CPU over the phase from `/proc/<pid>/stat`;
//! 5. counts the Redis connections subscribed to pub/sub (`CLIENT LIST`);
//! 6. closes those sockets, opens `--kpi-clients` `liveKpis` subscribers spread over
//!    `--kpi-filters` distinct filters (one team each), publishes at the same rate and reports
//!    the shared computations' recomputes per second (from `/metrics`).
//!
//! Run (the client and the server each hold one descriptor per socket; raise the limit first):
//!
//! ```sh
//! ulimit -n 20000
//! cargo build --release --bin omnivox --example ws_bench
//! target/release/examples/ws_bench --clients 10000 --rate 5 --duration 30s
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a benchmark fails loudly

#[path = "support/bench_db.rs"]
mod bench_db;
#[path = "../tests/common/fixture.rs"]
mod fixture;
#[path = "../tests/common/ws.rs"]
mod ws;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::Parser;
use fixture::FixtureOrg;
use omnivox::auth::Role;
use omnivox::config::{parse_duration, Settings};
use omnivox::db;
use omnivox::domain::Presence;
use omnivox::state::AppState;
use serde_json::{json, Value};
use tokio::sync::watch;
use ws::WsClient;

/// Resync snapshots received by all clients.
static RESYNCS: AtomicUsize = AtomicUsize::new(0);
const JWT_SECRET: &str = "ws-bench-secret-that-is-at-least-32-bytes";
const DATABASE: &str = "omnivox_ws_bench";
const AGENT_STATES: &str = "subscription { agentStates { kind resync agents { id presence presenceSince } } }";
const LIVE_KPIS: &str = "subscription($f: LiveKpiFilter) { liveKpis(filter: $f) { computedAt callsWaiting \
    today { offered answered serviceLevel } agentsByPresence { state count } } }";
const SET_PRESENCE: &str = "mutation($a: ID, $p: Presence!) { setAgentPresence(agentId: $a, presence: $p) { id } }";

#[derive(Parser, Debug)]
#[command(about = "WebSocket subscription benchmark (agentStates fan-out, liveKpis sharing)")]
struct Args {
    /// agentStates subscribers.
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    /// liveKpis subscribers (second phase).
    #[arg(long, default_value_t = 1_000)]
    kpi_clients: usize,
    /// Distinct liveKpis filters (one team each); also the number of teams.
    #[arg(long, default_value_t = 10)]
    kpi_filters: usize,
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// Presence changes per second during the measured phases.
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    /// Length of each measured phase.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// The server binary (`cargo build --release --bin omnivox`).
    #[arg(long, default_value = "target/release/omnivox")]
    server_binary: PathBuf,
    /// PostgreSQL server (the benchmark database is created on it).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    pg_server: String,
    /// Sockets being opened at once.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command (which may contain spaces) end with ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

async fn wait_port(port: u16) {
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing listens on port {port}");
}

struct Seeded {
    viewer: String,
    supervisor: String,
    agents: Vec<uuid::Uuid>,
    teams: Vec<uuid::Uuid>,
}

async fn seed(args: &Args, database_url: &str) -> Seeded {
    bench_db::recreate_database(database_url).await;
    db::run_migrations(database_url).await.unwrap();
    let mut settings = Settings::for_database(database_url);
    // This benchmark measures WebSocket fan-out, not the rate limits (examples/rate_limit_bench.rs does).
    settings.rate_limits_enabled = false;
    settings.jwt_secret = Some(JWT_SECRET.to_owned());
    let state = AppState::new(settings).unwrap();
    let org = FixtureOrg::builder("bench")
        .roles([Role::Viewer, Role::Supervisor])
        .teams((0..args.kpi_filters.max(1)).map(|t| format!("Team {t:02}")))
        .agents((0..args.agents).map(|a| format!("Agent {a:04}")))
        .presence(Presence::Available)
        .build(&state)
        .await;
    let ttl = Duration::from_secs(4 * 3600);
    Seeded {
        viewer: org.token_for(&state, Role::Viewer, ttl).await,
        supervisor: org.token_for(&state, Role::Supervisor, ttl).await,
        agents: org.agents,
        teams: org.teams,
    }
}

/// The `presenceSince` of every agent of a delta, without parsing the whole message.
fn delta_since(text: &str, out: &mut Vec<DateTime<Utc>>) -> bool {
    if !text.contains("\"kind\":\"DELTA\"") {
        return false;
    }
    const KEY: &str = "\"presenceSince\":\"";
    let mut rest = text;
    while let Some(at) = rest.find(KEY) {
        rest = &rest[at + KEY.len()..];
        let Some(end) = rest.find('"') else { break };
        if let Ok(t) = DateTime::parse_from_rfc3339(&rest[..end]) {
            out.push(t.to_utc());
        }
        rest = &rest[end..];
    }
    true
}

/// One agentStates client: waits for its snapshot (counted in `ready`), then records the
/// latency of every delta until `stop`.
async fn agent_states_client(
    port: u16,
    token: Arc<String>,
    ready: Arc<AtomicUsize>,
    delivered: Arc<AtomicUsize>,
    permit: tokio::sync::OwnedSemaphorePermit,
    mut stop: watch::Receiver<bool>,
) -> Vec<f64> {
    let mut permit = Some(permit);
    let mut ws = WsClient::subscribed(local(port), &token, AGENT_STATES, json!({})).await;
    let mut latencies = Vec::new();
    let mut snapshot = false;
    loop {
        tokio::select! {
            text = ws.next_text() => {
                let Some(text) = text else { break };
                let now = Utc::now();
                let mut since = Vec::new();
                if delta_since(&text, &mut since) {
                    delivered.fetch_add(since.len(), Ordering::Relaxed);
                    latencies.extend(since.iter().map(|t| (now - *t).num_microseconds().unwrap_or(0) as f64 / 1000.0));
                } else if text.contains("\"resync\":true") {
                    RESYNCS.fetch_add(1, Ordering::Relaxed);
                } else if !snapshot && text.contains("\"kind\":\"SNAPSHOT\"") {
                    snapshot = true;
                    ready.fetch_add(1, Ordering::Relaxed);
                    // The handshake is done: let another client connect.
                    permit.take();
                }
            }
            _ = stop.changed() => break,
        }
    }
    ws.close().await;
    latencies
}

/// One liveKpis client: counts messages until `stop`.
async fn kpi_client(
    port: u16,
    token: Arc<String>,
    team: uuid::Uuid,
    ready: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) -> usize {
    let filter = json!({ "f": { "teamIds": [team.to_string()] } });
    let mut ws = WsClient::subscribed(local(port), &token, LIVE_KPIS, filter).await;
    let mut messages = 0;
    loop {
        tokio::select! {
            text = ws.next_text() => {
                let Some(text) = text else { break };
                if text.contains("\"liveKpis\"") {
                    if messages == 0 {
                        ready.fetch_add(1, Ordering::Relaxed);
                    }
                    messages += 1;
                }
            }
            _ = stop.changed() => break,
        }
    }
    ws.close().await;
    messages
}

/// Sets presences at `rate` per second for `duration`, cycling through the agents. Each change
/// is its own request, sent on schedule whether or not the previous one answered (a steady
/// rate, as the telephony layer would produce).
async fn publish_changes(
    port: u16,
    token: &str,
    agents: &[uuid::Uuid],
    rate: f64,
    duration: Duration,
    round: usize,
) -> usize {
    let http = reqwest::Client::new();
    let period = Duration::from_secs_f64(1.0 / rate.max(0.01));
    let mut ticker = tokio::time::interval(period);
    let started = Instant::now();
    let mut sent = 0;
    let mut requests = Vec::new();
    while started.elapsed() < duration {
        ticker.tick().await;
        let agent = agents[sent % agents.len()];
        // Each pass over the agents flips them between BREAK and AVAILABLE.
        let pass = sent / agents.len() + round;
        let presence = if pass % 2 == 0 { "BREAK" } else { "AVAILABLE" };
        let request = http
            .post(format!("http://127.0.0.1:{port}/graphql"))
            .bearer_auth(token)
            .json(&json!({ "query": SET_PRESENCE, "variables": { "a": agent.to_string(), "p": presence } }));
        requests.push(tokio::spawn(async move {
            match request.send().await {
                Ok(response) => response
                    .json::<Value>()
                    .await
                    .is_ok_and(|body| body.get("errors").is_none()),
                Err(_) => false,
            }
        }));
        sent += 1;
    }
    let mut failed = 0;
    for request in requests {
        if !request.await.unwrap() {
            failed += 1;
        }
    }
    if failed > 0 {
        println!("!! {failed} of {sent} changes failed (server overloaded)");
    }
    sent - failed
}

async fn metric(port: u16, name: &str) -> f64 {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

async fn redis_subscribers(port: u16) -> usize {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut conn).await.unwrap();
    list.lines()
        .filter(|line| {
            line.split(' ')
                .any(|kv| matches!(kv.split_once('='), Some(("psub" | "sub", n)) if n != "0"))
        })
        .count()
}

async fn wait_ready(counter: &AtomicUsize, expected: usize, what: &str) {
    let mut last = 0;
    let mut stalled = Instant::now();
    while counter.load(Ordering::Relaxed) < expected {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = counter.load(Ordering::Relaxed);
        if now != last {
            last = now;
            stalled = Instant::now();
        }
        assert!(
            stalled.elapsed() < Duration::from_secs(60),
            "{what}: stuck at {now}/{expected}"
        );
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let redis_port = spare_port();
    let _redis = Process(
        Command::new("redis-server")
            .args(["--port", &redis_port.to_string(), "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server"),
    );
    wait_port(redis_port).await;
    let database_url = format!("{}/{DATABASE}", args.pg_server);
    let seeded = seed(&args, &database_url).await;

    let port = spare_port();
    let server = Process(
        Command::new(&args.server_binary)
            .arg("serve")
            .env("DATABASE_URL", &database_url)
            .env("REDIS_URL", format!("redis://127.0.0.1:{redis_port}"))
            .env("OMNIVOX_REDIS_PREFIX", "omnivox-bench:")
            .env("OMNIVOX_JWT_SECRET", JWT_SECRET)
            .env("OMNIVOX_BIND", format!("127.0.0.1:{port}"))
            // One VIEWER account opens every socket of the benchmark.
            .env("OMNIVOX_WS_MAX_SOCKETS_PER_USER", "1000000")
            .env("OMNIVOX_RATE_LIMITS_ENABLED", "false")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (cargo build --release --bin omnivox)",
                    args.server_binary.display()
                )
            }),
    );
    let pid = server.0.id();
    wait_port(port).await;
    let viewer = Arc::new(seeded.viewer.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = rss_kib(pid);

    // Phase 1: agentStates fan-out.
    let ready = Arc::new(AtomicUsize::new(0));
    let delivered = Arc::new(AtomicUsize::new(0));
    let (stop, stopped) = watch::channel(false);
    let gate = Arc::new(tokio::sync::Semaphore::new(args.connect_concurrency));
    let mut clients = Vec::with_capacity(args.clients);
    let connecting = Instant::now();
    for _ in 0..args.clients {
        let (token, ready, stopped, gate) = (viewer.clone(), ready.clone(), stopped.clone(), gate.clone());
        // Held until the snapshot arrived: at most `connect_concurrency` handshakes at once.
        let permit = gate.acquire_owned().await.unwrap();
        let delivered = delivered.clone();
        clients.push(tokio::spawn(agent_states_client(
            port, token, ready, delivered, permit, stopped,
        )));
    }
    wait_ready(&ready, args.clients, "agentStates subscribers").await;
    let connect_time = connecting.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = rss_kib(pid);
    let subscribers = redis_subscribers(redis_port).await;

    let ticks = clock_ticks_per_second();
    let own = std::process::id();
    let (cpu_before, own_before) = (cpu_ticks(pid), cpu_ticks(own));
    let phase = Instant::now();
    let changes = publish_changes(port, &seeded.supervisor, &seeded.agents, args.rate, args.duration, 0).await;
    let elapsed = phase.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(pid) - cpu_before) as f64 / ticks / elapsed * 100.0;
    let client_cpu = (cpu_ticks(own) - own_before) as f64 / ticks / elapsed * 100.0;
    // Let the tail arrive: until no delivery for two seconds (at most 30 s).
    let mut last = 0;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = delivered.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }
    stop.send_replace(true);
    let mut latencies = Vec::new();
    for client in clients {
        latencies.extend(client.await.unwrap());
    }
    latencies.sort_by(f64::total_cmp);
    let expected = changes * args.clients;

    println!("== agentStates fan-out ==");
    println!(
        "subscribers {}  agents {}  changes {} at {}/s over {:?}",
        args.clients, args.agents, changes, args.rate, args.duration
    );
    println!(
        "all subscribed (snapshot received) in {:.1} s",
        connect_time.as_secs_f64()
    );
    println!(
        "deliveries {} of {} expected ({:.2} %)",
        latencies.len(),
        expected,
        latencies.len() as f64 / expected.max(1) as f64 * 100.0
    );
    println!(
        "publish -> client latency ms: p50 {:.1}  p99 {:.1}  max {:.1}",
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "server RSS: {} KiB idle, {} KiB with subscribers -> {:.1} KiB per idle subscriber",
        rss_before,
        rss_after,
        (rss_after.saturating_sub(rss_before)) as f64 / args.clients.max(1) as f64
    );
    println!("CPU during the change phase: server {cpu:.0} %, benchmark clients {client_cpu:.0} % of one core (2 cores in all)");
    println!("Redis pub/sub subscriber connections: {subscribers}");
    println!(
        "shared renders: {} streams, {} messages rendered once, {} deliveries of them",
        metric(port, "omnivox_ws_shared_streams").await,
        metric(port, "omnivox_ws_shared_renders_total").await,
        metric(port, "omnivox_ws_shared_deliveries_total").await
    );
    println!(
        "resync snapshots received: {}; bus reconnects: {}; publish failures: {}",
        RESYNCS.load(Ordering::Relaxed),
        metric(port, "omnivox_bus_reconnects_total").await,
        metric(port, "omnivox_bus_publish_failures_total").await
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Phase 2: liveKpis sharing.
    let ready = Arc::new(AtomicUsize::new(0));
    let (stop, stopped) = watch::channel(false);
    let mut kpis = Vec::with_capacity(args.kpi_clients);
    for i in 0..args.kpi_clients {
        let team = seeded.teams[i % seeded.teams.len()];
        let (token, ready, stopped) = (viewer.clone(), ready.clone(), stopped.clone());
        kpis.push(tokio::spawn(kpi_client(port, token, team, ready, stopped)));
        if i % args.connect_concurrency == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    wait_ready(&ready, args.kpi_clients, "liveKpis subscribers").await;
    let computations = metric(port, "omnivox_live_kpi_computations").await;
    let recomputes_before = metric(port, "omnivox_live_kpi_recomputes_total").await;
    let phase = Instant::now();
    let changes = publish_changes(port, &seeded.supervisor, &seeded.agents, args.rate, args.duration, 1).await;
    let recomputes = metric(port, "omnivox_live_kpi_recomputes_total").await - recomputes_before;
    let seconds = phase.elapsed().as_secs_f64();
    stop.send_replace(true);
    let mut messages = 0;
    for k in kpis {
        messages += k.await.unwrap();
    }
    println!("== liveKpis sharing ==");
    println!(
        "subscribers {}  filters {}  shared computations {}  changes {} at {}/s",
        args.kpi_clients, args.kpi_filters, computations, changes, args.rate
    );
    println!(
        "recomputes {} in {:.1} s = {:.2} per second; messages pushed to clients {}",
        recomputes,
        seconds,
        recomputes / seconds,
        messages
    );
}

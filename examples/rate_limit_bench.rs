//! Rate-limit benchmark: what the limiter costs a normal client, and whether it protects one
//! client from another that hammers the heaviest query.
//!
//! ```text
//! cargo build --release --bin omnivox --example rate_limit_bench
//! target/release/examples/rate_limit_bench [--rounds 3] [--iterations 1000] [--abusers 2]
//!     [--calls 200000] [--days 30] [--skip-seed] [--server-binary target/release/omnivox]
//!     [--database-url postgres://postgres@127.0.0.1:5432/omnivox_bench_limits]
//!     [--redis-url redis://127.0.0.1:6379]
//! ```
//!
//! Three kinds of process, so that none measures itself:
//! * **two servers**, the real `omnivox serve` binary (by default the one built next to this
//!   benchmark, so a release benchmark runs a release server): limits **off**
//!   (`OMNIVOX_RATE_LIMITS_ENABLED=false`) and limits **on** (defaults, buckets in Redis), on
//!   the same database, logging as they would in production (`info`, to a file);
//! * **the abuser**: this same binary re-executed with `--role abuser`, a SUPERVISOR running
//!   `--abusers` concurrent loops of `analytics` agent × date over 30 days (limit 10,000 rows:
//!   the heaviest query the complexity limit admits). Each loop sends its next request as soon
//!   as the previous answer arrived, 429 or not: it ignores `Retry-After` altogether (the
//!   worst a client can do without opening more connections);
//! * **the well-behaved client**: this process, a VIEWER asking for `kpiSummary` over 30 days,
//!   one request at a time. Its role's budget is raised (`OMNIVOX_RATE_LIMITS=viewer=…`) so
//!   that back-to-back measurement is never refused; the abuser keeps the default SUPERVISOR
//!   budget.
//!
//! Each of `--rounds` rounds then measures:
//! 1. **Overhead under normal load**: `--iterations` `kpiSummary` requests to each server,
//!    alternating request by request (in alternating order), so drift of the machine hits both
//!    alike; p50 and p99 of each. Target: limits-on within 10 % of limits-off.
//! 2. **Abuse**: the good client's `--iterations` requests to the limits-on server alone, half
//!    just before the abuser starts and half just after it stopped (so that the reference
//!    brackets the abuse in time, and drift of the machine between phases cancels), against
//!    `--iterations` requests timed while the abuser, started against the limits-on server,
//!    goes on once it has spent its budget (its first 429). Target: p99 within 20 %.
//!
//! Every phase prints the load average, the compilers running on the machine, and the CPU
//! (`/proc/<pid>/stat`, in % of one core over the phase) of each server, the abuser, this
//! client, the PostgreSQL backends connected to the benchmark database and Redis, next to the
//! whole machine's. The summary gives the lowest and highest figure over the rounds.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly
#![allow(clippy::print_stdout)]

#[path = "support/bench_db.rs"]
mod bench_db;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{SubsecRound, TimeDelta, Utc};
use clap::{Parser, ValueEnum};
use diesel::sql_types::BigInt;
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use omnivox::auth::{password, Role, Tenant};
use omnivox::db::{self, orgs, users};
use omnivox::seed::generator::{self, GeneratorSettings};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const JWT_SECRET: &str = "rate-limit-bench-secret-at-least-32-bytes";
const PASSWORD: &str = "rate-limit-bench-password";
const GOOD_EMAIL: &str = "good-viewer@bench.example";
const ABUSER_EMAIL: &str = "abusive-supervisor@bench.example";
/// The well-behaved client's budget: far above what back-to-back measurement spends.
const GOOD_BUDGET: &str = "viewer=10000000";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BenchRole {
    /// Seeds, starts the servers and the abuser, measures.
    Bench,
    /// The abusive client (started by the benchmark itself).
    Abuser,
}

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, value_enum, default_value = "bench")]
    role: BenchRole,
    #[arg(long, default_value_t = 200_000)]
    calls: u64,
    #[arg(long, default_value_t = 30)]
    days: u32,
    #[arg(long, default_value_t = 100)]
    agents: u32,
    /// Timed `kpiSummary` requests per server and measurement.
    #[arg(long, default_value_t = 1_000)]
    iterations: usize,
    /// Rounds of (overhead, abuse); the summary gives the lowest and highest of them. 0 only
    /// seeds the database.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Concurrent loops of the abusive client.
    #[arg(long, default_value_t = 2)]
    abusers: usize,
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/omnivox_bench_limits")]
    database_url: String,
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    #[arg(long)]
    skip_seed: bool,
    /// The server binary; by default `omnivox` of the same build profile as this benchmark.
    #[arg(long)]
    server_binary: Option<PathBuf>,
    /// The limits-on server's `--rate-limit-repeat-delay` (`0s`: refusals answered at once);
    /// unset, the server's default.
    #[arg(long)]
    repeat_delay: Option<String>,
    /// Abuser: the GraphQL endpoint.
    #[arg(long, default_value = "")]
    url: String,
    /// Abuser: its access token.
    #[arg(long, default_value = "")]
    token: String,
    /// Abuser: the query's variables (JSON).
    #[arg(long, default_value = "{}")]
    variables: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

const SUMMARY: &str = "query($f: KpiFilter!) { kpiSummary(filter: $f) {
    offered answered handled abandoned shortAbandoned serviceLevel averageSpeedOfAnswer averageHandleTime
    abandonRate longestWait occupancy contactRate conversionRate callsPerAgentHour outboundAbandonRateUk } }";
const ANALYTICS: &str = "query($f: KpiFilter!) {
    analytics(query: { metrics: [OFFERED, HANDLED, SERVICE_LEVEL, AVERAGE_HANDLE_TIME, ABANDON_RATE, OCCUPANCY],
                       groupBy: [AGENT, DATE], filter: $f, limit: 10000 }) {
      totalRows truncated rows { dimensions { agent { id name } date } values } } }";

struct Stats {
    p50: Duration,
    p99: Duration,
    n: usize,
}

impl Stats {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        let n = samples.len().max(1);
        let rank = |p: f64| samples[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
        Stats {
            p50: rank(0.50),
            p99: rank(0.99),
            n: samples.len(),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn change(new: Duration, base: Duration) -> f64 {
    (new.as_secs_f64() / base.as_secs_f64().max(1e-9) - 1.0) * 100.0
}

/// One request: (time to the whole body, HTTP status, body).
async fn post(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    query: &str,
    variables: &Value,
) -> (Duration, u16, Value) {
    let started = Instant::now();
    let response = http
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    let elapsed = started.elapsed();
    (elapsed, status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn login(http: &reqwest::Client, url: &str, email: &str) -> String {
    let body: Value = http
        .post(url)
        .json(&json!({
            "query": "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }",
            "variables": { "e": email, "p": PASSWORD }
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["data"]["login"]["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("login failed: {body}"))
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// The abuser process.

/// `--role abuser`: loops until its standard input closes. Prints `throttled` at its first
/// 429, and `counts <executed> <refused> <ms spent in executed requests>` for every line read.
async fn abuser(args: Args) {
    let variables: Value = serde_json::from_str(&args.variables).unwrap();
    let http = reqwest::Client::new();
    let stop = Arc::new(AtomicBool::new(false));
    let executed = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let executed_us = Arc::new(AtomicU64::new(0));
    let throttled = Arc::new(tokio::sync::Notify::new());
    let mut loops = Vec::new();
    for _ in 0..args.abusers.max(1) {
        let (http, url, token, variables) = (http.clone(), args.url.clone(), args.token.clone(), variables.clone());
        let (stop, executed, refused, executed_us, throttled) = (
            stop.clone(),
            executed.clone(),
            refused.clone(),
            executed_us.clone(),
            throttled.clone(),
        );
        loops.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (elapsed, status, body) = post(&http, &url, &token, ANALYTICS, &variables).await;
                match status {
                    429 => {
                        if refused.fetch_add(1, Ordering::Relaxed) == 0 {
                            throttled.notify_one();
                        }
                    }
                    200 => {
                        executed.fetch_add(1, Ordering::Relaxed);
                        executed_us.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
                    }
                    other => panic!("abuser: HTTP {other}: {body}"),
                }
            }
        }));
    }
    let mut out = tokio::io::stdout();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut said_throttled = false;
    loop {
        tokio::select! {
            () = throttled.notified(), if !said_throttled => {
                said_throttled = true;
                out.write_all(b"throttled\n").await.unwrap();
                out.flush().await.unwrap();
            }
            line = lines.next_line() => {
                let Ok(Some(_)) = line else { break };
                let counts = format!(
                    "counts {} {} {}\n",
                    executed.load(Ordering::Relaxed),
                    refused.load(Ordering::Relaxed),
                    executed_us.load(Ordering::Relaxed) / 1000
                );
                out.write_all(counts.as_bytes()).await.unwrap();
                out.flush().await.unwrap();
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for handle in loops {
        let _ = handle.await;
    }
}

/// The benchmark's handle on its abuser process.
struct Abuser {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct AbuseCounts {
    executed: u64,
    refused: u64,
    executed_ms: u64,
}

impl Abuser {
    fn start(loops: usize, url: &str, token: &str, variables: &Value) -> Self {
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args(["--role", "abuser", "--abusers", &loops.to_string(), "--url", url])
            .args(["--token", token, "--variables", &variables.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Abuser { child, stdin, lines }
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    async fn throttled(&mut self) {
        let line = tokio::time::timeout(Duration::from_secs(300), self.lines.next_line())
            .await
            .expect("the abuser was never throttled")
            .unwrap();
        assert_eq!(line.as_deref(), Some("throttled"));
    }

    async fn counts(&mut self) -> AbuseCounts {
        self.stdin.write_all(b"counts\n").await.unwrap();
        self.stdin.flush().await.unwrap();
        let line = self.lines.next_line().await.unwrap().expect("the abuser ended");
        let numbers: Vec<u64> = line
            .strip_prefix("counts ")
            .unwrap_or_else(|| panic!("abuser said {line:?}"))
            .split(' ')
            .map(|n| n.parse().unwrap())
            .collect();
        AbuseCounts {
            executed: numbers[0],
            refused: numbers[1],
            executed_ms: numbers[2],
        }
    }

    async fn stop(mut self) {
        drop(self.stdin);
        let _ = tokio::time::timeout(Duration::from_secs(150), self.child.wait()).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Server processes and CPU accounting.

struct Server {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Kept when the benchmark failed: it may say why.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_server(binary: &PathBuf, args: &Args, limits: bool, run: &str) -> Server {
    let port = spare_port();
    let name = if limits { "on" } else { "off" };
    let log = std::env::temp_dir().join(format!("rate-limit-bench-{run}-{name}.log"));
    let log_file = std::fs::File::create(&log).unwrap();
    let mut command = Command::new(binary);
    if let Some(delay) = &args.repeat_delay {
        command.env("OMNIVOX_RATE_LIMIT_REPEAT_DELAY", delay);
    }
    let child = command
        .arg("serve")
        .env("DATABASE_URL", &args.database_url)
        .env("REDIS_URL", &args.redis_url)
        .env("OMNIVOX_REDIS_PREFIX", format!("omnivox-bench:{run}:{name}:"))
        .env("OMNIVOX_JWT_SECRET", JWT_SECRET)
        .env("OMNIVOX_BIND", format!("127.0.0.1:{port}"))
        .env("OMNIVOX_RATE_LIMITS_ENABLED", limits.to_string())
        .env("OMNIVOX_RATE_LIMITS", GOOD_BUDGET)
        .env("OMNIVOX_REQUEST_TIMEOUT", "120s")
        .env("OMNIVOX_DB_STATEMENT_TIMEOUT", "120s")
        .env_remove("RUST_LOG")
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (cargo build --release --bin omnivox, or --server-binary)",
                binary.display()
            )
        });
    let server = Server {
        child,
        url: format!("http://127.0.0.1:{port}/graphql"),
        log,
    };
    let ready = format!("http://127.0.0.1:{port}/readyz");
    let http = reqwest::Client::new();
    for _ in 0..1200 {
        if http.get(&ready).send().await.is_ok_and(|r| r.status().is_success()) {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the {name} server never became ready; see {}", server.log.display());
}

fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process, in clock ticks (0 once it is gone).
fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The fields after the command name (which may hold spaces) start after its ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Processes whose command line contains `needle` (PostgreSQL backends name their database
/// in theirs), or whose name is `comm`.
fn pids_matching(comm: Option<&str>, needle: Option<&str>) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let matches_comm = comm
            .is_some_and(|comm| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm));
        let matches_cmdline = needle.is_some_and(|needle| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        });
        if matches_comm || matches_cmdline {
            pids.push(pid);
        }
    }
    pids
}

/// The busy and total ticks of the whole machine (`/proc/stat`).
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let numbers: Vec<u64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    let total: u64 = numbers.iter().take(8).sum();
    let idle = numbers[3] + numbers[4];
    (total - idle, total)
}

fn load_and_builds() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let compilers = pids_matching(Some("rustc"), None).len();
    format!("load {}, {compilers} rustc running", load.join(" "))
}

/// What each process of interest spent over one phase.
struct CpuWatch {
    /// Fixed processes, by name.
    fixed: Vec<(&'static str, Vec<u32>)>,
    /// The command-line mark of the benchmark database's PostgreSQL backends.
    database: String,
    started: Instant,
    /// Ticks at the start, by pid (fixed processes, backends, Redis).
    before: HashMap<u32, u64>,
    machine: (u64, u64),
    context: String,
}

impl CpuWatch {
    fn start(mut fixed: Vec<(&'static str, Vec<u32>)>, database: &str) -> Self {
        let context = load_and_builds();
        fixed.push(("redis-server", pids_matching(Some("redis-server"), None)));
        let mut watch = CpuWatch {
            fixed,
            database: format!(" {database} "),
            started: Instant::now(),
            before: HashMap::new(),
            machine: machine_ticks(),
            context,
        };
        let pids: Vec<u32> = watch
            .fixed
            .iter()
            .flat_map(|(_, pids)| pids.iter().copied())
            .chain(watch.backends())
            .collect();
        watch.before = pids.into_iter().map(|pid| (pid, cpu_ticks(pid))).collect();
        watch
    }

    /// PostgreSQL backends connected to the benchmark database (they name it in their title).
    fn backends(&self) -> Vec<u32> {
        pids_matching(None, Some(&self.database))
    }

    fn used(&self, pids: &[u32]) -> u64 {
        // A backend opened during the phase spent all its ticks in it.
        pids.iter()
            .map(|pid| cpu_ticks(*pid).saturating_sub(self.before.get(pid).copied().unwrap_or(0)))
            .sum()
    }

    /// The load, and each process's CPU over the phase in % of one core.
    fn finish(self) -> String {
        let elapsed = self.started.elapsed().as_secs_f64();
        let ticks = ticks_per_second();
        let percent = |used: u64| used as f64 / ticks / elapsed * 100.0;
        let mut parts: Vec<String> = self
            .fixed
            .iter()
            .map(|(name, pids)| format!("{name} {:.0} %", percent(self.used(pids))))
            .collect();
        parts.push(format!(
            "postgres (bench database) {:.0} %",
            percent(self.used(&self.backends()))
        ));
        let (busy, total) = machine_ticks();
        let machine = (busy - self.machine.0) as f64 / (total - self.machine.1).max(1) as f64 * 100.0;
        format!(
            "{}; CPU in % of one core: {}; the machine was {machine:.0} % busy",
            self.context,
            parts.join(", ")
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The benchmark.

async fn seed(args: &Args) {
    // Here only: its `load` would shadow the atomics' elsewhere.
    use diesel_async::RunQueryDsl;
    let url = &args.database_url;
    let existing = match AsyncPgConnection::establish(url).await {
        Ok(mut conn) => diesel::sql_query("SELECT count(*) AS n FROM interactions")
            .get_result::<Count>(&mut conn)
            .await
            .map(|c| c.n)
            .ok(),
        Err(_) => None,
    };
    let reuse = args.skip_seed && existing.is_some_and(|n| n > 0);
    if !reuse {
        if existing.is_some() {
            bench_db::recreate_database(url).await;
        }
        db::create_database_if_missing(url).await.unwrap();
    }
    db::run_migrations(url).await.unwrap();
    let pool = db::build_pool(url, 4, Duration::from_secs(10), Duration::from_secs(600)).unwrap();
    if !reuse {
        let settings = GeneratorSettings {
            org_slug: "bench".into(),
            calls: args.calls,
            days: args.days,
            agents: args.agents,
            campaigns: 5,
            ..GeneratorSettings::default()
        };
        println!("generating {} calls over {} days …", args.calls, args.days);
        let report = generator::run(url, &pool, &settings, &mut |_| {}).await.unwrap();
        println!("  loaded {} calls in {:.1} s", report.calls, report.load.as_secs_f64());
        db::conn(&pool)
            .await
            .unwrap()
            .batch_execute("VACUUM ANALYZE")
            .await
            .unwrap();
    }
    let mut conn = db::conn(&pool).await.unwrap();
    let org = orgs::find_by_slug(&mut conn, "bench")
        .await
        .unwrap()
        .expect("org `bench`");
    let tenant = Tenant::for_system(org.id);
    let hash = password::hash(PASSWORD.to_owned()).await.unwrap();
    for (email, name, role) in [
        (GOOD_EMAIL, "Good Viewer", Role::Viewer),
        (ABUSER_EMAIL, "Abusive Supervisor", Role::Supervisor),
    ] {
        users::upsert_for_seed(&mut conn, &tenant, email, name, role, &hash)
            .await
            .unwrap();
    }
}

/// The server binary next to this benchmark (`<profile>/examples/rate_limit_bench` →
/// `<profile>/omnivox`).
fn default_server_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .and_then(|examples| examples.parent())
        .map(|profile| profile.join("omnivox"))
        .unwrap()
}

/// `n` `kpiSummary` requests of the well-behaved client to one server, one at a time.
async fn time_good_client(http: &reqwest::Client, url: &str, token: &str, month: &Value, n: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let (elapsed, status, body) = post(http, url, token, SUMMARY, month).await;
        assert_eq!(status, 200, "the well-behaved client was refused: {body}");
        samples.push(elapsed);
    }
    samples
}

struct Round {
    off: Stats,
    on: Stats,
    alone: Stats,
    loaded: Stats,
    abuse: AbuseCounts,
    window: Duration,
}

fn print_stats(label: &str, stats: &Stats, reference: Option<(&Stats, &str)>) {
    let versus = reference.map_or_else(
        || "reference".to_owned(),
        |(base, what)| {
            format!(
                "p50 {:+.1} %, p99 {:+.1} % vs {what}",
                change(stats.p50, base.p50),
                change(stats.p99, base.p99)
            )
        },
    );
    println!(
        "  {label}: n {}  p50 {:.2} ms  p99 {:.2} ms  ({versus})",
        stats.n,
        ms(stats.p50),
        ms(stats.p99)
    );
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

async fn bench(args: Args) {
    let binary = args.server_binary.clone().unwrap_or_else(default_server_binary);
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    println!(
        "benchmark built {profile}; server {}; {} CPU(s); repeat delay {}",
        binary.display(),
        std::thread::available_parallelism().map_or(0, usize::from),
        args.repeat_delay.as_deref().unwrap_or("(server default)")
    );
    seed(&args).await;
    let database = url::Url::parse(&args.database_url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_owned();

    let run = uuid::Uuid::new_v4().simple().to_string();
    let off = start_server(&binary, &args, false, &run[..8]).await;
    let on = start_server(&binary, &args, true, &run[..8]).await;
    let (off_pid, on_pid) = (off.child.id(), on.child.id());
    let own_pid = std::process::id();
    let http = reqwest::Client::new();
    // Tokens are valid on both servers (one secret); logging in on the limits-off one spends
    // no login attempts.
    let good = login(&http, &off.url, GOOD_EMAIL).await;
    let abuser_token = login(&http, &off.url, ABUSER_EMAIL).await;

    let now = Utc::now().trunc_subsecs(0);
    let month = json!({ "f": { "from": (now - TimeDelta::days(30)).to_rfc3339(), "to": now.to_rfc3339() } });
    let (_, status, first) = post(&http, &on.url, &good, SUMMARY, &month).await;
    assert_eq!(status, 200, "{first}");
    let summary_cost = first["extensions"]["rateLimit"]["cost"].as_u64().unwrap_or(0);
    let (_, status, heavy) = post(&http, &off.url, &abuser_token, ANALYTICS, &month).await;
    assert_eq!(status, 200, "{heavy}");
    let rows = heavy["data"]["analytics"]["totalRows"].as_u64().unwrap_or(0);
    println!(
        "kpiSummary costs {summary_cost}; analytics ({rows} rows of agent × date) is the abuser's query; \
         abuser: SUPERVISOR, default budget; good client: VIEWER ({GOOD_BUDGET})"
    );
    // Warm both servers (connections, caches) before anything is timed.
    for _ in 0..(args.iterations / 10).max(20) {
        post(&http, &off.url, &good, SUMMARY, &month).await;
        post(&http, &on.url, &good, SUMMARY, &month).await;
    }

    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        println!("round {round}/{}", args.rounds);
        // 1. Overhead, alternating servers request by request.
        let watch = CpuWatch::start(
            vec![
                ("server off", vec![off_pid]),
                ("server on", vec![on_pid]),
                ("good client", vec![own_pid]),
            ],
            &database,
        );
        let (mut off_samples, mut on_samples) = (Vec::new(), Vec::new());
        for i in 0..args.iterations {
            let order = if i % 2 == 0 { [true, false] } else { [false, true] };
            for is_off in order {
                let url = if is_off { &off.url } else { &on.url };
                let (elapsed, status, body) = post(&http, url, &good, SUMMARY, &month).await;
                assert_eq!(status, 200, "{body}");
                if is_off {
                    off_samples.push(elapsed);
                } else {
                    on_samples.push(elapsed);
                }
            }
        }
        let off_stats = Stats::of(off_samples);
        let on_stats = Stats::of(on_samples);
        println!("  overhead phase: {}", watch.finish());
        print_stats("limits off", &off_stats, None);
        print_stats("limits on ", &on_stats, Some((&off_stats, "off (target ±10 %)")));

        // 2. Abuse on the limits-on server, bracketed by the same requests without it.
        let mut alone = time_good_client(&http, &on.url, &good, &month, args.iterations / 2).await;
        let mut abuser = Abuser::start(args.abusers, &on.url, &abuser_token, &month);
        let burst = Instant::now();
        abuser.throttled().await;
        let before = abuser.counts().await;
        println!(
            "  abuser throttled after {:.1} s ({} heavy queries executed so far)",
            burst.elapsed().as_secs_f64(),
            before.executed
        );
        let log_before = std::fs::metadata(&on.log).map_or(0, |m| m.len());
        let watch = CpuWatch::start(
            vec![
                ("server on", vec![on_pid]),
                ("abuser", vec![abuser.pid()]),
                ("good client", vec![own_pid]),
            ],
            &database,
        );
        let window = Instant::now();
        let loaded = time_good_client(&http, &on.url, &good, &month, args.iterations).await;
        let window = window.elapsed();
        let after = abuser.counts().await;
        let cpu = watch.finish();
        let log_growth = std::fs::metadata(&on.log).map_or(0, |m| m.len()) - log_before;
        abuser.stop().await;
        // Its last heavy query may still be running on the server.
        tokio::time::sleep(Duration::from_millis(500)).await;
        alone.extend(time_good_client(&http, &on.url, &good, &month, args.iterations - args.iterations / 2).await);
        let alone = Stats::of(alone);
        let abuse = AbuseCounts {
            executed: after.executed - before.executed,
            refused: after.refused - before.refused,
            executed_ms: after.executed_ms - before.executed_ms,
        };
        let loaded = Stats::of(loaded);
        println!("  abuse phase: {cpu}");
        print_stats(
            "alone      ",
            &alone,
            Some((&on_stats, "limits on, alternating with off")),
        );
        print_stats(
            "under abuse",
            &loaded,
            Some((&alone, "alone, before and after (target p99 ≤ +20 %)")),
        );
        println!(
            "  abuser over the {:.1} s window: {} executed ({:.0} ms each on average), {} refused with 429 \
             ({:.0} per second); the server's log grew by {log_growth} bytes",
            window.as_secs_f64(),
            abuse.executed,
            abuse.executed_ms as f64 / abuse.executed.max(1) as f64,
            abuse.refused,
            abuse.refused as f64 / window.as_secs_f64()
        );
        rounds.push(Round {
            off: off_stats,
            on: on_stats,
            alone,
            loaded,
            abuse,
            window,
        });
    }

    if rounds.is_empty() {
        return; // `--rounds 0`: seeded and started, nothing measured
    }
    let span = |f: &dyn Fn(&Round) -> f64| {
        let (lo, hi) = range(rounds.iter().map(f));
        if (hi - lo).abs() < 0.005 {
            format!("{lo:.2}")
        } else {
            format!("{lo:.2}–{hi:.2}")
        }
    };
    let signed = |f: &dyn Fn(&Round) -> f64| {
        let (lo, hi) = range(rounds.iter().map(f));
        format!("{lo:+.1} … {hi:+.1} %")
    };
    println!();
    println!(
        "summary over {} round(s), lowest–highest ({} requests per figure):",
        rounds.len(),
        args.iterations
    );
    println!("| measurement | p50 ms | p99 ms | change |");
    println!("| --- | ---: | ---: | --- |");
    println!(
        "| kpiSummary 30 d, limits off | {} | {} | reference |",
        span(&|r| ms(r.off.p50)),
        span(&|r| ms(r.off.p99))
    );
    println!(
        "| kpiSummary 30 d, limits on (Redis) | {} | {} | p50 {}, p99 {} vs off (target ±10 %) |",
        span(&|r| ms(r.on.p50)),
        span(&|r| ms(r.on.p99)),
        signed(&|r| change(r.on.p50, r.off.p50)),
        signed(&|r| change(r.on.p99, r.off.p99))
    );
    println!(
        "| kpiSummary 30 d, limits on, alone (before and after the abuse) | {} | {} | |",
        span(&|r| ms(r.alone.p50)),
        span(&|r| ms(r.alone.p99)),
    );
    println!(
        "| kpiSummary 30 d, limits on, {} abusive loops on `analytics` | {} | {} | p50 {}, p99 {} vs alone (target p99 ≤ +20 %) |",
        args.abusers,
        span(&|r| ms(r.loaded.p50)),
        span(&|r| ms(r.loaded.p99)),
        signed(&|r| change(r.loaded.p50, r.alone.p50)),
        signed(&|r| change(r.loaded.p99, r.alone.p99))
    );
    println!(
        "abuser per window: {} executed, {} refused per second",
        span(&|r| r.abuse.executed as f64),
        span(&|r| r.abuse.refused as f64 / r.window.as_secs_f64())
    );
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    match args.role {
        BenchRole::Bench => bench(args).await,
        BenchRole::Abuser => abuser(args).await,
    }
}

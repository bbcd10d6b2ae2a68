//! Rate-limit benchmark: what the limiter costs a normal client, and whether it protects one
//! client from another that hammers the heaviest query.
//!
//! ```text
//! cargo run --release --example rate_limit_bench -- [--calls 200000] [--days 30] [--iterations 400]
//!     [--abusers 2] [--database-url postgres://postgres@127.0.0.1:5432/omnivox_bench_limits]
//!     [--redis-url redis://127.0.0.1:6379] [--skip-seed]
//! ```
//!
//! 1. **Data.** A dedicated database (its name must contain `bench`), recreated and filled by
//!    the traffic generator (org `bench`, `--calls` calls over `--days` days), unless
//!    `--skip-seed` finds it filled. Two SUPERVISORs sign in (`analytics` needs that role): the
//!    well-behaved client and the abusive one, each with a budget of its own.
//! 2. **Servers.** Two instances in-process on the same database: limits **off**
//!    (`rate_limits_enabled = false`) and limits **on** (defaults, buckets in Redis).
//! 3. **Overhead under normal load.** `kpiSummary` over 30 days, `--iterations` times, one
//!    client, requests alternating between the two instances (so drift of the machine hits
//!    both alike); p50 and p99 of each. Target: limits-on within 10 % of limits-off.
//! 4. **Abuse.** On the limits-on instance, `--abusers` concurrent loops as the abuser send
//!    `analytics` agent × date over 30 days (limit 10,000 rows: the heaviest query the
//!    complexity limit admits) as fast as answers come back. Once the abuser has spent its
//!    budget (its first 429), the well-behaved client's `kpiSummary` p50/p99 is measured again
//!    while the abuse goes on, and compared with its unloaded figure from step 3. Target: p99
//!    within 20 %. Printed: the abuser's answers (executed vs 429) over the window.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly
#![allow(clippy::print_stdout)]

#[path = "support/bench_db.rs"]
mod bench_db;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{SubsecRound, TimeDelta, Utc};
use clap::Parser;
use diesel::sql_types::BigInt;
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use omnivox::auth::{password, Role, Tenant};
use omnivox::config::Settings;
use omnivox::db::{self, orgs, users};
use omnivox::seed::generator::{self, GeneratorSettings};
use omnivox::state::AppState;
use serde_json::{json, Value};

const JWT_SECRET: &str = "rate-limit-bench-secret-at-least-32-bytes";
const PASSWORD: &str = "rate-limit-bench-password";
const GOOD_EMAIL: &str = "good-supervisor@bench.example";
const ABUSER_EMAIL: &str = "abusive-supervisor@bench.example";

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value_t = 200_000)]
    calls: u64,
    #[arg(long, default_value_t = 30)]
    days: u32,
    #[arg(long, default_value_t = 100)]
    agents: u32,
    /// Timed `kpiSummary` requests per measurement.
    #[arg(long, default_value_t = 400)]
    iterations: usize,
    /// Concurrent loops of the abusive client.
    #[arg(long, default_value_t = 2)]
    abusers: usize,
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/omnivox_bench_limits")]
    database_url: String,
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    #[arg(long)]
    skip_seed: bool,
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

/// The atomics' own `load` (diesel's `RunQueryDsl::load`, in scope for the seeding, would
/// shadow it in method syntax).
trait Atomic {
    fn load(&self) -> u64;
}

impl Atomic for AtomicU64 {
    fn load(&self) -> u64 {
        AtomicU64::load(self, Ordering::Relaxed)
    }
}

impl Atomic for AtomicBool {
    fn load(&self) -> u64 {
        u64::from(AtomicBool::load(self, Ordering::Relaxed))
    }
}

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

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn pct(new: Duration, base: Duration) -> String {
    format!(
        "{:+.1} %",
        (new.as_secs_f64() / base.as_secs_f64().max(1e-9) - 1.0) * 100.0
    )
}

async fn serve(settings: Settings) -> String {
    let state = AppState::new(settings).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = omnivox::http::app(state).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/graphql")
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

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let url = args.database_url.clone();

    // 1. Data.
    let existing = match AsyncPgConnection::establish(&url).await {
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
            bench_db::recreate_database(&url).await;
        }
        db::create_database_if_missing(&url).await.unwrap();
    }
    db::run_migrations(&url).await.unwrap();
    let pool = db::build_pool(&url, 4, Duration::from_secs(10), Duration::from_secs(600)).unwrap();
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
        let report = generator::run(&url, &pool, &settings, &mut |_| {}).await.unwrap();
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
    users::upsert_for_seed(
        &mut conn,
        &tenant,
        GOOD_EMAIL,
        "Good Supervisor",
        Role::Supervisor,
        &hash,
    )
    .await
    .unwrap();
    users::upsert_for_seed(
        &mut conn,
        &tenant,
        ABUSER_EMAIL,
        "Abusive Supervisor",
        Role::Supervisor,
        &hash,
    )
    .await
    .unwrap();
    drop(conn);

    // 2. Servers.
    let base = |enabled: bool| {
        let mut settings = Settings::for_database(&url);
        settings.jwt_secret = Some(JWT_SECRET.to_owned());
        settings.redis_url = Some(args.redis_url.clone());
        settings.redis_prefix = format!("omnivox-bench:{}:", uuid::Uuid::new_v4().simple());
        settings.rate_limits_enabled = enabled;
        settings.request_timeout = Duration::from_secs(120);
        settings.db_statement_timeout = Duration::from_secs(120);
        settings
    };
    let off = serve(base(false)).await;
    let on = serve(base(true)).await;
    let http = reqwest::Client::new();
    let good = login(&http, &on, GOOD_EMAIL).await;
    let abuser = login(&http, &on, ABUSER_EMAIL).await;

    let now = Utc::now().trunc_subsecs(0);
    let month = json!({ "f": { "from": (now - TimeDelta::days(30)).to_rfc3339(), "to": now.to_rfc3339() } });
    let (_, status, first) = post(&http, &on, &good, SUMMARY, &month).await;
    assert_eq!(status, 200, "{first}");
    let summary_cost = first["extensions"]["rateLimit"]["cost"].as_u64().unwrap_or(0);
    let (_, status, heavy) = post(&http, &on, &abuser, ANALYTICS, &month).await;
    assert_eq!(status, 200, "{heavy}");
    let analytics_cost = heavy["extensions"]["rateLimit"]["cost"].as_u64().unwrap_or(0);
    let analytics_limit = heavy["extensions"]["rateLimit"]["limit"].as_u64().unwrap_or(0);
    println!("kpiSummary costs {summary_cost}; analytics (10,000 rows) costs {analytics_cost} of a SUPERVISOR's {analytics_limit} per minute");

    // 3. Overhead under normal load, alternating instances.
    for _ in 0..(args.iterations / 10).max(5) {
        post(&http, &off, &good, SUMMARY, &month).await;
        post(&http, &on, &good, SUMMARY, &month).await;
    }
    let (mut off_samples, mut on_samples) = (Vec::new(), Vec::new());
    for i in 0..args.iterations {
        let order = if i % 2 == 0 {
            [(&off, true), (&on, false)]
        } else {
            [(&on, false), (&off, true)]
        };
        for (url, is_off) in order {
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

    // 4. Abuse.
    let stop = Arc::new(AtomicBool::new(false));
    let executed = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let mut loops = Vec::new();
    for _ in 0..args.abusers {
        let (http, on, abuser, month) = (http.clone(), on.clone(), abuser.clone(), month.clone());
        let (stop, executed, refused) = (stop.clone(), executed.clone(), refused.clone());
        loops.push(tokio::spawn(async move {
            while Atomic::load(&*stop) == 0 {
                let (_, status, _) = post(&http, &on, &abuser, ANALYTICS, &month).await;
                if status == 429 {
                    refused.fetch_add(1, Ordering::Relaxed);
                } else {
                    executed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let burst_started = Instant::now();
    while Atomic::load(&*refused) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            burst_started.elapsed() < Duration::from_secs(300),
            "the abuser was never throttled"
        );
    }
    let burst = (Atomic::load(&*executed), burst_started.elapsed());
    let (executed_before, refused_before) = (Atomic::load(&*executed), Atomic::load(&*refused));
    let window = Instant::now();
    let mut loaded = Vec::new();
    for _ in 0..args.iterations {
        let (elapsed, status, body) = post(&http, &on, &good, SUMMARY, &month).await;
        assert_eq!(status, 200, "the well-behaved client was refused: {body}");
        loaded.push(elapsed);
    }
    let window = window.elapsed();
    stop.store(true, Ordering::Relaxed);
    for handle in loops {
        let _ = handle.await;
    }
    let abuse_executed = Atomic::load(&*executed) - executed_before;
    let abuse_refused = Atomic::load(&*refused) - refused_before;
    let loaded_stats = Stats::of(loaded);

    println!();
    println!("| measurement | runs | p50 ms | p99 ms | vs reference |");
    println!("| --- | ---: | ---: | ---: | --- |");
    println!(
        "| kpiSummary 30 d, limits off | {} | {} | {} | reference |",
        off_stats.n,
        ms(off_stats.p50),
        ms(off_stats.p99)
    );
    println!(
        "| kpiSummary 30 d, limits on (Redis) | {} | {} | {} | p50 {}, p99 {} vs off (target ±10 %) |",
        on_stats.n,
        ms(on_stats.p50),
        ms(on_stats.p99),
        pct(on_stats.p50, off_stats.p50),
        pct(on_stats.p99, off_stats.p99)
    );
    println!(
        "| kpiSummary 30 d, limits on, {} abusive loops on `analytics` | {} | {} | {} | p50 {}, p99 {} vs unloaded (target p99 ≤ +20 %) |",
        args.abusers,
        loaded_stats.n,
        ms(loaded_stats.p50),
        ms(loaded_stats.p99),
        pct(loaded_stats.p50, on_stats.p50),
        pct(loaded_stats.p99, on_stats.p99)
    );
    println!();
    println!(
        "abuser: {} heavy queries executed in {:.1} s before its first 429 (its burst budget); during the {:.1} s window: {} executed, {} refused with 429",
        burst.0,
        burst.1.as_secs_f64(),
        window.as_secs_f64(),
        abuse_executed,
        abuse_refused
    );
}

//! KPI read benchmark: how fast the GraphQL API answers KPI queries over a large history, and
//! how much the hourly rollups save over scanning the raw calls.
//!
//! ```text
//! cargo run --release --example kpi_bench -- [--calls 10000000] [--days 90] [--agents 500]
//!     [--campaigns 20] [--second-org-calls 1000000] [--iterations 200] [--baseline-iterations 10]
//!     [--database-url postgres://postgres@127.0.0.1:5432/omnivox_bench] [--skip-seed]
//! ```
//!
//! 1. **Data.** A dedicated database (default `omnivox_bench`; its name must contain `bench`).
//!    Without `--skip-seed` it is dropped and recreated, migrated, and filled by the traffic
//!    generator (`omnivox::seed::generator`, the code behind `omnivox seed --calls …`): org
//!    `bench` with `--calls` calls over `--days` days for `--agents` agents and `--campaigns`
//!    campaigns, and org `bench2` with `--second-org-calls` calls (a tenth of the agents, a
//!    quarter of the campaigns), so that every query also has to skip another tenant's rows.
//!    The load rate of each is printed. With `--skip-seed` existing data is reused (and
//!    generated only when org `bench` has no calls).
//! 2. **Server.** The app runs in-process on a random port (`omnivox::http::app` behind
//!    `axum::serve`), with its default pool and limits; an ADMIN of `bench` signs in through
//!    the `login` mutation.
//! 3. **Queries,** each sent `--iterations` times in a row over HTTP (after a tenth as many
//!    warm-up requests), warm: `kpiSummary` for today in the organization's time zone and for
//!    the last 30 days, `kpiSeries` by HOUR over the last 7 days, and — when the schema has
//!    them — `agentPerformance` over 30 days (first 50 agents by handled calls), `analytics`
//!    agent × date over 30 days with 6 metrics, and `analytics` disposition × campaign over 90
//!    days with the five counts (the disposition rollups). Reported: p50, p99 and mean latency, from
//!    sending the request to receiving the whole response body (the body is parsed and checked
//!    for errors after the clock stops). Each
//!    measurement stops early when it exceeds `--budget-seconds` (after at least 5 runs); the
//!    table shows the runs timed.
//! 4. **Baseline:** the same 30-day summary computed by one SQL scan of the raw calls with the
//!    same counting rules (`omnivox::kpi::query::grouped_raw_counters`, ungrouped, over one
//!    window), timed the same way with `--baseline-iterations`; and, for reference, the planner alone
//!    (`aggregate_windows`, in-process, no HTTP). The speed-up is baseline p50 ÷ API p50. The
//!    90-day disposition × campaign answer is checked group by group against the same grouping
//!    computed from the raw calls (`grouped_raw_counters`, timed once: how analytics answered
//!    DISPOSITION before the disposition rollups).
//!
//! The results are printed as a markdown table, ready for README.md. Latencies depend on the
//! machine and on what else runs on it; the table says what was measured where.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly
#![allow(clippy::print_stdout)]

#[path = "support/bench_db.rs"]
mod bench_db;

use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use clap::Parser;
use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use omnivox::auth::{password, Role, Tenant};
use omnivox::config::Settings;
use omnivox::db::{self, orgs, users};
use omnivox::kpi::plan::{aggregate_windows, Sourcing};
use omnivox::kpi::query::{grouped_raw_counters, CounterMask, GroupSpec, GroupedQuery, Scope};
use omnivox::seed::generator::{self, GeneratorReport, GeneratorSettings};
use omnivox::state::AppState;
use serde_json::{json, Value};

const JWT_SECRET: &str = "kpi-bench-secret-that-is-at-least-32-bytes";
const ADMIN_EMAIL: &str = "bench-admin@bench.example";
const ADMIN_PASSWORD: &str = "bench-admin-password";

#[derive(Debug, Parser)]
#[command(about = "KPI read benchmark over a generated history (see the module documentation)")]
struct Args {
    /// Calls of org `bench`.
    #[arg(long, default_value_t = 10_000_000)]
    calls: u64,
    /// Days of history, ending today.
    #[arg(long, default_value_t = 90)]
    days: u32,
    #[arg(long, default_value_t = 500)]
    agents: u32,
    #[arg(long, default_value_t = 20)]
    campaigns: u32,
    /// Calls of the second organization, `bench2`.
    #[arg(long, default_value_t = 1_000_000)]
    second_org_calls: u64,
    /// Timed requests per API query.
    #[arg(long, default_value_t = 200)]
    iterations: usize,
    /// Timed runs of the raw-scan baseline.
    #[arg(long, default_value_t = 10)]
    baseline_iterations: usize,
    /// Time budget of each measurement, in seconds: a slow query stops early (after at least
    /// 5 timed runs) and the table shows how many runs were timed.
    #[arg(long, default_value_t = 180)]
    budget_seconds: u64,
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/omnivox_bench")]
    database_url: String,
    /// Reuse the data already in the database (generate only if org `bench` has no calls).
    #[arg(long)]
    skip_seed: bool,
    /// Batches loading at once while seeding.
    #[arg(long, default_value_t = generator::DEFAULT_LOAD_WORKERS)]
    load_workers: usize,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = Text)]
    v: String,
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .await
        .map(|c| c.n)
        .unwrap_or(0)
}

/// Calls of org `bench`, or `None` when the database or the organization is missing.
async fn existing_calls(url: &str) -> Option<i64> {
    let mut conn = AsyncPgConnection::establish(url).await.ok()?;
    let org = orgs::find_by_slug(&mut conn, "bench").await.ok()??;
    let sql = format!(
        "SELECT count(*) AS n FROM interactions WHERE organization_id = '{}'",
        org.id
    );
    Some(count(&mut conn, &sql).await)
}

async fn seed(url: &str, pool: &db::DbPool, settings: GeneratorSettings) -> GeneratorReport {
    println!(
        "generating org `{}`: {} calls, {} days, {} agents, {} campaigns",
        settings.org_slug, settings.calls, settings.days, settings.agents, settings.campaigns
    );
    let report = generator::run(url, pool, &settings, &mut |p| {
        println!(
            "  {:>10} / {} calls, {:>10} intervals, {:>6.1} s, {:>7.0} calls/s",
            p.calls,
            p.calls_total,
            p.intervals,
            p.elapsed.as_secs_f64(),
            p.calls as f64 / p.elapsed.as_secs_f64().max(1e-9)
        );
    })
    .await
    .expect("generating the benchmark data");
    println!(
        "  loaded {} calls + {} agent-state intervals in {:.1} s: {:.0} calls/s (handle times ×{:.2}, FK checks {:?})",
        report.calls,
        report.intervals,
        report.load.as_secs_f64(),
        report.calls_per_second(),
        report.handle_time_scale,
        report.reference_checks
    );
    report
}

/// Latencies of one query.
struct Stats {
    p50: Duration,
    p99: Duration,
    mean: Duration,
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
            mean: samples.iter().sum::<Duration>() / n as u32,
            n: samples.len(),
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    /// One request; the time is until the whole response body has arrived. The body is then
    /// parsed and checked for errors outside the timed part: parsing a large response into a
    /// JSON tree is the client's cost, not the server's latency.
    async fn post(&self, query: &str, variables: &Value) -> Result<(Duration, Value), String> {
        let started = Instant::now();
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "application/graphql-response+json")
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        let elapsed = started.elapsed();
        let body: Value = serde_json::from_slice(&bytes).map_err(|e| format!("HTTP {status}: {e}"))?;
        if let Some(errors) = body.get("errors") {
            return Err(format!("HTTP {status}: {errors}"));
        }
        Ok((elapsed, body))
    }

    /// `iterations` timed requests after a tenth as many warm-up ones (within `budget`);
    /// `Err` if the first fails.
    async fn measure(
        &self,
        query: &str,
        variables: Value,
        iterations: usize,
        budget: Duration,
    ) -> Result<(Stats, Value), String> {
        let started = Instant::now();
        let (_, first) = self.post(query, &variables).await?;
        for _ in 0..(iterations / 10).max(2) {
            if started.elapsed() > budget / 4 {
                break;
            }
            self.post(query, &variables).await?;
        }
        let started = Instant::now();
        let mut samples = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            if samples.len() >= 5 && started.elapsed() > budget {
                break;
            }
            let (elapsed, _) = self.post(query, &variables).await?;
            samples.push(elapsed);
        }
        Ok((Stats::of(samples), first))
    }
}

const SUMMARY: &str = "query($f: KpiFilter!) { kpiSummary(filter: $f) {
    offered answered handled abandoned shortAbandoned serviceLevel averageSpeedOfAnswer averageHandleTime
    abandonRate longestWait occupancy contactRate conversionRate callsPerAgentHour outboundAbandonRateUk } }";
const SERIES: &str = "query($f: KpiFilter!) { kpiSeries(filter: $f, granularity: HOUR) {
    timezone buckets { start end offered answered abandoned serviceLevel averageHandleTime occupancy } } }";
const AGENT_PERFORMANCE: &str = "query($f: KpiFilter!) {
    agentPerformance(filter: $f, orderBy: { field: HANDLED, direction: DESC }, first: 50) {
      totalCount nodes { agentId displayName team { name }
        metrics { offered handled averageHandleTime occupancy callsPerAgentHour serviceLevel } } } }";
const ANALYTICS: &str = "query($f: KpiFilter!) {
    analytics(query: { metrics: [OFFERED, HANDLED, SERVICE_LEVEL, AVERAGE_HANDLE_TIME, ABANDON_RATE, OCCUPANCY],
                       groupBy: [AGENT, DATE], filter: $f, limit: 10000 }) {
      totalRows truncated rows { dimensions { agent { id name } date } values } } }";
const DISPOSITIONS: &str = "query($f: KpiFilter!) {
    analytics(query: { metrics: [OFFERED, ANSWERED, HANDLED, ABANDONED, SHORT_ABANDONED],
                       groupBy: [DISPOSITION, CAMPAIGN], filter: $f, limit: 10000 }) {
      totalRows truncated rows { dimensions { disposition { id code } campaign { id name } } values } } }";

fn filter(from: DateTime<Utc>, to: DateTime<Utc>) -> Value {
    json!({ "f": { "from": from.to_rfc3339(), "to": to.to_rfc3339() } })
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let command = format!(
        "cargo run --release --example kpi_bench --{}",
        std::env::args().skip(1).map(|a| format!(" {a}")).collect::<String>()
    );
    let url = args.database_url.clone();

    // 1. Data.
    let existing = existing_calls(&url).await;
    let reuse = args.skip_seed && existing.is_some_and(|n| n > 0);
    let mut load_rows = Vec::new();
    if reuse {
        println!(
            "reusing the data in {url} ({} calls in org `bench`)",
            existing.unwrap_or(0)
        );
    } else if existing.is_some() || AsyncPgConnection::establish(&url).await.is_ok() {
        bench_db::recreate_database(&url).await;
    }
    db::create_database_if_missing(&url).await.unwrap();
    db::run_migrations(&url).await.unwrap();
    let pool = db::build_pool(&url, 4, Duration::from_secs(10), Duration::from_secs(600)).unwrap();
    if !reuse {
        let first = GeneratorSettings {
            org_slug: "bench".into(),
            calls: args.calls,
            days: args.days,
            agents: args.agents,
            campaigns: args.campaigns,
            load_workers: args.load_workers,
            ..GeneratorSettings::default()
        };
        let report = seed(&url, &pool, first).await;
        load_rows.push(("bench", report));
        if args.second_org_calls > 0 {
            let second = GeneratorSettings {
                org_slug: "bench2".into(),
                calls: args.second_org_calls,
                days: args.days,
                agents: (args.agents / 10).max(10),
                campaigns: (args.campaigns / 4).max(2),
                load_workers: args.load_workers,
                ..GeneratorSettings::default()
            };
            let report = seed(&url, &pool, second).await;
            load_rows.push(("bench2", report));
        }
        let mut conn = db::conn(&pool).await.unwrap();
        conn.batch_execute("VACUUM ANALYZE").await.unwrap();
    }

    let mut conn = db::conn(&pool).await.unwrap();
    let org = orgs::find_by_slug(&mut conn, "bench")
        .await
        .unwrap()
        .expect("org `bench`");
    let tenant = Tenant::for_system(org.id);
    let tz: Tz = org.timezone.parse().unwrap();
    let hash = password::hash(ADMIN_PASSWORD.to_owned()).await.unwrap();
    users::upsert_for_seed(&mut conn, &tenant, ADMIN_EMAIL, "Bench Admin", Role::Admin, &hash)
        .await
        .unwrap();
    let sizes = [
        (
            "calls (all orgs)",
            count(&mut conn, "SELECT count(*) AS n FROM interactions").await,
        ),
        (
            "agent-state intervals",
            count(&mut conn, "SELECT count(*) AS n FROM agent_state_log").await,
        ),
        (
            "kpi_hourly rows",
            count(&mut conn, "SELECT count(*) AS n FROM kpi_hourly").await,
        ),
        (
            "kpi_hourly_disposition rows",
            count(&mut conn, "SELECT count(*) AS n FROM kpi_hourly_disposition").await,
        ),
        (
            "kpi_agent_state_hourly rows",
            count(&mut conn, "SELECT count(*) AS n FROM kpi_agent_state_hourly").await,
        ),
        (
            "database MB",
            count(
                &mut conn,
                "SELECT (pg_database_size(current_database()) / 1048576)::int8 AS n",
            )
            .await,
        ),
    ];
    let bench_calls = count(
        &mut conn,
        &format!(
            "SELECT count(*) AS n FROM interactions WHERE organization_id = '{}'",
            org.id
        ),
    )
    .await;
    let pg_version = diesel::sql_query("SELECT version() AS v")
        .get_result::<Version>(&mut conn)
        .await
        .map(|v| v.v)
        .unwrap_or_default();

    // 2. Server.
    let mut settings = Settings::for_database(&url);
    // This benchmark measures KPI reads, not the rate limits (examples/rate_limit_bench.rs does).
    settings.rate_limits_enabled = false;
    settings.jwt_secret = Some(JWT_SECRET.to_owned());
    settings.db_statement_timeout = Duration::from_secs(120);
    settings.request_timeout = Duration::from_secs(120);
    let state = AppState::new(settings).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = omnivox::http::app(state);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();
    let graphql = format!("http://{addr}/graphql");
    let login: Value = http
        .post(&graphql)
        .json(&json!({
            "query": "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }",
            "variables": { "e": ADMIN_EMAIL, "p": ADMIN_PASSWORD }
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["data"]["login"]["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("login failed: {login}"))
        .to_owned();
    let api = Api {
        http,
        url: graphql,
        token,
    };

    // 3. Queries.
    let now = Utc::now().trunc_subsecs(0);
    let local_midnight = tz
        .from_local_datetime(&now.with_timezone(&tz).date_naive().and_hms_opt(0, 0, 0).unwrap())
        .earliest()
        .unwrap()
        .with_timezone(&Utc);
    let month = (now - TimeDelta::days(30), now);
    let quarter = (now - TimeDelta::days(90), now);
    let sdl = omnivox::graphql::sdl();
    let mut cases: Vec<(&str, &str, Value, bool)> = vec![
        (
            "kpiSummary, today (org time zone)",
            SUMMARY,
            filter(local_midnight, now),
            true,
        ),
        ("kpiSummary, last 30 days", SUMMARY, filter(month.0, month.1), true),
        (
            "kpiSeries HOUR, last 7 days (168 buckets)",
            SERIES,
            filter(now - TimeDelta::days(7), now),
            true,
        ),
    ];
    cases.push((
        "agentPerformance, 30 days, top 50 by handled",
        AGENT_PERFORMANCE,
        filter(month.0, month.1),
        sdl.contains("agentPerformance("),
    ));
    cases.push((
        "analytics agent × date, 30 days, 6 metrics",
        ANALYTICS,
        filter(month.0, month.1),
        sdl.contains("analytics("),
    ));
    cases.push((
        "analytics disposition × campaign, 90 days, 5 counts",
        DISPOSITIONS,
        filter(quarter.0, quarter.1),
        sdl.contains("analytics("),
    ));
    let budget = Duration::from_secs(args.budget_seconds);
    let mut rows: Vec<(String, Option<Stats>, String)> = Vec::new();
    let mut summary_30_p50 = None;
    let mut dispositions_first = None;
    for (name, query, variables, present) in cases {
        if !present {
            println!("{name}: not in this schema; skipped");
            rows.push((name.to_owned(), None, "not in the schema".into()));
            continue;
        }
        println!("measuring {name} …");
        match api.measure(query, variables, args.iterations, budget).await {
            Ok((stats, first)) => {
                let note = describe(&first);
                if name.starts_with("kpiSummary, last 30") {
                    summary_30_p50 = Some(stats.p50);
                }
                if name.starts_with("analytics disposition") {
                    dispositions_first = Some(first.clone());
                }
                rows.push((name.to_owned(), Some(stats), note));
            }
            Err(e) => {
                println!("  failed: {e}");
                rows.push((
                    name.to_owned(),
                    None,
                    format!("failed: {}", e.chars().take(120).collect::<String>()),
                ));
            }
        }
    }

    // 4. Baseline and the planner alone.
    println!("measuring the raw-scan baseline …");
    let mut conn = db::conn(&pool).await.unwrap();
    let scope = Scope::default();
    let ungrouped = GroupSpec::default();
    let raw_scan = GroupedQuery {
        scope: &scope,
        group: &ungrouped,
        agent_keys: &[],
        campaign_keys: &[],
        counters: CounterMask::ALL,
    };
    let (_, zone) = omnivox::kpi::organization_rule(&mut conn, &tenant).await.unwrap();
    let baseline_first = grouped_raw_counters(&mut conn, &tenant, raw_scan, &[month])
        .await
        .unwrap();
    let mut samples = Vec::new();
    let started = Instant::now();
    for _ in 0..args.baseline_iterations.max(1) {
        if samples.len() >= 5 && started.elapsed() > budget {
            break;
        }
        let run = Instant::now();
        let _ = grouped_raw_counters(&mut conn, &tenant, raw_scan, &[month])
            .await
            .unwrap();
        samples.push(run.elapsed());
    }
    let baseline = Stats::of(samples);
    let planned = aggregate_windows(&mut conn, &tenant, &[month], &scope, Sourcing::Planned(zone))
        .await
        .unwrap();
    let offered_raw = baseline_first.iter().map(|(_, c)| c.offered).sum::<i64>();
    assert_eq!(
        planned[0].calls.offered, offered_raw,
        "the planner and the raw scan agree"
    );
    let mut samples = Vec::new();
    let started = Instant::now();
    for _ in 0..args.iterations {
        if samples.len() >= 5 && started.elapsed() > budget {
            break;
        }
        let run = Instant::now();
        let _ = aggregate_windows(&mut conn, &tenant, &[month], &scope, Sourcing::Planned(zone))
            .await
            .unwrap();
        samples.push(run.elapsed());
    }
    let planner = Stats::of(samples);

    // The 90-day disposition × campaign answer against the raw calls, group by group.
    let mut disposition_raw = None;
    if let Some(first) = dispositions_first {
        println!("checking disposition × campaign over 90 days against the raw calls …");
        let by_disposition = GroupSpec {
            campaign: true,
            disposition: true,
            ..GroupSpec::default()
        };
        let raw_read = GroupedQuery {
            group: &by_disposition,
            ..raw_scan
        };
        let run = Instant::now();
        let raw_groups = grouped_raw_counters(&mut conn, &tenant, raw_read, &[quarter])
            .await
            .unwrap();
        let elapsed = run.elapsed();
        let id = |v: &Value| {
            v["id"]
                .as_str()
                .map(|s| s.parse::<uuid::Uuid>().unwrap())
                .unwrap_or(omnivox::kpi::NONE_KEY)
        };
        let api: std::collections::BTreeMap<(uuid::Uuid, uuid::Uuid), Vec<i64>> = first["data"]["analytics"]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let d = &r["dimensions"];
                let values = r["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as i64)
                    .collect();
                ((id(&d["disposition"]), id(&d["campaign"])), values)
            })
            .collect();
        let raw: std::collections::BTreeMap<(uuid::Uuid, uuid::Uuid), Vec<i64>> = raw_groups
            .iter()
            .map(|(k, c)| {
                let key = (k.disposition.unwrap(), k.campaign.unwrap());
                (
                    key,
                    vec![c.offered, c.answered, c.handled, c.abandoned, c.short_abandoned],
                )
            })
            .collect();
        assert_eq!(
            api, raw,
            "disposition × campaign over 90 days: rollups and raw calls agree"
        );
        disposition_raw = Some((elapsed, raw.len()));
    }

    // 5. Results.
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("\n## KPI benchmark\n");
    println!("`{command}`\n");
    println!(
        "Data: org `bench` {bench_calls} calls over {} days, {} agents, {} campaigns; {}. \
         {cores} CPU cores; {}.\n",
        args.days,
        args.agents,
        args.campaigns,
        sizes
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        pg_version.split(" on ").next().unwrap_or(&pg_version)
    );
    if !load_rows.is_empty() {
        println!("| load (COPY + rollups, one transaction per batch) | calls | intervals | seconds | calls/s |");
        println!("|---|---:|---:|---:|---:|");
        for (org, r) in &load_rows {
            println!(
                "| org `{org}` ({} batches, FK checks {:?}) | {} | {} | {:.1} | {:.0} |",
                r.batches,
                r.reference_checks,
                r.calls,
                r.intervals,
                r.load.as_secs_f64(),
                r.calls_per_second()
            );
        }
        println!();
    }
    println!("| query (warm, sequential) | n | p50 ms | p99 ms | mean ms | notes |");
    println!("|---|---:|---:|---:|---:|---|");
    for (name, stats, note) in &rows {
        match stats {
            Some(s) => println!(
                "| {name} | {} | {} | {} | {} | {note} |",
                s.n,
                ms(s.p50),
                ms(s.p99),
                ms(s.mean)
            ),
            None => println!("| {name} | – | – | – | – | {note} |"),
        }
    }
    println!(
        "| planner only, 30 days (in-process `aggregate_windows`, no HTTP) | {} | {} | {} | {} | rollups + raw edges |",
        planner.n,
        ms(planner.p50),
        ms(planner.p99),
        ms(planner.mean)
    );
    println!(
        "| baseline: raw scan of 30 days of calls (one SQL statement, `grouped_raw_counters`) | {} | {} | {} | {} | {offered_raw} offered |",
        baseline.n,
        ms(baseline.p50),
        ms(baseline.p99),
        ms(baseline.mean)
    );
    if let Some((elapsed, groups)) = disposition_raw {
        println!(
            "| baseline: disposition × campaign over 90 days from the raw calls (one SQL statement, `grouped_raw_counters`) | 1 | {} | – | – | {groups} groups, equal to the API's |",
            ms(elapsed)
        );
    }
    if let Some(p50) = summary_30_p50 {
        println!(
            "\nSpeed-up of the 30-day kpiSummary (HTTP + GraphQL + rollups) over the raw scan (SQL only), p50: ×{:.2}; \
             of the planner alone: ×{:.2} (below 1: slower than the scan).",
            baseline.p50.as_secs_f64() / p50.as_secs_f64().max(1e-9),
            baseline.p50.as_secs_f64() / planner.p50.as_secs_f64().max(1e-9)
        );
    }
}

/// A short description of a first response, for the notes column.
fn describe(body: &Value) -> String {
    let data = &body["data"];
    if let Some(s) = data.get("kpiSummary") {
        return format!("{} offered", s["offered"]);
    }
    if let Some(s) = data.get("kpiSeries") {
        return format!("{} buckets", s["buckets"].as_array().map_or(0, Vec::len));
    }
    if let Some(s) = data.get("agentPerformance") {
        return format!(
            "{} agents, {} rows returned",
            s["totalCount"],
            s["nodes"].as_array().map_or(0, Vec::len)
        );
    }
    if let Some(s) = data.get("analytics") {
        return format!(
            "{} groups, {} rows returned{}",
            s["totalRows"],
            s["rows"].as_array().map_or(0, Vec::len),
            if s["truncated"].as_bool() == Some(true) {
                " (limit)"
            } else {
                ""
            }
        );
    }
    String::new()
}

//! Ingest throughput and latency, against the whole app served in-process.
//!
//! ```sh
//! CARGO_TARGET_DIR=/var/tmp/omnivox-target cargo run --release --example ingest_bench
//! # options: --batch-events 200000 --batch-senders 4 --webhook-requests 40000 --webhook-senders 32 --probes 40
//! ```
//!
//! It needs PostgreSQL at `postgres://postgres@127.0.0.1:5432` (or `INGEST_BENCH_SERVER`); it
//! creates and migrates the database `omnivox_ingest_bench`, adds a fresh organization per run
//! (with agents, campaigns, dispositions and Twilio credentials), serves `omnivox::http::app`
//! on 127.0.0.1:0 and measures, over HTTP like real clients:
//!
//! 1. `recordCallEvents`: sustained batches of 1,000 events (calls of 2–6 events each, a call's
//!    events sometimes split across batches) from a few concurrent senders — events/s and the
//!    p50/p99 latency of a batch (target ≥ 5,000 events/s);
//! 2. the signed Twilio webhook: 32 concurrent senders, each delivering the callbacks (queued,
//!    ringing, in-progress, completed) of its own calls — requests/s and p50/p99 (target
//!    ≥ 1,500 requests/s);
//! 3. the time from sending an event until `kpiSummary` counts it, through each path, measured
//!    while idle (an event is committed before it is acknowledged, so the first `kpiSummary`
//!    after the acknowledgement already counts it: "polls after the acknowledgement" is 1).
//!
//! At the end it checks that the rollups equal a direct computation from the rows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "../tests/common/fixture.rs"]
mod fixture;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use diesel_async::RunQueryDsl;
use fixture::{CampaignSpec, DispositionSpec, FixtureOrg};
use futures_util::future::join_all;
use hmac::{Hmac, Mac};
use omnivox::auth::{Role, Tenant};
use omnivox::config::Settings;
use omnivox::db::{self, calls};
use omnivox::domain::Presence;
use omnivox::kpi::plan::{aggregate_windows, Sourcing};
use omnivox::kpi::query::Scope;
use omnivox::state::AppState;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sha1::Sha1;
use uuid::Uuid;

const TOKEN: &str = "bench-auth-token-0123456789abcdef";
const ACCOUNT: &str = "AC00000000000000000000000000000bec";
const RECORD: &str =
    "mutation($e: [CallEventInput!]!) { recordCallEvents(events: $e) { accepted duplicates rejected } }";
const SUMMARY: &str = "query($f: KpiFilter!) { kpiSummary(filter: $f) { offered answered handled } }";

struct Options {
    batch_events: usize,
    batch_senders: usize,
    webhook_requests: usize,
    webhook_senders: usize,
    probes: usize,
}

fn options() -> Options {
    let mut o = Options {
        batch_events: 200_000,
        batch_senders: 4,
        webhook_requests: 40_000,
        webhook_senders: 32,
        probes: 40,
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args[1..].chunks(2) {
        let value = pair
            .get(1)
            .and_then(|v| v.parse::<usize>().ok())
            .expect("options take a number");
        match pair[0].as_str() {
            "--batch-events" => o.batch_events = value,
            "--batch-senders" => o.batch_senders = value,
            "--webhook-requests" => o.webhook_requests = value,
            "--webhook-senders" => o.webhook_senders = value,
            "--probes" => o.probes = value,
            other => panic!("unknown option {other}"),
        }
    }
    o
}

struct Setup {
    state: AppState,
    tenant: Tenant,
    slug: String,
    token: String,
    agents: Vec<Uuid>,
    campaigns: [Uuid; 2],
    base: String,
    http: reqwest::Client,
}

async fn setup() -> Setup {
    let server = std::env::var("INGEST_BENCH_SERVER").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let url = format!("{server}/omnivox_ingest_bench");
    db::create_database_if_missing(&url).await.unwrap();
    db::run_migrations(&url).await.unwrap();
    let mut settings = Settings::for_database(&url);
    // This benchmark measures ingest throughput, not the rate limits (examples/rate_limit_bench.rs does).
    settings.rate_limits_enabled = false;
    settings.db_pool_size = 24;
    let state = AppState::new(settings).unwrap();
    let slug = format!("bench-{}", &Uuid::new_v4().simple().to_string()[..12]);
    let org = FixtureOrg::builder(&slug)
        .timezone("UTC")
        // Calls of the last few hours must not predate the organization.
        .created_at(Utc::now() - TimeDelta::days(1))
        .roles([Role::Admin])
        .agents((0..50).map(|n| format!("Agent {n:02}")))
        .presence(Presence::Available)
        .state_since(Utc::now() - TimeDelta::hours(6))
        .campaign(CampaignSpec::inbound("Care"))
        .campaign(CampaignSpec::outbound("Sales"))
        .disposition(DispositionSpec::new("SALE").contact().success())
        .disposition(DispositionSpec::new("NO_SALE").contact())
        .build(&state)
        .await;
    let (tenant, admin) = (org.tenant, org.user(Role::Admin).id);
    let token = org.token(&state, Role::Admin).await;
    let mut conn = state.system_db.get().await.unwrap();
    calls::upsert_telephony_settings(&mut conn, &tenant, Some(ACCOUNT), Some(TOKEN), admin)
        .await
        .unwrap();
    drop(conn);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = omnivox::http::app(state.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Setup {
        state,
        tenant,
        slug,
        token,
        agents: org.agents.clone(),
        campaigns: [org.campaigns[0], org.campaigns[1]],
        base: format!("http://{addr}"),
        http: reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap(),
    }
}

fn ev(id: &str, event_type: &str, at: DateTime<Utc>) -> Value {
    json!({ "externalId": id, "type": event_type, "occurredAt": at.to_rfc3339() })
}

/// The events of one call starting at `start` (answered with wrap-up, or abandoned).
fn call_events(s: &Setup, rng: &mut StdRng, id: &str, start: DateTime<Utc>) -> Vec<(DateTime<Utc>, Value)> {
    let agent = s.agents[rng.gen_range(0..s.agents.len())].to_string();
    let mut offered = ev(id, "OFFERED", start);
    offered["campaignId"] = s.campaigns[0].to_string().into();
    offered["customerNumber"] = format!("+4477009{:05}", rng.gen_range(0..100_000)).into();
    let mut out = vec![(start, offered)];
    if rng.gen_bool(0.15) {
        let end = start + TimeDelta::seconds(rng.gen_range(2..90));
        out.push((end, ev(id, "ENDED", end)));
        return out;
    }
    let ring = start + TimeDelta::seconds(rng.gen_range(1..20));
    let answer = ring + TimeDelta::seconds(rng.gen_range(2..15));
    let end = answer + TimeDelta::seconds(rng.gen_range(30..400));
    let wrap = end + TimeDelta::seconds(rng.gen_range(5..60));
    let mut ringing = ev(id, "RINGING", ring);
    ringing["agentId"] = agent.clone().into();
    let mut answered = ev(id, "ANSWERED", answer);
    answered["agentId"] = agent.into();
    let mut wrapped = ev(id, "WRAP_UP_ENDED", wrap);
    wrapped["dispositionCode"] = if rng.gen_bool(0.3) { "SALE" } else { "NO_SALE" }.into();
    out.extend([
        (ring, ringing),
        (answer, answered),
        (end, ev(id, "ENDED", end)),
        (wrap, wrapped),
    ]);
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1_000.0)
}

async fn gql(s: &Setup, query: &str, variables: Value) -> Value {
    let response = s
        .http
        .post(format!("{}/graphql", s.base))
        .bearer_auth(&s.token)
        .header("accept", "application/json")
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    body["data"].clone()
}

/// Phase 1: `recordCallEvents` batches of 1,000 events from several senders.
async fn batches(s: &Arc<Setup>, o: &Options) -> (usize, Duration, Vec<Duration>) {
    let per_sender = o.batch_events / o.batch_senders;
    let window_start = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap() - TimeDelta::hours(3);
    let mut plans = Vec::new();
    for sender in 0..o.batch_senders {
        let mut rng = StdRng::seed_from_u64(sender as u64);
        let mut events: Vec<(DateTime<Utc>, Value)> = Vec::new();
        let mut n = 0;
        while events.len() < per_sender {
            // Groups of calls whose events interleave in time, so a call's events may fall
            // into two consecutive batches.
            let mut group = Vec::new();
            for _ in 0..300 {
                let start = window_start + TimeDelta::seconds(rng.gen_range(0..3 * 3_600));
                group.extend(call_events(s, &mut rng, &format!("B{sender}-{n}-{}", s.slug), start));
                n += 1;
            }
            group.sort_by_key(|(at, _)| *at);
            events.extend(group);
        }
        events.truncate(per_sender);
        let batches: Vec<Vec<Value>> = events
            .chunks(1_000)
            .map(|c| c.iter().map(|(_, e)| e.clone()).collect())
            .collect();
        plans.push(batches);
    }
    let started = Instant::now();
    let tasks = plans.into_iter().map(|batches| {
        let s = s.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut sent = 0;
            for batch in batches {
                let t = Instant::now();
                let data = gql(&s, RECORD, json!({ "e": batch })).await;
                latencies.push(t.elapsed());
                assert_eq!(data["recordCallEvents"]["rejected"], 0, "{data}");
                sent += batch.len();
            }
            (sent, latencies)
        })
    });
    let mut total = 0;
    let mut latencies = Vec::new();
    for result in join_all(tasks).await {
        let (sent, l) = result.unwrap();
        total += sent;
        latencies.extend(l);
    }
    (total, started.elapsed(), latencies)
}

fn sign(url: &str, params: &[(String, String)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut data = url.to_owned();
    for (k, v) in &sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(TOKEN.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

fn twilio_params(sid: &str, status: &str, at: DateTime<Utc>, seq: u32, duration: Option<u32>) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = [
        ("AccountSid", ACCOUNT),
        ("CallSid", sid),
        ("CallStatus", status),
        ("Direction", "inbound"),
        ("From", "+447700900123"),
        ("To", "+441632960000"),
        ("ApiVersion", "2010-04-01"),
        ("CallbackSource", "call-progress-events"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    p.push(("Timestamp".into(), at.to_rfc2822()));
    p.push(("SequenceNumber".into(), seq.to_string()));
    if let Some(d) = duration {
        p.push(("CallDuration".into(), d.to_string()));
    }
    p
}

async fn deliver(s: &Setup, params: &[(String, String)]) -> Duration {
    let path = format!("/webhooks/twilio/{}/voice-status", s.slug);
    let url = format!("{}{path}", s.base);
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let t = Instant::now();
    let response = s
        .http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", sign(&url, params))
        .body(body)
        .send()
        .await
        .unwrap();
    let elapsed = t.elapsed();
    assert_eq!(
        response.status().as_u16(),
        204,
        "{}",
        response.text().await.unwrap_or_default()
    );
    elapsed
}

/// Phase 2: signed webhooks from 32 concurrent senders.
async fn webhooks(s: &Arc<Setup>, o: &Options) -> (usize, Duration, Vec<Duration>) {
    let per_sender = o.webhook_requests / o.webhook_senders;
    let started = Instant::now();
    let tasks = (0..o.webhook_senders).map(|sender| {
        let s = s.clone();
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(1_000 + sender as u64);
            let mut latencies = Vec::with_capacity(per_sender);
            let mut n = 0;
            while latencies.len() < per_sender {
                let sid = format!("CA{:08x}{:024x}", sender, n);
                n += 1;
                let start = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap()
                    - TimeDelta::minutes(rng.gen_range(3..120));
                let talk = rng.gen_range(20..300);
                let steps = [
                    twilio_params(&sid, "queued", start, 0, None),
                    twilio_params(&sid, "ringing", start + TimeDelta::seconds(2), 1, None),
                    twilio_params(&sid, "in-progress", start + TimeDelta::seconds(9), 2, None),
                    twilio_params(
                        &sid,
                        "completed",
                        start + TimeDelta::seconds(9 + i64::from(talk)),
                        3,
                        Some(talk),
                    ),
                ];
                for p in steps.iter().take(per_sender - latencies.len()) {
                    latencies.push(deliver(&s, p).await);
                }
            }
            latencies
        })
    });
    let mut latencies = Vec::new();
    for result in join_all(tasks).await {
        latencies.extend(result.unwrap());
    }
    (latencies.len(), started.elapsed(), latencies)
}

/// Transactions committed in the database so far (every statement outside a transaction
/// counts as one too; during the webhook phase there are next to none).
async fn commits(s: &Setup) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Commits {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = s.state.system_db.get().await.unwrap();
    let row: Commits =
        diesel::sql_query("SELECT xact_commit AS n FROM pg_stat_database WHERE datname = current_database()")
            .get_result(&mut conn)
            .await
            .unwrap();
    row.n
}

async fn answered_count(s: &Setup, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    let data = gql(
        s,
        SUMMARY,
        json!({ "f": { "from": from.to_rfc3339(), "to": to.to_rfc3339() } }),
    )
    .await;
    data["kpiSummary"]["answered"].as_i64().unwrap()
}

/// Phase 3: send one answered call, poll `kpiSummary` until it counts it. Per probe: (send →
/// acknowledged, send → counted by `kpiSummary`, `kpiSummary` polls after the acknowledgement).
async fn visibility(s: &Setup, probes: usize, webhook: bool) -> Vec<(Duration, Duration, u32)> {
    let mut out = Vec::new();
    for n in 0..probes {
        let now = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap();
        let (from, to) = (now - TimeDelta::hours(1), now + TimeDelta::hours(1));
        let before = answered_count(s, from, to).await;
        let start = now - TimeDelta::minutes(2);
        let t = Instant::now();
        if webhook {
            let sid = format!("CAfeed{n:026x}");
            deliver(
                s,
                &twilio_params(&sid, "completed", start + TimeDelta::seconds(60), 0, Some(45)),
            )
            .await;
        } else {
            let id = format!("PROBE-{n}-{}", s.slug);
            let events = [
                ev(&id, "OFFERED", start),
                ev(&id, "ANSWERED", start + TimeDelta::seconds(5)),
                ev(&id, "ENDED", start + TimeDelta::seconds(65)),
            ];
            gql(s, RECORD, json!({ "e": events })).await;
        }
        let acknowledged = t.elapsed();
        let mut polls = 1;
        while answered_count(s, from, to).await <= before {
            polls += 1;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        out.push((acknowledged, t.elapsed(), polls));
    }
    out
}

fn report(name: &str, count: usize, unit: &str, elapsed: Duration, latencies: &mut [Duration], target: f64) {
    latencies.sort();
    let rate = count as f64 / elapsed.as_secs_f64();
    println!(
        "{name:<34} {count:>7} {unit} in {:>6.2} s = {rate:>8.0} {unit}/s (target ≥ {target:.0}: {})   latency p50 {}  p99 {}  max {}",
        elapsed.as_secs_f64(),
        if rate >= target { "met" } else { "NOT met" },
        ms(percentile(latencies, 50.0)),
        ms(percentile(latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let o = options();
    let s = Arc::new(setup().await);
    println!("omnivox ingest bench — organization {} on {}", s.slug, s.base);

    let (events, elapsed, mut latencies) = batches(&s, &o).await;
    report(
        &format!("recordCallEvents (1000/batch, {} senders)", o.batch_senders),
        events,
        "events",
        elapsed,
        &mut latencies,
        5_000.0,
    );

    let commits_before = commits(&s).await;
    let (requests, elapsed, mut latencies) = webhooks(&s, &o).await;
    let transactions = commits(&s).await - commits_before;
    report(
        &format!("Twilio webhook ({} senders)", o.webhook_senders),
        requests,
        "req",
        elapsed,
        &mut latencies,
        1_500.0,
    );
    println!(
        "{:<34} {transactions} transactions committed, {:.1} deliveries per transaction",
        "",
        requests as f64 / transactions.max(1) as f64
    );

    for (name, webhook) in [("recordCallEvents", false), ("Twilio webhook", true)] {
        let probes = visibility(&s, o.probes, webhook).await;
        let mut acknowledged: Vec<Duration> = probes.iter().map(|p| p.0).collect();
        let mut seen: Vec<Duration> = probes.iter().map(|p| p.1).collect();
        acknowledged.sort();
        seen.sort();
        println!(
            "event → kpiSummary counts it ({name}, n={}): p50 {}  p99 {}  (acknowledged after p50 {}; \
             polls after the acknowledgement: at most {})",
            seen.len(),
            ms(percentile(&seen, 50.0)),
            ms(percentile(&seen, 99.0)),
            ms(percentile(&acknowledged, 50.0)),
            probes.iter().map(|p| p.2).max().unwrap_or(0)
        );
    }

    // The rollups still equal a direct computation from the rows.
    let mut conn = s.state.system_db.get().await.unwrap();
    let end = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap() + TimeDelta::hours(1);
    let windows: Vec<_> = (0..6)
        .map(|h| (end - TimeDelta::hours(h + 1), end - TimeDelta::hours(h)))
        .collect();
    let (_, zone) = omnivox::kpi::organization_rule(&mut conn, &s.tenant).await.unwrap();
    let aggregates = aggregate_windows(
        &mut conn,
        &s.tenant,
        &windows,
        &Scope::default(),
        Sourcing::Planned(zone),
    )
    .await
    .unwrap();
    let raw = aggregate_windows(&mut conn, &s.tenant, &windows, &Scope::default(), Sourcing::RawOnly)
        .await
        .unwrap();
    let consistent = aggregates.iter().zip(&raw).all(|(a, r)| a.calls == r.calls);
    let interactions: i64 = aggregates.iter().map(|a| a.calls.offered).sum();
    println!("rollups == raw rows over the last 6 hours: {consistent} ({interactions} offered calls)");
}

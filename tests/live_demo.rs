//! The live demo simulator: calls and agent changes arrive through the API's own code (ingest,
//! dispositions, presence), reach the KPIs and the wallboard subscriptions, survive a database
//! outage without losing an event, and stop when asked. Then `omnivox demo` itself: it prints
//! when the simulator started and how long the first live event took, and `--no-simulator`
//! leaves the data still.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::binary::Process;
use common::{pg_url, TestApp, TestDatabase, TEST_PASSWORD};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use omnivox::db::orgs;
use omnivox::seed::live::{self, LiveSettings, LiveSimulator};
use omnivox::seed::{self, DEMO_SLUG};
use serde_json::json;
use uuid::Uuid;

const AGENT_STATES: &str = "subscription { agentStates { kind resync agents { id presence routingState } } }";
const LIVE_KPIS: &str = "subscription { liveKpis { today { offered answered } callsWaiting } }";
const SUMMARY: &str = "query($f: KpiFilter!) { kpiSummary(filter: $f) { offered answered abandoned } }";
/// Fast enough to play a simulated hour in six seconds, slow enough for a debug build.
const SPEED: f64 = 600.0;

#[derive(diesel::QueryableByName)]
struct N {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// `SELECT count(*) AS n …` with the organization as `$1`.
async fn count(database_url: &str, sql: &str, org: Uuid) -> i64 {
    let mut conn = AsyncPgConnection::establish(database_url).await.unwrap();
    let row: N = diesel::sql_query(sql)
        .bind::<diesel::sql_types::Uuid, _>(org)
        .get_result(&mut conn)
        .await
        .unwrap();
    row.n
}

const LIVE_EVENTS: &str =
    "SELECT count(*) AS n FROM call_events WHERE organization_id = $1 AND source = 'API' AND external_id LIKE 'LIVE-%'";

async fn demo_org(app: &TestApp) -> Uuid {
    let mut conn = app.state.system_db.get().await.unwrap();
    orgs::find_by_slug(&mut conn, DEMO_SLUG).await.unwrap().unwrap().id
}

/// Polls `probe` until it returns true, for at most `wait`.
async fn eventually<F, Fut>(what: &str, wait: Duration, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + wait;
    while !probe().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {wait:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn offered_around_now(app: &TestApp, token: &str) -> i64 {
    let now = Utc::now();
    let filter =
        json!({ "from": (now - TimeDelta::hours(3)).to_rfc3339(), "to": (now + TimeDelta::hours(1)).to_rfc3339() });
    let response = app.gql(Some(token), SUMMARY, json!({ "f": filter })).await;
    response.ok()["kpiSummary"]["offered"].as_i64().unwrap()
}

async fn seeded_app_with_simulator(seed_value: u64) -> (TestApp, Uuid, LiveSimulator) {
    let app = TestApp::spawn().await;
    seed::seed_demo(&app.state, TEST_PASSWORD).await.unwrap();
    let org = demo_org(&app).await;
    let simulator = live::start(
        app.state.clone(),
        LiveSettings {
            speed: SPEED,
            seed: seed_value,
        },
    )
    .await
    .unwrap();
    (app, org, simulator)
}

#[tokio::test(flavor = "multi_thread")]
async fn simulated_calls_and_agent_changes_arrive_through_the_api_code() {
    let app = TestApp::spawn().await;
    seed::seed_demo(&app.state, TEST_PASSWORD).await.unwrap();
    let org = demo_org(&app).await;
    let (admin, _) = app.login(live::ACTOR_EMAIL).await;
    let mut wall = app.subscribe(&admin, AGENT_STATES, json!({})).await;
    assert_eq!(wall.expect_data("agentStates").await["kind"], "SNAPSHOT");
    let mut tiles = app.subscribe(&admin, LIVE_KPIS, json!({})).await;
    let tiles_before = tiles.expect_data("liveKpis").await["today"]["offered"]
        .as_i64()
        .unwrap();
    let offered_before = offered_around_now(&app, &admin).await;
    assert_eq!(count(&app.database.url, LIVE_EVENTS, org).await, 0);

    let simulator = live::start(app.state.clone(), LiveSettings { speed: SPEED, seed: 7 })
        .await
        .unwrap();

    // The wallboard sees agents change: presence or routing state, as deltas.
    let delta = wall
        .until("agentStates", Duration::from_secs(60), |u| {
            u["kind"] == "DELTA" && !u["agents"].as_array().unwrap().is_empty()
        })
        .await;
    assert_eq!(delta["resync"], false, "{delta}");

    // Calls arrive through ingest (recordCallEvents' code: source API), run their course, and
    // agents wrap them up with a disposition.
    let url = app.database.url.clone();
    eventually("answered, wrapped-up simulated calls", Duration::from_secs(90), || {
        let url = url.clone();
        async move {
            count(
                &url,
                "SELECT count(*) AS n FROM interactions WHERE organization_id = $1 AND external_id LIKE 'LIVE-%'
                   AND outcome = 'ANSWERED' AND agent_id IS NOT NULL AND wrap_ended_at IS NOT NULL
                   AND disposition_id IS NOT NULL",
                org,
            )
            .await
                >= 3
        }
    })
    .await;
    assert!(count(&url, LIVE_EVENTS, org).await >= 10);
    // Presence went through setAgentPresence's code: audited as the demo admin, forced.
    eventually("presence changes", Duration::from_secs(60), || async {
        simulator.stats().presence_changes > 0
    })
    .await;
    let audited = |action: &'static str| {
        let url = url.clone();
        async move {
            count(
                &url,
                &format!(
                    "SELECT count(*) AS n FROM audit_log a JOIN users u ON u.id = a.actor_user_id
                     WHERE a.organization_id = $1 AND a.action = '{action}' AND a.request_id = 'live-demo'
                       AND u.email = 'admin@demo.example'"
                ),
                org,
            )
            .await
        }
    };
    assert!(audited("ingest.call_events").await > 0);
    assert!(audited("agent.presence_forced").await > 0);
    // The KPIs count the calls: kpiSummary over HTTP and the liveKpis subscription.
    eventually(
        "kpiSummary counting simulated calls",
        Duration::from_secs(60),
        || async { offered_around_now(&app, &admin).await > offered_before },
    )
    .await;
    let tile = tiles
        .until("liveKpis", Duration::from_secs(60), |k| {
            k["today"]["offered"].as_i64().unwrap() > tiles_before
        })
        .await;
    assert!(tile["today"]["answered"].as_i64().unwrap() <= tile["today"]["offered"].as_i64().unwrap());
    let stats = simulator.stats();
    assert!(stats.call_events > 0 && stats.days >= 1, "{stats:?}");
    assert_eq!(stats.rejected, 0, "every simulated event is valid: {stats:?}");

    // Stopped, it writes nothing more.
    simulator.stop().await;
    let after_stop = count(&url, LIVE_EVENTS, org).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&url, LIVE_EVENTS, org).await, after_stop);
}

/// Refuses connections to the test's database and cuts the open ones (`refuse`), or lets them
/// in again.
async fn database_refuses(database: &str, refuse: bool) {
    let mut admin = AsyncPgConnection::establish(&pg_url("postgres")).await.unwrap();
    admin
        .batch_execute(&format!("ALTER DATABASE {database} ALLOW_CONNECTIONS {}", !refuse))
        .await
        .unwrap();
    if refuse {
        admin
            .batch_execute(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = '{database}' AND pid <> pg_backend_pid()"
            ))
            .await
            .unwrap();
    }
}

#[derive(diesel::QueryableByName)]
struct Sequences {
    #[diesel(sql_type = diesel::sql_types::Text)]
    external_id: String,
    #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::BigInt>)]
    sequences: Vec<i64>,
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_outage_neither_stops_the_simulator_nor_loses_its_events() {
    let (app, org, simulator) = seeded_app_with_simulator(11).await;
    let url = app.database.url.clone();
    eventually("the first simulated events", Duration::from_secs(60), || {
        let url = url.clone();
        async move { count(&url, LIVE_EVENTS, org).await >= 5 }
    })
    .await;

    // Four real seconds without a database: forty simulated minutes of traffic fall due.
    database_refuses(&app.database.name, true).await;
    let outage_from: DateTime<Utc> = Utc::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let outage_to: DateTime<Utc> = Utc::now();
    database_refuses(&app.database.name, false).await;

    eventually("the simulator noticing the outage", Duration::from_secs(10), || async {
        simulator.stats().failures > 0
    })
    .await;
    // It goes on: events that fell due during the outage arrive afterwards with their own
    // times, and new ones follow.
    let late = format!(
        "SELECT count(*) AS n FROM call_events WHERE organization_id = $1 AND external_id LIKE 'LIVE-%'
           AND occurred_at BETWEEN '{}' AND '{}' AND received_at > '{}'",
        outage_from.to_rfc3339(),
        outage_to.to_rfc3339(),
        outage_to.to_rfc3339()
    );
    eventually("events of the outage, delivered late", Duration::from_secs(60), || {
        let (url, late) = (url.clone(), late.clone());
        async move { count(&url, &late, org).await > 0 }
    })
    .await;
    let after = format!(
        "SELECT count(*) AS n FROM call_events WHERE organization_id = $1 AND external_id LIKE 'LIVE-%'
           AND occurred_at > '{}'",
        (outage_to + TimeDelta::seconds(2)).to_rfc3339()
    );
    eventually("events after the outage", Duration::from_secs(60), || {
        let (url, after) = (url.clone(), after.clone());
        async move { count(&url, &after, org).await > 0 }
    })
    .await;
    assert!(simulator.is_running());
    simulator.stop().await;

    // Nothing was skipped: every call's telephony events are numbered 0, 1, 2… without a gap
    // (a lost batch would leave one).
    let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
    let calls: Vec<Sequences> = diesel::sql_query(
        "SELECT external_id, array_agg(sequence_number ORDER BY sequence_number) AS sequences
         FROM call_events WHERE organization_id = $1 AND source = 'API' AND external_id LIKE 'LIVE-%'
         GROUP BY external_id",
    )
    .bind::<diesel::sql_types::Uuid, _>(org)
    .load(&mut conn)
    .await
    .unwrap();
    assert!(calls.len() > 10, "{} calls", calls.len());
    let gaps: BTreeMap<&str, &Vec<i64>> = calls
        .iter()
        .filter(|c| c.sequences.iter().enumerate().any(|(i, s)| *s != i as i64))
        .map(|c| (c.external_id.as_str(), &c.sequences))
        .collect();
    assert!(gaps.is_empty(), "calls with missing events: {gaps:?}");
}

/// Seconds in `…committed 1.23 s after process start.`
fn seconds_in(line: &str) -> f64 {
    let after = line.split("committed ").nth(1).unwrap_or_default();
    after
        .split(" s after")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no figure in {line:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_command_reports_its_simulator_and_first_live_event() {
    let database = TestDatabase::new().await;
    let mut demo = Process::spawn(
        &[
            "demo",
            "--bind",
            "127.0.0.1:0",
            "--speed",
            "600",
            "--simulator-seed",
            "5",
        ],
        &database.url,
    );
    let started = demo
        .stdout_line("Live simulator: started", Duration::from_secs(120))
        .await;
    assert!(
        started.contains("speed ×600") && started.contains("seed 5"),
        "{started}"
    );
    let first = demo.stdout_line("first live event", Duration::from_secs(60)).await;
    let seconds = seconds_in(&first);
    assert!(seconds > 0.0 && seconds < 120.0, "{first}");
    assert!(
        demo.stdout_seen
            .iter()
            .any(|l| l.contains("GraphQL:   http://127.0.0.1:")),
        "{:#?}",
        demo.stdout_seen
    );

    let mut conn = AsyncPgConnection::establish(&database.url).await.unwrap();
    let org = orgs::find_by_slug(&mut conn, DEMO_SLUG).await.unwrap().unwrap().id;
    eventually("call events from the demo's simulator", Duration::from_secs(60), || {
        let url = database.url.clone();
        async move { count(&url, LIVE_EVENTS, org).await > 0 }
    })
    .await;

    demo.sigterm();
    let status = demo.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}: {}", demo.output());
}

#[tokio::test(flavor = "multi_thread")]
async fn no_simulator_leaves_the_demo_data_still() {
    let database = TestDatabase::new().await;
    // A fast simulator would write within a second: the flag must keep it from starting.
    let mut demo = Process::spawn(
        &["demo", "--bind", "127.0.0.1:0", "--speed", "600", "--no-simulator"],
        &database.url,
    );
    demo.stdout_line("Press Ctrl-C", Duration::from_secs(120)).await;
    assert!(
        demo.stdout_seen.iter().any(|l| l.contains("Live simulator: off")),
        "{:#?}",
        demo.stdout_seen
    );
    let mut conn = AsyncPgConnection::establish(&database.url).await.unwrap();
    let org = orgs::find_by_slug(&mut conn, DEMO_SLUG).await.unwrap().unwrap().id;
    let tables = ["call_events", "interactions", "agent_state_log", "audit_log"];
    let mut before = Vec::new();
    for table in tables {
        before.push(
            count(
                &database.url,
                &format!("SELECT count(*) AS n FROM {table} WHERE organization_id = $1"),
                org,
            )
            .await,
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (table, before) in tables.iter().zip(before) {
        let now = count(
            &database.url,
            &format!("SELECT count(*) AS n FROM {table} WHERE organization_id = $1"),
            org,
        )
        .await;
        assert_eq!(now, before, "{table} changed without the simulator");
    }
    assert!(
        !demo.stdout_seen.iter().any(|l| l.contains("first live event")),
        "{:#?}",
        demo.stdout_seen
    );
    demo.sigterm();
    let status = demo.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_simulator_refuses_an_unseeded_database_and_a_bad_speed() {
    let app = TestApp::spawn().await;
    let error = live::start(app.state.clone(), LiveSettings { speed: 1.0, seed: 1 })
        .await
        .err()
        .expect("no demo organization");
    assert_eq!(error.code().as_str(), "NOT_FOUND");
    let error = live::start(app.state.clone(), LiveSettings { speed: 0.0, seed: 1 })
        .await
        .err()
        .expect("speed 0");
    assert_eq!(error.code().as_str(), "BAD_USER_INPUT");
}

//! Real-time: agent presence, the `agentStates`, `liveKpis` and `interactionEvents`
//! subscriptions over WebSocket, resyncs (forced lag, Redis outage), two instances sharing
//! Redis, and the in-process bus — against real PostgreSQL and Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;
mod ingest_support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::ws::WsEvent;
use common::TestApp;
use diesel_async::RunQueryDsl;
use ingest_support::{ev, fixture, record, with, Fixture};
use omnivox::auth::Role;
use serde_json::{json, Value};
use uuid::Uuid;

const AGENT_STATES: &str = "subscription($f: AgentStatesFilter) { agentStates(filter: $f) {
    kind resync removedAgentIds
    agents { id name teamId presence presenceReason presenceSince routingState routingSince
             currentCall { interactionId externalId direction customerNumber } } } }";

const SET_PRESENCE: &str = "mutation($a: ID, $p: Presence!, $r: String) {
    setAgentPresence(agentId: $a, presence: $p, reason: $r) { id presence presenceReason routingState } }";

const UPSERT_CODE: &str = "mutation($c: String!, $p: Presence!) {
    upsertPresenceReasonCode(input: { code: $c, presence: $p, label: $c }) { code presence active } }";

const LIVE_KPIS: &str = "subscription($f: LiveKpiFilter) { liveKpis(filter: $f) {
    computedAt timezone callsWaiting oldestWaitingSince longestCurrentWait
    today { offered answered abandoned serviceLevel averageSpeedOfAnswer averageHandleTime abandonRate }
    last15Minutes { offered } last60Minutes { offered }
    agentsByPresence { state count } agentsByRoutingState { state count } } }";

const INTERACTION_EVENTS: &str = "subscription($f: InteractionEventsFilter) {
    interactionEvents(filter: $f) { resync sequence interactions { interactionId externalId outcome agentId campaignId direction } } }";

fn member(update: &Value, id: Uuid) -> &Value {
    update["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id.to_string())
        .unwrap_or_else(|| panic!("agent {id} not in {update}"))
}

async fn set_presence(
    app: &TestApp,
    token: &str,
    agent: Option<Uuid>,
    presence: &str,
    reason: Option<&str>,
) -> common::GqlResponse {
    app.gql(
        Some(token),
        SET_PRESENCE,
        json!({ "a": agent.map(|a| a.to_string()), "p": presence, "r": reason }),
    )
    .await
}

/// Puts `agent` on an inbound call (offered, ringing, answered: a few seconds ago).
fn on_call_events(f: &Fixture, call: &str, agent: Uuid) -> Vec<Value> {
    let now = Utc::now();
    let offered = with(
        ev(call, "OFFERED", now - TimeDelta::seconds(20)),
        "direction",
        "INBOUND",
    );
    let offered = with(offered, "campaignId", f.inbound.to_string());
    let offered = with(offered, "customerNumber", "+447700900123");
    vec![
        offered,
        with(
            ev(call, "RINGING", now - TimeDelta::seconds(15)),
            "agentId",
            agent.to_string(),
        ),
        with(
            ev(call, "ANSWERED", now - TimeDelta::seconds(10)),
            "agentId",
            agent.to_string(),
        ),
    ]
}

#[derive(diesel::QueryableByName)]
struct Interval {
    #[diesel(sql_type = diesel::sql_types::Text)]
    state: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    reason: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    open: bool,
}

async fn presence_log(app: &TestApp, agent: Uuid) -> Vec<(String, Option<String>, bool)> {
    let mut conn = app.state.system_db.get().await.unwrap();
    let rows: Vec<Interval> = diesel::sql_query(
        "SELECT state, reason, ended_at IS NULL AS open FROM agent_state_log
         WHERE agent_id = $1 AND axis = 'PRESENCE' ORDER BY started_at, id",
    )
    .bind::<diesel::sql_types::Uuid, _>(agent)
    .load(&mut conn)
    .await
    .unwrap();
    rows.into_iter().map(|r| (r.state, r.reason, r.open)).collect()
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

async fn audit_count(app: &TestApp, action: &str) -> i64 {
    let mut conn = app.state.system_db.get().await.unwrap();
    let row: Count = diesel::sql_query("SELECT count(*) AS n FROM audit_log WHERE action = $1")
        .bind::<diesel::sql_types::Text, _>(action)
        .get_result(&mut conn)
        .await
        .unwrap();
    row.n
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_states_snapshot_then_deltas_presence_rules_and_masking() {
    let app = TestApp::spawn().await;
    assert_eq!(app.state.bus.stats().mode, "in-process");
    let f = fixture(&app, "rtstates").await;
    let (a0, a1, a2) = (f.agents[0], f.agents[1], f.agents[2]);
    let viewer = app.token(&f.org, Role::Viewer).await;
    let agent = app.token(&f.org, Role::Agent).await;
    let supervisor = app.token(&f.org, Role::Supervisor).await;

    let filter = json!({ "f": { "agentIds": [a0.to_string(), a1.to_string()] } });
    let mut wall = app.subscribe(&viewer, AGENT_STATES, filter.clone()).await;
    let mut boss = app.subscribe(&supervisor, AGENT_STATES, filter).await;
    let snapshot = wall.expect_data("agentStates").await;
    assert_eq!(snapshot["kind"], "SNAPSHOT");
    assert_eq!(snapshot["resync"], false);
    assert_eq!(snapshot["agents"].as_array().unwrap().len(), 2, "{snapshot}");
    assert_eq!(member(&snapshot, a0)["presence"], "AVAILABLE");
    assert_eq!(member(&snapshot, a0)["routingState"], "IDLE");
    boss.expect_data("agentStates").await;

    // The organization defines BREAK reasons: a BREAK then needs one of them.
    app.gql(Some(&f.admin), UPSERT_CODE, json!({ "c": "COFFEE", "p": "BREAK" }))
        .await
        .ok();
    let refused = app
        .gql(Some(&f.admin), UPSERT_CODE, json!({ "c": "GONE", "p": "OFFLINE" }))
        .await;
    assert_eq!(refused.error_code(), Some("BAD_USER_INPUT"));
    for reason in [None, Some("NOPE")] {
        let response = set_presence(&app, &agent, None, "BREAK", reason).await;
        assert_eq!(
            response.error_code(),
            Some("BAD_USER_INPUT"),
            "{reason:?}: {}",
            response.body
        );
    }
    let response = set_presence(&app, &agent, None, "AVAILABLE", Some("COFFEE")).await;
    assert_eq!(
        response.error_code(),
        Some("BAD_USER_INPUT"),
        "AVAILABLE takes no reason"
    );

    // An AGENT sets their own presence: a delta reaches every subscriber.
    let set = set_presence(&app, &agent, None, "BREAK", Some("COFFEE")).await;
    assert_eq!(set.ok()["setAgentPresence"]["presence"], "BREAK");
    let delta = wall.expect_data("agentStates").await;
    assert_eq!(delta["kind"], "DELTA");
    assert_eq!(delta["agents"].as_array().unwrap().len(), 1);
    assert_eq!(member(&delta, a0)["presence"], "BREAK");
    assert_eq!(member(&delta, a0)["presenceReason"], "COFFEE");
    boss.expect_data("agentStates").await;

    // The same state again is a no-op: nothing published, so no delta.
    let mut published = app.state.bus.subscribe(omnivox::realtime::Topic::AgentState);
    set_presence(&app, &agent, None, "BREAK", Some("COFFEE")).await.ok();
    assert!(wall
        .next_data("agentStates", Duration::from_millis(700))
        .await
        .is_none());
    assert!(published.try_recv().is_err(), "a no-op publishes nothing");

    // Another agent's presence: FORBIDDEN for an AGENT, forced (and audited) by a SUPERVISOR.
    let response = set_presence(&app, &agent, Some(a1), "AVAILABLE", None).await;
    assert_eq!(response.error_code(), Some("FORBIDDEN"));
    let response = set_presence(&app, &viewer, None, "AVAILABLE", None).await;
    assert_eq!(response.error_code(), Some("FORBIDDEN"), "VIEWER cannot set presence");
    set_presence(&app, &supervisor, Some(a1), "LUNCH", None).await.ok();
    assert_eq!(audit_count(&app, "agent.presence_forced").await, 1);
    assert_eq!(audit_count(&app, "agent.presence").await, 1);
    let delta = wall.expect_data("agentStates").await;
    assert_eq!(member(&delta, a1)["presence"], "LUNCH");
    boss.expect_data("agentStates").await;

    // An agent outside the filter changes: nothing is sent.
    set_presence(&app, &supervisor, Some(a2), "AWAY", None).await.ok();
    assert!(wall
        .next_data("agentStates", Duration::from_millis(700))
        .await
        .is_none());

    // Back to AVAILABLE: the BREAK interval is closed, AVAILABLE is open.
    set_presence(&app, &agent, None, "AVAILABLE", None).await.ok();
    wall.expect_data("agentStates").await;
    boss.expect_data("agentStates").await;
    assert_eq!(
        presence_log(&app, a0).await,
        vec![
            ("BREAK".to_owned(), Some("COFFEE".to_owned()), false),
            ("AVAILABLE".to_owned(), None, true),
        ]
    );

    // A call: the routing state and the current call; the number is masked below SUPERVISOR.
    record(&app, &f.admin, &on_call_events(&f, "CA-RT-1", a0)).await.ok();
    let seen = wall
        .until("agentStates", Duration::from_secs(10), |d| {
            member(d, a0)["routingState"] == "ON_CALL"
        })
        .await;
    let call = &member(&seen, a0)["currentCall"];
    assert_eq!(call["externalId"], "CA-RT-1");
    assert_eq!(call["direction"], "INBOUND");
    assert_eq!(call["customerNumber"], "+44******0123");
    let seen = boss
        .until("agentStates", Duration::from_secs(10), |d| {
            member(d, a0)["routingState"] == "ON_CALL"
        })
        .await;
    assert_eq!(member(&seen, a0)["currentCall"]["customerNumber"], "+447700900123");

    // OFFLINE is refused during a call, even when forced.
    for (token, target) in [(&agent, None), (&supervisor, Some(a0))] {
        let response = set_presence(&app, token, target, "OFFLINE", None).await;
        assert_eq!(response.error_code(), Some("BAD_USER_INPUT"), "{}", response.body);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lagging_subscriber_gets_a_resync_snapshot() {
    // One update buffered per subscriber: a batch moving three agents at once overruns it.
    let app = TestApp::spawn_with(|s| s.live_updates_buffer = 1).await;
    let f = fixture(&app, "rtlag").await;
    let viewer = app.token(&f.org, Role::Viewer).await;
    let mut wall = app.subscribe(&viewer, AGENT_STATES, json!({})).await;
    let snapshot = wall.expect_data("agentStates").await;
    assert_eq!(snapshot["agents"].as_array().unwrap().len(), 3);
    let mut resynced = None;
    for round in 0..5 {
        let events: Vec<Value> = f
            .agents
            .iter()
            .enumerate()
            .flat_map(|(i, a)| on_call_events(&f, &format!("CA-LAG-{round}-{i}"), *a))
            .collect();
        record(&app, &f.admin, &events).await.ok();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while let Some(update) = wall
            .next_data(
                "agentStates",
                deadline.saturating_duration_since(tokio::time::Instant::now()),
            )
            .await
        {
            if update["resync"] == true {
                resynced = Some(update);
                break;
            }
        }
        if resynced.is_some() {
            break;
        }
        // The subscriber kept up this time; end the calls and try again.
        let now = Utc::now();
        let ends: Vec<Value> = (0..3)
            .flat_map(|i| {
                let call = format!("CA-LAG-{round}-{i}");
                [ev(&call, "ENDED", now), ev(&call, "WRAP_UP_ENDED", now)]
            })
            .collect();
        record(&app, &f.admin, &ends).await.ok();
        tokio::time::sleep(Duration::from_millis(300)).await;
        while wall
            .next_data("agentStates", Duration::from_millis(300))
            .await
            .is_some()
        {}
    }
    let resync = resynced.expect("the lagging subscriber was never resynced");
    assert_eq!(resync["kind"], "SNAPSHOT");
    assert_eq!(
        resync["agents"].as_array().unwrap().len(),
        3,
        "a resync is a full snapshot"
    );
}

/// A redis-server owned by one test, on a spare port.
struct OwnedRedis {
    port: u16,
    child: Child,
}

impl OwnedRedis {
    async fn start(port: u16) -> Self {
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self { port, child };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server did not start on port {port}");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Pub/sub subscriber connections (pattern or channel) the server holds.
    async fn subscriber_connections(&self) -> usize {
        let client = redis::Client::open(self.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let list: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut conn).await.unwrap();
        list.lines()
            .filter(|line| {
                line.split(' ')
                    .any(|kv| matches!(kv.split_once('='), Some(("psub" | "sub", n)) if n != "0"))
            })
            .count()
    }
}

impl Drop for OwnedRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..200 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_outage_keeps_mutations_working_and_resyncs_subscribers() {
    let port = common::spare_port();
    let mut redis = OwnedRedis::start(port).await;
    let url = redis.url();
    let app = TestApp::spawn_with(|s| s.redis_url = Some(url)).await;
    wait_for("the bus to subscribe", || app.state.bus.stats().connected).await;
    let f = fixture(&app, "rtoutage").await;
    let (a0, a1) = (f.agents[0], f.agents[1]);
    let viewer = app.token(&f.org, Role::Viewer).await;
    let agent = app.token(&f.org, Role::Agent).await;
    let supervisor = app.token(&f.org, Role::Supervisor).await;

    let mut wall = app.subscribe(&viewer, AGENT_STATES, json!({})).await;
    wall.expect_data("agentStates").await;
    // Many subscriptions, one subscriber connection.
    let mut others = Vec::new();
    for _ in 0..3 {
        let mut ws = app.subscribe(&viewer, AGENT_STATES, json!({})).await;
        ws.expect_data("agentStates").await;
        others.push(ws);
    }
    assert_eq!(redis.subscriber_connections().await, 1);

    set_presence(&app, &agent, None, "BREAK", None).await.ok();
    let delta = wall
        .until("agentStates", Duration::from_secs(5), |d| d["kind"] == "DELTA")
        .await;
    assert_eq!(member(&delta, a0)["presence"], "BREAK");

    redis.kill();
    wait_for("the bus to notice", || !app.state.bus.stats().connected).await;
    // Mutations keep working; readiness says degraded.
    set_presence(&app, &agent, None, "LUNCH", None).await.ok();
    set_presence(&app, &supervisor, Some(a1), "MEETING", None).await.ok();
    let ready: Value = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "degraded", "{ready}");

    let _redis = OwnedRedis::start(port).await;
    let resync = wall
        .until("agentStates", Duration::from_secs(20), |d| d["resync"] == true)
        .await;
    assert_eq!(resync["kind"], "SNAPSHOT");
    assert_eq!(member(&resync, a0)["presence"], "LUNCH");
    assert_eq!(member(&resync, a1)["presence"], "MEETING");
    assert!(app.state.bus.stats().reconnects >= 1);
    let ready: Value = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_through_one_instance_reaches_a_subscriber_of_another() {
    let a = TestApp::spawn_with(|s| s.redis_url = Some(common::REDIS_URL.into())).await;
    let b = a.spawn_peer(|s| s.redis_url = Some(common::REDIS_URL.into())).await;
    wait_for("instance A's bus", || a.state.bus.stats().connected).await;
    wait_for("instance B's bus", || b.state.bus.stats().connected).await;
    let f = fixture(&a, "rttwo").await;
    let viewer = a.token(&f.org, Role::Viewer).await;
    let agent = a.token(&f.org, Role::Agent).await;
    let mut on_b = b.subscribe(&viewer, AGENT_STATES, json!({})).await;
    on_b.expect_data("agentStates").await;
    let mut on_a = a.subscribe(&viewer, AGENT_STATES, json!({})).await;
    on_a.expect_data("agentStates").await;

    set_presence(&a, &agent, None, "TRAINING", None).await.ok();
    for ws in [&mut on_b, &mut on_a] {
        let delta = ws
            .until("agentStates", Duration::from_secs(5), |d| d["kind"] == "DELTA")
            .await;
        assert_eq!(member(&delta, f.agents[0])["presence"], "TRAINING");
        // Delivered once: A's own event coming back from Redis is not delivered again.
        assert!(ws.next_data("agentStates", Duration::from_millis(500)).await.is_none());
    }
    assert_eq!(b.state.bus.stats().received, 1, "B heard A's one event");
    assert_eq!(a.state.bus.stats().received, 0, "A skipped the echo of its own event");
    // The subscriber connection's keep-alive PING must not be mistaken for an outage (each
    // false reconnect resyncs every subscriber).
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(a.state.bus.stats().reconnects, 0);
    assert_eq!(b.state.bus.stats().reconnects, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn live_kpis_are_shared_per_filter_and_pushed_on_change() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, "rtkpi").await;
    let viewer = app.token(&f.org, Role::Viewer).await;
    let filter = json!({ "f": { "campaignIds": [f.inbound.to_string()] } });
    // The same filter written differently shares the computation.
    let same = json!({ "f": { "campaignIds": [f.inbound.to_string(), f.inbound.to_string()] } });
    let mut one = app.subscribe(&viewer, LIVE_KPIS, filter).await;
    let mut two = app.subscribe(&viewer, LIVE_KPIS, same).await;
    let first = one.expect_data("liveKpis").await;
    two.expect_data("liveKpis").await;
    assert_eq!(app.state.live.len(), 1);
    assert_eq!(first["timezone"], "Europe/London");
    assert_eq!(first["callsWaiting"], 0);
    assert_eq!(first["today"]["offered"], 0);
    assert_eq!(first["today"]["serviceLevel"], Value::Null);
    assert_eq!(first["today"]["abandonRate"], Value::Null, "no calls: no rate, not 0 %");
    let available: i64 = first["agentsByPresence"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["state"] == "AVAILABLE")
        .map(|c| c["count"].as_i64().unwrap())
        .sum();
    assert_eq!(available, 3);

    // A waiting inbound call: both subscribers see it.
    let offered = with(
        ev("CA-KPI-1", "OFFERED", Utc::now() - TimeDelta::seconds(30)),
        "direction",
        "INBOUND",
    );
    record(&app, &f.admin, &[with(offered, "campaignId", f.inbound.to_string())])
        .await
        .ok();
    for ws in [&mut one, &mut two] {
        let tiles = ws.expect_data("liveKpis").await;
        assert_eq!(tiles["callsWaiting"], 1, "{tiles}");
        // The registry counts a call as offered once it is answered or abandoned.
        assert_eq!(tiles["today"]["offered"], 0);
        assert!(tiles["longestCurrentWait"].as_f64().unwrap() >= 29.0);
    }
    // The caller hangs up: an abandon, nobody waiting.
    record(&app, &f.admin, &[ev("CA-KPI-1", "ENDED", Utc::now())])
        .await
        .ok();
    for ws in [&mut one, &mut two] {
        let tiles = ws.expect_data("liveKpis").await;
        assert_eq!(tiles["callsWaiting"], 0, "{tiles}");
        assert_eq!(tiles["today"]["offered"], 1);
        assert_eq!(tiles["today"]["abandoned"], 1);
        assert_eq!(tiles["today"]["abandonRate"], 100.0);
        assert_eq!(tiles["last15Minutes"]["offered"], 1);
        assert_eq!(tiles["oldestWaitingSince"], Value::Null);
    }
    // An outbound call is outside the filter: nothing is pushed.
    let out = with(ev("CA-KPI-2", "OFFERED", Utc::now()), "direction", "OUTBOUND");
    record(&app, &f.admin, &[with(out, "campaignId", f.outbound.to_string())])
        .await
        .ok();
    assert!(one.next_data("liveKpis", Duration::from_millis(1_500)).await.is_none());

    // The computation ends with its last subscriber.
    drop(one);
    drop(two);
    wait_for("the shared computation to stop", || app.state.live.is_empty()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn interaction_events_are_for_supervisors_and_filtered() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, "rtcalls").await;
    let agent = app.token(&f.org, Role::Agent).await;
    let supervisor = app.token(&f.org, Role::Supervisor).await;
    let mut refused = app.subscribe(&agent, INTERACTION_EVENTS, json!({})).await;
    match refused.next(Duration::from_secs(5)).await {
        WsEvent::Json(message) => {
            let errors = if message["type"] == "error" {
                message["payload"].clone()
            } else {
                message["payload"]["errors"].clone()
            };
            assert_eq!(errors[0]["extensions"]["code"], "FORBIDDEN", "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let mut ws = app
        .subscribe(
            &supervisor,
            INTERACTION_EVENTS,
            json!({ "f": { "campaignIds": [f.inbound.to_string()] } }),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let out = with(ev("CA-IE-OUT", "OFFERED", Utc::now()), "direction", "OUTBOUND");
    let inbound = with(ev("CA-IE-IN", "OFFERED", Utc::now()), "direction", "INBOUND");
    record(
        &app,
        &f.admin,
        &[
            with(out, "campaignId", f.outbound.to_string()),
            with(inbound, "campaignId", f.inbound.to_string()),
        ],
    )
    .await
    .ok();
    let message = ws.expect_data("interactionEvents").await;
    assert_eq!(message["resync"], false);
    assert!(message["sequence"].as_u64().unwrap() >= 1);
    let calls = message["interactions"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{message}");
    assert_eq!(calls[0]["externalId"], "CA-IE-IN");
    assert_eq!(calls[0]["outcome"], "IN_PROGRESS");
    assert_eq!(calls[0]["direction"], "INBOUND");
}

#[tokio::test(flavor = "multi_thread")]
async fn subscription_guards_follow_the_roles() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, "rtguards").await;
    let cases = [
        ("agentStates", AGENT_STATES, Role::Viewer),
        ("liveKpis", LIVE_KPIS, Role::Viewer),
        ("interactionEvents", INTERACTION_EVENTS, Role::Supervisor),
        (
            "complianceAlerts",
            "subscription { complianceAlerts { campaignId level } }",
            Role::Supervisor,
        ),
    ];
    let mut tokens = Vec::new();
    for role in Role::ALL {
        tokens.push((role, app.token(&f.org, role).await));
    }
    for (field, query, lowest) in cases {
        for (role, token) in &tokens {
            let role = *role;
            let mut ws = app.subscribe(token, query, json!({})).await;
            let outcome = ws.next(Duration::from_millis(1_500)).await;
            let refused = match &outcome {
                WsEvent::Json(m) if m["type"] == "error" => Some(m["payload"][0]["extensions"]["code"].clone()),
                WsEvent::Json(m) if m["payload"].get("errors").is_some() => {
                    Some(m["payload"]["errors"][0]["extensions"]["code"].clone())
                }
                _ => None,
            };
            if role >= lowest {
                assert!(refused.is_none(), "{field} as {role}: {outcome:?}");
            } else {
                assert_eq!(refused, Some(json!("FORBIDDEN")), "{field} as {role}: {outcome:?}");
            }
        }
    }
}

/// Outbound calls of the fixture's outbound campaign, a minute ago: answered by a
/// person and an agent (live), or a person and no agent (a drop).
fn outbound_calls(f: &Fixture, prefix: &str, live: usize, drops: usize) -> Vec<Value> {
    let now = Utc::now();
    let mut events = Vec::new();
    for n in 0..live + drops {
        let call = format!("{prefix}-{n}");
        let offered = with(
            ev(&call, "OFFERED", now - TimeDelta::seconds(60)),
            "direction",
            "OUTBOUND",
        );
        events.push(with(offered, "campaignId", f.outbound.to_string()));
        if n < live {
            let answered = with(
                ev(&call, "ANSWERED", now - TimeDelta::seconds(50)),
                "answeredBy",
                "HUMAN",
            );
            events.push(with(answered, "agentId", f.agents[n % 3].to_string()));
            events.push(ev(&call, "ENDED", now - TimeDelta::seconds(40)));
        } else {
            events.push(with(
                ev(&call, "ENDED", now - TimeDelta::seconds(55)),
                "answeredBy",
                "HUMAN",
            ));
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread")]
async fn compliance_alerts_are_edge_triggered() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, "rtcompliance").await;
    let supervisor = app.token(&f.org, Role::Supervisor).await;
    // 50 live calls and one drop: about 2 %, below 80 % of the 3 % limit.
    record(&app, &f.admin, &outbound_calls(&f, "CA-LIVE", 50, 1)).await.ok();
    let query = "subscription($c: [ID!]) { complianceAlerts(campaignIds: $c) {
        campaignId window level previousLevel rate limit } }";
    let mut ws = app
        .subscribe(&supervisor, query, json!({ "c": [f.outbound.to_string()] }))
        .await;
    assert!(
        ws.next_data("complianceAlerts", Duration::from_millis(1_500))
            .await
            .is_none(),
        "no alert while OK"
    );
    // Two more drops: over the limit in both windows — one alert per window.
    record(&app, &f.admin, &outbound_calls(&f, "CA-DROP", 0, 2)).await.ok();
    let mut windows = Vec::new();
    for _ in 0..2 {
        let alert = ws.expect_data("complianceAlerts").await;
        assert_eq!(alert["campaignId"], f.outbound.to_string());
        assert_eq!(alert["level"], "BREACH", "{alert}");
        assert_eq!(alert["previousLevel"], "OK", "{alert}");
        assert_eq!(alert["limit"], 3.0);
        assert!(alert["rate"].as_f64().unwrap() > 3.0, "{alert}");
        windows.push(alert["window"].as_str().unwrap().to_owned());
    }
    windows.sort();
    assert_eq!(windows, ["UK_24H", "US_30D"]);
    // Still in breach after another call: no new alert (edge-triggered).
    record(&app, &f.admin, &outbound_calls(&f, "CA-MORE", 1, 0)).await.ok();
    assert!(ws.next_data("complianceAlerts", Duration::from_secs(3)).await.is_none());
}

/// A team-filtered subscriber is told to drop an agent who moved to another team (the move
/// itself is written directly here: the agent is re-read on its next event).
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_leaving_the_filtered_teams_is_removed_from_the_view() {
    use diesel_async::SimpleAsyncConnection;
    let app = TestApp::spawn().await;
    let f = fixture(&app, "rtteams").await;
    let (a1, a2) = (f.agents[1], f.agents[2]);
    let (blue, red) = (Uuid::new_v4(), Uuid::new_v4());
    let org = f.org.id;
    let mut conn = app.state.system_db.get().await.unwrap();
    conn.batch_execute(&format!(
        "INSERT INTO teams (id, organization_id, name) VALUES ('{blue}', '{org}', 'Blue'), ('{red}', '{org}', 'Red');
         UPDATE agents SET team_id = '{blue}' WHERE id IN ('{a1}', '{a2}');"
    ))
    .await
    .unwrap();
    let viewer = app.token(&f.org, Role::Viewer).await;
    let supervisor = app.token(&f.org, Role::Supervisor).await;
    let mut wall = app
        .subscribe(&viewer, AGENT_STATES, json!({ "f": { "teamIds": [blue.to_string()] } }))
        .await;
    let snapshot = wall.expect_data("agentStates").await;
    assert_eq!(snapshot["agents"].as_array().unwrap().len(), 2, "{snapshot}");

    conn.batch_execute(&format!("UPDATE agents SET team_id = '{red}' WHERE id = '{a1}'"))
        .await
        .unwrap();
    set_presence(&app, &supervisor, Some(a1), "OFFLINE", None).await.ok();
    let delta = wall.expect_data("agentStates").await;
    assert_eq!(delta["kind"], "DELTA");
    assert_eq!(delta["removedAgentIds"], json!([a1.to_string()]), "{delta}");
    assert_eq!(delta["agents"], json!([]));

    // Its later changes are not sent; the other Blue agent's are.
    set_presence(&app, &supervisor, Some(a1), "AVAILABLE", None).await.ok();
    set_presence(&app, &supervisor, Some(a2), "OFFLINE", None).await.ok();
    let delta = wall.expect_data("agentStates").await;
    assert_eq!(delta["agents"].as_array().unwrap().len(), 1, "{delta}");
    assert_eq!(member(&delta, a2)["presence"], "OFFLINE");
}

/// A counter or gauge of `/metrics`.
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_states_deltas_are_rendered_once_per_role_and_filter() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, "rtshare").await;
    let (a0, a1) = (f.agents[0], f.agents[1]);
    let viewer = app.token(&f.org, Role::Viewer).await;
    let supervisor = app.token(&f.org, Role::Supervisor).await;
    let all = json!({});
    let mut walls = Vec::new();
    for _ in 0..3 {
        walls.push(app.subscribe(&viewer, AGENT_STATES, all.clone()).await);
    }
    let mut boss = app.subscribe(&supervisor, AGENT_STATES, all.clone()).await;
    // Another filter is another stream, even for the same role.
    let only_a1 = json!({ "f": { "agentIds": [a1.to_string()] } });
    let mut narrow = app.subscribe(&viewer, AGENT_STATES, only_a1).await;
    for ws in walls.iter_mut().chain([&mut boss, &mut narrow]) {
        assert_eq!(ws.expect_data("agentStates").await["kind"], "SNAPSHOT");
    }
    assert_eq!(metric(&app, "omnivox_ws_shared_streams").await, 3.0);
    let renders = metric(&app, "omnivox_ws_shared_renders_total").await;
    let deliveries = metric(&app, "omnivox_ws_shared_deliveries_total").await;

    // One change of a0: rendered once for the three viewers, once for the supervisor; the
    // narrow filter does not match it.
    set_presence(&app, &supervisor, Some(a0), "LUNCH", None).await.ok();
    let mut seen = Vec::new();
    for ws in walls.iter_mut().chain([&mut boss]) {
        let delta = ws.expect_data("agentStates").await;
        assert_eq!(delta["kind"], "DELTA");
        assert_eq!(member(&delta, a0)["presence"], "LUNCH");
        seen.push(delta);
    }
    assert!(
        seen.iter().all(|d| *d == seen[0]),
        "the same delta for everyone: {seen:?}"
    );
    assert!(narrow
        .next_data("agentStates", Duration::from_millis(500))
        .await
        .is_none());
    assert_eq!(metric(&app, "omnivox_ws_shared_renders_total").await - renders, 2.0);
    assert_eq!(
        metric(&app, "omnivox_ws_shared_deliveries_total").await - deliveries,
        4.0
    );

    // A call: the viewers' shared render masks the customer number, the supervisor's does not.
    record(&app, &f.admin, &on_call_events(&f, "CA-SHARE-1", a0)).await.ok();
    for ws in &mut walls {
        let seen = ws
            .until("agentStates", Duration::from_secs(10), |d| {
                member(d, a0)["routingState"] == "ON_CALL"
            })
            .await;
        assert_eq!(member(&seen, a0)["currentCall"]["customerNumber"], "+44******0123");
    }
    let seen = boss
        .until("agentStates", Duration::from_secs(10), |d| {
            member(d, a0)["routingState"] == "ON_CALL"
        })
        .await;
    assert_eq!(member(&seen, a0)["currentCall"]["customerNumber"], "+447700900123");

    // A shared stream ends with its last subscriber.
    drop(walls);
    drop(boss);
    drop(narrow);
    for _ in 0..100 {
        if metric(&app, "omnivox_ws_shared_streams").await == 0.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the shared streams outlived their subscribers");
}

/// Folds one subscriber's messages into agent → (presence, presenceSince), checking that no
/// message brings back an older state than one already shown.
fn fold_view(view: &mut std::collections::HashMap<String, (String, String)>, update: &Value) {
    if update["kind"] == "SNAPSHOT" {
        view.clear();
    }
    for agent in update["agents"].as_array().unwrap() {
        let id = agent["id"].as_str().unwrap().to_owned();
        let since = agent["presenceSince"].as_str().unwrap().to_owned();
        let since_time = chrono::DateTime::parse_from_rfc3339(&since).unwrap();
        if let Some((_, shown)) = view.get(&id) {
            let shown_time = chrono::DateTime::parse_from_rfc3339(shown).unwrap();
            assert!(
                since_time >= shown_time,
                "agent {id}: a message went back from {shown} to {since}"
            );
        }
        view.insert(id, (agent["presence"].as_str().unwrap().to_owned(), since));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn subscribers_joining_during_changes_miss_nothing_and_never_go_back() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, "rtjoin").await;
    let viewer = app.token(&f.org, Role::Viewer).await;
    let supervisor = app.token(&f.org, Role::Supervisor).await;
    let query = "subscription { agentStates { kind resync removedAgentIds agents { id presence presenceSince } } }";
    let mut first = app.subscribe(&viewer, query, json!({})).await;
    let first_snapshot = first.expect_data("agentStates").await;

    // Changes at a steady pace while new subscribers join the shared stream.
    let changer = {
        let (app_url, agents, supervisor) = (app.url("/graphql"), f.agents.clone(), supervisor.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let presences = ["LUNCH", "AWAY", "AVAILABLE", "MEETING"];
            let mut last = std::collections::HashMap::new();
            for i in 0..40 {
                let agent = agents[i % agents.len()];
                let presence = presences[(i / agents.len()) % presences.len()];
                let body: Value = http
                    .post(&app_url)
                    .bearer_auth(&supervisor)
                    .json(&json!({ "query": SET_PRESENCE, "variables": { "a": agent.to_string(), "p": presence } }))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert!(body.get("errors").is_none(), "{body}");
                last.insert(agent.to_string(), presence.to_owned());
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            last
        })
    };
    let mut joined = vec![first];
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        joined.push(app.subscribe(&viewer, query, json!({})).await);
    }
    let last = changer.await.unwrap();
    let mut views = Vec::new();
    for (i, ws) in joined.iter_mut().enumerate() {
        let mut view = std::collections::HashMap::new();
        if i == 0 {
            fold_view(&mut view, &first_snapshot);
        }
        while let Some(update) = ws.next_data("agentStates", Duration::from_millis(1_500)).await {
            assert_eq!(update["resync"], false, "nobody fell behind here: {update}");
            fold_view(&mut view, &update);
        }
        for (agent, presence) in &last {
            assert_eq!(&view[agent].0, presence, "agent {agent} ends in its last presence");
        }
        views.push(view);
    }
    assert!(
        views.iter().all(|v| *v == views[0]),
        "every subscriber ends with the same view"
    );
}

//! `recordCallEvents`, the call lifecycle, agents' routing state, `setDisposition` and the
//! interaction queries, through GraphQL against a real database.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;
mod ingest_support;

use chrono::TimeDelta;
use common::TestApp;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::future::join_all;
use ingest_support::*;
use omnivox::auth::Role;
use omnivox::db::{self, calls};
use omnivox::kpi::plan::{aggregate_windows, Sourcing};
use omnivox::kpi::query::Scope;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

const TRIAL_SEEDS: [u64; 5] = [1, 7, 42, 1_234, 99_991];

fn whole_day_windows() -> Vec<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> {
    let mut windows = hours("08:00:00", 5);
    // Windows with partial hours at their edges, and one inside a single hour.
    windows.push((t("09:15:00"), t("11:30:00")));
    windows.push((t("09:59:00"), t("10:01:00")));
    windows.push((t("08:00:00"), t("13:00:00")));
    windows
}

async fn assert_all_rollups_match(app: &TestApp, f: &Fixture) {
    let windows = whole_day_windows();
    let scopes = [
        Scope::default(),
        Scope {
            campaign_ids: Some(vec![f.inbound]),
            ..Scope::default()
        },
        Scope {
            campaign_ids: Some(vec![f.outbound]),
            ..Scope::default()
        },
        Scope {
            agent_ids: Some(vec![f.agents[1]]),
            ..Scope::default()
        },
        Scope {
            agent_ids: Some(f.agents.clone()),
            campaign_ids: Some(vec![f.inbound]),
            ..Scope::default()
        },
        Scope {
            direction: Some(omnivox::domain::Direction::Outbound),
            ..Scope::default()
        },
    ];
    for scope in &scopes {
        assert_rollups_match_raw(app, &f.tenant, &windows, scope).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn in_order_delivery_gives_the_hand_computed_calls() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, "ordered").await;
    let specs = calls(&f, "");
    let response = record(&app, &f.admin, &in_order(&specs)).await;
    let payload = &response.ok()["recordCallEvents"];
    assert_eq!(payload["rejected"], 0, "{payload}");
    assert_eq!(payload["duplicates"], 0);
    assert_eq!(stored(&app, &f, "").await, expected(&f, "", &specs));
    assert_all_rollups_match(&app, &f).await;
}

/// Random orders, repetitions and batch splits (some batches concurrent) converge to the same
/// rows as in-order delivery, and to the same KPIs as the final calls inserted directly with
/// the rollup writer; rollups equal a direct computation from the rows after every trial.
#[tokio::test(flavor = "multi_thread")]
async fn any_order_and_repetition_converge_to_the_same_calls_and_kpis() {
    let app = TestApp::spawn().await;
    // The reference: the hand-computed rows, inserted directly through the rollup writer.
    let reference = fixture(&app, "reference").await;
    let reference_specs = calls(&reference, "");
    {
        let mut conn = app.state.system_db.get().await.unwrap();
        let rows: Vec<_> = reference_specs.iter().map(|s| s.expected.clone()).collect();
        omnivox::kpi::writer::insert_calls(&mut conn, &reference.tenant, &rows)
            .await
            .unwrap();
    }
    let windows = [
        (t("09:00:00"), t("12:00:00")),
        (t("09:15:00"), t("11:30:00")),
        (t("10:00:00"), t("11:00:00")),
        (t("09:59:00"), t("10:01:00")),
    ];
    let mut reference_kpis = Vec::new();
    for (from, to) in windows {
        reference_kpis.push(summary(&app, &reference.admin, from, to, json!({})).await);
        let campaign = json!({ "campaignIds": [reference.outbound.to_string()] });
        reference_kpis.push(summary(&app, &reference.admin, from, to, campaign).await);
    }
    assert_eq!(reference_kpis[0]["offered"], 8, "{}", reference_kpis[0]);

    for seed in TRIAL_SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        let f = fixture(&app, &format!("trial-{seed}")).await;
        let specs = calls(&f, "");
        let delivered = shuffled(&mut rng, &in_order(&specs), 15);
        let total = delivered.len();
        let mut accepted = 0;
        let mut duplicates = 0;
        for group in batches(&mut rng, delivered).chunks(3) {
            let responses = join_all(group.iter().map(|batch| record(&app, &f.admin, batch))).await;
            for response in responses {
                let payload = &response.ok()["recordCallEvents"];
                assert_eq!(payload["rejected"], 0, "seed {seed}: {payload}");
                accepted += payload["accepted"].as_i64().unwrap();
                duplicates += payload["duplicates"].as_i64().unwrap();
            }
        }
        let distinct = in_order(&specs).len() as i64;
        assert_eq!(accepted, distinct, "seed {seed}: each distinct event is stored once");
        assert_eq!(accepted + duplicates, total as i64);
        assert_eq!(count_rows(&app, "call_events", f.org.id).await, distinct);
        assert_eq!(
            stored(&app, &f, "").await,
            expected(&f, "", &specs),
            "seed {seed}: rows differ from in-order delivery"
        );
        assert_all_rollups_match(&app, &f).await;
        let mut kpis = Vec::new();
        for (from, to) in windows {
            kpis.push(summary(&app, &f.admin, from, to, json!({})).await);
            kpis.push(
                summary(
                    &app,
                    &f.admin,
                    from,
                    to,
                    json!({ "campaignIds": [f.outbound.to_string()] }),
                )
                .await,
            );
        }
        assert_eq!(
            kpis, reference_kpis,
            "seed {seed}: KPIs after ingest differ from KPIs of the same calls inserted directly"
        );
    }
}

/// Every agent AVAILABLE 08:00–13:00, written the same way in every organization of a test,
/// so occupancy (routing time on calls and wrap-up over AVAILABLE time) has a denominator.
async fn available_all_morning(app: &TestApp, f: &Fixture) {
    use omnivox::db::contact_centre::NewStateInterval;
    use omnivox::domain::{AgentState, Presence};
    let intervals: Vec<NewStateInterval> = f
        .agents
        .iter()
        .map(|agent_id| NewStateInterval {
            agent_id: *agent_id,
            state: AgentState::Presence(Presence::Available),
            reason: None,
            started_at: t("08:00:00"),
            ended_at: Some(t("13:00:00")),
        })
        .collect();
    let mut conn = app.state.system_db.get().await.unwrap();
    omnivox::kpi::writer::insert_state_intervals(&mut conn, &f.tenant, &intervals)
        .await
        .unwrap();
}

const AGENT_TIME: &str = "query($f: KpiFilter!) { kpiSummary(filter: $f) { occupancy callsPerAgentHour
    explain { metric numerator denominator } } }";

/// What the agents' state log says: each agent's ROUTING intervals and current routing state,
/// and occupancy and calls per agent hour per agent and for all, over whole and partial hours.
async fn agent_history(app: &TestApp, f: &Fixture) -> Vec<Value> {
    let mut out = Vec::new();
    for agent in &f.agents {
        let log: Vec<String> = routing_log(app, *agent)
            .await
            .into_iter()
            .map(|r| format!("{} {} {:?}", r.state, r.started_at, r.ended_at))
            .collect();
        out.push(json!({ "log": log, "now": format!("{:?}", routing_state(app, f, *agent).await) }));
    }
    let scopes: Vec<Value> = std::iter::once(json!({}))
        .chain(f.agents.iter().map(|a| json!({ "agentIds": [a.to_string()] })))
        .collect();
    for (from, to) in [(t("08:00:00"), t("13:00:00")), (t("09:10:00"), t("10:35:00"))] {
        for scope in &scopes {
            let mut filter = json!({ "from": from.to_rfc3339(), "to": to.to_rfc3339() });
            filter
                .as_object_mut()
                .unwrap()
                .extend(scope.as_object().unwrap().clone());
            let response = app.gql(Some(&f.admin), AGENT_TIME, json!({ "f": filter })).await;
            out.push(response.ok()["kpiSummary"].clone());
        }
    }
    out
}

/// docs/KPIS.md §5: agent time is a function of the stored events, not of their arrival
/// order. Calls delivered shuffled, repeated, split in concurrent batches (late events among
/// them) leave every agent the same routing log, current state, rollups and occupancy as
/// in-order delivery.
#[tokio::test(flavor = "multi_thread")]
async fn agent_time_and_occupancy_do_not_depend_on_arrival_order() {
    let app = TestApp::spawn().await;
    let reference = fixture(&app, "agents-in-order").await;
    available_all_morning(&app, &reference).await;
    let response = record(&app, &reference.admin, &in_order(&calls(&reference, ""))).await;
    assert_eq!(response.ok()["recordCallEvents"]["rejected"], 0);
    let want = agent_history(&app, &reference).await;
    assert!(
        want[4]["occupancy"].as_f64().is_some_and(|o| o > 0.0),
        "the reference has agent time on calls: {}",
        want[4]
    );
    for seed in TRIAL_SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        let f = fixture(&app, &format!("agents-{seed}")).await;
        available_all_morning(&app, &f).await;
        let delivered = shuffled(&mut rng, &in_order(&calls(&f, "")), 10);
        for group in batches(&mut rng, delivered).chunks(3) {
            for response in join_all(group.iter().map(|batch| record(&app, &f.admin, batch))).await {
                assert_eq!(response.ok()["recordCallEvents"]["rejected"], 0, "seed {seed}");
            }
        }
        let got = agent_history(&app, &f).await;
        // Agent ids differ per organization: compare the logs and figures, not the ids.
        assert_eq!(got, want, "seed {seed}: agent time differs from in-order delivery");
        assert_all_rollups_match(&app, &f).await;
        assert_agent_time_rollups_match(&app, &f, &hours("07:00:00", 7)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_event_many_times_changes_state_once() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, "repeats").await;
    let specs = calls(&f, "");
    let c01 = &specs[0].events;
    let repeated: Vec<Value> = std::iter::repeat_n(c01[0].clone(), 4).collect();
    let payload = record(&app, &f.admin, &repeated).await.ok()["recordCallEvents"].clone();
    assert_eq!(
        (payload["accepted"].as_i64(), payload["duplicates"].as_i64()),
        (Some(1), Some(3))
    );
    let statuses: Vec<&str> = payload["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["ACCEPTED", "DUPLICATE", "DUPLICATE", "DUPLICATE"]);
    record(&app, &f.admin, c01).await.ok();
    let before = stored(&app, &f, "").await;
    let log_before = count_rows(&app, "agent_state_log", f.org.id).await;
    let counters_before = raw(&app, &f.tenant, t("09:00:00"), t("10:00:00")).await;
    for _ in 0..3 {
        let payload = record(&app, &f.admin, c01).await.ok()["recordCallEvents"].clone();
        assert_eq!(payload["accepted"], 0);
        assert_eq!(payload["duplicates"].as_i64(), Some(c01.len() as i64));
        let ids: Vec<&Value> = payload["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["interactionId"])
            .collect();
        assert!(
            ids.windows(2).all(|w| w[0] == w[1]) && ids[0].is_string(),
            "every result names the call"
        );
    }
    assert_eq!(stored(&app, &f, "").await, before);
    assert_eq!(count_rows(&app, "call_events", f.org.id).await, c01.len() as i64);
    assert_eq!(
        count_rows(&app, "agent_state_log", f.org.id).await,
        log_before,
        "repeats do not move the agent"
    );
    assert_eq!(
        raw(&app, &f.tenant, t("09:00:00"), t("10:00:00")).await,
        counters_before
    );
    assert_rollups_match_raw(&app, &f.tenant, &hours("09:00:00", 1), &Scope::default()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn late_events_never_move_a_call_backwards() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, "late").await;
    let a0 = f.agents[0].to_string();
    let query =
        "query($x: String!) { interactionByExternalId(externalId: $x) { outcome answeredAt endedAt waitMs talkMs } }";
    record(
        &app,
        &f.admin,
        &[
            ev("LATE-1", "ENDED", t("09:05:00")),
            with(ev("LATE-1", "ANSWERED", t("09:01:00")), "agentId", a0.clone()),
        ],
    )
    .await
    .ok();
    let ended = app.gql(Some(&f.admin), query, json!({ "x": "LATE-1" })).await.ok()["interactionByExternalId"].clone();
    assert_eq!(ended["outcome"], "ANSWERED");
    // The offer and the ringing arrive last: the call stays ended and answered.
    record(
        &app,
        &f.admin,
        &[
            ev("LATE-1", "RINGING", t("09:00:40")),
            ev("LATE-1", "OFFERED", t("09:00:30")),
        ],
    )
    .await
    .ok();
    let after = app.gql(Some(&f.admin), query, json!({ "x": "LATE-1" })).await.ok()["interactionByExternalId"].clone();
    assert_eq!(after["outcome"], "ANSWERED");
    assert_eq!(after["endedAt"], ended["endedAt"]);
    assert_eq!(after["waitMs"], 30_000, "the late offer gives the call its wait");
    assert_eq!(after["talkMs"], 240_000);
    // An inbound call first seen ended is abandoned; its late answer makes it answered, and
    // the longest wait of its hour follows (the maximum is recomputed, not kept).
    record(
        &app,
        &f.admin,
        &[
            ev("LATE-2", "OFFERED", t("09:10:00")),
            ev("LATE-2", "ENDED", t("09:20:00")),
        ],
    )
    .await
    .ok();
    assert_eq!(
        raw(&app, &f.tenant, t("09:00:00"), t("10:00:00")).await.max_wait_ms,
        Some(600_000)
    );
    assert_rollups_match_raw(&app, &f.tenant, &hours("09:00:00", 1), &Scope::default()).await;
    record(&app, &f.admin, &[ev("LATE-2", "ANSWERED", t("09:10:20"))])
        .await
        .ok();
    let late2 = app.gql(Some(&f.admin), query, json!({ "x": "LATE-2" })).await.ok()["interactionByExternalId"].clone();
    assert_eq!(
        (late2["outcome"].as_str(), late2["waitMs"].as_i64()),
        (Some("ANSWERED"), Some(20_000))
    );
    assert_eq!(
        raw(&app, &f.tenant, t("09:00:00"), t("10:00:00")).await.max_wait_ms,
        Some(30_000)
    );
    assert_rollups_match_raw(&app, &f.tenant, &hours("08:00:00", 3), &Scope::default()).await;
    assert_rollups_match_raw(
        &app,
        &f.tenant,
        &hours("09:00:00", 1),
        &Scope {
            agent_ids: Some(vec![f.agents[0]]),
            ..Scope::default()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_bad_event_does_not_sink_the_batch() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, "mixed").await;
    let now = chrono::Utc::now();
    let events = vec![
        ev("GOOD-1", "OFFERED", t("09:00:00")),
        with(
            ev("BAD-1", "RINGING", t("09:00:01")),
            "agentId",
            uuid::Uuid::new_v4().to_string(),
        ),
        with(ev("BAD-2", "RINGING", t("09:00:01")), "agentId", "not-an-id"),
        ev("BAD-3", "OFFERED", now + TimeDelta::days(2)),
        ev("BAD-4", "OFFERED", at("2025-12-31T23:59:59Z")),
        with(
            ev("BAD-5", "WRAP_UP_ENDED", t("09:05:00")),
            "dispositionCode",
            "NOT_A_CODE",
        ),
        with(ev("BAD-6", "ANSWERED", t("09:05:00")), "dispositionCode", "SALE"),
        ev("", "OFFERED", t("09:00:00")),
        with(ev("BAD-8", "OFFERED", t("09:00:00")), "sequenceNumber", -1),
        with(ev("BAD-9", "OFFERED", t("09:00:00")), "customerNumber", "+44 <script>"),
        with(ev("BAD-10", "RINGING", t("09:00:00")), "endReason", "BUSY"),
        ev("GOOD-1", "ENDED", t("09:00:30")),
    ];
    let payload = record(&app, &f.admin, &events).await.ok()["recordCallEvents"].clone();
    assert_eq!(
        (payload["accepted"].as_i64(), payload["rejected"].as_i64()),
        (Some(2), Some(10)),
        "{payload}"
    );
    let results = payload["results"].as_array().unwrap();
    let reason = |i: usize| results[i]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason(1).contains("agentId is unknown"), "{}", reason(1));
    assert!(reason(2).contains("agentId is not a valid id"));
    assert!(reason(3).contains("occurredAt is in the future"));
    assert!(reason(4).contains("before the organization's history horizon"));
    assert!(reason(5).contains("not an active disposition"));
    assert!(reason(6).contains("only allowed on WRAP_UP_ENDED"));
    assert!(reason(7).contains("externalId"));
    assert!(reason(8).contains("sequenceNumber"));
    assert!(reason(9).contains("customerNumber"));
    assert!(reason(10).contains("endReason"));
    assert_eq!(results[0]["status"], "ACCEPTED");
    assert!(results[1]["interactionId"].is_null());
    assert_eq!(
        count_rows(&app, "interactions", f.org.id).await,
        1,
        "only the valid call exists"
    );
    assert_eq!(count_rows(&app, "call_events", f.org.id).await, 2);

    // A bad event type, or more than 1,000 events, is refused as a whole.
    let bad_type = app
        .gql(
            Some(&f.admin),
            RECORD,
            json!({ "e": [ev("X", "EXPLODED", t("09:00:00"))] }),
        )
        .await;
    assert!(bad_type.body["errors"].is_array(), "{}", bad_type.body);
    let too_many: Vec<Value> = (0..1_001)
        .map(|n| ev(&format!("MANY-{n}"), "OFFERED", t("09:00:00")))
        .collect();
    let response = record(&app, &f.admin, &too_many).await;
    assert_eq!(response.error_code(), Some("BAD_USER_INPUT"), "{}", response.body);
    assert!(response.error_message().unwrap().contains("at most 1000"));
    assert_eq!(count_rows(&app, "call_events", f.org.id).await, 2);
    // Exactly 1,000 is fine.
    let thousand: Vec<Value> = (0..1_000)
        .map(|n| ev(&format!("MANY-{n}"), "OFFERED", t("09:00:00")))
        .collect();
    assert_eq!(
        record(&app, &f.admin, &thousand).await.ok()["recordCallEvents"]["accepted"],
        1_000
    );
}

#[derive(diesel::QueryableByName, Debug, PartialEq, Eq)]
struct LogRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    state: String,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    started_at: chrono::DateTime<chrono::Utc>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    ended_at: Option<chrono::DateTime<chrono::Utc>>,
}

async fn routing_log(app: &TestApp, agent: uuid::Uuid) -> Vec<LogRow> {
    let mut conn = AsyncPgConnection::establish(&app.database.url).await.unwrap();
    diesel::sql_query(
        "SELECT state, started_at, ended_at FROM agent_state_log WHERE agent_id = $1 AND axis = 'ROUTING' ORDER BY started_at, id",
    )
    .bind::<diesel::sql_types::Uuid, _>(agent)
    .load(&mut conn)
    .await
    .unwrap()
}

async fn routing_state(app: &TestApp, f: &Fixture, agent: uuid::Uuid) -> (String, chrono::DateTime<chrono::Utc>) {
    let mut conn = app.state.system_db.get().await.unwrap();
    let states = calls::lock_agent_states(&mut conn, &f.tenant, &[agent]).await.unwrap();
    (states[0].1.as_str().to_owned(), states[0].2)
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_routing_state_follows_their_calls() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, "routing").await;
    let agent = f.agents[1];
    let a = agent.to_string();
    let mut bus = app.state.bus.subscribe(omnivox::realtime::Topic::AgentState);
    let mut interactions = app.state.bus.subscribe(omnivox::realtime::Topic::Interactions);
    let mut kpis = app.state.bus.subscribe(omnivox::realtime::Topic::KpiInvalidation);
    let steps = [
        (
            with(ev("R-1", "RINGING", t("09:00:05")), "agentId", a.clone()),
            "RINGING",
            t("09:00:05"),
        ),
        (
            with(ev("R-1", "ANSWERED", t("09:00:10")), "agentId", a.clone()),
            "ON_CALL",
            t("09:00:10"),
        ),
        (ev("R-1", "ENDED", t("09:03:10")), "WRAP_UP", t("09:03:10")),
        (ev("R-1", "WRAP_UP_ENDED", t("09:03:40")), "IDLE", t("09:03:40")),
    ];
    for (event, state, since) in &steps {
        record(&app, &f.admin, std::slice::from_ref(event)).await.ok();
        assert_eq!(routing_state(&app, &f, agent).await, ((*state).to_owned(), *since));
    }
    let log = routing_log(&app, agent).await;
    let expected = [
        ("IDLE", t("00:00:00"), Some(t("09:00:05"))),
        ("RINGING", t("09:00:05"), Some(t("09:00:10"))),
        ("ON_CALL", t("09:00:10"), Some(t("09:03:10"))),
        ("WRAP_UP", t("09:03:10"), Some(t("09:03:40"))),
        ("IDLE", t("09:03:40"), None),
    ];
    let expected: Vec<LogRow> = expected
        .iter()
        .map(|(s, a, b)| LogRow {
            state: (*s).to_owned(),
            started_at: *a,
            ended_at: *b,
        })
        .collect();
    assert_eq!(log, expected);

    // A late event older than the agent's current state does not move the agent back.
    record(
        &app,
        &f.admin,
        &[with(ev("R-0", "RINGING", t("08:00:00")), "agentId", a.clone())],
    )
    .await
    .ok();
    assert_eq!(routing_state(&app, &f, agent).await, ("IDLE".to_owned(), t("09:03:40")));
    assert_eq!(routing_log(&app, agent).await.len(), 5);

    // Agent time in the rollups equals the state log.
    let mut conn = app.state.system_db.get().await.unwrap();
    let scope = Scope {
        agent_ids: Some(vec![agent]),
        ..Scope::default()
    };
    let hour = [(t("09:00:00"), t("10:00:00"))];
    let rolled = aggregate_windows(&mut conn, &f.tenant, &hour, &scope, Sourcing::HourlyRollupsOnly)
        .await
        .unwrap()[0]
        .agents;
    let direct = aggregate_windows(&mut conn, &f.tenant, &hour, &scope, Sourcing::RawOnly)
        .await
        .unwrap()[0]
        .agents;
    assert_eq!(rolled, direct);
    assert_eq!(direct.on_call_us, 180_000_000, "{direct:?}");

    // Each change was published after commit.
    let mut topics = Vec::new();
    for receiver in [&mut bus, &mut interactions, &mut kpis] {
        while let Ok(signal) = receiver.try_recv() {
            if let omnivox::realtime::Signal::Event(event) = signal {
                // The payload as it travels on Redis (the envelope's `payload`).
                let wire = serde_json::to_value(&*event).unwrap();
                topics.push((event.topic(), wire["payload"].clone()));
            }
        }
    }
    let agent_states: Vec<&Value> = topics
        .iter()
        .filter(|(t, _)| *t == omnivox::realtime::Topic::AgentState)
        .map(|(_, p)| p)
        .collect();
    assert_eq!(agent_states.len(), 4, "{topics:?}");
    assert_eq!(agent_states[1]["state"], "ON_CALL");
    assert!(topics.iter().any(|(t, _)| *t == omnivox::realtime::Topic::Interactions));
    assert!(topics
        .iter()
        .any(|(t, _)| *t == omnivox::realtime::Topic::KpiInvalidation));
}

const SET_DISPOSITION: &str = "mutation($i: ID!, $c: String!, $n: String) {
    setDisposition(interactionId: $i, dispositionCode: $c, notes: $n) { id dispositionCode notes } }";

#[tokio::test(flavor = "multi_thread")]
async fn set_disposition_is_own_calls_for_agents_and_kpis_follow() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, "dispose").await;
    let specs = calls(&f, "");
    record(&app, &f.admin, &in_order(&specs)).await.ok();
    let mut conn = app.state.system_db.get().await.unwrap();
    let by_ext = db::interactions::interactions_by_external_ids(
        &mut conn,
        &f.tenant,
        &["C05".into(), "C01".into(), "C11".into()],
    )
    .await
    .unwrap();
    let (own, other) = (by_ext["C01"].id.to_string(), by_ext["C05"].id.to_string());
    let agent = app.token(&f.org, Role::Agent).await;
    let supervisor = app.token(&f.org, Role::Supervisor).await;

    let before = summary(&app, &f.admin, t("09:00:00"), t("12:00:00"), json!({})).await;
    assert_eq!(
        before["conversionRate"], 100.0,
        "C05, the one outbound contact, is a sale: {before}"
    );

    // An agent disposes their own call.
    let response = app
        .gql(
            Some(&agent),
            SET_DISPOSITION,
            json!({ "i": own, "c": "CALLBACK", "n": "call back Friday" }),
        )
        .await;
    assert_eq!(response.ok()["setDisposition"]["dispositionCode"], "CALLBACK");
    assert_eq!(response.ok()["setDisposition"]["notes"], "call back Friday");
    // Another agent's call is as unknown as another organization's.
    let response = app
        .gql(Some(&agent), SET_DISPOSITION, json!({ "i": other, "c": "NO_SALE" }))
        .await;
    assert_eq!(response.error_code(), Some("NOT_FOUND"));
    // A supervisor disposes any call; the outbound sale becomes a no-sale and KPIs follow.
    let response = app
        .gql(
            Some(&supervisor),
            SET_DISPOSITION,
            json!({ "i": other, "c": "NO_SALE" }),
        )
        .await;
    assert_eq!(response.ok()["setDisposition"]["dispositionCode"], "NO_SALE");
    let after = summary(&app, &f.admin, t("09:00:00"), t("12:00:00"), json!({})).await;
    assert_eq!(after["conversionRate"], 0.0, "{after}");
    assert_rollups_match_raw(&app, &f.tenant, &hours("08:00:00", 5), &Scope::default()).await;
    // Unknown codes, and a viewer, are refused.
    let response = app
        .gql(Some(&supervisor), SET_DISPOSITION, json!({ "i": other, "c": "NOPE" }))
        .await;
    assert_eq!(response.error_code(), Some("BAD_USER_INPUT"));
    let viewer = app.token(&f.org, Role::Viewer).await;
    let response = app
        .gql(Some(&viewer), SET_DISPOSITION, json!({ "i": own, "c": "SALE" }))
        .await;
    assert_eq!(response.error_code(), Some("FORBIDDEN"));
    // The disposition survives a late repeat of the call's wrap-up event (an older time).
    record(&app, &f.admin, &specs[4].events).await.ok();
    let row = db::interactions::interaction_by_external_id(&mut conn, &f.tenant, "C05")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(f.disposition_code(row.disposition_id), Some("NO_SALE"));
    // Both changes are in the audit chain, which stays intact.
    let audit = omnivox::audit::recent(&mut conn, Some(f.org.id), 20).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|r| r.action == "interaction.set_disposition")
            .count(),
        2
    );
    assert!(omnivox::audit::verify_chain(&mut conn, Some(f.org.id))
        .await
        .unwrap()
        .intact());
}

const LIST: &str = "query($f: InteractionFilter, $first: Int, $after: String) {
    interactions(filter: $f, first: $first, after: $after) {
        totalCount pageInfo { hasNextPage endCursor } edges { node { externalId customerNumber agentId outcome } } } }";

#[tokio::test(flavor = "multi_thread")]
async fn interactions_are_scoped_and_masked_by_role() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, "listing").await;
    let specs = calls(&f, "");
    record(&app, &f.admin, &in_order(&specs)).await.ok();
    let supervisor = app.token(&f.org, Role::Supervisor).await;
    let agent = app.token(&f.org, Role::Agent).await;

    let all = app.gql(Some(&supervisor), LIST, json!({ "first": 100 })).await;
    let all = &all.ok()["interactions"];
    assert_eq!(all["totalCount"], 12);
    let first = &all["edges"][0]["node"];
    assert_eq!(first["externalId"], "C12", "newest offer first");
    let c11 = all["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["externalId"] == "C11")
        .unwrap();
    assert_eq!(c11["node"]["customerNumber"], "+447700900011");

    // Pages of 5 walk through every call once.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = app
            .gql(Some(&supervisor), LIST, json!({ "first": 5, "after": after }))
            .await;
        let page = page.ok()["interactions"].clone();
        seen.extend(
            page["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["externalId"].as_str().unwrap().to_owned()),
        );
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    seen.sort();
    let mut ids: Vec<String> = specs.iter().map(|s| s.external_id.clone()).collect();
    ids.sort();
    assert_eq!(seen, ids);

    // An agent sees their own calls (agent 0: C01 and C10), numbers masked.
    let own = app.gql(Some(&agent), LIST, json!({ "first": 100 })).await;
    let own = &own.ok()["interactions"];
    let mut own_ids: Vec<&str> = own["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["externalId"].as_str().unwrap())
        .collect();
    own_ids.sort();
    assert_eq!(own_ids, ["C01", "C10"]);
    assert_eq!(own["totalCount"], 2);
    assert_eq!(own["edges"][1]["node"]["customerNumber"], "+44******0001");
    // Asking for another agent's calls gives nothing.
    let filtered = app
        .gql(
            Some(&agent),
            LIST,
            json!({ "f": { "agentIds": [f.agents[2].to_string()] } }),
        )
        .await;
    assert_eq!(filtered.ok()["interactions"]["totalCount"], 0);
    let by_ext = "query($x: String!) { interactionByExternalId(externalId: $x) { externalId customerNumber } }";
    assert_eq!(
        app.gql(Some(&agent), by_ext, json!({ "x": "C05" })).await.error_code(),
        Some("NOT_FOUND")
    );
    let c01 = app.gql(Some(&agent), by_ext, json!({ "x": "C01" })).await;
    assert_eq!(c01.ok()["interactionByExternalId"]["customerNumber"], "+44******0001");
    let c01 = app.gql(Some(&supervisor), by_ext, json!({ "x": "C01" })).await;
    assert_eq!(c01.ok()["interactionByExternalId"]["customerNumber"], "+447700900001");

    // Filters.
    let outbound = app
        .gql(
            Some(&supervisor),
            LIST,
            json!({ "f": { "direction": "OUTBOUND", "outcome": "ANSWERED" } }),
        )
        .await;
    assert_eq!(outbound.ok()["interactions"]["totalCount"], 2);
    let window = json!({ "f": { "offeredFrom": t("10:00:00").to_rfc3339(), "offeredTo": t("11:00:00").to_rfc3339() } });
    assert_eq!(
        app.gql(Some(&supervisor), LIST, window).await.ok()["interactions"]["totalCount"],
        5
    );
    let by_id = "query($i: ID!) { interaction(id: $i) { externalId } }";
    let missing = app
        .gql(
            Some(&supervisor),
            by_id,
            json!({ "i": uuid::Uuid::new_v4().to_string() }),
        )
        .await;
    assert_eq!(missing.error_code(), Some("NOT_FOUND"));
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_is_tenant_scoped() {
    let app = TestApp::spawn().await;
    let a = fixture(&app, "tenant-a").await;
    let b = fixture(&app, "tenant-b").await;
    // An agent of organization B is unknown to organization A.
    let payload = record(
        &app,
        &a.admin,
        &[with(
            ev("X-1", "ANSWERED", t("09:00:00")),
            "agentId",
            b.agents[0].to_string(),
        )],
    )
    .await;
    assert_eq!(payload.ok()["recordCallEvents"]["rejected"], 1);
    // The same external id in two organizations is two calls.
    record(&app, &a.admin, &[ev("SHARED", "OFFERED", t("09:00:00"))])
        .await
        .ok();
    record(&app, &b.admin, &[ev("SHARED", "OFFERED", t("09:30:00"))])
        .await
        .ok();
    let mut conn = app.state.system_db.get().await.unwrap();
    let in_a = db::interactions::interaction_by_external_id(&mut conn, &a.tenant, "SHARED")
        .await
        .unwrap()
        .unwrap();
    let in_b = db::interactions::interaction_by_external_id(&mut conn, &b.tenant, "SHARED")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((in_a.offered_at, in_b.offered_at), (t("09:00:00"), t("09:30:00")));
}

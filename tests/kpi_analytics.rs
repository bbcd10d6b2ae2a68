//! Performance and analytics views: `agentPerformance`, `campaignPerformance`,
//! `dispositionBreakdown`, `analytics` and `complianceStatus`. Every number is checked against
//! `kpiSummary` over the same slice (one registry), or against counts taken by hand from the
//! seeded calls; plus row-level visibility, pagination, refused combinations and tenancy.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use common::fixture::{AgentSpec, CampaignSpec, DispositionSpec, FixtureOrg, FixtureOrgBuilder};
use common::TestApp;
use omnivox::auth::{Role, Tenant};
use omnivox::db::contact_centre::NewStateInterval;
use omnivox::db::interactions::NewInteraction;
use omnivox::domain::{AgentState, AnsweredBy, Direction, Outcome, Presence, RoutingState};
use omnivox::kpi::writer::{insert_calls, insert_state_intervals};
use serde_json::{json, Value};
use uuid::Uuid;

/// Every metric field of `KpiValues`.
const METRICS: &str = "start end offered answered handled abandoned shortAbandoned serviceLevel serviceLevelVariant
  serviceLevelThresholdSeconds averageSpeedOfAnswer averageHandleTime averageTalkTime averageHoldTime averageWrapTime
  abandonRate longestWait occupancy contactRate conversionRate callsPerAgentHour outboundAbandonRateUk outboundAbandonRateUs";

/// `MetricName` values and the `KpiValues` field of the same registry metric.
const METRIC_FIELDS: [(&str, &str); 8] = [
    ("OFFERED", "offered"),
    ("HANDLED", "handled"),
    ("AVERAGE_HANDLE_TIME", "averageHandleTime"),
    ("SERVICE_LEVEL", "serviceLevel"),
    ("OCCUPANCY", "occupancy"),
    ("CALLS_PER_AGENT_HOUR", "callsPerAgentHour"),
    ("CONTACT_RATE", "contactRate"),
    ("AVERAGE_SPEED_OF_ANSWER", "averageSpeedOfAnswer"),
];

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

#[derive(Clone, Copy)]
enum Kind {
    /// Inbound, answered by the agent and wrapped up.
    InboundHandled,
    /// Inbound, answered, wrap-up not finished.
    InboundOpen,
    /// Inbound, the caller hung up in the queue (no agent).
    InboundAbandoned,
    /// Outbound, a live person, handled by the agent.
    OutboundHandled,
    /// Outbound, answered by a machine (no agent).
    Machine,
    /// Outbound, a live person dropped for want of an agent.
    Drop,
}

struct CallSpec {
    kind: Kind,
    campaign: Uuid,
    agent: Option<Uuid>,
    at: DateTime<Utc>,
    wait_s: i64,
    talk_s: i64,
    hold_s: i64,
    wrap_s: i64,
    disposition: Option<Uuid>,
}

fn call(n: usize, spec: &CallSpec) -> NewInteraction {
    let ms = |s: i64| s * 1_000;
    let (direction, outcome, answered_by) = match spec.kind {
        Kind::InboundHandled | Kind::InboundOpen => (Direction::Inbound, Outcome::Answered, None),
        Kind::InboundAbandoned => (Direction::Inbound, Outcome::Abandoned, None),
        Kind::OutboundHandled => (Direction::Outbound, Outcome::Answered, Some(AnsweredBy::Human)),
        Kind::Machine => (Direction::Outbound, Outcome::Answered, Some(AnsweredBy::Machine)),
        Kind::Drop => (Direction::Outbound, Outcome::Abandoned, Some(AnsweredBy::Human)),
    };
    let connected = matches!(
        spec.kind,
        Kind::InboundHandled | Kind::InboundOpen | Kind::OutboundHandled
    );
    let answered_at = connected.then(|| spec.at + TimeDelta::seconds(spec.wait_s));
    let ended_at = match answered_at {
        Some(a) => a + TimeDelta::seconds(spec.talk_s + spec.hold_s),
        None => spec.at + TimeDelta::seconds(spec.wait_s),
    };
    let wrapped = matches!(spec.kind, Kind::InboundHandled | Kind::OutboundHandled);
    NewInteraction {
        campaign_id: Some(spec.campaign),
        agent_id: spec.agent,
        external_id: format!("CA{n:05}"),
        direction,
        customer_number: None,
        offered_at: spec.at,
        answered_at,
        ended_at: Some(ended_at),
        wrap_ended_at: wrapped.then(|| ended_at + TimeDelta::seconds(spec.wrap_s)),
        wait_ms: Some(ms(spec.wait_s)),
        talk_ms: if connected { ms(spec.talk_s) } else { 0 },
        hold_ms: if connected { ms(spec.hold_s) } else { 0 },
        wrap_ms: if wrapped { ms(spec.wrap_s) } else { 0 },
        outcome,
        disposition_id: spec.disposition,
        answered_by,
        notes: None,
    }
}

fn interval(agent: Uuid, state: AgentState, from: DateTime<Utc>, to: DateTime<Utc>) -> NewStateInterval {
    NewStateInterval {
        agent_id: agent,
        state,
        reason: None,
        started_at: from,
        ended_at: Some(to),
    }
}

struct Fixture {
    /// Alice (the org's AGENT login, team Blue), Bob (Blue), Carol (Red).
    agents: [Uuid; 3],
    blue: Uuid,
    care: Uuid,
    sales: Uuid,
    resolved: Uuid,
    sale: Uuid,
    callback: Uuid,
    machine: Uuid,
    calls: Vec<NewInteraction>,
}

const DAYS: [&str; 2] = ["2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z"];

/// An organization `slug` with two days of calls and agent states for three agents (Europe/London,
/// GMT in January).
async fn seed(app: &TestApp, slug: &str) -> (FixtureOrg, Fixture) {
    seed_with(app, slug, |org| org).await
}

/// [`seed`], with more for the organization (added after the seed's own campaigns etc.).
async fn seed_with(
    app: &TestApp,
    slug: &str,
    more: impl FnOnce(FixtureOrgBuilder) -> FixtureOrgBuilder,
) -> (FixtureOrg, Fixture) {
    let org = FixtureOrg::builder(slug)
        .teams(["Blue", "Red"])
        .agent(AgentSpec::new("Alice").team(0).user(Role::Agent))
        .agent(AgentSpec::new("Bob").team(0))
        .agent(AgentSpec::new("Carol").team(1))
        .state_since(at(DAYS[0]))
        .campaign(CampaignSpec::inbound("Care"))
        .campaign(CampaignSpec::outbound("Sales"))
        .disposition(DispositionSpec::new("RESOLVED").label("Resolved").contact())
        .disposition(DispositionSpec::new("SALE").label("Sale").contact().success())
        .disposition(DispositionSpec::new("CALLBACK").label("Callback").contact().callback())
        .disposition(DispositionSpec::new("MACHINE").label("Answering machine").machine());
    let org = more(org).build(&app.state).await;
    let agents: [Uuid; 3] = org.agents[..].try_into().unwrap();
    let blue = org.teams[0];
    let [care, sales, ..] = org.campaigns[..] else {
        unreachable!()
    };
    let [resolved, sale, callback, machine] = org.dispositions[..] else {
        panic!("four dispositions")
    };

    let mut specs = Vec::new();
    let mut states = Vec::new();
    for (di, day) in DAYS.iter().map(|d| at(d)).enumerate() {
        for (ai, agent) in agents.iter().copied().enumerate() {
            for k in 0..7usize {
                let minutes = (k * 83 + ai * 31 + di * 13) as i64;
                let offered =
                    day + TimeDelta::hours(8) + TimeDelta::minutes(minutes) + TimeDelta::seconds((k * 17) as i64);
                let kind = match (k + ai + di) % 6 {
                    0..=2 => Kind::InboundHandled,
                    3 => Kind::InboundOpen,
                    _ => Kind::OutboundHandled,
                };
                let inbound = !matches!(kind, Kind::OutboundHandled);
                let disposition = match kind {
                    Kind::InboundHandled if k % 2 == 0 => Some(resolved),
                    Kind::InboundHandled => Some(callback),
                    Kind::OutboundHandled if k % 2 == 0 => Some(sale),
                    Kind::OutboundHandled => Some(resolved),
                    _ => None,
                };
                specs.push(CallSpec {
                    kind,
                    campaign: if inbound { care } else { sales },
                    agent: Some(agent),
                    at: offered,
                    wait_s: ((k * 7 + ai * 11 + di * 5) % 45) as i64,
                    talk_s: 60 + ((k * 37 + ai * 23) % 300) as i64,
                    hold_s: ((k * 13) % 40) as i64,
                    wrap_s: 10 + ((k * 19 + di) % 50) as i64,
                    disposition,
                });
            }
            // Shift: available 08:00–12:00 and 13:00–17:30, a break at lunch.
            let h = |hours: i64, minutes: i64| day + TimeDelta::hours(hours) + TimeDelta::minutes(minutes);
            states.push(interval(
                agent,
                AgentState::Presence(Presence::Available),
                h(8, 0),
                h(12, 0),
            ));
            states.push(interval(
                agent,
                AgentState::Presence(Presence::Break),
                h(12, 0),
                h(13, 0),
            ));
            states.push(interval(
                agent,
                AgentState::Presence(Presence::Available),
                h(13, 0),
                h(17, 30),
            ));
        }
        // Bob works into the evening (18:00–19:00 UTC holds local midnight in Asia/Kolkata).
        let evening = |m: i64| day + TimeDelta::hours(18) + TimeDelta::minutes(m);
        states.push(interval(
            agents[1],
            AgentState::Presence(Presence::Available),
            evening(-30),
            evening(90),
        ));
        for (m, wait) in [(10, 5), (45, 30)] {
            specs.push(CallSpec {
                kind: Kind::InboundHandled,
                campaign: care,
                agent: Some(agents[1]),
                at: evening(m),
                wait_s: wait,
                talk_s: 200,
                hold_s: 0,
                wrap_s: 20,
                disposition: Some(resolved),
            });
        }
        // Calls no agent took.
        for (hm, kind, wait) in [
            ((9, 15), Kind::InboundAbandoned, 3),
            ((12, 45), Kind::InboundAbandoned, 25),
            ((15, 5), Kind::InboundAbandoned, 40),
            ((10, 30), Kind::Machine, 2),
            ((14, 20), Kind::Machine, 2),
            ((11, 11), Kind::Drop, 1),
        ] {
            let inbound = matches!(kind, Kind::InboundAbandoned);
            specs.push(CallSpec {
                kind,
                campaign: if inbound { care } else { sales },
                agent: None,
                at: day + TimeDelta::hours(hm.0) + TimeDelta::minutes(hm.1) + TimeDelta::seconds(7),
                wait_s: wait,
                talk_s: 0,
                hold_s: 0,
                wrap_s: 0,
                disposition: matches!(kind, Kind::Machine).then_some(machine),
            });
        }
    }
    let calls: Vec<NewInteraction> = specs.iter().enumerate().map(|(n, s)| call(n, s)).collect();
    // Routing states derived from the calls: on call from answer to end, wrap-up after.
    for c in &calls {
        if let (Some(agent), Some(answered), Some(ended)) = (c.agent_id, c.answered_at, c.ended_at) {
            states.push(interval(
                agent,
                AgentState::Routing(RoutingState::OnCall),
                answered,
                ended,
            ));
            if let Some(wrapped) = c.wrap_ended_at {
                states.push(interval(
                    agent,
                    AgentState::Routing(RoutingState::WrapUp),
                    ended,
                    wrapped,
                ));
            }
        }
    }
    let mut conn = app.state.system_db.get().await.unwrap();
    insert_calls(&mut conn, &org.tenant, &calls).await.unwrap();
    insert_state_intervals(&mut conn, &org.tenant, &states).await.unwrap();
    let fixture = Fixture {
        agents,
        blue,
        care,
        sales,
        resolved,
        sale,
        callback,
        machine,
        calls,
    };
    (org, fixture)
}

/// A filter that starts and ends inside an hour, so every view needs rollups and raw edges.
fn window() -> Value {
    json!({ "from": "2026-01-05T08:30:00Z", "to": "2026-01-06T17:45:00Z" })
}

fn with(filter: &Value, extra: Value) -> Value {
    let mut f = filter.clone();
    for (k, v) in extra.as_object().unwrap() {
        f[k] = v.clone();
    }
    f
}

async fn summary(app: &TestApp, token: &str, filter: Value) -> Value {
    let query = format!("query($f: KpiFilter!) {{ kpiSummary(filter: $f) {{ {METRICS} }} }}");
    app.gql(Some(token), &query, json!({ "f": filter })).await.ok()["kpiSummary"].clone()
}

fn field_names(errors: &Value) -> Vec<String> {
    errors[0]["extensions"]["fields"]
        .as_array()
        .map(|fields| {
            fields
                .iter()
                .map(|f| f["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

const AGENT_PERFORMANCE: &str =
    "query($f: KpiFilter!, $o: AgentPerformanceOrder, $first: Int, $after: String, $org: ID) {
  agentPerformance(filter: $f, orderBy: $o, first: $first, after: $after, orgId: $org) {
    totalCount pageInfo { hasNextPage hasPreviousPage endCursor }
    edges { cursor node { agentId displayName active team { id name } metrics { METRICS } } } } }";

fn agent_performance_query() -> String {
    AGENT_PERFORMANCE.replace("METRICS", METRICS)
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_performance_equals_kpi_summary_for_each_agent() {
    let app = TestApp::spawn().await;
    let (org, fx) = seed(&app, "acme").await;
    let supervisor = app.token(&org, Role::Supervisor).await;
    let filters = [
        window(),
        with(&window(), json!({ "campaignIds": [fx.care] })),
        with(&window(), json!({ "direction": "OUTBOUND", "teamIds": [fx.blue] })),
    ];
    for filter in filters {
        let response = app
            .gql(
                Some(&supervisor),
                &agent_performance_query(),
                json!({ "f": filter, "first": 50 }),
            )
            .await;
        let connection = &response.ok()["agentPerformance"];
        let edges = connection["edges"].as_array().unwrap();
        let expected_rows = if filter.get("teamIds").is_some() { 2 } else { 3 };
        assert_eq!(edges.len(), expected_rows, "{filter}");
        assert_eq!(connection["totalCount"], expected_rows);
        for edge in edges {
            let node = &edge["node"];
            let per_agent = summary(
                &app,
                &supervisor,
                with(&filter, json!({ "agentIds": [node["agentId"]] })),
            )
            .await;
            assert_eq!(node["metrics"], per_agent, "{} under {filter}", node["displayName"]);
        }
    }
    // The numbers are real: Alice handled calls and spent time on them.
    let response = app
        .gql(Some(&supervisor), &agent_performance_query(), json!({ "f": window() }))
        .await;
    let alice = &response.ok()["agentPerformance"]["edges"][0]["node"];
    assert_eq!(alice["displayName"], "Alice");
    assert_eq!(alice["team"]["name"], "Blue");
    assert!(alice["metrics"]["handled"].as_i64().unwrap() > 5);
    assert!(alice["metrics"]["occupancy"].as_f64().unwrap() > 0.0);
    assert!(alice["metrics"]["callsPerAgentHour"].as_f64().unwrap() > 0.0);
    assert_eq!(alice["agentId"], json!(fx.agents[0]));
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_see_only_their_own_row_and_viewers_none() {
    let app = TestApp::spawn().await;
    let (org, fx) = seed(&app, "acme").await;
    let other = app.create_org("other").await;
    let query = agent_performance_query();

    let agent = app.token(&org, Role::Agent).await;
    let own = app.gql(Some(&agent), &query, json!({ "f": window() })).await;
    let edges = own.ok()["agentPerformance"]["edges"].as_array().unwrap().clone();
    assert_eq!(edges.len(), 1);
    assert_eq!(edges[0]["node"]["agentId"], json!(fx.agents[0]));
    let supervisor = app.token(&org, Role::Supervisor).await;
    let expected = summary(
        &app,
        &supervisor,
        with(&window(), json!({ "agentIds": [fx.agents[0]] })),
    )
    .await;
    assert_eq!(edges[0]["node"]["metrics"], expected);

    // Asking for someone else's row yields nothing rather than their numbers.
    let others = app
        .gql(
            Some(&agent),
            &query,
            json!({ "f": with(&window(), json!({ "agentIds": [fx.agents[1]] })) }),
        )
        .await;
    assert_eq!(others.ok()["agentPerformance"]["totalCount"], 0);

    // An AGENT without an agent profile sees no row.
    let profileless = app.token(&other, Role::Agent).await;
    let none = app.gql(Some(&profileless), &query, json!({ "f": window() })).await;
    assert_eq!(none.ok()["agentPerformance"]["edges"], json!([]));

    let viewer = app.token(&org, Role::Viewer).await;
    let refused = app.gql(Some(&viewer), &query, json!({ "f": window() })).await;
    assert_eq!(refused.error_code(), Some("FORBIDDEN"));
    for field in [
        "campaignPerformance(filter: $f) { campaignId }",
        "dispositionBreakdown(filter: $f) { dispositionedCalls }",
    ] {
        let q = format!("query($f: KpiFilter!) {{ {field} }}");
        let response = app.gql(Some(&agent), &q, json!({ "f": window() })).await;
        assert_eq!(response.error_code(), Some("FORBIDDEN"), "{field}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_performance_is_ordered_and_paginated() {
    let app = TestApp::spawn().await;
    let (org, _) = seed(&app, "acme").await;
    let supervisor = app.token(&org, Role::Supervisor).await;
    let query = agent_performance_query();
    let order = json!({ "field": "AVERAGE_HANDLE_TIME", "direction": "DESC" });
    let all = app
        .gql(Some(&supervisor), &query, json!({ "f": window(), "o": order }))
        .await;
    let all: Vec<Value> = all.ok()["agentPerformance"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect();
    let aht: Vec<f64> = all
        .iter()
        .map(|n| n["metrics"]["averageHandleTime"].as_f64().unwrap())
        .collect();
    assert!(aht.windows(2).all(|w| w[0] >= w[1]), "descending: {aht:?}");

    let first = app
        .gql(
            Some(&supervisor),
            &query,
            json!({ "f": window(), "o": order, "first": 2 }),
        )
        .await;
    let page = &first.ok()["agentPerformance"];
    assert_eq!(page["edges"].as_array().unwrap().len(), 2);
    assert_eq!(page["totalCount"], 3);
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    assert_eq!(page["pageInfo"]["hasPreviousPage"], false);
    let after = page["pageInfo"]["endCursor"].as_str().unwrap();
    let second = app
        .gql(
            Some(&supervisor),
            &query,
            json!({ "f": window(), "o": order, "first": 2, "after": after }),
        )
        .await;
    let rest = &second.ok()["agentPerformance"];
    assert_eq!(rest["pageInfo"]["hasNextPage"], false);
    assert_eq!(rest["pageInfo"]["hasPreviousPage"], true);
    let paged: Vec<Value> = page["edges"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["edges"].as_array().unwrap())
        .map(|e| e["node"].clone())
        .collect();
    assert_eq!(paged, all);

    let by_name = app
        .gql(
            Some(&supervisor),
            &query,
            json!({ "f": window(), "o": { "field": "NAME", "direction": "DESC" } }),
        )
        .await;
    let names: Vec<&str> = by_name.ok()["agentPerformance"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Carol", "Bob", "Alice"]);

    let too_many = app
        .gql(Some(&supervisor), &query, json!({ "f": window(), "first": 101 }))
        .await;
    assert_eq!(too_many.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(field_names(&too_many.body["errors"]), ["first"]);
    let forged = app
        .gql(Some(&supervisor), &query, json!({ "f": window(), "after": "bm9wZQ" }))
        .await;
    assert_eq!(field_names(&forged.body["errors"]), ["after"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn campaign_performance_adds_up_to_the_summary() {
    let app = TestApp::spawn().await;
    let (org, fx) = seed(&app, "acme").await;
    let supervisor = app.token(&org, Role::Supervisor).await;
    let query = format!(
        "query($f: KpiFilter!) {{ campaignPerformance(filter: $f) {{ campaignId name direction status metrics {{ {METRICS} }} }} }}"
    );
    let response = app.gql(Some(&supervisor), &query, json!({ "f": window() })).await;
    let rows = response.ok()["campaignPerformance"].as_array().unwrap().clone();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Care", "Sales"]);
    assert_eq!(rows[0]["direction"], "INBOUND");
    assert_eq!(rows[1]["direction"], "OUTBOUND");
    let total = summary(&app, &supervisor, window()).await;
    for field in ["offered", "answered", "handled", "abandoned", "shortAbandoned"] {
        let sum: i64 = rows.iter().map(|r| r["metrics"][field].as_i64().unwrap()).sum();
        assert_eq!(sum, total[field].as_i64().unwrap(), "{field}");
    }
    for (row, id) in rows.iter().zip([fx.care, fx.sales]) {
        assert_eq!(row["campaignId"], json!(id));
        let per_campaign = summary(&app, &supervisor, with(&window(), json!({ "campaignIds": [id] }))).await;
        for field in [
            "offered",
            "handled",
            "serviceLevel",
            "averageHandleTime",
            "contactRate",
            "conversionRate",
            "outboundAbandonRateUk",
        ] {
            assert_eq!(row["metrics"][field], per_campaign[field], "{field} of {}", row["name"]);
        }
        // Agent time belongs to no campaign.
        assert_eq!(row["metrics"]["occupancy"], Value::Null);
        assert_eq!(row["metrics"]["callsPerAgentHour"], Value::Null);
    }
    // An agent filter reads the (campaign, agent) cells.
    let alice = with(&window(), json!({ "agentIds": [fx.agents[0]] }));
    let response = app.gql(Some(&supervisor), &query, json!({ "f": alice })).await;
    let rows = response.ok()["campaignPerformance"].as_array().unwrap().clone();
    let handled: i64 = rows.iter().map(|r| r["metrics"]["handled"].as_i64().unwrap()).sum();
    assert_eq!(
        handled,
        summary(&app, &supervisor, alice).await["handled"].as_i64().unwrap()
    );
    // A direction filter keeps the campaigns of that direction.
    let outbound = app
        .gql(
            Some(&supervisor),
            &query,
            json!({ "f": with(&window(), json!({ "direction": "OUTBOUND" })) }),
        )
        .await;
    assert_eq!(outbound.ok()["campaignPerformance"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn disposition_breakdown_counts_and_shares() {
    let app = TestApp::spawn().await;
    let (org, fx) = seed(&app, "acme").await;
    let supervisor = app.token(&org, Role::Supervisor).await;
    let query = "query($f: KpiFilter!) { dispositionBreakdown(filter: $f) {
        start end dispositionedCalls
        dispositions { dispositionId code label contact success callback answeringMachine calls share }
        flags { flag calls share } } }";
    let (from, to) = (at("2026-01-05T08:30:00Z"), at("2026-01-06T17:45:00Z"));
    let in_window: Vec<&NewInteraction> = fx
        .calls
        .iter()
        .filter(|c| c.offered_at >= from && c.offered_at < to)
        .collect();
    let count = |id: Uuid| in_window.iter().filter(|c| c.disposition_id == Some(id)).count() as i64;
    let expected: Vec<(Uuid, i64)> = [fx.resolved, fx.sale, fx.callback, fx.machine]
        .into_iter()
        .map(|id| (id, count(id)))
        .collect();
    let total: i64 = expected.iter().map(|e| e.1).sum();
    assert!(
        expected.iter().all(|e| e.1 > 0),
        "the fixture uses every disposition: {expected:?}"
    );

    let response = app.gql(Some(&supervisor), query, json!({ "f": window() })).await;
    let breakdown = &response.ok()["dispositionBreakdown"];
    assert_eq!(breakdown["dispositionedCalls"], total);
    let rows = breakdown["dispositions"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    let calls: Vec<i64> = rows.iter().map(|r| r["calls"].as_i64().unwrap()).collect();
    assert!(calls.windows(2).all(|w| w[0] >= w[1]), "most frequent first");
    for (id, n) in &expected {
        let row = rows.iter().find(|r| r["dispositionId"] == json!(id)).unwrap();
        assert_eq!(row["calls"], *n, "{}", row["code"]);
        let share = row["share"].as_f64().unwrap();
        assert!((share - *n as f64 / total as f64 * 100.0).abs() < 1e-9);
    }
    let flag = |name: &str| {
        breakdown["flags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["flag"] == name)
            .unwrap()
            .clone()
    };
    let contacts = count(fx.resolved) + count(fx.sale) + count(fx.callback);
    assert_eq!(flag("CONTACT")["calls"], contacts);
    assert_eq!(flag("HUMAN_ANSWERED")["calls"], contacts);
    assert_eq!(flag("SUCCESS")["calls"], count(fx.sale));
    assert_eq!(flag("CALLBACK")["calls"], count(fx.callback));
    assert_eq!(flag("ANSWERING_MACHINE")["calls"], count(fx.machine));
    assert_eq!(flag("DO_NOT_CALL")["calls"], 0);
    assert_eq!(flag("DO_NOT_CALL")["share"], 0.0);
    assert!((flag("SUCCESS")["share"].as_f64().unwrap() - count(fx.sale) as f64 / total as f64 * 100.0).abs() < 1e-9);

    // Filters apply: Alice's outbound calls only.
    let alice_outbound = with(
        &window(),
        json!({ "agentIds": [fx.agents[0]], "direction": "OUTBOUND" }),
    );
    let response = app.gql(Some(&supervisor), query, json!({ "f": alice_outbound })).await;
    let expected_alice = in_window
        .iter()
        .filter(|c| {
            c.agent_id == Some(fx.agents[0]) && c.direction == Direction::Outbound && c.disposition_id.is_some()
        })
        .count();
    assert_eq!(
        response.ok()["dispositionBreakdown"]["dispositionedCalls"],
        expected_alice
    );

    // An empty interval has no shares.
    let empty = json!({ "from": "2025-01-01T00:00:00Z", "to": "2025-01-02T00:00:00Z" });
    let response = app.gql(Some(&supervisor), query, json!({ "f": empty })).await;
    assert_eq!(
        response.ok()["dispositionBreakdown"]["dispositions"][0]["share"],
        Value::Null
    );
}

const ANALYTICS: &str = "query($q: AnalyticsQuery!, $org: ID) { analytics(query: $q, orgId: $org) {
    timezone totalRows truncated groupBy granularity metrics { name unit formula }
    rows { dimensions { campaign { id name } agent { id name } team { id name } direction disposition { id code label }
                        date hourOfDay dayOfWeek bucketStart bucketEnd }
           values explain { metric value numerator denominator } } } }";

fn metric_names() -> Vec<&'static str> {
    METRIC_FIELDS.iter().map(|m| m.0).collect()
}

/// Checks that every analytics value of `row` equals the `kpiSummary` field of the same metric.
fn assert_row_equals_summary(row: &Value, summary: &Value, context: &str) {
    for (i, (name, field)) in METRIC_FIELDS.iter().enumerate() {
        let value = row["explain"]
            .as_array()
            .and_then(|explained| explained.iter().find(|v| v["metric"] == *name))
            .unwrap_or_else(|| panic!("{context}: the row explains no {name}: {row}"));
        assert_eq!(row["values"][i], value["value"], "{context}: values follow the metrics");
        let expected = &summary[*field];
        match (value["value"].as_f64(), expected.as_f64()) {
            (Some(a), Some(b)) => assert_eq!(a, b, "{name} of {context}"),
            _ => assert_eq!(&value["value"], expected, "{name} of {context}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn analytics_agent_by_day_equals_per_agent_per_day_summaries() {
    let app = TestApp::spawn().await;
    let (org, fx) = seed(&app, "acme").await;
    let supervisor = app.token(&org, Role::Supervisor).await;
    let q = json!({ "metrics": metric_names(), "groupBy": ["AGENT", "DATE"], "filter": window() });
    let response = app.gql(Some(&supervisor), ANALYTICS, json!({ "q": q })).await;
    let result = &response.ok()["analytics"];
    assert_eq!(result["timezone"], "Europe/London");
    assert_eq!(result["truncated"], false);
    let rows = result["rows"].as_array().unwrap();
    // Three agents and "no agent", over two days.
    assert_eq!(result["totalRows"], 8);
    assert_eq!(rows.len(), 8);
    let none: Vec<&Value> = rows
        .iter()
        .filter(|r| r["dimensions"]["agent"]["id"].is_null())
        .collect();
    assert_eq!(none.len(), 2);
    assert_eq!(none[0]["dimensions"]["agent"]["name"], "(no agent)");
    // Default order: the groupBy dimensions (agent name, then date), "no agent" last.
    assert_eq!(rows[0]["dimensions"]["agent"]["name"], "Alice");
    assert_eq!(rows[0]["dimensions"]["date"], "2026-01-05");
    assert_eq!(rows[1]["dimensions"]["date"], "2026-01-06");
    assert_eq!(rows[0]["dimensions"]["team"], Value::Null, "not grouped by TEAM");

    let cells = [
        (
            fx.agents[0],
            "2026-01-05",
            "2026-01-05T08:30:00Z",
            "2026-01-06T00:00:00Z",
        ),
        (
            fx.agents[2],
            "2026-01-06",
            "2026-01-06T00:00:00Z",
            "2026-01-06T17:45:00Z",
        ),
        (
            fx.agents[1],
            "2026-01-06",
            "2026-01-06T00:00:00Z",
            "2026-01-06T17:45:00Z",
        ),
    ];
    for (agent, date, from, to) in cells {
        let row = rows
            .iter()
            .find(|r| r["dimensions"]["agent"]["id"] == json!(agent) && r["dimensions"]["date"] == date)
            .unwrap();
        let expected = summary(
            &app,
            &supervisor,
            json!({ "from": from, "to": to, "agentIds": [agent] }),
        )
        .await;
        assert_row_equals_summary(row, &expected, &format!("{agent} on {date}"));
    }
    // All groups add up to the whole interval.
    let total = summary(&app, &supervisor, window()).await;
    let handled: f64 = rows.iter().map(|r| r["values"][1].as_f64().unwrap()).sum();
    assert_eq!(handled, total["handled"].as_f64().unwrap());

    // TEAM combines with AGENT, and alone sums a team's agents.
    let q = json!({ "metrics": ["HANDLED", "OCCUPANCY"], "groupBy": ["TEAM"], "filter": window() });
    let response = app.gql(Some(&supervisor), ANALYTICS, json!({ "q": q })).await;
    let rows = response.ok()["analytics"]["rows"].as_array().unwrap().clone();
    let blue = rows.iter().find(|r| r["dimensions"]["team"]["name"] == "Blue").unwrap();
    let expected = summary(&app, &supervisor, with(&window(), json!({ "teamIds": [fx.blue] }))).await;
    assert_eq!(blue["values"][0].as_f64(), expected["handled"].as_f64());
    assert_eq!(blue["values"][1].as_f64(), expected["occupancy"].as_f64());
    let q = json!({ "metrics": ["HANDLED"], "groupBy": ["TEAM", "AGENT"], "filter": window(),
                    "orderBy": [{ "metric": "HANDLED", "direction": "DESC" }], "limit": 2 });
    let response = app.gql(Some(&supervisor), ANALYTICS, json!({ "q": q })).await;
    let result = &response.ok()["analytics"];
    assert_eq!(
        (result["totalRows"].as_i64(), result["truncated"].as_bool()),
        (Some(4), Some(true))
    );
    let top: Vec<f64> = result["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["values"][0].as_f64().unwrap())
        .collect();
    assert!(top[0] >= top[1]);

    // CAMPAIGN × AGENT reads the (campaign, agent) cells, never the per-agent level as well:
    // each pair equals the summary filtered to that campaign and agent, and the pairs add up.
    let metrics = [
        ("OFFERED", "offered"),
        ("HANDLED", "handled"),
        ("SERVICE_LEVEL", "serviceLevel"),
        ("AVERAGE_HANDLE_TIME", "averageHandleTime"),
        ("ABANDON_RATE", "abandonRate"),
        ("LONGEST_WAIT", "longestWait"),
    ];
    let names: Vec<&str> = metrics.iter().map(|m| m.0).collect();
    let q = json!({ "metrics": names, "groupBy": ["CAMPAIGN", "AGENT"], "filter": window() });
    let response = app.gql(Some(&supervisor), ANALYTICS, json!({ "q": q })).await;
    let rows = response.ok()["analytics"]["rows"].as_array().unwrap().clone();
    for (campaign, agent) in [(fx.sales, fx.agents[0]), (fx.care, fx.agents[1])] {
        let row = rows
            .iter()
            .find(|r| {
                r["dimensions"]["campaign"]["id"] == json!(campaign) && r["dimensions"]["agent"]["id"] == json!(agent)
            })
            .unwrap();
        let filter = with(&window(), json!({ "campaignIds": [campaign], "agentIds": [agent] }));
        let expected = summary(&app, &supervisor, filter).await;
        assert!(expected["handled"].as_f64().unwrap() > 0.0, "the pair has calls");
        for (i, (_, field)) in metrics.iter().enumerate() {
            let (got, want) = (&row["values"][i], &expected[*field]);
            match (got.as_f64(), want.as_f64()) {
                (Some(a), Some(b)) => assert_eq!(a, b, "{field} of {agent} in {campaign}"),
                _ => assert_eq!(got, want, "{field} of {agent} in {campaign}"),
            }
        }
    }
    let handled: f64 = rows.iter().map(|r| r["values"][1].as_f64().unwrap()).sum();
    assert_eq!(handled, total["handled"].as_f64().unwrap());

    // Granularity buckets are kpiSeries buckets.
    let q = json!({ "metrics": ["OFFERED", "SERVICE_LEVEL"], "groupBy": ["CAMPAIGN"], "granularity": "DAY", "filter": window() });
    let response = app.gql(Some(&supervisor), ANALYTICS, json!({ "q": q })).await;
    let rows = response.ok()["analytics"]["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["dimensions"]["bucketStart"], "2026-01-05T08:30:00+00:00");
    assert_eq!(rows[0]["dimensions"]["bucketEnd"], "2026-01-06T00:00:00+00:00");
    assert_eq!(rows[0]["dimensions"]["campaign"]["name"], "Care");
    let expected = summary(
        &app,
        &supervisor,
        json!({ "from": "2026-01-06T00:00:00Z", "to": "2026-01-06T17:45:00Z", "campaignIds": [fx.sales] }),
    )
    .await;
    let sales_day2 = rows
        .iter()
        .find(|r| {
            r["dimensions"]["campaign"]["name"] == "Sales"
                && r["dimensions"]["bucketStart"] == "2026-01-06T00:00:00+00:00"
        })
        .unwrap();
    assert_eq!(sales_day2["values"][0].as_f64(), expected["offered"].as_f64());
    assert_eq!(sales_day2["values"][1].as_f64(), expected["serviceLevel"].as_f64());

    // DISPOSITION with counts (from raw calls), HOUR_OF_DAY and DAY_OF_WEEK.
    let q = json!({ "metrics": ["HANDLED", "OFFERED"], "groupBy": ["DISPOSITION", "DAY_OF_WEEK"], "filter": window() });
    let response = app.gql(Some(&supervisor), ANALYTICS, json!({ "q": q })).await;
    let rows = response.ok()["analytics"]["rows"].as_array().unwrap().clone();
    let (from, to) = (at("2026-01-05T08:30:00Z"), at("2026-01-06T17:45:00Z"));
    let monday_sales = fx
        .calls
        .iter()
        .filter(|c| {
            c.offered_at >= from && c.offered_at < at("2026-01-06T00:00:00Z") && c.disposition_id == Some(fx.sale)
        })
        .count();
    let row = rows
        .iter()
        .find(|r| r["dimensions"]["disposition"]["code"] == "SALE" && r["dimensions"]["dayOfWeek"] == 1)
        .unwrap();
    assert_eq!(row["values"][0].as_f64(), Some(monday_sales as f64));
    let handled: f64 = rows.iter().map(|r| r["values"][0].as_f64().unwrap()).sum();
    assert_eq!(handled, total["handled"].as_f64().unwrap());
    let q = json!({ "metrics": ["OFFERED"], "groupBy": ["HOUR_OF_DAY"], "filter": window() });
    let response = app.gql(Some(&supervisor), ANALYTICS, json!({ "q": q })).await;
    let rows = response.ok()["analytics"]["rows"].as_array().unwrap().clone();
    let nine = rows.iter().find(|r| r["dimensions"]["hourOfDay"] == 9).unwrap();
    // Offered = answered by an agent (outbound: a live person) or abandoned; London is UTC in January.
    let offered = |c: &&NewInteraction| {
        c.outcome == Outcome::Abandoned
            || c.outcome == Outcome::Answered
                && (c.direction == Direction::Inbound || c.answered_by == Some(AnsweredBy::Human))
    };
    let expected = fx
        .calls
        .iter()
        .filter(|c| c.offered_at >= from && c.offered_at < to && c.offered_at.hour() == 9)
        .filter(offered)
        .count();
    assert!(expected > 0);
    assert_eq!(nine["values"][0].as_f64(), Some(expected as f64));
}

/// Over whole local days, analytics by DATE reads the daily rollups (and the hours and raw
/// edges around them): every agent × day equals kpiSummary, which reads hours and raw facts
/// only — in Europe/London, then in America/New_York, whose days start at 05:00 UTC (a time
/// zone change re-keys the daily rollups in its transaction).
#[tokio::test(flavor = "multi_thread")]
async fn analytics_over_whole_days_equals_summaries_in_every_time_zone() {
    let app = TestApp::spawn().await;
    let (org, fx) = seed(&app, "acme").await;
    let admin = app.token(&org, Role::Admin).await;
    let supervisor = app.token(&org, Role::Supervisor).await;
    let (from, to) = (at("2026-01-04T00:00:00Z"), at("2026-01-08T00:00:00Z"));
    let filter = json!({ "from": from.to_rfc3339(), "to": to.to_rfc3339() });
    for (version, zone) in [
        (None, chrono_tz::Europe::London),
        (Some(1), chrono_tz::America::New_York),
    ] {
        if let Some(version) = version {
            let changed = app
                .gql(
                    Some(&admin),
                    "mutation($v: Int!, $z: String!) { updateBusinessSettings(expectedVersion: $v, input: { timezone: $z }) { version } }",
                    json!({ "v": version, "z": zone.name() }),
                )
                .await;
            changed.ok();
        }
        let q = json!({ "metrics": metric_names(), "groupBy": ["AGENT", "DATE"], "filter": filter });
        let response = app.gql(Some(&supervisor), ANALYTICS, json!({ "q": q })).await;
        let result = &response.ok()["analytics"];
        assert_eq!(result["timezone"], zone.name());
        let rows = result["rows"].as_array().unwrap();
        let mut compared = 0;
        for (start, end) in omnivox::kpi::time::buckets(zone, from, to, omnivox::kpi::time::Granularity::Day) {
            let date = start.with_timezone(&zone).date_naive().to_string();
            for agent in fx.agents {
                let row = rows.iter().find(|r| {
                    r["dimensions"]["agent"]["id"] == json!(agent) && r["dimensions"]["date"] == date.as_str()
                });
                let expected = summary(
                    &app,
                    &supervisor,
                    json!({ "from": start.to_rfc3339(), "to": end.to_rfc3339(), "agentIds": [agent] }),
                )
                .await;
                match row {
                    Some(row) => {
                        assert_row_equals_summary(row, &expected, &format!("{agent} on {date} in {zone}"));
                        compared += 1;
                    }
                    None => assert_eq!(expected["offered"], 0, "{agent} on {date} in {zone} has no row"),
                }
            }
        }
        assert!(compared >= 4, "the fixture's agent-days were compared in {zone}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn analytics_is_exact_in_a_half_hour_time_zone() {
    let app = TestApp::spawn().await;
    let (org, fx) = seed(&app, "acme").await;
    let admin = app.token(&org, Role::Admin).await;
    let changed = app
        .gql(
            Some(&admin),
            "mutation { updateBusinessSettings(expectedVersion: 1, input: { timezone: \"Asia/Kolkata\" }) { version } }",
            json!({}),
        )
        .await;
    changed.ok();
    let supervisor = app.token(&org, Role::Supervisor).await;
    let filter = json!({ "from": "2026-01-05T00:00:00Z", "to": "2026-01-07T00:00:00Z" });
    let q = json!({ "metrics": metric_names(), "groupBy": ["DATE", "AGENT"], "filter": filter });
    let response = app.gql(Some(&supervisor), ANALYTICS, json!({ "q": q })).await;
    let result = &response.ok()["analytics"];
    assert_eq!(result["timezone"], "Asia/Kolkata");
    let rows = result["rows"].as_array().unwrap();
    // Local days start at 18:30 UTC: Bob's 18:10 call is on the 5th, his 18:45 call on the 6th.
    let days = [
        ("2026-01-05", "2026-01-05T00:00:00Z", "2026-01-05T18:30:00Z"),
        ("2026-01-06", "2026-01-05T18:30:00Z", "2026-01-06T18:30:00Z"),
        ("2026-01-07", "2026-01-06T18:30:00Z", "2026-01-07T00:00:00Z"),
    ];
    for (date, from, to) in days {
        for agent in fx.agents {
            let row = rows
                .iter()
                .find(|r| r["dimensions"]["agent"]["id"] == json!(agent) && r["dimensions"]["date"] == date);
            let expected = summary(
                &app,
                &supervisor,
                json!({ "from": from, "to": to, "agentIds": [agent] }),
            )
            .await;
            match row {
                Some(row) => assert_row_equals_summary(row, &expected, &format!("{agent} on {date}")),
                None => assert_eq!(expected["offered"], 0, "{agent} on {date} has data but no row"),
            }
        }
    }
    let bob_7th = rows
        .iter()
        .find(|r| r["dimensions"]["agent"]["id"] == json!(fx.agents[1]) && r["dimensions"]["date"] == "2026-01-07");
    assert_eq!(
        bob_7th.unwrap()["values"][1],
        1.0,
        "the 18:45 UTC call of the 6th is on the 7th locally"
    );
    // Local hours start at :30 UTC; every hour is read from raw calls, and still adds up.
    let q = json!({ "metrics": ["OFFERED", "OCCUPANCY"], "groupBy": ["HOUR_OF_DAY"], "filter": filter });
    let response = app.gql(Some(&supervisor), ANALYTICS, json!({ "q": q })).await;
    let rows = response.ok()["analytics"]["rows"].as_array().unwrap().clone();
    let offered: f64 = rows.iter().map(|r| r["values"][0].as_f64().unwrap()).sum();
    assert_eq!(
        offered,
        summary(&app, &supervisor, filter.clone()).await["offered"]
            .as_f64()
            .unwrap()
    );
    let midnight = rows.iter().find(|r| r["dimensions"]["hourOfDay"] == 0).unwrap();
    let expected = summary(
        &app,
        &supervisor,
        json!({ "from": "2026-01-05T18:30:00Z", "to": "2026-01-05T19:30:00Z" }),
    )
    .await;
    let expected_next = summary(
        &app,
        &supervisor,
        json!({ "from": "2026-01-06T18:30:00Z", "to": "2026-01-06T19:30:00Z" }),
    )
    .await;
    assert_eq!(
        midnight["values"][0].as_f64().unwrap(),
        expected["offered"].as_f64().unwrap() + expected_next["offered"].as_f64().unwrap()
    );
    // Raw reads stay capped: local hours over more than 31 days are refused, naming the cause.
    let two_months = json!({ "from": "2025-11-01T00:00:00Z", "to": "2026-01-01T00:00:00Z" });
    let q = json!({ "metrics": ["OFFERED"], "groupBy": ["HOUR_OF_DAY"], "filter": two_months });
    let response = app.gql(Some(&supervisor), ANALYTICS, json!({ "q": q })).await;
    assert_eq!(response.error_code(), Some("BAD_USER_INPUT"), "{}", response.body);
    assert!(field_names(&response.body["errors"])
        .iter()
        .any(|f| f == "query.groupBy"));
    let message = response.error_message().unwrap();
    assert!(
        message.contains("answered from raw calls") && message.contains("31 days"),
        "{message}"
    );
}

/// DISPOSITION over a quarter (no longer capped at 31 days): answered from the disposition
/// rollups and raw edges, it equals the counts taken by hand from the calls, and the sum of the
/// same query over four shorter ranges that tile it — with CAMPAIGN, and with an agent filter
/// (the agent level of the disposition rollups).
#[tokio::test(flavor = "multi_thread")]
async fn analytics_by_disposition_over_a_quarter_equals_the_calls_and_its_parts() {
    let app = TestApp::spawn().await;
    let (org, fx) = seed(&app, "acme").await;
    let supervisor = app.token(&org, Role::Supervisor).await;
    // Three to five calls a day from 2025-10-01, of every kind, with and without disposition.
    let first_day = at("2025-10-01T00:00:00Z");
    let kinds = [
        Kind::InboundHandled,
        Kind::InboundOpen,
        Kind::InboundAbandoned,
        Kind::OutboundHandled,
        Kind::Machine,
        Kind::Drop,
    ];
    let dispositions = [
        Some(fx.resolved),
        Some(fx.sale),
        Some(fx.callback),
        Some(fx.machine),
        None,
    ];
    let mut specs = Vec::new();
    for d in 0..96_i64 {
        for k in 0..(3 + d % 3) {
            let n = usize::try_from(d * 5 + k).unwrap();
            let kind = kinds[n % kinds.len()];
            let inbound = matches!(kind, Kind::InboundHandled | Kind::InboundOpen | Kind::InboundAbandoned);
            let with_agent = !matches!(kind, Kind::InboundAbandoned | Kind::Machine | Kind::Drop);
            specs.push(CallSpec {
                kind,
                campaign: if inbound { fx.care } else { fx.sales },
                agent: with_agent.then_some(fx.agents[n % 3]),
                at: first_day + TimeDelta::hours(d * 24 + 7 + k * 3) + TimeDelta::minutes((n * 7 % 60) as i64),
                wait_s: (n * 3 % 12) as i64,
                talk_s: 90,
                hold_s: 5,
                wrap_s: 15,
                disposition: dispositions[n % dispositions.len()],
            });
        }
    }
    let quarter_calls: Vec<NewInteraction> = specs.iter().enumerate().map(|(n, s)| call(10_000 + n, s)).collect();
    let mut conn = app.state.system_db.get().await.unwrap();
    insert_calls(&mut conn, &org.tenant, &quarter_calls).await.unwrap();
    let calls: Vec<&NewInteraction> = fx.calls.iter().chain(&quarter_calls).collect();

    let (from, to) = (at("2025-10-01T09:17:00Z"), at("2026-01-06T15:41:00Z"));
    assert!(to - from > TimeDelta::days(90));
    let cuts = [
        from,
        at("2025-10-29T13:05:00Z"),
        at("2025-11-25T00:00:00Z"),
        at("2025-12-24T19:59:00Z"),
        to,
    ];
    const Q: &str = "query($q: AnalyticsQuery!) { analytics(query: $q) {
        rows { dimensions { disposition { id } campaign { id } } values } } }";
    let run = |filter: Value| {
        let app = &app;
        let supervisor = &supervisor;
        async move {
            let q = json!({
                "metrics": ["OFFERED", "ANSWERED", "HANDLED", "ABANDONED", "SHORT_ABANDONED"],
                "groupBy": ["DISPOSITION", "CAMPAIGN"],
                "filter": filter,
            });
            let response = app.gql(Some(supervisor), Q, json!({ "q": q })).await;
            let mut groups: std::collections::BTreeMap<(String, String), Vec<i64>> = Default::default();
            for row in response.ok()["analytics"]["rows"].as_array().unwrap() {
                let key = (
                    row["dimensions"]["disposition"]["id"].to_string(),
                    row["dimensions"]["campaign"]["id"].to_string(),
                );
                let values: Vec<i64> = row["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as i64)
                    .collect();
                let sum = groups.entry(key).or_insert_with(|| vec![0; 5]);
                for (s, v) in sum.iter_mut().zip(values) {
                    *s += v;
                }
            }
            groups
        }
    };
    // Counts by hand: the definitions of the registry's count metrics (short abandons: under
    // the default 5 s).
    let by_hand = |from: DateTime<Utc>, to: DateTime<Utc>, agent: Option<Uuid>| {
        let mut groups: std::collections::BTreeMap<(String, String), Vec<i64>> = Default::default();
        for c in calls
            .iter()
            .filter(|c| c.offered_at >= from && c.offered_at < to && agent.is_none_or(|a| c.agent_id == Some(a)))
        {
            let answered = c.outcome == Outcome::Answered
                && (c.direction == Direction::Inbound || c.answered_by == Some(AnsweredBy::Human));
            let abandoned = c.outcome == Outcome::Abandoned;
            let n = |b: bool| i64::from(b);
            let values = [
                n(answered || abandoned),
                n(answered),
                n(answered && c.wrap_ended_at.is_some()),
                n(abandoned),
                n(abandoned && c.wait_ms.unwrap_or(0) < 5_000),
            ];
            let key = (json!(c.disposition_id).to_string(), json!(c.campaign_id).to_string());
            let sum = groups.entry(key).or_insert_with(|| vec![0; 5]);
            for (s, v) in sum.iter_mut().zip(values) {
                *s += v;
            }
        }
        groups
    };
    let quarter = run(json!({ "from": from.to_rfc3339(), "to": to.to_rfc3339() })).await;
    let want = by_hand(from, to, None);
    assert_eq!(quarter, want);
    assert!(
        quarter.len() >= 8,
        "dispositions × campaigns, none included: {quarter:?}"
    );
    assert!(
        quarter.keys().any(|(d, _)| d == "null") && quarter.values().any(|v| v[4] > 0),
        "calls without a disposition and short abandons are counted: {quarter:?}"
    );
    let mut parts: std::collections::BTreeMap<(String, String), Vec<i64>> = Default::default();
    for pair in cuts.windows(2) {
        for (key, values) in run(json!({ "from": pair[0].to_rfc3339(), "to": pair[1].to_rfc3339() })).await {
            let sum = parts.entry(key).or_insert_with(|| vec![0; 5]);
            for (s, v) in sum.iter_mut().zip(values) {
                *s += v;
            }
        }
    }
    assert_eq!(parts, quarter, "the quarter equals the sum of its parts");
    // One agent: the disposition rollups' (ALL, agent) level.
    let bob = fx.agents[1];
    let filter = json!({ "from": from.to_rfc3339(), "to": to.to_rfc3339(), "agentIds": [bob] });
    assert_eq!(run(filter).await, by_hand(from, to, Some(bob)));
}

#[tokio::test(flavor = "multi_thread")]
async fn analytics_refuses_illegal_combinations_naming_the_problem() {
    let app = TestApp::spawn().await;
    let (org, _) = seed(&app, "acme").await;
    let supervisor = app.token(&org, Role::Supervisor).await;
    let long = json!({ "from": "2025-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z" });
    let two_months = json!({ "from": "2025-11-01T00:00:00Z", "to": "2026-01-01T00:00:00Z" });
    let cases = [
        (
            json!({ "metrics": ["HANDLED", "AVERAGE_HANDLE_TIME"], "groupBy": ["DISPOSITION"], "filter": window() }),
            "query.metrics[1]",
            "DISPOSITION",
        ),
        (
            json!({ "metrics": ["OCCUPANCY"], "groupBy": ["CAMPAIGN"], "filter": window() }),
            "query.metrics[0]",
            "agent time",
        ),
        (
            json!({ "metrics": ["CALLS_PER_AGENT_HOUR"], "groupBy": ["DIRECTION"], "filter": window() }),
            "query.metrics[0]",
            "DIRECTION",
        ),
        (
            json!({ "metrics": ["HANDLED"], "groupBy": ["AGENT", "CAMPAIGN", "DATE", "DIRECTION", "HOUR_OF_DAY"], "filter": window() }),
            "query.groupBy",
            "at most 4",
        ),
        (
            json!({ "metrics": ["HANDLED"], "groupBy": ["AGENT", "AGENT"], "filter": window() }),
            "query.groupBy[1]",
            "twice",
        ),
        (
            json!({ "metrics": [], "filter": window() }),
            "query.metrics",
            "at least one",
        ),
        (
            json!({ "metrics": ["HANDLED"], "limit": 10001, "filter": window() }),
            "query.limit",
            "10000",
        ),
        (
            json!({ "metrics": ["HANDLED"], "filter": long }),
            "query.filter.to",
            "400 days",
        ),
        (
            json!({ "metrics": ["HANDLED"], "granularity": "FIFTEEN_MINUTES", "filter": two_months }),
            "query.granularity",
            "buckets",
        ),
        (
            json!({ "metrics": ["HANDLED"], "orderBy": [{ "metric": "OFFERED" }], "filter": window() }),
            "query.orderBy[0].metric",
            "metrics",
        ),
        (
            json!({ "metrics": ["HANDLED"], "orderBy": [{ "dimension": "AGENT" }], "filter": window() }),
            "query.orderBy[0].dimension",
            "groupBy",
        ),
        (
            json!({ "metrics": ["HANDLED"], "orderBy": [{ "metric": "HANDLED", "dimension": "AGENT" }], "groupBy": ["AGENT"], "filter": window() }),
            "query.orderBy[0]",
            "exactly one",
        ),
        (
            json!({ "metrics": ["HANDLED"], "filter": with(&window(), json!({ "agentIds": ["nope"] })) }),
            "query.filter.agentIds[0]",
            "valid id",
        ),
    ];
    for (q, field, words) in cases {
        let response = app.gql(Some(&supervisor), ANALYTICS, json!({ "q": q })).await;
        assert_eq!(response.error_code(), Some("BAD_USER_INPUT"), "{q}: {}", response.body);
        let fields = field_names(&response.body["errors"]);
        assert!(fields.iter().any(|f| f == field), "{field} not in {fields:?} for {q}");
        let message = response.error_message().unwrap();
        assert!(message.contains(words), "{message:?} should mention {words:?}");
    }
    let fine = json!({ "metrics": ["HANDLED", "OCCUPANCY"], "groupBy": ["TEAM", "AGENT", "DATE"], "filter": window() });
    app.gql(Some(&supervisor), ANALYTICS, json!({ "q": fine })).await.ok();
}

/// A call `minutes` before now on an outbound campaign.
fn outbound(
    n: &mut usize,
    campaign: Uuid,
    agent: Option<Uuid>,
    kind: Kind,
    minutes_ago: i64,
    now: DateTime<Utc>,
) -> NewInteraction {
    *n += 1;
    call(
        10_000 + *n,
        &CallSpec {
            kind,
            campaign,
            agent: if matches!(kind, Kind::OutboundHandled | Kind::Machine) {
                agent
            } else {
                None
            },
            at: now - TimeDelta::minutes(minutes_ago),
            wait_s: 1,
            talk_s: 30,
            hold_s: 0,
            wrap_s: 5,
            disposition: None,
        },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn compliance_status_computes_uk_and_us_rates_and_levels() {
    let app = TestApp::spawn().await;
    let (org, fx) = seed_with(&app, "acme", |org| {
        org.campaign(CampaignSpec::outbound("Warn"))
            .campaign(CampaignSpec::outbound("Breach").max_abandon_rate(4.0))
    })
    .await;
    let mut conn = app.state.system_db.get().await.unwrap();
    let tenant = Tenant::for_system(org.id);
    let [warn, breach] = org.campaigns[2..] else {
        unreachable!()
    };
    let now = Utc::now();
    let mut n = 0;
    let mut calls = Vec::new();
    // Warn: in the last day 40 live calls to agents, 1 drop, 5 machines passed to an agent and 5
    // the dialler's detection hung up on (only the first five count in AM).
    for i in 0..40 {
        calls.push(outbound(
            &mut n,
            warn,
            Some(fx.agents[i % 3]),
            Kind::OutboundHandled,
            30 + i as i64 * 20,
            now,
        ));
    }
    calls.push(outbound(&mut n, warn, None, Kind::Drop, 90, now));
    for i in 0..10 {
        let passed_to = (i < 5).then_some(fx.agents[0]);
        calls.push(outbound(&mut n, warn, passed_to, Kind::Machine, 45 + i * 60, now));
    }
    // Breach: in the last day 40 live, 2 drops; three days ago 10 live and 2 more drops.
    for i in 0..40 {
        calls.push(outbound(
            &mut n,
            breach,
            Some(fx.agents[i % 3]),
            Kind::OutboundHandled,
            10 + i as i64 * 25,
            now,
        ));
    }
    calls.push(outbound(&mut n, breach, None, Kind::Drop, 100, now));
    calls.push(outbound(&mut n, breach, None, Kind::Drop, 700, now));
    for i in 0..10 {
        calls.push(outbound(
            &mut n,
            breach,
            Some(fx.agents[0]),
            Kind::OutboundHandled,
            3 * 1440 + i,
            now,
        ));
    }
    calls.push(outbound(&mut n, breach, None, Kind::Drop, 3 * 1440 + 30, now));
    calls.push(outbound(&mut n, breach, None, Kind::Drop, 3 * 1440 + 40, now));
    insert_calls(&mut conn, &tenant, &calls).await.unwrap();

    let supervisor = app.token(&org, Role::Supervisor).await;
    let query = "query($c: [ID!]) { complianceStatus(campaignIds: $c) {
        campaignId campaignName limit status
        uk { start end rate limit headroom status drops liveCalls machineAnswered machineDetected humanAnswered numerator denominator formula }
        us { rate limit headroom status drops liveCalls machineAnswered humanAnswered } } }";
    let response = app.gql(Some(&supervisor), query, json!({})).await;
    let rows = response.ok()["complianceStatus"].as_array().unwrap().clone();
    // Every OUTBOUND campaign (the fixture's Sales has no calls in these windows), by name.
    let names: Vec<&str> = rows.iter().map(|r| r["campaignName"].as_str().unwrap()).collect();
    assert_eq!(names, ["Breach", "Sales", "Warn"]);
    let row = |name: &str| rows.iter().find(|r| r["campaignName"] == name).unwrap().clone();
    let close = |v: &Value, expected: f64| assert!((v.as_f64().unwrap() - expected).abs() < 1e-9, "{v} != {expected}");

    let w = row("Warn");
    assert_eq!(w["limit"], 3.0);
    // UK: D' = 1 − 1 × 5 / (5 + 40) = 8/9; rate = D' / (D' + 40). US: 1 / 41.
    let adjusted = 1.0 - 5.0 / 45.0;
    close(&w["uk"]["rate"], adjusted / (adjusted + 40.0) * 100.0);
    close(&w["uk"]["numerator"], adjusted);
    close(&w["uk"]["headroom"], 3.0 - adjusted / (adjusted + 40.0) * 100.0);
    assert_eq!(w["uk"]["status"], "OK");
    assert_eq!(
        (
            &w["uk"]["drops"],
            &w["uk"]["liveCalls"],
            &w["uk"]["machineAnswered"],
            &w["uk"]["machineDetected"],
            &w["uk"]["humanAnswered"]
        ),
        (&json!(1), &json!(40), &json!(5), &json!(5), &json!(41))
    );
    close(&w["us"]["rate"], 1.0 / 41.0 * 100.0);
    assert_eq!(w["us"]["status"], "WARNING", "2.44 % is at least 80 % of 3 %");
    assert_eq!(w["status"], "WARNING");

    let b = row("Breach");
    assert_eq!(b["limit"], 4.0);
    close(&b["uk"]["rate"], 2.0 / 42.0 * 100.0);
    assert_eq!(b["uk"]["status"], "BREACH");
    close(&b["uk"]["headroom"], 4.0 - 2.0 / 42.0 * 100.0);
    close(&b["us"]["rate"], 4.0 / 54.0 * 100.0);
    assert_eq!((&b["us"]["drops"], &b["us"]["humanAnswered"]), (&json!(4), &json!(54)));
    assert_eq!(b["status"], "BREACH");

    let s = row("Sales");
    assert_eq!(
        (&s["uk"]["rate"], &s["uk"]["headroom"], &s["status"]),
        (&Value::Null, &Value::Null, &json!("OK"))
    );

    // Named campaigns; an inbound campaign or a foreign id is refused, naming the argument.
    let only = app.gql(Some(&supervisor), query, json!({ "c": [warn] })).await;
    assert_eq!(only.ok()["complianceStatus"].as_array().unwrap().len(), 1);
    let inbound = app.gql(Some(&supervisor), query, json!({ "c": [warn, fx.care] })).await;
    assert_eq!(inbound.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(field_names(&inbound.body["errors"]), ["campaignIds[1]"]);
    let agent = app.token(&org, Role::Agent).await;
    assert_eq!(
        app.gql(Some(&agent), query, json!({})).await.error_code(),
        Some("FORBIDDEN")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn other_tenants_ids_are_refused_and_their_organizations_not_found() {
    let app = TestApp::spawn().await;
    let (org, _) = seed(&app, "acme").await;
    let (other, theirs) = seed(&app, "other").await;
    let supervisor = app.token(&org, Role::Supervisor).await;
    let foreign = with(&window(), json!({ "campaignIds": [theirs.care] }));

    let q = json!({ "metrics": ["HANDLED"], "groupBy": ["CAMPAIGN"], "filter": foreign });
    let response = app.gql(Some(&supervisor), ANALYTICS, json!({ "q": q })).await;
    assert_eq!(response.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(field_names(&response.body["errors"]), ["query.filter.campaignIds[0]"]);
    for field in [
        "campaignPerformance(filter: $f) { campaignId }",
        "dispositionBreakdown(filter: $f) { dispositionedCalls }",
        "agentPerformance(filter: $f) { totalCount }",
    ] {
        let response = app
            .gql(
                Some(&supervisor),
                &format!("query($f: KpiFilter!) {{ {field} }}"),
                json!({ "f": foreign }),
            )
            .await;
        assert_eq!(response.error_code(), Some("BAD_USER_INPUT"), "{field}");
        assert_eq!(
            field_names(&response.body["errors"]),
            ["filter.campaignIds[0]"],
            "{field}"
        );
    }
    let compliance = app
        .gql(
            Some(&supervisor),
            "query($c: [ID!]) { complianceStatus(campaignIds: $c) { campaignId } }",
            json!({ "c": [theirs.sales] }),
        )
        .await;
    assert_eq!(field_names(&compliance.body["errors"]), ["campaignIds[0]"]);

    // orgId of another organization: NOT_FOUND for anyone but a SUPER_ADMIN.
    let cross = json!({ "q": { "metrics": ["HANDLED"], "filter": window() }, "org": other.id });
    assert_eq!(
        app.gql(Some(&supervisor), ANALYTICS, cross.clone()).await.error_code(),
        Some("NOT_FOUND")
    );
    let query = agent_performance_query();
    let response = app
        .gql(Some(&supervisor), &query, json!({ "f": window(), "org": other.id }))
        .await;
    assert_eq!(response.error_code(), Some("NOT_FOUND"));
    let super_admin = app.token(&org, Role::SuperAdmin).await;
    let across = app.gql(Some(&super_admin), ANALYTICS, cross).await;
    let handled = across.ok()["analytics"]["rows"][0]["values"][0].as_f64().unwrap();
    let theirs_total = app
        .gql(
            Some(&super_admin),
            "query($f: KpiFilter!, $o: ID) { kpiSummary(filter: $f, orgId: $o) { handled } }",
            json!({ "f": window(), "o": other.id }),
        )
        .await;
    assert_eq!(Some(handled), theirs_total.ok()["kpiSummary"]["handled"].as_f64());
    let rows = app
        .gql(Some(&super_admin), &query, json!({ "f": window(), "org": other.id }))
        .await;
    let ids: Vec<Value> = rows.ok()["agentPerformance"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["agentId"].clone())
        .collect();
    assert_eq!(ids, theirs.agents.iter().map(|a| json!(a)).collect::<Vec<_>>());
}

//! Agents through GraphQL: the listing (filters, order, pages, totals) and who sees which
//! agents (ADMIN all, SUPERVISOR their teams or all by the organization's setting, AGENT
//! themselves, VIEWER names and states); the profile with performance equal to
//! `agentPerformance` and the activity timeline; create, update and deactivate with their
//! rules, bad input and other tenants' ids; audit records; and the N+1 guard that counts the
//! SQL statements of a 50-agent page with teams and skills.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::fixture::{AgentSpec, FixtureOrg};
use common::TestApp;
use diesel_async::RunQueryDsl;
use omnivox::auth::Role;
use omnivox::db;
use omnivox::db::contact_centre::{self as cc, NewAgentSkill, NewStateInterval};
use omnivox::db::interactions::NewInteraction;
use omnivox::domain::{AgentState, Direction, Outcome, Presence, RoutingState};
use omnivox::kpi::writer::{insert_calls, insert_state_intervals};
use serde_json::{json, Value};
use uuid::Uuid;

const AGENTS: &str = "query($f: AgentsFilter, $o: AgentsOrder, $first: Int, $after: String) {
  agents(filter: $f, orderBy: $o, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { id displayName active presence routingState team { id name } } } } }";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn names(response: &Value) -> Vec<String> {
    response["agents"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["displayName"].as_str().unwrap().to_owned())
        .collect()
}

/// Teams Blue (0) and Red (1); Alice (the AGENT login) and Bob in Blue, Carol in Red, Dan
/// without a team.
async fn org(app: &TestApp, slug: &str) -> FixtureOrg {
    FixtureOrg::builder(slug)
        .teams(["Blue", "Red"])
        .agent(AgentSpec::new("Alice").team(0).user(Role::Agent))
        .agent(AgentSpec::new("Bob").team(0))
        .agent(AgentSpec::new("Carol").team(1))
        .build(&app.state)
        .await
}

async fn add_dan(app: &TestApp, org: &FixtureOrg, admin: &str) -> String {
    let created = app
        .gql(
            Some(admin),
            "mutation { createAgent(input: { displayName: \"Dan\", extension: \"104\" }) { id team { id } } }",
            json!({}),
        )
        .await;
    let _ = org;
    created.ok()["createAgent"]["id"].as_str().unwrap().to_owned()
}

async fn supervise(app: &TestApp, admin: &str, team: Uuid, user: Uuid) {
    app.gql(
        Some(admin),
        "mutation($t: ID!, $u: [ID!]!) { setTeamSupervisors(teamId: $t, userIds: $u) { id } }",
        json!({ "t": team, "u": [user] }),
    )
    .await
    .ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn each_role_sees_its_scope_of_agents() {
    let app = TestApp::spawn().await;
    let org = org(&app, "scope").await;
    let admin = app.token(&org, Role::Admin).await;
    add_dan(&app, &org, &admin).await;
    let list = |token: String| {
        let app = &app;
        async move { names(app.gql(Some(&token), AGENTS, json!({})).await.ok()) }
    };

    assert_eq!(list(admin.clone()).await, ["Alice", "Bob", "Carol", "Dan"]);
    // A SUPERVISOR without teams sees nobody; with Blue, Blue's agents.
    let supervisor = app.token(&org, Role::Supervisor).await;
    assert!(list(supervisor.clone()).await.is_empty());
    supervise(&app, &admin, org.teams[0], org.user(Role::Supervisor).id).await;
    assert_eq!(list(supervisor.clone()).await, ["Alice", "Bob"]);
    // Carol is outside: FORBIDDEN, not hidden as NOT_FOUND (every VIEWER reads her name).
    let carol = app
        .gql(
            Some(&supervisor),
            "query($i: ID!) { agent(id: $i) { id } }",
            json!({ "i": org.agents[2] }),
        )
        .await;
    assert_eq!(carol.error_code(), Some("FORBIDDEN"), "{}", carol.body);
    // The organization's setting widens a SUPERVISOR's scope to every agent.
    let version = app
        .gql(
            Some(&admin),
            "{ organization { businessSettings { version } } }",
            json!({}),
        )
        .await
        .ok()["organization"]["businessSettings"]["version"]
        .as_i64()
        .unwrap();
    let widened = app
        .gql(
            Some(&admin),
            "mutation($v: Int!) { updateBusinessSettings(input: { supervisorsSeeAllAgents: true }, expectedVersion: $v) { supervisorsSeeAllAgents } }",
            json!({ "v": version }),
        )
        .await;
    assert_eq!(widened.ok()["updateBusinessSettings"]["supervisorsSeeAllAgents"], true);
    assert_eq!(list(supervisor).await, ["Alice", "Bob", "Carol", "Dan"]);

    // An AGENT sees only themselves.
    let agent = app.token(&org, Role::Agent).await;
    assert_eq!(list(agent.clone()).await, ["Alice"]);
    let bob = app
        .gql(
            Some(&agent),
            "query($i: ID!) { agent(id: $i) { id } }",
            json!({ "i": org.agents[1] }),
        )
        .await;
    assert_eq!(bob.error_code(), Some("FORBIDDEN"));
    let own = app
        .gql(
            Some(&agent),
            "query($i: ID!) { agent(id: $i) { displayName extension skills { name } } }",
            json!({ "i": org.agents[0] }),
        )
        .await;
    assert_eq!(own.ok()["agent"]["displayName"], "Alice");

    // A VIEWER reads every agent's name, team and state, but no profile field.
    let viewer = app.token(&org, Role::Viewer).await;
    assert_eq!(list(viewer.clone()).await, ["Alice", "Bob", "Carol", "Dan"]);
    let profile = app
        .gql(
            Some(&viewer),
            "query($i: ID!) { agent(id: $i) { displayName extension } }",
            json!({ "i": org.agents[0] }),
        )
        .await;
    assert_eq!(profile.error_code(), Some("FORBIDDEN"), "{}", profile.body);
    let by_skill = app
        .gql(Some(&viewer), AGENTS, json!({ "f": { "skillIds": [Uuid::new_v4()] } }))
        .await;
    assert_eq!(
        by_skill.error_code(),
        Some("FORBIDDEN"),
        "skills are not a VIEWER's to read"
    );

    // Another organization's agent is NOT_FOUND.
    let other = app.create_org("elsewhere").await;
    let other_admin = app.token(&other, Role::Admin).await;
    let foreign = app
        .gql(
            Some(&other_admin),
            "query($i: ID!) { agent(id: $i) { id } }",
            json!({ "i": org.agents[0] }),
        )
        .await;
    assert_eq!(foreign.error_code(), Some("NOT_FOUND"));
    assert!(list(other_admin).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_listing_filters_orders_and_pages() {
    let app = TestApp::spawn().await;
    let org = org(&app, "filters").await;
    let admin = app.token(&org, Role::Admin).await;
    let dan = add_dan(&app, &org, &admin).await;
    let skill = app
        .gql(
            Some(&admin),
            "mutation { createSkill(name: \"Spanish\") { id } }",
            json!({}),
        )
        .await
        .ok()["createSkill"]["id"]
        .clone();
    app.gql(
        Some(&admin),
        "mutation($a: [SkillAssignmentInput!]!) { assignSkills(assignments: $a) { agentIds } }",
        json!({ "a": [{ "agentId": org.agents[1], "skillId": skill, "proficiency": 4 },
                      { "agentId": dan, "skillId": skill, "proficiency": 2 }] }),
    )
    .await
    .ok();
    let query = |filter: Value| {
        let (app, admin) = (&app, &admin);
        async move { names(app.gql(Some(admin), AGENTS, json!({ "f": filter })).await.ok()) }
    };
    assert_eq!(query(json!({ "teamIds": [org.teams[0]] })).await, ["Alice", "Bob"]);
    assert_eq!(query(json!({ "skillIds": [skill] })).await, ["Bob", "Dan"]);
    assert_eq!(
        query(json!({ "skillIds": [skill], "teamIds": [org.teams[0]] })).await,
        ["Bob"]
    );
    assert_eq!(query(json!({ "search": "aro" })).await, ["Carol"]);
    assert_eq!(query(json!({ "search": "10" })).await, ["Dan"], "the extension matches");
    assert_eq!(
        query(json!({ "search": "%" })).await,
        Vec::<String>::new(),
        "% is literal"
    );
    assert_eq!(
        query(json!({ "presence": ["OFFLINE"], "routingState": ["IDLE"] }))
            .await
            .len(),
        4
    );
    assert!(query(json!({ "presence": ["AVAILABLE"] })).await.is_empty());

    // Unknown or foreign ids in a filter are named, as in the KPI filters.
    let other = app.create_org("filters-other").await;
    let foreign_team = cc::insert_team(&mut app.state.system_db.get().await.unwrap(), &other.tenant, "X")
        .await
        .unwrap();
    let refused = app
        .gql(
            Some(&admin),
            AGENTS,
            json!({ "f": { "teamIds": [org.teams[0], foreign_team] } }),
        )
        .await;
    assert_eq!(refused.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(
        refused.body["errors"][0]["extensions"]["fields"][0]["field"],
        "filter.teamIds[1]"
    );

    // Order and pages: two by two, newest first; totals whatever the page.
    let order = json!({ "field": "NAME", "direction": "DESC" });
    let first = app.gql(Some(&admin), AGENTS, json!({ "o": order, "first": 2 })).await;
    assert_eq!(names(first.ok()), ["Dan", "Carol"]);
    assert_eq!(first.ok()["agents"]["totalCount"], 4);
    assert_eq!(first.ok()["agents"]["pageInfo"]["hasNextPage"], true);
    let cursor = first.ok()["agents"]["pageInfo"]["endCursor"].clone();
    let second = app
        .gql(Some(&admin), AGENTS, json!({ "o": order, "first": 2, "after": cursor }))
        .await;
    assert_eq!(names(second.ok()), ["Bob", "Alice"]);
    assert_eq!(second.ok()["agents"]["pageInfo"]["hasNextPage"], false);
    let bad = app.gql(Some(&admin), AGENTS, json!({ "after": "nonsense" })).await;
    assert_eq!(bad.error_code(), Some("BAD_USER_INPUT"));
}

const PROFILE: &str = "query($i: ID!, $r: AgentRange!, $from: DateTime!, $to: DateTime!) { agent(id: $i) {
  displayName extension userId presence routingState routingStateSince team { name }
  skills { skillId name proficiency }
  performance(range: $r) { offered answered handled averageHandleTime occupancy callsPerAgentHour serviceLevel }
  activity(from: $from, to: $to) {
    truncated
    entries { kind at endedAt secondsInWindow axis state reasonCode interactionId externalId talkSeconds wrapSeconds }
    timeInState { axis state reasonCode seconds } } } }";

const PERFORMANCE: &str = "query($f: KpiFilter!) { agentPerformance(filter: $f, first: 50) { edges { node {
  agentId metrics { offered answered handled averageHandleTime occupancy callsPerAgentHour serviceLevel } } } } }";

fn call(n: usize, agent: Uuid, offered: DateTime<Utc>, talk_s: i64, wrap_s: i64) -> NewInteraction {
    let answered = offered + TimeDelta::seconds(10);
    let ended = answered + TimeDelta::seconds(talk_s);
    NewInteraction {
        campaign_id: None,
        agent_id: Some(agent),
        external_id: format!("CA-agents-{n}"),
        direction: Direction::Inbound,
        customer_number: Some("+441234567890".into()),
        offered_at: offered,
        answered_at: Some(answered),
        ended_at: Some(ended),
        wrap_ended_at: Some(ended + TimeDelta::seconds(wrap_s)),
        wait_ms: Some(10_000),
        talk_ms: talk_s * 1_000,
        hold_ms: 0,
        wrap_ms: wrap_s * 1_000,
        outcome: Outcome::Answered,
        disposition_id: None,
        answered_by: None,
        notes: None,
    }
}

fn interval(agent: Uuid, state: AgentState, reason: Option<&str>, from: &str, to: &str) -> NewStateInterval {
    NewStateInterval {
        agent_id: agent,
        state,
        reason: reason.map(Into::into),
        started_at: at(from),
        ended_at: Some(at(to)),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_profile_gives_performance_as_agent_performance_and_one_activity_timeline() {
    let app = TestApp::spawn().await;
    let org = org(&app, "profile").await;
    let alice = org.agents[0];
    let mut conn = app.state.system_db.get().await.unwrap();
    let calls = vec![
        call(1, alice, at("2026-01-05T09:10:00Z"), 300, 30),
        call(2, alice, at("2026-01-05T10:20:00Z"), 120, 15),
        call(3, org.agents[1], at("2026-01-05T09:40:00Z"), 200, 20),
    ];
    insert_calls(&mut conn, &org.tenant, &calls).await.unwrap();
    let available = AgentState::Presence(Presence::Available);
    insert_state_intervals(
        &mut conn,
        &org.tenant,
        &[
            interval(alice, available, None, "2026-01-05T08:00:00Z", "2026-01-05T10:00:00Z"),
            interval(
                alice,
                AgentState::Presence(Presence::Break),
                Some("COFFEE"),
                "2026-01-05T10:00:00Z",
                "2026-01-05T10:15:00Z",
            ),
            interval(alice, available, None, "2026-01-05T10:15:00Z", "2026-01-05T12:00:00Z"),
            interval(
                alice,
                AgentState::Routing(RoutingState::OnCall),
                None,
                "2026-01-05T09:10:10Z",
                "2026-01-05T09:15:10Z",
            ),
        ],
    )
    .await
    .unwrap();
    let range = json!({ "from": "2026-01-05T00:00:00Z", "to": "2026-01-06T00:00:00Z" });
    let vars = json!({ "i": alice, "r": range, "from": "2026-01-05T09:00:00Z", "to": "2026-01-05T11:00:00Z" });

    let supervisor = app.token(&org, Role::Admin).await;
    let profile = app.gql(Some(&supervisor), PROFILE, vars.clone()).await;
    let agent = &profile.ok()["agent"];
    assert_eq!(agent["team"]["name"], "Blue");
    assert_eq!(agent["userId"], json!(org.user(Role::Agent).id));
    // The same numbers as `agentPerformance` (one code path), and real ones.
    let rows = app.gql(Some(&supervisor), PERFORMANCE, json!({ "f": range })).await;
    let row = rows.ok()["agentPerformance"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["agentId"] == json!(alice))
        .unwrap()["node"]["metrics"]
        .clone();
    assert_eq!(agent["performance"], row);
    assert_eq!(agent["performance"]["handled"], 2);
    assert!(agent["performance"]["occupancy"].as_f64().unwrap() > 0.0);

    // The timeline: states and calls merged by time, clipped to 09:00–11:00.
    let activity = &agent["activity"];
    let kinds: Vec<(String, String)> = activity["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap().into(), e["state"].as_str().unwrap().into()))
        .collect();
    let expected: Vec<(String, String)> = [
        ("STATE", "AVAILABLE"),
        ("CALL", "ANSWERED"),
        ("STATE", "ON_CALL"),
        ("STATE", "BREAK"),
        ("STATE", "AVAILABLE"),
        ("CALL", "ANSWERED"),
    ]
    .iter()
    .map(|(k, s)| ((*k).into(), (*s).into()))
    .collect();
    assert_eq!(kinds, expected, "{activity}");
    let call_entry = &activity["entries"][1];
    assert_eq!(call_entry["externalId"], "CA-agents-1");
    assert_eq!(call_entry["talkSeconds"], 300.0);
    let time: Vec<(String, Option<String>, f64)> = activity["timeInState"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["state"].as_str().unwrap().into(),
                t["reasonCode"].as_str().map(Into::into),
                t["seconds"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        time,
        vec![
            ("AVAILABLE".into(), None, 105.0 * 60.0),
            ("BREAK".into(), Some("COFFEE".into()), 15.0 * 60.0),
            ("ON_CALL".into(), None, 300.0),
        ]
    );

    // The AGENT reads their own; a window over 31 days is refused by field.
    let agent_token = app.token(&org, Role::Agent).await;
    let own = app.gql(Some(&agent_token), PROFILE, vars.clone()).await;
    assert_eq!(own.ok()["agent"]["performance"], row);
    let mut long = vars.clone();
    long["to"] = json!("2026-03-01T00:00:00Z");
    let refused = app.gql(Some(&agent_token), PROFILE, long).await;
    assert_eq!(refused.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(refused.body["errors"][0]["extensions"]["fields"][0]["field"], "to");
}

async fn audit_actions(app: &TestApp, org: &FixtureOrg) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct Action {
        #[diesel(sql_type = diesel::sql_types::Text)]
        action: String,
    }
    let mut conn = app.state.system_db.get().await.unwrap();
    let rows: Vec<Action> =
        diesel::sql_query("SELECT action FROM audit_log WHERE organization_id = $1 ORDER BY chain_seq")
            .bind::<diesel::sql_types::Uuid, _>(org.id)
            .load(&mut conn)
            .await
            .unwrap();
    rows.into_iter().map(|r| r.action).collect()
}

const CREATE: &str = "mutation($i: CreateAgentInput!) { createAgent(input: $i) { id displayName extension presence routingState team { id } } }";
const UPDATE: &str = "mutation($id: ID!, $i: UpdateAgentInput!) { updateAgent(id: $id, input: $i) { id displayName extension team { id } } }";
const DEACTIVATE: &str = "mutation($id: ID!) { deactivateAgent(id: $id) { id active } }";

#[tokio::test(flavor = "multi_thread")]
async fn agents_are_created_updated_and_deactivated_within_the_rules() {
    let app = TestApp::spawn().await;
    let org = org(&app, "crud").await;
    let admin = app.token(&org, Role::Admin).await;
    let supervisor = app.token(&org, Role::Supervisor).await;
    supervise(&app, &admin, org.teams[0], org.user(Role::Supervisor).id).await;
    let (blue, red) = (org.teams[0], org.teams[1]);

    // A SUPERVISOR creates into a team they supervise, not elsewhere nor without a team.
    let created = app
        .gql(
            Some(&supervisor),
            CREATE,
            json!({ "i": { "displayName": " Erin ", "extension": "201", "teamId": blue } }),
        )
        .await;
    let erin = created.ok()["createAgent"].clone();
    assert_eq!(erin["displayName"], "Erin");
    assert_eq!(
        (erin["presence"].as_str(), erin["routingState"].as_str()),
        (Some("OFFLINE"), Some("IDLE"))
    );
    for team in [Some(red), None] {
        let refused = app
            .gql(
                Some(&supervisor),
                CREATE,
                json!({ "i": { "displayName": "Fay", "teamId": team } }),
            )
            .await;
        assert_eq!(refused.error_code(), Some("FORBIDDEN"), "{team:?}: {}", refused.body);
    }
    // Bad input is named; a duplicate extension is CONFLICT; nothing of them is stored.
    let bad = app
        .gql(
            Some(&admin),
            CREATE,
            json!({ "i": { "displayName": "", "extension": "no spaces" } }),
        )
        .await;
    assert_eq!(bad.error_code(), Some("BAD_USER_INPUT"));
    let fields: Vec<&str> = bad.body["errors"][0]["extensions"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["input.displayName", "input.extension"]);
    let duplicate = app
        .gql(
            Some(&admin),
            CREATE,
            json!({ "i": { "displayName": "Twin", "extension": "201" } }),
        )
        .await;
    assert_eq!(duplicate.error_code(), Some("CONFLICT"));
    // Another tenant's team or user: NOT_FOUND.
    let other = app.create_org("crud-other").await;
    let foreign_team = cc::insert_team(&mut app.state.system_db.get().await.unwrap(), &other.tenant, "Theirs")
        .await
        .unwrap();
    let foreign = app
        .gql(
            Some(&admin),
            CREATE,
            json!({ "i": { "displayName": "Gil", "teamId": foreign_team } }),
        )
        .await;
    assert_eq!(foreign.error_code(), Some("NOT_FOUND"));
    let foreign = app
        .gql(
            Some(&admin),
            CREATE,
            json!({ "i": { "displayName": "Gil", "userId": other.user(Role::Agent).id } }),
        )
        .await;
    assert_eq!(foreign.error_code(), Some("NOT_FOUND"));
    let total = app.gql(Some(&admin), AGENTS, json!({})).await;
    assert_eq!(total.ok()["agents"]["totalCount"], 4, "only Erin was added");

    // Updates: a SUPERVISOR may not move an agent out of their teams, nor touch Carol (Red).
    let erin_id = erin["id"].as_str().unwrap().to_owned();
    let moved = app
        .gql(
            Some(&supervisor),
            UPDATE,
            json!({ "id": erin_id, "i": { "teamId": red } }),
        )
        .await;
    assert_eq!(moved.error_code(), Some("FORBIDDEN"));
    let carol = app
        .gql(
            Some(&supervisor),
            UPDATE,
            json!({ "id": org.agents[2], "i": { "displayName": "C" } }),
        )
        .await;
    assert_eq!(carol.error_code(), Some("FORBIDDEN"));
    let renamed = app
        .gql(
            Some(&supervisor),
            UPDATE,
            json!({ "id": erin_id, "i": { "displayName": "Erin B", "extension": null } }),
        )
        .await;
    assert_eq!(renamed.ok()["updateAgent"]["displayName"], "Erin B");
    assert_eq!(renamed.ok()["updateAgent"]["extension"], Value::Null);
    assert_eq!(
        renamed.ok()["updateAgent"]["team"]["id"],
        json!(blue),
        "omitted fields are kept"
    );
    let admin_moves = app
        .gql(Some(&admin), UPDATE, json!({ "id": erin_id, "i": { "teamId": null } }))
        .await;
    assert_eq!(admin_moves.ok()["updateAgent"]["team"], Value::Null);

    // Deactivation needs OFFLINE and IDLE.
    let agent = app.token(&org, Role::Agent).await;
    app.gql(
        Some(&agent),
        "mutation { setAgentPresence(presence: AVAILABLE) { id } }",
        json!({}),
    )
    .await
    .ok();
    let busy = app.gql(Some(&admin), DEACTIVATE, json!({ "id": org.agents[0] })).await;
    assert_eq!(busy.error_code(), Some("CONFLICT"), "{}", busy.body);
    let done = app.gql(Some(&admin), DEACTIVATE, json!({ "id": org.agents[1] })).await;
    assert_eq!(done.ok()["deactivateAgent"]["active"], false);
    let listed = app.gql(Some(&admin), AGENTS, json!({})).await;
    assert!(!names(listed.ok()).contains(&"Bob".to_owned()));
    let all = app
        .gql(Some(&admin), AGENTS, json!({ "f": { "includeInactive": true } }))
        .await;
    assert!(names(all.ok()).contains(&"Bob".to_owned()));
    let foreign = app
        .gql(
            Some(&app.token(&other, Role::Admin).await),
            DEACTIVATE,
            json!({ "id": org.agents[2] }),
        )
        .await;
    assert_eq!(foreign.error_code(), Some("NOT_FOUND"));

    // One audit record per change, none for refusals.
    let actions = audit_actions(&app, &org).await;
    let ours: Vec<&str> = actions
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("agent.") && *a != "agent.presence")
        .collect();
    assert_eq!(
        ours,
        ["agent.create", "agent.update", "agent.update", "agent.deactivate"]
    );
}

/// The N+1 guard: a page of 50 agents with their team (and its supervisors) and skills costs
/// the same handful of statements as a page of 5, because nested fields go through
/// DataLoaders. Statements are counted by the database layer's instrumentation for this
/// test's own database (the report worker's polling may add one or two; the bound allows it).
#[tokio::test(flavor = "multi_thread")]
async fn a_page_of_agents_with_teams_and_skills_is_loaded_in_batches() {
    let app = TestApp::spawn().await;
    let names: Vec<String> = (0..50).map(|n| format!("Agent {n:02}")).collect();
    let org = FixtureOrg::builder("nplus1")
        .teams(["T1", "T2", "T3", "T4", "T5"])
        .agents(names.iter().map(String::as_str))
        .build(&app.state)
        .await;
    let mut conn = app.state.system_db.get().await.unwrap();
    let mut skills = Vec::new();
    for name in ["English", "Spanish", "Billing"] {
        skills.push(cc::insert_skill(&mut conn, &org.tenant, name, None).await.unwrap());
    }
    let rows: Vec<NewAgentSkill> = org
        .agents
        .iter()
        .flat_map(|agent| {
            skills.iter().enumerate().map(|(i, skill)| NewAgentSkill {
                agent_id: *agent,
                skill_id: *skill,
                proficiency: i16::try_from(i + 1).unwrap(),
            })
        })
        .collect();
    cc::insert_agent_skills(&mut conn, &org.tenant, &rows).await.unwrap();
    drop(conn);
    let admin = app.token(&org, Role::Admin).await;
    for team in &org.teams {
        supervise(&app, &admin, *team, org.user(Role::Supervisor).id).await;
    }
    let query = "query($first: Int) { agents(first: $first) { totalCount edges { node {
        id displayName team { id name supervisors { displayName } } skills { name proficiency } } } } }";
    let url = app.database.url.clone();
    let mut cost = Vec::new();
    for first in [5, 50] {
        let before = db::statements::executed(&url);
        let response = app.gql(Some(&admin), query, json!({ "first": first })).await;
        let after = db::statements::executed(&url);
        let edges = response.ok()["agents"]["edges"].as_array().unwrap().clone();
        assert_eq!(edges.len(), first);
        assert!(edges.iter().all(|e| e["node"]["skills"].as_array().unwrap().len() == 3));
        assert!(edges
            .iter()
            .all(|e| e["node"]["team"]["supervisors"][0]["displayName"].is_string()));
        cost.push(after - before);
    }
    // Authentication, page, count, then one read each for teams, supervisors and skills (the
    // pool's liveness check on each checkout counts too): nine, whatever the page size. One
    // statement per agent would be 50 or more.
    println!("statements per page: 5 agents {}, 50 agents {}", cost[0], cost[1]);
    assert!(
        cost[1] <= 12,
        "50 agents cost {} statements (5 cost {})",
        cost[1],
        cost[0]
    );
    assert!(cost[1] <= cost[0] + 2, "the cost grows with the page: {cost:?}");
}

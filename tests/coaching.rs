//! Coaching sessions through the API: a supervisor schedules, changes and completes a session
//! with an agent, linking calls; the agent reads their own and acknowledges it; the linked
//! calls are filtered and masked per role exactly as `interactions` does; unknown and other
//! tenants' ids are NOT_FOUND, bad input BAD_USER_INPUT naming the field, and nothing is stored
//! by a refusal. Every change is in the audit chain.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use chrono::{Duration as TimeDelta, Utc};
use common::fixture::{AgentSpec, FixtureOrg};
use common::TestApp;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use omnivox::auth::Role;
use serde_json::{json, Value};

const SESSION_FIELDS: &str = "id agentId coachUserId topic notes scheduledAt status completedAt outcome followUpOn
    acknowledgedAt interactions { id externalId customerNumber agentId }";

fn create_query() -> String {
    format!("mutation($i: CreateCoachingSessionInput!) {{ createCoachingSession(input: $i) {{ {SESSION_FIELDS} }} }}")
}
fn update_query() -> String {
    format!(
        "mutation($id: ID!, $i: UpdateCoachingSessionInput!) {{ updateCoachingSession(id: $id, input: $i) {{ {SESSION_FIELDS} }} }}"
    )
}
fn complete_query() -> String {
    format!(
        "mutation($id: ID!, $o: String!, $f: NaiveDate) {{ completeCoachingSession(id: $id, outcome: $o, followUpOn: $f) {{ {SESSION_FIELDS} }} }}"
    )
}
fn acknowledge_query() -> String {
    format!("mutation($id: ID!) {{ acknowledgeCoachingSession(id: $id) {{ {SESSION_FIELDS} }} }}")
}
fn list_query() -> String {
    format!(
        "query($f: CoachingSessionFilter, $first: Int, $after: String) {{ coachingSessions(filter: $f, first: $first, after: $after) {{
        totalCount pageInfo {{ hasNextPage endCursor }} edges {{ node {{ {SESSION_FIELDS} }} }} }} }}"
    )
}
fn one_query() -> String {
    format!("query($id: ID!) {{ coachingSession(id: $id) {{ {SESSION_FIELDS} }} }}")
}

const RECORD: &str =
    "mutation($e: [CallEventInput!]!) { recordCallEvents(events: $e) { results { status reason interactionId } } }";

/// An organization with two agents: Ann (the AGENT user's profile) and Bob (no user).
/// Ann and Bob in a team the organization's SUPERVISOR supervises (whom a supervisor coaches is
/// whom they manage); Cy in no team, outside the supervisor's reach.
async fn org(app: &TestApp, slug: &str) -> FixtureOrg {
    let org = FixtureOrg::builder(slug)
        .created_at(Utc::now() - TimeDelta::days(2))
        .agent(AgentSpec::new("Ann").user(Role::Agent))
        .agent(AgentSpec::new("Bob"))
        .agent(AgentSpec::new("Cy"))
        .build(&app.state)
        .await;
    let admin = app.token(&org, Role::Admin).await;
    let team = app
        .gql(
            Some(&admin),
            "mutation($s: [ID!]) { createTeam(name: \"Coached\", supervisorIds: $s) { id } }",
            json!({ "s": [org.user(Role::Supervisor).id] }),
        )
        .await;
    let team = team.ok()["createTeam"]["id"].clone();
    app.gql(
        Some(&admin),
        "mutation($t: ID!, $a: [ID!]!) { addTeamMembers(teamId: $t, agentIds: $a) { id } }",
        json!({ "t": team, "a": [org.agents[0], org.agents[1]] }),
    )
    .await
    .ok();
    org
}

/// An answered call of `agent`; returns its interaction id.
async fn call(app: &TestApp, admin: &str, external_id: &str, agent: uuid::Uuid, minutes_ago: i64) -> String {
    let offered = Utc::now() - TimeDelta::minutes(minutes_ago);
    let events = json!([
        { "externalId": external_id, "type": "OFFERED", "occurredAt": offered.to_rfc3339(),
          "customerNumber": "+447700900123" },
        { "externalId": external_id, "type": "ANSWERED", "occurredAt": (offered + TimeDelta::seconds(5)).to_rfc3339(),
          "agentId": agent },
    ]);
    let recorded = app.gql(Some(admin), RECORD, json!({ "e": events })).await;
    let results = &recorded.ok()["recordCallEvents"]["results"];
    assert_eq!(results[0]["status"], "ACCEPTED", "{results}");
    results[1]["interactionId"].as_str().unwrap().to_owned()
}

fn field_names(response: &common::GqlResponse) -> Vec<String> {
    response.body["errors"][0]["extensions"]["fields"]
        .as_array()
        .map(|fields| fields.iter().map(|f| f["field"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

async fn audit_actions(app: &TestApp, org: &FixtureOrg) -> Vec<String> {
    let mut conn = AsyncPgConnection::establish(&app.database.url).await.unwrap();
    let records = omnivox::audit::recent(&mut conn, Some(org.id), 100).await.unwrap();
    assert!(omnivox::audit::verify_chain(&mut conn, Some(org.id))
        .await
        .unwrap()
        .intact());
    records.into_iter().map(|r| r.action).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_supervisor_coaches_an_agent_who_reads_and_acknowledges_it() {
    let app = TestApp::spawn().await;
    let org = org(&app, "coach").await;
    let (ann, bob) = (org.agents[0], org.agents[1]);
    let admin = app.token(&org, Role::Admin).await;
    let supervisor = app.token(&org, Role::Supervisor).await;
    let agent = app.token(&org, Role::Agent).await;
    let ann_call = call(&app, &admin, "CA-ANN-1", ann, 60).await;
    let bob_call = call(&app, &admin, "CA-BOB-1", bob, 50).await;

    let scheduled_at = (Utc::now() + TimeDelta::days(1)).to_rfc3339();
    let created = app
        .gql(
            Some(&supervisor),
            &create_query(),
            json!({ "i": { "agentId": ann, "scheduledAt": scheduled_at, "topic": "  Call openings  ",
                "notes": "Greet by name", "interactionIds": [ann_call, bob_call, ann_call] } }),
        )
        .await;
    let created = created.ok()["createCoachingSession"].clone();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["topic"], "Call openings");
    assert_eq!(created["status"], "SCHEDULED");
    assert_eq!(created["coachUserId"], org.user(Role::Supervisor).id.to_string());
    // The supervisor sees both calls (a duplicate id is linked once), numbers in full.
    let calls = created["interactions"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["id"], ann_call.as_str(), "oldest first");
    assert_eq!(calls[0]["customerNumber"], "+447700900123");

    // Ann reads her session: only her own call, the number masked as in `interactions`.
    let mine = app.gql(Some(&agent), &list_query(), json!({})).await;
    let mine = &mine.ok()["coachingSessions"];
    assert_eq!(mine["totalCount"], 1);
    let seen = &mine["edges"][0]["node"];
    assert_eq!(seen["notes"], "Greet by name");
    let seen_calls = seen["interactions"].as_array().unwrap();
    assert_eq!(seen_calls.len(), 1, "another agent's call is not shown to an agent");
    assert_eq!(seen_calls[0]["id"], ann_call.as_str());
    assert_eq!(seen_calls[0]["customerNumber"], "+44******0123");
    let listed = app
        .gql(
            Some(&agent),
            "{ interactions { edges { node { id customerNumber } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        listed.ok()["interactions"]["edges"][0]["node"]["customerNumber"],
        seen_calls[0]["customerNumber"],
        "the same masking as `interactions`"
    );

    // Not completed yet: nothing to acknowledge.
    let early = app.gql(Some(&agent), &acknowledge_query(), json!({ "id": id })).await;
    assert_eq!(early.error_code(), Some("CONFLICT"));

    // The supervisor changes it, then completes it.
    let updated = app
        .gql(
            Some(&supervisor),
            &update_query(),
            json!({ "id": id, "i": { "topic": "Openings and closings", "notes": "", "interactionIds": [ann_call] } }),
        )
        .await;
    let updated = &updated.ok()["updateCoachingSession"];
    assert_eq!(updated["topic"], "Openings and closings");
    assert!(updated["notes"].is_null(), "an empty string clears the notes");
    assert_eq!(updated["interactions"].as_array().unwrap().len(), 1);
    let follow_up = (Utc::now() + TimeDelta::days(14)).date_naive().to_string();
    let completed = app
        .gql(
            Some(&supervisor),
            &complete_query(),
            json!({ "id": id, "o": "Uses the customer's name", "f": follow_up }),
        )
        .await;
    let completed = &completed.ok()["completeCoachingSession"];
    assert_eq!(completed["status"], "COMPLETED");
    assert_eq!(completed["outcome"], "Uses the customer's name");
    assert_eq!(completed["followUpOn"], follow_up.as_str());
    assert!(completed["completedAt"].is_string());
    // A completed session stands: no change, no second completion.
    let change = app
        .gql(
            Some(&supervisor),
            &update_query(),
            json!({ "id": id, "i": { "topic": "Again" } }),
        )
        .await;
    assert_eq!(change.error_code(), Some("CONFLICT"));
    let twice = app
        .gql(Some(&supervisor), &complete_query(), json!({ "id": id, "o": "Again" }))
        .await;
    assert_eq!(twice.error_code(), Some("CONFLICT"));

    // Only the coached agent acknowledges; twice is harmless.
    let by_supervisor = app
        .gql(Some(&supervisor), &acknowledge_query(), json!({ "id": id }))
        .await;
    assert_eq!(by_supervisor.error_code(), Some("FORBIDDEN"));
    let acknowledged = app.gql(Some(&agent), &acknowledge_query(), json!({ "id": id })).await;
    let at = acknowledged.ok()["acknowledgeCoachingSession"]["acknowledgedAt"].clone();
    assert!(at.is_string());
    let again = app.gql(Some(&agent), &acknowledge_query(), json!({ "id": id })).await;
    assert_eq!(again.ok()["acknowledgeCoachingSession"]["acknowledgedAt"], at);

    // Filters and one by id.
    let completed_only = app
        .gql(
            Some(&admin),
            &list_query(),
            json!({ "f": { "status": "COMPLETED", "agentIds": [ann] } }),
        )
        .await;
    assert_eq!(completed_only.ok()["coachingSessions"]["totalCount"], 1);
    let scheduled_only = app
        .gql(Some(&admin), &list_query(), json!({ "f": { "status": "SCHEDULED" } }))
        .await;
    assert_eq!(scheduled_only.ok()["coachingSessions"]["totalCount"], 0);
    let one = app.gql(Some(&agent), &one_query(), json!({ "id": id })).await;
    assert_eq!(one.ok()["coachingSession"]["acknowledgedAt"], at);

    let audit = audit_actions(&app, &org).await;
    for action in [
        "coaching.create",
        "coaching.update",
        "coaching.complete",
        "coaching.acknowledge",
    ] {
        assert_eq!(audit.iter().filter(|a| *a == action).count(), 1, "{action}: {audit:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_read_only_their_own_sessions_and_viewers_none() {
    let app = TestApp::spawn().await;
    let org = org(&app, "scope").await;
    let (ann, bob) = (org.agents[0], org.agents[1]);
    let supervisor = app.token(&org, Role::Supervisor).await;
    let agent = app.token(&org, Role::Agent).await;
    let viewer = app.token(&org, Role::Viewer).await;
    let at = Utc::now().to_rfc3339();
    let mut ids = Vec::new();
    for (who, topic) in [(ann, "Ann 1"), (bob, "Bob 1"), (bob, "Bob 2")] {
        let created = app
            .gql(
                Some(&supervisor),
                &create_query(),
                json!({ "i": { "agentId": who, "scheduledAt": at, "topic": topic } }),
            )
            .await;
        ids.push(created.ok()["createCoachingSession"]["id"].as_str().unwrap().to_owned());
    }
    // Cy is in no team the supervisor supervises: not theirs to coach, nor to read (an ADMIN's
    // session with Cy stays out of the supervisor's list).
    let cy = json!({ "i": { "agentId": org.agents[2], "scheduledAt": at, "topic": "Holds" } });
    let refused = app.gql(Some(&supervisor), &create_query(), cy.clone()).await;
    assert_eq!(refused.error_code(), Some("NOT_FOUND"));
    let by_admin = app.token(&org, Role::Admin).await;
    app.gql(Some(&by_admin), &create_query(), cy).await.ok();
    let all = app.gql(Some(&supervisor), &list_query(), json!({ "first": 2 })).await;
    assert_eq!(all.ok()["coachingSessions"]["totalCount"], 3);
    assert_eq!(all.ok()["coachingSessions"]["pageInfo"]["hasNextPage"], true);
    let mine = app
        .gql(Some(&agent), &list_query(), json!({ "f": { "agentIds": [bob] } }))
        .await;
    assert_eq!(
        mine.ok()["coachingSessions"]["totalCount"],
        0,
        "asking for Bob's gives nothing"
    );
    let mine = app.gql(Some(&agent), &list_query(), json!({})).await;
    assert_eq!(mine.ok()["coachingSessions"]["edges"][0]["node"]["topic"], "Ann 1");
    // Bob's session by id is as unknown to Ann as a foreign one, for reading and acknowledging.
    let bobs = app.gql(Some(&agent), &one_query(), json!({ "id": ids[1] })).await;
    assert_eq!(bobs.error_code(), Some("NOT_FOUND"));
    let ack = app
        .gql(Some(&agent), &acknowledge_query(), json!({ "id": ids[1] }))
        .await;
    assert_eq!(ack.error_code(), Some("NOT_FOUND"));
    // Agents cannot coach; viewers cannot read coaching at all.
    let by_agent = app
        .gql(
            Some(&agent),
            &create_query(),
            json!({ "i": { "agentId": ann, "scheduledAt": at, "topic": "Self" } }),
        )
        .await;
    assert_eq!(by_agent.error_code(), Some("FORBIDDEN"));
    let by_viewer = app.gql(Some(&viewer), &list_query(), json!({})).await;
    assert_eq!(by_viewer.error_code(), Some("FORBIDDEN"));
    // A user without an agent profile (the VIEWER's role raised to AGENT) sees none.
    let admin = app.token(&org, Role::Admin).await;
    app.gql(
        Some(&admin),
        "mutation($u: ID!) { updateUserRole(userId: $u, role: AGENT) { role } }",
        json!({ "u": org.user(Role::Viewer).id }),
    )
    .await
    .ok();
    let promoted = app.token(&org, Role::Viewer).await;
    let none = app.gql(Some(&promoted), &list_query(), json!({})).await;
    assert_eq!(none.ok()["coachingSessions"]["totalCount"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_unknown_and_foreign_ids_are_refused_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let org = org(&app, "coachbad").await;
    let other = org_other(&app).await;
    let ann = org.agents[0];
    let admin = app.token(&org, Role::Admin).await;
    let other_admin = app.token(&other, Role::Admin).await;
    let foreign_call = call(&app, &other_admin, "CA-OTHER-1", other.agents[0], 30).await;
    let at = Utc::now().to_rfc3339();
    let create = |input: Value| {
        let app = &app;
        let admin = admin.clone();
        async move { app.gql(Some(&admin), &create_query(), json!({ "i": input })).await }
    };

    let bad = create(json!({ "agentId": ann, "scheduledAt": at, "topic": "  ", "notes": "x".repeat(10_001) })).await;
    assert_eq!(bad.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(field_names(&bad), ["input.topic", "input.notes"]);
    let malformed = create(json!({ "agentId": "not-an-id", "scheduledAt": at, "topic": "T" })).await;
    assert_eq!(field_names(&malformed), ["input.agentId"]);
    let malformed_call =
        create(json!({ "agentId": ann, "scheduledAt": at, "topic": "T", "interactionIds": ["x"] })).await;
    assert_eq!(malformed_call.error_code(), Some("BAD_USER_INPUT"));
    let unknown_agent = create(json!({ "agentId": uuid::Uuid::new_v4(), "scheduledAt": at, "topic": "T" })).await;
    assert_eq!(unknown_agent.error_code(), Some("NOT_FOUND"));
    let foreign_agent = create(json!({ "agentId": other.agents[0], "scheduledAt": at, "topic": "T" })).await;
    assert_eq!(foreign_agent.error_code(), Some("NOT_FOUND"));
    let foreign =
        create(json!({ "agentId": ann, "scheduledAt": at, "topic": "T", "interactionIds": [foreign_call] })).await;
    assert_eq!(foreign.error_code(), Some("NOT_FOUND"));
    let none = app.gql(Some(&admin), &list_query(), json!({})).await;
    assert_eq!(none.ok()["coachingSessions"]["totalCount"], 0, "refusals store nothing");

    // On an existing session.
    let created = create(json!({ "agentId": ann, "scheduledAt": at, "topic": "Real" })).await;
    let id = created.ok()["createCoachingSession"]["id"].as_str().unwrap().to_owned();
    let link_foreign = app
        .gql(
            Some(&admin),
            &update_query(),
            json!({ "id": id, "i": { "topic": "Changed", "interactionIds": [foreign_call] } }),
        )
        .await;
    assert_eq!(link_foreign.error_code(), Some("NOT_FOUND"));
    let kept = app.gql(Some(&admin), &one_query(), json!({ "id": id })).await;
    assert_eq!(
        kept.ok()["coachingSession"]["topic"],
        "Real",
        "the refused update changed nothing"
    );
    let empty_outcome = app
        .gql(Some(&admin), &complete_query(), json!({ "id": id, "o": " " }))
        .await;
    assert_eq!(field_names(&empty_outcome), ["outcome"]);
    let early_follow_up = app
        .gql(
            Some(&admin),
            &complete_query(),
            json!({ "id": id, "o": "Done", "f": "2000-01-01" }),
        )
        .await;
    assert_eq!(field_names(&early_follow_up), ["followUpOn"]);
    // Another tenant's admin does not find it, through any operation.
    for (query, vars) in [
        (one_query(), json!({ "id": id })),
        (update_query(), json!({ "id": id, "i": { "topic": "Mine" } })),
        (complete_query(), json!({ "id": id, "o": "Mine" })),
        (acknowledge_query(), json!({ "id": id })),
    ] {
        let refused = app.gql(Some(&other_admin), &query, vars).await;
        assert_eq!(refused.error_code(), Some("NOT_FOUND"), "{query}");
    }
    let malformed_id = app.gql(Some(&admin), &one_query(), json!({ "id": "nope" })).await;
    assert_eq!(field_names(&malformed_id), ["id"]);
}

async fn org_other(app: &TestApp) -> FixtureOrg {
    org(app, "elsewhere").await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_has_a_few_coaching_sessions_seeded_once() {
    let app = TestApp::spawn().await;
    // Twice: the second run adds nothing.
    omnivox::seed::seed_demo(&app.state, common::TEST_PASSWORD)
        .await
        .unwrap();
    omnivox::seed::seed_demo(&app.state, common::TEST_PASSWORD)
        .await
        .unwrap();
    let (supervisor, _) = app.login("supervisor@demo.example").await;
    let all = app.gql(Some(&supervisor), &list_query(), json!({})).await;
    assert_eq!(all.ok()["coachingSessions"]["totalCount"], 4);
    let (agent, _) = app.login("agent@demo.example").await;
    let mine = app.gql(Some(&agent), &list_query(), json!({})).await;
    let mine = &mine.ok()["coachingSessions"];
    assert_eq!(mine["totalCount"], 2, "the demo AGENT's own sessions");
    let completed = mine["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .find(|n| n["status"] == "COMPLETED")
        .unwrap();
    assert!(completed["followUpOn"].is_string());
    let calls = completed["interactions"].as_array().unwrap();
    assert!(!calls.is_empty(), "linked to the agent's recent calls");
    assert!(
        calls
            .iter()
            .all(|c| c["customerNumber"].as_str().is_none_or(|n| n.contains('*'))),
        "masked for an agent: {calls:?}"
    );
}

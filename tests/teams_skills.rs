//! Teams and skills through GraphQL: create, rename, delete (refused while not empty unless
//! the members are reassigned in the same call), supervisors, members; the skills catalogue
//! and proficiencies (bulk, all or nothing); who may do what; bad input, duplicates and other
//! tenants' ids with stable codes and nothing stored; audit records; and a team change
//! reaching an `agentStates` subscription filtered by team over the real-time bus.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::fixture::{AgentSpec, FixtureOrg};
use common::TestApp;
use diesel_async::RunQueryDsl;
use omnivox::auth::Role;
use serde_json::{json, Value};
use uuid::Uuid;

/// Teams Blue (0) and Red (1); Alice and Bob in Blue, Carol in Red.
async fn org(app: &TestApp, slug: &str) -> FixtureOrg {
    FixtureOrg::builder(slug)
        .teams(["Blue", "Red"])
        .agent(AgentSpec::new("Alice").team(0).user(Role::Agent))
        .agent(AgentSpec::new("Bob").team(0))
        .agent(AgentSpec::new("Carol").team(1))
        .build(&app.state)
        .await
}

const TEAMS: &str = "{ teams { id name supervisors { userId } members { displayName } } }";

fn field(response: &common::GqlResponse) -> Option<&str> {
    response.body["errors"][0]["extensions"]["fields"][0]["field"].as_str()
}

async fn teams(app: &TestApp, token: &str) -> Vec<(String, Vec<String>)> {
    app.gql(Some(token), TEAMS, json!({})).await.ok()["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let members = t["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["displayName"].as_str().unwrap().to_owned())
                .collect();
            (t["name"].as_str().unwrap().to_owned(), members)
        })
        .collect()
}

async fn count_audit(app: &TestApp, org: &FixtureOrg, prefix: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.state.system_db.get().await.unwrap();
    let row: Count =
        diesel::sql_query("SELECT count(*) AS n FROM audit_log WHERE organization_id = $1 AND action LIKE $2")
            .bind::<diesel::sql_types::Uuid, _>(org.id)
            .bind::<diesel::sql_types::Text, _>(format!("{prefix}%"))
            .get_result(&mut conn)
            .await
            .unwrap();
    row.n
}

fn pairs(v: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    v.iter()
        .map(|(t, m)| ((*t).to_owned(), m.iter().map(|s| (*s).to_owned()).collect()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn teams_are_created_renamed_and_deleted_only_when_empty_or_reassigned() {
    let app = TestApp::spawn().await;
    let org = org(&app, "teams").await;
    let admin = app.token(&org, Role::Admin).await;
    let (blue, red) = (org.teams[0], org.teams[1]);

    let created = app
        .gql(
            Some(&admin),
            "mutation($s: [ID!]) { createTeam(name: \" Green \", supervisorIds: $s) { id name supervisors { userId } } }",
            json!({ "s": [org.user(Role::Supervisor).id] }),
        )
        .await;
    let green = created.ok()["createTeam"].clone();
    assert_eq!(green["name"], "Green");
    assert_eq!(green["supervisors"][0]["userId"], json!(org.user(Role::Supervisor).id));
    let green = green["id"].as_str().unwrap().to_owned();

    // Duplicate names are CONFLICT; empty ones are refused by field; nothing is stored.
    let duplicate = app
        .gql(
            Some(&admin),
            "mutation { createTeam(name: \"Blue\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(duplicate.error_code(), Some("CONFLICT"));
    let renamed_twin = app
        .gql(
            Some(&admin),
            "mutation($i: ID!) { renameTeam(id: $i, name: \"Red\") { id } }",
            json!({ "i": blue }),
        )
        .await;
    assert_eq!(renamed_twin.error_code(), Some("CONFLICT"));
    let empty = app
        .gql(Some(&admin), "mutation { createTeam(name: \"  \") { id } }", json!({}))
        .await;
    assert_eq!(
        (empty.error_code(), field(&empty)),
        (Some("BAD_USER_INPUT"), Some("name"))
    );
    // A supervisor must be a SUPERVISOR or higher.
    let agent_as_supervisor = app
        .gql(
            Some(&admin),
            "mutation($s: [ID!]) { createTeam(name: \"Violet\", supervisorIds: $s) { id } }",
            json!({ "s": [org.user(Role::Agent).id] }),
        )
        .await;
    assert_eq!(agent_as_supervisor.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(
        teams(&app, &admin).await,
        pairs(&[("Blue", &["Alice", "Bob"]), ("Green", &[]), ("Red", &["Carol"])])
    );

    let renamed = app
        .gql(
            Some(&admin),
            "mutation($i: ID!) { renameTeam(id: $i, name: \"Navy\") { name } }",
            json!({ "i": blue }),
        )
        .await;
    assert_eq!(renamed.ok()["renameTeam"]["name"], "Navy");

    // A team with agents is not deleted…
    let refused = app
        .gql(
            Some(&admin),
            "mutation($i: ID!) { deleteTeam(id: $i) }",
            json!({ "i": blue }),
        )
        .await;
    assert_eq!(refused.error_code(), Some("CONFLICT"), "{}", refused.body);
    let to_itself = app
        .gql(
            Some(&admin),
            "mutation($i: ID!) { deleteTeam(id: $i, reassignMembersTo: $i) }",
            json!({ "i": blue }),
        )
        .await;
    assert_eq!(
        (to_itself.error_code(), field(&to_itself)),
        (Some("BAD_USER_INPUT"), Some("reassignMembersTo"))
    );
    assert_eq!(teams(&app, &admin).await.len(), 3, "nothing was deleted");
    // …unless its members move in the same call; an empty team just goes.
    let deleted = app
        .gql(
            Some(&admin),
            "mutation($i: ID!, $to: ID) { deleteTeam(id: $i, reassignMembersTo: $to) }",
            json!({ "i": blue, "to": red }),
        )
        .await;
    assert_eq!(deleted.ok()["deleteTeam"], json!(blue));
    let empty_gone = app
        .gql(
            Some(&admin),
            "mutation($i: ID!) { deleteTeam(id: $i) }",
            json!({ "i": green }),
        )
        .await;
    empty_gone.ok();
    assert_eq!(teams(&app, &admin).await, pairs(&[("Red", &["Alice", "Bob", "Carol"])]));

    // Other tenants' teams are NOT_FOUND, here and as reassignment targets.
    let other = app.create_org("teams-other").await;
    let other_admin = app.token(&other, Role::Admin).await;
    for (query, vars) in [
        (
            "mutation($i: ID!) { renameTeam(id: $i, name: \"Mine\") { id } }",
            json!({ "i": red }),
        ),
        ("mutation($i: ID!) { deleteTeam(id: $i) }", json!({ "i": red })),
        (
            "mutation($i: ID!) { setTeamSupervisors(teamId: $i, userIds: []) { id } }",
            json!({ "i": red }),
        ),
    ] {
        let foreign = app.gql(Some(&other_admin), query, vars).await;
        assert_eq!(foreign.error_code(), Some("NOT_FOUND"), "{query}");
    }
    let cross = app
        .gql(
            Some(&admin),
            "mutation($s: [ID!]) { createTeam(name: \"Cross\", supervisorIds: $s) { id } }",
            json!({ "s": [other.user(Role::Supervisor).id] }),
        )
        .await;
    assert_eq!(cross.error_code(), Some("NOT_FOUND"));
    assert_eq!(teams(&app, &admin).await.len(), 1, "the refused create stored nothing");

    // One audit record per change: create, rename, two deletes.
    assert_eq!(count_audit(&app, &org, "team.").await, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn supervisors_manage_the_members_of_their_teams_only() {
    let app = TestApp::spawn().await;
    let org = org(&app, "members").await;
    let admin = app.token(&org, Role::Admin).await;
    let supervisor = app.token(&org, Role::Supervisor).await;
    let (blue, red) = (org.teams[0], org.teams[1]);
    let (alice, bob, carol) = (org.agents[0], org.agents[1], org.agents[2]);
    const ADD: &str =
        "mutation($t: ID!, $a: [ID!]!) { addTeamMembers(teamId: $t, agentIds: $a) { members { displayName } } }";
    const REMOVE: &str =
        "mutation($t: ID!, $a: [ID!]!) { removeTeamMembers(teamId: $t, agentIds: $a) { members { displayName } } }";

    // Team structure is ADMIN's: a SUPERVISOR cannot make themselves supervisor of a team.
    let self_made = app
        .gql(
            Some(&supervisor),
            "mutation($t: ID!, $u: [ID!]!) { setTeamSupervisors(teamId: $t, userIds: $u) { id } }",
            json!({ "t": red, "u": [org.user(Role::Supervisor).id] }),
        )
        .await;
    assert_eq!(self_made.error_code(), Some("FORBIDDEN"));
    app.gql(
        Some(&admin),
        "mutation($t: ID!, $u: [ID!]!) { setTeamSupervisors(teamId: $t, userIds: $u) { id } }",
        json!({ "t": blue, "u": [org.user(Role::Supervisor).id] }),
    )
    .await
    .ok();

    // The SUPERVISOR of Blue takes Bob out, and back in.
    let removed = app
        .gql(Some(&supervisor), REMOVE, json!({ "t": blue, "a": [bob] }))
        .await;
    assert_eq!(
        removed.ok()["removeTeamMembers"]["members"],
        json!([{ "displayName": "Alice" }])
    );
    // Bob has no team now: outside a team-scoped SUPERVISOR's reach until an ADMIN moves him.
    let back = app.gql(Some(&supervisor), ADD, json!({ "t": blue, "a": [bob] })).await;
    assert_eq!(back.error_code(), Some("FORBIDDEN"));
    let back = app.gql(Some(&admin), ADD, json!({ "t": blue, "a": [bob] })).await;
    assert_eq!(back.ok()["addTeamMembers"]["members"].as_array().unwrap().len(), 2);
    // Not Carol (Red), not into Red.
    let steal = app
        .gql(Some(&supervisor), ADD, json!({ "t": blue, "a": [carol] }))
        .await;
    assert_eq!(steal.error_code(), Some("FORBIDDEN"));
    let give = app.gql(Some(&supervisor), ADD, json!({ "t": red, "a": [alice] })).await;
    assert_eq!(give.error_code(), Some("FORBIDDEN"));
    // Removing an agent who is not a member is named; unknown agents are NOT_FOUND.
    let not_member = app
        .gql(Some(&admin), REMOVE, json!({ "t": blue, "a": [alice, carol] }))
        .await;
    assert_eq!(
        (not_member.error_code(), field(&not_member)),
        (Some("BAD_USER_INPUT"), Some("agentIds[1]"))
    );
    let unknown = app
        .gql(Some(&admin), ADD, json!({ "t": blue, "a": [Uuid::new_v4()] }))
        .await;
    assert_eq!(unknown.error_code(), Some("NOT_FOUND"));
    // The supervisor's `teams` lists every team, but only the members they may see.
    let seen = teams(&app, &supervisor).await;
    assert_eq!(seen, pairs(&[("Blue", &["Alice", "Bob"]), ("Red", &[])]));
    // AGENT and VIEWER read no teams.
    for role in [Role::Agent, Role::Viewer] {
        let token = app.token(&org, role).await;
        let refused = app.gql(Some(&token), TEAMS, json!({})).await;
        assert_eq!(refused.error_code(), Some("FORBIDDEN"), "{role}");
    }
}

const ASSIGN: &str = "mutation($a: [SkillAssignmentInput!]!) { assignSkills(assignments: $a) { agentIds } }";
const UNASSIGN: &str = "mutation($a: [SkillAssignmentInput!]!) { unassignSkills(assignments: $a) { agentIds } }";
const SKILLS_OF: &str = "query($i: ID!) { agent(id: $i) { skills { name proficiency } } }";

async fn skills_of(app: &TestApp, token: &str, agent: Uuid) -> Value {
    app.gql(Some(token), SKILLS_OF, json!({ "i": agent })).await.ok()["agent"]["skills"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn skills_are_assigned_with_proficiencies_in_bulk_all_or_nothing() {
    let app = TestApp::spawn().await;
    let org = org(&app, "skills").await;
    let admin = app.token(&org, Role::Admin).await;
    let supervisor = app.token(&org, Role::Supervisor).await;
    let (alice, bob, carol) = (org.agents[0], org.agents[1], org.agents[2]);
    app.gql(
        Some(&admin),
        "mutation($t: ID!, $u: [ID!]!) { setTeamSupervisors(teamId: $t, userIds: $u) { id } }",
        json!({ "t": org.teams[0], "u": [org.user(Role::Supervisor).id] }),
    )
    .await
    .ok();

    let create = |name: &'static str| {
        let (app, supervisor) = (&app, &supervisor);
        async move {
            app.gql(
                Some(supervisor),
                "mutation($n: String!) { createSkill(name: $n, description: \"d\") { id name } }",
                json!({ "n": name }),
            )
            .await
        }
    };
    let english = create("English").await.ok()["createSkill"]["id"].clone();
    let spanish = create("Spanish").await.ok()["createSkill"]["id"].clone();
    assert_eq!(create("English").await.error_code(), Some("CONFLICT"));

    // Bulk: three pairs in one call.
    let done = app
        .gql(
            Some(&supervisor),
            ASSIGN,
            json!({ "a": [
                { "agentId": alice, "skillId": english, "proficiency": 5 },
                { "agentId": alice, "skillId": spanish, "proficiency": 2 },
                { "agentId": bob, "skillId": english, "proficiency": 3 } ] }),
        )
        .await;
    assert_eq!(done.ok()["assignSkills"]["agentIds"].as_array().unwrap().len(), 2);
    assert_eq!(
        skills_of(&app, &supervisor, alice).await,
        json!([{ "name": "English", "proficiency": 5 }, { "name": "Spanish", "proficiency": 2 }])
    );
    // A new proficiency replaces the old one.
    app.gql(
        Some(&supervisor),
        ASSIGN,
        json!({ "a": [{ "agentId": bob, "skillId": english, "proficiency": 4 }] }),
    )
    .await
    .ok();
    assert_eq!(
        skills_of(&app, &supervisor, bob).await,
        json!([{ "name": "English", "proficiency": 4 }])
    );

    // Proficiency 0 or 6 anywhere in the batch refuses all of it, naming the pair.
    for bad in [0, 6] {
        let refused = app
            .gql(
                Some(&supervisor),
                ASSIGN,
                json!({ "a": [
                    { "agentId": bob, "skillId": spanish, "proficiency": 3 },
                    { "agentId": alice, "skillId": english, "proficiency": bad } ] }),
            )
            .await;
        assert_eq!(
            (refused.error_code(), field(&refused)),
            (Some("BAD_USER_INPUT"), Some("assignments[1].proficiency")),
            "{bad}"
        );
    }
    assert_eq!(
        skills_of(&app, &supervisor, bob).await,
        json!([{ "name": "English", "proficiency": 4 }]),
        "nothing of a refused batch is stored"
    );
    // Carol is outside the SUPERVISOR's teams; an unknown skill or another tenant's is
    // NOT_FOUND — and the valid pairs beside them are not stored either.
    let outside = app
        .gql(
            Some(&supervisor),
            ASSIGN,
            json!({ "a": [{ "agentId": carol, "skillId": english, "proficiency": 3 }] }),
        )
        .await;
    assert_eq!(outside.error_code(), Some("FORBIDDEN"));
    let other = app.create_org("skills-other").await;
    let foreign_skill = app
        .gql(
            Some(&app.token(&other, Role::Admin).await),
            "mutation { createSkill(name: \"Theirs\") { id } }",
            json!({}),
        )
        .await
        .ok()["createSkill"]["id"]
        .clone();
    for skill in [json!(Uuid::new_v4()), foreign_skill] {
        let unknown = app
            .gql(
                Some(&supervisor),
                ASSIGN,
                json!({ "a": [
                    { "agentId": bob, "skillId": spanish, "proficiency": 1 },
                    { "agentId": bob, "skillId": skill, "proficiency": 3 } ] }),
            )
            .await;
        assert_eq!(unknown.error_code(), Some("NOT_FOUND"));
    }
    assert_eq!(
        skills_of(&app, &supervisor, bob).await,
        json!([{ "name": "English", "proficiency": 4 }])
    );

    // Unassign, rename, delete (ADMIN only), and the audit trail.
    app.gql(
        Some(&supervisor),
        UNASSIGN,
        json!({ "a": [{ "agentId": alice, "skillId": spanish }] }),
    )
    .await
    .ok();
    assert_eq!(
        skills_of(&app, &supervisor, alice).await,
        json!([{ "name": "English", "proficiency": 5 }])
    );
    let renamed = app
        .gql(
            Some(&supervisor),
            "mutation($i: ID!) { renameSkill(id: $i, name: \"British English\") { name } }",
            json!({ "i": english }),
        )
        .await;
    assert_eq!(renamed.ok()["renameSkill"]["name"], "British English");
    let by_supervisor = app
        .gql(
            Some(&supervisor),
            "mutation($i: ID!) { deleteSkill(id: $i) }",
            json!({ "i": english }),
        )
        .await;
    assert_eq!(by_supervisor.error_code(), Some("FORBIDDEN"));
    app.gql(
        Some(&admin),
        "mutation($i: ID!) { deleteSkill(id: $i) }",
        json!({ "i": english }),
    )
    .await
    .ok();
    assert_eq!(skills_of(&app, &supervisor, alice).await, json!([]));
    let catalogue = app.gql(Some(&supervisor), "{ skills { name } }", json!({})).await;
    assert_eq!(catalogue.ok()["skills"], json!([{ "name": "Spanish" }]));
    // create ×2, assign ×2, unassign, rename, delete.
    assert_eq!(count_audit(&app, &org, "skill.").await, 7);
}

const AGENT_STATES: &str = "subscription($f: AgentStatesFilter) { agentStates(filter: $f) {
    kind resync removedAgentIds agents { id name teamId } } }";

/// A team change made through the API reaches a live board filtered by team at once: the
/// agent who joins appears, the agent who leaves is removed, a renamed team's agents carry
/// the new name (Redis bus, as in production).
#[tokio::test(flavor = "multi_thread")]
async fn team_changes_reach_agent_states_filtered_by_team() {
    let app = TestApp::spawn_with(|s| s.redis_url = Some(common::REDIS_URL.to_owned())).await;
    let org = org(&app, "liveteams").await;
    let admin = app.token(&org, Role::Admin).await;
    let viewer = app.token(&org, Role::Viewer).await;
    let (blue, red) = (org.teams[0], org.teams[1]);
    let (alice, carol) = (org.agents[0], org.agents[2]);
    let mut wall = app
        .subscribe(&viewer, AGENT_STATES, json!({ "f": { "teamIds": [blue] } }))
        .await;
    let snapshot = wall.expect_data("agentStates").await;
    assert_eq!(snapshot["agents"].as_array().unwrap().len(), 2, "{snapshot}");

    // Carol joins Blue: she appears.
    app.gql(
        Some(&admin),
        "mutation($t: ID!, $a: [ID!]!) { addTeamMembers(teamId: $t, agentIds: $a) { id } }",
        json!({ "t": blue, "a": [carol] }),
    )
    .await
    .ok();
    let delta = wall
        .until("agentStates", Duration::from_secs(5), |d| {
            d["agents"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    assert_eq!(delta["kind"], "DELTA");
    assert_eq!(delta["agents"][0]["id"], json!(carol));
    assert_eq!(delta["agents"][0]["teamId"], json!(blue));

    // Alice moves to Red: she is removed from the Blue board.
    app.gql(
        Some(&admin),
        "mutation($i: ID!, $t: ID) { updateAgent(id: $i, input: { teamId: $t }) { id } }",
        json!({ "i": alice, "t": red }),
    )
    .await
    .ok();
    let delta = wall
        .until("agentStates", Duration::from_secs(5), |d| {
            d["removedAgentIds"].as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    assert_eq!(delta["removedAgentIds"], json!([alice]));
}

/// The demo: its SUPERVISOR supervises Inbound Care and sees that team's agents, with skills
/// and proficiencies; seeding again changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_demo_supervisor_supervises_a_team_and_reseeding_is_idempotent() {
    let app = TestApp::spawn().await;
    omnivox::seed::seed_demo(&app.state, common::TEST_PASSWORD)
        .await
        .unwrap();
    omnivox::seed::seed_demo(&app.state, common::TEST_PASSWORD)
        .await
        .unwrap();
    let (supervisor, _) = app.login("supervisor@demo.example").await;
    let teams = app
        .gql(Some(&supervisor), "{ teams { name supervisors { email } } }", json!({}))
        .await;
    let care = teams.ok()["teams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == omnivox::seed::demo_data::SUPERVISED_TEAM)
        .unwrap()
        .clone();
    assert_eq!(care["supervisors"], json!([{ "email": "supervisor@demo.example" }]));
    let agents = app
        .gql(
            Some(&supervisor),
            "{ agents(first: 50) { totalCount edges { node { team { name } skills { name proficiency } } } } }",
            json!({}),
        )
        .await;
    let edges = agents.ok()["agents"]["edges"].as_array().unwrap().clone();
    assert!(!edges.is_empty());
    for edge in &edges {
        assert_eq!(edge["node"]["team"]["name"], omnivox::seed::demo_data::SUPERVISED_TEAM);
        let skills = edge["node"]["skills"].as_array().unwrap();
        assert!(!skills.is_empty());
        assert!(skills
            .iter()
            .all(|s| (1..=5).contains(&s["proficiency"].as_i64().unwrap())));
    }
}

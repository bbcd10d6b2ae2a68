//! User management rules: no granting above your own role, no changing a higher-ranked user,
//! never losing the last ADMIN; cursor pagination of the user list.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::TestApp;
use omnivox::auth::Role;
use serde_json::json;

const CREATE: &str = "mutation($i: CreateUserInput!) { createUser(input: $i) { id email role active } }";
const ROLE: &str = "mutation($u: ID!, $r: Role!) { updateUserRole(userId: $u, role: $r) { id role } }";
const DEACTIVATE: &str = "mutation($u: ID!) { deactivateUser(userId: $u) { id active } }";

fn new_user(email: &str, role: &str) -> serde_json::Value {
    json!({ "i": { "email": email, "displayName": "Nina New", "role": role, "password": common::TEST_PASSWORD } })
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_creates_users_up_to_their_own_role() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let admin = app.token(&org, Role::Admin).await;
    let created = app.gql(Some(&admin), CREATE, new_user("Nina@Acme.test", "ADMIN")).await;
    assert_eq!(
        created.ok()["createUser"]["email"],
        "nina@acme.test",
        "addresses are stored lower-case"
    );
    assert_eq!(created.ok()["createUser"]["role"], "ADMIN");
    // The new user can sign in.
    let (token, _) = app.login("nina@acme.test").await;
    assert_eq!(
        app.gql(Some(&token), "{ me { role } }", json!({})).await.ok()["me"]["role"],
        "ADMIN"
    );

    let above = app
        .gql(Some(&admin), CREATE, new_user("root@acme.test", "SUPER_ADMIN"))
        .await;
    assert_eq!(above.error_code(), Some("FORBIDDEN"));
    let duplicate = app
        .gql(Some(&admin), CREATE, new_user("NINA@acme.test", "VIEWER"))
        .await;
    assert_eq!(duplicate.error_code(), Some("CONFLICT"));
    let bad = app
        .gql(
            Some(&admin),
            CREATE,
            json!({ "i": { "email": "not-an-email", "displayName": " ", "role": "VIEWER", "password": "short" } }),
        )
        .await;
    assert_eq!(bad.error_code(), Some("BAD_USER_INPUT"));
    let fields: Vec<&str> = bad.body["errors"][0]["extensions"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["input.email", "input.displayName", "input.password"]);

    let mut conn = app.state.system_db.get().await.unwrap();
    let chain = omnivox::audit::recent(&mut conn, Some(org.id), 20).await.unwrap();
    let creations: Vec<_> = chain.iter().filter(|r| r.action == "user.create").collect();
    assert_eq!(creations.len(), 1, "only the successful creation is recorded");
    assert!(
        !creations[0].details.to_string().contains(common::TEST_PASSWORD),
        "no password in the audit log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn nobody_changes_a_user_above_them_or_grants_above_themselves() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let admin = app.token(&org, Role::Admin).await;
    let root = org.user(Role::SuperAdmin);
    let demote_root = app
        .gql(Some(&admin), ROLE, json!({ "u": root.id, "r": "VIEWER" }))
        .await;
    assert_eq!(demote_root.error_code(), Some("FORBIDDEN"));
    let deactivate_root = app.gql(Some(&admin), DEACTIVATE, json!({ "u": root.id })).await;
    assert_eq!(deactivate_root.error_code(), Some("FORBIDDEN"));
    let promote = app
        .gql(
            Some(&admin),
            ROLE,
            json!({ "u": org.user(Role::Agent).id, "r": "SUPER_ADMIN" }),
        )
        .await;
    assert_eq!(promote.error_code(), Some("FORBIDDEN"));
    let ok = app
        .gql(
            Some(&admin),
            ROLE,
            json!({ "u": org.user(Role::Agent).id, "r": "SUPERVISOR" }),
        )
        .await;
    assert_eq!(ok.ok()["updateUserRole"]["role"], "SUPERVISOR");
    let malformed = app.gql(Some(&admin), ROLE, json!({ "u": "12", "r": "VIEWER" })).await;
    assert_eq!(malformed.error_code(), Some("BAD_USER_INPUT"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_change_takes_effect_on_the_next_request() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let admin = app.token(&org, Role::Admin).await;
    let supervisor_token = app.token(&org, Role::Supervisor).await;
    let supervisor = org.user(Role::Supervisor);
    app.gql(Some(&admin), ROLE, json!({ "u": supervisor.id, "r": "ADMIN" }))
        .await
        .ok();
    // The token still says SUPERVISOR; the users row says ADMIN, and the row wins.
    let listing = app
        .gql(Some(&supervisor_token), "{ users(first: 1) { totalCount } }", json!({}))
        .await;
    assert_eq!(listing.ok()["users"]["totalCount"], 5);
    app.gql(Some(&admin), ROLE, json!({ "u": supervisor.id, "r": "VIEWER" }))
        .await
        .ok();
    let refused = app
        .gql(Some(&supervisor_token), "{ users(first: 1) { totalCount } }", json!({}))
        .await;
    assert_eq!(refused.error_code(), Some("FORBIDDEN"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_last_admin_can_be_neither_demoted_nor_deactivated() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let admin_user = org.user(Role::Admin);
    let admin = app.token(&org, Role::Admin).await;
    let demote = app
        .gql(Some(&admin), ROLE, json!({ "u": admin_user.id, "r": "SUPERVISOR" }))
        .await;
    assert_eq!(demote.error_code(), Some("CONFLICT"));
    let deactivate = app.gql(Some(&admin), DEACTIVATE, json!({ "u": admin_user.id })).await;
    assert_eq!(deactivate.error_code(), Some("CONFLICT"));
    // The super admin cannot remove it either: the rule protects the tenant, not the caller.
    let root = app.token(&org, Role::SuperAdmin).await;
    assert_eq!(
        app.gql(Some(&root), DEACTIVATE, json!({ "u": admin_user.id }))
            .await
            .error_code(),
        Some("CONFLICT")
    );

    // With a second admin, one may go.
    let second = app
        .gql(Some(&admin), CREATE, new_user("second@acme.test", "ADMIN"))
        .await;
    let second_id = second.ok()["createUser"]["id"].as_str().unwrap().to_owned();
    let demoted = app
        .gql(Some(&admin), ROLE, json!({ "u": admin_user.id, "r": "SUPERVISOR" }))
        .await;
    assert_eq!(demoted.ok()["updateUserRole"]["role"], "SUPERVISOR");
    let (second_token, _) = app.login("second@acme.test").await;
    let last = app
        .gql(Some(&second_token), DEACTIVATE, json!({ "u": second_id }))
        .await;
    assert_eq!(last.error_code(), Some("CONFLICT"));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_admins_demoting_each_other_at_once_leave_one_admin() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let first = app.token(&org, Role::Admin).await;
    let created = app
        .gql(Some(&first), CREATE, new_user("second@acme.test", "ADMIN"))
        .await;
    let second_id = created.ok()["createUser"]["id"].as_str().unwrap().to_owned();
    let (second, _) = app.login("second@acme.test").await;
    let (a, b) = tokio::join!(
        app.gql(Some(&first), ROLE, json!({ "u": second_id, "r": "VIEWER" })),
        app.gql(
            Some(&second),
            ROLE,
            json!({ "u": org.user(Role::Admin).id, "r": "VIEWER" })
        ),
    );
    let successes = [&a, &b].iter().filter(|r| r.body.get("errors").is_none()).count();
    assert_eq!(successes, 1, "{} / {}", a.body, b.body);
    let root = app.token(&org, Role::SuperAdmin).await;
    let listing = app
        .gql(
            Some(&root),
            "{ users(first: 50) { edges { node { role active } } } }",
            json!({}),
        )
        .await;
    let admins = listing.ok()["users"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["node"]["role"] == "ADMIN")
        .count();
    assert_eq!(admins, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn deactivation_cuts_the_users_tokens() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let admin = app.token(&org, Role::Admin).await;
    let (agent_access, agent_refresh) = app.login(&org.user(Role::Agent).email).await;
    let out = app
        .gql(Some(&admin), DEACTIVATE, json!({ "u": org.user(Role::Agent).id }))
        .await;
    assert_eq!(out.ok()["deactivateUser"]["active"], false);
    assert_eq!(
        app.gql(Some(&agent_access), "{ me { id } }", json!({}))
            .await
            .error_code(),
        Some("UNAUTHENTICATED")
    );
    let refresh = app
        .gql(
            None,
            "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken } }",
            json!({ "t": agent_refresh }),
        )
        .await;
    assert_eq!(refresh.error_code(), Some("UNAUTHENTICATED"));
}

#[tokio::test(flavor = "multi_thread")]
async fn users_are_paginated_with_stable_cursors() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let admin = app.token(&org, Role::Admin).await;
    for i in 0..7 {
        app.gql(Some(&admin), CREATE, new_user(&format!("u{i}@acme.test"), "VIEWER"))
            .await
            .ok();
    }
    let page_query = "query($a: String) { users(first: 5, after: $a) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { email } } } }";
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let response = app.gql(Some(&admin), page_query, json!({ "a": after })).await;
        let users = &response.ok()["users"];
        assert_eq!(users["totalCount"], 12);
        for edge in users["edges"].as_array().unwrap() {
            seen.push(edge["node"]["email"].as_str().unwrap().to_owned());
        }
        pages += 1;
        if users["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = users["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(pages, 3);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (12, 12), "every user exactly once");
    let bad = app.gql(Some(&admin), page_query, json!({ "a": "garbage" })).await;
    assert_eq!(bad.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(bad.body["errors"][0]["extensions"]["fields"][0]["field"], "after");
}

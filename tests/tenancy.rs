//! Tenant isolation: another organization's ids answer NOT_FOUND, never FORBIDDEN, and change
//! nothing; only a SUPER_ADMIN reaches another tenant, through an explicit `orgId`, audited.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::TestApp;
use omnivox::auth::Role;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn another_tenants_ids_are_not_found_and_untouched() {
    let app = TestApp::spawn().await;
    let a = app.create_org("alpha").await;
    let b = app.create_org("bravo").await;
    let admin_a = app.token(&a, Role::Admin).await;
    let victim = b.user(Role::Supervisor);

    let org = app
        .gql(
            Some(&admin_a),
            "query($o: ID) { organization(orgId: $o) { id } }",
            json!({ "o": b.id }),
        )
        .await;
    assert_eq!(org.error_code(), Some("NOT_FOUND"));
    let list = app
        .gql(
            Some(&admin_a),
            "query($o: ID) { users(orgId: $o) { totalCount } }",
            json!({ "o": b.id }),
        )
        .await;
    assert_eq!(list.error_code(), Some("NOT_FOUND"));
    let role = app
        .gql(
            Some(&admin_a),
            "mutation($u: ID!) { updateUserRole(userId: $u, role: VIEWER) { id } }",
            json!({ "u": victim.id }),
        )
        .await;
    assert_eq!(role.error_code(), Some("NOT_FOUND"));
    let deactivate = app
        .gql(
            Some(&admin_a),
            "mutation($u: ID!) { deactivateUser(userId: $u) { id } }",
            json!({ "u": victim.id }),
        )
        .await;
    assert_eq!(deactivate.error_code(), Some("NOT_FOUND"));
    let create = app
        .gql(
            Some(&admin_a),
            "mutation($o: ID, $i: CreateUserInput!) { createUser(orgId: $o, input: $i) { id } }",
            json!({ "o": b.id, "i": { "email": "x@bravo.test", "displayName": "X", "role": "VIEWER", "password": "long-enough-pass" } }),
        )
        .await;
    assert_eq!(create.error_code(), Some("NOT_FOUND"));
    let settings = app
        .gql(
            Some(&admin_a),
            "mutation($o: ID) { updateBusinessSettings(orgId: $o, expectedVersion: 1, input: { shortAbandonSeconds: 9 }) { version } }",
            json!({ "o": b.id }),
        )
        .await;
    assert_eq!(settings.error_code(), Some("NOT_FOUND"));
    // A malformed orgId is as unknown as a foreign one.
    let garbage = app
        .gql(Some(&admin_a), "{ organization(orgId: \"nope\") { id } }", json!({}))
        .await;
    assert_eq!(garbage.error_code(), Some("NOT_FOUND"));

    // Nothing in bravo changed.
    let admin_b = app.token(&b, Role::Admin).await;
    let seen = app.gql(Some(&admin_b), "{ users(first: 10) { totalCount edges { node { email role active } } } organization { businessSettings { version shortAbandonSeconds } } }", json!({})).await;
    let data = seen.ok();
    assert_eq!(data["users"]["totalCount"], 5);
    let supervisor = data["users"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["email"] == victim.email.as_str())
        .unwrap();
    assert_eq!(supervisor["node"]["role"], "SUPERVISOR");
    assert_eq!(supervisor["node"]["active"], true);
    assert_eq!(data["organization"]["businessSettings"]["version"], 1);
    // Each tenant lists only its own users.
    let own = app
        .gql(
            Some(&admin_a),
            "{ users(first: 50) { edges { node { email } } } }",
            json!({}),
        )
        .await;
    assert!(own.ok()["users"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["node"]["email"].as_str().unwrap().ends_with("@alpha.test")));
}

#[tokio::test(flavor = "multi_thread")]
async fn super_admin_crosses_tenants_only_explicitly_and_is_audited() {
    let app = TestApp::spawn().await;
    let a = app.create_org("alpha").await;
    let b = app.create_org("bravo").await;
    let root = app.token(&a, Role::SuperAdmin).await;

    let home = app.gql(Some(&root), "{ organization { slug } }", json!({})).await;
    assert_eq!(
        home.ok()["organization"]["slug"],
        "alpha",
        "without orgId a SUPER_ADMIN acts on their own org"
    );
    let other = app
        .gql(
            Some(&root),
            "query($o: ID) { organization(orgId: $o) { slug } users(orgId: $o) { totalCount } }",
            json!({ "o": b.id }),
        )
        .await;
    assert_eq!(other.ok()["organization"]["slug"], "bravo");
    assert_eq!(other.ok()["users"]["totalCount"], 5);
    let unknown = app
        .gql(
            Some(&root),
            "query($o: ID) { organization(orgId: $o) { slug } }",
            json!({ "o": uuid::Uuid::new_v4() }),
        )
        .await;
    assert_eq!(unknown.error_code(), Some("NOT_FOUND"));

    let mut conn = app.state.system_db.get().await.unwrap();
    let chain = omnivox::audit::recent(&mut conn, Some(b.id), 20).await.unwrap();
    let crossings: Vec<_> = chain.iter().filter(|r| r.action == "tenant.cross_access").collect();
    assert_eq!(crossings.len(), 2, "one audit record per field that crossed");
    assert_eq!(crossings[0].actor_user_id, Some(a.user(Role::SuperAdmin).id));
    assert_eq!(crossings[0].details["homeOrganizationId"], a.id.to_string());

    // Root fields resolve concurrently: twelve crossings in one request append twelve records
    // to one chain at once, and the chain stays whole (the chain lock lives in a transaction).
    let fields: String = (0..12)
        .map(|i| format!("o{i}: organization(orgId: $o) {{ slug }} "))
        .collect();
    let many = app
        .gql(
            Some(&root),
            &format!("query($o: ID) {{ {fields} }}"),
            json!({ "o": b.id }),
        )
        .await;
    assert_eq!(many.ok()["o11"]["slug"], "bravo");
    let report = omnivox::audit::verify_chain(&mut conn, Some(b.id)).await.unwrap();
    assert_eq!(report.first_broken_seq, None, "{report:?}");
    let chain = omnivox::audit::recent(&mut conn, Some(b.id), 50).await.unwrap();
    assert_eq!(chain.iter().filter(|r| r.action == "tenant.cross_access").count(), 14);
}

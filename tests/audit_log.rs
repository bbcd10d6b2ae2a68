//! The audit log as people read and check it: `auditLog` (filters, keyset pages, who may read
//! which chain), `verifyAuditChain` (tampering named at the exact record), and the records of
//! denied accesses, written off the request path by the batched queue.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::fixture::FixtureOrg;
use common::{TestApp, TEST_JWT_SECRET};
use diesel_async::SimpleAsyncConnection;
use omnivox::auth::Role;
use serde_json::{json, Value};

const LOG: &str = "query($f: AuditLogFilter, $first: Int, $after: String, $org: ID, $platform: Boolean! = false) {
  auditLog(filter: $f, first: $first, after: $after, orgId: $org, platform: $platform) {
    edges { cursor node { id sequence occurredAt actorId actorRole action targetType targetId
                          before after details requestId clientAddress } }
    pageInfo { hasNextPage endCursor }
  }
}";

const VERIFY: &str = "query($from: DateTime, $to: DateTime, $org: ID) {
  verifyAuditChain(from: $from, to: $to, orgId: $org) {
    intact recordsChecked firstSequence lastSequence
    firstBroken { sequence id recordSequence problem message }
  }
}";

async fn log(app: &TestApp, token: &str, variables: Value) -> Vec<Value> {
    let response = app.gql(Some(token), LOG, variables).await;
    response.ok()["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| edge["node"].clone())
        .collect()
}

/// Creates a user through the API (one `user.create` record); returns its id.
async fn create_user(app: &TestApp, admin: &str, email: &str) -> String {
    let response = app
        .gql(
            Some(admin),
            "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }",
            json!({ "i": { "email": email, "displayName": email, "role": "VIEWER", "password": "a-long-enough-password" } }),
        )
        .await;
    response.ok()["createUser"]["id"].as_str().unwrap().to_owned()
}

/// Polls the chain until a record with `action` shows up (denials are written off the request
/// path, within milliseconds).
async fn wait_for(app: &TestApp, token: &str, variables: Value, action: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut variables = variables.clone();
        variables["f"] = json!({ "action": action });
        if let Some(found) = log(app, token, variables).await.into_iter().next() {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "no {action} record");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn org_with_users(app: &TestApp, slug: &str) -> (FixtureOrg, String, Vec<String>) {
    let org = app.create_org(slug).await;
    let admin = org.token(&app.state, Role::Admin).await;
    let mut created = Vec::new();
    for n in 0..3 {
        created.push(create_user(app, &admin, &format!("new{n}@{slug}.test")).await);
    }
    (org, admin, created)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_filter_narrows_the_log_and_pages_follow_the_chain() {
    let app = TestApp::spawn().await;
    let (org, admin, created) = org_with_users(&app, "acme").await;
    let all = log(&app, &admin, json!({})).await;
    assert_eq!(all.len(), 3, "{all:?}");
    // Newest first, sequences without gaps.
    let sequences: Vec<i64> = all.iter().map(|e| e["sequence"].as_i64().unwrap()).collect();
    assert_eq!(sequences, vec![3, 2, 1]);
    let newest = &all[0];
    assert_eq!(newest["action"], "user.create");
    assert_eq!(newest["actorId"], org.user(Role::Admin).id.to_string());
    assert_eq!(newest["actorRole"], "ADMIN");
    assert_eq!(newest["targetType"], "user");
    assert_eq!(newest["targetId"], created[2]);
    assert!(
        newest["requestId"].as_str().is_some_and(|id| !id.is_empty()),
        "{newest}"
    );

    // action, exact and by prefix
    assert_eq!(
        log(&app, &admin, json!({ "f": { "action": "user.create" } }))
            .await
            .len(),
        3
    );
    assert_eq!(log(&app, &admin, json!({ "f": { "action": "user.*" } })).await.len(), 3);
    assert!(log(&app, &admin, json!({ "f": { "action": "settings.update" } }))
        .await
        .is_empty());
    // target
    let one = log(&app, &admin, json!({ "f": { "target": created[1] } })).await;
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["sequence"], 2);
    // actor
    let by_admin = log(&app, &admin, json!({ "f": { "actor": org.user(Role::Admin).id } })).await;
    assert_eq!(by_admin.len(), 3);
    let by_viewer = log(&app, &admin, json!({ "f": { "actor": org.user(Role::Viewer).id } })).await;
    assert!(by_viewer.is_empty());
    // from (inclusive) and to (exclusive)
    let second_at = all[1]["occurredAt"].as_str().unwrap();
    let from = log(&app, &admin, json!({ "f": { "from": second_at } })).await;
    assert_eq!(
        from.iter().map(|e| e["sequence"].as_i64().unwrap()).collect::<Vec<_>>(),
        vec![3, 2]
    );
    let to = log(&app, &admin, json!({ "f": { "to": second_at } })).await;
    assert_eq!(
        to.iter().map(|e| e["sequence"].as_i64().unwrap()).collect::<Vec<_>>(),
        vec![1]
    );

    // Keyset pages: two, then the rest, no overlap.
    let page = app.gql(Some(&admin), LOG, json!({ "first": 2 })).await;
    let connection = &page.ok()["auditLog"];
    assert_eq!(connection["edges"].as_array().unwrap().len(), 2);
    assert_eq!(connection["pageInfo"]["hasNextPage"], true);
    let cursor = connection["pageInfo"]["endCursor"].as_str().unwrap();
    let rest = log(&app, &admin, json!({ "first": 2, "after": cursor })).await;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["sequence"], 1);

    // Bad input names the field.
    let bad = app.gql(Some(&admin), LOG, json!({ "after": "garbage" })).await;
    assert_eq!(bad.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(bad.body["errors"][0]["extensions"]["fields"][0]["field"], "after");
    let bad = app
        .gql(
            Some(&admin),
            LOG,
            json!({ "f": { "from": second_at, "to": second_at } }),
        )
        .await;
    assert_eq!(bad.body["errors"][0]["extensions"]["fields"][0]["field"], "filter.to");
    let bad = app.gql(Some(&admin), LOG, json!({ "f": { "actor": "nope" } })).await;
    assert_eq!(
        bad.body["errors"][0]["extensions"]["fields"][0]["field"],
        "filter.actor"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_admins_read_their_own_chain_and_super_admins_name_one() {
    let app = TestApp::spawn().await;
    let (a, _, _) = org_with_users(&app, "alpha").await;
    let b = app.create_org("beta").await;
    for role in [Role::Viewer, Role::Agent, Role::Supervisor] {
        let token = a.token(&app.state, role).await;
        let response = app.gql(Some(&token), LOG, json!({})).await;
        assert_eq!(response.error_code(), Some("FORBIDDEN"), "auditLog as {role}");
        let response = app.gql(Some(&token), VERIFY, json!({})).await;
        assert_eq!(response.error_code(), Some("FORBIDDEN"), "verifyAuditChain as {role}");
    }
    // Another organization's ADMIN sees nothing of A: not with orgId, not in its own chain.
    let b_admin = b.token(&app.state, Role::Admin).await;
    let response = app.gql(Some(&b_admin), LOG, json!({ "org": a.id })).await;
    assert_eq!(response.error_code(), Some("NOT_FOUND"));
    let response = app.gql(Some(&b_admin), VERIFY, json!({ "org": a.id })).await;
    assert_eq!(response.error_code(), Some("NOT_FOUND"));
    assert!(log(&app, &b_admin, json!({})).await.is_empty());
    // Nor the platform chain.
    let response = app.gql(Some(&b_admin), LOG, json!({ "platform": true })).await;
    assert_eq!(response.error_code(), Some("FORBIDDEN"));

    // A SUPER_ADMIN names A explicitly (and that access is itself recorded in A's chain).
    let root = b.token(&app.state, Role::SuperAdmin).await;
    let seen = log(&app, &root, json!({ "org": a.id, "f": { "action": "user.create" } })).await;
    assert_eq!(seen.len(), 3);
    let crossed = log(
        &app,
        &root,
        json!({ "org": a.id, "f": { "action": "tenant.cross_access" } }),
    )
    .await;
    assert!(!crossed.is_empty());
    assert_eq!(crossed[0]["actorId"], b.user(Role::SuperAdmin).id.to_string());
    // ...and an API key never reaches the log, whatever its scopes.
    let created = app
        .gql(
            Some(&b_admin),
            "mutation { createApiKey(name: \"bi\", scopes: [\"kpi:read\", \"reports:read\"]) { secret } }",
            json!({}),
        )
        .await;
    let key = created.ok()["createApiKey"]["secret"].as_str().unwrap().to_owned();
    let response = app.gql(Some(&key), LOG, json!({})).await;
    assert_eq!(response.error_code(), Some("FORBIDDEN"));
}

/// A token signed with `secret`, claiming `org` and `sub`, expiring at `exp`.
fn token(secret: &str, app: &TestApp, org: uuid::Uuid, sub: uuid::Uuid, exp: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "sub": sub, "org": org, "role": "SUPER_ADMIN", "tv": 0, "typ": "access",
        "iss": app.state.settings.jwt_issuer, "aud": app.state.settings.jwt_audience,
        "iat": now - 7_200, "nbf": now - 7_200, "exp": exp, "jti": uuid::Uuid::new_v4(),
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn denied_accesses_are_recorded_where_they_can_be_believed() {
    let app = TestApp::spawn().await;
    let org = app.create_org("deny").await;
    let admin = org.token(&app.state, Role::Admin).await;
    let root = org.token(&app.state, Role::SuperAdmin).await;

    // A VIEWER asks for the users: FORBIDDEN, recorded in the organization's chain.
    let viewer = org.token(&app.state, Role::Viewer).await;
    let response = app
        .gql(
            Some(&viewer),
            "query Peek { users { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(response.error_code(), Some("FORBIDDEN"));
    let denial = wait_for(&app, &admin, json!({}), "access.forbidden").await;
    assert_eq!(denial["actorId"], org.user(Role::Viewer).id.to_string());
    assert_eq!(denial["actorRole"], "VIEWER");
    assert_eq!(denial["targetType"], "operation");
    assert_eq!(denial["targetId"], "Peek");
    assert_eq!(denial["details"]["code"], "FORBIDDEN");
    assert_eq!(denial["details"]["paths"], json!(["users"]));
    assert_eq!(denial["clientAddress"], "127.0.0.1");
    assert!(denial["requestId"].as_str().is_some());

    // An expired token with our signature: the organization it names is believable.
    let expired = token(
        TEST_JWT_SECRET,
        &app,
        org.id,
        org.user(Role::Agent).id,
        chrono::Utc::now().timestamp() - 3_600,
    );
    let response = app.gql(Some(&expired), "{ me { id } }", json!({})).await;
    assert_eq!(response.error_code(), Some("UNAUTHENTICATED"));
    let denial = wait_for(&app, &admin, json!({}), "access.unauthenticated").await;
    assert_eq!(denial["details"]["tokenSubject"], org.user(Role::Agent).id.to_string());
    assert_eq!(denial["actorId"], Value::Null, "a refused token acts for nobody");

    // A forged signature claiming this organization: recorded in the platform chain only,
    // its claims marked unverified; the organization's chain gets nothing.
    let forged = token(
        "not-our-secret-not-our-secret-not-our-secret",
        &app,
        org.id,
        org.user(Role::Admin).id,
        chrono::Utc::now().timestamp() + 3_600,
    );
    let response = app.gql(Some(&forged), "{ me { id } }", json!({})).await;
    assert_eq!(response.error_code(), Some("UNAUTHENTICATED"));
    let denial = wait_for(&app, &root, json!({ "platform": true }), "access.unauthenticated").await;
    assert_eq!(denial["details"]["unverifiedClaims"]["org"], org.id.to_string());
    assert_eq!(denial["details"]["unverifiedClaims"]["credential"], "token");
    let in_org = log(&app, &admin, json!({ "f": { "action": "access.unauthenticated" } })).await;
    assert_eq!(in_org.len(), 1, "only the expired token's record: {in_org:?}");

    // No credentials at all: an ordinary "log in first", not recorded.
    let response = app.gql(None, "{ me { id } }", json!({})).await;
    assert_eq!(response.error_code(), Some("UNAUTHENTICATED"));

    // A WebSocket initialised with a forged token: closed 4403 and recorded.
    let mut socket = app.ws("graphql-transport-ws").await;
    socket.send_init(&forged).await;
    assert_eq!(socket.expect_close(Duration::from_secs(5)).await, Some(4403));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let platform = log(
            &app,
            &root,
            json!({ "platform": true, "f": { "action": "access.unauthenticated" } }),
        )
        .await;
        if platform.iter().any(|e| e["details"]["surface"] == "ws connection_init") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no WebSocket denial: {platform:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The chains stay intact with denials appended in batches.
    let verified = app.gql(Some(&admin), VERIFY, json!({})).await;
    assert_eq!(verified.ok()["verifyAuditChain"]["intact"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn queued_denials_are_all_written_before_a_drain_completes() {
    use omnivox::error::ErrorCode;
    use omnivox::state::audit_queue::{Denial, DeniedCaller};
    let app = TestApp::spawn().await;
    let org = app.create_org("drain").await;
    let caller = DeniedCaller::Principal {
        organization_id: org.id,
        actor: omnivox::audit::Actor {
            user_id: org.user(Role::Viewer).id,
            role: Role::Viewer,
        },
        api_key_id: None,
    };
    const N: usize = 2_000;
    for n in 0..N {
        let denial = Denial::new(caller.clone(), ErrorCode::RateLimited, "test", format!("denial {n}"));
        assert!(app.state.audit_queue.record(denial), "queue full at {n}");
    }
    // What `omnivox serve` waits on when draining: every queued record holds work in flight.
    assert!(app.state.lifecycle.work_in_flight() > 0);
    tokio::time::timeout(Duration::from_secs(30), app.state.lifecycle.idle())
        .await
        .expect("the queue drains");
    let mut conn = app.state.system_db.get().await.unwrap();
    let report = omnivox::audit::verify_chain(&mut conn, Some(org.id)).await.unwrap();
    assert_eq!(report.records, N);
    assert!(report.intact(), "{report:?}");
    let newest = omnivox::audit::recent(&mut conn, Some(org.id), 1).await.unwrap();
    assert_eq!(newest[0].action, "access.rate_limited");
    assert_eq!(newest[0].details["reason"], format!("denial {}", N - 1), "order kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn tampering_is_named_at_the_exact_record() {
    let app = TestApp::spawn().await;
    let org = app.create_org("tamper").await;
    let admin = org.token(&app.state, Role::Admin).await;
    for n in 0..7 {
        create_user(&app, &admin, &format!("u{n}@tamper.test")).await;
    }
    let verified = app.gql(Some(&admin), VERIFY, json!({})).await;
    let report = &verified.ok()["verifyAuditChain"];
    assert_eq!(report["intact"], true);
    assert_eq!(report["recordsChecked"], 7);
    assert_eq!(
        (report["firstSequence"].as_i64(), report["lastSequence"].as_i64()),
        (Some(1), Some(7))
    );
    let all = log(&app, &admin, json!({})).await;
    let by_seq = |seq: i64| all.iter().find(|e| e["sequence"] == seq).unwrap().clone();

    // A superuser disables the trigger, edits record 3 and deletes record 5.
    let mut conn = app.state.system_db.get().await.unwrap();
    conn.batch_execute(&format!(
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update;
         UPDATE audit_log SET details = jsonb_set(details, '{{role}}', '\"ADMIN\"')
          WHERE organization_id = '{org}' AND chain_seq = 3;
         DELETE FROM audit_log WHERE organization_id = '{org}' AND chain_seq = 5;
         ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update;",
        org = org.id
    ))
    .await
    .unwrap();

    let verified = app.gql(Some(&admin), VERIFY, json!({})).await;
    let report = &verified.ok()["verifyAuditChain"];
    assert_eq!(report["intact"], false);
    let broken = &report["firstBroken"];
    assert_eq!(broken["sequence"], 3);
    assert_eq!(broken["recordSequence"], 3);
    assert_eq!(broken["id"], by_seq(3)["id"]);
    assert_eq!(broken["problem"], "CONTENT_ALTERED");

    // From record 4 on, the deletion is what shows: sequence 5 is missing, seen at record 6.
    let from = by_seq(4)["occurredAt"].clone();
    let verified = app.gql(Some(&admin), VERIFY, json!({ "from": from })).await;
    let report = &verified.ok()["verifyAuditChain"];
    let broken = &report["firstBroken"];
    assert_eq!(broken["sequence"], 5);
    assert_eq!(broken["problem"], "MISSING");
    assert_eq!(broken["id"], by_seq(6)["id"]);
    assert_eq!(broken["recordSequence"], 6);

    // A range that ends before the damage is intact.
    let to = by_seq(3)["occurredAt"].clone();
    let verified = app.gql(Some(&admin), VERIFY, json!({ "to": to })).await;
    let report = &verified.ok()["verifyAuditChain"];
    assert_eq!(report["intact"], true);
    assert_eq!(report["recordsChecked"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn sensitive_reads_are_recorded() {
    let app = TestApp::spawn().await;
    let org = app.create_org("reads").await;
    let admin = org.token(&app.state, Role::Admin).await;
    let supervisor = org.token(&app.state, Role::Supervisor).await;
    let agent = org.token(&app.state, Role::Agent).await;
    let now = chrono::Utc::now().to_rfc3339();
    app.gql(
        Some(&admin),
        "mutation($e: [CallEventInput!]!) { recordCallEvents(events: $e) { accepted } }",
        json!({ "e": [{ "externalId": "CA-read-1", "type": "OFFERED", "occurredAt": now,
                        "customerNumber": "+447700900123" }] }),
    )
    .await
    .ok();

    // Numbers asked for by a SUPERVISOR: in full, and recorded with the calls named.
    let listed = app
        .gql(
            Some(&supervisor),
            "{ interactions { edges { node { id customerNumber } } } }",
            json!({}),
        )
        .await;
    let node = listed.ok()["interactions"]["edges"][0]["node"].clone();
    assert_eq!(node["customerNumber"], "+447700900123");
    let record = wait_for(&app, &admin, json!({}), "interaction.read_unmasked").await;
    assert_eq!(record["actorId"], org.user(Role::Supervisor).id.to_string());
    assert_eq!(record["details"]["interactionIds"], json!([node["id"]]));
    assert_eq!(record["clientAddress"], "127.0.0.1");
    // Without the numbers, or masked (AGENT sees only own calls anyway): nothing more.
    app.gql(
        Some(&supervisor),
        "{ interactions { edges { node { id } } } }",
        json!({}),
    )
    .await
    .ok();
    app.gql(
        Some(&agent),
        "{ interactions { edges { node { customerNumber } } } }",
        json!({}),
    )
    .await
    .ok();

    // Other agents' performance: only once the organization asks for it.
    let performance = "query($f: KpiFilter!) { agentPerformance(filter: $f) { totalCount } }";
    let window = json!({ "f": { "from": "2026-01-05T00:00:00Z", "to": "2026-01-06T00:00:00Z" } });
    app.gql(Some(&supervisor), performance, window.clone()).await.ok();
    app.gql(
        Some(&admin),
        "mutation { updateBusinessSettings(expectedVersion: 1, input: { auditPerformanceReads: true }) { auditPerformanceReads } }",
        json!({}),
    )
    .await
    .ok();
    app.gql(Some(&supervisor), performance, window).await.ok();
    let record = wait_for(&app, &admin, json!({}), "agent.performance_read").await;
    assert_eq!(record["actorId"], org.user(Role::Supervisor).id.to_string());
    assert_eq!(record["details"]["from"], "2026-01-05T00:00:00Z");

    // Give the queue time to write anything it still holds, then count.
    tokio::time::timeout(Duration::from_secs(10), app.state.lifecycle.idle())
        .await
        .unwrap();
    let unmasked = log(&app, &admin, json!({ "f": { "action": "interaction.read_unmasked" } })).await;
    assert_eq!(unmasked.len(), 1, "{unmasked:?}");
    let performance_reads = log(&app, &admin, json!({ "f": { "action": "agent.performance_read" } })).await;
    assert_eq!(
        performance_reads.len(),
        1,
        "only after the setting: {performance_reads:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn file_route_refusals_are_recorded() {
    let app = TestApp::spawn().await;
    let org = app.create_org("files").await;
    let admin = org.token(&app.state, Role::Admin).await;
    let created = app
        .gql(
            Some(&admin),
            "mutation { createApiKey(name: \"tiles\", scopes: [\"kpi:read\"]) { secret apiKey { id } } }",
            json!({}),
        )
        .await;
    let key = created.ok()["createApiKey"]["secret"].as_str().unwrap().to_owned();
    let key_id = created.ok()["createApiKey"]["apiKey"]["id"].clone();
    // A key without reports:read asks for a run's file: 403, recorded against its creator.
    let response = app
        .http
        .get(app.url(&format!("/exports/{}", uuid::Uuid::new_v4())))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let denial = wait_for(&app, &admin, json!({}), "access.forbidden").await;
    assert_eq!(denial["details"]["surface"], "GET /exports/{runId}");
    assert_eq!(denial["details"]["apiKeyId"], key_id);
    assert_eq!(denial["actorId"], org.user(Role::Admin).id.to_string());
    assert_eq!(denial["clientAddress"], "127.0.0.1");
}

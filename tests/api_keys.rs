//! API keys end to end: the secret is shown once and only its digest is stored; scopes are
//! enforced on subscriptions (queries and mutations: the key × field matrix in tests/roles.rs);
//! a key never exceeds its creator's current permissions; revocation bites on the next request
//! and closes open sockets; expired and malformed keys are UNAUTHENTICATED; bad input is
//! BAD_USER_INPUT and stores nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::fixture::FixtureOrg;
use common::ws::{WsEvent, GRAPHQL_TRANSPORT_WS};
use common::{GqlResponse, TestApp};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use omnivox::auth::Role;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const CREATE: &str = "mutation($n: String!, $s: [String!]!, $e: DateTime) {
    createApiKey(name: $n, scopes: $s, expiresAt: $e) {
        secret apiKey { id name prefix scopes createdBy expiresAt lastUsedAt revokedAt }
    }
}";
const REVOKE: &str = "mutation($k: ID!) { revokeApiKey(id: $k) { id revokedAt } }";
const KPI: &str =
    "{ kpiSummary(filter: { from: \"2026-01-01T00:00:00Z\", to: \"2026-01-02T00:00:00Z\" }) { offered } }";
const LIVE_KPIS: &str = "subscription { liveKpis { today { offered } } }";

async fn create(app: &TestApp, token: &str, name: &str, scopes: &[&str], expires: Option<String>) -> GqlResponse {
    app.gql(Some(token), CREATE, json!({ "n": name, "s": scopes, "e": expires }))
        .await
}

/// Creates a key; returns (id, secret).
async fn key(app: &TestApp, token: &str, scopes: &[&str]) -> (String, String) {
    let response = create(app, token, "test key", scopes, None).await;
    let created = &response.ok()["createApiKey"];
    (
        created["apiKey"]["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    )
}

#[derive(diesel::QueryableByName, Debug)]
struct KeyRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    prefix: String,
    #[diesel(sql_type = diesel::sql_types::Bytea)]
    secret_hash: Vec<u8>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    whole_row: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

async fn db(app: &TestApp) -> AsyncPgConnection {
    AsyncPgConnection::establish(&app.database.url).await.unwrap()
}

async fn key_rows(app: &TestApp) -> Vec<KeyRow> {
    diesel::sql_query(
        "SELECT prefix, secret_hash, row_to_json(k)::text AS whole_row, last_used_at FROM api_keys k ORDER BY created_at",
    )
    .load(&mut db(app).await)
    .await
    .unwrap()
}

#[derive(diesel::QueryableByName)]
struct Audit {
    #[diesel(sql_type = diesel::sql_types::Text)]
    action: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    details: String,
}

async fn key_audit(app: &TestApp) -> Vec<Audit> {
    diesel::sql_query(
        "SELECT action, details::text AS details FROM audit_log WHERE action LIKE 'api_key.%' ORDER BY chain_seq",
    )
    .load(&mut db(app).await)
    .await
    .unwrap()
}

fn code_of_ws(event: &WsEvent) -> Option<Value> {
    match event {
        WsEvent::Json(m) if m["type"] == "error" => Some(m["payload"][0]["extensions"]["code"].clone()),
        WsEvent::Json(m) if m["payload"].get("errors").is_some() => {
            Some(m["payload"]["errors"][0]["extensions"]["code"].clone())
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_secret_is_shown_once_and_only_its_digest_is_stored() {
    let app = TestApp::spawn().await;
    let org = app.create_org("keysecret").await;
    let admin = org.token(&app.state, Role::Admin).await;
    let response = create(&app, &admin, "Power BI", &["kpi:read", "reports:read"], None).await;
    let created = &response.ok()["createApiKey"];
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("ovx_") && secret.len() == 64, "{secret}");
    assert_eq!(created["apiKey"]["prefix"].as_str().unwrap(), &secret[..20]);
    assert_eq!(created["apiKey"]["scopes"], json!(["kpi:read", "reports:read"]));
    assert_eq!(
        created["apiKey"]["createdBy"],
        json!(org.user(Role::Admin).id.to_string())
    );

    let rows = key_rows(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].secret_hash, Sha256::digest(secret.as_bytes()).to_vec());
    assert_eq!(rows[0].prefix, &secret[..20]);
    assert!(
        !rows[0].whole_row.contains(&secret[21..]),
        "the secret's random part is stored: {}",
        rows[0].whole_row
    );
    assert!(rows[0].last_used_at.is_none());

    // No way to read the secret back.
    let listing = app.gql(Some(&admin), "{ apiKeys { secret } }", json!({})).await;
    assert!(listing.body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("secret"));

    // The key works, and its use is recorded.
    app.gql(Some(secret), KPI, json!({})).await.ok();
    assert!(key_rows(&app).await[0].last_used_at.is_some());
    let listing = app
        .gql(Some(&admin), "{ apiKeys { name lastUsedAt } }", json!({}))
        .await;
    assert_eq!(listing.ok()["apiKeys"][0]["name"], "Power BI");
    assert!(listing.ok()["apiKeys"][0]["lastUsedAt"].is_string());

    // Audited, without the secret.
    let audit = key_audit(&app).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, "api_key.create");
    assert!(audit[0].details.contains("Power BI") && !audit[0].details.contains(&secret[21..]));
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_need_the_realtime_scope() {
    let app = TestApp::spawn().await;
    let org = app.create_org("keysubs").await;
    let admin = org.token(&app.state, Role::Admin).await;
    for scope in ["kpi:read", "reports:read", "realtime:read", "ingest:write"] {
        let (_, secret) = key(&app, &admin, &[scope]).await;
        for query in [
            LIVE_KPIS,
            "subscription { agentStates { kind } }",
            "subscription { businessSettingsChanged { version } }",
            // Through a fragment: the root field is found all the same.
            "subscription { ...F } fragment F on Subscription { liveKpis { today { offered } } }",
        ] {
            let mut ws = app.subscribe(&secret, query, json!({})).await;
            let outcome = ws.next(Duration::from_secs(3)).await;
            let refused = code_of_ws(&outcome);
            if scope == "realtime:read" {
                assert!(
                    refused.is_none() && matches!(outcome, WsEvent::Json(_)),
                    "{query} with {scope}: {outcome:?}"
                );
            } else {
                assert_eq!(refused, Some(json!("FORBIDDEN")), "{query} with {scope}: {outcome:?}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_never_exceeds_its_creators_permissions() {
    let app = TestApp::spawn().await;
    let org = app.create_org("keyceiling").await;
    let admin = org.token(&app.state, Role::Admin).await;
    let supervisor = org.token(&app.state, Role::Supervisor).await;
    let viewer = org.token(&app.state, Role::Viewer).await;

    // Minting: a SUPERVISOR cannot grant the ADMIN-only scope, a VIEWER cannot create keys.
    let refused = create(&app, &supervisor, "adapter", &["kpi:read", "ingest:write"], None).await;
    assert_eq!(refused.error_code(), Some("FORBIDDEN"), "{}", refused.body);
    assert_eq!(
        create(&app, &viewer, "tv", &["kpi:read"], None).await.error_code(),
        Some("FORBIDDEN")
    );
    assert!(key_rows(&app).await.is_empty(), "a refused key was stored");

    // A supervisor's reporting key works while the supervisor is one…
    let (_, secret) = key(&app, &supervisor, &["kpi:read", "reports:read"]).await;
    let analytics = "{ analytics(query: { metrics: [HANDLED], groupBy: [AGENT], filter: { from: \"2026-01-05T00:00:00Z\", to: \"2026-01-06T00:00:00Z\" } }) { totalRows } }";
    app.gql(Some(&secret), analytics, json!({})).await.ok();
    // …and loses what the creator's new role lacks, at once.
    let demote = "mutation($u: ID!) { updateUserRole(userId: $u, role: VIEWER) { role } }";
    app.gql(Some(&admin), demote, json!({ "u": org.user(Role::Supervisor).id }))
        .await
        .ok();
    let after = app.gql(Some(&secret), analytics, json!({})).await;
    assert_eq!(after.error_code(), Some("FORBIDDEN"), "{}", after.body);
    app.gql(Some(&secret), KPI, json!({})).await.ok();

    // A deactivated creator's keys stop working.
    let deactivate = "mutation($u: ID!) { deactivateUser(userId: $u) { active } }";
    app.gql(Some(&admin), deactivate, json!({ "u": org.user(Role::Supervisor).id }))
        .await
        .ok();
    assert_eq!(
        app.gql(Some(&secret), KPI, json!({})).await.error_code(),
        Some("UNAUTHENTICATED")
    );

    // A SUPER_ADMIN's key stays in its own organization.
    let other = app.create_org("keyother").await;
    let super_admin = org.token(&app.state, Role::SuperAdmin).await;
    let (_, platform_key) = key(&app, &super_admin, &["kpi:read"]).await;
    let cross = app
        .gql(
            Some(&platform_key),
            "query($o: ID) { organization(orgId: $o) { id } }",
            json!({ "o": other.id }),
        )
        .await;
    assert_eq!(cross.error_code(), Some("NOT_FOUND"), "{}", cross.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn revocation_refuses_the_next_request_and_closes_open_sockets() {
    // The periodic socket re-check is far away: only the revocation notice can close in time.
    let app = TestApp::spawn_with(|s| s.ws_reauth_interval = Duration::from_secs(300)).await;
    let org = app.create_org("keyrevoke").await;
    let admin = org.token(&app.state, Role::Admin).await;
    let (id, secret) = key(&app, &admin, &["kpi:read", "realtime:read"]).await;
    app.gql(Some(&secret), KPI, json!({})).await.ok();
    let mut ws = app.subscribe(&secret, LIVE_KPIS, json!({})).await;
    match ws.next(Duration::from_secs(5)).await {
        WsEvent::Json(m) => assert_eq!(m["type"], "next", "{m}"),
        other => panic!("no first liveKpis message: {other:?}"),
    }

    let revoked = app.gql(Some(&admin), REVOKE, json!({ "k": id })).await;
    assert!(revoked.ok()["revokeApiKey"]["revokedAt"].is_string());
    assert_eq!(
        app.gql(Some(&secret), KPI, json!({})).await.error_code(),
        Some("UNAUTHENTICATED")
    );
    let closed = loop {
        match ws.recv(Duration::from_secs(3)).await {
            WsEvent::Json(m) if m["type"] == "next" || m["type"] == "ping" => continue,
            other => break other,
        }
    };
    assert!(matches!(closed, WsEvent::Closed(Some(4403))), "{closed:?}");

    // A new socket is refused too; revoking again changes nothing.
    let mut again = app.ws(GRAPHQL_TRANSPORT_WS).await;
    again.send_init(&secret).await;
    assert!(matches!(
        again.next(Duration::from_secs(5)).await,
        WsEvent::Closed(Some(4403))
    ));
    app.gql(Some(&admin), REVOKE, json!({ "k": id })).await.ok();
    let actions: Vec<String> = key_audit(&app).await.into_iter().map(|a| a.action).collect();
    assert_eq!(actions, ["api_key.create", "api_key.revoke"]);
    let listed = app.gql(Some(&admin), "{ apiKeys { id } }", json!({})).await;
    assert_eq!(listed.ok()["apiKeys"], json!([]));
    let with_revoked = app
        .gql(Some(&admin), "{ apiKeys(includeRevoked: true) { id } }", json!({}))
        .await;
    assert_eq!(with_revoked.ok()["apiKeys"][0]["id"], json!(id));
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_keys_are_refused() {
    let app = TestApp::spawn().await;
    let org = app.create_org("keyexpiry").await;
    let admin = org.token(&app.state, Role::Admin).await;
    let soon = (chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339();
    let response = create(&app, &admin, "temporary", &["kpi:read", "realtime:read"], Some(soon)).await;
    let secret = response.ok()["createApiKey"]["secret"].as_str().unwrap().to_owned();
    app.gql(Some(&secret), KPI, json!({})).await.ok();
    // Let the hour pass.
    db(&app)
        .await
        .batch_execute(
            "UPDATE api_keys SET created_at = now() - interval '2 hours', expires_at = now() - interval '1 second'",
        )
        .await
        .unwrap();
    assert_eq!(
        app.gql(Some(&secret), KPI, json!({})).await.error_code(),
        Some("UNAUTHENTICATED")
    );
    let mut ws = app.ws(GRAPHQL_TRANSPORT_WS).await;
    ws.send_init(&secret).await;
    assert!(matches!(
        ws.next(Duration::from_secs(5)).await,
        WsEvent::Closed(Some(4403))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_listed_and_revoked_within_what_the_caller_may_see() {
    let app = TestApp::spawn().await;
    let org = app.create_org("keyowners").await;
    let other: FixtureOrg = app.create_org("keyforeign").await;
    let admin = org.token(&app.state, Role::Admin).await;
    let supervisor = org.token(&app.state, Role::Supervisor).await;
    let (admin_key, _) = key(&app, &admin, &["kpi:read"]).await;
    let (supervisor_key, _) = key(&app, &supervisor, &["kpi:read"]).await;
    let (foreign_key, foreign_secret) = key(&app, &other.token(&app.state, Role::Admin).await, &["kpi:read"]).await;

    let ids = |response: &GqlResponse| -> Vec<String> {
        response.ok()["apiKeys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = app.gql(Some(&admin), "{ apiKeys { id } }", json!({})).await;
    assert_eq!(ids(&all), [supervisor_key.clone(), admin_key.clone()]);
    let own = app.gql(Some(&supervisor), "{ apiKeys { id } }", json!({})).await;
    assert_eq!(ids(&own), std::slice::from_ref(&supervisor_key));

    // Another tenant's key, or (below ADMIN) another user's: NOT_FOUND, nothing changed.
    for (token, id) in [(&admin, &foreign_key), (&supervisor, &admin_key)] {
        let response = app.gql(Some(token), REVOKE, json!({ "k": id })).await;
        assert_eq!(response.error_code(), Some("NOT_FOUND"), "{}", response.body);
    }
    app.gql(Some(&foreign_secret), KPI, json!({})).await.ok();
    assert_eq!(
        app.gql(Some(&admin), REVOKE, json!({ "k": "not-a-uuid" }))
            .await
            .error_code(),
        Some("BAD_USER_INPUT")
    );
    // A supervisor revokes their own key; an ADMIN anyone's in the organization.
    app.gql(Some(&supervisor), REVOKE, json!({ "k": supervisor_key }))
        .await
        .ok();
    app.gql(Some(&admin), REVOKE, json!({ "k": admin_key })).await.ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_with_its_field_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let org = app.create_org("keyinput").await;
    let admin = org.token(&app.state, Role::Admin).await;
    let past = (chrono::Utc::now() - chrono::TimeDelta::minutes(1)).to_rfc3339();
    let long_name = "x".repeat(101);
    let cases: [(&str, &[&str], Option<String>, &str); 6] = [
        ("", &["kpi:read"], None, "name"),
        ("   ", &["kpi:read"], None, "name"),
        (&long_name, &["kpi:read"], None, "name"),
        ("BI", &["kpi:read", "admin:everything"], None, "scopes[1]"),
        ("BI", &[], None, "scopes"),
        ("BI", &["kpi:read"], Some(past), "expiresAt"),
    ];
    for (name, scopes, expires, field) in cases {
        let response = create(&app, &admin, name, scopes, expires).await;
        assert_eq!(response.error_code(), Some("BAD_USER_INPUT"), "{}", response.body);
        assert_eq!(
            response.body["errors"][0]["extensions"]["fields"][0]["field"],
            json!(field),
            "{}",
            response.body
        );
    }
    assert!(key_rows(&app).await.is_empty(), "a refused key was stored");
    assert!(key_audit(&app).await.is_empty(), "a refused key was audited");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_bearer_strings_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let org = app.create_org("keymalformed").await;
    let admin = org.token(&app.state, Role::Admin).await;
    let (_, secret) = key(&app, &admin, &["kpi:read"]).await;
    let mut altered = secret.clone().into_bytes();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let unknown = format!("ovx_0123456789abcdef_{}", &secret[21..]);
    let long = format!("ovx_{}", "a".repeat(5_000));
    let candidates = [
        "ovx_",
        "ovx_zz",
        "ovx_0123456789abcdef_short",
        &secret[..secret.len() - 1],
        &altered,
        &unknown,
        &long,
        "ovx_0123456789abcdef_%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%",
        "eyJhbGciOiJIUzI1NiJ9.not.ajwt",
    ];
    for bad in candidates {
        let response = app.gql(Some(bad), KPI, json!({})).await;
        assert_ne!(response.status, 500, "{bad}");
        assert_eq!(
            response.error_code(),
            Some("UNAUTHENTICATED"),
            "{bad}: {}",
            response.body
        );
        let mut ws = app.ws(GRAPHQL_TRANSPORT_WS).await;
        ws.send_init(bad).await;
        assert!(
            matches!(ws.next(Duration::from_secs(5)).await, WsEvent::Closed(Some(4403))),
            "{bad}"
        );
    }
    // The genuine key still works.
    app.gql(Some(&secret), KPI, json!({})).await.ok();
}

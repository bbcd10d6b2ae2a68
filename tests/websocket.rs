//! GraphQL subscriptions over WebSocket: authentication in `connection_init`, a snapshot first,
//! then a fresh value after each change, in both the current and the legacy protocol.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::ws::{WsEvent, GRAPHQL_TRANSPORT_WS};
use common::TestApp;
use omnivox::auth::Role;
use serde_json::json;

const SUBSCRIPTION: &str = "subscription { businessSettingsChanged { version wrapUpLimitSeconds } }";
const UPDATE: &str =
    "mutation($v: Int!) { updateBusinessSettings(expectedVersion: $v, input: { wrapUpLimitSeconds: 45 }) { version } }";

#[tokio::test(flavor = "multi_thread")]
async fn graphql_transport_ws_snapshot_then_change() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let viewer = app.token(&org, Role::Viewer).await;
    let admin = app.token(&org, Role::Admin).await;
    let mut ws = app.ws(GRAPHQL_TRANSPORT_WS).await;
    ws.send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {viewer}") } }))
        .await;
    assert_eq!(ws.expect_json().await["type"], "connection_ack");
    ws.subscribe("1", SUBSCRIPTION).await;
    let snapshot = ws.expect_json().await;
    assert_eq!(snapshot["type"], "next");
    assert_eq!(snapshot["payload"]["data"]["businessSettingsChanged"]["version"], 1);

    app.gql(Some(&admin), UPDATE, json!({ "v": 1 })).await.ok();
    let change = ws.expect_json().await;
    assert_eq!(
        change["payload"]["data"]["businessSettingsChanged"],
        json!({ "version": 2, "wrapUpLimitSeconds": 45 })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_graphql_ws_is_accepted() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let viewer = app.token(&org, Role::Viewer).await;
    let mut ws = app.ws("graphql-ws").await;
    ws.init(&viewer).await;
    ws.send(json!({ "id": "1", "type": "start", "payload": { "query": SUBSCRIPTION } }))
        .await;
    let first = ws.expect_json().await;
    assert_eq!(first["type"], "data");
    assert_eq!(first["payload"]["data"]["businessSettingsChanged"]["version"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn other_tenants_changes_are_not_delivered() {
    let app = TestApp::spawn().await;
    let a = app.create_org("alpha").await;
    let b = app.create_org("bravo").await;
    let viewer_a = app.token(&a, Role::Viewer).await;
    let admin_b = app.token(&b, Role::Admin).await;
    let mut ws = app.ws(GRAPHQL_TRANSPORT_WS).await;
    ws.init(&viewer_a).await;
    ws.subscribe("1", SUBSCRIPTION).await;
    ws.expect_json().await; // snapshot
    app.gql(Some(&admin_b), UPDATE, json!({ "v": 1 })).await.ok();
    assert!(
        matches!(ws.next(Duration::from_millis(800)).await, WsEvent::Timeout),
        "bravo's change reached alpha"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_without_token_is_refused() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(GRAPHQL_TRANSPORT_WS).await;
    ws.send(json!({ "type": "connection_init", "payload": {} })).await;
    match ws.next(Duration::from_secs(5)).await {
        WsEvent::Closed(_) => {}
        other => panic!("expected the socket to close, got {other:?}"),
    }
}

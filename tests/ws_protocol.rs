//! The GraphQL WebSocket protocol, message by message: every close code of graphql-transport-ws,
//! keep-alives, token expiry and revocation mid-stream, operation lifecycle, and the limits
//! (operations per socket, sockets per user, a client that never reads).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::fixture::FixtureOrg;
use common::ws::{WsClient, WsEvent, GRAPHQL_TRANSPORT_WS, WAIT};
use common::TestApp;
use omnivox::auth::Role;
use omnivox::http::ws::open_sockets;
use omnivox::realtime::BusEvent;
use serde_json::json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const SUBSCRIPTION: &str = "subscription { businessSettingsChanged { version wrapUpLimitSeconds } }";
const UPDATE: &str =
    "mutation($v: Int!) { updateBusinessSettings(expectedVersion: $v, input: { wrapUpLimitSeconds: 45 }) { version } }";

async fn viewer_socket(app: &TestApp, org: &FixtureOrg) -> WsClient {
    let token = app.token(org, Role::Viewer).await;
    let mut ws = app.ws(GRAPHQL_TRANSPORT_WS).await;
    ws.init(&token).await;
    ws
}

// ---------------------------------------------------------------------------------------------
// Close codes

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_without_a_graphql_subprotocol_is_400() {
    let app = TestApp::spawn().await;
    let request = format!("ws://{}/graphql", app.addr).into_client_request().unwrap();
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 400),
        other => panic!(
            "expected HTTP 400, got {:?}",
            other.map(|(_, response)| response.status())
        ),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_connection_init_in_time_closes_4408() {
    let app = TestApp::spawn_with(|s| s.ws_init_timeout = Duration::from_millis(300)).await;
    let started = Instant::now();
    let mut ws = app.ws(GRAPHQL_TRANSPORT_WS).await;
    assert_eq!(ws.expect_close(WAIT).await, Some(4408));
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_json_closes_4400() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(GRAPHQL_TRANSPORT_WS).await;
    ws.send_text("{ not json").await;
    assert_eq!(ws.expect_close(WAIT).await, Some(4400));
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_type_closes_4400() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(GRAPHQL_TRANSPORT_WS).await;
    ws.send(json!({ "type": "bogus" })).await;
    assert_eq!(ws.expect_close(WAIT).await, Some(4400));

    // Legacy message types are unknown to graphql-transport-ws, and vice versa.
    let mut ws = app.ws(GRAPHQL_TRANSPORT_WS).await;
    ws.send(json!({ "type": "start", "id": "1", "payload": { "query": "{ __typename }" } }))
        .await;
    assert_eq!(ws.expect_close(WAIT).await, Some(4400));
    let mut ws = app.ws("graphql-ws").await;
    ws.send(json!({ "type": "ping" })).await;
    assert_eq!(ws.expect_close(WAIT).await, Some(4400));
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_subscribe_closes_4400() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let mut ws = viewer_socket(&app, &org).await;
    ws.send(json!({ "type": "subscribe", "payload": { "query": SUBSCRIPTION } }))
        .await;
    assert_eq!(ws.expect_close(WAIT).await, Some(4400), "subscribe without id");

    let mut ws = viewer_socket(&app, &org).await;
    ws.send(json!({ "type": "subscribe", "id": "1" })).await;
    assert_eq!(ws.expect_close(WAIT).await, Some(4400), "subscribe without payload");

    let mut ws = viewer_socket(&app, &org).await;
    ws.send_message(Message::binary(b"{}".to_vec())).await;
    assert_eq!(ws.expect_close(WAIT).await, Some(4400), "binary message");
}

#[tokio::test(flavor = "multi_thread")]
async fn subscribe_before_ack_closes_4401() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(GRAPHQL_TRANSPORT_WS).await;
    ws.subscribe("1", SUBSCRIPTION).await;
    assert_eq!(ws.expect_close(WAIT).await, Some(4401));
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_tokens_close_4403() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(GRAPHQL_TRANSPORT_WS).await;
    ws.send_init("not-a-jwt").await;
    assert_eq!(ws.expect_close(WAIT).await, Some(4403));

    let mut ws = app.ws(GRAPHQL_TRANSPORT_WS).await;
    ws.send(json!({ "type": "connection_init" })).await;
    assert_eq!(ws.expect_close(WAIT).await, Some(4403), "no payload");

    let mut ws = app.ws(GRAPHQL_TRANSPORT_WS).await;
    ws.send(json!({ "type": "connection_init", "payload": { "Authorization": "Basic abc" } }))
        .await;
    assert_eq!(ws.expect_close(WAIT).await, Some(4403), "not a bearer token");

    // Legacy clients are told why before the close.
    let mut ws = app.ws("graphql-ws").await;
    ws.send_init("not-a-jwt").await;
    assert_eq!(ws.expect_json().await["type"], "connection_error");
    assert_eq!(ws.expect_close(WAIT).await, Some(4403));
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_operation_id_closes_4409() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let mut ws = viewer_socket(&app, &org).await;
    ws.subscribe("1", SUBSCRIPTION).await;
    assert_eq!(ws.expect_json().await["type"], "next");
    ws.subscribe("1", SUBSCRIPTION).await;
    assert_eq!(ws.expect_close(WAIT).await, Some(4409));
}

#[tokio::test(flavor = "multi_thread")]
async fn second_connection_init_closes_4429() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let token = app.token(&org, Role::Viewer).await;
    let mut ws = app.ws(GRAPHQL_TRANSPORT_WS).await;
    ws.init(&token).await;
    ws.send_init(&token).await;
    assert_eq!(ws.expect_close(WAIT).await, Some(4429));
}

#[tokio::test(flavor = "multi_thread")]
async fn database_down_during_auth_closes_1011_not_4403() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let token = app.token(&org, Role::Viewer).await;
    // Same JWT secret, but a database nobody listens on.
    let broken = TestApp::spawn_with(|s| {
        s.database_url = "postgres://postgres@127.0.0.1:1/omnivox_nowhere".to_owned();
        s.db_wait_timeout = Duration::from_millis(500);
    })
    .await;
    let mut ws = broken.ws(GRAPHQL_TRANSPORT_WS).await;
    ws.send_init(&token).await;
    assert_eq!(ws.expect_close(Duration::from_secs(10)).await, Some(1011));
}

// ---------------------------------------------------------------------------------------------
// Keep-alives

#[tokio::test(flavor = "multi_thread")]
async fn server_pings_and_answers_pings() {
    let app = TestApp::spawn_with(|s| s.ws_ping_interval = Duration::from_millis(200)).await;
    let org = app.create_org("acme").await;
    let mut ws = viewer_socket(&app, &org).await;
    for _ in 0..2 {
        match ws.recv(Duration::from_secs(2)).await {
            WsEvent::Json(value) => assert_eq!(value, json!({ "type": "ping" })),
            other => panic!("expected a server ping, got {other:?}"),
        }
    }
    ws.send(json!({ "type": "ping" })).await;
    assert_eq!(ws.expect_json().await, json!({ "type": "pong" }));
    // A pong is accepted silently.
    ws.send(json!({ "type": "pong" })).await;
    ws.subscribe("1", SUBSCRIPTION).await;
    assert_eq!(ws.expect_json().await["type"], "next");
}

#[tokio::test(flavor = "multi_thread")]
async fn legacy_protocol_gets_keep_alives() {
    let app = TestApp::spawn_with(|s| s.ws_ping_interval = Duration::from_millis(200)).await;
    let org = app.create_org("acme").await;
    let token = app.token(&org, Role::Viewer).await;
    let mut ws = app.ws("graphql-ws").await;
    ws.send_init(&token).await;
    let WsEvent::Json(ack) = ws.recv(WAIT).await else {
        panic!("no ack")
    };
    assert_eq!(ack["type"], "connection_ack");
    for _ in 0..2 {
        match ws.recv(Duration::from_secs(2)).await {
            WsEvent::Json(value) => assert_eq!(value, json!({ "type": "ka" })),
            other => panic!("expected a keep-alive, got {other:?}"),
        }
    }
    ws.send(json!({ "id": "1", "type": "start", "payload": { "query": SUBSCRIPTION } }))
        .await;
    assert_eq!(ws.expect_json().await["type"], "data");
    ws.send(json!({ "id": "1", "type": "stop" })).await;
    ws.send(json!({ "type": "connection_terminate" })).await;
    assert_eq!(ws.expect_close(WAIT).await, Some(1000));
}

// ---------------------------------------------------------------------------------------------
// Credentials mid-stream

#[tokio::test(flavor = "multi_thread")]
async fn token_expiry_closes_4403_at_exp_not_exp_plus_leeway() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let email = &org.user(Role::Viewer).email;
    let mut conn = app.state.system_db.get().await.unwrap();
    let row = omnivox::db::users::find_by_email(&mut conn, email)
        .await
        .unwrap()
        .unwrap();
    drop(conn);
    let minted = Instant::now();
    let (token, _) = omnivox::access::session::access_token(&app.state, &row, Duration::from_secs(2)).unwrap();
    let mut ws = app.ws(GRAPHQL_TRANSPORT_WS).await;
    ws.init(&token).await;
    ws.subscribe("1", SUBSCRIPTION).await;
    assert_eq!(ws.expect_json().await["type"], "next");
    assert_eq!(ws.expect_close(Duration::from_secs(8)).await, Some(4403));
    let lived = minted.elapsed();
    // exp = whole seconds, 1-2 s after minting; the JWT leeway (10 s) must not apply.
    assert!(lived >= Duration::from_millis(900), "closed early: {lived:?}");
    assert!(lived < Duration::from_secs(4), "closed late: {lived:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn deactivation_mid_stream_closes_4403() {
    let app = TestApp::spawn_with(|s| s.ws_reauth_interval = Duration::from_millis(300)).await;
    let org = app.create_org("acme").await;
    let admin = app.token(&org, Role::Admin).await;
    let mut ws = viewer_socket(&app, &org).await;
    ws.subscribe("1", SUBSCRIPTION).await;
    assert_eq!(ws.expect_json().await["type"], "next");
    // Still open across a few re-checks.
    assert!(matches!(ws.next(Duration::from_millis(800)).await, WsEvent::Timeout));
    app.gql(
        Some(&admin),
        "mutation($id: ID!) { deactivateUser(userId: $id) { active } }",
        json!({ "id": org.user(Role::Viewer).id.to_string() }),
    )
    .await
    .ok();
    assert_eq!(ws.expect_close(Duration::from_secs(3)).await, Some(4403));
}

#[tokio::test(flavor = "multi_thread")]
async fn role_change_mid_stream_closes_4403() {
    let app = TestApp::spawn_with(|s| s.ws_reauth_interval = Duration::from_millis(300)).await;
    let org = app.create_org("acme").await;
    let admin = app.token(&org, Role::Admin).await;
    let mut ws = viewer_socket(&app, &org).await;
    ws.subscribe("1", SUBSCRIPTION).await;
    assert_eq!(ws.expect_json().await["type"], "next");
    app.gql(
        Some(&admin),
        "mutation($id: ID!) { updateUserRole(userId: $id, role: AGENT) { role } }",
        json!({ "id": org.user(Role::Viewer).id.to_string() }),
    )
    .await
    .ok();
    assert_eq!(ws.expect_close(Duration::from_secs(3)).await, Some(4403));
}

// ---------------------------------------------------------------------------------------------
// Operations

#[tokio::test(flavor = "multi_thread")]
async fn complete_stops_an_operation_and_frees_its_id() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let admin = app.token(&org, Role::Admin).await;
    let mut ws = viewer_socket(&app, &org).await;
    ws.subscribe("1", SUBSCRIPTION).await;
    assert_eq!(
        ws.expect_json().await["payload"]["data"]["businessSettingsChanged"]["version"],
        1
    );
    ws.complete("1").await;
    // Round trip, so the complete has been handled before the change.
    ws.send(json!({ "type": "ping" })).await;
    assert_eq!(ws.expect_json().await["type"], "pong");
    app.gql(Some(&admin), UPDATE, json!({ "v": 1 })).await.ok();
    assert!(
        matches!(ws.next(Duration::from_millis(800)).await, WsEvent::Timeout),
        "a completed operation still sent data"
    );
    // The id may be used again.
    ws.subscribe("1", SUBSCRIPTION).await;
    let again = ws.expect_json().await;
    assert_eq!(again["id"], "1");
    assert_eq!(again["payload"]["data"]["businessSettingsChanged"]["version"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_query_gets_next_then_complete() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let mut ws = viewer_socket(&app, &org).await;
    ws.subscribe("q", "{ organization { businessSettings { version } } }")
        .await;
    let next = ws.expect_json().await;
    assert_eq!(next["type"], "next");
    assert_eq!(next["id"], "q");
    assert_eq!(
        next["payload"]["data"]["organization"]["businessSettings"]["version"],
        1
    );
    assert_eq!(ws.expect_json().await, json!({ "id": "q", "type": "complete" }));
}

#[tokio::test(flavor = "multi_thread")]
async fn validation_error_is_an_error_message_and_the_socket_stays_usable() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let mut ws = viewer_socket(&app, &org).await;
    ws.subscribe("1", "subscription { noSuchField }").await;
    let error = ws.expect_json().await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["id"], "1");
    assert!(
        error["payload"].as_array().is_some_and(|errors| !errors.is_empty()),
        "{error}"
    );
    assert_eq!(error["payload"][0]["extensions"]["code"], "BAD_USER_INPUT");
    // No complete follows an error, and the id is free again.
    ws.subscribe("1", SUBSCRIPTION).await;
    let next = ws.expect_json().await;
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(next["id"], "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn operations_per_socket_are_capped_without_closing() {
    let app = TestApp::spawn_with(|s| s.ws_max_operations = 2).await;
    let org = app.create_org("acme").await;
    let mut ws = viewer_socket(&app, &org).await;
    for id in ["a", "b"] {
        ws.subscribe(id, SUBSCRIPTION).await;
        assert_eq!(ws.expect_json().await["id"], id);
    }
    ws.subscribe("c", SUBSCRIPTION).await;
    let refused = ws.expect_json().await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["id"], "c");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "RATE_LIMITED");
    // Completing one makes room.
    ws.complete("a").await;
    ws.subscribe("c", SUBSCRIPTION).await;
    let next = ws.expect_json().await;
    assert_eq!((next["type"].as_str(), next["id"].as_str()), (Some("next"), Some("c")));
}

#[tokio::test(flavor = "multi_thread")]
async fn sockets_per_user_are_capped_with_4429() {
    let app = TestApp::spawn_with(|s| s.ws_max_sockets_per_user = 2).await;
    let org = app.create_org("acme").await;
    let viewer_id = org.user(Role::Viewer).id;
    let token = app.token(&org, Role::Viewer).await;
    let mut first = app.ws(GRAPHQL_TRANSPORT_WS).await;
    first.init(&token).await;
    let mut second = app.ws(GRAPHQL_TRANSPORT_WS).await;
    second.init(&token).await;
    assert_eq!(open_sockets(viewer_id), 2);
    let mut third = app.ws(GRAPHQL_TRANSPORT_WS).await;
    third.send_init(&token).await;
    assert_eq!(third.expect_close(WAIT).await, Some(4429));
    // Another user of the same organization is not affected.
    let mut agent = app.ws(GRAPHQL_TRANSPORT_WS).await;
    agent.init(&app.token(&org, Role::Agent).await).await;

    first.close().await;
    let deadline = Instant::now() + WAIT;
    while open_sockets(viewer_id) > 1 {
        assert!(Instant::now() < deadline, "the closed socket was never released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut fourth = app.ws(GRAPHQL_TRANSPORT_WS).await;
    fourth.init(&token).await;
    drop(second);
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_message_ends_the_connection() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let mut ws = viewer_socket(&app, &org).await;
    let huge = format!("{{\"type\":\"ping\",\"payload\":\"{}\"}}", "x".repeat(70 * 1024));
    let _ = ws.try_send(Message::text(huge)).await;
    let code = ws.expect_close(WAIT).await;
    assert!(matches!(code, None | Some(1009)), "{code:?}");
}

/// A client that subscribes and then never reads is disconnected once its queue is full; the
/// server keeps serving everyone else.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_reads_is_disconnected() {
    let app = TestApp::spawn_with(|s| {
        s.ws_outbound_queue = 8;
        s.ws_max_operations = 20;
    })
    .await;
    let acme = app.create_org("acme").await;
    let bravo = app.create_org("bravo").await;
    let stuck_user = acme.user(Role::Viewer).id;

    // A healthy client in another organization.
    let mut healthy = viewer_socket(&app, &bravo).await;
    healthy.subscribe("1", SUBSCRIPTION).await;
    assert_eq!(healthy.expect_json().await["type"], "next");

    // The stuck client: a tiny receive buffer, 20 subscriptions, then it stops reading.
    let token = app.token(&acme, Role::Viewer).await;
    let mut stuck = WsClient::connect_with(app.addr, GRAPHQL_TRANSPORT_WS, Some(4096)).await;
    stuck.init(&token).await;
    let big = "subscription { businessSettingsChanged { version timezone serviceLevelThresholdSeconds \
               serviceLevelTargetPercent serviceLevelVariant shortAbandonSeconds maxAbandonRatePercent \
               wrapUpLimitSeconds businessHours { weekday open close } holidays dataRetentionDays updatedAt } }";
    for i in 0..20 {
        stuck.subscribe(&format!("op-{i}"), big).await;
    }
    for _ in 0..20 {
        assert_eq!(stuck.expect_json().await["type"], "next");
    }
    assert_eq!(open_sockets(stuck_user), 1);

    // Flood acme with changes until the server gives up on the stuck client.
    let started = Instant::now();
    while open_sockets(stuck_user) > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server never disconnected a client that does not read"
        );
        for _ in 0..50 {
            app.state.bus.publish(acme.id, BusEvent::Settings { version: 1 });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Everyone else is still served: the healthy socket, HTTP, and new sockets of the same user.
    let admin_b = app.token(&bravo, Role::Admin).await;
    app.gql(Some(&admin_b), UPDATE, json!({ "v": 1 })).await.ok();
    let change = healthy.expect_json().await;
    assert_eq!(change["payload"]["data"]["businessSettingsChanged"]["version"], 2);
    let mut again = app.ws(GRAPHQL_TRANSPORT_WS).await;
    again.init(&token).await;
    again.subscribe("1", SUBSCRIPTION).await;
    assert_eq!(again.expect_json().await["type"], "next");

    // The stuck client, reading at last, finds a bounded backlog and then the end.
    let mut backlog = 0usize;
    loop {
        match stuck.recv(Duration::from_secs(10)).await {
            WsEvent::Json(_) => backlog += 1,
            WsEvent::Closed(code) => {
                assert!(matches!(code, None | Some(1013)), "{code:?}");
                break;
            }
            WsEvent::Timeout => panic!("the stuck socket is still open after {backlog} messages"),
        }
    }
}

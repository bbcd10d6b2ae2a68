//! `/metrics`: each test scrapes, does something a user would (queries, mutations, an ingest
//! batch, webhooks, a WebSocket subscription, a change seen by another instance), scrapes
//! again and checks that exactly the series it touched moved, by exactly what was done.
//!
//! The process has one metrics recorder (as in production), so the tests of this file take
//! turns: another test's requests would move the same series.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;
mod ingest_support;

use std::collections::BTreeMap;
use std::time::Duration;

use common::TestApp;
use ingest_support::{at, ev, fixture, t, with};
use omnivox::auth::Role;
use serde_json::json;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One scrape, parsed: (name, labels) → value.
struct Scrape(Vec<(String, BTreeMap<String, String>, f64)>);

impl Scrape {
    async fn of(app: &TestApp) -> Self {
        let response = app.http.get(app.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        Self::parse(&response.text().await.unwrap())
    }

    fn parse(text: &str) -> Self {
        let mut series = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let (key, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("a sample line: {line}"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("a value: {line}"));
            let (name, labels) = match key.split_once('{') {
                None => (key.to_owned(), BTreeMap::new()),
                Some((name, rest)) => {
                    let rest = rest.strip_suffix('}').unwrap();
                    let labels = rest
                        .split("\",")
                        .filter(|pair| !pair.is_empty())
                        .map(|pair| {
                            let (k, v) = pair.split_once("=\"").unwrap();
                            (k.to_owned(), v.trim_end_matches('"').to_owned())
                        })
                        .collect();
                    (name.to_owned(), labels)
                }
            };
            series.push((name, labels, value));
        }
        Self(series)
    }

    /// Sum of the series `name` carrying all of `labels` (0 when none does yet).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
            .map(|(_, _, v)| v)
            .sum()
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _, _)| n == name)
    }
}

/// How much a series moved between two scrapes.
fn moved(before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.get(name, labels) - before.get(name, labels)
}

#[tokio::test(flavor = "multi_thread")]
async fn http_and_graphql_operations_are_counted_and_timed() {
    let _serial = SERIAL.lock().await;
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let token = app.token(&org, Role::Agent).await;

    let before = Scrape::of(&app).await;
    for _ in 0..2 {
        app.gql(Some(&token), "query Me { me { id } }", json!({})).await.ok();
    }
    app.gql(Some(&token), "{ me { id } }", json!({})).await.ok();
    let refused = app.gql(Some(&token), "query Nope { nothing }", json!({})).await;
    assert_eq!(refused.status, 400);
    let unparsable = app.gql(Some(&token), "{ me {", json!({})).await;
    assert_eq!(unparsable.status, 400);
    let anonymous = app.gql(None, "query Me { me { id } }", json!({})).await;
    assert_eq!(anonymous.error_code(), Some("UNAUTHENTICATED"));
    let long_name = "Q".repeat(200);
    app.gql(Some(&token), &format!("query {long_name} {{ me {{ id }} }}"), json!({}))
        .await
        .ok();
    let not_found = app.http.get(app.url("/no/such/path")).send().await.unwrap();
    assert_eq!(not_found.status(), 404);
    let odd_method = reqwest::Method::from_bytes(b"BREW").unwrap();
    app.http.request(odd_method, app.url("/livez")).send().await.unwrap();
    let after = Scrape::of(&app).await;

    // HTTP: seven POSTs to /graphql (five 200, two 400), the first scrape, one unmatched path,
    // one odd method.
    let requests = "omnivox_http_requests_total";
    let post = [("method", "POST"), ("route", "/graphql")];
    assert_eq!(
        moved(&before, &after, requests, &[post[0], post[1], ("status", "200")]),
        5.0
    );
    assert_eq!(
        moved(&before, &after, requests, &[post[0], post[1], ("status", "400")]),
        2.0
    );
    assert_eq!(
        moved(
            &before,
            &after,
            requests,
            &[("method", "GET"), ("route", "/metrics"), ("status", "200")]
        ),
        1.0
    );
    assert_eq!(
        moved(&before, &after, requests, &[("route", "unmatched"), ("status", "404")]),
        1.0,
        "an unknown path counts under one label, never its own"
    );
    assert!(!after
        .0
        .iter()
        .any(|(_, l, _)| l.get("route").is_some_and(|r| r.contains("no/such"))));
    assert_eq!(
        moved(&before, &after, requests, &[("method", "other"), ("route", "/livez")]),
        1.0,
        "a method outside the standard ones counts as `other`"
    );
    assert!(!after
        .0
        .iter()
        .any(|(_, l, _)| l.get("method").is_some_and(|m| m == "BREW")));
    let seconds = "omnivox_http_request_duration_seconds_count";
    assert_eq!(moved(&before, &after, seconds, &[post[0], post[1]]), 7.0);
    assert_eq!(
        moved(
            &before,
            &after,
            "omnivox_http_request_duration_seconds_bucket",
            &[post[0], post[1], ("le", "+Inf")]
        ),
        7.0
    );

    // GraphQL: by operation name, type and outcome.
    let ops = "omnivox_graphql_operations_total";
    let me_ok = [("operation", "Me"), ("type", "query"), ("outcome", "ok")];
    assert_eq!(moved(&before, &after, ops, &me_ok), 2.0);
    assert_eq!(
        moved(
            &before,
            &after,
            ops,
            &[("operation", "anonymous"), ("type", "query"), ("outcome", "ok")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            &before,
            &after,
            ops,
            &[("operation", "Nope"), ("type", "query"), ("outcome", "BAD_USER_INPUT")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            &before,
            &after,
            ops,
            &[
                ("operation", "unknown"),
                ("type", "unknown"),
                ("outcome", "BAD_USER_INPUT")
            ]
        ),
        1.0
    );
    assert_eq!(
        moved(
            &before,
            &after,
            ops,
            &[("operation", "Me"), ("outcome", "UNAUTHENTICATED")]
        ),
        1.0
    );
    let cut = "Q".repeat(64);
    assert_eq!(
        moved(&before, &after, ops, &[("operation", cut.as_str())]),
        1.0,
        "long names are cut"
    );
    assert_eq!(
        moved(
            &before,
            &after,
            "omnivox_graphql_operation_duration_seconds_count",
            &me_ok
        ),
        2.0
    );
    let sum = moved(
        &before,
        &after,
        "omnivox_graphql_operation_duration_seconds_sum",
        &me_ok,
    );
    assert!(sum > 0.0 && sum < 30.0, "{sum}");

    // A mutation.
    let before = Scrape::of(&app).await;
    let admin = app.token(&org, Role::Admin).await;
    let after = Scrape::of(&app).await;
    assert_eq!(
        moved(
            &before,
            &after,
            ops,
            &[("operation", "anonymous"), ("type", "mutation"), ("outcome", "ok")]
        ),
        1.0,
        "the login"
    );
    assert!(!admin.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn ingested_events_are_counted_by_source_and_outcome() {
    let _serial = SERIAL.lock().await;
    let app = TestApp::spawn_with(|s| s.public_base_url = Some("https://cc.example.com".into())).await;
    let f = fixture(&app, "ingestm").await;
    let events = "omnivox_ingest_events_total";

    // The API: two new events, a repeat of one of them, one refused.
    let before = Scrape::of(&app).await;
    let batch = [
        ev("M-1", "OFFERED", t("09:00:00")),
        ev("M-1", "OFFERED", t("09:00:00")),
        with(ev("M-2", "OFFERED", t("09:01:00")), "direction", "INBOUND"),
        ev("M-3", "OFFERED", at("2025-12-31T23:59:59Z")),
    ];
    let response = app
        .gql(
            Some(&f.admin),
            "mutation Record($e: [CallEventInput!]!) { recordCallEvents(events: $e) { accepted duplicates rejected } }",
            json!({ "e": batch }),
        )
        .await;
    let counts = response.ok()["recordCallEvents"].clone();
    assert_eq!(counts, json!({ "accepted": 2, "duplicates": 1, "rejected": 1 }));
    let after = Scrape::of(&app).await;
    let api = ("source", "api");
    assert_eq!(moved(&before, &after, events, &[api, ("outcome", "accepted")]), 2.0);
    assert_eq!(moved(&before, &after, events, &[api, ("outcome", "duplicate")]), 1.0);
    assert_eq!(moved(&before, &after, events, &[api, ("outcome", "rejected")]), 1.0);
    assert_eq!(moved(&before, &after, events, &[("source", "webhook")]), 0.0);
    assert_eq!(
        moved(
            &before,
            &after,
            "omnivox_graphql_operations_total",
            &[("operation", "Record"), ("type", "mutation"), ("outcome", "ok")]
        ),
        1.0
    );

    // Webhooks: a signed callback, the same again, an unsigned one, an unknown organization.
    let token = "f3b2c1d0e9a8b7c6d5e4f3a2b1c0d9e8";
    let account = "AC0123456789abcdef0123456789abcdef";
    app.gql(
        Some(&f.admin),
        "mutation($i: TelephonySettingsInput!) { updateTelephonySettings(input: $i) { authTokenSet } }",
        json!({ "i": { "twilioAccountSid": account, "twilioAuthToken": token } }),
    )
    .await
    .ok();
    let path = format!("/webhooks/twilio/{}/voice-status", f.org.slug);
    let params: Vec<(String, String)> = [
        ("AccountSid", account),
        ("CallSid", "CA-METRICS-1"),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("From", "+447700900123"),
        ("To", "+441632960000"),
        ("SequenceNumber", "0"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .chain([("Timestamp".to_owned(), t("09:30:00").to_rfc2822())])
    .collect();
    let signature =
        omnivox::ingest::twilio::compute_signature(token, &format!("https://cc.example.com{path}"), &params);
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    let deliver = |path: String, signature: Option<String>| {
        let mut request = app
            .http
            .post(app.url(&path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone());
        if let Some(signature) = signature {
            request = request.header("x-twilio-signature", signature);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let before = Scrape::of(&app).await;
    assert_eq!(deliver(path.clone(), Some(signature.clone())).await, 204);
    assert_eq!(deliver(path.clone(), Some(signature.clone())).await, 204);
    assert_eq!(deliver(path.clone(), None).await, 403);
    assert_eq!(
        deliver("/webhooks/twilio/nobody/voice-status".into(), Some(signature)).await,
        404
    );
    let after = Scrape::of(&app).await;
    let webhook = ("source", "webhook");
    assert_eq!(moved(&before, &after, events, &[webhook, ("outcome", "accepted")]), 1.0);
    assert_eq!(
        moved(&before, &after, events, &[webhook, ("outcome", "duplicate")]),
        1.0
    );
    assert_eq!(moved(&before, &after, events, &[webhook, ("outcome", "rejected")]), 2.0);
    assert_eq!(moved(&before, &after, events, &[api]), 0.0);
    // Under the route template, not the organization's slug.
    assert_eq!(
        moved(
            &before,
            &after,
            "omnivox_http_requests_total",
            &[("route", "/webhooks/twilio/{org_slug}/voice-status"), ("status", "204")]
        ),
        2.0
    );
}

/// Polls until `series` (with `labels`) reads `expected`, or fails.
async fn until(app: &TestApp, series: &str, labels: &[(&str, &str)], expected: f64) {
    let mut last = f64::NAN;
    for _ in 0..100 {
        last = Scrape::of(app).await.get(series, labels);
        if last == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{series} {labels:?} stayed at {last}, expected {expected}");
}

#[tokio::test(flavor = "multi_thread")]
async fn websockets_and_subscriptions_are_gauged_while_open() {
    let _serial = SERIAL.lock().await;
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let admin = app.token(&org, Role::Admin).await;
    let viewer = app.token(&org, Role::Viewer).await;
    let before = Scrape::of(&app).await;
    let sockets = before.get("omnivox_ws_connections", &[]);
    let settings_kind = [("kind", "businessSettingsChanged")];
    let boards_kind = [("kind", "agentStates")];
    let settings_subs = before.get("omnivox_ws_subscriptions", &settings_kind);
    let board_subs = before.get("omnivox_ws_subscriptions", &boards_kind);

    let mut first = app
        .subscribe(
            &admin,
            "subscription { businessSettingsChanged { version } }",
            json!({}),
        )
        .await;
    let mut second = app
        .subscribe(&viewer, "subscription Board { agentStates { kind } }", json!({}))
        .await;
    assert_eq!(second.expect_data("agentStates").await["kind"], "SNAPSHOT");
    until(&app, "omnivox_ws_connections", &[], sockets + 2.0).await;
    until(&app, "omnivox_ws_subscriptions", &settings_kind, settings_subs + 1.0).await;
    until(&app, "omnivox_ws_subscriptions", &boards_kind, board_subs + 1.0).await;

    // The subscription works while counted.
    app.gql(
        Some(&admin),
        "mutation { updateBusinessSettings(expectedVersion: 1, input: { serviceLevelThresholdSeconds: 25 }) { version } }",
        json!({}),
    )
    .await
    .ok();
    let seen = first
        .until("businessSettingsChanged", Duration::from_secs(10), |s| {
            s["version"] == 2
        })
        .await;
    assert_eq!(seen["version"], 2);

    drop(first);
    until(&app, "omnivox_ws_subscriptions", &settings_kind, settings_subs).await;
    until(&app, "omnivox_ws_connections", &[], sockets + 1.0).await;
    drop(second);
    until(&app, "omnivox_ws_subscriptions", &boards_kind, board_subs).await;
    until(&app, "omnivox_ws_connections", &[], sockets).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bus_events_from_another_instance_are_counted_with_their_lag() {
    let _serial = SERIAL.lock().await;
    let redis = |s: &mut omnivox::config::Settings| s.redis_url = Some(common::REDIS_URL.into());
    let app = TestApp::spawn_with(redis).await;
    let peer = app.spawn_peer(redis).await;
    let org = app.create_org("acme").await;
    let admin = app.token(&org, Role::Admin).await;
    // Both instances subscribed to Redis before the change.
    until(&app, "omnivox_bus_connected", &[], 1.0).await;
    until(&peer, "omnivox_bus_connected", &[], 1.0).await;

    let before_app = Scrape::of(&app).await;
    let before_peer = Scrape::of(&peer).await;
    app.gql(
        Some(&admin),
        "mutation { updateBusinessSettings(expectedVersion: 1, input: { serviceLevelThresholdSeconds: 25 }) { version } }",
        json!({}),
    )
    .await
    .ok();
    let published = before_app.get("omnivox_bus_published_total", &[]) + 1.0;
    until(&app, "omnivox_bus_published_total", &[], published).await;
    let received = before_peer.get("omnivox_bus_received_total", &[]) + 1.0;
    until(&peer, "omnivox_bus_received_total", &[], received).await;
    let after_peer = Scrape::of(&peer).await;
    // Each instance reports its own bus: the publisher received nothing from the other.
    assert_eq!(
        moved(&before_app, &Scrape::of(&app).await, "omnivox_bus_received_total", &[]),
        0.0
    );
    assert_eq!(
        moved(&before_peer, &after_peer, "omnivox_bus_published_total", &[]),
        0.0
    );
    // One lag sample, for the one event received, and a plausible one.
    assert_eq!(
        moved(&before_peer, &after_peer, "omnivox_bus_lag_seconds_count", &[]),
        1.0
    );
    let lag = moved(&before_peer, &after_peer, "omnivox_bus_lag_seconds_sum", &[]);
    assert!((0.0..5.0).contains(&lag), "{lag}");
    assert_eq!(after_peer.get("omnivox_bus_redis_mode", &[]), 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_database_pool_shows_connections_in_use_and_waiters() {
    let _serial = SERIAL.lock().await;
    let app = TestApp::spawn_with(|s| {
        s.db_pool_size = 1;
        s.db_wait_timeout = Duration::from_secs(20);
    })
    .await;
    let org = app.create_org("acme").await;
    let token = app.token(&org, Role::Agent).await;
    let scrape = Scrape::of(&app).await;
    assert_eq!(scrape.get("omnivox_db_pool_max_connections", &[]), 1.0);
    assert!(scrape.has("omnivox_db_pool_waiting"));

    // Hold the only connection: it is in use, and a request waits for it.
    let held = app.state.db.get_without_tenant().await.unwrap();
    until(&app, "omnivox_db_pool_connections", &[("state", "in_use")], 1.0).await;
    until(&app, "omnivox_db_pool_waiting", &[], 0.0).await;
    let waiting = {
        let http = app.http.clone();
        let url = app.url("/graphql");
        let token = token.clone();
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(token)
                .json(&json!({ "query": "{ me { id } }" }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    until(&app, "omnivox_db_pool_waiting", &[], 1.0).await;
    drop(held);
    assert_eq!(waiting.await.unwrap(), 200);
    until(&app, "omnivox_db_pool_waiting", &[], 0.0).await;
    until(&app, "omnivox_db_pool_connections", &[("state", "in_use")], 0.0).await;
    until(&app, "omnivox_db_pool_connections", &[("state", "idle")], 1.0).await;
}

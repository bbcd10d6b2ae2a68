//! Graceful drain. The real binary, under load (recordCallEvents batches, signed Twilio
//! webhooks, open WebSockets), gets SIGTERM. What "nothing lost, nothing cut" means here:
//!
//! * every event acknowledged to a client (ACCEPTED or DUPLICATE in a `recordCallEvents`
//!   answer, a 204 to a webhook) is stored;
//! * every request either got a complete success response, or failed at the connection before
//!   the server read it — refused (the listener had closed) or closed before any byte of a
//!   response. Such a request changed nothing: none of its events is stored. A request the
//!   server had read but whose response was cut would show as a failure with stored events;
//! * every WebSocket is closed with code 1001 (going away);
//! * the process exits 0 before its drain deadline.
//!
//! Clients open one connection per request: a pooled client may also see a keep-alive
//! connection closed while idle (the usual race of any server closing idle connections); it
//! retries such a request as after any idle close.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use common::binary::Process;
use common::fixture::{CampaignSpec, FixtureOrg};
use common::ws::{WsClient, GRAPHQL_TRANSPORT_WS};
use common::{test_settings, TestApp, TestDatabase};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use omnivox::auth::Role;
use omnivox::state::AppState;
use serde_json::{json, Value};
use uuid::Uuid;

const BASE: &str = "http://drain.example";
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN: &str = "0123456789abcdef0123456789abcdef";
const RECORD: &str =
    "mutation($e: [CallEventInput!]!) { recordCallEvents(events: $e) { results { externalId status } } }";
const CALLS_PER_BATCH: usize = 40;

/// One event: (call, sequence number).
type Key = (String, i64);

#[derive(Debug)]
enum Outcome {
    /// A complete response: the events it acknowledged.
    Answered { status: u16, acknowledged: Vec<Key> },
    /// The connection was refused: the server no longer listened.
    Refused,
    /// Connected, but no response came.
    NoResponse(String),
}

#[derive(Debug)]
struct Request {
    sent: Vec<Key>,
    started: Instant,
    ended: Instant,
    outcome: Outcome,
}

fn classify(error: &reqwest::Error) -> Outcome {
    if error.is_connect() {
        Outcome::Refused
    } else {
        Outcome::NoResponse(format!("{error:?}"))
    }
}

/// One connection per request (see the module documentation).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

async fn graphql_sender(
    addr: std::net::SocketAddr,
    token: String,
    campaign: Uuid,
    sender: usize,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Request>>>,
) {
    let http = client();
    for batch in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let at = Utc::now() - TimeDelta::seconds(1);
        let mut events = Vec::new();
        let mut sent = Vec::new();
        for call in 0..CALLS_PER_BATCH {
            let id = format!("G{sender}-{batch}-{call}");
            events.push(
                json!({ "externalId": id, "type": "OFFERED", "occurredAt": at.to_rfc3339(),
                                "sequenceNumber": 0, "direction": "INBOUND", "campaignId": campaign }),
            );
            events.push(json!({ "externalId": id, "type": "ENDED", "occurredAt": (at + TimeDelta::milliseconds(500)).to_rfc3339(),
                                "sequenceNumber": 1 }));
            sent.push((id.clone(), 0));
            sent.push((id, 1));
        }
        let started = Instant::now();
        let response = http
            .post(format!("http://{addr}/graphql"))
            .bearer_auth(&token)
            .header("accept", "application/graphql-response+json")
            .json(&json!({ "query": RECORD, "variables": { "e": events } }))
            .send()
            .await;
        let outcome = match response {
            Err(error) => classify(&error),
            Ok(response) => {
                let status = response.status().as_u16();
                match response.json::<Value>().await {
                    Err(error) => classify(&error),
                    Ok(body) => {
                        let results = body["data"]["recordCallEvents"]["results"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default();
                        let acknowledged = results
                            .iter()
                            .zip(&sent)
                            .filter(|(r, _)| r["status"] == "ACCEPTED" || r["status"] == "DUPLICATE")
                            .map(|(_, key)| key.clone())
                            .collect();
                        Outcome::Answered { status, acknowledged }
                    }
                }
            }
        };
        let refused = matches!(outcome, Outcome::Refused);
        log.lock().unwrap().push(Request {
            sent,
            started,
            ended: Instant::now(),
            outcome,
        });
        if refused {
            return;
        }
    }
}

async fn webhook_sender(
    addr: std::net::SocketAddr,
    slug: String,
    sender: usize,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Request>>>,
) {
    let http = client();
    let path = format!("/webhooks/twilio/{slug}/voice-status");
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let call = format!("CA{sender}x{n}");
        let params: Vec<(String, String)> = [
            ("AccountSid", ACCOUNT),
            ("CallSid", call.as_str()),
            ("CallStatus", "ringing"),
            ("Direction", "inbound"),
            ("From", "+447700900123"),
            ("To", "+441632960000"),
            ("SequenceNumber", "0"),
            ("Timestamp", &Utc::now().to_rfc2822()),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let signature = omnivox::ingest::twilio::compute_signature(TWILIO_TOKEN, &format!("{BASE}{path}"), &params);
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&params)
            .finish();
        let started = Instant::now();
        let response = http
            .post(format!("http://{addr}{path}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", signature)
            .body(body)
            .send()
            .await;
        let sent = vec![(call.clone(), 0)];
        let outcome = match response {
            Err(error) => classify(&error),
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Err(error) => classify(&error),
                    Ok(_) => Outcome::Answered {
                        status,
                        acknowledged: if status == 204 { sent.clone() } else { Vec::new() },
                    },
                }
            }
        };
        let refused = matches!(outcome, Outcome::Refused);
        log.lock().unwrap().push(Request {
            sent,
            started,
            ended: Instant::now(),
            outcome,
        });
        if refused {
            return;
        }
    }
}

#[derive(diesel::QueryableByName)]
struct StoredKey {
    #[diesel(sql_type = diesel::sql_types::Text)]
    external_id: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    sequence_number: i64,
}

async fn stored_keys(database_url: &str, org: Uuid) -> HashSet<Key> {
    use diesel_async::RunQueryDsl;
    let mut conn = AsyncPgConnection::establish(database_url).await.unwrap();
    let rows: Vec<StoredKey> =
        diesel::sql_query("SELECT external_id, sequence_number FROM call_events WHERE organization_id = $1")
            .bind::<diesel::sql_types::Uuid, _>(org)
            .load(&mut conn)
            .await
            .unwrap();
    rows.into_iter().map(|r| (r.external_id, r.sequence_number)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_loses_no_acknowledged_event_and_cuts_no_request() {
    let database = TestDatabase::new().await;
    let state = AppState::new(test_settings(&database.url)).unwrap();
    let org = FixtureOrg::builder("drain")
        .created_at(Utc::now() - TimeDelta::hours(1))
        .agents(["Ada", "Ben"])
        .campaign(CampaignSpec::inbound("Care"))
        .build(&state)
        .await;
    let admin = org.token(&state, Role::Admin).await;
    let viewer = org.token(&state, Role::Viewer).await;

    let mut server = Process::spawn(
        &[
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--drain-timeout",
            "20s",
            "--public-base-url",
            BASE,
        ],
        &database.url,
    );
    let addr = server.listening_addr(Duration::from_secs(60)).await;
    let http = client();
    let configured: Value = http
        .post(format!("http://{addr}/graphql"))
        .bearer_auth(&admin)
        .json(&json!({ "query": "mutation($i: TelephonySettingsInput!) { updateTelephonySettings(input: $i) { authTokenSet } }",
                       "variables": { "i": { "twilioAccountSid": ACCOUNT, "twilioAuthToken": TWILIO_TOKEN } } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        configured["data"]["updateTelephonySettings"]["authTokenSet"], true,
        "{configured}"
    );

    let mut sockets = Vec::new();
    for _ in 0..4 {
        let mut ws = WsClient::subscribed(addr, &viewer, "subscription { agentStates { kind } }", json!({})).await;
        assert_eq!(ws.expect_data("agentStates").await["kind"], "SNAPSHOT");
        sockets.push(ws);
    }
    let mut legacy = WsClient::connect(addr, "graphql-ws").await;
    legacy.init(&viewer).await;
    sockets.push(legacy);

    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut senders = Vec::new();
    for sender in 0..3 {
        senders.push(tokio::spawn(graphql_sender(
            addr,
            admin.clone(),
            org.campaigns[0],
            sender,
            stop.clone(),
            log.clone(),
        )));
    }
    for sender in 0..8 {
        senders.push(tokio::spawn(webhook_sender(
            addr,
            org.slug.clone(),
            sender,
            stop.clone(),
            log.clone(),
        )));
    }
    // Load for a while, so that requests of both kinds are in flight at the signal.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let signalled = Instant::now();
    server.sigterm();

    for mut socket in sockets {
        assert_eq!(socket.expect_close(Duration::from_secs(10)).await, Some(1001));
    }
    let status = server.wait_exit(Duration::from_secs(30)).await;
    let drained_in = signalled.elapsed();
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }
    let output = server.output();
    assert!(status.success(), "exit status {status:?}\n{output}");
    assert!(drained_in < Duration::from_secs(20), "drained in {drained_in:?}");
    assert!(output.contains("drained; shut down cleanly"), "{output}");
    assert!(!output.contains("drain deadline passed"), "{output}");

    let stored = stored_keys(&database.url, org.id).await;
    let requests = std::mem::take(&mut *log.lock().unwrap());
    let (mut answered, mut refused, mut unanswered, mut in_flight_at_signal) = (0, 0, 0, 0);
    let mut acknowledged_events = 0;
    for request in &requests {
        match &request.outcome {
            Outcome::Answered { status, acknowledged } => {
                answered += 1;
                assert!(
                    (200..300).contains(status),
                    "a request was refused with {status}: {request:?}"
                );
                assert_eq!(acknowledged.len(), request.sent.len(), "{request:?}");
                for key in acknowledged {
                    assert!(stored.contains(key), "acknowledged but not stored: {key:?}");
                }
                acknowledged_events += acknowledged.len();
                if request.started < signalled && request.ended > signalled {
                    in_flight_at_signal += 1;
                }
            }
            Outcome::Refused => refused += 1,
            Outcome::NoResponse(error) => {
                unanswered += 1;
                let kept: Vec<&Key> = request.sent.iter().filter(|k| stored.contains(*k)).collect();
                assert!(
                    kept.is_empty(),
                    "a request whose response was cut had been processed ({error}): {kept:?}"
                );
            }
        }
    }
    println!(
        "{} requests: {answered} answered ({acknowledged_events} events acknowledged, {in_flight_at_signal} in flight at \
         SIGTERM), {refused} refused at connect, {unanswered} closed before being read; drained in {drained_in:?}",
        requests.len()
    );
    assert!(answered > 20, "the load ran: {answered} answered requests");
    assert!(
        in_flight_at_signal > 0,
        "SIGTERM arrived under load: no request was in flight"
    );
    assert!(refused > 0, "after the drain the server refuses connections");
}

#[tokio::test(flavor = "multi_thread")]
async fn draining_turns_readiness_off_and_closes_every_socket_1001() {
    let app = TestApp::spawn().await;
    let org = app.create_org("draining").await;
    let viewer = app.token(&org, Role::Viewer).await;
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);

    let mut acknowledged = app
        .subscribe(&viewer, "subscription { agentStates { kind } }", json!({}))
        .await;
    assert_eq!(acknowledged.expect_data("agentStates").await["kind"], "SNAPSHOT");
    // A socket that has not even sent `connection_init` yet.
    let mut fresh = app.ws(GRAPHQL_TRANSPORT_WS).await;
    assert!(app.state.lifecycle.start_draining());

    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "draining");
    assert_eq!(acknowledged.expect_close(Duration::from_secs(5)).await, Some(1001));
    assert_eq!(fresh.expect_close(Duration::from_secs(5)).await, Some(1001));
    // A socket that arrives while draining goes at once.
    let mut late = app.ws(GRAPHQL_TRANSPORT_WS).await;
    assert_eq!(late.expect_close(Duration::from_secs(5)).await, Some(1001));
    // Closed sockets are no longer work in flight.
    tokio::time::timeout(Duration::from_secs(5), app.state.lifecycle.idle())
        .await
        .expect("every socket released its work");
}

#[tokio::test(flavor = "multi_thread")]
async fn work_past_the_drain_deadline_is_cut_and_the_exit_says_so() {
    let database = TestDatabase::new().await;
    let state = AppState::new(test_settings(&database.url)).unwrap();
    let org = FixtureOrg::builder("deadline").build(&state).await;
    let viewer = org.token(&state, Role::Viewer).await;
    let mut server = Process::spawn(
        &["serve", "--bind", "127.0.0.1:0", "--drain-timeout", "500ms"],
        &database.url,
    );
    let addr = server.listening_addr(Duration::from_secs(60)).await;
    // A client that stops reading: the server waits (up to two seconds) for the reply to its
    // close frame, longer than the deadline allows.
    let mut silent = WsClient::subscribed(addr, &viewer, "subscription { agentStates { kind } }", json!({})).await;
    assert_eq!(silent.expect_data("agentStates").await["kind"], "SNAPSHOT");
    let signalled = Instant::now();
    server.sigterm();
    let status = server.wait_exit(Duration::from_secs(15)).await;
    let output = server.output();
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "{:?}",
        signalled.elapsed()
    );
    assert!(output.contains("drain deadline passed"), "{output}");
    drop(silent);
}

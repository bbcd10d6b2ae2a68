//! GraphQL over WebSocket, our own implementation of both sub-protocols:
//!
//! * `graphql-transport-ws` (<https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md>),
//!   followed to the letter, close codes included;
//! * the legacy `graphql-ws` of subscriptions-transport-ws (`start`/`data`/`stop`/`ka`…), for
//!   old clients, with the same authentication, limits and close codes.
//!
//! async-graphql's stock handler has no initialisation timeout, closes 1002 on a refused
//! `connection_init` (so graphql-ws clients never retry with a fresh token), silently replaces a
//! stream on a reused id and queues outbound messages without bound. Wallboards hold these
//! sockets for days, so this module runs the schema's stream API itself.
//!
//! # Lifecycle of one socket
//! 1. The client must send `connection_init` within [`Settings::ws_init_timeout`] (default 5 s),
//!    else close **4408** "Connection initialisation timeout".
//! 2. Its payload carries the access token (`{"token": …}` or `{"Authorization": "Bearer …"}`).
//!    Missing or refused token → **4403** "Forbidden" (legacy clients first get a
//!    `connection_error`). Database unavailable while checking it → **1011** (clients retry).
//!    More than [`Settings::ws_max_sockets_per_user`] sockets for the user (or the API key; default 20, counted
//!    per process) → **4429** "Too many sockets for this user". Otherwise `connection_ack`.
//! 3. A second `connection_init` → **4429** "Too many initialisation requests"; `subscribe`
//!    (legacy `start`) before the ack → **4401** "Unauthorized"; a message that is not JSON, has
//!    an unknown `type`, or a `subscribe` without `id`/`payload` → **4400**; a binary message →
//!    **4400**; a `subscribe` reusing the id of a running operation → **4409** "Subscriber for
//!    <id> already exists".
//! 4. Each operation runs in its own task with the principal authenticated at init. The server
//!    sends `next` (legacy `data`) for each result and `complete` when the stream ends; a
//!    request that fails before executing (parse or validation error, limits) gets one `error`
//!    message with the GraphQL errors, and the socket stays open. `complete` (legacy `stop`)
//!    from the client drops the operation.
//! 5. More than [`Settings::ws_max_operations`] operations at once (default 100): the extra one
//!    is answered with an `error` message (code `RATE_LIMITED`) and the socket stays open — a
//!    client bug should not turn into a reconnect loop. Likewise a subscription beyond
//!    `--max-subscriptions-per-user` open subscriptions of its user (or API key) on this
//!    process, over all its sockets. Every operation is charged its cost to the caller's rate
//!    limit when it starts (`graphql::rate_limits`); over budget, it gets an `error` message
//!    (code `RATE_LIMITED`, `retryAfterSeconds`).
//! 6. The token's `exp` closes the socket **4403** at that instant (our own timer: the JWT leeway
//!    does not apply). Every [`Settings::ws_reauth_interval`] (default 30 s) the token is checked
//!    again; a deactivated user, a bumped token version or a changed role closes **4403**. A
//!    database failure during that check keeps the socket open. Every socket also listens on
//!    the bus's access topic, on every instance: its API key's revocation or its
//!    organization's suspension closes it **4403** at once ("Forbidden: organization
//!    suspended" for the latter, also at init); a change of its user's access (deactivation,
//!    role change, password reset) triggers the check at once. The periodic check catches a
//!    notice lost to a bus outage.
//! 7. Once acknowledged, the server sends `{"type":"ping"}` (legacy `{"type":"ka"}`, also
//!    right after the ack) every [`Settings::ws_ping_interval`] (default 15 s). A client `ping`
//!    gets a `pong` at any time; a client `pong` is ignored.
//! 8. Outbound messages go through a queue of [`Settings::ws_outbound_queue`] messages (default
//!    256) to one writer task. When it is full the client is not reading: the socket is closed
//!    **1013** "Try again later" (best effort — the frame cannot be delivered to a client that
//!    does not read; the connection is dropped after a short grace) and its operations are
//!    dropped, so a stuck client costs a bounded amount of memory.
//!
//! 9. When the server starts draining (SIGTERM), every socket — acknowledged or not — is closed
//!    **1001** "Server going away": clients reconnect, through the load balancer, to another
//!    instance. An open socket counts as work in flight
//!    ([`crate::state::Lifecycle::work`]) until its close frame is flushed.
//!
//! Messages larger than 64 KiB are refused by the WebSocket layer (the connection ends, with a
//! 1009 close frame when possible).
//!
//! [`Settings::ws_init_timeout`]: crate::config::Settings::ws_init_timeout
//! [`Settings::ws_max_sockets_per_user`]: crate::config::Settings::ws_max_sockets_per_user
//! [`Settings::ws_max_operations`]: crate::config::Settings::ws_max_operations
//! [`Settings::ws_reauth_interval`]: crate::config::Settings::ws_reauth_interval
//! [`Settings::ws_ping_interval`]: crate::config::Settings::ws_ping_interval
//! [`Settings::ws_outbound_queue`]: crate::config::Settings::ws_outbound_queue

mod shared;

pub use shared::{ShareKey, SharedStreams, SHARED_FIELDS};

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::stream::BoxStream;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use uuid::Uuid;

use crate::access::principal;
use crate::auth::Auth;
use crate::auth::Principal;
use crate::config::Settings;
use crate::error::AppError;
use crate::graphql::RequestContext;
use crate::http::{denials, errors, HttpState};
use crate::limits::{Denial, Limit, Meter};
use crate::realtime::bus::{Received, Receiver};
use crate::realtime::{BusEvent, Topic};
use crate::state::audit_queue::DeniedCaller;
use crate::telemetry::metrics as telemetry;

pub use crate::http::graphql::token_from_init_payload;

/// The current protocol (graphql-ws library).
pub const GRAPHQL_TRANSPORT_WS: &str = "graphql-transport-ws";
/// The legacy protocol (subscriptions-transport-ws).
pub const GRAPHQL_WS: &str = "graphql-ws";
/// Largest WebSocket message accepted from a client.
pub const MAX_WS_MESSAGE_BYTES: usize = 64 * 1024;
/// Read buffer of one socket (grown on demand up to the message limit).
const WS_READ_BUFFER_BYTES: usize = 4 * 1024;
/// Bytes buffered before a write goes to the socket.
const WS_WRITE_BUFFER_BYTES: usize = 8 * 1024;
/// How long a closing socket may take to flush its close frame and read the client's reply.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Shortest accepted interval or timeout (a zero period would make a timer spin).
const MIN_PERIOD: Duration = Duration::from_millis(10);
/// Close reasons are limited to 123 bytes by RFC 6455.
const MAX_CLOSE_REASON_BYTES: usize = 123;

/// The close codes this module uses.
pub mod close_code {
    /// Normal closure (legacy `connection_terminate`).
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down (draining); clients reconnect elsewhere.
    pub const GOING_AWAY: u16 = 1001;
    /// A message larger than the limit.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// Authentication could not be checked (database unavailable); clients retry.
    pub const INTERNAL_ERROR: u16 = 1011;
    /// The client does not read its messages (outbound queue full); clients retry.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// Malformed message.
    pub const BAD_REQUEST: u16 = 4400;
    /// `subscribe` before `connection_ack`.
    pub const UNAUTHORIZED: u16 = 4401;
    /// Missing, refused, expired or revoked token.
    pub const FORBIDDEN: u16 = 4403;
    /// No `connection_init` in time.
    pub const CONNECTION_INITIALISATION_TIMEOUT: u16 = 4408;
    /// `subscribe` with the id of a running operation.
    pub const SUBSCRIBER_ALREADY_EXISTS: u16 = 4409;
    /// A second `connection_init`, or too many sockets for one user.
    pub const TOO_MANY_REQUESTS: u16 = 4429;
}

/// Which sub-protocol a socket speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `graphql-transport-ws`.
    TransportWs,
    /// Legacy `graphql-ws` (subscriptions-transport-ws).
    Legacy,
}

impl Protocol {
    fn from_header(value: &[u8]) -> Option<Self> {
        match value {
            b"graphql-transport-ws" => Some(Protocol::TransportWs),
            b"graphql-ws" => Some(Protocol::Legacy),
            _ => None,
        }
    }
    fn next_type(self) -> &'static str {
        match self {
            Protocol::TransportWs => "next",
            Protocol::Legacy => "data",
        }
    }
    fn keep_alive(self) -> &'static str {
        match self {
            Protocol::TransportWs => r#"{"type":"ping"}"#,
            Protocol::Legacy => r#"{"type":"ka"}"#,
        }
    }
}

/// The limits and timers of every socket, from [`Settings`].
#[derive(Debug, Clone)]
pub struct WsLimits {
    pub init_timeout: Duration,
    pub ping_interval: Duration,
    pub reauth_interval: Duration,
    pub max_operations: usize,
    pub max_sockets_per_user: usize,
    pub outbound_queue: usize,
}

impl WsLimits {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            init_timeout: settings.ws_init_timeout.max(MIN_PERIOD),
            ping_interval: settings.ws_ping_interval.max(MIN_PERIOD),
            reauth_interval: settings.ws_reauth_interval.max(MIN_PERIOD),
            max_operations: settings.ws_max_operations,
            max_sockets_per_user: settings.ws_max_sockets_per_user,
            outbound_queue: settings.ws_outbound_queue.max(1),
        }
    }
}

/// Upgrades `GET /graphql` to a GraphQL WebSocket. 400 when the client offers neither
/// sub-protocol. `request_id` (of the upgrade request) prefixes each operation's request id.
pub fn upgrade(
    state: HttpState,
    upgrade: WebSocketUpgrade,
    request_id: Option<String>,
    client: Option<IpAddr>,
) -> Response {
    let upgrade = upgrade
        .protocols([GRAPHQL_TRANSPORT_WS, GRAPHQL_WS])
        .max_message_size(MAX_WS_MESSAGE_BYTES)
        .max_frame_size(MAX_WS_MESSAGE_BYTES)
        // tungstenite allocates 128 KiB read and write buffers per socket by default: for tens
        // of thousands of mostly idle wallboards that is most of the memory. Client messages are
        // small; outbound messages are written as they come (the outbound queue batches).
        .read_buffer_size(WS_READ_BUFFER_BYTES)
        .write_buffer_size(WS_WRITE_BUFFER_BYTES);
    let Some(protocol) = upgrade
        .selected_protocol()
        .and_then(|value| Protocol::from_header(value.as_bytes()))
    else {
        return (
            StatusCode::BAD_REQUEST,
            "offer the graphql-transport-ws (or legacy graphql-ws) sub-protocol",
        )
            .into_response();
    };
    upgrade.on_upgrade(move |socket| serve(socket, state, protocol, request_id, client))
}

// ---------------------------------------------------------------------------------------------
// Sockets per user

fn open_sockets_registry() -> &'static Mutex<HashMap<Uuid, usize>> {
    static REGISTRY: OnceLock<Mutex<HashMap<Uuid, usize>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Authenticated sockets a user holds open on this process.
pub fn open_sockets(user_id: Uuid) -> usize {
    let registry = open_sockets_registry()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    registry.get(&user_id).copied().unwrap_or(0)
}

fn open_subscriptions_registry() -> &'static Mutex<HashMap<Uuid, usize>> {
    static REGISTRY: OnceLock<Mutex<HashMap<Uuid, usize>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Subscriptions a user (or API key) holds open on this process, over all its sockets.
pub fn open_subscriptions(owner: Uuid) -> usize {
    let registry = open_subscriptions_registry()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    registry.get(&owner).copied().unwrap_or(0)
}

/// One counted socket (or subscription) of a user; released when dropped.
struct SocketSlot {
    registry: &'static Mutex<HashMap<Uuid, usize>>,
    user_id: Uuid,
}

impl SocketSlot {
    fn acquire(user_id: Uuid, max: usize) -> Option<Self> {
        Self::acquire_in(open_sockets_registry(), user_id, max)
    }

    /// A slot of the subscriptions cap (`--max-subscriptions-per-user`).
    fn subscription(owner: Uuid, max: usize) -> Option<Self> {
        Self::acquire_in(open_subscriptions_registry(), owner, max)
    }

    fn acquire_in(registry_lock: &'static Mutex<HashMap<Uuid, usize>>, user_id: Uuid, max: usize) -> Option<Self> {
        let mut registry = registry_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = registry.entry(user_id).or_insert(0);
        if *count >= max {
            if *count == 0 {
                registry.remove(&user_id);
            }
            return None;
        }
        *count += 1;
        Some(Self {
            registry: registry_lock,
            user_id,
        })
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut registry = self.registry.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = registry.get_mut(&self.user_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                registry.remove(&self.user_id);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The connection

/// Why the connection loop ended.
#[derive(Debug)]
enum Exit {
    /// Close the socket with this code and reason.
    Close(u16, String),
    /// The client closed the socket or it broke: nothing more to say.
    Gone,
}

impl Exit {
    fn close(code: u16, reason: impl Into<String>) -> Self {
        Exit::Close(code, reason.into())
    }
    fn bad_request(detail: impl std::fmt::Display) -> Self {
        Exit::close(close_code::BAD_REQUEST, format!("Invalid message received: {detail}"))
    }
    fn forbidden(detail: &str) -> Self {
        Exit::close(close_code::FORBIDDEN, format!("Forbidden: {detail}"))
    }
    fn overflow() -> Self {
        Exit::close(
            close_code::TRY_AGAIN_LATER,
            "Try again later: the client does not read its messages",
        )
    }
}

/// What the writer task sends.
enum Outbound {
    Text(String),
    Close(u16, String),
}

/// How an operation task ended.
enum OpEnd {
    /// The stream ended: the server owes the client a `complete`.
    Completed(String),
    /// The request failed before executing: the server owes the client an `error` message.
    Failed(String, Value),
    /// The outbound queue was full.
    Overflow,
    /// The writer is gone.
    Gone,
}

/// The authenticated side of a socket.
struct Session {
    principal: Principal,
    token: String,
    _slot: SocketSlot,
}

struct Connection {
    protocol: Protocol,
    state: HttpState,
    limits: WsLimits,
    request_id: Option<String>,
    /// The client's address (of the upgrade request), for the rate limits.
    client: Option<IpAddr>,
    out: mpsc::Sender<Outbound>,
    init_received: bool,
    session: Option<Session>,
    /// Running operations; each task returns how it ended.
    tasks: JoinSet<OpEnd>,
    /// Client operation id → its task.
    active: HashMap<String, AbortHandle>,
    /// API key sockets: revocation notices from the bus (see [`Connection::on_revocation`]).
    revocations: Option<Receiver>,
}

async fn serve(
    socket: WebSocket,
    state: HttpState,
    protocol: Protocol,
    request_id: Option<String>,
    client: Option<IpAddr>,
) {
    let _open = telemetry::ws_connection();
    // Until the close frame is flushed: a draining process waits for it.
    let _work = state.app.lifecycle.work();
    let limits = WsLimits::from_settings(&state.app.settings);
    let (sink, mut incoming) = socket.split();
    let (out, queue) = mpsc::channel(limits.outbound_queue);
    let (kill, kill_rx) = oneshot::channel();
    let mut writer = tokio::spawn(write_loop(sink, queue, kill_rx));
    let mut connection = Connection {
        protocol,
        state,
        limits,
        request_id,
        client,
        out: out.clone(),
        init_received: false,
        session: None,
        tasks: JoinSet::new(),
        active: HashMap::new(),
        revocations: None,
    };
    let exit = connection.run(&mut incoming).await;
    // Operations stop before the close frame is queued, so nothing follows it.
    connection.tasks.abort_all();
    drop(connection);
    let mut kill = Some(kill);
    if let Exit::Close(code, reason) = exit {
        tracing::debug!(code, %reason, "closing GraphQL WebSocket");
        if let Err(error) = out.try_send(Outbound::Close(code, reason)) {
            // The queue is full (the client does not read): bypass it.
            if let (mpsc::error::TrySendError::Full(Outbound::Close(code, reason)), Some(kill)) = (error, kill.take()) {
                let _ = kill.send((code, reason));
            }
        }
    }
    drop(out);
    // Let the writer flush (bounded), and read the client's close reply meanwhile: closing a TCP
    // socket with unread input resets it, which can destroy the close frame in flight.
    let drain = async {
        while let Some(Ok(message)) = incoming.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_GRACE * 2, async {
        let ((), _writer) = tokio::join!(drain, &mut writer);
    })
    .await;
    writer.abort();
    drop(kill);
}

/// Writes queued messages to the socket. A kill request (queue full) jumps the queue.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Outbound>,
    mut kill: oneshot::Receiver<(u16, String)>,
) {
    loop {
        let next = tokio::select! {
            biased;
            killed = &mut kill => {
                if let Ok((code, reason)) = killed {
                    let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(close_message(code, &reason))).await;
                }
                return;
            }
            next = queue.recv() => next,
        };
        let message = match next {
            Some(Outbound::Text(text)) => Message::Text(text.into()),
            Some(Outbound::Close(code, reason)) => {
                let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(close_message(code, &reason))).await;
                return;
            }
            None => {
                // The connection ended without a close of ours (the client closed, or the socket
                // broke): flush tungstenite's automatic close reply, if any.
                let _ = tokio::time::timeout(CLOSE_GRACE, sink.close()).await;
                return;
            }
        };
        tokio::select! {
            biased;
            killed = &mut kill => {
                if let Ok((code, reason)) = killed {
                    let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(close_message(code, &reason))).await;
                }
                return;
            }
            sent = sink.send(message) => {
                if sent.is_err() {
                    return;
                }
            }
        }
    }
}

fn close_message(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: truncate(reason, MAX_CLOSE_REASON_BYTES).into(),
    }))
}

/// Cuts `text` to at most `max` bytes on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Ticks an interval that may not be running yet.
async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn every(period: Duration) -> Interval {
    let mut interval = tokio::time::interval_at(Instant::now() + period, period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

/// The instant a token expiring at `exp` (Unix seconds) dies; None when it already has.
fn expiry_instant(exp: i64) -> Option<Instant> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    let exp = Duration::from_secs(u64::try_from(exp).ok()?);
    let left = exp.checked_sub(now).filter(|left| !left.is_zero())?;
    // A deadline beyond what Instant represents is as good as never.
    Some(
        Instant::now()
            .checked_add(left)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 86_400)),
    )
}

#[derive(Serialize)]
struct OperationMessage<'a, P: Serialize> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    payload: P,
}

fn operation_message(id: &str, kind: &str, payload: impl Serialize) -> String {
    serde_json::to_string(&OperationMessage { id, kind, payload }).unwrap_or_else(|error| {
        tracing::error!(%error, "serializing a WebSocket message");
        json!({ "id": id, "type": "error", "payload": [ {
            "message": "internal error",
            "extensions": { "code": "INTERNAL" },
        } ] })
        .to_string()
    })
}

/// Runs an operation's task, holding `gauge` (its share of a gauge, and its slot of the
/// subscriptions cap) until the task ends or is aborted.
async fn counted(
    gauge: (Option<telemetry::GaugeGuard>, Option<SocketSlot>),
    task: impl std::future::Future<Output = OpEnd>,
) -> OpEnd {
    let _gauge = gauge;
    task.await
}

/// One operation: forwards its results to the queue. Never blocks on the queue.
async fn run_operation(
    id: String,
    protocol: Protocol,
    mut stream: BoxStream<'static, async_graphql::Response>,
    out: mpsc::Sender<Outbound>,
) -> OpEnd {
    let mut first = true;
    while let Some(mut response) = stream.next().await {
        errors::add_default_codes(&mut response);
        if first && errors::never_executed(&response) {
            let errors = serde_json::to_value(&response.errors).unwrap_or(Value::Null);
            return OpEnd::Failed(id, errors);
        }
        first = false;
        let text = operation_message(&id, protocol.next_type(), &response);
        match out.try_send(Outbound::Text(text)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => return OpEnd::Overflow,
            Err(mpsc::error::TrySendError::Closed(_)) => return OpEnd::Gone,
        }
    }
    OpEnd::Completed(id)
}

impl Connection {
    async fn run(&mut self, incoming: &mut SplitStream<WebSocket>) -> Exit {
        // Before the ack: the initialisation deadline; after it: the token's expiry.
        let deadline = tokio::time::sleep(self.limits.init_timeout);
        tokio::pin!(deadline);
        let mut keep_alive: Option<Interval> = None;
        let mut reauth: Option<Interval> = None;
        let lifecycle = self.state.app.lifecycle.clone();
        let draining = lifecycle.draining();
        tokio::pin!(draining);
        loop {
            tokio::select! {
                () = &mut draining => {
                    return Exit::close(close_code::GOING_AWAY, "Server going away");
                }
                message = incoming.next() => {
                    let message = match message {
                        None => return Exit::Gone,
                        Some(Err(error)) => return read_error(&error),
                        Some(Ok(message)) => message,
                    };
                    match message {
                        Message::Text(text) => {
                            let was_acked = self.session.is_some();
                            // Boxed: authentication and subscribe futures are large and
                            // short-lived; inline, every idle socket would carry their space.
                            if let Err(exit) = Box::pin(self.on_text(text.as_str())).await {
                                return exit;
                            }
                            if !was_acked {
                                if let Some(session) = &self.session {
                                    let Some(expiry) = expiry_instant(session.principal.token_expires_at) else {
                                        return Exit::forbidden("token expired");
                                    };
                                    deadline.as_mut().reset(expiry);
                                    keep_alive = Some(every(self.limits.ping_interval));
                                    reauth = Some(every(self.limits.reauth_interval));
                                }
                            }
                        }
                        Message::Binary(_) => return Exit::bad_request("binary messages are not supported"),
                        Message::Close(_) => return Exit::Gone,
                        Message::Ping(_) | Message::Pong(_) => {}
                    }
                }
                () = &mut deadline => {
                    return if self.session.is_some() {
                        Exit::forbidden("token expired")
                    } else {
                        Exit::close(close_code::CONNECTION_INITIALISATION_TIMEOUT, "Connection initialisation timeout")
                    };
                }
                () = tick(&mut keep_alive) => {
                    if let Err(exit) = self.send(self.protocol.keep_alive().to_owned()) {
                        return exit;
                    }
                }
                received = next_revocation(&mut self.revocations) => {
                    if let Err(exit) = Box::pin(self.on_revocation(received)).await {
                        return exit;
                    }
                }
                () = tick(&mut reauth) => {
                    if let Err(exit) = Box::pin(self.reauthenticate()).await {
                        return exit;
                    }
                }
                Some(joined) = self.tasks.join_next_with_id() => {
                    // Aborted tasks (client `complete`) need nothing more.
                    let Ok((task, end)) = joined else { continue };
                    if let Err(exit) = self.on_operation_end(task, end) {
                        return exit;
                    }
                }
            }
        }
    }

    /// Queues a message; a full queue means the client does not read.
    fn send(&self, text: String) -> Result<(), Exit> {
        match self.out.try_send(Outbound::Text(text)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(Exit::overflow()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Exit::Gone),
        }
    }

    async fn on_text(&mut self, text: &str) -> Result<(), Exit> {
        let Ok(Value::Object(message)) = serde_json::from_str::<Value>(text) else {
            return Err(Exit::bad_request("not a JSON object"));
        };
        let Some(kind) = message.get("type").and_then(Value::as_str) else {
            return Err(Exit::bad_request("missing `type`"));
        };
        match (self.protocol, kind) {
            (_, "connection_init") => self.on_init(message.get("payload")).await,
            (Protocol::TransportWs, "ping") => self.send(r#"{"type":"pong"}"#.to_owned()),
            (Protocol::TransportWs, "pong") => Ok(()),
            (Protocol::TransportWs, "subscribe") | (Protocol::Legacy, "start") => self.on_subscribe(&message),
            (Protocol::TransportWs, "complete") | (Protocol::Legacy, "stop") => {
                let Some(id) = message.get("id").and_then(Value::as_str) else {
                    return Err(Exit::bad_request(format!("`{kind}` without an id")));
                };
                if let Some(task) = self.active.remove(id) {
                    task.abort();
                }
                Ok(())
            }
            (Protocol::Legacy, "connection_terminate") => Err(Exit::close(close_code::NORMAL, "")),
            (_, other) => Err(Exit::bad_request(format!("unknown type `{}`", truncate(other, 40)))),
        }
    }

    /// Refuses the connection 4403 (legacy clients first get a `connection_error`).
    fn refuse(&self, detail: &str) -> Exit {
        if self.protocol == Protocol::Legacy {
            let message = json!({ "type": "connection_error", "payload": { "message": detail } });
            let _ = self.send(message.to_string());
        }
        Exit::forbidden(detail)
    }

    async fn on_init(&mut self, payload: Option<&Value>) -> Result<(), Exit> {
        if self.init_received {
            return Err(Exit::close(
                close_code::TOO_MANY_REQUESTS,
                "Too many initialisation requests",
            ));
        }
        self.init_received = true;
        let Some(token) = payload.and_then(token_from_init_payload) else {
            return Err(self.refuse("connection_init must carry a token"));
        };
        // Listening before the credentials are checked: a revocation, deactivation or
        // suspension committed after the check is heard.
        let revocations = Some(self.state.app.bus.receiver(&[Topic::Access]));
        let principal = match principal::authenticate(&self.state.app, &token).await {
            Ok(principal) => principal,
            Err(error @ AppError::Unauthenticated(_)) => {
                denials::record_error(
                    &self.state.app,
                    Some(principal::refused_caller(&self.state.app, &token)),
                    &error,
                    denials::Request {
                        surface: "ws connection_init",
                        operation: None,
                        request_id: self.request_id.clone(),
                        client_addr: self.client.map(|ip| ip.to_string()),
                    },
                );
                return Err(self.refuse("invalid or expired token"));
            }
            Err(AppError::OrganizationSuspended) => return Err(self.refuse(SUSPENDED)),
            Err(error) => {
                tracing::warn!(?error, "WebSocket authentication failed");
                return Err(Exit::close(
                    close_code::INTERNAL_ERROR,
                    "Authentication is unavailable; try again later",
                ));
            }
        };
        if expiry_instant(principal.token_expires_at).is_none() {
            return Err(self.refuse("token expired"));
        }
        // An API key has its own budget of sockets, apart from its creator's.
        let owner = principal
            .api_key
            .as_ref()
            .map_or(principal.user_id, |grant| grant.key_id);
        let Some(slot) = SocketSlot::acquire(owner, self.limits.max_sockets_per_user) else {
            return Err(Exit::close(
                close_code::TOO_MANY_REQUESTS,
                format!(
                    "Too many sockets for this user (max {})",
                    self.limits.max_sockets_per_user
                ),
            ));
        };
        self.session = Some(Session {
            principal,
            token,
            _slot: slot,
        });
        self.revocations = revocations;
        self.send(r#"{"type":"connection_ack"}"#.to_owned())?;
        if self.protocol == Protocol::Legacy {
            self.send(self.protocol.keep_alive().to_owned())?;
        }
        Ok(())
    }

    fn on_subscribe(&mut self, message: &Map<String, Value>) -> Result<(), Exit> {
        let Some(session) = &self.session else {
            return Err(Exit::close(close_code::UNAUTHORIZED, "Unauthorized"));
        };
        let Some(id) = message.get("id").and_then(Value::as_str).filter(|id| !id.is_empty()) else {
            return Err(Exit::bad_request("an operation needs a non-empty string `id`"));
        };
        let Some(payload) = message.get("payload").filter(|p| p.is_object()) else {
            return Err(Exit::bad_request("an operation needs a `payload` object"));
        };
        let request: async_graphql::Request = match serde_json::from_value(payload.clone()) {
            Ok(request) => request,
            Err(_) => return Err(Exit::bad_request("the payload is not a GraphQL request")),
        };
        if self.active.contains_key(id) {
            return Err(Exit::close(
                close_code::SUBSCRIBER_ALREADY_EXISTS,
                format!("Subscriber for {} already exists", truncate(id, 80)),
            ));
        }
        if self.active.len() >= self.limits.max_operations {
            let errors = json!([ {
                "message": format!(
                    "too many operations on this socket (at most {}); complete one first",
                    self.limits.max_operations
                ),
                "extensions": { "code": "RATE_LIMITED" },
            } ]);
            return self.send(operation_message(id, "error", errors));
        }
        let request_id = Some(match &self.request_id {
            Some(prefix) => format!("{prefix}:{}", truncate(id, 64)),
            None => truncate(id, 64).to_owned(),
        });
        let auth = Auth::Authenticated(session.principal.clone());
        let limiter = &self.state.app.limiter;
        let meter = limiter
            .enabled()
            .then(|| Arc::new(Meter::new(limiter.query_bucket(&auth, self.client), self.client)));
        // A subscription counts on the gauge of its root field, and on its owner's cap, while
        // its task runs. (Charged by cost when it opens, like any operation: see
        // `graphql::rate_limits`.)
        let kind = crate::graphql::subscription_kind(&request.query, request.operation_name.as_deref());
        let subscription_slot = match kind {
            Some(_) => {
                let owner = session
                    .principal
                    .api_key
                    .as_ref()
                    .map_or(session.principal.user_id, |grant| grant.key_id);
                let max = self.state.app.settings.max_subscriptions_per_user;
                let Some(slot) = SocketSlot::subscription(owner, max) else {
                    self.state.app.audit_queue.rate_limited(
                        DeniedCaller::of(&session.principal),
                        "ws subscribe",
                        &Denial {
                            limit: Limit::Subscriptions,
                            subject: &format!("owner:{owner}"),
                            client: self.client,
                            request_id: request_id.as_deref(),
                            cost: 0,
                            retry_after: Duration::ZERO,
                        },
                    );
                    let errors = json!([ {
                        "message": format!(
                            "too many subscriptions open for this user (at most {max}); complete one first"
                        ),
                        "extensions": { "code": "RATE_LIMITED" },
                    } ]);
                    return self.send(operation_message(id, "error", errors));
                };
                Some(slot)
            }
            None => None,
        };
        let context = RequestContext {
            auth,
            request_id,
            client: self.client,
            meter,
        };
        let key = payload.as_object().and_then(|p| ShareKey::of(&session.principal, p));
        let gauge = kind.map(telemetry::ws_subscription);
        let gauge = (gauge, subscription_slot);
        let task = match key {
            // Rendered once for every socket with the same key (see `shared`).
            Some(key) => self.tasks.spawn(counted(
                gauge,
                shared::run_subscriber(
                    id.to_owned(),
                    self.protocol,
                    self.out.clone(),
                    self.state.schema.clone(),
                    Arc::clone(&self.state.shared),
                    key,
                    context,
                ),
            )),
            None => {
                let operation = request.operation_name.clone();
                let request_id = context.request_id.clone();
                let stream = self.state.schema.execute_stream(request.data(context));
                // A refusal (a guard) shows in a response of the stream: recorded once.
                let caller = DeniedCaller::of(&session.principal);
                let state = self.state.app.clone();
                let client_addr = self.client.map(|ip| ip.to_string());
                let mut pending = Some((caller, operation, request_id, client_addr));
                let stream = stream
                    .inspect(move |response| {
                        if response.errors.is_empty() {
                            return;
                        }
                        let recorded = match &pending {
                            Some((caller, operation, request_id, client_addr)) => denials::record_graphql(
                                &state,
                                Some(caller.clone()),
                                &response.errors,
                                denials::Request {
                                    surface: "ws subscribe",
                                    operation: operation.as_deref(),
                                    request_id: request_id.clone(),
                                    client_addr: client_addr.clone(),
                                },
                            ),
                            None => false,
                        };
                        if recorded {
                            pending = None;
                        }
                    })
                    .boxed();
                self.tasks.spawn(counted(
                    gauge,
                    run_operation(id.to_owned(), self.protocol, stream, self.out.clone()),
                ))
            }
        };
        self.active.insert(id.to_owned(), task);
        Ok(())
    }

    fn on_operation_end(&mut self, task: tokio::task::Id, end: OpEnd) -> Result<(), Exit> {
        let (id, message) = match end {
            OpEnd::Overflow => return Err(Exit::overflow()),
            OpEnd::Gone => return Err(Exit::Gone),
            OpEnd::Completed(id) => {
                // `complete` carries no payload, in both protocols.
                let message = json!({ "id": id, "type": "complete" }).to_string();
                (id, message)
            }
            OpEnd::Failed(id, errors) => {
                let message = operation_message(&id, "error", errors);
                (id, message)
            }
        };
        // Only when the operation is still ours: the client may have completed it meanwhile
        // (and even reused its id).
        if self.active.get(&id).map(AbortHandle::id) != Some(task) {
            return Ok(());
        }
        self.active.remove(&id);
        self.send(message)
    }

    /// A notice from the bus about access: this socket's key revoked or its organization
    /// suspended → 4403 at once; its user's access changed (deactivated, role changed,
    /// password reset) → check the credentials now; notices may have been missed (bus
    /// reconnect, lag) → check now rather than at the next tick.
    async fn on_revocation(&mut self, received: Received) -> Result<(), Exit> {
        if matches!(received, Received::Closed) {
            self.revocations = None;
            return Ok(());
        }
        let Some(principal) = self.session.as_ref().map(|session| &session.principal) else {
            return Ok(());
        };
        let ours = principal.api_key.as_ref().map(|grant| grant.key_id);
        let (user_id, org_id) = (principal.user_id, principal.org_id);
        match received {
            Received::Event(event) => match &event.payload {
                BusEvent::ApiKeyRevoked { key_id } if Some(*key_id) == ours => {
                    Err(Exit::forbidden("credentials revoked"))
                }
                BusEvent::OrganizationSuspended if event.organization_id == org_id => {
                    // Another instance suspended it: this one's cache must not let a request
                    // through either.
                    self.state.app.user_cache.evict_org(org_id);
                    Err(Exit::forbidden(SUSPENDED))
                }
                BusEvent::UserAccessChanged { user_id: changed } if *changed == user_id => {
                    self.state.app.user_cache.evict(user_id);
                    self.reauthenticate().await
                }
                _ => Ok(()),
            },
            Received::Resync => self.reauthenticate().await,
            Received::Closed => {
                self.revocations = None;
                Ok(())
            }
        }
    }

    /// Checks the token again: a deactivated user, revoked tokens or a changed role close 4403.
    async fn reauthenticate(&mut self) -> Result<(), Exit> {
        let Some(session) = &self.session else {
            return Ok(());
        };
        match principal::authenticate(&self.state.app, &session.token).await {
            Ok(now)
                if now.role == session.principal.role
                    && now.org_id == session.principal.org_id
                    && now.api_key == session.principal.api_key =>
            {
                Ok(())
            }
            Ok(_) => Err(Exit::forbidden("the user's role changed; reconnect")),
            Err(AppError::Unauthenticated(_)) => Err(Exit::forbidden("credentials revoked")),
            Err(AppError::OrganizationSuspended) => Err(Exit::forbidden(SUSPENDED)),
            Err(error) => {
                // A database hiccup should not drop every wallboard; the next check decides.
                tracing::warn!(?error, "WebSocket re-authentication could not run");
                Ok(())
            }
        }
    }
}

/// The close reason's detail when the caller's organization is suspended (close 4403
/// "Forbidden: organization suspended").
const SUSPENDED: &str = "organization suspended";

/// The next revocation notice, or never when the socket does not listen for any.
async fn next_revocation(revocations: &mut Option<Receiver>) -> Received {
    match revocations {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// A read error: a message over the size limit is told 1009; anything else just ends.
fn read_error(error: &axum::Error) -> Exit {
    let text = error.to_string();
    if text.contains("Space limit exceeded") || text.contains("too long") || text.contains("too big") {
        Exit::close(close_code::MESSAGE_TOO_BIG, "Message too big")
    } else {
        Exit::Gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_cut_on_char_boundaries() {
        assert_eq!(truncate("abc", 10), "abc");
        assert_eq!(truncate("ééé", 3), "é");
        assert!(truncate(&"x".repeat(500), MAX_CLOSE_REASON_BYTES).len() <= MAX_CLOSE_REASON_BYTES);
    }

    #[test]
    fn expired_tokens_have_no_deadline() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        assert!(expiry_instant(now - 1).is_none());
        assert!(expiry_instant(now + 60).is_some());
        assert!(expiry_instant(-5).is_none());
    }

    #[test]
    fn socket_slots_are_counted_and_released() {
        let user = Uuid::new_v4();
        let first = SocketSlot::acquire(user, 2);
        let second = SocketSlot::acquire(user, 2);
        assert!(first.is_some() && second.is_some());
        assert!(SocketSlot::acquire(user, 2).is_none());
        assert_eq!(open_sockets(user), 2);
        drop(first);
        assert_eq!(open_sockets(user), 1);
        drop(second);
        assert_eq!(open_sockets(user), 0);
        assert!(SocketSlot::acquire(user, 0).is_none());
        assert_eq!(open_sockets(user), 0);
    }
}

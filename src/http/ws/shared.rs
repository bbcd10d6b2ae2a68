//! Shared subscription streams: a message that thousands of sockets receive is rendered ONCE.
//!
//! Resolving a subscription message (async-graphql's value tree, then JSON) costs tens of
//! microseconds; done once per subscriber, one agent change to 10,000 wallboards costs a
//! third of a second of CPU, and the last wallboard sees it that much later. Yet every
//! subscriber with the same operation, the same variables and the same rights receives the
//! same bytes. So this module keeps a registry of [`Hub`]s keyed by everything that determines
//! those bytes ([`ShareKey`]: organization, role, document, variables, operation name). A hub
//! executes the operation once through the ordinary schema — guards and masking apply exactly as
//! for a query, with the rights of that role — serialises each message once to an `Arc<str>`
//! and broadcasts it; each socket only wraps it in its own `next` envelope (its operation id).
//! A hub is refcounted by its subscribers and stopped with the last one.
//!
//! What stays per subscriber is the first message: each subscriber executes the operation
//! itself up to its snapshot (so validation errors, guards and the audit of cross-tenant reads
//! are its own), then follows the hub. To lose or repeat nothing between the two, the resolver
//! reports the board sequence number each message brings the subscriber up to
//! ([`StreamPosition`]): the subscriber joins the hub's broadcast BEFORE taking its snapshot
//! (at position `p`) and then forwards only the hub's messages past `p`. A message at or
//! below `p` is already in the snapshot; a message past `p` was produced after the snapshot was
//! read, hence after the subscriber joined. (A delta that batched changes from both sides of `p`
//! is forwarded whole: it carries the agents' current rows, so the few already in the snapshot
//! are repeated with the same values, never older ones.)
//!
//! Falling behind: the hub itself is a subscriber of the board; when it lags, the resolver
//! takes a fresh snapshot marked as a resync, which the hub shares with everyone. When one
//! socket's task falls more than the buffer behind the hub, that subscriber alone takes a new
//! snapshot of its own, marked as a resync.
//!
//! Only root fields whose resolver reports a position are shared ([`SHARED_FIELDS`]); any
//! other operation — and any operation of a SUPER_ADMIN, whose cross-tenant reads are audited
//! per subscription — runs per subscriber as before. Should a listed resolver not report a
//! position after all, its subscribers fall back to their own stream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_graphql::parser::types::{DocumentOperations, OperationType, Selection};
use futures_util::StreamExt;
use serde_json::{Map, Value};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::AbortHandle;
use uuid::Uuid;

use super::{operation_message, run_operation, OpEnd, Outbound, Protocol};
use crate::auth::principal::Principal;
use crate::auth::{Auth, Role};
use crate::graphql::{OmnivoxSchema, RequestContext};
use crate::http::errors::{add_default_codes, never_executed};
use crate::realtime::StreamPosition;

/// Root subscription fields whose resolver reports a [`StreamPosition`] before each message.
pub const SHARED_FIELDS: &[&str] = &["agentStates"];

/// How long a subscriber waits for a new hub's first message before running alone.
const HUB_START_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything that determines the bytes of a shared operation's messages. Payloads are
/// resolved with the rights of a role within one organization (masking depends on the role,
/// never on the user), so two users of the same organization and role share.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShareKey {
    org_id: Uuid,
    role: Role,
    query: String,
    /// The variables as JSON text.
    variables: String,
    operation_name: Option<String>,
}

impl ShareKey {
    /// The key of a `subscribe` payload, or `None` when the operation must run per subscriber:
    /// a SUPER_ADMIN caller, extensions, or anything but a subscription whose single root field
    /// is one of [`SHARED_FIELDS`].
    pub fn of(principal: &Principal, payload: &Map<String, Value>) -> Option<Self> {
        if principal.role == Role::SuperAdmin {
            return None;
        }
        if payload
            .get("extensions")
            .is_some_and(|e| !e.is_null() && e.as_object().is_none_or(|m| !m.is_empty()))
        {
            return None;
        }
        let query = payload.get("query")?.as_str()?;
        let operation_name = match payload.get("operationName") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => Some(name.clone()),
            Some(_) => return None,
        };
        if !is_shared_subscription(query, operation_name.as_deref()) {
            return None;
        }
        let variables = match payload.get("variables") {
            None | Some(Value::Null) => "{}".to_owned(),
            Some(variables @ Value::Object(_)) => variables.to_string(),
            Some(_) => return None,
        };
        Some(Self {
            org_id: principal.org_id,
            role: principal.role,
            query: query.to_owned(),
            variables,
            operation_name,
        })
    }

    /// The operation as a request of `context`'s caller.
    fn request(&self, context: RequestContext, position: StreamPosition) -> async_graphql::Request {
        let variables = serde_json::from_str(&self.variables).unwrap_or(Value::Null);
        let mut request =
            async_graphql::Request::new(self.query.clone()).variables(async_graphql::Variables::from_json(variables));
        if let Some(name) = &self.operation_name {
            request = request.operation_name(name.clone());
        }
        request.data(context).data(position)
    }
}

/// Whether `query`'s selected operation is a subscription of exactly one root field, listed in
/// [`SHARED_FIELDS`] (fragments at the root are not looked into: such an operation is not shared).
fn is_shared_subscription(query: &str, operation_name: Option<&str>) -> bool {
    let Ok(document) = async_graphql::parser::parse_query(query) else {
        return false;
    };
    let operation = match (&document.operations, operation_name) {
        (DocumentOperations::Single(operation), None) => operation,
        (DocumentOperations::Multiple(operations), Some(name)) => match operations.get(name) {
            Some(operation) => operation,
            None => return false,
        },
        _ => return false,
    };
    if operation.node.ty != OperationType::Subscription {
        return false;
    }
    match operation.node.selection_set.node.items.as_slice() {
        [item] => match &item.node {
            Selection::Field(field) => SHARED_FIELDS.contains(&field.node.name.node.as_str()),
            _ => false,
        },
        _ => false,
    }
}

/// One rendered message of a hub.
#[derive(Debug, Clone)]
enum Shared {
    /// The `payload` of a `next` message (the serialised GraphQL response), and the position it
    /// brings a subscriber up to.
    Message { position: u64, payload: Arc<str> },
    /// The stream ended.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HubState {
    Starting,
    /// Subscribers may follow the hub.
    Running,
    /// The stream ended, failed, or cannot be shared: subscribers run alone.
    Ended,
}

/// One shared execution of an operation. Held by its subscribers; the task stops when the last
/// one lets go.
pub struct Hub {
    key: ShareKey,
    messages: broadcast::Sender<Shared>,
    state: watch::Receiver<HubState>,
    task: AbortHandle,
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Hub {
    /// Waits for the hub's first message; false when subscribers must run alone.
    async fn running(&self) -> bool {
        let mut state = self.state.clone();
        let started = tokio::time::timeout(HUB_START_TIMEOUT, state.wait_for(|s| *s != HubState::Starting)).await;
        matches!(started, Ok(Ok(state)) if *state == HubState::Running)
    }
}

/// Counters of the shared streams, for `/metrics` and tests.
#[derive(Debug, Default)]
struct Counters {
    /// Messages rendered by hubs (once each, whatever the number of subscribers).
    renders: AtomicU64,
    /// `next` messages queued to sockets from a shared render.
    deliveries: AtomicU64,
}

/// The hubs of this process.
pub struct SharedStreams {
    hubs: Mutex<HashMap<ShareKey, Weak<Hub>>>,
    counters: Arc<Counters>,
    /// Rendered messages buffered per subscriber: one that falls further behind resyncs.
    buffer: usize,
}

impl SharedStreams {
    pub fn new(buffer: usize) -> Self {
        Self {
            hubs: Mutex::default(),
            counters: Arc::default(),
            buffer: buffer.max(1),
        }
    }

    /// Running hubs.
    pub fn len(&self) -> usize {
        let hubs = self.hubs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        hubs.values().filter(|hub| hub.strong_count() > 0).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Messages rendered by hubs so far.
    pub fn renders(&self) -> u64 {
        self.counters.renders.load(Ordering::Relaxed)
    }

    /// Messages delivered to sockets from a shared render so far.
    pub fn deliveries(&self) -> u64 {
        self.counters.deliveries.load(Ordering::Relaxed)
    }

    /// The hub of `key`, started (as `context`'s caller) when there is none or it ended.
    fn hub(&self, schema: &OmnivoxSchema, key: ShareKey, context: &RequestContext) -> Arc<Hub> {
        let mut hubs = self.hubs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        hubs.retain(|_, hub| hub.strong_count() > 0);
        if let Some(hub) = hubs.get(&key).and_then(Weak::upgrade) {
            if *hub.state.borrow() != HubState::Ended {
                return hub;
            }
        }
        let (messages, _) = broadcast::channel(self.buffer);
        let (state, state_rx) = watch::channel(HubState::Starting);
        let context = RequestContext {
            auth: context.auth.clone(),
            request_id: Some("shared-subscription".to_owned()),
            client_addr: None,
        };
        let position = StreamPosition::default();
        let stream = schema.execute_stream(key.request(context, position.clone()));
        let task = tokio::spawn(run_hub(
            stream,
            position,
            messages.clone(),
            state,
            self.counters.clone(),
        ));
        let hub = Arc::new(Hub {
            key: key.clone(),
            messages,
            state: state_rx,
            task: task.abort_handle(),
        });
        hubs.insert(key, Arc::downgrade(&hub));
        hub
    }
}

/// The hub's task: the first message (the hub's own snapshot) only proves that the stream can
/// be shared; every later one is rendered once and broadcast.
async fn run_hub(
    mut stream: futures_util::stream::BoxStream<'static, async_graphql::Response>,
    position: StreamPosition,
    messages: broadcast::Sender<Shared>,
    state: watch::Sender<HubState>,
    counters: Arc<Counters>,
) {
    let shareable = matches!(stream.next().await, Some(first) if first.errors.is_empty()) && position.get().is_some();
    if !shareable {
        state.send_replace(HubState::Ended);
        return;
    }
    state.send_replace(HubState::Running);
    while let Some(mut response) = stream.next().await {
        let Some(at) = position.get() else { break };
        add_default_codes(&mut response);
        let payload = match serde_json::to_string(&response) {
            Ok(payload) => Arc::<str>::from(payload),
            Err(error) => {
                tracing::error!(%error, "serializing a shared subscription message");
                break;
            }
        };
        counters.renders.fetch_add(1, Ordering::Relaxed);
        // No receiver: nobody to tell (the hub is about to be dropped).
        let _ = messages.send(Shared::Message { position: at, payload });
    }
    state.send_replace(HubState::Ended);
    let _ = messages.send(Shared::End);
}

/// A subscriber of a shared operation: its own snapshot, then the hub's messages past it
/// (see the module documentation).
pub(super) async fn run_subscriber(
    id: String,
    protocol: Protocol,
    out: mpsc::Sender<Outbound>,
    schema: OmnivoxSchema,
    streams: Arc<SharedStreams>,
    key: ShareKey,
    context: RequestContext,
) -> OpEnd {
    debug_assert!(matches!(context.auth, Auth::Authenticated(_)));
    let hub = streams.hub(&schema, key, &context);
    // Joined before the snapshot is read: nothing the hub renders after it is missed.
    let mut messages = hub.messages.subscribe();
    if !hub.running().await {
        let stream = schema.execute_stream(hub.key.request(context, StreamPosition::default()));
        return Box::pin(run_operation(id, protocol, stream, out)).await;
    }
    // Boxed (here and below): executing an operation takes a large future, and a subscriber
    // that waits for the hub should not keep room for one.
    let snapshot = own_snapshot(&id, protocol, &out, &schema, &hub, &context, StreamPosition::default());
    let mut after = match Box::pin(snapshot).await {
        Ok(at) => at,
        Err(end) => return end,
    };
    // `{"id":…,"type":"next","payload":` — the envelope around every shared payload.
    let head = operation_message(&id, protocol.next_type(), Value::Null);
    let Some(head) = head.strip_suffix("null}") else {
        return OpEnd::Gone;
    };
    loop {
        match messages.recv().await {
            Ok(Shared::Message { position, payload }) if position > after => {
                after = position;
                let mut text = String::with_capacity(head.len() + payload.len() + 1);
                text.push_str(head);
                text.push_str(&payload);
                text.push('}');
                match out.try_send(Outbound::Text(text)) {
                    Ok(()) => {
                        streams.counters.deliveries.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => return OpEnd::Overflow,
                    Err(mpsc::error::TrySendError::Closed(_)) => return OpEnd::Gone,
                }
            }
            Ok(Shared::Message { .. }) => {}
            Ok(Shared::End) | Err(broadcast::error::RecvError::Closed) => return OpEnd::Completed(id),
            Err(broadcast::error::RecvError::Lagged(_)) => {
                // Still subscribed: whatever the hub renders from now on is received.
                let resync = own_snapshot(
                    &id,
                    protocol,
                    &out,
                    &schema,
                    &hub,
                    &context,
                    StreamPosition::for_resync(),
                );
                after = match Box::pin(resync).await {
                    Ok(at) => at,
                    Err(end) => return end,
                };
            }
        }
    }
}

/// Executes the operation for this subscriber up to its first message (a snapshot), queues that
/// message and returns its position. A stream that reports no position is not shareable after
/// all: the subscriber then goes on with its own stream (the `Err` is how that ends).
async fn own_snapshot(
    id: &str,
    protocol: Protocol,
    out: &mpsc::Sender<Outbound>,
    schema: &OmnivoxSchema,
    hub: &Hub,
    context: &RequestContext,
    position: StreamPosition,
) -> Result<u64, OpEnd> {
    let mut stream = schema.execute_stream(hub.key.request(context.clone(), position.clone()));
    let Some(mut first) = stream.next().await else {
        return Err(OpEnd::Completed(id.to_owned()));
    };
    add_default_codes(&mut first);
    if never_executed(&first) {
        let errors = serde_json::to_value(&first.errors).unwrap_or(Value::Null);
        return Err(OpEnd::Failed(id.to_owned(), errors));
    }
    let Some(at) = position.get().filter(|_| first.errors.is_empty()) else {
        let rest = futures_util::stream::once(std::future::ready(first))
            .chain(stream)
            .boxed();
        return Err(run_operation(id.to_owned(), protocol, rest, out.clone()).await);
    };
    let text = operation_message(id, protocol.next_type(), &first);
    match out.try_send(Outbound::Text(text)) {
        Ok(()) => Ok(at),
        Err(mpsc::error::TrySendError::Full(_)) => Err(OpEnd::Overflow),
        Err(mpsc::error::TrySendError::Closed(_)) => Err(OpEnd::Gone),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role) -> Principal {
        Principal {
            user_id: Uuid::new_v4(),
            org_id: Uuid::nil(),
            role,
            email: "x@example.test".to_owned(),
            display_name: "X".to_owned(),
            token_expires_at: 0,
            api_key: None,
        }
    }

    fn payload(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn only_listed_single_field_subscriptions_are_shared() {
        let viewer = principal(Role::Viewer);
        let shared = |p: Value| ShareKey::of(&viewer, &payload(p)).is_some();
        assert!(shared(
            serde_json::json!({ "query": "subscription { agentStates { kind } }" })
        ));
        assert!(shared(serde_json::json!({
            "query": "subscription A { agentStates { kind } } subscription B { liveKpis { computedAt } }",
            "operationName": "A",
        })));
        assert!(!shared(serde_json::json!({
            "query": "subscription A { agentStates { kind } } subscription B { liveKpis { computedAt } }",
            "operationName": "B",
        })));
        assert!(!shared(
            serde_json::json!({ "query": "subscription { liveKpis { computedAt } }" })
        ));
        assert!(!shared(
            serde_json::json!({ "query": "query { agentStates { kind } }" })
        ));
        assert!(!shared(
            serde_json::json!({ "query": "subscription { ...F } fragment F on Subscription { agentStates { kind } }" })
        ));
        assert!(!shared(
            serde_json::json!({ "query": "subscription { agentStates { kind" })
        ));
        assert!(!shared(serde_json::json!({
            "query": "subscription { agentStates { kind } }",
            "extensions": { "persistedQuery": {} },
        })));
        let admin = principal(Role::SuperAdmin);
        assert!(ShareKey::of(
            &admin,
            &payload(serde_json::json!({ "query": "subscription { agentStates { kind } }" }))
        )
        .is_none());
    }

    #[test]
    fn the_key_holds_what_determines_the_bytes() {
        let query = serde_json::json!({ "query": "subscription { agentStates { kind } }" });
        let key = |p: &Principal, v: Value| {
            let mut payload = payload(query.clone());
            payload.insert("variables".to_owned(), v);
            ShareKey::of(p, &payload)
        };
        let (viewer, other_viewer, supervisor) = (
            principal(Role::Viewer),
            principal(Role::Viewer),
            principal(Role::Supervisor),
        );
        let empty = serde_json::json!({});
        assert_eq!(
            key(&viewer, empty.clone()),
            key(&other_viewer, Value::Null),
            "same role, same bytes"
        );
        assert_ne!(
            key(&viewer, empty.clone()),
            key(&supervisor, empty.clone()),
            "masking differs"
        );
        assert_ne!(
            key(&viewer, empty),
            key(&viewer, serde_json::json!({ "f": { "teamIds": [] } })),
            "variables differ"
        );
    }
}

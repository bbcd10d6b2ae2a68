//! The bus. Two modes behind one handle:
//!
//! * **Redis** (`REDIS_URL` set): events travel between instances over Redis pub/sub, one
//!   channel per organization (`<prefix>events:<org id>`). Each process holds exactly ONE
//!   subscriber connection (`PSUBSCRIBE <prefix>events:*`), whatever the number of GraphQL
//!   subscriptions, and one multiplexed connection (a `ConnectionManager`) to publish.
//! * **In-process** (`REDIS_URL` unset): a single instance; events never leave the process.
//!
//! In both modes, delivery inside the process is a tokio broadcast channel per [`Topic`]:
//! consumers subscribe to the topics they need and filter by organization. Events are typed
//! ([`BusEvent`]): the publisher task serializes each once for Redis, the subscriber connection
//! decodes each once, and in-process delivery hands the typed value over as it is.
//!
//! # Delivery rules
//! * `publish` never blocks and never fails: it hands the event to a publisher task through a
//!   bounded queue. The task runs one Lua script per event that `INCR`s the organization's
//!   sequence and `PUBLISH`es the envelope with it, so sequence order is delivery order. It then
//!   delivers the event locally; the copy that comes back from Redis carries this instance's
//!   `origin` and is skipped, so local subscribers see each event once, with the same sequence
//!   as every other instance.
//! * Redis unreachable: the event is delivered locally at once with sequence `0` (the mutation
//!   that caused it has committed and is not affected), a circuit breaker skips Redis for a
//!   second, and once a publish succeeds again the instance sends a resync request to all
//!   instances, so the ones that missed events re-read Postgres.
//! * The subscriber connection reconnects with exponential backoff (100 ms doubling to 5 s, with
//!   jitter) and re-subscribes; every successful (re)subscription sends [`Signal::Resync`] on
//!   every topic: whatever was published meanwhile is lost to pub/sub, so subscribers re-read
//!   the current state from Postgres. A dead connection that does not close is found by a PING
//!   every few seconds.
//! * A consumer whose receiver lagged (more than [`FANOUT_CAPACITY`] events behind) treats it
//!   as a resync too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use uuid::Uuid;

use super::{BusEvent, Event, Topic};
use crate::error::{AppError, AppResult};

/// Events a topic's fan-out channel buffers; a receiver that falls further behind is told it
/// lagged and must resynchronize from Postgres.
pub const FANOUT_CAPACITY: usize = 4_096;
/// Events waiting for the publisher task; beyond that an event is delivered locally only.
const PUBLISH_QUEUE: usize = 65_536;
/// Timeouts of every Redis call: a hung Redis must not hold events back for long, but a busy
/// process (tens of thousands of subscribers served on two cores) must not mistake its own
/// slowness for an outage: a false outage resyncs every subscriber of every instance.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed publish, Redis is skipped for this long (events are delivered locally).
const CIRCUIT_BREAK: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often the subscriber connection is PINGed to find a connection that died silently, and
/// how long the answer may take (it queues behind the messages being delivered).
const SUBSCRIBER_PING: Duration = Duration::from_secs(5);
const SUBSCRIBER_PING_TIMEOUT: Duration = Duration::from_secs(10);

/// `INCR` the organization's sequence and `PUBLISH` the envelope with it, atomically.
/// ARGV[1] is the envelope's JSON without `sequence` (an object: `{` is replaced).
const PUBLISH_SCRIPT: &str = r#"
local seq = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[2], '{"sequence":' .. seq .. ',' .. string.sub(ARGV[1], 2))
return seq
"#;

/// What a consumer receives.
#[derive(Debug, Clone)]
pub enum Signal {
    Event(Arc<Event>),
    /// Events may have been missed (bus reconnect, a peer's failed publish, or this receiver
    /// lagged): re-read the current state.
    Resync,
}

/// Counters of the bus, for `/metrics` and the benchmark.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BusStats {
    pub mode: &'static str,
    /// Redis mode: whether the subscriber connection is subscribed now.
    pub connected: bool,
    /// Successful subscriptions of the subscriber connection after the first.
    pub reconnects: u64,
    pub published: u64,
    pub publish_failures: u64,
    /// Events received from other instances.
    pub received: u64,
}

#[derive(Default)]
struct Counters {
    connected: AtomicBool,
    subscriptions: AtomicU64,
    published: AtomicU64,
    publish_failures: AtomicU64,
    received: AtomicU64,
}

struct Pending {
    organization_id: Uuid,
    payload: BusEvent,
}

enum Mode {
    InProcess { sequences: Mutex<HashMap<Uuid, u64>> },
    Redis { outgoing: mpsc::Sender<Pending> },
}

struct Inner {
    fanout: Vec<broadcast::Sender<Signal>>,
    instance: Uuid,
    mode: Mode,
    counters: Counters,
}

impl Inner {
    fn deliver(&self, event: Event) {
        let sender = &self.fanout[event.topic().index()];
        // No receiver is not an error: nobody is watching.
        let _ = sender.send(Signal::Event(Arc::new(event)));
    }

    fn resync_all(&self) {
        for sender in &self.fanout {
            let _ = sender.send(Signal::Resync);
        }
    }
}

/// Cheap to clone: a handle on the process's bus.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus").field("stats", &self.stats()).finish()
    }
}

fn fanout() -> Vec<broadcast::Sender<Signal>> {
    Topic::ALL
        .iter()
        .map(|_| broadcast::channel(FANOUT_CAPACITY).0)
        .collect()
}

impl Bus {
    /// The single-instance bus.
    pub fn in_process() -> Self {
        Self {
            inner: Arc::new(Inner {
                fanout: fanout(),
                instance: Uuid::new_v4(),
                mode: Mode::InProcess {
                    sequences: Mutex::new(HashMap::new()),
                },
                counters: Counters::default(),
            }),
        }
    }

    /// The Redis bus: starts the publisher and the (single) subscriber task on the current
    /// Tokio runtime. `prefix` namespaces channels and sequence keys (one deployment, or one
    /// test, per prefix). The tasks end when the last handle is dropped.
    pub fn redis(client: redis::Client, prefix: &str) -> AppResult<Self> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| AppError::internal("the Redis event bus needs a Tokio runtime"))?;
        let (outgoing, queue) = mpsc::channel(PUBLISH_QUEUE);
        let inner = Arc::new(Inner {
            fanout: fanout(),
            instance: Uuid::new_v4(),
            mode: Mode::Redis { outgoing },
            counters: Counters::default(),
        });
        let prefix = prefix.to_owned();
        runtime.spawn(publisher(Arc::downgrade(&inner), client.clone(), prefix.clone(), queue));
        runtime.spawn(subscriber(Arc::downgrade(&inner), client, prefix));
        Ok(Self { inner })
    }

    /// Publishes an event on its variant's topic; call only after the transaction that made the
    /// change committed. Never blocks, never fails (see the module documentation).
    pub fn publish(&self, organization_id: Uuid, payload: BusEvent) {
        match &self.inner.mode {
            Mode::InProcess { sequences } => {
                let sequence = {
                    let mut map = sequences.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let next = map.entry(organization_id).or_insert(0);
                    *next += 1;
                    *next
                };
                self.inner.counters.published.fetch_add(1, Ordering::Relaxed);
                self.inner.deliver(Event {
                    organization_id,
                    sequence,
                    server_time: Utc::now(),
                    origin: self.inner.instance,
                    payload,
                });
            }
            Mode::Redis { outgoing } => {
                let pending = Pending {
                    organization_id,
                    payload,
                };
                if let Err(error) = outgoing.try_send(pending) {
                    // The publisher is far behind (or gone): this instance still learns of it.
                    let pending = match error {
                        mpsc::error::TrySendError::Full(p) | mpsc::error::TrySendError::Closed(p) => p,
                    };
                    tracing::warn!("event publisher queue full: event delivered on this instance only");
                    self.inner.counters.publish_failures.fetch_add(1, Ordering::Relaxed);
                    self.inner.deliver(unsequenced(&self.inner, pending));
                }
            }
        }
    }

    /// The signals of one topic (events of every organization: filter by `organization_id`).
    pub fn subscribe(&self, topic: Topic) -> broadcast::Receiver<Signal> {
        self.inner.fanout[topic.index()].subscribe()
    }

    /// A receiver of several topics at once.
    pub fn receiver(&self, topics: &[Topic]) -> Receiver {
        Receiver {
            receivers: topics.iter().map(|t| self.subscribe(*t)).collect(),
        }
    }

    pub fn stats(&self) -> BusStats {
        let c = &self.inner.counters;
        let (mode, connected) = match self.inner.mode {
            Mode::InProcess { .. } => ("in-process", true),
            Mode::Redis { .. } => ("redis", c.connected.load(Ordering::Relaxed)),
        };
        BusStats {
            mode,
            connected,
            reconnects: c.subscriptions.load(Ordering::Relaxed).saturating_sub(1),
            published: c.published.load(Ordering::Relaxed),
            publish_failures: c.publish_failures.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
        }
    }
}

/// What [`Receiver::recv`] returns.
#[derive(Debug)]
pub enum Received {
    Event(Arc<Event>),
    /// Reconnect, a peer's resync request, or this receiver lagged.
    Resync,
    /// The bus is gone (shutdown).
    Closed,
}

/// Receives several topics' signals; lag is reported as [`Received::Resync`].
pub struct Receiver {
    receivers: Vec<broadcast::Receiver<Signal>>,
}

impl Receiver {
    pub async fn recv(&mut self) -> Received {
        use broadcast::error::RecvError;
        let result = if self.receivers.len() == 1 {
            self.receivers[0].recv().await
        } else if self.receivers.is_empty() {
            return Received::Closed;
        } else {
            let futures = self.receivers.iter_mut().map(|r| Box::pin(r.recv()));
            futures_util::future::select_all(futures).await.0
        };
        match result {
            Ok(Signal::Event(event)) => Received::Event(event),
            Ok(Signal::Resync) | Err(RecvError::Lagged(_)) => Received::Resync,
            Err(RecvError::Closed) => Received::Closed,
        }
    }
}

fn unsequenced(inner: &Inner, pending: Pending) -> Event {
    Event {
        organization_id: pending.organization_id,
        sequence: 0,
        server_time: Utc::now(),
        origin: inner.instance,
        payload: pending.payload,
    }
}

/// The envelope as published, without its sequence (the script adds it): the same fields as
/// [`Event`], `type` and `payload` coming from the flattened [`BusEvent`].
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireEvent<'a> {
    organization_id: Uuid,
    server_time: chrono::DateTime<Utc>,
    origin: Uuid,
    #[serde(flatten)]
    payload: &'a BusEvent,
}

fn events_channel(prefix: &str, organization_id: Uuid) -> String {
    format!("{prefix}events:{organization_id}")
}

/// The channel on which an instance asks every instance to resync.
fn resync_channel(prefix: &str) -> String {
    format!("{prefix}events:resync")
}

async fn connection_manager(client: &redis::Client) -> redis::RedisResult<redis::aio::ConnectionManager> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(200));
    client.get_connection_manager_with_config(config).await
}

/// Publishes queued events one by one, in order (see the module documentation).
async fn publisher(inner: Weak<Inner>, client: redis::Client, prefix: String, mut queue: mpsc::Receiver<Pending>) {
    let script = redis::Script::new(PUBLISH_SCRIPT);
    let mut connection: Option<redis::aio::ConnectionManager> = None;
    let mut broken_until: Option<Instant> = None;
    let mut failed_since_last_success = false;
    while let Some(pending) = queue.recv().await {
        let Some(inner) = inner.upgrade() else { return };
        if broken_until.is_some_and(|until| Instant::now() < until) {
            inner.counters.publish_failures.fetch_add(1, Ordering::Relaxed);
            inner.deliver(unsequenced(&inner, pending));
            continue;
        }
        let server_time = Utc::now();
        let wire = WireEvent {
            organization_id: pending.organization_id,
            server_time,
            origin: inner.instance,
            payload: &pending.payload,
        };
        let attempt = async {
            let json = serde_json::to_string(&wire)
                .map_err(|e| redis::RedisError::from((redis::ErrorKind::Client, "serialize", e.to_string())))?;
            if connection.is_none() {
                connection = Some(connection_manager(&client).await?);
            }
            let Some(conn) = connection.as_mut() else {
                return Err(redis::RedisError::from((redis::ErrorKind::Client, "no connection")));
            };
            let sequence: u64 = script
                .key(format!("{prefix}seq:{}", pending.organization_id))
                .arg(json)
                .arg(events_channel(&prefix, pending.organization_id))
                .invoke_async(conn)
                .await?;
            if failed_since_last_success {
                // Peers may have missed what we delivered only locally: ask everybody to resync.
                redis::cmd("PUBLISH")
                    .arg(resync_channel(&prefix))
                    .arg(inner.instance.to_string())
                    .query_async::<i64>(conn)
                    .await?;
            }
            Ok::<u64, redis::RedisError>(sequence)
        };
        match tokio::time::timeout(REDIS_TIMEOUT * 2, attempt).await {
            Ok(Ok(sequence)) => {
                if failed_since_last_success {
                    tracing::info!("publishing to Redis works again");
                }
                failed_since_last_success = false;
                broken_until = None;
                inner.counters.published.fetch_add(1, Ordering::Relaxed);
                inner.deliver(Event {
                    organization_id: pending.organization_id,
                    sequence,
                    server_time,
                    origin: inner.instance,
                    payload: pending.payload,
                });
            }
            outcome => {
                if !failed_since_last_success {
                    match outcome {
                        Ok(Err(error)) => {
                            tracing::warn!(%error, "publishing to Redis failed; events stay on this instance until it is back")
                        }
                        _ => tracing::warn!(
                            "publishing to Redis timed out; events stay on this instance until it is back"
                        ),
                    }
                }
                failed_since_last_success = true;
                broken_until = Some(Instant::now() + CIRCUIT_BREAK);
                inner.counters.publish_failures.fetch_add(1, Ordering::Relaxed);
                inner.deliver(unsequenced(&inner, pending));
            }
        }
    }
}

/// The one subscriber connection of the process: subscribe, forward, reconnect.
async fn subscriber(inner: Weak<Inner>, client: redis::Client, prefix: String) {
    let pattern = format!("{prefix}events:*");
    let resync = resync_channel(&prefix);
    let mut backoff = BACKOFF_MIN;
    let mut outage_logged = false;
    loop {
        if inner.strong_count() == 0 {
            return;
        }
        let connect = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(&pattern).await?;
            Ok::<_, redis::RedisError>(pubsub.split())
        };
        match tokio::time::timeout(REDIS_TIMEOUT * 2, connect).await {
            Ok(Ok((mut sink, mut stream))) => {
                {
                    let Some(inner) = inner.upgrade() else { return };
                    let n = inner.counters.subscriptions.fetch_add(1, Ordering::Relaxed);
                    inner.counters.connected.store(true, Ordering::Relaxed);
                    if n > 0 || outage_logged {
                        tracing::info!("event bus subscribed to Redis again; subscribers resync");
                    } else {
                        tracing::info!(pattern = %pattern, "event bus subscribed to Redis");
                    }
                    // Anything published while we were not subscribed is lost: re-read.
                    inner.resync_all();
                }
                backoff = BACKOFF_MIN;
                let mut ping = tokio::time::interval(SUBSCRIBER_PING);
                ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ping.tick().await;
                loop {
                    tokio::select! {
                        message = stream.next() => {
                            let Some(message) = message else { break };
                            let Some(inner) = inner.upgrade() else { return };
                            on_message(&inner, &resync, &message);
                        }
                        _ = ping.tick() => {
                            if inner.strong_count() == 0 {
                                return;
                            }
                            // In subscribed mode Redis answers PING with an array (`pong`, ""), not a
                            // status: any answer will do.
                            let alive = tokio::time::timeout(SUBSCRIBER_PING_TIMEOUT, sink.ping::<redis::Value>()).await;
                            if !matches!(alive, Ok(Ok(_))) {
                                break;
                            }
                        }
                    }
                }
                if let Some(inner) = inner.upgrade() {
                    inner.counters.connected.store(false, Ordering::Relaxed);
                }
                tracing::warn!("event bus lost its Redis subscription; reconnecting");
                outage_logged = true;
            }
            outcome => {
                if !outage_logged {
                    match outcome {
                        Ok(Err(error)) => tracing::warn!(%error, "event bus cannot subscribe to Redis; retrying"),
                        _ => tracing::warn!("event bus: subscribing to Redis timed out; retrying"),
                    }
                    outage_logged = true;
                }
            }
        }
        let jitter = Duration::from_millis(rand::random::<u64>() % (backoff.as_millis() as u64 / 2 + 1));
        tokio::time::sleep(backoff + jitter).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

fn on_message(inner: &Inner, resync_channel: &str, message: &redis::Msg) {
    if message.get_channel_name() == resync_channel {
        let from = String::from_utf8_lossy(message.get_payload_bytes());
        if from != inner.instance.to_string() {
            inner.resync_all();
        }
        return;
    }
    match serde_json::from_slice::<Event>(message.get_payload_bytes()) {
        Ok(event) if event.origin == inner.instance => {}
        Ok(event) => {
            inner.counters.received.fetch_add(1, Ordering::Relaxed);
            crate::telemetry::metrics::bus_lag(event.server_time);
            inner.deliver(event);
        }
        Err(error) => tracing::warn!(%error, channel = message.get_channel_name(), "ignored a malformed bus message"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(version: i32) -> BusEvent {
        BusEvent::Settings { version }
    }

    fn agent(agent_id: Uuid) -> BusEvent {
        BusEvent::AgentState {
            agent_id,
            change: crate::realtime::AgentStateChange::Presence {
                state: crate::domain::Presence::Away,
                reason: None,
            },
        }
    }

    #[test]
    fn a_topic_s_channel_index_is_its_place_in_all() {
        for (i, topic) in Topic::ALL.iter().enumerate() {
            assert_eq!(topic.index(), i, "{topic:?}");
        }
    }

    #[tokio::test]
    async fn in_process_sequences_are_per_organization() {
        let bus = Bus::in_process();
        let mut rx = bus.subscribe(Topic::AgentState);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        bus.publish(a, agent(a));
        bus.publish(b, agent(b));
        bus.publish(a, agent(a));
        let mut seen = Vec::new();
        for _ in 0..3 {
            match rx.recv().await {
                Ok(Signal::Event(e)) => seen.push((e.organization_id == a, e.sequence)),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(seen, vec![(true, 1), (false, 1), (true, 2)]);
    }

    #[tokio::test]
    async fn topics_are_fanned_out_separately_and_lag_is_a_resync() {
        let bus = Bus::in_process();
        let mut rx = bus.receiver(&[Topic::Settings]);
        let org = Uuid::new_v4();
        bus.publish(org, agent(org));
        bus.publish(org, settings(1));
        match rx.recv().await {
            Received::Event(e) => assert_eq!(e.topic(), Topic::Settings),
            other => panic!("unexpected {other:?}"),
        }
        for _ in 0..FANOUT_CAPACITY + 1 {
            bus.publish(org, settings(2));
        }
        assert!(matches!(rx.recv().await, Received::Resync));
    }

    #[test]
    fn the_script_splices_the_sequence_into_the_envelope() {
        // What Lua does, done here: the published text must parse as an Event.
        let payload = agent(Uuid::new_v4());
        let wire = WireEvent {
            organization_id: Uuid::new_v4(),
            server_time: Utc::now(),
            origin: Uuid::new_v4(),
            payload: &payload,
        };
        let json = serde_json::to_string(&wire).unwrap_or_default();
        let spliced = format!("{{\"sequence\":7,{}", &json[1..]);
        let event: Event = serde_json::from_str(&spliced).unwrap_or_else(|e| panic!("{e}: {spliced}"));
        assert_eq!(event.sequence, 7);
        assert_eq!(event.topic(), Topic::AgentState);
        assert_eq!(event.payload, payload);
    }

    /// An envelope exactly as the older code published it (payload built with `json!`, keys in
    /// `serde_json`'s sorted order, sequence spliced in by the script) decodes to the typed event.
    #[test]
    fn an_envelope_published_by_the_older_code_decodes() {
        let (org, origin, agent_id) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let spliced = format!(
            concat!(
                r#"{{"sequence":42,"organizationId":"{org}","type":"AGENT_STATE","#,
                r#""serverTime":"2026-03-02T09:00:00.123456Z","origin":"{origin}","#,
                r#""payload":{{"agentId":"{agent}","axis":"ROUTING","since":"2026-03-02T09:00:00Z","state":"ON_CALL"}}}}"#
            ),
            org = org,
            origin = origin,
            agent = agent_id
        );
        let event: Event = serde_json::from_str(&spliced).unwrap_or_else(|e| panic!("{e}: {spliced}"));
        assert_eq!((event.organization_id, event.origin, event.sequence), (org, origin, 42));
        match event.payload {
            BusEvent::AgentState {
                agent_id: id,
                change: crate::realtime::AgentStateChange::Routing { state, .. },
            } => {
                assert_eq!(id, agent_id);
                assert_eq!(state, crate::domain::RoutingState::OnCall);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

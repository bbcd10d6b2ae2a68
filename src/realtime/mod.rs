//! The event bus: "something changed" notices, published after commit, fanned out to
//! subscriptions. Postgres stays the source of truth: a subscriber that misses an event
//! re-reads the current state.
//!
//! * [`events`] — what the bus carries: the typed [`BusEvent`], whose variant picks its topic.
//! * [`bus`] — the bus itself: Redis pub/sub between instances (one subscriber connection per
//!   process), or in-process when `REDIS_URL` is unset; in-process fan-out per topic.
//! * [`agents`] — the live agent board behind the `agentStates` subscription, shared by every
//!   subscriber of an organization on this instance, and each subscriber's delta merge.
//! * [`live`] — the live KPI multiplexer behind `liveKpis`: one computation per (organization,
//!   filter) whatever the number of subscribers.
//! * [`interactions`] — calls as they change, filtered per subscriber (`interactionEvents`).
//! * [`compliance`] — edge-triggered outbound-abandonment alerts (`complianceAlerts`).
//!
//! The subscription state machines live here, as plain streams of plain types with their pure
//! steps unit-tested; the GraphQL resolvers only build their inputs and map what they yield.
//! Nothing here knows GraphQL (`tests/layering.rs`).

pub mod agents;
pub mod bus;
pub mod compliance;
pub mod events;
pub mod interactions;
pub mod live;

pub use bus::{Bus, BusStats, Signal};
pub use events::{AgentStateChange, BusEvent, CallChange};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A fan-out channel of the bus. Its serde name is the envelope's `type`; an event's topic
/// follows from its [`BusEvent`] variant. `ComplianceAlerts` is reserved (the design names
/// it) and carries no event yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Topic {
    AgentState,
    Interactions,
    KpiInvalidation,
    ReportRuns,
    ComplianceAlerts,
    Settings,
    /// Credentials revoked: open sockets that authenticated with them close at once.
    Access,
}

impl Topic {
    pub const ALL: [Topic; 7] = [
        Topic::AgentState,
        Topic::Interactions,
        Topic::KpiInvalidation,
        Topic::ReportRuns,
        Topic::ComplianceAlerts,
        Topic::Settings,
        Topic::Access,
    ];

    /// Position in [`Topic::ALL`] (declaration order): the index of the topic's fan-out channel.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The envelope every event travels in, on the wire (Redis) as JSON: `organizationId`,
/// `type`, `sequence`, `serverTime`, `origin`, `payload`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub organization_id: Uuid,
    /// Per organization, increasing by one per event, shared by every instance (a Redis `INCR`
    /// in the same script that publishes, so the order of sequences is the order of delivery).
    /// In-process bus: per organization in this process. `0`: published while Redis was
    /// unreachable, delivered on this instance only (the reconnect resyncs everybody).
    pub sequence: u64,
    pub server_time: DateTime<Utc>,
    /// The instance that published it: an instance skips its own events coming back from
    /// Redis, as it delivered them locally already.
    #[serde(default)]
    pub origin: Uuid,
    /// What happened. On the wire it is the envelope's `type` (the topic) and `payload` (see
    /// [`events`]).
    #[serde(flatten)]
    pub payload: BusEvent,
}

impl Event {
    /// The event type: the topic its payload's variant travels on.
    pub fn topic(&self) -> Topic {
        self.payload.topic()
    }
}

/// Where a subscription stream stands, reported by its resolver for the WebSocket layer.
///
/// A resolver that finds this in the request's data stores, just before yielding each message,
/// the board sequence number that message brings the subscriber up to. async-graphql resolves
/// one stream item completely before it polls the stream again, so whoever receives the
/// rendered response reads the position of exactly that message. With it, the WebSocket
/// layer (`http::ws::shared`) renders a stream's messages once for every subscriber that shares
/// them, and a new subscriber can take its own snapshot and then skip every shared message the
/// snapshot already covers. A resolver that never reports a position is simply not shared.
#[derive(Debug, Clone, Default)]
pub struct StreamPosition {
    /// 0 until the resolver reports (board sequence numbers start at 1).
    at: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The subscriber missed shared messages: its first message must be a snapshot marked as
    /// a resync.
    resync: bool,
}

impl StreamPosition {
    /// A position whose first message is a resync snapshot.
    pub fn for_resync() -> Self {
        Self {
            resync: true,
            ..Self::default()
        }
    }

    /// Whether the first message must be marked as a resync.
    pub fn resync_first(&self) -> bool {
        self.resync
    }

    /// Records the position of the message about to be yielded.
    pub fn report(&self, position: u64) {
        self.at.store(position, std::sync::atomic::Ordering::Release);
    }

    /// The position of the last message yielded; `None` when the resolver reports none.
    pub fn get(&self) -> Option<u64> {
        Some(self.at.load(std::sync::atomic::Ordering::Acquire)).filter(|at| *at > 0)
    }
}

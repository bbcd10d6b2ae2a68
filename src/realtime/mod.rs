//! The event bus: "something changed" notices, published after commit, fanned out to
//! subscriptions. Postgres stays the source of truth: a subscriber that misses an event
//! re-reads the current state.
//!
//! This is the in-process bus (one instance). The Redis-backed bus shares this envelope.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::broadcast;
use uuid::Uuid;

/// Per-process buffer of the in-process bus; a receiver that falls further behind is told it
/// lagged and must resynchronize from Postgres.
const BUS_CAPACITY: usize = 4_096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Topic {
    AgentState,
    Interactions,
    KpiInvalidation,
    ReportRuns,
    ComplianceAlerts,
    Settings,
}

/// The envelope every event travels in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub organization_id: Uuid,
    pub topic: Topic,
    /// Monotonic per publishing process; lets a subscriber spot reordering.
    pub sequence: u64,
    pub server_time: DateTime<Utc>,
    pub payload: serde_json::Value,
}

#[derive(Clone)]
pub struct Bus {
    sender: broadcast::Sender<Arc<Event>>,
    sequence: Arc<AtomicU64>,
}

impl Bus {
    pub fn in_process() -> Self {
        let (sender, _) = broadcast::channel(BUS_CAPACITY);
        Self {
            sender,
            sequence: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Publishes an event; call only after the transaction that made the change committed.
    pub fn publish(&self, organization_id: Uuid, topic: Topic, payload: serde_json::Value) {
        let event = Event {
            organization_id,
            topic,
            sequence: self.sequence.fetch_add(1, Ordering::Relaxed) + 1,
            server_time: Utc::now(),
            payload,
        };
        // No receiver is not an error: nobody is watching.
        let _ = self.sender.send(Arc::new(event));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }
}

//! A call: its direction, outcome and who answered, the events the telephony layer reports,
//! and the state of a call as the lifecycle derives it from them
//! (see [`crate::ingest::lifecycle`]).

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::closed_set;

closed_set!(
    // Stored in `interactions.direction` and `campaigns.direction`.
    /// Whether the contact centre took the call or placed it.
    #[derive(async_graphql::Enum, Serialize, Deserialize)]
    #[graphql(name = "CallDirection", rename_items = "SCREAMING_SNAKE_CASE")]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    Direction { Inbound => "INBOUND", Outbound => "OUTBOUND" }
);

closed_set!(
    // Stored in `interactions.outcome`.
    /// How a call ended.
    #[derive(async_graphql::Enum, Serialize, Deserialize)]
    #[graphql(name = "CallOutcome", rename_items = "SCREAMING_SNAKE_CASE")]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    Outcome {
        InProgress => "IN_PROGRESS",
        Answered => "ANSWERED",
        Abandoned => "ABANDONED",
        NoAnswer => "NO_ANSWER",
        Busy => "BUSY",
        Failed => "FAILED",
    }
);

closed_set!(
    // Stored in `interactions.answered_by`; inbound calls: the agent.
    /// Who picked up an outbound call.
    #[derive(async_graphql::Enum)]
    #[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
    AnsweredBy { Human => "HUMAN", Machine => "MACHINE" }
);

closed_set!(
    /// What happened to a call (`call_events.event_type`). The declaration order is the
    /// lifecycle rank that orders events of equal time.
    #[derive(PartialOrd, Ord)]
    EventType {
        Offered => "OFFERED",
        Ringing => "RINGING",
        Answered => "ANSWERED",
        Held => "HELD",
        Resumed => "RESUMED",
        Transferred => "TRANSFERRED",
        Ended => "ENDED",
        WrapUpEnded => "WRAP_UP_ENDED",
        /// A disposition set by a user (`setDisposition`); not a telephony event.
        DispositionSet => "DISPOSITION_SET",
    }
);

closed_set!(
    // Stored in `call_events.end_reason`: Twilio's final CallStatus.
    /// Why a call ended (ENDED only). Without an answer: BUSY, FAILED and NO_ANSWER are kept as
    /// the outcome; otherwise an inbound call is ABANDONED.
    #[derive(async_graphql::Enum)]
    #[graphql(name = "CallEndReason", rename_items = "SCREAMING_SNAKE_CASE")]
    EndReason {
        Completed => "COMPLETED",
        Busy => "BUSY",
        Failed => "FAILED",
        NoAnswer => "NO_ANSWER",
        Canceled => "CANCELED",
    }
);

closed_set!(
    /// Who sent an event (`call_events.source`).
    Source { Twilio => "TWILIO", Api => "API", User => "USER" }
);

/// One event of one call (the call's external id is kept beside it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallEvent {
    pub event_type: EventType,
    /// Microsecond precision, as PostgreSQL stores it (see [`CallEvent::new`]).
    pub occurred_at: DateTime<Utc>,
    pub sequence: Option<i64>,
    pub source: Source,
    pub direction: Option<Direction>,
    pub campaign_id: Option<Uuid>,
    /// RINGING/ANSWERED: the agent; TRANSFERRED: the agent the call goes to.
    pub agent_id: Option<Uuid>,
    pub customer_number: Option<String>,
    pub answered_by: Option<AnsweredBy>,
    pub end_reason: Option<EndReason>,
    /// Twilio CallDuration of a completed call.
    pub duration_ms: Option<i64>,
    pub disposition_id: Option<Uuid>,
    pub notes: Option<String>,
}

/// The dedupe key of an event within its call: type, time, sequence number (−1 for none).
pub type EventKey = (DateTime<Utc>, EventType, i64);

impl CallEvent {
    /// An event with no attributes; the time is truncated to microseconds so that the event
    /// compares equal to its stored copy.
    pub fn new(event_type: EventType, occurred_at: DateTime<Utc>, source: Source) -> Self {
        Self {
            event_type,
            occurred_at: occurred_at.trunc_subsecs(6),
            sequence: None,
            source,
            direction: None,
            campaign_id: None,
            agent_id: None,
            customer_number: None,
            answered_by: None,
            end_reason: None,
            duration_ms: None,
            disposition_id: None,
            notes: None,
        }
    }

    pub fn key(&self) -> EventKey {
        (self.occurred_at, self.event_type, self.sequence.unwrap_or(-1))
    }

    /// SHA-256 of a canonical encoding of every field: equal events have equal fingerprints,
    /// and the smaller fingerprint wins between two events of one key.
    pub fn fingerprint(&self) -> [u8; 32] {
        fn opt<T: ToString>(value: Option<T>) -> String {
            value.map_or_else(|| "~".to_owned(), |v| format!("={}", v.to_string()))
        }
        let fields = [
            self.event_type.as_str().to_owned(),
            self.occurred_at.timestamp_micros().to_string(),
            self.sequence.unwrap_or(-1).to_string(),
            self.source.as_str().to_owned(),
            opt(self.direction.map(Direction::as_str)),
            opt(self.campaign_id),
            opt(self.agent_id),
            opt(self.customer_number.as_deref()),
            opt(self.answered_by.map(AnsweredBy::as_str)),
            opt(self.end_reason.map(EndReason::as_str)),
            opt(self.duration_ms),
            opt(self.disposition_id),
            opt(self.notes.as_deref()),
        ];
        let mut hasher = Sha256::new();
        for field in fields {
            hasher.update((field.len() as u64).to_be_bytes());
            hasher.update(field.as_bytes());
        }
        hasher.finalize().into()
    }
}

/// An interaction as derived from its events (the columns ingest owns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallState {
    pub direction: Direction,
    pub campaign_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub customer_number: Option<String>,
    pub offered_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub wrap_ended_at: Option<DateTime<Utc>>,
    pub wait_ms: Option<i64>,
    pub talk_ms: i64,
    pub hold_ms: i64,
    pub wrap_ms: i64,
    pub outcome: Outcome,
    pub disposition_id: Option<Uuid>,
    pub answered_by: Option<AnsweredBy>,
    pub notes: Option<String>,
    pub last_event_sequence: Option<i64>,
}

impl CallState {
    /// Whether the rollups count `other` exactly as this call (same cell, same counters): the
    /// fields of [`CallState::facts`], without the ones no metric reads.
    pub fn same_facts(&self, other: &CallState) -> bool {
        let key = |c: &CallState| {
            (
                c.direction,
                c.campaign_id,
                c.agent_id,
                c.offered_at,
                c.wrap_ended_at,
                c.wait_ms,
                c.talk_ms,
                c.hold_ms,
                c.wrap_ms,
                c.outcome,
                c.answered_by,
                c.disposition_id,
            )
        };
        key(self) == key(other)
    }
}

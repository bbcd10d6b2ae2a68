//! An agent's two state axes: what the agent chose (presence) and what the telephony layer sees
//! (routing state).

use serde::{Deserialize, Serialize};

use super::closed_set;

closed_set!(
    // Stored in `agents.presence` and on the PRESENCE axis of the state log.
    /// What the agent chose. The organization's reason codes refine every presence but AVAILABLE
    /// and OFFLINE.
    #[derive(async_graphql::Enum, Serialize, Deserialize)]
    #[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    Presence {
        Available => "AVAILABLE",
        Break => "BREAK",
        Lunch => "LUNCH",
        Training => "TRAINING",
        Meeting => "MEETING",
        Away => "AWAY",
        Offline => "OFFLINE",
    }
);

closed_set!(
    // Stored in `agents.routing_state` and on the ROUTING axis of the state log.
    /// What the telephony layer sees.
    #[derive(async_graphql::Enum, Serialize, Deserialize)]
    #[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    RoutingState { Idle => "IDLE", Ringing => "RINGING", OnCall => "ON_CALL", WrapUp => "WRAP_UP" }
);

impl Presence {
    /// Whether the organization's reason codes refine this presence.
    pub fn takes_reason(self) -> bool {
        !matches!(self, Presence::Available | Presence::Offline)
    }
}

/// One state of the agent state log. The axis follows from the state, so a presence value can
/// never be logged on the routing axis or the reverse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AgentState {
    Presence(Presence),
    Routing(RoutingState),
}

impl AgentState {
    /// `agent_state_log.axis`.
    pub fn axis(self) -> &'static str {
        match self {
            AgentState::Presence(_) => "PRESENCE",
            AgentState::Routing(_) => "ROUTING",
        }
    }

    /// `agent_state_log.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Presence(p) => p.as_str(),
            AgentState::Routing(r) => r.as_str(),
        }
    }
}

//! What the bus carries, typed: one [`BusEvent`] per kind of change.
//!
//! Publishers build a variant, consumers `match` on it; no code reads an event by string key.
//! The variant decides its [`Topic`] ([`BusEvent::topic`]), so an event cannot be published on
//! the wrong topic, and a consumer of a topic can only ever see that topic's variant.
//!
//! # Wire shape
//! Serde gives the JSON the envelope carries on Redis (see [`super::Event`]): the variant's
//! name is the envelope's `type` (the topic's name) and its fields are the `payload` object,
//! with exactly the keys the untyped publishers wrote before this type existed — so an
//! instance running older code and one running this code read each other's events during a
//! rolling deploy. The tests below decode the exact JSON the older code published.
//!
//! An event is serialized once, by the Redis publisher task, and decoded once, by the one
//! subscriber connection; in-process delivery never serializes.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Topic;
use crate::domain::{Direction, Outcome, Presence, RoutingState};

/// One "something changed" notice. Postgres stays the truth: consumers use an event to know
/// what to re-read (or whether to re-read at all), never as the new state itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    content = "payload",
    rename_all = "SCREAMING_SNAKE_CASE",
    rename_all_fields = "camelCase"
)]
pub enum BusEvent {
    /// One agent's presence (set by a person) or routing state (derived from its calls)
    /// changed. Topic [`Topic::AgentState`].
    AgentState {
        agent_id: Uuid,
        /// Which axis changed and to what; on the wire, `axis` and `state` beside `agentId`.
        #[serde(flatten)]
        change: AgentStateChange,
    },
    /// The calls whose interaction one committed batch changed. Topic [`Topic::Interactions`].
    Interactions {
        /// On the wire: `interactions`.
        #[serde(rename = "interactions")]
        calls: Vec<CallChange>,
    },
    /// Offer hours (UTC, on the hour) whose KPIs may have changed. Topic
    /// [`Topic::KpiInvalidation`].
    KpiInvalidation { hours: BTreeSet<DateTime<Utc>> },
    /// The business settings changed; `version` is the version after the change. Topic
    /// [`Topic::Settings`].
    Settings { version: i32 },
    /// Agents' profiles changed (team, name, extension, skills, active flag) by the management
    /// surface; live boards re-read those agents. Topic [`Topic::AgentState`], so a team
    /// change reaches `agentStates` subscribers filtered by team.
    AgentProfiles { agent_ids: Vec<Uuid> },
    /// An API key was revoked: sockets authenticated with it close. Topic [`Topic::Access`].
    ApiKeyRevoked { key_id: Uuid },
    /// A user's access changed (deactivated, role changed, password reset): their sockets check
    /// their credentials again at once. Topic [`Topic::Access`].
    UserAccessChanged { user_id: Uuid },
    /// The envelope's organization was suspended: every socket of its users and keys closes.
    /// Topic [`Topic::Access`].
    OrganizationSuspended,
    /// A report run moved on (claimed, rows written, ended); `reportRunUpdated` re-reads it.
    /// Topic [`Topic::ReportRuns`].
    ReportRun { run_id: Uuid },
    /// A dashboard was changed or deleted (`dashboard_id`), or a role's default dashboard was
    /// set (`dashboard_id` null): `dashboardUpdated` subscribers of it read it again. Topic
    /// [`Topic::Settings`].
    Dashboard { dashboard_id: Option<Uuid> },
}

impl BusEvent {
    /// The topic the event travels on; the only way a topic is chosen for a publish.
    pub fn topic(&self) -> Topic {
        match self {
            BusEvent::AgentState { .. } | BusEvent::AgentProfiles { .. } => Topic::AgentState,
            BusEvent::Interactions { .. } => Topic::Interactions,
            BusEvent::KpiInvalidation { .. } => Topic::KpiInvalidation,
            BusEvent::Settings { .. } | BusEvent::Dashboard { .. } => Topic::Settings,
            BusEvent::ApiKeyRevoked { .. } | BusEvent::UserAccessChanged { .. } | BusEvent::OrganizationSuspended => {
                Topic::Access
            }
            BusEvent::ReportRun { .. } => Topic::ReportRuns,
        }
    }
}

/// The axis of an agent that changed, and its new state. The axis follows from the variant, so
/// a presence can never be announced on the routing axis or the reverse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "axis", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgentStateChange {
    /// What the agent chose, with the organization's reason code (null when none).
    Presence { state: Presence, reason: Option<String> },
    /// What the telephony layer sees, since when.
    Routing { state: RoutingState, since: DateTime<Utc> },
}

/// A call whose interaction changed: enough for subscribers to filter by campaign, agent and
/// direction without a query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallChange {
    /// On the wire: `id`.
    #[serde(rename = "id")]
    pub interaction_id: Uuid,
    pub external_id: String,
    pub outcome: Outcome,
    pub agent_id: Option<Uuid>,
    pub campaign_id: Option<Uuid>,
    pub direction: Direction,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, hour, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn call() -> CallChange {
        CallChange {
            interaction_id: Uuid::new_v4(),
            external_id: "CA123".into(),
            outcome: Outcome::InProgress,
            agent_id: Some(Uuid::new_v4()),
            campaign_id: None,
            direction: Direction::Outbound,
        }
    }

    /// One of every variant (and of every agent axis).
    fn every_variant() -> Vec<BusEvent> {
        vec![
            BusEvent::AgentState {
                agent_id: Uuid::new_v4(),
                change: AgentStateChange::Presence {
                    state: Presence::Break,
                    reason: Some("COFFEE".into()),
                },
            },
            BusEvent::AgentState {
                agent_id: Uuid::new_v4(),
                change: AgentStateChange::Presence {
                    state: Presence::Available,
                    reason: None,
                },
            },
            BusEvent::AgentState {
                agent_id: Uuid::new_v4(),
                change: AgentStateChange::Routing {
                    state: RoutingState::OnCall,
                    since: at(9),
                },
            },
            BusEvent::Interactions {
                calls: vec![call(), call()],
            },
            BusEvent::Interactions { calls: Vec::new() },
            BusEvent::KpiInvalidation {
                hours: [at(9), at(10)].into_iter().collect(),
            },
            BusEvent::Settings { version: 7 },
        ]
    }

    /// Profile changes (team moves above all) travel on the agent-state topic, so the live
    /// boards that listen to it re-read the agents; their wire type is their own.
    #[test]
    fn agent_profile_changes_travel_on_the_agent_state_topic() {
        let event = BusEvent::AgentProfiles {
            agent_ids: vec![Uuid::new_v4(), Uuid::new_v4()],
        };
        assert_eq!(event.topic(), Topic::AgentState);
        let wire = serde_json::to_value(&event).unwrap_or_default();
        assert_eq!(wire["type"], "AGENT_PROFILES");
        assert_eq!(wire["payload"]["agentIds"].as_array().map(Vec::len), Some(2));
        assert_eq!(serde_json::from_value::<BusEvent>(wire).ok(), Some(event));
    }

    #[test]
    fn every_variant_survives_the_wire() {
        for event in every_variant() {
            let text = serde_json::to_string(&event).unwrap_or_default();
            let back: Result<BusEvent, _> = serde_json::from_str(&text);
            assert_eq!(back.ok(), Some(event), "{text}");
        }
    }

    #[test]
    fn the_wire_type_is_the_topic_s_name() {
        for event in every_variant() {
            let wire = serde_json::to_value(&event).unwrap_or_default();
            let topic = serde_json::to_value(event.topic()).unwrap_or_default();
            assert_eq!(wire["type"], topic, "{wire}");
            assert!(wire["payload"].is_object(), "{wire}");
        }
    }

    /// The payloads exactly as the untyped publishers wrote them (`json!` in ingest, presence
    /// and settings), in the `type` + `payload` shape of the envelope.
    #[test]
    fn events_published_by_the_older_code_decode() {
        let (agent, call_id, campaign) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let decode = |value: serde_json::Value| serde_json::from_value::<BusEvent>(value).ok();
        assert_eq!(
            decode(json!({ "type": "AGENT_STATE", "payload":
                { "agentId": agent, "axis": "ROUTING", "state": "WRAP_UP", "since": at(9) } })),
            Some(BusEvent::AgentState {
                agent_id: agent,
                change: AgentStateChange::Routing {
                    state: RoutingState::WrapUp,
                    since: at(9)
                },
            })
        );
        assert_eq!(
            decode(json!({ "type": "AGENT_STATE", "payload":
                { "agentId": agent, "axis": "PRESENCE", "state": "BREAK", "reason": "COFFEE" } })),
            Some(BusEvent::AgentState {
                agent_id: agent,
                change: AgentStateChange::Presence {
                    state: Presence::Break,
                    reason: Some("COFFEE".into())
                },
            })
        );
        assert_eq!(
            decode(json!({ "type": "AGENT_STATE", "payload":
                { "agentId": agent, "axis": "PRESENCE", "state": "AVAILABLE", "reason": null } })),
            Some(BusEvent::AgentState {
                agent_id: agent,
                change: AgentStateChange::Presence {
                    state: Presence::Available,
                    reason: None
                },
            })
        );
        assert_eq!(
            decode(json!({ "type": "INTERACTIONS", "payload": { "interactions": [{
                "id": call_id, "externalId": "CA1", "outcome": "NO_ANSWER",
                "agentId": null, "campaignId": campaign, "direction": "OUTBOUND" }] } })),
            Some(BusEvent::Interactions {
                calls: vec![CallChange {
                    interaction_id: call_id,
                    external_id: "CA1".into(),
                    outcome: Outcome::NoAnswer,
                    agent_id: None,
                    campaign_id: Some(campaign),
                    direction: Direction::Outbound,
                }],
            })
        );
        assert_eq!(
            decode(json!({ "type": "KPI_INVALIDATION", "payload": { "hours": [at(9), at(11)] } })),
            Some(BusEvent::KpiInvalidation {
                hours: [at(9), at(11)].into_iter().collect()
            })
        );
        assert_eq!(
            decode(json!({ "type": "SETTINGS", "payload": { "version": 3 } })),
            Some(BusEvent::Settings { version: 3 })
        );
    }

    /// What the older code reads from an event (`agentId`, the `interactions` list and its
    /// keys) is where it always was, so it can consume events this code publishes.
    #[test]
    fn the_older_code_finds_its_keys_in_new_events() {
        let agent = Uuid::new_v4();
        let routing = serde_json::to_value(BusEvent::AgentState {
            agent_id: agent,
            change: AgentStateChange::Routing {
                state: RoutingState::Ringing,
                since: at(8),
            },
        })
        .unwrap_or_default();
        assert_eq!(
            routing["payload"],
            json!({ "agentId": agent, "axis": "ROUTING", "state": "RINGING", "since": at(8) })
        );
        let presence = serde_json::to_value(BusEvent::AgentState {
            agent_id: agent,
            change: AgentStateChange::Presence {
                state: Presence::Lunch,
                reason: None,
            },
        })
        .unwrap_or_default();
        assert_eq!(
            presence["payload"],
            json!({ "agentId": agent, "axis": "PRESENCE", "state": "LUNCH", "reason": null })
        );
        let c = call();
        let calls = serde_json::to_value(BusEvent::Interactions { calls: vec![c.clone()] }).unwrap_or_default();
        assert_eq!(
            calls["payload"],
            json!({ "interactions": [{ "id": c.interaction_id, "externalId": c.external_id,
                "outcome": "IN_PROGRESS", "agentId": c.agent_id, "campaignId": null,
                "direction": "OUTBOUND" }] })
        );
    }

    #[test]
    fn a_payload_that_does_not_fit_its_type_is_refused() {
        let wrong = json!({ "type": "SETTINGS", "payload": { "agentId": Uuid::new_v4() } });
        assert!(serde_json::from_value::<BusEvent>(wrong).is_err());
        let unknown = json!({ "type": "AGENT_STATE", "payload":
            { "agentId": Uuid::new_v4(), "axis": "ROUTING", "state": "DANCING", "since": at(1) } });
        assert!(serde_json::from_value::<BusEvent>(unknown).is_err());
    }
}

//! Calls as they change, for the `interactionEvents` subscription: the interactions topic of
//! one organization, filtered per subscriber by a [`CallFilter`].
//!
//! Unlike the agent board, nothing is re-read here: each event already names the calls it
//! changed (see [`CallChange`]), so a subscriber costs a bus receiver and a filter. A gap
//! (bus reconnect, lagged receiver) is passed on as a resync notice: the client re-queries.

use chrono::{DateTime, Utc};
use futures_util::Stream;
use uuid::Uuid;

use crate::auth::Tenant;
use crate::domain::Direction;
use crate::realtime::bus::{Bus, Received};
use crate::realtime::live::in_scope;
use crate::realtime::{BusEvent, CallChange, Topic};

/// Which calls a subscriber wants; every part optional, combined with AND. A call without a
/// campaign (or an agent) is outside any campaign (or agent) filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallFilter {
    pub campaign_ids: Option<Vec<Uuid>>,
    pub agent_ids: Option<Vec<Uuid>>,
    pub direction: Option<Direction>,
}

impl CallFilter {
    /// Whether the call passes the filter.
    pub fn matches(&self, call: &CallChange) -> bool {
        call_in_scope(&self.campaign_ids, &self.agent_ids, self.direction, call)
    }

    /// The calls of an event that pass the filter (none for an event of another kind).
    pub fn select(&self, event: &BusEvent) -> Vec<CallChange> {
        match event {
            BusEvent::Interactions { calls } => calls.iter().filter(|c| self.matches(c)).cloned().collect(),
            BusEvent::AgentState { .. }
            | BusEvent::AgentProfiles { .. }
            | BusEvent::KpiInvalidation { .. }
            | BusEvent::Settings { .. }
            | BusEvent::ApiKeyRevoked { .. }
            | BusEvent::UserAccessChanged { .. }
            | BusEvent::OrganizationSuspended
            | BusEvent::ReportRun { .. }
            | BusEvent::Dashboard { .. } => Vec::new(),
        }
    }
}

/// Whether a call is within optional campaign, agent and direction filters: the one rule
/// behind [`CallFilter`] and the live KPI scope check.
pub fn call_in_scope(
    campaign_ids: &Option<Vec<Uuid>>,
    agent_ids: &Option<Vec<Uuid>>,
    direction: Option<Direction>,
    call: &CallChange,
) -> bool {
    in_scope(campaign_ids, call.campaign_id)
        && in_scope(agent_ids, call.agent_id)
        && direction.is_none_or(|d| d == call.direction)
}

/// One message of a subscriber's call stream.
#[derive(Debug, Clone, PartialEq)]
pub struct CallBatch {
    /// Events may have been missed: re-query. `calls` is empty.
    pub resync: bool,
    /// The bus's per-organization sequence (0 for a resync notice or while Redis is down).
    pub sequence: u64,
    pub server_time: DateTime<Utc>,
    /// The calls of one committed change that pass the filter (never empty unless `resync`).
    pub calls: Vec<CallChange>,
}

/// The tenant's calls as they change, filtered: one batch per event with at least one
/// matching call, a resync notice after a possible gap. Ends when the bus does.
pub fn follow(bus: &Bus, tenant: Tenant, filter: CallFilter) -> impl Stream<Item = CallBatch> {
    let mut events = bus.receiver(&[Topic::Interactions]);
    async_stream::stream! {
        loop {
            match events.recv().await {
                Received::Event(event) if event.organization_id == tenant.org_id() => {
                    let calls = filter.select(&event.payload);
                    if !calls.is_empty() {
                        yield CallBatch {
                            resync: false,
                            sequence: event.sequence,
                            server_time: event.server_time,
                            calls,
                        };
                    }
                }
                Received::Event(_) => {}
                Received::Resync => yield CallBatch {
                    resync: true,
                    sequence: 0,
                    server_time: Utc::now(),
                    calls: Vec::new(),
                },
                Received::Closed => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Outcome;

    fn call(campaign: Option<Uuid>, agent: Option<Uuid>, direction: Direction) -> CallChange {
        CallChange {
            interaction_id: Uuid::new_v4(),
            external_id: "CA1".into(),
            outcome: Outcome::Answered,
            agent_id: agent,
            campaign_id: campaign,
            direction,
        }
    }

    #[test]
    fn no_filter_passes_every_call() {
        let filter = CallFilter::default();
        assert!(filter.matches(&call(None, None, Direction::Inbound)));
        assert!(filter.matches(&call(Some(Uuid::new_v4()), None, Direction::Outbound)));
    }

    #[test]
    fn every_part_of_the_filter_must_pass() {
        let (campaign, agent) = (Uuid::new_v4(), Uuid::new_v4());
        let filter = CallFilter {
            campaign_ids: Some(vec![campaign]),
            agent_ids: Some(vec![agent]),
            direction: Some(Direction::Outbound),
        };
        assert!(filter.matches(&call(Some(campaign), Some(agent), Direction::Outbound)));
        assert!(!filter.matches(&call(Some(campaign), Some(agent), Direction::Inbound)));
        assert!(!filter.matches(&call(Some(Uuid::new_v4()), Some(agent), Direction::Outbound)));
        assert!(!filter.matches(&call(Some(campaign), Some(Uuid::new_v4()), Direction::Outbound)));
        assert!(
            !filter.matches(&call(Some(campaign), None, Direction::Outbound)),
            "a call without an agent is outside an agent filter"
        );
        assert!(!filter.matches(&call(None, Some(agent), Direction::Outbound)));
    }

    #[test]
    fn select_keeps_the_matching_calls_of_an_interactions_event_in_order() {
        let campaign = Uuid::new_v4();
        let filter = CallFilter {
            campaign_ids: Some(vec![campaign]),
            ..CallFilter::default()
        };
        let (a, b, c) = (
            call(Some(campaign), None, Direction::Inbound),
            call(None, None, Direction::Inbound),
            call(Some(campaign), None, Direction::Outbound),
        );
        let event = BusEvent::Interactions {
            calls: vec![a.clone(), b, c.clone()],
        };
        assert_eq!(filter.select(&event), vec![a, c]);
        assert!(filter.select(&BusEvent::Settings { version: 1 }).is_empty());
    }
}

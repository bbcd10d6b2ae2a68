//! One batch of valid events into the database, in the caller's transaction: the events, the
//! interactions recomputed from them, the agents' routing state, and the rollups (through the
//! one rollup writer). No SQL here: the statements are in `db::calls` and `kpi::writer`.
//!
//! Locks are always taken in the same order — the calls' advisory locks (ascending key), the
//! agents' rows (ascending id), agent-time rollups, the business settings (share), call rollups
//! (sorted keys) — so concurrent batches, webhooks and settings changes cannot deadlock.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::calls;
use crate::db::contact_centre::NewStateInterval;
use crate::db::interactions::{self, InteractionRow};
use crate::domain::{AgentState, CallEvent, CallState, EventKey, RoutingState};
use crate::error::AppResult;
use crate::ingest::lifecycle::{self, StoredTransition, Transition};
use crate::kpi::facts::{hour_of, CallFacts};
use crate::kpi::writer;
use crate::realtime::CallChange;

/// What a batch changed, to publish once it committed.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// Calls whose interaction changed, in the shape the bus announces them.
    pub interactions: Vec<CallChange>,
    /// Agents whose routing state changed: (agent, state, since).
    pub agents: Vec<(Uuid, RoutingState, DateTime<Utc>)>,
    /// Offer hours (UTC) whose KPIs may have changed.
    pub hours: BTreeSet<DateTime<Utc>>,
}

impl Changes {
    pub fn merge(&mut self, other: Changes) {
        self.interactions.extend(other.interactions);
        self.agents.extend(other.agents);
        self.hours.extend(other.hours);
    }
}

/// The result of [`apply`].
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// Per item: stored (true), or a repeat of an event already stored (false).
    pub stored: Vec<bool>,
    /// The interaction of every call the batch named.
    pub interaction_ids: HashMap<String, Uuid>,
    pub changes: Changes,
}

/// Stores valid events of one tenant and brings every touched call up to date.
pub async fn apply(conn: &mut AsyncPgConnection, tenant: &Tenant, items: &[(String, CallEvent)]) -> AppResult<Applied> {
    if items.is_empty() {
        return Ok(Applied::default());
    }
    // One event per (call, key): the smallest fingerprint, as the table keeps it; the first
    // item carrying it is the one reported as stored.
    let mut winners: BTreeMap<(&str, EventKey), ([u8; 32], usize)> = BTreeMap::new();
    for (index, (external_id, event)) in items.iter().enumerate() {
        let fingerprint = event.fingerprint();
        winners
            .entry((external_id.as_str(), event.key()))
            .and_modify(|kept| {
                if fingerprint < kept.0 {
                    *kept = (fingerprint, index);
                }
            })
            .or_insert((fingerprint, index));
    }
    let external_ids: Vec<String> = items
        .iter()
        .map(|(id, _)| id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();

    calls::lock_calls(conn, tenant, &external_ids).await?;
    let mut events_before: HashMap<String, Vec<CallEvent>> = HashMap::new();
    for (external_id, event) in calls::load_events(conn, tenant, &external_ids).await? {
        events_before.entry(external_id).or_default().push(event);
    }
    let stored_rows = interactions::interactions_by_external_ids(conn, tenant, &external_ids).await?;

    let candidates: Vec<(String, CallEvent)> = winners.values().map(|(_, i)| items[*i].clone()).collect();
    let written: HashSet<(String, EventKey)> = calls::insert_events(conn, tenant, &candidates)
        .await?
        .into_iter()
        .collect();
    let mut stored = vec![false; items.len()];
    let mut new_events: BTreeMap<&str, Vec<&CallEvent>> = BTreeMap::new();
    for ((external_id, key), (_, index)) in &winners {
        if written.contains(&((*external_id).to_owned(), *key)) {
            stored[*index] = true;
            new_events.entry(external_id).or_default().push(&items[*index].1);
        }
    }

    let needs_campaigns = new_events.values().flatten().any(|e| e.campaign_id.is_some())
        || new_events.keys().any(|id| {
            events_before
                .get(*id)
                .is_some_and(|es| es.iter().any(|e| e.campaign_id.is_some()))
        });
    let campaign_directions = if needs_campaigns {
        calls::campaign_directions(conn, tenant).await?
    } else {
        HashMap::new()
    };

    let mut changed: Vec<(&str, Option<CallState>, CallState)> = Vec::new();
    let mut transitions: BTreeMap<Uuid, AgentTransitions> = BTreeMap::new();
    for (external_id, added) in &new_events {
        let before: &[CallEvent] = events_before.get(*external_id).map_or(&[], Vec::as_slice);
        let replaced: HashSet<EventKey> = added.iter().map(|e| e.key()).collect();
        let after: Vec<CallEvent> = before
            .iter()
            .filter(|e| !replaced.contains(&e.key()))
            .chain(added.iter().copied())
            .cloned()
            .collect();
        let Some(state) = lifecycle::derive(&after, |c| campaign_directions.get(&c).copied()) else {
            continue;
        };
        let previous = stored_rows.get(*external_id).map(InteractionRow::state).transpose()?;
        let (removed, added) =
            lifecycle::transition_changes(&lifecycle::agent_timeline(before), &lifecycle::agent_timeline(&after));
        for Transition { agent_id, at, .. } in removed {
            let entry = transitions.entry(agent_id).or_default();
            entry.removed.push((at, (*external_id).to_owned()));
            entry.earliest = Some(entry.earliest.map_or(at, |e| e.min(at)));
        }
        for Transition { agent_id, at, state } in added {
            let entry = transitions.entry(agent_id).or_default();
            entry.added.push((at, (*external_id).to_owned(), state));
            entry.earliest = Some(entry.earliest.map_or(at, |e| e.min(at)));
        }
        if previous.as_ref() != Some(&state) {
            changed.push((external_id, previous, state));
        }
    }

    let upserts: Vec<(&str, &CallState)> = changed.iter().map(|(id, _, state)| (*id, state)).collect();
    let mut interaction_ids = interactions::upsert_interactions(conn, tenant, &upserts).await?;
    for (external_id, row) in &stored_rows {
        interaction_ids.entry(external_id.clone()).or_insert(row.id);
    }
    let agents = apply_agent_transitions(conn, tenant, transitions).await?;
    // Calls whose counted facts did not change (a ringing, a new sequence number) leave the
    // rollups alone.
    let facts: Vec<(Option<CallFacts>, CallFacts)> = changed
        .iter()
        .filter(|(_, before, after)| !before.as_ref().is_some_and(|b| b.same_facts(after)))
        .map(|(_, before, after)| (before.as_ref().map(CallFacts::from), CallFacts::from(after)))
        .collect();
    writer::replace_calls(conn, tenant, &facts).await?;

    let mut changes = Changes {
        agents,
        ..Changes::default()
    };
    for (external_id, before, after) in &changed {
        changes.hours.insert(hour_of(after.offered_at));
        if let Some(before) = before {
            changes.hours.insert(hour_of(before.offered_at));
        }
        if let Some(id) = interaction_ids.get(*external_id) {
            changes.interactions.push(CallChange {
                interaction_id: *id,
                external_id: (*external_id).to_owned(),
                outcome: after.outcome,
                agent_id: after.agent_id,
                campaign_id: after.campaign_id,
                direction: after.direction,
            });
        }
    }
    Ok(Applied {
        stored,
        interaction_ids,
        changes,
    })
}

/// What a batch changed in one agent's routing transitions.
#[derive(Debug, Default)]
struct AgentTransitions {
    /// (instant, call) of transitions the calls no longer have.
    removed: Vec<(DateTime<Utc>, String)>,
    /// (instant, call, state) of transitions the calls newly have.
    added: Vec<(DateTime<Utc>, String, RoutingState)>,
    /// The earliest instant changed: the agent's log is re-derived from there on.
    earliest: Option<DateTime<Utc>>,
}

/// Keeps each agent's routing log a function of its calls' transitions, whatever the order
/// the events arrive in: stores the batch's removed and added transitions, then re-derives the
/// agent's ROUTING intervals from the earliest changed instant on ([`lifecycle::fold_routing`]
/// over the stored transitions, starting from the interval in force just before it): those
/// intervals are deleted, their time taken out of the rollups, and the fold's written through
/// the rollup writer; the agent's row gets the fold's current state (the latest by event time).
/// Returns the agents whose current state changed.
async fn apply_agent_transitions(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    transitions: BTreeMap<Uuid, AgentTransitions>,
) -> AppResult<Vec<(Uuid, RoutingState, DateTime<Utc>)>> {
    if transitions.is_empty() {
        return Ok(Vec::new());
    }
    let agent_ids: Vec<Uuid> = transitions.keys().copied().collect();
    // Row locks first (ascending id), as every writer of agents' state takes them.
    let current: HashMap<Uuid, (RoutingState, DateTime<Utc>)> = calls::lock_agent_states(conn, tenant, &agent_ids)
        .await?
        .into_iter()
        .map(|(id, state, since)| (id, (state, since)))
        .collect();
    calls::record_routing_origins(conn, tenant, &agent_ids).await?;
    let removed: Vec<(Uuid, DateTime<Utc>, &str)> = transitions
        .iter()
        .flat_map(|(agent, t)| t.removed.iter().map(move |(at, call)| (*agent, *at, call.as_str())))
        .collect();
    calls::delete_routing_transitions(conn, tenant, &removed).await?;
    let added: Vec<(Uuid, DateTime<Utc>, &str, RoutingState)> = transitions
        .iter()
        .flat_map(|(agent, t)| {
            t.added
                .iter()
                .map(move |(at, call, state)| (*agent, *at, call.as_str(), *state))
        })
        .collect();
    calls::insert_routing_transitions(conn, tenant, &added).await?;

    // Where each agent's log is re-derived from. When an interval was in force just before
    // the earliest change, from that interval's start, in its state, folding the transitions
    // from the change on (the ones between only repeat that state). Otherwise (the change is
    // before the agent's log begins, or the agent has none yet) from the very first
    // transition, with no state before it.
    let earliest: Vec<(Uuid, DateTime<Utc>)> = transitions
        .iter()
        .filter_map(|(agent, t)| t.earliest.map(|at| (*agent, at)))
        .collect();
    let mut plans: BTreeMap<Uuid, RebuildPlan> = earliest
        .iter()
        .map(|(agent, _)| (*agent, RebuildPlan::default()))
        .collect();
    for (agent, state, started_at, ended_at) in calls::routing_intervals_before(conn, tenant, &earliest).await? {
        let changed_at = transitions.get(&agent).and_then(|t| t.earliest);
        if let (Some(plan), Some(changed_at)) = (plans.get_mut(&agent), changed_at) {
            if ended_at.is_none_or(|end| end >= changed_at) {
                *plan = RebuildPlan {
                    intervals_from: started_at,
                    transitions_from: changed_at,
                    start: Some((state, started_at)),
                };
            }
        }
    }
    let intervals_from: Vec<(Uuid, DateTime<Utc>)> = plans.iter().map(|(a, p)| (*a, p.intervals_from)).collect();
    let transitions_from: Vec<(Uuid, DateTime<Utc>)> = plans.iter().map(|(a, p)| (*a, p.transitions_from)).collect();
    let replaced = calls::take_routing_intervals_from(conn, tenant, &intervals_from).await?;
    let closed: Vec<NewStateInterval> = replaced
        .iter()
        .filter_map(|(agent_id, state, started_at, ended_at)| {
            ended_at.map(|end| routing_interval(*agent_id, *state, *started_at, Some(end)))
        })
        .collect();
    writer::remove_state_time(conn, tenant, &closed).await?;

    let mut stored: HashMap<Uuid, Vec<StoredTransition>> = HashMap::new();
    for (agent, at, external_id, state) in calls::routing_transitions_from(conn, tenant, &transitions_from).await? {
        stored
            .entry(agent)
            .or_default()
            .push(StoredTransition { at, state, external_id });
    }
    let mut intervals = Vec::new();
    let mut finals = Vec::new();
    for (agent_id, plan) in plans {
        let (spans, now) = lifecycle::fold_routing(plan.start, stored.remove(&agent_id).unwrap_or_default());
        intervals.extend(
            spans
                .into_iter()
                .map(|span| routing_interval(agent_id, span.state, span.start, Some(span.end))),
        );
        if let Some((state, since)) = now {
            intervals.push(routing_interval(agent_id, state, since, None));
            if current.get(&agent_id) != Some(&(state, since)) {
                finals.push((agent_id, state, since));
            }
        }
    }
    writer::insert_derived_state_intervals(conn, tenant, &intervals).await?;
    calls::set_agent_states(conn, tenant, &finals).await?;
    Ok(finals)
}

/// How one agent's routing log is re-derived (see [`apply_agent_transitions`]).
#[derive(Debug, Clone, Copy)]
struct RebuildPlan {
    /// Its ROUTING intervals starting here or later are replaced.
    intervals_from: DateTime<Utc>,
    /// The stored transitions folded: those at this instant or later.
    transitions_from: DateTime<Utc>,
    /// The state in force at `intervals_from`, if any.
    start: Option<(RoutingState, DateTime<Utc>)>,
}

impl Default for RebuildPlan {
    /// From the beginning of the agent's history (every stored instant is after 1970: events
    /// are refused before their organization existed; `DateTime::MIN_UTC` is beyond the range
    /// of PostgreSQL's timestamps).
    fn default() -> Self {
        Self {
            intervals_from: DateTime::UNIX_EPOCH,
            transitions_from: DateTime::UNIX_EPOCH,
            start: None,
        }
    }
}

fn routing_interval(
    agent_id: Uuid,
    state: RoutingState,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
) -> NewStateInterval {
    NewStateInterval {
        agent_id,
        state: AgentState::Routing(state),
        reason: None,
        started_at,
        ended_at,
    }
}

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
use crate::db::interactions::{self, InteractionRow};
use crate::domain::{CallEvent, CallState, EventKey, RoutingState};
use crate::error::AppResult;
use crate::ingest::lifecycle::{self, Transition};
use crate::ingest::routing_log::{self, AgentTransitions};
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
        }
        for Transition { agent_id, at, state } in added {
            let entry = transitions.entry(agent_id).or_default();
            entry.added.push((at, (*external_id).to_owned(), state));
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
    let agents = routing_log::apply(conn, tenant, transitions).await?;
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

//! Agents' ROUTING intervals as a function of their stored transitions, whatever order the
//! events arrive in — re-derived only where a batch changed them.
//!
//! Each call moves its agents through routing states (`lifecycle::agent_timeline`); those
//! transitions are stored per (agent, instant, call), and an agent's log is their fold in time
//! order (`lifecycle::fold_routing`). The state at an instant is the state of the last
//! transition at or before it, so a batch that adds or removes transitions at instant `c`
//! changes the log only from the interval in force just before `c` up to the next stored
//! transition after `c`: from there on the state is what it was, and the old interval in force
//! there keeps its end. Each batch therefore re-derives one *stretch* per cluster of changed
//! instants (clusters whose stretches touch are merged), not the agent's whole history after
//! the earliest change. A late call in the middle of a day of history costs its neighbourhood,
//! and four concurrent senders of shuffled batches no longer hold agents' row locks for
//! seconds re-folding hours of history per batch.
//!
//! Where the stored log disagrees with the transitions at a stretch's end (a log written
//! before transitions were kept for it), that agent's stretch is widened to the end of its
//! history, which is always exact.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::calls::{self, AgentStretch, ChangeNeighbourhood, RoutingSpan};
use crate::db::contact_centre::NewStateInterval;
use crate::domain::{AgentState, RoutingState};
use crate::error::{AppError, AppResult};
use crate::ingest::lifecycle::{self, StateSpan, StoredTransition};
use crate::kpi::writer;

/// What a batch changed in one agent's routing transitions.
#[derive(Debug, Default)]
pub struct AgentTransitions {
    /// (instant, call) of transitions the calls no longer have.
    pub removed: Vec<(DateTime<Utc>, String)>,
    /// (instant, call, state) of transitions the calls newly have.
    pub added: Vec<(DateTime<Utc>, String, RoutingState)>,
}

impl AgentTransitions {
    fn changed_instants(&self) -> BTreeSet<DateTime<Utc>> {
        self.removed
            .iter()
            .map(|(at, _)| *at)
            .chain(self.added.iter().map(|(at, _, _)| *at))
            .collect()
    }
}

/// One stretch of an agent's log to re-derive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stretch {
    pub agent_id: Uuid,
    /// Its ROUTING intervals starting from here up to `until` are replaced.
    pub intervals_from: DateTime<Utc>,
    /// The stored transitions folded: from here up to `until`. Those between
    /// `intervals_from` and here only repeat the state in force (`start`).
    pub transitions_from: DateTime<Utc>,
    /// The first stored transition after the stretch's last change, included (None: to the
    /// end of the history). From it on the state is what it was before the batch.
    pub until: Option<DateTime<Utc>>,
    /// The state in force at `intervals_from` (None: the history starts within the stretch).
    pub start: Option<(RoutingState, DateTime<Utc>)>,
    /// The old interval in force at `until`, whose end the re-derived log keeps.
    pub old_at_until: Option<RoutingSpan>,
}

/// The first instant of every agent's history (every stored instant is after 1970: events
/// are refused before their organization's history horizon, which is never before 1970; `DateTime::MIN_UTC` is beyond the range of
/// PostgreSQL's timestamps).
const HISTORY_START: DateTime<Utc> = DateTime::UNIX_EPOCH;

impl Stretch {
    /// The stretch one changed instant needs on its own.
    fn around(point: &ChangeNeighbourhood) -> Self {
        let (intervals_from, transitions_from, start) = match point.before {
            Some((state, started, ended)) if ended.is_none_or(|end| end >= point.at) => {
                (started, point.at, Some((state, started)))
            }
            // Before the log begins (or after a gap in it): from the first transition on.
            _ => (HISTORY_START, HISTORY_START, None),
        };
        let (until, old_at_until) = match point.next {
            Some((at, span)) => (Some(at), span),
            None => (None, None),
        };
        Self {
            agent_id: point.agent_id,
            intervals_from,
            transitions_from,
            until,
            start,
            old_at_until,
        }
    }

    /// Whether `later` (starting no earlier) overlaps this stretch, so both must be one.
    fn touches(&self, later: &Stretch) -> bool {
        self.agent_id == later.agent_id && self.until.is_none_or(|until| later.intervals_from <= until)
    }

    /// This stretch, extended over `later`.
    fn absorb(&mut self, later: Stretch) {
        self.transitions_from = self.transitions_from.min(later.transitions_from);
        let later_reaches_further = match (self.until, later.until) {
            (Some(mine), Some(theirs)) => theirs > mine,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if later_reaches_further {
            self.until = later.until;
            self.old_at_until = later.old_at_until;
        }
    }

    /// The same start, to the end of the agent's history.
    fn to_the_end(&self) -> Self {
        Self {
            until: None,
            old_at_until: None,
            ..self.clone()
        }
    }

    fn intervals(&self) -> AgentStretch {
        (self.agent_id, self.intervals_from, self.until)
    }

    fn transitions(&self) -> AgentStretch {
        (self.agent_id, self.transitions_from, self.until)
    }
}

/// The stretches to re-derive, one per cluster of changed instants of each agent: the
/// stretches of the single points, sorted, with those that touch merged. Pure.
pub fn plan(points: &[ChangeNeighbourhood]) -> Vec<Stretch> {
    let mut single: Vec<Stretch> = points.iter().map(Stretch::around).collect();
    single.sort_by_key(|s| (s.agent_id, s.intervals_from, s.transitions_from));
    let mut merged: Vec<Stretch> = Vec::with_capacity(single.len());
    for stretch in single {
        match merged.last_mut() {
            Some(last) if last.touches(&stretch) => last.absorb(stretch),
            _ => merged.push(stretch),
        }
    }
    merged
}

/// A stretch re-derived: its closed intervals and the last one (state, start, end — None
/// while open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rederived {
    pub spans: Vec<StateSpan>,
    pub last: Option<(RoutingState, DateTime<Utc>, Option<DateTime<Utc>>)>,
}

/// Folds a stretch's transitions. None when the old log does not agree with them at the
/// stretch's end (its state there differs, or it has no interval there): the stretch must
/// then run to the end of the history. Pure.
pub fn rederive(stretch: &Stretch, transitions: Vec<StoredTransition>) -> Option<Rederived> {
    let (spans, now) = lifecycle::fold_routing(stretch.start, transitions);
    let last = match (stretch.until, now) {
        (None, now) => now.map(|(state, since)| (state, since, None)),
        (Some(_), Some((state, since))) => match stretch.old_at_until {
            Some((old_state, old_started, old_end))
                if old_state == state
                    && old_started >= stretch.intervals_from
                    && old_end.is_none_or(|end| end > since) =>
            {
                Some((state, since, old_end))
            }
            _ => return None,
        },
        (Some(_), None) => return None,
    };
    Some(Rederived { spans, last })
}

/// Every agent with a stretch that could not be closed where planned gets one stretch from
/// its first disagreeing stretch to the end of its history; the others are kept.
fn widen(stretches: &[Stretch], results: &[Option<Rederived>]) -> Vec<Stretch> {
    let mut out: Vec<Stretch> = Vec::with_capacity(stretches.len());
    let mut widened: Option<Uuid> = None;
    for (stretch, result) in stretches.iter().zip(results) {
        if widened == Some(stretch.agent_id) {
            continue;
        }
        if result.is_none() {
            // Earlier stretches of this agent stay as they are: they end before this one starts.
            out.push(stretch.to_the_end());
            widened = Some(stretch.agent_id);
        } else {
            out.push(stretch.clone());
        }
    }
    out
}

/// Loads each stretch's transitions and folds them.
async fn fold_stretches(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    stretches: &[Stretch],
) -> AppResult<Vec<Option<Rederived>>> {
    let ranges: Vec<AgentStretch> = stretches.iter().map(Stretch::transitions).collect();
    let mut found: Vec<Vec<StoredTransition>> = vec![Vec::new(); stretches.len()];
    for (index, at, external_id, state) in calls::routing_transitions_within(conn, tenant, &ranges).await? {
        let slot = found
            .get_mut(index)
            .ok_or_else(|| AppError::internal(format!("transition for unknown stretch {index}")))?;
        slot.push(StoredTransition { at, state, external_id });
    }
    Ok(stretches
        .iter()
        .zip(found)
        .map(|(stretch, transitions)| rederive(stretch, transitions))
        .collect())
}

/// Stores the batch's removed and added transitions, then re-derives the stretches of the
/// agents' logs they changed (see the module doc): those intervals are deleted, their time
/// taken out of the rollups, and the fold's written through the rollup writer; an agent's row
/// gets the state of its open interval when that changed (the latest by event time). Returns
/// the agents whose current state changed.
pub async fn apply(
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

    let points: Vec<(Uuid, DateTime<Utc>)> = transitions
        .iter()
        .flat_map(|(agent, t)| t.changed_instants().into_iter().map(move |at| (*agent, at)))
        .collect();
    let mut stretches = plan(&calls::change_neighbourhoods(conn, tenant, &points).await?);
    let mut results = fold_stretches(conn, tenant, &stretches).await?;
    if results.iter().any(Option::is_none) {
        stretches = widen(&stretches, &results);
        results = fold_stretches(conn, tenant, &stretches).await?;
    }

    let ranges: Vec<AgentStretch> = stretches.iter().map(Stretch::intervals).collect();
    let replaced = calls::take_routing_intervals(conn, tenant, &ranges).await?;
    let closed: Vec<NewStateInterval> = replaced
        .iter()
        .filter_map(|(agent_id, state, started_at, ended_at)| {
            ended_at.map(|end| routing_interval(*agent_id, *state, *started_at, Some(end)))
        })
        .collect();
    writer::remove_state_time(conn, tenant, &closed).await?;

    let mut intervals = Vec::new();
    let mut finals = Vec::new();
    for (stretch, result) in stretches.iter().zip(results) {
        // A stretch to the end of the history always folds (see `rederive`).
        let Rederived { spans, last } =
            result.ok_or_else(|| AppError::internal("a widened routing stretch did not fold"))?;
        let agent_id = stretch.agent_id;
        intervals.extend(
            spans
                .into_iter()
                .map(|span| routing_interval(agent_id, span.state, span.start, Some(span.end))),
        );
        if let Some((state, since, end)) = last {
            intervals.push(routing_interval(agent_id, state, since, end));
            if end.is_none() && current.get(&agent_id) != Some(&(state, since)) {
                finals.push((agent_id, state, since));
            }
        }
    }
    writer::insert_derived_state_intervals(conn, tenant, &intervals).await?;
    calls::set_agent_states(conn, tenant, &finals).await?;
    Ok(finals)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use chrono::TimeDelta;
    use RoutingState::{Idle, OnCall, Ringing, WrapUp};

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z").unwrap().to_utc() + TimeDelta::minutes(minute)
    }

    fn agent(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    fn point(
        agent_id: Uuid,
        minute: i64,
        before: Option<RoutingSpan>,
        next: Option<(i64, Option<RoutingSpan>)>,
    ) -> ChangeNeighbourhood {
        ChangeNeighbourhood {
            agent_id,
            at: at(minute),
            before,
            next: next.map(|(m, span)| (at(m), span)),
        }
    }

    fn span(state: RoutingState, from: i64, to: Option<i64>) -> Option<RoutingSpan> {
        Some((state, at(from), to.map(at)))
    }

    fn transition(minute: i64, state: RoutingState, call: &str) -> StoredTransition {
        StoredTransition {
            at: at(minute),
            state,
            external_id: call.to_owned(),
        }
    }

    #[test]
    fn changes_far_apart_are_separate_stretches() {
        // Log: IDLE 0–10, ON_CALL 10–20, IDLE 20–60, ON_CALL 60–70, IDLE 70–.
        // Changes at 30 (before: IDLE 20–60, next transition 60) and at 75 (last: to the end).
        let a = agent(1);
        let points = [
            point(a, 75, span(Idle, 70, None), None),
            point(a, 30, span(Idle, 20, Some(60)), Some((60, span(OnCall, 60, Some(70))))),
        ];
        let stretches = plan(&points);
        assert_eq!(stretches.len(), 2, "{stretches:?}");
        assert_eq!(
            (
                stretches[0].intervals_from,
                stretches[0].transitions_from,
                stretches[0].until
            ),
            (at(20), at(30), Some(at(60)))
        );
        assert_eq!(stretches[0].start, Some((Idle, at(20))));
        assert_eq!(stretches[0].old_at_until, span(OnCall, 60, Some(70)));
        assert_eq!((stretches[1].intervals_from, stretches[1].until), (at(70), None));
    }

    #[test]
    fn changes_whose_stretches_touch_are_merged() {
        let a = agent(1);
        let b = agent(2);
        let points = [
            // Agent a: a change at 30 whose next transition (60) is where the next stretch starts.
            point(a, 30, span(Idle, 20, Some(60)), Some((60, span(OnCall, 60, Some(70))))),
            point(
                a,
                65,
                span(OnCall, 60, Some(70)),
                Some((90, span(WrapUp, 90, Some(95)))),
            ),
            // Agent b: never merged with a.
            point(b, 31, span(Idle, 20, Some(60)), Some((60, span(Ringing, 60, Some(61))))),
        ];
        let stretches = plan(&points);
        assert_eq!(stretches.len(), 2, "{stretches:?}");
        let merged = &stretches[0];
        assert_eq!(merged.agent_id, a);
        assert_eq!(
            (merged.intervals_from, merged.transitions_from, merged.until),
            (at(20), at(30), Some(at(90)))
        );
        assert_eq!(merged.old_at_until, span(WrapUp, 90, Some(95)));
        assert_eq!(stretches[1].agent_id, b);
    }

    #[test]
    fn a_change_before_the_log_starts_from_the_history_start_and_swallows_later_ones() {
        let a = agent(1);
        let points = [
            point(a, 5, None, Some((10, span(Idle, 10, Some(20))))),
            point(a, 30, span(Idle, 10, Some(40)), None),
        ];
        let stretches = plan(&points);
        assert_eq!(stretches.len(), 1, "{stretches:?}");
        assert_eq!(
            (
                stretches[0].intervals_from,
                stretches[0].transitions_from,
                stretches[0].until,
                stretches[0].start
            ),
            (HISTORY_START, HISTORY_START, None, None)
        );
    }

    #[test]
    fn a_bounded_stretch_keeps_the_old_end_of_the_interval_at_its_bound() {
        // Before: IDLE 20–60 then ON_CALL 60–70. A call now rings the agent 30–35 (ringing,
        // then idle again at 35); the transition at 60 (ON_CALL) is unchanged.
        let stretch = Stretch {
            agent_id: agent(1),
            intervals_from: at(20),
            transitions_from: at(30),
            until: Some(at(60)),
            start: Some((Idle, at(20))),
            old_at_until: span(OnCall, 60, Some(70)),
        };
        let got = rederive(
            &stretch,
            vec![
                transition(60, OnCall, "b"),
                transition(30, Ringing, "a"),
                transition(35, Idle, "a"),
            ],
        )
        .unwrap();
        let spans: Vec<(RoutingState, DateTime<Utc>, DateTime<Utc>)> =
            got.spans.iter().map(|s| (s.state, s.start, s.end)).collect();
        assert_eq!(
            spans,
            vec![
                (Idle, at(20), at(30)),
                (Ringing, at(30), at(35)),
                (Idle, at(35), at(60))
            ]
        );
        assert_eq!(got.last, Some((OnCall, at(60), Some(at(70)))));
    }

    #[test]
    fn a_stretch_whose_bound_disagrees_with_the_old_log_is_widened() {
        let a = agent(1);
        let bounded = Stretch {
            agent_id: a,
            intervals_from: at(20),
            transitions_from: at(30),
            until: Some(at(60)),
            start: Some((Idle, at(20))),
            // The old log says WRAP_UP at 60, the transitions ON_CALL.
            old_at_until: span(WrapUp, 60, Some(70)),
        };
        assert_eq!(rederive(&bounded, vec![transition(60, OnCall, "b")]), None);
        let without_interval = Stretch {
            old_at_until: None,
            ..bounded.clone()
        };
        assert_eq!(rederive(&without_interval, vec![transition(60, OnCall, "b")]), None);

        let later = Stretch {
            intervals_from: at(80),
            transitions_from: at(85),
            until: Some(at(90)),
            ..bounded.clone()
        };
        let other = Stretch {
            agent_id: agent(2),
            ..bounded.clone()
        };
        let widened = widen(
            &[bounded.clone(), later, other.clone()],
            &[
                None,
                Some(Rederived {
                    spans: vec![],
                    last: None,
                }),
                None,
            ],
        );
        assert_eq!(widened, vec![bounded.to_the_end(), other.to_the_end()]);
    }

    #[test]
    fn a_merged_state_at_the_bound_starts_where_the_fold_says() {
        // Before: ON_CALL 20–40 (call x), IDLE 40–50, ON_CALL 50–70 (call y). The batch removes
        // x's IDLE at 40 (x now hands straight over to y): the ON_CALL intervals merge, and the
        // last one starts where the fold says (20) and keeps the old end (70).
        let stretch = Stretch {
            agent_id: agent(1),
            intervals_from: at(20),
            transitions_from: at(40),
            until: Some(at(50)),
            start: Some((OnCall, at(20))),
            old_at_until: span(OnCall, 50, Some(70)),
        };
        let got = rederive(&stretch, vec![transition(50, OnCall, "y")]).unwrap();
        assert!(got.spans.is_empty());
        assert_eq!(got.last, Some((OnCall, at(20), Some(at(70)))));
    }

    /// A model of the stored log, to check the stretches against a fold of everything.
    type Log = Vec<(RoutingState, DateTime<Utc>, Option<DateTime<Utc>>)>;

    fn full_log(transitions: &[StoredTransition]) -> Log {
        let (spans, now) = lifecycle::fold_routing(None, transitions.to_vec());
        let mut log: Log = spans.iter().map(|s| (s.state, s.start, Some(s.end))).collect();
        log.extend(now.map(|(state, since)| (state, since, None)));
        log
    }

    /// What `apply` does to one agent's log, with the database's reads done on the model.
    fn rederive_in_stretches(old_log: &Log, new: &[StoredTransition], changed: &BTreeSet<DateTime<Utc>>) -> Log {
        let latest = |pred: &dyn Fn(DateTime<Utc>) -> bool| {
            old_log
                .iter()
                .filter(|(_, start, _)| pred(*start))
                .max_by_key(|(_, start, _)| *start)
                .copied()
        };
        let points: Vec<ChangeNeighbourhood> = changed
            .iter()
            .map(|&c| {
                let next = new.iter().map(|t| t.at).filter(|at| *at > c).min();
                ChangeNeighbourhood {
                    agent_id: agent(1),
                    at: c,
                    before: latest(&|start| start < c),
                    next: next.map(|n| (n, latest(&|start| start <= n))),
                }
            })
            .collect();
        let within = |s: &Stretch| -> Vec<StoredTransition> {
            new.iter()
                .filter(|t| t.at >= s.transitions_from && s.until.is_none_or(|u| t.at <= u))
                .cloned()
                .collect()
        };
        let mut stretches = plan(&points);
        let mut results: Vec<Option<Rederived>> = stretches.iter().map(|s| rederive(s, within(s))).collect();
        if results.iter().any(Option::is_none) {
            stretches = widen(&stretches, &results);
            results = stretches.iter().map(|s| rederive(s, within(s))).collect();
        }
        let mut log: Log = old_log
            .iter()
            .filter(|(_, start, _)| {
                !stretches
                    .iter()
                    .any(|s| *start >= s.intervals_from && s.until.is_none_or(|u| *start <= u))
            })
            .copied()
            .collect();
        for result in results {
            let Rederived { spans, last } = result.unwrap();
            log.extend(spans.iter().map(|s| (s.state, s.start, Some(s.end))));
            log.extend(last);
        }
        log.sort_by_key(|(_, start, _)| *start);
        log
    }

    fn arb_state() -> impl Strategy<Value = RoutingState> {
        prop_oneof![Just(Idle), Just(Ringing), Just(OnCall), Just(WrapUp)]
    }

    /// (minute, call, state); one per (minute, call), as the table's key allows.
    fn arb_transitions() -> impl Strategy<Value = Vec<StoredTransition>> {
        proptest::collection::btree_map((0i64..120, 0u8..4), arb_state(), 0..40).prop_map(|m| {
            m.into_iter()
                .map(|((minute, call), state)| transition(minute, state, &format!("c{call}")))
                .collect()
        })
    }

    use proptest::prelude::*;

    proptest! {
        /// Re-deriving only the stretches around a batch's changes gives the log a fold of all
        /// the transitions gives, for any history and any batch of additions and removals.
        #[test]
        fn stretches_give_the_full_fold(
            old in arb_transitions(),
            removed_mask in proptest::collection::vec(any::<bool>(), 40),
            added in arb_transitions(),
        ) {
            let old_log = full_log(&old);
            let mut new: Vec<StoredTransition> = Vec::new();
            let mut changed = BTreeSet::new();
            for (t, remove) in old.iter().zip(removed_mask.iter().chain(std::iter::repeat(&false))) {
                if *remove {
                    changed.insert(t.at);
                } else {
                    new.push(t.clone());
                }
            }
            for t in added.iter().take(8) {
                if let Some(i) = new.iter().position(|n| n.at == t.at && n.external_id == t.external_id) {
                    new.remove(i);
                }
                changed.insert(t.at);
                new.push(t.clone());
            }
            prop_assume!(!changed.is_empty());
            prop_assert_eq!(rederive_in_stretches(&old_log, &new, &changed), full_log(&new));
        }
    }
}

//! The call lifecycle as a pure function of a call's events.
//!
//! An interaction is never updated field by field as events arrive. Every accepted event is
//! stored, and the interaction is recomputed from the whole set of its call's events:
//!
//! 1. [`canonical_set`] reduces the events to a set: one event per dedupe key (type, time,
//!    sequence number); two deliveries of one key with different content keep the smaller
//!    fingerprint, exactly as the `call_events` table does. The set is ordered by time, then
//!    by the lifecycle rank of the type (OFFERED before RINGING before ANSWERED …), then by
//!    sequence number — an order that does not depend on arrival.
//! 2. [`derive`] reads the interaction off that ordered set.
//!
//! Hence the same event delivered N times changes the interaction once, and events in any
//! order converge to the interaction of in-order delivery. A late event never moves a call
//! backwards: adding events never clears `answered_at`, `ended_at` or `wrap_ended_at`, and an
//! ended call never returns to IN_PROGRESS (property-tested below).
//!
//! The rules, in the order they are applied:
//! * attributes (direction, campaign, agent, customer number, answered-by) come from the
//!   latest event that carries them; without a direction the campaign's direction, else
//!   INBOUND; an outbound call an agent answered, with no answered-by, counts as HUMAN;
//! * `ended_at` is the first ENDED; `answered_at` the first ANSWERED or, for a completed call
//!   with a Twilio CallDuration and no ANSWERED, `ended_at − duration`; `offered_at` the first
//!   OFFERED, else the first event — and never after the answer or the end; an answer after
//!   the end is moved to the end; `wrap_ended_at` is the first WRAP_UP_ENDED, once ended;
//! * hold is the sum of HELD…RESUMED spans between answer and end (a hold still open at the
//!   end lasts until the end); talk = end − answer − hold; wait = answer − offer, or for an
//!   abandoned call end − offer; wrap = wrap end − end;
//! * outcome: IN_PROGRESS until ended; then ANSWERED when answered, else the end reason (BUSY,
//!   FAILED, NO_ANSWER) or, for a call that simply ended: ABANDONED when inbound or when a
//!   live person answered an outbound call no agent took (a drop), NO_ANSWER otherwise;
//! * the disposition is the latest WRAP_UP_ENDED or DISPOSITION_SET that names one; notes
//!   the latest that has some.
//!
//! Agents' routing state follows their calls ([`agent_timeline`]): RINGING when a call rings
//! for them, ON_CALL from the answer (or a transfer to them), WRAP_UP from the end, IDLE after
//! wrap-up (or when a call stops ringing for them, or they transfer it away). An agent's
//! routing intervals are in turn a pure function of the transitions of all its calls
//! ([`fold_routing`]: time order, whatever the arrival order), so a call delivered late takes
//! its place in the agent's history instead of being dropped as older than the current state.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

use crate::domain::{
    AnsweredBy, CallEvent, CallState, Direction, EndReason, EventKey, EventType, Outcome, RoutingState,
};

/// The events as a set: one per key (the smallest fingerprint), in the canonical order.
pub fn canonical_set<'a>(events: impl IntoIterator<Item = &'a CallEvent>) -> Vec<CallEvent> {
    let mut by_key: BTreeMap<EventKey, ([u8; 32], &CallEvent)> = BTreeMap::new();
    for event in events {
        let fingerprint = event.fingerprint();
        by_key
            .entry(event.key())
            .and_modify(|kept| {
                if fingerprint < kept.0 {
                    *kept = (fingerprint, event);
                }
            })
            .or_insert((fingerprint, event));
    }
    by_key.into_values().map(|(_, event)| event.clone()).collect()
}

fn ms(delta: TimeDelta) -> i64 {
    delta.num_milliseconds().max(0)
}

/// The interaction of a set of events (None when no telephony event is among them).
/// `campaign_direction` gives a campaign's direction, for calls whose events name none.
pub fn derive(events: &[CallEvent], campaign_direction: impl Fn(Uuid) -> Option<Direction>) -> Option<CallState> {
    let events = canonical_set(events);
    let timed: Vec<&CallEvent> = events
        .iter()
        .filter(|e| e.event_type != EventType::DispositionSet)
        .collect();
    let first_time = timed.first()?.occurred_at;
    let first_of = |t: EventType| timed.iter().copied().find(|e| e.event_type == t);

    let campaign_id = events.iter().rev().find_map(|e| e.campaign_id);
    let direction = events
        .iter()
        .rev()
        .find_map(|e| e.direction)
        .or_else(|| campaign_id.and_then(&campaign_direction))
        .unwrap_or(Direction::Inbound);
    let agent_id = events.iter().rev().find_map(|e| e.agent_id);
    let customer_number = events.iter().rev().find_map(|e| e.customer_number.clone());

    let end = first_of(EventType::Ended);
    let ended_at = end.map(|e| e.occurred_at);
    let implied_answer = end
        .filter(|e| matches!(e.end_reason, None | Some(EndReason::Completed)))
        .and_then(|e| {
            e.duration_ms
                .filter(|d| *d > 0)
                .map(|d| e.occurred_at - TimeDelta::milliseconds(d))
        });
    let mut answered_at = first_of(EventType::Answered).map(|e| e.occurred_at).or(implied_answer);
    let offered_candidate = first_of(EventType::Offered).map_or(first_time, |e| e.occurred_at);
    let offered_at = [Some(offered_candidate), answered_at, ended_at]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(first_time);
    if let (Some(answered), Some(ended)) = (answered_at, ended_at) {
        answered_at = Some(answered.min(ended));
    }
    let wrap_ended_at = ended_at.and_then(|ended| first_of(EventType::WrapUpEnded).map(|e| e.occurred_at.max(ended)));

    let mut hold_ms = 0;
    if let Some(answered) = answered_at {
        let mut held_since: Option<DateTime<Utc>> = None;
        for event in &timed {
            if ended_at.is_some_and(|end| event.occurred_at > end) {
                break;
            }
            match event.event_type {
                EventType::Held if held_since.is_none() => held_since = Some(event.occurred_at.max(answered)),
                EventType::Resumed => {
                    if let Some(since) = held_since.take() {
                        hold_ms += ms(event.occurred_at.max(since) - since);
                    }
                }
                _ => {}
            }
        }
        if let (Some(since), Some(end)) = (held_since, ended_at) {
            hold_ms += ms(end - since);
        }
    }

    let explicit_answered_by = events.iter().rev().find_map(|e| e.answered_by);
    let answered_by = explicit_answered_by.or_else(|| {
        (direction == Direction::Outbound && answered_at.is_some() && agent_id.is_some()).then_some(AnsweredBy::Human)
    });
    let outcome = match (ended_at, answered_at) {
        (None, _) => Outcome::InProgress,
        (Some(_), Some(_)) => Outcome::Answered,
        (Some(_), None) => match end.and_then(|e| e.end_reason) {
            Some(EndReason::Busy) => Outcome::Busy,
            Some(EndReason::Failed) => Outcome::Failed,
            Some(EndReason::NoAnswer) => Outcome::NoAnswer,
            _ if direction == Direction::Inbound || answered_by == Some(AnsweredBy::Human) => Outcome::Abandoned,
            _ => Outcome::NoAnswer,
        },
    };
    let wait_ms = match (answered_at, ended_at) {
        (Some(answered), _) => Some(ms(answered - offered_at)),
        (None, Some(ended)) if outcome == Outcome::Abandoned => Some(ms(ended - offered_at)),
        _ => None,
    };
    let talk_ms = match (answered_at, ended_at) {
        (Some(answered), Some(ended)) => (ms(ended - answered) - hold_ms).max(0),
        _ => 0,
    };
    let wrap_ms = match (ended_at, wrap_ended_at) {
        (Some(ended), Some(wrap_ended)) => ms(wrap_ended - ended),
        _ => 0,
    };
    let disposition_id = events
        .iter()
        .rev()
        .filter(|e| matches!(e.event_type, EventType::WrapUpEnded | EventType::DispositionSet))
        .find_map(|e| e.disposition_id);
    let notes = events.iter().rev().find_map(|e| e.notes.clone());
    let last_event_sequence = events.iter().filter_map(|e| e.sequence).max();

    Some(CallState {
        direction,
        campaign_id,
        agent_id,
        customer_number,
        offered_at,
        answered_at,
        ended_at,
        wrap_ended_at,
        wait_ms,
        talk_ms,
        hold_ms,
        wrap_ms,
        outcome,
        disposition_id,
        answered_by,
        notes,
        last_event_sequence,
    })
}

/// One change of an agent's routing state caused by a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Transition {
    pub agent_id: Uuid,
    pub at: DateTime<Utc>,
    pub state: RoutingState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Waiting,
    Ringing,
    Connected,
    EndedUnanswered,
    EndedAnswered,
    Done,
}

/// The routing-state changes a call causes to its agents, in time order. At most one change
/// per agent and instant (the last one), and never a change to the state the agent is in.
pub fn agent_timeline(events: &[CallEvent]) -> Vec<Transition> {
    let events = canonical_set(events);
    let mut out: Vec<Transition> = Vec::new();
    let mut push = |agent_id: Uuid, at: DateTime<Utc>, state: RoutingState| {
        let last = out.iter().rposition(|t| t.agent_id == agent_id);
        match last {
            Some(i) if out[i].at == at => {
                out.remove(i);
                let previous = out.iter().rev().find(|t| t.agent_id == agent_id).map(|t| t.state);
                if previous != Some(state) {
                    out.push(Transition { agent_id, at, state });
                }
            }
            Some(i) if out[i].state == state => {}
            _ => out.push(Transition { agent_id, at, state }),
        }
    };
    let mut owner: Option<Uuid> = None;
    let mut phase = Phase::Waiting;
    for e in events.iter().filter(|e| e.event_type != EventType::DispositionSet) {
        let at = e.occurred_at;
        match (e.event_type, phase) {
            (EventType::Ringing, Phase::Waiting | Phase::Ringing) => {
                if let Some(agent) = e.agent_id {
                    if let Some(previous) = owner.filter(|p| *p != agent) {
                        push(previous, at, RoutingState::Idle);
                    }
                    push(agent, at, RoutingState::Ringing);
                    owner = Some(agent);
                }
                phase = Phase::Ringing;
            }
            (EventType::Answered, Phase::Waiting | Phase::Ringing) => {
                let agent = e.agent_id.or(owner);
                if let Some(previous) = owner.filter(|p| Some(*p) != agent) {
                    push(previous, at, RoutingState::Idle);
                }
                if let Some(agent) = agent {
                    push(agent, at, RoutingState::OnCall);
                }
                owner = agent;
                phase = Phase::Connected;
            }
            (EventType::Transferred, Phase::Ringing | Phase::Connected) if e.agent_id != owner => {
                if let Some(previous) = owner {
                    push(previous, at, RoutingState::Idle);
                }
                if let Some(target) = e.agent_id {
                    let state = if phase == Phase::Connected {
                        RoutingState::OnCall
                    } else {
                        RoutingState::Ringing
                    };
                    push(target, at, state);
                }
                owner = e.agent_id;
            }
            (EventType::Ended, Phase::Waiting | Phase::Ringing) => {
                if let Some(agent) = owner {
                    push(agent, at, RoutingState::Idle);
                }
                phase = Phase::EndedUnanswered;
            }
            (EventType::Ended, Phase::Connected) => {
                owner = owner.or(e.agent_id);
                if let Some(agent) = owner {
                    push(agent, at, RoutingState::WrapUp);
                }
                phase = Phase::EndedAnswered;
            }
            (EventType::WrapUpEnded, Phase::EndedAnswered) => {
                if let Some(agent) = owner {
                    push(agent, at, RoutingState::Idle);
                }
                phase = Phase::Done;
            }
            _ => {}
        }
    }
    out
}

/// What re-deriving a call changed in its agents' timeline: the transitions it no longer has
/// (`removed`) and those it has newly (`added`). Re-deriving an unchanged call changes nothing;
/// a late event can both add a transition and take one away (a RINGING → IDLE that becomes a
/// RINGING → ON_CALL when the answer arrives after the hang-up).
pub fn transition_changes(before: &[Transition], after: &[Transition]) -> (Vec<Transition>, Vec<Transition>) {
    let removed = before.iter().filter(|t| !after.contains(t)).copied().collect();
    let added = after.iter().filter(|t| !before.contains(t)).copied().collect();
    (removed, added)
}

/// A closed interval of one routing state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateSpan {
    pub state: RoutingState,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// One agent's routing transition as stored, with the call that caused it (`""` for one no
/// call explains: the start of an interval written directly, or the agent's initial state).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTransition {
    pub at: DateTime<Utc>,
    pub state: RoutingState,
    pub external_id: String,
}

/// The order in which transitions of one agent at the same instant apply: what ends before
/// what begins (IDLE, then WRAP_UP, then RINGING, then ON_CALL), then by call, so that the
/// result never depends on arrival order.
fn same_instant_rank(state: RoutingState) -> u8 {
    match state {
        RoutingState::Idle => 0,
        RoutingState::WrapUp => 1,
        RoutingState::Ringing => 2,
        RoutingState::OnCall => 3,
    }
}

/// An agent's routing intervals as a function of its transitions, whatever order they come
/// in: sorted by time (ties by [`same_instant_rank`], then call), each one that changes the
/// state ends the current interval and opens the next. `start` is the state in force at the
/// first instant to fold from (None: the agent has no state before its first transition).
/// Returns the closed intervals and the current state with its start — the latest by event
/// time, since every transition is applied in time order.
pub fn fold_routing(
    start: Option<(RoutingState, DateTime<Utc>)>,
    mut transitions: Vec<StoredTransition>,
) -> (Vec<StateSpan>, Option<(RoutingState, DateTime<Utc>)>) {
    transitions.sort_by(|a, b| {
        (a.at, same_instant_rank(a.state), &a.external_id).cmp(&(b.at, same_instant_rank(b.state), &b.external_id))
    });
    let mut spans = Vec::new();
    let mut current = start;
    for t in transitions {
        match current {
            Some((state, _)) if state == t.state => {}
            Some((state, since)) => {
                if t.at > since {
                    spans.push(StateSpan {
                        state,
                        start: since,
                        end: t.at,
                    });
                }
                current = Some((t.state, t.at.max(since)));
            }
            None => current = Some((t.state, t.at)),
        }
    }
    (spans, current)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::domain::Source;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-02T10:00:00Z").unwrap().to_utc()
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        t0() + TimeDelta::seconds(seconds)
    }

    fn ev(event_type: EventType, seconds: i64) -> CallEvent {
        CallEvent::new(event_type, at(seconds), Source::Api)
    }

    fn with_agent(mut e: CallEvent, agent: Uuid) -> CallEvent {
        e.agent_id = Some(agent);
        e
    }

    fn no_campaigns(_: Uuid) -> Option<Direction> {
        None
    }

    fn agent(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    #[test]
    fn an_answered_call_with_hold_and_wrap_up() {
        let a = agent(1);
        let events = vec![
            ev(EventType::Offered, 0),
            with_agent(ev(EventType::Ringing, 10), a),
            with_agent(ev(EventType::Answered, 15), a),
            ev(EventType::Held, 40),
            ev(EventType::Resumed, 70),
            ev(EventType::Ended, 135),
            ev(EventType::WrapUpEnded, 165),
        ];
        let call = derive(&events, no_campaigns).unwrap();
        assert_eq!(call.outcome, Outcome::Answered);
        assert_eq!(call.offered_at, at(0));
        assert_eq!(call.wait_ms, Some(15_000));
        assert_eq!(call.hold_ms, 30_000);
        assert_eq!(call.talk_ms, 90_000);
        assert_eq!(call.wrap_ms, 30_000);
        assert_eq!(call.agent_id, Some(a));
        assert_eq!(call.direction, Direction::Inbound);
        let facts = crate::kpi::facts::CallFacts::from(&call);
        assert_eq!(facts.talk_ms + facts.hold_ms, (at(135) - at(15)).num_milliseconds());
        let timeline: Vec<(i64, RoutingState)> = agent_timeline(&events)
            .iter()
            .map(|t| ((t.at - t0()).num_seconds(), t.state))
            .collect();
        assert_eq!(
            timeline,
            vec![
                (10, RoutingState::Ringing),
                (15, RoutingState::OnCall),
                (135, RoutingState::WrapUp),
                (165, RoutingState::Idle)
            ]
        );
    }

    #[test]
    fn an_inbound_call_that_ends_unanswered_is_abandoned_with_its_wait() {
        let call = derive(&[ev(EventType::Offered, 0), ev(EventType::Ended, 42)], no_campaigns).unwrap();
        assert_eq!(call.outcome, Outcome::Abandoned);
        assert_eq!(call.wait_ms, Some(42_000));
        assert_eq!(call.talk_ms, 0);
    }

    #[test]
    fn outbound_outcomes_follow_the_end_reason_and_who_answered() {
        let outbound = |mut e: CallEvent| {
            e.direction = Some(Direction::Outbound);
            e
        };
        let mut busy = ev(EventType::Ended, 5);
        busy.end_reason = Some(EndReason::Busy);
        assert_eq!(
            derive(&[outbound(ev(EventType::Offered, 0)), busy], no_campaigns)
                .unwrap()
                .outcome,
            Outcome::Busy
        );
        let plain = derive(
            &[outbound(ev(EventType::Offered, 0)), ev(EventType::Ended, 20)],
            no_campaigns,
        )
        .unwrap();
        assert_eq!((plain.outcome, plain.wait_ms), (Outcome::NoAnswer, None));
        let mut drop = ev(EventType::Ended, 3);
        drop.answered_by = Some(AnsweredBy::Human);
        let dropped = derive(&[outbound(ev(EventType::Offered, 0)), drop], no_campaigns).unwrap();
        assert_eq!((dropped.outcome, dropped.wait_ms), (Outcome::Abandoned, Some(3_000)));
        let mut machine = ev(EventType::Answered, 2);
        machine.answered_by = Some(AnsweredBy::Machine);
        let machine = derive(
            &[outbound(ev(EventType::Offered, 0)), machine, ev(EventType::Ended, 9)],
            no_campaigns,
        )
        .unwrap();
        assert_eq!(
            (machine.outcome, machine.answered_by),
            (Outcome::Answered, Some(AnsweredBy::Machine))
        );
        // An agent answered an outbound call: a live person, unless said otherwise.
        let live = derive(
            &[
                outbound(ev(EventType::Offered, 0)),
                with_agent(ev(EventType::Answered, 1), agent(2)),
            ],
            no_campaigns,
        )
        .unwrap();
        assert_eq!(
            (live.outcome, live.answered_by),
            (Outcome::InProgress, Some(AnsweredBy::Human))
        );
    }

    #[test]
    fn a_completed_twilio_call_without_in_progress_is_answered_by_its_duration() {
        let mut end = ev(EventType::Ended, 100);
        end.end_reason = Some(EndReason::Completed);
        end.duration_ms = Some(60_000);
        let call = derive(&[ev(EventType::Offered, 0), end], no_campaigns).unwrap();
        assert_eq!(call.outcome, Outcome::Answered);
        assert_eq!(call.answered_at, Some(at(40)));
        assert_eq!((call.wait_ms, call.talk_ms), (Some(40_000), 60_000));
    }

    #[test]
    fn inconsistent_times_are_clamped_into_a_valid_row() {
        // Answer after the end, wrap-up before the end, offer after the answer.
        let events = [
            ev(EventType::Offered, 50),
            ev(EventType::Answered, 40),
            ev(EventType::Ended, 30),
            ev(EventType::WrapUpEnded, 20),
        ];
        let call = derive(&events, no_campaigns).unwrap();
        assert!(call.offered_at <= call.answered_at.unwrap());
        assert!(call.answered_at <= call.ended_at);
        assert!(call.ended_at <= call.wrap_ended_at);
        assert_eq!((call.talk_ms, call.wrap_ms), (0, 0));
    }

    #[test]
    fn direction_falls_back_to_the_campaign() {
        let campaign = Uuid::from_bytes([7; 16]);
        let mut offered = ev(EventType::Offered, 0);
        offered.campaign_id = Some(campaign);
        let call = derive(&[offered], |c| (c == campaign).then_some(Direction::Outbound)).unwrap();
        assert_eq!(call.direction, Direction::Outbound);
    }

    #[test]
    fn the_latest_disposition_wins_and_a_disposition_alone_makes_no_call() {
        let (d1, d2) = (Uuid::from_bytes([1; 16]), Uuid::from_bytes([2; 16]));
        let mut wrap = ev(EventType::WrapUpEnded, 60);
        wrap.disposition_id = Some(d1);
        let mut set = ev(EventType::DispositionSet, 500);
        set.disposition_id = Some(d2);
        set.notes = Some("callback on Friday".into());
        set.source = Source::User;
        let base = [
            ev(EventType::Offered, 0),
            ev(EventType::Answered, 5),
            ev(EventType::Ended, 30),
        ];
        let mut events = base.to_vec();
        events.push(wrap.clone());
        assert_eq!(derive(&events, no_campaigns).unwrap().disposition_id, Some(d1));
        events.push(set.clone());
        let call = derive(&events, no_campaigns).unwrap();
        assert_eq!(
            (call.disposition_id, call.notes.as_deref()),
            (Some(d2), Some("callback on Friday"))
        );
        assert_eq!(call.wrap_ended_at, Some(at(60)), "a disposition does not move wrap-up");
        assert!(derive(&[set], no_campaigns).is_none());
    }

    #[test]
    fn a_hold_open_at_the_end_lasts_until_the_end() {
        let events = [
            ev(EventType::Answered, 0),
            ev(EventType::Held, 10),
            ev(EventType::Held, 12),
            ev(EventType::Ended, 30),
        ];
        let call = derive(&events, no_campaigns).unwrap();
        assert_eq!((call.hold_ms, call.talk_ms), (20_000, 10_000));
    }

    #[test]
    fn same_key_different_content_keeps_the_smaller_fingerprint_in_any_order() {
        let mut a = ev(EventType::Offered, 0);
        a.customer_number = Some("+441111".into());
        let mut b = ev(EventType::Offered, 0);
        b.customer_number = Some("+442222".into());
        let one = canonical_set([&a, &b]);
        let other = canonical_set([&b, &a]);
        assert_eq!(one, other);
        assert_eq!(one.len(), 1);
        let expected = if a.fingerprint() < b.fingerprint() { &a } else { &b };
        assert_eq!(&one[0], expected);
    }

    #[test]
    fn transfers_move_the_call_between_agents() {
        let (a, b) = (agent(1), agent(2));
        let events = [
            with_agent(ev(EventType::Ringing, 0), a),
            with_agent(ev(EventType::Answered, 5), a),
            with_agent(ev(EventType::Transferred, 50), b),
            ev(EventType::Ended, 80),
            ev(EventType::WrapUpEnded, 90),
        ];
        let timeline = agent_timeline(&events);
        let of = |x: Uuid| {
            timeline
                .iter()
                .filter(|t| t.agent_id == x)
                .map(|t| t.state)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            of(a),
            vec![RoutingState::Ringing, RoutingState::OnCall, RoutingState::Idle]
        );
        assert_eq!(
            of(b),
            vec![RoutingState::OnCall, RoutingState::WrapUp, RoutingState::Idle]
        );
        assert_eq!(derive(&events, no_campaigns).unwrap().agent_id, Some(b));
    }

    #[test]
    fn same_instant_changes_collapse_to_the_last() {
        let a = agent(1);
        let events = [
            with_agent(ev(EventType::Answered, 5), a),
            ev(EventType::Ended, 9),
            ev(EventType::WrapUpEnded, 9),
        ];
        let states: Vec<RoutingState> = agent_timeline(&events).iter().map(|t| t.state).collect();
        assert_eq!(states, vec![RoutingState::OnCall, RoutingState::Idle]);
    }

    fn stored(seconds: i64, state: RoutingState, call: &str) -> StoredTransition {
        StoredTransition {
            at: at(seconds),
            state,
            external_id: call.to_owned(),
        }
    }

    #[test]
    fn routing_is_a_fold_of_the_transitions_in_time_order() {
        let idle = RoutingState::Idle;
        let transitions = vec![
            stored(10, RoutingState::Ringing, "B"),
            stored(15, RoutingState::OnCall, "B"),
            // Late: delivered after the others, it still lands where it happened.
            stored(5, RoutingState::WrapUp, "A"),
        ];
        let (spans, current) = fold_routing(Some((idle, at(0))), transitions.clone());
        assert_eq!(current, Some((RoutingState::OnCall, at(15))));
        let span = |state, s, e| StateSpan {
            state,
            start: at(s),
            end: at(e),
        };
        assert_eq!(
            spans,
            vec![
                span(idle, 0, 5),
                span(RoutingState::WrapUp, 5, 10),
                span(RoutingState::Ringing, 10, 15)
            ]
        );
        // Any order gives the same; a transition to the state in force changes nothing.
        let mut reversed = transitions.clone();
        reversed.reverse();
        reversed.push(stored(16, RoutingState::OnCall, "C"));
        assert_eq!(fold_routing(Some((idle, at(0))), reversed), (spans, current));
        // Without a state before, the log starts at the first transition.
        let (spans, current) = fold_routing(None, transitions);
        assert_eq!(spans[0], span(RoutingState::WrapUp, 5, 10));
        assert_eq!(current, Some((RoutingState::OnCall, at(15))));
    }

    #[test]
    fn at_one_instant_what_ends_comes_before_what_begins() {
        // Call A's wrap-up ends as call B rings: the agent rings, whichever call sorts first.
        for (ending, ringing) in [("A", "B"), ("B", "A")] {
            let (_, current) = fold_routing(
                Some((RoutingState::WrapUp, at(0))),
                vec![
                    stored(10, RoutingState::Ringing, ringing),
                    stored(10, RoutingState::Idle, ending),
                ],
            );
            assert_eq!(current, Some((RoutingState::Ringing, at(10))));
        }
    }

    /// A random call: its events in lifecycle order.
    #[derive(Debug, Clone)]
    struct Scenario {
        events: Vec<CallEvent>,
    }

    fn scenario() -> impl Strategy<Value = Scenario> {
        (
            0i64..3_000,                            // offer
            prop::option::of(0u8..3),               // ringing agent
            0u8..5,                                 // how far it got: offered, ringing, answered, ended, wrapped
            prop::option::of((1i64..60, 1i64..60)), // a hold (start after answer, length)
            prop::option::of(0u8..3),               // transfer target
            any::<bool>(),                          // outbound
            prop::option::of(0u8..4),               // end reason
            prop::option::of(any::<bool>()),        // answered by human / machine
            (1i64..120, 1i64..600, 1i64..200),      // ring, talk, wrap
            any::<bool>(),                          // with sequence numbers
        )
            .prop_map(
                |(offer, ring_agent, reach, hold, transfer, outbound, reason, human, (ring, talk, wrap), seq)| {
                    let mut events = Vec::new();
                    let mut t = offer;
                    let add = |events: &mut Vec<CallEvent>, mut e: CallEvent| {
                        if seq {
                            e.sequence = Some(events.len() as i64);
                        }
                        events.push(e);
                    };
                    let mut offered = ev(EventType::Offered, t);
                    offered.direction = Some(if outbound {
                        Direction::Outbound
                    } else {
                        Direction::Inbound
                    });
                    offered.customer_number = Some(format!("+4470{offer:08}"));
                    add(&mut events, offered);
                    if reach >= 1 {
                        t += ring / 2;
                        let mut ringing = ev(EventType::Ringing, t);
                        ringing.agent_id = ring_agent.map(agent);
                        add(&mut events, ringing);
                    }
                    if reach >= 2 {
                        t += ring / 2 + 1;
                        let mut answered = ev(EventType::Answered, t);
                        answered.agent_id = ring_agent.map(agent);
                        answered.answered_by = human.map(|h| if h { AnsweredBy::Human } else { AnsweredBy::Machine });
                        add(&mut events, answered);
                        if let Some((start, length)) = hold {
                            add(&mut events, ev(EventType::Held, t + start));
                            add(&mut events, ev(EventType::Resumed, t + start + length));
                        }
                        if let Some(target) = transfer {
                            add(
                                &mut events,
                                with_agent(ev(EventType::Transferred, t + talk / 2), agent(target)),
                            );
                        }
                    }
                    if reach >= 3 {
                        t += talk + 130;
                        let mut ended = ev(EventType::Ended, t);
                        ended.end_reason = reason.map(|r| EndReason::ALL[usize::from(r)]);
                        if reach == 3 && human == Some(true) {
                            ended.answered_by = Some(AnsweredBy::Human);
                        }
                        add(&mut events, ended);
                    }
                    if reach >= 4 {
                        let mut wrapped = ev(EventType::WrapUpEnded, t + wrap);
                        wrapped.disposition_id = Some(Uuid::from_bytes([9; 16]));
                        add(&mut events, wrapped);
                    }
                    Scenario { events }
                },
            )
    }

    /// The scenario's events shuffled, with some repeated and one conflicting copy.
    fn delivery() -> impl Strategy<Value = (Scenario, Vec<CallEvent>)> {
        scenario().prop_flat_map(|s| {
            let n = s.events.len();
            (
                Just(s),
                prop::collection::vec(0..n, 0..8),
                any::<prop::sample::Index>(),
                any::<u64>(),
            )
                .prop_flat_map(|(s, repeats, conflict, salt)| {
                    let mut delivered = s.events.clone();
                    for i in repeats {
                        delivered.push(s.events[i].clone());
                    }
                    let mut variant = conflict.get(&s.events).clone();
                    variant.customer_number = Some(format!("+1555{salt:08}"));
                    delivered.push(variant);
                    (Just(s), Just(delivered).prop_shuffle())
                })
        })
    }

    fn with_conflict_resolved(s: &Scenario, delivered: &[CallEvent]) -> Vec<CallEvent> {
        // In-order delivery of the same set of events (the conflicting copy included).
        let mut in_order = s.events.clone();
        in_order.extend(delivered.iter().filter(|e| !s.events.contains(e)).cloned());
        in_order
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_order_and_repetition_converges_to_in_order_delivery((s, delivered) in delivery()) {
            let in_order = with_conflict_resolved(&s, &delivered);
            prop_assert_eq!(derive(&delivered, no_campaigns), derive(&in_order, no_campaigns));
            prop_assert_eq!(agent_timeline(&delivered), agent_timeline(&in_order));
        }

        #[test]
        fn derived_rows_are_always_consistent((_s, delivered) in delivery(), cut in 1usize..16) {
            let prefix = &delivered[..cut.min(delivered.len())];
            if let Some(call) = derive(prefix, no_campaigns) {
                if let Some(answered) = call.answered_at {
                    prop_assert!(call.offered_at <= answered);
                    prop_assert_eq!(call.wait_ms, Some((answered - call.offered_at).num_milliseconds()));
                }
                if let Some(ended) = call.ended_at {
                    prop_assert!(call.offered_at <= ended);
                    if let Some(answered) = call.answered_at {
                        prop_assert!(answered <= ended);
                        prop_assert_eq!(call.talk_ms + call.hold_ms, (ended - answered).num_milliseconds());
                    }
                } else {
                    prop_assert_eq!(call.outcome, Outcome::InProgress);
                    prop_assert!(call.wrap_ended_at.is_none());
                }
                if let (Some(ended), Some(wrap_ended)) = (call.ended_at, call.wrap_ended_at) {
                    prop_assert_eq!(call.wrap_ms, (wrap_ended - ended).num_milliseconds());
                }
                prop_assert!(call.talk_ms >= 0 && call.hold_ms >= 0 && call.wrap_ms >= 0);
            }
        }

        #[test]
        fn a_late_event_never_moves_a_call_backwards((_s, delivered) in delivery(), cut in 1usize..16) {
            let cut = cut.min(delivered.len());
            let (Some(before), Some(after)) = (derive(&delivered[..cut], no_campaigns), derive(&delivered, no_campaigns)) else {
                return Ok(());
            };
            prop_assert!(before.answered_at.is_none() || after.answered_at.is_some());
            prop_assert!(before.ended_at.is_none() || after.ended_at.is_some());
            prop_assert!(before.wrap_ended_at.is_none() || after.wrap_ended_at.is_some());
            prop_assert!(before.outcome == Outcome::InProgress || after.outcome != Outcome::InProgress);
            prop_assert!(after.offered_at <= before.offered_at);
        }

        #[test]
        fn re_deriving_keeps_the_stored_transitions_equal_to_the_timeline((_s, delivered) in delivery()) {
            // Feeding the events one at a time (in any delivered order) and applying each
            // step's removed and added transitions to a stored set, the set ends equal to the
            // timeline of all the events; repeating the last event changes nothing.
            let mut seen: Vec<CallEvent> = Vec::new();
            let mut stored: Vec<Transition> = Vec::new();
            for e in &delivered {
                let before = agent_timeline(&seen);
                seen.push(e.clone());
                let (removed, added) = transition_changes(&before, &agent_timeline(&seen));
                stored.retain(|t| !removed.contains(t));
                stored.extend(added);
            }
            let (removed, added) = transition_changes(&agent_timeline(&seen), &agent_timeline(&seen));
            prop_assert!(removed.is_empty() && added.is_empty());
            let mut want = agent_timeline(&seen);
            let key = |t: &Transition| (t.agent_id, t.at, same_instant_rank(t.state));
            want.sort_by_key(key);
            stored.sort_by_key(key);
            prop_assert_eq!(stored, want);
        }
    }
}

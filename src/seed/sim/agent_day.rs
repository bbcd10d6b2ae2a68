//! One agent's day — shift, breaks, the calls they take — and the scheduler that finds the agent
//! free first. The state log is derived from the same calls, so that it can never disagree with
//! them.
//!
//! The invariant everything rests on: an agent's `free_at` only moves forward, and every call
//! and every break starts at or after it, so an agent's calls and breaks never overlap.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use rand::Rng;
use uuid::Uuid;

use super::curves::local_time;
use crate::db::contact_centre::NewStateInterval;
use crate::domain::{AgentState, Direction, Presence, RoutingState};

/// A shift: its local start (minutes since midnight) and its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shift {
    pub start_minute: u32,
    pub length: TimeDelta,
}

/// A break of every shift: `after` the shift start, plus up to `jitter_minutes` (drawn per
/// agent and day); taken late when a call runs over it.
#[derive(Clone, Copy, Debug)]
pub struct BreakRule {
    pub state: Presence,
    pub after: TimeDelta,
    pub jitter_minutes: i64,
    pub length: TimeDelta,
}

/// A 15-minute break two hours into the shift (give or take half an hour).
pub const MORNING_BREAK: BreakRule = BreakRule {
    state: Presence::Break,
    after: TimeDelta::hours(2),
    jitter_minutes: 30,
    length: TimeDelta::minutes(15),
};
/// A 30-minute lunch four hours into the shift (give or take half an hour).
pub const LUNCH: BreakRule = BreakRule {
    state: Presence::Lunch,
    after: TimeDelta::hours(4),
    jitter_minutes: 30,
    length: TimeDelta::minutes(30),
};
/// A 15-minute break six hours into the shift (give or take twenty minutes).
pub const AFTERNOON_BREAK: BreakRule = BreakRule {
    state: Presence::Break,
    after: TimeDelta::hours(6),
    jitter_minutes: 20,
    length: TimeDelta::minutes(15),
};

#[derive(Clone, Copy, Debug)]
struct PlannedBreak {
    state: Presence,
    at: DateTime<Utc>,
    length: TimeDelta,
}

/// A call as the agent lives it: answer, hang-up, end of wrap-up.
#[derive(Clone, Copy, Debug)]
pub(super) struct AgentCall {
    pub answered: DateTime<Utc>,
    pub ended: DateTime<Utc>,
    pub wrap_ended: DateTime<Utc>,
}

/// One agent's day.
pub(super) struct AgentDay {
    pub id: Uuid,
    pub pool: Direction,
    shift_start: DateTime<Utc>,
    pub shift_end: DateTime<Utc>,
    /// Breaks not taken yet, in order.
    pending: VecDeque<PlannedBreak>,
    taken: Vec<(Presence, DateTime<Utc>, DateTime<Utc>)>,
    calls: Vec<AgentCall>,
    pub free_at: DateTime<Utc>,
}

impl AgentDay {
    /// The agent's day on `date`, or `None` when the shift has not started by `now` (or its
    /// start does not exist on the local clock). The break jitter is drawn first, so that a
    /// full day's random stream does not depend on `now`.
    pub fn new(
        id: Uuid,
        pool: Direction,
        shift: Shift,
        breaks: &[BreakRule],
        (tz, date, now): (&Tz, NaiveDate, DateTime<Utc>),
        rng: &mut StdRng,
    ) -> Option<Self> {
        let jitter: Vec<i64> = breaks.iter().map(|b| rng.gen_range(0..=b.jitter_minutes)).collect();
        let shift_start = local_time(tz, date, shift.start_minute)?;
        if shift_start >= now {
            return None;
        }
        let pending = breaks
            .iter()
            .zip(jitter)
            .map(|(b, jitter)| PlannedBreak {
                state: b.state,
                at: shift_start + b.after + TimeDelta::minutes(jitter),
                length: b.length,
            })
            .collect();
        Some(Self {
            id,
            pool,
            shift_start,
            shift_end: shift_start + shift.length,
            pending,
            taken: Vec::new(),
            calls: Vec::new(),
            free_at: shift_start,
        })
    }

    /// Takes the breaks that fall due before the agent could start something at `t`.
    pub fn take_breaks_due(&mut self, t: DateTime<Utc>) {
        while let Some(b) = self.pending.front().copied() {
            if t.max(self.free_at) < b.at {
                break;
            }
            let start = self.free_at.max(b.at);
            self.taken.push((b.state, start, start + b.length));
            self.free_at = start + b.length;
            self.pending.pop_front();
        }
    }

    /// Records a call answered at or after `free_at` (the scheduler only offers such starts).
    pub fn take_call(&mut self, call: AgentCall) {
        self.free_at = call.wrap_ended;
        self.calls.push(call);
    }

    /// The day's state log, cut at `now`. PRESENCE: AVAILABLE around the breaks taken, from the
    /// shift start until the shift ends or the last call is wrapped up. ROUTING: ON_CALL (answer
    /// to hang-up) and WRAP_UP per call, and IDLE between them when `log_idle`.
    pub fn into_intervals(mut self, now: DateTime<Utc>, log_idle: bool, out: &mut Vec<NewStateInterval>) {
        // Breaks still due are taken unless they no longer fit into the shift.
        while let Some(b) = self.pending.pop_front() {
            let start = self.free_at.max(b.at);
            if start + b.length > self.shift_end {
                break;
            }
            self.taken.push((b.state, start, start + b.length));
            self.free_at = start + b.length;
        }
        let day_end = self.shift_end.max(self.free_at);
        let id = self.id;
        let mut push = |state: AgentState, start: DateTime<Utc>, end: DateTime<Utc>| {
            let end = end.min(now);
            if start < end {
                out.push(NewStateInterval {
                    agent_id: id,
                    state,
                    reason: None,
                    started_at: start,
                    ended_at: Some(end),
                });
            }
        };
        let mut cursor = self.shift_start;
        for &(state, start, end) in &self.taken {
            push(AgentState::Presence(Presence::Available), cursor, start);
            push(AgentState::Presence(state), start, end);
            cursor = end;
        }
        push(AgentState::Presence(Presence::Available), cursor, day_end);

        let idle = AgentState::Routing(RoutingState::Idle);
        let mut cursor = self.shift_start;
        for call in &self.calls {
            if log_idle {
                push(idle, cursor, call.answered);
            }
            push(AgentState::Routing(RoutingState::OnCall), call.answered, call.ended);
            push(AgentState::Routing(RoutingState::WrapUp), call.ended, call.wrap_ended);
            cursor = call.wrap_ended;
        }
        if log_idle {
            push(idle, cursor, day_end);
        }
    }
}

/// When a call of one pool's direction may go to an agent of the other pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Never (the demo's dialler connects its live parties to sales agents only).
    Never,
    /// Only when the home pool has nobody left on shift today.
    WhenPoolEmpty,
    /// When an agent of the other pool can answer sooner than any of the home pool by more
    /// than this (so the other team helps at peaks without doing the home team's work).
    After(TimeDelta),
}

/// The agents of one pool by the time they are next free. Keys are lower bounds of that time
/// (breaks are applied lazily), so the agent popped with an exact key can start first; ties go
/// to the agent free the longest, then to the first on the roster.
#[derive(Default)]
pub(super) struct PoolQueue {
    heap: BinaryHeap<Reverse<(DateTime<Utc>, usize)>>,
}

impl PoolQueue {
    pub fn push(&mut self, agents: &[AgentDay], i: usize) {
        if let Some(agent) = agents.get(i) {
            self.heap.push(Reverse((agent.free_at, i)));
        }
    }

    /// Removes and returns the agent who can start soonest on something ready at `ready`, and
    /// that start; agents whose shift is over leave the queue for the day. The caller pushes
    /// the agent back.
    pub fn pop_first_free(&mut self, agents: &mut [AgentDay], ready: DateTime<Utc>) -> Option<(usize, DateTime<Utc>)> {
        while let Some(Reverse((key, i))) = self.heap.pop() {
            let agent = agents.get_mut(i)?;
            agent.take_breaks_due(ready);
            let start = ready.max(agent.free_at);
            if start >= agent.shift_end {
                continue;
            }
            if agent.free_at > key {
                self.heap.push(Reverse((agent.free_at, i)));
                continue;
            }
            return Some((i, start));
        }
        None
    }
}

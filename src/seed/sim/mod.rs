//! The one model of a contact-centre day, shared by the demo ([`super::demo_data`]: eight
//! agents, a fixed seed, written through the row-by-row writer) and the bulk generator
//! ([`super::generator`]: thousands of agents, millions of calls, loaded through
//! `kpi::writer::bulk_load`) — and, next, by the live demo simulator.
//!
//! Pure and deterministic: no clock, no database, no randomness but the stream it is given. The
//! caller owns the calendar: it opens a [`Day`] with that day's random stream and `now`, puts
//! the agents who work on the roster ([`Day::add_agent`]), draws the arrivals from the same
//! stream ([`Day::rng`], with the [`curves`]) and offers them in time order ([`Day::call`]);
//! the model decides who takes each call, how long it lasts and how it ends, and at the end
//! derives each agent's state log from those same calls ([`Day::finish`]). What differs between
//! the demo and the generator is data, in [`Model`]: the wrap-up mix, breaks, patience, when a
//! call may go to the other pool, whether the dialler drops a live person when no agent comes
//! free, whether idle time is logged, how much handle times are scaled down.
//!
//! What holds for every model (the tests below check it on random days):
//! * an agent takes one call at a time, only on shift and never on a break;
//! * an agent's state intervals of one axis never overlap, and nothing ends after `now`;
//! * ON_CALL intervals are exactly the calls' talk and hold;
//! * the same stream gives the same day.
//!
//! * [`curves`]    — arrival profiles, log-normal and uniform durations, local times;
//! * [`agent_day`] — one agent's shift, breaks and calls, the state log derived from them, and
//!   the per-pool "free at" scheduler;
//! * [`calls`]     — inbound queueing and patience, outbound pacing and outcomes.

pub mod agent_day;
pub mod calls;
pub mod curves;

use std::ops::RangeInclusive;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use uuid::Uuid;

use agent_day::{AgentDay, PoolQueue};
pub use agent_day::{BreakRule, Overflow, Shift, AFTERNOON_BREAK, LUNCH, MORNING_BREAK};
pub use calls::{IMPATIENT_CALLER_SHARE, OUTBOUND_HUMAN_SHARE, OUTBOUND_MACHINE_SHARE, OUTBOUND_NO_ANSWER_SHARE};
pub use curves::{Lognormal, Spread};

use crate::db::contact_centre::NewStateInterval;
use crate::db::interactions::NewInteraction;
use crate::domain::{AgentState, Direction, Presence, RoutingState};

/// A campaign as the model sees it.
#[derive(Debug, Clone, Copy)]
pub struct Campaign {
    pub id: Uuid,
    pub direction: Direction,
    /// Relative call volume among the campaigns of a plan (for the caller's arrivals).
    pub weight: f64,
    /// Share of the campaign's dials its dialler drops on purpose (0 for inbound).
    pub dropped_share: f64,
}

/// The dispositions the model chooses from (an organization without a BUSY code may name its
/// NO_ANSWER disposition twice).
#[derive(Debug, Clone, Copy)]
pub struct DispositionIds {
    pub resolved: Uuid,
    pub sale: Uuid,
    pub callback: Uuid,
    pub not_interested: Uuid,
    pub wrong_party: Uuid,
    pub do_not_call: Uuid,
    pub answering_machine: Uuid,
    pub no_answer: Uuid,
    pub busy: Uuid,
}

impl DispositionIds {
    /// The ids in the order of the fields (the order of [`crate::seed::dispositions`]).
    pub fn from_ids(ids: [Uuid; 9]) -> Self {
        let [resolved, sale, callback, not_interested, wrong_party, do_not_call, answering_machine, no_answer, busy] =
            ids;
        Self {
            resolved,
            sale,
            callback,
            not_interested,
            wrong_party,
            do_not_call,
            answering_machine,
            no_answer,
            busy,
        }
    }
}

/// A disposition an agent may choose, how often, and how long such a call's talk lasts.
#[derive(Clone, Copy, Debug)]
pub struct WrapUp {
    pub disposition: Uuid,
    pub weight: u32,
    pub talk: Lognormal,
}

impl WrapUp {
    /// A mix from (disposition, weight, talk) rows.
    pub fn mix<const N: usize>(rows: [(Uuid, u32, Lognormal); N]) -> Vec<WrapUp> {
        rows.into_iter()
            .map(|(disposition, weight, talk)| WrapUp {
                disposition,
                weight,
                talk,
            })
            .collect()
    }
}

/// Outbound conversations, for a dialler working through renewals and sales leads: a sale takes
/// a while, a refusal or a wrong number is over quickly. Shared by the demo and the generator.
pub fn outbound_wrapups(d: &DispositionIds, talk_sigma: f64) -> Vec<WrapUp> {
    let talk = |median_s, min_s, max_s| Lognormal {
        median_s,
        sigma: talk_sigma,
        min_s,
        max_s,
    };
    WrapUp::mix([
        (d.sale, 17, talk(420.0, 180.0, 900.0)),
        (d.callback, 14, talk(150.0, 60.0, 400.0)),
        (d.not_interested, 42, talk(70.0, 20.0, 240.0)),
        (d.wrong_party, 12, talk(25.0, 10.0, 90.0)),
        (d.do_not_call, 5, talk(35.0, 10.0, 120.0)),
        (d.resolved, 10, talk(200.0, 60.0, 600.0)),
    ])
}

/// The calls of one direction: what agents conclude and how often they put the caller on hold.
#[derive(Clone, Debug)]
pub struct CallMix {
    pub wrapups: Vec<WrapUp>,
    pub hold_share: f64,
}

/// What the dialler does with a live person when no agent is free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pacing {
    /// It waits for the next agent of the day (and does not dial when none is left).
    WaitForAgent,
    /// It drops the call when no agent is free within this long of the dial.
    DropAfter(chrono::TimeDelta),
}

/// The parameters of a simulated contact centre (see the module header for what is shared).
#[derive(Clone, Debug)]
pub struct Model {
    /// The breaks of every shift, in order.
    pub breaks: &'static [BreakRule],
    pub inbound: CallMix,
    pub outbound: CallMix,
    /// Hold, when a call has some.
    pub hold: Spread,
    pub wrap: Spread,
    /// Factor on talk, hold and wrap-up (1 = realistic).
    pub handle_time_scale: f64,
    /// How long a patient caller waits (ms) before hanging up.
    pub patient_wait_ms: RangeInclusive<i64>,
    /// When an inbound call may go to an outbound agent.
    pub inbound_overflow: Overflow,
    /// When an outbound live person may go to an inbound agent.
    pub outbound_overflow: Overflow,
    pub pacing: Pacing,
    /// Whether ROUTING IDLE intervals are logged between calls (the generator leaves them out:
    /// a third of the rows, and no metric reads them).
    pub log_idle: bool,
    pub dispositions: DispositionIds,
}

/// Calls and agent state intervals.
#[derive(Debug, Default)]
pub struct History {
    pub interactions: Vec<NewInteraction>,
    pub intervals: Vec<NewStateInterval>,
}

impl History {
    pub fn is_empty(&self) -> bool {
        self.interactions.is_empty() && self.intervals.is_empty()
    }
}

/// One simulated day in progress.
pub struct Day<'m> {
    model: &'m Model,
    now: DateTime<Utc>,
    rng: StdRng,
    agents: Vec<AgentDay>,
    /// Inbound pool, outbound pool (see [`pool_index`]).
    pools: [PoolQueue; 2],
}

fn pool_index(direction: Direction) -> usize {
    match direction {
        Direction::Inbound => 0,
        Direction::Outbound => 1,
    }
}

impl<'m> Day<'m> {
    /// A day with nobody on the roster yet, drawing from `rng`; nothing ends after `now`.
    pub fn new(model: &'m Model, now: DateTime<Utc>, rng: StdRng) -> Self {
        Self {
            model,
            now,
            rng,
            agents: Vec::new(),
            pools: Default::default(),
        }
    }

    /// The day's random stream, for the caller's arrivals.
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// Puts agent `id` of `pool` on the roster for a `shift` on local `date` (draws their break
    /// times). Returns whether they work: not when the shift has not started by `now`.
    pub fn add_agent(&mut self, id: Uuid, pool: Direction, shift: Shift, tz: &Tz, date: NaiveDate) -> bool {
        let day = (tz, date, self.now);
        let Some(agent) = AgentDay::new(id, pool, shift, self.model.breaks, day, &mut self.rng) else {
            return false;
        };
        self.agents.push(agent);
        let i = self.agents.len() - 1;
        self.pools[pool_index(pool)].push(&self.agents, i);
        true
    }

    /// The first free agent for a call of `direction` ready at `ready`, and when they can
    /// start; from the other pool as [`Model`]'s overflow allows. The caller pushes the agent
    /// back ([`Self::push_agent`]).
    fn pop_agent(&mut self, direction: Direction, ready: DateTime<Utc>) -> Option<(usize, DateTime<Utc>)> {
        let overflow = match direction {
            Direction::Inbound => self.model.inbound_overflow,
            Direction::Outbound => self.model.outbound_overflow,
        };
        let [first, second] = &mut self.pools;
        let (own, other) = if pool_index(direction) == 0 {
            (first, second)
        } else {
            (second, first)
        };
        let home = own.pop_first_free(&mut self.agents, ready);
        match overflow {
            Overflow::Never => home,
            Overflow::WhenPoolEmpty => home.or_else(|| other.pop_first_free(&mut self.agents, ready)),
            Overflow::After(penalty) => match (home, other.pop_first_free(&mut self.agents, ready)) {
                (Some(h), Some(o)) if o.1 + penalty < h.1 => {
                    own.push(&self.agents, h.0);
                    Some(o)
                }
                (Some(h), Some(o)) => {
                    other.push(&self.agents, o.0);
                    Some(h)
                }
                (h, o) => h.or(o),
            },
        }
    }

    fn push_agent(&mut self, i: usize) {
        if let Some(pool) = self.agents.get(i).map(|a| pool_index(a.pool)) {
            self.pools[pool].push(&self.agents, i);
        }
    }

    /// Ends the day: every agent's state log, cut at `now`, appended to `out` (agents in roster
    /// order).
    pub fn finish(self, out: &mut Vec<NewStateInterval>) {
        for agent in self.agents {
            agent.into_intervals(self.now, self.model.log_idle, out);
        }
    }
}

/// Open intervals from `now` for agents' current states (their presence, routing IDLE),
/// matching agent rows whose `state_since` is `now`; offline agents have none.
pub fn current_states(now: DateTime<Utc>, agents: impl IntoIterator<Item = (Uuid, Presence)>) -> Vec<NewStateInterval> {
    let mut out = Vec::new();
    for (agent_id, presence) in agents {
        if presence == Presence::Offline {
            continue;
        }
        for state in [AgentState::Presence(presence), AgentState::Routing(RoutingState::Idle)] {
            out.push(NewStateInterval {
                agent_id,
                state,
                reason: None,
                started_at: now,
                ended_at: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::{NaiveDate, TimeDelta};
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    use super::curves::{inbound_weight, local_time, Profile, CLOSE_MINUTE, OPEN_MINUTE};
    use super::*;
    use crate::domain::{AnsweredBy, Outcome};

    type Span = (DateTime<Utc>, DateTime<Utc>);

    const BREAKS: &[BreakRule] = &[MORNING_BREAK, LUNCH];

    fn model(overflow: Overflow, pacing: Pacing, log_idle: bool, scale: f64) -> Model {
        let ids: Vec<Uuid> = (1..=9).map(Uuid::from_u128).collect();
        let mut d = [Uuid::nil(); 9];
        d.copy_from_slice(&ids);
        let d = DispositionIds::from_ids(d);
        Model {
            breaks: BREAKS,
            inbound: CallMix {
                wrapups: outbound_wrapups(&d, 0.5),
                hold_share: 0.2,
            },
            outbound: CallMix {
                wrapups: outbound_wrapups(&d, 0.45),
                hold_share: 0.1,
            },
            hold: Spread::Uniform {
                min_ms: 10_000.0,
                max_ms: 120_000.0,
            },
            wrap: Spread::LogNormal(Lognormal {
                median_s: 25.0,
                sigma: 0.6,
                min_s: 5.0,
                max_s: 180.0,
            }),
            handle_time_scale: scale,
            patient_wait_ms: 60_000..=180_000,
            inbound_overflow: overflow,
            outbound_overflow: overflow,
            pacing,
            log_idle,
            dispositions: d,
        }
    }

    /// One day: `agents` agents on shifts from 08:00 to 12:00, `calls` arrivals, cut at `now`.
    /// Returns the history and each agent's shift.
    fn day(model: &Model, seed: u64, agents: u32, calls: u32, now: DateTime<Utc>) -> (History, HashMap<Uuid, Span>) {
        let tz = chrono_tz::Europe::London;
        let date = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap_or_default(); // 23 hours long
        let mut sim = Day::new(model, now, StdRng::seed_from_u64(seed));
        let mut shifts = HashMap::new();
        for i in 0..agents {
            let id = Uuid::from_u128(1000 + u128::from(i));
            let pool = if i % 3 == 2 {
                Direction::Outbound
            } else {
                Direction::Inbound
            };
            let shift = Shift {
                start_minute: OPEN_MINUTE + 60 * (i % 5),
                length: TimeDelta::hours(8),
            };
            if sim.add_agent(id, pool, shift, &tz, date) {
                let start = local_time(&tz, date, shift.start_minute).unwrap_or_default();
                shifts.insert(id, (start, start + shift.length));
            }
        }
        let open = local_time(&tz, date, OPEN_MINUTE).unwrap_or_default();
        let profile = Profile::new(inbound_weight);
        let campaigns = [Direction::Inbound, Direction::Outbound].map(|direction| Campaign {
            id: Uuid::from_u128(50 + direction as u128),
            direction,
            weight: 1.0,
            dropped_share: 0.02,
        });
        let rng = sim.rng();
        let mut arrivals: Vec<(DateTime<Utc>, usize)> = (0..calls)
            .map(|_| {
                let offset = profile.sample(rng, CLOSE_MINUTE).unwrap_or_default();
                (open + offset, rng.gen_range(0..2))
            })
            .collect();
        arrivals.sort_by_key(|a| a.0);
        let mut history = History::default();
        for (at, c) in arrivals.into_iter().filter(|(at, _)| *at < now) {
            history.interactions.extend(sim.call(&campaigns[c], at));
        }
        sim.finish(&mut history.intervals);
        (history, shifts)
    }

    fn assert_disjoint(what: &str, mut spans: Vec<Span>) {
        spans.sort();
        for pair in spans.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "{what}: {:?} overlaps {:?}", pair[0], pair[1]);
        }
    }

    fn check(history: &History, shifts: &HashMap<Uuid, Span>, now: DateTime<Utc>) {
        let mut calls: HashMap<Uuid, Vec<Span>> = HashMap::new();
        let mut talk: HashMap<Uuid, i64> = HashMap::new();
        for c in &history.interactions {
            let end = c.wrap_ended_at.or(c.ended_at).unwrap_or(c.offered_at);
            assert!(c.offered_at <= end && end <= now, "{c:?}");
            if let Some(agent) = c.agent_id {
                assert_eq!((c.outcome, c.answered_by), (Outcome::Answered, Some(AnsweredBy::Human)));
                let answered = c.answered_at.unwrap_or(c.offered_at);
                let (start, shift_end) = shifts.get(&agent).copied().unwrap_or((now, now));
                assert!(start <= answered && answered < shift_end, "answered off shift: {c:?}");
                calls.entry(agent).or_default().push((answered, end));
                *talk.entry(agent).or_default() += c.talk_ms + c.hold_ms;
            }
        }
        let mut axes: HashMap<(Uuid, &str), Vec<Span>> = HashMap::new();
        let mut logged_talk: HashMap<Uuid, i64> = HashMap::new();
        for s in &history.intervals {
            let end = s.ended_at.unwrap_or(now);
            assert!(s.started_at < end && end <= now, "{s:?}");
            axes.entry((s.agent_id, s.state.axis()))
                .or_default()
                .push((s.started_at, end));
            match s.state {
                AgentState::Routing(RoutingState::OnCall) => {
                    *logged_talk.entry(s.agent_id).or_default() += (end - s.started_at).num_milliseconds();
                }
                AgentState::Presence(Presence::Break | Presence::Lunch) => {
                    // Nobody takes a call on a break: a break is one more span among the calls.
                    calls.entry(s.agent_id).or_default().push((s.started_at, end));
                }
                _ => {}
            }
        }
        for (agent, spans) in calls {
            assert_disjoint(&format!("calls and breaks of {agent}"), spans);
        }
        for ((agent, axis), spans) in axes {
            assert_disjoint(&format!("{axis} of {agent}"), spans);
        }
        assert_eq!(talk, logged_talk, "ON_CALL intervals are the calls' talk and hold");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn any_day_holds_together(
            seed in any::<u64>(),
            agents in 0_u32..12,
            calls in 0_u32..600,
            minutes_after_open in 0_i64..(14 * 60),
            overflow in 0_usize..3,
            drop_after in proptest::option::of(0_i64..600),
            log_idle in any::<bool>(),
            scale in 0.05_f64..=1.0,
        ) {
            let overflow = [Overflow::Never, Overflow::WhenPoolEmpty, Overflow::After(TimeDelta::seconds(30))][overflow];
            let pacing = drop_after.map_or(Pacing::WaitForAgent, |s| Pacing::DropAfter(TimeDelta::seconds(s)));
            let model = model(overflow, pacing, log_idle, scale);
            let tz = chrono_tz::Europe::London;
            let date = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap_or_default();
            let open = local_time(&tz, date, OPEN_MINUTE).unwrap_or_default();
            let now = open + TimeDelta::minutes(minutes_after_open);
            let (history, shifts) = day(&model, seed, agents, calls, now);
            check(&history, &shifts, now);
            let (again, _) = day(&model, seed, agents, calls, now);
            prop_assert_eq!(format!("{:?}", history), format!("{:?}", again), "same stream, same day");
        }
    }
}

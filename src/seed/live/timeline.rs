//! What the live simulator plays, and when: a simulated day of the demo model turned into timed
//! actions — the telephony events of each call, the dispositions set after calls no agent
//! wrapped up, the agents' presence changes — and the clock that maps simulated time onto real
//! time. Pure: no database, no clock of its own.
//!
//! A call's events describe exactly the model's call: ingest's lifecycle derives the same
//! outcome, answer, end, wrap-up, durations, agent and disposition from them (tested below).

use std::cmp::Ordering;
use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::time::Instant;
use uuid::Uuid;

use crate::db::interactions::NewInteraction;
use crate::domain::{AgentState, EndReason, EventType, Outcome, Presence};
use crate::ingest::EventInput;
use crate::seed::demo_data::{self, SimPlan};
use crate::seed::sim::curves::{local_time, CLOSE_MINUTE, OPEN_MINUTE};
use crate::seed::sim::History;

/// Local minute of day at which a simulated day starts when the process starts outside opening
/// hours: mid-morning, when most agents are on shift and both campaigns are busy.
pub const CLOSED_HOURS_START_MINUTE: u32 = 9 * 60;

/// Maps simulated time onto real time: `speed` simulated seconds per real second from an
/// origin. Events are stamped with the real (wall-clock) time at which they are due, so they
/// are never in the future and a wallboard's "last 15 minutes" shows them.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    sim_origin: DateTime<Utc>,
    wall_origin: DateTime<Utc>,
    instant_origin: Instant,
    speed: f64,
}

impl Clock {
    pub fn new(sim_origin: DateTime<Utc>, wall_origin: DateTime<Utc>, instant_origin: Instant, speed: f64) -> Self {
        Self {
            sim_origin,
            wall_origin,
            instant_origin,
            speed,
        }
    }

    fn real_offset(&self, sim: DateTime<Utc>) -> f64 {
        let micros = (sim - self.sim_origin).num_microseconds().unwrap_or(i64::MAX);
        micros as f64 / self.speed
    }

    /// The simulated time at real instant `at`.
    pub fn sim_at(&self, at: Instant) -> DateTime<Utc> {
        let real = at.saturating_duration_since(self.instant_origin).as_secs_f64();
        self.sim_origin + TimeDelta::microseconds((real * self.speed * 1e6) as i64)
    }

    /// When (real) simulated time `sim` comes; the origin for anything before it.
    pub fn instant_of(&self, sim: DateTime<Utc>) -> Instant {
        let offset = self.real_offset(sim).max(0.0) / 1e6;
        self.instant_origin + std::time::Duration::from_secs_f64(offset.min(1e9))
    }

    /// The wall-clock stamp of simulated time `sim`.
    pub fn stamp(&self, sim: DateTime<Utc>) -> DateTime<Utc> {
        self.wall_origin + TimeDelta::microseconds(self.real_offset(sim) as i64)
    }

    /// The same speed from a new origin: simulated `sim` is now (`wall`, `at`).
    pub fn rebase(&mut self, sim: DateTime<Utc>, wall: DateTime<Utc>, at: Instant) {
        *self = Self::new(sim, wall, at, self.speed);
    }
}

/// Where the simulated clock starts for a process started at `now`: at `now` during opening
/// hours (until an hour before closing), else at the next [`CLOSED_HOURS_START_MINUTE`].
pub fn simulated_start(now: DateTime<Utc>, tz: &Tz) -> DateTime<Utc> {
    let local = now.with_timezone(tz);
    let minute = chrono::Timelike::hour(&local) * 60 + chrono::Timelike::minute(&local);
    if (OPEN_MINUTE..CLOSE_MINUTE - 60).contains(&minute) {
        return now;
    }
    let date = local.date_naive();
    let date = if minute < CLOSED_HOURS_START_MINUTE {
        Some(date)
    } else {
        date.succ_opt()
    };
    date.and_then(|d| local_time(tz, d, CLOSED_HOURS_START_MINUTE))
        .unwrap_or(now)
}

/// When a simulated day opens (its first shift may start): `None` when the local clock skips it.
pub fn day_open(tz: &Tz, date: NaiveDate) -> Option<DateTime<Utc>> {
    local_time(tz, date, OPEN_MINUTE)
}

/// One thing the simulator does.
#[derive(Clone, Debug)]
pub enum Action {
    /// A telephony event, through `recordCallEvents`' code; its `occurred_at` is simulated time
    /// until it is stamped.
    Event(EventInput),
    /// A disposition for a call no agent wrapped up, through `setDisposition`'s code.
    Dispose { external_id: String, code: String },
    /// A presence change, through `setAgentPresence`'s code.
    Presence {
        agent_id: Uuid,
        presence: Presence,
        reason: Option<String>,
    },
}

/// An action at a simulated instant. Actions of one instant run in the order: presence changes
/// other than OFFLINE (an agent is available before their first call), call events,
/// dispositions, OFFLINE (after the last wrap-up); then in planning order.
#[derive(Clone, Debug)]
pub struct Timed {
    pub at: DateTime<Utc>,
    rank: u8,
    seq: u64,
    pub action: Action,
}

impl Timed {
    pub fn new(at: DateTime<Utc>, seq: u64, action: Action) -> Self {
        let rank = match &action {
            Action::Presence {
                presence: Presence::Offline,
                ..
            } => 3,
            Action::Presence { .. } => 0,
            Action::Event(_) => 1,
            Action::Dispose { .. } => 2,
        };
        Self { at, rank, seq, action }
    }

    fn key(&self) -> (DateTime<Utc>, u8, u64) {
        (self.at, self.rank, self.seq)
    }
}

impl PartialEq for Timed {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Timed {}
impl PartialOrd for Timed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timed {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// A simulated day, ready to play.
#[derive(Debug, Default)]
pub struct DayPlan {
    /// In play order.
    pub actions: Vec<Timed>,
    /// Each agent's presence at the instant the plan starts from (their reason, if any).
    pub presence_at_start: Vec<(Uuid, Presence, Option<String>)>,
    pub calls: usize,
}

/// The random stream of simulated day `date` under `seed`: the same pair, the same day.
pub fn day_rng(seed: u64, date: NaiveDate) -> StdRng {
    let day = u64::from(chrono::Datelike::num_days_from_ce(&date).unsigned_abs());
    StdRng::seed_from_u64(seed ^ day.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Everything the planner needs besides the day.
pub(in crate::seed) struct Planner<'p> {
    pub plan: &'p SimPlan,
    pub seed: u64,
    /// Disposition codes by id (the events name dispositions by code, as clients do).
    pub codes: &'p HashMap<Uuid, String>,
    /// The reason code a break or lunch is taken with, when the organization requires one.
    pub reasons: &'p HashMap<Presence, String>,
    /// Prefix of the calls' external ids (unique per run).
    pub id_prefix: &'p str,
}

impl Planner<'_> {
    /// Simulated day `date`, from `from` on: calls offered from then, presence changes after
    /// it (the presence at `from` is returned apart). `next_call` numbers the calls.
    pub fn plan_day(&self, date: NaiveDate, from: DateTime<Utc>, next_call: &mut u64) -> DayPlan {
        let model = demo_data::model(&self.plan.dispositions);
        let mut history = History::default();
        demo_data::simulate_day(self.plan, &model, day_rng(self.seed, date), date, &mut history);
        let mut out = DayPlan::default();
        let mut seq = 0_u64;
        let mut push = |out: &mut DayPlan, at: DateTime<Utc>, action: Action| {
            seq += 1;
            out.actions.push(Timed::new(at, seq, action));
        };
        for mut call in history.interactions.into_iter().filter(|c| c.offered_at >= from) {
            *next_call += 1;
            call.external_id = format!("{}{:06}", self.id_prefix, next_call);
            out.calls += 1;
            for (at, action) in call_actions(&call, self.codes) {
                push(&mut out, at, action);
            }
        }
        /// A presence and its interval.
        type Span = (Presence, DateTime<Utc>, DateTime<Utc>);
        let mut by_agent: HashMap<Uuid, Vec<Span>> = HashMap::new();
        for interval in &history.intervals {
            if let (AgentState::Presence(presence), Some(end)) = (interval.state, interval.ended_at) {
                by_agent
                    .entry(interval.agent_id)
                    .or_default()
                    .push((presence, interval.started_at, end));
            }
        }
        let reason = |presence: Presence| {
            presence
                .takes_reason()
                .then(|| self.reasons.get(&presence).cloned())
                .flatten()
        };
        for agent in &self.plan.agents {
            let mut spans = by_agent.remove(&agent.id).unwrap_or_default();
            spans.sort_by_key(|s| s.1);
            let now = spans
                .iter()
                .find(|(_, start, end)| *start <= from && from < *end)
                .map_or(Presence::Offline, |s| s.0);
            out.presence_at_start.push((agent.id, now, reason(now)));
            let mut last: Option<Presence> = None;
            for (presence, start, _) in &spans {
                if last != Some(*presence) && *start > from {
                    push(
                        &mut out,
                        *start,
                        Action::Presence {
                            agent_id: agent.id,
                            presence: *presence,
                            reason: reason(*presence),
                        },
                    );
                }
                last = Some(*presence);
            }
            if let Some((_, _, end)) = spans.last() {
                if *end > from {
                    push(
                        &mut out,
                        *end,
                        Action::Presence {
                            agent_id: agent.id,
                            presence: Presence::Offline,
                            reason: None,
                        },
                    );
                }
            }
        }
        out.actions.sort();
        out
    }
}

fn event(call: &NewInteraction, event_type: EventType, at: DateTime<Utc>, sequence: i64) -> EventInput {
    EventInput {
        sequence: Some(sequence),
        ..EventInput::bare(call.external_id.clone(), event_type, at)
    }
}

/// The actions of one simulated call, at their simulated times.
pub fn call_actions(call: &NewInteraction, codes: &HashMap<Uuid, String>) -> Vec<(DateTime<Utc>, Action)> {
    let mut out = Vec::with_capacity(6);
    let mut sequence = 0;
    let mut next = |call: &NewInteraction, event_type, at| {
        let e = event(call, event_type, at, sequence);
        sequence += 1;
        e
    };
    let offered = EventInput {
        direction: Some(call.direction),
        campaign_id: call.campaign_id.map(|id| id.to_string()),
        customer_number: call.customer_number.clone(),
        ..next(call, EventType::Offered, call.offered_at)
    };
    out.push((call.offered_at, Action::Event(offered)));
    let code = call.disposition_id.and_then(|id| codes.get(&id).cloned());
    let Some(ended) = call.ended_at else {
        return out;
    };
    match (call.answered_at, call.agent_id) {
        (Some(answered), Some(agent)) => {
            let answer = EventInput {
                agent_id: Some(agent.to_string()),
                answered_by: call.answered_by,
                ..next(call, EventType::Answered, answered)
            };
            out.push((answered, Action::Event(answer)));
            if call.hold_ms > 0 {
                let held = answered + TimeDelta::milliseconds(call.talk_ms / 2);
                let resumed = held + TimeDelta::milliseconds(call.hold_ms);
                out.push((held, Action::Event(next(call, EventType::Held, held))));
                out.push((resumed, Action::Event(next(call, EventType::Resumed, resumed))));
            }
            let end = EventInput {
                end_reason: Some(EndReason::Completed),
                ..next(call, EventType::Ended, ended)
            };
            out.push((ended, Action::Event(end)));
            if let Some(wrapped) = call.wrap_ended_at {
                let wrap = EventInput {
                    disposition_code: code,
                    ..next(call, EventType::WrapUpEnded, wrapped)
                };
                out.push((wrapped, Action::Event(wrap)));
            }
            return out;
        }
        (Some(answered), None) => {
            let answer = EventInput {
                answered_by: call.answered_by,
                ..next(call, EventType::Answered, answered)
            };
            out.push((answered, Action::Event(answer)));
            let end = EventInput {
                end_reason: Some(EndReason::Completed),
                ..next(call, EventType::Ended, ended)
            };
            out.push((ended, Action::Event(end)));
        }
        (None, _) => {
            let end_reason = match call.outcome {
                Outcome::Busy => Some(EndReason::Busy),
                Outcome::NoAnswer => Some(EndReason::NoAnswer),
                Outcome::Failed => Some(EndReason::Failed),
                _ => None,
            };
            let end = EventInput {
                end_reason,
                // A live person the dialler dropped: an abandoned outbound call.
                answered_by: call.answered_by,
                ..next(call, EventType::Ended, ended)
            };
            out.push((ended, Action::Event(end)));
        }
    }
    if let Some(code) = code {
        out.push((
            ended,
            Action::Dispose {
                external_id: call.external_id.clone(),
                code,
            },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::{CallEvent, Source};
    use crate::ingest::lifecycle;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).earliest().unwrap_or_default()
    }

    /// The events as ingest would store them (ids parsed, codes looked up), stamped by `clock`.
    fn stored(actions: &[(DateTime<Utc>, Action)], clock: &Clock, ids: &HashMap<String, Uuid>) -> Vec<CallEvent> {
        actions
            .iter()
            .map(|(at, action)| match action {
                Action::Event(input) => {
                    let mut e = CallEvent::new(input.event_type, clock.stamp(*at), Source::Api);
                    e.sequence = input.sequence;
                    e.direction = input.direction;
                    e.campaign_id = input.campaign_id.as_deref().and_then(|s| Uuid::parse_str(s).ok());
                    e.agent_id = input.agent_id.as_deref().and_then(|s| Uuid::parse_str(s).ok());
                    e.customer_number = input.customer_number.clone();
                    e.answered_by = input.answered_by;
                    e.end_reason = input.end_reason;
                    e.disposition_id = input.disposition_code.as_ref().and_then(|c| ids.get(c).copied());
                    e
                }
                Action::Dispose { code, .. } => {
                    let mut e = CallEvent::new(EventType::DispositionSet, clock.stamp(*at), Source::User);
                    e.disposition_id = ids.get(code).copied();
                    e
                }
                Action::Presence { .. } => panic!("a call has no presence actions"),
            })
            .collect()
    }

    fn planner_parts() -> (SimPlan, HashMap<Uuid, String>) {
        let plan = demo_data::test_plan(utc(2026, 6, 1, 0, 0));
        let d = plan.dispositions;
        let codes: HashMap<Uuid, String> = [
            (d.resolved, "RESOLVED"),
            (d.sale, "SALE"),
            (d.callback, "CALLBACK"),
            (d.not_interested, "NOT_INTERESTED"),
            (d.wrong_party, "WRONG_PARTY"),
            (d.do_not_call, "DO_NOT_CALL"),
            (d.answering_machine, "ANSWERING_MACHINE"),
            (d.no_answer, "NO_ANSWER"),
            (d.busy, "BUSY"),
        ]
        .into_iter()
        .map(|(id, code)| (id, code.to_owned()))
        .collect();
        (plan, codes)
    }

    #[test]
    fn the_events_of_a_call_derive_the_model_call() {
        let (mut plan, codes) = planner_parts();
        plan.now = utc(2026, 6, 3, 0, 0);
        let ids: HashMap<String, Uuid> = codes.iter().map(|(id, code)| (code.clone(), *id)).collect();
        let model = demo_data::model(&plan.dispositions);
        let mut history = History::default();
        let date = NaiveDate::from_ymd_opt(2026, 6, 2).unwrap_or_default();
        demo_data::simulate_day(&plan, &model, day_rng(7, date), date, &mut history);
        assert!(history.interactions.len() > 500, "a whole day of calls");
        let clock = Clock::new(plan.now, plan.now, Instant::now(), 1.0);
        let mut outcomes = HashMap::new();
        for (n, mut call) in history.interactions.into_iter().enumerate() {
            call.external_id = format!("LIVE-T-{n}");
            let events = stored(&call_actions(&call, &codes), &clock, &ids);
            let derived = lifecycle::derive(&events, |_| None).unwrap_or_else(|| panic!("no state: {call:?}"));
            let context = format!("{call:?}\n{derived:?}");
            assert_eq!(derived.outcome, call.outcome, "{context}");
            assert_eq!(derived.direction, call.direction, "{context}");
            assert_eq!(derived.campaign_id, call.campaign_id, "{context}");
            assert_eq!(derived.agent_id, call.agent_id, "{context}");
            assert_eq!(derived.customer_number, call.customer_number, "{context}");
            assert_eq!(derived.offered_at, call.offered_at, "{context}");
            assert_eq!(derived.answered_at, call.answered_at, "{context}");
            assert_eq!(derived.ended_at, call.ended_at, "{context}");
            assert_eq!(derived.wrap_ended_at, call.wrap_ended_at, "{context}");
            assert_eq!(derived.wait_ms, call.wait_ms, "{context}");
            assert_eq!(
                (derived.talk_ms, derived.hold_ms, derived.wrap_ms),
                (call.talk_ms, call.hold_ms, call.wrap_ms),
                "{context}"
            );
            assert_eq!(derived.answered_by, call.answered_by, "{context}");
            assert_eq!(derived.disposition_id, call.disposition_id, "{context}");
            *outcomes.entry(call.outcome).or_insert(0) += 1;
        }
        // Every way a call can end was exercised.
        for outcome in [Outcome::Answered, Outcome::Abandoned, Outcome::NoAnswer] {
            assert!(
                outcomes.get(&outcome).copied().unwrap_or(0) > 0,
                "{outcome:?}: {outcomes:?}"
            );
        }
    }

    #[test]
    fn a_faster_clock_compresses_the_stamps_of_a_day() {
        let origin = utc(2026, 6, 2, 9, 0);
        let wall = utc(2026, 6, 2, 22, 0);
        let start = Instant::now();
        let clock = Clock::new(origin, wall, start, 60.0);
        // An hour of the simulated day is a minute of real time.
        assert_eq!(clock.stamp(origin + TimeDelta::hours(1)), wall + TimeDelta::minutes(1));
        assert_eq!(
            clock.instant_of(origin + TimeDelta::hours(1)),
            start + std::time::Duration::from_secs(60)
        );
        assert_eq!(clock.instant_of(origin - TimeDelta::hours(1)), start);
        let later = start + std::time::Duration::from_secs(30);
        assert_eq!(clock.sim_at(later), origin + TimeDelta::minutes(30));
    }

    #[test]
    fn the_day_starts_now_in_opening_hours_and_mid_morning_otherwise() {
        let tz = chrono_tz::Europe::London;
        // 10:30 BST: now.
        let now = utc(2026, 6, 2, 9, 30);
        assert_eq!(simulated_start(now, &tz), now);
        // 06:00 BST: 09:00 the same day; 21:00 BST: 09:00 the next day.
        assert_eq!(simulated_start(utc(2026, 6, 2, 5, 0), &tz), utc(2026, 6, 2, 8, 0));
        assert_eq!(simulated_start(utc(2026, 6, 2, 20, 0), &tz), utc(2026, 6, 3, 8, 0));
    }

    #[test]
    fn a_planned_day_is_deterministic_and_keeps_agents_consistent() {
        let (mut plan, codes) = planner_parts();
        plan.now = utc(2026, 6, 4, 0, 0);
        let reasons = HashMap::new();
        let planner = Planner {
            plan: &plan,
            seed: 42,
            codes: &codes,
            reasons: &reasons,
            id_prefix: "LIVE-T-",
        };
        let date = NaiveDate::from_ymd_opt(2026, 6, 2).unwrap_or_default();
        let from = utc(2026, 6, 2, 10, 0);
        let key = |p: &DayPlan| format!("{:?}", p.actions.iter().map(|t| (t.at, &t.action)).collect::<Vec<_>>());
        let (mut a, mut b) = (0, 0);
        let first = planner.plan_day(date, from, &mut a);
        let again = planner.plan_day(date, from, &mut b);
        assert_eq!(key(&first), key(&again), "same seed, same day");
        assert_eq!(a, first.calls as u64);
        assert!(first.calls > 100, "{}", first.calls);
        assert!(first.actions.windows(2).all(|w| w[0] <= w[1]), "in play order");
        assert!(first.actions.iter().all(|t| t.at >= from));
        assert_eq!(first.presence_at_start.len(), plan.agents.len());
        // Each agent alternates presences and ends the day OFFLINE, after their last call.
        for agent in &plan.agents {
            let presences: Vec<(DateTime<Utc>, Presence)> = first
                .actions
                .iter()
                .filter_map(|t| match &t.action {
                    Action::Presence { agent_id, presence, .. } if *agent_id == agent.id => Some((t.at, *presence)),
                    _ => None,
                })
                .collect();
            assert_eq!(presences.last().map(|p| p.1), Some(Presence::Offline), "{presences:?}");
            assert!(presences.windows(2).all(|w| w[0].1 != w[1].1), "{presences:?}");
            let last_event = first
                .actions
                .iter()
                .filter(|t| matches!(&t.action, Action::Event(e) if e.agent_id == Some(agent.id.to_string())))
                .map(|t| t.at)
                .max();
            if let (Some(last_event), Some((offline, _))) = (last_event, presences.last()) {
                assert!(last_event <= *offline);
            }
        }
        // Another seed, another day.
        let other = Planner { seed: 43, ..planner };
        assert_ne!(key(&other.plan_day(date, from, &mut 0)), key(&first));
    }
}

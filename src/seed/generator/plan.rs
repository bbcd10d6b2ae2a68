//! The pure part of the generator: what a run simulates (campaigns, the inbound and outbound
//! pools, each agent's rota, the calls per day and when they arrive, the handle-time scale),
//! and one day of traffic through the shared model ([`crate::seed::sim`]). Pure data, so it can
//! be built and checked without a database.

use chrono::{DateTime, Datelike, Days, NaiveDate, TimeDelta, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use super::GeneratorSettings;
use crate::db::contact_centre::NewStateInterval;
use crate::domain::{Direction, Presence};
use crate::seed::sim::curves::{inbound_weight, local_time, Profile, CLOSE_MINUTE, OPEN_MINUTE};
use crate::seed::sim::{
    self, BreakRule, CallMix, Campaign, Day, DispositionIds, History, Lognormal, Model, Overflow, Pacing, Shift,
    Spread, WrapUp, AFTERNOON_BREAK, LUNCH, MORNING_BREAK, OUTBOUND_HUMAN_SHARE,
};

const SHIFT: TimeDelta = TimeDelta::hours(8);
/// A 15-minute break, a 30-minute lunch and another 15-minute break, two hours apart.
const BREAKS: &[BreakRule] = &[MORNING_BREAK, LUNCH, AFTERNOON_BREAK];

/// Seconds an agent is available per shift (8 h less 15 + 30 + 15 minutes of breaks).
const PRODUCTIVE_SECONDS_PER_SHIFT: f64 = 7.0 * 3600.0;
/// Expected occupancy of the busiest day, which sets the handle-time scale.
const TARGET_OCCUPANCY: f64 = 0.75;
/// Today's calls arrive until this long before now, so that each has ended by now (the longest
/// call: 5 min of pacing or 3 min of queue, 15 min talk, 2 min hold, 3 min wrap-up).
const TODAY_MARGIN: TimeDelta = TimeDelta::minutes(30);
/// The dialler drops a live connect when no agent is free within this long.
const MAX_PACING_DELAY: TimeDelta = TimeDelta::minutes(5);

/// Of inbound calls, the share expected to reach an agent (for sizing only).
const EXPECTED_INBOUND_HANDLED: f64 = 0.92;
/// The drop rates (dropped ÷ live connects) outbound campaigns are paced for, in turn by
/// campaign. Diallers are tuned to stay under the usual 3 % limit, one close to it (a WARNING at
/// 80 % of the limit) and one over it: the compliance views show every level. Drops when no agent is free
/// come on top.
const OUTBOUND_PACED_DROP_RATES: [f64; 4] = [0.010, 0.015, 0.024, 0.032];
/// Spread (σ of the logarithm) of talk and wrap-up times.
const TALK_SIGMA: f64 = 0.5;
const WRAP: Spread = Spread::LogNormal(Lognormal {
    median_s: 25.0,
    sigma: 0.6,
    min_s: 5.0,
    max_s: 180.0,
});
/// Hold, when a call has some: 10 s to 2 min.
const HOLD: Spread = Spread::Uniform {
    min_ms: 10_000.0,
    max_ms: 120_000.0,
};
/// How long a patient caller waits before hanging up: 1 to 3 minutes.
const PATIENT_WAIT_MS: std::ops::RangeInclusive<i64> = 60_000..=180_000;
/// Shares of weekday traffic, Monday first.
const WEEKDAY_WEIGHT: [f64; 7] = [1.0, 0.97, 0.95, 0.95, 0.9, 0.45, 0.3];

/// Everything the simulation needs; pure data, so it can be built without a database in tests.
#[derive(Debug, Clone)]
pub struct Plan {
    pub tz: Tz,
    pub now: DateTime<Utc>,
    pub seed: u64,
    pub run: u32,
    /// The oldest simulated day; the last one is today.
    pub first_day: NaiveDate,
    pub days: u32,
    pub calls: u64,
    /// Agent `i` of the run has rota `i` (see [`rota`]); its pool is inbound or outbound.
    pub agents: Vec<(Uuid, Direction)>,
    pub campaigns: Vec<Campaign>,
    pub dispositions: DispositionIds,
    pub handle_time_scale: f64,
}

impl Plan {
    /// A plan with the given ids; `agent_ids` and `campaign_ids` give the counts. Sets the pool
    /// split and the handle-time scale.
    pub fn new(
        tz: Tz,
        now: DateTime<Utc>,
        settings: &GeneratorSettings,
        run: u32,
        agent_ids: &[Uuid],
        campaign_ids: &[Uuid],
        dispositions: DispositionIds,
    ) -> Self {
        let today = now.with_timezone(&tz).date_naive();
        let first_day = today
            .checked_sub_days(Days::new(u64::from(settings.days.saturating_sub(1))))
            .unwrap_or(today);
        let campaigns: Vec<Campaign> = campaign_ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let direction = campaign_direction(i as u32 + 1);
                Campaign {
                    id: *id,
                    direction,
                    weight: 1.0 / ((i + 1) as f64).powf(0.7),
                    dropped_share: match direction {
                        Direction::Inbound => 0.0,
                        // Outbound campaigns are the even-numbered ones (see `campaign_direction`).
                        Direction::Outbound => {
                            dropped_share(OUTBOUND_PACED_DROP_RATES[(i / 2) % OUTBOUND_PACED_DROP_RATES.len()])
                        }
                    },
                }
            })
            .collect();
        let mut plan = Self {
            tz,
            now,
            seed: settings.seed,
            run,
            first_day,
            days: settings.days,
            calls: settings.calls,
            agents: Vec::new(),
            campaigns,
            dispositions,
            handle_time_scale: 1.0,
        };
        let outbound_agents = plan.outbound_agent_count(agent_ids.len());
        let inbound_agents = agent_ids.len() - outbound_agents;
        plan.agents = agent_ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                (
                    *id,
                    if i < inbound_agents {
                        Direction::Inbound
                    } else {
                        Direction::Outbound
                    },
                )
            })
            .collect();
        plan.handle_time_scale = plan.fitting_scale();
        plan
    }

    fn inbound_call_share(&self) -> f64 {
        let total: f64 = self.campaigns.iter().map(|c| c.weight).sum();
        let inbound: f64 = self
            .campaigns
            .iter()
            .filter(|c| c.direction == Direction::Inbound)
            .map(|c| c.weight)
            .sum();
        if total > 0.0 {
            inbound / total
        } else {
            1.0
        }
    }

    /// Expected agent seconds per call of the mix, at scale 1.
    fn work_per_call(&self) -> (f64, f64) {
        let inbound = self.inbound_call_share();
        let d = &self.dispositions;
        let aht = |wrapups: &[WrapUp], hold_share: f64| {
            let weights: f64 = wrapups.iter().map(|w| f64::from(w.weight)).sum();
            let talk: f64 = wrapups
                .iter()
                .map(|w| f64::from(w.weight) * w.talk.mean_s())
                .sum::<f64>()
                / weights;
            talk + hold_share * HOLD.mean_s() + WRAP.mean_s()
        };
        (
            inbound * EXPECTED_INBOUND_HANDLED * aht(&inbound_wrapups(d), INBOUND_HOLD_SHARE),
            (1.0 - inbound) * OUTBOUND_HUMAN_SHARE * aht(&sim::outbound_wrapups(d, TALK_SIGMA), OUTBOUND_HOLD_SHARE),
        )
    }

    /// Outbound agents, in proportion to the work each direction brings.
    fn outbound_agent_count(&self, agents: usize) -> usize {
        let (inbound, outbound) = self.work_per_call();
        if outbound <= 0.0 {
            return 0;
        }
        if inbound <= 0.0 {
            return agents;
        }
        let share = outbound / (inbound + outbound);
        let n = (agents as f64 * share).round() as usize;
        if agents >= 2 {
            n.clamp(1, agents - 1)
        } else {
            n
        }
    }

    /// The largest scale ≤ 1 of handle times at which the busiest full day stays at
    /// [`TARGET_OCCUPANCY`] (each pool sized to its direction's work).
    fn fitting_scale(&self) -> f64 {
        let (inbound, outbound) = self.work_per_call();
        let work_per_call = inbound + outbound;
        let quotas = day_quotas(self);
        let full_days = if quotas.len() > 1 {
            quotas.len() - 1
        } else {
            quotas.len()
        };
        let mut scale: f64 = 1.0;
        for (day, quota) in quotas.iter().take(full_days).enumerate() {
            let Some(date) = self.date(day as u32) else { continue };
            let working = (self.agents.iter().enumerate())
                .filter(|(i, (_, pool))| rota(*i as u32, *pool, date.weekday()).is_some())
                .count();
            let work = *quota as f64 * work_per_call;
            if work > 0.0 {
                let capacity = working as f64 * PRODUCTIVE_SECONDS_PER_SHIFT;
                scale = scale.min(TARGET_OCCUPANCY * capacity / work);
            }
        }
        scale.clamp(0.01, 1.0)
    }

    fn date(&self, day: u32) -> Option<NaiveDate> {
        self.first_day.checked_add_days(Days::new(u64::from(day)))
    }

    fn today(&self) -> NaiveDate {
        self.now.with_timezone(&self.tz).date_naive()
    }

    /// Whether agent `i` is on shift at `now`.
    pub fn on_shift_now(&self, i: usize) -> bool {
        let today = self.today();
        let Some((_, pool)) = self.agents.get(i) else {
            return false;
        };
        rota(i as u32, *pool, today.weekday())
            .and_then(|start| local_time(&self.tz, today, start))
            .is_some_and(|start| start <= self.now && self.now < start + SHIFT)
    }

    /// Open intervals from now for the agents on shift now (AVAILABLE, IDLE), matching the
    /// `agents` rows written at setup.
    pub fn current_states(&self) -> Vec<NewStateInterval> {
        let on_shift = (self.agents.iter().enumerate()).filter(|(i, _)| self.on_shift_now(*i));
        sim::current_states(self.now, on_shift.map(|(_, (id, _))| (*id, Presence::Available)))
    }

    /// The model of this run: the generator's mix, breaks and patience, its handle-time scale.
    fn model(&self) -> Model {
        let d = &self.dispositions;
        Model {
            breaks: BREAKS,
            inbound: CallMix {
                wrapups: inbound_wrapups(d),
                hold_share: INBOUND_HOLD_SHARE,
            },
            outbound: CallMix {
                wrapups: sim::outbound_wrapups(d, TALK_SIGMA),
                hold_share: OUTBOUND_HOLD_SHARE,
            },
            hold: HOLD,
            wrap: WRAP,
            handle_time_scale: self.handle_time_scale,
            patient_wait_ms: PATIENT_WAIT_MS,
            inbound_overflow: Overflow::WhenPoolEmpty,
            outbound_overflow: Overflow::WhenPoolEmpty,
            pacing: Pacing::DropAfter(MAX_PACING_DELAY),
            log_idle: false,
            dispositions: self.dispositions,
        }
    }
}

/// The share of dials to drop for a drop rate `rate` of live connects:
/// dropped ÷ (live + dropped) = rate, with live connects [`OUTBOUND_HUMAN_SHARE`] of the dials.
fn dropped_share(rate: f64) -> f64 {
    rate * OUTBOUND_HUMAN_SHARE / (1.0 - rate)
}

pub(super) fn campaign_direction(number: u32) -> Direction {
    if number % 2 == 1 {
        Direction::Inbound
    } else {
        Direction::Outbound
    }
}

/// Agent `i`'s shift start (local minute) on a weekday, or `None` on a day off. 60 % of agents
/// work Monday–Friday; the others have two consecutive days off between Sunday and Friday.
/// Inbound shifts start from 08:00 to 12:00, weighted to the morning peak; outbound shifts from
/// 09:00 to 12:00, evenly (the dialler follows its agents, see [`outbound_weight`]).
pub fn rota(i: u32, pool: Direction, weekday: Weekday) -> Option<u32> {
    let day = weekday.num_days_from_monday(); // Monday 0 … Sunday 6
    let off = if i % 10 < 6 {
        day >= 5
    } else {
        // Days off (Sun, Mon), (Mon, Tue), (Tue, Wed), (Wed, Thu) or (Thu, Fri).
        const FIRST_DAY_OFF: [u32; 5] = [6, 0, 1, 2, 3];
        let first = FIRST_DAY_OFF[(i / 10 % 5) as usize];
        day == first || day == (first + 1) % 7
    };
    if off {
        return None;
    }
    let slot = i.wrapping_mul(7) % 20;
    let hour = match pool {
        Direction::Inbound => match slot {
            0..=5 => 8,
            6..=9 => 9,
            10..=13 => 10,
            14..=16 => 11,
            _ => 12,
        },
        Direction::Outbound => OUTBOUND_SHIFT_STARTS[(slot % 4) as usize],
    };
    Some(hour * 60)
}

/// Outbound shifts start at these hours, a quarter of the agents each.
const OUTBOUND_SHIFT_STARTS: [u32; 4] = [9, 10, 11, 12];

/// Calls per simulated day: `plan.calls` in total, shared by weekday weight (today only for
/// its part of the arrival curve before the cut-off), rounded by largest remainder.
pub fn day_quotas(plan: &Plan) -> Vec<u64> {
    let profile = Profile::new(combined_weight);
    let today = plan.today();
    let weights: Vec<f64> = (0..plan.days)
        .map(|day| {
            let Some(date) = plan.date(day) else { return 0.0 };
            let share = if date == today {
                today_limit(plan).map_or(0.0, |limit| profile.share_before(limit))
            } else {
                1.0
            };
            WEEKDAY_WEIGHT[date.weekday().num_days_from_monday() as usize] * share
        })
        .collect();
    let total: f64 = weights.iter().sum();
    if total <= 0.0 {
        // Only today, before opening: nothing fits; put everything on no day.
        return vec![0; weights.len()];
    }
    let exact: Vec<f64> = weights.iter().map(|w| plan.calls as f64 * w / total).collect();
    let mut quotas: Vec<u64> = exact.iter().map(|x| x.floor() as u64).collect();
    let mut left = plan.calls.saturating_sub(quotas.iter().sum());
    let mut order: Vec<usize> = (0..exact.len()).filter(|i| weights[*i] > 0.0).collect();
    order.sort_by(|a, b| (exact[*b] - exact[*b].floor()).total_cmp(&(exact[*a] - exact[*a].floor())));
    for i in order.iter().cycle() {
        if left == 0 {
            break;
        }
        quotas[*i] += 1;
        left -= 1;
    }
    quotas
}

/// Today's arrivals stop at this local minute (exclusive), `None` if before opening.
fn today_limit(plan: &Plan) -> Option<u32> {
    let cutoff = (plan.now - TODAY_MARGIN).with_timezone(&plan.tz);
    if cutoff.date_naive() != plan.today() {
        return None;
    }
    let minute = cutoff.hour() * 60 + cutoff.minute();
    (minute > OPEN_MINUTE).then_some(minute.min(CLOSE_MINUTE))
}

const INBOUND_HOLD_SHARE: f64 = 0.2;
const OUTBOUND_HOLD_SHARE: f64 = 0.1;

fn talk(median_s: f64, min_s: f64, max_s: f64) -> Lognormal {
    Lognormal {
        median_s,
        sigma: TALK_SIGMA,
        min_s,
        max_s,
    }
}

/// Inbound service calls: mostly resolved; a sale takes longest, a wrong party is quick.
fn inbound_wrapups(d: &DispositionIds) -> Vec<WrapUp> {
    WrapUp::mix([
        (d.resolved, 78, talk(240.0, 30.0, 900.0)),
        (d.callback, 9, talk(150.0, 30.0, 600.0)),
        (d.sale, 5, talk(420.0, 120.0, 900.0)),
        (d.not_interested, 3, talk(120.0, 20.0, 600.0)),
        (d.wrong_party, 2, talk(40.0, 10.0, 180.0)),
        (d.do_not_call, 3, talk(60.0, 10.0, 240.0)),
    ])
}

/// Outbound dials: a dialler dials as fast as its agents can take the live connects, so the
/// curve follows the outbound staffing (shifts starting 09:00–12:00), leaning to the early
/// evening, when more people are at home.
fn outbound_weight(hour: f64) -> f64 {
    let staffed = OUTBOUND_SHIFT_STARTS
        .iter()
        .filter(|start| {
            let start = f64::from(**start);
            start <= hour && hour < start + 8.0
        })
        .count() as f64
        / OUTBOUND_SHIFT_STARTS.len() as f64;
    staffed * (1.0 + 0.3 * sim::curves::bump(hour, 17.5, 1.0))
}

fn combined_weight(hour: f64) -> f64 {
    inbound_weight(hour) + outbound_weight(hour)
}

fn day_rng(seed: u64, day: u32) -> StdRng {
    StdRng::seed_from_u64(seed ^ u64::from(day).wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Simulates day `day` of the plan (0 = the oldest) with exactly `quota` calls, numbered from
/// `first_seq` in order of offer.
pub fn simulate_day(plan: &Plan, day: u32, quota: u64, first_seq: u64) -> History {
    let mut history = History::default();
    let Some(date) = plan.date(day) else {
        return history;
    };
    let Some(open) = local_time(&plan.tz, date, OPEN_MINUTE) else {
        return history;
    };
    let model = plan.model();
    let mut sim = Day::new(&model, plan.now, day_rng(plan.seed, day));
    let limit = if date == plan.today() {
        today_limit(plan).unwrap_or(OPEN_MINUTE)
    } else {
        CLOSE_MINUTE
    };

    // Agents working today, and their pools.
    for (i, (id, pool)) in plan.agents.iter().enumerate() {
        if let Some(start_minute) = rota(i as u32, *pool, date.weekday()) {
            let shift = Shift {
                start_minute,
                length: SHIFT,
            };
            sim.add_agent(*id, *pool, shift, &plan.tz, date);
        }
    }

    // Arrivals: campaign by volume weight, time by the campaign direction's curve.
    let total_weight: f64 = plan.campaigns.iter().map(|c| c.weight).sum();
    let profiles = [Profile::new(inbound_weight), Profile::new(outbound_weight)];
    let rng = sim.rng();
    let mut arrivals: Vec<(DateTime<Utc>, usize)> = Vec::with_capacity(quota as usize);
    for _ in 0..quota {
        let mut x = rng.gen::<f64>() * total_weight;
        let mut c = plan.campaigns.len().saturating_sub(1);
        for (i, campaign) in plan.campaigns.iter().enumerate() {
            if x < campaign.weight {
                c = i;
                break;
            }
            x -= campaign.weight;
        }
        let Some(campaign) = plan.campaigns.get(c) else { break };
        let profile = match campaign.direction {
            Direction::Inbound => &profiles[0],
            Direction::Outbound => &profiles[1],
        };
        // An outbound campaign before the dialler starts (today, early) falls back to the inbound curve.
        let offset = profile
            .sample(rng, limit)
            .or_else(|| profiles[0].sample(rng, limit))
            .unwrap_or(TimeDelta::zero());
        arrivals.push((open + offset, c));
    }
    arrivals.sort_by_key(|(at, _)| *at);

    history.interactions.reserve(arrivals.len());
    for (at, c) in arrivals {
        if let Some(campaign) = plan.campaigns.get(c) {
            // Every call of a plan ends by now (arrivals stop `TODAY_MARGIN` before it).
            history.interactions.extend(sim.call(campaign, at));
        }
    }
    history.interactions.sort_by_key(|call| call.offered_at);
    for (n, call) in history.interactions.iter_mut().enumerate() {
        call.external_id = format!("G{}-{:010}", plan.run, first_seq + n as u64);
    }
    sim.finish(&mut history.intervals);
    history
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use chrono::TimeZone;

    use super::*;
    use crate::db::interactions::NewInteraction;
    use crate::domain::{AgentState, AnsweredBy, Outcome, RoutingState};
    use crate::seed::sim::curves::ms;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).earliest().unwrap_or_default()
    }

    fn ids(n: usize, tag: u8) -> Vec<Uuid> {
        (0..n)
            .map(|i| Uuid::from_u128((u128::from(tag) << 64) | (i as u128 + 1)))
            .collect()
    }

    fn plan(now: DateTime<Utc>, calls: u64, days: u32, agents: usize, campaigns: usize) -> Plan {
        let d = ids(9, 3);
        let settings = GeneratorSettings {
            calls,
            days,
            ..GeneratorSettings::default()
        };
        Plan::new(
            chrono_tz::Europe::London,
            now,
            &settings,
            1,
            &ids(agents, 1),
            &ids(campaigns, 2),
            DispositionIds {
                resolved: d[0],
                sale: d[1],
                callback: d[2],
                not_interested: d[3],
                wrong_party: d[4],
                do_not_call: d[5],
                answering_machine: d[6],
                no_answer: d[7],
                busy: d[8],
            },
        )
    }

    fn simulate(plan: &Plan) -> History {
        let mut all = History::default();
        let mut seq = 1;
        for (day, quota) in day_quotas(plan).into_iter().enumerate() {
            let h = simulate_day(plan, day as u32, quota, seq);
            seq += quota;
            all.interactions.extend(h.interactions);
            all.intervals.extend(h.intervals);
        }
        all.intervals.extend(plan.current_states());
        all
    }

    type Span = (DateTime<Utc>, Option<DateTime<Utc>>);

    fn assert_disjoint(what: &str, mut spans: Vec<Span>) {
        spans.sort_by_key(|s| s.0);
        for pair in spans.windows(2) {
            assert!(
                pair[0].1.is_some_and(|end| end <= pair[1].0),
                "{what}: {:?} overlaps {:?}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn outbound_campaigns_are_paced_to_different_drop_rates() {
        let plan = plan(utc(2026, 10, 28, 15, 7), 60_000, 7, 60, 8);
        let h = simulate(&plan);
        let mut by_campaign: HashMap<Uuid, (u32, u32)> = HashMap::new();
        for c in h.interactions.iter().filter(|c| c.direction == Direction::Outbound) {
            if c.answered_by == Some(AnsweredBy::Human) {
                let (drops, human) = by_campaign.entry(c.campaign_id.unwrap_or_default()).or_default();
                *human += 1;
                *drops += u32::from(c.outcome == Outcome::Abandoned);
            }
        }
        let mut rates: Vec<f64> = plan
            .campaigns
            .iter()
            .filter(|c| c.direction == Direction::Outbound)
            .map(|c| {
                let (drops, human) = by_campaign.get(&c.id).copied().unwrap_or_default();
                f64::from(drops) / f64::from(human.max(1))
            })
            .collect();
        rates.sort_by(f64::total_cmp);
        assert_eq!(rates.len(), 4, "four outbound campaigns");
        // Paced for 1 %, 1.5 %, 2.4 % and 3.2 %, plus drops when no agent is free.
        assert!(rates[0] >= 0.008 && rates[0] < 0.03, "{rates:?}");
        assert!(
            rates[2] < 0.03,
            "most campaigns stay under the usual 3 % limit: {rates:?}"
        );
        assert!(rates[2] >= 0.024, "one is close to it (a WARNING): {rates:?}");
        assert!(rates[3] > 0.03, "one campaign is over it: {rates:?}");
    }

    #[test]
    fn exact_volume_and_consistent_history() {
        // Mid-afternoon on a Wednesday, across the October clock change.
        let now = utc(2026, 10, 28, 15, 7);
        let plan = plan(now, 20_000, 7, 40, 5);
        let h = simulate(&plan);
        assert_eq!(h.interactions.len(), 20_000);
        let external: HashSet<&str> = h.interactions.iter().map(|c| c.external_id.as_str()).collect();
        assert_eq!(external.len(), h.interactions.len());
        let mut calls_by_agent: HashMap<Uuid, Vec<Span>> = HashMap::new();
        let mut on_call: HashMap<Uuid, i64> = HashMap::new();
        for c in &h.interactions {
            let end = c.wrap_ended_at.or(c.ended_at).unwrap_or(c.offered_at);
            assert!(c.offered_at >= plan.now - TimeDelta::days(7) && end <= now, "{c:?}");
            if c.outcome == Outcome::Answered {
                let answered = c.answered_at.unwrap_or(c.offered_at);
                assert_eq!(c.wait_ms, Some((answered - c.offered_at).num_milliseconds()));
                assert_eq!(c.ended_at, Some(answered + ms(c.talk_ms + c.hold_ms)));
            }
            if let Some(agent) = c.agent_id {
                let wrap_ended = c.wrap_ended_at.unwrap_or(c.offered_at);
                assert_eq!(c.ended_at.map(|e| e + ms(c.wrap_ms)), Some(wrap_ended));
                calls_by_agent
                    .entry(agent)
                    .or_default()
                    .push((c.answered_at.unwrap_or(c.offered_at), Some(wrap_ended)));
                *on_call.entry(agent).or_default() += c.talk_ms + c.hold_ms;
            }
        }
        assert!(calls_by_agent.len() > 30, "most agents take calls");
        for (agent, spans) in calls_by_agent {
            assert_disjoint(&format!("calls of {agent}"), spans);
        }
        let mut by_axis: HashMap<(Uuid, &str), Vec<Span>> = HashMap::new();
        let mut logged_on_call: HashMap<Uuid, i64> = HashMap::new();
        for s in &h.intervals {
            assert!(s.ended_at.is_none_or(|end| end > s.started_at && end <= now), "{s:?}");
            assert!(s.ended_at.is_some() || s.started_at == now, "{s:?}");
            by_axis
                .entry((s.agent_id, s.state.axis()))
                .or_default()
                .push((s.started_at, s.ended_at));
            if let (AgentState::Routing(RoutingState::OnCall), Some(end)) = (s.state, s.ended_at) {
                *logged_on_call.entry(s.agent_id).or_default() += (end - s.started_at).num_milliseconds();
            }
        }
        for ((agent, axis), spans) in by_axis {
            assert_disjoint(&format!("{axis} of {agent}"), spans);
        }
        assert_eq!(
            on_call, logged_on_call,
            "ON_CALL intervals are the calls' talk and hold"
        );
        // The mix: inbound mostly answered, some abandoned; outbound about 60 % live.
        let count = |p: &dyn Fn(&NewInteraction) -> bool| h.interactions.iter().filter(|c| p(c)).count() as f64;
        let inbound = count(&|c| c.direction == Direction::Inbound);
        let abandoned = count(&|c| c.direction == Direction::Inbound && c.outcome == Outcome::Abandoned);
        let outbound = count(&|c| c.direction == Direction::Outbound);
        let human = count(&|c| c.direction == Direction::Outbound && c.answered_by == Some(AnsweredBy::Human));
        assert!(
            (0.01..0.25).contains(&(abandoned / inbound)),
            "abandoned {abandoned} of {inbound}"
        );
        assert!((0.55..0.67).contains(&(human / outbound)), "live {human} of {outbound}");
    }

    #[test]
    fn same_seed_same_traffic() {
        let now = utc(2026, 3, 30, 13, 37);
        let key = |h: &History| {
            h.interactions
                .iter()
                .map(|c| {
                    (
                        c.external_id.clone(),
                        c.offered_at,
                        c.agent_id,
                        c.outcome,
                        c.talk_ms,
                        c.disposition_id,
                    )
                })
                .collect::<Vec<_>>()
        };
        let a = simulate(&plan(now, 5_000, 5, 20, 4));
        let b = simulate(&plan(now, 5_000, 5, 20, 4));
        assert_eq!(key(&a), key(&b));
        assert_eq!(a.intervals.len(), b.intervals.len());
        let mut other = plan(now, 5_000, 5, 20, 4);
        other.seed += 1;
        assert_ne!(key(&a), key(&simulate(&other)));
    }

    #[test]
    fn heavy_load_scales_handle_times_and_weekdays_differ() {
        let now = utc(2026, 3, 30, 21, 0);
        let heavy = plan(now, 10_000_000, 90, 500, 20);
        assert!(heavy.handle_time_scale < 0.8, "scale {}", heavy.handle_time_scale);
        let quotas = day_quotas(&heavy);
        assert_eq!(quotas.iter().sum::<u64>(), 10_000_000);
        let monday = (0..heavy.days).find(|d| heavy.date(*d).is_some_and(|x| x.weekday() == Weekday::Mon));
        let sunday = (0..heavy.days).find(|d| heavy.date(*d).is_some_and(|x| x.weekday() == Weekday::Sun));
        if let (Some(m), Some(s)) = (monday, sunday) {
            assert!(quotas[m as usize] > 2 * quotas[s as usize]);
        }
        let inbound_agents = heavy.agents.iter().filter(|a| a.1 == Direction::Inbound).count();
        assert!((100..500).contains(&inbound_agents), "{inbound_agents}");
        let light = plan(now, 2_000, 90, 500, 20);
        assert_eq!(light.handle_time_scale, 1.0);
    }
}

//! The demo contact centre: teams, skills, agents, campaigns, dispositions, and a few days of
//! interactions and agent state history. Written once (skipped when the org already has teams).
//!
//! The history is simulated rather than drawn row by row, so that it holds together the way
//! real data does: calls arrive over the day in the organization's time zone, every answered
//! call is taken by an agent who is on shift, not on a break and not already busy, and the
//! agent state log is derived from those same calls. Each simulated day has its own fixed seed,
//! so every fresh demo database tells the same story; only the dates follow "today".

use std::collections::VecDeque;
use std::ops::RangeInclusive;

use chrono::{DateTime, Days, NaiveDate, SubsecRound, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::contact_centre::{self as cc, NewAgent, NewAgentSkill, NewCampaign, NewDisposition, NewStateInterval};
use crate::db::interactions::NewInteraction;
use crate::db::orgs;
use crate::domain::{AgentState, AnsweredBy, CampaignStatus, DialMode, Direction, Outcome, Presence, RoutingState};
use crate::error::{AppError, AppResult};

/// Base seed; day `n` of the history (0 = the oldest) uses `DEMO_SEED + n`, so a day's calls do
/// not change when the time of seeding cuts today's calls short.
const DEMO_SEED: u64 = 0x0DE0_5EED_2026;
/// Full days of history before today.
const FULL_DAYS: u64 = 3;
/// Opening hours of the demo centre, local minutes since midnight.
const OPEN_MINUTE: u32 = 8 * 60;
const CLOSE_MINUTE: u32 = 20 * 60;
const INBOUND_CALLS_PER_DAY: RangeInclusive<u32> = 380..=420;
const OUTBOUND_CALLS_PER_DAY: RangeInclusive<u32> = 235..=265;
/// Callers who hang up at some random point of their wait, however fast the queue is.
const IMPATIENT_CALLER_SHARE: f64 = 0.08;
/// An Outbound Sales agent takes an inbound call only when no Inbound Care agent can answer
/// it within this much longer, so the sales team helps at peaks without doing the care work.
const OVERFLOW_PENALTY: TimeDelta = TimeDelta::seconds(30);
/// Shares of outbound connects by result; the rest ring out unanswered or busy.
const OUTBOUND_HUMAN_SHARE: f64 = 0.60;
const OUTBOUND_MACHINE_SHARE: f64 = 0.15;
const OUTBOUND_DROPPED_SHARE: f64 = 0.03;
const OUTBOUND_NO_ANSWER_SHARE: f64 = 0.17;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Team {
    InboundCare,
    OutboundSales,
}

const TEAMS: [(Team, &str); 2] = [
    (Team::InboundCare, "Inbound Care"),
    (Team::OutboundSales, "Outbound Sales"),
];

const SKILLS: [(&str, &str); 4] = [
    ("English", "Handles calls in English."),
    ("Spanish", "Handles calls in Spanish."),
    ("Billing", "Invoices, payments and refunds."),
    ("Retention", "Customers who want to cancel or not renew."),
];

struct AgentSpec {
    name: &'static str,
    extension: &'static str,
    team: Team,
    /// Local minutes since midnight, [start, end). Staggered so that the peaks are covered.
    shift: (u32, u32),
    /// The presence the agent shows right after seeding.
    presence_now: Presence,
    /// (skill name, proficiency 1–5).
    skills: &'static [(&'static str, i16)],
}

/// The first agent is the `agent@demo.example` login, so that login sees its own calls.
const AGENTS: [AgentSpec; 8] = [
    AgentSpec {
        name: "Alex Agent",
        extension: "1001",
        team: Team::InboundCare,
        shift: (8 * 60, 16 * 60),
        presence_now: Presence::Available,
        skills: &[("English", 4), ("Billing", 3)],
    },
    AgentSpec {
        name: "Priya Shah",
        extension: "1002",
        team: Team::InboundCare,
        shift: (8 * 60, 16 * 60),
        presence_now: Presence::Available,
        skills: &[("English", 5), ("Billing", 4), ("Retention", 2)],
    },
    AgentSpec {
        name: "Tom Walsh",
        extension: "1003",
        team: Team::InboundCare,
        shift: (9 * 60, 17 * 60),
        presence_now: Presence::Available,
        skills: &[("English", 3), ("Billing", 2)],
    },
    AgentSpec {
        name: "María García",
        extension: "1004",
        team: Team::InboundCare,
        shift: (10 * 60, 18 * 60),
        presence_now: Presence::Available,
        skills: &[("English", 4), ("Spanish", 5)],
    },
    AgentSpec {
        name: "Chen Wei",
        extension: "1005",
        team: Team::InboundCare,
        shift: (12 * 60, 20 * 60),
        presence_now: Presence::Available,
        skills: &[("English", 4), ("Billing", 5), ("Retention", 3)],
    },
    AgentSpec {
        name: "Fatima Khan",
        extension: "1006",
        team: Team::OutboundSales,
        shift: (9 * 60, 17 * 60),
        presence_now: Presence::Available,
        skills: &[("English", 5), ("Retention", 4)],
    },
    AgentSpec {
        name: "Liam O'Connor",
        extension: "1007",
        team: Team::OutboundSales,
        shift: (11 * 60, 19 * 60),
        presence_now: Presence::Break,
        skills: &[("English", 4), ("Retention", 3)],
    },
    AgentSpec {
        name: "Sofia Rossi",
        extension: "1008",
        team: Team::OutboundSales,
        shift: (12 * 60, 20 * 60),
        presence_now: Presence::Offline,
        skills: &[("English", 3), ("Spanish", 4), ("Retention", 2)],
    },
];

/// The demo's disposition ids, one field per code.
#[derive(Clone, Copy, Debug)]
struct DispositionIds {
    resolved: Uuid,
    sale: Uuid,
    callback: Uuid,
    not_interested: Uuid,
    wrong_party: Uuid,
    do_not_call: Uuid,
    answering_machine: Uuid,
    no_answer: Uuid,
}

/// Creates the demo contact centre and its history, all in one transaction, unless the
/// organization already has a team (then it was seeded before, or is managed by hand).
pub async fn ensure(conn: &mut AsyncPgConnection, tenant: &Tenant, agent_user: Option<Uuid>) -> AppResult<()> {
    conn.transaction(async |conn| -> AppResult<()> {
        if cc::has_any_team(conn, tenant).await? {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let org = orgs::get(conn, tenant).await?;
        let tz: Tz = org.timezone.parse().map_err(|_| {
            AppError::internal(format!("organization time zone {:?} is not an IANA zone", org.timezone))
        })?;
        // Whole milliseconds, so that the log's intervals closed at `now` and the ones opened at
        // `now` meet exactly after the round trip through PostgreSQL (microseconds).
        let now = Utc::now().trunc_subsecs(3);

        let mut team_ids = Vec::with_capacity(TEAMS.len());
        for (team, name) in TEAMS {
            team_ids.push((team, cc::insert_team(conn, tenant, name).await?));
        }
        let mut skill_ids = Vec::with_capacity(SKILLS.len());
        for (name, description) in SKILLS {
            skill_ids.push((name, cc::insert_skill(conn, tenant, name, Some(description)).await?));
        }

        let mut sim_agents = Vec::with_capacity(AGENTS.len());
        let mut agent_skills = Vec::new();
        for (n, spec) in AGENTS.iter().enumerate() {
            let team_id = team_ids.iter().find(|(t, _)| *t == spec.team).map(|(_, id)| *id);
            let agent = NewAgent {
                user_id: if n == 0 { agent_user } else { None },
                display_name: spec.name,
                extension: Some(spec.extension),
                team_id,
                presence: spec.presence_now,
                presence_reason: None,
                routing_state: RoutingState::Idle,
                state_since: now,
            };
            let id = cc::insert_agent(conn, tenant, &agent).await?;
            for &(skill, proficiency) in spec.skills {
                let skill_id = skill_ids
                    .iter()
                    .find(|(name, _)| *name == skill)
                    .map(|(_, id)| *id)
                    .ok_or_else(|| AppError::internal(format!("demo agent skill {skill} is not a demo skill")))?;
                agent_skills.push(NewAgentSkill {
                    agent_id: id,
                    skill_id,
                    proficiency,
                });
            }
            sim_agents.push(SimAgent {
                id,
                team: spec.team,
                shift: spec.shift,
                presence_now: spec.presence_now,
            });
        }
        cc::insert_agent_skills(conn, tenant, &agent_skills).await?;

        let inbound_campaign = cc::insert_campaign(
            conn,
            tenant,
            &NewCampaign {
                name: "Customer Care",
                direction: Direction::Inbound,
                dial_mode: None,
                status: CampaignStatus::Active,
                service_level_threshold_seconds: None,
                service_level_target_percent: None,
                max_abandon_rate_percent: None,
            },
        )
        .await?;
        let outbound_campaign = cc::insert_campaign(
            conn,
            tenant,
            &NewCampaign {
                name: "Spring Renewals",
                direction: Direction::Outbound,
                dial_mode: Some(DialMode::Predictive),
                status: CampaignStatus::Active,
                service_level_threshold_seconds: None,
                service_level_target_percent: None,
                // The regulator's ceiling for predictive dialling is 3 % of live calls.
                max_abandon_rate_percent: Some(3.0),
            },
        )
        .await?;

        let human = NewDisposition {
            human_answered: true,
            ..NewDisposition::default()
        };
        let contact = NewDisposition { contact: true, ..human };
        let dispositions = DispositionIds {
            resolved: cc::insert_disposition(
                conn,
                tenant,
                &NewDisposition {
                    code: "RESOLVED",
                    label: "Resolved",
                    ..contact
                },
            )
            .await?,
            sale: cc::insert_disposition(
                conn,
                tenant,
                &NewDisposition {
                    code: "SALE",
                    label: "Sale",
                    success: true,
                    ..contact
                },
            )
            .await?,
            callback: cc::insert_disposition(
                conn,
                tenant,
                &NewDisposition {
                    code: "CALLBACK",
                    label: "Callback requested",
                    callback: true,
                    ..contact
                },
            )
            .await?,
            not_interested: cc::insert_disposition(
                conn,
                tenant,
                &NewDisposition {
                    code: "NOT_INTERESTED",
                    label: "Not interested",
                    ..contact
                },
            )
            .await?,
            wrong_party: cc::insert_disposition(
                conn,
                tenant,
                &NewDisposition {
                    code: "WRONG_PARTY",
                    label: "Wrong party",
                    ..human
                },
            )
            .await?,
            do_not_call: cc::insert_disposition(
                conn,
                tenant,
                &NewDisposition {
                    code: "DO_NOT_CALL",
                    label: "Do not call",
                    do_not_call: true,
                    ..contact
                },
            )
            .await?,
            answering_machine: cc::insert_disposition(
                conn,
                tenant,
                &NewDisposition {
                    code: "ANSWERING_MACHINE",
                    label: "Answering machine",
                    answering_machine: true,
                    ..NewDisposition::default()
                },
            )
            .await?,
            no_answer: cc::insert_disposition(
                conn,
                tenant,
                &NewDisposition {
                    code: "NO_ANSWER",
                    label: "No answer",
                    ..NewDisposition::default()
                },
            )
            .await?,
        };

        let plan = SimPlan {
            tz,
            now,
            agents: sim_agents,
            inbound_campaign,
            outbound_campaign,
            dispositions,
        };
        let history = simulate(&plan);
        let calls = crate::kpi::writer::insert_calls(conn, tenant, &history.interactions).await?;
        let intervals = crate::kpi::writer::insert_state_intervals(conn, tenant, &history.intervals).await?;
        tracing::info!(
            calls,
            intervals,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "seeded the demo contact centre"
        );
        Ok(())
    })
    .await
}

/// An agent as the simulation sees it.
#[derive(Clone, Copy, Debug)]
struct SimAgent {
    id: Uuid,
    team: Team,
    shift: (u32, u32),
    presence_now: Presence,
}

struct SimPlan {
    tz: Tz,
    now: DateTime<Utc>,
    agents: Vec<SimAgent>,
    inbound_campaign: Uuid,
    outbound_campaign: Uuid,
    dispositions: DispositionIds,
}

struct History {
    interactions: Vec<NewInteraction>,
    intervals: Vec<NewStateInterval>,
}

/// How long talk lasts for one kind of conversation: log-normal around the median, clamped.
#[derive(Clone, Copy, Debug)]
struct TalkTime {
    median_s: f64,
    min_s: f64,
    max_s: f64,
}

/// A disposition an agent may choose, how often, and how long such a call lasts.
#[derive(Clone, Copy, Debug)]
struct WrapUp {
    disposition: Uuid,
    weight: u32,
    talk: TalkTime,
}

/// Inbound care calls: mostly resolved; talk 2–10 minutes whatever the outcome.
fn inbound_wrapups(d: &DispositionIds) -> [WrapUp; 6] {
    let talk = TalkTime {
        median_s: 210.0,
        min_s: 120.0,
        max_s: 600.0,
    };
    [
        (d.resolved, 80),
        (d.callback, 9),
        (d.sale, 5),
        (d.not_interested, 2),
        (d.wrong_party, 2),
        (d.do_not_call, 2),
    ]
    .map(|(disposition, weight)| WrapUp {
        disposition,
        weight,
        talk,
    })
}

/// Renewal calls: a sale takes a while, a refusal or a wrong number is over quickly.
fn outbound_wrapups(d: &DispositionIds) -> [WrapUp; 6] {
    let talk = |median_s, min_s, max_s| TalkTime { median_s, min_s, max_s };
    [
        (d.sale, 17, talk(420.0, 180.0, 900.0)),
        (d.callback, 14, talk(150.0, 60.0, 400.0)),
        (d.not_interested, 42, talk(70.0, 20.0, 240.0)),
        (d.wrong_party, 12, talk(25.0, 10.0, 90.0)),
        (d.do_not_call, 5, talk(35.0, 10.0, 120.0)),
        (d.resolved, 10, talk(200.0, 60.0, 600.0)),
    ]
    .map(|(disposition, weight, talk)| WrapUp {
        disposition,
        weight,
        talk,
    })
}

fn bump(hour: f64, centre: f64, width: f64) -> f64 {
    (-0.5 * ((hour - centre) / width).powi(2)).exp()
}

/// Inbound arrivals: a late-morning peak and a smaller mid-afternoon one.
fn inbound_weight(hour: f64) -> f64 {
    0.3 + bump(hour, 11.0, 1.3) + 0.85 * bump(hour, 14.75, 1.4)
}

/// Outbound connects: the dialler starts with the first sales shift and works hardest mid-morning
/// and in the early evening, when more people are at home.
fn outbound_weight(hour: f64) -> f64 {
    if hour < 9.0 {
        0.0
    } else {
        0.5 + 0.5 * bump(hour, 10.5, 1.2) + 0.8 * bump(hour, 17.5, 1.2)
    }
}

/// A time-of-day distribution over opening hours, one weight per minute.
struct Profile {
    cumulative: Vec<f64>,
}

impl Profile {
    fn new(weight: fn(f64) -> f64) -> Self {
        let mut total = 0.0;
        let cumulative = (OPEN_MINUTE..CLOSE_MINUTE)
            .map(|minute| {
                total += weight((f64::from(minute) + 0.5) / 60.0).max(0.0);
                total
            })
            .collect();
        Self { cumulative }
    }

    /// A random instant, as an offset from opening time.
    fn sample(&self, rng: &mut StdRng) -> TimeDelta {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let x = rng.gen::<f64>() * total;
        let minute = self
            .cumulative
            .partition_point(|&c| c <= x)
            .min(self.cumulative.len().saturating_sub(1));
        TimeDelta::minutes(minute as i64) + ms(rng.gen_range(0..60_000))
    }
}

fn ms(millis: i64) -> TimeDelta {
    TimeDelta::milliseconds(millis)
}

/// A local wall-clock time of `date` in UTC (the earlier instant if the clock is ambiguous).
fn local_time(tz: &Tz, date: NaiveDate, minute: u32) -> Option<DateTime<Utc>> {
    let naive = date.and_hms_opt(minute / 60, minute % 60, 0)?;
    tz.from_local_datetime(&naive).earliest().map(|t| t.with_timezone(&Utc))
}

/// Log-normal (Box–Muller), clamped to the range: most calls near the median, a long tail.
fn log_normal_ms(rng: &mut StdRng, talk: TalkTime) -> i64 {
    let u1 = 1.0 - rng.gen::<f64>();
    let u2 = rng.gen::<f64>();
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    let seconds = (talk.median_s * (0.45 * z).exp()).clamp(talk.min_s, talk.max_s);
    (seconds * 1000.0).round() as i64
}

/// Numbers from Ofcom's range reserved for drama (07700 900000–900999): never a real person.
fn customer_number(rng: &mut StdRng) -> String {
    format!("+447700900{:03}", rng.gen_range(0..1000))
}

#[derive(Clone, Copy, Debug)]
struct PlannedBreak {
    state: Presence,
    at: DateTime<Utc>,
    length: TimeDelta,
}

#[derive(Clone, Copy, Debug)]
struct AgentCall {
    answered: DateTime<Utc>,
    ended: DateTime<Utc>,
    wrap_ended: Option<DateTime<Utc>>,
}

/// One agent's day. `free_at` only moves forward and every call starts at or after it, so
/// an agent's calls and breaks can never overlap.
struct AgentDay {
    agent: SimAgent,
    shift_start: DateTime<Utc>,
    shift_end: DateTime<Utc>,
    /// Breaks not taken yet, in order. A break is taken late when a call runs over it.
    pending: VecDeque<PlannedBreak>,
    taken: Vec<(Presence, DateTime<Utc>, DateTime<Utc>)>,
    calls: Vec<AgentCall>,
    free_at: DateTime<Utc>,
}

impl AgentDay {
    fn new(agent: SimAgent, tz: &Tz, date: NaiveDate, now: DateTime<Utc>, rng: &mut StdRng) -> Option<Self> {
        // Drawn before any early return, so that a full day's random stream does not depend on `now`.
        let break_jitter = TimeDelta::minutes(rng.gen_range(0..=30));
        let lunch_jitter = TimeDelta::minutes(rng.gen_range(0..=30));
        let shift_start = local_time(tz, date, agent.shift.0)?;
        let shift_end = local_time(tz, date, agent.shift.1)?;
        if shift_start >= now || shift_end <= shift_start {
            return None;
        }
        let pending = VecDeque::from([
            PlannedBreak {
                state: Presence::Break,
                at: shift_start + TimeDelta::hours(2) + break_jitter,
                length: TimeDelta::minutes(15),
            },
            PlannedBreak {
                state: Presence::Lunch,
                at: shift_start + TimeDelta::hours(4) + lunch_jitter,
                length: TimeDelta::minutes(30),
            },
        ]);
        Some(Self {
            agent,
            shift_start,
            shift_end,
            pending,
            taken: Vec::new(),
            calls: Vec::new(),
            free_at: shift_start,
        })
    }

    /// When the agent could answer a call that is ready at `t`: after any call in progress and
    /// after any break that falls due first; `None` once the shift is over.
    fn earliest_start(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut free = self.free_at;
        for b in &self.pending {
            if t.max(free) < b.at {
                break;
            }
            free = free.max(b.at) + b.length;
        }
        let start = t.max(free);
        (start < self.shift_end).then_some(start)
    }

    /// Records a call answered at a time [`Self::earliest_start`] offered; first takes the
    /// breaks that fell due before it, exactly as `earliest_start` assumed.
    fn take_call(&mut self, call: AgentCall) {
        self.take_breaks_due(call.answered);
        self.free_at = call.wrap_ended.unwrap_or(call.ended);
        self.calls.push(call);
    }

    fn take_breaks_due(&mut self, t: DateTime<Utc>) {
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

    /// The agent's state log of the day, cut at `now`. PRESENCE: AVAILABLE around the breaks
    /// from shift start until the shift ends (or the last call is wrapped up, if later).
    /// ROUTING: IDLE between calls, ON_CALL while talking or holding, WRAP_UP after.
    fn into_intervals(mut self, now: DateTime<Utc>, out: &mut Vec<NewStateInterval>) {
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
        let id = self.agent.id;
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

        let mut cursor = self.shift_start;
        for call in &self.calls {
            push(AgentState::Routing(RoutingState::Idle), cursor, call.answered);
            push(AgentState::Routing(RoutingState::OnCall), call.answered, call.ended);
            cursor = call.ended;
            if let Some(wrap_ended) = call.wrap_ended {
                push(AgentState::Routing(RoutingState::WrapUp), call.ended, wrap_ended);
                cursor = wrap_ended;
            }
        }
        push(AgentState::Routing(RoutingState::Idle), cursor, day_end);
    }
}

/// The agent who can answer soonest; agents of other teams only when `overflow_penalty` allows
/// them, ranked as if they answered that much later. Ties go to the agent idle the longest.
fn pick_agent(
    agents: &[AgentDay],
    ready: DateTime<Utc>,
    home: Team,
    overflow_penalty: Option<TimeDelta>,
) -> Option<(usize, DateTime<Utc>)> {
    agents
        .iter()
        .enumerate()
        .filter_map(|(i, agent)| {
            let penalty = if agent.agent.team == home {
                TimeDelta::zero()
            } else {
                overflow_penalty?
            };
            let start = agent.earliest_start(ready)?;
            Some(((start + penalty, agent.free_at), i, start))
        })
        .min_by_key(|(rank, _, _)| *rank)
        .map(|(_, i, start)| (i, start))
}

/// Everything one simulated day needs besides its agents.
struct DayContext<'p> {
    plan: &'p SimPlan,
    inbound_wrapups: [WrapUp; 6],
    outbound_wrapups: [WrapUp; 6],
}

/// A call answered by an agent: talk, sometimes hold, then wrap-up. `None` when it would not be
/// over by `now` (today's calls still in progress are left out).
#[allow(clippy::too_many_arguments)]
fn agent_call(
    ctx: &DayContext<'_>,
    rng: &mut StdRng,
    agent: &mut AgentDay,
    direction: Direction,
    offered: DateTime<Utc>,
    answered: DateTime<Utc>,
    wrapup: WrapUp,
    hold_share: f64,
) -> Option<NewInteraction> {
    let talk_ms = log_normal_ms(rng, wrapup.talk);
    let hold_ms = if rng.gen_bool(hold_share) {
        rng.gen_range(10_000..=120_000)
    } else {
        0
    };
    let wrap_ms = rng.gen_range(10_000..=90_000);
    let ended = answered + ms(talk_ms + hold_ms);
    let wrap_ended = ended + ms(wrap_ms);
    if wrap_ended > ctx.plan.now {
        return None;
    }
    agent.take_call(AgentCall {
        answered,
        ended,
        wrap_ended: Some(wrap_ended),
    });
    Some(NewInteraction {
        campaign_id: Some(match direction {
            Direction::Inbound => ctx.plan.inbound_campaign,
            Direction::Outbound => ctx.plan.outbound_campaign,
        }),
        agent_id: Some(agent.agent.id),
        external_id: String::new(),
        direction,
        customer_number: Some(customer_number(rng)),
        offered_at: offered,
        answered_at: Some(answered),
        ended_at: Some(ended),
        wrap_ended_at: Some(wrap_ended),
        wait_ms: Some((answered - offered).num_milliseconds()),
        talk_ms,
        hold_ms,
        wrap_ms,
        outcome: Outcome::Answered,
        disposition_id: Some(wrapup.disposition),
        answered_by: Some(AnsweredBy::Human),
        notes: None,
    })
}

/// A call no agent handled: abandoned, dropped, a machine, unanswered or busy.
fn unattended_call(
    ctx: &DayContext<'_>,
    rng: &mut StdRng,
    direction: Direction,
    offered: DateTime<Utc>,
    outcome: Outcome,
    answered_by: Option<AnsweredBy>,
    disposition_id: Option<Uuid>,
) -> NewInteraction {
    NewInteraction {
        campaign_id: Some(match direction {
            Direction::Inbound => ctx.plan.inbound_campaign,
            Direction::Outbound => ctx.plan.outbound_campaign,
        }),
        agent_id: None,
        external_id: String::new(),
        direction,
        customer_number: Some(customer_number(rng)),
        offered_at: offered,
        answered_at: None,
        ended_at: None,
        wrap_ended_at: None,
        wait_ms: None,
        talk_ms: 0,
        hold_ms: 0,
        wrap_ms: 0,
        outcome,
        disposition_id,
        answered_by,
        notes: None,
    }
}

/// An inbound call: the caller waits in the queue until an agent is free or their patience
/// runs out (a few hang up early whatever the queue, the rest wait up to three minutes).
fn inbound_call(
    ctx: &DayContext<'_>,
    rng: &mut StdRng,
    agents: &mut [AgentDay],
    offered: DateTime<Utc>,
) -> Option<NewInteraction> {
    let queue_ms = rng.gen_range(2_000..=12_000);
    let patience_ms: i64 = if rng.gen_bool(IMPATIENT_CALLER_SHARE) {
        if rng.gen_bool(0.3) {
            rng.gen_range(1_000..5_000)
        } else {
            rng.gen_range(5_000..=180_000)
        }
    } else {
        rng.gen_range(100_000..=180_000)
    };
    let picked = pick_agent(
        agents,
        offered + ms(queue_ms),
        Team::InboundCare,
        Some(OVERFLOW_PENALTY),
    );
    if let Some((i, answered)) = picked.filter(|(_, answered)| *answered - offered <= ms(patience_ms)) {
        let wrapup = *ctx.inbound_wrapups.choose_weighted(rng, |w| w.weight).ok()?;
        let agent = agents.get_mut(i)?;
        return agent_call(ctx, rng, agent, Direction::Inbound, offered, answered, wrapup, 0.2);
    }
    let ended = offered + ms(patience_ms);
    if ended > ctx.plan.now {
        return None;
    }
    Some(NewInteraction {
        ended_at: Some(ended),
        wait_ms: Some(patience_ms),
        ..unattended_call(ctx, rng, Direction::Inbound, offered, Outcome::Abandoned, None, None)
    })
}

/// An outbound connect of the predictive dialler. A live person is put through to a sales
/// agent; the dialler paces itself to its agents, so the connect happens when one is free.
fn outbound_call(
    ctx: &DayContext<'_>,
    rng: &mut StdRng,
    agents: &mut [AgentDay],
    planned: DateTime<Utc>,
) -> Option<NewInteraction> {
    let d = &ctx.plan.dispositions;
    let roll: f64 = rng.gen();
    if roll < OUTBOUND_HUMAN_SHARE {
        let connect = ms(rng.gen_range(300..=1_500));
        let (i, answered) = pick_agent(agents, planned + connect, Team::OutboundSales, None)?;
        let wrapup = *ctx.outbound_wrapups.choose_weighted(rng, |w| w.weight).ok()?;
        let agent = agents.get_mut(i)?;
        return agent_call(
            ctx,
            rng,
            agent,
            Direction::Outbound,
            answered - connect,
            answered,
            wrapup,
            0.1,
        );
    }
    let (ended, call) = if roll < OUTBOUND_HUMAN_SHARE + OUTBOUND_MACHINE_SHARE {
        // Answering-machine detection listens for a few seconds, then the dialler hangs up.
        let detect_ms = rng.gen_range(200..=800);
        let talk_ms = rng.gen_range(3_000..=12_000);
        let answered = planned + ms(detect_ms);
        let ended = answered + ms(talk_ms);
        let call = NewInteraction {
            answered_at: Some(answered),
            ended_at: Some(ended),
            wait_ms: Some(detect_ms),
            talk_ms,
            ..unattended_call(
                ctx,
                rng,
                Direction::Outbound,
                planned,
                Outcome::Answered,
                Some(AnsweredBy::Machine),
                Some(d.answering_machine),
            )
        };
        (ended, call)
    } else if roll < OUTBOUND_HUMAN_SHARE + OUTBOUND_MACHINE_SHARE + OUTBOUND_DROPPED_SHARE {
        // A live person with no agent to take them: the dialler plays its message and drops.
        let wait_ms = rng.gen_range(2_000..=4_000);
        let ended = planned + ms(wait_ms);
        let call = NewInteraction {
            ended_at: Some(ended),
            wait_ms: Some(wait_ms),
            ..unattended_call(
                ctx,
                rng,
                Direction::Outbound,
                planned,
                Outcome::Abandoned,
                Some(AnsweredBy::Human),
                None,
            )
        };
        (ended, call)
    } else {
        let no_answer =
            roll < OUTBOUND_HUMAN_SHARE + OUTBOUND_MACHINE_SHARE + OUTBOUND_DROPPED_SHARE + OUTBOUND_NO_ANSWER_SHARE;
        let (outcome, ring_ms) = if no_answer {
            (Outcome::NoAnswer, rng.gen_range(15_000..=35_000))
        } else {
            (Outcome::Busy, rng.gen_range(1_000..=4_000))
        };
        let ended = planned + ms(ring_ms);
        let call = NewInteraction {
            ended_at: Some(ended),
            ..unattended_call(ctx, rng, Direction::Outbound, planned, outcome, None, Some(d.no_answer))
        };
        (ended, call)
    };
    (ended <= ctx.plan.now).then_some(call)
}

/// One day of calls and state log, up to `now` when the day is today.
fn simulate_day(ctx: &DayContext<'_>, rng: &mut StdRng, date: NaiveDate, history: &mut History) {
    let plan = ctx.plan;
    let Some(open) = local_time(&plan.tz, date, OPEN_MINUTE) else {
        return;
    };
    let mut agents: Vec<AgentDay> = plan
        .agents
        .iter()
        .filter_map(|a| AgentDay::new(*a, &plan.tz, date, plan.now, rng))
        .collect();
    let inbound_profile = Profile::new(inbound_weight);
    let outbound_profile = Profile::new(outbound_weight);
    let mut arrivals = Vec::new();
    for _ in 0..rng.gen_range(INBOUND_CALLS_PER_DAY) {
        arrivals.push((open + inbound_profile.sample(rng), Direction::Inbound));
    }
    for _ in 0..rng.gen_range(OUTBOUND_CALLS_PER_DAY) {
        arrivals.push((open + outbound_profile.sample(rng), Direction::Outbound));
    }
    arrivals.sort_by_key(|(at, _)| *at);
    for (at, direction) in arrivals {
        if at >= plan.now {
            break;
        }
        let call = match direction {
            Direction::Inbound => inbound_call(ctx, rng, &mut agents, at),
            Direction::Outbound => outbound_call(ctx, rng, &mut agents, at),
        };
        history.interactions.extend(call);
    }
    for agent in agents {
        agent.into_intervals(plan.now, &mut history.intervals);
    }
}

/// The last [`FULL_DAYS`] days and today up to `now`, then each agent's current state as an
/// open interval from `now` (matching the agents' rows, whose `state_since` is `now`).
fn simulate(plan: &SimPlan) -> History {
    let ctx = DayContext {
        plan,
        inbound_wrapups: inbound_wrapups(&plan.dispositions),
        outbound_wrapups: outbound_wrapups(&plan.dispositions),
    };
    let mut history = History {
        interactions: Vec::new(),
        intervals: Vec::new(),
    };
    let today = plan.now.with_timezone(&plan.tz).date_naive();
    for day in 0..=FULL_DAYS {
        let Some(date) = today.checked_sub_days(Days::new(FULL_DAYS - day)) else {
            continue;
        };
        let mut rng = StdRng::seed_from_u64(DEMO_SEED.wrapping_add(day));
        simulate_day(&ctx, &mut rng, date, &mut history);
    }
    history.interactions.sort_by_key(|call| call.offered_at);
    for (n, call) in history.interactions.iter_mut().enumerate() {
        call.external_id = format!("DEMO-{:06}", n + 1);
    }
    for agent in plan.agents.iter().filter(|a| a.presence_now != Presence::Offline) {
        for state in [
            AgentState::Presence(agent.presence_now),
            AgentState::Routing(RoutingState::Idle),
        ] {
            history.intervals.push(NewStateInterval {
                agent_id: agent.id,
                state,
                reason: None,
                started_at: plan.now,
                ended_at: None,
            });
        }
    }
    history
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    /// A half-open time span; `None` ends never.
    type Span = (DateTime<Utc>, Option<DateTime<Utc>>);

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).earliest().unwrap_or_default()
    }

    fn plan(now: DateTime<Utc>) -> SimPlan {
        let id = Uuid::new_v4;
        SimPlan {
            tz: chrono_tz::Europe::London,
            now,
            agents: AGENTS
                .iter()
                .map(|spec| SimAgent {
                    id: id(),
                    team: spec.team,
                    shift: spec.shift,
                    presence_now: spec.presence_now,
                })
                .collect(),
            inbound_campaign: id(),
            outbound_campaign: id(),
            dispositions: DispositionIds {
                resolved: id(),
                sale: id(),
                callback: id(),
                not_interested: id(),
                wrong_party: id(),
                do_not_call: id(),
                answering_machine: id(),
                no_answer: id(),
            },
        }
    }

    /// Spans must not overlap.
    fn assert_disjoint(what: &str, mut spans: Vec<Span>) {
        spans.sort_by_key(|s| s.0);
        for pair in spans.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert!(a.1.is_some_and(|end| end <= b.0), "{what}: {a:?} overlaps {b:?}");
        }
    }

    fn check_history(plan: &SimPlan, history: &History) {
        let now = plan.now;
        let tz = plan.tz;
        let ids: HashSet<&str> = history.interactions.iter().map(|c| c.external_id.as_str()).collect();
        assert_eq!(ids.len(), history.interactions.len(), "external ids are unique");

        let mut calls_by_agent: HashMap<Uuid, Vec<Span>> = HashMap::new();
        for c in &history.interactions {
            let local = c.offered_at.with_timezone(&tz).time();
            assert!(
                local >= chrono::NaiveTime::from_hms_opt(8, 0, 0).unwrap_or_default()
                    && local < chrono::NaiveTime::from_hms_opt(20, 0, 0).unwrap_or_default(),
                "offered within opening hours: {c:?}"
            );
            let ended = c.ended_at.unwrap_or(c.offered_at);
            assert!(ended >= c.offered_at && ended <= now, "{c:?}");
            assert!(c.wrap_ended_at.is_none_or(|w| w >= ended && w <= now), "{c:?}");
            match (c.outcome, c.answered_at) {
                (Outcome::Answered, Some(answered)) => {
                    assert!(answered >= c.offered_at);
                    assert_eq!(c.wait_ms, Some((answered - c.offered_at).num_milliseconds()));
                    assert_eq!(ended - answered, ms(c.talk_ms + c.hold_ms), "{c:?}");
                    assert!(c.answered_by.is_some(), "{c:?}");
                    if c.answered_by == Some(AnsweredBy::Human) {
                        let Some(agent) = c.agent_id else {
                            panic!("human answered without agent: {c:?}");
                        };
                        let Some(wrap_ended) = c.wrap_ended_at else {
                            panic!("agent call without wrap-up: {c:?}");
                        };
                        assert_eq!(wrap_ended - ended, ms(c.wrap_ms));
                        calls_by_agent
                            .entry(agent)
                            .or_default()
                            .push((answered, Some(wrap_ended)));
                    } else {
                        assert_eq!(c.disposition_id, Some(plan.dispositions.answering_machine));
                        assert!(c.agent_id.is_none());
                    }
                }
                (Outcome::Answered, None) => panic!("answered without answered_at: {c:?}"),
                (_, Some(_)) => panic!("unanswered with answered_at: {c:?}"),
                (outcome, None) => {
                    assert!(c.agent_id.is_none() && c.wrap_ended_at.is_none(), "{c:?}");
                    assert_eq!((c.talk_ms, c.hold_ms, c.wrap_ms), (0, 0, 0));
                    if outcome == Outcome::Abandoned {
                        assert_eq!(c.wait_ms, Some((ended - c.offered_at).num_milliseconds()));
                    }
                }
            }
        }
        for (agent, calls) in calls_by_agent {
            assert_disjoint(&format!("calls of {agent}"), calls);
        }

        let mut by_axis: HashMap<(Uuid, &str), Vec<Span>> = HashMap::new();
        for s in &history.intervals {
            assert!(s.ended_at.is_none_or(|end| end > s.started_at && end <= now), "{s:?}");
            assert!(s.ended_at.is_some() || s.started_at == now, "{s:?}");
            by_axis
                .entry((s.agent_id, s.state.axis()))
                .or_default()
                .push((s.started_at, s.ended_at));
        }
        for ((agent, axis), spans) in by_axis {
            assert!(spans.iter().filter(|s| s.1.is_none()).count() <= 1);
            assert_disjoint(&format!("{axis} of {agent}"), spans);
        }
        // Nobody is on a call during a break.
        for b in history
            .intervals
            .iter()
            .filter(|s| matches!(s.state, AgentState::Presence(Presence::Break | Presence::Lunch)))
        {
            let end = b.ended_at.unwrap_or(now);
            assert!(!history.interactions.iter().any(|c| c.agent_id == Some(b.agent_id)
                && c.answered_at.is_some_and(|a| a < end)
                && c.wrap_ended_at.is_some_and(|w| w > b.started_at)));
        }
    }

    #[test]
    fn history_is_consistent_at_any_time_of_day() {
        // Around both clock changes, before opening, mid-day and after closing.
        for now in [
            utc(2026, 3, 30, 13, 37),
            utc(2026, 10, 26, 7, 0),
            utc(2026, 7, 15, 21, 30),
            utc(2026, 1, 5, 9, 12),
        ] {
            let plan = plan(now);
            check_history(&plan, &simulate(&plan));
        }
    }

    #[test]
    fn history_is_reproducible() {
        let plan = plan(utc(2026, 3, 30, 13, 37));
        let key = |h: &History| {
            h.interactions
                .iter()
                .map(|c| (c.external_id.clone(), c.offered_at, c.agent_id, c.outcome, c.talk_ms))
                .collect::<Vec<_>>()
        };
        assert_eq!(key(&simulate(&plan)), key(&simulate(&plan)));
    }

    #[test]
    fn full_days_have_the_intended_mix() {
        let plan = plan(utc(2026, 7, 15, 21, 30));
        let history = simulate(&plan);
        let day = |c: &NewInteraction| c.offered_at.with_timezone(&plan.tz).date_naive();
        let days: HashSet<NaiveDate> = history.interactions.iter().map(day).collect();
        for date in days {
            let calls: Vec<&NewInteraction> = history.interactions.iter().filter(|c| day(c) == date).collect();
            let count = |dir: Direction, pred: &dyn Fn(&NewInteraction) -> bool| {
                calls.iter().filter(|c| c.direction == dir && pred(c)).count() as f64
            };
            let inbound = count(Direction::Inbound, &|_| true);
            let answered = count(Direction::Inbound, &|c| c.outcome == Outcome::Answered);
            let outbound = count(Direction::Outbound, &|_| true);
            let human = count(Direction::Outbound, &|c| {
                c.outcome == Outcome::Answered && c.answered_by == Some(AnsweredBy::Human)
            });
            let dropped = count(Direction::Outbound, &|c| c.outcome == Outcome::Abandoned);
            let machine = count(Direction::Outbound, &|c| c.answered_by == Some(AnsweredBy::Machine));
            let summary = format!(
                "{date}: inbound {inbound} answered {answered}, outbound {outbound} human {human} machine {machine} dropped {dropped}"
            );
            assert!((370.0..=430.0).contains(&inbound), "{summary}");
            assert!((0.84..=0.92).contains(&(answered / inbound)), "{summary}");
            assert!((200.0..=270.0).contains(&outbound), "{summary}");
            assert!((0.55..=0.7).contains(&(human / outbound)), "{summary}");
        }
    }
}

//! The demo contact centre: teams, skills, agents, campaigns, dispositions, and a few days of
//! interactions and agent state history. Written once (skipped when the org already has teams).
//!
//! The history is simulated rather than drawn row by row, so that it holds together the way
//! real data does: calls arrive over the day in the organization's time zone, every answered
//! call is taken by an agent who is on shift, not on a break and not already busy, and the
//! agent state log is derived from those same calls. Each simulated day has its own fixed seed,
//! so every fresh demo database tells the same story; only the dates follow "today".
//!
//! The live simulator ([`super::live`]) plays further days of the same contact centre, with the
//! same model ([`model`], [`simulate_day`]), on the agents and campaigns read back from the
//! database ([`load_plan`]).

use std::ops::RangeInclusive;

use chrono::{DateTime, Days, NaiveDate, SubsecRound, TimeDelta, Utc};
use chrono_tz::Tz;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use super::sim::curves::{bump, inbound_weight, local_time, Profile, CLOSE_MINUTE, OPEN_MINUTE};
use super::sim::{
    self, BreakRule, CallMix, Campaign, Day, DispositionIds, History, Lognormal, Model, Overflow, Pacing, Shift,
    Spread, WrapUp, LUNCH, MORNING_BREAK,
};
use crate::auth::Tenant;
use crate::db::contact_centre::{self as cc, NewAgent, NewAgentSkill, NewCampaign};
use crate::db::orgs;
use crate::domain::{CampaignStatus, DialMode, Direction, Presence, RoutingState};
use crate::error::{AppError, AppResult};

/// Base seed; day `n` of the history (0 = the oldest) uses `DEMO_SEED + n`, so a day's calls do
/// not change when the time of seeding cuts today's calls short.
const DEMO_SEED: u64 = 0x0DE0_5EED_2026;
/// Full days of history before today.
const FULL_DAYS: u64 = 3;
const INBOUND_CALLS_PER_DAY: RangeInclusive<u32> = 380..=420;
const OUTBOUND_CALLS_PER_DAY: RangeInclusive<u32> = 235..=265;
/// An Outbound Sales agent takes an inbound call only when no Inbound Care agent can answer
/// it within this much longer, so the sales team helps at peaks without doing the care work.
const OVERFLOW_PENALTY: TimeDelta = TimeDelta::seconds(30);
/// The share of dials the predictive dialler drops (a live person and no agent): at the
/// regulator's 3 % ceiling, so the compliance views have something to show.
const OUTBOUND_DROPPED_SHARE: f64 = 0.03;
/// A 15-minute break two hours into the shift, lunch two hours later.
const BREAKS: &[BreakRule] = &[MORNING_BREAK, LUNCH];
/// Talk times spread less than the generator's: a small, well-trained team.
const TALK_SIGMA: f64 = 0.45;
/// The demo's inbound and outbound campaigns, by name.
const INBOUND_CAMPAIGN: &str = "Customer Care";
const OUTBOUND_CAMPAIGN: &str = "Spring Renewals";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Team {
    InboundCare,
    OutboundSales,
}

/// The team the demo SUPERVISOR supervises (they see and manage its agents).
pub const SUPERVISED_TEAM: &str = "Inbound Care";

const TEAMS: [(Team, &str); 2] = [
    (Team::InboundCare, SUPERVISED_TEAM),
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
                name: INBOUND_CAMPAIGN,
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
                name: OUTBOUND_CAMPAIGN,
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

        // The demo has no BUSY code: its dialler files a busy line as NO_ANSWER.
        let specs = super::dispositions();
        let mut ids = [Uuid::nil(); 9];
        for (id, spec) in ids.iter_mut().zip(&specs[..super::BUSY]) {
            *id = cc::insert_disposition(conn, tenant, spec).await?;
        }
        ids[super::BUSY] = ids[super::NO_ANSWER];
        let dispositions = DispositionIds::from_ids(ids);

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

/// The demo's coaching sessions: (agent, topic, notes, days from now, outcome and follow-up in
/// days when completed, acknowledged by the agent).
type DemoCoaching = (
    &'static str,
    &'static str,
    &'static str,
    i64,
    Option<(&'static str, u64)>,
    bool,
);

const COACHING: [DemoCoaching; 4] = [
    (
        "Alex Agent",
        "Call openings: greeting and identity check",
        "Listen to the two calls linked here; the check came after the customer's question.",
        -3,
        Some(("Greets by name and checks identity first; keep the pace.", 14)),
        false,
    ),
    (
        "Alex Agent",
        "Shorter wrap-up on routine calls",
        "Wrap-up runs past the target on calls without a follow-up.",
        2,
        None,
        false,
    ),
    (
        "Priya Shah",
        "Handling price objections",
        "Two sales calls where the offer came before the need.",
        -6,
        Some(("Asks about needs before the offer; conversion up this week.", 21)),
        true,
    ),
    (
        "Tom Walsh",
        "Hold etiquette",
        "Ask before holding; come back every 30 s.",
        1,
        None,
        false,
    ),
];

/// Adds the demo's coaching sessions that are missing (matched by agent and topic), linking
/// each to its agent's latest answered calls, coached by `coach`. Idempotent.
pub async fn ensure_coaching(conn: &mut AsyncPgConnection, tenant: &Tenant, coach: Uuid) -> AppResult<usize> {
    use crate::db::coaching as coaching_rows;
    conn.transaction(async |conn| -> AppResult<usize> {
        let directory = cc::agent_directory(conn, tenant).await?;
        let now = Utc::now();
        let mut added = 0;
        for (agent_name, topic, notes, days, completion, acknowledged) in COACHING {
            let Some(agent) = directory.iter().find(|a| a.display_name == agent_name) else {
                continue;
            };
            if coaching_rows::exists_for_seed(conn, tenant, agent.id, topic).await? {
                continue;
            }
            let scheduled_at = now.trunc_subsecs(0) + TimeDelta::days(days);
            let row = coaching_rows::insert(conn, tenant, agent.id, coach, topic, Some(notes), scheduled_at).await?;
            let calls = coaching_rows::recent_answered_calls(conn, tenant, agent.id, 2).await?;
            coaching_rows::set_interactions(conn, tenant, row.id, &calls).await?;
            if let Some((outcome, follow_up_days)) = completion {
                let follow_up = scheduled_at.date_naive().checked_add_days(Days::new(follow_up_days));
                coaching_rows::complete(conn, tenant, row.id, outcome, follow_up).await?;
                if acknowledged {
                    coaching_rows::acknowledge(conn, tenant, row.id).await?;
                }
            }
            added += 1;
        }
        Ok(added)
    })
    .await
}

/// An agent as the simulation sees it.
#[derive(Clone, Copy, Debug)]
pub(super) struct SimAgent {
    pub id: Uuid,
    team: Team,
    shift: (u32, u32),
    presence_now: Presence,
}

/// The demo contact centre as the model sees it.
pub(super) struct SimPlan {
    pub tz: Tz,
    /// Nothing is simulated past this instant (a call not over by then is left out).
    pub now: DateTime<Utc>,
    pub agents: Vec<SimAgent>,
    inbound_campaign: Uuid,
    outbound_campaign: Uuid,
    pub dispositions: DispositionIds,
}

/// The demo contact centre of an organization seeded by [`ensure`], read back from the
/// database: its active agents (matched by name), campaigns and dispositions. `None` when the
/// organization does not have the demo's campaigns (it was not seeded as the demo).
pub(super) async fn load_plan(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    now: DateTime<Utc>,
) -> AppResult<Option<SimPlan>> {
    let org = orgs::get(conn, tenant).await?;
    let tz: Tz = org
        .timezone
        .parse()
        .map_err(|_| AppError::internal(format!("organization time zone {:?} is not an IANA zone", org.timezone)))?;
    let (Some((inbound_campaign, _)), Some((outbound_campaign, _))) = (
        cc::campaign_by_name(conn, tenant, INBOUND_CAMPAIGN).await?,
        cc::campaign_by_name(conn, tenant, OUTBOUND_CAMPAIGN).await?,
    ) else {
        return Ok(None);
    };
    let specs = super::dispositions();
    let mut ids = [Uuid::nil(); 9];
    for (id, spec) in ids.iter_mut().zip(&specs) {
        if let Some(found) = cc::disposition_by_code(conn, tenant, spec.code).await? {
            *id = found;
        }
    }
    if ids[super::BUSY].is_nil() {
        ids[super::BUSY] = ids[super::NO_ANSWER];
    }
    if ids.iter().any(Uuid::is_nil) {
        return Ok(None);
    }
    let directory = cc::agent_directory(conn, tenant).await?;
    let agents = AGENTS
        .iter()
        .filter_map(|spec| {
            let entry = directory.iter().find(|a| a.active && a.display_name == spec.name)?;
            Some(SimAgent {
                id: entry.id,
                team: spec.team,
                shift: spec.shift,
                presence_now: spec.presence_now,
            })
        })
        .collect();
    Ok(Some(SimPlan {
        tz,
        now,
        agents,
        inbound_campaign,
        outbound_campaign,
        dispositions: DispositionIds::from_ids(ids),
    }))
}

/// Inbound care calls: mostly resolved; talk 2–10 minutes whatever the outcome.
fn inbound_wrapups(d: &DispositionIds) -> Vec<WrapUp> {
    let talk = Lognormal {
        median_s: 210.0,
        sigma: TALK_SIGMA,
        min_s: 120.0,
        max_s: 600.0,
    };
    WrapUp::mix([
        (d.resolved, 80, talk),
        (d.callback, 9, talk),
        (d.sale, 5, talk),
        (d.not_interested, 2, talk),
        (d.wrong_party, 2, talk),
        (d.do_not_call, 2, talk),
    ])
}

/// The demo's contact centre: realistic handle times (hold 10 s–2 min, wrap-up 10–90 s), care
/// callers who wait up to three minutes, Outbound Sales helping Inbound Care at peaks (never the
/// other way round), a predictive dialler that waits for its agents, and IDLE logged.
pub(super) fn model(d: &DispositionIds) -> Model {
    Model {
        breaks: BREAKS,
        inbound: CallMix {
            wrapups: inbound_wrapups(d),
            hold_share: 0.2,
        },
        outbound: CallMix {
            wrapups: sim::outbound_wrapups(d, TALK_SIGMA),
            hold_share: 0.1,
        },
        hold: Spread::Uniform {
            min_ms: 10_000.0,
            max_ms: 120_000.0,
        },
        wrap: Spread::Uniform {
            min_ms: 10_000.0,
            max_ms: 90_000.0,
        },
        handle_time_scale: 1.0,
        patient_wait_ms: 100_000..=180_000,
        inbound_overflow: Overflow::After(OVERFLOW_PENALTY),
        outbound_overflow: Overflow::Never,
        pacing: Pacing::WaitForAgent,
        log_idle: true,
        dispositions: *d,
    }
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

/// One day of calls and state log, up to `now` when the day is today. The calls' external ids
/// are left empty for the caller to assign.
pub(super) fn simulate_day(plan: &SimPlan, model: &Model, rng: StdRng, date: NaiveDate, history: &mut History) {
    let Some(open) = local_time(&plan.tz, date, OPEN_MINUTE) else {
        return;
    };
    let mut day = Day::new(model, plan.now, rng);
    for agent in &plan.agents {
        let pool = match agent.team {
            Team::InboundCare => Direction::Inbound,
            Team::OutboundSales => Direction::Outbound,
        };
        let (start, end) = agent.shift;
        let shift = Shift {
            start_minute: start,
            length: TimeDelta::minutes(i64::from(end.saturating_sub(start))),
        };
        day.add_agent(agent.id, pool, shift, &plan.tz, date);
    }
    let campaigns = [
        Campaign {
            id: plan.inbound_campaign,
            direction: Direction::Inbound,
            weight: 1.0,
            dropped_share: 0.0,
        },
        Campaign {
            id: plan.outbound_campaign,
            direction: Direction::Outbound,
            weight: 1.0,
            dropped_share: OUTBOUND_DROPPED_SHARE,
        },
    ];
    let mut arrivals = Vec::new();
    let rng = day.rng();
    for (campaign, profile, calls) in [
        (&campaigns[0], Profile::new(inbound_weight), INBOUND_CALLS_PER_DAY),
        (&campaigns[1], Profile::new(outbound_weight), OUTBOUND_CALLS_PER_DAY),
    ] {
        for _ in 0..rng.gen_range(calls) {
            let offset = profile.sample(rng, CLOSE_MINUTE).unwrap_or_default();
            arrivals.push((open + offset, campaign));
        }
    }
    arrivals.sort_by_key(|(at, _)| *at);
    for (at, campaign) in arrivals {
        if at >= plan.now {
            break;
        }
        history.interactions.extend(day.call(campaign, at));
    }
    day.finish(&mut history.intervals);
}

/// The last [`FULL_DAYS`] days and today up to `now`, then each agent's current state as an
/// open interval from `now` (matching the agents' rows, whose `state_since` is `now`).
fn simulate(plan: &SimPlan) -> History {
    let model = model(&plan.dispositions);
    let mut history = History::default();
    let today = plan.now.with_timezone(&plan.tz).date_naive();
    for day in 0..=FULL_DAYS {
        let Some(date) = today.checked_sub_days(Days::new(FULL_DAYS - day)) else {
            continue;
        };
        let rng = StdRng::seed_from_u64(DEMO_SEED.wrapping_add(day));
        simulate_day(plan, &model, rng, date, &mut history);
    }
    history.interactions.sort_by_key(|call| call.offered_at);
    for (n, call) in history.interactions.iter_mut().enumerate() {
        call.external_id = format!("DEMO-{:06}", n + 1);
    }
    let now_states = plan.agents.iter().map(|a| (a.id, a.presence_now));
    history.intervals.extend(sim::current_states(plan.now, now_states));
    history
}

/// The demo's agents, campaigns and dispositions with fresh ids, in London, for unit tests.
#[cfg(test)]
pub(super) fn test_plan(now: DateTime<Utc>) -> SimPlan {
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
        dispositions: DispositionIds::from_ids([id(), id(), id(), id(), id(), id(), id(), id(), id()]),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use chrono::TimeZone;

    use super::*;
    use crate::db::interactions::NewInteraction;
    use crate::domain::{AgentState, AnsweredBy, Outcome};
    use crate::seed::sim::curves::ms;

    /// A half-open time span; `None` ends never.
    type Span = (DateTime<Utc>, Option<DateTime<Utc>>);

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).earliest().unwrap_or_default()
    }

    fn plan(now: DateTime<Utc>) -> SimPlan {
        test_plan(now)
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

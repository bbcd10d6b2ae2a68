//! Synthetic contact-centre traffic at scale, for benchmarks and load tests:
//! `omnivox seed --calls N --days D --agents A --campaigns C [--org SLUG] [--seed S]`.
//!
//! The traffic is simulated, like the demo's (`seed::demo_data`), so that it holds together the
//! way real data does, but built to produce millions of calls quickly:
//!
//! * **Volume.** Exactly `N` calls over `D` local days ending today (today up to half an hour
//!   before now, so that every call has ended). Days get a share by weekday (Monday busiest,
//!   Sunday quietest); within a day, calls arrive between 08:00 and 20:00 local time along a
//!   curve with a late-morning and a mid-afternoon peak for inbound; the dialler follows its
//!   agents' shifts, leaning to the early evening.
//! * **Campaigns.** `C` campaigns alternating inbound / outbound (odd numbers inbound), sized
//!   along a Zipf-like curve; every third inbound campaign overrides the service-level threshold
//!   (30 s). Outbound campaigns have dial modes and a 3 % abandon ceiling.
//! * **Agents and shifts.** `A` agents split between an inbound and an outbound pool in
//!   proportion to the work each direction brings, in teams of 15. Each agent has a rota: 60 %
//!   work Monday to Friday, the rest five days including weekends; shifts of 8 hours start
//!   between 08:00 and 12:00 (inbound weighted to the morning, outbound from 09:00), with a
//!   15-minute break, a 30-minute lunch and another 15-minute break, each taken late when a
//!   call runs over it.
//! * **Calls.** An agent takes one call at a time: each pool is a priority queue of agents by
//!   the time they are next free (a per-agent "free at" scheduler, as in the demo). An inbound
//!   caller waits for the first free agent of the inbound pool, and hangs up (abandons) when that
//!   is later than their patience — so abandonment follows the queue, with a few impatient
//!   callers who hang up whatever the wait (short abandons). The dialler connects a live person
//!   when an outbound agent is free (paced dialling); if none is free within five minutes the
//!   connect is a drop. Each outbound campaign's dialler also over-dials to a drop rate of its
//!   own (1 %, 1.5 %, 2.4 % or 3.2 % of live connects, in turn), so compliance views show
//!   campaigns comfortably under the 3 % limit, near it and over it. Dials also end as answering
//!   machines, no answer or busy. Talk time is
//!   log-normal per disposition, wrap-up log-normal, some calls have hold.
//! * **Handle times fit the staff.** Realistic handle times (≈ 3–5 minutes) cannot fit, say,
//!   10 million calls in 90 days on 500 agents. Talk, hold and wrap times are therefore scaled
//!   down (never up) so that the busiest day's expected occupancy is about 75 %; the factor is
//!   reported. With a light load the factor is 1.
//! * **Agent state log.** Per agent and day worked: PRESENCE intervals (AVAILABLE around the
//!   BREAK / LUNCH intervals actually taken, until the shift ends or the last call is wrapped
//!   up), ROUTING ON_CALL (answer to hang-up) and WRAP_UP intervals for every call the agent
//!   handled. Idle time is the gap between routing intervals and is not logged (it would add a
//!   third of the rows and no metric reads it). Agents on shift now get open AVAILABLE and IDLE
//!   intervals from now, matching their `agents` row.
//!
//! Everything random comes from `--seed` (one stream per simulated day), so the same seed on the
//! same date gives the same traffic; only ids differ.
//!
//! **Adding to an existing organization.** When the organization exists, the run adds to it:
//! campaigns and dispositions are found by name / code and reused (created when missing), while
//! teams and agents are new for each run ("Run 2 Inbound 01", agent extensions `2-00001`…), so
//! the agent state logs of two runs never overlap for one agent. Call external ids are prefixed
//! by the run (`G2-…`), so they never collide with earlier runs.
//!
//! **Loading.** Calls and intervals are loaded in batches of about `--batch-calls` calls (whole
//! days), each in one transaction with its rollups, through [`writer::bulk_load`] (COPY). The
//! simulation runs on a blocking thread ahead of the loaders; `--load-workers` batches load
//! concurrently (different days touch different rollup cells, so they never wait on each
//! other). Each batch commits on its own: an interrupted run leaves whole batches behind.
//! Foreign keys are checked once per batch when the database role allows it
//! ([`writer::ReferenceChecks::PerBatch`]; `--per-row-fk-checks` keeps PostgreSQL's row
//! triggers), which roughly halves the server's work per row.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Days, NaiveDate, SubsecRound, TimeDelta, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::contact_centre::{self as cc, NewAgent, NewCampaign, NewDisposition, NewStateInterval};
use crate::db::interactions::NewInteraction;
use crate::db::schema::{campaigns, dispositions, teams};
use crate::db::{self, orgs, DbPool};
use crate::domain::{AgentState, AnsweredBy, CampaignStatus, DialMode, Direction, Outcome, Presence, RoutingState};
use crate::error::{AppError, AppResult};
use crate::kpi::writer;

/// Organization used when `--org` is not given.
pub const DEFAULT_ORG_SLUG: &str = "bench";
/// Time zone of an organization the generator creates.
pub const DEFAULT_TIMEZONE: &str = "Europe/London";
/// Seed used when `--seed` is not given.
pub const DEFAULT_SEED: u64 = 0x0B5E_ED00_2026;
/// Calls per loading batch (one transaction with its rollups).
pub const DEFAULT_BATCH_CALLS: usize = 100_000;
/// Batches loading at once.
pub const DEFAULT_LOAD_WORKERS: usize = 2;

/// Opening hours (local minutes since midnight): calls arrive in [OPEN, CLOSE).
const OPEN_MINUTE: u32 = 8 * 60;
const CLOSE_MINUTE: u32 = 20 * 60;
const SHIFT: TimeDelta = TimeDelta::hours(8);
/// Seconds an agent is available per shift (8 h less 15 + 30 + 15 minutes of breaks).
const PRODUCTIVE_SECONDS_PER_SHIFT: f64 = 7.0 * 3600.0;
/// Expected occupancy of the busiest day, which sets the handle-time scale.
const TARGET_OCCUPANCY: f64 = 0.75;
/// Today's calls arrive until this long before now, so that each has ended by now (the longest
/// call: 5 min of pacing or 3 min of queue, 15 min talk, 2 min hold, 3 min wrap-up).
const TODAY_MARGIN: TimeDelta = TimeDelta::minutes(30);
/// The dialler drops a live connect when no agent is free within this long.
const MAX_PACING_DELAY: TimeDelta = TimeDelta::minutes(5);
const TEAM_SIZE: usize = 15;
/// Agents per run are numbered with five digits in their extension.
const MAX_AGENTS: u32 = 99_999;
const MAX_CAMPAIGNS: u32 = 99;
const MAX_DAYS: u32 = 3_660;

/// Callers who hang up at some random point of their wait, however fast the queue is.
const IMPATIENT_CALLER_SHARE: f64 = 0.08;
/// Of inbound calls, the share expected to reach an agent (for sizing only).
const EXPECTED_INBOUND_HANDLED: f64 = 0.92;
/// Shares of outbound dials by result; the rest are busy (and the share each campaign's dialler
/// drops by over-dialling, see [`OUTBOUND_PACED_DROP_RATES`]).
const OUTBOUND_HUMAN_SHARE: f64 = 0.60;
const OUTBOUND_MACHINE_SHARE: f64 = 0.15;
const OUTBOUND_NO_ANSWER_SHARE: f64 = 0.17;
/// The drop rates (dropped ÷ live connects) outbound campaigns are paced for, in turn by
/// campaign. Diallers are tuned to stay under the usual 3 % limit, one close to it (a WARNING at
/// 80 % of the limit) and one over it: the compliance views show every level. Drops when no agent is free
/// come on top.
const OUTBOUND_PACED_DROP_RATES: [f64; 4] = [0.010, 0.015, 0.024, 0.032];
/// Spread (σ of the logarithm) of talk and wrap-up times.
const TALK_SIGMA: f64 = 0.5;
const WRAP: Lognormal = Lognormal {
    median_s: 25.0,
    sigma: 0.6,
    min_s: 5.0,
    max_s: 180.0,
};
/// Shares of weekday traffic, Monday first.
const WEEKDAY_WEIGHT: [f64; 7] = [1.0, 0.97, 0.95, 0.95, 0.9, 0.45, 0.3];

/// What to generate and where.
#[derive(Debug, Clone)]
pub struct GeneratorSettings {
    pub org_slug: String,
    pub calls: u64,
    pub days: u32,
    pub agents: u32,
    pub campaigns: u32,
    pub seed: u64,
    pub batch_calls: usize,
    pub load_workers: usize,
    /// Foreign-key checks of the bulk load (per batch when the role allows; see
    /// [`writer::ReferenceChecks`]).
    pub reference_checks: writer::ReferenceChecks,
}

impl Default for GeneratorSettings {
    fn default() -> Self {
        Self {
            org_slug: DEFAULT_ORG_SLUG.to_owned(),
            calls: 100_000,
            days: 30,
            agents: 100,
            campaigns: 10,
            seed: DEFAULT_SEED,
            batch_calls: DEFAULT_BATCH_CALLS,
            load_workers: DEFAULT_LOAD_WORKERS,
            reference_checks: writer::ReferenceChecks::PerBatch,
        }
    }
}

impl GeneratorSettings {
    fn validate(&self) -> AppResult<()> {
        let bad = |m: String| Err(AppError::bad_input(m));
        if self.calls == 0 {
            return bad("--calls must be at least 1".into());
        }
        if !(1..=MAX_DAYS).contains(&self.days) {
            return bad(format!("--days must be between 1 and {MAX_DAYS}"));
        }
        if !(1..=MAX_AGENTS).contains(&self.agents) {
            return bad(format!("--agents must be between 1 and {MAX_AGENTS}"));
        }
        if !(1..=MAX_CAMPAIGNS).contains(&self.campaigns) {
            return bad(format!("--campaigns must be between 1 and {MAX_CAMPAIGNS}"));
        }
        if self.batch_calls == 0 || self.load_workers == 0 {
            return bad("--batch-calls and --load-workers must be at least 1".into());
        }
        Ok(())
    }
}

/// Reported after every batch.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub calls: u64,
    pub intervals: u64,
    pub calls_total: u64,
    pub elapsed: Duration,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct GeneratorReport {
    pub org_id: Uuid,
    pub created_organization: bool,
    /// 1 for the first run into the organization, 2 for the next…
    pub run: u32,
    pub calls: u64,
    pub intervals: u64,
    pub batches: u64,
    /// Factor applied to talk, hold and wrap-up times (1 = realistic).
    pub handle_time_scale: f64,
    /// Foreign-key checks used by the last batch.
    pub reference_checks: writer::ReferenceChecks,
    /// Setup (organization, campaigns, agents…) before the first call.
    pub setup: Duration,
    /// Simulation and loading of the calls and intervals.
    pub load: Duration,
}

impl GeneratorReport {
    pub fn calls_per_second(&self) -> f64 {
        self.calls as f64 / self.load.as_secs_f64().max(1e-9)
    }
}

/// Generates and loads the traffic; `progress` is called after each committed batch.
pub async fn run(
    database_url: &str,
    pool: &DbPool,
    settings: &GeneratorSettings,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> AppResult<GeneratorReport> {
    settings.validate()?;
    let started = Instant::now();
    // Whole milliseconds, so intervals closed at `now` meet the open ones exactly in PostgreSQL.
    let now = Utc::now().trunc_subsecs(3);
    let (plan, org_id, created_organization) = {
        let mut conn = db::conn(pool).await?;
        setup(&mut conn, settings, now).await?
    };
    let setup_time = started.elapsed();
    let tenant = Tenant::for_system(org_id);
    let quotas = day_quotas(&plan);

    let (sender, mut receiver) = tokio::sync::mpsc::channel::<DayHistory>(2);
    let simulation_plan = plan.clone();
    let simulation = tokio::task::spawn_blocking(move || {
        let mut first_seq = 1;
        for (day, quota) in quotas.into_iter().enumerate() {
            let history = simulate_day(&simulation_plan, day as u32, quota, first_seq);
            first_seq += quota;
            if sender.blocking_send(history).is_err() {
                return;
            }
        }
    });

    let load_started = Instant::now();
    let mut loads: JoinSet<AppResult<writer::BulkLoaded>> = JoinSet::new();
    let mut batch = DayHistory::default();
    let (mut calls, mut intervals, mut batches) = (0_u64, 0_u64, 0_u64);
    let mut checks = settings.reference_checks;
    let mut finished = |done: writer::BulkLoaded, progress: &mut (dyn FnMut(Progress) + Send)| {
        calls += done.calls;
        intervals += done.intervals;
        batches += 1;
        checks = done.checks;
        progress(Progress {
            calls,
            intervals,
            calls_total: plan.calls,
            elapsed: load_started.elapsed(),
        });
    };
    loop {
        let next = receiver.recv().await;
        let last = next.is_none();
        if let Some(day) = next {
            batch.interactions.extend(day.interactions);
            batch.intervals.extend(day.intervals);
        }
        if batch.interactions.len() >= settings.batch_calls || (last && !batch.is_empty()) {
            if last {
                batch.intervals.extend(plan.current_states());
            }
            while loads.len() >= settings.load_workers {
                if let Some(done) = loads.join_next().await {
                    finished(joined(done)?, progress);
                }
            }
            let full = std::mem::take(&mut batch);
            let url = database_url.to_owned();
            let checks = settings.reference_checks;
            loads.spawn(
                async move { writer::bulk_load(&url, &tenant, &full.interactions, &full.intervals, checks).await },
            );
        }
        if last {
            break;
        }
    }
    while let Some(done) = loads.join_next().await {
        finished(joined(done)?, progress);
    }
    simulation
        .await
        .map_err(|e| AppError::internal(format!("simulation task: {e}")))?;
    Ok(GeneratorReport {
        org_id,
        created_organization,
        run: plan.run,
        calls,
        intervals,
        batches,
        handle_time_scale: plan.handle_time_scale,
        reference_checks: checks,
        setup: setup_time,
        load: load_started.elapsed(),
    })
}

fn joined<T>(result: Result<AppResult<T>, tokio::task::JoinError>) -> AppResult<T> {
    result.map_err(|e| AppError::internal(format!("load task: {e}")))?
}

/// One campaign as the simulation sees it.
#[derive(Debug, Clone, Copy)]
pub struct PlanCampaign {
    pub id: Uuid,
    pub direction: Direction,
    /// Relative call volume.
    pub weight: f64,
    /// Share of the campaign's dials its dialler drops on purpose (0 for inbound).
    pub dropped_share: f64,
}

/// The dispositions the simulation chooses from.
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
    pub campaigns: Vec<PlanCampaign>,
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
        let campaigns: Vec<PlanCampaign> = campaign_ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let direction = campaign_direction(i as u32 + 1);
                PlanCampaign {
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
            talk + hold_share * 65.0 + WRAP.mean_s()
        };
        (
            inbound * EXPECTED_INBOUND_HANDLED * aht(&inbound_wrapups(d), INBOUND_HOLD_SHARE),
            (1.0 - inbound) * OUTBOUND_HUMAN_SHARE * aht(&outbound_wrapups(d), OUTBOUND_HOLD_SHARE),
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
        let mut out = Vec::new();
        for (i, (id, _)) in self.agents.iter().enumerate() {
            if self.on_shift_now(i) {
                for state in [
                    AgentState::Presence(Presence::Available),
                    AgentState::Routing(RoutingState::Idle),
                ] {
                    out.push(NewStateInterval {
                        agent_id: *id,
                        state,
                        reason: None,
                        started_at: self.now,
                        ended_at: None,
                    });
                }
            }
        }
        out
    }
}

/// The share of dials to drop for a drop rate `rate` of live connects:
/// dropped ÷ (live + dropped) = rate, with live connects [`OUTBOUND_HUMAN_SHARE`] of the dials.
fn dropped_share(rate: f64) -> f64 {
    rate * OUTBOUND_HUMAN_SHARE / (1.0 - rate)
}

fn campaign_direction(number: u32) -> Direction {
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

/// Calls and intervals of one or more simulated days.
#[derive(Debug, Default)]
pub struct DayHistory {
    pub interactions: Vec<NewInteraction>,
    pub intervals: Vec<NewStateInterval>,
}

impl DayHistory {
    fn is_empty(&self) -> bool {
        self.interactions.is_empty() && self.intervals.is_empty()
    }
}

/// A log-normal duration, clamped.
#[derive(Clone, Copy, Debug)]
struct Lognormal {
    median_s: f64,
    sigma: f64,
    min_s: f64,
    max_s: f64,
}

impl Lognormal {
    fn talk(median_s: f64, min_s: f64, max_s: f64) -> Self {
        Self {
            median_s,
            sigma: TALK_SIGMA,
            min_s,
            max_s,
        }
    }

    fn mean_s(&self) -> f64 {
        (self.median_s * (self.sigma * self.sigma / 2.0).exp()).clamp(self.min_s, self.max_s)
    }

    /// Milliseconds, scaled (Box–Muller).
    fn sample_ms(&self, rng: &mut StdRng, scale: f64) -> i64 {
        let u1 = 1.0 - rng.gen::<f64>();
        let u2 = rng.gen::<f64>();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let seconds = (self.median_s * (self.sigma * z).exp()).clamp(self.min_s, self.max_s);
        (seconds * scale * 1000.0).round().max(1.0) as i64
    }
}

const INBOUND_HOLD_SHARE: f64 = 0.2;
const OUTBOUND_HOLD_SHARE: f64 = 0.1;

/// A disposition an agent may choose, how often, and how long such a call lasts.
#[derive(Clone, Copy, Debug)]
struct WrapUp {
    disposition: Uuid,
    weight: u32,
    talk: Lognormal,
}

fn inbound_wrapups(d: &DispositionIds) -> [WrapUp; 6] {
    [
        (d.resolved, 78, Lognormal::talk(240.0, 30.0, 900.0)),
        (d.callback, 9, Lognormal::talk(150.0, 30.0, 600.0)),
        (d.sale, 5, Lognormal::talk(420.0, 120.0, 900.0)),
        (d.not_interested, 3, Lognormal::talk(120.0, 20.0, 600.0)),
        (d.wrong_party, 2, Lognormal::talk(40.0, 10.0, 180.0)),
        (d.do_not_call, 3, Lognormal::talk(60.0, 10.0, 240.0)),
    ]
    .map(|(disposition, weight, talk)| WrapUp {
        disposition,
        weight,
        talk,
    })
}

fn outbound_wrapups(d: &DispositionIds) -> [WrapUp; 6] {
    [
        (d.sale, 17, Lognormal::talk(420.0, 180.0, 900.0)),
        (d.callback, 14, Lognormal::talk(150.0, 60.0, 400.0)),
        (d.not_interested, 42, Lognormal::talk(70.0, 20.0, 240.0)),
        (d.wrong_party, 12, Lognormal::talk(25.0, 10.0, 90.0)),
        (d.do_not_call, 5, Lognormal::talk(35.0, 10.0, 120.0)),
        (d.resolved, 10, Lognormal::talk(200.0, 60.0, 600.0)),
    ]
    .map(|(disposition, weight, talk)| WrapUp {
        disposition,
        weight,
        talk,
    })
}

fn pick_wrapup<'w>(wrapups: &'w [WrapUp], rng: &mut StdRng) -> Option<&'w WrapUp> {
    let total: u32 = wrapups.iter().map(|w| w.weight).sum();
    let mut x = rng.gen_range(0..total.max(1));
    wrapups.iter().find(|w| {
        if x < w.weight {
            true
        } else {
            x -= w.weight;
            false
        }
    })
}

fn bump(hour: f64, centre: f64, width: f64) -> f64 {
    (-0.5 * ((hour - centre) / width).powi(2)).exp()
}

/// Inbound arrivals: a late-morning peak and a smaller mid-afternoon one.
fn inbound_weight(hour: f64) -> f64 {
    0.3 + bump(hour, 11.0, 1.3) + 0.85 * bump(hour, 14.75, 1.4)
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
    staffed * (1.0 + 0.3 * bump(hour, 17.5, 1.0))
}

fn combined_weight(hour: f64) -> f64 {
    inbound_weight(hour) + outbound_weight(hour)
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

    fn mass_before(&self, limit_minute: u32) -> f64 {
        let n = limit_minute.saturating_sub(OPEN_MINUTE) as usize;
        if n == 0 {
            0.0
        } else {
            self.cumulative
                .get(n.min(self.cumulative.len()) - 1)
                .copied()
                .unwrap_or(0.0)
        }
    }

    fn share_before(&self, limit_minute: u32) -> f64 {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        if total > 0.0 {
            self.mass_before(limit_minute) / total
        } else {
            0.0
        }
    }

    /// A random instant before `limit_minute` (local), as an offset from opening time; `None`
    /// when the profile has no weight there.
    fn sample(&self, rng: &mut StdRng, limit_minute: u32) -> Option<TimeDelta> {
        let mass = self.mass_before(limit_minute);
        if mass <= 0.0 {
            return None;
        }
        let x = rng.gen::<f64>() * mass;
        let minute = self.cumulative.partition_point(|&c| c <= x);
        let minute = minute.min(limit_minute.saturating_sub(OPEN_MINUTE).saturating_sub(1) as usize);
        Some(TimeDelta::minutes(minute as i64) + ms(rng.gen_range(0..60_000)))
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
    wrap_ended: DateTime<Utc>,
}

/// One agent's day. `free_at` only moves forward and every call starts at or after it, so an
/// agent's calls and breaks never overlap.
struct AgentDay {
    id: Uuid,
    /// Index of the agent's pool in [`DaySim::pools`].
    pool: usize,
    shift_start: DateTime<Utc>,
    shift_end: DateTime<Utc>,
    pending: VecDeque<PlannedBreak>,
    taken: Vec<(Presence, DateTime<Utc>, DateTime<Utc>)>,
    calls: Vec<AgentCall>,
    free_at: DateTime<Utc>,
}

impl AgentDay {
    fn new(id: Uuid, pool: usize, tz: &Tz, date: NaiveDate, start_minute: u32, rng: &mut StdRng) -> Option<Self> {
        let jitter: [i64; 3] = [rng.gen_range(0..=30), rng.gen_range(0..=30), rng.gen_range(0..=20)];
        let shift_start = local_time(tz, date, start_minute)?;
        let at = |hours: i64, jitter: i64| shift_start + TimeDelta::hours(hours) + TimeDelta::minutes(jitter);
        Some(Self {
            id,
            pool,
            shift_start,
            shift_end: shift_start + SHIFT,
            pending: VecDeque::from([
                PlannedBreak {
                    state: Presence::Break,
                    at: at(2, jitter[0]),
                    length: TimeDelta::minutes(15),
                },
                PlannedBreak {
                    state: Presence::Lunch,
                    at: at(4, jitter[1]),
                    length: TimeDelta::minutes(30),
                },
                PlannedBreak {
                    state: Presence::Break,
                    at: at(6, jitter[2]),
                    length: TimeDelta::minutes(15),
                },
            ]),
            taken: Vec::new(),
            calls: Vec::new(),
            free_at: shift_start,
        })
    }

    /// Takes the breaks that fall due before the agent could start something at `t`.
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

    fn take_call(&mut self, call: AgentCall) {
        self.free_at = call.wrap_ended;
        self.calls.push(call);
    }

    /// The day's state log, cut at `now`: PRESENCE AVAILABLE around the breaks taken, until the
    /// shift ends or the last call is wrapped up; ROUTING ON_CALL and WRAP_UP per call.
    fn into_intervals(mut self, now: DateTime<Utc>, out: &mut Vec<NewStateInterval>) {
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
        for call in &self.calls {
            push(AgentState::Routing(RoutingState::OnCall), call.answered, call.ended);
            push(AgentState::Routing(RoutingState::WrapUp), call.ended, call.wrap_ended);
        }
    }
}

/// The agents of one pool by the time they are next free. Keys are lower bounds of that time
/// (breaks are applied lazily), so the agent popped with an exact key can start first; ties go
/// to the agent free the longest.
#[derive(Default)]
struct PoolQueue {
    heap: BinaryHeap<Reverse<(DateTime<Utc>, usize)>>,
}

impl PoolQueue {
    fn push(&mut self, agents: &[AgentDay], i: usize) {
        if let Some(agent) = agents.get(i) {
            self.heap.push(Reverse((agent.free_at, i)));
        }
    }

    /// Removes and returns the agent who can start soonest on something ready at `ready`, and
    /// that start; agents whose shift is over leave the queue for the day. The caller pushes
    /// the agent back.
    fn pop_first_free(&mut self, agents: &mut [AgentDay], ready: DateTime<Utc>) -> Option<(usize, DateTime<Utc>)> {
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

/// State of one simulated day.
struct DaySim<'p> {
    plan: &'p Plan,
    rng: StdRng,
    agents: Vec<AgentDay>,
    /// Inbound pool, outbound pool.
    pools: [PoolQueue; 2],
    inbound: [WrapUp; 6],
    outbound: [WrapUp; 6],
}

fn pool_index(direction: Direction) -> usize {
    match direction {
        Direction::Inbound => 0,
        Direction::Outbound => 1,
    }
}

impl DaySim<'_> {
    /// The first free agent of the direction's pool; when that pool has nobody left on shift
    /// today, of the other pool (overflow). The caller pushes the agent back.
    fn pop_agent(&mut self, direction: Direction, ready: DateTime<Utc>) -> Option<(usize, DateTime<Utc>)> {
        let home = pool_index(direction);
        let [first, second] = &mut self.pools;
        let (own, other) = if home == 0 { (first, second) } else { (second, first) };
        own.pop_first_free(&mut self.agents, ready)
            .or_else(|| other.pop_first_free(&mut self.agents, ready))
    }

    fn push_agent(&mut self, i: usize) {
        if let Some(pool) = self.agents.get(i).map(|a| a.pool) {
            self.pools[pool].push(&self.agents, i);
        }
    }

    fn base_call(&mut self, campaign: &PlanCampaign, offered: DateTime<Utc>, outcome: Outcome) -> NewInteraction {
        NewInteraction {
            campaign_id: Some(campaign.id),
            agent_id: None,
            external_id: String::new(),
            direction: campaign.direction,
            customer_number: Some(customer_number(&mut self.rng)),
            offered_at: offered,
            answered_at: None,
            ended_at: None,
            wrap_ended_at: None,
            wait_ms: None,
            talk_ms: 0,
            hold_ms: 0,
            wrap_ms: 0,
            outcome,
            disposition_id: None,
            answered_by: None,
            notes: None,
        }
    }

    /// A call agent `i` answers at `answered`: talk, sometimes hold, wrap-up.
    fn agent_call(
        &mut self,
        i: usize,
        campaign: &PlanCampaign,
        offered: DateTime<Utc>,
        answered: DateTime<Utc>,
    ) -> NewInteraction {
        let scale = self.plan.handle_time_scale;
        let (wrapup, hold_share) = match campaign.direction {
            Direction::Inbound => (pick_wrapup(&self.inbound, &mut self.rng).copied(), INBOUND_HOLD_SHARE),
            Direction::Outbound => (pick_wrapup(&self.outbound, &mut self.rng).copied(), OUTBOUND_HOLD_SHARE),
        };
        let talk_ms = wrapup.map_or(60_000, |w| w.talk.sample_ms(&mut self.rng, scale));
        let hold_ms = if self.rng.gen_bool(hold_share) {
            (self.rng.gen_range(10_000.0..=120_000.0) * scale).round() as i64
        } else {
            0
        };
        let wrap_ms = WRAP.sample_ms(&mut self.rng, scale);
        let ended = answered + ms(talk_ms + hold_ms);
        let wrap_ended = ended + ms(wrap_ms);
        let agent_id = self.agents.get(i).map(|a| a.id);
        if let Some(agent) = self.agents.get_mut(i) {
            agent.take_call(AgentCall {
                answered,
                ended,
                wrap_ended,
            });
        }
        self.push_agent(i);
        NewInteraction {
            agent_id,
            answered_at: Some(answered),
            ended_at: Some(ended),
            wrap_ended_at: Some(wrap_ended),
            wait_ms: Some((answered - offered).num_milliseconds()),
            talk_ms,
            hold_ms,
            wrap_ms,
            disposition_id: wrapup.map(|w| w.disposition),
            answered_by: Some(AnsweredBy::Human),
            ..self.base_call(campaign, offered, Outcome::Answered)
        }
    }

    /// An inbound call: the caller waits until an agent is free or their patience runs out.
    fn inbound_call(&mut self, campaign: &PlanCampaign, offered: DateTime<Utc>) -> NewInteraction {
        let queue_ms = self.rng.gen_range(2_000..=12_000);
        let patience_ms: i64 = if self.rng.gen_bool(IMPATIENT_CALLER_SHARE) {
            if self.rng.gen_bool(0.3) {
                self.rng.gen_range(1_000..5_000)
            } else {
                self.rng.gen_range(5_000..=180_000)
            }
        } else {
            self.rng.gen_range(60_000..=180_000)
        };
        if let Some((i, start)) = self.pop_agent(Direction::Inbound, offered + ms(queue_ms)) {
            if start - offered <= ms(patience_ms) {
                return self.agent_call(i, campaign, offered, start);
            }
            self.push_agent(i);
        }
        NewInteraction {
            ended_at: Some(offered + ms(patience_ms)),
            wait_ms: Some(patience_ms),
            ..self.base_call(campaign, offered, Outcome::Abandoned)
        }
    }

    /// An outbound dial planned at `planned`.
    fn outbound_call(&mut self, campaign: &PlanCampaign, planned: DateTime<Utc>) -> NewInteraction {
        let d = self.plan.dispositions;
        let roll: f64 = self.rng.gen();
        if roll < OUTBOUND_HUMAN_SHARE {
            let connect = ms(self.rng.gen_range(300..=1_500));
            if let Some((i, start)) = self.pop_agent(Direction::Outbound, planned + connect) {
                if start - planned <= MAX_PACING_DELAY {
                    // The dialler paces itself: the dial goes out so it connects when the agent is free.
                    return self.agent_call(i, campaign, start - connect, start);
                }
                self.push_agent(i);
            }
            // A live person and no agent: the dialler plays its message and drops the call.
            let wait_ms = self.rng.gen_range(2_000..=4_000);
            return NewInteraction {
                ended_at: Some(planned + ms(wait_ms)),
                wait_ms: Some(wait_ms),
                answered_by: Some(AnsweredBy::Human),
                ..self.base_call(campaign, planned, Outcome::Abandoned)
            };
        }
        if roll < OUTBOUND_HUMAN_SHARE + OUTBOUND_MACHINE_SHARE {
            // Answering-machine detection listens for a few seconds, then the dialler hangs up.
            let detect_ms = self.rng.gen_range(200..=800);
            let talk_ms = self.rng.gen_range(3_000..=12_000);
            let answered = planned + ms(detect_ms);
            return NewInteraction {
                answered_at: Some(answered),
                ended_at: Some(answered + ms(talk_ms)),
                wait_ms: Some(detect_ms),
                talk_ms,
                answered_by: Some(AnsweredBy::Machine),
                disposition_id: Some(d.answering_machine),
                ..self.base_call(campaign, planned, Outcome::Answered)
            };
        }
        let dropped = campaign.dropped_share;
        if roll < OUTBOUND_HUMAN_SHARE + OUTBOUND_MACHINE_SHARE + dropped {
            let wait_ms = self.rng.gen_range(2_000..=4_000);
            return NewInteraction {
                ended_at: Some(planned + ms(wait_ms)),
                wait_ms: Some(wait_ms),
                answered_by: Some(AnsweredBy::Human),
                ..self.base_call(campaign, planned, Outcome::Abandoned)
            };
        }
        let no_answer = roll < OUTBOUND_HUMAN_SHARE + OUTBOUND_MACHINE_SHARE + dropped + OUTBOUND_NO_ANSWER_SHARE;
        let (outcome, ring_ms, disposition) = if no_answer {
            (Outcome::NoAnswer, self.rng.gen_range(15_000..=35_000), d.no_answer)
        } else {
            (Outcome::Busy, self.rng.gen_range(1_000..=4_000), d.busy)
        };
        NewInteraction {
            ended_at: Some(planned + ms(ring_ms)),
            disposition_id: Some(disposition),
            ..self.base_call(campaign, planned, outcome)
        }
    }
}

fn day_rng(seed: u64, day: u32) -> StdRng {
    StdRng::seed_from_u64(seed ^ u64::from(day).wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Simulates day `day` of the plan (0 = the oldest) with exactly `quota` calls, numbered from
/// `first_seq` in order of offer.
pub fn simulate_day(plan: &Plan, day: u32, quota: u64, first_seq: u64) -> DayHistory {
    let mut history = DayHistory::default();
    let Some(date) = plan.date(day) else {
        return history;
    };
    let Some(open) = local_time(&plan.tz, date, OPEN_MINUTE) else {
        return history;
    };
    let mut rng = day_rng(plan.seed, day);
    let is_today = date == plan.today();
    let limit = if is_today {
        today_limit(plan).unwrap_or(OPEN_MINUTE)
    } else {
        CLOSE_MINUTE
    };

    // Agents working today, and their pools.
    let mut agents = Vec::new();
    let mut pools: [PoolQueue; 2] = Default::default();
    for (i, (id, pool)) in plan.agents.iter().enumerate() {
        let Some(start) = rota(i as u32, *pool, date.weekday()) else {
            continue;
        };
        let pool = pool_index(*pool);
        let Some(agent) = AgentDay::new(*id, pool, &plan.tz, date, start, &mut rng) else {
            continue;
        };
        if is_today && agent.shift_start >= plan.now {
            continue;
        }
        agents.push(agent);
        pools[pool].push(&agents, agents.len() - 1);
    }

    // Arrivals: campaign by volume weight, time by the campaign direction's curve.
    let total_weight: f64 = plan.campaigns.iter().map(|c| c.weight).sum();
    let profiles = [Profile::new(inbound_weight), Profile::new(outbound_weight)];
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
        let profile = &profiles[pool_index(campaign.direction)];
        // An outbound campaign before the dialler starts (today, early) falls back to the inbound curve.
        let offset = profile
            .sample(&mut rng, limit)
            .or_else(|| profiles[0].sample(&mut rng, limit))
            .unwrap_or(TimeDelta::zero());
        arrivals.push((open + offset, c));
    }
    arrivals.sort_by_key(|(at, _)| *at);

    let mut sim = DaySim {
        plan,
        rng,
        agents,
        pools,
        inbound: inbound_wrapups(&plan.dispositions),
        outbound: outbound_wrapups(&plan.dispositions),
    };
    history.interactions.reserve(arrivals.len());
    for (at, c) in arrivals {
        let Some(campaign) = plan.campaigns.get(c).copied() else {
            continue;
        };
        let call = match campaign.direction {
            Direction::Inbound => sim.inbound_call(&campaign, at),
            Direction::Outbound => sim.outbound_call(&campaign, at),
        };
        history.interactions.push(call);
    }
    history.interactions.sort_by_key(|call| call.offered_at);
    for (n, call) in history.interactions.iter_mut().enumerate() {
        call.external_id = format!("G{}-{:010}", plan.run, first_seq + n as u64);
    }
    for agent in sim.agents {
        agent.into_intervals(plan.now, &mut history.intervals);
    }
    history
}

/// Organization, run number, campaigns, dispositions, teams and agents, in one transaction.
async fn setup(
    conn: &mut AsyncPgConnection,
    settings: &GeneratorSettings,
    now: DateTime<Utc>,
) -> AppResult<(Plan, Uuid, bool)> {
    let settings = settings.clone();
    conn.transaction(async move |conn| -> AppResult<(Plan, Uuid, bool)> {
        let (org, created) = match orgs::find_by_slug(conn, &settings.org_slug).await? {
            Some(org) => (org, false),
            None => {
                let name = format!("Generated: {}", settings.org_slug);
                (
                    orgs::create(conn, &settings.org_slug, &name, DEFAULT_TIMEZONE, "en-GB").await?,
                    true,
                )
            }
        };
        let tenant = Tenant::for_system(org.id);
        let tz: Tz = org.timezone.parse().map_err(|_| {
            AppError::internal(format!("organization time zone {:?} is not an IANA zone", org.timezone))
        })?;
        let run = next_run(conn, &tenant).await?;
        let campaign_ids = ensure_campaigns(conn, &tenant, settings.campaigns).await?;
        let dispositions = ensure_dispositions(conn, &tenant).await?;
        // Agents get their ids from the database, but the pool split and the rota only depend on
        // their number and order: plan with placeholders, then insert and fill the ids in.
        let placeholders = vec![Uuid::nil(); settings.agents as usize];
        let mut plan = Plan::new(tz, now, &settings, run, &placeholders, &campaign_ids, dispositions);
        if day_quotas(&plan).iter().sum::<u64>() != plan.calls {
            return Err(AppError::bad_input(
                "no day to put the calls on: with --days 1, run after 08:30 local time",
            ));
        }
        let mut team_ids = Vec::new();
        for direction in [Direction::Inbound, Direction::Outbound] {
            let members = plan.agents.iter().filter(|(_, d)| *d == direction).count();
            let label = match direction {
                Direction::Inbound => "Inbound",
                Direction::Outbound => "Outbound",
            };
            let mut ids = Vec::new();
            for k in 0..members.div_ceil(TEAM_SIZE) {
                ids.push(cc::insert_team(conn, &tenant, &format!("Run {run} {label} {:02}", k + 1)).await?);
            }
            team_ids.push(ids);
        }
        let mut seen = [0_usize; 2];
        let pools: Vec<usize> = plan
            .agents
            .iter()
            .map(|(_, direction)| pool_index(*direction))
            .collect();
        for (i, pool) in pools.into_iter().enumerate() {
            let team_id = team_ids
                .get(pool)
                .and_then(|ids| ids.get(seen[pool] / TEAM_SIZE))
                .copied();
            seen[pool] += 1;
            let on_shift = plan.on_shift_now(i);
            let name = format!("Agent {run}-{:05}", i + 1);
            let extension = format!("{run}-{:05}", i + 1);
            let id = cc::insert_agent(
                conn,
                &tenant,
                &NewAgent {
                    user_id: None,
                    display_name: &name,
                    extension: Some(&extension),
                    team_id,
                    presence: if on_shift {
                        Presence::Available
                    } else {
                        Presence::Offline
                    },
                    presence_reason: None,
                    routing_state: RoutingState::Idle,
                    state_since: now,
                },
            )
            .await?;
            if let Some(agent) = plan.agents.get_mut(i) {
                agent.0 = id;
            }
        }
        Ok((plan, org.id, created))
    })
    .await
}

/// 1 + the highest run whose teams ("Run N …") the organization has.
async fn next_run(conn: &mut AsyncPgConnection, tenant: &Tenant) -> AppResult<u32> {
    let names: Vec<String> = teams::table
        .filter(teams::organization_id.eq(tenant.org_id()))
        .filter(teams::name.like("Run %"))
        .select(teams::name)
        .load(conn)
        .await?;
    let last = names
        .iter()
        .filter_map(|name| name.split(' ').nth(1).and_then(|n| n.parse::<u32>().ok()))
        .max()
        .unwrap_or(0);
    Ok(last + 1)
}

/// Campaign `n` (1-based) is "Inbound 01", "Outbound 02", "Inbound 03"…; found by name or created.
async fn ensure_campaigns(conn: &mut AsyncPgConnection, tenant: &Tenant, count: u32) -> AppResult<Vec<Uuid>> {
    let mut ids = Vec::with_capacity(count as usize);
    for n in 1..=count {
        let direction = campaign_direction(n);
        let name = match direction {
            Direction::Inbound => format!("Inbound {n:02}"),
            Direction::Outbound => format!("Outbound {n:02}"),
        };
        let existing: Option<(Uuid, String)> = campaigns::table
            .filter(campaigns::organization_id.eq(tenant.org_id()))
            .filter(campaigns::name.eq(&name))
            .select((campaigns::id, campaigns::direction))
            .first(conn)
            .await
            .optional()?;
        if let Some((id, existing_direction)) = existing {
            if existing_direction != direction.as_str() {
                return Err(AppError::bad_input(format!(
                    "campaign {name:?} exists with direction {existing_direction}; the generator needs {}",
                    direction.as_str()
                )));
            }
            ids.push(id);
            continue;
        }
        let outbound_number = n / 2;
        let campaign = match direction {
            Direction::Inbound => NewCampaign {
                name: &name,
                direction,
                dial_mode: None,
                status: CampaignStatus::Active,
                service_level_threshold_seconds: (n % 6 == 5).then_some(30),
                service_level_target_percent: None,
                max_abandon_rate_percent: None,
            },
            Direction::Outbound => NewCampaign {
                name: &name,
                direction,
                dial_mode: Some(match outbound_number % 3 {
                    1 => DialMode::Predictive,
                    2 => DialMode::Progressive,
                    _ => DialMode::Preview,
                }),
                status: CampaignStatus::Active,
                service_level_threshold_seconds: None,
                service_level_target_percent: None,
                max_abandon_rate_percent: Some(3.0),
            },
        };
        ids.push(cc::insert_campaign(conn, tenant, &campaign).await?);
    }
    Ok(ids)
}

/// The dispositions the simulation uses, found by code or created with the demo's flags.
async fn ensure_dispositions(conn: &mut AsyncPgConnection, tenant: &Tenant) -> AppResult<DispositionIds> {
    let human = NewDisposition {
        human_answered: true,
        ..NewDisposition::default()
    };
    let contact = NewDisposition { contact: true, ..human };
    let specs = [
        NewDisposition {
            code: "RESOLVED",
            label: "Resolved",
            ..contact
        },
        NewDisposition {
            code: "SALE",
            label: "Sale",
            success: true,
            ..contact
        },
        NewDisposition {
            code: "CALLBACK",
            label: "Callback requested",
            callback: true,
            ..contact
        },
        NewDisposition {
            code: "NOT_INTERESTED",
            label: "Not interested",
            ..contact
        },
        NewDisposition {
            code: "WRONG_PARTY",
            label: "Wrong party",
            ..human
        },
        NewDisposition {
            code: "DO_NOT_CALL",
            label: "Do not call",
            do_not_call: true,
            ..contact
        },
        NewDisposition {
            code: "ANSWERING_MACHINE",
            label: "Answering machine",
            answering_machine: true,
            ..NewDisposition::default()
        },
        NewDisposition {
            code: "NO_ANSWER",
            label: "No answer",
            ..NewDisposition::default()
        },
        NewDisposition {
            code: "BUSY",
            label: "Busy",
            ..NewDisposition::default()
        },
    ];
    let mut ids = Vec::with_capacity(specs.len());
    for spec in &specs {
        let existing: Option<Uuid> = dispositions::table
            .filter(dispositions::organization_id.eq(tenant.org_id()))
            .filter(dispositions::code.eq(spec.code))
            .select(dispositions::id)
            .first(conn)
            .await
            .optional()?;
        ids.push(match existing {
            Some(id) => id,
            None => cc::insert_disposition(conn, tenant, spec).await?,
        });
    }
    let [resolved, sale, callback, not_interested, wrong_party, do_not_call, answering_machine, no_answer, busy] =
        ids[..]
    else {
        return Err(AppError::internal("generator dispositions: wrong count"));
    };
    Ok(DispositionIds {
        resolved,
        sale,
        callback,
        not_interested,
        wrong_party,
        do_not_call,
        answering_machine,
        no_answer,
        busy,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

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

    fn simulate(plan: &Plan) -> DayHistory {
        let mut all = DayHistory::default();
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
        let key = |h: &DayHistory| {
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

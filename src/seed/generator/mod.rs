//! Synthetic contact-centre traffic at scale, for benchmarks and load tests:
//! `omnivox seed --calls N --days D --agents A --campaigns C [--org SLUG] [--seed S]`.
//!
//! The traffic is simulated by the same model of a contact-centre day as the demo's
//! ([`crate::seed::sim`]), so that it holds together the way real data does; this module plans
//! it at scale (campaigns, rotas, volumes, handle-time scale) and loads it quickly:
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
//!   the time they are next free (the model's per-agent "free at" scheduler). An inbound
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

//!
//! * [`plan`]  — the pure part: campaigns, pools, rotas, daily volumes, arrivals, one day's
//!   traffic through the shared model;
//! * [`setup`] — the organization, its campaigns, dispositions, teams and agents, in one
//!   transaction before the first call.

pub mod plan;
mod setup;

use std::time::{Duration, Instant};

use chrono::{SubsecRound, Utc};
use tokio::task::JoinSet;
use uuid::Uuid;

pub use plan::{day_quotas, rota, simulate_day, Plan};

use crate::auth::Tenant;
use crate::db::{self, DbPool};
use crate::error::{AppError, AppResult};
use crate::kpi::writer;
use crate::seed::sim::History;

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
/// Agents per run are numbered with five digits in their extension.
const MAX_AGENTS: u32 = 99_999;
const MAX_CAMPAIGNS: u32 = 99;
const MAX_DAYS: u32 = 3_660;

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
        setup::setup(&mut conn, settings, now).await?
    };
    let setup_time = started.elapsed();
    let tenant = Tenant::for_system(org_id);
    let quotas = day_quotas(&plan);

    let (sender, mut receiver) = tokio::sync::mpsc::channel::<History>(2);
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
    let mut batch = History::default();
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

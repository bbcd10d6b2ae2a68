//! The live demo simulator: `omnivox demo` keeps its contact centre moving. Calls arrive on the
//! intra-day curve, wait, are answered or abandoned, are wrapped up with a disposition; agents
//! go available, on break, to lunch and offline — all through the same code as the API, so
//! what a wallboard shows is what ingest made of real-looking traffic:
//!
//! * call events go through [`ingest::record_events`] (validation, the call lifecycle, agents'
//!   routing state, rollups, one audit record per batch, publishing after commit): the code of
//!   `recordCallEvents`;
//! * dispositions of calls no agent wrapped up (machines, no answer, busy) go through
//!   [`ingest::set_disposition`], the code of `setDisposition`;
//! * presence changes go through [`presence::set_presence`], the code of `setAgentPresence`.
//!
//! It acts as the demo's admin (`admin@demo.example`): its writes are audited as that user's,
//! with request id `live-demo`, so the audit log tells them apart from a person's.
//!
//! What it plays comes from the demo's own model ([`super::demo_data`], [`super::sim`]): one
//! simulated day at a time, planned when the previous one is over ([`timeline`]), from a random
//! stream seeded by the simulator's seed and the date — the same seed gives the same calls on
//! the same day. Time runs `speed` times faster than real time; events are stamped with the
//! real time at which they fall due, so at speed N a day's traffic plays in 1/N of a day and
//! its durations (talk, wait, wrap-up) shrink by N as well. The simulated clock starts at the
//! process's start during opening hours, otherwise at 09:00 local; after a day's last agent
//! went offline it skips the closed hours to the next opening.
//!
//! Robustness: memory holds one planned day (a few thousand actions) whatever the run time. A
//! database error is logged and the same actions are tried again, backing off from 250 ms to
//! 5 s: nothing is skipped, events keep their original stamps. A day the clock left behind
//! entirely while the database was away is skipped (logged). At start the simulator closes
//! calls an earlier run left open (the process stopped mid-call), then sets each agent's
//! presence to what the model says for the moment. It stops when the process starts draining
//! (or [`LiveSimulator::stop`]), after the batch in hand: a batch counts as work in flight.

pub mod timeline;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use crate::auth::{Principal, Role, Tenant};
use crate::db::{interactions, orgs, presence as db_presence, users};
use crate::domain::{EventType, Presence};
use crate::error::{AppError, AppResult};
use crate::ingest::{self, EventInput, EventStatus, MAX_BATCH_EVENTS};
use crate::management::presence;
use crate::seed::demo_data::{self, SimPlan};
use crate::seed::sim::curves::local_time;
use crate::state::AppState;
use timeline::{Action, Clock, Planner, Timed};

/// Seed of the simulator unless told otherwise.
pub const DEFAULT_SEED: u64 = 0x0011_FE5E_ED15;
/// Slowest and fastest speeds accepted.
pub const MIN_SPEED: f64 = 0.1;
pub const MAX_SPEED: f64 = 10_000.0;
/// Every simulated call's external id starts with this, then the run's tag.
pub const ID_PREFIX: &str = "LIVE-";
/// The request id of the simulator's audit records.
pub const REQUEST_ID: &str = "live-demo";
/// The demo user the simulator acts as.
pub const ACTOR_EMAIL: &str = "admin@demo.example";
/// Shortest real time between two rounds: actions due within it share a transaction.
const MIN_ROUND: Duration = Duration::from_millis(50);
/// Most actions taken in one round (a round after a long outage catches up in several).
const MAX_ACTIONS_PER_ROUND: usize = 4 * MAX_BATCH_EVENTS;
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How far back the start-up looks for calls an earlier run left open.
const LEFT_OPEN_WINDOW: TimeDelta = TimeDelta::days(7);
/// A call an earlier run left open is closed as if it ended this long after its last event.
const LEFT_OPEN_ENDS_AFTER: TimeDelta = TimeDelta::seconds(60);

/// Parses `--speed`: a decimal number from [`MIN_SPEED`] to [`MAX_SPEED`].
pub fn parse_speed(text: &str) -> Result<f64, String> {
    let speed: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number (e.g. 1, 60 or 0.5)"))?;
    check_speed(speed)
}

fn check_speed(speed: f64) -> Result<f64, String> {
    if speed.is_finite() && (MIN_SPEED..=MAX_SPEED).contains(&speed) {
        Ok(speed)
    } else {
        Err(format!("the speed must be between {MIN_SPEED} and {MAX_SPEED}"))
    }
}

/// How the simulator runs.
#[derive(Clone, Copy, Debug)]
pub struct LiveSettings {
    /// Simulated seconds per real second.
    pub speed: f64,
    pub seed: u64,
}

/// The simulator's first committed write.
#[derive(Clone, Copy, Debug)]
pub struct FirstEvent {
    pub at: std::time::Instant,
    /// `call events`, `presence change` or `disposition`.
    pub kind: &'static str,
}

#[derive(Default)]
struct Counters {
    call_events: AtomicU64,
    presence_changes: AtomicU64,
    dispositions: AtomicU64,
    rejected: AtomicU64,
    failures: AtomicU64,
    days: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, AtomicOrdering::Relaxed);
    }

    fn snapshot(&self) -> LiveStats {
        let get = |n: &AtomicU64| n.load(AtomicOrdering::Relaxed);
        LiveStats {
            call_events: get(&self.call_events),
            presence_changes: get(&self.presence_changes),
            dispositions: get(&self.dispositions),
            rejected: get(&self.rejected),
            failures: get(&self.failures),
            days: get(&self.days),
        }
    }
}

/// What the simulator did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// Call events stored (accepted by ingest).
    pub call_events: u64,
    /// Presence changes made (no-ops not counted).
    pub presence_changes: u64,
    /// Dispositions set on calls no agent wrapped up.
    pub dispositions: u64,
    /// Events or changes refused for good (logged, skipped).
    pub rejected: u64,
    /// Rounds that failed for a passing reason (database unavailable…) and were tried again.
    pub failures: u64,
    /// Simulated days planned.
    pub days: u64,
}

/// A running simulator. Dropping the handle leaves it running until the process drains.
pub struct LiveSimulator {
    stop: Arc<watch::Sender<bool>>,
    task: JoinHandle<()>,
    first: watch::Receiver<Option<FirstEvent>>,
    counters: Arc<Counters>,
    start_local: String,
}

impl LiveSimulator {
    /// Waits for the first committed write; `None` if the simulator ended before any.
    pub async fn first_event(&self) -> Option<FirstEvent> {
        let mut first = self.first.clone();
        loop {
            if let Some(event) = *first.borrow_and_update() {
                return Some(event);
            }
            if first.changed().await.is_err() {
                return None;
            }
        }
    }

    pub fn stats(&self) -> LiveStats {
        self.counters.snapshot()
    }

    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// Where the simulated clock started, in the organization's zone.
    pub fn simulated_start_local(&self) -> &str {
        &self.start_local
    }

    /// Stops after the batch in hand and waits for the task to end.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

/// Starts the simulator on the seeded demo organization (see the module documentation).
/// Refuses a speed out of range, and an organization that is not the seeded demo.
pub async fn start(state: AppState, settings: LiveSettings) -> AppResult<LiveSimulator> {
    let speed = check_speed(settings.speed).map_err(|why| AppError::bad_input(format!("--speed: {why}")))?;
    // Cross-tenant (`db::tenancy`): the slug finds the demo organization.
    let mut conn = state.system_db.get().await?;
    let org = orgs::find_by_slug(&mut conn, super::DEMO_SLUG).await?.ok_or_else(|| {
        AppError::NotFound(format!(
            "the demo organization `{}` does not exist: run `omnivox seed --demo` first",
            super::DEMO_SLUG
        ))
    })?;
    let tenant = Tenant::for_system(org.id);
    let actor = users::find_by_email(&mut conn, ACTOR_EMAIL)
        .await?
        .filter(|u| u.active && u.organization_id == org.id && u.role >= Role::Supervisor)
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "the simulator acts as {ACTOR_EMAIL}, who must be an active SUPERVISOR or higher of `{}`: \
                 run `omnivox seed --demo` to restore the demo logins",
                super::DEMO_SLUG
            ))
        })?;
    let plan = demo_data::load_plan(&mut conn, &tenant, DateTime::<Utc>::MAX_UTC)
        .await?
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "`{}` lacks the demo's campaigns or dispositions: it was not seeded as the demo",
                super::DEMO_SLUG
            ))
        })?;
    let codes = disposition_codes(&plan);
    drop(conn);
    let principal = Principal {
        user_id: actor.id,
        org_id: org.id,
        role: actor.role,
        email: actor.email,
        display_name: actor.display_name,
        token_expires_at: i64::MAX,
        api_key: None,
    };
    let wall = Utc::now();
    let sim_start = timeline::simulated_start(wall, &plan.tz);
    let start_local = sim_start
        .with_timezone(&plan.tz)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string();
    let clock = Clock::new(sim_start, wall, Instant::now(), speed);
    let (stop, stop_rx) = watch::channel(false);
    let (first, first_rx) = watch::channel(None);
    let counters = Arc::new(Counters::default());
    tracing::info!(speed, seed = settings.seed, simulated_start = %start_local, "live simulator started");
    let runner = Runner {
        next_date: sim_start.with_timezone(&plan.tz).date_naive(),
        id_prefix: format!("{ID_PREFIX}{:x}-", wall.timestamp_millis()),
        state,
        tenant,
        principal,
        plan,
        codes,
        seed: settings.seed,
        clock,
        queue: BinaryHeap::new(),
        next_call: 0,
        first_day: true,
        counters: Arc::clone(&counters),
        first,
        stop: stop_rx,
    };
    let task = tokio::spawn(runner.run());
    Ok(LiveSimulator {
        stop: Arc::new(stop),
        task,
        first: first_rx,
        counters,
        start_local,
    })
}

/// Disposition codes by id, as the seed names them (the demo files BUSY as NO_ANSWER).
fn disposition_codes(plan: &SimPlan) -> HashMap<Uuid, String> {
    let d = plan.dispositions;
    let mut codes = HashMap::new();
    // Later entries win: BUSY shares NO_ANSWER's id in the demo, and keeps that code.
    for (id, code) in [
        (d.busy, "BUSY"),
        (d.resolved, "RESOLVED"),
        (d.sale, "SALE"),
        (d.callback, "CALLBACK"),
        (d.not_interested, "NOT_INTERESTED"),
        (d.wrong_party, "WRONG_PARTY"),
        (d.do_not_call, "DO_NOT_CALL"),
        (d.answering_machine, "ANSWERING_MACHINE"),
        (d.no_answer, "NO_ANSWER"),
    ] {
        codes.insert(id, code.to_owned());
    }
    codes
}

/// Whether trying again later may succeed (the database or a lock race), as opposed to a
/// refusal that will stand.
fn passing(error: &AppError) -> bool {
    matches!(
        error,
        AppError::Unavailable(_) | AppError::Internal(_) | AppError::RateLimited { .. }
    )
}

struct Runner {
    state: AppState,
    tenant: Tenant,
    principal: Principal,
    plan: SimPlan,
    codes: HashMap<Uuid, String>,
    seed: u64,
    id_prefix: String,
    clock: Clock,
    queue: BinaryHeap<Reverse<Timed>>,
    /// The next simulated day to plan.
    next_date: NaiveDate,
    next_call: u64,
    first_day: bool,
    counters: Arc<Counters>,
    first: watch::Sender<Option<FirstEvent>>,
    stop: watch::Receiver<bool>,
}

impl Runner {
    fn stopping(&self) -> bool {
        *self.stop.borrow() || self.state.lifecycle.is_draining()
    }

    /// Sleeps until `until`; false when the simulator should stop instead.
    async fn sleep_until(&self, until: Instant) -> bool {
        let lifecycle = self.state.lifecycle.clone();
        let mut stop = self.stop.clone();
        let stopped = async move {
            // A dropped handle is not a stop: the simulator runs until the process drains.
            if stop.wait_for(|stop| *stop).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let slept = tokio::select! {
            () = tokio::time::sleep_until(until) => true,
            () = stopped => false,
            () = lifecycle.draining() => false,
        };
        slept && !self.stopping()
    }

    async fn run(mut self) {
        let mut backoff = BACKOFF_START;
        let mut last_round = Instant::now();
        loop {
            if self.stopping() {
                break;
            }
            let outcome = if self.queue.is_empty() {
                let work = self.state.lifecycle.work();
                if self.stopping() {
                    break;
                }
                let planned = self.plan_next_day().await;
                drop(work);
                planned
            } else {
                let next_at = self.queue.peek().map(|t| t.0.at).unwrap_or_default();
                let wake = self.clock.instant_of(next_at).max(last_round + MIN_ROUND);
                if !self.sleep_until(wake).await {
                    break;
                }
                last_round = Instant::now();
                let sim_now = self.clock.sim_at(last_round);
                let mut due = Vec::new();
                while due.len() < MAX_ACTIONS_PER_ROUND && self.queue.peek().is_some_and(|t| t.0.at <= sim_now) {
                    if let Some(Reverse(timed)) = self.queue.pop() {
                        due.push(timed);
                    }
                }
                // The guard first, then the check: a drain that began meanwhile either sees
                // this round as work in flight or stops it before it writes.
                let work = self.state.lifecycle.work();
                if self.stopping() {
                    break;
                }
                let played = self.play(due).await;
                drop(work);
                played
            };
            match outcome {
                Ok(()) => backoff = BACKOFF_START,
                Err(error) => {
                    Counters::add(&self.counters.failures, 1);
                    tracing::warn!(
                        code = error.code().as_str(),
                        error = %error.operator_message(),
                        retry_in_ms = backoff.as_millis() as u64,
                        "live simulator: a write failed; trying again"
                    );
                    if !self.sleep_until(Instant::now() + backoff).await {
                        break;
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        tracing::info!(stats = ?self.counters.snapshot(), "live simulator stopped");
    }

    fn mark_first(&self, kind: &'static str) {
        self.first.send_if_modified(|first| {
            if first.is_some() {
                return false;
            }
            *first = Some(FirstEvent {
                at: std::time::Instant::now(),
                kind,
            });
            true
        });
    }

    /// Plans the next simulated day into the queue. After the first day the clock skips the
    /// closed hours; a day the clock already left behind is skipped.
    async fn plan_next_day(&mut self) -> AppResult<()> {
        let date = self.next_date;
        let tz = self.plan.tz;
        let now = Instant::now();
        let sim_now = self.clock.sim_at(now);
        let from = if self.first_day {
            sim_now
        } else {
            let Some(open) = timeline::day_open(&tz, date) else {
                self.next_date = date.succ_opt().unwrap_or(date);
                return Ok(());
            };
            let day_end = date
                .succ_opt()
                .and_then(|next| local_time(&tz, next, 0))
                .unwrap_or(open + TimeDelta::days(1));
            if sim_now >= day_end {
                tracing::warn!(%date, "live simulator: fell a whole simulated day behind; skipping it");
                self.next_date = date.succ_opt().unwrap_or(date);
                return Ok(());
            }
            if open > sim_now {
                self.clock.rebase(open, Utc::now(), now);
            }
            // Just before opening, so that the first shifts' presence changes are played.
            open - TimeDelta::milliseconds(1)
        };
        let reasons = self.reason_codes().await?;
        let calls_before = self.next_call;
        let planner = Planner {
            plan: &self.plan,
            seed: self.seed,
            codes: &self.codes,
            reasons: &reasons,
            id_prefix: &self.id_prefix,
        };
        let day = planner.plan_day(date, from, &mut self.next_call);
        if self.first_day {
            let caught_up = self.catch_up(&day.presence_at_start).await;
            if let Err(error) = caught_up {
                self.next_call = calls_before;
                return Err(error);
            }
            self.first_day = false;
        }
        tracing::info!(%date, calls = day.calls, actions = day.actions.len(), "live simulator: planned a simulated day");
        Counters::add(&self.counters.days, 1);
        self.queue.extend(day.actions.into_iter().map(Reverse));
        self.next_date = date.succ_opt().unwrap_or(date);
        Ok(())
    }

    /// The first active reason code per presence, for organizations that require one.
    async fn reason_codes(&self) -> AppResult<HashMap<Presence, String>> {
        let mut conn = self.state.db.get(&self.tenant).await?;
        let mut codes = db_presence::reason_codes(&mut conn, &self.tenant).await?;
        codes.sort_by(|a, b| a.code.cmp(&b.code));
        let mut out = HashMap::new();
        for code in codes.into_iter().filter(|c| c.active) {
            if let Some(presence) = Presence::parse(&code.presence) {
                out.entry(presence).or_insert(code.code);
            }
        }
        Ok(out)
    }

    /// Start-up: closes the calls an earlier run left open, then sets every agent's presence
    /// to the model's at the start (no-ops for those already right).
    async fn catch_up(&mut self, presences: &[(Uuid, Presence, Option<String>)]) -> AppResult<()> {
        let closed = self.close_left_open().await?;
        if closed > 0 {
            tracing::info!(calls = closed, "live simulator: closed calls an earlier run left open");
        }
        for (agent_id, presence, reason) in presences {
            self.set_presence(*agent_id, *presence, reason.clone()).await?;
        }
        Ok(())
    }

    async fn close_left_open(&mut self) -> AppResult<usize> {
        let now = Utc::now();
        let rows = {
            let mut conn = self.state.db.get(&self.tenant).await?;
            interactions::open_calls_with_prefix(
                &mut conn,
                &self.tenant,
                ID_PREFIX,
                now - LEFT_OPEN_WINDOW,
                MAX_BATCH_EVENTS as i64 / 2,
            )
            .await?
        };
        let mut inputs = Vec::new();
        for row in &rows {
            let last = [Some(row.offered_at), row.answered_at, row.ended_at]
                .into_iter()
                .flatten()
                .max()
                .unwrap_or(row.offered_at);
            let ended = row
                .ended_at
                .unwrap_or_else(|| (last + LEFT_OPEN_ENDS_AFTER).min(now).max(last));
            let input = |event_type, occurred_at| EventInput::bare(row.external_id.clone(), event_type, occurred_at);
            if row.ended_at.is_none() {
                inputs.push(input(EventType::Ended, ended));
            }
            if row.agent_id.is_some() && row.answered_at.is_some() {
                inputs.push(input(EventType::WrapUpEnded, ended));
            }
        }
        if !inputs.is_empty() {
            self.record(inputs).await?;
        }
        Ok(rows.len())
    }

    /// Plays due actions in order: runs of call events as one batch, other actions one by one.
    /// On a passing failure the failed action and everything after it go back to the queue.
    async fn play(&mut self, due: Vec<Timed>) -> AppResult<()> {
        let mut rest = due.into_iter().peekable();
        while let Some(first) = rest.next() {
            let mut segment = vec![first];
            if matches!(segment[0].action, Action::Event(_)) {
                while segment.len() < MAX_BATCH_EVENTS
                    && rest.peek().is_some_and(|t| matches!(t.action, Action::Event(_)))
                {
                    segment.extend(rest.next());
                }
            }
            let result = self.play_segment(&segment).await;
            match result {
                Ok(()) => {}
                Err(error) if passing(&error) => {
                    self.queue.extend(segment.into_iter().chain(rest).map(Reverse));
                    return Err(error);
                }
                Err(error) => {
                    Counters::add(&self.counters.rejected, 1);
                    tracing::warn!(
                        code = error.code().as_str(),
                        error = %error.operator_message(),
                        "live simulator: a change was refused; skipping it"
                    );
                }
            }
        }
        Ok(())
    }

    async fn play_segment(&mut self, segment: &[Timed]) -> AppResult<()> {
        let Some(first) = segment.first() else {
            return Ok(());
        };
        match &first.action {
            Action::Event(_) => {
                let inputs = segment
                    .iter()
                    .filter_map(|t| match &t.action {
                        Action::Event(input) => Some(EventInput {
                            occurred_at: self.clock.stamp(t.at),
                            ..input.clone()
                        }),
                        _ => None,
                    })
                    .collect();
                self.record(inputs).await
            }
            Action::Dispose { external_id, code } => {
                let row = {
                    let mut conn = self.state.db.get(&self.tenant).await?;
                    interactions::interaction_by_external_id(&mut conn, &self.tenant, external_id).await?
                };
                let row = row.ok_or_else(|| AppError::NotFound(format!("call {external_id} was not stored")))?;
                ingest::set_disposition(
                    &self.state,
                    &self.principal,
                    &self.tenant,
                    row.id,
                    code,
                    None,
                    Some(REQUEST_ID.to_owned()),
                )
                .await?;
                Counters::add(&self.counters.dispositions, 1);
                self.mark_first("disposition");
                Ok(())
            }
            Action::Presence {
                agent_id,
                presence,
                reason,
            } => self.set_presence(*agent_id, *presence, reason.clone()).await,
        }
    }

    /// Call events through ingest; refusals of single events are logged and counted.
    async fn record(&mut self, inputs: Vec<EventInput>) -> AppResult<()> {
        let results = ingest::record_events(
            &self.state,
            &self.principal,
            &self.tenant,
            inputs,
            Some(REQUEST_ID.to_owned()),
        )
        .await?;
        let mut accepted = 0;
        for result in &results {
            match &result.status {
                EventStatus::Accepted => accepted += 1,
                EventStatus::Duplicate => {}
                EventStatus::Rejected(reason) => {
                    Counters::add(&self.counters.rejected, 1);
                    tracing::warn!(call = %result.external_id, %reason, "live simulator: an event was refused");
                }
            }
        }
        if accepted > 0 {
            Counters::add(&self.counters.call_events, accepted);
            self.mark_first("call events");
        }
        Ok(())
    }

    async fn set_presence(&mut self, agent_id: Uuid, to: Presence, reason: Option<String>) -> AppResult<()> {
        let change = presence::set_presence(
            &self.state,
            &self.principal,
            &self.tenant,
            Some(agent_id),
            to,
            reason,
            Some(REQUEST_ID.to_owned()),
        )
        .await?;
        if change.changed {
            Counters::add(&self.counters.presence_changes, 1);
            self.mark_first("presence change");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_are_checked() {
        assert_eq!(parse_speed("1"), Ok(1.0));
        assert_eq!(parse_speed(" 60 "), Ok(60.0));
        assert_eq!(parse_speed("0.5"), Ok(0.5));
        assert!(parse_speed("0").is_err());
        assert!(parse_speed("-3").is_err());
        assert!(parse_speed("20000").is_err());
        assert!(parse_speed("NaN").is_err());
        assert!(parse_speed("fast").is_err());
    }
}

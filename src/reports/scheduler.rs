//! The scheduler: every instance runs it; each due fire becomes exactly one run, whichever
//! instances are up.
//!
//! Every `--schedule-tick` an instance claims due schedules one at a time, each in its own
//! transaction: `SELECT … FOR UPDATE SKIP LOCKED` on one unpaused schedule whose `next_fire_at`
//! has passed, then the run of its fire is enqueued (`reports::jobs::enqueue`: `ON CONFLICT DO
//! NOTHING` on the unique key (schedule_id, fire_at)), its deliveries written, and
//! `next_fire_at` moved past now — all committed together. Two instances never hold the same
//! schedule (the row lock; the second skips it), a schedule just fired is no longer due when
//! the lock is granted (PostgreSQL re-checks the condition), and the unique key would refuse a
//! second run of one fire even if both somehow got there. An instance that dies mid-claim
//! rolls back: the schedule is still due, and the next tick anywhere claims it. A run that an
//! instance dies while running is the run worker's business (`reports::jobs`: heartbeats and
//! takeover).
//!
//! After downtime only the latest missed fire runs; the earlier ones are counted in
//! `missed_fires` (see [`crate::reports::cron`]). A fire that cannot make a run — the report's
//! owner may no longer see it, the stored definition is unreadable — is skipped with the
//! reason in `last_error`, and the schedule moves on to its next fire: retrying would not mend
//! it. A database failure rolls the claim back and the fire is tried again on the next tick.
//!
//! The run's range is the report's own, resolved at the FIRE time (not when the worker gets to
//! it) in the organization's zone: the 02:00 run of "yesterday" reports yesterday even if it
//! starts late.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use crate::auth::{Principal, Tenant};
use crate::db::report_deliveries::{self as deliveries, EMAIL, WEBHOOK};
use crate::db::report_schedules::{self as rows, Fired, ScheduleRow};
use crate::db::{reports as report_rows, users};
use crate::error::{AppError, AppResult};
use crate::kpi::organization_rule;
use crate::reports::jobs::{self, NewRun, RunOrigin};
use crate::reports::schedules::{format_named, stored_pattern};
use crate::reports::{sees, SavedReport};
use crate::state::AppState;

/// At most this many schedules claimed by one instance in one tick (the rest wait a tick, or
/// go to another instance).
pub const MAX_PER_TICK: usize = 500;

/// What one claim did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// A run was enqueued for the fire (its id), with this many earlier fires skipped.
    Run {
        schedule_id: Uuid,
        run_id: Uuid,
        fire_at: DateTime<Utc>,
        missed: i64,
    },
    /// The fire already had a run (another path got there first): nothing new.
    AlreadyRun { schedule_id: Uuid, fire_at: DateTime<Utc> },
    /// The fire could not make a run; the reason is on the schedule.
    Skipped { schedule_id: Uuid, reason: String },
}

/// Starts the loop; it stops when the instance starts draining.
pub fn spawn(state: &AppState) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let tick = state.settings.schedule_tick.max(Duration::from_millis(50));
        let lifecycle = state.lifecycle.clone();
        loop {
            tokio::select! {
                () = lifecycle.draining() => break,
                () = tokio::time::sleep(tick) => {}
            }
            // A claim in flight is one transaction: let it finish before the process exits.
            let _work = lifecycle.work();
            match tick_once(&state, Utc::now()).await {
                Ok(claimed) if !claimed.is_empty() => {
                    tracing::debug!(claimed = claimed.len(), "report schedules fired");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e.operator_message(), "report scheduler tick failed; retrying next tick")
                }
            }
        }
    })
}

/// Claims every schedule due at `now` (up to [`MAX_PER_TICK`]), one transaction each.
pub async fn tick_once(state: &AppState, now: DateTime<Utc>) -> AppResult<Vec<Claimed>> {
    // Cross-tenant (`db::tenancy`): due schedules of every organization, each claimed and
    // fired in its own transaction.
    let mut conn = state.system_db.get().await?;
    let mut claimed = Vec::new();
    while claimed.len() < MAX_PER_TICK && !state.lifecycle.is_draining() {
        match claim_one(state, &mut conn, now).await? {
            Some(c) => {
                if matches!(c, Claimed::Run { .. }) {
                    jobs::wake(state);
                }
                if let Claimed::Skipped { schedule_id, reason } = &c {
                    tracing::warn!(%schedule_id, reason = %reason, "report schedule fire skipped");
                }
                claimed.push(c);
            }
            None => break,
        }
    }
    Ok(claimed)
}

/// Claims one due schedule and fires it, in one transaction; None when nothing is due.
pub async fn claim_one(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    now: DateTime<Utc>,
) -> AppResult<Option<Claimed>> {
    let max_attempts = state.settings.delivery_backoff.max_attempts();
    conn.transaction(async |conn| -> AppResult<Option<Claimed>> {
        let Some(row) = rows::claim_due(conn, now).await? else {
            return Ok(None);
        };
        let tenant = Tenant::for_system(row.organization_id);
        let (pattern, tz) = stored_pattern(&row.cron, &row.timezone)?;
        let due = row.next_fire_at.unwrap_or(now);
        let next_fire_at = pattern.next_after(tz, now);
        let Some((fire_at, missed)) = pattern.latest_due(tz, due, now) else {
            // No fire in the window (cannot happen for a stored next_fire_at): move on.
            rows::record_fire(conn, &tenant, row.id, Fired { next_fire_at, fire_at: None, run_id: None, missed: 0, error: None }).await?;
            return Ok(Some(Claimed::Skipped { schedule_id: row.id, reason: "no fire in the due window".into() }));
        };
        if missed > 0 {
            tracing::info!(schedule_id = %row.id, missed, %fire_at, "report schedule: fires missed while no instance ran; only the latest runs");
        }
        let outcome = match prepare(conn, &tenant, &row, fire_at).await? {
            Err(reason) => Err(reason),
            // A savepoint: a run that cannot be written is recorded as a skipped fire instead of
            // rolling back the claim (and being claimed again at once).
            Ok(run) => match conn
                .transaction(async |conn| -> AppResult<Option<Uuid>> {
                    let run_id = jobs::enqueue(conn, &tenant, run).await?;
                    if let Some(run_id) = run_id {
                        let mut targets: Vec<(&str, &str)> = row.recipients.iter().map(|r| (EMAIL, r.as_str())).collect();
                        if let Some(url) = &row.webhook_url {
                            targets.push((WEBHOOK, url.as_str()));
                        }
                        deliveries::insert_for_run(conn, &tenant, run_id, row.id, &targets, max_attempts).await?;
                    }
                    Ok(run_id)
                })
                .await
            {
                Ok(run_id) => Ok(run_id),
                // Worth retrying on the next tick: roll the claim back.
                Err(e @ AppError::Unavailable(_)) => return Err(e),
                Err(e) => Err(format!("the run could not be enqueued: {}", e.operator_message())),
            },
        };
        let (claimed, run_id, error) = match outcome {
            Ok(Some(run_id)) => (Claimed::Run { schedule_id: row.id, run_id, fire_at, missed }, Some(run_id), None),
            Ok(None) => (Claimed::AlreadyRun { schedule_id: row.id, fire_at }, None, None),
            Err(reason) => (Claimed::Skipped { schedule_id: row.id, reason: reason.clone() }, None, Some(reason)),
        };
        rows::record_fire(conn, &tenant, row.id, Fired { next_fire_at, fire_at: Some(fire_at), run_id, missed, error }).await?;
        Ok(Some(claimed))
    })
    .await
}

/// The run a fire asks for, or why there is none: the report as it is now (its current
/// version), if the schedule's owner may still see it; its range resolved at the fire time in
/// the organization's zone.
async fn prepare(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    row: &ScheduleRow,
    fire_at: DateTime<Utc>,
) -> AppResult<Result<NewRun, String>> {
    let Some(report) = report_rows::get(conn, tenant, row.report_id).await? else {
        return Ok(Err("the report is gone".into()));
    };
    let owner = match users::get(conn, tenant, row.owner_id).await {
        Ok(owner) => owner,
        Err(AppError::NotFound(_)) => return Ok(Err("the schedule's owner is gone".into())),
        Err(e) => return Err(e),
    };
    let as_owner = Principal {
        user_id: owner.id,
        org_id: owner.organization_id,
        role: owner.role,
        email: owner.email.clone(),
        display_name: owner.display_name.clone(),
        token_expires_at: 0,
        api_key: None,
    };
    if !owner.active || !crate::reports::may_create(owner.role) || !sees(&as_owner, report.owner_id, report.shared) {
        return Ok(Err("the schedule's owner may no longer schedule this report (inactive, role changed, or the report is no longer shared)".into()));
    }
    let report = match SavedReport::try_from(report) {
        Ok(report) => report,
        Err(e) => return Ok(Err(e.operator_message())),
    };
    let Some(format) = format_named(&row.format) else {
        return Ok(Err(format!("unknown format {}", row.format)));
    };
    let (_, org_tz) = organization_rule(conn, tenant).await?;
    let (from, to) = report.definition.range.resolve(org_tz, fire_at);
    Ok(Ok(NewRun {
        report_id: report.id,
        report_version: report.version,
        format,
        from,
        to,
        bom: false,
        origin: RunOrigin::Schedule {
            schedule_id: row.id,
            fire_at,
        },
    }))
}

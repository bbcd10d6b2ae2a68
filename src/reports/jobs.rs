//! Report runs as jobs: queued in PostgreSQL, executed by a worker in every instance.
//!
//! `runReport` (or a schedule's fire) inserts a QUEUED row ([`enqueue`]) and answers at once.
//! Each instance's worker ([`spawn`]) claims due runs one at a time with `FOR UPDATE SKIP
//! LOCKED` (so one instance takes each), at most `--report-workers` at once, woken at once by
//! a run queued on the same instance or a slot coming free, and otherwise polling every
//! second. A run:
//!
//! 1. answers its report over the range resolved when it was asked (`reports::run::prepare`:
//!    the one analytics engine) — or, for an interaction detail log, starts reading its calls
//!    page by page (`reports::log`), so a log of millions of calls never sits in memory;
//! 2. writes the rows through the format's writer into an anonymous temporary file, on a
//!    blocking thread, counting rows as they go (a log's pages arrive through a bounded
//!    channel while earlier ones are written);
//! 3. meanwhile reports every second ([`HEARTBEAT`]): the rows written so far (published on
//!    the bus for `reportRunUpdated`), and learns whether it was cancelled or lost;
//! 4. ends in one transaction that checks it still holds the run, stores the file in chunks
//!    (`reports::files`), marks the run SUCCEEDED with rows, bytes and expiry, and writes the
//!    audit record.
//!
//! An instance killed mid-run stops heartbeating; after `--report-takeover-after` another
//! instance claims the run again (attempt + 1). The claim's attempt fences every write, so the
//! dead attempt can never finish it: the run is executed again once, not duplicated, not lost.
//! A run that fails for a reason worth retrying (database unavailable, an internal error) goes
//! back to the queue with backoff ([`retry_delay`]) until its attempts are spent; a run whose
//! report no longer answers (deleted, invalid) fails at once with the reason.
//!
//! Cross-tenant by nature: the worker serves every organization, and takes each run's
//! organization as its [`Tenant`] from the claimed row.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::json;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::audit::{self, Actor, AuditEvent};
use crate::auth::{Role, Tenant};
use crate::db::report_runs::{self as rows, Beat, Claim, Ending, NewRunRow, RunRow};
use crate::db::users;
use crate::error::{AppError, AppResult};
use crate::realtime::BusEvent;
use crate::reports::definition::{ReportKind, ReportRange};
use crate::reports::formats::{Cell, ExportFormat, ExportMeta, TableWriter};
use crate::reports::table::Table;
use crate::reports::{files, log, run, saved};
use crate::state::AppState;

/// How often a running run reports progress and checks for cancellation.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How often an idle worker looks for runs queued by other instances.
const POLL: Duration = Duration::from_secs(1);
/// How often expired files are deleted and runs of dead instances with no attempts left are
/// failed.
const SWEEP: Duration = Duration::from_secs(60);

/// Who asked for a run.
#[derive(Debug, Clone, Copy)]
pub enum RunOrigin {
    User { user_id: Uuid, api_key_id: Option<Uuid> },
    Schedule { schedule_id: Uuid, fire_at: DateTime<Utc> },
}

/// A run to queue: the report, the format and the resolved range.
#[derive(Debug, Clone, Copy)]
pub struct NewRun {
    pub report_id: Uuid,
    pub report_version: i32,
    pub format: ExportFormat,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub bom: bool,
    pub origin: RunOrigin,
}

/// Queues a run in the caller's transaction; None when the schedule's fire already has one.
/// After the commit, [`wake`] this instance's worker.
pub async fn enqueue(conn: &mut AsyncPgConnection, tenant: &Tenant, run: NewRun) -> AppResult<Option<Uuid>> {
    let (requested_by, api_key_id, schedule_id, fire_at) = match run.origin {
        RunOrigin::User { user_id, api_key_id } => (Some(user_id), api_key_id, None, None),
        RunOrigin::Schedule { schedule_id, fire_at } => (None, None, Some(schedule_id), Some(fire_at)),
    };
    let row = rows::insert(
        conn,
        tenant,
        NewRunRow {
            report_id: run.report_id,
            report_version: run.report_version,
            requested_by,
            api_key_id,
            schedule_id,
            fire_at,
            format: run.format.name(),
            range_from: run.from,
            range_to: run.to,
            bom: run.bom,
        },
    )
    .await?;
    Ok(row.map(|r| r.id))
}

/// Wakes this instance's worker: a run was just queued.
pub fn wake(state: &AppState) {
    state.report_runs_queued.notify_one();
}

/// The delay before attempt `attempt + 1` of a run that failed on `attempt`: 10 s, 40 s, 160 s…
pub fn retry_delay(attempt: i32) -> Duration {
    let exponent = u32::try_from(attempt.clamp(1, 6) - 1).unwrap_or(0);
    Duration::from_secs(10 * 4u64.pow(exponent))
}

/// Starts this instance's worker, unless `--report-workers 0` (an instance that serves the
/// API and leaves runs to the others). It stops claiming when the instance drains; runs under
/// way hold the drain until they end.
pub fn spawn(state: &AppState) -> Option<tokio::task::JoinHandle<()>> {
    if state.settings.report_workers == 0 {
        tracing::info!("report runs: --report-workers 0, this instance executes none");
        return None;
    }
    let worker = Uuid::new_v4().to_string();
    Some(tokio::spawn(work(state.clone(), worker)))
}

async fn work(state: AppState, worker: String) {
    let slots = Arc::new(Semaphore::new(state.settings.report_workers));
    let mut last_sweep: Option<tokio::time::Instant> = None;
    loop {
        if state.lifecycle.is_draining() {
            return;
        }
        if last_sweep.is_none_or(|at| at.elapsed() >= SWEEP) {
            sweep(&state).await;
            last_sweep = Some(tokio::time::Instant::now());
        }
        // Claim while there are free slots and due runs.
        while let Ok(permit) = Arc::clone(&slots).try_acquire_owned() {
            match claim(&state, &worker).await {
                Ok(Some(row)) => {
                    let state = state.clone();
                    let guard = state.lifecycle.work();
                    tokio::spawn(async move {
                        execute(&state, row).await;
                        drop((permit, guard));
                        // A slot is free: claim the next due run now, not at the next poll.
                        wake(&state);
                    });
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(error = ?error, "report runs: claiming failed; trying again shortly");
                    break;
                }
            }
        }
        tokio::select! {
            () = state.report_runs_queued.notified() => {}
            () = tokio::time::sleep(POLL) => {}
            () = state.lifecycle.draining() => return,
        }
    }
}

async fn claim(state: &AppState, worker: &str) -> AppResult<Option<RunRow>> {
    // Cross-tenant (`db::tenancy`): the next due run of any organization; the run then
    // executes as its organization's tenant.
    let mut conn = state.system_db.get().await?;
    rows::claim(&mut conn, worker, state.settings.report_takeover_after).await
}

async fn sweep(state: &AppState) {
    let swept = async {
        // Cross-tenant (`db::tenancy`): abandoned runs and expired files of every organization.
        let mut conn = state.system_db.get().await?;
        for run in rows::fail_abandoned(&mut conn, state.settings.report_takeover_after).await? {
            tracing::warn!(run_id = %run.id, "report run failed: its instance stopped on its last attempt");
            state
                .bus
                .publish(run.organization_id, BusEvent::ReportRun { run_id: run.id });
        }
        let deleted = rows::delete_expired_files(&mut conn, 1_000).await?;
        if deleted > 0 {
            tracing::info!(files = deleted, "report files past their retention deleted");
        }
        AppResult::Ok(())
    };
    if let Err(error) = swept.await {
        tracing::warn!(error = ?error, "report runs: sweep failed; trying again later");
    }
}

/// Why a run stopped before its file was done.
enum Stop {
    Cancelled,
    /// Another instance took the run over: this attempt leaves it alone.
    Lost,
    Failed(AppError),
}

impl From<AppError> for Stop {
    fn from(error: AppError) -> Self {
        Stop::Failed(error)
    }
}

/// The written file.
struct Produced {
    file: std::fs::File,
    rows: i64,
    filename: String,
    format: ExportFormat,
}

/// Executes a claimed run to its end (whatever happens, the run's row says how it ended,
/// unless another instance took it over).
async fn execute(state: &AppState, row: RunRow) {
    let claim = Claim {
        run_id: row.id,
        org_id: row.organization_id,
        attempt: row.attempt,
    };
    let tenant = Tenant::for_system(row.organization_id);
    let started = std::time::Instant::now();
    state
        .bus
        .publish(claim.org_id, BusEvent::ReportRun { run_id: claim.run_id });
    let outcome = produce(state, &tenant, &row, claim).await;
    let ended = match outcome {
        Ok(produced) => store(state, &tenant, &row, claim, produced, started).await,
        Err(Stop::Lost) => Ok(false),
        Err(Stop::Cancelled) => end(state, claim, Ending::Cancelled).await,
        Err(Stop::Failed(error)) => fail(state, claim, error).await,
    };
    match ended {
        Ok(true) => state
            .bus
            .publish(claim.org_id, BusEvent::ReportRun { run_id: claim.run_id }),
        Ok(false) => tracing::info!(run_id = %claim.run_id, "report run taken over by another instance"),
        Err(error) => {
            // The claim stays; another attempt takes the run over after the takeover delay.
            tracing::error!(run_id = %claim.run_id, error = ?error, "report run: could not record its end");
        }
    }
}

async fn end(state: &AppState, claim: Claim, ending: Ending<'_>) -> AppResult<bool> {
    let mut conn = state.db.get(&Tenant::for_system(claim.org_id)).await?;
    rows::finish(&mut conn, claim, ending).await
}

/// Records a failure: for good when the report cannot answer (what the requester reads says
/// why), else back to the queue with backoff (the detail is logged, the requester reads a
/// masked message).
async fn fail(state: &AppState, claim: Claim, error: AppError) -> AppResult<bool> {
    let message = error.client_message();
    match error {
        AppError::BadUserInput { .. } | AppError::NotFound(_) | AppError::Forbidden(_) => {
            end(state, claim, Ending::Failed(&message)).await
        }
        error => {
            tracing::warn!(run_id = %claim.run_id, attempt = claim.attempt, error = ?error, "report run failed; retrying");
            let delay = retry_delay(claim.attempt);
            end(state, claim, Ending::Retry { error: &message, delay }).await
        }
    }
}

/// Answers the report and writes its file, heartbeating meanwhile.
async fn produce(state: &AppState, tenant: &Tenant, row: &RunRow, claim: Claim) -> Result<Produced, Stop> {
    let format = ExportFormat::from_name(&row.format)
        .ok_or_else(|| AppError::internal(format!("report run {}: unknown format {}", row.id, row.format)))?;
    let report = {
        let mut conn = state.db.get(tenant).await?;
        saved::load(&mut conn, tenant, row.report_id)
            .await?
            .ok_or_else(|| AppError::NotFound("the report was deleted".into()))?
    };
    let source = match report.definition.kind {
        ReportKind::Analytics => {
            let range = ReportRange::Absolute {
                from: row.range_from,
                to: row.range_to,
            };
            let (table, meta) = run::prepare(state, tenant, &report, Some(range), "range").await?;
            Source::Table { table, meta }
        }
        ReportKind::InteractionLog => {
            let unmasked = {
                let mut conn = state.db.get(tenant).await?;
                log::unmasked_for(&mut conn, tenant, row.requested_by, row.schedule_id).await?
            };
            Source::Log(log::open(state, tenant, &report, row.range_from, row.range_to, unmasked).await?)
        }
    };
    let written = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let row_delay = state.settings.report_row_delay;
    let bom = row.bom;
    let writer = {
        let (written, stop) = (Arc::clone(&written), Arc::clone(&stop));
        tokio::task::spawn_blocking(move || write(format, bom, source, &written, &stop, row_delay))
    };
    tokio::pin!(writer);
    let mut ticker = tokio::time::interval(HEARTBEAT);
    ticker.tick().await;
    let finished = loop {
        tokio::select! {
            done = &mut writer => break done,
            _ = ticker.tick() => {
                let rows_so_far = i64::try_from(written.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
                let beat = {
                    let mut conn = state.db.get(tenant).await?;
                    rows::heartbeat(&mut conn, claim, rows_so_far).await?
                };
                match beat {
                    Beat::Continue => state.bus.publish(claim.org_id, BusEvent::ReportRun { run_id: claim.run_id }),
                    Beat::CancelRequested => {
                        stop.store(true, Ordering::Relaxed);
                        let _ = writer.await;
                        return Err(Stop::Cancelled);
                    }
                    Beat::Lost => {
                        stop.store(true, Ordering::Relaxed);
                        let _ = writer.await;
                        return Err(Stop::Lost);
                    }
                }
            }
        }
    };
    let file = finished.map_err(|e| AppError::internal(format!("report writer: {e}")))??;
    let file = file.ok_or(Stop::Cancelled)?;
    Ok(Produced {
        file,
        rows: i64::try_from(written.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
        filename: format!("{}.{}", run::file_stem(&report.title), format.extension()),
        format,
    })
}

/// Where a run's rows come from: an analytics answer laid out in memory (at most the
/// engine's row limit), or a detail log read page by page while it is written.
enum Source {
    Table { table: Table, meta: ExportMeta },
    Log(log::LogSource),
}

/// Writes the rows into an anonymous temporary file, counting them in `written`; None when
/// `stop` was raised meanwhile. Runs on a blocking thread (the writers are synchronous; a log's
/// pages are awaited with `blocking_recv`).
fn write(
    format: ExportFormat,
    bom: bool,
    source: Source,
    written: &AtomicU64,
    stop: &AtomicBool,
    row_delay: Duration,
) -> AppResult<Option<std::fs::File>> {
    let file = tempfile::tempfile()?;
    let put = |out: &mut Box<dyn TableWriter>, cells: &[Cell]| -> AppResult<bool> {
        if stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        out.row(cells)?;
        written.fetch_add(1, Ordering::Relaxed);
        if !row_delay.is_zero() {
            std::thread::sleep(row_delay);
        }
        Ok(true)
    };
    match source {
        Source::Table { table, mut meta } => {
            meta.bom = bom;
            let mut out = format.writer(&meta, file.try_clone()?)?;
            for cells in &table.rows {
                if !put(&mut out, cells)? {
                    return Ok(None);
                }
            }
            out.finish(table.totals.as_deref())?;
        }
        Source::Log(mut log) => {
            log.meta.bom = bom;
            let mut out = format.writer(&log.meta, file.try_clone()?)?;
            while let Some(page) = log.pages.blocking_recv() {
                for call in &page? {
                    if !put(&mut out, &log.layout.cells(call))? {
                        return Ok(None);
                    }
                }
            }
            out.finish(None)?;
        }
    }
    Ok(Some(file))
}

/// The end of a successful run, in one transaction: still ours, file stored, run SUCCEEDED,
/// audited. False when the run was taken over meanwhile (nothing stored).
async fn store(
    state: &AppState,
    tenant: &Tenant,
    row: &RunRow,
    claim: Claim,
    mut produced: Produced,
    started: std::time::Instant,
) -> AppResult<bool> {
    let retention = chrono::Duration::from_std(state.settings.export_retention).unwrap_or(chrono::Duration::days(7));
    let expires_at = Utc::now() + retention;
    let actor = match row.requested_by {
        Some(user_id) => {
            let mut conn = state.db.get(tenant).await?;
            // The requester's role at the end of the run, for the audit record; a user deleted
            // meanwhile is recorded as the least role.
            let role = users::get(&mut conn, tenant, user_id)
                .await
                .map_or(Role::Viewer, |u| u.role);
            Some(Actor { user_id, role })
        }
        None => None,
    };
    let mut conn = state.db.get(tenant).await?;
    let file = &mut produced.file;
    conn.transaction(async |conn| {
        if !rows::lock_claim(conn, claim).await? {
            return Ok(false);
        }
        let bytes = files::store(conn, claim.run_id, file).await?;
        let bytes = i64::try_from(bytes).map_err(AppError::internal)?;
        let ended = rows::finish(
            conn,
            claim,
            Ending::Succeeded {
                rows: produced.rows,
                bytes,
                content_type: produced.format.content_type(),
                filename: &produced.filename,
                expires_at,
            },
        )
        .await?;
        let event = AuditEvent::new(Some(tenant.org_id()), actor, "report.run")
            .target("report", row.report_id)
            .details(json!({
                "runId": row.id,
                "format": row.format,
                "from": row.range_from,
                "to": row.range_to,
                "rows": produced.rows,
                "bytes": bytes,
                "attempt": claim.attempt,
                "durationMs": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "scheduleId": row.schedule_id,
                "apiKeyId": row.api_key_id,
            }));
        audit::record(conn, event).await?;
        Ok(ended)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::retry_delay;
    use std::time::Duration;

    #[test]
    fn retries_back_off_and_stay_bounded() {
        assert_eq!(retry_delay(1), Duration::from_secs(10));
        assert_eq!(retry_delay(2), Duration::from_secs(40));
        assert_eq!(retry_delay(3), Duration::from_secs(160));
        assert_eq!(retry_delay(50), retry_delay(6));
        assert_eq!(retry_delay(0), retry_delay(1));
    }
}

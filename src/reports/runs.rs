//! Report runs as their requesters see them: `runReport`, `reportRun`, `reportRuns`,
//! `cancelReportRun`, the download of a run's file, and the stream behind `reportRunUpdated`.
//!
//! A run is visible exactly when its report is (`reports::sees`): the file holds the report's
//! figures, so whoever may read the report may read its runs, and nobody else. Another
//! organization's run, or a run of a report the caller may not see, is NOT_FOUND. Cancelling
//! is for the requester, the report's editors (owner, ADMIN). `runReport` is for whoever sees
//! the report (VIEWER on shared reports, as the HTTP pull is): AGENT sees no report.
//!
//! The range is resolved when the run is asked for, in the organization's zone, so a run of
//! "yesterday" asked at 23:59 reports that day even if it starts after midnight.

use chrono::Utc;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use futures_util::Stream;
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Actor, AuditEvent};
use crate::auth::{Principal, Tenant};
use crate::db::report_runs::{self as rows, RunRow};
use crate::db::reports as report_rows;
use crate::error::{AppError, AppResult};
use crate::kpi::organization_rule;
use crate::realtime::{bus::Received, BusEvent, Topic};
use crate::reports::definition::ReportRange;
use crate::reports::formats::ExportFormat;
use crate::reports::jobs::{self, NewRun, RunOrigin};
use crate::reports::{may_edit, saved, sees};
use crate::state::AppState;

pub fn not_found() -> AppError {
    AppError::NotFound("report run not found".into())
}

/// What `runReport` asks.
#[derive(Debug, Clone, Copy)]
pub struct RunRequest {
    pub report_id: Uuid,
    pub format: ExportFormat,
    /// Instead of the report's range (checked, its fields named `range.from` / `range.to`).
    pub range: Option<ReportRange>,
    /// CSV only: a UTF-8 byte-order mark first.
    pub bom: bool,
}

/// Queues a run of a report the caller sees; the run as queued. Audited (`report.run.request`).
pub async fn request(
    state: &AppState,
    principal: &Principal,
    request: RunRequest,
    request_id: Option<String>,
) -> AppResult<RunRow> {
    let report = saved::get(state, principal, request.report_id).await?;
    if let Some(range) = &request.range {
        let errors = range.check("range");
        if !errors.is_empty() {
            return Err(AppError::invalid_fields(errors));
        }
    }
    let tenant = Tenant::of(principal);
    let mut conn = state.db.get(&tenant).await?;
    let (_, tz) = organization_rule(&mut conn, &tenant).await?;
    let (from, to) = request.range.unwrap_or(report.definition.range).resolve(tz, Utc::now());
    let run = conn
        .transaction(async |conn| {
            let id = jobs::enqueue(
                conn,
                &tenant,
                NewRun {
                    report_id: report.id,
                    report_version: report.version,
                    format: request.format,
                    from,
                    to,
                    bom: request.bom,
                    origin: RunOrigin::User {
                        user_id: principal.user_id,
                        api_key_id: principal.api_key.as_ref().map(|k| k.key_id),
                    },
                },
            )
            .await?
            .ok_or_else(|| AppError::internal("a user's run collided with a schedule's key"))?;
            let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "report.run.request")
                .target("report", report.id)
                .details(json!({ "runId": id, "format": request.format.name(), "from": from, "to": to }))
                .request_id(request_id);
            audit::record(conn, event).await?;
            rows::get(conn, &tenant, id).await?.ok_or_else(not_found)
        })
        .await?;
    jobs::wake(state);
    Ok(run)
}

/// Whether the caller sees the run's report.
async fn report_visible(conn: &mut AsyncPgConnection, principal: &Principal, run: &RunRow) -> AppResult<bool> {
    let report = report_rows::get(conn, &Tenant::of(principal), run.report_id).await?;
    Ok(report.is_some_and(|r| sees(principal, r.owner_id, r.shared)))
}

/// A run the caller may see; NOT_FOUND otherwise.
pub async fn get(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<RunRow> {
    let mut conn = state.db.get(&Tenant::of(principal)).await?;
    visible(&mut conn, principal, id).await
}

async fn visible(conn: &mut AsyncPgConnection, principal: &Principal, id: Uuid) -> AppResult<RunRow> {
    let run = rows::get(conn, &Tenant::of(principal), id)
        .await?
        .ok_or_else(not_found)?;
    if report_visible(conn, principal, &run).await? {
        Ok(run)
    } else {
        Err(not_found())
    }
}

/// The runs the caller may see, newest first: of one report, or of every report they see.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    report_id: Option<Uuid>,
    first: i64,
) -> AppResult<Vec<RunRow>> {
    let reports: Vec<Uuid> = match report_id {
        Some(id) => vec![saved::get(state, principal, id).await?.id],
        None => saved::list(state, principal).await?.into_iter().map(|r| r.id).collect(),
    };
    let mut conn = state.db.get(&Tenant::of(principal)).await?;
    rows::list(&mut conn, &Tenant::of(principal), Some(&reports), first).await
}

/// Cancels a run: its requester, or whoever may edit its report. A queued run ends at once; a
/// running one at its next heartbeat; an ended one is left as it is. Audited.
pub async fn cancel(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    request_id: Option<String>,
) -> AppResult<RunRow> {
    let tenant = Tenant::of(principal);
    let mut conn = state.db.get(&tenant).await?;
    let run = visible(&mut conn, principal, id).await?;
    let report = report_rows::get(&mut conn, &tenant, run.report_id)
        .await?
        .ok_or_else(not_found)?;
    if run.requested_by != Some(principal.user_id) && !may_edit(principal, report.owner_id) {
        return Err(AppError::Forbidden(
            "only the run's requester or the report's owner or an ADMIN may cancel it".into(),
        ));
    }
    if run.is_final() {
        return Ok(run);
    }
    let run = conn
        .transaction(async |conn| {
            let run = rows::cancel(conn, &tenant, id).await?.ok_or_else(not_found)?;
            let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "report.run.cancel")
                .target("report_run", id)
                .details(json!({ "reportId": run.report_id, "status": run.status }))
                .request_id(request_id);
            audit::record(conn, event).await?;
            Ok::<_, AppError>(run)
        })
        .await?;
    state.bus.publish(tenant.org_id(), BusEvent::ReportRun { run_id: id });
    Ok(run)
}

/// The run as it stands now, then again each time it moves on, until it has ended. A run the
/// caller may not see is NOT_FOUND. Missed events (lag, reconnect) only mean a re-read.
pub async fn follow(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
) -> AppResult<impl Stream<Item = AppResult<RunRow>>> {
    let mut receiver = state.bus.receiver(&[Topic::ReportRuns]);
    let first = get(state, principal, id).await?;
    let (state, principal) = (state.clone(), principal.clone());
    let org = principal.org_id;
    Ok(async_stream::stream! {
        let ended = first.is_final();
        let mut last = (first.status.clone(), first.rows_written);
        yield Ok(first);
        if ended {
            return;
        }
        loop {
            match receiver.recv().await {
                Received::Event(event) => {
                    let BusEvent::ReportRun { run_id } = &event.payload else { continue };
                    if event.organization_id != org || *run_id != id {
                        continue;
                    }
                }
                Received::Resync => {}
                Received::Closed => return,
            }
            match get(&state, &principal, id).await {
                Ok(run) => {
                    let now = (run.status.clone(), run.rows_written);
                    if now == last {
                        continue;
                    }
                    last = now;
                    let ended = run.is_final();
                    yield Ok(run);
                    if ended {
                        return;
                    }
                }
                Err(error) => {
                    yield Err(error);
                    return;
                }
            }
        }
    })
}

//! Report runs: `runReport`, `reportRun`, `reportRuns`, `cancelReportRun`,
//! `createReportDownloadLink` and the `reportRunUpdated` subscription. The rules are
//! `reports::runs`' (who sees and cancels a run) and `reports::jobs`' (how a run executes);
//! resolvers parse, call, and map the row to its type.

use async_graphql::{Context, Object, SimpleObject, Subscription, ID};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};

use crate::db::report_runs::RunRow;
use crate::error::{AppError, FieldError};
use crate::graphql::context::{parse_id, principal, request_id, state};
use crate::graphql::guards::ReportReaderGuard;
use crate::graphql::reports::{range_of, ReportRangeInput};
use crate::reports::downloads;
use crate::reports::formats::ExportFormat;
use crate::reports::runs::{self, RunRequest};

/// One run of a report: an export asked for by a user or a schedule, executed by a worker.
pub struct ReportRun(pub RunRow);

#[Object]
impl ReportRun {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn report_id(&self) -> ID {
        ID(self.0.report_id.to_string())
    }
    /// The report's version when the run was asked for.
    async fn report_version(&self) -> i32 {
        self.0.report_version
    }
    async fn format(&self) -> Option<ExportFormat> {
        ExportFormat::from_name(&self.0.format)
    }
    /// QUEUED, RUNNING, SUCCEEDED, FAILED or CANCELLED.
    async fn status(&self) -> &str {
        &self.0.status
    }
    /// The interval reported, resolved when the run was asked for: `[start, end)`.
    async fn start(&self) -> DateTime<Utc> {
        self.0.range_from
    }
    async fn end(&self) -> DateTime<Utc> {
        self.0.range_to
    }
    /// The user who asked (null for a schedule's run).
    async fn requested_by(&self) -> Option<ID> {
        self.0.requested_by.map(|id| ID(id.to_string()))
    }
    async fn schedule_id(&self) -> Option<ID> {
        self.0.schedule_id.map(|id| ID(id.to_string()))
    }
    /// Rows written so far (while RUNNING), or in all (once SUCCEEDED).
    async fn rows_written(&self) -> i64 {
        self.0.rows_written
    }
    /// The file's size once SUCCEEDED.
    async fn bytes(&self) -> Option<i64> {
        self.0.bytes
    }
    /// Attempts so far (a run is retried after a passing failure, and taken over when its
    /// instance dies).
    async fn attempt(&self) -> i32 {
        self.0.attempt
    }
    /// Why it failed or was cancelled.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.0.finished_at
    }
    /// From the last start to the end.
    async fn duration_ms(&self) -> Option<i64> {
        let (start, end) = (self.0.started_at?, self.0.finished_at?);
        Some((end - start).num_milliseconds())
    }
    /// When the file is deleted (retention).
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    async fn filename(&self) -> Option<&str> {
        self.0.filename.as_deref()
    }
    /// Where to download the file with the same credentials (`Authorization: Bearer`), once
    /// SUCCEEDED and until it expires.
    async fn download_path(&self) -> Option<String> {
        let live = self.0.status == "SUCCEEDED" && self.0.expires_at.is_some_and(|at| at > Utc::now());
        live.then(|| downloads::path(self.0.id))
    }
}

/// A signed link to a run's file, usable without credentials until it expires.
#[derive(SimpleObject)]
pub struct DownloadLink {
    url: String,
    expires_at: DateTime<Utc>,
}

#[derive(Default)]
pub struct ReportRunQueries;

#[Object]
impl ReportRunQueries {
    /// One run of a report the caller sees (NOT_FOUND otherwise).
    #[graphql(guard = "ReportReaderGuard")]
    async fn report_run(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ReportRun> {
        let id = parse_id(&id, "id")?;
        Ok(ReportRun(runs::get(state(ctx)?, principal(ctx)?, id).await?))
    }

    /// Runs of the reports the caller sees, newest first (of one report with `reportId`);
    /// `first` at most 200.
    #[graphql(
        guard = "ReportReaderGuard",
        complexity = "first.unwrap_or(50).max(1) as usize * child_complexity"
    )]
    async fn report_runs(
        &self,
        ctx: &Context<'_>,
        report_id: Option<ID>,
        first: Option<i32>,
    ) -> async_graphql::Result<Vec<ReportRun>> {
        let report_id = report_id.map(|id| parse_id(&id, "reportId")).transpose()?;
        let first = first.unwrap_or(50);
        if !(1..=200).contains(&first) {
            return Err(AppError::invalid_fields(vec![FieldError::new("first", "between 1 and 200")]).into());
        }
        let rows = runs::list(state(ctx)?, principal(ctx)?, report_id, i64::from(first)).await?;
        Ok(rows.into_iter().map(ReportRun).collect())
    }
}

#[derive(Default)]
pub struct ReportRunMutations;

#[Object]
impl ReportRunMutations {
    /// Runs a report the caller sees into a file, over its range resolved now in the
    /// organization's zone (or over `range`). Answers at once with the QUEUED run; follow it
    /// with `reportRunUpdated` or `reportRun`, download it at `downloadPath`. `bom`: CSV only,
    /// a UTF-8 byte-order mark for Excel. Audited.
    #[graphql(guard = "ReportReaderGuard")]
    async fn run_report(
        &self,
        ctx: &Context<'_>,
        id: ID,
        format: ExportFormat,
        range: Option<ReportRangeInput>,
        #[graphql(default)] bom: bool,
    ) -> async_graphql::Result<ReportRun> {
        let report_id = parse_id(&id, "id")?;
        let range = range
            .map(|r| range_of(&r, "range"))
            .transpose()
            .map_err(|e| AppError::invalid_fields(vec![e]))?;
        let request = RunRequest {
            report_id,
            format,
            range,
            bom,
        };
        let run = runs::request(state(ctx)?, principal(ctx)?, request, request_id(ctx)).await?;
        Ok(ReportRun(run))
    }

    /// Cancels a run (its requester, or the report's owner or an ADMIN): a queued run at once,
    /// a running one within a second. An ended run is returned as it is. Audited.
    #[graphql(guard = "ReportReaderGuard")]
    async fn cancel_report_run(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ReportRun> {
        let id = parse_id(&id, "id")?;
        Ok(ReportRun(
            runs::cancel(state(ctx)?, principal(ctx)?, id, request_id(ctx)).await?,
        ))
    }

    /// A link to a succeeded run's file that works without credentials (for e-mail), for
    /// `validForMinutes` (1 to 10080, default 60). Whoever sees the run may make one.
    #[graphql(guard = "ReportReaderGuard")]
    async fn create_report_download_link(
        &self,
        ctx: &Context<'_>,
        run_id: ID,
        #[graphql(default = 60)] valid_for_minutes: i32,
    ) -> async_graphql::Result<DownloadLink> {
        let id = parse_id(&run_id, "runId")?;
        if !(1..=10_080).contains(&valid_for_minutes) {
            let error = FieldError::new("validForMinutes", "between 1 and 10080 (7 days)");
            return Err(AppError::invalid_fields(vec![error]).into());
        }
        let app = state(ctx)?;
        let run = runs::get(app, principal(ctx)?, id).await?;
        let ttl = std::time::Duration::from_secs(u64::from(valid_for_minutes.unsigned_abs()) * 60);
        let (url, expires_at) = downloads::signed_link(app, run.id, run.organization_id, ttl);
        Ok(DownloadLink { url, expires_at })
    }
}

#[derive(Default)]
pub struct ReportRunSubscription;

#[Subscription]
impl ReportRunSubscription {
    /// The run now, then each time it moves on (claimed, rows written — about once a second —
    /// ended); the stream completes when the run has ended.
    #[graphql(guard = "ReportReaderGuard")]
    async fn report_run_updated(
        &self,
        ctx: &Context<'_>,
        run_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<ReportRun>>> {
        let id = parse_id(&run_id, "runId")?;
        let stream = runs::follow(state(ctx)?, principal(ctx)?, id).await?;
        Ok(stream.map(|run| run.map(ReportRun).map_err(async_graphql::Error::from)))
    }
}

//! `reportSchedules`, `reportSchedule`, `createReportSchedule`, `updateReportSchedule`,
//! `pauseReportSchedule`, `resumeReportSchedule`, `rotateReportScheduleSecret`,
//! `deleteReportSchedule`: report schedules (rules in `reports::schedules`, the cron dialect
//! and its daylight-saving rules in `reports::cron`, delivery in `reports::delivery`).

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use crate::auth::Role;
use crate::db::report_deliveries::DeliveryRow;
use crate::error::{AppError, FieldError};
use crate::graphql::context::{parse_id, principal, request_id, state};
use crate::graphql::guards::RoleGuard;
use crate::graphql::reports::Report;
use crate::reports::cron::MAX_LISTED;
use crate::reports::saved;
use crate::reports::schedules::{self, format_name, Schedule, ScheduleInput as DomainInput};

/// A whole schedule (an update replaces all of it).
#[derive(InputObject)]
pub struct ReportScheduleInput {
    /// Five fields: minute hour day-of-month month day-of-week (`30 2 * * *`, `0 8 * * MON-FRI`,
    /// `@daily`), evaluated in `timezone`. On the spring-forward day a fixed time inside the gap
    /// fires at the first instant after it (02:30 → 03:00); on the fall-back day a fixed time
    /// fires once, at its first occurrence.
    cron: String,
    /// IANA zone name, e.g. `Europe/Paris`.
    timezone: String,
    /// The file's format: CSV, JSON (and the other export formats).
    format: String,
    /// E-mail addresses (at most 50), each sent its own message. Empty needs a `webhookUrl`.
    #[graphql(default)]
    recipients: Vec<String>,
    /// http(s) URL POSTed a signed JSON notice of every run.
    webhook_url: Option<String>,
}

impl From<ReportScheduleInput> for DomainInput {
    fn from(input: ReportScheduleInput) -> Self {
        DomainInput {
            cron: input.cron,
            timezone: input.timezone,
            format: input.format,
            recipients: input.recipients,
            webhook_url: input.webhook_url,
        }
    }
}

/// One delivery of a scheduled run: an e-mail to one recipient, or the webhook.
#[derive(SimpleObject)]
pub struct ReportDelivery {
    id: ID,
    run_id: ID,
    /// EMAIL or WEBHOOK.
    kind: String,
    /// The address, or the URL.
    target: String,
    /// PENDING (waiting for the run, or for its next attempt), SENT or FAILED (for good).
    status: String,
    attempts: i32,
    max_attempts: i32,
    next_attempt_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    /// The webhook's last HTTP status, or the SMTP server's last reply code.
    response_status: Option<i32>,
    /// The e-mail carried a download link instead of the file (too large to attach).
    sent_link: bool,
    created_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
}

impl From<DeliveryRow> for ReportDelivery {
    fn from(d: DeliveryRow) -> Self {
        let pending = d.status == "PENDING";
        ReportDelivery {
            id: ID(d.id.to_string()),
            run_id: ID(d.run_id.to_string()),
            kind: d.kind,
            target: d.target,
            status: d.status,
            attempts: d.attempts,
            max_attempts: d.max_attempts,
            next_attempt_at: pending.then_some(d.next_attempt_at),
            last_error: d.last_error,
            response_status: d.response_status,
            sent_link: d.sent_link,
            created_at: d.created_at,
            delivered_at: d.delivered_at,
        }
    }
}

/// A report sent on a schedule.
pub struct ReportSchedule(pub Schedule);

#[Object]
impl ReportSchedule {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn report_id(&self) -> ID {
        ID(self.0.report_id.to_string())
    }
    /// The report (NOT_FOUND if the caller no longer sees it).
    async fn report(&self, ctx: &Context<'_>) -> async_graphql::Result<Report> {
        Ok(Report(
            saved::get(state(ctx)?, principal(ctx)?, self.0.report_id).await?,
        ))
    }
    /// The user who created (and owns) the schedule.
    async fn owner_id(&self) -> ID {
        ID(self.0.owner_id.to_string())
    }
    async fn cron(&self) -> &str {
        &self.0.cron
    }
    async fn timezone(&self) -> &str {
        &self.0.timezone
    }
    /// CSV, JSON, …
    async fn format(&self) -> String {
        format_name(self.0.format)
    }
    async fn recipients(&self) -> &[String] {
        &self.0.recipients
    }
    async fn webhook_url(&self) -> Option<&str> {
        self.0.webhook_url.as_deref()
    }
    async fn paused(&self) -> bool {
        self.0.paused
    }
    /// Starts at 1, moves on with every change; `updateReportSchedule` names the version it read.
    async fn version(&self) -> i32 {
        self.0.version
    }
    /// The next fire (null while paused).
    async fn next_fire_at(&self) -> Option<DateTime<Utc>> {
        self.0.next_fire_at.filter(|_| !self.0.paused)
    }
    /// The next `n` fires from now (1 to 100; empty while paused).
    async fn next_fire_times(&self, #[graphql(default = 5)] n: i32) -> async_graphql::Result<Vec<DateTime<Utc>>> {
        let n = usize::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_LISTED).contains(n))
            .ok_or_else(|| AppError::invalid_fields(vec![FieldError::new("n", format!("1 to {MAX_LISTED}"))]))?;
        Ok(self.0.next_fire_times(Utc::now(), n)?)
    }
    /// The last fire that ran (or was attempted).
    async fn last_fire_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_fire_at
    }
    /// The run of the last fire.
    async fn last_run_id(&self) -> Option<ID> {
        self.0.last_run_id.map(|id| ID(id.to_string()))
    }
    /// Fires skipped because no instance ran when they came due (only the latest runs).
    async fn missed_fires(&self) -> i64 {
        self.0.missed_fires
    }
    /// Why the last fire made no run, if it did not.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// The latest deliveries, newest first (1 to 100).
    #[graphql(complexity = "first as usize * child_complexity")]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
    ) -> async_graphql::Result<Vec<ReportDelivery>> {
        let rows = schedules::deliveries_of(state(ctx)?, principal(ctx)?, self.0.id, i64::from(first)).await?;
        Ok(rows.into_iter().map(ReportDelivery::from).collect())
    }
}

/// A schedule and its webhook secret, shown this once: keep it to check the
/// `Omnivox-Signature` header (`t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`).
pub struct ReportScheduleWithSecret(Schedule, String);

#[Object]
impl ReportScheduleWithSecret {
    async fn schedule(&self) -> ReportSchedule {
        ReportSchedule(self.0.clone())
    }
    async fn webhook_secret(&self) -> &str {
        &self.1
    }
}

#[derive(Default)]
pub struct ReportScheduleQueries;

#[Object]
impl ReportScheduleQueries {
    /// The schedules of a report the caller sees. SUPERVISOR+.
    #[graphql(guard = "RoleGuard(Role::Supervisor)", complexity = "20 * child_complexity")]
    async fn report_schedules(&self, ctx: &Context<'_>, report_id: ID) -> async_graphql::Result<Vec<ReportSchedule>> {
        let report_id = parse_id(&report_id, "reportId")?;
        let rows = schedules::list(state(ctx)?, principal(ctx)?, report_id).await?;
        Ok(rows.into_iter().map(ReportSchedule).collect())
    }

    /// One schedule of a report the caller sees (NOT_FOUND otherwise). SUPERVISOR+.
    #[graphql(guard = "RoleGuard(Role::Supervisor)")]
    async fn report_schedule(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ReportSchedule> {
        let id = parse_id(&id, "id")?;
        Ok(ReportSchedule(schedules::get(state(ctx)?, principal(ctx)?, id).await?))
    }
}

#[derive(Default)]
pub struct ReportScheduleMutations;

#[Object]
impl ReportScheduleMutations {
    /// Schedules a report the caller sees (SUPERVISOR+), owned by the caller. Every problem of
    /// the input is BAD_USER_INPUT naming its field (`input.cron`, `input.timezone`,
    /// `input.format`, `input.recipients[i]`, `input.webhookUrl`) and nothing is stored.
    /// Returns the webhook secret, this once. Audited.
    #[graphql(guard = "RoleGuard(Role::Supervisor)")]
    async fn create_report_schedule(
        &self,
        ctx: &Context<'_>,
        report_id: ID,
        input: ReportScheduleInput,
    ) -> async_graphql::Result<ReportScheduleWithSecret> {
        let report_id = parse_id(&report_id, "reportId")?;
        let (schedule, secret) =
            schedules::create(state(ctx)?, principal(ctx)?, report_id, input.into(), request_id(ctx)).await?;
        Ok(ReportScheduleWithSecret(schedule, secret))
    }

    /// Replaces a schedule if it is still at `expectedVersion` (CONFLICT otherwise); fires
    /// count from now. Its owner or an ADMIN. Validated as `createReportSchedule`. Audited.
    #[graphql(guard = "RoleGuard(Role::Supervisor)")]
    async fn update_report_schedule(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: i32,
        input: ReportScheduleInput,
    ) -> async_graphql::Result<ReportSchedule> {
        let id = parse_id(&id, "id")?;
        let schedule = schedules::update(
            state(ctx)?,
            principal(ctx)?,
            id,
            expected_version,
            input.into(),
            request_id(ctx),
        )
        .await?;
        Ok(ReportSchedule(schedule))
    }

    /// Stops a schedule's fires until it is resumed. Its owner or an ADMIN. Audited.
    #[graphql(guard = "RoleGuard(Role::Supervisor)")]
    async fn pause_report_schedule(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ReportSchedule> {
        let id = parse_id(&id, "id")?;
        let schedule = schedules::set_paused(state(ctx)?, principal(ctx)?, id, true, request_id(ctx)).await?;
        Ok(ReportSchedule(schedule))
    }

    /// Starts a paused schedule again from its next fire after now (fires missed while paused
    /// do not run). Its owner or an ADMIN. Audited.
    #[graphql(guard = "RoleGuard(Role::Supervisor)")]
    async fn resume_report_schedule(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ReportSchedule> {
        let id = parse_id(&id, "id")?;
        let schedule = schedules::set_paused(state(ctx)?, principal(ctx)?, id, false, request_id(ctx)).await?;
        Ok(ReportSchedule(schedule))
    }

    /// A new webhook secret, returned this once; the old one stops signing at once. Its owner
    /// or an ADMIN. Audited.
    #[graphql(guard = "RoleGuard(Role::Supervisor)")]
    async fn rotate_report_schedule_secret(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<ReportScheduleWithSecret> {
        let id = parse_id(&id, "id")?;
        let (schedule, secret) = schedules::rotate_secret(state(ctx)?, principal(ctx)?, id, request_id(ctx)).await?;
        Ok(ReportScheduleWithSecret(schedule, secret))
    }

    /// Deletes a schedule (its past runs stay). Its owner or an ADMIN. Returns its id. Audited.
    #[graphql(guard = "RoleGuard(Role::Supervisor)")]
    async fn delete_report_schedule(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        let id = parse_id(&id, "id")?;
        let deleted = schedules::delete(state(ctx)?, principal(ctx)?, id, request_id(ctx)).await?;
        Ok(ID(deleted.to_string()))
    }
}

//! Report runs and their files: rows of `report_runs` and `report_files`.
//!
//! Reads and user-facing writes go through a [`Tenant`]. The worker's queue operations
//! ([`claim`], [`fail_abandoned`], [`expired_files`]) are the one cross-tenant path here: a
//! worker serves every organization, and what it claims carries its organization, which every
//! later call takes as a [`Tenant`] again. Every write of a claimed run is fenced by its
//! attempt number ([`Claim`]): a run taken over by another instance can no longer be changed by
//! the instance that lost it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Interval, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::schema::{report_files, report_runs};
use crate::error::{AppError, AppResult};

/// Runs a listing returns at most.
pub const LIST_LIMIT: i64 = 200;

/// A run's status.
pub const QUEUED: &str = "QUEUED";
pub const RUNNING: &str = "RUNNING";
pub const SUCCEEDED: &str = "SUCCEEDED";
pub const FAILED: &str = "FAILED";
pub const CANCELLED: &str = "CANCELLED";

/// A stored run.
#[derive(Clone, Debug, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = report_runs, check_for_backend(diesel::pg::Pg))]
pub struct RunRow {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub report_id: Uuid,
    pub report_version: i32,
    pub requested_by: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
    pub schedule_id: Option<Uuid>,
    pub fire_at: Option<DateTime<Utc>>,
    pub format: String,
    pub range_from: DateTime<Utc>,
    pub range_to: DateTime<Utc>,
    pub bom: bool,
    pub status: String,
    pub attempt: i32,
    pub max_attempts: i32,
    pub not_before: DateTime<Utc>,
    pub claimed_by: Option<String>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub cancel_requested: bool,
    pub rows_written: i64,
    pub bytes: Option<i64>,
    pub content_type: Option<String>,
    pub filename: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl RunRow {
    /// Whether the run has ended (it changes no more).
    pub fn is_final(&self) -> bool {
        matches!(self.status.as_str(), SUCCEEDED | FAILED | CANCELLED)
    }
}

/// A run to queue.
pub struct NewRunRow<'a> {
    pub report_id: Uuid,
    pub report_version: i32,
    pub requested_by: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
    pub schedule_id: Option<Uuid>,
    pub fire_at: Option<DateTime<Utc>>,
    pub format: &'a str,
    pub range_from: DateTime<Utc>,
    pub range_to: DateTime<Utc>,
    pub bom: bool,
}

/// Queues a run; None when its schedule's fire already has one (the unique key decides, so
/// two instances firing the same schedule at the same time queue one run).
pub async fn insert(conn: &mut AsyncPgConnection, tenant: &Tenant, run: NewRunRow<'_>) -> AppResult<Option<RunRow>> {
    Ok(diesel::insert_into(report_runs::table)
        .values((
            report_runs::organization_id.eq(tenant.org_id()),
            report_runs::report_id.eq(run.report_id),
            report_runs::report_version.eq(run.report_version),
            report_runs::requested_by.eq(run.requested_by),
            report_runs::api_key_id.eq(run.api_key_id),
            report_runs::schedule_id.eq(run.schedule_id),
            report_runs::fire_at.eq(run.fire_at),
            report_runs::format.eq(run.format),
            report_runs::range_from.eq(run.range_from),
            report_runs::range_to.eq(run.range_to),
            report_runs::bom.eq(run.bom),
        ))
        .on_conflict_do_nothing()
        .returning(RunRow::as_returning())
        .get_result(conn)
        .await
        .optional()?)
}

/// One of the organization's runs.
pub async fn get(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid) -> AppResult<Option<RunRow>> {
    Ok(report_runs::table
        .filter(report_runs::organization_id.eq(tenant.org_id()))
        .filter(report_runs::id.eq(id))
        .select(RunRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// The organization's runs, newest first: of one report, or of the given reports (those the
/// caller sees), or all.
pub async fn list(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    reports: Option<&[Uuid]>,
    limit: i64,
) -> AppResult<Vec<RunRow>> {
    let mut query = report_runs::table
        .filter(report_runs::organization_id.eq(tenant.org_id()))
        .select(RunRow::as_select())
        .order((report_runs::created_at.desc(), report_runs::id.desc()))
        .limit(limit.clamp(1, LIST_LIMIT))
        .into_boxed();
    if let Some(reports) = reports {
        query = query.filter(report_runs::report_id.eq_any(reports.to_vec()));
    }
    Ok(query.load(conn).await?)
}

/// Cancels a run: a queued one at once, a running one by asking its worker (which stops at its
/// next heartbeat). The run as it now stands; None when it is not the organization's.
pub async fn cancel(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid) -> AppResult<Option<RunRow>> {
    let scope = report_runs::table
        .filter(report_runs::organization_id.eq(tenant.org_id()))
        .filter(report_runs::id.eq(id));
    let queued = diesel::update(scope.filter(report_runs::status.eq(QUEUED)))
        .set((
            report_runs::status.eq(CANCELLED),
            report_runs::cancel_requested.eq(true),
            report_runs::finished_at.eq(diesel::dsl::now),
            report_runs::error.eq("cancelled"),
        ))
        .returning(RunRow::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    if queued.is_some() {
        return Ok(queued);
    }
    diesel::update(scope.filter(report_runs::status.eq(RUNNING)))
        .set(report_runs::cancel_requested.eq(true))
        .execute(conn)
        .await?;
    get(conn, tenant, id).await
}

/// A run this worker holds: its id, organization and the attempt that fences its writes.
#[derive(Debug, Clone, Copy)]
pub struct Claim {
    pub run_id: Uuid,
    pub org_id: Uuid,
    pub attempt: i32,
}

/// Claims the oldest run due: queued and past its backoff, or running on an instance silent
/// for `takeover_after` (it died), with attempts left. `FOR UPDATE SKIP LOCKED`: concurrent
/// workers claim different runs. Cross-tenant (see the module documentation).
pub async fn claim(conn: &mut AsyncPgConnection, worker: &str, takeover_after: Duration) -> AppResult<Option<RunRow>> {
    let claimed: Option<RunRow> = diesel::sql_query(
        "UPDATE report_runs r SET status = 'RUNNING', attempt = r.attempt + 1, claimed_by = $1, \
             heartbeat_at = now(), started_at = coalesce(r.started_at, now()), rows_written = 0 \
         WHERE r.id = ( \
             SELECT id FROM report_runs \
             WHERE ((status = 'QUEUED' AND not_before <= now()) \
                 OR (status = 'RUNNING' AND heartbeat_at < now() - $2)) \
               AND attempt < max_attempts \
             ORDER BY not_before, id \
             FOR UPDATE SKIP LOCKED LIMIT 1) \
         RETURNING r.*",
    )
    .bind::<Text, _>(worker)
    .bind::<Interval, _>(interval(takeover_after))
    .get_result(conn)
    .await
    .optional()?;
    Ok(claimed)
}

/// Runs whose instance died on their last attempt: failed, with the reason. Cross-tenant.
pub async fn fail_abandoned(conn: &mut AsyncPgConnection, takeover_after: Duration) -> AppResult<Vec<RunRow>> {
    Ok(diesel::sql_query(
        "UPDATE report_runs SET status = 'FAILED', finished_at = now(), \
             error = 'the instance running it stopped, and its attempts are spent' \
         WHERE status = 'RUNNING' AND heartbeat_at < now() - $1 AND attempt >= max_attempts \
         RETURNING *",
    )
    .bind::<Interval, _>(interval(takeover_after))
    .load(conn)
    .await?)
}

fn interval(duration: Duration) -> diesel::pg::data_types::PgInterval {
    let micros = i64::try_from(duration.as_micros()).unwrap_or(i64::MAX);
    diesel::pg::data_types::PgInterval::from_microseconds(micros)
}

/// The run `claim` holds, while it still holds it.
macro_rules! claimed {
    ($claim:expr) => {
        report_runs::table
            .filter(report_runs::id.eq($claim.run_id))
            .filter(report_runs::attempt.eq($claim.attempt))
            .filter(report_runs::status.eq(RUNNING))
    };
}

/// What a heartbeat learns: whether the run was cancelled, or lost to another instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    Continue,
    CancelRequested,
    Lost,
}

/// The worker is alive and has written `rows`.
pub async fn heartbeat(conn: &mut AsyncPgConnection, claim: Claim, rows: i64) -> AppResult<Beat> {
    let cancel: Option<bool> = diesel::update(claimed!(claim))
        .set((
            report_runs::heartbeat_at.eq(diesel::dsl::now),
            report_runs::rows_written.eq(rows),
        ))
        .returning(report_runs::cancel_requested)
        .get_result(conn)
        .await
        .optional()?;
    Ok(match cancel {
        None => Beat::Lost,
        Some(true) => Beat::CancelRequested,
        Some(false) => Beat::Continue,
    })
}

/// How a claimed run ends.
pub enum Ending<'a> {
    Succeeded {
        rows: i64,
        bytes: i64,
        content_type: &'a str,
        filename: &'a str,
        expires_at: DateTime<Utc>,
    },
    Cancelled,
    /// Failed for good, with what the requester may read.
    Failed(&'a str),
    /// Failed for a reason worth another attempt, after `delay`.
    Retry {
        error: &'a str,
        delay: Duration,
    },
}

/// Ends a claimed run; false when the claim was lost (nothing changed). For a success, the
/// file's chunks must have been stored in the same transaction.
pub async fn finish(conn: &mut AsyncPgConnection, claim: Claim, ending: Ending<'_>) -> AppResult<bool> {
    let changed = match ending {
        Ending::Succeeded {
            rows,
            bytes,
            content_type,
            filename,
            expires_at,
        } => {
            diesel::update(claimed!(claim))
                .set((
                    report_runs::status.eq(SUCCEEDED),
                    report_runs::rows_written.eq(rows),
                    report_runs::bytes.eq(bytes),
                    report_runs::content_type.eq(content_type),
                    report_runs::filename.eq(filename),
                    report_runs::finished_at.eq(diesel::dsl::now),
                    report_runs::expires_at.eq(expires_at),
                    report_runs::error.eq(None::<String>),
                ))
                .execute(conn)
                .await?
        }
        Ending::Cancelled => {
            diesel::update(claimed!(claim))
                .set((
                    report_runs::status.eq(CANCELLED),
                    report_runs::finished_at.eq(diesel::dsl::now),
                    report_runs::error.eq("cancelled"),
                ))
                .execute(conn)
                .await?
        }
        Ending::Failed(error) => {
            diesel::update(claimed!(claim))
                .set((
                    report_runs::status.eq(FAILED),
                    report_runs::finished_at.eq(diesel::dsl::now),
                    report_runs::error.eq(error),
                ))
                .execute(conn)
                .await?
        }
        Ending::Retry { error, delay } => {
            diesel::sql_query(
                "UPDATE report_runs SET \
                     status = CASE WHEN attempt < max_attempts THEN 'QUEUED' ELSE 'FAILED' END, \
                     finished_at = CASE WHEN attempt < max_attempts THEN NULL ELSE now() END, \
                     not_before = now() + $4, error = $3, claimed_by = NULL \
                 WHERE id = $1 AND attempt = $2 AND status = 'RUNNING'",
            )
            .bind::<diesel::sql_types::Uuid, _>(claim.run_id)
            .bind::<Integer, _>(claim.attempt)
            .bind::<Text, _>(error)
            .bind::<Interval, _>(interval(delay))
            .execute(conn)
            .await?
        }
    };
    Ok(changed == 1)
}

/// Locks a claimed run for its final transaction; false when the claim was lost.
pub async fn lock_claim(conn: &mut AsyncPgConnection, claim: Claim) -> AppResult<bool> {
    let held: Option<Uuid> = claimed!(claim)
        .select(report_runs::id)
        .for_update()
        .first(conn)
        .await
        .optional()?;
    Ok(held.is_some())
}

/// Stores one chunk of a run's file.
pub async fn insert_chunk(conn: &mut AsyncPgConnection, run_id: Uuid, chunk: i32, data: &[u8]) -> AppResult<()> {
    diesel::insert_into(report_files::table)
        .values((
            report_files::run_id.eq(run_id),
            report_files::chunk.eq(chunk),
            report_files::data.eq(data),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// One chunk of one of the organization's run files; None past the last.
pub async fn chunk(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    run_id: Uuid,
    chunk: i32,
) -> AppResult<Option<Vec<u8>>> {
    Ok(report_files::table
        .inner_join(report_runs::table)
        .filter(report_runs::organization_id.eq(tenant.org_id()))
        .filter(report_files::run_id.eq(run_id))
        .filter(report_files::chunk.eq(chunk))
        .select(report_files::data)
        .first(conn)
        .await
        .optional()?)
}

/// Deletes the files of runs past their retention (at most `limit` runs); how many. The runs
/// stay, with their `expires_at`, as the record of what was exported. Cross-tenant.
pub async fn delete_expired_files(conn: &mut AsyncPgConnection, limit: i64) -> AppResult<usize> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let count: Count = diesel::sql_query(
        "WITH expired AS ( \
             SELECT r.id FROM report_runs r WHERE r.expires_at <= now() \
               AND EXISTS (SELECT 1 FROM report_files f WHERE f.run_id = r.id) \
             ORDER BY r.expires_at LIMIT $1 \
         ), gone AS ( \
             DELETE FROM report_files f USING expired e WHERE f.run_id = e.id RETURNING f.run_id \
         ) SELECT count(DISTINCT run_id) AS n FROM gone",
    )
    .bind::<BigInt, _>(limit)
    .get_result(conn)
    .await?;
    usize::try_from(count.n).map_err(AppError::internal)
}

//! Deliveries of scheduled runs: rows of `report_deliveries`. Written with the run (through a
//! [`Tenant`]); claimed by the senders across organizations (each row carries its own), with
//! a lease so an instance that dies mid-send leaves the delivery to another after the lease.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Int4, Interval};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::schema::report_deliveries;
use crate::error::AppResult;

/// How many deliveries a schedule lists at most.
pub const LIST_LIMIT: i64 = 100;

#[derive(Clone, Debug, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = report_deliveries, check_for_backend(diesel::pg::Pg))]
pub struct DeliveryRow {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub run_id: Uuid,
    pub schedule_id: Option<Uuid>,
    pub kind: String,
    pub target: String,
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub response_status: Option<i32>,
    pub sent_link: bool,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

pub const EMAIL: &str = "EMAIL";
pub const WEBHOOK: &str = "WEBHOOK";

/// The deliveries of one run: `(kind, target)` pairs, sent once the run has finished.
pub async fn insert_for_run(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    run_id: Uuid,
    schedule_id: Uuid,
    targets: &[(&str, &str)],
    max_attempts: i32,
) -> AppResult<usize> {
    let rows: Vec<_> = targets
        .iter()
        .map(|(kind, target)| {
            (
                report_deliveries::organization_id.eq(tenant.org_id()),
                report_deliveries::run_id.eq(run_id),
                report_deliveries::schedule_id.eq(Some(schedule_id)),
                report_deliveries::kind.eq(*kind),
                report_deliveries::target.eq(*target),
                report_deliveries::max_attempts.eq(max_attempts),
            )
        })
        .collect();
    if rows.is_empty() {
        return Ok(0);
    }
    Ok(diesel::insert_into(report_deliveries::table)
        .values(rows)
        .on_conflict_do_nothing()
        .execute(conn)
        .await?)
}

/// A schedule's latest deliveries, newest first.
pub async fn list_for_schedule(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    schedule_id: Uuid,
    limit: i64,
) -> AppResult<Vec<DeliveryRow>> {
    Ok(report_deliveries::table
        .filter(report_deliveries::organization_id.eq(tenant.org_id()))
        .filter(report_deliveries::schedule_id.eq(schedule_id))
        .select(DeliveryRow::as_select())
        .order((report_deliveries::created_at.desc(), report_deliveries::id.asc()))
        .limit(limit.clamp(1, LIST_LIMIT))
        .load(conn)
        .await?)
}

/// The senders' claim, across organizations: up to `limit` pending deliveries that are due and
/// whose run has finished, each with its attempt counted and `next_attempt_at` moved `lease`
/// ahead (the lease: if this instance dies, another takes the delivery after it). Rows another
/// instance is claiming are skipped.
pub async fn claim_due(
    conn: &mut AsyncPgConnection,
    limit: i32,
    lease: std::time::Duration,
) -> AppResult<Vec<DeliveryRow>> {
    let lease = diesel::data_types::PgInterval::from_microseconds(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX));
    Ok(diesel::sql_query(
        "UPDATE report_deliveries d SET attempts = d.attempts + 1, next_attempt_at = now() + $2 \
         WHERE d.id IN ( \
             SELECT p.id FROM report_deliveries p JOIN report_runs r ON r.id = p.run_id \
             WHERE p.status = 'PENDING' AND p.next_attempt_at <= now() \
               AND r.status IN ('SUCCEEDED', 'FAILED', 'CANCELLED') \
             ORDER BY p.next_attempt_at LIMIT $1 FOR UPDATE OF p SKIP LOCKED) \
         RETURNING d.*",
    )
    .bind::<Int4, _>(limit)
    .bind::<Interval, _>(lease)
    .load(conn)
    .await?)
}

/// How a claimed attempt ended.
pub enum Outcome {
    Sent {
        response_status: Option<i32>,
        sent_link: bool,
    },
    /// Failed: tried again after `retry_in`, or FAILED for good when None (attempts spent, or
    /// a failure that no retry mends).
    Failed {
        error: String,
        response_status: Option<i32>,
        retry_in: Option<std::time::Duration>,
    },
}

/// Records the outcome of attempt `attempt` of a delivery; false when that attempt no longer
/// holds it (its lease passed and another instance claimed it: that one records).
pub async fn finish(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    id: Uuid,
    attempt: i32,
    outcome: Outcome,
) -> AppResult<bool> {
    let target = report_deliveries::table
        .filter(report_deliveries::organization_id.eq(tenant.org_id()))
        .filter(report_deliveries::id.eq(id))
        .filter(report_deliveries::attempts.eq(attempt))
        .filter(report_deliveries::status.eq("PENDING"));
    let updated = match outcome {
        Outcome::Sent {
            response_status,
            sent_link,
        } => {
            diesel::update(target)
                .set((
                    report_deliveries::status.eq("SENT"),
                    report_deliveries::delivered_at.eq(diesel::dsl::now),
                    report_deliveries::response_status.eq(response_status),
                    report_deliveries::sent_link.eq(sent_link),
                    report_deliveries::last_error.eq(None::<String>),
                ))
                .execute(conn)
                .await?
        }
        Outcome::Failed {
            error,
            response_status,
            retry_in: Some(delay),
        } => {
            let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
            diesel::update(target)
                .set((
                    report_deliveries::next_attempt_at.eq(at),
                    report_deliveries::last_error.eq(error),
                    report_deliveries::response_status.eq(response_status),
                ))
                .execute(conn)
                .await?
        }
        Outcome::Failed {
            error,
            response_status,
            retry_in: None,
        } => {
            diesel::update(target)
                .set((
                    report_deliveries::status.eq("FAILED"),
                    report_deliveries::last_error.eq(error),
                    report_deliveries::response_status.eq(response_status),
                ))
                .execute(conn)
                .await?
        }
    };
    Ok(updated > 0)
}

/// What a delivery says about its run: the fire time, the report and the schedule's zone.
#[derive(Debug, Clone, QueryableByName)]
pub struct RunContext {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    pub fire_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub report_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub report_title: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub format: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub timezone: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub webhook_secret: Option<String>,
}

/// The context of a run of this organization (None: the run is gone).
pub async fn run_context(conn: &mut AsyncPgConnection, tenant: &Tenant, run_id: Uuid) -> AppResult<Option<RunContext>> {
    let rows: Vec<RunContext> = diesel::sql_query(
        "SELECT r.fire_at, r.report_id, p.title AS report_title, r.format, s.timezone, s.webhook_secret \
         FROM report_runs r JOIN reports p ON p.id = r.report_id \
         LEFT JOIN report_schedules s ON s.id = r.schedule_id \
         WHERE r.organization_id = $1 AND r.id = $2",
    )
    .bind::<diesel::sql_types::Uuid, _>(tenant.org_id())
    .bind::<diesel::sql_types::Uuid, _>(run_id)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next())
}

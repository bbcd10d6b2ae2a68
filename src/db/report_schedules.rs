//! Report schedules: rows of `report_schedules`, reached through a [`Tenant`] — except the
//! schedulers' claim, which looks across organizations for due schedules and hands back each
//! row with its organization (the caller then acts as that tenant).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::schema::{organizations, report_schedules};
use crate::error::AppResult;

/// How many schedules a report lists at most.
pub const LIST_LIMIT: i64 = 200;

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = report_schedules, check_for_backend(diesel::pg::Pg))]
pub struct ScheduleRow {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub report_id: Uuid,
    pub owner_id: Uuid,
    pub cron: String,
    pub timezone: String,
    pub format: String,
    pub recipients: Vec<String>,
    pub webhook_url: Option<String>,
    pub webhook_secret: String,
    pub paused: bool,
    pub next_fire_at: Option<DateTime<Utc>>,
    pub last_fire_at: Option<DateTime<Utc>>,
    pub last_run_id: Option<Uuid>,
    pub missed_fires: i64,
    pub last_error: Option<String>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a schedule fires and where it sends it (create and update write all of it).
pub struct ScheduleFields<'a> {
    pub cron: &'a str,
    pub timezone: &'a str,
    pub format: &'a str,
    pub recipients: &'a [String],
    pub webhook_url: Option<&'a str>,
    pub next_fire_at: Option<DateTime<Utc>>,
}

pub async fn insert(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    report_id: Uuid,
    owner_id: Uuid,
    fields: ScheduleFields<'_>,
    webhook_secret: &str,
) -> AppResult<ScheduleRow> {
    Ok(diesel::insert_into(report_schedules::table)
        .values((
            report_schedules::organization_id.eq(tenant.org_id()),
            report_schedules::report_id.eq(report_id),
            report_schedules::owner_id.eq(owner_id),
            report_schedules::cron.eq(fields.cron),
            report_schedules::timezone.eq(fields.timezone),
            report_schedules::format.eq(fields.format),
            report_schedules::recipients.eq(fields.recipients),
            report_schedules::webhook_url.eq(fields.webhook_url),
            report_schedules::webhook_secret.eq(webhook_secret),
            report_schedules::next_fire_at.eq(fields.next_fire_at),
        ))
        .returning(ScheduleRow::as_returning())
        .get_result(conn)
        .await?)
}

pub async fn get(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid) -> AppResult<Option<ScheduleRow>> {
    Ok(report_schedules::table
        .filter(report_schedules::organization_id.eq(tenant.org_id()))
        .filter(report_schedules::id.eq(id))
        .select(ScheduleRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

pub async fn get_for_update(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid) -> AppResult<Option<ScheduleRow>> {
    Ok(report_schedules::table
        .filter(report_schedules::organization_id.eq(tenant.org_id()))
        .filter(report_schedules::id.eq(id))
        .select(ScheduleRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// A report's schedules, oldest first.
pub async fn list_for_report(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    report_id: Uuid,
) -> AppResult<Vec<ScheduleRow>> {
    Ok(report_schedules::table
        .filter(report_schedules::organization_id.eq(tenant.org_id()))
        .filter(report_schedules::report_id.eq(report_id))
        .select(ScheduleRow::as_select())
        .order((report_schedules::created_at.asc(), report_schedules::id.asc()))
        .limit(LIST_LIMIT)
        .load(conn)
        .await?)
}

/// Replaces what a schedule fires and where; the version moves on by one.
pub async fn update(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    id: Uuid,
    fields: ScheduleFields<'_>,
) -> AppResult<Option<ScheduleRow>> {
    Ok(diesel::update(
        report_schedules::table
            .filter(report_schedules::organization_id.eq(tenant.org_id()))
            .filter(report_schedules::id.eq(id)),
    )
    .set((
        report_schedules::cron.eq(fields.cron),
        report_schedules::timezone.eq(fields.timezone),
        report_schedules::format.eq(fields.format),
        report_schedules::recipients.eq(fields.recipients),
        report_schedules::webhook_url.eq(fields.webhook_url),
        report_schedules::next_fire_at.eq(fields.next_fire_at),
        report_schedules::version.eq(report_schedules::version + 1),
        report_schedules::updated_at.eq(diesel::dsl::now),
    ))
    .returning(ScheduleRow::as_returning())
    .get_result(conn)
    .await
    .optional()?)
}

/// Pauses or resumes (with the next fire from now on); the version moves on by one.
pub async fn set_paused(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    id: Uuid,
    paused: bool,
    next_fire_at: Option<DateTime<Utc>>,
) -> AppResult<Option<ScheduleRow>> {
    Ok(diesel::update(
        report_schedules::table
            .filter(report_schedules::organization_id.eq(tenant.org_id()))
            .filter(report_schedules::id.eq(id)),
    )
    .set((
        report_schedules::paused.eq(paused),
        report_schedules::next_fire_at.eq(next_fire_at),
        report_schedules::version.eq(report_schedules::version + 1),
        report_schedules::updated_at.eq(diesel::dsl::now),
    ))
    .returning(ScheduleRow::as_returning())
    .get_result(conn)
    .await
    .optional()?)
}

/// A new webhook secret; the version moves on by one.
pub async fn set_secret(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    id: Uuid,
    secret: &str,
) -> AppResult<Option<ScheduleRow>> {
    Ok(diesel::update(
        report_schedules::table
            .filter(report_schedules::organization_id.eq(tenant.org_id()))
            .filter(report_schedules::id.eq(id)),
    )
    .set((
        report_schedules::webhook_secret.eq(secret),
        report_schedules::version.eq(report_schedules::version + 1),
        report_schedules::updated_at.eq(diesel::dsl::now),
    ))
    .returning(ScheduleRow::as_returning())
    .get_result(conn)
    .await
    .optional()?)
}

pub async fn delete(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid) -> AppResult<bool> {
    let deleted = diesel::delete(
        report_schedules::table
            .filter(report_schedules::organization_id.eq(tenant.org_id()))
            .filter(report_schedules::id.eq(id)),
    )
    .execute(conn)
    .await?;
    Ok(deleted > 0)
}

/// The schedulers' claim, across organizations: one unpaused schedule due at `now`, locked
/// for the caller's transaction; schedules another instance holds are skipped (`SKIP
/// LOCKED`), and one it has just fired is no longer due when the lock is granted (PostgreSQL
/// re-checks the condition on the row's newest version), so a fire is claimed once.
pub async fn claim_due(conn: &mut AsyncPgConnection, now: DateTime<Utc>) -> AppResult<Option<ScheduleRow>> {
    Ok(report_schedules::table
        .filter(report_schedules::paused.eq(false))
        .filter(report_schedules::next_fire_at.le(now))
        // A suspended organization's schedules wait; on resume only the latest missed fire runs.
        .filter(diesel::dsl::not(
            report_schedules::organization_id.eq_any(
                organizations::table
                    .filter(organizations::suspended_at.is_not_null())
                    .select(organizations::id),
            ),
        ))
        .order(report_schedules::next_fire_at.asc())
        .select(ScheduleRow::as_select())
        .for_update()
        .skip_locked()
        .first(conn)
        .await
        .optional()?)
}

/// What a claimed fire left on its schedule.
pub struct Fired {
    pub next_fire_at: Option<DateTime<Utc>>,
    /// The fire that ran (or was attempted), if the window held one.
    pub fire_at: Option<DateTime<Utc>>,
    pub run_id: Option<Uuid>,
    pub missed: i64,
    pub error: Option<String>,
}

/// Records a claimed fire and moves the schedule to its next one (not a change of the
/// schedule: the version stays).
pub async fn record_fire(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid, fired: Fired) -> AppResult<()> {
    let target = report_schedules::table
        .filter(report_schedules::organization_id.eq(tenant.org_id()))
        .filter(report_schedules::id.eq(id));
    diesel::update(target)
        .set((
            report_schedules::next_fire_at.eq(fired.next_fire_at),
            report_schedules::last_fire_at.eq(diesel::dsl::sql::<
                diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
            >("COALESCE(")
            .bind::<diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>, _>(fired.fire_at)
            .sql(", last_fire_at)")),
            report_schedules::last_run_id.eq(
                diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Uuid>>("COALESCE(")
                    .bind::<diesel::sql_types::Nullable<diesel::sql_types::Uuid>, _>(fired.run_id)
                    .sql(", last_run_id)"),
            ),
            report_schedules::missed_fires.eq(report_schedules::missed_fires + fired.missed),
            report_schedules::last_error.eq(fired.error),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

//! Saved reports: rows of `reports`, always reached through a [`Tenant`]. The definition is
//! stored as JSON that `reports::definition` shapes and validates; this module only moves it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::schema::reports;
use crate::error::AppResult;

/// How many reports a listing returns at most (by title).
pub const LIST_LIMIT: i64 = 500;

/// A stored report.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = reports, check_for_backend(diesel::pg::Pg))]
pub struct ReportRow {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub owner_id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub shared: bool,
    pub definition: serde_json::Value,
    pub template_key: Option<String>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A report to store (version 1).
pub struct NewReport<'a> {
    pub owner_id: Uuid,
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub shared: bool,
    pub definition: serde_json::Value,
    pub template_key: Option<&'a str>,
}

/// What an update replaces; the version moves on by one.
pub struct ReportChanges<'a> {
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub shared: bool,
    pub definition: serde_json::Value,
}

/// Which of the organization's reports a listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Every report (ADMIN and above).
    All,
    /// The shared ones and those this user owns.
    SharedOrOwnedBy(Uuid),
    /// The shared ones only.
    Shared,
}

pub async fn insert(conn: &mut AsyncPgConnection, tenant: &Tenant, report: NewReport<'_>) -> AppResult<ReportRow> {
    Ok(diesel::insert_into(reports::table)
        .values((
            reports::organization_id.eq(tenant.org_id()),
            reports::owner_id.eq(report.owner_id),
            reports::title.eq(report.title),
            reports::description.eq(report.description),
            reports::shared.eq(report.shared),
            reports::definition.eq(report.definition),
            reports::template_key.eq(report.template_key),
        ))
        .returning(ReportRow::as_returning())
        .get_result(conn)
        .await?)
}

/// The organization's reports the listing covers, by title.
pub async fn list(conn: &mut AsyncPgConnection, tenant: &Tenant, listing: Listing) -> AppResult<Vec<ReportRow>> {
    let mut query = reports::table
        .filter(reports::organization_id.eq(tenant.org_id()))
        .select(ReportRow::as_select())
        .order((reports::title.asc(), reports::id.asc()))
        .limit(LIST_LIMIT)
        .into_boxed();
    match listing {
        Listing::All => {}
        Listing::SharedOrOwnedBy(user) => {
            query = query.filter(reports::shared.or(reports::owner_id.eq(user)));
        }
        Listing::Shared => query = query.filter(reports::shared),
    }
    Ok(query.load(conn).await?)
}

/// One of the organization's reports.
pub async fn get(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid) -> AppResult<Option<ReportRow>> {
    Ok(reports::table
        .filter(reports::organization_id.eq(tenant.org_id()))
        .filter(reports::id.eq(id))
        .select(ReportRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// One of the organization's reports, locked for a read-check-write change.
pub async fn get_for_update(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid) -> AppResult<Option<ReportRow>> {
    Ok(reports::table
        .filter(reports::organization_id.eq(tenant.org_id()))
        .filter(reports::id.eq(id))
        .select(ReportRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// Replaces a report's content and moves its version on by one.
pub async fn update(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    id: Uuid,
    changes: ReportChanges<'_>,
) -> AppResult<Option<ReportRow>> {
    Ok(diesel::update(
        reports::table
            .filter(reports::organization_id.eq(tenant.org_id()))
            .filter(reports::id.eq(id)),
    )
    .set((
        reports::title.eq(changes.title),
        reports::description.eq(changes.description),
        reports::shared.eq(changes.shared),
        reports::definition.eq(changes.definition),
        reports::version.eq(reports::version + 1),
        reports::updated_at.eq(diesel::dsl::now),
    ))
    .returning(ReportRow::as_returning())
    .get_result(conn)
    .await
    .optional()?)
}

/// Deletes a report; whether there was one.
pub async fn delete(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid) -> AppResult<bool> {
    let deleted = diesel::delete(
        reports::table
            .filter(reports::organization_id.eq(tenant.org_id()))
            .filter(reports::id.eq(id)),
    )
    .execute(conn)
    .await?;
    Ok(deleted > 0)
}

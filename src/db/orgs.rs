//! Organizations and their business settings.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::models::{OrgRow, SettingsChanges, SettingsRow};
use crate::db::schema::{business_settings, organizations};
use crate::error::{AppError, AppResult};

fn not_found() -> AppError {
    AppError::NotFound("organization not found".into())
}

pub async fn get(conn: &mut AsyncPgConnection, tenant: &Tenant) -> AppResult<OrgRow> {
    organizations::table
        .find(tenant.org_id())
        .select(OrgRow::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(not_found)
}

/// Whether an organization exists; used before a SUPER_ADMIN is handed another tenant.
pub async fn exists(conn: &mut AsyncPgConnection, org_id: Uuid) -> AppResult<bool> {
    let found: Option<Uuid> = organizations::table
        .find(org_id)
        .select(organizations::id)
        .first(conn)
        .await
        .optional()?;
    Ok(found.is_some())
}

pub async fn find_by_slug(conn: &mut AsyncPgConnection, slug: &str) -> AppResult<Option<OrgRow>> {
    Ok(organizations::table
        .filter(organizations::slug.eq(slug))
        .select(OrgRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Creates an organization with default business settings; a slug in use is CONFLICT.
pub async fn create(
    conn: &mut AsyncPgConnection,
    slug: &str,
    name: &str,
    timezone: &str,
    locale: &str,
) -> AppResult<OrgRow> {
    let org: OrgRow = diesel::insert_into(organizations::table)
        .values((
            organizations::slug.eq(slug),
            organizations::name.eq(name),
            organizations::timezone.eq(timezone),
            organizations::locale.eq(locale),
        ))
        .returning(OrgRow::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| match e {
            diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _) => {
                AppError::Conflict("an organization with this slug already exists".into())
            }
            other => other.into(),
        })?;
    diesel::insert_into(business_settings::table)
        .values(business_settings::organization_id.eq(org.id))
        .execute(conn)
        .await?;
    Ok(org)
}

pub async fn settings(conn: &mut AsyncPgConnection, tenant: &Tenant) -> AppResult<SettingsRow> {
    business_settings::table
        .find(tenant.org_id())
        .select(SettingsRow::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(not_found)
}

/// Locks and reads the settings row, for a read-validate-write update.
pub async fn settings_for_update(conn: &mut AsyncPgConnection, tenant: &Tenant) -> AppResult<SettingsRow> {
    business_settings::table
        .find(tenant.org_id())
        .select(SettingsRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or_else(not_found)
}

/// The organization's history horizon: the earliest time a call or event may carry (business
/// settings' `history_horizon`, or else the organization's creation).
pub async fn history_horizon(conn: &mut AsyncPgConnection, tenant: &Tenant) -> AppResult<DateTime<Utc>> {
    let (created_at, horizon): (DateTime<Utc>, Option<DateTime<Utc>>) = organizations::table
        .inner_join(business_settings::table)
        .filter(organizations::id.eq(tenant.org_id()))
        .select((organizations::created_at, business_settings::history_horizon))
        .first(conn)
        .await
        .optional()?
        .ok_or_else(not_found)?;
    Ok(horizon.unwrap_or(created_at))
}

/// Writes new settings when the stored version is still `expected_version`; bumps the version.
/// Returns None when another writer got there first.
pub async fn update_settings(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    expected_version: i32,
    changes: &SettingsChanges,
    updated_by: Uuid,
) -> AppResult<Option<SettingsRow>> {
    Ok(diesel::update(
        business_settings::table
            .filter(business_settings::organization_id.eq(tenant.org_id()))
            .filter(business_settings::version.eq(expected_version)),
    )
    .set((
        changes,
        business_settings::version.eq(business_settings::version + 1),
        business_settings::updated_at.eq(diesel::dsl::now),
        business_settings::updated_by.eq(updated_by),
    ))
    .returning(SettingsRow::as_returning())
    .get_result(conn)
    .await
    .optional()?)
}

pub async fn set_timezone(conn: &mut AsyncPgConnection, tenant: &Tenant, timezone: &str) -> AppResult<()> {
    diesel::update(organizations::table.find(tenant.org_id()))
        .set((
            organizations::timezone.eq(timezone),
            organizations::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether an organization is suspended (false for an unknown one: nothing to refuse).
pub async fn is_suspended(conn: &mut AsyncPgConnection, org_id: Uuid) -> AppResult<bool> {
    let found: Option<Option<DateTime<Utc>>> = organizations::table
        .find(org_id)
        .select(organizations::suspended_at)
        .first(conn)
        .await
        .optional()?;
    Ok(found.flatten().is_some())
}

/// Every organization, in (created_at, id) order after the keyset `after`; `limit + 1` rows so
/// the caller knows whether another page follows. Platform staff only: no tenant applies.
pub async fn page_all(
    conn: &mut AsyncPgConnection,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> AppResult<Vec<OrgRow>> {
    let mut query = organizations::table
        .select(OrgRow::as_select())
        .order((organizations::created_at.asc(), organizations::id.asc()))
        .limit(limit + 1)
        .into_boxed();
    if let Some((created_at, id)) = after {
        query = query.filter(
            organizations::created_at
                .gt(created_at)
                .or(organizations::created_at.eq(created_at).and(organizations::id.gt(id))),
        );
    }
    Ok(query.load(conn).await?)
}

pub async fn count_all(conn: &mut AsyncPgConnection) -> AppResult<i64> {
    Ok(organizations::table.count().get_result(conn).await?)
}

/// Locks and reads an organization, for a suspend or resume.
pub async fn get_for_update(conn: &mut AsyncPgConnection, tenant: &Tenant) -> AppResult<OrgRow> {
    organizations::table
        .find(tenant.org_id())
        .select(OrgRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or_else(not_found)
}

/// Suspends (`Some(reason)`, the reason may be empty) or resumes (`None`) an organization.
pub async fn set_suspended(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    suspended: Option<&str>,
) -> AppResult<OrgRow> {
    let (at, reason) = match suspended {
        Some(reason) => (Some(Utc::now()), Some(reason).filter(|r| !r.is_empty())),
        None => (None, None),
    };
    diesel::update(organizations::table.find(tenant.org_id()))
        .set((
            organizations::suspended_at.eq(at),
            organizations::suspension_reason.eq(reason),
            organizations::updated_at.eq(diesel::dsl::now),
        ))
        .returning(OrgRow::as_returning())
        .get_result(conn)
        .await
        .optional()?
        .ok_or_else(not_found)
}

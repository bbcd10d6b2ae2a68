//! Campaigns and disposition codes as the management surface lists and changes them. (Fixtures
//! and seeds create them through [`crate::db::contact_centre`]; the KPI engine reads their
//! overrides and flags in [`crate::kpi::facts::CountingRules`].)
//!
//! The rows are read `FOR NO KEY UPDATE` before a change: that lock serializes two changes of
//! the same row but not the calls being written meanwhile, whose foreign keys take only
//! `FOR KEY SHARE` on it. What keeps the rollups consistent with a change is the lock on the
//! business settings row that the change takes first (see `management::catalog`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::schema::{campaigns, dispositions};
use crate::error::{AppError, AppResult};

#[derive(Queryable, Selectable, Clone, Debug, PartialEq)]
#[diesel(table_name = campaigns)]
pub struct CampaignRow {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub direction: String,
    pub dial_mode: Option<String>,
    pub status: String,
    pub service_level_threshold_seconds: Option<i32>,
    pub service_level_target_percent: Option<f64>,
    pub max_abandon_rate_percent: Option<f64>,
    pub created_at: DateTime<Utc>,
}

/// Every column a campaign change may write; `None` writes NULL (the organization's value).
#[derive(Insertable, AsChangeset, Clone, Debug, PartialEq, serde::Serialize)]
#[diesel(table_name = campaigns, treat_none_as_null = true)]
#[serde(rename_all = "camelCase")]
pub struct CampaignFields {
    pub name: String,
    pub direction: String,
    pub dial_mode: Option<String>,
    pub status: String,
    pub service_level_threshold_seconds: Option<i32>,
    pub service_level_target_percent: Option<f64>,
    pub max_abandon_rate_percent: Option<f64>,
}

impl CampaignRow {
    pub fn fields(&self) -> CampaignFields {
        CampaignFields {
            name: self.name.clone(),
            direction: self.direction.clone(),
            dial_mode: self.dial_mode.clone(),
            status: self.status.clone(),
            service_level_threshold_seconds: self.service_level_threshold_seconds,
            service_level_target_percent: self.service_level_target_percent,
            max_abandon_rate_percent: self.max_abandon_rate_percent,
        }
    }
}

#[derive(Queryable, Selectable, Clone, Debug, PartialEq, Eq)]
#[diesel(table_name = dispositions)]
pub struct DispositionRow {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub code: String,
    pub label: String,
    pub human_answered: bool,
    pub contact: bool,
    pub success: bool,
    pub callback: bool,
    pub do_not_call: bool,
    pub answering_machine: bool,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

/// Every column a disposition change may write.
#[derive(Insertable, AsChangeset, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[diesel(table_name = dispositions)]
#[serde(rename_all = "camelCase")]
pub struct DispositionFields {
    pub code: String,
    pub label: String,
    pub human_answered: bool,
    pub contact: bool,
    pub success: bool,
    pub callback: bool,
    pub do_not_call: bool,
    pub answering_machine: bool,
    pub active: bool,
}

impl DispositionRow {
    pub fn fields(&self) -> DispositionFields {
        DispositionFields {
            code: self.code.clone(),
            label: self.label.clone(),
            human_answered: self.human_answered,
            contact: self.contact,
            success: self.success,
            callback: self.callback,
            do_not_call: self.do_not_call,
            answering_machine: self.answering_machine,
            active: self.active,
        }
    }
}

fn campaign_not_found() -> AppError {
    AppError::NotFound("campaign not found".into())
}

fn disposition_not_found() -> AppError {
    AppError::NotFound("disposition not found".into())
}

/// A unique violation of (organization, name) or (organization, code) as CONFLICT.
fn duplicate(what: &'static str) -> impl FnOnce(diesel::result::Error) -> AppError {
    move |e| match e {
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _) => {
            AppError::Conflict(format!("{what} already exists in the organization"))
        }
        other => other.into(),
    }
}

/// The tenant's campaigns by name; archived ones only when asked for.
pub async fn campaigns(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    include_archived: bool,
) -> AppResult<Vec<CampaignRow>> {
    let mut query = campaigns::table
        .filter(campaigns::organization_id.eq(tenant.org_id()))
        .select(CampaignRow::as_select())
        .order((campaigns::name, campaigns::id))
        .into_boxed();
    if !include_archived {
        query = query.filter(campaigns::status.ne("ARCHIVED"));
    }
    Ok(query.load(conn).await?)
}

pub async fn campaign(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid) -> AppResult<CampaignRow> {
    campaigns::table
        .filter(campaigns::organization_id.eq(tenant.org_id()))
        .filter(campaigns::id.eq(id))
        .select(CampaignRow::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(campaign_not_found)
}

/// The campaign, locked against a concurrent change of it (not against calls referencing it).
pub async fn campaign_for_update(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid) -> AppResult<CampaignRow> {
    campaigns::table
        .filter(campaigns::organization_id.eq(tenant.org_id()))
        .filter(campaigns::id.eq(id))
        .select(CampaignRow::as_select())
        .for_no_key_update()
        .first(conn)
        .await
        .optional()?
        .ok_or_else(campaign_not_found)
}

/// Inserts a campaign; a name already in use answers CONFLICT.
pub async fn insert_campaign(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    fields: &CampaignFields,
) -> AppResult<CampaignRow> {
    diesel::insert_into(campaigns::table)
        .values((campaigns::organization_id.eq(tenant.org_id()), fields))
        .returning(CampaignRow::as_returning())
        .get_result(conn)
        .await
        .map_err(duplicate("a campaign with this name"))
}

/// Writes a campaign's fields; a name already in use answers CONFLICT.
pub async fn update_campaign(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    id: Uuid,
    fields: &CampaignFields,
) -> AppResult<CampaignRow> {
    diesel::update(
        campaigns::table
            .filter(campaigns::organization_id.eq(tenant.org_id()))
            .filter(campaigns::id.eq(id)),
    )
    .set(fields)
    .returning(CampaignRow::as_returning())
    .get_result(conn)
    .await
    .map_err(duplicate("a campaign with this name"))
}

/// The tenant's dispositions by code; inactive ones only when asked for.
pub async fn dispositions(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    include_inactive: bool,
) -> AppResult<Vec<DispositionRow>> {
    let mut query = dispositions::table
        .filter(dispositions::organization_id.eq(tenant.org_id()))
        .select(DispositionRow::as_select())
        .order((dispositions::code, dispositions::id))
        .into_boxed();
    if !include_inactive {
        query = query.filter(dispositions::active.eq(true));
    }
    Ok(query.load(conn).await?)
}

pub async fn disposition(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid) -> AppResult<DispositionRow> {
    dispositions::table
        .filter(dispositions::organization_id.eq(tenant.org_id()))
        .filter(dispositions::id.eq(id))
        .select(DispositionRow::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(disposition_not_found)
}

/// The disposition, locked against a concurrent change of it (not against calls referencing it).
pub async fn disposition_for_update(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    id: Uuid,
) -> AppResult<DispositionRow> {
    dispositions::table
        .filter(dispositions::organization_id.eq(tenant.org_id()))
        .filter(dispositions::id.eq(id))
        .select(DispositionRow::as_select())
        .for_no_key_update()
        .first(conn)
        .await
        .optional()?
        .ok_or_else(disposition_not_found)
}

/// Inserts a disposition; a code already in use answers CONFLICT.
pub async fn insert_disposition(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    fields: &DispositionFields,
) -> AppResult<DispositionRow> {
    diesel::insert_into(dispositions::table)
        .values((dispositions::organization_id.eq(tenant.org_id()), fields))
        .returning(DispositionRow::as_returning())
        .get_result(conn)
        .await
        .map_err(duplicate("a disposition with this code"))
}

/// Writes a disposition's fields; a code already in use answers CONFLICT.
pub async fn update_disposition(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    id: Uuid,
    fields: &DispositionFields,
) -> AppResult<DispositionRow> {
    diesel::update(
        dispositions::table
            .filter(dispositions::organization_id.eq(tenant.org_id()))
            .filter(dispositions::id.eq(id)),
    )
    .set(fields)
    .returning(DispositionRow::as_returning())
    .get_result(conn)
    .await
    .map_err(duplicate("a disposition with this code"))
}

//! API keys: stored with the SHA-256 of their secret only. Authentication finds a key by its
//! public prefix before any tenant is known (that is how the tenant is found); everything else
//! goes through a [`Tenant`].

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::auth::{Role, Tenant};
use crate::db::schema::{api_keys, organizations, users};
use crate::error::{AppError, AppResult};

/// How many keys a listing returns at most (newest first).
pub const LIST_LIMIT: i64 = 500;

/// A stored key. Never reaches a client as it is (the digest, for one).
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = api_keys, check_for_backend(diesel::pg::Pg))]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub created_by: Uuid,
    pub name: String,
    pub prefix: String,
    pub secret_hash: Vec<u8>,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<Uuid>,
}

/// A key as authentication reads it: the key and its creator's `users` row as it is now.
#[derive(Clone, Debug)]
pub struct KeyForAuth {
    pub key: ApiKeyRow,
    pub creator_org_id: Uuid,
    pub creator_role: Role,
    pub creator_active: bool,
    pub creator_email: String,
    pub creator_display_name: String,
    /// The key's organization is suspended.
    pub org_suspended: bool,
}

/// A key to store.
pub struct NewApiKey<'a> {
    pub created_by: Uuid,
    pub name: &'a str,
    pub prefix: &'a str,
    pub secret_hash: &'a [u8],
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

fn not_found() -> AppError {
    AppError::NotFound("API key not found".into())
}

pub async fn insert(conn: &mut AsyncPgConnection, tenant: &Tenant, key: NewApiKey<'_>) -> AppResult<ApiKeyRow> {
    Ok(diesel::insert_into(api_keys::table)
        .values((
            api_keys::organization_id.eq(tenant.org_id()),
            api_keys::created_by.eq(key.created_by),
            api_keys::name.eq(key.name),
            api_keys::prefix.eq(key.prefix),
            api_keys::secret_hash.eq(key.secret_hash),
            api_keys::scopes.eq(key.scopes),
            api_keys::expires_at.eq(key.expires_at),
        ))
        .returning(ApiKeyRow::as_returning())
        .get_result(conn)
        .await?)
}

/// For authentication only: the key with this public prefix, with its creator.
/// A key with its creator's organization, role, active flag, e-mail and name, and its
/// organization's suspension time.
type KeyAuthRow = (ApiKeyRow, Uuid, Role, bool, String, String, Option<DateTime<Utc>>);

pub async fn find_for_auth(conn: &mut AsyncPgConnection, prefix: &str) -> AppResult<Option<KeyForAuth>> {
    let row: Option<KeyAuthRow> = api_keys::table
        .inner_join(users::table.on(users::id.eq(api_keys::created_by)))
        .inner_join(organizations::table.on(organizations::id.eq(api_keys::organization_id)))
        .filter(api_keys::prefix.eq(prefix))
        .select((
            ApiKeyRow::as_select(),
            users::organization_id,
            users::role,
            users::active,
            users::email,
            users::display_name,
            organizations::suspended_at,
        ))
        .first(conn)
        .await
        .optional()?;
    Ok(row.map(
        |(key, creator_org_id, creator_role, creator_active, creator_email, creator_display_name, suspended_at)| {
            KeyForAuth {
                key,
                creator_org_id,
                creator_role,
                creator_active,
                creator_email,
                creator_display_name,
                org_suspended: suspended_at.is_some(),
            }
        },
    ))
}

/// Records that a key was used now (callers do this at most about once a minute per key).
pub async fn touch_last_used(conn: &mut AsyncPgConnection, id: Uuid) -> AppResult<()> {
    diesel::update(api_keys::table.find(id))
        .set(api_keys::last_used_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?;
    Ok(())
}

/// The organization's keys, newest first: all of them, or those `created_by` one user.
pub async fn list(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    created_by: Option<Uuid>,
    include_revoked: bool,
) -> AppResult<Vec<ApiKeyRow>> {
    let mut query = api_keys::table
        .filter(api_keys::organization_id.eq(tenant.org_id()))
        .select(ApiKeyRow::as_select())
        .order((api_keys::created_at.desc(), api_keys::id.desc()))
        .limit(LIST_LIMIT)
        .into_boxed();
    if let Some(user) = created_by {
        query = query.filter(api_keys::created_by.eq(user));
    }
    if !include_revoked {
        query = query.filter(api_keys::revoked_at.is_null());
    }
    Ok(query.load(conn).await?)
}

/// Locks one of the organization's keys for a read-check-write change.
pub async fn get_for_update(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid) -> AppResult<ApiKeyRow> {
    api_keys::table
        .filter(api_keys::organization_id.eq(tenant.org_id()))
        .filter(api_keys::id.eq(id))
        .select(ApiKeyRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or_else(not_found)
}

/// Marks a key revoked now, by `by`.
pub async fn revoke(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid, by: Uuid) -> AppResult<ApiKeyRow> {
    diesel::update(
        api_keys::table
            .filter(api_keys::organization_id.eq(tenant.org_id()))
            .filter(api_keys::id.eq(id)),
    )
    .set((api_keys::revoked_at.eq(diesel::dsl::now), api_keys::revoked_by.eq(by)))
    .returning(ApiKeyRow::as_returning())
    .get_result(conn)
    .await
    .optional()?
    .ok_or_else(not_found)
}

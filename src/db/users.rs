//! Users. Authentication reads a user by id or e-mail before any tenant is known (that is how
//! the tenant is found); everything else goes through a [`Tenant`].

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::auth::{Role, Tenant};
use crate::db::models::{NewUser, UserRow};
use crate::db::schema::{organizations, users};
use crate::error::{AppError, AppResult};

fn not_found() -> AppError {
    AppError::NotFound("user not found".into())
}

/// For authentication only: the user behind a token's `sub`.
pub async fn find_for_auth(conn: &mut AsyncPgConnection, user_id: Uuid) -> AppResult<Option<UserRow>> {
    Ok(users::table
        .find(user_id)
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// For authentication only: the user behind a token's `sub`, and whether their organization
/// is suspended (one join, read on every cache miss).
pub async fn find_for_auth_with_org(conn: &mut AsyncPgConnection, user_id: Uuid) -> AppResult<Option<(UserRow, bool)>> {
    let row: Option<(UserRow, Option<DateTime<Utc>>)> = users::table
        .inner_join(organizations::table)
        .filter(users::id.eq(user_id))
        .select((UserRow::as_select(), organizations::suspended_at))
        .first(conn)
        .await
        .optional()?;
    Ok(row.map(|(user, suspended_at)| (user, suspended_at.is_some())))
}

/// For login only: e-mail addresses are unique across tenants.
pub async fn find_by_email(conn: &mut AsyncPgConnection, email: &str) -> AppResult<Option<UserRow>> {
    Ok(users::table
        .filter(users::email.eq(email))
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

pub async fn get(conn: &mut AsyncPgConnection, tenant: &Tenant, user_id: Uuid) -> AppResult<UserRow> {
    users::table
        .filter(users::organization_id.eq(tenant.org_id()))
        .filter(users::id.eq(user_id))
        .select(UserRow::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(not_found)
}

/// Locks the user row for a read-check-write change.
pub async fn get_for_update(conn: &mut AsyncPgConnection, tenant: &Tenant, user_id: Uuid) -> AppResult<UserRow> {
    users::table
        .filter(users::organization_id.eq(tenant.org_id()))
        .filter(users::id.eq(user_id))
        .select(UserRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or_else(not_found)
}

/// One page of an organization's users in (created_at, id) order, after the keyset `after`.
/// Fetches `limit + 1` rows so the caller knows whether another page follows.
pub async fn page(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> AppResult<Vec<UserRow>> {
    let mut query = users::table
        .filter(users::organization_id.eq(tenant.org_id()))
        .select(UserRow::as_select())
        .order((users::created_at.asc(), users::id.asc()))
        .limit(limit + 1)
        .into_boxed();
    if let Some((created_at, id)) = after {
        query = query.filter(
            users::created_at
                .gt(created_at)
                .or(users::created_at.eq(created_at).and(users::id.gt(id))),
        );
    }
    Ok(query.load(conn).await?)
}

pub async fn count(conn: &mut AsyncPgConnection, tenant: &Tenant) -> AppResult<i64> {
    Ok(users::table
        .filter(users::organization_id.eq(tenant.org_id()))
        .count()
        .get_result(conn)
        .await?)
}

/// Inserts a user; an e-mail address already in use answers CONFLICT.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    email: &str,
    display_name: &str,
    role: Role,
    password_hash: &str,
) -> AppResult<UserRow> {
    let row = NewUser {
        organization_id: tenant.org_id(),
        email,
        display_name,
        role,
        password_hash,
    };
    diesel::insert_into(users::table)
        .values(&row)
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| match e {
            diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _) => {
                AppError::Conflict("a user with this e-mail address already exists".into())
            }
            other => other.into(),
        })
}

pub async fn set_role(conn: &mut AsyncPgConnection, tenant: &Tenant, user_id: Uuid, role: Role) -> AppResult<UserRow> {
    diesel::update(
        users::table
            .filter(users::organization_id.eq(tenant.org_id()))
            .filter(users::id.eq(user_id)),
    )
    .set((users::role.eq(role), users::updated_at.eq(diesel::dsl::now)))
    .returning(UserRow::as_returning())
    .get_result(conn)
    .await
    .optional()?
    .ok_or_else(not_found)
}

/// Deactivates a user and bumps `token_version`, so every token already issued dies at once.
pub async fn deactivate(conn: &mut AsyncPgConnection, tenant: &Tenant, user_id: Uuid) -> AppResult<UserRow> {
    diesel::update(
        users::table
            .filter(users::organization_id.eq(tenant.org_id()))
            .filter(users::id.eq(user_id)),
    )
    .set((
        users::active.eq(false),
        users::token_version.eq(users::token_version + 1),
        users::updated_at.eq(diesel::dsl::now),
    ))
    .returning(UserRow::as_returning())
    .get_result(conn)
    .await
    .optional()?
    .ok_or_else(not_found)
}

/// Revokes every token of a user by bumping `token_version` ("log out everywhere").
pub async fn bump_token_version(conn: &mut AsyncPgConnection, user_id: Uuid) -> AppResult<()> {
    diesel::update(users::table.find(user_id))
        .set((
            users::token_version.eq(users::token_version + 1),
            users::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Active ADMINs of the organization, locked so that two concurrent demotions cannot both
/// pass the "not the last admin" check.
pub async fn lock_active_admins(conn: &mut AsyncPgConnection, tenant: &Tenant) -> AppResult<Vec<Uuid>> {
    Ok(users::table
        .filter(users::organization_id.eq(tenant.org_id()))
        .filter(users::role.eq(Role::Admin))
        .filter(users::active.eq(true))
        .select(users::id)
        .order(users::id)
        .for_update()
        .load(conn)
        .await?)
}

pub async fn touch_last_login(conn: &mut AsyncPgConnection, user_id: Uuid) -> AppResult<()> {
    diesel::update(users::table.find(user_id))
        .set(users::last_login_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?;
    Ok(())
}

/// Seeding: creates the user, or resets password, role and active flag of an existing one.
pub async fn upsert_for_seed(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    email: &str,
    display_name: &str,
    role: Role,
    password_hash: &str,
) -> AppResult<UserRow> {
    let row = NewUser {
        organization_id: tenant.org_id(),
        email,
        display_name,
        role,
        password_hash,
    };
    Ok(diesel::insert_into(users::table)
        .values(&row)
        .on_conflict(users::email)
        .do_update()
        .set((
            users::password_hash.eq(password_hash),
            users::role.eq(role),
            users::active.eq(true),
            users::updated_at.eq(diesel::dsl::now),
        ))
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await?)
}

/// The stored hash of an invited user who has not chosen a password yet: no password matches
/// it (it is not a valid hash), so nobody signs in as them until the invitation is accepted.
pub const NO_PASSWORD: &str = "";

/// Sets a user's password hash. `revoke_tokens` also bumps `token_version`, so every access
/// token issued so far dies (a reset or a change: whoever held the old password is out).
pub async fn set_password(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    user_id: Uuid,
    password_hash: &str,
    revoke_tokens: bool,
) -> AppResult<UserRow> {
    let bump = if revoke_tokens { 1 } else { 0 };
    diesel::update(
        users::table
            .filter(users::organization_id.eq(tenant.org_id()))
            .filter(users::id.eq(user_id)),
    )
    .set((
        users::password_hash.eq(password_hash),
        users::token_version.eq(users::token_version + bump),
        users::updated_at.eq(diesel::dsl::now),
    ))
    .returning(UserRow::as_returning())
    .get_result(conn)
    .await
    .optional()?
    .ok_or_else(not_found)
}

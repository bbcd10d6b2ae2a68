//! One-time tokens that set a password (invitation, password reset), stored only as digests.
//! Redeeming reads a token by digest before any tenant is known (the token is how the person
//! is found), like login reads a user by e-mail.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::schema::user_tokens;
use crate::error::AppResult;

/// What a token is for; stored as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Invitation,
    PasswordReset,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Invitation => "INVITATION",
            Purpose::PasswordReset => "PASSWORD_RESET",
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = user_tokens, check_for_backend(diesel::pg::Pg))]
pub struct UserTokenRow {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub user_id: Uuid,
    pub purpose: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

/// Stores a new token and spends the user's older unused tokens of the same purpose, so only
/// the newest one works.
pub async fn issue(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    user_id: Uuid,
    purpose: Purpose,
    token_hash: &[u8],
    expires_at: DateTime<Utc>,
    created_by: Option<Uuid>,
) -> AppResult<()> {
    diesel::update(
        user_tokens::table
            .filter(user_tokens::organization_id.eq(tenant.org_id()))
            .filter(user_tokens::user_id.eq(user_id))
            .filter(user_tokens::purpose.eq(purpose.as_str()))
            .filter(user_tokens::used_at.is_null()),
    )
    .set(user_tokens::used_at.eq(diesel::dsl::now))
    .execute(conn)
    .await?;
    diesel::insert_into(user_tokens::table)
        .values((
            user_tokens::organization_id.eq(tenant.org_id()),
            user_tokens::user_id.eq(user_id),
            user_tokens::purpose.eq(purpose.as_str()),
            user_tokens::token_hash.eq(token_hash),
            user_tokens::expires_at.eq(expires_at),
            user_tokens::created_by.eq(created_by),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// The token with this digest and purpose, locked, so two concurrent redemptions serialize
/// and the second sees it used.
pub async fn find_for_update(
    conn: &mut AsyncPgConnection,
    token_hash: &[u8],
    purpose: Purpose,
) -> AppResult<Option<UserTokenRow>> {
    Ok(user_tokens::table
        .filter(user_tokens::token_hash.eq(token_hash))
        .filter(user_tokens::purpose.eq(purpose.as_str()))
        .select(UserTokenRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

pub async fn mark_used(conn: &mut AsyncPgConnection, id: Uuid) -> AppResult<()> {
    diesel::update(user_tokens::table.find(id))
        .set(user_tokens::used_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?;
    Ok(())
}

/// Spends every unused token of a user (after a password was set by any route).
pub async fn spend_all_for_user(conn: &mut AsyncPgConnection, tenant: &Tenant, user_id: Uuid) -> AppResult<usize> {
    Ok(diesel::update(
        user_tokens::table
            .filter(user_tokens::organization_id.eq(tenant.org_id()))
            .filter(user_tokens::user_id.eq(user_id))
            .filter(user_tokens::used_at.is_null()),
    )
    .set(user_tokens::used_at.eq(diesel::dsl::now))
    .execute(conn)
    .await?)
}

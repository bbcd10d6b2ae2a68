//! Login, refresh-token rotation and logout.
//!
//! Refresh tokens are JWTs of kind `refresh` whose SHA-256 is stored. Each use marks the token
//! used and issues a new one in the same family; presenting a used token again means it was
//! stolen (or replayed), so the whole family is revoked and the reuse audited.

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::audit::{self, Actor, AuditEvent};
use crate::auth::jwt::{invalid_token, Subject, TokenKind};
use crate::auth::{password, Principal, Tenant};
use crate::db::models::UserRow;
use crate::db::{orgs, tokens, users};
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// What a successful login or refresh hands the client.
pub struct Session {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_at: DateTime<Utc>,
    pub user: UserRow,
}

fn login_refused() -> AppError {
    AppError::Unauthenticated("invalid email or password".into())
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn subject(user: &UserRow) -> Subject {
    Subject {
        user_id: user.id,
        org_id: user.organization_id,
        role: user.role,
        token_version: user.token_version,
    }
}

fn timestamp(unix: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(unix, 0).unwrap_or_else(Utc::now)
}

/// Mints an access token for a user (also used by `omnivox token`).
pub fn access_token(state: &AppState, user: &UserRow, ttl: std::time::Duration) -> AppResult<(String, DateTime<Utc>)> {
    let (token, claims) = state.jwt.mint(subject(user), TokenKind::Access, ttl, None)?;
    Ok((token, timestamp(claims.exp)))
}

/// Issues an access token and a new refresh token in `family` (a new family when None); also
/// how a person who has just set their password (invitation, reset, change) is signed in.
pub async fn issue(
    conn: &mut diesel_async::AsyncPgConnection,
    state: &AppState,
    user: UserRow,
    family: Option<Uuid>,
) -> AppResult<Session> {
    let family = family.unwrap_or_else(Uuid::new_v4);
    let (refresh_token, refresh_claims) =
        state
            .jwt
            .mint(subject(&user), TokenKind::Refresh, state.jwt.refresh_ttl, Some(family))?;
    tokens::insert(
        conn,
        refresh_claims.jti,
        user.id,
        family,
        &digest(&refresh_token),
        timestamp(refresh_claims.exp),
    )
    .await?;
    let (access_token, expires_at) = access_token(state, &user, state.jwt.access_ttl)?;
    Ok(Session {
        access_token,
        refresh_token,
        expires_at,
        user,
    })
}

pub async fn login(
    state: &AppState,
    email: &str,
    password_text: &str,
    request_id: Option<String>,
) -> AppResult<Session> {
    let email = email.trim().to_lowercase();
    if email.len() > 254 || password_text.chars().count() > password::MAX_PASSWORD_CHARS {
        return Err(login_refused());
    }
    // Cross-tenant: the address finds the account, and so the organization (`db::tenancy`);
    // an unknown address's failure goes to the platform chain, which no tenant may write.
    let mut conn = state.system_db.get().await?;
    let user = users::find_by_email(&mut conn, &email).await?;
    let matches = password::verify(password_text.to_owned(), user.as_ref().map(|u| u.password_hash.clone())).await?;
    // Only someone who knows the password learns that the organization is suspended.
    let suspended = match &user {
        Some(user) if matches && user.active => orgs::is_suspended(&mut conn, user.organization_id).await?,
        _ => false,
    };
    match user {
        Some(user) if suspended => {
            let event = AuditEvent::new(Some(user.organization_id), None, "auth.login_failed")
                .target("user", user.id)
                .details(serde_json::json!({ "email": email, "reason": "organization_suspended" }))
                .request_id(request_id);
            conn.transaction(async |conn| audit::record(conn, event).await).await?;
            Err(AppError::OrganizationSuspended)
        }
        Some(user) if matches && user.active => {
            conn.transaction(async |conn| {
                users::touch_last_login(conn, user.id).await?;
                let event = AuditEvent::new(
                    Some(user.organization_id),
                    Some(Actor {
                        user_id: user.id,
                        role: user.role,
                    }),
                    "auth.login",
                )
                .target("user", user.id)
                .request_id(request_id);
                audit::record(conn, event).await?;
                issue(conn, state, user, None).await
            })
            .await
        }
        other => {
            let (org, target, reason) = match &other {
                Some(u) if !u.active => (Some(u.organization_id), Some(u.id), "inactive"),
                Some(u) => (Some(u.organization_id), Some(u.id), "wrong_password"),
                None => (None, None, "unknown_email"),
            };
            let mut event = AuditEvent::new(org, None, "auth.login_failed")
                .details(serde_json::json!({ "email": email, "reason": reason }))
                .request_id(request_id);
            if let Some(id) = target {
                event = event.target("user", id);
            }
            conn.transaction(async |conn| audit::record(conn, event).await).await?;
            Err(login_refused())
        }
    }
}

enum RefreshOutcome {
    Rotated(Box<Session>),
    Refused,
    Suspended,
}

/// The user a refresh token names, when it is a valid (signed, unexpired) refresh token; for
/// the per-account bucket of `refreshSession`, charged before the token is looked up.
pub fn refresh_token_user(state: &AppState, refresh_token: &str) -> Option<uuid::Uuid> {
    state
        .jwt
        .verify(refresh_token, TokenKind::Refresh)
        .ok()
        .map(|claims| claims.sub)
}

pub async fn refresh(state: &AppState, refresh_token: &str, request_id: Option<String>) -> AppResult<Session> {
    let claims = state.jwt.verify(refresh_token, TokenKind::Refresh)?;
    // The token's signature vouches for its organization.
    let mut conn = state.db.get(&Tenant::for_system(claims.org)).await?;
    let outcome = conn
        .transaction(async |conn| -> AppResult<RefreshOutcome> {
            let Some(stored) = tokens::find_for_update(conn, &digest(refresh_token)).await? else {
                return Ok(RefreshOutcome::Refused);
            };
            if stored.revoked_at.is_some() {
                return Ok(RefreshOutcome::Refused);
            }
            if stored.used_at.is_some() {
                // A rotated token came back: whoever holds the family now is not to be trusted.
                let revoked = tokens::revoke_family(conn, stored.family_id).await?;
                let event = AuditEvent::new(Some(claims.org), None, "auth.refresh_reuse")
                    .target("user", stored.user_id)
                    .details(serde_json::json!({ "familyId": stored.family_id, "revoked": revoked }))
                    .request_id(request_id.clone());
                audit::record(conn, event).await?;
                return Ok(RefreshOutcome::Refused);
            }
            let Some((user, org_suspended)) = users::find_for_auth_with_org(conn, stored.user_id).await? else {
                return Ok(RefreshOutcome::Refused);
            };
            if !user.active || user.token_version != claims.tv {
                return Ok(RefreshOutcome::Refused);
            }
            if org_suspended {
                // The token stays unused: it works again once the organization is resumed.
                return Ok(RefreshOutcome::Suspended);
            }
            tokens::mark_used(conn, stored.id).await?;
            Ok(RefreshOutcome::Rotated(Box::new(
                issue(conn, state, user, Some(stored.family_id)).await?,
            )))
        })
        .await?;
    match outcome {
        RefreshOutcome::Rotated(session) => Ok(*session),
        RefreshOutcome::Refused => Err(invalid_token()),
        RefreshOutcome::Suspended => Err(AppError::OrganizationSuspended),
    }
}

/// Ends the session a refresh token belongs to (its whole rotation family).
pub async fn logout(state: &AppState, refresh_token: &str, request_id: Option<String>) -> AppResult<()> {
    let claims = state.jwt.verify(refresh_token, TokenKind::Refresh)?;
    let family = claims.fam.ok_or_else(invalid_token)?;
    let mut conn = state.db.get(&Tenant::for_system(claims.org)).await?;
    conn.transaction(async |conn| {
        tokens::revoke_family(conn, family).await?;
        let event = AuditEvent::new(Some(claims.org), None, "auth.logout")
            .target("user", claims.sub)
            .request_id(request_id);
        audit::record(conn, event).await
    })
    .await
}

/// Revokes every token of the caller: bumps `token_version` and revokes all refresh tokens.
pub async fn logout_everywhere(state: &AppState, principal: &Principal, request_id: Option<String>) -> AppResult<()> {
    let mut conn = state.db.get(&Tenant::of(principal)).await?;
    conn.transaction(async |conn| {
        users::bump_token_version(conn, principal.user_id).await?;
        tokens::revoke_all_for_user(conn, principal.user_id).await?;
        let event = AuditEvent::new(
            Some(principal.org_id),
            Some(Actor::of(principal)),
            "auth.logout_everywhere",
        )
        .target("user", principal.user_id)
        .request_id(request_id);
        audit::record(conn, event).await
    })
    .await?;
    state.user_cache.evict(principal.user_id);
    Ok(())
}

//! How a person gets and keeps a password: an ADMIN invites them (a user without a password
//! plus a single-use, expiring invitation token), they accept it by choosing a password;
//! later they change it (knowing the current one) or reset it (by a token sent to their
//! address).
//!
//! Tokens are 256 random bits stored only as SHA-256 digests ([`crate::auth::one_time`]),
//! redeemed at most once, and expire ([`INVITATION_TTL`], [`RESET_TTL`]). Issuing a new token
//! spends the user's older ones of that purpose. A token that is unknown, used, expired, of
//! another purpose or of a deactivated user is refused with the same BAD_USER_INPUT on
//! `token`, so a refusal tells nothing about which.
//!
//! The invitation is e-mailed when an SMTP server is configured; otherwise (or when sending
//! fails) the inviting ADMIN gets the token once, in the mutation's answer, to hand over. A
//! password reset is only ever e-mailed, and `requestPasswordReset` answers the same whether
//! the address belongs to an account or not: the work happens after the answer, in a task, so
//! neither its result nor its duration tells.
//!
//! Setting a password through a reset or a change revokes every token issued so far (access
//! tokens through `token_version`, refresh tokens, other one-time tokens) and signs the person
//! in afresh; their open sockets close.

use chrono::{TimeDelta, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use crate::access::session::{self, Session};
use crate::audit::{self, Actor, AuditEvent};
use crate::auth::{one_time, password, Principal, Role, Tenant};
use crate::db::models::UserRow;
use crate::db::user_tokens::{self, Purpose};
use crate::db::{orgs, tokens, users};
use crate::error::{AppError, AppResult, FieldError};
use crate::management::mail;
use crate::management::users::{access_changed, normalize_email, validate_identity};
use crate::state::AppState;

/// How long an invitation can be accepted.
pub const INVITATION_TTL: TimeDelta = TimeDelta::days(7);
/// How long a password-reset token works.
pub const RESET_TTL: TimeDelta = TimeDelta::hours(1);

pub struct NewInvitation {
    pub email: String,
    pub display_name: String,
    pub role: Role,
}

/// An issued invitation. `token` is set only when it was not e-mailed: the caller shows it
/// once to the inviting ADMIN, and it cannot be read again.
pub struct Issued {
    pub user: UserRow,
    pub expires_at: chrono::DateTime<Utc>,
    pub emailed: bool,
    pub token: Option<String>,
}

fn token_refused() -> AppError {
    AppError::invalid_fields(vec![FieldError::new("token", "is invalid, already used or expired")])
}

fn check_new_password(field: &str, password_text: &str) -> AppResult<()> {
    password::check_strength(password_text)
        .map_err(|reason| AppError::invalid_fields(vec![FieldError::new(field, reason)]))
}

/// Whether the user has never chosen a password (an invitation not yet accepted).
pub fn invitation_pending(user: &UserRow) -> bool {
    user.password_hash == users::NO_PASSWORD
}

/// Inside the caller's transaction: a user without a password and their invitation token.
/// Returns the user, the token and its expiry; the caller delivers it after commit.
pub(crate) async fn invite_in(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    invited_by: Option<&Principal>,
    input: &NewInvitation,
    request_id: Option<String>,
) -> AppResult<(UserRow, String, chrono::DateTime<Utc>)> {
    let email = normalize_email(&input.email);
    let display_name = input.display_name.trim();
    let user = users::insert(conn, tenant, &email, display_name, input.role, users::NO_PASSWORD).await?;
    let (token, expires_at) = issue_token(conn, tenant, &user, Purpose::Invitation, invited_by).await?;
    let event = AuditEvent::new(Some(tenant.org_id()), invited_by.map(Actor::of), "user.invite")
        .target("user", user.id)
        .details(serde_json::json!({
            "email": user.email,
            "role": user.role.as_str(),
            "expiresAt": expires_at,
        }))
        .request_id(request_id);
    audit::record(conn, event).await?;
    Ok((user, token, expires_at))
}

async fn issue_token(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    user: &UserRow,
    purpose: Purpose,
    issued_by: Option<&Principal>,
) -> AppResult<(String, chrono::DateTime<Utc>)> {
    let ttl = match purpose {
        Purpose::Invitation => INVITATION_TTL,
        Purpose::PasswordReset => RESET_TTL,
    };
    let token = one_time::generate();
    let expires_at = Utc::now() + ttl;
    user_tokens::issue(
        conn,
        tenant,
        user.id,
        purpose,
        &one_time::digest(&token),
        expires_at,
        issued_by.map(|p| p.user_id),
    )
    .await?;
    Ok((token, expires_at))
}

/// After commit: e-mails the invitation, or hands the token back when it cannot be sent.
pub(crate) async fn deliver_invitation(
    state: &AppState,
    organization_name: &str,
    user: UserRow,
    token: String,
    expires_at: chrono::DateTime<Utc>,
) -> Issued {
    if !mail::configured(state) {
        return Issued {
            user,
            expires_at,
            emailed: false,
            token: Some(token),
        };
    }
    let body = format!(
        "Hello {name},\n\nyou are invited to {organization_name} on Omnivox as {role}.\n\n\
         To choose your password, accept the invitation with this code (acceptInvitation):\n\n    {token}\n\n\
         It works once, until {expires_at} (UTC).\n",
        name = user.display_name,
        role = user.role,
        expires_at = expires_at.format("%Y-%m-%d %H:%M"),
    );
    match mail::send(
        state,
        &user.email,
        &format!("Your invitation to {organization_name}"),
        body,
    )
    .await
    {
        Ok(()) => Issued {
            user,
            expires_at,
            emailed: true,
            token: None,
        },
        Err(problem) => {
            tracing::warn!(user = %user.id, problem = %problem, "invitation e-mail not sent; the token goes to the inviting admin");
            Issued {
                user,
                expires_at,
                emailed: false,
                token: Some(token),
            }
        }
    }
}

fn validate_invitation(principal: &Principal, input: &NewInvitation) -> AppResult<()> {
    if input.role > principal.role {
        return Err(AppError::Forbidden(format!(
            "cannot grant role {}: it is above your own ({})",
            input.role, principal.role
        )));
    }
    let errors = validate_identity(&input.email, &input.display_name);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::invalid_fields(errors))
    }
}

/// Invites a person: ADMIN+, a role not above the inviter's, an e-mail address not in use.
pub async fn invite(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    input: NewInvitation,
    request_id: Option<String>,
) -> AppResult<Issued> {
    validate_invitation(principal, &input)?;
    let mut conn = state.db.get(tenant).await?;
    let (org, (user, token, expires_at)) = conn
        .transaction(async |conn| {
            let org = orgs::get(conn, tenant).await?;
            let issued = invite_in(conn, tenant, Some(principal), &input, request_id).await?;
            Ok::<_, AppError>((org, issued))
        })
        .await?;
    Ok(deliver_invitation(state, &org.name, user, token, expires_at).await)
}

/// Issues a fresh invitation for a user who has not accepted theirs (the old token stops
/// working). CONFLICT when they already chose a password; NOT_FOUND for another tenant's user.
pub async fn resend(
    state: &AppState,
    principal: &Principal,
    tenant: &Tenant,
    user_id: Uuid,
    request_id: Option<String>,
) -> AppResult<Issued> {
    let mut conn = state.db.get(tenant).await?;
    let (org, user, token, expires_at) = conn
        .transaction(async |conn| {
            let user = users::get_for_update(conn, tenant, user_id).await?;
            if user.role > principal.role {
                return Err(AppError::Forbidden(format!(
                    "cannot change a user whose role ({}) is above your own",
                    user.role
                )));
            }
            if !invitation_pending(&user) {
                return Err(AppError::Conflict(
                    "this user has already accepted their invitation".into(),
                ));
            }
            if !user.active {
                return Err(AppError::Conflict("this user is deactivated".into()));
            }
            let (token, expires_at) = issue_token(conn, tenant, &user, Purpose::Invitation, Some(principal)).await?;
            let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "user.invite_resend")
                .target("user", user.id)
                .details(serde_json::json!({ "expiresAt": expires_at }))
                .request_id(request_id);
            audit::record(conn, event).await?;
            let org = orgs::get(conn, tenant).await?;
            Ok::<_, AppError>((org, user, token, expires_at))
        })
        .await?;
    Ok(deliver_invitation(state, &org.name, user, token, expires_at).await)
}

/// Redeems a token of `purpose` inside a transaction: locks it, checks it is unused, unexpired
/// and its user active, marks it used. The organization's suspension is checked by the caller.
async fn redeem(conn: &mut AsyncPgConnection, token: &str, purpose: Purpose) -> AppResult<(Tenant, UserRow)> {
    let found = user_tokens::find_for_update(conn, &one_time::digest(token), purpose)
        .await?
        .ok_or_else(token_refused)?;
    if found.used_at.is_some() || found.expires_at <= Utc::now() {
        return Err(token_refused());
    }
    let tenant = Tenant::for_system(found.organization_id);
    let user = users::get_for_update(conn, &tenant, found.user_id).await?;
    if !user.active {
        return Err(token_refused());
    }
    if orgs::is_suspended(conn, found.organization_id).await? {
        return Err(AppError::OrganizationSuspended);
    }
    user_tokens::mark_used(conn, found.id).await?;
    Ok((tenant, user))
}

/// Accepts an invitation: sets the password and signs the new user in.
pub async fn accept(
    state: &AppState,
    token: &str,
    password_text: &str,
    request_id: Option<String>,
) -> AppResult<Session> {
    check_new_password("password", password_text)?;
    let hash = password::hash(password_text.to_owned()).await?;
    // Cross-tenant (`db::tenancy`): the token finds its user, and so the organization.
    let mut conn = state.system_db.get().await?;
    conn.transaction(async |conn| {
        let (tenant, user) = redeem(conn, token, Purpose::Invitation).await?;
        let user = users::set_password(conn, &tenant, user.id, &hash, false).await?;
        users::touch_last_login(conn, user.id).await?;
        let event = AuditEvent::new(
            Some(tenant.org_id()),
            Some(Actor {
                user_id: user.id,
                role: user.role,
            }),
            "user.invitation_accept",
        )
        .target("user", user.id)
        .request_id(request_id);
        audit::record(conn, event).await?;
        session::issue(conn, state, user, None).await
    })
    .await
}

/// Sets a new password in the caller's transaction and revokes every token issued so far.
async fn replace_password(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    user_id: Uuid,
    hash: &str,
) -> AppResult<(UserRow, usize)> {
    let user = users::set_password(conn, tenant, user_id, hash, true).await?;
    let revoked = tokens::revoke_all_for_user(conn, user_id).await?;
    user_tokens::spend_all_for_user(conn, tenant, user_id).await?;
    Ok((user, revoked))
}

/// Changes the caller's password (they prove the current one). Every other session ends; the
/// answer is a fresh one.
pub async fn change_password(
    state: &AppState,
    principal: &Principal,
    current: &str,
    new: &str,
    request_id: Option<String>,
) -> AppResult<Session> {
    check_new_password("newPassword", new)?;
    let tenant = Tenant::of(principal);
    let mut conn = state.db.get(&tenant).await?;
    let stored = users::get(&mut conn, &tenant, principal.user_id).await?;
    let matches = password::verify(current.to_owned(), Some(stored.password_hash)).await?;
    if !matches {
        return Err(AppError::invalid_fields(vec![FieldError::new(
            "currentPassword",
            "is not your current password",
        )]));
    }
    if current == new {
        return Err(AppError::invalid_fields(vec![FieldError::new(
            "newPassword",
            "must differ from the current password",
        )]));
    }
    let hash = password::hash(new.to_owned()).await?;
    let session = conn
        .transaction(async |conn| {
            let (user, revoked) = replace_password(conn, &tenant, principal.user_id, &hash).await?;
            let event = AuditEvent::new(
                Some(tenant.org_id()),
                Some(Actor::of(principal)),
                "user.password_change",
            )
            .target("user", user.id)
            .details(serde_json::json!({ "refreshTokensRevoked": revoked }))
            .request_id(request_id);
            audit::record(conn, event).await?;
            session::issue(conn, state, user, None).await
        })
        .await?;
    access_changed(state, &tenant, principal.user_id);
    Ok(session)
}

/// Starts a password reset for `email`. Returns at once, the same for every address: the
/// lookup, the token and the e-mail happen in a task afterwards.
pub fn request_reset(state: &AppState, email: &str, request_id: Option<String>) {
    let email = normalize_email(email);
    if email.is_empty() || email.len() > 254 {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(error) = send_reset(&state, &email, request_id).await {
            tracing::warn!(error = %error.operator_message(), "password reset request failed");
        }
    });
}

async fn send_reset(state: &AppState, email: &str, request_id: Option<String>) -> AppResult<()> {
    // Cross-tenant (`db::tenancy`): the address finds the account, and so the organization.
    let mut conn = state.system_db.get().await?;
    let Some(user) = users::find_by_email(&mut conn, email).await? else {
        return Ok(());
    };
    if !user.active || orgs::is_suspended(&mut conn, user.organization_id).await? {
        return Ok(());
    }
    if !mail::configured(state) {
        tracing::warn!(user = %user.id, "password reset requested, but no SMTP server is configured to send it");
        return Ok(());
    }
    let tenant = Tenant::for_system(user.organization_id);
    let (token, expires_at) = conn
        .transaction(async |conn| {
            let issued = issue_token(conn, &tenant, &user, Purpose::PasswordReset, None).await?;
            let event = AuditEvent::new(Some(tenant.org_id()), None, "user.password_reset_request")
                .target("user", user.id)
                .details(serde_json::json!({ "expiresAt": issued.1 }))
                .request_id(request_id);
            audit::record(conn, event).await?;
            Ok::<_, AppError>(issued)
        })
        .await?;
    let body = format!(
        "Hello {name},\n\nsomeone asked to reset the password of your Omnivox account. If it was you, \
         choose a new password with this code (resetPassword):\n\n    {token}\n\n\
         It works once, until {expires_at} (UTC). If it was not you, ignore this message: your \
         password stays as it is.\n",
        name = user.display_name,
        expires_at = expires_at.format("%Y-%m-%d %H:%M"),
    );
    mail::send(state, &user.email, "Reset your Omnivox password", body)
        .await
        .map_err(AppError::Unavailable)
}

/// Resets a password with a token from `requestPasswordReset`; every earlier session ends and
/// the answer is a fresh one.
pub async fn reset(
    state: &AppState,
    token: &str,
    password_text: &str,
    request_id: Option<String>,
) -> AppResult<Session> {
    check_new_password("password", password_text)?;
    let hash = password::hash(password_text.to_owned()).await?;
    // Cross-tenant (`db::tenancy`): the token finds its user, and so the organization.
    let mut conn = state.system_db.get().await?;
    let (tenant, session) = conn
        .transaction(async |conn| {
            let (tenant, user) = redeem(conn, token, Purpose::PasswordReset).await?;
            let (user, revoked) = replace_password(conn, &tenant, user.id, &hash).await?;
            let event = AuditEvent::new(
                Some(tenant.org_id()),
                Some(Actor {
                    user_id: user.id,
                    role: user.role,
                }),
                "user.password_reset",
            )
            .target("user", user.id)
            .details(serde_json::json!({ "refreshTokensRevoked": revoked }))
            .request_id(request_id);
            audit::record(conn, event).await?;
            let session = session::issue(conn, state, user, None).await?;
            Ok::<_, AppError>((tenant, session))
        })
        .await?;
    access_changed(state, &tenant, session.user.id);
    Ok(session)
}

//! Sign-in, token refresh, sign-out and passwords. `login`, `refreshSession`, `logout`,
//! `acceptInvitation`, `requestPasswordReset` and `resetPassword` are public on purpose (they
//! are how a caller gets or gives up credentials); `changePassword` needs a signed-in user.

use async_graphql::{Context, Object, SimpleObject};
use chrono::{DateTime, Utc};

use crate::access::session::{self, Session};
use crate::auth::Role;
use crate::graphql::context::{principal, request_id, state};
use crate::graphql::guards::RoleGuard;
use crate::graphql::rate_limits::{refuse_login, refuse_refresh};
use crate::graphql::users::User;
use crate::management::invitations;

#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Bearer token for `Authorization: Bearer …` (or the WebSocket `connection_init` payload).
    access_token: String,
    /// Single use: `refreshSession` returns a new one. Reusing an old one ends the session.
    refresh_token: String,
    /// When the access token expires.
    expires_at: DateTime<Utc>,
    user: User,
}

impl From<Session> for AuthPayload {
    fn from(s: Session) -> Self {
        Self {
            access_token: s.access_token,
            refresh_token: s.refresh_token,
            expires_at: s.expires_at,
            user: User(s.user),
        }
    }
}

#[derive(Default)]
pub struct AuthMutation;

#[Object]
impl AuthMutation {
    /// Signs in. Every failure is the same UNAUTHENTICATED "invalid email or password".
    /// Attempts are limited per account and per client address (RATE_LIMITED, HTTP 429).
    async fn login(&self, ctx: &Context<'_>, email: String, password: String) -> async_graphql::Result<AuthPayload> {
        refuse_login(ctx, &email).await?;
        Ok(session::login(state(ctx)?, &email, &password, request_id(ctx))
            .await?
            .into())
    }

    /// Exchanges a refresh token for a new access token and a new refresh token.
    /// Calls are limited per account and per client address (RATE_LIMITED, HTTP 429).
    async fn refresh_session(&self, ctx: &Context<'_>, refresh_token: String) -> async_graphql::Result<AuthPayload> {
        refuse_refresh(ctx, &refresh_token).await?;
        Ok(session::refresh(state(ctx)?, &refresh_token, request_id(ctx))
            .await?
            .into())
    }

    /// Ends the session this refresh token belongs to. Access tokens already issued stay
    /// valid until they expire (minutes); use `logoutEverywhere` to cut them too.
    async fn logout(&self, ctx: &Context<'_>, refresh_token: String) -> async_graphql::Result<bool> {
        session::logout(state(ctx)?, &refresh_token, request_id(ctx)).await?;
        Ok(true)
    }

    /// Accepts an invitation: sets the password (at least 10 characters) and signs in. The
    /// token works once, before it expires; any refused token is the same BAD_USER_INPUT on
    /// `token`.
    async fn accept_invitation(
        &self,
        ctx: &Context<'_>,
        token: String,
        password: String,
    ) -> async_graphql::Result<AuthPayload> {
        Ok(invitations::accept(state(ctx)?, &token, &password, request_id(ctx))
            .await?
            .into())
    }

    /// Asks for a password-reset e-mail. Always answers true, whether an account has this
    /// address or not (and as fast): the token, valid for an hour and once, goes only to the
    /// address.
    async fn request_password_reset(&self, ctx: &Context<'_>, email: String) -> async_graphql::Result<bool> {
        invitations::request_reset(state(ctx)?, &email, request_id(ctx));
        Ok(true)
    }

    /// Sets a new password with a reset token and signs in; every earlier session of the user
    /// ends (their tokens are revoked, their sockets close). Any refused token is the same
    /// BAD_USER_INPUT on `token`.
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        token: String,
        password: String,
    ) -> async_graphql::Result<AuthPayload> {
        Ok(invitations::reset(state(ctx)?, &token, &password, request_id(ctx))
            .await?
            .into())
    }

    /// Changes the caller's password, given the current one (else BAD_USER_INPUT on
    /// `currentPassword`). Every other session ends; the answer is a fresh session.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        new_password: String,
    ) -> async_graphql::Result<AuthPayload> {
        Ok(invitations::change_password(
            state(ctx)?,
            principal(ctx)?,
            &current_password,
            &new_password,
            request_id(ctx),
        )
        .await?
        .into())
    }

    /// Revokes every access and refresh token of the caller, on every device.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn logout_everywhere(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        session::logout_everywhere(state(ctx)?, principal(ctx)?, request_id(ctx)).await?;
        Ok(true)
    }
}

//! `apiKeys`, `createApiKey`, `revokeApiKey`: API keys for BI tools, wallboard screens and the
//! telephony adapter (rules in `management::api_keys`, format and scopes in `auth::api_key`).

use async_graphql::{Context, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use crate::auth::Role;
use crate::db::api_keys::ApiKeyRow;
use crate::graphql::context::{parse_id, principal, request_id, state};
use crate::graphql::guards::RoleGuard;
use crate::management::api_keys::{self as manage, NewKeyInput};

/// An API key, without its secret (which is shown once, by `createApiKey`).
pub struct ApiKey(pub ApiKeyRow);

#[Object]
impl ApiKey {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The public start of the secret (`ovx_` and 16 hex digits), to recognise a key.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }
    /// `kpi:read`, `reports:read`, `realtime:read`, `ingest:write`. The key uses those its
    /// creator's current role still holds.
    async fn scopes(&self) -> &[String] {
        &self.0.scopes
    }
    /// The user who created the key; the key acts with that user's current role.
    async fn created_by(&self) -> ID {
        ID(self.0.created_by.to_string())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Null: the key does not expire.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    /// When the key was last used, to the minute (it is not written on every request).
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
}

/// A new key and its secret.
#[derive(SimpleObject)]
pub struct CreatedApiKey {
    api_key: ApiKey,
    /// The secret, shown this once: only its SHA-256 is stored. Send it as
    /// `Authorization: Bearer <secret>` or in the WebSocket's `connection_init` payload.
    secret: String,
}

#[derive(Default)]
pub struct ApiKeyQuery;

#[Object]
impl ApiKeyQuery {
    /// API keys, newest first (at most 500). SUPERVISOR+: the keys they created; ADMIN+: every
    /// key of the organization. Revoked keys only with `includeRevoked`.
    #[graphql(guard = "RoleGuard(Role::Supervisor)")]
    async fn api_keys(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = false)] include_revoked: bool,
    ) -> async_graphql::Result<Vec<ApiKey>> {
        let rows = manage::list(state(ctx)?, principal(ctx)?, include_revoked).await?;
        Ok(rows.into_iter().map(ApiKey).collect())
    }
}

#[derive(Default)]
pub struct ApiKeyMutation;

#[Object]
impl ApiKeyMutation {
    /// Creates an API key for the caller's organization and returns its secret, once.
    /// SUPERVISOR+; each scope must be held by the caller's own role (FORBIDDEN otherwise:
    /// `reports:read` needs SUPERVISOR, `ingest:write` ADMIN). `name`: 1 to 100 characters;
    /// `scopes`: at least one known scope; `expiresAt`: in the future, or null for no expiry
    /// (BAD_USER_INPUT naming the field otherwise). Audited.
    #[graphql(guard = "RoleGuard(Role::Supervisor)")]
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        name: String,
        scopes: Vec<String>,
        expires_at: Option<DateTime<Utc>>,
    ) -> async_graphql::Result<CreatedApiKey> {
        let input = NewKeyInput {
            name,
            scopes,
            expires_at,
        };
        let created = manage::create(state(ctx)?, principal(ctx)?, input, request_id(ctx)).await?;
        Ok(CreatedApiKey {
            api_key: ApiKey(created.key),
            secret: created.secret,
        })
    }

    /// Revokes an API key: refused from the next request on, and WebSockets opened with it
    /// close 4403. SUPERVISOR+: their own keys; ADMIN+: any key of the organization (NOT_FOUND
    /// otherwise). Revoking a revoked key changes nothing. Audited.
    #[graphql(guard = "RoleGuard(Role::Supervisor)")]
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ApiKey> {
        let key_id = parse_id(&id, "id")?;
        let row = manage::revoke(state(ctx)?, principal(ctx)?, key_id, request_id(ctx)).await?;
        Ok(ApiKey(row))
    }
}

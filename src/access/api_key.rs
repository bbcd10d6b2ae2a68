//! Resolving an API key into its caller. The key row and its creator's `users` row are read on
//! every request (one indexed join, no cache), so a revocation, an expiry, or a demotion or
//! deactivation of the creator bites on the very next request, on every instance.

use chrono::{DateTime, Utc};

use crate::auth::api_key::{self, KeyGrant, Scope};
use crate::auth::jwt::invalid_token;
use crate::auth::Principal;
use crate::db::api_keys;
use crate::error::AppResult;
use crate::state::AppState;

/// `last_used_at` is written when it is older than this: a few writes an hour per key at most,
/// however many requests it makes.
pub const LAST_USED_RESOLUTION: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// The `token_expires_at` of a key without expiry: never, in practice.
const NEVER: i64 = i64::MAX / 2;

/// Verifies an API key secret and returns its caller: the key's creator as the `users` row
/// says now, restricted to the key's scopes that the creator's role still holds. Every refusal
/// is the same UNAUTHENTICATED as for a bad token.
pub async fn authenticate(state: &AppState, secret: &str) -> AppResult<Principal> {
    let prefix = api_key::parse(secret).ok_or_else(invalid_token)?;
    // Cross-tenant: the key's prefix finds its organization (`db::tenancy`).
    let mut conn = state.system_db.get().await?;
    let found = api_keys::find_for_auth(&mut conn, prefix).await?;
    // Digest the presented secret even for an unknown prefix, so timing tells little.
    let presented = api_key::digest(secret);
    let Some(found) = found else {
        return Err(invalid_token());
    };
    let key = &found.key;
    let now = Utc::now();
    let usable = api_key::digests_match(&presented, &key.secret_hash)
        && key.revoked_at.is_none()
        && key.expires_at.is_none_or(|at| at > now)
        && found.creator_active
        && found.creator_org_id == key.organization_id;
    if !usable {
        tracing::debug!(key = %key.id, "API key refused");
        return Err(invalid_token());
    }
    // A good key of a suspended organization is told so, like its users' tokens.
    if found.org_suspended {
        return Err(crate::error::AppError::OrganizationSuspended);
    }
    if key.last_used_at.is_none_or(|at| now - at >= LAST_USED_RESOLUTION) {
        api_keys::touch_last_used(&mut conn, key.id).await?;
    }
    let scopes = key.scopes.iter().filter_map(|s| s.parse::<Scope>().ok());
    Ok(Principal {
        user_id: key.created_by,
        org_id: key.organization_id,
        role: found.creator_role,
        email: found.creator_email.clone(),
        display_name: found.creator_display_name.clone(),
        token_expires_at: key.expires_at.as_ref().map_or(NEVER, DateTime::timestamp),
        api_key: Some(KeyGrant::new(key.id, scopes, found.creator_role)),
    })
}

//! Resolving a request's bearer token (or API key) into its caller: the token is verified, then the
//! authoritative `users` row is read (cached ≤ [`USER_CACHE_TTL`](crate::auth::principal::USER_CACHE_TTL)) so deactivation and demotion
//! take effect at once.

use crate::auth::api_key;
use crate::auth::jwt::{invalid_token, TokenKind};
use crate::auth::principal::{bearer_token, CachedUser};
use crate::auth::{Auth, Principal, Tenant};
use crate::db::users;
use crate::error::{AppError, AppResult};
use crate::state::audit_queue::DeniedCaller;
use crate::state::AppState;

/// Verifies a bearer credential: an API key (told apart by its `ovx_` prefix, see
/// [`crate::access::api_key`]) or an access token. Anything malformed is UNAUTHENTICATED.
pub async fn authenticate(state: &AppState, token: &str) -> AppResult<Principal> {
    if api_key::looks_like_key(token) {
        return crate::access::api_key::authenticate(state, token).await;
    }
    authenticate_jwt(state, token).await
}

/// Verifies an access token and loads its user: refused when the user is gone, inactive, moved
/// to another organization, or its `token_version` moved on; ORGANIZATION_SUSPENDED while the
/// user's organization is suspended.
async fn authenticate_jwt(state: &AppState, token: &str) -> AppResult<Principal> {
    let claims = state.jwt.verify(token, TokenKind::Access)?;
    let user = match state.user_cache.get(claims.sub) {
        Some(user) => user,
        None => {
            // The token's signature vouches for its organization: a user moved elsewhere is
            // not visible from it, and is refused like an unknown one.
            let mut conn = state.db.get(&Tenant::for_system(claims.org)).await?;
            let (row, org_suspended) = users::find_for_auth_with_org(&mut conn, claims.sub)
                .await?
                .ok_or_else(invalid_token)?;
            let user = CachedUser {
                org_id: row.organization_id,
                role: row.role,
                email: row.email,
                display_name: row.display_name,
                active: row.active,
                token_version: row.token_version,
                org_suspended,
            };
            state.user_cache.put(claims.sub, user.clone());
            user
        }
    };
    if !user.active || user.token_version != claims.tv || user.org_id != claims.org {
        return Err(invalid_token());
    }
    if user.org_suspended {
        return Err(AppError::OrganizationSuspended);
    }
    Ok(Principal {
        user_id: claims.sub,
        org_id: user.org_id,
        role: user.role,
        email: user.email,
        display_name: user.display_name,
        token_expires_at: claims.exp,
        api_key: None,
    })
}

/// Resolves the credentials of a request: no header is anonymous, anything refused is Rejected.
/// Infrastructure failures (database down) are errors, not rejections.
pub async fn resolve(state: &AppState, authorization: Option<&str>) -> AppResult<Auth> {
    let Some(value) = authorization else {
        return Ok(Auth::Anonymous);
    };
    let Some(token) = bearer_token(value) else {
        return Ok(Auth::Rejected);
    };
    match authenticate(state, token).await {
        Ok(principal) => Ok(Auth::Authenticated(principal)),
        Err(AppError::Unauthenticated(_)) => Ok(Auth::Rejected),
        Err(other) => Err(other),
    }
}

/// Who a refused bearer credential names, as far as it can be believed (see
/// `state::audit_queue`): a token with our signature names its organization and subject; a forged
/// or malformed token, or an API key that does not authenticate, names nobody (what it claims
/// is kept, unverified). Cheap (one HMAC, no database): it runs on the request path.
pub fn refused_caller(state: &AppState, token: &str) -> DeniedCaller {
    if api_key::looks_like_key(token) {
        // The public prefix only (`ovx_` and 16 hex digits); the secret part is never kept.
        let prefix = crate::auth::api_key::parse(token);
        return DeniedCaller::Unverified {
            claims: serde_json::json!({ "credential": "apiKey", "prefix": prefix }),
        };
    }
    match state.jwt.signed_claims(token) {
        Some(claims) => DeniedCaller::RefusedToken {
            organization_id: claims.org,
            user_id: claims.sub,
        },
        None => {
            let mut claims = crate::auth::jwt::unverified_claims(token);
            if let serde_json::Value::Object(map) = &mut claims {
                map.insert("credential".to_owned(), "token".into());
            } else {
                claims = serde_json::json!({ "credential": "token" });
            }
            DeniedCaller::Unverified { claims }
        }
    }
}

//! The caller of a request, resolved from a bearer token and the authoritative `users` row.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::auth::jwt::{invalid_token, TokenKind};
use crate::auth::Role;
use crate::db::{self, users};
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// How long a `users` row read for authentication may be reused. A deactivation or a bumped
/// token version made on this instance evicts the entry at once; other instances see it within
/// this window.
pub const USER_CACHE_TTL: Duration = Duration::from_secs(5);
const USER_CACHE_MAX_ENTRIES: usize = 50_000;

/// An authenticated caller. Role and organization come from the `users` row, not the token.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub role: Role,
    pub email: String,
    pub display_name: String,
    /// `exp` of the presented token (Unix seconds): long-lived connections close at this time.
    pub token_expires_at: i64,
}

/// What the request's credentials amount to.
#[derive(Debug, Clone)]
pub enum Auth {
    /// No credentials: only public fields (login, refresh) answer.
    Anonymous,
    Authenticated(Principal),
    /// Credentials were presented and refused; every guarded field answers UNAUTHENTICATED.
    Rejected,
}

impl Auth {
    pub fn principal(&self) -> AppResult<&Principal> {
        match self {
            Auth::Authenticated(p) => Ok(p),
            Auth::Anonymous => Err(AppError::Unauthenticated("authentication required".into())),
            Auth::Rejected => Err(invalid_token()),
        }
    }
}

#[derive(Clone)]
struct CachedUser {
    org_id: Uuid,
    role: Role,
    email: String,
    display_name: String,
    active: bool,
    token_version: i32,
}

/// A small time-bounded cache of the `users` fields authentication needs.
#[derive(Default)]
pub struct UserCache {
    entries: Mutex<HashMap<Uuid, (Instant, CachedUser)>>,
}

impl UserCache {
    fn get(&self, user_id: Uuid) -> Option<CachedUser> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries
            .get(&user_id)
            .filter(|(at, _)| at.elapsed() < USER_CACHE_TTL)
            .map(|(_, user)| user.clone())
    }

    fn put(&self, user_id: Uuid, user: CachedUser) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= USER_CACHE_MAX_ENTRIES {
            entries.retain(|_, (at, _)| at.elapsed() < USER_CACHE_TTL);
            if entries.len() >= USER_CACHE_MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(user_id, (Instant::now(), user));
    }

    /// Forgets a user, after a change that must bite on the very next request.
    pub fn evict(&self, user_id: Uuid) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.remove(&user_id);
    }
}

/// Verifies an access token and loads its user: refused when the user is gone, inactive, moved
/// to another organization, or its `token_version` moved on.
pub async fn authenticate(state: &AppState, token: &str) -> AppResult<Principal> {
    let claims = state.jwt.verify(token, TokenKind::Access)?;
    let user = match state.user_cache.get(claims.sub) {
        Some(user) => user,
        None => {
            let mut conn = db::conn(&state.db).await?;
            let row = users::find_for_auth(&mut conn, claims.sub)
                .await?
                .ok_or_else(invalid_token)?;
            let user = CachedUser {
                org_id: row.organization_id,
                role: row.role,
                email: row.email,
                display_name: row.display_name,
                active: row.active,
                token_version: row.token_version,
            };
            state.user_cache.put(claims.sub, user.clone());
            user
        }
    };
    if !user.active || user.token_version != claims.tv || user.org_id != claims.org {
        return Err(invalid_token());
    }
    Ok(Principal {
        user_id: claims.sub,
        org_id: user.org_id,
        role: user.role,
        email: user.email,
        display_name: user.display_name,
        token_expires_at: claims.exp,
    })
}

/// Extracts the token from an `Authorization: Bearer …` value (scheme case-insensitive).
pub fn bearer_token(header_value: &str) -> Option<&str> {
    let (scheme, token) = header_value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_extracted() {
        assert_eq!(bearer_token("Bearer abc.def"), Some("abc.def"));
        assert_eq!(bearer_token("bearer   abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("abc"), None);
    }
}

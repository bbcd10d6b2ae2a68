//! The caller of a request and what its credentials amount to, plus the short-lived cache of
//! `users` rows that [`crate::access::principal`] fills when it resolves a bearer token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::auth::api_key::KeyGrant;
use crate::auth::jwt::invalid_token;
use crate::auth::Role;
use crate::error::{AppError, AppResult};

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
    /// For an API key without expiry, far in the future.
    pub token_expires_at: i64,
    /// Set when the caller presented an API key: the key and the scopes it may use. The user
    /// fields above are then the key's creator, as the `users` row says now.
    pub api_key: Option<KeyGrant>,
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

/// The fields of a `users` row that authentication reads.
#[derive(Clone)]
pub struct CachedUser {
    pub org_id: Uuid,
    pub role: Role,
    pub email: String,
    pub display_name: String,
    pub active: bool,
    pub token_version: i32,
    /// The user's organization is suspended: every request is refused.
    pub org_suspended: bool,
}

/// A small time-bounded cache of the `users` fields authentication needs.
#[derive(Default)]
pub struct UserCache {
    entries: Mutex<HashMap<Uuid, (Instant, CachedUser)>>,
}

impl UserCache {
    pub fn get(&self, user_id: Uuid) -> Option<CachedUser> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries
            .get(&user_id)
            .filter(|(at, _)| at.elapsed() < USER_CACHE_TTL)
            .map(|(_, user)| user.clone())
    }

    pub fn put(&self, user_id: Uuid, user: CachedUser) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= USER_CACHE_MAX_ENTRIES {
            entries.retain(|_, (at, _)| at.elapsed() < USER_CACHE_TTL);
            if entries.len() >= USER_CACHE_MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(user_id, (Instant::now(), user));
    }

    /// Forgets every user of an organization (it was suspended or resumed).
    pub fn evict_org(&self, org_id: Uuid) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.retain(|_, (_, user)| user.org_id != org_id);
    }

    /// Forgets a user, after a change that must bite on the very next request.
    pub fn evict(&self, user_id: Uuid) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.remove(&user_id);
    }
}

/// Extracts the token from an `Authorization: Bearer …` value (scheme case-insensitive).
pub fn bearer_token(header_value: &str) -> Option<&str> {
    let (scheme, token) = header_value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
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

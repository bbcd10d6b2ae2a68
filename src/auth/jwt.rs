//! JSON Web Tokens: HS256 only, `exp`/`iss`/`aud`/`sub` required, a small leeway.
//!
//! Access and refresh tokens share the signing key but carry a `typ` claim that is checked on
//! every decode, so a refresh token is never accepted where an access token is expected (and
//! the reverse). The `tv` claim is the user's `token_version` at issue time; bumping the
//! version in the database revokes every token issued before.

use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Role;
use crate::config::{Settings, MIN_JWT_SECRET_BYTES};
use crate::error::{AppError, AppResult};

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECONDS: u64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Access,
    Refresh,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub org: Uuid,
    /// A hint only: the `users` row read per request is authoritative.
    pub role: String,
    pub tv: i32,
    pub typ: TokenKind,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: Uuid,
    /// Refresh tokens only: the rotation family, revoked whole when a used token comes back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fam: Option<Uuid>,
}

/// The subject of a token to mint.
#[derive(Debug, Clone, Copy)]
pub struct Subject {
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub role: Role,
    pub token_version: i32,
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Signature, algorithm, issuer and audience only: for telling a token we issued (and
    /// that was refused for its age) from a forged one, when auditing a denial.
    signature_only: Validation,
    issuer: String,
    audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// Signs download links (`reports::downloads`): derived from the token secret, so every
    /// instance that accepts the same tokens accepts the same links, and a link can never pass
    /// for a token.
    link_key: [u8; 32],
}

impl JwtKeys {
    /// Keys from the settings. A missing secret is refused in production; in development a
    /// random one is generated (tokens then die with the process) and the caller warns.
    pub fn from_settings(settings: &Settings) -> AppResult<(Self, bool)> {
        let (secret, generated) = match &settings.jwt_secret {
            Some(s) => (s.as_bytes().to_vec(), false),
            None if settings.is_production() => {
                return Err(AppError::bad_input(
                    "OMNIVOX_JWT_SECRET is required when OMNIVOX_ENV=production",
                ))
            }
            None => {
                let mut bytes = vec![0u8; 48];
                rand::thread_rng().fill_bytes(&mut bytes);
                (bytes, true)
            }
        };
        if secret.len() < MIN_JWT_SECRET_BYTES {
            return Err(AppError::bad_input(format!(
                "OMNIVOX_JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes"
            )));
        }
        Ok((
            Self::new(
                &secret,
                &settings.jwt_issuer,
                &settings.jwt_audience,
                settings.access_token_ttl,
                settings.refresh_token_ttl,
            ),
            generated,
        ))
    }

    pub fn new(secret: &[u8], issuer: &str, audience: &str, access_ttl: Duration, refresh_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        let mut signature_only = validation.clone();
        signature_only.validate_exp = false;
        signature_only.validate_nbf = false;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            signature_only,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            access_ttl,
            refresh_ttl,
            link_key: hmac_sha256(secret, b"omnivox download links v1"),
        }
    }

    /// The signature of a download link's `message` (hex).
    pub fn sign_link(&self, message: &str) -> String {
        hex::encode(hmac_sha256(&self.link_key, message.as_bytes()))
    }

    /// Whether `signature` (hex) signs `message`; compared in constant time.
    pub fn verify_link(&self, message: &str, signature: &str) -> bool {
        use hmac::Mac;
        let Ok(signature) = hex::decode(signature) else {
            return false;
        };
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.link_key) else {
            return false;
        };
        mac.update(message.as_bytes());
        mac.verify_slice(&signature).is_ok()
    }

    /// Mints a token; returns it with its claims.
    pub fn mint(
        &self,
        subject: Subject,
        kind: TokenKind,
        ttl: Duration,
        family: Option<Uuid>,
    ) -> AppResult<(String, Claims)> {
        let now = Utc::now().timestamp();
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            sub: subject.user_id,
            org: subject.org_id,
            role: subject.role.as_str().to_owned(),
            tv: subject.token_version,
            typ: kind,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(ttl),
            jti: Uuid::new_v4(),
            fam: family,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AppError::internal(format!("signing token: {e}")))?;
        Ok((token, claims))
    }

    /// Verifies signature, algorithm, `exp`, `nbf`, `iss`, `aud` and the token kind. Every
    /// failure is the same UNAUTHENTICATED: the client learns nothing about which check failed.
    pub fn verify(&self, token: &str, expected: TokenKind) -> AppResult<Claims> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
            tracing::debug!(reason = %e, "token refused");
            invalid_token()
        })?;
        if data.claims.typ != expected {
            tracing::debug!(kind = ?data.claims.typ, "token of the wrong kind refused");
            return Err(invalid_token());
        }
        Ok(data.claims)
    }
}

impl JwtKeys {
    /// The claims of a token whose signature, issuer and audience are ours, whatever its
    /// expiry or kind; None for anything else. Never authenticates anybody: it only says
    /// whether a refused token's organization can be believed (see `state::audit_queue`).
    pub fn signed_claims(&self, token: &str) -> Option<Claims> {
        decode::<Claims>(token, &self.decoding, &self.signature_only)
            .ok()
            .map(|data| data.claims)
    }
}

/// What an unverified JWT claims about itself (`org`, `sub`), read without checking anything,
/// for the audit record of a forged or malformed token. Values are cut short; a token that is
/// not even a JWT claims nothing.
pub fn unverified_claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let mut parts = token.split('.');
    let payload = match (parts.next(), parts.next()) {
        (Some(_), Some(payload)) if payload.len() <= 8_192 => payload,
        _ => return serde_json::Value::Null,
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')) else {
        return serde_json::Value::Null;
    };
    let Ok(serde_json::Value::Object(claims)) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return serde_json::Value::Null;
    };
    let mut out = serde_json::Map::new();
    for key in ["org", "sub", "role"] {
        if let Some(value) = claims.get(key).and_then(serde_json::Value::as_str) {
            out.insert(key.to_owned(), value.chars().take(64).collect::<String>().into());
        }
    }
    serde_json::Value::Object(out)
}

pub fn invalid_token() -> AppError {
    AppError::Unauthenticated("invalid or expired token".into())
}

/// HMAC-SHA256 of `message` under `key`.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::Mac;
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(key) else {
        return [0; 32];
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &[u8]) -> JwtKeys {
        JwtKeys::new(
            secret,
            "omnivox",
            "omnivox-api",
            Duration::from_secs(60),
            Duration::from_secs(600),
        )
    }

    fn subject() -> Subject {
        Subject {
            user_id: Uuid::new_v4(),
            org_id: Uuid::new_v4(),
            role: Role::Viewer,
            token_version: 0,
        }
    }

    #[test]
    fn signed_claims_tell_our_tokens_from_forged_ones() {
        let ours = keys(b"0123456789abcdefghijklmnopqrstuvwxyz");
        let theirs = keys(b"zyxwvutsrqponmlkjihgfedcba9876543210");
        let subject = subject();
        let (token, _) = ours
            .mint(subject, TokenKind::Access, Duration::from_secs(60), None)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let claims = ours.signed_claims(&token).map(|c| (c.org, c.sub));
        assert_eq!(claims, Some((subject.org_id, subject.user_id)));
        // A refresh token is still ours (the kind does not matter to the audit).
        let (refresh, _) = ours
            .mint(subject, TokenKind::Refresh, Duration::from_secs(60), None)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(ours.signed_claims(&refresh).is_some());
        assert!(theirs.signed_claims(&token).is_none(), "another key's signature");
        assert!(ours.signed_claims("not.a.token").is_none());
    }

    #[test]
    fn unverified_claims_keep_only_a_few_short_values() {
        let forger = keys(b"zyxwvutsrqponmlkjihgfedcba9876543210");
        let subject = subject();
        let (token, _) = forger
            .mint(subject, TokenKind::Access, Duration::from_secs(60), None)
            .unwrap_or_else(|e| panic!("{e:?}"));
        let claims = unverified_claims(&token);
        assert_eq!(claims["org"], subject.org_id.to_string());
        assert_eq!(claims["sub"], subject.user_id.to_string());
        assert_eq!(claims["role"], "VIEWER");
        assert!(claims.get("jti").is_none());
        assert!(unverified_claims("garbage").is_null());
        assert!(unverified_claims("a.%%%.c").is_null());
    }
}

//! One-time tokens that let a person set a password without knowing the current one: the
//! invitation sent to a new user and the password reset. 256 random bits, shown once (in an
//! e-mail, or to the inviting ADMIN when no SMTP server is configured); only the SHA-256 is
//! stored. A fast hash is enough for 256 random bits (see [`crate::auth::api_key`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Every one-time token starts with this (told apart from API keys and JWTs at a glance).
pub const PREFIX: &str = "ovt_";
const RANDOM_BYTES: usize = 32;

/// A new token from the operating system's random source.
pub fn generate() -> String {
    let mut random = [0u8; RANDOM_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut random);
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(random))
}

/// What is stored and looked up: SHA-256 of the whole token.
pub fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.trim().as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_digested() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX) && a.len() > 40);
        assert_eq!(digest(&a), digest(&format!(" {a}\n")));
        assert_ne!(digest(&a), digest(&b));
    }
}

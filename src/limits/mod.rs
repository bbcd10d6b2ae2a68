//! Rate limits: budgets charged by cost, shared by every instance through Redis.
//!
//! * GraphQL operations are charged their computed complexity (the same number
//!   `--max-complexity` caps) against the caller's budget: one per signed-in user and one per
//!   API key, sized by role (`--rate-limits`, per `--rate-limit-period`); callers without
//!   credentials share one budget per client address. Subscriptions are charged when opened.
//! * `login` and `refreshSession` have strict buckets of their own, counted in attempts, per
//!   account and per client address ([`Limiter::login`], [`Limiter::refresh`]).
//! * Telephony webhooks are charged per organization ([`Limiter::webhook`]), never per role.
//!
//! [`gcra`] is the arithmetic (pure, unit-tested); [`store`] keeps the buckets in Redis (one
//! atomic script) or, when Redis is absent or down, in memory; [`local`] lets a charge far
//! from its limit be allowed without waiting for Redis (it is still charged there, just behind
//! the answer), so that limits cost a normal client no extra round trip. Every refusal that was decided
//! passes through [`record_denial`], the one place that logs it; a repeat answered from
//! [`Limiter::recently_refused`] is only tallied for the audit trail (and held, see
//! [`Limiter::repeat_hold`]), so a client looping on its 429s does not write a log line each.
//!
//! The limiter sits below `state` (which holds it) and above `realtime` in the layers: it
//! needs the settings and a Redis client, nothing of the services.

pub mod gcra;
pub mod local;
pub mod store;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::auth::{Auth, Role};
use crate::config::{Rate, RoleBudgets, Settings};
pub use local::DecisionCounts;
pub use store::StoreStatus;

/// Which limit a bucket belongs to (also the first part of its key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// GraphQL operations, by query cost.
    Queries,
    LoginAccount,
    LoginAddress,
    RefreshAccount,
    RefreshAddress,
    /// Telephony webhooks of one organization.
    Webhooks,
    /// Concurrent subscriptions of one user (a cap, not a bucket).
    Subscriptions,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Queries => "queries",
            Limit::LoginAccount => "login_account",
            Limit::LoginAddress => "login_address",
            Limit::RefreshAccount => "refresh_account",
            Limit::RefreshAddress => "refresh_address",
            Limit::Webhooks => "webhooks",
            Limit::Subscriptions => "subscriptions",
        }
    }
}

/// One bucket: its limit, whom it belongs to, and its rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub limit: Limit,
    /// `user:<id>`, `key:<id>`, `addr:<ip>`, `account:<hash>`, `org:<id>`.
    pub subject: String,
    pub rate: Rate,
}

impl Bucket {
    fn key(&self) -> String {
        format!("{}:{}", self.limit.as_str(), self.subject)
    }
}

/// What a charge decided, in the terms of the `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub allowed: bool,
    pub cost: u64,
    /// The bucket's budget.
    pub limit: u64,
    pub remaining: u64,
    /// Until the bucket is full again.
    pub reset: Duration,
    /// When refused: until the same charge would be allowed.
    pub retry_after: Duration,
}

impl Outcome {
    /// Whole seconds to wait, at least 1 (for `Retry-After` and `retryAfterSeconds`).
    pub fn retry_after_secs(&self) -> u64 {
        ceil_secs(self.retry_after).max(1)
    }
    pub fn reset_secs(&self) -> u64 {
        ceil_secs(self.reset)
    }

    /// The same refusal `elapsed` later: both waits shortened by it (never below zero).
    pub fn later(self, elapsed: Duration) -> Self {
        Outcome {
            retry_after: self.retry_after.saturating_sub(elapsed),
            reset: self.reset.saturating_sub(elapsed),
            ..self
        }
    }
}

pub fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// The rate limiter of the process (see the module documentation).
pub struct Limiter {
    enabled: bool,
    budgets: RoleBudgets,
    period: Duration,
    login_account: Rate,
    login_address: Rate,
    refresh_account: Rate,
    refresh_address: Rate,
    webhooks: Rate,
    /// See [`Limiter::repeat_hold`].
    repeat_delay: Duration,
    store: store::Store,
    /// Requests refused lately, by (caller's bucket, request fingerprint): see
    /// [`Limiter::recently_refused`].
    refused: Mutex<HashMap<(String, u64), (Instant, Outcome)>>,
}

/// Entries of the recent-refusals table before it is swept.
const RECENT_REFUSALS_SWEEP_AT: usize = 10_000;

impl Limiter {
    pub fn new(settings: &Settings, redis: Option<redis::Client>) -> Self {
        let has_redis = redis.is_some();
        let limiter = Self {
            enabled: settings.rate_limits_enabled,
            budgets: settings.rate_limits,
            period: settings.rate_limit_period,
            login_account: settings.login_rate_per_account,
            login_address: settings.login_rate_per_address,
            refresh_account: settings.refresh_rate_per_account,
            refresh_address: settings.refresh_rate_per_address,
            webhooks: settings.webhook_rate,
            repeat_delay: settings.rate_limit_repeat_delay,
            store: store::Store::new(redis, &settings.redis_prefix),
            refused: Mutex::default(),
        };
        if !limiter.enabled {
            tracing::warn!("rate limits are off (--rate-limits-enabled false)");
        } else if has_redis {
            tracing::info!("rate limits: shared across instances through Redis (in memory while Redis is down)");
        } else {
            tracing::info!("rate limits: REDIS_URL is not set, buckets are kept in memory (per instance)");
        }
        limiter
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Where charges are decided right now (for `/readyz`).
    pub fn status(&self) -> StoreStatus {
        if self.enabled {
            self.store.status()
        } else {
            StoreStatus::Off
        }
    }

    /// Where this instance's charges were decided since it started (for `/metrics`).
    pub fn decisions(&self) -> DecisionCounts {
        self.store.decisions()
    }

    /// The query-cost budget of a role (None: a caller without credentials).
    pub fn budget(&self, role: Option<Role>) -> u64 {
        let b = &self.budgets;
        match role {
            None => b.anonymous,
            Some(Role::Viewer) => b.viewer,
            Some(Role::Agent) => b.agent,
            Some(Role::Supervisor) => b.supervisor,
            Some(Role::Admin) => b.admin,
            Some(Role::SuperAdmin) => b.super_admin,
        }
    }

    /// The query-cost bucket of a request: its user's, its API key's, or (no credentials, or
    /// refused ones) its client address's.
    pub fn query_bucket(&self, auth: &Auth, client: Option<IpAddr>) -> Bucket {
        let (subject, role) = match auth {
            Auth::Authenticated(principal) => match &principal.api_key {
                Some(grant) => (format!("key:{}", grant.key_id), Some(principal.role)),
                None => (format!("user:{}", principal.user_id), Some(principal.role)),
            },
            _ => (address_subject(client), None),
        };
        Bucket {
            limit: Limit::Queries,
            subject,
            rate: Rate::new(self.budget(role), self.period),
        }
    }

    /// Charges `cost` units to `bucket`. Limits off: always allowed, nothing stored.
    pub async fn charge(&self, bucket: &Bucket, cost: u64) -> Outcome {
        let rate = bucket.rate;
        if !self.enabled {
            return Outcome {
                allowed: true,
                cost,
                limit: rate.count,
                remaining: rate.count,
                reset: Duration::ZERO,
                retry_after: Duration::ZERO,
            };
        }
        let increment = gcra::increment_us(rate, cost);
        let decision = self.store.charge(&bucket.key(), rate, increment).await;
        Outcome {
            allowed: decision.allowed,
            cost,
            limit: rate.count,
            remaining: gcra::remaining(rate, decision.used_us),
            reset: micros(decision.used_us),
            retry_after: micros(decision.retry_after_us),
        }
    }

    /// A client hammering a request it was refused is answered from here until the refusal's
    /// `Retry-After` has passed, without parsing, validating or asking Redis again: the same
    /// document with the same variables has the same cost, and a bucket's TAT only moves
    /// forward, so the answer could only be the same. (`fingerprint` hashes the document,
    /// variables, operation name and persisted-query hash.) Per instance; another instance
    /// learns it from Redis on its first refusal.
    pub fn recently_refused(&self, bucket: &Bucket, fingerprint: u64) -> Option<Outcome> {
        let now = Instant::now();
        let refused = self.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (until, outcome) = refused.get(&(bucket.subject.clone(), fingerprint))?;
        let left = until.checked_duration_since(now).filter(|left| !left.is_zero())?;
        Some(Outcome {
            retry_after: left,
            reset: outcome.reset.saturating_sub(outcome.retry_after.saturating_sub(left)),
            ..*outcome
        })
    }

    /// How long to hold the answer to a request [`Limiter::recently_refused`] refuses again
    /// (`--rate-limit-repeat-delay`, cut to what is left of the wait). Such a client ignored
    /// `Retry-After`: answering it at once would let one connection cost the server a request
    /// per round trip, as fast as the client can loop, and take the CPU from everyone else. A
    /// held answer costs a timer, and the loop runs at one request per delay instead.
    pub fn repeat_hold(&self, refusal: &Outcome) -> Duration {
        refusal.retry_after.min(self.repeat_delay)
    }

    /// Remembers a refusal of the cost charge (see [`Limiter::recently_refused`]).
    pub fn remember_refusal(&self, bucket: &Bucket, fingerprint: u64, outcome: Outcome) {
        let now = Instant::now();
        let mut refused = self.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if refused.len() >= RECENT_REFUSALS_SWEEP_AT {
            refused.retain(|_, (until, _)| *until > now);
            if refused.len() >= RECENT_REFUSALS_SWEEP_AT {
                refused.clear();
            }
        }
        refused.insert(
            (bucket.subject.clone(), fingerprint),
            (now + outcome.retry_after, outcome),
        );
    }

    /// One `login` attempt for `email` from `client`: charged to the account's bucket and the
    /// address's; the first refusal is returned (with its bucket).
    pub async fn login(&self, email: &str, client: Option<IpAddr>) -> Result<(), (Bucket, Outcome)> {
        let buckets = [
            Bucket {
                limit: Limit::LoginAddress,
                subject: address_subject(client),
                rate: self.login_address,
            },
            Bucket {
                limit: Limit::LoginAccount,
                subject: account_subject(email),
                rate: self.login_account,
            },
        ];
        self.charge_all(&buckets).await
    }

    /// One `refreshSession` call from `client`, for the user the token names (when it is a
    /// valid refresh token at all).
    pub async fn refresh(&self, user: Option<Uuid>, client: Option<IpAddr>) -> Result<(), (Bucket, Outcome)> {
        let mut buckets = vec![Bucket {
            limit: Limit::RefreshAddress,
            subject: address_subject(client),
            rate: self.refresh_address,
        }];
        if let Some(user) = user {
            buckets.push(Bucket {
                limit: Limit::RefreshAccount,
                subject: format!("user:{user}"),
                rate: self.refresh_account,
            });
        }
        self.charge_all(&buckets).await
    }

    /// One telephony webhook for `organization`.
    pub async fn webhook(&self, organization: Uuid) -> Result<(), (Bucket, Outcome)> {
        let bucket = Bucket {
            limit: Limit::Webhooks,
            subject: format!("org:{organization}"),
            rate: self.webhooks,
        };
        self.charge_all(std::slice::from_ref(&bucket)).await
    }

    async fn charge_all(&self, buckets: &[Bucket]) -> Result<(), (Bucket, Outcome)> {
        for bucket in buckets {
            let outcome = self.charge(bucket, 1).await;
            if !outcome.allowed {
                return Err((bucket.clone(), outcome));
            }
        }
        Ok(())
    }
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(us.max(0).unsigned_abs())
}

/// The subject of a client address (`addr:unknown` when the server was not told the peer).
pub fn address_subject(client: Option<IpAddr>) -> String {
    match client {
        Some(address) => format!("addr:{address}"),
        None => "addr:unknown".to_owned(),
    }
}

/// The subject of an account named by e-mail: a hash, so bucket keys hold no address.
fn account_subject(email: &str) -> String {
    let normalized = email.trim().to_lowercase();
    let digest = Sha256::digest(normalized.as_bytes());
    format!("account:{}", hex::encode(&digest[..12]))
}

/// One GraphQL request's charge, shared between the schema (which charges it) and the
/// transport (which turns it into `RateLimit-*` headers, or a 429).
#[derive(Debug)]
pub struct Meter {
    pub bucket: Bucket,
    pub client: Option<IpAddr>,
    state: Mutex<MeterState>,
}

#[derive(Debug, Default, Clone, Copy)]
struct MeterState {
    charged: Option<Outcome>,
    refused: Option<Outcome>,
}

impl Meter {
    pub fn new(bucket: Bucket, client: Option<IpAddr>) -> Self {
        Self {
            bucket,
            client,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MeterState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records the request's query-cost charge.
    pub fn charged(&self, outcome: Outcome) {
        let mut state = self.lock();
        state.charged = Some(outcome);
        if !outcome.allowed {
            state.refused = Some(outcome);
        }
    }

    /// Records a refusal by another bucket (login, refresh): the answer is a 429 too.
    pub fn refused(&self, outcome: Outcome) {
        self.lock().refused = Some(outcome);
    }

    /// The query-cost charge, when one was made.
    pub fn charge(&self) -> Option<Outcome> {
        self.lock().charged
    }

    /// The refusal, when the request was refused as RATE_LIMITED.
    pub fn refusal(&self) -> Option<Outcome> {
        self.lock().refused
    }
}

/// A refused access, as [`record_denial`] reports it.
#[derive(Debug, Clone)]
pub struct Denial<'a> {
    pub limit: Limit,
    /// The bucket's subject (`user:…`, `addr:…`, `org:…`).
    pub subject: &'a str,
    pub client: Option<IpAddr>,
    pub request_id: Option<&'a str>,
    pub cost: u64,
    pub retry_after: Duration,
}

/// Every refusal decided by a charge passes here, once, and is logged (the audit record is
/// queued next to it, by `AuditQueue::rate_limited`). Repeats answered from the recent
/// refusals are not: they are tallied (`AuditQueue::rate_limited_again`).
pub fn record_denial(denial: &Denial<'_>) {
    tracing::warn!(
        limit = denial.limit.as_str(),
        subject = denial.subject,
        client = ?denial.client,
        request_id = denial.request_id.unwrap_or("-"),
        cost = denial.cost,
        retry_after_ms = u64::try_from(denial.retry_after.as_millis()).unwrap_or(u64::MAX),
        "rate limited"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_subjects_ignore_case_and_hide_the_address() {
        let a = account_subject("Ann@Example.test ");
        assert_eq!(a, account_subject("ann@example.test"));
        assert!(!a.contains("example"));
        assert_ne!(a, account_subject("bob@example.test"));
    }

    #[test]
    fn a_refusal_later_has_less_to_wait_and_never_below_zero() {
        let refusal = Outcome {
            allowed: false,
            cost: 450,
            limit: 10_000,
            remaining: 120,
            reset: Duration::from_millis(59_000),
            retry_after: Duration::from_millis(2_300),
        };
        let later = refusal.later(Duration::from_millis(1_000));
        assert_eq!(later.retry_after, Duration::from_millis(1_300));
        assert_eq!(later.reset, Duration::from_millis(58_000));
        assert_eq!(
            (later.cost, later.limit, later.remaining, later.allowed),
            (450, 10_000, 120, false)
        );
        let over = refusal.later(Duration::from_secs(90));
        assert_eq!((over.retry_after, over.reset), (Duration::ZERO, Duration::ZERO));
        assert_eq!(over.retry_after_secs(), 1, "Retry-After says at least one second");
    }

    #[test]
    fn repeated_refusals_are_held_for_the_delay_or_what_is_left_of_the_wait() {
        let mut settings = Settings::for_database("postgres://db.internal/omnivox");
        settings.rate_limit_repeat_delay = Duration::from_secs(1);
        let limiter = Limiter::new(&settings, None);
        let refusal = |wait_ms| Outcome {
            allowed: false,
            cost: 1,
            limit: 1,
            remaining: 0,
            reset: Duration::from_millis(wait_ms),
            retry_after: Duration::from_millis(wait_ms),
        };
        assert_eq!(limiter.repeat_hold(&refusal(2_700)), Duration::from_secs(1));
        assert_eq!(limiter.repeat_hold(&refusal(300)), Duration::from_millis(300));
        settings.rate_limit_repeat_delay = Duration::ZERO;
        let at_once = Limiter::new(&settings, None);
        assert_eq!(at_once.repeat_hold(&refusal(2_700)), Duration::ZERO);
    }

    #[test]
    fn retry_after_is_rounded_up_to_whole_seconds() {
        let outcome = Outcome {
            allowed: false,
            cost: 1,
            limit: 1,
            remaining: 0,
            reset: Duration::from_millis(1_200),
            retry_after: Duration::from_millis(1),
        };
        assert_eq!(outcome.retry_after_secs(), 1);
        assert_eq!(outcome.reset_secs(), 2);
        assert_eq!(ceil_secs(Duration::from_secs(3)), 3);
    }
}

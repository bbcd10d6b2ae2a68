//! Audit records that have no transaction of their own to join — denied accesses and
//! sensitive reads — written to the audit trail without slowing the request that caused them.
//!
//! Changes are audited inside their own transaction (`audit::record`). A denial or a read
//! changes nothing, so there is no transaction to join, and writing one synchronously would
//! put a commit (and a chain lock, contended under a flood) on the request path.
//!
//! Every FORBIDDEN, every UNAUTHENTICATED for a request that presented credentials, and every
//! RATE_LIMITED leaves one audit record (per request, not per failed field). The request path
//! only calls [`AuditQueue::record`], which puts the denial on a bounded queue and returns at
//! once: it never waits for the database, nor for room in the queue. One background task
//! takes whatever is queued (up to [`MAX_BATCH`]) and appends it to the organizations' hash
//! chains in ONE transaction ([`audit::record_many`], each chain's advisory lock taken once),
//! so a flood of denials costs one commit per batch rather than one per request.
//!
//! A client that keeps sending a request it was just refused as RATE_LIMITED (answered from
//! the limiter's table of recent refusals, see `limits::Limiter::recently_refused`) is not
//! written one record per request: its first refusal has a record of its own, and the repeats
//! are tallied in memory ([`AuditQueue::rate_limited_again`]) and written as one record per
//! caller and [`REPEATS_FLUSH_EVERY`] (`details.extra.repeated`, with the first and last
//! request ids and times). A tight refusal loop would otherwise turn every cheap 429 into a row
//! in the chain: thousands of inserts a second on the database the well-behaved clients read.
//! Every refused request is still counted in the trail; the repeats are neither logged one by
//! one (the first refusal is) nor dropped while the tally has room.
//!
//! When the queue is full (a flood the database cannot keep up with), the new denial is
//! dropped, counted in `omnivox_audit_denials_total{outcome="dropped"}` and logged: an attacker
//! must not be able to turn denials into unbounded memory or into latency for everybody else,
//! and the count still shows that the flood happened.
//!
//! Durability: each queued denial (and each caller's tally of repeats) holds a unit of work in
//! flight ([`Lifecycle::work`](crate::state::Lifecycle::work)) until its batch committed, so a
//! graceful shutdown (SIGTERM, Ctrl-C: `omnivox serve` drains until no work is left) writes
//! every queued denial before the process exits (tallies within [`REPEATS_FLUSH_EVERY`]). A crash loses at most what was queued and not
//! yet committed: the batch being written plus the queue behind it — normally a few
//! milliseconds' worth. A batch that fails is retried a few times with backoff, then dropped
//! with an error in the log and `outcome="failed"`.
//!
//! Who a denial is attributed to: a verified caller (token or API key) goes to its
//! organization's chain with the user as actor. A token that was refused is only trusted as
//! far as its signature: when the signature is ours (the token expired, was revoked, or its
//! user was deactivated) its organization and subject are recorded; a forged or malformed
//! credential names nobody trustworthy, so it goes to the platform chain (no organization)
//! with the claims it asserted marked as unverified — writing it into the chain of whatever
//! organization it claims would let anyone fill any organization's audit log.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use diesel_async::AsyncConnection;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::audit::{self, Actor, AuditEvent};
use crate::auth::Principal;
use crate::db::tenancy::SystemPool;
use crate::error::{AppResult, ErrorCode};
use crate::limits;
use crate::state::{Lifecycle, WorkGuard};

/// Denials waiting to be written; beyond that, new ones are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 8_192;
/// Most denials in one transaction.
pub const MAX_BATCH: usize = 512;
/// Attempts at writing one batch before it is given up.
const ATTEMPTS: u32 = 4;
/// How often the tallies of repeated refusals are written (one record per caller each time).
pub const REPEATS_FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Callers with a tally of repeats at once; beyond, new callers' repeats are dropped (and
/// counted) until the next flush.
const MAX_TALLIES: usize = QUEUE_CAPACITY;

/// Who was denied, as far as the credentials can be trusted.
#[derive(Debug, Clone)]
pub enum DeniedCaller {
    /// A verified caller: a valid token or API key.
    Principal {
        organization_id: Uuid,
        actor: Actor,
        api_key_id: Option<Uuid>,
    },
    /// A token whose signature is ours but that was refused (expired, revoked, user
    /// deactivated): its organization and subject are what we once issued.
    RefusedToken { organization_id: Uuid, user_id: Uuid },
    /// Credentials that name nobody trustworthy (forged signature, malformed, unknown API
    /// key), or no credentials (a rate-limited login by address). Recorded in the platform
    /// chain; `claims` are what the credentials asserted, unverified.
    Unverified { claims: Value },
}

impl DeniedCaller {
    pub fn of(principal: &Principal) -> Self {
        DeniedCaller::Principal {
            organization_id: principal.org_id,
            actor: Actor::of(principal),
            api_key_id: principal.api_key.as_ref().map(|grant| grant.key_id),
        }
    }
}

/// One denied access.
#[derive(Debug, Clone)]
pub struct Denial {
    pub caller: DeniedCaller,
    /// FORBIDDEN, UNAUTHENTICATED or RATE_LIMITED.
    pub code: ErrorCode,
    /// What was attempted: `POST /graphql`, `GET /exports/{runId}`, `ws subscribe`, `login`…
    pub surface: String,
    /// The GraphQL operation name, when there was one.
    pub operation: Option<String>,
    /// The fields (GraphQL paths) that were refused, when known.
    pub paths: Vec<String>,
    /// The message the client was given.
    pub reason: String,
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
    /// Anything else worth keeping (the rate limiter's bucket and cost, say).
    pub extra: Value,
}

impl Denial {
    pub fn new(caller: DeniedCaller, code: ErrorCode, surface: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            caller,
            code,
            surface: surface.into(),
            operation: None,
            paths: Vec::new(),
            reason: reason.into(),
            request_id: None,
            client_addr: None,
            extra: Value::Null,
        }
    }

    /// The audit action of a denial with this code.
    pub fn action(code: ErrorCode) -> &'static str {
        match code {
            ErrorCode::Forbidden => "access.forbidden",
            ErrorCode::RateLimited => "access.rate_limited",
            _ => "access.unauthenticated",
        }
    }

    fn into_event(self) -> AuditEvent {
        let target = self.operation.clone().unwrap_or_else(|| self.surface.clone());
        let mut details = json!({
            "code": self.code.as_str(),
            "surface": self.surface,
            "reason": self.reason,
        });
        let (organization_id, actor) = match self.caller {
            DeniedCaller::Principal {
                organization_id,
                actor,
                api_key_id,
            } => {
                if let Some(key) = api_key_id {
                    details["apiKeyId"] = json!(key);
                }
                (Some(organization_id), Some(actor))
            }
            DeniedCaller::RefusedToken {
                organization_id,
                user_id,
            } => {
                // The user as the token named it; the users row may say otherwise now.
                details["tokenSubject"] = json!(user_id);
                (Some(organization_id), None)
            }
            DeniedCaller::Unverified { claims } => {
                if !claims.is_null() {
                    details["unverifiedClaims"] = claims;
                }
                (None, None)
            }
        };
        if let Some(operation) = self.operation {
            details["operation"] = json!(operation);
        }
        if !self.paths.is_empty() {
            details["paths"] = json!(self.paths);
        }
        if !self.extra.is_null() {
            details["extra"] = self.extra;
        }
        AuditEvent::new(organization_id, actor, Self::action(self.code))
            .target("operation", target)
            .details(details)
            .request_id(self.request_id)
            .client_addr(self.client_addr)
    }
}

struct Queued {
    event: AuditEvent,
    _work: WorkGuard,
}

/// The repeated refusals of one caller since the last flush (see
/// [`AuditQueue::rate_limited_again`]).
struct Tally {
    caller: DeniedCaller,
    surface: String,
    limit: &'static str,
    subject: String,
    client_addr: Option<String>,
    cost: u64,
    repeated: u64,
    first_request_id: Option<String>,
    last_request_id: Option<String>,
    first_at: DateTime<Utc>,
    last_at: DateTime<Utc>,
    /// The wait the last repeat was told.
    retry_after_ms: u64,
    work: WorkGuard,
}

impl Tally {
    fn into_queued(self) -> Queued {
        let mut denial = Denial::new(
            self.caller,
            ErrorCode::RateLimited,
            self.surface,
            format!(
                "rate limited ({}): the same request refused again {} time(s) before its Retry-After",
                self.limit, self.repeated
            ),
        );
        denial.request_id = self.first_request_id;
        denial.client_addr = self.client_addr;
        denial.extra = json!({
            "limit": self.limit,
            "subject": self.subject,
            "cost": self.cost,
            "retryAfterMs": self.retry_after_ms,
            "repeated": self.repeated,
            "firstAt": self.first_at,
            "lastAt": self.last_at,
            "lastRequestId": self.last_request_id,
        });
        Queued {
            event: denial.into_event(),
            _work: self.work,
        }
    }
}

/// Tallies by caller: surface, limit, bucket subject and client address.
type Tallies = Arc<Mutex<HashMap<String, Tally>>>;

fn lock(tallies: &Tallies) -> std::sync::MutexGuard<'_, HashMap<String, Tally>> {
    tallies.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The queue of denials and sensitive reads, and its writer. Cheap to share (`Arc`); the writer starts with the
/// first denial (it needs a runtime) and stops when the log is dropped.
pub struct AuditQueue {
    db: SystemPool,
    lifecycle: Lifecycle,
    sender: OnceLock<mpsc::Sender<Queued>>,
    tallies: Tallies,
    dropped: AtomicU64,
}

impl AuditQueue {
    pub fn new(db: SystemPool, lifecycle: Lifecycle) -> Self {
        Self {
            db,
            lifecycle,
            sender: OnceLock::new(),
            tallies: Tallies::default(),
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues one denied access for the audit trail. Never waits: returns false when the
    /// denial was dropped because the queue is full (or there is no runtime to write it).
    /// This is the one entry point for every surface (GraphQL, plain HTTP, WebSocket, the rate
    /// limiter).
    pub fn record(&self, denial: Denial) -> bool {
        self.enqueue(denial.into_event())
    }

    fn enqueue(&self, event: AuditEvent) -> bool {
        let Some(sender) = self.sender() else {
            self.count_dropped();
            return false;
        };
        let queued = Queued {
            event,
            _work: self.lifecycle.work(),
        };
        match sender.try_send(queued) {
            Ok(()) => true,
            Err(_) => {
                self.count_dropped();
                false
            }
        }
    }

    /// A request refused as RATE_LIMITED: logged by [`limits::record_denial`] and queued for
    /// the audit trail, with the bucket, the cost and the wait in the record.
    pub fn rate_limited(&self, caller: DeniedCaller, surface: &str, refusal: &limits::Denial<'_>) -> bool {
        limits::record_denial(refusal);
        let mut denial = Denial::new(
            caller,
            ErrorCode::RateLimited,
            surface,
            format!(
                "rate limited ({}): retry after {} s",
                refusal.limit.as_str(),
                refusal.retry_after.as_secs_f64().ceil()
            ),
        );
        denial.request_id = refusal.request_id.map(str::to_owned);
        denial.client_addr = refusal.client.map(|ip| ip.to_string());
        denial.extra = json!({
            "limit": refusal.limit.as_str(),
            "subject": refusal.subject,
            "cost": refusal.cost,
            "retryAfterMs": u64::try_from(refusal.retry_after.as_millis()).unwrap_or(u64::MAX),
        });
        self.record(denial)
    }

    /// A request refused again before the `Retry-After` of the same request's refusal (the
    /// limiter answered it from its recent refusals): added to its caller's tally, which the
    /// writer turns into one record every [`REPEATS_FLUSH_EVERY`]. Neither logged nor queued
    /// one by one: that is what makes a tight refusal loop cheap for the server. Never waits;
    /// false when dropped (too many callers tallied at once, or no runtime).
    pub fn rate_limited_again(&self, caller: DeniedCaller, surface: &str, refusal: &limits::Denial<'_>) -> bool {
        if self.sender().is_none() {
            self.count_dropped();
            return false;
        }
        let client_addr = refusal.client.map(|ip| ip.to_string());
        let key = format!(
            "{surface}\u{1f}{}\u{1f}{}\u{1f}{}",
            refusal.limit.as_str(),
            refusal.subject,
            client_addr.as_deref().unwrap_or("")
        );
        let now = Utc::now();
        let retry_after_ms = u64::try_from(refusal.retry_after.as_millis()).unwrap_or(u64::MAX);
        let request_id = refusal.request_id.map(str::to_owned);
        let mut tallies = lock(&self.tallies);
        if let Some(tally) = tallies.get_mut(&key) {
            tally.repeated += 1;
            tally.last_at = now;
            tally.last_request_id = request_id;
            tally.retry_after_ms = retry_after_ms;
            return true;
        }
        if tallies.len() >= MAX_TALLIES {
            drop(tallies);
            self.count_dropped();
            return false;
        }
        tallies.insert(
            key,
            Tally {
                caller,
                surface: surface.to_owned(),
                limit: refusal.limit.as_str(),
                subject: refusal.subject.to_owned(),
                client_addr,
                cost: refusal.cost,
                repeated: 1,
                first_request_id: request_id.clone(),
                last_request_id: request_id,
                first_at: now,
                last_at: now,
                retry_after_ms,
                work: self.lifecycle.work(),
            },
        );
        true
    }

    /// Queues the audit record of a sensitive read (unmasked customer numbers, another agent's
    /// performance), with the same guarantees as a denial. Never waits; false when dropped.
    pub fn record_read(&self, event: AuditEvent) -> bool {
        self.enqueue(event)
    }

    /// Records dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn count_dropped(&self) {
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        crate::telemetry::metrics::audit_denials("dropped", 1);
        // Once per power of two: a flood is visible in the log without flooding it.
        if dropped.is_power_of_two() {
            tracing::warn!(dropped, "audit: queue full; records dropped (counted in metrics)");
        }
    }

    fn sender(&self) -> Option<&mpsc::Sender<Queued>> {
        if let Some(sender) = self.sender.get() {
            return Some(sender);
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        Some(self.sender.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
            runtime.spawn(writer(self.db.clone(), receiver, self.tallies.clone()));
            sender
        }))
    }
}

async fn writer(db: SystemPool, mut receiver: mpsc::Receiver<Queued>, tallies: Tallies) {
    let mut batch: Vec<Queued> = Vec::with_capacity(MAX_BATCH);
    let mut flush = tokio::time::interval(REPEATS_FLUSH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Takes whatever is queued (waiting only while nothing is): batches grow by themselves
        // while the previous one is being written. `recv_many` is cancel safe, so a tick of the
        // tallies' clock loses nothing.
        let open = tokio::select! {
            received = receiver.recv_many(&mut batch, MAX_BATCH) => received > 0,
            _ = flush.tick() => {
                batch.extend(lock(&tallies).drain().map(|(_, tally)| tally.into_queued()));
                true
            }
        };
        if !open {
            // The queue is gone (the application state was dropped): the last tallies too.
            batch.extend(lock(&tallies).drain().map(|(_, tally)| tally.into_queued()));
        }
        if !batch.is_empty() {
            write_batch(&db, &batch).await;
            // Releases the work guards: a draining process may exit now.
            batch.clear();
        }
        if !open {
            break;
        }
    }
}

/// Writes one batch, retrying a few times with backoff before giving it up.
async fn write_batch(db: &SystemPool, batch: &[Queued]) {
    let events: Vec<AuditEvent> = batch.iter().map(|queued| queued.event.clone()).collect();
    let count = u64::try_from(events.len()).unwrap_or(u64::MAX);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match write(db, events.clone()).await {
            Ok(()) => {
                crate::telemetry::metrics::audit_denials("written", count);
                return;
            }
            Err(error) if attempt < ATTEMPTS => {
                tracing::warn!(
                    attempt,
                    code = error.code().as_str(),
                    "audit: writing denials failed; retrying"
                );
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
            Err(error) => {
                tracing::error!(
                    denials = count,
                    error = %error.operator_message(),
                    "audit: denials could not be written and are lost"
                );
                crate::telemetry::metrics::audit_denials("failed", count);
                return;
            }
        }
    }
}

async fn write(db: &SystemPool, events: Vec<AuditEvent>) -> AppResult<()> {
    let mut conn = db.get().await?;
    conn.transaction(async |conn| audit::record_many(conn, events).await)
        .await
}

/// Shared handle type held by the application state.
pub type SharedAuditQueue = Arc<AuditQueue>;

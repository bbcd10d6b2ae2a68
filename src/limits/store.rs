//! Where the buckets live: Redis, shared by every instance, through one atomic Lua script; or
//! this process's memory when Redis is not configured or not answering.
//!
//! Each charge is one `EVALSHA` (the `redis` crate's `Script` loads the script on a
//! `NOSCRIPT` reply): the script reads the bucket's TAT, decides with the Redis server's clock
//! (so instances with skewed clocks agree) and stores the new TAT with an expiry of the time
//! until the bucket is full again — an idle caller costs no memory.
//!
//! A charge far from the limit does not wait for that answer: see [`super::local`] (the charge
//! is allowed at once and sent to Redis behind the request's answer, *forced*, so that Redis
//! counts it even in the rare case it finds the budget spent by other instances meanwhile).
//!
//! When Redis fails (an error or no answer within [`REDIS_TIMEOUT`]) the charge is decided in
//! memory instead and Redis is left alone for [`REDIS_RETRY_AFTER`], so an outage adds no
//! latency to requests. Limits then hold per instance (each instance allows the budget), which
//! is logged once per outage and reported by `/readyz`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::OnceCell;

use super::gcra::{self, Decision};
use super::local::{DecisionCounts, Decisions, View};
use crate::config::Rate;

/// How long one charge may wait for Redis before it is decided in memory.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// After a Redis failure, how long charges stay in memory before Redis is tried again.
pub const REDIS_RETRY_AFTER: Duration = Duration::from_secs(5);
/// The in-memory table, and the views of Redis buckets, are swept of idle entries when they
/// grow past this many.
const SWEEP_AT: usize = 10_000;

/// KEYS[1]: the bucket; ARGV[1]: the TAT increment (µs); ARGV[2]: the period (µs); ARGV[3]: 1
/// to force the charge (one this instance already allowed, see `super::local`), else 0.
/// Returns {outcome, µs until the bucket is full again, µs to wait when refused}; the outcome
/// is 1 allowed, 0 refused (nothing charged), 2 forced past the budget (charged: the caller
/// waits until it is repaid). The same steps as `gcra::decide`. The TAT is written with
/// `%.0f`: Lua's default number formatting keeps 14 digits, fewer than a time in microseconds
/// has.
const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local increment = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new_tat = tat + increment
local used = new_tat - now
local outcome = 1
if used > period then
  if ARGV[3] ~= '1' then
    return {0, tat - now, used - period}
  end
  outcome = 2
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil(used / 1000) + 1)
return {outcome, used, 0}
";

/// Where the charges of this instance are decided right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreStatus {
    /// Limits are off (`--rate-limits-enabled false`).
    Off,
    /// Shared through Redis.
    Redis,
    /// In memory: Redis is not configured.
    MemoryNoRedis,
    /// In memory: Redis failed recently.
    MemoryRedisDown,
}

impl StoreStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreStatus::Off => "off",
            StoreStatus::Redis => "redis",
            StoreStatus::MemoryNoRedis | StoreStatus::MemoryRedisDown => "memory",
        }
    }
}

struct RedisStore {
    client: redis::Client,
    connection: OnceCell<redis::aio::ConnectionManager>,
    script: redis::Script,
    /// Set while Redis is considered down: charges go to memory until then.
    down_until: Mutex<Option<Instant>>,
    /// What Redis last said of each bucket this instance charged lately (see `super::local`).
    views: Mutex<HashMap<String, View>>,
    decisions: Arc<Decisions>,
    clock: Clock,
}

/// Microseconds since the store was made: the in-memory buckets' and the views' time.
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now(self) -> i64 {
        i64::try_from(self.0.elapsed().as_micros()).unwrap_or(i64::MAX / 2)
    }
}

/// The buckets of one deployment.
pub struct Store {
    prefix: String,
    redis: Option<Arc<RedisStore>>,
    memory: Mutex<HashMap<String, i64>>,
    clock: Clock,
    decisions: Arc<Decisions>,
}

impl Store {
    pub fn new(redis: Option<redis::Client>, prefix: &str) -> Self {
        let clock = Clock(Instant::now());
        let decisions = Arc::new(Decisions::default());
        Self {
            prefix: format!("{prefix}rl:"),
            redis: redis.map(|client| {
                Arc::new(RedisStore {
                    client,
                    connection: OnceCell::new(),
                    script: redis::Script::new(GCRA_SCRIPT),
                    down_until: Mutex::new(None),
                    views: Mutex::default(),
                    decisions: Arc::clone(&decisions),
                    clock,
                })
            }),
            memory: Mutex::default(),
            clock,
            decisions,
        }
    }

    /// Where this instance's charges were decided since it started.
    pub fn decisions(&self) -> DecisionCounts {
        self.decisions.counts()
    }

    pub fn status(&self) -> StoreStatus {
        match &self.redis {
            None => StoreStatus::MemoryNoRedis,
            Some(redis) if redis.is_down() => StoreStatus::MemoryRedisDown,
            Some(_) => StoreStatus::Redis,
        }
    }

    /// Charges `increment` µs (see [`gcra::increment_us`]) to bucket `key`.
    pub async fn charge(&self, key: &str, rate: Rate, increment: i64) -> Decision {
        let period = gcra::period_us(rate);
        if let Some(redis) = self.redis.as_ref().filter(|r| !r.is_down()) {
            let full_key = format!("{}{key}", self.prefix);
            if let Some(decision) = redis.try_allow_here(&full_key, increment, period) {
                self.decisions.local();
                Arc::clone(redis).charge_behind(full_key, increment, period);
                return decision;
            }
            let sent = self.clock.now();
            match tokio::time::timeout(REDIS_TIMEOUT, redis.charge(&full_key, increment, period, false)).await {
                Ok(Ok(decision)) => {
                    redis.mark_up();
                    redis.learn(&full_key, sent, decision.used_us);
                    self.decisions.redis();
                    return decision;
                }
                Ok(Err(error)) => redis.mark_down(&error.to_string()),
                Err(_) => redis.mark_down("no answer in time"),
            }
        }
        self.decisions.memory();
        self.charge_in_memory(key, increment, period)
    }

    fn charge_in_memory(&self, key: &str, increment: i64, period: i64) -> Decision {
        let now = self.clock.now();
        let mut buckets = self.memory.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= SWEEP_AT {
            buckets.retain(|_, tat| *tat > now);
        }
        let decision = gcra::decide(buckets.get(key).copied(), now, increment, period);
        if decision.allowed {
            buckets.insert(key.to_owned(), decision.new_tat);
        }
        decision
    }
}

impl RedisStore {
    fn is_down(&self) -> bool {
        let down = self
            .down_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        down.is_some_and(|until| Instant::now() < until)
    }

    fn mark_down(&self, why: &str) {
        let mut down = self
            .down_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if down.is_none() {
            tracing::warn!(
                error = why,
                "rate limits: Redis is not answering; limits hold per instance (in memory) until it is back"
            );
        }
        *down = Some(Instant::now() + REDIS_RETRY_AFTER);
    }

    fn mark_up(&self) {
        let mut down = self
            .down_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if down.take().is_some() {
            tracing::info!("rate limits: Redis answers again; limits are shared across instances");
        }
    }

    /// Allows the charge without asking Redis when this instance's view of the bucket permits
    /// (see `super::local`); the charge is then pending until [`RedisStore::charge_behind`]
    /// settles it.
    fn try_allow_here(&self, key: &str, increment: i64, period: i64) -> Option<Decision> {
        let now = self.clock.now();
        let mut views = self.views.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        views.get_mut(key)?.try_allow(now, increment, period)
    }

    /// Remembers what Redis answered about `key` to a script sent at `sent`. The TAT is dated
    /// from the sending, a little before Redis read its clock: the view errs by at most a round
    /// trip of refill on the generous side, and never counts a unit twice.
    fn learn(&self, key: &str, sent: i64, used_us: i64) {
        let mut views = self.views.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if views.len() >= SWEEP_AT {
            let now = self.clock.now();
            views.retain(|_, view| view.is_live(now));
        }
        views
            .entry(key.to_owned())
            .and_modify(|view| view.learn(sent, used_us))
            .or_insert_with(|| View::learnt(sent, used_us));
    }

    /// Sends a charge already allowed here to Redis, forced (see `GCRA_SCRIPT`), without
    /// holding up the request; its answer updates the view. A failure takes charges to memory
    /// like any other (the charge itself is then lost to the shared budget, as every charge
    /// decided in memory during an outage is).
    fn charge_behind(self: Arc<Self>, key: String, increment: i64, period: i64) {
        tokio::spawn(async move {
            let sent = self.clock.now();
            let answer = tokio::time::timeout(REDIS_TIMEOUT, self.charge(&key, increment, period, true)).await;
            {
                let mut views = self.views.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(view) = views.get_mut(&key) {
                    view.settle(increment);
                    if let Ok(Ok(decision)) = &answer {
                        view.learn(sent, decision.used_us);
                    }
                }
            }
            match answer {
                Ok(Ok(decision)) => {
                    if !decision.allowed {
                        self.decisions.overdrawn();
                        tracing::debug!(
                            bucket = %key,
                            "rate limits: a charge allowed here found the budget spent by other instances; charged past it"
                        );
                    }
                }
                Ok(Err(error)) => self.mark_down(&error.to_string()),
                Err(_) => self.mark_down("no answer in time"),
            }
        });
    }

    /// One run of the script; `force` charges even past the budget (the outcome then reads
    /// as not allowed, with the charge made).
    async fn charge(&self, key: &str, increment: i64, period: i64, force: bool) -> redis::RedisResult<Decision> {
        let connection = self
            .connection
            .get_or_try_init(|| async {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(REDIS_TIMEOUT))
                    .set_response_timeout(Some(REDIS_TIMEOUT))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(200));
                self.client.get_connection_manager_with_config(config).await
            })
            .await?;
        let mut connection = connection.clone();
        let (allowed, used_us, retry_after_us): (i64, i64, i64) = self
            .script
            .key(key)
            .arg(increment)
            .arg(period)
            .arg(u8::from(force))
            .invoke_async(&mut connection)
            .await?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(0));
        Ok(Decision {
            allowed: allowed == 1,
            // Informational only: Redis keeps the real TAT.
            new_tat: now + used_us,
            used_us,
            retry_after_us,
        })
    }
}

//! Where the buckets live: Redis, shared by every instance, through one atomic Lua script; or
//! this process's memory when Redis is not configured or not answering.
//!
//! Each charge is one `EVALSHA` (the `redis` crate's `Script` loads the script on a
//! `NOSCRIPT` reply): the script reads the bucket's TAT, decides with the Redis server's clock
//! (so instances with skewed clocks agree) and stores the new TAT with an expiry of the time
//! until the bucket is full again — an idle caller costs no memory.
//!
//! When Redis fails (an error or no answer within [`REDIS_TIMEOUT`]) the charge is decided in
//! memory instead and Redis is left alone for [`REDIS_RETRY_AFTER`], so an outage adds no
//! latency to requests. Limits then hold per instance (each instance allows the budget), which
//! is logged once per outage and reported by `/readyz`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::OnceCell;

use super::gcra::{self, Decision};
use crate::config::Rate;

/// How long one charge may wait for Redis before it is decided in memory.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// After a Redis failure, how long charges stay in memory before Redis is tried again.
pub const REDIS_RETRY_AFTER: Duration = Duration::from_secs(5);
/// The in-memory table is swept of full (idle) buckets when it grows past this many.
const MEMORY_SWEEP_AT: usize = 10_000;

/// KEYS[1]: the bucket; ARGV[1]: the TAT increment (µs); ARGV[2]: the period (µs).
/// Returns {allowed (0/1), µs until the bucket is full again, µs to wait when refused}.
/// The same steps as `gcra::decide`. The TAT is written with `%.0f`: Lua's default number
/// formatting keeps 14 digits, fewer than a time in microseconds has.
const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local increment = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new_tat = tat + increment
local used = new_tat - now
if used > period then
  return {0, tat - now, used - period}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil(used / 1000) + 1)
return {1, used, 0}
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
}

/// The buckets of one deployment.
pub struct Store {
    prefix: String,
    redis: Option<RedisStore>,
    memory: Mutex<HashMap<String, i64>>,
    epoch: Instant,
}

impl Store {
    pub fn new(redis: Option<redis::Client>, prefix: &str) -> Self {
        Self {
            prefix: format!("{prefix}rl:"),
            redis: redis.map(|client| RedisStore {
                client,
                connection: OnceCell::new(),
                script: redis::Script::new(GCRA_SCRIPT),
                down_until: Mutex::new(None),
            }),
            memory: Mutex::default(),
            epoch: Instant::now(),
        }
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
            match tokio::time::timeout(REDIS_TIMEOUT, redis.charge(&full_key, increment, period)).await {
                Ok(Ok(decision)) => {
                    redis.mark_up();
                    return decision;
                }
                Ok(Err(error)) => redis.mark_down(&error.to_string()),
                Err(_) => redis.mark_down("no answer in time"),
            }
        }
        self.charge_in_memory(key, increment, period)
    }

    fn charge_in_memory(&self, key: &str, increment: i64, period: i64) -> Decision {
        let now = i64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(i64::MAX / 2);
        let mut buckets = self.memory.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MEMORY_SWEEP_AT {
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

    async fn charge(&self, key: &str, increment: i64, period: i64) -> redis::RedisResult<Decision> {
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

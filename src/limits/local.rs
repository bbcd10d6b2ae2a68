//! When this instance may decide a charge of a shared bucket itself, without waiting for Redis.
//!
//! Every charge of a shared bucket goes to Redis, but a request needs Redis's answer only when
//! that answer could be a refusal. So the store remembers, per bucket, what Redis last said of
//! it (a [`View`]) and what this instance charged since without an answer yet. While the view is
//! fresh ([`FRESH_FOR_US`]) and the charge leaves at least half of the budget free, the charge
//! is allowed here at once and sent to Redis behind the answer; otherwise the request waits for
//! Redis, as every charge near the limit does. A normal client never waits for the extra hop;
//! a client near its budget, and every refusal, is decided by the shared script.
//!
//! Why this keeps the budget shared: a view can miss only what *other* instances charged since
//! it was learnt, and each answer (one per charge, a round trip later) brings it up to date.
//! To turn a refusal into an allowance, other instances would have to spend more than half of
//! the budget between two answers. Should it happen, the background charge is *forced*: Redis
//! records it past the budget, and the caller's next requests wait until it is repaid, so over
//! any longer stretch the caller gets no more than its budget (such charges are counted as
//! overdrawn, see [`Decisions`]).
//!
//! All times are microseconds of the store's own clock. The arithmetic here is pure.

use std::sync::atomic::{AtomicU64, Ordering};

use super::gcra::Decision;

/// How long a view of a bucket may be used after Redis last answered about it.
pub const FRESH_FOR_US: i64 = 1_000_000;

/// What this instance knows of one bucket kept in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// The bucket's TAT, the latest learnt (a TAT only moves forward, so answers arriving out of
    /// order cannot move it back).
    tat: i64,
    /// When Redis last answered about the bucket.
    learned_at: i64,
    /// Charged here, sent to Redis, not yet answered.
    pending: i64,
}

impl View {
    /// What Redis answered at `now`: the bucket's TAT is `used_us` ahead.
    pub fn learnt(now: i64, used_us: i64) -> Self {
        View {
            tat: now + used_us,
            learned_at: now,
            pending: 0,
        }
    }

    /// A later answer about the same bucket.
    pub fn learn(&mut self, now: i64, used_us: i64) {
        self.tat = self.tat.max(now + used_us);
        self.learned_at = self.learned_at.max(now);
    }

    /// Allows `increment` here when the view is fresh and the bucket, with what is pending and
    /// this charge, stays at most half used; the charge is then pending. None: ask Redis.
    pub fn try_allow(&mut self, now: i64, increment: i64, period: i64) -> Option<Decision> {
        if now.saturating_sub(self.learned_at) > FRESH_FOR_US {
            return None;
        }
        let used = (self.tat - now)
            .max(0)
            .saturating_add(self.pending)
            .saturating_add(increment);
        if used > period / 2 {
            return None;
        }
        self.pending += increment;
        Some(Decision {
            allowed: true,
            new_tat: now + used,
            used_us: used,
            retry_after_us: 0,
        })
    }

    /// A charge allowed by [`View::try_allow`] reached Redis (or failed to): no longer pending.
    pub fn settle(&mut self, increment: i64) {
        self.pending = (self.pending - increment).max(0);
    }

    /// Still worth keeping: fresh, or waiting for an answer.
    pub fn is_live(&self, now: i64) -> bool {
        self.pending > 0 || now.saturating_sub(self.learned_at) <= FRESH_FOR_US
    }
}

/// Where this instance's charges were decided, since it started (for `/metrics`).
#[derive(Debug, Default)]
pub struct Decisions {
    local: AtomicU64,
    redis: AtomicU64,
    memory: AtomicU64,
    overdrawn: AtomicU64,
}

/// A reading of [`Decisions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecisionCounts {
    /// Allowed here, far from the limit, and charged to Redis in the background.
    pub local: u64,
    /// Decided by the Redis script while the request waited.
    pub redis: u64,
    /// Decided in memory: Redis not configured, or down.
    pub memory: u64,
    /// Allowed here, then found by Redis to exceed the budget (charged anyway, so repaid).
    pub overdrawn: u64,
}

impl Decisions {
    pub fn local(&self) {
        self.local.fetch_add(1, Ordering::Relaxed);
    }
    pub fn redis(&self) {
        self.redis.fetch_add(1, Ordering::Relaxed);
    }
    pub fn memory(&self) {
        self.memory.fetch_add(1, Ordering::Relaxed);
    }
    pub fn overdrawn(&self) {
        self.overdrawn.fetch_add(1, Ordering::Relaxed);
    }
    pub fn counts(&self) -> DecisionCounts {
        DecisionCounts {
            local: self.local.load(Ordering::Relaxed),
            redis: self.redis.load(Ordering::Relaxed),
            memory: self.memory.load(Ordering::Relaxed),
            overdrawn: self.overdrawn.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000;
    const PERIOD: i64 = 60 * SECOND;

    #[test]
    fn far_from_the_limit_charges_are_allowed_here_until_half_the_budget_is_used() {
        // Redis said: 10 s of the 60 s period used.
        let now = 100 * SECOND;
        let mut view = View::learnt(now, 10 * SECOND);
        // 10 + 5 + 5 + 5 + 5 = 30 s: the last one leaves exactly half free.
        for n in 1..=4 {
            let decision = view.try_allow(now, 5 * SECOND, PERIOD).expect("far from the limit");
            assert!(decision.allowed);
            assert_eq!(decision.used_us, 10 * SECOND + n * 5 * SECOND);
        }
        assert_eq!(view.try_allow(now, 1, PERIOD), None, "past half: ask Redis");
        assert_eq!(view.pending, 20 * SECOND);
    }

    #[test]
    fn answers_bring_the_view_forward_and_never_back() {
        let now = 100 * SECOND;
        let mut view = View::learnt(now, 10 * SECOND);
        view.try_allow(now, 5 * SECOND, PERIOD).unwrap();
        // The background charge's answer: Redis counts it, and 12 s more from another instance.
        view.settle(5 * SECOND);
        view.learn(now + 1_000, 27 * SECOND);
        assert_eq!(view.pending, 0);
        assert_eq!(view.tat, now + 1_000 + 27 * SECOND);
        // An older answer arriving late does not undo it.
        view.learn(now + 500, 10 * SECOND);
        assert_eq!(view.tat, now + 1_000 + 27 * SECOND);
        // 27 s used + 4 s > 30 s: Redis decides.
        assert_eq!(view.try_allow(now + 1_000, 4 * SECOND, PERIOD), None);
        assert!(view.try_allow(now + 1_000, 3 * SECOND, PERIOD).is_some());
    }

    #[test]
    fn time_refills_the_view_as_it_refills_the_bucket() {
        let now = 100 * SECOND;
        let mut view = View::learnt(now, 40 * SECOND);
        assert_eq!(view.try_allow(now, SECOND, PERIOD), None);
        // 0.9 s later (still fresh) 0.9 s of the period came back: 39.1 s used.
        view.learn(now + 900_000, 39_100_000);
        assert_eq!(view.try_allow(now + 900_000, SECOND, PERIOD), None);
        // A bucket found nearly full, with time passing: its TAT falls behind now, nothing is used.
        let mut idle = View::learnt(now, SECOND);
        let later = now + 2 * SECOND;
        idle.learn(later, 0);
        let decision = idle.try_allow(later, 30 * SECOND, PERIOD).unwrap();
        assert_eq!(decision.used_us, 30 * SECOND);
    }

    #[test]
    fn a_stale_view_or_a_charge_bigger_than_half_the_budget_goes_to_redis() {
        let now = 100 * SECOND;
        let mut view = View::learnt(now, 0);
        assert_eq!(view.try_allow(now + FRESH_FOR_US + 1, 1, PERIOD), None, "stale");
        assert!(!view.is_live(now + FRESH_FOR_US + 1));
        assert_eq!(view.try_allow(now, PERIOD / 2 + 1, PERIOD), None, "too big to risk");
        assert!(view.try_allow(now, PERIOD / 2, PERIOD).is_some());
        // Waiting for its answer keeps the view, stale or not.
        assert!(view.is_live(now + 10 * FRESH_FOR_US));
        view.settle(PERIOD / 2);
        assert!(!view.is_live(now + 10 * FRESH_FOR_US));
    }
}

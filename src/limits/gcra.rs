//! The arithmetic of the limiter: GCRA (the generic cell rate algorithm), charged by cost.
//!
//! A bucket of `count` units refilling over `period` is one number, its *theoretical arrival
//! time* (TAT): the instant at which the bucket would be full again. Charging `cost` units
//! moves the TAT forward by `cost × period / count`; the charge is refused when the TAT would
//! then lie more than one `period` ahead of now (the bucket would go below empty). One number
//! per caller, no timers, and an exact `Retry-After`.
//!
//! [`decide`] is the whole algorithm; the Redis script in `super::store` is the same lines in
//! Lua (keep them in step), run atomically on the Redis server with the server's clock.

use crate::config::Rate;

/// The increment of the TAT, in microseconds, for `cost` units of `rate`. A cost above the
/// whole budget is charged the budget: such a request runs when the bucket is full, rather
/// than never. At least 1 µs, so every charge counts.
pub fn increment_us(rate: Rate, cost: u64) -> i64 {
    let period = period_us(rate);
    let count = u128::from(rate.count.max(1));
    let cost = u128::from(cost.min(rate.count));
    let increment = (cost * u128::from(period.unsigned_abs())).div_ceil(count);
    i64::try_from(increment).unwrap_or(i64::MAX).max(1)
}

/// The period in microseconds (capped far beyond any sensible setting).
pub fn period_us(rate: Rate) -> i64 {
    i64::try_from(rate.period.as_micros())
        .unwrap_or(i64::MAX / 4)
        .min(i64::MAX / 4)
}

/// What one charge decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The TAT to store (only when allowed).
    pub new_tat: i64,
    /// How far ahead of now the bucket's TAT is after this decision: the time until the
    /// bucket is full again.
    pub used_us: i64,
    /// When refused: how long until the same charge would be allowed.
    pub retry_after_us: i64,
}

/// Charges `increment` (see [`increment_us`]) against a bucket whose stored TAT is `tat`
/// (None: never charged or expired) at `now`, all in microseconds.
pub fn decide(tat: Option<i64>, now: i64, increment: i64, period: i64) -> Decision {
    let tat = tat.map_or(now, |tat| tat.max(now));
    let new_tat = tat.saturating_add(increment);
    let used = new_tat - now;
    if used > period {
        Decision {
            allowed: false,
            new_tat: tat,
            used_us: tat - now,
            retry_after_us: used - period,
        }
    } else {
        Decision {
            allowed: true,
            new_tat,
            used_us: used,
            retry_after_us: 0,
        }
    }
}

/// Units left in a bucket whose TAT is `used_us` ahead of now.
pub fn remaining(rate: Rate, used_us: i64) -> u64 {
    let period = period_us(rate).max(1);
    let free = (period - used_us.clamp(0, period)).unsigned_abs();
    let units = u128::from(free) * u128::from(rate.count) / u128::from(period.unsigned_abs());
    u64::try_from(units).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SECOND: i64 = 1_000_000;

    fn per_minute(count: u64) -> Rate {
        Rate::new(count, Duration::from_secs(60))
    }

    #[test]
    fn a_full_bucket_allows_its_whole_budget_at_once_then_refuses() {
        let rate = per_minute(600); // 10 per second, 100 ms per unit
        let period = period_us(rate);
        let mut tat = None;
        let now = 1_000 * SECOND;
        for spent in 1..=600_u64 {
            let d = decide(tat, now, increment_us(rate, 1), period);
            assert!(d.allowed, "unit {spent}");
            assert_eq!(remaining(rate, d.used_us), 600 - spent);
            tat = Some(d.new_tat);
        }
        let d = decide(tat, now, increment_us(rate, 1), period);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_us, SECOND / 10, "one unit refills in 100 ms");
        assert_eq!(d.new_tat, tat.unwrap(), "a refusal charges nothing");
        // After the retry-after it is allowed again.
        let later = decide(tat, now + d.retry_after_us, increment_us(rate, 1), period);
        assert!(later.allowed);
    }

    #[test]
    fn cost_is_charged_proportionally_and_refills_with_time() {
        let rate = per_minute(6_000); // 100 units per second
        let period = period_us(rate);
        let now = 50 * SECOND;
        let d = decide(None, now, increment_us(rate, 1_500), period);
        assert!(d.allowed);
        assert_eq!(remaining(rate, d.used_us), 4_500);
        assert_eq!(d.used_us, 15 * SECOND, "full again in 15 s");
        // Ten seconds later 1,000 units came back.
        let d2 = decide(Some(d.new_tat), now + 10 * SECOND, increment_us(rate, 0), period);
        assert_eq!(remaining(rate, d2.used_us), 5_500 - 1, "a zero cost still counts 1 µs");
        // A charge larger than what is left is refused with the exact wait.
        let d3 = decide(Some(d.new_tat), now, increment_us(rate, 5_000), period);
        assert!(!d3.allowed);
        assert_eq!(d3.retry_after_us, 5 * SECOND);
    }

    #[test]
    fn a_cost_above_the_budget_is_charged_the_budget() {
        let rate = per_minute(100);
        let period = period_us(rate);
        assert_eq!(increment_us(rate, 1_000_000), period);
        let d = decide(None, 0, increment_us(rate, 1_000_000), period);
        assert!(d.allowed, "runs on a full bucket");
        assert_eq!(remaining(rate, d.used_us), 0);
    }

    #[test]
    fn an_idle_bucket_never_holds_more_than_its_budget() {
        let rate = per_minute(100);
        let period = period_us(rate);
        let d = decide(Some(0), 3_600 * SECOND, increment_us(rate, 1), period);
        assert_eq!(remaining(rate, d.used_us), 99);
    }

    #[test]
    fn strict_buckets_count_attempts() {
        let rate = Rate::new(5, Duration::from_secs(900));
        let period = period_us(rate);
        let mut tat = None;
        for _ in 0..5 {
            let d = decide(tat, 0, increment_us(rate, 1), period);
            assert!(d.allowed);
            tat = Some(d.new_tat);
        }
        let d = decide(tat, 0, increment_us(rate, 1), period);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_us, 180 * SECOND, "one attempt per 3 minutes");
    }
}

//! The shapes the simulation draws from: when calls arrive over the day, how long talk, hold and
//! wrap-up last, and which wall-clock instant a local time is. Small and pure, so the demo and
//! the generator plan their arrivals with the very curves the model uses.

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use rand::Rng;

/// Opening hours (local minutes since midnight): calls arrive in [OPEN_MINUTE, CLOSE_MINUTE).
pub const OPEN_MINUTE: u32 = 8 * 60;
pub const CLOSE_MINUTE: u32 = 20 * 60;

/// A duration in milliseconds.
pub fn ms(millis: i64) -> TimeDelta {
    TimeDelta::milliseconds(millis)
}

/// A local wall-clock time of `date` in UTC (the earlier instant if the clock is ambiguous);
/// `None` when the clock skips it.
pub fn local_time(tz: &Tz, date: NaiveDate, minute: u32) -> Option<DateTime<Utc>> {
    let naive = date.and_hms_opt(minute / 60, minute % 60, 0)?;
    tz.from_local_datetime(&naive).earliest().map(|t| t.with_timezone(&Utc))
}

/// Numbers from Ofcom's range reserved for drama (07700 900000–900999): never a real person.
pub fn customer_number(rng: &mut StdRng) -> String {
    format!("+447700900{:03}", rng.gen_range(0..1000))
}

/// A bell around `centre` (hours), for arrival curves.
pub fn bump(hour: f64, centre: f64, width: f64) -> f64 {
    (-0.5 * ((hour - centre) / width).powi(2)).exp()
}

/// Inbound arrivals: a late-morning peak and a smaller mid-afternoon one.
pub fn inbound_weight(hour: f64) -> f64 {
    0.3 + bump(hour, 11.0, 1.3) + 0.85 * bump(hour, 14.75, 1.4)
}

/// A log-normal duration, clamped: most calls near the median, a long tail.
#[derive(Clone, Copy, Debug)]
pub struct Lognormal {
    pub median_s: f64,
    /// Spread: σ of the logarithm.
    pub sigma: f64,
    pub min_s: f64,
    pub max_s: f64,
}

impl Lognormal {
    /// The clamped mean (for sizing), in seconds.
    pub fn mean_s(&self) -> f64 {
        (self.median_s * (self.sigma * self.sigma / 2.0).exp()).clamp(self.min_s, self.max_s)
    }

    /// Milliseconds, scaled, at least 1 (Box–Muller: two draws).
    pub fn sample_ms(&self, rng: &mut StdRng, scale: f64) -> i64 {
        let u1 = 1.0 - rng.gen::<f64>();
        let u2 = rng.gen::<f64>();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let seconds = (self.median_s * (self.sigma * z).exp()).clamp(self.min_s, self.max_s);
        (seconds * scale * 1000.0).round().max(1.0) as i64
    }
}

/// How long a phase of a call lasts (hold, wrap-up).
#[derive(Clone, Copy, Debug)]
pub enum Spread {
    /// Uniform between two lengths, in milliseconds (one draw).
    Uniform {
        min_ms: f64,
        max_ms: f64,
    },
    LogNormal(Lognormal),
}

impl Spread {
    /// The mean (for sizing), in seconds.
    pub fn mean_s(&self) -> f64 {
        match self {
            Spread::Uniform { min_ms, max_ms } => (min_ms + max_ms) / 2.0 / 1000.0,
            Spread::LogNormal(l) => l.mean_s(),
        }
    }

    /// Milliseconds, scaled.
    pub fn sample_ms(&self, rng: &mut StdRng, scale: f64) -> i64 {
        match self {
            Spread::Uniform { min_ms, max_ms } => (rng.gen_range(*min_ms..=*max_ms) * scale).round() as i64,
            Spread::LogNormal(l) => l.sample_ms(rng, scale),
        }
    }
}

/// A time-of-day distribution over opening hours, one weight per minute.
pub struct Profile {
    cumulative: Vec<f64>,
}

impl Profile {
    pub fn new(weight: fn(f64) -> f64) -> Self {
        let mut total = 0.0;
        let cumulative = (OPEN_MINUTE..CLOSE_MINUTE)
            .map(|minute| {
                total += weight((f64::from(minute) + 0.5) / 60.0).max(0.0);
                total
            })
            .collect();
        Self { cumulative }
    }

    fn mass_before(&self, limit_minute: u32) -> f64 {
        let n = limit_minute.saturating_sub(OPEN_MINUTE) as usize;
        if n == 0 {
            0.0
        } else {
            self.cumulative
                .get(n.min(self.cumulative.len()) - 1)
                .copied()
                .unwrap_or(0.0)
        }
    }

    /// The share of the day's weight before `limit_minute` (local).
    pub fn share_before(&self, limit_minute: u32) -> f64 {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        if total > 0.0 {
            self.mass_before(limit_minute) / total
        } else {
            0.0
        }
    }

    /// A random instant before `limit_minute` (local), as an offset from opening time; `None`
    /// (and nothing drawn) when the profile has no weight there.
    pub fn sample(&self, rng: &mut StdRng, limit_minute: u32) -> Option<TimeDelta> {
        let mass = self.mass_before(limit_minute);
        if mass <= 0.0 {
            return None;
        }
        let x = rng.gen::<f64>() * mass;
        let minute = self.cumulative.partition_point(|&c| c <= x);
        let minute = minute.min(limit_minute.saturating_sub(OPEN_MINUTE).saturating_sub(1) as usize);
        Some(TimeDelta::minutes(minute as i64) + ms(rng.gen_range(0..60_000)))
    }
}

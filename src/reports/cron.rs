//! When a report schedule fires: a cron pattern evaluated in a named time zone (a pure module).
//!
//! **Dialect.** Five fields — minute, hour, day of month, month, day of week — as POSIX/Vixie
//! cron, parsed by `croner`: ranges, steps, lists, month and weekday names, `L`, `#`, `W` and
//! the `@daily`-style aliases. No seconds field and no year field: a report is a minute-grained
//! job, and a seconds field would let one schedule ask for 60 files a minute. Day of month and
//! day of week combine with OR when both are restricted, as in Vixie cron.
//!
//! **Daylight saving.** Patterns are wall-clock times in the schedule's zone, and the rules are
//! croner's (the Open Cron Pattern Specification's), chosen because they are what a person who
//! wrote "02:30 every day" expects on both transition days:
//!
//! * spring forward (02:30 does not exist that day): a fixed-time pattern (single minute and
//!   hour) fires at the first instant after the gap — 03:00 local — so the daily report still
//!   arrives that day, half an hour "late" by the wall clock but never skipped;
//! * fall back (02:30 happens twice): a fixed-time pattern fires once, at the first
//!   occurrence (the earlier offset), so nobody gets the same daily report twice;
//! * interval patterns (`*/15 * * * *`, `30 * * * *`) follow the clock: minutes inside the gap
//!   do not exist and do not fire; minutes in the repeated hour fire on both passes, as
//!   elapsed time does.
//!
//! **Missed fires.** [`latest_due`] finds the most recent fire at or before now among those
//! that came due since the schedule was last claimed, and how many earlier ones it stands for:
//! after downtime only the latest missed fire runs (a report of "yesterday" sent five times
//! once the service is back is noise, and each copy would be the same file), the rest are
//! counted on the schedule.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// At most this many fire times are counted when catching up after downtime (a minutely
/// pattern after a week down has 10,080); beyond it the count says "at least".
pub const MAX_COUNTED_MISSES: i64 = 10_000;

/// The most fire times `nextFireTimes` lists.
pub const MAX_LISTED: usize = 100;

/// A parsed pattern.
#[derive(Debug, Clone)]
pub struct Pattern(Cron);

/// Parses a five-field pattern; the error says what is wrong, for a BAD_USER_INPUT message.
pub fn parse(text: &str) -> Result<Pattern, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty cron pattern: give five fields (minute hour day-of-month month day-of-week)".into());
    }
    if !text.starts_with('@') && text.split_whitespace().count() != 5 {
        return Err(format!(
            "`{text}` has {} fields; give five (minute hour day-of-month month day-of-week)",
            text.split_whitespace().count()
        ));
    }
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build();
    let cron = parser
        .parse(text)
        .map_err(|e| format!("`{text}` is not a valid cron pattern: {e}"))?;
    Ok(Pattern(cron))
}

/// Parses an IANA zone name (`Europe/Paris`, `UTC`).
pub fn zone(name: &str) -> Result<Tz, String> {
    Tz::from_str(name.trim()).map_err(|_| format!("`{name}` is not an IANA time zone name (e.g. Europe/Paris)"))
}

impl Pattern {
    /// The first fire strictly after `after`, or None when the pattern never fires again.
    pub fn next_after(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0
            .find_next_occurrence(&after.with_timezone(&tz), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The next `n` fires strictly after `after`.
    pub fn next_n(&self, tz: Tz, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n.min(MAX_LISTED));
        let mut cursor = after;
        while out.len() < n {
            match self.next_after(tz, cursor) {
                Some(next) => {
                    out.push(next);
                    cursor = next;
                }
                None => break,
            }
        }
        out
    }

    /// The fire to run when a schedule due since `due` is claimed at `now` (`due <= now`): the
    /// latest fire in `[due, now]`, and how many earlier fires in that window it stands for
    /// (capped at [`MAX_COUNTED_MISSES`]). None when no fire lies in the window (the pattern
    /// changed under a stale `due`).
    pub fn latest_due(&self, tz: Tz, due: DateTime<Utc>, now: DateTime<Utc>) -> Option<(DateTime<Utc>, i64)> {
        let start = due - chrono::Duration::seconds(1);
        let first = self.next_after(tz, start).filter(|t| *t <= now)?;
        let mut latest = first;
        let mut skipped = 0_i64;
        while skipped < MAX_COUNTED_MISSES {
            match self.next_after(tz, latest) {
                Some(next) if next <= now => {
                    latest = next;
                    skipped += 1;
                }
                _ => return Some((latest, skipped)),
            }
        }
        // Too many to walk: jump to the last fire at or before now.
        let last = self
            .0
            .find_previous_occurrence(&now.with_timezone(&tz), true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
            .filter(|t| *t >= latest)
            .unwrap_or(latest);
        Some((last, skipped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn local(tz: Tz, fires: &[DateTime<Utc>]) -> Vec<String> {
        fires
            .iter()
            .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M %:z").to_string())
            .collect()
    }

    #[test]
    fn five_fields_only() {
        assert!(parse("30 2 * * *").is_ok());
        assert!(parse("*/15 8-18 * * MON-FRI").is_ok());
        assert!(parse("@daily").is_ok());
        assert!(parse("0 30 2 * * *").unwrap_err().contains("6 fields"));
        assert!(parse("0 2 * *").unwrap_err().contains("4 fields"));
        assert!(parse("61 2 * * *").is_err());
        assert!(parse("").is_err());
        assert!(parse("every day").is_err());
        assert!(zone("Europe/Paris").is_ok());
        assert!(zone("Mars/Olympus").is_err());
    }

    /// Spring forward: 02:30 does not exist; the daily 02:30 fires at 03:00 local that day
    /// (the first instant after the gap), and at 02:30 again the day after. Two zones, two
    /// hemispheres' rules (Europe: last Sunday of March; US: second Sunday of March).
    #[test]
    fn spring_forward_fires_at_the_end_of_the_gap() {
        let pattern = parse("30 2 * * *").unwrap();
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let fires = pattern.next_n(paris, utc("2026-03-28T12:00:00Z"), 3);
        assert_eq!(
            local(paris, &fires),
            [
                "2026-03-29 03:00 +02:00",
                "2026-03-30 02:30 +02:00",
                "2026-03-31 02:30 +02:00"
            ]
        );
        let new_york: Tz = "America/New_York".parse().unwrap();
        let fires = pattern.next_n(new_york, utc("2026-03-07T12:00:00Z"), 3);
        assert_eq!(
            local(new_york, &fires),
            [
                "2026-03-08 03:00 -04:00",
                "2026-03-09 02:30 -04:00",
                "2026-03-10 02:30 -04:00"
            ]
        );
    }

    /// Fall back: 02:30 happens twice in Europe/Paris (01:30 New York); a fixed-time pattern
    /// fires once, at the first (summer-time) occurrence.
    #[test]
    fn fall_back_fires_once_at_the_first_occurrence() {
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let fires = parse("30 2 * * *")
            .unwrap()
            .next_n(paris, utc("2026-10-24T12:00:00Z"), 3);
        assert_eq!(
            local(paris, &fires),
            [
                "2026-10-25 02:30 +02:00",
                "2026-10-26 02:30 +01:00",
                "2026-10-27 02:30 +01:00"
            ]
        );
        let new_york: Tz = "America/New_York".parse().unwrap();
        let fires = parse("30 1 * * *")
            .unwrap()
            .next_n(new_york, utc("2026-10-31T12:00:00Z"), 2);
        assert_eq!(
            local(new_york, &fires),
            ["2026-11-01 01:30 -04:00", "2026-11-02 01:30 -05:00"]
        );
        // An interval pattern follows elapsed time: both passes of the repeated hour fire.
        let fires = parse("30 * * * *")
            .unwrap()
            .next_n(paris, utc("2026-10-24T23:00:00Z"), 4);
        assert_eq!(
            local(paris, &fires),
            [
                "2026-10-25 01:30 +02:00",
                "2026-10-25 02:30 +02:00",
                "2026-10-25 02:30 +01:00",
                "2026-10-25 03:30 +01:00"
            ]
        );
    }

    #[test]
    fn only_the_latest_missed_fire_runs() {
        let pattern = parse("0 * * * *").unwrap();
        let tz = Tz::UTC;
        // Due at 10:00, back at 13:20: 10:00, 11:00, 12:00 and 13:00 were missed; 13:00 runs.
        let (fire, skipped) = pattern
            .latest_due(tz, utc("2026-05-01T10:00:00Z"), utc("2026-05-01T13:20:00Z"))
            .unwrap();
        assert_eq!((fire, skipped), (utc("2026-05-01T13:00:00Z"), 3));
        // On time: the due fire itself, nothing skipped.
        let (fire, skipped) = pattern
            .latest_due(tz, utc("2026-05-01T10:00:00Z"), utc("2026-05-01T10:00:01Z"))
            .unwrap();
        assert_eq!((fire, skipped), (utc("2026-05-01T10:00:00Z"), 0));
        // A week down on a minutely pattern: counted up to the cap, the latest minute runs.
        let (fire, skipped) = parse("* * * * *")
            .unwrap()
            .latest_due(tz, utc("2026-05-01T00:00:00Z"), utc("2026-05-08T00:00:30Z"))
            .unwrap();
        assert_eq!(fire, utc("2026-05-08T00:00:00Z"));
        assert_eq!(skipped, MAX_COUNTED_MISSES);
        // Nothing in the window.
        assert!(pattern
            .latest_due(tz, utc("2026-05-01T10:00:00Z"), utc("2026-05-01T09:59:00Z"))
            .is_none());
    }
}

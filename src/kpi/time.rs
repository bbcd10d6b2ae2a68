//! Time buckets in the organization's time zone. Day, week and month boundaries are local
//! midnights (so a DST day is 23 or 25 hours long); hour and 15-minute buckets step in real
//! time from a local boundary (so the repeated hour of a DST fall-back is its own bucket).

use chrono::{DateTime, Datelike, Days, LocalResult, Months, NaiveDate, NaiveTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, async_graphql::Enum, serde::Serialize, serde::Deserialize)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Granularity {
    FifteenMinutes,
    Hour,
    Day,
    Week,
    Month,
}

/// Local midnight of `date` as an instant. Where midnight does not exist (a DST jump at
/// 00:00) the day starts at the first instant that does.
pub fn local_midnight(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let mut time = NaiveTime::MIN;
    for _ in 0..4 {
        match tz.from_local_datetime(&date.and_time(time)) {
            LocalResult::Single(t) => return t.to_utc(),
            LocalResult::Ambiguous(earliest, _) => return earliest.to_utc(),
            LocalResult::None => time += TimeDelta::minutes(30),
        }
    }
    date.and_time(NaiveTime::MIN).and_utc()
}

/// The start of the bucket containing `at`.
fn bucket_start(tz: Tz, at: DateTime<Utc>, granularity: Granularity) -> DateTime<Utc> {
    let local = at.with_timezone(&tz);
    match granularity {
        Granularity::FifteenMinutes => {
            let minutes = i64::from(local.minute() % 15);
            at - TimeDelta::minutes(minutes)
                - TimeDelta::seconds(i64::from(local.second()))
                - TimeDelta::nanoseconds(i64::from(local.nanosecond()))
        }
        Granularity::Hour => {
            at - TimeDelta::minutes(i64::from(local.minute()))
                - TimeDelta::seconds(i64::from(local.second()))
                - TimeDelta::nanoseconds(i64::from(local.nanosecond()))
        }
        Granularity::Day => local_midnight(tz, local.date_naive()),
        Granularity::Week => {
            let days_from_monday = u64::from(local.weekday().num_days_from_monday());
            local_midnight(tz, local.date_naive() - Days::new(days_from_monday))
        }
        Granularity::Month => local_midnight(tz, local.date_naive().with_day(1).unwrap_or(local.date_naive())),
    }
}

fn next_start(tz: Tz, start: DateTime<Utc>, granularity: Granularity) -> DateTime<Utc> {
    let local_date = start.with_timezone(&tz).date_naive();
    match granularity {
        Granularity::FifteenMinutes => start + TimeDelta::minutes(15),
        Granularity::Hour => start + TimeDelta::hours(1),
        Granularity::Day => local_midnight(tz, local_date + Days::new(1)),
        Granularity::Week => local_midnight(tz, local_date + Days::new(7)),
        Granularity::Month => local_midnight(tz, local_date + Months::new(1)),
    }
}

/// Buckets covering `[from, to)`, clipped to it: the first and last bucket may be partial, so
/// the buckets of a series add up exactly to the summary of the same interval.
pub fn buckets(
    tz: Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    granularity: Granularity,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::new();
    let mut start = bucket_start(tz, from, granularity);
    while start < to {
        let end = next_start(tz, start, granularity);
        if end <= start {
            break; // cannot happen with real zones; guards against an endless loop regardless
        }
        out.push((start.max(from), end.min(to)));
        start = end;
    }
    out
}

/// The local dates lying wholly inside `[from, to)`, each with its `[start, end)` instants
/// (local midnight to the next local midnight, so 23 or 25 hours on DST days).
pub fn whole_days(tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(NaiveDate, DateTime<Utc>, DateTime<Utc>)> {
    buckets(tz, from, to, Granularity::Day)
        .into_iter()
        .filter(|(start, end)| {
            bucket_start(tz, *start, Granularity::Day) == *start && next_start(tz, *start, Granularity::Day) == *end
        })
        .map(|(start, end)| (start.with_timezone(&tz).date_naive(), start, end))
        .collect()
}

/// How many buckets `[from, to)` would have, without building them (for limits).
pub fn bucket_count_estimate(from: DateTime<Utc>, to: DateTime<Utc>, granularity: Granularity) -> i64 {
    let seconds = (to - from).num_seconds().max(0);
    let per = match granularity {
        Granularity::FifteenMinutes => 900,
        Granularity::Hour => 3_600,
        Granularity::Day => 82_800,
        Granularity::Week => 601_200,
        Granularity::Month => 2_415_600,
    };
    seconds / per + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).map(|d| d.to_utc()).unwrap_or_default()
    }

    #[test]
    fn london_spring_forward_day_has_23_hours() {
        let tz: Tz = chrono_tz::Europe::London;
        // 2026-03-29: clocks go 01:00 GMT -> 02:00 BST.
        let day = buckets(
            tz,
            at("2026-03-29T00:00:00Z"),
            at("2026-03-29T23:00:00Z"),
            Granularity::Hour,
        );
        assert_eq!(day.len(), 23);
        let days = buckets(
            tz,
            at("2026-03-28T00:00:00Z"),
            at("2026-03-30T23:00:00Z"),
            Granularity::Day,
        );
        assert_eq!(days.len(), 3);
        assert_eq!((days[1].1 - days[1].0).num_hours(), 23);
    }

    #[test]
    fn new_york_fall_back_day_has_25_hours() {
        let tz: Tz = chrono_tz::America::New_York;
        // 2026-11-01: 02:00 EDT -> 01:00 EST. Local midnight = 04:00Z; next midnight = 05:00Z.
        let hours = buckets(
            tz,
            at("2026-11-01T04:00:00Z"),
            at("2026-11-02T05:00:00Z"),
            Granularity::Hour,
        );
        assert_eq!(hours.len(), 25);
        let days = buckets(
            tz,
            at("2026-11-01T04:00:00Z"),
            at("2026-11-02T05:00:00Z"),
            Granularity::Day,
        );
        assert_eq!(days.len(), 1);
        assert_eq!((days[0].1 - days[0].0).num_hours(), 25);
    }

    #[test]
    fn buckets_are_clipped_and_contiguous() {
        let tz: Tz = chrono_tz::Asia::Kolkata; // +05:30: local hours start at :30 UTC
        let from = at("2026-01-05T10:10:00Z");
        let to = at("2026-01-05T13:00:00Z");
        let hours = buckets(tz, from, to, Granularity::Hour);
        assert_eq!(hours.first().map(|b| b.0), Some(from));
        assert_eq!(hours.last().map(|b| b.1), Some(to));
        assert_eq!(hours[1].0, at("2026-01-05T10:30:00Z"));
        assert!(hours.windows(2).all(|w| w[0].1 == w[1].0));
        let weeks = buckets(
            chrono_tz::Europe::London,
            at("2026-01-01T00:00:00Z"),
            at("2026-02-01T00:00:00Z"),
            Granularity::Week,
        );
        assert_eq!(weeks[1].0, at("2026-01-05T00:00:00Z"), "ISO weeks start on Monday");
        let months = buckets(
            chrono_tz::Europe::London,
            at("2026-01-15T00:00:00Z"),
            at("2026-06-30T23:00:00Z"),
            Granularity::Month,
        );
        assert_eq!(months.len(), 6);
        assert_eq!(
            months[5].0,
            at("2026-05-31T23:00:00Z"),
            "June starts at local midnight, BST"
        );
    }
}

//! Relative report ranges ("yesterday", "month to date"…) resolved into instants in the
//! organization's time zone, as a pure function of the range, the zone and the moment of the
//! run: a saved report keeps meaning the same period whenever it is run, and a test can pin
//! every case (midnight, DST days in two zones) without a clock.
//!
//! Every boundary but `ROLLING_24_HOURS`'s is a local midnight
//! ([`crate::kpi::time::local_midnight`], the same function the KPI buckets use), so a day is
//! 23 or 25 hours on DST days and the figures of a report add up with a `kpiSeries` by day.
//! Intervals are half-open, `[from, to)`, like every KPI interval.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeDelta, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::kpi::time::local_midnight;

/// A period relative to the moment a report runs, in the organization's time zone.
///
/// The choices, and why (a contact-centre manager's reading of each name):
/// * `TODAY`: local midnight → now. The day so far, as the wallboard shows it.
/// * `YESTERDAY`: the whole previous local day (midnight → midnight).
/// * `LAST_7_DAYS` / `LAST_30_DAYS`: the 7 (30) **whole local days before today**, today
///   excluded. A manager comparing weeks wants complete days: every day carries its whole
///   traffic curve, so service level and handle time are not pulled towards this morning's
///   figures, and the report says the same thing whenever it is run during the day. The day in
///   progress has its own ranges (`TODAY`, `WEEK_TO_DATE`, `MONTH_TO_DATE`).
/// * `WEEK_TO_DATE`: local midnight of this ISO week's Monday → now.
/// * `MONTH_TO_DATE`: local midnight of the 1st of this month → now.
/// * `PREVIOUS_MONTH`: the whole previous calendar month (1st → 1st, local midnights).
/// * `ROLLING_24_HOURS`: now − 24 h → now, in real hours whatever the clocks do (the window of
///   the UK outbound-abandonment rule).
///
/// A "to date" range run at the very instant its period starts (exactly local midnight for
/// `TODAY`) would be empty; it then covers the period that just ended (yesterday, last week,
/// last month), which is also what a report scheduled at midnight wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, async_graphql::Enum, Serialize, Deserialize)]
pub enum RelativeRange {
    #[graphql(name = "TODAY")]
    #[serde(rename = "TODAY")]
    Today,
    #[graphql(name = "YESTERDAY")]
    #[serde(rename = "YESTERDAY")]
    Yesterday,
    #[graphql(name = "LAST_7_DAYS")]
    #[serde(rename = "LAST_7_DAYS")]
    Last7Days,
    #[graphql(name = "LAST_30_DAYS")]
    #[serde(rename = "LAST_30_DAYS")]
    Last30Days,
    #[graphql(name = "WEEK_TO_DATE")]
    #[serde(rename = "WEEK_TO_DATE")]
    WeekToDate,
    #[graphql(name = "MONTH_TO_DATE")]
    #[serde(rename = "MONTH_TO_DATE")]
    MonthToDate,
    #[graphql(name = "PREVIOUS_MONTH")]
    #[serde(rename = "PREVIOUS_MONTH")]
    PreviousMonth,
    #[graphql(name = "ROLLING_24_HOURS")]
    #[serde(rename = "ROLLING_24_HOURS")]
    Rolling24Hours,
}

impl RelativeRange {
    pub const ALL: [RelativeRange; 8] = [
        RelativeRange::Today,
        RelativeRange::Yesterday,
        RelativeRange::Last7Days,
        RelativeRange::Last30Days,
        RelativeRange::WeekToDate,
        RelativeRange::MonthToDate,
        RelativeRange::PreviousMonth,
        RelativeRange::Rolling24Hours,
    ];

    /// Whether the range ends at the moment of the run (rather than at a local midnight).
    pub fn ends_now(self) -> bool {
        matches!(
            self,
            RelativeRange::Today
                | RelativeRange::WeekToDate
                | RelativeRange::MonthToDate
                | RelativeRange::Rolling24Hours
        )
    }
}

/// `date` moved by `days` (negative: back), or `date` itself beyond the calendar's ends (which
/// no organization reaches: instants there are outside what the API accepts).
fn shift(date: NaiveDate, days: i64) -> NaiveDate {
    let n = Days::new(days.unsigned_abs());
    let moved = if days < 0 {
        date.checked_sub_days(n)
    } else {
        date.checked_add_days(n)
    };
    moved.unwrap_or(date)
}

fn first_of_month(date: NaiveDate) -> NaiveDate {
    date.with_day(1).unwrap_or(date)
}

fn previous_month(first: NaiveDate) -> NaiveDate {
    first.checked_sub_months(Months::new(1)).unwrap_or(first)
}

/// The instants `[from, to)` of `range` for a run at `now` in zone `tz` (see [`RelativeRange`]
/// for each choice). Always `from < to <= now`.
pub fn resolve(range: RelativeRange, tz: Tz, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let today = now.with_timezone(&tz).date_naive();
    let midnight = |date: NaiveDate| local_midnight(tz, date);
    let whole_days_before_today = |days: i64| (midnight(shift(today, -days)), midnight(today));
    let this_month = first_of_month(today);
    let previous_whole_month = (midnight(previous_month(this_month)), midnight(this_month));
    let monday = shift(today, -i64::from(today.weekday().num_days_from_monday()));
    match range {
        RelativeRange::Today => to_date(midnight(today), now, whole_days_before_today(1)),
        RelativeRange::Yesterday => whole_days_before_today(1),
        RelativeRange::Last7Days => whole_days_before_today(7),
        RelativeRange::Last30Days => whole_days_before_today(30),
        RelativeRange::WeekToDate => to_date(midnight(monday), now, (midnight(shift(monday, -7)), midnight(monday))),
        RelativeRange::MonthToDate => to_date(midnight(this_month), now, previous_whole_month),
        RelativeRange::PreviousMonth => previous_whole_month,
        RelativeRange::Rolling24Hours => (now - TimeDelta::hours(24), now),
    }
}

/// `[start, now)`, or the previous whole period when that would be empty (`now` is the start).
fn to_date(
    start: DateTime<Utc>,
    now: DateTime<Utc>,
    previous: (DateTime<Utc>, DateTime<Utc>),
) -> (DateTime<Utc>, DateTime<Utc>) {
    if start < now {
        (start, now)
    } else {
        previous
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;
    use chrono_tz::Europe::London;
    use proptest::prelude::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).map(|d| d.to_utc()).unwrap_or_default()
    }

    fn range(r: RelativeRange, tz: Tz, now: &str) -> (DateTime<Utc>, DateTime<Utc>) {
        resolve(r, tz, at(now))
    }

    fn hours(span: (DateTime<Utc>, DateTime<Utc>)) -> i64 {
        (span.1 - span.0).num_hours()
    }

    #[test]
    fn today_starts_at_local_midnight_in_both_zones() {
        // London in January is UTC+0; New York is UTC−5.
        assert_eq!(
            range(RelativeRange::Today, London, "2026-01-05T23:59:59Z"),
            (at("2026-01-05T00:00:00Z"), at("2026-01-05T23:59:59Z"))
        );
        assert_eq!(
            range(RelativeRange::Today, London, "2026-01-06T00:00:01Z"),
            (at("2026-01-06T00:00:00Z"), at("2026-01-06T00:00:01Z"))
        );
        // 04:59 UTC is still the 5th in New York.
        assert_eq!(
            range(RelativeRange::Today, New_York, "2026-01-06T04:59:00Z"),
            (at("2026-01-05T05:00:00Z"), at("2026-01-06T04:59:00Z"))
        );
        assert_eq!(
            range(RelativeRange::Today, New_York, "2026-01-06T05:00:30Z").0,
            at("2026-01-06T05:00:00Z")
        );
    }

    #[test]
    fn a_to_date_range_at_the_exact_start_covers_the_period_that_ended() {
        let midnight = "2026-01-06T00:00:00Z"; // a Tuesday in London
        assert_eq!(
            range(RelativeRange::Today, London, midnight),
            (at("2026-01-05T00:00:00Z"), at(midnight))
        );
        assert_eq!(
            range(RelativeRange::WeekToDate, London, "2026-01-05T00:00:00Z"),
            (at("2025-12-29T00:00:00Z"), at("2026-01-05T00:00:00Z"))
        );
        assert_eq!(
            range(RelativeRange::MonthToDate, London, "2026-02-01T00:00:00Z"),
            (at("2026-01-01T00:00:00Z"), at("2026-02-01T00:00:00Z"))
        );
    }

    #[test]
    fn london_spring_forward_and_fall_back() {
        // 2026-03-29: 01:00 GMT → 02:00 BST. The day is 23 hours long.
        assert_eq!(
            range(RelativeRange::Yesterday, London, "2026-03-30T10:00:00Z"),
            (at("2026-03-29T00:00:00Z"), at("2026-03-29T23:00:00Z"))
        );
        assert_eq!(
            hours(range(RelativeRange::Yesterday, London, "2026-03-30T10:00:00Z")),
            23
        );
        // On the day itself, today began at GMT midnight.
        assert_eq!(
            range(RelativeRange::Today, London, "2026-03-29T10:00:00Z").0,
            at("2026-03-29T00:00:00Z")
        );
        // The seven days before Monday 30 March hold the short day: 167 hours.
        assert_eq!(
            range(RelativeRange::Last7Days, London, "2026-03-30T09:00:00Z"),
            (at("2026-03-23T00:00:00Z"), at("2026-03-29T23:00:00Z"))
        );
        // 2026-10-25: 02:00 BST → 01:00 GMT. The day is 25 hours long.
        assert_eq!(
            range(RelativeRange::Yesterday, London, "2026-10-26T12:00:00Z"),
            (at("2026-10-24T23:00:00Z"), at("2026-10-26T00:00:00Z"))
        );
        // Rolling 24 hours are real hours across the change.
        assert_eq!(
            range(RelativeRange::Rolling24Hours, London, "2026-10-25T12:00:00Z"),
            (at("2026-10-24T12:00:00Z"), at("2026-10-25T12:00:00Z"))
        );
    }

    #[test]
    fn new_york_spring_forward_and_fall_back() {
        // 2026-03-08: 02:00 EST → 03:00 EDT. Midnight EST is 05:00Z; the next one, EDT, 04:00Z.
        assert_eq!(
            range(RelativeRange::Yesterday, New_York, "2026-03-09T15:00:00Z"),
            (at("2026-03-08T05:00:00Z"), at("2026-03-09T04:00:00Z"))
        );
        // 2026-11-01: 02:00 EDT → 01:00 EST. 04:00Z → 05:00Z the next day: 25 hours.
        let fall_back = range(RelativeRange::Yesterday, New_York, "2026-11-02T15:00:00Z");
        assert_eq!(fall_back, (at("2026-11-01T04:00:00Z"), at("2026-11-02T05:00:00Z")));
        assert_eq!(hours(fall_back), 25);
        // Just before local midnight after the change, today is still the 1st.
        assert_eq!(
            range(RelativeRange::Today, New_York, "2026-11-02T04:59:59Z").0,
            at("2026-11-01T04:00:00Z")
        );
        // The last 30 days before 2 November cross the change: 30 × 24 + 1 hours.
        assert_eq!(
            hours(range(RelativeRange::Last30Days, New_York, "2026-11-02T15:00:00Z")),
            721
        );
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        // Wednesday 7 January 2026.
        assert_eq!(
            range(RelativeRange::WeekToDate, London, "2026-01-07T10:00:00Z").0,
            at("2026-01-05T00:00:00Z")
        );
        // A Sunday belongs to the week that began six days before.
        assert_eq!(
            range(RelativeRange::WeekToDate, New_York, "2026-01-11T20:00:00Z").0,
            at("2026-01-05T05:00:00Z")
        );
        // 1 April in London is BST: the month began at 23:00Z on 31 March.
        assert_eq!(
            range(RelativeRange::MonthToDate, London, "2026-04-01T10:00:00Z"),
            (at("2026-03-31T23:00:00Z"), at("2026-04-01T10:00:00Z"))
        );
        assert_eq!(
            range(RelativeRange::PreviousMonth, London, "2026-04-01T10:00:00Z"),
            (at("2026-03-01T00:00:00Z"), at("2026-03-31T23:00:00Z"))
        );
        assert_eq!(
            range(RelativeRange::PreviousMonth, New_York, "2026-01-15T12:00:00Z"),
            (at("2025-12-01T05:00:00Z"), at("2026-01-01T05:00:00Z"))
        );
    }

    fn zones() -> impl Strategy<Value = Tz> {
        prop::sample::select(vec![
            London,
            New_York,
            chrono_tz::UTC,
            chrono_tz::Asia::Kolkata,
            chrono_tz::Australia::Lord_Howe,
            // Chile moves its clocks at midnight: some days have no 00:00.
            chrono_tz::America::Santiago,
            chrono_tz::Pacific::Chatham,
        ])
    }

    fn ranges() -> impl Strategy<Value = RelativeRange> {
        prop::sample::select(RelativeRange::ALL.to_vec())
    }

    /// Instants from 2000 to 2040, to the microsecond (as PostgreSQL stores them), with a bias
    /// to whole hours so that exact midnights come up.
    fn instants() -> impl Strategy<Value = DateTime<Utc>> {
        let start = 946_684_800i64; // 2000-01-01
        let end = 2_208_988_800i64; // 2040-01-01
        prop_oneof![
            (start..end, 0u32..1_000_000).prop_map(|(s, us)| DateTime::from_timestamp(s, us * 1_000)),
            (start / 3_600..end / 3_600).prop_map(|h| DateTime::from_timestamp(h * 3_600, 0)),
        ]
        .prop_map(|t| t.unwrap_or_default())
    }

    fn is_local_midnight(tz: Tz, t: DateTime<Utc>) -> bool {
        local_midnight(tz, t.with_timezone(&tz).date_naive()) == t
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn ranges_are_ordered_end_by_now_and_start_at_local_midnight(
            tz in zones(),
            r in ranges(),
            now in instants(),
        ) {
            let (from, to) = resolve(r, tz, now);
            prop_assert!(from < to, "{r:?} {tz} {now}: {from} !< {to}");
            prop_assert!(to <= now, "{r:?} {tz} {now}: ends at {to}");
            if r == RelativeRange::Rolling24Hours {
                prop_assert_eq!(to - from, TimeDelta::hours(24));
                prop_assert_eq!(to, now);
            } else {
                prop_assert!(is_local_midnight(tz, from), "{r:?} {tz} {now}: starts at {from}");
            }
            let today = local_midnight(tz, now.with_timezone(&tz).date_naive());
            if r.ends_now() {
                // At the very start of a period, the previous one: it ends at `now` too.
                prop_assert_eq!(to, now);
            } else if r == RelativeRange::PreviousMonth {
                prop_assert_eq!(to, local_midnight(tz, first_of_month(now.with_timezone(&tz).date_naive())));
            } else {
                // Whole days end at today's local midnight.
                prop_assert_eq!(to, today);
            }
            let local_from = from.with_timezone(&tz).date_naive();
            let days = |n: i64| {
                let local_to = to.with_timezone(&tz).date_naive();
                (local_to - local_from).num_days() == n
            };
            match r {
                RelativeRange::Yesterday => prop_assert!(days(1)),
                RelativeRange::Last7Days => prop_assert!(days(7)),
                RelativeRange::Last30Days => prop_assert!(days(30)),
                RelativeRange::WeekToDate => {
                    prop_assert_eq!(local_from.weekday(), chrono::Weekday::Mon);
                }
                RelativeRange::MonthToDate | RelativeRange::PreviousMonth => {
                    prop_assert_eq!(local_from.day(), 1);
                }
                RelativeRange::Today | RelativeRange::Rolling24Hours => {}
            }
        }
    }
}

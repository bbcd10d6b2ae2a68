//! What one call contributes to the rollups. These definitions are the single source of the
//! counting rules; the raw SQL in [`crate::kpi::query`] states the same rules as SQL
//! fragments defined here, and the property tests check that both agree.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::interactions::NewInteraction;
use crate::db::schema::{business_settings, campaigns, dispositions};
use crate::domain::call::CallState;
use crate::domain::{AnsweredBy, Direction, Outcome};
use crate::error::{AppError, AppResult};
use crate::kpi::{ALL_KEY, NONE_KEY};

/// SQL (over `interactions i`) of "answered by an agent": inbound calls answered, and outbound
/// calls answered by a live person (a machine is not an answer).
pub const ANSWERED_SQL: &str = "(i.outcome = 'ANSWERED' AND (i.direction = 'INBOUND' OR i.answered_by = 'HUMAN'))";
/// SQL of "abandoned": the caller (inbound) or the live party (outbound drop) hung up first.
pub const ABANDONED_SQL: &str = "(i.outcome = 'ABANDONED')";
/// SQL of the AM of the UK (Ofcom) rule: an outbound call a machine answered that was passed
/// to an agent (answered, with an agent). A machine the dialler hung up on without connecting
/// it to anyone is not one ([`MACHINE_DETECTED_SQL`]).
pub const MACHINE_PASSED_SQL: &str =
    "(i.direction = 'OUTBOUND' AND i.answered_by = 'MACHINE' AND i.outcome = 'ANSWERED' AND i.agent_id IS NOT NULL)";
/// SQL of an outbound call a machine answered that never reached an agent.
pub const MACHINE_DETECTED_SQL: &str = "(i.direction = 'OUTBOUND' AND i.answered_by = 'MACHINE' \
     AND NOT (i.outcome = 'ANSWERED' AND i.agent_id IS NOT NULL))";

/// Settings that decide how a call is counted, read once per batch. Reading them takes a
/// share lock on the settings row, so a concurrent settings change (which recomputes the
/// threshold counters) serializes with the write.
#[derive(Debug, Clone, Default)]
pub struct CountingRules {
    pub service_level_threshold_s: i32,
    pub short_abandon_s: i32,
    /// Campaigns that override the organization's service-level threshold.
    pub campaign_threshold_s: HashMap<Uuid, i32>,
    /// Disposition id → (right-party contact, success).
    pub disposition_flags: HashMap<Uuid, (bool, bool)>,
}

impl CountingRules {
    /// Share-locks the organization's business settings row for the rest of the transaction.
    /// Every rollup writer holds it before touching a rollup cell: a change of a threshold or
    /// of the time zone rewrites that row first and then re-states the rollups, so the two
    /// never interleave (and always lock in the same order: settings, then cells).
    pub async fn hold_settings(conn: &mut AsyncPgConnection, tenant: &Tenant) -> AppResult<()> {
        business_settings::table
            .find(tenant.org_id())
            .select(business_settings::organization_id)
            .for_share()
            .first::<Uuid>(conn)
            .await
            .optional()?
            .ok_or_else(|| AppError::NotFound("organization not found".into()))?;
        Ok(())
    }

    /// The rules in force, read under the same share lock as [`CountingRules::hold_settings`]
    /// takes.
    pub async fn load(conn: &mut AsyncPgConnection, tenant: &Tenant) -> AppResult<Self> {
        let (threshold, short): (i32, i32) = business_settings::table
            .find(tenant.org_id())
            .select((
                business_settings::service_level_threshold_seconds,
                business_settings::short_abandon_seconds,
            ))
            .for_share()
            .first(conn)
            .await
            .optional()?
            .ok_or_else(|| AppError::NotFound("organization not found".into()))?;
        let overrides: Vec<(Uuid, Option<i32>)> = campaigns::table
            .filter(campaigns::organization_id.eq(tenant.org_id()))
            .filter(campaigns::service_level_threshold_seconds.is_not_null())
            .select((campaigns::id, campaigns::service_level_threshold_seconds))
            .load(conn)
            .await?;
        let flags: Vec<(Uuid, bool, bool)> = dispositions::table
            .filter(dispositions::organization_id.eq(tenant.org_id()))
            .select((dispositions::id, dispositions::contact, dispositions::success))
            .load(conn)
            .await?;
        Ok(Self {
            service_level_threshold_s: threshold,
            short_abandon_s: short,
            campaign_threshold_s: overrides.into_iter().filter_map(|(id, t)| t.map(|t| (id, t))).collect(),
            disposition_flags: flags.into_iter().map(|(id, c, s)| (id, (c, s))).collect(),
        })
    }

    fn threshold_ms(&self, campaign: Option<Uuid>) -> i64 {
        let seconds = campaign
            .and_then(|c| self.campaign_threshold_s.get(&c).copied())
            .unwrap_or(self.service_level_threshold_s);
        i64::from(seconds) * 1_000
    }
}

/// The fields of a call that metrics read.
#[derive(Debug, Clone, Copy)]
pub struct CallFacts {
    pub direction: Direction,
    pub campaign_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub offered_at: DateTime<Utc>,
    pub wrap_ended_at: Option<DateTime<Utc>>,
    pub wait_ms: Option<i64>,
    pub talk_ms: i64,
    pub hold_ms: i64,
    pub wrap_ms: i64,
    pub outcome: Outcome,
    pub answered_by: Option<AnsweredBy>,
    pub disposition_id: Option<Uuid>,
}

impl From<&CallState> for CallFacts {
    fn from(c: &CallState) -> Self {
        Self {
            direction: c.direction,
            campaign_id: c.campaign_id,
            agent_id: c.agent_id,
            offered_at: c.offered_at,
            wrap_ended_at: c.wrap_ended_at,
            wait_ms: c.wait_ms,
            talk_ms: c.talk_ms,
            hold_ms: c.hold_ms,
            wrap_ms: c.wrap_ms,
            outcome: c.outcome,
            answered_by: c.answered_by,
            disposition_id: c.disposition_id,
        }
    }
}

impl From<&NewInteraction> for CallFacts {
    fn from(i: &NewInteraction) -> Self {
        Self {
            direction: i.direction,
            campaign_id: i.campaign_id,
            agent_id: i.agent_id,
            offered_at: i.offered_at,
            wrap_ended_at: i.wrap_ended_at,
            wait_ms: i.wait_ms,
            talk_ms: i.talk_ms,
            hold_ms: i.hold_ms,
            wrap_ms: i.wrap_ms,
            outcome: i.outcome,
            answered_by: i.answered_by,
            disposition_id: i.disposition_id,
        }
    }
}

/// Declares [`Counters`] from ONE list of its additive counters: the struct, the column names
/// of `kpi_hourly` / `kpi_daily` (the fields' names), and the field-by-field operations. A
/// counter is added to the rollups by adding it here, to [`contribution`], to the raw SQL of
/// [`crate::kpi::query`] (a test fails when one is missing) and as a column in a migration.
macro_rules! call_counters {
    ($( $(#[$doc:meta])* $field:ident ),+ $(,)?) => {
        /// Additive counters of a set of calls (the columns of `kpi_hourly` and `kpi_daily`),
        /// and the longest wait, the one counter that is a maximum.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct Counters {
            $( $(#[$doc])* pub $field: i64, )+
            /// Largest wait of an offered call; `None` when none was offered.
            pub max_wait_ms: Option<i64>,
        }

        impl Counters {
            /// The additive counters' column names, in declaration order.
            pub const ADDITIVE: &'static [&'static str] = &[$( stringify!($field) ),+];
            /// How many additive counters there are.
            pub const ADDITIVE_LEN: usize = [$( stringify!($field) ),+].len();

            /// The additive counters in [`Counters::ADDITIVE`] order.
            pub fn additive_values(&self) -> [i64; Self::ADDITIVE_LEN] {
                [$( self.$field ),+]
            }

            /// Counters from additive values in [`Counters::ADDITIVE`] order and a maximum wait.
            pub fn from_values(values: [i64; Self::ADDITIVE_LEN], max_wait_ms: Option<i64>) -> Self {
                let [$( $field ),+] = values;
                Counters { $( $field, )+ max_wait_ms }
            }

            /// Adds `o`: sums of the additive counters, the larger maximum.
            pub fn add(&mut self, o: &Counters) {
                $( self.$field += o.$field; )+
                self.max_wait_ms = match (self.max_wait_ms, o.max_wait_ms) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            }

            /// The contribution to take out of a cell: every additive counter negated, no
            /// maximum (a maximum cannot be subtracted; the writer re-reads it when needed).
            pub fn negated(&self) -> Counters {
                Counters { $( $field: -self.$field, )+ max_wait_ms: None }
            }
        }
    };
}

call_counters! {
    /// Every outbound call, whatever its outcome.
    dials,
    /// Answered or abandoned.
    offered,
    /// Answered by an agent (outbound: by a live person).
    answered,
    /// Answered, and its wrap-up finished.
    handled,
    /// The caller (or the outbound live party) hung up before an agent answered.
    abandoned,
    /// Answered with a wait ≤ the service-level threshold.
    answered_within_sl,
    /// Abandoned with a wait ≤ the service-level threshold.
    abandoned_within_sl,
    /// Abandoned with a wait < the short-abandon threshold.
    short_abandoned,
    /// Wait of answered calls.
    answered_wait_ms,
    /// Talk of handled calls.
    handled_talk_ms,
    /// Hold of handled calls.
    handled_hold_ms,
    /// Wrap-up of handled calls.
    handled_wrap_ms,
    /// Outbound calls a live person answered (drops included).
    human_answered,
    /// Outbound calls answered by a machine AND passed to an agent (the AM of the UK rule).
    machine_answered,
    /// Outbound calls abandoned: a live person answered and no agent was free (a drop).
    drops,
    /// Outbound calls whose disposition has the `contact` flag.
    contacts,
    /// Outbound calls whose disposition has the `success` flag.
    successes,
    /// Outbound calls answered by a machine that never reached an agent (the dialler's
    /// answering-machine detection hung up): evidence only, no rate reads it.
    machine_detected,
    /// Short abandons that are also abandoned within the service-level threshold (the two
    /// differ when a campaign's threshold is below the short-abandon threshold): what the
    /// service-level variants take out of their numerator when short abandons are excluded.
    short_abandoned_within_sl,
}

/// The counters the disposition rollups (`kpi_hourly_disposition`, `kpi_daily_disposition`)
/// keep per disposition, in their column order: what the metrics of unit Count read, the only
/// metrics analytics groups by DISPOSITION (a unit test in `analytics::adhoc` holds the two
/// lists together). None depends on a disposition's flags, so changing a flag re-states
/// nothing; `short_abandoned` depends on the short-abandon threshold and is re-stated with the
/// other threshold counters.
pub const DISPOSITION_COUNTERS: [&str; 5] = ["offered", "answered", "handled", "abandoned", "short_abandoned"];

/// What a set of calls adds to one disposition rollup row: how many calls, and the
/// [`DISPOSITION_COUNTERS`] in their order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispositionCounters {
    pub calls: i64,
    pub counters: [i64; DISPOSITION_COUNTERS.len()],
}

impl DispositionCounters {
    /// One call with counters `c`, or its removal (`sign` -1).
    pub fn of_call(c: &Counters, sign: i64) -> Self {
        /// Where each of [`DISPOSITION_COUNTERS`] is in [`Counters::ADDITIVE`] (found once; a
        /// unit test checks that each is there).
        static PLACES: LazyLock<[Option<usize>; DISPOSITION_COUNTERS.len()]> =
            LazyLock::new(|| DISPOSITION_COUNTERS.map(|name| Counters::ADDITIVE.iter().position(|c| *c == name)));
        let values = c.additive_values();
        let counters = PLACES.map(|place| place.map_or(0, |i| values[i] * sign));
        DispositionCounters { calls: sign, counters }
    }

    pub fn add(&mut self, o: &DispositionCounters) {
        self.calls += o.calls;
        for (a, b) in self.counters.iter_mut().zip(o.counters) {
            *a += b;
        }
    }
}

/// The key of a call's disposition rollup rows: its disposition, or [`NONE_KEY`] without one.
pub fn disposition_key(call: &CallFacts) -> Uuid {
    call.disposition_id.unwrap_or(NONE_KEY)
}

/// One rollup cell: the UTC hour of the offer, campaign, agent, direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellKey {
    pub campaign_key: Uuid,
    pub agent_key: Uuid,
    pub hour: DateTime<Utc>,
    pub direction: &'static str,
}

impl CellKey {
    /// The cell itself, its campaign level (all agents), its agent level (all campaigns) and
    /// its organization level.
    pub fn levels(self) -> [CellKey; 4] {
        [
            self,
            CellKey {
                agent_key: ALL_KEY,
                ..self
            },
            CellKey {
                campaign_key: ALL_KEY,
                ..self
            },
            CellKey {
                campaign_key: ALL_KEY,
                agent_key: ALL_KEY,
                ..self
            },
        ]
    }
}

/// The start of the UTC hour containing `at` (integer arithmetic: valid for every instant a
/// `DateTime` can hold, unlike nanosecond-based truncation).
pub fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    let seconds = at.timestamp();
    DateTime::from_timestamp(seconds - seconds.rem_euclid(3_600), 0).unwrap_or(at)
}

/// What one call adds to its cell.
pub fn contribution(call: &CallFacts, rules: &CountingRules) -> (CellKey, Counters) {
    let outbound = call.direction == Direction::Outbound;
    let answered = call.outcome == Outcome::Answered && (!outbound || call.answered_by == Some(AnsweredBy::Human));
    let machine = outbound && call.answered_by == Some(AnsweredBy::Machine);
    // Passed to an agent: the machine's answer was connected to someone (see MACHINE_PASSED_SQL).
    let machine_passed = machine && call.outcome == Outcome::Answered && call.agent_id.is_some();
    let abandoned = call.outcome == Outcome::Abandoned;
    let handled = answered && call.wrap_ended_at.is_some();
    let wait = call.wait_ms.unwrap_or(0);
    let threshold = rules.threshold_ms(call.campaign_id);
    let (contact, success) = call
        .disposition_id
        .and_then(|d| rules.disposition_flags.get(&d).copied())
        .unwrap_or((false, false));
    let n = |b: bool| i64::from(b);
    let short = abandoned && wait < i64::from(rules.short_abandon_s) * 1_000;
    let counters = Counters {
        dials: n(outbound),
        offered: n(answered || abandoned),
        answered: n(answered),
        handled: n(handled),
        abandoned: n(abandoned),
        answered_within_sl: n(answered && wait <= threshold),
        abandoned_within_sl: n(abandoned && wait <= threshold),
        short_abandoned: n(short),
        short_abandoned_within_sl: n(short && wait <= threshold),
        answered_wait_ms: if answered { wait } else { 0 },
        handled_talk_ms: if handled { call.talk_ms } else { 0 },
        handled_hold_ms: if handled { call.hold_ms } else { 0 },
        handled_wrap_ms: if handled { call.wrap_ms } else { 0 },
        max_wait_ms: (answered || abandoned).then_some(wait),
        human_answered: n(outbound && call.answered_by == Some(AnsweredBy::Human)),
        machine_answered: n(machine_passed),
        machine_detected: n(machine && !machine_passed),
        drops: n(outbound && abandoned),
        contacts: n(outbound && contact),
        successes: n(outbound && success),
    };
    let key = CellKey {
        campaign_key: call.campaign_id.unwrap_or(NONE_KEY),
        agent_key: call.agent_id.unwrap_or(NONE_KEY),
        hour: hour_of(call.offered_at),
        direction: call.direction.as_str(),
    };
    (key, counters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_counters_are_call_counters() {
        for name in DISPOSITION_COUNTERS {
            assert!(Counters::ADDITIVE.contains(&name), "{name} is no additive counter");
        }
        let c = Counters {
            offered: 1,
            answered: 2,
            handled: 3,
            abandoned: 4,
            short_abandoned: 5,
            dials: 9,
            ..Counters::default()
        };
        assert_eq!(
            DispositionCounters::of_call(&c, -1),
            DispositionCounters {
                calls: -1,
                counters: [-1, -2, -3, -4, -5]
            }
        );
    }
}

//! Property tests of the KPI engine: for any calls, any agent-state history, any settings and
//! any interval, the answer assembled from the hourly rollups (plus raw edges) equals the
//! direct computation over the raw rows, and both equal the counters computed in plain Rust
//! from the generated rows — independently of either SQL path. Settings changed after the data
//! was written re-state history: the answers still equal the direct computation with the new
//! settings. So do changes of a campaign's service-level override and of disposition flags,
//! made through the management mutations after the data was written.
//!
//! One app (one database) serves the whole run; every case gets a fresh organization.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;
use common::fixture::{CampaignSpec, DispositionSpec, FixtureOrg};
use common::{GqlResponse, TestApp};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use omnivox::auth::{Role, Tenant};
use omnivox::db::contact_centre::NewStateInterval;
use omnivox::db::interactions::NewInteraction;
use omnivox::domain::{AgentState, AnsweredBy, Direction, Outcome, Presence, RoutingState};
use omnivox::kpi::facts::Counters;
use omnivox::kpi::plan::{aggregate_windows, Sourcing};
use omnivox::kpi::query::{AgentTime, Aggregates, Scope};
use omnivox::kpi::writer::{insert_calls, insert_state_intervals};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{json, Value};
use uuid::Uuid;

const HOUR_MS: i64 = 3_600_000;
/// The generated data covers 72 hours from the case's base instant.
const SPAN_MS: i64 = 72 * HOUR_MS;

const VARIANTS: [&str; 5] = [
    "ANSWERED_WITHIN_OVER_OFFERED_EXCLUDING_SHORT_ABANDONS",
    "ANSWERED_WITHIN_OVER_ANSWERED",
    "ANSWERED_AND_ABANDONED_WITHIN_OVER_OFFERED",
    "ANSWERED_WITHIN_OVER_OFFERED",
    "ANSWERED_WITHIN_OVER_OFFERED_EXCLUDING_ABANDONS_WITHIN",
];

const UPDATE_SETTINGS: &str = "mutation($v: Int!, $i: BusinessSettingsInput!) {
  updateBusinessSettings(expectedVersion: $v, input: $i) { version serviceLevelThresholdSeconds shortAbandonSeconds } }";

const SERIES: &str = "query($f: KpiFilter!, $g: Granularity!) {
  kpiSeries(filter: $f, granularity: $g) {
    timezone
    buckets { start end offered answered handled abandoned shortAbandoned serviceLevel averageSpeedOfAnswer
              longestWait occupancy callsPerAgentHour abandonRate }
  } }";

const SUMMARY: &str = "query($f: KpiFilter!) {
  kpiSummary(filter: $f) { offered answered handled abandoned shortAbandoned serviceLevel serviceLevelVariant
                          serviceLevelThresholdSeconds abandonRate serviceLevelExcludesShortAbandons
                          abandonRateExcludesShortAbandons
                          explain { metric evidence { name count } } } }";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn ms(v: i64) -> TimeDelta {
    TimeDelta::milliseconds(v)
}

// ---------------------------------------------------------------------------------------------
// What a case is made of
// ---------------------------------------------------------------------------------------------

/// A wait, possibly placed exactly on (or 1 ms either side of) a threshold of the case.
#[derive(Debug, Clone, Copy)]
enum WaitSpec {
    Absent,
    Millis(i64),
    WholeSeconds(i64),
    /// `which`: 0 first org threshold, 1 campaign override, 2 first short-abandon threshold,
    /// 3 second org threshold, 4 second short-abandon threshold; `delta` in ms (-1, 0, +1).
    AroundThreshold {
        which: u8,
        delta: i64,
    },
}

#[derive(Debug, Clone, Copy)]
struct SettingsSpec {
    threshold_s: i64,
    short_abandon_s: i64,
    variant: usize,
    /// `excludeShortAbandonsFromAbandonRate`.
    short_out_of_abandon_rate: bool,
    /// `excludeShortAbandonsFromServiceLevel`, sent only where the variant leaves the choice.
    short_out_of_service_level: bool,
}

impl SettingsSpec {
    /// The variants 0 (always excludes short abandons) and 1 (counts no abandon) decide.
    fn service_level_choice(&self) -> bool {
        self.short_out_of_service_level && self.variant >= 2
    }

    fn input(&self) -> Value {
        json!({
            "serviceLevelThresholdSeconds": self.threshold_s,
            "shortAbandonSeconds": self.short_abandon_s,
            "serviceLevelVariant": VARIANTS[self.variant],
            "excludeShortAbandonsFromAbandonRate": self.short_out_of_abandon_rate,
            "excludeShortAbandonsFromServiceLevel": self.service_level_choice(),
        })
    }
}

#[derive(Debug, Clone)]
struct CallSpec {
    offset_ms: i64,
    direction: Direction,
    outcome: Outcome,
    answered_by: Option<AnsweredBy>,
    wait: WaitSpec,
    talk_ms: i64,
    hold_ms: i64,
    wrap_ms: i64,
    ended: bool,
    wrap_done: bool,
    /// 0, 1: a campaign; 2: none.
    campaign: usize,
    /// 0..3: an agent; 3: none.
    agent: usize,
    /// 0..5: a disposition; 5: none.
    disposition: usize,
}

/// One agent's history on one axis: (gap before, length, state index) and a final open state.
#[derive(Debug, Clone)]
struct Timeline {
    pieces: Vec<(i64, i64, usize)>,
    open_at_end: bool,
}

#[derive(Debug, Clone)]
struct Case {
    new_york: bool,
    first: SettingsSpec,
    second: SettingsSpec,
    campaign_override_s: i64,
    calls: Vec<CallSpec>,
    /// Calls before this index are written before the settings change, the rest after.
    split: Index,
    batches: usize,
    /// 3 agents x (presence, routing).
    timelines: Vec<Timeline>,
    /// (start offset from base - 1 h, length), ms.
    ranges: Vec<(i64, i64)>,
    granularity: usize,
    catalog: CatalogChange,
}

/// Changes of the campaigns and dispositions made after all calls are written.
#[derive(Debug, Clone)]
struct CatalogChange {
    /// The new service-level override of each campaign; None clears it.
    overrides: [Option<i64>; 2],
    /// The new (contact, success) of each disposition (a success is a contact).
    flags: Vec<(bool, bool)>,
}

fn catalog_strategy() -> impl Strategy<Value = CatalogChange> {
    let threshold = prop_oneof![1 => Just(None), 3 => (1i64..=60).prop_map(Some)];
    let flags = prop_oneof![Just((false, false)), Just((true, false)), Just((true, true))];
    (threshold.clone(), threshold, prop::collection::vec(flags, 5)).prop_map(|(a, b, flags)| CatalogChange {
        overrides: [a, b],
        flags,
    })
}

fn settings_strategy() -> impl Strategy<Value = SettingsSpec> {
    (1i64..=60, 0i64..=10, 0usize..5, any::<bool>(), any::<bool>()).prop_map(
        |(threshold_s, short_abandon_s, variant, short_out_of_abandon_rate, short_out_of_service_level)| SettingsSpec {
            threshold_s,
            short_abandon_s,
            variant,
            short_out_of_abandon_rate,
            short_out_of_service_level,
        },
    )
}

fn wait_strategy() -> impl Strategy<Value = WaitSpec> {
    prop_oneof![
        1 => Just(WaitSpec::Absent),
        3 => (0i64..120_000).prop_map(WaitSpec::Millis),
        2 => (0i64..=70).prop_map(WaitSpec::WholeSeconds),
        4 => (0u8..5, -1i64..=1).prop_map(|(which, delta)| WaitSpec::AroundThreshold { which, delta }),
    ]
}

fn offset_strategy() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => 0i64..SPAN_MS,
        1 => (0i64..72).prop_map(|h| h * HOUR_MS),
        1 => (1i64..72).prop_map(|h| h * HOUR_MS - 1),
        2 => (0i64..72 * 60).prop_map(|m| m * 60_000),
    ]
}

fn call_strategy() -> impl Strategy<Value = CallSpec> {
    let outcome = prop_oneof![
        5 => Just(Outcome::Answered),
        4 => Just(Outcome::Abandoned),
        1 => Just(Outcome::NoAnswer),
        1 => Just(Outcome::Busy),
        1 => Just(Outcome::InProgress),
        1 => Just(Outcome::Failed),
    ];
    let answered_by = prop_oneof![
        Just(None),
        Just(Some(AnsweredBy::Human)),
        Just(Some(AnsweredBy::Machine))
    ];
    let direction = prop_oneof![Just(Direction::Inbound), Just(Direction::Outbound)];
    (
        offset_strategy(),
        direction,
        outcome,
        answered_by,
        wait_strategy(),
        (
            0i64..900_000,
            prop_oneof![Just(0i64), 0i64..120_000],
            prop_oneof![Just(0i64), 0i64..180_000],
        ),
        (prop::bool::weighted(0.9), prop::bool::weighted(0.7)),
        (0usize..3, 0usize..4, 0usize..6),
    )
        .prop_map(
            |(
                offset_ms,
                direction,
                outcome,
                answered_by,
                wait,
                (talk_ms, hold_ms, wrap_ms),
                (ended, wrap_done),
                (c, a, d),
            )| {
                CallSpec {
                    offset_ms,
                    direction,
                    outcome,
                    answered_by,
                    wait,
                    talk_ms,
                    hold_ms,
                    wrap_ms,
                    ended,
                    wrap_done,
                    campaign: c,
                    agent: a,
                    disposition: d,
                }
            },
        )
}

fn timeline_strategy() -> impl Strategy<Value = Timeline> {
    (
        prop::collection::vec((0i64..20 * 60_000, 1i64..150 * 60_000, 0usize..7), 0..14),
        any::<bool>(),
    )
        .prop_map(|(pieces, open_at_end)| Timeline { pieces, open_at_end })
}

fn range_strategy() -> impl Strategy<Value = (i64, i64)> {
    prop_oneof![
        // Arbitrary minutes.
        (0i64..74 * 60, 1i64..74 * 60).prop_map(|(s, l)| (s * 60_000, l * 60_000)),
        // Whole hours.
        (0i64..74, 1i64..74).prop_map(|(s, l)| (s * HOUR_MS, l * HOUR_MS)),
        // Arbitrary milliseconds.
        (0i64..SPAN_MS, 1i64..SPAN_MS),
        // Short: inside one hour or across one boundary.
        (0i64..74 * 60, 1i64..90).prop_map(|(s, l)| (s * 60_000, l * 60_000)),
    ]
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        settings_strategy(),
        settings_strategy(),
        1i64..=60,
        prop::collection::vec(call_strategy(), 20..200),
        any::<Index>(),
        1usize..=3,
        prop::collection::vec(timeline_strategy(), 6),
        prop::collection::vec(range_strategy(), 3..8),
        0usize..3,
        catalog_strategy(),
    )
        .prop_map(
            |(
                new_york,
                first,
                second,
                campaign_override_s,
                calls,
                split,
                batches,
                timelines,
                ranges,
                granularity,
                catalog,
            )| {
                Case {
                    new_york,
                    first,
                    second,
                    campaign_override_s,
                    calls,
                    split,
                    batches,
                    timelines,
                    ranges,
                    granularity,
                    catalog,
                }
            },
        )
}

// ---------------------------------------------------------------------------------------------
// The organization a case writes into
// ---------------------------------------------------------------------------------------------

struct World {
    org: FixtureOrg,
    tenant: Tenant,
    /// [inbound with an SL override, outbound without].
    campaigns: [Uuid; 2],
    agents: [Uuid; 3],
    /// (id, contact, success).
    dispositions: Vec<(Uuid, bool, bool)>,
}

async fn build_world(app: &TestApp, slug: &str, override_s: i64) -> World {
    // (disposition, contact, success)
    let kinds = [
        (DispositionSpec::new("PLAIN"), false, false),
        (DispositionSpec::new("HUMAN").human(), false, false),
        (DispositionSpec::new("CONTACT").contact(), true, false),
        (DispositionSpec::new("SALE").contact().success(), true, true),
        (DispositionSpec::new("MACHINE").machine(), false, false),
    ];
    let org = FixtureOrg::builder(slug)
        .dispositions(kinds.iter().map(|k| k.0))
        .campaign(CampaignSpec::inbound("Support"))
        .campaign(CampaignSpec::outbound("Sales"))
        .agents(["Ada", "Ben", "Cy"])
        .state_since(at("2026-01-01T00:00:00Z"))
        .build(&app.state)
        .await;
    let tenant = org.tenant;
    let mut conn = app.state.system_db.get().await.unwrap();
    let campaigns: [Uuid; 2] = org.campaigns[..].try_into().unwrap();
    let agents: [Uuid; 3] = org.agents[..].try_into().unwrap();
    diesel::sql_query("UPDATE campaigns SET service_level_threshold_seconds = $1 WHERE id = $2")
        .bind::<diesel::sql_types::Int4, _>(i32::try_from(override_s).unwrap())
        .bind::<diesel::sql_types::Uuid, _>(campaigns[0])
        .execute(&mut conn)
        .await
        .unwrap();
    let dispositions = org
        .dispositions
        .iter()
        .zip(kinds)
        .map(|(id, (_, c, s))| (*id, c, s))
        .collect();
    World {
        org,
        tenant,
        campaigns,
        agents,
        dispositions,
    }
}

fn base_of(case: &Case) -> (DateTime<Utc>, Tz, (DateTime<Utc>, DateTime<Utc>)) {
    if case.new_york {
        // Local midnight of 2026-10-31 (EDT); 2026-11-01 has 25 hours (04:00Z to 05:00Z next day).
        (
            at("2026-10-31T04:00:00Z"),
            chrono_tz::America::New_York,
            (at("2026-11-01T04:00:00Z"), at("2026-11-02T05:00:00Z")),
        )
    } else {
        // 2026-03-29 has 23 hours in London (00:00Z to 23:00Z).
        (
            at("2026-03-28T00:00:00Z"),
            chrono_tz::Europe::London,
            (at("2026-03-29T00:00:00Z"), at("2026-03-29T23:00:00Z")),
        )
    }
}

fn build_calls(case: &Case, base: DateTime<Utc>, world: &World) -> Vec<NewInteraction> {
    let thresholds = [
        case.first.threshold_s,
        case.campaign_override_s,
        case.first.short_abandon_s,
        case.second.threshold_s,
        case.second.short_abandon_s,
    ];
    case.calls
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let wait_ms = match spec.wait {
                WaitSpec::Absent => None,
                WaitSpec::Millis(v) => Some(v),
                WaitSpec::WholeSeconds(s) => Some(s * 1_000),
                WaitSpec::AroundThreshold { which, delta } => {
                    Some((thresholds[usize::from(which)] * 1_000 + delta).max(0))
                }
            };
            let offered_at = base + ms(spec.offset_ms);
            let wait = wait_ms.unwrap_or(0);
            let answered = spec.outcome == Outcome::Answered;
            let answered_at = answered.then(|| offered_at + ms(wait));
            let ended_at = spec.ended.then(|| {
                offered_at
                    + ms(wait)
                    + if answered {
                        ms(spec.talk_ms + spec.hold_ms)
                    } else {
                        TimeDelta::zero()
                    }
            });
            let wrap_ended_at = if spec.wrap_done {
                ended_at.map(|e| e + ms(spec.wrap_ms))
            } else {
                None
            };
            NewInteraction {
                campaign_id: world.campaigns.get(spec.campaign).copied(),
                agent_id: world.agents.get(spec.agent).copied(),
                external_id: format!("call-{i}"),
                direction: spec.direction,
                customer_number: None,
                offered_at,
                answered_at,
                ended_at,
                wrap_ended_at,
                wait_ms,
                talk_ms: spec.talk_ms,
                hold_ms: spec.hold_ms,
                wrap_ms: spec.wrap_ms,
                outcome: spec.outcome,
                disposition_id: world.dispositions.get(spec.disposition).map(|d| d.0),
                answered_by: spec.answered_by,
                notes: None,
            }
        })
        .collect()
}

const PRESENCES: [Presence; 7] = [
    Presence::Available,
    Presence::Break,
    Presence::Lunch,
    Presence::Training,
    Presence::Meeting,
    Presence::Away,
    Presence::Offline,
];
const ROUTING: [RoutingState; 4] = [
    RoutingState::Idle,
    RoutingState::Ringing,
    RoutingState::OnCall,
    RoutingState::WrapUp,
];

fn build_intervals(case: &Case, base: DateTime<Utc>, world: &World) -> Vec<NewStateInterval> {
    let mut out = Vec::new();
    for (i, timeline) in case.timelines.iter().enumerate() {
        let agent_id = world.agents[i / 2];
        let state = |k: usize| {
            if i % 2 == 0 {
                AgentState::Presence(PRESENCES[k % PRESENCES.len()])
            } else {
                AgentState::Routing(ROUTING[k % ROUTING.len()])
            }
        };
        // Histories start before the data so that intervals straddle the ranges' edges.
        let mut cursor = base - TimeDelta::minutes(90);
        for &(gap, len, k) in &timeline.pieces {
            let started_at = cursor + ms(gap);
            let ended_at = started_at + ms(len);
            out.push(NewStateInterval {
                agent_id,
                state: state(k),
                reason: None,
                started_at,
                ended_at: Some(ended_at),
            });
            cursor = ended_at;
        }
        if timeline.open_at_end {
            out.push(NewStateInterval {
                agent_id,
                state: state(0),
                reason: None,
                started_at: cursor,
                ended_at: None,
            });
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The expected answers, in plain Rust, from the generated rows
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Rules {
    threshold_s: i64,
    short_abandon_s: i64,
    campaign_threshold_s: HashMap<Uuid, i64>,
    /// Disposition → (contact, success).
    flags: HashMap<Uuid, (bool, bool)>,
}

fn in_scope(call: &NewInteraction, scope: &Scope) -> bool {
    scope
        .campaign_ids
        .as_ref()
        .is_none_or(|ids| call.campaign_id.is_some_and(|c| ids.contains(&c)))
        && scope
            .agent_ids
            .as_ref()
            .is_none_or(|ids| call.agent_id.is_some_and(|a| ids.contains(&a)))
        && scope.direction.is_none_or(|d| d == call.direction)
}

fn expected_counters(
    calls: &[NewInteraction],
    rules: &Rules,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    scope: &Scope,
) -> Counters {
    let mut c = Counters::default();
    for call in calls
        .iter()
        .filter(|c| c.offered_at >= from && c.offered_at < to && in_scope(c, scope))
    {
        let outbound = call.direction == Direction::Outbound;
        let human = call.answered_by == Some(AnsweredBy::Human);
        let answered = call.outcome == Outcome::Answered && (!outbound || human);
        let abandoned = call.outcome == Outcome::Abandoned;
        let handled = answered && call.wrap_ended_at.is_some();
        let wait = call.wait_ms.unwrap_or(0);
        let t_s = call
            .campaign_id
            .and_then(|id| rules.campaign_threshold_s.get(&id).copied())
            .unwrap_or(rules.threshold_s);
        let within = wait <= t_s * 1_000;
        let (contact, success) = call
            .disposition_id
            .and_then(|d| rules.flags.get(&d).copied())
            .unwrap_or_default();
        if outbound {
            let machine = call.answered_by == Some(AnsweredBy::Machine);
            // Ofcom's AM: machine answers connected to an agent; the others are evidence only.
            let passed_to_agent = call.outcome == Outcome::Answered && call.agent_id.is_some();
            c.dials += 1;
            c.human_answered += i64::from(human);
            c.machine_answered += i64::from(machine && passed_to_agent);
            c.machine_detected += i64::from(machine && !passed_to_agent);
            c.drops += i64::from(abandoned);
            c.contacts += i64::from(contact);
            c.successes += i64::from(success);
        }
        if answered {
            c.answered += 1;
            c.answered_within_sl += i64::from(within);
            c.answered_wait_ms += wait;
        }
        if abandoned {
            c.abandoned += 1;
            c.abandoned_within_sl += i64::from(within);
            let short = wait < rules.short_abandon_s * 1_000;
            c.short_abandoned += i64::from(short);
            c.short_abandoned_within_sl += i64::from(short && within);
        }
        if answered || abandoned {
            c.offered += 1;
            c.max_wait_ms = Some(c.max_wait_ms.map_or(wait, |m| m.max(wait)));
        }
        if handled {
            c.handled += 1;
            c.handled_talk_ms += call.talk_ms;
            c.handled_hold_ms += call.hold_ms;
            c.handled_wrap_ms += call.wrap_ms;
        }
    }
    c
}

fn add_state_time(t: &mut AgentTime, axis: &str, state: &str, us: i64) {
    match (axis, state) {
        ("ROUTING", "ON_CALL") => t.on_call_us += us,
        ("ROUTING", "WRAP_UP") => t.wrap_up_us += us,
        ("PRESENCE", "OFFLINE") => {}
        ("PRESENCE", presence) => {
            t.logged_in_us += us;
            if presence == "AVAILABLE" {
                t.available_us += us;
            }
        }
        _ => {}
    }
}

fn expected_agent_time(
    intervals: &[NewStateInterval],
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    scope: &Scope,
) -> AgentTime {
    let mut t = AgentTime::default();
    for interval in intervals {
        let Some(end) = interval.ended_at else { continue };
        if scope
            .agent_ids
            .as_ref()
            .is_some_and(|ids| !ids.contains(&interval.agent_id))
        {
            continue;
        }
        let (s, e) = (interval.started_at.max(from), end.min(to));
        if s < e {
            add_state_time(
                &mut t,
                interval.state.axis(),
                interval.state.as_str(),
                (e - s).num_microseconds().unwrap(),
            );
        }
    }
    t
}

fn expected(
    calls: &[NewInteraction],
    intervals: &[NewStateInterval],
    rules: &Rules,
    range: (DateTime<Utc>, DateTime<Utc>),
    scope: &Scope,
) -> Aggregates {
    Aggregates {
        calls: expected_counters(calls, rules, range, scope),
        agents: expected_agent_time(intervals, range, scope),
    }
}

/// Service level by the settings' variant, in percent; None when the denominator is 0. Short
/// abandons excluded (variant 0 always; 2–4 when the organization says so) leave the numerator
/// (those within T) and the denominator.
fn expected_service_level(settings: &SettingsSpec, c: &Counters) -> Option<f64> {
    let (aw, bw, ans, abn) = (c.answered_within_sl, c.abandoned_within_sl, c.answered, c.abandoned);
    let (short, short_within) = if settings.variant == 0 || settings.service_level_choice() {
        (c.short_abandoned, c.short_abandoned_within_sl)
    } else {
        (0, 0)
    };
    let (numerator, denominator) = match settings.variant {
        0 => (aw, ans + abn - short),
        1 => (aw, ans),
        2 => (aw + bw - short_within, ans + abn - short),
        3 => (aw, ans + abn - short),
        // Abandons after T, less the short ones after T.
        _ => (aw, ans + (abn - bw) - (short - short_within)),
    };
    (denominator != 0).then(|| numerator as f64 / denominator as f64 * 100.0)
}

/// Abandon rate in percent, short abandons excluded from both sides when the settings say so.
fn expected_abandon_rate(settings: &SettingsSpec, c: &Counters) -> Option<f64> {
    let short = if settings.short_out_of_abandon_rate {
        c.short_abandoned
    } else {
        0
    };
    let denominator = c.offered - short;
    (denominator != 0).then(|| (c.abandoned - short) as f64 / denominator as f64 * 100.0)
}

fn close(got: Option<f64>, want: Option<f64>) -> bool {
    match (got, want) {
        (None, None) => true,
        (Some(g), Some(w)) => (g - w).abs() <= 1e-9 * w.abs().max(1.0),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------------------------

fn scopes(world: &World) -> Vec<Scope> {
    let [a, b] = world.campaigns;
    let [x, y, z] = world.agents;
    vec![
        Scope::default(),
        Scope {
            campaign_ids: Some(vec![a]),
            ..Scope::default()
        },
        Scope {
            campaign_ids: Some(vec![b]),
            ..Scope::default()
        },
        Scope {
            campaign_ids: Some(vec![a, b]),
            ..Scope::default()
        },
        Scope {
            agent_ids: Some(vec![x]),
            ..Scope::default()
        },
        Scope {
            agent_ids: Some(vec![y, z]),
            ..Scope::default()
        },
        Scope {
            agent_ids: Some(Vec::new()),
            ..Scope::default()
        },
        Scope {
            direction: Some(Direction::Inbound),
            ..Scope::default()
        },
        Scope {
            direction: Some(Direction::Outbound),
            ..Scope::default()
        },
        Scope {
            campaign_ids: Some(vec![a]),
            agent_ids: Some(vec![x, y]),
            direction: Some(Direction::Inbound),
        },
        Scope {
            campaign_ids: Some(vec![b]),
            agent_ids: None,
            direction: Some(Direction::Outbound),
        },
    ]
}

/// The whole UTC hours inside a range, if any.
fn inner_hours((from, to): (DateTime<Utc>, DateTime<Utc>)) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let floor =
        |t: DateTime<Utc>| t - TimeDelta::nanoseconds(t.timestamp_nanos_opt().unwrap().rem_euclid(3_600_000_000_000));
    let start = if floor(from) == from {
        from
    } else {
        floor(from) + TimeDelta::hours(1)
    };
    let end = floor(to);
    (start < end).then_some((start, end))
}

/// Rollups + edges, raw SQL, rollups alone (whole hours) and plain Rust agree on every range
/// and scope.
async fn check_exact(
    conn: &mut AsyncPgConnection,
    world: &World,
    calls: &[NewInteraction],
    intervals: &[NewStateInterval],
    rules: &Rules,
    ranges: &[(DateTime<Utc>, DateTime<Utc>)],
    phase: &str,
) -> Result<(), TestCaseError> {
    let tenant = &world.tenant;
    let (_, zone) = omnivox::kpi::organization_rule(conn, tenant).await.unwrap();
    for scope in scopes(world) {
        let planned = aggregate_windows(conn, tenant, ranges, &scope, Sourcing::Planned(zone))
            .await
            .unwrap();
        let raw_only = aggregate_windows(conn, tenant, ranges, &scope, Sourcing::RawOnly)
            .await
            .unwrap();
        for (i, range) in ranges.iter().enumerate() {
            let want = expected(calls, intervals, rules, *range, &scope);
            prop_assert_eq!(
                raw_only[i],
                want,
                "{}: raw SQL vs plain Rust, range {:?}, scope {:?}",
                phase,
                range,
                scope
            );
            prop_assert_eq!(
                planned[i],
                want,
                "{}: rollups+edges vs plain Rust, range {:?}, scope {:?}",
                phase,
                range,
                scope
            );
            if let Some(hours) = inner_hours(*range) {
                let rolled = aggregate_windows(conn, tenant, &[hours], &scope, Sourcing::HourlyRollupsOnly)
                    .await
                    .unwrap()[0];
                let want = expected(calls, intervals, rules, hours, &scope);
                prop_assert_eq!(
                    rolled,
                    want,
                    "{}: rollups alone vs plain Rust, hours {:?}, scope {:?}",
                    phase,
                    hours,
                    scope
                );
            }
        }
    }
    Ok(())
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn parse_time(v: &Value) -> DateTime<Utc> {
    at(v.as_str().unwrap())
}

/// The GraphQL series over `range`: buckets follow the org's zone, are contiguous and clipped,
/// and each bucket's values equal the plain-Rust computation over that bucket.
#[allow(clippy::too_many_arguments)]
async fn check_series(
    app: &TestApp,
    token: &str,
    tz: Tz,
    calls: &[NewInteraction],
    intervals: &[NewStateInterval],
    rules: &Rules,
    settings: &SettingsSpec,
    range: (DateTime<Utc>, DateTime<Utc>),
    granularity: usize,
) -> Result<(), TestCaseError> {
    let name = ["FIFTEEN_MINUTES", "HOUR", "DAY"][granularity];
    let response: GqlResponse = app
        .gql(
            Some(token),
            SERIES,
            json!({ "f": { "from": range.0.to_rfc3339(), "to": range.1.to_rfc3339() }, "g": name }),
        )
        .await;
    let series = &response.ok()["kpiSeries"];
    prop_assert_eq!(series["timezone"].as_str(), Some(tz.name()));
    let buckets = series["buckets"].as_array().unwrap();
    prop_assert!(!buckets.is_empty());
    prop_assert_eq!(parse_time(&buckets[0]["start"]), range.0);
    prop_assert_eq!(parse_time(&buckets[buckets.len() - 1]["end"]), range.1);
    let scope = Scope::default();
    for (i, bucket) in buckets.iter().enumerate() {
        let (start, end) = (parse_time(&bucket["start"]), parse_time(&bucket["end"]));
        prop_assert!(start < end, "{} bucket {} is empty: {}", name, i, bucket);
        if i > 0 {
            prop_assert_eq!(
                start,
                parse_time(&buckets[i - 1]["end"]),
                "{} buckets are contiguous",
                name
            );
            let local = start.with_timezone(&tz);
            match granularity {
                0 => prop_assert!(
                    local.minute() % 15 == 0 && local.second() == 0,
                    "{} starts at {}",
                    name,
                    local
                ),
                1 => prop_assert!(
                    local.minute() == 0 && local.second() == 0,
                    "{} starts at {}",
                    name,
                    local
                ),
                _ => prop_assert!(local.hour() == 0 && local.minute() == 0, "{} starts at {}", name, local),
            }
        }
        let want = expected(calls, intervals, rules, (start, end), &scope);
        let c = &want.calls;
        for (field, value) in [
            ("offered", c.offered),
            ("answered", c.answered),
            ("handled", c.handled),
            ("abandoned", c.abandoned),
            ("shortAbandoned", c.short_abandoned),
        ] {
            prop_assert_eq!(bucket[field].as_i64(), Some(value), "{} bucket {}: {}", name, i, field);
        }
        let asa = (c.answered > 0).then(|| c.answered_wait_ms as f64 / 1_000.0 / c.answered as f64);
        let longest = c.max_wait_ms.map(|w| w as f64 / 1_000.0);
        let hours = |us: i64| us as f64 / 3_600_000_000.0;
        let t = &want.agents;
        let occupancy =
            (t.available_us > 0).then(|| hours(t.on_call_us + t.wrap_up_us) / hours(t.available_us) * 100.0);
        let per_hour = (t.logged_in_us > 0).then(|| c.handled as f64 / hours(t.logged_in_us));
        for (field, value) in [
            ("serviceLevel", expected_service_level(settings, c)),
            ("abandonRate", expected_abandon_rate(settings, c)),
            ("averageSpeedOfAnswer", asa),
            ("longestWait", longest),
            ("occupancy", occupancy),
            ("callsPerAgentHour", per_hour),
        ] {
            prop_assert!(
                close(number(&bucket[field]), value),
                "{} bucket {}: {} = {} want {:?}",
                name,
                i,
                field,
                bucket[field],
                value
            );
        }
    }
    Ok(())
}

async fn update_settings(app: &TestApp, token: &str, version: &mut i64, input: Value) {
    let response = app
        .gql(Some(token), UPDATE_SETTINGS, json!({ "v": *version, "i": input }))
        .await;
    let updated = &response.ok()["updateBusinessSettings"];
    *version = updated["version"].as_i64().unwrap();
}

async fn insert_in_batches(conn: &mut AsyncPgConnection, tenant: &Tenant, calls: &[NewInteraction], batches: usize) {
    if calls.is_empty() {
        return;
    }
    let size = calls.len().div_ceil(batches).max(1);
    for chunk in calls.chunks(size) {
        insert_calls(conn, tenant, chunk).await.unwrap();
    }
}

/// What the run exercised, so that a vacuous pass (no threshold ever mattered) is caught.
#[derive(Default)]
struct Coverage {
    offered: AtomicUsize,
    restated: AtomicUsize,
    short_abandoned: AtomicUsize,
    machine_to_agent: AtomicUsize,
    machine_detected: AtomicUsize,
    within: AtomicUsize,
    not_within: AtomicUsize,
    /// Cases whose campaign or disposition change altered some counter of history.
    catalog_restated: AtomicUsize,
}

async fn run_case(app: &TestApp, n: usize, case: &Case, coverage: &Coverage) -> Result<(), TestCaseError> {
    let world = build_world(app, &format!("p{n}"), case.campaign_override_s).await;
    let admin = world.org.token(&app.state, Role::Admin).await;
    let viewer = world.org.token(&app.state, Role::Viewer).await;
    let (base, tz, dst_day) = base_of(case);
    let mut version = 1;
    update_settings(app, &admin, &mut version, {
        let mut input = case.first.input();
        input["timezone"] = tz.name().into();
        input
    })
    .await;

    let calls = build_calls(case, base, &world);
    let intervals = build_intervals(case, base, &world);
    let split = case.split.index(calls.len() + 1);
    let mut conn = app.state.system_db.get().await.unwrap();
    insert_in_batches(&mut conn, &world.tenant, &calls[..split], case.batches).await;
    let (a, b) = intervals.split_at(intervals.len() / 2);
    insert_state_intervals(&mut conn, &world.tenant, a).await.unwrap();
    insert_state_intervals(&mut conn, &world.tenant, b).await.unwrap();

    let mut ranges: Vec<(DateTime<Utc>, DateTime<Utc>)> = vec![
        (base - TimeDelta::hours(2), base + TimeDelta::hours(74)),
        dst_day,
        (base - TimeDelta::hours(3), base - TimeDelta::hours(2)),
    ];
    let origin = base - TimeDelta::hours(1);
    ranges.extend(case.ranges.iter().map(|&(s, l)| (origin + ms(s), origin + ms(s + l))));

    let mut rules = Rules {
        threshold_s: case.first.threshold_s,
        short_abandon_s: case.first.short_abandon_s,
        campaign_threshold_s: HashMap::from([(world.campaigns[0], case.campaign_override_s)]),
        flags: world.dispositions.iter().map(|&(id, c, s)| (id, (c, s))).collect(),
    };
    check_exact(
        &mut conn,
        &world,
        &calls[..split],
        &intervals,
        &rules,
        &ranges,
        "before the settings change",
    )
    .await?;
    check_series(
        app,
        &viewer,
        tz,
        &calls[..split],
        &intervals,
        &rules,
        &case.first,
        ranges[3],
        case.granularity,
    )
    .await?;
    check_disposition_rollups(
        &mut conn,
        &world.tenant,
        &calls[..split],
        &rules,
        "before the settings change",
    )
    .await?;
    for range in [ranges[0], ranges[3]] {
        check_analytics_by_disposition(
            app,
            &admin,
            &world,
            &calls[..split],
            &rules,
            range,
            "before the settings change",
        )
        .await?;
    }

    // Thresholds change after the fact: history is re-stated; later calls use the new rules.
    update_settings(app, &admin, &mut version, case.second.input()).await;
    insert_in_batches(&mut conn, &world.tenant, &calls[split..], case.batches).await;
    let whole = ranges[0];
    let before = expected_counters(&calls[..split], &rules, whole, &Scope::default());
    rules.threshold_s = case.second.threshold_s;
    rules.short_abandon_s = case.second.short_abandon_s;
    let restated = expected_counters(&calls[..split], &rules, whole, &Scope::default());
    let bump = |counter: &AtomicUsize, n: i64| counter.fetch_add(usize::try_from(n).unwrap(), Ordering::Relaxed);
    bump(&coverage.restated, i64::from(before != restated));
    check_exact(
        &mut conn,
        &world,
        &calls,
        &intervals,
        &rules,
        &ranges,
        "after the settings change",
    )
    .await?;
    check_series(app, &viewer, tz, &calls, &intervals, &rules, &case.second, dst_day, 1).await?;

    let response = app
        .gql(
            Some(&viewer),
            SUMMARY,
            json!({ "f": { "from": whole.0.to_rfc3339(), "to": whole.1.to_rfc3339() } }),
        )
        .await;
    let summary = &response.ok()["kpiSummary"];
    let want = expected_counters(&calls, &rules, whole, &Scope::default());
    prop_assert_eq!(summary["offered"].as_i64(), Some(want.offered));
    prop_assert_eq!(summary["shortAbandoned"].as_i64(), Some(want.short_abandoned));
    prop_assert_eq!(
        summary["serviceLevelVariant"].as_str(),
        Some(VARIANTS[case.second.variant])
    );
    prop_assert_eq!(
        summary["serviceLevelThresholdSeconds"].as_i64(),
        Some(case.second.threshold_s)
    );
    prop_assert!(close(
        number(&summary["serviceLevel"]),
        expected_service_level(&case.second, &want)
    ));
    prop_assert!(close(
        number(&summary["abandonRate"]),
        expected_abandon_rate(&case.second, &want)
    ));
    prop_assert_eq!(
        summary["serviceLevelExcludesShortAbandons"].as_bool(),
        Some(case.second.variant == 0 || case.second.service_level_choice())
    );
    prop_assert_eq!(
        summary["abandonRateExcludesShortAbandons"].as_bool(),
        Some(case.second.short_out_of_abandon_rate)
    );
    // The UK rate's evidence: machines passed to agents (AM) and those detection hung up on.
    let uk = summary["explain"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["metric"] == "outboundAbandonRateUk")
        .unwrap();
    let evidence = |name: &str| {
        uk["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["count"].as_i64())
    };
    prop_assert_eq!(evidence("machineAnswersToAgents"), Some(want.machine_answered));
    prop_assert_eq!(
        evidence("machineAnswersDetectedNotCounted"),
        Some(want.machine_detected)
    );
    check_analytics_by_date(app, &admin, tz, &calls, &rules, whole, "after the settings change").await?;
    check_daily_rollups(&mut conn, &world.tenant, "after the settings change").await?;
    check_disposition_rollups(&mut conn, &world.tenant, &calls, &rules, "after the settings change").await?;
    for range in ranges.iter().copied() {
        check_analytics_by_disposition(app, &admin, &world, &calls, &rules, range, "after the settings change").await?;
    }

    // Campaign overrides and disposition flags change after the fact: their calls are re-stated.
    let before = expected_counters(&calls, &rules, whole, &Scope::default());
    change_catalog(app, &admin, &world, &case.catalog, &mut rules).await;
    let restated = expected_counters(&calls, &rules, whole, &Scope::default());
    bump(&coverage.catalog_restated, i64::from(before != restated));
    let when = "after the campaign and disposition changes";
    check_exact(&mut conn, &world, &calls, &intervals, &rules, &ranges, when).await?;
    check_series(
        app,
        &viewer,
        tz,
        &calls,
        &intervals,
        &rules,
        &case.second,
        ranges[3],
        case.granularity,
    )
    .await?;
    check_daily_rollups(&mut conn, &world.tenant, when).await?;
    check_disposition_rollups(&mut conn, &world.tenant, &calls, &rules, when).await?;
    check_analytics_by_disposition(app, &admin, &world, &calls, &rules, whole, when).await?;
    check_contact_rates(app, &viewer, &calls, &rules, whole, when).await?;

    // A new time zone re-keys the daily rollups by the new local dates, in the same transaction.
    let other = if tz == chrono_tz::Europe::London {
        chrono_tz::America::New_York
    } else {
        chrono_tz::Europe::London
    };
    update_settings(app, &admin, &mut version, json!({ "timezone": other.name() })).await;
    check_daily_rollups(&mut conn, &world.tenant, "after the time-zone change").await?;
    check_analytics_by_date(app, &admin, other, &calls, &rules, whole, "after the time-zone change").await?;
    check_analytics_by_disposition(app, &admin, &world, &calls, &rules, whole, "after the time-zone change").await?;

    bump(&coverage.offered, want.offered);
    bump(&coverage.short_abandoned, want.short_abandoned);
    bump(&coverage.machine_to_agent, want.machine_answered);
    bump(&coverage.machine_detected, want.machine_detected);
    bump(&coverage.within, want.answered_within_sl + want.abandoned_within_sl);
    bump(
        &coverage.not_within,
        want.offered - want.answered_within_sl - want.abandoned_within_sl,
    );
    Ok(())
}

/// Changes each campaign's override and each disposition's flags through the ADMIN mutations,
/// and `rules` with them.
async fn change_catalog(app: &TestApp, token: &str, world: &World, change: &CatalogChange, rules: &mut Rules) {
    const CAMPAIGN: &str = "mutation($id: ID!, $i: UpdateCampaignInput!) {
        updateCampaign(id: $id, input: $i) { serviceLevelThresholdSeconds } }";
    const DISPOSITION: &str = "mutation($id: ID!, $i: UpdateDispositionInput!) {
        updateDisposition(id: $id, input: $i) { contact success } }";
    for (id, threshold) in world.campaigns.iter().zip(change.overrides) {
        let response = app
            .gql(
                Some(token),
                CAMPAIGN,
                json!({ "id": id, "i": { "serviceLevelThresholdSeconds": threshold } }),
            )
            .await;
        assert_eq!(
            response.ok()["updateCampaign"]["serviceLevelThresholdSeconds"].as_i64(),
            threshold
        );
        match threshold {
            Some(t) => rules.campaign_threshold_s.insert(*id, t),
            None => rules.campaign_threshold_s.remove(id),
        };
    }
    for ((id, _, _), (contact, success)) in world.dispositions.iter().zip(&change.flags) {
        // A contact is a human answer, never a machine's.
        let mut input = json!({ "contact": contact, "success": success });
        if *contact {
            input["humanAnswered"] = true.into();
            input["answeringMachine"] = false.into();
        }
        let response = app.gql(Some(token), DISPOSITION, json!({ "id": id, "i": input })).await;
        assert_eq!(
            response.ok()["updateDisposition"],
            json!({ "contact": contact, "success": success })
        );
        rules.flags.insert(*id, (*contact, *success));
    }
}

/// kpiSummary's contact and conversion rates over `range` (read from the rollups) equal the
/// rates computed in Rust with the flags in force.
async fn check_contact_rates(
    app: &TestApp,
    token: &str,
    calls: &[NewInteraction],
    rules: &Rules,
    range: (DateTime<Utc>, DateTime<Utc>),
    when: &str,
) -> Result<(), TestCaseError> {
    let response = app
        .gql(
            Some(token),
            "query($f: KpiFilter!) { kpiSummary(filter: $f) { contactRate conversionRate } }",
            json!({ "f": { "from": range.0.to_rfc3339(), "to": range.1.to_rfc3339() } }),
        )
        .await;
    let summary = &response.ok()["kpiSummary"];
    let c = expected_counters(calls, rules, range, &Scope::default());
    let rate = |n: i64, d: i64| (d != 0).then(|| n as f64 / d as f64 * 100.0);
    prop_assert!(
        close(number(&summary["contactRate"]), rate(c.contacts, c.dials)),
        "contact rate {} {}",
        summary,
        when
    );
    prop_assert!(
        close(number(&summary["conversionRate"]), rate(c.successes, c.contacts)),
        "conversion rate {} {}",
        summary,
        when
    );
    Ok(())
}

/// The hourly disposition rollups hold, for every (hour, campaign key, agent key, direction,
/// disposition or none) at the four levels, the calls and the counts computed in plain Rust
/// from the generated calls with the rules in force: row for row, no row missing, none extra
/// (rows whose numbers are all zero aside).
async fn check_disposition_rollups(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    calls: &[NewInteraction],
    rules: &Rules,
    when: &str,
) -> Result<(), TestCaseError> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Timestamptz)]
        hour: DateTime<Utc>,
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        campaign_key: Uuid,
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        agent_key: Uuid,
        #[diesel(sql_type = diesel::sql_types::Text)]
        direction: String,
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        disposition_id: Uuid,
        #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::BigInt>)]
        numbers: Vec<i64>,
    }
    type Key = (DateTime<Utc>, Uuid, Uuid, String, Uuid);
    let stored: Vec<Row> = diesel::sql_query(
        "SELECT hour, campaign_key, agent_key, direction, disposition_id,
                ARRAY[calls, offered, answered, handled, abandoned, short_abandoned] AS numbers
         FROM kpi_hourly_disposition WHERE organization_id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(tenant.org_id())
    .load(conn)
    .await
    .unwrap();
    let got: HashMap<Key, Vec<i64>> = stored
        .into_iter()
        .filter(|r| r.numbers.iter().any(|n| *n != 0))
        .map(|r| {
            (
                (r.hour, r.campaign_key, r.agent_key, r.direction, r.disposition_id),
                r.numbers,
            )
        })
        .collect();
    let (none, all) = (omnivox::kpi::NONE_KEY, omnivox::kpi::ALL_KEY);
    let mut want: HashMap<Key, Vec<i64>> = HashMap::new();
    let forever = (at("2000-01-01T00:00:00Z"), at("2100-01-01T00:00:00Z"));
    for call in calls {
        let c = expected_counters(std::slice::from_ref(call), rules, forever, &Scope::default());
        let numbers = [1, c.offered, c.answered, c.handled, c.abandoned, c.short_abandoned];
        let hour = call.offered_at
            - TimeDelta::nanoseconds(
                call.offered_at
                    .timestamp_nanos_opt()
                    .unwrap()
                    .rem_euclid(3_600_000_000_000),
            );
        let (campaign, agent) = (call.campaign_id.unwrap_or(none), call.agent_id.unwrap_or(none));
        for (c_key, a_key) in [(campaign, agent), (campaign, all), (all, agent), (all, all)] {
            let key = (
                hour,
                c_key,
                a_key,
                call.direction.as_str().to_owned(),
                call.disposition_id.unwrap_or(none),
            );
            let sum = want.entry(key).or_insert_with(|| vec![0; 6]);
            for (s, n) in sum.iter_mut().zip(numbers) {
                *s += n;
            }
        }
    }
    prop_assert_eq!(got.len(), want.len(), "disposition rollup rows {}", when);
    for (key, numbers) in &want {
        prop_assert_eq!(got.get(key), Some(numbers), "disposition rollup {:?} {}", key, when);
    }
    Ok(())
}

/// analytics grouped by DISPOSITION × CAMPAIGN (daily and hourly disposition rollups, raw
/// edges) equals the counts computed in Rust for every (disposition or none, campaign or none).
async fn check_analytics_by_disposition(
    app: &TestApp,
    token: &str,
    world: &World,
    calls: &[NewInteraction],
    rules: &Rules,
    range: (DateTime<Utc>, DateTime<Utc>),
    when: &str,
) -> Result<(), TestCaseError> {
    const ANALYTICS: &str = "query($q: AnalyticsQuery!) { analytics(query: $q) {
        rows { dimensions { disposition { id } campaign { id } } values } } }";
    let q = json!({
        "metrics": ["OFFERED", "ANSWERED", "HANDLED", "ABANDONED", "SHORT_ABANDONED"],
        "groupBy": ["DISPOSITION", "CAMPAIGN"],
        "filter": { "from": range.0.to_rfc3339(), "to": range.1.to_rfc3339() },
        "limit": 10000,
    });
    let response = app.gql(Some(token), ANALYTICS, json!({ "q": q })).await;
    let rows = response.ok()["analytics"]["rows"].as_array().unwrap().clone();
    let id = |v: &Value| v["id"].as_str().map(|s| Uuid::parse_str(s).unwrap());
    let got: HashMap<(Option<Uuid>, Option<Uuid>), Vec<i64>> = rows
        .iter()
        .map(|r| {
            let d = &r["dimensions"];
            let values = r["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as i64)
                .collect();
            ((id(&d["disposition"]), id(&d["campaign"])), values)
        })
        .collect();
    let dispositions: Vec<Option<Uuid>> = world.dispositions.iter().map(|d| Some(d.0)).chain([None]).collect();
    let campaigns: Vec<Option<Uuid>> = world.campaigns.iter().copied().map(Some).chain([None]).collect();
    let mut expected_keys = 0;
    for d in &dispositions {
        for c in &campaigns {
            let group: Vec<NewInteraction> = calls
                .iter()
                .filter(|call| call.disposition_id == *d && call.campaign_id == *c)
                .cloned()
                .collect();
            let e = expected_counters(&group, rules, range, &Scope::default());
            let want = vec![e.offered, e.answered, e.handled, e.abandoned, e.short_abandoned];
            let has_calls = group
                .iter()
                .any(|call| call.offered_at >= range.0 && call.offered_at < range.1);
            expected_keys += usize::from(has_calls);
            let got = got.get(&(*d, *c)).cloned().unwrap_or_else(|| vec![0; 5]);
            prop_assert_eq!(
                got,
                want,
                "disposition {:?} × campaign {:?}, {:?} {}",
                d,
                c,
                range,
                when
            );
        }
    }
    prop_assert!(got.len() <= expected_keys, "a group without calls {}: {:?}", when, got);
    Ok(())
}

/// The daily rollups' contract (migration `daily_rollups`): every daily row is the sum of the
/// hourly rows of its keys whose hour starts on that local date, and there is no other daily
/// row. Checked as an empty symmetric difference, for calls and for agent time.
async fn check_daily_rollups(conn: &mut AsyncPgConnection, tenant: &Tenant, when: &str) -> Result<(), TestCaseError> {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let call_columns = Counters::ADDITIVE.join(", ");
    let sums = Counters::ADDITIVE
        .iter()
        .map(|c| format!("sum({c})::int8"))
        .collect::<Vec<_>>()
        .join(", ");
    let daily_calls = format!(
        "SELECT day, campaign_key, agent_key, direction, {call_columns}, max_wait_ms FROM kpi_daily
         WHERE organization_id = $1"
    );
    let hourly_calls = format!(
        "SELECT (k.hour AT TIME ZONE o.timezone)::date, campaign_key, agent_key, direction, {sums}, max(max_wait_ms)
         FROM kpi_hourly k JOIN organizations o ON o.id = k.organization_id
         WHERE k.organization_id = $1 GROUP BY 1, 2, 3, 4"
    );
    let daily_time = "SELECT day, agent_key, on_call_us, wrap_up_us, available_us, logged_in_us
         FROM kpi_agent_time_daily WHERE organization_id = $1";
    let hourly_time = "SELECT (t.hour AT TIME ZONE o.timezone)::date, agent_key, sum(on_call_us)::int8,
            sum(wrap_up_us)::int8, sum(available_us)::int8, sum(logged_in_us)::int8
         FROM kpi_agent_time_hourly t JOIN organizations o ON o.id = t.organization_id
         WHERE t.organization_id = $1 GROUP BY 1, 2";
    let disposition_columns = "calls, offered, answered, handled, abandoned, short_abandoned";
    let daily_dispositions =
        format!("SELECT day, campaign_key, agent_key, direction, disposition_id, {disposition_columns} FROM kpi_daily_disposition WHERE organization_id = $1");
    let hourly_dispositions = "SELECT (k.hour AT TIME ZONE o.timezone)::date, campaign_key, agent_key, direction,
            disposition_id, sum(calls)::int8, sum(offered)::int8, sum(answered)::int8, sum(handled)::int8,
            sum(abandoned)::int8, sum(short_abandoned)::int8
         FROM kpi_hourly_disposition k JOIN organizations o ON o.id = k.organization_id
         WHERE k.organization_id = $1 GROUP BY 1, 2, 3, 4, 5";
    for (what, daily, hourly) in [
        ("call", daily_calls.as_str(), hourly_calls.as_str()),
        ("agent-time", daily_time, hourly_time),
        ("disposition", daily_dispositions.as_str(), hourly_dispositions),
    ] {
        let sql =
            format!("SELECT count(*) AS n FROM (({daily} EXCEPT {hourly}) UNION ALL ({hourly} EXCEPT {daily})) d");
        let differing: Count = diesel::sql_query(sql)
            .bind::<diesel::sql_types::Uuid, _>(tenant.org_id())
            .get_result(conn)
            .await
            .unwrap();
        prop_assert_eq!(
            differing.n,
            0,
            "{} daily rollups differ from their hours {}",
            what,
            when
        );
    }
    Ok(())
}

/// analytics grouped by DATE (whole local days from the daily rollups, partial ones from hours
/// and raw edges) equals the counts computed in Rust for each local day of `range`.
async fn check_analytics_by_date(
    app: &TestApp,
    token: &str,
    tz: Tz,
    calls: &[NewInteraction],
    rules: &Rules,
    range: (DateTime<Utc>, DateTime<Utc>),
    when: &str,
) -> Result<(), TestCaseError> {
    const ANALYTICS: &str = "query($q: AnalyticsQuery!) { analytics(query: $q) {
        timezone rows { dimensions { date } values } } }";
    let q = json!({
        "metrics": ["OFFERED", "ANSWERED", "HANDLED", "ABANDONED", "SHORT_ABANDONED"],
        "groupBy": ["DATE"],
        "filter": { "from": range.0.to_rfc3339(), "to": range.1.to_rfc3339() },
    });
    let response = app.gql(Some(token), ANALYTICS, json!({ "q": q })).await;
    let result = &response.ok()["analytics"];
    prop_assert_eq!(result["timezone"].as_str(), Some(tz.name()));
    let days = omnivox::kpi::time::buckets(tz, range.0, range.1, omnivox::kpi::time::Granularity::Day);
    let rows = result["rows"].as_array().unwrap();
    let dates: Vec<String> = days
        .iter()
        .map(|(start, _)| start.with_timezone(&tz).date_naive().to_string())
        .collect();
    prop_assert!(
        rows.iter()
            .all(|r| dates.iter().any(|d| r["dimensions"]["date"] == d.as_str())),
        "a row outside the local days of the range {}",
        when
    );
    for ((start, end), date) in days.into_iter().zip(dates) {
        // A day without any call has no row: its counts are zero.
        let got: Vec<Option<i64>> = match rows.iter().find(|r| r["dimensions"]["date"] == date.as_str()) {
            Some(row) => row["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().map(|f| f as i64))
                .collect(),
            None => vec![Some(0); 5],
        };
        let c = expected_counters(calls, rules, (start, end), &Scope::default());
        let want = vec![
            Some(c.offered),
            Some(c.answered),
            Some(c.handled),
            Some(c.abandoned),
            Some(c.short_abandoned),
        ];
        prop_assert_eq!(got, want, "counts of {} {}", date, when);
    }
    Ok(())
}

/// The property: rollup answers equal the direct computation for any data, settings and range.
#[test]
fn rollups_equal_direct_computation_for_any_data_settings_and_range() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let app = runtime.block_on(TestApp::spawn());
    let counter = AtomicUsize::new(0);
    let coverage = Coverage::default();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 24,
        max_shrink_iters: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&case_strategy(), |case| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        runtime.block_on(run_case(&app, n, &case, &coverage))
    });
    runtime.block_on(async move { drop(app) });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    let get = |c: &AtomicUsize| c.load(Ordering::Relaxed);
    assert!(get(&coverage.offered) > 0, "no offered calls were generated");
    assert!(
        get(&coverage.within) > 0 && get(&coverage.not_within) > 0,
        "the SL threshold never split the calls"
    );
    assert!(get(&coverage.short_abandoned) > 0, "no short abandon was generated");
    assert!(
        get(&coverage.machine_to_agent) > 0 && get(&coverage.machine_detected) > 0,
        "both kinds of machine answer must be generated"
    );
    assert!(get(&coverage.restated) > 0, "no settings change ever re-stated history");
    assert!(
        get(&coverage.catalog_restated) > 0,
        "no campaign or disposition change ever re-stated history"
    );
}

/// Agent-state timestamps may carry sub-microsecond precision (a `DateTime<Utc>` holds
/// nanoseconds; PostgreSQL keeps microseconds). The rollups must still equal the direct
/// computation over the rows as stored.
#[tokio::test(flavor = "multi_thread")]
async fn agent_time_rollups_match_the_stored_rows_for_sub_microsecond_timestamps() {
    let app = TestApp::spawn().await;
    let world = build_world(&app, "nanos", 30).await;
    let mut conn = app.state.system_db.get().await.unwrap();
    let start = at("2026-03-10T09:00:00Z") + TimeDelta::nanoseconds(900);
    let end = at("2026-03-10T10:30:00Z") + TimeDelta::nanoseconds(100);
    let intervals = vec![NewStateInterval {
        agent_id: world.agents[0],
        state: AgentState::Presence(Presence::Available),
        reason: None,
        started_at: start,
        ended_at: Some(end),
    }];
    insert_state_intervals(&mut conn, &world.tenant, &intervals)
        .await
        .unwrap();
    let hours = [(at("2026-03-10T09:00:00Z"), at("2026-03-10T11:00:00Z"))];
    let scope = Scope::default();
    let rolled = aggregate_windows(&mut conn, &world.tenant, &hours, &scope, Sourcing::HourlyRollupsOnly)
        .await
        .unwrap()[0]
        .agents;
    let raw = aggregate_windows(&mut conn, &world.tenant, &hours, &scope, Sourcing::RawOnly)
        .await
        .unwrap()[0]
        .agents;
    assert_eq!(
        raw.available_us,
        90 * 60 * 1_000_000,
        "PostgreSQL stores the instants truncated to microseconds"
    );
    assert_eq!(rolled, raw, "rollups of an interval equal the interval as stored");
}

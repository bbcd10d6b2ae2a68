//! Shared fixtures of the ingest tests: an organization with agents, campaigns and
//! dispositions, a set of calls described twice — as the events a telephony layer sends and,
//! computed by hand, as the interaction row they must produce — and helpers to compare
//! interactions and KPIs.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, TimeDelta, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use omnivox::auth::{Role, Tenant};
use omnivox::db;
use omnivox::db::interactions::NewInteraction;
use omnivox::domain::{AnsweredBy, Direction, Outcome, Presence};
use omnivox::kpi::facts::Counters;
use omnivox::kpi::plan::{aggregate_windows, Sourcing};
use omnivox::kpi::query::{
    grouped_raw_counters, grouped_rollup_counters, CounterMask, GroupKey, GroupSpec, GroupedQuery, RollupRange,
    RollupSlice, Scope,
};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

use crate::common::fixture::{AgentSpec, CampaignSpec, DispositionSpec, FixtureOrg};
use crate::common::{GqlResponse, TestApp};

/// Organizations are backdated to this instant, so the fixed event times below are plausible.
pub const ORG_CREATED: &str = "2026-01-01T00:00:00Z";
/// The day of the calls.
pub const DAY: &str = "2026-11-02";

pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

/// `hh:mm:ss` on [`DAY`].
pub fn t(hms: &str) -> DateTime<Utc> {
    at(&format!("{DAY}T{hms}Z"))
}

pub struct Fixture {
    pub org: FixtureOrg,
    pub tenant: Tenant,
    pub admin: String,
    /// agents[0] is the AGENT user's own profile.
    pub agents: Vec<Uuid>,
    pub inbound: Uuid,
    pub outbound: Uuid,
    pub sale: Uuid,
    pub no_sale: Uuid,
    pub callback: Uuid,
}

impl Fixture {
    pub fn disposition_code(&self, id: Option<Uuid>) -> Option<&'static str> {
        let id = id?;
        Some(if id == self.sale {
            "SALE"
        } else if id == self.no_sale {
            "NO_SALE"
        } else {
            "CALLBACK"
        })
    }
}

/// Three agents (agent 0 is the AGENT user's profile), an inbound and an outbound campaign, and
/// SALE / NO_SALE / CALLBACK, in an organization backdated to [`ORG_CREATED`].
pub async fn fixture(app: &TestApp, slug: &str) -> Fixture {
    let org = FixtureOrg::builder(slug)
        .created_at(at(ORG_CREATED))
        .agent(AgentSpec::new("Ada").user(Role::Agent))
        .agents(["Ben", "Cleo"])
        .presence(Presence::Available)
        .state_since(t("00:00:00"))
        .campaign(CampaignSpec::inbound("Care"))
        .campaign(CampaignSpec::outbound("Sales"))
        .disposition(DispositionSpec::new("SALE").contact().success())
        .disposition(DispositionSpec::new("NO_SALE").contact())
        .disposition(DispositionSpec::new("CALLBACK").human())
        .build(&app.state)
        .await;
    let admin = app.token(&org, Role::Admin).await;
    let [inbound, outbound] = org.campaigns[..] else {
        unreachable!()
    };
    let [sale, no_sale, callback] = org.dispositions[..] else {
        unreachable!()
    };
    Fixture {
        tenant: org.tenant,
        agents: org.agents.clone(),
        org,
        admin,
        inbound,
        outbound,
        sale,
        no_sale,
        callback,
    }
}

/// One `CallEventInput`.
pub fn ev(external_id: &str, event_type: &str, occurred_at: DateTime<Utc>) -> Value {
    json!({ "externalId": external_id, "type": event_type, "occurredAt": occurred_at.to_rfc3339() })
}

pub fn with(mut event: Value, field: &str, value: impl Into<Value>) -> Value {
    event[field] = value.into();
    event
}

pub const RECORD: &str = "mutation($e: [CallEventInput!]!) { recordCallEvents(events: $e) {
    accepted duplicates rejected results { index externalId status reason interactionId } } }";

pub async fn record(app: &TestApp, token: &str, events: &[Value]) -> GqlResponse {
    app.gql(Some(token), RECORD, json!({ "e": events })).await
}

/// A call: the events a telephony layer sends for it, and the row they must produce.
pub struct Spec {
    pub external_id: String,
    pub events: Vec<Value>,
    pub expected: NewInteraction,
}

fn row(external_id: &str, direction: Direction, offered_at: DateTime<Utc>, outcome: Outcome) -> NewInteraction {
    NewInteraction::offered(external_id.to_owned(), direction, offered_at, outcome)
}

/// Twelve calls over three hours covering every outcome, hold, transfer, a call crossing an
/// hour, a campaign named only by a late event, and a call still in progress. `prefix`
/// makes the external ids unique per trial. Expected rows are computed by hand.
#[allow(clippy::vec_init_then_push)] // one commented call per push reads best
pub fn calls(f: &Fixture, prefix: &str) -> Vec<Spec> {
    let id = |n: u32| format!("{prefix}C{n:02}");
    let (a0, a1, a2) = (
        f.agents[0].to_string(),
        f.agents[1].to_string(),
        f.agents[2].to_string(),
    );
    let (inbound, outbound) = (f.inbound.to_string(), f.outbound.to_string());
    let offered_in = |n: u32, at: &str| {
        let e = with(ev(&id(n), "OFFERED", t(at)), "direction", "INBOUND");
        let e = with(e, "campaignId", inbound.clone());
        with(e, "customerNumber", format!("+4477009000{n:02}"))
    };
    let offered_out = |n: u32, at: &str| {
        let e = with(ev(&id(n), "OFFERED", t(at)), "direction", "OUTBOUND");
        let e = with(e, "campaignId", outbound.clone());
        with(e, "customerNumber", format!("+1555010{n:04}"))
    };
    let number_in = |n: u32| Some(format!("+4477009000{n:02}"));
    let number_out = |n: u32| Some(format!("+1555010{n:04}"));
    let mut specs = Vec::new();

    // C01: inbound, answered by agent 0, 30 s hold, wrap-up with NO_SALE.
    specs.push(Spec {
        external_id: id(1),
        events: vec![
            offered_in(1, "09:10:00"),
            with(ev(&id(1), "RINGING", t("09:10:05")), "agentId", a0.clone()),
            with(ev(&id(1), "ANSWERED", t("09:10:12")), "agentId", a0.clone()),
            ev(&id(1), "HELD", t("09:12:00")),
            ev(&id(1), "RESUMED", t("09:12:30")),
            ev(&id(1), "ENDED", t("09:15:00")),
            with(ev(&id(1), "WRAP_UP_ENDED", t("09:15:40")), "dispositionCode", "NO_SALE"),
        ],
        expected: NewInteraction {
            campaign_id: Some(f.inbound),
            agent_id: Some(f.agents[0]),
            customer_number: number_in(1),
            answered_at: Some(t("09:10:12")),
            ended_at: Some(t("09:15:00")),
            wrap_ended_at: Some(t("09:15:40")),
            wait_ms: Some(12_000),
            talk_ms: 258_000,
            hold_ms: 30_000,
            wrap_ms: 40_000,
            disposition_id: Some(f.no_sale),
            ..row(&id(1), Direction::Inbound, t("09:10:00"), Outcome::Answered)
        },
    });
    // C02: inbound, short abandon (3 s).
    specs.push(Spec {
        external_id: id(2),
        events: vec![offered_in(2, "09:20:00"), ev(&id(2), "ENDED", t("09:20:03"))],
        expected: NewInteraction {
            campaign_id: Some(f.inbound),
            customer_number: number_in(2),
            ended_at: Some(t("09:20:03")),
            wait_ms: Some(3_000),
            ..row(&id(2), Direction::Inbound, t("09:20:00"), Outcome::Abandoned)
        },
    });
    // C03: inbound, rang agent 1, abandoned after 45 s, across the hour.
    specs.push(Spec {
        external_id: id(3),
        events: vec![
            offered_in(3, "09:59:30"),
            with(ev(&id(3), "RINGING", t("09:59:40")), "agentId", a1.clone()),
            ev(&id(3), "ENDED", t("10:00:15")),
        ],
        expected: NewInteraction {
            campaign_id: Some(f.inbound),
            agent_id: Some(f.agents[1]),
            customer_number: number_in(3),
            ended_at: Some(t("10:00:15")),
            wait_ms: Some(45_000),
            ..row(&id(3), Direction::Inbound, t("09:59:30"), Outcome::Abandoned)
        },
    });
    // C04: inbound, offered at 10:59:50, answered in the next hour by agent 1, CALLBACK.
    specs.push(Spec {
        external_id: id(4),
        events: vec![
            offered_in(4, "10:59:50"),
            with(ev(&id(4), "ANSWERED", t("11:00:05")), "agentId", a1.clone()),
            ev(&id(4), "ENDED", t("11:03:00")),
            with(
                ev(&id(4), "WRAP_UP_ENDED", t("11:03:20")),
                "dispositionCode",
                "CALLBACK",
            ),
        ],
        expected: NewInteraction {
            campaign_id: Some(f.inbound),
            agent_id: Some(f.agents[1]),
            customer_number: number_in(4),
            answered_at: Some(t("11:00:05")),
            ended_at: Some(t("11:03:00")),
            wrap_ended_at: Some(t("11:03:20")),
            wait_ms: Some(15_000),
            talk_ms: 175_000,
            wrap_ms: 20_000,
            disposition_id: Some(f.callback),
            ..row(&id(4), Direction::Inbound, t("10:59:50"), Outcome::Answered)
        },
    });
    // C05: outbound, a live person, agent 2, SALE.
    specs.push(Spec {
        external_id: id(5),
        events: vec![
            offered_out(5, "09:30:00"),
            ev(&id(5), "RINGING", t("09:30:01")),
            with(
                with(ev(&id(5), "ANSWERED", t("09:30:20")), "agentId", a2.clone()),
                "answeredBy",
                "HUMAN",
            ),
            ev(&id(5), "ENDED", t("09:34:00")),
            with(ev(&id(5), "WRAP_UP_ENDED", t("09:35:00")), "dispositionCode", "SALE"),
        ],
        expected: NewInteraction {
            campaign_id: Some(f.outbound),
            agent_id: Some(f.agents[2]),
            customer_number: number_out(5),
            answered_at: Some(t("09:30:20")),
            ended_at: Some(t("09:34:00")),
            wrap_ended_at: Some(t("09:35:00")),
            wait_ms: Some(20_000),
            talk_ms: 220_000,
            wrap_ms: 60_000,
            answered_by: Some(AnsweredBy::Human),
            disposition_id: Some(f.sale),
            ..row(&id(5), Direction::Outbound, t("09:30:00"), Outcome::Answered)
        },
    });
    // C06: outbound, an answering machine.
    specs.push(Spec {
        external_id: id(6),
        events: vec![
            offered_out(6, "09:40:00"),
            with(ev(&id(6), "ANSWERED", t("09:40:15")), "answeredBy", "MACHINE"),
            ev(&id(6), "ENDED", t("09:40:25")),
        ],
        expected: NewInteraction {
            campaign_id: Some(f.outbound),
            customer_number: number_out(6),
            answered_at: Some(t("09:40:15")),
            ended_at: Some(t("09:40:25")),
            wait_ms: Some(15_000),
            talk_ms: 10_000,
            answered_by: Some(AnsweredBy::Machine),
            ..row(&id(6), Direction::Outbound, t("09:40:00"), Outcome::Answered)
        },
    });
    // C07: outbound, a live person and no agent: a drop.
    specs.push(Spec {
        external_id: id(7),
        events: vec![
            offered_out(7, "09:45:00"),
            with(ev(&id(7), "ENDED", t("09:45:03")), "answeredBy", "HUMAN"),
        ],
        expected: NewInteraction {
            campaign_id: Some(f.outbound),
            customer_number: number_out(7),
            ended_at: Some(t("09:45:03")),
            wait_ms: Some(3_000),
            answered_by: Some(AnsweredBy::Human),
            ..row(&id(7), Direction::Outbound, t("09:45:00"), Outcome::Abandoned)
        },
    });
    // C08: outbound, busy.
    specs.push(Spec {
        external_id: id(8),
        events: vec![
            offered_out(8, "10:05:00"),
            with(ev(&id(8), "ENDED", t("10:05:04")), "endReason", "BUSY"),
        ],
        expected: NewInteraction {
            campaign_id: Some(f.outbound),
            customer_number: number_out(8),
            ended_at: Some(t("10:05:04")),
            ..row(&id(8), Direction::Outbound, t("10:05:00"), Outcome::Busy)
        },
    });
    // C09: outbound, no answer.
    specs.push(Spec {
        external_id: id(9),
        events: vec![
            offered_out(9, "10:10:00"),
            ev(&id(9), "RINGING", t("10:10:01")),
            with(ev(&id(9), "ENDED", t("10:10:30")), "endReason", "NO_ANSWER"),
        ],
        expected: NewInteraction {
            campaign_id: Some(f.outbound),
            customer_number: number_out(9),
            ended_at: Some(t("10:10:30")),
            ..row(&id(9), Direction::Outbound, t("10:10:00"), Outcome::NoAnswer)
        },
    });
    // C10: inbound, answered by agent 0, still in progress.
    specs.push(Spec {
        external_id: id(10),
        events: vec![
            offered_in(10, "10:20:00"),
            with(ev(&id(10), "ANSWERED", t("10:20:30")), "agentId", a0.clone()),
        ],
        expected: NewInteraction {
            campaign_id: Some(f.inbound),
            agent_id: Some(f.agents[0]),
            customer_number: number_in(10),
            answered_at: Some(t("10:20:30")),
            wait_ms: Some(30_000),
            ..row(&id(10), Direction::Inbound, t("10:20:00"), Outcome::InProgress)
        },
    });
    // C11: inbound, answered by agent 0, transferred to agent 2, NO_SALE.
    specs.push(Spec {
        external_id: id(11),
        events: vec![
            offered_in(11, "10:30:00"),
            with(ev(&id(11), "ANSWERED", t("10:30:10")), "agentId", a0.clone()),
            with(ev(&id(11), "TRANSFERRED", t("10:32:00")), "agentId", a2.clone()),
            ev(&id(11), "ENDED", t("10:36:00")),
            with(
                ev(&id(11), "WRAP_UP_ENDED", t("10:36:30")),
                "dispositionCode",
                "NO_SALE",
            ),
        ],
        expected: NewInteraction {
            campaign_id: Some(f.inbound),
            agent_id: Some(f.agents[2]),
            customer_number: number_in(11),
            answered_at: Some(t("10:30:10")),
            ended_at: Some(t("10:36:00")),
            wrap_ended_at: Some(t("10:36:30")),
            wait_ms: Some(10_000),
            talk_ms: 350_000,
            wrap_ms: 30_000,
            disposition_id: Some(f.no_sale),
            ..row(&id(11), Direction::Inbound, t("10:30:00"), Outcome::Answered)
        },
    });
    // C12: inbound; only the last event names the campaign.
    specs.push(Spec {
        external_id: id(12),
        events: vec![
            with(ev(&id(12), "OFFERED", t("11:10:00")), "direction", "INBOUND"),
            with(ev(&id(12), "ANSWERED", t("11:10:05")), "agentId", a1.clone()),
            with(ev(&id(12), "ENDED", t("11:11:00")), "campaignId", inbound.clone()),
        ],
        expected: NewInteraction {
            campaign_id: Some(f.inbound),
            agent_id: Some(f.agents[1]),
            answered_at: Some(t("11:10:05")),
            ended_at: Some(t("11:11:00")),
            wait_ms: Some(5_000),
            talk_ms: 55_000,
            ..row(&id(12), Direction::Inbound, t("11:10:00"), Outcome::Answered)
        },
    });
    specs
}

/// Every event of the specs, in order.
pub fn in_order(specs: &[Spec]) -> Vec<Value> {
    specs.iter().flat_map(|s| s.events.iter().cloned()).collect()
}

/// The events shuffled, with up to `repeats` extra copies of random events.
pub fn shuffled(rng: &mut StdRng, events: &[Value], repeats: usize) -> Vec<Value> {
    let mut out = events.to_vec();
    for _ in 0..repeats {
        out.push(events[rng.gen_range(0..events.len())].clone());
    }
    out.shuffle(rng);
    out
}

/// Random batch sizes covering `events`.
pub fn batches(rng: &mut StdRng, events: Vec<Value>) -> Vec<Vec<Value>> {
    let mut out = Vec::new();
    let mut rest = events;
    while !rest.is_empty() {
        let n = rng.gen_range(1..=rest.len().min(9));
        out.push(rest.drain(..n).collect());
    }
    out
}

/// The derived columns of an interaction, comparable across organizations (ids replaced by
/// the fixture's names) and with the hand-computed rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparable {
    pub external_id: String,
    pub campaign: Option<String>,
    pub agent: Option<usize>,
    pub direction: String,
    pub customer_number: Option<String>,
    pub times: [Option<DateTime<Utc>>; 4],
    pub durations: (Option<i64>, i64, i64, i64),
    pub outcome: String,
    pub disposition: Option<&'static str>,
    pub answered_by: Option<String>,
}

fn campaign_name(f: &Fixture, id: Option<Uuid>) -> Option<String> {
    id.map(|c| {
        if c == f.inbound {
            "Care".to_owned()
        } else if c == f.outbound {
            "Sales".to_owned()
        } else {
            c.to_string()
        }
    })
}

pub fn comparable_expected(f: &Fixture, prefix: &str, e: &NewInteraction) -> Comparable {
    Comparable {
        external_id: e.external_id.trim_start_matches(prefix).to_owned(),
        campaign: campaign_name(f, e.campaign_id),
        agent: e.agent_id.and_then(|a| f.agents.iter().position(|x| *x == a)),
        direction: e.direction.as_str().to_owned(),
        customer_number: e.customer_number.clone(),
        times: [Some(e.offered_at), e.answered_at, e.ended_at, e.wrap_ended_at],
        durations: (e.wait_ms, e.talk_ms, e.hold_ms, e.wrap_ms),
        outcome: e.outcome.as_str().to_owned(),
        disposition: f.disposition_code(e.disposition_id),
        answered_by: e.answered_by.map(|a| a.as_str().to_owned()),
    }
}

/// The stored interactions whose external id starts with `prefix`, by external id.
pub async fn stored(app: &TestApp, f: &Fixture, prefix: &str) -> Vec<Comparable> {
    let mut conn = app.state.system_db.get().await.unwrap();
    let ids: Vec<String> = (1..=40).map(|n| format!("{prefix}C{n:02}")).collect();
    let rows = db::interactions::interactions_by_external_ids(&mut conn, &f.tenant, &ids)
        .await
        .unwrap();
    let mut out: Vec<Comparable> = rows
        .values()
        .map(|r| Comparable {
            external_id: r.external_id.trim_start_matches(prefix).to_owned(),
            campaign: campaign_name(f, r.campaign_id),
            agent: r.agent_id.and_then(|a| f.agents.iter().position(|x| *x == a)),
            direction: r.direction.clone(),
            customer_number: r.customer_number.clone(),
            times: [Some(r.offered_at), r.answered_at, r.ended_at, r.wrap_ended_at],
            durations: (r.wait_ms, r.talk_ms, r.hold_ms, r.wrap_ms),
            outcome: r.outcome.clone(),
            disposition: f.disposition_code(r.disposition_id),
            answered_by: r.answered_by.clone(),
        })
        .collect();
    out.sort_by(|a, b| a.external_id.cmp(&b.external_id));
    out
}

pub fn expected(f: &Fixture, prefix: &str, specs: &[Spec]) -> Vec<Comparable> {
    let mut out: Vec<Comparable> = specs
        .iter()
        .map(|s| comparable_expected(f, prefix, &s.expected))
        .collect();
    out.sort_by(|a, b| a.external_id.cmp(&b.external_id));
    out
}

/// The call metrics of `kpiSummary` over `[from, to)` (agent-time metrics left out: they
/// depend on the state log, which direct inserts do not write).
pub const SUMMARY: &str = "query($f: KpiFilter!) { kpiSummary(filter: $f) { offered answered handled abandoned
    shortAbandoned serviceLevel averageSpeedOfAnswer averageHandleTime averageTalkTime averageHoldTime
    averageWrapTime abandonRate longestWait contactRate conversionRate outboundAbandonRateUk outboundAbandonRateUs } }";

pub async fn summary(app: &TestApp, token: &str, from: DateTime<Utc>, to: DateTime<Utc>, extra: Value) -> Value {
    let mut filter = json!({ "from": from.to_rfc3339(), "to": to.to_rfc3339() });
    if let (Some(filter), Some(extra)) = (filter.as_object_mut(), extra.as_object()) {
        filter.extend(extra.clone());
    }
    let response = app.gql(Some(token), SUMMARY, json!({ "f": filter })).await;
    response.ok()["kpiSummary"].clone()
}

/// For each window: the rollup-backed aggregate equals the direct computation from the rows.
pub async fn assert_rollups_match_raw(
    app: &TestApp,
    tenant: &Tenant,
    windows: &[(DateTime<Utc>, DateTime<Utc>)],
    scope: &Scope,
) {
    let mut conn = app.state.system_db.get().await.unwrap();
    let (_, tz) = omnivox::kpi::organization_rule(&mut conn, tenant).await.unwrap();
    let aggregates = aggregate_windows(&mut conn, tenant, windows, scope, Sourcing::Planned(tz))
        .await
        .unwrap();
    let raw = aggregate_windows(&mut conn, tenant, windows, scope, Sourcing::RawOnly)
        .await
        .unwrap();
    for (i, (aggregate, direct)) in aggregates.iter().zip(&raw).enumerate() {
        assert_eq!(
            aggregate.calls, direct.calls,
            "window {:?} scope {scope:?}: rollups and raw rows disagree",
            windows[i]
        );
    }
    // The disposition rollups too, per disposition (none included) and direction, over the
    // windows' whole hours: ingest moves a call's counts when its outcome or disposition changes.
    let group = GroupSpec {
        direction: true,
        disposition: true,
        ..GroupSpec::default()
    };
    let query = GroupedQuery {
        scope,
        group: &group,
        agent_keys: &[],
        campaign_keys: &[],
        counters: CounterMask::per_disposition(),
    };
    let hour = |t: DateTime<Utc>| t.timestamp() % 3_600 == 0 && t.timestamp_subsec_nanos() == 0;
    for &(start, end) in windows.iter().filter(|(s, e)| hour(*s) && hour(*e)) {
        let slice = RollupSlice::Hours(RollupRange {
            start,
            end,
            excluded_hours: &[],
        });
        let nonzero = |rows: Vec<(GroupKey, Counters)>| {
            let mut groups: BTreeMap<GroupKey, Counters> = BTreeMap::new();
            for (key, c) in rows {
                groups.entry(key).or_default().add(&c);
            }
            groups
        };
        let rolled = nonzero(grouped_rollup_counters(&mut conn, tenant, query, slice).await.unwrap());
        let direct = nonzero(
            grouped_raw_counters(&mut conn, tenant, query, &[(start, end)])
                .await
                .unwrap(),
        );
        let counts = |groups: &BTreeMap<GroupKey, Counters>| -> Vec<(GroupKey, [i64; 5])> {
            groups
                .iter()
                .map(|(k, c)| {
                    (
                        k.clone(),
                        [c.offered, c.answered, c.handled, c.abandoned, c.short_abandoned],
                    )
                })
                .filter(|(_, v)| v.iter().any(|n| *n != 0))
                .collect()
        };
        assert_eq!(
            counts(&rolled),
            counts(&direct),
            "window {:?} scope {scope:?}: disposition rollups and raw rows disagree",
            (start, end)
        );
    }
}

/// The counters of a window straight from the rows (for readable assertions).
pub async fn raw(app: &TestApp, tenant: &Tenant, from: DateTime<Utc>, to: DateTime<Utc>) -> Counters {
    let mut conn = app.state.system_db.get().await.unwrap();
    let rows = aggregate_windows(&mut conn, tenant, &[(from, to)], &Scope::default(), Sourcing::RawOnly)
        .await
        .unwrap();
    rows.into_iter().next().map(|a| a.calls).unwrap_or_default()
}

pub fn hours(from: &str, n: i64) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let start = t(from);
    (0..n)
        .map(|h| (start + TimeDelta::hours(h), start + TimeDelta::hours(h + 1)))
        .collect()
}

/// How many rows a table has for the organization.
pub async fn count_rows(app: &TestApp, table: &str, org: Uuid) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = AsyncPgConnection::establish(&app.database.url).await.unwrap();
    let row: N = diesel::sql_query(format!("SELECT count(*) AS n FROM {table} WHERE organization_id = $1"))
        .bind::<diesel::sql_types::Uuid, _>(org)
        .get_result(&mut conn)
        .await
        .unwrap();
    row.n
}

/// The agent-time rollups of each window (whole UTC hours) equal the state log as it now
/// stands, per agent and for all (re-derived intervals took their old time out and put the new
/// in).
pub async fn assert_agent_time_rollups_match(app: &TestApp, f: &Fixture, windows: &[(DateTime<Utc>, DateTime<Utc>)]) {
    let mut conn = app.state.system_db.get().await.unwrap();
    for agent in f.agents.iter().map(|a| Some(vec![*a])).chain([None]) {
        let scope = Scope {
            agent_ids: agent,
            ..Scope::default()
        };
        let agent_time = async |conn: &mut AsyncPgConnection, sourcing| {
            aggregate_windows(conn, &f.tenant, windows, &scope, sourcing)
                .await
                .unwrap()
                .into_iter()
                .map(|a| a.agents)
                .collect::<Vec<_>>()
        };
        let rolled = agent_time(&mut conn, Sourcing::HourlyRollupsOnly).await;
        let direct = agent_time(&mut conn, Sourcing::RawOnly).await;
        assert_eq!(
            rolled, direct,
            "agent-time rollups differ from the state log for {scope:?}"
        );
    }
}

//! A small, explicit contact centre whose every KPI is computed by hand below and checked
//! through `kpiSummary`. The same example, number for number, is the worked example of
//! docs/KPIS.md — change one, change the other.
//!
//! Organization: Europe/London (2026-03-10 is GMT, so local time = UTC), service-level
//! threshold T = 20 s, short-abandon threshold S = 5 s. Interval: 2026-03-10 09:00–11:00.
//!
//! Campaigns: Support (INBOUND, its own T = 30 s), Sales (OUTBOUND, uses the org's 20 s).
//! Agents: Alice, Bob. Dispositions: RESOLVED (no flags), SALE (contact + success),
//! NOT_INTERESTED (contact), ANSWERING_MACHINE (machine).
//!
//! | call  | offered | dir | campaign | agent | outcome          | wait | talk | hold | wrap | wrap done | disposition       |
//! |-------|---------|-----|----------|-------|------------------|------|------|------|------|-----------|-------------------|
//! | IN-1  | 09:05   | in  | Support  | Alice | ANSWERED         | 10   | 200  | 20   | 30   | yes       | RESOLVED          |
//! | IN-2  | 09:10   | in  | Support  | Bob   | ANSWERED         | 30   | 300  | 0    | 60   | yes       | RESOLVED          |
//! | IN-3  | 09:20   | in  | Support  | Alice | ANSWERED         | 45   | 150  | 30   | 20   | yes       | RESOLVED          |
//! | IN-4  | 09:30   | in  | —        | Bob   | ANSWERED         | 25   | 100  | 0    | 20   | yes       | —                 |
//! | IN-5  | 09:40   | in  | Support  | Alice | ANSWERED         | 5    | 120  | 0    | 0    | no        | —                 |
//! | IN-6  | 09:50   | in  | Support  | —     | ABANDONED        | 3    |      |      |      |           |                   |
//! | IN-7  | 10:00   | in  | Support  | —     | ABANDONED        | 5    |      |      |      |           |                   |
//! | IN-8  | 10:10   | in  | Support  | —     | ABANDONED        | 90   |      |      |      |           |                   |
//! | IN-9  | 10:20   | in  | Support  | —     | IN_PROGRESS      | —    |      |      |      |           |                   |
//! | OUT-1 | 10:05   | out | Sales    | Alice | ANSWERED, human  | 2    | 240  | 60   | 40   | yes       | SALE              |
//! | OUT-2 | 10:15   | out | Sales    | Bob   | ANSWERED, human  | 1    | 60   | 0    | 20   | yes       | NOT_INTERESTED    |
//! | OUT-3 | 10:25   | out | Sales    | Bob   | ANSWERED, machine| 4    | 0    | 0    | 0    | no        | ANSWERING_MACHINE |
//! | OUT-4 | 10:35   | out | Sales    | —     | ABANDONED, human | 2    |      |      |      |           | (a drop)          |
//! | OUT-5 | 10:45   | out | Sales    | Alice | NO_ANSWER,machine| —    |      |      |      |           |                   |
//! | OUT-6 | 10:55   | out | Sales    | Bob   | BUSY             | —    |      |      |      |           |                   |
//! | EARLY | 08:59:59| in  | Support  | Alice | ANSWERED         | 8    | (outside the interval)                                |
//! | LATE  | 11:00:00| in  | Support  | —     | ABANDONED        | 100  | (outside: the end is exclusive)                       |
//!
//! Counts (seconds in the table; the database holds milliseconds):
//!   answered  = IN-1..IN-5 (inbound) + OUT-1, OUT-2 (live person) = 7  (OUT-3 is a machine)
//!   abandoned = IN-6, IN-7, IN-8, OUT-4 = 4;  offered = 7 + 4 = 11
//!   handled   = answered with wrap-up finished = IN-1..IN-4, OUT-1, OUT-2 = 6 (IN-5 still wrapping)
//!   answered within T: IN-1 (10 ≤ 30), IN-2 (30 ≤ 30), IN-5 (5 ≤ 30), OUT-1 (2 ≤ 20), OUT-2 (1 ≤ 20) = 5;
//!                      not IN-3 (45 > 30), not IN-4 (25 > 20: no campaign, so the org's T)
//!   abandoned within T: IN-6 (3 ≤ 30), IN-7 (5 ≤ 30), OUT-4 (2 ≤ 20) = 3; not IN-8 (90)
//!   short abandoned (wait < 5 s): IN-6 (3), OUT-4 (2) = 2; not IN-7 (5 is not < 5)
//!   wait of answered = 10 + 30 + 45 + 25 + 5 + 2 + 1 = 118 s
//!   handled talk = 200 + 300 + 150 + 100 + 240 + 60 = 1050 s; hold = 20 + 30 + 60 = 110 s;
//!   wrap = 30 + 60 + 20 + 20 + 40 + 20 = 190 s; longest wait (answered or abandoned) = 90 s
//!   outbound: dials = 6, live (human) answers = OUT-1, OUT-2, OUT-4 = 3, drops = 1,
//!             machine answers passed to an agent = OUT-3 (Bob heard the machine) = 1,
//!             machine answers the dialler's detection hung up on = OUT-5 = 1 (not counted in AM),
//!             right-party contacts = OUT-1, OUT-2 = 2, successes = OUT-1 = 1
//!
//! Agent states (closed intervals clipped to 09:00–11:00; open ones do not count until closed):
//!   Alice presence: AVAILABLE 08:30–10:00 (60 min in), BREAK 10:00–10:15 (15), AVAILABLE 10:15–11:30 (45 in)
//!   Alice routing:  ON_CALL 09:05–09:25 (20), WRAP_UP 09:25–09:30 (5), ON_CALL 10:50–11:10 (10 in)
//!   Bob presence:   OFFLINE 08:00–09:30 (30 in, not logged in), AVAILABLE 09:30–10:30 (60), LUNCH 10:30– (open)
//!   Bob routing:    ON_CALL 09:40–10:00 (20), WRAP_UP 10:00–10:10 (10)
//!   on call + wrap-up = (20 + 10 + 5) + (20 + 10) = 65 min; AVAILABLE = 105 + 60 = 165 min;
//!   logged in (presence ≠ OFFLINE) = 120 + 60 = 180 min = 3 h
//!
//! Metrics: see `expected_org_metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::fixture::{CampaignSpec, DispositionSpec, FixtureOrg};
use common::TestApp;
use omnivox::auth::Role;
use omnivox::db::contact_centre::NewStateInterval;
use omnivox::db::interactions::NewInteraction;
use omnivox::domain::{AgentState, AnsweredBy, Direction, Outcome, Presence, RoutingState};
use omnivox::kpi::writer::{insert_calls, insert_state_intervals};
use serde_json::{json, Value};
use uuid::Uuid;

const UPDATE_SETTINGS: &str = "mutation($v: Int!, $i: BusinessSettingsInput!) {
  updateBusinessSettings(expectedVersion: $v, input: $i) { version } }";

const SUMMARY: &str = "query($f: KpiFilter!) {
  kpiSummary(filter: $f) {
    start end offered answered handled abandoned shortAbandoned serviceLevel serviceLevelVariant
    serviceLevelThresholdSeconds averageSpeedOfAnswer averageHandleTime averageTalkTime averageHoldTime
    averageWrapTime abandonRate longestWait occupancy contactRate conversionRate callsPerAgentHour
    outboundAbandonRateUk outboundAbandonRateUs serviceLevelExcludesShortAbandons abandonRateExcludesShortAbandons
    explain { metric unit value numerator denominator formula evidence { name count } }
  } }";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn t(hm: &str) -> DateTime<Utc> {
    at(&format!("2026-03-10T{hm}Z"))
}

struct Fixture {
    org: FixtureOrg,
    support: Uuid,
    sales: Uuid,
    alice: Uuid,
    bob: Uuid,
}

/// One call of the table, in seconds; timestamps agree with the durations.
#[allow(clippy::too_many_arguments)]
fn call(
    id: &str,
    offered: &str,
    direction: Direction,
    campaign: Option<Uuid>,
    agent: Option<Uuid>,
    outcome: Outcome,
    answered_by: Option<AnsweredBy>,
    wait_s: Option<i64>,
    (talk_s, hold_s, wrap_s): (i64, i64, i64),
    wrap_done: bool,
    disposition: Option<Uuid>,
) -> NewInteraction {
    let offered_at = t(offered);
    let wait = TimeDelta::seconds(wait_s.unwrap_or(0));
    let answered = outcome == Outcome::Answered;
    let answered_at = answered.then_some(offered_at + wait);
    let ended_at = match outcome {
        Outcome::InProgress => None,
        Outcome::Answered => Some(offered_at + wait + TimeDelta::seconds(talk_s + hold_s)),
        Outcome::Abandoned => Some(offered_at + wait),
        _ => Some(offered_at + TimeDelta::seconds(30)),
    };
    NewInteraction {
        campaign_id: campaign,
        agent_id: agent,
        external_id: id.to_owned(),
        direction,
        customer_number: None,
        offered_at,
        answered_at,
        ended_at,
        wrap_ended_at: if wrap_done {
            ended_at.map(|e| e + TimeDelta::seconds(wrap_s))
        } else {
            None
        },
        wait_ms: wait_s.map(|s| s * 1_000),
        talk_ms: talk_s * 1_000,
        hold_ms: hold_s * 1_000,
        wrap_ms: wrap_s * 1_000,
        outcome,
        disposition_id: disposition,
        answered_by,
        notes: None,
    }
}

fn state(agent_id: Uuid, state: AgentState, from: &str, to: Option<&str>) -> NewStateInterval {
    NewStateInterval {
        agent_id,
        state,
        reason: None,
        started_at: t(from),
        ended_at: to.map(t),
    }
}

async fn seed(app: &TestApp) -> Fixture {
    let org = FixtureOrg::builder("fixture")
        .campaign(CampaignSpec::inbound("Support").service_level_threshold(30))
        .campaign(CampaignSpec::outbound("Sales"))
        .teams(["Blue"])
        .agents(["Alice", "Bob"])
        .state_since(at("2026-03-10T08:00:00Z"))
        .disposition(DispositionSpec::new("RESOLVED"))
        .disposition(DispositionSpec::new("SALE").contact().success())
        .disposition(DispositionSpec::new("NOT_INTERESTED").contact())
        .disposition(DispositionSpec::new("ANSWERING_MACHINE").machine())
        .build(&app.state)
        .await;
    let tenant = org.tenant;
    let mut conn = app.state.system_db.get().await.unwrap();
    let [support, sales] = org.campaigns[..] else {
        unreachable!()
    };
    let [alice, bob] = org.agents[..] else { unreachable!() };
    let [resolved, sale, not_interested, machine] = org.dispositions[..] else {
        unreachable!()
    };

    use Direction::{Inbound as IN, Outbound as OUT};
    use Outcome::{Abandoned, Answered, Busy, InProgress, NoAnswer};
    let (sup, sal, a, b) = (Some(support), Some(sales), Some(alice), Some(bob));
    let human = Some(AnsweredBy::Human);
    let none = (0, 0, 0);
    let calls = vec![
        call(
            "IN-1",
            "09:05:00",
            IN,
            sup,
            a,
            Answered,
            None,
            Some(10),
            (200, 20, 30),
            true,
            Some(resolved),
        ),
        call(
            "IN-2",
            "09:10:00",
            IN,
            sup,
            b,
            Answered,
            None,
            Some(30),
            (300, 0, 60),
            true,
            Some(resolved),
        ),
        call(
            "IN-3",
            "09:20:00",
            IN,
            sup,
            a,
            Answered,
            None,
            Some(45),
            (150, 30, 20),
            true,
            Some(resolved),
        ),
        call(
            "IN-4",
            "09:30:00",
            IN,
            None,
            b,
            Answered,
            None,
            Some(25),
            (100, 0, 20),
            true,
            None,
        ),
        call(
            "IN-5",
            "09:40:00",
            IN,
            sup,
            a,
            Answered,
            None,
            Some(5),
            (120, 0, 0),
            false,
            None,
        ),
        call(
            "IN-6",
            "09:50:00",
            IN,
            sup,
            None,
            Abandoned,
            None,
            Some(3),
            none,
            false,
            None,
        ),
        call(
            "IN-7",
            "10:00:00",
            IN,
            sup,
            None,
            Abandoned,
            None,
            Some(5),
            none,
            false,
            None,
        ),
        call(
            "IN-8",
            "10:10:00",
            IN,
            sup,
            None,
            Abandoned,
            None,
            Some(90),
            none,
            false,
            None,
        ),
        call(
            "IN-9", "10:20:00", IN, sup, None, InProgress, None, None, none, false, None,
        ),
        call(
            "OUT-1",
            "10:05:00",
            OUT,
            sal,
            a,
            Answered,
            human,
            Some(2),
            (240, 60, 40),
            true,
            Some(sale),
        ),
        call(
            "OUT-2",
            "10:15:00",
            OUT,
            sal,
            b,
            Answered,
            human,
            Some(1),
            (60, 0, 20),
            true,
            Some(not_interested),
        ),
        call(
            "OUT-3",
            "10:25:00",
            OUT,
            sal,
            b,
            Answered,
            Some(AnsweredBy::Machine),
            Some(4),
            none,
            false,
            Some(machine),
        ),
        call(
            "OUT-4",
            "10:35:00",
            OUT,
            sal,
            None,
            Abandoned,
            human,
            Some(2),
            none,
            false,
            None,
        ),
        call(
            "OUT-5",
            "10:45:00",
            OUT,
            sal,
            a,
            NoAnswer,
            Some(AnsweredBy::Machine),
            None,
            none,
            false,
            None,
        ),
        call("OUT-6", "10:55:00", OUT, sal, b, Busy, None, None, none, false, None),
        call(
            "EARLY",
            "08:59:59",
            IN,
            sup,
            a,
            Answered,
            None,
            Some(8),
            (60, 0, 10),
            true,
            Some(resolved),
        ),
        call(
            "LATE",
            "11:00:00",
            IN,
            sup,
            None,
            Abandoned,
            None,
            Some(100),
            none,
            false,
            None,
        ),
    ];
    insert_calls(&mut conn, &tenant, &calls).await.unwrap();

    let p = |p| AgentState::Presence(p);
    let r = |r| AgentState::Routing(r);
    let intervals = vec![
        state(alice, p(Presence::Available), "08:30:00", Some("10:00:00")),
        state(alice, p(Presence::Break), "10:00:00", Some("10:15:00")),
        state(alice, p(Presence::Available), "10:15:00", Some("11:30:00")),
        state(alice, r(RoutingState::OnCall), "09:05:00", Some("09:25:00")),
        state(alice, r(RoutingState::WrapUp), "09:25:00", Some("09:30:00")),
        state(alice, r(RoutingState::OnCall), "10:50:00", Some("11:10:00")),
        state(bob, p(Presence::Offline), "08:00:00", Some("09:30:00")),
        state(bob, p(Presence::Available), "09:30:00", Some("10:30:00")),
        state(bob, p(Presence::Lunch), "10:30:00", None),
        state(bob, r(RoutingState::OnCall), "09:40:00", Some("10:00:00")),
        state(bob, r(RoutingState::WrapUp), "10:00:00", Some("10:10:00")),
    ];
    insert_state_intervals(&mut conn, &tenant, &intervals).await.unwrap();
    Fixture {
        org,
        support,
        sales,
        alice,
        bob,
    }
}

async fn summary(app: &TestApp, token: &str, from: &str, to: &str, extra: Value) -> Value {
    let mut filter = json!({ "from": t(from).to_rfc3339(), "to": t(to).to_rfc3339() });
    if let (Value::Object(f), Value::Object(e)) = (&mut filter, extra) {
        f.extend(e);
    }
    app.gql(Some(token), SUMMARY, json!({ "f": filter })).await.ok()["kpiSummary"].clone()
}

#[track_caller]
fn assert_value(values: &Value, field: &str, want: Option<f64>) {
    let got = values[field].as_f64();
    match (got, want) {
        (Some(g), Some(w)) => assert!((g - w).abs() <= 1e-9 * w.abs().max(1.0), "{field}: got {g}, want {w}"),
        (None, None) => assert!(values[field].is_null(), "{field}: got {}, want null", values[field]),
        _ => panic!("{field}: got {}, want {want:?}", values[field]),
    }
}

#[track_caller]
fn assert_values(values: &Value, expected: &[(&str, Option<f64>)]) {
    for (field, want) in expected {
        assert_value(values, field, *want);
    }
}

fn explained<'a>(values: &'a Value, metric: &str) -> &'a Value {
    values["explain"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["metric"] == metric)
        .unwrap()
}

/// Every metric of the organization over 09:00–11:00 with T = 20 s, S = 5 s (default variant).
fn expected_org_metrics() -> Vec<(&'static str, Option<f64>)> {
    vec![
        ("offered", Some(11.0)),
        ("answered", Some(7.0)),
        ("handled", Some(6.0)),
        ("abandoned", Some(4.0)),
        ("shortAbandoned", Some(2.0)),
        // answered within T / (answered + abandoned − short abandoned) = 5 / (7 + 4 − 2)
        ("serviceLevel", Some(5.0 / 9.0 * 100.0)),                   // 55.56 %
        ("averageSpeedOfAnswer", Some(118.0 / 7.0)),                 // 16.86 s
        ("averageHandleTime", Some((1050.0 + 110.0 + 190.0) / 6.0)), // 225 s
        ("averageTalkTime", Some(1050.0 / 6.0)),                     // 175 s
        ("averageHoldTime", Some(110.0 / 6.0)),                      // 18.33 s
        ("averageWrapTime", Some(190.0 / 6.0)),                      // 31.67 s
        ("abandonRate", Some(4.0 / 11.0 * 100.0)),                   // 36.36 %
        ("longestWait", Some(90.0)),
        // (50 + 15 min on call and wrap-up) / 165 min AVAILABLE
        ("occupancy", Some(65.0 / 165.0 * 100.0)),   // 39.39 %
        ("contactRate", Some(2.0 / 6.0 * 100.0)),    // 33.33 %
        ("conversionRate", Some(1.0 / 2.0 * 100.0)), // 50 %
        ("callsPerAgentHour", Some(6.0 / 3.0)),      // 2 per hour
        // live = 3 − 1 = 2, AM = 1 (OUT-3, passed to Bob; OUT-5 never reached anyone), drops = 1:
        // D' = 1 − 1 × 1 / (1 + 2) = 2/3; (2/3) / (2/3 + 2)
        ("outboundAbandonRateUk", Some(25.0)),
        ("outboundAbandonRateUs", Some(1.0 / 3.0 * 100.0)), // 33.33 %
    ]
}

fn evidence(explained: &Value) -> Vec<(String, i64)> {
    explained["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_owned(), e["count"].as_i64().unwrap()))
        .collect()
}

async fn set_settings(app: &TestApp, admin: &str, version: &mut i64, input: Value) {
    let response = app
        .gql(Some(admin), UPDATE_SETTINGS, json!({ "v": *version, "i": input }))
        .await;
    *version = response.ok()["updateBusinessSettings"]["version"].as_i64().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_of_the_worked_example() {
    let app = TestApp::spawn().await;
    let fx = seed(&app).await;
    let admin = fx.org.token(&app.state, Role::Admin).await;
    let viewer = fx.org.token(&app.state, Role::Viewer).await;
    let mut version = 1;
    set_settings(
        &app,
        &admin,
        &mut version,
        json!({ "timezone": "Europe/London", "serviceLevelThresholdSeconds": 20, "shortAbandonSeconds": 5,
                "serviceLevelVariant": "ANSWERED_WITHIN_OVER_OFFERED_EXCLUDING_SHORT_ABANDONS" }),
    )
    .await;

    let values = summary(&app, &viewer, "09:00:00", "11:00:00", json!({})).await;
    assert_eq!(values["start"].as_str().map(at), Some(t("09:00:00")));
    assert_eq!(values["end"].as_str().map(at), Some(t("11:00:00")));
    assert_eq!(values["serviceLevelThresholdSeconds"], 20);
    assert_values(&values, &expected_org_metrics());
    // The UK rate's evidence: the machine Bob was connected to (OUT-3) is AM; the one the
    // dialler hung up on (OUT-5) is kept as evidence but does not lower the rate.
    assert_eq!(
        evidence(explained(&values, "outboundAbandonRateUk")),
        [
            ("drops".to_owned(), 1),
            ("liveCallsToAgents".to_owned(), 2),
            ("machineAnswersToAgents".to_owned(), 1),
            ("machineAnswersDetectedNotCounted".to_owned(), 1),
        ]
    );
    assert_eq!(values["serviceLevelExcludesShortAbandons"], true, "the default variant");
    assert_eq!(values["abandonRateExcludesShortAbandons"], false);

    // Drill-down: numerator and denominator in display units (calls, seconds, hours).
    let sl = explained(&values, "serviceLevel");
    assert_eq!(sl["unit"], "PERCENT");
    assert_eq!(sl["numerator"], 5.0);
    assert_eq!(sl["denominator"], 9.0);
    assert_eq!(
        sl["formula"],
        "answered within T / (answered + abandoned - short abandoned)"
    );
    assert_value(sl, "value", Some(5.0 / 9.0 * 100.0));
    let occupancy = explained(&values, "occupancy");
    assert_value(occupancy, "numerator", Some(65.0 / 60.0));
    assert_value(occupancy, "denominator", Some(165.0 / 60.0));
    let per_hour = explained(&values, "callsPerAgentHour");
    assert_eq!(
        (per_hour["numerator"].as_f64(), per_hour["denominator"].as_f64()),
        (Some(6.0), Some(3.0))
    );
    assert_eq!(per_hour["unit"], "PER_HOUR");
    let aht = explained(&values, "averageHandleTime");
    assert_eq!(
        (aht["numerator"].as_f64(), aht["denominator"].as_f64()),
        (Some(1350.0), Some(6.0))
    );
    let offered = explained(&values, "offered");
    assert_eq!(
        (offered["numerator"].as_f64(), offered["unit"].as_str()),
        (Some(11.0), Some("COUNT"))
    );
    assert!(offered["denominator"].is_null(), "a count has no denominator");
    let uk = explained(&values, "outboundAbandonRateUk");
    assert_value(uk, "numerator", Some(2.0 / 3.0));
    assert_value(uk, "denominator", Some(8.0 / 3.0));
    assert_eq!(
        values["explain"].as_array().unwrap().len(),
        19,
        "every metric of the registry is explained"
    );

    // Each service-level variant over the same calls: (aw, bw, answered, abandoned, short) = (5, 3, 7, 4, 2).
    let variants = [
        (
            "ANSWERED_WITHIN_OVER_OFFERED_EXCLUDING_SHORT_ABANDONS",
            5.0,
            9.0,
            "answered within T / (answered + abandoned - short abandoned)",
        ),
        (
            "ANSWERED_WITHIN_OVER_ANSWERED",
            5.0,
            7.0,
            "answered within T / answered",
        ),
        (
            "ANSWERED_AND_ABANDONED_WITHIN_OVER_OFFERED",
            8.0,
            11.0,
            "(answered within T + abandoned within T) / (answered + abandoned)",
        ),
        (
            "ANSWERED_WITHIN_OVER_OFFERED",
            5.0,
            11.0,
            "answered within T / (answered + abandoned)",
        ),
        (
            "ANSWERED_WITHIN_OVER_OFFERED_EXCLUDING_ABANDONS_WITHIN",
            5.0,
            8.0,
            "answered within T / (answered + abandoned after T)",
        ),
    ];
    for (variant, numerator, denominator, formula) in variants {
        set_settings(&app, &admin, &mut version, json!({ "serviceLevelVariant": variant })).await;
        let values = summary(&app, &viewer, "09:00:00", "11:00:00", json!({})).await;
        assert_eq!(values["serviceLevelVariant"], variant);
        assert_value(&values, "serviceLevel", Some(numerator / denominator * 100.0));
        let sl = explained(&values, "serviceLevel");
        assert_eq!(
            (sl["numerator"].as_f64(), sl["denominator"].as_f64()),
            (Some(numerator), Some(denominator)),
            "{variant}"
        );
        assert_eq!(sl["formula"], formula, "{variant}");
        // Nothing else depends on the variant.
        assert_value(&values, "abandonRate", Some(4.0 / 11.0 * 100.0));
    }

    // Back to the default variant, then change the thresholds: history is re-stated.
    // T = 25 s makes IN-4 (25 s, no campaign) answered within T: 6; S = 6 s makes IN-7 (5 s) a
    // short abandon: 3. Service level = 6 / (7 + 4 − 3) = 75 %.
    set_settings(
        &app,
        &admin,
        &mut version,
        json!({ "serviceLevelVariant": "ANSWERED_WITHIN_OVER_OFFERED_EXCLUDING_SHORT_ABANDONS",
                "serviceLevelThresholdSeconds": 25, "shortAbandonSeconds": 6 }),
    )
    .await;
    let restated = summary(&app, &viewer, "09:00:00", "11:00:00", json!({})).await;
    assert_eq!(restated["serviceLevelThresholdSeconds"], 25);
    assert_values(
        &restated,
        &[
            ("shortAbandoned", Some(3.0)),
            ("serviceLevel", Some(75.0)),
            ("offered", Some(11.0)),
        ],
    );
    let sl = explained(&restated, "serviceLevel");
    assert_eq!(
        (sl["numerator"].as_f64(), sl["denominator"].as_f64()),
        (Some(6.0), Some(8.0))
    );
    // Partial-hour intervals are exact too: 09:30–10:30 holds IN-4..IN-9 and OUT-1..OUT-3:
    // answered IN-4, IN-5, OUT-1, OUT-2; abandoned IN-6, IN-7 (short now), IN-8.
    let partial = summary(&app, &viewer, "09:30:00", "10:30:00", json!({})).await;
    assert_values(
        &partial,
        &[
            ("offered", Some(7.0)),
            ("answered", Some(4.0)),
            ("abandoned", Some(3.0)),
            ("shortAbandoned", Some(2.0)),
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn filtered_views_of_the_worked_example() {
    let app = TestApp::spawn().await;
    let fx = seed(&app).await;
    let viewer = fx.org.token(&app.state, Role::Viewer).await;

    // Alice only: IN-1, IN-3, IN-5, OUT-1 (OUT-5 is not offered). Answered 4, handled 3
    // (IN-1 250 s, IN-3 200 s, OUT-1 340 s), within T: IN-1, IN-5, OUT-1 = 3 of 4.
    // Her time: on call + wrap-up 35 min of 105 min AVAILABLE; logged in 2 h.
    let alice = summary(
        &app,
        &viewer,
        "09:00:00",
        "11:00:00",
        json!({ "agentIds": [fx.alice.to_string()] }),
    )
    .await;
    assert_values(
        &alice,
        &[
            ("offered", Some(4.0)),
            ("answered", Some(4.0)),
            ("handled", Some(3.0)),
            ("abandoned", Some(0.0)),
            ("serviceLevel", Some(75.0)),
            ("averageSpeedOfAnswer", Some(62.0 / 4.0)),
            ("averageHandleTime", Some(790.0 / 3.0)),
            ("abandonRate", Some(0.0)),
            ("occupancy", Some(35.0 / 105.0 * 100.0)),
            ("callsPerAgentHour", Some(1.5)),
            // Her dials: OUT-1 (a contact and a sale) and OUT-5 (no answer).
            ("contactRate", Some(50.0)),
            ("conversionRate", Some(100.0)),
        ],
    );

    // Support only: IN-1, IN-2, IN-3, IN-5 answered, IN-6, IN-7, IN-8 abandoned (T = 30 s):
    // within 3 + 2, short 1 → SL = 3 / (7 − 1) = 50 %. Agent time is not filtered by campaign:
    // occupancy stays the organization's 39.39 %, calls per agent hour = 3 handled / 3 h.
    let support = summary(
        &app,
        &viewer,
        "09:00:00",
        "11:00:00",
        json!({ "campaignIds": [fx.support.to_string()] }),
    )
    .await;
    assert_values(
        &support,
        &[
            ("offered", Some(7.0)),
            ("answered", Some(4.0)),
            ("abandoned", Some(3.0)),
            ("shortAbandoned", Some(1.0)),
            ("serviceLevel", Some(50.0)),
            ("abandonRate", Some(3.0 / 7.0 * 100.0)),
            ("occupancy", Some(65.0 / 165.0 * 100.0)),
            ("callsPerAgentHour", Some(1.0)),
            ("contactRate", None),
        ],
    );

    // Outbound only: OUT-1, OUT-2 answered, OUT-4 dropped; 6 dials.
    let outbound = summary(
        &app,
        &viewer,
        "09:00:00",
        "11:00:00",
        json!({ "direction": "OUTBOUND" }),
    )
    .await;
    assert_values(
        &outbound,
        &[
            ("offered", Some(3.0)),
            ("answered", Some(2.0)),
            ("abandoned", Some(1.0)),
            ("contactRate", Some(2.0 / 6.0 * 100.0)),
            ("outboundAbandonRateUk", Some(25.0)),
            ("outboundAbandonRateUs", Some(1.0 / 3.0 * 100.0)),
        ],
    );
    // Sales and Bob: OUT-2 only.
    let both = summary(
        &app,
        &viewer,
        "09:00:00",
        "11:00:00",
        json!({ "campaignIds": [fx.sales.to_string()], "agentIds": [fx.bob.to_string()] }),
    )
    .await;
    assert_values(
        &both,
        &[
            ("offered", Some(1.0)),
            ("handled", Some(1.0)),
            ("averageHandleTime", Some(80.0)),
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_ratio_is_null_on_an_empty_interval() {
    let app = TestApp::spawn().await;
    let fx = seed(&app).await;
    let viewer = fx.org.token(&app.state, Role::Viewer).await;
    // 12:00–13:00: no call; no closed agent state (Bob's LUNCH is still open).
    let values = summary(&app, &viewer, "12:00:00", "13:00:00", json!({})).await;
    let mut expected: Vec<(&str, Option<f64>)> = ["offered", "answered", "handled", "abandoned", "shortAbandoned"]
        .into_iter()
        .map(|f| (f, Some(0.0)))
        .collect();
    expected.extend(
        [
            "serviceLevel",
            "averageSpeedOfAnswer",
            "averageHandleTime",
            "averageTalkTime",
            "averageHoldTime",
            "averageWrapTime",
            "abandonRate",
            "longestWait",
            "occupancy",
            "contactRate",
            "conversionRate",
            "callsPerAgentHour",
            "outboundAbandonRateUk",
            "outboundAbandonRateUs",
        ]
        .into_iter()
        .map(|f| (f, None)),
    );
    assert_values(&values, &expected);
    for e in values["explain"].as_array().unwrap() {
        if e["denominator"].is_null() {
            assert_eq!(e["value"], 0.0, "a count is 0, not null: {e}");
        } else {
            assert_eq!(e["denominator"], 0.0, "{e}");
            assert!(e["value"].is_null(), "a ratio over nothing is null: {e}");
        }
    }
}

/// docs/KPIS.md §3–4: short abandons (IN-6 3 s, OUT-4 2 s; both within T) leave the abandon
/// rate and, in the variants that leave the choice, the service level, when the organization
/// says so; the values report what was applied.
#[tokio::test(flavor = "multi_thread")]
async fn short_abandons_leave_the_rates_when_the_organization_says_so() {
    let app = TestApp::spawn().await;
    let fx = seed(&app).await;
    let admin = fx.org.token(&app.state, Role::Admin).await;
    let viewer = fx.org.token(&app.state, Role::Viewer).await;
    let mut version = 1;
    set_settings(
        &app,
        &admin,
        &mut version,
        json!({ "timezone": "Europe/London", "serviceLevelThresholdSeconds": 20, "shortAbandonSeconds": 5,
                "excludeShortAbandonsFromAbandonRate": true }),
    )
    .await;
    let values = summary(&app, &viewer, "09:00:00", "11:00:00", json!({})).await;
    // (4 − 2) / (11 − 2)
    assert_values(
        &values,
        &[("abandonRate", Some(2.0 / 9.0 * 100.0)), ("shortAbandoned", Some(2.0))],
    );
    assert_eq!(values["abandonRateExcludesShortAbandons"], true);
    let rate = explained(&values, "abandonRate");
    assert_eq!(
        (rate["numerator"].as_f64(), rate["denominator"].as_f64()),
        (Some(2.0), Some(9.0))
    );
    assert_eq!(
        rate["formula"],
        "(abandoned - short abandoned) / (offered - short abandoned)"
    );

    // Variants that count abandons: without, then with the choice (answered within T = 5,
    // abandoned within T = 3, answered 7, abandoned 4, short 2, short within T 2).
    for (variant, without, with) in [
        ("ANSWERED_AND_ABANDONED_WITHIN_OVER_OFFERED", 8.0 / 11.0, 6.0 / 9.0),
        ("ANSWERED_WITHIN_OVER_OFFERED", 5.0 / 11.0, 5.0 / 9.0),
        // Both short abandons waited less than T: abandons within T are already out.
        (
            "ANSWERED_WITHIN_OVER_OFFERED_EXCLUDING_ABANDONS_WITHIN",
            5.0 / 8.0,
            5.0 / 8.0,
        ),
    ] {
        for (choice, want) in [(false, without), (true, with)] {
            set_settings(
                &app,
                &admin,
                &mut version,
                json!({ "serviceLevelVariant": variant, "excludeShortAbandonsFromServiceLevel": choice }),
            )
            .await;
            let values = summary(&app, &viewer, "09:00:00", "11:00:00", json!({})).await;
            assert_values(&values, &[("serviceLevel", Some(want * 100.0))]);
            assert_eq!(values["serviceLevelExcludesShortAbandons"], choice, "{variant}");
        }
    }

    // The default variant (and ANSWERED_WITHIN_OVER_ANSWERED) already decide: refused, nothing stored.
    for variant in [
        "ANSWERED_WITHIN_OVER_OFFERED_EXCLUDING_SHORT_ABANDONS",
        "ANSWERED_WITHIN_OVER_ANSWERED",
    ] {
        let response = app
            .gql(
                Some(&admin),
                UPDATE_SETTINGS,
                json!({ "v": version, "i": { "serviceLevelVariant": variant, "excludeShortAbandonsFromServiceLevel": true } }),
            )
            .await;
        assert_eq!(response.error_code(), Some("BAD_USER_INPUT"), "{variant}");
        assert_eq!(
            response.body["errors"][0]["extensions"]["fields"][0]["field"],
            "input.excludeShortAbandonsFromServiceLevel"
        );
    }
    let settings = app
        .gql(
            Some(&admin),
            "{ organization { businessSettings { version serviceLevelVariant excludeShortAbandonsFromServiceLevel } } }",
            json!({}),
        )
        .await;
    let stored = &settings.ok()["organization"]["businessSettings"];
    assert_eq!(
        stored["version"].as_i64(),
        Some(version),
        "a refused update stores nothing"
    );
    assert_eq!(
        stored["serviceLevelVariant"],
        "ANSWERED_WITHIN_OVER_OFFERED_EXCLUDING_ABANDONS_WITHIN"
    );
    assert_eq!(stored["excludeShortAbandonsFromServiceLevel"], true);
}

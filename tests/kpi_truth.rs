//! The outbound abandon rates as a compliance officer checks them: calls posted through
//! `recordCallEvents` in shuffled order, the rates read back from `kpiSummary` and
//! `complianceStatus`, and compared with the definitions of docs/KPIS.md §6 computed by hand.
//! The UK (Ofcom) rule reduces the drops by the share of answering machines among the calls
//! PASSED TO AGENTS: a machine the dialler hung up on (answering-machine detection) never
//! reached an agent and must not lower the rate.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;
mod ingest_support;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use common::TestApp;
use ingest_support::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

/// The events of one outbound call of campaign `campaign`, starting at `start`.
#[derive(Clone, Copy)]
enum Outbound {
    /// A live person, connected to the agent, wrapped up.
    Live,
    /// A live person answered and no agent was free: the dialler dropped the call.
    Drop,
    /// A machine answered and the dialler's detection hung up (no answer event).
    MachineHungUp,
    /// A machine answered and the call was connected (Twilio's `in-progress`) but to no agent.
    MachineConnectedToNobody,
    /// A machine answered and the call was passed to the agent.
    MachineToAgent,
}

fn events(call: Outbound, id: &str, campaign: &str, agent: &str, start: DateTime<Utc>) -> Vec<Value> {
    let s = |seconds: i64| start + TimeDelta::seconds(seconds);
    let offered = with(
        with(ev(id, "OFFERED", s(0)), "direction", "OUTBOUND"),
        "campaignId",
        campaign,
    );
    let answered = |by: &str, with_agent: bool| {
        let event = with(ev(id, "ANSWERED", s(4)), "answeredBy", by);
        if with_agent {
            with(event, "agentId", agent)
        } else {
            event
        }
    };
    match call {
        Outbound::Live => vec![
            offered,
            answered("HUMAN", true),
            ev(id, "ENDED", s(60)),
            ev(id, "WRAP_UP_ENDED", s(70)),
        ],
        Outbound::Drop => vec![offered, with(ev(id, "ENDED", s(3)), "answeredBy", "HUMAN")],
        Outbound::MachineHungUp => vec![offered, with(ev(id, "ENDED", s(5)), "answeredBy", "MACHINE")],
        Outbound::MachineConnectedToNobody => vec![offered, answered("MACHINE", false), ev(id, "ENDED", s(8))],
        Outbound::MachineToAgent => vec![
            offered,
            answered("MACHINE", true),
            ev(id, "ENDED", s(20)),
            ev(id, "WRAP_UP_ENDED", s(25)),
        ],
    }
}

const SUMMARY_UK: &str = "query($f: KpiFilter!) { kpiSummary(filter: $f) {
    outboundAbandonRateUk outboundAbandonRateUs explain { metric numerator denominator evidence { name count } } } }";

const COMPLIANCE: &str = "query($c: [ID!]) { complianceStatus(campaignIds: $c) { status
    uk { rate status drops liveCalls machineAnswered machineDetected humanAnswered numerator denominator }
    us { rate drops humanAnswered } } }";

fn evidence(summary: &Value, metric: &str) -> Vec<(String, i64)> {
    let explained = summary["explain"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["metric"] == metric)
        .unwrap();
    explained["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_owned(), e["count"].as_i64().unwrap()))
        .collect()
}

fn close(got: &Value, want: f64) -> bool {
    got.as_f64().is_some_and(|g| (g - want).abs() < 1e-9)
}

/// The hour: 3 live calls connected to agents, 1 drop, 1 machine the dialler hung up
/// on. By definition AM = 0, D′ = 1, rate = 1 / (1 + 3) = 25 % (counting the machine in AM,
/// as the API did, gave D′ = 0.75 and 20 %). The next hour adds a machine passed to an agent
/// and a machine connected to nobody: AM = 1, D′ = 1 − 1 × 1 / (1 + 3) = 0.75, rate =
/// 0.75 / 3.75 = 20 %.
#[tokio::test(flavor = "multi_thread")]
async fn the_uk_rate_counts_only_machine_answers_passed_to_agents() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, "ofcom").await;
    let campaign = f.outbound.to_string();
    let agent = f.agents[1].to_string();
    // Two hours that ended before now, so that complianceStatus's rolling windows hold them.
    let first = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap() - TimeDelta::hours(3);
    let second = first + TimeDelta::hours(1);
    let mut all = Vec::new();
    let plan = [
        (first, Outbound::Live),
        (first, Outbound::Live),
        (first, Outbound::Live),
        (first, Outbound::Drop),
        (first, Outbound::MachineHungUp),
        (second, Outbound::Live),
        (second, Outbound::Live),
        (second, Outbound::Live),
        (second, Outbound::Drop),
        (second, Outbound::MachineToAgent),
        (second, Outbound::MachineConnectedToNobody),
    ];
    for (n, (hour, call)) in plan.into_iter().enumerate() {
        let start = hour + TimeDelta::minutes(5 * n as i64 % 60);
        all.extend(events(call, &format!("OFCOM-{n}"), &campaign, &agent, start));
    }
    let mut rng = StdRng::seed_from_u64(3);
    let delivered = shuffled(&mut rng, &all, 4);
    for batch in batches(&mut rng, delivered) {
        let response = record(&app, &f.admin, &batch).await;
        assert_eq!(response.ok()["recordCallEvents"]["rejected"], 0);
    }

    let summary = |from: DateTime<Utc>, to: DateTime<Utc>| {
        let app = &app;
        let admin = f.admin.clone();
        async move {
            let filter = json!({ "from": from.to_rfc3339(), "to": to.to_rfc3339() });
            let response = app.gql(Some(&admin), SUMMARY_UK, json!({ "f": filter })).await;
            response.ok()["kpiSummary"].clone()
        }
    };
    let hour = summary(first, second).await;
    assert!(close(&hour["outboundAbandonRateUk"], 25.0), "{hour}");
    assert!(
        close(&hour["outboundAbandonRateUs"], 25.0),
        "1 drop / 4 live answers: {hour}"
    );
    assert_eq!(
        evidence(&hour, "outboundAbandonRateUk"),
        [
            ("drops".to_owned(), 1),
            ("liveCallsToAgents".to_owned(), 3),
            ("machineAnswersToAgents".to_owned(), 0),
            ("machineAnswersDetectedNotCounted".to_owned(), 1),
        ]
    );
    let next = summary(second, second + TimeDelta::hours(1)).await;
    assert!(close(&next["outboundAbandonRateUk"], 20.0), "{next}");
    assert_eq!(
        evidence(&next, "outboundAbandonRateUk")[2..],
        [
            ("machineAnswersToAgents".to_owned(), 1),
            ("machineAnswersDetectedNotCounted".to_owned(), 1),
        ]
    );

    // complianceStatus over the rolling 24 hours holds both hours: drops 2, live 6, AM 1,
    // detected 2: D′ = 2 − 2 × 1 / 7 = 12/7, rate = (12/7) / (12/7 + 6) = 12 / 54.
    let response = app.gql(Some(&f.admin), COMPLIANCE, json!({ "c": [campaign] })).await;
    let status = &response.ok()["complianceStatus"][0];
    let uk = &status["uk"];
    assert_eq!(
        (
            uk["drops"].as_i64(),
            uk["liveCalls"].as_i64(),
            uk["machineAnswered"].as_i64(),
            uk["machineDetected"].as_i64(),
            uk["humanAnswered"].as_i64()
        ),
        (Some(2), Some(6), Some(1), Some(2), Some(8)),
        "{status}"
    );
    assert!(close(&uk["rate"], 12.0 / 54.0 * 100.0), "{status}");
    assert_eq!(uk["status"], "BREACH", "far over the 3 % limit: {status}");
    assert!(close(&status["us"]["rate"], 25.0), "{status}");
}

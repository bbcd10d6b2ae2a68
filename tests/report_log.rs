//! The interaction detail log against a real PostgreSQL and a real run worker: a log run's CSV
//! is the calls of the range that pass the filter, each once, in time order across page
//! boundaries (ties on the start time included), laid out field by field, with customer
//! numbers shown as `interactions` shows them to the requester's role; a log that asks for
//! metrics is refused naming the field and nothing is stored; a log has no `result` and no
//! HTTP pull; the template copies and runs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;
mod reports_support;

use std::collections::HashSet;
use std::time::Duration;

use chrono::TimeDelta;
use common::fixture::{AgentSpec, CampaignSpec, DispositionSpec, FixtureOrg};
use common::TestApp;
use omnivox::auth::Role;
use omnivox::db::interactions::NewInteraction;
use omnivox::domain::{Direction, Outcome};
use omnivox::ingest::mask_number;
use omnivox::kpi::writer::insert_calls;
use reports_support::*;
use serde_json::{json, Value};

const FROM: &str = "2026-01-05T00:00:00Z";
const TO: &str = "2026-01-08T00:00:00Z";
/// Calls of the range on the filtered campaign: more than two pages of the log.
const IN_RANGE: usize = 10_500;
const NUMBER: &str = "+447700900123";

const RUN: &str = "mutation($id: ID!, $f: ReportFormat!, $r: ReportRangeInput) {
    runReport(id: $id, format: $f, range: $r) { id status } }";

/// A London organization with calls on campaign Care every 20 s from `FROM` in threes that
/// share their start time (so ties straddle page boundaries), calls on campaign Sales in the
/// range, and Care calls just outside it; one Care call is fully described.
async fn seeded(app: &TestApp, slug: &str) -> FixtureOrg {
    let org = FixtureOrg::builder(slug)
        .teams(["Blue"])
        .campaign(CampaignSpec::inbound("Care"))
        .campaign(CampaignSpec::inbound("Sales"))
        .disposition(
            DispositionSpec::new("SALE")
                .label("Sale made")
                .human()
                .contact()
                .success(),
        )
        .agent(AgentSpec::new("Ada Lovelace").team(0))
        .created_at(at("2025-12-01T00:00:00Z"))
        .build(&app.state)
        .await;
    let (care, sales) = (org.campaigns[0], org.campaigns[1]);
    let mut calls = Vec::new();
    for k in 0..IN_RANGE {
        let offered = at(FROM) + TimeDelta::seconds(20 * (k as i64 / 3));
        let mut call = NewInteraction::offered(format!("CA-{k:05}"), Direction::Inbound, offered, Outcome::Abandoned);
        call.campaign_id = Some(care);
        call.wait_ms = Some(1_000);
        call.ended_at = Some(offered + TimeDelta::seconds(1));
        calls.push(call);
    }
    // The call checked field by field: answered by Ada, held, wrapped up with a disposition.
    let offered = at("2026-01-06T09:00:00Z");
    let mut call = NewInteraction::offered("CA-FULL".into(), Direction::Inbound, offered, Outcome::Answered);
    call.campaign_id = Some(care);
    call.agent_id = Some(org.agents[0]);
    call.customer_number = Some(NUMBER.into());
    call.wait_ms = Some(12_500);
    call.answered_at = Some(offered + TimeDelta::milliseconds(12_500));
    call.talk_ms = 60_000;
    call.hold_ms = 4_000;
    call.wrap_ms = 9_000;
    call.ended_at = Some(offered + TimeDelta::milliseconds(12_500 + 64_000));
    call.wrap_ended_at = Some(offered + TimeDelta::milliseconds(12_500 + 73_000));
    call.disposition_id = Some(org.dispositions[0]);
    call.answered_by = Some(omnivox::domain::AnsweredBy::Human);
    calls.push(call);
    // Outside the filter (other campaign) or the range ([from, to): `to` itself is out).
    for (id, campaign, offered) in [
        ("OUT-SALES", sales, at("2026-01-06T10:00:00Z")),
        ("OUT-BEFORE", care, at(FROM) - TimeDelta::seconds(1)),
        ("OUT-AT-TO", care, at(TO)),
    ] {
        let mut call = NewInteraction::offered(id.into(), Direction::Inbound, offered, Outcome::Abandoned);
        call.campaign_id = Some(campaign);
        call.wait_ms = Some(1_000);
        call.ended_at = Some(offered + TimeDelta::seconds(1));
        calls.push(call);
    }
    let mut conn = app.state.system_db.get().await.unwrap();
    insert_calls(&mut conn, &org.tenant, &calls).await.unwrap();
    org
}

fn log_input(title: &str, campaign: uuid::Uuid) -> Value {
    json!({
        "title": title,
        "shared": true,
        "kind": "INTERACTION_LOG",
        "query": { "filter": { "campaignIds": [campaign.to_string()] } },
        "range": { "relative": "YESTERDAY" }
    })
}

/// Runs the report over [FROM, TO) as `token`, waits for its end, downloads its file.
async fn run_and_download(app: &TestApp, token: &str, id: &str, format: &str) -> (Value, Vec<u8>) {
    let queued = app
        .gql(
            Some(token),
            RUN,
            json!({ "id": id, "f": format, "r": { "from": FROM, "to": TO } }),
        )
        .await;
    let run_id = queued.ok()["runReport"]["id"].as_str().unwrap().to_owned();
    let query = "query($id: ID!) { reportRun(id: $id) { status rowsWritten bytes error downloadPath } }";
    for _ in 0..600 {
        let run = app.gql(Some(token), query, json!({ "id": run_id })).await.ok()["reportRun"].clone();
        match run["status"].as_str().unwrap() {
            "SUCCEEDED" => {
                let path = run["downloadPath"].as_str().unwrap();
                let file = get(app, Some(token), path).await;
                assert_eq!(file.status(), 200);
                return (run, file.bytes().await.unwrap().to_vec());
            }
            "FAILED" | "CANCELLED" => panic!("run ended {run}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("run {run_id} did not end within 60 s");
}

fn records(file: &[u8]) -> (csv::StringRecord, Vec<csv::StringRecord>) {
    let mut reader = csv::Reader::from_reader(file);
    let header = reader.headers().unwrap().clone();
    (header, reader.records().map(Result::unwrap).collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_run_streams_every_call_of_the_range_in_time_order_masked_per_role() {
    let app = TestApp::spawn().await;
    let org = seeded(&app, "log").await;
    let supervisor = org.token(&app.state, Role::Supervisor).await;
    let id = created_id(&app, &supervisor, log_input("Care calls", org.campaigns[0])).await;

    let (run, file) = run_and_download(&app, &supervisor, &id, "CSV").await;
    let expected = IN_RANGE + 1;
    assert_eq!(run["rowsWritten"], expected, "{run}");
    assert_eq!(run["bytes"].as_i64(), Some(file.len() as i64));
    let (header, rows) = records(&file);
    assert_eq!(
        header.iter().collect::<Vec<_>>(),
        [
            "Started at",
            "Call ID",
            "Direction",
            "Campaign",
            "Agent",
            "Customer number",
            "Outcome",
            "Disposition",
            "Wait (s)",
            "Talk (s)",
            "Hold (s)",
            "Wrap-up (s)",
            "Handle (s)"
        ]
    );
    assert_eq!(rows.len(), expected);
    // Each call once, none from outside the filter or the range.
    let ids: HashSet<&str> = rows.iter().map(|r| &r[1]).collect();
    assert_eq!(ids.len(), expected);
    assert!(ids.contains("CA-FULL") && ids.contains("CA-00000") && ids.contains("CA-10499"));
    assert!(!ids.iter().any(|id| id.starts_with("OUT-")));
    // In time order (the timestamps are all +00:00 in a London January, so text order is time
    // order).
    assert!(rows.windows(2).all(|w| w[0][0] <= w[1][0]), "rows out of time order");
    assert_eq!(&rows[0][0], "2026-01-05T00:00:00+00:00");

    let full = rows.iter().find(|r| &r[1] == "CA-FULL").unwrap();
    assert_eq!(
        full.iter().collect::<Vec<_>>(),
        [
            "2026-01-06T09:00:00+00:00",
            "CA-FULL",
            "INBOUND",
            "Care",
            "Ada Lovelace",
            NUMBER,
            "ANSWERED",
            "Sale made",
            "12.5",
            "60",
            "4",
            "9",
            "73"
        ],
        "a SUPERVISOR reads the number in full, as `interactions` shows it to them"
    );
    let abandoned = rows.iter().find(|r| &r[1] == "CA-00000").unwrap();
    assert_eq!((&abandoned[4], &abandoned[5], &abandoned[12]), ("", "", ""));

    // The number as `interactions` shows it to a SUPERVISOR.
    let listed = app
        .gql(
            Some(&supervisor),
            "{ interactions(filter: { offeredFrom: \"2026-01-06T09:00:00Z\", offeredTo: \"2026-01-06T09:00:01Z\" }) { edges { node { externalId customerNumber } } } }",
            json!({}),
        )
        .await;
    let nodes = &listed.ok()["interactions"]["edges"];
    let node = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["externalId"] == "CA-FULL")
        .unwrap();
    assert_eq!(node["node"]["customerNumber"], NUMBER);

    // A VIEWER (below SUPERVISOR) running the shared log reads the number masked, as
    // `interactions` masks it below SUPERVISOR.
    let viewer = org.token(&app.state, Role::Viewer).await;
    let (_, file) = run_and_download(&app, &viewer, &id, "CSV").await;
    let (_, rows) = records(&file);
    assert_eq!(rows.len(), expected);
    let full = rows.iter().find(|r| &r[1] == "CA-FULL").unwrap();
    assert_eq!(&full[5], mask_number(NUMBER));
    assert_ne!(&full[5], NUMBER);

    // XLSX streams too.
    let (run, file) = run_and_download(&app, &supervisor, &id, "XLSX").await;
    assert_eq!(run["rowsWritten"], expected);
    assert!(file.starts_with(b"PK"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_is_refused_analytics_settings_and_has_no_result_or_pull_and_its_template_runs() {
    let app = TestApp::spawn().await;
    let org = seeded(&app, "log-rules").await;
    let supervisor = org.token(&app.state, Role::Supervisor).await;

    let before = stored_reports(&app).await;
    let mut bad = log_input("With metrics", org.campaigns[0]);
    bad["query"]["metrics"] = json!(["HANDLED"]);
    bad["presentation"] = json!({ "totals": true });
    let refused = create(&app, &supervisor, bad).await;
    assert_eq!(refused.error_code(), Some("BAD_USER_INPUT"), "{:?}", refused.body);
    assert_eq!(field_of(&refused), ["input.query.metrics", "input.presentation.totals"]);
    let mut unknown = log_input("Unknown campaign", uuid::Uuid::new_v4());
    unknown["query"]["filter"]["campaignIds"] = json!([uuid::Uuid::new_v4().to_string()]);
    let refused = create(&app, &supervisor, unknown).await;
    assert_eq!(field_of(&refused), ["input.query.filter.campaignIds[0]"]);
    assert_eq!(stored_reports(&app).await, before, "nothing stored");

    // Analytics reports are validated as before (kind defaults to ANALYTICS).
    let analytics = create(&app, &supervisor, agents_yesterday()).await;
    analytics.ok();

    let id = created_id(&app, &supervisor, log_input("Care calls", org.campaigns[0])).await;
    let read = app
        .gql(
            Some(&supervisor),
            "query($id: ID!) { report(id: $id) { kind presentation { columns { key label } chart { kind } } result { start } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(read.error_code(), Some("BAD_USER_INPUT"));
    assert!(read.error_message().unwrap().contains("runReport"), "{:?}", read.body);
    let read = app
        .gql(
            Some(&supervisor),
            "query($id: ID!) { report(id: $id) { kind presentation { columns { key label } } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(read.ok()["report"]["kind"], "INTERACTION_LOG");
    assert_eq!(read.ok()["report"]["presentation"]["columns"][0]["key"], "STARTED_AT");
    let pull = get(
        &app,
        Some(&supervisor),
        &format!("/api/reports/{id}.csv?from={FROM}&to={TO}"),
    )
    .await;
    assert_eq!(pull.status(), 400);
    assert!(pull.text().await.unwrap().contains("runReport"));

    // The template: yesterday, every call; copied, then run over the seeded days.
    let copied = app
        .gql(
            Some(&supervisor),
            "mutation { createReportFromTemplate(templateKey: \"interaction-detail-log\") { id kind range { relative } } }",
            json!({}),
        )
        .await;
    let copy = &copied.ok()["createReportFromTemplate"];
    assert_eq!(copy["kind"], "INTERACTION_LOG");
    assert_eq!(copy["range"]["relative"], "YESTERDAY");
    let (run, _) = run_and_download(&app, &supervisor, copy["id"].as_str().unwrap(), "CSV").await;
    // Every campaign: the Care calls and the Sales call of the range.
    assert_eq!(run["rowsWritten"], IN_RANGE + 2);
}

//! History import (`POST /api/import/calls`, `omnivox import calls`): rollups equal the raw
//! calls after an import, a re-import changes nothing, bad rows are reported by line, field and
//! reason with nothing written, the history horizon decides what may be imported (and what
//! ingest accepts), and only an ADMIN or an `ingest:write` key may import.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use common::binary::Process;
use common::fixture::{CampaignSpec, DispositionSpec, FixtureOrg};
use common::TestApp;
use diesel_async::RunQueryDsl;
use omnivox::auth::Role;
use omnivox::kpi::plan::{aggregate_windows, Sourcing};
use omnivox::kpi::query::Scope;
use serde_json::{json, Value};

const HORIZON: &str = "2025-12-01T00:00:00Z";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// Agents Ada (named by id in the files) and Ben (by extension 202), campaigns Care (its own
/// 30 s service level) and Sales, dispositions SALE and NO_INTEREST.
async fn org_with_catalog(app: &TestApp, slug: &str) -> FixtureOrg {
    let org = FixtureOrg::builder(slug)
        .timezone("Europe/London")
        .agents(["Ada", "Ben"])
        .campaign(CampaignSpec::inbound("Care").service_level_threshold(30))
        .campaign(CampaignSpec::outbound("Sales"))
        .disposition(DispositionSpec::new("SALE").success())
        .disposition(DispositionSpec::new("NO_INTEREST").human())
        .build(&app.state)
        .await;
    let mut conn = app.state.system_db.get().await.unwrap();
    diesel::sql_query("UPDATE agents SET extension = '202' WHERE id = $1")
        .bind::<diesel::sql_types::Uuid, _>(org.agents[1])
        .execute(&mut conn)
        .await
        .unwrap();
    org
}

async fn set_horizon(app: &TestApp, admin: &str, horizon: Value) -> common::GqlResponse {
    let version = app
        .gql(
            Some(admin),
            "{ organization { businessSettings { version } } }",
            json!({}),
        )
        .await;
    let version = version.ok()["organization"]["businessSettings"]["version"]
        .as_i64()
        .unwrap();
    app.gql(
        Some(admin),
        "mutation($v: Int!, $h: DateTime) { updateBusinessSettings(expectedVersion: $v, input: { historyHorizon: $h }) { historyHorizon } }",
        json!({ "v": version, "h": horizon }),
    )
    .await
}

/// `n` completed calls from 2026-01-05 on, of every shape: inbound and outbound, answered
/// (with hold and wrap-up), abandoned, unanswered, with and without agent, campaign and
/// disposition.
fn history_csv(org: &FixtureOrg, n: usize) -> String {
    let ada = org.agents[0].to_string();
    let mut csv = String::from(
        "externalId,direction,offeredAt,answeredAt,endedAt,wrapEndedAt,holdSeconds,outcome,answeredBy,agent,campaign,disposition,customerNumber\n",
    );
    let base = at("2026-01-05T07:00:00Z");
    for i in 0..n {
        let offered = base + TimeDelta::seconds(i as i64 * 397);
        let t = |s: i64| (offered + TimeDelta::seconds(s)).to_rfc3339();
        let outbound = i % 3 == 0;
        let direction = if outbound { "OUTBOUND" } else { "INBOUND" };
        let campaign = match i % 4 {
            0 => "Sales",
            1 | 2 => "Care",
            _ => "",
        };
        let agent = [ada.as_str(), "202", ""][i % 3];
        let wait = (i as i64 * 7) % 65;
        let line = match i % 5 {
            // Answered, wrapped up, sometimes with hold and a disposition.
            0..=2 => format!(
                "call-{i},{direction},{},{},{},{},{},,{},{agent},{campaign},{},+4420700{i:05}",
                t(0),
                t(wait),
                t(wait + 120),
                t(wait + 150),
                (i % 2) * 20,
                if outbound && agent.is_empty() { "HUMAN" } else { "" },
                ["SALE", "NO_INTEREST", ""][i % 3],
            ),
            // Abandoned while waiting.
            3 => format!(
                "call-{i},{direction},{},,{},,,ABANDONED,HUMAN,,{campaign},,",
                t(0),
                t(wait)
            ),
            // Not answered.
            _ => format!("call-{i},{direction},{},,{},,,NO_ANSWER,,,{campaign},,", t(0), t(30)),
        };
        writeln!(csv, "{line}").unwrap();
    }
    csv
}

async fn upload(app: &TestApp, token: Option<&str>, content_type: &str, body: String) -> (u16, Value) {
    let mut request = app
        .http
        .post(app.url("/api/import/calls"))
        .header("content-type", content_type)
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn call_count(app: &TestApp, org: &FixtureOrg) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.state.system_db.get().await.unwrap();
    diesel::sql_query("SELECT count(*) AS n FROM interactions WHERE organization_id = $1")
        .bind::<diesel::sql_types::Uuid, _>(org.id)
        .get_result::<Count>(&mut conn)
        .await
        .unwrap()
        .n
}

/// Hourly rollups alone, and the planned answer (daily rollups of whole local days), equal the
/// raw calls, for several scopes over the imported weeks.
async fn assert_rollups_equal_raw(app: &TestApp, org: &FixtureOrg) -> omnivox::kpi::query::Aggregates {
    let mut conn = app.state.system_db.get().await.unwrap();
    let (_, zone) = omnivox::kpi::organization_rule(&mut conn, &org.tenant).await.unwrap();
    let windows = [
        (at("2026-01-01T00:00:00Z"), at("2026-02-01T00:00:00Z")),
        (at("2026-01-05T00:00:00Z"), at("2026-01-06T00:00:00Z")),
    ];
    let mut whole = None;
    for scope in [
        Scope::default(),
        Scope {
            campaign_ids: Some(vec![org.campaigns[0]]),
            ..Scope::default()
        },
        Scope {
            agent_ids: Some(vec![org.agents[1]]),
            ..Scope::default()
        },
    ] {
        let raw = aggregate_windows(&mut conn, &org.tenant, &windows, &scope, Sourcing::RawOnly)
            .await
            .unwrap();
        let hourly = aggregate_windows(&mut conn, &org.tenant, &windows, &scope, Sourcing::HourlyRollupsOnly)
            .await
            .unwrap();
        let planned = aggregate_windows(&mut conn, &org.tenant, &windows, &scope, Sourcing::Planned(zone))
            .await
            .unwrap();
        assert_eq!(hourly, raw, "hourly rollups vs raw, scope {scope:?}");
        assert_eq!(planned, raw, "planned (daily) rollups vs raw, scope {scope:?}");
        whole.get_or_insert(raw[0]);
    }
    whole.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_keeps_rollups_exact_and_a_reimport_changes_nothing() {
    let app = TestApp::spawn().await;
    let org = org_with_catalog(&app, "hist").await;
    let admin = org.token(&app.state, Role::Admin).await;
    set_horizon(&app, &admin, json!(HORIZON)).await.ok();

    let csv = history_csv(&org, 600);
    let (status, report) = upload(&app, Some(&admin), "text/csv", csv.clone()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["rows"], 600);
    assert_eq!(report["imported"], 600);
    assert_eq!(report["duplicates"], 0);
    assert_eq!(report["rejectedRows"], 0);
    assert_eq!(call_count(&app, &org).await, 600);
    let after_first = assert_rollups_equal_raw(&app, &org).await;
    assert!(after_first.calls.offered > 0 && after_first.calls.contacts > 0 && after_first.calls.abandoned > 0);

    // The same file again, and the same calls as NDJSON: nothing changes.
    let (status, report) = upload(&app, Some(&admin), "text/csv", csv.clone()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["imported"].as_i64(), report["duplicates"].as_i64()),
        (Some(0), Some(600))
    );
    let ndjson: String = csv
        .lines()
        .skip(1)
        .take(50)
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let mut object = serde_json::Map::new();
            for (name, value) in csv.lines().next().unwrap().split(',').zip(cells) {
                if !value.is_empty() {
                    object.insert(name.to_owned(), value.into());
                }
            }
            format!("{}\n", Value::Object(object))
        })
        .collect();
    let (status, report) = upload(&app, Some(&admin), "application/x-ndjson", ndjson).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["imported"].as_i64(), report["duplicates"].as_i64()),
        (Some(0), Some(50))
    );
    assert_eq!(call_count(&app, &org).await, 600);
    assert_eq!(assert_rollups_equal_raw(&app, &org).await, after_first);

    // One call field by field, as the KPI reads it: a GraphQL read of the imported call.
    let call = app
        .gql(
            Some(&admin),
            "{ interactionByExternalId(externalId: \"call-1\") { direction outcome waitMs talkMs holdMs wrapMs dispositionCode } }",
            json!({}),
        )
        .await;
    assert_eq!(
        call.ok()["interactionByExternalId"],
        json!({ "direction": "INBOUND", "outcome": "ANSWERED", "waitMs": 7_000, "talkMs": 100_000,
                "holdMs": 20_000, "wrapMs": 30_000, "dispositionCode": "NO_INTEREST" }),
        "{}",
        call.body
    );
    let mut conn = app.state.system_db.get().await.unwrap();
    let audit = omnivox::audit::recent(&mut conn, Some(org.id), 50).await.unwrap();
    let imports: Vec<_> = audit.iter().filter(|r| r.action == "import.calls").collect();
    assert_eq!(imports.len(), 1, "one audited batch; the re-imports wrote nothing");
    assert_eq!(imports[0].details["calls"], 600);
    assert!(omnivox::audit::verify_chain(&mut conn, Some(org.id))
        .await
        .unwrap()
        .intact());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_rows_are_reported_by_line_and_field_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let org = org_with_catalog(&app, "bad").await;
    let admin = org.token(&app.state, Role::Admin).await;
    set_horizon(&app, &admin, json!(HORIZON)).await.ok();
    let csv = "externalId,direction,offeredAt,answeredAt,endedAt,agent,campaign,disposition\n\
               ok-1,INBOUND,2026-01-05T09:00:00Z,2026-01-05T09:00:10Z,2026-01-05T09:03:00Z,202,Care,SALE\n\
               bad-1,INBOUND,2026-01-05T09:10:00Z,,2026-01-05T09:09:00Z,999,Nowhere,\n\
               ok-1,INBOUND,2026-01-05T09:20:00Z,,2026-01-05T09:21:00Z,,,\n\
               bad-2,SIDEWAYS,2025-06-01T09:00:00Z,,2025-06-01T09:01:00Z,,,NOPE\n\
               ok-2,INBOUND,2026-01-05T10:00:00Z,,2026-01-05T10:00:04Z,,,\n";
    let (status, report) = upload(&app, Some(&admin), "text/csv", csv.to_owned()).await;
    assert_eq!(status, 422, "{report}");
    assert_eq!(report["rows"], 5);
    assert_eq!(report["rejectedRows"], 3);
    assert_eq!(report["imported"], 0);
    let errors: Vec<(i64, String)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_i64().unwrap(), e["field"].as_str().unwrap().to_owned()))
        .collect();
    let expected = [
        (3, "endedAt"),
        (3, "agent"),
        (3, "campaign"),
        (4, "externalId"),
        (5, "direction"),
        (5, "offeredAt"),
        (5, "endedAt"),
        (5, "disposition"),
    ];
    assert_eq!(errors, expected.map(|(l, f)| (l, f.to_owned())).to_vec(), "{report}");
    let reasons: Vec<&str> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert!(reasons[3].contains("repeats line 2"), "{reasons:?}");
    assert!(reasons[5].contains("history horizon"), "{reasons:?}");
    assert_eq!(call_count(&app, &org).await, 0, "nothing written");

    // A header with an unknown column and without a required one.
    let (status, report) = upload(&app, Some(&admin), "text/csv", "externalId,when\nx,y\n".into()).await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["when", "direction", "offeredAt", "endedAt"]);
    // NDJSON: a line that is no object, an unknown key.
    let ndjson = "[1]\n{\"externalId\":\"x\",\"colour\":\"red\"}\n".to_owned();
    let (status, report) = upload(&app, Some(&admin), "application/x-ndjson", ndjson).await;
    assert_eq!(status, 422);
    assert_eq!(report["errors"][0]["line"], 1);
    assert_eq!(report["errors"][1]["field"], "colour");
    // No format: BAD_USER_INPUT naming it.
    let (status, body) = upload(&app, Some(&admin), "application/octet-stream", "x".into()).await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["extensions"]["fields"][0]["field"], "format");
    assert_eq!(call_count(&app, &org).await, 0);
    let mut conn = app.state.system_db.get().await.unwrap();
    let audit = omnivox::audit::recent(&mut conn, Some(org.id), 50).await.unwrap();
    assert!(audit.iter().all(|r| r.action != "import.calls"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_history_horizon_decides_what_import_and_ingest_accept() {
    let app = TestApp::spawn().await;
    // Created now: by default nothing from before today is accepted.
    let org = org_with_catalog(&app, "horizon").await;
    let admin = org.token(&app.state, Role::Admin).await;
    let settings = app
        .gql(
            Some(&admin),
            "{ organization { createdAt businessSettings { historyHorizon } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        settings.ok()["organization"]["businessSettings"]["historyHorizon"],
        Value::Null
    );

    let csv = history_csv(&org, 3);
    let (status, report) = upload(&app, Some(&admin), "text/csv", csv.clone()).await;
    assert_eq!(status, 422);
    assert!(report["errors"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("history horizon"));
    const EVENTS: &str =
        "mutation($e: [CallEventInput!]!) { recordCallEvents(events: $e) { accepted results { status reason } } }";
    let old_event = json!([{ "externalId": "ev-1", "type": "OFFERED", "occurredAt": "2026-01-05T09:00:00Z", "direction": "INBOUND" }]);
    let refused = app.gql(Some(&admin), EVENTS, json!({ "e": old_event })).await;
    assert_eq!(refused.ok()["recordCallEvents"]["accepted"], 0, "{}", refused.body);
    assert!(refused.body.to_string().contains("history horizon"), "{}", refused.body);

    // A horizon in the future, or unparsable, is refused by field; nothing changes.
    let future = set_horizon(&app, &admin, json!((Utc::now() + TimeDelta::days(2)).to_rfc3339())).await;
    assert_eq!(future.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(
        future.body["errors"][0]["extensions"]["fields"][0]["field"],
        "input.historyHorizon"
    );

    // An earlier horizon lets the history in, through both paths.
    let set = set_horizon(&app, &admin, json!(HORIZON)).await;
    assert_eq!(
        at(set.ok()["updateBusinessSettings"]["historyHorizon"].as_str().unwrap()),
        at(HORIZON)
    );
    let (status, report) = upload(&app, Some(&admin), "text/csv", csv).await;
    assert_eq!((status, report["imported"].as_i64()), (200, Some(3)), "{report}");
    let accepted = app.gql(Some(&admin), EVENTS, json!({ "e": old_event })).await;
    assert_eq!(accepted.ok()["recordCallEvents"]["accepted"], 1, "{}", accepted.body);
    // Still nothing before the horizon.
    let older = json!([{ "externalId": "ev-2", "type": "OFFERED", "occurredAt": "2025-11-30T23:59:59Z", "direction": "INBOUND" }]);
    let refused = app.gql(Some(&admin), EVENTS, json!({ "e": older })).await;
    assert_eq!(refused.ok()["recordCallEvents"]["accepted"], 0);

    // null: back to the organization's creation.
    let cleared = set_horizon(&app, &admin, Value::Null).await;
    assert_eq!(cleared.ok()["updateBusinessSettings"]["historyHorizon"], Value::Null);
    let refused = app
        .gql(
            Some(&admin),
            EVENTS,
            json!({ "e": [{ "externalId": "ev-3", "type": "OFFERED", "occurredAt": "2026-01-05T09:00:00Z", "direction": "INBOUND" }] }),
        )
        .await;
    assert_eq!(refused.ok()["recordCallEvents"]["accepted"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_an_admin_or_an_ingest_key_may_import() {
    let app = TestApp::spawn().await;
    let org = org_with_catalog(&app, "guard").await;
    let admin = org.token(&app.state, Role::Admin).await;
    set_horizon(&app, &admin, json!(HORIZON)).await.ok();
    let csv = history_csv(&org, 2);
    let (status, body) = upload(&app, None, "text/csv", csv.clone()).await;
    assert_eq!(
        (status, body["errors"][0]["extensions"]["code"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    for role in [Role::Viewer, Role::Agent, Role::Supervisor] {
        let token = org.token(&app.state, role).await;
        let (status, body) = upload(&app, Some(&token), "text/csv", csv.clone()).await;
        assert_eq!(status, 403, "{role}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
    }
    let key = |scope: &'static str| {
        let (app, admin) = (&app, admin.clone());
        async move {
            let created = app
                .gql(
                    Some(&admin),
                    "mutation($s: [String!]!) { createApiKey(name: \"import\", scopes: $s) { secret } }",
                    json!({ "s": [scope] }),
                )
                .await;
            created.ok()["createApiKey"]["secret"].as_str().unwrap().to_owned()
        }
    };
    for scope in ["kpi:read", "reports:read", "realtime:read"] {
        let (status, body) = upload(&app, Some(&key(scope).await), "text/csv", csv.clone()).await;
        assert_eq!(status, 403, "{scope}: {body}");
    }
    assert_eq!(call_count(&app, &org).await, 0);
    let (status, body) = upload(&app, Some(&key("ingest:write").await), "text/csv", csv.clone()).await;
    assert_eq!((status, body["imported"].as_i64()), (200, Some(2)), "{body}");
    let (status, body) = upload(&app, Some(&admin), "text/csv", csv).await;
    assert_eq!((status, body["duplicates"].as_i64()), (200, Some(2)), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_command_line_imports_a_file_with_progress_and_refuses_bad_rows() {
    let app = TestApp::spawn().await;
    let org = org_with_catalog(&app, "cli").await;
    let admin = org.token(&app.state, Role::Admin).await;
    set_horizon(&app, &admin, json!(HORIZON)).await.ok();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("calls.csv");
    std::fs::write(&good, history_csv(&org, 250)).unwrap();
    let path = good.to_str().unwrap();
    let mut process = Process::spawn(
        &["import", "calls", path, "--org", "cli", "--batch-calls", "100"],
        &app.database.url,
    );
    let status = process.wait_exit(Duration::from_secs(60)).await;
    let output = process.output();
    assert!(status.success(), "{output}");
    assert!(output.contains("250 / 250 rows"), "progress per batch: {output}");
    assert!(output.contains("imported 250 calls"), "{output}");
    assert_eq!(call_count(&app, &org).await, 250);
    assert_rollups_equal_raw(&app, &org).await;

    // Again: nothing to do.
    let mut process = Process::spawn(&["import", "calls", path, "--org", "cli"], &app.database.url);
    let status = process.wait_exit(Duration::from_secs(60)).await;
    let output = process.output();
    assert!(status.success(), "{output}");
    assert!(output.contains("imported 0 calls, 250 already there"), "{output}");

    // A bad row: the report on the terminal, a failing exit, nothing written.
    let bad = dir.path().join("bad.ndjson");
    std::fs::write(
        &bad,
        "{\"externalId\":\"n-1\",\"direction\":\"INBOUND\",\"offeredAt\":\"2026-01-07T09:00:00Z\",\"endedAt\":\"2026-01-07T09:01:00Z\"}\n\
         {\"externalId\":\"n-2\",\"direction\":\"INBOUND\",\"offeredAt\":\"2026-01-07T09:00:00Z\",\"endedAt\":\"2026-01-07T09:01:00Z\",\"agent\":\"777\"}\n",
    )
    .unwrap();
    let mut process = Process::spawn(
        &["import", "calls", bad.to_str().unwrap(), "--org", "cli"],
        &app.database.url,
    );
    let status = process.wait_exit(Duration::from_secs(60)).await;
    let output = process.output();
    assert!(!status.success(), "{output}");
    assert!(output.contains("line 2") && output.contains("agent"), "{output}");
    assert_eq!(call_count(&app, &org).await, 250);
}

//! Report runs as jobs, against a real PostgreSQL: `runReport` queues, a worker executes, the
//! file downloads equal to the direct export; progress and the end reach `reportRunUpdated`;
//! cancellation stops a run; downloads by token and by signed link, guarded and audited; files
//! expire; a run whose instance is killed (SIGKILL) is taken over once by another instance and
//! finished once.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;
mod reports_support;

use std::time::Duration;

use chrono::TimeDelta;
use common::binary::Process;
use common::fixture::{AgentSpec, CampaignSpec, FixtureOrg};
use common::TestApp;
use diesel_async::RunQueryDsl;
use omnivox::auth::Role;
use omnivox::db::interactions::NewInteraction;
use omnivox::db::report_runs::{self as runs, Claim, Ending};
use omnivox::domain::{Direction, Outcome};
use omnivox::kpi::writer::insert_calls;
use reports_support::*;
use serde_json::{json, Value};

const FROM: &str = "2026-01-05T00:00:00Z";
const TO: &str = "2026-01-12T00:00:00Z";

const RUN: &str = "mutation($id: ID!, $f: ReportFormat!, $r: ReportRangeInput) {
    runReport(id: $id, format: $f, range: $r) { id status format start end attempt } }";
const RUN_FIELDS: &str = "id status rowsWritten bytes attempt error downloadPath filename durationMs expiresAt";

/// An organization with `agents` agents answering calls every day of the week of 5 January
/// 2026, and a shared report of handled calls per agent and day over that week.
async fn seeded(app: &TestApp, slug: &str, agents: usize) -> (FixtureOrg, String) {
    let mut builder = FixtureOrg::builder(slug)
        .teams(["Blue"])
        .campaign(CampaignSpec::inbound("Care"))
        .created_at(at("2025-12-01T00:00:00Z"));
    for a in 0..agents {
        builder = builder.agent(AgentSpec::new(format!("Agent {a:02}")).team(0));
    }
    let org = builder.build(&app.state).await;
    let mut calls = Vec::new();
    for day in 0..7 {
        for (a, agent) in org.agents.iter().enumerate() {
            let offered = at(FROM) + TimeDelta::days(day) + TimeDelta::hours(9) + TimeDelta::minutes(a as i64);
            let mut call =
                NewInteraction::offered(format!("CA-{day}-{a}"), Direction::Inbound, offered, Outcome::Answered);
            call.campaign_id = Some(org.campaigns[0]);
            call.agent_id = Some(*agent);
            call.wait_ms = Some(((a as i64 * 7 + day) % 40) * 1_000);
            call.answered_at = Some(offered + TimeDelta::seconds(5));
            call.ended_at = Some(offered + TimeDelta::seconds(125));
            call.talk_ms = 120_000;
            calls.push(call);
        }
    }
    let mut conn = app.state.system_db.get().await.unwrap();
    insert_calls(&mut conn, &org.tenant, &calls).await.unwrap();
    let supervisor = org.token(&app.state, Role::Supervisor).await;
    let report = json!({
        "title": "Handled per agent and day",
        "shared": true,
        "query": { "metrics": ["HANDLED", "AVERAGE_HANDLE_TIME", "SERVICE_LEVEL"], "groupBy": ["AGENT"], "granularity": "DAY" },
        "range": { "relative": "LAST_7_DAYS" },
        "presentation": { "totals": true }
    });
    let id = created_id(app, &supervisor, report).await;
    (org, id)
}

async fn run_report(app: &TestApp, token: &str, id: &str, format: &str) -> common::GqlResponse {
    app.gql(
        Some(token),
        RUN,
        json!({ "id": id, "f": format, "r": { "from": FROM, "to": TO } }),
    )
    .await
}

async fn run_state(app: &TestApp, token: &str, run_id: &str) -> Value {
    let query = format!("query($id: ID!) {{ reportRun(id: $id) {{ {RUN_FIELDS} }} }}");
    app.gql(Some(token), &query, json!({ "id": run_id })).await.ok()["reportRun"].clone()
}

/// Polls the run until it has ended.
async fn ended(app: &TestApp, token: &str, run_id: &str) -> Value {
    for _ in 0..300 {
        let run = run_state(app, token, run_id).await;
        if ["SUCCEEDED", "FAILED", "CANCELLED"].contains(&run["status"].as_str().unwrap()) {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("run {run_id} did not end within 30 s");
}

async fn get(app: &TestApp, token: Option<&str>, path: &str) -> reqwest::Response {
    let mut request = app.http.get(app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_is_queued_executed_stored_and_downloaded_equal_to_the_direct_export() {
    let app = TestApp::spawn().await;
    let (org, id) = seeded(&app, "runs", 3).await;
    let supervisor = org.token(&app.state, Role::Supervisor).await;

    let queued = run_report(&app, &supervisor, &id, "CSV").await;
    let queued = &queued.ok()["runReport"];
    assert_eq!(queued["status"], "QUEUED", "{queued}");
    assert_eq!(queued["format"], "CSV");
    assert_eq!(queued["start"], "2026-01-05T00:00:00+00:00");
    let run_id = queued["id"].as_str().unwrap().to_owned();

    let run = ended(&app, &supervisor, &run_id).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(run["rowsWritten"], 21, "3 agents × 7 days");
    assert_eq!(run["attempt"], 1);
    assert_eq!(run["filename"], "handled-per-agent-and-day.csv");
    let path = run["downloadPath"].as_str().unwrap().to_owned();
    assert_eq!(path, format!("/exports/{run_id}"));

    let file = get(&app, Some(&supervisor), &path).await;
    assert_eq!(file.status(), 200);
    assert_eq!(file.headers()["content-type"], "text/csv; charset=utf-8");
    let file = file.bytes().await.unwrap();
    assert_eq!(run["bytes"].as_i64(), Some(file.len() as i64));
    let direct = get(
        &app,
        Some(&supervisor),
        &format!("/api/reports/{id}.csv?from={FROM}&to={TO}"),
    )
    .await;
    let direct = direct.bytes().await.unwrap();
    assert_eq!(file, direct, "the run's file is the direct export of the same range");
    let records = csv::Reader::from_reader(&file[..]).records().count();
    assert_eq!(records, 22, "21 rows and the totals row");

    // JSON too, through the same writer.
    let json_run = run_report(&app, &supervisor, &id, "JSON").await.ok()["runReport"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let json_run = ended(&app, &supervisor, &json_run).await;
    let doc: Value = get(&app, Some(&supervisor), json_run["downloadPath"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(doc["rows"].as_array().unwrap().len(), 21);
    assert_eq!(
        doc["totals"][0], "Total",
        "labelled in the first column (the period start)"
    );

    // XLSX and PDF through the same worker (their contents are checked in tests/report_files.rs).
    for (format, content_type, magic) in [
        (
            "XLSX",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            &b"PK"[..],
        ),
        ("PDF", "application/pdf", &b"%PDF"[..]),
    ] {
        let run = run_report(&app, &supervisor, &id, format).await.ok()["runReport"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let run = ended(&app, &supervisor, &run).await;
        assert_eq!(run["status"], "SUCCEEDED", "{format}: {run}");
        let file = get(&app, Some(&supervisor), run["downloadPath"].as_str().unwrap()).await;
        assert_eq!(file.headers()["content-type"], content_type);
        assert!(file.bytes().await.unwrap().starts_with(magic), "{format}");
    }

    // Listed, newest first; audited: requested, run, downloaded.
    let listed = app
        .gql(
            Some(&supervisor),
            "query($r: ID) { reportRuns(reportId: $r) { id status } }",
            json!({ "r": id }),
        )
        .await;
    let listed = listed.ok()["reportRuns"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 4);
    assert_eq!(listed[3]["id"], run_id.as_str());
    let actions: Vec<String> = report_audit(&app).await.into_iter().map(|a| a.action).collect();
    for action in ["report.run.request", "report.run", "report.download"] {
        assert!(actions.iter().any(|a| a == action), "{action} in {actions:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_reaches_the_subscriber_and_a_cancelled_run_stops_without_a_file() {
    // Every row takes 150 ms: a run of 21 rows lasts about 3 s.
    let app = TestApp::spawn_with(|s| s.report_row_delay = Duration::from_millis(150)).await;
    let (org, id) = seeded(&app, "runprog", 3).await;
    let supervisor = org.token(&app.state, Role::Supervisor).await;

    let run_id = run_report(&app, &supervisor, &id, "CSV").await.ok()["runReport"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ws = app
        .subscribe(
            &supervisor,
            "subscription($id: ID!) { reportRunUpdated(runId: $id) { status rowsWritten bytes } }",
            json!({ "id": run_id }),
        )
        .await;
    let mut seen = Vec::new();
    while let Some(update) = ws.next_data("reportRunUpdated", Duration::from_secs(15)).await {
        let done = update["status"] == "SUCCEEDED";
        seen.push(update);
        if done {
            break;
        }
    }
    let last = seen.last().unwrap();
    assert_eq!(last["status"], "SUCCEEDED", "{seen:?}");
    assert_eq!(last["rowsWritten"], 21);
    assert!(last["bytes"].as_i64().unwrap() > 0);
    let progress: Vec<i64> = seen
        .iter()
        .filter(|u| u["status"] == "RUNNING")
        .map(|u| u["rowsWritten"].as_i64().unwrap())
        .collect();
    assert!(
        progress.iter().any(|&n| n > 0 && n < 21),
        "rows written so far while running: {seen:?}"
    );
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");

    // A second run, cancelled while it runs.
    let run_id = run_report(&app, &supervisor, &id, "CSV").await.ok()["runReport"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..100 {
        if run_state(&app, &supervisor, &run_id).await["status"] == "RUNNING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cancelled = app
        .gql(
            Some(&supervisor),
            "mutation($id: ID!) { cancelReportRun(id: $id) { id status } }",
            json!({ "id": run_id }),
        )
        .await;
    assert_eq!(cancelled.ok()["cancelReportRun"]["id"], run_id.as_str());
    let run = ended(&app, &supervisor, &run_id).await;
    assert_eq!(run["status"], "CANCELLED", "{run}");
    assert!(run["rowsWritten"].as_i64().unwrap() < 21, "it stopped early: {run}");
    assert_eq!(run["downloadPath"], Value::Null);
    let file = get(&app, Some(&supervisor), &format!("/exports/{run_id}")).await;
    assert_eq!(file.status(), 409);
    let chunks: Count = diesel::sql_query(format!(
        "SELECT count(*) AS n FROM report_files WHERE run_id = '{run_id}'"
    ))
    .get_result(&mut db(&app).await)
    .await
    .unwrap();
    assert_eq!(chunks.n, 0, "a cancelled run stores no file");
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_and_downloads_are_guarded_linked_audited_and_expire() {
    let app = TestApp::spawn().await;
    let (org, id) = seeded(&app, "runsec", 2).await;
    let (other, other_id) = seeded(&app, "runsec2", 1).await;
    let supervisor = org.token(&app.state, Role::Supervisor).await;
    let viewer = org.token(&app.state, Role::Viewer).await;
    let agent = org.token(&app.state, Role::Agent).await;
    let outsider = other.token(&app.state, Role::Admin).await;

    // AGENT reads no report, so runs none; VIEWER runs a shared one.
    let refused = run_report(&app, &agent, &id, "CSV").await;
    assert_eq!(refused.error_code(), Some("FORBIDDEN"));
    let by_viewer = run_report(&app, &viewer, &id, "CSV").await;
    let run_id = by_viewer.ok()["runReport"]["id"].as_str().unwrap().to_owned();
    let run = ended(&app, &viewer, &run_id).await;
    assert_eq!(run["status"], "SUCCEEDED");

    // Following a run: not for AGENT; another organization's run is NOT_FOUND.
    const FOLLOW: &str = "subscription($id: ID!) { reportRunUpdated(runId: $id) { status } }";
    for (token, code) in [(&agent, "FORBIDDEN"), (&outsider, "NOT_FOUND")] {
        let mut ws = app.subscribe(token, FOLLOW, json!({ "id": run_id })).await;
        let message = ws.expect_json().await;
        let errors = if message["type"] == "error" {
            message["payload"][0].clone()
        } else {
            message["payload"]["errors"][0].clone()
        };
        assert_eq!(errors["extensions"]["code"], code, "{message}");
    }

    // Another organization: its report, its run, its download are NOT_FOUND.
    assert_eq!(
        run_report(&app, &outsider, &id, "CSV").await.error_code(),
        Some("NOT_FOUND")
    );
    let read = app
        .gql(
            Some(&outsider),
            "query($id: ID!) { reportRun(id: $id) { id } }",
            json!({ "id": run_id }),
        )
        .await;
    assert_eq!(read.error_code(), Some("NOT_FOUND"));
    assert_eq!(
        get(&app, Some(&outsider), &format!("/exports/{run_id}")).await.status(),
        404
    );
    assert_eq!(get(&app, None, &format!("/exports/{run_id}")).await.status(), 401);
    assert_eq!(
        run_report(&app, &supervisor, &other_id, "CSV").await.error_code(),
        Some("NOT_FOUND")
    );

    // A signed link works without a token…
    let link = app
        .gql(
            Some(&viewer),
            "mutation($id: ID!) { createReportDownloadLink(runId: $id, validForMinutes: 5) { url expiresAt } }",
            json!({ "id": run_id }),
        )
        .await;
    let url = link.ok()["createReportDownloadLink"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = &url[url.find("/exports/").unwrap()..];
    let by_link = get(&app, None, path).await;
    assert_eq!(by_link.status(), 200);
    let by_token = get(&app, Some(&viewer), &format!("/exports/{run_id}")).await;
    assert_eq!(by_link.bytes().await.unwrap(), by_token.bytes().await.unwrap());
    // …but not tampered with: another signature, another expiry, another organization.
    let tampered_signature = format!("{}0", &path[..path.len() - 1]);
    let tampered_signature = if tampered_signature == path {
        format!("{}1", &path[..path.len() - 1])
    } else {
        tampered_signature
    };
    let later = path.replace("expires=", "expires=9");
    let elsewhere = path.replace(&org.tenant.org_id().to_string(), &other.tenant.org_id().to_string());
    for bad in [tampered_signature.as_str(), later.as_str(), elsewhere.as_str()] {
        let response = get(&app, None, bad).await;
        assert_eq!(response.status(), 403, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
    }
    // An expired link, genuinely signed.
    let (expired, _) = omnivox::reports::downloads::signed_link(
        &app.state,
        run_id.parse().unwrap(),
        org.tenant.org_id(),
        Duration::ZERO,
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let expired = &expired[expired.find("/exports/").unwrap()..];
    assert_eq!(get(&app, None, expired).await.status(), 403);

    // Downloads are audited, with how they were authorized.
    let downloads: Vec<String> = report_audit(&app)
        .await
        .into_iter()
        .filter(|a| a.action == "report.download")
        .map(|a| a.details)
        .collect();
    assert_eq!(downloads.len(), 2, "{downloads:?}");
    assert!(downloads.iter().any(|d| d.contains("signed link")));

    // Past its retention the file is refused, then deleted by the sweep; the run stays.
    let mut conn = db(&app).await;
    diesel::sql_query(format!(
        "UPDATE report_runs SET expires_at = now() - interval '1 second' WHERE id = '{run_id}'"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        get(&app, Some(&viewer), &format!("/exports/{run_id}")).await.status(),
        404
    );
    assert_eq!(runs::delete_expired_files(&mut conn, 100).await.unwrap(), 1);
    assert_eq!(runs::delete_expired_files(&mut conn, 100).await.unwrap(), 0);
    let chunks: Count = diesel::sql_query(format!(
        "SELECT count(*) AS n FROM report_files WHERE run_id = '{run_id}'"
    ))
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(chunks.n, 0);
    assert_eq!(run_state(&app, &viewer, &run_id).await["status"], "SUCCEEDED");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claim_taken_over_can_no_longer_end_the_run() {
    let app = TestApp::spawn_with(|s| s.report_workers = 0).await;
    let (org, id) = seeded(&app, "runfence", 1).await;
    let supervisor = org.token(&app.state, Role::Supervisor).await;
    let run_id = run_report(&app, &supervisor, &id, "CSV").await.ok()["runReport"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut conn = db(&app).await;
    let first = runs::claim(&mut conn, "a", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.id, first.attempt), (run_id, 1));
    assert!(
        runs::claim(&mut conn, "b", Duration::from_secs(60))
            .await
            .unwrap()
            .is_none(),
        "a live claim is not taken"
    );
    // Instance "a" goes silent: after the takeover delay "b" claims the run again.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let second = runs::claim(&mut conn, "b", Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((second.id, second.attempt), (run_id, 2));
    let lost = Claim {
        run_id,
        org_id: org.tenant.org_id(),
        attempt: 1,
    };
    assert_eq!(runs::heartbeat(&mut conn, lost, 5).await.unwrap(), runs::Beat::Lost);
    assert!(!runs::finish(&mut conn, lost, Ending::Failed("late")).await.unwrap());
    let held = Claim { attempt: 2, ..lost };
    assert!(runs::finish(&mut conn, held, Ending::Cancelled).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_whose_instance_is_killed_is_taken_over_once_and_finished_once() {
    // The API instance of the test runs no reports; two `omnivox serve` processes do.
    let app = TestApp::spawn_with(|s| s.report_workers = 0).await;
    let (org, id) = seeded(&app, "runkill", 4).await;
    let supervisor = org.token(&app.state, Role::Supervisor).await;
    let env = |delay: &'static str| {
        [
            ("OMNIVOX_REPORT_ROW_DELAY", delay),
            ("OMNIVOX_REPORT_TAKEOVER_AFTER", "2s"),
            ("OMNIVOX_REPORT_WORKERS", "1"),
        ]
    };
    let mut first = Process::spawn_with_env(&["serve", "--bind", "127.0.0.1:0"], &app.database.url, &env("300ms"));
    first.listening_addr(Duration::from_secs(60)).await;

    let run_id = run_report(&app, &supervisor, &id, "CSV").await.ok()["runReport"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The first instance claims it and writes rows (28 rows at 300 ms each: about 8 s).
    let mut running = Value::Null;
    for _ in 0..200 {
        running = run_state(&app, &supervisor, &run_id).await;
        if running["status"] == "RUNNING" && running["rowsWritten"].as_i64().unwrap() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(running["status"], "RUNNING", "{running}");
    assert_eq!(running["attempt"], 1);
    let killed = std::process::Command::new("kill")
        .args(["-9", &first.pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    let mut second = Process::spawn_with_env(&["serve", "--bind", "127.0.0.1:0"], &app.database.url, &env("0ms"));
    second.listening_addr(Duration::from_secs(60)).await;
    let run = ended(&app, &supervisor, &run_id).await;
    assert_eq!(run["status"], "SUCCEEDED", "{run}");
    assert_eq!(run["attempt"], 2, "taken over once");
    assert_eq!(run["rowsWritten"], 28);

    // Finished once: one audit record of the run, one stored file, equal to the direct export.
    let finished: Vec<Audit> = report_audit(&app)
        .await
        .into_iter()
        .filter(|a| a.action == "report.run" && a.details.contains(&run_id))
        .collect();
    assert_eq!(finished.len(), 1);
    let file = get(&app, Some(&supervisor), run["downloadPath"].as_str().unwrap()).await;
    let file = file.bytes().await.unwrap();
    let direct = get(
        &app,
        Some(&supervisor),
        &format!("/api/reports/{id}.csv?from={FROM}&to={TO}"),
    )
    .await;
    assert_eq!(file, direct.bytes().await.unwrap());
    drop(second);
}

//! Report schedules and their delivery (issue #12, parts 6 and 7), against the real services:
//! PostgreSQL, several instances on one database (in-process peers and real `omnivox`
//! processes), a real SMTP server and a real HTTP receiver started by the test.
//!
//! The run worker (`reports::jobs`) is not started here: where a test needs a finished run it
//! finishes it as the worker would (status, file), so what is tested is the claim of fires and
//! the delivery of runs, each on its own.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;
mod reports_support;
mod schedules_support;

use std::time::Duration;

use chrono::{DateTime, DurationRound, Utc};
use common::binary::Process;
use common::TestApp;
use hmac::{Hmac, Mac};
use omnivox::auth::Role;
use omnivox::config::Backoff;
use omnivox::reports::delivery::{self, Senders};
use omnivox::reports::scheduler::{self, Claimed};
use omnivox::state::AppState;
use reports_support::{agents_yesterday, created_id, field_of};
use schedules_support::{
    deliveries, fail_run, finish_run, make_due, scheduled_runs, DeliveryState, Receiver, SmtpServer,
};
use serde_json::{json, Value};
use sha2::Sha256;
use uuid::Uuid;

const CREATE: &str = "mutation($r: ID!, $i: ReportScheduleInput!) { createReportSchedule(reportId: $r, input: $i) {
    webhookSecret schedule { id version cron timezone format recipients webhookUrl paused nextFireTimes(n: 3) } } }";
const GET: &str = "query($i: ID!) { reportSchedule(id: $i) { id version paused nextFireAt nextFireTimes(n: 2)
    lastFireAt lastRunId missedFires lastError deliveries { kind target status attempts lastError } } }";

fn input(cron: &str, timezone: &str, recipients: &[&str], webhook: Option<&str>) -> Value {
    json!({ "cron": cron, "timezone": timezone, "format": "CSV", "recipients": recipients, "webhookUrl": webhook })
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// A shared report of the organization's supervisor; returns (supervisor token, report id).
async fn shared_report(app: &TestApp, org: &common::fixture::FixtureOrg) -> (String, String) {
    let token = app.token(org, Role::Supervisor).await;
    let mut report = agents_yesterday();
    report["shared"] = json!(true);
    let id = created_id(app, &token, report).await;
    (token, id)
}

/// Creates a schedule; returns (id, webhook secret).
async fn schedule(app: &TestApp, token: &str, report: &str, input: Value) -> (Uuid, String) {
    let response = app.gql(Some(token), CREATE, json!({ "r": report, "i": input })).await;
    let created = &response.ok()["createReportSchedule"];
    (
        created["schedule"]["id"].as_str().unwrap().parse().unwrap(),
        created["webhookSecret"].as_str().unwrap().to_owned(),
    )
}

async fn stored_schedules(url: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    use diesel_async::RunQueryDsl;
    let row: N = diesel::sql_query("SELECT count(*) AS n FROM report_schedules")
        .get_result(&mut schedules_support::db(url).await)
        .await
        .unwrap();
    row.n
}

fn runs_claimed(claimed: &[Claimed]) -> Vec<Uuid> {
    claimed
        .iter()
        .filter_map(|c| match c {
            Claimed::Run { schedule_id, .. } => Some(*schedule_id),
            _ => None,
        })
        .collect()
}

/// Thirty schedules due at once, three instances on one database claiming at the same instant,
/// twice over: every fire becomes exactly one run, claimed by exactly one instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_due_fire_is_claimed_once_across_three_instances() {
    let app = TestApp::spawn().await;
    let peer_b = app.spawn_peer(|_| {}).await;
    let peer_c = app.spawn_peer(|_| {}).await;
    let org = app.create_org("fires").await;
    let (token, report) = shared_report(&app, &org).await;
    let mut ids = Vec::new();
    for _ in 0..30 {
        let (id, _) = schedule(
            &app,
            &token,
            &report,
            input("0 0 1 1 *", "UTC", &["ops@example.com"], None),
        )
        .await;
        ids.push(id);
    }
    make_due(&app.database.url, &ids, at("2026-01-01T00:00:00Z")).await;
    let now = Utc::now();
    let (a, b, c) = tokio::join!(
        scheduler::tick_once(&app.state, now),
        scheduler::tick_once(&peer_b.state, now),
        scheduler::tick_once(&peer_c.state, now)
    );
    let mut claimed: Vec<Uuid> = [a.unwrap(), b.unwrap(), c.unwrap()]
        .iter()
        .flat_map(|c| runs_claimed(c))
        .collect();
    claimed.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(claimed, expected, "each schedule claimed by exactly one instance");
    // Again, at the same instant: nothing is due any more.
    let (a, b, c) = tokio::join!(
        scheduler::tick_once(&app.state, now),
        scheduler::tick_once(&peer_b.state, now),
        scheduler::tick_once(&peer_c.state, now)
    );
    assert!(a.unwrap().is_empty() && b.unwrap().is_empty() && c.unwrap().is_empty());
    let runs = scheduled_runs(&app.database.url).await;
    assert_eq!(runs.len(), 30);
    assert!(runs.iter().all(|r| r.fire_at == at("2026-01-01T00:00:00Z")));
    let deliveries = deliveries(&app.database.url).await;
    assert_eq!(deliveries.len(), 30, "one e-mail delivery per run");
    assert!(deliveries.iter().all(|d| d.status == "PENDING" && d.attempts == 0));
    // The schedule moved to its next fire and names its run.
    let got = app.gql(Some(&token), GET, json!({ "i": ids[0] })).await;
    let s = &got.ok()["reportSchedule"];
    assert_eq!(s["nextFireAt"], "2027-01-01T00:00:00+00:00");
    assert_eq!(s["lastFireAt"], "2026-01-01T00:00:00+00:00");
    assert!(s["lastRunId"].is_string());
}

/// Two real `omnivox serve` processes on one database, each running its scheduler every
/// 100 ms: twenty due schedules, one run each.
#[tokio::test(flavor = "multi_thread")]
async fn two_processes_fire_each_due_schedule_once() {
    let app = TestApp::spawn().await;
    let org = app.create_org("procs").await;
    let (token, report) = shared_report(&app, &org).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let (id, _) = schedule(
            &app,
            &token,
            &report,
            input("0 0 1 1 *", "UTC", &[], Some("http://127.0.0.1:9/hook")),
        )
        .await;
        ids.push(id);
    }
    let env = [("OMNIVOX_SCHEDULE_TICK", "100ms"), ("OMNIVOX_DELIVERY_POLL", "1h")];
    let mut first = Process::spawn_with_env(&["serve", "--bind", "127.0.0.1:0"], &app.database.url, &env);
    let mut second = Process::spawn_with_env(&["serve", "--bind", "127.0.0.1:0"], &app.database.url, &env);
    first.listening_addr(Duration::from_secs(60)).await;
    second.listening_addr(Duration::from_secs(60)).await;
    make_due(&app.database.url, &ids, at("2026-01-01T00:00:00Z")).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let runs = scheduled_runs(&app.database.url).await;
        if runs.len() >= 20 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A few more ticks of both: still one run per fire.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let runs = scheduled_runs(&app.database.url).await;
    let mut fired: Vec<Uuid> = runs.iter().map(|r| r.schedule_id).collect();
    fired.sort();
    ids.sort();
    assert_eq!(fired, ids, "one run per schedule: {runs:?}");
    first.sigterm();
    second.sigterm();
    assert!(first.wait_exit(Duration::from_secs(30)).await.success());
    assert!(second.wait_exit(Duration::from_secs(30)).await.success());
}

/// Five hours down on an hourly schedule: one run, for the latest hour; four fires counted as
/// missed.
#[tokio::test(flavor = "multi_thread")]
async fn after_downtime_only_the_latest_missed_fire_runs() {
    let app = TestApp::spawn().await;
    let org = app.create_org("missed").await;
    let (token, report) = shared_report(&app, &org).await;
    let (id, _) = schedule(
        &app,
        &token,
        &report,
        input("0 * * * *", "UTC", &["ops@example.com"], None),
    )
    .await;
    let now = Utc::now();
    let hour = now.duration_trunc(chrono::Duration::hours(1)).unwrap();
    make_due(&app.database.url, &[id], hour - chrono::Duration::hours(4)).await;
    let claimed = scheduler::tick_once(&app.state, now).await.unwrap();
    assert!(
        matches!(claimed.as_slice(), [Claimed::Run { fire_at, missed: 4, .. }] if *fire_at == hour),
        "{claimed:?}"
    );
    let runs = scheduled_runs(&app.database.url).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].fire_at, hour);
    let got = app.gql(Some(&token), GET, json!({ "i": id })).await;
    assert_eq!(got.ok()["reportSchedule"]["missedFires"], 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_suspended_organization_s_schedules_wait_until_it_is_resumed() {
    let app = TestApp::spawn().await;
    let org = app.create_org("paused").await;
    let (token, report) = shared_report(&app, &org).await;
    let (id, _) = schedule(
        &app,
        &token,
        &report,
        input("0 * * * *", "UTC", &["ops@example.com"], None),
    )
    .await;
    let platform = app.create_org("platform").await;
    let staff = app.token(&platform, Role::SuperAdmin).await;
    app.gql(
        Some(&staff),
        "mutation($o: ID!) { suspendOrganization(orgId: $o) { id } }",
        json!({ "o": org.id }),
    )
    .await
    .ok();
    let now = Utc::now();
    let hour = now.duration_trunc(chrono::Duration::hours(1)).unwrap();
    make_due(&app.database.url, &[id], hour - chrono::Duration::hours(1)).await;
    let claimed = scheduler::tick_once(&app.state, now).await.unwrap();
    assert!(claimed.is_empty(), "{claimed:?}");
    assert!(scheduled_runs(&app.database.url).await.is_empty());

    app.gql(
        Some(&staff),
        "mutation($o: ID!) { resumeOrganization(orgId: $o) { id } }",
        json!({ "o": org.id }),
    )
    .await
    .ok();
    let claimed = scheduler::tick_once(&app.state, now).await.unwrap();
    assert!(
        matches!(claimed.as_slice(), [Claimed::Run { fire_at, missed: 1, .. }] if *fire_at == hour),
        "{claimed:?}"
    );
    assert_eq!(scheduled_runs(&app.database.url).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_inputs_name_their_field_and_store_nothing() {
    let app = TestApp::spawn().await;
    let org = app.create_org("badinput").await;
    let (token, report) = shared_report(&app, &org).await;
    let cases = [
        (input("0 25 * * *", "UTC", &["a@example.com"], None), "input.cron"),
        (input("0 6 * * * *", "UTC", &["a@example.com"], None), "input.cron"),
        (
            input("0 6 * * *", "Europe/Atlantis", &["a@example.com"], None),
            "input.timezone",
        ),
        (input("0 6 * * *", "UTC", &[], None), "input.recipients"),
        (
            input("0 6 * * *", "UTC", &["a@example.com", "nobody"], None),
            "input.recipients[1]",
        ),
        (
            input("0 6 * * *", "UTC", &[], Some("ftp://example.com/x")),
            "input.webhookUrl",
        ),
        (input("0 6 * * *", "UTC", &[], Some("not a url")), "input.webhookUrl"),
        (
            json!({ "cron": "0 6 * * *", "timezone": "UTC", "format": "DOCX", "recipients": ["a@example.com"] }),
            "input.format",
        ),
    ];
    for (bad, field) in cases {
        let response = app.gql(Some(&token), CREATE, json!({ "r": report, "i": bad })).await;
        assert_eq!(
            response.error_code(),
            Some("BAD_USER_INPUT"),
            "{bad}: {}",
            response.body
        );
        assert_eq!(field_of(&response), [field], "{bad}");
    }
    // Everything wrong at once: every field named.
    let all = input("nope", "Nowhere/Else", &[], Some("mailto:x@example.com"));
    let response = app.gql(Some(&token), CREATE, json!({ "r": report, "i": all })).await;
    assert_eq!(
        field_of(&response),
        ["input.cron", "input.timezone", "input.webhookUrl"]
    );
    assert_eq!(stored_schedules(&app.database.url).await, 0);
    // An update with a bad field changes nothing either.
    let (id, _) = schedule(
        &app,
        &token,
        &report,
        input("0 6 * * *", "UTC", &["a@example.com"], None),
    )
    .await;
    let update = "mutation($i: ID!, $in: ReportScheduleInput!) { updateReportSchedule(id: $i, expectedVersion: 1, input: $in) { version } }";
    let response = app
        .gql(
            Some(&token),
            update,
            json!({ "i": id, "in": input("0 6 * * *", "Mars/Base", &["a@example.com"], None) }),
        )
        .await;
    assert_eq!(field_of(&response), ["input.timezone"]);
    let got = app.gql(Some(&token), GET, json!({ "i": id })).await;
    assert_eq!(got.ok()["reportSchedule"]["version"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_and_tenants() {
    let app = TestApp::spawn().await;
    let org = app.create_org("sched-roles").await;
    let other = app.create_org("sched-other").await;
    let (supervisor, report) = shared_report(&app, &org).await;
    let good = input("0 6 * * *", "UTC", &["a@example.com"], None);
    for role in [Role::Agent, Role::Viewer] {
        let token = app.token(&org, role).await;
        let response = app.gql(Some(&token), CREATE, json!({ "r": report, "i": good })).await;
        assert_eq!(response.error_code(), Some("FORBIDDEN"), "{role}: {}", response.body);
    }
    assert_eq!(stored_schedules(&app.database.url).await, 0);
    let (id, _) = schedule(&app, &supervisor, &report, good.clone()).await;
    // Another organization: its ADMIN gets NOT_FOUND for the schedule and the report.
    let stranger = app.token(&other, Role::Admin).await;
    for (document, variables) in [
        (GET, json!({ "i": id })),
        (
            "mutation($i: ID!) { pauseReportSchedule(id: $i) { id } }",
            json!({ "i": id }),
        ),
        ("mutation($i: ID!) { deleteReportSchedule(id: $i) }", json!({ "i": id })),
        (
            "query($i: ID!) { reportSchedules(reportId: $i) { id } }",
            json!({ "i": report }),
        ),
        (CREATE, json!({ "r": report, "i": good })),
    ] {
        let response = app.gql(Some(&stranger), document, variables).await;
        assert_eq!(
            response.error_code(),
            Some("NOT_FOUND"),
            "{document}: {}",
            response.body
        );
    }
    // The owner's schedule: an ADMIN of the organization may pause it.
    let admin = app.token(&org, Role::Admin).await;
    let paused = app
        .gql(
            Some(&admin),
            "mutation($i: ID!) { pauseReportSchedule(id: $i) { paused version } }",
            json!({ "i": id }),
        )
        .await;
    assert_eq!(paused.ok()["pauseReportSchedule"]["paused"], true);
    let listed = app
        .gql(
            Some(&supervisor),
            "query($i: ID!) { reportSchedules(reportId: $i) { id paused } }",
            json!({ "i": report }),
        )
        .await;
    assert_eq!(listed.ok()["reportSchedules"].as_array().unwrap().len(), 1);
}

/// Update (optimistic), pause, resume, delete, and the fire times a schedule lists; a paused
/// schedule does not fire; a deleted schedule's runs stay.
#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_of_a_schedule() {
    let app = TestApp::spawn().await;
    let org = app.create_org("sched-life").await;
    let (token, report) = shared_report(&app, &org).await;
    let response = app
        .gql(
            Some(&token),
            CREATE,
            json!({ "r": report, "i": input("30 2 * * *", "Europe/Paris", &["a@example.com"], None) }),
        )
        .await;
    let created = &response.ok()["createReportSchedule"];
    assert!(created["webhookSecret"].as_str().unwrap().starts_with("whsec_"));
    let times = created["schedule"]["nextFireTimes"].as_array().unwrap();
    assert_eq!(times.len(), 3);
    for t in times {
        let local = at(t.as_str().unwrap()).with_timezone(&chrono_tz::Europe::Paris);
        assert_eq!(local.format("%M").to_string(), "30");
    }
    let id: Uuid = created["schedule"]["id"].as_str().unwrap().parse().unwrap();
    let update = "mutation($i: ID!, $v: Int!, $in: ReportScheduleInput!) { updateReportSchedule(id: $i, expectedVersion: $v, input: $in) { version cron } }";
    let hourly = input("0 * * * *", "UTC", &["a@example.com"], None);
    let stale = app
        .gql(Some(&token), update, json!({ "i": id, "v": 7, "in": hourly }))
        .await;
    assert_eq!(stale.error_code(), Some("CONFLICT"));
    let updated = app
        .gql(Some(&token), update, json!({ "i": id, "v": 1, "in": hourly }))
        .await;
    assert_eq!(updated.ok()["updateReportSchedule"]["version"], 2);
    // Paused: no fire times, and a due fire does not run.
    app.gql(
        Some(&token),
        "mutation($i: ID!) { pauseReportSchedule(id: $i) { id } }",
        json!({ "i": id }),
    )
    .await
    .ok();
    let got = app.gql(Some(&token), GET, json!({ "i": id })).await;
    assert_eq!(got.ok()["reportSchedule"]["nextFireTimes"], json!([]));
    assert!(got.ok()["reportSchedule"]["nextFireAt"].is_null());
    make_due(&app.database.url, &[id], Utc::now() - chrono::Duration::hours(1)).await;
    assert!(scheduler::tick_once(&app.state, Utc::now()).await.unwrap().is_empty());
    // Resumed: from the next hour on (the missed fire does not run).
    let resumed = app
        .gql(
            Some(&token),
            "mutation($i: ID!) { resumeReportSchedule(id: $i) { nextFireAt version } }",
            json!({ "i": id }),
        )
        .await;
    let next = at(resumed.ok()["resumeReportSchedule"]["nextFireAt"].as_str().unwrap());
    assert!(next > Utc::now() && next <= Utc::now() + chrono::Duration::hours(1));
    assert!(scheduler::tick_once(&app.state, Utc::now()).await.unwrap().is_empty());
    // Fire once, then delete: the run stays, without its schedule.
    let hour = Utc::now().duration_trunc(chrono::Duration::hours(1)).unwrap();
    make_due(&app.database.url, &[id], hour).await;
    assert_eq!(
        runs_claimed(&scheduler::tick_once(&app.state, Utc::now()).await.unwrap()),
        [id]
    );
    let deleted = app
        .gql(
            Some(&token),
            "mutation($i: ID!) { deleteReportSchedule(id: $i) }",
            json!({ "i": id }),
        )
        .await;
    assert_eq!(deleted.ok()["deleteReportSchedule"], id.to_string());
    assert!(scheduled_runs(&app.database.url).await.is_empty());
    #[derive(diesel::QueryableByName)]
    struct Action {
        #[diesel(sql_type = diesel::sql_types::Text)]
        action: String,
    }
    let audit: Vec<String> = diesel_async::RunQueryDsl::load::<Action>(
        diesel::sql_query(
            "SELECT action FROM audit_log WHERE action LIKE 'report\\_schedule.%' ORDER BY occurred_at, chain_seq",
        ),
        &mut schedules_support::db(&app.database.url).await,
    )
    .await
    .unwrap()
    .into_iter()
    .map(|a| a.action)
    .collect();
    assert_eq!(
        audit,
        [
            "report_schedule.create",
            "report_schedule.update",
            "report_schedule.pause",
            "report_schedule.resume",
            "report_schedule.delete"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Delivery

fn quick(settings: &mut omnivox::config::Settings, smtp: Option<&SmtpServer>) {
    // These tests decide how each run ends (`finish_run`, `fail_run`): no worker races them.
    // `a_scheduled_run_is_executed_and_its_file_delivered` runs the real worker.
    settings.report_workers = 0;
    settings.delivery_backoff = Backoff(vec![Duration::from_millis(50), Duration::from_millis(50)]);
    settings.delivery_timeout = Duration::from_secs(5);
    settings.report_attachment_limit = 100;
    settings.smtp_url = smtp.map(SmtpServer::url);
    settings.smtp_from = "Omnivox <reports@omnivox.test>".into();
}

/// Fires `id`, whose pattern is `cron` in UTC (due at its latest fire), and returns its run.
async fn fire(app: &TestApp, id: Uuid, cron: &str) -> Uuid {
    let now = Utc::now();
    let (latest, _) = omnivox::reports::cron::parse(cron)
        .unwrap()
        .latest_due(chrono_tz::UTC, now - chrono::Duration::days(2), now)
        .unwrap();
    make_due(&app.database.url, &[id], latest).await;
    let claimed = scheduler::tick_once(&app.state, Utc::now()).await.unwrap();
    match claimed.as_slice() {
        [Claimed::Run { run_id, .. }] => *run_id,
        other => panic!("expected one run: {other:?}"),
    }
}

/// Sends until nothing is pending (or 10 s pass).
async fn deliver_all(state: &AppState) -> Vec<DeliveryState> {
    let senders = Senders::new(state).unwrap();
    let url = state.settings.database_url.clone();
    for _ in 0..200 {
        delivery::deliver_due(state, &senders).await.unwrap();
        let now = deliveries(&url).await;
        if now.iter().all(|d| d.status != "PENDING") {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("deliveries still pending: {:?}", deliveries(&url).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn email_attaches_small_files_and_links_large_ones() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(|s| quick(s, Some(&smtp))).await;
    let org = app.create_org("mail").await;
    let (token, report) = shared_report(&app, &org).await;
    let (small, _) = schedule(
        &app,
        &token,
        &report,
        input("0 6 * * *", "UTC", &["a@example.com", "b@example.com"], None),
    )
    .await;
    let run = fire(&app, small, "0 6 * * *").await;
    // Nothing is sent before the run has finished.
    deliver_all_pending_check(&app).await;
    finish_run(&app.database.url, run, b"agent,handled\r\nAda,3\r\n").await;
    let states = deliver_all(&app.state).await;
    assert!(
        states
            .iter()
            .all(|d| d.status == "SENT" && d.attempts == 1 && !d.sent_link),
        "{states:?}"
    );
    let mails = smtp.mails();
    assert_eq!(mails.len(), 2, "one message per recipient");
    let mut to: Vec<String> = mails.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(to, ["a@example.com", "b@example.com"]);
    for mail in &mails {
        assert_eq!(mail.from, "<reports@omnivox.test>");
        assert!(mail.data.contains("Content-Disposition: attachment"), "{}", mail.data);
        assert!(mail.data.contains("report.csv"));
    }
    // Above the limit (100 bytes): a link instead of the file.
    let (large, _) = schedule(
        &app,
        &token,
        &report,
        input("0 7 * * *", "UTC", &["c@example.com"], None),
    )
    .await;
    let run = fire(&app, large, "0 7 * * *").await;
    finish_run(&app.database.url, run, &[b'x'; 500]).await;
    let states = deliver_all(&app.state).await;
    let c = states.iter().find(|d| d.target == "c@example.com").unwrap();
    assert!(c.status == "SENT" && c.sent_link, "{c:?}");
    let mail = smtp.mails().into_iter().find(|m| m.to == ["c@example.com"]).unwrap();
    assert!(!mail.data.contains("Content-Disposition: attachment"));
    // The link (quoted-printable: soft line breaks undone) names the run.
    let text = mail.data.replace("=\r\n", "").replace("=\n", "");
    assert!(
        text.contains(&run.to_string()) && text.contains("http"),
        "{}",
        mail.data
    );
    // A failed run: the recipients hear that it failed, and why.
    let (failing, _) = schedule(
        &app,
        &token,
        &report,
        input("0 8 * * *", "UTC", &["d@example.com"], None),
    )
    .await;
    let run = fire(&app, failing, "0 8 * * *").await;
    fail_run(&app.database.url, run, "statement timeout").await;
    deliver_all(&app.state).await;
    let mail = smtp.mails().into_iter().find(|m| m.to == ["d@example.com"]).unwrap();
    assert!(
        mail.data.contains("Subject: Agents yesterday: the scheduled report")
            && mail.data.contains("statement timeout"),
        "{}",
        mail.data
    );
}

/// Before its run finishes, a delivery is not even claimed.
async fn deliver_all_pending_check(app: &TestApp) {
    let senders = Senders::new(&app.state).unwrap();
    assert_eq!(delivery::deliver_due(&app.state, &senders).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_refusals_are_retried_then_recorded() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(|s| quick(s, Some(&smtp))).await;
    let org = app.create_org("mailfail").await;
    let (token, report) = shared_report(&app, &org).await;
    // Temporary refusal (451): three attempts (two waits), then FAILED with the server's word.
    smtp.rcpt_reply.store(451, std::sync::atomic::Ordering::SeqCst);
    let (id, _) = schedule(
        &app,
        &token,
        &report,
        input("0 6 * * *", "UTC", &["a@example.com"], None),
    )
    .await;
    let run = fire(&app, id, "0 6 * * *").await;
    finish_run(&app.database.url, run, b"x\r\n").await;
    let states = deliver_all(&app.state).await;
    assert_eq!(states.len(), 1);
    let d = &states[0];
    assert_eq!(
        (d.status.as_str(), d.attempts, d.response_status),
        ("FAILED", 3, Some(451)),
        "{d:?}"
    );
    assert!(d.last_error.as_deref().unwrap().contains("try again later"));
    // Permanent refusal (550): FAILED after one attempt.
    smtp.rcpt_reply.store(550, std::sync::atomic::Ordering::SeqCst);
    let (id, _) = schedule(
        &app,
        &token,
        &report,
        input("0 7 * * *", "UTC", &["b@example.com"], None),
    )
    .await;
    let run = fire(&app, id, "0 7 * * *").await;
    finish_run(&app.database.url, run, b"x\r\n").await;
    let states = deliver_all(&app.state).await;
    let d = states.iter().find(|d| d.target == "b@example.com").unwrap();
    assert_eq!(
        (d.status.as_str(), d.attempts, d.response_status),
        ("FAILED", 1, Some(550)),
        "{d:?}"
    );
    assert!(smtp.mails().is_empty());
    // Shown on the schedule.
    let got = app.gql(Some(&token), GET, json!({ "i": id })).await;
    let shown = &got.ok()["reportSchedule"]["deliveries"][0];
    assert_eq!(shown["status"], "FAILED");
    assert!(shown["lastError"].as_str().unwrap().contains("no such mailbox"));
}

fn verify(secret: &str, hook: &schedules_support::Hook) -> Value {
    let header = hook.headers["omnivox-signature"].to_str().unwrap();
    let (t, v1) = header.split_once(",v1=").unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let unix: i64 = t.parse().unwrap();
    assert!((Utc::now().timestamp() - unix).abs() < 60, "a fresh timestamp");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&hook.body);
    mac.verify_slice(&hex::decode(v1).unwrap())
        .expect("the signature verifies");
    serde_json::from_slice(&hook.body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_are_signed_retried_and_failures_recorded() {
    let app = TestApp::spawn_with(|s| quick(s, None)).await;
    let org = app.create_org("hooks").await;
    let (token, report) = shared_report(&app, &org).await;
    // A receiver that answers 500 once, then 200: sent on the second attempt, same delivery id.
    let flaky = Receiver::start(500).await;
    let (id, secret) = schedule(
        &app,
        &token,
        &report,
        input("0 6 * * *", "UTC", &[], Some(&flaky.url())),
    )
    .await;
    let run = fire(&app, id, "0 6 * * *").await;
    finish_run(&app.database.url, run, b"a,b\r\n1,2\r\n").await;
    let senders = Senders::new(&app.state).unwrap();
    assert_eq!(delivery::deliver_due(&app.state, &senders).await.unwrap(), 1);
    flaky.status.store(200, std::sync::atomic::Ordering::SeqCst);
    let states = deliver_all(&app.state).await;
    assert_eq!(
        (states[0].status.as_str(), states[0].attempts, states[0].response_status),
        ("SENT", 2, Some(200))
    );
    let hooks = flaky.hooks();
    assert_eq!(hooks.len(), 2);
    let bodies: Vec<Value> = hooks.iter().map(|h| verify(&secret, h)).collect();
    assert_eq!(
        hooks[0].headers["omnivox-delivery"],
        hooks[1].headers["omnivox-delivery"]
    );
    assert_eq!(hooks[0].headers["omnivox-event"], "report.run.finished");
    let body = &bodies[1];
    assert_eq!(body["runId"], run.to_string());
    assert_eq!(body["scheduleId"], id.to_string());
    assert_eq!(body["status"], "SUCCEEDED");
    assert_eq!(body["rows"], 3);
    assert_eq!(body["bytes"], 10);
    assert!(body["downloadUrl"].as_str().unwrap().contains(&run.to_string()));
    // Someone else's secret does not verify.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"whsec_wrong").unwrap();
    mac.update(&hooks[1].body);
    assert!(mac.verify_slice(&[0; 32]).is_err());

    // Always 500: three attempts, then FAILED with the status.
    let broken = Receiver::start(500).await;
    let (id, _) = schedule(
        &app,
        &token,
        &report,
        input("0 7 * * *", "UTC", &[], Some(&broken.url())),
    )
    .await;
    let run = fire(&app, id, "0 7 * * *").await;
    finish_run(&app.database.url, run, b"x\r\n").await;
    let states = deliver_all(&app.state).await;
    let d = states.iter().find(|d| d.target == broken.url()).unwrap();
    assert_eq!(
        (d.status.as_str(), d.attempts, d.response_status),
        ("FAILED", 3, Some(500)),
        "{d:?}"
    );
    assert_eq!(broken.hooks().len(), 3);

    // Down (nothing listens): three attempts, then FAILED with the connection error.
    let down = format!("http://127.0.0.1:{}/hook", common::spare_port());
    let (id, _) = schedule(&app, &token, &report, input("0 8 * * *", "UTC", &[], Some(&down))).await;
    let run = fire(&app, id, "0 8 * * *").await;
    fail_run(&app.database.url, run, "boom").await;
    let states = deliver_all(&app.state).await;
    let d = states.iter().find(|d| d.target == down).unwrap();
    assert_eq!(
        (d.status.as_str(), d.attempts, d.response_status),
        ("FAILED", 3, None),
        "{d:?}"
    );
    assert!(d.last_error.as_deref().unwrap().contains("no answer"), "{d:?}");
}

/// The whole path with the real run worker: a schedule fires, the worker executes the run, the
/// sender e-mails the file the worker wrote and posts the webhook, whose link downloads it.
#[tokio::test(flavor = "multi_thread")]
async fn a_scheduled_run_is_executed_and_its_file_delivered() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(|s| {
        quick(s, Some(&smtp));
        s.report_workers = 1;
        s.report_attachment_limit = 1024 * 1024;
    })
    .await;
    let org = app.create_org("endtoend").await;
    let (token, report) = shared_report(&app, &org).await;
    let receiver = Receiver::start(200).await;
    let (id, secret) = schedule(
        &app,
        &token,
        &report,
        input("0 6 * * *", "UTC", &["boss@example.com"], Some(&receiver.url())),
    )
    .await;
    let run = fire(&app, id, "0 6 * * *").await;
    // The worker (woken by the scheduler, or on its next poll) executes it.
    let mut status = String::new();
    for _ in 0..200 {
        let read = app
            .gql(
                Some(&token),
                "query($id: ID!) { reportRun(id: $id) { status } }",
                json!({ "id": run }),
            )
            .await;
        status = read.ok()["reportRun"]["status"].as_str().unwrap().to_owned();
        if status == "SUCCEEDED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "SUCCEEDED");
    let states = deliver_all(&app.state).await;
    assert!(states.iter().all(|d| d.status == "SENT"), "{states:?}");
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].data.contains("Content-Disposition: attachment"));
    assert!(mails[0].data.contains("agents-yesterday.csv"), "{}", mails[0].data);
    let hooks = receiver.hooks();
    assert_eq!(hooks.len(), 1);
    let body = verify(&secret, &hooks[0]);
    assert_eq!(body["status"], "SUCCEEDED");
    let link = body["downloadUrl"].as_str().unwrap();
    let path = &link[link.find("/exports/").unwrap()..];
    let file = app.http.get(app.url(path)).send().await.unwrap();
    assert_eq!(file.status(), 200);
    let file = file.bytes().await.unwrap();
    assert_eq!(Some(file.len() as i64), body["bytes"].as_i64());
    assert!(file.starts_with(b"Agent,Handled,Service level %"), "{file:?}");
}

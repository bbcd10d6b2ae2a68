//! The example clients (`examples/bi_pull.rs`, `examples/terminal_wallboard.rs`) run as the
//! programs they are, against a test server on a real database: the BI pull's CSV for calls
//! recorded through `recordCallEvents`, the wallboard's `--once` board, and both programs'
//! refusals (exit status 1, the reason on stderr).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::path::PathBuf;
use std::process::Output;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use chrono_tz::Europe::London;
use common::fixture::{AgentSpec, CampaignSpec, FixtureOrg};
use common::{TestApp, TEST_PASSWORD};
use omnivox::auth::Role;
use omnivox::domain::Presence;
use serde_json::{json, Value};
use uuid::Uuid;

const RUN_LIMIT: Duration = Duration::from_secs(60);

/// The example's binary, `target/<profile>/examples/<name>` beside this test's
/// `target/<profile>/deps/`. `cargo test` builds every example before it runs any test; the
/// `cargo build` here makes sure of it, and of the binary being current, when only this test
/// was built (`cargo test --test example_clients`); it is a no-op otherwise.
fn example(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap().to_path_buf();
    let mut built = BUILT.lock().unwrap();
    if !built.iter().any(|b| b == name) {
        let mut cargo = std::process::Command::new(env!("CARGO"));
        cargo
            .args(["build", "--quiet", "--example", name, "--target-dir"])
            .arg(profile_dir.parent().unwrap())
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            cargo.arg("--release");
        }
        let status = cargo.status().unwrap();
        assert!(status.success(), "cargo build --example {name} failed");
        built.push(name.to_owned());
    }
    profile_dir.join("examples").join(name)
}

/// Runs an example to its end with `args`, none of its settings taken from this environment.
async fn run(name: &str, args: &[&str]) -> Output {
    let binary = example(name);
    let mut command = tokio::process::Command::new(&binary);
    command.args(args).kill_on_drop(true);
    for variable in ["OMNIVOX_URL", "OMNIVOX_TOKEN", "OMNIVOX_EMAIL", "OMNIVOX_PASSWORD"] {
        command.env_remove(variable);
    }
    tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{name} {args:?} did not end within {RUN_LIMIT:?}"))
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A secret of a new API key with `scopes`, created by `token`'s user.
async fn api_key(app: &TestApp, token: &str, scopes: &[&str]) -> String {
    let response = app
        .gql(
            Some(token),
            "mutation($s: [String!]!) { createApiKey(name: \"example client\", scopes: $s) { secret } }",
            json!({ "s": scopes }),
        )
        .await;
    response.ok()["createApiKey"]["secret"].as_str().unwrap().to_owned()
}

async fn record(app: &TestApp, token: &str, events: Vec<Value>) {
    let response = app
        .gql(
            Some(token),
            "mutation($e: [CallEventInput!]!) { recordCallEvents(events: $e) { accepted rejected results { reason } } }",
            json!({ "e": events }),
        )
        .await;
    let payload = &response.ok()["recordCallEvents"];
    assert_eq!(payload["rejected"], 0, "{payload}");
}

fn event(id: &str, kind: &str, at: DateTime<Utc>) -> Value {
    json!({ "externalId": id, "type": kind, "occurredAt": at.to_rfc3339() })
}

/// An inbound call answered by `agent` 10 s after `at`, three minutes long, wrapped up.
fn answered(id: &str, campaign: Uuid, agent: Uuid, at: DateTime<Utc>) -> Vec<Value> {
    let mut offered = event(id, "OFFERED", at);
    offered["campaignId"] = json!(campaign.to_string());
    let mut answer = event(id, "ANSWERED", at + TimeDelta::seconds(10));
    answer["agentId"] = json!(agent.to_string());
    let mut ended = event(id, "ENDED", at + TimeDelta::seconds(190));
    ended["endReason"] = json!("COMPLETED");
    vec![
        offered,
        answer,
        ended,
        event(id, "WRAP_UP_ENDED", at + TimeDelta::seconds(220)),
    ]
}

/// An inbound call abandoned in the queue after a minute (no agent).
fn abandoned(id: &str, campaign: Uuid, at: DateTime<Utc>) -> Vec<Value> {
    let mut offered = event(id, "OFFERED", at);
    offered["campaignId"] = json!(campaign.to_string());
    vec![offered, event(id, "ENDED", at + TimeDelta::seconds(60))]
}

/// Noon of a London date.
fn noon(date: NaiveDate) -> DateTime<Utc> {
    London
        .from_local_datetime(&date.and_hms_opt(12, 0, 0).unwrap())
        .single()
        .unwrap()
        .to_utc()
}

fn csv_records(text: &str) -> Vec<Vec<String>> {
    csv::Reader::from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

fn csv_header(text: &str) -> Vec<String> {
    csv::Reader::from_reader(text.as_bytes())
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect()
}

/// Calls on two past days, pulled with a `reports:read` key: the header, then one row per
/// (day, agent) with the calls recorded for it, and the queue's abandoned call in the day's
/// `(no agent)` row; the same CSV on stdout and in `--out`. A key without `reports:read` gets
/// FORBIDDEN on stderr, exit status 1 and no CSV.
#[tokio::test(flavor = "multi_thread")]
async fn bi_pull_writes_one_row_per_agent_and_day() {
    let app = TestApp::spawn().await;
    let ten_days_ago = Utc::now() - TimeDelta::days(10);
    let org = FixtureOrg::builder("bi-pull")
        .created_at(ten_days_ago)
        .agent(AgentSpec::new("Alice Archer"))
        .agent(AgentSpec::new("Bruno Baker"))
        .presence(Presence::Available)
        .state_since(ten_days_ago)
        .campaign(CampaignSpec::inbound("Care"))
        .build(&app.state)
        .await;
    let (alice, bruno, care) = (org.agents[0], org.agents[1], org.campaigns[0]);
    let admin = org.token(&app.state, Role::Admin).await;
    let today = Utc::now().with_timezone(&London).date_naive();
    let (day_a, day_b) = (today - TimeDelta::days(3), today - TimeDelta::days(1));
    let minutes = |day: NaiveDate, m: i64| noon(day) + TimeDelta::minutes(m);
    let mut events = Vec::new();
    events.extend(answered("BI-A1", care, alice, minutes(day_a, 0)));
    events.extend(answered("BI-A2", care, alice, minutes(day_a, 10)));
    events.extend(answered("BI-A3", care, bruno, minutes(day_a, 0)));
    events.extend(abandoned("BI-A4", care, minutes(day_a, 20)));
    events.extend(answered("BI-B1", care, alice, minutes(day_b, 0)));
    events.extend(answered("BI-B2", care, bruno, minutes(day_b, 5)));
    record(&app, &admin, events).await;

    let supervisor = org.token(&app.state, Role::Supervisor).await;
    let key = api_key(&app, &supervisor, &["reports:read"]).await;
    let url = app.url("");
    let args = [
        "--url",
        url.as_str(),
        "--token",
        key.as_str(),
        "--days",
        "7",
        "--metrics",
        "OFFERED,ANSWERED,ABANDONED",
    ];
    let output = run("bi_pull", &args).await;
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "bi_pull failed: {}", text(&output.stderr));
    assert_eq!(
        csv_header(&stdout),
        ["date", "agent_id", "agent", "offered", "answered", "abandoned"]
    );
    let row = |day: NaiveDate, agent: Option<Uuid>, name: &str, counts: [&str; 3]| -> Vec<String> {
        let mut row = vec![
            day.to_string(),
            agent.map(|a| a.to_string()).unwrap_or_default(),
            name.to_owned(),
        ];
        row.extend(counts.map(str::to_owned));
        row
    };
    // Oldest day first; agents by name, the calls without an agent last.
    assert_eq!(
        csv_records(&stdout),
        [
            row(day_a, Some(alice), "Alice Archer", ["2", "2", "0"]),
            row(day_a, Some(bruno), "Bruno Baker", ["1", "1", "0"]),
            row(day_a, None, "(no agent)", ["1", "0", "1"]),
            row(day_b, Some(alice), "Alice Archer", ["1", "1", "0"]),
            row(day_b, Some(bruno), "Bruno Baker", ["1", "1", "0"]),
        ],
        "{stdout}"
    );

    let file = std::env::temp_dir().join(format!("omnivox-bi-pull-{}.csv", Uuid::new_v4().simple()));
    let file_arg = file.to_str().unwrap();
    let mut with_out = args.to_vec();
    with_out.extend(["--out", file_arg]);
    let output = run("bi_pull", &with_out).await;
    assert!(
        output.status.success(),
        "bi_pull --out failed: {}",
        text(&output.stderr)
    );
    assert!(output.stdout.is_empty(), "--out writes nothing to stdout");
    let written = std::fs::read_to_string(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    assert_eq!(written, stdout);

    let screen_key = api_key(&app, &supervisor, &["realtime:read"]).await;
    let output = run("bi_pull", &["--url", &url, "--token", &screen_key]).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("FORBIDDEN"), "the code is on stderr: {stderr}");
    assert!(
        output.stdout.is_empty(),
        "no CSV after an error: {}",
        text(&output.stdout)
    );
}

/// `--once` signed in with a password: the tiles with today's finished call, both agents with
/// their team and state (Alice on the call recorded for her, Bruno available again); the same
/// with a `realtime:read` key; a refused token ends the program with 4403 instead of
/// reconnecting.
#[tokio::test(flavor = "multi_thread")]
async fn terminal_wallboard_once_prints_the_board() {
    let app = TestApp::spawn().await;
    let org = FixtureOrg::builder("wallboard-cli")
        .created_at(Utc::now() - TimeDelta::days(1))
        .teams(["Blue Team"])
        .agent(AgentSpec::new("Alice Archer").team(0))
        .agent(AgentSpec::new("Bruno Baker").team(0))
        .presence(Presence::Available)
        .state_since(Utc::now() - TimeDelta::hours(1))
        .campaign(CampaignSpec::inbound("Care"))
        .build(&app.state)
        .await;
    let admin = org.token(&app.state, Role::Admin).await;
    // Bruno's call, over and wrapped up; a call Alice is on now (offered two minutes ago,
    // answered one minute ago).
    let finished_at = Utc::now() - TimeDelta::minutes(10);
    let mut events = answered("WB-1", org.campaigns[0], org.agents[1], finished_at);
    let mut current = answered(
        "WB-2",
        org.campaigns[0],
        org.agents[0],
        Utc::now() - TimeDelta::minutes(2),
    );
    current.truncate(2);
    current[1]["occurredAt"] = json!((Utc::now() - TimeDelta::minutes(1)).to_rfc3339());
    events.extend(current);
    record(&app, &admin, events).await;

    let url = app.url("");
    let email = &org.user(Role::Supervisor).email;
    let output = run(
        "terminal_wallboard",
        &["--url", &url, "--email", email, "--password", TEST_PASSWORD, "--once"],
    )
    .await;
    let board = text(&output.stdout);
    assert!(
        output.status.success(),
        "terminal_wallboard failed: {}",
        text(&output.stderr)
    );
    for expected in [
        "Offered today",
        "Answered",
        "Abandoned",
        "Service level (",
        "ASA",
        "Calls waiting",
        "AGENT",
        "Blue Team",
    ] {
        assert!(board.contains(expected), "{expected:?} on the board:\n{board}");
    }
    let line_of = |name: &str| {
        board
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name}:\n{board}"))
            .to_owned()
    };
    assert!(line_of("Alice Archer").contains("On call"), "{board}");
    assert!(line_of("Bruno Baker").contains("Available"), "{board}");
    // Bruno's finished call is today's (unless it was offered before midnight); Alice's is
    // still on.
    let today = Utc::now().with_timezone(&London).date_naive();
    if finished_at.with_timezone(&London).date_naive() == today {
        let lines: Vec<&str> = board.lines().collect();
        let labels = lines.iter().position(|l| l.starts_with("Offered today")).unwrap();
        let values: Vec<&str> = lines[labels + 1].split_whitespace().collect();
        assert_eq!(
            values[..3],
            ["1", "1", "0"],
            "offered, answered, abandoned today:\n{board}"
        );
    }

    let supervisor = org.token(&app.state, Role::Supervisor).await;
    let key = api_key(&app, &supervisor, &["realtime:read"]).await;
    let output = run("terminal_wallboard", &["--url", &url, "--token", &key, "--once"]).await;
    let board = text(&output.stdout);
    assert!(output.status.success(), "with an API key: {}", text(&output.stderr));
    assert!(
        board.contains("Alice Archer") && board.contains("Bruno Baker"),
        "{board}"
    );

    let output = run(
        "terminal_wallboard",
        &["--url", &url, "--token", "not-a-token", "--once"],
    )
    .await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("4403"), "the close code is on stderr: {stderr}");
}

//! `--database-read-url` against a real streaming replica: the test creates its own primary
//! (initdb) and a replica of it (pg_basebackup, hot standby) on spare ports, so it can pause
//! the replica's replay and stop it without touching the shared server.
//!
//! It shows that KPI reads are served by the replica (while replay is paused, `kpiSummary`
//! keeps the replica's older figure although the primary has more calls), that ingest and its
//! acknowledgement stay on the primary, how long a batch takes to become visible through the
//! replica (printed), and that a stopped replica costs nothing but freshness: reads fall back
//! to the primary and `/readyz` stays ready while saying the replica is down.
//!
//! It needs PostgreSQL's server programs (`initdb`, `pg_ctl`, `pg_basebackup`: Debian's
//! `postgresql` package puts them in `/usr/lib/postgresql/<version>/bin`). Run as root, the
//! clusters are created and started as the `postgres` user, as PostgreSQL refuses root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // tests fail loudly by design

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use common::fixture::{CampaignSpec, FixtureOrg};
use common::{spare_port, TEST_JWT_SECRET};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use omnivox::auth::Role;
use omnivox::config::Settings;
use omnivox::db;
use omnivox::state::AppState;
use serde_json::{json, Value};
use uuid::Uuid;

/// The directory of PostgreSQL's server programs.
fn server_bin_dir() -> PathBuf {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let candidates = from_pg_config.into_iter().chain(
        std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin")),
    );
    candidates
        .into_iter()
        .find(|dir| dir.join("initdb").exists() && dir.join("pg_basebackup").exists())
        .expect(
            "this test needs PostgreSQL's server programs (initdb, pg_ctl, pg_basebackup): \
             install PostgreSQL (Debian: apt-get install postgresql) or put its bin directory first on PATH",
        )
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs one of PostgreSQL's programs (as `postgres` when we are root) and fails loudly.
fn pg_program(bin: &Path, program: &str, args: &[&str]) {
    let path = bin.join(program);
    let mut command = if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&path);
        c
    } else {
        Command::new(&path)
    };
    let output = command.args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A PostgreSQL server of the test's own, stopped and deleted when dropped.
struct Cluster {
    bin: PathBuf,
    /// Deleted with the cluster.
    root: PathBuf,
    data: PathBuf,
    port: u16,
    running: bool,
}

impl Cluster {
    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn start(&mut self) {
        let log = self.data.join("server.log");
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{}' -c fsync=off",
            self.port,
            self.data.display()
        );
        pg_program(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
        self.running = true;
    }

    fn stop(&mut self) {
        if self.running {
            pg_program(
                &self.bin,
                "pg_ctl",
                &["-D", self.data.to_str().unwrap(), "-m", "immediate", "-w", "stop"],
            );
            self.running = false;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A scratch directory the `postgres` user may write to.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("omnivox-replica-{name}-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    if running_as_root() {
        let status = Command::new("chown").arg("postgres:").arg(&dir).status().unwrap();
        assert!(status.success(), "chown of {}", dir.display());
    }
    dir
}

/// A primary and a streaming replica of it, both running.
fn primary_and_replica() -> (Cluster, Cluster) {
    let bin = server_bin_dir();
    let primary_dir = scratch_dir("primary");
    pg_program(
        &bin,
        "initdb",
        &[
            "-D",
            primary_dir.to_str().unwrap(),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ],
    );
    let mut primary = Cluster {
        bin: bin.clone(),
        root: primary_dir.clone(),
        data: primary_dir,
        port: spare_port(),
        running: false,
    };
    primary.start();
    let replica_dir = scratch_dir("replica");
    // pg_basebackup wants an empty directory of its own.
    let replica_data = replica_dir.join("data");
    pg_program(
        &bin,
        "pg_basebackup",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &primary.port.to_string(),
            "-U",
            "postgres",
            "-D",
            replica_data.to_str().unwrap(),
            "-R",
            "-X",
            "stream",
        ],
    );
    let mut replica = Cluster {
        bin,
        root: replica_dir,
        data: replica_data,
        port: spare_port(),
        running: false,
    };
    replica.start();
    (primary, replica)
}

async fn gql(http: &reqwest::Client, base: &str, token: &str, query: &str, variables: Value) -> Value {
    let response = http
        .post(format!("{base}/graphql"))
        .bearer_auth(token)
        .header("accept", "application/json")
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    body["data"].clone()
}

const SUMMARY: &str = "query($f: KpiFilter!) { kpiSummary(filter: $f) { offered } }";
const RECORD: &str = "mutation($e: [CallEventInput!]!) { recordCallEvents(events: $e) { accepted rejected } }";

/// `count` offered-and-abandoned calls, one a second from `start`.
fn calls(prefix: &str, count: usize, campaign: Uuid, start: DateTime<Utc>) -> Value {
    let events: Vec<Value> = (0..count)
        .flat_map(|n| {
            let id = format!("{prefix}-{n}");
            let at = start + TimeDelta::seconds(i64::try_from(n).unwrap());
            [
                json!({ "externalId": id, "type": "OFFERED", "occurredAt": at.to_rfc3339(), "campaignId": campaign.to_string() }),
                json!({ "externalId": id, "type": "ENDED", "occurredAt": (at + TimeDelta::seconds(5)).to_rfc3339() }),
            ]
        })
        .collect();
    json!({ "e": events })
}

async fn offered_on_primary(url: &str, org: Uuid) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    diesel::sql_query("SELECT count(*) AS n FROM interactions WHERE organization_id = $1")
        .bind::<diesel::sql_types::Uuid, _>(org)
        .get_result::<Count>(&mut conn)
        .await
        .unwrap()
        .n
}

async fn replica_sql(url: &str, statement: &str) {
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    diesel::sql_query(statement).execute(&mut conn).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpi_reads_come_from_the_replica_and_fall_back_to_the_primary() {
    let (primary, mut replica) = tokio::task::spawn_blocking(primary_and_replica).await.unwrap();
    let primary_url = primary.url("omnivox");
    let replica_url = replica.url("omnivox");
    db::create_database_if_missing(&primary_url).await.unwrap();
    db::run_migrations(&primary_url).await.unwrap();

    let mut settings = Settings::for_database(&primary_url);
    settings.jwt_secret = Some(TEST_JWT_SECRET.to_owned());
    settings.database_read_url = Some(replica_url.clone());
    let state = AppState::new(settings).unwrap();
    let org = FixtureOrg::builder("replica")
        .timezone("UTC")
        .created_at(Utc::now() - TimeDelta::days(1))
        .roles([Role::Admin])
        .campaign(CampaignSpec::inbound("Care"))
        .build(&state)
        .await;
    let token = org.token(&state, Role::Admin).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = omnivox::http::app(state.clone());
    let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let http = reqwest::Client::new();
    let hour = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap();
    let filter = json!({ "f": { "from": hour.to_rfc3339(), "to": (hour + TimeDelta::hours(1)).to_rfc3339() } });
    let offered = |data: Value| data["kpiSummary"]["offered"].as_i64().unwrap();
    let campaign = org.campaigns[0];

    // A batch acknowledged by the primary becomes visible through the replica after replay.
    let sent = Instant::now();
    let ack = gql(&http, &base, &token, RECORD, calls("first", 50, campaign, hour)).await;
    assert_eq!(ack["recordCallEvents"]["rejected"], 0, "{ack}");
    let acknowledged = sent.elapsed();
    let visible = loop {
        if offered(gql(&http, &base, &token, SUMMARY, filter.clone()).await) == 50 {
            break sent.elapsed();
        }
        assert!(sent.elapsed() < Duration::from_secs(10), "the replica never caught up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    println!(
        "replica lag: batch of 50 calls acknowledged after {:.1} ms, counted by kpiSummary through the replica after {:.1} ms",
        acknowledged.as_secs_f64() * 1e3,
        visible.as_secs_f64() * 1e3
    );

    // Replay paused: the primary has 80 calls, the API (reading the replica) still says 50.
    replica_sql(&replica_url, "SELECT pg_wal_replay_pause()").await;
    let ack = gql(&http, &base, &token, RECORD, calls("second", 30, campaign, hour)).await;
    assert_eq!(ack["recordCallEvents"]["accepted"], 60, "{ack}");
    assert_eq!(offered_on_primary(&primary_url, org.id).await, 80);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        offered(gql(&http, &base, &token, SUMMARY, filter.clone()).await),
        50,
        "kpiSummary must be answered by the (paused) replica"
    );
    let health: Value = http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["replica"]["status"], "up", "{health}");

    // Replay resumed: the replica catches up.
    let resumed = Instant::now();
    replica_sql(&replica_url, "SELECT pg_wal_replay_resume()").await;
    loop {
        if offered(gql(&http, &base, &token, SUMMARY, filter.clone()).await) == 80 {
            break;
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(10),
            "the replica never caught up"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "replica lag: after replay resumed, kpiSummary through the replica counted the paused batch after {:.1} ms",
        resumed.elapsed().as_secs_f64() * 1e3
    );

    // Replica stopped: reads fall back to the primary at once, and the instance stays ready.
    tokio::task::spawn_blocking(move || {
        replica.stop();
        replica
    })
    .await
    .map(drop)
    .unwrap();
    let ack = gql(&http, &base, &token, RECORD, calls("third", 20, campaign, hour)).await;
    assert_eq!(ack["recordCallEvents"]["accepted"], 40, "{ack}");
    let fallback = Instant::now();
    assert_eq!(
        offered(gql(&http, &base, &token, SUMMARY, filter.clone()).await),
        100,
        "with the replica down, kpiSummary must read the primary"
    );
    println!(
        "replica down: kpiSummary answered from the primary in {:.1} ms",
        fallback.elapsed().as_secs_f64() * 1e3
    );
    let response = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let health: Value = response.json().await.unwrap();
    assert_eq!(health["status"], "ready", "{health}");
    assert_eq!(health["replica"]["status"], "down", "{health}");

    server.abort();
    drop(state);
    tokio::task::spawn_blocking(move || drop(primary)).await.unwrap();
}

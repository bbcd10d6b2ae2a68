//! The built-in `/wallboard` page, end to end in a real browser: Debian's headless Chromium,
//! driven over WebDriver (chromedriver) by fantoccini, against the app served in-process on
//! real PostgreSQL (and Redis when `REDIS_URL` is set).
//!
//! * a presence change made through the API reaches the agent grid within one second (the
//!   elapsed time, mutation sent → grid repainted, is printed: README quotes it);
//! * the KPI tiles and the compliance banner change after calls are ingested;
//! * after the server stops and starts again on the same port, the page reconnects by itself,
//!   resyncs (a change made while it was away shows up) and follows later changes;
//! * signed in through the form with a short-lived access token, the page refreshes its session
//!   before the token expires without ever dropping to "reconnecting".
//!
//! Screenshots (1920×1080 and 1366×768) are kept in `tests/artifacts/` for a person to look at.
//!
//! The server runs on a tokio runtime of its own, so that stopping it really drops every socket
//! (as a process exit would); the test's own runtime holds the fixtures and a second instance.
//! Without Chromium and chromedriver these tests fail, saying how to install them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{TimeDelta, Utc};
use common::fixture::{AgentSpec, CampaignSpec, FixtureOrg};
use common::{test_settings, TestDatabase};
use fantoccini::{Client, ClientBuilder, Locator};
use omnivox::auth::Role;
use omnivox::config::Settings;
use omnivox::domain::Presence;
use omnivox::state::AppState;
use serde_json::{json, Value};
use uuid::Uuid;

const INSTALL_HINT: &str = "the wallboard browser tests need Chromium and its WebDriver: \
    on Debian/Ubuntu `apt-get install -y chromium chromium-driver` (`chromium` and `chromedriver` on PATH)";

const SET_PRESENCE: &str =
    "mutation($a: ID, $p: Presence!) { setAgentPresence(agentId: $a, presence: $p) { id presence } }";
const RECORD: &str =
    "mutation($e: [CallEventInput!]!) { recordCallEvents(events: $e) { accepted rejected results { reason } } }";

fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

// ---------------------------------------------------------------------------------------------
// The server, on a runtime of its own

/// The app serving on `addr`; `stop` drops the runtime, and with it every socket and task.
struct Server {
    runtime: Option<tokio::runtime::Runtime>,
    addr: SocketAddr,
}

impl Server {
    async fn start(settings: Settings, addr: SocketAddr) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (bound, on_bound) = tokio::sync::oneshot::channel();
        runtime.spawn(async move {
            let state = AppState::new(settings).unwrap();
            // The previous runtime releases the port in the background: retry briefly.
            let mut attempt = 0;
            let listener = loop {
                match tokio::net::TcpListener::bind(addr).await {
                    Ok(listener) => break listener,
                    Err(e) if attempt < 100 => {
                        attempt += 1;
                        let _ = e;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => panic!("binding {addr} again: {e}"),
                }
            };
            let _ = bound.send(listener.local_addr().unwrap());
            axum::serve(listener, omnivox::http::app(state)).await.unwrap();
        });
        let addr = on_bound.await.expect("the server started");
        Self {
            runtime: Some(runtime),
            addr,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn stop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A second instance on the test's runtime, sharing the database (as a peer behind a load
/// balancer would): it changes things while the page's server is down.
async fn serve_peer(state: AppState) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, omnivox::http::app(state)).await.unwrap();
    });
    addr
}

async fn gql(base: &str, token: &str, query: &str, variables: Value) -> Value {
    let body: Value = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body.get("errors").is_none(), "unexpected errors: {body}");
    body["data"].clone()
}

async fn set_presence(base: &str, token: &str, agent: Uuid, presence: &str) {
    let data = gql(base, token, SET_PRESENCE, json!({ "a": agent, "p": presence })).await;
    assert_eq!(data["setAgentPresence"]["presence"], presence);
}

// ---------------------------------------------------------------------------------------------
// The browser

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Headless Chromium behind its own chromedriver; the driver's process group (driver and
/// browser) is killed when this is dropped, whatever happened to the test.
struct Browser {
    client: Option<Client>,
    driver: Child,
}

impl Browser {
    async fn launch() -> Self {
        let chromium = find_program(&["chromium", "chromium-browser"]).unwrap_or_else(|| panic!("{INSTALL_HINT}"));
        let chromedriver = find_program(&["chromedriver"]).unwrap_or_else(|| panic!("{INSTALL_HINT}"));
        let port = free_port();
        let mut command = Command::new(chromedriver);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting chromedriver: {e}; {INSTALL_HINT}"));
        let mut browser = Self { client: None, driver };
        let deadline = Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen on {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--hide-scrollbars", "--force-device-scale-factor=1", "--window-size=1920,1080",
                    "--lang=en-GB", "--no-first-run", "--disable-extensions",
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("starting a Chromium session through chromedriver: {e}; {INSTALL_HINT}"));
        browser.client = Some(client);
        browser
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    async fn js(&self, script: &str) -> Value {
        self.client().execute(script, Vec::new()).await.unwrap()
    }

    /// Polls `script` (a function body returning a value) until it returns something truthy.
    async fn wait_for(&self, what: &str, script: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.js(script).await;
            let truthy = !matches!(value, Value::Null | Value::Bool(false)) && value != json!("") && value != json!(0);
            if truthy {
                return value;
            }
            if Instant::now() > deadline {
                let state = self
                    .js("return [document.body.dataset.connection, document.getElementById('status-text').textContent].join(' / ')")
                    .await;
                panic!("waited {timeout:?} for {what}; page: {state}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Resizes the window so the page's viewport is exactly `width`×`height` (the window's
    /// frame, if any, is measured and added; a resize lands asynchronously, so check again).
    async fn viewport(&self, width: u32, height: u32) {
        let target = json!([width, height]);
        for _ in 0..20 {
            let sizes = self
                .js("return [window.innerWidth, window.innerHeight, window.outerWidth, window.outerHeight]")
                .await;
            let n = |i: usize| sizes[i].as_i64().unwrap();
            if json!([n(0), n(1)]) == target {
                return;
            }
            let outer_w = (n(2) + i64::from(width) - n(0)).max(i64::from(width));
            let outer_h = (n(3) + i64::from(height) - n(1)).max(i64::from(height));
            self.client()
                .set_window_size(outer_w as u32, outer_h as u32)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let inner = self.js("return [window.innerWidth, window.innerHeight]").await;
        assert_eq!(inner, target, "the viewport could not be sized");
    }

    async fn screenshot(&self, name: &str) {
        // Let a frame be painted after the last change.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = self.client().screenshot().await.unwrap();
        let path = artifacts_dir().join(name);
        std::fs::write(&path, png).unwrap();
        println!("screenshot: {}", path.display());
    }

    async fn card_state(&self, agent: Uuid) -> Value {
        self.js(&format!(
            "var c = document.querySelector('[data-agent-id=\"{agent}\"]'); return c ? c.dataset.state : null"
        ))
        .await
    }

    async fn wait_card_state(&self, agent: Uuid, state: &str, timeout: Duration) {
        self.wait_for(
            &format!("agent {agent} shown as {state}"),
            &format!("var c = document.querySelector('[data-agent-id=\"{agent}\"]'); return !!c && c.dataset.state === '{state}'"),
            timeout,
        )
        .await;
    }

    async fn tile(&self, id: &str) -> String {
        self.js(&format!(
            "return document.querySelector('#{id} [data-field=\"value\"]').textContent"
        ))
        .await
        .as_str()
        .unwrap()
        .to_owned()
    }

    async fn wait_tile(&self, id: &str, expected: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let shown = self.tile(id).await;
            if shown == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tile {id} shows {shown:?}, not {expected:?} (sub-line: {})",
                self.js(&format!(
                    "return document.querySelector('#{id} [data-field=\"sub\"]').textContent"
                ))
                .await
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Opens the kiosk URL `/wallboard#token=<token>` and waits until the board is live; the
    /// token must have left the address bar by then.
    async fn open_kiosk(&self, base: &str, token: &str) {
        self.client()
            .goto(&format!("{base}/wallboard#token={token}"))
            .await
            .unwrap();
        self.wait_live(Duration::from_secs(15)).await;
        let hash = self.js("return location.hash").await;
        assert!(
            !hash.as_str().unwrap().contains("token"),
            "token left in the URL: {hash}"
        );
    }

    /// Waits until `count` agent cards are on screen.
    async fn wait_agents(&self, count: usize) {
        self.wait_for(
            "every agent on screen",
            &format!("return document.querySelectorAll('.agent').length === {count}"),
            Duration::from_secs(10),
        )
        .await;
    }

    async fn wait_live(&self, timeout: Duration) {
        self.wait_for(
            "the page to be live",
            "return document.body.dataset.connection === 'live'",
            timeout,
        )
        .await;
    }

    async fn connects(&self) -> u64 {
        self.js("return Number(document.body.dataset.connects)")
            .await
            .as_u64()
            .unwrap()
    }

    async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The driver leads its own process group; the browser it started is in it too.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// An IANA zone (`Etc/GMT±N`) where it is around noon now, so "today" cannot roll over during
/// the test, whenever it runs.
fn zone_at_noon() -> String {
    let hour = i64::from(chrono::Timelike::hour(&Utc::now()));
    let mut offset = 12 - hour; // local = UTC + offset
    if offset > 12 {
        offset -= 24;
    }
    if offset < -12 {
        offset += 24;
    }
    // Etc/GMT names have the sign inverted: Etc/GMT-3 is UTC+3.
    match offset {
        0 => "Etc/GMT".to_owned(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

/// Agents of the sign-in test's organization: a wall screen's worth.
const CROWD: usize = 60;

const AGENT_NAMES: [&str; 12] = [
    "Ada Lovelace",
    "Ben Okafor",
    "Cleo Martin",
    "Dev Patel",
    "Eva Novak",
    "Farah Haddad",
    "Gus Lindqvist",
    "Hana Sato",
    "Ivan Petrov",
    "Jade Moreau",
    "Kofi Mensah",
    "Lena Weber",
];

/// An organization with `agents` agents in two teams (the first twelve have real names).
async fn organization(state: &AppState, slug: &str, agents: usize) -> FixtureOrg {
    let name = |i: usize| {
        AGENT_NAMES
            .get(i)
            .map_or_else(|| format!("Agent {}", i + 1), |n| (*n).to_owned())
    };
    FixtureOrg::builder(slug)
        .timezone(&zone_at_noon())
        .created_at(Utc::now() - TimeDelta::days(1))
        .teams(["Blue team", "Red team"])
        .agents((0..agents).map(|i| AgentSpec::new(name(i)).team(i % 2)))
        .presence(Presence::Available)
        .state_since(Utc::now() - TimeDelta::minutes(17))
        .campaign(CampaignSpec::inbound("Care"))
        .campaign(CampaignSpec::outbound("Sales"))
        .build(state)
        .await
}

fn event(id: &str, kind: &str, seconds_ago: i64) -> Value {
    json!({
        "externalId": id,
        "type": kind,
        "occurredAt": (Utc::now() - TimeDelta::seconds(seconds_ago)).to_rfc3339(),
    })
}

fn with(mut event: Value, field: &str, value: impl Into<Value>) -> Value {
    event[field] = value.into();
    event
}

// ---------------------------------------------------------------------------------------------
// The tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallboard_shows_live_changes_and_survives_a_server_restart() {
    let database = TestDatabase::new().await;
    let settings = test_settings(&database.url);
    let control = AppState::new(settings.clone()).unwrap();
    let org = organization(&control, "wallboard", AGENT_NAMES.len()).await;
    let supervisor = org.token(&control, Role::Supervisor).await;
    let admin = org.token(&control, Role::Admin).await;
    let [care, sales] = org.campaigns[..] else {
        unreachable!()
    };
    let agent = |i: usize| org.agents[i];

    let mut server = Server::start(settings.clone(), "127.0.0.1:0".parse().unwrap()).await;
    let base = server.url("");

    // The page and its files come from the binary: no URL of another origin, a strict CSP.
    let http = reqwest::Client::new();
    for (path, kind) in [
        ("/wallboard", "text/html"),
        ("/wallboard/wallboard.js", "text/javascript"),
        ("/wallboard/wallboard.css", "text/css"),
    ] {
        let response = http.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        assert!(headers["content-type"].to_str().unwrap().starts_with(kind), "{path}");
        assert!(headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'"));
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{path} names another origin"
        );
    }

    let browser = Browser::launch().await;
    browser.viewport(1920, 1080).await;

    // Kiosk URL: the token travels in the fragment and leaves the address bar at once.
    browser.open_kiosk(&base, &supervisor).await;
    browser.wait_agents(AGENT_NAMES.len()).await;
    assert_eq!(browser.card_state(agent(0)).await, "AVAILABLE");
    browser.wait_tile("tile-waiting", "0").await;
    // No calls yet: ratios have no denominator and show "—", not 0 %.
    for tile in ["tile-service-level", "tile-asa", "tile-abandon-rate"] {
        assert_eq!(browser.tile(tile).await, "—", "{tile}");
    }
    browser
        .wait_for(
            "the drop-rate tile to be read",
            "return document.querySelector('#tile-drop-rate [data-field=\"sub\"]').textContent.indexOf('no live outbound') >= 0",
            Duration::from_secs(10),
        )
        .await;

    // (1) A presence change through the API reaches the grid: timed from just before the
    // mutation is sent to the first frame painted after the card changed.
    browser
        .js(&format!(
            "window.__painted = null;
             var grid = document.getElementById('agent-grid');
             new MutationObserver(function () {{
               var c = document.querySelector('[data-agent-id=\"{}\"]');
               if (c && c.dataset.state === 'BREAK' && window.__painted === null) {{
                 window.__painted = 0;
                 var changed = Date.now();
                 requestAnimationFrame(function () {{ window.__painted = [changed, Date.now()]; }});
               }}
             }}).observe(grid, {{ attributes: true, subtree: true, childList: true }});
             return true;",
            agent(0)
        ))
        .await;
    let sent = now_ms();
    set_presence(&base, &supervisor, agent(0), "BREAK").await;
    let answered = now_ms();
    let painted = browser
        .wait_for(
            "the BREAK to be painted",
            "return Array.isArray(window.__painted) ? window.__painted : null",
            Duration::from_secs(5),
        )
        .await;
    let dom_ms = painted[0].as_u64().unwrap().saturating_sub(sent);
    let frame_ms = painted[1].as_u64().unwrap().saturating_sub(sent);
    println!(
        "wallboard presence → screen: {frame_ms} ms to the painted frame ({dom_ms} ms to the DOM; the mutation's HTTP round trip took {} ms)",
        answered - sent
    );
    assert!(
        frame_ms <= 1_000,
        "the presence change took {frame_ms} ms to reach the screen"
    );
    let label = browser
        .js(&format!(
            "return document.querySelector('[data-agent-id=\"{}\"] .agent-state').textContent",
            agent(0)
        ))
        .await;
    assert_eq!(label, "Break");

    // A few more states for the screenshots.
    set_presence(&base, &supervisor, agent(5), "LUNCH").await;
    set_presence(&base, &supervisor, agent(10), "OFFLINE").await;

    // (2) Calls ingested: the tiles change. Two answered and ended inbound calls (waits 10 s
    // and 30 s), one abandoned after 30 s, one on going (counted once it ends), one still
    // waiting; outbound, one live call and one drop.
    let inbound = |e: Value| with(with(e, "direction", "INBOUND"), "campaignId", care.to_string());
    let outbound = |e: Value| with(with(e, "direction", "OUTBOUND"), "campaignId", sales.to_string());
    let events = vec![
        inbound(event("CA-WB-1", "OFFERED", 100)),
        with(event("CA-WB-1", "ANSWERED", 90), "agentId", agent(1).to_string()),
        event("CA-WB-1", "ENDED", 30),
        inbound(event("CA-WB-2", "OFFERED", 80)),
        with(event("CA-WB-2", "ANSWERED", 50), "agentId", agent(2).to_string()),
        inbound(event("CA-WB-7", "OFFERED", 120)),
        with(event("CA-WB-7", "ANSWERED", 90), "agentId", agent(7).to_string()),
        event("CA-WB-7", "ENDED", 60),
        inbound(event("CA-WB-3", "OFFERED", 70)),
        event("CA-WB-3", "ENDED", 40),
        inbound(event("CA-WB-4", "OFFERED", 45)),
        outbound(event("CA-WB-5", "OFFERED", 60)),
        with(event("CA-WB-5", "ANSWERED", 55), "agentId", agent(3).to_string()),
        outbound(event("CA-WB-6", "OFFERED", 60)),
        with(event("CA-WB-6", "ENDED", 58), "answeredBy", "HUMAN"),
    ];
    let recorded = gql(&base, &admin, RECORD, json!({ "e": events })).await;
    assert_eq!(recorded["recordCallEvents"]["rejected"], 0, "{recorded}");
    browser.wait_tile("tile-abandon-rate", "33.3 %").await;
    browser.wait_tile("tile-asa", "20 s").await;
    browser.wait_tile("tile-waiting", "1").await;
    assert_ne!(browser.tile("tile-service-level").await, "—");
    assert_ne!(browser.tile("tile-longest-wait").await, "—");
    browser
        .wait_card_state(agent(2), "ON_CALL", Duration::from_secs(5))
        .await;
    browser
        .wait_card_state(agent(1), "WRAP_UP", Duration::from_secs(5))
        .await;
    // One drop and one live call: 50 % against the 3 % limit, a breach on the banner.
    browser.wait_tile("tile-drop-rate", "50.0 %").await;
    let banner = browser
        .wait_for(
            "the compliance banner",
            "var b = document.getElementById('compliance-banner'); return b.hidden ? null : [b.dataset.level, b.textContent]",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(banner[0], "BREACH");
    assert!(banner[1].as_str().unwrap().contains("Sales"), "{banner}");
    browser.screenshot("wallboard-1920x1080.png").await;

    // The team filter narrows the grid (and the tiles follow the team).
    browser
        .js(&format!(
            "var s = document.getElementById('team-filter'); s.value = '{}'; s.dispatchEvent(new Event('change')); return true",
            org.teams[1]
        ))
        .await;
    browser
        .wait_for(
            "the Red team only",
            &format!(
                "return document.querySelectorAll('.agent').length === {}",
                AGENT_NAMES.len() / 2
            ),
            Duration::from_secs(5),
        )
        .await;
    assert!(browser
        .js("return location.hash")
        .await
        .as_str()
        .unwrap()
        .contains("team="));
    browser.viewport(1366, 768).await;
    browser.screenshot("wallboard-1366x768-red-team.png").await;
    browser
        .js("var s = document.getElementById('team-filter'); s.value = ''; s.dispatchEvent(new Event('change')); return true")
        .await;
    browser.screenshot("wallboard-1366x768.png").await;
    browser.viewport(1920, 1080).await;

    // (3) The server stops: the page notices and retries by itself.
    let connects = browser.connects().await;
    let addr = server.addr;
    server.stop();
    browser
        .wait_for(
            "the page to notice the server is gone",
            "return document.body.dataset.connection === 'reconnecting'",
            Duration::from_secs(10),
        )
        .await;
    browser.screenshot("wallboard-reconnecting.png").await;
    // A change while the page's server is down, through another instance: the page can only
    // learn it from the snapshot of its next connection (a resync).
    let peer = serve_peer(control.clone()).await;
    set_presence(&format!("http://{peer}"), &supervisor, agent(4), "MEETING").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(browser.card_state(agent(4)).await, "AVAILABLE");

    let server = Server::start(settings.clone(), addr).await;
    assert_eq!(server.addr, addr);
    browser.wait_live(Duration::from_secs(30)).await;
    assert!(
        browser.connects().await > connects,
        "the page did not open a new connection"
    );
    browser
        .wait_card_state(agent(4), "MEETING", Duration::from_secs(5))
        .await;
    // And a later change through the restarted server arrives as usual.
    set_presence(&base, &supervisor, agent(6), "AWAY").await;
    browser.wait_card_state(agent(6), "AWAY", Duration::from_secs(5)).await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallboard_signs_in_and_refreshes_its_session_without_a_gap() {
    let database = TestDatabase::new().await;
    let mut settings = test_settings(&database.url);
    // A short-lived access token, so that the page must refresh it twice within the test.
    settings.access_token_ttl = Duration::from_secs(8);
    let control = AppState::new(settings.clone()).unwrap();
    let org = organization(&control, "wallboard-refresh", CROWD).await;
    let supervisor = org.token(&control, Role::Supervisor).await;
    let server = Server::start(settings, "127.0.0.1:0".parse().unwrap()).await;
    let base = server.url("");

    let browser = Browser::launch().await;
    browser.viewport(1366, 768).await;
    browser.client().goto(&format!("{base}/wallboard")).await.unwrap();
    browser
        .wait_for(
            "the sign-in form",
            "return !document.getElementById('sign-in').hidden",
            Duration::from_secs(10),
        )
        .await;
    browser.screenshot("wallboard-sign-in.png").await;

    // A wrong password is refused with the server's message, and the form stays.
    let client = browser.client();
    client
        .find(Locator::Id("email"))
        .await
        .unwrap()
        .send_keys(&org.user(Role::Viewer).email)
        .await
        .unwrap();
    client
        .find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys("not-the-password")
        .await
        .unwrap();
    client
        .find(Locator::Id("sign-in-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_for(
            "the refusal",
            "return document.getElementById('sign-in-error').textContent.indexOf('invalid email or password') >= 0",
            Duration::from_secs(10),
        )
        .await;
    client
        .find(Locator::Id("password"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    client
        .find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(common::TEST_PASSWORD)
        .await
        .unwrap();
    client
        .find(Locator::Id("sign-in-submit"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.wait_live(Duration::from_secs(15)).await;
    let first_token = browser
        .js("return JSON.parse(sessionStorage.getItem('omnivox.wallboard.session')).accessToken")
        .await;
    // A crowd of agents fits on one screen, on the laptop and on the wall, without scrolling.
    for (width, height) in [(1366, 768), (1920, 1080)] {
        browser.viewport(width, height).await;
        browser
            .wait_for(
                &format!("{CROWD} agents on a {width}×{height} screen without scrolling"),
                &format!(
                    "var g = document.getElementById('agent-grid');
                     return g.querySelectorAll('.agent').length === {CROWD} && g.scrollHeight <= g.clientHeight + 1
                       && document.documentElement.scrollHeight <= window.innerHeight"
                ),
                Duration::from_secs(10),
            )
            .await;
        browser
            .screenshot(&format!("wallboard-{width}x{height}-{CROWD}-agents.png"))
            .await;
    }

    // A viewer sees the grid and the tiles; outbound compliance is for supervisors.
    browser
        .wait_for(
            "the drop-rate tile to say who may see it",
            "return document.querySelector('#tile-drop-rate [data-field=\"sub\"]').textContent === 'shown to supervisors'",
            Duration::from_secs(10),
        )
        .await;

    // Every change of the connection state from now on is recorded.
    browser
        .js("window.__states = [];
             new MutationObserver(function () { window.__states.push(document.body.dataset.connection); })
               .observe(document.body, { attributes: true, attributeFilter: ['data-connection'] });
             return true;")
        .await;
    // Two lifetimes of the access token: two refreshes, each with a socket swap.
    browser
        .wait_for(
            "two session refreshes",
            "return Number(document.body.dataset.refreshes) >= 2",
            Duration::from_secs(25),
        )
        .await;
    // Past the first token's expiry, on a socket opened with a refreshed token.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let states = browser.js("return window.__states").await;
    assert!(
        states.as_array().unwrap().iter().all(|s| s == "live"),
        "the refresh left a gap: {states}"
    );
    assert_eq!(browser.js("return document.body.dataset.connection").await, "live");
    let token = browser
        .js("return JSON.parse(sessionStorage.getItem('omnivox.wallboard.session')).accessToken")
        .await;
    assert_ne!(token, first_token, "the access token was not renewed");
    set_presence(&base, &supervisor, org.agents[3], "TRAINING").await;
    browser
        .wait_card_state(org.agents[3], "TRAINING", Duration::from_secs(5))
        .await;

    // Signing out ends the session: the refresh token no longer works.
    let refresh_token = browser
        .js("return JSON.parse(sessionStorage.getItem('omnivox.wallboard.session')).refreshToken")
        .await;
    client
        .find(Locator::Id("sign-out"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .wait_for(
            "the sign-in form again",
            "return document.body.dataset.connection === 'signed-out' && sessionStorage.getItem('omnivox.wallboard.session') === null",
            Duration::from_secs(5),
        )
        .await;
    // The page does not wait for its `logout`; give it a moment, then try the token once (a
    // second try would be refused as a reuse whatever the first did).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let body: Value = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .json(&json!({
            "query": "mutation($r: String!) { refreshSession(refreshToken: $r) { accessToken } }",
            "variables": { "r": refresh_token },
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "the refresh token still works after sign-out: {body}"
    );
    browser.close().await;
}

/// Creates an API key as the bearer of `token`: (secret, id).
async fn create_key(base: &str, token: &str, scopes: &[&str]) -> (String, String) {
    let body = gql(
        base,
        token,
        "mutation($s: [String!]!) { createApiKey(name: \"Lobby screen\", scopes: $s) { secret apiKey { id } } }",
        json!({ "s": scopes }),
    )
    .await;
    let created = &body["createApiKey"];
    (
        created["secret"].as_str().unwrap().to_owned(),
        created["apiKey"]["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallboard_runs_on_an_api_key_until_it_is_revoked() {
    let database = TestDatabase::new().await;
    let settings = test_settings(&database.url);
    let control = AppState::new(settings.clone()).unwrap();
    let org = organization(&control, "wallboard-key", AGENT_NAMES.len()).await;
    let supervisor = org.token(&control, Role::Supervisor).await;
    let server = Server::start(settings, "127.0.0.1:0".parse().unwrap()).await;
    let base = server.url("");
    let (secret, key_id) = create_key(&base, &supervisor, &["realtime:read", "kpi:read"]).await;
    assert!(secret.starts_with("ovx_"));

    let browser = Browser::launch().await;
    browser.viewport(1920, 1080).await;
    browser.open_kiosk(&base, &secret).await;
    // The organization's name comes through a key (which `me` would not), and a supervisor's
    // key with kpi:read sees outbound compliance.
    browser
        .wait_for(
            "the organization's name",
            "return document.getElementById('org-name').textContent === 'Org wallboard-key'",
            Duration::from_secs(10),
        )
        .await;
    browser
        .wait_for(
            "the drop-rate tile to be read",
            "return document.querySelector('#tile-drop-rate [data-field=\"sub\"]').textContent.indexOf('no live outbound') >= 0",
            Duration::from_secs(10),
        )
        .await;
    browser.wait_agents(AGENT_NAMES.len()).await;
    set_presence(&base, &supervisor, org.agents[2], "BREAK").await;
    browser
        .wait_card_state(org.agents[2], "BREAK", Duration::from_secs(5))
        .await;
    browser.screenshot("wallboard-api-key.png").await;

    // Revoked: the socket is closed 4403, the key is refused again on reconnect, and the page
    // says so and offers the sign-in form.
    gql(
        &base,
        &supervisor,
        "mutation($id: ID!) { revokeApiKey(id: $id) { id } }",
        json!({ "id": key_id }),
    )
    .await;
    browser
        .wait_for(
            "the sign-in form after the revocation",
            "return document.body.dataset.connection === 'signed-out'
               && document.getElementById('sign-in-error').textContent.indexOf('API key was refused') >= 0",
            Duration::from_secs(10),
        )
        .await;

    // A key without kpi:read: live tiles and grid, and the drop-rate tile says what it lacks.
    let (live_only, _) = create_key(&base, &supervisor, &["realtime:read"]).await;
    browser.open_kiosk(&base, &live_only).await;
    browser
        .wait_for(
            "the drop-rate tile to name the missing scope",
            "return document.querySelector('#tile-drop-rate [data-field=\"sub\"]').textContent === 'needs an API key with kpi:read'",
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(browser.card_state(org.agents[2]).await, "BREAK");
    browser.close().await;
}

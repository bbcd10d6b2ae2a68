//! A wallboard in the terminal: an example client of Omnivox's subscriptions.
//!
//! It signs in with the `login` mutation (or takes an access token or an `ovx_` API key with
//! the `realtime:read` scope), opens the `graphql-transport-ws` WebSocket on `/graphql` with the
//! token in `connection_init`, subscribes to `liveKpis` and `agentStates`, and redraws a
//! plain-text board on every message (and every second, in a terminal, so that the times in
//! state count up): today's offered, answered and abandoned calls, the service level, the
//! average speed of answer, the calls waiting, and one line per agent with the state and the
//! time in it. A dropped socket is reopened with jittered exponential backoff (0.5 s doubling
//! to 30 s); every new socket starts from fresh snapshots. With a password, a socket closed
//! 4403 (the access token expired) signs in again; a refused token or API key ends the program.
//!
//! Against `cargo run --release -- demo`:
//!
//! ```sh
//! cargo run --example terminal_wallboard -- --email supervisor@demo.example --password omnivox-demo
//! cargo run --example terminal_wallboard -- --token ovx_…      # an API key with realtime:read
//! cargo run --example terminal_wallboard -- --token … --once   # print one full board and exit
//! ```
//!
//! It depends on nothing of Omnivox: only the HTTP and WebSocket protocols (plain `http://`;
//! this build has no TLS).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[derive(Debug, Parser)]
#[command(about = "A plain-text wallboard: liveKpis and agentStates over graphql-transport-ws")]
struct Args {
    /// Where Omnivox serves; its `/graphql` endpoint takes the sign-in and the WebSocket.
    #[arg(long, env = "OMNIVOX_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Sign in as this user (with --password); the session is renewed by signing in again.
    #[arg(long, env = "OMNIVOX_EMAIL", requires = "password", conflicts_with = "token")]
    email: Option<String>,
    /// The user's password (the environment variable keeps it out of the process list).
    #[arg(long, env = "OMNIVOX_PASSWORD", requires = "email", hide_env_values = true)]
    password: Option<String>,
    /// An access token, or an `ovx_` API key with the `realtime:read` scope.
    #[arg(
        long,
        env = "OMNIVOX_TOKEN",
        hide_env_values = true,
        required_unless_present = "email"
    )]
    token: Option<String>,
    /// Print the first full board (tiles and agents) and exit.
    #[arg(long)]
    once: bool,
}

const PROTOCOL: &str = "graphql-transport-ws";
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The server pings every 15 s by default: a socket silent for this long is presumed dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(45);
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LAST_RETRY: Duration = Duration::from_secs(30);

const LOGIN: &str = "mutation SignIn($email: String!, $password: String!) {
  login(email: $email, password: $password) { accessToken }
}";
const LIVE_KPIS: &str = "subscription Tiles {
  liveKpis {
    computedAt timezone serviceLevelThresholdSeconds callsWaiting longestCurrentWait
    today { offered answered abandoned serviceLevel averageSpeedOfAnswer abandonRate }
  }
}";
const AGENT_STATES: &str = "subscription Agents {
  agentStates {
    kind resync removedAgentIds
    agents { id name teamName presence presenceReason presenceSince routingState routingSince }
  }
}";
const KPIS_ID: &str = "kpis";
const AGENTS_ID: &str = "agents";

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LiveKpis {
    computed_at: DateTime<Utc>,
    timezone: String,
    service_level_threshold_seconds: i64,
    calls_waiting: i64,
    longest_current_wait: Option<f64>,
    today: LiveWindow,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LiveWindow {
    offered: i64,
    answered: i64,
    abandoned: i64,
    service_level: Option<f64>,
    average_speed_of_answer: Option<f64>,
    abandon_rate: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AgentStatesUpdate {
    kind: String,
    agents: Vec<AgentStatus>,
    removed_agent_ids: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AgentStatus {
    id: String,
    name: String,
    team_name: Option<String>,
    presence: String,
    presence_reason: Option<String>,
    presence_since: DateTime<Utc>,
    routing_state: String,
    routing_since: DateTime<Utc>,
}

/// Why a connection ended: try again, or give up with a message.
#[derive(Debug)]
enum Failure {
    Retry(String),
    Fatal(String),
}

impl Failure {
    fn message(self) -> String {
        match self {
            Failure::Retry(message) | Failure::Fatal(message) => message,
        }
    }
}

fn retry(reason: impl Into<String>) -> Failure {
    Failure::Retry(reason.into())
}

fn fatal(reason: impl Into<String>) -> Failure {
    Failure::Fatal(reason.into())
}

enum Credentials {
    Password { email: String, password: String },
    Token(String),
}

struct Endpoints {
    http: String,
    ws: String,
}

/// `/graphql` of `--url`, over HTTP and over WebSocket.
fn endpoints(base: &str) -> Result<Endpoints, String> {
    let base = base.trim_end_matches('/');
    let http = if base.ends_with("/graphql") {
        base.to_owned()
    } else {
        format!("{base}/graphql")
    };
    let ws = match http.strip_prefix("http://") {
        Some(rest) => format!("ws://{rest}"),
        None if http.starts_with("https://") => {
            return Err("this example is built without TLS: use an http:// address".to_owned())
        }
        None => return Err(format!("--url must start with http://, not {base}")),
    };
    Ok(Endpoints { http, ws })
}

/// Jittered exponential backoff: 0.5 s doubling to 30 s, each delay between half and all of it.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self { next: FIRST_RETRY }
    }
    fn reset(&mut self) {
        self.next = FIRST_RETRY;
    }
    fn delay(&mut self) -> Duration {
        let delay = self.next.mul_f64(0.5 + rand::random::<f64>() / 2.0);
        self.next = (self.next * 2).min(LAST_RETRY);
        delay
    }
}

/// What the screen shows: the latest tiles and every agent of the latest snapshot and deltas.
#[derive(Default)]
struct Board {
    kpis: Option<LiveKpis>,
    agents: HashMap<String, AgentStatus>,
    /// Both subscriptions answered on the current socket.
    kpis_current: bool,
    agents_current: bool,
}

impl Board {
    fn complete(&self) -> bool {
        self.kpis_current && self.agents_current
    }

    fn apply_agents(&mut self, update: AgentStatesUpdate) {
        if update.kind == "SNAPSHOT" {
            self.agents.clear();
        }
        for id in &update.removed_agent_ids {
            self.agents.remove(id);
        }
        for agent in update.agents {
            self.agents.insert(agent.id.clone(), agent);
        }
        self.agents_current = true;
    }

    fn render(&self, now: DateTime<Utc>, status: &str) -> String {
        let mut out = String::new();
        let Some(kpis) = &self.kpis else {
            return format!("Omnivox wallboard: {status}\n");
        };
        let zone: Option<chrono_tz::Tz> = kpis.timezone.parse().ok();
        let clock = match zone {
            Some(zone) => now.with_timezone(&zone).format("%a %d %b %H:%M:%S").to_string(),
            None => now.format("%a %d %b %H:%M:%S UTC").to_string(),
        };
        out.push_str(&format!(
            "Omnivox wallboard · {} · {clock} · {status}\n\n",
            kpis.timezone
        ));

        let today = &kpis.today;
        let waiting = match kpis.longest_current_wait {
            Some(wait) if kpis.calls_waiting > 0 => {
                format!("{} (longest {})", kpis.calls_waiting, clock_duration(wait))
            }
            _ => kpis.calls_waiting.to_string(),
        };
        let tiles = [
            ("Offered today".to_owned(), today.offered.to_string()),
            ("Answered".to_owned(), today.answered.to_string()),
            ("Abandoned".to_owned(), abandoned(today)),
            (
                format!("Service level ({} s)", kpis.service_level_threshold_seconds),
                percent(today.service_level),
            ),
            (
                "ASA".to_owned(),
                today.average_speed_of_answer.map_or("—".to_owned(), seconds),
            ),
            ("Calls waiting".to_owned(), waiting),
        ];
        let width = |label: &str, value: &str| label.chars().count().max(value.chars().count()) + 3;
        for (label, value) in &tiles {
            out.push_str(&format!("{label:<w$}", w = width(label, value)));
        }
        out.push('\n');
        for (label, value) in &tiles {
            out.push_str(&format!("{value:<w$}", w = width(label, value)));
        }
        out.push_str("\n\n");

        let mut agents: Vec<&AgentStatus> = self.agents.values().collect();
        agents.sort_by(|a, b| {
            (a.presence == "OFFLINE", a.name.to_lowercase(), &a.id).cmp(&(
                b.presence == "OFFLINE",
                b.name.to_lowercase(),
                &b.id,
            ))
        });
        let name_width = agents.iter().map(|a| a.name.chars().count()).max().unwrap_or(0).max(5) + 2;
        let team_width = agents
            .iter()
            .map(|a| a.team_name.as_deref().map_or(1, |t| t.chars().count()))
            .max()
            .unwrap_or(0)
            .max(4)
            + 2;
        out.push_str(&format!(
            "{:<name_width$}{:<team_width$}{:<24}{}\n",
            "AGENT", "TEAM", "STATE", "FOR"
        ));
        for agent in &agents {
            let (state, since) = state_of(agent);
            let for_ = (now - since).num_milliseconds().max(0) as f64 / 1000.0;
            out.push_str(&format!(
                "{:<name_width$}{:<team_width$}{:<24}{}\n",
                agent.name,
                agent.team_name.as_deref().unwrap_or("—"),
                state,
                clock_duration(for_)
            ));
        }
        if agents.is_empty() {
            out.push_str("(no agents)\n");
        }
        out.push_str(&format!(
            "\n{} agents · figures computed {}\n",
            agents.len(),
            kpis.computed_at.format("%H:%M:%S UTC")
        ));
        out
    }
}

fn abandoned(window: &LiveWindow) -> String {
    match window.abandon_rate {
        Some(rate) => format!("{} ({rate:.1} %)", window.abandoned),
        None => window.abandoned.to_string(),
    }
}

/// A ratio without a denominator is "—", never 0 %.
fn percent(value: Option<f64>) -> String {
    value.map_or("—".to_owned(), |v| format!("{v:.1} %"))
}

fn seconds(value: f64) -> String {
    if value < 60.0 {
        format!("{value:.0} s")
    } else {
        clock_duration(value)
    }
}

/// `m:ss`, or `h:mm:ss` from an hour.
fn clock_duration(seconds: f64) -> String {
    let total = seconds.max(0.0).round() as i64;
    let (h, m, s) = (total / 3600, total % 3600 / 60, total % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// The routing state while the agent rings, talks or wraps up; the presence otherwise.
fn state_of(agent: &AgentStatus) -> (String, DateTime<Utc>) {
    let routing = match agent.routing_state.as_str() {
        "RINGING" => Some("Ringing"),
        "ON_CALL" => Some("On call"),
        "WRAP_UP" => Some("Wrap-up"),
        _ => None,
    };
    if let Some(state) = routing {
        return (state.to_owned(), agent.routing_since);
    }
    let lower = agent.presence.to_lowercase();
    let mut letters = lower.chars();
    let presence: String = match letters.next() {
        Some(first) => first.to_uppercase().chain(letters).collect(),
        None => lower.clone(),
    };
    let state = match &agent.presence_reason {
        Some(reason) => format!("{presence} ({reason})"),
        None => presence,
    };
    (state, agent.presence_since)
}

/// Writes a board: in a terminal it replaces the screen; piped, boards follow one another.
struct Screen {
    terminal: bool,
}

impl Screen {
    fn show(&self, board: &str) -> Result<(), Failure> {
        let mut stdout = std::io::stdout().lock();
        let written = if self.terminal {
            write!(stdout, "\x1b[2J\x1b[H{board}")
        } else {
            writeln!(stdout, "{board}")
        };
        written
            .and_then(|()| stdout.flush())
            .map_err(|e| fatal(format!("writing the board: {e}")))
    }
}

/// The `extensions.code` of each error and a line that names them.
fn describe_errors(errors: &Value) -> (Vec<String>, String) {
    let list = errors.as_array().cloned().unwrap_or_default();
    let codes: Vec<String> = list
        .iter()
        .map(|e| e["extensions"]["code"].as_str().unwrap_or("NO_CODE").to_owned())
        .collect();
    let text = list
        .iter()
        .zip(&codes)
        .map(|(e, code)| format!("{code}: {}", e["message"].as_str().unwrap_or("(no message)")))
        .collect::<Vec<_>>()
        .join("; ");
    (codes, text)
}

/// Errors worth another attempt (the server is busy or restarting); the rest will not change.
fn errors_failure(what: &str, errors: &Value) -> Failure {
    let (codes, text) = describe_errors(errors);
    let message = format!("{what}: {text}");
    if codes
        .iter()
        .all(|c| matches!(c.as_str(), "RATE_LIMITED" | "UNAVAILABLE" | "INTERNAL"))
    {
        retry(message)
    } else {
        fatal(message)
    }
}

async fn sign_in(http: &reqwest::Client, endpoint: &str, email: &str, password: &str) -> Result<String, Failure> {
    let response = http
        .post(endpoint)
        .header("accept", "application/graphql-response+json, application/json")
        .json(&json!({ "query": LOGIN, "variables": { "email": email, "password": password } }))
        .send()
        .await
        .map_err(|e| retry(format!("signing in: {e}")))?;
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .map_err(|e| retry(format!("signing in: HTTP {status}, not a GraphQL response ({e})")))?;
    if body.get("errors").is_some() {
        return Err(errors_failure("signing in", &body["errors"]));
    }
    body["data"]["login"]["accessToken"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| retry(format!("signing in: no access token in {body}")))
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn send(socket: &mut Socket, message: Value) -> Result<(), Failure> {
    socket
        .send(Message::text(message.to_string()))
        .await
        .map_err(|e| retry(format!("sending: {e}")))
}

/// What a close code means for this client.
fn closed(code: u16, reason: &str, can_sign_in: bool) -> Failure {
    match code {
        4403 if can_sign_in => retry("the session ended (4403); signing in again"),
        4403 => fatal(format!(
            "the token was refused (4403 {reason}): expired, revoked, or without realtime:read"
        )),
        // Protocol errors: another attempt would fail the same way.
        4400 | 4401 | 4409 => fatal(format!("the server closed the socket {code} {reason}")),
        _ => retry(format!("the server closed the socket {code} {reason}")),
    }
}

/// One socket: init, subscribe, draw until it fails (or, with `--once`, until a full board).
async fn session(
    endpoint: &str,
    token: &str,
    can_sign_in: bool,
    once: bool,
    board: &mut Board,
    backoff: &mut Backoff,
    screen: &Screen,
) -> Result<(), Failure> {
    let mut request = endpoint
        .into_client_request()
        .map_err(|e| fatal(format!("WebSocket address {endpoint}: {e}")))?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static(PROTOCOL));
    let (mut socket, _) = tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(request))
        .await
        .map_err(|_| retry("connecting timed out"))?
        .map_err(|e| retry(format!("connecting: {e}")))?;
    send(
        &mut socket,
        json!({ "type": "connection_init", "payload": { "token": token } }),
    )
    .await?;

    board.kpis_current = false;
    board.agents_current = false;
    let mut acknowledged = false;
    let mut last_heard = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let frame = tokio::select! {
            frame = socket.next() => frame,
            _ = tick.tick() => {
                if last_heard.elapsed() > SILENCE_LIMIT {
                    return Err(retry(format!("nothing heard for {} s", SILENCE_LIMIT.as_secs())));
                }
                if screen.terminal && board.complete() {
                    screen.show(&board.render(Utc::now(), "live"))?;
                }
                continue;
            }
        };
        last_heard = Instant::now();
        let text = match frame {
            None => return Err(retry("the connection closed")),
            Some(Err(e)) => return Err(retry(format!("the connection failed: {e}"))),
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                return Err(match frame {
                    Some(frame) => closed(u16::from(frame.code), frame.reason.as_str(), can_sign_in),
                    None => retry("the server closed the socket"),
                })
            }
            // tungstenite answers WebSocket pings itself; binary frames are not part of the protocol.
            Some(Ok(_)) => continue,
        };
        let message: Value = serde_json::from_str(text.as_str())
            .map_err(|e| fatal(format!("a message that is not JSON ({e}): {text}")))?;
        let id = message["id"].as_str().unwrap_or_default();
        match message["type"].as_str().unwrap_or_default() {
            "connection_ack" => {
                acknowledged = true;
                backoff.reset();
                for (id, query) in [(KPIS_ID, LIVE_KPIS), (AGENTS_ID, AGENT_STATES)] {
                    send(
                        &mut socket,
                        json!({ "id": id, "type": "subscribe", "payload": { "query": query } }),
                    )
                    .await?;
                }
            }
            "ping" => send(&mut socket, json!({ "type": "pong" })).await?,
            "pong" => {}
            "next" => {
                let payload = &message["payload"];
                if payload.get("errors").is_some() {
                    return Err(errors_failure(id, &payload["errors"]));
                }
                match id {
                    KPIS_ID => {
                        let kpis = serde_json::from_value(payload["data"]["liveKpis"].clone())
                            .map_err(|e| fatal(format!("liveKpis: unexpected shape ({e})")))?;
                        board.kpis = Some(kpis);
                        board.kpis_current = true;
                    }
                    AGENTS_ID => {
                        let update = serde_json::from_value(payload["data"]["agentStates"].clone())
                            .map_err(|e| fatal(format!("agentStates: unexpected shape ({e})")))?;
                        board.apply_agents(update);
                    }
                    other => return Err(fatal(format!("a message for an unknown operation {other:?}"))),
                }
                if board.complete() {
                    screen.show(&board.render(Utc::now(), "live"))?;
                    if once {
                        for id in [KPIS_ID, AGENTS_ID] {
                            send(&mut socket, json!({ "id": id, "type": "complete" })).await?;
                        }
                        // Leaving anyway: a close that fails changes nothing.
                        let _ = socket.close(None).await;
                        return Ok(());
                    }
                }
            }
            "error" => return Err(errors_failure(id, &message["payload"])),
            "complete" => return Err(retry(format!("the server completed {id}"))),
            other if !acknowledged => return Err(fatal(format!("{other:?} before connection_ack"))),
            _ => {}
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let endpoints = endpoints(&args.url)?;
    let credentials = match (args.email, args.password, args.token) {
        (Some(email), Some(password), _) => Credentials::Password { email, password },
        (_, _, Some(token)) => Credentials::Token(token),
        // clap requires one or the other (`required_unless_present`, `requires`).
        _ => return Err("give --email and --password, or --token".to_owned()),
    };
    let http = reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .build()
        .map_err(|e| format!("an HTTP client: {e}"))?;
    let screen = Screen {
        terminal: std::io::stdout().is_terminal(),
    };
    let mut board = Board::default();
    let mut backoff = Backoff::new();
    loop {
        let (token, can_sign_in) = match &credentials {
            Credentials::Password { email, password } => (sign_in(&http, &endpoints.http, email, password).await, true),
            Credentials::Token(token) => (Ok(token.clone()), false),
        };
        let ended = match token {
            Ok(token) => {
                session(
                    &endpoints.ws,
                    &token,
                    can_sign_in,
                    args.once,
                    &mut board,
                    &mut backoff,
                    &screen,
                )
                .await
            }
            Err(failure) => Err(failure),
        };
        match ended {
            Ok(()) => return Ok(()),
            Err(Failure::Fatal(message)) => return Err(message),
            Err(Failure::Retry(reason)) => {
                let delay = backoff.delay();
                let status = format!("reconnecting in {:.1} s: {reason}", delay.as_secs_f64());
                if board.kpis.is_some() && screen.terminal {
                    screen
                        .show(&board.render(Utc::now(), &status))
                        .map_err(Failure::message)?;
                } else {
                    eprintln!("terminal_wallboard: {status}");
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("terminal_wallboard: {message}");
            ExitCode::FAILURE
        }
    }
}

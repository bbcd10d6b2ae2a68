//! The test harness: every test gets its own PostgreSQL database, cloned from a migrated
//! template, and its own Redis key/channel prefix, so the whole suite runs in parallel against
//! the real services. Helpers start the app on a random port and speak GraphQL over HTTP and
//! WebSocket like a client would. The fixture organisation builder (`fixture.rs`) and the
//! WebSocket client (`ws.rs`) are files of their own because the benchmarks include them too;
//! `binary.rs` runs the `omnivox` binary itself as a child process.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod binary;
pub mod fixture;
pub mod ws;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use fixture::FixtureOrg;
use omnivox::auth::Role;
use omnivox::config::Settings;
use omnivox::db;
use omnivox::state::AppState;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use uuid::Uuid;
use ws::WsClient;

pub const PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";
pub const TEST_PASSWORD: &str = fixture::FIXTURE_PASSWORD;
pub const TEST_JWT_SECRET: &str = "test-secret-that-is-at-least-32-bytes-long!";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// A TCP port free on 127.0.0.1 a moment ago, for a server a test starts itself.
pub fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn pg_url(database: &str) -> String {
    format!("{PG_SERVER}/{database}")
}

/// The template's name carries a hash of the migrations, so a changed migration builds a new one.
fn template_name() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut entries: Vec<_> = walk(&dir);
    entries.sort();
    let mut hasher = Sha256::new();
    for path in entries {
        hasher.update(path.to_string_lossy().as_bytes());
        hasher.update(std::fs::read(&path).unwrap());
    }
    format!("omnivox_tpl_{}", &hex::encode(hasher.finalize())[..16])
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[derive(diesel::QueryableByName)]
struct Exists {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    exists: bool,
}

async fn database_exists(conn: &mut AsyncPgConnection, name: &str) -> bool {
    let row: Exists = diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result(conn)
        .await
        .unwrap();
    row.exists
}

/// Builds the migrated template once per migrations hash, across processes (advisory lock).
async fn ensure_template() -> String {
    static TEMPLATE: OnceCell<String> = OnceCell::const_new();
    TEMPLATE
        .get_or_init(|| async {
            let name = template_name();
            let mut admin = AsyncPgConnection::establish(&pg_url("postgres")).await.unwrap();
            admin.batch_execute("SELECT pg_advisory_lock(727274)").await.unwrap();
            if !database_exists(&mut admin, &name).await {
                let building = format!("{name}_building");
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                    .await
                    .unwrap();
                admin
                    .batch_execute(&format!("CREATE DATABASE {building}"))
                    .await
                    .unwrap();
                db::run_migrations(&pg_url(&building)).await.unwrap();
                admin
                    .batch_execute(&format!("ALTER DATABASE {building} RENAME TO {name}"))
                    .await
                    .unwrap();
            }
            admin.batch_execute("SELECT pg_advisory_unlock(727274)").await.unwrap();
            name
        })
        .await
        .clone()
}

/// A fresh, migrated database for one test; dropped when the guard is dropped.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    /// False for a second app instance on another instance's database: it must not drop it.
    owned: bool,
}

impl TestDatabase {
    pub async fn new() -> Self {
        let template = ensure_template().await;
        let name = format!("omnivox_t_{}", Uuid::new_v4().simple());
        let mut admin = AsyncPgConnection::establish(&pg_url("postgres")).await.unwrap();
        let mut attempt = 0;
        loop {
            match admin
                .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
                .await
            {
                Ok(()) => break,
                // Two clones of one template at the same instant collide; try again shortly.
                Err(e) if attempt < 50 && e.to_string().contains("being accessed by other users") => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 + 10 * attempt)).await;
                }
                Err(e) => panic!("cloning the template database: {e}"),
            }
        }
        Self {
            url: pg_url(&name),
            name,
            owned: true,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let name = self.name.clone();
        // Drop runs outside async context: use a throwaway runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(mut admin) = AsyncPgConnection::establish(&pg_url("postgres")).await {
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// Settings for a test instance: known JWT secret, its own database, defaults otherwise.
pub fn test_settings(database_url: &str) -> Settings {
    let mut settings = Settings::for_database(database_url);
    settings.jwt_secret = Some(TEST_JWT_SECRET.to_owned());
    settings.bind = "127.0.0.1:0".parse().unwrap();
    settings
}

/// A running app on a random port, with its own database.
pub struct TestApp {
    pub state: AppState,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub redis_prefix: String,
    server: tokio::task::JoinHandle<()>,
    pub database: TestDatabase,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Debug)]
pub struct GqlResponse {
    pub status: u16,
    pub body: Value,
}

impl GqlResponse {
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
    /// The `extensions.code` of the first error, if any.
    pub fn error_code(&self) -> Option<&str> {
        self.body["errors"][0]["extensions"]["code"].as_str()
    }
    pub fn error_message(&self) -> Option<&str> {
        self.body["errors"][0]["message"].as_str()
    }
    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert!(self.body.get("errors").is_none(), "unexpected errors: {}", self.body);
        &self.body["data"]
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts the app with adjusted settings.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> Self {
        let database = TestDatabase::new().await;
        let redis_prefix = format!("omnivox-test:{}:", Uuid::new_v4().simple());
        Self::start(database, redis_prefix, adjust).await
    }

    /// A second instance sharing this one's database and Redis prefix (as two instances of one
    /// deployment behind a load balancer would).
    pub async fn spawn_peer(&self, adjust: impl FnOnce(&mut Settings)) -> Self {
        let database = TestDatabase {
            name: self.database.name.clone(),
            url: self.database.url.clone(),
            owned: false,
        };
        Self::start(database, self.redis_prefix.clone(), adjust).await
    }

    async fn start(database: TestDatabase, redis_prefix: String, adjust: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = test_settings(&database.url);
        settings.redis_prefix = redis_prefix.clone();
        adjust(&mut settings);
        let state = AppState::new(settings).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = omnivox::http::app(state.clone());
        // As `omnivox serve` does: this instance executes report runs.
        omnivox::reports::jobs::spawn(&state);
        let server = tokio::spawn(async move {
            // As `omnivox serve` does: with the peer address (audit records keep it).
            axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
                .await
                .unwrap();
        });
        Self {
            state,
            addr,
            http: reqwest::Client::new(),
            redis_prefix,
            server,
            database,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Creates an organization with one user per role (`<role>@<slug>.test`) and nothing else.
    pub async fn create_org(&self, slug: &str) -> FixtureOrg {
        FixtureOrg::builder(slug).build(&self.state).await
    }

    /// POSTs a GraphQL request, with a bearer token when given.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> GqlResponse {
        let mut request = self
            .http
            .post(self.url("/graphql"))
            .header("accept", "application/graphql-response+json")
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        GqlResponse { status, body }
    }

    /// Logs in; returns (access token, refresh token).
    pub async fn login(&self, email: &str) -> (String, String) {
        let response = self
            .gql(
                None,
                "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken refreshToken } }",
                json!({ "e": email, "p": TEST_PASSWORD }),
            )
            .await;
        let login = &response.ok()["login"];
        (
            login["accessToken"].as_str().unwrap().to_owned(),
            login["refreshToken"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn token(&self, org: &FixtureOrg, role: Role) -> String {
        self.login(&org.user(role).email).await.0
    }

    /// Opens a WebSocket on /graphql with the given subprotocol.
    pub async fn ws(&self, protocol: &str) -> WsClient {
        WsClient::connect(self.addr, protocol).await
    }

    /// Opens a socket as `token` and subscribes (operation id "1").
    pub async fn subscribe(&self, token: &str, query: &str, variables: Value) -> WsClient {
        WsClient::subscribed(self.addr, token, query, variables).await
    }
}

//! Every setting of Omnivox, from command-line flags or environment variables.
//!
//! Each flag has an environment variable of the same meaning and a named default, so a
//! deployment can be configured either way; README.md lists them all.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::ValueEnum;

use crate::error::{AppError, AppResult};

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/omnivox";
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEMO_PASSWORD: &str = "omnivox-demo";
/// HS256 keys shorter than this are refused: a short HMAC key can be brute-forced offline.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Every runtime setting. Flags are global: they may stand before or after the subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// PostgreSQL URL. The database is created when it does not exist.
    #[arg(long, global = true, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
    /// PostgreSQL URL the application serves requests through: a role that row-level security
    /// restricts (`omnivox_app`, created and granted by the migrations), never the tables'
    /// owner. Unset: `DATABASE_URL` with its user replaced by `omnivox_app` and no password
    /// (enough for a local server with trust authentication). `DATABASE_URL` itself is the
    /// owner's: migrations and the few cross-tenant paths (see `db::tenancy`).
    #[arg(long, global = true, env = "OMNIVOX_APP_DATABASE_URL", hide_env_values = true)]
    pub app_database_url: Option<String>,
    /// PostgreSQL URL of a streaming read replica for KPI, analytics and compliance reads.
    /// Unset, or down: those reads go to the primary (see `db::reads`).
    #[arg(long, global = true, env = "OMNIVOX_DATABASE_READ_URL", hide_env_values = true)]
    pub database_read_url: Option<String>,
    /// Maximum connections in the database pool.
    #[arg(long, global = true, env = "OMNIVOX_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: usize,
    /// How long a request waits for a pooled connection before answering UNAVAILABLE.
    #[arg(long, global = true, env = "OMNIVOX_DB_WAIT_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    pub db_wait_timeout: Duration,
    /// `statement_timeout` set on every pooled connection.
    #[arg(long, global = true, env = "OMNIVOX_DB_STATEMENT_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub db_statement_timeout: Duration,
    /// Redis URL. Unset: an in-process event bus (single instance only).
    #[arg(long, global = true, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and pub/sub channel of this deployment, so several deployments
    /// (or test runs) can share one Redis without hearing each other.
    #[arg(long, global = true, env = "OMNIVOX_REDIS_PREFIX", default_value = "omnivox:")]
    pub redis_prefix: String,
    /// Address to listen on.
    #[arg(long, global = true, env = "OMNIVOX_BIND", default_value = DEFAULT_BIND)]
    pub bind: SocketAddr,
    /// `production` refuses a missing JWT secret and turns GraphiQL, introspection and field
    /// suggestions off unless they are asked for.
    #[arg(
        long = "env",
        global = true,
        env = "OMNIVOX_ENV",
        value_enum,
        default_value = "development"
    )]
    pub environment: Environment,
    /// HS256 signing secret, at least 32 bytes. Development generates a random one (tokens then
    /// die with the process); production refuses to start without it.
    #[arg(long, global = true, env = "OMNIVOX_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// `iss` of issued tokens, required on every token presented.
    #[arg(long, global = true, env = "OMNIVOX_JWT_ISSUER", default_value = "omnivox")]
    pub jwt_issuer: String,
    /// `aud` of issued tokens, required on every token presented.
    #[arg(long, global = true, env = "OMNIVOX_JWT_AUDIENCE", default_value = "omnivox-api")]
    pub jwt_audience: String,
    /// Lifetime of access tokens.
    #[arg(long, global = true, env = "OMNIVOX_ACCESS_TOKEN_TTL", default_value = "15m", value_parser = parse_duration)]
    pub access_token_ttl: Duration,
    /// Lifetime of refresh tokens (each use rotates the token).
    #[arg(long, global = true, env = "OMNIVOX_REFRESH_TOKEN_TTL", default_value = "30d", value_parser = parse_duration)]
    pub refresh_token_ttl: Duration,
    /// Serve GraphiQL at /graphiql [default: on in development, off in production].
    #[arg(long, global = true, env = "OMNIVOX_GRAPHIQL")]
    pub graphiql: Option<bool>,
    /// Allow schema introspection [default: on in development, off in production].
    #[arg(long, global = true, env = "OMNIVOX_INTROSPECTION")]
    pub introspection: Option<bool>,
    /// "Did you mean …?" suggestions in validation errors [default: as introspection].
    #[arg(long, global = true, env = "OMNIVOX_FIELD_SUGGESTIONS")]
    pub field_suggestions: Option<bool>,
    /// Maximum selection depth of a GraphQL operation.
    #[arg(long, global = true, env = "OMNIVOX_MAX_DEPTH", default_value_t = 12)]
    pub max_depth: usize,
    /// Maximum complexity of an operation (list fields cost their page size × their children).
    #[arg(long, global = true, env = "OMNIVOX_MAX_COMPLEXITY", default_value_t = 5_000)]
    pub max_complexity: usize,
    /// Maximum number of aliased fields in one document.
    #[arg(long, global = true, env = "OMNIVOX_MAX_ALIASES", default_value_t = 30)]
    pub max_aliases: usize,
    /// Maximum number of directives on one field.
    #[arg(long, global = true, env = "OMNIVOX_MAX_DIRECTIVES", default_value_t = 5)]
    pub max_directives: usize,
    /// Maximum size of a GraphQL document, in bytes.
    #[arg(long, global = true, env = "OMNIVOX_MAX_DOCUMENT_BYTES", default_value_t = 16 * 1024)]
    pub max_document_bytes: usize,
    /// Largest `first` a paginated field accepts.
    #[arg(long, global = true, env = "OMNIVOX_MAX_PAGE_SIZE", default_value_t = 100)]
    pub max_page_size: usize,
    /// Maximum HTTP request body, in bytes.
    #[arg(long, global = true, env = "OMNIVOX_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Automatic persisted queries (Apollo's APQ protocol): documents kept by hash, least
    /// recently used dropped first (their total size is bounded too). 0 turns the protocol off.
    #[arg(long, global = true, env = "OMNIVOX_PERSISTED_QUERIES", default_value_t = 1_000)]
    pub persisted_queries: usize,
    /// Time budget of one HTTP request.
    #[arg(long, global = true, env = "OMNIVOX_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// On SIGTERM or Ctrl-C: how long in-flight requests, ingest batches and WebSocket closes
    /// may take before the rest is cut (logged) and the process exits with an error.
    #[arg(long, global = true, env = "OMNIVOX_DRAIN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Log format: `json` (one object per line) for log shippers in production.
    #[arg(long, global = true, env = "OMNIVOX_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// OpenTelemetry: export traces over OTLP/HTTP to this base URL (`/v1/traces` is appended),
    /// e.g. `http://127.0.0.1:4318`. Unset: no export. See `telemetry::traces`.
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// WebSocket: how long a new socket may wait before sending `connection_init` (then it is
    /// closed 4408). Default 5s.
    #[arg(long, global = true, env = "OMNIVOX_WS_INIT_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub ws_init_timeout: Duration,
    /// WebSocket: interval of server keep-alives (`ping`, or `ka` in the legacy protocol).
    /// Default 15s.
    #[arg(long, global = true, env = "OMNIVOX_WS_PING_INTERVAL", default_value = "15s", value_parser = parse_duration)]
    pub ws_ping_interval: Duration,
    /// WebSocket: how often an open socket's token is checked again against its user (inactive
    /// user, revoked tokens, changed role: closed 4403). Default 30s.
    #[arg(long, global = true, env = "OMNIVOX_WS_REAUTH_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub ws_reauth_interval: Duration,
    /// WebSocket: maximum operations running at once on one socket; one more is answered with
    /// an `error` message (code RATE_LIMITED) and the socket stays open. Default 100.
    #[arg(long, global = true, env = "OMNIVOX_WS_MAX_OPERATIONS", default_value_t = 100)]
    pub ws_max_operations: usize,
    /// WebSocket: maximum open sockets per user on this instance; one more is closed 4429.
    /// Default 20.
    #[arg(long, global = true, env = "OMNIVOX_WS_MAX_SOCKETS_PER_USER", default_value_t = 20)]
    pub ws_max_sockets_per_user: usize,
    /// WebSocket: messages queued for one socket before the client counts as not reading and
    /// the socket is closed 1013. Default 256.
    #[arg(long, global = true, env = "OMNIVOX_WS_OUTBOUND_QUEUE", default_value_t = 256)]
    pub ws_outbound_queue: usize,
    /// Live views: updates buffered per `agentStates` subscriber; a subscriber that falls
    /// further behind is sent a fresh snapshot (marked as a resync) instead. Default 1024.
    #[arg(long, global = true, env = "OMNIVOX_LIVE_UPDATES_BUFFER", default_value_t = 1_024)]
    pub live_updates_buffer: usize,
    /// The public base URL of this service as callers see it (scheme, host, optional port and
    /// path prefix, e.g. `https://omnivox.example.com`), for deployments behind a proxy:
    /// webhook signatures (Twilio) cover the URL the sender called. Unset: `http://` + the
    /// request's Host header.
    #[arg(long, global = true, env = "OMNIVOX_PUBLIC_BASE_URL", value_parser = parse_public_base_url)]
    pub public_base_url: Option<String>,
    /// Reports: how long a run's file stays downloadable before it is deleted. Default 7d.
    #[arg(long, global = true, env = "OMNIVOX_EXPORT_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub export_retention: Duration,
    /// Reports: report runs one instance executes at once (0: none; other instances run them).
    /// Default 2.
    #[arg(long, global = true, env = "OMNIVOX_REPORT_WORKERS", default_value_t = 2)]
    pub report_workers: usize,
    /// Reports: a running run whose instance has not reported for this long (it died) is
    /// taken over by another instance. Default 30s.
    #[arg(long, global = true, env = "OMNIVOX_REPORT_TAKEOVER_AFTER", default_value = "30s", value_parser = parse_duration)]
    pub report_takeover_after: Duration,
    /// Reports: a pause after each row a run writes. Zero in production; tests and demos of
    /// progress, cancellation and takeover set it to make a small run last.
    #[arg(long, global = true, env = "OMNIVOX_REPORT_ROW_DELAY", default_value = "0ms", value_parser = parse_duration, hide = true)]
    pub report_row_delay: Duration,
    /// Report schedules: how often each instance looks for due schedules (a fire starts at most
    /// this late). Default 5s.
    #[arg(long, global = true, env = "OMNIVOX_SCHEDULE_TICK", default_value = "5s", value_parser = parse_duration)]
    pub schedule_tick: Duration,
    /// Report deliveries: how often each instance looks for finished scheduled runs to send.
    /// Default 2s.
    #[arg(long, global = true, env = "OMNIVOX_DELIVERY_POLL", default_value = "2s", value_parser = parse_duration)]
    pub delivery_poll: Duration,
    /// Report deliveries: the waits between attempts, comma-separated; a delivery is tried once
    /// more than there are waits, then recorded FAILED. Default 30s,2m,10m,1h,6h (six attempts
    /// over about 7 h 42 min).
    #[arg(long, global = true, env = "OMNIVOX_DELIVERY_BACKOFF", default_value = "30s,2m,10m,1h,6h", value_parser = parse_backoff)]
    pub delivery_backoff: Backoff,
    /// Report deliveries: time budget of one attempt (SMTP session or webhook request). An
    /// instance that dies mid-attempt leaves the delivery to another after twice this.
    /// Default 30s.
    #[arg(long, global = true, env = "OMNIVOX_DELIVERY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub delivery_timeout: Duration,
    /// SMTP server for report e-mails: `smtp://host:port` (plain, e.g. a local relay),
    /// `smtp://host:587?tls=required` (STARTTLS), `smtps://host:465` (TLS); credentials as
    /// `smtp://user:password@host`. Unset: e-mail deliveries fail (recorded) until it is set.
    #[arg(long, global = true, env = "OMNIVOX_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// The From address of report e-mails.
    #[arg(
        long,
        global = true,
        env = "OMNIVOX_SMTP_FROM",
        default_value = "Omnivox Reports <reports@omnivox.invalid>"
    )]
    pub smtp_from: String,
    /// Report e-mails attach files up to this many bytes; a larger file is sent as a signed
    /// download link instead. Default 10 MiB.
    #[arg(long, global = true, env = "OMNIVOX_REPORT_ATTACHMENT_LIMIT", default_value_t = 10 * 1024 * 1024)]
    pub report_attachment_limit: u64,
    /// How long the signed download links of report e-mails and webhooks work. Default 7d.
    #[arg(long, global = true, env = "OMNIVOX_REPORT_LINK_TTL", default_value = "7d", value_parser = parse_duration)]
    pub report_link_ttl: Duration,
    /// Rate limits: turn the limiter off (benchmarks of its overhead, a deployment whose
    /// gateway limits already). Default on.
    #[arg(long, global = true, env = "OMNIVOX_RATE_LIMITS_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub rate_limits_enabled: bool,
    /// Rate limits: query-cost budget per caller and `--rate-limit-period`, by role, in
    /// complexity points (the cost the schema computes: a list costs its page size × its
    /// children). Each signed-in user and each API key has its own budget of its role; callers
    /// without credentials share one budget per client address (`anonymous`). Roles left out
    /// keep their default. A request costing more than its whole budget is charged the budget.
    #[arg(
        long,
        global = true,
        env = "OMNIVOX_RATE_LIMITS",
        default_value = DEFAULT_ROLE_BUDGETS,
        value_parser = parse_role_budgets
    )]
    pub rate_limits: RoleBudgets,
    /// Rate limits: the period over which a budget refills completely (a caller may spend all
    /// of it at once). Default 1m.
    #[arg(long, global = true, env = "OMNIVOX_RATE_LIMIT_PERIOD", default_value = "1m", value_parser = parse_duration)]
    pub rate_limit_period: Duration,
    /// Rate limits: a request sent again before the `Retry-After` of its refusal is refused
    /// again only after this long (or once its wait is over, if sooner). A client looping on
    /// its 429s is slowed to one request per connection and delay, where an immediate answer
    /// would let it cost the server one request per round trip. 0s answers at once. Default 1s.
    #[arg(long, global = true, env = "OMNIVOX_RATE_LIMIT_REPEAT_DELAY", default_value = "1s", value_parser = parse_duration)]
    pub rate_limit_repeat_delay: Duration,
    /// `login` attempts per account (e-mail address), as COUNT/PERIOD. Default 10/15m.
    #[arg(long, global = true, env = "OMNIVOX_LOGIN_RATE_PER_ACCOUNT", default_value = "10/15m", value_parser = parse_rate)]
    pub login_rate_per_account: Rate,
    /// `login` attempts per client address, as COUNT/PERIOD. Default 100/15m (an office behind
    /// one NAT address signs in from it).
    #[arg(long, global = true, env = "OMNIVOX_LOGIN_RATE_PER_ADDRESS", default_value = "100/15m", value_parser = parse_rate)]
    pub login_rate_per_address: Rate,
    /// `refreshSession` calls per account (the refresh token's user), as COUNT/PERIOD.
    /// Default 60/15m.
    #[arg(long, global = true, env = "OMNIVOX_REFRESH_RATE_PER_ACCOUNT", default_value = "60/15m", value_parser = parse_rate)]
    pub refresh_rate_per_account: Rate,
    /// `refreshSession` calls per client address, as COUNT/PERIOD. Default 600/15m.
    #[arg(long, global = true, env = "OMNIVOX_REFRESH_RATE_PER_ADDRESS", default_value = "600/15m", value_parser = parse_rate)]
    pub refresh_rate_per_address: Rate,
    /// Telephony webhooks accepted per organization, as COUNT/PERIOD; one more is answered 429
    /// with `Retry-After` before anything is stored (the sender retries). Default 60000/1m.
    #[arg(long, global = true, env = "OMNIVOX_WEBHOOK_RATE", default_value = "60000/1m", value_parser = parse_rate)]
    pub webhook_rate: Rate,
    /// Subscriptions one user (or API key) may hold open at once on this instance; one more is
    /// answered with an `error` message (code RATE_LIMITED). Default 100.
    #[arg(
        long,
        global = true,
        env = "OMNIVOX_MAX_SUBSCRIPTIONS_PER_USER",
        default_value_t = 100
    )]
    pub max_subscriptions_per_user: usize,
    /// Proxies (addresses or CIDR blocks, comma-separated) whose `X-Forwarded-For` names the
    /// client. A request from any other peer is limited by its socket address and its
    /// `X-Forwarded-For` is ignored. Default: none.
    #[arg(long, global = true, env = "OMNIVOX_TRUSTED_PROXIES", default_value = "", value_parser = parse_trusted_proxies)]
    pub trusted_proxies: TrustedProxies,
    /// Browser origins allowed to call the API from another site (CORS), comma-separated, e.g.
    /// `https://wallboard.example.com,https://admin.example.com`. Empty (the default): no
    /// cross-origin access at all (same-origin pages such as the built-in wallboard still
    /// work). `*` allows every origin — development only (production refuses it).
    #[arg(long, global = true, env = "OMNIVOX_CORS_ALLOWED_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_allowed_origins: Vec<String>,
    /// `Strict-Transport-Security` max-age for responses (e.g. `365d`), for deployments served
    /// over HTTPS only (browsers then refuse plain HTTP to this host for that long). Unset: no
    /// HSTS header (TLS usually ends at a proxy that may set it).
    #[arg(long, global = true, env = "OMNIVOX_HSTS_MAX_AGE", value_parser = parse_duration)]
    pub hsts_max_age: Option<Duration>,
}

impl Settings {
    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }

    /// What production refuses to start with, in words (empty: nothing). Development accepts
    /// all of it, with warnings where it matters (see `AppState::new`).
    pub fn production_problems(&self) -> Vec<String> {
        if !self.is_production() {
            return Vec::new();
        }
        let mut problems = Vec::new();
        match &self.jwt_secret {
            None => problems.push("OMNIVOX_JWT_SECRET is required".to_owned()),
            Some(secret) if secret.len() < MIN_JWT_SECRET_BYTES => problems.push(format!(
                "OMNIVOX_JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes"
            )),
            Some(secret) if secret.bytes().collect::<std::collections::BTreeSet<u8>>().len() < 8 => {
                problems.push("OMNIVOX_JWT_SECRET is too repetitive to be a secret".to_owned())
            }
            Some(_) => {}
        }
        if self.database_url == DEFAULT_DATABASE_URL {
            problems
                .push("DATABASE_URL must be set explicitly (the default is a local development database)".to_owned());
        }
        if self.app_database_url.is_none() {
            problems.push(
                "OMNIVOX_APP_DATABASE_URL must be set explicitly (the application's role, with its password)"
                    .to_owned(),
            );
        }
        if self.cors_allowed_origins.iter().any(|origin| origin == "*") {
            problems.push("OMNIVOX_CORS_ALLOWED_ORIGINS must list origins, not `*`".to_owned());
        }
        problems
    }
    /// The URL of the application's role (see `app_database_url`).
    pub fn app_database_url(&self) -> AppResult<String> {
        if let Some(url) = &self.app_database_url {
            return Ok(url.clone());
        }
        derive_app_url(&self.database_url)
    }

    /// The read replica's URL, connecting as the application's role like the primary's
    /// (`OMNIVOX_DATABASE_READ_URL` names the server; its user is replaced the same way unless
    /// `OMNIVOX_APP_DATABASE_URL` was given, in which case its user and password are used).
    pub fn app_read_url(&self) -> AppResult<Option<String>> {
        let Some(read_url) = &self.database_read_url else {
            return Ok(None);
        };
        let mut url = url::Url::parse(read_url)
            .map_err(|_| AppError::bad_input("OMNIVOX_DATABASE_READ_URL is not a valid URL"))?;
        let app = url::Url::parse(&self.app_database_url()?)
            .map_err(|_| AppError::bad_input("OMNIVOX_APP_DATABASE_URL is not a valid URL"))?;
        url.set_username(app.username())
            .and_then(|()| url.set_password(app.password()))
            .map_err(|()| AppError::bad_input("OMNIVOX_DATABASE_READ_URL cannot carry a user"))?;
        Ok(Some(url.to_string()))
    }

    pub fn graphiql_enabled(&self) -> bool {
        self.graphiql.unwrap_or(!self.is_production())
    }
    pub fn introspection_enabled(&self) -> bool {
        self.introspection.unwrap_or(!self.is_production())
    }
    pub fn field_suggestions_enabled(&self) -> bool {
        self.field_suggestions.unwrap_or(self.introspection_enabled())
    }

    /// Settings with every default, for tests and examples that build the app in-process.
    pub fn for_database(database_url: &str) -> Self {
        /// The settings alone, parsed from no flags (environment variables still apply).
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            settings: Settings,
        }
        let mut settings = <Defaults as clap::Parser>::parse_from(["omnivox"]).settings;
        settings.database_url = database_url.to_owned();
        settings
    }
}

/// The role the migrations grant the application's privileges to; row-level security
/// restricts it (migration `2026-12-07-000031_row_level_security`).
pub const APP_DATABASE_ROLE: &str = "omnivox_app";

/// `database_url` with its user replaced by the application's role and its password dropped.
fn derive_app_url(database_url: &str) -> AppResult<String> {
    let mut url = url::Url::parse(database_url).map_err(|_| AppError::bad_input("DATABASE_URL is not a valid URL"))?;
    url.set_username(APP_DATABASE_ROLE)
        .and_then(|()| url.set_password(None))
        .map_err(|()| AppError::bad_input("DATABASE_URL cannot carry a user"))?;
    Ok(url.to_string())
}

/// An absolute `http` or `https` URL without query or fragment; a trailing `/` is dropped.
pub fn parse_public_base_url(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|_| format!("`{text}` is not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("`{text}` must be an http or https URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{text}` must not have a query or a fragment"));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// A browser origin (`https://host[:port]`, no path) or `*`; a trailing `/` is dropped.
pub fn parse_origin(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text == "*" {
        return Ok(text.to_owned());
    }
    let url =
        url::Url::parse(text).map_err(|_| format!("`{text}` is not an origin such as https://app.example.com"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("`{text}` must be an http or https origin with a host"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!("`{text}` must be an origin only: scheme, host and port"));
    }
    Ok(url.origin().ascii_serialization())
}

/// The waits between delivery attempts (see `--delivery-backoff`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff(pub Vec<Duration>);

impl Backoff {
    /// Attempts in all: one more than there are waits.
    pub fn max_attempts(&self) -> i32 {
        i32::try_from(self.0.len()).unwrap_or(i32::MAX - 1).saturating_add(1)
    }

    /// The wait after failed attempt `attempt` (1-based), or None when it was the last.
    pub fn after(&self, attempt: i32) -> Option<Duration> {
        let index = usize::try_from(attempt.checked_sub(1)?).ok()?;
        self.0.get(index).copied()
    }
}

/// Parses `30s,2m,10m` (empty: no retry).
pub fn parse_backoff(text: &str) -> Result<Backoff, String> {
    let waits = text
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(parse_duration)
        .collect::<Result<Vec<_>, _>>()?;
    if waits.len() > 20 {
        return Err("at most 20 waits".into());
    }
    Ok(Backoff(waits))
}

/// The default query-cost budgets per role (see `--rate-limits`). A KPI summary costs 16 and
/// an `analytics` query 450, while their server time differs a hundredfold: a VIEWER's 5,000 a
/// minute are a summary five times a second (any wallboard), a SUPERVISOR's 10,000 are twenty
/// `analytics` queries a minute — a person exploring, not a loop.
pub const DEFAULT_ROLE_BUDGETS: &str =
    "anonymous=1000,viewer=5000,agent=5000,supervisor=10000,admin=10000,super_admin=20000";

/// A budget of `count` units per `period` (a bucket that refills completely over `period`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u64,
    pub period: Duration,
}

impl Rate {
    pub fn new(count: u64, period: Duration) -> Self {
        Self { count, period }
    }
}

/// Parses `COUNT/PERIOD`, e.g. `10/15m` (see [`parse_duration`]); both must be positive.
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let (count, period) = text
        .split_once('/')
        .ok_or_else(|| format!("`{text}` is not a rate such as 10/15m"))?;
    let count: u64 = count
        .trim()
        .parse()
        .map_err(|_| format!("`{text}`: the count must be a whole number"))?;
    let period = parse_duration(period)?;
    if count == 0 || period.is_zero() {
        return Err(format!("`{text}`: count and period must be positive"));
    }
    Ok(Rate { count, period })
}

/// Query-cost budgets per role (see `--rate-limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleBudgets {
    pub anonymous: u64,
    pub viewer: u64,
    pub agent: u64,
    pub supervisor: u64,
    pub admin: u64,
    pub super_admin: u64,
}

impl RoleBudgets {
    /// The same budget for everyone (tests and benchmarks).
    pub fn uniform(budget: u64) -> Self {
        Self {
            anonymous: budget,
            viewer: budget,
            agent: budget,
            supervisor: budget,
            admin: budget,
            super_admin: budget,
        }
    }
}

/// Parses `role=budget` pairs, comma-separated, over the defaults: `viewer=50000,admin=90000`.
pub fn parse_role_budgets(text: &str) -> Result<RoleBudgets, String> {
    fn apply(budgets: &mut RoleBudgets, text: &str) -> Result<(), String> {
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (role, budget) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{pair}` is not role=budget"))?;
            let budget: u64 = budget
                .trim()
                .parse()
                .ok()
                .filter(|b| *b > 0)
                .ok_or_else(|| format!("`{pair}`: the budget must be a positive whole number"))?;
            let slot = match role.trim().to_ascii_lowercase().replace('-', "_").as_str() {
                "anonymous" => &mut budgets.anonymous,
                "viewer" => &mut budgets.viewer,
                "agent" => &mut budgets.agent,
                "supervisor" => &mut budgets.supervisor,
                "admin" => &mut budgets.admin,
                "super_admin" | "superadmin" => &mut budgets.super_admin,
                other => {
                    return Err(format!(
                        "unknown role `{other}` (anonymous, viewer, agent, supervisor, admin, super_admin)"
                    ))
                }
            };
            *slot = budget;
        }
        Ok(())
    }
    let mut budgets = RoleBudgets::uniform(1);
    apply(&mut budgets, DEFAULT_ROLE_BUDGETS)?;
    apply(&mut budgets, text)?;
    Ok(budgets)
}

/// The proxies whose `X-Forwarded-For` is believed (see `--trusted-proxies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<IpBlock>);

/// An address block: an address and how many leading bits of it count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBlock {
    pub network: IpAddr,
    pub prefix: u8,
}

impl IpBlock {
    pub fn contains(&self, address: IpAddr) -> bool {
        fn masked(bits: u128, width: u8, prefix: u8) -> u128 {
            let keep = u32::from(prefix.min(width));
            if keep == 0 {
                return 0;
            }
            let shift = u32::from(width) - keep;
            bits >> shift
        }
        match (self.network, canonical(address)) {
            (IpAddr::V4(net), IpAddr::V4(addr)) => {
                masked(u128::from(u32::from(net)), 32, self.prefix)
                    == masked(u128::from(u32::from(addr)), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(addr)) => {
                masked(u128::from(net), 128, self.prefix) == masked(u128::from(addr), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// An IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`, as a dual-stack socket reports it) is
/// the IPv4 address.
pub fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

impl TrustedProxies {
    pub fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|block| block.contains(address))
    }
}

/// Parses `10.0.0.0/8, 192.168.1.7, ::1` (empty: none).
pub fn parse_trusted_proxies(text: &str) -> Result<TrustedProxies, String> {
    let blocks = text
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (address, prefix) = match part.split_once('/') {
                Some((address, prefix)) => (address, Some(prefix)),
                None => (part, None),
            };
            let network: IpAddr = address
                .trim()
                .parse()
                .map_err(|_| format!("`{part}` is not an IP address or CIDR block"))?;
            let network = canonical(network);
            let width = if network.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                None => width,
                Some(prefix) => prefix
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= width)
                    .ok_or_else(|| format!("`{part}`: the prefix length must be 0–{width}"))?,
            };
            Ok(IpBlock { network, prefix })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(TrustedProxies(blocks))
}

/// Parses `90s`, `15m`, `1h`, `7d`, `250ms` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 90s, 15m, 1h or 7d"))?;
    let seconds = match unit {
        "ms" => return Ok(Duration::from_millis(value)),
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        other => return Err(format!("unknown duration unit `{other}` (use ms, s, m, h or d)")),
    };
    value
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7_200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn backoffs_parse_as_lists_of_durations() {
        let backoff = parse_backoff("30s, 2m,10m").unwrap();
        assert_eq!(backoff.max_attempts(), 4);
        assert_eq!(backoff.after(1), Some(Duration::from_secs(30)));
        assert_eq!(backoff.after(3), Some(Duration::from_secs(600)));
        assert_eq!(backoff.after(4), None);
        assert_eq!(parse_backoff("").unwrap().max_attempts(), 1);
        assert!(parse_backoff("30s,soon").is_err());
    }

    #[test]
    fn rates_parse_as_count_per_period() {
        assert_eq!(parse_rate("10/15m"), Ok(Rate::new(10, Duration::from_secs(900))));
        assert_eq!(parse_rate(" 5 / 1s"), Ok(Rate::new(5, Duration::from_secs(1))));
        assert!(parse_rate("0/1m").is_err());
        assert!(parse_rate("10/0s").is_err());
        assert!(parse_rate("10").is_err());
        assert!(parse_rate("ten/1m").is_err());
    }

    #[test]
    fn role_budgets_override_the_defaults_one_by_one() {
        let defaults = parse_role_budgets("").unwrap();
        assert_eq!(defaults.viewer, 5_000);
        assert_eq!(defaults.super_admin, 20_000);
        let budgets = parse_role_budgets("viewer=5, SUPER_ADMIN=7").unwrap();
        assert_eq!((budgets.viewer, budgets.super_admin, budgets.admin), (5, 7, 10_000));
        assert!(parse_role_budgets("owner=5").is_err());
        assert!(parse_role_budgets("viewer=0").is_err());
        assert!(parse_role_budgets("viewer").is_err());
    }

    #[test]
    fn trusted_proxies_match_addresses_and_blocks() {
        let proxies = parse_trusted_proxies("10.0.0.0/8, 192.168.1.7, ::1, 2001:db8::/32").unwrap();
        let trusts = |a: &str| proxies.trusts(a.parse().unwrap());
        assert!(trusts("10.1.2.3"));
        assert!(!trusts("11.0.0.1"));
        assert!(trusts("192.168.1.7"));
        assert!(!trusts("192.168.1.8"));
        assert!(trusts("::1"));
        assert!(trusts("2001:db8:1::5"));
        assert!(!trusts("2001:db9::5"));
        // A dual-stack socket reports IPv4 peers as mapped IPv6 addresses.
        assert!(trusts("::ffff:10.9.9.9"));
        assert!(parse_trusted_proxies("").unwrap().0.is_empty());
        assert!(parse_trusted_proxies("0.0.0.0/0")
            .unwrap()
            .trusts("8.8.8.8".parse().unwrap()));
        assert!(parse_trusted_proxies("10.0.0.0/33").is_err());
        assert!(parse_trusted_proxies("proxy.local").is_err());
    }

    #[test]
    fn origins_are_checked_and_normalised() {
        assert_eq!(
            parse_origin("https://Wall.Example.com/"),
            Ok("https://wall.example.com".to_owned())
        );
        assert_eq!(
            parse_origin("http://127.0.0.1:3000"),
            Ok("http://127.0.0.1:3000".to_owned())
        );
        assert_eq!(parse_origin("*"), Ok("*".to_owned()));
        assert!(parse_origin("wall.example.com").is_err());
        assert!(parse_origin("https://wall.example.com/app").is_err());
        assert!(parse_origin("ftp://wall.example.com").is_err());
    }

    #[test]
    fn production_refuses_missing_or_weak_secrets_and_open_cors() {
        let mut settings = Settings::for_database("postgres://db.internal/omnivox");
        settings.jwt_secret = None;
        assert!(settings.production_problems().is_empty(), "development accepts it");
        settings.environment = Environment::Production;
        let problems = settings.production_problems();
        assert!(
            problems.iter().any(|p| p.contains("OMNIVOX_JWT_SECRET is required")),
            "{problems:?}"
        );
        settings.jwt_secret = Some("a".repeat(40));
        assert!(settings.production_problems().iter().any(|p| p.contains("repetitive")));
        settings.jwt_secret = Some("0123456789abcdefghijklmnopqrstuvwxyzABCD".to_owned());
        assert!(settings
            .production_problems()
            .iter()
            .any(|p| p.contains("OMNIVOX_APP_DATABASE_URL")));
        settings.app_database_url = Some("postgres://omnivox_app:s3cret@db.internal/omnivox".to_owned());
        assert!(settings.production_problems().is_empty());
        settings.cors_allowed_origins = vec!["*".to_owned()];
        assert!(settings.production_problems().iter().any(|p| p.contains("CORS")));
        settings.cors_allowed_origins = vec!["https://wall.example.com".to_owned()];
        settings.database_url = DEFAULT_DATABASE_URL.to_owned();
        assert!(settings
            .production_problems()
            .iter()
            .any(|p| p.contains("DATABASE_URL")));
    }

    #[test]
    fn the_application_connects_as_its_own_role() {
        let mut settings = Settings::for_database("postgres://owner:pw@db.internal:5433/omnivox");
        settings.app_database_url = None;
        assert_eq!(
            settings.app_database_url().ok(),
            Some("postgres://omnivox_app@db.internal:5433/omnivox".to_owned())
        );
        settings.database_read_url = Some("postgres://owner:pw@replica.internal/omnivox".to_owned());
        assert_eq!(
            settings.app_read_url().ok(),
            Some(Some("postgres://omnivox_app@replica.internal/omnivox".to_owned()))
        );
        settings.app_database_url = Some("postgres://app_login:s3cret@db.internal/omnivox".to_owned());
        assert_eq!(
            settings.app_read_url().ok(),
            Some(Some("postgres://app_login:s3cret@replica.internal/omnivox".to_owned()))
        );
        settings.database_url = "not a url".to_owned();
        settings.app_database_url = None;
        assert!(settings.app_database_url().is_err());
    }

    #[test]
    fn public_base_urls_are_checked() {
        assert_eq!(
            parse_public_base_url("https://cc.example.com/"),
            Ok("https://cc.example.com".to_owned())
        );
        assert_eq!(
            parse_public_base_url("https://cc.example.com:443/omnivox"),
            Ok("https://cc.example.com:443/omnivox".to_owned())
        );
        assert!(parse_public_base_url("cc.example.com").is_err());
        assert!(parse_public_base_url("ftp://cc.example.com").is_err());
        assert!(parse_public_base_url("https://cc.example.com/?a=1").is_err());
    }
}

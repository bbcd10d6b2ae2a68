//! Omnivox: the backend of a contact-centre dialler platform.
//!
//! The crate is a library with a thin binary (`src/main.rs`) so that tests and examples drive
//! the whole application in-process through [`http::app`].
//!
//! Module map, by layer from the top down. A module uses only modules of its own layer or below
//! (`tests/layering.rs` fails the suite on an import from above):
//!
//! * [`cli`]      — the subcommands of the `omnivox` binary and their flags.
//! * [`http`]     — the axum router: GraphQL over HTTP and WebSocket, webhooks, health.
//! * [`graphql`]  — the schema, one module per domain; resolvers stay thin. Its `context` is
//!   what every resolver reads (state, caller, tenant, ids); its `guards` guard fields.
//! * [`seed`]     — seeded organizations: the idempotent demo and synthetic traffic at scale
//!   (`omnivox seed --calls …`, bulk-loaded through the KPI writer), both simulated by one
//!   model of a contact-centre day (`seed::sim`); the demo's live simulator (`seed::live`)
//!   plays further days of it through the ingest and presence services.
//! * [`access`], [`ingest`], [`management`] — the services: authentication and tenancy against
//!   the database; telephony ingest (Twilio webhooks, call events, the call lifecycle); the
//!   rules of the management surface (settings, users and invitations, presence, API keys,
//!   coaching, organizations).
//! * [`reports`]  — saved reports (stored analytics queries with a range and a presentation),
//!   their templates, results and CSV, JSON, XLSX and PDF exports, all answered by the one
//!   analytics engine.
//! * [`dashboards`] — saved, shareable layouts of KPI widgets, their values (computed by the
//!   direct queries' own service functions) and `dashboardUpdated`, whose computations are
//!   shared through the `liveKpis` registry.
//! * [`state`]    — [`state::AppState`]: database pool, token keys, bus, configuration, and the
//!   process lifecycle (draining, work in flight) that a graceful shutdown waits on.
//! * [`limits`]   — rate limits: budgets charged by query cost per user, API key and client
//!   address (by role), strict `login`/`refreshSession` buckets, webhooks per organization;
//!   GCRA buckets shared through one atomic Redis script, in memory when Redis is absent or
//!   down; [`limits::record_denial`] logs every refusal a charge decided (repeats of a refused
//!   request are tallied and held instead).
//! * [`realtime`] — the event bus and its typed events, which carry "something changed" to
//!   subscriptions; live agent boards and KPI tiles; the subscriptions' state machines.
//! * [`kpi`]      — metrics, rollups and their one writer (row by row and bulk), the windows
//!   planner, analytics.
//! * [`audit`]    — the hash-chained, append-only audit writer and its verifier.
//! * [`db`]       — pool, migrations, the diesel schema and the queries of the tables it owns
//!   (the KPI engine's own SQL lives in [`kpi`]).
//! * [`auth`], [`telemetry`] — pure authentication (roles, JWTs, passwords, the [`auth::Tenant`]
//!   handle); logging.
//! * [`domain`], [`config`] — the closed sets of the domain (directions, outcomes, presences…)
//!   and call events; every setting, from flags or environment.
//! * [`error`]    — [`error::AppError`], the one error type at the boundary.

pub mod access;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod dashboards;
pub mod db;
pub mod domain;
pub mod error;
pub mod graphql;
pub mod http;
pub mod ingest;
pub mod kpi;
pub mod limits;
pub mod management;
pub mod realtime;
pub mod reports;
pub mod seed;
pub mod state;
pub mod telemetry;

pub use error::{AppError, AppResult};
pub use state::AppState;

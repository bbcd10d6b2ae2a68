//! Omnivox: the backend of a contact-centre dialler platform.
//!
//! The crate is a library with a thin binary (`src/main.rs`) so that tests and examples drive
//! the whole application in-process through [`http::app`]. Module map:
//!
//! * [`config`]  — every setting, from flags or environment, with named defaults.
//! * [`state`]   — [`state::AppState`]: database pool, token keys, bus, configuration.
//! * [`http`]    — the axum router: GraphQL over HTTP and WebSocket, health, middleware.
//! * [`graphql`] — the schema, built from one module per domain; resolvers stay thin.
//! * [`auth`]    — roles, permissions, guards, JWTs, passwords, the per-request principal.
//! * [`db`]      — pool, migrations, the diesel schema and every SQL query.
//! * [`audit`]   — the hash-chained, append-only audit writer and its verifier.
//! * [`ingest`]  — telephony ingest: Twilio webhooks, call events, the call lifecycle.
//! * [`realtime`] — the event bus that carries "something changed" to subscriptions.
//! * [`seed`]    — the idempotent demo organization.
//! * [`management`] — the rules of the management surface (settings, users).
//! * [`cli`]     — the subcommands of the `omnivox` binary.
//! * [`error`]   — [`error::AppError`], the one error type at the boundary.

pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod graphql;
pub mod http;
pub mod ingest;
pub mod kpi;
pub mod management;
pub mod realtime;
pub mod seed;
pub mod state;
pub mod telemetry;

pub use error::{AppError, AppResult};
pub use state::AppState;

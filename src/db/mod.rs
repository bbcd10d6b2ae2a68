//! The data layer: connection pool, migrations, the diesel schema, and the queries of every
//! table but the KPI engine's. The rollup tables and the SQL over facts that must agree with
//! them number for number (window aggregates, raw edges, re-statements, COPY loads) live with
//! their one writer in [`crate::kpi`] (`query`, `facts`, `writer`); the audit chain's statements
//! live with its hashing in [`crate::audit`]. Everything else goes through a module here.
//!
//! Tenant data is only reachable through functions that take a [`crate::auth::Tenant`], the
//! one handle that names an organization the caller may act on (see `access::tenant`).

pub mod agents;
pub mod api_keys;
pub mod cached_sql;
pub mod calls;
pub mod catalog;
pub mod coaching;
pub mod contact_centre;
pub mod dashboards;
pub mod interactions;
pub mod models;
pub mod orgs;
pub mod presence;
pub mod reads;
pub mod report_deliveries;
pub mod report_runs;
pub mod report_schedules;
pub mod reports;
pub mod schema;
pub mod statements;
pub mod teams;
pub mod tenancy;
pub mod tokens;
pub mod user_tokens;
pub mod users;

use std::time::Duration;

use diesel::ConnectionError;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use futures_util::FutureExt;

use crate::error::{AppError, AppResult};

pub type DbPool = Pool<AsyncPgConnection>;
pub type DbConn = Object<AsyncPgConnection>;

/// The migrations compiled into the binary, so `omnivox serve` can bring any database up to date.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// How many migrations the binary carries.
pub fn migration_count() -> usize {
    diesel::migration::MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS).map_or(0, |m| m.len())
}

/// Builds the pool. Every connection gets a `statement_timeout`, and waiting for a connection is
/// bounded, so an exhausted pool answers UNAVAILABLE instead of hanging the request.
///
/// JIT compilation is switched off: the planner cannot estimate row counts of the time
/// windows bound as arrays, so a read of a few raw calls at the edge of an interval can look
/// like a million rows and pay ~0.5 s of LLVM compilation for a sub-millisecond query. The
/// API's statements are short; the rollups are what makes them fast.
pub fn build_pool(
    database_url: &str,
    max_size: usize,
    wait_timeout: Duration,
    statement_timeout: Duration,
) -> AppResult<DbPool> {
    build_pool_with(
        database_url,
        max_size,
        wait_timeout,
        statement_timeout,
        RecyclingMethod::Verified,
    )
}

/// The application's pool ([`tenancy::TenantPool`]): the same connections, checked out
/// without the liveness query, because every checkout writes the tenant setting first and
/// that write is the check.
pub fn build_tenant_pool(
    database_url: &str,
    max_size: usize,
    wait_timeout: Duration,
    statement_timeout: Duration,
) -> AppResult<tenancy::TenantPool> {
    build_pool_with(
        database_url,
        max_size,
        wait_timeout,
        statement_timeout,
        RecyclingMethod::Fast,
    )
    .map(tenancy::TenantPool::new)
}

fn build_pool_with(
    database_url: &str,
    max_size: usize,
    wait_timeout: Duration,
    statement_timeout: Duration,
    recycling: RecyclingMethod<AsyncPgConnection>,
) -> AppResult<DbPool> {
    let statement_ms = statement_timeout.as_millis();
    let mut manager_config = ManagerConfig::<AsyncPgConnection>::default();
    manager_config.recycling_method = recycling;
    manager_config.custom_setup = Box::new(move |url| {
        let url = url.to_owned();
        async move {
            let mut conn = AsyncPgConnection::establish(&url).await?;
            conn.batch_execute(&format!(
                "SET statement_timeout = {statement_ms}; SET TIME ZONE 'UTC'; SET jit = off"
            ))
            .await
            .map_err(ConnectionError::CouldntSetupConfiguration)?;
            // Counted from here on: the setup above is not a statement of any request.
            conn.set_instrumentation(statements::instrumentation(&url));
            Ok(conn)
        }
        .boxed()
    });
    let manager = AsyncDieselConnectionManager::new_with_config(database_url, manager_config);
    Pool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(wait_timeout))
        .create_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| AppError::internal(format!("building the database pool: {e}")))
}

pub async fn conn(pool: &DbPool) -> AppResult<DbConn> {
    Ok(pool.get().await?)
}

/// Splits a PostgreSQL URL into (URL of the server's `postgres` database, database name).
fn maintenance_url(database_url: &str) -> AppResult<(String, String)> {
    let mut url = url::Url::parse(database_url).map_err(|_| AppError::bad_input("DATABASE_URL is not a valid URL"))?;
    let name = url.path().trim_start_matches('/').to_owned();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(AppError::bad_input(
            "DATABASE_URL must name a database made of letters, digits, '_' or '-'",
        ));
    }
    url.set_path("/postgres");
    Ok((url.to_string(), name))
}

/// Creates the database named in `database_url` when it does not exist yet.
pub async fn create_database_if_missing(database_url: &str) -> AppResult<()> {
    if AsyncPgConnection::establish(database_url).await.is_ok() {
        return Ok(());
    }
    let (admin_url, name) = maintenance_url(database_url)?;
    let mut admin = AsyncPgConnection::establish(&admin_url)
        .await
        .map_err(|e| AppError::Unavailable(format!("cannot reach PostgreSQL: {e}")))?;
    #[derive(diesel::QueryableByName)]
    struct Exists {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        exists: bool,
    }
    let found: Exists = diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS exists")
        .bind::<diesel::sql_types::Text, _>(&name)
        .get_result(&mut admin)
        .await?;
    if !found.exists {
        // The name was checked to hold only [A-Za-z0-9_-]; it is quoted as an identifier.
        match admin.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await {
            Ok(()) => tracing::info!(database = %name, "created database"),
            // Another instance created it between our check and our CREATE.
            Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {}
            Err(e) if e.to_string().contains("already exists") => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Applies every pending migration; returns the versions applied.
pub async fn run_migrations(database_url: &str) -> AppResult<Vec<String>> {
    let conn = AsyncPgConnection::establish(database_url)
        .await
        .map_err(|e| AppError::Unavailable(format!("cannot reach PostgreSQL: {e}")))?;
    // The harness blocks in place (it wraps diesel's sync migration runner), so it runs on a
    // blocking thread rather than stalling a runtime worker.
    tokio::task::spawn_blocking(move || {
        let mut harness = diesel_async::AsyncMigrationHarness::new(conn);
        harness
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect())
            .map_err(|e| AppError::internal(format!("migration failed: {e}")))
    })
    .await
    .map_err(|e| AppError::internal(format!("migration task: {e}")))?
}

/// Reverts the most recent migration; returns its version.
pub async fn revert_last_migration(database_url: &str) -> AppResult<String> {
    let conn = AsyncPgConnection::establish(database_url)
        .await
        .map_err(|e| AppError::Unavailable(format!("cannot reach PostgreSQL: {e}")))?;
    tokio::task::spawn_blocking(move || {
        let mut harness = diesel_async::AsyncMigrationHarness::new(conn);
        harness
            .revert_last_migration(MIGRATIONS)
            .map(|v| v.to_string())
            .map_err(|e| AppError::internal(format!("revert failed: {e}")))
    })
    .await
    .map_err(|e| AppError::internal(format!("migration task: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maintenance_url_swaps_the_database() {
        let (url, name) = maintenance_url("postgres://postgres@127.0.0.1:5432/omnivox").unwrap_or_default();
        assert_eq!(url, "postgres://postgres@127.0.0.1:5432/postgres");
        assert_eq!(name, "omnivox");
        assert!(maintenance_url("postgres://h/bad;name").is_err());
        assert!(maintenance_url("postgres://h/").is_err());
    }
}

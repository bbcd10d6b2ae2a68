//! Application state shared by every request: pools, keys, bus, configuration, and the
//! process's lifecycle (draining, work in flight: [`lifecycle`]).

pub mod audit_queue;
pub mod lifecycle;

use std::sync::Arc;
use std::time::Duration;

use crate::auth::jwt::JwtKeys;
use crate::auth::principal::UserCache;
use crate::config::Settings;
use crate::db;
use crate::db::reads::ReadPools;
use crate::db::tenancy::{SystemPool, TenantPool};
use crate::error::{AppError, AppResult};
use crate::realtime::Bus;
pub use lifecycle::{Lifecycle, WorkGuard};

/// Cheap to clone: every field is a handle.
#[derive(Clone)]
pub struct AppState {
    /// The application's pool: every checkout acts for one organization, and PostgreSQL's
    /// row-level security holds it to that organization's rows (`db::tenancy`).
    pub db: TenantPool,
    /// The tables' owner, for the cross-tenant paths `db::tenancy` lists, and nothing else.
    pub system_db: SystemPool,
    /// Where KPI, analytics and compliance reads go: the read replica when configured and up,
    /// else `db` (see `db::reads`).
    pub reads: ReadPools,
    pub settings: Arc<Settings>,
    pub jwt: Arc<JwtKeys>,
    pub user_cache: Arc<UserCache>,
    pub bus: Bus,
    /// Live agent boards, one per organization with `agentStates` subscribers.
    pub boards: Arc<crate::realtime::agents::Boards>,
    /// Shared live KPI computations, one per (organization, filter) with subscribers.
    pub live: Arc<crate::realtime::live::LiveRegistry>,
    /// Shared dashboard widget computations, one per (organization, distinct widget query)
    /// with viewers, across every dashboard (the same registry code as `live`).
    pub widgets: Arc<crate::realtime::live::QueryRegistry>,
    /// Present when `REDIS_URL` is set.
    pub redis: Option<redis::Client>,
    /// Rate limits (buckets in Redis when configured, else in memory).
    pub limiter: Arc<crate::limits::Limiter>,
    /// Draining or not, and the work that must finish before the process exits.
    pub lifecycle: Lifecycle,
    /// Denied accesses on their way to the audit trail (batched, off the request path).
    pub audit_queue: Arc<audit_queue::AuditQueue>,
    /// Wakes this instance's report-run worker when a run is queued here (other instances
    /// find it on their next poll).
    pub report_runs_queued: Arc<tokio::sync::Notify>,
}

impl AppState {
    /// Builds the state from settings. Does not touch the database (see [`db::run_migrations`]).
    pub fn new(settings: Settings) -> AppResult<Self> {
        // Before anything records an event: the process's metrics recorder.
        crate::telemetry::metrics::handle();
        let problems = settings.production_problems();
        if !problems.is_empty() {
            return Err(AppError::bad_input(format!(
                "refusing to start with OMNIVOX_ENV=production: {}",
                problems.join("; ")
            )));
        }
        if settings.cors_allowed_origins.iter().any(|origin| origin == "*") {
            tracing::warn!("OMNIVOX_CORS_ALLOWED_ORIGINS=*: every web site may call this API from a browser");
        }
        let (jwt, generated) = JwtKeys::from_settings(&settings)?;
        if generated {
            tracing::warn!(
                "OMNIVOX_JWT_SECRET is not set: using a random secret for this process only. \
                 Tokens will not survive a restart nor work across instances. Set it in production."
            );
        }
        // Requests go through the application's role, which row-level security restricts;
        // the owner's small pool serves the cross-tenant paths (`db::tenancy`).
        let pool = db::build_tenant_pool(
            &settings.app_database_url()?,
            settings.db_pool_size,
            settings.db_wait_timeout,
            settings.db_statement_timeout,
        )?;
        let system_db = SystemPool::new(db::build_pool(
            &settings.database_url,
            (settings.db_pool_size / 4).max(2),
            settings.db_wait_timeout,
            settings.db_statement_timeout,
        )?);
        let reads = match settings.app_read_url()? {
            Some(url) => {
                tracing::info!("KPI, analytics and compliance reads: read replica, primary as fallback");
                let replica = db::build_tenant_pool(
                    &url,
                    settings.db_pool_size,
                    settings.db_wait_timeout,
                    settings.db_statement_timeout,
                )?;
                ReadPools::with_replica(pool.clone(), replica)
            }
            None => ReadPools::primary_only(pool.clone()),
        };
        let redis = settings
            .redis_url
            .as_deref()
            .map(redis::Client::open)
            .transpose()
            .map_err(|_| AppError::bad_input("REDIS_URL is not a valid Redis URL"))?;
        let bus = match &redis {
            Some(client) => {
                tracing::info!(prefix = %settings.redis_prefix, "event bus: Redis pub/sub");
                Bus::redis(client.clone(), &settings.redis_prefix)?
            }
            None => {
                tracing::info!("REDIS_URL is not set: events use the in-process bus (single instance only)");
                Bus::in_process()
            }
        };
        let limiter = Arc::new(crate::limits::Limiter::new(&settings, redis.clone()));
        let lifecycle = Lifecycle::default();
        let audit_queue = Arc::new(audit_queue::AuditQueue::new(system_db.clone(), lifecycle.clone()));
        Ok(Self {
            audit_queue,
            db: pool,
            system_db,
            reads,
            settings: Arc::new(settings),
            jwt: Arc::new(jwt),
            user_cache: Arc::new(UserCache::default()),
            bus,
            boards: Arc::default(),
            live: Arc::default(),
            widgets: Arc::default(),
            redis,
            limiter,
            lifecycle,
            report_runs_queued: Arc::default(),
        })
    }

    /// Redis health: None when not configured, else whether it answered PING within a second.
    pub async fn redis_ready(&self) -> Option<bool> {
        let client = self.redis.as_ref()?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)));
        let ok = match client.get_multiplexed_async_connection_with_config(&config).await {
            Ok(mut conn) => redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok(),
            Err(_) => false,
        };
        Some(ok)
    }
}

//! Where the heavy reads go: KPI, analytics and compliance queries may be answered by a
//! streaming read replica (`--database-read-url`), so that BI tools and dashboards do not
//! compete with ingest for the primary.
//!
//! The replica is an optimisation, never a dependency: when none is configured, or it does not
//! hand out a connection (down, unreachable, pool exhausted), the read is served by the primary
//! and the replica is skipped for [`REPLICA_RETRY_AFTER`], so a dead replica costs one failed
//! attempt per interval rather than one per request.
//!
//! What a replica read gives up is read-your-writes: an event acknowledged by the primary is
//! visible on the replica only after it has been replayed (milliseconds on a healthy pair; the
//! lag is on `/readyz`). Everything that must see the latest commit stays on the primary:
//! ingest and its validation, mutations, authentication, and the live computations
//! (`liveKpis`, agent boards), which recompute right after a commit was announced on the bus
//! and would otherwise push a value that misses it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::sql_types::{Double, Nullable};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

use crate::auth::Tenant;
use crate::db::tenancy::{TenantConn, TenantPool};
use crate::error::AppResult;

/// How long a replica that failed to hand out a connection is skipped.
pub const REPLICA_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Where a read was served from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadSource {
    Replica,
    Primary,
}

struct Replica {
    pool: TenantPool,
    /// Milliseconds since the UNIX epoch until which the replica is skipped (0: use it).
    skipped_until_ms: AtomicU64,
}

/// The pools reads are served from: the primary, and the replica when configured.
#[derive(Clone)]
pub struct ReadPools {
    primary: TenantPool,
    replica: Option<Arc<Replica>>,
}

/// What `/readyz` says of the replica.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReplicaHealth {
    NotConfigured,
    Down,
    /// Up, with the age of the last replayed transaction in seconds (None: nothing replayed
    /// yet, or the server is not in recovery, i.e. not a replica at all).
    Up {
        lag_seconds: Option<f64>,
    },
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[derive(QueryableByName)]
struct LagRow {
    #[diesel(sql_type = Nullable<Double>)]
    lag_seconds: Option<f64>,
}

impl ReadPools {
    /// Reads from the primary only.
    pub fn primary_only(primary: TenantPool) -> Self {
        Self { primary, replica: None }
    }

    /// Reads from `replica` while it answers, else from `primary`.
    pub fn with_replica(primary: TenantPool, replica: TenantPool) -> Self {
        Self {
            primary,
            replica: Some(Arc::new(Replica {
                pool: replica,
                skipped_until_ms: AtomicU64::new(0),
            })),
        }
    }

    /// A connection acting for `tenant`, for a read that may lag behind the primary, the pool
    /// it came from (for a second connection from the same server) and where it is.
    pub async fn conn(&self, tenant: &Tenant) -> AppResult<(TenantConn, &TenantPool, ReadSource)> {
        if let Some(replica) = &self.replica {
            if AtomicU64::load(&replica.skipped_until_ms, Ordering::Relaxed) <= now_ms() {
                match replica.pool.get(tenant).await {
                    Ok(conn) => return Ok((conn, &replica.pool, ReadSource::Replica)),
                    Err(error) => {
                        let retry = u64::try_from(REPLICA_RETRY_AFTER.as_millis()).unwrap_or(u64::MAX);
                        replica
                            .skipped_until_ms
                            .store(now_ms().saturating_add(retry), Ordering::Relaxed);
                        tracing::warn!(
                            error = %error.operator_message(),
                            retry_after_s = REPLICA_RETRY_AFTER.as_secs(),
                            "read replica unavailable: reading from the primary"
                        );
                    }
                }
            }
        }
        Ok((self.primary.get(tenant).await?, &self.primary, ReadSource::Primary))
    }

    /// The replica's state for `/readyz` (never marks it skipped: a probe is not a read).
    pub async fn replica_health(&self) -> ReplicaHealth {
        let Some(replica) = &self.replica else {
            return ReplicaHealth::NotConfigured;
        };
        let Ok(mut conn) = replica.pool.get_without_tenant().await else {
            return ReplicaHealth::Down;
        };
        let lag: Result<LagRow, _> = diesel::sql_query(
            "SELECT CASE WHEN pg_is_in_recovery()
                    THEN EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8 END AS lag_seconds",
        )
        .get_result(&mut conn)
        .await;
        match lag {
            Ok(row) => ReplicaHealth::Up {
                lag_seconds: row.lag_seconds,
            },
            Err(_) => ReplicaHealth::Down,
        }
    }
}

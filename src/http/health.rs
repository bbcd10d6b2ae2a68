//! Liveness and readiness probes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::db::reads::ReplicaHealth;
use crate::http::HttpState;
use crate::limits::StoreStatus;

/// The process is up.
pub async fn livez() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready to serve: 503 when PostgreSQL does not answer, and 503 "draining" from the moment a
/// shutdown began (so load balancers stop sending before the instance goes). When Redis is
/// configured but down the answer is 200 "degraded": queries and mutations still work
/// (Postgres is the truth), only cross-instance live events are impaired, so the instance
/// should stay in rotation. A read replica that is down does not change the status either (its
/// reads fall back to the primary); its state and replay lag are reported. So is where the
/// rate limits keep their buckets (`rateLimits`): `redis` (shared by every instance),
/// `memory` (this instance alone, with the reason: Redis not configured or down), or `off`.
pub async fn readyz(State(state): State<HttpState>) -> (StatusCode, Json<Value>) {
    if state.app.lifecycle.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "draining" })));
    }
    let postgres = state.app.db.ping().await;
    let redis = state.app.redis_ready().await;
    let redis_text = match redis {
        None => "not_configured",
        Some(true) => "up",
        Some(false) => "down",
    };
    let replica = match state.app.reads.replica_health().await {
        ReplicaHealth::NotConfigured => json!({ "status": "not_configured" }),
        ReplicaHealth::Down => json!({ "status": "down", "readsFrom": "primary" }),
        ReplicaHealth::Up { lag_seconds } => json!({ "status": "up", "lagSeconds": lag_seconds }),
    };
    let limits = state.app.limiter.status();
    // Redis that does not answer PING now takes the next charges to memory too.
    let rate_limits = match (limits, redis) {
        (StoreStatus::Off, _) => json!({ "store": "off" }),
        (StoreStatus::MemoryNoRedis, _) => json!({ "store": "memory", "reason": "redis_not_configured" }),
        (StoreStatus::MemoryRedisDown, _) | (_, Some(false)) => json!({ "store": "memory", "reason": "redis_down" }),
        (StoreStatus::Redis, _) => json!({ "store": "redis" }),
    };
    let (status, text) = match (postgres, redis) {
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        (true, Some(false)) => (StatusCode::OK, "degraded"),
        (true, _) => (StatusCode::OK, "ready"),
    };
    (
        status,
        Json(json!({
            "status": text,
            "postgres": if postgres { "up" } else { "down" },
            "redis": redis_text,
            "replica": replica,
            "rateLimits": rate_limits,
        })),
    )
}

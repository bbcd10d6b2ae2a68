//! Liveness and readiness probes.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::db;
use crate::http::HttpState;

/// The process is up.
pub async fn livez() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready to serve: 503 when PostgreSQL does not answer. When Redis is configured but down the
/// answer is 200 "degraded": queries and mutations still work (Postgres is the truth), only
/// cross-instance live events are impaired, so the instance should stay in rotation.
pub async fn readyz(State(state): State<HttpState>) -> (StatusCode, Json<Value>) {
    let postgres = db::ping(&state.app.db).await;
    let redis = state.app.redis_ready().await;
    let redis_text = match redis {
        None => "not_configured",
        Some(true) => "up",
        Some(false) => "down",
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
        })),
    )
}

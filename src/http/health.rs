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

/// Ready to serve: 503 when PostgreSQL does not answer, and 503 "draining" from the moment a
/// shutdown began (so load balancers stop sending before the instance goes). When Redis is
/// configured but down the answer is 200 "degraded": queries and mutations still work
/// (Postgres is the truth), only cross-instance live events are impaired, so the instance
/// should stay in rotation.
pub async fn readyz(State(state): State<HttpState>) -> (StatusCode, Json<Value>) {
    if state.app.lifecycle.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "draining" })));
    }
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

/// Counters of the real-time layer in the Prometheus text format: the event bus, the shared
/// live computations. Only process-wide counts — no tenant data — so it needs no credentials;
/// expose it to the monitoring network only.
pub async fn metrics(State(state): State<HttpState>) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    let bus = state.app.bus.stats();
    let lines = [
        format!("omnivox_bus_redis_mode {}", u8::from(bus.mode == "redis")),
        format!("omnivox_bus_connected {}", u8::from(bus.connected)),
        format!("omnivox_bus_reconnects_total {}", bus.reconnects),
        format!("omnivox_bus_published_total {}", bus.published),
        format!("omnivox_bus_publish_failures_total {}", bus.publish_failures),
        format!("omnivox_bus_received_total {}", bus.received),
        format!(
            "omnivox_live_kpi_recomputes_total {}",
            crate::realtime::live::recomputes()
        ),
        format!("omnivox_live_kpi_computations {}", state.app.live.len()),
        format!("omnivox_live_agent_boards {}", state.app.boards.len()),
        format!("omnivox_ws_shared_streams {}", state.shared.len()),
        format!("omnivox_ws_shared_renders_total {}", state.shared.renders()),
        format!("omnivox_ws_shared_deliveries_total {}", state.shared.deliveries()),
    ];
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        lines.join("\n") + "\n",
    )
}

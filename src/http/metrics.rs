//! `GET /metrics` (Prometheus) and the middleware that counts every HTTP request.
//!
//! The process's event series come from `telemetry::metrics`; this module adds, at each scrape,
//! the state of this app: event bus, database pool, live computations and shared streams. Only
//! process-wide counts — no tenant data — so it needs no credentials; expose it to the
//! monitoring network only.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{counter, gauge};

use crate::http::HttpState;
use crate::telemetry::metrics as telemetry;

/// Counts the request under its route template (bounded: never the raw path).
pub async fn track_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    telemetry::http_request(method, &route, response.status().as_u16(), started.elapsed());
    response
}

/// The standard methods by name; any other (clients may send any token) as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// `GET /metrics`: the Prometheus text exposition format.
pub async fn metrics(State(state): State<HttpState>) -> Response {
    let text = telemetry::render(|| record_state(&state));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// This app's state, read now (names are part of the README's list).
fn record_state(state: &HttpState) {
    let bus = state.app.bus.stats();
    gauge!("omnivox_bus_redis_mode").set(f64::from(u8::from(bus.mode == "redis")));
    gauge!("omnivox_bus_connected").set(f64::from(u8::from(bus.connected)));
    counter!("omnivox_bus_reconnects_total").absolute(bus.reconnects);
    counter!("omnivox_bus_published_total").absolute(bus.published);
    counter!("omnivox_bus_publish_failures_total").absolute(bus.publish_failures);
    counter!("omnivox_bus_received_total").absolute(bus.received);

    let pool = state.app.db.status();
    let in_use = pool.size.saturating_sub(pool.available);
    gauge!("omnivox_db_pool_connections", "state" => "in_use").set(in_use as f64);
    gauge!("omnivox_db_pool_connections", "state" => "idle").set(pool.available as f64);
    gauge!("omnivox_db_pool_max_connections").set(pool.max_size as f64);
    gauge!("omnivox_db_pool_waiting").set(pool.waiting as f64);

    let decisions = state.app.limiter.decisions();
    for (decided, count) in [
        ("local", decisions.local),
        ("redis", decisions.redis),
        ("memory", decisions.memory),
    ] {
        counter!("omnivox_rate_limit_decisions_total", "decided" => decided).absolute(count);
    }
    counter!("omnivox_rate_limit_overdrawn_total").absolute(decisions.overdrawn);

    counter!("omnivox_live_kpi_recomputes_total").absolute(crate::realtime::live::recomputes());
    gauge!("omnivox_live_kpi_computations").set(state.app.live.len() as f64);
    gauge!("omnivox_live_agent_boards").set(state.app.boards.len() as f64);
    gauge!("omnivox_ws_shared_streams").set(state.shared.len() as f64);
    counter!("omnivox_ws_shared_renders_total").absolute(state.shared.renders());
    counter!("omnivox_ws_shared_deliveries_total").absolute(state.shared.deliveries());
}

//! The HTTP surface: GraphQL over HTTP (POST, and GET for queries) and WebSocket on
//! `/graphql`, GraphiQL, report exports (`/api/reports/…`), the history import upload
//! (`/api/import/calls`), the built-in wallboard page,
//! health probes, Prometheus metrics, and the middleware every request passes through
//! (request id, tracing, metrics, body limit, timeout, security headers and CORS: see
//! [`security`]).

pub mod client_addr;
pub mod denials;
pub mod errors;
pub mod exports;
pub mod file_routes;
pub mod graphql;
pub mod health;
pub mod import;
pub mod metrics;
pub mod reports;
pub mod security;
pub mod wallboard;
pub mod webhooks;
pub mod ws;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::graphql::{build_schema, OmnivoxSchema};
use crate::state::AppState;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// What every handler can reach.
#[derive(Clone)]
pub struct HttpState {
    pub app: AppState,
    pub schema: OmnivoxSchema,
    /// Subscriptions rendered once for every socket that shares them.
    pub shared: std::sync::Arc<ws::SharedStreams>,
}

/// The whole application as a router, so tests and examples can serve it on any listener.
pub fn app(state: AppState) -> Router {
    let settings = state.settings.clone();
    let schema = build_schema(state.clone());
    let shared = std::sync::Arc::new(ws::SharedStreams::new(settings.live_updates_buffer));
    let http_state = HttpState {
        app: state,
        schema,
        shared,
    };
    let mut router = Router::new()
        .route("/graphql", get(graphql::get_or_websocket).post(graphql::post))
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .route(reports::ROUTE, get(reports::export))
        .route(exports::ROUTE, get(exports::download))
        .route(
            import::ROUTE,
            post(import::import_calls).layer(DefaultBodyLimit::max(import::MAX_IMPORT_BODY_BYTES)),
        )
        .route("/wallboard", get(wallboard::page))
        .route("/wallboard/wallboard.css", get(wallboard::style))
        .route("/wallboard/wallboard.js", get(wallboard::script))
        .merge(webhooks::router(http_state.app.clone()));
    if settings.graphiql_enabled() {
        router = router.route("/graphiql", get(graphql::graphiql));
    }
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    let router = router
        .with_state(http_state)
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        // Per route (axum applies a router's layers to each route), so it sees the route template.
        .layer(axum::middleware::from_fn(metrics::track_http))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|request: &axum::http::Request<_>| {
                            let id = request
                                .headers()
                                .get(REQUEST_ID_HEADER)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-");
                            let span = tracing::info_span!(
                                "request",
                                method = %request.method(),
                                path = %request.uri().path(),
                                request_id = %id,
                                otel.name = %format_args!("{} {}", request.method(), request.uri().path()),
                                otel.kind = "server",
                                http.response.status_code = tracing::field::Empty,
                            );
                            crate::telemetry::adopt_remote_parent(&span, request.headers());
                            span
                        })
                        .on_response(
                            |response: &axum::http::Response<_>, latency: std::time::Duration, span: &tracing::Span| {
                                span.record("http.response.status_code", response.status().as_u16());
                                tracing::debug!(status = response.status().as_u16(), ?latency, "response");
                            },
                        ),
                )
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(axum::middleware::map_response(close_after_payload_too_large))
                // Backstop only: GraphQL execution has its own, friendlier timeout.
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::SERVICE_UNAVAILABLE,
                    settings.request_timeout + std::time::Duration::from_secs(5),
                )),
        );
    // Outermost: every answer carries the security headers, the backstop's 503 included.
    security::harden(router, &settings)
}

/// A 413 is answered before its body is read, so the rest of the body is still on the
/// connection and it cannot carry another request: every 413 says `Connection: close`, or a
/// pooled client may send its next request on it and see that request fail.
async fn close_after_payload_too_large(mut response: axum::response::Response) -> axum::response::Response {
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

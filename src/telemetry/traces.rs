//! Distributed traces: when an OTLP endpoint is configured, the `tracing` spans of every HTTP
//! request and GraphQL operation are exported as OpenTelemetry spans over OTLP/HTTP (protobuf),
//! and a caller's W3C `traceparent` makes them children of the caller's trace.
//!
//! Why a bridge rather than OpenTelemetry calls in the code: the code already says what it
//! does with `tracing` spans (logs use them too), so traces cost no second instrumentation.
//! Export is batched on the SDK's own thread, off the request path; a collector that is down
//! loses spans, never requests. The endpoint is a base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT`
//! is: `/v1/traces` is appended. The exporter's standard variables (`OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_*`) apply. Plain `http://` only: the usual collector
//! runs beside the instance (an agent or sidecar), and the TLS stack is not worth its weight
//! in every build; an `https://` endpoint is refused at start-up rather than failing silently.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Level;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::Layer as _;

use crate::error::{AppError, AppResult};

/// The name traces carry as `service.name`.
const SERVICE_NAME: &str = "omnivox";

/// The signal path OTLP/HTTP appends to a base endpoint.
const TRACES_PATH: &str = "/v1/traces";

/// `{endpoint}/v1/traces`, or a clear error for an endpoint that cannot work.
pub(super) fn traces_url(endpoint: &str) -> AppResult<String> {
    let parsed = url::Url::parse(endpoint)
        .map_err(|e| AppError::bad_input(format!("--otlp-endpoint is not a URL ({e}): `{endpoint}`")))?;
    if parsed.scheme() != "http" {
        return Err(AppError::bad_input(format!(
            "--otlp-endpoint must be an http:// URL (a collector beside the instance); `{}` is not supported",
            parsed.scheme()
        )));
    }
    Ok(format!("{}{TRACES_PATH}", endpoint.trim_end_matches('/')))
}

/// The tracer provider exporting to `endpoint`, and W3C trace context set as the propagator.
pub(super) fn provider(endpoint: &str) -> AppResult<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url(endpoint)?)
        .build()
        .map_err(|e| AppError::Internal(format!("OTLP exporter: {e}")))?;
    let resource = Resource::builder()
        .with_service_name(SERVICE_NAME)
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The `tracing` layer that turns spans into OpenTelemetry spans of `provider`: this crate's
/// spans at `info` and above (the HTTP request, the GraphQL operation, what the code chose to
/// name), whatever `RUST_LOG` says of logs, and none of the libraries' internal spans.
pub(super) fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let ours = Targets::new().with_target(env!("CARGO_CRATE_NAME"), Level::INFO);
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(SERVICE_NAME))
        .with_filter(ours)
}

/// Makes `span` a child of the trace named by the request's `traceparent` (and `tracestate`)
/// headers, when there are valid ones. Without export, or without the headers, nothing changes.
pub fn adopt_remote_parent(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&opentelemetry_http::HeaderExtractor(headers))
    });
    // Fails only when the span is disabled or export is off: nothing to attach to then.
    let _ = span.set_parent(parent);
}

/// Renames `span`'s exported span (`otel.name` recorded after the span has started is ignored
/// by the bridge): for spans whose name is known only once their work has begun, such as a
/// GraphQL operation's, named after the document is parsed. Without export, nothing happens.
pub fn rename_exported_span(span: &tracing::Span, name: String) {
    use opentelemetry::trace::TraceContextExt as _;
    span.context().span().update_name(name);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_a_base_url_over_plain_http() {
        assert_eq!(
            traces_url("http://collector:4318").ok().as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        assert_eq!(
            traces_url("http://collector:4318/").ok().as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        assert!(traces_url("https://collector:4318").is_err());
        assert!(traces_url("collector:4318 ").is_err());
    }
}

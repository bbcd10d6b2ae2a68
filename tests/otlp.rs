//! Trace export over OTLP/HTTP: the real binary, pointed at a collector this test runs, exports
//! a span per HTTP request and per GraphQL operation, continues the caller's W3C trace, marks
//! failed operations, and flushes what it buffered when it is stopped.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use axum::Router;
use common::binary::Process;
use common::TestDatabase;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// A span as the collector received it.
#[derive(Debug, Clone)]
struct Received {
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: HashMap<String, String>,
    status: i32,
    service: String,
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn attributes(list: &[KeyValue]) -> HashMap<String, String> {
    list.iter()
        .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
        .collect()
}

/// An OTLP/HTTP collector: decodes each export and hands its spans to the test.
async fn collector() -> (SocketAddr, mpsc::UnboundedReceiver<Received>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let sender = sender.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
                for resource_spans in request.resource_spans {
                    let resource = resource_spans
                        .resource
                        .map(|r| attributes(&r.attributes))
                        .unwrap_or_default();
                    let service = resource.get("service.name").cloned().unwrap_or_default();
                    for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                        let _ = sender.send(Received {
                            name: span.name.clone(),
                            trace_id: hex::encode(&span.trace_id),
                            span_id: hex::encode(&span.span_id),
                            parent_span_id: hex::encode(&span.parent_span_id),
                            attributes: attributes(&span.attributes),
                            status: span.status.map_or(0, |s| s.code),
                            service: service.clone(),
                        });
                    }
                }
                // An empty ExportTraceServiceResponse: everything accepted.
                ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, receiver)
}

async fn graphql(addr: SocketAddr, query: &str, traceparent: Option<&str>) -> Value {
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        .json(&json!({ "query": query }));
    if let Some(parent) = traceparent {
        request = request.header("traceparent", parent);
    }
    request.send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_in_the_callers_trace_and_flushed_at_exit() {
    let database = TestDatabase::new().await;
    let (collector_addr, mut spans) = collector().await;
    let endpoint = format!("http://{collector_addr}");
    let mut server = Process::spawn_with_env(
        &["serve", "--bind", "127.0.0.1:0", "--otlp-endpoint", &endpoint],
        &database.url,
        // A batch every minute: within the test, only the flush at exit sends them.
        &[("OTEL_BSP_SCHEDULE_DELAY", "60000")],
    );
    let addr = server.listening_addr(Duration::from_secs(60)).await;

    // A caller that is itself traced: its trace id and span id in `traceparent`.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let body = graphql(
        addr,
        "query Hello { __typename }",
        Some(&format!("00-{trace_id}-{caller_span}-01")),
    )
    .await;
    assert_eq!(body["data"]["__typename"], "Query", "{body}");

    let body = graphql(addr, "query Secret { me { id } }", None).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED", "{body}");
    // Buffered when the server is told to stop: flushed before it exits.
    server.sigterm();
    assert!(
        server.wait_exit(Duration::from_secs(30)).await.success(),
        "{}",
        server.output()
    );
    let mut seen: Vec<Received> = Vec::new();
    while let Ok(Some(span)) = tokio::time::timeout(Duration::from_secs(2), spans.recv()).await {
        seen.push(span);
    }

    let find = |name: &str| {
        seen.iter()
            .find(|s| s.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("no span named {name:?} in {seen:#?}"))
    };
    let hello = find("query Hello");
    assert_eq!(hello.service, "omnivox");
    assert_eq!(hello.trace_id, trace_id, "the caller's trace was not continued");
    assert_eq!(hello.attributes["graphql.operation.name"], "Hello");
    assert_eq!(hello.attributes["graphql.operation.type"], "query");
    assert_eq!(hello.attributes["outcome"], "ok");
    assert_ne!(hello.status, StatusCode::Error as i32);
    // Its parent is the HTTP request's span, itself the child of the caller's span.
    let request = seen
        .iter()
        .find(|s| s.span_id == hello.parent_span_id)
        .unwrap_or_else(|| panic!("the operation's parent span was not exported: {seen:#?}"));
    assert_eq!(request.name, "POST /graphql");
    assert_eq!(request.parent_span_id, caller_span);
    assert_eq!(request.attributes["http.response.status_code"], "200");

    let secret = find("query Secret");
    assert_ne!(
        secret.trace_id, trace_id,
        "a request without traceparent starts its own trace"
    );
    assert_eq!(secret.attributes["outcome"], "UNAUTHENTICATED");
    assert_eq!(
        secret.status,
        StatusCode::Error as i32,
        "a failed operation is marked as an error"
    );
}

#[tokio::test]
async fn an_endpoint_that_cannot_work_is_refused_at_start() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_omnivox"))
        .args(["schema", "--otlp-endpoint", "https://collector.example:4318"])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--otlp-endpoint must be an http:// URL"), "{stderr}");
}

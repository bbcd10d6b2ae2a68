//! Prometheus metrics through the `metrics` facade and its Prometheus exporter, so that the
//! exposition format (types, help, histogram buckets, label escaping) is the library's, not ours.
//!
//! Two kinds of series:
//! * **events** (requests, operations, sockets, bus lag, ingested events) are recorded where they
//!   happen, into ONE recorder per process, installed on first use ([`handle`]). Several apps in
//!   one process (tests) share it, as they share the process.
//! * **state** read at scrape time (bus counters, database pool, live computations) belongs to
//!   one app: [`render`] takes it as a closure run against a recorder of its own for that scrape,
//!   so two apps in one process never overwrite each other's values.
//!
//! Names are stable (this module is their one list) and labels are bounded: routes are axum's
//! route templates, GraphQL operation names are cut to [`MAX_OPERATION_NAME`] characters
//! (unnamed: `anonymous`), error outcomes are the stable error codes, subscription kinds are
//! root fields of the schema.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram, Gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// HTTP requests, by `method`, `route` (the route template; `unmatched` when none) and `status`.
pub const HTTP_REQUESTS: &str = "omnivox_http_requests_total";
/// Duration of HTTP requests until the response head, same labels.
pub const HTTP_REQUEST_SECONDS: &str = "omnivox_http_request_duration_seconds";
/// GraphQL queries and mutations, by `operation`, `type` and `outcome` (`ok` or an error code).
pub const GRAPHQL_OPERATIONS: &str = "omnivox_graphql_operations_total";
/// Duration of GraphQL queries and mutations, same labels.
pub const GRAPHQL_OPERATION_SECONDS: &str = "omnivox_graphql_operation_duration_seconds";
/// Open GraphQL WebSockets.
pub const WS_CONNECTIONS: &str = "omnivox_ws_connections";
/// Running subscriptions, by `kind` (the subscription's root field).
pub const WS_SUBSCRIPTIONS: &str = "omnivox_ws_subscriptions";
/// Publish → receive delay of bus events received from other instances.
pub const BUS_LAG_SECONDS: &str = "omnivox_bus_lag_seconds";
/// Call events ingested, by `source` (`api`, `webhook`) and `outcome` (`accepted`,
/// `duplicate`, `rejected`).
pub const INGEST_EVENTS: &str = "omnivox_ingest_events_total";

/// Denied accesses for the audit trail, by `outcome` (`written`, `dropped` when the queue
/// was full, `failed` when the database refused the batch).
pub const AUDIT_DENIALS: &str = "omnivox_audit_denials_total";

/// Longest operation name kept as a label value; longer names are cut.
pub const MAX_OPERATION_NAME: usize = 64;

/// Upper bounds of the duration histograms' buckets, in seconds.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Histograms keep their samples until drained: a render drains them, and so does this period
/// when nobody scrapes.
const UPKEEP_PERIOD: Duration = Duration::from_secs(5);

fn recorder() -> PrometheusRecorder {
    match PrometheusBuilder::new().set_buckets(DURATION_BUCKETS) {
        Ok(builder) => builder.build_recorder(),
        // Only an empty bucket list fails, and the list is a constant.
        Err(_) => PrometheusBuilder::new().build_recorder(),
    }
}

/// The process's recorder, installed as the `metrics` global on first use. If another
/// recorder was installed first (an embedding program), events go there and this one only
/// renders the scrape-time state.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed: /metrics shows scrape-time state only");
        } else {
            describe();
        }
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(UPKEEP_PERIOD);
                upkeep.run_upkeep();
            });
        if spawned.is_err() {
            tracing::warn!("no metrics upkeep thread: histograms are drained by scrapes only");
        }
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(HTTP_REQUESTS, "HTTP requests by method, route template and status");
    describe_histogram!(
        HTTP_REQUEST_SECONDS,
        Unit::Seconds,
        "HTTP request duration until the response head"
    );
    describe_counter!(
        GRAPHQL_OPERATIONS,
        "GraphQL queries and mutations by operation name, type and outcome (ok or error code)"
    );
    describe_histogram!(
        GRAPHQL_OPERATION_SECONDS,
        Unit::Seconds,
        "GraphQL query and mutation duration"
    );
    describe_gauge!(WS_CONNECTIONS, "open GraphQL WebSockets");
    describe_gauge!(WS_SUBSCRIPTIONS, "running subscriptions by root field");
    describe_histogram!(
        BUS_LAG_SECONDS,
        Unit::Seconds,
        "publish to receive delay of events from other instances (clocks of both instances)"
    );
    describe_counter!(INGEST_EVENTS, "call events ingested by source and outcome");
    describe_counter!(AUDIT_DENIALS, "denied accesses for the audit trail by outcome");
}

/// Counts denied accesses written to, or lost before, the audit trail.
pub fn audit_denials(outcome: &'static str, n: u64) {
    counter!(AUDIT_DENIALS, "outcome" => outcome).increment(n);
}

/// The exposition text: the process's event series, then the app's scrape-time state, which
/// `state` records (with the ordinary `metrics` macros) into a recorder of this scrape's own.
pub fn render(state: impl FnOnce()) -> String {
    let mut text = handle().render();
    let scrape = recorder();
    metrics::with_local_recorder(&scrape, state);
    text.push_str(&scrape.handle().render());
    text
}

/// Counts one HTTP request.
pub fn http_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let labels = [
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    counter!(HTTP_REQUESTS, &labels).increment(1);
    histogram!(HTTP_REQUEST_SECONDS, &labels).record(elapsed.as_secs_f64());
}

/// The label value of a GraphQL operation name: `anonymous` when unnamed, cut when long.
pub fn operation_label(name: Option<&str>) -> String {
    match name {
        None | Some("") => "anonymous".to_owned(),
        Some(name) => name.chars().take(MAX_OPERATION_NAME).collect(),
    }
}

/// Counts one GraphQL query or mutation. `operation` should come from [`operation_label`].
pub fn graphql_operation(operation: String, kind: &'static str, outcome: String, elapsed: Duration) {
    let labels = [
        ("operation", operation),
        ("type", kind.to_owned()),
        ("outcome", outcome),
    ];
    counter!(GRAPHQL_OPERATIONS, &labels).increment(1);
    histogram!(GRAPHQL_OPERATION_SECONDS, &labels).record(elapsed.as_secs_f64());
}

/// Records the publish → receive delay of one bus event (negative skews count as 0).
pub fn bus_lag(published: chrono::DateTime<chrono::Utc>) {
    let lag = (chrono::Utc::now() - published).to_std().unwrap_or_default();
    histogram!(BUS_LAG_SECONDS).record(lag.as_secs_f64());
}

/// Where ingested events came from.
#[derive(Debug, Clone, Copy)]
pub enum IngestSource {
    /// The `recordCallEvents` mutation.
    Api,
    /// Telephony webhooks (Twilio status callbacks).
    Webhook,
}

/// What became of ingested events.
#[derive(Debug, Clone, Copy)]
pub enum IngestOutcome {
    Accepted,
    Duplicate,
    Rejected,
}

/// Counts `n` ingested events.
pub fn ingest_events(source: IngestSource, outcome: IngestOutcome, n: u64) {
    if n == 0 {
        return;
    }
    let source = match source {
        IngestSource::Api => "api",
        IngestSource::Webhook => "webhook",
    };
    let outcome = match outcome {
        IngestOutcome::Accepted => "accepted",
        IngestOutcome::Duplicate => "duplicate",
        IngestOutcome::Rejected => "rejected",
    };
    counter!(INGEST_EVENTS, "source" => source, "outcome" => outcome).increment(n);
}

/// A gauge held up by one while this value lives (a socket, a subscription).
pub struct GaugeGuard(Gauge);

impl GaugeGuard {
    fn new(gauge: Gauge) -> Self {
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// One open GraphQL WebSocket, for as long as the guard lives.
pub fn ws_connection() -> GaugeGuard {
    GaugeGuard::new(gauge!(WS_CONNECTIONS))
}

/// One running subscription of root field `kind`, for as long as the guard lives.
pub fn ws_subscription(kind: &str) -> GaugeGuard {
    GaugeGuard::new(gauge!(WS_SUBSCRIPTIONS, "kind" => kind.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_labels_are_bounded() {
        assert_eq!(operation_label(None), "anonymous");
        assert_eq!(operation_label(Some("")), "anonymous");
        assert_eq!(operation_label(Some("Wallboard")), "Wallboard");
        assert_eq!(operation_label(Some(&"x".repeat(500))).len(), MAX_OPERATION_NAME);
    }

    #[test]
    fn scrape_time_state_is_rendered_apart_from_the_process_series() {
        let text = render(|| {
            gauge!("omnivox_test_scrape_gauge").set(7.0);
            counter!("omnivox_test_scrape_total").absolute(3);
        });
        assert!(text.contains("omnivox_test_scrape_gauge 7"), "{text}");
        assert!(text.contains("omnivox_test_scrape_total 3"), "{text}");
        // Not left behind in the process's recorder.
        assert!(!handle().render().contains("omnivox_test_scrape"));
    }
}

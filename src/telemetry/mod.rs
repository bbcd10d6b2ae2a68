//! Logs, traces and metrics. `RUST_LOG` filters logs (default `info`); `--log-format json` for
//! log shippers (one JSON object per line). `--otlp-endpoint` exports traces
//! ([`traces`]). [`metrics`] holds the Prometheus series and their names.

pub mod metrics;
mod traces;

pub use traces::{adopt_remote_parent, rename_exported_span};

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;
use crate::error::AppResult;

/// What must outlive the process's work: the trace exporter, flushed by [`Telemetry::shutdown`].
#[must_use = "call shutdown() before exiting, or the last spans are lost"]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still buffered (bounded by the exporter's timeout) and stops exporting.
    pub async fn shutdown(self) {
        let Some(provider) = self.traces else { return };
        // The SDK flushes synchronously on its own thread: wait for it off the async workers.
        let outcome = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(error)) = outcome {
            tracing::warn!(%error, "the last traces could not be exported");
        }
    }
}

/// Starts logging (and trace export when `otlp_endpoint` is set).
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>) -> AppResult<Telemetry> {
    let traces = otlp_endpoint.map(traces::provider).transpose()?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer().with_target(false);
    let logs = match format {
        LogFormat::Text => logs.boxed(),
        LogFormat::Json => logs.json().boxed(),
    };
    let export = traces.as_ref().map(traces::layer);
    // A second init (tests that build several apps) is harmless; ignore it.
    let _ = tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(export)
        .try_init();
    Ok(Telemetry { traces })
}

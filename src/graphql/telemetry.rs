//! Counts and times every GraphQL query and mutation executed through the schema
//! (`omnivox_graphql_operations_total` and `omnivox_graphql_operation_duration_seconds`, see
//! `telemetry::metrics`): by operation name, type and outcome (`ok`, or the first error's code);
//! and runs it in a `graphql` span, exported under the operation's name (`query KpiBoard`) as
//! the child of the HTTP request's span.
//!
//! Registered first, so its timing covers everything the request does, persisted-query lookup,
//! parsing and validation included. The operation is the one of the parsed document the request
//! selects; a request whose document never parsed (or names no operation of it) counts as
//! `unknown`. Subscriptions are counted as running streams by the WebSocket transport instead.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tracing::field::Empty;
use tracing::Instrument;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextRequest,
};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};
use async_graphql::{Request, Response, ServerResult, Variables};

use crate::error::ErrorCode;
use crate::telemetry::metrics;

/// The extension factory.
pub struct OperationTelemetry;

impl ExtensionFactory for OperationTelemetry {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OperationTelemetryExtension::default())
    }
}

#[derive(Default)]
struct Seen {
    /// The operation name the request asked for.
    requested: Option<String>,
    /// (label, type) of the operation the document selects.
    operation: Option<(String, &'static str)>,
}

#[derive(Default)]
struct OperationTelemetryExtension {
    seen: Mutex<Seen>,
}

impl OperationTelemetryExtension {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn type_label(ty: OperationType) -> &'static str {
    match ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    }
}

/// (name label, type label) of the operation `requested` picks in `document`.
fn selected(document: &ExecutableDocument, requested: Option<&str>) -> Option<(String, &'static str)> {
    match (&document.operations, requested) {
        (DocumentOperations::Single(op), None) => Some((metrics::operation_label(None), type_label(op.node.ty))),
        (DocumentOperations::Multiple(ops), Some(name)) => ops
            .get_key_value(name)
            .map(|(name, op)| (metrics::operation_label(Some(name.as_str())), type_label(op.node.ty))),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops
            .iter()
            .next()
            .map(|(name, op)| (metrics::operation_label(Some(name.as_str())), type_label(op.node.ty))),
        _ => None,
    }
}

/// `ok`, or the code of the first error (errors without one are the client's: BAD_USER_INPUT,
/// as the transport reports them).
fn outcome(response: &Response) -> String {
    let Some(error) = response.errors.first() else {
        return "ok".to_owned();
    };
    match error.extensions.as_ref().and_then(|e| e.get("code")) {
        Some(async_graphql::Value::String(code)) => code.clone(),
        _ => ErrorCode::BadUserInput.as_str().to_owned(),
    }
}

#[async_trait::async_trait]
impl Extension for OperationTelemetryExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let span = tracing::info_span!(
            "graphql",
            otel.status_code = Empty,
            graphql.operation.name = Empty,
            graphql.operation.type = Empty,
            outcome = Empty,
        );
        let started = Instant::now();
        let response = next.run(ctx).instrument(span.clone()).await;
        let (operation, kind) = self
            .seen()
            .operation
            .take()
            .unwrap_or_else(|| ("unknown".to_owned(), "unknown"));
        let outcome = outcome(&response);
        crate::telemetry::rename_exported_span(&span, format!("{kind} {operation}"));
        span.record("graphql.operation.name", operation.as_str());
        span.record("graphql.operation.type", kind);
        span.record("outcome", outcome.as_str());
        if outcome != "ok" {
            span.record("otel.status_code", "ERROR");
        }
        metrics::graphql_operation(operation, kind, outcome, started.elapsed());
        response
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        self.seen().requested = request.operation_name.clone();
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<async_graphql::parser::types::ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let mut seen = self.seen();
        seen.operation = selected(&document, seen.requested.as_deref());
        Ok(document)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(query: &str, name: Option<&str>) -> Option<(String, &'static str)> {
        let document = async_graphql::parser::parse_query(query).unwrap_or_else(|e| panic!("{e}"));
        selected(&document, name)
    }

    #[test]
    fn the_selected_operation_names_the_series() {
        assert_eq!(pick("{ me { id } }", None), Some(("anonymous".into(), "query")));
        assert_eq!(pick("query Me { me { id } }", None), Some(("Me".into(), "query")));
        assert_eq!(
            pick("query A { me { id } } mutation B { logoutEverywhere }", Some("B")),
            Some(("B".into(), "mutation"))
        );
        assert_eq!(pick("query A { a } query B { b }", None), None);
        assert_eq!(pick("query A { a }", Some("Z")), None);
    }
}

//! Requests that may only read (GraphQL over HTTP GET): a mutation or subscription must not
//! run, whether its document came in the URL or from the persisted-queries cache by hash.
//!
//! The transport marks such a request with [`ReadOnlyRequest`]; [`QueriesOnly`], registered
//! after the persisted-queries extension, sees the document the request will run and refuses
//! any other operation type before it executes, and tells the transport so through the marker
//! (which answers 405 with `Allow: POST`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};
use async_graphql::{Request, ServerError, ServerResult};

/// Request data of a request that may only run a query. Cheap to clone; clones share the flag.
#[derive(Clone, Default)]
pub struct ReadOnlyRequest(Arc<AtomicBool>);

impl ReadOnlyRequest {
    /// Whether the request was refused for naming a mutation or subscription.
    pub fn refused(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The client message of a refused operation.
pub const ONLY_QUERIES: &str = "only queries may be sent over GET; send mutations and subscriptions with POST";

/// The operation a request would run in `document`, chosen by name (or the only one).
pub fn operation_type(document: &ExecutableDocument, operation_name: Option<&str>) -> Option<OperationType> {
    match (&document.operations, operation_name) {
        (DocumentOperations::Single(op), None) => Some(op.node.ty),
        (DocumentOperations::Single(_), Some(_)) => None,
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| op.node.ty),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next().map(|op| op.node.ty),
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// The extension; see the module documentation.
pub struct QueriesOnly;

impl ExtensionFactory for QueriesOnly {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(QueriesOnly)
    }
}

#[async_trait::async_trait]
impl Extension for QueriesOnly {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let marker = request
            .data
            .get(&std::any::TypeId::of::<ReadOnlyRequest>())
            .and_then(|data| data.downcast_ref::<ReadOnlyRequest>())
            .cloned();
        if let Some(marker) = marker {
            // A persisted document is already parsed; a document in the URL is parsed here, once
            // (the request keeps it). One that does not parse is left to the parser's own error.
            let operation_name = request.operation_name.clone();
            let ty = request
                .parsed_query()
                .ok()
                .and_then(|document| operation_type(document, operation_name.as_deref()));
            if ty.is_some_and(|ty| ty != OperationType::Query) {
                marker.0.store(true, Ordering::Relaxed);
                let mut error = ServerError::new(ONLY_QUERIES, None);
                let mut extensions = async_graphql::ErrorExtensionValues::default();
                extensions.set("code", "BAD_USER_INPUT");
                error.extensions = Some(extensions);
                return Err(error);
            }
        }
        next.run(ctx, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(query: &str, name: Option<&str>) -> Option<OperationType> {
        let document = async_graphql::parser::parse_query(query).unwrap_or_else(|e| panic!("{e}"));
        operation_type(&document, name)
    }

    #[test]
    fn the_operation_is_chosen_by_name_or_alone() {
        assert_eq!(ty("{ me { id } }", None), Some(OperationType::Query));
        assert_eq!(ty("mutation { logoutEverywhere }", None), Some(OperationType::Mutation));
        assert_eq!(
            ty("query A { me { id } } mutation B { logoutEverywhere }", Some("B")),
            Some(OperationType::Mutation)
        );
        assert_eq!(
            ty("query A { me { id } } mutation B { logoutEverywhere }", Some("A")),
            Some(OperationType::Query)
        );
        assert_eq!(ty("query A { me { id } } mutation B { logoutEverywhere }", None), None);
        assert_eq!(ty("subscription { x }", None), Some(OperationType::Subscription));
    }
}

//! Document limits that async-graphql has no setting for: document size and alias count.
//! They hold for persisted documents too (the alias and introspection checks see the parsed
//! document, whichever way it came).
//! (Depth, complexity, recursion and directive limits are the schema builder's own.)

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Request, ServerError, ServerResult, Variables};

pub struct DocumentLimits {
    pub max_aliases: usize,
    pub max_document_bytes: usize,
    /// When introspection is off, a document selecting `__schema` or `__type` is refused with
    /// an error (async-graphql would answer a silent, invalid `null`).
    pub refuse_introspection: bool,
}

impl ExtensionFactory for DocumentLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DocumentLimitsExtension {
            max_aliases: self.max_aliases,
            max_document_bytes: self.max_document_bytes,
            refuse_introspection: self.refuse_introspection,
        })
    }
}

struct DocumentLimitsExtension {
    max_aliases: usize,
    max_document_bytes: usize,
    refuse_introspection: bool,
}

fn limit_error(message: String) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", "BAD_USER_INPUT");
    error.extensions = Some(extensions);
    error
}

#[async_trait::async_trait]
impl Extension for DocumentLimitsExtension {
    /// The size limit applies before anything parses the document: registered first, this runs
    /// before the persisted-queries extension (which parses a document it is asked to register).
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if request.query.len() > self.max_document_bytes {
            return Err(limit_error(format!(
                "document is {} bytes; the limit is {} bytes",
                request.query.len(),
                self.max_document_bytes
            )));
        }
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let aliases = count_aliases(&document);
        if aliases > self.max_aliases {
            return Err(limit_error(format!(
                "document uses {aliases} aliases; the limit is {}",
                self.max_aliases
            )));
        }
        if self.refuse_introspection && selects_introspection(&document) {
            return Err(limit_error("introspection is disabled on this server".to_owned()));
        }
        Ok(document)
    }
}

/// Whether any selection (operations or fragments) names `__schema` or `__type`.
fn selects_introspection(document: &ExecutableDocument) -> bool {
    fn in_set(set: &SelectionSet) -> bool {
        set.items.iter().any(|item| match &item.node {
            Selection::Field(field) => {
                matches!(field.node.name.node.as_str(), "__schema" | "__type") || in_set(&field.node.selection_set.node)
            }
            Selection::InlineFragment(fragment) => in_set(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => false,
        })
    }
    document
        .operations
        .iter()
        .any(|(_, op)| in_set(&op.node.selection_set.node))
        || document.fragments.values().any(|f| in_set(&f.node.selection_set.node))
}

/// Aliases written in the document (operations and fragment definitions, each counted once).
pub fn count_aliases(document: &ExecutableDocument) -> usize {
    fn in_set(set: &SelectionSet) -> usize {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) => {
                    usize::from(field.node.alias.is_some()) + in_set(&field.node.selection_set.node)
                }
                Selection::InlineFragment(fragment) => in_set(&fragment.node.selection_set.node),
                Selection::FragmentSpread(_) => 0,
            })
            .sum()
    }
    let in_operations: usize = document
        .operations
        .iter()
        .map(|(_, op)| in_set(&op.node.selection_set.node))
        .sum();
    let in_fragments: usize = document
        .fragments
        .values()
        .map(|f| in_set(&f.node.selection_set.node))
        .sum();
    in_operations + in_fragments
}

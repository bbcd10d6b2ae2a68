//! Automatic persisted queries: Apollo's APQ protocol, so that wallboards and apps send a
//! 64-character hash instead of the whole document (and can use cacheable GETs).
//!
//! The protocol: a client sends `extensions.persistedQuery = {version: 1, sha256Hash}` without
//! `query`; an unknown hash answers the error `PersistedQueryNotFound` (code
//! `PERSISTED_QUERY_NOT_FOUND`), and the client sends the hash again with the document, which
//! registers it. A document whose SHA-256 is not the hash is refused ("provided sha does not
//! match query").
//!
//! async-graphql's `ApolloPersistedQueries` extension does the protocol; this module gives it
//! a cache bounded by entries *and* by the size of the parsed documents (anybody may register a
//! document, including anonymous callers, so a count alone would let a few thousand large
//! documents take gigabytes), and gives its errors the protocol's codes.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use async_graphql::extensions::apollo_persisted_queries::CacheStorage;
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Request, ServerError, ServerResult};

/// `extensions.code` of an unknown hash, as the protocol names it.
pub const PERSISTED_QUERY_NOT_FOUND: &str = "PERSISTED_QUERY_NOT_FOUND";
/// `extensions.code` when this server has persisted queries turned off.
pub const PERSISTED_QUERY_NOT_SUPPORTED: &str = "PERSISTED_QUERY_NOT_SUPPORTED";
/// The protocol's message of an unknown hash (clients match on it).
const NOT_FOUND_MESSAGE: &str = "PersistedQueryNotFound";
/// Total weight (≈ syntax nodes) of the cached documents, whatever their number.
pub const MAX_CACHED_NODES: usize = 200_000;

/// The parsed documents of registered hashes, least recently used evicted first, bounded by
/// `entries` and by [`MAX_CACHED_NODES`] syntax nodes in all.
#[derive(Clone)]
pub struct DocumentCache(Arc<Mutex<Documents>>);

struct Documents {
    entries: lru::LruCache<String, (ExecutableDocument, usize)>,
    weight: usize,
    max_weight: usize,
}

impl DocumentCache {
    /// A cache of at most `entries` documents and `max_weight` syntax nodes in all.
    pub fn new(entries: NonZeroUsize, max_weight: usize) -> Self {
        Self(Arc::new(Mutex::new(Documents {
            entries: lru::LruCache::new(entries),
            weight: 0,
            max_weight,
        })))
    }

    /// Documents held now.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no document is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Documents> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl CacheStorage for DocumentCache {
    async fn get(&self, key: String) -> Option<ExecutableDocument> {
        self.lock().entries.get(&key).map(|(document, _)| document.clone())
    }

    async fn set(&self, key: String, document: ExecutableDocument) {
        let weight = weight(&document);
        let mut cache = self.lock();
        if weight > cache.max_weight {
            return; // Never cached: it would evict everything else.
        }
        if let Some((_, (_, old))) = cache.entries.push(key, (document, weight)) {
            // Replaced the same key, or evicted the least recently used entry.
            cache.weight -= old;
        }
        cache.weight += weight;
        while cache.weight > cache.max_weight {
            let Some((_, (_, old))) = cache.entries.pop_lru() else {
                break;
            };
            cache.weight -= old;
        }
    }
}

/// A document's weight: one per operation, fragment, selection, argument and directive.
fn weight(document: &ExecutableDocument) -> usize {
    fn of_set(set: &SelectionSet) -> usize {
        set.items
            .iter()
            .map(|item| match &item.node {
                Selection::Field(field) => {
                    1 + field.node.arguments.len()
                        + field.node.directives.len()
                        + of_set(&field.node.selection_set.node)
                }
                Selection::InlineFragment(fragment) => {
                    1 + fragment.node.directives.len() + of_set(&fragment.node.selection_set.node)
                }
                Selection::FragmentSpread(spread) => 1 + spread.node.directives.len(),
            })
            .sum()
    }
    let operations: usize = document
        .operations
        .iter()
        .map(|(_, op)| 1 + op.node.variable_definitions.len() + of_set(&op.node.selection_set.node))
        .sum();
    let fragments: usize = document
        .fragments
        .values()
        .map(|f| 1 + of_set(&f.node.selection_set.node))
        .sum();
    operations + fragments
}

/// Registered before `ApolloPersistedQueries`: gives its "not found" error the protocol's code,
/// and, when persisted queries are off, answers the protocol's `PersistedQueryNotSupported`
/// (so clients stop sending hashes) instead of running an empty document.
pub struct ProtocolErrors {
    /// Whether the persisted-queries extension is registered behind this one.
    pub enabled: bool,
}

impl ExtensionFactory for ProtocolErrors {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ProtocolErrorsExtension { enabled: self.enabled })
    }
}

struct ProtocolErrorsExtension {
    enabled: bool,
}

fn coded(message: &str, code: &str) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", code);
    error.extensions = Some(extensions);
    error
}

#[async_trait::async_trait]
impl Extension for ProtocolErrorsExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if !self.enabled && request.extensions.contains_key("persistedQuery") {
            return Err(coded("PersistedQueryNotSupported", PERSISTED_QUERY_NOT_SUPPORTED));
        }
        next.run(ctx, request).await.map_err(|error| {
            if error.message == NOT_FOUND_MESSAGE && error.extensions.is_none() {
                coded(NOT_FOUND_MESSAGE, PERSISTED_QUERY_NOT_FOUND)
            } else {
                error
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(query).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn weight_counts_syntax_nodes() {
        assert_eq!(weight(&parse("{ a }")), 2);
        assert_eq!(
            weight(&parse("query Q($x: ID) { a(x: $x) @skip(if: true) { b c } }")),
            1 + 1 + 1 + 1 + 1 + 2
        );
        assert_eq!(weight(&parse("{ ...F } fragment F on Query { a }")), 2 + 2);
    }

    #[tokio::test]
    async fn the_cache_is_bounded_by_entries_and_by_weight() {
        let entries = NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN);
        let cache = DocumentCache::new(entries, 10);
        for key in ["a", "b", "c", "d"] {
            cache.set(key.into(), parse("{ a }")).await;
        }
        assert_eq!(cache.len(), 3, "bounded by entries");
        assert!(cache.get("a".into()).await.is_none(), "the oldest went first");
        // Weight 2 each (6 in all); a document of weight 9 evicts until the total fits in 10.
        cache.set("big".into(), parse("{ a b c d e f g h }")).await;
        assert!(cache.get("big".into()).await.is_some());
        assert_eq!(cache.len(), 1, "bounded by weight");
        // Heavier than the whole budget: not cached, nothing evicted.
        cache.set("huge".into(), parse("{ a b c d e f g h i j k }")).await;
        assert!(cache.get("huge".into()).await.is_none());
        assert!(cache.get("big".into()).await.is_some());
        // The same key again replaces its entry and its weight.
        cache.set("big".into(), parse("{ a }")).await;
        cache.set("x".into(), parse("{ a }")).await;
        assert_eq!(cache.len(), 2);
    }
}

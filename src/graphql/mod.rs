//! The GraphQL schema: one merged object per domain, limits from day one.
//!
//! Resolvers are thin: they read arguments, ask [`context`] for the caller and tenant, call the
//! domain module (`management`, `access::session`, `kpi`, …) and convert rows into output types.
//! [`guards`] are the field guards, built on the role table in `auth::roles`.

pub mod analytics;
pub mod auth;
pub mod context;
pub mod guards;
pub mod interactions;
pub mod kpi;
pub mod limits;
pub mod org;
pub mod pagination;
pub mod persisted;
pub mod plain;
pub mod read_only;
pub mod realtime;
pub mod users;

use async_graphql::extensions::apollo_persisted_queries::ApolloPersistedQueries;
use async_graphql::{MergedObject, MergedSubscription, Schema};

use crate::state::AppState;

pub use context::RequestContext;

#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(
    users::UserQuery,
    org::OrgQuery,
    kpi::KpiQuery,
    interactions::InteractionsQuery,
    analytics::AnalyticsQueries,
    realtime::RealtimeQuery,
);

#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    auth::AuthMutation,
    users::UserMutation,
    org::OrgMutation,
    interactions::InteractionsMutation,
    realtime::RealtimeMutation,
);

#[derive(MergedSubscription, Default)]
#[graphql(name = "Subscription")]
pub struct SubscriptionRoot(org::OrgSubscription, realtime::RealtimeSubscription);

pub type OmnivoxSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Builds the schema with the configured limits. `state` is reachable from every resolver.
pub fn build_schema(state: AppState) -> OmnivoxSchema {
    let settings = state.settings.clone();
    let mut builder = Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot::default(),
    )
    .limit_depth(settings.max_depth)
    .limit_complexity(settings.max_complexity)
    .limit_recursive_depth(settings.max_depth.saturating_mul(4).max(32))
    .limit_directives(settings.max_directives)
    // Extensions run in this order. The document size is checked before the persisted-queries
    // extension parses a document to register it; `QueriesOnly` comes after it, to see the
    // document a hash stands for.
    .extension(limits::DocumentLimits {
        max_aliases: settings.max_aliases,
        max_document_bytes: settings.max_document_bytes,
        refuse_introspection: !settings.introspection_enabled(),
    })
    .extension(persisted::ProtocolErrors {
        enabled: settings.persisted_queries > 0,
    });
    if let Some(entries) = std::num::NonZeroUsize::new(settings.persisted_queries) {
        let cache = persisted::DocumentCache::new(entries, persisted::MAX_CACHED_NODES);
        builder = builder.extension(ApolloPersistedQueries::new(cache));
    }
    builder = builder.extension(read_only::QueriesOnly).data(state);
    if !settings.introspection_enabled() {
        builder = builder.disable_introspection();
    }
    if !settings.field_suggestions_enabled() {
        builder = builder.disable_suggestions();
    }
    builder.finish()
}

/// The SDL of the schema, as checked in at `schema.graphql`.
pub fn sdl() -> String {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot::default(),
    )
    .finish()
    .sdl()
}

/// The page size a paginated field uses when `first` is omitted.
pub const DEFAULT_PAGE_SIZE: i32 = 20;


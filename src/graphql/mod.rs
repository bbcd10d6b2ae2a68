//! The GraphQL schema: one merged object per domain, limits from day one.
//!
//! Resolvers are thin: they read arguments, ask `auth` for the caller and tenant, call the
//! domain module (`management`, `auth::session`) and convert rows into output types.

pub mod analytics;
pub mod auth;
pub mod interactions;
pub mod kpi;
pub mod limits;
pub mod org;
pub mod pagination;
pub mod plain;
pub mod realtime;
pub mod users;

use async_graphql::{MergedObject, MergedSubscription, Schema};

use crate::auth::Auth;
use crate::config::Settings;
use crate::state::AppState;

/// Per-request data: who is calling, and the request id for logs and audit records.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub auth: Auth,
    pub request_id: Option<String>,
}

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
    .extension(limits::DocumentLimits {
        max_aliases: settings.max_aliases,
        max_document_bytes: settings.max_document_bytes,
        refuse_introspection: !settings.introspection_enabled(),
    })
    .data(state);
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

/// Reads the application state from a resolver's context. It is always present: the schema is
/// only built by [`build_schema`], which installs it.
pub fn state<'a>(ctx: &async_graphql::Context<'a>) -> async_graphql::Result<&'a AppState> {
    ctx.data::<AppState>()
}

pub fn request_context<'a>(ctx: &async_graphql::Context<'a>) -> Option<&'a RequestContext> {
    ctx.data_opt::<RequestContext>()
}

pub fn request_id(ctx: &async_graphql::Context<'_>) -> Option<String> {
    request_context(ctx).and_then(|r| r.request_id.clone())
}

/// Settings of the running instance, for resolvers that enforce configured limits.
pub fn settings<'a>(ctx: &async_graphql::Context<'a>) -> async_graphql::Result<&'a Settings> {
    Ok(state(ctx)?.settings.as_ref())
}

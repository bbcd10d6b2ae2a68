//! The GraphQL schema: one merged object per domain, limits from day one.
//!
//! Resolvers are thin: they read arguments, ask [`context`] for the caller and tenant, call the
//! domain module (`management`, `access::session`, `kpi`, …) and convert rows into output types.
//! [`guards`] are the field guards, built on the role table in `auth::roles`; [`key_scopes`]
//! confines requests made with an API key to the root fields of its scopes.

pub mod agents;
pub mod analytics;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod catalog;
pub mod coaching;
pub mod context;
pub mod dashboards;
pub mod guards;
pub mod interactions;
pub mod key_scopes;
pub mod kpi;
pub mod limits;
pub mod org;
pub mod organizations;
pub mod pagination;
pub mod persisted;
pub mod plain;
pub mod rate_limits;
pub mod read_only;
pub mod realtime;
pub mod report_runs;
pub mod report_schedules;
pub mod reports;
pub mod teams;
pub mod telemetry;
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
    catalog::CatalogQuery,
    kpi::KpiQuery,
    interactions::InteractionsQuery,
    analytics::AnalyticsQueries,
    realtime::RealtimeQuery,
    api_keys::ApiKeyQuery,
    reports::ReportQueries,
    report_runs::ReportRunQueries,
    report_schedules::ReportScheduleQueries,
    audit::AuditQuery,
    coaching::CoachingQueries,
    organizations::OrganizationQueries,
    agents::AgentQuery,
    teams::TeamQuery,
    dashboards::DashboardQueries,
);

#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    auth::AuthMutation,
    users::UserMutation,
    org::OrgMutation,
    catalog::CatalogMutation,
    interactions::InteractionsMutation,
    realtime::RealtimeMutation,
    api_keys::ApiKeyMutation,
    reports::ReportMutations,
    report_runs::ReportRunMutations,
    report_schedules::ReportScheduleMutations,
    coaching::CoachingMutations,
    organizations::OrganizationMutations,
    agents::AgentMutation,
    teams::TeamMutation,
    dashboards::DashboardMutations,
);

#[derive(MergedSubscription, Default)]
#[graphql(name = "Subscription")]
pub struct SubscriptionRoot(
    org::OrgSubscription,
    realtime::RealtimeSubscription,
    report_runs::ReportRunSubscription,
    dashboards::DashboardSubscription,
);

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
    // Extensions run in this order. Metrics first, to time all the rest. The document size is
    // checked before the persisted-queries extension parses a document to register it;
    // `QueriesOnly` comes after it, to see the document a hash stands for.
    .extension(telemetry::OperationTelemetry)
    // Charges each operation its complexity once validation computed it (see `rate_limits`).
    .extension(rate_limits::CostLimits)
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
    // API keys reach only the root fields of their scopes (see `key_scopes`).
    builder = builder
        .extension(read_only::QueriesOnly)
        .extension(key_scopes::KeyScopes)
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

/// The root fields of `Subscription` (read once from the schema): the only values the
/// subscriptions gauge takes as its `kind` label.
pub fn subscription_fields() -> &'static [String] {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    static FIELDS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    FIELDS.get_or_init(|| {
        let Ok(document) = async_graphql::parser::parse_schema(sdl()) else {
            return Vec::new();
        };
        document
            .definitions
            .iter()
            .filter_map(|definition| match definition {
                TypeSystemDefinition::Type(ty) if ty.node.name.node.as_str() == "Subscription" => match &ty.node.kind {
                    TypeKind::Object(object) => Some(object.fields.iter().map(|f| f.node.name.node.to_string())),
                    _ => None,
                },
                _ => None,
            })
            .flatten()
            .collect()
    })
}

/// The root field of the subscription `query` runs (by `operation_name`, or its only
/// operation), when it is a subscription field of this schema.
pub fn subscription_kind(query: &str, operation_name: Option<&str>) -> Option<&'static str> {
    use async_graphql::parser::types::{OperationType, Selection};
    let document = async_graphql::parser::parse_query(query).ok()?;
    let operation = match operation_name {
        Some(name) => {
            document
                .operations
                .iter()
                .find(|(n, _)| n.map(|n| n.as_str()) == Some(name))?
                .1
        }
        None => document.operations.iter().next()?.1,
    };
    if operation.node.ty != OperationType::Subscription {
        return None;
    }
    let Selection::Field(field) = &operation.node.selection_set.node.items.first()?.node else {
        return None;
    };
    let name = field.node.name.node.as_str();
    subscription_fields()
        .iter()
        .find(|f| f.as_str() == name)
        .map(String::as_str)
}

//! What every resolver reads from its context, in one place: the application state, the
//! request (caller and request id), the tenant it acts on, and its id arguments parsed into
//! UUIDs with errors that name the argument.

use async_graphql::{Context, ID};
use uuid::Uuid;

use crate::access;
use crate::auth::{Auth, Principal, Tenant};
use crate::config::Settings;
use crate::domain::ids::parse_id_list;
use crate::error::{AppError, AppResult, FieldError};
use crate::state::AppState;

/// Per-request data: who is calling, from where, the request id for logs and audit records,
/// and the request's rate-limit charge (see `graphql::rate_limits`).
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub auth: Auth,
    pub request_id: Option<String>,
    /// The client's address (the socket's peer, or what a trusted proxy says it is).
    pub client: Option<std::net::IpAddr>,
    /// None: the request is not charged (the shared render of a subscription, whose
    /// subscribers are charged one by one).
    pub meter: Option<std::sync::Arc<crate::limits::Meter>>,
}

/// Reads the application state from a resolver's context. It is always present: the schema is
/// only built by [`super::build_schema`], which installs it.
pub fn state<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a AppState> {
    ctx.data::<AppState>()
}

pub fn request_context<'a>(ctx: &Context<'a>) -> Option<&'a RequestContext> {
    ctx.data_opt::<RequestContext>()
}

pub fn request_id(ctx: &Context<'_>) -> Option<String> {
    request_context(ctx).and_then(|r| r.request_id.clone())
}

pub fn client_addr(ctx: &Context<'_>) -> Option<String> {
    request_context(ctx).and_then(|r| r.client).map(|ip| ip.to_string())
}

/// Settings of the running instance, for resolvers that enforce configured limits.
pub fn settings<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Settings> {
    Ok(state(ctx)?.settings.as_ref())
}

/// The authenticated caller of this GraphQL request.
pub fn principal<'a>(ctx: &'a Context<'_>) -> AppResult<&'a Principal> {
    request_context(ctx)
        .map(|request| &request.auth)
        .unwrap_or(&Auth::Anonymous)
        .principal()
}

/// The organization a request acts on, from its optional `orgId` argument.
pub async fn tenant_for(ctx: &Context<'_>, org_id: Option<&ID>) -> AppResult<Tenant> {
    let caller = principal(ctx)?;
    let state = state(ctx).map_err(|_| AppError::internal("application state missing from schema"))?;
    access::tenant::resolve(state, caller, parse_org_id(org_id)?, request_id(ctx)).await
}

/// Parses an `orgId` argument; a malformed id is as unknown as a foreign one, so neither can
/// be told apart by probing.
fn parse_org_id(raw: Option<&ID>) -> AppResult<Option<Uuid>> {
    raw.map(|id| Uuid::parse_str(id.as_str()).map_err(|_| access::tenant::organization_not_found()))
        .transpose()
}

/// Parses an id argument; a malformed one is BAD_USER_INPUT naming the argument.
pub fn parse_id(id: &ID, argument: &str) -> AppResult<Uuid> {
    Uuid::parse_str(id.as_str())
        .map_err(|_| AppError::invalid_fields(vec![FieldError::new(argument, "not a valid id")]))
}

/// Parses an optional id-list filter argument (see [`parse_id_list`]).
pub fn parse_ids(field: &str, ids: &Option<Vec<ID>>) -> AppResult<Option<Vec<Uuid>>> {
    ids.as_deref()
        .map(|ids| parse_id_list(field, ids).map_err(AppError::invalid_fields))
        .transpose()
}

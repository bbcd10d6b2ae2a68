//! Which organization a request acts on: the caller's own, or — for a SUPER_ADMIN only — one
//! named by an explicit `orgId`, audited in the chain of the organization accessed. Another
//! tenant's id answers NOT_FOUND, never FORBIDDEN, so ids of other organizations cannot be
//! probed.

use diesel_async::AsyncConnection;
use uuid::Uuid;

use crate::audit::{self, Actor, AuditEvent};
use crate::auth::{Principal, Role, Tenant};
use crate::db::orgs;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// The answer to an organization the caller may not see, whether it exists or not.
pub fn organization_not_found() -> AppError {
    AppError::NotFound("organization not found".into())
}

/// The organization this request acts on. `requested` is the optional `orgId` argument.
pub async fn resolve(
    state: &AppState,
    principal: &Principal,
    requested: Option<Uuid>,
    request_id: Option<String>,
) -> AppResult<Tenant> {
    let Some(org_id) = requested.filter(|id| *id != principal.org_id) else {
        return Ok(Tenant::of(principal));
    };
    // An API key acts for its own organization only, whoever created it.
    if principal.role != Role::SuperAdmin || principal.api_key.is_some() {
        return Err(organization_not_found());
    }
    // Acts as the organization asked for: it is visible only if it exists.
    let mut conn = state.db.get(&Tenant::granted(org_id)).await?;
    if !orgs::exists(&mut conn, org_id).await? {
        return Err(organization_not_found());
    }
    // Cross-tenant access is recorded in the chain of the organization that was accessed.
    let event = AuditEvent::new(Some(org_id), Some(Actor::of(principal)), "tenant.cross_access")
        .target("organization", org_id)
        .details(serde_json::json!({ "homeOrganizationId": principal.org_id }))
        .request_id(request_id);
    // In a transaction: the chain's advisory lock is transaction-scoped, and the root fields of
    // one request resolve concurrently (two cross-tenant fields = two records at once).
    conn.transaction(async |conn| audit::record(conn, event).await).await?;
    Ok(Tenant::granted(org_id))
}

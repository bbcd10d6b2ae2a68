//! The one place that decides which organization a request may read and write.
//!
//! Every data-layer function that touches tenant data takes a [`Tenant`], and a `Tenant` comes
//! only from [`resolve`] (the caller's own organization, or — for a SUPER_ADMIN only — one named
//! by an explicit `orgId`, audited) or from [`Tenant::for_system`] (CLI, seeders, webhooks that
//! found the organization themselves). Another tenant's id answers NOT_FOUND, never FORBIDDEN,
//! so ids of other organizations cannot be probed.

use diesel_async::AsyncConnection;
use uuid::Uuid;

use crate::audit::{self, Actor, AuditEvent};
use crate::auth::{Principal, Role};
use crate::db::{self, orgs};
use crate::error::{AppError, AppResult};
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tenant {
    org_id: Uuid,
}

impl Tenant {
    pub fn org_id(&self) -> Uuid {
        self.org_id
    }

    /// The caller's own organization.
    pub fn of(principal: &Principal) -> Self {
        Self {
            org_id: principal.org_id,
        }
    }

    /// For code acting as the system, never on behalf of a request's caller: the CLI, seeders,
    /// and ingest paths that authenticated the organization themselves.
    pub fn for_system(org_id: Uuid) -> Self {
        Self { org_id }
    }
}

fn organization_not_found() -> AppError {
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
    if principal.role != Role::SuperAdmin {
        return Err(organization_not_found());
    }
    let mut conn = db::conn(&state.db).await?;
    if !orgs::exists(&mut conn, org_id).await? {
        return Err(organization_not_found());
    }
    // Cross-tenant access is recorded in the chain of the organization that was accessed.
    let event = AuditEvent::new(
        Some(org_id),
        Some(Actor {
            user_id: principal.user_id,
            role: principal.role,
        }),
        "tenant.cross_access",
    )
    .target("organization", org_id)
    .details(serde_json::json!({ "homeOrganizationId": principal.org_id }))
    .request_id(request_id);
    // In a transaction: the chain's advisory lock is transaction-scoped, and the root fields of
    // one request resolve concurrently (two cross-tenant fields = two records at once).
    conn.transaction(async |conn| audit::record(conn, event).await).await?;
    Ok(Tenant { org_id })
}

/// Parses an `orgId` argument; a malformed id is as unknown as a foreign one.
pub fn parse_org_id(raw: Option<&async_graphql::ID>) -> AppResult<Option<Uuid>> {
    raw.map(|id| Uuid::parse_str(id.as_str()).map_err(|_| organization_not_found()))
        .transpose()
}

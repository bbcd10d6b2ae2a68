//! The handle that names the organization a data function may read and write.
//!
//! Every data-layer function that touches tenant data takes a [`Tenant`], and a `Tenant` comes
//! only from [`crate::access::tenant::resolve`] (the caller's own organization, or one a
//! SUPER_ADMIN named, audited), from [`Tenant::of`] (the caller's own) or from
//! [`Tenant::for_system`] (CLI, seeders, webhooks that found the organization themselves).

use uuid::Uuid;

use crate::auth::Principal;

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

    /// Another organization a caller was granted by [`crate::access::tenant::resolve`], after
    /// its checks (SUPER_ADMIN, organization exists, access audited).
    pub(crate) fn granted(org_id: Uuid) -> Self {
        Self { org_id }
    }
}

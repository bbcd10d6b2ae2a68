//! Field guards. Every guarded field names the lowest role or the permission it needs; the
//! default for a new field is deny (the schema-derived test fails for a field that is neither
//! guarded nor listed as public).

use async_graphql::{Context, Guard, ID};

use crate::auth::{Permission, Role};
use crate::error::AppError;
use crate::graphql::context::principal;

fn forbidden(needed: Role) -> AppError {
    AppError::Forbidden(format!("requires role {needed} or higher"))
}

/// Passes when the caller's role is at least `role`.
pub struct RoleGuard(pub Role);

impl Guard for RoleGuard {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let caller = principal(ctx)?;
        if caller.role >= self.0 {
            Ok(())
        } else {
            Err(forbidden(self.0).into())
        }
    }
}

/// Passes when the caller's role holds `permission`.
pub struct PermissionGuard(pub Permission);

impl Guard for PermissionGuard {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let caller = principal(ctx)?;
        if caller.role.has(self.0) {
            Ok(())
        } else {
            Err(forbidden(self.0.lowest_role()).into())
        }
    }
}

/// Passes for the roles that read reports: VIEWER (shared reports) and SUPERVISOR and above;
/// not AGENT (see `reports`: the one exception to "a higher role holds every permission of the
/// lower ones").
pub struct ReportReaderGuard;

impl Guard for ReportReaderGuard {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let caller = principal(ctx)?;
        if crate::reports::may_read(caller.role) {
            Ok(())
        } else {
            Err(AppError::Forbidden("reports are for VIEWER (shared reports) and SUPERVISOR or higher".into()).into())
        }
    }
}

/// Passes when the target user is the caller, or the caller's role is at least `role`.
pub struct SelfOrRoleGuard {
    pub target_user_id: Option<ID>,
    pub role: Role,
}

impl SelfOrRoleGuard {
    pub fn new(target_user_id: Option<ID>, role: Role) -> Self {
        Self { target_user_id, role }
    }
}

impl Guard for SelfOrRoleGuard {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let caller = principal(ctx)?;
        let is_self = match &self.target_user_id {
            None => true,
            Some(id) => id.as_str() == caller.user_id.to_string(),
        };
        if is_self || caller.role >= self.role {
            Ok(())
        } else {
            Err(forbidden(self.role).into())
        }
    }
}

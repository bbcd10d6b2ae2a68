//! Reading and verifying the audit trail (`auditLog`, `verifyAuditChain`): an ADMIN reads their
//! own organization's chain; a SUPER_ADMIN names another organization with `orgId` (granted and
//! itself audited by `access::tenant`), or the platform chain — the records that belong to no
//! organization, such as denials of forged credentials and failed logins for unknown
//! addresses. An ADMIN naming another organization gets NOT_FOUND, as for every other field.
//!
//! Reads of the log are not themselves audited: they change nothing, and a record per page
//! would make the log mostly about itself. Verification is pure reading too.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::access;
use crate::audit::{self, AuditFilter, ChainReport};
use crate::auth::{Principal, Role, Tenant};
use crate::db::models::AuditRow;
use crate::error::{AppError, AppResult, FieldError};
use crate::state::AppState;

/// Which chain a request reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chain {
    /// The caller's own organization, or one a SUPER_ADMIN named.
    Organization(Option<Uuid>),
    /// Records of no organization; SUPER_ADMIN only.
    Platform,
}

/// Longest `action` or `target` filter accepted.
const MAX_FILTER_CHARS: usize = 200;

/// The organization (None: the platform chain) a caller may read for `chain`.
async fn resolve(
    state: &AppState,
    caller: &Principal,
    chain: Chain,
    request_id: Option<String>,
) -> AppResult<Option<Tenant>> {
    if caller.role < Role::Admin {
        return Err(AppError::Forbidden(
            "the audit log requires role ADMIN or higher".into(),
        ));
    }
    match chain {
        Chain::Platform if caller.role == Role::SuperAdmin && caller.api_key.is_none() => Ok(None),
        Chain::Platform => Err(AppError::Forbidden(
            "the platform chain requires role SUPER_ADMIN".into(),
        )),
        Chain::Organization(requested) => {
            let tenant = access::tenant::resolve(state, caller, requested, request_id).await?;
            Ok(Some(tenant))
        }
    }
}

fn check_range(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>, prefix: &str) -> AppResult<()> {
    if let (Some(from), Some(to)) = (from, to) {
        if from >= to {
            return Err(AppError::invalid_fields(vec![FieldError::new(
                format!("{prefix}to"),
                "must be after `from`",
            )]));
        }
    }
    Ok(())
}

/// Validates a filter: lengths, range order.
pub fn validate(filter: &AuditFilter) -> AppResult<()> {
    let mut errors = Vec::new();
    if filter
        .action
        .as_ref()
        .is_some_and(|a| a.is_empty() || a.chars().count() > MAX_FILTER_CHARS)
    {
        errors.push(FieldError::new(
            "filter.action",
            format!("1 to {MAX_FILTER_CHARS} characters"),
        ));
    }
    if filter
        .target_id
        .as_ref()
        .is_some_and(|t| t.is_empty() || t.chars().count() > MAX_FILTER_CHARS)
    {
        errors.push(FieldError::new(
            "filter.target",
            format!("1 to {MAX_FILTER_CHARS} characters"),
        ));
    }
    if !errors.is_empty() {
        return Err(AppError::invalid_fields(errors));
    }
    check_range(filter.from, filter.to, "filter.")
}

/// One page of the chain, newest first; `limit + 1` rows are read so the caller knows whether
/// another page follows.
pub async fn page(
    state: &AppState,
    caller: &Principal,
    chain: Chain,
    filter: &AuditFilter,
    before_seq: Option<i64>,
    limit: i64,
    request_id: Option<String>,
) -> AppResult<Vec<AuditRow>> {
    validate(filter)?;
    match resolve(state, caller, chain, request_id).await? {
        Some(tenant) => {
            let mut conn = state.db.get(&tenant).await?;
            audit::page(
                &mut conn,
                Some(tenant.org_id()),
                filter,
                before_seq,
                limit.saturating_add(1),
            )
            .await
        }
        None => {
            // Cross-tenant (`db::tenancy`): the platform chain belongs to no organization.
            let mut conn = state.system_db.get().await?;
            audit::page(&mut conn, None, filter, before_seq, limit.saturating_add(1)).await
        }
    }
}

/// Verifies the chain over `[from, to)` and names its first broken record.
pub async fn verify(
    state: &AppState,
    caller: &Principal,
    chain: Chain,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    request_id: Option<String>,
) -> AppResult<ChainReport> {
    check_range(from, to, "")?;
    match resolve(state, caller, chain, request_id).await? {
        Some(tenant) => {
            let mut conn = state.db.get(&tenant).await?;
            audit::verify_range(&mut conn, Some(tenant.org_id()), from, to).await
        }
        None => {
            let mut conn = state.system_db.get().await?;
            audit::verify_range(&mut conn, None, from, to).await
        }
    }
}

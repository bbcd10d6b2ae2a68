//! `auditLog` and `verifyAuditChain`: the audit trail as people read and check it (rules in
//! `management::audit`, the chain itself in `audit`). ADMIN+; never reachable with an API key.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, Enum, InputObject, Json, Object, SimpleObject, ID};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};

use crate::audit::{AuditFilter, Breach, ChainReport};
use crate::auth::{Permission, Role};
use crate::db::models::AuditRow;
use crate::error::{AppError, AppResult, FieldError};
use crate::graphql::context::{parse_id, principal, request_id, settings, state};
use crate::graphql::guards::PermissionGuard;
use crate::graphql::pagination::page_size;
use crate::graphql::DEFAULT_PAGE_SIZE;
use crate::management::audit::{self as manage, Chain};

/// One record of the audit trail.
pub struct AuditEntry(pub AuditRow);

#[Object]
impl AuditEntry {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Position in its organization's hash chain, from 1, without gaps.
    async fn sequence(&self) -> i64 {
        self.0.chain_seq
    }
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    /// The user who acted; null for the system or an unverified caller.
    async fn actor_id(&self) -> Option<ID> {
        self.0.actor_user_id.map(|id| ID(id.to_string()))
    }
    /// The actor's role at the time.
    async fn actor_role(&self) -> Option<Role> {
        self.0.actor_role.as_deref().and_then(|r| r.parse().ok())
    }
    /// Dotted verb: `user.create`, `settings.update`, `access.forbidden`…
    async fn action(&self) -> &str {
        &self.0.action
    }
    /// What was acted on: a kind (`user`, `report`, `operation`…) and its id.
    async fn target_type(&self) -> Option<&str> {
        self.0.target_type.as_deref()
    }
    async fn target_id(&self) -> Option<&str> {
        self.0.target_id.as_deref()
    }
    /// The state before a change, when the record carries one (`details.before`).
    async fn before(&self) -> Option<Json<serde_json::Value>> {
        self.0.details.get("before").cloned().map(Json)
    }
    /// The state after a change, when the record carries one (`details.after`).
    async fn after(&self) -> Option<Json<serde_json::Value>> {
        self.0.details.get("after").cloned().map(Json)
    }
    /// Everything the record holds about the action.
    async fn details(&self) -> Json<serde_json::Value> {
        Json(self.0.details.clone())
    }
    /// The id of the request that caused it (`X-Request-Id`).
    async fn request_id(&self) -> Option<&str> {
        self.0.request_id.as_deref()
    }
    /// The client's address, when the record was made for a request that had one.
    async fn client_address(&self) -> Option<&str> {
        self.0.client_addr.as_deref()
    }
}

pub type AuditLogConnection = Connection<String, AuditEntry, EmptyFields>;

/// Filters of `auditLog`; they combine with AND.
#[derive(InputObject, Default)]
pub struct AuditLogFilter {
    /// The acting user's id.
    pub actor: Option<ID>,
    /// An exact action (`user.create`), or every action under a prefix ending in `.*`
    /// (`access.*`).
    pub action: Option<String>,
    /// The target's id (a user id, a report id, an operation name…).
    pub target: Option<String>,
    /// Inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: Option<DateTime<Utc>>,
}

/// What is wrong with a record of the chain.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum AuditChainProblem {
    /// A record is missing (deleted); `sequence` is the missing number.
    Missing,
    /// A sequence number repeats or goes backwards.
    OutOfOrder,
    /// The record's link to the previous record's hash is broken.
    LinkBroken,
    /// The record's content does not match its hash (edited).
    ContentAltered,
}

impl From<Breach> for AuditChainProblem {
    fn from(breach: Breach) -> Self {
        match breach {
            Breach::Missing => AuditChainProblem::Missing,
            Breach::OutOfOrder => AuditChainProblem::OutOfOrder,
            Breach::LinkBroken => AuditChainProblem::LinkBroken,
            Breach::ContentAltered => AuditChainProblem::ContentAltered,
        }
    }
}

/// The first broken record of a chain.
#[derive(SimpleObject)]
pub struct AuditChainBreak {
    /// Where the chain breaks: the missing sequence number, or the broken record's own.
    sequence: i64,
    /// The stored record where the break shows (for a missing record, the one after the gap).
    id: ID,
    /// That stored record's sequence number.
    record_sequence: i64,
    problem: AuditChainProblem,
    /// The problem in words.
    message: String,
}

/// The outcome of `verifyAuditChain`.
#[derive(SimpleObject)]
pub struct AuditChainVerification {
    /// True when every record checked matches its hash and links to its predecessor.
    intact: bool,
    records_checked: i64,
    /// The first and last sequence numbers checked (null when the range held no record).
    first_sequence: Option<i64>,
    last_sequence: Option<i64>,
    first_broken: Option<AuditChainBreak>,
}

impl From<ChainReport> for AuditChainVerification {
    fn from(report: ChainReport) -> Self {
        Self {
            intact: report.intact(),
            records_checked: i64::try_from(report.records).unwrap_or(i64::MAX),
            first_sequence: report.first_seq,
            last_sequence: report.last_seq,
            first_broken: report.first_broken.map(|broken| AuditChainBreak {
                sequence: broken.sequence,
                id: ID(broken.id.to_string()),
                record_sequence: broken.record_sequence,
                problem: broken.breach.into(),
                message: broken.breach.describe().to_owned(),
            }),
        }
    }
}

fn encode_cursor(sequence: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("seq:{sequence}"))
}

fn decode_cursor(cursor: &str) -> AppResult<i64> {
    let invalid = || AppError::invalid_fields(vec![FieldError::new("after", "not a cursor returned by this API")]);
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    text.strip_prefix("seq:")
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 1)
        .ok_or_else(invalid)
}

fn chain(org_id: Option<&ID>, platform: bool) -> AppResult<Chain> {
    if platform {
        if org_id.is_some() {
            return Err(AppError::invalid_fields(vec![FieldError::new(
                "orgId",
                "leave it out when reading the platform chain",
            )]));
        }
        return Ok(Chain::Platform);
    }
    let requested = org_id
        .map(|id| uuid::Uuid::parse_str(id.as_str()).map_err(|_| crate::access::tenant::organization_not_found()))
        .transpose()?;
    Ok(Chain::Organization(requested))
}

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// The audit trail, newest first (keyset pages by sequence). ADMIN+: their organization's
    /// chain; SUPER_ADMIN: another organization's with `orgId` (the access is itself audited),
    /// or with `platform: true` the records that belong to no organization (denials of forged
    /// credentials, failed logins for unknown addresses). BAD_USER_INPUT names a bad filter,
    /// `first` or `after`.
    #[graphql(
        guard = "PermissionGuard(Permission::Administer)",
        complexity = "usize::try_from(first.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, 1_000)).unwrap_or(1) * child_complexity"
    )]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditLogFilter>,
        first: Option<i32>,
        after: Option<String>,
        org_id: Option<ID>,
        #[graphql(default = false)] platform: bool,
    ) -> async_graphql::Result<AuditLogConnection> {
        let limit = page_size(first, DEFAULT_PAGE_SIZE, settings(ctx)?.max_page_size)?;
        let before_seq = after.as_deref().map(decode_cursor).transpose()?;
        let filter = filter.unwrap_or_default();
        let actor_user_id = filter
            .actor
            .as_ref()
            .map(|id| parse_id(id, "filter.actor"))
            .transpose()?;
        let filter = AuditFilter {
            actor_user_id,
            action: filter.action,
            target_id: filter.target,
            from: filter.from,
            to: filter.to,
        };
        let chain = chain(org_id.as_ref(), platform)?;
        let mut rows = manage::page(
            state(ctx)?,
            principal(ctx)?,
            chain,
            &filter,
            before_seq,
            limit,
            request_id(ctx),
        )
        .await?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_next = rows.len() > limit;
        rows.truncate(limit);
        let mut connection = Connection::new(after.is_some(), has_next);
        connection.edges.extend(
            rows.into_iter()
                .map(|row| Edge::new(encode_cursor(row.chain_seq), AuditEntry(row))),
        );
        Ok(connection)
    }

    /// Recomputes the hash chain over records that occurred in `[from, to)` (either end open)
    /// and names the first broken record: its sequence, id and what is wrong. ADMIN+; `orgId`
    /// and `platform` as for `auditLog`.
    #[graphql(guard = "PermissionGuard(Permission::Administer)")]
    async fn verify_audit_chain(
        &self,
        ctx: &Context<'_>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        org_id: Option<ID>,
        #[graphql(default = false)] platform: bool,
    ) -> async_graphql::Result<AuditChainVerification> {
        let chain = chain(org_id.as_ref(), platform)?;
        let report = manage::verify(state(ctx)?, principal(ctx)?, chain, from, to, request_id(ctx)).await?;
        Ok(report.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(decode_cursor(&encode_cursor(42)).ok(), Some(42));
        assert!(decode_cursor("nope").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("seq:0")).is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("seq:x")).is_err());
    }
}

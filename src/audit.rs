//! The audit trail: append-only (the database refuses UPDATE, DELETE and TRUNCATE) and
//! hash-chained per organization.
//!
//! Each record's hash is SHA-256 over the previous record's hash and a canonical JSON encoding
//! of this record's content, so deleting, reordering or editing a record (e.g. by someone with
//! superuser access who dropped the trigger) is detected by [`verify_chain`]. Records are
//! written inside the caller's transaction: an action and its audit record commit together or
//! not at all. Writers of one chain serialize on a transaction-scoped advisory lock.

use chrono::{DateTime, SubsecRound, Utc};
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, TransactionManager};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::auth::Role;
use crate::db::models::{AuditRow, NewAuditRow};
use crate::db::schema::audit_log;
use crate::error::{AppError, AppResult};

/// Who did it.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    pub user_id: Uuid,
    pub role: Role,
}

/// One thing that happened.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// The organization whose chain records it; None for platform events (e.g. a failed login
    /// for an address that belongs to nobody).
    pub organization_id: Option<Uuid>,
    pub actor: Option<Actor>,
    /// Dotted verb, e.g. `user.create`, `settings.update`, `auth.login_failed`.
    pub action: &'static str,
    pub target_type: Option<&'static str>,
    pub target_id: Option<String>,
    pub details: Value,
    pub request_id: Option<String>,
}

impl AuditEvent {
    pub fn new(organization_id: Option<Uuid>, actor: Option<Actor>, action: &'static str) -> Self {
        Self {
            organization_id,
            actor,
            action,
            target_type: None,
            target_id: None,
            details: Value::Object(Default::default()),
            request_id: None,
        }
    }

    pub fn target(mut self, target_type: &'static str, target_id: impl ToString) -> Self {
        self.target_type = Some(target_type);
        self.target_id = Some(target_id.to_string());
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn request_id(mut self, request_id: Option<String>) -> Self {
        self.request_id = request_id;
        self
    }
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    #[allow(dead_code)]
    locked: bool,
}

fn chain_key(organization_id: Option<Uuid>) -> String {
    match organization_id {
        Some(id) => format!("omnivox.audit.{id}"),
        None => "omnivox.audit.platform".to_owned(),
    }
}

/// Appends one record to its organization's chain, in the caller's transaction.
pub async fn record(conn: &mut AsyncPgConnection, event: AuditEvent) -> AppResult<()> {
    // The chain's advisory lock lasts as long as the transaction: outside one it would be
    // released at once and two concurrent writers could take the same sequence number.
    let depth = <AsyncPgConnection as AsyncConnection>::TransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth()
        .map_err(|e| AppError::Internal(format!("audit: transaction state: {e}")))?;
    if depth.is_none() {
        return Err(AppError::Internal(
            "audit::record called outside a transaction".to_owned(),
        ));
    }
    let _: Locked = diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0)) IS NOT NULL AS locked")
        .bind::<Text, _>(chain_key(event.organization_id))
        .get_result(conn)
        .await?;
    let previous: Option<(i64, Vec<u8>)> = chain_filter(event.organization_id)
        .select((audit_log::chain_seq, audit_log::hash))
        .order(audit_log::chain_seq.desc())
        .first(conn)
        .await
        .optional()?;
    let (seq, prev_hash) = match previous {
        Some((seq, hash)) => (seq + 1, Some(hash)),
        None => (1, None),
    };
    // Postgres keeps microseconds; hash what will be stored so verification can recompute it.
    let occurred_at = Utc::now().trunc_subsecs(6);
    let mut row = NewAuditRow {
        organization_id: event.organization_id,
        chain_seq: seq,
        occurred_at,
        actor_user_id: event.actor.map(|a| a.user_id),
        actor_role: event.actor.map(|a| a.role.as_str().to_owned()),
        action: event.action.to_owned(),
        target_type: event.target_type.map(str::to_owned),
        target_id: event.target_id,
        details: event.details,
        request_id: event.request_id,
        prev_hash,
        hash: Vec::new(),
    };
    row.hash = content_hash(
        row.prev_hash.as_deref(),
        &RecordContent {
            organization_id: row.organization_id,
            chain_seq: row.chain_seq,
            occurred_at: row.occurred_at,
            actor_user_id: row.actor_user_id,
            actor_role: row.actor_role.as_deref(),
            action: &row.action,
            target_type: row.target_type.as_deref(),
            target_id: row.target_id.as_deref(),
            details: &row.details,
            request_id: row.request_id.as_deref(),
        },
    );
    diesel::insert_into(audit_log::table).values(&row).execute(conn).await?;
    Ok(())
}

fn chain_filter(organization_id: Option<Uuid>) -> audit_log::BoxedQuery<'static, diesel::pg::Pg> {
    match organization_id {
        Some(id) => audit_log::table.filter(audit_log::organization_id.eq(id)).into_boxed(),
        None => audit_log::table
            .filter(audit_log::organization_id.is_null())
            .into_boxed(),
    }
}

struct RecordContent<'a> {
    organization_id: Option<Uuid>,
    chain_seq: i64,
    occurred_at: DateTime<Utc>,
    actor_user_id: Option<Uuid>,
    actor_role: Option<&'a str>,
    action: &'a str,
    target_type: Option<&'a str>,
    target_id: Option<&'a str>,
    details: &'a Value,
    request_id: Option<&'a str>,
}

fn content_hash(prev_hash: Option<&[u8]>, content: &RecordContent<'_>) -> Vec<u8> {
    let encoded = serde_json::json!([
        content.organization_id,
        content.chain_seq,
        content.occurred_at.timestamp_micros(),
        content.actor_user_id,
        content.actor_role,
        content.action,
        content.target_type,
        content.target_id,
        content.request_id,
    ]);
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.unwrap_or(&[0u8; 32]));
    hasher.update(canonical_json(&encoded).as_bytes());
    hasher.update(canonical_json(content.details).as_bytes());
    hasher.finalize().to_vec()
}

/// JSON with object keys sorted at every level, so the encoding does not depend on the order
/// in which `jsonb` hands keys back.
pub fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical_json(&map[k])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(canonical_json).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// The outcome of checking one organization's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub records: usize,
    /// The sequence number of the first record whose hash or link does not match.
    pub first_broken_seq: Option<i64>,
}

impl ChainReport {
    pub fn intact(&self) -> bool {
        self.first_broken_seq.is_none()
    }
}

/// Recomputes every hash of a chain and checks that sequence numbers have no gaps.
pub async fn verify_chain(conn: &mut AsyncPgConnection, organization_id: Option<Uuid>) -> AppResult<ChainReport> {
    let rows: Vec<AuditRow> = chain_filter(organization_id)
        .select(AuditRow::as_select())
        .order(audit_log::chain_seq.asc())
        .load(conn)
        .await?;
    let mut prev: Option<Vec<u8>> = None;
    for (index, row) in rows.iter().enumerate() {
        let expected_seq = i64::try_from(index).unwrap_or(i64::MAX) + 1;
        let expected = content_hash(
            prev.as_deref(),
            &RecordContent {
                organization_id: row.organization_id,
                chain_seq: row.chain_seq,
                occurred_at: row.occurred_at,
                actor_user_id: row.actor_user_id,
                actor_role: row.actor_role.as_deref(),
                action: &row.action,
                target_type: row.target_type.as_deref(),
                target_id: row.target_id.as_deref(),
                details: &row.details,
                request_id: row.request_id.as_deref(),
            },
        );
        if row.chain_seq != expected_seq || row.prev_hash != prev || row.hash != expected {
            return Ok(ChainReport {
                records: rows.len(),
                first_broken_seq: Some(row.chain_seq),
            });
        }
        prev = Some(row.hash.clone());
    }
    Ok(ChainReport {
        records: rows.len(),
        first_broken_seq: None,
    })
}

/// The most recent records of a chain, newest first (for tests and the admin audit view).
pub async fn recent(
    conn: &mut AsyncPgConnection,
    organization_id: Option<Uuid>,
    limit: i64,
) -> AppResult<Vec<AuditRow>> {
    Ok(chain_filter(organization_id)
        .select(AuditRow::as_select())
        .order(audit_log::chain_seq.desc())
        .limit(limit)
        .load(conn)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a = serde_json::json!({"b": 1, "a": {"d": [1, {"z": 0, "y": 1}], "c": "x"}});
        assert_eq!(canonical_json(&a), r#"{"a":{"c":"x","d":[1,{"y":1,"z":0}]},"b":1}"#);
    }
}

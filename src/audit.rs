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

use crate::auth::{Principal, Role};
use crate::db::models::{AuditRow, NewAuditRow};
use crate::db::schema::audit_log;
use crate::error::{AppError, AppResult};

/// Who did it.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    pub user_id: Uuid,
    pub role: Role,
}

impl Actor {
    /// The caller as the actor of a record (an API key acts as its creator).
    pub fn of(principal: &Principal) -> Self {
        Actor {
            user_id: principal.user_id,
            role: principal.role,
        }
    }
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
    /// The address of the client whose request caused it, when there was one.
    pub client_addr: Option<String>,
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
            client_addr: None,
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

    pub fn client_addr(mut self, client_addr: Option<String>) -> Self {
        self.client_addr = client_addr;
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
    let organization_id = event.organization_id;
    append(conn, organization_id, vec![event]).await
}

/// Appends records to chains in the caller's transaction, taking each chain's lock once
/// (the batched writer of denials, `state::audit_queue`, writes this way). Records keep their
/// order within a chain.
pub async fn record_many(conn: &mut AsyncPgConnection, events: Vec<AuditEvent>) -> AppResult<()> {
    let mut by_chain: Vec<(Option<Uuid>, Vec<AuditEvent>)> = Vec::new();
    for event in events {
        match by_chain.iter_mut().find(|(org, _)| *org == event.organization_id) {
            Some((_, list)) => list.push(event),
            None => by_chain.push((event.organization_id, vec![event])),
        }
    }
    // A fixed lock order (platform chain first, then by id), so two batches that touch the
    // same chains cannot deadlock.
    by_chain.sort_by_key(|(org, _)| *org);
    for (organization_id, events) in by_chain {
        append(conn, organization_id, events).await?;
    }
    Ok(())
}

async fn append(conn: &mut AsyncPgConnection, organization_id: Option<Uuid>, events: Vec<AuditEvent>) -> AppResult<()> {
    if events.is_empty() {
        return Ok(());
    }
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
        .bind::<Text, _>(chain_key(organization_id))
        .get_result(conn)
        .await?;
    let previous: Option<(i64, Vec<u8>)> = chain_filter(organization_id)
        .select((audit_log::chain_seq, audit_log::hash))
        .order(audit_log::chain_seq.desc())
        .first(conn)
        .await
        .optional()?;
    let (mut seq, mut prev_hash) = match previous {
        Some((seq, hash)) => (seq, Some(hash)),
        None => (0, None),
    };
    let mut rows = Vec::with_capacity(events.len());
    for event in events {
        seq += 1;
        // Postgres keeps microseconds; hash what will be stored so verification can recompute it.
        let occurred_at = Utc::now().trunc_subsecs(6);
        let mut row = NewAuditRow {
            organization_id,
            chain_seq: seq,
            occurred_at,
            actor_user_id: event.actor.map(|a| a.user_id),
            actor_role: event.actor.map(|a| a.role.as_str().to_owned()),
            action: event.action.to_owned(),
            target_type: event.target_type.map(str::to_owned),
            target_id: event.target_id,
            details: event.details,
            request_id: event.request_id,
            prev_hash: prev_hash.take(),
            hash: Vec::new(),
            client_addr: event.client_addr,
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
                client_addr: row.client_addr.as_deref(),
            },
        );
        prev_hash = Some(row.hash.clone());
        rows.push(row);
    }
    diesel::insert_into(audit_log::table)
        .values(&rows)
        .execute(conn)
        .await?;
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
    client_addr: Option<&'a str>,
}

fn content_hash(prev_hash: Option<&[u8]>, content: &RecordContent<'_>) -> Vec<u8> {
    let mut encoded = serde_json::json!([
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
    // Appended only when present, so records written before the column existed (and records
    // without a client) hash as they always did.
    if let (Some(address), Value::Array(fields)) = (content.client_addr, &mut encoded) {
        fields.push(Value::String(address.to_owned()));
    }
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

/// What is wrong with the first broken record of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breach {
    /// The sequence has a gap: the record with this sequence number is gone (deleted). The
    /// record reported is the one that follows the gap.
    Missing,
    /// Two records claim the same sequence number, or the numbers go backwards.
    OutOfOrder,
    /// The record's `prev_hash` is not the previous record's hash: a record before it was
    /// replaced, or the record was moved.
    LinkBroken,
    /// The record's content no longer matches its hash: it was edited.
    ContentAltered,
}

impl Breach {
    pub fn as_str(self) -> &'static str {
        match self {
            Breach::Missing => "MISSING",
            Breach::OutOfOrder => "OUT_OF_ORDER",
            Breach::LinkBroken => "LINK_BROKEN",
            Breach::ContentAltered => "CONTENT_ALTERED",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Breach::Missing => "a record is missing before this one (deleted)",
            Breach::OutOfOrder => "the sequence number repeats or goes backwards",
            Breach::LinkBroken => "prev_hash does not match the previous record's hash",
            Breach::ContentAltered => "the content does not match the record's hash (edited)",
        }
    }
}

/// The first broken record of a chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenRecord {
    /// The sequence number where the chain breaks: for [`Breach::Missing`], the number that is
    /// absent (the first one, when several are); otherwise the broken record's own.
    pub sequence: i64,
    /// The stored record where the break shows: the broken one, or for a gap the record that
    /// follows it (a deleted record has no id any more).
    pub id: i64,
    /// That record's own sequence number.
    pub record_sequence: i64,
    pub breach: Breach,
}

/// The outcome of checking one organization's chain (or a time range of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Records checked.
    pub records: usize,
    /// The sequence number of the first record whose hash or link does not match (see
    /// [`BrokenRecord::sequence`]).
    pub first_broken_seq: Option<i64>,
    pub first_broken: Option<BrokenRecord>,
    /// The sequence numbers checked (None when the range held no record).
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
}

impl ChainReport {
    pub fn intact(&self) -> bool {
        self.first_broken.is_none()
    }
}

/// Rows read per round trip while verifying, so a long chain is checked in constant memory.
const VERIFY_PAGE: i64 = 2_000;

/// Recomputes every hash of a chain and checks that sequence numbers have no gaps.
pub async fn verify_chain(conn: &mut AsyncPgConnection, organization_id: Option<Uuid>) -> AppResult<ChainReport> {
    verify_range(conn, organization_id, None, None).await
}

/// Verifies the records of a chain that occurred in `[from, to)` (either end open): each
/// record's hash is recomputed from its content and the previous record's hash, links and
/// sequence numbers are checked, and the first record that fails is named. A range that
/// starts mid-chain is anchored on the stored hash of the record just before it.
pub async fn verify_range(
    conn: &mut AsyncPgConnection,
    organization_id: Option<Uuid>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> AppResult<ChainReport> {
    let mut report = ChainReport {
        records: 0,
        first_broken_seq: None,
        first_broken: None,
        first_seq: None,
        last_seq: None,
    };
    // Where the range starts in the chain, and what comes just before it.
    let start_seq: Option<i64> = match from {
        None => Some(0),
        Some(from) => chain_filter(organization_id)
            .filter(audit_log::occurred_at.ge(from))
            .select(audit_log::chain_seq)
            .order(audit_log::chain_seq.asc())
            .first(conn)
            .await
            .optional()?,
    };
    let Some(start_seq) = start_seq else {
        return Ok(report);
    };
    let anchor: Option<(i64, Vec<u8>)> = if from.is_some() {
        chain_filter(organization_id)
            .filter(audit_log::chain_seq.lt(start_seq))
            .select((audit_log::chain_seq, audit_log::hash))
            .order(audit_log::chain_seq.desc())
            .first(conn)
            .await
            .optional()?
    } else {
        None
    };
    let (mut expected_seq, mut prev) = match anchor {
        Some((seq, hash)) => (seq + 1, Some(hash)),
        None => (1, None),
    };
    let mut after = start_seq - 1;
    loop {
        let mut query = chain_filter(organization_id)
            .filter(audit_log::chain_seq.gt(after))
            .select(AuditRow::as_select())
            .order(audit_log::chain_seq.asc())
            .limit(VERIFY_PAGE);
        if let Some(to) = to {
            query = query.filter(audit_log::occurred_at.lt(to));
        }
        let rows: Vec<AuditRow> = query.load(conn).await?;
        let Some(last) = rows.last() else {
            break;
        };
        after = last.chain_seq;
        let page_len = rows.len();
        for row in rows {
            report.records += 1;
            report.first_seq.get_or_insert(row.chain_seq);
            report.last_seq = Some(row.chain_seq);
            let breach = if row.chain_seq > expected_seq {
                Some(Breach::Missing)
            } else if row.chain_seq < expected_seq {
                Some(Breach::OutOfOrder)
            } else if row.prev_hash != prev {
                Some(Breach::LinkBroken)
            } else if row.hash != recompute(prev.as_deref(), &row) {
                Some(Breach::ContentAltered)
            } else {
                None
            };
            if let Some(breach) = breach {
                let sequence = if breach == Breach::Missing {
                    expected_seq
                } else {
                    row.chain_seq
                };
                report.first_broken_seq = Some(sequence);
                report.first_broken = Some(BrokenRecord {
                    sequence,
                    id: row.id,
                    record_sequence: row.chain_seq,
                    breach,
                });
                return Ok(report);
            }
            expected_seq = row.chain_seq + 1;
            prev = Some(row.hash);
        }
        if i64::try_from(page_len).unwrap_or(i64::MAX) < VERIFY_PAGE {
            break;
        }
    }
    Ok(report)
}

fn recompute(prev_hash: Option<&[u8]>, row: &AuditRow) -> Vec<u8> {
    content_hash(
        prev_hash,
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
            client_addr: row.client_addr.as_deref(),
        },
    )
}

/// The filters of an audit-log page; every one is optional and they combine with AND.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor_user_id: Option<Uuid>,
    /// Exact action (`user.create`), or every action under a prefix when it ends with `.*`
    /// (`user.*`).
    pub action: Option<String>,
    pub target_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// One page of a chain, newest first: records matching `filter` with a sequence number below
/// `before_seq` (the keyset cursor), at most `limit` of them.
pub async fn page(
    conn: &mut AsyncPgConnection,
    organization_id: Option<Uuid>,
    filter: &AuditFilter,
    before_seq: Option<i64>,
    limit: i64,
) -> AppResult<Vec<AuditRow>> {
    let mut query = chain_filter(organization_id)
        .select(AuditRow::as_select())
        .order(audit_log::chain_seq.desc())
        .limit(limit);
    if let Some(before) = before_seq {
        query = query.filter(audit_log::chain_seq.lt(before));
    }
    if let Some(actor) = filter.actor_user_id {
        query = query.filter(audit_log::actor_user_id.eq(actor));
    }
    if let Some(action) = &filter.action {
        query = match action.strip_suffix(".*") {
            Some(prefix) => {
                let escaped = prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                query.filter(audit_log::action.like(format!("{escaped}.%")))
            }
            None => query.filter(audit_log::action.eq(action.clone())),
        };
    }
    if let Some(target) = &filter.target_id {
        query = query.filter(audit_log::target_id.eq(target.clone()));
    }
    if let Some(from) = filter.from {
        query = query.filter(audit_log::occurred_at.ge(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(audit_log::occurred_at.lt(to));
    }
    Ok(query.load(conn).await?)
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

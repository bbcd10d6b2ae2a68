//! A report's result and its exports.
//!
//! A report runs as `analytics` runs, through [`run_analytics`]: its query over its range
//! resolved now in the organization's zone (or over a range the caller gives instead), so its
//! answer is the `analytics` answer for the same query and interval, number for number.
//!
//! Exports are that answer laid out by `reports::table` and written by a writer of
//! `reports::formats` into a file, which is then served or stored. The totals row, when the presentation asks for one, is not a sum of the rows: it is the same
//! query run again ungrouped over the same filter and interval, so every metric is recomputed
//! over the report's whole scope by the registry — counts add up to the rows' sum, ratios are
//! the totals of their numerators over the totals of their denominators, the longest wait is
//! the longest — and it covers rows beyond the report's limit too. A report without any
//! dimension or bucket column has no totals row: its one row is the total.
//!
//! An interaction detail log (`reports::log`) has neither a result nor an HTTP pull: it is
//! streamed by report runs only (`runReport`, schedules), and both answer BAD_USER_INPUT
//! saying so.
//!
//! Each export writes one audit record (`report.export`: format, interval, rows, bytes, and the
//! API key when one was used).

use std::io::{Seek, SeekFrom};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Actor, AuditEvent};
use crate::auth::{Principal, Tenant};
use crate::error::{AppError, AppResult};
use crate::kpi::analytics::{run_analytics, AnalyticsOutput, AnalyticsRequest};
use crate::kpi::metrics::{self, Evaluated};
use crate::kpi::organization_rule;
use crate::kpi::query::Aggregates;
use crate::reports::definition::{ReportKind, ReportRange};
use crate::reports::formats::{self, ExportFormat, ExportMeta};
use crate::reports::saved::{self, SavedReport};
use crate::reports::table::Table;
use crate::state::AppState;

/// A report's answer: the request it made and the engine's output.
struct Answer {
    request: AnalyticsRequest,
    output: AnalyticsOutput,
    tz: Tz,
}

/// Runs the report's query over its range, or over `range` instead (checked as an absolute
/// range, its fields named under `range_prefix`).
async fn answer(
    conn: &mut AsyncPgConnection,
    spare: Option<&mut AsyncPgConnection>,
    tenant: &Tenant,
    report: &SavedReport,
    range: Option<ReportRange>,
    range_prefix: &str,
    now: DateTime<Utc>,
) -> AppResult<Answer> {
    if report.definition.kind == ReportKind::InteractionLog {
        return Err(AppError::bad_input(
            "an interaction log has no result to read here: run it with runReport, which streams its calls into a file",
        ));
    }
    if let Some(range) = &range {
        let errors = range.check(range_prefix);
        if !errors.is_empty() {
            return Err(AppError::invalid_fields(errors));
        }
    }
    let (_, tz) = organization_rule(conn, tenant).await?;
    let (from, to) = range.unwrap_or(report.definition.range).resolve(tz, now);
    let request = report.definition.query.request(from, to);
    let output = run_analytics(conn, spare, tenant, &request, "query").await?;
    Ok(Answer { request, output, tz })
}

/// The report's result, as `analytics` answers the same query over the resolved range (or
/// over `range`, whose fields are named `range.from`/`range.to`). The caller has already read
/// the report through [`saved::get`] (or a listing), so it may see it.
pub async fn result(
    state: &AppState,
    principal: &Principal,
    report: &SavedReport,
    range: Option<ReportRange>,
) -> AppResult<AnalyticsOutput> {
    let tenant = Tenant::of(principal);
    let (mut conn, pool, _) = state.reads.conn(&tenant).await?;
    let mut spare = pool.try_get(&tenant).await;
    let answer = answer(
        &mut conn,
        spare.as_deref_mut(),
        &tenant,
        report,
        range,
        "range",
        Utc::now(),
    )
    .await?;
    Ok(answer.output)
}

/// Every metric of `request` over its whole filter and interval, ungrouped (see the module
/// documentation): the registry recomputes each from the scope's counters.
async fn totals(
    conn: &mut AsyncPgConnection,
    spare: Option<&mut AsyncPgConnection>,
    tenant: &Tenant,
    request: &AnalyticsRequest,
) -> AppResult<Vec<Evaluated>> {
    let whole = AnalyticsRequest {
        metrics: request.metrics.clone(),
        group_by: Vec::new(),
        filter: request.filter.clone(),
        granularity: None,
        order_by: Vec::new(),
        limit: None,
    };
    let output = run_analytics(conn, spare, tenant, &whole, "query").await?;
    let rule = output.rule;
    match output.rows.into_iter().next() {
        Some(row) => Ok(row.values),
        // Nothing in scope: the registry's values of no calls (0, or null for ratios).
        None => whole
            .metrics
            .iter()
            .map(|m| Ok(metrics::evaluate_one(m.def()?, &Aggregates::default(), &rule)))
            .collect(),
    }
}

/// The report's answer over its range (or `range`, its fields named under `range_prefix`)
/// laid out for a file, with the totals row when the presentation asks for one, and the
/// file's header. Exports and report runs both start here.
pub async fn prepare(
    state: &AppState,
    tenant: &Tenant,
    report: &SavedReport,
    range: Option<ReportRange>,
    range_prefix: &str,
) -> AppResult<(Table, ExportMeta)> {
    let (mut conn, pool, _) = state.reads.conn(tenant).await?;
    let mut spare = pool.try_get(tenant).await;
    let answer = answer(
        &mut conn,
        spare.as_deref_mut(),
        tenant,
        report,
        range,
        range_prefix,
        Utc::now(),
    )
    .await?;
    let totals = if report.definition.presentation.totals {
        Some(totals(&mut conn, spare.as_deref_mut(), tenant, &answer.request).await?)
    } else {
        None
    };
    let table = Table::build(&report.definition, &answer.output, totals.as_deref(), answer.tz);
    let meta = table.meta(report, &answer.output, answer.tz, Utc::now());
    Ok((table, meta))
}

/// What an export asks for.
#[derive(Debug, Clone, Copy)]
pub struct ExportRequest {
    pub report_id: Uuid,
    pub format: ExportFormat,
    /// Instead of the report's range (fields named `from` and `to`).
    pub range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// CSV only: a UTF-8 byte-order mark first.
    pub bom: bool,
}

/// A rendered export: an anonymous temporary file (gone when dropped), read from its start.
#[derive(Debug)]
pub struct ExportFile {
    pub content_type: &'static str,
    pub filename: String,
    pub file: std::fs::File,
    pub bytes: u64,
}

/// A file name from a title: ASCII letters, digits and dashes, lower case.
pub fn file_stem(title: &str) -> String {
    let mut stem = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            stem.push(c.to_ascii_lowercase());
        } else if !stem.ends_with('-') && !stem.is_empty() {
            stem.push('-');
        }
        if stem.len() >= 80 {
            break;
        }
    }
    let stem = stem.trim_end_matches('-');
    if stem.is_empty() {
        "report".to_owned()
    } else {
        stem.to_owned()
    }
}

/// Runs a report the caller may see and renders it; audited as `report.export`.
pub async fn export(
    state: &AppState,
    principal: &Principal,
    request: ExportRequest,
    request_id: Option<String>,
) -> AppResult<ExportFile> {
    let report = saved::get(state, principal, request.report_id).await?;
    let tenant = Tenant::of(principal);
    let range = request.range.map(|(from, to)| ReportRange::Absolute { from, to });
    let (table, mut meta) = prepare(state, &tenant, &report, range, "").await?;
    meta.bom = request.bom;
    let format = request.format;
    let rows = table.rows.len();
    let (from, to) = (meta.from, meta.to);
    let (file, bytes) = tokio::task::spawn_blocking(move || -> AppResult<(std::fs::File, u64)> {
        let mut file = tempfile::tempfile()?;
        formats::write_all(format, &meta, file.try_clone()?, &table.rows, table.totals.as_deref())?;
        let bytes = file.seek(SeekFrom::End(0))?;
        file.seek(SeekFrom::Start(0))?;
        Ok((file, bytes))
    })
    .await
    .map_err(|e| AppError::internal(format!("export writer: {e}")))??;
    let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "report.export")
        .target("report", report.id)
        .details(json!({
            "title": report.title,
            "version": report.version,
            "format": request.format.extension(),
            "from": from,
            "to": to,
            "rows": rows,
            "bytes": bytes,
            "apiKeyId": principal.api_key.as_ref().map(|k| k.key_id),
        }))
        .request_id(request_id);
    let mut conn = state.db.get(&tenant).await?;
    conn.transaction(async |conn| audit::record(conn, event).await).await?;
    Ok(ExportFile {
        content_type: request.format.content_type(),
        filename: format!("{}.{}", file_stem(&report.title), request.format.extension()),
        file,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::file_stem;

    #[test]
    fn file_names_are_tame() {
        assert_eq!(
            file_stem("Agent performance (daily) — März"),
            "agent-performance-daily-m-rz"
        );
        assert_eq!(file_stem("  ¿?  "), "report");
    }
}

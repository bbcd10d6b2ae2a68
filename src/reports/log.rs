//! The interaction detail log: a report (`ReportKind::InteractionLog`) that lists the calls of
//! its range themselves, one row per call, rather than figures about them. It is the one
//! report whose rows are not bounded — a month of a busy contact centre is millions of calls —
//! so it is never held in memory: a run streams it from PostgreSQL into the file.
//!
//! [`open`] resolves what the run covers (the filter's ids checked as `analytics` checks them,
//! teams turned into their agents), reads the names it shows once (campaigns, agents,
//! disposition labels: small tables), and starts a task that reads the calls page by page
//! ([`PAGE_ROWS`] at a time, by keyset `(offered_at, id)` through
//! `db::interactions::log_page`, each page its own short statement on the read pool) into a
//! bounded channel of [`PAGES_AHEAD`] pages. The run's writer thread takes pages with
//! `blocking_recv` and lays each row out ([`Layout::cells`]) as it writes it, so at most a few
//! pages are in memory whatever the size of the log, and the next page is read while the last
//! one is written. When the writer stops (cancelled, lost, failed) it drops the receiver and
//! the reading task ends at its next send.
//!
//! Customer numbers are masked as `interactions` masks them: in full for SUPERVISOR and above,
//! masked (`ingest::mask_number`) below. The role is the requester's at the time of the run
//! ([`unmasked_for`]): the user who asked, or for a scheduled run the schedule's owner; a user
//! who no longer exists or is deactivated sees masked numbers.
//!
//! Pages are read in separate statements, so a call ingested into the range while the run is
//! under way may or may not be in the file; every call of the range that existed when the run
//! started is in it exactly once (the keyset never revisits or skips a row).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use diesel_async::AsyncPgConnection;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::auth::{Role, Tenant};
use crate::db::interactions::{self, InteractionQuery, LogNames, LogRow};
use crate::db::{report_schedules, users};
use crate::error::{AppError, AppResult};
use crate::ingest;
use crate::kpi::filter::{self, RawFilter};
use crate::kpi::metrics::Unit;
use crate::kpi::organization_rule;
use crate::reports::definition::{Definition, ReportFilter};
use crate::reports::formats::{Cell, ColumnKind, ExportMeta, TableColumn};
use crate::reports::saved::SavedReport;
use crate::state::AppState;

/// Calls per page read from PostgreSQL.
pub const PAGE_ROWS: i64 = 5_000;
/// Pages read ahead of the writer at most (the channel's capacity).
pub const PAGES_AHEAD: usize = 2;

/// A page of calls, or why reading stopped.
pub type Page = AppResult<Vec<LogRow>>;

/// The log's columns, in order: key, label, kind.
const COLUMNS: [(&str, &str, ColumnKind); 13] = [
    ("STARTED_AT", "Started at", ColumnKind::Time),
    ("CALL_ID", "Call ID", ColumnKind::Text),
    ("DIRECTION", "Direction", ColumnKind::Text),
    ("CAMPAIGN", "Campaign", ColumnKind::Text),
    ("AGENT", "Agent", ColumnKind::Text),
    ("CUSTOMER_NUMBER", "Customer number", ColumnKind::Text),
    ("OUTCOME", "Outcome", ColumnKind::Text),
    ("DISPOSITION", "Disposition", ColumnKind::Text),
    ("WAIT", "Wait (s)", ColumnKind::Metric(Unit::Seconds)),
    ("TALK", "Talk (s)", ColumnKind::Metric(Unit::Seconds)),
    ("HOLD", "Hold (s)", ColumnKind::Metric(Unit::Seconds)),
    ("WRAP", "Wrap-up (s)", ColumnKind::Metric(Unit::Seconds)),
    ("HANDLE", "Handle (s)", ColumnKind::Metric(Unit::Seconds)),
];

/// The log's fixed columns.
pub fn columns() -> Vec<TableColumn> {
    COLUMNS
        .iter()
        .map(|(key, label, kind)| TableColumn {
            key: (*key).to_owned(),
            label: (*label).to_owned(),
            kind: *kind,
        })
        .collect()
}

/// How a call becomes a row: the zone of its start time, the names of its ids, and whether its
/// customer number is shown in full.
#[derive(Debug)]
pub struct Layout {
    pub tz: Tz,
    pub unmasked: bool,
    names: LogNames,
}

fn seconds(ms: i64) -> Cell {
    // Milliseconds of a call fit an f64 exactly.
    #[allow(clippy::cast_precision_loss)]
    Cell::Number(Some(ms as f64 / 1000.0))
}

fn named(names: &HashMap<Uuid, String>, id: Option<Uuid>) -> Cell {
    match id.and_then(|id| names.get(&id)) {
        Some(name) => Cell::Text(name.clone()),
        None => Cell::Empty,
    }
}

impl Layout {
    pub fn new(tz: Tz, unmasked: bool, names: LogNames) -> Self {
        Layout { tz, unmasked, names }
    }

    /// A call's cells, in the order of [`columns`]. Handle time (talk + hold + wrap-up) is
    /// shown for answered calls only, as handle-time metrics count them.
    pub fn cells(&self, row: &LogRow) -> Vec<Cell> {
        let number = match &row.customer_number {
            Some(n) if self.unmasked => Cell::Text(n.clone()),
            Some(n) => Cell::Text(ingest::mask_number(n)),
            None => Cell::Empty,
        };
        let handle = match row.answered_at {
            Some(_) => seconds(row.talk_ms + row.hold_ms + row.wrap_ms),
            None => Cell::Empty,
        };
        vec![
            Cell::local_time(row.offered_at, self.tz),
            Cell::Text(row.external_id.clone()),
            Cell::Text(row.direction.clone()),
            named(&self.names.campaigns, row.campaign_id),
            named(&self.names.agents, row.agent_id),
            number,
            Cell::Text(row.outcome.clone()),
            named(&self.names.dispositions, row.disposition_id),
            row.wait_ms.map_or(Cell::Empty, seconds),
            seconds(row.talk_ms),
            seconds(row.hold_ms),
            seconds(row.wrap_ms),
            handle,
        ]
    }
}

/// Whether a run's requester sees customer numbers in full: the user who asked, else the
/// schedule's owner, with their role now; nobody (deleted, deactivated) sees them masked.
pub async fn unmasked_for(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    requested_by: Option<Uuid>,
    schedule_id: Option<Uuid>,
) -> AppResult<bool> {
    let user_id = match (requested_by, schedule_id) {
        (Some(user_id), _) => Some(user_id),
        (None, Some(schedule_id)) => report_schedules::get(conn, tenant, schedule_id)
            .await?
            .map(|s| s.owner_id),
        (None, None) => None,
    };
    let Some(user_id) = user_id else {
        return Ok(false);
    };
    match users::get(conn, tenant, user_id).await {
        Ok(user) => Ok(user.active && user.role >= Role::Supervisor),
        Err(AppError::NotFound(_)) => Ok(false),
        Err(other) => Err(other),
    }
}

/// What the file's header says the log asked.
fn parameters(filter: &ReportFilter, tz: Tz, unmasked: bool) -> Vec<(String, String)> {
    let mut out = vec![("Report".to_owned(), "Interaction detail log".to_owned())];
    let count = |ids: &Option<Vec<Uuid>>| ids.as_ref().map(Vec::len);
    for (label, n) in [
        ("Campaigns", count(&filter.campaign_ids)),
        ("Teams", count(&filter.team_ids)),
        ("Agents", count(&filter.agent_ids)),
    ] {
        if let Some(n) = n {
            out.push((label.to_owned(), format!("{n} selected")));
        }
    }
    if let Some(direction) = filter.direction {
        out.push(("Direction".to_owned(), direction.as_str().to_owned()));
    }
    let numbers = if unmasked { "in full" } else { "masked" };
    out.push(("Customer numbers".to_owned(), numbers.to_owned()));
    out.push(("Time zone".to_owned(), tz.name().to_owned()));
    out
}

/// The calls a log covers over `[from, to)`: its filter resolved as `analytics` resolves it
/// (unknown ids are BAD_USER_INPUT under `query.filter`, teams become their agents).
async fn query_of(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    definition: &Definition,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<InteractionQuery> {
    let f = &definition.query.filter;
    let ids = |ids: &Option<Vec<Uuid>>| ids.as_ref().map(|ids| ids.iter().map(Uuid::to_string).collect());
    let raw = RawFilter {
        from,
        to,
        campaign_ids: ids(&f.campaign_ids),
        team_ids: ids(&f.team_ids),
        agent_ids: ids(&f.agent_ids),
        direction: f.direction,
    };
    let resolved = filter::resolve(conn, tenant, "query.filter", &raw).await?;
    Ok(InteractionQuery {
        offered_from: Some(from),
        offered_to: Some(to),
        campaign_ids: resolved.scope.campaign_ids,
        agent_ids: resolved.scope.agent_ids,
        direction: resolved.scope.direction,
        outcome: None,
    })
}

/// Checks a log definition's filter ids against the tenant (what `validate_analytics` does for
/// an analytics report's), naming them under `prefix` (`input.query.filter.campaignIds[0]`).
pub async fn check_filter(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    definition: &Definition,
    prefix: &str,
) -> AppResult<()> {
    let f = &definition.query.filter;
    let ids = |ids: &Option<Vec<Uuid>>| ids.as_ref().map(|ids| ids.iter().map(Uuid::to_string).collect());
    let to = Utc::now();
    let raw = RawFilter {
        from: to - chrono::TimeDelta::days(1),
        to,
        campaign_ids: ids(&f.campaign_ids),
        team_ids: ids(&f.team_ids),
        agent_ids: ids(&f.agent_ids),
        direction: f.direction,
    };
    filter::resolve(conn, tenant, prefix, &raw).await.map(|_| ())
}

/// A log being read: the file's header, how rows are laid out, and the pages as they come.
pub struct LogSource {
    pub meta: ExportMeta,
    pub layout: Layout,
    pub pages: mpsc::Receiver<Page>,
}

/// Starts reading a log report over `[from, to)` (see the module documentation).
pub async fn open(
    state: &AppState,
    tenant: &Tenant,
    report: &SavedReport,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    unmasked: bool,
) -> AppResult<LogSource> {
    let (mut conn, _, _) = state.reads.conn(tenant).await?;
    let (_, tz) = organization_rule(&mut conn, tenant).await?;
    let query = query_of(&mut conn, tenant, &report.definition, from, to).await?;
    let names = interactions::log_names(&mut conn, tenant).await?;
    let meta = ExportMeta {
        report_id: report.id,
        report_version: report.version,
        title: report.title.clone(),
        description: report.description.clone(),
        timezone: tz,
        from,
        to,
        generated_at: Utc::now(),
        parameters: parameters(&report.definition.query.filter, tz, unmasked),
        columns: columns(),
        chart: None,
        total_rows: None,
        truncated: false,
        bom: false,
    };
    let (tx, rx) = mpsc::channel(PAGES_AHEAD);
    let tenant = *tenant;
    tokio::spawn(async move {
        let mut after = None;
        loop {
            let page = interactions::log_page(&mut conn, &tenant, &query, after, PAGE_ROWS).await;
            let last = match &page {
                Ok(rows) => rows.last().map(|r| (r.offered_at, r.id)),
                Err(_) => None,
            };
            let full = matches!(&page, Ok(rows) if i64::try_from(rows.len()).is_ok_and(|n| n == PAGE_ROWS));
            // The writer has stopped: nothing more to read.
            if tx.send(page).await.is_err() {
                return;
            }
            match last {
                Some(key) if full => after = Some(key),
                _ => return,
            }
        }
    });
    Ok(LogSource {
        meta,
        layout: Layout::new(tz, unmasked, names),
        pages: rx,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> LogRow {
        let offered_at = DateTime::parse_from_rfc3339("2026-07-01T09:00:00Z")
            .map(|d| d.to_utc())
            .unwrap_or_default();
        LogRow {
            id: Uuid::from_u128(1),
            external_id: "CA1".into(),
            offered_at,
            answered_at: Some(offered_at),
            direction: "INBOUND".into(),
            campaign_id: Some(Uuid::from_u128(2)),
            agent_id: None,
            customer_number: Some("+447700900123".into()),
            outcome: "ANSWERED".into(),
            disposition_id: None,
            wait_ms: Some(12_500),
            talk_ms: 60_000,
            hold_ms: 1_000,
            wrap_ms: 9_000,
        }
    }

    #[test]
    fn a_call_is_laid_out_in_the_columns_with_its_number_masked_below_supervisor() {
        let mut names = LogNames::default();
        names.campaigns.insert(Uuid::from_u128(2), "Sales".into());
        let layout = Layout::new(chrono_tz::Europe::London, false, names);
        let cells = layout.cells(&row());
        assert_eq!(cells.len(), columns().len());
        assert_eq!(cells[0].text(), "2026-07-01T10:00:00+01:00");
        assert_eq!(cells[3], Cell::Text("Sales".into()));
        assert_eq!(cells[4], Cell::Empty);
        assert_eq!(cells[5], Cell::Text("+44******0123".into()));
        assert_eq!(cells[8], Cell::Number(Some(12.5)));
        assert_eq!(cells[12], Cell::Number(Some(70.0)));
        let layout = Layout::new(chrono_tz::UTC, true, LogNames::default());
        assert_eq!(layout.cells(&row())[5], Cell::Text("+447700900123".into()));
    }
}

//! History import: completed calls from the system a contact centre leaves behind, as CSV or
//! NDJSON, loaded with their rollups by the one bulk writer ([`crate::kpi::writer::bulk_load`],
//! the path of `omnivox seed --calls`), so KPIs over imported history equal a recomputation
//! from the raw calls.
//!
//! One record per call, by these names (CSV header or NDJSON keys; times RFC 3339):
//!
//! | field | |
//! | --- | --- |
//! | `externalId` | required, 1–128 characters: the call's id in the old system; the key that makes a re-import change nothing |
//! | `direction` | required: `INBOUND` or `OUTBOUND` |
//! | `offeredAt`, `endedAt` | required; the call is complete |
//! | `answeredAt`, `wrapEndedAt` | when it was answered, when its wrap-up ended |
//! | `holdSeconds` | time on hold while answered (default 0) |
//! | `outcome` | `ANSWERED` (exactly when `answeredAt` is set), `ABANDONED`, `NO_ANSWER`, `BUSY`, `FAILED`; default `ABANDONED` for an unanswered inbound call, else required |
//! | `answeredBy` | `HUMAN` or `MACHINE` (outbound); an answered outbound call with an agent defaults to `HUMAN`, as ingest does |
//! | `agent` | an agent's id or extension |
//! | `campaign` | a campaign's id or name (archived campaigns too: it is history) |
//! | `disposition` | a disposition code (inactive ones too) |
//! | `customerNumber`, `notes` | as for ingest |
//!
//! Durations follow from the times as the call lifecycle derives them (wait to the answer, or
//! to the end of an abandoned call; talk = end − answer − hold; wrap = wrap end − end).
//!
//! An import is all or nothing per file as far as bad rows go: the file is read twice, first
//! to check every row (each problem reported with its line, field and reason; no row is
//! written when any is bad), then to load the rows in batches, each batch one transaction with
//! its rollups and its audit record, so no call is ever stored without its rollups. Rows whose
//! external id the organization already has are skipped (counted as duplicates): importing a
//! file twice changes nothing, and an import cut short is finished by running it again.
//! Every time must lie at or after the organization's history horizon (business settings:
//! `historyHorizon`, by default the organization's creation) and not in the future.
//!
//! Imported calls carry no agent-state history: the time-in-state metrics (occupancy, calls per
//! agent hour) of imported periods stay empty.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use crate::audit::{Actor, AuditEvent};
use crate::auth::{Principal, Tenant};
use crate::db::interactions::NewInteraction;
use crate::db::orgs;
use crate::db::schema::{agents, campaigns, dispositions, interactions};
use crate::domain::{AnsweredBy, Direction, Outcome};
use crate::error::{AppError, AppResult};
use crate::ingest::{check_customer_number, check_external_id, MAX_CLOCK_SKEW, MAX_NOTES_CHARS};
use crate::kpi::writer::{bulk_load_audited, ReferenceChecks};
use crate::state::AppState;

/// Calls per loading transaction.
pub const DEFAULT_BATCH_CALLS: usize = 20_000;
/// Row errors kept in a report (all are counted).
pub const MAX_REPORTED_ERRORS: usize = 1_000;

/// The two formats of an import file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Format {
    Csv,
    Ndjson,
}

impl Format {
    /// The format a file name or media type says, if it says one.
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.to_ascii_lowercase();
        if name.ends_with(".csv") || name.starts_with("text/csv") {
            Some(Format::Csv)
        } else if name.ends_with(".ndjson")
            || name.ends_with(".jsonl")
            || name.starts_with("application/x-ndjson")
            || name.starts_with("application/jsonl")
            || name.starts_with("application/json")
        {
            Some(Format::Ndjson)
        } else {
            None
        }
    }
}

/// Where the records are read from; read twice (check, then load).
#[derive(Clone)]
pub enum Source {
    File(PathBuf),
    Bytes(Arc<[u8]>),
}

impl Source {
    fn open(&self) -> AppResult<Box<dyn Read + Send>> {
        match self {
            Source::File(path) => {
                let file = std::fs::File::open(path)
                    .map_err(|e| AppError::bad_input(format!("cannot read {}: {e}", path.display())))?;
                Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, file)))
            }
            Source::Bytes(bytes) => Ok(Box::new(std::io::Cursor::new(Arc::clone(bytes)))),
        }
    }
}

/// One problem of one row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// 1-based line of the file (CSV: the header is line 1).
    pub line: u64,
    pub field: String,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    /// Records read (blank lines aside).
    pub rows: u64,
    /// Calls written.
    pub imported: u64,
    /// Records whose external id the organization already had: skipped.
    pub duplicates: u64,
    /// Rows with at least one problem; when not 0, nothing was written.
    pub rejected_rows: u64,
    /// The first [`MAX_REPORTED_ERRORS`] problems, in file order.
    pub errors: Vec<RowError>,
    pub seconds: f64,
}

/// Where an import stands, for a progress display.
#[derive(Debug, Clone, Copy)]
pub enum Progress {
    /// Rows checked so far (first reading).
    Checked(u64),
    /// Rows loaded or skipped so far, of `total` (second reading).
    Loaded { done: u64, total: u64, imported: u64 },
}

/// The organization's agents, campaigns and dispositions by every name a record may use.
#[derive(Default)]
struct Directory {
    agents: HashMap<String, Uuid>,
    campaigns: HashMap<String, Uuid>,
    dispositions: HashMap<String, Uuid>,
}

impl Directory {
    async fn load(conn: &mut AsyncPgConnection, tenant: &Tenant) -> AppResult<Self> {
        let org = tenant.org_id();
        let mut directory = Directory::default();
        let rows: Vec<(Uuid, Option<String>)> = agents::table
            .filter(agents::organization_id.eq(org))
            .select((agents::id, agents::extension))
            .load(conn)
            .await?;
        for (id, extension) in rows {
            directory.agents.insert(id.to_string(), id);
            if let Some(extension) = extension {
                directory.agents.insert(extension, id);
            }
        }
        let rows: Vec<(Uuid, String)> = campaigns::table
            .filter(campaigns::organization_id.eq(org))
            .select((campaigns::id, campaigns::name))
            .load(conn)
            .await?;
        for (id, name) in rows {
            directory.campaigns.insert(id.to_string(), id);
            directory.campaigns.insert(name, id);
        }
        let rows: Vec<(Uuid, String)> = dispositions::table
            .filter(dispositions::organization_id.eq(org))
            .select((dispositions::id, dispositions::code))
            .load(conn)
            .await?;
        directory.dispositions = rows.into_iter().map(|(id, code)| (code, id)).collect();
        Ok(directory)
    }

    /// An id or a name; ids are matched in their canonical (lower-case, hyphenated) form.
    fn find(map: &HashMap<String, Uuid>, key: &str) -> Option<Uuid> {
        map.get(key).copied().or_else(|| {
            Uuid::parse_str(key)
                .ok()
                .and_then(|id| map.get(&id.to_string()).copied())
        })
    }
}

/// The fields a record may carry.
const FIELDS: [&str; 14] = [
    "externalId",
    "direction",
    "offeredAt",
    "answeredAt",
    "endedAt",
    "wrapEndedAt",
    "holdSeconds",
    "outcome",
    "answeredBy",
    "agent",
    "campaign",
    "disposition",
    "customerNumber",
    "notes",
];

/// One record's values by field (empty values are absent).
type Record = HashMap<&'static str, String>;

/// The rules a row is checked against.
struct Rules {
    directory: Directory,
    horizon: DateTime<Utc>,
    now: DateTime<Utc>,
}

/// Checks one record and builds its call, or lists every problem of it.
fn to_call(line: u64, record: &Record, rules: &Rules) -> Result<NewInteraction, Vec<RowError>> {
    let mut errors = Vec::new();
    let mut fail = |field: &str, reason: String| {
        errors.push(RowError {
            line,
            field: field.to_owned(),
            reason,
        });
    };
    let get = |field: &str| record.get(field).map(String::as_str);
    let external_id = get("externalId").unwrap_or_default().to_owned();
    if let Err(why) = check_external_id(&external_id) {
        fail("externalId", why);
    }
    let direction = match get("direction") {
        None => {
            fail("direction", "is required".into());
            None
        }
        Some(text) => Direction::parse(&text.to_ascii_uppercase()).or_else(|| {
            fail("direction", "must be INBOUND or OUTBOUND".into());
            None
        }),
    };
    let mut time = |field: &str, required: bool| -> Option<DateTime<Utc>> {
        let Some(text) = get(field) else {
            if required {
                fail(field, "is required".into());
            }
            return None;
        };
        match DateTime::parse_from_rfc3339(text) {
            Err(_) => {
                fail(field, "must be an RFC 3339 time, e.g. 2026-01-05T09:30:00Z".into());
                None
            }
            Ok(at) => {
                let at = at.to_utc();
                if at < rules.horizon {
                    fail(
                        field,
                        format!(
                            "is before the organization's history horizon ({})",
                            rules.horizon.to_rfc3339()
                        ),
                    );
                } else if at > rules.now + MAX_CLOCK_SKEW {
                    fail(field, "is in the future".into());
                }
                Some(at)
            }
        }
    };
    let offered_at = time("offeredAt", true);
    let answered_at = time("answeredAt", false);
    let ended_at = time("endedAt", true);
    let wrap_ended_at = time("wrapEndedAt", false);
    let in_order = [
        ("answeredAt", offered_at, answered_at),
        ("endedAt", answered_at.or(offered_at), ended_at),
        ("wrapEndedAt", ended_at, wrap_ended_at),
    ];
    for (field, earlier, later) in in_order {
        if let (Some(earlier), Some(later)) = (earlier, later) {
            if later < earlier {
                fail(field, "is before the call's previous time".into());
            }
        }
    }
    let hold_ms = match get("holdSeconds") {
        None => 0,
        Some(text) => match text.parse::<f64>() {
            Ok(s) if (0.0..86_400.0 * 7.0).contains(&s) => (s * 1_000.0).round() as i64,
            _ => {
                fail("holdSeconds", "must be a number of seconds, 0 or more".into());
                0
            }
        },
    };
    if let (Some(answered), Some(ended)) = (answered_at, ended_at) {
        if TimeDelta::milliseconds(hold_ms) > ended - answered {
            fail("holdSeconds", "is longer than the answered call".into());
        }
    }
    let outcome = match get("outcome").map(str::to_ascii_uppercase) {
        None if answered_at.is_some() => Some(Outcome::Answered),
        None if direction == Some(Direction::Inbound) => Some(Outcome::Abandoned),
        // An unknown direction is reported already.
        None if direction.is_none() => None,
        None => {
            fail("outcome", "is required for an unanswered outbound call".into());
            None
        }
        Some(text) => match Outcome::parse(&text) {
            Some(Outcome::InProgress) | None => {
                fail(
                    "outcome",
                    "must be ANSWERED, ABANDONED, NO_ANSWER, BUSY or FAILED".into(),
                );
                None
            }
            Some(outcome) if (outcome == Outcome::Answered) != answered_at.is_some() => {
                fail("outcome", "is ANSWERED exactly when answeredAt is given".into());
                None
            }
            Some(outcome) => Some(outcome),
        },
    };
    let mut lookup = |field: &str, map: &HashMap<String, Uuid>, what: &str| {
        get(field).and_then(|key| {
            Directory::find(map, key).or_else(|| {
                fail(field, format!("`{key}` is no {what} of the organization"));
                None
            })
        })
    };
    let agent_id = lookup("agent", &rules.directory.agents, "agent (id or extension)");
    let campaign_id = lookup("campaign", &rules.directory.campaigns, "campaign (id or name)");
    let disposition_id = lookup("disposition", &rules.directory.dispositions, "disposition code");
    let explicit_answered_by = match get("answeredBy").map(str::to_ascii_uppercase) {
        None => None,
        Some(text) => AnsweredBy::parse(&text).or_else(|| {
            fail("answeredBy", "must be HUMAN or MACHINE".into());
            None
        }),
    };
    let answered_by = explicit_answered_by.or_else(|| {
        (direction == Some(Direction::Outbound) && answered_at.is_some() && agent_id.is_some())
            .then_some(AnsweredBy::Human)
    });
    let customer_number = get("customerNumber").map(str::to_owned);
    if let Some(number) = &customer_number {
        if let Err(why) = check_customer_number(number) {
            fail("customerNumber", why);
        }
    }
    let notes = get("notes").map(str::to_owned);
    if notes.as_ref().is_some_and(|n| n.chars().count() > MAX_NOTES_CHARS) {
        fail("notes", format!("must be at most {MAX_NOTES_CHARS} characters"));
    }
    let (Some(direction), Some(offered_at), Some(ended_at), Some(outcome), true) =
        (direction, offered_at, ended_at, outcome, errors.is_empty())
    else {
        return Err(errors);
    };
    let ms = |d: TimeDelta| d.num_milliseconds();
    let wait_ms = match answered_at {
        Some(answered) => Some(ms(answered - offered_at)),
        None if outcome == Outcome::Abandoned => Some(ms(ended_at - offered_at)),
        None => None,
    };
    let talk_ms = answered_at.map_or(0, |answered| (ms(ended_at - answered) - hold_ms).max(0));
    Ok(NewInteraction {
        campaign_id,
        agent_id,
        external_id,
        direction,
        customer_number,
        offered_at,
        answered_at,
        ended_at: Some(ended_at),
        wrap_ended_at,
        wait_ms,
        talk_ms,
        hold_ms: if answered_at.is_some() { hold_ms } else { 0 },
        wrap_ms: wrap_ended_at.map_or(0, |w| ms(w - ended_at)),
        outcome,
        disposition_id,
        answered_by,
        notes,
    })
}

/// Reads records one by one: (line, record) or (line, a problem of the line itself).
struct Reader {
    inner: ReaderKind,
}

enum ReaderKind {
    Csv {
        reader: csv::Reader<Box<dyn Read + Send>>,
        /// Column index → field.
        columns: Vec<Option<&'static str>>,
        record: csv::StringRecord,
    },
    Ndjson {
        lines: std::io::Lines<std::io::BufReader<Box<dyn Read + Send>>>,
        line: u64,
    },
}

type Item = (u64, Result<Record, RowError>);

fn field_named(name: &str) -> Option<&'static str> {
    FIELDS.iter().copied().find(|f| *f == name)
}

impl Reader {
    /// Opens a reader; a CSV header naming an unknown field, or missing a required one, is
    /// reported as problems of line 1.
    fn new(input: Box<dyn Read + Send>, format: Format) -> Result<Self, Vec<RowError>> {
        match format {
            Format::Csv => {
                let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(input);
                let header = reader.headers().map_err(|e| {
                    vec![RowError {
                        line: 1,
                        field: "header".into(),
                        reason: format!("unreadable CSV header: {e}"),
                    }]
                })?;
                let mut errors = Vec::new();
                let columns: Vec<Option<&'static str>> = header
                    .iter()
                    .map(|name| {
                        let field = field_named(name.trim());
                        if field.is_none() {
                            errors.push(RowError {
                                line: 1,
                                field: name.to_owned(),
                                reason: format!("unknown column; the columns are {}", FIELDS.join(", ")),
                            });
                        }
                        field
                    })
                    .collect();
                for required in ["externalId", "direction", "offeredAt", "endedAt"] {
                    if !columns.contains(&Some(required)) {
                        errors.push(RowError {
                            line: 1,
                            field: required.into(),
                            reason: "required column missing".into(),
                        });
                    }
                }
                if !errors.is_empty() {
                    return Err(errors);
                }
                Ok(Reader {
                    inner: ReaderKind::Csv {
                        reader,
                        columns,
                        record: csv::StringRecord::new(),
                    },
                })
            }
            Format::Ndjson => {
                use std::io::BufRead;
                Ok(Reader {
                    inner: ReaderKind::Ndjson {
                        lines: std::io::BufReader::with_capacity(1 << 20, input).lines(),
                        line: 0,
                    },
                })
            }
        }
    }

    fn next_item(&mut self) -> Option<Item> {
        match &mut self.inner {
            ReaderKind::Csv {
                reader,
                columns,
                record,
            } => loop {
                let line = reader.position().line() + 1;
                match reader.read_record(record) {
                    Ok(false) => return None,
                    Err(e) => {
                        let line = e.position().map_or(line, |p| p.line());
                        return Some((
                            line,
                            Err(RowError {
                                line,
                                field: "row".into(),
                                reason: format!("unreadable CSV row: {e}"),
                            }),
                        ));
                    }
                    Ok(true) => {
                        let line = record.position().map_or(line, |p| p.line());
                        if record.iter().all(|v| v.trim().is_empty()) {
                            continue;
                        }
                        let values = columns
                            .iter()
                            .zip(record.iter())
                            .filter_map(|(field, value)| {
                                let value = value.trim();
                                (!value.is_empty()).then(|| (*field, value.to_owned()))
                            })
                            .filter_map(|(field, value)| field.map(|f| (f, value)))
                            .collect();
                        return Some((line, Ok(values)));
                    }
                }
            },
            ReaderKind::Ndjson { lines, line } => loop {
                *line += 1;
                let n = *line;
                let text = match lines.next()? {
                    Ok(text) => text,
                    Err(e) => {
                        return Some((
                            n,
                            Err(RowError {
                                line: n,
                                field: "row".into(),
                                reason: format!("unreadable line: {e}"),
                            }),
                        ))
                    }
                };
                if text.trim().is_empty() {
                    continue;
                }
                return Some((n, ndjson_record(n, &text)));
            },
        }
    }
}

/// One NDJSON line: an object of the known fields; strings, numbers (for `holdSeconds`) or null.
fn ndjson_record(line: u64, text: &str) -> Result<Record, RowError> {
    let error = |field: &str, reason: String| RowError {
        line,
        field: field.to_owned(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| error("row", format!("not a JSON object: {e}")))?;
    let serde_json::Value::Object(object) = value else {
        return Err(error("row", "not a JSON object".into()));
    };
    let mut record = Record::new();
    for (key, value) in object {
        let Some(field) = field_named(&key) else {
            return Err(error(
                &key,
                format!("unknown field; the fields are {}", FIELDS.join(", ")),
            ));
        };
        let text = match value {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => s.trim().to_owned(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => return Err(error(field, "must be a string or a number".into())),
        };
        if !text.is_empty() {
            record.insert(field, text);
        }
    }
    Ok(record)
}

/// Who imports: for the audit records.
#[derive(Debug, Clone, Copy)]
pub struct Importer {
    pub actor: Option<Actor>,
}

impl Importer {
    pub fn of(principal: &Principal) -> Self {
        Importer {
            actor: Some(Actor::of(principal)),
        }
    }

    /// The operator at the command line (no user).
    pub fn operator() -> Self {
        Importer { actor: None }
    }
}

/// Options of one import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub format: Format,
    pub batch_calls: usize,
    pub checks: ReferenceChecks,
    pub request_id: Option<String>,
}

impl ImportOptions {
    pub fn new(format: Format) -> Self {
        ImportOptions {
            format,
            batch_calls: DEFAULT_BATCH_CALLS,
            checks: ReferenceChecks::PerRow,
            request_id: None,
        }
    }
}

/// The first reading: every row checked; the external ids seen (a repeat is a problem).
fn check_all(
    source: &Source,
    format: Format,
    rules: &Rules,
    progress: &(dyn Fn(Progress) + Sync),
) -> AppResult<ImportReport> {
    let mut report = ImportReport::default();
    let mut reader = match Reader::new(source.open()?, format) {
        Ok(reader) => reader,
        Err(errors) => {
            report.rejected_rows = 1;
            report.errors = errors;
            return Ok(report);
        }
    };
    let mut seen: HashMap<String, u64> = HashMap::new();
    let reject = |report: &mut ImportReport, errors: Vec<RowError>| {
        report.rejected_rows += 1;
        let room = MAX_REPORTED_ERRORS.saturating_sub(report.errors.len());
        report.errors.extend(errors.into_iter().take(room));
    };
    while let Some((line, item)) = reader.next_item() {
        report.rows += 1;
        match item
            .map_err(|e| vec![e])
            .and_then(|record| to_call(line, &record, rules))
        {
            Err(errors) => reject(&mut report, errors),
            Ok(call) => {
                if let Some(first) = seen.insert(call.external_id.clone(), line) {
                    reject(
                        &mut report,
                        vec![RowError {
                            line,
                            field: "externalId".into(),
                            reason: format!("repeats line {first}"),
                        }],
                    );
                }
            }
        }
        if report.rows % 100_000 == 0 {
            progress(Progress::Checked(report.rows));
        }
    }
    progress(Progress::Checked(report.rows));
    Ok(report)
}

/// The external ids among `ids` that the organization already has.
async fn existing_external_ids(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    ids: &[&str],
) -> AppResult<BTreeSet<String>> {
    let found: Vec<String> = interactions::table
        .filter(interactions::organization_id.eq(tenant.org_id()))
        .filter(interactions::external_id.eq_any(ids))
        .select(interactions::external_id)
        .load(conn)
        .await?;
    Ok(found.into_iter().collect())
}

/// Imports the calls of `source` into the tenant (see the module's header). `progress` is called
/// from the import's own threads. Returns the report; row problems are in it, not an error.
pub async fn import_calls(
    state: &AppState,
    tenant: &Tenant,
    importer: Importer,
    source: Source,
    options: ImportOptions,
    progress: Arc<dyn Fn(Progress) + Send + Sync>,
) -> AppResult<ImportReport> {
    let started = Instant::now();
    let rules = {
        let mut conn = state.db.get(tenant).await?;
        let org = orgs::get(&mut conn, tenant).await?;
        let settings = orgs::settings(&mut conn, tenant).await?;
        Rules {
            directory: Directory::load(&mut conn, tenant).await?,
            horizon: settings.history_horizon.unwrap_or(org.created_at),
            now: Utc::now(),
        }
    };
    let rules = Arc::new(rules);
    let format = options.format;
    let checked = {
        let (source, rules, progress) = (source.clone(), Arc::clone(&rules), Arc::clone(&progress));
        tokio::task::spawn_blocking(move || check_all(&source, format, &rules, &*progress))
            .await
            .map_err(|e| AppError::internal(format!("import check: {e}")))??
    };
    if checked.rejected_rows > 0 {
        return Ok(ImportReport {
            seconds: started.elapsed().as_secs_f64(),
            ..checked
        });
    }
    let total = checked.rows;
    // The second reading, on a blocking thread, hands batches of calls to the loader.
    let batch_calls = options.batch_calls.max(1);
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<(u64, NewInteraction)>>(2);
    let reading = {
        let rules = Arc::clone(&rules);
        tokio::task::spawn_blocking(move || -> AppResult<()> {
            let mut reader = Reader::new(source.open()?, format)
                .map_err(|_| AppError::internal("import: the file changed between its two readings"))?;
            let mut batch = Vec::with_capacity(batch_calls);
            while let Some((line, item)) = reader.next_item() {
                let call = item
                    .map_err(|e| vec![e])
                    .and_then(|record| to_call(line, &record, &rules))
                    .map_err(|_| AppError::internal("import: the file changed between its two readings"))?;
                batch.push((line, call));
                if batch.len() == batch_calls {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(batch_calls));
                    if sender.blocking_send(full).is_err() {
                        return Ok(());
                    }
                }
            }
            if !batch.is_empty() {
                let _ = sender.blocking_send(batch);
            }
            Ok(())
        })
    };
    let mut report = ImportReport {
        rows: total,
        ..ImportReport::default()
    };
    let mut done = 0;
    while let Some(batch) = receiver.recv().await {
        done += batch.len() as u64;
        let existing = {
            let mut conn = state.db.get(tenant).await?;
            let ids: Vec<&str> = batch.iter().map(|(_, c)| c.external_id.as_str()).collect();
            existing_external_ids(&mut conn, tenant, &ids).await?
        };
        let first_line = batch.iter().map(|b| b.0).min().unwrap_or(0);
        let last_line = batch.iter().map(|b| b.0).max().unwrap_or(0);
        let calls: Vec<NewInteraction> = batch
            .into_iter()
            .map(|(_, call)| call)
            .filter(|call| !existing.contains(&call.external_id))
            .collect();
        report.duplicates += existing.len() as u64;
        if !calls.is_empty() {
            let audit = AuditEvent::new(Some(tenant.org_id()), importer.actor, "import.calls")
                .details(serde_json::json!({
                    "format": format,
                    "lines": [first_line, last_line],
                    "calls": calls.len(),
                    "duplicates": existing.len(),
                }))
                .request_id(options.request_id.clone());
            let loaded = bulk_load_audited(
                &state.settings.database_url,
                tenant,
                &calls,
                &[],
                options.checks,
                Some(audit),
            )
            .await?;
            report.imported += loaded.calls;
        }
        progress(Progress::Loaded {
            done,
            total,
            imported: report.imported,
        });
    }
    reading
        .await
        .map_err(|e| AppError::internal(format!("import read: {e}")))??;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        let mut directory = Directory::default();
        let agent = Uuid::from_u128(1);
        directory.agents.insert(agent.to_string(), agent);
        directory.agents.insert("201".into(), agent);
        directory.dispositions.insert("SALE".into(), Uuid::from_u128(2));
        Rules {
            directory,
            horizon: DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
                .map(|d| d.to_utc())
                .unwrap_or_default(),
            now: DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                .map(|d| d.to_utc())
                .unwrap_or_default(),
        }
    }

    fn record(pairs: &[(&'static str, &str)]) -> Record {
        pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
    }

    #[test]
    fn an_answered_call_gets_the_lifecycle_durations() {
        let r = record(&[
            ("externalId", "old-1"),
            ("direction", "outbound"),
            ("offeredAt", "2025-06-01T09:00:00Z"),
            ("answeredAt", "2025-06-01T09:00:15Z"),
            ("endedAt", "2025-06-01T09:02:15Z"),
            ("wrapEndedAt", "2025-06-01T09:02:45Z"),
            ("holdSeconds", "30"),
            ("agent", "201"),
            ("disposition", "SALE"),
        ]);
        let call = to_call(2, &r, &rules()).map_err(|e| format!("{e:?}"));
        let Ok(call) = call else {
            panic!("refused: {call:?}");
        };
        assert_eq!(call.outcome, Outcome::Answered);
        assert_eq!(call.answered_by, Some(AnsweredBy::Human));
        assert_eq!(
            (call.wait_ms, call.talk_ms, call.hold_ms, call.wrap_ms),
            (Some(15_000), 90_000, 30_000, 30_000)
        );
        assert_eq!(call.agent_id, Some(Uuid::from_u128(1)));
    }

    #[test]
    fn every_problem_of_a_row_is_named() {
        let r = record(&[
            ("externalId", "has space"),
            ("direction", "SIDEWAYS"),
            ("offeredAt", "2024-06-01T09:00:00Z"),
            ("endedAt", "yesterday"),
            ("outcome", "ANSWERED"),
            ("agent", "999"),
            ("disposition", "NOPE"),
        ]);
        let Err(errors) = to_call(7, &r, &rules()) else {
            panic!("accepted");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "externalId",
                "direction",
                "offeredAt",
                "endedAt",
                "outcome",
                "agent",
                "disposition"
            ]
        );
        assert!(errors.iter().all(|e| e.line == 7));
        assert!(errors[2].reason.contains("history horizon"));
    }

    #[test]
    fn csv_and_ndjson_read_the_same_records() {
        let csv = "externalId,direction,offeredAt,endedAt,holdSeconds\n\
                   a,INBOUND,2025-06-01T09:00:00Z,2025-06-01T09:01:00Z,\n\n";
        let ndjson = "{\"externalId\":\"a\",\"direction\":\"INBOUND\",\"offeredAt\":\"2025-06-01T09:00:00Z\",\
                      \"endedAt\":\"2025-06-01T09:01:00Z\",\"holdSeconds\":null}\n\n";
        let read = |text: &'static str, format| {
            let mut reader = Reader::new(Box::new(text.as_bytes()), format).map_err(|e| format!("{e:?}"));
            let mut items = Vec::new();
            if let Ok(reader) = reader.as_mut() {
                while let Some((line, item)) = reader.next_item() {
                    items.push((line, item.map_err(|e| e.reason)));
                }
            }
            items
        };
        let from_csv = read(csv, Format::Csv);
        let from_ndjson = read(ndjson, Format::Ndjson);
        assert_eq!(from_csv.len(), 1);
        assert_eq!(from_csv[0].0, 2, "the header is line 1");
        assert_eq!(from_ndjson[0].0, 1);
        assert_eq!(from_csv[0].1, from_ndjson[0].1);
        assert_eq!(Format::from_name("calls.CSV"), Some(Format::Csv));
        assert_eq!(Format::from_name("application/x-ndjson"), Some(Format::Ndjson));
    }
}

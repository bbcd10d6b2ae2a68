//! Saved reports: create (from scratch, from a template, as a copy), read, update, delete.
//!
//! Every definition is validated before it is written, by the analytics engine's own checks
//! ([`validate_analytics`], the code `analytics` runs before it reads a fact) over the range
//! resolved now, plus the range and presentation rules of [`crate::reports::definition`]; all
//! problems are reported at once as BAD_USER_INPUT naming each field. An interaction detail log
//! asks the engine nothing, so it is checked by its own rules (filter and range only) and its
//! filter's ids against the tenant, as the engine checks them. Updates are optimistic:
//! the caller names the version it read, a stale one is CONFLICT. Every change writes one
//! audit record in its transaction. Who may do what is in the module doc of
//! [`crate::reports`].

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use crate::audit::{self, Actor, AuditEvent};
use crate::auth::{Permission, Principal, Tenant};
use crate::db::reports::{self as rows, Listing, NewReport, ReportChanges, ReportRow};
use crate::domain::saved_text;
use crate::error::{AppError, AppResult, FieldError};
use crate::kpi::analytics::validate_analytics;
use crate::kpi::organization_rule;
use crate::reports::definition::{Definition, ReportKind};
use crate::reports::log;
use crate::reports::range::{self, RelativeRange};
use crate::reports::{may_create, may_edit, may_read, sees, templates};
use crate::state::AppState;

/// A stored report with its definition read back.
#[derive(Debug, Clone)]
pub struct SavedReport {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub shared: bool,
    pub template_key: Option<String>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub definition: Definition,
}

impl TryFrom<ReportRow> for SavedReport {
    type Error = AppError;

    fn try_from(row: ReportRow) -> AppResult<Self> {
        let definition: Definition = serde_json::from_value(row.definition)
            .map_err(|e| AppError::internal(format!("report {}: stored definition unreadable: {e}", row.id)))?;
        Ok(SavedReport {
            id: row.id,
            owner_id: row.owner_id,
            title: row.title,
            description: row.description,
            shared: row.shared,
            template_key: row.template_key,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
            definition,
        })
    }
}

/// What a caller writes: the whole report (an update replaces it).
#[derive(Debug, Clone)]
pub struct ReportInput {
    pub title: String,
    pub description: Option<String>,
    pub shared: bool,
    pub definition: Definition,
}

pub fn not_found() -> AppError {
    AppError::NotFound("report not found".into())
}

fn require_reader(principal: &Principal) -> AppResult<()> {
    if may_read(principal.role) {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "reports are for VIEWER (shared reports) and SUPERVISOR or higher".into(),
        ))
    }
}

fn require_creator(principal: &Principal) -> AppResult<()> {
    if may_create(principal.role) {
        Ok(())
    } else {
        Err(AppError::Forbidden("requires role SUPERVISOR or higher".into()))
    }
}

/// Title and description, trimmed (an empty description is none).
fn normalize(input: &mut ReportInput) {
    (input.title, input.description) = saved_text::normalize(&input.title, input.description.as_deref());
}

/// Where a write's fields are named in errors.
struct Paths<'a> {
    title: &'a str,
    description: &'a str,
    /// Prefix of the definition's fields (`input` → `input.query.metrics[0]`).
    definition: &'a str,
}

const INPUT_PATHS: Paths<'static> = Paths {
    title: "input.title",
    description: "input.description",
    definition: "input",
};

/// Validates a report as it will be stored: its text, its range and presentation, and its
/// query by the analytics engine's own checks over the range resolved now in the
/// organization's zone (ids of this tenant, metrics × grouping, order, limit, buckets, the
/// raw-read cap). Every problem at once.
async fn validate(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    input: &ReportInput,
    paths: &Paths<'_>,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let mut errors = saved_text::check(
        &input.title,
        paths.title,
        input.description.as_deref(),
        paths.description,
    );
    let definition = &input.definition;
    errors.extend(definition.check_own_rules(paths.definition));
    if definition.kind == ReportKind::InteractionLog {
        // No analytics query to check: the log's own rules above, and its filter's ids.
        let prefix = format!("{}.query.filter", paths.definition);
        match log::check_filter(conn, tenant, definition, &prefix).await {
            Ok(()) => {}
            Err(AppError::BadUserInput { fields, .. }) => errors.extend(fields),
            Err(other) => return Err(other),
        }
        return if errors.is_empty() {
            Ok(())
        } else {
            Err(AppError::invalid_fields(errors))
        };
    }
    let (_, tz) = organization_rule(conn, tenant).await?;
    // A broken absolute range is reported above; the query is still checked, over a day.
    let (from, to) = if definition.range.check("range").is_empty() {
        definition.range.resolve(tz, now)
    } else {
        range::resolve(RelativeRange::Yesterday, tz, now)
    };
    let request = definition.query.request(from, to);
    let prefix = format!("{}.query", paths.definition);
    match validate_analytics(conn, tenant, &request, &prefix).await {
        Ok(()) => {}
        Err(AppError::BadUserInput { message, fields }) if fields.is_empty() => {
            errors.push(FieldError::new(prefix, message));
        }
        Err(AppError::BadUserInput { fields, .. }) => errors.extend(fields),
        Err(other) => return Err(other),
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::invalid_fields(errors))
    }
}

fn stored(definition: &Definition) -> AppResult<serde_json::Value> {
    Ok(serde_json::to_value(definition)?)
}

/// Stores a validated report owned by the caller, audited as `report.create` with `source`.
async fn insert(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    principal: &Principal,
    input: &ReportInput,
    template_key: Option<&str>,
    source: serde_json::Value,
    request_id: Option<String>,
) -> AppResult<SavedReport> {
    let definition = stored(&input.definition)?;
    let row = conn
        .transaction(async |conn| -> AppResult<ReportRow> {
            let row = rows::insert(
                conn,
                tenant,
                NewReport {
                    owner_id: principal.user_id,
                    title: &input.title,
                    description: input.description.as_deref(),
                    shared: input.shared,
                    definition: definition.clone(),
                    template_key,
                },
            )
            .await?;
            let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "report.create")
                .target("report", row.id)
                .details(serde_json::json!({
                    "title": row.title,
                    "shared": row.shared,
                    "version": row.version,
                    "source": source,
                    "definition": definition,
                }))
                .request_id(request_id);
            audit::record(conn, event).await?;
            Ok(row)
        })
        .await?;
    SavedReport::try_from(row)
}

/// The reports the caller may see, by title (at most 500): shared ones and their own
/// (SUPERVISOR), every one (ADMIN+), shared ones only (VIEWER).
pub async fn list(state: &AppState, principal: &Principal) -> AppResult<Vec<SavedReport>> {
    require_reader(principal)?;
    let listing = if principal.role.has(Permission::Administer) {
        Listing::All
    } else if may_create(principal.role) {
        Listing::SharedOrOwnedBy(principal.user_id)
    } else {
        Listing::Shared
    };
    let mut conn = state.db.get(&Tenant::of(principal)).await?;
    rows::list(&mut conn, &Tenant::of(principal), listing)
        .await?
        .into_iter()
        .map(SavedReport::try_from)
        .collect()
}

/// One report the caller may see; NOT_FOUND otherwise (another tenant's too).
pub async fn get(state: &AppState, principal: &Principal, id: Uuid) -> AppResult<SavedReport> {
    require_reader(principal)?;
    let mut conn = state.db.get(&Tenant::of(principal)).await?;
    visible(&mut conn, principal, id).await
}

/// One of the organization's reports, whoever may see it: for system jobs (report runs,
/// schedules) that checked access when the work was asked for.
pub async fn load(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid) -> AppResult<Option<SavedReport>> {
    rows::get(conn, tenant, id)
        .await?
        .map(SavedReport::try_from)
        .transpose()
}

async fn visible(conn: &mut AsyncPgConnection, principal: &Principal, id: Uuid) -> AppResult<SavedReport> {
    let row = rows::get(conn, &Tenant::of(principal), id)
        .await?
        .filter(|row| sees(principal, row.owner_id, row.shared))
        .ok_or_else(not_found)?;
    SavedReport::try_from(row)
}

/// Creates a report owned by the caller (SUPERVISOR+). Audited.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    mut input: ReportInput,
    request_id: Option<String>,
) -> AppResult<SavedReport> {
    require_creator(principal)?;
    normalize(&mut input);
    let tenant = Tenant::of(principal);
    let mut conn = state.db.get(&tenant).await?;
    validate(&mut conn, &tenant, &input, &INPUT_PATHS, Utc::now()).await?;
    let source = serde_json::json!({ "kind": "new" });
    insert(&mut conn, &tenant, principal, &input, None, source, request_id).await
}

/// Copies a template into a private report of the caller (SUPERVISOR+), titled `title` or as
/// the template. An unknown key is BAD_USER_INPUT naming `templateKey`. Audited.
pub async fn create_from_template(
    state: &AppState,
    principal: &Principal,
    template_key: &str,
    title: Option<String>,
    request_id: Option<String>,
) -> AppResult<SavedReport> {
    require_creator(principal)?;
    let template = templates::find(template_key).ok_or_else(|| {
        let known: Vec<&str> = templates::all().iter().map(|t| t.key).collect();
        AppError::invalid_fields(vec![FieldError::new(
            "templateKey",
            format!("unknown template; known: {}", known.join(", ")),
        )])
    })?;
    let mut input = ReportInput {
        title: title.unwrap_or_else(|| template.title.to_owned()),
        description: Some(template.description.to_owned()),
        shared: false,
        definition: template.definition,
    };
    normalize(&mut input);
    let tenant = Tenant::of(principal);
    let mut conn = state.db.get(&tenant).await?;
    let paths = Paths {
        title: "title",
        description: "templateKey",
        definition: "templateKey",
    };
    validate(&mut conn, &tenant, &input, &paths, Utc::now()).await?;
    let source = serde_json::json!({ "kind": "template", "templateKey": template.key });
    insert(
        &mut conn,
        &tenant,
        principal,
        &input,
        Some(template.key),
        source,
        request_id,
    )
    .await
}

/// Copies a report the caller may see into a private report of theirs (SUPERVISOR+). Audited.
pub async fn duplicate(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    request_id: Option<String>,
) -> AppResult<SavedReport> {
    require_creator(principal)?;
    let tenant = Tenant::of(principal);
    let mut conn = state.db.get(&tenant).await?;
    let original = visible(&mut conn, principal, id).await?;
    let input = ReportInput {
        title: saved_text::copy_title(&original.title),
        description: original.description.clone(),
        shared: false,
        definition: original.definition.clone(),
    };
    // The original was valid when stored; the ids it names may have gone since.
    let paths = Paths {
        title: "id",
        description: "id",
        definition: "id",
    };
    validate(&mut conn, &tenant, &input, &paths, Utc::now()).await?;
    let source = serde_json::json!({ "kind": "copy", "reportId": original.id, "version": original.version });
    insert(
        &mut conn,
        &tenant,
        principal,
        &input,
        original.template_key.as_deref(),
        source,
        request_id,
    )
    .await
}

/// The report to change: visible to the caller (NOT_FOUND otherwise) and theirs to change
/// (FORBIDDEN otherwise).
async fn editable(conn: &mut AsyncPgConnection, principal: &Principal, id: Uuid) -> AppResult<SavedReport> {
    let report = visible(conn, principal, id).await?;
    if !may_edit(principal, report.owner_id) {
        return Err(AppError::Forbidden(
            "only the report's owner or an ADMIN may change it".into(),
        ));
    }
    Ok(report)
}

/// Replaces a report's title, description, sharing and definition, if it is still at
/// `expected_version` (CONFLICT otherwise: read it again). The owner or an ADMIN. Audited.
pub async fn update(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    expected_version: i32,
    mut input: ReportInput,
    request_id: Option<String>,
) -> AppResult<SavedReport> {
    require_creator(principal)?;
    normalize(&mut input);
    let tenant = Tenant::of(principal);
    let mut conn = state.db.get(&tenant).await?;
    editable(&mut conn, principal, id).await?;
    validate(&mut conn, &tenant, &input, &INPUT_PATHS, Utc::now()).await?;
    let definition = stored(&input.definition)?;
    let row = conn
        .transaction(async |conn| -> AppResult<ReportRow> {
            let current = rows::get_for_update(conn, &tenant, id).await?.ok_or_else(not_found)?;
            if current.version != expected_version {
                return Err(AppError::Conflict(format!(
                    "the report is at version {}, not {expected_version}: read it again and retry",
                    current.version
                )));
            }
            let row = rows::update(
                conn,
                &tenant,
                id,
                ReportChanges {
                    title: &input.title,
                    description: input.description.as_deref(),
                    shared: input.shared,
                    definition: definition.clone(),
                },
            )
            .await?
            .ok_or_else(not_found)?;
            let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "report.update")
                .target("report", row.id)
                .details(serde_json::json!({
                    "title": row.title,
                    "shared": row.shared,
                    "fromVersion": current.version,
                    "version": row.version,
                    "definition": definition,
                }))
                .request_id(request_id);
            audit::record(conn, event).await?;
            Ok(row)
        })
        .await?;
    SavedReport::try_from(row)
}

/// Deletes a report: the owner or an ADMIN. Returns its id. Audited.
pub async fn delete(state: &AppState, principal: &Principal, id: Uuid, request_id: Option<String>) -> AppResult<Uuid> {
    require_creator(principal)?;
    let tenant = Tenant::of(principal);
    let mut conn = state.db.get(&tenant).await?;
    let report = editable(&mut conn, principal, id).await?;
    conn.transaction(async |conn| -> AppResult<()> {
        if !rows::delete(conn, &tenant, id).await? {
            return Err(not_found());
        }
        let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "report.delete")
            .target("report", id)
            .details(serde_json::json!({ "title": report.title, "version": report.version }))
            .request_id(request_id);
        audit::record(conn, event).await
    })
    .await?;
    Ok(id)
}

//! Dashboards as stored: create, read, update, duplicate, delete, role defaults, and the
//! values of one dashboard's widgets for one viewer. Every write validates the whole dashboard
//! first ([`widgets::validate`]: all problems at once), is optimistic where it replaces
//! (`expectedVersion`; a stale one is CONFLICT), and writes one audit record in its
//! transaction. Who may do what is in the module doc of [`crate::dashboards`].

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use crate::audit::{self, Actor, AuditEvent};
use crate::auth::{Permission, Principal, Role, Tenant};
use crate::db::contact_centre as cc;
use crate::db::dashboards::{self as rows, DashboardContent, DashboardRow, NewWidget};
use crate::db::teams;
use crate::domain::saved_text;
use crate::error::{AppError, AppResult, FieldError};
use crate::realtime::BusEvent;
use crate::reports::saved as reports;
use crate::state::AppState;

use super::values::{self, WidgetValue};
use super::widgets::{self, Author, Grid, ValidWidget, WidgetInput, WidgetKind, WidgetQuery, WidgetSpec};
use super::{assemble, may_create, may_edit, not_found, viewer, Visibility};

/// A stored dashboard with its widgets.
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub visibility: Visibility,
    pub team_id: Option<Uuid>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub widgets: Vec<Widget>,
}

/// A stored widget.
#[derive(Debug, Clone)]
pub struct Widget {
    pub id: Uuid,
    /// Its index in the layout (0-based).
    pub position: i32,
    pub title: String,
    pub kind: WidgetKind,
    pub grid: Grid,
    pub spec: WidgetSpec,
}

/// What a caller writes: the whole dashboard (an update replaces it, widgets included).
#[derive(Debug, Clone)]
pub struct DashboardInput {
    pub title: String,
    pub description: Option<String>,
    pub visibility: Visibility,
    /// TEAM only: the team it is shared with (default: the owner's teams).
    pub team_id: Option<String>,
    pub widgets: Vec<WidgetInput>,
}

fn require_creator(principal: &Principal) -> AppResult<()> {
    if may_create(principal.role) {
        Ok(())
    } else {
        Err(AppError::Forbidden("requires role AGENT or higher".into()))
    }
}

/// The teams a user belongs to (their agent profile's) or supervises.
async fn teams_of(conn: &mut AsyncPgConnection, tenant: &Tenant, user_id: Uuid) -> AppResult<Vec<Uuid>> {
    let mut ids = teams::supervised_by(conn, tenant, user_id).await?;
    if let Some(team) = crate::db::agents::of_user(conn, tenant, user_id)
        .await?
        .and_then(|a| a.team_id)
    {
        ids.push(team);
    }
    Ok(ids)
}

/// A checked dashboard, ready to store.
struct Checked {
    title: String,
    description: Option<String>,
    visibility: Visibility,
    team_id: Option<Uuid>,
    widgets: Vec<ValidWidget>,
}

/// Validates a whole dashboard written by `principal` (its owner-to-be, or an ADMIN editing
/// it as `owner_role`'s): text, visibility and team, then every widget.
async fn check(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    principal: &Principal,
    input: DashboardInput,
) -> AppResult<Checked> {
    let (title, description) = saved_text::normalize(&input.title, input.description.as_deref());
    let mut errors = saved_text::check(&title, "input.title", description.as_deref(), "input.description");
    if principal.role == Role::Agent && input.visibility != Visibility::Private {
        return Err(AppError::Forbidden(
            "an AGENT's dashboards are PRIVATE: ask a supervisor to share one".into(),
        ));
    }
    let mut team_id = None;
    match (input.visibility, input.team_id.as_deref()) {
        (Visibility::Team, Some(raw)) => match Uuid::parse_str(raw) {
            Err(_) => errors.push(FieldError::new("input.teamId", "not a valid id")),
            Ok(id) => {
                if cc::existing_teams(conn, tenant, &[id]).await?.is_empty() {
                    errors.push(FieldError::new("input.teamId", "unknown id"));
                } else if !principal.role.has(Permission::Administer)
                    && !teams_of(conn, tenant, principal.user_id).await?.contains(&id)
                {
                    errors.push(FieldError::new(
                        "input.teamId",
                        "you may share with a team you belong to or supervise",
                    ));
                } else {
                    team_id = Some(id);
                }
            }
        },
        (_, Some(_)) => errors.push(FieldError::new("input.teamId", "only a TEAM dashboard names a team")),
        (_, None) => {}
    }
    let own_agent = if principal.role == Role::Agent {
        cc::agent_of_user(conn, tenant, principal.user_id).await?
    } else {
        None
    };
    let author = Author {
        principal,
        own_agent,
        shared: input.visibility != Visibility::Private,
    };
    let widgets = match widgets::validate(conn, tenant, &author, input.widgets, Utc::now()).await {
        Ok(widgets) => widgets,
        Err(AppError::BadUserInput { message, fields }) => {
            if errors.is_empty() {
                return Err(AppError::BadUserInput { message, fields });
            }
            errors.extend(fields);
            Vec::new()
        }
        Err(other) => return Err(other),
    };
    if !errors.is_empty() {
        return Err(AppError::invalid_fields(errors));
    }
    Ok(Checked {
        title,
        description,
        visibility: input.visibility,
        team_id,
        widgets,
    })
}

fn content(checked: &Checked) -> DashboardContent<'_> {
    DashboardContent {
        title: &checked.title,
        description: checked.description.as_deref(),
        visibility: checked.visibility.as_str(),
        team_id: checked.team_id,
    }
}

fn new_widgets(checked: &Checked) -> AppResult<Vec<NewWidget<'_>>> {
    checked
        .widgets
        .iter()
        .enumerate()
        .map(|(i, w)| {
            Ok(NewWidget {
                position: i32::try_from(i).map_err(|_| AppError::internal("widget index"))?,
                title: &w.title,
                kind: w.kind.as_str(),
                spec: serde_json::to_value(&w.spec)?,
                grid: [w.grid.x, w.grid.y, w.grid.width, w.grid.height],
            })
        })
        .collect()
}

/// What an audit record says of a dashboard's content.
fn audit_details(row: &DashboardRow, widgets: &[ValidWidget]) -> serde_json::Value {
    serde_json::json!({
        "title": row.title,
        "visibility": row.visibility,
        "teamId": row.team_id,
        "version": row.version,
        "widgets": widgets.iter().map(|w| serde_json::json!({
            "title": w.title, "kind": w.kind.as_str(), "spec": w.spec,
        })).collect::<Vec<_>>(),
    })
}

/// Stores a checked dashboard owned by the caller, audited as `dashboard.create` with `source`.
async fn insert(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    principal: &Principal,
    checked: Checked,
    source: serde_json::Value,
    request_id: Option<String>,
) -> AppResult<Dashboard> {
    let (row, stored) = conn
        .transaction(async |conn| {
            let row = rows::insert(conn, tenant, principal.user_id, &content(&checked)).await?;
            let stored = rows::insert_widgets(conn, tenant, row.id, &new_widgets(&checked)?).await?;
            let mut details = audit_details(&row, &checked.widgets);
            details["source"] = source;
            let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "dashboard.create")
                .target("dashboard", row.id)
                .details(details)
                .request_id(request_id);
            audit::record(conn, event).await?;
            AppResult::Ok((row, stored))
        })
        .await?;
    assemble(row, stored)
}

/// Reads dashboards' widgets (one statement for all of them) and assembles them.
async fn with_widgets(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    dashboards: Vec<DashboardRow>,
) -> AppResult<Vec<Dashboard>> {
    let ids: Vec<Uuid> = dashboards.iter().map(|d| d.id).collect();
    let mut widgets = rows::widgets_of(conn, tenant, &ids).await?;
    dashboards
        .into_iter()
        .map(|row| {
            let (mine, rest): (Vec<_>, Vec<_>) = widgets.drain(..).partition(|w| w.dashboard_id == row.id);
            widgets = rest;
            assemble(row, mine)
        })
        .collect()
}

async fn visible(conn: &mut AsyncPgConnection, principal: &Principal, id: Uuid) -> AppResult<Dashboard> {
    let tenant = Tenant::of(principal);
    let row = rows::get_visible(conn, &tenant, viewer(principal), id)
        .await?
        .ok_or_else(not_found)?;
    with_widgets(conn, &tenant, vec![row])
        .await?
        .pop()
        .ok_or_else(not_found)
}

/// The dashboards the caller may see, by title (at most 500), with their widgets.
pub async fn list(state: &AppState, principal: &Principal) -> AppResult<Vec<Dashboard>> {
    let tenant = Tenant::of(principal);
    let mut conn = state.db.get(&tenant).await?;
    let rows = rows::list_visible(&mut conn, &tenant, viewer(principal)).await?;
    with_widgets(&mut conn, &tenant, rows).await
}

/// One dashboard the caller may see (NOT_FOUND otherwise, another tenant's too); without an
/// id, their role's default (NOT_FOUND when none is set).
pub async fn get(state: &AppState, principal: &Principal, id: Option<Uuid>) -> AppResult<Dashboard> {
    let tenant = Tenant::of(principal);
    let mut conn = state.db.get(&tenant).await?;
    let id = match id {
        Some(id) => id,
        None => rows::default_for(&mut conn, &tenant, principal.role.as_str())
            .await?
            .ok_or_else(|| AppError::NotFound("no default dashboard for your role".into()))?,
    };
    visible(&mut conn, principal, id).await
}

/// The caller's role default, if an ADMIN set one they may see.
pub async fn default_for(state: &AppState, principal: &Principal) -> AppResult<Option<Dashboard>> {
    match get(state, principal, None).await {
        Ok(dashboard) => Ok(Some(dashboard)),
        Err(AppError::NotFound(_)) => Ok(None),
        Err(other) => Err(other),
    }
}

/// Creates a dashboard owned by the caller (AGENT: PRIVATE only). Audited.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    input: DashboardInput,
    request_id: Option<String>,
) -> AppResult<Dashboard> {
    require_creator(principal)?;
    let tenant = Tenant::of(principal);
    let mut conn = state.db.get(&tenant).await?;
    let checked = check(&mut conn, &tenant, principal, input).await?;
    insert(
        &mut conn,
        &tenant,
        principal,
        checked,
        serde_json::json!({ "kind": "new" }),
        request_id,
    )
    .await
}

/// The input that rewrites a stored widget as it is (for copies).
fn input_of(widget: &Widget) -> WidgetInput {
    let ids = |ids: &Option<Vec<Uuid>>| ids.as_ref().map(|v| v.iter().map(Uuid::to_string).collect());
    let spec = &widget.spec;
    WidgetInput {
        title: widget.title.clone(),
        kind: widget.kind,
        grid: widget.grid,
        filter: widgets::FilterInput {
            campaign_ids: ids(&spec.filter.campaign_ids),
            team_ids: ids(&spec.filter.team_ids),
            agent_ids: ids(&spec.filter.agent_ids),
            direction: spec.filter.direction,
        },
        range: spec.range,
        metric: spec.metric.map(crate::reports::definition::metric_api_name),
        target: spec.target,
        thresholds: spec.thresholds,
        granularity: spec.granularity,
        table: spec.table.as_ref().map(|t| widgets::TableInput {
            metrics: t
                .metrics
                .iter()
                .copied()
                .map(crate::reports::definition::metric_api_name)
                .collect(),
            group_by: t.group_by.clone(),
            granularity: t.granularity,
            order_by: t.order_by.iter().copied().map(Into::into).collect(),
            limit: t.limit,
        }),
        report_id: spec.report_id.map(|id| id.to_string()),
        campaign_id: spec.campaign_id.map(|id| id.to_string()),
    }
}

/// Copies a dashboard the caller may see into a PRIVATE dashboard of theirs, its widgets
/// validated again as theirs (an AGENT's copy is forced to their own numbers, and refused when
/// it shows what an agent's dashboard may not). Audited as a create from a copy.
pub async fn duplicate(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    request_id: Option<String>,
) -> AppResult<Dashboard> {
    require_creator(principal)?;
    let tenant = Tenant::of(principal);
    let mut conn = state.db.get(&tenant).await?;
    let original = visible(&mut conn, principal, id).await?;
    let input = DashboardInput {
        title: saved_text::copy_title(&original.title),
        description: original.description.clone(),
        visibility: Visibility::Private,
        team_id: None,
        widgets: original.widgets.iter().map(input_of).collect(),
    };
    let checked = check(&mut conn, &tenant, principal, input).await?;
    let source = serde_json::json!({ "kind": "copy", "dashboardId": original.id, "version": original.version });
    insert(&mut conn, &tenant, principal, checked, source, request_id).await
}

/// The dashboard to change: visible (NOT_FOUND otherwise) and the caller's to change
/// (FORBIDDEN otherwise).
async fn editable(conn: &mut AsyncPgConnection, principal: &Principal, id: Uuid) -> AppResult<Dashboard> {
    let dashboard = visible(conn, principal, id).await?;
    if !may_edit(principal, dashboard.owner_id) {
        return Err(AppError::Forbidden(
            "only the dashboard's owner or an ADMIN may change it".into(),
        ));
    }
    Ok(dashboard)
}

/// Replaces a dashboard (widgets included) if it is still at `expected_version` (CONFLICT
/// otherwise: read it again). The owner or an ADMIN. Audited.
pub async fn update(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    expected_version: i32,
    input: DashboardInput,
    request_id: Option<String>,
) -> AppResult<Dashboard> {
    require_creator(principal)?;
    let tenant = Tenant::of(principal);
    let mut conn = state.db.get(&tenant).await?;
    editable(&mut conn, principal, id).await?;
    let checked = check(&mut conn, &tenant, principal, input).await?;
    let (row, stored) = conn
        .transaction(async |conn| {
            let current = rows::get_for_update(conn, &tenant, id).await?.ok_or_else(not_found)?;
            if current.version != expected_version {
                return Err(AppError::Conflict(format!(
                    "the dashboard is at version {}, not {expected_version}: read it again and retry",
                    current.version
                )));
            }
            let row = rows::update(conn, &tenant, id, &content(&checked))
                .await?
                .ok_or_else(not_found)?;
            rows::delete_widgets(conn, &tenant, id).await?;
            let stored = rows::insert_widgets(conn, &tenant, id, &new_widgets(&checked)?).await?;
            let mut details = audit_details(&row, &checked.widgets);
            details["fromVersion"] = current.version.into();
            let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "dashboard.update")
                .target("dashboard", id)
                .details(details)
                .request_id(request_id);
            audit::record(conn, event).await?;
            Ok((row, stored))
        })
        .await?;
    state
        .bus
        .publish(tenant.org_id(), BusEvent::Dashboard { dashboard_id: Some(id) });
    assemble(row, stored)
}

/// Deletes a dashboard (and any role default naming it): the owner or an ADMIN. Audited.
pub async fn delete(state: &AppState, principal: &Principal, id: Uuid, request_id: Option<String>) -> AppResult<Uuid> {
    require_creator(principal)?;
    let tenant = Tenant::of(principal);
    let mut conn = state.db.get(&tenant).await?;
    let dashboard = editable(&mut conn, principal, id).await?;
    conn.transaction(async |conn| {
        if !rows::delete(conn, &tenant, id).await? {
            return Err(not_found());
        }
        let event = AuditEvent::new(Some(tenant.org_id()), Some(Actor::of(principal)), "dashboard.delete")
            .target("dashboard", id)
            .details(serde_json::json!({ "title": dashboard.title, "version": dashboard.version }))
            .request_id(request_id);
        audit::record(conn, event).await
    })
    .await?;
    state
        .bus
        .publish(tenant.org_id(), BusEvent::Dashboard { dashboard_id: Some(id) });
    Ok(id)
}

/// Sets (or with None clears) the default dashboard of `role`: ADMIN+, an ORGANIZATION
/// dashboard (everyone of the role may see it). Audited.
pub async fn set_default(
    state: &AppState,
    principal: &Principal,
    role: Role,
    id: Option<Uuid>,
    request_id: Option<String>,
) -> AppResult<Option<Dashboard>> {
    if !principal.role.has(Permission::Administer) {
        return Err(AppError::Forbidden("requires role ADMIN or higher".into()));
    }
    let tenant = Tenant::of(principal);
    let mut conn = state.db.get(&tenant).await?;
    let dashboard = match id {
        Some(id) => {
            let dashboard = visible(&mut conn, principal, id).await?;
            if dashboard.visibility != Visibility::Organization {
                return Err(AppError::invalid_fields(vec![FieldError::new(
                    "id",
                    "a role's default must be an ORGANIZATION dashboard, so everyone of the role sees it",
                )]));
            }
            Some(dashboard)
        }
        None => None,
    };
    conn.transaction(async |conn| {
        rows::set_default(conn, &tenant, role.as_str(), id).await?;
        let event = AuditEvent::new(
            Some(tenant.org_id()),
            Some(Actor::of(principal)),
            "dashboard.set_default",
        )
        .target("dashboard_default", role.as_str())
        .details(serde_json::json!({ "role": role.as_str(), "dashboardId": id }))
        .request_id(request_id);
        audit::record(conn, event).await
    })
    .await?;
    state
        .bus
        .publish(tenant.org_id(), BusEvent::Dashboard { dashboard_id: None });
    Ok(dashboard)
}

/// The query of each widget (None for a table whose report is gone or no longer readable by
/// the owner's organization), reading each named report once.
pub async fn queries_of(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    dashboard: &Dashboard,
) -> AppResult<Vec<Option<WidgetQuery>>> {
    let mut reports_read: Vec<(Uuid, Option<reports::SavedReport>)> = Vec::new();
    let mut out = Vec::with_capacity(dashboard.widgets.len());
    for widget in &dashboard.widgets {
        let report = match widget.spec.report_id {
            Some(id) => {
                if !reports_read.iter().any(|(r, _)| *r == id) {
                    let report = reports::load(conn, tenant, id).await?;
                    reports_read.push((id, report));
                }
                match reports_read
                    .iter()
                    .find(|(r, _)| *r == id)
                    .and_then(|(_, r)| r.as_ref())
                {
                    Some(report) => Some(report),
                    None => {
                        out.push(None);
                        continue;
                    }
                }
            }
            None => None,
        };
        out.push(Some(widgets::query_of(widget.kind, &widget.spec, report)?));
    }
    Ok(out)
}

/// The query of each widget of a dashboard that shows no saved report.
pub fn queries_without_reports(dashboard: &Dashboard) -> AppResult<Vec<Option<WidgetQuery>>> {
    dashboard
        .widgets
        .iter()
        .map(|w| widgets::query_of(w.kind, &w.spec, None).map(Some))
        .collect()
}

/// Every widget's value for the caller, each distinct query computed once.
pub async fn values(state: &AppState, principal: &Principal, dashboard: &Dashboard) -> AppResult<Vec<WidgetValue>> {
    let tenant = Tenant::of(principal);
    let (mut conn, _, _) = state.reads.conn(&tenant).await?;
    let queries = queries_of(&mut conn, &tenant, dashboard).await?;
    let widgets: Vec<(WidgetKind, &WidgetSpec, Option<WidgetQuery>)> = dashboard
        .widgets
        .iter()
        .zip(queries)
        .map(|(w, q)| (w.kind, &w.spec, q))
        .collect();
    values::values_of(&mut conn, &tenant, &widgets, principal.role, Utc::now()).await
}

//! Dashboards, their widgets and the per-role defaults: rows of `dashboards`,
//! `dashboard_widgets` and `dashboard_defaults`, always reached through a [`Tenant`]. A widget's
//! query is stored as JSON that `dashboards::widgets` shapes and validates; this module only
//! moves it. Who sees which dashboard is answered here in one statement (a listing must not
//! cost one query per dashboard), by the rules of `dashboards` (module doc).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::schema::{dashboard_defaults, dashboard_widgets, dashboards};
use crate::error::AppResult;

/// How many dashboards a listing returns at most (by title).
pub const LIST_LIMIT: i64 = 500;

/// A stored dashboard (its widgets are read separately, for many dashboards at once).
#[derive(Clone, Debug, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = dashboards, check_for_backend(diesel::pg::Pg))]
pub struct DashboardRow {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub owner_id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub visibility: String,
    pub team_id: Option<Uuid>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A stored widget.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = dashboard_widgets, check_for_backend(diesel::pg::Pg))]
pub struct WidgetRow {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub dashboard_id: Uuid,
    pub position: i32,
    pub title: String,
    pub kind: String,
    pub spec: serde_json::Value,
    pub grid_x: i32,
    pub grid_y: i32,
    pub grid_width: i32,
    pub grid_height: i32,
}

/// A dashboard's content: what a create stores and an update replaces.
pub struct DashboardContent<'a> {
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub visibility: &'a str,
    pub team_id: Option<Uuid>,
}

/// A widget to store, at `position` in its dashboard.
pub struct NewWidget<'a> {
    pub position: i32,
    pub title: &'a str,
    pub kind: &'a str,
    pub spec: serde_json::Value,
    pub grid: [i32; 4],
}

/// Who asks: the user, and whether they see every dashboard (ADMIN and above).
#[derive(Debug, Clone, Copy)]
pub struct Viewer {
    pub user_id: Uuid,
    pub sees_all: bool,
}

pub async fn insert(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    owner_id: Uuid,
    content: &DashboardContent<'_>,
) -> AppResult<DashboardRow> {
    Ok(diesel::insert_into(dashboards::table)
        .values((
            dashboards::organization_id.eq(tenant.org_id()),
            dashboards::owner_id.eq(owner_id),
            dashboards::title.eq(content.title),
            dashboards::description.eq(content.description),
            dashboards::visibility.eq(content.visibility),
            dashboards::team_id.eq(content.team_id),
        ))
        .returning(DashboardRow::as_returning())
        .get_result(conn)
        .await?)
}

/// Stores a dashboard's widgets (one statement).
pub async fn insert_widgets(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    dashboard_id: Uuid,
    widgets: &[NewWidget<'_>],
) -> AppResult<Vec<WidgetRow>> {
    if widgets.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<_> = widgets
        .iter()
        .map(|w| {
            (
                dashboard_widgets::organization_id.eq(tenant.org_id()),
                dashboard_widgets::dashboard_id.eq(dashboard_id),
                dashboard_widgets::position.eq(w.position),
                dashboard_widgets::title.eq(w.title),
                dashboard_widgets::kind.eq(w.kind),
                dashboard_widgets::spec.eq(w.spec.clone()),
                dashboard_widgets::grid_x.eq(w.grid[0]),
                dashboard_widgets::grid_y.eq(w.grid[1]),
                dashboard_widgets::grid_width.eq(w.grid[2]),
                dashboard_widgets::grid_height.eq(w.grid[3]),
            )
        })
        .collect();
    let mut stored: Vec<WidgetRow> = diesel::insert_into(dashboard_widgets::table)
        .values(rows)
        .returning(WidgetRow::as_returning())
        .get_results(conn)
        .await?;
    stored.sort_by_key(|w| w.position);
    Ok(stored)
}

/// Removes every widget of a dashboard (an update then stores the new layout).
pub async fn delete_widgets(conn: &mut AsyncPgConnection, tenant: &Tenant, dashboard_id: Uuid) -> AppResult<usize> {
    Ok(diesel::delete(
        dashboard_widgets::table
            .filter(dashboard_widgets::organization_id.eq(tenant.org_id()))
            .filter(dashboard_widgets::dashboard_id.eq(dashboard_id)),
    )
    .execute(conn)
    .await?)
}

/// The widgets of these dashboards, by dashboard then position (one statement).
pub async fn widgets_of(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    dashboard_ids: &[Uuid],
) -> AppResult<Vec<WidgetRow>> {
    Ok(dashboard_widgets::table
        .filter(dashboard_widgets::organization_id.eq(tenant.org_id()))
        .filter(dashboard_widgets::dashboard_id.eq_any(dashboard_ids))
        .select(WidgetRow::as_select())
        .order((dashboard_widgets::dashboard_id.asc(), dashboard_widgets::position.asc()))
        .load(conn)
        .await?)
}

/// One of the organization's dashboards, whoever may see it.
pub async fn get(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid) -> AppResult<Option<DashboardRow>> {
    Ok(dashboards::table
        .filter(dashboards::organization_id.eq(tenant.org_id()))
        .filter(dashboards::id.eq(id))
        .select(DashboardRow::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// One of the organization's dashboards, locked for a read-check-write change.
pub async fn get_for_update(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    id: Uuid,
) -> AppResult<Option<DashboardRow>> {
    Ok(dashboards::table
        .filter(dashboards::organization_id.eq(tenant.org_id()))
        .filter(dashboards::id.eq(id))
        .select(DashboardRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?)
}

/// The visibility rule in SQL. `$1` organization, `$2` viewer, `$3` sees all, `$4` one id or
/// null. A TEAM dashboard's teams are its named team, or else its owner's teams (the team of
/// the owner's active agent profile and the teams they supervise); a viewer's teams likewise.
const VISIBLE_SQL: &str = "
SELECT d.* FROM dashboards d
WHERE d.organization_id = $1
  AND ($4::uuid IS NULL OR d.id = $4)
  AND ($3 OR d.owner_id = $2 OR d.visibility = 'ORGANIZATION'
       OR (d.visibility = 'TEAM' AND EXISTS (
            SELECT 1 FROM (
                SELECT d.team_id AS team_id WHERE d.team_id IS NOT NULL
                UNION ALL
                SELECT a.team_id FROM agents a
                 WHERE d.team_id IS NULL AND a.organization_id = $1 AND a.user_id = d.owner_id
                   AND a.active AND a.team_id IS NOT NULL
                UNION ALL
                SELECT s.team_id FROM team_supervisors s
                 WHERE d.team_id IS NULL AND s.organization_id = $1 AND s.user_id = d.owner_id
            ) dashboard_teams
            WHERE dashboard_teams.team_id IN (
                SELECT a.team_id FROM agents a
                 WHERE a.organization_id = $1 AND a.user_id = $2 AND a.active AND a.team_id IS NOT NULL
                UNION ALL
                SELECT s.team_id FROM team_supervisors s WHERE s.organization_id = $1 AND s.user_id = $2))))
ORDER BY d.title, d.id
LIMIT $5";

async fn visible_rows(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    viewer: Viewer,
    id: Option<Uuid>,
) -> AppResult<Vec<DashboardRow>> {
    Ok(diesel::sql_query(VISIBLE_SQL)
        .bind::<SqlUuid, _>(tenant.org_id())
        .bind::<SqlUuid, _>(viewer.user_id)
        .bind::<Bool, _>(viewer.sees_all)
        .bind::<Nullable<SqlUuid>, _>(id)
        .bind::<diesel::sql_types::BigInt, _>(LIST_LIMIT)
        .load(conn)
        .await?)
}

/// The dashboards `viewer` may see, by title (at most [`LIST_LIMIT`]).
pub async fn list_visible(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    viewer: Viewer,
) -> AppResult<Vec<DashboardRow>> {
    visible_rows(conn, tenant, viewer, None).await
}

/// One dashboard if `viewer` may see it.
pub async fn get_visible(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    viewer: Viewer,
    id: Uuid,
) -> AppResult<Option<DashboardRow>> {
    Ok(visible_rows(conn, tenant, viewer, Some(id)).await?.pop())
}

/// Replaces a dashboard's content and moves its version on by one.
pub async fn update(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    id: Uuid,
    content: &DashboardContent<'_>,
) -> AppResult<Option<DashboardRow>> {
    Ok(diesel::update(
        dashboards::table
            .filter(dashboards::organization_id.eq(tenant.org_id()))
            .filter(dashboards::id.eq(id)),
    )
    .set((
        dashboards::title.eq(content.title),
        dashboards::description.eq(content.description),
        dashboards::visibility.eq(content.visibility),
        dashboards::team_id.eq(content.team_id),
        dashboards::version.eq(dashboards::version + 1),
        dashboards::updated_at.eq(diesel::dsl::now),
    ))
    .returning(DashboardRow::as_returning())
    .get_result(conn)
    .await
    .optional()?)
}

/// Deletes a dashboard (its widgets and role defaults go with it); whether there was one.
pub async fn delete(conn: &mut AsyncPgConnection, tenant: &Tenant, id: Uuid) -> AppResult<bool> {
    let deleted = diesel::delete(
        dashboards::table
            .filter(dashboards::organization_id.eq(tenant.org_id()))
            .filter(dashboards::id.eq(id)),
    )
    .execute(conn)
    .await?;
    Ok(deleted > 0)
}

/// The default dashboard of `role` (its stored name, e.g. `SUPERVISOR`), if an ADMIN set one.
pub async fn default_for(conn: &mut AsyncPgConnection, tenant: &Tenant, role: &str) -> AppResult<Option<Uuid>> {
    Ok(dashboard_defaults::table
        .filter(dashboard_defaults::organization_id.eq(tenant.org_id()))
        .filter(dashboard_defaults::role.eq(role))
        .select(dashboard_defaults::dashboard_id)
        .first(conn)
        .await
        .optional()?)
}

/// Sets (or, with None, clears) the default dashboard of `role`.
pub async fn set_default(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    role: &str,
    dashboard_id: Option<Uuid>,
) -> AppResult<()> {
    match dashboard_id {
        Some(id) => {
            diesel::insert_into(dashboard_defaults::table)
                .values((
                    dashboard_defaults::organization_id.eq(tenant.org_id()),
                    dashboard_defaults::role.eq(role),
                    dashboard_defaults::dashboard_id.eq(id),
                ))
                .on_conflict((dashboard_defaults::organization_id, dashboard_defaults::role))
                .do_update()
                .set((
                    dashboard_defaults::dashboard_id.eq(id),
                    dashboard_defaults::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?;
        }
        None => {
            diesel::delete(
                dashboard_defaults::table
                    .filter(dashboard_defaults::organization_id.eq(tenant.org_id()))
                    .filter(dashboard_defaults::role.eq(role)),
            )
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

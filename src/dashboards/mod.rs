//! Dashboards (issue #17): saved, shareable layouts of KPI widgets whose values are pushed
//! live, so a frontend builds an analytics page from one query and one subscription.
//!
//! * [`saved`]: create, read, update (optimistic `expectedVersion`), duplicate, delete, and the
//!   default dashboard per role; every change audited in its transaction;
//! * [`widgets`]: the widget kinds, their validation against the metric registry and the
//!   direct queries' own checks, and the query each widget's value comes from;
//! * [`values`]: a widget's value, computed by the service function its direct query calls,
//!   once per distinct query, and masked for the viewer's role;
//! * [`follow`]: `dashboardUpdated` — every value first, then only the widgets that changed,
//!   from computations shared by every viewer of every dashboard on the instance (the
//!   `liveKpis` registry, [`crate::realtime::live`]).
//!
//! Who may do what (the choices of the issue):
//! * Visibility: PRIVATE — the owner; TEAM — the owner and the members and supervisors of the
//!   named team, or of the owner's teams (the team of their agent profile and the teams they
//!   supervise) when none is named; ORGANIZATION — everyone in the organization. ADMIN and above
//!   see every dashboard. A dashboard the caller may not see, or another organization's, is
//!   NOT_FOUND; one they see but may not change is FORBIDDEN.
//! * SUPERVISOR and above create dashboards of any visibility (a SUPERVISOR names only a team
//!   they belong to or supervise); an AGENT creates PRIVATE dashboards only, whose widgets are
//!   forced to their own agent id and may name no other agent nor any team; a VIEWER (wallboards,
//!   BI accounts) reads only. The owner or an ADMIN changes or deletes a dashboard.
//! * An ADMIN sets the default dashboard of each role (`setDefaultDashboard`); it must be an
//!   ORGANIZATION dashboard, so that everyone of that role may see it. `dashboard(id: null)`
//!   and `defaultDashboard` answer the caller's role default.
//! * Masking by role applies to every viewer, whoever owns the dashboard: see [`values`].

pub mod follow;
pub mod saved;
pub mod values;
pub mod widgets;

use uuid::Uuid;

use crate::auth::{Permission, Principal, Role};
use crate::db::dashboards::{DashboardRow, Viewer, WidgetRow};
use crate::error::{AppError, AppResult};

pub use saved::{Dashboard, DashboardInput, Widget};
pub use widgets::{WidgetInput, WidgetKind};

/// Who may see a dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum Visibility {
    /// The owner (and ADMINs).
    Private,
    /// The members and supervisors of the named team, or of the owner's teams.
    Team,
    /// Everyone in the organization.
    Organization,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Private => "PRIVATE",
            Visibility::Team => "TEAM",
            Visibility::Organization => "ORGANIZATION",
        }
    }

    pub fn from_stored(text: &str) -> AppResult<Self> {
        match text {
            "PRIVATE" => Ok(Visibility::Private),
            "TEAM" => Ok(Visibility::Team),
            "ORGANIZATION" => Ok(Visibility::Organization),
            other => Err(AppError::internal(format!("unknown stored visibility {other}"))),
        }
    }
}

pub fn not_found() -> AppError {
    AppError::NotFound("dashboard not found".into())
}

/// The caller as the visibility rule needs them.
pub fn viewer(principal: &Principal) -> Viewer {
    Viewer {
        user_id: principal.user_id,
        sees_all: principal.role.has(Permission::Administer),
    }
}

/// Whether `role` may create dashboards (AGENT: private ones only).
pub fn may_create(role: Role) -> bool {
    role >= Role::Agent
}

/// Whether the caller may change or delete a dashboard: its owner, or an ADMIN.
pub fn may_edit(caller: &Principal, owner_id: Uuid) -> bool {
    caller.role.has(Permission::Administer) || (may_create(caller.role) && owner_id == caller.user_id)
}

/// A dashboard row with its widget rows, read back.
pub(crate) fn assemble(row: DashboardRow, widgets: Vec<WidgetRow>) -> AppResult<Dashboard> {
    let widgets = widgets
        .into_iter()
        .map(|w| {
            Ok(Widget {
                id: w.id,
                position: w.position,
                title: w.title,
                kind: WidgetKind::from_stored(&w.kind)?,
                grid: widgets::Grid {
                    x: w.grid_x,
                    y: w.grid_y,
                    width: w.grid_width,
                    height: w.grid_height,
                },
                spec: serde_json::from_value(w.spec)
                    .map_err(|e| AppError::internal(format!("widget {}: stored spec unreadable: {e}", w.id)))?,
            })
        })
        .collect::<AppResult<Vec<_>>>()?;
    Ok(Dashboard {
        id: row.id,
        owner_id: row.owner_id,
        title: row.title,
        description: row.description,
        visibility: Visibility::from_stored(&row.visibility)?,
        team_id: row.team_id,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
        widgets,
    })
}

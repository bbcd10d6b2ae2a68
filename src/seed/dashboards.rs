//! The demo's dashboards: a supervisor's overview and a wall dashboard for the TVs, created
//! through the dashboards service (so they are validated and audited like any other) when
//! missing, and the wall made the VIEWER role's default.

use uuid::Uuid;

use crate::auth::{Principal, Role, Tenant};
use crate::dashboards::widgets::{FilterInput, Grid, TableInput, Thresholds, WidgetInput, WidgetKind};
use crate::dashboards::{saved, DashboardInput, Visibility};
use crate::db::contact_centre as cc;
use crate::db::dashboards::{self as rows, Viewer};
use crate::db::users;
use crate::domain::Direction;
use crate::error::AppResult;
use crate::kpi::analytics::Dimension;
use crate::kpi::time::Granularity;
use crate::reports::RelativeRange;
use crate::state::AppState;

pub const SUPERVISOR_DASHBOARD: &str = "Supervisor overview";
pub const WALL_DASHBOARD: &str = "Wall";

fn widget(title: &str, kind: WidgetKind, (x, y, width, height): (i32, i32, i32, i32)) -> WidgetInput {
    WidgetInput {
        title: title.to_owned(),
        kind,
        grid: Grid { x, y, width, height },
        filter: FilterInput::default(),
        range: None,
        metric: None,
        target: None,
        thresholds: None,
        granularity: None,
        table: None,
        report_id: None,
        campaign_id: None,
    }
}

fn tile(title: &str, metric: &str, at: (i32, i32), target: f64, warning: f64, critical: f64) -> WidgetInput {
    WidgetInput {
        metric: Some(metric.to_owned()),
        range: Some(RelativeRange::Today),
        target: Some(target),
        thresholds: Some(Thresholds { warning, critical }),
        ..widget(title, WidgetKind::KpiTile, (at.0, at.1, 6, 4))
    }
}

/// A count: no target, no colours.
fn count(title: &str, metric: &str, at: (i32, i32)) -> WidgetInput {
    WidgetInput {
        metric: Some(metric.to_owned()),
        range: Some(RelativeRange::Today),
        ..widget(title, WidgetKind::KpiTile, (at.0, at.1, 6, 4))
    }
}

fn series(title: &str, metric: &str, at: (i32, i32)) -> WidgetInput {
    WidgetInput {
        metric: Some(metric.to_owned()),
        range: Some(RelativeRange::Today),
        granularity: Some(Granularity::Hour),
        ..widget(title, WidgetKind::TimeSeries, (at.0, at.1, 24, 8))
    }
}

fn principal(user: &crate::db::models::UserRow) -> Principal {
    Principal {
        user_id: user.id,
        org_id: user.organization_id,
        role: user.role,
        email: user.email.clone(),
        display_name: user.display_name.clone(),
        token_expires_at: i64::MAX,
        api_key: None,
    }
}

/// Creates the demo's two dashboards when missing (by title) and makes the wall the VIEWER
/// default. `supervisor` and `admin` are the demo logins of those roles.
pub async fn ensure(state: &AppState, tenant: &Tenant, supervisor: Uuid, admin: Uuid) -> AppResult<()> {
    let mut conn = state.db.get(tenant).await?;
    let everyone = Viewer {
        user_id: admin,
        sees_all: true,
    };
    let existing: Vec<String> = rows::list_visible(&mut conn, tenant, everyone)
        .await?
        .into_iter()
        .map(|d| d.title)
        .collect();
    let outbound = cc::campaign_directory(&mut conn, tenant)
        .await?
        .into_iter()
        .find(|c| c.direction == Direction::Outbound.as_str())
        .map(|c| c.id);
    let supervisor = principal(&users::get(&mut conn, tenant, supervisor).await?);
    let admin = principal(&users::get(&mut conn, tenant, admin).await?);
    drop(conn);

    if !existing.iter().any(|t| t == SUPERVISOR_DASHBOARD) {
        let mut widgets = vec![
            tile("Service level", "SERVICE_LEVEL", (0, 0), 80.0, 80.0, 70.0),
            tile("Abandon rate", "ABANDON_RATE", (6, 0), 5.0, 5.0, 8.0),
            tile(
                "Average handle time",
                "AVERAGE_HANDLE_TIME",
                (12, 0),
                300.0,
                300.0,
                420.0,
            ),
            tile("Occupancy", "OCCUPANCY", (18, 0), 85.0, 90.0, 95.0),
            series("Offered per hour", "OFFERED", (0, 4)),
            WidgetInput {
                range: Some(RelativeRange::Today),
                table: Some(TableInput {
                    metrics: vec!["OFFERED".into(), "SERVICE_LEVEL".into(), "AVERAGE_HANDLE_TIME".into()],
                    group_by: vec![Dimension::Campaign],
                    ..TableInput::default()
                }),
                ..widget("Campaigns today", WidgetKind::Table, (24, 4, 24, 8))
            },
            widget("Agents", WidgetKind::AgentGrid, (0, 12, 48, 10)),
        ];
        if let Some(campaign) = outbound {
            widgets.push(WidgetInput {
                campaign_id: Some(campaign.to_string()),
                ..widget("Outbound drop rate", WidgetKind::ComplianceGauge, (24, 0, 12, 4))
            });
        }
        let input = DashboardInput {
            title: SUPERVISOR_DASHBOARD.to_owned(),
            description: Some("Today's service, campaigns, agents and outbound compliance.".into()),
            visibility: Visibility::Team,
            team_id: None,
            widgets,
        };
        saved::create(state, &supervisor, input, None).await?;
    }
    let wall = if existing.iter().any(|t| t == WALL_DASHBOARD) {
        None
    } else {
        let input = DashboardInput {
            title: WALL_DASHBOARD.to_owned(),
            description: Some("For the TVs on the floor.".into()),
            visibility: Visibility::Organization,
            team_id: None,
            widgets: vec![
                tile("Service level", "SERVICE_LEVEL", (0, 0), 80.0, 80.0, 70.0),
                count("Offered", "OFFERED", (6, 0)),
                count("Abandoned", "ABANDONED", (12, 0)),
                tile("Longest wait", "LONGEST_WAIT", (18, 0), 60.0, 60.0, 120.0),
                series("Service level per hour", "SERVICE_LEVEL", (0, 4)),
                widget("Agents", WidgetKind::AgentGrid, (24, 4, 24, 8)),
            ],
        };
        Some(saved::create(state, &admin, input, None).await?)
    };
    if let Some(wall) = wall {
        saved::set_default(state, &admin, Role::Viewer, Some(wall.id), None).await?;
    }
    Ok(())
}

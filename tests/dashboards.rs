//! Dashboards: CRUD with optimistic versions and audit, visibility per role and team, tenant
//! isolation, widget validation naming the widget, values equal to the direct queries, the
//! statement count of a dashboard's values, and `dashboardUpdated` (snapshot, then only the
//! widgets that changed) — against real PostgreSQL and Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;
mod ingest_support;

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::TestApp;
use diesel_async::RunQueryDsl;
use ingest_support::{ev, fixture, record, with};
use omnivox::auth::Role;
use omnivox::db;
use serde_json::{json, Value};
use uuid::Uuid;

const CREATE: &str = "mutation($i: DashboardInput!) { createDashboard(input: $i) {
    id version visibility ownerId widgets { id position title kind metric range filter { agentIds teamIds } } } }";

const UPDATE: &str = "mutation($id: ID!, $v: Int!, $i: DashboardInput!) {
    updateDashboard(id: $id, expectedVersion: $v, input: $i) { id version title widgets { title } } }";

const GET: &str = "query($id: ID) { dashboard(id: $id) { id title version visibility
    widgets { id position title kind value valueUnavailable } } }";

const UPDATED: &str = "subscription($id: ID) { dashboardUpdated(id: $id) {
    kind dashboardId widgets { widgetId position value valueUnavailable } } }";

fn tile(title: &str, metric: &str, filter: Value) -> Value {
    json!({ "title": title, "kind": "KPI_TILE", "grid": { "x": 0, "y": 0, "width": 4, "height": 2 },
            "metric": metric, "filter": filter, "range": "TODAY",
            "target": 80.0, "thresholds": { "warning": 80.0, "critical": 70.0 } })
}

fn grid_cell() -> Value {
    json!({ "x": 0, "y": 0, "width": 4, "height": 2 })
}

fn dashboard(title: &str, visibility: &str, widgets: Vec<Value>) -> Value {
    json!({ "title": title, "visibility": visibility, "widgets": widgets })
}

async fn create(app: &TestApp, token: &str, input: Value) -> common::GqlResponse {
    app.gql(Some(token), CREATE, json!({ "i": input })).await
}

async fn create_ok(app: &TestApp, token: &str, input: Value) -> Value {
    create(app, token, input).await.ok()["createDashboard"].clone()
}

async fn get(app: &TestApp, token: &str, id: Option<&str>) -> common::GqlResponse {
    app.gql(Some(token), GET, json!({ "id": id })).await
}

async fn supervise(app: &TestApp, admin: &str, team: Uuid, user: Uuid) {
    app.gql(
        Some(admin),
        "mutation($t: ID!, $u: [ID!]!) { setTeamSupervisors(teamId: $t, userIds: $u) { id } }",
        json!({ "t": team, "u": [user] }),
    )
    .await
    .ok();
}

#[derive(diesel::QueryableByName)]
struct Action {
    #[diesel(sql_type = diesel::sql_types::Text)]
    action: String,
}

async fn audit_actions(app: &TestApp, org: Uuid) -> Vec<String> {
    let mut conn = app.state.system_db.get().await.unwrap();
    let rows: Vec<Action> = diesel::sql_query(
        "SELECT action FROM audit_log WHERE organization_id = $1 AND action LIKE 'dashboard.%' ORDER BY id",
    )
    .bind::<diesel::sql_types::Uuid, _>(org)
    .load(&mut conn)
    .await
    .unwrap();
    rows.into_iter().map(|r| r.action).collect()
}

/// A call of `campaign` offered twenty seconds ago and abandoned ten seconds later: one more
/// offered (and abandoned) call of today.
fn abandoned_now(call: &str, campaign: Uuid, direction: &str) -> Vec<Value> {
    let now = Utc::now();
    let offered = with(
        ev(call, "OFFERED", now - TimeDelta::seconds(20)),
        "direction",
        direction,
    );
    vec![
        with(offered, "campaignId", campaign.to_string()),
        ev(call, "ENDED", now - TimeDelta::seconds(10)),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboards_are_created_updated_copied_and_deleted_with_versions_and_audit() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, "dash-crud").await;
    let supervisor = app.token(&f.org, Role::Supervisor).await;
    let created = create_ok(
        &app,
        &supervisor,
        dashboard(
            "Floor",
            "ORGANIZATION",
            vec![
                tile("Service level", "SERVICE_LEVEL", json!({})),
                tile("Offered", "OFFERED", json!({ "campaignIds": [f.inbound] })),
            ],
        ),
    )
    .await;
    assert_eq!(created["version"], 1);
    assert_eq!(created["ownerId"], f.org.user(Role::Supervisor).id.to_string());
    assert_eq!(created["widgets"][1]["position"], 1);
    assert_eq!(created["widgets"][1]["metric"], "OFFERED");
    let id = created["id"].as_str().unwrap().to_owned();

    let input = dashboard("Floor v2", "ORGANIZATION", vec![tile("Only", "ANSWERED", json!({}))]);
    let updated = app
        .gql(Some(&supervisor), UPDATE, json!({ "id": id, "v": 1, "i": input }))
        .await;
    assert_eq!(updated.ok()["updateDashboard"]["version"], 2);
    assert_eq!(updated.ok()["updateDashboard"]["widgets"].as_array().unwrap().len(), 1);
    // A second writer who read version 1 is told to read again.
    let stale = app
        .gql(Some(&supervisor), UPDATE, json!({ "id": id, "v": 1, "i": input }))
        .await;
    assert_eq!(stale.error_code(), Some("CONFLICT"), "{}", stale.body);

    let admin = &f.admin;
    let copy = app
        .gql(
            Some(admin),
            "mutation($id: ID!) { duplicateDashboard(id: $id) { id title visibility ownerId widgets { title } } }",
            json!({ "id": id }),
        )
        .await;
    let copy = copy.ok()["duplicateDashboard"].clone();
    assert_eq!(copy["title"], "Floor v2 (copy)");
    assert_eq!(copy["visibility"], "PRIVATE");
    assert_eq!(copy["ownerId"], f.org.user(Role::Admin).id.to_string());
    assert_eq!(copy["widgets"][0]["title"], "Only");

    let deleted = app
        .gql(
            Some(&supervisor),
            "mutation($id: ID!) { deleteDashboard(id: $id) }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(deleted.ok()["deleteDashboard"], id);
    assert_eq!(get(&app, &supervisor, Some(&id)).await.error_code(), Some("NOT_FOUND"));

    assert_eq!(
        audit_actions(&app, f.org.id).await,
        [
            "dashboard.create",
            "dashboard.update",
            "dashboard.create",
            "dashboard.delete"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn visibility_follows_roles_and_teams() {
    let app = TestApp::spawn().await;
    let org = common::fixture::FixtureOrg::builder("dash-vis")
        .teams(["North", "South"])
        .agent(common::fixture::AgentSpec::new("Ada").team(0).user(Role::Agent))
        .agent(common::fixture::AgentSpec::new("Ben").team(1))
        .build(&app.state)
        .await;
    let admin = app.token(&org, Role::Admin).await;
    let supervisor = app.token(&org, Role::Supervisor).await;
    let agent = app.token(&org, Role::Agent).await;
    let viewer = app.token(&org, Role::Viewer).await;
    supervise(&app, &admin, org.teams[0], org.user(Role::Supervisor).id).await;

    let private = create_ok(&app, &supervisor, dashboard("Mine", "PRIVATE", vec![])).await;
    let team = create_ok(&app, &supervisor, dashboard("North floor", "TEAM", vec![])).await;
    let whole = create_ok(&app, &supervisor, dashboard("Wall", "ORGANIZATION", vec![])).await;
    let mut south = dashboard("South floor", "TEAM", vec![]);
    south["teamId"] = json!(org.teams[1]);
    // A supervisor shares only with a team of theirs; an ADMIN with any.
    assert_eq!(
        create(&app, &supervisor, south.clone()).await.error_code(),
        Some("BAD_USER_INPUT")
    );
    let south = create_ok(&app, &admin, south).await;

    let seen = |token: String| {
        let app = &app;
        async move {
            let response = app.gql(Some(&token), "{ dashboards { title } }", json!({})).await;
            let mut titles: Vec<String> = response.ok()["dashboards"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["title"].as_str().unwrap().to_owned())
                .collect();
            titles.sort();
            titles
        }
    };
    assert_eq!(
        seen(admin.clone()).await,
        ["Mine", "North floor", "South floor", "Wall"]
    );
    assert_eq!(seen(supervisor.clone()).await, ["Mine", "North floor", "Wall"]);
    // Ada is a member of North: she sees North's dashboard, not South's.
    assert_eq!(seen(agent.clone()).await, ["North floor", "Wall"]);
    assert_eq!(seen(viewer.clone()).await, ["Wall"]);
    for (token, id) in [
        (&viewer, &private["id"]),
        (&agent, &south["id"]),
        (&viewer, &team["id"]),
    ] {
        let response = get(&app, token, id.as_str()).await;
        assert_eq!(response.error_code(), Some("NOT_FOUND"), "{}", response.body);
    }
    // Seen but not theirs to change.
    let input = dashboard("Taken", "ORGANIZATION", vec![]);
    let response = app
        .gql(Some(&agent), UPDATE, json!({ "id": whole["id"], "v": 1, "i": input }))
        .await;
    assert_eq!(response.error_code(), Some("FORBIDDEN"), "{}", response.body);

    // An AGENT: private dashboards of their own numbers only.
    let shared = create(&app, &agent, dashboard("Mine too", "ORGANIZATION", vec![])).await;
    assert_eq!(shared.error_code(), Some("FORBIDDEN"), "{}", shared.body);
    let teams = create(
        &app,
        &agent,
        dashboard(
            "Peek",
            "PRIVATE",
            vec![tile("North", "OFFERED", json!({ "teamIds": [org.teams[0]] }))],
        ),
    )
    .await;
    assert_eq!(teams.error_code(), Some("BAD_USER_INPUT"), "{}", teams.body);
    let other = create(
        &app,
        &agent,
        dashboard(
            "Peek",
            "PRIVATE",
            vec![tile("Ben", "OFFERED", json!({ "agentIds": [org.agents[1]] }))],
        ),
    )
    .await;
    assert_eq!(other.error_code(), Some("BAD_USER_INPUT"), "{}", other.body);
    let own = create_ok(
        &app,
        &agent,
        dashboard("Me", "PRIVATE", vec![tile("My calls", "HANDLED", json!({}))]),
    )
    .await;
    assert_eq!(own["widgets"][0]["filter"]["agentIds"], json!([org.agents[0]]));

    // Role defaults: an ADMIN picks an ORGANIZATION dashboard per role.
    let set = "mutation($r: Role!, $id: ID) { setDefaultDashboard(role: $r, id: $id) { id } }";
    let refused = app
        .gql(Some(&admin), set, json!({ "r": "VIEWER", "id": private["id"] }))
        .await;
    assert_eq!(refused.error_code(), Some("BAD_USER_INPUT"), "{}", refused.body);
    assert_eq!(get(&app, &viewer, None).await.error_code(), Some("NOT_FOUND"));
    app.gql(Some(&admin), set, json!({ "r": "VIEWER", "id": whole["id"] }))
        .await
        .ok();
    assert_eq!(get(&app, &viewer, None).await.ok()["dashboard"]["id"], whole["id"]);
    let default = app
        .gql(Some(&viewer), "{ defaultDashboard { title } }", json!({}))
        .await;
    assert_eq!(default.ok()["defaultDashboard"]["title"], "Wall");
    let none = app.gql(Some(&agent), "{ defaultDashboard { title } }", json!({})).await;
    assert!(none.ok()["defaultDashboard"].is_null());
}

#[tokio::test(flavor = "multi_thread")]
async fn another_organizations_dashboards_and_ids_are_unknown() {
    let app = TestApp::spawn().await;
    let mine = fixture(&app, "dash-mine").await;
    let theirs = fixture(&app, "dash-theirs").await;
    let created = create_ok(&app, &theirs.admin, dashboard("Theirs", "ORGANIZATION", vec![])).await;
    let id = created["id"].as_str().unwrap();
    for response in [
        get(&app, &mine.admin, Some(id)).await,
        app.gql(
            Some(&mine.admin),
            "mutation($id: ID!) { deleteDashboard(id: $id) }",
            json!({ "id": id }),
        )
        .await,
        app.gql(
            Some(&mine.admin),
            "mutation($id: ID!) { duplicateDashboard(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await,
    ] {
        assert_eq!(response.error_code(), Some("NOT_FOUND"), "{}", response.body);
    }
    // Their campaign is no campaign of ours.
    let widget = tile("Theirs", "OFFERED", json!({ "campaignIds": [theirs.inbound] }));
    let refused = create(&app, &mine.admin, dashboard("Peek", "PRIVATE", vec![widget])).await;
    assert_eq!(refused.error_code(), Some("BAD_USER_INPUT"));
    assert!(refused.body.to_string().contains("unknown id"), "{}", refused.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn widget_problems_name_the_widget_by_index_and_title() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, "dash-valid").await;
    let fine = tile("Fine", "OFFERED", json!({}));
    let widgets = vec![
        fine.clone(),
        fine.clone(),
        fine.clone(),
        tile("Drop rate", "foo", json!({})),
        json!({ "title": "Too fine", "kind": "TIME_SERIES", "grid": { "x": 0, "y": 0, "width": 4, "height": 2 },
                "metric": "OFFERED", "granularity": "FIFTEEN_MINUTES", "range": "LAST_30_DAYS" }),
        json!({ "title": "Occupancy by campaign", "kind": "TABLE", "grid": { "x": 0, "y": 0, "width": 4, "height": 2 },
                "table": { "metrics": ["OCCUPANCY"], "groupBy": ["CAMPAIGN"] } }),
        json!({ "title": "Inbound gauge", "kind": "COMPLIANCE_GAUGE", "grid": { "x": 0, "y": 0, "width": 4, "height": 2 },
                "campaignId": f.inbound }),
    ];
    let response = create(&app, &f.admin, dashboard("Bad", "PRIVATE", widgets)).await;
    assert_eq!(response.error_code(), Some("BAD_USER_INPUT"), "{}", response.body);
    let message = response.error_message().unwrap();
    assert!(
        message.contains("widget 3 (\"Drop rate\"): unknown metric foo"),
        "{message}"
    );
    assert!(message.contains("widget 4 (\"Too fine\")"), "{message}");
    assert!(message.contains("widget 5 (\"Occupancy by campaign\")"), "{message}");
    assert!(message.contains("widget 6 (\"Inbound gauge\")"), "{message}");
    assert!(!message.contains("widget 0"), "{message}");

    let many = vec![fine; 25];
    let response = create(&app, &f.admin, dashboard("Many", "PRIVATE", many)).await;
    assert_eq!(response.error_code(), Some("BAD_USER_INPUT"));
    assert!(
        response.body.to_string().contains("at most 24 widgets"),
        "{}",
        response.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn widget_values_equal_the_direct_queries() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, "dash-values").await;
    for (i, campaign, direction) in [
        (1, f.inbound, "INBOUND"),
        (2, f.inbound, "INBOUND"),
        (3, f.outbound, "OUTBOUND"),
    ] {
        record(&app, &f.admin, &abandoned_now(&format!("CA-v{i}"), campaign, direction))
            .await
            .ok();
    }
    let grid = json!({ "x": 0, "y": 0, "width": 4, "height": 2 });
    let widgets = vec![
        tile("Offered", "OFFERED", json!({ "campaignIds": [f.inbound] })),
        json!({ "title": "Per hour", "kind": "TIME_SERIES", "grid": grid, "metric": "OFFERED",
                "granularity": "HOUR", "range": "TODAY" }),
        json!({ "title": "Per campaign", "kind": "TABLE", "grid": grid, "range": "TODAY",
                "table": { "metrics": ["OFFERED", "ABANDON_RATE"], "groupBy": ["CAMPAIGN"] } }),
        json!({ "title": "Sales drops", "kind": "COMPLIANCE_GAUGE", "grid": grid, "campaignId": f.outbound }),
        json!({ "title": "Agents", "kind": "AGENT_GRID", "grid": grid }),
    ];
    let created = create_ok(&app, &f.admin, dashboard("Values", "ORGANIZATION", widgets)).await;
    let id = created["id"].as_str().unwrap();
    let values = get(&app, &f.admin, Some(id)).await.ok()["dashboard"]["widgets"].clone();
    let value = |i: usize| values[i]["value"].clone();

    let from = value(0)["from"].as_str().unwrap().to_owned();
    let to = Utc::now().to_rfc3339();
    let direct = app
        .gql(
            Some(&f.admin),
            "query($f: KpiFilter!, $g: KpiFilter!) { kpiSummary(filter: $f) { offered }
               kpiSeries(filter: $g, granularity: HOUR) { buckets { start offered } }
               analytics(query: { metrics: [OFFERED, ABANDON_RATE], groupBy: [CAMPAIGN], filter: $g }) {
                 rows { dimensions { campaign { id } } values } }
               complianceStatus(campaignIds: [$c]) { status uk { rate drops liveCalls } us { rate drops } } }"
                .replace("[$c]", &format!("[\"{}\"]", f.outbound))
                .as_str(),
            json!({ "f": { "from": from, "to": to, "campaignIds": [f.inbound] }, "g": { "from": from, "to": to } }),
        )
        .await;
    let direct = direct.ok().clone();
    assert_eq!(value(0)["value"].as_f64(), Some(2.0));
    assert_eq!(value(0)["value"].as_f64(), direct["kpiSummary"]["offered"].as_f64());
    assert_eq!(value(0)["status"], "RED", "2 against thresholds 80/70 (lower is worse)");

    let points = value(1)["points"].as_array().unwrap().clone();
    let buckets = direct["kpiSeries"]["buckets"].as_array().unwrap().clone();
    assert_eq!(points.len(), buckets.len());
    for (point, bucket) in points.iter().zip(&buckets) {
        assert_eq!(point["value"].as_f64(), bucket["offered"].as_f64());
    }
    assert!(points.iter().filter_map(|p| p["value"].as_f64()).sum::<f64>() >= 2.0);

    let rows = value(2)["rows"].as_array().unwrap().clone();
    let direct_rows = direct["analytics"]["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), direct_rows.len());
    for (row, direct_row) in rows.iter().zip(&direct_rows) {
        assert_eq!(
            row["dimensions"]["campaign"]["id"],
            direct_row["dimensions"]["campaign"]["id"]
        );
        assert_eq!(row["values"], direct_row["values"]);
    }

    let status = &direct["complianceStatus"][0];
    assert_eq!(value(3)["status"], status["status"]);
    assert_eq!(value(3)["uk"]["rate"], status["uk"]["rate"]);
    assert_eq!(value(3)["uk"]["drops"], status["uk"]["drops"]);
    assert_eq!(value(3)["uk"]["liveCalls"], status["uk"]["liveCalls"]);
    assert_eq!(value(3)["us"]["rate"], status["us"]["rate"]);

    let agents = value(4)["agents"].as_array().unwrap().clone();
    let names: Vec<&str> = agents.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Ada", "Ben", "Cleo"]);
    let mut states = app
        .subscribe(
            &f.admin,
            "subscription { agentStates { agents { id name presence routingState } } }",
            json!({}),
        )
        .await;
    let board = states.expect_data("agentStates").await["agents"].clone();
    let board: Vec<(Value, Value, Value, Value)> = board
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["id"].clone(),
                a["name"].clone(),
                a["presence"].clone(),
                a["routingState"].clone(),
            )
        })
        .collect();
    let grid: Vec<(Value, Value, Value, Value)> = agents
        .iter()
        .map(|a| {
            (
                a["id"].clone(),
                a["name"].clone(),
                a["presence"].clone(),
                a["routingState"].clone(),
            )
        })
        .collect();
    assert_eq!(grid, board, "the agent grid is agentStates' snapshot");

    // A table showing a saved report shows the report's result.
    let report = app
        .gql(
            Some(&f.admin),
            "mutation { createReport(input: { title: \"Per campaign\", shared: true,
               query: { metrics: [OFFERED, ABANDONED], groupBy: [CAMPAIGN] }, range: { relative: TODAY } }) { id } }",
            json!({}),
        )
        .await;
    let report_id = report.ok()["createReport"]["id"].clone();
    let widget = json!({ "title": "Report", "kind": "TABLE", "grid": grid_cell(), "reportId": report_id });
    let shown = create_ok(&app, &f.admin, dashboard("Report", "ORGANIZATION", vec![widget])).await;
    let shown = get(&app, &f.admin, shown["id"].as_str()).await.ok()["dashboard"]["widgets"][0]["value"].clone();
    let result = app
        .gql(
            Some(&f.admin),
            "query($id: ID!) { report(id: $id) { result { rows { dimensions { campaign { id } } values } } } }",
            json!({ "id": report_id }),
        )
        .await;
    let result = result.ok()["report"]["result"]["rows"].as_array().unwrap().clone();
    let rows = shown["rows"].as_array().unwrap();
    assert_eq!(rows.len(), result.len());
    for (row, direct) in rows.iter().zip(&result) {
        assert_eq!(
            row["dimensions"]["campaign"]["id"],
            direct["dimensions"]["campaign"]["id"]
        );
        assert_eq!(row["values"], direct["values"]);
    }

    // Masking by role: a VIEWER sees the tiles, not the figures of analytics or compliance.
    let viewer = app.token(&f.org, Role::Viewer).await;
    let seen = get(&app, &viewer, Some(id)).await.ok()["dashboard"]["widgets"].clone();
    assert_eq!(seen[0]["value"], value(0));
    for hidden in [2, 3] {
        assert!(seen[hidden]["value"].is_null(), "{}", seen[hidden]);
        assert!(seen[hidden]["valueUnavailable"]
            .as_str()
            .unwrap()
            .contains("SUPERVISOR"));
    }
}

/// The N+1 guard: a dashboard's values cost statements per distinct query, not per widget.
/// Twelve tiles of one filter and range (twelve metrics) cost what one tile costs.
#[tokio::test(flavor = "multi_thread")]
async fn values_cost_the_same_statements_whatever_the_number_of_widgets_of_one_query() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, "dash-nplus1").await;
    let metrics = [
        "OFFERED",
        "ANSWERED",
        "HANDLED",
        "ABANDONED",
        "SHORT_ABANDONED",
        "SERVICE_LEVEL",
        "AVERAGE_SPEED_OF_ANSWER",
        "AVERAGE_HANDLE_TIME",
        "ABANDON_RATE",
        "LONGEST_WAIT",
        "CONTACT_RATE",
        "CONVERSION_RATE",
    ];
    let one = create_ok(
        &app,
        &f.admin,
        dashboard("One", "PRIVATE", vec![tile("t", "OFFERED", json!({}))]),
    )
    .await;
    let twelve: Vec<Value> = metrics.iter().map(|m| tile(m, m, json!({}))).collect();
    let twelve = create_ok(&app, &f.admin, dashboard("Twelve", "PRIVATE", twelve)).await;
    let url = app.database.url.clone();
    let mut cost = Vec::new();
    for id in [&one["id"], &twelve["id"], &one["id"], &twelve["id"]] {
        let before = db::statements::executed(&url);
        let response = get(&app, &f.admin, id.as_str()).await;
        let after = db::statements::executed(&url);
        let widgets = response.ok()["dashboard"]["widgets"].as_array().unwrap().clone();
        assert!(widgets.iter().all(|w| w["value"].is_object()), "{widgets:?}");
        cost.push(after - before);
    }
    println!(
        "statements: 1 tile {} / {}, 12 tiles {} / {}",
        cost[0], cost[2], cost[1], cost[3]
    );
    // The report worker's polling may add a statement to a measurement; the bound allows it.
    let (one, twelve) = (cost[0].min(cost[2]), cost[1].min(cost[3]));
    assert!(twelve <= one + 1, "12 tiles cost {twelve} statements, 1 tile {one}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_updated_sends_every_value_then_only_the_widgets_that_changed() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, "dash-live").await;
    let supervisor = app.token(&f.org, Role::Supervisor).await;
    let widgets = vec![
        tile("Care offered", "OFFERED", json!({ "campaignIds": [f.inbound] })),
        tile("Sales offered", "OFFERED", json!({ "campaignIds": [f.outbound] })),
        tile("Care answered", "ANSWERED", json!({ "campaignIds": [f.inbound] })),
    ];
    let created = create_ok(&app, &supervisor, dashboard("Live", "ORGANIZATION", widgets)).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let viewer = app.token(&f.org, Role::Viewer).await;
    let mut one = app.subscribe(&viewer, UPDATED, json!({ "id": id })).await;
    let mut two = app.subscribe(&supervisor, UPDATED, json!({ "id": id })).await;
    for ws in [&mut one, &mut two] {
        let snapshot = ws.expect_data("dashboardUpdated").await;
        assert_eq!(snapshot["kind"], "SNAPSHOT");
        assert_eq!(snapshot["widgets"].as_array().unwrap().len(), 3);
        assert_eq!(snapshot["widgets"][0]["value"]["value"].as_f64(), Some(0.0));
    }
    // Two viewers of one dashboard: one computation per distinct query (Care, Sales).
    assert_eq!(app.state.widgets.len(), 2);

    record(&app, &f.admin, &abandoned_now("CA-live-1", f.inbound, "INBOUND"))
        .await
        .ok();
    for ws in [&mut one, &mut two] {
        let delta = ws.expect_data("dashboardUpdated").await;
        assert_eq!(delta["kind"], "DELTA");
        // Care's offered moved; Care's answered (same query, other metric) and Sales did not.
        let widgets = delta["widgets"].as_array().unwrap();
        assert_eq!(widgets.len(), 1, "{delta}");
        assert_eq!(widgets[0]["position"], 0);
        assert_eq!(widgets[0]["value"]["value"].as_f64(), Some(1.0));
    }
    // Nothing more to say: the Sales tile's campaign saw no call.
    assert!(one
        .next_data("dashboardUpdated", Duration::from_secs(2))
        .await
        .is_none());

    // A new layout: a new snapshot, of the new widgets.
    let widget = tile("Sales answered", "ANSWERED", json!({ "campaignIds": [f.outbound] }));
    let input = dashboard("Live v2", "ORGANIZATION", vec![widget]);
    app.gql(Some(&supervisor), UPDATE, json!({ "id": id, "v": 1, "i": input }))
        .await
        .ok();
    let snapshot = one
        .until("dashboardUpdated", Duration::from_secs(10), |m| m["kind"] == "SNAPSHOT")
        .await;
    assert_eq!(snapshot["widgets"].as_array().unwrap().len(), 1, "{snapshot}");
    assert_eq!(snapshot["widgets"][0]["value"]["metric"], "ANSWERED");
    // Deleted: the stream ends.
    app.gql(
        Some(&supervisor),
        "mutation($id: ID!) { deleteDashboard(id: $id) }",
        json!({ "id": id }),
    )
    .await
    .ok();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match one.next(left).await {
            common::ws::WsEvent::Json(message) if message["type"] == "complete" => break,
            common::ws::WsEvent::Json(message) => assert_ne!(message["type"], "error", "{message}"),
            other => panic!("no complete after the deletion: {other:?}"),
        }
    }
}

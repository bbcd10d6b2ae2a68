//! Saved reports end to end, over HTTP against a real PostgreSQL: create/read/update
//! (optimistic)/duplicate/delete with their audit records; who sees and changes what (roles,
//! sharing, tenants); definitions refused by the analytics engine's own validation, naming the
//! field; templates. Results and exports are in tests/report_exports.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;
mod reports_support;

use reports_support::*;

use common::fixture::{CampaignSpec, FixtureOrg};
use common::TestApp;
use omnivox::auth::Role;
use serde_json::{json, Value};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread")]
async fn reports_are_created_read_updated_duplicated_and_deleted_with_their_audit() {
    let app = TestApp::spawn().await;
    let org = app.create_org("repcrud").await;
    let supervisor = org.token(&app.state, Role::Supervisor).await;

    let mut first = agents_yesterday();
    first["description"] = json!("  Who handled what  ");
    first["presentation"] = json!({
        "columns": [ { "dimension": "AGENT", "label": "Agent name" }, { "metric": "HANDLED" } ],
        "totals": true,
        "chart": { "kind": "BAR", "series": ["HANDLED"] }
    });
    let id = created_id(&app, &supervisor, first.clone()).await;
    let read = app
        .gql(
            Some(&supervisor),
            &format!("query($id: ID!) {{ report(id: $id) {{ {REPORT_FIELDS} }} }}"),
            json!({ "id": id }),
        )
        .await;
    let report = &read.ok()["report"];
    assert_eq!(report["version"], 1);
    assert_eq!(report["description"], "Who handled what", "trimmed");
    assert_eq!(report["shared"], false);
    assert_eq!(report["canEdit"], true);
    assert_eq!(report["ownerId"], json!(org.user(Role::Supervisor).id.to_string()));
    assert_eq!(report["query"]["metrics"], json!(["HANDLED", "SERVICE_LEVEL"]));
    assert_eq!(
        report["range"],
        json!({ "relative": "YESTERDAY", "from": null, "to": null })
    );
    assert_eq!(
        report["presentation"]["columns"],
        json!([
            { "metric": null, "dimension": "AGENT", "bucket": null, "key": "AGENT", "label": "Agent name" },
            { "metric": "HANDLED", "dimension": null, "bucket": null, "key": "HANDLED", "label": "Handled" },
        ])
    );
    assert_eq!(
        report["presentation"]["chart"],
        json!({ "kind": "BAR", "series": ["HANDLED"] })
    );
    let listed = app.gql(Some(&supervisor), LIST, json!({})).await;
    assert_eq!(ids(&listed), std::slice::from_ref(&id));

    // Optimistic update: the version read moves on; a stale one is CONFLICT and changes nothing.
    let mut second = first.clone();
    second["title"] = json!("Agents, absolute");
    second["shared"] = json!(true);
    second["range"] = json!({ "from": "2026-01-05T00:00:00Z", "to": "2026-01-07T00:00:00Z" });
    let updated = app
        .gql(Some(&supervisor), UPDATE, json!({ "id": id, "v": 1, "i": second }))
        .await;
    assert_eq!(updated.ok()["updateReport"]["version"], 2);
    assert_eq!(updated.ok()["updateReport"]["shared"], true);
    let stale = app
        .gql(Some(&supervisor), UPDATE, json!({ "id": id, "v": 1, "i": first }))
        .await;
    assert_eq!(stale.error_code(), Some("CONFLICT"), "{}", stale.body);
    let after = app.gql(Some(&supervisor), GET, json!({ "id": id })).await;
    assert_eq!(after.ok()["report"]["title"], "Agents, absolute");
    assert_eq!(after.ok()["report"]["version"], 2);

    // A copy is the caller's, private, at version 1.
    let copy = app.gql(Some(&supervisor), DUPLICATE, json!({ "id": id })).await;
    let copy = &copy.ok()["duplicateReport"];
    assert_eq!(copy["title"], "Agents, absolute (copy)");
    assert_eq!(
        (copy["shared"].clone(), copy["version"].clone()),
        (json!(false), json!(1))
    );
    let copy_id = copy["id"].as_str().unwrap().to_owned();

    let deleted = app.gql(Some(&supervisor), DELETE, json!({ "id": id })).await;
    assert_eq!(deleted.ok()["deleteReport"], json!(id));
    let gone = app.gql(Some(&supervisor), GET, json!({ "id": id })).await;
    assert_eq!(gone.error_code(), Some("NOT_FOUND"));
    let listed = app.gql(Some(&supervisor), LIST, json!({})).await;
    assert_eq!(ids(&listed), [copy_id]);

    let audit = report_audit(&app).await;
    let actions: Vec<&str> = audit.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(
        actions,
        ["report.create", "report.update", "report.create", "report.delete"]
    );
    assert!(audit[0].details.contains("\"kind\": \"new\"") || audit[0].details.contains("\"kind\":\"new\""));
    assert!(audit[1].details.contains("\"fromVersion\": 1") || audit[1].details.contains("\"fromVersion\":1"));
    assert!(audit[2].details.contains(&id), "the copy names its original");
}

#[tokio::test(flavor = "multi_thread")]
async fn who_sees_and_changes_which_report() {
    let app = TestApp::spawn().await;
    let org = app.create_org("repaccess").await;
    let other = app.create_org("repforeign").await;
    let admin = org.token(&app.state, Role::Admin).await;
    let supervisor = org.token(&app.state, Role::Supervisor).await;
    let viewer = org.token(&app.state, Role::Viewer).await;
    let agent = org.token(&app.state, Role::Agent).await;
    let foreign = other.token(&app.state, Role::Admin).await;
    // A second supervisor.
    app.gql(
        Some(&admin),
        "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }",
        json!({ "i": { "email": "sam@repaccess.test", "displayName": "Sam", "role": "SUPERVISOR", "password": common::TEST_PASSWORD } }),
    )
    .await
    .ok();
    let colleague = app.login("sam@repaccess.test").await.0;

    let private = created_id(&app, &supervisor, agents_yesterday()).await;
    let mut shared_input = agents_yesterday();
    shared_input["title"] = json!("Shared agents");
    shared_input["shared"] = json!(true);
    let shared = created_id(&app, &supervisor, shared_input.clone()).await;

    // Listings.
    let all = vec![private.clone(), shared.clone()]; // by title: "Agents…" < "Shared…"
    assert_eq!(ids(&app.gql(Some(&supervisor), LIST, json!({})).await), all);
    assert_eq!(ids(&app.gql(Some(&admin), LIST, json!({})).await), all);
    assert_eq!(
        ids(&app.gql(Some(&colleague), LIST, json!({})).await),
        std::slice::from_ref(&shared)
    );
    assert_eq!(
        ids(&app.gql(Some(&viewer), LIST, json!({})).await),
        std::slice::from_ref(&shared)
    );
    assert!(ids(&app.gql(Some(&foreign), LIST, json!({})).await).is_empty());

    // AGENT reads nothing; VIEWER reads shared reports and their results, changes nothing.
    for query in [LIST, "{ reportTemplates { key } }"] {
        assert_eq!(
            app.gql(Some(&agent), query, json!({})).await.error_code(),
            Some("FORBIDDEN")
        );
    }
    assert_eq!(
        app.gql(Some(&agent), GET, json!({ "id": shared })).await.error_code(),
        Some("FORBIDDEN")
    );
    let viewed = app
        .gql(
            Some(&viewer),
            "query($id: ID!) { report(id: $id) { title canEdit result { totalRows } } }",
            json!({ "id": shared }),
        )
        .await;
    assert_eq!(viewed.ok()["report"]["canEdit"], false);
    assert_eq!(viewed.ok()["report"]["result"]["totalRows"], 0);
    assert_eq!(
        create(&app, &viewer, agents_yesterday()).await.error_code(),
        Some("FORBIDDEN")
    );

    // Unseen (private, foreign) is NOT_FOUND; seen but not theirs is FORBIDDEN.
    for (token, id) in [
        (&viewer, &private),
        (&colleague, &private),
        (&foreign, &private),
        (&foreign, &shared),
    ] {
        assert_eq!(
            app.gql(Some(token.as_str()), GET, json!({ "id": id }))
                .await
                .error_code(),
            Some("NOT_FOUND")
        );
        let update = app
            .gql(
                Some(token.as_str()),
                UPDATE,
                json!({ "id": id, "v": 1, "i": agents_yesterday() }),
            )
            .await;
        let expected = if std::ptr::eq(token, &viewer) {
            "FORBIDDEN"
        } else {
            "NOT_FOUND"
        };
        assert_eq!(update.error_code(), Some(expected), "{}", update.body);
    }
    for mutation in [
        app.gql(
            Some(&colleague),
            UPDATE,
            json!({ "id": shared, "v": 1, "i": shared_input }),
        )
        .await,
        app.gql(Some(&colleague), DELETE, json!({ "id": shared })).await,
    ] {
        assert_eq!(mutation.error_code(), Some("FORBIDDEN"), "{}", mutation.body);
    }
    // …but a colleague may copy a shared report, and an ADMIN changes and deletes any.
    let copy = app.gql(Some(&colleague), DUPLICATE, json!({ "id": shared })).await;
    assert_eq!(copy.ok()["duplicateReport"]["shared"], false);
    let edited = app
        .gql(
            Some(&admin),
            UPDATE,
            json!({ "id": private, "v": 1, "i": agents_yesterday() }),
        )
        .await;
    assert_eq!(edited.ok()["updateReport"]["version"], 2);
    app.gql(Some(&admin), DELETE, json!({ "id": shared })).await.ok();
    assert_eq!(
        app.gql(Some(&supervisor), GET, json!({ "id": shared }))
            .await
            .error_code(),
        Some("NOT_FOUND")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn definitions_are_refused_by_the_engines_own_validation_naming_the_field() {
    let app = TestApp::spawn().await;
    let org = FixtureOrg::builder("repinput")
        .campaign(CampaignSpec::inbound("Care"))
        .build(&app.state)
        .await;
    let supervisor = org.token(&app.state, Role::Supervisor).await;
    let yesterday = json!({ "relative": "YESTERDAY" });
    let cases: Vec<(Value, &str)> = vec![
        (
            input(
                "x",
                json!({ "metrics": ["OCCUPANCY"], "groupBy": ["CAMPAIGN"] }),
                yesterday.clone(),
            ),
            "input.query.metrics[0]",
        ),
        (
            input(
                "x",
                json!({ "metrics": ["SERVICE_LEVEL"], "groupBy": ["DISPOSITION"] }),
                yesterday.clone(),
            ),
            "input.query.metrics[0]",
        ),
        (
            input(
                "x",
                json!({ "metrics": ["HANDLED"], "limit": 20000 }),
                yesterday.clone(),
            ),
            "input.query.limit",
        ),
        (
            input(
                "x",
                json!({ "metrics": ["HANDLED"], "filter": { "campaignIds": [Uuid::new_v4()] } }),
                yesterday.clone(),
            ),
            "input.query.filter.campaignIds[0]",
        ),
        (
            input(
                "x",
                json!({ "metrics": ["HANDLED"], "filter": { "teamIds": ["nope"] } }),
                yesterday.clone(),
            ),
            "input.query.filter.teamIds[0]",
        ),
        (
            input(
                "x",
                json!({ "metrics": ["HANDLED"] }),
                json!({ "from": "2025-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z" }),
            ),
            "input.range.to",
        ),
        (
            input(
                "x",
                json!({ "metrics": ["HANDLED"] }),
                json!({ "from": "2025-01-01T00:00:00Z" }),
            ),
            "input.range",
        ),
        (
            input(
                "x",
                json!({ "metrics": ["HANDLED"], "granularity": "HOUR" }),
                json!({ "from": "2025-01-01T00:00:00Z", "to": "2025-06-01T00:00:00Z" }),
            ),
            "input.query.granularity",
        ),
        (
            input("", json!({ "metrics": ["HANDLED"] }), yesterday.clone()),
            "input.title",
        ),
        (
            json!({ "title": "x", "query": { "metrics": ["HANDLED"] }, "range": yesterday,
                    "presentation": { "columns": [{ "metric": "OFFERED" }] } }),
            "input.presentation.columns[0].metric",
        ),
        (
            json!({ "title": "x", "query": { "metrics": ["HANDLED"] }, "range": yesterday,
                    "presentation": { "columns": [{ "metric": "HANDLED", "dimension": "AGENT" }] } }),
            "input.presentation.columns[0]",
        ),
        (
            json!({ "title": "x", "query": { "metrics": ["SERVICE_LEVEL"], "groupBy": ["AGENT"] }, "range": yesterday,
                    "presentation": { "chart": { "kind": "PIE", "series": ["SERVICE_LEVEL"] } } }),
            "input.presentation.chart.series[0]",
        ),
    ];
    for (report, field) in cases {
        let response = create(&app, &supervisor, report.clone()).await;
        assert_eq!(
            response.error_code(),
            Some("BAD_USER_INPUT"),
            "{report}: {}",
            response.body
        );
        let first = field_of(&response).into_iter().next();
        assert_eq!(first.as_deref(), Some(field), "{report}: {}", response.body);
    }
    // Several problems at once are all named.
    let response = create(
        &app,
        &supervisor,
        json!({ "title": "", "query": { "metrics": ["OCCUPANCY"], "groupBy": ["CAMPAIGN"] }, "range": yesterday,
                "presentation": { "totals": true, "chart": { "kind": "LINE", "series": ["OCCUPANCY"] } } }),
    )
    .await;
    assert_eq!(
        field_of(&response),
        ["input.title", "input.presentation.chart.kind", "input.query.metrics[0]"]
    );
    // The same query asked of `analytics` is refused for the same field (under its argument).
    let analytics = app
        .gql(
            Some(&supervisor),
            "{ analytics(query: { metrics: [OCCUPANCY], groupBy: [CAMPAIGN], filter: { from: \"2026-01-05T00:00:00Z\", to: \"2026-01-06T00:00:00Z\" } }) { totalRows } }",
            json!({}),
        )
        .await;
    assert_eq!(field_of(&analytics), ["query.metrics[0]"]);
    let report_message = create(
        &app,
        &supervisor,
        input(
            "x",
            json!({ "metrics": ["OCCUPANCY"], "groupBy": ["CAMPAIGN"] }),
            json!({ "relative": "YESTERDAY" }),
        ),
    )
    .await;
    assert_eq!(
        report_message.body["errors"][0]["extensions"]["fields"][0]["message"],
        analytics.body["errors"][0]["extensions"]["fields"][0]["message"]
    );
    assert_eq!(stored_reports(&app).await, 0, "a refused report was stored");
    assert!(report_audit(&app).await.is_empty(), "a refused report was audited");
    // DISPOSITION reads the disposition rollups: a range past the raw-read cap is accepted.
    let quarter = input(
        "Dispositions, two months",
        json!({ "metrics": ["HANDLED"], "groupBy": ["DISPOSITION"] }),
        json!({ "from": "2025-01-01T00:00:00Z", "to": "2025-03-01T00:00:00Z" }),
    );
    let stored = create(&app, &supervisor, quarter).await;
    assert!(stored.ok()["createReport"]["id"].is_string(), "{}", stored.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_are_listed_and_each_copies_into_a_working_report() {
    let app = TestApp::spawn().await;
    let org = app.create_org("reptemplates").await;
    let supervisor = org.token(&app.state, Role::Supervisor).await;
    let viewer = org.token(&app.state, Role::Viewer).await;
    let listed = app
        .gql(
            Some(&viewer),
            "{ reportTemplates { key title description query { metrics } range { relative } } }",
            json!({}),
        )
        .await;
    let keys: Vec<String> = listed.ok()["reportTemplates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        keys,
        [
            "agent-performance-daily",
            "campaign-summary",
            "hourly-service-level",
            "disposition-breakdown",
            "outbound-abandon-compliance",
            "agent-occupancy",
            "interaction-detail-log"
        ]
    );
    let copy = "mutation($k: String!, $t: String) { createReportFromTemplate(templateKey: $k, title: $t) {
        id title templateKey shared result { totalRows } } }";
    // The detail log has no result (it is run with runReport: tests/report_log.rs).
    for key in keys.iter().filter(|k| *k != "interaction-detail-log") {
        let created = app.gql(Some(&supervisor), copy, json!({ "k": key, "t": null })).await;
        let report = &created.ok()["createReportFromTemplate"];
        assert_eq!(report["templateKey"], json!(key));
        assert_eq!(report["shared"], false);
        assert!(report["result"]["totalRows"].is_number(), "{key}: {}", created.body);
    }
    let titled = app
        .gql(
            Some(&supervisor),
            copy,
            json!({ "k": "campaign-summary", "t": "Our campaigns" }),
        )
        .await;
    assert_eq!(titled.ok()["createReportFromTemplate"]["title"], "Our campaigns");
    let unknown = app
        .gql(Some(&supervisor), copy, json!({ "k": "nope", "t": null }))
        .await;
    assert_eq!(field_of(&unknown), ["templateKey"]);
    let refused = app
        .gql(Some(&viewer), copy, json!({ "k": "campaign-summary", "t": null }))
        .await;
    assert_eq!(refused.error_code(), Some("FORBIDDEN"));
}

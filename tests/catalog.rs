//! Campaigns and disposition codes over GraphQL: creation, changes, archiving, the refusals
//! (bad input by field, duplicates, other tenants' ids, archived campaigns: nothing stored),
//! the audit records, and the re-statement of the rollups when a campaign's service-level
//! override or a disposition's flags change (KPIs still equal a computation from the raw calls).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use common::fixture::{CampaignSpec, DispositionSpec, FixtureOrg};
use common::TestApp;
use omnivox::auth::Role;
use omnivox::db::interactions::NewInteraction;
use omnivox::domain::{AnsweredBy, Direction, Outcome};
use omnivox::kpi::plan::{aggregate_windows, Sourcing};
use omnivox::kpi::query::Scope;
use omnivox::kpi::writer::insert_calls;
use serde_json::{json, Value};
use uuid::Uuid;

const CAMPAIGN_FIELDS: &str =
    "id name direction dialMode status serviceLevelThresholdSeconds serviceLevelTargetPercent maxAbandonRatePercent";
const DISPOSITION_FIELDS: &str =
    "id code label humanAnswered contact success callback doNotCall answeringMachine active";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

async fn create_campaign(app: &TestApp, token: &str, input: Value) -> common::GqlResponse {
    app.gql(
        Some(token),
        &format!("mutation($i: CreateCampaignInput!) {{ createCampaign(input: $i) {{ {CAMPAIGN_FIELDS} }} }}"),
        json!({ "i": input }),
    )
    .await
}

async fn update_campaign(app: &TestApp, token: &str, id: &str, input: Value) -> common::GqlResponse {
    app.gql(
        Some(token),
        &format!(
            "mutation($id: ID!, $i: UpdateCampaignInput!) {{ updateCampaign(id: $id, input: $i) {{ {CAMPAIGN_FIELDS} }} }}"
        ),
        json!({ "id": id, "i": input }),
    )
    .await
}

async fn create_disposition(app: &TestApp, token: &str, input: Value) -> common::GqlResponse {
    app.gql(
        Some(token),
        &format!("mutation($i: CreateDispositionInput!) {{ createDisposition(input: $i) {{ {DISPOSITION_FIELDS} }} }}"),
        json!({ "i": input }),
    )
    .await
}

async fn update_disposition(app: &TestApp, token: &str, id: &str, input: Value) -> common::GqlResponse {
    app.gql(
        Some(token),
        &format!(
            "mutation($id: ID!, $i: UpdateDispositionInput!) {{ updateDisposition(id: $id, input: $i) {{ {DISPOSITION_FIELDS} }} }}"
        ),
        json!({ "id": id, "i": input }),
    )
    .await
}

async fn campaigns(app: &TestApp, token: &str) -> Vec<Value> {
    let response = app
        .gql(
            Some(token),
            &format!("{{ campaigns(includeArchived: true) {{ {CAMPAIGN_FIELDS} }} }}"),
            json!({}),
        )
        .await;
    response.ok()["campaigns"].as_array().unwrap().clone()
}

async fn dispositions(app: &TestApp, token: &str) -> Vec<Value> {
    let response = app
        .gql(
            Some(token),
            &format!("{{ dispositions(includeInactive: true) {{ {DISPOSITION_FIELDS} }} }}"),
            json!({}),
        )
        .await;
    response.ok()["dispositions"].as_array().unwrap().clone()
}

/// The audit actions of the organization, oldest first.
async fn audit_actions(app: &TestApp, org: &FixtureOrg) -> Vec<(String, Value)> {
    let mut conn = app.state.system_db.get().await.unwrap();
    let mut rows = omnivox::audit::recent(&mut conn, Some(org.id), 1_000).await.unwrap();
    rows.reverse();
    rows.into_iter().map(|r| (r.action, r.details)).collect()
}

fn field_names(response: &common::GqlResponse) -> Vec<String> {
    response.body["errors"][0]["extensions"]["fields"]
        .as_array()
        .map(|fields| fields.iter().map(|f| f["field"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn campaigns_are_created_changed_archived_and_audited() {
    let app = TestApp::spawn().await;
    let org = app.create_org("camp").await;
    let admin = org.token(&app.state, Role::Admin).await;
    let viewer = org.token(&app.state, Role::Viewer).await;

    let created = create_campaign(
        &app,
        &admin,
        json!({ "name": "  Winter sales ", "direction": "OUTBOUND", "dialMode": "PREDICTIVE",
                "maxAbandonRatePercent": 2.5 }),
    )
    .await;
    let campaign = created.ok()["createCampaign"].clone();
    assert_eq!(campaign["name"], "Winter sales", "the name is trimmed");
    assert_eq!(campaign["status"], "ACTIVE");
    assert_eq!(campaign["dialMode"], "PREDICTIVE");
    assert_eq!(campaign["serviceLevelThresholdSeconds"], Value::Null);
    assert_eq!(campaign["maxAbandonRatePercent"], 2.5);
    let id = campaign["id"].as_str().unwrap().to_owned();

    // Every role reads the campaigns (they name what KPIs refer to).
    let listed = campaigns(&app, &viewer).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());

    // A partial change keeps what it does not name; null clears an override.
    let changed = update_campaign(
        &app,
        &admin,
        &id,
        json!({ "status": "PAUSED", "serviceLevelThresholdSeconds": 15, "maxAbandonRatePercent": null }),
    )
    .await;
    let changed = &changed.ok()["updateCampaign"];
    assert_eq!(changed["status"], "PAUSED");
    assert_eq!(changed["serviceLevelThresholdSeconds"], 15);
    assert_eq!(changed["maxAbandonRatePercent"], Value::Null);
    assert_eq!(changed["dialMode"], "PREDICTIVE");
    assert_eq!(changed["name"], "Winter sales");

    // Archived: out of the default listing, and final.
    let archived = app
        .gql(
            Some(&admin),
            "mutation($id: ID!) { archiveCampaign(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(archived.ok()["archiveCampaign"]["status"], "ARCHIVED");
    let default_list = app.gql(Some(&viewer), "{ campaigns { id } }", json!({})).await;
    assert_eq!(default_list.ok()["campaigns"], json!([]));
    let refused = update_campaign(&app, &admin, &id, json!({ "name": "Spring sales" })).await;
    assert_eq!(refused.error_code(), Some("CONFLICT"), "{}", refused.body);
    let refused = update_campaign(&app, &admin, &id, json!({ "status": "ARCHIVED" })).await;
    assert_eq!(refused.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(field_names(&refused), ["input.status"]);
    assert_eq!(campaigns(&app, &admin).await[0]["name"], "Winter sales");

    let actions: Vec<String> = audit_actions(&app, &org).await.into_iter().map(|a| a.0).collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| a.starts_with("campaign."))
            .collect::<Vec<_>>(),
        ["campaign.create", "campaign.update", "campaign.archive"]
    );
    let audit = audit_actions(&app, &org).await;
    let update = audit.iter().find(|a| a.0 == "campaign.update").unwrap();
    assert_eq!(update.1["before"]["serviceLevelThresholdSeconds"], Value::Null);
    assert_eq!(update.1["after"]["serviceLevelThresholdSeconds"], 15);
    assert_eq!(update.1["before"]["maxAbandonRatePercent"], 2.5);
    let mut conn = app.state.system_db.get().await.unwrap();
    assert!(omnivox::audit::verify_chain(&mut conn, Some(org.id))
        .await
        .unwrap()
        .intact());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_campaign_and_disposition_input_is_refused_by_field_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let org = FixtureOrg::builder("bad")
        .campaign(CampaignSpec::inbound("Care"))
        .disposition(DispositionSpec::new("SALE").success())
        .build(&app.state)
        .await;
    let other = FixtureOrg::builder("other")
        .campaign(CampaignSpec::inbound("Theirs"))
        .disposition(DispositionSpec::new("THEIRS"))
        .build(&app.state)
        .await;
    let admin = org.token(&app.state, Role::Admin).await;
    let before = (campaigns(&app, &admin).await, dispositions(&app, &admin).await);
    let audit_before = audit_actions(&app, &org).await.len();

    let response = create_campaign(
        &app,
        &admin,
        json!({ "name": "", "direction": "INBOUND", "dialMode": "PREVIEW",
                "serviceLevelThresholdSeconds": 0, "serviceLevelTargetPercent": 120 }),
    )
    .await;
    assert_eq!(response.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(
        field_names(&response),
        [
            "input.name",
            "input.dialMode",
            "input.serviceLevelThresholdSeconds",
            "input.serviceLevelTargetPercent"
        ]
    );
    let duplicate = create_campaign(&app, &admin, json!({ "name": "Care", "direction": "OUTBOUND" })).await;
    assert_eq!(duplicate.error_code(), Some("CONFLICT"), "{}", duplicate.body);

    let care = before.0[0]["id"].as_str().unwrap().to_owned();
    let response = update_campaign(&app, &admin, &care, json!({ "maxAbandonRatePercent": -1 })).await;
    assert_eq!(field_names(&response), ["input.maxAbandonRatePercent"]);
    let response = update_campaign(&app, &admin, &care, json!({ "dialMode": "MANUAL" })).await;
    assert_eq!(
        field_names(&response),
        ["input.dialMode"],
        "an inbound campaign does not dial"
    );
    let response = update_campaign(&app, &admin, "not-an-id", json!({ "name": "X" })).await;
    assert_eq!(field_names(&response), ["id"]);
    // Another tenant's campaign and disposition are as unknown as made-up ids.
    for id in [other.campaigns[0], Uuid::new_v4()] {
        let response = update_campaign(&app, &admin, &id.to_string(), json!({ "name": "Mine" })).await;
        assert_eq!(response.error_code(), Some("NOT_FOUND"), "{}", response.body);
        let response = app
            .gql(
                Some(&admin),
                "mutation($id: ID!) { archiveCampaign(id: $id) { id } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(response.error_code(), Some("NOT_FOUND"));
    }
    for id in [other.dispositions[0], Uuid::new_v4()] {
        let response = update_disposition(&app, &admin, &id.to_string(), json!({ "label": "Mine" })).await;
        assert_eq!(response.error_code(), Some("NOT_FOUND"), "{}", response.body);
    }

    let response = create_disposition(
        &app,
        &admin,
        json!({ "code": "no spaces", "label": "", "success": true, "humanAnswered": true, "answeringMachine": true }),
    )
    .await;
    assert_eq!(response.error_code(), Some("BAD_USER_INPUT"));
    assert_eq!(
        field_names(&response),
        ["input.code", "input.label", "input.success", "input.answeringMachine"]
    );
    let duplicate = create_disposition(&app, &admin, json!({ "code": "sale", "label": "Sale again" })).await;
    assert_eq!(
        duplicate.error_code(),
        Some("CONFLICT"),
        "codes are compared upper case"
    );
    let sale = before.1[0]["id"].as_str().unwrap().to_owned();
    let response = update_disposition(&app, &admin, &sale, json!({ "contact": false })).await;
    assert_eq!(
        field_names(&response),
        ["input.success"],
        "a success stays a contact: {}",
        response.body
    );

    assert_eq!(
        (campaigns(&app, &admin).await, dispositions(&app, &admin).await),
        before,
        "nothing stored"
    );
    assert_eq!(audit_actions(&app, &org).await.len(), audit_before, "nothing audited");
    let theirs = app
        .gql(
            Some(&other.token(&app.state, Role::Admin).await),
            "{ campaigns { name } dispositions { label } }",
            json!({}),
        )
        .await;
    assert_eq!(
        theirs.ok(),
        &json!({ "campaigns": [{ "name": "Theirs" }], "dispositions": [{ "label": "THEIRS" }] })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dispositions_are_created_changed_retired_and_audited() {
    let app = TestApp::spawn().await;
    let org = app.create_org("disp").await;
    let admin = org.token(&app.state, Role::Admin).await;
    let agent = org.token(&app.state, Role::Agent).await;
    let created = create_disposition(
        &app,
        &admin,
        json!({ "code": " callback_later ", "label": "Call me later", "callback": true, "humanAnswered": true }),
    )
    .await;
    let created = created.ok()["createDisposition"].clone();
    assert_eq!(created["code"], "CALLBACK_LATER");
    assert_eq!(created["callback"], true);
    assert_eq!(created["active"], true);
    let id = created["id"].as_str().unwrap().to_owned();

    let changed = update_disposition(&app, &admin, &id, json!({ "active": false, "doNotCall": true })).await;
    let changed = &changed.ok()["updateDisposition"];
    assert_eq!(changed["active"], false);
    assert_eq!(changed["doNotCall"], true);
    assert_eq!(changed["label"], "Call me later");
    // An agent reads the codes it may use: active ones unless asked.
    let listed = app.gql(Some(&agent), "{ dispositions { code } }", json!({})).await;
    assert_eq!(listed.ok()["dispositions"], json!([]));
    assert_eq!(dispositions(&app, &agent).await.len(), 1);

    let audit = audit_actions(&app, &org).await;
    let update = audit.iter().find(|a| a.0 == "disposition.update").unwrap();
    assert_eq!(update.1["before"]["active"], true);
    assert_eq!(update.1["after"]["active"], false);
    assert_eq!(update.1["restatedHours"], 0, "no counting flag changed");
    assert!(audit.iter().any(|a| a.0 == "disposition.create"));
}

fn call(
    external_id: &str,
    offered_at: DateTime<Utc>,
    direction: Direction,
    campaign: Uuid,
    disposition: Option<Uuid>,
    wait_s: i64,
    outcome: Outcome,
) -> NewInteraction {
    let wait = TimeDelta::seconds(wait_s);
    let answered = outcome == Outcome::Answered;
    let ended = offered_at + wait + TimeDelta::seconds(60);
    NewInteraction {
        campaign_id: Some(campaign),
        agent_id: None,
        external_id: external_id.to_owned(),
        direction,
        customer_number: None,
        offered_at,
        answered_at: answered.then_some(offered_at + wait),
        ended_at: Some(ended),
        wrap_ended_at: answered.then_some(ended + TimeDelta::seconds(10)),
        wait_ms: Some(wait_s * 1_000),
        talk_ms: if answered { 60_000 } else { 0 },
        hold_ms: 0,
        wrap_ms: if answered { 10_000 } else { 0 },
        outcome,
        disposition_id: disposition,
        answered_by: (direction == Direction::Outbound && answered).then_some(AnsweredBy::Human),
        notes: None,
    }
}

const SUMMARY: &str = "query($f: KpiFilter!) { kpiSummary(filter: $f) {
    offered answered serviceLevel contactRate conversionRate } }";

/// The rollups (hourly alone, and daily through a whole-day summary) equal the raw calls.
async fn assert_rollups_equal_raw(app: &TestApp, org: &FixtureOrg, when: &str) {
    let mut conn = app.state.system_db.get().await.unwrap();
    let hours = [(at("2026-01-05T00:00:00Z"), at("2026-01-06T00:00:00Z"))];
    for scope in [
        Scope::default(),
        Scope {
            campaign_ids: Some(vec![org.campaigns[0]]),
            ..Scope::default()
        },
        Scope {
            direction: Some(Direction::Outbound),
            ..Scope::default()
        },
    ] {
        let rolled = aggregate_windows(&mut conn, &org.tenant, &hours, &scope, Sourcing::HourlyRollupsOnly)
            .await
            .unwrap();
        let raw = aggregate_windows(&mut conn, &org.tenant, &hours, &scope, Sourcing::RawOnly)
            .await
            .unwrap();
        assert_eq!(rolled, raw, "hourly rollups vs raw calls {when}, scope {scope:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_override_or_flag_restates_the_rollups_of_its_calls() {
    let app = TestApp::spawn().await;
    let org = FixtureOrg::builder("restate")
        .timezone("UTC")
        .campaign(CampaignSpec::inbound("Care"))
        .campaign(CampaignSpec::outbound("Sales"))
        .disposition(DispositionSpec::new("TALKED").human())
        .disposition(DispositionSpec::new("SALE").success())
        .build(&app.state)
        .await;
    let admin = org.token(&app.state, Role::Admin).await;
    let (care, sales) = (org.campaigns[0], org.campaigns[1]);
    let (talked, sale) = (org.dispositions[0], org.dispositions[1]);
    let t = |m: i64| at("2026-01-05T10:00:00Z") + TimeDelta::minutes(m);
    let calls = vec![
        // Inbound, answered after 10, 25 and 40 s (the organization's threshold is 20 s).
        call("in-1", t(1), Direction::Inbound, care, None, 10, Outcome::Answered),
        call("in-2", t(70), Direction::Inbound, care, None, 25, Outcome::Answered),
        call("in-3", t(130), Direction::Inbound, care, None, 40, Outcome::Answered),
        // Outbound, answered by people: two TALKED, one SALE, one without a disposition.
        call(
            "out-1",
            t(5),
            Direction::Outbound,
            sales,
            Some(talked),
            2,
            Outcome::Answered,
        ),
        call(
            "out-2",
            t(65),
            Direction::Outbound,
            sales,
            Some(talked),
            2,
            Outcome::Answered,
        ),
        call(
            "out-3",
            t(200),
            Direction::Outbound,
            sales,
            Some(sale),
            2,
            Outcome::Answered,
        ),
        call("out-4", t(300), Direction::Outbound, sales, None, 2, Outcome::Answered),
    ];
    let mut conn = app.state.system_db.get().await.unwrap();
    insert_calls(&mut conn, &org.tenant, &calls).await.unwrap();

    let day = json!({ "f": { "from": "2026-01-05T00:00:00Z", "to": "2026-01-06T00:00:00Z" } });
    let inbound = json!({ "f": { "from": "2026-01-05T00:00:00Z", "to": "2026-01-06T00:00:00Z",
                                 "campaignIds": [care] } });
    let summary = |vars: Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let response = app.gql(Some(&admin), SUMMARY, vars).await;
            response.ok()["kpiSummary"].clone()
        }
    };
    let close = |got: &Value, want: f64| (got.as_f64().unwrap() - want).abs() < 1e-9;
    assert!(close(&summary(inbound.clone()).await["serviceLevel"], 100.0 / 3.0));
    let before = summary(day.clone()).await;
    assert!(close(&before["contactRate"], 25.0), "{before}");
    assert!(close(&before["conversionRate"], 100.0), "{before}");
    assert_rollups_equal_raw(&app, &org, "at first").await;

    // Care's own threshold of 30 s: two of its three calls are now within.
    let changed = update_campaign(
        &app,
        &admin,
        &care.to_string(),
        json!({ "serviceLevelThresholdSeconds": 30 }),
    )
    .await;
    assert_eq!(changed.ok()["updateCampaign"]["serviceLevelThresholdSeconds"], 30);
    assert!(close(&summary(inbound.clone()).await["serviceLevel"], 200.0 / 3.0));
    assert_rollups_equal_raw(&app, &org, "after the override").await;
    let audit = audit_actions(&app, &org).await;
    let record = audit.iter().rev().find(|a| a.0 == "campaign.update").unwrap();
    assert_eq!(record.1["restatedHours"], 3, "the three hours of Care's calls");

    // Cleared: the organization's threshold again.
    update_campaign(
        &app,
        &admin,
        &care.to_string(),
        json!({ "serviceLevelThresholdSeconds": null }),
    )
    .await
    .ok();
    assert!(close(&summary(inbound.clone()).await["serviceLevel"], 100.0 / 3.0));
    assert_rollups_equal_raw(&app, &org, "after clearing the override").await;

    // TALKED becomes a right-party contact: 3 contacts of 4 dials, 1 success of 3 contacts.
    let changed = update_disposition(&app, &admin, &talked.to_string(), json!({ "contact": true })).await;
    assert_eq!(changed.ok()["updateDisposition"]["contact"], true);
    let after = summary(day.clone()).await;
    assert!(close(&after["contactRate"], 75.0), "{after}");
    assert!(close(&after["conversionRate"], 100.0 / 3.0), "{after}");
    assert_rollups_equal_raw(&app, &org, "after the contact flag").await;

    // SALE is no sale any more (nor a contact): 2 contacts, no success.
    update_disposition(
        &app,
        &admin,
        &sale.to_string(),
        json!({ "success": false, "contact": false }),
    )
    .await
    .ok();
    let after = summary(day.clone()).await;
    assert!(close(&after["contactRate"], 50.0), "{after}");
    assert!(close(&after["conversionRate"], 0.0), "{after}");
    assert_rollups_equal_raw(&app, &org, "after the success flag").await;

    // Calls written after the change are counted with the new rules.
    let later = vec![call(
        "out-5",
        t(400),
        Direction::Outbound,
        sales,
        Some(talked),
        2,
        Outcome::Answered,
    )];
    insert_calls(&mut conn, &org.tenant, &later).await.unwrap();
    let after = summary(day).await;
    assert!(close(&after["contactRate"], 60.0), "{after}");
    assert_rollups_equal_raw(&app, &org, "after a later call").await;
}

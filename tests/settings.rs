//! Business settings: reading, validated partial updates, optimistic concurrency, audit.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use common::TestApp;
use omnivox::auth::Role;
use serde_json::json;

const UPDATE: &str = "mutation($v: Int!, $i: BusinessSettingsInput!) {
  updateBusinessSettings(expectedVersion: $v, input: $i) {
    version timezone serviceLevelThresholdSeconds serviceLevelVariant businessHours { weekday open close } holidays
  } }";

#[tokio::test(flavor = "multi_thread")]
async fn defaults_are_readable_by_every_role() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let viewer = app.token(&org, Role::Viewer).await;
    let response = app
        .gql(
            Some(&viewer),
            "{ organization { timezone businessSettings { version timezone serviceLevelThresholdSeconds serviceLevelTargetPercent serviceLevelVariant shortAbandonSeconds maxAbandonRatePercent wrapUpLimitSeconds businessHours { weekday } holidays dataRetentionDays } } }",
            json!({}),
        )
        .await;
    let settings = &response.ok()["organization"]["businessSettings"];
    assert_eq!(settings["version"], 1);
    assert_eq!(settings["timezone"], "Europe/London");
    assert_eq!(settings["serviceLevelThresholdSeconds"], 20);
    assert_eq!(settings["serviceLevelTargetPercent"], 80.0);
    assert_eq!(
        settings["serviceLevelVariant"],
        "ANSWERED_WITHIN_OVER_OFFERED_EXCLUDING_SHORT_ABANDONS"
    );
    assert_eq!(settings["dataRetentionDays"], 730);
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_updates_bump_the_version_and_are_audited_with_before_and_after() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let admin = app.token(&org, Role::Admin).await;
    let input = json!({
        "timezone": "America/New_York",
        "serviceLevelThresholdSeconds": 30,
        "serviceLevelVariant": "ANSWERED_WITHIN_OVER_ANSWERED",
        "businessHours": [{ "weekday": 1, "open": "08:00", "close": "12:00" }, { "weekday": 1, "open": "13:00", "close": "24:00" }],
        "holidays": ["2026-12-25", "2026-12-25", "2026-01-01"],
    });
    let response = app.gql(Some(&admin), UPDATE, json!({ "v": 1, "i": input })).await;
    let updated = &response.ok()["updateBusinessSettings"];
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["timezone"], "America/New_York");
    assert_eq!(updated["serviceLevelThresholdSeconds"], 30);
    assert_eq!(updated["businessHours"].as_array().unwrap().len(), 2);
    assert_eq!(
        updated["holidays"],
        json!(["2026-01-01", "2026-12-25"]),
        "sorted and de-duplicated"
    );
    let org_zone = app.gql(Some(&admin), "{ organization { timezone } }", json!({})).await;
    assert_eq!(org_zone.ok()["organization"]["timezone"], "America/New_York");

    // A partial update keeps everything it does not name.
    let partial = app
        .gql(
            Some(&admin),
            UPDATE,
            json!({ "v": 2, "i": { "shortAbandonSeconds": 8 } }),
        )
        .await;
    assert_eq!(
        partial.ok()["updateBusinessSettings"]["serviceLevelThresholdSeconds"],
        30
    );

    let mut conn = app.state.system_db.get().await.unwrap();
    let chain = omnivox::audit::recent(&mut conn, Some(org.id), 10).await.unwrap();
    let first = chain
        .iter()
        .find(|r| r.action == "settings.update" && r.details["toVersion"] == 2)
        .unwrap();
    assert_eq!(first.details["before"]["service_level_threshold_seconds"], 20);
    assert_eq!(first.details["after"]["service_level_threshold_seconds"], 30);
    assert_eq!(first.details["before"]["timezone"], "Europe/London");
    assert_eq!(first.details["after"]["timezone"], "America/New_York");
    assert_eq!(first.actor_user_id, Some(org.user(Role::Admin).id));
    assert!(omnivox::audit::verify_chain(&mut conn, Some(org.id))
        .await
        .unwrap()
        .intact());
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_version_is_a_conflict_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let admin = app.token(&org, Role::Admin).await;
    app.gql(
        Some(&admin),
        UPDATE,
        json!({ "v": 1, "i": { "wrapUpLimitSeconds": 60 } }),
    )
    .await
    .ok();
    let stale = app
        .gql(
            Some(&admin),
            UPDATE,
            json!({ "v": 1, "i": { "wrapUpLimitSeconds": 90 } }),
        )
        .await;
    assert_eq!(stale.error_code(), Some("CONFLICT"));
    assert!(stale.error_message().unwrap().contains("current version is 2"));
    let now = app
        .gql(
            Some(&admin),
            "{ organization { businessSettings { version wrapUpLimitSeconds } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        now.ok()["organization"]["businessSettings"],
        json!({ "version": 2, "wrapUpLimitSeconds": 60 })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_updates_of_one_version_let_exactly_one_win() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let admin = app.token(&org, Role::Admin).await;
    let results = futures_util::future::join_all((0..6).map(|i| {
        app.gql(
            Some(&admin),
            UPDATE,
            json!({ "v": 1, "i": { "wrapUpLimitSeconds": 100 + i } }),
        )
    }))
    .await;
    let wins = results.iter().filter(|r| r.body.get("errors").is_none()).count();
    let conflicts = results.iter().filter(|r| r.error_code() == Some("CONFLICT")).count();
    assert_eq!((wins, conflicts), (1, 5));
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_values_are_reported_per_field_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    let admin = app.token(&org, Role::Admin).await;
    let input = json!({
        "timezone": "Europe/Atlantis",
        "serviceLevelThresholdSeconds": 0,
        "serviceLevelTargetPercent": 120.5,
        "shortAbandonSeconds": -1,
        "dataRetentionDays": 0,
        "businessHours": [
            { "weekday": 0, "open": "09:00", "close": "17:00" },
            { "weekday": 2, "open": "18:00", "close": "09:00" },
            { "weekday": 3, "open": "09:00", "close": "17:00" },
            { "weekday": 3, "open": "12:00", "close": "19:00" }
        ]
    });
    let response = app.gql(Some(&admin), UPDATE, json!({ "v": 1, "i": input })).await;
    assert_eq!(response.error_code(), Some("BAD_USER_INPUT"));
    let fields: Vec<&str> = response.body["errors"][0]["extensions"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    for expected in [
        "input.timezone",
        "input.serviceLevelThresholdSeconds",
        "input.serviceLevelTargetPercent",
        "input.shortAbandonSeconds",
        "input.dataRetentionDays",
        "input.businessHours[0].weekday",
        "input.businessHours[1].close",
        "input.businessHours[3]",
    ] {
        assert!(fields.contains(&expected), "{expected} not reported in {fields:?}");
    }
    let now = app
        .gql(
            Some(&admin),
            "{ organization { timezone businessSettings { version } } }",
            json!({}),
        )
        .await;
    assert_eq!(now.ok()["organization"]["businessSettings"]["version"], 1);
    assert_eq!(now.ok()["organization"]["timezone"], "Europe/London");
}

#[tokio::test(flavor = "multi_thread")]
async fn viewer_and_supervisor_are_refused() {
    let app = TestApp::spawn().await;
    let org = app.create_org("acme").await;
    for role in [Role::Viewer, Role::Agent, Role::Supervisor] {
        let token = app.token(&org, role).await;
        let response = app
            .gql(
                Some(&token),
                UPDATE,
                json!({ "v": 1, "i": { "wrapUpLimitSeconds": 5 } }),
            )
            .await;
        assert_eq!(response.error_code(), Some("FORBIDDEN"), "{role}");
    }
}

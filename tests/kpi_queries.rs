//! The KPI API: series buckets in the organization's time zone (DST days of 23 and 25 hours,
//! empty buckets present, buckets adding up to the summary), tenant isolation, filter
//! validation naming the offending field, and the role guards.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use common::fixture::{CampaignSpec, FixtureOrg};
use common::{GqlResponse, TestApp};
use diesel_async::RunQueryDsl;
use omnivox::auth::{Role, Tenant};
use omnivox::db::contact_centre as cc;
use omnivox::db::interactions::NewInteraction;
use omnivox::domain::{AnsweredBy, Direction, Outcome};
use omnivox::kpi::writer::insert_calls;
use serde_json::{json, Value};
use uuid::Uuid;

const UPDATE_SETTINGS: &str = "mutation($v: Int!, $i: BusinessSettingsInput!) {
  updateBusinessSettings(expectedVersion: $v, input: $i) { version timezone } }";

const SUMMARY: &str = "query($f: KpiFilter!, $org: ID) {
  kpiSummary(filter: $f, orgId: $org) { start end offered answered handled abandoned shortAbandoned serviceLevel abandonRate } }";

const SERIES: &str = "query($f: KpiFilter!, $g: Granularity!, $org: ID) {
  kpiSeries(filter: $f, granularity: $g, orgId: $org) {
    granularity timezone
    buckets { start end offered answered handled abandoned shortAbandoned serviceLevel abandonRate averageSpeedOfAnswer }
  } }";

const ADDITIVE: [&str; 5] = ["offered", "answered", "handled", "abandoned", "shortAbandoned"];

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// Ids of what an organization's calls refer to.
struct Seeded {
    org: FixtureOrg,
    tenant: Tenant,
    campaign: Uuid,
    team: Uuid,
    agents: Vec<Uuid>,
}

async fn seed_org(app: &TestApp, slug: &str, agents: usize) -> Seeded {
    let org = FixtureOrg::builder(slug)
        .campaign(CampaignSpec::inbound("Support"))
        .teams(["Red"])
        .agents((0..agents).map(|i| format!("Agent {i}")))
        .state_since(at("2026-01-01T00:00:00Z"))
        .build(&app.state)
        .await;
    Seeded {
        tenant: org.tenant,
        campaign: org.campaigns[0],
        team: org.teams[0],
        agents: org.agents.clone(),
        org,
    }
}

/// A call offered at `offered_at`; `kind` 0 answered and handled, 1 answered and still wrapping,
/// 2 abandoned, 3 no answer (not offered).
fn call(
    n: usize,
    offered_at: DateTime<Utc>,
    kind: u64,
    wait_ms: i64,
    campaign: Option<Uuid>,
    agent: Option<Uuid>,
) -> NewInteraction {
    let outcome = match kind {
        0 | 1 => Outcome::Answered,
        2 => Outcome::Abandoned,
        _ => Outcome::NoAnswer,
    };
    let answered = outcome == Outcome::Answered;
    let ended_at = offered_at + TimeDelta::milliseconds(wait_ms + if answered { 120_000 } else { 0 });
    NewInteraction {
        campaign_id: campaign,
        agent_id: if answered { agent } else { None },
        external_id: format!("q-{n}"),
        direction: Direction::Inbound,
        customer_number: None,
        offered_at,
        answered_at: answered.then(|| offered_at + TimeDelta::milliseconds(wait_ms)),
        ended_at: Some(ended_at),
        wrap_ended_at: (kind == 0).then(|| ended_at + TimeDelta::seconds(15)),
        wait_ms: Some(wait_ms),
        talk_ms: if answered { 120_000 } else { 0 },
        hold_ms: 0,
        wrap_ms: if kind == 0 { 15_000 } else { 0 },
        outcome,
        disposition_id: None,
        answered_by: answered.then_some(AnsweredBy::Human),
        notes: None,
    }
}

async fn insert(app: &TestApp, seeded: &Seeded, calls: &[NewInteraction]) {
    let mut conn = app.state.system_db.get().await.unwrap();
    insert_calls(&mut conn, &seeded.tenant, calls).await.unwrap();
}

/// A small deterministic generator (xorshift), so the data is varied but reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

fn filter(from: DateTime<Utc>, to: DateTime<Utc>) -> Value {
    json!({ "from": from.to_rfc3339(), "to": to.to_rfc3339() })
}

async fn series(app: &TestApp, token: &str, f: Value, granularity: &str) -> Value {
    let response = app.gql(Some(token), SERIES, json!({ "f": f, "g": granularity })).await;
    response.ok()["kpiSeries"].clone()
}

async fn summary(app: &TestApp, token: &str, f: Value) -> Value {
    let response = app.gql(Some(token), SUMMARY, json!({ "f": f })).await;
    response.ok()["kpiSummary"].clone()
}

async fn set_timezone(app: &TestApp, admin: &str, version: i64, zone: &str) {
    let response = app
        .gql(
            Some(admin),
            UPDATE_SETTINGS,
            json!({ "v": version, "i": { "timezone": zone } }),
        )
        .await;
    assert_eq!(response.ok()["updateBusinessSettings"]["timezone"], zone);
}

fn bounds(bucket: &Value) -> (DateTime<Utc>, DateTime<Utc>) {
    (
        at(bucket["start"].as_str().unwrap()),
        at(bucket["end"].as_str().unwrap()),
    )
}

/// The fields a BAD_USER_INPUT names.
fn fields(response: &GqlResponse) -> Vec<String> {
    response.body["errors"][0]["extensions"]["fields"]
        .as_array()
        .map(|list| list.iter().map(|f| f["field"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

#[track_caller]
fn assert_bad_input(response: &GqlResponse, field: &str) {
    assert_ne!(response.status, 500, "{}", response.body);
    assert_eq!(response.error_code(), Some("BAD_USER_INPUT"), "{}", response.body);
    assert!(
        fields(response).iter().any(|f| f == field),
        "expected field {field}: {}",
        response.body
    );
    assert!(
        response.error_message().unwrap().contains(field),
        "the message names {field}: {}",
        response.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dst_days_have_23_and_25_hourly_buckets_and_empty_buckets_are_present() {
    let app = TestApp::spawn().await;
    let seeded = seed_org(&app, "dst", 1).await;
    let admin = seeded.org.token(&app.state, Role::Admin).await;
    let viewer = seeded.org.token(&app.state, Role::Viewer).await;
    let (c, a) = (Some(seeded.campaign), Some(seeded.agents[0]));
    insert(
        &app,
        &seeded,
        &[
            // London, 2026-03-29: 00:30 GMT, then 01:30Z = 02:30 BST (01:00–02:00 local never happens).
            call(1, at("2026-03-29T00:30:00Z"), 0, 5_000, c, a),
            call(2, at("2026-03-29T01:30:00Z"), 2, 40_000, c, a),
            // New York, 2026-11-01: 01:30 EDT (05:30Z) and, an hour later, 01:30 EST (06:30Z).
            call(3, at("2026-11-01T05:30:00Z"), 0, 5_000, c, a),
            call(4, at("2026-11-01T06:30:00Z"), 0, 5_000, c, a),
        ],
    )
    .await;
    set_timezone(&app, &admin, 1, "Europe/London").await;

    // The local day 2026-03-29 runs from 00:00 GMT (00:00Z) to 00:00 BST (23:00Z): 23 hours.
    let london_day = filter(at("2026-03-29T00:00:00Z"), at("2026-03-29T23:00:00Z"));
    let hours = series(&app, &viewer, london_day.clone(), "HOUR").await;
    assert_eq!(hours["timezone"], "Europe/London");
    assert_eq!(hours["granularity"], "HOUR");
    let buckets = hours["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 23);
    assert_eq!(
        bounds(&buckets[0]),
        (at("2026-03-29T00:00:00Z"), at("2026-03-29T01:00:00Z"))
    );
    assert_eq!(bounds(&buckets[1]).0, at("2026-03-29T01:00:00Z"), "01:00Z is 02:00 BST");
    assert_eq!(bounds(&buckets[22]).1, at("2026-03-29T23:00:00Z"));
    assert_eq!(
        (buckets[0]["offered"].as_i64(), buckets[1]["offered"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        (buckets[0]["serviceLevel"].as_f64(), buckets[1]["abandonRate"].as_f64()),
        (Some(100.0), Some(100.0))
    );
    for (i, bucket) in buckets.iter().enumerate().skip(2) {
        // Empty hours are present, with zero counts and null ratios.
        let (start, end) = bounds(bucket);
        assert_eq!(end - start, TimeDelta::hours(1), "bucket {i}");
        assert_eq!(bucket["offered"], 0, "bucket {i}");
        assert!(
            bucket["serviceLevel"].is_null() && bucket["abandonRate"].is_null(),
            "bucket {i}: {bucket}"
        );
        assert!(bucket["averageSpeedOfAnswer"].is_null(), "bucket {i}: {bucket}");
    }
    let quarters = series(&app, &viewer, london_day, "FIFTEEN_MINUTES").await;
    assert_eq!(quarters["buckets"].as_array().unwrap().len(), 23 * 4);
    let days = series(
        &app,
        &viewer,
        filter(at("2026-03-28T00:00:00Z"), at("2026-03-30T23:00:00Z")),
        "DAY",
    )
    .await;
    let lengths: Vec<i64> = days["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (bounds(b).1 - bounds(b).0).num_hours())
        .collect();
    assert_eq!(lengths, vec![24, 23, 24]);

    // New York: the local day 2026-11-01 runs from 04:00Z (00:00 EDT) to 05:00Z next day: 25 hours.
    set_timezone(&app, &admin, 2, "America/New_York").await;
    let new_york_day = filter(at("2026-11-01T04:00:00Z"), at("2026-11-02T05:00:00Z"));
    let hours = series(&app, &viewer, new_york_day.clone(), "HOUR").await;
    assert_eq!(hours["timezone"], "America/New_York");
    let buckets = hours["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 25);
    // 01:00 EDT and 01:00 EST are two buckets, each with its own call.
    assert_eq!(
        bounds(&buckets[1]),
        (at("2026-11-01T05:00:00Z"), at("2026-11-01T06:00:00Z"))
    );
    assert_eq!(
        bounds(&buckets[2]),
        (at("2026-11-01T06:00:00Z"), at("2026-11-01T07:00:00Z"))
    );
    assert_eq!(
        (buckets[1]["offered"].as_i64(), buckets[2]["offered"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(buckets.iter().map(|b| b["offered"].as_i64().unwrap()).sum::<i64>(), 2);
    let days = series(&app, &viewer, new_york_day, "DAY").await;
    let days = days["buckets"].as_array().unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!((bounds(&days[0]).1 - bounds(&days[0]).0).num_hours(), 25);
    assert_eq!(days[0]["offered"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn series_buckets_add_up_to_the_summary() {
    let app = TestApp::spawn().await;
    let seeded = seed_org(&app, "sums", 3).await;
    let admin = seeded.org.token(&app.state, Role::Admin).await;
    let viewer = seeded.org.token(&app.state, Role::Viewer).await;
    // 400 calls over 2026-03-27..2026-03-31 (the London DST change), at arbitrary milliseconds,
    // some exactly on hour and quarter-hour boundaries.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let origin = at("2026-03-27T00:00:00Z");
    let calls: Vec<NewInteraction> = (0..400)
        .map(|n| {
            let offset = match rng.next(4) {
                0 => TimeDelta::minutes(15 * i64::try_from(rng.next(4 * 24 * 4)).unwrap()),
                _ => TimeDelta::milliseconds(i64::try_from(rng.next(4 * 24 * 3_600_000)).unwrap()),
            };
            let agent = seeded.agents[usize::try_from(rng.next(3)).unwrap()];
            let wait = i64::try_from(rng.next(60_000)).unwrap();
            call(
                n,
                origin + offset,
                rng.next(4),
                wait,
                Some(seeded.campaign),
                Some(agent),
            )
        })
        .collect();
    insert(&app, &seeded, &calls).await;

    // Settings versions: 1 initially, one more per change.
    for (version, zone) in [(1, "Europe/London"), (2, "Asia/Kolkata")] {
        set_timezone(&app, &admin, version, zone).await;
        for (from, to) in [
            // Not aligned to anything.
            (at("2026-03-27T22:37:13.250Z"), at("2026-03-30T01:13:47Z")),
            // The whole local DST day, and whole UTC hours.
            (at("2026-03-29T00:00:00Z"), at("2026-03-29T23:00:00Z")),
            (at("2026-03-27T00:00:00Z"), at("2026-03-31T00:00:00Z")),
            // Inside one hour.
            (at("2026-03-28T10:05:00Z"), at("2026-03-28T10:50:00Z")),
        ] {
            let total = summary(&app, &viewer, filter(from, to)).await;
            assert!(total["offered"].as_i64().unwrap() > 0 || to - from < TimeDelta::hours(1));
            for granularity in ["FIFTEEN_MINUTES", "HOUR", "DAY", "WEEK", "MONTH"] {
                let s = series(&app, &viewer, filter(from, to), granularity).await;
                assert_eq!(s["timezone"], zone);
                let buckets = s["buckets"].as_array().unwrap();
                assert_eq!(
                    bounds(&buckets[0]).0,
                    from,
                    "{zone} {granularity}: the first bucket is clipped to `from`"
                );
                assert_eq!(
                    bounds(&buckets[buckets.len() - 1]).1,
                    to,
                    "{zone} {granularity}: the last is clipped to `to`"
                );
                for pair in buckets.windows(2) {
                    assert_eq!(
                        bounds(&pair[0]).1,
                        bounds(&pair[1]).0,
                        "{zone} {granularity}: contiguous"
                    );
                }
                if granularity == "HOUR" {
                    // Kolkata is UTC+05:30: its hours start at half past UTC hours.
                    let tz: chrono_tz::Tz = zone.parse().unwrap();
                    for b in &buckets[1..] {
                        assert_eq!(bounds(b).0.with_timezone(&tz).minute(), 0, "{zone}: local hours");
                    }
                }
                for field in ADDITIVE {
                    let sum: i64 = buckets.iter().map(|b| b[field].as_i64().unwrap()).sum();
                    assert_eq!(
                        sum,
                        total[field].as_i64().unwrap(),
                        "{zone} {granularity} {field} over {from}..{to}"
                    );
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_organization_sees_only_its_own_calls() {
    let app = TestApp::spawn().await;
    let a = seed_org(&app, "org-a", 1).await;
    let b = seed_org(&app, "org-b", 1).await;
    let day = at("2026-03-10T09:00:00Z");
    let mut calls_a = Vec::new();
    for n in 0..3 {
        calls_a.push(call(
            n,
            day + TimeDelta::minutes(10 * i64::try_from(n).unwrap()),
            0,
            5_000,
            Some(a.campaign),
            Some(a.agents[0]),
        ));
    }
    let mut calls_b = Vec::new();
    for n in 0..5 {
        calls_b.push(call(
            n,
            day + TimeDelta::minutes(7 * i64::try_from(n).unwrap()),
            2,
            5_000,
            Some(b.campaign),
            None,
        ));
    }
    insert(&app, &a, &calls_a).await;
    insert(&app, &b, &calls_b).await;
    let interval = filter(day, day + TimeDelta::hours(2));
    let viewer_a = a.org.token(&app.state, Role::Viewer).await;
    let viewer_b = b.org.token(&app.state, Role::Viewer).await;

    let seen_a = summary(&app, &viewer_a, interval.clone()).await;
    assert_eq!(
        (
            seen_a["offered"].as_i64(),
            seen_a["answered"].as_i64(),
            seen_a["abandoned"].as_i64()
        ),
        (Some(3), Some(3), Some(0))
    );
    let seen_b = summary(&app, &viewer_b, interval.clone()).await;
    assert_eq!(
        (
            seen_b["offered"].as_i64(),
            seen_b["answered"].as_i64(),
            seen_b["abandoned"].as_i64()
        ),
        (Some(5), Some(0), Some(5))
    );
    let series_a = series(&app, &viewer_a, interval.clone(), "HOUR").await;
    let offered: i64 = series_a["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["offered"].as_i64().unwrap())
        .sum();
    assert_eq!(offered, 3);

    // Naming one's own organization is fine; another one is NOT_FOUND for everyone but a SUPER_ADMIN.
    let own = app
        .gql(
            Some(&viewer_a),
            SUMMARY,
            json!({ "f": interval, "org": a.org.id.to_string() }),
        )
        .await;
    assert_eq!(own.ok()["kpiSummary"]["offered"], 3);
    for role in [Role::Viewer, Role::Agent, Role::Supervisor, Role::Admin] {
        let token_a = a.org.token(&app.state, role).await;
        let foreign = app
            .gql(
                Some(&token_a),
                SUMMARY,
                json!({ "f": interval, "org": b.org.id.to_string() }),
            )
            .await;
        assert_eq!(foreign.error_code(), Some("NOT_FOUND"), "{role}: {}", foreign.body);
        assert!(foreign.body["data"].is_null() || foreign.body["data"]["kpiSummary"].is_null());
        let foreign = app
            .gql(
                Some(&token_a),
                SERIES,
                json!({ "f": interval, "g": "HOUR", "org": b.org.id.to_string() }),
            )
            .await;
        assert_eq!(foreign.error_code(), Some("NOT_FOUND"), "{role}: {}", foreign.body);
    }
    let malformed = app
        .gql(Some(&viewer_a), SUMMARY, json!({ "f": interval, "org": "not-an-id" }))
        .await;
    assert_eq!(malformed.error_code(), Some("NOT_FOUND"), "{}", malformed.body);
    let super_admin = a.org.token(&app.state, Role::SuperAdmin).await;
    let across = app
        .gql(
            Some(&super_admin),
            SUMMARY,
            json!({ "f": interval, "org": b.org.id.to_string() }),
        )
        .await;
    assert_eq!(
        across.ok()["kpiSummary"]["offered"],
        5,
        "a SUPER_ADMIN may read another organization"
    );

    // Another tenant's ids in a filter are unknown ids, named by field.
    let mut foreign = interval.clone();
    foreign["campaignIds"] = json!([b.campaign.to_string()]);
    let response = app.gql(Some(&viewer_a), SUMMARY, json!({ "f": foreign })).await;
    assert_bad_input(&response, "filter.campaignIds[0]");
    let mut foreign = interval.clone();
    foreign["agentIds"] = json!([a.agents[0].to_string(), b.agents[0].to_string()]);
    let response = app.gql(Some(&viewer_a), SUMMARY, json!({ "f": foreign })).await;
    assert_bad_input(&response, "filter.agentIds[1]");
    assert!(
        !fields(&response).contains(&"filter.agentIds[0]".to_owned()),
        "A's own agent is fine"
    );
    let mut foreign = interval.clone();
    foreign["teamIds"] = json!([b.team.to_string()]);
    let response = app
        .gql(Some(&viewer_a), SERIES, json!({ "f": foreign, "g": "HOUR" }))
        .await;
    assert_bad_input(&response, "filter.teamIds[0]");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_filters_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let seeded = seed_org(&app, "filters", 1).await;
    let viewer = seeded.org.token(&app.state, Role::Viewer).await;
    let from = at("2026-03-10T09:00:00Z");
    let ask = |f: Value| app.gql(Some(&viewer), SUMMARY, json!({ "f": f }));

    assert_bad_input(&ask(filter(from, from - TimeDelta::seconds(1))).await, "filter.to");
    assert_bad_input(&ask(filter(from, from)).await, "filter.to");
    assert_bad_input(
        &ask(filter(from, from + TimeDelta::days(400) + TimeDelta::seconds(1))).await,
        "filter.to",
    );
    ask(filter(from, from + TimeDelta::days(400))).await.ok();

    let mut f = filter(from, from + TimeDelta::hours(1));
    f["agentIds"] = json!(["not-a-uuid"]);
    assert_bad_input(&ask(f).await, "filter.agentIds[0]");
    let mut f = filter(from, from + TimeDelta::hours(1));
    f["agentIds"] = json!([seeded.agents[0].to_string(), "42"]);
    assert_bad_input(&ask(f).await, "filter.agentIds[1]");
    let mut f = filter(from, from + TimeDelta::hours(1));
    f["campaignIds"] = json!([Uuid::new_v4().to_string()]);
    assert_bad_input(&ask(f).await, "filter.campaignIds[0]");
    let mut f = filter(from, from + TimeDelta::hours(1));
    f["teamIds"] = json!([Uuid::new_v4().to_string()]);
    assert_bad_input(&ask(f).await, "filter.teamIds[0]");
    // Several problems at once are all named.
    let mut f = filter(from, from - TimeDelta::hours(1));
    f["campaignIds"] = json!(["nope"]);
    let response = ask(f).await;
    assert_bad_input(&response, "filter.to");
    assert_bad_input(&response, "filter.campaignIds[0]");

    // A series with too many buckets names the granularity; a coarser one is accepted.
    let sixty_days = filter(from, from + TimeDelta::days(60));
    let response = app
        .gql(
            Some(&viewer),
            SERIES,
            json!({ "f": sixty_days, "g": "FIFTEEN_MINUTES" }),
        )
        .await;
    assert_bad_input(&response, "granularity");
    let response = app
        .gql(Some(&viewer), SERIES, json!({ "f": sixty_days, "g": "HOUR" }))
        .await;
    assert_eq!(response.ok()["kpiSeries"]["buckets"].as_array().unwrap().len(), 60 * 24);
    let response = app
        .gql(
            Some(&viewer),
            SERIES,
            json!({ "f": filter(from, from - TimeDelta::days(1)), "g": "DAY" }),
        )
        .await;
    assert_bad_input(&response, "filter.to");

    // Valid but odd intervals (far past, beyond chrono's nanosecond range, far future): answered,
    // never a 500.
    for (from, to) in [
        ("0001-01-01T00:00:00Z", "0001-01-02T00:00:00Z"),
        ("2300-01-01T00:30:00Z", "2300-01-01T05:00:00Z"),
        ("9999-12-30T00:00:00Z", "9999-12-31T23:59:59Z"),
    ] {
        let f = json!({ "from": from, "to": to });
        assert_eq!(ask(f.clone()).await.ok()["kpiSummary"]["offered"], 0, "{from}..{to}");
        for g in ["FIFTEEN_MINUTES", "HOUR", "DAY", "WEEK", "MONTH"] {
            let response = app.gql(Some(&viewer), SERIES, json!({ "f": f, "g": g })).await;
            assert!(
                !response.ok()["kpiSeries"]["buckets"].as_array().unwrap().is_empty(),
                "{g} {from}..{to}"
            );
        }
    }

    // Malformed values the schema itself refuses: an error, never a 500.
    for f in [
        json!({ "from": "2026-13-01T00:00:00Z", "to": "2026-03-10T10:00:00Z" }),
        json!({ "from": "2026-03-10T09:00:00Z" }),
        json!({ "from": "2026-03-10T09:00:00Z", "to": "2026-03-10T10:00:00Z", "direction": "SIDEWAYS" }),
    ] {
        let response = ask(f).await;
        assert_ne!(response.status, 500, "{}", response.body);
        assert!(response.body["errors"].is_array(), "{}", response.body);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_role_can_read_kpis_and_anonymous_callers_cannot() {
    let app = TestApp::spawn().await;
    let seeded = seed_org(&app, "guards", 1).await;
    insert(
        &app,
        &seeded,
        &[call(
            0,
            at("2026-03-10T09:15:00Z"),
            0,
            1_000,
            Some(seeded.campaign),
            Some(seeded.agents[0]),
        )],
    )
    .await;
    let interval = filter(at("2026-03-10T09:00:00Z"), at("2026-03-10T10:00:00Z"));
    for role in Role::ALL {
        // A real login for each role, as a client would.
        let token = app.token(&seeded.org, role).await;
        let response = app.gql(Some(&token), SUMMARY, json!({ "f": interval })).await;
        assert_eq!(response.ok()["kpiSummary"]["offered"], 1, "{role}");
        let response = app
            .gql(Some(&token), SERIES, json!({ "f": interval, "g": "FIFTEEN_MINUTES" }))
            .await;
        assert_eq!(
            response.ok()["kpiSeries"]["buckets"].as_array().unwrap().len(),
            4,
            "{role}"
        );
    }
    let anonymous = app.gql(None, SUMMARY, json!({ "f": interval })).await;
    assert_eq!(anonymous.error_code(), Some("UNAUTHENTICATED"), "{}", anonymous.body);
    let anonymous = app.gql(None, SERIES, json!({ "f": interval, "g": "HOUR" })).await;
    assert_eq!(anonymous.error_code(), Some("UNAUTHENTICATED"), "{}", anonymous.body);
    let forged = app.gql(Some("not-a-token"), SUMMARY, json!({ "f": interval })).await;
    assert_eq!(forged.error_code(), Some("UNAUTHENTICATED"), "{}", forged.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn team_filters_follow_the_agents_current_team() {
    let app = TestApp::spawn().await;
    let seeded = seed_org(&app, "teams", 2).await;
    let viewer = seeded.org.token(&app.state, Role::Viewer).await;
    let (x, y) = (seeded.agents[0], seeded.agents[1]);
    let mut conn = app.state.system_db.get().await.unwrap();
    let blue = cc::insert_team(&mut conn, &seeded.tenant, "Blue").await.unwrap();
    diesel::sql_query("UPDATE agents SET team_id = $1 WHERE id = $2")
        .bind::<diesel::sql_types::Uuid, _>(blue)
        .bind::<diesel::sql_types::Uuid, _>(y)
        .execute(&mut conn)
        .await
        .unwrap();
    let t0 = at("2026-03-10T09:00:00Z");
    let c = Some(seeded.campaign);
    insert(
        &app,
        &seeded,
        &[
            call(0, t0 + TimeDelta::minutes(5), 0, 1_000, c, Some(x)),
            call(1, t0 + TimeDelta::minutes(65), 0, 1_000, c, Some(x)),
            call(2, t0 + TimeDelta::minutes(125), 0, 1_000, c, Some(y)),
        ],
    )
    .await;
    let with = |teams: Vec<Uuid>, agents: Option<Vec<Uuid>>| {
        let mut f = filter(t0, t0 + TimeDelta::hours(2) + TimeDelta::minutes(7));
        f["teamIds"] = json!(teams.iter().map(Uuid::to_string).collect::<Vec<_>>());
        if let Some(agents) = agents {
            f["agentIds"] = json!(agents.iter().map(Uuid::to_string).collect::<Vec<_>>());
        }
        f
    };
    assert_eq!(
        summary(&app, &viewer, with(vec![seeded.team], None)).await["offered"],
        2
    );
    assert_eq!(summary(&app, &viewer, with(vec![blue], None)).await["offered"], 1);
    assert_eq!(
        summary(&app, &viewer, with(vec![seeded.team, blue], None)).await["offered"],
        3
    );
    // Team and agent filters combine with AND.
    assert_eq!(
        summary(&app, &viewer, with(vec![blue], Some(vec![x]))).await["offered"],
        0
    );
    assert_eq!(
        summary(&app, &viewer, with(vec![seeded.team], Some(vec![x, y]))).await["offered"],
        2
    );

    // X moves to Blue: past calls follow the agent's current team.
    diesel::sql_query("UPDATE agents SET team_id = $1 WHERE id = $2")
        .bind::<diesel::sql_types::Uuid, _>(blue)
        .bind::<diesel::sql_types::Uuid, _>(x)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        summary(&app, &viewer, with(vec![seeded.team], None)).await["offered"],
        0
    );
    assert_eq!(summary(&app, &viewer, with(vec![blue], None)).await["offered"], 3);
    let hourly = series(&app, &viewer, with(vec![blue], None), "HOUR").await;
    let counts: Vec<i64> = hourly["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["offered"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, vec![1, 1, 1]);
}

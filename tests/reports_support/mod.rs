//! Shared helpers of the report tests (tests/reports.rs, tests/report_exports.rs,
//! tests/report_files.rs): the GraphQL documents, report inputs, a seeded organization, the
//! `analytics` answer to compare exports with, and reads of the stored reports and their audit.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use super::common;
use chrono::{DateTime, TimeDelta, Utc};
use common::fixture::{AgentSpec, CampaignSpec, DispositionSpec, FixtureOrg};
use common::{GqlResponse, TestApp};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use omnivox::db::contact_centre::NewStateInterval;
use omnivox::db::interactions::NewInteraction;
use omnivox::domain::{AgentState, Direction, Outcome, Presence};
use omnivox::kpi::writer::{insert_calls, insert_state_intervals};
use serde_json::{json, Value};

pub const REPORT_FIELDS: &str = "id title description shared ownerId version templateKey canEdit
    query { metrics groupBy filter { campaignIds direction } granularity orderBy { metric dimension bucketStart direction } limit }
    range { relative from to }
    presentation { columns { metric dimension bucket key label } totals chart { kind series } }";

pub const CREATE: &str = "mutation($i: ReportInput!) { createReport(input: $i) { id version title shared } }";
pub const UPDATE: &str =
    "mutation($id: ID!, $v: Int!, $i: ReportInput!) { updateReport(id: $id, expectedVersion: $v, input: $i) { id version title shared } }";
pub const DUPLICATE: &str = "mutation($id: ID!) { duplicateReport(id: $id) { id title shared ownerId version } }";
pub const DELETE: &str = "mutation($id: ID!) { deleteReport(id: $id) }";
pub const GET: &str = "query($id: ID!) { report(id: $id) { id title version } }";
pub const LIST: &str = "{ reports { id title } }";

/// Every field of `AnalyticsResult`, to compare a report's result with `analytics`.
pub const RESULT: &str = "start end timezone serviceLevelVariant serviceLevelThresholdSeconds
    metrics { name unit formula } groupBy granularity totalRows truncated
    rows { dimensions { campaign { id name } agent { id name } team { id name } direction
      disposition { id code label } date hourOfDay dayOfWeek bucketStart bucketEnd }
      values explain { metric value numerator denominator } }";

pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// A report input: `query` and `range` as given, the rest defaulted.
pub fn input(title: &str, query: Value, range: Value) -> Value {
    json!({ "title": title, "query": query, "range": range })
}

pub fn agents_yesterday() -> Value {
    input(
        "Agents yesterday",
        json!({ "metrics": ["HANDLED", "SERVICE_LEVEL"], "groupBy": ["AGENT"] }),
        json!({ "relative": "YESTERDAY" }),
    )
}

pub async fn create(app: &TestApp, token: &str, input: Value) -> GqlResponse {
    app.gql(Some(token), CREATE, json!({ "i": input })).await
}

pub async fn created_id(app: &TestApp, token: &str, input: Value) -> String {
    let response = create(app, token, input).await;
    response.ok()["createReport"]["id"].as_str().unwrap().to_owned()
}

pub fn ids(response: &GqlResponse) -> Vec<String> {
    response.ok()["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

pub async fn db(app: &TestApp) -> AsyncPgConnection {
    AsyncPgConnection::establish(&app.database.url).await.unwrap()
}

#[derive(diesel::QueryableByName)]
pub struct Audit {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub action: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub details: String,
}

pub async fn report_audit(app: &TestApp) -> Vec<Audit> {
    diesel::sql_query(
        "SELECT action, details::text AS details FROM audit_log WHERE action LIKE 'report.%' ORDER BY occurred_at, chain_seq",
    )
    .load(&mut db(app).await)
    .await
    .unwrap()
}

#[derive(diesel::QueryableByName)]
pub struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub n: i64,
}

pub async fn stored_reports(app: &TestApp) -> i64 {
    let row: Count = diesel::sql_query("SELECT count(*) AS n FROM reports")
        .get_result(&mut db(app).await)
        .await
        .unwrap();
    row.n
}

pub fn field_of(response: &GqlResponse) -> Vec<String> {
    response.body["errors"][0]["extensions"]["fields"]
        .as_array()
        .map(|fields| {
            fields
                .iter()
                .map(|f| f["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// An organization in London with calls on 5 and 6 January 2026 (GMT) and yesterday, and agent
/// time: three agents in two teams, two campaigns.
pub async fn seeded(app: &TestApp, slug: &str) -> FixtureOrg {
    seeded_in(app, slug, "Europe/London").await
}

/// [`seeded`] for an organization in `timezone` (the days are the same UTC instants).
pub async fn seeded_in(app: &TestApp, slug: &str, timezone: &str) -> FixtureOrg {
    let tz: chrono_tz::Tz = timezone.parse().unwrap();
    let org = FixtureOrg::builder(slug)
        .timezone(timezone)
        .teams(["Blue", "Red"])
        .agent(AgentSpec::new("Alice").team(0))
        .agent(AgentSpec::new("Bob").team(0))
        .agent(AgentSpec::new("Carol, \"CJ\"").team(1))
        .campaign(CampaignSpec::inbound("Care"))
        .campaign(CampaignSpec::outbound("Sales"))
        .disposition(DispositionSpec::new("SALE").label("Sale").contact().success())
        .created_at(at("2025-12-01T00:00:00Z"))
        .build(&app.state)
        .await;
    let yesterday_noon = {
        let (from, _) = omnivox::reports::range::resolve(omnivox::reports::RelativeRange::Yesterday, tz, Utc::now());
        from + TimeDelta::hours(12)
    };
    let mut calls = Vec::new();
    let mut intervals = Vec::new();
    for (d, day) in [
        at("2026-01-05T00:00:00Z"),
        at("2026-01-06T00:00:00Z"),
        yesterday_noon - TimeDelta::hours(12),
    ]
    .into_iter()
    .enumerate()
    {
        for (a, agent) in org.agents.iter().enumerate() {
            let start = day + TimeDelta::hours(8);
            intervals.push(NewStateInterval {
                agent_id: *agent,
                state: AgentState::Presence(Presence::Available),
                reason: None,
                started_at: start,
                ended_at: Some(start + TimeDelta::hours(6 + a as i64)),
            });
            for k in 0..(3 + a + d) {
                let offered = start + TimeDelta::minutes((k * 37 + a * 11) as i64);
                let wait = ((k * 13 + a * 7 + d) % 50) as i64;
                let answered = (k + a) % 4 != 3;
                let inbound = (k + d) % 3 != 0;
                let talk = 60 + ((k * 41 + a * 17) % 240) as i64;
                let mut call = NewInteraction::offered(
                    format!("CA-{d}-{a}-{k}"),
                    if inbound {
                        Direction::Inbound
                    } else {
                        Direction::Outbound
                    },
                    offered,
                    if answered {
                        Outcome::Answered
                    } else {
                        Outcome::Abandoned
                    },
                );
                call.campaign_id = Some(org.campaigns[usize::from(!inbound)]);
                call.wait_ms = Some(wait * 1_000);
                if answered {
                    let answered_at = offered + TimeDelta::seconds(wait);
                    let ended = answered_at + TimeDelta::seconds(talk);
                    call.agent_id = Some(*agent);
                    call.answered_at = Some(answered_at);
                    call.ended_at = Some(ended);
                    call.wrap_ended_at = Some(ended + TimeDelta::seconds(20));
                    call.talk_ms = talk * 1_000;
                    call.wrap_ms = 20_000;
                    call.disposition_id = (k % 2 == 0).then(|| org.dispositions[0]);
                } else {
                    call.ended_at = Some(offered + TimeDelta::seconds(wait));
                }
                calls.push(call);
            }
        }
    }
    let mut conn = app.state.system_db.get().await.unwrap();
    insert_calls(&mut conn, &org.tenant, &calls).await.unwrap();
    insert_state_intervals(&mut conn, &org.tenant, &intervals)
        .await
        .unwrap();
    org
}

/// `analytics` for a query over `[from, to)`, every field.
pub async fn analytics(app: &TestApp, token: &str, query: &Value, from: &Value, to: &Value) -> Value {
    let mut query = query.clone();
    let filter = query["filter"].as_object().cloned().unwrap_or_default();
    let mut filter = Value::Object(filter);
    filter["from"] = from.clone();
    filter["to"] = to.clone();
    query["filter"] = filter;
    let response = app
        .gql(
            Some(token),
            &format!("query($q: AnalyticsQuery!) {{ analytics(query: $q) {{ {RESULT} }} }}"),
            json!({ "q": query }),
        )
        .await;
    response.ok()["analytics"].clone()
}

/// A GET with the bearer `token`, if any.
pub async fn get(app: &TestApp, token: Option<&str>, path: &str) -> reqwest::Response {
    let mut request = app.http.get(app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// The CSV report of the export tests: columns reordered and relabelled, a totals row.
pub fn export_report() -> Value {
    json!({
        "title": "Agents by day",
        "shared": true,
        "query": { "metrics": ["OFFERED", "HANDLED", "SERVICE_LEVEL", "AVERAGE_HANDLE_TIME", "OCCUPANCY", "LONGEST_WAIT"],
                   "groupBy": ["AGENT"], "granularity": "DAY" },
        "range": { "relative": "LAST_7_DAYS" },
        "presentation": {
            "columns": [
                { "dimension": "AGENT", "label": "Agent" },
                { "bucket": "START", "label": "Day" },
                { "metric": "HANDLED", "label": "Handled calls" },
                { "metric": "SERVICE_LEVEL", "label": "SL, %" },
                { "metric": "OFFERED" },
                { "metric": "AVERAGE_HANDLE_TIME" },
                { "metric": "OCCUPANCY" },
                { "metric": "LONGEST_WAIT" }
            ],
            "totals": true
        }
    })
}

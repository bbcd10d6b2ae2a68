//! Shared helpers of the report tests (tests/reports.rs, tests/report_exports.rs): the
//! GraphQL documents, report inputs, and reads of the stored reports and their audit.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use super::common;
use chrono::{DateTime, Utc};
use common::{GqlResponse, TestApp};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
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

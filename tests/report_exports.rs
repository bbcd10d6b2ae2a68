//! A saved report's figures, over HTTP against a real PostgreSQL: its result equal to
//! `analytics` for the same query and interval; CSV and JSON exports read back value for value;
//! exports authenticated by token or API key, with the right status and code.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod common;
mod reports_support;

use reports_support::*;

use chrono::DateTime;
use common::TestApp;
use omnivox::auth::Role;
use serde_json::{json, Value};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread")]
async fn a_reports_result_is_the_analytics_answer_for_the_same_query_and_range() {
    let app = TestApp::spawn().await;
    let org = seeded(&app, "represult").await;
    let supervisor = org.token(&app.state, Role::Supervisor).await;
    let queries = [
        json!({ "metrics": ["OFFERED", "HANDLED", "SERVICE_LEVEL", "AVERAGE_HANDLE_TIME", "OCCUPANCY"],
                "groupBy": ["TEAM", "AGENT"], "orderBy": [{ "metric": "HANDLED", "direction": "DESC" }] }),
        json!({ "metrics": ["OFFERED", "ABANDONED", "ABANDON_RATE", "LONGEST_WAIT"], "groupBy": ["CAMPAIGN"],
                "granularity": "DAY", "filter": { "direction": "INBOUND", "campaignIds": [org.campaigns[0]] } }),
        json!({ "metrics": ["OFFERED", "HANDLED"], "groupBy": ["DISPOSITION", "HOUR_OF_DAY"], "limit": 3 }),
    ];
    let ranges = [
        json!({ "from": "2026-01-05T00:00:00Z", "to": "2026-01-07T00:00:00Z" }),
        json!({ "relative": "YESTERDAY" }),
        json!({ "relative": "LAST_7_DAYS" }),
    ];
    let mut compared_rows = 0;
    for query in &queries {
        for range in &ranges {
            let id = created_id(&app, &supervisor, input("Compare", query.clone(), range.clone())).await;
            let result = app
                .gql(
                    Some(&supervisor),
                    &format!("query($id: ID!) {{ report(id: $id) {{ result {{ {RESULT} }} }} }}"),
                    json!({ "id": id }),
                )
                .await;
            let result = result.ok()["report"]["result"].clone();
            let direct = analytics(&app, &supervisor, query, &result["start"], &result["end"]).await;
            assert_eq!(result, direct, "{query} over {range}");
            compared_rows += result["rows"].as_array().unwrap().len();
            if let Some(from) = range.get("from") {
                assert_eq!(result["start"].as_str().map(at), from.as_str().map(at));
            }
        }
    }
    assert!(
        compared_rows > 10,
        "the comparison covered too few rows: {compared_rows}"
    );

    // A range given at run time replaces the report's.
    let id = created_id(
        &app,
        &supervisor,
        input("Override", queries[0].clone(), ranges[1].clone()),
    )
    .await;
    let over = app
        .gql(
            Some(&supervisor),
            &format!(
                "query($id: ID!) {{ report(id: $id) {{ result(range: {{ from: \"2026-01-05T00:00:00Z\", to: \"2026-01-06T00:00:00Z\" }}) {{ {RESULT} }} }} }}"
            ),
            json!({ "id": id }),
        )
        .await;
    let over = over.ok()["report"]["result"].clone();
    let from = json!("2026-01-05T00:00:00+00:00");
    let to = json!("2026-01-06T00:00:00+00:00");
    let direct = analytics(&app, &supervisor, &queries[0], &from, &to).await;
    assert_eq!(over, direct);
    assert!(!over["rows"].as_array().unwrap().is_empty());
    let bad = app
        .gql(
            Some(&supervisor),
            "query($id: ID!) { report(id: $id) { result(range: { relative: TODAY, from: \"2026-01-05T00:00:00Z\" }) { totalRows } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(field_of(&bad), ["range"]);
}

/// A CSV cell's number, read by the parser that read the GraphQL answers (serde_json's
/// default one, which may land one ULP off the exact value): the same text then gives the same
/// number on both sides, so equal numbers mean equal texts, i.e. equal values.
fn number(cell: &str) -> Option<f64> {
    (!cell.is_empty()).then(|| serde_json::from_str::<f64>(cell).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_csv_export_reads_back_as_the_analytics_answer_value_for_value() {
    let app = TestApp::spawn().await;
    let org = seeded(&app, "repcsv").await;
    let supervisor = org.token(&app.state, Role::Supervisor).await;
    let report = export_report();
    let id = created_id(&app, &supervisor, report.clone()).await;
    let (from, to) = ("2026-01-05T00:00:00Z", "2026-01-07T00:00:00Z");
    let response = get(
        &app,
        Some(&supervisor),
        &format!("/api/reports/{id}.csv?from={from}&to={to}"),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("agents-by-day.csv"));
    let body = response.bytes().await.unwrap();
    assert!(!body.starts_with(b"\xEF\xBB\xBF"), "no BOM unless asked");
    assert!(body.windows(2).any(|w| w == b"\r\n"), "RFC 4180 line ends");
    let mut reader = csv::Reader::from_reader(&body[..]);
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        header,
        [
            "Agent",
            "Day",
            "Handled calls",
            "SL, %",
            "Offered",
            "Average handle time (s)",
            "Occupancy %",
            "Longest wait (s)"
        ]
    );
    let records: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();

    let direct = analytics(&app, &supervisor, &report["query"], &json!(from), &json!(to)).await;
    let rows = direct["rows"].as_array().unwrap();
    assert_eq!(records.len(), rows.len() + 1, "the rows and a totals row");
    assert!(rows.len() >= 6);
    // Analytics' metrics order: OFFERED, HANDLED, SERVICE_LEVEL, AHT, OCCUPANCY, LONGEST_WAIT.
    let csv_column_of_metric = [4, 2, 3, 5, 6, 7];
    for (row, record) in rows.iter().zip(&records) {
        assert_eq!(record[0], row["dimensions"]["agent"]["name"].as_str().unwrap());
        let day = DateTime::parse_from_rfc3339(&record[1]).unwrap();
        assert_eq!(day.offset().local_minus_utc(), 0, "January in London: +00:00");
        assert_eq!(Some(day.to_utc()), row["dimensions"]["bucketStart"].as_str().map(at));
        for (m, column) in csv_column_of_metric.iter().enumerate() {
            assert_eq!(
                number(&record[*column]),
                row["values"][m].as_f64(),
                "{record:?} vs {row}"
            );
        }
    }
    assert!(
        records.iter().any(|r| r[0] == "Carol, \"CJ\""),
        "quoted names read back"
    );
    // Totals: counts are the rows' sums; ratios are the ungrouped answer, not a sum.
    let totals = records.last().unwrap();
    assert_eq!((totals[0].as_str(), totals[1].as_str()), ("Total", ""));
    let sum = |m: usize| rows.iter().map(|r| r["values"][m].as_f64().unwrap()).sum::<f64>();
    assert_eq!(number(&totals[4]), Some(sum(0)));
    assert_eq!(number(&totals[2]), Some(sum(1)));
    let mut whole = report["query"].clone();
    whole["groupBy"] = json!([]);
    whole["granularity"] = Value::Null;
    let whole = analytics(&app, &supervisor, &whole, &json!(from), &json!(to)).await;
    for (m, column) in csv_column_of_metric.iter().enumerate() {
        assert_eq!(
            number(&totals[*column]),
            whole["rows"][0]["values"][m].as_f64(),
            "metric {m}"
        );
    }
    let service_level_sum: f64 = rows.iter().filter_map(|r| r["values"][2].as_f64()).sum();
    assert_ne!(
        number(&totals[3]),
        Some(service_level_sum),
        "a ratio's total is not a sum"
    );

    // Excel's BOM on request; the JSON export has the same cells.
    let bom = get(
        &app,
        Some(&supervisor),
        &format!("/api/reports/{id}.csv?from={from}&to={to}&bom=1"),
    )
    .await;
    let bom = bom.bytes().await.unwrap();
    assert!(bom.starts_with(b"\xEF\xBB\xBF"));
    assert_eq!(&bom[3..], &body[..]);
    let json_export = get(
        &app,
        Some(&supervisor),
        &format!("/api/reports/{id}.json?from={from}&to={to}"),
    )
    .await;
    assert_eq!(json_export.headers()["content-type"], "application/json");
    let doc: Value = json_export.json().await.unwrap();
    assert_eq!(
        doc["columns"][2],
        json!({ "key": "HANDLED", "label": "Handled calls", "unit": "COUNT" })
    );
    assert_eq!(doc["rows"].as_array().unwrap().len(), rows.len());
    assert_eq!(doc["rows"][0][2].as_f64(), rows[0]["values"][1].as_f64());
    assert_eq!(doc["totals"][0], "Total");
    assert_eq!(doc["timezone"], "Europe/London");

    // Each export is audited: who, which report, which interval.
    let exports: Vec<Audit> = report_audit(&app)
        .await
        .into_iter()
        .filter(|a| a.action == "report.export")
        .collect();
    assert_eq!(exports.len(), 3);
    assert!(exports[0].details.contains("\"csv\"") && exports[0].details.contains("2026-01-05T00:00:00"));
    assert!(exports[2].details.contains("\"json\""));
}

/// Creates an API key as `admin`; returns its secret.
async fn api_key(app: &TestApp, admin: &str, scopes: &[&str]) -> String {
    let created = app
        .gql(
            Some(admin),
            "mutation($s: [String!]!) { createApiKey(name: \"BI\", scopes: $s) { secret } }",
            json!({ "s": scopes }),
        )
        .await;
    created.ok()["createApiKey"]["secret"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn exports_answer_tokens_and_keys_with_the_right_status_and_code() {
    let app = TestApp::spawn().await;
    let org = seeded(&app, "repauth").await;
    let other = app.create_org("repauthother").await;
    let admin = org.token(&app.state, Role::Admin).await;
    let supervisor = org.token(&app.state, Role::Supervisor).await;
    let viewer = org.token(&app.state, Role::Viewer).await;
    let agent = org.token(&app.state, Role::Agent).await;
    let id = created_id(&app, &supervisor, export_report()).await;
    let private = created_id(&app, &supervisor, agents_yesterday()).await;
    let path = format!("/api/reports/{id}.csv");
    let reports_key = api_key(&app, &admin, &["reports:read"]).await;
    let kpi_key = api_key(&app, &admin, &["kpi:read", "realtime:read"]).await;

    async fn code(response: reqwest::Response) -> (u16, String) {
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        (
            status,
            body["errors"][0]["extensions"]["code"]
                .as_str()
                .unwrap_or("-")
                .to_owned(),
        )
    }
    let expect = |status: u16, code: &str| (status, code.to_owned());
    assert_eq!(code(get(&app, None, &path).await).await, expect(401, "UNAUTHENTICATED"));
    assert_eq!(
        code(get(&app, Some("forged"), &path).await).await,
        expect(401, "UNAUTHENTICATED")
    );
    assert_eq!(
        code(get(&app, Some(&kpi_key), &path).await).await,
        expect(403, "FORBIDDEN")
    );
    assert_eq!(
        code(get(&app, Some(&agent), &path).await).await,
        expect(403, "FORBIDDEN")
    );
    assert_eq!(
        code(get(&app, Some(&viewer), &format!("/api/reports/{private}.csv")).await).await,
        expect(404, "NOT_FOUND")
    );
    let foreign = other.token(&app.state, Role::Admin).await;
    assert_eq!(
        code(get(&app, Some(&foreign), &path).await).await,
        expect(404, "NOT_FOUND")
    );
    assert_eq!(
        code(get(&app, Some(&supervisor), &format!("/api/reports/{}.csv", Uuid::new_v4())).await).await,
        expect(404, "NOT_FOUND")
    );
    assert_eq!(
        code(get(&app, Some(&supervisor), &format!("/api/reports/{id}.xls")).await).await,
        expect(404, "NOT_FOUND")
    );
    let bad = get(
        &app,
        Some(&supervisor),
        &format!("{path}?from=yesterday&to=2026-01-07T00:00:00Z"),
    )
    .await;
    assert_eq!(bad.status(), 400);
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(bad["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert_eq!(bad["errors"][0]["extensions"]["fields"][0]["field"], "from");
    let reversed = get(
        &app,
        Some(&supervisor),
        &format!("{path}?from=2026-01-07T00:00:00Z&to=2026-01-05T00:00:00Z"),
    )
    .await;
    let reversed: Value = reversed.json().await.unwrap();
    assert_eq!(reversed["errors"][0]["extensions"]["fields"][0]["field"], "to");

    // A reports:read key pulls the CSV (over the report's own range), and a VIEWER the shared
    // report; the key's export is audited with the key.
    for token in [&reports_key, &viewer] {
        let response = get(&app, Some(token.as_str()), &path).await;
        assert_eq!(response.status(), 200);
        let body = response.text().await.unwrap();
        assert!(body.starts_with("Agent,Day,Handled calls"), "{body}");
    }
    let audit = report_audit(&app).await;
    assert!(
        audit
            .iter()
            .any(|a| a.action == "report.export" && !a.details.contains("\"apiKeyId\": null")),
        "the key's export names the key"
    );
    assert!(audit
        .iter()
        .any(|a| a.action == "report.export" && a.details.contains("\"apiKeyId\": null")));

    // Through GraphQL, reports:read reaches the reports and their results; kpi:read does not.
    let read =
        format!("{{ reports {{ id }} report(id: \"{id}\") {{ result {{ totalRows }} }} reportTemplates {{ key }} }}");
    app.gql(Some(&reports_key), &read, json!({})).await.ok();
    let refused = app.gql(Some(&kpi_key), &read, json!({})).await;
    assert_eq!(refused.error_code(), Some("FORBIDDEN"));
    let write = app
        .gql(Some(&reports_key), CREATE, json!({ "i": agents_yesterday() }))
        .await;
    assert_eq!(write.error_code(), Some("FORBIDDEN"), "keys never write reports");
}

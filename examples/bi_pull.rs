//! A BI pull: an example client of Omnivox's `analytics` query, the way a reporting job or a
//! spreadsheet import uses it.
//!
//! It sends `POST /graphql` with `Authorization: Bearer <token>` (an access token, or an `ovx_`
//! API key with the `reports:read` scope), reads the organization's time zone, then asks
//! `analytics` for the chosen metrics per local date and agent over the last `--days` days
//! (today included), and writes CSV to stdout or `--out FILE`: one row per (date, agent) that
//! has calls, calls without an agent in an `(no agent)` row. `analytics` has no cursor, it
//! returns at most `limit` rows: the pull asks one local day at a time (a page each), so a page
//! holds one row per agent, and it stops with an error if a day would still be cut short.
//!
//! Errors of the API are printed to stderr with their `extensions.code`, and the exit status
//! is 1; nothing is written then (the CSV is written once every page has arrived).
//!
//! Against `cargo run --release -- demo` (sign in as `supervisor@demo.example`, or create a
//! key with `createApiKey(name: "BI", scopes: ["reports:read"])`):
//!
//! ```sh
//! cargo run --example bi_pull -- --token ovx_… --days 7 --out agents.csv
//! cargo run --example bi_pull -- --token ovx_… --metrics OFFERED,HANDLED,AVERAGE_HANDLE_TIME
//! ```
//!
//! It depends on nothing of Omnivox: only HTTP and JSON (plain `http://`; this build has no TLS).

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use clap::Parser;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(about = "Pulls analytics per agent and day over GraphQL and writes CSV")]
struct Args {
    /// Where Omnivox serves; its `/graphql` endpoint is used.
    #[arg(long, env = "OMNIVOX_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An access token, or an `ovx_` API key with the `reports:read` scope.
    #[arg(long, env = "OMNIVOX_TOKEN", hide_env_values = true)]
    token: String,
    /// Days to pull, ending today (in the organization's time zone), today included.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=400))]
    days: u32,
    /// `MetricName`s of the schema, comma-separated; one CSV column each, in this order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "OFFERED,ANSWERED,ABANDONED,HANDLED,SERVICE_LEVEL,AVERAGE_SPEED_OF_ANSWER,AVERAGE_HANDLE_TIME"
    )]
    metrics: Vec<String>,
    /// Write the CSV to this file instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
}

const HTTP_TIMEOUT: Duration = Duration::from_secs(60);
/// The most rows `analytics` returns at once.
const PAGE_LIMIT: u32 = 10_000;

const ORGANIZATION: &str = "query Organization { organization { name timezone } }";
const ANALYTICS: &str = "query AgentDays($query: AnalyticsQuery!) {
  analytics(query: $query) {
    timezone truncated totalRows
    metrics { name unit }
    rows { dimensions { date agent { id name } } values }
  }
}";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Analytics {
    truncated: bool,
    total_rows: i64,
    metrics: Vec<Metric>,
    rows: Vec<Row>,
}

#[derive(Debug, Deserialize)]
struct Metric {
    name: String,
}

#[derive(Debug, Deserialize)]
struct Row {
    dimensions: Dimensions,
    values: Vec<Option<f64>>,
}

#[derive(Debug, Deserialize)]
struct Dimensions {
    date: Option<NaiveDate>,
    agent: Option<Entity>,
}

#[derive(Debug, Deserialize)]
struct Entity {
    id: Option<String>,
    name: String,
}

/// A GraphQL client of one endpoint and one token.
struct Api {
    http: reqwest::Client,
    endpoint: String,
    token: String,
}

impl Api {
    /// `data` of the answer; the API's errors, each with its `extensions.code`, as the message.
    async fn query(&self, query: &str, variables: Value) -> Result<Value, String> {
        let response = self
            .http
            .post(&self.endpoint)
            .bearer_auth(&self.token)
            .header("accept", "application/graphql-response+json, application/json")
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .map_err(|e| format!("POST {}: {e}", self.endpoint))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| format!("POST {}: HTTP {status}, reading the body: {e}", self.endpoint))?;
        let body: Value = serde_json::from_str(&text)
            .map_err(|_| format!("POST {}: HTTP {status}, not a GraphQL response: {text}", self.endpoint))?;
        if let Some(errors) = body.get("errors").and_then(Value::as_array) {
            return Err(describe_errors(errors));
        }
        match body.get("data") {
            Some(data) if !data.is_null() => Ok(data.clone()),
            _ => Err(format!("HTTP {status}: no data in {body}")),
        }
    }
}

/// One line per error: `CODE: message`, the path, and each invalid input field.
fn describe_errors(errors: &[Value]) -> String {
    let mut lines = Vec::new();
    for error in errors {
        let code = error["extensions"]["code"].as_str().unwrap_or("NO_CODE");
        let message = error["message"].as_str().unwrap_or("(no message)");
        let mut line = format!("{code}: {message}");
        if let Some(path) = error["path"].as_array() {
            let path: Vec<String> = path
                .iter()
                .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned))
                .collect();
            line.push_str(&format!(" (at {})", path.join(".")));
        }
        for field in error["extensions"]["fields"].as_array().into_iter().flatten() {
            line.push_str(&format!(
                "\n  {}: {}",
                field["field"].as_str().unwrap_or("?"),
                field["message"].as_str().unwrap_or("?")
            ));
        }
        lines.push(line);
    }
    lines.join("\n")
}

/// The instant a local date starts. A zone whose clocks skip midnight starts the day at the
/// first instant after the gap.
fn start_of(zone: Tz, date: NaiveDate) -> Result<DateTime<Utc>, String> {
    let midnight = date.and_time(chrono::NaiveTime::MIN);
    (0..=3)
        .find_map(|hours| {
            zone.from_local_datetime(&(midnight + TimeDelta::hours(hours)))
                .earliest()
        })
        .map(|at| at.with_timezone(&Utc))
        .ok_or_else(|| format!("no start of {date} in {zone}"))
}

/// CSV column name of a metric: `AVERAGE_SPEED_OF_ANSWER` → `average_speed_of_answer`.
fn column(metric: &str) -> String {
    metric.to_lowercase()
}

/// A value as BI tools read it: counts without a decimal point, an empty cell for null.
fn cell(value: Option<f64>) -> String {
    value.map_or_else(String::new, |v| v.to_string())
}

async fn run(args: Args) -> Result<(), String> {
    let base = args.url.trim_end_matches('/');
    let endpoint = if base.ends_with("/graphql") {
        base.to_owned()
    } else {
        format!("{base}/graphql")
    };
    if !endpoint.starts_with("http://") {
        return Err(format!(
            "--url must start with http:// (this build has no TLS), not {base}"
        ));
    }
    let http = reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .build()
        .map_err(|e| format!("an HTTP client: {e}"))?;
    let api = Api {
        http,
        endpoint,
        token: args.token,
    };

    let organization = api.query(ORGANIZATION, json!({})).await?;
    let timezone = organization["organization"]["timezone"]
        .as_str()
        .ok_or_else(|| format!("no time zone in {organization}"))?;
    let zone: Tz = timezone
        .parse()
        .map_err(|e| format!("the organization's time zone {timezone}: {e}"))?;
    let today = Utc::now().with_timezone(&zone).date_naive();
    let first = today - TimeDelta::days(i64::from(args.days) - 1);

    // One page per local day, oldest first; rows by agent name within a day.
    let mut header = vec!["date".to_owned(), "agent_id".to_owned(), "agent".to_owned()];
    header.extend(args.metrics.iter().map(|m| column(m)));
    let mut records: Vec<Vec<String>> = Vec::new();
    for date in first.iter_days().take_while(|d| *d <= today) {
        let (from, to) = (start_of(zone, date)?, start_of(zone, date + TimeDelta::days(1))?);
        let variables = json!({ "query": {
            "metrics": args.metrics,
            "groupBy": ["DATE", "AGENT"],
            "filter": { "from": from, "to": to },
            "orderBy": [{ "dimension": "AGENT", "direction": "ASC" }],
            "limit": PAGE_LIMIT,
        }});
        let data = api.query(ANALYTICS, variables).await?;
        let page: Analytics = serde_json::from_value(data["analytics"].clone())
            .map_err(|e| format!("analytics for {date}: unexpected shape ({e})"))?;
        if page.truncated {
            return Err(format!(
                "analytics for {date}: {} rows, more than one page of {PAGE_LIMIT}",
                page.total_rows
            ));
        }
        let names: Vec<&str> = page.metrics.iter().map(|m| m.name.as_str()).collect();
        if names != args.metrics.iter().map(String::as_str).collect::<Vec<_>>() {
            return Err(format!(
                "analytics answered the metrics {names:?}, not {:?}",
                args.metrics
            ));
        }
        for row in page.rows {
            let agent = row.dimensions.agent;
            let mut record = vec![
                row.dimensions.date.unwrap_or(date).to_string(),
                agent.as_ref().and_then(|a| a.id.clone()).unwrap_or_default(),
                agent.map(|a| a.name).unwrap_or_default(),
            ];
            record.extend(row.values.into_iter().map(cell));
            records.push(record);
        }
    }

    let out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(File::create(path).map_err(|e| format!("creating {}: {e}", path.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut csv = csv::Writer::from_writer(out);
    let written = csv
        .write_record(&header)
        .and_then(|()| records.iter().try_for_each(|record| csv.write_record(record)))
        .map_err(|e| format!("writing the CSV: {e}"));
    written?;
    csv.flush().map_err(|e| format!("writing the CSV: {e}"))?;
    if let Some(path) = &args.out {
        eprintln!("bi_pull: {} rows written to {}", records.len(), path.display());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bi_pull: {message}");
            ExitCode::FAILURE
        }
    }
}

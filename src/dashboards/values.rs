//! Widget values: each [`WidgetQuery`] is answered by the SAME service function its direct
//! query calls — `kpi::summary` (`kpiSummary`), `kpi::series` (`kpiSeries`),
//! `kpi::analytics::run_analytics` (`analytics`, saved reports), `compliance_status`
//! (`complianceStatus`), `db::presence::live_agents` (`agentStates`' rows) — never a copy of
//! their SQL, so a widget shows the number the direct query answers.
//!
//! A query's answer is JSON ([`compute`]): the one form that the request path and the shared
//! live computations (`realtime::live`, compared for equality there) both carry. It leaves out
//! what moves with the clock alone (the end of a window that ends now), so an unchanged figure
//! is not re-sent. Each widget then takes its part ([`project`]) — a tile its metric, target and
//! colour — for the viewer's role: below SUPERVISOR a table or compliance gauge (the figures of
//! `analytics` and `complianceStatus`, SUPERVISOR+ when asked directly) is hidden, and customer
//! numbers in an agent grid are masked, as `agentStates` masks them.
//!
//! A request computes every distinct query of a dashboard once ([`values_of`]): the statements
//! grow with the distinct queries, not with the widgets.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use diesel_async::AsyncPgConnection;
use serde_json::{json, Map, Value};

use crate::auth::{Role, Tenant};
use crate::db::presence as db_presence;
use crate::db::tenancy::TenantPool;
use crate::error::{AppError, AppResult};
use crate::ingest::mask_number;
use crate::kpi::analytics::{compliance_status, run_analytics, ComplianceLevel, ComplianceWindow};
use crate::kpi::filter;
use crate::kpi::metrics::{Evaluated, MetricName};
use crate::kpi::query::Scope;
use crate::kpi::{self, check_series, organization_rule, WindowValues};
use crate::realtime::live::{self, Computation};
use crate::realtime::BusEvent;
use crate::reports::definition::metric_api_name;
use crate::reports::range;

use super::widgets::{raw_filter, WidgetKind, WidgetQuery, WidgetSpec};

/// A widget's value for one viewer: the value, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub struct WidgetValue {
    pub value: Option<Value>,
    /// Set when `value` is null: the query failed on its input (an id deleted since), or the
    /// viewer's role may not read this kind of figure.
    pub unavailable: Option<String>,
}

fn evaluated(e: &Evaluated) -> Value {
    json!({ "value": e.value, "numerator": e.numerator, "denominator": e.denominator })
}

fn all_metrics(values: &WindowValues) -> Value {
    let map: Map<String, Value> = values
        .metrics
        .iter()
        .map(|m| (m.name.to_owned(), evaluated(m)))
        .collect();
    Value::Object(map)
}

fn level(level: ComplianceLevel) -> &'static str {
    match level {
        ComplianceLevel::Ok => "OK",
        ComplianceLevel::Warning => "WARNING",
        ComplianceLevel::Breach => "BREACH",
    }
}

/// A rolling window's figures (its bounds move with the clock and are left out).
fn compliance_window(w: &ComplianceWindow) -> Value {
    json!({
        "rate": w.rate.value,
        "limit": w.limit,
        "headroom": w.headroom(),
        "status": level(w.status),
        "drops": w.drops,
        "liveCalls": w.live,
        "machineAnswered": w.machine_answered,
        "machineDetected": w.machine_detected,
        "humanAnswered": w.human_answered,
        "numerator": w.rate.numerator,
        "denominator": w.rate.denominator,
    })
}

fn named(n: &Option<crate::kpi::analytics::Named>) -> Value {
    n.as_ref().map_or(
        Value::Null,
        |n| json!({ "id": n.id.map(|id| id.to_string()), "name": n.name }),
    )
}

/// Computes one query now: its JSON answer and the scope that decides which events touch it.
pub async fn compute(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    query: &WidgetQuery,
    now: DateTime<Utc>,
) -> AppResult<(Value, Option<Scope>)> {
    match query {
        WidgetQuery::Summary { filter, range: period } => {
            let (_, tz) = organization_rule(conn, tenant).await?;
            let (from, to) = range::resolve(*period, tz, now);
            let (values, scope) = kpi::summary(conn, tenant, "filter", &raw_filter(filter, from, to)).await?;
            Ok((json!({ "from": from, "metrics": all_metrics(&values) }), Some(scope)))
        }
        WidgetQuery::Series {
            filter,
            range: period,
            granularity,
        } => {
            let (_, tz) = organization_rule(conn, tenant).await?;
            let (from, to) = range::resolve(*period, tz, now);
            check_series("granularity", from, to, *granularity)?;
            let (tz, buckets, scope) =
                kpi::series(conn, tenant, "filter", &raw_filter(filter, from, to), *granularity).await?;
            let buckets: Vec<Value> = buckets
                .iter()
                .map(|b| json!({ "start": b.start, "metrics": all_metrics(b) }))
                .collect();
            Ok((
                json!({ "timezone": tz.name(), "granularity": granularity, "buckets": buckets }),
                Some(scope),
            ))
        }
        WidgetQuery::Analytics { query, range: period } => {
            let (_, tz) = organization_rule(conn, tenant).await?;
            let (from, to) = period.resolve(tz, now);
            let out = run_analytics(conn, None, tenant, &query.request(from, to), "query").await?;
            let rows: Vec<Value> = out
                .rows
                .iter()
                .map(|row| {
                    let d = &row.dimensions;
                    json!({
                        "dimensions": {
                            "campaign": named(&d.campaign),
                            "agent": named(&d.agent),
                            "team": named(&d.team),
                            "direction": d.direction,
                            "disposition": d.disposition.as_ref().map(|k| json!({
                                "id": k.id.map(|id| id.to_string()), "code": k.code, "label": k.label,
                            })),
                            "date": d.date,
                            "hourOfDay": d.hour_of_day,
                            "dayOfWeek": d.day_of_week,
                            "bucketStart": d.bucket.map(|b| b.0),
                        },
                        "values": row.values.iter().map(|e| e.value).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let metrics: Vec<String> = out.metrics.iter().map(|m| metric_api_name(*m)).collect();
            // A table's scope is its campaigns and direction (teams resolve to agents that
            // change; an event of another agent only costs a recompute).
            let scope = Scope {
                campaign_ids: query.filter.campaign_ids.clone(),
                agent_ids: None,
                direction: query.filter.direction,
            };
            Ok((
                json!({
                    "from": out.from,
                    "timezone": out.timezone,
                    "metrics": metrics,
                    "groupBy": out.group_by,
                    "granularity": out.granularity,
                    "totalRows": out.total_rows,
                    "truncated": out.truncated,
                    "rows": rows,
                }),
                Some(scope),
            ))
        }
        WidgetQuery::Agents { filter: f } => {
            let resolved =
                filter::resolve(conn, tenant, "filter", &raw_filter(f, now - TimeDelta::hours(1), now)).await?;
            let agents = db_presence::live_agents(conn, tenant, resolved.scope.agent_ids.as_deref()).await?;
            let agents: Vec<Value> = agents
                .iter()
                .map(|a| {
                    json!({
                        "id": a.id.to_string(),
                        "name": a.display_name,
                        "teamId": a.team_id.map(|id| id.to_string()),
                        "teamName": a.team_name,
                        "presence": a.presence,
                        "presenceReason": a.presence_reason,
                        "presenceSince": a.presence_since,
                        "routingState": a.routing_state,
                        "routingSince": a.routing_since,
                        "currentCall": a.call_id.map(|id| json!({
                            "interactionId": id.to_string(),
                            "externalId": a.call_external_id,
                            "direction": a.call_direction,
                            "campaignId": a.call_campaign_id.map(|c| c.to_string()),
                            "customerNumber": a.call_customer_number,
                            "offeredAt": a.call_offered_at,
                            "answeredAt": a.call_answered_at,
                        })),
                    })
                })
                .collect();
            let scope = Scope {
                agent_ids: resolved.scope.agent_ids,
                ..Scope::default()
            };
            Ok((json!({ "agents": agents }), Some(scope)))
        }
        WidgetQuery::Compliance { campaign_id } => {
            let ids = [campaign_id.to_string()];
            let rows = compliance_status(conn, tenant, "campaignId", Some(&ids), now).await?;
            let row = rows
                .first()
                .ok_or_else(|| AppError::NotFound("campaign not found".into()))?;
            let scope = Scope {
                campaign_ids: Some(vec![*campaign_id]),
                ..Scope::default()
            };
            Ok((
                json!({
                    "campaignId": row.campaign.id.to_string(),
                    "campaignName": row.campaign.name,
                    "limit": row.limit,
                    "status": level(row.status()),
                    "uk": compliance_window(&row.uk),
                    "us": compliance_window(&row.us),
                }),
                Some(scope),
            ))
        }
    }
}

/// A computation's answer as the registry carries it: an input error (an id deleted since the
/// widget was stored) is an answer too — `{"error": …}` — so it is shown, not retried forever.
pub async fn answer(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    query: &WidgetQuery,
    now: DateTime<Utc>,
) -> AppResult<(Value, Option<Scope>)> {
    match compute(conn, tenant, query, now).await {
        Ok(answer) => Ok(answer),
        Err(AppError::BadUserInput { message, .. } | AppError::NotFound(message)) => {
            Ok((json!({ "error": message }), None))
        }
        Err(other) => Err(other),
    }
}

fn unavailable(reason: impl Into<String>) -> WidgetValue {
    WidgetValue {
        value: None,
        unavailable: Some(reason.into()),
    }
}

/// One widget's part of its query's answer, for a viewer of `role`.
pub fn project(kind: WidgetKind, spec: &WidgetSpec, answer: &Value, role: Role) -> WidgetValue {
    if let Some(error) = answer.get("error").and_then(Value::as_str) {
        return unavailable(error);
    }
    if kind.supervisor_only() && role < Role::Supervisor {
        return unavailable("requires role SUPERVISOR or higher");
    }
    let metric_of = |metrics: &Value| -> Value {
        spec.metric
            .and_then(|m| metrics.get(MetricName::registry_name(m)).cloned())
            .unwrap_or(Value::Null)
    };
    let value = match kind {
        WidgetKind::KpiTile => {
            let m = metric_of(&answer["metrics"]);
            let value = m.get("value").and_then(Value::as_f64);
            let status = match (value, spec.thresholds) {
                (Some(v), Some(t)) => serde_json::to_value(t.status(v)).unwrap_or(Value::Null),
                _ => Value::Null,
            };
            json!({
                "metric": spec.metric.map(metric_api_name),
                "value": m.get("value"),
                "numerator": m.get("numerator"),
                "denominator": m.get("denominator"),
                "target": spec.target,
                "status": status,
                "from": answer["from"],
            })
        }
        WidgetKind::TimeSeries => {
            let points: Vec<Value> = answer["buckets"]
                .as_array()
                .map(|b| {
                    b.iter()
                        .map(|bucket| json!({ "start": bucket["start"], "value": metric_of(&bucket["metrics"])["value"] }))
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "metric": spec.metric.map(metric_api_name),
                "granularity": answer["granularity"],
                "timezone": answer["timezone"],
                "points": points,
            })
        }
        WidgetKind::AgentGrid if role < Role::Supervisor => {
            let mut masked = answer.clone();
            if let Some(agents) = masked.get_mut("agents").and_then(Value::as_array_mut) {
                for agent in agents {
                    if let Some(number) = agent.pointer_mut("/currentCall/customerNumber") {
                        if let Some(text) = number.as_str() {
                            *number = Value::String(mask_number(text));
                        }
                    }
                }
            }
            masked
        }
        WidgetKind::Table | WidgetKind::AgentGrid | WidgetKind::ComplianceGauge => answer.clone(),
    };
    WidgetValue {
        value: Some(value),
        unavailable: None,
    }
}

/// The values of a dashboard's widgets for one viewer, each distinct query computed once
/// (`queries[i]` is widget i's query; None when it has none, e.g. its report is gone).
pub async fn values_of(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    widgets: &[(WidgetKind, &WidgetSpec, Option<WidgetQuery>)],
    role: Role,
    now: DateTime<Utc>,
) -> AppResult<Vec<WidgetValue>> {
    let mut answers: HashMap<String, Value> = HashMap::new();
    let mut out = Vec::with_capacity(widgets.len());
    for (kind, spec, query) in widgets {
        let Some(query) = query else {
            out.push(unavailable("the widget's report is gone"));
            continue;
        };
        if kind.supervisor_only() && role < Role::Supervisor {
            out.push(unavailable("requires role SUPERVISOR or higher"));
            continue;
        }
        let key = query.canonical();
        if !answers.contains_key(&key) {
            let (answer, _) = answer(conn, tenant, query, now).await?;
            answers.insert(key.clone(), answer);
        }
        let answer = answers.get(&key).unwrap_or(&Value::Null);
        out.push(project(*kind, spec, answer, role));
    }
    Ok(out)
}

/// A widget query as the shared registry computes it.
pub struct SharedWidget(pub WidgetQuery);

impl Computation for SharedWidget {
    fn compute<'a>(
        &'a self,
        db: &'a TenantPool,
        tenant: &'a Tenant,
    ) -> futures_util::future::BoxFuture<'a, AppResult<(Value, Option<Scope>)>> {
        Box::pin(async move {
            let mut conn = db.get(tenant).await?;
            answer(&mut conn, tenant, &self.0, Utc::now()).await
        })
    }

    fn touches(&self, event: &BusEvent, scope: Option<&Scope>) -> bool {
        match (&self.0, event) {
            // A gauge counts its campaign's calls only.
            (WidgetQuery::Compliance { .. }, BusEvent::AgentState { .. } | BusEvent::AgentProfiles { .. }) => false,
            _ => live::touches(event, scope),
        }
    }
}

/// The registry key of a widget query.
pub fn shared(query: WidgetQuery) -> live::DynQuery {
    live::DynQuery {
        canonical: query.canonical().into(),
        computation: std::sync::Arc::new(SharedWidget(query)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agents_answer() -> Value {
        json!({ "agents": [{ "id": "a", "currentCall": { "customerNumber": "+447700900123" } }] })
    }

    #[test]
    fn customer_numbers_are_masked_below_supervisor() {
        let spec = WidgetSpec::default();
        let masked = project(WidgetKind::AgentGrid, &spec, &agents_answer(), Role::Viewer);
        let number = masked.value.unwrap()["agents"][0]["currentCall"]["customerNumber"].clone();
        assert_eq!(number, json!(mask_number("+447700900123")));
        assert_ne!(number, json!("+447700900123"));
        let plain = project(WidgetKind::AgentGrid, &spec, &agents_answer(), Role::Supervisor);
        assert_eq!(plain.value, Some(agents_answer()));
    }

    #[test]
    fn tables_and_gauges_are_hidden_below_supervisor_and_errors_are_shown() {
        let spec = WidgetSpec::default();
        for kind in [WidgetKind::Table, WidgetKind::ComplianceGauge] {
            let hidden = project(kind, &spec, &json!({ "rows": [] }), Role::Agent);
            assert!(hidden.value.is_none());
            assert!(hidden.unavailable.is_some());
            assert!(project(kind, &spec, &json!({ "rows": [] }), Role::Supervisor)
                .value
                .is_some());
        }
        let failed = project(
            WidgetKind::KpiTile,
            &spec,
            &json!({ "error": "unknown id" }),
            Role::Admin,
        );
        assert_eq!(failed.unavailable.as_deref(), Some("unknown id"));
    }

    #[test]
    fn a_tile_takes_its_metric_target_and_colour() {
        let spec = WidgetSpec {
            metric: Some(MetricName::AbandonRate),
            target: Some(5.0),
            thresholds: Some(super::super::widgets::Thresholds {
                warning: 5.0,
                critical: 8.0,
            }),
            ..WidgetSpec::default()
        };
        let answer = json!({ "from": "2026-12-07T00:00:00Z", "metrics": {
            "abandonRate": { "value": 6.0, "numerator": 6.0, "denominator": 100.0 },
            "offered": { "value": 100.0, "numerator": 100.0, "denominator": null } } });
        let tile = project(WidgetKind::KpiTile, &spec, &answer, Role::Viewer)
            .value
            .unwrap();
        assert_eq!(tile["metric"], "ABANDON_RATE");
        assert_eq!(tile["value"], 6.0);
        assert_eq!(tile["status"], "AMBER");
        assert_eq!(tile["target"], 5.0);
    }
}

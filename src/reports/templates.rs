//! Report templates: saved reports shipped with the product, in code (so they are versioned
//! with the metrics they use), read-only, and copied into an organization's own reports by
//! `createReportFromTemplate`. Each is built from the registry's existing metrics only, and a
//! unit test runs every template through the analytics engine's own checks (the interaction
//! detail log, which asks the engine nothing, through the log's own rules).

use crate::domain::Direction;
use crate::kpi::analytics::{Dimension, SortDirection};
use crate::kpi::metrics::MetricName;
use crate::kpi::time::Granularity;
use crate::reports::definition::{
    Chart, ChartKind, Definition, Presentation, ReportFilter, ReportKind, ReportOrder, ReportQuery, ReportRange,
};
use crate::reports::range::RelativeRange;

/// A template: a key that never changes, and the report it copies into.
#[derive(Debug, Clone)]
pub struct Template {
    pub key: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub definition: Definition,
}

fn relative(period: RelativeRange) -> ReportRange {
    ReportRange::Relative { period }
}

fn by_metric(metric: MetricName, direction: SortDirection) -> ReportOrder {
    ReportOrder {
        metric: Some(metric),
        dimension: None,
        bucket: false,
        direction,
    }
}

fn chart(kind: ChartKind, series: &[MetricName]) -> Chart {
    Chart {
        kind,
        series: series.to_vec(),
    }
}

/// Every template, in the order `reportTemplates` lists them.
pub fn all() -> Vec<Template> {
    use MetricName::*;
    vec![
        Template {
            key: "agent-performance-daily",
            title: "Agent performance (daily)",
            description: "Calls handled, handle time, occupancy and calls per logged-in hour, per agent and \
                          local day, over the last 7 whole days.",
            definition: Definition {
                kind: ReportKind::Analytics,
                query: ReportQuery {
                    metrics: vec![
                        Handled,
                        AverageHandleTime,
                        AverageTalkTime,
                        AverageWrapTime,
                        Occupancy,
                        CallsPerAgentHour,
                    ],
                    group_by: vec![Dimension::Date, Dimension::Agent],
                    filter: ReportFilter::default(),
                    granularity: None,
                    order_by: Vec::new(),
                    limit: Some(10_000),
                },
                range: relative(RelativeRange::Last7Days),
                presentation: Presentation {
                    columns: Vec::new(),
                    totals: true,
                    chart: chart(ChartKind::Bar, &[Handled]),
                },
            },
        },
        Template {
            key: "campaign-summary",
            title: "Campaign summary",
            description: "Volumes, service level, speed of answer, handle time, abandonment and conversion per \
                          campaign, month to date.",
            definition: Definition {
                kind: ReportKind::Analytics,
                query: ReportQuery {
                    metrics: vec![
                        Offered,
                        Answered,
                        Abandoned,
                        ServiceLevel,
                        AverageSpeedOfAnswer,
                        AverageHandleTime,
                        AbandonRate,
                        ConversionRate,
                    ],
                    group_by: vec![Dimension::Campaign],
                    filter: ReportFilter::default(),
                    granularity: None,
                    order_by: vec![by_metric(Offered, SortDirection::Desc)],
                    limit: None,
                },
                range: relative(RelativeRange::MonthToDate),
                presentation: Presentation {
                    columns: Vec::new(),
                    totals: true,
                    chart: chart(ChartKind::Bar, &[Offered, Answered]),
                },
            },
        },
        Template {
            key: "hourly-service-level",
            title: "Hourly service level",
            description: "Inbound calls offered, answered and abandoned, service level, speed of answer and \
                          longest wait, hour by hour today.",
            definition: Definition {
                kind: ReportKind::Analytics,
                query: ReportQuery {
                    metrics: vec![
                        Offered,
                        Answered,
                        Abandoned,
                        ServiceLevel,
                        AverageSpeedOfAnswer,
                        LongestWait,
                    ],
                    group_by: Vec::new(),
                    filter: ReportFilter {
                        direction: Some(Direction::Inbound),
                        ..ReportFilter::default()
                    },
                    granularity: Some(Granularity::Hour),
                    order_by: Vec::new(),
                    limit: None,
                },
                range: relative(RelativeRange::Today),
                presentation: Presentation {
                    columns: Vec::new(),
                    totals: true,
                    chart: chart(ChartKind::Line, &[ServiceLevel]),
                },
            },
        },
        Template {
            key: "disposition-breakdown",
            title: "Disposition breakdown",
            description: "Calls per disposition (wrap-up code) over the last 7 whole days, most frequent first.",
            definition: Definition {
                kind: ReportKind::Analytics,
                query: ReportQuery {
                    metrics: vec![Offered, Answered, Handled],
                    group_by: vec![Dimension::Disposition],
                    filter: ReportFilter::default(),
                    granularity: None,
                    order_by: vec![by_metric(Offered, SortDirection::Desc)],
                    limit: None,
                },
                range: relative(RelativeRange::Last7Days),
                presentation: Presentation {
                    columns: Vec::new(),
                    totals: true,
                    chart: chart(ChartKind::Pie, &[Offered]),
                },
            },
        },
        Template {
            key: "outbound-abandon-compliance",
            title: "Outbound abandon compliance (UK, rolling 24 hours)",
            description: "Per outbound campaign over the last 24 hours: calls, drops and the Ofcom abandoned-call \
                          rate (answering-machine adjusted). The US (FTC) rule counts 30 days: copy this report, \
                          set its range to LAST_30_DAYS and its metric to OUTBOUND_ABANDON_RATE_US; \
                          complianceStatus gives both windows against each campaign's limit.",
            definition: Definition {
                kind: ReportKind::Analytics,
                query: ReportQuery {
                    metrics: vec![Offered, Answered, Abandoned, OutboundAbandonRateUk],
                    group_by: vec![Dimension::Campaign],
                    filter: ReportFilter {
                        direction: Some(Direction::Outbound),
                        ..ReportFilter::default()
                    },
                    granularity: None,
                    order_by: vec![by_metric(OutboundAbandonRateUk, SortDirection::Desc)],
                    limit: None,
                },
                range: relative(RelativeRange::Rolling24Hours),
                presentation: Presentation {
                    columns: Vec::new(),
                    totals: true,
                    chart: chart(ChartKind::Bar, &[OutboundAbandonRateUk]),
                },
            },
        },
        Template {
            key: "agent-occupancy",
            title: "Agent time in state (occupancy)",
            description: "Per agent, yesterday: occupancy (time on calls and wrap-up against that plus \
                          available time, from the agent state log), calls per logged-in hour, calls handled \
                          and handle time. Break and lunch time are not metrics of the registry yet.",
            definition: Definition {
                kind: ReportKind::Analytics,
                query: ReportQuery {
                    metrics: vec![Occupancy, CallsPerAgentHour, Handled, AverageHandleTime],
                    group_by: vec![Dimension::Team, Dimension::Agent],
                    filter: ReportFilter::default(),
                    granularity: None,
                    order_by: vec![by_metric(Occupancy, SortDirection::Desc)],
                    limit: None,
                },
                range: relative(RelativeRange::Yesterday),
                presentation: Presentation {
                    columns: Vec::new(),
                    totals: true,
                    chart: chart(ChartKind::Bar, &[Occupancy]),
                },
            },
        },
        Template {
            key: "interaction-detail-log",
            title: "Interaction detail log",
            description: "Every call of yesterday, one row per call, oldest first: start time, call id, direction, \
                          campaign, agent, customer number (masked below SUPERVISOR), outcome, disposition, and \
                          wait, talk, hold, wrap-up and handle seconds. Produced by runs (runReport, schedules), \
                          streamed into the file however many calls there are.",
            definition: Definition::interaction_log(ReportFilter::default(), relative(RelativeRange::Yesterday)),
        },
    ]
}

/// The template with this key.
pub fn find(key: &str) -> Option<Template> {
    all().into_iter().find(|t| t.key == key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AppError;
    use crate::kpi::analytics::check_request;
    use chrono::{DateTime, Utc};
    use chrono_tz::Tz;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).map(|d| d.to_utc()).unwrap_or_default()
    }

    /// Every template passes the analytics engine's own checks (as `validate_analytics` runs
    /// them, minus the ids, which templates do not name) and the presentation's, in zones with
    /// whole-hour, half-hour and DST offsets, at ordinary moments and on DST days.
    #[test]
    fn every_template_passes_the_engines_validation() {
        let zones: [Tz; 4] = [
            chrono_tz::Europe::London,
            chrono_tz::America::New_York,
            chrono_tz::Asia::Kolkata,
            chrono_tz::UTC,
        ];
        let moments = [
            at("2026-01-07T10:30:00Z"),
            at("2026-03-29T12:00:00Z"),
            at("2026-11-01T23:59:59Z"),
            at("2026-12-31T23:00:00Z"),
        ];
        let templates = all();
        assert_eq!(templates.len(), 7);
        for template in &templates {
            let def = &template.definition;
            assert_eq!(def.check_own_rules("template"), Vec::new(), "{}", template.key);
            assert!(template.title.chars().count() <= crate::domain::saved_text::MAX_TITLE_CHARS);
            // A log asks the engine nothing: its own rules (above) are all it has.
            if def.kind == ReportKind::InteractionLog {
                continue;
            }
            for tz in zones {
                for now in moments {
                    let (from, to) = def.range.resolve(tz, now);
                    let request = def.query.request(from, to);
                    if let Err(error) = check_request(&request, tz, "template.query") {
                        let detail = match error {
                            AppError::BadUserInput { message, .. } => message,
                            other => format!("{other:?}"),
                        };
                        panic!("template {} in {tz} at {now}: {detail}", template.key);
                    }
                }
            }
        }
    }

    /// The disposition breakdown can be run over a quarter (a copy with an absolute range): its
    /// query is answered from the disposition rollups, with no raw-read cap to refuse it.
    #[test]
    fn the_disposition_template_runs_over_a_quarter() {
        let template = find("disposition-breakdown");
        let query = template.map(|t| t.definition.query);
        let (from, to) = (at("2026-01-01T00:00:00Z"), at("2026-04-01T00:00:00Z"));
        for tz in [
            chrono_tz::Europe::London,
            chrono_tz::America::New_York,
            chrono_tz::Asia::Kolkata,
        ] {
            let checked = query
                .as_ref()
                .map(|q| check_request(&q.request(from, to), tz, "template.query"));
            assert!(matches!(checked, Some(Ok(()))), "in {tz}: {checked:?}");
        }
    }

    #[test]
    fn keys_are_unique_and_found() {
        let templates = all();
        for (i, t) in templates.iter().enumerate() {
            assert!(templates[..i].iter().all(|o| o.key != t.key), "{}", t.key);
            assert_eq!(find(t.key).map(|f| f.title), Some(t.title));
        }
        assert!(find("no-such-template").is_none());
    }
}

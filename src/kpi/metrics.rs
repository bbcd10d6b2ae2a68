//! The metric registry: the single source of every KPI formula. Summaries, series, per-agent
//! and per-campaign views and live tiles all evaluate metrics through [`evaluate`], so a
//! number is the same wherever it appears. A ratio whose denominator is 0 is `None` (null),
//! never 0: a wallboard shows "—", not 0 %.

use crate::domain::ServiceLevelVariant;
use crate::error::{AppError, AppResult};
use crate::kpi::query::Aggregates;

/// Calls `$callback! { Variant => "registryName", … }` with every metric of the registry in
/// [`METRICS`] order: the one list of metric names. [`MetricName`] and the views' enums that
/// order by a metric are generated from it, and [`METRICS`] names its entries by
/// [`MetricName`], so a metric added here without a definition (or the reverse) fails a test.
macro_rules! with_metric_names {
    ($callback:ident) => {
        $callback! {
            Offered => "offered",
            Answered => "answered",
            Handled => "handled",
            Abandoned => "abandoned",
            ShortAbandoned => "shortAbandoned",
            ServiceLevel => "serviceLevel",
            AverageSpeedOfAnswer => "averageSpeedOfAnswer",
            AverageHandleTime => "averageHandleTime",
            AverageTalkTime => "averageTalkTime",
            AverageHoldTime => "averageHoldTime",
            AverageWrapTime => "averageWrapTime",
            AbandonRate => "abandonRate",
            LongestWait => "longestWait",
            Occupancy => "occupancy",
            ContactRate => "contactRate",
            ConversionRate => "conversionRate",
            CallsPerAgentHour => "callsPerAgentHour",
            OutboundAbandonRateUk => "outboundAbandonRateUk",
            OutboundAbandonRateUs => "outboundAbandonRateUs",
        }
    };
}
pub(crate) use with_metric_names;

macro_rules! metric_name_enum {
    ($($variant:ident => $name:literal),+ $(,)?) => {
        /// A metric of the registry (the names `KpiValues.explain` reports), as an enum value.
        /// Stored (saved reports) under its GraphQL name, e.g. `AVERAGE_HANDLE_TIME`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, async_graphql::Enum, serde::Serialize, serde::Deserialize)]
        #[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum MetricName {
            $($variant),+
        }

        impl MetricName {
            pub const ALL: &'static [MetricName] = &[$(MetricName::$variant),+];

            /// The registry's name of the metric (its GraphQL field name on `KpiValues`).
            pub const fn registry_name(self) -> &'static str {
                match self {
                    $(MetricName::$variant => $name),+
                }
            }
        }
    };
}
with_metric_names!(metric_name_enum);

impl MetricName {
    /// The registry definition (every name has one: `metric_names_mirror_the_registry`).
    pub fn def(self) -> AppResult<&'static MetricDef> {
        find(self.registry_name())
            .ok_or_else(|| AppError::internal(format!("metric {} is not in the registry", self.registry_name())))
    }

    pub fn from_registry_name(name: &str) -> Option<MetricName> {
        MetricName::ALL.iter().copied().find(|m| m.registry_name() == name)
    }
}

/// How a value is expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum Unit {
    Count,
    Seconds,
    Percent,
    PerHour,
}

/// The organization's settings the formulas depend on (the thresholds themselves are applied
/// when calls are counted, see `kpi::facts`; `threshold_seconds` is reported with the values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceLevelRule {
    pub threshold_seconds: i32,
    pub variant: ServiceLevelVariant,
    /// Abandon rate = (abandoned − short abandoned) / (offered − short abandoned).
    pub exclude_short_abandons_from_abandon_rate: bool,
    /// Short abandons leave the service level's numerator and denominator, in the variants
    /// that count abandons and do not already exclude them ([`service_level_excludes_short`]).
    pub exclude_short_abandons_from_service_level: bool,
}

/// Whether the service level leaves short abandons out under `rule`: always in the default
/// variant, never where abandons do not count at all (answered within T / answered), and by
/// the organization's choice in the three others.
pub fn service_level_excludes_short(rule: &ServiceLevelRule) -> bool {
    match rule.variant {
        ServiceLevelVariant::AnsweredWithinOverOfferedExcludingShortAbandons => true,
        ServiceLevelVariant::AnsweredWithinOverAnswered => false,
        ServiceLevelVariant::AnsweredAndAbandonedWithinOverOffered
        | ServiceLevelVariant::AnsweredWithinOverOffered
        | ServiceLevelVariant::AnsweredWithinOverOfferedExcludingAbandonsWithin => {
            rule.exclude_short_abandons_from_service_level
        }
    }
}

/// Numerator and denominator in display units (seconds, hours, calls). `denominator: None`
/// marks a plain count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Parts {
    pub numerator: f64,
    pub denominator: Option<f64>,
}

pub struct MetricDef {
    /// The GraphQL field name.
    pub name: &'static str,
    pub unit: Unit,
    pub formula: fn(&ServiceLevelRule) -> &'static str,
    pub parts: fn(&Aggregates, &ServiceLevelRule) -> Parts,
}

/// A metric's value with what it was computed from, for drill-down.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    pub name: &'static str,
    pub unit: Unit,
    pub value: Option<f64>,
    pub numerator: f64,
    pub denominator: Option<f64>,
    pub formula: &'static str,
}

fn count(n: i64) -> Parts {
    Parts {
        numerator: n as f64,
        denominator: None,
    }
}
fn ratio(numerator: f64, denominator: f64) -> Parts {
    Parts {
        numerator,
        denominator: Some(denominator),
    }
}
fn ms(v: i64) -> f64 {
    v as f64 / 1_000.0
}
fn hours(us: i64) -> f64 {
    us as f64 / 3_600_000_000.0
}

fn service_level(a: &Aggregates, rule: &ServiceLevelRule) -> Parts {
    let c = &a.calls;
    let (aw, bw, ans, abn) = (
        c.answered_within_sl as f64,
        c.abandoned_within_sl as f64,
        c.answered as f64,
        c.abandoned as f64,
    );
    // Short abandons taken out (all of them, and those within T), or none.
    let (short, short_within) = if service_level_excludes_short(rule) {
        (c.short_abandoned as f64, c.short_abandoned_within_sl as f64)
    } else {
        (0.0, 0.0)
    };
    match rule.variant {
        ServiceLevelVariant::AnsweredWithinOverOfferedExcludingShortAbandons
        | ServiceLevelVariant::AnsweredWithinOverOffered => ratio(aw, ans + abn - short),
        ServiceLevelVariant::AnsweredWithinOverAnswered => ratio(aw, ans),
        ServiceLevelVariant::AnsweredAndAbandonedWithinOverOffered => ratio(aw + bw - short_within, ans + abn - short),
        ServiceLevelVariant::AnsweredWithinOverOfferedExcludingAbandonsWithin => {
            ratio(aw, ans + (abn - bw) - (short - short_within))
        }
    }
}

fn service_level_formula(rule: &ServiceLevelRule) -> &'static str {
    let excluded = service_level_excludes_short(rule);
    match (rule.variant, excluded) {
        (ServiceLevelVariant::AnsweredWithinOverOfferedExcludingShortAbandons, _) => {
            "answered within T / (answered + abandoned - short abandoned)"
        }
        (ServiceLevelVariant::AnsweredWithinOverAnswered, _) => "answered within T / answered",
        (ServiceLevelVariant::AnsweredAndAbandonedWithinOverOffered, false) => {
            "(answered within T + abandoned within T) / (answered + abandoned)"
        }
        (ServiceLevelVariant::AnsweredAndAbandonedWithinOverOffered, true) => {
            "(answered within T + abandoned within T - short abandoned within T) / (answered + abandoned - short abandoned)"
        }
        (ServiceLevelVariant::AnsweredWithinOverOffered, false) => "answered within T / (answered + abandoned)",
        (ServiceLevelVariant::AnsweredWithinOverOffered, true) => {
            "answered within T / (answered + abandoned - short abandoned)"
        }
        (ServiceLevelVariant::AnsweredWithinOverOfferedExcludingAbandonsWithin, false) => {
            "answered within T / (answered + abandoned after T)"
        }
        (ServiceLevelVariant::AnsweredWithinOverOfferedExcludingAbandonsWithin, true) => {
            "answered within T / (answered + abandoned after T - short abandoned after T)"
        }
    }
}

fn abandon_rate(a: &Aggregates, rule: &ServiceLevelRule) -> Parts {
    let c = &a.calls;
    let short = if rule.exclude_short_abandons_from_abandon_rate {
        c.short_abandoned
    } else {
        0
    };
    ratio((c.abandoned - short) as f64, (c.offered - short) as f64)
}

fn abandon_rate_formula(rule: &ServiceLevelRule) -> &'static str {
    if rule.exclude_short_abandons_from_abandon_rate {
        "(abandoned - short abandoned) / (offered - short abandoned)"
    } else {
        "abandoned / offered"
    }
}

/// UK (Ofcom) outbound abandoned-call rate: D' = drops − drops × AM / (AM + live),
/// rate = D' / (D' + live), where live = live calls connected to an agent and AM = calls
/// answered by a machine that were connected to an agent (`machine_answered`; machines the
/// dialler hung up on, `machine_detected`, never enter the adjustment).
pub fn uk_drop_parts(a: &Aggregates) -> Parts {
    let c = &a.calls;
    let drops = c.drops as f64;
    let machine = c.machine_answered as f64;
    let live = (c.human_answered - c.drops).max(0) as f64;
    let adjusted = if machine + live > 0.0 {
        drops - drops * machine / (machine + live)
    } else {
        drops
    };
    ratio(adjusted, adjusted + live)
}

/// The counts a metric's value was computed from, named, for drill-down beyond numerator and
/// denominator. Only the compliance rates have some: their adjustment needs evidence (a
/// regulator asks how many machine answers were passed to agents, and how many the dialler
/// hung up on and left out).
pub fn evidence(name: &str, a: &Aggregates) -> Vec<(&'static str, i64)> {
    let c = &a.calls;
    match name {
        "outboundAbandonRateUk" => vec![
            ("drops", c.drops),
            ("liveCallsToAgents", (c.human_answered - c.drops).max(0)),
            ("machineAnswersToAgents", c.machine_answered),
            ("machineAnswersDetectedNotCounted", c.machine_detected),
        ],
        "outboundAbandonRateUs" => vec![("drops", c.drops), ("liveAnswered", c.human_answered)],
        _ => Vec::new(),
    }
}

/// US (FTC safe harbour) outbound abandonment: drops / calls answered by a live person.
pub fn us_drop_parts(a: &Aggregates) -> Parts {
    ratio(a.calls.drops as f64, a.calls.human_answered as f64)
}

macro_rules! fixed {
    ($text:literal) => {
        |_: &ServiceLevelRule| $text
    };
}

/// Every metric, in the order the API lists them.
pub const METRICS: &[MetricDef] = &[
    MetricDef {
        name: MetricName::Offered.registry_name(),
        unit: Unit::Count,
        formula: fixed!("answered + abandoned"),
        parts: |a, _| count(a.calls.offered),
    },
    MetricDef {
        name: MetricName::Answered.registry_name(),
        unit: Unit::Count,
        formula: fixed!("calls answered by an agent (outbound: by a live person)"),
        parts: |a, _| count(a.calls.answered),
    },
    MetricDef {
        name: MetricName::Handled.registry_name(),
        unit: Unit::Count,
        formula: fixed!("answered calls whose wrap-up finished"),
        parts: |a, _| count(a.calls.handled),
    },
    MetricDef {
        name: MetricName::Abandoned.registry_name(),
        unit: Unit::Count,
        formula: fixed!("caller (or outbound live party) hung up before an agent answered"),
        parts: |a, _| count(a.calls.abandoned),
    },
    MetricDef {
        name: MetricName::ShortAbandoned.registry_name(),
        unit: Unit::Count,
        formula: fixed!("abandoned after waiting less than the short-abandon threshold"),
        parts: |a, _| count(a.calls.short_abandoned),
    },
    MetricDef {
        name: MetricName::ServiceLevel.registry_name(),
        unit: Unit::Percent,
        formula: service_level_formula,
        parts: service_level,
    },
    MetricDef {
        name: MetricName::AverageSpeedOfAnswer.registry_name(),
        unit: Unit::Seconds,
        formula: fixed!("sum of wait of answered calls / answered"),
        parts: |a, _| ratio(ms(a.calls.answered_wait_ms), a.calls.answered as f64),
    },
    MetricDef {
        name: MetricName::AverageHandleTime.registry_name(),
        unit: Unit::Seconds,
        formula: fixed!("(sum talk + sum hold + sum wrap of handled calls) / handled"),
        parts: |a, _| {
            ratio(
                ms(a.calls.handled_talk_ms + a.calls.handled_hold_ms + a.calls.handled_wrap_ms),
                a.calls.handled as f64,
            )
        },
    },
    MetricDef {
        name: MetricName::AverageTalkTime.registry_name(),
        unit: Unit::Seconds,
        formula: fixed!("sum talk of handled calls / handled"),
        parts: |a, _| ratio(ms(a.calls.handled_talk_ms), a.calls.handled as f64),
    },
    MetricDef {
        name: MetricName::AverageHoldTime.registry_name(),
        unit: Unit::Seconds,
        formula: fixed!("sum hold of handled calls / handled"),
        parts: |a, _| ratio(ms(a.calls.handled_hold_ms), a.calls.handled as f64),
    },
    MetricDef {
        name: MetricName::AverageWrapTime.registry_name(),
        unit: Unit::Seconds,
        formula: fixed!("sum wrap of handled calls / handled"),
        parts: |a, _| ratio(ms(a.calls.handled_wrap_ms), a.calls.handled as f64),
    },
    MetricDef {
        name: MetricName::AbandonRate.registry_name(),
        unit: Unit::Percent,
        formula: abandon_rate_formula,
        parts: abandon_rate,
    },
    MetricDef {
        name: MetricName::LongestWait.registry_name(),
        unit: Unit::Seconds,
        formula: fixed!("max wait of answered or abandoned calls"),
        parts: |a, _| match a.calls.max_wait_ms {
            Some(w) => Parts {
                numerator: ms(w),
                denominator: None,
            },
            None => Parts {
                numerator: 0.0,
                denominator: Some(0.0),
            },
        },
    },
    MetricDef {
        name: MetricName::Occupancy.registry_name(),
        unit: Unit::Percent,
        formula: fixed!("(time on call + wrap-up) / time AVAILABLE"),
        parts: |a, _| {
            ratio(
                hours(a.agents.on_call_us + a.agents.wrap_up_us),
                hours(a.agents.available_us),
            )
        },
    },
    MetricDef {
        name: MetricName::ContactRate.registry_name(),
        unit: Unit::Percent,
        formula: fixed!("right-party contacts / outbound dials"),
        parts: |a, _| ratio(a.calls.contacts as f64, a.calls.dials as f64),
    },
    MetricDef {
        name: MetricName::ConversionRate.registry_name(),
        unit: Unit::Percent,
        formula: fixed!("successes / right-party contacts"),
        parts: |a, _| ratio(a.calls.successes as f64, a.calls.contacts as f64),
    },
    MetricDef {
        name: MetricName::CallsPerAgentHour.registry_name(),
        unit: Unit::PerHour,
        formula: fixed!("handled / logged-in agent hours"),
        parts: |a, _| ratio(a.calls.handled as f64, hours(a.agents.logged_in_us)),
    },
    MetricDef {
        name: MetricName::OutboundAbandonRateUk.registry_name(),
        unit: Unit::Percent,
        formula: fixed!(
            "D' / (D' + live), D' = drops - drops x AM / (AM + live), AM = machine answers passed to an agent"
        ),
        parts: |a, _| uk_drop_parts(a),
    },
    MetricDef {
        name: MetricName::OutboundAbandonRateUs.registry_name(),
        unit: Unit::Percent,
        formula: fixed!("drops / calls answered by a live person"),
        parts: |a, _| us_drop_parts(a),
    },
];

/// Evaluates one metric definition.
pub fn evaluate_one(def: &MetricDef, aggregates: &Aggregates, rule: &ServiceLevelRule) -> Evaluated {
    let parts = (def.parts)(aggregates, rule);
    let scale = if def.unit == Unit::Percent { 100.0 } else { 1.0 };
    let value = match parts.denominator {
        None => Some(parts.numerator),
        Some(0.0) => None,
        Some(d) => Some(parts.numerator / d * scale),
    };
    Evaluated {
        name: def.name,
        unit: def.unit,
        value,
        numerator: parts.numerator,
        denominator: parts.denominator,
        formula: (def.formula)(rule),
    }
}

/// Every metric of the registry over one aggregate.
pub fn evaluate(aggregates: &Aggregates, rule: &ServiceLevelRule) -> Vec<Evaluated> {
    METRICS.iter().map(|def| evaluate_one(def, aggregates, rule)).collect()
}

pub fn find(name: &str) -> Option<&'static MetricDef> {
    METRICS.iter().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kpi::facts::Counters;

    #[test]
    fn metric_names_mirror_the_registry() {
        let registry: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
        let names: Vec<&str> = MetricName::ALL.iter().map(|m| m.registry_name()).collect();
        assert_eq!(registry, names);
        assert!(MetricName::ALL.iter().all(|m| m.def().is_ok()));
    }

    fn rule(variant: ServiceLevelVariant) -> ServiceLevelRule {
        ServiceLevelRule {
            threshold_seconds: 20,
            variant,
            exclude_short_abandons_from_abandon_rate: false,
            exclude_short_abandons_from_service_level: false,
        }
    }

    #[test]
    fn empty_data_gives_null_ratios_and_zero_counts() {
        let values = evaluate(
            &Aggregates::default(),
            &rule(ServiceLevelVariant::AnsweredWithinOverAnswered),
        );
        for v in values {
            match v.unit {
                Unit::Count if v.name != "longestWait" => assert_eq!(v.value, Some(0.0), "{}", v.name),
                _ => assert_eq!(v.value, None, "{}", v.name),
            }
        }
    }

    #[test]
    fn service_level_variants() {
        let a = Aggregates {
            calls: Counters {
                answered: 80,
                abandoned: 20,
                answered_within_sl: 60,
                abandoned_within_sl: 5,
                short_abandoned: 4,
                ..Counters::default()
            },
            ..Aggregates::default()
        };
        let sl = |v| evaluate_one(find("serviceLevel").expect("registered"), &a, &rule(v)).value;
        assert_eq!(
            sl(ServiceLevelVariant::AnsweredWithinOverOfferedExcludingShortAbandons),
            Some(60.0 / 96.0 * 100.0)
        );
        assert_eq!(sl(ServiceLevelVariant::AnsweredWithinOverAnswered), Some(75.0));
        assert_eq!(
            sl(ServiceLevelVariant::AnsweredAndAbandonedWithinOverOffered),
            Some(65.0)
        );
        assert_eq!(sl(ServiceLevelVariant::AnsweredWithinOverOffered), Some(60.0));
        assert_eq!(
            sl(ServiceLevelVariant::AnsweredWithinOverOfferedExcludingAbandonsWithin),
            Some(60.0 / 95.0 * 100.0)
        );
    }

    #[test]
    fn uk_drop_rate_adjusts_for_machines() {
        // 6 drops, 294 live to agents (300 human answered), 100 machines.
        let a = Aggregates {
            calls: Counters {
                drops: 6,
                human_answered: 300,
                machine_answered: 100,
                ..Counters::default()
            },
            ..Aggregates::default()
        };
        let d = 6.0 - 6.0 * 100.0 / 394.0;
        let uk = evaluate_one(
            find("outboundAbandonRateUk").expect("registered"),
            &a,
            &rule(ServiceLevelVariant::AnsweredWithinOverAnswered),
        );
        assert_eq!(uk.value, Some(d / (d + 294.0) * 100.0));
        let us = evaluate_one(
            find("outboundAbandonRateUs").expect("registered"),
            &a,
            &rule(ServiceLevelVariant::AnsweredWithinOverAnswered),
        );
        assert_eq!(us.value, Some(2.0));
    }
}

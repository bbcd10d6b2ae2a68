//! The disposition breakdown: calls per disposition and per disposition flag, with their
//! shares of the dispositioned calls.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::contact_centre::{self as cc, DispositionDirectoryEntry};
use crate::error::AppResult;
use crate::kpi::filter::ResolvedFilter;
use crate::kpi::plan::*;
use crate::kpi::query::{self, CounterMask, GroupSpec, GroupedQuery};

/// A flag of the disposition table, for the per-flag breakdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum DispositionFlag {
    Contact,
    Success,
    Callback,
    DoNotCall,
    AnsweringMachine,
    HumanAnswered,
}

impl DispositionFlag {
    pub const ALL: [DispositionFlag; 6] = [
        DispositionFlag::Contact,
        DispositionFlag::Success,
        DispositionFlag::Callback,
        DispositionFlag::DoNotCall,
        DispositionFlag::AnsweringMachine,
        DispositionFlag::HumanAnswered,
    ];

    fn of(self, d: &DispositionDirectoryEntry) -> bool {
        match self {
            DispositionFlag::Contact => d.contact,
            DispositionFlag::Success => d.success,
            DispositionFlag::Callback => d.callback,
            DispositionFlag::DoNotCall => d.do_not_call,
            DispositionFlag::AnsweringMachine => d.answering_machine,
            DispositionFlag::HumanAnswered => d.human_answered,
        }
    }
}

pub struct DispositionShare {
    pub disposition: DispositionDirectoryEntry,
    pub calls: i64,
    /// Percent of the dispositioned calls; null when there are none.
    pub share: Option<f64>,
}

pub struct FlagShare {
    pub flag: DispositionFlag,
    pub calls: i64,
    pub share: Option<f64>,
}

pub struct DispositionBreakdown {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Calls with a disposition in scope: the denominator of every share.
    pub dispositioned: i64,
    /// Every disposition of the organization, most frequent first (then by code).
    pub dispositions: Vec<DispositionShare>,
    pub flags: Vec<FlagShare>,
}

fn share(part: i64, total: i64) -> Option<f64> {
    (total > 0).then(|| part as f64 / total as f64 * 100.0)
}

/// Calls per disposition (whole hours from `kpi_hourly_disposition`, edges from raw calls) and
/// per disposition flag, with their shares of the dispositioned calls.
pub async fn disposition_breakdown(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    filter: &ResolvedFilter,
) -> AppResult<DispositionBreakdown> {
    let directory = cc::disposition_directory(conn, tenant).await?;
    let sources = plan_sources(filter.from, filter.to, &[], false);
    let agent_keys: Vec<Uuid> = Vec::new();
    let campaign_keys: Vec<Uuid> = Vec::new();
    let group = GroupSpec::default();
    let q = GroupedQuery {
        scope: &filter.scope,
        group: &group,
        agent_keys: &agent_keys,
        campaign_keys: &campaign_keys,
        counters: CounterMask::ALL,
    };
    let mut counts: HashMap<Uuid, i64> = HashMap::new();
    if let Some(range) = sources.hour_range() {
        for (id, n) in query::rollup_disposition_calls(conn, tenant, q, range).await? {
            *counts.entry(id).or_default() += n;
        }
    }
    for (id, n) in query::raw_disposition_calls(conn, tenant, &filter.scope, &sources.raw).await? {
        *counts.entry(id).or_default() += n;
    }
    let dispositioned: i64 = counts.values().sum();
    let flags = DispositionFlag::ALL
        .iter()
        .map(|flag| {
            let calls = directory
                .iter()
                .filter(|d| flag.of(d))
                .map(|d| counts.get(&d.id).copied().unwrap_or(0))
                .sum();
            FlagShare {
                flag: *flag,
                calls,
                share: share(calls, dispositioned),
            }
        })
        .collect();
    let mut dispositions: Vec<DispositionShare> = directory
        .into_iter()
        .map(|d| {
            let calls = counts.get(&d.id).copied().unwrap_or(0);
            DispositionShare {
                share: share(calls, dispositioned),
                calls,
                disposition: d,
            }
        })
        .collect();
    dispositions.sort_by(|a, b| {
        b.calls
            .cmp(&a.calls)
            .then_with(|| a.disposition.code.cmp(&b.disposition.code))
    });
    Ok(DispositionBreakdown {
        start: filter.from,
        end: filter.to,
        dispositioned,
        dispositions,
        flags,
    })
}

//! Outbound-abandonment alerts for the `complianceAlerts` subscription: edge-triggered, one
//! message per change of a campaign's level in one rule's window.
//!
//! The status itself comes from the KPI engine ([`compliance_status`]); what this module adds
//! is when to re-read it and what to announce. [`EdgeDetector`] is the pure part: it remembers
//! each (campaign, window)'s last level and reports the changes — OK → WARNING → BREACH → OK
//! each announced once, nothing while the level holds. [`alerts`] drives it: a read on
//! subscribing (whose campaigns already at WARNING or BREACH are announced with no previous
//! level), then a re-read after a call of a watched campaign changed or the bus resynced, at
//! most once per [`MIN_INTERVAL`].

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::Stream;
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::tenancy::TenantPool;
use crate::error::AppResult;
use crate::kpi::analytics::{compliance_status, ComplianceLevel, ComplianceRow};
use crate::realtime::bus::{Bus, Received};
use crate::realtime::live::in_scope;
use crate::realtime::{BusEvent, Topic};

/// How often one subscriber's status may be re-read.
pub const MIN_INTERVAL: Duration = Duration::from_secs(2);

/// The regulatory window a level belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleWindow {
    /// UK (Ofcom): rolling 24 hours.
    Uk24h,
    /// US (FTC): rolling 30 days.
    Us30d,
}

impl RuleWindow {
    /// The name the API gives the window.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleWindow::Uk24h => "UK_24H",
            RuleWindow::Us30d => "US_30D",
        }
    }
}

/// One campaign's level in one window, as read now.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub campaign_id: Uuid,
    pub campaign_name: String,
    pub window: RuleWindow,
    pub level: ComplianceLevel,
    /// The abandonment rate in percent; `None` without live calls.
    pub rate: Option<f64>,
    pub limit: f64,
}

/// The readings of a status read: per campaign, UK then US.
pub fn readings(rows: &[ComplianceRow]) -> Vec<Reading> {
    rows.iter()
        .flat_map(|row| {
            [(RuleWindow::Uk24h, &row.uk), (RuleWindow::Us30d, &row.us)].map(|(window, w)| Reading {
                campaign_id: row.campaign.id,
                campaign_name: row.campaign.name.clone(),
                window,
                level: w.status,
                rate: w.rate.value,
                limit: w.limit,
            })
        })
        .collect()
}

/// A change of level to announce.
#[derive(Debug, Clone, PartialEq)]
pub struct ComplianceEdge {
    pub campaign_id: Uuid,
    pub campaign_name: String,
    pub window: RuleWindow,
    pub level: ComplianceLevel,
    /// `None` on the first reading of a campaign already at WARNING or BREACH.
    pub previous_level: Option<ComplianceLevel>,
    pub rate: Option<f64>,
    pub limit: f64,
    /// When the reading was taken.
    pub at: DateTime<Utc>,
}

/// Remembers the last level of every (campaign, window) and reports the changes. Pure.
#[derive(Debug)]
pub struct EdgeDetector {
    levels: BTreeMap<(Uuid, RuleWindow), ComplianceLevel>,
    initial: bool,
}

impl Default for EdgeDetector {
    fn default() -> Self {
        Self {
            levels: BTreeMap::new(),
            initial: true,
        }
    }
}

impl EdgeDetector {
    /// Takes one complete reading (taken at `at`) and returns the edges to announce, in the
    /// readings' order. The first reading announces every level other than OK; later ones
    /// announce each level that differs from the last one seen. A campaign first seen after
    /// the first reading (created since) sets its baseline silently.
    pub fn step(&mut self, readings: Vec<Reading>, at: DateTime<Utc>) -> Vec<ComplianceEdge> {
        let mut edges = Vec::new();
        for reading in readings {
            let previous = self.levels.insert((reading.campaign_id, reading.window), reading.level);
            let announce = match previous {
                None => self.initial && reading.level != ComplianceLevel::Ok,
                Some(p) => p != reading.level,
            };
            if announce {
                edges.push(ComplianceEdge {
                    campaign_id: reading.campaign_id,
                    campaign_name: reading.campaign_name,
                    window: reading.window,
                    level: reading.level,
                    previous_level: previous,
                    rate: reading.rate,
                    limit: reading.limit,
                    at,
                });
            }
        }
        self.initial = false;
        edges
    }
}

/// Reads the status of `campaign_ids` (or every outbound campaign) now.
async fn read(db: &TenantPool, tenant: &Tenant, campaign_ids: Option<&[String]>) -> AppResult<Vec<ComplianceRow>> {
    let mut conn = db.get(tenant).await?;
    compliance_status(&mut conn, tenant, "campaignIds", campaign_ids, Utc::now()).await
}

/// Whether an event may change the status of the watched campaigns: a call of one of them
/// changed (anything else on the interactions topic counts too, to be safe).
fn touches(event: &BusEvent, watched: &Option<Vec<Uuid>>) -> bool {
    match event {
        BusEvent::Interactions { calls } => calls.iter().any(|c| in_scope(watched, c.campaign_id)),
        BusEvent::AgentState { .. } | BusEvent::KpiInvalidation { .. } | BusEvent::Settings { .. } => true,
        BusEvent::AgentProfiles { .. }
        | BusEvent::ApiKeyRevoked { .. }
        | BusEvent::UserAccessChanged { .. }
        | BusEvent::OrganizationSuspended
        | BusEvent::ReportRun { .. }
        | BusEvent::Dashboard { .. } => false,
    }
}

/// The alerts of `campaign_ids` (API ids, or every outbound campaign when `None`). The first
/// read happens before this returns, so bad ids fail the subscription (BAD_USER_INPUT naming
/// `campaignIds[i]`) instead of its stream; it is also the baseline. A failed re-read is
/// logged and the previous levels stand.
pub async fn alerts(
    db: TenantPool,
    bus: &Bus,
    tenant: Tenant,
    campaign_ids: Option<Vec<String>>,
) -> AppResult<impl Stream<Item = ComplianceEdge>> {
    let first = read(&db, &tenant, campaign_ids.as_deref()).await?;
    let mut events = bus.receiver(&[Topic::Interactions]);
    Ok(async_stream::stream! {
        let mut detector = EdgeDetector::default();
        let mut rows = first;
        loop {
            for edge in detector.step(readings(&rows), Utc::now()) {
                yield edge;
            }
            // Wait for a call of a watched (outbound) campaign to change (or a resync),
            // then at most one re-read per interval.
            let watched = Some(rows.iter().map(|r| r.campaign.id).collect::<Vec<Uuid>>());
            loop {
                match events.recv().await {
                    Received::Event(event) if event.organization_id == tenant.org_id() => {
                        if touches(&event.payload, &watched) {
                            break;
                        }
                    }
                    Received::Event(_) => {}
                    Received::Resync => break,
                    Received::Closed => return,
                }
            }
            tokio::time::sleep(MIN_INTERVAL).await;
            match read(&db, &tenant, campaign_ids.as_deref()).await {
                Ok(fresh) => rows = fresh,
                Err(error) => {
                    tracing::warn!(?error, "compliance alerts: reading the status failed");
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kpi::analytics::ComplianceLevel::{Breach, Ok as Fine, Warning};

    fn reading(campaign: Uuid, window: RuleWindow, level: ComplianceLevel) -> Reading {
        Reading {
            campaign_id: campaign,
            campaign_name: "Renewals".into(),
            window,
            level,
            rate: Some(2.5),
            limit: 3.0,
        }
    }

    /// (level, previous level) of each edge.
    fn levels(edges: &[ComplianceEdge]) -> Vec<(ComplianceLevel, Option<ComplianceLevel>)> {
        edges.iter().map(|e| (e.level, e.previous_level)).collect()
    }

    #[test]
    fn each_change_of_level_is_announced_once() {
        let c = Uuid::new_v4();
        let mut detector = EdgeDetector::default();
        let now = Utc::now();
        let mut step = |level| detector.step(vec![reading(c, RuleWindow::Uk24h, level)], now);
        assert!(step(Fine).is_empty(), "OK on subscribing is not news");
        assert_eq!(levels(&step(Warning)), [(Warning, Some(Fine))]);
        assert!(step(Warning).is_empty(), "same level: nothing");
        assert_eq!(levels(&step(Breach)), [(Breach, Some(Warning))]);
        assert!(step(Breach).is_empty());
        assert_eq!(levels(&step(Fine)), [(Fine, Some(Breach))]);
        assert!(step(Fine).is_empty());
    }

    #[test]
    fn on_subscribing_only_campaigns_at_warning_or_breach_are_announced() {
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut detector = EdgeDetector::default();
        let edges = detector.step(
            vec![
                reading(a, RuleWindow::Uk24h, Fine),
                reading(a, RuleWindow::Us30d, Warning),
                reading(b, RuleWindow::Uk24h, Breach),
                reading(c, RuleWindow::Us30d, Fine),
            ],
            Utc::now(),
        );
        let announced: Vec<_> = edges
            .iter()
            .map(|e| (e.campaign_id, e.window, e.level, e.previous_level))
            .collect();
        assert_eq!(
            announced,
            [
                (a, RuleWindow::Us30d, Warning, None),
                (b, RuleWindow::Uk24h, Breach, None)
            ]
        );
    }

    #[test]
    fn windows_are_tracked_separately() {
        let c = Uuid::new_v4();
        let mut detector = EdgeDetector::default();
        let now = Utc::now();
        detector.step(
            vec![reading(c, RuleWindow::Uk24h, Fine), reading(c, RuleWindow::Us30d, Fine)],
            now,
        );
        let edges = detector.step(
            vec![
                reading(c, RuleWindow::Uk24h, Fine),
                reading(c, RuleWindow::Us30d, Breach),
            ],
            now,
        );
        assert_eq!(edges.len(), 1);
        assert_eq!((edges[0].window, edges[0].level), (RuleWindow::Us30d, Breach));
        assert_eq!(edges[0].at, now);
    }

    #[test]
    fn a_campaign_first_seen_later_sets_its_baseline_silently() {
        let (old, new) = (Uuid::new_v4(), Uuid::new_v4());
        let mut detector = EdgeDetector::default();
        let now = Utc::now();
        detector.step(vec![reading(old, RuleWindow::Uk24h, Fine)], now);
        let edges = detector.step(
            vec![
                reading(old, RuleWindow::Uk24h, Fine),
                reading(new, RuleWindow::Uk24h, Breach),
            ],
            now,
        );
        assert!(edges.is_empty());
        let edges = detector.step(vec![reading(new, RuleWindow::Uk24h, Warning)], now);
        assert_eq!(levels(&edges), [(Warning, Some(Breach))]);
    }

    #[test]
    fn only_calls_of_watched_campaigns_trigger_a_re_read() {
        let (watched, other) = (Uuid::new_v4(), Uuid::new_v4());
        let call = |campaign| crate::realtime::CallChange {
            interaction_id: Uuid::new_v4(),
            external_id: "CA1".into(),
            outcome: crate::domain::Outcome::Abandoned,
            agent_id: None,
            campaign_id: campaign,
            direction: crate::domain::Direction::Outbound,
        };
        let scope = Some(vec![watched]);
        let event = |campaign| BusEvent::Interactions {
            calls: vec![call(campaign)],
        };
        assert!(touches(&event(Some(watched)), &scope));
        assert!(!touches(&event(Some(other)), &scope));
        assert!(!touches(&event(None), &scope));
    }
}

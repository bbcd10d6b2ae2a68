//! The live KPI multiplexer behind `liveKpis` (wallboard tiles per (organization, filter)) and
//! behind `dashboardUpdated` (dashboard widgets per (organization, widget query)): one
//! [`Registry`], generic over what it computes ([`Shared`]), so both follow the same rules.
//!
//! Every subscriber of the same organization and (normalized) filter shares ONE computation:
//! the registry holds one entry per key, refcounted by its subscribers and dropped (its task
//! aborted) when the last one leaves. The entry's task recomputes
//! * only when an event touched its scope (an agent of the scope changed state, a call of the
//!   scope changed, the business settings changed) or the bus asked for a resync;
//! * at most once per [`MIN_RECOMPUTE_INTERVAL`] (events in between are folded into the next
//!   recompute);
//! * and also every [`DRIFT_REFRESH`] without events, because rolling windows and waiting times
//!   move with the clock alone;
//! * with at most `MAX_CONCURRENT_COMPUTATIONS` computations of the process running at once, so
//!   keys that refresh together do not take every database connection from ingest.
//!
//! A result equal to the previous one (ignoring the computation time) is not published, so
//! subscribers get a message only when a tile changed. Results travel in a `watch` channel: a
//! slow subscriber skips to the latest value instead of queueing stale ones.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::{DateTime, NaiveTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::presence as db_presence;
use crate::db::tenancy::TenantPool;
use crate::domain::Direction;
use crate::error::AppResult;
use crate::kpi::filter::{self, RawFilter};
use crate::kpi::metrics::{MetricName, ServiceLevelRule};
use crate::kpi::query::Scope;
use crate::kpi::{evaluate_windows, organization_rule, WindowValues};
use crate::realtime::bus::{Bus, Received};
use crate::realtime::interactions::call_in_scope;
use crate::realtime::{BusEvent, Topic};

/// At most one recompute per key per this interval.
pub const MIN_RECOMPUTE_INTERVAL: Duration = Duration::from_secs(1);
/// Recompute this often even without events (rolling windows, waiting times).
pub const DRIFT_REFRESH: Duration = Duration::from_secs(15);
/// Wait after a failed computation.
const RETRY: Duration = Duration::from_secs(2);
/// Computations of this process running at once, whatever their kind. Keys started together
/// (a dashboard's widgets) refresh together; without a cap they would take a database
/// connection each at the same moment and leave none to ingest (the dashboard benchmark saw
/// `recordCallEvents` answer UNAVAILABLE). A key waiting for a slot still recomputes at most
/// once per interval.
const MAX_CONCURRENT_COMPUTATIONS: usize = 4;
static COMPUTING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT_COMPUTATIONS);

/// Every recompute of every key since the process started (for `/metrics` and the benchmark).
static RECOMPUTES: AtomicU64 = AtomicU64::new(0);

pub fn recomputes() -> u64 {
    RECOMPUTES.load(Ordering::Relaxed)
}

/// A normalized filter: ids sorted and deduplicated, so the same filter written differently
/// shares its computation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LiveFilter {
    pub campaign_ids: Option<Vec<Uuid>>,
    pub team_ids: Option<Vec<Uuid>>,
    pub agent_ids: Option<Vec<Uuid>>,
    pub direction: Option<Direction>,
}

impl LiveFilter {
    pub fn normalized(mut self) -> Self {
        for ids in [&mut self.campaign_ids, &mut self.team_ids, &mut self.agent_ids]
            .into_iter()
            .flatten()
        {
            ids.sort_unstable();
            ids.dedup();
        }
        self
    }

    fn raw(&self, now: DateTime<Utc>) -> RawFilter {
        let text = |ids: &Option<Vec<Uuid>>| ids.as_ref().map(|v| v.iter().map(Uuid::to_string).collect());
        RawFilter {
            from: now - TimeDelta::hours(1),
            to: now,
            campaign_ids: text(&self.campaign_ids),
            team_ids: text(&self.team_ids),
            agent_ids: text(&self.agent_ids),
            direction: self.direction,
        }
    }
}

/// Validates a filter's ids against the tenant (BAD_USER_INPUT naming `prefix.field[i]`).
pub async fn validate(db: &TenantPool, tenant: &Tenant, prefix: &str, filter: &LiveFilter) -> AppResult<()> {
    let mut conn = db.get(tenant).await?;
    filter::resolve(&mut conn, tenant, prefix, &filter.raw(Utc::now())).await?;
    Ok(())
}

/// One window's tiles.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowTiles {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub offered: i64,
    pub answered: i64,
    pub abandoned: i64,
    pub service_level: Option<f64>,
    pub average_speed_of_answer: Option<f64>,
    pub average_handle_time: Option<f64>,
    /// The registry's abandon rate (short abandons left out when the organization says so).
    pub abandon_rate: Option<f64>,
}

impl WindowTiles {
    fn from(values: &WindowValues) -> Self {
        Self {
            start: values.start,
            end: values.end,
            offered: values.count(MetricName::Offered),
            answered: values.count(MetricName::Answered),
            abandoned: values.count(MetricName::Abandoned),
            service_level: values.value(MetricName::ServiceLevel),
            average_speed_of_answer: values.value(MetricName::AverageSpeedOfAnswer),
            average_handle_time: values.value(MetricName::AverageHandleTime),
            abandon_rate: values.value(MetricName::AbandonRate),
        }
    }

    /// Equal apart from the window's moving end.
    fn same_values(&self, other: &Self) -> bool {
        Self {
            end: other.end,
            start: other.start,
            ..self.clone()
        } == *other
    }
}

/// The wallboard tiles of one (organization, filter).
#[derive(Debug, Clone, PartialEq)]
pub struct LiveTiles {
    pub computed_at: DateTime<Utc>,
    pub timezone: String,
    pub rule: ServiceLevelRule,
    /// Today so far, in the organization's time zone.
    pub today: WindowTiles,
    pub last_15_minutes: WindowTiles,
    pub last_60_minutes: WindowTiles,
    pub calls_waiting: i64,
    pub oldest_waiting_since: Option<DateTime<Utc>>,
    /// Active agents of the scope per presence, and per routing state.
    pub agents_by_presence: BTreeMap<String, i64>,
    pub agents_by_routing_state: BTreeMap<String, i64>,
}

impl LiveTiles {
    /// Whether a subscriber would see a difference (the computation time and the windows'
    /// moving ends aside).
    fn same_values(&self, other: &Self) -> bool {
        self.timezone == other.timezone
            && self.rule == other.rule
            && self.today.start == other.today.start
            && self.today.same_values(&other.today)
            && self.last_15_minutes.same_values(&other.last_15_minutes)
            && self.last_60_minutes.same_values(&other.last_60_minutes)
            && self.calls_waiting == other.calls_waiting
            && self.oldest_waiting_since == other.oldest_waiting_since
            && self.agents_by_presence == other.agents_by_presence
            && self.agents_by_routing_state == other.agents_by_routing_state
    }
}

/// Midnight today in `tz`, as an instant (the earliest one on a DST change at midnight).
fn start_of_day(tz: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    let date = now.with_timezone(&tz).date_naive();
    let midnight = date.and_time(NaiveTime::MIN);
    match tz.from_local_datetime(&midnight) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
        // Midnight skipped by a DST jump: the day starts an hour later.
        chrono::LocalResult::None => tz
            .from_local_datetime(&(midnight + TimeDelta::hours(1)))
            .earliest()
            .map_or(now - TimeDelta::hours(24), |t| t.with_timezone(&Utc)),
    }
}

/// Computes the tiles now, through the metric registry (the same formulas as every KPI).
pub async fn compute(db: &TenantPool, tenant: &Tenant, filter: &LiveFilter) -> AppResult<(LiveTiles, Scope)> {
    let now = Utc::now();
    let mut conn = db.get(tenant).await?;
    let scope = filter::resolve(&mut conn, tenant, "filter", &filter.raw(now))
        .await?
        .scope;
    let (rule, tz) = organization_rule(&mut conn, tenant).await?;
    let windows = [
        (start_of_day(tz, now), now),
        (now - TimeDelta::minutes(15), now),
        (now - TimeDelta::minutes(60), now),
    ];
    let values = evaluate_windows(&mut conn, tenant, (rule, tz), &windows, &scope).await?;
    let tiles: Vec<WindowTiles> = values.iter().map(WindowTiles::from).collect();
    let (calls_waiting, oldest_waiting_since) = db_presence::waiting_calls(
        &mut conn,
        tenant,
        scope.campaign_ids.as_deref(),
        scope.agent_ids.as_deref(),
        scope.direction.map(Direction::as_str),
    )
    .await?;
    let agents = db_presence::live_agents(&mut conn, tenant, scope.agent_ids.as_deref()).await?;
    let mut agents_by_presence = BTreeMap::new();
    let mut agents_by_routing_state = BTreeMap::new();
    for agent in &agents {
        *agents_by_presence.entry(agent.presence.clone()).or_insert(0) += 1;
        *agents_by_routing_state.entry(agent.routing_state.clone()).or_insert(0) += 1;
    }
    let [today, last_15_minutes, last_60_minutes]: [WindowTiles; 3] = tiles
        .try_into()
        .map_err(|_| crate::error::AppError::internal("live KPI windows missing"))?;
    Ok((
        LiveTiles {
            computed_at: now,
            timezone: tz.name().to_owned(),
            rule,
            today,
            last_15_minutes,
            last_60_minutes,
            calls_waiting,
            oldest_waiting_since,
            agents_by_presence,
            agents_by_routing_state,
        },
        scope,
    ))
}

/// Whether an event may change the tiles of `scope` (the resolved scope of the last
/// computation; None before the first).
pub fn touches(event: &BusEvent, scope: Option<&Scope>) -> bool {
    let Some(scope) = scope else { return true };
    match event {
        BusEvent::AgentState { agent_id, .. } => in_scope(&scope.agent_ids, Some(*agent_id)),
        // Agent-scoped tiles count calls of the scope's agents only: a call without an agent
        // does not touch them.
        BusEvent::Interactions { calls } => calls
            .iter()
            .any(|call| call_in_scope(&scope.campaign_ids, &scope.agent_ids, scope.direction, call)),
        // A team change re-resolves team-filtered scopes: recompute (rare, and the result is
        // only re-sent when it changed).
        BusEvent::Settings { .. } | BusEvent::AgentProfiles { .. } => true,
        BusEvent::KpiInvalidation { .. }
        | BusEvent::ApiKeyRevoked { .. }
        | BusEvent::UserAccessChanged { .. }
        | BusEvent::OrganizationSuspended
        | BusEvent::ReportRun { .. }
        | BusEvent::Dashboard { .. } => false,
    }
}

/// Whether an id is within an optional id filter: no filter admits everything, a filter
/// admits only its ids (never a missing one).
pub fn in_scope(filter: &Option<Vec<Uuid>>, id: Option<Uuid>) -> bool {
    match (filter, id) {
        (None, _) => true,
        (Some(ids), Some(id)) => ids.contains(&id),
        (Some(_), None) => false,
    }
}

/// A computation the registry shares: the key (normalized) says what to compute for a
/// tenant. `liveKpis` tiles are one ([`LiveFilter`]); dashboard widgets are another (one per
/// distinct widget query, see `dashboards`). Every kind gets the same rules: one computation
/// per (organization, key), refcounted, at most one recompute per second, recomputed only
/// when an event touched its scope (or the clock moved it), unchanged results not published.
pub trait Shared: Clone + Eq + std::hash::Hash + Send + Sync + 'static {
    type Value: Send + Sync + 'static;

    /// The same key written canonically (ids sorted), so equal queries share.
    fn normalized(self) -> Self;

    /// Computes the value now, with the scope that decides which events touch it (None:
    /// every event of the organization's topics does).
    fn compute(
        &self,
        db: &TenantPool,
        tenant: &Tenant,
    ) -> impl std::future::Future<Output = AppResult<(Self::Value, Option<Scope>)>> + Send;

    /// Whether a subscriber would see no difference between two values.
    fn same(a: &Self::Value, b: &Self::Value) -> bool;

    /// Whether an event may change the value (`scope`: of the last computation; None before
    /// the first, or when the computation has no narrower scope).
    fn touches(&self, event: &BusEvent, scope: Option<&Scope>) -> bool {
        touches(event, scope)
    }
}

impl Shared for LiveFilter {
    type Value = LiveTiles;

    fn normalized(self) -> Self {
        LiveFilter::normalized(self)
    }

    async fn compute(&self, db: &TenantPool, tenant: &Tenant) -> AppResult<(LiveTiles, Option<Scope>)> {
        let (tiles, scope) = compute(db, tenant, self).await?;
        Ok((tiles, Some(scope)))
    }

    fn same(a: &LiveTiles, b: &LiveTiles) -> bool {
        a.same_values(b)
    }
}

/// A computation known to the registry only by its canonical text and a way to compute it as
/// JSON: how a higher layer (dashboard widgets, whose queries name saved reports and relative
/// ranges) shares its computations through this same registry without the registry knowing
/// its types. Two keys with the same canonical text are the same computation.
pub trait Computation: Send + Sync + 'static {
    fn compute<'a>(
        &'a self,
        db: &'a TenantPool,
        tenant: &'a Tenant,
    ) -> futures_util::future::BoxFuture<'a, AppResult<(serde_json::Value, Option<Scope>)>>;

    fn touches(&self, event: &BusEvent, scope: Option<&Scope>) -> bool;
}

/// A [`Computation`] with its canonical text (equality and hashing use the text only).
#[derive(Clone)]
pub struct DynQuery {
    pub canonical: Arc<str>,
    pub computation: Arc<dyn Computation>,
}

impl PartialEq for DynQuery {
    fn eq(&self, other: &Self) -> bool {
        self.canonical == other.canonical
    }
}

impl Eq for DynQuery {}

impl std::hash::Hash for DynQuery {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.canonical.hash(state);
    }
}

impl Shared for DynQuery {
    type Value = serde_json::Value;

    /// The canonical text is written normalized by whoever builds the query.
    fn normalized(self) -> Self {
        self
    }

    async fn compute(&self, db: &TenantPool, tenant: &Tenant) -> AppResult<(serde_json::Value, Option<Scope>)> {
        self.computation.compute(db, tenant).await
    }

    fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
        a == b
    }

    fn touches(&self, event: &BusEvent, scope: Option<&Scope>) -> bool {
        self.computation.touches(event, scope)
    }
}

/// The shared computations of JSON-valued queries (dashboard widgets) on this instance.
pub type QueryRegistry = Registry<DynQuery>;

/// One shared computation.
pub struct Entry<V> {
    latest: watch::Receiver<Option<Arc<V>>>,
    task: AbortHandle,
}

impl<V> Drop for Entry<V> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<V> Entry<V> {
    /// A receiver of the latest value (None until the first computation).
    pub fn watch(&self) -> watch::Receiver<Option<Arc<V>>> {
        self.latest.clone()
    }
}

/// The `liveKpis` computation of one (organization, filter).
pub type LiveEntry = Entry<LiveTiles>;

/// The shared `liveKpis` computations of this instance.
pub type LiveRegistry = Registry<LiveFilter>;

/// The entries of a registry: (organization, key) → the shared computation, while held.
type Entries<K> = HashMap<(Uuid, K), Weak<Entry<<K as Shared>::Value>>>;

/// The shared computations of one kind on this instance.
pub struct Registry<K: Shared> {
    entries: Mutex<Entries<K>>,
}

impl<K: Shared> Default for Registry<K> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Shared> Registry<K> {
    /// The entry of (tenant, key), started when there is none. Hold the `Arc` while
    /// subscribed: the computation stops when the last holder drops it.
    pub fn entry(&self, db: &TenantPool, bus: &Bus, tenant: &Tenant, key: K) -> Arc<Entry<K::Value>> {
        let key = (tenant.org_id(), key.normalized());
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.retain(|_, weak| weak.strong_count() > 0);
        if let Some(entry) = entries.get(&key).and_then(Weak::upgrade) {
            return entry;
        }
        let (sender, latest) = watch::channel(None);
        let events = bus.receiver(&[Topic::AgentState, Topic::Interactions, Topic::Settings]);
        let task = tokio::spawn(run(db.clone(), *tenant, key.1.clone(), events, sender)).abort_handle();
        let entry = Arc::new(Entry { latest, task });
        entries.insert(key, Arc::downgrade(&entry));
        entry
    }

    /// Keys being computed now.
    pub fn len(&self) -> usize {
        let entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.values().filter(|w| w.strong_count() > 0).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

async fn run<K: Shared>(
    db: TenantPool,
    tenant: Tenant,
    key: K,
    mut events: crate::realtime::bus::Receiver,
    sender: watch::Sender<Option<Arc<K::Value>>>,
) {
    let mut dirty = true;
    let mut scope: Option<Scope> = None;
    let mut last: Option<Instant> = None;
    let mut drift = tokio::time::interval(DRIFT_REFRESH);
    drift.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    drift.tick().await;
    loop {
        let due = last.map_or_else(Instant::now, |at| at + MIN_RECOMPUTE_INTERVAL);
        if dirty && Instant::now() >= due {
            last = Some(Instant::now());
            RECOMPUTES.fetch_add(1, Ordering::Relaxed);
            let computed = match COMPUTING.acquire().await {
                Ok(_slot) => key.compute(&db, &tenant).await,
                // The semaphore is never closed.
                Err(_) => continue,
            };
            match computed {
                Ok((value, resolved)) => {
                    dirty = false;
                    scope = resolved;
                    sender.send_if_modified(|current| {
                        if current.as_ref().is_some_and(|c| K::same(c, &value)) {
                            return false;
                        }
                        *current = Some(Arc::new(value));
                        true
                    });
                    drift.reset();
                }
                Err(error) => {
                    tracing::warn!(?error, "live computation failed; retrying");
                    last = Some(Instant::now() + RETRY);
                }
            }
            continue;
        }
        tokio::select! {
            received = events.recv() => match received {
                Received::Event(event) if event.organization_id == tenant.org_id() => {
                    if key.touches(&event.payload, scope.as_ref()) {
                        dirty = true;
                    }
                }
                Received::Event(_) => {}
                Received::Resync => dirty = true,
                Received::Closed => return,
            },
            _ = tokio::time::sleep_until(due), if dirty => {}
            _ = drift.tick() => dirty = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_normalized() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let one = LiveFilter {
            agent_ids: Some(vec![a, b, a]),
            ..LiveFilter::default()
        };
        let two = LiveFilter {
            agent_ids: Some(vec![b, a]),
            ..LiveFilter::default()
        };
        assert_eq!(one.normalized(), two.normalized());
    }

    #[test]
    fn days_start_at_local_midnight() {
        let tz: Tz = "Europe/London".parse().unwrap_or(Tz::UTC);
        let now = Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 0).single().unwrap_or_default();
        assert_eq!(
            start_of_day(tz, now),
            Utc.with_ymd_and_hms(2026, 6, 30, 23, 0, 0).single().unwrap_or_default()
        );
    }

    #[test]
    fn events_outside_the_scope_do_not_touch_it() {
        let (mine, other) = (Uuid::new_v4(), Uuid::new_v4());
        let scope = Scope {
            agent_ids: Some(vec![mine]),
            ..Scope::default()
        };
        let state = |id: Uuid| BusEvent::AgentState {
            agent_id: id,
            change: crate::realtime::AgentStateChange::Presence {
                state: crate::domain::Presence::Available,
                reason: None,
            },
        };
        assert!(touches(&state(mine), Some(&scope)));
        assert!(!touches(&state(other), Some(&scope)));
        let call = |id: Uuid| BusEvent::Interactions {
            calls: vec![crate::realtime::CallChange {
                interaction_id: Uuid::new_v4(),
                external_id: "CA1".into(),
                outcome: crate::domain::Outcome::InProgress,
                agent_id: Some(id),
                campaign_id: None,
                direction: Direction::Inbound,
            }],
        };
        assert!(touches(&call(mine), Some(&scope)));
        assert!(!touches(&call(other), Some(&scope)));
        assert!(
            touches(&state(other), None),
            "before the first computation everything counts"
        );
    }
}

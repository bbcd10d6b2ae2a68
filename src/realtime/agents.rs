//! The live agent board of an organization: every active agent's presence, routing state and
//! current call, kept in memory by ONE task per organization on this instance and shared by
//! every `agentStates` subscriber of it. A subscriber costs a broadcast receiver, not a query:
//! its snapshot is the board's, its deltas are the board's.
//!
//! The board task listens to the agent-state topic. An event only says which agent changed;
//! the task re-reads those agents from Postgres (the truth — events are hints), batching the
//! events that arrived meanwhile into one query, and broadcasts a delta per agent whose row
//! changed. A bus resync, a lagged receiver or a failed read re-reads the whole board and
//! broadcasts a fresh snapshot marked as a resync. The board is dropped (its task aborted)
//! when its last subscriber leaves.
//!
//! What one subscriber sees of the board is [`follow`]: its filtered snapshot, then deltas.
//! The merge of board updates into those messages is the [`BoardFollower`]'s pure step, kept
//! here (not in the resolver) so it is unit-tested without a database or a socket; the
//! `agentStates` resolver only maps its messages to GraphQL objects.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use futures_util::Stream;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, watch};
use tokio::task::AbortHandle;
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::presence::{self as db_presence, LiveAgentRow};
use crate::db::tenancy::TenantPool;
use crate::error::{AppError, AppResult};
use crate::realtime::bus::{Bus, Received};
use crate::realtime::{BusEvent, StreamPosition, Topic};

/// Wait after a failed read before trying again.
const RETRY: Duration = Duration::from_secs(1);
/// How long a new subscriber waits for the board's first read.
const FIRST_LOAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Board updates folded into one subscriber message at most.
pub const MAX_BATCHED_UPDATES: usize = 256;

/// An agent as the board holds it: shared by every subscriber's messages.
pub type LiveAgent = Arc<LiveAgentRow>;

/// What a board broadcasts.
#[derive(Debug, Clone)]
pub enum BoardUpdate {
    /// One agent changed (or appeared). `previous_team` is the team it had on the board
    /// before (`None` for a new agent or no team), so a team-filtered subscriber can tell that
    /// the agent left its teams.
    Changed {
        version: u64,
        agent: LiveAgent,
        previous_team: Option<Uuid>,
    },
    /// An agent left the board (deactivated).
    Removed { version: u64, agent_id: Uuid },
    /// The whole board was re-read after a possible gap.
    Resync { version: u64, agents: Arc<Vec<LiveAgent>> },
}

#[derive(Default)]
struct BoardState {
    /// 0 until the first read.
    version: u64,
    agents: HashMap<Uuid, LiveAgent>,
    /// The agents by name: the snapshot every new subscriber gets.
    sorted: Arc<Vec<LiveAgent>>,
}

impl BoardState {
    fn rebuild(&mut self) {
        let mut list: Vec<LiveAgent> = self.agents.values().cloned().collect();
        list.sort_by(|a, b| (&a.display_name, a.id).cmp(&(&b.display_name, b.id)));
        self.sorted = Arc::new(list);
    }
}

/// One organization's live board (see the module documentation).
pub struct Board {
    state: RwLock<BoardState>,
    updates: broadcast::Sender<BoardUpdate>,
    loaded: watch::Sender<bool>,
    task: Mutex<Option<AbortHandle>>,
}

impl Drop for Board {
    fn drop(&mut self) {
        if let Some(task) = self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

impl Board {
    /// Subscribe first, then read the snapshot: an update with a version above the snapshot's
    /// is news, one at or below it is already in the snapshot.
    pub fn subscribe(&self) -> (broadcast::Receiver<BoardUpdate>, u64, Arc<Vec<LiveAgent>>) {
        let receiver = self.updates.subscribe();
        let (version, agents) = self.snapshot();
        (receiver, version, agents)
    }

    /// The board's version and every agent on it, by name.
    pub fn snapshot(&self) -> (u64, Arc<Vec<LiveAgent>>) {
        let state = self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        (state.version, state.sorted.clone())
    }

    fn replace_all(&self, rows: Vec<LiveAgentRow>) {
        let (version, agents) = {
            let mut state = self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            state.version += 1;
            state.agents = rows.into_iter().map(|r| (r.id, Arc::new(r))).collect();
            state.rebuild();
            (state.version, state.sorted.clone())
        };
        let _ = self.updates.send(BoardUpdate::Resync { version, agents });
    }

    fn apply(&self, asked: &BTreeSet<Uuid>, rows: Vec<LiveAgentRow>) {
        let mut updates = Vec::new();
        {
            let mut state = self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut found = BTreeSet::new();
            for row in rows {
                found.insert(row.id);
                if state.agents.get(&row.id).is_some_and(|old| **old == row) {
                    continue;
                }
                state.version += 1;
                let agent = Arc::new(row);
                let previous_team = state.agents.insert(agent.id, agent.clone()).and_then(|old| old.team_id);
                updates.push(BoardUpdate::Changed {
                    version: state.version,
                    agent,
                    previous_team,
                });
            }
            for gone in asked.difference(&found) {
                if state.agents.remove(gone).is_some() {
                    state.version += 1;
                    updates.push(BoardUpdate::Removed {
                        version: state.version,
                        agent_id: *gone,
                    });
                }
            }
            if !updates.is_empty() {
                state.rebuild();
            }
        }
        for update in updates {
            let _ = self.updates.send(update);
        }
    }
}

/// The boards of this instance, one per organization with subscribers.
#[derive(Default)]
pub struct Boards {
    boards: Mutex<HashMap<Uuid, Weak<Board>>>,
}

impl Boards {
    /// The organization's board (started when it has none), once its first read is done.
    /// `buffer`: updates buffered per subscriber; one that falls further behind gets a resync
    /// snapshot ([`crate::config::Settings::live_updates_buffer`]).
    pub async fn board(&self, db: &TenantPool, bus: &Bus, tenant: &Tenant, buffer: usize) -> AppResult<Arc<Board>> {
        let board = {
            let mut boards = self.boards.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            boards.retain(|_, weak| weak.strong_count() > 0);
            match boards.get(&tenant.org_id()).and_then(Weak::upgrade) {
                Some(board) => board,
                None => {
                    let board = Arc::new(Board {
                        state: RwLock::new(BoardState::default()),
                        updates: broadcast::channel(buffer.max(1)).0,
                        loaded: watch::channel(false).0,
                        task: Mutex::new(None),
                    });
                    // Subscribed before the first read, so nothing between them is missed.
                    let events = bus.receiver(&[Topic::AgentState]);
                    let task = tokio::spawn(run(Arc::downgrade(&board), db.clone(), *tenant, events));
                    *board.task.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(task.abort_handle());
                    boards.insert(tenant.org_id(), Arc::downgrade(&board));
                    board
                }
            }
        };
        let mut loaded = board.loaded.subscribe();
        let ready = matches!(
            tokio::time::timeout(FIRST_LOAD_TIMEOUT, loaded.wait_for(|done| *done)).await,
            Ok(Ok(_))
        );
        if ready {
            Ok(board)
        } else {
            Err(AppError::Unavailable(
                "the live agent view is unavailable; try again".into(),
            ))
        }
    }

    /// Organizations with a live board on this instance.
    pub fn len(&self) -> usize {
        let boards = self.boards.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        boards.values().filter(|w| w.strong_count() > 0).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The agents an event is about; `None` for an event of another kind.
fn agents_of(event: &BusEvent) -> Option<Vec<Uuid>> {
    match event {
        BusEvent::AgentState { agent_id, .. } => Some(vec![*agent_id]),
        BusEvent::AgentProfiles { agent_ids } => Some(agent_ids.clone()),
        BusEvent::Interactions { .. }
        | BusEvent::KpiInvalidation { .. }
        | BusEvent::Settings { .. }
        | BusEvent::ApiKeyRevoked { .. }
        | BusEvent::UserAccessChanged { .. }
        | BusEvent::OrganizationSuspended
        | BusEvent::ReportRun { .. }
        | BusEvent::Dashboard { .. } => None,
    }
}

async fn load_all(db: &TenantPool, tenant: &Tenant) -> AppResult<Vec<LiveAgentRow>> {
    let mut conn = db.get(tenant).await?;
    db_presence::live_agents(&mut conn, tenant, None).await
}

async fn load_some(db: &TenantPool, tenant: &Tenant, ids: &BTreeSet<Uuid>) -> AppResult<Vec<LiveAgentRow>> {
    let ids: Vec<Uuid> = ids.iter().copied().collect();
    let mut conn = db.get(tenant).await?;
    db_presence::live_agents(&mut conn, tenant, Some(&ids)).await
}

/// The board's task (see the module documentation).
async fn run(board: Weak<Board>, db: TenantPool, tenant: Tenant, mut events: crate::realtime::bus::Receiver) {
    let mut full_reload = true;
    loop {
        if full_reload {
            match load_all(&db, &tenant).await {
                Ok(rows) => {
                    let Some(board) = board.upgrade() else { return };
                    board.replace_all(rows);
                    board.loaded.send_replace(true);
                    full_reload = false;
                }
                Err(error) => {
                    tracing::warn!(?error, "live agent board: reading agents failed; retrying");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            }
        }
        // Wait for one signal, then take every one already queued: one query for the batch.
        let mut changed = BTreeSet::new();
        let mut next = Some(events.recv().await);
        while let Some(received) = next.take() {
            match received {
                // The receiver listens to the agent-state topic only: `None` cannot happen, and
                // would only cost a full re-read.
                Received::Event(event) if event.organization_id == tenant.org_id() => match agents_of(&event.payload) {
                    Some(ids) => changed.extend(ids),
                    None => full_reload = true,
                },
                Received::Event(_) => {}
                Received::Resync => full_reload = true,
                Received::Closed => return,
            }
            if changed.len() >= 1_000 {
                break;
            }
            next = futures_util::FutureExt::now_or_never(events.recv());
        }
        if full_reload || changed.is_empty() {
            continue;
        }
        match load_some(&db, &tenant, &changed).await {
            Ok(rows) => {
                let Some(board) = board.upgrade() else { return };
                board.apply(&changed, rows);
            }
            Err(error) => {
                tracing::warn!(?error, "live agent board: re-reading agents failed; reloading");
                tokio::time::sleep(RETRY).await;
                full_reload = true;
            }
        }
    }
}

/// Which agents a subscriber watches (all optional, combined with AND), checked against each
/// agent's current team.
#[derive(Debug, Clone, Default)]
pub struct AgentFilter {
    teams: Option<HashSet<Uuid>>,
    agents: Option<HashSet<Uuid>>,
}

impl AgentFilter {
    /// Agents currently in one of `team_ids`, and among `agent_ids`.
    pub fn new(team_ids: Option<Vec<Uuid>>, agent_ids: Option<Vec<Uuid>>) -> Self {
        Self {
            teams: team_ids.map(|v| v.into_iter().collect()),
            agents: agent_ids.map(|v| v.into_iter().collect()),
        }
    }

    /// Whether the subscriber shows this agent now.
    pub fn matches(&self, agent: &LiveAgentRow) -> bool {
        self.admits_id(agent.id)
            && self
                .teams
                .as_ref()
                .is_none_or(|ids| agent.team_id.is_some_and(|t| ids.contains(&t)))
    }

    fn admits_id(&self, agent_id: Uuid) -> bool {
        self.agents.as_ref().is_none_or(|ids| ids.contains(&agent_id))
    }

    /// An agent this subscriber showed (its previous team matched) that no longer matches
    /// because it moved to another team: the subscriber must drop it.
    fn left_teams(&self, agent: &LiveAgentRow, previous_team: Option<Uuid>) -> bool {
        let Some(teams) = &self.teams else { return false };
        self.admits_id(agent.id)
            && previous_team.is_some_and(|t| teams.contains(&t))
            && !agent.team_id.is_some_and(|t| teams.contains(&t))
    }
}

/// One message of a subscriber's view of the board.
#[derive(Debug, Clone, PartialEq)]
pub enum BoardView {
    /// Every matching agent: replace what is shown. `resync`: sent after a possible gap.
    Snapshot { resync: bool, agents: Vec<LiveAgent> },
    /// Only what changed: agents to update (or add), agents to drop.
    Delta {
        changed: Vec<LiveAgent>,
        removed: Vec<Uuid>,
    },
}

/// What one [`BoardFollower::step`] produced.
#[derive(Debug, Default, PartialEq)]
pub struct FollowerStep {
    /// Messages to send, in order, each with the board version it brings the subscriber to:
    /// at most a resync snapshot, then at most one delta.
    pub messages: Vec<(u64, BoardView)>,
    /// The board is gone: the stream ends after these messages.
    pub closed: bool,
}

/// One subscriber's position on the board and its filter: merges a batch of board updates
/// into the messages that subscriber needs. Pure (no I/O, no clock), so it is tested alone.
#[derive(Debug)]
pub struct BoardFollower {
    filter: AgentFilter,
    /// The board version the subscriber has seen; updates at or below it are already shown.
    version: u64,
}

impl BoardFollower {
    /// A subscriber that has seen the board up to `version` (its snapshot's).
    pub fn new(filter: AgentFilter, version: u64) -> Self {
        Self { filter, version }
    }

    /// The board version the subscriber has seen.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The subscriber's view of a full board.
    pub fn snapshot(&self, agents: &[LiveAgent], resync: bool) -> BoardView {
        BoardView::Snapshot {
            resync,
            agents: agents.iter().filter(|a| self.filter.matches(a)).cloned().collect(),
        }
    }

    /// Folds a batch of updates (in the order received) into at most one resync snapshot and
    /// one delta. A board resync or a lagged receiver replaces everything before it with a
    /// snapshot (`board` supplies the current board after a lag); an agent changed twice is
    /// sent once, as last seen; an agent that moved out of the filtered teams, or was
    /// deactivated, is removed; updates the subscriber has already seen are skipped.
    pub fn step(
        &mut self,
        batch: Vec<Result<BoardUpdate, RecvError>>,
        mut board: impl FnMut() -> (u64, Arc<Vec<LiveAgent>>),
    ) -> FollowerStep {
        let mut resync: Option<(u64, Arc<Vec<LiveAgent>>)> = None;
        let mut changed: Vec<LiveAgent> = Vec::new();
        let mut removed: Vec<Uuid> = Vec::new();
        let mut closed = false;
        for item in batch {
            match item {
                Ok(BoardUpdate::Changed {
                    version,
                    agent,
                    previous_team,
                }) if version > self.version => {
                    self.version = version;
                    if self.filter.matches(&agent) {
                        changed.retain(|a| a.id != agent.id);
                        removed.retain(|id| *id != agent.id);
                        changed.push(agent);
                    } else if self.filter.left_teams(&agent, previous_team) {
                        changed.retain(|a| a.id != agent.id);
                        removed.push(agent.id);
                    }
                }
                Ok(BoardUpdate::Removed { version, agent_id }) if version > self.version => {
                    self.version = version;
                    if self.filter.admits_id(agent_id) {
                        changed.retain(|a| a.id != agent_id);
                        removed.push(agent_id);
                    }
                }
                Ok(BoardUpdate::Changed { .. } | BoardUpdate::Removed { .. }) => {}
                Ok(BoardUpdate::Resync { version, agents }) => {
                    self.version = version;
                    resync = Some((version, agents));
                    changed.clear();
                    removed.clear();
                }
                Err(RecvError::Lagged(_)) => {
                    let (version, agents) = board();
                    self.version = version;
                    resync = Some((version, agents));
                    changed.clear();
                    removed.clear();
                }
                Err(RecvError::Closed) => closed = true,
            }
        }
        let mut messages = Vec::new();
        if let Some((at, agents)) = resync {
            messages.push((at, self.snapshot(&agents, true)));
        }
        if !changed.is_empty() || !removed.is_empty() {
            messages.push((self.version, BoardView::Delta { changed, removed }));
        }
        FollowerStep { messages, closed }
    }
}

/// Waits for one update, then takes whatever else is already queued (up to
/// [`MAX_BATCHED_UPDATES`]): under load a subscriber gets one message for several changes
/// instead of falling further behind. A lag or the end of the board closes the batch.
async fn next_batch(updates: &mut broadcast::Receiver<BoardUpdate>) -> Vec<Result<BoardUpdate, RecvError>> {
    let mut batch = vec![updates.recv().await];
    while batch.len() < MAX_BATCHED_UPDATES {
        match updates.try_recv() {
            Ok(update) => batch.push(Ok(update)),
            Err(TryRecvError::Empty) => break,
            Err(TryRecvError::Lagged(n)) => {
                batch.push(Err(RecvError::Lagged(n)));
                break;
            }
            Err(TryRecvError::Closed) => {
                batch.push(Err(RecvError::Closed));
                break;
            }
        }
    }
    batch
}

/// One subscriber's view of `board`: the filtered snapshot (marked as a resync when
/// `position` says so), then deltas, and a fresh snapshot after any gap. Before each message
/// the board version it brings the subscriber to is reported to `position`, so the WebSocket
/// layer can share the messages between subscribers (see [`StreamPosition`]).
pub fn follow(board: Arc<Board>, filter: AgentFilter, position: StreamPosition) -> impl Stream<Item = BoardView> {
    async_stream::stream! {
        let (mut updates, version, snapshot) = board.subscribe();
        let mut follower = BoardFollower::new(filter, version);
        position.report(version);
        yield follower.snapshot(&snapshot, position.resync_first());
        drop(snapshot);
        loop {
            let batch = next_batch(&mut updates).await;
            let step = follower.step(batch, || board.snapshot());
            for (at, message) in step.messages {
                position.report(at);
                yield message;
            }
            if step.closed {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn agent(id: Uuid, team: Option<Uuid>, presence: &str) -> LiveAgent {
        let at = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().unwrap_or_default();
        Arc::new(LiveAgentRow {
            id,
            display_name: format!("agent {id}"),
            team_id: team,
            team_name: None,
            presence: presence.into(),
            presence_reason: None,
            presence_since: at,
            routing_state: "IDLE".into(),
            routing_since: at,
            call_id: None,
            call_external_id: None,
            call_direction: None,
            call_campaign_id: None,
            call_customer_number: None,
            call_offered_at: None,
            call_answered_at: None,
        })
    }

    fn changed(version: u64, agent: &LiveAgent, previous_team: Option<Uuid>) -> Result<BoardUpdate, RecvError> {
        Ok(BoardUpdate::Changed {
            version,
            agent: agent.clone(),
            previous_team,
        })
    }

    fn removed(version: u64, agent_id: Uuid) -> Result<BoardUpdate, RecvError> {
        Ok(BoardUpdate::Removed { version, agent_id })
    }

    /// The board a lagged subscriber would re-read; these tests never lag unless they say so.
    fn no_board() -> (u64, Arc<Vec<LiveAgent>>) {
        panic!("the board was read although the subscriber did not lag")
    }

    fn delta(changed: &[&LiveAgent], removed: &[Uuid]) -> BoardView {
        BoardView::Delta {
            changed: changed.iter().map(|a| (*a).clone()).collect(),
            removed: removed.to_vec(),
        }
    }

    #[test]
    fn an_agent_changed_twice_in_a_batch_is_sent_once_as_last_seen() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let (a1, a2, b1) = (agent(a, None, "BREAK"), agent(a, None, "LUNCH"), agent(b, None, "AWAY"));
        let mut follower = BoardFollower::new(AgentFilter::default(), 10);
        let step = follower.step(
            vec![changed(11, &a1, None), changed(12, &b1, None), changed(13, &a2, None)],
            no_board,
        );
        assert_eq!(
            step,
            FollowerStep {
                messages: vec![(13, delta(&[&b1, &a2], &[]))],
                closed: false
            }
        );
        assert_eq!(follower.version(), 13);
    }

    #[test]
    fn updates_already_in_the_snapshot_are_skipped() {
        let a = agent(Uuid::new_v4(), None, "BREAK");
        let mut follower = BoardFollower::new(AgentFilter::default(), 10);
        let step = follower.step(
            vec![changed(9, &a, None), changed(10, &a, None), removed(8, a.id)],
            no_board,
        );
        assert_eq!(step, FollowerStep::default(), "nothing to send");
        assert_eq!(follower.version(), 10);
    }

    #[test]
    fn agents_outside_the_filter_are_not_sent_but_advance_the_version() {
        let (mine, other) = (Uuid::new_v4(), Uuid::new_v4());
        let filter = AgentFilter::new(None, Some(vec![mine]));
        let mut follower = BoardFollower::new(filter, 1);
        let theirs = agent(other, None, "AWAY");
        let step = follower.step(vec![changed(2, &theirs, None), removed(3, other)], no_board);
        assert_eq!(step, FollowerStep::default());
        assert_eq!(follower.version(), 3);
        let ours = agent(mine, None, "AWAY");
        let step = follower.step(vec![changed(4, &ours, None), removed(5, mine)], no_board);
        assert_eq!(
            step.messages,
            vec![(5, delta(&[], &[mine]))],
            "changed then removed: removed"
        );
    }

    #[test]
    fn an_agent_leaving_the_filtered_teams_is_removed_and_coming_back_is_changed() {
        let (red, blue, id) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let filter = AgentFilter::new(Some(vec![red]), None);
        let (in_red, in_blue) = (agent(id, Some(red), "AVAILABLE"), agent(id, Some(blue), "AVAILABLE"));
        let mut follower = BoardFollower::new(filter, 0);
        let step = follower.step(vec![changed(1, &in_blue, Some(red))], no_board);
        assert_eq!(step.messages, vec![(1, delta(&[], &[id]))]);
        // Never in the teams: moving between other teams says nothing.
        let other = agent(Uuid::new_v4(), Some(blue), "AVAILABLE");
        assert_eq!(
            follower.step(vec![changed(2, &other, None)], no_board),
            FollowerStep::default()
        );
        // Out and back in one batch: shown as it is now, not removed.
        let step = follower.step(
            vec![changed(3, &in_blue, Some(red)), changed(4, &in_red, Some(blue))],
            no_board,
        );
        assert_eq!(step.messages, vec![(4, delta(&[&in_red], &[]))]);
    }

    #[test]
    fn a_board_resync_replaces_earlier_updates_with_a_filtered_snapshot() {
        let (red, blue) = (Uuid::new_v4(), Uuid::new_v4());
        let (x, y, z) = (
            agent(Uuid::new_v4(), Some(red), "BREAK"),
            agent(Uuid::new_v4(), Some(blue), "BREAK"),
            agent(Uuid::new_v4(), Some(red), "LUNCH"),
        );
        let mut follower = BoardFollower::new(AgentFilter::new(Some(vec![red]), None), 5);
        let board = Arc::new(vec![x.clone(), y.clone()]);
        let step = follower.step(
            vec![
                changed(6, &x, None),
                Ok(BoardUpdate::Resync {
                    version: 20,
                    agents: board,
                }),
                changed(21, &z, None),
            ],
            no_board,
        );
        assert_eq!(
            step.messages,
            vec![
                (
                    20,
                    BoardView::Snapshot {
                        resync: true,
                        agents: vec![x.clone()]
                    }
                ),
                (21, delta(&[&z], &[])),
            ]
        );
    }

    #[test]
    fn a_lagged_subscriber_gets_the_current_board_as_a_resync() {
        let a = agent(Uuid::new_v4(), None, "AWAY");
        let mut follower = BoardFollower::new(AgentFilter::default(), 3);
        let step = follower.step(vec![changed(4, &a, None), Err(RecvError::Lagged(7))], || {
            (99, Arc::new(vec![a.clone()]))
        });
        assert_eq!(
            step.messages,
            vec![(
                99,
                BoardView::Snapshot {
                    resync: true,
                    agents: vec![a.clone()]
                }
            )]
        );
        assert_eq!(follower.version(), 99);
    }

    #[test]
    fn a_closed_board_ends_the_stream_after_what_came_before() {
        let a = agent(Uuid::new_v4(), None, "AWAY");
        let mut follower = BoardFollower::new(AgentFilter::default(), 0);
        let step = follower.step(vec![changed(1, &a, None), Err(RecvError::Closed)], no_board);
        assert_eq!(
            step,
            FollowerStep {
                messages: vec![(1, delta(&[&a], &[]))],
                closed: true
            }
        );
    }

    #[test]
    fn the_first_snapshot_is_filtered_and_marked_as_asked() {
        let team = Uuid::new_v4();
        let (x, y) = (
            agent(Uuid::new_v4(), Some(team), "BREAK"),
            agent(Uuid::new_v4(), None, "BREAK"),
        );
        let follower = BoardFollower::new(AgentFilter::new(Some(vec![team]), None), 1);
        assert_eq!(
            follower.snapshot(&[x.clone(), y], false),
            BoardView::Snapshot {
                resync: false,
                agents: vec![x]
            }
        );
    }
}

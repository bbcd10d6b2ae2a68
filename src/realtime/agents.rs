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

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::task::AbortHandle;
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::presence::{self as db_presence, LiveAgentRow};
use crate::db::{self, DbPool};
use crate::error::{AppError, AppResult};
use crate::realtime::bus::{Bus, Received};
use crate::realtime::Topic;

/// Wait after a failed read before trying again.
const RETRY: Duration = Duration::from_secs(1);
/// How long a new subscriber waits for the board's first read.
const FIRST_LOAD_TIMEOUT: Duration = Duration::from_secs(10);

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
    pub async fn board(&self, db: &DbPool, bus: &Bus, tenant: &Tenant, buffer: usize) -> AppResult<Arc<Board>> {
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

fn agent_of(payload: &serde_json::Value) -> Option<Uuid> {
    payload.get("agentId")?.as_str()?.parse().ok()
}

async fn load_all(db: &DbPool, tenant: &Tenant) -> AppResult<Vec<LiveAgentRow>> {
    let mut conn = db::conn(db).await?;
    db_presence::live_agents(&mut conn, tenant, None).await
}

async fn load_some(db: &DbPool, tenant: &Tenant, ids: &BTreeSet<Uuid>) -> AppResult<Vec<LiveAgentRow>> {
    let ids: Vec<Uuid> = ids.iter().copied().collect();
    let mut conn = db::conn(db).await?;
    db_presence::live_agents(&mut conn, tenant, Some(&ids)).await
}

/// The board's task (see the module documentation).
async fn run(board: Weak<Board>, db: DbPool, tenant: Tenant, mut events: crate::realtime::bus::Receiver) {
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
                Received::Event(event) if event.organization_id == tenant.org_id() => match agent_of(&event.payload) {
                    Some(id) => {
                        changed.insert(id);
                    }
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

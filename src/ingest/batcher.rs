//! Webhook deliveries grouped into shared transactions.
//!
//! Every call's events end in the same few rollup rows (the organization's cell of the hour),
//! so one transaction per delivery would serialize all deliveries on those rows, one commit
//! (one WAL flush) each. Instead each delivery is queued; two workers each take whatever is
//! queued (up to [`MAX_BATCH`], waiting at most [`LINGER`] for more) and run it as ONE
//! transaction through [`store::apply`], then answer every delivery of the batch. A delivery is
//! answered only after its transaction committed, so a 2xx still means "stored". If a batch
//! fails, its deliveries are retried one by one, so one bad delivery cannot fail the others.
//!
//! Every queued delivery counts as work in flight ([`crate::state::Lifecycle::work`]) until its
//! transaction ended, even when its request is gone (the client hung up): a draining process
//! exits only once the queue is empty, so nothing queued is lost to a shutdown.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use diesel_async::AsyncConnection;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::auth::Tenant;
use crate::db::tenancy;
use crate::domain::CallEvent;
use crate::error::{AppError, AppResult};
use crate::ingest::{publish, store, with_retries};
use crate::state::{AppState, WorkGuard};

/// Most deliveries in one transaction.
pub const MAX_BATCH: usize = 256;
/// Deliveries waiting for a worker; a sender beyond that waits (backpressure).
const QUEUE_CAPACITY: usize = 4_096;
/// Concurrent transactions. Two: one can prepare while the other commits; more only queue
/// on the same rollup rows.
const WORKERS: usize = 2;
/// How long a worker waits for more deliveries once it has one.
const LINGER: std::time::Duration = std::time::Duration::from_millis(2);

struct Job {
    tenant: Tenant,
    external_id: String,
    event: CallEvent,
    reply: oneshot::Sender<AppResult<bool>>,
    /// Released once the job is answered (or its batch ended).
    _work: WorkGuard,
}

/// The queue in front of the workers. Workers start with the first delivery (they need a
/// runtime) and stop when the batcher is dropped.
pub struct Batcher {
    state: AppState,
    sender: OnceLock<mpsc::Sender<Job>>,
}

impl Batcher {
    pub fn new(state: AppState) -> Self {
        Self {
            state,
            sender: OnceLock::new(),
        }
    }

    /// Stores one event and brings its call up to date; answers once committed. `Ok(true)`:
    /// stored; `Ok(false)`: a repeat of a stored event.
    pub async fn submit(&self, tenant: Tenant, external_id: String, event: CallEvent) -> AppResult<bool> {
        let sender = self.sender.get_or_init(|| spawn_workers(&self.state));
        let (reply, answer) = oneshot::channel();
        let work = self.state.lifecycle.work();
        sender
            .send(Job {
                tenant,
                external_id,
                event,
                reply,
                _work: work,
            })
            .await
            .map_err(|_| AppError::Unavailable("the ingest queue is closed".into()))?;
        answer
            .await
            .map_err(|_| AppError::Unavailable("the ingest worker stopped".into()))?
    }
}

fn spawn_workers(state: &AppState) -> mpsc::Sender<Job> {
    let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
    let receiver = Arc::new(Mutex::new(receiver));
    for _ in 0..WORKERS {
        tokio::spawn(worker(state.clone(), receiver.clone()));
    }
    sender
}

async fn worker(state: AppState, receiver: Arc<Mutex<mpsc::Receiver<Job>>>) {
    loop {
        let mut jobs = Vec::new();
        {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
            jobs.push(first);
            // Whatever is queued, then whatever arrives within the linger: a little latency
            // buys fewer, larger transactions when deliveries are frequent.
            let deadline = tokio::time::Instant::now() + LINGER;
            while jobs.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => match tokio::time::timeout_at(deadline, receiver.recv()).await {
                        Ok(Some(job)) => jobs.push(job),
                        Ok(None) | Err(_) => break,
                    },
                }
            }
        }
        run(&state, jobs).await;
    }
}

/// Runs jobs as one transaction; on failure, each job on its own.
async fn run(state: &AppState, jobs: Vec<Job>) {
    let items: Vec<(Tenant, (String, CallEvent))> = jobs
        .iter()
        .map(|j| (j.tenant, (j.external_id.clone(), j.event.clone())))
        .collect();
    match apply_all(state, &items).await {
        Ok(stored) => {
            for (job, stored) in jobs.into_iter().zip(stored) {
                let _ = job.reply.send(Ok(stored));
            }
        }
        Err(error) if jobs.len() > 1 => {
            tracing::warn!(
                jobs = jobs.len(),
                code = error.code().as_str(),
                "ingest batch failed; retrying its deliveries one by one"
            );
            for (job, item) in jobs.into_iter().zip(items) {
                let result = apply_all(state, std::slice::from_ref(&item))
                    .await
                    .map(|s| s.first().copied().unwrap_or(false));
                let _ = job.reply.send(result);
            }
        }
        Err(error) => {
            for job in jobs {
                let _ = job.reply.send(Err(AppError::Unavailable(format!(
                    "ingest failed: {}",
                    error.operator_message()
                ))));
            }
        }
    }
}

/// One transaction over items of any tenants (grouped per tenant, tenants in id order);
/// publishes after commit. Returns per item whether it was stored.
async fn apply_all(state: &AppState, items: &[(Tenant, (String, CallEvent))]) -> AppResult<Vec<bool>> {
    let mut groups: BTreeMap<uuid::Uuid, (Tenant, Vec<usize>)> = BTreeMap::new();
    for (index, (tenant, _)) in items.iter().enumerate() {
        groups
            .entry(tenant.org_id())
            .or_insert_with(|| (*tenant, Vec::new()))
            .1
            .push(index);
    }
    let results = with_retries(|| async {
        let Some((first, _)) = groups.values().next() else {
            return Ok(Vec::new());
        };
        let mut conn = state.db.get(first).await?;
        conn.transaction(async |conn| -> AppResult<Vec<(Tenant, Vec<usize>, store::Applied)>> {
            let mut out = Vec::with_capacity(groups.len());
            for (tenant, indexes) in groups.values() {
                // Row-level security follows each organization's group in turn.
                tenancy::switch_tenant(conn, tenant).await?;
                let group: Vec<(String, CallEvent)> = indexes.iter().map(|i| items[*i].1.clone()).collect();
                let applied = store::apply(conn, tenant, &group).await?;
                out.push((*tenant, indexes.clone(), applied));
            }
            Ok(out)
        })
        .await
    })
    .await?;
    let mut stored = vec![false; items.len()];
    for (tenant, indexes, applied) in results {
        publish(&state.bus, &tenant, &applied.changes);
        for (index, was_stored) in indexes.into_iter().zip(applied.stored) {
            stored[index] = was_stored;
        }
    }
    Ok(stored)
}

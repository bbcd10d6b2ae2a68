//! The process's lifecycle as the parts of the server share it: whether it is draining (a
//! SIGTERM or Ctrl-C arrived), and how much work is still in flight that must finish before the
//! process may exit.
//!
//! Draining is a one-way switch: readiness answers 503 from then on, every WebSocket is closed
//! 1001 "server going away", the live demo simulator stops after its current batch. Work that
//! outlives a request — an ingest batch a webhook queued, an open WebSocket flushing its close
//! frame, a simulator batch — holds a [`WorkGuard`]; the command that serves waits until none
//! is left (or its drain deadline passes) before it exits.

use std::sync::Arc;

use tokio::sync::watch;

/// Cheap to clone: every clone sees the same switch and the same work counter.
#[derive(Clone)]
pub struct Lifecycle {
    draining: Arc<watch::Sender<bool>>,
    work: Arc<watch::Sender<usize>>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            draining: Arc::new(watch::Sender::new(false)),
            work: Arc::new(watch::Sender::new(0)),
        }
    }
}

impl Lifecycle {
    /// Starts draining; returns false when it had already started.
    pub fn start_draining(&self) -> bool {
        self.draining
            .send_if_modified(|draining| !std::mem::replace(draining, true))
    }

    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Resolves once draining has started (at once if it already has). Cancel-safe.
    pub async fn draining(&self) {
        let mut receiver = self.draining.subscribe();
        // The sender lives as long as `self`, so waiting cannot fail.
        let _ = receiver.wait_for(|draining| *draining).await;
    }

    /// Counts one unit of work in flight until the guard is dropped.
    pub fn work(&self) -> WorkGuard {
        self.work.send_modify(|count| *count += 1);
        WorkGuard {
            work: Arc::clone(&self.work),
        }
    }

    /// Units of work in flight.
    pub fn work_in_flight(&self) -> usize {
        *self.work.borrow()
    }

    /// Resolves when no work is in flight. Cancel-safe.
    pub async fn idle(&self) {
        let mut receiver = self.work.subscribe();
        let _ = receiver.wait_for(|count| *count == 0).await;
    }
}

/// One unit of work in flight (see [`Lifecycle::work`]).
pub struct WorkGuard {
    work: Arc<watch::Sender<usize>>,
}

impl Drop for WorkGuard {
    fn drop(&mut self) {
        self.work.send_modify(|count| *count = count.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn draining_is_a_one_way_switch_seen_by_every_clone() {
        let lifecycle = Lifecycle::default();
        let other = lifecycle.clone();
        let waiter = tokio::spawn(async move { other.draining().await });
        assert!(!lifecycle.is_draining());
        assert!(lifecycle.start_draining());
        assert!(!lifecycle.start_draining(), "a second start changes nothing");
        assert!(lifecycle.is_draining());
        assert!(tokio::time::timeout(Duration::from_secs(1), waiter).await.is_ok());
        // Already draining: resolves at once.
        assert!(tokio::time::timeout(Duration::from_millis(100), lifecycle.draining())
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn idle_waits_for_every_guard() {
        let lifecycle = Lifecycle::default();
        let first = lifecycle.work();
        let second = lifecycle.work();
        assert_eq!(lifecycle.work_in_flight(), 2);
        drop(first);
        assert!(tokio::time::timeout(Duration::from_millis(50), lifecycle.idle())
            .await
            .is_err());
        drop(second);
        assert!(tokio::time::timeout(Duration::from_millis(100), lifecycle.idle())
            .await
            .is_ok());
        assert_eq!(lifecycle.work_in_flight(), 0);
    }
}

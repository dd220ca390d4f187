//! The daemon as a node of a fleet (DESIGN §12; only when the store is shared): register and
//! heartbeat, requeue of expired leases, the link to the database watched, results handed
//! over to the node a task came from.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;

use super::daemon::Daemon;
use super::finalize::{build_result, RunEnd, RunFacts};
use crate::clock::now_ms;
use crate::events::{Event, EventKind};
use crate::store::{Repeats, StoreError, TaskRecord};

/// How long a node that lost the database goes on trying to record the end of a run.
const RECORD_PATIENCE: std::time::Duration = std::time::Duration::from_secs(600);
/// The longest pause between two such tries.
const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(5);

/// What the daemon keeps about its place in the fleet.
#[derive(Debug, Default)]
pub(super) struct NodeState {
    /// The database did not answer at the last look.
    pub(super) lost: AtomicBool,
}

impl Daemon {
    /// Registers this node (start-up). Nothing on a store of one machine.
    pub(super) fn fleet_register(&self) {
        let Some(f) = self.store.fleet() else { return };
        let cfg = self.cfg();
        let max = u32::try_from(cfg.max_concurrent_tasks).unwrap_or(u32::MAX);
        match f.register(&cfg.node_labels, max, now_ms()) {
            Ok(()) => {
                tracing::info!(node = %cfg.node_id, labels = ?cfg.node_labels, "joined the fleet")
            }
            Err(e) => tracing::error!("cannot register this node in the fleet: {e}"),
        }
    }

    /// A tick's fleet work: the node's heartbeat (register again when its row is gone), the
    /// database's reachability (said once when lost, once when back), and the requeue of
    /// running tasks whose lease ran out (any live node does it).
    pub(super) fn fleet_tick(&self) {
        let Some(f) = self.store.fleet() else { return };
        let cfg = self.cfg();
        let running =
            u32::try_from(self.running.lock().map(|m| m.len()).unwrap_or(0)).unwrap_or(u32::MAX);
        let beat = f.node_heartbeat(running, now_ms());
        let was_lost = self.node.lost.load(Ordering::SeqCst);
        match &beat {
            Err(e) => {
                if !was_lost {
                    self.node.lost.store(true, Ordering::SeqCst);
                    eprintln!(
                        "orca: lost the database ({e}); running agents go on, no new task is \
                         claimed until it is back; reconnecting"
                    );
                    tracing::error!("lost the database: {e}; reconnecting with backoff");
                }
                return;
            }
            Ok(alive) => {
                if was_lost {
                    self.node.lost.store(false, Ordering::SeqCst);
                    eprintln!("orca: the database is back; claiming again");
                    tracing::warn!("the database is back");
                }
                if !alive {
                    self.fleet_register();
                }
            }
        }
        let expired = match self.store.requeue_expired(now_ms()) {
            Ok(ids) => ids,
            Err(e) => {
                static EXPIRE_ERRORS: Repeats = Repeats::new();
                if let Some(more) = EXPIRE_ERRORS.admit(&e.to_string()) {
                    tracing::warn!("cannot requeue expired leases: {e}{more}");
                }
                return;
            }
        };
        for id in expired {
            tracing::warn!(task = %id, node = %cfg.node_id, "a lease ran out: the task is queued again");
            self.events.publish(Event::task(
                &id,
                EventKind::LeaseExpired {
                    by: cfg.node_id.clone(),
                },
            ));
            self.events.publish(Event::task(
                &id,
                EventKind::Recovered {
                    reason: "its node's lease ran out".into(),
                },
            ));
        }
    }

    /// `op` (a store write that records the end of a run), tried again with backoff while
    /// the database cannot be reached, in fleet mode: the agent's work is not lost to an
    /// outage. Other errors (the lease was taken over: `LeaseLost`) end it at once. Blocks:
    /// call it from a blocking thread.
    pub(super) fn until_recorded<T>(
        &self,
        what: &str,
        mut op: impl FnMut() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let started = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(100);
        let mut said = false;
        loop {
            match op() {
                Err(e @ StoreError::Backend { .. })
                    if self.store.fleet().is_some() && started.elapsed() < RECORD_PATIENCE =>
                {
                    if !said {
                        said = true;
                        tracing::warn!("cannot {what} (the database is unreachable): {e}; trying again until it is back");
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(MAX_BACKOFF);
                }
                other => {
                    if said && other.is_ok() {
                        tracing::info!("recorded once the database was back: {what}");
                    }
                    return other;
                }
            }
        }
    }

    /// Whether this node may claim now (false while the database is lost).
    pub(super) fn fleet_may_claim(&self) -> bool {
        !self.node.lost.load(Ordering::SeqCst)
    }

    /// The lease of running task `id` is no longer this node's (it expired and another node
    /// took the task over): its agent is stopped; its finish will be refused (fencing).
    pub(super) fn stop_lost_lease(&self, id: &str) {
        let cancel = self
            .running
            .lock()
            .ok()
            .and_then(|m| m.get(id).map(|t| t.cancel.clone()));
        if let Some(c) = cancel {
            if !*c.borrow() {
                tracing::warn!(task = %id, "the task's lease was taken over by another node: stopping its agent here");
                eprintln!("orca: task {id}: its lease was taken over by another node; stopping its agent here");
                let _ = c.send(true);
            }
        }
    }

    /// Leaves the fleet (clean stop).
    pub(super) fn fleet_leave(&self) {
        if let Some(f) = self.store.fleet() {
            if let Err(e) = f.unregister() {
                tracing::warn!("cannot remove this node from the fleet's list: {e}");
            }
        }
    }

    /// A run that ended here of a task from another node's `tasks/`: its result goes to the
    /// database, for that node to write (true); false when the task is this node's own (or
    /// the store is not shared) and the caller finalizes it here.
    pub(super) fn hand_over(&self, rec: &TaskRecord, end: &mut Option<RunEnd<'_>>) -> bool {
        let Some(f) = self.store.fleet() else {
            return false;
        };
        let origin = match f.origin_of(&rec.id) {
            Ok(Some(o)) => o,
            Ok(None) => return false,
            Err(e) => {
                // The origin writes it from the record alone after a while.
                tracing::warn!(task = %rec.id, "cannot look up the task's origin: {e}");
                return true;
            }
        };
        if origin == f.origin() {
            return false;
        }
        let Some(end) = end.take() else { return true };
        let agent = end.outcome.agent.clone();
        let result = build_result(
            rec,
            &end.attempts,
            Some(end.outcome),
            &agent,
            None,
            RunFacts {
                working_dir: end.working_dir,
                changed_files: end.changed_files,
                verified: end.verified,
                judged: end.judged,
            },
        );
        let Some(mut result) = result else {
            return true;
        };
        result.redact(&crate::config::redactor_for(&self.ws.root));
        let doc = match serde_json::to_value(&result) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(task = %rec.id, "cannot encode the result: {e}");
                json!(null)
            }
        };
        if !doc.is_null() {
            let stored = self.until_recorded("hand the result to its origin node", || {
                f.store_result(&rec.id, rec.attempts, &doc)
            });
            if let Err(e) = stored {
                tracing::error!(task = %rec.id, "cannot hand the result to its origin node: {e}");
            }
        }
        tracing::info!(task = %rec.id, origin = %origin, "task finished here; its origin node writes the artifacts");
        true
    }
}

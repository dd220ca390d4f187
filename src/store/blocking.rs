//! The store for async code: [`OffThread`] runs any [`Store`] call on tokio's blocking
//! threads, so that a lock wait or a slow disk never holds up the runtime's worker threads.
//! One generic [`OffThread::call`] instead of a second, async copy of every trait method: a
//! backend whose client is async underneath (PostgreSQL) implements the same [`Store`] with
//! its blocking client, which is then never called on a runtime worker.

use std::sync::Arc;

use super::{Store, StoreError};

/// A blocking [`Store`] made async: every call runs on tokio's blocking threads
/// (`spawn_blocking`), never on a runtime worker. Must be used inside a tokio runtime.
/// Calls awaited one after the other run in that order; calls in flight at once run in
/// parallel as far as the store allows (SQLite's handle serialises them on its mutex).
#[derive(Clone)]
pub struct OffThread {
    inner: Arc<dyn Store>,
}

impl OffThread {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        OffThread { inner }
    }

    /// The blocking store underneath, for code that already runs on a blocking thread.
    pub fn blocking(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    /// Runs `f` with the store on a blocking thread and waits for its answer.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = Arc::clone(&self.inner);
        match tokio::task::spawn_blocking(move || f(store.as_ref())).await {
            Ok(out) => out,
            Err(e) => Err(StoreError::Backend {
                db: "the task database".into(),
                message: format!(
                    "a store call ended without an answer ({e}); nothing is known to be \
                     recorded: the daemon looks again on its next tick"
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Finish, NewTask, NextClaim, SourceKind, SqliteStore, TaskState};
    use crate::task::{Priority, Task};

    fn new_task(id: &str) -> NewTask {
        NewTask {
            desired_id: id.to_owned(),
            stem: id.to_owned(),
            file: format!("tasks/{id}.task.md"),
            source: SourceKind::File,
            source_user: None,
            task: Some(Task::new(id, "p")),
            priority: Priority::Medium,
            max_retries: 0,
            state: TaskState::Queued,
            error: None,
            received_at_ms: 0,
        }
    }

    fn one_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_task_runs_its_life_off_the_runtime_threads() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("o.db")).unwrap());
        let s = OffThread::new(Arc::clone(&sqlite));
        one_thread().block_on(async {
            s.call(|s| s.check_writable()).await.unwrap();
            let before = s.call(|s| s.changes()).await.unwrap();
            s.call(|s| s.enqueue_many(&[new_task("a"), new_task("b")]))
                .await
                .unwrap();
            let rec = s
                .call(|s| s.claim("w", &[], 60_000, 1))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(rec.id, "a");
            let done = s
                .call(move |s| {
                    s.finish_claimed(
                        &rec,
                        "w",
                        Finish {
                            state: TaskState::Succeeded,
                            outcome: "succeeded".into(),
                            error: None,
                            exit_code: Some(0),
                            session_id: None,
                            now_ms: 3,
                        },
                        Some(NextClaim {
                            labels: &[],
                            lease_ms: 60_000,
                        }),
                    )
                })
                .await
                .unwrap();
            assert_eq!(done.record.state, TaskState::Succeeded);
            assert_eq!(done.next.map(|n| n.id).as_deref(), Some("b"));
            assert_eq!(s.call(|s| s.counts()).await.unwrap()["running"], 1);
            // Only our own writes so far: the change stream has not moved.
            assert_eq!(s.call(|s| s.changes()).await.unwrap(), before);
        });
        // Another handle's write moves it.
        let other = SqliteStore::open(&dir.path().join("o.db")).unwrap();
        let before = sqlite.changes().unwrap();
        other.enqueue(new_task("c")).unwrap();
        assert_ne!(sqlite.changes().unwrap(), before);
    }

    /// On a runtime with a single thread, a store call that waits for another process's
    /// write lock must not stop that thread: the timer that lets the lock go still fires,
    /// and the call then succeeds. Run on the runtime's thread, the call would hold it for
    /// the whole busy timeout (5 s) and fail with `Busy`, the timer never getting its turn.
    #[test]
    fn a_call_waiting_for_a_lock_leaves_the_runtime_thread_free() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.db");
        let s = OffThread::new(Arc::new(SqliteStore::open(&path).unwrap()));
        let blocker = rusqlite::Connection::open(&path).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let out = one_thread().block_on(async {
            let enqueue = s.call(|s| s.enqueue(new_task("a")));
            let release = async {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                blocker.execute_batch("ROLLBACK").unwrap();
            };
            let (out, ()) = tokio::join!(enqueue, release);
            out
        });
        assert_eq!(out.unwrap().id, "a");
    }

    /// Cost probe (prints, never asserts timing): 1,000 enqueue + claim + finish through
    /// [`OffThread`] on a two-worker runtime, beside the same calls made inline.
    #[test]
    fn throughput_off_thread_beside_inline() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("o.db")).unwrap());
        let s = OffThread::new(Arc::clone(&inner));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let finish = |now_ms| Finish {
            state: TaskState::Succeeded,
            outcome: "succeeded".into(),
            error: None,
            exit_code: Some(0),
            session_id: None,
            now_ms,
        };
        let off = rt.block_on(async {
            let start = std::time::Instant::now();
            for i in 0..1000 {
                let t = new_task(&format!("o{i}"));
                s.call(move |s| s.enqueue(t)).await.unwrap();
                let rec = s
                    .call(|s| s.claim("w", &[], 60_000, 1))
                    .await
                    .unwrap()
                    .unwrap();
                s.call(move |s| s.finish(&rec.id, "w", finish(2)))
                    .await
                    .unwrap();
            }
            start.elapsed()
        });
        let start = std::time::Instant::now();
        for i in 0..1000 {
            inner.enqueue(new_task(&format!("i{i}"))).unwrap();
            let rec = inner.claim("w", &[], 60_000, 1).unwrap().unwrap();
            inner.finish(&rec.id, "w", finish(2)).unwrap();
        }
        let inline = start.elapsed();
        assert_eq!(inner.counts().unwrap()["succeeded"], 2000);
        eprintln!("1000 x (enqueue + claim + finish): off-thread {off:?}, inline {inline:?}");
    }

    #[test]
    fn store_errors_come_back_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let s = OffThread::new(Arc::new(
            SqliteStore::open(&dir.path().join("o.db")).unwrap(),
        ));
        one_thread().block_on(async {
            assert!(matches!(
                s.call(|s| s.retry("ghost", 1)).await,
                Err(StoreError::NotFound(_))
            ));
            assert!(matches!(
                s.call(|s| s.release("ghost", "w", "why")).await,
                Err(StoreError::NotFound(_))
            ));
        });
    }
}

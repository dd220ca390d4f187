//! The store for async code: [`AsyncStore`], the same operations as [`Store`] returning
//! futures (object safe, owned arguments), and [`OffThread`], which runs a blocking
//! [`Store`] (SQLite) on tokio's blocking threads so that a lock wait or a slow disk never
//! holds up the runtime's worker threads. A natively async backend (PostgreSQL with
//! tokio-postgres) implements [`AsyncStore`] directly.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::{
    AttemptRecord, CancelOutcome, ChangeToken, Finish, Finished, NewTask, NextClaim, Store,
    StoreError, StoreInfo, TaskRecord, TaskState,
};

/// A boxed, sendable future: what [`AsyncStore`]'s methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a worker's finish claims next (the owned form of [`NextClaim`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNext {
    pub labels: Vec<String>,
    pub lease_ms: i64,
}

/// [`Store`] for async callers: each method is the [`Store`] method of the same name (see
/// there for what it does), taking its arguments by value so that the future owns them.
pub trait AsyncStore: Send + Sync {
    fn enqueue(&self, t: NewTask) -> BoxFuture<'_, Result<TaskRecord, StoreError>>;
    fn enqueue_many(
        &self,
        tasks: Vec<NewTask>,
    ) -> BoxFuture<'_, Result<Vec<TaskRecord>, StoreError>>;
    fn find_open_by_file(
        &self,
        file: String,
    ) -> BoxFuture<'_, Result<Option<TaskRecord>, StoreError>>;
    fn find_open_by_files(
        &self,
        files: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<Option<TaskRecord>>, StoreError>>;
    fn claim(
        &self,
        worker: String,
        labels: Vec<String>,
        lease_ms: i64,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<Option<TaskRecord>, StoreError>>;
    fn heartbeat(
        &self,
        id: String,
        worker: String,
        lease_ms: i64,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<bool, StoreError>>;
    fn set_progress(
        &self,
        id: String,
        worker: String,
        progress: serde_json::Value,
        session_id: Option<String>,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    fn mark_resumed(&self, id: String, attempt: u32) -> BoxFuture<'_, Result<(), StoreError>>;
    fn finish(
        &self,
        id: String,
        worker: String,
        f: Finish,
    ) -> BoxFuture<'_, Result<TaskRecord, StoreError>>;
    fn finish_claimed(
        &self,
        claimed: TaskRecord,
        worker: String,
        f: Finish,
        next: Option<ClaimNext>,
    ) -> BoxFuture<'_, Result<Finished, StoreError>>;
    #[allow(clippy::too_many_arguments)]
    fn requeue(
        &self,
        id: String,
        worker: String,
        not_before_ms: i64,
        reason: String,
        exit_code: Option<i32>,
        session_id: Option<String>,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    fn release(
        &self,
        id: String,
        worker: String,
        reason: String,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    fn requeue_expired(&self, now_ms: i64) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;
    fn recover_worker(
        &self,
        worker_prefix_or_all: Option<String>,
    ) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;
    fn request_cancel(
        &self,
        id: String,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<CancelOutcome, StoreError>>;
    fn is_cancel_requested(&self, id: String) -> BoxFuture<'_, Result<bool, StoreError>>;
    fn mark_finalized(
        &self,
        id: String,
        archived_to: String,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    fn mark_finalized_later(
        &self,
        id: String,
        attempt: u32,
        archived_to: String,
    ) -> BoxFuture<'_, Result<(), StoreError>>;
    fn flush(&self) -> BoxFuture<'_, Result<(), StoreError>>;
    fn pending_finalize(&self) -> BoxFuture<'_, Result<Vec<TaskRecord>, StoreError>>;
    fn get(&self, id: String) -> BoxFuture<'_, Result<Option<TaskRecord>, StoreError>>;
    fn list(&self, state: Option<TaskState>) -> BoxFuture<'_, Result<Vec<TaskRecord>, StoreError>>;
    fn counts(&self) -> BoxFuture<'_, Result<BTreeMap<String, u64>, StoreError>>;
    fn attempts(&self, id: String) -> BoxFuture<'_, Result<Vec<AttemptRecord>, StoreError>>;
    fn retry(&self, id: String, now_ms: i64) -> BoxFuture<'_, Result<TaskRecord, StoreError>>;
    fn next_not_before(&self) -> BoxFuture<'_, Result<Option<i64>, StoreError>>;
    fn changes(&self) -> BoxFuture<'_, Result<ChangeToken, StoreError>>;
    fn check_writable(&self) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Which backend and database (no I/O).
    fn describe(&self) -> StoreInfo;
}

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

    /// Runs `f` with the store on a blocking thread.
    fn run<T, F>(&self, f: F) -> BoxFuture<'static, Result<T, StoreError>>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = Arc::clone(&self.inner);
        Box::pin(async move {
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
        })
    }
}

impl AsyncStore for OffThread {
    fn enqueue(&self, t: NewTask) -> BoxFuture<'_, Result<TaskRecord, StoreError>> {
        self.run(move |s| s.enqueue(t))
    }
    fn enqueue_many(
        &self,
        tasks: Vec<NewTask>,
    ) -> BoxFuture<'_, Result<Vec<TaskRecord>, StoreError>> {
        self.run(move |s| s.enqueue_many(&tasks))
    }
    fn find_open_by_file(
        &self,
        file: String,
    ) -> BoxFuture<'_, Result<Option<TaskRecord>, StoreError>> {
        self.run(move |s| s.find_open_by_file(&file))
    }
    fn find_open_by_files(
        &self,
        files: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<Option<TaskRecord>>, StoreError>> {
        self.run(move |s| {
            let refs: Vec<&str> = files.iter().map(String::as_str).collect();
            s.find_open_by_files(&refs)
        })
    }
    fn claim(
        &self,
        worker: String,
        labels: Vec<String>,
        lease_ms: i64,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<Option<TaskRecord>, StoreError>> {
        self.run(move |s| s.claim(&worker, &labels, lease_ms, now_ms))
    }
    fn heartbeat(
        &self,
        id: String,
        worker: String,
        lease_ms: i64,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.run(move |s| s.heartbeat(&id, &worker, lease_ms, now_ms))
    }
    fn set_progress(
        &self,
        id: String,
        worker: String,
        progress: serde_json::Value,
        session_id: Option<String>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(move |s| s.set_progress(&id, &worker, &progress, session_id.as_deref()))
    }
    fn mark_resumed(&self, id: String, attempt: u32) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(move |s| s.mark_resumed(&id, attempt))
    }
    fn finish(
        &self,
        id: String,
        worker: String,
        f: Finish,
    ) -> BoxFuture<'_, Result<TaskRecord, StoreError>> {
        self.run(move |s| s.finish(&id, &worker, f))
    }
    fn finish_claimed(
        &self,
        claimed: TaskRecord,
        worker: String,
        f: Finish,
        next: Option<ClaimNext>,
    ) -> BoxFuture<'_, Result<Finished, StoreError>> {
        self.run(move |s| {
            let next = next.as_ref().map(|n| NextClaim {
                labels: &n.labels,
                lease_ms: n.lease_ms,
            });
            s.finish_claimed(&claimed, &worker, f, next)
        })
    }
    fn requeue(
        &self,
        id: String,
        worker: String,
        not_before_ms: i64,
        reason: String,
        exit_code: Option<i32>,
        session_id: Option<String>,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(move |s| {
            s.requeue(
                &id,
                &worker,
                not_before_ms,
                &reason,
                exit_code,
                session_id.as_deref(),
            )
        })
    }
    fn release(
        &self,
        id: String,
        worker: String,
        reason: String,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(move |s| s.release(&id, &worker, &reason))
    }
    fn requeue_expired(&self, now_ms: i64) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        self.run(move |s| s.requeue_expired(now_ms))
    }
    fn recover_worker(
        &self,
        worker_prefix_or_all: Option<String>,
    ) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        self.run(move |s| s.recover_worker(worker_prefix_or_all.as_deref()))
    }
    fn request_cancel(
        &self,
        id: String,
        now_ms: i64,
    ) -> BoxFuture<'_, Result<CancelOutcome, StoreError>> {
        self.run(move |s| s.request_cancel(&id, now_ms))
    }
    fn is_cancel_requested(&self, id: String) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.run(move |s| s.is_cancel_requested(&id))
    }
    fn mark_finalized(
        &self,
        id: String,
        archived_to: String,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(move |s| s.mark_finalized(&id, &archived_to))
    }
    fn mark_finalized_later(
        &self,
        id: String,
        attempt: u32,
        archived_to: String,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(move |s| s.mark_finalized_later(&id, attempt, &archived_to))
    }
    fn flush(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(|s| s.flush())
    }
    fn pending_finalize(&self) -> BoxFuture<'_, Result<Vec<TaskRecord>, StoreError>> {
        self.run(|s| s.pending_finalize())
    }
    fn get(&self, id: String) -> BoxFuture<'_, Result<Option<TaskRecord>, StoreError>> {
        self.run(move |s| s.get(&id))
    }
    fn list(&self, state: Option<TaskState>) -> BoxFuture<'_, Result<Vec<TaskRecord>, StoreError>> {
        self.run(move |s| s.list(state))
    }
    fn counts(&self) -> BoxFuture<'_, Result<BTreeMap<String, u64>, StoreError>> {
        self.run(|s| s.counts())
    }
    fn attempts(&self, id: String) -> BoxFuture<'_, Result<Vec<AttemptRecord>, StoreError>> {
        self.run(move |s| s.attempts(&id))
    }
    fn retry(&self, id: String, now_ms: i64) -> BoxFuture<'_, Result<TaskRecord, StoreError>> {
        self.run(move |s| s.retry(&id, now_ms))
    }
    fn next_not_before(&self) -> BoxFuture<'_, Result<Option<i64>, StoreError>> {
        self.run(|s| s.next_not_before())
    }
    fn changes(&self) -> BoxFuture<'_, Result<ChangeToken, StoreError>> {
        self.run(|s| s.changes())
    }
    fn check_writable(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        self.run(|s| s.check_writable())
    }
    fn describe(&self) -> StoreInfo {
        self.inner.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SourceKind, SqliteStore};
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
    fn a_task_runs_its_life_through_the_async_store() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("o.db")).unwrap());
        let s: Box<dyn AsyncStore> = Box::new(OffThread::new(Arc::clone(&sqlite)));
        one_thread().block_on(async {
            s.check_writable().await.unwrap();
            assert_eq!(s.describe().kind, "sqlite");
            let before = s.changes().await.unwrap();
            s.enqueue_many(vec![new_task("a"), new_task("b")])
                .await
                .unwrap();
            let rec = s
                .claim("w".into(), vec![], 60_000, 1)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(rec.id, "a");
            assert!(s
                .heartbeat("a".into(), "w".into(), 60_000, 2)
                .await
                .unwrap());
            let done = s
                .finish_claimed(
                    rec,
                    "w".into(),
                    Finish {
                        state: TaskState::Succeeded,
                        outcome: "succeeded".into(),
                        error: None,
                        exit_code: Some(0),
                        session_id: None,
                        now_ms: 3,
                    },
                    Some(ClaimNext {
                        labels: vec![],
                        lease_ms: 60_000,
                    }),
                )
                .await
                .unwrap();
            assert_eq!(done.record.state, TaskState::Succeeded);
            assert_eq!(done.next.map(|n| n.id).as_deref(), Some("b"));
            s.mark_finalized_later("a".into(), 1, "tasks/processed/a.task.md".into())
                .await
                .unwrap();
            s.flush().await.unwrap();
            assert!(s.get("a".into()).await.unwrap().unwrap().finalized);
            let open = s
                .find_open_by_files(vec!["tasks/a.task.md".into(), "tasks/b.task.md".into()])
                .await
                .unwrap();
            assert_eq!(
                open.iter().map(Option::is_some).collect::<Vec<_>>(),
                [false, true]
            );
            assert_eq!(s.counts().await.unwrap()["running"], 1);
            // Only our own writes so far: the change stream has not moved.
            assert_eq!(s.changes().await.unwrap(), before);
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
            let enqueue = s.enqueue(new_task("a"));
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
                s.enqueue(new_task(&format!("o{i}"))).await.unwrap();
                let rec = s
                    .claim("w".into(), vec![], 60_000, 1)
                    .await
                    .unwrap()
                    .unwrap();
                s.finish(rec.id, "w".into(), finish(2)).await.unwrap();
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
                s.retry("ghost".into(), 1).await,
                Err(StoreError::NotFound(_))
            ));
            assert!(matches!(
                s.release("ghost".into(), "w".into(), "why".into()).await,
                Err(StoreError::NotFound(_))
            ));
        });
    }
}

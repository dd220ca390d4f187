//! The durable queue: the `Store` trait (claim with lease, heartbeat, finish) and `open(url)`
//! that picks its backend (SQLite today). The store is the single source of truth for task
//! state; `lock` guards one daemon per workspace. Its methods block: async code calls them
//! off the runtime's worker threads (spawn_blocking, block_in_place).
//!
//! The trait is shaped for many workers from the start: a worker *claims* the best queued
//! task under a lease, renews it by *heartbeat*, and *finishes*, *requeues* (transient
//! failure, with backoff) or *releases* (shutdown) it. Leases that run out are put back by
//! [`Store::requeue_expired`], so a PostgreSQL implementation (`FOR UPDATE SKIP LOCKED`)
//! is a second implementation of the same trait, not a rewrite.
//!
//! Retry budget: attempts are numbered from 1 over the whole life of a record. A failed
//! attempt number `a` may be retried while `a <= max_retries` ([`TaskRecord::may_retry`]).
//! [`Store::retry`] renews the budget by raising `max_retries` to `attempts + budget`, so the
//! numbering goes on and the same test keeps working.

pub mod error;
pub mod fleet;
pub mod lock;
mod migrate;
mod open;
pub mod postgres;
pub mod repeat;
pub mod sqlite;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::task::{Priority, Task};

pub use error::StoreError;
pub use fleet::{Fleet, NodeRecord, Opener};
pub use lock::{acquire, holder, LockError, WorkspaceLock};
pub use open::{open, open_as, Backend, DEFAULT_URL};
pub use repeat::Repeats;
pub use sqlite::SqliteStore;

// Where a task came from. The result document names it too (`source.kind`), so the
// artifacts module takes this type from here. (No doc comment: it would become the JSON
// schema's description of the result's `source.kind`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    File,
    Cli,
    Telegram,
}

/// What [`Store::changes`] answers: a value that differs from an earlier answer once another
/// handle on the same database (another process, another node) has committed a change since.
/// Opaque: compare two tokens for equality, nothing else. A backend with a change feed
/// (PostgreSQL's LISTEN/NOTIFY) counts the notifications it received; SQLite reads its
/// `data_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChangeToken(pub u64);

/// Where a task is in its life (DESIGN §3). Stored as snake_case text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Queued,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Rejected,
}

impl TaskState {
    pub const ALL: [TaskState; 7] = [
        TaskState::Queued,
        TaskState::Running,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::TimedOut,
        TaskState::Cancelled,
        TaskState::Rejected,
    ];

    /// The final states: nothing runs any more.
    pub const FINAL: [TaskState; 5] = [
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::TimedOut,
        TaskState::Cancelled,
        TaskState::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::TimedOut => "timed_out",
            TaskState::Cancelled => "cancelled",
            TaskState::Rejected => "rejected",
        }
    }

    /// True for every state but `queued` and `running`.
    pub fn is_final(self) -> bool {
        !matches!(self, TaskState::Queued | TaskState::Running)
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TaskState::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "'{s}' is not a task state (one of queued, running, succeeded, failed, \
                     timed_out, cancelled, rejected)"
                )
            })
    }
}

/// A task to put into the queue (or a rejected file to record).
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// The id the task asked for; suffixed `-2`, `-3`, ... when taken.
    pub desired_id: String,
    /// The file stem; suffixed `-2`, `-3`, ... when taken.
    pub stem: String,
    /// Path as received, relative to the workspace root, e.g. `tasks/x.task.md`.
    pub file: String,
    pub source: SourceKind,
    pub source_user: Option<String>,
    /// None only for `Rejected`.
    pub task: Option<Task>,
    pub priority: Priority,
    pub max_retries: u32,
    /// `Queued` or `Rejected`.
    pub state: TaskState,
    /// For `Rejected`: the result's error object.
    pub error: Option<serde_json::Value>,
    pub received_at_ms: i64,
}

/// One task as the store knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub id: String,
    pub desired_id: String,
    pub stem: String,
    pub file: String,
    pub source: SourceKind,
    pub source_user: Option<String>,
    pub state: TaskState,
    pub priority: Priority,
    /// Arrival order (strictly increasing, never reused).
    pub seq: i64,
    pub task: Option<Task>,
    /// Attempts started so far, over the whole life of the record.
    pub attempts: u32,
    /// A failed attempt `a` may be retried while `a <= max_retries` (see module docs).
    pub max_retries: u32,
    pub not_before_ms: Option<i64>,
    pub lease_owner: Option<String>,
    pub lease_expires_ms: Option<i64>,
    pub cancel_requested: bool,
    pub received_at_ms: i64,
    /// First start.
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub session_id: Option<String>,
    pub progress: Option<serde_json::Value>,
    pub error: Option<serde_json::Value>,
    /// The result document as earlier versions stored it (no longer written: the result
    /// file is the copy a cut-off finalize reuses).
    pub result: Option<serde_json::Value>,
    pub artifacts_written: bool,
    /// Where the task file was archived; kept across [`Store::retry`] (the file is already
    /// out of `tasks/` then).
    pub archived_to: Option<String>,
    /// Artifacts written AND file archived.
    pub finalized: bool,
}

impl TaskRecord {
    /// The record of `t` as just inserted under `id` and `stem` (suffixed when taken), at
    /// arrival number `seq`; `finished_at_ms` is set for a record that is final at once.
    pub fn inserted(
        t: &NewTask,
        id: String,
        stem: String,
        seq: i64,
        finished_at_ms: Option<i64>,
    ) -> TaskRecord {
        TaskRecord {
            id,
            desired_id: t.desired_id.clone(),
            stem,
            file: t.file.clone(),
            source: t.source,
            source_user: t.source_user.clone(),
            state: t.state,
            priority: t.priority,
            seq,
            task: t.task.clone(),
            attempts: 0,
            max_retries: t.max_retries,
            not_before_ms: None,
            lease_owner: None,
            lease_expires_ms: None,
            cancel_requested: false,
            received_at_ms: t.received_at_ms,
            started_at_ms: None,
            finished_at_ms,
            session_id: None,
            progress: None,
            error: t.error.clone(),
            result: None,
            artifacts_written: false,
            archived_to: None,
            finalized: false,
        }
    }

    /// Whether a transient failure of the current attempt may be retried.
    pub fn may_retry(&self) -> bool {
        self.attempts <= self.max_retries
    }
}

/// One run of a task by a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub task_id: String,
    /// 1, 2, ... over the life of the task.
    pub attempt: u32,
    pub worker: String,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// `succeeded|failed|timed_out|cancelled|retry|interrupted`; None while running.
    pub outcome: Option<String>,
    pub error: Option<String>,
    pub exit_code: Option<i32>,
    pub session_id: Option<String>,
    /// The agent session of an earlier attempt was resumed.
    pub resumed: bool,
    /// The node that ran it (a fleet's shared store); None on a single machine.
    #[serde(default)]
    pub node: Option<String>,
}

/// How a running task ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    /// A final state (not `Rejected`).
    pub state: TaskState,
    /// The attempt's outcome text, e.g. `succeeded`.
    pub outcome: String,
    pub error: Option<serde_json::Value>,
    pub exit_code: Option<i32>,
    pub session_id: Option<String>,
    pub now_ms: i64,
}

/// The claim [`Store::finish_claimed`] makes in the same transaction as the finish.
#[derive(Debug, Clone, Copy)]
pub struct NextClaim<'a> {
    pub labels: &'a [String],
    pub lease_ms: i64,
}

/// What [`Store::finish_claimed`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// The finished task as it is now.
    pub record: TaskRecord,
    /// Its attempts, the one just closed included.
    pub attempts: Vec<AttemptRecord>,
    /// The task claimed next, when asked for and one was ready.
    pub next: Option<TaskRecord>,
}

/// What `request_cancel` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// It was queued: now final `Cancelled` (it never starts).
    Cancelled,
    /// It is running: the flag is set; the worker stops it.
    Requested,
    AlreadyFinished(TaskState),
    NotFound,
}

/// The durable queue. All methods are short synchronous transactions that may block (on a
/// lock, on the disk, on the network): call them from blocking threads (async code:
/// `spawn_blocking` or `block_in_place`). Implementations must be safe with several
/// workers (threads, processes, machines) claiming at once. No type here names a backend;
/// [`open`] picks one from a URL.
pub trait Store: Send + Sync {
    /// Adds a task (or a rejected file's record). `id` is unique over all records ever
    /// (`desired_id`, then `-2`, `-3`, ...), `stem` likewise. One transaction.
    fn enqueue(&self, t: NewTask) -> Result<TaskRecord, StoreError>;
    /// Several `enqueue`s in one transaction (a burst of files found by one scan): all or
    /// none. Much cheaper per task than one call each.
    fn enqueue_many(&self, tasks: &[NewTask]) -> Result<Vec<TaskRecord>, StoreError> {
        tasks.iter().map(|t| self.enqueue(t.clone())).collect()
    }
    /// The not-yet-finalized record for this file path (the newest if several).
    fn find_open_by_file(&self, file: &str) -> Result<Option<TaskRecord>, StoreError>;
    /// [`Store::find_open_by_file`] for each of `files`, in their order (a burst of files
    /// found by one scan is looked up together, which is cheaper than one call each).
    fn find_open_by_files(&self, files: &[&str]) -> Result<Vec<Option<TaskRecord>>, StoreError> {
        files.iter().map(|f| self.find_open_by_file(f)).collect()
    }
    /// Takes the best queued task: priority (high first), then arrival; `not_before <= now`;
    /// no cancel requested; `task.requires ⊆ labels`. It becomes `Running` under a lease.
    fn claim(
        &self,
        worker: &str,
        labels: &[String],
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<Option<TaskRecord>, StoreError>;
    /// Up to `n` claims for `worker`, best first, in one transaction when the backend can
    /// (the default calls [`Store::claim`] until it finds nothing or an error: then what it
    /// claimed so far, or the error when it claimed nothing).
    fn claim_many(
        &self,
        worker: &str,
        labels: &[String],
        n: usize,
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let mut out = Vec::new();
        while out.len() < n {
            match self.claim(worker, labels, lease_ms, now_ms) {
                Ok(Some(rec)) => out.push(rec),
                Ok(None) => break,
                Err(e) if out.is_empty() => return Err(e),
                Err(_) => break,
            }
        }
        Ok(out)
    }
    /// Renews the lease; false when it is no longer ours.
    fn heartbeat(
        &self,
        id: &str,
        worker: &str,
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Records progress (best effort: ignored when the lease is no longer ours).
    fn set_progress(
        &self,
        id: &str,
        worker: &str,
        progress: &serde_json::Value,
        session_id: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Marks an attempt as resuming an earlier agent session.
    fn mark_resumed(&self, id: &str, attempt: u32) -> Result<(), StoreError>;
    /// Final state of a running task we own; closes the attempt, clears the lease. Returns
    /// the record as it is now (one transaction, no read-back needed).
    fn finish(&self, id: &str, worker: &str, f: Finish) -> Result<TaskRecord, StoreError>;
    /// [`Store::finish`] for the worker holding `claimed` (the record its claim returned):
    /// the returned record carries the claimed task over instead of reading it back, and the
    /// task's attempts (the one just closed included) come in the same transaction; so does
    /// the worker's next task when `next` asks for one (a [`Store::claim`] at `f.now_ms`).
    fn finish_claimed(
        &self,
        claimed: &TaskRecord,
        worker: &str,
        f: Finish,
        next: Option<NextClaim<'_>>,
    ) -> Result<Finished, StoreError>;
    /// Transient failure: attempt outcome `retry`, back to `Queued` not before `not_before_ms`.
    /// `session_id`, when known, is recorded with the attempt (a retry may resume it).
    fn requeue(
        &self,
        id: &str,
        worker: &str,
        not_before_ms: i64,
        reason: &str,
        exit_code: Option<i32>,
        session_id: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Shutdown or lost run: attempt outcome `interrupted`, back to `Queued` at once.
    fn release(&self, id: &str, worker: &str, reason: &str) -> Result<(), StoreError>;
    /// Running tasks whose lease ran out go back to `Queued`; returns their ids.
    fn requeue_expired(&self, now_ms: i64) -> Result<Vec<String>, StoreError>;
    /// Start-up repair: running tasks of workers whose name starts with the prefix (all
    /// when None) go back to `Queued`; returns their ids.
    fn recover_worker(&self, worker_prefix_or_all: Option<&str>)
        -> Result<Vec<String>, StoreError>;
    fn request_cancel(&self, id: &str, now_ms: i64) -> Result<CancelOutcome, StoreError>;
    fn is_cancel_requested(&self, id: &str) -> Result<bool, StoreError>;
    /// Those of `ids` whose cancel was requested (unknown ids left out), in one look when the
    /// backend can (the default asks [`Store::is_cancel_requested`] for each).
    fn cancels_requested(&self, ids: &[&str]) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for id in ids {
            if matches!(self.is_cancel_requested(id), Ok(true)) {
                out.push((*id).to_owned());
            }
        }
        Ok(out)
    }
    /// Artifacts written and task file archived, in one transaction: the finalize step
    /// whose artifact writes are idempotent (a crash before this call just redoes them,
    /// reusing the result file already written).
    fn mark_finalized(&self, id: &str, archived_to: &str) -> Result<(), StoreError>;
    /// [`Store::mark_finalized`] for attempt `attempt`, which the store may hold back and
    /// write with a later write of its own or at [`Store::flush`] (a backend that batches
    /// nothing writes it at once: the default). While held back, this handle's
    /// `find_open_by_file` and `pending_finalize` treat the task as finalized; a crash before
    /// the write leaves it pending, and finalize is safe to redo. Skipped if the task has run
    /// again meanwhile.
    fn mark_finalized_later(
        &self,
        id: &str,
        attempt: u32,
        archived_to: &str,
    ) -> Result<(), StoreError> {
        let _ = attempt;
        self.mark_finalized(id, archived_to)
    }
    /// Writes whatever this handle holds back ([`Store::mark_finalized_later`]); nothing
    /// when it holds nothing (the default). Call it now and then and before stopping.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Final and not finalized (includes rejected records), by arrival.
    fn pending_finalize(&self) -> Result<Vec<TaskRecord>, StoreError>;
    fn get(&self, id: &str) -> Result<Option<TaskRecord>, StoreError>;
    /// By arrival order.
    fn list(&self, state: Option<TaskState>) -> Result<Vec<TaskRecord>, StoreError>;
    /// State text → count; every state present.
    fn counts(&self) -> Result<BTreeMap<String, u64>, StoreError>;
    fn attempts(&self, id: &str) -> Result<Vec<AttemptRecord>, StoreError>;
    /// A finished (not rejected) task runs again with a renewed retry budget.
    fn retry(&self, id: &str, now_ms: i64) -> Result<TaskRecord, StoreError>;
    /// Earliest future `not_before_ms` among queued tasks (for the backoff timer).
    fn next_not_before(&self) -> Result<Option<i64>, StoreError>;
    /// The change stream, polled: a token that differs from the last one once another handle
    /// (process, node) has committed since; this handle's own writes need not count. Cheap:
    /// the daemon asks every tick (250 ms) to notice a cancel or retry made by the CLI.
    /// `Err(Gone)` when the database this handle opened is no longer the one at its
    /// location (deleted or replaced): what other commands see is no longer what it writes.
    fn changes(&self) -> Result<ChangeToken, StoreError>;
    /// Whether this handle can write (`Err(ReadOnly)` when not): a read-only file or folder,
    /// a standby server. `orca run` asks at start, before it takes any task.
    fn check_writable(&self) -> Result<(), StoreError>;
    /// Which backend and database this handle uses, for `status` and messages.
    fn describe(&self) -> StoreInfo;
    /// Publishes a small JSON document under `key` for other commands (the running daemon's
    /// settings, read by `status`); replaces what was there.
    fn put_meta(&self, key: &str, value: &serde_json::Value) -> Result<(), StoreError>;
    /// The document published under `key`, if any.
    fn get_meta(&self, key: &str) -> Result<Option<serde_json::Value>, StoreError>;
    /// The fleet operations of a store shared by several nodes; None for a store of one
    /// machine (the default).
    fn fleet(&self) -> Option<&dyn Fleet> {
        None
    }
    /// Notified as soon as another handle's change arrives (PostgreSQL's `LISTEN`), for the
    /// daemon to look at once instead of at its next tick; None when changes are only
    /// polled (SQLite, poll-only mode).
    fn change_signal(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }
}

/// What [`Store::describe`] answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreInfo {
    /// `sqlite` (later `postgres`).
    pub kind: &'static str,
    /// The file path, or the server's URL without its password.
    pub db: String,
}

/// The text stored for a source kind.
pub(crate) fn source_str(s: SourceKind) -> &'static str {
    match s {
        SourceKind::File => "file",
        SourceKind::Cli => "cli",
        SourceKind::Telegram => "telegram",
    }
}

pub(crate) fn source_from_str(s: &str) -> Option<SourceKind> {
    match s {
        "file" => Some(SourceKind::File),
        "cli" => Some(SourceKind::Cli),
        "telegram" => Some(SourceKind::Telegram),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_text_round_trips() {
        for s in TaskState::ALL {
            assert_eq!(s.as_str().parse::<TaskState>(), Ok(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(s.to_string())
            );
        }
        assert_eq!(TaskState::TimedOut.to_string(), "timed_out");
        assert!("done".parse::<TaskState>().is_err());
        let finals: Vec<_> = TaskState::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .collect();
        assert_eq!(finals, TaskState::FINAL.to_vec());
    }

    #[test]
    fn source_text_round_trips() {
        for s in [SourceKind::File, SourceKind::Cli, SourceKind::Telegram] {
            assert_eq!(source_from_str(source_str(s)), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(source_str(s).into())
            );
        }
    }
}

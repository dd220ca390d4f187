//! What can go wrong in a store, in terms that name no backend: each variant says what
//! failed, on which database (`db`: a file path, or a URL without its password), and what
//! to do. Backends map their own errors into these (see `sqlite::map_err`).

use std::path::PathBuf;

use super::TaskState;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the state folder {}: {source}; check that the workspace is writable", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the task database {db}: {detail}; check that the file is a readable, writable SQLite database (move it away to start with an empty queue)")]
    Open { db: String, detail: String },
    #[error("the task database {db} is locked by another process (waited {waited_ms} ms); another orca command is writing to it: try again, or stop the other process")]
    Busy { db: String, waited_ms: u64 },
    #[error("the task database {db} has schema version {found}, but this orca knows versions up to {supported}; it was written by a newer orca: upgrade orca, or move the file away to start with an empty queue")]
    NewerSchema {
        db: String,
        found: i64,
        supported: i64,
    },
    #[error("no task with id `{0}`")]
    NotFound(String),
    #[error("task `{id}` is {state}, not finished; only finished tasks can be retried (cancel it first)")]
    NotFinished { id: String, state: TaskState },
    #[error("task `{id}` was rejected and cannot be retried; fix the task file and drop it into tasks/ again")]
    NotRetryable { id: String },
    /// The conflict of many workers: the record is no longer this worker's to change.
    #[error("task `{id}` is not running under worker `{worker}` (its lease expired or it was taken over); this change was not recorded")]
    LeaseLost { id: String, worker: String },
    #[error("invalid store request: {0}")]
    Invalid(String),
    #[error("task `{id}` in {db} cannot be read: {detail}")]
    Corrupt {
        db: String,
        id: String,
        detail: String,
    },
    #[error("the task database {db} is damaged or not a SQLite database ({detail}); move it away (e.g. to orca.db.bad) and start again: task files still in tasks/ are queued anew, and results already written stay")]
    Damaged { db: String, detail: String },
    #[error("the task database {db} cannot be written ({detail}); orca records every task's state there: make the file and its folder writable for this user (check owner and mode with `ls -l`, the immutable flag with `lsattr`, a read-only mount), or set ORCA_DATABASE_URL=sqlite:PATH to a writable place")]
    ReadOnly { db: String, detail: String },
    #[error("the task database {db} was deleted or replaced while orca was running; orca stops so that no task is recorded where no other command can see it: start `orca run` again (after putting the file back, if it was moved away by mistake; task files still in tasks/ are queued anew)")]
    Gone { db: String },
    #[error("ORCA_DATABASE_URL={url} cannot be used: {reason}")]
    Unsupported { url: String, reason: String },
    #[error("task database error on {db}: {message}")]
    Backend { db: String, message: String },
}

impl StoreError {
    /// The exit code a command ends with when it cannot go on because of this error:
    /// 2 for what the user's setup must change (a refused URL, a read-only database),
    /// 1 for the rest.
    pub fn exit_code(&self) -> i32 {
        match self {
            StoreError::Unsupported { .. } | StoreError::ReadOnly { .. } => 2,
            _ => 1,
        }
    }
}

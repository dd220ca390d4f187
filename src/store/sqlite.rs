//! The embedded store: the queue in one SQLite file (`.orca/orca.db`), WAL mode.
//! Every operation is one short transaction; claims use `BEGIN IMMEDIATE`, so any number of
//! threads and processes (each with its own `SqliteStore`) can claim at once safely.
//! Finalize markers given to `mark_finalized_soon` wait in memory and go out with the next
//! write transaction (or `flush_marks`, or on drop), saving a commit per task.
//!
//! Durability trade-off: `synchronous = NORMAL` in WAL mode does not fsync on every commit,
//! only at checkpoints. A process crash (or `kill -9`) loses nothing that was committed; a
//! power loss or OS crash may lose the last few transactions, but never corrupts the
//! database. Lost transactions are repaired by the start-up scan (the task file is still in
//! `tasks/` until its final state is committed AND its artifacts are written), which is why
//! Orca can afford it: thousands of tasks per second instead of one fsync per state change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::types::Type;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row};

use super::migrate::{self, MigrateError};
use super::{
    source_from_str, source_str, AttemptRecord, CancelOutcome, ChangeToken, Finish, Finished,
    NewTask, NextClaim, Store, StoreError, StoreInfo, TaskRecord, TaskState,
};
use crate::task::{Priority, Task};
use crate::workspace::Workspace;

/// How long a statement waits for another process's write lock before giving up.
pub const BUSY_TIMEOUT_MS: u64 = 5_000;

/// The page size of a new database. Every commit appends whole pages to the WAL (a run's
/// end and the next claim write about six), so smaller pages mean less to copy and checksum
/// per commit; 2 KiB still holds several task rows per page. A database made with another
/// size keeps it (in WAL mode the size is fixed once the file exists).
pub const PAGE_SIZE: u32 = 2048;

/// The columns of a `TaskRecord`, in the order [`record`] reads them (a macro, so that the
/// statements of the task path are `concat!`-ed at compile time, not formatted per call).
macro_rules! cols {
    () => {
        "id, desired_id, stem, file, source, source_user, state, priority, seq, \
         task_json, attempts, max_retries, not_before_ms, lease_owner, lease_expires_ms, \
         cancel_requested, received_at_ms, started_at_ms, finished_at_ms, session_id, progress, \
         error, result, artifacts_written, archived_to, finalized"
    };
}
const COLS: &str = cols!();

/// The SQLite implementation of [`Store`]. One connection behind a mutex; open one per
/// process (or per thread, for parallel claimers).
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// Finalize markers waiting to ride along with the next write transaction
    /// ([`SqliteStore::mark_finalized_soon`]); written at the latest when the store is dropped.
    marks: Mutex<Vec<Mark>>,
    /// The file this connection opened (device, inode), to notice it deleted or replaced.
    identity: Option<FileId>,
}

/// `e`, the error of opening the database at `path`, as the user should read it: when the
/// file could not be opened because its folder cannot be written (SQLite creates the `-wal`
/// and `-shm` files beside it), a [`StoreError::ReadOnly`] naming the folder.
pub(crate) fn explain_open_error(path: &Path, e: StoreError) -> StoreError {
    let (StoreError::Open { db, detail }
    | StoreError::Backend {
        db,
        message: detail,
    }) = &e
    else {
        return e;
    };
    let Some(dir) = path.parent() else { return e };
    let probe = dir.join(format!(".orca-write-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            e
        }
        Err(io) => StoreError::ReadOnly {
            db: db.clone(),
            detail: format!(
                "{detail}: its folder {} cannot be written ({io}), and SQLite keeps its \
                 -wal and -shm files there",
                dir.display()
            ),
        },
    }
}

/// A file's device and inode.
type FileId = (u64, u64);

/// The identity of the file at `path` now; None when it cannot be read.
fn file_id(path: &Path) -> std::io::Result<FileId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map(|m| (m.dev(), m.ino()))
}

/// A finalize marker not yet written: the task, the attempt it finalized, the archive path.
#[derive(Debug, Clone, PartialEq)]
struct Mark {
    id: String,
    attempt: u32,
    archived_to: String,
}

/// The marker's own update: only a final, unfinalized record of that same attempt (a task
/// run again by `orca retry` meanwhile is left to its new run).
const MARK_SQL: &str = "UPDATE OR ROLLBACK tasks SET artifacts_written = 1, archived_to = ?3, \
     finalized = 1 WHERE id = ?1 AND attempts = ?2 AND finalized = 0 \
     AND state NOT IN ('queued', 'running')";

/// The attempts of one task, in order (read by [`attempt_row`]).
const ATTEMPTS_SQL: &str = "SELECT task_id, attempt, worker, started_at_ms, finished_at_ms, \
     outcome, error, exit_code, session_id, resumed FROM attempts WHERE task_id = ?1 \
     ORDER BY attempt";

/// The claim: the first queued task by priority and arrival whose labels the worker has, made
/// running (`?1` worker, `?2` now, `?3` lease length, `?4` the worker's labels as JSON).
/// Every query of queued or running records names the queue index and repeats its condition,
/// `state IN ('queued', 'running')`, word for word: SQLite uses a partial index only then, and
/// without statistics it may otherwise prefer scanning every record in `seq` order.
const CLAIM_SQL: &str = concat!(
    "UPDATE OR ROLLBACK tasks SET state = 'running', attempts = attempts + 1, \
         lease_owner = ?1, lease_expires_ms = ?2 + ?3, \
         started_at_ms = COALESCE(started_at_ms, ?2), not_before_ms = NULL \
         WHERE seq = (SELECT seq FROM tasks INDEXED BY tasks_queue \
           WHERE state IN ('queued', 'running') AND state = 'queued' AND cancel_requested = 0 \
             AND (not_before_ms IS NULL OR not_before_ms <= ?2) \
             AND (requires IS NULL OR NOT EXISTS ( \
               SELECT 1 FROM json_each(tasks.requires) AS r \
               WHERE NOT EXISTS (SELECT 1 FROM json_each(?4) AS l WHERE l.value = r.value))) \
           ORDER BY prio_rank, seq LIMIT 1) \
         RETURNING ",
    cols!()
);

/// Queued or running records in state `?1`, in arrival order.
const LIST_OPEN_SQL: &str = concat!(
    "SELECT ",
    cols!(),
    " FROM tasks INDEXED BY tasks_queue \
     WHERE state IN ('queued', 'running') AND state = ?1 ORDER BY seq"
);

/// Running tasks whose lease ran out before `?1`.
const EXPIRED_SQL: &str =
    "SELECT id, attempts, cancel_requested, lease_owner FROM tasks INDEXED BY tasks_queue \
     WHERE state IN ('queued', 'running') AND state = 'running' AND lease_expires_ms < ?1 \
     ORDER BY seq";

/// Running tasks of workers whose names start with `?1` (NULL: of every worker).
const RECOVER_SQL: &str =
    "SELECT id, attempts, cancel_requested, lease_owner FROM tasks INDEXED BY tasks_queue \
     WHERE state IN ('queued', 'running') AND state = 'running' \
     AND (?1 IS NULL OR substr(lease_owner, 1, length(?1)) = ?1) ORDER BY seq";

/// When the first queued task held back by a retry delay becomes due (after `?1`).
const NEXT_NOT_BEFORE_SQL: &str = "SELECT min(not_before_ms) FROM tasks INDEXED BY tasks_queue \
     WHERE state IN ('queued', 'running') AND state = 'queued' AND not_before_ms > ?1";

/// The update that ends a running task we own, returning `$ret` (`?1` id, `?2` state,
/// `?3` error JSON, `?4` now, `?5` session id, `?6` worker).
macro_rules! finish_sql {
    ($ret:expr) => {
        concat!(
            "UPDATE OR ROLLBACK tasks SET state = ?2, error = ?3, finished_at_ms = ?4, \
             lease_owner = NULL, lease_expires_ms = NULL, not_before_ms = NULL, \
             session_id = COALESCE(?5, session_id) \
             WHERE id = ?1 AND state = 'running' AND lease_owner = ?6 RETURNING ",
            $ret
        )
    };
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Err(e) = self.flush_marks() {
            tracing::error!(
                "cannot record finished tasks as finalized in {} (the next start finalizes them again): {e}",
                self.path.display()
            );
        }
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |e: rusqlite::Error| match map_err(path, e) {
            StoreError::Backend { db, message } => StoreError::Open {
                db,
                detail: message,
            },
            other => other,
        };
        // A new database is private (0600; SQLite gives its -wal and -shm the same mode).
        let _ = crate::workspace::private_file_options().open(path);
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))
            .map_err(open_err)?;
        let store_err = |e| map_err(path, e);
        // Only takes effect while the file is still empty, before WAL mode is set.
        conn.execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE}"))
            .map_err(store_err)?;
        // journal_mode answers with a row; WAL is persistent in the file once set.
        let _mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(store_err)?;
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(store_err)?;
        conn.set_prepared_statement_cache_capacity(64);
        // Plans must not depend on bound values: without this, SQLite matches a `?N` against
        // the partial index's `WHERE` by value and re-prepares the statement whenever `?N`
        // changes, which is every call of `find_open_by_file` and the other lookups.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
            .map_err(open_err)?;
        match migrate::migrate(&mut conn) {
            Ok(_) => {}
            Err(MigrateError::Newer { found }) => {
                return Err(StoreError::NewerSchema {
                    db: path.display().to_string(),
                    found,
                    supported: migrate::LATEST,
                })
            }
            Err(MigrateError::Sql(e)) => return Err(map_err(path, e)),
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            marks: Mutex::new(Vec::new()),
            identity: file_id(path).ok(),
        })
    }

    /// Opens `.orca/orca.db` of the workspace, creating `.orca/` when missing.
    pub fn open_in_workspace(ws: &Workspace) -> Result<Self, StoreError> {
        let dir = ws.state_dir();
        crate::workspace::create_private_dir(&dir).map_err(|source| StoreError::Io {
            path: dir.clone(),
            source,
        })?;
        Self::open(&ws.db_file())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, outside any transaction. A panic in another thread while it held the
    /// connection (the mutex is then poisoned) may have left a transaction open: it is rolled
    /// back here, so that no caller, reader or writer, sees or extends its half-done changes.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        match self.conn.lock() {
            Ok(conn) => conn,
            Err(poisoned) => {
                let conn = poisoned.into_inner();
                if !conn.is_autocommit() {
                    if let Err(e) = conn.execute_batch("ROLLBACK") {
                        tracing::error!(
                            "cannot roll back a transaction left open by a panic on {}: {e}",
                            self.path.display()
                        );
                    }
                }
                if conn.is_autocommit() {
                    self.conn.clear_poison();
                }
                conn
            }
        }
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        map_err(&self.path, e)
    }

    /// Runs a one-row `UPDATE ... WHERE id = ?1` with `value` as `?2`; NotFound when no row.
    fn update_one(&self, id: &str, sql: &str, value: &str) -> Result<(), StoreError> {
        let n = self
            .conn()
            .prepare_cached(sql)
            .and_then(|mut s| s.execute(params![id, value]))
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Err(StoreError::NotFound(id.to_owned()));
        }
        Ok(())
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction; commits when it returns Ok and rolls
    /// back otherwise. The three statements are prepared once and cached (rusqlite's
    /// `Transaction` would parse `BEGIN` and `COMMIT` anew each time).
    ///
    /// Since any failed statement ends the whole transaction here, the writes of the task
    /// path say `OR ROLLBACK`: on a constraint failure SQLite rolls the transaction back
    /// itself, and so needs no statement journal (a copy of every page a statement touches,
    /// kept to undo just that statement), which cost about 4 % of the daemon's instructions.
    fn write<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.conn();
        let marks = std::mem::take(&mut *self.marks_held());
        let run = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([]));
        let out = run("BEGIN IMMEDIATE")
            .map_err(|e| self.err(e))
            .and_then(|_| self.write_marks(&conn, &marks))
            .and_then(|()| f(&conn))
            .and_then(|out| {
                run("COMMIT").map_err(|e| self.err(e))?;
                Ok(out)
            });
        if out.is_err() {
            if !conn.is_autocommit() {
                if let Err(e) = run("ROLLBACK") {
                    tracing::error!(
                        "cannot roll back a failed transaction on {}: {e}",
                        self.path.display()
                    );
                }
            }
            // Not written: they wait for the next transaction.
            self.marks_held().splice(0..0, marks);
        }
        out
    }

    fn marks_held(&self) -> MutexGuard<'_, Vec<Mark>> {
        self.marks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write_marks(&self, tx: &Connection, marks: &[Mark]) -> Result<(), StoreError> {
        if marks.is_empty() {
            return Ok(());
        }
        let mut stmt = tx.prepare_cached(MARK_SQL).map_err(|e| self.err(e))?;
        for m in marks {
            stmt.execute(params![m.id, m.attempt, m.archived_to])
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Whether a marker for this record's attempt is waiting to be written.
    fn mark_held(&self, rec: &TaskRecord) -> bool {
        self.marks_held()
            .iter()
            .any(|m| m.id == rec.id && m.attempt == rec.attempts)
    }

    /// The finish update (`sql`, from [`finish_sql!`]) and the close of the attempt, in the
    /// caller's transaction; `read` maps the returned row, `attempt_of` names its attempt.
    fn finish_in<T>(
        &self,
        tx: &Connection,
        (id, worker, f): (&str, &str, &Finish),
        sql: &str,
        read: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
        attempt_of: impl FnOnce(&T) -> u32,
    ) -> Result<T, StoreError> {
        if !f.state.is_final() || f.state == TaskState::Rejected {
            return Err(StoreError::Invalid(format!(
                "cannot finish task `{id}` as {}: use succeeded, failed, timed_out or cancelled",
                f.state
            )));
        }
        let error_json = f.error.as_ref().map(to_json).transpose()?;
        let e = |e| self.err(e);
        // The ownership check is part of the update; only when no row matched does a
        // second look tell "no such task" from "the lease is someone else's".
        let row = tx
            .prepare_cached(sql)
            .and_then(|mut s| {
                s.query_row(
                    params![
                        id,
                        f.state.as_str(),
                        error_json,
                        f.now_ms,
                        f.session_id,
                        worker
                    ],
                    read,
                )
                .optional()
            })
            .map_err(e)?;
        let Some(row) = row else {
            self.owned(tx, id, worker)?;
            return Err(StoreError::LeaseLost {
                id: id.to_owned(),
                worker: worker.to_owned(),
            });
        };
        close_attempt(
            tx,
            id,
            attempt_of(&row),
            f.now_ms,
            &f.outcome,
            f.error.as_ref().map(error_text).as_deref(),
            f.exit_code,
            f.session_id.as_deref(),
        )
        .map_err(e)?;
        Ok(row)
    }

    /// [`Store::claim`] in the caller's transaction; `labels` as a JSON array.
    fn claim_in(
        &self,
        tx: &Connection,
        worker: &str,
        labels: &str,
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<Option<TaskRecord>, StoreError> {
        let e = |e| self.err(e);
        let rec = tx
            .prepare_cached(CLAIM_SQL)
            .and_then(|mut s| {
                s.query_row(params![worker, now_ms, lease_ms, labels], record)
                    .optional()
            })
            .map_err(e)?;
        if let Some(rec) = &rec {
            tx.prepare_cached(
                "INSERT OR ROLLBACK INTO attempts (task_id, attempt, worker, started_at_ms) \
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![rec.id, rec.attempts, worker, now_ms]))
            .map_err(e)?;
        }
        Ok(rec)
    }

    fn attempts_in(&self, conn: &Connection, id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        conn.prepare_cached(ATTEMPTS_SQL)
            .and_then(|mut s| s.query_map([id], attempt_row)?.collect())
            .map_err(|e| self.err(e))
    }

    /// [`Store::find_open_by_file`] on `conn`.
    fn find_open_in(
        &self,
        conn: &Connection,
        file: &str,
    ) -> Result<Option<TaskRecord>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            cols!(),
            " FROM tasks WHERE file = ?1 AND finalized = 0 ORDER BY seq DESC LIMIT 1"
        );
        let rec = self.records_in(conn, SQL, [file])?.into_iter().next();
        Ok(rec.filter(|r| !self.mark_held(r)))
    }

    fn query_records(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        self.records_in(&self.conn(), sql, params)
    }

    fn records_in(
        &self,
        conn: &Connection,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let mut stmt = conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params, record)
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Running → back to the queue (or `Cancelled` when a cancel was requested meanwhile),
    /// closing the current attempt with `outcome`.
    #[allow(clippy::too_many_arguments)]
    fn back_to_queue(
        &self,
        tx: &Connection,
        id: &str,
        attempt: u32,
        cancel_requested: bool,
        not_before_ms: Option<i64>,
        outcome: &str,
        reason: &str,
        exit_code: Option<i32>,
        session_id: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let e = |e| self.err(e);
        if cancel_requested {
            tx.prepare_cached(
                "UPDATE tasks SET state = 'cancelled', finished_at_ms = ?2, lease_owner = NULL, \
                 lease_expires_ms = NULL, not_before_ms = NULL WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![id, now_ms]))
            .map_err(e)?;
        } else {
            tx.prepare_cached(
                "UPDATE tasks SET state = 'queued', not_before_ms = ?2, lease_owner = NULL, \
                 lease_expires_ms = NULL WHERE id = ?1",
            )
            .and_then(|mut s| s.execute(params![id, not_before_ms]))
            .map_err(e)?;
        }
        close_attempt(
            tx,
            id,
            attempt,
            now_ms,
            outcome,
            Some(reason),
            exit_code,
            session_id,
        )
        .map_err(e)?;
        Ok(())
    }

    /// The current attempt and cancel flag of a task running under `worker`.
    fn owned(&self, tx: &Connection, id: &str, worker: &str) -> Result<(u32, bool), StoreError> {
        let row: Option<(String, Option<String>, u32, bool)> = tx
            .prepare_cached(
                "SELECT state, lease_owner, attempts, cancel_requested FROM tasks WHERE id = ?1",
            )
            .and_then(|mut s| {
                s.query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    .optional()
            })
            .map_err(|e| self.err(e))?;
        match row {
            None => Err(StoreError::NotFound(id.to_owned())),
            Some((state, owner, attempts, cancel))
                if state == TaskState::Running.as_str() && owner.as_deref() == Some(worker) =>
            {
                Ok((attempts, cancel))
            }
            Some(_) => Err(StoreError::LeaseLost {
                id: id.to_owned(),
                worker: worker.to_owned(),
            }),
        }
    }

    /// Requeues every running task matched by `sql` (which selects id, attempts,
    /// cancel_requested, lease_owner), as `interrupted`.
    fn requeue_where(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        why: &str,
        now_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        self.write(|tx| {
            let rows: Vec<(String, u32, bool, Option<String>)> = tx
                .prepare_cached(sql)
                .and_then(|mut s| {
                    s.query_map(params, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                        .collect()
                })
                .map_err(|e| self.err(e))?;
            let mut ids = Vec::with_capacity(rows.len());
            for (id, attempt, cancel, owner) in rows {
                let reason = format!("{why} (worker {})", owner.as_deref().unwrap_or("?"));
                self.back_to_queue(
                    tx,
                    &id,
                    attempt,
                    cancel,
                    None,
                    "interrupted",
                    &reason,
                    None,
                    None,
                    now_ms,
                )?;
                ids.push(id);
            }
            Ok(ids)
        })
    }
}

/// Maps a rusqlite error to the backend-neutral [`StoreError`], singling out "database is
/// locked" (another process held the write lock longer than the busy timeout), a damaged
/// file and a read-only one.
fn map_err(path: &Path, e: rusqlite::Error) -> StoreError {
    let db = path.display().to_string();
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                return StoreError::Busy {
                    db,
                    waited_ms: BUSY_TIMEOUT_MS,
                }
            }
            ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => {
                return StoreError::Damaged {
                    db,
                    detail: e.to_string(),
                }
            }
            ErrorCode::ReadOnly => {
                return StoreError::ReadOnly {
                    db,
                    detail: e.to_string(),
                }
            }
            _ => {}
        }
    }
    StoreError::Backend {
        db,
        message: e.to_string(),
    }
}

fn conversion(
    idx: usize,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, e.into())
}

fn json_col<T: serde::de::DeserializeOwned>(
    row: &Row<'_>,
    idx: usize,
) -> rusqlite::Result<Option<T>> {
    match row.get::<_, Option<String>>(idx)? {
        None => Ok(None),
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| conversion(idx, e)),
    }
}

fn parse_col<T>(
    row: &Row<'_>,
    idx: usize,
    parse: impl FnOnce(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    parse(&text).ok_or_else(|| conversion(idx, format!("unknown value '{text}'")))
}

/// Reads a row selected with [`COLS`].
fn record(row: &Row<'_>) -> rusqlite::Result<TaskRecord> {
    Ok(TaskRecord {
        id: row.get(0)?,
        desired_id: row.get(1)?,
        stem: row.get(2)?,
        file: row.get(3)?,
        source: parse_col(row, 4, source_from_str)?,
        source_user: row.get(5)?,
        state: parse_col(row, 6, |s| s.parse().ok())?,
        priority: parse_col(row, 7, |s| s.parse::<Priority>().ok())?,
        seq: row.get(8)?,
        task: json_col::<Task>(row, 9)?,
        attempts: row.get(10)?,
        max_retries: row.get(11)?,
        not_before_ms: row.get(12)?,
        lease_owner: row.get(13)?,
        lease_expires_ms: row.get(14)?,
        cancel_requested: row.get(15)?,
        received_at_ms: row.get(16)?,
        started_at_ms: row.get(17)?,
        finished_at_ms: row.get(18)?,
        session_id: row.get(19)?,
        progress: json_col(row, 20)?,
        error: json_col(row, 21)?,
        result: json_col(row, 22)?,
        artifacts_written: row.get(23)?,
        archived_to: row.get(24)?,
        finalized: row.get(25)?,
    })
}

fn attempt_row(row: &Row<'_>) -> rusqlite::Result<AttemptRecord> {
    Ok(AttemptRecord {
        task_id: row.get(0)?,
        attempt: row.get(1)?,
        worker: row.get(2)?,
        started_at_ms: row.get(3)?,
        finished_at_ms: row.get(4)?,
        outcome: row.get(5)?,
        error: row.get(6)?,
        exit_code: row.get(7)?,
        session_id: row.get(8)?,
        resumed: row.get(9)?,
        node: None,
    })
}

#[allow(clippy::too_many_arguments)]
fn close_attempt(
    tx: &Connection,
    id: &str,
    attempt: u32,
    now_ms: i64,
    outcome: &str,
    error: Option<&str>,
    exit_code: Option<i32>,
    session_id: Option<&str>,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(
        "UPDATE OR ROLLBACK attempts SET finished_at_ms = ?3, outcome = ?4, error = ?5, exit_code = ?6, \
         session_id = COALESCE(?7, session_id) WHERE task_id = ?1 AND attempt = ?2",
    )?
    .execute(params![
        id, attempt, now_ms, outcome, error, exit_code, session_id
    ])
}

/// `base`, or `base-2`, `base-3`, ... : the first value not yet used in `col`.
fn unique_value(tx: &Connection, col: &str, base: &str) -> rusqlite::Result<String> {
    let sql = format!("SELECT 1 FROM tasks WHERE {col} = ?1");
    let mut stmt = tx.prepare_cached(&sql)?;
    let mut candidate = base.to_owned();
    let mut n = 1u64;
    while stmt.exists([&candidate])? {
        n += 1;
        candidate = format!("{base}-{n}");
    }
    Ok(candidate)
}

/// A short human text for an attempt row from a result error object.
fn error_text(error: &serde_json::Value) -> String {
    match error.get("message").and_then(|m| m.as_str()) {
        Some(m) => m.to_owned(),
        None => match error.as_str() {
            Some(s) => s.to_owned(),
            None => error.to_string(),
        },
    }
}

fn to_json(v: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Invalid(format!("cannot encode JSON: {e}")))
}

/// A validated, encoded `NewTask`, ready to insert.
struct EnqueueRow<'a> {
    t: &'a NewTask,
    task_json: Option<String>,
    requires: Option<String>,
    error: Option<String>,
}

impl<'a> EnqueueRow<'a> {
    fn new(t: &'a NewTask) -> Result<Self, StoreError> {
        match (t.state, &t.task) {
            (TaskState::Queued, Some(_)) | (TaskState::Rejected, _) => {}
            (TaskState::Queued, None) => {
                return Err(StoreError::Invalid(format!(
                    "queued task `{}` has no parsed task",
                    t.desired_id
                )))
            }
            (other, _) => {
                return Err(StoreError::Invalid(format!(
                    "a new task must be queued or rejected, not {other}"
                )))
            }
        }
        let task_json = t.task.as_ref().map(to_json).transpose()?;
        let requires = match &t.task {
            Some(task) if !task.requires.is_empty() => Some(to_json(&task.requires)?),
            _ => None,
        };
        let error = t.error.as_ref().map(to_json).transpose()?;
        Ok(EnqueueRow {
            t,
            task_json,
            requires,
            error,
        })
    }
}

impl SqliteStore {
    /// Inserts one record, choosing a free id and stem, inside `tx`.
    fn insert(&self, tx: &Connection, row: &EnqueueRow<'_>) -> Result<TaskRecord, StoreError> {
        let e = |e| self.err(e);
        let t = row.t;
        let finished = (t.state == TaskState::Rejected).then_some(t.received_at_ms);
        let id = unique_value(tx, "id", &t.desired_id).map_err(e)?;
        let stem = unique_value(tx, "stem", &t.stem).map_err(e)?;
        // Only the arrival number comes back: the rest of the record is what was written
        // (reading it back would parse the task's JSON that was just made from it).
        let seq: i64 = tx
            .prepare_cached(
                "INSERT OR ROLLBACK INTO tasks (id, desired_id, stem, file, source, source_user, state, \
                 priority, prio_rank, task_json, requires, max_retries, retry_budget, \
                 received_at_ms, finished_at_ms, error) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13, ?14, ?15) \
                 RETURNING seq",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![
                        id,
                        t.desired_id,
                        stem,
                        t.file,
                        source_str(t.source),
                        t.source_user,
                        t.state.as_str(),
                        t.priority.as_str(),
                        t.priority.rank(),
                        row.task_json,
                        row.requires,
                        t.max_retries,
                        t.received_at_ms,
                        finished,
                        row.error,
                    ],
                    |r| r.get(0),
                )
            })
            .map_err(e)?;
        Ok(TaskRecord::inserted(t, id, stem, seq, finished))
    }
}

impl Store for SqliteStore {
    fn enqueue(&self, t: NewTask) -> Result<TaskRecord, StoreError> {
        let row = EnqueueRow::new(&t)?;
        self.write(|tx| self.insert(tx, &row))
    }

    fn enqueue_many(&self, tasks: &[NewTask]) -> Result<Vec<TaskRecord>, StoreError> {
        let rows = tasks
            .iter()
            .map(EnqueueRow::new)
            .collect::<Result<Vec<_>, _>>()?;
        self.write(|tx| rows.iter().map(|row| self.insert(tx, row)).collect())
    }

    fn find_open_by_file(&self, file: &str) -> Result<Option<TaskRecord>, StoreError> {
        self.find_open_in(&self.conn(), file)
    }

    fn find_open_by_files(&self, files: &[&str]) -> Result<Vec<Option<TaskRecord>>, StoreError> {
        if files.len() < 2 {
            return files.iter().map(|f| self.find_open_by_file(f)).collect();
        }
        // One read transaction for the lot: one WAL read lock instead of one per file.
        let conn = self.conn();
        let run = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([]));
        run("BEGIN").map_err(|e| self.err(e))?;
        let found: Result<Vec<_>, _> = files.iter().map(|f| self.find_open_in(&conn, f)).collect();
        // Ending a read transaction only lets go of its snapshot; it cannot lose anything.
        let ended = run("COMMIT").map_err(|e| self.err(e));
        let found = found?;
        ended?;
        Ok(found)
    }

    fn claim(
        &self,
        worker: &str,
        labels: &[String],
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<Option<TaskRecord>, StoreError> {
        let labels = to_json(&labels)?;
        self.write(|tx| self.claim_in(tx, worker, &labels, lease_ms, now_ms))
    }

    fn heartbeat(
        &self,
        id: &str,
        worker: &str,
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let conn = self.conn();
        let n = conn
            .prepare_cached(
                "UPDATE tasks SET lease_expires_ms = ?3 + ?4 \
                 WHERE id = ?1 AND state = 'running' AND lease_owner = ?2",
            )
            .and_then(|mut s| s.execute(params![id, worker, now_ms, lease_ms]))
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    fn set_progress(
        &self,
        id: &str,
        worker: &str,
        progress: &serde_json::Value,
        session_id: Option<&str>,
    ) -> Result<(), StoreError> {
        let progress = to_json(progress)?;
        self.write(|tx| {
            let e = |e| self.err(e);
            let attempt: Option<u32> = tx
                .prepare_cached(
                    "UPDATE tasks SET progress = ?3, session_id = COALESCE(?4, session_id) \
                     WHERE id = ?1 AND state = 'running' AND lease_owner = ?2 RETURNING attempts",
                )
                .and_then(|mut s| {
                    s.query_row(params![id, worker, progress, session_id], |r| r.get(0))
                        .optional()
                })
                .map_err(e)?;
            if let (Some(attempt), Some(sid)) = (attempt, session_id) {
                tx.prepare_cached(
                    "UPDATE attempts SET session_id = ?3 WHERE task_id = ?1 AND attempt = ?2",
                )
                .and_then(|mut s| s.execute(params![id, attempt, sid]))
                .map_err(e)?;
            }
            Ok(())
        })
    }

    fn mark_resumed(&self, id: &str, attempt: u32) -> Result<(), StoreError> {
        let conn = self.conn();
        let n = conn
            .prepare_cached("UPDATE attempts SET resumed = 1 WHERE task_id = ?1 AND attempt = ?2")
            .and_then(|mut s| s.execute(params![id, attempt]))
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("{id} (attempt {attempt})")));
        }
        Ok(())
    }

    fn finish(&self, id: &str, worker: &str, f: Finish) -> Result<TaskRecord, StoreError> {
        const SQL: &str = finish_sql!(cols!());
        self.write(|tx| self.finish_in(tx, (id, worker, &f), SQL, record, |r| r.attempts))
    }

    fn finish_claimed(
        &self,
        claimed: &TaskRecord,
        worker: &str,
        f: Finish,
        next: Option<NextClaim<'_>>,
    ) -> Result<Finished, StoreError> {
        // The next claim's labels, as JSON, and its lease.
        let next = next
            .map(|n| to_json(&n.labels).map(|labels| (labels, n.lease_ms)))
            .transpose()?;
        // Only what may differ from the claimed record comes back: the task itself (the
        // largest column, and JSON to decode) is carried over.
        const SQL: &str = finish_sql!("attempts, session_id, cancel_requested, progress");
        let id = claimed.id.as_str();
        self.write(|tx| {
            let (attempts, session_id, cancel_requested, progress) = self.finish_in(
                tx,
                (id, worker, &f),
                SQL,
                |r| Ok((r.get::<_, u32>(0)?, r.get(1)?, r.get(2)?, json_col(r, 3)?)),
                |row| row.0,
            )?;
            let rec = TaskRecord {
                state: f.state,
                error: f.error.clone(),
                attempts,
                session_id,
                cancel_requested,
                progress,
                finished_at_ms: Some(f.now_ms),
                lease_owner: None,
                lease_expires_ms: None,
                not_before_ms: None,
                ..claimed.clone()
            };
            let attempts = self.attempts_in(tx, id)?;
            let next = match &next {
                Some((labels, lease_ms)) => {
                    self.claim_in(tx, worker, labels, *lease_ms, f.now_ms)?
                }
                None => None,
            };
            Ok(Finished {
                record: rec,
                attempts,
                next,
            })
        })
    }

    fn requeue(
        &self,
        id: &str,
        worker: &str,
        not_before_ms: i64,
        reason: &str,
        exit_code: Option<i32>,
        session_id: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = crate::clock::now_ms();
        self.write(|tx| {
            let (attempt, cancel) = self.owned(tx, id, worker)?;
            self.back_to_queue(
                tx,
                id,
                attempt,
                cancel,
                Some(not_before_ms),
                "retry",
                reason,
                exit_code,
                session_id,
                now,
            )
        })
    }

    fn release(&self, id: &str, worker: &str, reason: &str) -> Result<(), StoreError> {
        let now = crate::clock::now_ms();
        self.write(|tx| {
            let (attempt, cancel) = self.owned(tx, id, worker)?;
            self.back_to_queue(
                tx,
                id,
                attempt,
                cancel,
                None,
                "interrupted",
                reason,
                None,
                None,
                now,
            )
        })
    }

    fn requeue_expired(&self, now_ms: i64) -> Result<Vec<String>, StoreError> {
        self.requeue_where(EXPIRED_SQL, [now_ms], "lease expired", now_ms)
    }

    fn recover_worker(
        &self,
        worker_prefix_or_all: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        self.requeue_where(
            RECOVER_SQL,
            [worker_prefix_or_all],
            "recovered after a restart",
            crate::clock::now_ms(),
        )
    }

    fn request_cancel(&self, id: &str, now_ms: i64) -> Result<CancelOutcome, StoreError> {
        self.write(|tx| {
            let e = |e| self.err(e);
            let state: Option<String> = tx
                .prepare_cached("SELECT state FROM tasks WHERE id = ?1")
                .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
                .map_err(e)?;
            let Some(state) = state else {
                return Ok(CancelOutcome::NotFound);
            };
            let state: TaskState = state.parse().map_err(|detail| StoreError::Corrupt {
                db: self.path.display().to_string(),
                id: id.to_owned(),
                detail,
            })?;
            match state {
                TaskState::Queued => {
                    tx.prepare_cached(
                        "UPDATE tasks SET state = 'cancelled', cancel_requested = 1, \
                         finished_at_ms = ?2, not_before_ms = NULL WHERE id = ?1",
                    )
                    .and_then(|mut s| s.execute(params![id, now_ms]))
                    .map_err(e)?;
                    Ok(CancelOutcome::Cancelled)
                }
                TaskState::Running => {
                    tx.prepare_cached("UPDATE tasks SET cancel_requested = 1 WHERE id = ?1")
                        .and_then(|mut s| s.execute([id]))
                        .map_err(e)?;
                    Ok(CancelOutcome::Requested)
                }
                done => Ok(CancelOutcome::AlreadyFinished(done)),
            }
        })
    }

    fn is_cancel_requested(&self, id: &str) -> Result<bool, StoreError> {
        let conn = self.conn();
        conn.prepare_cached("SELECT cancel_requested FROM tasks WHERE id = ?1")
            .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?
            .ok_or_else(|| StoreError::NotFound(id.to_owned()))
    }

    fn mark_finalized(&self, id: &str, archived_to: &str) -> Result<(), StoreError> {
        self.update_one(
            id,
            "UPDATE tasks SET artifacts_written = 1, archived_to = ?2, finalized = 1 WHERE id = ?1",
            archived_to,
        )
    }

    fn mark_finalized_later(
        &self,
        id: &str,
        attempt: u32,
        archived_to: &str,
    ) -> Result<(), StoreError> {
        self.mark_finalized_soon(id, attempt, archived_to)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.flush_marks()
    }

    fn pending_finalize(&self) -> Result<Vec<TaskRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLS} FROM tasks WHERE finalized = 0 \
             AND state NOT IN ('queued', 'running') ORDER BY seq"
        );
        let mut recs = self.query_records(&sql, [])?;
        recs.retain(|r| !self.mark_held(r));
        Ok(recs)
    }

    fn get(&self, id: &str) -> Result<Option<TaskRecord>, StoreError> {
        let sql = format!("SELECT {COLS} FROM tasks WHERE id = ?1");
        Ok(self.query_records(&sql, [id])?.into_iter().next())
    }

    fn list(&self, state: Option<TaskState>) -> Result<Vec<TaskRecord>, StoreError> {
        match state {
            // Queued and running records are found through the queue index; the others
            // (history, which only grows) by a scan.
            Some(s @ (TaskState::Queued | TaskState::Running)) => {
                self.query_records(LIST_OPEN_SQL, [s.as_str()])
            }
            Some(s) => {
                let sql = format!("SELECT {COLS} FROM tasks WHERE state = ?1 ORDER BY seq");
                self.query_records(&sql, [s.as_str()])
            }
            None => {
                let sql = format!("SELECT {COLS} FROM tasks ORDER BY seq");
                self.query_records(&sql, [])
            }
        }
    }

    fn counts(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut out: BTreeMap<String, u64> = TaskState::ALL
            .iter()
            .map(|s| (s.as_str().to_owned(), 0))
            .collect();
        let conn = self.conn();
        let rows: Vec<(String, i64)> = conn
            .prepare_cached("SELECT state, count(*) FROM tasks GROUP BY state")
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .map_err(|e| self.err(e))?;
        for (state, n) in rows {
            out.insert(state, u64::try_from(n).unwrap_or(0));
        }
        Ok(out)
    }

    fn attempts(&self, id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        self.attempts_in(&self.conn(), id)
    }

    fn retry(&self, id: &str, now_ms: i64) -> Result<TaskRecord, StoreError> {
        // The record keeps its arrival order; `now_ms` is not needed by SQLite.
        let _ = now_ms;
        self.write(|tx| {
            let e = |e| self.err(e);
            let state: Option<String> = tx
                .prepare_cached("SELECT state FROM tasks WHERE id = ?1")
                .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
                .map_err(e)?;
            let Some(state) = state else {
                return Err(StoreError::NotFound(id.to_owned()));
            };
            let state: TaskState = state.parse().map_err(|detail| StoreError::Corrupt {
                db: self.path.display().to_string(),
                id: id.to_owned(),
                detail,
            })?;
            match state {
                TaskState::Queued | TaskState::Running => {
                    return Err(StoreError::NotFinished {
                        id: id.to_owned(),
                        state,
                    })
                }
                TaskState::Rejected => return Err(StoreError::NotRetryable { id: id.to_owned() }),
                _ => {}
            }
            let sql = format!(
                "UPDATE tasks SET state = 'queued', cancel_requested = 0, finalized = 0, \
                 artifacts_written = 0, result = NULL, error = NULL, progress = NULL, \
                 finished_at_ms = NULL, not_before_ms = NULL, lease_owner = NULL, \
                 lease_expires_ms = NULL, max_retries = attempts + retry_budget \
                 WHERE id = ?1 RETURNING {COLS}"
            );
            tx.prepare_cached(&sql)
                .and_then(|mut s| s.query_row([id], record))
                .map_err(e)
        })
    }

    fn next_not_before(&self) -> Result<Option<i64>, StoreError> {
        let now = crate::clock::now_ms();
        let conn = self.conn();
        conn.prepare_cached(NEXT_NOT_BEFORE_SQL)
            .and_then(|mut s| s.query_row([now], |r| r.get(0)))
            .map_err(|e| self.err(e))
    }

    fn put_meta(&self, key: &str, value: &serde_json::Value) -> Result<(), StoreError> {
        let text = value.to_string();
        let now = crate::clock::now_ms();
        self.write(|conn| {
            conn.prepare_cached(
                "INSERT INTO meta (key, value, updated_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms",
            )
            .and_then(|mut s| s.execute(rusqlite::params![key, text, now]))
            .map(|_| ())
            .map_err(|e| self.err(e))
        })
    }

    fn get_meta(&self, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let conn = self.conn();
        let text: Option<String> = conn
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")
            .and_then(|mut s| {
                let mut rows = s.query([key])?;
                rows.next()?.map(|r| r.get(0)).transpose()
            })
            .map_err(|e| self.err(e))?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    fn changes(&self) -> Result<ChangeToken, StoreError> {
        self.check_identity()?;
        // data_version is never negative; the cast keeps its value.
        Ok(ChangeToken(self.data_version()? as u64))
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        let conn = self.conn();
        let read_only = conn
            .is_readonly(rusqlite::MAIN_DB)
            .map_err(|e| self.err(e))?;
        if read_only {
            return Err(StoreError::ReadOnly {
                db: self.path.display().to_string(),
                detail: "the file could only be opened for reading".into(),
            });
        }
        // Taking the write lock opens (or creates) the write-ahead log for writing.
        let run = |sql: &str| conn.execute_batch(sql).map_err(|e| self.err(e));
        // No wait for another process's write lock: that it is taken says enough.
        conn.busy_timeout(Duration::ZERO).map_err(|e| self.err(e))?;
        let probe = run("BEGIN IMMEDIATE");
        if !conn.is_autocommit() {
            run("ROLLBACK")?;
        }
        conn.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))
            .map_err(|e| self.err(e))?;
        match probe {
            // Another process is writing right now: the database can be written.
            Err(StoreError::Busy { .. }) => Ok(()),
            other => other,
        }
    }

    fn describe(&self) -> StoreInfo {
        StoreInfo {
            kind: "sqlite",
            db: self.path.display().to_string(),
        }
    }
}

impl SqliteStore {
    /// Holds a finalize marker for attempt `attempt` of task `id` (the SQLite side of
    /// [`Store::mark_finalized_later`]): it waits in memory and goes out with the next write
    /// transaction, [`SqliteStore::flush_marks`], or when the store is dropped.
    pub fn mark_finalized_soon(
        &self,
        id: &str,
        attempt: u32,
        archived_to: &str,
    ) -> Result<(), StoreError> {
        self.marks_held().push(Mark {
            id: id.to_owned(),
            attempt,
            archived_to: archived_to.to_owned(),
        });
        Ok(())
    }

    /// Writes the markers held back (nothing, and no transaction, when none).
    pub fn flush_marks(&self) -> Result<(), StoreError> {
        if self.marks_held().is_empty() {
            return Ok(());
        }
        self.write(|_| Ok(()))
    }

    /// SQLite's `data_version`: changes when another connection commits.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        let conn = self.conn();
        conn.query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// `Err(Gone)` when the file at this store's path is no longer the one it opened
    /// (deleted, or replaced by another file, say a restored copy).
    fn check_identity(&self) -> Result<(), StoreError> {
        let Some(opened) = self.identity else {
            return Ok(());
        };
        let gone = match file_id(&self.path) {
            Ok(now) => now != opened,
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        };
        if gone {
            return Err(StoreError::Gone {
                db: self.path.display().to_string(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SourceKind;

    fn task(id: &str) -> Task {
        Task::new(id, "p")
    }

    fn new_task(id: &str) -> NewTask {
        NewTask {
            desired_id: id.to_owned(),
            stem: id.to_owned(),
            file: format!("tasks/{id}.task.md"),
            source: SourceKind::File,
            source_user: None,
            task: Some(task(id)),
            priority: Priority::Medium,
            max_retries: 0,
            state: TaskState::Queued,
            error: None,
            received_at_ms: 0,
        }
    }

    #[test]
    fn a_transaction_left_open_by_a_panic_is_rolled_back_before_the_next_call() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("o.db")).unwrap();
        s.enqueue_many(&[new_task("a")]).unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = s.write(|tx| -> Result<(), StoreError> {
                tx.execute("UPDATE tasks SET state = 'running' WHERE id = 'a'", [])
                    .unwrap();
                panic!("a bug mid-transaction");
            });
        }));
        assert!(panicked.is_err());
        // A read does not see the half-done change, and the connection is usable again.
        assert_eq!(s.get("a").unwrap().unwrap().state, TaskState::Queued);
        assert!(s.conn().is_autocommit());
        assert!(!s.conn.is_poisoned());
        assert_eq!(s.claim("w", &[], 1_000, 1).unwrap().unwrap().id, "a");
    }

    #[test]
    fn a_constraint_failure_on_the_task_path_undoes_the_whole_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("o.db")).unwrap();
        s.enqueue_many(&[new_task("a")]).unwrap();
        let failed = s.write(|tx| {
            tx.execute("UPDATE tasks SET priority = 'high' WHERE id = 'a'", [])
                .map_err(|e| s.err(e))?;
            // NOT NULL broken: SQLite rolls the transaction back itself.
            tx.execute(
                "UPDATE OR ROLLBACK tasks SET state = NULL WHERE id = 'a'",
                [],
            )
            .map_err(|e| s.err(e))?;
            Ok(())
        });
        assert!(
            matches!(failed, Err(StoreError::Backend { .. })),
            "{failed:?}"
        );
        assert!(s.conn().is_autocommit());
        let a = s.get("a").unwrap().unwrap();
        assert_eq!((a.priority, a.state), (Priority::Medium, TaskState::Queued));
        assert_eq!(s.claim("w", &[], 1_000, 1).unwrap().unwrap().id, "a");
    }

    #[test]
    fn a_database_another_process_is_writing_counts_as_writable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.db");
        let s = SqliteStore::open(&path).unwrap();
        s.check_writable().unwrap();
        let blocker = Connection::open(&path).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        s.check_writable().unwrap();
        blocker.execute_batch("ROLLBACK").unwrap();
        // The busy timeout is back for the calls that follow.
        let wait: i64 = s
            .conn()
            .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
            .unwrap();
        assert_eq!(wait, BUSY_TIMEOUT_MS as i64);
    }

    #[test]
    fn pragmas_are_set() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("o.db")).unwrap();
        let conn = s.conn();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 1, "NORMAL");
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        let ver: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ver, migrate::LATEST);
    }

    /// SQLite's plan for `sql`, its parameters left unbound.
    fn plan_of(conn: &Connection, sql: &str) -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let mut rows = stmt.raw_query();
        let mut plan = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            plan.push(row.get::<_, String>(3).unwrap());
        }
        plan.join("\n")
    }

    #[test]
    fn queue_queries_use_the_queue_index() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("o.db")).unwrap();
        let conn = s.conn();
        for sql in [
            CLAIM_SQL,
            EXPIRED_SQL,
            RECOVER_SQL,
            NEXT_NOT_BEFORE_SQL,
            LIST_OPEN_SQL,
        ] {
            let plan = plan_of(&conn, sql);
            assert!(plan.contains("USING INDEX tasks_queue"), "{sql}\n{plan}");
        }
        // The claim reads the index in its own order: no sort.
        let claim = plan_of(&conn, CLAIM_SQL);
        assert!(!claim.contains("TEMP B-TREE"), "no sort needed: {claim}");
    }

    /// Rows straight into a database of schema version 1, as an older Orca left it.
    fn version_1_database(path: &Path, page_size: u32) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA page_size = {page_size}; PRAGMA journal_mode = WAL;"
        ))
        .unwrap();
        conn.execute_batch(migrate::MIGRATIONS[0]).unwrap();
        conn.execute_batch("PRAGMA user_version = 1").unwrap();
        for (i, state) in ["queued", "running", "succeeded", "queued"]
            .iter()
            .enumerate()
        {
            conn.execute(
                "INSERT INTO tasks (id, desired_id, stem, file, source, state, priority, \
                 prio_rank, max_retries, retry_budget, received_at_ms, lease_owner, \
                 lease_expires_ms, attempts) \
                 VALUES (?1, ?1, ?1, 'tasks/' || ?1 || '.task.md', 'file', ?2, 'medium', 1, \
                 2, 2, 1, ?3, ?4, ?5)",
                params![
                    format!("v{i}"),
                    state,
                    (*state == "running").then_some("old-node/w1"),
                    (*state == "running").then_some(5_i64),
                    i64::from(*state != "queued"),
                ],
            )
            .unwrap();
        }
    }

    #[test]
    fn a_new_database_has_small_pages_and_an_old_one_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let page_size = |s: &SqliteStore| -> i64 {
            s.conn()
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .unwrap()
        };
        let new = SqliteStore::open(&dir.path().join("new.db")).unwrap();
        assert_eq!(page_size(&new), i64::from(PAGE_SIZE));
        let old_path = dir.path().join("old.db");
        version_1_database(&old_path, 4096);
        let old = SqliteStore::open(&old_path).unwrap();
        assert_eq!(page_size(&old), 4096, "fixed once the file exists");
        drop(old);
        // Reopened: still its own size, and the schema is not migrated twice.
        let old = SqliteStore::open(&old_path).unwrap();
        assert_eq!(page_size(&old), 4096);
    }

    #[test]
    fn version_1_records_are_claimed_counted_and_recovered_after_the_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.db");
        version_1_database(&path, 4096);
        let s = SqliteStore::open(&path).unwrap();
        let indexes: Vec<String> = s
            .conn()
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tasks' AND sql IS NOT NULL ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(indexes, ["tasks_open_file", "tasks_queue"]);
        let counts = s.counts().unwrap();
        assert_eq!(counts["queued"], 2);
        assert_eq!(counts["running"], 1);
        assert_eq!(counts["succeeded"], 1);
        let ids_in = |state| -> Vec<String> {
            let recs = s.list(Some(state)).unwrap();
            recs.into_iter().map(|r| r.id).collect()
        };
        assert_eq!(ids_in(TaskState::Running), ["v1"]);
        assert_eq!(ids_in(TaskState::Succeeded), ["v2"]);
        // The old node's lease ran out long ago: its task goes back to the queue.
        assert_eq!(s.requeue_expired(10).unwrap(), ["v1"]);
        let order: Vec<String> = std::iter::from_fn(|| s.claim("w", &[], 60_000, 20).unwrap())
            .map(|r| r.id)
            .collect();
        assert_eq!(
            order,
            ["v0", "v1", "v3"],
            "arrival order, the requeued one included"
        );
        assert_eq!(s.counts().unwrap()["running"], 3);
        assert_eq!(s.recover_worker(Some("w")).unwrap().len(), 3);
    }

    #[test]
    fn attempts_reference_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("o.db")).unwrap();
        let conn = s.conn();
        let err = conn
            .execute(
                "INSERT INTO attempts (task_id, attempt, worker, started_at_ms) \
                 VALUES ('ghost', 1, 'w', 0)",
                [],
            )
            .unwrap_err();
        assert!(err.to_string().contains("FOREIGN KEY"), "{err}");
    }

    /// A run's end as succeeded.
    fn succeeded() -> Finish {
        Finish {
            state: TaskState::Succeeded,
            outcome: "succeeded".into(),
            error: None,
            exit_code: Some(0),
            session_id: None,
            now_ms: 2,
        }
    }

    /// A store in a temporary folder with these tasks queued, in this order.
    fn store_with(ids: &[&str]) -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("o.db")).unwrap();
        for id in ids {
            s.enqueue(new_task(id)).unwrap();
        }
        (dir, s)
    }

    #[test]
    fn lookups_are_not_re_prepared_per_value() {
        let (_dir, s) = store_with(&["a", "b", "c"]);
        for id in ["a", "b", "c"] {
            s.find_open_by_file(&format!("tasks/{id}.task.md"))
                .unwrap()
                .unwrap();
        }
        let conn = s.conn();
        let sql = format!(
            "SELECT {COLS} FROM tasks WHERE file = ?1 AND finalized = 0 ORDER BY seq DESC LIMIT 1"
        );
        let stmt = conn.prepare_cached(&sql).unwrap();
        assert_eq!(
            stmt.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "find_open_by_file's statement is re-prepared for each new file"
        );
    }

    #[test]
    fn files_looked_up_together_answer_as_one_by_one_in_order() {
        let (_dir, s) = store_with(&["a", "b", "c"]);
        for id in ["a", "b"] {
            assert_eq!(s.claim("w", &[], 60_000, 1).unwrap().unwrap().id, id);
        }
        let files = [
            "tasks/c.task.md",
            "tasks/none.task.md",
            "tasks/a.task.md",
            "tasks/b.task.md",
        ];
        let found_together = || -> Vec<Option<String>> {
            let recs = s.find_open_by_files(&files).unwrap();
            recs.into_iter().map(|r| r.map(|r| r.id)).collect()
        };
        let found = found_together();
        let one_by_one: Vec<Option<String>> = files
            .iter()
            .map(|f| s.find_open_by_file(f).unwrap().map(|r| r.id))
            .collect();
        assert_eq!(found, one_by_one);
        assert_eq!(
            found,
            [Some("c".into()), None, Some("a".into()), Some("b".into())]
        );
        // Finished and finalized, or with its marker held back: not open either way.
        for (id, hold) in [("a", false), ("b", true)] {
            s.finish(id, "w", succeeded()).unwrap();
            if hold {
                s.mark_finalized_soon(id, 1, "tasks/processed/b.task.md")
                    .unwrap();
            } else {
                s.mark_finalized(id, "tasks/processed/a.task.md").unwrap();
            }
        }
        assert_eq!(found_together(), [Some("c".into()), None, None, None]);
        // The read transaction is over: a write goes through at once.
        s.enqueue(new_task("d")).unwrap();
        assert!(s.conn().is_autocommit());
    }

    /// Throughput probe (prints, never asserts timing): 1,000 enqueue + claim + finish,
    /// each its own transaction, on a file database.
    #[test]
    fn throughput_1000_enqueue_claim_finish() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("o.db")).unwrap();
        let start = std::time::Instant::now();
        for i in 0..1000 {
            s.enqueue(new_task(&format!("t{i}"))).unwrap();
        }
        let enq = start.elapsed();
        let mut n = 0;
        while let Some(rec) = s.claim("w", &[], 30_000, 1).unwrap() {
            s.finish(&rec.id, "w", succeeded()).unwrap();
            n += 1;
        }
        let total = start.elapsed();
        assert_eq!(n, 1000);
        eprintln!(
            "store throughput: 1000 enqueue in {enq:?}, 1000 enqueue+claim+finish in {total:?} \
             ({:.0} tasks/s)",
            1000.0 / total.as_secs_f64()
        );
    }
}

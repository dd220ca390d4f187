//! [`Store`] for [`PostgresStore`]: each operation one short transaction, as in the SQLite
//! twin (same semantics; see `store/sqlite.rs` and tests/store.rs). Rows another worker
//! holds are locked `FOR UPDATE` before they change; claims skip locked rows.

use std::collections::BTreeMap;

use super::rows::{self, cols, int, to_json};
use super::{PostgresStore, Tx};
use crate::store::{
    source_str, AttemptRecord, CancelOutcome, ChangeToken, Finish, Finished, NewTask, NextClaim,
    Store, StoreError, StoreInfo, TaskRecord, TaskState,
};

/// How long an origin node waits for the result a node that ran its task hands over
/// ([`Fleet::store_result`](crate::store::Fleet::store_result)) before it writes one of its
/// own from the record alone (that node died between the finish and the handover).
const RESULT_HANDOVER_MS: i64 = 10_000;

/// The most tasks one claim transaction takes (a small batch: the rows stay locked, and
/// out of other nodes' reach, only for that transaction).
const CLAIM_BATCH: usize = 16;

/// The advisory lock every enqueue takes, so that two nodes choosing the same free id or
/// stem at once cannot both insert it (one waits for the other's commit).
const ENQUEUE_LOCK: i64 = 0x6f72_6371;

/// The queued tasks a claim may take, best first, skipping those another claim holds
/// (`$1` now, `$2` the worker's labels, `$3` how many).
const PICK_SQL: &str = "SELECT seq FROM orca_tasks \
     WHERE state = 'queued' AND NOT cancel_requested \
       AND (not_before_ms IS NULL OR not_before_ms <= $1) \
       AND (requires IS NULL OR requires <@ $2::text[]) \
     ORDER BY prio_rank, seq LIMIT $3 FOR UPDATE SKIP LOCKED";

/// The picked tasks made running, each under its worker (`$1` seqs, `$2` workers, `$3`
/// now, `$4` lease length).
const CLAIM_SQL: &str = concat!(
    "UPDATE orca_tasks SET state = 'running', attempts = attempts + 1, \
     lease_owner = p.worker, lease_expires_ms = $3::int8 + $4::int8, \
     started_at_ms = COALESCE(started_at_ms, $3), not_before_ms = NULL \
     FROM unnest($1::bigint[], $2::text[]) AS p(pseq, worker) WHERE seq = p.pseq RETURNING ",
    cols!()
);

const ATTEMPTS_OPEN_SQL: &str =
    "INSERT INTO orca_attempts (task_id, attempt, worker, node, started_at_ms) \
     SELECT t, a, w, $4::text, $5::int8 FROM unnest($1::text[], $2::int4[], $3::text[]) AS u(t, a, w)";

const ATTEMPTS_SQL: &str = "SELECT task_id, attempt, worker, started_at_ms, finished_at_ms, \
     outcome, error, exit_code, session_id, resumed, node FROM orca_attempts WHERE task_id = $1 \
     ORDER BY attempt";

/// Ends a running task we own (`$1` id, `$2` state, `$3` error JSON, `$4` now, `$5` session
/// id, `$6` worker, `$7` the claim's attempt number, the fencing token, or NULL).
const FINISH_SQL: &str = concat!(
    "UPDATE orca_tasks SET state = $2, error = $3, finished_at_ms = $4, \
     lease_owner = NULL, lease_expires_ms = NULL, not_before_ms = NULL, \
     session_id = COALESCE($5, session_id) \
     WHERE id = $1 AND state = 'running' AND lease_owner = $6 \
       AND ($7::int4 IS NULL OR attempts = $7) RETURNING ",
    cols!()
);

const CLOSE_ATTEMPT_SQL: &str = "UPDATE orca_attempts SET finished_at_ms = $3, outcome = $4, \
     error = $5, exit_code = $6, session_id = COALESCE($7, session_id) \
     WHERE task_id = $1 AND attempt = $2";

/// Running tasks whose lease ran out before `$1`; rows another transaction holds (a finish
/// under way) are left for the next scan.
const EXPIRED_SQL: &str = "SELECT id, attempts, cancel_requested, lease_owner FROM orca_tasks \
     WHERE state = 'running' AND lease_expires_ms < $1 ORDER BY seq FOR UPDATE SKIP LOCKED";

/// Running tasks of workers whose names start with `$1` (NULL: of every worker).
const RECOVER_SQL: &str = "SELECT id, attempts, cancel_requested, lease_owner FROM orca_tasks \
     WHERE state = 'running' AND ($1::text IS NULL OR starts_with(lease_owner, $1)) \
     ORDER BY seq FOR UPDATE";

/// Running tasks whose lease owner is exactly `$1`.
const RECOVER_OWNER_SQL: &str =
    "SELECT id, attempts, cancel_requested, lease_owner FROM orca_tasks \
     WHERE state = 'running' AND lease_owner = $1 ORDER BY seq FOR UPDATE";

const OWNED_SQL: &str = "SELECT state, lease_owner, attempts, cancel_requested FROM orca_tasks \
     WHERE id = $1 FOR UPDATE";

const STATE_SQL: &str = "SELECT state FROM orca_tasks WHERE id = $1 FOR UPDATE";

impl PostgresStore {
    fn state_of(&self, tx: &mut Tx<'_>, id: &str) -> Result<Option<TaskState>, StoreError> {
        let Some(row) = tx.query_opt(STATE_SQL, &[&id])? else {
            return Ok(None);
        };
        let text: String = row.try_get(0).map_err(|e| self.err(e))?;
        text.parse()
            .map(Some)
            .map_err(|detail| StoreError::Corrupt {
                db: self.db.clone(),
                id: id.to_owned(),
                detail,
            })
    }

    /// Takes up to one task for each of `workers` (all with the same `labels`), best first:
    /// the first worker gets the best task. One transaction; fewer when fewer are ready.
    /// The batch form of [`Store::claim`], for a node with several free slots.
    pub fn claim_batch(
        &self,
        workers: &[&str],
        labels: &[String],
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        if workers.is_empty() {
            return Ok(Vec::new());
        }
        self.write_quiet(|tx| self.claim_in(tx, workers, labels, lease_ms, now_ms))
    }

    fn claim_in(
        &self,
        tx: &mut Tx<'_>,
        workers: &[&str],
        labels: &[String],
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let n = workers.len() as i64;
        let seqs: Vec<i64> = tx
            .query(PICK_SQL, &[&now_ms, &labels, &n])?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let owners: Vec<&str> = workers[..seqs.len()].to_vec();
        let rows = tx.write_query(CLAIM_SQL, &[&seqs, &owners, &now_ms, &lease_ms])?;
        let mut recs = rows::records(&self.db, &rows)?;
        // Best first, as picked (RETURNING keeps no order).
        recs.sort_by_key(|r| seqs.iter().position(|s| *s == r.seq));
        let ids: Vec<&str> = recs.iter().map(|r| r.id.as_str()).collect();
        let attempts: Vec<i32> = recs.iter().map(|r| int(r.attempts)).collect();
        let by: Vec<&str> = recs
            .iter()
            .map(|r| r.lease_owner.as_deref().unwrap_or(""))
            .collect();
        tx.execute(
            ATTEMPTS_OPEN_SQL,
            &[&ids, &attempts, &by, &self.node, &now_ms],
        )?;
        Ok(recs)
    }

    /// The finish update and the close of the attempt, in `tx`; `token` is the claim's
    /// attempt number when known (then a finish of an older claim is refused).
    fn finish_in(
        &self,
        tx: &mut Tx<'_>,
        (id, worker, f): (&str, &str, &Finish),
        token: Option<u32>,
    ) -> Result<TaskRecord, StoreError> {
        if !f.state.is_final() || f.state == TaskState::Rejected {
            return Err(StoreError::Invalid(format!(
                "cannot finish task `{id}` as {}: use succeeded, failed, timed_out or cancelled",
                f.state
            )));
        }
        let error_json = f.error.as_ref().map(to_json).transpose()?;
        let token = token.map(int);
        let row = tx.write_query(
            FINISH_SQL,
            &[
                &id,
                &f.state.as_str(),
                &error_json,
                &f.now_ms,
                &f.session_id,
                &worker,
                &token,
            ],
        )?;
        let Some(row) = row.first() else {
            self.owned(tx, id, worker)?;
            return Err(StoreError::LeaseLost {
                id: id.to_owned(),
                worker: worker.to_owned(),
            });
        };
        let rec = rows::record(&self.db, row)?;
        let text = f.error.as_ref().map(rows::error_text);
        tx.execute(
            CLOSE_ATTEMPT_SQL,
            &[
                &id,
                &int(rec.attempts),
                &f.now_ms,
                &f.outcome,
                &text,
                &f.exit_code,
                &f.session_id,
            ],
        )?;
        Ok(rec)
    }

    /// The current attempt and cancel flag of a task running under `worker`, its row locked.
    fn owned(&self, tx: &mut Tx<'_>, id: &str, worker: &str) -> Result<(u32, bool), StoreError> {
        let Some(row) = tx.query_opt(OWNED_SQL, &[&id])? else {
            return Err(StoreError::NotFound(id.to_owned()));
        };
        let get = |e| self.err(e);
        let state: String = row.try_get(0).map_err(get)?;
        let owner: Option<String> = row.try_get(1).map_err(get)?;
        let attempts: i32 = row.try_get(2).map_err(get)?;
        let cancel: bool = row.try_get(3).map_err(get)?;
        if state == TaskState::Running.as_str() && owner.as_deref() == Some(worker) {
            return Ok((u32::try_from(attempts).unwrap_or(0), cancel));
        }
        Err(StoreError::LeaseLost {
            id: id.to_owned(),
            worker: worker.to_owned(),
        })
    }

    /// Running → back to the queue (or `Cancelled` when a cancel was requested meanwhile),
    /// closing the current attempt with `outcome`.
    #[allow(clippy::too_many_arguments)]
    fn back_to_queue(
        &self,
        tx: &mut Tx<'_>,
        id: &str,
        attempt: u32,
        cancel_requested: bool,
        not_before_ms: Option<i64>,
        (outcome, reason): (&str, &str),
        exit_code: Option<i32>,
        session_id: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        if cancel_requested {
            tx.execute(
                "UPDATE orca_tasks SET state = 'cancelled', finished_at_ms = $2, \
                 lease_owner = NULL, lease_expires_ms = NULL, not_before_ms = NULL WHERE id = $1",
                &[&id, &now_ms],
            )?;
        } else {
            tx.execute(
                "UPDATE orca_tasks SET state = 'queued', not_before_ms = $2, lease_owner = NULL, \
                 lease_expires_ms = NULL WHERE id = $1",
                &[&id, &not_before_ms],
            )?;
        }
        tx.execute(
            CLOSE_ATTEMPT_SQL,
            &[
                &id,
                &int(attempt),
                &now_ms,
                &outcome,
                &Some(reason),
                &exit_code,
                &session_id,
            ],
        )?;
        Ok(())
    }

    /// Requeues every running task `sql` selects (id, attempts, cancel_requested,
    /// lease_owner; rows locked), as `interrupted`.
    fn requeue_where(
        &self,
        sql: &'static str,
        params: &super::Params<'_>,
        why: &str,
        now_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        self.write(|tx| {
            let found = tx.query(sql, params)?;
            let mut ids = Vec::with_capacity(found.len());
            for row in found {
                let get = |e| self.err(e);
                let id: String = row.try_get(0).map_err(get)?;
                let attempt: i32 = row.try_get(1).map_err(get)?;
                let cancel: bool = row.try_get(2).map_err(get)?;
                let owner: Option<String> = row.try_get(3).map_err(get)?;
                let reason = format!("{why} (worker {})", owner.as_deref().unwrap_or("?"));
                self.back_to_queue(
                    tx,
                    &id,
                    u32::try_from(attempt).unwrap_or(0),
                    cancel,
                    None,
                    ("interrupted", &reason),
                    None,
                    None,
                    now_ms,
                )?;
                ids.push(id);
            }
            Ok(ids)
        })
    }

    /// Start-up repair of one worker (exactly `owner`): its running tasks back to the queue.
    pub(crate) fn recover_owner(&self, owner: &str) -> Result<Vec<String>, StoreError> {
        self.requeue_where(
            RECOVER_OWNER_SQL,
            &[&owner],
            "recovered after a restart",
            crate::clock::now_ms(),
        )
    }

    /// `base`, or `base-2`, `base-3`, ...: the first value not yet used (`exists_sql` asks).
    fn unique_value(
        &self,
        tx: &mut Tx<'_>,
        exists_sql: &'static str,
        base: &str,
    ) -> Result<String, StoreError> {
        let mut candidate = base.to_owned();
        let mut n = 1u64;
        while tx.query_opt(exists_sql, &[&candidate])?.is_some() {
            n += 1;
            candidate = format!("{base}-{n}");
        }
        Ok(candidate)
    }

    /// Inserts one record, choosing a free id and stem, inside `tx` (which holds the
    /// enqueue lock).
    fn insert(&self, tx: &mut Tx<'_>, t: &NewTask) -> Result<TaskRecord, StoreError> {
        check_new(t)?;
        let task_json = t.task.as_ref().map(to_json).transpose()?;
        let requires: Option<Vec<String>> = match &t.task {
            Some(task) if !task.requires.is_empty() => Some(task.requires.clone()),
            _ => None,
        };
        let error = t.error.as_ref().map(to_json).transpose()?;
        let finished = (t.state == TaskState::Rejected).then_some(t.received_at_ms);
        let id = self.unique_value(tx, "SELECT 1 FROM orca_tasks WHERE id = $1", &t.desired_id)?;
        let stem = self.unique_value(tx, "SELECT 1 FROM orca_tasks WHERE stem = $1", &t.stem)?;
        let prio_rank = t.priority.rank() as i16;
        let max_retries = int(t.max_retries);
        let rows = tx.write_query(
            "INSERT INTO orca_tasks (id, desired_id, stem, file, source, source_user, state, \
             priority, prio_rank, task_json, requires, max_retries, retry_budget, \
             received_at_ms, finished_at_ms, error, origin_node) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14, $15, $16) \
             RETURNING seq",
            &[
                &id,
                &t.desired_id,
                &stem,
                &t.file,
                &source_str(t.source),
                &t.source_user,
                &t.state.as_str(),
                &t.priority.as_str(),
                &prio_rank,
                &task_json,
                &requires,
                &max_retries,
                &t.received_at_ms,
                &finished,
                &error,
                &self.origin,
            ],
        )?;
        let seq: i64 = match rows.first() {
            Some(r) => r.try_get(0).map_err(|e| self.err(e))?,
            None => return Err(StoreError::Invalid(format!("task `{id}` was not inserted"))),
        };
        Ok(TaskRecord::inserted(t, id, stem, seq, finished))
    }

    fn select(
        &self,
        sql: &'static str,
        params: &super::Params<'_>,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        rows::records(&self.db, &self.read(sql, params)?)
    }
}

/// A new record must be queued with a parsed task, or rejected.
fn check_new(t: &NewTask) -> Result<(), StoreError> {
    match (t.state, &t.task) {
        (TaskState::Queued, Some(_)) | (TaskState::Rejected, _) => Ok(()),
        (TaskState::Queued, None) => Err(StoreError::Invalid(format!(
            "queued task `{}` has no parsed task",
            t.desired_id
        ))),
        (other, _) => Err(StoreError::Invalid(format!(
            "a new task must be queued or rejected, not {other}"
        ))),
    }
}

impl Store for PostgresStore {
    fn enqueue(&self, t: NewTask) -> Result<TaskRecord, StoreError> {
        self.enqueue_many(std::slice::from_ref(&t))?
            .pop()
            .ok_or_else(|| StoreError::Invalid(format!("task `{}` was not inserted", t.desired_id)))
    }

    fn enqueue_many(&self, tasks: &[NewTask]) -> Result<Vec<TaskRecord>, StoreError> {
        tasks.iter().try_for_each(check_new)?;
        if tasks.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|tx| {
            tx.query("SELECT pg_advisory_xact_lock($1)", &[&ENQUEUE_LOCK])?;
            tasks.iter().map(|t| self.insert(tx, t)).collect()
        })
    }

    fn find_open_by_file(&self, file: &str) -> Result<Option<TaskRecord>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            cols!(),
            " FROM orca_tasks WHERE file = $1 AND NOT finalized AND origin_node = $2 \
             ORDER BY seq DESC LIMIT 1"
        );
        let rec = self.select(SQL, &[&file, &self.origin])?.into_iter().next();
        Ok(rec.filter(|r| !self.mark_held(r)))
    }

    fn find_open_by_files(&self, files: &[&str]) -> Result<Vec<Option<TaskRecord>>, StoreError> {
        const SQL: &str = concat!(
            "SELECT DISTINCT ON (file) ",
            cols!(),
            " FROM orca_tasks WHERE file = ANY($1) AND NOT finalized AND origin_node = $2 \
             ORDER BY file, seq DESC"
        );
        if files.is_empty() {
            return Ok(Vec::new());
        }
        let found = self.select(SQL, &[&files, &self.origin])?;
        Ok(files
            .iter()
            .map(|f| {
                found
                    .iter()
                    .find(|r| r.file == *f)
                    .filter(|r| !self.mark_held(r))
                    .cloned()
            })
            .collect())
    }

    fn claim(
        &self,
        worker: &str,
        labels: &[String],
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<Option<TaskRecord>, StoreError> {
        Ok(self
            .claim_batch(&[worker], labels, lease_ms, now_ms)?
            .into_iter()
            .next())
    }

    fn claim_many(
        &self,
        worker: &str,
        labels: &[String],
        n: usize,
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        self.claim_batch(&vec![worker; n.min(CLAIM_BATCH)], labels, lease_ms, now_ms)
    }

    fn heartbeat(
        &self,
        id: &str,
        worker: &str,
        lease_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        // No notification: a renewed lease is nothing other nodes act on.
        let mut conn = self.conn()?;
        let stmt = conn
            .prep(
                "UPDATE orca_tasks SET lease_expires_ms = $3::int8 + $4::int8 \
                 WHERE id = $1 AND state = 'running' AND lease_owner = $2",
            )
            .map_err(|e| self.err(e))?;
        let n = conn
            .client
            .execute(&stmt, &[&id, &worker, &now_ms, &lease_ms])
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
        self.write_quiet(|tx| {
            let rows = tx.write_query(
                "UPDATE orca_tasks SET progress = $3, session_id = COALESCE($4, session_id) \
                 WHERE id = $1 AND state = 'running' AND lease_owner = $2 RETURNING attempts",
                &[&id, &worker, &progress, &session_id],
            )?;
            if let (Some(row), Some(sid)) = (rows.first(), session_id) {
                let attempt: i32 = row.try_get(0).map_err(|e| self.err(e))?;
                tx.execute(
                    "UPDATE orca_attempts SET session_id = $3 WHERE task_id = $1 AND attempt = $2",
                    &[&id, &attempt, &sid],
                )?;
            }
            Ok(())
        })
    }

    fn mark_resumed(&self, id: &str, attempt: u32) -> Result<(), StoreError> {
        let n = self.write_quiet(|tx| {
            tx.execute(
                "UPDATE orca_attempts SET resumed = TRUE WHERE task_id = $1 AND attempt = $2",
                &[&id, &int(attempt)],
            )
        })?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("{id} (attempt {attempt})")));
        }
        Ok(())
    }

    fn finish(&self, id: &str, worker: &str, f: Finish) -> Result<TaskRecord, StoreError> {
        self.write_quiet(|tx| self.finish_in(tx, (id, worker, &f), None))
    }

    fn finish_claimed(
        &self,
        claimed: &TaskRecord,
        worker: &str,
        f: Finish,
        next: Option<NextClaim<'_>>,
    ) -> Result<Finished, StoreError> {
        let id = claimed.id.as_str();
        self.write_quiet(|tx| {
            let record = self.finish_in(tx, (id, worker, &f), Some(claimed.attempts))?;
            let attempts = tx
                .query(ATTEMPTS_SQL, &[&id])?
                .iter()
                .map(|r| rows::attempt(&self.db, r))
                .collect::<Result<Vec<_>, _>>()?;
            let next = match next {
                Some(n) => self
                    .claim_in(tx, &[worker], n.labels, n.lease_ms, f.now_ms)?
                    .into_iter()
                    .next(),
                None => None,
            };
            Ok(Finished {
                record,
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
                ("retry", reason),
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
                ("interrupted", reason),
                None,
                None,
                now,
            )
        })
    }

    fn requeue_expired(&self, now_ms: i64) -> Result<Vec<String>, StoreError> {
        self.requeue_where(EXPIRED_SQL, &[&now_ms], "lease expired", now_ms)
    }

    fn recover_worker(
        &self,
        worker_prefix_or_all: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        self.requeue_where(
            RECOVER_SQL,
            &[&worker_prefix_or_all],
            "recovered after a restart",
            crate::clock::now_ms(),
        )
    }

    fn request_cancel(&self, id: &str, now_ms: i64) -> Result<CancelOutcome, StoreError> {
        self.write(|tx| match self.state_of(tx, id)? {
            None => Ok(CancelOutcome::NotFound),
            Some(TaskState::Queued) => {
                tx.execute(
                    "UPDATE orca_tasks SET state = 'cancelled', cancel_requested = TRUE, \
                     finished_at_ms = $2, not_before_ms = NULL WHERE id = $1",
                    &[&id, &now_ms],
                )?;
                Ok(CancelOutcome::Cancelled)
            }
            Some(TaskState::Running) => {
                tx.execute(
                    "UPDATE orca_tasks SET cancel_requested = TRUE WHERE id = $1",
                    &[&id],
                )?;
                Ok(CancelOutcome::Requested)
            }
            Some(done) => Ok(CancelOutcome::AlreadyFinished(done)),
        })
    }

    fn is_cancel_requested(&self, id: &str) -> Result<bool, StoreError> {
        let rows = self.read(
            "SELECT cancel_requested FROM orca_tasks WHERE id = $1",
            &[&id],
        )?;
        match rows.first() {
            Some(r) => r.try_get(0).map_err(|e| self.err(e)),
            None => Err(StoreError::NotFound(id.to_owned())),
        }
    }

    fn cancels_requested(&self, ids: &[&str]) -> Result<Vec<String>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.read(
            "SELECT id FROM orca_tasks WHERE id = ANY($1) AND cancel_requested",
            &[&ids],
        )?
        .iter()
        .map(|r| r.try_get(0).map_err(|e| self.err(e)))
        .collect()
    }

    fn mark_finalized(&self, id: &str, archived_to: &str) -> Result<(), StoreError> {
        let n = self.write_quiet(|tx| {
            tx.execute(
                "UPDATE orca_tasks SET artifacts_written = TRUE, archived_to = $2, \
                 finalized = TRUE WHERE id = $1",
                &[&id, &archived_to],
            )
        })?;
        if n == 0 {
            return Err(StoreError::NotFound(id.to_owned()));
        }
        Ok(())
    }

    fn mark_finalized_later(
        &self,
        id: &str,
        attempt: u32,
        archived_to: &str,
    ) -> Result<(), StoreError> {
        self.hold_mark(id, attempt, archived_to);
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.flush_marks()
    }

    fn pending_finalize(&self) -> Result<Vec<TaskRecord>, StoreError> {
        const SQL: &str = concat!(
            "SELECT ",
            cols!(),
            " FROM orca_tasks WHERE NOT finalized AND state NOT IN ('queued', 'running') \
             AND origin_node = $1 AND (result IS NOT NULL OR attempts = 0 OR finished_at_ms < $2 OR EXISTS (SELECT 1 \
             FROM orca_attempts a WHERE a.task_id = orca_tasks.id AND a.attempt = orca_tasks.attempts AND a.node = $3)) \
             ORDER BY seq"
        );
        let now = crate::clock::now_ms();
        let mut recs = self.select(
            SQL,
            &[&self.origin, &(now - RESULT_HANDOVER_MS), &self.node],
        )?;
        recs.retain(|r| !self.mark_held(r));
        Ok(recs)
    }

    fn get(&self, id: &str) -> Result<Option<TaskRecord>, StoreError> {
        const SQL: &str = concat!("SELECT ", cols!(), " FROM orca_tasks WHERE id = $1");
        Ok(self.select(SQL, &[&id])?.into_iter().next())
    }

    fn list(&self, state: Option<TaskState>) -> Result<Vec<TaskRecord>, StoreError> {
        const ALL: &str = concat!("SELECT ", cols!(), " FROM orca_tasks ORDER BY seq");
        const IN_STATE: &str = concat!(
            "SELECT ",
            cols!(),
            " FROM orca_tasks WHERE state = $1 ORDER BY seq"
        );
        match state {
            Some(s) => self.select(IN_STATE, &[&s.as_str()]),
            None => self.select(ALL, &[]),
        }
    }

    fn counts(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut out: BTreeMap<String, u64> = TaskState::ALL
            .iter()
            .map(|s| (s.as_str().to_owned(), 0))
            .collect();
        for row in self.read("SELECT state, count(*) FROM orca_tasks GROUP BY state", &[])? {
            let state: String = row.try_get(0).map_err(|e| self.err(e))?;
            let n: i64 = row.try_get(1).map_err(|e| self.err(e))?;
            out.insert(state, u64::try_from(n).unwrap_or(0));
        }
        Ok(out)
    }

    fn attempts(&self, id: &str) -> Result<Vec<AttemptRecord>, StoreError> {
        self.read(ATTEMPTS_SQL, &[&id])?
            .iter()
            .map(|r| rows::attempt(&self.db, r))
            .collect()
    }

    fn retry(&self, id: &str, now_ms: i64) -> Result<TaskRecord, StoreError> {
        // The record keeps its arrival order; `now_ms` is not needed.
        let _ = now_ms;
        const SQL: &str = concat!(
            "UPDATE orca_tasks SET state = 'queued', cancel_requested = FALSE, finalized = FALSE, \
             artifacts_written = FALSE, result = NULL, error = NULL, progress = NULL, \
             finished_at_ms = NULL, not_before_ms = NULL, lease_owner = NULL, \
             lease_expires_ms = NULL, max_retries = attempts + retry_budget \
             WHERE id = $1 RETURNING ",
            cols!()
        );
        self.write(|tx| {
            match self.state_of(tx, id)? {
                None => return Err(StoreError::NotFound(id.to_owned())),
                Some(state @ (TaskState::Queued | TaskState::Running)) => {
                    return Err(StoreError::NotFinished {
                        id: id.to_owned(),
                        state,
                    })
                }
                Some(TaskState::Rejected) => {
                    return Err(StoreError::NotRetryable { id: id.to_owned() })
                }
                Some(_) => {}
            }
            let rows = tx.write_query(SQL, &[&id])?;
            match rows.first() {
                Some(r) => rows::record(&self.db, r),
                None => Err(StoreError::NotFound(id.to_owned())),
            }
        })
    }

    fn next_not_before(&self) -> Result<Option<i64>, StoreError> {
        let now = crate::clock::now_ms();
        let rows = self.read(
            "SELECT min(not_before_ms) FROM orca_tasks \
             WHERE state = 'queued' AND not_before_ms > $1",
            &[&now],
        )?;
        match rows.first() {
            Some(r) => r.try_get(0).map_err(|e| self.err(e)),
            None => Ok(None),
        }
    }

    fn changes(&self) -> Result<ChangeToken, StoreError> {
        self.change_token()
    }

    fn change_signal(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        self.listener
            .as_ref()
            .map(|l| std::sync::Arc::clone(&l.feed.wake))
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        let rows = self.read(
            "SELECT pg_is_in_recovery(), current_setting('transaction_read_only') = 'on', \
             has_table_privilege('orca_tasks', 'INSERT, UPDATE') \
             AND has_table_privilege('orca_attempts', 'INSERT, UPDATE')",
            &[],
        )?;
        let Some(row) = rows.first() else {
            return Ok(());
        };
        let get = |i| row.try_get::<_, bool>(i).map_err(|e| self.err(e));
        let detail = if get(0)? {
            "the server is a standby (in recovery): point ORCA_DATABASE_URL at the primary"
        } else if get(1)? {
            "the server's transactions are read-only (default_transaction_read_only)"
        } else if !get(2)? {
            "this database user may not insert into or update orca's tables: GRANT it those rights"
        } else {
            return Ok(());
        };
        Err(StoreError::ReadOnly {
            db: self.db.clone(),
            detail: detail.into(),
        })
    }

    fn put_meta(&self, key: &str, value: &serde_json::Value) -> Result<(), StoreError> {
        let (text, now) = (value.to_string(), crate::clock::now_ms());
        self.write(|tx| {
            tx.execute(
                "INSERT INTO orca_meta (key, value, updated_ms) VALUES ($1, $2, $3) ON CONFLICT \
                 (key) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms",
                &[&key, &text, &now],
            )
            .map(|_| ())
        })
    }

    fn get_meta(&self, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let rows = self.read("SELECT value FROM orca_meta WHERE key = $1", &[&key])?;
        let text: Option<String> = match rows.first() {
            Some(r) => Some(r.try_get(0).map_err(|e| self.err(e))?),
            None => None,
        };
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    fn fleet(&self) -> Option<&dyn crate::store::Fleet> {
        Some(self)
    }

    fn describe(&self) -> StoreInfo {
        StoreInfo {
            kind: "postgres",
            db: self.db.clone(),
        }
    }
}

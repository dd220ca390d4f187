//! Rows to records: the columns of a [`TaskRecord`] and of an [`AttemptRecord`], read back
//! from PostgreSQL rows, and the JSON text columns written.

use postgres::Row;

use crate::store::{source_from_str, AttemptRecord, StoreError, TaskRecord};
use crate::task::Priority;

/// The columns of a `TaskRecord`, in the order [`record`] reads them.
macro_rules! cols {
    () => {
        "id, desired_id, stem, file, source, source_user, state, priority, seq, \
         task_json, attempts, max_retries, not_before_ms, lease_owner, lease_expires_ms, \
         cancel_requested, received_at_ms, started_at_ms, finished_at_ms, session_id, progress, \
         error, result, artifacts_written, archived_to, finalized"
    };
}
pub(crate) use cols;

/// A row that does not read as a record: `Corrupt`, naming the task.
fn corrupt(db: &str, id: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        db: db.to_owned(),
        id: id.to_owned(),
        detail: detail.to_string(),
    }
}

fn count(db: &str, id: &str, col: &str, n: i32) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|_| corrupt(db, id, format!("{col} is {n}")))
}

fn json<T: serde::de::DeserializeOwned>(
    db: &str,
    id: &str,
    col: &str,
    text: Option<String>,
) -> Result<Option<T>, StoreError> {
    match text {
        None => Ok(None),
        Some(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| corrupt(db, id, format!("{col} is not valid JSON ({e})"))),
    }
}

/// Reads a row selected with [`cols!`].
pub(crate) fn record(db: &str, row: &Row) -> Result<TaskRecord, StoreError> {
    let id: String = row.try_get(0).map_err(|e| corrupt(db, "?", e))?;
    let bad = |e: postgres::Error| corrupt(db, &id, e);
    let source: String = row.try_get(4).map_err(bad)?;
    let state: String = row.try_get(6).map_err(bad)?;
    let priority: String = row.try_get(7).map_err(bad)?;
    Ok(TaskRecord {
        desired_id: row.try_get(1).map_err(bad)?,
        stem: row.try_get(2).map_err(bad)?,
        file: row.try_get(3).map_err(bad)?,
        source: source_from_str(&source)
            .ok_or_else(|| corrupt(db, &id, format!("unknown source '{source}'")))?,
        source_user: row.try_get(5).map_err(bad)?,
        state: state.parse().map_err(|e| corrupt(db, &id, e))?,
        priority: priority
            .parse::<Priority>()
            .map_err(|_| corrupt(db, &id, format!("unknown priority '{priority}'")))?,
        seq: row.try_get(8).map_err(bad)?,
        task: json(db, &id, "task_json", row.try_get(9).map_err(bad)?)?,
        attempts: count(db, &id, "attempts", row.try_get(10).map_err(bad)?)?,
        max_retries: count(db, &id, "max_retries", row.try_get(11).map_err(bad)?)?,
        not_before_ms: row.try_get(12).map_err(bad)?,
        lease_owner: row.try_get(13).map_err(bad)?,
        lease_expires_ms: row.try_get(14).map_err(bad)?,
        cancel_requested: row.try_get(15).map_err(bad)?,
        received_at_ms: row.try_get(16).map_err(bad)?,
        started_at_ms: row.try_get(17).map_err(bad)?,
        finished_at_ms: row.try_get(18).map_err(bad)?,
        session_id: row.try_get(19).map_err(bad)?,
        progress: json(db, &id, "progress", row.try_get(20).map_err(bad)?)?,
        error: json(db, &id, "error", row.try_get(21).map_err(bad)?)?,
        result: json(db, &id, "result", row.try_get(22).map_err(bad)?)?,
        artifacts_written: row.try_get(23).map_err(bad)?,
        archived_to: row.try_get(24).map_err(bad)?,
        finalized: row.try_get(25).map_err(bad)?,
        id,
    })
}

/// Reads rows selected with [`cols!`].
pub(crate) fn records(db: &str, rows: &[Row]) -> Result<Vec<TaskRecord>, StoreError> {
    rows.iter().map(|r| record(db, r)).collect()
}

/// Reads an attempt row (task_id, attempt, worker, started_at_ms, finished_at_ms, outcome,
/// error, exit_code, session_id, resumed, node).
pub(crate) fn attempt(db: &str, row: &Row) -> Result<AttemptRecord, StoreError> {
    let task_id: String = row.try_get(0).map_err(|e| corrupt(db, "?", e))?;
    let bad = |e: postgres::Error| corrupt(db, &task_id, e);
    Ok(AttemptRecord {
        attempt: count(db, &task_id, "attempt", row.try_get(1).map_err(bad)?)?,
        worker: row.try_get(2).map_err(bad)?,
        started_at_ms: row.try_get(3).map_err(bad)?,
        finished_at_ms: row.try_get(4).map_err(bad)?,
        outcome: row.try_get(5).map_err(bad)?,
        error: row.try_get(6).map_err(bad)?,
        exit_code: row.try_get(7).map_err(bad)?,
        session_id: row.try_get(8).map_err(bad)?,
        resumed: row.try_get(9).map_err(bad)?,
        node: row.try_get(10).map_err(bad)?,
        task_id,
    })
}

/// JSON text of a value, for the text columns.
pub(crate) fn to_json(v: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Invalid(format!("cannot encode JSON: {e}")))
}

/// A short human text for an attempt row from a result error object.
pub(crate) fn error_text(error: &serde_json::Value) -> String {
    match error.get("message").and_then(|m| m.as_str()) {
        Some(m) => m.to_owned(),
        None => match error.as_str() {
            Some(s) => s.to_owned(),
            None => error.to_string(),
        },
    }
}

/// A count as the INTEGER columns store it.
pub(crate) fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

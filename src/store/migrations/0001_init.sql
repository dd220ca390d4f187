-- Orca task database, schema version 1.
-- One row per task record (ids and stems are never reused), one row per attempt.
CREATE TABLE tasks (
    seq               INTEGER PRIMARY KEY,  -- arrival order (rows are never deleted)
    id                TEXT    NOT NULL UNIQUE,
    desired_id        TEXT    NOT NULL,
    stem              TEXT    NOT NULL UNIQUE,
    file              TEXT    NOT NULL,
    source            TEXT    NOT NULL,
    source_user       TEXT,
    state             TEXT    NOT NULL,
    priority          TEXT    NOT NULL,
    prio_rank         INTEGER NOT NULL,                   -- 0 high, 1 medium, 2 low
    task_json         TEXT,                               -- crate::task::Task as JSON
    requires          TEXT,                               -- JSON array of labels, NULL if none
    attempts          INTEGER NOT NULL DEFAULT 0,
    max_retries       INTEGER NOT NULL,
    retry_budget      INTEGER NOT NULL,                   -- max_retries as first enqueued
    not_before_ms     INTEGER,
    lease_owner       TEXT,
    lease_expires_ms  INTEGER,
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    received_at_ms    INTEGER NOT NULL,
    started_at_ms     INTEGER,
    finished_at_ms    INTEGER,
    session_id        TEXT,
    progress          TEXT,
    error             TEXT,
    result            TEXT,
    artifacts_written INTEGER NOT NULL DEFAULT 0,
    archived_to       TEXT,
    finalized         INTEGER NOT NULL DEFAULT 0
);

-- claim: state = 'queued' ORDER BY prio_rank, seq; also state counts and lease scans
CREATE INDEX tasks_claim ON tasks (state, prio_rank, seq);
-- find_open_by_file and pending_finalize: only records not finalized yet
CREATE INDEX tasks_open_file ON tasks (file) WHERE finalized = 0;

CREATE TABLE attempts (
    task_id        TEXT    NOT NULL REFERENCES tasks (id),
    attempt        INTEGER NOT NULL,
    worker         TEXT    NOT NULL,
    started_at_ms  INTEGER NOT NULL,
    finished_at_ms INTEGER,
    outcome        TEXT,
    error          TEXT,
    exit_code      INTEGER,
    session_id     TEXT,
    resumed        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (task_id, attempt)
) WITHOUT ROWID;

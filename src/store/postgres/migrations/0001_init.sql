-- Orca's shared queue in PostgreSQL, schema version 1 (the twin of the SQLite schema, plus
-- what a fleet needs: the node a task came from and each attempt ran on, a lease token,
-- the nodes, and a change counter).
CREATE TABLE orca_tasks (
    seq               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- arrival order
    id                TEXT     NOT NULL UNIQUE,
    desired_id        TEXT     NOT NULL,
    stem              TEXT     NOT NULL UNIQUE,
    file              TEXT     NOT NULL,
    source            TEXT     NOT NULL,
    source_user       TEXT,
    state             TEXT     NOT NULL,
    priority          TEXT     NOT NULL,
    prio_rank         SMALLINT NOT NULL,                 -- 0 high, 1 medium, 2 low
    task_json         TEXT,                              -- crate::task::Task as JSON
    requires          TEXT[],                            -- labels a node must have; NULL if none
    attempts          INTEGER  NOT NULL DEFAULT 0,       -- also the lease (fencing) token
    max_retries       INTEGER  NOT NULL,
    retry_budget      INTEGER  NOT NULL,
    not_before_ms     BIGINT,
    lease_owner       TEXT,
    lease_expires_ms  BIGINT,
    cancel_requested  BOOLEAN  NOT NULL DEFAULT FALSE,
    received_at_ms    BIGINT   NOT NULL,
    started_at_ms     BIGINT,
    finished_at_ms    BIGINT,
    session_id        TEXT,
    progress          TEXT,
    error             TEXT,
    result            TEXT,
    artifacts_written BOOLEAN  NOT NULL DEFAULT FALSE,
    archived_to       TEXT,
    finalized         BOOLEAN  NOT NULL DEFAULT FALSE,
    origin_node       TEXT     NOT NULL                  -- the node whose tasks/ it came from
);

-- claim: the queued records in claim order
CREATE INDEX orca_tasks_queue ON orca_tasks (prio_rank, seq) WHERE state = 'queued';
-- lease scans and recovery: the running records
CREATE INDEX orca_tasks_running ON orca_tasks (lease_expires_ms) WHERE state = 'running';
-- find_open_by_file and pending_finalize: only records not finalized yet
CREATE INDEX orca_tasks_open_file ON orca_tasks (file) WHERE NOT finalized;
-- list by state
CREATE INDEX orca_tasks_state ON orca_tasks (state, seq);

CREATE TABLE orca_attempts (
    task_id        TEXT    NOT NULL REFERENCES orca_tasks (id),
    attempt        INTEGER NOT NULL,
    worker         TEXT    NOT NULL,
    node           TEXT    NOT NULL,
    started_at_ms  BIGINT  NOT NULL,
    finished_at_ms BIGINT,
    outcome        TEXT,
    error          TEXT,
    exit_code      INTEGER,
    session_id     TEXT,
    resumed        BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (task_id, attempt)
);

-- The `orca run` processes taking part, each renewing its row by heartbeat.
CREATE TABLE orca_nodes (
    id              TEXT    PRIMARY KEY,
    labels          TEXT[]  NOT NULL,
    started_at_ms   BIGINT  NOT NULL,
    heartbeat_at_ms BIGINT  NOT NULL,
    running         INTEGER NOT NULL DEFAULT 0,
    max_running     INTEGER NOT NULL DEFAULT 0
);

-- One row: bumped by every write transaction that changed something, just before it
-- commits, so that it grows in commit order (the poll-only change token).
CREATE TABLE orca_changes (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    n   BIGINT  NOT NULL
);
INSERT INTO orca_changes (n) VALUES (0);

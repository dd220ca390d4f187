-- Schema 3: the events that crash recovery asks about (`artifacts_written`, `task_archived`),
-- one row per task, attempt and event, written just before the event's line goes to the log:
-- a restart asks the store, never the log, whether a step's event is already out.
CREATE TABLE IF NOT EXISTS orca_logged (
    task_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    event   TEXT NOT NULL,
    PRIMARY KEY (task_id, attempt, event)
);

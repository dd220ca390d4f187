-- Schema 3: indexes for the per-task reads of a busy fleet, so that none scans the table.
-- pending_finalize: a node's own records not finalized yet, by arrival.
CREATE INDEX IF NOT EXISTS orca_tasks_unfinalized_origin
    ON orca_tasks (origin_node, seq) WHERE NOT finalized;
-- find_open_by_file(s): by file within the node's own open records.
CREATE INDEX IF NOT EXISTS orca_tasks_open_origin_file
    ON orca_tasks (origin_node, file, seq) WHERE NOT finalized;
DROP INDEX IF EXISTS orca_tasks_open_file;
-- next_not_before: queued records waiting for a retry delay.
CREATE INDEX IF NOT EXISTS orca_tasks_backoff
    ON orca_tasks (not_before_ms) WHERE state = 'queued' AND not_before_ms IS NOT NULL;

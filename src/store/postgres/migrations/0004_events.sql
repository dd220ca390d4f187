-- Schema 4: the fleet's event log (the lines each node also writes to its own
-- logs/events.ndjson), so that `orca tail-events` on any node sees the whole fleet.
CREATE TABLE IF NOT EXISTS orca_events (
    seq     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- insertion order
    node    TEXT NOT NULL,                                   -- the node that published it
    task_id TEXT,                                            -- NULL for daemon-wide events
    line    TEXT NOT NULL                                    -- the NDJSON line, without its \n
);
CREATE INDEX IF NOT EXISTS orca_events_task ON orca_events (task_id, seq)
    WHERE task_id IS NOT NULL;

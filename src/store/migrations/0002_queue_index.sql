-- Orca task database, schema version 2.
-- The queue index holds only the records a claim or a lease scan looks at (queued and
-- running), keyed so that a claim rewrites its entry in place: a run's end and the next
-- claim then touch one index page, where the index over every state (version 1) moved
-- entries across three (queued, running, the final state's end) and grew with history.
-- Queries that want it repeat its condition word for word: `state IN ('queued', 'running')`.
DROP INDEX tasks_claim;
CREATE INDEX tasks_queue ON tasks (prio_rank, seq, state) WHERE state IN ('queued', 'running');

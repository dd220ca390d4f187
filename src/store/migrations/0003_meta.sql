-- Schema 3: facts the running daemon publishes for other commands (its settings, for
-- `orca status`), one JSON document per key.
CREATE TABLE IF NOT EXISTS meta (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);

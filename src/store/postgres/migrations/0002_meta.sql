-- Schema 2: facts a running node publishes for other commands (its settings, for
-- `orca status`), one JSON document per key.
CREATE TABLE IF NOT EXISTS orca_meta (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_ms BIGINT NOT NULL
);

//! Schema migrations for the SQLite store: numbered SQL files, tracked by `PRAGMA user_version`.
//! A database from a newer Orca (higher version than we know) is refused, never touched.

use rusqlite::{Connection, TransactionBehavior};

/// Migration `i` (0-based) brings the schema to version `i + 1`. Append only.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_queue_index.sql"),
    include_str!("migrations/0003_meta.sql"),
];

/// The schema version this build writes.
pub(crate) const LATEST: i64 = MIGRATIONS.len() as i64;

/// What went wrong while migrating.
#[derive(Debug)]
pub(crate) enum MigrateError {
    Newer { found: i64 },
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for MigrateError {
    fn from(e: rusqlite::Error) -> Self {
        MigrateError::Sql(e)
    }
}

fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Brings the schema up to [`LATEST`]. Each step runs in its own IMMEDIATE transaction and
/// re-reads the version inside it, so two processes opening a fresh file at once are safe.
pub(crate) fn migrate(conn: &mut Connection) -> Result<i64, MigrateError> {
    let found = version(conn)?;
    if found > LATEST {
        return Err(MigrateError::Newer { found });
    }
    if found == LATEST {
        return Ok(found);
    }
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = version(&tx)?;
        if current > LATEST {
            return Err(MigrateError::Newer { found: current });
        }
        if current == LATEST {
            tx.commit()?;
            return Ok(current);
        }
        let sql = MIGRATIONS[current as usize];
        tx.execute_batch(sql)?;
        // user_version lives in the database header, so it commits with the step.
        tx.execute_batch(&format!("PRAGMA user_version = {}", current + 1))?;
        tx.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_database_reaches_latest_and_is_idempotent() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), LATEST);
        assert_eq!(version(&conn).unwrap(), LATEST);
        assert_eq!(migrate(&mut conn).unwrap(), LATEST);
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('tasks', 'attempts')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 2);
    }

    #[test]
    fn newer_version_is_refused_untouched() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        match migrate(&mut conn) {
            Err(MigrateError::Newer { found }) => assert_eq!(found, 99),
            other => panic!("expected Newer, got {other:?}"),
        }
        let n: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }
}

//! Schema migrations for the PostgreSQL store: numbered SQL files, tracked in
//! `orca_schema`, applied in one transaction under an advisory lock so that any number of
//! nodes starting at the same moment are safe (the others wait, then find it done).

use postgres::Client;

/// Migration `i` (0-based) brings the schema to version `i + 1`. Append only.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_meta.sql"),
    include_str!("migrations/0003_hot_path_indexes.sql"),
    include_str!("migrations/0004_events.sql"),
];

/// The schema version this build writes.
pub(crate) const LATEST: i64 = MIGRATIONS.len() as i64;

/// The advisory lock key of migrations (any fixed number; "orca" in ASCII).
const MIGRATE_LOCK: i64 = 0x6f72_6361;

/// What went wrong while migrating.
#[derive(Debug)]
pub(crate) enum MigrateError {
    Newer { found: i64 },
    Sql(postgres::Error),
}

impl From<postgres::Error> for MigrateError {
    fn from(e: postgres::Error) -> Self {
        MigrateError::Sql(e)
    }
}

/// The schema version of the database (0 when it has none yet).
pub(super) fn version(client: &mut impl postgres::GenericClient) -> Result<i64, postgres::Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass('orca_schema') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(client
        .query_one("SELECT coalesce(max(version), 0) FROM orca_schema", &[])?
        .get(0))
}

/// Brings the schema up to [`LATEST`]; returns the version found before. A database that
/// is current is only read (so a read-only server can still be opened).
pub(crate) fn migrate(client: &mut Client) -> Result<i64, MigrateError> {
    let found = version(client)?;
    if found > LATEST {
        return Err(MigrateError::Newer { found });
    }
    if found == LATEST {
        return Ok(found);
    }
    let mut tx = client.transaction()?;
    // Held until the transaction ends: a second node waits here, then sees the new version.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS orca_schema (version BIGINT NOT NULL)")?;
    let found = version(&mut tx)?;
    if found > LATEST {
        return Err(MigrateError::Newer { found });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO orca_schema (version) VALUES ($1)",
            &[&(i as i64 + 1)],
        )?;
    }
    tx.commit()?;
    Ok(found)
}

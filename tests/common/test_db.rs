//! A database of its own on the test PostgreSQL server, for tests/postgres_store.rs and
//! tests/fleet.rs (included with `#[path]`, so the other test binaries do not carry it).
//! The server is `ORCA_TEST_PG_URL` (default postgres://postgres@127.0.0.1:5432/test, the one
//! `.ci/run` starts); without one the tests fail in CI (CI=true) and are skipped, saying so,
//! elsewhere.

use std::sync::atomic::{AtomicU32, Ordering};

/// A database of its own on the test server, dropped (with its connections) when this
/// guard goes, however the test ends.
pub struct TestDb {
    pub admin: String,
    pub name: String,
    pub url: String,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// The test server's URL (its database `test` is the one connected to for CREATE DATABASE).
pub fn admin_url() -> String {
    std::env::var("ORCA_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

impl TestDb {
    /// A fresh database, or None (skip) when the server cannot be reached outside CI.
    pub fn new() -> Option<TestDb> {
        let admin = admin_url();
        let mut client = match postgres::Client::connect(&admin, postgres::NoTls) {
            Ok(c) => c,
            Err(e) => {
                let cause = std::error::Error::source(&e)
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default();
                let msg = format!(
                    "cannot reach the test PostgreSQL server {admin}: {e}{cause}; start it \
                     (`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, \
                     as .ci/run does) or set ORCA_TEST_PG_URL"
                );
                if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
                    panic!("{msg}");
                }
                eprintln!("skipped: {msg}");
                return None;
            }
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "orca_t_{}_{}_{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let base = admin.rsplit_once('/').unwrap().0;
        let url = format!("{base}/{name}");
        Some(TestDb { admin, name, url })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match postgres::Client::connect(&self.admin, postgres::NoTls) {
            Ok(mut c) => {
                if let Err(e) = c.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                )) {
                    eprintln!("cannot drop test database {}: {e}", self.name);
                }
            }
            Err(e) => eprintln!("cannot drop test database {}: {e}", self.name),
        }
    }
}

/// The test's own database, or return (skipped) when there is no server outside CI.
macro_rules! db_or_skip {
    () => {
        match TestDb::new() {
            Some(db) => db,
            None => return,
        }
    };
}

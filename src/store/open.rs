//! `store::open(url, workspace)`: the backend named by ORCA_DATABASE_URL: the embedded
//! SQLite file, or a PostgreSQL database shared by a fleet of nodes (`open_as` names the
//! node); anything else is refused naming the forms that work.

use std::path::PathBuf;
use std::sync::Arc;

use super::fleet::Opener;
use super::sqlite::SqliteStore;
use super::{Store, StoreError};
use crate::config::redact_url_password;
use crate::workspace::Workspace;

/// The database when ORCA_DATABASE_URL is not set: the file in the workspace's `.orca/`.
pub const DEFAULT_URL: &str = "sqlite:.orca/orca.db";

/// The backend a database URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite:PATH` (or `sqlite://PATH`): PATH relative to the workspace root unless absolute.
    Sqlite(PathBuf),
    /// `postgres://...` or `postgresql://...`: the shared queue of a fleet.
    Postgres,
}

impl Backend {
    /// Reads a database URL. The error names the URL (its password redacted) and the forms
    /// that are accepted.
    pub fn parse(url: &str, ws: &Workspace) -> Result<Backend, StoreError> {
        let lower = url.trim().to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Ok(Backend::Postgres);
        }
        if lower.starts_with("sqlite:") {
            let rest = &url.trim()["sqlite:".len()..];
            // sqlite:///abs/path and sqlite://rel/path as other tools write them.
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            if !rest.is_empty() {
                let path = PathBuf::from(rest);
                let path = if path.is_absolute() {
                    path
                } else {
                    ws.root.join(path)
                };
                return Ok(Backend::Sqlite(path));
            }
        }
        Err(StoreError::Unsupported {
            url: redact_url_password(url),
            reason: format!(
                "it is not a database URL orca knows; use sqlite:PATH (PATH relative to the \
                 workspace, or absolute; the default is {DEFAULT_URL}), \
                 postgres://USER:PASSWORD@HOST:PORT/DATABASE (a fleet), or leave \
                 ORCA_DATABASE_URL unset"
            ),
        })
    }
}

/// Opens the store `url` names (see [`Backend::parse`]) for the workspace `ws`, creating
/// the SQLite file and its folder when missing and bringing its schema up to date. A
/// PostgreSQL store is opened for a node named by host and workspace (see [`open_as`]).
pub fn open(url: &str, ws: &Workspace) -> Result<Arc<dyn Store>, StoreError> {
    let who = Opener {
        node_id: format!("{}-{}", crate::config::hostname(), std::process::id()),
        origin: super::fleet::origin_of(&ws.root),
        poll_only: false,
    };
    open_as(url, ws, &who)
}

/// [`open`] for the node `who` (its id, origin key and poll-only mode matter only for a
/// PostgreSQL store). A server that cannot be reached is an error naming host and database
/// (exit 2).
pub fn open_as(url: &str, ws: &Workspace, who: &Opener) -> Result<Arc<dyn Store>, StoreError> {
    match Backend::parse(url, ws)? {
        Backend::Sqlite(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            let store = SqliteStore::open(&path)
                .map_err(|e| super::sqlite::explain_open_error(&path, e))?;
            Ok(Arc::new(store))
        }
        Backend::Postgres => {
            let opts = super::postgres::PgOptions {
                poll_only: who.poll_only,
                origin: Some(who.origin.clone()),
                ..Default::default()
            };
            super::postgres::open(url, &who.node_id, &opts)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_backend() {
        let ws = Workspace::new("/w");
        let table: &[(&str, Option<Backend>)] = &[
            (
                "sqlite:.orca/orca.db",
                Some(Backend::Sqlite("/w/.orca/orca.db".into())),
            ),
            (
                "sqlite:/var/q.db",
                Some(Backend::Sqlite("/var/q.db".into())),
            ),
            (
                "sqlite:///var/q.db",
                Some(Backend::Sqlite("/var/q.db".into())),
            ),
            ("SQLite:x.db", Some(Backend::Sqlite("/w/x.db".into()))),
            ("postgres://u:pw@h/d", Some(Backend::Postgres)),
            ("postgresql://h/d", Some(Backend::Postgres)),
            ("sqlite:", None),
            ("mysql://u:pw@h/d", None),
            (".orca/orca.db", None),
            ("", None),
        ];
        for (url, want) in table {
            let got = Backend::parse(url, &ws).ok();
            assert_eq!(&got, want, "{url}");
        }
    }

    #[test]
    fn a_sqlite_url_opens_that_file_creating_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::new(dir.path());
        let s = open("sqlite:deep/er/q.db", &ws).unwrap();
        let want = dir.path().join("deep/er/q.db");
        assert!(want.is_file());
        assert_eq!(s.describe().db, want.display().to_string());
        s.check_writable().unwrap();
    }

    #[test]
    fn refusals_name_the_url_without_its_password_and_the_way_out() {
        let ws = Workspace::new("/w");
        let unknown = match open("mysql://u:hunter2@h/d", &ws) {
            Err(e) => e,
            Ok(_) => panic!("a mysql URL must be refused"),
        };
        assert!(
            matches!(unknown, StoreError::Unsupported { .. }),
            "{unknown:?}"
        );
        let msg = unknown.to_string();
        assert!(msg.contains("mysql://u:<redacted>@h/d"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(msg.contains("sqlite:PATH"), "{msg}");
        assert_eq!(unknown.exit_code(), 2);

        // Nothing listens on port 1: the error names host, port and database.
        let pg = match open("postgres://orca:hunter2@127.0.0.1:1/fleetdb", &ws) {
            Err(e) => e,
            Ok(_) => panic!("an unreachable server must be refused"),
        };
        let msg = pg.to_string();
        assert!(matches!(pg, StoreError::Unsupported { .. }), "{pg:?}");
        assert!(
            msg.contains("127.0.0.1:1") && msg.contains("database fleetdb"),
            "{msg}"
        );
        assert!(!msg.contains("hunter2"), "{msg}");
        assert_eq!(pg.exit_code(), 2);
    }
}

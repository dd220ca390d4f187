//! The shared store of a fleet: the queue in one PostgreSQL database, for any number of
//! `orca run` nodes (DESIGN §12). Same [`Store`] contract as the SQLite twin; claims are
//! `FOR UPDATE SKIP LOCKED`, wake-ups `LISTEN/NOTIFY`, nodes a table of their own.
//!
//! Blocking: the `postgres` client blocks the calling thread (each connection drives a small
//! tokio runtime of its own), so it must never be called on a tokio runtime's worker thread
//! (it would panic there): the daemon calls it through [`OffThread`](crate::store::OffThread)
//! (tokio's blocking threads), the CLI from its plain main thread.
//!
//! Fencing: the lease of a claim is the pair (`lease_owner`, `attempts`): `attempts` grows by
//! one with every claim, so it is also the claim's fencing token, carried in the claimed
//! [`TaskRecord`]. [`Store::finish_claimed`] checks both; the calls that name only the worker
//! check the owner, so worker names must be unique over the fleet (node id, then slot).
//! Time: leases compare the `now_ms` of different nodes, so their clocks must agree (NTP).

mod events;
mod listen;
mod nodes;
mod ops;
mod rows;
mod schema;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use postgres::{Client, Config, NoTls, Row, Statement};

use super::{ChangeToken, Store, StoreError};
use crate::config::redact_url_password;
use listen::Listener;

pub use crate::store::fleet::NodeRecord;

/// Connections a store keeps open for its calls (the change feed has one more of its own).
pub const DEFAULT_POOL_SIZE: u32 = 4;

/// How long a statement waits for a row or advisory lock held by another node before it
/// gives up with [`StoreError::Busy`].
pub const LOCK_TIMEOUT_MS: u64 = 5_000;

/// How long connecting to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a [`PostgresStore`] connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// No `LISTEN` (for connection poolers that do not pass it, `ORCA_PG_POLL_ONLY=true`):
    /// [`Store::changes`](crate::store::Store::changes) reads a change counter instead.
    pub poll_only: bool,
    /// Pooled connections for the store's calls.
    pub pool_size: u32,
    /// The origin key of the tasks this handle enqueues; only they are its to finalize
    /// (`pending_finalize`) and to find by file (`find_open_by_file`). None: the node id.
    pub origin: Option<String>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            poll_only: false,
            pool_size: DEFAULT_POOL_SIZE,
            origin: None,
        }
    }
}

/// The PostgreSQL implementation of [`Store`](crate::store::Store): a pool of connections,
/// the change listener, and the id of the node this handle works for (recorded as the
/// origin of the tasks it enqueues and the node of the attempts it claims).
pub struct PostgresStore {
    /// None only while the store is dropped.
    pool: Option<r2d2::Pool<Manager>>,
    /// The URL without its password (for messages).
    db: String,
    node: String,
    /// The origin key of the tasks it enqueues (see [`PgOptions::origin`]).
    origin: String,
    /// None in poll-only mode.
    listener: Option<Listener>,
    /// Finalize markers held back ([`Store::mark_finalized_later`]): written with the next
    /// write transaction, at [`Store::flush`], or when the store is dropped.
    marks: std::sync::Mutex<Vec<Mark>>,
}

/// A finalize marker waiting to be written: attempt `attempt` of task `id` is finalized.
#[derive(Debug, Clone)]
pub(crate) struct Mark {
    id: String,
    attempt: i32,
    archived_to: String,
}

/// Writes held-back finalize markers, all in one statement; a marker whose task has run
/// again meanwhile (another attempt, or queued or running) is skipped.
const MARKS_SQL: &str = "UPDATE orca_tasks SET artifacts_written = TRUE, archived_to = m.a, \
     finalized = TRUE FROM unnest($1::text[], $2::int4[], $3::text[]) AS m(id, att, a) \
     WHERE orca_tasks.id = m.id AND orca_tasks.attempts = m.att AND NOT orca_tasks.finalized \
     AND orca_tasks.state NOT IN ('queued', 'running')";

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("db", &self.db)
            .field("node", &self.node)
            .field("listen", &self.listener.is_some())
            .finish()
    }
}

impl Drop for PostgresStore {
    /// Closing a connection blocks on its runtime, which panics on a thread that runs a
    /// tokio runtime (the daemon may drop its last handle there): then the connections are
    /// closed on a thread of their own.
    fn drop(&mut self) {
        // On a runtime's thread the client cannot block: the markers are lost then, and the
        // next start finalizes those tasks again (finalize is safe to redo).
        if tokio::runtime::Handle::try_current().is_err() {
            if let Err(e) = self.flush_marks() {
                tracing::error!(
                    "cannot record finished tasks as finalized in {} (the next start finalizes them again): {e}",
                    self.db
                );
            }
        }
        let pool = self.pool.take();
        let listener = self.listener.take();
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let slot = Arc::new(std::sync::Mutex::new(Some((pool, listener))));
        let theirs = Arc::clone(&slot);
        let closing = std::thread::Builder::new()
            .name("orca-pg-close".into())
            .spawn(move || drop(theirs.lock().map(|mut s| s.take())));
        match closing {
            Ok(t) => {
                let _ = t.join();
            }
            Err(e) => {
                // No thread to close them on: the sockets close when the process ends.
                tracing::warn!("cannot close the database connections cleanly: {e}");
                if let Ok(mut s) = slot.lock() {
                    std::mem::forget(s.take());
                }
            }
        }
    }
}

/// One pooled connection and the statements prepared on it.
pub(crate) struct Conn {
    client: Client,
    stmts: HashMap<&'static str, Statement>,
    /// A rollback failed: the pool throws the connection away.
    broken: bool,
}

impl Conn {
    /// `sql`, prepared once per connection.
    fn prep(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.stmts.insert(sql, s.clone());
        Ok(s)
    }
}

/// Makes the pool's connections.
struct Manager {
    config: Config,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        Ok(Conn {
            client: self.config.connect(NoTls)?,
            stmts: HashMap::new(),
            broken: false,
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken || conn.client.is_closed()
    }
}

/// Whether a write transaction that changed something tells the other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// Bumps the change counter and notifies (a new task, a cancel, a requeue: work or news
    /// for other nodes).
    Notify,
    /// Neither (see [`PostgresStore::write_quiet`]).
    Quiet,
}

/// A write transaction in progress (see [`PostgresStore::write`]).
pub(crate) struct Tx<'a> {
    conn: &'a mut Conn,
    store: &'a PostgresStore,
    /// Some statement changed a row: the commit bumps the change counter and notifies.
    changed: bool,
}

type Params<'p> = [&'p (dyn postgres::types::ToSql + Sync)];

impl Tx<'_> {
    fn query(&mut self, sql: &'static str, params: &Params<'_>) -> Result<Vec<Row>, StoreError> {
        let stmt = self.conn.prep(sql).map_err(|e| self.store.err(e))?;
        self.conn
            .client
            .query(&stmt, params)
            .map_err(|e| self.store.err(e))
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// A statement that writes: the transaction counts as a change when it touched a row.
    fn write_query(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
    ) -> Result<Vec<Row>, StoreError> {
        let rows = self.query(sql, params)?;
        self.changed |= !rows.is_empty();
        Ok(rows)
    }

    fn execute(&mut self, sql: &'static str, params: &Params<'_>) -> Result<u64, StoreError> {
        let stmt = self.conn.prep(sql).map_err(|e| self.store.err(e))?;
        let n = self
            .conn
            .client
            .execute(&stmt, params)
            .map_err(|e| self.store.err(e))?;
        self.changed |= n > 0;
        Ok(n)
    }
}

/// How a write transaction ends when it changed something: the change counter (poll-only
/// token) is bumped last, so its row lock is held only for the commit, and the notification
/// goes out when the transaction commits.
/// The payload is the writing handle's token ([`WRITER_SETTING`]), for its own listener to
/// leave out.
const COMMIT_CHANGED: &str = "UPDATE orca_changes SET n = n + 1; \
     SELECT pg_notify('orca_changes', current_setting('orca.writer', true)); COMMIT";

/// A session setting naming the store handle (process) that writes: the payload of its
/// notifications.
const WRITER_SETTING: &str = "orca.writer";

/// [`PostgresStore::connect_with`] as the `Store` the daemon and CLI hold (`store::open`
/// for a `postgres://` ORCA_DATABASE_URL).
pub fn open(url: &str, node: &str, opts: &PgOptions) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(PostgresStore::connect_with(url, node, opts)?))
}

impl PostgresStore {
    /// Connects to the database `url` names (`postgres://user:pw@host:port/db`), brings its
    /// schema up to date (under an advisory lock: nodes starting at once are safe) and starts
    /// the change listener. `node` is this node's id (ORCA_NODE_ID).
    ///
    /// A server that cannot be reached is `Err(Unsupported)` (exit 2) naming host, port and
    /// database. Blocks: call it from a plain or blocking thread, not a tokio worker.
    pub fn connect(url: &str, node: &str) -> Result<PostgresStore, StoreError> {
        Self::connect_with(url, node, &PgOptions::default())
    }

    /// [`PostgresStore::connect`] with options (poll-only, pool size).
    pub fn connect_with(
        url: &str,
        node: &str,
        opts: &PgOptions,
    ) -> Result<PostgresStore, StoreError> {
        let db = redact_url_password(url.trim());
        if node.trim().is_empty() {
            return Err(StoreError::Invalid(
                "the node id is empty; set ORCA_NODE_ID to a name unique in the fleet".into(),
            ));
        }
        let mut config = parse_url(url)?;
        if config.get_application_name().is_none() {
            config.application_name(&format!("orca {node}"));
        }
        // Added to the URL's own `options`, if any.
        // This handle's token: unique per process and handle, without spaces.
        static HANDLES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let writer = format!(
            "{}.{}.{}",
            std::process::id(),
            HANDLES.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
            crate::clock::now_ms()
        );
        let ours = format!("-c lock_timeout={LOCK_TIMEOUT_MS} -c {WRITER_SETTING}={writer}");
        let options = match config.get_options() {
            Some(o) if !o.trim().is_empty() => format!("{o} {ours}"),
            _ => ours,
        };
        config.options(&options);
        let mut first = config
            .connect(NoTls)
            .map_err(|e| unreachable(url, &config, &e))?;
        match schema::migrate(&mut first) {
            Ok(_) => {}
            Err(schema::MigrateError::Newer { found }) => {
                return Err(StoreError::NewerSchema {
                    db,
                    found,
                    supported: schema::LATEST,
                })
            }
            Err(schema::MigrateError::Sql(e)) => return Err(map_err(&db, e)),
        }
        let pool = r2d2::Pool::builder()
            .max_size(opts.pool_size.max(1))
            .min_idle(Some(1))
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(10))
            .build(Manager {
                config: config.clone(),
            })
            .map_err(|e| StoreError::Backend {
                db: db.clone(),
                message: format!(
                    "cannot open a connection pool to {}: {e}",
                    server_of(&config)
                ),
            })?;
        // The first connection listens (in poll-only mode it is not needed any more).
        let listener = if opts.poll_only {
            None
        } else {
            Some(Listener::start(first, config, db.clone(), writer).map_err(|e| map_err(&db, e))?)
        };
        Ok(PostgresStore {
            pool: Some(pool),
            db,
            node: node.to_owned(),
            origin: opts.origin.clone().unwrap_or_else(|| node.to_owned()),
            listener,
            marks: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The origin key of the tasks this handle enqueues.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether changes arrive by `LISTEN` (false: poll-only, or the listener is reconnecting).
    pub fn listening(&self) -> bool {
        self.listener
            .as_ref()
            .is_some_and(|l| l.feed.live.load(std::sync::atomic::Ordering::SeqCst))
    }

    fn err(&self, e: postgres::Error) -> StoreError {
        map_err(&self.db, e)
    }

    /// A pooled connection.
    fn conn(&self) -> Result<r2d2::PooledConnection<Manager>, StoreError> {
        let Some(pool) = &self.pool else {
            return Err(StoreError::Backend {
                db: self.db.clone(),
                message: "the store is closed".into(),
            });
        };
        pool.get().map_err(|e| StoreError::Backend {
            db: self.db.clone(),
            message: format!("cannot reach the server ({e}); check that it runs: orca tries again"),
        })
    }

    /// Runs `sql` outside any transaction.
    fn read(&self, sql: &'static str, params: &Params<'_>) -> Result<Vec<Row>, StoreError> {
        let mut conn = self.conn()?;
        let stmt = conn.prep(sql).map_err(|e| self.err(e))?;
        conn.client.query(&stmt, params).map_err(|e| self.err(e))
    }

    /// Runs `f` in one transaction (read committed; the rows it changes are locked with
    /// `FOR UPDATE`); commits when it returns Ok and rolls back otherwise. A transaction
    /// that changed a row bumps the change counter and notifies [`listen::CHANNEL`].
    fn write<T>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.write_as(Signal::Notify, f)
    }

    /// [`PostgresStore::write`] for the writes of the task path that no other node acts on
    /// (claims, finishes, progress, finalize markers): no change counter bump, no
    /// notification. Every notifying commit takes PostgreSQL's notify queue lock until it
    /// has flushed (and the counter's row lock too), so they commit one at a time
    /// server-wide; these do not, and the other nodes are not woken for them.
    fn write_quiet<T>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.write_as(Signal::Quiet, f)
    }

    fn write_as<T>(
        &self,
        signal: Signal,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn()?;
        let marks = std::mem::take(&mut *self.marks_held());
        let began = conn.client.batch_execute("BEGIN").map_err(|e| self.err(e));
        if let Err(e) = began {
            self.marks_held().splice(0..0, marks);
            return Err(e);
        }
        let mut tx = Tx {
            conn: &mut conn,
            store: self,
            changed: false,
        };
        // The markers ride along; they are no change other nodes act on (no notify).
        let out = self.write_marks(&mut tx, &marks).and_then(|()| f(&mut tx));
        let changed = tx.changed;
        let out = out.and_then(|v| {
            let end = if changed && signal == Signal::Notify {
                COMMIT_CHANGED
            } else {
                "COMMIT"
            };
            conn.client.batch_execute(end).map_err(|e| self.err(e))?;
            Ok(v)
        });
        if out.is_err() {
            if conn.client.batch_execute("ROLLBACK").is_err() {
                conn.broken = true;
            }
            // Not written: they wait for the next transaction.
            self.marks_held().splice(0..0, marks);
        }
        out
    }

    fn marks_held(&self) -> std::sync::MutexGuard<'_, Vec<Mark>> {
        self.marks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write_marks(&self, tx: &mut Tx<'_>, marks: &[Mark]) -> Result<(), StoreError> {
        if marks.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = marks.iter().map(|m| m.id.as_str()).collect();
        let attempts: Vec<i32> = marks.iter().map(|m| m.attempt).collect();
        let to: Vec<&str> = marks.iter().map(|m| m.archived_to.as_str()).collect();
        let stmt = tx.conn.prep(MARKS_SQL).map_err(|e| self.err(e))?;
        tx.conn
            .client
            .execute(&stmt, &[&ids, &attempts, &to])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Holds a finalize marker back (the PostgreSQL side of
    /// [`Store::mark_finalized_later`]).
    pub(crate) fn hold_mark(&self, id: &str, attempt: u32, archived_to: &str) {
        self.marks_held().push(Mark {
            id: id.to_owned(),
            attempt: rows::int(attempt),
            archived_to: archived_to.to_owned(),
        });
    }

    /// Whether a marker for this record's attempt is waiting to be written.
    pub(crate) fn mark_held(&self, rec: &super::TaskRecord) -> bool {
        let attempt = rows::int(rec.attempts);
        self.marks_held()
            .iter()
            .any(|m| m.id == rec.id && m.attempt == attempt)
    }

    /// Writes the markers held back (nothing, and no transaction, when none).
    pub fn flush_marks(&self) -> Result<(), StoreError> {
        if self.marks_held().is_empty() {
            return Ok(());
        }
        self.write_quiet(|_| Ok(()))
    }

    /// The poll-only change token: the change counter, bumped by every write that changed
    /// something, in commit order.
    fn polled_changes(&self) -> Result<u64, StoreError> {
        let rows = self.read("SELECT n FROM orca_changes", &[])?;
        let n: i64 = match rows.first() {
            Some(r) => r.try_get(0).map_err(|e| self.err(e))?,
            None => 0,
        };
        Ok(n as u64)
    }

    /// [`Store::changes`](crate::store::Store::changes): the notification count while the
    /// listener is live, else the polled counter (the top bit tells the two apart, so that
    /// a switch between them counts as a change too).
    fn change_token(&self) -> Result<ChangeToken, StoreError> {
        const POLLED: u64 = 1 << 63;
        match &self.listener {
            Some(l) if l.feed.live.load(std::sync::atomic::Ordering::SeqCst) => Ok(ChangeToken(
                l.feed.count.load(std::sync::atomic::Ordering::SeqCst) & !POLLED,
            )),
            _ => Ok(ChangeToken(self.polled_changes()? | POLLED)),
        }
    }
}

/// What `orca doctor` says of a PostgreSQL URL: connects (bounded by the connect timeout),
/// asks the server's version and the schema version found, changes nothing. The error names
/// the server and says what to check.
pub fn probe(url: &str) -> Result<String, StoreError> {
    let mut config = parse_url(url)?;
    config.application_name("orca doctor");
    let failed = |e: postgres::Error| unreachable(url, &config, &e);
    let mut client = config.connect(NoTls).map_err(failed)?;
    let version: String = client
        .query_one("SHOW server_version", &[])
        .map_err(failed)?
        .get(0);
    let schema = match schema::version(&mut client).map_err(failed)? {
        0 => "no Orca schema yet (the first node to start makes it)".to_owned(),
        v => format!("schema version {v} (this Orca: {})", schema::LATEST),
    };
    Ok(format!(
        "PostgreSQL {version} {}, {schema}",
        server_of(&config)
    ))
}

/// The client config of a PostgreSQL URL, with the connect timeout when the URL sets none;
/// a URL that does not parse is `Unsupported`, naming the URL (password redacted).
fn parse_url(url: &str) -> Result<Config, StoreError> {
    let mut config: Config = url.trim().parse().map_err(|e| StoreError::Unsupported {
        url: redact_url_password(url.trim()),
        reason: format!(
            "it is not a PostgreSQL URL ({e}); write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE"
        ),
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    Ok(config)
}

/// The error of a connection to `config`'s server that failed: names the server and says
/// what to check.
fn unreachable(url: &str, config: &Config, e: &postgres::Error) -> StoreError {
    StoreError::Unsupported {
        url: redact_url_password(url.trim()),
        reason: format!(
            "cannot connect to the PostgreSQL server {}: {}; check that the server \
             runs, that this machine may connect (pg_hba.conf) and that the database exists",
            server_of(config),
            error_text(e)
        ),
    }
}

/// `host:port, database NAME` of a config, for messages.
fn server_of(config: &Config) -> String {
    use postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let dbname = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("at {host}:{port} (database {dbname})")
}

/// The whole text of a client error: its own, the server's message and detail, its cause.
fn error_text(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} ({})", db.message(), db.code().code());
        if let Some(d) = db.detail() {
            s.push_str(": ");
            s.push_str(d);
        }
        return s;
    }
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cause = c.source();
    }
    s
}

/// Maps a client error to the backend-neutral [`StoreError`]: a read-only server or missing
/// rights are `ReadOnly`, a lock wait over [`LOCK_TIMEOUT_MS`] is `Busy`.
fn map_err(db: &str, e: postgres::Error) -> StoreError {
    use postgres::error::SqlState;
    let db = db.to_owned();
    if let Some(code) = e.code() {
        if *code == SqlState::READ_ONLY_SQL_TRANSACTION || *code == SqlState::INSUFFICIENT_PRIVILEGE
        {
            return StoreError::ReadOnly {
                db,
                detail: error_text(&e),
            };
        }
        if *code == SqlState::LOCK_NOT_AVAILABLE {
            return StoreError::Busy {
                db,
                waited_ms: LOCK_TIMEOUT_MS,
            };
        }
    }
    let message = if e.is_closed() {
        format!(
            "lost the connection to the server ({}); orca tries again",
            error_text(&e)
        )
    } else {
        error_text(&e)
    };
    StoreError::Backend { db, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_is_named_by_host_port_and_database() {
        let table = [
            (
                "postgres://u:pw@db.example:6543/fleet",
                "at db.example:6543 (database fleet)",
            ),
            ("postgres://u@10.0.0.1/q", "at 10.0.0.1:5432 (database q)"),
            ("postgresql://alice@h", "at h:5432 (database alice)"),
        ];
        for (url, want) in table {
            let config: Config = url.parse().unwrap();
            assert_eq!(server_of(&config), want, "{url}");
        }
    }

    #[test]
    fn a_bad_url_or_node_is_refused_before_any_connection() {
        let err = PostgresStore::connect("postgres://u:hunter2@h:notaport/db", "n").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Unsupported { .. }), "{err:?}");
        assert!(
            msg.contains("postgres://USER:PASSWORD@HOST:PORT/DATABASE"),
            "{msg}"
        );
        assert!(!msg.contains("hunter2"), "{msg}");
        let err = PostgresStore::connect("postgres://u@h/db", "  ").unwrap_err();
        assert!(err.to_string().contains("ORCA_NODE_ID"), "{err}");
    }
}

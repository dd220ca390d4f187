//! The daemon loop of `orca run`: takes ready files from intake into the store, claims
//! queued tasks up to MAX_CONCURRENT_TASKS, runs each in a worker, and shuts down cleanly.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

use crate::artifacts::result::ResultError;
use crate::clock::now_ms;
use crate::config::Config;
use crate::events::{Event, EventBus, EventKind};
use crate::intake::{self, IntakeHandle, Ready};
use crate::runner::changes::Snapshot;
use crate::runner::claude::ClaudeAgent;
use crate::runner::{Agent, Outcome, Progress, RunOutcome, RunRequest};
use crate::scheduler::backoff;
use crate::scheduler::finalize::{self, finalize, rel, RunEnd};
use crate::scheduler::resume;
use crate::store::{
    ChangeToken, Finish, NewTask, NextClaim, Repeats, SourceKind, Store, StoreError, TaskRecord,
    TaskState,
};
use crate::task::{self, TaskError, TaskErrorKind};
use crate::workspace::Workspace;

/// How often the daemon looks at the store for changes made by other processes
/// (cancel, retry from the CLI), renews leases and checks the config files.
const TICK: Duration = Duration::from_millis(250);

/// What [`Daemon::check_store`] looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Everything, only when another process wrote since the last look.
    IfChanged,
    /// The running tasks' cancels in any case; everything when another process wrote.
    Cancels,
    /// Everything (another process says it changed something).
    Full,
}

/// How often finished tasks whose artifacts could not be written are tried again.
const PENDING_RETRY: Duration = Duration::from_secs(5);
/// At most this many ready files are queued in one store transaction, so the first tasks of
/// a burst start without waiting for the whole burst to be parsed.
const INTAKE_BATCH: usize = 64;
/// An agent's progress reaches the store once it has run this long: a quick run's end is
/// recorded without a progress write first. A crash within this time leaves an agent that
/// start-up recovery cannot stop by pid (the task is re-queued all the same).
const FIRST_PROGRESS_AFTER: Duration = Duration::from_millis(100);
/// A working folder outside git with at most this many entries is snapshotted on the task's
/// own thread (a blocking-pool trip costs more than the walk); larger ones on a blocking thread.
const SMALL_FOLDER_ENTRIES: usize = 256;

/// Starts the daemon in the workspace at `root` and runs it until SIGINT/SIGTERM.
/// Returns the process exit code (0 clean stop, 1 failure, 2 configuration/usage error).
pub fn run(root: &Path, flags: &[(String, String)]) -> i32 {
    run_agent(root, flags, |cfg| {
        Arc::new(ClaudeAgent::new(cfg.claude_bin.clone()))
    })
}

/// [`run`] with the given agent instead of Claude Code (CLAUDE_BIN is then not used).
pub fn run_with_agent(root: &Path, flags: &[(String, String)], agent: Arc<dyn Agent>) -> i32 {
    run_agent(root, flags, move |_| agent)
}

fn run_agent(
    root: &Path,
    flags: &[(String, String)],
    make_agent: impl FnOnce(&Config) -> Arc<dyn Agent>,
) -> i32 {
    let cfg = match Config::load(root, flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    // A setting of a feature that is not built is refused, not ignored.
    if let Err(e) = cfg.check_built() {
        eprintln!("error: {e}");
        return e.exit_code();
    }
    let ws = Workspace::new(cfg.root.clone());
    if let Err(e) = ws.create_all() {
        eprintln!("error: {e}\nhint: check that the workspace folder is writable");
        return 1;
    }
    let _lock = match crate::store::lock::acquire(&ws) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    // What `orca doctor` would flag as failing, in one block; the daemon runs anyway (the
    // user may be about to install the agent).
    eprint!(
        "{}",
        crate::cli::doctor::startup_block(&cfg, &crate::cli::doctor::process_env())
    );
    let _log = match crate::logging::init(
        ws.log_file(),
        cfg.log_level,
        cfg.log_max_bytes,
        cfg.log_files,
    ) {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("warning: cannot set up logs/orchestrator.log: {e}");
            None
        }
    };
    let store = match crate::store::open(&cfg.database_url, &ws) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return e.exit_code();
        }
    };
    if let Err(e) = store.check_writable() {
        eprintln!("error: {e}");
        return e.exit_code();
    }
    let events = match EventBus::open_log(ws.events_file(), cfg.events_max_bytes, cfg.events_files)
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot open {}: {e}", ws.events_file().display());
            return 1;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let daemon = Arc::new(Daemon {
        agent: RwLock::new(make_agent(&cfg)),
        cfg: RwLock::new(Arc::new(cfg)),
        flags: flags.to_vec(),
        store,
        events,
        running: Mutex::new(HashMap::new()),
        shutting_down: AtomicBool::new(false),
        snapshots: Mutex::new(HashMap::new()),
        next_wake: Mutex::new(None),
        next_wake_stale: AtomicBool::new(true),
        claimed_by_workers: AtomicBool::new(false),
        own_folders: orca_folders(&ws).into(),
        ws,
    });
    // Whatever an agent starts and detaches is re-parented here, to be ended with its
    // attempt (runner::escape).
    if let Err(e) = crate::runner::escape::become_subreaper() {
        tracing::warn!("cannot become the subreaper of the agents' processes: {e}; a process an agent detaches may outlive its attempt");
    }
    rt.block_on(daemon.main())
}

/// A parsed, valid task file waiting to be queued.
struct ValidFile {
    new: NewTask,
    /// The `parsed` event.
    parsed_fields: EventKind,
}

struct RunningTask {
    cancel: watch::Sender<bool>,
}

struct Daemon {
    cfg: RwLock<Arc<Config>>,
    flags: Vec<(String, String)>,
    ws: Workspace,
    store: Arc<dyn Store>,
    events: EventBus,
    agent: RwLock<Arc<dyn Agent>>,
    running: Mutex<HashMap<String, RunningTask>>,
    shutting_down: AtomicBool,
    /// The working folder as it was before a task's first attempt in this daemon, kept
    /// across retries so `changed_files` covers every attempt.
    snapshots: Mutex<HashMap<String, Snapshot>>,
    /// When the earliest backed-off task may run, as last read from the store; re-read only
    /// after a requeue here, a change by another process, or when that time has come.
    next_wake: Mutex<Option<i64>>,
    next_wake_stale: AtomicBool,
    /// A worker's finish claimed a task since the last tick. Such a task is registered as
    /// running on the worker's thread, so a store check on the main loop may have looked
    /// just before; the next tick looks again (a cancel made meanwhile is not missed).
    claimed_by_workers: AtomicBool,
    /// Orca's own folders, left out of `changed_files` (see [`orca_folders`]).
    own_folders: Arc<[std::path::PathBuf]>,
}

fn config_stamp(ws: &Workspace) -> Vec<Option<SystemTime>> {
    [ws.env_file(), ws.config_file()]
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// A file-system-safe id made from a file stem, for tasks rejected before their id is known.
fn id_from_stem(stem: &str) -> String {
    let mut id: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if id.is_empty() {
        id = "task".into();
    }
    id
}

impl Daemon {
    /// The configuration in force (shared, not copied: callers on the task path take it
    /// several times per task).
    fn cfg(&self) -> Arc<Config> {
        match self.cfg.read() {
            Ok(c) => Arc::clone(&c),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// The agent in force (replaced on a reload that changes it).
    fn current_agent(&self) -> Arc<dyn Agent> {
        match self.agent.read() {
            Ok(a) => Arc::clone(&a),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    fn is_running(&self, id: &str) -> bool {
        self.running.lock().is_ok_and(|m| m.contains_key(id))
    }

    fn running_count(&self) -> usize {
        self.running.lock().map(|m| m.len()).unwrap_or(0)
    }

    async fn main(self: Arc<Self>) -> i32 {
        let cfg = self.cfg();
        self.events.publish(Event::daemon(EventKind::DaemonStarted {
            max_concurrent_tasks: cfg.max_concurrent_tasks,
            node: cfg.node_id.clone(),
            pid: std::process::id(),
            root: self.ws.root.display().to_string(),
            version: crate::VERSION.to_owned(),
        }));
        tracing::info!(root = %self.ws.root.display(), pid = std::process::id(), "orca daemon started");
        self.publish_settings(&cfg);

        // Start-up repair: runs cut off by a crash go back to the queue (their agents, if
        // they outlived the crash, are stopped first); finished tasks whose artifacts or
        // archive move were cut off are completed.
        stop_orphaned_agents(
            self.store
                .list(Some(TaskState::Running))
                .unwrap_or_default(),
        )
        .await;
        match self.store.recover_worker(None) {
            Ok(ids) => {
                for id in ids {
                    self.events.publish(Event::task(
                        &id,
                        EventKind::Recovered {
                            reason: "the previous run was cut off".into(),
                        },
                    ));
                    tracing::warn!(task = %id, "recovered a task whose run was cut off");
                }
            }
            Err(e) => tracing::error!("start-up recovery failed: {e}"),
        }
        self.finalize_pending();

        let (intake, mut ready_rx) = match intake::start(self.ws.tasks()) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("error: cannot watch {}: {e}", self.ws.tasks().display());
                return 1;
            }
        };
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<()>();
        let mut sigint = signal(SignalKind::interrupt()).ok();
        let mut sigterm = signal(SignalKind::terminate()).ok();
        let mut sighup = signal(SignalKind::hangup()).ok();
        let mut sigusr1 = signal(SignalKind::user_defined1()).ok();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_version = self.store.changes().unwrap_or_default();
        let mut stamp = config_stamp(&self.ws);
        let mut last_pending_retry = Instant::now();
        // Set when the database was deleted or replaced under the daemon: it stops (exit 1).
        let mut gone: Option<StoreError> = None;
        eprintln!(
            "orca {}: watching {} (Ctrl-C to stop)",
            crate::VERSION,
            self.ws.tasks().display()
        );

        loop {
            self.dispatch(&done_tx);
            let backoff_wake = self.backoff_sleep();
            tokio::select! {
                ready = ready_rx.recv() => {
                    let Some(ready) = ready else { break };
                    // Take whatever else is already waiting before claiming, in one batch.
                    let mut batch = vec![ready];
                    while let Ok(more) = ready_rx.try_recv() {
                        batch.push(more);
                        if batch.len() >= INTAKE_BATCH {
                            break;
                        }
                    }
                    self.handle_ready(&intake, batch);
                }
                Some(()) = done_rx.recv() => {}
                _ = backoff_wake => self.next_wake_stale.store(true, Ordering::SeqCst),
                _ = recv_signal(&mut sigint) => break,
                _ = recv_signal(&mut sigterm) => break,
                _ = recv_signal(&mut sighup) => self.reload("SIGHUP"),
                _ = recv_signal(&mut sigusr1) => {
                    match self.check_store(last_version, Check::Full) {
                        Ok(v) => last_version = v,
                        Err(e) => { gone = Some(e); break; }
                    }
                }
                _ = tick.tick() => {
                    if let Err(e) = self.store.flush() {
                        static FLUSH_ERRORS: Repeats = Repeats::new();
                        if let Some(more) = FLUSH_ERRORS.admit(&e.to_string()) {
                            tracing::error!("cannot record finished tasks as finalized (will try again): {e}{more}");
                        }
                    }
                    let check = if self.claimed_by_workers.swap(false, Ordering::SeqCst) {
                        Check::Cancels
                    } else {
                        Check::IfChanged
                    };
                    match self.check_store(last_version, check) {
                        Ok(v) => last_version = v,
                        Err(e) => { gone = Some(e); break; }
                    }
                    self.retry_pending_periodically(&mut last_pending_retry);
                    self.heartbeat();
                    let now_stamp = config_stamp(&self.ws);
                    if now_stamp != stamp {
                        stamp = now_stamp;
                        self.reload("configuration file changed");
                    }
                }
            }
        }
        drop(intake);
        if let Some(e) = &gone {
            eprintln!("error: {e}");
            tracing::error!("{e}");
        }
        self.shutdown(&mut done_rx).await;
        if gone.is_some() {
            1
        } else {
            0
        }
    }

    /// Sleeps until the earliest backed-off task may run (or an hour when none).
    fn backoff_sleep(&self) -> tokio::time::Sleep {
        let mut next = self.next_wake.lock().unwrap_or_else(|p| p.into_inner());
        if self.next_wake_stale.swap(false, Ordering::SeqCst) {
            *next = self.store.next_not_before().unwrap_or_else(|e| {
                tracing::warn!("cannot read the retry schedule (looking again in a second): {e}");
                Some(now_ms() + 1000)
            });
        }
        let wait = match *next {
            Some(at) => Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0)),
            None => Duration::from_secs(3600),
        };
        tokio::time::sleep(wait)
    }

    /// Takes a batch of ready files: duplicates and rejects one by one, the valid ones
    /// queued in one store transaction (a burst of files costs one commit, not one each).
    fn handle_ready(&self, intake: &IntakeHandle, batch: Vec<Ready>) {
        let (mut news, mut taken) = (Vec::new(), Vec::new());
        let rels: Vec<String> = batch.iter().map(|r| rel(&self.ws, &r.path)).collect();
        let refs: Vec<&str> = rels.iter().map(String::as_str).collect();
        // Looked up together; when that fails, each file is looked up (and deferred) alone.
        let mut open = self
            .store
            .find_open_by_files(&refs)
            .unwrap_or_default()
            .into_iter();
        for (ready, file_rel) in batch.into_iter().zip(rels) {
            let open = open
                .next()
                .map(Ok)
                .unwrap_or_else(|| self.store.find_open_by_file(&file_rel));
            match open.and_then(|open| self.take_file(intake, &ready, file_rel, open)) {
                Ok(Some(v)) => {
                    news.push(v.new);
                    taken.push((ready.path, v.parsed_fields));
                }
                Ok(None) => {}
                Err(e) => {
                    // The store is busy or failing: the file stays in tasks/; look at it again soon.
                    tracing::error!(file = %ready.path.display(), "cannot take the task file (will try again): {e}");
                    intake.defer(ready.path);
                }
            }
        }
        if news.is_empty() {
            return;
        }
        match self.store.enqueue_many(&news) {
            Ok(recs) => {
                for ((_, fields), rec) in taken.into_iter().zip(recs) {
                    self.queued(&rec, fields);
                }
            }
            // All or none: find the one the store refuses, queue the others.
            Err(_) => {
                for (new, (path, fields)) in news.into_iter().zip(taken) {
                    match self.store.enqueue(new) {
                        Ok(rec) => self.queued(&rec, fields),
                        Err(e) => {
                            tracing::error!(file = %path.display(), "cannot take the task file (will try again): {e}");
                            intake.defer(path);
                        }
                    }
                }
            }
        }
    }

    /// One ready file: dedup against the store (`open`: its unfinalized record for the file,
    /// if any) and parse. A valid task is returned to be queued; a bad one is rejected here.
    fn take_file(
        &self,
        intake: &IntakeHandle,
        ready: &Ready,
        file_rel: String,
        open: Option<TaskRecord>,
    ) -> Result<Option<ValidFile>, crate::store::StoreError> {
        let path = &ready.path;
        if let Some(rec) = open {
            // A final record still in tasks/ is finalized here, unless its worker is doing
            // that right now (a rescan can report the file again meanwhile).
            if rec.state.is_final() && !self.is_running(&rec.id) {
                self.finalize_one(&rec, None, None);
            }
            return Ok(None);
        }
        let received = now_ms();
        // A stem whose artifacts already exist (say, from before the store was reset) is
        // suffixed too, so no task's artifacts are ever overwritten by another's.
        let stem = crate::artifacts::free_stem(&self.ws, &Workspace::stem_of(path));
        let cfg = self.cfg();
        let parsed = task::parse_file_within(path, &cfg.claude_allowed_root).and_then(|t| {
            task::paths::resolve_task_paths(
                &t,
                path,
                &cfg.claude_base_cwd,
                &cfg.claude_allowed_root,
            )
            .map(|_| t)
        });
        match parsed {
            Ok(t) => {
                let from_cli = t.extra.get("x-orca-source").and_then(|v| v.as_str()) == Some("cli");
                let parsed_fields = EventKind::Parsed {
                    criteria: t.success_criteria.len(),
                    priority: t.priority.as_str().to_owned(),
                    targets: t.target_files.len(),
                    title: t.title.clone(),
                    task_type: t.task_type.map(|x| x.as_str().to_owned()),
                };
                let new = NewTask {
                    desired_id: t.id.clone(),
                    stem,
                    file: file_rel,
                    source: if from_cli {
                        SourceKind::Cli
                    } else {
                        SourceKind::File
                    },
                    source_user: None,
                    priority: t.priority,
                    max_retries: t.retries.unwrap_or(cfg.max_retries),
                    task: Some(t),
                    state: TaskState::Queued,
                    error: None,
                    received_at_ms: received,
                };
                Ok(Some(ValidFile { new, parsed_fields }))
            }
            // Gone, or not a file (any more): nothing to take. Looked at only here, when the
            // read failed, rather than with a stat before every read.
            Err(err) if matches!(err.kind, TaskErrorKind::Io(_)) && !path.is_file() => Ok(None),
            Err(err) => {
                let may_be_half_written = !ready.settled
                    && !matches!(err.kind, TaskErrorKind::TooLarge { .. })
                    && recently_modified(path, Duration::from_secs(2));
                if may_be_half_written {
                    intake.defer(path.clone());
                    return Ok(None);
                }
                self.reject(&file_rel, &stem, &err, received)?;
                Ok(None)
            }
        }
    }

    /// The events of a file just queued; `parsed_fields` is the `parsed` event.
    fn queued(&self, rec: &TaskRecord, parsed_fields: EventKind) {
        let source = if rec.source == SourceKind::Cli {
            "cli"
        } else {
            "file"
        };
        let renamed = rec.id != rec.desired_id;
        let received = EventKind::TaskReceived {
            file: rec.file.clone(),
            note: renamed.then(|| {
                format!(
                    "id '{}' is taken; this task is '{}'",
                    rec.desired_id, rec.id
                )
            }),
            renamed_from: renamed.then(|| rec.desired_id.clone()),
            source: source.to_owned(),
            stem: rec.stem.clone(),
        };
        let queued = EventKind::Queued {
            by: None,
            priority: rec.priority.as_str().to_owned(),
            retry: None,
            seq: Some(rec.seq),
        };
        self.events.publish_all(
            [received, parsed_fields, queued]
                .into_iter()
                .map(|k| Event::task(&rec.id, k))
                .collect(),
        );
        tracing::info!(task = %rec.id, file = %rec.file, "queued");
    }

    fn reject(
        &self,
        file_rel: &str,
        stem: &str,
        err: &TaskError,
        received: i64,
    ) -> Result<(), crate::store::StoreError> {
        let error = ResultError {
            kind: err.kind_name().to_owned(),
            message: err
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
            line: err.line.map(|l| l as u64),
            hint: Some(err.hint()),
        };
        let rec = self.store.enqueue(NewTask {
            desired_id: id_from_stem(stem),
            stem: stem.to_owned(),
            file: file_rel.to_owned(),
            source: SourceKind::File,
            source_user: None,
            task: None,
            priority: Default::default(),
            max_retries: 0,
            state: TaskState::Rejected,
            error: serde_json::to_value(&error).ok(),
            received_at_ms: received,
        })?;
        self.events.publish(Event::task(
            &rec.id,
            EventKind::TaskReceived {
                file: file_rel.to_owned(),
                note: None,
                renamed_from: None,
                source: "file".into(),
                stem: rec.stem.clone(),
            },
        ));
        self.events.publish(Event::task(
            &rec.id,
            EventKind::TaskRejected {
                error: error.message.clone(),
                file: file_rel.to_owned(),
                hint: error.hint.clone(),
                kind: error.kind.clone(),
                line: error.line,
            },
        ));
        tracing::warn!(file = %file_rel, "rejected: {}", err);
        self.finalize_one(&rec, None, None);
        Ok(())
    }

    fn finalize_one(
        &self,
        rec: &TaskRecord,
        run: Option<&RunOutcome>,
        working_dir: Option<String>,
    ) {
        if let Err(e) = finalize(
            &self.ws,
            self.store.as_ref(),
            &self.events,
            rec,
            run,
            working_dir,
        ) {
            tracing::error!(task = %rec.id, "cannot write the artifacts or archive the task file (will try again): {e}");
        }
    }

    /// Finishes a task this worker has just ended (with `finish_claimed`): artifacts with the
    /// run's data and changed files.
    fn finalize_run(&self, rec: &TaskRecord, end: RunEnd<'_>) {
        if let Err(e) =
            finalize::finalize_run(&self.ws, self.store.as_ref(), &self.events, rec, end)
        {
            tracing::error!(task = %rec.id, "cannot write the artifacts or archive the task file (will try again): {e}");
        }
    }

    fn finalize_pending(&self) {
        match self.store.pending_finalize() {
            Ok(recs) => {
                for rec in recs {
                    // Its worker is finalizing it right now (it stays registered until done).
                    if self.is_running(&rec.id) {
                        continue;
                    }
                    if rec.state == TaskState::Cancelled && rec.attempts == 0 {
                        self.events
                            .publish(Event::task(&rec.id, EventKind::cancelled("queued")));
                    }
                    self.finalize_one(&rec, None, None);
                }
            }
            Err(e) => tracing::error!("cannot list finished tasks: {e}"),
        }
    }

    /// Finishes tasks whose artifacts or archive move failed earlier (results/ not writable,
    /// disk full), at most every [`PENDING_RETRY`] even when the store does not change.
    fn retry_pending_periodically(&self, last: &mut Instant) {
        if last.elapsed() >= PENDING_RETRY {
            *last = Instant::now();
            self.finalize_pending();
        }
    }

    /// Looks for changes made by other processes (cancel, retry): signals cancels to
    /// running agents, finishes tasks cancelled while queued and re-reads the retry schedule.
    /// `Check::Cancels` looks at the running tasks' cancels even when no other process wrote
    /// (the rest would find nothing new, and costs a look at every queued task).
    /// `Err(Gone)` when the database was deleted or replaced: the daemon must stop.
    fn check_store(&self, last: ChangeToken, check: Check) -> Result<ChangeToken, StoreError> {
        let version = match self.store.changes() {
            Ok(v) => v,
            Err(e @ StoreError::Gone { .. }) => return Err(e),
            Err(_) => last,
        };
        let changed = version != last || check == Check::Full;
        if !changed && check == Check::IfChanged {
            return Ok(last);
        }
        let ids: Vec<(String, watch::Sender<bool>)> = match self.running.lock() {
            Ok(m) => m
                .iter()
                .map(|(k, v)| (k.clone(), v.cancel.clone()))
                .collect(),
            Err(_) => Vec::new(),
        };
        for (id, cancel) in ids {
            if matches!(self.store.is_cancel_requested(&id), Ok(true)) && !*cancel.borrow() {
                tracing::info!(task = %id, "cancel requested: stopping the agent");
                let _ = cancel.send(true);
            }
        }
        if changed {
            self.next_wake_stale.store(true, Ordering::SeqCst);
            self.finalize_pending();
        }
        Ok(version)
    }

    fn heartbeat(&self) {
        let ids: Vec<String> = match self.running.lock() {
            Ok(m) => m.keys().cloned().collect(),
            Err(_) => Vec::new(),
        };
        if ids.is_empty() {
            return;
        }
        let cfg = self.cfg();
        let lease = cfg.lease_ms();
        for id in ids {
            if let Err(e) = self.store.heartbeat(&id, &cfg.node_id, lease, now_ms()) {
                static HEARTBEAT_ERRORS: Repeats = Repeats::new();
                if let Some(more) = HEARTBEAT_ERRORS.admit(&e.to_string()) {
                    tracing::warn!(task = %id, "heartbeat failed: {e}{more}");
                }
            }
        }
    }

    fn reload(&self, why: &str) {
        match Config::load(&self.ws.root, &self.flags) {
            Ok(new) => {
                let mut changed = Vec::new();
                if let Ok(mut cur) = self.cfg.write() {
                    changed = cur.reloadable_changes(&new);
                    if changed.is_empty() {
                        return;
                    }
                    if let Ok(mut a) = self.agent.write() {
                        if let Some(next) = a.reconfigured(&new) {
                            *a = next;
                        }
                    }
                    let mut next = Config::clone(&cur);
                    next.apply_reloadable(&new);
                    *cur = Arc::new(next);
                    crate::logging::set_level(new.log_level);
                }
                self.publish_settings(&self.cfg());
                tracing::info!(?changed, "configuration reloaded ({why})");
                self.events
                    .publish(Event::daemon(EventKind::ConfigReloaded {
                        applied: None,
                        changed: Some(changed),
                        error: None,
                        reason: why.to_owned(),
                    }));
            }
            Err(e) => {
                tracing::error!("configuration reload refused, keeping the old values: {e}");
                self.events
                    .publish(Event::daemon(EventKind::ConfigReloaded {
                        applied: Some(false),
                        changed: None,
                        error: Some(e.to_string()),
                        reason: why.to_owned(),
                    }));
            }
        }
    }

    /// Publishes the settings in force for `orca status` (which shows them instead of its
    /// own shell's) and renews the redactor, which may know a new secret now.
    fn publish_settings(&self, cfg: &Config) {
        crate::config::set_redactor(crate::config::Redactor::for_daemon(cfg));
        let doc = serde_json::to_value(crate::ops::DaemonSettings::of(cfg));
        match doc.map(|d| self.store.put_meta(crate::ops::DaemonSettings::KEY, &d)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!("cannot publish the daemon's settings for `orca status`: {e}")
            }
            Err(e) => tracing::warn!("cannot describe the daemon's settings: {e}"),
        }
    }

    /// Claims queued tasks while worker slots are free.
    fn dispatch(self: &Arc<Self>, done: &mpsc::UnboundedSender<()>) {
        if self.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        let cfg = self.cfg();
        let lease = cfg.lease_ms();
        while self.running_count() < cfg.max_concurrent_tasks {
            let rec = match self
                .store
                .claim(&cfg.node_id, &cfg.node_labels, lease, now_ms())
            {
                Ok(Some(rec)) => rec,
                Ok(None) => break,
                Err(e) => {
                    static CLAIM_ERRORS: Repeats = Repeats::new();
                    if let Some(more) = CLAIM_ERRORS.admit(&e.to_string()) {
                        tracing::error!("cannot claim a task: {e}{more}");
                    }
                    break;
                }
            };
            let rx = self.register(&rec.id);
            let me = Arc::clone(self);
            let done = done.clone();
            tokio::spawn(async move {
                // A worker goes on with the task its last finish claimed, if any.
                let mut next = Some((rec, rx));
                while let Some((rec, rx)) = next.take() {
                    let id = rec.id.clone();
                    if me.shutting_down.load(Ordering::SeqCst) {
                        // Claimed just before the stop: back to the queue, not started.
                        let node = me.cfg().node_id.clone();
                        if let Err(e) = me.store.release(&id, &node, "daemon stopped") {
                            tracing::error!(task = %id, "cannot put the task back in the queue: {e}");
                        }
                    } else {
                        next = me.work(rec, rx).await;
                    }
                    if let Ok(mut m) = me.running.lock() {
                        m.remove(&id);
                    }
                }
                let _ = done.send(());
            });
        }
    }

    /// Records a claimed task as running; its cancel signal is the receiver.
    fn register(&self, id: &str) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        if let Ok(mut m) = self.running.lock() {
            m.insert(id.to_owned(), RunningTask { cancel: tx });
        }
        rx
    }

    /// What a worker ending a run asks its finish to claim as well: a next task, unless the
    /// daemon is stopping or more tasks run than MAX_CONCURRENT_TASKS now allows (counting
    /// the one ending).
    fn next_claim<'a>(&self, cfg: &'a Config) -> Option<NextClaim<'a>> {
        if self.shutting_down.load(Ordering::SeqCst)
            || self.running_count() > cfg.max_concurrent_tasks
        {
            return None;
        }
        Some(NextClaim {
            labels: &cfg.node_labels,
            lease_ms: cfg.lease_ms(),
        })
    }

    /// Runs one attempt of a claimed task and records what happened. Returns the task the
    /// run's finish claimed next, already registered as running.
    async fn work(
        self: &Arc<Self>,
        rec: TaskRecord,
        cancel: watch::Receiver<bool>,
    ) -> Option<(TaskRecord, watch::Receiver<bool>)> {
        let cfg = self.cfg();
        let node = cfg.node_id.clone();
        let attempt = rec.attempts;
        let Some(task) = rec.task.clone() else {
            self.fail_now(
                &rec,
                &node,
                "internal",
                "the task has no parsed task file in the store",
                None,
            );
            return None;
        };
        let resolved = match task::paths::resolve_task_paths(
            &task,
            &self.ws.root.join(&rec.file),
            &cfg.claude_base_cwd,
            &cfg.claude_allowed_root,
        ) {
            Ok(r) => r,
            Err(e) => {
                self.fail_now(&rec, &node, e.kind_name(), &e.message(), Some(e.hint()));
                return None;
            }
        };
        // Opened once beneath the allowed root, following no link: the agent starts in this
        // very folder, whatever its path names by then.
        let opened = match crate::runner::workdir::open_beneath(
            &cfg.claude_allowed_root,
            &resolved.working_dir,
        ) {
            Ok(o) => o,
            Err(e) => {
                self.fail_now(
                    &rec,
                    &node,
                    "working_dir",
                    &e.to_string(),
                    Some(e.hint().into()),
                );
                return None;
            }
        };
        let env = agent_env(&cfg);
        let resumed = self.resume_for(&rec, &task, &env, &opened.path);
        let prompt = match &resumed {
            Some((_, why)) => resume::continuation_prompt(why),
            None => crate::runner::prompt::build_prompt(&task),
        };
        let req = RunRequest {
            task_id: rec.id.clone(),
            attempt,
            prompt,
            working_dir: opened.path.clone(),
            working_dir_fd: Some(Arc::new(opened.fd)),
            timeout: Duration::from_secs(task.timeout_sec.unwrap_or(cfg.claude_timeout_sec)),
            max_turns: task.max_turns.or(if cfg.claude_max_turns > 0 {
                Some(cfg.claude_max_turns)
            } else {
                None
            }),
            model: task.model.clone().or(cfg.claude_model.clone()),
            skip_permissions: cfg.claude_skip_permissions,
            resume_session: resumed.as_ref().map(|(sid, _)| sid.clone()),
            raw_log: self.ws.run_log(&rec.id, attempt),
            env,
            remove_env: withheld_env(&cfg),
        };
        let working_dir = opened.path.display().to_string();
        let skip = Arc::clone(&self.own_folders);
        let before = self.snapshot_before(&rec.id, &opened.path, &skip).await;
        let agent = self.current_agent();
        self.events.publish(Event::attempt(
            &rec.id,
            attempt,
            EventKind::ClaudeStarted {
                agent: agent.name().to_owned(),
                bin: cfg.claude_bin.clone(),
                resume_session: req.resume_session.clone(),
                timeout_sec: req.timeout.as_secs(),
                working_dir: working_dir.clone(),
            },
        ));
        let (ptx, prx) = mpsc::unbounded_channel::<Box<Progress>>();
        // Progress is forwarded alongside the run, in this task (it ends when the run drops
        // its sender): no task of its own to start and wake on another thread.
        let (mut out, ()) = tokio::join!(
            agent.run(req, cancel, ptx),
            forward_progress(
                Arc::clone(self),
                rec.id.clone(),
                attempt,
                node.clone(),
                agent.name().to_owned(),
                prx
            ),
        );
        if out.agent_version.is_none() {
            out.agent_version = agent.version().await;
        }
        let changed = changed_files(before, skip).await;
        self.events.publish(Event::attempt(
            &rec.id,
            attempt,
            EventKind::ClaudeFinished {
                agent: out.agent.clone(),
                changed_files: changed.len(),
                cost_usd: out.cost_usd,
                exit_code: out.exit_code,
                num_turns: out.num_turns,
                outcome: outcome_name(&out.outcome).to_owned(),
                session_id: out.session_id.clone(),
            },
        ));
        self.record_outcome(&rec, &node, &out, Some(working_dir), changed)
    }

    /// The session to resume for this attempt: the previous attempt's, when it was cut off
    /// (see [`resume::resumable_session`]) and the CLI still has its transcript. Marks the
    /// attempt as resumed.
    fn resume_for(
        &self,
        rec: &TaskRecord,
        task: &task::Task,
        env: &[(String, String)],
        cwd: &Path,
    ) -> Option<(String, &'static str)> {
        if rec.attempts < 2 {
            return None;
        }
        let attempts = self.store.attempts(&rec.id).ok()?;
        let (sid, why) = resume::resumable_session(&attempts, rec.attempts, task.resume_on_retry)?;
        let agent = self.current_agent();
        if let Err(why_not) = agent.can_resume(&sid, cwd, env) {
            tracing::info!(task = %rec.id, session = %sid, "not resuming: {why_not}");
            return None;
        }
        if let Err(e) = self.store.mark_resumed(&rec.id, rec.attempts) {
            tracing::warn!(task = %rec.id, "cannot mark the attempt as resumed: {e}");
        }
        tracing::info!(task = %rec.id, session = %sid, "resuming the agent's session ({why})");
        Some((sid, why))
    }

    /// The snapshot of the working folder before the task's first attempt (kept across
    /// retries), or a new one.
    async fn snapshot_before(
        &self,
        id: &str,
        dir: &Path,
        skip: &Arc<[std::path::PathBuf]>,
    ) -> Snapshot {
        if let Some(s) = self.snapshots.lock().ok().and_then(|m| m.get(id).cloned()) {
            return s;
        }
        let snap = match Snapshot::take_small(dir, skip, SMALL_FOLDER_ENTRIES) {
            Some(s) => s,
            None => {
                let (d, sk) = (dir.to_path_buf(), Arc::clone(skip));
                match tokio::task::spawn_blocking(move || Snapshot::take(&d, &sk)).await {
                    Ok(s) => s,
                    Err(_) => Snapshot::take(dir, skip),
                }
            }
        };
        if let Ok(mut m) = self.snapshots.lock() {
            m.insert(id.to_owned(), snap.clone());
        }
        snap
    }

    fn record_outcome(
        &self,
        rec: &TaskRecord,
        node: &str,
        out: &RunOutcome,
        working_dir: Option<String>,
        changed: Vec<String>,
    ) -> Option<(TaskRecord, watch::Receiver<bool>)> {
        let id = rec.id.as_str();
        let attempt = rec.attempts;
        let resume_on_retry = rec.task.as_ref().is_some_and(|t| t.resume_on_retry);
        let (state, kind, message, hint): (TaskState, &str, Option<String>, Option<String>) = match &out.outcome {
            Outcome::Succeeded => (TaskState::Succeeded, "", None, None),
            Outcome::MaxTurns { detail, .. } => {
                (TaskState::Failed, "max_turns", Some(format!("max turns reached: {detail}")), None)
            }
            Outcome::TaskFailed { reason } => (TaskState::Failed, "agent_error", Some(reason.clone()), None),
            Outcome::AuthFailed { reason } => (
                TaskState::Failed,
                "auth",
                Some(reason.clone()),
                Some("set ANTHROPIC_API_KEY (in .env or the environment) or log in with `claude`; `orca doctor` checks it".into()),
            ),
            Outcome::SpawnFailed { reason } => (
                TaskState::Failed,
                "agent_missing",
                Some(reason.clone()),
                Some("install Claude Code with `npm install -g @anthropic-ai/claude-code` or set CLAUDE_BIN; `orca doctor` checks it".into()),
            ),
            Outcome::TimedOut
                if resume_on_retry
                    && self.retry_later(rec, node, "the agent did not finish within its timeout", out) =>
            {
                return None;
            }
            Outcome::TimedOut => (
                TaskState::TimedOut,
                "timeout",
                Some(format!("the agent did not finish within its timeout (attempt {attempt})")),
                Some("raise `timeout_sec` in the task file or CLAUDE_TIMEOUT_SEC".into()),
            ),
            Outcome::Cancelled => {
                if self.shutting_down.load(Ordering::SeqCst) {
                    if let Err(e) = self.store.release(id, node, "daemon stopped") {
                        tracing::error!(task = %id, "cannot put the task back in the queue: {e}");
                    }
                    return None;
                }
                (TaskState::Cancelled, "cancelled", Some("cancelled by request".into()), None)
            }
            Outcome::Transient { reason } => {
                if self.retry_later(rec, node, reason, out) {
                    return None;
                }
                (
                    TaskState::Failed,
                    "transient",
                    Some(format!("{reason} (gave up after {} attempts)", attempt)),
                    Some("see logs/runs/ for the agent's output; `orca retry` runs it again".into()),
                )
            }
        };
        let error = message.map(|m| {
            json!(ResultError {
                kind: kind.to_owned(),
                message: m,
                line: None,
                hint
            })
        });
        let finish = Finish {
            state,
            outcome: state.to_string(),
            error,
            exit_code: out.exit_code,
            session_id: out.session_id.clone(),
            now_ms: now_ms(),
        };
        let cfg = self.cfg();
        let ended = match self
            .store
            .finish_claimed(rec, node, finish, self.next_claim(&cfg))
        {
            Ok(ended) => ended,
            Err(e) => {
                tracing::error!(task = %id, "cannot record the end of the task: {e}");
                return None;
            }
        };
        // Running from now on (before this task's finalize, which takes a while).
        let next = ended.next.map(|n| {
            let rx = self.register(&n.id);
            self.claimed_by_workers.store(true, Ordering::SeqCst);
            (n, rx)
        });
        let done = ended.record;
        match state {
            TaskState::TimedOut => {
                self.events
                    .publish(Event::attempt(id, attempt, EventKind::TimedOut {}))
            }
            TaskState::Cancelled => {
                self.events
                    .publish(Event::attempt(id, attempt, EventKind::cancelled("running")))
            }
            _ => {}
        }
        if let Ok(mut m) = self.snapshots.lock() {
            m.remove(id);
        }
        self.finalize_run(
            &done,
            RunEnd {
                outcome: out,
                attempts: ended.attempts,
                working_dir,
                changed_files: changed,
            },
        );
        next
    }

    /// Puts the task back in the queue with backoff when retries are left (and the daemon is
    /// not stopping); true when it did.
    fn retry_later(&self, rec: &TaskRecord, node: &str, reason: &str, out: &RunOutcome) -> bool {
        let id = rec.id.as_str();
        let attempt = rec.attempts;
        let retries_done = self
            .store
            .attempts(id)
            .map(|a| {
                a.iter()
                    .filter(|x| x.outcome.as_deref() == Some("retry"))
                    .count() as u32
            })
            .unwrap_or(0);
        if retries_done >= rec.max_retries || self.shutting_down.load(Ordering::SeqCst) {
            return false;
        }
        let cfg = self.cfg();
        let delay = backoff::delay(
            Duration::from_millis(cfg.retry_base_ms),
            Duration::from_secs(60),
            retries_done + 1,
        );
        let at = now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
        match self.store.requeue(
            id,
            node,
            at,
            reason,
            out.exit_code,
            out.session_id.as_deref(),
        ) {
            Ok(()) => {
                self.next_wake_stale.store(true, Ordering::SeqCst);
                self.events.publish(Event::attempt(
                    id,
                    attempt,
                    EventKind::Retry {
                        delay_ms: delay.as_millis() as u64,
                        max_retries: rec.max_retries,
                        reason: reason.to_owned(),
                        retry: retries_done + 1,
                        session_id: out.session_id.clone(),
                    },
                ));
                tracing::warn!(task = %id, "attempt {attempt} failed ({reason}); retry {} in {:?}", retries_done + 1, delay);
            }
            Err(e) => tracing::error!(task = %id, "cannot requeue: {e}"),
        }
        true
    }

    /// Ends a claimed task as failed before its agent started.
    fn fail_now(
        &self,
        rec: &TaskRecord,
        node: &str,
        kind: &str,
        message: &str,
        hint: Option<String>,
    ) {
        let out = RunOutcome {
            agent: self
                .agent
                .read()
                .map(|a| a.name().to_owned())
                .unwrap_or_default(),
            outcome: Outcome::TaskFailed {
                reason: message.to_owned(),
            },
            exit_code: None,
            output: None,
            session_id: None,
            num_turns: None,
            cost_usd: None,
            usage: None,
            model: None,
            agent_version: None,
            stderr_tail: String::new(),
        };
        let error = json!(ResultError {
            kind: kind.to_owned(),
            message: message.to_owned(),
            line: None,
            hint
        });
        let finish = Finish {
            state: TaskState::Failed,
            outcome: "failed".into(),
            error: Some(error),
            exit_code: None,
            session_id: None,
            now_ms: now_ms(),
        };
        match self.store.finish_claimed(rec, node, finish, None) {
            Ok(ended) => self.finalize_run(
                &ended.record,
                RunEnd {
                    outcome: &out,
                    attempts: ended.attempts,
                    working_dir: None,
                    changed_files: Vec::new(),
                },
            ),
            Err(e) => tracing::error!(task = %rec.id, "cannot record the failure: {e}"),
        }
    }

    /// Stops intake (already dropped), lets running agents finish within the grace period,
    /// then stops them and leaves their tasks queued for the next start.
    async fn shutdown(&self, done_rx: &mut mpsc::UnboundedReceiver<()>) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let grace = Duration::from_secs(self.cfg().shutdown_grace_sec);
        let running = self.running_count();
        if running > 0 {
            eprintln!(
                "orca: stopping; waiting up to {}s for {running} running task(s)",
                grace.as_secs()
            );
            tracing::info!(running, "stopping: waiting for running agents");
        }
        let deadline = Instant::now() + grace;
        while self.running_count() > 0 && Instant::now() < deadline {
            let _ = tokio::time::timeout(
                deadline.saturating_duration_since(Instant::now()),
                done_rx.recv(),
            )
            .await;
        }
        if self.running_count() > 0 {
            if let Ok(m) = self.running.lock() {
                for t in m.values() {
                    let _ = t.cancel.send(true);
                }
            }
            while self.running_count() > 0 {
                if tokio::time::timeout(Duration::from_secs(30), done_rx.recv())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
        if let Err(e) = self.store.flush() {
            tracing::error!("cannot record finished tasks as finalized (the next start does): {e}");
        }
        self.events.publish(Event::daemon(EventKind::DaemonStopped {
            pid: std::process::id(),
        }));
        self.events.flush();
        tracing::info!("orca daemon stopped");
    }
}

async fn recv_signal(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// Environment for the agent beyond Orca's own: `.env` variables that are not Orca settings,
/// and ANTHROPIC_API_KEY when it was configured in `.env` or config/orca.toml.
/// Orca's own secrets among them are left out (see [`withheld_env`]).
fn agent_env(cfg: &Config) -> Vec<(String, String)> {
    let withheld = withheld_env(cfg);
    let mut env: Vec<(String, String)> = cfg
        .dotenv_passthrough
        .iter()
        .filter(|(k, _)| !withheld.contains(k))
        .map(|(k, v)| (k.clone(), v.expose().to_owned()))
        .collect();
    if let Some(key) = &cfg.anthropic_api_key {
        if std::env::var_os("ANTHROPIC_API_KEY").is_none() {
            env.push(("ANTHROPIC_API_KEY".into(), key.expose().to_owned()));
        }
    }
    env
}

/// Orca's own secrets, withheld from the agent (DESIGN §5): see
/// [`crate::runner::agent_env::withheld_names`].
fn withheld_env(cfg: &Config) -> Vec<String> {
    let mediation_uses_openai = !matches!(
        cfg.llm,
        crate::config::LlmMode::Off | crate::config::LlmMode::Ollama
    );
    let names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .chain(cfg.dotenv_passthrough.iter().map(|(k, _)| k.clone()))
        .collect();
    crate::runner::agent_env::withheld_names(
        names.iter().map(String::as_str),
        mediation_uses_openai,
    )
}

/// Orca's own folders in the workspace, left out of `changed_files` when the
/// working folder contains them (both as given and with symlinks resolved).
fn orca_folders(ws: &Workspace) -> Vec<std::path::PathBuf> {
    let mut v = vec![
        ws.tasks(),
        ws.results(),
        ws.summaries(),
        ws.logs(),
        ws.state_dir(),
        ws.root.join("config"),
    ];
    let resolved: Vec<_> = v.iter().filter_map(|p| p.canonicalize().ok()).collect();
    v.extend(resolved);
    v
}

/// Stops agents that outlived a crashed daemon (found by the pid in their task's progress
/// and recognised by their environment), so a recovered task never runs twice at once:
/// SIGTERM to the agent's process tree, SIGKILL after a few seconds.
async fn stop_orphaned_agents(running: Vec<TaskRecord>) {
    use crate::runner::process::{proc_info, ProcessTree};
    use nix::sys::signal::Signal;
    let mut trees = Vec::new();
    for rec in running {
        let Some(p) = &rec.progress else { continue };
        let pid = p.get("pid").and_then(serde_json::Value::as_u64);
        let attempt = p.get("attempt").and_then(serde_json::Value::as_u64);
        let (Some(pid), Some(attempt)) = (pid.and_then(|x| u32::try_from(x).ok()), attempt) else {
            continue;
        };
        if pid <= 1 || !resume::is_agent_of(pid, &rec.id, attempt) {
            continue;
        }
        tracing::warn!(task = %rec.id, pid, "stopping the agent left over from the previous daemon");
        let mut tree = ProcessTree::new(pid);
        tree.refresh();
        tree.signal_all(Signal::SIGTERM);
        trees.push((pid, tree));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let gone =
        |pid: u32| proc_info(i32::try_from(pid).unwrap_or(i32::MAX)).is_none_or(|p| p.zombie);
    while Instant::now() < deadline && trees.iter().any(|(pid, _)| !gone(*pid)) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (pid, tree) in &trees {
        if !gone(*pid) {
            tree.signal_all(Signal::SIGKILL);
        }
        tree.kill_survivors();
    }
}

/// The files changed in the working folder since `before` (off the async threads).
async fn changed_files(before: Snapshot, skip: Arc<[std::path::PathBuf]>) -> Vec<String> {
    if let Some(changed) = before.changed_since_small(&skip, SMALL_FOLDER_ENTRIES) {
        return changed;
    }
    tokio::task::spawn_blocking(move || before.changed_since(&skip))
        .await
        .unwrap_or_default()
}

fn recently_modified(path: &Path, within: Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map(|age| age < within)
        .unwrap_or(false)
}

fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Succeeded => "succeeded",
        Outcome::TaskFailed { .. } | Outcome::MaxTurns { .. } => "failed",
        Outcome::Transient { .. } => "transient",
        Outcome::AuthFailed { .. } => "auth_failed",
        Outcome::TimedOut => "timed_out",
        Outcome::Cancelled => "cancelled",
        Outcome::SpawnFailed { .. } => "spawn_failed",
    }
}

/// Records live progress: a `claude_progress` event whenever the turn or tool changes, and
/// the store's copy (for `status`/`show`; it carries the agent's pid and session, which
/// start-up recovery and resuming need) once the agent has run for [`FIRST_PROGRESS_AFTER`]
/// and then at most every 250 ms. A run that ends sooner costs no progress write at all: its
/// end is recorded next, with the session.
async fn forward_progress(
    d: Arc<Daemon>,
    id: String,
    attempt: u32,
    node: String,
    agent_name: String,
    mut rx: mpsc::UnboundedReceiver<Box<Progress>>,
) {
    const EVERY: Duration = Duration::from_millis(250);
    let mut last: Option<(u32, Option<String>)> = None;
    let mut next_write = Instant::now() + FIRST_PROGRESS_AFTER;
    let mut pending: Option<Box<Progress>> = None;
    loop {
        // A report held back by the rate limit is stored when its turn comes, even if the
        // agent then stays quiet for a long time.
        let p = tokio::select! {
            p = rx.recv() => match p {
                Some(p) => p,
                None => break,
            },
            _ = tokio::time::sleep_until(next_write.into()), if pending.is_some() => {
                if let Some(p) = pending.take() {
                    store_progress(&d, &id, &node, attempt, &p);
                    next_write = Instant::now() + EVERY;
                }
                continue;
            }
        };
        let key = (p.turns, p.last_tool.clone());
        let changed = last.as_ref() != Some(&key);
        if changed {
            d.events.publish(Event::attempt(
                &id,
                attempt,
                EventKind::ClaudeProgress {
                    agent: agent_name.clone(),
                    cost_usd: p.cost_usd,
                    last_tool: p.last_tool.clone(),
                    last_tool_target: p.last_tool_target.clone(),
                    model: p.model.clone(),
                    pid: p.pid,
                    session_id: p.session_id.clone(),
                    turns: p.turns,
                    updated_at: crate::clock::now_rfc3339(),
                },
            ));
            last = Some(key);
        }
        if Instant::now() >= next_write {
            store_progress(&d, &id, &node, attempt, &p);
            next_write = Instant::now() + EVERY;
            pending = None;
        } else {
            pending = Some(p);
        }
    }
    // A report still held back when the agent ends is dropped: the attempt's end is
    // recorded next.
}

fn progress_json(attempt: u32, p: &Progress) -> serde_json::Value {
    json!({"attempt": attempt, "turns": p.turns, "last_tool": p.last_tool, "last_tool_target": p.last_tool_target,
           "cost_usd": p.cost_usd, "model": p.model, "pid": p.pid, "session_id": p.session_id,
           "updated_at": crate::clock::now_rfc3339()})
}

fn store_progress(d: &Daemon, id: &str, node: &str, attempt: u32, p: &Progress) {
    let v = progress_json(attempt, p);
    if let Err(e) = d.store.set_progress(id, node, &v, p.session_id.as_deref()) {
        tracing::warn!(task = %id, "cannot record progress: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_stems_are_safe() {
        assert_eq!(id_from_stem("fix db"), "fix_db");
        assert_eq!(id_from_stem(""), "task");
        assert_eq!(id_from_stem("a.b"), "a_b");
    }
}

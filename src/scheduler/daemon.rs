//! The daemon loop of `orca run`: takes ready files from intake into the store, claims
//! queued tasks up to MAX_CONCURRENT_TASKS, runs each in a worker, and shuts down cleanly.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

use crate::clock::now_ms;
use crate::config::Config;
use crate::events::{Event, EventBus, EventKind};
use crate::intake::{self};
use crate::runner::changes::Snapshot;
use crate::runner::claude::ClaudeAgent;
use crate::runner::{Agent, RunOutcome};
use crate::scheduler::finalize::{self, finalize, RunEnd};
use crate::scheduler::resume;
use crate::store::{ChangeToken, NextClaim, Repeats, Store, StoreError, TaskRecord, TaskState};
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
pub(super) const FIRST_PROGRESS_AFTER: Duration = Duration::from_millis(100);
/// A working folder outside git with at most this many entries is snapshotted on the task's
/// own thread (a blocking-pool trip costs more than the walk); larger ones on a blocking thread.
pub(super) const SMALL_FOLDER_ENTRIES: usize = 256;

/// Starts the daemon in the workspace at `root` and runs it until SIGINT/SIGTERM.
/// Returns the process exit code (0 clean stop, 1 failure, 2 configuration/usage error).
pub fn run(
    root: &Path,
    flags: &[(String, String)],
    console: crate::events::console::ConsoleOptions,
) -> i32 {
    run_agent(root, flags, console, |cfg| {
        Arc::new(ClaudeAgent::new(cfg.claude_bin.clone()))
    })
}

/// [`run`] with the given agent instead of Claude Code (CLAUDE_BIN is then not used).
pub fn run_with_agent(root: &Path, flags: &[(String, String)], agent: Arc<dyn Agent>) -> i32 {
    run_agent(root, flags, Default::default(), move |_| agent)
}

fn run_agent(
    root: &Path,
    flags: &[(String, String)],
    console: crate::events::console::ConsoleOptions,
    make_agent: impl FnOnce(&Config) -> Arc<dyn Agent>,
) -> i32 {
    let cfg = match Config::load(root, flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
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
    let store = match crate::store::open_as(&cfg.database_url, &ws, &crate::store::Opener::of(&cfg))
    {
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
    let mediator = Arc::new(rt.block_on(crate::mediate::service::Mediator::start(&cfg)));
    eprintln!("orca: LLM mediation: {}", mediator.line());
    tracing::info!("LLM mediation: {}", mediator.line());
    // The console (stderr) prints what happens from `daemon_started` on; dropped after the
    // daemon, it prints what is left.
    let _console = crate::events::console::start(&events, console);
    // In a fleet, the events are copied to the shared store too (`tail-events` anywhere).
    let _fleet_events = crate::events::shared::start(&events, Arc::clone(&store));
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
        node: Default::default(),
        mediator,
        telegram: std::sync::OnceLock::new(),
        ws,
    });
    // Whatever an agent starts and detaches is re-parented here, to be ended with its
    // attempt (runner::escape).
    if let Err(e) = crate::runner::escape::become_subreaper() {
        tracing::warn!("cannot become the subreaper of the agents' processes: {e}; a process an agent detaches may outlive its attempt");
    }
    rt.block_on(daemon.main())
}

pub(super) struct RunningTask {
    pub(super) cancel: watch::Sender<bool>,
}

pub(super) struct Daemon {
    pub(super) cfg: RwLock<Arc<Config>>,
    pub(super) flags: Vec<(String, String)>,
    pub(super) ws: Workspace,
    pub(super) store: Arc<dyn Store>,
    pub(super) events: EventBus,
    pub(super) agent: RwLock<Arc<dyn Agent>>,
    pub(super) running: Mutex<HashMap<String, RunningTask>>,
    pub(super) shutting_down: AtomicBool,
    /// The working folder as it was before a task's first attempt in this daemon, kept
    /// across retries so `changed_files` covers every attempt.
    pub(super) snapshots: Mutex<HashMap<String, Snapshot>>,
    /// When the earliest backed-off task may run, as last read from the store; re-read only
    /// after a requeue here, a change by another process, or when that time has come.
    pub(super) next_wake: Mutex<Option<i64>>,
    pub(super) next_wake_stale: AtomicBool,
    /// A worker's finish claimed a task since the last tick. Such a task is registered as
    /// running on the worker's thread, so a store check on the main loop may have looked
    /// just before; the next tick looks again (a cancel made meanwhile is not missed).
    pub(super) claimed_by_workers: AtomicBool,
    /// Orca's own folders, left out of `changed_files` (see [`orca_folders`]).
    pub(super) own_folders: Arc<[std::path::PathBuf]>,
    /// Its place in a fleet (a shared store only).
    pub(super) node: super::fleet::NodeState,
    /// LLM mediation (routing, summaries), or the rules (see [`super::mediation`]).
    pub(super) mediator: Arc<crate::mediate::service::Mediator>,
    /// The Telegram bot, when TELEGRAM_BOT_TOKEN is set (reloads reach it; the stop drains it).
    pub(super) telegram: std::sync::OnceLock<crate::telegram::Handle>,
}

fn config_stamp(ws: &Workspace) -> Vec<Option<SystemTime>> {
    [ws.env_file(), ws.config_file()]
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

impl Daemon {
    /// The configuration in force (shared, not copied: callers on the task path take it
    /// several times per task).
    pub(super) fn cfg(&self) -> Arc<Config> {
        match self.cfg.read() {
            Ok(c) => Arc::clone(&c),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// The agent in force (replaced on a reload that changes it).
    pub(super) fn current_agent(&self) -> Arc<dyn Agent> {
        match self.agent.read() {
            Ok(a) => Arc::clone(&a),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    pub(super) fn is_running(&self, id: &str) -> bool {
        self.running.lock().is_ok_and(|m| m.contains_key(id)) || self.mediator.is_busy(id)
    }

    fn running_count(&self) -> usize {
        self.running.lock().map(|m| m.len()).unwrap_or(0)
    }

    async fn main(self: Arc<Self>) -> i32 {
        let cfg = self.cfg();
        // Before `daemon_started`: a config file changed once the start is logged is a
        // change the tick sees.
        let mut stamp = config_stamp(&self.ws);
        self.events.publish(Event::daemon(EventKind::DaemonStarted {
            max_concurrent_tasks: cfg.max_concurrent_tasks,
            node: cfg.node_id.clone(),
            pid: std::process::id(),
            root: self.ws.root.display().to_string(),
            version: crate::VERSION.to_owned(),
        }));
        tracing::info!(root = %self.ws.root.display(), pid = std::process::id(), "orca daemon started");
        // Store calls block (PostgreSQL's client must not run on a runtime thread).
        use tokio::task::block_in_place as block;
        block(|| {
            // In the log at once, not when the log thread next writes (a start cut off just
            // after it still counts as one).
            self.events.flush();
            self.publish_settings(&cfg);
            self.start_mediation();
        });
        // The Telegram bot, when TELEGRAM_BOT_TOKEN is set (it ends with the runtime).
        if let Some(bot) = crate::telegram::start(
            Arc::clone(&cfg),
            self.current_agent(),
            self.ws.clone(),
            Arc::clone(&self.store),
            self.events.clone(),
        ) {
            let _ = self.telegram.set(bot);
        }

        // Start-up repair: runs cut off by a crash go back to the queue (their agents, if
        // they outlived the crash, are stopped first); finished tasks whose artifacts or
        // archive move were cut off are completed.
        // In a fleet, only this node's own runs: the others' are theirs (or their leases run
        // out).
        block(|| self.fleet_register());
        let mine = |r: &TaskRecord| {
            self.store.fleet().is_none() || r.lease_owner.as_deref() == Some(cfg.node_id.as_str())
        };
        let running = block(|| {
            self.store
                .list(Some(TaskState::Running))
                .unwrap_or_default()
        });
        stop_orphaned_agents(running.into_iter().filter(mine).collect()).await;
        let recovered = block(|| match self.store.fleet() {
            Some(f) => f.recover_own(),
            None => self.store.recover_worker(None),
        });
        match recovered {
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
        block(|| self.finalize_pending());

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
        let mut last_version = block(|| self.store.changes().unwrap_or_default());
        // Another node's change (a new task, a cancel) wakes the loop at once, when the
        // store can say so; the tick stays behind it as the safety poll.
        let change_signal = self.store.change_signal();
        let changed = || async {
            match &change_signal {
                Some(n) => n.notified().await,
                None => std::future::pending().await,
            }
        };
        let mut last_pending_retry = Instant::now();
        // Set when the database was deleted or replaced under the daemon: it stops (exit 1).
        let mut gone: Option<StoreError> = None;

        // Store calls and file reads of the main loop run in block_in_place: the runtime
        // hands its other tasks (workers, intake) to another thread meanwhile.
        loop {
            tokio::task::block_in_place(|| self.dispatch(&done_tx));
            let backoff_wake = tokio::task::block_in_place(|| self.backoff_sleep());
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
                    let is_running = |id: &str| self.is_running(id);
                    let route = |new, path: &Path| self.route_new(new, path, &done_tx);
                    let cfg = self.cfg();
                    let ingest = crate::intake::ingest::Ingest {
                        cfg: &cfg,
                        ws: &self.ws,
                        store: self.store.as_ref(),
                        events: &self.events,
                        is_running: &is_running,
                        route: &route,
                    };
                    tokio::task::block_in_place(|| ingest.take(&intake, batch));
                }
                Some(()) = done_rx.recv() => {}
                _ = backoff_wake => self.next_wake_stale.store(true, Ordering::SeqCst),
                _ = recv_signal(&mut sigint) => break,
                _ = recv_signal(&mut sigterm) => break,
                _ = recv_signal(&mut sighup) => tokio::task::block_in_place(|| self.reload("SIGHUP")),
                _ = recv_signal(&mut sigusr1) => {
                    match tokio::task::block_in_place(|| self.check_store(last_version, Check::Full)) {
                        Ok(v) => last_version = v,
                        Err(e) => { gone = Some(e); break; }
                    }
                }
                _ = changed() => {
                    match tokio::task::block_in_place(|| self.check_store(last_version, Check::IfChanged)) {
                        Ok(v) => last_version = v,
                        Err(e) => { gone = Some(e); break; }
                    }
                }
                _ = tick.tick() => {
                    let ticked = tokio::task::block_in_place(|| self.on_tick(&mut last_version, &mut last_pending_retry, &mut stamp));
                    if let Err(e) = ticked { gone = Some(e); break; }
                }
            }
        }
        drop(intake);
        if let Some(e) = &gone {
            eprintln!("error: {e}");
            tracing::error!("{e}");
        }
        self.shutdown(&mut done_rx, &mut sigint, &mut sigterm).await;
        if gone.is_some() {
            1
        } else {
            0
        }
    }

    /// A tick's work: finalize marks, a look at the store (cancels, other processes' writes),
    /// unfinished artifacts, lease renewal, the config files. `Err` when the database is gone.
    fn on_tick(
        &self,
        last_version: &mut ChangeToken,
        last_pending_retry: &mut Instant,
        stamp: &mut Vec<Option<SystemTime>>,
    ) -> Result<(), StoreError> {
        if let Err(e) = self.store.flush() {
            static FLUSH_ERRORS: Repeats = Repeats::new();
            if let Some(more) = FLUSH_ERRORS.admit(&e.to_string()) {
                tracing::error!(
                    "cannot record finished tasks as finalized (will try again): {e}{more}"
                );
            }
        }
        let check = if self.claimed_by_workers.swap(false, Ordering::SeqCst) {
            Check::Cancels
        } else {
            Check::IfChanged
        };
        *last_version = self.check_store(*last_version, check)?;
        self.retry_pending_periodically(last_pending_retry);
        self.heartbeat();
        self.fleet_tick();
        let now_stamp = config_stamp(&self.ws);
        if now_stamp != *stamp {
            *stamp = now_stamp;
            self.reload("configuration file changed");
        }
        Ok(())
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
    pub(super) fn finalize_run(&self, rec: &TaskRecord, end: RunEnd<'_>) {
        // A task from another node's tasks/: that node writes its artifacts.
        let mut end = Some(end);
        if self.hand_over(rec, &mut end) {
            return;
        }
        let Some(end) = end else { return };
        if self.judge_later(rec, &end) {
            return;
        }
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
        // One look for all of them (one query on PostgreSQL, not one per running task).
        let asked: Vec<&str> = ids.iter().map(|(id, _)| id.as_str()).collect();
        let requested = self.store.cancels_requested(&asked).unwrap_or_default();
        for (id, cancel) in &ids {
            if requested.contains(id) && !*cancel.borrow() {
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
            let beat = self.store.heartbeat(&id, &cfg.node_id, lease, now_ms());
            if matches!(beat, Ok(false)) && self.store.fleet().is_some() {
                self.stop_lost_lease(&id);
            }
            if let Err(e) = beat {
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
                    let later = cur.restart_required_changes(&new);
                    if !later.is_empty() {
                        tracing::warn!(?later, "changed settings that take effect only when `orca run` is restarted ({why})");
                    }
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
                if let Some(bot) = self.telegram.get() {
                    bot.reconfigure(self.cfg(), self.current_agent());
                }
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
        if self.shutting_down.load(Ordering::SeqCst) || !self.fleet_may_claim() {
            return;
        }
        let cfg = self.cfg();
        let lease = cfg.lease_ms();
        let free = cfg
            .max_concurrent_tasks
            .saturating_sub(self.running_count());
        if free == 0 {
            return;
        }
        // The free slots' claims in one batch (one transaction on PostgreSQL).
        let recs =
            match self
                .store
                .claim_many(&cfg.node_id, &cfg.node_labels, free, lease, now_ms())
            {
                Ok(recs) => recs,
                Err(e) => {
                    static CLAIM_ERRORS: Repeats = Repeats::new();
                    if let Some(more) = CLAIM_ERRORS.admit(&e.to_string()) {
                        tracing::error!("cannot claim a task: {e}{more}");
                    }
                    return;
                }
            };
        for rec in recs {
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
                        let released = tokio::task::block_in_place(|| {
                            me.store.release(&id, &node, "daemon stopped")
                        });
                        if let Err(e) = released {
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
    pub(super) fn register(&self, id: &str) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(false);
        if let Ok(mut m) = self.running.lock() {
            m.insert(id.to_owned(), RunningTask { cancel: tx });
        }
        rx
    }

    /// What a worker ending a run asks its finish to claim as well: a next task, unless the
    /// daemon is stopping or more tasks run than MAX_CONCURRENT_TASKS now allows (counting
    /// the one ending).
    pub(super) fn next_claim<'a>(&self, cfg: &'a Config) -> Option<NextClaim<'a>> {
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

    /// Stops intake (already dropped), lets running agents finish within the grace period,
    /// then stops them and leaves their tasks queued for the next start.
    async fn shutdown(
        &self,
        done_rx: &mut mpsc::UnboundedReceiver<()>,
        sigint: &mut Option<tokio::signal::unix::Signal>,
        sigterm: &mut Option<tokio::signal::unix::Signal>,
    ) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let grace = Duration::from_secs(self.cfg().shutdown_grace_sec);
        let running = self.running_count();
        if running > 0 {
            eprintln!(
                "orca: stopping; waiting up to {}s for {running} running task(s) (Ctrl-C again to stop now)",
                grace.as_secs()
            );
            tracing::info!(running, "stopping: waiting for running agents");
        }
        let deadline = Instant::now() + grace;
        let mut now = false;
        while self.running_count() > 0 && Instant::now() < deadline {
            let wait = deadline.saturating_duration_since(Instant::now());
            tokio::select! {
                _ = tokio::time::timeout(wait, done_rx.recv()) => {}
                _ = recv_signal(sigint) => { now = true; break; }
                _ = recv_signal(sigterm) => { now = true; break; }
            }
        }
        let left = self.running_count();
        if left > 0 {
            if now {
                eprintln!(
                    "orca: stopping now: {left} agent(s) stopped; their tasks stay queued for the next start"
                );
                tracing::warn!(
                    left,
                    "stopping now: agents stopped, their tasks stay queued"
                );
            }
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
        self.wait_for_mediation().await;
        if let Some(bot) = self.telegram.get() {
            bot.drain(crate::telegram::DRAIN_WITHIN).await;
        }
        tokio::task::block_in_place(|| {
            if let Err(e) = self.store.flush() {
                tracing::error!(
                    "cannot record finished tasks as finalized (the next start does): {e}"
                );
            }
            self.fleet_leave();
        });
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

//! The operations every front end shares: submit, cancel, retry, list, show, status and
//! clean-tasks, as library functions over the store and the workspace that return typed views.
//! The CLI renders them; a Telegram bot or an HTTP API calls the same functions (DESIGN §11).
//!
//! Task files in `tasks/` that no daemon has taken yet are known here too: `list` and `show`
//! show them as `pending`, `cancel` cancels them ([`pending`]).
//!
//! Not here yet: `ingest` (intake -> store: a read task file becomes a store record) belongs
//! here too; today the daemon's intake does it, and [`ingest::new_task`] is the one piece that
//! is shared already.

pub mod ingest;
pub mod origin;
pub mod pending;
mod submit;
pub mod views;

use std::path::Path;
use std::time::{Duration, Instant};

use crate::clock::now_ms;
use crate::config::Config;
use crate::events::{Event, EventBus, EventKind};
use crate::store::{CancelOutcome, Store, StoreError, TaskRecord, TaskState};
use crate::workspace::Workspace;

pub use submit::{submit, submit_as, SubmitRequest, SubmitSource};
pub use views::*;

/// What every operation works on.
#[derive(Clone, Copy)]
pub struct Ops<'a> {
    pub cfg: &'a Config,
    pub ws: &'a Workspace,
    pub store: &'a dyn Store,
    /// Where events are written (None: not written, e.g. the log cannot be opened).
    pub events: Option<&'a EventBus>,
}

/// Why an operation failed. [`OpsError::exit_code`] maps it to the CLI's exit code.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("no task '{0}' in the store\nhint: `orca list` shows the task ids")]
    NotFound(String),
    #[error("task '{id}' already finished ({state}); nothing to cancel")]
    AlreadyFinished { id: String, state: TaskState },
    /// A request that is wrong as asked (nothing to submit, an invalid id).
    #[error("{0}")]
    Usage(String),
    /// A task file that cannot be read or is not a valid task.
    #[error("{0}")]
    BadTask(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("a daemon (pid {pid}) is running and owns tasks/\nhint: stop it first (Ctrl-C or `kill {pid}`), then clean")]
    DaemonRunning { pid: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Other(String),
}

impl OpsError {
    /// 2 for a usage error, 1 for everything else (DESIGN §7).
    pub fn exit_code(&self) -> i32 {
        match self {
            OpsError::Usage(_) => 2,
            _ => 1,
        }
    }
}

impl Ops<'_> {
    /// The daemon running on the workspace, if any.
    pub fn daemon(&self) -> DaemonView {
        let pid = crate::store::lock::holder(self.ws);
        DaemonView {
            pid,
            running: pid.is_some(),
        }
    }

    /// Why a queued record does not start, when something other than its turn holds it back.
    fn waiting_for(&self, r: &TaskRecord) -> Option<String> {
        if r.state != TaskState::Queued {
            return None;
        }
        if let Some(nodes) = self.live_nodes_if(r) {
            let requires = r
                .task
                .as_ref()
                .map(|t| t.requires.as_slice())
                .unwrap_or(&[]);
            return crate::store::fleet::unroutable_reason(requires, &nodes);
        }
        let missing = missing_labels(r, &self.cfg.node_labels);
        (!missing.is_empty()).then(|| labels_reason(&missing, &self.cfg.node_labels))
    }

    /// The live nodes of a shared store (None on one machine), asked only when `r` requires
    /// labels.
    fn live_nodes_if(&self, r: &TaskRecord) -> Option<Vec<crate::store::NodeRecord>> {
        let f = self.store.fleet()?;
        if r.task.as_ref().is_none_or(|t| t.requires.is_empty()) {
            return Some(Vec::new());
        }
        Some(self.live_nodes(f))
    }

    /// The nodes whose heartbeat is current (none when the store cannot say).
    fn live_nodes(&self, f: &dyn crate::store::Fleet) -> Vec<crate::store::NodeRecord> {
        let since = crate::store::fleet::alive_since_ms(now_ms(), self.cfg.lease_ms());
        f.nodes(Some(since)).unwrap_or_default()
    }

    fn view(&self, r: &TaskRecord) -> TaskView {
        TaskView {
            waiting_for: self.waiting_for(r),
            ..TaskView::of(r)
        }
    }
}

/// The labels `r` requires that `labels` lacks.
fn missing_labels(r: &TaskRecord, labels: &[String]) -> Vec<String> {
    r.task
        .as_ref()
        .map(|t| {
            t.requires
                .iter()
                .filter(|l| !labels.contains(l))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// In a fleet: the required labels of `r` when no live node has them all (those that no
/// live node has at all, or all of them when they are only split over several nodes).
fn fleet_missing(r: &TaskRecord, nodes: &[crate::store::NodeRecord]) -> Vec<String> {
    let requires = r
        .task
        .as_ref()
        .map(|t| t.requires.as_slice())
        .unwrap_or(&[]);
    if crate::store::fleet::unroutable_reason(requires, nodes).is_none() {
        return Vec::new();
    }
    let offered: Vec<String> = nodes.iter().flat_map(|n| n.labels.clone()).collect();
    let missing = missing_labels(r, &offered);
    if missing.is_empty() {
        requires.to_vec()
    } else {
        missing
    }
}

fn labels_reason(missing: &[String], labels: &[String]) -> String {
    let offered = if labels.is_empty() {
        "none".to_string()
    } else {
        labels.join(",")
    };
    format!(
        "requires label(s) {} that no node offers (ORCA_NODE_LABELS here: {offered}); \
         start a daemon with ORCA_NODE_LABELS={}",
        missing.join(","),
        missing.join(",")
    )
}

/// When the task's run started, for elapsed time (falls back to when it was received).
fn started_ms(r: &TaskRecord) -> i64 {
    r.started_at_ms.unwrap_or(r.received_at_ms)
}

/// `status`: components, queue counts, running tasks, files waiting, blocked tasks.
pub fn status(ops: &Ops<'_>) -> Result<StatusView, OpsError> {
    let daemon = ops.daemon();
    // The running daemon's own settings, when it published them (it does at start and on
    // every reload); this shell's otherwise.
    let published = daemon_settings(ops, &daemon);
    let (bin, max_concurrent_tasks, labels, settings_from) = match &published {
        Some(d) => (
            d.claude_bin.clone(),
            d.max_concurrent_tasks,
            d.node_labels.clone(),
            "daemon",
        ),
        None => (
            ops.cfg.claude_bin.clone(),
            ops.cfg.max_concurrent_tasks,
            ops.cfg.node_labels.clone(),
            "this shell",
        ),
    };
    let counts = ops.store.counts()?;
    let running = ops.store.list(Some(TaskState::Running))?;
    let queued = ops.store.list(Some(TaskState::Queued))?;
    let now = now_ms();
    let waiting = pending::count(ops)?;
    let nodes = ops.store.fleet().map(|f| ops.live_nodes(f));
    let blocked = queued
        .iter()
        .filter_map(|r| {
            let missing = match &nodes {
                Some(nodes) => fleet_missing(r, nodes),
                None => missing_labels(r, &labels),
            };
            (!missing.is_empty()).then(|| BlockedView {
                id: r.id.clone(),
                missing,
                requires: r
                    .task
                    .as_ref()
                    .map(|t| t.requires.clone())
                    .unwrap_or_default(),
            })
        })
        .collect();
    Ok(StatusView {
        agent: AgentView { bin },
        settings_from,
        blocked,
        counts,
        daemon,
        max_concurrent_tasks,
        node_labels: labels,
        root: ops.ws.root.display().to_string(),
        running: running
            .iter()
            .map(|r| RunningView {
                elapsed_ms: now - started_ms(r),
                task: ops.view(r),
            })
            .collect(),
        store: match ops.store.fleet() {
            Some(_) => {
                let info = ops.store.describe();
                StoreView {
                    kind: info.kind,
                    path: info.db,
                }
            }
            None => StoreView {
                kind: "sqlite",
                path: ops.ws.db_file().display().to_string(),
            },
        },
        nodes: nodes.unwrap_or_default(),
        task_files_waiting: waiting,
        telegram: daemon
            .running
            .then(|| crate::telegram::status_of(ops.store, ops.ws))
            .flatten(),
        llm: if daemon.running {
            ops.store
                .get_meta(crate::mediate::service::META_KEY)
                .ok()
                .flatten()
        } else {
            None
        },
        version: crate::VERSION,
    })
}

/// The settings the running daemon published, if a daemon runs and they are its own.
fn daemon_settings(ops: &Ops<'_>, daemon: &DaemonView) -> Option<DaemonSettings> {
    let pid = daemon.pid?;
    let doc = ops.store.get_meta(DaemonSettings::KEY).ok()??;
    let settings: DaemonSettings = serde_json::from_value(doc).ok()?;
    (settings.pid == pid).then_some(settings)
}

/// Which tasks `list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFilter {
    All,
    /// Task files not yet taken by a daemon.
    Pending,
    State(TaskState),
}

impl std::str::FromStr for ListFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == PENDING {
            return Ok(ListFilter::Pending);
        }
        s.parse::<TaskState>().map(ListFilter::State).map_err(|_| {
            let all: Vec<String> = TaskState::ALL.iter().map(|s| s.to_string()).collect();
            format!(
                "unknown state '{s}': expected one of {}, {PENDING}",
                all.join(", ")
            )
        })
    }
}

/// `list`: the store's tasks by arrival, then the task files still pending in `tasks/`.
pub fn list(ops: &Ops<'_>, filter: ListFilter) -> Result<Vec<TaskView>, OpsError> {
    let mut views: Vec<TaskView> = match filter {
        ListFilter::Pending => Vec::new(),
        ListFilter::All => ops.store.list(None)?.iter().map(|r| ops.view(r)).collect(),
        ListFilter::State(s) => ops
            .store
            .list(Some(s))?
            .iter()
            .map(|r| ops.view(r))
            .collect(),
    };
    if matches!(filter, ListFilter::All | ListFilter::Pending) {
        views.extend(pending::list(ops)?.into_iter().map(|p| p.view));
    }
    Ok(views)
}

/// `show`: one task by id (a pending task file by its id or stem).
pub fn show(ops: &Ops<'_>, id: &str) -> Result<ShowView, OpsError> {
    let Some(rec) = ops.store.get(id)? else {
        let Some(p) = pending::find(ops, id)? else {
            return Err(OpsError::NotFound(id.to_string()));
        };
        return Ok(ShowView {
            attempt_history: Vec::new(),
            last_events: Vec::new(),
            result_file: None,
            task: p.view,
        });
    };
    let attempts = ops.store.attempts(id)?;
    let last_events =
        crate::events::read_events(&ops.ws.events_file(), Some(id), Some(10)).unwrap_or_default();
    let result_file = ops
        .ws
        .result_file(&rec.stem)
        .is_file()
        .then(|| format!("results/{}_result.json", rec.stem));
    Ok(ShowView {
        attempt_history: attempts.iter().map(AttemptView::of).collect(),
        last_events,
        result_file,
        task: ops.view(&rec),
    })
}

/// Wakes a running daemon so it acts on a change at once (it would notice within a tick anyway).
/// None when no daemon runs (this process holding the lock, in [`cancel_pending`], is none).
fn poke_daemon(ws: &Workspace) -> Option<u32> {
    let pid = crate::store::lock::holder(ws).filter(|p| *p != std::process::id())?;
    if let Ok(p) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGUSR1,
        );
    }
    Some(pid)
}

/// How long `cancel` waits for a running daemon to take a pending task file into the store.
const PENDING_TAKE_WAIT: Duration = Duration::from_secs(10);

/// `cancel`: a queued task never starts (its result is written at once when no daemon runs);
/// a running one is stopped by the daemon; a task file still pending in `tasks/` is cancelled
/// like a queued task.
pub fn cancel(ops: &Ops<'_>, id: &str) -> Result<CancelView, OpsError> {
    if ops.store.get(id)?.is_none() {
        if let Some(p) = pending::find(ops, id)? {
            return cancel_pending(ops, &p);
        }
    }
    cancel_in_store(ops, id)
}

fn cancel_in_store(ops: &Ops<'_>, id: &str) -> Result<CancelView, OpsError> {
    let outcome = ops.store.request_cancel(id, now_ms())?;
    let events = ops.events;
    match outcome {
        CancelOutcome::Cancelled => {
            if let Some(ev) = &events {
                ev.publish(Event::task(
                    id,
                    EventKind::CancelRequested {
                        by: "cli".into(),
                        while_: "queued".into(),
                    },
                ));
            }
            let mut note = None;
            match poke_daemon(ops.ws) {
                Some(_) => {}
                None => {
                    // No daemon: write the result and archive the file now.
                    if let (Some(ev), Ok(Some(rec))) = (&events, ops.store.get(id)) {
                        ev.publish(Event::task(id, EventKind::cancelled("queued")));
                        if let Err(e) = crate::scheduler::finalize::finalize(
                            ops.ws, ops.store, ev, &rec, None, None,
                        ) {
                            note = Some(format!(
                                "the task is cancelled but its result could not be written yet: {e}"
                            ));
                        }
                    }
                }
            }
            Ok(CancelView::Cancelled {
                id: id.to_string(),
                note,
            })
        }
        CancelOutcome::Requested => {
            if let Some(ev) = &events {
                ev.publish(Event::task(
                    id,
                    EventKind::CancelRequested {
                        by: "cli".into(),
                        while_: "running".into(),
                    },
                ));
            }
            poke_daemon(ops.ws);
            Ok(CancelView::Requested { id: id.to_string() })
        }
        CancelOutcome::AlreadyFinished(s) => Err(OpsError::AlreadyFinished {
            id: id.to_string(),
            state: s,
        }),
        CancelOutcome::NotFound => Err(OpsError::NotFound(id.to_string())),
    }
}

/// Cancels a task file that no daemon has taken yet. With a daemon running, it takes the
/// file within moments: wait for its record, then cancel that. Without one, hold the
/// workspace lock (so no daemon starts meanwhile), record the task, cancel it and write its
/// result, exactly as a daemon would have.
fn cancel_pending(ops: &Ops<'_>, p: &pending::Pending) -> Result<CancelView, OpsError> {
    let lock = match crate::store::lock::acquire(ops.ws) {
        Ok(lock) => Some(lock),
        Err(crate::store::LockError::Held { .. }) => None,
        Err(e) => return Err(OpsError::Other(e.to_string())),
    };
    let Some(_lock) = lock else {
        poke_daemon(ops.ws);
        let deadline = Instant::now() + PENDING_TAKE_WAIT;
        loop {
            if let Some(rec) = ops.store.find_open_by_file(&p.view.file)? {
                return cancel_in_store(ops, &rec.id);
            }
            if !p.path.exists() {
                // Taken and already finished, or removed.
                return Err(OpsError::NotFound(p.view.id.clone()));
            }
            if Instant::now() > deadline {
                return Err(OpsError::Other(format!(
                    "the daemon has not taken {} yet; try `orca cancel {}` again in a moment",
                    p.view.file, p.view.id
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // We hold the lock: nobody else takes files from tasks/ now.
    if let Some(rec) = ops.store.find_open_by_file(&p.view.file)? {
        return cancel_in_store(ops, &rec.id);
    }
    let new =
        ingest::new_task(ops.cfg, ops.ws, &p.path, p.view.file.clone(), now_ms()).map_err(|e| {
            OpsError::BadTask(format!(
                "{e}\nhint: this file would be rejected when a daemon takes it; fix or delete it"
            ))
        })?;
    let rec = ops.store.enqueue(new)?;
    cancel_in_store(ops, &rec.id)
}

/// `retry`: a finished task runs again as a new attempt.
pub fn retry(ops: &Ops<'_>, id: &str) -> Result<RetryView, OpsError> {
    let rec = match ops.store.retry(id, now_ms()) {
        Ok(rec) => rec,
        Err(StoreError::NotFound(_)) => return Err(OpsError::NotFound(id.to_string())),
        Err(e) => return Err(e.into()),
    };
    if let Some(ev) = ops.events {
        ev.publish(Event::task(
            id,
            EventKind::Queued {
                by: Some("cli".into()),
                priority: rec.priority.as_str().to_owned(),
                retry: Some(true),
                seq: None,
            },
        ));
    }
    let pid = poke_daemon(ops.ws);
    Ok(RetryView {
        daemon: DaemonView {
            pid,
            running: pid.is_some(),
        },
        id: id.to_string(),
        next_attempt: rec.attempts + 1,
    })
}

/// `clean tasks`: task files whose task the store shows as finished are finalized (result
/// written if it was not, file archived to `tasks/processed/`); every other task file stays.
/// Refused while a daemon runs (it owns `tasks/`).
pub fn clean_tasks(ops: &Ops<'_>) -> Result<CleanTasksView, OpsError> {
    if let Some(pid) = crate::store::lock::holder(ops.ws) {
        return Err(OpsError::DaemonRunning { pid });
    }
    let mut view = CleanTasksView {
        archived: Vec::new(),
        kept: Vec::new(),
    };
    for name in pending::task_file_names(ops.ws)? {
        let rel = format!("tasks/{name}");
        let from = ops.ws.tasks().join(&name);
        match ops.store.find_open_by_file(&rel)? {
            Some(rec) if rec.state.is_final() => {
                let Some(ev) = ops.events else {
                    return Err(OpsError::Other(format!(
                        "cannot open {}; nothing was archived",
                        ops.ws.events_file().display()
                    )));
                };
                crate::scheduler::finalize::finalize(ops.ws, ops.store, ev, &rec, None, None)
                    .map_err(|e| OpsError::Other(format!("cannot archive {rel}: {e}")))?;
                let to = ops
                    .store
                    .get(&rec.id)?
                    .and_then(|r| r.archived_to)
                    .unwrap_or_default();
                if !from.exists() {
                    view.archived.push((rel, to));
                } else {
                    view.kept.push(rel);
                }
            }
            _ => view.kept.push(rel),
        }
    }
    Ok(view)
}

/// The folder holds a workspace: `tasks/` or `.orca/` exists. Read-only commands refuse to
/// work (and create nothing) elsewhere.
pub fn is_workspace(root: &Path) -> bool {
    let ws = Workspace::new(root);
    ws.tasks().is_dir() || ws.state_dir().is_dir()
}

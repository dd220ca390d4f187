//! The typed views the operations return. Their JSON is the stable `--json` output of the
//! CLI (DESIGN §7): fields are declared in alphabetical order, the order the earlier
//! `json!` maps printed them in, so the bytes did not change.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::artifacts::result::SourceKind;
use crate::clock::rfc3339_ms;
use crate::store::{AttemptRecord, TaskRecord};

/// The state a front end shows: the store's states, and `pending` for a task file in
/// `tasks/` that no daemon has taken into the store yet.
pub const PENDING: &str = "pending";

/// One task, as `list`, `show` and `status` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskView {
    pub archived_to: Option<String>,
    pub attempts: u32,
    pub cancel_requested: bool,
    pub error: Option<Value>,
    pub file: String,
    pub finished_at: Option<String>,
    pub id: String,
    pub max_retries: u32,
    pub priority: &'static str,
    pub progress: Option<Value>,
    pub received_at: String,
    pub session_id: Option<String>,
    pub source: SourceKind,
    pub started_at: Option<String>,
    /// A store state (`queued`, ...) or [`PENDING`].
    pub state: String,
    pub stem: String,
    pub title: Option<String>,
    #[serde(rename = "type")]
    pub task_type: Option<&'static str>,
    /// Why a queued task does not start (e.g. labels no node offers); absent when nothing
    /// holds it back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// The task file was parsed (false for a rejected or unreadable one).
    #[serde(skip)]
    pub parsed: bool,
}

impl TaskView {
    /// The view of a store record.
    pub fn of(r: &TaskRecord) -> TaskView {
        TaskView {
            archived_to: r.archived_to.clone(),
            attempts: r.attempts,
            cancel_requested: r.cancel_requested,
            error: r.error.clone(),
            file: r.file.clone(),
            finished_at: r.finished_at_ms.map(rfc3339_ms),
            id: r.id.clone(),
            max_retries: r.max_retries,
            priority: r.priority.as_str(),
            progress: r.progress.clone(),
            received_at: rfc3339_ms(r.received_at_ms),
            session_id: r.session_id.clone(),
            source: r.source,
            started_at: r.started_at_ms.map(rfc3339_ms),
            state: r.state.to_string(),
            stem: r.stem.clone(),
            title: r.task.as_ref().and_then(|t| t.title.clone()),
            task_type: r
                .task
                .as_ref()
                .and_then(|t| t.task_type)
                .map(|t| t.as_str()),
            waiting_for: None,
            parsed: r.task.is_some(),
        }
    }

    pub fn is_pending(&self) -> bool {
        self.state == PENDING
    }
}

/// A running task in `status`: its view and how long it has run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunningView {
    pub elapsed_ms: i64,
    #[serde(flatten)]
    pub task: TaskView,
}

/// One attempt in `show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptView {
    pub attempt: u32,
    pub error: Option<String>,
    pub exit_code: Option<i32>,
    pub finished_at: Option<String>,
    pub outcome: Option<String>,
    pub resumed: bool,
    pub session_id: Option<String>,
    pub started_at: String,
    pub worker: String,
    /// The node that ran it (fleet mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl AttemptView {
    pub fn of(a: &AttemptRecord) -> AttemptView {
        AttemptView {
            attempt: a.attempt,
            error: a.error.clone(),
            exit_code: a.exit_code,
            finished_at: a.finished_at_ms.map(rfc3339_ms),
            outcome: a.outcome.clone(),
            resumed: a.resumed,
            session_id: a.session_id.clone(),
            started_at: rfc3339_ms(a.started_at_ms),
            worker: a.worker.clone(),
            node: a.node.clone(),
        }
    }
}

/// `show`: the task, its attempts, its result file and its last events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShowView {
    pub attempt_history: Vec<AttemptView>,
    pub last_events: Vec<Value>,
    /// `results/<stem>_result.json` when it exists.
    pub result_file: Option<String>,
    #[serde(flatten)]
    pub task: TaskView,
}

impl ShowView {
    /// `summaries/<stem>_summary.txt`, shown with the result.
    pub fn summary_file(&self) -> Option<String> {
        self.result_file
            .as_ref()
            .map(|_| format!("summaries/{}_summary.txt", self.task.stem))
    }
}

/// Whether a daemon runs on the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DaemonView {
    pub pid: Option<u32>,
    pub running: bool,
}

/// The agent `status` names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentView {
    pub bin: String,
}

/// The store `status` names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreView {
    pub kind: &'static str,
    pub path: String,
}

/// A queued task that cannot start because no node offers the labels it requires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockedView {
    pub id: String,
    /// The required labels this node does not have.
    pub missing: Vec<String>,
    pub requires: Vec<String>,
}

/// `status`: components, queue counts, running tasks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusView {
    pub agent: AgentView,
    /// Whose settings the view shows: `daemon` (published by the running daemon) or
    /// `this shell` (no daemon runs, or it published none).
    pub settings_from: &'static str,
    /// Queued tasks that wait for labels no node offers; absent when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocked: Vec<BlockedView>,
    /// State -> count, every store state present.
    pub counts: BTreeMap<String, u64>,
    pub daemon: DaemonView,
    pub max_concurrent_tasks: usize,
    /// This node's labels (ORCA_NODE_LABELS), which `requires` is matched against.
    #[serde(skip)]
    pub node_labels: Vec<String>,
    pub root: String,
    pub running: Vec<RunningView>,
    pub store: StoreView,
    /// Task files in `tasks/` that no daemon has taken yet (shown as `pending`).
    pub task_files_waiting: usize,
    /// The running daemon's Telegram bot (`state`: polling, conflict, unauthorized,
    /// unreachable, error; `detail`; `since`); absent without a bot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telegram: Option<Value>,
    pub version: &'static str,
    /// Fleet mode: the live nodes (id, labels, heartbeat, running); absent on one machine.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<crate::store::NodeRecord>,
    /// The running daemon's LLM mediation: method, model, reason, breaker_open_until_ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm: Option<serde_json::Value>,
}

/// What `cancel` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CancelView {
    /// It was queued (or pending in `tasks/`): cancelled, it never starts.
    Cancelled {
        id: String,
        /// A problem after the cancel (its result could not be written yet).
        note: Option<String>,
    },
    /// It is running: the daemon stops the agent.
    Requested { id: String },
}

/// What `retry` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetryView {
    pub daemon: DaemonView,
    pub id: String,
    /// The attempt number the next run will have.
    pub next_attempt: u32,
}

/// What `submit` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubmitView {
    pub daemon: DaemonView,
    /// The task file written, relative to the root (`tasks/<id>.task.md`).
    pub file: String,
    pub id: String,
}

/// What `clean tasks` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CleanTasksView {
    /// (from, to) of each task file archived.
    pub archived: Vec<(String, String)>,
    /// Task files left in `tasks/` because their task has not finished (or not run).
    pub kept: Vec<String>,
}

/// The settings a running daemon publishes in the store at start and after each reload, so
/// that `status` shows what the daemon uses, not what this shell's environment says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DaemonSettings {
    pub pid: u32,
    pub node: String,
    pub max_concurrent_tasks: usize,
    pub claude_bin: String,
    pub claude_timeout_sec: u64,
    pub claude_max_turns: u32,
    pub claude_model: Option<String>,
    pub node_labels: Vec<String>,
    pub max_retries: u32,
}

impl DaemonSettings {
    /// The store key they are published under.
    pub const KEY: &'static str = "daemon_settings";

    pub fn of(cfg: &crate::config::Config) -> DaemonSettings {
        DaemonSettings {
            pid: std::process::id(),
            node: cfg.node_id.clone(),
            max_concurrent_tasks: cfg.max_concurrent_tasks,
            claude_bin: cfg.claude_bin.clone(),
            claude_timeout_sec: cfg.claude_timeout_sec,
            claude_max_turns: cfg.claude_max_turns,
            claude_model: cfg.claude_model.clone(),
            node_labels: cfg.node_labels.clone(),
            max_retries: cfg.max_retries,
        }
    }
}

//! Agents: the [`Agent`] trait the daemon drives, the attempt's request and typed outcome,
//! generic supervision of an agent process ([`supervise`], [`spawn`], [`process`],
//! [`escape`]) and Claude Code as the first agent ([`claude`], its stream in [`stream`]).

pub mod agent_env;
pub mod changes;
pub mod claude;
#[cfg(target_os = "linux")]
pub mod escape;
#[cfg(target_os = "linux")]
pub mod process;
pub mod prompt;
#[cfg(target_os = "linux")]
pub mod spawn;
pub mod stream;
pub mod supervise;
pub mod workdir;

use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;

pub use claude::ClaudeAgent;
pub use prompt::build_prompt;

/// A boxed, sendable future (what [`Agent`] methods return, so the trait is object safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A coding agent Orca can run (Claude Code now; Codex CLI and Gemini CLI can follow).
pub trait Agent: Send + Sync {
    /// Short name written into results (`agent.name`), e.g. `claude`.
    fn name(&self) -> &str;
    /// Runs one attempt to its end. Turning `cancel` to true stops the agent (and every
    /// process it started) within about a second; `progress` gets live updates.
    fn run(
        &self,
        req: RunRequest,
        cancel: tokio::sync::watch::Receiver<bool>,
        progress: ProgressSender,
    ) -> BoxFuture<'_, RunOutcome>;
    /// The agent's version (`None` when it cannot be found out); cached after the first call.
    fn version(&self) -> BoxFuture<'_, Option<String>>;
    /// Whether this agent can resume `session_id`, a session of an earlier attempt in `cwd`,
    /// given the attempt's extra environment `env` (e.g. the CLI still keeps its
    /// transcript). `Err` says why not, for the log; the attempt then starts afresh.
    fn can_resume(
        &self,
        session_id: &str,
        cwd: &Path,
        env: &[(String, String)],
    ) -> Result<(), String> {
        let _ = (session_id, cwd, env);
        Err(format!("the agent {} cannot resume sessions", self.name()))
    }
    /// The agent to use from now on after the configuration was reloaded as `cfg` (e.g. a
    /// new CLAUDE_BIN); `None` keeps this one.
    fn reconfigured(&self, cfg: &Config) -> Option<Arc<dyn Agent>> {
        let _ = cfg;
        None
    }
}

/// Everything one attempt needs.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub task_id: String,
    pub attempt: u32,
    /// The full prompt of DESIGN §4 (built by `runner::prompt`).
    pub prompt: String,
    /// The agent's cwd (already checked against the allowed root), as recorded.
    pub working_dir: PathBuf,
    /// `working_dir` opened beneath the allowed root: the agent starts in this very folder
    /// (None: `working_dir` is opened at the start).
    pub working_dir_fd: Option<Arc<OwnedFd>>,
    pub timeout: Duration,
    pub max_turns: Option<u32>,
    pub model: Option<String>,
    pub skip_permissions: bool,
    /// `--resume <session>` for this attempt.
    pub resume_session: Option<String>,
    /// Where the raw stdout stream is saved (logs/runs/<id>.<attempt>.ndjson).
    pub raw_log: PathBuf,
    /// Extra environment for the agent (e.g. IS_SANDBOX=1).
    pub env: Vec<(String, String)>,
    /// Variables of Orca's environment the agent does not get (Orca's own secrets).
    pub remove_env: Vec<String>,
}

/// Where an agent sends its progress. Boxed: a channel allocates its slots 32 at a time,
/// and 32 whole reports made each run's first send a 5 KiB allocation.
pub type ProgressSender = tokio::sync::mpsc::UnboundedSender<Box<Progress>>;

/// Live progress, sent as stream lines arrive.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Progress {
    pub session_id: Option<String>,
    pub turns: u32,
    pub last_tool: Option<String>,
    pub last_tool_target: Option<String>,
    pub cost_usd: Option<f64>,
    pub model: Option<String>,
    pub pid: Option<u32>,
}

/// How an attempt ended: each agent classifies its own end into these kinds, so that
/// the scheduler's policy matches on the kind, never on text.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The agent finished and reported success.
    Succeeded,
    /// The agent used all the turns it was given (`--max-turns`): no retry.
    MaxTurns {
        /// Turns taken, when the agent said.
        turns: Option<u32>,
        /// What the agent said about it.
        detail: String,
    },
    /// A failure of the task itself (the agent or the API refused or reported an error):
    /// no retry.
    TaskFailed {
        reason: String,
    },
    /// A transient failure (crash, API 5xx/529, no result line): retried with backoff.
    Transient {
        reason: String,
    },
    /// Authentication problem (401, not logged in): no retry, with a hint.
    AuthFailed {
        reason: String,
    },
    TimedOut,
    Cancelled,
    /// The agent binary could not be started.
    SpawnFailed {
        reason: String,
    },
}

impl Outcome {
    /// The attempt's end as `claude_finished` and `fix_round` name it (before the policy's
    /// decision: a `transient` one may still be retried).
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::TaskFailed { .. } | Outcome::MaxTurns { .. } => "failed",
            Outcome::Transient { .. } => "transient",
            Outcome::AuthFailed { .. } => "auth_failed",
            Outcome::TimedOut => "timed_out",
            Outcome::Cancelled => "cancelled",
            Outcome::SpawnFailed { .. } => "spawn_failed",
        }
    }
}

/// The data of a finished attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// The agent's [`Agent::name`] (the result's `agent.name`).
    pub agent: String,
    pub outcome: Outcome,
    pub exit_code: Option<i32>,
    /// The final result text.
    pub output: Option<String>,
    pub session_id: Option<String>,
    pub num_turns: Option<u32>,
    pub cost_usd: Option<f64>,
    pub usage: Option<serde_json::Value>,
    pub model: Option<String>,
    pub agent_version: Option<String>,
    pub stderr_tail: String,
}

impl RunOutcome {
    /// The outcome of `agent`'s attempt with nothing else known yet (no exit, no output).
    pub fn bare(agent: &str, outcome: Outcome) -> RunOutcome {
        RunOutcome {
            agent: agent.to_owned(),
            outcome,
            exit_code: None,
            output: None,
            session_id: None,
            num_turns: None,
            cost_usd: None,
            usage: None,
            model: None,
            agent_version: None,
            stderr_tail: String::new(),
        }
    }
}

//! Claude Code as an [`Agent`]: its argument vector and environment, its stream-json
//! (parsed by [`crate::runner::stream`] into [`state::StreamState`]), its outcomes
//! ([`classify`]) and its sessions ([`resume`]). Supervision is [`crate::runner::supervise`].

pub mod classify;
pub mod resume;
pub mod state;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, OnceCell};

use super::supervise::{self, Ended, Spec};
use super::{Agent, BoxFuture, Outcome, ProgressSender, RunOutcome, RunRequest};
use crate::config::Config;
pub use classify::classify;
use state::StreamState;

/// Time between SIGTERM and SIGKILL when an attempt times out (DESIGN §3).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// Time between SIGTERM and SIGKILL on cancel (`orca cancel` promises about a second).
pub const DEFAULT_CANCEL_GRACE: Duration = Duration::from_secs(1);
pub use supervise::STDERR_TAIL_BYTES;
/// Longest wait for `claude --version`.
const VERSION_TIMEOUT: Duration = Duration::from_secs(15);
/// Most of `claude --version`'s output that is read (a real one prints ~25 bytes); more
/// and the answer is refused.
pub const VERSION_MAX_BYTES: usize = 4096;

/// Runs the Claude Code CLI headless.
#[derive(Debug)]
pub struct ClaudeAgent {
    bin: String,
    grace: Duration,
    cancel_grace: Duration,
    version: OnceCell<Option<String>>,
}

impl ClaudeAgent {
    /// An agent that starts `bin` (a name on PATH or a path).
    pub fn new(bin: impl Into<String>) -> ClaudeAgent {
        ClaudeAgent {
            bin: bin.into(),
            grace: DEFAULT_GRACE,
            cancel_grace: DEFAULT_CANCEL_GRACE,
            version: OnceCell::new(),
        }
    }

    /// Sets the time between SIGTERM and SIGKILL on timeout.
    pub fn with_grace(mut self, grace: Duration) -> ClaudeAgent {
        self.grace = grace;
        self
    }

    /// Sets the time between SIGTERM and SIGKILL on cancel.
    pub fn with_cancel_grace(mut self, grace: Duration) -> ClaudeAgent {
        self.cancel_grace = grace;
        self
    }

    /// The binary this agent starts.
    pub fn bin(&self) -> &str {
        &self.bin
    }

    /// The argument vector (the prompt goes on stdin).
    pub fn args(&self, req: &RunRequest) -> Vec<String> {
        let mut args: Vec<String> = ["-p", "--output-format", "stream-json", "--verbose"]
            .into_iter()
            .map(String::from)
            .collect();
        if let Some(n) = req.max_turns.filter(|n| *n > 0) {
            args.push("--max-turns".into());
            args.push(n.to_string());
        }
        if req.skip_permissions {
            args.push("--dangerously-skip-permissions".into());
        }
        if let Some(m) = req
            .model
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
        {
            args.push("--model".into());
            args.push(m.into());
        }
        if let Some(s) = req
            .resume_session
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            args.push("--resume".into());
            args.push(s.into());
        }
        args
    }

    /// `BIN --version` parsed (`2.1.197 (Claude Code)` gives `2.1.197`); asked once, cached.
    /// At most [`VERSION_MAX_BYTES`] of its output are read, within 15 s: an agent that
    /// prints more, or never ends, has no version.
    pub async fn version(&self) -> Option<String> {
        self.version
            .get_or_init(|| async {
                let args = ["--version".to_owned()];
                let out =
                    supervise::output_bounded(&self.bin, &args, VERSION_MAX_BYTES, VERSION_TIMEOUT)
                        .await;
                match out {
                    Some((true, text)) => parse_version(&String::from_utf8_lossy(&text)),
                    _ => None,
                }
            })
            .await
            .clone()
    }

    /// Runs one attempt to its end; see [`Agent::run`].
    pub async fn run(
        &self,
        req: RunRequest,
        cancel: watch::Receiver<bool>,
        progress: ProgressSender,
    ) -> RunOutcome {
        let mut out = RunOutcome::bare(self.name(), Outcome::Cancelled);
        out.agent_version = self.version.get().cloned().flatten();
        if *cancel.borrow() {
            return out;
        }
        static IS_ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let is_root = *IS_ROOT.get_or_init(|| rustix::process::geteuid().is_root());
        let args = self.args(&req);
        let env = agent_env(&req, is_root);
        let mark = supervise::run_mark(&req);
        let spec = Spec {
            program: &self.bin,
            args: &args,
            env: &env,
            remove_env: &req.remove_env,
            cwd: &req.working_dir,
            cwd_fd: req.working_dir_fd.as_deref().map(std::os::fd::AsFd::as_fd),
            prompt: &req.prompt,
            timeout: req.timeout,
            grace: self.grace,
            cancel_grace: self.cancel_grace,
            raw_log: &req.raw_log,
            run_mark: &mark,
        };
        let done = match supervise::supervise(spec, StreamState::default(), cancel, progress).await
        {
            Ok(d) => d,
            Err(e) => {
                out.outcome = classify::spawn_failure(&self.bin, &req.working_dir, &e);
                return out;
            }
        };
        let state = &done.sink;
        if state.garbage_lines + state.too_long_lines > 0 {
            tracing::debug!(
                "agent pid {}: skipped {} non-JSON and {} over-long stdout lines",
                done.pid,
                state.garbage_lines,
                state.too_long_lines
            );
        }
        out.stderr_tail = done.stderr_tail.clone();
        out.exit_code = done.exit_code;
        let result = state.result.as_ref();
        out.output = result
            .and_then(|r| r.result.clone())
            .or_else(|| state.last_text.clone());
        out.session_id = result
            .and_then(|r| r.session_id.clone())
            .or_else(|| state.session_id.clone());
        out.num_turns = result
            .and_then(|r| r.num_turns)
            .or((state.turns() > 0).then(|| state.turns()));
        out.cost_usd = result.and_then(|r| r.total_cost_usd);
        out.usage = result.and_then(|r| r.usage.clone());
        out.model = state.model.clone();
        if state.version.is_some() {
            out.agent_version = state.version.clone();
        }
        out.outcome = match &done.ended {
            Ended::TimedOut(_) => Outcome::TimedOut,
            Ended::Cancelled(_) => Outcome::Cancelled,
            Ended::Exited(Err(e)) => Outcome::Transient {
                reason: format!("could not wait for the agent (pid {}): {e}", done.pid),
            },
            Ended::Exited(Ok(_)) => classify(out.exit_code, result, &out.stderr_tail),
        };
        out
    }
}

impl Agent for ClaudeAgent {
    fn name(&self) -> &str {
        "claude"
    }

    fn run(
        &self,
        req: RunRequest,
        cancel: watch::Receiver<bool>,
        progress: ProgressSender,
    ) -> BoxFuture<'_, RunOutcome> {
        Box::pin(ClaudeAgent::run(self, req, cancel, progress))
    }

    fn version(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(ClaudeAgent::version(self))
    }

    fn can_resume(
        &self,
        session_id: &str,
        cwd: &Path,
        env: &[(String, String)],
    ) -> Result<(), String> {
        let Some(config) = resume::claude_config_dir(env) else {
            return Err("neither HOME nor CLAUDE_CONFIG_DIR is set".into());
        };
        match resume::transcript(&config, cwd, session_id) {
            Some(_) => Ok(()),
            None => Err("the agent no longer has the session; starting afresh".into()),
        }
    }

    fn reconfigured(&self, cfg: &Config) -> Option<Arc<dyn Agent>> {
        (cfg.claude_bin != self.bin)
            .then(|| Arc::new(ClaudeAgent::new(cfg.claude_bin.clone())) as Arc<dyn Agent>)
    }
}

/// The environment an attempt adds to Orca's own: `req.env`, `ORCA_TASK_ID`, `ORCA_ATTEMPT`,
/// and `IS_SANDBOX=1` when permissions are skipped as root (the CLI refuses
/// `--dangerously-skip-permissions` as root otherwise) unless `req.env` sets it.
pub fn agent_env(req: &RunRequest, is_root: bool) -> Vec<(String, String)> {
    let mut env = req.env.clone();
    env.push(("ORCA_TASK_ID".into(), req.task_id.clone()));
    env.push(("ORCA_ATTEMPT".into(), req.attempt.to_string()));
    if req.skip_permissions && is_root && !req.env.iter().any(|(k, _)| k == "IS_SANDBOX") {
        env.push(("IS_SANDBOX".into(), "1".into()));
    }
    env
}

/// Parses `2.1.197 (Claude Code)` into `2.1.197`.
pub fn parse_version(text: &str) -> Option<String> {
    text.lines()
        .flat_map(str::split_whitespace)
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()) && w.contains('.'))
        .map(|w| w.trim_end_matches([',', ';']).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment() {
        let mut req = RunRequest {
            task_id: "t".into(),
            attempt: 3,
            prompt: String::new(),
            working_dir: "/w".into(),
            timeout: Duration::from_secs(1),
            max_turns: None,
            model: None,
            skip_permissions: true,
            resume_session: None,
            raw_log: "/w/log".into(),
            env: vec![("A".into(), "b".into())],
            remove_env: vec![],
            working_dir_fd: None,
        };
        let pairs = |env: Vec<(String, String)>| {
            env.into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            pairs(agent_env(&req, true)),
            "A=b ORCA_TASK_ID=t ORCA_ATTEMPT=3 IS_SANDBOX=1"
        );
        assert_eq!(
            pairs(agent_env(&req, false)),
            "A=b ORCA_TASK_ID=t ORCA_ATTEMPT=3"
        );
        req.env = vec![("IS_SANDBOX".into(), "0".into())];
        assert_eq!(
            pairs(agent_env(&req, true)),
            "IS_SANDBOX=0 ORCA_TASK_ID=t ORCA_ATTEMPT=3"
        );
        req.skip_permissions = false;
        req.env.clear();
        assert_eq!(
            pairs(agent_env(&req, true)),
            "ORCA_TASK_ID=t ORCA_ATTEMPT=3"
        );
    }

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("2.1.197 (Claude Code)\n").as_deref(),
            Some("2.1.197")
        );
        assert_eq!(
            parse_version("0.0.0-fake (Claude Code)").as_deref(),
            Some("0.0.0-fake")
        );
        assert_eq!(parse_version("Claude Code"), None);
    }
}

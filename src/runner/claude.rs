//! Claude Code as an [`Agent`]: argv, environment, spawning in its own process group, live
//! stream-json parsing, timeouts and cancellation that leave no process behind, outcomes.

use std::collections::HashSet;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::process::Command;
use tokio::sync::{oneshot, watch, OnceCell};
use tokio::time::Instant;

use super::process::ProcessTree;
use super::spawn::{self, AgentChild};
use super::stream::{parse_line, read_line_bounded, LineRead, ResultLine, StreamEvent};
use super::{Agent, BoxFuture, Outcome, Progress, ProgressSender, RunOutcome, RunRequest};
use crate::workspace::{in_folder, FolderError};

/// Time between SIGTERM and SIGKILL when an attempt times out (DESIGN §3).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// Time between SIGTERM and SIGKILL on cancel (`orca cancel` promises about a second).
pub const DEFAULT_CANCEL_GRACE: Duration = Duration::from_secs(1);
/// How much of the agent's stderr is kept.
pub const STDERR_TAIL_BYTES: usize = 4096;
/// Longer prompts up to this size are written to the agent's stdin in place once it has
/// started: a Linux pipe normally holds 64 KiB, so the write does not wait for the agent.
const PROMPT_INLINE_BYTES: usize = 16 * 1024;
/// Prompts up to this size are put into the stdin pipe before the agent starts (no async
/// pipe, no writer): a new pipe holds at least one page whatever the system's pipe limits,
/// so the write cannot wait.
const PROMPT_PREFILL_BYTES: usize = 4096;
/// How long to wait for the pipes to close after the agent exited (a process that escaped
/// could hold them open forever).
const DRAIN: Duration = Duration::from_secs(2);
/// Longest wait for `claude --version`.
const VERSION_TIMEOUT: Duration = Duration::from_secs(15);
/// Hint given whenever the binary cannot be started.
const INSTALL_HINT: &str =
    "install Claude Code with `npm install -g @anthropic-ai/claude-code` or set CLAUDE_BIN to the agent's path";
/// Hint given on authentication failures.
const AUTH_HINT: &str = "set ANTHROPIC_API_KEY in the environment or in the workspace .env (or log in once with `claude /login`)";

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
    pub async fn version(&self) -> Option<String> {
        self.version
            .get_or_init(|| async {
                let out = Command::new(&self.bin)
                    .arg("--version")
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .kill_on_drop(true)
                    .output();
                match tokio::time::timeout(VERSION_TIMEOUT, out).await {
                    Ok(Ok(o)) if o.status.success() => {
                        parse_version(&String::from_utf8_lossy(&o.stdout))
                    }
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
        mut cancel: watch::Receiver<bool>,
        progress: ProgressSender,
    ) -> RunOutcome {
        let mut out = RunOutcome {
            outcome: Outcome::Cancelled,
            exit_code: None,
            output: None,
            session_id: None,
            num_turns: None,
            cost_usd: None,
            usage: None,
            model: None,
            agent_version: self.version.get().cloned().flatten(),
            stderr_tail: String::new(),
        };
        if *cancel.borrow_and_update() {
            return out;
        }
        static IS_ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        // SAFETY: geteuid has no preconditions and cannot fail.
        let is_root = *IS_ROOT.get_or_init(|| unsafe { libc::geteuid() } == 0);
        let args = self.args(&req);
        let env = agent_env(&req, is_root);
        let stdin = match prefilled_stdin(&req.prompt) {
            Some(r) => spawn::Stdin::From(r.into()),
            None => spawn::Stdin::Pipe,
        };
        let mut child = match spawn::spawn(spawn::Launch {
            program: &self.bin,
            args: &args,
            env: &env,
            cwd: &req.working_dir,
            stdin,
        }) {
            Ok(c) => c,
            Err(e) => {
                out.outcome = spawn_failure(&self.bin, &req.working_dir, &e);
                return out;
            }
        };
        let pid = child.id();
        let mut reaper = Reaper {
            tree: ProcessTree::new(pid),
            armed: true,
        };

        if let Some(mut stdin) = child.stdin.take() {
            // The agent may exit without reading; a broken pipe is not our failure. A prompt
            // that fits in the new, empty pipe is written at once; a longer one by a task of
            // its own, so that an agent writing before it reads cannot stall this one.
            if req.prompt.len() <= PROMPT_INLINE_BYTES {
                let _ = stdin.write_all(req.prompt.as_bytes()).await;
                let _ = stdin.shutdown().await;
            } else {
                let prompt = req.prompt.clone();
                tokio::spawn(async move {
                    let _ = stdin.write_all(prompt.as_bytes()).await;
                    let _ = stdin.shutdown().await;
                });
            }
        }
        // Both pipes are read by one task (stdout line by line, stderr's tail), until both
        // close or `stop` says the agent is gone and an escaped process holds them open.
        let tail = Arc::new(Mutex::new(Vec::<u8>::new()));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (stop_err_tx, stop_err_rx) = oneshot::channel::<()>();
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let mut output_task = tokio::spawn({
            let (raw_log, progress, tail) =
                (req.raw_log.clone(), progress.clone(), Arc::clone(&tail));
            async move {
                let out = async {
                    match stdout {
                        Some(o) => read_stdout(o, raw_log, progress, pid, stop_rx).await,
                        None => StreamState::default(),
                    }
                };
                let err = async {
                    if let Some(e) = stderr {
                        read_stderr(e, tail, stop_err_rx).await;
                    }
                };
                tokio::join!(out, err).0
            }
        });

        enum Ended {
            Exited(std::io::Result<ExitStatus>),
            Timeout,
            Cancel,
        }
        let deadline = tokio::time::sleep(req.timeout);
        tokio::pin!(deadline);
        let ended = tokio::select! {
            biased;
            s = child.wait() => Ended::Exited(s),
            _ = cancel_requested(&mut cancel) => Ended::Cancel,
            _ = &mut deadline => Ended::Timeout,
        };
        let (status, forced) = match ended {
            Ended::Exited(s) => {
                // Whatever is left in the agent's own group is an orphan of this run.
                reaper.tree.signal_all(Signal::SIGKILL);
                (s, None)
            }
            Ended::Timeout => (
                stop_tree(&mut child, &mut reaper.tree, self.grace).await,
                Some(Outcome::TimedOut),
            ),
            Ended::Cancel => (
                stop_tree(&mut child, &mut reaper.tree, self.cancel_grace).await,
                Some(Outcome::Cancelled),
            ),
        };
        reaper.tree.kill_survivors();
        reaper.armed = false;

        // Drain the pipes: normally they close with the agent; never wait forever.
        let drain_until = Instant::now() + DRAIN;
        let state = match tokio::time::timeout_at(drain_until, &mut output_task).await {
            Ok(r) => r.unwrap_or_default(),
            Err(_) => {
                let _ = stop_tx.send(());
                let _ = stop_err_tx.send(());
                output_task.await.unwrap_or_default()
            }
        };
        out.stderr_tail = {
            let t = tail.lock().unwrap_or_else(|e| e.into_inner());
            String::from_utf8_lossy(&t).into_owned()
        };

        out.exit_code = match &status {
            Ok(s) => exit_code(s),
            Err(_) => None,
        };
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
        out.outcome = match (forced, &status) {
            (Some(o), _) => o,
            (None, Err(e)) => Outcome::Transient {
                reason: format!("could not wait for the agent (pid {pid}): {e}"),
            },
            (None, Ok(_)) => classify(out.exit_code, result, &out.stderr_tail),
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

/// Shell-style exit code: the code, or 128 + the signal that ended the process.
fn exit_code(status: &ExitStatus) -> Option<i32> {
    status.code().or_else(|| status.signal().map(|s| 128 + s))
}

/// What a failed start means for the task: a missing working folder or agent binary fails it
/// (with a hint); running out of descriptors, processes or memory is the machine's state at
/// that moment, not the task's or the agent's fault, so the task is tried again later.
fn spawn_failure(bin: &str, working_dir: &Path, e: &spawn::SpawnError) -> Outcome {
    if e.stage == spawn::Stage::Chdir {
        return Outcome::SpawnFailed {
            reason: format!(
                "the working folder {} does not exist or is not a folder; create it or fix the task's working_dir",
                working_dir.display()
            ),
        };
    }
    let limit = match e.error.raw_os_error() {
        Some(libc::EMFILE) => "Orca's limit on open files is reached: raise it (`ulimit -n`)",
        Some(libc::ENFILE) => "the system's limit on open files is reached",
        Some(libc::EAGAIN) => "the limit on processes is reached: raise it (`ulimit -u`)",
        Some(libc::ENOMEM) => "the machine is out of memory",
        _ => {
            return Outcome::SpawnFailed {
                reason: spawn_error(bin, &e.error),
            }
        }
    };
    Outcome::Transient {
        reason: format!(
            "cannot start the agent '{bin}': {} ({limit}, or lower MAX_CONCURRENT_TASKS)",
            e.error
        ),
    }
}

fn spawn_error(bin: &str, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            format!("the agent binary '{bin}' was not found; {INSTALL_HINT}")
        }
        std::io::ErrorKind::PermissionDenied => format!(
            "the agent binary '{bin}' is not executable ({e}); fix its permissions or {INSTALL_HINT}"
        ),
        _ => format!("cannot start the agent binary '{bin}': {e}; {INSTALL_HINT}"),
    }
}

/// Resolves when `cancel` turns true (never, if its sender is gone).
async fn cancel_requested(cancel: &mut watch::Receiver<bool>) {
    if cancel.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// SIGTERM to the agent's group and every descendant's group; SIGKILL after `grace`.
async fn stop_tree(
    child: &mut AgentChild,
    tree: &mut ProcessTree,
    grace: Duration,
) -> std::io::Result<ExitStatus> {
    tree.refresh();
    tree.signal_all(Signal::SIGTERM);
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(s) => s,
        Err(_) => {
            tree.refresh();
            tree.signal_all(Signal::SIGKILL);
            child.wait().await
        }
    }
}

/// SIGKILLs the agent's whole tree if `run` is dropped half-way (the scheduler gave up).
struct Reaper {
    tree: ProcessTree,
    armed: bool,
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if self.armed {
            self.tree.refresh();
            self.tree.signal_all(Signal::SIGKILL);
        }
    }
}

/// Maps how the agent ended to an [`Outcome`] (research §5/§6: the exit status and
/// `is_error` decide, not the result's subtype).
pub fn classify(exit_code: Option<i32>, result: Option<&ResultLine>, stderr_tail: &str) -> Outcome {
    let code = exit_code.map_or_else(|| "unknown".to_owned(), |c| c.to_string());
    let Some(r) = result else {
        let mut reason = format!("agent exited with code {code} and no result line");
        let err = last_lines(stderr_tail, 5, 600);
        if !err.is_empty() {
            reason.push_str("; stderr: ");
            reason.push_str(&err);
        }
        return Outcome::Transient { reason };
    };
    if !r.is_error {
        return if exit_code == Some(0) {
            Outcome::Succeeded
        } else {
            Outcome::Transient {
                reason: format!(
                    "agent exited with code {code} after reporting success (was it stopped by a signal?)"
                ),
            }
        };
    }
    let text = r
        .result
        .clone()
        .filter(|t| !t.trim().is_empty())
        .or_else(|| (!r.errors.is_empty()).then(|| r.errors.join("; ")));
    if r.subtype == "error_max_turns" || r.terminal_reason.as_deref() == Some("max_turns") {
        let detail = if r.errors.is_empty() {
            text.unwrap_or_else(|| "the agent used all its turns".into())
        } else {
            r.errors.join("; ")
        };
        return Outcome::TaskFailed {
            reason: format!("max turns reached: {detail}"),
        };
    }
    let lower = text.as_deref().unwrap_or("").to_lowercase();
    let auth_words = [
        "not logged in",
        "please run /login",
        "authentication",
        "invalid api key",
        "invalid x-api-key",
        "oauth token",
    ];
    if matches!(r.api_error_status, Some(401 | 403)) || auth_words.iter().any(|w| lower.contains(w))
    {
        return Outcome::AuthFailed {
            reason: format!(
                "authentication failed: {}; {AUTH_HINT}",
                text.unwrap_or_else(|| "API status 401".into())
            ),
        };
    }
    let message = text.clone().unwrap_or_else(|| match r.api_error_status {
        Some(s) => format!("API Error: {s}"),
        None => format!("the agent reported an error (subtype {})", r.subtype),
    });
    match r.api_error_status {
        Some(408 | 409 | 425 | 429) | Some(500..=599) => {
            return Outcome::Transient { reason: message }
        }
        // The API refused the request itself (too long, invalid): retrying cannot help.
        Some(400..=499) => {
            return Outcome::TaskFailed {
                reason: format!("the API rejected the request: {message}"),
            }
        }
        _ => {}
    }
    let transient_words = [
        "api error",
        "request timed out",
        "timed out",
        "unable to connect",
        "connection",
        "econnreset",
        "econnrefused",
        "etimedout",
        "socket hang up",
        "fetch failed",
        "network",
        "overloaded",
        "rate limit",
    ];
    if r.api_error_status.is_some() || transient_words.iter().any(|w| lower.contains(w)) {
        return Outcome::Transient { reason: message };
    }
    Outcome::TaskFailed { reason: message }
}

/// The last `n` non-empty lines of `text`, joined with ` | `, at most `max` chars.
fn last_lines(text: &str, n: usize, max: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let joined = lines[lines.len().saturating_sub(n)..].join(" | ");
    if joined.chars().count() <= max {
        joined
    } else {
        let skip = joined.chars().count() - max;
        format!("...{}", joined.chars().skip(skip).collect::<String>())
    }
}

/// What the stdout stream said so far.
#[derive(Debug, Default)]
struct StreamState {
    session_id: Option<String>,
    model: Option<String>,
    version: Option<String>,
    message_ids: HashSet<String>,
    anonymous_turns: u32,
    last_tool: Option<String>,
    last_tool_target: Option<String>,
    last_text: Option<String>,
    cost_usd: Option<f64>,
    result: Option<ResultLine>,
    garbage_lines: u64,
    too_long_lines: u64,
}

impl StreamState {
    fn turns(&self) -> u32 {
        u32::try_from(self.message_ids.len())
            .unwrap_or(u32::MAX)
            .saturating_add(self.anonymous_turns)
    }

    /// Applies one event; true when progress changed.
    fn apply(&mut self, ev: StreamEvent) -> bool {
        match ev {
            StreamEvent::Init {
                session_id,
                model,
                version,
            } => {
                self.session_id = session_id.or(self.session_id.take());
                self.model = model.or(self.model.take());
                self.version = version.or(self.version.take());
                true
            }
            StreamEvent::Assistant {
                message_id,
                model,
                tool_uses,
                text,
                ..
            } => {
                if model.as_deref() == Some("<synthetic>") {
                    return false;
                }
                match message_id {
                    Some(id) => {
                        self.message_ids.insert(id);
                    }
                    None => self.anonymous_turns = self.anonymous_turns.saturating_add(1),
                }
                if self.model.is_none() {
                    self.model = model;
                }
                if let Some(t) = tool_uses.last() {
                    self.last_tool = Some(t.name.clone());
                    self.last_tool_target = t.target.clone();
                }
                if text.is_some() {
                    self.last_text = text;
                }
                true
            }
            StreamEvent::Result(r) => {
                if r.session_id.is_some() {
                    self.session_id = r.session_id.clone();
                }
                self.cost_usd = r.total_cost_usd.or(self.cost_usd);
                self.result = Some(r);
                true
            }
            StreamEvent::Garbage => {
                self.garbage_lines += 1;
                false
            }
            StreamEvent::User(_) | StreamEvent::ApiRetry { .. } | StreamEvent::Other(_) => false,
        }
    }

    fn progress(&self, pid: u32) -> Progress {
        Progress {
            session_id: self.session_id.clone(),
            turns: self.turns(),
            last_tool: self.last_tool.clone(),
            last_tool_target: self.last_tool_target.clone(),
            cost_usd: self.cost_usd,
            model: self.model.clone(),
            pid: Some(pid),
        }
    }
}

/// The agent's raw log: a buffered std file written in place. Writes land in a 64 KiB buffer
/// and reach the page cache in one short `write(2)` when it fills, so they never need
/// tokio's blocking pool (a thread hand-off per flush costs more than the write itself).
struct RawLog(std::io::BufWriter<std::fs::File>);

impl tokio::io::AsyncWrite for RawLog {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(std::io::Write::write(&mut self.0, buf))
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(std::io::Write::flush(&mut self.0))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// A pipe already holding `prompt` (and closed for writing), for a prompt of at most
/// [`PROMPT_PREFILL_BYTES`]; None for a longer one or when the pipe cannot be made (then
/// the prompt is written after the start, as for a long one).
fn prefilled_stdin(prompt: &str) -> Option<std::io::PipeReader> {
    use std::io::Write as _;
    if prompt.len() > PROMPT_PREFILL_BYTES {
        return None;
    }
    let (reader, mut writer) = std::io::pipe().ok()?;
    writer.write_all(prompt.as_bytes()).ok()?;
    Some(reader)
}

fn open_raw_log(path: &Path) -> Option<RawLog> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    };
    match in_folder(dir, open) {
        Ok(f) => Some(RawLog(std::io::BufWriter::with_capacity(16 * 1024, f))),
        Err(FolderError::Make(e)) => {
            tracing::warn!(
                "cannot create {} for the agent's raw log: {e}",
                dir.display()
            );
            None
        }
        Err(FolderError::Op(e)) => {
            tracing::warn!("cannot open the agent's raw log {}: {e}", path.display());
            None
        }
    }
}

/// A buffered reader of a pipe that reads into the spare room of its buffer: unlike
/// `tokio::io::BufReader`, whose buffer is zeroed when made, nothing is written twice.
struct PipeReader {
    pipe: pipe::Receiver,
    buf: Vec<u8>,
    pos: usize,
    cap: usize,
}

impl PipeReader {
    fn new(pipe: pipe::Receiver, cap: usize) -> PipeReader {
        PipeReader {
            pipe,
            buf: Vec::new(),
            pos: 0,
            cap: cap.max(1),
        }
    }
}

impl tokio::io::AsyncRead for PipeReader {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use tokio::io::AsyncBufRead;
        let this = self.get_mut();
        let avail = std::task::ready!(std::pin::Pin::new(&mut *this).poll_fill_buf(cx))?;
        let n = avail.len().min(out.remaining());
        out.put_slice(&avail[..n]);
        std::pin::Pin::new(this).consume(n);
        std::task::Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncBufRead for PipeReader {
    fn poll_fill_buf(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.pos >= this.buf.len() {
            this.buf.clear();
            this.pos = 0;
            this.buf.reserve(this.cap);
            loop {
                std::task::ready!(this.pipe.poll_read_ready(cx))?;
                match this.pipe.try_read_buf(&mut this.buf) {
                    Ok(_) => break, // 0 bytes: the end
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return std::task::Poll::Ready(Err(e)),
                }
            }
        }
        std::task::Poll::Ready(Ok(&this.buf[this.pos..]))
    }

    fn consume(self: std::pin::Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.pos = (this.pos + amt).min(this.buf.len());
    }
}

/// Reads stdout line by line: raw log, parsing, progress. Ends at EOF or on `stop`.
async fn read_stdout(
    stdout: pipe::Receiver,
    raw_log: std::path::PathBuf,
    progress: ProgressSender,
    pid: u32,
    mut stop: oneshot::Receiver<()>,
) -> StreamState {
    let mut log = open_raw_log(&raw_log);
    // Lines longer than the buffer are still read whole (`read_line_bounded` gathers them);
    // a small buffer keeps each run from zeroing and faulting in 64 KiB.
    let mut reader = PipeReader::new(stdout, 8 * 1024);
    let mut buf = Vec::new();
    let mut st = StreamState::default();
    let mut last_sent = st.progress(pid);
    let _ = progress.send(Box::new(last_sent.clone()));
    loop {
        let read = tokio::select! {
            biased;
            Ok(()) = &mut stop => break,
            r = read_line_bounded(&mut reader, &mut buf, super::stream::MAX_LINE_BYTES, log.as_mut()) => r,
        };
        match read {
            Ok(LineRead::Line) => {}
            Ok(LineRead::TooLong) => {
                st.too_long_lines += 1;
                continue;
            }
            Ok(LineRead::Eof) | Err(_) => break,
        }
        if buf.trim_ascii().is_empty() {
            continue;
        }
        if st.apply(parse_line(&buf)) {
            let p = st.progress(pid);
            if p != last_sent {
                let _ = progress.send(Box::new(p.clone()));
                last_sent = p;
            }
        }
    }
    if let Some(mut l) = log {
        if let Err(e) = l.flush().await {
            tracing::warn!(
                "cannot write the agent's raw log {}: {e}",
                raw_log.display()
            );
        }
    }
    if st.garbage_lines + st.too_long_lines > 0 {
        tracing::debug!(
            "agent pid {pid}: skipped {} non-JSON and {} over-long stdout lines",
            st.garbage_lines,
            st.too_long_lines
        );
    }
    st
}

/// Keeps the last [`STDERR_TAIL_BYTES`] of stderr in `tail`. Ends at EOF or on `stop`.
async fn read_stderr(
    stderr: pipe::Receiver,
    tail: Arc<Mutex<Vec<u8>>>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        let ready = tokio::select! {
            biased;
            Ok(()) = &mut stop => break,
            r = stderr.readable() => r,
        };
        if ready.is_err() {
            break;
        }
        // Read into the stack once there is something (or the end) to read: most agents
        // write nothing to stderr, and a buffer kept per run would be allocated for nothing.
        let mut chunk = [0u8; 4096];
        match stderr.try_read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
                t.extend_from_slice(&chunk[..n]);
                if t.len() > STDERR_TAIL_BYTES {
                    let cut = t.len() - STDERR_TAIL_BYTES;
                    t.drain(..cut);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pipe_reader_gives_whole_lines_across_reads_and_a_long_line_beyond_its_buffer() {
        use std::io::Write as _;
        let (r, mut w) = std::io::pipe().expect("pipe");
        // The checked constructor makes the read end non-blocking itself.
        let rx = pipe::Receiver::from_owned_fd(r.into()).expect("receiver");
        let long = "x".repeat(100);
        let writer = std::thread::spawn(move || {
            for chunk in [
                "first li",
                "ne\nsecond\n",
                &format!("{long}\n"),
                "last, no newline",
            ] {
                w.write_all(chunk.as_bytes()).expect("write");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        // A buffer of 16 bytes: the long line takes several fills.
        let mut reader = PipeReader::new(rx, 16);
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        loop {
            let r = read_line_bounded(&mut reader, &mut buf, 1024, None::<&mut RawLog>)
                .await
                .expect("read");
            if r == LineRead::Eof {
                break;
            }
            lines.push(String::from_utf8_lossy(&buf).into_owned());
        }
        writer.join().expect("writer");
        assert_eq!(
            lines,
            ["first line", "second", &"x".repeat(100), "last, no newline"]
        );
    }

    #[test]
    fn raw_log_folder_is_made_when_missing_and_a_file_in_its_way_is_no_log() {
        use std::io::Write as _;
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("logs/runs/t.1.ndjson");
        let mut log = open_raw_log(&path).expect("opened");
        log.0.write_all(b"line\n").unwrap();
        drop(log);
        // Appends to an existing log.
        let mut log = open_raw_log(&path).expect("opened again");
        log.0.write_all(b"more\n").unwrap();
        drop(log);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "line\nmore\n");
        std::fs::write(d.path().join("blocked"), "a file").unwrap();
        assert!(open_raw_log(&d.path().join("blocked/runs/t.1.ndjson")).is_none());
    }

    fn res(subtype: &str, is_error: bool, status: Option<u16>, text: Option<&str>) -> ResultLine {
        ResultLine {
            subtype: subtype.into(),
            is_error,
            api_error_status: status,
            result: text.map(Into::into),
            ..Default::default()
        }
    }

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

    #[test]
    fn a_start_that_runs_out_of_resources_is_tried_again_a_missing_agent_is_not() {
        let failure = |stage, errno| {
            let e = spawn::SpawnError {
                stage,
                error: std::io::Error::from_raw_os_error(errno),
            };
            spawn_failure("claude", Path::new("/w"), &e)
        };
        for (errno, says) in [
            (libc::EMFILE, "ulimit -n"),
            (libc::ENFILE, "system's limit on open files"),
            (libc::EAGAIN, "ulimit -u"),
            (libc::ENOMEM, "out of memory"),
        ] {
            match failure(spawn::Stage::Setup, errno) {
                Outcome::Transient { reason } => {
                    assert!(reason.contains(says), "{reason}");
                    assert!(reason.contains("MAX_CONCURRENT_TASKS"), "{reason}");
                    assert!(
                        !reason.contains("npm install"),
                        "not blamed on the agent: {reason}"
                    );
                }
                other => panic!("errno {errno}: {other:?}"),
            }
        }
        match failure(spawn::Stage::Exec, libc::ENOENT) {
            Outcome::SpawnFailed { reason } => assert!(reason.contains("not found"), "{reason}"),
            other => panic!("{other:?}"),
        }
        match failure(spawn::Stage::Chdir, libc::ENOENT) {
            Outcome::SpawnFailed { reason } => {
                assert!(reason.contains("working folder /w"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn classification() {
        let ok = res("success", false, None, Some("done"));
        assert_eq!(classify(Some(0), Some(&ok), ""), Outcome::Succeeded);
        assert!(matches!(
            classify(Some(143), Some(&ok), ""),
            Outcome::Transient { reason } if reason.contains("143")
        ));
        let mut mt = res("error_max_turns", true, None, None);
        mt.errors = vec!["Reached maximum number of turns (2)".into()];
        assert_eq!(
            classify(Some(1), Some(&mt), ""),
            Outcome::TaskFailed {
                reason: "max turns reached: Reached maximum number of turns (2)".into()
            }
        );
        let e529 = res(
            "success",
            true,
            Some(529),
            Some("API Error: 529 overloaded"),
        );
        assert_eq!(
            classify(Some(1), Some(&e529), ""),
            Outcome::Transient {
                reason: "API Error: 529 overloaded".into()
            }
        );
        let auth = res(
            "success",
            true,
            None,
            Some("Not logged in · Please run /login"),
        );
        assert!(matches!(
            classify(Some(1), Some(&auth), ""),
            Outcome::AuthFailed { reason } if reason.contains("ANTHROPIC_API_KEY")
        ));
        let e401 = res("success", true, Some(401), Some("API Error: 401 invalid"));
        assert!(matches!(
            classify(Some(1), Some(&e401), ""),
            Outcome::AuthFailed { .. }
        ));
        let e400 = res(
            "success",
            true,
            Some(400),
            Some("API Error: 400 prompt too long"),
        );
        assert!(matches!(
            classify(Some(1), Some(&e400), ""),
            Outcome::TaskFailed { .. }
        ));
        let timeout = res("success", true, None, Some("Request timed out"));
        assert!(matches!(
            classify(Some(1), Some(&timeout), ""),
            Outcome::Transient { .. }
        ));
        let conn = res(
            "success",
            true,
            None,
            Some("API Error: Unable to connect to API (ConnectionRefused)"),
        );
        assert!(matches!(
            classify(Some(1), Some(&conn), ""),
            Outcome::Transient { .. }
        ));
        let other = res("error_during_execution", true, None, Some("it broke"));
        assert_eq!(
            classify(Some(1), Some(&other), ""),
            Outcome::TaskFailed {
                reason: "it broke".into()
            }
        );
        assert_eq!(
            classify(Some(1), None, "line one\nboom\n"),
            Outcome::Transient {
                reason: "agent exited with code 1 and no result line; stderr: line one | boom"
                    .into()
            }
        );
    }

    #[test]
    fn turns_count_distinct_messages() {
        let mut st = StreamState::default();
        let a = |id: &str, model: &str| StreamEvent::Assistant {
            message_id: Some(id.into()),
            model: Some(model.into()),
            tool_uses: vec![],
            text: Some("t".into()),
            error: None,
        };
        st.apply(a("m1", "x"));
        st.apply(a("m1", "x"));
        st.apply(a("m2", "x"));
        st.apply(a("m3", "<synthetic>"));
        assert_eq!(st.turns(), 2);
    }
}

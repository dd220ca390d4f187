//! Shared harness of the integration tests: a temporary workspace, the real `orca` binary
//! started as a daemon, the fake agent, and waiting helpers that poll (never assert timings).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod fake_llm;

/// How long any wait may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(90);

pub fn orca_bin() -> &'static str {
    env!("CARGO_BIN_EXE_orca")
}

pub fn fake_agent() -> &'static str {
    env!("CARGO_BIN_EXE_orca-fake-agent")
}

/// Settings of Orca and the fake agent that the test process must not leak into the daemon.
const SCRUB: &[&str] = &[
    "MAX_CONCURRENT_TASKS",
    "CLAUDE_TIMEOUT_SEC",
    "CLAUDE_MAX_TURNS",
    "CLAUDE_SKIP_PERMISSIONS",
    "CLAUDE_BASE_CWD",
    "CLAUDE_ALLOWED_ROOT",
    "CLAUDE_BIN",
    "CLAUDE_MODEL",
    "LOG_LEVEL",
    "ORCA_MAX_RETRIES",
    "ORCA_LLM",
    "ORCA_ROOT",
    "ORCA_DATABASE_URL",
    "ORCA_FAKE_AGENT_MODE",
    "ORCA_FAKE_AGENT_LOG",
    "TELEGRAM_BOT_TOKEN",
    "ORCA_RETRY_BASE_MS",
];

pub struct Ws {
    pub dir: tempfile::TempDir,
    pub daemon: Option<Child>,
    /// Process environment for every `orca` started by [`Ws::cmd`] (see [`Ws::with_env`]).
    pub env: Vec<(String, String)>,
}

impl Ws {
    /// A workspace whose agent is the fake agent, with quick retries.
    pub fn new() -> Ws {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = Ws {
            dir,
            daemon: None,
            env: Vec::new(),
        };
        std::fs::create_dir_all(ws.path().join("tasks")).expect("tasks/");
        ws.set_env(&[
            ("CLAUDE_BIN", fake_agent()),
            ("ORCA_RETRY_BASE_MS", "50"),
            ("ORCA_LLM", "off"),
            ("ORCA_SHUTDOWN_GRACE_SEC", "5"),
            (
                "ORCA_FAKE_AGENT_LOG",
                &ws.path().join("agent-starts.log").display().to_string(),
            ),
        ]);
        ws
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Appends settings to the workspace's .env.
    pub fn set_env(&self, pairs: &[(&str, &str)]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path().join(".env"))
            .expect(".env");
        for (k, v) in pairs {
            writeln!(f, "{k}={v}").expect("write .env");
        }
    }

    /// Sets process environment variables for the daemon and every other `orca` command
    /// (Orca passes its environment through to the agent). Once used, inherited variables
    /// that could steer a real Claude Code CLI elsewhere (ANTHROPIC_*, CLAUDE_CODE_*,
    /// IS_SANDBOX, proxies) are removed from those commands.
    pub fn with_env<K: Into<String>, V: Into<String>>(
        mut self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Ws {
        self.env
            .extend(pairs.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(orca_bin());
        for k in SCRUB {
            c.env_remove(k);
        }
        if !self.env.is_empty() {
            for (k, _) in std::env::vars_os() {
                let Some(k) = k.to_str() else { continue };
                let u = k.to_ascii_uppercase();
                if u.starts_with("ANTHROPIC_")
                    || u.starts_with("CLAUDE_CODE_")
                    || u == "IS_SANDBOX"
                    || u == "API_TIMEOUT_MS"
                    || u.ends_with("_PROXY")
                {
                    c.env_remove(k);
                }
            }
            c.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        c.arg("--root").arg(self.path());
        c
    }

    /// Runs `orca ARGS` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run orca")
    }

    /// Starts `orca run` in the background.
    pub fn start(&mut self) {
        let log = std::fs::File::create(self.path().join("daemon.out")).expect("daemon.out");
        let err = log.try_clone().expect("clone");
        let child = self
            .cmd()
            .arg("run")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("spawn orca run");
        self.daemon = Some(child);
        self.wait_for(
            || {
                self.events()
                    .iter()
                    .any(|e| e["event"] == "daemon_started" && e["pid"] == self.pid())
            },
            "daemon_started",
        );
    }

    pub fn pid(&self) -> u32 {
        self.daemon.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.daemon {
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    /// SIGTERM and wait for the exit; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        self.signal(libc::SIGTERM);
        let mut c = self.daemon.take()?;
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!(
                    "daemon did not stop within {TIMEOUT:?}:\n{}",
                    self.daemon_output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL the daemon and wait for it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn daemon_output(&self) -> String {
        std::fs::read_to_string(self.path().join("daemon.out")).unwrap_or_default()
    }

    /// Writes a task file the way a careful producer does: a temporary name, then a rename.
    pub fn drop_task(&self, name: &str, content: &str) -> PathBuf {
        let tasks = self.path().join("tasks");
        let tmp = tasks.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).expect("write task");
        let dest = tasks.join(name);
        std::fs::rename(&tmp, &dest).expect("rename task");
        dest
    }

    /// Writes a task file in place (open, write, close).
    pub fn write_task(&self, name: &str, content: &[u8]) -> PathBuf {
        let dest = self.path().join("tasks").join(name);
        std::fs::write(&dest, content).expect("write task");
        dest
    }

    pub fn result_path(&self, stem: &str) -> PathBuf {
        self.path()
            .join("results")
            .join(format!("{stem}_result.json"))
    }

    /// Waits for results/<stem>_result.json and returns it parsed.
    pub fn wait_result(&self, stem: &str) -> Value {
        let p = self.result_path(stem);
        self.wait_for(|| p.is_file(), &format!("result of {stem}"));
        // The result is renamed into place whole; read it.
        let text = std::fs::read_to_string(&p).expect("read result");
        serde_json::from_str(&text).expect("result is JSON")
    }

    /// Waits until the task is finalized (its file archived and the event written).
    pub fn wait_archived(&self, task_id: &str) {
        self.wait_for(
            || {
                self.events()
                    .iter()
                    .any(|e| e["event"] == "task_archived" && e["task_id"] == task_id)
            },
            &format!("task_archived of {task_id}"),
        );
    }

    /// Polls `cond` every 25 ms until it holds, or fails the test after TIMEOUT.
    pub fn wait_for(&self, cond: impl Fn() -> bool, what: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while !cond() {
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}\n--- daemon output:\n{}\n--- events:\n{}",
                    self.daemon_output(),
                    self.events_text()
                );
            }
            if let Some(c) = &self.daemon {
                let _ = c.id();
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn events_text(&self) -> String {
        std::fs::read_to_string(self.path().join("logs/events.ndjson")).unwrap_or_default()
    }

    /// Every event line, each parsed (a line that does not parse fails the test).
    pub fn events(&self) -> Vec<Value> {
        self.events_text()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("event line is not JSON ({e}): {l}"))
            })
            .collect()
    }

    pub fn events_named(&self, name: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] == name)
            .collect()
    }

    /// Lines of the fake agent's start log: `pid\ttask_id\tattempt\tmode`.
    pub fn agent_starts(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.path().join("agent-starts.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect()
    }

    pub fn files_in(&self, rel: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path().join(rel))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.path().is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for Ws {
    fn drop(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A task file asking the fake agent for `mode`.
pub fn task(id: &str, priority: &str, mode: &str) -> String {
    format!("---\nid: {id}\npriority: {priority}\n---\n\n# Task {id}\n\n**Prompt:**\nDo the thing.\nfake-agent: {mode}\n")
}

/// Whether a process exists.
pub fn alive(pid: i32) -> bool {
    // A zombie counts as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .map(|r| r.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

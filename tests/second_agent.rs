//! A second agent, written here and not in Orca, driven end to end by the real daemon loop:
//! the `Agent` trait is all the daemon needs. The agent runs `cat` through Orca's generic
//! supervision (argument vector, opened working folder, prompt on stdin, raw log) and
//! answers with what came back.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orca::runner::supervise::{self, Ended, LineSink, Spec};
use orca::runner::{Agent, BoxFuture, Outcome, Progress, ProgressSender, RunOutcome, RunRequest};
use tokio::sync::watch;

/// Collects stdout's lines.
#[derive(Default)]
struct Lines(Vec<String>);

impl LineSink for Lines {
    fn line(&mut self, line: &[u8]) -> bool {
        self.0.push(String::from_utf8_lossy(line).into_owned());
        true
    }

    fn progress(&self, pid: u32) -> Progress {
        Progress {
            turns: u32::try_from(self.0.len()).unwrap_or(u32::MAX),
            pid: Some(pid),
            ..Progress::default()
        }
    }
}

/// An agent that echoes its prompt back through `cat`.
struct EchoAgent;

impl EchoAgent {
    async fn attempt(
        &self,
        req: RunRequest,
        cancel: watch::Receiver<bool>,
        progress: ProgressSender,
    ) -> RunOutcome {
        let mark = supervise::run_mark(&req);
        let spec = Spec {
            program: "cat",
            args: &[],
            env: &req.env,
            remove_env: &req.remove_env,
            cwd: &req.working_dir,
            cwd_fd: req.working_dir_fd.as_deref().map(|fd| fd.as_fd()),
            prompt: &req.prompt,
            timeout: req.timeout,
            grace: Duration::from_secs(1),
            cancel_grace: Duration::from_secs(1),
            raw_log: &req.raw_log,
            run_mark: &mark,
        };
        let mut out = RunOutcome::bare(self.name(), Outcome::Cancelled);
        out.agent_version = Some("1.0-echo".into());
        match supervise::supervise(spec, Lines::default(), cancel, progress).await {
            Err(e) => {
                out.outcome = Outcome::SpawnFailed {
                    reason: format!("cannot start cat: {}", e.error),
                }
            }
            Ok(done) => {
                out.exit_code = done.exit_code;
                out.output = Some(done.sink.0.join("\n"));
                out.outcome = match done.ended {
                    Ended::Exited(Ok(s)) if s.success() => Outcome::Succeeded,
                    Ended::Exited(_) => Outcome::TaskFailed {
                        reason: format!("cat exited with {:?}", done.exit_code),
                    },
                    Ended::TimedOut(_) => Outcome::TimedOut,
                    Ended::Cancelled(_) => Outcome::Cancelled,
                };
            }
        }
        out
    }
}

impl Agent for EchoAgent {
    fn name(&self) -> &str {
        "echo"
    }

    fn run(
        &self,
        req: RunRequest,
        cancel: watch::Receiver<bool>,
        progress: ProgressSender,
    ) -> BoxFuture<'_, RunOutcome> {
        Box::pin(self.attempt(req, cancel, progress))
    }

    fn version(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(async { Some("1.0-echo".to_owned()) })
    }
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn a_second_agent_runs_a_task_through_the_daemon() {
    // The daemon reads its settings from the environment too: none of the test's.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("CLAUDE_") || k.starts_with("ORCA_") || k == "MAX_CONCURRENT_TASKS" {
            std::env::remove_var(k);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::create_dir_all(root.join("tasks")).unwrap();
    std::fs::write(
        root.join(".env"),
        "ORCA_LLM=off\nCLAUDE_BIN=/nonexistent/claude-is-not-used\n",
    )
    .unwrap();
    let daemon = std::thread::spawn({
        let root = root.clone();
        move || orca::scheduler::daemon::run_with_agent(&root, &[], Arc::new(EchoAgent))
    });
    let task = "---\nid: echo1\n---\n**Prompt:**\nRepeat after me: orca echoes.\n";
    std::fs::write(root.join("tasks/.echo1.tmp"), task).unwrap();
    std::fs::rename(
        root.join("tasks/.echo1.tmp"),
        root.join("tasks/echo1.task.md"),
    )
    .unwrap();

    let result = root.join("results/echo1_result.json");
    wait_for("the result", || result.is_file());
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(r["agent"]["name"], "echo", "{r:#}");
    assert_eq!(r["agent"]["version"], "1.0-echo", "{r:#}");
    assert_eq!(r["agent"]["exit_code"], 0, "{r:#}");
    let output = r["output"].as_str().unwrap_or_default();
    assert!(
        output.contains("Repeat after me: orca echoes."),
        "the prompt came back through cat: {r:#}"
    );
    // The raw log of the attempt holds what cat printed.
    let raw = std::fs::read_to_string(root.join("logs/runs/echo1.1.ndjson")).unwrap_or_default();
    assert!(raw.contains("orca echoes."), "raw log: {raw:?}");

    nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    assert_eq!(daemon.join().unwrap(), 0, "a clean stop");
}

//! Integration tests of the agent runner: `ClaudeAgent` driving the `orca-fake-agent`
//! binary through every outcome, timeouts and cancels that leave no process behind.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use orca::runner::{Agent, ClaudeAgent, Outcome, Progress, RunOutcome, RunRequest};
use tokio::sync::{mpsc, watch};

const FAKE: &str = env!("CARGO_BIN_EXE_orca-fake-agent");

fn agent() -> ClaudeAgent {
    ClaudeAgent::new(FAKE)
        .with_grace(Duration::from_millis(500))
        .with_cancel_grace(Duration::from_millis(500))
}

fn request(dir: &Path, prompt: &str) -> RunRequest {
    RunRequest {
        task_id: "t1".into(),
        attempt: 1,
        prompt: prompt.into(),
        working_dir: dir.to_path_buf(),
        timeout: Duration::from_secs(60),
        max_turns: None,
        model: None,
        skip_permissions: false,
        resume_session: None,
        raw_log: dir.join("logs/runs/t1.1.ndjson"),
        env: vec![],
        remove_env: vec![],
        working_dir_fd: None,
    }
}

/// Runs to the end, returning the outcome and every progress update.
async fn run(agent: &ClaudeAgent, req: RunRequest) -> (RunOutcome, Vec<Progress>) {
    let (_cancel_tx, cancel_rx) = watch::channel(false);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let out = agent.run(req, cancel_rx, tx).await;
    let mut updates = Vec::new();
    while let Ok(p) = rx.try_recv() {
        updates.push(*p);
    }
    (out, updates)
}

fn raw_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// True once `pid` no longer runs (gone, or a zombie nobody reaped yet).
fn is_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

/// Polls up to 5 s for every pid to be gone.
async fn assert_all_gone(pids: &[i32]) {
    for _ in 0..100 {
        if pids.iter().all(|p| is_gone(*p)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let alive: Vec<_> = pids.iter().filter(|p| !is_gone(**p)).collect();
    panic!("processes still running: {alive:?}");
}

/// The pids `child` mode prints on stderr.
fn child_pids(stderr: &str) -> Vec<i32> {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("fake-agent child pids: "))
        .unwrap_or_else(|| panic!("no pid line in stderr: {stderr:?}"));
    let pids: Vec<i32> = line
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|p| *p > 1), "{pids:?}");
    pids
}

#[tokio::test]
async fn success_parses_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let req = request(dir.path(), "Say hello to the team.\n");
    let raw = req.raw_log.clone();
    let (out, updates) = run(&agent(), req).await;
    assert_eq!(out.outcome, Outcome::Succeeded, "{out:?}");
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.output.as_deref(), Some("Done: Say hello to the team."));
    let session = out.session_id.clone().unwrap();
    assert_eq!(session.len(), 36, "{session}");
    assert_eq!(out.num_turns, Some(1));
    assert_eq!(out.cost_usd, Some(0.001));
    assert_eq!(out.usage.as_ref().unwrap()["output_tokens"], 20);
    assert_eq!(out.model.as_deref(), Some("claude-fake-1"));
    assert_eq!(out.agent_version.as_deref(), Some("0.0.0-fake"));
    // The raw log holds the three lines, the session id among them.
    let lines = raw_lines(&raw);
    assert_eq!(lines.len(), 3, "{lines:?}");
    let kinds: Vec<String> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["type"].to_string())
        .collect();
    assert_eq!(kinds, ["\"system\"", "\"assistant\"", "\"result\""]);
    assert!(lines[2].contains(&session));
    // Progress ends with the session, one turn, the cost and the pid.
    let last = updates.last().unwrap();
    assert_eq!(last.session_id.as_deref(), Some(session.as_str()));
    assert_eq!(last.turns, 1);
    assert_eq!(last.cost_usd, Some(0.001));
    assert!(last.pid.is_some_and(|p| p > 1));
}

#[tokio::test]
async fn fail_is_a_task_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = run(&agent(), request(dir.path(), "fake-agent: fail")).await;
    assert_eq!(out.exit_code, Some(1));
    assert_eq!(
        out.outcome,
        Outcome::TaskFailed {
            reason: "The fake agent failed on purpose.".into()
        }
    );
}

#[tokio::test]
async fn api_error_529_is_transient() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = run(&agent(), request(dir.path(), "fake-agent: api-error 529")).await;
    match &out.outcome {
        Outcome::Transient { reason } => assert!(reason.starts_with("API Error: 529"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(out.exit_code, Some(1));
    // The synthetic assistant line is not a turn of work.
    assert_eq!(out.model.as_deref(), Some("claude-fake-1"));
}

#[tokio::test]
async fn auth_failures_say_how_to_fix_them() {
    let dir = tempfile::tempdir().unwrap();
    for prompt in ["fake-agent: auth", "fake-agent: api-error 401"] {
        let (out, _) = run(&agent(), request(dir.path(), prompt)).await;
        match &out.outcome {
            Outcome::AuthFailed { reason } => {
                assert!(reason.contains("ANTHROPIC_API_KEY"), "{reason}")
            }
            other => panic!("{prompt}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn max_turns_is_a_task_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = run(&agent(), request(dir.path(), "fake-agent: max-turns")).await;
    assert_eq!(
        out.outcome,
        Outcome::MaxTurns {
            turns: Some(3),
            detail: "Reached maximum number of turns (2)".into()
        }
    );
    // --max-turns reaches the agent.
    let mut req = request(dir.path(), "fake-agent: slow 1 5");
    req.max_turns = Some(2);
    let (out, _) = run(&agent(), req).await;
    assert!(
        matches!(&out.outcome, Outcome::MaxTurns { detail, .. } if detail.contains("(2)")),
        "{out:?}"
    );
}

#[tokio::test]
async fn garbage_and_a_2_mib_line_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let req = request(dir.path(), "fake-agent: garbage");
    let raw = req.raw_log.clone();
    let (out, _) = run(&agent(), req).await;
    assert_eq!(out.outcome, Outcome::Succeeded, "{out:?}");
    assert_eq!(out.num_turns, Some(1));
    // Every line is in the raw log, the long one whole.
    let lines = raw_lines(&raw);
    assert_eq!(lines.len(), 7, "line count");
    assert_eq!(lines[1], "this is not json");
    assert_eq!(lines[3], "");
    assert_eq!(lines[4].len(), 2 * 1024 * 1024);
    assert!(lines[6].contains("\"result\""));
}

#[tokio::test]
async fn crash_without_result_is_transient_with_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = run(&agent(), request(dir.path(), "fake-agent: crash")).await;
    assert_eq!(out.exit_code, Some(1));
    assert_eq!(
        out.outcome,
        Outcome::Transient {
            reason:
                "agent exited with code 1 and no result line; stderr: fake-agent: simulated crash"
                    .into()
        }
    );
    assert!(out.session_id.is_some(), "the init line still counts");
}

#[tokio::test]
async fn missing_binary_is_a_spawn_failure() {
    let dir = tempfile::tempdir().unwrap();
    let agent = ClaudeAgent::new("/nonexistent/orca-test-claude");
    let (out, updates) = run(&agent, request(dir.path(), "hi")).await;
    match &out.outcome {
        Outcome::SpawnFailed { reason } => {
            assert!(reason.contains("/nonexistent/orca-test-claude"), "{reason}");
            assert!(
                reason.contains("npm install -g @anthropic-ai/claude-code"),
                "{reason}"
            );
            assert!(reason.contains("CLAUDE_BIN"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(updates.is_empty());
    assert_eq!(agent.version().await, None);
}

#[tokio::test]
async fn missing_working_dir_is_a_spawn_failure() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "not a folder").unwrap();
    for wd in ["nope", "file"] {
        let req = request(&dir.path().join(wd), "hi");
        let (out, _) = run(&agent(), req).await;
        let Outcome::SpawnFailed { reason } = &out.outcome else {
            panic!("{wd}: {out:?}");
        };
        assert!(
            reason.contains(&format!(
                "the working folder {}",
                dir.path().join(wd).display()
            )),
            "{reason}"
        );
        assert!(
            reason.contains("does not exist or is not a folder"),
            "{reason}"
        );
        assert!(
            !reason.contains("binary"),
            "not blamed on the agent binary: {reason}"
        );
    }
}

#[tokio::test]
async fn timeout_kills_the_agent_and_its_setsid_child() {
    let dir = tempfile::tempdir().unwrap();
    let mut req = request(dir.path(), "fake-agent: child");
    req.timeout = Duration::from_millis(1500);
    let (out, updates) = run(&agent(), req).await;
    assert_eq!(out.outcome, Outcome::TimedOut, "{out:?}");
    assert_eq!(out.exit_code, Some(143), "SIGTERM ends the agent");
    let agent_pid = updates.last().and_then(|p| p.pid).unwrap() as i32;
    let mut pids = child_pids(&out.stderr_tail);
    pids.push(agent_pid);
    assert_all_gone(&pids).await;
}

#[tokio::test]
async fn cancel_stops_a_running_agent_and_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let req = request(dir.path(), "fake-agent: child");
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let (tx, mut rx) = mpsc::unbounded_channel::<Box<Progress>>();
    let a = agent();
    let handle = tokio::spawn(async move { a.run(req, cancel_rx, tx).await });
    // Wait for the init line (printed after the children started), then cancel.
    let mut pid = None;
    while let Some(p) = rx.recv().await {
        pid = p.pid;
        if p.session_id.is_some() {
            break;
        }
    }
    cancel_tx.send(true).unwrap();
    let out = handle.await.unwrap();
    assert_eq!(out.outcome, Outcome::Cancelled);
    let mut pids = child_pids(&out.stderr_tail);
    pids.push(pid.unwrap() as i32);
    assert_all_gone(&pids).await;
}

#[tokio::test]
async fn dropping_a_run_kills_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let req = request(dir.path(), "fake-agent: child");
    let (_cancel_tx, cancel_rx) = watch::channel(false);
    let (tx, mut rx) = mpsc::unbounded_channel::<Box<Progress>>();
    let a = agent();
    let handle = tokio::spawn(async move { a.run(req, cancel_rx, tx).await });
    let mut pid = None;
    while let Some(p) = rx.recv().await {
        pid = p.pid;
        if p.session_id.is_some() {
            break;
        }
    }
    let agent_pid = pid.unwrap() as i32;
    // The children are started before the init line: find them through /proc.
    let kids = orca::runner::process::descendants(agent_pid);
    assert_eq!(kids.len(), 2, "{kids:?}");
    handle.abort();
    let _ = handle.await;
    let mut pids: Vec<i32> = kids.iter().map(|k| k.pid).collect();
    pids.push(agent_pid);
    assert_all_gone(&pids).await;
}

#[tokio::test]
async fn cancel_before_start_never_spawns() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("starts.log");
    let mut req = request(dir.path(), "hi");
    req.env = vec![("ORCA_FAKE_AGENT_LOG".into(), log.display().to_string())];
    let (_cancel_tx, cancel_rx) = watch::channel(true);
    let (tx, _rx) = mpsc::unbounded_channel();
    let out = agent().run(req, cancel_rx, tx).await;
    assert_eq!(out.outcome, Outcome::Cancelled);
    assert!(!log.exists());
}

#[tokio::test]
async fn progress_follows_turns_and_tools() {
    let dir = tempfile::tempdir().unwrap();
    let (out, updates) = run(&agent(), request(dir.path(), "fake-agent: slow 30 3")).await;
    assert_eq!(out.outcome, Outcome::Succeeded);
    assert_eq!(out.num_turns, Some(4));
    let turns: Vec<u32> = updates.iter().map(|p| p.turns).collect();
    assert!(turns.windows(2).all(|w| w[0] <= w[1]), "{turns:?}");
    for n in 1..=4 {
        assert!(turns.contains(&n), "turn {n} missing in {turns:?}");
    }
    let step3 = updates.iter().find(|p| p.turns == 3).unwrap();
    assert_eq!(step3.last_tool.as_deref(), Some("Bash"));
    assert_eq!(step3.last_tool_target.as_deref(), Some("echo step 3"));
    assert!(updates.iter().all(|p| p.pid == updates[0].pid));
}

#[tokio::test]
async fn write_mode_writes_and_reports_the_tool() {
    let dir = tempfile::tempdir().unwrap();
    let (out, updates) = run(
        &agent(),
        request(
            dir.path(),
            "Please write.\nfake-agent: write notes/a.txt hello there\n",
        ),
    )
    .await;
    assert_eq!(out.outcome, Outcome::Succeeded);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes/a.txt")).unwrap(),
        "hello there\n"
    );
    let with_tool = updates
        .iter()
        .find(|p| p.last_tool.as_deref() == Some("Write"))
        .unwrap();
    let target = PathBuf::from(with_tool.last_tool_target.clone().unwrap());
    assert!(target.ends_with("notes/a.txt"), "{target:?}");
    assert_eq!(out.num_turns, Some(2));
}

#[tokio::test]
async fn flaky_agent_succeeds_on_a_later_attempt_and_starts_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("starts.log");
    let env = vec![("ORCA_FAKE_AGENT_LOG".to_string(), log.display().to_string())];
    let mut first = request(dir.path(), "fake-agent: flaky 1");
    first.env = env.clone();
    let (out, _) = run(&agent(), first).await;
    assert!(matches!(out.outcome, Outcome::Transient { .. }), "{out:?}");
    let mut second = request(dir.path(), "fake-agent: flaky 1");
    second.attempt = 2;
    second.env = env;
    second.resume_session = out.session_id.clone();
    let (out2, _) = run(&agent(), second).await;
    assert_eq!(out2.outcome, Outcome::Succeeded);
    assert_eq!(
        out2.session_id, out.session_id,
        "--resume keeps the session"
    );
    let starts: Vec<Vec<String>> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| l.split('\t').map(String::from).collect())
        .collect();
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[0][1..], ["t1", "1", "flaky"]);
    assert_eq!(starts[1][1..], ["t1", "2", "flaky"]);
}

#[tokio::test]
async fn request_env_reaches_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let mut req = request(dir.path(), "no directive here");
    req.env = vec![("ORCA_FAKE_AGENT_MODE".into(), "fail".into())];
    let (out, _) = run(&agent(), req).await;
    assert!(matches!(out.outcome, Outcome::TaskFailed { .. }), "{out:?}");
}

#[tokio::test]
async fn model_flag_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let mut req = request(dir.path(), "hi");
    req.model = Some("sonnet".into());
    let a = agent();
    let (out, _) = run(&a, req).await;
    assert_eq!(out.model.as_deref(), Some("sonnet"));
    assert_eq!(a.version().await.as_deref(), Some("0.0.0-fake"));
    // Through the trait object too.
    let dyn_agent: Arc<dyn Agent> = Arc::new(agent());
    assert_eq!(dyn_agent.name(), "claude");
    assert_eq!(dyn_agent.version().await.as_deref(), Some("0.0.0-fake"));
    let (_c, crx) = watch::channel(false);
    let (tx, _rx) = mpsc::unbounded_channel();
    let out = dyn_agent.run(request(dir.path(), "hi"), crx, tx).await;
    assert_eq!(out.outcome, Outcome::Succeeded);
}

#[test]
fn args_snapshot() {
    let dir = Path::new("/w");
    let a = ClaudeAgent::new("claude");
    let plain = request(dir, "hi");
    let mut full = request(dir, "hi");
    full.max_turns = Some(20);
    full.skip_permissions = true;
    full.model = Some("sonnet".into());
    full.resume_session = Some("8bbb55da-0000-4000-a000-000000000000".into());
    let mut zero = request(dir, "hi");
    zero.max_turns = Some(0);
    zero.model = Some(" ".into());
    insta::assert_snapshot!(format!(
        "plain: {}\nfull:  {}\nzero:  {}",
        a.args(&plain).join(" "),
        a.args(&full).join(" "),
        a.args(&zero).join(" ")
    ));
}

/// The whole prompt reaches the agent's stdin, whether it is put in the pipe before the
/// start (up to a page), written in place after it (fits in the pipe) or by a task of its
/// own while the agent reads: the directive at its very end is obeyed.
#[tokio::test]
async fn prompts_small_and_larger_than_the_pipe_arrive_whole() {
    let directive = "\nfake-agent: fail\n";
    for total in [30usize, 4096, 4097, 10_000, 300_000] {
        let filler = total - directive.len();
        let dir = tempfile::tempdir().unwrap();
        let prompt = format!("{}{directive}", "x".repeat(filler));
        assert_eq!(prompt.len(), total);
        let (out, _) = run(&agent(), request(dir.path(), &prompt)).await;
        assert!(
            matches!(out.outcome, Outcome::TaskFailed { .. }),
            "{total} bytes: {:?}",
            out.outcome
        );
    }
}

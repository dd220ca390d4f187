//! The agent's confinement, end to end through the real daemon and the fake agent: it runs
//! only inside CLAUDE_ALLOWED_ROOT however its folder is swapped (17.1), without Orca's own
//! secrets (17.4), an exit before a late timer counts (17.8), nothing it detaches survives
//! its attempt (17.9), and a huge `--version` cannot blow the daemon up (17.13).

mod common;

use std::path::Path;

use common::{alive, Ws};

/// A task file with front-matter lines `front` and the fake agent's directive `mode`.
fn task(id: &str, front: &str, mode: &str) -> String {
    format!("---\nid: {id}\n{front}---\n**Prompt:**\nDo it.\nfake-agent: {mode}\n")
}

/// A `VmHWM`/`VmRSS`-style line of /proc/<pid>/status, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn the_agent_never_runs_outside_the_root_while_its_folder_is_swapped_for_a_link() {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    let outside = tempfile::tempdir().unwrap();
    let outside_real = outside.path().canonicalize().unwrap();
    let cwd_file = outside.path().join("cwds.txt");
    let mut ws = Ws::new().with_env([("ORCA_FAKE_AGENT_CWD_FILE", cwd_file.display().to_string())]);
    ws.set_env(&[("MAX_CONCURRENT_TASKS", "4")]);
    let root = ws.path().canonicalize().unwrap();
    std::fs::create_dir(root.join("d")).unwrap();
    std::os::unix::fs::symlink(&outside_real, root.join("d.sym")).unwrap();
    ws.start();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = std::thread::spawn({
        let (stop, root) = (std::sync::Arc::clone(&stop), root.clone());
        move || {
            let (a, b) = (root.join("d"), root.join("d.sym"));
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                renameat_with(CWD, &a, CWD, &b, RenameFlags::EXCHANGE).unwrap();
                swaps += 1;
            }
            swaps
        }
    });
    let n = 40;
    for i in 0..n {
        ws.drop_task(
            &format!("w{i:02}.task.md"),
            &task(&format!("w{i:02}"), "working_dir: d\n", "noop"),
        );
    }
    let results: Vec<serde_json::Value> = (0..n)
        .map(|i| ws.wait_result(&format!("w{i:02}")))
        .collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(swapper.join().unwrap() > 0);

    let cwds = std::fs::read_to_string(&cwd_file).unwrap_or_default();
    let ran: Vec<&str> = cwds.lines().collect();
    for cwd in &ran {
        assert!(
            Path::new(cwd).starts_with(&root),
            "an agent ran in {cwd}, outside the allowed root {}",
            root.display()
        );
    }
    for r in &results {
        if r["status"] == "succeeded" {
            assert_eq!(
                r["working_dir"],
                root.join("d").display().to_string(),
                "{r:#}"
            );
        } else {
            // Refused at intake (the link led out at that moment) or at the start.
            let kind = r["error"]["kind"].as_str().unwrap_or_default();
            assert!(
                ["working_dir", "path_outside_root", "path_unresolvable"].contains(&kind),
                "{r:#}"
            );
        }
    }
    // Bounded by count: some ran, and none outside.
    assert!(!ran.is_empty(), "no agent ran at all: {results:#?}");
    ws.stop();
}

#[test]
fn orcas_own_secrets_do_not_reach_the_agent_its_api_key_does() {
    let dump = tempfile::tempdir().unwrap();
    let env_file = dump.path().join("env.txt");
    let mut ws = Ws::new().with_env([
        ("ORCA_FAKE_AGENT_ENV_FILE", env_file.display().to_string()),
        // TELEGRAM_BOT_TOKEN is withheld too (unit table in runner::agent_env; tests/telegram.rs
        // runs the bot with a token and checks no file holds it).
        ("ORCA_DASHBOARD_TOKEN", "dash-secret-value".into()),
        ("ORCA_DATABASE_URL", "sqlite://.orca/orca.db".into()),
        ("ANTHROPIC_API_KEY", "sk-ant-agent-needs-this".into()),
        ("GITHUB_TOKEN", "gh-agent-may-use-this".into()),
    ]);
    // A secret of Orca's in .env (not a setting this version reads) stays with Orca too.
    ws.set_env(&[
        ("ORCA_WEBHOOK_SECRET", "hook-secret-value"),
        ("MY_TOOL_FLAG", "on"),
    ]);
    ws.start();
    ws.drop_task("env.task.md", &task("env", "", "noop"));
    let r = ws.wait_result("env");
    assert_eq!(r["status"], "succeeded", "{r:#}");
    let env = std::fs::read_to_string(&env_file).unwrap();
    let has = |name: &str| env.lines().any(|l| l.starts_with(&format!("{name}=")));
    assert!(!has("ORCA_DASHBOARD_TOKEN"), "{env}");
    assert!(!has("ORCA_DATABASE_URL"), "{env}");
    assert!(!has("ORCA_WEBHOOK_SECRET"), "{env}");
    assert!(
        env.contains("MY_TOOL_FLAG=on"),
        ".env passes through: {env}"
    );
    assert!(!env.contains("dash-secret-value") && !env.contains("hook-secret-value"));
    assert!(
        env.contains("ANTHROPIC_API_KEY=sk-ant-agent-needs-this"),
        "{env}"
    );
    assert!(env.contains("GITHUB_TOKEN=gh-agent-may-use-this"), "{env}");
    assert!(env.contains("ORCA_TASK_ID=env"), "{env}");
    ws.stop();
}

#[test]
fn an_agent_that_exited_before_a_late_timer_succeeded() {
    let mut ws = Ws::new();
    ws.start();
    ws.drop_task(
        "late.task.md",
        &task("late", "timeout_sec: 2\n", "sleep 1000"),
    );
    // Stop the daemon as soon as the agent has started, past the timeout and well past the
    // agent's exit with its result line; then let it go on.
    ws.wait_for(|| !ws.agent_starts().is_empty(), "the agent's start");
    ws.signal(libc::SIGSTOP);
    let agent_pid: i32 = ws.agent_starts()[0][0].parse().unwrap();
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    // The agent exits on its own (a zombie of the stopped daemon) ...
    while alive(agent_pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    // ... and the timer expires while the daemon is stopped.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    ws.signal(libc::SIGCONT);
    let r = ws.wait_result("late");
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(r["agent"]["exit_code"], 0, "{r:#}");
    assert!(ws.events_named("timed_out").is_empty());
    ws.stop();
}

/// Waits for the pid file the fake agent's detached grandchild left.
fn grandchild(ws: &Ws, file: &Path) -> i32 {
    ws.wait_for(|| file.is_file(), "the grandchild's pid file");
    std::fs::read_to_string(file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_double_forked_setsid_grandchild_ends_with_its_attempt_on_exit_and_on_timeout() {
    let pids = tempfile::tempdir().unwrap();
    let base = pids.path().join("escaped");
    let mut ws = Ws::new().with_env([("ORCA_FAKE_AGENT_ESCAPE", base.display().to_string())]);
    ws.start();
    ws.drop_task("quits.task.md", &task("quits", "", "success"));
    ws.drop_task("hangs.task.md", &task("hangs", "timeout_sec: 1\n", "hang"));
    let quits = ws.wait_result("quits");
    let hangs = ws.wait_result("hangs");
    assert_eq!(quits["status"], "succeeded", "{quits:#}");
    assert_eq!(hangs["status"], "timed_out", "{hangs:#}");
    for id in ["quits", "hangs"] {
        let pid = grandchild(&ws, &pids.path().join(format!("escaped.{id}")));
        assert!(pid > 1);
        ws.wait_for(
            || !alive(pid),
            &format!("the grandchild {pid} of {id} gone"),
        );
        // Reaped too: not even a zombie is left of it.
        ws.wait_for(
            || !Path::new(&format!("/proc/{pid}")).exists(),
            &format!("the grandchild {pid} of {id} reaped"),
        );
    }
    assert_eq!(ws.stop(), Some(0));
}

#[test]
fn a_hundred_megabyte_version_is_refused_and_the_daemon_stays_small() {
    let mut ws = Ws::new().with_env([("ORCA_FAKE_AGENT_VERSION_BYTES", "104857600")]);
    ws.start();
    ws.drop_task("v.task.md", &task("v", "", "success"));
    let r = ws.wait_result("v");
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert!(r["agent"]["version"].is_null(), "{r:#}");
    // The daemon never held the 100 MB (its peak resident size stays far below it).
    let peak_kib = status_kib(ws.pid(), "VmHWM");
    assert!(peak_kib < 48 * 1024, "daemon peak RSS {peak_kib} KiB");
    // And it still works.
    ws.drop_task("v2.task.md", &task("v2", "", "success"));
    assert_eq!(ws.wait_result("v2")["status"], "succeeded");
    ws.stop();
}

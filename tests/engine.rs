//! The engine end to end: the real `orca run` with a real SQLite file, real child processes
//! (the fake agent), real signals. Each test has its own workspace.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{alive, task, Ws};
use serde_json::Value;

#[test]
fn one_task_runs_and_every_step_has_an_event() {
    let mut ws = Ws::new();
    ws.start();
    ws.drop_task("hello.task.md", &task("hello", "medium", "success"));
    let r = ws.wait_result("hello");
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(r["task_id"], "hello");
    assert_eq!(r["file"], "tasks/hello.task.md");
    assert_eq!(r["archived_to"], "tasks/processed/hello.task.md");
    assert!(
        r["agent"]["session_id"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{r:#}"
    );
    assert_eq!(r["attempts"], 1);
    ws.wait_archived("hello");
    assert!(ws.path().join("tasks/processed/hello.task.md").is_file());
    assert!(!ws.path().join("tasks/hello.task.md").exists());
    assert!(ws.path().join("summaries/hello_summary.txt").is_file());
    assert!(ws.path().join("logs/runs/hello.1.ndjson").is_file());
    let names: Vec<String> = ws
        .events()
        .iter()
        .filter(|e| e["task_id"] == "hello")
        .map(|e| e["event"].as_str().unwrap_or("").to_owned())
        .collect();
    for want in [
        "task_received",
        "parsed",
        "queued",
        "claude_started",
        "claude_finished",
        "validated",
        "summarized",
        "artifacts_written",
        "task_archived",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "missing event {want}: {names:?}"
        );
    }
    let pos = |n: &str| names.iter().position(|x| x == n).unwrap_or(usize::MAX);
    assert!(
        pos("queued") < pos("claude_started")
            && pos("claude_finished") < pos("artifacts_written")
            && pos("artifacts_written") < pos("task_archived")
    );
    let out = ws.run(&["validate-artifacts"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(ws.stop(), Some(0));
    assert!(ws.events_named("daemon_stopped").len() == 1);
}

#[test]
fn two_hundred_tasks_dropped_at_once_all_succeed() {
    let mut ws = Ws::new();
    ws.set_env(&[("MAX_CONCURRENT_TASKS", "8")]);
    ws.start();
    for i in 0..200 {
        ws.drop_task(
            &format!("t{i:03}.task.md"),
            &task(&format!("t{i:03}"), "medium", "noop"),
        );
    }
    ws.wait_for(|| ws.files_in("results").len() >= 200, "200 results");
    for i in 0..200 {
        let r = ws.wait_result(&format!("t{i:03}"));
        assert_eq!(r["status"], "succeeded");
    }
    ws.wait_for(
        || ws.files_in("tasks/processed").len() == 200,
        "200 archived",
    );
    assert_eq!(
        ws.agent_starts().len(),
        200,
        "each task started exactly once"
    );
    let out = ws.run(&["validate-artifacts"]);
    assert!(out.status.success());
    assert_eq!(ws.stop(), Some(0));
}

#[test]
fn priority_then_arrival_order_with_one_worker() {
    let mut ws = Ws::new();
    ws.set_env(&[("MAX_CONCURRENT_TASKS", "1")]);
    ws.start();
    ws.drop_task("blocker.task.md", &task("blocker", "low", "sleep 1500"));
    ws.wait_for(
        || !ws.events_named("claude_started").is_empty(),
        "blocker started",
    );
    ws.drop_task("low1.task.md", &task("low1", "low", "noop"));
    ws.drop_task("med1.task.md", &task("med1", "medium", "noop"));
    ws.drop_task("high1.task.md", &task("high1", "high", "noop"));
    ws.drop_task("med2.task.md", &task("med2", "medium", "noop"));
    ws.drop_task("high2.task.md", &task("high2", "high", "noop"));
    ws.wait_for(
        || ws.events_named("task_archived").len() == 6,
        "six archived",
    );
    let order: Vec<String> = ws
        .events_named("claude_started")
        .iter()
        .map(|e| e["task_id"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(order, ["blocker", "high1", "high2", "med1", "med2", "low1"]);
}

#[test]
fn transient_failure_is_retried_then_succeeds() {
    let mut ws = Ws::new();
    ws.start();
    ws.drop_task("flaky.task.md", &task("flaky", "medium", "flaky 1"));
    let r = ws.wait_result("flaky");
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(r["attempts"], 2);
    let hist = r["attempt_history"].as_array().expect("history");
    assert_eq!(hist.len(), 2);
    assert_eq!(hist[0]["outcome"], "retry");
    assert_eq!(hist[1]["outcome"], "succeeded");
    let retries = ws.events_named("retry");
    assert_eq!(retries.len(), 1);
    assert_eq!(retries[0]["task_id"], "flaky");
}

#[test]
fn persistent_api_errors_fail_after_the_retry_limit() {
    let mut ws = Ws::new();
    ws.set_env(&[("ORCA_MAX_RETRIES", "2")]);
    ws.start();
    ws.drop_task("down.task.md", &task("down", "medium", "api-error 529"));
    let r = ws.wait_result("down");
    assert_eq!(r["status"], "failed", "{r:#}");
    assert_eq!(r["attempts"], 3);
    assert_eq!(ws.events_named("retry").len(), 2);
    let msg = r["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("529"), "{msg}");
}

#[test]
fn task_level_failures_are_not_retried() {
    let mut ws = Ws::new();
    ws.start();
    ws.drop_task("turns.task.md", &task("turns", "medium", "max-turns"));
    ws.drop_task("auth.task.md", &task("auth", "medium", "auth"));
    let r = ws.wait_result("turns");
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["kind"], "max_turns");
    assert_eq!(r["attempts"], 1);
    let a = ws.wait_result("auth");
    assert_eq!(a["status"], "failed");
    assert_eq!(a["error"]["kind"], "auth");
    assert!(a["error"]["hint"]
        .as_str()
        .unwrap_or("")
        .contains("ANTHROPIC_API_KEY"));
    assert!(ws.events_named("retry").is_empty());
}

#[test]
fn a_timeout_kills_the_agent_and_its_own_children() {
    let mut ws = Ws::new();
    ws.start();
    let text = "---\nid: slowpoke\ntimeout_sec: 1\n---\n**Prompt:**\nfake-agent: child\n";
    ws.drop_task("slowpoke.task.md", text);
    let r = ws.wait_result("slowpoke");
    assert_eq!(r["status"], "timed_out", "{r:#}");
    assert_eq!(ws.events_named("timed_out").len(), 1);
    // The fake agent logged its own pid and its children's pids.
    let pids: Vec<i32> = std::fs::read_to_string(ws.path().join("agent-starts.log"))
        .unwrap_or_default()
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok())
        .filter(|p: &i32| *p > 1)
        .collect();
    assert!(!pids.is_empty());
    ws.wait_for(
        || pids.iter().all(|p| !alive(*p)),
        "agent and children gone",
    );
}

#[test]
fn cancel_a_queued_and_a_running_task() {
    let mut ws = Ws::new();
    ws.set_env(&[("MAX_CONCURRENT_TASKS", "1")]);
    ws.start();
    ws.drop_task("running.task.md", &task("running", "high", "hang"));
    ws.wait_for(
        || ws.events_named("claude_started").len() == 1,
        "running started",
    );
    ws.drop_task("waiting.task.md", &task("waiting", "low", "noop"));
    ws.wait_for(
        || {
            ws.events_named("queued")
                .iter()
                .any(|e| e["task_id"] == "waiting")
        },
        "waiting queued",
    );
    let out = ws.run(&["cancel", "waiting"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ws.run(&["cancel", "running"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = ws.wait_result("running");
    assert_eq!(r["status"], "cancelled");
    let w = ws.wait_result("waiting");
    assert_eq!(w["status"], "cancelled");
    assert_eq!(
        w["attempts"], 0,
        "a task cancelled while queued never starts"
    );
    assert!(ws
        .agent_starts()
        .iter()
        .all(|l| l.get(1).map(String::as_str) != Some("waiting")));
    let again = ws.run(&["cancel", "running"]);
    assert_eq!(again.status.code(), Some(1));
    let missing = ws.run(&["cancel", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn kill_nine_mid_run_then_restart_finishes_every_task_exactly_once() {
    let mut ws = Ws::new();
    ws.set_env(&[("MAX_CONCURRENT_TASKS", "4")]);
    ws.start();
    for i in 0..20 {
        ws.drop_task(
            &format!("k{i:02}.task.md"),
            &task(&format!("k{i:02}"), "medium", "sleep 300"),
        );
    }
    ws.wait_for(
        || ws.events_named("claude_started").len() >= 4,
        "some running",
    );
    ws.kill9();
    ws.start();
    ws.wait_for(
        || ws.files_in("tasks/processed").len() == 20,
        "all archived",
    );
    ws.wait_for(|| ws.files_in("results").len() == 20, "all results");
    for i in 0..20 {
        let r = ws.wait_result(&format!("k{i:02}"));
        assert_eq!(r["status"], "succeeded", "{r:#}");
    }
    assert!(
        ws.files_in("tasks").is_empty(),
        "nothing left in tasks/: {:?}",
        ws.files_in("tasks")
    );
    let mut per_task: BTreeMap<String, usize> = BTreeMap::new();
    for e in ws.events_named("task_archived") {
        *per_task
            .entry(e["task_id"].as_str().unwrap_or("").to_owned())
            .or_default() += 1;
    }
    assert_eq!(per_task.len(), 20);
    assert!(per_task.values().all(|n| *n == 1), "{per_task:?}");
    assert!(
        !ws.events_named("recovered").is_empty(),
        "the cut-off runs were recovered"
    );
}

/// A task file whose name is as long as a file name may be still gets its result: the
/// artifacts' names are made from its stem cut to fit (it could not be written before, and
/// the task waited for ever).
#[test]
fn a_task_file_with_the_longest_name_gets_its_artifacts() {
    let mut ws = Ws::new();
    ws.start();
    let stem = "n".repeat(245);
    ws.write_task(
        &format!("{stem}.task.md"),
        task("longname", "medium", "noop").as_bytes(),
    );
    let short = "n".repeat(200);
    let r = ws.wait_result(&short);
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(r["file"], format!("tasks/{stem}.task.md"));
    assert!(ws
        .path()
        .join(format!("summaries/{short}_summary.txt"))
        .is_file());
    ws.wait_archived("longname");
    assert!(ws
        .path()
        .join(format!("tasks/processed/{stem}.task.md"))
        .is_file());
    assert_eq!(ws.stop(), Some(0));
}

/// A task file that is a symbolic link is read only when it leads inside the allowed root:
/// a link to a file elsewhere (a key, another user's file) must not make the daemon read it
/// and hand it to the agent. The link itself is moved aside; its target is left alone.
#[test]
fn a_task_file_linking_out_of_the_workspace_is_rejected_unread() {
    use std::os::unix::fs::symlink;
    let mut ws = Ws::new();
    let outside = tempfile::tempdir().expect("outside");
    let secret = outside.path().join("id_key");
    std::fs::write(&secret, task("stolen", "medium", "noop")).expect("secret");
    std::fs::write(ws.path().join("kept.md"), task("kept", "medium", "noop")).expect("kept.md");
    ws.start();
    symlink(&secret, ws.path().join("tasks/stolen.task.md")).expect("link out");
    symlink(
        ws.path().join("kept.md"),
        ws.path().join("tasks/kept.task.md"),
    )
    .expect("link in");
    let r = ws.wait_result("stolen");
    assert_eq!(r["status"], "rejected", "{r:#}");
    assert_eq!(r["error"]["kind"], "link_outside_root", "{r:#}");
    let msg = r["error"]["message"].as_str().unwrap_or("");
    assert!(
        msg.contains("symbolic link") && msg.contains("id_key"),
        "{msg}"
    );
    let hint = r["error"]["hint"].as_str().unwrap_or("");
    assert!(hint.contains("copy the file into tasks/"), "{hint}");
    let moved = ws.path().join("tasks/rejected/stolen.task.md");
    ws.wait_for(
        || std::fs::symlink_metadata(&moved).is_ok_and(|m| m.file_type().is_symlink()),
        "the link moved aside",
    );
    assert!(secret.is_file(), "the target stays where it was");
    // A link inside the workspace runs as a task.
    assert_eq!(ws.wait_result("kept")["status"], "succeeded");
    let ran: Vec<String> = ws.agent_starts().iter().map(|l| l[1].clone()).collect();
    assert_eq!(ran, ["kept"], "the agent never saw the linked-out file");
    assert_eq!(ws.stop(), Some(0), "the daemon lived");
}

#[test]
fn hostile_files_are_moved_aside_and_the_daemon_lives() {
    let mut ws = Ws::new();
    let outside = tempfile::tempdir().expect("outside");
    ws.start();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.task.md", Vec::new()),
        ("badyaml.task.md", b"---\nid: [unclosed\n---\n**Prompt:**\nx\n".to_vec()),
        ("unclosed.task.md", b"---\nid: unclosed\npriority: high\n**Prompt:**\nx\n".to_vec()),
        ("noprompt.task.md", b"---\nid: noprompt\n---\n# Title only\n".to_vec()),
        ("badprio.task.md", b"---\npriority: urgent\n---\n**Prompt:**\nx\n".to_vec()),
        ("badutf8.task.md", b"**Prompt:**\nbad \xff\xfe bytes\n".to_vec()),
        ("binary.task.md", vec![0u8, 1, 2, 3, 0, 159, 146, 150, 0, 0]),
        ("bomb.task.md", "---\na: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n---\n**Prompt:**\nx\n".as_bytes().to_vec()),
        ("outside.task.md", format!("**Target Files:**\n- {}/secret.txt\n\n**Prompt:**\nx\n", outside.path().display()).into_bytes()),
        ("traversal.task.md", b"---\nworking_dir: ../../..\n---\n**Prompt:**\nx\n".to_vec()),
        ("badid.task.md", b"---\nid: ../evil\n---\n**Prompt:**\nx\n".to_vec()),
    ];
    let mut big = b"**Prompt:**\n".to_vec();
    big.resize(24 * 1024 * 1024, b'a');
    for (name, bytes) in &cases {
        ws.write_task(name, bytes);
    }
    ws.write_task("huge.task.md", &big);
    ws.drop_task("good.task.md", &task("good", "medium", "noop"));
    let stems: Vec<String> = cases
        .iter()
        .map(|(n, _)| n.trim_end_matches(".task.md").to_owned())
        .chain(["huge".to_owned()])
        .collect();
    for stem in &stems {
        let r = ws.wait_result(stem);
        assert_eq!(r["status"], "rejected", "{stem}: {r:#}");
        let msg = r["error"]["message"].as_str().unwrap_or("");
        assert!(!msg.is_empty(), "{stem} has an error message");
        let moved = ws.path().join(format!("tasks/rejected/{stem}.task.md"));
        ws.wait_for(|| moved.is_file(), &format!("{stem} moved aside"));
    }
    assert_eq!(ws.wait_result("good")["status"], "succeeded");
    assert_eq!(
        ws.agent_starts().len(),
        1,
        "the agent only ran for the good task"
    );
    assert_eq!(ws.events_named("task_rejected").len(), stems.len());
    let out = ws.run(&["validate-artifacts"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(ws.stop(), Some(0), "the daemon lived");
}

#[test]
fn a_second_daemon_on_the_same_workspace_exits_2_naming_the_first() {
    let mut ws = Ws::new();
    ws.start();
    let out = ws.run(&["run"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&ws.pid().to_string()), "{err}");
}

#[test]
fn shutdown_leaves_a_running_task_queued_for_the_next_start() {
    let mut ws = Ws::new();
    ws.set_env(&[("ORCA_SHUTDOWN_GRACE_SEC", "1")]);
    ws.start();
    ws.drop_task("long.task.md", &task("long", "medium", "sleep 20000"));
    ws.wait_for(|| ws.events_named("claude_started").len() == 1, "started");
    assert_eq!(ws.stop(), Some(0));
    assert!(
        ws.path().join("tasks/long.task.md").is_file(),
        "the file stays until the task ends"
    );
    assert!(!ws.result_path("long").exists());
    let out = ws.run(&["list", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v[0]["state"], "queued");
}

#[test]
fn duplicate_ids_get_a_suffix() {
    let mut ws = Ws::new();
    ws.start();
    ws.drop_task("a.task.md", &task("same", "medium", "noop"));
    ws.wait_archived("same");
    ws.drop_task("b.task.md", &task("same", "medium", "noop"));
    ws.wait_archived("same-2");
    let ev = ws.events_named("task_received");
    assert!(
        ev.iter()
            .any(|e| e["task_id"] == "same-2" && e["renamed_from"] == "same"),
        "{ev:?}"
    );
}

#[test]
fn commands_work_without_a_daemon() {
    let ws = Ws::new();
    let out = ws.run(&[
        "submit",
        "-p",
        "Summarise the README",
        "--type",
        "summarize",
        "--priority",
        "high",
        "--id",
        "sum1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "sum1");
    assert!(ws.path().join("tasks/sum1.task.md").is_file());
    let again = ws.run(&["submit", "-p", "again", "--id", "sum1"]);
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), "sum1-2");
    let st = ws.run(&["status", "--json"]);
    assert!(st.status.success());
    let v: Value = serde_json::from_slice(&st.stdout).expect("status json");
    assert_eq!(v["daemon"]["running"], false);
    assert_eq!(v["task_files_waiting"], 2);
    let bad = ws.run(&["list", "--state", "bogus"]);
    assert_eq!(bad.status.code(), Some(2));
    let none = ws.run(&["show", "nope"]);
    assert_eq!(none.status.code(), Some(1));
    let ev = ws.run(&["tail-events", "--lines", "5"]);
    assert!(ev.status.success());
}

#[test]
fn status_show_list_and_retry_with_a_daemon() {
    let mut ws = Ws::new();
    ws.start();
    ws.drop_task("slow.task.md", &task("slow", "medium", "slow 200 30"));
    // The store gets the agent's progress once it has run for a moment (100 ms), not at
    // its first line.
    let status = || -> Value {
        serde_json::from_slice(&ws.run(&["status", "--json"]).stdout).expect("status json")
    };
    ws.wait_for(
        || {
            status()["running"][0]["progress"]["turns"]
                .as_u64()
                .is_some()
        },
        "progress in status",
    );
    let v = status();
    assert_eq!(v["daemon"]["running"], true);
    assert_eq!(v["daemon"]["pid"], ws.pid());
    assert_eq!(v["running"][0]["id"], "slow");
    assert!(v["running"][0]["progress"]["turns"].as_u64().is_some());
    let text = ws.run(&["status"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("slow"));
    let show = ws.run(&["show", "slow", "--json"]);
    let s: Value = serde_json::from_slice(&show.stdout).expect("show json");
    assert_eq!(s["state"], "running");
    ws.run(&["cancel", "slow"]);
    assert_eq!(ws.wait_result("slow")["status"], "cancelled");
    ws.wait_archived("slow");
    let out = ws.run(&["retry", "slow"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ws.wait_for(
        || {
            std::fs::read_to_string(ws.result_path("slow"))
                .unwrap_or_default()
                .contains("\"succeeded\"")
        },
        "retried run succeeds",
    );
    let list = ws.run(&["list", "--state", "succeeded", "--json"]);
    let l: Value = serde_json::from_slice(&list.stdout).expect("list json");
    assert_eq!(l[0]["id"], "slow");
    assert_eq!(l[0]["attempts"], 2);
    let tail = ws.run(&["tail-events", "--task", "slow", "--lines", "3"]);
    let lines: Vec<&str> = std::str::from_utf8(&tail.stdout)
        .unwrap_or("")
        .lines()
        .collect();
    assert_eq!(lines.len(), 3);
    std::thread::sleep(Duration::from_millis(10));
}

#[test]
fn config_reload_changes_the_worker_count_and_refuses_bad_values() {
    let mut ws = Ws::new();
    ws.set_env(&[("MAX_CONCURRENT_TASKS", "1")]);
    ws.start();
    ws.set_env(&[("MAX_CONCURRENT_TASKS", "3")]);
    ws.wait_for(
        || {
            ws.events_named("config_reloaded").iter().any(|e| {
                e["changed"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|n| n == "MAX_CONCURRENT_TASKS"))
            })
        },
        "config_reloaded with MAX_CONCURRENT_TASKS",
    );
    for i in 0..3 {
        ws.drop_task(
            &format!("p{i}.task.md"),
            &task(&format!("p{i}"), "medium", "sleep 1500"),
        );
    }
    // All three run at once: three starts before the first finish.
    ws.wait_for(
        || ws.events_named("claude_started").len() == 3,
        "three started",
    );
    assert!(
        ws.events_named("claude_finished").is_empty(),
        "three ran at the same time"
    );
    // An invalid value is refused and the old one kept.
    ws.set_env(&[("MAX_CONCURRENT_TASKS", "many")]);
    ws.wait_for(
        || {
            ws.events_named("config_reloaded")
                .iter()
                .any(|e| e["applied"] == false)
        },
        "refused reload",
    );
    let refused = ws
        .events_named("config_reloaded")
        .into_iter()
        .find(|e| e["applied"] == false)
        .expect("refused");
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or("")
            .contains("MAX_CONCURRENT_TASKS"),
        "{refused}"
    );
    ws.wait_for(
        || ws.events_named("task_archived").len() == 3,
        "three archived",
    );
    ws.drop_task("after.task.md", &task("after", "medium", "noop"));
    assert_eq!(ws.wait_result("after")["status"], "succeeded");
    assert_eq!(ws.stop(), Some(0));
}

#[test]
fn a_file_written_in_two_steps_is_not_rejected_for_being_half_written() {
    use std::io::Write as _;
    let mut ws = Ws::new();
    ws.start();
    let path = ws.path().join("tasks/half.task.md");
    // First write and close: the front matter is not closed yet.
    std::fs::write(&path, "---\nid: half\npriority: high\n").expect("first part");
    std::thread::sleep(Duration::from_millis(200));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("reopen");
    f.write_all(b"---\n\n**Prompt:**\nfake-agent: noop\n")
        .expect("second part");
    drop(f);
    let r = ws.wait_result("half");
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(r["priority"], "high");
    assert!(ws.events_named("task_rejected").is_empty());
}

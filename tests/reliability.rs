//! Reliability under failure (issue #5): crash loops, an unwritable results/ folder, a locked
//! store, a missing agent binary, a daemon out of file descriptors, and the task parser under
//! property-based fuzzing.

mod common;

use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{task, Ws};
use proptest::prelude::*;
use serde_json::Value;

/// Starts `orca run` as the leader of its own process group, so that killpg hits it and
/// everything it started in its group.
fn start_in_own_group(ws: &mut Ws) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ws.path().join("daemon.out"))
        .expect("daemon.out");
    let err = log.try_clone().expect("clone");
    let child = ws
        .cmd()
        .arg("run")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .expect("spawn orca run");
    let pid = child.id();
    ws.daemon = Some(child);
    ws.wait_for(
        || {
            ws.events()
                .iter()
                .any(|e| e["event"] == "daemon_started" && e["pid"] == pid)
        },
        "daemon_started",
    );
}

/// SIGKILL to the daemon's whole process group, then reap it.
fn killpg9(ws: &mut Ws) {
    if let Some(mut c) = ws.daemon.take() {
        // SAFETY: killpg(2) on the group our own child leads.
        unsafe {
            libc::killpg(c.id() as i32, libc::SIGKILL);
        }
        let _ = c.wait();
    }
}

/// A small deterministic generator (xorshift), seeded from the clock and printed on failure.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Waits for `cond` at most `limit`. Used where the daemon's 30 s safety-net rescan would
/// otherwise hide a missing retry: the bound is a liveness check far above the expected
/// 5 s retry period, not a performance assertion.
fn wait_within(ws: &Ws, limit: Duration, what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {limit:?} (before the 30 s rescan)\n--- daemon output:\n{}",
            ws.daemon_output()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn store_state(ws: &Ws, id: &str) -> Option<Value> {
    let out = ws.run(&["show", id, "--json"]);
    serde_json::from_slice(&out.stdout).ok()
}

#[test]
fn crash_loop_loses_nothing_and_runs_nothing_twice_to_the_end() {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    eprintln!("crash loop seed: {seed}");
    let mut rng = Rng(seed);
    let mut ws = Ws::new();
    ws.set_env(&[("MAX_CONCURRENT_TASKS", "8")]);
    start_in_own_group(&mut ws);
    let ids: Vec<String> = (0..100).map(|i| format!("c{i:03}")).collect();
    for id in &ids {
        ws.drop_task(&format!("{id}.task.md"), &task(id, "medium", "sleep 60"));
    }
    for round in 0..5 {
        std::thread::sleep(Duration::from_millis(150 + rng.below(500)));
        killpg9(&mut ws);
        eprintln!(
            "round {round}: killed; {} archived so far",
            ws.files_in("tasks/processed").len()
        );
        start_in_own_group(&mut ws);
    }
    ws.wait_for(
        || ws.files_in("tasks/processed").len() == 100 && ws.files_in("tasks").is_empty(),
        "every task archived",
    );
    ws.stop();
    // Exactly one result and one archived file per task: no `-2` duplicates anywhere.
    let mut results = ws.files_in("results");
    results.sort();
    let want: Vec<String> = ids.iter().map(|id| format!("{id}_result.json")).collect();
    assert_eq!(results, want);
    let want: Vec<String> = ids.iter().map(|id| format!("{id}.task.md")).collect();
    assert_eq!(ws.files_in("tasks/processed"), want);
    assert!(ws.files_in("tasks").is_empty());
    for id in &ids {
        let r: Value =
            serde_json::from_str(&std::fs::read_to_string(ws.result_path(id)).unwrap()).unwrap();
        assert_eq!(r["status"], "succeeded", "{r:#}");
        assert_eq!(r["archived_to"], format!("tasks/processed/{id}.task.md"));
    }
    // Every event line parses (ws.events() fails the test on a line that does not).
    let events = ws.events();
    for id in &ids {
        let archived = events
            .iter()
            .filter(|e| e["event"] == "task_archived" && e["task_id"] == id.as_str())
            .count();
        assert_eq!(
            archived,
            1,
            "task {id} archived {archived} times; its events and the daemon's starts:\n{}",
            events
                .iter()
                .filter(|e| e["task_id"] == id.as_str() || e["event"] == "daemon_started")
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"] == "daemon_started")
            .count(),
        6
    );
}

#[test]
fn unwritable_results_keep_the_task_pending_until_fixed() {
    let mut ws = Ws::new();
    ws.start();
    ws.drop_task("first.task.md", &task("first", "medium", "noop"));
    ws.wait_result("first");
    ws.wait_archived("first");
    // results/ becomes a file: no artifact can be written (root ignores permission bits).
    let results = ws.path().join("results");
    let aside = ws.path().join("results.aside");
    std::fs::rename(&results, &aside).unwrap();
    std::fs::write(&results, "not a folder").unwrap();
    ws.drop_task("blocked.task.md", &task("blocked", "medium", "noop"));
    ws.wait_for(
        || {
            store_state(&ws, "blocked")
                .is_some_and(|v| v["state"] == "succeeded" || v["state"] == "failed")
        },
        "blocked is final in the store",
    );
    // Give the daemon a moment to try (and fail) to write the artifacts.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        ws.path().join("tasks/blocked.task.md").is_file(),
        "the task file stays in tasks/ while its result cannot be written"
    );
    let daemon = ws.daemon.as_mut().unwrap();
    assert!(daemon.try_wait().unwrap().is_none(), "the daemon lives");
    let log = std::fs::read_to_string(ws.path().join("logs/orchestrator.log")).unwrap_or_default();
    assert!(
        log.contains("cannot write the artifacts") && log.contains("blocked"),
        "the log says why: {log}"
    );
    // Fix it without touching the store: the periodic retry writes the artifacts.
    std::fs::remove_file(&results).unwrap();
    std::fs::rename(&aside, &results).unwrap();
    wait_within(&ws, Duration::from_secs(20), "the retried finalize", || {
        ws.path().join("tasks/processed/blocked.task.md").is_file()
    });
    let r = ws.wait_result("blocked");
    assert_eq!(r["status"], "succeeded", "{r:#}");
    ws.wait_archived("blocked");
    assert!(ws.path().join("tasks/processed/blocked.task.md").is_file());
    assert!(ws.path().join("summaries/blocked_summary.txt").is_file());
    assert!(ws.result_path("first").is_file());
    assert_eq!(ws.stop(), Some(0));
}

#[test]
fn a_locked_store_delays_tasks_but_loses_none() {
    let mut ws = Ws::new();
    ws.start();
    let db = ws.path().join(".orca/orca.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let locked_at = Instant::now();
    let ids: Vec<String> = (0..5).map(|i| format!("l{i}")).collect();
    for id in &ids {
        ws.drop_task(&format!("{id}.task.md"), &task(id, "medium", "noop"));
    }
    // Held past the daemon's 5 s busy timeout, so its retry path runs too.
    std::thread::sleep(Duration::from_secs(6).saturating_sub(locked_at.elapsed()));
    assert!(
        ws.files_in("results").is_empty(),
        "nothing can finish while the store is locked"
    );
    let daemon = ws.daemon.as_mut().unwrap();
    assert!(daemon.try_wait().unwrap().is_none(), "the daemon lives");
    conn.execute_batch("COMMIT").unwrap();
    drop(conn);
    wait_within(&ws, Duration::from_secs(20), "every task archived", || {
        ws.files_in("tasks/processed").len() == ids.len()
    });
    for id in &ids {
        assert_eq!(ws.wait_result(id)["status"], "succeeded");
        ws.wait_archived(id);
    }
    assert_eq!(ws.files_in("tasks/processed").len(), ids.len());
    assert!(ws.files_in("tasks").is_empty());
    assert_eq!(ws.stop(), Some(0));
}

#[test]
fn a_missing_agent_fails_clearly_and_doctor_says_how_to_fix_it() {
    let mut ws = Ws::new();
    ws.set_env(&[("CLAUDE_BIN", "/nonexistent")]);
    ws.start();
    ws.drop_task("lonely.task.md", &task("lonely", "medium", "noop"));
    let r = ws.wait_result("lonely");
    assert_eq!(r["status"], "failed", "{r:#}");
    assert_eq!(r["error"]["kind"], "agent_missing", "{r:#}");
    let msg = r["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("/nonexistent"), "{msg}");
    let hint = r["error"]["hint"].as_str().unwrap_or("");
    assert!(
        hint.contains("CLAUDE_BIN") && hint.contains("npm install"),
        "{hint}"
    );
    assert_eq!(r["attempts"], 1, "a missing binary is not retried");
    ws.wait_archived("lonely");
    let doc = ws.run(&["doctor"]);
    assert_eq!(doc.status.code(), Some(1));
    let out = String::from_utf8_lossy(&doc.stdout);
    assert!(
        out.contains("CLAUDE_BIN") && out.contains("/nonexistent") && out.contains("npm install"),
        "{out}"
    );
    assert_eq!(ws.stop(), Some(0));
}

/// Sets the soft limit on open files of process `pid`; returns the limits it had.
fn set_open_files_limit(pid: i32, soft: u64) -> libc::rlimit {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a null new limit only reads the old one into `old`, which is valid.
    let got = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) };
    assert_eq!(got, 0, "prlimit: {}", std::io::Error::last_os_error());
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: old.rlim_max,
    };
    // SAFETY: both pointers are valid for the call.
    let set = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()) };
    assert_eq!(set, 0, "prlimit: {}", std::io::Error::last_os_error());
    old
}

/// Running out of file descriptors is the machine's state, not the task's fault nor a
/// missing agent: the task is tried again, then fails with a message that says which limit
/// to raise; nothing is lost, the daemon lives and takes tasks again once the limit is up.
#[test]
fn a_daemon_out_of_file_descriptors_retries_fails_clearly_and_recovers() {
    let mut ws = Ws::new();
    ws.set_env(&[("ORCA_MAX_RETRIES", "1"), ("MAX_CONCURRENT_TASKS", "2")]);
    ws.start();
    let pid = ws.pid() as i32;
    // Room for a file or two, not for an agent's pipes.
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .count() as u64;
    let before = set_open_files_limit(pid, open + 4);
    for id in ["starved-a", "starved-b"] {
        ws.drop_task(&format!("{id}.task.md"), &task(id, "medium", "noop"));
    }
    for id in ["starved-a", "starved-b"] {
        let r = ws.wait_result(id);
        assert_eq!(r["status"], "failed", "{r:#}");
        assert_eq!(r["error"]["kind"], "transient", "not agent_missing: {r:#}");
        let msg = r["error"]["message"].as_str().unwrap_or("");
        assert!(
            msg.contains("ulimit -n") && msg.contains("MAX_CONCURRENT_TASKS"),
            "{msg}"
        );
        assert!(
            !msg.contains("npm install"),
            "not blamed on the agent: {msg}"
        );
        assert_eq!(r["attempts"], 2, "tried again once: {r:#}");
        ws.wait_archived(id);
    }
    let retries = ws.events_named("retry");
    assert!(
        retries.iter().any(|e| e["task_id"] == "starved-a"
            && e["reason"].as_str().unwrap_or("").contains("open files")),
        "{retries:?}"
    );
    assert!(common::alive(pid), "the daemon lives");
    set_open_files_limit(pid, before.rlim_cur);
    ws.drop_task("fed.task.md", &task("fed", "medium", "noop"));
    assert_eq!(ws.wait_result("fed")["status"], "succeeded");
    assert_eq!(ws.stop(), Some(0));
}

/// Pieces that task files are made of, and pieces that parsers trip on.
const FRAGMENTS: &[&str] = &[
    "---\n",
    "id: x\n",
    "priority: high\n",
    "type: fix\n",
    "retries: 99999999999999999999\n",
    "requires: [a, b, [c, [d]]]\n",
    "a: &a [*a, *a, *a]\n",
    "b: &b {x: *a, y: *a}\n",
    "x-custom: {deep: {deeper: {deepest: 1}}}\n",
    "timeout_sec: -1\n",
    "created: 2026-13-45T99:99:99Z\n",
    "[[[[[[[[[[[[[[[[[[[[",
    "{{{{{{{{{{{{{{{{{{{{",
    "# Title\n",
    "## Prompt\n",
    "**Prompt:**\n",
    "**Target Files:**\n- src/a.rs\n",
    "**Success Criteria:**\n- [ ] works\n- [x] done\n",
    "**Context:**\n",
    "```\ncode\n```\n",
    "    indented\n",
    "\r\n",
    "\u{feff}",
    "\t",
    "- ",
    "***",
    "é漢字🦀",
    "\0",
    "'\"\\",
    "... \n",
    "!!binary |\n  AAAA\n",
    "? complex key\n: value\n",
];

fn fuzz_input() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => prop::sample::select(FRAGMENTS).prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ];
    (
        prop::collection::vec(piece, 0..64),
        0usize..=1 << 20,
        any::<bool>(),
    )
        .prop_map(|(pieces, target, repeat)| {
            let mut out: Vec<u8> = pieces.concat();
            if repeat && !out.is_empty() {
                // Grow to the target size (up to 1 MiB) by repeating the pieces.
                let unit = out.clone();
                while out.len() < target {
                    out.extend_from_slice(&unit);
                }
                out.truncate(target.max(1));
            }
            out
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_parser_neither_panics_nor_hangs(input in fuzz_input()) {
        let len = input.len();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let ok = std::panic::catch_unwind(|| {
                let _ = orca::task::parse_bytes(std::path::Path::new("tasks/fuzz.task.md"), &input);
            })
            .is_ok();
            let _ = tx.send(ok);
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(ok) => prop_assert!(ok, "the parser panicked on {len} bytes"),
            Err(_) => prop_assert!(false, "the parser did not finish within 10 s on {len} bytes"),
        }
    }
}

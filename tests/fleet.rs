//! Many machines (DESIGN §12): real `orca run` nodes, each in a workspace of its own, on one
//! PostgreSQL database, with the fake agent. The server is `ORCA_TEST_PG_URL` (default
//! postgres://postgres@127.0.0.1:5432/test, as tests/postgres_store.rs); each test makes a
//! database of its own and drops it at the end. Without a server the tests fail in CI
//! (CI=true) and are skipped, saying so, elsewhere.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{task, Ws, TIMEOUT};
use serde_json::Value;

#[path = "common/test_db.rs"]
#[macro_use]
mod test_db;
use test_db::TestDb;

/// A node: a workspace of its own on database `url`.
fn node(url: &str, id: &str, settings: &[(&str, &str)]) -> Ws {
    let ws = Ws::new();
    ws.set_env(&[
        ("ORCA_DATABASE_URL", url),
        ("ORCA_NODE_ID", id),
        ("ORCA_SHUTDOWN_GRACE_SEC", "1"),
    ]);
    ws.set_env(settings);
    ws
}

/// A task file for the fake agent in `mode`, requiring `requires`.
fn task_requiring(id: &str, priority: &str, mode: &str, requires: &[&str]) -> String {
    format!(
        "---\nid: {id}\npriority: {priority}\nrequires: [{}]\n---\n\n# Task {id}\n\n**Prompt:**\nDo the thing.\nfake-agent: {mode}\n",
        requires.join(", ")
    )
}

/// Task ids the fake agent started for, on this node, with their attempt numbers.
fn starts(ws: &Ws) -> Vec<(String, String)> {
    ws.agent_starts()
        .into_iter()
        .filter(|l| l.len() >= 3)
        .map(|l| (l[1].clone(), l[2].clone()))
        .collect()
}

fn json_of(ws: &Ws, args: &[&str]) -> Value {
    let out = ws.run(args);
    assert!(
        out.status.success(),
        "orca {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "orca {args:?} is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `show --json`'s task state of `id`, as seen from `ws`.
fn state_of(ws: &Ws, id: &str) -> String {
    let v = json_of(ws, &["show", id, "--json"]);
    v["state"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn three_nodes_share_300_tasks_each_run_once_and_the_origin_writes_every_result() {
    let db = db_or_skip!();
    let mut a = node(&db.url, "node-a", &[("MAX_CONCURRENT_TASKS", "3")]);
    let mut b = node(&db.url, "node-b", &[("MAX_CONCURRENT_TASKS", "3")]);
    let mut c = node(&db.url, "node-c", &[("MAX_CONCURRENT_TASKS", "3")]);
    a.start();
    b.start();
    c.start();
    let status = json_of(&a, &["status", "--json"]);
    let ids: Vec<&str> = status["nodes"]
        .as_array()
        .map(|n| n.iter().filter_map(|x| x["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, ["node-a", "node-b", "node-c"], "{status:#}");
    assert_eq!(status["store"]["kind"], "postgres", "{status:#}");

    const N: usize = 300;
    for i in 0..N {
        a.drop_task(
            &format!("t{i:03}.task.md"),
            &task(&format!("t{i:03}"), "medium", "noop"),
        );
    }
    a.wait_for(
        || a.files_in("results").len() == N && a.files_in("tasks/processed").len() == N,
        "300 results and archived files in node-a",
    );
    // Exactly once: one start per task over the fleet, one attempt each.
    let all: Vec<(String, String)> = [&a, &b, &c].iter().flat_map(|w| starts(w)).collect();
    assert_eq!(all.len(), N, "agent starts over the fleet");
    let distinct: BTreeSet<&String> = all.iter().map(|(id, _)| id).collect();
    assert_eq!(distinct.len(), N);
    assert!(all.iter().all(|(_, attempt)| attempt == "1"), "{all:?}");
    // Shared: every node ran some.
    for w in [&a, &b, &c] {
        assert!(!starts(w).is_empty(), "a node ran nothing");
    }
    // Only the origin writes artifacts; each attempt names its node.
    assert!(b.files_in("results").is_empty() && c.files_in("results").is_empty());
    let mut by_node: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..N {
        let r = a.wait_result(&format!("t{i:03}"));
        assert_eq!(r["status"], "succeeded", "{r:#}");
        assert_eq!(r["attempts"], 1, "{r:#}");
        let n = r["attempt_history"][0]["node"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        *by_node.entry(n).or_default() += 1;
    }
    let ran_b = starts(&b).len();
    assert_eq!(
        by_node.get("node-b").copied().unwrap_or(0),
        ran_b,
        "{by_node:?}"
    );
    assert_eq!(by_node.values().sum::<usize>(), N, "{by_node:?}");
    let names: Vec<&str> = by_node.keys().map(String::as_str).collect();
    assert_eq!(names, ["node-a", "node-b", "node-c"], "{by_node:?}");
    for (w, id) in [(&a, "node-a"), (&c, "node-c")] {
        assert_eq!(by_node[id], starts(w).len(), "{by_node:?}");
    }
    // A result of a task node-b ran carries that run's output, handed over.
    let (id, _) = &starts(&b)[0];
    let r = a.wait_result(id);
    assert!(r["output"].as_str().unwrap_or("").contains("Done"), "{r:#}");
    for w in [&mut a, &mut b, &mut c] {
        assert_eq!(w.stop(), Some(0), "{}", w.daemon_output());
    }
    // Stopped nodes leave the list.
    let status = json_of(&a, &["status", "--json"]);
    assert!(status.get("nodes").is_none(), "{status:#}");
}

#[test]
fn priority_holds_across_nodes_and_labels_route() {
    let db = db_or_skip!();
    // node-a takes the files in but offers no `work` label: it runs none of them.
    let mut a = node(&db.url, "node-a", &[]);
    a.start();
    let tasks = [
        ("l1", "low"),
        ("l2", "low"),
        ("m1", "medium"),
        ("h1", "high"),
        ("h2", "high"),
    ];
    for (id, prio) in tasks {
        a.drop_task(
            &format!("{id}.task.md"),
            &task_requiring(id, prio, "noop", &["work"]),
        );
    }
    a.wait_for(
        || a.events_named("queued").len() == tasks.len(),
        "all queued",
    );
    // Nobody can run them: status and show say why.
    let status = json_of(&a, &["status", "--json"]);
    assert_eq!(
        status["blocked"].as_array().map(Vec::len),
        Some(5),
        "{status:#}"
    );
    let show = json_of(&a, &["show", "h1", "--json"]);
    let why = show["waiting_for"].as_str().unwrap_or("");
    assert!(
        why.contains("waiting for a node with labels work") && why.contains("node-a"),
        "{show:#}"
    );
    // The text forms say it too.
    let text = String::from_utf8_lossy(&a.run(&["show", "h1"]).stdout).into_owned();
    assert!(
        text.contains("waits      waiting for a node with labels work (ORCA_NODE_LABELS); live nodes: node-a (no labels)"),
        "{text}"
    );
    let text = String::from_utf8_lossy(&a.run(&["status"]).stdout).into_owned();
    assert!(
        text.contains(
            "blocked   5 queued task(s) require labels no node offers (see the live nodes above)"
        ) && text.contains("needs work")
            && text.contains("node      node-a"),
        "{text}"
    );
    let mut b = node(
        &db.url,
        "node-b",
        &[
            ("ORCA_NODE_LABELS", "work,gpu"),
            ("MAX_CONCURRENT_TASKS", "1"),
        ],
    );
    // One runner with one slot: its claims follow the queue's order. (With two runners,
    // claims in flight at once skip each other's locked rows, so start times may interleave.)
    b.start();
    for (id, _) in tasks {
        a.wait_result(id);
    }
    assert!(
        starts(&a).is_empty(),
        "node-a has no `work` label: {:?}",
        starts(&a)
    );
    let started = |id: &str| {
        let r = a.wait_result(id);
        r["started_at"].as_str().unwrap_or("").to_owned()
    };
    // RFC 3339 times of one clock sort as text.
    let highest_last = ["h1", "h2"].iter().map(|id| started(id)).max().unwrap();
    let medium = started("m1");
    let lowest_first = ["l1", "l2"].iter().map(|id| started(id)).min().unwrap();
    assert!(
        highest_last <= medium && medium <= lowest_first,
        "{highest_last} {medium} {lowest_first}"
    );
    assert_eq!(starts(&b).len(), tasks.len(), "node-b ran them all");
    for w in [&mut a, &mut b] {
        assert_eq!(w.stop(), Some(0));
    }
}

#[test]
fn a_node_killed_mid_run_loses_nothing_its_task_finishes_elsewhere_after_the_lease() {
    let db = db_or_skip!();
    let lease = [("ORCA_LEASE_SEC", "2"), ("ORCA_NODE_LABELS", "work")];
    let mut a = node(&db.url, "node-a", &[("ORCA_LEASE_SEC", "2")]);
    let mut b = node(&db.url, "node-b", &lease);
    let mut c = node(&db.url, "node-c", &lease);
    a.start();
    b.start();
    a.drop_task(
        "k.task.md",
        &task_requiring("k", "medium", "sleep 1500", &["work"]),
    );
    b.wait_for(|| !starts(&b).is_empty(), "node-b starts the task");
    b.kill9();
    c.start();
    let r = a.wait_result("k");
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(r["attempts"], 2, "{r:#}");
    let h = &r["attempt_history"];
    assert_eq!(h[0]["node"], "node-b", "{r:#}");
    assert_eq!(h[0]["outcome"], "interrupted", "{r:#}");
    assert_eq!(h[1]["node"], "node-c", "{r:#}");
    // A live node put it back: lease_expired, then recovered.
    let names: Vec<String> = a
        .events()
        .into_iter()
        .chain(c.events())
        .filter(|e| e["task_id"] == "k")
        .filter_map(|e| e["event"].as_str().map(str::to_owned))
        .filter(|n| n == "lease_expired" || n == "recovered")
        .collect();
    assert_eq!(names, ["lease_expired", "recovered"], "{names:?}");
    a.stop();
    c.stop();
}

#[test]
fn a_node_whose_lease_was_taken_cannot_finish_and_stops_its_agent() {
    let db = db_or_skip!();
    let lease = [("ORCA_LEASE_SEC", "1"), ("ORCA_NODE_LABELS", "work")];
    let mut a = node(&db.url, "node-a", &[("ORCA_LEASE_SEC", "1")]);
    let mut b = node(&db.url, "node-b", &lease);
    let mut c = node(&db.url, "node-c", &lease);
    a.start();
    b.start();
    a.drop_task(
        "f.task.md",
        &task_requiring("f", "medium", "sleep 4000", &["work"]),
    );
    b.wait_for(|| !starts(&b).is_empty(), "node-b starts the task");
    // node-b freezes (its agent runs on): its lease runs out and node-c takes the task.
    b.signal(libc::SIGSTOP);
    c.start();
    c.wait_for(|| !starts(&c).is_empty(), "node-c takes the task over");
    b.signal(libc::SIGCONT);
    let r = a.wait_result("f");
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(r["attempts"], 2, "{r:#}");
    assert_eq!(r["attempt_history"][1]["node"], "node-c", "{r:#}");
    assert_eq!(r["attempt_history"][0]["outcome"], "interrupted", "{r:#}");
    b.wait_for(
        || {
            b.daemon_output()
                .contains("lease was taken over by another node")
        },
        "node-b says its lease was taken",
    );
    // node-b's agent was stopped, not finished: the result stays node-c's.
    assert_eq!(starts(&b).len(), 1);
    assert!(b.files_in("results").is_empty());
    for w in [&mut a, &mut b, &mut c] {
        w.stop();
    }
}

#[test]
fn a_cancel_from_a_node_not_running_the_task_stops_it_at_once() {
    let db = db_or_skip!();
    let mut a = node(&db.url, "node-a", &[]);
    let mut b = node(&db.url, "node-b", &[("ORCA_NODE_LABELS", "work")]);
    a.start();
    b.start();
    a.drop_task(
        "c.task.md",
        &task_requiring("c", "medium", "sleep 60000", &["work"]),
    );
    b.wait_for(|| !starts(&b).is_empty(), "node-b runs the task");
    let asked = Instant::now();
    let out = a.run(&["cancel", "c"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Generous deadline, far below the agent's own 60 s.
    a.wait_for(
        || state_of(&a, "c") == "cancelled" || asked.elapsed() > Duration::from_secs(20),
        "the cancel",
    );
    assert_eq!(
        state_of(&a, "c"),
        "cancelled",
        "node-b:\n{}\n{}",
        b.daemon_output(),
        std::fs::read_to_string(b.path().join("logs/orchestrator.log")).unwrap_or_default()
    );
    assert!(asked.elapsed() < Duration::from_secs(30));
    let r = a.wait_result("c");
    assert_eq!(r["status"], "cancelled", "{r:#}");
    // Every node sees it: list on node-b too.
    assert_eq!(state_of(&b, "c"), "cancelled");
    a.stop();
    b.stop();
}

#[test]
fn two_nodes_starting_at_once_on_a_fresh_database_both_migrate() {
    let db = db_or_skip!();
    let a = node(&db.url, "node-a", &[]);
    let b = node(&db.url, "node-b", &[]);
    let mut ca = a
        .cmd()
        .arg("run")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut cb = b
        .cmd()
        .arg("run")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = |w: &Ws| !w.events_named("daemon_started").is_empty();
    let deadline = Instant::now() + TIMEOUT;
    while !(started(&a) && started(&b)) {
        if Instant::now() > deadline
            || matches!(ca.try_wait(), Ok(Some(_)))
            || matches!(cb.try_wait(), Ok(Some(_)))
        {
            let _ = ca.kill();
            let _ = cb.kill();
            panic!("both nodes must start on a fresh database");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    a.drop_task("x.task.md", &task("x", "medium", "noop"));
    assert_eq!(a.wait_result("x")["status"], "succeeded");
    let status = json_of(&b, &["status", "--json"]);
    assert_eq!(
        status["nodes"].as_array().map(Vec::len),
        Some(2),
        "{status:#}"
    );
    for c in [&mut ca, &mut cb] {
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let _ = c.wait();
    }
}

/// A PostgreSQL cluster of this test's own (initdb into a temporary folder, a free port),
/// to stop and start under a running node without touching the shared server. Stopped when
/// dropped.
struct PrivateServer {
    bin: std::path::PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivateServer {
    /// None (skip, saying why) when the server's programs are not installed.
    fn start() -> Option<PrivateServer> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .find(|b| b.join("initdb").is_file() && b.join("pg_ctl").is_file());
        let Some(bin) = bin else {
            eprintln!("skipped: no initdb/pg_ctl under /usr/lib/postgresql/*/bin");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let s = PrivateServer { bin, dir, port };
        // initdb refuses to run as root: then as the `postgres` user, who owns the folder.
        if nix_is_root() {
            let st = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(s.dir.path())
                .status()
                .unwrap();
            assert!(st.success(), "chown of the private cluster's folder");
        }
        let data = s.dir.path().join("data");
        let out = s
            .pg(&s.bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        s.ctl("start");
        Some(s)
    }

    fn pg(&self, program: &std::path::Path) -> std::process::Command {
        if nix_is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            std::process::Command::new(program)
        }
    }

    /// `pg_ctl start` or `stop` (fast), waiting for it.
    fn ctl(&self, what: &str) {
        let data = self.dir.path().join("data");
        let mut c = self.pg(&self.bin.join("pg_ctl"));
        c.arg("-D")
            .arg(&data)
            .args(["-w", "-l"])
            .arg(self.dir.path().join("server.log"));
        if what == "start" {
            c.arg("-o").arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1",
                self.port,
                self.dir.path().display()
            ));
        } else {
            c.args(["-m", "fast"]);
        }
        let out = c.arg(what).output().unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self
            .pg(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

fn nix_is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn the_database_stopped_and_started_under_a_running_node() {
    let Some(server) = PrivateServer::start() else {
        return;
    };
    let mut a = node(&server.url(), "node-a", &[("MAX_CONCURRENT_TASKS", "1")]);
    a.start();
    a.drop_task("long.task.md", &task("long", "medium", "sleep 3000"));
    a.wait_for(|| !starts(&a).is_empty(), "the agent starts");
    server.ctl("stop");
    // The node says so, keeps its agent, and stops claiming.
    a.wait_for(
        || a.daemon_output().contains("lost the database"),
        "the node reports the lost database",
    );
    // The agent ends while the database is down; its end is recorded once it is back.
    std::thread::sleep(Duration::from_millis(3500));
    assert!(!a.result_path("long").exists());
    server.ctl("start");
    a.wait_for(
        || a.daemon_output().contains("the database is back"),
        "the node reports the database back",
    );
    let r = a.wait_result("long");
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(r["attempts"], 1, "{r:#}");
    // It claims again.
    a.drop_task("after.task.md", &task("after", "medium", "noop"));
    assert_eq!(a.wait_result("after")["status"], "succeeded");
    assert_eq!(starts(&a).len(), 2, "the agent ran once per task");
    assert_eq!(a.stop(), Some(0), "{}", a.daemon_output());
}

/// A `postgres://` URL nothing answers at: `orca run` and the commands on the store stop at
/// once with exit 2, naming host, port and database, never the password; no task file is
/// taken and nothing is created in the database's stead.
#[test]
fn an_unreachable_database_at_start_is_a_clear_error_exit_2() {
    // Nothing listens on port 1 of the loopback address.
    let url = "postgres://orca:HUNTER2@127.0.0.1:1/fleetdb";
    let ws = node(url, "node-a", &[]);
    ws.drop_task("t.task.md", &task("t", "medium", "noop"));
    for args in [&["run"][..], &["status"], &["list"], &["submit", "-p", "x"]] {
        let out = ws.run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "orca {args:?}: {err}");
        assert!(
            err.contains("127.0.0.1:1") && err.contains("database fleetdb"),
            "orca {args:?}: {err}"
        );
        assert!(!err.contains("HUNTER2"), "orca {args:?}: {err}");
    }
    assert!(
        ws.path().join("tasks/t.task.md").is_file(),
        "the file stays"
    );
    assert!(
        !ws.path().join(".orca/orca.db").exists(),
        "no SQLite stand-in"
    );
}

#[test]
fn doctor_checks_the_shared_queue() {
    let db = db_or_skip!();
    let ws = node(&db.url, "node-a", &[]);
    let text = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).into_owned();
    let out = ws.run(&["doctor"]);
    let t = text(&out);
    assert!(t.contains("Shared queue (ORCA_DATABASE_URL)"), "{t}");
    assert!(
        t.contains("PostgreSQL ") && t.contains("no Orca schema yet"),
        "{t}"
    );
    // `orca list` opens the store: the schema is made.
    assert!(ws.run(&["list"]).status.success());
    let t = text(&ws.run(&["doctor"]));
    assert!(t.contains("schema version "), "{t}");

    // A server that cannot be reached: FAIL naming it, exit 1, no password printed.
    let bad = node("postgres://orca:HUNTER2@127.0.0.1:1/fleetdb", "node-b", &[]);
    let out = bad.run(&["doctor"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("cannot connect to the PostgreSQL server at 127.0.0.1:1 (database fleetdb)"),
        "{t}"
    );
    assert!(!t.contains("HUNTER2"), "{t}");
}

/// The `(event, task_id)` pairs of `tail-events --json` output.
fn event_pairs(text: &str) -> BTreeSet<(String, String)> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| {
            (
                v["event"].as_str().unwrap_or_default().to_owned(),
                v["task_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn tail_events_on_any_node_sees_the_whole_fleet_and_follows_it() {
    let db = db_or_skip!();
    let mut a = node(&db.url, "node-a", &[]);
    let mut b = node(&db.url, "node-b", &[("ORCA_NODE_LABELS", "work")]);
    a.start();
    b.start();
    // `--follow` on node-a from before the second task, into a file.
    let followed = a.path().join("followed.ndjson");
    let mut follower = a
        .cmd()
        .args(["tail-events", "--follow", "--json", "--lines", "0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&followed).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn tail-events --follow");
    // Taken in by node-a, run by node-b (only it has the label), written by node-a.
    for id in ["e1", "e2"] {
        a.drop_task(
            &format!("{id}.task.md"),
            &task_requiring(id, "medium", "noop", &["work"]),
        );
        assert_eq!(a.wait_result(id)["status"], "succeeded");
    }
    assert!(
        a.events_named("claude_started").is_empty(),
        "node-a ran an agent itself"
    );
    for (ws, name) in [(&a, "node-a"), (&b, "node-b")] {
        let seen = || {
            let out = ws.run(&["tail-events", "--json", "--lines", "1000"]);
            assert!(
                out.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            event_pairs(&String::from_utf8_lossy(&out.stdout))
        };
        // The events go to the database in batches: a moment after the result.
        ws.wait_for(
            || {
                let s = seen();
                ["e1", "e2"].iter().all(|id| {
                    [
                        "task_received",
                        "claude_started",
                        "claude_finished",
                        "task_archived",
                    ]
                    .iter()
                    .all(|ev| s.contains(&(ev.to_string(), id.to_string())))
                })
            },
            &format!("{name} to see both nodes' events of both tasks"),
        );
        // --task: only that task's events.
        let out = ws.run(&["tail-events", "--json", "--task", "e2", "--lines", "1000"]);
        let pairs = event_pairs(&String::from_utf8_lossy(&out.stdout));
        assert!(!pairs.is_empty(), "{name}");
        assert!(pairs.iter().all(|(_, t)| t == "e2"), "{name}: {pairs:?}");
    }
    // The follower saw e2's run on node-b as it happened.
    a.wait_for(
        || {
            let s = event_pairs(&std::fs::read_to_string(&followed).unwrap_or_default());
            s.contains(&("claude_started".into(), "e2".into()))
                && s.contains(&("task_archived".into(), "e2".into()))
        },
        "tail-events --follow on node-a to show node-b's run of e2",
    );
    let _ = follower.kill();
    let _ = follower.wait();
    a.stop();
    b.stop();
}

//! The fleet benchmark (issue #22): real `orca run` nodes on one PostgreSQL server, with the
//! no-op agent (a 0-ms agent). It measures:
//!
//! - the aggregate rate of 1, 2 and 3 nodes: N task files, split over the nodes' own
//!   `tasks/`, from the first file written to the last result (every task claimed from the
//!   shared queue, run, finished and written by its origin);
//! - cross-node pickup latency: files written 20 ms apart into a node that cannot run them
//!   (they `require` a label only another node offers), from the file closed to the agent's
//!   start on the other node. Through `LISTEN/NOTIFY`, and with `ORCA_PG_POLL_ONLY=true`
//!   (the tick's safety poll alone) for comparison.
//!
//! Run: `cargo bench --bench fleet` (after `--`: `--pg URL` the server, default
//! `ORCA_TEST_PG_URL` or postgres://postgres@127.0.0.1:5432/test; `--tasks N` per rate
//! measure, default 1000; `--json FILE` also writes the JSON lines). Each measure makes a
//! database of its own and drops it. Nothing here asserts a timing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, UNIX_EPOCH};

#[path = "common.rs"]
mod common;
use common::{build_agent, now_ns, percentile, pickup_ms, stop_daemon, wait, Res};

const ORCA: &str = env!("CARGO_BIN_EXE_orca");
/// Slots per node.
const WORKERS: usize = 8;

/// Settings of the benchmark's own environment that must not reach the nodes.
const SCRUB: &[&str] = &[
    "MAX_CONCURRENT_TASKS",
    "CLAUDE_BIN",
    "CLAUDE_BASE_CWD",
    "CLAUDE_ALLOWED_ROOT",
    "LOG_LEVEL",
    "ORCA_LLM",
    "ORCA_ROOT",
    "ORCA_DATABASE_URL",
    "ORCA_NODE_ID",
    "ORCA_NODE_LABELS",
    "ORCA_PG_POLL_ONLY",
    "ORCA_FAKE_AGENT_LOG",
    "ORCA_FAKE_AGENT_CLOCK",
];

/// A database of its own on the server, dropped with its connections at the end.
struct Db {
    admin: String,
    name: String,
    url: String,
}

impl Db {
    fn new(admin: &str, tag: &str) -> Res<Db> {
        let mut c = postgres::Client::connect(admin, postgres::NoTls)
            .map_err(|e| format!("cannot reach {admin}: {e}"))?;
        let name = format!("orca_bench_{tag}_{}", std::process::id());
        // Two statements: neither may run inside the transaction of a multi-statement query.
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            c.batch_execute(&sql).map_err(|e| {
                format!(
                    "{sql}: {}",
                    e.as_db_error()
                        .map_or(e.to_string(), |d| d.message().to_owned())
                )
            })?;
        }
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b)
            .ok_or("the server URL has no /DATABASE")?;
        Ok(Db {
            admin: admin.to_owned(),
            url: format!("{base}/{name}"),
            name,
        })
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// A node: a workspace of its own (in RAM when /dev/shm is there) and its `orca run`.
struct Node {
    dir: tempfile::TempDir,
    daemon: Option<Child>,
}

impl Node {
    fn new(agent: &Path, url: &str, id: &str, extra: &[(&str, &str)]) -> Res<Node> {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("orca-fleet-bench-")
            .tempdir_in(&base)
            .map_err(|e| e.to_string())?;
        std::fs::create_dir_all(dir.path().join("ws/tasks")).map_err(|e| e.to_string())?;
        let mut env = format!(
            "CLAUDE_BIN={}\nORCA_LLM=off\nMAX_CONCURRENT_TASKS={WORKERS}\n\
             ORCA_DATABASE_URL={url}\nORCA_NODE_ID={id}\nORCA_SHUTDOWN_GRACE_SEC=2\n",
            agent.display()
        );
        for (k, v) in extra {
            env.push_str(&format!("{k}={v}\n"));
        }
        env.push_str(&format!(
            "ORCA_FAKE_AGENT_LOG={}\nORCA_FAKE_AGENT_CLOCK=1\n",
            dir.path().join("agent-starts.log").display()
        ));
        std::fs::write(dir.path().join("ws/.env"), env).map_err(|e| e.to_string())?;
        Ok(Node { dir, daemon: None })
    }

    fn ws(&self) -> PathBuf {
        self.dir.path().join("ws")
    }

    fn start(&mut self) -> Res<()> {
        let out =
            std::fs::File::create(self.dir.path().join("daemon.out")).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(ORCA);
        for k in SCRUB {
            cmd.env_remove(k);
        }
        let child = cmd
            .arg("--root")
            .arg(self.ws())
            .arg("run")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {ORCA}: {e}"))?;
        self.daemon = Some(child);
        let events = self.ws().join("logs/events.ndjson");
        wait(Duration::from_secs(60), "daemon_started", || {
            std::fs::read_to_string(&events).is_ok_and(|t| t.contains("\"daemon_started\""))
        })
        .map_err(|e| format!("{e}\n{}", self.output()))
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.out")).unwrap_or_default()
    }

    fn count(&self, rel: &str) -> usize {
        std::fs::read_dir(self.ws().join(rel)).map_or(0, |rd| rd.count())
    }

    fn last_result_ns(&self) -> u64 {
        std::fs::read_dir(self.ws().join("results")).map_or(0, |rd| {
            rd.filter_map(|e| e.ok()?.metadata().ok()?.modified().ok())
                .filter_map(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_nanos() as u64)
                .max()
                .unwrap_or(0)
        })
    }

    /// task id -> CLOCK_REALTIME ns of its agent's start on this node.
    fn agent_starts(&self) -> std::collections::HashMap<String, u64> {
        std::fs::read_to_string(self.dir.path().join("agent-starts.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                Some((f.get(1)?.to_string(), f.get(4)?.parse().ok()?))
            })
            .collect()
    }

    fn stop(&mut self) {
        stop_daemon(&mut self.daemon);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_task(dir: &Path, id: &str, requires: &str) -> Res<()> {
    let text = format!(
        "---\nid: {id}\npriority: medium\n{requires}---\n\n# Bench {id}\n\n**Prompt:**\nNothing to do.\nfake-agent: noop\n"
    );
    let mut f = std::fs::File::create(dir.join(format!("{id}.task.md")))
        .map_err(|e| format!("write task {id}: {e}"))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("write task {id}: {e}"))
}

/// `n` tasks over `k` nodes (each node's share into its own tasks/): tasks per second from
/// the first file to the last result, and how many each node ran.
fn rate(admin: &str, agent: &Path, k: usize, n: usize) -> Res<(f64, Vec<usize>)> {
    let db = Db::new(admin, &format!("rate{k}"))?;
    let mut nodes: Vec<Node> = (0..k)
        .map(|i| Node::new(agent, &db.url, &format!("n{i}"), &[]))
        .collect::<Res<_>>()?;
    for node in &mut nodes {
        node.start()?;
    }
    std::thread::sleep(Duration::from_millis(500));
    let t0 = now_ns();
    for i in 0..n {
        write_task(&nodes[i % k].ws().join("tasks"), &format!("r{i:05}"), "")?;
    }
    let share = |i: usize| n / k + usize::from(i < n % k);
    wait(Duration::from_secs(600), &format!("{n} results"), || {
        nodes
            .iter()
            .enumerate()
            .all(|(i, w)| w.count("results") >= share(i))
    })
    .map_err(|e| format!("{e}\n{}", nodes[0].output()))?;
    let last = nodes.iter().map(Node::last_result_ns).max().unwrap_or(t0);
    let ran = nodes.iter().map(|w| w.agent_starts().len()).collect();
    for node in &mut nodes {
        node.stop();
    }
    Ok((n as f64 / ((last.saturating_sub(t0)) as f64 / 1e9), ran))
}

/// `n` files written `gap` apart into node a, which cannot run them; node b (label `work`)
/// does. Latency from the file closed to the agent's start on b: p50, p99, max in ms.
fn pickup(admin: &str, agent: &Path, poll_only: bool, n: usize, gap: Duration) -> Res<[f64; 3]> {
    let db = Db::new(admin, if poll_only { "pickpoll" } else { "picknotify" })?;
    let mode = if poll_only { "true" } else { "false" };
    let mut a = Node::new(agent, &db.url, "a", &[("ORCA_PG_POLL_ONLY", mode)])?;
    let mut b = Node::new(
        agent,
        &db.url,
        "b",
        &[("ORCA_NODE_LABELS", "work"), ("ORCA_PG_POLL_ONLY", mode)],
    )?;
    a.start()?;
    b.start()?;
    std::thread::sleep(Duration::from_millis(1000));
    let tasks = a.ws().join("tasks");
    let mut closed = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("p{i:04}");
        write_task(&tasks, &id, "requires: [work]\n")?;
        closed.push((id, now_ns()));
        std::thread::sleep(gap);
    }
    wait(Duration::from_secs(120), &format!("{n} results"), || {
        a.count("results") >= n
    })
    .map_err(|e| format!("{e}\n{}\n{}", a.output(), b.output()))?;
    let starts = b.agent_starts();
    let lat = pickup_ms(&closed, &starts, "starts on node b")?;
    a.stop();
    b.stop();
    Ok([
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        lat.last().copied().unwrap_or(f64::NAN),
    ])
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo test --all-targets` runs bench targets too: only `cargo bench` measures.
    if !args.iter().any(|a| a == "--bench") {
        println!("fleet benchmark: skipped outside `cargo bench --bench fleet`");
        return;
    }
    let mut admin = std::env::var("ORCA_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut n = 1000usize;
    let mut json_out: Option<PathBuf> = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--pg" => {
                if let Some(u) = args.get(i + 1) {
                    admin = u.clone();
                }
                i += 1;
            }
            "--tasks" => {
                n = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(n);
                i += 1;
            }
            "--json" => {
                json_out = args.get(i + 1).map(PathBuf::from);
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    let (agent, agent_name) = build_agent("fleet");
    let cores = std::thread::available_parallelism().map_or(0, |c| c.get());
    println!(
        "fleet benchmark: {agent_name}, {WORKERS} slots per node, {cores} cores, server {}",
        orca::config::redact_url_password(&admin)
    );
    let mut lines = Vec::new();
    let mut failed = false;
    for k in 1..=3 {
        match rate(&admin, &agent, k, n) {
            Ok((r, ran)) => {
                println!("{k} node(s): {n} tasks at {r:.0} tasks/s (ran per node: {ran:?})");
                lines.push(
                    serde_json::json!({"measure": "rate", "nodes": k, "tasks": n,
                    "tasks_per_s": r, "ran_per_node": ran}),
                );
            }
            Err(e) => {
                failed = true;
                eprintln!("{k} node(s): failed: {e}");
            }
        }
    }
    for poll_only in [false, true] {
        let how = if poll_only { "poll only" } else { "NOTIFY" };
        match pickup(&admin, &agent, poll_only, 200, Duration::from_millis(20)) {
            Ok([p50, p99, max]) => {
                println!(
                    "cross-node pickup ({how}): p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms"
                );
                lines.push(
                    serde_json::json!({"measure": "cross_node_pickup", "poll_only": poll_only,
                    "p50_ms": p50, "p99_ms": p99, "max_ms": max}),
                );
            }
            Err(e) => {
                failed = true;
                eprintln!("cross-node pickup ({how}): failed: {e}");
            }
        }
    }
    for l in &lines {
        println!("{l}");
    }
    if let Some(path) = json_out {
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("cannot write {}: {e}", path.display());
        }
    }
    if failed {
        std::process::exit(1);
    }
}

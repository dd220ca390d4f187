//! The LLM mediation benchmark (issue #19, item 8): 100 tasks, 4 workers, an agent that
//! answers at once (the test suite's fake agent, `noop`) and a fake LLM that takes 1 s per
//! call, with ORCA_LLM_CONCURRENCY=2. Three runs: mediation off (the rules), plain-words tasks
//! (routing and summary by the LLM), and tasks whose front matter says everything (summary
//! only). Reports the agents' throughput, the results' throughput, LLM calls per task, and
//! the added latency per task (received -> result written). Nothing here asserts a timing.
//!
//! Run: `cargo bench --bench llm` (options after `--`: `--tasks N`, `--call-ms MS`,
//! `--json FILE` also writes the JSON lines). The figures are bounded by the fake LLM's 1 s
//! calls, not by Orca's build: `cargo test --bench llm -- --bench` measures the debug build
//! and gives the same figures, without a release build.

#[path = "../tests/common/fake_llm.rs"]
mod fake_llm;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_llm::{default_answer, Api, Call, FakeLlm, Reply};
use serde_json::{json, Value};

const ORCA: &str = env!("CARGO_BIN_EXE_orca");
const FAKE_AGENT: &str = env!("CARGO_BIN_EXE_orca-fake-agent");
const WORKERS: usize = 4;
const CONCURRENCY: usize = 2;
const MODEL: &str = "llama3.1:8b";

/// Settings the benchmark process must not leak into the daemon.
const SCRUB: &[&str] = &[
    "MAX_CONCURRENT_TASKS",
    "CLAUDE_TIMEOUT_SEC",
    "CLAUDE_BIN",
    "CLAUDE_BASE_CWD",
    "CLAUDE_ALLOWED_ROOT",
    "LOG_LEVEL",
    "ORCA_LLM",
    "ORCA_LLM_MODEL",
    "ORCA_LLM_CONCURRENCY",
    "ORCA_LLM_TIMEOUT_SEC",
    "OLLAMA_HOST",
    "OLLAMA_MODEL",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "ORCA_ROOT",
    "ORCA_DATABASE_URL",
    "ORCA_FAKE_AGENT_MODE",
    "ORCA_FAKE_AGENT_LOG",
];

type Res<T> = Result<T, String>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// ORCA_LLM=off: the rules route and summarise.
    Off,
    /// Tasks in plain words: the LLM routes and summarises each.
    Plain,
    /// Tasks whose front matter gives type and priority: no routing call, a summary each.
    FrontMatter,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Off => "mediation off (rules)",
            Scenario::Plain => "LLM, plain-words tasks",
            Scenario::FrontMatter => "LLM, front matter says all",
        }
    }
    fn key(self) -> &'static str {
        match self {
            Scenario::Off => "off",
            Scenario::Plain => "plain",
            Scenario::FrontMatter => "front_matter",
        }
    }
}

/// What one run measured.
struct Measured {
    scenario: Scenario,
    tasks: usize,
    /// First task received -> last agent finished, ms.
    agents_ms: u64,
    /// First task received -> last result written, ms.
    results_ms: u64,
    /// Per task, received -> result written, ms (sorted).
    latency_ms: Vec<u64>,
    routing_calls: usize,
    summary_calls: usize,
    max_in_flight: usize,
    llm_methods: usize,
}

impl Measured {
    fn per_s(&self, ms: u64) -> f64 {
        self.tasks as f64 * 1000.0 / ms.max(1) as f64
    }
    fn mean_latency(&self) -> f64 {
        self.latency_ms.iter().sum::<u64>() as f64 / self.latency_ms.len().max(1) as f64
    }
    fn pct(&self, p: f64) -> u64 {
        let n = self.latency_ms.len();
        if n == 0 {
            return 0;
        }
        let i = ((n as f64 * p).ceil() as usize).clamp(1, n) - 1;
        self.latency_ms[i]
    }
    fn json(&self) -> Value {
        json!({
            "scenario": self.scenario.key(), "tasks": self.tasks, "workers": WORKERS,
            "llm_concurrency": CONCURRENCY,
            "agents_ms": self.agents_ms, "agents_per_s": self.per_s(self.agents_ms),
            "results_ms": self.results_ms, "results_per_s": self.per_s(self.results_ms),
            "latency_mean_ms": self.mean_latency(), "latency_p50_ms": self.pct(0.5),
            "latency_p95_ms": self.pct(0.95),
            "routing_calls": self.routing_calls, "summary_calls": self.summary_calls,
            "llm_calls_per_task": (self.routing_calls + self.summary_calls) as f64 / self.tasks.max(1) as f64,
            "max_llm_in_flight": self.max_in_flight, "results_by_llm": self.llm_methods,
        })
    }
}

/// Milliseconds since the epoch of an RFC 3339 UTC `ts` (`2026-12-04T18:40:01.123Z`).
fn ts_ms(ts: &str) -> Option<i64> {
    let (date, time) = ts.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let sec: f64 = t.next()?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + min) * 60_000 + (sec * 1000.0).round() as i64)
}

fn task_text(s: Scenario, i: usize) -> String {
    let body = format!("Review the change number {i} of the parser, no rush");
    match s {
        Scenario::FrontMatter => {
            format!("---\nid: t{i}\ntype: code_review\npriority: low\n---\n**Prompt:**\n{body}\n")
        }
        _ => format!("---\nid: t{i}\n---\n**Prompt:**\n{body}\n"),
    }
}

fn run(s: Scenario, tasks: usize, call_ms: u64) -> Res<Measured> {
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let root = dir.path();
    std::fs::create_dir_all(root.join("tasks")).map_err(|e| e.to_string())?;
    let fake = FakeLlm::start(Api::Ollama, &[MODEL]);
    let delay = Duration::from_millis(call_ms);
    fake.answer_with(move |c: &Call| Reply::Slow(delay, Box::new(default_answer(c))));
    let mut cmd = Command::new(ORCA);
    for k in SCRUB {
        cmd.env_remove(k);
    }
    let llm = if s == Scenario::Off { "off" } else { "ollama" };
    cmd.arg("--root")
        .arg(root)
        .arg("run")
        .env("CLAUDE_BIN", FAKE_AGENT)
        .env("ORCA_FAKE_AGENT_MODE", "noop")
        .env("MAX_CONCURRENT_TASKS", WORKERS.to_string())
        .env("ORCA_LLM", llm)
        .env("OLLAMA_HOST", fake.url())
        .env("OLLAMA_MODEL", MODEL)
        .env("ORCA_LLM_CONCURRENCY", CONCURRENCY.to_string())
        .env("ORCA_LLM_TIMEOUT_SEC", "60")
        .env("LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut daemon = Daemon(
        cmd.spawn()
            .map_err(|e| format!("cannot start {ORCA}: {e}"))?,
    );
    // Up and ready: its start-up event is in the log.
    let events = root.join("logs/events.ndjson");
    wait(Duration::from_secs(30), "the daemon to start", || {
        std::fs::read_to_string(&events).is_ok_and(|t| t.contains("\"daemon_started\""))
    })?;
    // All tasks at once, each written aside and renamed in.
    for i in 0..tasks {
        let tmp = root.join(format!("t{i}.tmp"));
        std::fs::write(&tmp, task_text(s, i)).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, root.join("tasks").join(format!("t{i}.task.md")))
            .map_err(|e| e.to_string())?;
    }
    let results = root.join("results");
    let limit = Duration::from_secs(60 + 3 * tasks as u64 * call_ms / 1000);
    wait(limit, "every result", || {
        std::fs::read_dir(&results).is_ok_and(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
                >= tasks
        })
    })?;
    daemon.stop();
    let lines: Vec<Value> = std::fs::read_to_string(&events)
        .map_err(|e| e.to_string())?
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let at = |e: &Value| e["ts"].as_str().and_then(ts_ms);
    let of = |name: &str| -> Vec<(&str, i64)> {
        lines
            .iter()
            .filter(|e| e["event"] == name)
            .filter_map(|e| Some((e["task_id"].as_str()?, at(e)?)))
            .collect()
    };
    let received = of("task_received");
    let finished = of("claude_finished");
    let validated = of("validated");
    let t0 = received
        .iter()
        .map(|r| r.1)
        .min()
        .ok_or("no task_received")?;
    let last = |v: &[(&str, i64)]| v.iter().map(|r| r.1).max().unwrap_or(t0);
    let mut latency: Vec<u64> = validated
        .iter()
        .filter_map(|(id, t)| {
            let r = received.iter().find(|r| r.0 == *id)?.1;
            u64::try_from(t - r).ok()
        })
        .collect();
    latency.sort_unstable();
    let mut llm_methods = 0;
    for e in std::fs::read_dir(&results)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        let v: Value = std::fs::read(e.path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        if v["summary"]["method"] == "llm" {
            llm_methods += 1;
        }
        if v["status"] != "succeeded" {
            return Err(format!("{} did not succeed: {v}", e.path().display()));
        }
    }
    let q = fake.questions();
    Ok(Measured {
        scenario: s,
        tasks,
        agents_ms: u64::try_from(last(&finished) - t0).unwrap_or(0),
        results_ms: u64::try_from(last(&validated) - t0).unwrap_or(0),
        latency_ms: latency,
        routing_calls: q.iter().filter(|c| c.is_routing()).count(),
        summary_calls: q.iter().filter(|c| c.is_summary()).count(),
        max_in_flight: fake.max_in_flight(),
        llm_methods,
    })
}

/// The daemon; stopped by SIGTERM (killed if it lingers) when dropped.
struct Daemon(Child);

impl Daemon {
    fn stop(&mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.stop();
        }
    }
}

fn wait(limit: Duration, what: &str, cond: impl Fn() -> bool) -> Res<()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "timed out after {} s waiting for {what}",
        limit.as_secs()
    ))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo test --all-targets` also runs bench targets (without `--bench`).
    if !args.iter().any(|a| a == "--bench") {
        println!("llm benchmark: skipped outside `cargo bench --bench llm`");
        return;
    }
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let tasks: usize = arg("--tasks").and_then(|v| v.parse().ok()).unwrap_or(100);
    let call_ms: u64 = arg("--call-ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let json_out = arg("--json").map(Path::new);
    println!(
        "llm benchmark: {tasks} tasks, {WORKERS} workers, a 0-ms agent, a fake LLM of {call_ms} ms per call, ORCA_LLM_CONCURRENCY={CONCURRENCY}"
    );
    let mut out = Vec::new();
    for s in [Scenario::Off, Scenario::Plain, Scenario::FrontMatter] {
        match run(s, tasks, call_ms) {
            Ok(m) => out.push(m),
            Err(e) => {
                eprintln!("error: {}: {e}", s.name());
                std::process::exit(1);
            }
        }
    }
    let base = out[0].mean_latency();
    println!(
        "\n{:<28} {:>12} {:>13} {:>10} {:>13} {:>9} {:>9} {:>12}",
        "run", "agents/s", "results/s", "LLM calls", "calls/task", "p50 ms", "p95 ms", "added ms"
    );
    for m in &out {
        println!(
            "{:<28} {:>12.1} {:>13.2} {:>10} {:>13.2} {:>9} {:>9} {:>12.0}",
            m.scenario.name(),
            m.per_s(m.agents_ms),
            m.per_s(m.results_ms),
            format!("{}+{}", m.routing_calls, m.summary_calls),
            (m.routing_calls + m.summary_calls) as f64 / m.tasks as f64,
            m.pct(0.5),
            m.pct(0.95),
            m.mean_latency() - base,
        );
    }
    println!("\n(LLM calls: routing+summary; added ms: mean received->result latency over the run with mediation off; most LLM calls in flight: {})",
        out.iter().map(|m| m.max_in_flight).max().unwrap_or(0));
    let lines: Vec<String> = out.iter().map(|m| m.json().to_string()).collect();
    for l in &lines {
        println!("{l}");
    }
    if let Some(p) = json_out {
        if let Err(e) = std::fs::write(p, lines.join("\n") + "\n") {
            eprintln!("error: cannot write {}: {e}", p.display());
            std::process::exit(1);
        }
    }
}

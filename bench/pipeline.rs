//! The pipeline benchmark (issue #5): drives the release `orca run` with the no-op fake agent
//! and measures idle RSS, pickup latency, 1k/10k-file bursts and the bare spawn ceiling
//! (measured just before and just after the 1k burst; the ratio divides by their mean).
//!
//! Run: `cargo bench --bench pipeline` (options after `--`: `--runs N` repeats the whole suite
//! and reports medians, `--quick` shrinks the bursts, `--json FILE` also writes the JSON lines,
//! `--dir PATH` puts the workspaces under PATH instead of /dev/shm, e.g. on a disk,
//! `--agent fake` starts the test suite's `orca-fake-agent` instead of the static no-op agent,
//! `--orca PATH` measures that `orca` binary instead of this build's, e.g. an earlier commit's).
//! Prints a table and one JSON line per measure and run. Nothing here asserts a timing.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

#[path = "common.rs"]
mod common;
use common::{
    build_agent, fake_agent, now_ns, percentile, pickup_ms, stop_daemon, wait, Res, FAKE_AGENT,
};

/// The `orca` this benchmark builds; `--orca PATH` measures another build instead (an earlier
/// commit's, say, with the same harness).
static ORCA: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

fn orca() -> &'static Path {
    ORCA.get_or_init(|| PathBuf::from(env!("CARGO_BIN_EXE_orca")))
}
/// The test suite's stand-in agent: the fallback when the no-op agent cannot be built.
const WORKERS: usize = 8;

/// Settings the benchmark process must not leak into the daemon.
const SCRUB: &[&str] = &[
    "MAX_CONCURRENT_TASKS",
    "CLAUDE_TIMEOUT_SEC",
    "CLAUDE_MAX_TURNS",
    "CLAUDE_BIN",
    "CLAUDE_BASE_CWD",
    "CLAUDE_ALLOWED_ROOT",
    "LOG_LEVEL",
    "ORCA_MAX_RETRIES",
    "ORCA_LLM",
    "ORCA_ROOT",
    "ORCA_DATABASE_URL",
    "ORCA_FAKE_AGENT_MODE",
    "ORCA_FAKE_AGENT_LOG",
    "ORCA_FAKE_AGENT_CLOCK",
];

/// Where the workspaces are made (`--dir`; by default RAM-backed /dev/shm when there is one,
/// so that a disk's state, such as ext4's slow inode allocation after mass deletes, does not
/// decide the figures; `--dir` on a disk measures that too).
static BASE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// The agent every measure starts (see [`build_agent`]).
static AGENT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

fn agent() -> &'static Path {
    AGENT
        .get()
        .map(PathBuf::as_path)
        .unwrap_or(Path::new(FAKE_AGENT))
}

fn base_dir() -> PathBuf {
    BASE.get().cloned().unwrap_or_else(std::env::temp_dir)
}

/// The default base: /dev/shm when it is a writable folder, else the system's temp folder.
fn default_base() -> PathBuf {
    let shm = Path::new("/dev/shm");
    match tempfile::tempdir_in(shm) {
        Ok(_) => shm.to_path_buf(),
        Err(_) => std::env::temp_dir(),
    }
}

/// The file system type of `dir` (tmpfs, ext4, xfs, btrfs, overlay or the magic number).
fn fs_type(dir: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return "unknown".into();
    };
    // SAFETY: statfs(2) fills the zeroed struct from a NUL-terminated path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return "unknown".into();
    }
    #[allow(clippy::unnecessary_cast)]
    match st.f_type as i64 {
        0x0102_1994 => "tmpfs".into(),
        0xEF53 => "ext4".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x794C_7630 => "overlay".into(),
        other => format!("{other:#x}"),
    }
}

fn task_text(id: &str) -> String {
    format!("---\nid: {id}\npriority: medium\n---\n\n# Bench {id}\n\n**Prompt:**\nNothing to do.\nfake-agent: noop\n")
}

/// A temporary workspace with a running daemon.
struct Bench {
    dir: Option<tempfile::TempDir>,
    daemon: Option<Child>,
}

/// Workspaces of finished measures, deleted only at the very end: deleting 10,000 files makes
/// ext4 slow to allocate inodes for a while (`recently_deleted`), which would bias the next
/// measure.
static GRAVEYARD: std::sync::Mutex<Vec<tempfile::TempDir>> = std::sync::Mutex::new(Vec::new());

impl Bench {
    /// A workspace; with `log_starts`, each agent appends its start time to a log (the
    /// pickup measure needs it; the bursts do not, so their agents do what the ceiling's do).
    fn new(log_starts: bool) -> Res<Bench> {
        let base = base_dir();
        let dir = tempfile::Builder::new()
            .prefix("orca-bench-")
            .tempdir_in(&base)
            .map_err(|e| format!("tempdir in {}: {e}", base.display()))?;
        // The workspace is `ws/`; the agents' start log sits beside it, so it is not part of
        // the working folder whose changes Orca records for every task.
        std::fs::create_dir_all(dir.path().join("ws/tasks")).map_err(|e| e.to_string())?;
        let mut env = format!(
            "CLAUDE_BIN={}\nORCA_LLM=off\nMAX_CONCURRENT_TASKS={WORKERS}\n",
            agent().display()
        );
        if log_starts {
            env.push_str(&format!(
                "ORCA_FAKE_AGENT_LOG={}\nORCA_FAKE_AGENT_CLOCK=1\n",
                dir.path().join("agent-starts.log").display()
            ));
        }
        std::fs::write(dir.path().join("ws/.env"), env).map_err(|e| e.to_string())?;
        Ok(Bench {
            dir: Some(dir),
            daemon: None,
        })
    }

    /// The workspace.
    fn path(&self) -> PathBuf {
        self.top().join("ws")
    }

    fn top(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or(Path::new("/nonexistent"))
    }

    fn start(&mut self) -> Res<u32> {
        let out =
            std::fs::File::create(self.top().join("daemon.out")).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(orca());
        for k in SCRUB {
            cmd.env_remove(k);
        }
        let child = cmd
            .arg("--root")
            .arg(self.path())
            .arg("run")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", orca().display()))?;
        let pid = child.id();
        self.daemon = Some(child);
        let events = self.path().join("logs/events.ndjson");
        wait(Duration::from_secs(30), "daemon_started", || {
            std::fs::read_to_string(&events)
                .map(|t| t.contains("\"daemon_started\""))
                .unwrap_or(false)
        })?;
        Ok(pid)
    }

    fn stop(&mut self) {
        stop_daemon(&mut self.daemon);
    }

    fn count(&self, rel: &str, suffix: &str) -> usize {
        std::fs::read_dir(self.path().join(rel))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
                    .count()
            })
            .unwrap_or(0)
    }

    fn daemon_output(&self) -> String {
        std::fs::read_to_string(self.top().join("daemon.out")).unwrap_or_default()
    }

    /// Waits until `n` results exist and `n` task files are archived. While it waits it only
    /// reads what the event log gained since its last look (`task_archived` lines), following
    /// the log across rotations: listing folders of thousands of files every few milliseconds
    /// would take CPU from the daemon it measures. The folders are counted once at the end.
    fn wait_done(&self, n: usize, limit: Duration) -> Res<()> {
        use std::os::unix::fs::MetadataExt;
        const ARCHIVED: &[u8] = b"\"event\":\"task_archived\"";
        let events = self.path().join("logs/events.ndjson");
        let archived = std::cell::Cell::new(0usize);
        // The open log (kept open: after a rotation it still reads the old file to its end).
        let open: std::cell::RefCell<Option<(std::fs::File, u64)>> = Default::default();
        let tail = std::cell::RefCell::new(Vec::<u8>::new());
        let count = |bytes: &[u8]| {
            let mut t = tail.borrow_mut();
            t.extend_from_slice(bytes);
            // Count whole lines only; keep a partial last line for the next look.
            let end = t.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let n_new = t[..end]
                .split(|b| *b == b'\n')
                .filter(|l| l.windows(ARCHIVED.len()).any(|w| w == ARCHIVED))
                .count();
            archived.set(archived.get() + n_new);
            t.drain(..end);
        };
        let look = || {
            let mut cur = open.borrow_mut();
            if cur.is_none() {
                let Ok(f) = std::fs::File::open(&events) else {
                    return;
                };
                let Ok(m) = f.metadata() else { return };
                *cur = Some((f, m.ino()));
            }
            let Some((f, ino)) = cur.as_mut() else { return };
            let mut more = Vec::new();
            let _ = f.read_to_end(&mut more);
            count(&more);
            // Rotated: the old file is complete (the daemon closes it before renaming it);
            // read it to its end once more, then follow the new one from its start.
            let rotated = std::fs::metadata(&events).is_ok_and(|m| m.ino() != *ino);
            if rotated {
                let mut rest = Vec::new();
                let _ = f.read_to_end(&mut rest);
                count(&rest);
                *cur = None;
            }
        };
        wait(
            limit,
            &format!("{n} archived tasks in the event log"),
            || {
                look();
                archived.get() >= n
            },
        )
        .and_then(|()| {
            wait(
                Duration::from_secs(10),
                &format!("{n} results and archived files"),
                || {
                    self.count("results", "_result.json") >= n
                        && self.count("tasks/processed", ".task.md") >= n
                },
            )
        })
        .map_err(|e| format!("{e}\n--- daemon output:\n{}", self.daemon_output()))
    }

    /// task id -> CLOCK_REALTIME ns at which its (last) agent started.
    fn agent_starts(&self) -> HashMap<String, u64> {
        std::fs::read_to_string(self.top().join("agent-starts.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                Some((f.get(1)?.to_string(), f.get(4)?.parse().ok()?))
            })
            .collect()
    }

    /// Latest modification time of any result, in ns since the epoch.
    fn last_result_ns(&self) -> u64 {
        std::fs::read_dir(self.path().join("results"))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.metadata().ok()?.modified().ok())
                    .filter_map(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_nanos() as u64)
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    }

    /// Tasks without a `succeeded` result, not archived, or still in tasks/: a stand-in agent
    /// whose output Orca did not accept shows here, not as a fast burst.
    fn lost(&self, ids: &[String]) -> usize {
        let succeeded = |id: &str| -> bool {
            std::fs::read(self.path().join(format!("results/{id}_result.json")))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|v| v["status"] == "succeeded")
        };
        ids.iter()
            .filter(|id| {
                !succeeded(id)
                    || !self
                        .path()
                        .join(format!("tasks/processed/{id}.task.md"))
                        .is_file()
                    || self.path().join(format!("tasks/{id}.task.md")).exists()
            })
            .count()
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.stop();
        if let (Some(d), Ok(mut g)) = (self.dir.take(), GRAVEYARD.lock()) {
            g.push(d);
        }
    }
}

/// (VmRSS, VmHWM) of a process, in KiB.
fn mem_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn write_task(dir: &Path, id: &str) -> Res<()> {
    let mut f = std::fs::File::create(dir.join(format!("{id}.task.md")))
        .map_err(|e| format!("write task {id}: {e}"))?;
    f.write_all(task_text(id).as_bytes())
        .map_err(|e| format!("write task {id}: {e}"))
}

/// Idle RSS after start-up, then the pickup latency of `n` tasks written `gap` apart.
fn idle_and_pickup(n: usize, gap: Duration) -> Res<(f64, f64, f64, f64)> {
    let mut b = Bench::new(true)?;
    let pid = b.start()?;
    std::thread::sleep(Duration::from_millis(1500));
    let (idle_rss, _) = mem_kib(pid);
    let tasks = b.path().join("tasks");
    let mut closed = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("p{i:04}");
        write_task(&tasks, &id)?; // the file is closed when write_task returns
        closed.push((id, now_ns()));
        std::thread::sleep(gap);
    }
    b.wait_done(n, Duration::from_secs(120))?;
    let starts = b.agent_starts();
    let lat = pickup_ms(&closed, &starts, "agent starts")?;
    let max = lat.last().copied().unwrap_or(f64::NAN);
    Ok((
        idle_rss as f64 / 1024.0,
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        max,
    ))
}

#[derive(Default, Clone)]
struct Burst {
    n: usize,
    wall_s: f64,
    rate: f64,
    peak_rss_mib: f64,
    lost: usize,
    /// The daemon's own CPU time per task (user + system), ms: steadier than the rate on a
    /// shared machine, and what a change to the daemon moves.
    daemon_cpu_ms: f64,
    /// The agents' CPU time per task (the daemon's reaped children), ms.
    agent_cpu_ms: f64,
}

/// CPU time of `pid` and of its reaped children, in ms, from /proc/<pid>/stat.
fn cpu_ms(pid: u32) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) start with the state (3rd).
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let at = |i: usize| f.get(i - 3).copied().unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let ms = |ticks: f64| if hz > 0.0 { ticks * 1000.0 / hz } else { 0.0 };
    (ms(at(14) + at(15)), ms(at(16) + at(17)))
}

/// `n` files written as fast as possible into a running daemon's tasks/.
fn burst(n: usize) -> Res<Burst> {
    let mut b = Bench::new(false)?;
    let pid = b.start()?;
    std::thread::sleep(Duration::from_millis(500));
    let tasks = b.path().join("tasks");
    let ids: Vec<String> = (0..n).map(|i| format!("b{i:05}")).collect();
    let (own0, kids0) = cpu_ms(pid);
    let t0 = now_ns();
    for id in &ids {
        write_task(&tasks, id)?;
    }
    b.wait_done(n, Duration::from_secs(600))?;
    let (own1, kids1) = cpu_ms(pid);
    let (_, hwm) = mem_kib(pid);
    let wall_s = (b.last_result_ns().saturating_sub(t0)) as f64 / 1e9;
    let lost = b.lost(&ids);
    b.stop();
    Ok(Burst {
        n,
        wall_s,
        rate: n as f64 / wall_s,
        peak_rss_mib: hwm as f64 / 1024.0,
        lost,
        daemon_cpu_ms: (own1 - own0) / n as f64,
        agent_cpu_ms: (kids1 - kids0) / n as f64,
    })
}

/// The spawn ceiling: `n` starts of the agent without orchestration.
#[derive(Default, Clone, Copy)]
struct Ceiling {
    /// Starts per second.
    rate: f64,
    /// The agents' own CPU time per start (user + system), to compare with a burst's.
    agent_cpu_ms: f64,
}

/// The same agent started `n` times, `WORKERS` at a time, the way Orca starts it, with no
/// orchestration.
fn ceiling(n: usize) -> Res<Ceiling> {
    let dir = tempfile::tempdir_in(base_dir()).map_err(|e| e.to_string())?;
    let (_, kids0) = cpu_ms(std::process::id());
    let prompt = "Nothing to do.\nfake-agent: noop\n";
    let next = std::sync::atomic::AtomicUsize::new(0);
    let t0 = Instant::now();
    let errors: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..WORKERS)
            .map(|_| {
                s.spawn(|| -> Res<()> {
                    while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                        // As Orca does: the prompt is in the pipe before the agent starts,
                        // so that the agent never waits for it.
                        let (stdin, mut fill) = std::io::pipe().map_err(|e| e.to_string())?;
                        fill.write_all(prompt.as_bytes())
                            .map_err(|e| e.to_string())?;
                        drop(fill);
                        let mut c = Command::new(agent())
                            .args(["-p", "--output-format", "stream-json", "--verbose"])
                            .current_dir(dir.path())
                            .stdin(stdin)
                            .stdout(Stdio::piped())
                            .stderr(Stdio::piped())
                            .spawn()
                            .map_err(|e| format!("spawn {}: {e}", agent().display()))?;
                        let mut out = Vec::new();
                        if let Some(mut o) = c.stdout.take() {
                            let _ = o.read_to_end(&mut out);
                        }
                        let st = c.wait().map_err(|e| e.to_string())?;
                        if !st.success() || !out.windows(8).any(|w| w == b"\"result\"") {
                            return Err(format!("the agent failed: {st}"));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().unwrap_or_else(|_| Err("panic".into())).err())
            .collect()
    });
    if let Some(e) = errors.first() {
        return Err(e.clone());
    }
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    let (_, kids1) = cpu_ms(std::process::id());
    Ok(Ceiling {
        rate,
        agent_cpu_ms: (kids1 - kids0) / n as f64,
    })
}

#[derive(Default, Clone)]
struct Run {
    idle_rss_mib: f64,
    pickup_p50_ms: f64,
    pickup_p99_ms: f64,
    pickup_max_ms: f64,
    bursts: Vec<Burst>,
    /// Measured just before and just after the first burst: the machine's speed drifts (it is
    /// shared), and the ratio should compare the burst with the ceiling of the same moment.
    ceiling_before: Ceiling,
    ceiling_after: Ceiling,
}

impl Run {
    /// The spawn ceiling around the first burst: both measures' starts over both times.
    fn ceiling(&self) -> f64 {
        let (a, b) = (self.ceiling_before.rate, self.ceiling_after.rate);
        if a > 0.0 && b > 0.0 {
            2.0 / (1.0 / a + 1.0 / b)
        } else {
            a.max(b)
        }
    }

    fn ceiling_agent_cpu_ms(&self) -> f64 {
        (self.ceiling_before.agent_cpu_ms + self.ceiling_after.agent_cpu_ms) / 2.0
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!(
        "{cores} cores, {cpu}, {:.1} GiB RAM",
        mem_kb as f64 / 1048576.0
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo test --all-targets` also runs bench targets (without `--bench`): measuring a debug
    // build there would take minutes and mean nothing, so only `cargo bench` runs the suite.
    if !args.iter().any(|a| a == "--bench") {
        println!("pipeline benchmark: skipped outside `cargo bench --bench pipeline`");
        return;
    }
    let mut runs = 1usize;
    let mut quick = false;
    let mut json_out: Option<PathBuf> = None;
    let mut use_fake_agent = false;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--runs" => {
                runs = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(1);
                i += 1;
            }
            "--quick" => quick = true,
            "--json" => {
                json_out = args.get(i + 1).map(PathBuf::from);
                i += 1;
            }
            "--agent" => {
                use_fake_agent = args.get(i + 1).is_some_and(|a| a == "fake");
                i += 1;
            }
            "--dir" => {
                if let Some(d) = args.get(i + 1) {
                    let _ = BASE.set(PathBuf::from(d));
                }
                i += 1;
            }
            "--orca" => {
                if let Some(p) = args.get(i + 1) {
                    let _ = ORCA.set(PathBuf::from(p));
                }
                i += 1;
            }
            _ => {} // `cargo bench` passes `--bench`
        }
        i += 1;
    }
    let sizes: &[usize] = if quick { &[200, 1000] } else { &[1000, 10_000] };
    let (pickup_n, ceiling_n) = if quick { (50, 200) } else { (200, 1000) };
    BASE.get_or_init(default_base); // unless --dir set it
    let (agent_path, agent_name) = if use_fake_agent {
        fake_agent()
    } else {
        build_agent("pipeline")
    };
    let _ = AGENT.set(agent_path);
    let fs = fs_type(&base_dir());
    let mach = machine();
    let place = format!(
        "workspaces in {} ({fs}); agent: {agent_name}",
        base_dir().display()
    );
    eprintln!(
        "orca pipeline benchmark: {mach}; {place}; orca: {}; {runs} run(s)",
        orca().display()
    );
    let mut lines = Vec::new();
    let mut all = Vec::new();
    for r in 1..=runs {
        let go = || -> Res<Run> {
            let mut run = Run::default();
            eprintln!("run {r}: idle + pickup ({pickup_n} tasks, 20 ms apart)");
            let (idle, p50, p99, max) = idle_and_pickup(pickup_n, Duration::from_millis(20))?;
            (
                run.idle_rss_mib,
                run.pickup_p50_ms,
                run.pickup_p99_ms,
                run.pickup_max_ms,
            ) = (idle, p50, p99, max);
            let spawn_ceiling = |when: &str| -> Res<Ceiling> {
                eprintln!(
                    "run {r}: spawn ceiling {when} ({ceiling_n} agents, {WORKERS} at a time)"
                );
                ceiling(ceiling_n)
            };
            for (k, &n) in sizes.iter().enumerate() {
                if k == 0 {
                    // Unmeasured starts first: the pickup measure leaves the machine mostly
                    // idle, and neither side of the ratio should pay for waking it up.
                    ceiling(ceiling_n / 4)?;
                    run.ceiling_before = spawn_ceiling("before the burst")?;
                }
                eprintln!("run {r}: burst of {n}");
                run.bursts.push(burst(n)?);
                if k == 0 {
                    run.ceiling_after = spawn_ceiling("after the burst")?;
                }
            }
            Ok(run)
        };
        let run = match go() {
            Ok(x) => x,
            Err(e) => {
                eprintln!("benchmark run {r} failed: {e}");
                std::process::exit(1);
            }
        };
        let ratio = run.bursts.first().map(|b| b.rate).unwrap_or(0.0) / run.ceiling();
        lines.push(
            serde_json::json!({"bench": "idle", "run": r, "rss_mib": run.idle_rss_mib}).to_string(),
        );
        lines.push(
            serde_json::json!({"bench": "pickup", "run": r, "fs": fs, "tasks": pickup_n, "gap_ms": 20,
            "p50_ms": run.pickup_p50_ms, "p99_ms": run.pickup_p99_ms, "max_ms": run.pickup_max_ms})
            .to_string(),
        );
        for b in &run.bursts {
            lines.push(
                serde_json::json!({"bench": "burst", "run": r, "fs": fs, "tasks": b.n, "workers": WORKERS,
                "wall_s": b.wall_s, "tasks_per_s": b.rate, "peak_rss_mib": b.peak_rss_mib, "lost": b.lost,
                "daemon_cpu_ms_per_task": b.daemon_cpu_ms, "agent_cpu_ms_per_task": b.agent_cpu_ms})
                .to_string(),
            );
        }
        lines.push(serde_json::json!({"bench": "ceiling", "run": r, "spawns": ceiling_n, "workers": WORKERS,
            "tasks_per_s": run.ceiling(), "before_tasks_per_s": run.ceiling_before.rate,
            "after_tasks_per_s": run.ceiling_after.rate, "agent_cpu_ms_per_spawn": run.ceiling_agent_cpu_ms(),
            "burst_over_ceiling": ratio, "agent": agent_name}).to_string());
        all.push(run);
    }
    for l in &lines {
        println!("{l}");
    }
    if let Ok(mut g) = GRAVEYARD.lock() {
        g.clear();
    }
    if let Some(p) = json_out {
        let _ = std::fs::write(p, lines.join("\n") + "\n");
    }
    let m = |f: &dyn Fn(&Run) -> f64| median(all.iter().map(f).collect());
    println!("\nmachine: {mach}; {place}; medians of {runs} run(s)");
    // One row per measure: its name, then the value and unit right-aligned in 16 columns.
    let row = |name: &str, value: String| println!("{name:<34} {value:>16}");
    row("measure", "value".into());
    row("idle RSS", format!("{:.1} MiB", m(&|r| r.idle_rss_mib)));
    row(
        &format!("pickup p50 ({pickup_n} tasks, 20 ms)"),
        format!("{:.2} ms", m(&|r| r.pickup_p50_ms)),
    );
    row("pickup p99", format!("{:.2} ms", m(&|r| r.pickup_p99_ms)));
    for (k, n) in sizes.iter().enumerate() {
        let b = |f: &dyn Fn(&Burst) -> f64| m(&|r| f(&r.bursts[k]));
        row(
            &format!("burst {n}: wall"),
            format!("{:.2} s", b(&|x| x.wall_s)),
        );
        row(
            &format!("burst {n}: rate"),
            format!("{:.0} tasks/s", b(&|x| x.rate)),
        );
        row(
            &format!("burst {n}: peak RSS (VmHWM)"),
            format!("{:.1} MiB", b(&|x| x.peak_rss_mib)),
        );
        let lost: usize = all.iter().map(|r| r.bursts[k].lost).sum();
        row(&format!("burst {n}: lost"), lost.to_string());
        row(
            &format!("burst {n}: daemon CPU"),
            format!("{:.3} ms/task", b(&|x| x.daemon_cpu_ms)),
        );
        row(
            &format!("burst {n}: agent CPU"),
            format!("{:.3} ms/task", b(&|x| x.agent_cpu_ms)),
        );
    }
    row(
        &format!("spawn ceiling ({WORKERS} at a time)"),
        format!("{:.0} tasks/s", m(&|r| r.ceiling())),
    );
    row(
        "spawn ceiling: agent CPU",
        format!("{:.3} ms/start", m(&|r| r.ceiling_agent_cpu_ms())),
    );
    row(
        &format!("burst {} / ceiling", sizes[0]),
        format!("{:.0} %", 100.0 * m(&|r| r.bursts[0].rate / r.ceiling())),
    );
}

//! What the benchmarks share (included with `#[path]` by bench/pipeline.rs and bench/fleet.rs):
//! the no-op agent's build, waiting, percentiles, the clock and stopping a daemon.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub type Res<T> = Result<T, String>;

/// The test suite's fake agent, the fallback when the no-op agent cannot be built.
pub const FAKE_AGENT: &str = env!("CARGO_BIN_EXE_orca-fake-agent");

/// CLOCK_REALTIME in nanoseconds (what the agents log their starts in).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Polls `cond` every 20 ms until it holds, or fails after `limit` naming `what`.
pub fn wait(limit: Duration, what: &str, cond: impl Fn() -> bool) -> Res<()> {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() > deadline {
            return Err(format!("timed out after {limit:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// The `p`th percentile (nearest rank) of sorted values; NaN for none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// SIGTERM to a daemon, up to 20 s for it to end, then SIGKILL.
pub fn stop_daemon(daemon: &mut Option<Child>) {
    if let Some(mut c) = daemon.take() {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// The test suite's `orca-fake-agent` in noop mode, and its name for the report.
pub fn fake_agent() -> (PathBuf, String) {
    (
        PathBuf::from(FAKE_AGENT),
        "orca-fake-agent (noop mode)".into(),
    )
}

/// Builds bench/noop_agent.rs with rustc as a static executable (no dynamic loading at each
/// start), else as a dynamic one, named `orca-noop-agent-<tag>-<kind>`; says which. Falls
/// back to `orca-fake-agent`.
pub fn build_agent(tag: &str) -> (PathBuf, String) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/noop_agent.rs");
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    for (name, extra) in [
        ("static", &["-C", "target-feature=+crt-static"][..]),
        ("dynamic", &[][..]),
    ] {
        let out = out_dir.join(format!("orca-noop-agent-{tag}-{name}"));
        let built = Command::new(&rustc)
            .args(["--edition", "2021", "-O", "-C", "panic=abort"])
            .args(["-C", "strip=symbols"])
            .args(extra)
            .arg(&src)
            .arg("-o")
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output();
        match built {
            Ok(o) if o.status.success() => {
                return (out, format!("no-op agent (bench/noop_agent.rs, {name})"))
            }
            Ok(o) => eprintln!(
                "cannot build the {name} no-op agent: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => eprintln!("cannot run {}: {e}", rustc.to_string_lossy()),
        }
    }
    fake_agent()
}

/// Milliseconds from each file's close (`closed`: id, ns) to its agent's start (`starts`),
/// sorted; an error naming `whose` when a start is missing.
pub fn pickup_ms(
    closed: &[(String, u64)],
    starts: &HashMap<String, u64>,
    whose: &str,
) -> Res<Vec<f64>> {
    let mut lat: Vec<f64> = closed
        .iter()
        .filter_map(|(id, t)| Some((*starts.get(id)? as f64 - *t as f64) / 1e6))
        .collect();
    if lat.len() != closed.len() {
        return Err(format!(
            "only {} of {} {whose} were logged",
            lat.len(),
            closed.len()
        ));
    }
    lat.sort_by(|x, y| x.total_cmp(y));
    Ok(lat)
}

//! No process outlives its attempt: the daemon is the child subreaper of everything its
//! agents start, so a process that detaches (double fork, `setsid`) is re-parented to it,
//! not to init; at the end of each attempt the daemon's children that carry the attempt's
//! mark ([`super::supervise::RUN_MARK_VAR`] in their environment, inherited) are killed
//! with their descendants and reaped, and orphans that ended on their own are reaped.
//!
//! Linux-only (`PR_SET_CHILD_SUBREAPER`, `/proc/<pid>/task/*/children`, `/proc/<pid>/environ`).

use std::io;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::{getpgrp, getpid, getsid, Pid};

use super::process::proc_info;

/// Makes this process the subreaper of its descendants (once, at the daemon's start).
pub fn become_subreaper() -> io::Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).map_err(io::Error::from)
}

/// The children of `pid` (every thread's), from `/proc/<pid>/task/*/children`.
pub fn children_of(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The agents started by [`super::spawn::spawn`] and not reaped yet, by pid. While a pid is
/// here it names that agent (a pid is reused only once reaped, and it leaves this set first,
/// under the same lock as the reap), so the sweep skips it without reading its `/proc`
/// files: its own supervisor ends it. Everything else among the children is looked at.
static AGENTS: std::sync::Mutex<std::collections::BTreeSet<i32>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

fn agents() -> std::sync::MutexGuard<'static, std::collections::BTreeSet<i32>> {
    AGENTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Notes a just-started, unreaped agent (see [`AGENTS`]).
pub(super) fn agent_started(pid: i32) {
    agents().insert(pid);
}

/// Runs `reap` (a wait for agent `pid`) with the agent out of [`AGENTS`] when it returns
/// true (reaped): no sweep sees the pid listed once it may name another process.
pub(super) fn reaping<T>(pid: i32, reap: impl FnOnce() -> (T, bool)) -> T {
    let mut set = agents();
    let (out, reaped) = reap();
    if reaped {
        set.remove(&pid);
    }
    out
}

/// Forgets agent `pid` before it is reaped elsewhere (forgetting early only costs the
/// sweep a closer look).
pub(super) fn agent_forgotten(pid: i32) {
    agents().remove(&pid);
}

/// The children of this process's main thread, where the kernel puts what it re-parents to
/// a subreaper: to the first live thread of its thread group, which is the main thread
/// while it lives (in `orca run` it runs the daemon until the end). Children of the other
/// threads are the agents they started (see [`AGENTS`]) and commands their callers reap;
/// one (`/proc/self/task/<pid>/children`) read instead of one per thread.
fn adopted_children() -> Vec<i32> {
    let me = getpid().as_raw();
    let Ok(text) = std::fs::read_to_string(format!("/proc/{me}/task/{me}/children")) else {
        return children_of(me);
    };
    text.split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
        .collect()
}

/// Whether process `pid`'s environment has `var=value`.
pub fn has_env(pid: i32, var: &str, value: &str) -> bool {
    has_envs(pid, &[(var, value)])
}

/// Whether process `pid`'s environment has every one of `vars` (`var=value`).
pub fn has_envs(pid: i32, vars: &[(&str, &str)]) -> bool {
    let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    vars.iter().all(|(var, value)| {
        let want = format!("{var}={value}");
        env.split(|b| *b == 0).any(|v| v == want.as_bytes())
    })
}

/// Kills (SIGKILL) every child of this process marked with `mark`, with all its
/// descendants, and reaps them; reaps orphans that already ended. Cheap when nothing
/// escaped: it reads this process's children lists and each child's environment.
pub fn kill_marked(mark: &str) {
    let own_sid = getsid(None).map(Pid::as_raw).unwrap_or(-1);
    let own_pgid = getpgrp().as_raw();
    let mut children = adopted_children();
    {
        let known = agents();
        children.retain(|c| !known.contains(c));
    }
    for child in children {
        let Some(info) = proc_info(child) else {
            continue;
        };
        // An agent this daemon started leads its own group in the daemon's session; one
        // started by the runtime (`--version`, git) is in the daemon's group. Its owner
        // reaps it. Any other child is an orphan that was re-parented here.
        let started_here = getsid(Some(Pid::from_raw(child))).map(Pid::as_raw) == Ok(own_sid)
            && (info.pgid == child || info.pgid == own_pgid);
        if info.zombie {
            if !started_here {
                let _ = waitpid(Pid::from_raw(child), Some(WaitPidFlag::WNOHANG));
            }
            continue;
        }
        if !has_env(child, super::supervise::RUN_MARK_VAR, mark) {
            continue;
        }
        kill_tree(child);
        if !started_here {
            reap_later(child);
        }
    }
}

/// SIGKILLs `pid` and every descendant (stopped first, so none can fork meanwhile).
fn kill_tree(pid: i32) {
    let mut stack = vec![pid];
    let mut all = Vec::new();
    while let Some(p) = stack.pop() {
        let _ = kill(Pid::from_raw(p), Signal::SIGSTOP);
        all.push(p);
        stack.extend(children_of(p));
    }
    for p in all {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
}

/// Reaps child `pid` (just SIGKILLed) once it has ended, off the async threads.
fn reap_later(pid: i32) {
    let reap = move || {
        let _ = waitpid(Pid::from_raw(pid), None);
    };
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn_blocking(reap);
        }
        Err(_) => reap(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_and_environment_of_a_real_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env("ORCA_ESCAPE_TEST", "yes")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let kids = children_of(std::process::id() as i32);
        // /proc/PID/environ shows the new environment only once the child has exec'd.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !has_env(pid, "ORCA_ESCAPE_TEST", "yes") && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let marked = has_env(pid, "ORCA_ESCAPE_TEST", "yes");
        let other = has_env(pid, "ORCA_ESCAPE_TEST", "no");
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(kids.contains(&pid), "{kids:?}");
        assert!(marked);
        assert!(!other);
    }
}

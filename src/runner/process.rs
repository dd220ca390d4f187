//! Process-tree control for agents: finding every descendant of an agent through
//! `/proc/*/stat` (Claude's Bash tool runs in its own session) and signalling them all.

use std::collections::{HashMap, HashSet};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::{getpgrp, Pid};

/// SIGKILL to the process group that `pid` leads (a command started with
/// `process_group(0)`); nothing for a pid of 0 or 1, or one that does not fit.
pub fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        if pid > 1 {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// One process as `/proc/<pid>/stat` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcInfo {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    /// Start time in clock ticks since boot: tells a process from a later one with its pid.
    pub start_time: u64,
    /// Already exited, waiting to be reaped.
    pub zombie: bool,
}

/// Parses the text of `/proc/<pid>/stat`. The command name may contain spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcInfo> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid: i32 = text.get(..open)?.trim().parse().ok()?;
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state); starttime is field 22.
    Some(ProcInfo {
        pid,
        ppid: rest.get(1)?.parse().ok()?,
        pgid: rest.get(2)?.parse().ok()?,
        start_time: rest.get(19)?.parse().ok()?,
        zombie: matches!(*rest.first()?, "Z" | "X"),
    })
}

/// Reads `/proc/<pid>/stat`; None when the process is gone.
pub fn proc_info(pid: i32) -> Option<ProcInfo> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Every process now running on the machine (that we may read).
fn all_processes() -> Vec<ProcInfo> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(proc_info)
        .collect()
}

/// All descendants of `root` (children, their children, ...), not `root` itself.
pub fn descendants(root: i32) -> Vec<ProcInfo> {
    descendants_in(root, &all_processes())
}

/// [`descendants`] over a given process table (pure, for tests).
pub fn descendants_in(root: i32, table: &[ProcInfo]) -> Vec<ProcInfo> {
    let mut children: HashMap<i32, Vec<&ProcInfo>> = HashMap::new();
    for p in table {
        children.entry(p.ppid).or_default().push(p);
    }
    let mut out = Vec::new();
    let mut seen = HashSet::from([root]);
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        for c in children.get(&pid).into_iter().flatten() {
            if seen.insert(c.pid) {
                out.push(**c);
                stack.push(c.pid);
            }
        }
    }
    out
}

/// Whether the process recorded in `p` still runs (same pid, same start, not a zombie).
pub fn is_alive(p: &ProcInfo) -> bool {
    proc_info(p.pid).is_some_and(|now| now.start_time == p.start_time && !now.zombie)
}

/// The processes of an agent run: the agent (leader of its own process group) and every
/// descendant seen so far, so that those that escape into their own sessions can still be
/// signalled after the agent is gone.
#[derive(Debug, Clone)]
pub struct ProcessTree {
    root: i32,
    known: Vec<ProcInfo>,
}

impl ProcessTree {
    pub fn new(root_pid: u32) -> Self {
        ProcessTree {
            root: i32::try_from(root_pid).unwrap_or(i32::MAX),
            known: Vec::new(),
        }
    }

    /// Adds the agent's current descendants to the known set.
    pub fn refresh(&mut self) {
        for p in descendants(self.root) {
            match self.known.iter_mut().find(|k| k.pid == p.pid) {
                Some(k) => *k = p,
                None => self.known.push(p),
            }
        }
    }

    /// The descendants known so far.
    pub fn known(&self) -> &[ProcInfo] {
        &self.known
    }

    /// Sends `sig` to the agent's process group and to every known descendant still alive,
    /// and to the process group of each (never to Orca's own group).
    pub fn signal_all(&self, sig: Signal) {
        // Orca never changes its own group: asked once.
        static OWN: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
        let own = *OWN.get_or_init(|| getpgrp().as_raw());
        if self.root > 1 && self.root != own {
            let _ = killpg(Pid::from_raw(self.root), sig);
        }
        let mut groups = HashSet::new();
        for p in &self.known {
            if !is_alive(p) {
                continue;
            }
            if p.pgid > 1 && p.pgid != own && p.pgid != self.root && groups.insert(p.pgid) {
                let _ = killpg(Pid::from_raw(p.pgid), sig);
            }
            let _ = kill(Pid::from_raw(p.pid), sig);
        }
    }

    /// Known descendants that still run.
    pub fn survivors(&self) -> Vec<ProcInfo> {
        self.known.iter().filter(|p| is_alive(p)).copied().collect()
    }

    /// SIGKILLs every known descendant that still runs (after the agent is gone).
    pub fn kill_survivors(&self) {
        for p in self.survivors() {
            let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_names() {
        let text = "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10";
        let p = parse_stat(text).unwrap();
        assert_eq!(p.pid, 1234);
        assert_eq!(p.ppid, 1);
        assert_eq!(p.pgid, 1234);
        assert_eq!(p.start_time, 987654);
        assert!(!p.zombie);
        let z = "7 (x) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0";
        assert!(parse_stat(z).unwrap().zombie);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn walks_the_tree() {
        let p = |pid, ppid| ProcInfo {
            pid,
            ppid,
            pgid: pid,
            start_time: 0,
            zombie: false,
        };
        let table = vec![p(1, 0), p(10, 1), p(11, 10), p(12, 11), p(13, 10), p(20, 1)];
        let mut d: Vec<i32> = descendants_in(10, &table).iter().map(|p| p.pid).collect();
        d.sort();
        assert_eq!(d, vec![11, 12, 13]);
        assert!(descendants_in(20, &table).is_empty());
    }

    #[test]
    fn finds_real_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let me = std::process::id() as i32;
        let found = descendants(me)
            .iter()
            .any(|p| p.pid == child.id() as i32 && p.ppid == me);
        let info = proc_info(child.id() as i32).unwrap();
        assert!(is_alive(&info));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(found);
        assert!(!is_alive(&info));
    }
}

//! `orca tail-events` on a node of a fleet: the fleet's event log in the shared store
//! (every node's events), read back and, with `--follow`, polled for new lines.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::time::Duration;

use crate::store::fleet::{Fleet, FOLLOW_LOOKBACK};

/// How often `--follow` asks the database for new lines.
const POLL: Duration = Duration::from_millis(200);

/// Prints the last `lines` events of the fleet (of `task` only when given), then with
/// `follow` every new one until the output is closed. Exit 1 when the database fails.
pub fn tail(
    fleet: &dyn Fleet,
    task: Option<&str>,
    lines: usize,
    follow: bool,
    out: &mut dyn Write,
    as_json: bool,
) -> io::Result<i32> {
    let show = |line: &str| {
        if as_json {
            line.to_owned()
        } else {
            crate::events::render::human_line(line)
        }
    };
    let failed = |e: crate::store::StoreError| {
        eprintln!("error: cannot read the fleet's event log: {e}");
        1
    };
    let first = match fleet.events_after(0, task, Some(lines)) {
        Ok(v) => v,
        Err(e) => return Ok(failed(e)),
    };
    // The seqs shown lately: a line whose transaction committed after a later one's shows
    // up behind it, and is shown then, once.
    let mut seen: BTreeSet<i64> = BTreeSet::new();
    let mut top = 0i64;
    for e in &first {
        writeln!(out, "{}", show(&e.line))?;
        seen.insert(e.seq);
        top = top.max(e.seq);
    }
    out.flush()?;
    if !follow {
        return Ok(0);
    }
    // Only lines newer than the window shown are new; without any, everything from here on.
    if first.is_empty() {
        top = match fleet.events_after(0, task, Some(1)) {
            Ok(v) => v.last().map_or(0, |e| e.seq),
            Err(e) => return Ok(failed(e)),
        };
        seen.insert(top);
    }
    let floor = top;
    loop {
        std::thread::sleep(POLL);
        let from = (top - FOLLOW_LOOKBACK).max(floor);
        let new = match fleet.events_after(from, task, None) {
            Ok(v) => v,
            Err(e) => return Ok(failed(e)),
        };
        for e in new {
            if seen.insert(e.seq) {
                writeln!(out, "{}", show(&e.line))?;
                top = top.max(e.seq);
            }
        }
        out.flush()?;
        // Forget what is out of the window.
        let keep_from = top - FOLLOW_LOOKBACK;
        seen = seen.split_off(&keep_from);
    }
}

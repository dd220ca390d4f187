//! Events (DESIGN §9): typed [`Event`] values published on one in-process [`EventBus`];
//! the NDJSON log `logs/events.ndjson` is its lossless subscriber, the console and others
//! subscribe with [`EventBus::subscribe`]. Also the log's reader behind `tail-events`.
//!
//! # Line format
//!
//! Every line is one JSON object followed by `\n`:
//!
//! ```text
//! {"ts":"2026-11-25T10:30:00.123Z","event":"claude_finished","task_id":"fix_db","attempt":1,...}
//! ```
//!
//! - `ts`: RFC 3339 UTC with milliseconds, when the event was written.
//! - `event`: one of the names below (constants in [`names`]).
//! - `task_id`: the task the event is about; absent for daemon-wide events.
//! - `attempt`: the attempt number (1-based); absent when not about one attempt.
//! - any further fields are event specific. New fields may be added; existing fields keep
//!   their meaning. The four keys above always come first, in this order.
//!
//! # Event names
//!
//! | event | when |
//! |---|---|
//! | `task_received` | a task file was picked up from `tasks/` (or submitted); says when an `id` got a suffix |
//! | `parsed` | the task file was parsed and accepted |
//! | `task_rejected` | the task could not be accepted (parse error, paths outside the allowed root, ...) |
//! | `queued` | the task entered the durable queue |
//! | `claude_started` | an agent attempt started (pid, working dir, model) |
//! | `claude_progress` | the agent reported progress (turns, tool use) while running |
//! | `claude_finished` | an agent attempt ended (exit code, turns, cost, duration) |
//! | `retry` | a transient failure is retried (next attempt, backoff) |
//! | `cancel_requested` | someone asked to cancel the task |
//! | `cancelled` | the task was cancelled (never started, or stopped) |
//! | `timed_out` | an attempt ran past its timeout and was stopped |
//! | `summarized` | the summary was made (method `llm` or `extract`) |
//! | `validated` | success criteria were judged / the result validated against the schema |
//! | `artifacts_written` | `results/<stem>_result.json` and the summary were written |
//! | `task_archived` | the task file was moved to `tasks/processed/` or `tasks/rejected/` |
//! | `recovered` | at start, a task whose run was cut off was re-queued |
//! | `notified` | a notification (Telegram, ...) was sent |
//! | `config_reloaded` | `.env` / `config/orca.toml` / SIGHUP reloaded the configuration |
//! | `daemon_started` | `orca run` started |
//! | `daemon_stopped` | `orca run` stopped |
//!
//! Events are values of [`Event`] (task, attempt, [`EventKind`]); each kind's fields are
//! typed, see [`kind`]. Agent events (`claude_*`) carry `agent` (`claude`).
//!
//! # Writing and rotation
//!
//! [`EventBus::publish`] hands an event to the log's own thread ([`bus`]), which writes
//! every line whole with one write per batch to a file opened with `O_APPEND` and cuts back
//! a line that did not fit (a full disk): a line is written whole or not at all
//! ([`ndjson`]). No fsync per event. When a line would take the file past `max_bytes`, the
//! file is rotated first (`events.ndjson.(n-1)` -> `.n`, ..., `events.ndjson` -> `.1`,
//! keeping `files` old files), so a line is never split across files.
//!
//! # Reading
//!
//! The reader ([`read`]) takes whole lines only; a damaged line is skipped and counted, and
//! reading goes on at the next newline (an event fused onto a torn line is still read).

pub mod bus;
pub mod console;
pub mod kind;
pub mod ndjson;
pub mod read;
pub mod render;
pub mod shared;

pub use bus::{Closed, EventBus, Notice, Stamped, Subscriber, SUBSCRIBER_BACKLOG};
pub use kind::{Event, EventKind, AGENT_CLAUDE};
pub use ndjson::{format_line, rotated_name, LOGGED_SCAN_BYTES};
pub use read::{follow, log_files, read_events, tail, Follow, RawEvent, TailRead};

/// The event names of DESIGN §9.
pub mod names {
    pub const TASK_RECEIVED: &str = "task_received";
    pub const PARSED: &str = "parsed";
    pub const CLAUDE_STARTED: &str = "claude_started";
    pub const CLAUDE_PROGRESS: &str = "claude_progress";
    pub const CLAUDE_FINISHED: &str = "claude_finished";
    pub const SUMMARIZED: &str = "summarized";
    pub const VALIDATED: &str = "validated";
    pub const ARTIFACTS_WRITTEN: &str = "artifacts_written";
    pub const TASK_ARCHIVED: &str = "task_archived";
    pub const RETRY: &str = "retry";
    pub const TASK_REJECTED: &str = "task_rejected";
    pub const QUEUED: &str = "queued";
    pub const CANCEL_REQUESTED: &str = "cancel_requested";
    pub const CANCELLED: &str = "cancelled";
    pub const TIMED_OUT: &str = "timed_out";
    pub const RECOVERED: &str = "recovered";
    pub const NOTIFIED: &str = "notified";
    pub const CONFIG_RELOADED: &str = "config_reloaded";
    pub const DAEMON_STARTED: &str = "daemon_started";
    pub const DAEMON_STOPPED: &str = "daemon_stopped";
    pub const CHECK_FINISHED: &str = "check_finished";
    pub const LEASE_EXPIRED: &str = "lease_expired";
    pub const FIX_ROUND: &str = "fix_round";
    pub const WORKTREE_CREATED: &str = "worktree_created";
    pub const LLM_FALLBACK: &str = "llm_fallback";

    /// Every name above, in DESIGN §9 order.
    pub const ALL: &[&str] = &[
        TASK_RECEIVED,
        PARSED,
        CLAUDE_STARTED,
        CLAUDE_PROGRESS,
        CLAUDE_FINISHED,
        SUMMARIZED,
        VALIDATED,
        ARTIFACTS_WRITTEN,
        TASK_ARCHIVED,
        RETRY,
        TASK_REJECTED,
        QUEUED,
        CANCEL_REQUESTED,
        CANCELLED,
        TIMED_OUT,
        RECOVERED,
        NOTIFIED,
        CONFIG_RELOADED,
        DAEMON_STARTED,
        DAEMON_STOPPED,
        CHECK_FINISHED,
        LEASE_EXPIRED,
        FIX_ROUND,
        WORKTREE_CREATED,
        LLM_FALLBACK,
    ];
}

impl EventBus {
    /// Whether the last [`LOGGED_SCAN_BYTES`] of this bus's log file hold event `event` of
    /// this task and attempt (false without a log). For crash recovery: whether a step's
    /// event went out before the crash. Flushes first. The one place that reads the log
    /// back: a fact written to a second medium (the store) after the line would leave a
    /// window in which the line is out and the store does not know it, so exactly one
    /// `task_archived` per task across crashes needs the log's own word.
    pub fn logged(&self, task_id: &str, attempt: Option<u32>, event: &str) -> bool {
        self.flush();
        match self.log_path() {
            Some(p) => ndjson::logged(p, task_id, attempt, event),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_all_distinct() {
        let set: std::collections::HashSet<_> = super::names::ALL.iter().collect();
        assert_eq!(set.len(), 25);
    }
}

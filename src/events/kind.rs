//! The typed events of DESIGN §9: one [`Event`] per line of `logs/events.ndjson`.
//!
//! An [`Event`] names its task and attempt (when it is about one) and carries an
//! [`EventKind`], one variant per event name, whose fields are the line's further keys.
//! The fields of every variant are declared in alphabetical order: the line format of
//! earlier versions wrote them so (they went through a sorted map), and the lines stay
//! byte for byte as they were. A field that is `Option` and not marked
//! `skip_serializing_if` is written as `null` when unknown, as before.

use serde::Serialize;

/// One event: what happened ([`EventKind`]), to which task and attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// The task the event is about; `None` for daemon-wide events.
    pub task_id: Option<String>,
    /// The attempt (1-based); `None` when not about one attempt.
    pub attempt: Option<u32>,
    pub kind: EventKind,
}

impl Event {
    /// An event of task `task_id` (not about one attempt).
    pub fn task(task_id: &str, kind: EventKind) -> Event {
        Event {
            task_id: Some(task_id.to_owned()),
            attempt: None,
            kind,
        }
    }

    /// An event of attempt `attempt` of task `task_id`.
    pub fn attempt(task_id: &str, attempt: u32, kind: EventKind) -> Event {
        Event {
            task_id: Some(task_id.to_owned()),
            attempt: Some(attempt),
            kind,
        }
    }

    /// A daemon-wide event.
    pub fn daemon(kind: EventKind) -> Event {
        Event {
            task_id: None,
            attempt: None,
            kind,
        }
    }

    /// The line's `event` value.
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }
}

/// Who an agent event is about (`agent` field; "claude" today).
pub const AGENT_CLAUDE: &str = "claude";

/// What happened; serialised as the line's keys after `ts`, `event`, `task_id`, `attempt`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EventKind {
    /// A task file was picked up from `tasks/` (or submitted).
    TaskReceived {
        file: String,
        /// Says that the id was taken and which one this task got.
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        /// The id the file asked for, when it was taken.
        #[serde(skip_serializing_if = "Option::is_none")]
        renamed_from: Option<String>,
        /// `file` or `cli`.
        source: String,
        stem: String,
    },
    /// The task file was parsed and accepted.
    Parsed {
        criteria: usize,
        priority: String,
        targets: usize,
        title: Option<String>,
        #[serde(rename = "type")]
        task_type: Option<String>,
    },
    /// The task entered the durable queue (or was queued again by `orca retry`).
    Queued {
        /// Who queued it again (`cli`), for a retry.
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        priority: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry: Option<bool>,
        /// The queue's arrival number.
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<i64>,
    },
    /// The task could not be accepted.
    TaskRejected {
        error: String,
        file: String,
        hint: Option<String>,
        kind: String,
        line: Option<u64>,
    },
    /// An agent attempt started.
    ClaudeStarted {
        agent: String,
        bin: String,
        resume_session: Option<String>,
        timeout_sec: u64,
        working_dir: String,
    },
    /// The agent reported progress (turns, tool use) while running.
    ClaudeProgress {
        agent: String,
        cost_usd: Option<f64>,
        last_tool: Option<String>,
        last_tool_target: Option<String>,
        model: Option<String>,
        pid: Option<u32>,
        session_id: Option<String>,
        turns: u32,
        updated_at: String,
    },
    /// An agent attempt ended.
    ClaudeFinished {
        agent: String,
        /// How many files the run changed.
        changed_files: usize,
        cost_usd: Option<f64>,
        exit_code: Option<i32>,
        num_turns: Option<u32>,
        outcome: String,
        session_id: Option<String>,
    },
    /// A success criterion's check ran after the agent (`verdict` met or unmet).
    CheckFinished {
        command: String,
        duration_ms: u64,
        exit_code: Option<i32>,
        timed_out: bool,
        verdict: String,
    },
    /// A fix round ended: the unmet checks were fed back to the agent's session and the
    /// checks ran again (`unmet` of them are still not met).
    FixRound {
        /// Whether the round changed any file in the working folder.
        changed: bool,
        /// The unmet checks' commands the round was asked to fix.
        commands: Vec<String>,
        max_rounds: u32,
        /// How the round's agent run ended.
        outcome: String,
        round: u32,
        session_id: Option<String>,
        unmet: usize,
    },
    /// The attempt runs in a fresh git worktree (`worktree: true`).
    WorktreeCreated {
        base_commit: Option<String>,
        branch: String,
        /// False: an existing worktree of the task is used again (a retry).
        created: bool,
        path: String,
    },
    /// A transient failure is retried.
    Retry {
        delay_ms: u64,
        max_retries: u32,
        reason: String,
        /// The number of this retry (1-based).
        retry: u32,
        session_id: Option<String>,
    },
    /// Someone asked to cancel the task.
    CancelRequested {
        by: String,
        /// `queued` or `running`.
        #[serde(rename = "while")]
        while_: String,
    },
    /// The task was cancelled (`while`: `queued`, never started; `running`, stopped).
    Cancelled {
        #[serde(rename = "while")]
        while_: String,
    },
    /// An attempt ran past its timeout and was stopped.
    TimedOut {},
    /// The summary was made.
    Summarized { method: String, summary: String },
    /// The result document was written and validated against its schema.
    Validated { result: String },
    /// `results/<stem>_result.json` and the summary were written.
    ArtifactsWritten {
        result: String,
        status: String,
        summary: String,
    },
    /// The task file was moved to `tasks/processed/` or `tasks/rejected/`.
    TaskArchived { from: String, to: String },
    /// At start, a task whose run was cut off was queued again.
    Recovered { reason: String },
    /// Fleet mode: the lease of a running task ran out (its node died or lost the database);
    /// node `by` put it back in the queue (a `recovered` event follows).
    LeaseExpired { by: String },
    /// An LLM call failed and the rules decided (`stage`: routing or summary; `reason`: the
    /// failure's kind, e.g. timeout; `message`: what happened).
    LlmFallback {
        message: String,
        reason: String,
        stage: String,
    },
    /// The configuration was reloaded (`changed`), or a reload refused (`applied: false`,
    /// `error`).
    ConfigReloaded {
        #[serde(skip_serializing_if = "Option::is_none")]
        applied: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        changed: Option<Vec<String>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        reason: String,
    },
    /// A notification about the task was sent (`channel`: telegram), or given up on
    /// (`delivered: false`, logged with the reason).
    Notified {
        channel: String,
        chat_id: Option<i64>,
        delivered: bool,
        status: String,
    },
    /// `orca run` started.
    DaemonStarted {
        max_concurrent_tasks: usize,
        node: String,
        pid: u32,
        root: String,
        version: String,
    },
    /// `orca run` stopped.
    DaemonStopped { pid: u32 },
}

impl EventKind {
    /// The event's name (the line's `event` value).
    pub fn name(&self) -> &'static str {
        use super::names::*;
        match self {
            EventKind::TaskReceived { .. } => TASK_RECEIVED,
            EventKind::Parsed { .. } => PARSED,
            EventKind::Queued { .. } => QUEUED,
            EventKind::TaskRejected { .. } => TASK_REJECTED,
            EventKind::ClaudeStarted { .. } => CLAUDE_STARTED,
            EventKind::ClaudeProgress { .. } => CLAUDE_PROGRESS,
            EventKind::ClaudeFinished { .. } => CLAUDE_FINISHED,
            EventKind::CheckFinished { .. } => CHECK_FINISHED,
            EventKind::FixRound { .. } => FIX_ROUND,
            EventKind::WorktreeCreated { .. } => WORKTREE_CREATED,
            EventKind::Retry { .. } => RETRY,
            EventKind::CancelRequested { .. } => CANCEL_REQUESTED,
            EventKind::Cancelled { .. } => CANCELLED,
            EventKind::TimedOut {} => TIMED_OUT,
            EventKind::Summarized { .. } => SUMMARIZED,
            EventKind::Validated { .. } => VALIDATED,
            EventKind::ArtifactsWritten { .. } => ARTIFACTS_WRITTEN,
            EventKind::TaskArchived { .. } => TASK_ARCHIVED,
            EventKind::Recovered { .. } => RECOVERED,
            EventKind::LeaseExpired { .. } => LEASE_EXPIRED,
            EventKind::LlmFallback { .. } => LLM_FALLBACK,
            EventKind::ConfigReloaded { .. } => CONFIG_RELOADED,
            EventKind::Notified { .. } => NOTIFIED,
            EventKind::DaemonStarted { .. } => DAEMON_STARTED,
            EventKind::DaemonStopped { .. } => DAEMON_STOPPED,
        }
    }

    /// `cancelled` with `while` = `queued` or `running`.
    pub fn cancelled(while_: &str) -> EventKind {
        EventKind::Cancelled {
            while_: while_.to_owned(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// One event of every kind, with its optional fields both set and unset.
    pub fn one_of_each() -> Vec<Event> {
        let s = |x: &str| x.to_owned();
        vec![
            Event::task(
                "a",
                EventKind::TaskReceived {
                    file: s("tasks/a.task.md"),
                    note: Some(s("id 'a' is taken")),
                    renamed_from: Some(s("b")),
                    source: s("file"),
                    stem: s("a"),
                },
            ),
            Event::task(
                "a",
                EventKind::TaskReceived {
                    file: s("tasks/a.task.md"),
                    note: None,
                    renamed_from: None,
                    source: s("cli"),
                    stem: s("a"),
                },
            ),
            Event::task(
                "a",
                EventKind::Parsed {
                    criteria: 1,
                    priority: s("high"),
                    targets: 0,
                    title: None,
                    task_type: Some(s("bugfix")),
                },
            ),
            Event::task(
                "a",
                EventKind::Queued {
                    by: Some(s("cli")),
                    priority: s("medium"),
                    retry: Some(true),
                    seq: None,
                },
            ),
            Event::task(
                "a",
                EventKind::TaskRejected {
                    error: s("bad\u{1b}[2J"),
                    file: s("tasks/a.task.md"),
                    hint: None,
                    kind: s("yaml"),
                    line: Some(3),
                },
            ),
            Event::attempt(
                "a",
                1,
                EventKind::ClaudeStarted {
                    agent: s(AGENT_CLAUDE),
                    bin: s("claude"),
                    resume_session: None,
                    timeout_sec: 600,
                    working_dir: s("/w"),
                },
            ),
            Event::attempt(
                "a",
                1,
                EventKind::ClaudeProgress {
                    agent: s(AGENT_CLAUDE),
                    cost_usd: Some(0.25),
                    last_tool: Some(s("Edit")),
                    last_tool_target: None,
                    model: None,
                    pid: Some(42),
                    session_id: None,
                    turns: 3,
                    updated_at: s("t"),
                },
            ),
            Event::attempt(
                "a",
                1,
                EventKind::ClaudeFinished {
                    agent: s(AGENT_CLAUDE),
                    changed_files: 0,
                    cost_usd: None,
                    exit_code: Some(1),
                    num_turns: Some(2),
                    outcome: s("failed"),
                    session_id: Some(s("s")),
                },
            ),
            Event::attempt(
                "a",
                1,
                EventKind::Retry {
                    delay_ms: 5000,
                    max_retries: 3,
                    reason: s("api 529"),
                    retry: 1,
                    session_id: None,
                },
            ),
            Event::task(
                "a",
                EventKind::CancelRequested {
                    by: s("cli"),
                    while_: s("queued"),
                },
            ),
            Event::task("a", EventKind::cancelled("queued")),
            Event::attempt("a", 2, EventKind::TimedOut {}),
            Event::attempt(
                "a",
                2,
                EventKind::Summarized {
                    method: s("extract"),
                    summary: s("summaries/a_summary.txt"),
                },
            ),
            Event::attempt(
                "a",
                2,
                EventKind::Validated {
                    result: s("results/a_result.json"),
                },
            ),
            Event::attempt(
                "a",
                2,
                EventKind::ArtifactsWritten {
                    result: s("results/a_result.json"),
                    status: s("timed_out"),
                    summary: s("summaries/a_summary.txt"),
                },
            ),
            Event::attempt(
                "a",
                2,
                EventKind::TaskArchived {
                    from: s("tasks/a.task.md"),
                    to: s("tasks/processed/a.task.md"),
                },
            ),
            Event::task(
                "a",
                EventKind::Recovered {
                    reason: s("the previous run was cut off"),
                },
            ),
            Event::task("a", EventKind::LeaseExpired { by: s("n2") }),
            Event::daemon(EventKind::ConfigReloaded {
                applied: None,
                changed: Some(vec![s("MAX_CONCURRENT_TASKS")]),
                error: None,
                reason: s("SIGHUP"),
            }),
            Event::daemon(EventKind::ConfigReloaded {
                applied: Some(false),
                changed: None,
                error: Some(s("MAX_CONCURRENT_TASKS: not a number")),
                reason: s("configuration file changed"),
            }),
            Event::daemon(EventKind::DaemonStarted {
                max_concurrent_tasks: 3,
                node: s("n1"),
                pid: 7,
                root: s("/w"),
                version: s("0.1.0"),
            }),
            Event::daemon(EventKind::DaemonStopped { pid: 7 }),
            Event::task(
                "a",
                EventKind::Notified {
                    channel: s("telegram"),
                    chat_id: Some(-100),
                    delivered: true,
                    status: s("succeeded"),
                },
            ),
            Event::attempt(
                "a",
                1,
                EventKind::CheckFinished {
                    command: s("cargo test"),
                    duration_ms: 12,
                    exit_code: Some(101),
                    timed_out: false,
                    verdict: s("unmet"),
                },
            ),
            Event::attempt(
                "a",
                1,
                EventKind::FixRound {
                    changed: true,
                    commands: vec![s("cargo test")],
                    max_rounds: 2,
                    outcome: s("succeeded"),
                    round: 1,
                    session_id: Some(s("s1")),
                    unmet: 0,
                },
            ),
            Event::attempt(
                "a",
                1,
                EventKind::WorktreeCreated {
                    base_commit: Some(s("abc")),
                    branch: s("orca/a"),
                    created: true,
                    path: s("/w/.orca/worktrees/a"),
                },
            ),
        ]
    }

    #[test]
    fn every_kind_has_its_own_name() {
        let names: std::collections::BTreeSet<&str> =
            one_of_each().iter().map(Event::name).collect();
        assert_eq!(names.len(), 24);
        for n in &names {
            assert!(crate::events::names::ALL.contains(n), "{n}");
        }
    }
}

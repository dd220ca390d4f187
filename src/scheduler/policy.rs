//! The outcome policy: what becomes of a task once an attempt has ended. A pure function of
//! the attempt's typed outcome and the task's situation, tested below as a table.
//!
//! The daemon asks [`next`] and carries the answer out (store, events, artifacts); nothing
//! here looks at the store, the clock or the agent's text.

use std::time::Duration;

use crate::artifacts::result::ResultStatus;
use crate::runner::Outcome;
use crate::scheduler::backoff;

/// The longest wait before a retry.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// What the policy needs to know about the task besides the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Situation {
    /// The attempt that ended (1-based, over the task's life).
    pub attempt: u32,
    /// Retries already used by this task (attempts that ended in a retry).
    pub retries_done: u32,
    /// Retries allowed (`retries:` of the task file or ORCA_MAX_RETRIES).
    pub max_retries: u32,
    /// The task resumes its agent's session on a retry, so a timeout may be retried too.
    pub resume_on_retry: bool,
    /// Somebody asked to cancel the task while it ran.
    pub cancel_requested: bool,
    /// The daemon is stopping: unfinished work goes back to the queue.
    pub shutting_down: bool,
    /// The first retry's delay; later ones double, up to [`MAX_RETRY_DELAY`].
    pub retry_base: Duration,
}

impl Situation {
    fn may_retry(&self) -> bool {
        self.retries_done < self.max_retries && !self.shutting_down && !self.cancel_requested
    }
}

/// Why a task did not succeed: the result's `error.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The agent ran out of turns.
    MaxTurns,
    /// The agent reported an error of the task itself.
    AgentError,
    /// The agent could not authenticate.
    Auth,
    /// The agent binary could not be started.
    AgentMissing,
    /// The attempt ran past its timeout.
    Timeout,
    /// Cancelled by request.
    Cancelled,
    /// A transient failure with no retries left.
    Transient,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::MaxTurns => "max_turns",
            FailureKind::AgentError => "agent_error",
            FailureKind::Auth => "auth",
            FailureKind::AgentMissing => "agent_missing",
            FailureKind::Timeout => "timeout",
            FailureKind::Cancelled => "cancelled",
            FailureKind::Transient => "transient",
        }
    }
}

/// The result's error object, as the policy decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    pub hint: Option<String>,
}

/// What the daemon does next with the task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The task is over: record `status` (with `failure` unless it succeeded; the store's
    /// state is [`ResultStatus::state`]) and finalize.
    Finish {
        status: ResultStatus,
        failure: Option<Failure>,
    },
    /// Back to the queue, to run again after `delay` (retry number `retry`, 1-based).
    Retry {
        reason: String,
        retry: u32,
        delay: Duration,
    },
    /// Back to the queue as it was (the daemon is stopping); the next start runs it.
    Release,
}

const AUTH_HINT: &str = "set ANTHROPIC_API_KEY (in .env or the environment) or log in with \
                         `claude`; `orca doctor` checks it";
const MISSING_HINT: &str = "install Claude Code with `npm install -g @anthropic-ai/claude-code` \
                            or set CLAUDE_BIN; `orca doctor` checks it";
const TIMEOUT_HINT: &str = "raise `timeout_sec` in the task file or CLAUDE_TIMEOUT_SEC";
const TRANSIENT_HINT: &str = "see logs/runs/ for the agent's output; `orca retry` runs it again";
const TIMEOUT_REASON: &str = "the agent did not finish within its timeout";

/// The next step for a task whose attempt ended with `outcome`.
pub fn next(outcome: &Outcome, s: &Situation) -> Next {
    let fail = |kind, message: String, hint: Option<&str>| Next::Finish {
        status: ResultStatus::Failed,
        failure: Some(Failure {
            kind,
            message,
            hint: hint.map(str::to_owned),
        }),
    };
    match outcome {
        Outcome::Succeeded => Next::Finish {
            status: ResultStatus::Succeeded,
            failure: None,
        },
        Outcome::MaxTurns { detail, .. } => fail(
            FailureKind::MaxTurns,
            format!("max turns reached: {detail}"),
            None,
        ),
        Outcome::TaskFailed { reason } => fail(FailureKind::AgentError, reason.clone(), None),
        Outcome::AuthFailed { reason } => fail(FailureKind::Auth, reason.clone(), Some(AUTH_HINT)),
        Outcome::SpawnFailed { reason } => fail(
            FailureKind::AgentMissing,
            reason.clone(),
            Some(MISSING_HINT),
        ),
        Outcome::Cancelled if s.shutting_down && !s.cancel_requested => Next::Release,
        Outcome::Cancelled => cancelled(),
        Outcome::TimedOut | Outcome::Transient { .. } if s.cancel_requested => cancelled(),
        Outcome::TimedOut if s.resume_on_retry && s.may_retry() => retry(TIMEOUT_REASON, s),
        Outcome::TimedOut => Next::Finish {
            status: ResultStatus::TimedOut,
            failure: Some(Failure {
                kind: FailureKind::Timeout,
                message: format!("{TIMEOUT_REASON} (attempt {})", s.attempt),
                hint: Some(TIMEOUT_HINT.into()),
            }),
        },
        Outcome::Transient { .. } if s.shutting_down => Next::Release,
        Outcome::Transient { reason } if s.may_retry() => retry(reason, s),
        Outcome::Transient { reason } => fail(
            FailureKind::Transient,
            format!("{reason} (gave up after {} attempts)", s.attempt),
            Some(TRANSIENT_HINT),
        ),
    }
}

/// Strict mode's word on a finished attempt whose status the policy decided: a success
/// whose checks were not all met (`checks_unmet`) is a failure; any other status stands.
pub fn under_strict(status: ResultStatus, checks_unmet: bool) -> ResultStatus {
    match status {
        ResultStatus::Succeeded if checks_unmet => ResultStatus::Failed,
        s => s,
    }
}

fn cancelled() -> Next {
    Next::Finish {
        status: ResultStatus::Cancelled,
        failure: Some(Failure {
            kind: FailureKind::Cancelled,
            message: "cancelled by request".into(),
            hint: None,
        }),
    }
}

fn retry(reason: &str, s: &Situation) -> Next {
    let retry = s.retries_done + 1;
    Next::Retry {
        reason: reason.to_owned(),
        retry,
        delay: backoff::delay(s.retry_base, MAX_RETRY_DELAY, retry),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every outcome kind, as the table's rows.
    fn outcomes() -> Vec<(&'static str, Outcome)> {
        let r = || "why".to_string();
        vec![
            ("succeeded", Outcome::Succeeded),
            (
                "max_turns",
                Outcome::MaxTurns {
                    turns: Some(3),
                    detail: r(),
                },
            ),
            ("agent_error", Outcome::TaskFailed { reason: r() }),
            ("auth", Outcome::AuthFailed { reason: r() }),
            ("spawn", Outcome::SpawnFailed { reason: r() }),
            ("timed_out", Outcome::TimedOut),
            ("cancelled", Outcome::Cancelled),
            ("transient", Outcome::Transient { reason: r() }),
        ]
    }

    /// A short name for a decision, so that the table reads as text.
    fn short(n: &Next) -> String {
        match n {
            Next::Finish { status, failure } => match failure {
                Some(f) => format!("{}:{}", status.as_str(), f.kind.as_str()),
                None => status.as_str().to_owned(),
            },
            Next::Retry { retry, .. } => format!("retry#{retry}"),
            Next::Release => "release".into(),
        }
    }

    fn situation(retries_left: bool, cancel: bool, stopping: bool, resume: bool) -> Situation {
        Situation {
            attempt: 2,
            retries_done: 1,
            max_retries: if retries_left { 2 } else { 1 },
            resume_on_retry: resume,
            cancel_requested: cancel,
            shutting_down: stopping,
            retry_base: Duration::from_millis(100),
        }
    }

    /// The whole table: outcome x retries left x cancel requested x daemon stopping x
    /// resume on retry. Columns: the 16 situations in the order of the loops below
    /// (retries left, cancel, stopping, resume: each false then true, resume fastest).
    #[test]
    fn the_policy_table() {
        let expected: &[(&str, [&str; 16])] = &[
            ("succeeded", ["succeeded"; 16]),
            ("max_turns", ["failed:max_turns"; 16]),
            ("agent_error", ["failed:agent_error"; 16]),
            ("auth", ["failed:auth"; 16]),
            ("spawn", ["failed:agent_missing"; 16]),
            (
                "timed_out",
                [
                    // no retries left
                    "timed_out:timeout",
                    "timed_out:timeout",
                    "timed_out:timeout",
                    "timed_out:timeout",
                    "cancelled:cancelled",
                    "cancelled:cancelled",
                    "cancelled:cancelled",
                    "cancelled:cancelled",
                    // retries left
                    "timed_out:timeout",
                    "retry#2",
                    "timed_out:timeout",
                    "timed_out:timeout",
                    "cancelled:cancelled",
                    "cancelled:cancelled",
                    "cancelled:cancelled",
                    "cancelled:cancelled",
                ],
            ),
            (
                "cancelled",
                [
                    "cancelled:cancelled",
                    "cancelled:cancelled",
                    "release",
                    "release",
                    "cancelled:cancelled",
                    "cancelled:cancelled",
                    "cancelled:cancelled",
                    "cancelled:cancelled",
                    "cancelled:cancelled",
                    "cancelled:cancelled",
                    "release",
                    "release",
                    "cancelled:cancelled",
                    "cancelled:cancelled",
                    "cancelled:cancelled",
                    "cancelled:cancelled",
                ],
            ),
            (
                "transient",
                [
                    "failed:transient",
                    "failed:transient",
                    "release",
                    "release",
                    "cancelled:cancelled",
                    "cancelled:cancelled",
                    "cancelled:cancelled",
                    "cancelled:cancelled",
                    "retry#2",
                    "retry#2",
                    "release",
                    "release",
                    "cancelled:cancelled",
                    "cancelled:cancelled",
                    "cancelled:cancelled",
                    "cancelled:cancelled",
                ],
            ),
        ];
        let outcomes = outcomes();
        assert_eq!(
            outcomes.len(),
            expected.len(),
            "every outcome kind has a row"
        );
        for ((name, outcome), (row, cells)) in outcomes.iter().zip(expected) {
            assert_eq!(name, row);
            let mut col = 0;
            for retries_left in [false, true] {
                for cancel in [false, true] {
                    for stopping in [false, true] {
                        for resume in [false, true] {
                            let s = situation(retries_left, cancel, stopping, resume);
                            let got = short(&next(outcome, &s));
                            assert_eq!(
                                got, cells[col],
                                "{name} with retries_left={retries_left} cancel={cancel} \
                                 stopping={stopping} resume={resume}"
                            );
                            col += 1;
                        }
                    }
                }
            }
        }
    }

    /// Strict mode turns only a success into a failure; every final status of the policy
    /// is recorded as the store state of the same name.
    #[test]
    fn strict_mode_and_the_state_of_each_status() {
        use crate::store::TaskState;
        let table = [
            (
                ResultStatus::Succeeded,
                ResultStatus::Failed,
                TaskState::Succeeded,
            ),
            (
                ResultStatus::Failed,
                ResultStatus::Failed,
                TaskState::Failed,
            ),
            (
                ResultStatus::TimedOut,
                ResultStatus::TimedOut,
                TaskState::TimedOut,
            ),
            (
                ResultStatus::Cancelled,
                ResultStatus::Cancelled,
                TaskState::Cancelled,
            ),
            (
                ResultStatus::Rejected,
                ResultStatus::Rejected,
                TaskState::Rejected,
            ),
        ];
        for (status, strict, state) in table {
            assert_eq!(under_strict(status, false), status);
            assert_eq!(under_strict(status, true), strict, "{status:?}");
            assert_eq!(status.state(), state);
            assert_eq!(ResultStatus::of(state), Some(status));
            assert_eq!(status.as_str(), state.as_str(), "one word for both");
        }
        assert_eq!(
            table.len(),
            TaskState::FINAL.len(),
            "every final state has a row"
        );
        assert_eq!(ResultStatus::of(TaskState::Queued), None);
        assert_eq!(ResultStatus::of(TaskState::Running), None);
    }

    /// The word `claude_finished` gives each outcome kind.
    #[test]
    fn every_outcome_has_its_event_word() {
        let words: Vec<(&str, &str)> = outcomes().iter().map(|(row, o)| (*row, o.name())).collect();
        assert_eq!(
            words,
            [
                ("succeeded", "succeeded"),
                ("max_turns", "failed"),
                ("agent_error", "failed"),
                ("auth", "auth_failed"),
                ("spawn", "spawn_failed"),
                ("timed_out", "timed_out"),
                ("cancelled", "cancelled"),
                ("transient", "transient"),
            ]
        );
    }

    #[test]
    fn a_retry_backs_off_and_says_why() {
        let mut s = situation(true, false, false, false);
        s.retries_done = 0;
        s.max_retries = 3;
        let n = next(
            &Outcome::Transient {
                reason: "API overloaded".into(),
            },
            &s,
        );
        assert_eq!(
            n,
            Next::Retry {
                reason: "API overloaded".into(),
                retry: 1,
                delay: Duration::from_millis(100)
            }
        );
        s.retries_done = 2;
        let Next::Retry { retry, delay, .. } = next(&Outcome::Transient { reason: "x".into() }, &s)
        else {
            panic!("a third retry is allowed");
        };
        assert_eq!((retry, delay), (3, Duration::from_millis(400)));
    }

    #[test]
    fn failures_carry_the_agents_reason_and_the_fix() {
        let s = situation(false, false, false, false);
        let Next::Finish {
            failure: Some(f), ..
        } = next(
            &Outcome::Transient {
                reason: "the agent crashed".into(),
            },
            &s,
        )
        else {
            panic!("a transient failure with no retry left ends the task");
        };
        assert_eq!(f.message, "the agent crashed (gave up after 2 attempts)");
        assert!(f.hint.is_some_and(|h| h.contains("orca retry")));
        let Next::Finish {
            failure: Some(f), ..
        } = next(&Outcome::TimedOut, &s)
        else {
            panic!("a timeout ends the task");
        };
        assert!(f.message.contains("attempt 2"), "{}", f.message);
        assert_eq!(f.kind, FailureKind::Timeout);
    }
}

//! The fix loop's policy (pure): whether another round runs, what the agent is told in it
//! (the failing commands and their output tails), and how a round's run joins the attempt.

use std::time::Duration;

use super::CheckResult;
use crate::artifacts::result::Verdict;
use crate::runner::{Outcome, RunOutcome};

/// The output of each failing check quoted to the agent, at most (its last bytes).
pub const QUOTED_TAIL_BYTES: usize = 2000;
/// Less agent time than this left: no further round is started.
pub const MIN_ROUND_TIME: Duration = Duration::from_secs(1);

/// Why no (further) fix round runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Every check is met (or the task has none).
    AllMet,
    /// `fix_rounds` rounds ran (or it is 0).
    NoRoundsLeft,
    /// The task's timeout leaves less than [`MIN_ROUND_TIME`] for the agent.
    NoTimeLeft,
    /// The agent's last run did not end in success: its verdict stands.
    NotSucceeded,
    /// The last round changed no file: another one would see the same failures.
    Unchanged,
    /// The task was cancelled.
    Cancelled,
}

impl Stop {
    /// For the log: why the loop ended.
    pub fn describe(&self) -> &'static str {
        match self {
            Stop::AllMet => "every check is met",
            Stop::NoRoundsLeft => "no fix rounds left",
            Stop::NoTimeLeft => "the task's timeout leaves no time for another round",
            Stop::NotSucceeded => "the agent's last run did not succeed",
            Stop::Unchanged => "the last round changed nothing",
            Stop::Cancelled => "the task was cancelled",
        }
    }
}

/// Whether round `done + 1` runs: only after a successful run with unmet checks, while
/// rounds and agent time are left.
pub fn next_round(
    done: u32,
    max: u32,
    outcome: &Outcome,
    checks: &[CheckResult],
    time_left: Duration,
) -> Result<(), Stop> {
    if done >= max {
        return Err(Stop::NoRoundsLeft);
    }
    if !matches!(outcome, Outcome::Succeeded) {
        return Err(Stop::NotSucceeded);
    }
    if checks.iter().all(|c| c.verdict == Verdict::Met) {
        return Err(Stop::AllMet);
    }
    if time_left < MIN_ROUND_TIME {
        return Err(Stop::NoTimeLeft);
    }
    Ok(())
}

/// The commands of the unmet checks, in criterion order.
pub fn unmet_commands(checks: &[CheckResult]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| c.verdict != Verdict::Met)
        .map(|c| c.run.command.clone())
        .collect()
}

/// What the agent is told in fix round `round` of `max`: each unmet check, how it failed
/// and the end of its output.
pub fn fix_prompt(round: u32, max: u32, checks: &[CheckResult]) -> String {
    let unmet: Vec<&CheckResult> = checks
        .iter()
        .filter(|c| c.verdict != Verdict::Met)
        .collect();
    let mut s = format!(
        "Orca ran the task's success checks after your work and {} of them failed \
         (fix round {round} of {max}).\n",
        unmet.len()
    );
    for c in unmet {
        let how = match (c.run.timed_out, c.run.exit_code) {
            (true, _) => "timed out".to_owned(),
            (false, Some(code)) => format!("failed with exit {code}"),
            (false, None) => format!("failed ({})", c.reason),
        };
        let tail = quoted_tail(&c.run.output_tail);
        if tail.trim().is_empty() {
            s.push_str(&format!(
                "\nThe check `{}` {how} and printed nothing.\n",
                c.run.command
            ));
        } else {
            s.push_str(&format!(
                "\nThe check `{}` {how}: the end of its output:\n```\n{}\n```\n",
                c.run.command,
                tail.trim_end()
            ));
        }
    }
    s.push_str(
        "\nFix the cause in the working folder so that these commands succeed (Orca runs them \
         again when you are done), then say briefly what you changed.",
    );
    s
}

/// The last [`QUOTED_TAIL_BYTES`] of a check's output, starting at a character.
fn quoted_tail(t: &str) -> &str {
    if t.len() <= QUOTED_TAIL_BYTES {
        return t;
    }
    let mut start = t.len() - QUOTED_TAIL_BYTES;
    while !t.is_char_boundary(start) {
        start += 1;
    }
    &t[start..]
}

/// Joins a fix round's run to the attempt's: a finished round (success, failure, turns
/// used up) or a cancel decides the outcome; a round cut off otherwise (timeout, crash,
/// no start) leaves the earlier outcome. The final message and the session are the
/// round's when it has them; cost and turns add up.
pub fn join_round(attempt: &mut RunOutcome, round: RunOutcome) {
    if super::runs_checks(&round.outcome) || matches!(round.outcome, Outcome::Cancelled) {
        attempt.outcome = round.outcome;
        attempt.exit_code = round.exit_code;
    }
    if round.output.is_some() {
        attempt.output = round.output;
    }
    if round.session_id.is_some() {
        attempt.session_id = round.session_id;
    }
    attempt.cost_usd = match (attempt.cost_usd, round.cost_usd) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    };
    attempt.num_turns = match (attempt.num_turns, round.num_turns) {
        (Some(a), Some(b)) => Some(a.saturating_add(b)),
        (a, b) => a.or(b),
    };
    if round.usage.is_some() {
        attempt.usage = round.usage;
    }
    if round.model.is_some() {
        attempt.model = round.model;
    }
    if !round.stderr_tail.is_empty() {
        attempt.stderr_tail = round.stderr_tail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::result::CheckRun;

    fn check(cmd: &str, verdict: Verdict, exit: Option<i32>, tail: &str) -> CheckResult {
        CheckResult {
            criterion: 0,
            verdict,
            reason: match exit {
                Some(c) => format!("exit code {c}"),
                None => "timed out after 1 s".into(),
            },
            run: CheckRun {
                command: cmd.into(),
                exit_code: exit,
                timed_out: exit.is_none(),
                output_tail: tail.into(),
                duration_ms: 1,
            },
        }
    }

    #[test]
    fn rounds_run_after_a_success_with_unmet_checks_while_rounds_and_time_last() {
        let met = [check("true", Verdict::Met, Some(0), "")];
        let unmet = [check("false", Verdict::Unmet, Some(1), "")];
        let ok = Outcome::Succeeded;
        let failed = Outcome::TaskFailed { reason: "x".into() };
        let t = Duration::from_secs(60);
        type Row<'a> = (
            u32,
            u32,
            &'a Outcome,
            &'a [CheckResult],
            Duration,
            Result<(), Stop>,
        );
        let table: [Row; 8] = [
            (0, 2, &ok, &unmet, t, Ok(())),
            (1, 2, &ok, &unmet, t, Ok(())),
            (2, 2, &ok, &unmet, t, Err(Stop::NoRoundsLeft)),
            (0, 0, &ok, &unmet, t, Err(Stop::NoRoundsLeft)),
            (0, 2, &ok, &met, t, Err(Stop::AllMet)),
            (0, 2, &ok, &[], t, Err(Stop::AllMet)),
            (0, 2, &failed, &unmet, t, Err(Stop::NotSucceeded)),
            (
                0,
                2,
                &ok,
                &unmet,
                Duration::from_millis(500),
                Err(Stop::NoTimeLeft),
            ),
        ];
        for (done, max, outcome, checks, left, want) in table {
            assert_eq!(
                next_round(done, max, outcome, checks, left),
                want,
                "{done}/{max} {outcome:?}"
            );
        }
    }

    #[test]
    fn the_prompt_names_each_failing_command_with_its_tail() {
        let long = format!("{}THE END", "x".repeat(5000));
        let checks = [
            check("true", Verdict::Met, Some(0), "fine"),
            check(
                "cargo test",
                Verdict::Unmet,
                Some(101),
                "test a ... FAILED\n",
            ),
            check("sleep 9", Verdict::Unmet, None, ""),
            check("loud", Verdict::Unmet, Some(2), &long),
        ];
        let p = fix_prompt(1, 2, &checks);
        assert!(p.contains("3 of them failed (fix round 1 of 2)"), "{p}");
        assert!(
            p.contains("The check `cargo test` failed with exit 101: the end of its output:\n```\ntest a ... FAILED\n```"),
            "{p}"
        );
        assert!(
            p.contains("The check `sleep 9` timed out and printed nothing."),
            "{p}"
        );
        assert!(p.contains("THE END"), "{p}");
        assert!(p.len() < 3000, "the tail is cut: {}", p.len());
        assert!(!p.contains("`true`"), "{p}");
        assert_eq!(unmet_commands(&checks), ["cargo test", "sleep 9", "loud"]);
    }

    fn run(outcome: Outcome, output: Option<&str>, cost: Option<f64>) -> RunOutcome {
        RunOutcome {
            output: output.map(str::to_owned),
            cost_usd: cost,
            num_turns: Some(2),
            session_id: Some("s".into()),
            ..RunOutcome::bare("claude", outcome)
        }
    }

    #[test]
    fn a_round_joins_the_attempt() {
        let table = [
            (Outcome::Succeeded, Outcome::Succeeded),
            (
                Outcome::TaskFailed { reason: "x".into() },
                Outcome::TaskFailed { reason: "x".into() },
            ),
            (Outcome::Cancelled, Outcome::Cancelled),
            (Outcome::TimedOut, Outcome::Succeeded),
            (
                Outcome::Transient { reason: "x".into() },
                Outcome::Succeeded,
            ),
        ];
        for (round, want) in table {
            let mut a = run(Outcome::Succeeded, Some("first"), Some(0.5));
            join_round(&mut a, run(round.clone(), Some("second"), Some(0.25)));
            assert_eq!(a.outcome, want, "{round:?}");
            assert_eq!(a.output.as_deref(), Some("second"));
            assert_eq!(a.cost_usd, Some(0.75));
            assert_eq!(a.num_turns, Some(4));
        }
        let mut a = run(Outcome::Succeeded, Some("first"), None);
        join_round(&mut a, run(Outcome::TimedOut, None, Some(0.1)));
        assert_eq!(a.output.as_deref(), Some("first"));
        assert_eq!(a.cost_usd, Some(0.1));
    }
}

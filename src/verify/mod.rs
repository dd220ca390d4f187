//! Verifying an attempt after its agent: the task's checks (criteria ending in a backticked
//! command, run in the working folder), strict mode's verdict on them, the fix loop's policy
//! ([`rounds`]), the claims check ([`claims`]) and the git facts.

pub mod check;
pub mod claims;
pub mod git;
pub mod rounds;
pub mod worktree;

use crate::artifacts::result::{
    CheckRun, CriterionMethod, CriterionVerdict, GitInfo, ResultError, Verdict,
};
use crate::runner::Outcome;

/// What verification found for one attempt, handed from the worker to finalize.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verified {
    /// One entry per check criterion, in criterion order.
    pub checks: Vec<CheckResult>,
    /// The git facts of the working folder (None: not in a repository, or not asked).
    pub git: Option<GitInfo>,
    /// Strict mode's failure of a succeeded attempt whose checks are not all met.
    pub strict_failure: Option<ResultError>,
    /// Fix rounds the attempt ran (None: none).
    pub rounds: Option<u32>,
    /// A cancel of the task stopped the checks.
    pub cancelled: bool,
    /// The claims check of the agent's final message (None: not made, no final message).
    pub claims: Option<Vec<crate::artifacts::result::Claim>>,
}

/// The executed check of the criterion at `criterion` (an index into the task's criteria).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub criterion: usize,
    pub verdict: Verdict,
    /// Why: `exit code 0`, `exit code 1`, `timed out after 2 s`, `cannot start: ...`.
    pub reason: String,
    pub run: CheckRun,
}

/// The error kind of a task failed by strict mode.
pub const CHECKS_FAILED: &str = "checks_failed";

/// Whether checks run after an attempt with this outcome: only when the agent finished
/// its work (succeeded, failed or ran out of turns); not when it was cut off (timeout,
/// cancel), never started, or will be retried.
pub fn runs_checks(outcome: &Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Succeeded | Outcome::TaskFailed { .. } | Outcome::MaxTurns { .. }
    )
}

/// The verdict's word in events and results.
pub fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Met => "met",
        Verdict::Unmet => "unmet",
        Verdict::Unknown => "unknown",
    }
}

/// Strict mode's verdict: with `strict`, an attempt that succeeded with unmet checks fails,
/// its error naming each unmet check. None: the status stands.
pub fn strict_failure(
    strict: bool,
    outcome: &Outcome,
    checks: &[CheckResult],
) -> Option<ResultError> {
    if !strict || !matches!(outcome, Outcome::Succeeded) {
        return None;
    }
    let unmet: Vec<String> = checks
        .iter()
        .filter(|c| c.verdict != Verdict::Met)
        .map(|c| format!("`{}` ({})", c.run.command, c.reason))
        .collect();
    if unmet.is_empty() {
        return None;
    }
    let what = if unmet.len() == 1 {
        "check is"
    } else {
        "checks are"
    };
    Some(ResultError {
        kind: CHECKS_FAILED.to_owned(),
        message: format!(
            "the agent reported success but {} {what} not met: {}",
            unmet.len(),
            unmet.join(", ")
        ),
        line: None,
        hint: Some(
            "run the unmet checks in the task's working folder and fix what they report; \
             without `strict: true` (and ORCA_STRICT_CRITERIA) the task keeps its status"
                .into(),
        ),
    })
}

/// Puts each check's verdict on its criterion: method `check` wins over the others.
pub fn apply_checks(criteria: &mut [CriterionVerdict], checks: &[CheckResult]) {
    for c in checks {
        if let Some(v) = criteria.get_mut(c.criterion) {
            v.verdict = c.verdict;
            v.reason = Some(c.reason.clone());
            v.method = Some(CriterionMethod::Check);
            v.check = Some(c.run.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(i: usize, cmd: &str, verdict: Verdict, reason: &str) -> CheckResult {
        CheckResult {
            criterion: i,
            verdict,
            reason: reason.into(),
            run: CheckRun {
                command: cmd.into(),
                exit_code: None,
                timed_out: false,
                output_tail: String::new(),
                duration_ms: 1,
            },
        }
    }

    #[test]
    fn checks_run_only_after_a_finished_agent() {
        let table = [
            (Outcome::Succeeded, true),
            (Outcome::TaskFailed { reason: "x".into() }, true),
            (
                Outcome::MaxTurns {
                    turns: None,
                    detail: String::new(),
                },
                true,
            ),
            (Outcome::TimedOut, false),
            (Outcome::Cancelled, false),
            (Outcome::Transient { reason: "x".into() }, false),
            (Outcome::AuthFailed { reason: "x".into() }, false),
            (Outcome::SpawnFailed { reason: "x".into() }, false),
        ];
        for (o, want) in table {
            assert_eq!(runs_checks(&o), want, "{o:?}");
        }
    }

    #[test]
    fn strict_fails_only_a_success_with_unmet_checks() {
        let met = result(0, "true", Verdict::Met, "exit code 0");
        let unmet = result(1, "false", Verdict::Unmet, "exit code 1");
        let two = [met.clone(), unmet.clone()];
        let failed = Outcome::TaskFailed { reason: "x".into() };
        assert_eq!(strict_failure(false, &Outcome::Succeeded, &two), None);
        assert_eq!(strict_failure(true, &failed, &two), None);
        assert_eq!(
            strict_failure(true, &Outcome::Succeeded, std::slice::from_ref(&met)),
            None
        );
        assert_eq!(strict_failure(true, &Outcome::Succeeded, &[]), None);
        let e = strict_failure(true, &Outcome::Succeeded, &two).unwrap();
        assert_eq!(e.kind, "checks_failed");
        assert_eq!(
            e.message,
            "the agent reported success but 1 check is not met: `false` (exit code 1)"
        );
        let e = strict_failure(true, &Outcome::Succeeded, &[unmet.clone(), unmet]).unwrap();
        assert!(e.message.contains("2 checks are not met"), "{}", e.message);
    }

    #[test]
    fn a_check_verdict_replaces_the_criterion_verdict() {
        let none = |t: &str| CriterionVerdict {
            text: t.into(),
            verdict: Verdict::Unknown,
            reason: Some("no LLM configured to judge".into()),
            method: Some(CriterionMethod::None),
            check: None,
        };
        let mut v = vec![none("a"), none("b: `false`")];
        apply_checks(&mut v, &[result(1, "false", Verdict::Unmet, "exit code 1")]);
        assert_eq!(v[0], none("a"));
        assert_eq!(v[1].verdict, Verdict::Unmet);
        assert_eq!(v[1].method, Some(CriterionMethod::Check));
        assert_eq!(v[1].reason.as_deref(), Some("exit code 1"));
        assert_eq!(
            v[1].check.as_ref().map(|c| c.command.as_str()),
            Some("false")
        );
    }
}

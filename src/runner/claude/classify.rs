//! Claude Code's outcomes: how an attempt's exit status, `result` line and stderr map to an
//! [`Outcome`] (research §5/§6), and what a failed start means.

use std::path::Path;

use crate::runner::spawn::{SpawnError, Stage};
use crate::runner::stream::ResultLine;
use crate::runner::Outcome;

/// Hint given whenever the binary cannot be started.
pub const INSTALL_HINT: &str =
    "install Claude Code with `npm install -g @anthropic-ai/claude-code` or set CLAUDE_BIN to the agent's path";
/// Hint given on authentication failures.
const AUTH_HINT: &str = "set ANTHROPIC_API_KEY in the environment or in the workspace .env (or log in once with `claude /login`)";

/// Maps how the agent ended to an [`Outcome`] (research §5/§6: the exit status and
/// `is_error` decide, not the result's subtype).
pub fn classify(exit_code: Option<i32>, result: Option<&ResultLine>, stderr_tail: &str) -> Outcome {
    let code = exit_code.map_or_else(|| "unknown".to_owned(), |c| c.to_string());
    let Some(r) = result else {
        let mut reason = format!("agent exited with code {code} and no result line");
        let err = last_lines(stderr_tail, 5, 600);
        if !err.is_empty() {
            reason.push_str("; stderr: ");
            reason.push_str(&err);
        }
        return Outcome::Transient { reason };
    };
    if !r.is_error {
        return if exit_code == Some(0) {
            Outcome::Succeeded
        } else {
            Outcome::Transient {
                reason: format!(
                    "agent exited with code {code} after reporting success (was it stopped by a signal?)"
                ),
            }
        };
    }
    let text = r
        .result
        .clone()
        .filter(|t| !t.trim().is_empty())
        .or_else(|| (!r.errors.is_empty()).then(|| r.errors.join("; ")));
    if r.subtype == "error_max_turns" || r.terminal_reason.as_deref() == Some("max_turns") {
        let detail = if r.errors.is_empty() {
            text.unwrap_or_else(|| "the agent used all its turns".into())
        } else {
            r.errors.join("; ")
        };
        return Outcome::MaxTurns {
            turns: r.num_turns,
            detail,
        };
    }
    let lower = text.as_deref().unwrap_or("").to_lowercase();
    let auth_words = [
        "not logged in",
        "please run /login",
        "authentication",
        "invalid api key",
        "invalid x-api-key",
        "oauth token",
    ];
    if matches!(r.api_error_status, Some(401 | 403)) || auth_words.iter().any(|w| lower.contains(w))
    {
        return Outcome::AuthFailed {
            reason: format!(
                "authentication failed: {}; {AUTH_HINT}",
                text.unwrap_or_else(|| "API status 401".into())
            ),
        };
    }
    let message = text.clone().unwrap_or_else(|| match r.api_error_status {
        Some(s) => format!("API Error: {s}"),
        None => format!("the agent reported an error (subtype {})", r.subtype),
    });
    match r.api_error_status {
        Some(408 | 409 | 425 | 429) | Some(500..=599) => {
            return Outcome::Transient { reason: message }
        }
        // The API refused the request itself (too long, invalid): retrying cannot help.
        Some(400..=499) => {
            return Outcome::TaskFailed {
                reason: format!("the API rejected the request: {message}"),
            }
        }
        _ => {}
    }
    let transient_words = [
        "api error",
        "request timed out",
        "timed out",
        "unable to connect",
        "connection",
        "econnreset",
        "econnrefused",
        "etimedout",
        "socket hang up",
        "fetch failed",
        "network",
        "overloaded",
        "rate limit",
    ];
    if r.api_error_status.is_some() || transient_words.iter().any(|w| lower.contains(w)) {
        return Outcome::Transient { reason: message };
    }
    Outcome::TaskFailed { reason: message }
}

/// The last `n` non-empty lines of `text`, joined with ` | `, at most `max` chars.
fn last_lines(text: &str, n: usize, max: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let joined = lines[lines.len().saturating_sub(n)..].join(" | ");
    if joined.chars().count() <= max {
        joined
    } else {
        let skip = joined.chars().count() - max;
        format!("...{}", joined.chars().skip(skip).collect::<String>())
    }
}

/// What a failed start means for the task: a missing working folder or agent binary fails it
/// (with a hint); running out of descriptors, processes or memory is the machine's state at
/// that moment, not the task's or the agent's fault, so the task is tried again later.
pub fn spawn_failure(bin: &str, working_dir: &Path, e: &SpawnError) -> Outcome {
    if e.stage == Stage::Chdir {
        return Outcome::SpawnFailed {
            reason: format!(
                "the working folder {} does not exist or is not a folder; create it or fix the task's working_dir",
                working_dir.display()
            ),
        };
    }
    match crate::runner::spawn::limit_reached(&e.error) {
        Some(limit) => Outcome::Transient {
            reason: format!("cannot start the agent '{bin}': {} ({limit})", e.error),
        },
        None => Outcome::SpawnFailed {
            reason: spawn_error(bin, &e.error),
        },
    }
}

fn spawn_error(bin: &str, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            format!("the agent binary '{bin}' was not found; {INSTALL_HINT}")
        }
        std::io::ErrorKind::PermissionDenied => format!(
            "the agent binary '{bin}' is not executable ({e}); fix its permissions or {INSTALL_HINT}"
        ),
        _ => format!("cannot start the agent binary '{bin}': {e}; {INSTALL_HINT}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::io::Errno;

    fn res(subtype: &str, is_error: bool, status: Option<u16>, text: Option<&str>) -> ResultLine {
        ResultLine {
            subtype: subtype.into(),
            is_error,
            api_error_status: status,
            result: text.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn a_start_that_runs_out_of_resources_is_tried_again_a_missing_agent_is_not() {
        let failure = |stage, errno: Errno| {
            let e = SpawnError {
                stage,
                error: std::io::Error::from_raw_os_error(errno.raw_os_error()),
            };
            spawn_failure("claude", Path::new("/w"), &e)
        };
        for (errno, says) in [
            (Errno::MFILE, "ulimit -n"),
            (Errno::NFILE, "system's limit on open files"),
            (Errno::AGAIN, "ulimit -u"),
            (Errno::NOMEM, "out of memory"),
        ] {
            match failure(Stage::Setup, errno) {
                Outcome::Transient { reason } => {
                    assert!(reason.contains(says), "{reason}");
                    assert!(reason.contains("MAX_CONCURRENT_TASKS"), "{reason}");
                    assert!(
                        !reason.contains("npm install"),
                        "not blamed on the agent: {reason}"
                    );
                }
                other => panic!("errno {errno:?}: {other:?}"),
            }
        }
        match failure(Stage::Exec, Errno::NOENT) {
            Outcome::SpawnFailed { reason } => assert!(reason.contains("not found"), "{reason}"),
            other => panic!("{other:?}"),
        }
        match failure(Stage::Chdir, Errno::NOENT) {
            Outcome::SpawnFailed { reason } => {
                assert!(reason.contains("working folder /w"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn classification() {
        let ok = res("success", false, None, Some("done"));
        assert_eq!(classify(Some(0), Some(&ok), ""), Outcome::Succeeded);
        assert!(matches!(
            classify(Some(143), Some(&ok), ""),
            Outcome::Transient { reason } if reason.contains("143")
        ));
        let mut mt = res("error_max_turns", true, None, None);
        mt.errors = vec!["Reached maximum number of turns (2)".into()];
        assert_eq!(
            classify(Some(1), Some(&mt), ""),
            Outcome::MaxTurns {
                turns: None,
                detail: "Reached maximum number of turns (2)".into()
            }
        );
        let e529 = res(
            "success",
            true,
            Some(529),
            Some("API Error: 529 overloaded"),
        );
        assert_eq!(
            classify(Some(1), Some(&e529), ""),
            Outcome::Transient {
                reason: "API Error: 529 overloaded".into()
            }
        );
        let auth = res(
            "success",
            true,
            None,
            Some("Not logged in · Please run /login"),
        );
        assert!(matches!(
            classify(Some(1), Some(&auth), ""),
            Outcome::AuthFailed { reason } if reason.contains("ANTHROPIC_API_KEY")
        ));
        let e401 = res("success", true, Some(401), Some("API Error: 401 invalid"));
        assert!(matches!(
            classify(Some(1), Some(&e401), ""),
            Outcome::AuthFailed { .. }
        ));
        let e400 = res(
            "success",
            true,
            Some(400),
            Some("API Error: 400 prompt too long"),
        );
        assert!(matches!(
            classify(Some(1), Some(&e400), ""),
            Outcome::TaskFailed { .. }
        ));
        let timeout = res("success", true, None, Some("Request timed out"));
        assert!(matches!(
            classify(Some(1), Some(&timeout), ""),
            Outcome::Transient { .. }
        ));
        let conn = res(
            "success",
            true,
            None,
            Some("API Error: Unable to connect to API (ConnectionRefused)"),
        );
        assert!(matches!(
            classify(Some(1), Some(&conn), ""),
            Outcome::Transient { .. }
        ));
        let other = res("error_during_execution", true, None, Some("it broke"));
        assert_eq!(
            classify(Some(1), Some(&other), ""),
            Outcome::TaskFailed {
                reason: "it broke".into()
            }
        );
        assert_eq!(
            classify(Some(1), None, "line one\nboom\n"),
            Outcome::Transient {
                reason: "agent exited with code 1 and no result line; stderr: line one | boom"
                    .into()
            }
        );
    }
}

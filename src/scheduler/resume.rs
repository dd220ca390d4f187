//! Resuming an agent session: which earlier attempt was cut off and the short prompt a
//! resumed attempt gets. Whether the agent still has the session is its own business
//! ([`crate::runner::Agent::can_resume`]).

use crate::store::AttemptRecord;

/// Why the attempt before `attempt` ended, and whether its session may be resumed:
/// `interrupted` (crash, restart, stop) always; `retry` (a transient failure, or a timeout
/// retried) only when the task asked for `resume_on_retry`. Returns the session id.
pub fn resumable_session(
    attempts: &[AttemptRecord],
    attempt: u32,
    resume_on_retry: bool,
) -> Option<(String, &'static str)> {
    let prev = attempts
        .iter()
        .filter(|a| a.attempt < attempt)
        .max_by_key(|a| a.attempt)?;
    let why = match prev.outcome.as_deref() {
        Some("interrupted") => "interrupted",
        Some("retry") if resume_on_retry => "retry",
        _ => return None,
    };
    let sid = prev.session_id.clone().filter(|s| safe_session_id(s))?;
    Some((sid, why))
}

/// A session id that can be used as a file name (the CLI's are UUIDs).
pub fn safe_session_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Whether process `pid` is the agent Orca started for `task_id`'s attempt `attempt`
/// (its environment carries `ORCA_TASK_ID` and `ORCA_ATTEMPT`), so that a pid from an
/// earlier daemon's progress record is never mistaken for an unrelated process.
pub fn is_agent_of(pid: u32, task_id: &str, attempt: u64) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    crate::runner::escape::has_envs(
        pid,
        &[
            ("ORCA_TASK_ID", task_id),
            ("ORCA_ATTEMPT", &attempt.to_string()),
        ],
    )
}

/// What a resumed attempt is told (the session already holds the task's prompt).
pub fn continuation_prompt(why: &str) -> String {
    let what = if why == "interrupted" {
        "was interrupted (Orca restarted)"
    } else {
        "stopped before it was finished (a timeout or a transient error)"
    };
    format!(
        "Your previous run of this task {what}. Continue from where you left off and finish \
         the task as originally asked; do not redo work that is already done."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn att(n: u32, outcome: Option<&str>, sid: Option<&str>) -> AttemptRecord {
        AttemptRecord {
            task_id: "t".into(),
            attempt: n,
            worker: "w".into(),
            started_at_ms: 0,
            finished_at_ms: None,
            outcome: outcome.map(Into::into),
            error: None,
            exit_code: None,
            session_id: sid.map(Into::into),
            resumed: false,
            node: None,
        }
    }

    #[test]
    fn which_attempts_resume() {
        let a = vec![
            att(1, Some("retry"), Some("s-1")),
            att(2, Some("interrupted"), Some("s-2")),
            att(3, None, None),
        ];
        assert_eq!(
            resumable_session(&a, 3, false),
            Some(("s-2".into(), "interrupted"))
        );
        assert_eq!(resumable_session(&a, 2, false), None);
        assert_eq!(
            resumable_session(&a, 2, true),
            Some(("s-1".into(), "retry"))
        );
        assert_eq!(resumable_session(&a, 1, true), None);
        let failed = vec![att(1, Some("failed"), Some("s")), att(2, None, None)];
        assert_eq!(resumable_session(&failed, 2, true), None);
        let no_session = vec![att(1, Some("interrupted"), None), att(2, None, None)];
        assert_eq!(resumable_session(&no_session, 2, true), None);
        let unsafe_id = vec![
            att(1, Some("interrupted"), Some("../x")),
            att(2, None, None),
        ];
        assert_eq!(resumable_session(&unsafe_id, 2, true), None);
    }

    #[test]
    fn agents_are_recognised_by_their_environment() {
        let me = std::process::id();
        assert!(!is_agent_of(me, "t", 1));
        assert!(!is_agent_of(u32::MAX, "t", 1));
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .env("ORCA_TASK_ID", "t")
            .env("ORCA_ATTEMPT", "2")
            .spawn()
            .expect("sleep");
        // /proc/PID/environ shows the new environment only once the child has exec'd.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !is_agent_of(child.id(), "t", 2) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(is_agent_of(child.id(), "t", 2));
        assert!(!is_agent_of(child.id(), "t", 1));
        assert!(!is_agent_of(child.id(), "u", 2));
        let _ = child.kill();
        let _ = child.wait();
    }
}

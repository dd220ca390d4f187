//! The summary file for a person (`summaries/<stem>_summary.txt`, DESIGN §10): formatting
//! only; the summary text itself (`summary.text`) comes from `crate::mediate::summary`.

use std::fmt::Write;

use super::result::{ResultStatus, TaskResult, Verdict};
use crate::text_escape::{escape_line, escape_multiline};

/// Longest agent message shown in the summary file (characters); the rest is in the result.
const MAX_MESSAGE_CHARS: usize = 4000;
/// Most lines of the agent message shown in the summary file.
const MAX_MESSAGE_LINES: usize = 80;

/// Plain text for a person: title, status, duration, cost, the criteria checklist with
/// verdicts, the agent's final message (trimmed), and next steps that depend on the status.
/// Each thing is said once (the error and its hint in the Error block, never again in the
/// next steps), and every text from the task or the agent has its control characters
/// escaped ([`crate::text_escape`]): a summary file is safe to `cat`.
pub fn render_summary(r: &TaskResult) -> String {
    let mut out = String::new();
    let title = line(r.title.as_deref().unwrap_or(&r.task_id));
    out.push_str(&title);
    out.push('\n');
    out.push_str(&"=".repeat(title.chars().count().clamp(3, 72)));
    out.push_str("\n\n");

    // What the agent said it did and did not (the claims check) comes first.
    let unbacked: Vec<_> = r
        .verification
        .claims
        .iter()
        .filter(|c| c.status == super::result::ClaimStatus::Unbacked)
        .collect();
    if !unbacked.is_empty() {
        out.push_str("UNBACKED CLAIMS:\n");
        for c in unbacked {
            let _ = writeln!(out, "  ! {}", line(&c.text));
            if let Some(e) = &c.evidence {
                let _ = writeln!(out, "      {}", line(e));
            }
        }
        out.push('\n');
    }

    // The checks that were run and not met come next: whatever the status says, the
    // agent's work did not pass them.
    let unmet: Vec<_> = r
        .success_criteria
        .iter()
        .filter(|c| c.verdict != Verdict::Met)
        .filter_map(|c| Some((c, c.check.as_ref()?)))
        .collect();
    if !unmet.is_empty() {
        out.push_str("UNMET CHECKS:\n");
        for (c, run) in unmet {
            let why = c.reason.as_deref().unwrap_or("unmet");
            let _ = writeln!(out, "  [ ] `{}` ({})", line(&run.command), line(why));
            if let Some(last) = run.output_tail.lines().rev().find(|l| !l.trim().is_empty()) {
                let _ = writeln!(out, "      last output: {}", line(last.trim()));
            }
        }
        out.push('\n');
    }

    // Written straight into `out` (no string per line): `Name:` padded to 10 columns.
    let mut field = |name: &str, value: &str| {
        let _ = writeln!(
            out,
            "{name}:{:pad$}{value}",
            "",
            pad = 9usize.saturating_sub(name.len())
        );
    };
    field("Status", &status_line(r.status));
    field("Task", &format!("{} ({})", line(&r.task_id), line(&r.file)));
    if let Some(t) = r.task_type {
        field("Type", &format!("{t} ({})", line(&r.routing.reason)));
    }
    field("Priority", &r.priority.to_string());
    let attempts = match r.attempts {
        0 => "not run".to_owned(),
        1 => "1 attempt".to_owned(),
        n => format!("{n} attempts"),
    };
    field(
        "Duration",
        &format!("{} ({attempts})", format_duration(r.duration_ms)),
    );
    field("Cost", &cost_line(r));
    field("Finished", &r.finished_at);
    if let Some(a) = &r.archived_to {
        field("Archived", &line(a));
    }

    if let Some(e) = &r.error {
        let at = e.line.map(|l| format!(", line {l}")).unwrap_or_default();
        let _ = writeln!(out, "\nError ({}{at}):", line(&e.kind));
        let message = without_hint(&e.message, e.hint.as_deref());
        indented(&mut out, &multiline(message), "  ");
        if let Some(h) = &e.hint {
            indented(&mut out, &multiline(&format!("hint: {h}")), "  ");
        }
    }

    if !r.warnings.is_empty() {
        out.push_str("\nWarnings:\n");
        for w in &r.warnings {
            let _ = writeln!(out, "  - {}", line(w));
        }
    }

    if !r.success_criteria.is_empty() {
        out.push_str("\nSuccess criteria:\n");
        for c in &r.success_criteria {
            let (mark, word) = match c.verdict {
                Verdict::Met => ("[x]", "met"),
                Verdict::Unmet => ("[ ]", "unmet"),
                Verdict::Unknown => ("[?]", "unknown"),
            };
            let reason = c
                .reason
                .as_deref()
                .map(|s| format!(": {}", line(s)))
                .unwrap_or_default();
            let _ = writeln!(out, "  {mark} {} ({word}{reason})", line(&c.text));
        }
    }

    if !r.changed_files.is_empty() {
        out.push_str("\nChanged files:\n");
        for f in &r.changed_files {
            let _ = writeln!(out, "  - {}", line(f));
        }
    }

    if let Some(output) = r.output.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        out.push_str("\nAgent's final message:\n");
        indented(&mut out, &multiline(&trim_message(output)), "  ");
    }

    out.push_str("\nNext steps:\n");
    for step in next_steps(r) {
        let _ = writeln!(out, "  - {step}");
    }
    out
}

/// One line of text from a task or an agent, safe to print.
fn line(s: &str) -> std::borrow::Cow<'_, str> {
    escape_line(s)
}

/// Text of many lines from a task or an agent, safe to print.
fn multiline(s: &str) -> std::borrow::Cow<'_, str> {
    escape_multiline(s)
}

/// `s` with its first letter in upper case.
fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Each line of `text` after `indent` (empty lines stay empty).
fn indented(out: &mut String, text: &str, indent: &str) {
    for l in text.lines() {
        if l.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "{indent}{l}");
        }
    }
}

/// The error message without the clauses (`; ...`) that repeat the hint shown under it,
/// e.g. `the agent binary 'claude' was not found; install Claude Code with ...` when the
/// hint says `install Claude Code with ...` too.
fn without_hint<'a>(message: &'a str, hint: Option<&str>) -> &'a str {
    let Some(hint) = hint else {
        return message;
    };
    let head = hint.split("; ").next().unwrap_or(hint).trim();
    if head.len() < 12 {
        return message;
    }
    let mut end = message.len();
    let mut rest = message;
    while let Some(i) = rest.find("; ") {
        let clause_start = message.len() - rest.len() + i;
        if message[clause_start + 2..].trim_start().starts_with(head) {
            end = clause_start;
            break;
        }
        rest = &rest[i + 2..];
    }
    &message[..end]
}

fn status_line(s: ResultStatus) -> String {
    match s {
        ResultStatus::Succeeded => "succeeded".into(),
        ResultStatus::Failed => "FAILED".into(),
        ResultStatus::TimedOut => "TIMED OUT".into(),
        ResultStatus::Cancelled => "cancelled".into(),
        ResultStatus::Rejected => "REJECTED (the task file could not be accepted)".into(),
    }
}

fn cost_line(r: &TaskResult) -> String {
    let Some(a) = &r.agent else {
        return "none (no agent ran)".into();
    };
    let mut s = match a.cost_usd {
        Some(c) => format!("${c:.4}"),
        None => "not reported".to_owned(),
    };
    let mut extra = Vec::new();
    if let Some(t) = a.num_turns {
        extra.push(format!("{t} turn{}", if t == 1 { "" } else { "s" }));
    }
    if let Some(m) = &a.model {
        extra.push(format!("model {}", line(m)));
    }
    if !extra.is_empty() {
        s.push_str(&format!(" ({})", extra.join(", ")));
    }
    s
}

/// `83650` -> `1m 23.6s` (tenths truncated); `950` -> `0.9s`; hours when long.
pub fn format_duration(ms: u64) -> String {
    let tenths = ms / 100;
    let secs = tenths / 10;
    let (h, m, s, t) = (secs / 3600, (secs / 60) % 60, secs % 60, tenths % 10);
    if h > 0 {
        format!("{h}h {m}m {s}s")
    } else if m > 0 {
        format!("{m}m {s}.{t}s")
    } else {
        format!("{s}.{t}s")
    }
}

/// Keeps the first lines and characters of a long message and says what was left out.
fn trim_message(s: &str) -> String {
    let mut kept = String::new();
    let mut chars = 0usize;
    let total_lines = s.lines().count();
    let mut lines_kept = 0usize;
    let mut cut = false;
    for line in s.lines() {
        if lines_kept == MAX_MESSAGE_LINES {
            cut = true;
            break;
        }
        let n = line.chars().count();
        if chars + n > MAX_MESSAGE_CHARS {
            let room = MAX_MESSAGE_CHARS.saturating_sub(chars);
            kept.extend(line.chars().take(room));
            kept.push('\n');
            cut = true;
            break;
        }
        kept.push_str(line);
        kept.push('\n');
        chars += n + 1;
        lines_kept += 1;
    }
    if cut {
        let rest = total_lines.saturating_sub(lines_kept);
        kept.push_str(&format!(
            "[... trimmed: {rest} more line(s); the full text is `output` in the result file]\n"
        ));
    }
    kept
}

/// What to do next. The error and its hint are in the Error block above; a step points at
/// them rather than repeating them.
fn next_steps(r: &TaskResult) -> Vec<String> {
    let id = line(&r.task_id);
    let transcript = r
        .transcript
        .as_deref()
        .map(|t| format!(" (the agent's full transcript: {})", line(t)))
        .unwrap_or_default();
    let has_hint = r.error.as_ref().is_some_and(|e| e.hint.is_some());
    let cause = if has_hint {
        "fix the cause (the hint above says how)"
    } else {
        "fix the cause (the error above)"
    };
    match r.status {
        ResultStatus::Succeeded => {
            let mut v = Vec::new();
            if r.changed_files.is_empty() {
                v.push(format!(
                    "No changed files were reported: read the agent's message above{transcript}."
                ));
            } else {
                v.push(format!(
                    "Review the {} changed file(s) listed above (e.g. `git diff`) before you rely on them.",
                    r.changed_files.len()
                ));
            }
            if r.success_criteria.iter().any(|c| c.verdict != Verdict::Met) {
                v.push("Check the criteria not marked [x] yourself: Orca could not confirm them.".into());
            }
            v
        }
        // No agent ran (it could not be started): there is nothing it did to look at.
        ResultStatus::Failed if r.agent.is_none() => {
            vec![format!("{}, then run `orca retry {id}`.", capitalized(cause))]
        }
        ResultStatus::Failed => vec![format!(
            "Look at what the agent did{transcript}, {cause}, then run `orca retry {id}`."
        )],
        ResultStatus::TimedOut => vec![if has_hint {
            format!("Follow the hint above, or split the task, then run `orca retry {id}`.")
        } else {
            format!(
                "Raise `timeout_sec:` in the task's front matter (or CLAUDE_TIMEOUT_SEC), or split the task, then run `orca retry {id}`."
            )
        }],
        ResultStatus::Cancelled => vec![
            "The task was cancelled; nothing more will run for it.".into(),
            format!("Run `orca retry {id}` to run it again; partial changes may be in the working folder."),
        ],
        ResultStatus::Rejected => {
            let at = r
                .error
                .as_ref()
                .and_then(|e| e.line)
                .map(|l| format!(" at line {l}"))
                .unwrap_or_default();
            let which = if r.archived_to.is_some() {
                "the file (Archived above)"
            } else {
                "the task file"
            };
            vec![format!(
                "Correct {which}{at} as the error says, check it with `orca check FILE`, and drop it into tasks/ again."
            )]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::result::{ResultError, SourceKind, TaskSource};
    use crate::task::{TaskError, TaskErrorKind};
    use std::path::PathBuf;

    fn criteria() -> Vec<crate::task::Criterion> {
        vec![
            crate::task::Criterion {
                text: "Pool no longer times out with 50 clients".into(),
                checked: false,
            },
            crate::task::Criterion {
                text: "Tests pass".into(),
                checked: true,
            },
        ]
    }

    #[test]
    fn summary_succeeded() {
        insta::assert_snapshot!(render_summary(&TaskResult::example()));
    }

    #[test]
    fn summary_failed() {
        let mut r = TaskResult::example();
        r.status = ResultStatus::Failed;
        r.attempts = 3;
        r.changed_files.clear();
        r.error = Some(ResultError {
            kind: "agent_error".into(),
            message: "the agent exited with code 1: API rate limit reached".into(),
            line: None,
            hint: Some("wait a few minutes, or check your plan's limits".into()),
        });
        r.success_criteria = crate::mediate::judge_criteria(
            &[crate::task::Criterion {
                text: "Tests pass".into(),
                checked: false,
            }],
            r.output.as_deref(),
            r.status,
        );
        r.output = Some("Error: rate limited".into());
        insta::assert_snapshot!(render_summary(&r));
    }

    #[test]
    fn summary_timed_out() {
        let mut r = TaskResult::example();
        r.status = ResultStatus::TimedOut;
        r.duration_ms = 300_000;
        r.error = Some(ResultError {
            kind: "timeout".into(),
            message: "the attempt ran longer than 300 s".into(),
            line: None,
            hint: None,
        });
        r.output = None;
        r.changed_files.clear();
        r.success_criteria = crate::mediate::judge_criteria(&criteria(), None, r.status);
        insta::assert_snapshot!(render_summary(&r));
    }

    #[test]
    fn summary_cancelled() {
        let mut r = TaskResult::example();
        r.status = ResultStatus::Cancelled;
        r.agent = None;
        r.attempts = 0;
        r.duration_ms = 4_200;
        r.started_at = None;
        r.attempt_history.clear();
        r.transcript = None;
        r.changed_files.clear();
        r.output = None;
        r.success_criteria = crate::mediate::judge_criteria(&criteria(), None, r.status);
        r.error = Some(ResultError {
            kind: "cancelled".into(),
            message: "cancelled by `orca cancel` while queued".into(),
            line: None,
            hint: None,
        });
        insta::assert_snapshot!(render_summary(&r));
    }

    #[test]
    fn summary_rejected() {
        let err = TaskError {
            file: PathBuf::from("tasks/bad.task.md"),
            line: Some(4),
            kind: TaskErrorKind::Other("priority 'urgent' is not one of high, medium, low".into()),
        };
        let mut r = TaskResult::rejected(
            "tasks/bad.task.md",
            "bad",
            &err,
            1_764_066_600_000,
            1_764_066_600_012,
            TaskSource::new(SourceKind::File, None),
        );
        r.orca_version = "0.1.0".into();
        r.archived_to = Some("tasks/rejected/bad.task.md".into());
        insta::assert_snapshot!(render_summary(&r));
    }

    /// The agent binary is missing: the install hint is said once (the message's own copy
    /// of it is cut, the next step points at it).
    #[test]
    fn summary_failed_agent_missing() {
        let mut r = TaskResult::example();
        r.status = ResultStatus::Failed;
        r.agent = None;
        r.output = None;
        r.changed_files.clear();
        r.duration_ms = 3;
        r.error = Some(ResultError {
            kind: "agent_missing".into(),
            message: "the agent binary 'claude' was not found; install Claude Code with `npm install -g @anthropic-ai/claude-code` or set CLAUDE_BIN to the agent's path".into(),
            line: None,
            hint: Some("install Claude Code with `npm install -g @anthropic-ai/claude-code` or set CLAUDE_BIN; `orca doctor` checks it".into()),
        });
        r.success_criteria = crate::mediate::judge_criteria(&criteria(), None, r.status);
        let s = render_summary(&r);
        assert_eq!(s.matches("npm install").count(), 1, "{s}");
        assert_eq!(s.matches("was not found").count(), 1, "{s}");
        insta::assert_snapshot!(s);
    }

    #[test]
    fn rejected_summary_names_each_path_once() {
        let err = TaskError {
            file: PathBuf::from("tasks/bad.task.md"),
            line: Some(4),
            kind: TaskErrorKind::Other("priority 'urgent' is not one of high, medium, low".into()),
        };
        let mut r = TaskResult::rejected(
            "tasks/bad.task.md",
            "bad",
            &err,
            0,
            1,
            TaskSource::new(SourceKind::File, None),
        );
        r.archived_to = Some("tasks/rejected/bad.task.md".into());
        let s = render_summary(&r);
        assert_eq!(s.matches("tasks/rejected/bad.task.md").count(), 1, "{s}");
        assert_eq!(s.matches("tasks/bad.task.md").count(), 1, "{s}");
        assert_eq!(s.matches("not one of high").count(), 1, "{s}");
        assert_eq!(s.matches("see the task format").count(), 1, "{s}");
    }

    /// Escape sequences from the task or the agent never reach the file as control bytes;
    /// the agent's newlines and tabs stay.
    #[test]
    fn control_characters_are_escaped() {
        let mut r = TaskResult::example();
        r.title = Some("\x1b]0;pwned\x07Title".into());
        r.task_id = "id\x1b[2J".into();
        r.file = "tasks/\x1b[31mred.task.md".into();
        r.changed_files = vec!["src/\u{9b}x.rs".into()];
        r.success_criteria[0].text = "crit\rerion".into();
        r.agent.as_mut().unwrap().model = Some("m\x1b".into());
        r.output = Some("line one\n\tindented \x1b[H\x1b[2J done".into());
        r.error = Some(ResultError {
            kind: "agent_error".into(),
            message: "bad \x1b[1m news".into(),
            line: None,
            hint: Some("try \x07 again".into()),
        });
        r.warnings = vec!["odd \x1b value".into()];
        let s = render_summary(&r);
        let bad: Vec<char> = s
            .chars()
            .filter(|c| crate::text_escape::is_unsafe_control(*c) && !matches!(c, '\n' | '\t'))
            .collect();
        assert!(bad.is_empty(), "{bad:?} in {s}");
        for want in [
            "\\x1b]0;pwned\\x07Title\n",
            "id\\x1b[2J (tasks/\\x1b[31mred.task.md)",
            "src/\\x9bx.rs",
            "crit\\x0derion",
            "model m\\x1b",
            "  line one\n  \tindented \\x1b[H\\x1b[2J done\n",
            "bad \\x1b[1m news",
            "hint: try \\x07 again",
            "Warnings:\n  - odd \\x1b value\n",
        ] {
            assert!(s.contains(want), "{want:?} not in:\n{s}");
        }
    }

    #[test]
    fn long_message_is_trimmed() {
        let mut r = TaskResult::example();
        r.output = Some((0..200).map(|i| format!("line {i}\n")).collect());
        let s = render_summary(&r);
        assert!(s.contains("  line 79\n"));
        assert!(!s.contains("line 80\n"));
        assert!(s.contains("120 more line(s)"));
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(950), "0.9s");
        assert_eq!(format_duration(83_650), "1m 23.6s");
        assert_eq!(format_duration(3_723_000), "1h 2m 3s");
    }
}

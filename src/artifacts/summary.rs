//! The summary file for a person (`summaries/<stem>_summary.txt`, DESIGN §10), and the
//! extractive summary (first meaningful lines of the agent's output) used as `summary.text`.

use std::fmt::Write;

use super::result::{ResultStatus, TaskResult, Verdict};

/// Longest agent message shown in the summary file (characters); the rest is in the result.
const MAX_MESSAGE_CHARS: usize = 4000;
/// Most lines of the agent message shown in the summary file.
const MAX_MESSAGE_LINES: usize = 80;

/// Plain text for a person: title, status, duration, cost, the criteria checklist with
/// verdicts, the agent's final message (trimmed), and next steps that depend on the status.
pub fn render_summary(r: &TaskResult) -> String {
    let mut out = String::new();
    let title = r.title.as_deref().unwrap_or(&r.task_id);
    out.push_str(title);
    out.push('\n');
    out.push_str(&"=".repeat(title.chars().count().clamp(3, 72)));
    out.push_str("\n\n");

    // Written straight into `out` (no string per line): `Name:` padded to 10 columns.
    let mut field = |name: &str, value: String| {
        let _ = writeln!(
            out,
            "{name}:{:pad$}{value}",
            "",
            pad = 9usize.saturating_sub(name.len())
        );
    };
    field("Status", status_line(r.status));
    field("Task", format!("{} ({})", r.task_id, r.file));
    if let Some(t) = r.task_type {
        field("Type", format!("{t} ({})", r.routing.reason));
    }
    field("Priority", r.priority.to_string());
    let attempts = match r.attempts {
        0 => "not run".to_owned(),
        1 => "1 attempt".to_owned(),
        n => format!("{n} attempts"),
    };
    field(
        "Duration",
        format!("{} ({attempts})", format_duration(r.duration_ms)),
    );
    field("Cost", cost_line(r));
    field("Finished", r.finished_at.clone());
    if let Some(a) = &r.archived_to {
        field("Archived", a.clone());
    }

    if let Some(e) = &r.error {
        let line = e.line.map(|l| format!(", line {l}")).unwrap_or_default();
        let _ = writeln!(out, "\nError ({}{line}):", e.kind);
        let _ = writeln!(out, "  {}", e.message);
        if let Some(h) = &e.hint {
            let _ = writeln!(out, "  hint: {h}");
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
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            let _ = writeln!(out, "  {mark} {} ({word}{reason})", c.text);
        }
    }

    if !r.changed_files.is_empty() {
        out.push_str("\nChanged files:\n");
        for f in &r.changed_files {
            let _ = writeln!(out, "  - {f}");
        }
    }

    if let Some(output) = r.output.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        out.push_str("\nAgent's final message:\n");
        for line in trim_message(output).lines() {
            if line.is_empty() {
                out.push('\n');
            } else {
                let _ = writeln!(out, "  {line}");
            }
        }
    }

    out.push_str("\nNext steps:\n");
    for step in next_steps(r) {
        let _ = writeln!(out, "  - {step}");
    }
    out
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
        extra.push(format!("model {m}"));
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

fn next_steps(r: &TaskResult) -> Vec<String> {
    let id = &r.task_id;
    let transcript = r
        .transcript
        .as_deref()
        .map(|t| format!(" (the agent's full transcript: {t})"))
        .unwrap_or_default();
    let hint = r
        .error
        .as_ref()
        .and_then(|e| e.hint.clone())
        .map(|h| format!(" Hint: {}", sentence(&h)))
        .unwrap_or_default();
    let message = r
        .error
        .as_ref()
        .map(|e| e.message.clone())
        .unwrap_or_else(|| "no error was recorded".into());
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
        ResultStatus::Failed => vec![
            format!("The agent failed: {}{hint}", sentence(&message)),
            format!("Look at what it did{transcript}, fix the cause, then run `orca retry {id}`."),
        ],
        ResultStatus::TimedOut => vec![
            format!("The agent was stopped after the time limit: {}", sentence(&message)),
            format!(
                "Raise `timeout_sec:` in the task's front matter (or CLAUDE_TIMEOUT_SEC), or split the task, then run `orca retry {id}`."
            ),
        ],
        ResultStatus::Cancelled => vec![
            "The task was cancelled; nothing more will run for it.".into(),
            format!("Run `orca retry {id}` to run it again; partial changes may be in the working folder."),
        ],
        ResultStatus::Rejected => {
            let at = r
                .error
                .as_ref()
                .and_then(|e| e.line)
                .map(|l| format!("{}:{l}", r.file))
                .unwrap_or_else(|| r.file.clone());
            let moved = r
                .archived_to
                .as_deref()
                .map(|a| format!("The file was moved to {a}; "))
                .unwrap_or_default();
            vec![
                format!("Fix the task file: {at}: {}{hint}", sentence(&message)),
                format!(
                    "{moved}correct it, check it with `orca check FILE`, and drop it into tasks/ again."
                ),
            ]
        }
    }
}

/// `s` ending with a full stop (added unless it already ends in `.`, `!` or `?`).
fn sentence(s: &str) -> String {
    let s = s.trim_end();
    if s.ends_with(['.', '!', '?']) {
        s.to_owned()
    } else {
        format!("{s}.")
    }
}

/// The first meaningful lines of the agent's output, at most `max_chars` characters:
/// skips blank lines, code blocks, rules and table separators, strips heading and emphasis
/// markers; cuts a too-long line at a sentence end (else a word end) and marks the cut `…`.
pub fn extractive_summary(output: &str, max_chars: usize) -> String {
    if max_chars == 0 {
        return String::new();
    }
    let mut lines: Vec<String> = Vec::new();
    let mut in_code = false;
    for raw in output.lines() {
        let line = raw.trim();
        if line.starts_with("```") || line.starts_with("~~~") {
            in_code = !in_code;
            continue;
        }
        if in_code || line.is_empty() || is_decoration(line) {
            continue;
        }
        let line = line.trim_start_matches('#').trim();
        let line = line.replace("**", "").replace("__", "");
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        lines.push(line.to_owned());
    }
    let mut out = String::new();
    let mut used = 0usize;
    for line in lines {
        let sep = usize::from(!out.is_empty());
        let n = line.chars().count();
        if used + sep + n <= max_chars {
            if sep == 1 {
                out.push('\n');
            }
            out.push_str(&line);
            used += sep + n;
            continue;
        }
        // The next line does not fit whole: keep a cut of it only if nothing is kept yet
        // or there is a useful amount of room.
        let room = max_chars.saturating_sub(used + sep);
        if out.is_empty() || room >= 40 {
            let cut = cut_text(&line, room);
            if !cut.is_empty() {
                if sep == 1 {
                    out.push('\n');
                }
                out.push_str(&cut);
            }
        }
        break;
    }
    out
}

/// At most `max` chars of `s`: up to the last sentence end that fits, else the last word
/// end plus `…`, else a hard cut plus `…`.
fn cut_text(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    // Byte index of the max-th char; leave room for the ellipsis.
    let limit = s.char_indices().nth(max - 1).map_or(s.len(), |(i, _)| i);
    let head = &s[..limit];
    if let Some(end) = head
        .char_indices()
        .filter(|&(i, c)| {
            matches!(c, '.' | '!' | '?') && s[i + c.len_utf8()..].starts_with(char::is_whitespace)
        })
        .map(|(i, c)| i + c.len_utf8())
        .next_back()
    {
        if end >= head.len() / 3 {
            return s[..end].to_owned();
        }
    }
    match head.rfind(char::is_whitespace) {
        Some(i) if i > 0 => format!("{}…", head[..i].trim_end()),
        _ => format!("{head}…"),
    }
}

/// Markdown horizontal rules and table separator rows carry no content.
fn is_decoration(line: &str) -> bool {
    line.chars()
        .all(|c| matches!(c, '-' | '=' | '*' | '_' | '|' | ':' | ' '))
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
            TaskSource {
                kind: SourceKind::File,
                user: None,
            },
        );
        r.orca_version = "0.1.0".into();
        r.archived_to = Some("tasks/rejected/bad.task.md".into());
        insta::assert_snapshot!(render_summary(&r));
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

    #[test]
    fn extract_skips_noise() {
        let out = "## Summary\n\n```rust\nfn x() {}\n```\n---\nI fixed the **pool** size.\n| a | b |\n|---|---|\nTests pass.";
        assert_eq!(
            extractive_summary(out, 500),
            "Summary\nI fixed the pool size.\n| a | b |\nTests pass."
        );
    }

    #[test]
    fn extract_respects_max_chars() {
        let out = "First sentence here. Second sentence is rather longer than the first one.";
        let s = extractive_summary(out, 40);
        assert_eq!(s, "First sentence here.");
        let s = extractive_summary("word ".repeat(50).trim(), 23);
        assert!(s.chars().count() <= 23, "{s}");
        assert!(s.ends_with('…'));
        assert_eq!(extractive_summary("", 100), "");
        assert_eq!(extractive_summary("abc", 0), "");
        // Multi-byte text never splits a character and stays within the limit.
        let s = extractive_summary(&"é".repeat(100), 10);
        assert_eq!(s.chars().count(), 10);
        // A second line is dropped when it does not fit and little room is left.
        assert_eq!(
            extractive_summary("short\nanother line that is long", 12),
            "short"
        );
    }
}

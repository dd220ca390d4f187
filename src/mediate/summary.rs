//! The summary of a finished task (`summary` in the result): the extractive one (the first
//! meaningful lines of the agent's output), which an LLM summary falls back to.

use crate::artifacts::result::{
    CriterionMethod, CriterionVerdict, ResultError, ResultStatus, Summary, SummaryMethod, Verdict,
};

/// Longest `summary.text` taken from the agent's output, in characters.
pub const MAX_SUMMARY_CHARS: usize = 600;

/// The rule-based summary of a task: the extract of the agent's output when it said
/// something, else the status and the error message, else the status alone.
pub fn summarize(
    output: Option<&str>,
    error: Option<&ResultError>,
    status: ResultStatus,
) -> Summary {
    let text = match (output, error) {
        (Some(o), _) if !o.trim().is_empty() => extractive_summary(o, MAX_SUMMARY_CHARS),
        (_, Some(e)) => format!("{}: {}", status.as_str(), e.message),
        _ => status.as_str().to_owned(),
    };
    Summary {
        method: SummaryMethod::Extract,
        text,
    }
}

/// Puts the executed checks that were not met at the top of the summary text, one line
/// naming them (`Unmet checks: \`cargo test\` (exit code 101)`): the first thing a reader
/// sees, whatever the agent said.
pub fn note_unmet_checks(summary: &mut Summary, criteria: &[CriterionVerdict]) {
    let unmet: Vec<String> = criteria
        .iter()
        .filter(|c| c.method == Some(CriterionMethod::Check) && c.verdict != Verdict::Met)
        .filter_map(|c| {
            let cmd = &c.check.as_ref()?.command;
            Some(match &c.reason {
                Some(r) => format!("`{cmd}` ({r})"),
                None => format!("`{cmd}`"),
            })
        })
        .collect();
    if unmet.is_empty() {
        return;
    }
    summary.text = format!("Unmet checks: {}\n{}", unmet.join(", "), summary.text);
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

    #[test]
    fn summarize_prefers_output_then_error_then_status() {
        let err = ResultError {
            kind: "agent_error".into(),
            message: "exit 1".into(),
            line: None,
            hint: None,
        };
        let s = summarize(Some("# Done\nFixed it."), Some(&err), ResultStatus::Failed);
        assert_eq!(
            (s.method, s.text.as_str()),
            (SummaryMethod::Extract, "Done\nFixed it.")
        );
        let s = summarize(Some("  \n"), Some(&err), ResultStatus::Failed);
        assert_eq!(s.text, "failed: exit 1");
        assert_eq!(
            summarize(None, None, ResultStatus::Cancelled).text,
            "cancelled"
        );
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

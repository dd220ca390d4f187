//! The claims check (pure): what the agent did, from the stream's tool events (commands with
//! their exit status where the stream says, files written or edited, in order), against what
//! its final message says it did ("all tests pass", "I fixed X", "I ran X").

use std::collections::HashMap;

use crate::artifacts::result::{Claim, ClaimStatus};
use crate::runner::stream::{parse_line, StreamEvent};

/// Longest claim text kept, in characters.
const MAX_CLAIM_CHARS: usize = 200;

/// One thing the agent did, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A shell command (`Bash`); `ok` from its tool result (None: no result seen).
    Command { command: String, ok: Option<bool> },
    /// A file written or edited (`Write`, `Edit`, `MultiEdit`, `NotebookEdit`).
    Write { path: String },
}

/// The agent's tool events of one attempt (all its runs, fix rounds included).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolEvents {
    pub steps: Vec<Step>,
}

/// Reads the tool events from the raw stream's lines.
pub fn tool_events<'a>(lines: impl IntoIterator<Item = &'a [u8]>) -> ToolEvents {
    let mut steps = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for line in lines {
        match parse_line(line) {
            StreamEvent::Assistant { tool_uses, .. } => {
                for t in tool_uses {
                    let Some(target) = t.target else { continue };
                    let step = match t.name.as_str() {
                        "Bash" => Step::Command {
                            command: target,
                            ok: None,
                        },
                        "Write" | "Edit" | "MultiEdit" | "NotebookEdit" => {
                            Step::Write { path: target }
                        }
                        _ => continue,
                    };
                    if let Some(id) = t.id {
                        by_id.insert(id, steps.len());
                    }
                    steps.push(step);
                }
            }
            StreamEvent::User(results) => {
                for r in results {
                    let Some(i) = r.tool_use_id.as_ref().and_then(|id| by_id.get(id)) else {
                        continue;
                    };
                    if let Some(Step::Command { ok, .. }) = steps.get_mut(*i) {
                        *ok = Some(!r.is_error);
                    }
                }
            }
            _ => {}
        }
    }
    ToolEvents { steps }
}

/// The unbacked claims first in the summary text (`Unbacked claims: "..." (why)`).
pub fn note_unbacked(text: &mut String, claims: &[Claim]) {
    let unbacked: Vec<String> = claims
        .iter()
        .filter(|c| c.status == ClaimStatus::Unbacked)
        .map(|c| match &c.evidence {
            Some(e) => format!("\"{}\" ({e})", c.text),
            None => format!("\"{}\"", c.text),
        })
        .collect();
    if !unbacked.is_empty() {
        *text = format!("Unbacked claims: {}\n{text}", unbacked.join(", "));
    }
}

/// Whether a command runs tests.
pub fn is_test_command(cmd: &str) -> bool {
    let c = cmd.to_ascii_lowercase();
    [
        "test",
        "pytest",
        "jest",
        "vitest",
        "mocha",
        "rspec",
        "nextest",
        "phpunit",
        "tox",
        "ctest",
        "make check",
        "unittest",
        "spec",
    ]
    .iter()
    .any(|w| c.contains(w))
}

/// The claims of `message` checked against `events` and the files changed (relative to the
/// working folder). `events` None: the stream could not be read, every claim is `unknown`.
pub fn check_claims(
    message: &str,
    events: Option<&ToolEvents>,
    changed_files: &[String],
) -> Vec<Claim> {
    let mut out = Vec::new();
    for sentence in sentences(message) {
        let lower = sentence.to_lowercase();
        let text = cut(sentence);
        if let Some(kind) = claim_in(&lower, sentence) {
            let (status, evidence) = match events {
                None => (
                    ClaimStatus::Unknown,
                    "the agent's tool events could not be read".to_owned(),
                ),
                Some(ev) => judge(&kind, ev, changed_files),
            };
            for (status, evidence) in split_per_file(status, evidence) {
                out.push(Claim {
                    text: text.clone(),
                    status,
                    evidence: Some(evidence),
                });
            }
        }
    }
    out
}

/// What a sentence claims.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    TestsPass,
    Ran(String),
    Changed(Vec<String>),
}

const TEST_PHRASES: &[&str] = &[
    "tests pass",
    "tests passed",
    "tests are passing",
    "tests are green",
    "tests now pass",
    "tests all pass",
    "test suite passes",
    "test suite passed",
    "tests succeed",
    "tests still pass",
];
const CHANGE_VERBS: &[&str] = &[
    "fixed", "changed", "created", "updated", "modified", "edited", "wrote", "added", "rewrote",
];
const RUN_VERBS: &[&str] = &["ran", "run", "executed"];

fn claim_in(lower: &str, original: &str) -> Option<Kind> {
    let negated = [" not ", "n't", "unable", "fail", "cannot", "never"]
        .iter()
        .any(|n| lower.contains(n));
    if TEST_PHRASES.iter().any(|p| lower.contains(p)) {
        return (!negated).then_some(Kind::TestsPass);
    }
    let after = first_person(lower)?;
    let (verb, rest_lower) = after.split_once(' ').unwrap_or((after, ""));
    let rest = &original[original.len() - rest_lower.len()..];
    if RUN_VERBS.contains(&verb) {
        if negated {
            return None;
        }
        if let Some(cmd) = backticked(rest) {
            return Some(Kind::Ran(cmd.to_owned()));
        }
        if rest_lower.contains("test") {
            return Some(Kind::TestsPass);
        }
        return None;
    }
    if CHANGE_VERBS.contains(&verb) {
        let files: Vec<String> = rest.split_whitespace().filter_map(path_like).collect();
        if !files.is_empty() {
            return Some(Kind::Changed(files));
        }
    }
    None
}

/// The words after "I", "I've" or "I have" at the start of the sentence or after a comma.
fn first_person(lower: &str) -> Option<&str> {
    for lead in ["i have ", "i've ", "i also ", "i "] {
        if let Some(rest) = lower.strip_prefix(lead) {
            return Some(rest);
        }
        if let Some(i) = lower.find(&format!(", {lead}")) {
            return Some(&lower[i + 2 + lead.len()..]);
        }
        if let Some(i) = lower.find(&format!(" and {lead}")) {
            return Some(&lower[i + 5 + lead.len()..]);
        }
    }
    None
}

fn judge(kind: &Kind, ev: &ToolEvents, changed: &[String]) -> (ClaimStatus, String) {
    match kind {
        Kind::TestsPass => {
            let last_write = ev
                .steps
                .iter()
                .rposition(|s| matches!(s, Step::Write { .. }));
            let after = ev
                .steps
                .iter()
                .enumerate()
                .rev()
                .find_map(|(i, s)| match s {
                    Step::Command { command, ok }
                        if is_test_command(command) && last_write.is_none_or(|w| i > w) =>
                    {
                        Some((command, *ok))
                    }
                    _ => None,
                });
            match after {
                Some((cmd, Some(false))) => (
                    ClaimStatus::Unbacked,
                    format!("`{cmd}` ran after the last edit and failed"),
                ),
                Some((cmd, _)) => (
                    ClaimStatus::Backed,
                    format!("`{cmd}` ran after the last edit and passed"),
                ),
                None => {
                    let before = ev.steps.iter().any(
                        |s| matches!(s, Step::Command { command, .. } if is_test_command(command)),
                    );
                    let why = if before {
                        "the tests ran only before the last edit"
                    } else {
                        "no test command ran"
                    };
                    (ClaimStatus::Unbacked, why.to_owned())
                }
            }
        }
        Kind::Ran(cmd) => {
            let found = ev.steps.iter().find_map(|s| match s {
                Step::Command { command, .. }
                    if command.contains(cmd.as_str()) || cmd.contains(command.as_str()) =>
                {
                    Some(command)
                }
                _ => None,
            });
            match found {
                Some(c) => (ClaimStatus::Backed, format!("the agent ran `{c}`")),
                None => (
                    ClaimStatus::Unbacked,
                    format!("no command like `{cmd}` in the tool events"),
                ),
            }
        }
        Kind::Changed(files) => {
            // One verdict per file, joined with '\n' and split again by the caller.
            let lines: Vec<String> = files
                .iter()
                .map(|f| {
                    let wrote = ev.steps.iter().any(
                        |s| matches!(s, Step::Write { path } if same_file(path, f)),
                    );
                    let diff = changed.iter().any(|c| same_file(c, f));
                    match (wrote, diff) {
                        (true, _) => format!("backed\t{f}: written by the agent"),
                        (false, true) => format!("backed\t{f}: changed in the working folder"),
                        (false, false) => format!(
                            "unbacked\t{f}: no write to it in the tool events and no change of it in the working folder"
                        ),
                    }
                })
                .collect();
            (ClaimStatus::Unknown, lines.join("\n"))
        }
    }
}

/// A file claim's per-file verdicts (see [`judge`]) as one entry each; others as they are.
fn split_per_file(status: ClaimStatus, evidence: String) -> Vec<(ClaimStatus, String)> {
    if status != ClaimStatus::Unknown || !evidence.contains('\t') {
        return vec![(status, evidence)];
    }
    evidence
        .lines()
        .filter_map(|l| {
            let (s, e) = l.split_once('\t')?;
            let st = if s == "backed" {
                ClaimStatus::Backed
            } else {
                ClaimStatus::Unbacked
            };
            Some((st, e.to_owned()))
        })
        .collect()
}

/// Whether path `a` (absolute or relative) and the claimed `b` name the same file: equal,
/// or one ends with the other at a `/`.
pub fn same_file(a: &str, b: &str) -> bool {
    let a = a.trim_start_matches("./");
    let b = b.trim_start_matches("./");
    a == b || a.ends_with(&format!("/{b}")) || b.ends_with(&format!("/{a}"))
}

/// A word that names a file: has a `/` or an extension (`x.rs`), not a URL or version.
fn path_like(word: &str) -> Option<String> {
    let w = word
        .trim_matches(|c: char| "`'\"()[]{}<>,;:!?*".contains(c))
        .trim_end_matches('.');
    if w.is_empty() || w.contains("://") || w.starts_with('-') {
        return None;
    }
    let (name, ext) = w.rsplit_once('.').unwrap_or((w, ""));
    let file_name = name.rsplit('/').next().unwrap_or(name);
    let has_ext = !ext.is_empty()
        && ext.len() <= 8
        && ext.chars().all(|c| c.is_ascii_alphanumeric())
        && ext.chars().any(|c| c.is_ascii_alphabetic())
        && !file_name.is_empty()
        // `e.g`, `i.e`: not files.
        && !(file_name.len() == 1 && ext.len() == 1);
    let has_dir = w.contains('/') && w.chars().any(|c| c.is_ascii_alphanumeric());
    (has_ext || has_dir).then(|| w.to_owned())
}

/// The first backticked span of `s`.
fn backticked(s: &str) -> Option<&str> {
    let start = s.find('`')? + 1;
    let len = s[start..].find('`')?;
    let span = s[start..start + len].trim();
    (!span.is_empty()).then_some(span)
}

/// The message cut into sentences: at line ends and at `.`, `!`, `?` followed by a space.
fn sentences(message: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for line in message.lines() {
        let line = line.trim().trim_start_matches(['-', '*', '#', '>']).trim();
        let mut start = 0;
        let b = line.as_bytes();
        for i in 0..b.len() {
            let end = matches!(b[i], b'.' | b'!' | b'?')
                && b.get(i + 1).is_none_or(|n| n.is_ascii_whitespace());
            if end {
                push_sentence(&mut out, &line[start..=i]);
                start = i + 1;
            }
        }
        push_sentence(&mut out, &line[start..]);
    }
    out
}

fn push_sentence<'a>(out: &mut Vec<&'a str>, s: &'a str) {
    let s = s.trim().trim_start_matches("**").trim();
    if !s.is_empty() {
        out.push(s);
    }
}

fn cut(s: &str) -> String {
    match s.char_indices().nth(MAX_CLAIM_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(c: &str, ok: bool) -> Step {
        Step::Command {
            command: c.into(),
            ok: Some(ok),
        }
    }
    fn write(p: &str) -> Step {
        Step::Write { path: p.into() }
    }
    fn statuses(msg: &str, steps: Vec<Step>, changed: &[&str]) -> Vec<(ClaimStatus, String)> {
        let ev = ToolEvents { steps };
        let changed: Vec<String> = changed.iter().map(|s| s.to_string()).collect();
        check_claims(msg, Some(&ev), &changed)
            .into_iter()
            .map(|c| (c.status, c.evidence.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn test_claims_need_a_test_run_after_the_last_edit() {
        use ClaimStatus::*;
        let table: Vec<(&str, Vec<Step>, ClaimStatus, &str)> = vec![
            (
                "All tests pass.",
                vec![write("/w/a.rs"), cmd("cargo test", true)],
                Backed,
                "`cargo test` ran after the last edit and passed",
            ),
            (
                "All tests pass.",
                vec![cmd("cargo test", true), write("/w/a.rs")],
                Unbacked,
                "the tests ran only before the last edit",
            ),
            (
                "The tests are green!",
                vec![write("/w/a.rs")],
                Unbacked,
                "no test command ran",
            ),
            (
                "All tests pass.",
                vec![write("/w/a.rs"), cmd("pytest -q", false)],
                Unbacked,
                "`pytest -q` ran after the last edit and failed",
            ),
            (
                "I ran the tests and fixed it.",
                vec![cmd("npm test", true)],
                Backed,
                "`npm test` ran after the last edit and passed",
            ),
        ];
        for (msg, steps, want, evidence) in table {
            let got = statuses(msg, steps, &[]);
            assert_eq!(got, vec![(want, evidence.to_owned())], "{msg}");
        }
    }

    #[test]
    fn file_and_command_claims() {
        use ClaimStatus::*;
        let got = statuses(
            "I fixed `src/db.py` and updated tests/test_db.py. I also created notes.md.",
            vec![write("/w/src/db.py")],
            &["notes.md"],
        );
        assert_eq!(
            got,
            vec![
                (Backed, "src/db.py: written by the agent".into()),
                (
                    Unbacked,
                    "tests/test_db.py: no write to it in the tool events and no change of it in the working folder".into()
                ),
                (Backed, "notes.md: changed in the working folder".into()),
            ]
        );
        let got = statuses(
            "I ran `cargo clippy` and `make`. I ran `cargo fmt`.",
            vec![cmd("cargo clippy --all-targets", true)],
            &[],
        );
        assert_eq!(
            got,
            vec![
                (Backed, "the agent ran `cargo clippy --all-targets`".into()),
                (
                    Unbacked,
                    "no command like `cargo fmt` in the tool events".into()
                ),
            ]
        );
    }

    #[test]
    fn no_claims_in_negations_plain_talk_or_vague_changes() {
        for msg in [
            "The tests do not pass yet.",
            "I couldn't make the tests pass.",
            "Here is what the code does.",
            "I changed the approach, e.g. the loop.",
            "I ran into a problem.",
            "Version 1.2 is out: https://example.com/x.html",
        ] {
            assert_eq!(statuses(msg, vec![], &[]), vec![], "{msg}");
        }
    }

    #[test]
    fn without_the_stream_every_claim_is_unknown() {
        let c = check_claims("All tests pass.", None, &[]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].status, ClaimStatus::Unknown);
        assert_eq!(c[0].text, "All tests pass.");
    }

    #[test]
    fn tool_events_come_from_the_stream_with_exit_status() {
        let lines: [&[u8]; 4] = [
            br#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"cargo test"}}]}}"#,
            br#"{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t1","is_error":true,"content":"Exit code 101"}]}}"#,
            br#"{"type":"assistant","message":{"content":[{"type":"tool_use","id":"t2","name":"Edit","input":{"file_path":"/w/a.rs"}},{"type":"tool_use","id":"t3","name":"Read","input":{"file_path":"/w/b.rs"}}]}}"#,
            b"not json",
        ];
        let ev = tool_events(lines);
        assert_eq!(
            ev.steps,
            vec![
                Step::Command {
                    command: "cargo test".into(),
                    ok: Some(false)
                },
                write("/w/a.rs"),
            ]
        );
    }

    #[test]
    fn unbacked_claims_go_first_in_the_summary() {
        let c = |t: &str, s| Claim {
            text: t.into(),
            status: s,
            evidence: Some("why".into()),
        };
        let mut text = "Unmet checks: `x`\nDone.".to_owned();
        note_unbacked(&mut text, &[c("a", ClaimStatus::Backed)]);
        assert_eq!(text, "Unmet checks: `x`\nDone.");
        note_unbacked(
            &mut text,
            &[
                c("All tests pass.", ClaimStatus::Unbacked),
                c("b", ClaimStatus::Unknown),
            ],
        );
        assert_eq!(
            text,
            "Unbacked claims: \"All tests pass.\" (why)\nUnmet checks: `x`\nDone."
        );
    }

    #[test]
    fn a_change_claim_about_a_failing_test_is_still_a_change_claim() {
        let got = statuses(
            "I fixed the failing test in src/a.rs.",
            vec![write("/w/src/a.rs")],
            &[],
        );
        assert_eq!(
            got,
            vec![(ClaimStatus::Backed, "src/a.rs: written by the agent".into())]
        );
    }

    #[test]
    fn paths_and_sentences() {
        for (w, want) in [
            ("`src/db.py`,", Some("src/db.py")),
            ("README.md.", Some("README.md")),
            ("src/", Some("src/")),
            ("e.g.", None),
            ("1.2", None),
            ("https://x.io/a.html", None),
            ("word", None),
        ] {
            assert_eq!(path_like(w).as_deref(), want, "{w}");
        }
        assert_eq!(
            sentences("- Fixed a.rs. Then b.rs!\nDone"),
            ["Fixed a.rs.", "Then b.rs!", "Done"]
        );
        assert!(same_file("/w/src/a.rs", "src/a.rs"));
        assert!(!same_file("/w/src/xa.rs", "a.rs"));
    }
}

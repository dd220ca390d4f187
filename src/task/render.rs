//! Canonical `.task.md` text of a [`Task`]: front matter with every set field (the id
//! always), then title and sections; `parse_bytes(render(t)) == t` for every parsed task.

use std::fmt::Write as _;

use super::body::Fences;
use super::Task;

/// Renders a task back to `.task.md` text; `parse_bytes(render(t)) == t`.
///
/// Strings in the front matter are double-quoted YAML with escapes, so no value can break
/// out of its line. A section whose text leaves a code fence open can only have been the
/// last one in the file it was parsed from, so it is written last again.
pub fn render(task: &Task) -> String {
    let mut out = String::with_capacity(256 + task.prompt.len());
    out.push_str("---\n");
    field_str(&mut out, "id", &task.id);
    if let Some(t) = task.task_type {
        let _ = writeln!(out, "type: {t}");
    }
    let _ = writeln!(out, "priority: {}", task.priority);
    if let Some(c) = &task.created {
        field_str(&mut out, "created", c);
    }
    if let Some(w) = &task.working_dir {
        field_str(&mut out, "working_dir", w);
    }
    if let Some(n) = task.timeout_sec {
        let _ = writeln!(out, "timeout_sec: {n}");
    }
    if let Some(n) = task.max_turns {
        let _ = writeln!(out, "max_turns: {n}");
    }
    if let Some(n) = task.retries {
        let _ = writeln!(out, "retries: {n}");
    }
    if let Some(m) = &task.model {
        field_str(&mut out, "model", m);
    }
    if task.resume_on_retry {
        out.push_str("resume_on_retry: true\n");
    }
    if !task.requires.is_empty() {
        out.push_str("requires: [");
        for (i, r) in task.requires.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            yaml_quote(&mut out, r);
        }
        out.push_str("]\n");
    }
    for (k, v) in &task.extra {
        yaml_quote(&mut out, k);
        out.push_str(": ");
        json_flow(&mut out, v);
        out.push('\n');
    }
    out.push_str("---\n");

    if let Some(t) = &task.title {
        let _ = write!(out, "\n# {t}\n");
    }

    // Sections in canonical order, except that one leaving a fence open goes last.
    let mut sections: Vec<(u8, String)> = Vec::with_capacity(4);
    if !task.target_files.is_empty() {
        let mut s = String::from("**Target Files:**\n");
        for f in &task.target_files {
            let _ = writeln!(s, "- `{f}`");
        }
        sections.push((0, s));
    }
    sections.push((0, format!("**Prompt:**\n{}\n", task.prompt)));
    if !task.success_criteria.is_empty() {
        let mut s = String::from("**Success Criteria:**\n");
        for c in &task.success_criteria {
            let _ = writeln!(s, "- [{}] {}", if c.checked { 'x' } else { ' ' }, c.text);
        }
        sections.push((0, s));
    }
    if let Some(c) = &task.context {
        sections.push((0, format!("**Context:**\n{c}\n")));
    }
    for (open, text) in &mut sections {
        let mut f = Fences::default();
        for line in text.split('\n') {
            f.is_code(line);
        }
        *open = u8::from(f.is_open());
    }
    sections.sort_by_key(|(open, _)| *open); // stable: canonical order otherwise
    for (_, s) in sections {
        out.push('\n');
        out.push_str(&s);
    }
    out
}

fn field_str(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    out.push_str(": ");
    if is_plain_safe(value) {
        out.push_str(value);
    } else {
        yaml_quote(out, value);
    }
    out.push('\n');
}

/// Whether a string reads back as the same string when written unquoted: a letter, then
/// letters, digits and `_ . - /`, and no word YAML gives another meaning.
fn is_plain_safe(s: &str) -> bool {
    const SPECIAL: [&str; 11] = [
        "null", "true", "false", "yes", "no", "on", "off", "y", "n", "nan", "inf",
    ];
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'))
        && !SPECIAL.iter().any(|w| s.eq_ignore_ascii_case(w))
}

/// A YAML double-quoted scalar: `"` and `\` escaped, and every control or otherwise
/// non-printable character written as an escape.
pub(crate) fn yaml_quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control()
                || matches!(
                    c,
                    '\u{FEFF}' | '\u{2028}' | '\u{2029}' | '\u{FFFE}' | '\u{FFFF}'
                ) =>
            {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON value as YAML flow style (strings double-quoted as above).
fn json_flow(out: &mut String, v: &serde_json::Value) {
    const FLOW: crate::value_text::Style = crate::value_text::Style {
        item_sep: ", ",
        key_sep: ": ",
        quote: yaml_quote,
    };
    crate::value_text::write_value(out, v, &FLOW);
}

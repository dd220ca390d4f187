//! Canonical `.task.md` text of a [`Task`]: front matter with every set field (the id
//! always), then title and sections; `parse_bytes(render(t)) == t` for every parsed task.

use std::fmt::Write as _;

use super::body::Fences;
use super::{fields, Task};

/// Renders a task back to `.task.md` text; `parse_bytes(render(t)) == t`.
///
/// Strings in the front matter are double-quoted YAML with escapes, so no value can break
/// out of its line. A section whose text leaves a code fence open can only have been the
/// last one in the file it was parsed from, so it is written last again.
pub fn render(task: &Task) -> String {
    let mut out = String::with_capacity(256 + task.prompt.len());
    fields::write_front_matter(task, &mut out);

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

//! The markdown body of a task file: title, and the sections Target Files, Prompt,
//! Success Criteria and Context, found by bold label or heading outside code fences.

use super::Criterion;

/// A body section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    /// Text before the first section: the prompt when there is no Prompt section.
    Outside,
    Targets,
    Prompt,
    Criteria,
    Context,
}

/// What the body says. `prompt` is None or empty when there is no prompt.
#[derive(Debug, Default)]
pub(crate) struct Body {
    pub title: Option<String>,
    pub prompt: Option<String>,
    /// File line of the `Prompt` label, for the empty-prompt error.
    pub prompt_line: Option<usize>,
    pub target_files: Vec<String>,
    pub success_criteria: Vec<Criterion>,
    pub context: Option<String>,
}

fn label_section(label: &str) -> Option<Section> {
    let label = label.trim();
    let label = label.strip_suffix(':').unwrap_or(label).trim_end();
    let is = |s: &str| label.eq_ignore_ascii_case(s);
    if is("target files") || is("target file") || is("targets") {
        Some(Section::Targets)
    } else if is("prompt") {
        Some(Section::Prompt)
    } else if is("success criteria") || is("acceptance criteria") || is("criteria") {
        Some(Section::Criteria)
    } else if is("context") {
        Some(Section::Context)
    } else {
        None
    }
}

/// An ATX heading: (level, text). `#foo` (no space) is not a heading.
pub(crate) fn heading(line: &str) -> Option<(usize, &str)> {
    let t = line.trim_start_matches(' ');
    if line.len() - t.len() > 3 {
        return None;
    }
    let level = t.bytes().take_while(|&b| b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &t[level..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None;
    }
    Some((level, rest.trim()))
}

/// A section label on this line: `## Prompt` (levels 2-6) or `**Prompt:**` / `**Prompt**:`
/// with optional text after it. Returns the section and the text after the label.
pub(crate) fn label(line: &str) -> Option<(Section, &str)> {
    if let Some((level, text)) = heading(line) {
        return if level >= 2 {
            label_section(text.trim_end_matches('#')).map(|s| (s, ""))
        } else {
            None
        };
    }
    let t = line.trim_start();
    let inner = t.strip_prefix("**")?;
    let close = inner.find("**")?;
    let name = &inner[..close];
    let after = &inner[close + 2..];
    let rest = if name.trim_end().ends_with(':') {
        after
    } else {
        after.strip_prefix(':')?
    };
    label_section(name).map(|s| (s, rest.trim()))
}

/// A code-fence line: its marker char and length.
fn fence(line: &str) -> Option<(u8, usize)> {
    let t = line.trim_start_matches(' ');
    if line.len() - t.len() > 3 {
        return None;
    }
    let c = *t.as_bytes().first()?;
    if c != b'`' && c != b'~' {
        return None;
    }
    let n = t.bytes().take_while(|&b| b == c).count();
    (n >= 3).then_some((c, n))
}

/// Tracks whether we are inside a fenced code block.
#[derive(Default)]
pub(crate) struct Fences {
    open: Option<(u8, usize)>,
}

impl Fences {
    /// Feeds one line; true when the line is code (inside a fence, or a fence line itself).
    pub fn is_code(&mut self, line: &str) -> bool {
        match (self.open, fence(line)) {
            (None, Some(f)) => {
                self.open = Some(f);
                true
            }
            (Some((c, n)), Some((c2, n2))) => {
                // A closing fence: same char, at least as long, nothing after it.
                if c == c2 && n2 >= n && line.trim().bytes().all(|b| b == c) {
                    self.open = None;
                }
                true
            }
            (Some(_), None) => true,
            (None, None) => false,
        }
    }

    /// Whether a fence is still open.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }
}

/// A list item's text: `- x`, `* x`, `+ x`, `1. x`, `1) x`.
pub(crate) fn list_item(line: &str) -> Option<&str> {
    let t = line.trim_start();
    let rest = if let Some(r) = t.strip_prefix(['-', '*', '+']) {
        r
    } else {
        let digits = t.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        t[digits..].strip_prefix(['.', ')'])?
    };
    if rest.is_empty() {
        return Some("");
    }
    rest.starts_with([' ', '\t']).then(|| rest.trim())
}

/// A target-file item: one pair of surrounding backticks is removed.
pub(crate) fn target_text(item: &str) -> &str {
    if item.len() >= 2 && item.starts_with('`') && item.ends_with('`') {
        &item[1..item.len() - 1]
    } else {
        item
    }
}

fn criterion(item: &str) -> Option<Criterion> {
    let (checked, text) = if let Some(r) = item.strip_prefix("[ ]") {
        (false, r)
    } else if let Some(r) = item
        .strip_prefix("[x]")
        .or_else(|| item.strip_prefix("[X]"))
    {
        (true, r)
    } else {
        (false, item)
    };
    // `[x]foo` is not a checkbox.
    if text.len() != item.len() && !text.is_empty() && !text.starts_with([' ', '\t']) {
        return Some(Criterion {
            text: item.to_string(),
            checked: false,
        });
    }
    let text = text.trim();
    (!text.is_empty()).then(|| Criterion {
        text: text.to_string(),
        checked,
    })
}

/// Removes blank lines at the start and whitespace at the end; keeps the first line's
/// indentation.
pub(crate) fn trim_block(s: &str) -> &str {
    let mut start = 0;
    for line in s.split_inclusive('\n') {
        if line.trim().is_empty() {
            start += line.len();
        } else {
            break;
        }
    }
    s[start..].trim_end()
}

fn push_line(buf: &mut String, line: &str) {
    buf.push_str(line);
    buf.push('\n');
}

/// Parses the body; `first_line` is the file line of its first line.
pub(crate) fn parse(body: &str, first_line: usize) -> Body {
    let mut out = Body::default();
    let mut section = Section::Outside;
    let mut fences = Fences::default();
    let (mut outside, mut prompt, mut context) = (String::new(), String::new(), String::new());
    let mut has_prompt = false;
    for (i, line) in body.split('\n').enumerate() {
        let line_no = first_line + i;
        let code = fences.is_code(line);
        let mut content = Some(line);
        if !code {
            if let Some((s, rest)) = label(line) {
                section = s;
                if s == Section::Prompt {
                    if !has_prompt {
                        out.prompt_line = Some(line_no);
                    } else if !prompt.is_empty() {
                        prompt.push('\n');
                    }
                    has_prompt = true;
                } else if s == Section::Context && !context.is_empty() {
                    context.push('\n');
                }
                content = (!rest.is_empty()).then_some(rest);
                // Text after a label on the same line is a list item in list sections.
                if let (Some(rest), Section::Targets) = (content, s) {
                    out.target_files.push(target_text(rest).to_string());
                    content = None;
                } else if let (Some(rest), Section::Criteria) = (content, s) {
                    out.success_criteria.extend(criterion(rest));
                    content = None;
                }
            } else if section == Section::Outside && out.title.is_none() {
                if let Some((1, text)) = heading(line) {
                    let text = text.trim();
                    if !text.is_empty() {
                        out.title = Some(text.to_string());
                    }
                    content = None;
                }
            }
        }
        let Some(line) = content else { continue };
        match section {
            Section::Outside => push_line(&mut outside, line),
            Section::Prompt => push_line(&mut prompt, line),
            Section::Context => push_line(&mut context, line),
            Section::Targets => {
                if let Some(item) = list_item(line).filter(|_| !code) {
                    let t = target_text(item);
                    if !t.is_empty() {
                        out.target_files.push(t.to_string());
                    }
                }
            }
            Section::Criteria => {
                if let Some(item) = list_item(line).filter(|_| !code) {
                    out.success_criteria.extend(criterion(item));
                }
            }
        }
    }
    let prompt_text = if has_prompt { &prompt } else { &outside };
    out.prompt = Some(trim_block(prompt_text).to_string());
    let ctx = trim_block(&context);
    out.context = (!ctx.is_empty()).then(|| ctx.to_string());
    out
}

/// File line of the target item that reads `target`, if any (for path errors).
pub(crate) fn find_target_line(body: &str, first_line: usize, target: &str) -> Option<usize> {
    let mut section = Section::Outside;
    let mut fences = Fences::default();
    for (i, line) in body.split('\n').enumerate() {
        if fences.is_code(line) {
            continue;
        }
        if let Some((s, rest)) = label(line) {
            section = s;
            if s == Section::Targets && target_text(rest) == target && !rest.is_empty() {
                return Some(first_line + i);
            }
            continue;
        }
        if section == Section::Targets && list_item(line).map(target_text) == Some(target) {
            return Some(first_line + i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(label("**Prompt:**"), Some((Section::Prompt, "")));
        assert_eq!(label("**prompt:** do it"), Some((Section::Prompt, "do it")));
        assert_eq!(label("**Prompt**: x"), Some((Section::Prompt, "x")));
        assert_eq!(label("## Success Criteria"), Some((Section::Criteria, "")));
        assert_eq!(label("###### context:"), Some((Section::Context, "")));
        assert_eq!(label("## Target Files ##"), Some((Section::Targets, "")));
        assert_eq!(label("# Prompt"), None);
        assert_eq!(label("**Prompt**"), None);
        assert_eq!(label("**Bold:** text"), None);
        assert_eq!(label("##Prompt"), None);
    }

    #[test]
    fn list_items() {
        assert_eq!(list_item("- a"), Some("a"));
        assert_eq!(list_item("  * `b` "), Some("`b`"));
        assert_eq!(list_item("12. c"), Some("c"));
        assert_eq!(list_item("-a"), None);
        assert_eq!(list_item("text"), None);
        assert_eq!(target_text("`src/a.rs`"), "src/a.rs");
    }

    #[test]
    fn criteria_boxes() {
        let c = |s: &str| criterion(s).map(|c| (c.text, c.checked));
        assert_eq!(c("[ ] a"), Some(("a".into(), false)));
        assert_eq!(c("[x] b"), Some(("b".into(), true)));
        assert_eq!(c("[X] b"), Some(("b".into(), true)));
        assert_eq!(c("plain"), Some(("plain".into(), false)));
        assert_eq!(c("[x]"), None);
        assert_eq!(c("[x]y"), Some(("[x]y".into(), false)));
    }

    #[test]
    fn sections_and_title() {
        let b = parse(
            "# Title\n\n**Target Files:**\n- `a.rs`\n- b.rs\nnot an item\n\n**Prompt:** Fix it.\nMore.\n\n## Success Criteria\n- [ ] one\n- [x] two\n- three\n\n**Context:**\nSome context.\n",
            5,
        );
        assert_eq!(b.title.as_deref(), Some("Title"));
        assert_eq!(b.target_files, vec!["a.rs", "b.rs"]);
        assert_eq!(b.prompt.as_deref(), Some("Fix it.\nMore."));
        assert_eq!(b.prompt_line, Some(12));
        assert_eq!(b.success_criteria.len(), 3);
        assert!(b.success_criteria[1].checked);
        assert_eq!(b.context.as_deref(), Some("Some context."));
    }

    #[test]
    fn outside_text_is_prompt_without_prompt_section() {
        let b = parse("# T\n\nJust do it.\n\n## Context\nctx\n", 1);
        assert_eq!(b.title.as_deref(), Some("T"));
        assert_eq!(b.prompt.as_deref(), Some("Just do it."));
        assert_eq!(b.context.as_deref(), Some("ctx"));
    }

    #[test]
    fn fences_hide_labels_and_titles() {
        let b = parse("```\n# not a title\n**Context:** no\n```\nDo it.\n", 1);
        assert_eq!(b.title, None);
        assert_eq!(
            b.prompt.as_deref(),
            Some("```\n# not a title\n**Context:** no\n```\nDo it.")
        );
        assert_eq!(b.context, None);
    }

    #[test]
    fn trim_block_keeps_indent() {
        assert_eq!(trim_block("\n  \n    code\nx  \n\n"), "    code\nx");
        assert_eq!(trim_block(" \n "), "");
    }

    #[test]
    fn target_line_lookup() {
        let body = "**Target Files:**\n- a\n- `b`\n";
        assert_eq!(find_target_line(body, 10, "b"), Some(12));
        assert_eq!(find_target_line(body, 10, "c"), None);
    }
}

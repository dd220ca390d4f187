//! What intake makes of a name in `tasks/`: a task file, a look-alike that deserves a warning
//! (`fix.md`, `fix.task.MD`, `fix.task.md.txt`), a task file whose name is not UTF-8 (taken
//! under an escaped name), or nothing.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use crate::workspace::Workspace;

/// What a name in `tasks/` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Name<'a> {
    /// A task file: taken.
    Task(&'a str),
    /// Named like a task file but not UTF-8: taken once renamed to this escaped name
    /// (each byte that is not UTF-8 written as `%NN`).
    Escape(String),
    /// Looks like a task but does not follow the rule: warned about, with this name to use.
    LookAlike(String),
    /// Hidden, temporary or anything else: not looked at.
    Other,
}

/// Sorts a name found in `tasks/`.
pub(crate) fn classify(name: &OsStr) -> Name<'_> {
    match name.to_str() {
        Some(n) if Workspace::is_task_file_name(n) => Name::Task(n),
        Some(n) if Workspace::is_ignored_name(n) => Name::Other,
        Some(n) => look_alike(n).map_or(Name::Other, Name::LookAlike),
        None => {
            let escaped = escape(name.as_bytes());
            if Workspace::is_task_file_name(&escaped) {
                Name::Escape(escaped)
            } else if Workspace::is_ignored_name(&escaped) {
                Name::Other
            } else {
                look_alike(&escaped).map_or(Name::Other, Name::LookAlike)
            }
        }
    }
}

/// The `.task.md` name a look-alike should have: a name ending in `.task.md` in another
/// case, one with `.task.md` followed by more, or a markdown file (`.md`).
pub(crate) fn look_alike(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    // ASCII lower-casing keeps byte offsets, so `lower`'s indices cut `name` too.
    let base = if let Some(i) = lower.find(".task.md") {
        &name[..i]
    } else if lower.ends_with(".md") {
        &name[..name.len() - 3]
    } else if lower.ends_with(".markdown") {
        &name[..name.len() - 9]
    } else {
        return None;
    };
    (!base.is_empty()).then(|| format!("{base}.task.md"))
}

/// A name's bytes as UTF-8, each byte that is not part of a valid sequence written `%NN`.
pub(crate) fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn names_are_sorted_by_the_rule() {
        let os = |b: &[u8]| OsStr::from_bytes(b).to_os_string();
        let table: [(&[u8], Name); 13] = [
            (b"fix.task.md", Name::Task("fix.task.md")),
            (b"fix.md", Name::LookAlike("fix.task.md".into())),
            (b"fix.MD", Name::LookAlike("fix.task.md".into())),
            (b"fix.task.MD", Name::LookAlike("fix.task.md".into())),
            (b"Fix.Task.Md", Name::LookAlike("Fix.task.md".into())),
            (b"fix.task.md.txt", Name::LookAlike("fix.task.md".into())),
            (b"notes.markdown", Name::LookAlike("notes.task.md".into())),
            (b"notes.txt", Name::Other),
            (b".md", Name::Other),
            (b".fix.md", Name::Other),
            (b"fix.task.md.tmp", Name::Other),
            (b"caf\xE9.task.md", Name::Escape("caf%E9.task.md".into())),
            (b"caf\xE9.md", Name::LookAlike("caf%E9.task.md".into())),
        ];
        for (name, want) in table {
            let name = os(name);
            assert_eq!(classify(&name), want, "{name:?}");
        }
    }

    #[test]
    fn escape_keeps_valid_text_and_writes_bad_bytes_as_hex() {
        assert_eq!(escape(b"plain"), "plain");
        assert_eq!(escape("é\u{1F600}".as_bytes()), "é\u{1F600}");
        assert_eq!(escape(b"a\xFF\xFEb"), "a%FF%FEb");
        // A cut multi-byte sequence: its bytes are escaped, the rest kept.
        assert_eq!(escape(b"x\xC3"), "x%C3");
    }
}

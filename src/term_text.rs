//! Text from tasks and agents made safe for a terminal: control characters (ESC, BEL, CR,
//! DEL, C1 controls, ...) are shown as `\x1b`-style escapes, so a title or a tool name
//! cannot set the window title, clear the screen or move the cursor (DESIGN §7).

use std::borrow::Cow;

/// `text` with every control character escaped as `\xNN` (or `\u{NNNN}` above 0xFF).
/// Text without control characters is returned as it is, without copying.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_char(&mut out, c);
    }
    Cow::Owned(out)
}

/// Like [`escape`], but a newline and a tab are kept (for multi-line text such as an error
/// message printed on its own lines).
pub fn escape_lines(text: &str) -> Cow<'_, str> {
    if !text
        .chars()
        .any(|c| needs_escape(c) && c != '\n' && c != '\t')
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c == '\n' || c == '\t' {
            out.push(c);
        } else {
            push_char(&mut out, c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
}

fn push_char(out: &mut String, c: char) {
    use std::fmt::Write;
    if c.is_control() {
        let n = u32::from(c);
        if n <= 0xFF {
            let _ = write!(out, "\\x{n:02x}");
        } else {
            let _ = write!(out, "\\u{{{n:04x}}}");
        }
    } else {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: [(&str, &str); 9] = [
            ("plain title", "plain title"),
            ("é ü 漢字", "é ü 漢字"),
            ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
            ("a\x1b[2Jb", "a\\x1b[2Jb"),
            ("line\nnext\tcol\r", "line\\x0anext\\x09col\\x0d"),
            ("del\x7f", "del\\x7f"),
            ("c1\u{9b}31m", "c1\\x9b31m"),
            ("back\\slash", "back\\slash"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(escape(input), want, "{input:?}");
        }
    }

    #[test]
    fn lines_keep_newlines_and_tabs() {
        assert_eq!(escape_lines("a\n\tb\x1b[2J"), "a\n\tb\\x1b[2J");
        assert!(matches!(escape_lines("ok\nok"), Cow::Borrowed(_)));
        assert!(matches!(escape("ok"), Cow::Borrowed(_)));
    }
}

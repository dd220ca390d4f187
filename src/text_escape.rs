//! Control characters in text from tasks and agents, made harmless before a person's
//! terminal or editor sees them (DESIGN §7, §10): summary files, and the CLI's output.
//!
//! C0 controls (but newline and tab where multi-line text is allowed), DEL and the C1
//! controls are written as `\xNN` (ESC is `\x1b`), so that a title like
//! `"\x1b]0;pwned\x07"` cannot set a window title or clear the screen. A backslash stays
//! as it is: the escape is for reading, not for parsing back.

use std::borrow::Cow;

/// True for the characters [`escape_line`] escapes: every C0 control, DEL and C1 control.
pub fn is_unsafe_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// `text` for one line: every control character escaped, newline and tab included.
pub fn escape_line(text: &str) -> Cow<'_, str> {
    escape_with(text, |_| false)
}

/// `text` that may span lines: newlines and tabs kept, every other control character
/// escaped (a carriage return too, which could overwrite a line on a terminal).
pub fn escape_multiline(text: &str) -> Cow<'_, str> {
    escape_with(text, |c| c == '\n' || c == '\t')
}

fn escape_with(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| is_unsafe_control(c) && !keep(c);
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_a_table() {
        for (input, line, multi) in [
            ("plain text", "plain text", "plain text"),
            (
                "\x1b]0;pwned\x07",
                "\\x1b]0;pwned\\x07",
                "\\x1b]0;pwned\\x07",
            ),
            ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H", "\\x1b[2J\\x1b[H"),
            ("a\nb\tc", "a\\x0ab\\x09c", "a\nb\tc"),
            ("over\rwrite", "over\\x0dwrite", "over\\x0dwrite"),
            (
                "del\x7f c1\u{9b}31m",
                "del\\x7f c1\\x9b31m",
                "del\\x7f c1\\x9b31m",
            ),
            ("nul\0", "nul\\x00", "nul\\x00"),
            ("é ü 日本 \\u{1b}", "é ü 日本 \\u{1b}", "é ü 日本 \\u{1b}"),
            ("\u{a0}no-break", "\u{a0}no-break", "\u{a0}no-break"),
        ] {
            assert_eq!(escape_line(input), line, "{input:?}");
            assert_eq!(escape_multiline(input), multi, "{input:?}");
        }
        assert!(matches!(escape_line("clean"), Cow::Borrowed(_)));
    }
}

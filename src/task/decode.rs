//! Bytes to text for task files: UTF-8 with or without BOM, UTF-16 LE/BE with a BOM,
//! CRLF to LF; NUL bytes (binary data) and invalid sequences refused with a byte offset.

use std::borrow::Cow;

use super::TaskErrorKind;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Decodes a task file. Borrows the input when it is clean UTF-8 with LF line ends.
/// Offsets in errors count bytes of the original input (BOM included).
pub(crate) fn decode(bytes: &[u8]) -> Result<Cow<'_, str>, TaskErrorKind> {
    if bytes.len() >= 2 && (bytes[..2] == [0xFF, 0xFE] || bytes[..2] == [0xFE, 0xFF]) {
        return decode_utf16(&bytes[2..], bytes[0] == 0xFF).map(Cow::Owned);
    }
    let (body, skipped) = match bytes.strip_prefix(UTF8_BOM) {
        Some(rest) => (rest, UTF8_BOM.len()),
        None => (bytes, 0),
    };
    if let Some(pos) = body.iter().position(|&b| b == 0) {
        return Err(TaskErrorKind::Binary {
            offset: pos + skipped,
        });
    }
    let text = std::str::from_utf8(body).map_err(|e| TaskErrorKind::InvalidUtf8 {
        offset: e.valid_up_to() + skipped,
    })?;
    Ok(normalise_newlines(Cow::Borrowed(text)))
}

fn decode_utf16(body: &[u8], little_endian: bool) -> Result<String, TaskErrorKind> {
    let units = body.chunks(2).map(|c| match (c, little_endian) {
        ([a, b], true) => Some(u16::from_le_bytes([*a, *b])),
        ([a, b], false) => Some(u16::from_be_bytes([*a, *b])),
        _ => None, // odd trailing byte
    });
    let mut out = String::with_capacity(body.len() / 2);
    // Decode unit by unit so that an error can name its byte offset.
    let mut pending_high: Option<(u16, usize)> = None;
    for (i, unit) in units.enumerate() {
        let offset = 2 + 2 * i;
        let Some(u) = unit else {
            return Err(TaskErrorKind::InvalidUtf16 { offset });
        };
        match (pending_high.take(), u) {
            (None, 0xD800..=0xDBFF) => pending_high = Some((u, offset)),
            (None, 0xDC00..=0xDFFF) => return Err(TaskErrorKind::InvalidUtf16 { offset }),
            (None, 0) => return Err(TaskErrorKind::Binary { offset }),
            (None, _) => out.push(char::from_u32(u32::from(u)).unwrap_or('\u{FFFD}')),
            (Some((hi, _)), 0xDC00..=0xDFFF) => {
                let c = 0x10000 + ((u32::from(hi) - 0xD800) << 10) + (u32::from(u) - 0xDC00);
                out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
            }
            (Some((_, hi_offset)), _) => {
                return Err(TaskErrorKind::InvalidUtf16 { offset: hi_offset })
            }
        }
    }
    if let Some((_, offset)) = pending_high {
        return Err(TaskErrorKind::InvalidUtf16 { offset });
    }
    Ok(normalise_newlines(Cow::Owned(out)).into_owned())
}

/// CRLF to LF; allocates only when there is a CR.
fn normalise_newlines(text: Cow<'_, str>) -> Cow<'_, str> {
    if text.contains('\r') {
        Cow::Owned(text.replace("\r\n", "\n"))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_plain_is_borrowed() {
        let out = decode(b"hello\n").unwrap();
        assert!(matches!(out, Cow::Borrowed("hello\n")));
    }

    #[test]
    fn bom_and_crlf() {
        assert_eq!(decode(b"\xEF\xBB\xBFa\r\nb\r\n").unwrap(), "a\nb\n");
    }

    #[test]
    fn invalid_utf8_names_offset_counting_bom() {
        assert_eq!(
            decode(b"abc\xFFdef").unwrap_err(),
            TaskErrorKind::InvalidUtf8 { offset: 3 }
        );
        assert_eq!(
            decode(b"\xEF\xBB\xBFabc\xC3").unwrap_err(),
            TaskErrorKind::InvalidUtf8 { offset: 6 }
        );
    }

    #[test]
    fn nul_is_binary() {
        assert_eq!(
            decode(b"ab\0cd").unwrap_err(),
            TaskErrorKind::Binary { offset: 2 }
        );
    }

    #[test]
    fn utf16_both_endians() {
        let s = "h\u{e9}llo \u{1F600}\r\nx";
        let mut le = vec![0xFF, 0xFE];
        let mut be = vec![0xFE, 0xFF];
        for u in s.encode_utf16() {
            le.extend_from_slice(&u.to_le_bytes());
            be.extend_from_slice(&u.to_be_bytes());
        }
        assert_eq!(decode(&le).unwrap(), "h\u{e9}llo \u{1F600}\nx");
        assert_eq!(decode(&be).unwrap(), "h\u{e9}llo \u{1F600}\nx");
    }

    #[test]
    fn utf16_errors() {
        // Lone low surrogate at unit 1 (byte 4).
        assert_eq!(
            decode(&[0xFF, 0xFE, b'a', 0, 0x00, 0xDC]).unwrap_err(),
            TaskErrorKind::InvalidUtf16 { offset: 4 }
        );
        // Odd length.
        assert_eq!(
            decode(&[0xFF, 0xFE, b'a', 0, b'b']).unwrap_err(),
            TaskErrorKind::InvalidUtf16 { offset: 4 }
        );
        // Unpaired high surrogate at the end.
        assert_eq!(
            decode(&[0xFF, 0xFE, 0x00, 0xD8]).unwrap_err(),
            TaskErrorKind::InvalidUtf16 { offset: 2 }
        );
        assert_eq!(
            decode(&[0xFF, 0xFE, b'a', 0, 0, 0]).unwrap_err(),
            TaskErrorKind::Binary { offset: 4 }
        );
    }
}

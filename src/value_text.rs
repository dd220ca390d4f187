//! JSON values written out by hand, without serde's or fmt's machinery: compact JSON (event
//! lines) and YAML's flow style (rendered task files) share one walk, [`write_value`].

use serde_json::Value;

/// How [`write_value`] spells a value's parts.
pub struct Style {
    /// Between items of an array or entries of an object (`,` or `, `).
    pub item_sep: &'static str,
    /// Between an object's key and its value (`:` or `: `).
    pub key_sep: &'static str,
    /// Appends a string (or key) as a quoted literal.
    pub quote: fn(&mut String, &str),
}

/// Compact JSON, as `serde_json::Value`'s `Display` prints it.
pub const JSON: Style = Style {
    item_sep: ",",
    key_sep: ":",
    quote: push_json_str,
};

/// Appends `v` in `style`.
pub fn write_value(out: &mut String, v: &Value, style: &Style) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => out.push_str(itoa::Buffer::new().format(u)),
            (None, Some(i)) => out.push_str(itoa::Buffer::new().format(i)),
            _ => {
                let _ = std::fmt::Write::write_fmt(out, format_args!("{n}"));
            }
        },
        Value::String(s) => (style.quote)(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(style.item_sep);
                }
                write_value(out, x, style);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(style.item_sep);
                }
                (style.quote)(out, k);
                out.push_str(style.key_sep);
                write_value(out, x, style);
            }
            out.push('}');
        }
    }
}

/// Appends `s` as a JSON string literal: runs of characters that need no escape are copied
/// whole (event fields are mostly plain ids, paths and words).
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    proptest::proptest! {
        /// The hand-written JSON is what serde_json prints, for any string and for values
        /// of every kind.
        #[test]
        fn json_matches_serde_json(s in "\\PC*|[\\x00-\\x7f]{0,40}", n in proptest::num::i64::ANY, f in -1e9f64..1e9) {
            let mut out = String::new();
            push_json_str(&mut out, &s);
            proptest::prop_assert_eq!(&out, &serde_json::to_string(&s).unwrap());
            let v = json!({"s": s, "n": n, "u": u64::MAX, "f": f, "a": [null, true, false, [], {}], "o": {"k\"\n": s}});
            let mut out = String::new();
            write_value(&mut out, &v, &JSON);
            proptest::prop_assert_eq!(out, v.to_string());
        }
    }
}

//! The human form of an event line (`orca tail-events` without `--json`):
//! `2026-11-25 10:30:00.123  claude_finished  fix_db #1  outcome=succeeded exit_code=0 ...`
//! with the fields in the line's own order, `null`s left out, and every control character
//! escaped (a title or an agent's text cannot move the cursor or retitle the terminal).

use std::fmt::Write as _;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

/// The keys of a JSON object line in their order, with their values; `None` when the line
/// is not an object.
pub fn fields_in_order(line: &str) -> Option<Vec<(String, Value)>> {
    struct Ordered;
    impl<'de> Visitor<'de> for Ordered {
        type Value = Vec<(String, Value)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, Value>()? {
                out.push((k, v));
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(line);
    de.deserialize_map(Ordered).ok()
}

/// Appends `s` with control characters escaped ([`crate::text_escape::escape_line`]).
pub fn push_escaped(out: &mut String, s: &str) {
    out.push_str(&crate::text_escape::escape_line(s));
}

fn push_value(out: &mut String, v: &Value) {
    match v {
        Value::String(s) => {
            let plain = !s.is_empty() && !s.contains([' ', '"', '=']);
            if !plain {
                out.push('"');
            }
            let quoted: String;
            let s = if plain {
                s.as_str()
            } else {
                quoted = s.replace('"', "\\\"");
                &quoted
            };
            push_escaped(out, s);
            if !plain {
                out.push('"');
            }
        }
        other => push_escaped(out, &other.to_string()),
    }
}

/// The human line of one event line (no `\n`); a line that is not an object is shown
/// escaped as it is.
pub fn human_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let Some(fields) = fields_in_order(line) else {
        push_escaped(&mut out, line);
        return out;
    };
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v);
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    };
    let ts = text(get("ts"));
    push_escaped(&mut out, ts.replacen('T', " ", 1).trim_end_matches('Z'));
    out.push_str("  ");
    push_escaped(&mut out, &format!("{:<17}", text(get("event"))));
    let task = text(get("task_id"));
    let mut who = if task.is_empty() {
        "-".to_owned()
    } else {
        task
    };
    if let Some(a) = get("attempt").filter(|a| !a.is_null()) {
        let _ = write!(who, " #{}", text(Some(a)));
    }
    out.push_str("  ");
    push_escaped(&mut out, &who);
    for (k, v) in &fields {
        if matches!(k.as_str(), "ts" | "event" | "task_id" | "attempt") || v.is_null() {
            continue;
        }
        out.push_str("  ");
        push_escaped(&mut out, k);
        out.push('=');
        push_value(&mut out, v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_human_line_escapes_control_characters() {
        let line = "{\"ts\":\"2026-11-25T10:30:00.123Z\",\"event\":\"task_rejected\",\"task_id\":\"a\",\"error\":\"bad \\u001b]0;owned\\u0007 title\",\"file\":\"tasks/a.task.md\",\"hint\":null,\"line\":3}";
        assert_eq!(
            human_line(line),
            "2026-11-25 10:30:00.123  task_rejected      a  error=\"bad \\x1b]0;owned\\x07 title\"  file=tasks/a.task.md  line=3"
        );
        assert_eq!(human_line("{\"x\":1"), "{\"x\":1");
        assert_eq!(human_line("\u{1b}[2J"), "\\x1b[2J");
    }
}

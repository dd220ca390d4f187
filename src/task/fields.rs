//! The task's front-matter fields, written once: each row of [`FIELDS`] names a key, reads
//! its YAML value into the [`Task`] and writes it back as canonical YAML.
//!
//! The list of known keys (for errors and did-you-mean), the reading of front matter and the
//! rendering of it all come from this table; a new field is one new row.

use std::fmt::Write as _;

use super::front::{
    boolean, closest, label_list, non_empty_text, raw_to_json, scalar_text, whole_number, Entry,
    Raw,
};
use super::{paths, Priority, Task, TaskErrorKind, TaskType};
use serde_saphyr::Spanned;

/// Reads a value into the task: (task, value, the YAML text, the key).
type Read = fn(&mut Task, &Spanned<Raw>, &str, &'static str) -> Result<(), TaskErrorKind>;
/// Writes the field's `key: value` line when it is set: (task, key, out).
type Write = fn(&Task, &'static str, &mut String);

/// One front-matter field.
pub(crate) struct Field {
    pub key: &'static str,
    read: Read,
    write: Write,
}

const GT0_SECS: &str = "a whole number of seconds greater than 0";
const GT0: &str = "a whole number greater than 0";
const GE0: &str = "a whole number (0 or more)";

/// Every front-matter key Orca understands, in canonical order.
pub(crate) const FIELDS: [Field; 15] = [
    Field {
        key: "id",
        read: |t, v, y, k| {
            if let Some(id) = scalar_text(k, v, y)? {
                if paths::validate_id(&id).is_err() {
                    return Err(TaskErrorKind::BadId { id });
                }
                t.id = id;
            }
            Ok(())
        },
        write: |t, k, out| field_str(out, k, &t.id),
    },
    Field {
        key: "type",
        read: |t, v, y, k| {
            t.task_type = match scalar_text(k, v, y)? {
                None => None,
                Some(s) => Some(
                    TaskType::ALL
                        .into_iter()
                        .find(|x| x.as_str().eq_ignore_ascii_case(s.trim()))
                        .ok_or(TaskErrorKind::BadType { value: s })?,
                ),
            };
            Ok(())
        },
        write: |t, k, out| {
            if let Some(x) = t.task_type {
                let _ = writeln!(out, "{k}: {x}");
            }
        },
    },
    Field {
        key: "priority",
        read: |t, v, y, k| {
            t.priority = match scalar_text(k, v, y)? {
                None => Priority::default(),
                Some(s) => Priority::ALL
                    .into_iter()
                    .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
                    .ok_or(TaskErrorKind::BadPriority { value: s })?,
            };
            Ok(())
        },
        write: |t, k, out| {
            let _ = writeln!(out, "{k}: {}", t.priority);
        },
    },
    Field {
        key: "created",
        read: |t, v, y, k| {
            if let Some(s) = scalar_text(k, v, y)? {
                if s.parse::<jiff::Timestamp>().is_err() {
                    return Err(TaskErrorKind::BadCreated { value: s });
                }
                t.created = Some(s);
            }
            Ok(())
        },
        write: |t, k, out| opt_str(out, k, t.created.as_deref()),
    },
    Field {
        key: "working_dir",
        read: |t, v, y, k| {
            t.working_dir = non_empty_text(k, v, y)?;
            Ok(())
        },
        write: |t, k, out| opt_str(out, k, t.working_dir.as_deref()),
    },
    Field {
        key: "timeout_sec",
        read: |t, v, y, k| {
            t.timeout_sec = whole_number(k, v, y, 1, u64::MAX, GT0_SECS)?;
            Ok(())
        },
        write: |t, k, out| opt_num(out, k, t.timeout_sec),
    },
    Field {
        key: "max_turns",
        read: |t, v, y, k| {
            t.max_turns = whole_number(k, v, y, 1, u64::from(u32::MAX), GT0)?
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
            Ok(())
        },
        write: |t, k, out| opt_num(out, k, t.max_turns.map(u64::from)),
    },
    Field {
        key: "retries",
        read: |t, v, y, k| {
            t.retries = whole_number(k, v, y, 0, u64::from(u32::MAX), GE0)?
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
            Ok(())
        },
        write: |t, k, out| opt_num(out, k, t.retries.map(u64::from)),
    },
    Field {
        key: "model",
        read: |t, v, y, k| {
            t.model = non_empty_text(k, v, y)?;
            Ok(())
        },
        write: |t, k, out| opt_str(out, k, t.model.as_deref()),
    },
    Field {
        key: "resume_on_retry",
        read: |t, v, y, k| {
            t.resume_on_retry = boolean(k, v, y)?;
            Ok(())
        },
        write: |t, k, out| {
            if t.resume_on_retry {
                let _ = writeln!(out, "{k}: true");
            }
        },
    },
    Field {
        key: "requires",
        read: |t, v, y, k| {
            t.requires = label_list(k, v, y)?;
            Ok(())
        },
        write: |t, k, out| {
            if t.requires.is_empty() {
                return;
            }
            let _ = write!(out, "{k}: [");
            for (i, r) in t.requires.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                yaml_quote(out, r);
            }
            out.push_str("]\n");
        },
    },
    Field {
        key: "strict",
        read: |t, v, y, k| {
            t.strict = match v.value {
                Raw::Null => None,
                _ => Some(boolean(k, v, y)?),
            };
            Ok(())
        },
        write: |t, k, out| {
            if let Some(b) = t.strict {
                let _ = writeln!(out, "{k}: {b}");
            }
        },
    },
    Field {
        key: "fix_rounds",
        read: |t, v, y, k| {
            t.fix_rounds = whole_number(k, v, y, 0, u64::from(u32::MAX), GE0)?
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
            Ok(())
        },
        write: |t, k, out| opt_num(out, k, t.fix_rounds.map(u64::from)),
    },
    Field {
        key: "worktree",
        read: |t, v, y, k| {
            t.worktree = boolean(k, v, y)?;
            Ok(())
        },
        write: |t, k, out| {
            if t.worktree {
                let _ = writeln!(out, "{k}: true");
            }
        },
    },
    Field {
        key: "check_timeout_sec",
        read: |t, v, y, k| {
            t.check_timeout_sec = whole_number(k, v, y, 1, u64::MAX, GT0_SECS)?;
            Ok(())
        },
        write: |t, k, out| opt_num(out, k, t.check_timeout_sec),
    },
];

/// The known keys, in canonical order.
pub(crate) fn keys() -> impl Iterator<Item = &'static str> {
    FIELDS.iter().map(|f| f.key)
}

/// Reads every front-matter entry into `task`; returns every error (file line, what),
/// in file order. Keys starting with `x-` are kept in `task.extra`.
pub(crate) fn apply(
    task: &mut Task,
    entries: Vec<Entry>,
    yaml: &str,
) -> Vec<(Option<usize>, TaskErrorKind)> {
    let mut errors = Vec::new();
    for e in entries {
        let key = match e.key {
            Ok(k) => k,
            Err(kind) => {
                errors.push((e.line, kind));
                continue;
            }
        };
        let read = match FIELDS.iter().find(|f| f.key == key) {
            Some(f) => (f.read)(task, &e.value, yaml, f.key),
            None if key.starts_with("x-") => {
                task.extra.insert(key, raw_to_json(&e.value.value));
                Ok(())
            }
            None => Err(TaskErrorKind::UnknownField {
                suggestion: closest(&key, keys()).map(str::to_string),
                field: key,
            }),
        };
        if let Err(kind) = read {
            errors.push((e.line, kind));
        }
    }
    errors
}

/// The front matter of `task` as canonical YAML between `---` lines: every set field in
/// table order, then the `x-` keys.
pub(crate) fn write_front_matter(task: &Task, out: &mut String) {
    out.push_str("---\n");
    for f in &FIELDS {
        (f.write)(task, f.key, out);
    }
    for (k, v) in &task.extra {
        yaml_quote(out, k);
        out.push_str(": ");
        json_flow(out, v);
        out.push('\n');
    }
    out.push_str("---\n");
}

fn opt_str(out: &mut String, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        field_str(out, key, v);
    }
}

fn opt_num(out: &mut String, key: &str, value: Option<u64>) {
    if let Some(n) = value {
        let _ = writeln!(out, "{key}: {n}");
    }
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
fn yaml_quote(out: &mut String, s: &str) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn read(yaml: &str) -> (Task, Vec<(Option<usize>, TaskErrorKind)>) {
        let mut t = Task::new("", "");
        let entries = super::super::front::parse(yaml).unwrap_or_else(|(_, k)| panic!("{k}"));
        let errors = apply(&mut t, entries, yaml);
        (t, errors)
    }

    #[test]
    fn strict_check_timeout_fix_rounds_and_worktree_are_read() {
        let (t, errors) =
            read("strict: true\ncheck_timeout_sec: 3\nfix_rounds: 2\nworktree: true\n");
        assert_eq!(errors, vec![]);
        assert_eq!((t.strict, t.check_timeout_sec), (Some(true), Some(3)));
        assert_eq!((t.fix_rounds, t.worktree), (Some(2), true));
        let (t, _) = read("id: a\n");
        assert_eq!((t.strict, t.fix_rounds, t.worktree), (None, None, false));
        let (_, errors) =
            read("fix_rounds: -1\nworktree: yes-please\ncheck_timeout_sec: 0\nstrict: maybe\n");
        let shown: Vec<(Option<usize>, &str)> =
            errors.iter().map(|(l, k)| (*l, k.name())).collect();
        assert_eq!(
            shown,
            vec![
                (Some(2), "bad_number"),
                (Some(3), "bad_bool"),
                (Some(4), "bad_number"),
                (Some(5), "bad_bool"),
            ]
        );
        assert_eq!(
            errors[2].1.to_string(),
            "check_timeout_sec '0' is not a whole number of seconds greater than 0"
        );
    }

    #[test]
    fn numbers_keep_their_spelling_in_text_fields() {
        let (t, errors) = read("model: 3.10\nid: 007\nrequires: [a, 2]\n");
        assert_eq!(errors, vec![]);
        assert_eq!(t.model.as_deref(), Some("3.10"));
        assert_eq!(t.id, "007");
        assert_eq!(t.requires, vec!["a", "2"]);
    }

    #[test]
    fn key_lines_are_file_lines_and_every_bad_entry_is_reported() {
        let (t, errors) =
            read("id: a\ntype: fix\npriority: urgent\npriorty: high\nretries: many\nx-k: 1\n");
        let shown: Vec<(Option<usize>, String)> =
            errors.iter().map(|(l, k)| (*l, k.to_string())).collect();
        assert_eq!(
            shown,
            vec![
                (
                    Some(4),
                    "priority 'urgent' is not one of high, medium, low".into()
                ),
                (
                    Some(5),
                    "unknown field 'priorty' (did you mean 'priority'?)".into()
                ),
                (
                    Some(6),
                    "retries 'many' is not a whole number (0 or more)".into()
                ),
            ]
        );
        // What could be read is read.
        assert_eq!((t.id.as_str(), t.task_type), ("a", Some(TaskType::Fix)));
        assert_eq!(t.extra.get("x-k"), Some(&serde_json::json!(1)));
    }

    #[test]
    fn the_table_is_the_known_keys_and_render_writes_each() {
        assert_eq!(
            keys().collect::<Vec<_>>(),
            [
                "id",
                "type",
                "priority",
                "created",
                "working_dir",
                "timeout_sec",
                "max_turns",
                "retries",
                "model",
                "resume_on_retry",
                "requires",
                "strict",
                "fix_rounds",
                "worktree",
                "check_timeout_sec"
            ]
        );
        let yaml = "id: a\ntype: fix\npriority: high\ncreated: \"2026-11-25T10:30:00Z\"\nworking_dir: w\ntimeout_sec: 5\nmax_turns: 6\nretries: 7\nmodel: m\nresume_on_retry: true\nrequires: [\"r\"]\nstrict: false\nfix_rounds: 3\nworktree: true\ncheck_timeout_sec: 9\n";
        let (t, errors) = read(yaml);
        assert_eq!(errors, vec![]);
        let mut out = String::new();
        write_front_matter(&t, &mut out);
        assert_eq!(out, format!("---\n{yaml}---\n"));
    }
}

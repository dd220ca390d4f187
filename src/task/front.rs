//! Front matter: splitting the `---` block off the body, reading it as YAML under tight
//! budgets (serde-saphyr), and checking every key into typed fields with its file line.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::TaskErrorKind;

/// The text split into front matter and body.
pub(crate) struct Split<'a> {
    /// The YAML between the `---` lines (None: no front matter). Its line 1 is file line 2.
    pub yaml: Option<&'a str>,
    pub body: &'a str,
    /// File line (1-based) of the body's first line.
    pub body_line: usize,
}

fn is_fence(line: &str) -> bool {
    line.trim_end() == "---"
}

/// Splits off the front matter: a first line `---`, up to a line `---` (or `...`).
/// An opening line without a closing one is an error naming line 1.
pub(crate) fn split(text: &str) -> Result<Split<'_>, (usize, TaskErrorKind)> {
    let first_end = text.find('\n').unwrap_or(text.len());
    if !is_fence(&text[..first_end]) {
        return Ok(Split {
            yaml: None,
            body: text,
            body_line: 1,
        });
    }
    let yaml_start = (first_end + 1).min(text.len());
    let mut pos = yaml_start;
    let mut line_no = 2;
    while pos < text.len() {
        let end = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
        let line = &text[pos..end];
        if is_fence(line) || line.trim_end() == "..." {
            return Ok(Split {
                yaml: Some(&text[yaml_start..pos]),
                body: &text[(end + 1).min(text.len())..],
                body_line: line_no + 1,
            });
        }
        pos = end + 1;
        line_no += 1;
    }
    Err((1, TaskErrorKind::UnclosedFrontMatter))
}

/// One `key: value` line of the front matter, not yet checked against the fields.
pub(crate) struct Entry {
    /// File line of the key.
    pub line: Option<usize>,
    /// The key's name, or why it is not one.
    pub key: Result<String, TaskErrorKind>,
    pub value: Spanned<Raw>,
}

/// Deepest nesting of lists and mappings accepted in front matter.
const MAX_DEPTH: usize = 16;

/// The YAML reader's options: strict budgets sized for a few dozen `key: value` lines, so
/// hostile input (alias bombs, deep nesting, huge node counts) fails fast and small.
pub(crate) fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            flow_nesting_limit: MAX_DEPTH,
            max_events: 20_000,
            max_nodes: 10_000,
            max_aliases: 64,
            max_anchors: 64,
            max_recorded_anchor_events: 10_000,
            max_recorded_anchor_bytes: 1024 * 1024,
            max_documents: 1,
            max_total_scalar_bytes: 1024 * 1024,
            max_merge_keys: 16,
            max_inclusion_depth: 0,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 10_000,
            max_replay_stack_depth: 16,
            max_alias_expansions_per_anchor: 64,
        },
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
        reject_unsupported_tags: true,
        with_snippet: false,
        emit_comments: false,
    }
}

/// Reads the front matter into its entries, in file order. An error here (YAML syntax, a
/// safety limit, not a mapping) ends the reading; it carries the file line (YAML line + 1,
/// since the YAML starts on file line 2).
pub(crate) fn parse(yaml: &str) -> Result<Vec<Entry>, (Option<usize>, TaskErrorKind)> {
    if yaml.trim().is_empty() {
        return Ok(Vec::new());
    }
    let doc: Doc = serde_saphyr::from_str_with_options(yaml, yaml_options()).map_err(yaml_error)?;
    let entries = match doc {
        Doc::Map(entries) => entries,
        Doc::Empty => return Ok(Vec::new()),
        Doc::NotMap(found) => {
            return Err((Some(2), TaskErrorKind::FrontMatterNotMapping { found }));
        }
    };
    Ok(entries
        .into_iter()
        .map(|(key, value)| Entry {
            line: file_line(key.referenced.line()),
            key: key_name(&key, yaml),
            value,
        })
        .collect())
}

fn file_line(yaml_line: u64) -> Option<usize> {
    (yaml_line > 0).then(|| {
        usize::try_from(yaml_line)
            .unwrap_or(usize::MAX)
            .saturating_add(1)
    })
}

/// A person-readable account of a budget breach.
fn budget_text(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    match breach {
        B::Depth { .. } => format!("nesting deeper than {MAX_DEPTH} levels"),
        B::Aliases { .. }
        | B::Anchors { .. }
        | B::AliasAnchorRatio { .. }
        | B::RecordedAnchorEvents { .. }
        | B::RecordedAnchorBytes { .. } => {
            "too many anchors or aliases (`&a` / `*a`): alias expansion is capped".into()
        }
        B::Events { .. } | B::Nodes { .. } => "too many values".into(),
        B::ScalarBytes { .. } => "too much text in values".into(),
        B::Documents { .. } => "more than one YAML document".into(),
        B::MergeKeys { .. } => "too many merge keys (`<<`)".into(),
        other => format!("{other:?}"),
    }
}

fn yaml_error(e: serde_saphyr::Error) -> (Option<usize>, TaskErrorKind) {
    use serde_saphyr::Error as E;
    let line = e.location().and_then(|l| file_line(l.line()));
    let mut inner = &e;
    while let E::AliasError { error, .. } | E::WithSnippet { error, .. } = inner {
        inner = error;
    }
    let line = line.or_else(|| inner.location().and_then(|l| file_line(l.line())));
    if let E::DuplicateMappingKey { key, .. } = inner {
        let field = key.clone().unwrap_or_else(|| "?".into());
        return (line, TaskErrorKind::DuplicateKey { field });
    }
    if let E::Budget { breach, .. } = inner {
        return (
            Some(line.unwrap_or(1)),
            TaskErrorKind::YamlLimit(budget_text(breach)),
        );
    }
    let mut msg = inner.to_string();
    let too_deep = msg.contains("recursion limit") || msg.contains("nesting limit");
    if too_deep {
        msg = format!("nesting deeper than {MAX_DEPTH} levels");
    }
    let limit = too_deep
        || matches!(
            inner,
            E::Budget { .. }
                | E::AliasReplayLimitExceeded { .. }
                | E::AliasExpansionLimitExceeded { .. }
                | E::AliasReplayStackDepthExceeded { .. }
                | E::AliasReplayCounterOverflow { .. }
        )
        || msg.contains("budget breached");
    // Our error names the line itself; drop serde-saphyr's own position suffix.
    if let Some(i) = msg.find(" at line ") {
        msg.truncate(i);
    }
    // Budget, anchor and nesting errors have no useful position: name the front matter.
    let line = Some(line.unwrap_or(1));
    if limit {
        (line, TaskErrorKind::YamlLimit(msg))
    } else {
        (line, TaskErrorKind::Yaml(msg))
    }
}

/// The name of a front-matter key: a scalar (numbers keep their spelling).
fn key_name(k: &Spanned<Raw>, yaml: &str) -> Result<String, TaskErrorKind> {
    match scalar_text("a key", k, yaml) {
        Ok(Some(name)) => Ok(name),
        Ok(None) => Err(TaskErrorKind::BadKey { found: "empty" }),
        Err(_) => Err(TaskErrorKind::BadKey {
            found: k.value.kind(),
        }),
    }
}

/// A YAML value as written, before it is checked against a field.
#[derive(Debug, Clone)]
pub(crate) enum Raw {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(String),
    Seq(Vec<Raw>),
    Map(Vec<(String, Raw)>),
}

impl Raw {
    fn kind(&self) -> &'static str {
        match self {
            Raw::Seq(_) => "a list",
            Raw::Map(_) => "a mapping",
            _ => "a single value",
        }
    }
}

/// The text of a scalar as written. Numbers and booleans are sliced from the source
/// (so `model: 3.10` stays `3.10`), falling back to their display.
pub(crate) fn scalar_text(
    field: &str,
    v: &Spanned<Raw>,
    yaml: &str,
) -> Result<Option<String>, TaskErrorKind> {
    let shown = |fallback: String| {
        let span = v.referenced.span();
        let sliced = match (span.byte_offset(), span.byte_len()) {
            (Some(off), Some(len)) => usize::try_from(off)
                .ok()
                .zip(usize::try_from(len).ok())
                .and_then(|(o, l)| yaml.get(o..o.checked_add(l)?)),
            _ => None,
        };
        match sliced.map(str::trim) {
            Some(s) if !s.is_empty() && !s.starts_with(['*', '&', '!']) => s.to_string(),
            _ => fallback,
        }
    };
    match &v.value {
        Raw::Null => Ok(None),
        Raw::Str(s) => Ok(Some(s.clone())),
        Raw::Bool(b) => Ok(Some(shown(b.to_string()))),
        Raw::I64(n) => Ok(Some(shown(n.to_string()))),
        Raw::U64(n) => Ok(Some(shown(n.to_string()))),
        Raw::F64(n) => Ok(Some(shown(n.to_string()))),
        other => Err(TaskErrorKind::NotScalar {
            field: field.into(),
            found: other.kind(),
        }),
    }
}

pub(crate) fn non_empty_text(
    field: &str,
    v: &Spanned<Raw>,
    yaml: &str,
) -> Result<Option<String>, TaskErrorKind> {
    match scalar_text(field, v, yaml)? {
        Some(s) if s.trim().is_empty() => Err(TaskErrorKind::EmptyValue {
            field: field.into(),
        }),
        other => Ok(other),
    }
}

pub(crate) fn whole_number(
    field: &str,
    v: &Spanned<Raw>,
    yaml: &str,
    min: u64,
    max: u64,
    expected: &'static str,
) -> Result<Option<u64>, TaskErrorKind> {
    let n = match &v.value {
        Raw::Null => return Ok(None),
        Raw::U64(n) => Some(*n),
        Raw::I64(n) => u64::try_from(*n).ok(),
        Raw::Str(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => {
            let value = scalar_text(field, v, yaml)?.unwrap_or_default();
            Err(TaskErrorKind::BadNumber {
                field: field.into(),
                value,
                expected,
            })
        }
    }
}

pub(crate) fn boolean(field: &str, v: &Spanned<Raw>, yaml: &str) -> Result<bool, TaskErrorKind> {
    match &v.value {
        Raw::Null => Ok(false),
        Raw::Bool(b) => Ok(*b),
        Raw::Str(s)
            if ["true", "yes", "on"]
                .iter()
                .any(|t| s.eq_ignore_ascii_case(t)) =>
        {
            Ok(true)
        }
        Raw::Str(s)
            if ["false", "no", "off"]
                .iter()
                .any(|t| s.eq_ignore_ascii_case(t)) =>
        {
            Ok(false)
        }
        _ => Err(TaskErrorKind::BadBool {
            field: field.into(),
            value: scalar_text(field, v, yaml)?.unwrap_or_default(),
        }),
    }
}

pub(crate) fn label_list(
    field: &str,
    v: &Spanned<Raw>,
    yaml: &str,
) -> Result<Vec<String>, TaskErrorKind> {
    let empty = || TaskErrorKind::EmptyValue {
        field: field.into(),
    };
    match &v.value {
        Raw::Null => Ok(Vec::new()),
        Raw::Map(_) => Err(TaskErrorKind::BadList {
            field: field.into(),
            found: "a mapping",
        }),
        Raw::Seq(items) => items
            .iter()
            .map(|item| match item {
                Raw::Str(s) if s.trim().is_empty() => Err(empty()),
                Raw::Str(s) => Ok(s.clone()),
                Raw::Bool(b) => Ok(b.to_string()),
                Raw::I64(n) => Ok(n.to_string()),
                Raw::U64(n) => Ok(n.to_string()),
                Raw::F64(n) => Ok(n.to_string()),
                Raw::Null => Err(empty()),
                Raw::Seq(_) => Err(TaskErrorKind::BadList {
                    field: field.into(),
                    found: "a list inside the list",
                }),
                Raw::Map(_) => Err(TaskErrorKind::BadList {
                    field: field.into(),
                    found: "a mapping inside the list",
                }),
            })
            .collect(),
        _ => match scalar_text(field, v, yaml)? {
            Some(s) if s.trim().is_empty() => Err(empty()),
            Some(s) => Ok(vec![s]),
            None => Ok(Vec::new()),
        },
    }
}

pub(crate) fn raw_to_json(raw: &Raw) -> serde_json::Value {
    use serde_json::Value;
    match raw {
        Raw::Null => Value::Null,
        Raw::Bool(b) => Value::Bool(*b),
        Raw::I64(n) => Value::from(*n),
        Raw::U64(n) => Value::from(*n),
        Raw::F64(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
        Raw::Str(s) => Value::String(s.clone()),
        Raw::Seq(items) => Value::Array(items.iter().map(raw_to_json).collect()),
        Raw::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), raw_to_json(v)))
                .collect(),
        ),
    }
}

/// The closest candidate to `word` by edit distance (with transpositions, ignoring case),
/// when it is close enough to be a likely typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let w: Vec<char> = word
        .trim()
        .to_lowercase()
        .replace('-', "_")
        .chars()
        .collect();
    let limit = match w.len() {
        0..=2 => 0,
        3..=4 => 1,
        _ => 2,
    };
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let cc: Vec<char> = c.chars().collect();
        let mut d = edit_distance(&w, &cc);
        // `timeout` for `timeout_sec`: a prefix of 4+ letters counts as close.
        if w.len() >= 4 && (cc.starts_with(&w) || w.starts_with(&cc)) {
            d = d.min(1);
        }
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent
/// transpositions each cost 1.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let (n, m) = (a.len(), b.len());
    // Three rolling rows: i-2, i-1, i.
    let mut prev2 = vec![0usize; m + 1];
    let mut prev: Vec<usize> = (0..=m).collect();
    let mut cur = vec![0usize; m + 1];
    for i in 1..=n {
        cur[0] = i;
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(prev2[j - 2] + 1);
            }
            cur[j] = v;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[m]
}

/// The front-matter document: a mapping of spanned keys to spanned raw values.
enum Doc {
    Empty,
    NotMap(&'static str),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

impl<'de> Deserialize<'de> for Doc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Doc;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of `key: value` lines")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc, A::Error> {
                let mut entries = Vec::new();
                while let Some(k) = map.next_key::<Spanned<Raw>>()? {
                    let v = map.next_value::<Spanned<Raw>>()?;
                    entries.push((k, v));
                }
                Ok(Doc::Map(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Doc, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Doc::NotMap("a list"))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Doc, E> {
                Ok(Doc::Empty)
            }
            fn visit_none<E: de::Error>(self) -> Result<Doc, E> {
                Ok(Doc::Empty)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Doc, E> {
                Ok(Doc::NotMap("a single value"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Doc, E> {
                Ok(Doc::NotMap("a single value"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Doc, E> {
                Ok(Doc::NotMap("a single value"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Doc, E> {
                Ok(Doc::NotMap("a single value"))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Doc, E> {
                Ok(Doc::NotMap("a single value"))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a YAML value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
                Raw::deserialize(d)
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Raw, E> {
                Ok(Raw::Bool(b))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Raw, E> {
                Ok(Raw::I64(n))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Raw, E> {
                Ok(Raw::U64(n))
            }
            fn visit_i128<E: de::Error>(self, n: i128) -> Result<Raw, E> {
                Ok(Raw::Str(n.to_string()))
            }
            fn visit_u128<E: de::Error>(self, n: u128) -> Result<Raw, E> {
                Ok(Raw::Str(n.to_string()))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Raw, E> {
                Ok(Raw::F64(n))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Raw, E> {
                Ok(Raw::Str(s.to_string()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Raw, E> {
                Ok(Raw::Str(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Raw>()? {
                    items.push(item);
                }
                Ok(Raw::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Raw>()? {
                    entries.push((k, v));
                }
                Ok(Raw::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean() {
        let keys = super::super::fields::keys;
        assert_eq!(closest("priorty", keys()), Some("priority"));
        assert_eq!(closest("prioirty", keys()), Some("priority"));
        assert_eq!(closest("Priority", keys()), Some("priority"));
        assert_eq!(closest("tpye", keys()), Some("type"));
        assert_eq!(closest("timeout", keys()), Some("timeout_sec"));
        assert_eq!(closest("working-dir", keys()), Some("working_dir"));
        assert_eq!(closest("banana", keys()), None);
        assert_eq!(closest("xy", keys()), None);
    }

    #[test]
    fn edit_distance_basics() {
        let d = |a: &str, b: &str| {
            edit_distance(
                &a.chars().collect::<Vec<_>>(),
                &b.chars().collect::<Vec<_>>(),
            )
        };
        assert_eq!(d("", "abc"), 3);
        assert_eq!(d("abc", "abc"), 0);
        assert_eq!(d("kitten", "sitting"), 3);
        assert_eq!(d("ab", "ba"), 1);
    }

    #[test]
    fn split_cases() {
        let s = split("---\na: 1\n---\nbody\n").unwrap();
        assert_eq!(s.yaml, Some("a: 1\n"));
        assert_eq!(s.body, "body\n");
        assert_eq!(s.body_line, 4);
        let s = split("no front\n").unwrap();
        assert!(s.yaml.is_none());
        let s = split("---\n---").unwrap();
        assert_eq!(s.yaml, Some(""));
        assert_eq!(s.body, "");
        assert_eq!(
            split("---\na: 1\n").err(),
            Some((1, TaskErrorKind::UnclosedFrontMatter))
        );
    }
}

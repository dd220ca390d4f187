//! Property tests of the `.task.md` format: parsing never panics on any input, and
//! `parse(render(task)) == task` for generated tasks.

use std::collections::BTreeMap;
use std::path::Path;

use orca::task::{parse_bytes, render, Criterion, Priority, Task, TaskType};
use proptest::prelude::*;

const FRAGMENTS: &[&str] = &[
    "---\n",
    "---",
    "...\n",
    "\n",
    "\r\n",
    "  ",
    "\t",
    "id: ",
    "type: ",
    "priority: ",
    "high",
    "fix",
    "x-a: ",
    "requires: ",
    "model: ",
    "timeout_sec: ",
    "600",
    "-1",
    "1e9",
    "&a ",
    "*a",
    "&b [*a, *a]",
    "[",
    "]",
    "{",
    "}",
    ", ",
    "- ",
    ": ",
    "? ",
    "|",
    ">",
    "'",
    "\"",
    "\\",
    "#",
    "# Title\n",
    "## Prompt\n",
    "**Prompt:**",
    "**Context:** ",
    "**Target Files:**\n",
    "- [ ] ",
    "- [x] ",
    "```",
    "~~~",
    "!!str ",
    "!foo ",
    "<<: ",
    "null",
    "~",
    "true",
    "\u{FEFF}",
    "é",
    "\u{1F600}",
    "\u{2028}",
    "%YAML 1.2\n",
    "\0",
];

fn fragments() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..80).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_bytes(Path::new("t.task.md"), &bytes);
    }

    #[test]
    fn parse_never_panics_on_utf16(bytes in prop::collection::vec(any::<u8>(), 0..512), be in any::<bool>()) {
        let mut input = if be { vec![0xFE, 0xFF] } else { vec![0xFF, 0xFE] };
        input.extend(bytes);
        let _ = parse_bytes(Path::new("t.task.md"), &input);
    }

    #[test]
    fn parse_never_panics_on_yamlish(text in fragments()) {
        let _ = parse_bytes(Path::new("t.task.md"), text.as_bytes());
        let framed = format!("---\n{text}\n---\n**Prompt:** x\n");
        let _ = parse_bytes(Path::new("t.task.md"), framed.as_bytes());
    }

    #[test]
    fn errors_always_name_the_file(text in fragments()) {
        if let Err(e) = parse_bytes(Path::new("dir/t.task.md"), text.as_bytes()) {
            let shown = e.to_string();
            prop_assert!(shown.starts_with("dir/t.task.md"), "{shown}");
            prop_assert!(shown.contains("\nhint: "), "{shown}");
            prop_assert!(e.line.is_none_or(|l| l >= 1));
        }
    }

    #[test]
    fn render_then_parse_is_identity(task in task()) {
        let text = render(&task);
        let parsed = parse_bytes(Path::new("tasks/gen.task.md"), text.as_bytes());
        prop_assert_eq!(parsed.as_ref().map_err(|e| e.to_string()), Ok(&task), "rendered:\n{}", text);
    }
}

/// A single line of text: no line breaks or NUL, no surrounding whitespace.
fn one_line() -> impl Strategy<Value = String> {
    "[^\n\r\0]{1,30}".prop_filter("trimmed, non-empty", |s| !s.is_empty() && s.trim() == s)
}

/// A block of text as the parser gives it back: first line non-blank, no trailing
/// whitespace, lines that cannot be labels, with some markdown that must survive.
fn block() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        4 => "[A-Za-z0-9][^\n\r\0]{0,40}",
        1 => Just(String::new()),
        1 => prop::sample::select(vec![
            "- a list item",
            "## Notes (not a label)",
            "# A heading inside the text",
            "    indented code",
            "> a quote",
            "1. numbered",
            "**Bold:** not a label",
            "```\n**Context:** inside a fence\n# not a title\n```",
            "~~~~\n## Prompt\n~~~~",
        ])
        .prop_map(str::to_string),
    ];
    (
        "[A-Za-z0-9 ][^\n\r\0]{0,40}",
        prop::collection::vec(line, 0..6),
    )
        .prop_map(|(first, rest)| {
            let mut s = first;
            for l in rest {
                s.push('\n');
                s.push_str(&l);
            }
            s
        })
        .prop_filter("canonical block", |s| {
            !s.lines().next().unwrap_or("").trim().is_empty() && s.trim_end() == s
        })
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::num::f64::NORMAL.prop_map(|f| serde_json::json!(f)),
        "\\PC{0,12}".prop_map(Value::String),
        any::<String>()
            .prop_filter("no NUL", |s| !s.contains('\0'))
            .prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn non_blank() -> impl Strategy<Value = String> {
    any::<String>().prop_filter("non-blank", |s| !s.trim().is_empty())
}

prop_compose! {
    fn front()(
        id in "[A-Za-z0-9_.-]{1,64}".prop_filter("valid id", |s| s != "." && s != ".."),
        task_type in prop::option::of(prop::sample::select(TaskType::ALL.to_vec())),
        priority in prop::sample::select(Priority::ALL.to_vec()),
        created in prop::option::of((0i64..4_000_000_000).prop_map(|s| {
            jiff::Timestamp::from_second(s).map(|t| t.to_string()).unwrap_or_default()
        })),
        working_dir in prop::option::of(non_blank()),
        timeout_sec in prop::option::of(1u64..),
        max_turns in prop::option::of(1u32..),
        retries in prop::option::of(any::<u32>()),
        model in prop::option::of(prop_oneof![non_blank(), "[a-z][a-z0-9.-]{0,12}"]),
        resume_on_retry in any::<bool>(),
        requires in prop::collection::vec(non_blank(), 0..3),
        extra in prop::collection::btree_map("x-\\PC{0,10}", json_value(), 0..3),
    ) -> Task {
        Task {
            id, task_type, priority, created, working_dir, timeout_sec, max_turns, retries,
            model, resume_on_retry, requires, strict: None, check_timeout_sec: None, fix_rounds: None, worktree: false,
            extra: extra.into_iter().collect::<BTreeMap<_, _>>(),
            title: None, prompt: String::new(), target_files: vec![], success_criteria: vec![],
            context: None,
        }
    }
}

prop_compose! {
    fn task()(
        mut t in front(),
        title in prop::option::of(one_line()),
        prompt in block(),
        target_files in prop::collection::vec("[^\n\r\0]{1,30}", 0..4),
        success_criteria in prop::collection::vec(
            (one_line(), any::<bool>()).prop_map(|(text, checked)| Criterion { text, checked }),
            0..4,
        ),
        context in prop::option::of(block()),
    ) -> Task {
        t.title = title;
        t.prompt = prompt;
        t.target_files = target_files;
        t.success_criteria = success_criteria;
        t.context = context;
        t
    }
}

mod common;

/// `orca check` reports every error of a file, each with file:line and a hint, not just the
/// first: bad keys and values, an empty prompt, a target outside the allowed root. Exit 1.
#[test]
fn check_reports_every_error_of_a_file() {
    let ws = common::Ws::new();
    std::fs::write(
        ws.path().join("tasks/multi.task.md"),
        "---\npriorty: high\ntype: bugfix\ntimeout_sec: soon\nretries: -1\nx-note: kept\n---\n\n\
         # Several mistakes\n\n**Target Files:**\n- ../../../../../etc/passwd\n\n**Prompt:**\n\n",
    )
    .unwrap();
    let out = ws
        .cmd()
        .current_dir(ws.path())
        .args(["check", "tasks/multi.task.md"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let root = ws.path().canonicalize().unwrap().display().to_string();
    insta::with_settings!({filters => vec![(root.as_str(), "[ROOT]")]}, {
        insta::assert_snapshot!("check_every_error", text);
    });
    // The JSON keeps `error` (the first) and lists them all.
    let out = ws
        .cmd()
        .current_dir(ws.path())
        .args(["check", "--json", "tasks/multi.task.md"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors = v[0]["errors"].as_array().unwrap();
    let kinds: Vec<&str> = errors.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "unknown_field",
            "bad_type",
            "bad_number",
            "bad_number",
            "path_outside_root",
            "empty_prompt"
        ]
    );
    assert_eq!(v[0]["error"], errors[0]);
}

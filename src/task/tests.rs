//! Tests of the task format against the corpus in tests/data/tasks/ (one insta snapshot
//! per file) and of every rejection rule's exact message.

use std::path::{Path, PathBuf};

use super::*;

fn corpus(kind: &str) -> Vec<PathBuf> {
    // Relative to the crate root (cargo runs tests there), so snapshots hold stable paths.
    let dir = Path::new("tests/data/tasks").join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".task.md"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus files in {}", dir.display());
    files
}

fn stem(p: &Path) -> String {
    default_id(p)
}

#[test]
fn bad_corpus_errors_snapshot() {
    for file in corpus("bad") {
        let err = match parse_file(&file) {
            Ok(t) => panic!("{} parsed but should not: {t:?}", file.display()),
            Err(e) => e,
        };
        assert_eq!(err.file, file);
        let shown = format!("kind: {}\n{err}", err.kind_name());
        insta::assert_snapshot!(format!("bad_{}", stem(&file)), shown);
    }
}

#[test]
fn good_corpus_snapshot_and_round_trip() {
    for file in corpus("good") {
        let task = parse_file(&file).unwrap_or_else(|e| panic!("{e}"));
        insta::assert_json_snapshot!(format!("good_{}", stem(&file)), task);
        let text = render(&task);
        let again = parse_bytes(&file, text.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(again, task, "round trip of {}:\n{text}", file.display());
    }
}

#[test]
fn render_snapshot() {
    let task = parse_file(Path::new("tests/data/tasks/good/fix_db_timeout.task.md")).unwrap();
    insta::assert_snapshot!("render_fix_db_timeout", render(&task));
}

fn err_of(text: &str) -> TaskError {
    parse_bytes(Path::new("tasks/fix.task.md"), text.as_bytes()).unwrap_err()
}

fn ok_of(text: &str) -> Task {
    parse_bytes(Path::new("tasks/fix.task.md"), text.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn design_example_message() {
    let e = err_of("---\nid: fix\ntype: fix\npriority: urgent\n---\n**Prompt:** x\n");
    assert_eq!(
        e.to_string(),
        "tasks/fix.task.md:4: priority 'urgent' is not one of high, medium, low\nhint: write e.g. `priority: high`, or remove it for medium"
    );
    assert_eq!(e.kind_name(), "bad_priority");
    assert_eq!(e.line, Some(4));
}

#[test]
fn display_without_line() {
    let e = err_of("");
    assert_eq!(
        e.to_string(),
        "tasks/fix.task.md: the file is empty\nhint: write the task: a `**Prompt:**` section or some body text"
    );
}

#[test]
fn each_rule_message() {
    let cases: &[(&str, &str, Option<usize>, &str)] = &[
        ("", "empty_file", None, "the file is empty"),
        (
            "a\0b",
            "binary",
            None,
            "the file contains binary data (a NUL byte at byte 1)",
        ),
        (
            "---\nid: x\n",
            "unclosed_front_matter",
            Some(1),
            "the front matter opened with '---' is never closed",
        ),
        (
            "---\npriorty: high\n---\nx\n",
            "unknown_field",
            Some(2),
            "unknown field 'priorty' (did you mean 'priority'?)",
        ),
        (
            "---\nfoo: 1\n---\nx\n",
            "unknown_field",
            Some(2),
            "unknown field 'foo'",
        ),
        (
            "---\nmodel: [a]\n---\nx\n",
            "not_scalar",
            Some(2),
            "model must be a single value, not a list",
        ),
        (
            "---\nid: {a: 1}\n---\nx\n",
            "not_scalar",
            Some(2),
            "id must be a single value, not a mapping",
        ),
        (
            "---\nmodel: ''\n---\nx\n",
            "empty_value",
            Some(2),
            "model must not be empty",
        ),
        (
            "---\nworking_dir: \" \"\n---\nx\n",
            "empty_value",
            Some(2),
            "working_dir must not be empty",
        ),
        (
            "---\nid: a/b\n---\nx\n",
            "bad_id",
            Some(2),
            "id 'a/b' is not valid: use 1 to 64 of A-Z a-z 0-9 _ . - (ids become file names)",
        ),
        (
            "---\nid: ..\n---\nx\n",
            "bad_id",
            Some(2),
            "id '..' is not valid: use 1 to 64 of A-Z a-z 0-9 _ . - (ids become file names)",
        ),
        (
            "---\ntype: bug\n---\nx\n",
            "bad_type",
            Some(2),
            "type 'bug' is not one of fix, code_review, analyze, summarize",
        ),
        (
            "---\ncreated: yesterday\n---\nx\n",
            "bad_created",
            Some(2),
            "created 'yesterday' is not an RFC 3339 timestamp",
        ),
        (
            "---\ncreated: 2026-11-25\n---\nx\n",
            "bad_created",
            Some(2),
            "created '2026-11-25' is not an RFC 3339 timestamp",
        ),
        (
            "---\ntimeout_sec: 0\n---\nx\n",
            "bad_number",
            Some(2),
            "timeout_sec '0' is not a whole number of seconds greater than 0",
        ),
        (
            "---\ntimeout_sec: 1.5\n---\nx\n",
            "bad_number",
            Some(2),
            "timeout_sec '1.5' is not a whole number of seconds greater than 0",
        ),
        (
            "---\nmax_turns: 0\n---\nx\n",
            "bad_number",
            Some(2),
            "max_turns '0' is not a whole number greater than 0",
        ),
        (
            "---\nmax_turns: 99999999999\n---\nx\n",
            "bad_number",
            Some(2),
            "max_turns '99999999999' is not a whole number greater than 0",
        ),
        (
            "---\nretries: -1\n---\nx\n",
            "bad_number",
            Some(2),
            "retries '-1' is not a whole number (0 or more)",
        ),
        (
            "---\nresume_on_retry: 2\n---\nx\n",
            "bad_bool",
            Some(2),
            "resume_on_retry '2' is not true or false",
        ),
        (
            "---\nrequires: {a: 1}\n---\nx\n",
            "bad_list",
            Some(2),
            "requires must be a list of labels, not a mapping",
        ),
        (
            "---\nrequires: [[a]]\n---\nx\n",
            "bad_list",
            Some(2),
            "requires must be a list of labels, not a list inside the list",
        ),
        (
            "---\nrequires: [a, ~]\n---\nx\n",
            "empty_value",
            Some(2),
            "requires must not be empty",
        ),
        (
            "---\nid: a\nid: b\n---\nx\n",
            "duplicate_key",
            Some(3),
            "the key 'id' appears twice",
        ),
        (
            "---\n[a]: 1\n---\nx\n",
            "bad_key",
            Some(2),
            "a key must be a plain name, not a list",
        ),
        (
            "---\n- a\n---\nx\n",
            "front_matter_not_mapping",
            Some(2),
            "the front matter must be a mapping of `key: value` lines, not a list",
        ),
        (
            "---\njust text\n---\nx\n",
            "front_matter_not_mapping",
            Some(2),
            "the front matter must be a mapping of `key: value` lines, not a single value",
        ),
        (
            "---\nid: x\n---\n# Title only\n",
            "empty_prompt",
            None,
            "the prompt is empty",
        ),
        (
            "# T\n\n**Prompt:**\n\n**Context:** c\n",
            "empty_prompt",
            Some(3),
            "the prompt is empty",
        ),
    ];
    for (text, kind, line, msg) in cases {
        let e = err_of(text);
        assert_eq!(
            (e.kind_name(), e.line, e.message().as_str()),
            (*kind, *line, *msg),
            "for {text:?}"
        );
        assert!(!e.hint().is_empty());
    }
}

#[test]
fn yaml_syntax_and_limits() {
    let e = err_of("---\na: [1\n---\nx\n");
    assert_eq!(e.kind_name(), "yaml_syntax");
    assert_eq!(e.line, Some(2));
    let deep = format!("---\nx-a: {}\n---\nx\n", "[".repeat(10_000));
    let e = err_of(&deep);
    assert_eq!(e.kind_name(), "yaml_limit", "{e}");
    let aliases: String = (0..200).map(|i| format!("x-{i}: *a\n")).collect();
    let e = err_of(&format!("---\nx-base: &a [1, 2, 3]\n{aliases}---\nx\n"));
    assert_eq!(e.kind_name(), "yaml_limit", "{e}");
}

#[test]
fn invalid_utf8_offset() {
    let e = parse_bytes(Path::new("t.task.md"), b"**Prompt:** caf\xe9\n").unwrap_err();
    assert_eq!(
        e.to_string().lines().next(),
        Some("t.task.md: invalid UTF-8 at byte 15")
    );
}

#[test]
fn defaults_and_stem_id() {
    let t = ok_of("Do the thing.\n");
    assert_eq!(t.id, "fix");
    assert_eq!(t.priority, Priority::Medium);
    assert_eq!(t.task_type, None);
    assert!(!t.resume_on_retry);
    assert_eq!(t.prompt, "Do the thing.");
    assert_eq!(
        default_id(Path::new("tasks/my task (2).task.md")),
        "my_task__2_"
    );
    assert_eq!(default_id(Path::new("tasks/notes.md")), "notes");
    assert_eq!(default_id(Path::new("tasks/.task.md")), "task");
    assert_eq!(
        default_id(Path::new(&format!("{}.task.md", "a".repeat(100)))).len(),
        64
    );
}

#[test]
fn null_values_mean_default() {
    let t = ok_of("---\nid:\ntype:\npriority: ~\nresume_on_retry:\nrequires:\n---\nx\n");
    assert_eq!(t.id, "fix");
    assert_eq!(t.task_type, None);
    assert_eq!(t.priority, Priority::Medium);
}

#[test]
fn lenient_spellings() {
    let t = ok_of("---\ntype: Code_Review\npriority: LOW\nresume_on_retry: yes\nrequires: gpu\ntimeout_sec: \"30\"\n---\nx\n");
    assert_eq!(t.task_type, Some(TaskType::CodeReview));
    assert_eq!(t.priority, Priority::Low);
    assert!(t.resume_on_retry);
    assert_eq!(t.requires, vec!["gpu"]);
    assert_eq!(t.timeout_sec, Some(30));
}

#[test]
fn norway_is_a_string() {
    let t = ok_of("---\nmodel: no\nx-country: NO\n---\nx\n");
    assert_eq!(t.model.as_deref(), Some("no"));
    assert_eq!(t.extra["x-country"], serde_json::json!("NO"));
}

#[test]
fn too_large_bytes_and_file() {
    let big = vec![b'a'; MAX_TASK_FILE_BYTES as usize + 1];
    assert_eq!(
        err_of(std::str::from_utf8(&big).unwrap()).kind_name(),
        "too_large"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.task.md");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(24 * 1024 * 1024).unwrap(); // sparse 24 MiB: never read
    let e = parse_file(&path).unwrap_err();
    assert_eq!(
        e.kind,
        TaskErrorKind::TooLarge {
            size: 24 * 1024 * 1024,
            limit: MAX_TASK_FILE_BYTES
        }
    );
}

#[test]
fn io_errors() {
    let dir = tempfile::tempdir().unwrap();
    let e = parse_file(&dir.path().join("missing.task.md")).unwrap_err();
    assert_eq!(e.kind_name(), "io");
    let e = parse_file(dir.path()).unwrap_err();
    assert_eq!(e.kind, TaskErrorKind::Io("not a regular file".into()));
}

#[cfg(unix)]
#[test]
fn fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipe.task.md");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let e = parse_file(&path).unwrap_err();
    assert_eq!(e.kind, TaskErrorKind::Io("not a regular file".into()));
}

#[cfg(unix)]
#[test]
fn a_task_file_linking_outside_the_allowed_root_is_not_read() {
    use std::os::unix::fs::symlink;
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("key");
    std::fs::write(&secret, "---\nid: stolen\n---\nthe secret\n").unwrap();
    let root = tempfile::tempdir().unwrap();
    let tasks = root.path().join("tasks");
    std::fs::create_dir(&tasks).unwrap();
    let text = "---\nid: here\n---\nDo it.\n";
    // A plain file, and a link to a file inside the root: read as usual.
    std::fs::write(tasks.join("plain.task.md"), text).unwrap();
    std::fs::write(root.path().join("elsewhere.md"), text).unwrap();
    symlink(
        root.path().join("elsewhere.md"),
        tasks.join("inside.task.md"),
    )
    .unwrap();
    for name in ["plain.task.md", "inside.task.md"] {
        let t = parse_file_within(&tasks.join(name), root.path()).unwrap();
        assert_eq!(t.prompt, "Do it.", "{name}");
    }
    // A link out of the root: refused, the target never read.
    let e = parse_file_within(&tasks.join("out.task.md"), root.path()).unwrap_err();
    assert_eq!(e.kind_name(), "io", "no such file yet: {e}");
    symlink(&secret, tasks.join("out.task.md")).unwrap();
    let e = parse_file_within(&tasks.join("out.task.md"), root.path()).unwrap_err();
    assert_eq!(e.kind_name(), "link_outside_root");
    let msg = e.to_string();
    let target = secret.canonicalize().unwrap();
    assert!(msg.contains(&target.display().to_string()), "{msg}");
    assert!(!msg.contains("the secret"), "{msg}");
    assert!(
        e.hint().contains("copy the file into tasks/"),
        "{}",
        e.hint()
    );
    assert_eq!(e.file, tasks.join("out.task.md"));
    // A link in a loop cannot be followed: refused too, saying so.
    symlink(tasks.join("loop.task.md"), tasks.join("loop.task.md")).unwrap();
    let e = parse_file_within(&tasks.join("loop.task.md"), root.path()).unwrap_err();
    assert_eq!(e.kind_name(), "path_unresolvable", "{e}");
    // `orca check` reads what the user points it at, as before.
    assert_eq!(parse_file(&tasks.join("out.task.md")).unwrap().id, "stolen");
}

#[test]
fn front_matter_must_start_on_line_one() {
    // A `---` later in the body is a horizontal rule, not front matter.
    let t = ok_of("Do it.\n\n---\n\nmore\n");
    assert_eq!(t.prompt, "Do it.\n\n---\n\nmore");
}

#[test]
fn unbalanced_fence_round_trips() {
    let t =
        ok_of("**Context:**\nctx\n\n**Prompt:**\n```\ncode without end\n**Target Files:**\n- a\n");
    assert_eq!(t.context.as_deref(), Some("ctx"));
    assert!(t.target_files.is_empty());
    let again = ok_of(&render(&t));
    assert_eq!(again, t);
}

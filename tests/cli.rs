//! Integration tests of the command line: the real `orca` binary in a temporary workspace.
//! Help, version, exit codes, create-sample, check (text and JSON), schema.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use tempfile::TempDir;

/// A temporary workspace root and a way to run `orca` in it with a clean environment.
struct Ws {
    _dir: TempDir,
    root: PathBuf,
}

impl Ws {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        Ws { _dir: dir, root }
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `orca ARGS` run in the root, with no ORCA_* / CLAUDE_* variables from the outside.
    fn orca(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orca"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.root)
            .current_dir(&self.root)
            .args(args);
        cmd
    }

    /// Output text with the root replaced by `[ROOT]`.
    fn filter(&self, s: &[u8]) -> String {
        String::from_utf8_lossy(s).replace(&self.root.display().to_string(), "[ROOT]")
    }
}

fn stdout_of(cmd: &mut Command, code: i32) -> String {
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn stderr_of(cmd: &mut Command, code: i32) -> String {
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stderr).unwrap()
}

const TYPES: [&str; 4] = ["fix", "code_review", "analyze", "summarize"];

#[test]
fn version_prints_name_and_version() {
    let ws = Ws::new();
    assert_eq!(stdout_of(&mut ws.orca(&["--version"]), 0), "orca 0.1.0\n");
}

#[test]
fn help_lists_every_command() {
    let ws = Ws::new();
    let help = stdout_of(&mut ws.orca(&["--help"]), 0);
    insta::assert_snapshot!("help", help);
    // `orca help` prints the same page.
    assert_eq!(stdout_of(&mut ws.orca(&["help"]), 0), help);
}

#[test]
fn subcommand_help_works() {
    let ws = Ws::new();
    let help = stdout_of(&mut ws.orca(&["help", "check"]), 0);
    assert!(
        help.contains("Usage: orca check [OPTIONS] <FILE>..."),
        "{help}"
    );
    let help = stdout_of(&mut ws.orca(&["submit", "--help"]), 0);
    for flag in [
        "--prompt",
        "--type",
        "--priority",
        "--target",
        "--criterion",
        "--dir",
        "--id",
    ] {
        assert!(help.contains(flag), "{flag} missing:\n{help}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let ws = Ws::new();
    let err = stderr_of(&mut ws.orca(&["bogus"]), 2);
    assert!(
        err.starts_with("error: unrecognized subcommand 'bogus'"),
        "{err}"
    );
    let err = stderr_of(&mut ws.orca(&["check"]), 2);
    assert!(
        err.starts_with("error: the following required arguments"),
        "{err}"
    );
    let err = stderr_of(&mut ws.orca(&["create-sample", "--type", "bug"]), 2);
    assert!(
        err.contains("possible values: fix, code_review, analyze, summarize"),
        "{err}"
    );
    let err = stderr_of(&mut ws.orca(&["--set", "NOEQUALS", "schema"]), 2);
    assert!(err.contains("is not NAME=VALUE"), "{err}");
    stderr_of(&mut ws.orca(&["clean"]), 2);
    stderr_of(&mut ws.orca(&["clean", "artifacts"]), 2);
    stderr_of(&mut ws.orca(&["list", "--state", "done"]), 2);
}

#[test]
fn a_root_that_is_a_file_is_a_usage_error() {
    let ws = Ws::new();
    ws.write("afile", "x");
    let err = stderr_of(&mut ws.orca(&["--root", "afile", "create-sample"]), 2);
    assert!(err.starts_with("error: the workspace root"), "{err}");
}

/// The engine commands work on an empty workspace with no daemon running.
#[test]
fn engine_commands_work_on_an_empty_workspace() {
    let ws = Ws::new();
    let ok: [&[&str]; 7] = [
        &["status"],
        &["status", "--json"],
        &["list"],
        &["tail-events", "-n", "5"],
        &["clean", "tasks"],
        &["clean", "artifacts", "--days", "3", "--dry-run"],
        &["validate-artifacts"],
    ];
    for args in ok {
        let out = ws.orca(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for args in [&["show", "a"], &["cancel", "a"], &["retry", "a"]] {
        let err = stderr_of(&mut ws.orca(args), 1);
        assert!(err.contains("no task 'a'"), "{args:?}: {err}");
    }
    let list = stdout_of(&mut ws.orca(&["list"]), 0);
    assert_eq!(list, "no tasks\n");
}

#[test]
fn schema_is_json_with_a_title() {
    let ws = Ws::new();
    let out = stdout_of(&mut ws.orca(&["schema"]), 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v.get("title").is_some(), "{out}");
    assert!(v.get("properties").is_some(), "{out}");
}

#[test]
fn create_sample_writes_a_task_that_check_accepts() {
    let ws = Ws::new();
    for t in TYPES {
        let path = stdout_of(&mut ws.orca(&["create-sample", "--type", t]), 0);
        let path = path.trim_end();
        assert_eq!(path, format!("tasks/sample_{t}.task.md"));
        let text = std::fs::read_to_string(ws.root.join(path)).unwrap();
        assert!(text.contains(&format!("type: {t} ")), "{text}");
        let out = stdout_of(&mut ws.orca(&["check", path]), 0);
        let type_line = out.lines().find(|l| l.starts_with("  type:")).unwrap();
        assert_eq!(type_line.split_whitespace().nth(1), Some(t), "{out}");
        assert!(out.contains("  success criteria: 2\n"), "{out}");
    }
    // Only the four samples: no temp file is left in tasks/.
    let mut names: Vec<_> = std::fs::read_dir(ws.root.join("tasks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "sample_analyze.task.md",
            "sample_code_review.task.md",
            "sample_fix.task.md",
            "sample_summarize.task.md"
        ]
    );
}

#[test]
fn create_sample_never_overwrites() {
    let ws = Ws::new();
    let first = stdout_of(&mut ws.orca(&["create-sample"]), 0);
    std::fs::write(ws.root.join(first.trim_end()), "edited by the user").unwrap();
    let second = stdout_of(&mut ws.orca(&["create-sample", "--priority", "high"]), 0);
    assert_eq!(first, "tasks/sample_fix.task.md\n");
    assert_eq!(second, "tasks/sample_fix-2.task.md\n");
    assert_eq!(
        std::fs::read_to_string(ws.root.join("tasks/sample_fix.task.md")).unwrap(),
        "edited by the user"
    );
    let text = std::fs::read_to_string(ws.root.join("tasks/sample_fix-2.task.md")).unwrap();
    assert!(text.contains("priority: high "), "{text}");
}

#[test]
fn create_sample_with_root_prints_an_absolute_path() {
    let ws = Ws::new();
    let other = tempfile::tempdir().unwrap();
    let other_root = other.path().canonicalize().unwrap();
    let out = stdout_of(
        &mut ws.orca(&[
            "--root",
            other_root.to_str().unwrap(),
            "create-sample",
            "-t",
            "analyze",
        ]),
        0,
    );
    assert_eq!(
        PathBuf::from(out.trim_end()),
        other_root.join("tasks/sample_analyze.task.md")
    );
    // ORCA_ROOT works the same way.
    let out = stdout_of(ws.orca(&["create-sample"]).env("ORCA_ROOT", &other_root), 0);
    assert_eq!(
        PathBuf::from(out.trim_end()),
        other_root.join("tasks/sample_fix.task.md")
    );
}

const GOOD: &str = "---
id: fix_db_timeout
type: fix
priority: high
created: 2026-11-25T10:30:00Z
working_dir: backend
timeout_sec: 600
max_turns: 20
retries: 1
model: sonnet
resume_on_retry: true
requires: [repo-a]
---

# Fix the database connection timeout

**Target Files:**
- src/db.py

**Prompt:**
The pool times out under load; find out why and fix it.

**Success Criteria:**
- [ ] Pool no longer times out with 50 clients
- [x] Tests pass

**Context:**
Started after the upgrade to PostgreSQL 16.
";

const MINIMAL: &str = "Summarize the changes of last week.\n";

/// Bad task files: name and text. Each names a line in its error.
const BAD: [(&str, &str); 4] = [
    (
        "typo_key.task.md",
        "---\npriorty: high\n---\n\n**Prompt:**\nDo it.\n",
    ),
    (
        "bad_priority.task.md",
        "---\ntype: fix\npriority: urgent\n---\n\n**Prompt:**\nDo it.\n",
    ),
    (
        "bad_type.task.md",
        "---\ntype: bugfix\n---\n\n**Prompt:**\nDo it.\n",
    ),
    (
        "bad_timeout.task.md",
        "---\n\ntimeout_sec: soon\n---\n\n**Prompt:**\nDo it.\n",
    ),
];

#[test]
fn check_prints_what_orca_understood() {
    let ws = Ws::new();
    ws.write("tasks/fix.task.md", GOOD);
    ws.write("tasks/minimal.task.md", MINIMAL);
    let out = stdout_of(
        &mut ws.orca(&["check", "tasks/fix.task.md", "tasks/minimal.task.md"]),
        0,
    );
    insta::assert_snapshot!("check_good", ws.filter(out.as_bytes()));
}

#[test]
fn check_reports_every_bad_file_with_its_line() {
    let ws = Ws::new();
    let mut args = vec!["check".to_string()];
    for (name, text) in BAD {
        ws.write(&format!("tasks/{name}"), text);
        args.push(format!("tasks/{name}"));
    }
    ws.write("tasks/good.task.md", GOOD);
    args.push("tasks/good.task.md".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = stdout_of(&mut ws.orca(&args), 1);
    for (name, _) in BAD {
        let prefix = format!("tasks/{name}:");
        let line = out
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("{name} not reported:\n{out}"));
        let after = &line[prefix.len()..];
        let num: String = after.chars().take_while(char::is_ascii_digit).collect();
        assert!(!num.is_empty(), "no line number for {name}: {line}");
    }
    assert!(out.contains("tasks/good.task.md: ok"), "{out}");
    assert!(
        out.ends_with("5 files checked: 1 ok, 4 with errors\n"),
        "{out}"
    );
    insta::assert_snapshot!("check_bad", ws.filter(out.as_bytes()));
}

#[test]
fn check_refuses_paths_outside_the_allowed_root() {
    let ws = Ws::new();
    ws.write(
        "tasks/escape.task.md",
        "---\nworking_dir: ../../elsewhere\n---\n\n**Prompt:**\nDo it.\n",
    );
    let out = stdout_of(&mut ws.orca(&["check", "tasks/escape.task.md"]), 1);
    assert!(out.starts_with("tasks/escape.task.md"), "{out}");
    assert!(out.contains("hint: "), "{out}");
}

#[test]
fn check_of_a_missing_file_fails() {
    let ws = Ws::new();
    let out = stdout_of(&mut ws.orca(&["check", "nope.task.md"]), 1);
    assert!(out.starts_with("nope.task.md: "), "{out}");
    assert!(out.contains("\nhint: "), "{out}");
}

#[test]
fn check_with_an_invalid_configuration_exits_2() {
    let ws = Ws::new();
    ws.write("tasks/fix.task.md", GOOD);
    let err = stderr_of(
        &mut ws.orca(&[
            "--set",
            "MAX_CONCURRENT_TASKS=many",
            "check",
            "tasks/fix.task.md",
        ]),
        2,
    );
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("MAX_CONCURRENT_TASKS"), "{err}");
    // A --set before the command still counts when another follows it.
    let err = stderr_of(
        &mut ws.orca(&[
            "--set",
            "MAX_CONCURRENT_TASKS=many",
            "check",
            "--set",
            "CLAUDE_TIMEOUT_SEC=5",
            "tasks/fix.task.md",
        ]),
        2,
    );
    assert!(err.contains("MAX_CONCURRENT_TASKS"), "{err}");
}

#[test]
fn check_uses_the_configured_base_cwd() {
    let ws = Ws::new();
    ws.write("tasks/minimal.task.md", MINIMAL);
    std::fs::create_dir_all(ws.root.join("repo")).unwrap();
    let out = stdout_of(
        &mut ws.orca(&[
            "check",
            "--json",
            "--set",
            "CLAUDE_BASE_CWD=repo",
            "tasks/minimal.task.md",
        ]),
        0,
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        Path::new(v[0]["task"]["working_dir"].as_str().unwrap()),
        ws.root.join("repo")
    );
    // From .env as well, and a working_dir that leaves CLAUDE_ALLOWED_ROOT is refused.
    ws.write(".env", "CLAUDE_BASE_CWD=repo\n");
    ws.write(
        "tasks/up.task.md",
        "---\nworking_dir: ..\n---\n\n**Prompt:**\nDo it.\n",
    );
    let out = stdout_of(&mut ws.orca(&["check", "tasks/up.task.md"]), 1);
    assert!(out.starts_with("tasks/up.task.md:2: "), "{out}");
}

#[test]
fn check_json_has_a_stable_shape() {
    let ws = Ws::new();
    ws.write("tasks/fix.task.md", GOOD);
    let (bad_name, bad_text) = BAD[1];
    ws.write(&format!("tasks/{bad_name}"), bad_text);
    let bad = format!("tasks/{bad_name}");
    let out = stdout_of(
        &mut ws.orca(&["check", "--json", "tasks/fix.task.md", &bad]),
        1,
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 2);

    let good = &arr[0];
    assert_eq!(good["file"], "tasks/fix.task.md");
    assert_eq!(good["ok"], true);
    assert!(good.get("error").is_none());
    let task = &good["task"];
    assert_eq!(task["id"], "fix_db_timeout");
    assert_eq!(task["type"], "fix");
    assert_eq!(task["priority"], "high");
    assert_eq!(task["title"], "Fix the database connection timeout");
    assert_eq!(
        Path::new(task["working_dir"].as_str().unwrap()),
        ws.root.join("backend")
    );
    assert_eq!(
        Path::new(task["target_files"][0].as_str().unwrap()),
        ws.root.join("backend/src/db.py")
    );
    assert_eq!(task["success_criteria"].as_array().unwrap().len(), 2);
    assert_eq!(task["success_criteria"][1]["checked"], true);
    assert_eq!(task["timeout_sec"], 600);
    assert_eq!(task["requires"][0], "repo-a");
    let keys: Vec<&str> = task
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    insta::assert_snapshot!("check_json_task_keys", keys.join("\n"));

    let bad_entry = &arr[1];
    assert_eq!(bad_entry["file"], bad.as_str());
    assert_eq!(bad_entry["ok"], false);
    assert!(bad_entry.get("task").is_none());
    let error = &bad_entry["error"];
    for key in ["kind", "message", "hint"] {
        assert!(error[key].is_string(), "{key}: {error}");
    }
    assert_eq!(error["line"], 3);
}

#[test]
fn check_json_of_a_routed_task_has_null_type() {
    let ws = Ws::new();
    ws.write("tasks/minimal.task.md", MINIMAL);
    let out = stdout_of(
        &mut ws.orca(&["check", "--json", "tasks/minimal.task.md"]),
        0,
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["task"]["id"], "minimal");
    assert!(v[0]["task"]["type"].is_null());
    assert_eq!(v[0]["task"]["priority"], "medium");
    assert_eq!(
        Path::new(v[0]["task"]["working_dir"].as_str().unwrap()),
        ws.root
    );
}

/// The bad examples of the task format's own test data, when present.
#[test]
fn check_rejects_every_bad_example_of_the_task_format() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tasks/bad");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let ws = Ws::new();
    for entry in entries {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".task.md") {
            continue;
        }
        let out = stdout_of(&mut ws.orca(&["check", path.to_str().unwrap()]), 1);
        assert!(out.starts_with(&format!("{}:", path.display())), "{out}");
        assert!(out.contains("\nhint: "), "{out}");
    }
}

#[test]
fn completions_name_the_commands() {
    let ws = Ws::new();
    let out = stdout_of(&mut ws.orca(&["completions", "bash"]), 0);
    assert!(out.contains("create-sample"), "{out}");
    assert!(out.contains("validate-artifacts"), "{out}");
    stderr_of(&mut ws.orca(&["completions", "tcsh"]), 2);
    // Hidden from the help page.
    let help = stdout_of(&mut ws.orca(&["--help"]), 0);
    assert!(!help.contains("completions"), "{help}");
}

#[test]
fn doctor_gets_the_root_and_the_set_flags() {
    let ws = Ws::new();
    let out = ws
        .orca(&["--set", "MAX_CONCURRENT_TASKS=7", "doctor"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("MAX_CONCURRENT_TASKS"))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(line.split_whitespace().nth(1), Some("7"), "{text}");
    assert!(text.contains(&ws.root.display().to_string()), "{text}");
    // An invalid value is a configuration error: exit 2.
    let out = ws
        .orca(&["doctor", "--set", "MAX_CONCURRENT_TASKS=x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

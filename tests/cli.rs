//! Integration tests of the command line: the real `orca` binary in a temporary workspace.
//! Help, version, exit codes, create-sample, check (text and JSON), schema.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use tempfile::TempDir;

mod common;

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
    // A workspace: it has tasks/ (a plain folder is refused by the read-only commands).
    std::fs::create_dir_all(ws.root.join("tasks")).unwrap();
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
    // Listed on the help page, with the man page.
    let help = stdout_of(&mut ws.orca(&["--help"]), 0);
    assert!(help.contains("\n  completions "), "{help}");
    assert!(help.contains("\n  man "), "{help}");
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

// ---------------------------------------------------------------------------------------
// The man page, closed pipes, non-workspaces, submit / pending / cancel, clean, escapes.

#[test]
fn man_prints_a_man_page() {
    let ws = Ws::new();
    let out = stdout_of(&mut ws.orca(&["man"]), 0);
    let head: Vec<&str> = out.lines().take(6).collect();
    insta::assert_snapshot!("man_header", head.join("\n"));
    for command in ["submit", "tail\\-events", "completions", "man"] {
        assert!(out.contains(command), "{command} missing:\n{out}");
    }
}

/// Runs `orca ARGS` with its stdout a pipe whose reading end is already closed.
fn into_closed_pipe(ws: &Ws, args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    std::process::Command::new(env!("CARGO_BIN_EXE_orca"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &ws.root)
        .current_dir(&ws.root)
        .args(args)
        .stdout(std::process::Stdio::from(writer))
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let ws = Ws::new();
    ws.write("tasks/fix.task.md", GOOD);
    let ok: [&[&str]; 12] = [
        &["completions", "bash"],
        &["man"],
        &["schema"],
        &["--help"],
        &["--version"],
        &["check", "tasks/fix.task.md"],
        &["status"],
        &["status", "--json"],
        &["list"],
        &["list", "--json"],
        &["show", "fix_db_timeout"],
        &["tail-events"],
    ];
    for args in ok {
        let out = into_closed_pipe(&ws, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
    // Doctor keeps its verdict (1: no agent here) and prints nothing on stderr.
    let out = into_closed_pipe(&ws, &["doctor"]);
    assert_ne!(out.status.code(), Some(101));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn read_only_commands_on_a_plain_folder_create_nothing() {
    let ws = Ws::new();
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["list"],
        &["show", "a"],
        &["tail-events"],
        &["tail-events", "--follow"],
    ] {
        let err = stderr_of(&mut ws.orca(args), 2);
        assert!(
            err.contains("is not an Orca workspace") && err.contains("nothing was created"),
            "{args:?}: {err}"
        );
    }
    let out = ws.orca(&["doctor"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("is not an Orca workspace yet"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let left: Vec<_> = std::fs::read_dir(&ws.root).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn run_prints_what_doctor_would_fail_and_keeps_running() {
    let mut ws = common::Ws::new();
    ws.set_env(&[("CLAUDE_BIN", "/nonexistent/claude")]);
    ws.start();
    ws.drop_task("t.task.md", &common::task("t", "medium", "noop"));
    let r = ws.wait_result("t");
    assert_eq!(r["error"]["kind"], "agent_missing", "{r:#}");
    ws.stop();
    let out = ws.daemon_output();
    let block: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("orca: "))
        .take(3)
        .collect();
    assert!(
        block[0].contains("problem(s) found at start") && block[0].contains("running anyway"),
        "{out}"
    );
    assert!(
        block[1].contains("CLAUDE_BIN: /nonexistent/claude does not exist"),
        "{out}"
    );
    assert!(block[2].contains("fix: install it"), "{out}");
}

const ESCAPES: &str =
    "---\nid: esc\n---\n\n# Pwn \x1b]0;pwned\x07 and \x1b[2J here\n\n**Prompt:**\nDo it.\n";

fn assert_escaped(text: &str) {
    assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
    assert!(
        text.contains("Pwn \\x1b]0;pwned\\x07 and \\x1b[2J here"),
        "{text}"
    );
}

/// Control characters in a title reach the terminal escaped: pending, then in the store.
#[test]
fn list_and_show_escape_control_characters() {
    let ws = Ws::new();
    ws.write("tasks/esc.task.md", ESCAPES);
    assert_escaped(&stdout_of(&mut ws.orca(&["list"]), 0));
    assert_escaped(&stdout_of(&mut ws.orca(&["show", "esc"]), 0));
    // Cancelled while pending: now a store record, shown the same way.
    stdout_of(&mut ws.orca(&["cancel", "esc"]), 0);
    let list = stdout_of(&mut ws.orca(&["list"]), 0);
    assert!(list.contains("cancelled"), "{list}");
    assert_escaped(&list);
    assert_escaped(&stdout_of(&mut ws.orca(&["show", "esc"]), 0));
    // JSON keeps the text as it is (JSON escapes it).
    let v: serde_json::Value =
        serde_json::from_str(&stdout_of(&mut ws.orca(&["show", "esc", "--json"]), 0)).unwrap();
    assert_eq!(v["title"], "Pwn \x1b]0;pwned\x07 and \x1b[2J here");
}

#[test]
fn a_submitted_task_is_pending_at_once_and_can_be_cancelled_without_a_daemon() {
    let ws = Ws::new();
    let out = ws
        .orca(&["submit", "-p", "Write the notes", "--id", "notes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "notes\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no daemon is running") && err.contains("`orca run`"),
        "{err}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&stdout_of(&mut ws.orca(&["list", "--json"]), 0)).unwrap();
    assert_eq!(v[0]["id"], "notes");
    assert_eq!(v[0]["state"], "pending");
    assert_eq!(v[0]["source"], "cli");
    let v: serde_json::Value = serde_json::from_str(&stdout_of(
        &mut ws.orca(&["list", "--state", "pending", "--json"]),
        0,
    ))
    .unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    let show = stdout_of(&mut ws.orca(&["show", "notes"]), 0);
    assert!(show.contains("state      pending"), "{show}");
    assert!(show.contains("no daemon is running"), "{show}");
    // `clean tasks` leaves a task that has not run.
    let clean = stdout_of(&mut ws.orca(&["clean", "tasks"]), 0);
    assert!(clean.contains("archived 0 "), "{clean}");
    assert!(ws.root.join("tasks/notes.task.md").is_file());
    // Cancel: the file goes to tasks/processed/ with a cancelled result.
    let out = stdout_of(&mut ws.orca(&["cancel", "notes"]), 0);
    assert!(out.starts_with("cancelled notes"), "{out}");
    assert!(!ws.root.join("tasks/notes.task.md").exists());
    assert!(ws.root.join("tasks/processed/notes.task.md").is_file());
    let result: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ws.root.join("results/notes_result.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(result["status"], "cancelled");
    assert_eq!(result["attempts"], 0);
    let v: serde_json::Value =
        serde_json::from_str(&stdout_of(&mut ws.orca(&["show", "notes", "--json"]), 0)).unwrap();
    assert_eq!(v["state"], "cancelled");
    // Once more: already finished.
    let err = stderr_of(&mut ws.orca(&["cancel", "notes"]), 1);
    assert!(err.contains("already finished"), "{err}");
}

/// A daemon takes a pending task; cancelling it then works on the store's record, and the
/// agent never starts.
#[test]
fn cancel_of_a_task_submitted_while_the_daemon_is_busy() {
    let mut ws = common::Ws::new();
    ws.set_env(&[("MAX_CONCURRENT_TASKS", "1")]);
    ws.start();
    ws.drop_task("busy.task.md", &common::task("busy", "high", "hang"));
    ws.wait_for(
        || ws.events_named("claude_started").len() == 1,
        "busy started",
    );
    let out = ws.run(&["submit", "-p", "later", "--id", "later"]);
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("no daemon"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ws.run(&["cancel", "later"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = ws.wait_result("later");
    assert_eq!(r["status"], "cancelled");
    assert_eq!(r["attempts"], 0);
    ws.run(&["cancel", "busy"]);
    ws.wait_result("busy");
}

/// `clean tasks` archives the file of a finished task only, never a pending one.
#[test]
fn clean_tasks_archives_only_finished_tasks() {
    let ws = Ws::new();
    ws.write("tasks/done.task.md", MINIMAL);
    ws.write("tasks/waiting.task.md", MINIMAL);
    // `done` is cancelled while tasks/processed/ cannot be made (a file is in its place):
    // its record is final, its file stays in tasks/.
    ws.write("tasks/processed", "in the way");
    let out = ws.orca(&["cancel", "done"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("could not be written yet"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ws.root.join("tasks/done.task.md").is_file());
    std::fs::remove_file(ws.root.join("tasks/processed")).unwrap();
    let out = stdout_of(&mut ws.orca(&["clean", "tasks"]), 0);
    assert!(
        out.contains("tasks/done.task.md -> tasks/processed/done.task.md"),
        "{out}"
    );
    assert!(out.contains("archived 1 finished task file(s)"), "{out}");
    assert!(out.contains("kept 1 task file(s)"), "{out}");
    assert!(ws.root.join("tasks/waiting.task.md").is_file(), "{out}");
    assert!(ws.root.join("tasks/processed/done.task.md").is_file());
    assert!(!ws.root.join("tasks/processed/waiting.task.md").exists());
}

/// 5 submitters x 50 tasks at once: every submit succeeds with its own id.
#[test]
fn parallel_submits_get_distinct_ids() {
    let ws = Ws::new();
    std::fs::create_dir_all(ws.root.join("tasks")).unwrap();
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..5)
            .map(|_| {
                s.spawn(|| {
                    (0..50)
                        .map(|_| {
                            let out = ws.orca(&["submit", "-p", "parallel"]).output().unwrap();
                            assert_eq!(
                                out.status.code(),
                                Some(0),
                                "{}",
                                String::from_utf8_lossy(&out.stderr)
                            );
                            String::from_utf8(out.stdout).unwrap().trim().to_string()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 250);
    let files = std::fs::read_dir(ws.root.join("tasks")).unwrap().count();
    assert_eq!(files, 250);
    // The same id asked for by many at once: each gets its own suffix.
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..5)
            .map(|_| {
                s.spawn(|| {
                    (0..10)
                        .map(|_| {
                            let out = ws
                                .orca(&["submit", "-p", "same", "--id", "same"])
                                .output()
                                .unwrap();
                            assert_eq!(out.status.code(), Some(0));
                            String::from_utf8(out.stdout).unwrap().trim().to_string()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 50, "{ids:?}");
}

/// A queued task that requires a label no node offers says why it waits.
#[test]
fn show_and_status_say_why_a_task_waits_for_labels() {
    let mut ws = common::Ws::new();
    ws.start();
    ws.drop_task(
        "gpu.task.md",
        "---\nid: gpu\nrequires: [gpu]\n---\n\n**Prompt:**\nDo it.\n",
    );
    ws.wait_for(
        || {
            ws.events_named("queued")
                .iter()
                .any(|e| e["task_id"] == "gpu")
        },
        "gpu queued",
    );
    let show = String::from_utf8_lossy(&ws.run(&["show", "gpu"]).stdout).into_owned();
    assert!(
        show.contains("waits      requires label(s) gpu that no node offers"),
        "{show}"
    );
    let status = String::from_utf8_lossy(&ws.run(&["status"]).stdout).into_owned();
    assert!(status.contains("require labels no node offers"), "{status}");
    assert!(status.contains("gpu"), "{status}");
    let v: serde_json::Value =
        serde_json::from_slice(&ws.run(&["status", "--json"]).stdout).unwrap();
    assert_eq!(v["blocked"][0]["id"], "gpu");
    assert_eq!(v["blocked"][0]["missing"][0], "gpu");
    let v: serde_json::Value =
        serde_json::from_slice(&ws.run(&["show", "gpu", "--json"]).stdout).unwrap();
    assert!(v["waiting_for"]
        .as_str()
        .unwrap()
        .contains("ORCA_NODE_LABELS"));
}

/// `status` shows the running daemon's settings (it publishes them in the store), not the
/// shell's: here the shell says 1 task at once and another agent, the daemon runs with 4.
#[test]
fn status_shows_the_running_daemons_settings() {
    let mut ws = common::Ws::new().with_env([("MAX_CONCURRENT_TASKS", "4")]);
    ws.start();
    let out = ws
        .cmd()
        .args(["status", "--json"])
        .env("MAX_CONCURRENT_TASKS", "1")
        .env("CLAUDE_BIN", "/elsewhere/claude")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["max_concurrent_tasks"], 4, "{v}");
    assert_eq!(v["agent"]["bin"], common::fake_agent(), "{v}");
    assert_eq!(v["settings_from"], "daemon", "{v}");
    let text = ws
        .cmd()
        .arg("status")
        .env("MAX_CONCURRENT_TASKS", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.contains("at most 4 at once; settings of the running daemon"),
        "{text}"
    );
    ws.stop();
    // No daemon: the shell's settings, and it says so.
    let out = ws
        .cmd()
        .args(["status", "--json"])
        .env("MAX_CONCURRENT_TASKS", "1")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["max_concurrent_tasks"], 1, "{v}");
    assert_eq!(v["settings_from"], "this shell", "{v}");
}

/// A database URL of a backend orca does not have (MySQL) is refused with exit 2 by `run`
/// and the commands on the store alike: the message names the setting, its value with the
/// password redacted, and the forms that work; nothing is created.
#[test]
fn an_unknown_database_url_is_refused_by_every_command() {
    let ws = Ws::new();
    std::fs::create_dir_all(ws.root.join("tasks")).unwrap();
    for args in [&["run"][..], &["list"], &["status"], &["submit", "-p", "x"]] {
        let err = stderr_of(
            ws.orca(args)
                .env("ORCA_DATABASE_URL", "mysql://u:PW@db/orca")
                .env("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
            2,
        );
        assert!(
            err.contains("ORCA_DATABASE_URL")
                && err.contains("mysql://u:<redacted>@db/orca")
                && err.contains("sqlite:"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("PW@"), "{err}");
    }
    assert!(!ws.root.join("tasks").read_dir().unwrap().any(|_| true));
    assert!(!ws.root.join(".orca").exists());
}

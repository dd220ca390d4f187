//! Integration tests of the artifacts layer through the library API, in a temporary
//! workspace: write + validate round trip, refusal of invalid results, archive, clean; and
//! through the real daemon: out-of-range agent values, secrets the agent echoes, and the
//! modes of what Orca writes.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use orca::artifacts::result::{ResultStatus, SourceKind, TaskResult, TaskSource};
use orca::artifacts::{
    archive, clean_artifacts, clean_tasks, render_report, unique_stem_free, validate_dir,
    write_result, write_summary, ArchiveDest, ArtifactError,
};
use orca::task::{TaskError, TaskErrorKind};
use orca::workspace::Workspace;

fn workspace() -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::new(dir.path());
    ws.create_all().unwrap();
    (dir, ws)
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn set_age(path: &Path, days: u64) {
    let t = SystemTime::now() - Duration::from_secs(days * 86_400 + 60);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[test]
fn written_results_pass_validate_dir() {
    let (_d, ws) = workspace();
    write_result(&ws, "good", &TaskResult::example()).unwrap();
    // A rejected result for a file whose bytes were not UTF-8 is still a valid result.
    let err = TaskError {
        file: "tasks/latin1.task.md".into(),
        line: None,
        kind: TaskErrorKind::Other("invalid UTF-8 at byte 17".into()),
    };
    let rejected = TaskResult::rejected(
        "tasks/latin1.task.md",
        "latin1",
        &err,
        1_764_066_600_000,
        1_764_066_600_003,
        TaskSource::new(SourceKind::File, None),
    );
    write_result(&ws, "latin1", &rejected).unwrap();
    write_summary(&ws, "latin1", &rejected).unwrap();
    let report = validate_dir(&ws.results());
    assert_eq!(report.len(), 2);
    assert!(report.iter().all(|(_, r)| r.is_ok()), "{report:?}");
    let (text, code) = render_report(&report, false);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("2 file(s) checked, 0 invalid"));
    let summary = std::fs::read_to_string(ws.summary_file("latin1")).unwrap();
    assert!(summary.contains("invalid UTF-8 at byte 17"), "{summary}");
    assert!(!unique_stem_free(&ws, "latin1"));
    assert!(unique_stem_free(&ws, "other"));

    // A hand-edited result is caught, with the pointer of the bad value.
    let path = ws.result_file("good");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["attempt_history"][0]["exit_code"] = "zero".into();
    std::fs::write(&path, v.to_string()).unwrap();
    let (text, code) = render_report(&validate_dir(&ws.results()), false);
    assert_eq!(code, 1);
    assert!(text.contains("good_result.json"), "{text}");
    assert!(text.contains("/attempt_history/0/exit_code"), "{text}");
}

#[test]
fn invalid_result_is_never_written() {
    let (_d, ws) = workspace();
    let mut r = TaskResult::example();
    r.finished_at = "not a time".into();
    let err = write_result(&ws, "bad", &r).unwrap_err();
    assert!(matches!(err, ArtifactError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("/finished_at"), "{err}");
    assert!(listing(&ws.results()).is_empty());
}

#[test]
fn unwritable_results_folder_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let ws = Workspace::new(d.path());
    // Root ignores permission bits, so make `results` a file instead of a folder.
    std::fs::write(ws.results(), "I am a file").unwrap();
    let err = write_result(&ws, "x", &TaskResult::example()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("cannot create folder"), "{msg}");
    assert!(msg.contains("results"), "{msg}");
    assert!(msg.contains("must be a folder"), "{msg}");
    assert!(msg.contains("results must be a folder"), "{msg}");
}

#[test]
fn archive_suffixes_and_is_idempotent() {
    let (_d, ws) = workspace();
    let file = ws.tasks().join("job.task.md");
    let mut dests = Vec::new();
    for i in 0..3 {
        std::fs::write(&file, format!("v{i}")).unwrap();
        dests.push(archive(&ws, &file, ArchiveDest::Rejected).unwrap().unwrap());
    }
    assert_eq!(
        listing(&ws.rejected()),
        ["job-2.task.md", "job-3.task.md", "job.task.md"]
    );
    assert_eq!(std::fs::read_to_string(&dests[2]).unwrap(), "v2");
    assert_eq!(archive(&ws, &file, ArchiveDest::Rejected).unwrap(), None);
    assert!(listing(&ws.processed()).is_empty());
}

#[test]
fn clean_tasks_archives_loose_files() {
    let (_d, ws) = workspace();
    std::fs::write(ws.tasks().join("one.task.md"), "x").unwrap();
    std::fs::write(ws.tasks().join(".editing.task.md"), "x").unwrap();
    let moved = clean_tasks(&ws).unwrap();
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].1, ws.processed().join("one.task.md"));
    assert_eq!(
        listing(&ws.tasks()),
        [".editing.task.md", "processed", "rejected"]
    );
}

#[test]
fn clean_artifacts_dry_run_then_real() {
    let (_d, ws) = workspace();
    let old_result = ws.result_file("old");
    let new_result = ws.result_file("new");
    let old_summary = ws.summary_file("old");
    let old_run = ws.run_log("old", 1);
    let old_task = ws.processed().join("old.task.md");
    let old_rejected = ws.rejected().join("bad.task.md");
    let stray = ws.results().join("README.md");
    let old_partial = ws.results().join(".x_result.json.partial");
    for p in [
        &old_result,
        &new_result,
        &old_summary,
        &old_run,
        &old_task,
        &old_rejected,
        &stray,
        &old_partial,
    ] {
        std::fs::write(p, "x").unwrap();
    }
    for p in [
        &old_result,
        &old_summary,
        &old_run,
        &old_task,
        &old_rejected,
        &stray,
        &old_partial,
    ] {
        set_age(p, 10);
    }
    set_age(&new_result, 2);

    let mut expected = vec![
        old_partial.clone(),
        old_result.clone(),
        old_summary.clone(),
        old_run.clone(),
        old_task.clone(),
        old_rejected.clone(),
    ];
    let dry = clean_artifacts(&ws, 7, true).unwrap();
    assert_eq!(dry, expected);
    assert!(
        expected.iter().all(|p| p.exists()),
        "dry run removed something"
    );

    let real = clean_artifacts(&ws, 7, false).unwrap();
    assert_eq!(real, expected);
    assert!(expected.iter().all(|p| !p.exists()));
    assert!(new_result.exists());
    assert!(stray.exists(), "files Orca did not write are left alone");

    // With a shorter horizon the 2-day-old result goes too.
    expected = vec![new_result.clone()];
    assert_eq!(clean_artifacts(&ws, 1, false).unwrap(), expected);
    assert!(clean_artifacts(&ws, u64::MAX, false).unwrap().is_empty());
}

#[test]
fn failed_result_round_trip_keeps_status() {
    let (_d, ws) = workspace();
    let mut r = TaskResult::example();
    r.status = ResultStatus::TimedOut;
    let p = write_result(&ws, "t", &r).unwrap();
    let back: TaskResult = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    assert_eq!(back.status, ResultStatus::TimedOut);
    assert_eq!(listing(&ws.results()), ["t_result.json"]);
}

#[test]
fn concurrent_archives_never_overwrite() {
    let (_d, ws) = workspace();
    let sources: Vec<_> = (0..8)
        .map(|i| {
            let dir = ws.root.join(format!("in{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            let f = dir.join("same.task.md");
            std::fs::write(&f, format!("{i}")).unwrap();
            f
        })
        .collect();
    let handles: Vec<_> = sources
        .into_iter()
        .map(|f| {
            let ws = ws.clone();
            std::thread::spawn(move || archive(&ws, &f, ArchiveDest::Processed).unwrap().unwrap())
        })
        .collect();
    let mut dests: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    dests.sort();
    dests.dedup();
    assert_eq!(dests.len(), 8);
    let mut contents: Vec<String> = dests
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    contents.sort();
    assert_eq!(contents, ["0", "1", "2", "3", "4", "5", "6", "7"]);
}

#[test]
fn archive_folder_that_is_a_file_is_a_clear_error_and_keeps_the_task_file() {
    let d = tempfile::tempdir().unwrap();
    let ws = Workspace::new(d.path());
    std::fs::create_dir_all(ws.tasks()).unwrap();
    std::fs::write(ws.processed(), "I am a file").unwrap();
    let file = ws.tasks().join("job.task.md");
    std::fs::write(&file, "v1").unwrap();
    let msg = archive(&ws, &file, ArchiveDest::Processed)
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with("cannot create folder"), "{msg}");
    assert!(msg.contains("processed must be a folder"), "{msg}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "v1");
    // A missing folder is made.
    std::fs::remove_file(ws.processed()).unwrap();
    let to = archive(&ws, &file, ArchiveDest::Processed)
        .unwrap()
        .unwrap();
    assert_eq!(to, ws.processed().join("job.task.md"));
}

/// An agent speaking Claude Code's stream-json that reports a negative cost and quotes its
/// ANTHROPIC_API_KEY in its answer; with `crash-with-key` in the prompt it prints the key
/// on stderr and exits 1 without a result line. Built with rustc (std only) by the test.
const ODD_AGENT: &str = r##"
use std::io::{Read, Write};
fn main() {
    if std::env::args().any(|a| a == "--version") {
        println!("9.9.9 (Claude Code)");
        return;
    }
    let mut prompt = String::new();
    let _ = std::io::stdin().read_to_string(&mut prompt);
    let key = std::env::var("ANTHROPIC_API_KEY").unwrap_or_default();
    if prompt.contains("crash-with-key") {
        eprintln!("fatal: the API refused the request made with key {key}");
        std::process::exit(1);
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, r#"{{"type":"system","subtype":"init","session_id":"odd-1","model":"odd-model","claude_code_version":"9.9.9"}}"#);
    let _ = writeln!(out, r#"{{"type":"result","subtype":"success","is_error":false,"num_turns":2,"result":"I called the API with the key {key}.\nDone.","session_id":"odd-1","total_cost_usd":-0.25,"usage":{{"input_tokens":1}}}}"#);
}
"##;

fn build_odd_agent(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("odd_agent.rs");
    let bin = dir.join("odd-agent");
    std::fs::write(&src, ODD_AGENT).unwrap();
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc)
        .args(["--edition", "2021", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Through the daemon: a negative cost is recorded as null with a warning and the result
/// still validates with the agent's output; the API key the agent echoes (in its answer, or
/// on stderr before it dies) is in no result or summary; and everything Orca wrote is
/// private although the umask (022) would make it world-readable.
#[test]
fn odd_agent_values_secrets_and_modes_end_to_end() {
    const KEY: &str = "sk-ant-test-0123456789abcdef";
    let tools = tempfile::tempdir().unwrap();
    let agent = build_odd_agent(tools.path());
    let mut ws = common::Ws::new().with_env([
        ("CLAUDE_BIN", agent.display().to_string()),
        ("ANTHROPIC_API_KEY", KEY.to_owned()),
    ]);
    // The umask of this test (and of the daemon it starts) lets others read new files.
    let probe = ws.path().join("probe");
    std::fs::write(&probe, "x").unwrap();
    assert_eq!(mode(&probe), 0o644, "the test expects umask 022");

    ws.start();
    ws.drop_task(
        "odd.task.md",
        "---\nid: odd\n---\n\n# Odd\n\n**Prompt:**\nCall the API.\n",
    );
    ws.drop_task(
        "crash.task.md",
        "---\nid: crash\nretries: 0\n---\n\n# Crash\n\n**Prompt:**\ncrash-with-key\n",
    );
    let r = ws.wait_result("odd");
    let c = ws.wait_result("crash");
    ws.wait_archived("odd");
    ws.wait_archived("crash");
    ws.stop();

    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert!(r["agent"]["cost_usd"].is_null(), "{r:#}");
    assert_eq!(r["agent"]["num_turns"], 2, "{r:#}");
    assert_eq!(
        r["output"], "I called the API with the key <redacted>.\nDone.",
        "the output is kept, the key is not: {r:#}"
    );
    let text = r["summary"]["text"].as_str().unwrap();
    assert!(
        text.contains("Warning: the agent reported a cost of -0.25 USD"),
        "{text}"
    );
    assert_eq!(c["status"], "failed", "{c:#}");
    let message = c["error"]["message"].as_str().unwrap();
    assert!(message.contains("made with key <redacted>"), "{message}");

    let out = ws.run(&["validate-artifacts"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let summary = std::fs::read_to_string(ws.path().join("summaries/odd_summary.txt")).unwrap();
    assert!(summary.contains("Cost:     not reported"), "{summary}");
    assert!(
        summary.contains("Warnings:\n  - the agent reported a cost of -0.25 USD"),
        "{summary}"
    );
    assert!(summary.contains("the key <redacted>."), "{summary}");
    for stem in ["odd", "crash"] {
        for file in [
            ws.path().join(format!("results/{stem}_result.json")),
            ws.path().join(format!("summaries/{stem}_summary.txt")),
        ] {
            let written = std::fs::read_to_string(&file).unwrap();
            assert!(!written.contains(KEY), "{}: {written}", file.display());
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
    }

    for dir in ["results", "summaries", "logs", "logs/runs", ".orca"] {
        assert_eq!(mode(&ws.path().join(dir)), 0o700, "{dir}");
    }
    for file in [".orca/orca.db", "logs/orchestrator.log"] {
        assert_eq!(mode(&ws.path().join(file)), 0o600, "{file}");
    }
    for side in [".orca/orca.db-wal", ".orca/orca.db-shm"] {
        let p = ws.path().join(side);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{side}");
        }
    }
}

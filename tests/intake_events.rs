//! Integration tests of intake (watching `tasks/`) and the NDJSON event log.
//! Intake tests use real inotify in a temporary folder; event tests real files.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use orca::events::{self, names, Event, EventBus, EventKind};
use orca::intake::{self, IntakeOptions, Ready};
use tokio::sync::mpsc::UnboundedReceiver;

const WAIT: Duration = Duration::from_secs(10);

fn tasks_dir() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let tasks = root.path().join("tasks");
    std::fs::create_dir_all(&tasks).unwrap();
    (root, tasks)
}

async fn next(rx: &mut UnboundedReceiver<Ready>) -> Ready {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("no Ready within 10 s")
        .expect("intake channel closed")
}

/// Waits for `path`; returns every Ready seen before it too.
async fn wait_for(rx: &mut UnboundedReceiver<Ready>, path: &Path) -> (Ready, Vec<Ready>) {
    let mut before = Vec::new();
    loop {
        let r = next(rx).await;
        if r.path == path {
            return (r, before);
        }
        before.push(r);
    }
}

/// Everything that arrives within `d`.
async fn drain(rx: &mut UnboundedReceiver<Ready>, d: Duration) -> Vec<Ready> {
    let mut out = Vec::new();
    let end = tokio::time::Instant::now() + d;
    while let Ok(Some(r)) = tokio::time::timeout_at(end, rx.recv()).await {
        out.push(r);
    }
    out
}

fn age(path: &Path, secs: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(secs))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_then_close_is_picked_up() {
    let (_root, tasks) = tasks_dir();
    let (_h, mut rx) = intake::start(tasks.clone()).unwrap();
    let p = tasks.join("fix_db.task.md");
    std::fs::write(&p, "# Fix\n\n**Prompt:**\nDo it.\n").unwrap();
    let (r, before) = wait_for(&mut rx, &p).await;
    assert!(!r.settled);
    assert!(before.is_empty(), "unexpected: {before:?}");
    // Emitted once for one write+close.
    let more = drain(&mut rx, Duration::from_millis(300)).await;
    assert!(more.is_empty(), "duplicate emits: {more:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_in_is_picked_up() {
    let (root, tasks) = tasks_dir();
    let (_h, mut rx) = intake::start(tasks.clone()).unwrap();
    // Atomic writer inside the folder: temp name is ignored, the rename is emitted.
    let tmp = tasks.join("a.task.md.tmp");
    std::fs::write(&tmp, "prompt a").unwrap();
    let a = tasks.join("a.task.md");
    std::fs::rename(&tmp, &a).unwrap();
    let (r, before) = wait_for(&mut rx, &a).await;
    assert!(!r.settled);
    assert!(before.is_empty(), "temp file emitted: {before:?}");
    // Moved in from outside the folder.
    let outside = root.path().join("b.task.md");
    std::fs::write(&outside, "prompt b").unwrap();
    let b = tasks.join("b.task.md");
    std::fs::rename(&outside, &b).unwrap();
    let (_, before) = wait_for(&mut rx, &b).await;
    assert!(before.is_empty(), "unexpected: {before:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_temporary_and_other_names_are_ignored() {
    let (_root, tasks) = tasks_dir();
    let opts = IntakeOptions {
        rescan_interval: Duration::from_millis(100),
        ..IntakeOptions::default()
    };
    let (_h, mut rx) = intake::start_with(tasks.clone(), opts).unwrap();
    for name in [
        ".hidden.task.md",
        "x.task.md.tmp",
        "y.task.md~",
        "z.task.md.swp",
        "w.task.md.part",
        "notes.md",
        "readme.txt",
    ] {
        std::fs::write(tasks.join(name), "ignored").unwrap();
    }
    let marker = tasks.join("marker.task.md");
    std::fs::write(&marker, "x").unwrap();
    let (_, before) = wait_for(&mut rx, &marker).await;
    assert!(before.is_empty(), "ignored names emitted: {before:?}");
    // Several periodic rescans later, only the marker ever shows up.
    let later = drain(&mut rx, Duration::from_millis(500)).await;
    assert!(!later.is_empty(), "periodic rescan emitted nothing");
    assert!(later.iter().all(|r| r.path == marker), "{later:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subfolder_files_are_ignored() {
    let (_root, tasks) = tasks_dir();
    let sub = tasks.join("processed");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(sub.join("old.task.md"), "done").unwrap();
    let opts = IntakeOptions {
        rescan_interval: Duration::from_millis(100),
        ..IntakeOptions::default()
    };
    let (_h, mut rx) = intake::start_with(tasks.clone(), opts).unwrap();
    std::fs::write(sub.join("new.task.md"), "done").unwrap();
    std::fs::create_dir(tasks.join("dir.task.md")).unwrap();
    let marker = tasks.join("marker.task.md");
    std::fs::write(&marker, "x").unwrap();
    let (_, before) = wait_for(&mut rx, &marker).await;
    assert!(before.is_empty(), "subfolder emitted: {before:?}");
    let later = drain(&mut rx, Duration::from_millis(400)).await;
    assert!(later.iter().all(|r| r.path == marker), "{later:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_scan_finds_existing_files() {
    let (_root, tasks) = tasks_dir();
    let mut want = HashSet::new();
    for i in 0..5 {
        let p = tasks.join(format!("t{i}.task.md"));
        std::fs::write(&p, "prompt").unwrap();
        age(&p, 60);
        want.insert(p);
    }
    let young = tasks.join("young.task.md");
    std::fs::write(&young, "prompt").unwrap();
    let (_h, mut rx) = intake::start(tasks.clone()).unwrap();
    let mut got = HashSet::new();
    while got.len() < 5 {
        let r = next(&mut rx).await;
        if r.path != young {
            assert!(!r.settled, "old file is emitted at once: {r:?}");
            got.insert(r.path);
        }
    }
    assert_eq!(got, want);
    // The young file is settled first, then emitted with settled = true.
    let (r, _) = wait_for(&mut rx, &young).await;
    assert!(r.settled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_written_in_two_chunks_is_emitted_after_close() {
    let (_root, tasks) = tasks_dir();
    let (_h, mut rx) = intake::start(tasks.clone()).unwrap();
    let p = tasks.join("slow.task.md");
    let full = "# Slow\n\n**Prompt:**\nfirst half / second half\n";
    let (a, b) = full.split_at(full.len() / 2);
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(a.as_bytes()).unwrap();
    f.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        rx.try_recv().is_err(),
        "emitted while still open for writing"
    );
    f.write_all(b.as_bytes()).unwrap();
    drop(f);
    let (_, before) = wait_for(&mut rx, &p).await;
    assert!(before.is_empty());
    assert_eq!(std::fs::read_to_string(&p).unwrap(), full);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_files_are_all_emitted() {
    let (_root, tasks) = tasks_dir();
    let (_h, mut rx) = intake::start(tasks.clone()).unwrap();
    let mut want = HashSet::new();
    for i in 0..2000 {
        let p = tasks.join(format!("bulk_{i:04}.task.md"));
        std::fs::write(&p, format!("prompt {i}")).unwrap();
        want.insert(p);
    }
    let mut got = HashSet::new();
    while got.len() < want.len() {
        let r = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("not all files emitted within 60 s")
            .unwrap();
        assert!(want.contains(&r.path), "unexpected {r:?}");
        got.insert(r.path);
    }
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defer_re_emits_settled() {
    let (_root, tasks) = tasks_dir();
    let (h, mut rx) = intake::start(tasks.clone()).unwrap();
    let p = tasks.join("half.task.md");
    std::fs::write(&p, "---\nid: x\n").unwrap();
    let (r, _) = wait_for(&mut rx, &p).await;
    assert!(!r.settled);
    h.defer(p.clone());
    let (r, before) = wait_for(&mut rx, &p).await;
    assert!(r.settled, "deferred file comes back settled");
    assert!(before.is_empty());
    // A deferred file that is gone is forgotten, not emitted.
    h.defer(p.clone());
    std::fs::remove_file(&p).unwrap();
    let later = drain(&mut rx, Duration::from_millis(900)).await;
    assert!(later.is_empty(), "{later:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescan_and_periodic_rescan_re_emit() {
    let (_root, tasks) = tasks_dir();
    let p = tasks.join("a.task.md");
    std::fs::write(&p, "x").unwrap();
    age(&p, 60);
    let (h, mut rx) = intake::start(tasks.clone()).unwrap();
    assert_eq!(next(&mut rx).await.path, p);
    h.rescan();
    let r = next(&mut rx).await;
    assert_eq!(r.path, p);
    assert!(!r.settled);
    drop(h);
    // Dropping the handle ends the stream.
    let end = tokio::time::timeout(WAIT, async { while rx.recv().await.is_some() {} }).await;
    assert!(
        end.is_ok(),
        "receiver did not end after the handle was dropped"
    );

    let opts = IntakeOptions {
        rescan_interval: Duration::from_millis(100),
        ..IntakeOptions::default()
    };
    let (_h, mut rx) = intake::start_with(tasks.clone(), opts).unwrap();
    for _ in 0..3 {
        assert_eq!(next(&mut rx).await.path, p);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_but_never_closed_is_emitted_settled() {
    let (root, tasks) = tasks_dir();
    let opts = IntakeOptions {
        create_quiet: Duration::from_millis(200),
        ..IntakeOptions::default()
    };
    let (_h, mut rx) = intake::start_with(tasks.clone(), opts).unwrap();
    // A hard link creates the name without any open/close in the folder.
    let outside = root.path().join("src.task.md");
    std::fs::write(&outside, "prompt").unwrap();
    let p = tasks.join("linked.task.md");
    std::fs::hard_link(&outside, &p).unwrap();
    let (r, before) = wait_for(&mut rx, &p).await;
    assert!(r.settled);
    assert!(before.is_empty());
}

#[test]
fn start_outside_a_runtime_fails_clearly() {
    let (_root, tasks) = tasks_dir();
    let err = intake::start(tasks).unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_folder_is_an_error_naming_it() {
    let root = tempfile::tempdir().unwrap();
    let missing = root.path().join("nope");
    let err = intake::start(missing.clone()).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

// ---------------------------------------------------------------- events

fn lines_of(path: &Path) -> Vec<serde_json::Value> {
    let s = std::fs::read_to_string(path).unwrap();
    assert!(s.is_empty() || s.ends_with('\n'));
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

fn all_files(path: &Path) -> Vec<PathBuf> {
    events::log_files(path)
}

/// An event of `name` carrying the number `i` (as `seq`, `criteria` or `turns`), published
/// and flushed to the log.
fn emit(log: &EventBus, name: &str, task: Option<&str>, attempt: Option<u32>, i: u64) {
    let kind = match name {
        names::QUEUED => EventKind::Queued {
            by: None,
            priority: "medium".into(),
            retry: None,
            seq: Some(i as i64),
        },
        names::PARSED => EventKind::Parsed {
            criteria: i as usize,
            priority: "medium".into(),
            targets: 0,
            title: None,
            task_type: None,
        },
        names::CLAUDE_PROGRESS => EventKind::ClaudeProgress {
            agent: "claude".into(),
            cost_usd: None,
            last_tool: Some("x".repeat(100)),
            last_tool_target: None,
            model: None,
            pid: None,
            session_id: None,
            turns: i as u32,
            updated_at: "t".into(),
        },
        other => panic!("no test event {other}"),
    };
    log.publish(Event {
        task_id: task.map(str::to_owned),
        attempt,
        kind,
    });
}

#[test]
fn event_lines_parse_with_standard_keys_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs").join("events.ndjson");
    let log = EventBus::open_log(path.clone(), 10 << 20, 5).unwrap();
    log.publish(Event::daemon(EventKind::DaemonStarted {
        max_concurrent_tasks: 1,
        node: "n".into(),
        pid: 42,
        root: "/w".into(),
        version: "0".into(),
    }));
    log.publish(Event::attempt(
        "fix_db",
        1,
        EventKind::ClaudeFinished {
            agent: "claude".into(),
            changed_files: 0,
            cost_usd: Some(0.01),
            exit_code: Some(0),
            num_turns: None,
            outcome: "succeeded".into(),
            session_id: None,
        },
    ));
    log.flush();
    let raw = std::fs::read_to_string(&path).unwrap();
    let second = raw.lines().nth(1).unwrap();
    assert!(second.starts_with("{\"ts\":\""), "{second}");
    assert!(
        second.contains("\"event\":\"claude_finished\",\"task_id\":\"fix_db\",\"attempt\":1,"),
        "{second}"
    );
    let v = lines_of(&path);
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["event"], "daemon_started");
    assert_eq!(v[0]["pid"], 42);
    assert!(v[0].get("task_id").is_none());
    assert!(v[0].get("attempt").is_none());
    assert_eq!(v[1]["task_id"], "fix_db");
    assert_eq!(v[1]["attempt"], 1);
    assert_eq!(v[1]["exit_code"], 0);
    let ts = v[1]["ts"].as_str().unwrap();
    assert_eq!(ts.len(), "2026-11-25T10:30:00.123Z".len(), "{ts}");
    assert!(ts.ends_with('Z'));
}

#[test]
fn concurrent_emits_produce_whole_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.ndjson");
    let log = EventBus::open_log(path.clone(), 1 << 30, 5).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..1000 {
                    emit(
                        &log,
                        names::CLAUDE_PROGRESS,
                        Some(&format!("task{t}")),
                        Some(1),
                        i,
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    log.flush();
    let v = lines_of(&path);
    assert_eq!(v.len(), 8000);
    let seen: HashSet<(String, u64)> = v
        .iter()
        .map(|e| {
            (
                e["task_id"].as_str().unwrap().to_owned(),
                e["turns"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen.len(), 8000);
}

#[test]
fn rotation_keeps_every_line_and_respects_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.ndjson");
    // Enough room in 50 files for everything: nothing may be lost.
    let log = EventBus::open_log(path.clone(), 4096, 50).unwrap();
    for i in 0..1000 {
        emit(&log, names::QUEUED, Some("t"), None, i);
    }
    log.flush();
    let files = all_files(&path);
    assert!(files.len() > 5, "rotation happened: {files:?}");
    let mut seen = Vec::new();
    for f in &files {
        let len = std::fs::metadata(f).unwrap().len();
        assert!(len <= 4096, "{} has {len} bytes", f.display());
        seen.extend(lines_of(f).into_iter().map(|e| e["seq"].as_u64().unwrap()));
    }
    assert_eq!(
        seen,
        (0..1000).collect::<Vec<u64>>(),
        "every line, in order"
    );
    let read = events::read_events(&path, None, None).unwrap();
    assert_eq!(read.len(), 1000);
    assert_eq!(read[0]["seq"], 0);
    assert_eq!(read[999]["seq"], 999);

    // With files = 2 only .1 and .2 are kept.
    let path2 = dir.path().join("few.ndjson");
    let log = EventBus::open_log(path2.clone(), 1024, 2).unwrap();
    for i in 0..1000 {
        emit(&log, names::QUEUED, None, None, i);
    }
    log.flush();
    assert!(events::rotated_name(&path2, 1).exists());
    assert!(events::rotated_name(&path2, 2).exists());
    assert!(!events::rotated_name(&path2, 3).exists());
    let read = events::read_events(&path2, None, None).unwrap();
    let nums: Vec<u64> = read.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(*nums.last().unwrap(), 999);
    assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "contiguous tail");
}

#[test]
fn reader_skips_torn_last_line_filters_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.ndjson");
    let log = EventBus::open_log(path.clone(), 10 << 20, 5).unwrap();
    for i in 0..10 {
        let task = if i % 2 == 0 { "even" } else { "odd" };
        emit(&log, names::PARSED, Some(task), Some(1), i);
    }
    log.flush();
    // A crash mid-line.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(b"{\"ts\":\"2026-11-25T10:3").unwrap();
    drop(f);
    let all = events::read_events(&path, None, None).unwrap();
    assert_eq!(all.len(), 10);
    let odd = events::read_events(&path, Some("odd"), None).unwrap();
    let nums: Vec<u64> = odd
        .iter()
        .map(|e| e["criteria"].as_u64().unwrap())
        .collect();
    assert_eq!(nums, vec![1, 3, 5, 7, 9]);
    let last = events::read_events(&path, Some("even"), Some(2)).unwrap();
    let nums: Vec<u64> = last
        .iter()
        .map(|e| e["criteria"].as_u64().unwrap())
        .collect();
    assert_eq!(nums, vec![6, 8]);
    let last = events::read_events(&path, None, Some(3)).unwrap();
    let nums: Vec<u64> = last
        .iter()
        .map(|e| e["criteria"].as_u64().unwrap())
        .collect();
    assert_eq!(nums, vec![7, 8, 9]);
    // A missing log is empty, not an error.
    let none = events::read_events(&dir.path().join("missing.ndjson"), None, None).unwrap();
    assert!(none.is_empty());
}

#[test]
fn follow_sees_new_events_across_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.ndjson");
    let log = EventBus::open_log(path.clone(), 2048, 5).unwrap();
    for i in 0..3 {
        emit(&log, names::QUEUED, Some("a"), None, i);
    }
    log.flush();
    let (shown, mut follow) = events::tail(&path, None, Some(2)).unwrap();
    assert_eq!(shown.events.len(), 2);
    assert!(follow.poll().unwrap().is_empty());
    // Enough events to rotate several times between two polls is not the tail -f case;
    // rotate once between polls.
    let mut got = Vec::new();
    for i in 3..200 {
        emit(&log, names::QUEUED, Some("a"), None, i);
        if i % 10 == 0 {
            log.flush();
            got.extend(follow.poll().unwrap());
        }
    }
    log.flush();
    got.extend(follow.poll().unwrap());
    assert!(events::rotated_name(&path, 1).exists(), "rotated");
    let nums: Vec<u64> = got
        .iter()
        .map(|e| e.value["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(nums, (3..200).collect::<Vec<u64>>());
    // Filtered follow.
    let mut f = events::follow(&path, Some("b"));
    emit(&log, names::QUEUED, Some("a"), None, 0);
    emit(&log, names::QUEUED, Some("b"), None, 1);
    log.flush();
    let got = f.poll().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].value["seq"], 1);
}

// ---------------------------------------------------------------- logging

/// The only test in this binary that installs the global subscriber.
#[test]
fn logging_init_writes_file_and_set_level_applies() {
    use orca::config::LogLevel;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs").join("orchestrator.log");
    let guard = orca::logging::init(path.clone(), LogLevel::Info, 1 << 20, 3).unwrap();
    tracing::info!(target: "orca::probe", "info line one");
    tracing::debug!(target: "orca::probe", "debug line hidden");
    orca::logging::set_level(LogLevel::Debug);
    tracing::debug!(target: "orca::probe", "debug line shown");
    orca::logging::set_level(LogLevel::Error);
    tracing::warn!(target: "orca::probe", "warn line hidden");
    let again = orca::logging::init(path.clone(), LogLevel::Info, 1 << 20, 3);
    assert!(matches!(
        again,
        Err(orca::logging::LoggingError::AlreadyInitialized)
    ));
    drop(guard);
    let text = std::fs::read_to_string(&path).unwrap();
    let probe: Vec<&str> = text.lines().filter(|l| l.contains("orca::probe")).collect();
    assert_eq!(probe.len(), 2, "{text}");
    assert!(probe[0].contains("INFO") && probe[0].contains("info line one"));
    assert!(probe[1].contains("DEBUG") && probe[1].contains("debug line shown"));
    assert!(!text.contains('\u{1b}'), "no ANSI escapes");
}

// ---- The daemon's intake end to end (the real `orca` binary) ----

mod common;

/// Every result file's text, by file name.
fn results_of(ws: &common::Ws) -> Vec<(String, String)> {
    ws.files_in("results")
        .into_iter()
        .map(|n| {
            let text = std::fs::read_to_string(ws.path().join("results").join(&n)).unwrap();
            (n, text)
        })
        .collect()
}

/// A task file that is a link through a folder swapped, again and again, with a link out of
/// the allowed root (`renameat2(RENAME_EXCHANGE)`): whatever the timing, no outside file is
/// ever read into a prompt. The decision is made on the opened file, not on the path.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_link_through_a_swapped_folder_never_reads_outside_the_root() {
    use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
    use std::os::unix::fs::symlink;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    const LINKS: usize = 300;
    const SECRET: &str = "OUTSIDE-SECRET";
    let mut ws = common::Ws::new();
    let root = ws.path().canonicalize().unwrap();
    ws.set_env(&[("CLAUDE_ALLOWED_ROOT", &root.display().to_string())]);
    let outside = tempfile::tempdir().unwrap();
    let out_dir = outside.path().join("d");
    let in_dir = root.join("d");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::create_dir(&in_dir).unwrap();
    for i in 0..LINKS {
        // Inside: a file that is refused (so no agent runs); outside: a valid task whose
        // prompt is the secret, taken if it were ever read.
        std::fs::write(
            in_dir.join(format!("f{i}.md")),
            "---\npriority: inside\n---\nDo it.\n",
        )
        .unwrap();
        std::fs::write(
            out_dir.join(format!("f{i}.md")),
            format!("---\nid: stolen{i}\n---\n{SECRET} {i}\n"),
        )
        .unwrap();
    }
    let swapped = root.join("d.sym");
    symlink(&out_dir, &swapped).unwrap();
    ws.start();

    // Two threads swapping: the folder changes as often as the machine allows.
    let stop = Arc::new(AtomicBool::new(false));
    let swap = |a: &std::path::Path, b: &std::path::Path| {
        renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE).unwrap();
    };
    let swappers: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            let (a, b) = (in_dir.clone(), swapped.clone());
            std::thread::spawn(move || {
                let mut swaps = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    swap(&a, &b);
                    swaps += 1;
                }
                swaps
            })
        })
        .collect();
    for i in 0..LINKS {
        symlink(
            in_dir.join(format!("f{i}.md")),
            ws.path().join(format!("tasks/l{i}.task.md")),
        )
        .unwrap();
    }
    ws.wait_for(
        || ws.files_in("results").len() >= LINKS,
        "a result for every link",
    );
    stop.store(true, Ordering::Relaxed);
    let swaps: u64 = swappers.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(swaps > 0, "the folder was swapped");
    // Leave the real folder at `d`.
    if std::fs::symlink_metadata(&in_dir).unwrap().is_symlink() {
        swap(&in_dir, &swapped);
    }

    let results = results_of(&ws);
    assert_eq!(results.len(), LINKS, "{:?}", ws.files_in("results"));
    let mut outside_refused = 0;
    for (name, text) in &results {
        assert!(
            !text.contains(SECRET),
            "{name} holds the outside file:\n{text}"
        );
        let r: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(r["status"], "rejected", "{name}: {r:#}");
        let kind = r["error"]["kind"].as_str().unwrap_or_default();
        assert!(
            kind == "bad_priority" || kind == "link_outside_root",
            "{name}: {kind}"
        );
        outside_refused += usize::from(kind == "link_outside_root");
    }
    // The store holds no task made of an outside file either.
    let list = ws.run(&["list", "--json"]);
    assert!(list.status.success());
    let tasks: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let tasks = tasks.as_array().expect("a list");
    assert_eq!(tasks.len(), LINKS);
    for t in tasks {
        let id = t["id"].as_str().unwrap();
        assert!(!id.starts_with("stolen"), "{t}");
        let show = ws.run(&["show", "--json", id]);
        assert!(show.status.success(), "show {id}");
        let text = String::from_utf8_lossy(&show.stdout);
        assert!(
            !text.contains(SECRET),
            "the store holds the outside file:\n{text}"
        );
    }
    assert!(ws.agent_starts().is_empty(), "no agent ran");
    eprintln!(
        "{swaps} swaps; {outside_refused} of {LINKS} reads found the link out and refused it"
    );
    assert_eq!(ws.stop(), Some(0));
}

/// A task file whose name is not UTF-8 is neither lost nor silent: it is renamed to its
/// escaped name (`%NN` for each such byte), taken and run; the result names it so; the
/// daemon says what it did; and `status` does not count it as waiting for ever.
#[test]
fn a_task_file_whose_name_is_not_utf8_is_taken_under_an_escaped_name() {
    use std::os::unix::ffi::OsStrExt;
    let mut ws = common::Ws::new();
    ws.start();
    let raw = std::ffi::OsStr::from_bytes(b"caf\xE9.task.md");
    std::fs::write(
        ws.path().join("tasks").join(raw),
        common::task("cafe", "medium", "noop"),
    )
    .unwrap();
    let r = ws.wait_result("caf%E9");
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(r["file"], "tasks/caf%E9.task.md", "{r:#}");
    assert_eq!(r["task_id"], "cafe", "{r:#}");
    ws.wait_archived("cafe");
    assert!(
        !ws.path().join("tasks").join(raw).exists(),
        "not left behind"
    );
    assert_eq!(ws.files_in("tasks/processed"), ["caf%E9.task.md"]);
    let said = "was not valid UTF-8: renamed it to tasks/caf%E9.task.md";
    let log = std::fs::read_to_string(ws.path().join("logs/orchestrator.log")).unwrap();
    assert!(log.contains(said), "{log}");
    assert!(ws.daemon_output().contains(said), "{}", ws.daemon_output());
    let status = ws.run(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["task_files_waiting"], 0, "{status:#}");
    assert_eq!(ws.stop(), Some(0));
}

/// A file that looks like a task but does not follow the naming rule gets one warning each,
/// in the log and on the daemon's stderr, naming the rule and the name to use; it is left
/// where it is, untouched.
#[test]
fn look_alike_task_files_get_one_warning_each_naming_the_rule() {
    let mut ws = common::Ws::new();
    // A folder is not a task, whatever its name (found by the start-up scan).
    std::fs::create_dir(ws.path().join("tasks/folder.md")).unwrap();
    ws.start();
    let looks = [
        ("fix.md", "fix.task.md"),
        ("fix.task.MD", "fix.task.md"),
        ("fix.task.md.txt", "fix.task.md"),
    ];
    for (name, _) in looks {
        ws.write_task(name, common::task("x", "medium", "noop").as_bytes());
    }
    ws.drop_task("first.task.md", &common::task("first", "medium", "noop"));
    ws.wait_archived("first");
    // Written again (events again): still one warning each.
    for (name, _) in looks {
        ws.write_task(name, common::task("x", "medium", "noop").as_bytes());
    }
    ws.drop_task("second.task.md", &common::task("second", "medium", "noop"));
    ws.wait_archived("second");
    let warning = |name: &str, to: &str| {
        format!("tasks/{name} is not taken: task files end in `.task.md`; rename it to {to}")
    };
    ws.wait_for(
        || {
            looks
                .iter()
                .all(|(n, to)| ws.daemon_output().contains(&warning(n, to)))
        },
        "a warning for each look-alike",
    );
    let out = ws.daemon_output();
    let log = std::fs::read_to_string(ws.path().join("logs/orchestrator.log")).unwrap();
    for (name, to) in looks {
        let w = warning(name, to);
        assert_eq!(out.matches(&w).count(), 1, "{name} on stderr:\n{out}");
        assert_eq!(log.matches(&w).count(), 1, "{name} in the log:\n{log}");
        assert!(
            ws.path().join("tasks").join(name).is_file(),
            "{name} left alone"
        );
    }
    assert!(!out.contains("tasks/folder.md"), "{out}");
    assert_eq!(ws.agent_starts().len(), 2, "only the two task files ran");
    assert_eq!(ws.stop(), Some(0));
}

/// A task file whose name holds a backslash (legal on Linux, a separator elsewhere) runs and
/// gets artifacts under an escaped stem; it used to wait for ever, its artifacts refused.
#[test]
fn a_task_file_with_a_backslash_in_its_name_runs_under_an_escaped_stem() {
    let mut ws = common::Ws::new();
    ws.start();
    ws.drop_task("a\\b.task.md", &common::task("slashy", "", "noop"));
    let r = ws.wait_result("a%5Cb");
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(r["file"], "tasks/a\\b.task.md", "{r:#}");
    ws.wait_archived("slashy");
    ws.stop();
}

//! The event bus (issue 16.1): a subscriber sees every event of a run in order, a
//! subscriber that never reads holds up nothing (it lags and is told), the NDJSON log is
//! the events' lossless subscriber; and `tail-events` (issue 18.4) prints human lines or,
//! with `--json`, the file's lines byte for byte.

mod common;

use common::{task, Ws};
use orca::events::{Event, EventBus, EventKind, Notice};

fn progress(task: &str, turns: u32) -> Event {
    Event::attempt(
        task,
        1,
        EventKind::ClaudeProgress {
            agent: "claude".into(),
            cost_usd: None,
            last_tool: Some("Edit".into()),
            last_tool_target: None,
            model: None,
            pid: Some(1),
            session_id: None,
            turns,
            updated_at: "t".into(),
        },
    )
}

fn log_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Four threads publish 200 events each while a subscriber reads: it sees all 800, in the
/// bus's one order, which is also the log's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_sees_every_event_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs/events.ndjson");
    let bus = EventBus::open_log(path.clone(), 1 << 30, 2).unwrap();
    let mut sub = bus.subscribe();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(n) = sub.recv().await {
            match n {
                Notice::Event(e) => got.push(e),
                Notice::Lagged { missed } => panic!("lagged by {missed}"),
            }
        }
        got
    });
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let bus = bus.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    bus.publish(progress(&format!("t{t}"), i));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    bus.flush();
    let lines = log_lines(&path);
    drop(bus); // the subscriber's stream ends
    let got = reader.await.unwrap();
    assert_eq!(got.len(), 800);
    let seqs: Vec<u64> = got.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=800).collect::<Vec<u64>>());
    // Each task's events in the order its thread published them.
    for t in 0..4 {
        let id = format!("t{t}");
        let turns: Vec<u32> = got
            .iter()
            .filter(|e| e.event.task_id.as_deref() == Some(id.as_str()))
            .map(|e| match e.event.kind {
                EventKind::ClaudeProgress { turns, .. } => turns,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(turns, (0..200).collect::<Vec<u32>>());
    }
    // The log holds the same events in the same order, line for line.
    let from_bus: Vec<String> = got.iter().map(|e| e.line().trim_end().to_owned()).collect();
    assert_eq!(lines, from_bus);
}

/// A subscriber that never reads while 30 tasks' worth of events (and a storm of progress)
/// go by: every publish returns, the log gets every line, and the subscriber is told how
/// many it missed, then reads on from the oldest still held.
#[test]
fn a_subscriber_that_never_reads_holds_up_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.ndjson");
    let bus = EventBus::open_log(path.clone(), 1 << 30, 2).unwrap();
    let mut stuck = bus.subscribe();
    assert_eq!(bus.subscribers(), 1);
    let mut published = 0u64;
    for t in 0..30 {
        let id = format!("task{t}");
        bus.publish(Event::task(
            &id,
            EventKind::TaskReceived {
                file: format!("tasks/{id}.task.md"),
                note: None,
                renamed_from: None,
                source: "file".into(),
                stem: id.clone(),
            },
        ));
        published += 1;
        for turn in 0..100 {
            bus.publish(progress(&id, turn));
            published += 1;
        }
        bus.publish(Event::attempt(
            &id,
            1,
            EventKind::TaskArchived {
                from: format!("tasks/{id}.task.md"),
                to: format!("tasks/processed/{id}.task.md"),
            },
        ));
        published += 1;
    }
    bus.flush();
    let lines = log_lines(&path);
    assert_eq!(lines.len() as u64, published, "the log lost nothing");
    for t in 0..30 {
        let archived = format!("\"event\":\"task_archived\",\"task_id\":\"task{t}\"");
        assert_eq!(lines.iter().filter(|l| l.contains(&archived)).count(), 1);
    }
    let held = orca::events::SUBSCRIBER_BACKLOG as u64;
    match stuck.try_recv().unwrap() {
        Some(Notice::Lagged { missed }) => assert_eq!(missed, published - held),
        other => panic!("expected a lag notice, got {other:?}"),
    }
    match stuck.try_recv().unwrap() {
        Some(Notice::Event(e)) => assert_eq!(e.seq, published - held + 1),
        other => panic!("expected the oldest held event, got {other:?}"),
    }
    let mut rest = 1;
    while let Ok(Some(Notice::Event(_))) = stuck.try_recv() {
        rest += 1;
    }
    assert_eq!(rest, held);
}

/// A run of 30 tasks through the real daemon: every task's events are in the log in the
/// order of its life, the agent events name the agent, and `tail-events --json` prints the
/// file's lines byte for byte (keys in the file's order, not re-sorted).
#[test]
fn a_run_logs_every_event_of_every_task_in_order() {
    let mut ws = Ws::new();
    ws.set_env(&[("MAX_CONCURRENT_TASKS", "4")]);
    ws.start();
    let ids: Vec<String> = (0..30).map(|i| format!("b{i:02}")).collect();
    for id in &ids {
        ws.drop_task(&format!("{id}.task.md"), &task(id, "medium", "noop"));
    }
    for id in &ids {
        ws.wait_archived(id);
    }
    ws.stop();
    let events = ws.events();
    let order = [
        "task_received",
        "parsed",
        "queued",
        "claude_started",
        "claude_finished",
        "validated",
        "summarized",
        "artifacts_written",
        "task_archived",
    ];
    for id in &ids {
        let mine: Vec<&serde_json::Value> = events
            .iter()
            .filter(|e| e["task_id"] == id.as_str())
            .filter(|e| e["event"] != "claude_progress")
            .collect();
        let mut names: Vec<&str> = mine.iter().map(|e| e["event"].as_str().unwrap()).collect();
        // A worker ending another task may claim this one as soon as it is queued, before
        // the intake has published its first three events (the daemon's order, not the
        // bus's): the start may come first, the rest keeps its order.
        if names.first() == Some(&"claude_started") {
            names.remove(0);
            names.insert(3, "claude_started");
        }
        assert_eq!(names, order, "{id}");
        for e in &mine {
            if e["event"].as_str().unwrap().starts_with("claude_") {
                assert_eq!(e["agent"], "claude", "{e}");
            }
        }
    }
    for e in events.iter().filter(|e| e["event"] == "claude_progress") {
        assert_eq!(e["agent"], "claude", "{e}");
    }
    let text = ws.events_text();
    let n = text.lines().count().to_string();
    let out = ws.run(&["tail-events", "--json", "-n", &n]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), text);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A log with a line torn by a full disk (the next event fused onto it) and a line of
/// garbage: `tail-events` shows every whole event as a human line, says on stderr how many
/// lines it skipped, and escapes control characters. Time stamps are filtered.
#[test]
fn tail_events_prints_human_lines_and_counts_damaged_ones() {
    let ws = Ws::new();
    let log = concat!(
        "{\"ts\":\"2026-11-25T10:30:00.123Z\",\"event\":\"daemon_started\",\"pid\":7,\"root\":\"/w\",\"node\":\"n1\",\"max_concurrent_tasks\":3,\"version\":\"0.1.0\"}\n",
        "{\"ts\":\"2026-11-25T10:30:00.200Z\",\"event\":\"task_received\",\"task_id\":\"fix_db\",\"file\":\"tasks/fix_db.task.md\",\"source\":\"file\",\"stem\":\"fix_db\"}\n",
        "{\"ts\":\"2026-11-25T10:30:00.300Z\",\"event\":\"parsed\",\"task_id\":\"fix_db\",\"criteria\":1,\"prio",
        "{\"ts\":\"2026-11-25T10:30:00.400Z\",\"event\":\"queued\",\"task_id\":\"fix_db\",\"priority\":\"high\",\"seq\":1}\n",
        "\u{0}\u{0}\u{0}\n",
        "{\"ts\":\"2026-11-25T10:30:01.000Z\",\"event\":\"claude_started\",\"task_id\":\"fix_db\",\"attempt\":1,\"agent\":\"claude\",\"bin\":\"claude\",\"resume_session\":null,\"timeout_sec\":600,\"working_dir\":\"/w/app\"}\n",
        "{\"ts\":\"2026-11-25T10:30:02.000Z\",\"event\":\"claude_progress\",\"task_id\":\"fix_db\",\"attempt\":1,\"agent\":\"claude\",\"last_tool\":\"Edit\",\"last_tool_target\":\"src/\\u001b]0;owned\\u0007db.rs\",\"turns\":2}\n",
        "{\"ts\":\"2026-11-25T10:30:09.000Z\",\"event\":\"claude_finished\",\"task_id\":\"fix_db\",\"attempt\":1,\"agent\":\"claude\",\"changed_files\":1,\"cost_usd\":0.0123,\"exit_code\":0,\"num_turns\":3,\"outcome\":\"succeeded\",\"session_id\":\"s-1\"}\n",
        "{\"ts\":\"2026-11-25T10:30:09.100Z\",\"event\":\"task_rejected\",\"task_id\":\"bad\",\"error\":\"front matter: unknown key 'prio rity'\",\"file\":\"tasks/bad.task.md\",\"hint\":null,\"kind\":\"front_matter\",\"line\":2}\n",
    );
    std::fs::create_dir_all(ws.path().join("logs")).unwrap();
    std::fs::write(ws.path().join("logs/events.ndjson"), log).unwrap();
    let out = ws.run(&["tail-events", "-n", "50"]);
    assert!(out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("note: skipped 2 damaged line(s) in ")
            && stderr.contains("events.ndjson"),
        "{stderr}"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\u{7}'),
        "{stdout:?}"
    );
    insta::with_settings!({filters => vec![(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", "[time]")]}, {
        insta::assert_snapshot!("tail_events_human", stdout);
    });
    // --json: the whole lines as they are, the fused event included, keys unsorted.
    let out = ws.run(&["tail-events", "--json", "-n", "50", "--task", "fix_db"]);
    let json = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(lines.len(), 5, "{json}");
    assert!(lines[0].starts_with("{\"ts\":\"2026-11-25T10:30:00.200Z\",\"event\":\"task_received\",\"task_id\":\"fix_db\",\"file\""));
    assert!(lines[1].contains("\"event\":\"queued\""), "{json}");
}

//! Unit tests of the console: the lines of a sequence of events (snapshots), the live
//! line, the style table, and the printer on a terminal and off one.

use super::*;
use crate::events::kind::tests_support::one_of_each;
use crate::events::{Event, AGENT_CLAUDE};

fn at(sec: u32, event: Event) -> Stamped {
    Stamped {
        seq: u64::from(sec),
        ts: format!("2026-11-25T10:{:02}:{:02}.000Z", sec / 60, sec % 60),
        event,
    }
}

fn s(x: &str) -> String {
    x.to_owned()
}

/// A success with a tool use, a rejected file, a failing agent, a retry, a timeout.
fn day() -> Vec<Stamped> {
    let started = |timeout_sec| EventKind::ClaudeStarted {
        agent: s(AGENT_CLAUDE),
        bin: s("claude"),
        resume_session: None,
        timeout_sec,
        working_dir: s("/w"),
    };
    let progress = |turns, tool: Option<&str>, target: Option<&str>| EventKind::ClaudeProgress {
        agent: s(AGENT_CLAUDE),
        cost_usd: None,
        last_tool: tool.map(s),
        last_tool_target: target.map(s),
        model: None,
        pid: Some(9),
        session_id: None,
        turns,
        updated_at: s("t"),
    };
    let finished = |outcome: &str, cost, turns| EventKind::ClaudeFinished {
        agent: s(AGENT_CLAUDE),
        changed_files: 0,
        cost_usd: cost,
        exit_code: Some(0),
        num_turns: turns,
        outcome: s(outcome),
        session_id: None,
    };
    let received = |id: &str| EventKind::TaskReceived {
        file: format!("tasks/{id}.task.md"),
        note: None,
        renamed_from: None,
        source: s("file"),
        stem: s(id),
    };
    let parsed = |title: Option<&str>| EventKind::Parsed {
        criteria: 0,
        priority: s("medium"),
        targets: 0,
        title: title.map(s),
        task_type: None,
    };
    let queued = EventKind::Queued {
        by: None,
        priority: s("medium"),
        retry: None,
        seq: Some(1),
    };
    let written = |status: &str| EventKind::ArtifactsWritten {
        result: s("results/x.json"),
        status: s(status),
        summary: s("summaries/x.txt"),
    };
    vec![
        at(0, Event::daemon(EventKind::DaemonStarted {
            max_concurrent_tasks: 3,
            node: s("n"),
            pid: 1,
            root: s("/w"),
            version: s("0.1.0"),
        })),
        at(1, Event::task("ok", received("ok"))),
        at(1, Event::task("ok", parsed(Some("Fix the \u{1b}]0;pwned\u{7} timeout")))),
        at(1, Event::task("ok", queued.clone())),
        at(1, Event::task("bad", received("bad"))),
        at(1, Event::task("bad", EventKind::TaskRejected {
            error: s("/w/tasks/bad.task.md:3: priority 'urgent!' is not one of high, medium, low"),
            file: s("tasks/bad.task.md"),
            hint: Some(s("write e.g. `priority: high`")),
            kind: s("bad_priority"),
            line: Some(3),
        })),
        at(1, Event::attempt("bad", 0, written("rejected"))),
        at(2, Event::attempt("ok", 1, started(300))),
        at(3, Event::attempt("ok", 1, progress(1, Some("Edit"), Some("src/db.rs")))),
        at(3, Event::task("boom", received("boom"))),
        at(3, Event::task("boom", parsed(None))),
        at(3, Event::task("boom", queued.clone())),
        at(4, Event::attempt("boom", 1, started(300))),
        at(5, Event::attempt("boom", 1, finished("transient", Some(0.0), Some(1)))),
        at(5, Event::attempt("boom", 1, EventKind::Retry {
            delay_ms: 5000,
            max_retries: 2,
            reason: s("API Error: 529 overloaded"),
            retry: 1,
            session_id: None,
        })),
        at(10, Event::attempt("boom", 2, started(300))),
        at(11, Event::attempt("boom", 2, finished("failed", Some(0.001), Some(2)))),
        at(11, Event::attempt("boom", 2, written("failed"))),
        at(75, Event::attempt("ok", 1, progress(4, Some("Bash"), Some("cargo test")))),
        at(80, Event::attempt("ok", 1, finished("succeeded", Some(0.0123), Some(4)))),
        at(80, Event::attempt("ok", 1, written("succeeded"))),
        at(80, Event::attempt("ok", 1, EventKind::TaskArchived {
            from: s("tasks/ok.task.md"),
            to: s("tasks/processed/ok.task.md"),
        })),
        at(90, Event::task("slow", received("slow"))),
        at(90, Event::task("slow", parsed(Some("Slow")))),
        at(90, Event::task("slow", queued)),
        at(91, Event::attempt("slow", 1, started(5))),
        at(96, Event::attempt("slow", 1, EventKind::TimedOut {})),
        at(96, Event::task("slow", EventKind::cancelled("running"))),
        at(97, Event::attempt("slow", 1, written("timed_out"))),
        at(98, Event::daemon(EventKind::ConfigReloaded {
            applied: None,
            changed: Some(vec![s("MAX_CONCURRENT_TASKS")]),
            error: None,
            reason: s("SIGHUP"),
        })),
        at(99, Event::daemon(EventKind::ConfigReloaded {
            applied: Some(false),
            changed: None,
            error: Some(s("MAX_CONCURRENT_TASKS: not a number")),
            reason: s("configuration file changed"),
        })),
        at(100, Event::daemon(EventKind::DaemonStopped { pid: 1 })),
    ]
}

fn lines(events: &[Stamped], verbosity: Verbosity, colour: bool) -> String {
    let mut state = ConsoleState::default();
    let mut out = String::new();
    for e in events {
        if let Some(l) = state.line(e, verbosity, colour) {
            assert!(!l.contains('\n') && !l.contains('\r'), "{l:?}");
            out.push_str(&l);
            out.push('\n');
        }
    }
    out
}

#[test]
fn a_day_of_events_in_plain_lines() {
    let text = lines(&day(), Verbosity::Normal, false);
    assert!(!text.contains('\u{1b}'), "{text}");
    insta::assert_snapshot!("console_day_plain", text);
}

#[test]
fn colour_is_on_the_status_words_only() {
    let text = lines(&day(), Verbosity::Normal, true);
    let plain = lines(&day(), Verbosity::Normal, false);
    let stripped = text
        .replace(GREEN, "")
        .replace(RED, "")
        .replace(YELLOW, "")
        .replace(RESET, "");
    assert_eq!(stripped, plain);
    assert!(text.contains(&format!("{GREEN}succeeded{RESET}")), "{text}");
    assert!(text.contains(&format!("{RED}rejected {RESET}")), "{text}");
    // The title's own escape stays escaped.
    assert!(
        text.contains("Fix the \\x1b]0;pwned\\x07 timeout"),
        "{text}"
    );
}

#[test]
fn verbose_says_more_and_quiet_nothing() {
    let verbose = lines(&day(), Verbosity::Verbose, false);
    let normal = lines(&day(), Verbosity::Normal, false);
    assert!(verbose.lines().count() > normal.lines().count());
    assert!(
        verbose.contains("tool      ok  turn 1: Edit src/db.rs"),
        "{verbose}"
    );
    assert!(verbose.contains("event     task_archived"), "{verbose}");
    assert!(!normal.contains("tool "), "{normal}");
    assert_eq!(lines(&day(), Verbosity::Quiet, false), "");
    // Every kind makes a line under -v, and none holds a raw control character.
    let all: Vec<Stamped> = one_of_each()
        .into_iter()
        .enumerate()
        .map(|(i, e)| at(u32::try_from(i).unwrap(), e))
        .collect();
    let text = lines(&all, Verbosity::Verbose, false);
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(text.lines().count() >= all.len() - 2, "{text}");
}

#[test]
fn the_live_line_shows_what_runs_and_the_counts() {
    let events = day();
    let mut state = ConsoleState::default();
    let mut snaps = Vec::new();
    for e in &events {
        state.line(e, Verbosity::Normal, false);
        if e.seq == 4 || e.seq == 75 || e.seq == 100 {
            snaps.push(state.status(ms_of(&e.ts).unwrap() + 1500, 120));
        }
    }
    insta::assert_snapshot!("console_live_line", snaps.join("\n"));
    assert!(
        snaps[0].contains("running: ok turn 1 Edit 3s, boom turn 0 1s"),
        "{snaps:?}"
    );
    // Cut to the width, never wrapped.
    let narrow = state.status(0, 20);
    assert_eq!(narrow.chars().count(), 20, "{narrow}");
    assert!(narrow.ends_with('…'));
}

#[test]
fn style_follows_the_terminal_and_the_colour_conventions() {
    let t = |live, colour| Style { live, colour };
    for (tty, env, want) in [
        (true, vec![], t(true, true)),
        (false, vec![], t(false, false)),
        (true, vec![("NO_COLOR", "1")], t(true, false)),
        (true, vec![("NO_COLOR", "")], t(true, true)),
        (true, vec![("CLICOLOR", "0")], t(true, false)),
        (true, vec![("CLICOLOR", "1")], t(true, true)),
        (false, vec![("CLICOLOR_FORCE", "1")], t(false, true)),
        (false, vec![("CLICOLOR_FORCE", "0")], t(false, false)),
        (
            true,
            vec![("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")],
            t(true, false),
        ),
        (
            true,
            vec![("CLICOLOR_FORCE", "1"), ("CLICOLOR", "0")],
            t(true, true),
        ),
        (true, vec![("TERM", "dumb")], t(false, false)),
    ] {
        let got = Style::detect(tty, |k| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        });
        assert_eq!(got, want, "tty={tty} {env:?}");
    }
}

#[test]
fn errors_name_the_file_once() {
    for (file, error, want) in [
        (
            "tasks/a.task.md",
            "/w/tasks/a.task.md:3: bad",
            "tasks/a.task.md:3: bad",
        ),
        (
            "tasks/a.task.md",
            "tasks/a.task.md: bad",
            "tasks/a.task.md: bad",
        ),
        (
            "tasks/a.task.md",
            "outside the root",
            "tasks/a.task.md: outside the root",
        ),
        (
            "tasks/a.task.md",
            "see x tasks/a.task.md: y",
            "tasks/a.task.md: see x tasks/a.task.md: y",
        ),
        ("", "bad", "bad"),
    ] {
        assert_eq!(error_about(file, error), want);
    }
}

#[test]
fn durations_read_well() {
    for (ms, want) in [
        (-5, "0.0 s"),
        (950, "0.9 s"),
        (12_345, "12.3 s"),
        (125_000, "2m 05s"),
        (3_720_000, "1h 02m"),
    ] {
        assert_eq!(duration_text(ms), want);
    }
    assert_eq!(elapsed_text(65_000), "1m 05s");
}

#[tokio::test]
async fn the_printer_redraws_the_live_line_only_on_a_terminal() {
    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    for live in [false, true] {
        let bus = EventBus::new();
        let buf = Buf::default();
        let printer = Printer {
            out: buf.clone(),
            style: Style {
                live,
                colour: false,
            },
            verbosity: Verbosity::Normal,
            width: || 80,
            now: || 0,
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sub = bus.subscribe();
        let task = tokio::spawn(printer.pump(sub, rx));
        for e in day() {
            bus.publish(e.event);
        }
        tokio::task::yield_now().await;
        tx.send(()).unwrap();
        task.await.unwrap();
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("finished  ok  succeeded"), "{text}");
        if live {
            assert!(text.contains(CLEAR), "{text:?}");
            assert!(text.contains("idle\r"), "{text:?}");
            // The last write clears the live line: after it, whole lines or nothing.
            let tail = text.rsplit(CLEAR).next().unwrap();
            assert!(tail.is_empty() || tail.ends_with('\n'), "{text:?}");
        } else {
            assert!(!text.contains('\r') && !text.contains('\u{1b}'), "{text:?}");
            // The same lines (the bus stamps its own times, so durations differ).
            let want = lines(&day(), Verbosity::Normal, false);
            let head = |t: &str| -> Vec<String> {
                t.lines()
                    .map(|l| l.split(" in ").next().unwrap().to_owned())
                    .collect()
            };
            assert_eq!(head(&text), head(&want));
        }
    }
}

#[tokio::test]
async fn a_lagging_console_says_how_many_events_it_missed() {
    let bus = EventBus::new();
    let mut sub = bus.subscribe();
    for i in 0..(crate::events::SUBSCRIBER_BACKLOG + 5) {
        bus.publish(Event::task(
            &format!("t{i}"),
            EventKind::cancelled("queued"),
        ));
    }
    let printer = Printer {
        out: Vec::new(),
        style: Style {
            live: false,
            colour: false,
        },
        verbosity: Verbosity::Normal,
        width: || 80,
        now: || 0,
    };
    let mut state = ConsoleState::default();
    let mut text = String::new();
    let n = sub.recv().await.unwrap();
    printer.take(&mut state, n, &mut text);
    assert_eq!(text, "console: 5 events skipped\n");
}

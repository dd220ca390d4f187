//! The console of `orca run` (DESIGN §7, issue 18 item 1), driving the real binary: plain
//! lines through a pipe, `--quiet`, `-v`, and the live line on a pseudo-terminal.

mod common;

use std::io::Read;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{task, Ws, TIMEOUT};

/// A daemon whose stderr is read into `out` as it comes.
struct Daemon {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
}

/// Colour and terminal settings of the test's own environment, not passed on.
const COLOUR_VARS: &[&str] = &["NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE", "TERM", "COLUMNS"];

fn reader(mut from: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&out);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // A pty's master reads EIO once the last slave is closed: that ends it too.
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    out
}

/// Starts `orca run ARGS` with stderr a pipe, or a pseudo-terminal when `pty`.
fn start(ws: &Ws, args: &[&str], env: &[(&str, &str)], pty: bool) -> Daemon {
    let mut cmd = ws.cmd();
    for k in COLOUR_VARS {
        cmd.env_remove(k);
    }
    cmd.arg("run")
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if pty {
        let size = nix::pty::Winsize {
            ws_row: 40,
            ws_col: 200,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let p = nix::pty::openpty(Some(&size), None).expect("openpty");
        cmd.stderr(Stdio::from(p.slave));
        let child = cmd.spawn().expect("spawn orca run");
        // `cmd` holds the slave until it is dropped: the master reads EIO only then.
        drop(cmd);
        Daemon {
            child,
            out: reader(std::fs::File::from(p.master)),
        }
    } else {
        cmd.stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn orca run");
        let err = child.stderr.take().expect("stderr");
        Daemon {
            child,
            out: reader(err),
        }
    }
}

impl Daemon {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    fn wait_for(&self, ws: &Ws, what: &str, cond: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        while !cond(&self.text()) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n--- stderr:\n{:?}\n--- events:\n{}",
                self.text(),
                ws.events_text()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// SIGTERM, the exit, and everything it wrote (up to its last line).
    fn stop(mut self, ws: &Ws, last: &str) -> String {
        // SAFETY (test): a signal to our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let code = self.child.wait().expect("wait").code();
        assert_eq!(code, Some(0), "{}", self.text());
        self.wait_for(ws, last, |t| t.contains(last));
        self.text()
    }
}

/// One success, one rejected file, one failing agent.
fn three_tasks(ws: &Ws) {
    ws.drop_task("ok.task.md", &task("ok", "high", "noop"));
    ws.drop_task(
        "bad.task.md",
        "---\nid: bad\npriority: urgent!\n---\n\n# Bad\n\n**Prompt:**\nDo it.\n",
    );
    ws.drop_task("boom.task.md", &task("boom", "medium", "fail"));
}

const WORDS: &[&str] = &[
    "received ",
    "started ",
    "finished ",
    "rejected ",
    "retry ",
    "cancelled ",
    "timed out ",
    "config ",
    "recovered ",
    "queued ",
    "tool ",
    "event ",
];

fn is_console_line(l: &str) -> bool {
    WORDS.iter().any(|w| l.starts_with(w))
        || l == "orca: stopped"
        || (l.starts_with("orca ") && l.contains(": watching "))
}

#[test]
fn plain_lines_through_a_pipe_for_a_success_a_rejected_file_and_a_failing_agent() {
    let ws = Ws::new();
    let d = start(&ws, &[], &[], false);
    d.wait_for(&ws, "the start line", |t| t.contains(": watching "));
    three_tasks(&ws);
    d.wait_for(&ws, "three ends", |t| {
        t.contains("finished  ok ") && t.contains("finished  boom ") && t.contains("rejected  bad ")
    });
    let text = d.stop(&ws, "orca: stopped");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\r'),
        "no control sequences on a pipe: {text:?}"
    );
    // The rejected file's reason is said once, by the console (not again by the log's
    // stderr mirror).
    assert_eq!(
        text.matches("priority 'urgent!'").count(),
        1,
        "said once: {text}"
    );
    let lines: Vec<&str> = text.lines().filter(|l| is_console_line(l)).collect();
    // Per task, in the order they happened (tasks run side by side).
    let mut shown: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("orca"))
        .collect();
    for id in ["ok", "bad", "boom"] {
        shown.extend(
            lines
                .iter()
                .filter(|l| l.split_whitespace().nth(1) == Some(id)),
        );
    }
    assert_eq!(
        shown.len(),
        lines.len(),
        "every line is about a task: {lines:#?}"
    );
    let root = ws.path().display().to_string();
    insta::with_settings!({filters => vec![
        (regex_escape(&root).as_str(), "[root]"),
        (r"orca \d+\.\d+\.\d+[^:]*:", "orca [version]:"),
        (r" in (\d+\.\d s|\d+m \d\ds|\d+h \d\dm)", " in [duration]"),
    ]}, {
        insta::assert_snapshot!("console_pipe", shown.join("\n"));
    });
    // The human log has a line per task end.
    let log = std::fs::read_to_string(ws.path().join("logs/orchestrator.log")).unwrap();
    for (id, status) in [("ok", "succeeded"), ("boom", "failed"), ("bad", "rejected")] {
        assert!(
            log.lines().any(|l| l.contains("task finished")
                && l.contains(&format!("task={id} "))
                && l.contains(&format!("status=\"{status}\""))
                && (id == "bad" || l.contains("duration_ms="))),
            "no end line of {id} in the log:\n{log}"
        );
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[test]
fn quiet_prints_no_console_line_and_verbose_prints_more() {
    let ws = Ws::new();
    let d = start(&ws, &["--quiet"], &[], false);
    three_tasks(&ws);
    for id in ["ok", "bad", "boom"] {
        ws.wait_archived(id);
    }
    let text = d.stop(&ws, "");
    let lines: Vec<&str> = text.lines().filter(|l| is_console_line(l)).collect();
    assert!(lines.is_empty(), "--quiet printed {lines:#?}");
    // Warnings still reach stderr.
    assert!(text.contains("priority 'urgent!'"), "{text}");

    let ws = Ws::new();
    let d = start(&ws, &["-v"], &[], false);
    ws.drop_task("ok.task.md", &task("ok", "medium", "slow 50 2"));
    d.wait_for(&ws, "the end of ok", |t| t.contains("finished  ok "));
    let text = d.stop(&ws, "orca: stopped");
    for want in [
        "event     queued",
        "event     claude_finished",
        "tool      ok  turn 1: Bash echo step 1",
    ] {
        assert!(text.contains(want), "-v lacks {want:?}:\n{text}");
    }
    assert!(!text.contains('\u{1b}'), "{text:?}");
}

/// Checks that cursor control appears only as the live line's `\r` + erase, and returns
/// the stream with those removed.
fn only_live_line_controls(raw: &str) -> String {
    // The pty turns each `\n` into `\r\n`.
    let text = raw.replace("\r\n", "\n");
    const CLEAR: &str = "\r\x1b[K";
    for (i, seg) in text.split(CLEAR).enumerate() {
        assert!(!seg.contains("\x1b[K"), "an erase without \\r: {seg:?}");
        // A `\r` of its own only ends the live line, drawn last in its segment.
        if let Some(pos) = seg.find('\r') {
            assert_eq!(pos, seg.len() - 1, "a stray \\r in segment {i}: {seg:?}");
            let live = seg[..pos].rsplit('\n').next().unwrap();
            assert!(
                live.starts_with("queued "),
                "\\r after a line that is not the live line: {seg:?}"
            );
        }
    }
    text.replace(CLEAR, "")
}

#[test]
fn a_terminal_shows_the_live_line_and_colours() {
    let ws = Ws::new();
    let d = start(&ws, &[], &[("TERM", "xterm")], true);
    d.wait_for(&ws, "the start line", |t| t.contains(": watching "));
    ws.drop_task("slow.task.md", &task("slow", "medium", "slow 400 8"));
    d.wait_for(&ws, "the live line of slow", |t| {
        t.contains("running: slow turn ")
    });
    d.wait_for(&ws, "the end of slow", |t| t.contains("succeeded"));
    let raw = d.stop(&ws, "orca: stopped");
    let text = only_live_line_controls(&raw);
    let live: Vec<&str> = text
        .split(['\n', '\r'])
        .filter(|l| l.starts_with("queued "))
        .collect();
    assert!(
        live.iter()
            .any(|l| l.contains("running 1") && l.contains("running: slow turn ")),
        "{live:#?}"
    );
    // The status word in colour, the rest plain.
    assert!(text.contains("\x1b[32msucceeded\x1b[0m"), "{text:?}");
    assert!(text.contains("finished  slow  "), "{text:?}");
}

#[test]
fn no_color_on_a_terminal_keeps_the_live_line_and_drops_the_colours() {
    let ws = Ws::new();
    let d = start(&ws, &[], &[("TERM", "xterm"), ("NO_COLOR", "1")], true);
    d.wait_for(&ws, "the start line", |t| t.contains(": watching "));
    ws.drop_task("slow.task.md", &task("slow", "medium", "slow 300 6"));
    ws.drop_task("boom.task.md", &task("boom", "medium", "fail"));
    d.wait_for(&ws, "the live line of slow", |t| {
        t.contains("running: slow turn ")
    });
    d.wait_for(&ws, "both ends", |t| {
        t.contains("finished  slow  succeeded") && t.contains("finished  boom  failed")
    });
    let raw = d.stop(&ws, "orca: stopped");
    let text = only_live_line_controls(&raw);
    assert!(
        !text.contains('\u{1b}'),
        "a colour code despite NO_COLOR: {text:?}"
    );
}

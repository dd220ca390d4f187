//! The console of `orca run` (DESIGN §7): a subscriber of the bus that prints, on stderr, a
//! line per event a person cares about and, on a terminal, a live line of what runs now.
//!
//! - [`ConsoleState::line`] is the pure part: event + state -> the line to print, if any.
//!   [`ConsoleState::status`] is the live line (what runs, queue counts), derived from the
//!   events alone.
//! - [`Style::detect`]: a live line only on a terminal (never on a pipe or for a service:
//!   plain lines, no cursor control); colours follow `NO_COLOR`, `CLICOLOR` and
//!   `CLICOLOR_FORCE`.
//! - [`start`] runs the subscriber on a thread of its own; dropping the [`Console`] prints
//!   what is left and clears the live line.
//!
//! Text from tasks and agents (ids, titles, errors, tool targets) is escaped
//! ([`crate::text_escape::escape_line`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use super::bus::{EventBus, Notice, Stamped, Subscriber};
use super::kind::EventKind;
use crate::text_escape::escape_line;

/// How much the console says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// Nothing (`--quiet`); errors still go to stderr.
    Quiet,
    /// A line per event a person cares about.
    #[default]
    Normal,
    /// Every event, and each tool the agent uses (`-v`).
    Verbose,
}

/// The console's options, from `orca run`'s flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConsoleOptions {
    pub verbosity: Verbosity,
}

/// How the console may write to its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// A live status line redrawn in place (a terminal only).
    pub live: bool,
    /// Coloured status words.
    pub colour: bool,
}

impl Style {
    /// The style for a stream that is (or is not) a terminal, given the environment:
    /// `NO_COLOR` set and non-empty: no colour; else `CLICOLOR_FORCE` set and not `0`:
    /// colour even off a terminal; else `CLICOLOR=0`: no colour; else colour on a
    /// terminal. `TERM=dumb` gets neither colour nor cursor control.
    pub fn detect(is_terminal: bool, env: impl Fn(&str) -> Option<String>) -> Style {
        let set = |k: &str| env(k).filter(|v| !v.is_empty());
        let dumb = env("TERM").as_deref() == Some("dumb");
        let live = is_terminal && !dumb;
        let colour = if set("NO_COLOR").is_some() {
            false
        } else if set("CLICOLOR_FORCE").is_some_and(|v| v != "0") {
            true
        } else if env("CLICOLOR").as_deref() == Some("0") {
            false
        } else {
            live
        };
        Style { live, colour }
    }
}

const WORD: usize = 9;
const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    #[default]
    Received,
    Queued,
    Running,
}

/// What the console knows of one task that has not ended yet.
#[derive(Debug, Clone, Default)]
struct TaskView {
    title: Option<String>,
    file: Option<String>,
    phase: Phase,
    /// Its place in arrival order (the live line lists running tasks so).
    key: u64,
    attempt: u32,
    /// When the first attempt started (ms), for the task's duration.
    first_start_ms: Option<i64>,
    /// When the current attempt started (ms), for the live line's elapsed time.
    started_ms: Option<i64>,
    timeout_sec: Option<u64>,
    turns: u32,
    tool: Option<String>,
    target: Option<String>,
    /// Cost and turns of the finished attempts, summed.
    cost: Option<f64>,
    turns_total: Option<u32>,
    /// Its end was already said (a rejected file).
    said_end: bool,
}

/// The console's picture of the daemon, built from events alone (no store reads).
#[derive(Debug, Clone, Default)]
pub struct ConsoleState {
    tasks: HashMap<String, TaskView>,
    /// The running tasks by arrival: (key, id).
    running: std::collections::BTreeMap<u64, String>,
    next_key: u64,
    done: u64,
    failed: u64,
}

fn ms_of(ts: &str) -> Option<i64> {
    ts.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// `0.9 s`, `2m 05s`, `1h 02m`.
pub fn duration_text(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 60_000 {
        format!("{}.{} s", ms / 1000, (ms % 1000) / 100)
    } else if ms < 3_600_000 {
        format!("{}m {:02}s", ms / 60_000, (ms % 60_000) / 1000)
    } else {
        format!("{}h {:02}m", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    }
}

/// `4s`, `2m 05s` (the live line's elapsed time).
fn elapsed_text(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    }
}

fn esc(s: &str) -> String {
    escape_line(s).into_owned()
}

/// `word`, padded to the column (and coloured when asked).
fn word(word: &str, paint: Option<&str>) -> String {
    match paint {
        Some(c) => format!("{c}{word:<WORD$}{RESET}"),
        None => format!("{word:<WORD$}"),
    }
}

/// `word id  rest`, the word padded (and coloured when asked).
fn tagged(w: &str, paint: Option<&str>, id: &str, rest: &str) -> String {
    let mut s = word(w, paint);
    s.push(' ');
    s.push_str(&esc(id));
    if !rest.is_empty() {
        s.push_str("  ");
        s.push_str(rest);
    }
    s
}

fn status_colour(status: &str) -> &'static str {
    match status {
        "succeeded" => GREEN,
        "timed_out" | "cancelled" => YELLOW,
        _ => RED,
    }
}

/// An error that starts with the file's own (absolute) path, `/w/tasks/a.task.md:3: ...`,
/// shortened to the file as the event names it, `tasks/a.task.md:3: ...`.
fn error_about(file: &str, error: &str) -> String {
    if !file.is_empty() {
        if let Some(pos) = error.find(file) {
            let before = &error[..pos];
            let after = &error[pos + file.len()..];
            let prefix_is_path =
                before.is_empty() || (before.ends_with('/') && !before.contains(' '));
            if prefix_is_path && after.starts_with(':') {
                return format!("{file}{after}");
            }
        }
        return format!("{file}: {error}");
    }
    error.to_owned()
}

impl ConsoleState {
    fn view(&mut self, id: &str) -> &mut TaskView {
        if !self.tasks.contains_key(id) {
            self.next_key += 1;
            let key = self.next_key;
            self.tasks.insert(
                id.to_owned(),
                TaskView {
                    key,
                    ..TaskView::default()
                },
            );
        }
        self.tasks.entry(id.to_owned()).or_default()
    }

    fn set_phase(&mut self, id: &str, phase: Phase) -> &mut TaskView {
        let v = self.view(id);
        v.phase = phase;
        let key = v.key;
        if phase == Phase::Running {
            self.running.insert(key, id.to_owned());
        } else {
            self.running.remove(&key);
        }
        self.view(id)
    }

    fn forget(&mut self, id: &str) -> Option<TaskView> {
        let v = self.tasks.remove(id)?;
        self.running.remove(&v.key);
        Some(v)
    }

    /// Counts of the tasks this console has seen: (queued, running, done, failed). A task
    /// received but not yet queued counts as queued; `done` counts every end, `failed`
    /// the ends that were not a success.
    pub fn counts(&self) -> (usize, usize, u64, u64) {
        let running = self.running.len();
        (self.tasks.len() - running, running, self.done, self.failed)
    }

    /// Takes in one event and returns the console line it makes (no `\n`), if any.
    pub fn line(&mut self, e: &Stamped, verbosity: Verbosity, colour: bool) -> Option<String> {
        if verbosity == Verbosity::Quiet {
            self.apply(e, colour, false);
            return None;
        }
        let verbose = verbosity == Verbosity::Verbose;
        let line = self.apply(e, colour, verbose);
        if line.is_some() || !verbose {
            return line;
        }
        // -v: every other event as `tail-events` shows it, without the time.
        if matches!(e.event.kind, EventKind::ClaudeProgress { .. }) {
            return None;
        }
        let raw = super::format_line("", &e.event);
        let human = super::render::human_line(raw.trim_end());
        Some(format!("{:<WORD$} {}", "event", human.trim_start()))
    }

    /// The state change of one event and its normal line.
    fn apply(&mut self, e: &Stamped, colour: bool, verbose: bool) -> Option<String> {
        let paint = |c: &'static str| if colour { Some(c) } else { None };
        let id = e.event.task_id.as_deref().unwrap_or("");
        let at = ms_of(&e.ts);
        match &e.event.kind {
            EventKind::DaemonStarted { root, version, .. } => Some(format!(
                "orca {}: watching {}/tasks (Ctrl-C to stop)",
                esc(version),
                esc(root.trim_end_matches('/'))
            )),
            EventKind::DaemonStopped { .. } => Some("orca: stopped".to_owned()),
            EventKind::TaskReceived { file, .. } => {
                let v = self.view(id);
                v.file = Some(file.clone());
                None
            }
            EventKind::Parsed { title, .. } => {
                let v = self.view(id);
                v.title = title.clone();
                let about = match (&v.title, &v.file) {
                    (Some(t), _) => esc(t),
                    (None, Some(f)) => esc(f),
                    (None, None) => String::new(),
                };
                Some(tagged("received", None, id, &about))
            }
            EventKind::Queued { retry, .. } => {
                let again = retry.unwrap_or(false) && !self.tasks.contains_key(id);
                self.set_phase(id, Phase::Queued);
                again.then(|| tagged("queued", None, id, "again (orca retry)"))
            }
            EventKind::TaskRejected {
                error, file, hint, ..
            } => {
                let v = self.view(id);
                v.said_end = true;
                let mut rest = esc(&error_about(file, error));
                if let Some(h) = hint.as_deref().filter(|h| !h.is_empty()) {
                    let _ = write!(rest, " (hint: {})", esc(h));
                }
                Some(tagged("rejected", paint(RED), id, &rest))
            }
            EventKind::ClaudeStarted {
                agent,
                resume_session,
                timeout_sec,
                ..
            } => {
                let attempt = e.event.attempt.unwrap_or(1);
                let v = self.set_phase(id, Phase::Running);
                v.attempt = attempt;
                v.started_ms = at;
                v.first_start_ms = v.first_start_ms.or(at);
                v.timeout_sec = Some(*timeout_sec);
                v.turns = 0;
                v.tool = None;
                v.target = None;
                let resumed = if resume_session.is_some() {
                    ", resuming its session"
                } else {
                    ""
                };
                Some(tagged(
                    "started",
                    None,
                    id,
                    &format!("attempt {attempt} ({}{resumed})", esc(agent)),
                ))
            }
            EventKind::ClaudeProgress {
                turns,
                last_tool,
                last_tool_target,
                ..
            } => {
                let v = self.view(id);
                let changed =
                    v.turns != *turns || v.tool != *last_tool || v.target != *last_tool_target;
                v.turns = *turns;
                v.tool = last_tool.clone();
                v.target = last_tool_target.clone();
                // A tool use is a -v line (see `line`); the live line shows it anyway.
                match (changed, last_tool) {
                    (true, Some(tool)) if verbose => {
                        let mut rest = format!("turn {turns}: {}", esc(tool));
                        if let Some(t) = last_tool_target {
                            rest.push(' ');
                            rest.push_str(&esc(t));
                        }
                        Some(tagged("tool", None, id, &rest))
                    }
                    _ => None,
                }
            }
            EventKind::ClaudeFinished {
                cost_usd,
                num_turns,
                ..
            } => {
                let v = self.view(id);
                if let Some(c) = cost_usd {
                    v.cost = Some(v.cost.unwrap_or(0.0) + c);
                }
                if let Some(n) = num_turns {
                    v.turns_total = Some(v.turns_total.unwrap_or(0) + n);
                }
                None
            }
            EventKind::Retry {
                delay_ms,
                max_retries,
                reason,
                retry,
                ..
            } => {
                let v = self.set_phase(id, Phase::Queued);
                let next = e.event.attempt.unwrap_or(v.attempt) + 1;
                Some(tagged(
                    "retry",
                    paint(YELLOW),
                    id,
                    &format!(
                        "attempt {next} in {}: {} (retry {retry} of {max_retries})",
                        duration_text(i64::try_from(*delay_ms).unwrap_or(i64::MAX)),
                        esc(reason)
                    ),
                ))
            }
            EventKind::Cancelled { while_ } => Some(tagged(
                "cancelled",
                paint(YELLOW),
                id,
                &format!("while {}", esc(while_)),
            )),
            EventKind::TimedOut {} => {
                let v = self.view(id);
                let after = match v.timeout_sec {
                    Some(s) => format!(" after {s} s"),
                    None => String::new(),
                };
                Some(tagged(
                    "timed out",
                    paint(YELLOW),
                    id,
                    &format!("attempt {}{after}", e.event.attempt.unwrap_or(v.attempt)),
                ))
            }
            EventKind::ArtifactsWritten { status, .. } => {
                let v = self.forget(id).unwrap_or_default();
                self.done += 1;
                if status != "succeeded" {
                    self.failed += 1;
                }
                if v.said_end {
                    return None;
                }
                let st = match paint(status_colour(status)) {
                    Some(c) => format!("{c}{}{RESET}", esc(status)),
                    None => esc(status),
                };
                let mut rest = st;
                if let (Some(a), Some(b)) = (v.first_start_ms, at) {
                    let _ = write!(rest, " in {}", duration_text(b - a));
                }
                if let Some(c) = v.cost {
                    let _ = write!(rest, ", ${c:.4}");
                }
                if let Some(n) = v.turns_total {
                    let _ = write!(rest, ", {n} turn{}", if n == 1 { "" } else { "s" });
                }
                Some(tagged("finished", None, id, &rest))
            }
            EventKind::Recovered { reason } => {
                self.set_phase(id, Phase::Queued);
                Some(tagged("recovered", None, id, &esc(reason)))
            }
            EventKind::ConfigReloaded {
                applied,
                changed,
                error,
                reason,
            } => {
                let text = if *applied == Some(false) {
                    format!(
                        "reload refused ({}): {}; the old values stay",
                        esc(reason),
                        esc(error.as_deref().unwrap_or("invalid"))
                    )
                } else {
                    let names = changed.as_deref().unwrap_or_default().join(", ");
                    if names.is_empty() {
                        format!("reloaded ({}): nothing changed", esc(reason))
                    } else {
                        format!("reloaded ({}): {}", esc(reason), esc(&names))
                    }
                };
                let paint = if *applied == Some(false) {
                    paint(RED)
                } else {
                    None
                };
                Some(format!("{} {text}", word("config", paint)))
            }
            EventKind::CancelRequested { .. }
            | EventKind::Summarized { .. }
            | EventKind::Validated { .. }
            | EventKind::TaskArchived { .. } => None,
        }
    }

    /// The live line at `now_ms` (no `\r`, no `\n`), at most `width` characters: what runs
    /// (id, turn, current tool, elapsed) and the queue counts.
    pub fn status(&self, now_ms: i64, width: usize) -> String {
        let (queued, running, done, failed) = self.counts();
        let mut counts = format!("queued {queued} · running {running} · done {done}");
        if failed > 0 {
            let _ = write!(counts, " ({failed} not succeeded)");
        }
        let mut runs: Vec<String> = Vec::new();
        for id in self.running.values() {
            let Some(t) = self.tasks.get(id) else {
                continue;
            };
            let mut s = format!("{} turn {}", esc(id), t.turns);
            if let Some(tool) = &t.tool {
                s.push(' ');
                s.push_str(&esc(tool));
            }
            if let Some(at) = t.started_ms {
                s.push(' ');
                s.push_str(&elapsed_text(now_ms - at));
            }
            runs.push(s);
        }
        let head = if runs.is_empty() {
            "idle".to_owned()
        } else {
            format!("running: {}", runs.join(", "))
        };
        fit(&format!("{counts} | {head}"), width)
    }
}

/// `s` cut to `width` characters (an ellipsis at the end when cut).
fn fit(s: &str, width: usize) -> String {
    let width = width.max(10);
    if s.chars().count() <= width {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(width - 1).collect();
    out.push('…');
    out
}

/// The width of the terminal on stderr, else `COLUMNS`, else 80.
fn terminal_width() -> usize {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we pass, which outlives the
    // call; on a descriptor that is not a terminal it fails and writes nothing.
    let rc = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) };
    if rc == 0 && ws.ws_col > 0 {
        return usize::from(ws.ws_col);
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .filter(|c: &usize| *c > 0)
        .unwrap_or(80)
}

/// The running console; dropping it prints what is left and clears the live line.
pub struct Console {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the console on stderr: subscribes to `bus` (before anything is published, so
/// that it sees `daemon_started`) and prints on a thread of its own. `--quiet` starts
/// nothing.
pub fn start(bus: &EventBus, opts: ConsoleOptions) -> Console {
    let idle = Console {
        stop: None,
        thread: None,
    };
    if opts.verbosity == Verbosity::Quiet {
        return idle;
    }
    let style = Style::detect(std::io::stderr().is_terminal(), |k| std::env::var(k).ok());
    let sub = bus.subscribe();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("orca-console".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("orca: the console cannot start ({e}); events are still logged");
                    return;
                }
            };
            let printer = Printer {
                out: std::io::stderr(),
                style,
                verbosity: opts.verbosity,
                width: terminal_width,
                now: crate::clock::now_ms,
            };
            rt.block_on(printer.pump(sub, rx));
        });
    match spawned {
        Ok(t) => Console {
            stop: Some(tx),
            thread: Some(t),
        },
        Err(e) => {
            eprintln!("orca: the console cannot start ({e}); events are still logged");
            idle
        }
    }
}

/// Writes the console's lines to `out`.
pub struct Printer<W: Write> {
    pub out: W,
    pub style: Style,
    pub verbosity: Verbosity,
    pub width: fn() -> usize,
    pub now: fn() -> i64,
}

/// Erase the line the cursor is on, from its start.
const CLEAR: &str = "\r\x1b[K";

impl<W: Write> Printer<W> {
    /// Prints notices until the bus is gone or `stop` fires, then what is still waiting.
    pub async fn pump(mut self, mut sub: Subscriber, mut stop: tokio::sync::oneshot::Receiver<()>) {
        let mut state = ConsoleState::default();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shown = false;
        loop {
            tokio::select! {
                n = sub.recv() => {
                    let Some(n) = n else { break };
                    let mut text = String::new();
                    self.take(&mut state, n, &mut text);
                    // Whatever else is waiting goes out with the same write.
                    while let Ok(Some(n)) = sub.try_recv() {
                        self.take(&mut state, n, &mut text);
                    }
                    shown |= self.write(&state, text);
                }
                _ = tick.tick(), if self.style.live => {
                    if state.counts().1 > 0 {
                        shown |= self.write(&state, String::new());
                    }
                }
                _ = &mut stop => break,
            }
        }
        let mut text = String::new();
        while let Ok(Some(n)) = sub.try_recv() {
            self.take(&mut state, n, &mut text);
        }
        if shown {
            text.insert_str(0, CLEAR);
        }
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
    }

    fn take(&self, state: &mut ConsoleState, n: Notice, text: &mut String) {
        match n {
            Notice::Event(e) => {
                if let Some(l) = state.line(&e, self.verbosity, self.style.colour) {
                    text.push_str(&l);
                    text.push('\n');
                }
            }
            Notice::Lagged { missed } => {
                let _ = writeln!(text, "console: {missed} events skipped");
            }
        }
    }

    /// Writes `text` (whole lines) and, when live, the status line under it (the cursor
    /// left at its start, so that anything else written to stderr overwrites it).
    /// Returns whether a status line is on screen.
    fn write(&mut self, state: &ConsoleState, mut text: String) -> bool {
        if self.style.live {
            // The cursor is at the start of the status line (or of an empty line).
            text.insert_str(0, CLEAR);
            text.push_str(&state.status((self.now)(), (self.width)().saturating_sub(1)));
            text.push('\r');
        } else if text.is_empty() {
            return false;
        }
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
        self.style.live
    }
}

#[cfg(test)]
mod tests {
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
        let progress =
            |turns, tool: Option<&str>, target: Option<&str>| EventKind::ClaudeProgress {
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
}

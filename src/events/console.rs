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
        (
            self.tasks.len().saturating_sub(running),
            running,
            self.done,
            self.failed,
        )
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
            // Verbose mode shows it as an event line; not a state change.
            EventKind::Notified { .. } => None,
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
            EventKind::CheckFinished {
                command,
                exit_code,
                timed_out,
                verdict,
                ..
            } => {
                let how = match (timed_out, exit_code) {
                    (true, _) => " (timed out)".to_owned(),
                    (false, Some(c)) if verdict != "met" => format!(" (exit {c})"),
                    _ => String::new(),
                };
                let colour = if verdict == "met" { GREEN } else { YELLOW };
                Some(tagged(
                    "check",
                    paint(colour),
                    id,
                    &format!("`{}` {}{how}", esc(command), esc(verdict)),
                ))
            }
            EventKind::FixRound {
                round,
                max_rounds,
                unmet,
                changed,
                ..
            } => {
                let colour = if *unmet == 0 { GREEN } else { YELLOW };
                let what = match (unmet, changed) {
                    (0, _) => "the checks are met now".to_owned(),
                    (n, false) => format!("{n} check(s) still unmet, nothing changed"),
                    (n, true) => format!("{n} check(s) still unmet"),
                };
                Some(tagged(
                    "fix round",
                    paint(colour),
                    id,
                    &format!("{round} of {max_rounds}: {what}"),
                ))
            }
            EventKind::WorktreeCreated { branch, path, .. } => Some(tagged(
                "worktree",
                None,
                id,
                &format!("{} on branch {}", esc(path), esc(branch)),
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
            EventKind::LeaseExpired { by } => Some(tagged(
                "lease expired",
                None,
                id,
                &format!("queued again by node {}", esc(by)),
            )),
            EventKind::Recovered { reason } => {
                self.set_phase(id, Phase::Queued);
                Some(tagged("recovered", None, id, &esc(reason)))
            }
            EventKind::LlmFallback { message, stage, .. } => Some(tagged(
                "llm",
                None,
                id,
                &format!("{} by the rules: {}", esc(stage), esc(message)),
            )),
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
    if let Ok(ws) = rustix::termios::tcgetwinsize(std::io::stderr()) {
        if ws.ws_col > 0 {
            return usize::from(ws.ws_col);
        }
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
    // The console says "rejected ..." and "retry ..." itself: stderr gets them once.
    crate::logging::console_shows(true);
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

/// How long the console gathers events after a write before it prints again (a human
/// does not see 10 ms; a burst costs at most 100 wake-ups a second, not one per event).
const GATHER: Duration = Duration::from_millis(10);

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
                    // A burst's events are gathered for a moment and printed with one
                    // write: the console thread is not woken once per event.
                    tokio::select! {
                        _ = tokio::time::sleep(GATHER) => {}
                        _ = &mut stop => break,
                    }
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
mod tests;

//! The NDJSON event log of DESIGN §9 (`logs/events.ndjson`): one JSON object per line,
//! written with one write per line, rotated by size; and the reader behind `tail-events`.
//!
//! # Line format
//!
//! Every line is one JSON object followed by `\n`:
//!
//! ```text
//! {"ts":"2026-11-25T10:30:00.123Z","event":"claude_finished","task_id":"fix_db","attempt":1,...}
//! ```
//!
//! - `ts`: RFC 3339 UTC with milliseconds, when the event was written.
//! - `event`: one of the names below (constants in [`names`]).
//! - `task_id`: the task the event is about; absent for daemon-wide events.
//! - `attempt`: the attempt number (1-based); absent when not about one attempt.
//! - any further fields are event specific. New fields may be added; existing fields keep
//!   their meaning. The four keys above always come first, in this order.
//!
//! # Event names
//!
//! | event | when |
//! |---|---|
//! | `task_received` | a task file was picked up from `tasks/` (or submitted); says when an `id` got a suffix |
//! | `parsed` | the task file was parsed and accepted |
//! | `task_rejected` | the task could not be accepted (parse error, paths outside the allowed root, ...) |
//! | `queued` | the task entered the durable queue |
//! | `claude_started` | an agent attempt started (pid, working dir, model) |
//! | `claude_progress` | the agent reported progress (turns, tool use) while running |
//! | `claude_finished` | an agent attempt ended (exit code, turns, cost, duration) |
//! | `retry` | a transient failure is retried (next attempt, backoff) |
//! | `cancel_requested` | someone asked to cancel the task |
//! | `cancelled` | the task was cancelled (never started, or stopped) |
//! | `timed_out` | an attempt ran past its timeout and was stopped |
//! | `summarized` | the summary was made (method `llm` or `extract`) |
//! | `validated` | success criteria were judged / the result validated against the schema |
//! | `artifacts_written` | `results/<stem>_result.json` and the summary were written |
//! | `task_archived` | the task file was moved to `tasks/processed/` or `tasks/rejected/` |
//! | `recovered` | at start, a task whose run was cut off was re-queued |
//! | `notified` | a notification (Telegram, ...) was sent |
//! | `config_reloaded` | `.env` / `config/orca.toml` / SIGHUP reloaded the configuration |
//! | `daemon_started` | `orca run` started |
//! | `daemon_stopped` | `orca run` stopped |
//!
//! # Writing and rotation
//!
//! Each event is serialised first, then written with ONE `write_all` of the whole line to a
//! file opened with `O_APPEND`, under a mutex, so lines never interleave. No fsync per event.
//! When a line would take the file past `max_bytes`, the file is rotated first
//! (`events.ndjson.(n-1)` -> `.n`, ..., `events.ndjson` -> `.1`, keeping `files` old files),
//! so a line is never split across files.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::value_text::push_json_str;

/// The event names of DESIGN §9.
pub mod names {
    pub const TASK_RECEIVED: &str = "task_received";
    pub const PARSED: &str = "parsed";
    pub const CLAUDE_STARTED: &str = "claude_started";
    pub const CLAUDE_PROGRESS: &str = "claude_progress";
    pub const CLAUDE_FINISHED: &str = "claude_finished";
    pub const SUMMARIZED: &str = "summarized";
    pub const VALIDATED: &str = "validated";
    pub const ARTIFACTS_WRITTEN: &str = "artifacts_written";
    pub const TASK_ARCHIVED: &str = "task_archived";
    pub const RETRY: &str = "retry";
    pub const TASK_REJECTED: &str = "task_rejected";
    pub const QUEUED: &str = "queued";
    pub const CANCEL_REQUESTED: &str = "cancel_requested";
    pub const CANCELLED: &str = "cancelled";
    pub const TIMED_OUT: &str = "timed_out";
    pub const RECOVERED: &str = "recovered";
    pub const NOTIFIED: &str = "notified";
    pub const CONFIG_RELOADED: &str = "config_reloaded";
    pub const DAEMON_STARTED: &str = "daemon_started";
    pub const DAEMON_STOPPED: &str = "daemon_stopped";

    /// Every name above, in DESIGN §9 order.
    pub const ALL: &[&str] = &[
        TASK_RECEIVED,
        PARSED,
        CLAUDE_STARTED,
        CLAUDE_PROGRESS,
        CLAUDE_FINISHED,
        SUMMARIZED,
        VALIDATED,
        ARTIFACTS_WRITTEN,
        TASK_ARCHIVED,
        RETRY,
        TASK_REJECTED,
        QUEUED,
        CANCEL_REQUESTED,
        CANCELLED,
        TIMED_OUT,
        RECOVERED,
        NOTIFIED,
        CONFIG_RELOADED,
        DAEMON_STARTED,
        DAEMON_STOPPED,
    ];
}

/// How much of the end of the log [`EventLog::logged`] reads: several times what a burst
/// writes in the quarter second a finalize marker may wait (about 1.5 KiB of events per
/// task), and small, as a restart after a crash reads it once per task it finalizes again.
pub const LOGGED_SCAN_BYTES: u64 = 2 << 20;
/// Keys Orca writes itself; a caller's `fields` never repeat them.
const RESERVED: [&str; 4] = ["ts", "event", "task_id", "attempt"];

/// How often the writer checks that nobody else (another `orca` process) rotated the file.
const REOPEN_CHECK: Duration = Duration::from_secs(1);

/// The append-only event log. Cheap to clone; every clone writes to the same file.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("path", &self.inner.path)
            .field("max_bytes", &self.inner.max_bytes)
            .field("files", &self.inner.files)
            .finish()
    }
}

struct Inner {
    path: PathBuf,
    max_bytes: u64,
    files: u32,
    state: Mutex<State>,
}

struct State {
    file: Option<File>,
    size: u64,
    ino: u64,
    checked: Instant,
}

impl EventLog {
    /// Opens (creating it and its folder when missing) the event log at `path`, rotated when
    /// it would pass `max_bytes`, keeping `files` rotated files.
    pub fn open(path: PathBuf, max_bytes: u64, files: u32) -> io::Result<EventLog> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
                })?;
            }
        }
        let (file, size, ino) = open_append(&path)?;
        Ok(EventLog {
            inner: Arc::new(Inner {
                path,
                max_bytes: max_bytes.max(1),
                files,
                state: Mutex::new(State {
                    file: Some(file),
                    size,
                    ino,
                    checked: Instant::now(),
                }),
            }),
        })
    }

    /// The file this log writes to.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Whether the last [`LOGGED_SCAN_BYTES`] of the current log file hold event `event` of
    /// this task and attempt (a line this log wrote). For crash recovery, which must know
    /// whether a step's event went out before the crash; a log rotated since is not read.
    pub fn logged(&self, task_id: &str, attempt: Option<u32>, event: &str) -> bool {
        use std::io::{Read, Seek, SeekFrom};
        let mut pattern = String::new();
        push_standard_keys(&mut pattern, event, Some(task_id), attempt);
        let Ok(mut file) = std::fs::File::open(&self.inner.path) else {
            return false;
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let start = len.saturating_sub(LOGGED_SCAN_BYTES);
        let mut tail = Vec::new();
        if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut tail).is_err() {
            return false;
        }
        // The key ends where the next one, or the line's object, starts.
        memchr::memmem::find_iter(&tail, pattern.as_bytes())
            .any(|at| matches!(tail.get(at + pattern.len()), Some(b',' | b'}')))
    }

    /// Writes one event line. Never panics; a failed write is logged with `tracing::warn!`.
    /// `fields` should be a JSON object (merged after the standard keys); `null` adds
    /// nothing; any other value is written under `data`.
    pub fn emit(
        &self,
        event: &str,
        task_id: Option<&str>,
        attempt: Option<u32>,
        fields: serde_json::Value,
    ) {
        self.emit_all(task_id, attempt, &[(event, fields)]);
    }

    /// Writes several events of one task, in order, with one write and one time stamp (a
    /// step that ends with several events costs one system call, not one each).
    pub fn emit_all(
        &self,
        task_id: Option<&str>,
        attempt: Option<u32>,
        events: &[(&str, serde_json::Value)],
    ) {
        if events.is_empty() {
            return;
        }
        let ts = crate::clock::now_rfc3339();
        let chunk: String = events
            .iter()
            .map(|(event, fields)| format_line(&ts, event, task_id, attempt, fields))
            .collect();
        if let Err(e) = self.inner.write_line(chunk.as_bytes()) {
            let names: Vec<&str> = events.iter().map(|(n, _)| *n).collect();
            tracing::warn!(
                "cannot write event(s) '{}' to {}: {e}",
                names.join("', '"),
                self.inner.path.display()
            );
        }
    }
}

impl Inner {
    fn write_line(&self, line: &[u8]) -> io::Result<()> {
        let mut st = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let len = line.len() as u64;
        // Another process may have rotated the file under us: follow it, at most once a second
        // or when we think a rotation is due.
        let due = st.size > 0 && st.size + len > self.max_bytes;
        if st.file.is_none() || due || st.checked.elapsed() >= REOPEN_CHECK {
            st.checked = Instant::now();
            self.reopen_if_moved(&mut st)?;
        }
        if st.size > 0 && st.size + len > self.max_bytes {
            self.rotate(&mut st)?;
        }
        let file = match st.file.as_mut() {
            Some(f) => f,
            None => return Err(io::Error::other("event log is not open")),
        };
        file.write_all(line)?;
        st.size += len;
        Ok(())
    }

    fn reopen_if_moved(&self, st: &mut State) -> io::Result<()> {
        let current = std::fs::metadata(&self.path).ok();
        match current {
            Some(m) if st.file.is_some() && ino_of(&m) == st.ino => {
                // Other processes append too; keep our idea of the size honest.
                st.size = m.len();
            }
            _ => {
                let (file, size, ino) = open_append(&self.path)?;
                st.file = Some(file);
                st.size = size;
                st.ino = ino;
            }
        }
        Ok(())
    }

    fn rotate(&self, st: &mut State) -> io::Result<()> {
        st.file = None;
        if self.files == 0 {
            if let Err(e) = std::fs::remove_file(&self.path) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!("cannot remove {} to rotate it: {e}", self.path.display());
                }
            }
        } else {
            for n in (1..self.files).rev() {
                let from = rotated_name(&self.path, n);
                if from.exists() {
                    let to = rotated_name(&self.path, n + 1);
                    if let Err(e) = std::fs::rename(&from, &to) {
                        tracing::warn!("cannot rotate {} to {}: {e}", from.display(), to.display());
                    }
                }
            }
            let to = rotated_name(&self.path, 1);
            if let Err(e) = std::fs::rename(&self.path, &to) {
                tracing::warn!(
                    "cannot rotate {} to {}: {e}; writing on",
                    self.path.display(),
                    to.display()
                );
            }
        }
        let (file, size, ino) = open_append(&self.path)?;
        st.file = Some(file);
        st.size = size;
        st.ino = ino;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<(File, u64, u64)> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))?;
    let meta = file.metadata()?;
    Ok((file, meta.len(), ino_of(&meta)))
}

#[cfg(unix)]
fn ino_of(m: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    m.ino()
}

#[cfg(not(unix))]
fn ino_of(_m: &std::fs::Metadata) -> u64 {
    0
}

/// `events.ndjson` -> `events.ndjson.n`.
pub fn rotated_name(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// The keys every line has after `ts`, in their order: `,"event":..` and, when given,
/// `,"task_id":..` and `,"attempt":..` (also what [`EventLog::logged`] looks for).
fn push_standard_keys(out: &mut String, event: &str, task_id: Option<&str>, attempt: Option<u32>) {
    out.push_str(",\"event\":");
    push_json_str(out, event);
    if let Some(id) = task_id {
        out.push_str(",\"task_id\":");
        push_json_str(out, id);
    }
    if let Some(a) = attempt {
        out.push_str(",\"attempt\":");
        out.push_str(itoa::Buffer::new().format(a));
    }
}

/// One event line, `\n` included. Standard keys first, then `fields`.
fn format_line(
    ts: &str,
    event: &str,
    task_id: Option<&str>,
    attempt: Option<u32>,
    fields: &serde_json::Value,
) -> String {
    let mut out = String::with_capacity(128);
    out.push_str("{\"ts\":");
    push_json_str(&mut out, ts);
    push_standard_keys(&mut out, event, task_id, attempt);
    let mut push_field = |k: &str, v: &serde_json::Value| {
        if RESERVED.contains(&k) {
            return;
        }
        out.push(',');
        push_json_str(&mut out, k);
        out.push(':');
        crate::value_text::write_value(&mut out, v, &crate::value_text::JSON);
    };
    match fields {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                push_field(k, v);
            }
        }
        serde_json::Value::Null => {}
        other => push_field("data", other),
    }
    out.push_str("}\n");
    out
}

/// The event log's files, oldest first: `.N`, ..., `.1`, then the current file.
pub fn log_files(logs_file: &Path) -> Vec<PathBuf> {
    let mut rotated = Vec::new();
    let mut n = 1;
    while rotated_name(logs_file, n).exists() {
        rotated.push(rotated_name(logs_file, n));
        n += 1;
    }
    rotated.reverse();
    rotated.push(logs_file.to_path_buf());
    rotated
}

fn matches_task(v: &serde_json::Value, task: Option<&str>) -> bool {
    match task {
        None => true,
        Some(t) => v.get("task_id").and_then(|x| x.as_str()) == Some(t),
    }
}

/// Reads whole lines from `reader`, calling `each` with every parsed event; returns the
/// number of bytes consumed (up to the end of the last complete line). An unterminated last
/// line (being written, or torn by a crash) and unparsable lines are skipped.
fn read_lines(reader: impl Read, mut each: impl FnMut(serde_json::Value)) -> io::Result<u64> {
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    let mut consumed = 0u64;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 || buf.last() != Some(&b'\n') {
            return Ok(consumed);
        }
        consumed += n as u64;
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&buf) {
            if v.is_object() {
                each(v);
            }
        }
    }
}

/// Reads the events of `logs_file` and its rotated files, oldest first, keeping those of
/// `task` (when given) and only the `last` N (when given). A missing log is empty.
pub fn read_events(
    logs_file: &Path,
    task: Option<&str>,
    last: Option<usize>,
) -> io::Result<Vec<serde_json::Value>> {
    Ok(read_with_offset(logs_file, task, last)?.0)
}

/// Where reading of the current file stopped: its inode and the byte offset.
type Position = (u64, u64);

/// Like [`read_events`], also returning where reading of the current file stopped.
fn read_with_offset(
    logs_file: &Path,
    task: Option<&str>,
    last: Option<usize>,
) -> io::Result<(Vec<serde_json::Value>, Option<Position>)> {
    let mut out: VecDeque<serde_json::Value> = VecDeque::new();
    let mut position = None;
    let files = log_files(logs_file);
    let count = files.len();
    for (i, path) in files.into_iter().enumerate() {
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot read {}: {e}", path.display()),
                ))
            }
        };
        let ino = file.metadata().map(|m| ino_of(&m)).unwrap_or(0);
        let consumed = read_lines(&file, |v| {
            if matches_task(&v, task) {
                out.push_back(v);
                if let Some(n) = last {
                    while out.len() > n {
                        out.pop_front();
                    }
                }
            }
        })?;
        if i + 1 == count {
            position = Some((ino, consumed));
        }
    }
    Ok((out.into_iter().collect(), position))
}

/// Follows the event log like `tail -f`: yields events appended after it started, across
/// rotations. Polls every 200 ms (this is the `tail-events --follow` path, not the daemon's).
pub struct Follow {
    path: PathBuf,
    task: Option<String>,
    file: Option<File>,
    ino: u64,
    offset: u64,
    pending: VecDeque<serde_json::Value>,
    /// Poll interval of the blocking iterator.
    pub interval: Duration,
}

/// Reads the last events like [`read_events`] and returns a [`Follow`] positioned right after
/// them, so that nothing is shown twice or missed between the two.
pub fn tail(
    logs_file: &Path,
    task: Option<&str>,
    last: Option<usize>,
) -> io::Result<(Vec<serde_json::Value>, Follow)> {
    let (events, position) = read_with_offset(logs_file, task, last)?;
    let mut follow = Follow::new_at(logs_file, task, None);
    if let Some((ino, offset)) = position {
        if let Ok(file) = File::open(logs_file) {
            if file.metadata().map(|m| ino_of(&m)).unwrap_or(0) == ino {
                follow.file = Some(file);
                follow.ino = ino;
                follow.offset = offset;
            }
        }
    }
    Ok((events, follow))
}

/// A [`Follow`] starting at the current end of `logs_file`.
pub fn follow(logs_file: &Path, task: Option<&str>) -> Follow {
    let mut f = Follow::new_at(logs_file, task, None);
    if let Ok(file) = File::open(logs_file) {
        if let Ok(m) = file.metadata() {
            f.ino = ino_of(&m);
            // Do not start in the middle of a line being written: back up to its start.
            f.offset = last_line_end(&file, m.len()).unwrap_or(m.len());
            f.file = Some(file);
        }
    }
    f
}

/// The offset just past the last `\n` at or before `len`.
fn last_line_end(file: &File, len: u64) -> io::Result<u64> {
    let mut f = file;
    let start = len.saturating_sub(64 * 1024);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.take(len - start).read_to_end(&mut buf)?;
    match buf.iter().rposition(|b| *b == b'\n') {
        Some(i) => Ok(start + i as u64 + 1),
        None => Ok(start),
    }
}

impl Follow {
    fn new_at(path: &Path, task: Option<&str>, file: Option<File>) -> Follow {
        Follow {
            path: path.to_path_buf(),
            task: task.map(str::to_owned),
            file,
            ino: 0,
            offset: 0,
            pending: VecDeque::new(),
            interval: Duration::from_millis(200),
        }
    }

    /// Reads whatever complete lines were appended since the last call (non-blocking).
    pub fn poll(&mut self) -> io::Result<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        self.read_current(&mut out)?;
        // Rotated (or re-created): finish the old file, then start the new one from the top.
        let now = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (ino_of(&m), m.len()));
        match now {
            Some((ino, _)) if self.file.is_none() || ino != self.ino => {
                if let Ok(file) = File::open(&self.path) {
                    self.ino = file.metadata().map(|m| ino_of(&m)).unwrap_or(ino);
                    self.file = Some(file);
                    self.offset = 0;
                    self.read_current(&mut out)?;
                }
            }
            Some((_, len)) if len < self.offset => {
                // Truncated in place: start over.
                self.offset = 0;
                self.read_current(&mut out)?;
            }
            _ => {}
        }
        Ok(out)
    }

    fn read_current(&mut self, out: &mut Vec<serde_json::Value>) -> io::Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        file.seek(SeekFrom::Start(self.offset))?;
        let task = self.task.as_deref();
        let consumed = read_lines(&*file, |v| {
            if matches_task(&v, task) {
                out.push(v);
            }
        })?;
        self.offset += consumed;
        Ok(())
    }
}

impl Iterator for Follow {
    type Item = io::Result<serde_json::Value>;

    /// Blocks (polling every `interval`) until the next event; never ends on its own.
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(v) = self.pending.pop_front() {
                return Some(Ok(v));
            }
            match self.poll() {
                Ok(batch) if batch.is_empty() => std::thread::sleep(self.interval),
                Ok(batch) => self.pending.extend(batch),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn logged_finds_an_event_of_that_task_and_attempt_only() {
        let d = tempfile::tempdir().unwrap();
        let log = EventLog::open(d.path().join("events.ndjson"), 1 << 30, 2).unwrap();
        log.emit("task_archived", Some("c10"), Some(2), json!({"to": "x"}));
        log.emit("queued", Some("c1"), None, json!({}));
        assert!(log.logged("c10", Some(2), "task_archived"));
        assert!(
            !log.logged("c10", Some(1), "task_archived"),
            "another attempt"
        );
        assert!(
            !log.logged("c1", Some(2), "task_archived"),
            "an id that is a prefix"
        );
        assert!(
            !log.logged("c10", Some(2), "task_archive"),
            "an event that is a prefix"
        );
        assert!(log.logged("c1", None, "queued"));
        assert!(!log.logged("c1", None, "task_archived"));
        // Only the end of the log is read.
        let filler = "x".repeat(1 << 20);
        for _ in 0..(LOGGED_SCAN_BYTES >> 20) + 1 {
            log.emit("note", None, None, json!({ "text": filler }));
        }
        assert!(!log.logged("c10", Some(2), "task_archived"));
        log.emit("task_archived", Some("c10"), Some(3), json!({"to": "x"}));
        assert!(log.logged("c10", Some(3), "task_archived"));
        // No log file, nothing logged.
        let gone = EventLog::open(d.path().join("other.ndjson"), 1 << 30, 2).unwrap();
        std::fs::remove_file(d.path().join("other.ndjson")).unwrap();
        assert!(!gone.logged("c10", Some(3), "task_archived"));
    }

    #[test]
    fn line_layout() {
        let line = format_line(
            "2026-11-25T10:30:00.123Z",
            names::CLAUDE_FINISHED,
            Some("fix_db"),
            Some(1),
            &json!({"exit_code": 0, "event": "ignored", "note": "a \"q\"\n"}),
        );
        assert_eq!(
            line,
            "{\"ts\":\"2026-11-25T10:30:00.123Z\",\"event\":\"claude_finished\",\"task_id\":\"fix_db\",\"attempt\":1,\"exit_code\":0,\"note\":\"a \\\"q\\\"\\n\"}\n"
        );
        let line = format_line("t", "daemon_started", None, None, &json!(null));
        assert_eq!(line, "{\"ts\":\"t\",\"event\":\"daemon_started\"}\n");
        let line = format_line("t", "x", None, None, &json!([1]));
        assert_eq!(line, "{\"ts\":\"t\",\"event\":\"x\",\"data\":[1]}\n");
    }

    #[test]
    fn several_events_in_one_write_keep_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(dir.path().join("events.ndjson"), 1 << 20, 3).unwrap();
        log.emit("first", Some("t"), Some(1), json!({}));
        log.emit_all(
            Some("t"),
            Some(1),
            &[("second", json!({"n": 2})), ("third", json!(null))],
        );
        let text = std::fs::read_to_string(dir.path().join("events.ndjson")).unwrap();
        let names: Vec<String> = text
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                assert_eq!(v["task_id"], "t");
                v["event"].as_str().unwrap().to_owned()
            })
            .collect();
        assert_eq!(names, ["first", "second", "third"]);
        assert!(text.contains("\"n\":2"));
    }

    #[test]
    fn names_are_all_distinct() {
        let set: std::collections::HashSet<_> = names::ALL.iter().collect();
        assert_eq!(set.len(), 20);
    }
}

//! The NDJSON file of DESIGN §9: one line per event, each written whole or not at all,
//! rotated by size. Written by the bus's log thread ([`super::bus`]), one `write` per batch
//! of whole lines.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::kind::Event;
use crate::value_text::push_json_str;

/// How much of the end of the log [`logged`] reads: several times what a burst writes in
/// the quarter second a finalize marker may wait (about 1.5 KiB of events per task), and
/// small, as a restart after a crash reads it once per task it finalizes again.
pub const LOGGED_SCAN_BYTES: u64 = 2 << 20;

/// How often the writer checks that nobody else (another `orca` process) rotated the file.
const REOPEN_CHECK: Duration = Duration::from_secs(1);

/// The file a log thread appends to: rotation and whole-line writes.
pub struct NdjsonFile {
    path: PathBuf,
    max_bytes: u64,
    files: u32,
    file: Option<Box<dyn LogFile>>,
    size: u64,
    ino: u64,
    checked: Instant,
    /// The file ends in a torn line that could be neither cut nor ended: the next write
    /// starts with a newline.
    torn: bool,
    /// Opens the file (a test puts a failing writer in its place).
    opener: Opener,
}

/// Opens a log file: the file, its length, its inode, whether it ends in a torn line.
type Opener = fn(&Path) -> io::Result<(Box<dyn LogFile>, u64, u64, bool)>;

/// What [`NdjsonFile`] writes to: an append-only file that can be cut back.
pub trait LogFile: Write + Send {
    /// The file's length now.
    fn file_len(&self) -> io::Result<u64>;
    /// Cuts the file back to `len` bytes.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

impl LogFile for File {
    fn file_len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
}

impl std::fmt::Debug for NdjsonFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NdjsonFile")
            .field("path", &self.path)
            .field("max_bytes", &self.max_bytes)
            .field("files", &self.files)
            .finish()
    }
}

impl NdjsonFile {
    /// Opens (creating it and its folder when missing) the event log at `path`, rotated
    /// when it would pass `max_bytes`, keeping `files` rotated files.
    pub fn open(path: PathBuf, max_bytes: u64, files: u32) -> io::Result<NdjsonFile> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
                })?;
            }
        }
        Self::open_with(path, max_bytes, files, open_append)
    }

    fn open_with(
        path: PathBuf,
        max_bytes: u64,
        files: u32,
        opener: Opener,
    ) -> io::Result<NdjsonFile> {
        let (file, size, ino, torn) = opener(&path)?;
        Ok(NdjsonFile {
            path,
            max_bytes: max_bytes.max(1),
            files,
            file: Some(file),
            size,
            ino,
            checked: Instant::now(),
            torn,
            opener,
        })
    }

    /// The file this log writes to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `lines` (whole lines, each ending in `\n`) with one write. Whatever part of
    /// them does not make it (a full disk) is cut off again, so the file always ends with a
    /// whole line and the next write starts a line of its own.
    pub fn write_lines(&mut self, lines: &[u8]) -> io::Result<()> {
        let mut rest = lines;
        while !rest.is_empty() {
            // Another process may have rotated the file under us: follow it, at most once a
            // second or when we think a rotation is due.
            let due = self.size > 0 && self.size + rest.len() as u64 > self.max_bytes;
            if self.file.is_none() || due || self.checked.elapsed() >= REOPEN_CHECK {
                self.checked = Instant::now();
                self.reopen_if_moved()?;
            }
            // The whole lines that fit before the file is due for rotation.
            let room =
                usize::try_from(self.max_bytes.saturating_sub(self.size)).unwrap_or(usize::MAX);
            let mut fit = if rest.len() <= room {
                rest.len()
            } else {
                rest[..room]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |i| i + 1)
            };
            if fit == 0 {
                if self.size > 0 {
                    self.rotate()?;
                    continue;
                }
                // A line longer than a whole file gets a file of its own.
                fit = rest
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(rest.len(), |i| i + 1);
            }
            self.write_whole(&rest[..fit])?;
            rest = &rest[fit..];
        }
        Ok(())
    }

    /// One write of whole lines (retried while the system takes part of it).
    fn write_whole(&mut self, lines: &[u8]) -> io::Result<()> {
        let mended: Vec<u8>;
        let lines = if self.torn {
            mended = [b"\n".as_slice(), lines].concat();
            &mended
        } else {
            lines
        };
        let Some(file) = self.file.as_mut() else {
            return Err(io::Error::other("event log is not open"));
        };
        let mut done = 0usize;
        while done < lines.len() {
            match file.write(&lines[done..]) {
                Ok(0) => {
                    return Err(self.cut_back(lines, done, io::ErrorKind::WriteZero.into()));
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.cut_back(lines, done, e)),
            }
        }
        self.size += lines.len() as u64;
        self.torn = false;
        Ok(())
    }

    /// After a write that got `done` bytes of `lines` out and then failed with `err`: cuts
    /// the file back to the end of the last whole line that made it (or ends the torn line
    /// with a newline when the file cannot be cut). Returns the error to report.
    fn cut_back(&mut self, lines: &[u8], done: usize, err: io::Error) -> io::Error {
        let Some(file) = self.file.as_mut() else {
            return err;
        };
        let keep = lines[..done]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let torn = done - keep;
        if torn > 0 {
            // Our bytes end the file (appends of other processes are atomic, whole lines).
            let cut = file
                .file_len()
                .ok()
                .and_then(|end| end.checked_sub(torn as u64));
            match cut.map(|c| (c, file.set_len(c))) {
                Some((c, Ok(()))) => {
                    self.size = c;
                    self.torn = false;
                }
                _ => {
                    // Cannot cut: end the torn line, so that the next line starts clean (the
                    // reader skips the torn one and says so); if even that does not fit, the
                    // next write starts with the newline.
                    self.torn = !matches!(file.write(b"\n"), Ok(1));
                    self.size += done as u64 + u64::from(!self.torn);
                }
            }
        } else {
            self.size += done as u64;
        }
        io::Error::new(
            err.kind(),
            format!("{err} (the event line(s) that did not fit were left out whole)"),
        )
    }

    fn reopen_if_moved(&mut self) -> io::Result<()> {
        let current = std::fs::metadata(&self.path).ok();
        match current {
            Some(m) if self.file.is_some() && ino_of(&m) == self.ino => {
                // Other processes append too; keep our idea of the size honest.
                self.size = m.len();
            }
            _ => {
                let (file, size, ino, torn) = (self.opener)(&self.path)?;
                self.file = Some(file);
                self.size = size;
                self.ino = ino;
                self.torn = torn;
            }
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
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
        let (file, size, ino, torn) = (self.opener)(&self.path)?;
        self.file = Some(file);
        self.size = size;
        self.ino = ino;
        self.torn = torn;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<(Box<dyn LogFile>, u64, u64, bool)> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))?;
    let meta = file.metadata()?;
    let torn = meta.len() > 0 && !ends_with_newline(&file, meta.len());
    Ok((Box::new(file), meta.len(), ino_of(&meta), torn))
}

/// Whether the file's last byte (of `len`) is a newline (a file that cannot be read counts
/// as whole).
fn ends_with_newline(file: &File, len: u64) -> bool {
    use std::os::unix::fs::FileExt;
    let mut last = [0u8; 1];
    match file.read_at(&mut last, len - 1) {
        Ok(1) => last[0] == b'\n',
        _ => true,
    }
}

#[cfg(unix)]
pub(crate) fn ino_of(m: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    m.ino()
}

#[cfg(not(unix))]
pub(crate) fn ino_of(_m: &std::fs::Metadata) -> u64 {
    0
}

/// `events.ndjson` -> `events.ndjson.n`.
pub fn rotated_name(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// The keys every line has after `ts`, in their order: `,"event":..` and, when given,
/// `,"task_id":..` and `,"attempt":..` (also what [`logged`] looks for).
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

/// Appends the line of `event` stamped `ts`, `\n` included: the four standard keys
/// first, then the kind's fields in their declared order.
pub fn push_line(out: &mut String, ts: &str, event: &Event) {
    out.push_str("{\"ts\":");
    push_json_str(out, ts);
    push_standard_keys(
        out,
        event.kind.name(),
        event.task_id.as_deref(),
        event.attempt,
    );
    match serde_json::to_string(&event.kind) {
        // `{...}`: its inside follows the standard keys.
        Ok(fields) if fields.len() > 2 => {
            out.push(',');
            out.push_str(&fields[1..fields.len() - 1]);
        }
        Ok(_) => {}
        Err(e) => {
            // Only a non-finite float can fail; say so rather than lose the line.
            out.push_str(",\"error\":");
            push_json_str(out, &format!("fields not written: {e}"));
        }
    }
    out.push_str("}\n");
}

/// The line of `event` stamped `ts`.
pub fn format_line(ts: &str, event: &Event) -> String {
    let mut out = String::with_capacity(160);
    push_line(&mut out, ts, event);
    out
}

/// Whether the last [`LOGGED_SCAN_BYTES`] of the log file at `path` hold event `event` of
/// this task and attempt. For crash recovery, which must know whether a step's event went
/// out before the crash; a log rotated since is not read.
pub fn logged(path: &Path, task_id: &str, attempt: Option<u32>, event: &str) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let mut pattern = String::new();
    push_standard_keys(&mut pattern, event, Some(task_id), attempt);
    let Ok(mut file) = File::open(path) else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    #[test]
    fn line_layout() {
        let e = Event::attempt(
            "fix_db",
            1,
            EventKind::ClaudeFinished {
                agent: "claude".into(),
                changed_files: 2,
                cost_usd: Some(0.5),
                exit_code: Some(0),
                num_turns: None,
                outcome: "succeeded".into(),
                session_id: Some("a \"q\"\n".into()),
            },
        );
        assert_eq!(
            format_line("2026-11-25T10:30:00.123Z", &e),
            "{\"ts\":\"2026-11-25T10:30:00.123Z\",\"event\":\"claude_finished\",\"task_id\":\"fix_db\",\"attempt\":1,\"agent\":\"claude\",\"changed_files\":2,\"cost_usd\":0.5,\"exit_code\":0,\"num_turns\":null,\"outcome\":\"succeeded\",\"session_id\":\"a \\\"q\\\"\\n\"}\n"
        );
        let e = Event::daemon(EventKind::DaemonStopped { pid: 7 });
        assert_eq!(
            format_line("t", &e),
            "{\"ts\":\"t\",\"event\":\"daemon_stopped\",\"pid\":7}\n"
        );
        let e = Event::attempt("t", 2, EventKind::TimedOut {});
        assert_eq!(
            format_line("t", &e),
            "{\"ts\":\"t\",\"event\":\"timed_out\",\"task_id\":\"t\",\"attempt\":2}\n"
        );
    }

    /// Every line is what the hand-built `json!` of earlier versions wrote: the four
    /// standard keys, then the fields sorted by name, `null`s included.
    #[test]
    fn lines_are_those_of_the_sorted_map_format() {
        for e in crate::events::kind::tests_support::one_of_each() {
            let line = format_line("t", &e);
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            let mut head = String::from("{\"ts\":\"t\"");
            push_standard_keys(&mut head, e.name(), e.task_id.as_deref(), e.attempt);
            let mut want = head.clone();
            for (k, x) in v.as_object().unwrap() {
                if !["ts", "event", "task_id", "attempt"].contains(&k.as_str()) {
                    want.push(',');
                    push_json_str(&mut want, k);
                    want.push(':');
                    want.push_str(&x.to_string());
                }
            }
            want.push_str("}\n");
            assert_eq!(line, want, "{}", e.name());
        }
    }

    #[test]
    fn logged_finds_an_event_of_that_task_and_attempt_only() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("events.ndjson");
        let mut log = NdjsonFile::open(path.clone(), 1 << 30, 2).unwrap();
        let archived = |a| {
            Event::attempt(
                "c10",
                a,
                EventKind::TaskArchived {
                    from: "x".into(),
                    to: "y".into(),
                },
            )
        };
        log.write_lines(format_line("t", &archived(2)).as_bytes())
            .unwrap();
        let queued = Event::task(
            "c1",
            EventKind::Queued {
                by: None,
                priority: "high".into(),
                retry: None,
                seq: Some(1),
            },
        );
        log.write_lines(format_line("t", &queued).as_bytes())
            .unwrap();
        assert!(logged(&path, "c10", Some(2), "task_archived"));
        assert!(!logged(&path, "c10", Some(1), "task_archived"), "attempt");
        assert!(!logged(&path, "c1", Some(2), "task_archived"), "prefix id");
        assert!(!logged(&path, "c10", Some(2), "task_archive"), "prefix");
        assert!(logged(&path, "c1", None, "queued"));
        // Only the end of the log is read.
        let filler = format!(
            "{{\"ts\":\"t\",\"event\":\"x\",\"text\":\"{}\"}}\n",
            "x".repeat(1 << 20)
        );
        for _ in 0..(LOGGED_SCAN_BYTES >> 20) + 1 {
            log.write_lines(filler.as_bytes()).unwrap();
        }
        assert!(!logged(&path, "c10", Some(2), "task_archived"));
        assert!(!logged(
            &d.path().join("none"),
            "c10",
            Some(2),
            "task_archived"
        ));
    }

    /// A file that takes `room` bytes and then fails as a full disk does.
    struct FullDisk {
        data: Arc<Mutex<Vec<u8>>>,
        room: Arc<AtomicUsize>,
        cut: bool,
    }

    impl Write for FullDisk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut d = self.data.lock().unwrap();
            let free = self.room.load(Ordering::SeqCst).saturating_sub(d.len());
            if free == 0 {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "No space left"));
            }
            let n = free.min(buf.len());
            d.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl LogFile for FullDisk {
        fn file_len(&self) -> io::Result<u64> {
            Ok(self.data.lock().unwrap().len() as u64)
        }
        fn set_len(&mut self, len: u64) -> io::Result<()> {
            if !self.cut {
                return Err(io::Error::other("cannot cut"));
            }
            self.data.lock().unwrap().truncate(len as usize);
            Ok(())
        }
    }

    type Disk = (Arc<Mutex<Vec<u8>>>, Arc<AtomicUsize>, bool);
    static DISK: Mutex<Option<Disk>> = Mutex::new(None);

    fn open_disk(_: &Path) -> io::Result<(Box<dyn LogFile>, u64, u64, bool)> {
        let g = DISK.lock().unwrap();
        let (data, room, cut) = g.clone().unwrap();
        let (len, torn) = {
            let d = data.lock().unwrap();
            (d.len() as u64, d.last().is_some_and(|b| *b != b'\n'))
        };
        Ok((Box::new(FullDisk { data, room, cut }), len, 1, torn))
    }

    /// A full disk in the middle of a line: the torn part is cut off again (or, where the
    /// file cannot be cut, the next line starts on a line of its own), so every later line is
    /// whole and readable; also after a restart.
    #[test]
    fn a_line_is_written_whole_or_not_at_all() {
        for cut in [true, false] {
            let data = Arc::new(Mutex::new(Vec::new()));
            let first = "{\"ts\":\"t\",\"event\":\"a\"}\n";
            let second = "{\"ts\":\"t\",\"event\":\"b\",\"text\":\"long enough to tear\"}\n";
            let room = Arc::new(AtomicUsize::new(first.len() + 10));
            *DISK.lock().unwrap() = Some((Arc::clone(&data), Arc::clone(&room), cut));
            let open = || {
                let mut log =
                    NdjsonFile::open_with(PathBuf::from("/nowhere/e"), 1 << 20, 0, open_disk)
                        .unwrap();
                log.checked = Instant::now() + Duration::from_secs(3600);
                log
            };
            let mut log = open();
            log.write_lines(first.as_bytes()).unwrap();
            let err = log.write_lines(second.as_bytes()).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::StorageFull, "{err}");
            let text = String::from_utf8(data.lock().unwrap().clone()).unwrap();
            if cut {
                assert_eq!(text, first, "the torn line is cut off");
            } else {
                assert_eq!(text, format!("{first}{}", &second[..10]), "torn, not ended");
            }
            // Space again (the disk was cleaned up): the next line is a line of its own,
            // written by this writer and by the next start's.
            room.store(1 << 20, Ordering::SeqCst);
            log.write_lines(first.as_bytes()).unwrap();
            if !cut {
                // Torn again, and the daemon restarts.
                data.lock()
                    .unwrap()
                    .extend_from_slice(&second.as_bytes()[..7]);
                open().write_lines(first.as_bytes()).unwrap();
            }
            let text = String::from_utf8(data.lock().unwrap().clone()).unwrap();
            let mut skipped = 0;
            let mut names = Vec::new();
            crate::events::read::read_lines(text.as_bytes(), &mut skipped, |l| {
                names.push(l.value["event"].as_str().unwrap().to_owned())
            })
            .unwrap();
            if cut {
                assert_eq!(names, ["a", "a"], "{text:?}");
                assert_eq!(skipped, 0);
            } else {
                assert_eq!(names, ["a", "a", "a"], "{text:?}");
                assert_eq!(skipped, 2, "{text:?}");
            }
        }
    }
}

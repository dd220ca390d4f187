//! Reading the event log back (`tail-events`, `show`): whole lines only, across rotations,
//! resynchronising at the next newline after a damaged line and counting what it skipped.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ndjson::{ino_of, rotated_name};

/// One line of the log as it is in the file (without its `\n`) and parsed.
#[derive(Debug, Clone)]
pub struct RawEvent {
    pub line: String,
    pub value: serde_json::Value,
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

/// The event of one line, if it is one: a JSON object. A line that is not (torn by a full
/// disk or a crash, with the next event fused on) is tried once more from the last `{"ts":`
/// in it, where a whole event that followed the torn part starts.
fn parse_line(text: &str) -> Option<RawEvent> {
    let whole = |t: &str| {
        serde_json::from_str::<serde_json::Value>(t)
            .ok()
            .filter(serde_json::Value::is_object)
            .map(|value| RawEvent {
                line: t.to_owned(),
                value,
            })
    };
    whole(text)
}

fn resync(text: &str) -> Option<RawEvent> {
    let at = text.rfind("{\"ts\":").filter(|&i| i > 0)?;
    let rest = &text[at..];
    serde_json::from_str::<serde_json::Value>(rest)
        .ok()
        .filter(serde_json::Value::is_object)
        .map(|value| RawEvent {
            line: rest.to_owned(),
            value,
        })
}

/// Reads whole lines from `reader`, calling `each` with every event; returns the number of
/// bytes consumed (up to the end of the last complete line). An unterminated last line
/// (being written) is left for later; a damaged line is skipped and counted in `skipped`
/// (an event fused onto its end is still read).
pub fn read_lines(
    reader: impl Read,
    skipped: &mut u64,
    mut each: impl FnMut(RawEvent),
) -> io::Result<u64> {
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
        let body = &buf[..buf.len() - 1];
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        if body.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let text = String::from_utf8_lossy(body);
        match parse_line(&text) {
            Some(e) => each(e),
            None => {
                *skipped += 1;
                if let Some(e) = resync(&text) {
                    each(e);
                }
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
    let read = read_with_offset(logs_file, task, last)?;
    Ok(read.events.into_iter().map(|e| e.value).collect())
}

/// Where reading of the current file stopped: its inode and the byte offset.
type Position = (u64, u64);

/// What [`tail`] read.
#[derive(Debug, Default)]
pub struct TailRead {
    pub events: Vec<RawEvent>,
    /// Damaged lines skipped.
    pub skipped: u64,
    position: Option<Position>,
}

fn read_with_offset(
    logs_file: &Path,
    task: Option<&str>,
    last: Option<usize>,
) -> io::Result<TailRead> {
    let mut out: VecDeque<RawEvent> = VecDeque::new();
    let mut position = None;
    let mut skipped = 0;
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
        let consumed = read_lines(&file, &mut skipped, |e| {
            if matches_task(&e.value, task) {
                out.push_back(e);
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
    Ok(TailRead {
        events: out.into_iter().collect(),
        skipped,
        position,
    })
}

/// Follows the event log like `tail -f`: yields events appended after it started, across
/// rotations. Polls every 200 ms (this is the `tail-events --follow` path, not the daemon's).
pub struct Follow {
    path: PathBuf,
    task: Option<String>,
    file: Option<File>,
    ino: u64,
    offset: u64,
    pending: VecDeque<RawEvent>,
    /// Damaged lines skipped so far.
    pub skipped: u64,
    /// Poll interval of the blocking iterator.
    pub interval: Duration,
}

/// Reads the last events like [`read_events`] and returns a [`Follow`] positioned right after
/// them, so that nothing is shown twice or missed between the two.
pub fn tail(
    logs_file: &Path,
    task: Option<&str>,
    last: Option<usize>,
) -> io::Result<(TailRead, Follow)> {
    let read = read_with_offset(logs_file, task, last)?;
    let mut follow = Follow::new_at(logs_file, task);
    if let Some((ino, offset)) = read.position {
        if let Ok(file) = File::open(logs_file) {
            if file.metadata().map(|m| ino_of(&m)).unwrap_or(0) == ino {
                follow.file = Some(file);
                follow.ino = ino;
                follow.offset = offset;
            }
        }
    }
    Ok((read, follow))
}

/// A [`Follow`] starting at the current end of `logs_file`.
pub fn follow(logs_file: &Path, task: Option<&str>) -> Follow {
    let mut f = Follow::new_at(logs_file, task);
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
    fn new_at(path: &Path, task: Option<&str>) -> Follow {
        Follow {
            path: path.to_path_buf(),
            task: task.map(str::to_owned),
            file: None,
            ino: 0,
            offset: 0,
            pending: VecDeque::new(),
            skipped: 0,
            interval: Duration::from_millis(200),
        }
    }

    /// Reads whatever complete lines were appended since the last call (non-blocking).
    pub fn poll(&mut self) -> io::Result<Vec<RawEvent>> {
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

    fn read_current(&mut self, out: &mut Vec<RawEvent>) -> io::Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        file.seek(SeekFrom::Start(self.offset))?;
        let task = self.task.as_deref();
        let consumed = read_lines(&*file, &mut self.skipped, |e| {
            if matches_task(&e.value, task) {
                out.push(e);
            }
        })?;
        self.offset += consumed;
        Ok(())
    }
}

impl Iterator for Follow {
    type Item = io::Result<RawEvent>;

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

    /// A torn line in the middle (a full disk cut it, the next event was fused on) and a
    /// line of garbage: the reader says it skipped two lines, keeps every whole event in
    /// order, and the one fused onto the torn line too.
    #[test]
    fn a_damaged_line_is_skipped_counted_and_resynchronised() {
        let text = concat!(
            "{\"ts\":\"1\",\"event\":\"a\"}\n",
            "{\"ts\":\"2\",\"event\":\"b\",\"task_id\":\"t\",\"fie",
            "{\"ts\":\"3\",\"event\":\"c\",\"task_id\":\"t\"}\n",
            "\u{0}\u{0}garbage\n",
            "\n",
            "[1,2]\n",
            "{\"ts\":\"4\",\"event\":\"d\"}\n",
            "{\"ts\":\"5\",\"event\":\"e\""
        );
        let mut skipped = 0;
        let mut got = Vec::new();
        let consumed = read_lines(text.as_bytes(), &mut skipped, |e| got.push(e)).unwrap();
        let names: Vec<&str> = got
            .iter()
            .map(|e| e.value["event"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "c", "d"]);
        assert_eq!(
            got[1].line,
            "{\"ts\":\"3\",\"event\":\"c\",\"task_id\":\"t\"}"
        );
        assert_eq!(skipped, 3, "the torn line, the garbage and the array");
        assert_eq!(
            consumed as usize,
            text.len() - "{\"ts\":\"5\",\"event\":\"e\"".len(),
            "the unterminated last line is left for later"
        );
    }

    #[test]
    fn tail_counts_what_it_skipped_and_keeps_the_raw_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("events.ndjson");
        std::fs::write(
            &p,
            "{\"ts\":\"1\",\"event\":\"z\",\"b\":1,\"a\":2}\nnot json\n{\"ts\":\"2\",\"event\":\"y\"}\n",
        )
        .unwrap();
        let (read, mut follow) = tail(&p, None, Some(10)).unwrap();
        assert_eq!(read.skipped, 1);
        assert_eq!(
            read.events[0].line,
            "{\"ts\":\"1\",\"event\":\"z\",\"b\":1,\"a\":2}"
        );
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"ts\":\"3\",\"ev\n{\"ts\":\"4\",\"event\":\"x\"}\n")
            .unwrap();
        let more = follow.poll().unwrap();
        assert_eq!(more.len(), 1);
        assert_eq!(more[0].value["event"], "x");
        assert_eq!(follow.skipped, 1);
    }
}

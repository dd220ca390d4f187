//! The human log (`logs/orchestrator.log`): tracing set-up, LOG_LEVEL, size rotation.
//! A global `tracing` subscriber writes plain text to a size-rotating file, WARN+ also to stderr.
//!
//! LOG_LEVEL maps DEBUG -> debug, INFO -> info, WARNING -> warn, ERROR -> error. At DEBUG,
//! Orca's own modules log at debug and other crates at info (their debug output is noise).
//! [`set_level`] changes the level at runtime (config reload). The file is rotated by size:
//! `orchestrator.log` -> `.1` -> ... -> `.files`, only between whole writes, so a line is
//! never split across files.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, Layer};

use crate::config::LogLevel;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("cannot open the log file {path}: {source}; check that its folder is writable")]
    Open { path: PathBuf, source: io::Error },
    #[error("logging is already set up in this process (logging::init was called twice)")]
    AlreadyInitialized,
}

/// Keeps the log writer alive; dropping it flushes the log file.
#[must_use = "dropping the guard flushes and ends file logging set-up ownership"]
pub struct LogGuard {
    writer: RotatingWriter,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let _ = self.writer.flush_inner();
    }
}

type SetLevel = Box<dyn Fn(LogLevel) + Send + Sync>;

static SET_LEVEL: OnceLock<SetLevel> = OnceLock::new();

/// The filter of the file log for `level`.
fn file_filter(level: LogLevel) -> Targets {
    match level {
        LogLevel::Debug => Targets::new()
            .with_default(LevelFilter::INFO)
            .with_target("orca", LevelFilter::DEBUG),
        other => Targets::new().with_default(level_filter(other)),
    }
}

/// The field that marks a log line the console of `orca run` already shows in its own words
/// (a rejected file, a retry): such lines go to the log file only, not to stderr twice.
pub const ON_CONSOLE: &str = "on_console";

/// Whether a console shows such lines (set by `orca run` unless `--quiet`).
static CONSOLE_SHOWS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Says that a console now shows the lines marked [`ON_CONSOLE`] (or no longer does).
pub fn console_shows(on: bool) {
    CONSOLE_SHOWS.store(on, std::sync::atomic::Ordering::Relaxed);
}

fn not_on_console(meta: &tracing::Metadata<'_>) -> bool {
    !CONSOLE_SHOWS.load(std::sync::atomic::Ordering::Relaxed)
        || meta.fields().field(ON_CONSOLE).is_none()
}

/// The filter of the stderr mirror: WARN+, or less when LOG_LEVEL asks for less.
fn stderr_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Error => LevelFilter::ERROR,
        _ => LevelFilter::WARN,
    }
}

/// The `tracing` level of a LOG_LEVEL value.
pub fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warning => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    }
}

/// Sets up the global subscriber: plain text (no ANSI) to `log_file`, rotated at
/// `max_bytes` keeping `files` old files, and WARN+ to stderr. Call once per process.
pub fn init(
    log_file: PathBuf,
    level: LogLevel,
    max_bytes: u64,
    files: u32,
) -> Result<LogGuard, LoggingError> {
    if SET_LEVEL.get().is_some() {
        return Err(LoggingError::AlreadyInitialized);
    }
    let writer = RotatingWriter::open(log_file.clone(), max_bytes, files).map_err(|source| {
        LoggingError::Open {
            path: log_file,
            source,
        }
    })?;

    let (file_filter_layer, file_handle) = reload::Layer::new(file_filter(level));
    let (stderr_filter_layer, stderr_handle) = reload::Layer::new(stderr_filter(level));

    let file_layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(writer.clone())
        .with_filter(file_filter_layer);
    let stderr_layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(io::stderr)
        .with_filter(stderr_filter_layer)
        .with_filter(tracing_subscriber::filter::filter_fn(not_on_console));

    tracing_subscriber::registry()
        .with(file_layer)
        .with(stderr_layer)
        .try_init()
        .map_err(|_| LoggingError::AlreadyInitialized)?;

    let set: SetLevel = Box::new(move |level| {
        if let Err(e) = file_handle.reload(file_filter(level)) {
            eprintln!("orca: cannot change the log level: {e}");
        }
        if let Err(e) = stderr_handle.reload(stderr_filter(level)) {
            eprintln!("orca: cannot change the stderr log level: {e}");
        }
    });
    let _ = SET_LEVEL.set(set);
    Ok(LogGuard { writer })
}

/// Changes the log level at runtime (LOG_LEVEL reload). Does nothing before [`init`].
pub fn set_level(level: LogLevel) {
    if let Some(set) = SET_LEVEL.get() {
        set(level);
    }
}

/// A size-rotating log file: `path`, `path.1`, ..., `path.files`. Each `write` call is
/// written whole to one file; rotation happens only between writes, before a write that
/// would take the file past `max_bytes`. Cheap to clone (shared state).
#[derive(Clone)]
pub struct RotatingWriter {
    inner: Arc<Mutex<RotState>>,
}

struct RotState {
    path: PathBuf,
    max_bytes: u64,
    files: u32,
    file: Option<File>,
    size: u64,
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Opens the log for appending; a new file is private (0600: it may quote task titles and
/// agent errors).
fn open_append(path: &Path) -> io::Result<(File, u64)> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(crate::workspace::PRIVATE_FILE_MODE)
        .open(path)?;
    let len = file.metadata()?.len();
    Ok((file, len))
}

impl RotatingWriter {
    /// Opens (creating it and its folder) the log file.
    pub fn open(path: PathBuf, max_bytes: u64, files: u32) -> io::Result<RotatingWriter> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                crate::workspace::create_private_dir(dir)?;
            }
        }
        let (file, size) = open_append(&path)?;
        Ok(RotatingWriter {
            inner: Arc::new(Mutex::new(RotState {
                path,
                max_bytes: max_bytes.max(1),
                files,
                file: Some(file),
                size,
            })),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RotState> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn flush_inner(&self) -> io::Result<()> {
        match self.lock().file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl RotState {
    fn rotate(&mut self) {
        self.file = None;
        if self.files == 0 {
            let _ = std::fs::remove_file(&self.path);
        } else {
            for n in (1..self.files).rev() {
                let from = rotated(&self.path, n);
                if from.exists() {
                    let _ = std::fs::rename(&from, rotated(&self.path, n + 1));
                }
            }
            let _ = std::fs::rename(&self.path, rotated(&self.path, 1));
        }
    }

    fn write_whole(&mut self, buf: &[u8]) -> io::Result<()> {
        let len = buf.len() as u64;
        if self.size > 0 && self.size + len > self.max_bytes {
            self.rotate();
        }
        if self.file.is_none() {
            let (file, size) = open_append(&self.path)?;
            self.file = Some(file);
            self.size = size;
        }
        match self.file.as_mut() {
            Some(f) => {
                f.write_all(buf)?;
                self.size += len;
                Ok(())
            }
            None => Err(io::Error::other("log file is not open")),
        }
    }
}

impl Write for RotatingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.lock().write_whole(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_inner()
    }
}

impl<'a> MakeWriter<'a> for RotatingWriter {
    type Writer = RotatingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_lines(path: &Path, files: u32) -> Vec<String> {
        let mut out = Vec::new();
        for n in (1..=files).rev() {
            if let Ok(s) = std::fs::read_to_string(rotated(path, n)) {
                out.extend(s.lines().map(str::to_owned));
            }
        }
        if let Ok(s) = std::fs::read_to_string(path) {
            out.extend(s.lines().map(str::to_owned));
        }
        out
    }

    #[test]
    fn rotates_at_size_keeping_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs").join("orchestrator.log");
        let mut w = RotatingWriter::open(path.clone(), 1000, 3).unwrap();
        // 30 lines of 50 bytes: 1500 bytes -> current + .1, every line whole.
        for i in 0..30 {
            let line = format!("{:<48}\n", format!("line {i:03}"));
            assert_eq!(line.len(), 49);
            w.write_all(line.as_bytes()).unwrap();
        }
        assert!(rotated(&path, 1).exists());
        assert!(!rotated(&path, 2).exists());
        for p in [path.clone(), rotated(&path, 1)] {
            let s = std::fs::read_to_string(&p).unwrap();
            assert!(
                s.len() as u64 <= 1000,
                "{} is {} bytes",
                p.display(),
                s.len()
            );
            assert!(s.ends_with('\n'));
        }
        let lines = all_lines(&path, 3);
        let want: Vec<String> = (0..30)
            .map(|i| format!("{:<48}", format!("line {i:03}")))
            .collect();
        assert_eq!(lines, want);
    }

    #[test]
    fn keeps_only_n_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orchestrator.log");
        let mut w = RotatingWriter::open(path.clone(), 100, 2).unwrap();
        for i in 0..100 {
            w.write_all(format!("{i:09}\n").as_bytes()).unwrap();
        }
        assert!(rotated(&path, 1).exists());
        assert!(rotated(&path, 2).exists());
        assert!(!rotated(&path, 3).exists());
        // The newest lines survive, in order, each whole; 10 lines per file, 3 files.
        let lines = all_lines(&path, 2);
        let want: Vec<String> = (70..100).map(|i| format!("{i:09}")).collect();
        assert_eq!(lines, want);
    }

    #[test]
    fn oversized_write_goes_whole_into_a_fresh_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.log");
        let mut w = RotatingWriter::open(path.clone(), 10, 1).unwrap();
        w.write_all(b"short\n").unwrap();
        let big = "x".repeat(40) + "\n";
        w.write_all(big.as_bytes()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), big);
        assert_eq!(
            std::fs::read_to_string(rotated(&path, 1)).unwrap(),
            "short\n"
        );
    }

    #[test]
    fn concurrent_writers_never_split_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.log");
        let w = RotatingWriter::open(path.clone(), 4096, 50).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        w.write_all(format!("t{t} line {i:04} payload\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let lines = all_lines(&path, 50);
        assert_eq!(lines.len(), 2000);
        for l in &lines {
            assert!(
                l.starts_with('t') && l.ends_with("payload"),
                "split line {l:?}"
            );
        }
    }

    #[test]
    fn level_mapping() {
        assert_eq!(level_filter(LogLevel::Debug), LevelFilter::DEBUG);
        assert_eq!(level_filter(LogLevel::Info), LevelFilter::INFO);
        assert_eq!(level_filter(LogLevel::Warning), LevelFilter::WARN);
        assert_eq!(level_filter(LogLevel::Error), LevelFilter::ERROR);
        assert_eq!(stderr_filter(LogLevel::Debug), LevelFilter::WARN);
        assert_eq!(stderr_filter(LogLevel::Error), LevelFilter::ERROR);
    }
}

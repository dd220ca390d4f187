//! Intake: watching `tasks/` (inotify), the start-up scan, settling half-written files.
//! Emits the paths of task files that are ready to be read, as fast as the kernel tells us.
//!
//! How a file becomes [`Ready`]:
//! - **closed after writing** (inotify `IN_CLOSE_WRITE`) or **renamed/moved in**
//!   (`IN_MOVED_TO`): emitted at once (`settled: false`), no debounce;
//! - **found by a scan** (at start, every `rescan_interval`, on watcher overflow, on
//!   [`IntakeHandle::rescan`]): emitted at once when its mtime is older than `young`,
//!   otherwise re-checked and emitted with `settled: true` once size and mtime stop changing;
//! - **created but never closed** (a hard link, a writer that keeps the file open): emitted
//!   with `settled: true` after `create_quiet` without change;
//! - **deferred** by the daemon ([`IntakeHandle::defer`], a file that failed to parse and may
//!   be half-written): emitted with `settled: true` once unchanged (size, mtime, no events)
//!   for `defer_quiet`.
//!
//! Only direct children of `tasks/` whose name passes
//! [`Workspace::is_task_file_name`](crate::workspace::Workspace::is_task_file_name) are
//! emitted. A file that looks like a task but is not named like one (`fix.md`,
//! `fix.task.MD`, `fix.task.md.txt`) gets one warning (log and stderr) naming the rule and
//! the name to use. A task file whose name is not UTF-8 is renamed in place to its escaped
//! name (each such byte written `%NN`, e.g. `caf%E9.task.md`) with a warning, and then taken
//! under that name like any other; when it cannot be renamed, the warning says so.
//! Duplicates are possible (the daemon dedups by file); an event burst does not emit the
//! same unchanged file twice.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use names::Name;
use watch::{DirWatch, WatchEvent};

pub mod ingest;
mod names;
#[cfg(target_os = "linux")]
mod watch;

/// A task file that is ready to be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    pub path: PathBuf,
    /// True when the file was seen unchanged for a quiet period (scan of a young file,
    /// a file never closed, a deferred file); false when emitted on close/rename or found old.
    pub settled: bool,
}

/// Why intake could not start.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(
        "cannot watch {path}: {source}; check that the folder exists and is readable, and that \
         inotify limits allow another watcher (sysctl fs.inotify.max_user_instances)"
    )]
    Watch {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("intake must be started from inside a tokio runtime (internal error)")]
    NoRuntime,
}

/// Timings of intake. [`Default`] gives the production values.
#[derive(Debug, Clone)]
pub struct IntakeOptions {
    /// Safety-net full rescan period (default 30 s).
    pub rescan_interval: Duration,
    /// A scanned file whose mtime is younger than this is settled before it is emitted (300 ms).
    pub young: Duration,
    /// Quiet period of a deferred file (500 ms).
    pub defer_quiet: Duration,
    /// Quiet period of a file that was created and never closed (1 s).
    pub create_quiet: Duration,
}

impl Default for IntakeOptions {
    fn default() -> Self {
        IntakeOptions {
            rescan_interval: Duration::from_secs(30),
            young: Duration::from_millis(300),
            defer_quiet: Duration::from_millis(500),
            create_quiet: Duration::from_secs(1),
        }
    }
}

/// The running intake. Dropping it stops the background task and its watch; the receiver
/// then ends.
pub struct IntakeHandle {
    cmd: UnboundedSender<Cmd>,
    tasks_dir: PathBuf,
}

impl std::fmt::Debug for IntakeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntakeHandle")
            .field("tasks_dir", &self.tasks_dir)
            .finish()
    }
}

impl IntakeHandle {
    /// Re-emits `path` with `settled: true` once it has not changed (size, mtime, no events)
    /// for the defer quiet period (500 ms). For a file that failed to parse and may still be
    /// being written.
    pub fn defer(&self, path: impl Into<PathBuf>) {
        let _ = self.cmd.send(Cmd::Defer(path.into()));
    }

    /// Forces a full rescan of the folder (every task file present is emitted again).
    pub fn rescan(&self) {
        let _ = self.cmd.send(Cmd::Rescan);
    }

    /// The watched folder (absolute).
    pub fn tasks_dir(&self) -> &Path {
        &self.tasks_dir
    }
}

/// Starts watching `tasks_dir` with the default timings. Must be called inside a tokio
/// runtime. The folder must exist.
pub fn start(tasks_dir: PathBuf) -> Result<(IntakeHandle, UnboundedReceiver<Ready>), IntakeError> {
    start_with(tasks_dir, IntakeOptions::default())
}

/// [`start`] with explicit timings (tests shorten the rescan interval).
pub fn start_with(
    tasks_dir: PathBuf,
    opts: IntakeOptions,
) -> Result<(IntakeHandle, UnboundedReceiver<Ready>), IntakeError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| IntakeError::NoRuntime)?;
    let dir = std::path::absolute(&tasks_dir).unwrap_or(tasks_dir);

    let (ready_tx, ready_rx) = mpsc::unbounded_channel();
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    // Registered with this runtime's reactor: made inside it.
    let watch = {
        let _in_runtime = runtime.enter();
        DirWatch::new(&dir).map_err(|source| IntakeError::Watch {
            path: dir.clone(),
            source,
        })?
    };
    let manager = Manager {
        dir: dir.clone(),
        opts,
        ready: ready_tx,
        tracked: HashMap::new(),
        heap: BinaryHeap::new(),
        gen: 0,
        recent: Recent::default(),
        warned: HashSet::new(),
    };
    runtime.spawn(manager.run(watch, cmd_rx));

    Ok((
        IntakeHandle {
            cmd: cmd_tx,
            tasks_dir: dir,
        },
        ready_rx,
    ))
}

/// Requests from the handle.
enum Cmd {
    Defer(PathBuf),
    Rescan,
}

/// Size and mtime of a regular file (symlinks followed); None when missing or not a file.
fn stat(path: &Path) -> Option<(u64, Option<SystemTime>)> {
    let m = std::fs::metadata(path).ok()?;
    if !m.is_file() {
        return None;
    }
    Some((m.len(), m.modified().ok()))
}

/// What intake emitted lately, to drop repeats of an unchanged file in one burst.
#[derive(Default)]
struct Recent {
    seen: HashMap<PathBuf, (u64, Option<SystemTime>, Instant)>,
    /// The size at which `seen` is next pruned of old entries: twice what the last pruning
    /// left (at least [`RECENT_PRUNE_AT`]), so that a burst of files all seen within the
    /// window is not walked again at every new file.
    prune_at: usize,
}

const RECENT_WINDOW: Duration = Duration::from_secs(1);

/// `Recent::seen` is first pruned at this size.
const RECENT_PRUNE_AT: usize = 4096;

impl Recent {
    /// True when `path` should be emitted: it is a file and not emitted unchanged just now.
    fn admit(&mut self, path: &Path) -> bool {
        let Some((len, mtime)) = stat(path) else {
            return false;
        };
        let now = Instant::now();
        if let Some((l, m, at)) = self.seen.get(path) {
            if *l == len && *m == mtime && now.duration_since(*at) < RECENT_WINDOW {
                return false;
            }
        }
        if self.seen.len() >= self.prune_at.max(RECENT_PRUNE_AT) {
            self.seen
                .retain(|_, (_, _, at)| now.duration_since(*at) < RECENT_WINDOW);
            self.prune_at = 2 * self.seen.len();
        }
        self.seen.insert(path.to_path_buf(), (len, mtime, now));
        true
    }
}

/// A file being settled.
struct Track {
    /// Size and mtime when last looked at; None when not looked at yet.
    seen: Option<(u64, Option<SystemTime>)>,
    quiet: Duration,
    deadline: Instant,
    gen: u64,
    /// Asked for by `defer`: only a settled emit (or the file going away) ends it.
    deferred: bool,
}

/// The background task: scans, settles, defers.
struct Manager {
    dir: PathBuf,
    opts: IntakeOptions,
    ready: UnboundedSender<Ready>,
    tracked: HashMap<PathBuf, Track>,
    /// Deadlines of `tracked`, lazily cleaned: an entry whose gen differs is stale.
    heap: BinaryHeap<Reverse<(Instant, u64, PathBuf)>>,
    gen: u64,
    /// Files emitted lately (to drop a repeated close of an unchanged file).
    recent: Recent,
    /// Names already warned about (look-alikes, names that could not be escaped): once each
    /// while the file stays.
    warned: HashSet<OsString>,
}

impl Manager {
    async fn run(mut self, mut watch: DirWatch, mut cmds: UnboundedReceiver<Cmd>) {
        self.scan();
        let period = self.opts.rescan_interval.max(Duration::from_millis(10));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watching = true;
        let mut events = Vec::new();
        loop {
            let next = self.heap.peek().map(|Reverse((at, _, _))| *at);
            let sleep_to = tokio::time::Instant::from_std(
                next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)),
            );
            tokio::select! {
                biased;
                read = watch.next_batch(&mut events), if watching => {
                    if let Err(e) = read {
                        tracing::warn!(
                            "watching {} failed ({e}); rescanning the folder every {:?}",
                            self.dir.display(),
                            period
                        );
                        watching = false;
                        self.scan();
                    }
                    watching &= self.on_events(&mut events);
                }
                cmd = cmds.recv() => match cmd {
                    None => return, // the handle was dropped
                    Some(Cmd::Defer(path)) => {
                        let quiet = self.opts.defer_quiet;
                        self.track(path, quiet, true);
                    }
                    Some(Cmd::Rescan) => self.scan(),
                },
                _ = tokio::time::sleep_until(sleep_to), if next.is_some() => self.due(),
                _ = tick.tick() => self.scan(),
            }
        }
    }

    /// Acts on one batch of events (and empties it); false when the watch has ended.
    fn on_events(&mut self, events: &mut Vec<WatchEvent>) -> bool {
        let mut watching = true;
        let mut rescan = false;
        // A file created, written and closed within one batch is simply ready: its earlier
        // events would only start and stop a settling track.
        let last_close: HashMap<&std::ffi::OsStr, usize> = events
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match e {
                WatchEvent::Closed(n) => Some((n.as_os_str(), i)),
                _ => None,
            })
            .collect();
        let closed_later =
            |i: usize, name: &std::ffi::OsStr| last_close.get(name).is_some_and(|&j| j > i);
        for (i, event) in events.iter().enumerate() {
            match event {
                WatchEvent::Overflow => rescan = true,
                WatchEvent::Ended => {
                    tracing::warn!(
                        "the watch on {} ended (the folder was removed or moved); rescanning it every {:?}",
                        self.dir.display(),
                        self.opts.rescan_interval
                    );
                    watching = false;
                }
                WatchEvent::Closed(name) => {
                    let Some(path) = self.task_path(name) else {
                        continue;
                    };
                    if self.recent.admit(&path) {
                        // Delivered fresh: no need to settle it, unless the daemon asked.
                        if self.tracked.get(&path).is_some_and(|t| !t.deferred) {
                            self.tracked.remove(&path);
                        }
                        let _ = self.ready.send(Ready {
                            path,
                            settled: false,
                        });
                    } else {
                        self.changed(&path);
                    }
                }
                WatchEvent::Created(name) => {
                    if closed_later(i, name) {
                        continue;
                    }
                    // Nearly always closed a moment later: the file is looked at only if its
                    // quiet period passes first.
                    if let Some(path) = self.task_path(name) {
                        if !self.tracked.contains_key(&path) {
                            let quiet = self.opts.create_quiet;
                            self.start_track(path, quiet, false, None);
                        }
                    }
                }
                WatchEvent::Modified(name) => {
                    if closed_later(i, name) {
                        continue;
                    }
                    if let Some(path) = self.task_path(name) {
                        self.changed(&path);
                    }
                }
            }
        }
        events.clear();
        if rescan {
            tracing::info!(
                "watcher overflow on {}; rescanning the folder",
                self.dir.display()
            );
            self.scan();
        }
        watching
    }

    /// The path of a direct child named like a task file. A look-alike is warned about (once);
    /// a task file whose name is not UTF-8 is renamed to its escaped name (the rename's event
    /// brings it back under that name).
    fn task_path(&mut self, name: &OsStr) -> Option<PathBuf> {
        match names::classify(name) {
            Name::Task(n) => Some(self.dir.join(n)),
            Name::Other => None,
            Name::LookAlike(suggested) => {
                if self.warned.insert(name.to_os_string()) {
                    let shown = names::escape(std::os::unix::ffi::OsStrExt::as_bytes(name));
                    tracing::warn!(
                        "tasks/{shown} is not taken: task files end in `.task.md`; rename it to {suggested} to run it"
                    );
                }
                None
            }
            Name::Escape(escaped) => {
                self.take_escaped(name, &escaped);
                None
            }
        }
    }

    /// Renames a task file whose name is not UTF-8 to `escaped`, never over another file.
    fn take_escaped(&mut self, name: &OsStr, escaped: &str) {
        let (from, to) = (self.dir.join(name), self.dir.join(escaped));
        if std::fs::symlink_metadata(&from).is_err() {
            return; // gone already
        }
        let renamed = if std::fs::symlink_metadata(&to).is_ok() {
            Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file of that name exists",
            ))
        } else {
            std::fs::rename(&from, &to)
        };
        match renamed {
            Ok(()) => tracing::warn!(
                "a task file's name in tasks/ was not valid UTF-8: renamed it to tasks/{escaped} (each byte that is not UTF-8 written as %NN) and taking it under that name"
            ),
            Err(e) => {
                if self.warned.insert(name.to_os_string()) {
                    tracing::warn!(
                        "tasks/{escaped} is not taken: its name is not valid UTF-8 and renaming it to tasks/{escaped} failed ({e}); rename it to a UTF-8 name ending in `.task.md`"
                    );
                }
            }
        }
    }

    /// Activity on a file being settled: its deadline moves (its heap entry is moved on
    /// when it comes due, not for each write of a file written in many pieces).
    fn changed(&mut self, path: &Path) {
        if let Some(t) = self.tracked.get_mut(path) {
            t.deadline = Instant::now() + t.quiet;
        }
    }

    /// Starts settling `path`. A `deferred` track (from `defer`) restarts an existing one.
    fn track(&mut self, path: PathBuf, quiet: Duration, deferred: bool) {
        if !deferred && self.tracked.contains_key(&path) {
            return;
        }
        let seen = stat(&path).unwrap_or((0, None));
        self.start_track(path, quiet, deferred, Some(seen));
    }

    /// Tracks `path` for `quiet`; `seen` is its size and mtime now, or None when not looked
    /// at yet (then it settles once its mtime is `quiet` old).
    fn start_track(
        &mut self,
        path: PathBuf,
        quiet: Duration,
        deferred: bool,
        seen: Option<(u64, Option<SystemTime>)>,
    ) {
        self.gen += 1;
        let deadline = Instant::now() + quiet;
        self.heap.push(Reverse((deadline, self.gen, path.clone())));
        self.tracked.insert(
            path,
            Track {
                seen,
                quiet,
                deadline,
                gen: self.gen,
                deferred,
            },
        );
    }

    /// Checks every track whose deadline passed: unchanged -> emit settled; changed -> wait
    /// another quiet period; gone -> forget.
    fn due(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, _, _))) = self.heap.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, gen, path))) = self.heap.pop() else {
                break;
            };
            let Some(t) = self.tracked.get_mut(&path) else {
                continue;
            };
            if t.gen != gen {
                continue; // stale heap entry
            }
            if t.deadline > now {
                // Changed since this entry was pushed: wait for the moved deadline.
                self.gen += 1;
                t.gen = self.gen;
                self.heap.push(Reverse((t.deadline, t.gen, path)));
                continue;
            }
            let now_seen = stat(&path);
            let unchanged = match (now_seen, t.seen) {
                (None, _) => {
                    self.tracked.remove(&path);
                    continue;
                }
                (Some(s), Some(before)) => s == before,
                // Not looked at before: settled when not modified for the quiet period.
                (Some((_, mtime)), None) => mtime
                    .and_then(|m| SystemTime::now().duration_since(m).ok())
                    .is_some_and(|age| age >= t.quiet),
            };
            if unchanged {
                self.tracked.remove(&path);
                let _ = self.ready.send(Ready {
                    path,
                    settled: true,
                });
            } else {
                self.gen += 1;
                t.seen = now_seen;
                t.gen = self.gen;
                t.deadline = now + t.quiet;
                self.heap.push(Reverse((t.deadline, t.gen, path)));
            }
        }
    }

    /// Emits every task file in the folder; young ones are settled first.
    fn scan(&mut self) {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("cannot scan {}: {e}", self.dir.display());
                return;
            }
        };
        let now = SystemTime::now();
        let mut present = HashSet::new();
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue; // processed/, rejected/ and other folders are not tasks
            }
            let name = entry.file_name();
            let path = self.task_path(&name);
            if self.warned.contains(&name) {
                present.insert(name);
            }
            let Some(path) = path else {
                continue;
            };
            if self.tracked.contains_key(&path) {
                continue; // being settled: emitted when it is
            }
            let Some((_, mtime)) = stat(&path) else {
                continue;
            };
            let young = match mtime.map(|m| now.duration_since(m)) {
                Some(Ok(age)) => age < self.opts.young,
                Some(Err(_)) => true, // mtime in the future
                None => false,
            };
            if young {
                let quiet = self.opts.young;
                self.track(path, quiet, false);
            } else {
                let _ = self.ready.send(Ready {
                    path,
                    settled: false,
                });
            }
        }
        // A name warned about that went away is warned about again if it comes back.
        self.warned.retain(|n| present.contains(n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager(dir: &Path) -> (Manager, UnboundedReceiver<Ready>) {
        let (ready, rx) = mpsc::unbounded_channel();
        let m = Manager {
            dir: dir.to_path_buf(),
            opts: IntakeOptions::default(),
            ready,
            tracked: HashMap::new(),
            heap: BinaryHeap::new(),
            gen: 0,
            recent: Recent::default(),
            warned: HashSet::new(),
        };
        (m, rx)
    }

    fn drained(rx: &mut UnboundedReceiver<Ready>) -> Vec<(String, bool)> {
        let mut v = Vec::new();
        while let Ok(r) = rx.try_recv() {
            let name = r.path.file_name().map(|n| n.to_string_lossy().into_owned());
            v.push((name.unwrap_or_default(), r.settled));
        }
        v
    }

    #[test]
    fn batches_of_events_become_ready_files_and_tracks() {
        let dir = tempfile::tempdir().unwrap();
        let (mut m, mut rx) = manager(dir.path());
        for n in ["a.task.md", "b.task.md", "notes.txt", "old.task.md"] {
            std::fs::write(dir.path().join(n), "x").unwrap();
        }
        let ev = |k: fn(std::ffi::OsString) -> WatchEvent, n: &str| k(n.into());
        // Created, written and closed in one batch: ready at once, never tracked. Created
        // only: tracked until closed or quiet. Other names: ignored.
        let mut batch = vec![
            ev(WatchEvent::Created, "a.task.md"),
            ev(WatchEvent::Modified, "a.task.md"),
            ev(WatchEvent::Closed, "a.task.md"),
            ev(WatchEvent::Created, "b.task.md"),
            ev(WatchEvent::Closed, "notes.txt"),
        ];
        assert!(m.on_events(&mut batch));
        assert!(batch.is_empty());
        assert_eq!(drained(&mut rx), vec![("a.task.md".into(), false)]);
        assert_eq!(m.tracked.len(), 1);
        assert!(m.tracked.contains_key(&dir.path().join("b.task.md")));
        // Closed later: emitted, and no longer settled.
        let mut batch = vec![ev(WatchEvent::Closed, "b.task.md")];
        assert!(m.on_events(&mut batch));
        assert_eq!(drained(&mut rx), vec![("b.task.md".into(), false)]);
        assert!(m.tracked.is_empty());
        // Closed again unchanged (an editor touching it): not emitted twice.
        let mut batch = vec![ev(WatchEvent::Closed, "b.task.md")];
        assert!(m.on_events(&mut batch));
        assert_eq!(drained(&mut rx), vec![]);
        // Overflow: the folder is scanned (old files emitted, young ones settled first).
        let mut batch = vec![WatchEvent::Overflow];
        assert!(m.on_events(&mut batch));
        assert!(
            drained(&mut rx).is_empty(),
            "all files are young: settled first"
        );
        assert_eq!(m.tracked.len(), 3);
        // The watch ended.
        let mut batch = vec![WatchEvent::Ended];
        assert!(!m.on_events(&mut batch));
    }

    #[test]
    fn recent_drops_unchanged_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.task.md");
        let mut r = Recent::default();
        assert!(!r.admit(&p), "missing file is not admitted");
        std::fs::write(&p, "x").unwrap();
        assert!(r.admit(&p));
        assert!(!r.admit(&p));
        std::fs::write(&p, "xy").unwrap();
        assert!(r.admit(&p));
    }

    #[test]
    fn a_burst_beyond_the_pruning_size_is_pruned_rarely_and_old_entries_go() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, "x").unwrap();
            p
        };
        let mut r = Recent::default();
        // A burst's worth of files, all within the window (stamped ahead, so however slow
        // this test runs).
        let recent = Instant::now() + Duration::from_secs(3600);
        for i in 0..RECENT_PRUNE_AT {
            r.seen
                .insert(PathBuf::from(format!("t{i}.task.md")), (1, None, recent));
        }
        assert!(r.admit(&file("a.task.md")));
        assert_eq!(r.seen.len(), RECENT_PRUNE_AT + 1, "all kept");
        assert_eq!(
            r.prune_at,
            2 * RECENT_PRUNE_AT,
            "the next pruning moved away"
        );
        assert!(r.admit(&file("b.task.md")));
        assert_eq!(r.prune_at, 2 * RECENT_PRUNE_AT, "not pruned again");
        // Once the window has passed, the next pruning drops them.
        let old = Instant::now() - RECENT_WINDOW - Duration::from_millis(1);
        for v in r.seen.values_mut() {
            v.2 = old;
        }
        r.prune_at = 0;
        assert!(r.admit(&file("c.task.md")));
        assert_eq!(r.seen.len(), 1);
        assert_eq!(r.prune_at, 0, "back to the first pruning size");
    }

    #[test]
    fn handle_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<IntakeHandle>();
        check::<Ready>();
    }
}

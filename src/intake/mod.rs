//! Intake: watching `tasks/` (inotify), the start-up scan, settling half-written files.
//! Emits the paths of task files that are ready to be read, as fast as the kernel tells us.
//!
//! How a file becomes [`Ready`]:
//! - **closed after writing** (inotify `IN_CLOSE_WRITE`) or **renamed/moved in**
//!   (`IN_MOVED_TO`): emitted at once from notify's thread (`settled: false`), no debounce;
//! - **found by a scan** (at start, every `rescan_interval`, on watcher overflow or error, on
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
//! emitted. Duplicates are possible (the daemon dedups by file); an event burst does not emit
//! the same unchanged file twice.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use crate::workspace::Workspace;

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
        source: notify::Error,
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

/// The running intake. Dropping it stops the watcher and the background task; the
/// receiver then ends.
pub struct IntakeHandle {
    cmd: UnboundedSender<Cmd>,
    tasks_dir: PathBuf,
    _watcher: notify::RecommendedWatcher,
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
    let (msg_tx, msg_rx) = mpsc::unbounded_channel();
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();

    let mut callback = Callback {
        dir: dir.clone(),
        ready: ready_tx.clone(),
        msgs: msg_tx,
        recent: Recent::default(),
    };
    let mut watcher =
        notify::recommended_watcher(move |res| callback.handle(res)).map_err(|source| {
            IntakeError::Watch {
                path: dir.clone(),
                source,
            }
        })?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|source| IntakeError::Watch {
            path: dir.clone(),
            source,
        })?;

    let manager = Manager {
        dir: dir.clone(),
        opts,
        ready: ready_tx,
        tracked: HashMap::new(),
        heap: BinaryHeap::new(),
        gen: 0,
    };
    runtime.spawn(manager.run(msg_rx, cmd_rx));

    Ok((
        IntakeHandle {
            cmd: cmd_tx,
            tasks_dir: dir,
            _watcher: watcher,
        },
        ready_rx,
    ))
}

/// Requests from the handle.
enum Cmd {
    Defer(PathBuf),
    Rescan,
}

/// Messages from notify's thread to the background task.
#[derive(Debug)]
enum Msg {
    /// The callback emitted this path (close/rename): stop settling it.
    Emitted(PathBuf),
    /// Created, not yet closed.
    Created(PathBuf),
    /// Written to, or closed without being emitted (unchanged): activity for settling.
    Changed(PathBuf),
    /// Removed or renamed away.
    Gone(PathBuf),
    /// Overflow or watcher error: rescan everything.
    Rescan(Option<String>),
}

/// What an event means for intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ready,
    Created,
    Changed,
    Gone,
    Ignore,
}

fn classify(kind: &EventKind) -> Kind {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Kind::Ready,
        EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Any)) => Kind::Ready,
        // inotify also sends the `To` half on its own: that one is emitted.
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => Kind::Ignore,
        EventKind::Modify(ModifyKind::Name(_)) => Kind::Gone,
        EventKind::Modify(_) => Kind::Changed,
        EventKind::Create(_) => Kind::Created,
        EventKind::Remove(_) => Kind::Gone,
        _ => Kind::Ignore,
    }
}

/// True for a direct child of `dir` named like a task file. Cheap: no system call.
fn is_task_path(dir: &Path, path: &Path) -> bool {
    path.parent() == Some(dir)
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(Workspace::is_task_file_name)
}

/// Size and mtime of a regular file (symlinks followed); None when missing or not a file.
fn stat(path: &Path) -> Option<(u64, Option<SystemTime>)> {
    let m = std::fs::metadata(path).ok()?;
    if !m.is_file() {
        return None;
    }
    Some((m.len(), m.modified().ok()))
}

/// What the callback emitted lately, to drop repeats of an unchanged file in one burst.
#[derive(Default)]
struct Recent {
    seen: HashMap<PathBuf, (u64, Option<SystemTime>, Instant)>,
}

const RECENT_WINDOW: Duration = Duration::from_secs(1);

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
        if self.seen.len() >= 4096 {
            self.seen
                .retain(|_, (_, _, at)| now.duration_since(*at) < RECENT_WINDOW);
        }
        self.seen.insert(path.to_path_buf(), (len, mtime, now));
        true
    }
}

/// The notify callback's state. Runs on notify's thread; kept tiny.
struct Callback {
    dir: PathBuf,
    ready: UnboundedSender<Ready>,
    msgs: UnboundedSender<Msg>,
    recent: Recent,
}

impl Callback {
    fn handle(&mut self, res: notify::Result<notify::Event>) {
        let event = match res {
            Ok(ev) => ev,
            Err(e) => {
                let _ = self.msgs.send(Msg::Rescan(Some(e.to_string())));
                return;
            }
        };
        if event.need_rescan() {
            let _ = self.msgs.send(Msg::Rescan(None));
            return;
        }
        let kind = classify(&event.kind);
        if kind == Kind::Ignore {
            return;
        }
        for path in event.paths {
            if !is_task_path(&self.dir, &path) {
                continue;
            }
            let msg = match kind {
                Kind::Ready => {
                    if self.recent.admit(&path) {
                        // Tell the background task first, so that a `defer` the daemon sends
                        // after seeing this Ready is handled after it.
                        let _ = self.msgs.send(Msg::Emitted(path.clone()));
                        let _ = self.ready.send(Ready {
                            path,
                            settled: false,
                        });
                        continue;
                    } else {
                        Msg::Changed(path)
                    }
                }
                Kind::Created => Msg::Created(path),
                Kind::Changed => Msg::Changed(path),
                Kind::Gone => Msg::Gone(path),
                Kind::Ignore => continue,
            };
            let _ = self.msgs.send(msg);
        }
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
}

impl Manager {
    async fn run(mut self, mut msgs: UnboundedReceiver<Msg>, mut cmds: UnboundedReceiver<Cmd>) {
        self.scan();
        let period = self.opts.rescan_interval.max(Duration::from_millis(10));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watcher_alive = true;
        loop {
            let next = self.heap.peek().map(|Reverse((at, _, _))| *at);
            let sleep_to = tokio::time::Instant::from_std(
                next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)),
            );
            tokio::select! {
                biased;
                msg = msgs.recv(), if watcher_alive => match msg {
                    None => watcher_alive = false,
                    Some(msg) => self.on_msg(msg),
                },
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

    fn on_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Emitted(path) => {
                // Delivered fresh: no need to settle it, unless the daemon asked for that.
                if self.tracked.get(&path).is_some_and(|t| !t.deferred) {
                    self.tracked.remove(&path);
                }
            }
            Msg::Gone(path) => {
                self.tracked.remove(&path);
            }
            Msg::Created(path) => {
                // Nearly always closed a moment later (then `Emitted` ends the track): the
                // file is looked at only if its quiet period passes first.
                if !self.tracked.contains_key(&path) {
                    let quiet = self.opts.create_quiet;
                    self.start_track(path, quiet, false, None);
                }
            }
            Msg::Changed(path) => {
                // The deadline moves; its heap entry is moved on when it comes due (no entry
                // per write of a file written in many pieces).
                if let Some(t) = self.tracked.get_mut(&path) {
                    t.deadline = Instant::now() + t.quiet;
                }
            }
            Msg::Rescan(err) => {
                match err {
                    Some(e) => tracing::warn!(
                        "watching {} failed ({e}); rescanning the folder",
                        self.dir.display()
                    ),
                    None => tracing::info!(
                        "watcher overflow on {}; rescanning the folder",
                        self.dir.display()
                    ),
                }
                self.scan();
            }
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
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !Workspace::is_task_file_name(name) {
                continue;
            }
            let path = self.dir.join(name);
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, RemoveKind};

    #[test]
    fn classifies_events() {
        let close_write = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert_eq!(classify(&close_write), Kind::Ready);
        let to = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert_eq!(classify(&to), Kind::Ready);
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        assert_eq!(classify(&both), Kind::Ignore);
        let from = EventKind::Modify(ModifyKind::Name(RenameMode::From));
        assert_eq!(classify(&from), Kind::Gone);
        let create = EventKind::Create(CreateKind::File);
        assert_eq!(classify(&create), Kind::Created);
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        assert_eq!(classify(&data), Kind::Changed);
        assert_eq!(classify(&EventKind::Remove(RemoveKind::File)), Kind::Gone);
        let read = EventKind::Access(AccessKind::Close(AccessMode::Read));
        assert_eq!(classify(&read), Kind::Ignore);
        let open = EventKind::Access(AccessKind::Open(AccessMode::Any));
        assert_eq!(classify(&open), Kind::Ignore);
    }

    #[test]
    fn task_paths_are_direct_children_with_task_names() {
        let dir = Path::new("/w/tasks");
        assert!(is_task_path(dir, Path::new("/w/tasks/a.task.md")));
        assert!(!is_task_path(dir, Path::new("/w/tasks/sub/a.task.md")));
        assert!(!is_task_path(dir, Path::new("/w/tasks/.a.task.md")));
        assert!(!is_task_path(dir, Path::new("/w/tasks/a.task.md.tmp")));
        assert!(!is_task_path(dir, Path::new("/w/tasks")));
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
    fn handle_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<IntakeHandle>();
        check::<Ready>();
    }
}

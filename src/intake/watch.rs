//! The inotify watch on `tasks/`, read on the tokio runtime: only the events intake acts on
//! (created, written, closed after writing, moved in), none for reads or moves out.
//!
//! Asking for no more than that matters: each event wakes a reader, and the daemon's own work
//! on a task file (reading it, archiving it) would otherwise wake one twice per task.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// What happened to a direct child of the watched folder, or to the watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// Created (not yet closed): a writer is at work, or a hard link appeared.
    Created(OsString),
    /// Written to.
    Modified(OsString),
    /// Closed after writing, or moved in: complete, as far as the kernel can tell.
    Closed(OsString),
    /// The kernel's queue overflowed: events were lost.
    Overflow,
    /// The watch ended (the folder was removed, moved or unmounted).
    Ended,
}

/// The mask: what intake needs, nothing the daemon itself causes when it reads a task file
/// or moves it to `processed/`.
fn mask() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
}

/// How many reads one batch drains at most (nix reads 4 KiB, some 100 events, at a time):
/// a burst comes as one batch, and a folder that never stops changing cannot starve the rest.
const MAX_READS_PER_BATCH: usize = 16;

/// The inotify instance, as a raw descriptor for tokio's reactor.
#[derive(Debug)]
struct Fd(Inotify);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// An inotify instance watching one folder.
#[derive(Debug)]
pub struct DirWatch {
    fd: AsyncFd<Fd>,
}

impl DirWatch {
    /// Watches `dir` (a folder; symlinks followed). Must be called inside a tokio runtime.
    pub fn new(dir: &Path) -> io::Result<DirWatch> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        inotify.add_watch(dir, mask())?;
        // SAFETY: the descriptor is the Inotify's own, owned by the AsyncFd from here on;
        // nothing closes or replaces it, and `Fd::as_raw_fd` always returns that one.
        let fd = unsafe { AsyncFd::register_with_interest(Fd(inotify), Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(DirWatch { fd })
    }

    /// Waits for events and appends every one that is ready to `out` (a burst comes as one
    /// batch). Cancel-safe: nothing is read before the await completes.
    pub async fn next_batch(&mut self, out: &mut Vec<WatchEvent>) -> io::Result<()> {
        loop {
            let mut ready = self.fd.readable().await?;
            let mut drained = false;
            let read = ready.try_io(|fd| {
                let mut got = 0;
                for _ in 0..MAX_READS_PER_BATCH {
                    match fd.get_ref().0.read_events() {
                        Ok(events) => {
                            got += events.len();
                            for e in events {
                                out.extend(classify(e.mask, e.name.as_deref()));
                            }
                        }
                        Err(Errno::EINTR) => continue,
                        // Nothing more now: a batch if there was anything, else wait again.
                        Err(Errno::EAGAIN) if got > 0 => {
                            drained = true;
                            break;
                        }
                        Err(e) => return Err(io::Error::from(e)),
                    }
                }
                Ok(())
            });
            match read {
                Ok(Ok(())) => {
                    if drained {
                        ready.clear_ready();
                    }
                    return Ok(());
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

/// What one inotify record means to intake (None: nothing it acts on).
fn classify(mask: AddWatchFlags, name: Option<&OsStr>) -> Option<WatchEvent> {
    if mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
        return Some(WatchEvent::Overflow);
    }
    if mask.intersects(
        AddWatchFlags::IN_IGNORED
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF
            | AddWatchFlags::IN_UNMOUNT,
    ) {
        return Some(WatchEvent::Ended);
    }
    let name = name.filter(|n| !n.is_empty())?;
    if mask.contains(AddWatchFlags::IN_ISDIR) {
        return None;
    }
    let name = name.to_os_string();
    if mask.intersects(AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO) {
        Some(WatchEvent::Closed(name))
    } else if mask.contains(AddWatchFlags::IN_CREATE) {
        Some(WatchEvent::Created(name))
    } else if mask.contains(AddWatchFlags::IN_MODIFY) {
        Some(WatchEvent::Modified(name))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn classifies_records_of_every_kind() {
        use AddWatchFlags as F;
        let s = |n: &str| Some(OsString::from(n));
        let table: [(AddWatchFlags, Option<&str>, Option<WatchEvent>); 10] = [
            (
                F::IN_CREATE,
                Some("a.task.md"),
                Some(WatchEvent::Created("a.task.md".into())),
            ),
            (
                F::IN_MODIFY,
                Some("a.task.md"),
                Some(WatchEvent::Modified("a.task.md".into())),
            ),
            (
                F::IN_CLOSE_WRITE,
                Some("a.task.md"),
                Some(WatchEvent::Closed("a.task.md".into())),
            ),
            (
                F::IN_MOVED_TO,
                Some("b.md"),
                Some(WatchEvent::Closed("b.md".into())),
            ),
            (F::IN_CREATE | F::IN_ISDIR, Some("sub"), None),
            (F::IN_CREATE, Some(""), None),
            (F::IN_Q_OVERFLOW, None, Some(WatchEvent::Overflow)),
            (F::IN_DELETE_SELF, None, Some(WatchEvent::Ended)),
            (F::IN_IGNORED, None, Some(WatchEvent::Ended)),
            (F::IN_CLOSE_NOWRITE, Some("a.task.md"), None),
        ];
        for (mask, name, want) in table {
            let name = name.and_then(s);
            assert_eq!(classify(mask, name.as_deref()), want, "{mask:?} {name:?}");
        }
    }

    async fn batch_within(w: &mut DirWatch, d: Duration) -> Vec<WatchEvent> {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(d, w.next_batch(&mut out)).await;
        out
    }

    #[tokio::test]
    async fn writes_are_seen_and_the_daemons_own_reads_and_moves_are_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("processed");
        std::fs::create_dir(&sub).expect("mkdir");
        let mut w = DirWatch::new(dir.path()).expect("watch");
        let file = dir.path().join("a.task.md");
        std::fs::write(&file, "hello").expect("write");
        let mut got = Vec::new();
        while !got.contains(&WatchEvent::Closed("a.task.md".into())) {
            let b = batch_within(&mut w, Duration::from_secs(5)).await;
            assert!(!b.is_empty(), "no event for a written file: {got:?}");
            got.extend(b);
        }
        assert_eq!(got.first(), Some(&WatchEvent::Created("a.task.md".into())));
        // What the daemon does to a task file: read it, move it to processed/.
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "hello");
        std::fs::rename(&file, sub.join("a.task.md")).expect("move");
        let quiet = batch_within(&mut w, Duration::from_millis(300)).await;
        assert_eq!(quiet, vec![], "reads and moves out must not wake intake");
        // Moved in: complete at once.
        std::fs::rename(sub.join("a.task.md"), dir.path().join("b.task.md")).expect("move in");
        let b = batch_within(&mut w, Duration::from_secs(5)).await;
        assert_eq!(b, vec![WatchEvent::Closed("b.task.md".into())]);
    }

    #[tokio::test]
    async fn removing_the_folder_ends_the_watch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let watched = dir.path().join("tasks");
        std::fs::create_dir(&watched).expect("mkdir");
        let mut w = DirWatch::new(&watched).expect("watch");
        std::fs::remove_dir(&watched).expect("rmdir");
        let b = batch_within(&mut w, Duration::from_secs(5)).await;
        assert!(b.contains(&WatchEvent::Ended), "{b:?}");
    }

    #[tokio::test]
    async fn a_missing_folder_or_a_file_cannot_be_watched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = DirWatch::new(&dir.path().join("nope")).expect_err("missing");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let file = dir.path().join("f");
        std::fs::write(&file, "").expect("write");
        let e = DirWatch::new(&file).expect_err("a file");
        assert_eq!(e.raw_os_error(), Some(nix::errno::Errno::ENOTDIR as i32));
    }
}

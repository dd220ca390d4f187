//! The inotify watch on `tasks/`, read on the tokio runtime: only the events intake acts on
//! (created, written, closed after writing, moved in), none for reads or moves out.
//!
//! Asking for no more than that matters: each event wakes a reader, and the daemon's own work
//! on a task file (reading it, archiving it) would otherwise wake one twice per task.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use tokio::io::unix::AsyncFd;

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
const MASK: u32 = libc::IN_CREATE
    | libc::IN_MODIFY
    | libc::IN_CLOSE_WRITE
    | libc::IN_MOVED_TO
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_ONLYDIR;

/// Size of the fixed part of `struct inotify_event` (wd, mask, cookie, len).
const HEADER: usize = 16;

/// An inotify instance watching one folder.
#[derive(Debug)]
pub struct DirWatch {
    fd: AsyncFd<OwnedFd>,
    buf: Vec<u8>,
}

impl DirWatch {
    /// Watches `dir` (a folder; symlinks followed). Must be called inside a tokio runtime.
    pub fn new(dir: &Path) -> io::Result<DirWatch> {
        // SAFETY: inotify_init1 has no memory preconditions; the result is checked.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        // SAFETY: a valid C string and our inotify descriptor.
        if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), MASK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the AsyncFd owns the descriptor; nothing else closes or replaces it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(DirWatch {
            fd,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Waits for events and appends every one that is ready to `out` (one read: a burst
    /// comes as one batch). Cancel-safe: nothing is read before the await completes.
    pub async fn next_batch(&mut self, out: &mut Vec<WatchEvent>) -> io::Result<()> {
        loop {
            let mut ready = self.fd.readable().await?;
            let buf = &mut self.buf;
            // SAFETY: read(2) into our own buffer, at most its length.
            let read = ready.try_io(|fd| {
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match read {
                Ok(Ok(n)) => {
                    parse(&self.buf[..n], out);
                    return Ok(());
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

/// Decodes the `struct inotify_event` records in `bytes`.
fn parse(bytes: &[u8], out: &mut Vec<WatchEvent>) {
    let mut at = 0;
    while let Some(head) = bytes.get(at..at + HEADER) {
        let word = |i: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&head[i..i + 4]);
            u32::from_ne_bytes(w)
        };
        let (mask, len) = (word(4), word(12) as usize);
        let name = bytes
            .get(at + HEADER..at + HEADER + len)
            .map(|n| &n[..n.iter().position(|b| *b == 0).unwrap_or(n.len())])
            .unwrap_or_default();
        at += HEADER + len;
        if mask & libc::IN_Q_OVERFLOW != 0 {
            out.push(WatchEvent::Overflow);
            continue;
        }
        if mask & (libc::IN_IGNORED | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF | libc::IN_UNMOUNT)
            != 0
        {
            out.push(WatchEvent::Ended);
            continue;
        }
        if name.is_empty() || mask & libc::IN_ISDIR != 0 {
            continue;
        }
        let name = || OsString::from_vec(name.to_vec());
        if mask & (libc::IN_CLOSE_WRITE | libc::IN_MOVED_TO) != 0 {
            out.push(WatchEvent::Closed(name()));
        } else if mask & libc::IN_CREATE != 0 {
            out.push(WatchEvent::Created(name()));
        } else if mask & libc::IN_MODIFY != 0 {
            out.push(WatchEvent::Modified(name()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn record(mask: u32, name: &str) -> Vec<u8> {
        // Names are NUL-padded to a multiple of 16, as the kernel does.
        let padded = if name.is_empty() {
            0
        } else {
            (name.len() / 16 + 1) * 16
        };
        let mut v = Vec::new();
        v.extend_from_slice(&1i32.to_ne_bytes());
        v.extend_from_slice(&mask.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(&(padded as u32).to_ne_bytes());
        v.extend_from_slice(name.as_bytes());
        v.resize(HEADER + padded, 0);
        v
    }

    #[test]
    fn parses_records_of_every_kind() {
        let mut bytes = Vec::new();
        for (mask, name) in [
            (libc::IN_CREATE, "a.task.md"),
            (libc::IN_MODIFY, "a.task.md"),
            (libc::IN_CLOSE_WRITE, "a.task.md"),
            (libc::IN_MOVED_TO, "a-name-of-exactly-32-characters.md"),
            (libc::IN_CREATE | libc::IN_ISDIR, "sub"),
            (libc::IN_Q_OVERFLOW, ""),
            (libc::IN_DELETE_SELF, ""),
            (libc::IN_IGNORED, ""),
        ] {
            bytes.extend(record(mask, name));
        }
        let mut out = Vec::new();
        parse(&bytes, &mut out);
        let s = |n: &str| OsString::from(n);
        assert_eq!(
            out,
            vec![
                WatchEvent::Created(s("a.task.md")),
                WatchEvent::Modified(s("a.task.md")),
                WatchEvent::Closed(s("a.task.md")),
                WatchEvent::Closed(s("a-name-of-exactly-32-characters.md")),
                WatchEvent::Overflow,
                WatchEvent::Ended,
                WatchEvent::Ended,
            ]
        );
        // A record cut short (the kernel never sends one) is not read past.
        let mut out = Vec::new();
        parse(&bytes[..HEADER + 4], &mut out);
        assert_eq!(out, vec![]);
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
        assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR));
    }
}

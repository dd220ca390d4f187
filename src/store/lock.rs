//! The workspace lock: one `orca run` owns a workspace (`.orca/orca.lock`, `flock`).
//! The kernel drops the lock when the process dies, so a killed daemon never leaves it stale.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::workspace::Workspace;

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{} already owns this workspace (lock file {}); stop it first ({}), or use another --root", held_by(*pid), path.display(), how_to_stop(*pid))]
    Held { pid: Option<u32>, path: PathBuf },
    #[error("cannot use the lock file {}: {source}; check that the workspace's .orca/ folder is writable", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn held_by(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("another `orca run` (pid {pid})"),
        None => "another `orca run` (pid unknown)".to_owned(),
    }
}

fn how_to_stop(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("Ctrl-C in its terminal, or `kill {pid}`"),
        None => "Ctrl-C in its terminal, or find it with `pgrep -a orca`".to_owned(),
    }
}

/// Held while this process owns the workspace. Dropping it releases the lock.
#[derive(Debug)]
pub struct WorkspaceLock {
    file: Flock<File>,
    path: PathBuf,
}

impl WorkspaceLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkspaceLock {
    fn drop(&mut self) {
        // Clear our pid while we still hold the lock; the flock is released after this.
        let _ = self.file.set_len(0);
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LockError + '_ {
    move |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// Takes the workspace lock (non-blocking) and writes our pid into it. Creates `.orca/`.
pub fn acquire(ws: &Workspace) -> Result<WorkspaceLock, LockError> {
    let path = ws.lock_file();
    std::fs::create_dir_all(ws.state_dir()).map_err(io_err(&ws.state_dir()))?;
    // No truncate on open: the file may belong to a running daemon.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err(&path))?;
    let mut file = file;
    let mut tries = 0;
    let mut file = loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => break locked,
            // `holder()` (e.g. `orca status`) takes a shared lock for an instant: look twice
            // more before calling the workspace taken.
            Err((back, Errno::EWOULDBLOCK)) if tries < 2 => {
                tries += 1;
                file = back;
                std::thread::sleep(std::time::Duration::from_millis(15));
            }
            Err((mut back, Errno::EWOULDBLOCK)) => {
                return Err(LockError::Held {
                    pid: read_pid(&mut back),
                    path,
                })
            }
            Err((_, errno)) => return Err(io_err(&path)(io::Error::from(errno))),
        }
    };
    file.set_len(0).map_err(io_err(&path))?;
    file.seek(SeekFrom::Start(0)).map_err(io_err(&path))?;
    writeln!(&mut *file, "{}", std::process::id()).map_err(io_err(&path))?;
    file.flush().map_err(io_err(&path))?;
    Ok(WorkspaceLock { file, path })
}

/// The pid of the `orca run` holding the workspace lock, if one does (None when the lock
/// is free, missing, or its pid cannot be read).
pub fn holder(ws: &Workspace) -> Option<u32> {
    let file = File::open(ws.lock_file()).ok()?;
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        // We got it: nobody holds the exclusive lock. Dropping releases it at once.
        Ok(_free) => None,
        Err((mut file, Errno::EWOULDBLOCK)) => read_pid(&mut file),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_fails_until_the_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::new(dir.path());
        assert_eq!(holder(&ws), None);
        let first = acquire(&ws).unwrap();
        let text = std::fs::read_to_string(ws.lock_file()).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        assert_eq!(holder(&ws), Some(std::process::id()));
        match acquire(&ws) {
            Err(LockError::Held { pid, path }) => {
                assert_eq!(pid, Some(std::process::id()));
                assert_eq!(path, ws.lock_file());
            }
            other => panic!("expected Held, got {other:?}"),
        }
        // The failed attempt must not have wiped the holder's pid.
        assert_eq!(holder(&ws), Some(std::process::id()));
        drop(first);
        assert_eq!(holder(&ws), None);
        let again = acquire(&ws).unwrap();
        assert_eq!(again.path(), ws.lock_file());
    }

    #[test]
    fn held_message_names_pid_and_how_to_stop() {
        let e = LockError::Held {
            pid: Some(4242),
            path: PathBuf::from("/w/.orca/orca.lock"),
        };
        assert_eq!(
            e.to_string(),
            "another `orca run` (pid 4242) already owns this workspace (lock file \
             /w/.orca/orca.lock); stop it first (Ctrl-C in its terminal, or `kill 4242`), \
             or use another --root"
        );
    }
}

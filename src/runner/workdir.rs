//! Opening an attempt's working folder beneath CLAUDE_ALLOWED_ROOT without following any
//! link on the way, once: the agent then starts in the opened folder (by its descriptor),
//! so a folder swapped for a link after the check cannot move the agent outside the root.
//!
//! Linux: `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` (5.6), else a walk of `O_NOFOLLOW`
//! opens, one component at a time.

use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// The opened working folder.
#[derive(Debug)]
pub struct Opened {
    /// Open on the folder (close-on-exec).
    pub fd: OwnedFd,
    /// The path that was opened: the real root joined with the path beneath it.
    pub path: PathBuf,
}

/// Why the working folder could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum WorkdirError {
    #[error("the allowed root {root} cannot be opened: {source}")]
    Root {
        root: PathBuf,
        source: std::io::Error,
    },
    #[error("the working folder {path} is not inside the allowed root {root}")]
    Outside { path: PathBuf, root: PathBuf },
    #[error("the working folder {path} does not exist")]
    Missing { path: PathBuf },
    #[error("the working folder {path} is not a folder")]
    NotAFolder { path: PathBuf },
    #[error("the working folder {path} is (or passes through) a symbolic link, or changed while it was opened")]
    Link { path: PathBuf },
    #[error("the working folder {path} cannot be opened: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl WorkdirError {
    /// True when the open failed for lack of file descriptors or memory (a limit, not the
    /// folder): worth a retry.
    pub fn is_resource_limit(&self) -> bool {
        self.limit_reached().is_some()
    }

    /// The limit reached and what to raise, when [`Self::is_resource_limit`].
    pub fn limit_reached(&self) -> Option<&'static str> {
        match self {
            WorkdirError::Root { source, .. } | WorkdirError::Open { source, .. } => {
                crate::runner::spawn::limit_reached(source)
            }
            _ => None,
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            WorkdirError::Root { .. } => "check CLAUDE_ALLOWED_ROOT",
            WorkdirError::Missing { .. } | WorkdirError::NotAFolder { .. } => {
                "create it or fix `working_dir` in the task file"
            }
            WorkdirError::Link { .. } | WorkdirError::Outside { .. } => {
                "name the real folder inside CLAUDE_ALLOWED_ROOT in `working_dir` (no symbolic links)"
            }
            WorkdirError::Open { .. } => "check the folder's permissions",
        }
    }
}

/// Opens `path` (absolute, already resolved) beneath `root`, following no link below the
/// root. The root itself may be reached through links (it is configuration).
pub fn open_beneath(root: &Path, path: &Path) -> Result<Opened, WorkdirError> {
    let root_err = |source| WorkdirError::Root {
        root: root.to_path_buf(),
        source,
    };
    let real_root = std::fs::canonicalize(root).map_err(root_err)?;
    let rel = path
        .strip_prefix(&real_root)
        .or_else(|_| path.strip_prefix(root))
        .map_err(|_| WorkdirError::Outside {
            path: path.to_path_buf(),
            root: real_root.clone(),
        })?
        .to_path_buf();
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(WorkdirError::Outside {
            path: path.to_path_buf(),
            root: real_root,
        });
    }
    let dir_flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
    let root_fd =
        rustix::fs::open(&real_root, dir_flags, Mode::empty()).map_err(|e| root_err(e.into()))?;
    let shown = real_root.join(&rel);
    let fail = |e: Errno| match e {
        Errno::NOENT => WorkdirError::Missing {
            path: shown.clone(),
        },
        Errno::NOTDIR => WorkdirError::NotAFolder {
            path: shown.clone(),
        },
        Errno::LOOP | Errno::XDEV => WorkdirError::Link {
            path: shown.clone(),
        },
        e => WorkdirError::Open {
            path: shown.clone(),
            source: e.into(),
        },
    };
    let target: &Path = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        &rel
    };
    let fd = match rustix::fs::openat2(
        &root_fd,
        target,
        dir_flags,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(Errno::NOSYS | Errno::PERM) => walk(root_fd, target).map_err(fail)?,
        // openat2 retries on its own; a folder renamed all the time may still make it give up.
        Err(Errno::AGAIN) => walk(root_fd, target).map_err(fail)?,
        Err(e) => return Err(fail(e)),
    };
    Ok(Opened { fd, path: shown })
}

/// The component-by-component walk for kernels without openat2: each step is opened with
/// `O_NOFOLLOW | O_DIRECTORY` relative to the previous one (never `..`).
fn walk(root: OwnedFd, rel: &Path) -> Result<OwnedFd, Errno> {
    let mut cur = root;
    for c in rel.components() {
        let Component::Normal(name) = c else { continue };
        let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        cur = match rustix::fs::openat(&cur, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            // A link in the way (O_NOFOLLOW on a link gives ELOOP, or ENOTDIR with
            // O_DIRECTORY): tell it from a plain file.
            Err(Errno::NOTDIR | Errno::LOOP) => {
                let st = rustix::fs::statat(&cur, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)?;
                if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink
                {
                    return Err(Errno::LOOP);
                }
                return Err(Errno::NOTDIR);
            }
            Err(e) => return Err(e),
        };
    }
    Ok(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real(p: &Path) -> PathBuf {
        std::fs::read_link(p).unwrap()
    }

    #[test]
    fn opens_inside_refuses_links_files_and_outside() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("file"), "x").unwrap();
        std::os::unix::fs::symlink(root.join("a"), root.join("link")).unwrap();
        std::os::unix::fs::symlink("/", root.join("a/out")).unwrap();

        let o = open_beneath(&root, &root.join("a/b")).unwrap();
        assert_eq!(o.path, root.join("a/b"));
        let fdpath = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&o.fd)
        ));
        assert_eq!(real(&fdpath), root.join("a/b"));
        assert_eq!(open_beneath(&root, &root).unwrap().path, root);

        for (p, want) in [
            ("link", "symbolic link"),
            ("link/b", "symbolic link"),
            ("a/out", "symbolic link"),
            ("file", "not a folder"),
            ("nope", "does not exist"),
        ] {
            let e = open_beneath(&root, &root.join(p)).unwrap_err();
            assert!(e.to_string().contains(want), "{p}: {e}");
        }
        let e = open_beneath(&root.join("a"), &root.join("file")).unwrap_err();
        assert!(matches!(e, WorkdirError::Outside { .. }), "{e}");

        // The walk for older kernels decides the same.
        let rfd = |_: ()| {
            rustix::fs::open(&root, OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap()
        };
        assert!(walk(rfd(()), Path::new("a/b")).is_ok());
        assert_eq!(walk(rfd(()), Path::new("link/b")).unwrap_err(), Errno::LOOP);
        assert_eq!(walk(rfd(()), Path::new("a/out")).unwrap_err(), Errno::LOOP);
        assert_eq!(walk(rfd(()), Path::new("file")).unwrap_err(), Errno::NOTDIR);
        assert_eq!(walk(rfd(()), Path::new("nope")).unwrap_err(), Errno::NOENT);
    }
}

//! Archive moves of task files out of `tasks/` into `tasks/processed/` or `tasks/rejected/`,
//! never overwriting (`-2`, `-3`, ... suffixes), idempotent for crash recovery.

use std::io;
use std::path::{Path, PathBuf};

use super::error::ArtifactError;
use crate::workspace::{in_folder, FolderError, Workspace};

/// Highest suffix tried before giving up (a folder with that many same-named files is a
/// sign something else is wrong).
const MAX_SUFFIX: u32 = 10_000;

/// Where a finished task file goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveDest {
    /// `tasks/processed/`: any final state but rejected.
    Processed,
    /// `tasks/rejected/`: files that could not be accepted.
    Rejected,
}

impl ArchiveDest {
    pub fn dir(self, ws: &Workspace) -> PathBuf {
        match self {
            ArchiveDest::Processed => ws.processed(),
            ArchiveDest::Rejected => ws.rejected(),
        }
    }
}

/// Moves `file` into the destination folder, keeping its name, or `<stem>-2.task.md`,
/// `-3`, ... when the name is taken (never overwrites, also under races). Returns the new
/// path, or `Ok(None)` when `file` no longer exists (already archived: idempotent).
pub fn archive(
    ws: &Workspace,
    file: &Path,
    dest: ArchiveDest,
) -> Result<Option<PathBuf>, ArtifactError> {
    let dir = dest.dir(ws);
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            ArtifactError::io(
                "archive",
                file,
                io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
            )
        })?;
    for n in 1..=MAX_SUFFIX {
        let target = dir.join(suffixed_name(&name, n));
        match in_folder(&dir, || move_no_replace(file, &target)) {
            Ok(()) => return Ok(Some(target)),
            Err(FolderError::Op(e)) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            // Gone already (archived by an earlier, interrupted finalize): nothing to do.
            Err(FolderError::Op(e)) if e.kind() == io::ErrorKind::NotFound && !exists(file) => {
                return Ok(None)
            }
            Err(FolderError::Make(e)) => return Err(ArtifactError::io("create folder", &dir, e)),
            Err(FolderError::Op(e)) => return Err(ArtifactError::io("archive", file, e)),
        }
    }
    Err(ArtifactError::io(
        "archive",
        file,
        io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{MAX_SUFFIX} files named like it are already in {}",
                dir.display()
            ),
        ),
    ))
}

/// `a.task.md` with n=1 -> itself; n=2 -> `a-2.task.md`; other names get the suffix before
/// their last extension (`notes.md` -> `notes-2.md`), or at the end.
pub fn suffixed_name(name: &str, n: u32) -> String {
    if n <= 1 {
        return name.to_owned();
    }
    if let Some(stem) = name.strip_suffix(".task.md") {
        return format!("{stem}-{n}.task.md");
    }
    match name.rfind('.') {
        Some(i) if i > 0 => format!("{}-{n}{}", &name[..i], &name[i..]),
        _ => format!("{name}-{n}"),
    }
}

/// True when neither `results/<stem>_result.json` nor `summaries/<stem>_summary.txt`
/// exists (a dangling symlink counts as existing).
pub fn unique_stem_free(ws: &Workspace, stem: &str) -> bool {
    !exists(&ws.result_file(stem)) && !exists(&ws.summary_file(stem))
}

/// The first of `stem`, `stem-2`, `stem-3`, ... whose artifacts are free (DESIGN §1).
/// Not reserved: two callers racing for the same stem must serialise (the daemon does).
pub fn free_stem(ws: &Workspace, stem: &str) -> String {
    if unique_stem_free(ws, stem) {
        return stem.to_owned();
    }
    (2..=MAX_SUFFIX)
        .map(|n| format!("{stem}-{n}"))
        .find(|cand| unique_stem_free(ws, cand))
        .unwrap_or_else(|| format!("{stem}-{}", crate::clock::now_ms()))
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// Renames `from` to `to` unless `to` exists (then `AlreadyExists`), atomically where the
/// file system allows: `renameat2(RENAME_NOREPLACE)`, else hard link + unlink, else an
/// exclusive-create copy + unlink (across file systems).
fn move_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use nix::errno::Errno;
        use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
        match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(Errno::EEXIST) => return Err(io::ErrorKind::AlreadyExists.into()),
            Err(Errno::ENOENT) => return Err(io::ErrorKind::NotFound.into()),
            // Not supported by this file system or kernel, or across devices: fall back.
            Err(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP | Errno::EXDEV) => {}
            Err(e) => return Err(io::Error::from(e)),
        }
    }
    match std::fs::hard_link(from, to) {
        Ok(()) => return std::fs::remove_file(from),
        Err(e)
            if e.kind() == io::ErrorKind::AlreadyExists || e.kind() == io::ErrorKind::NotFound =>
        {
            return Err(e)
        }
        Err(_) => {} // no hard links here (or across devices): copy instead
    }
    let mut src = std::fs::File::open(from)?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)?;
    if let Err(e) = io::copy(&mut src, &mut dst).and_then(|_| dst.sync_all()) {
        let _ = std::fs::remove_file(to);
        return Err(e);
    }
    std::fs::remove_file(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes() {
        assert_eq!(suffixed_name("a.task.md", 1), "a.task.md");
        assert_eq!(suffixed_name("a.task.md", 2), "a-2.task.md");
        assert_eq!(suffixed_name("notes.md", 3), "notes-3.md");
        assert_eq!(suffixed_name("README", 2), "README-2");
        assert_eq!(suffixed_name(".hidden", 2), ".hidden-2");
    }

    #[test]
    fn archives_with_suffix_and_is_idempotent() {
        let d = tempfile::tempdir().unwrap();
        let ws = Workspace::new(d.path());
        std::fs::create_dir_all(ws.tasks()).unwrap();
        let f = ws.tasks().join("a.task.md");
        let mut got = Vec::new();
        for i in 1..=3 {
            std::fs::write(&f, format!("content {i}")).unwrap();
            got.push(archive(&ws, &f, ArchiveDest::Processed).unwrap().unwrap());
            assert!(!f.exists());
        }
        assert_eq!(
            got,
            vec![
                ws.processed().join("a.task.md"),
                ws.processed().join("a-2.task.md"),
                ws.processed().join("a-3.task.md"),
            ]
        );
        // Nothing was overwritten.
        for (i, p) in got.iter().enumerate() {
            assert_eq!(
                std::fs::read_to_string(p).unwrap(),
                format!("content {}", i + 1)
            );
        }
        // Source gone: idempotent no-op.
        assert_eq!(archive(&ws, &f, ArchiveDest::Processed).unwrap(), None);
    }

    #[test]
    fn move_no_replace_refuses_existing_target() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        let b = d.path().join("b");
        std::fs::write(&a, "a").unwrap();
        std::fs::write(&b, "b").unwrap();
        let e = move_no_replace(&a, &b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "b");
        assert!(a.exists());
    }

    #[test]
    fn stems() {
        let d = tempfile::tempdir().unwrap();
        let ws = Workspace::new(d.path());
        assert!(unique_stem_free(&ws, "x"));
        assert_eq!(free_stem(&ws, "x"), "x");
        std::fs::create_dir_all(ws.summaries()).unwrap();
        std::fs::write(ws.summary_file("x"), "").unwrap();
        assert!(!unique_stem_free(&ws, "x"));
        assert_eq!(free_stem(&ws, "x"), "x-2");
        std::fs::create_dir_all(ws.results()).unwrap();
        std::fs::write(ws.result_file("x-2"), "").unwrap();
        assert_eq!(free_stem(&ws, "x"), "x-3");
    }
}

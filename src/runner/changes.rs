//! Which files an agent changed in its working folder: `git status` when the folder is in a
//! git repository, otherwise a before/after comparison of file stamps and content hashes.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hasher;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

/// Files walked at most in a folder that is not a git repository.
const MAX_FILES: usize = 20_000;
/// Files larger than this are compared by stamp only.
const MAX_HASH_BYTES: u64 = 4 * 1024 * 1024;

/// What one file looked like.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    hash: Option<u64>,
}

/// The state of a working folder before or after a run.
#[derive(Debug, Clone)]
pub struct Snapshot {
    root: PathBuf,
    git: bool,
    files: BTreeMap<String, Stamp>,
}

fn hash_file(path: &Path, len: u64) -> Option<u64> {
    if len > MAX_HASH_BYTES {
        return None;
    }
    let mut f = std::fs::File::open(path).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        h.write(&buf[..n]);
    }
    Some(h.finish())
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::symlink_metadata(path).ok()?;
    if !m.is_file() {
        return None;
    }
    Some(Stamp {
        len: m.len(),
        modified: m.modified().ok(),
        hash: hash_file(path, m.len()),
    })
}

/// Paths (relative to `dir`) that `git status` reports as modified, added or untracked.
fn git_dirty(dir: &Path) -> Option<BTreeSet<String>> {
    let out = Command::new("git")
        .args([
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--no-renames",
            "--",
            ".",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    // Paths in porcelain output are relative to the repository top; make them relative to dir.
    let top = Command::new("git")
        .args(["rev-parse", "--show-toplevel"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let top = PathBuf::from(String::from_utf8_lossy(&top.stdout).trim());
    let dir_c = dir.canonicalize().ok()?;
    let prefix = dir_c
        .strip_prefix(top.canonicalize().ok()?)
        .ok()?
        .to_path_buf();
    let mut set = BTreeSet::new();
    for entry in out.stdout.split(|b| *b == 0) {
        if entry.len() < 4 {
            continue;
        }
        let p = String::from_utf8_lossy(&entry[3..]).into_owned();
        let rel = Path::new(&p)
            .strip_prefix(&prefix)
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or(p);
        set.insert(rel);
    }
    Some(set)
}

fn walk(root: &Path, skip: &[PathBuf], out: &mut BTreeMap<String, Stamp>) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            if out.len() >= MAX_FILES {
                return;
            }
            let path = e.path();
            let name = e.file_name();
            if name == ".git" || skip.iter().any(|s| s == &path) {
                continue;
            }
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() {
                if let (Some(s), Ok(rel)) = (stamp(&path), path.strip_prefix(root)) {
                    out.insert(rel.to_string_lossy().into_owned(), s);
                }
            }
        }
    }
}

impl Snapshot {
    /// Takes a snapshot of `dir`; `skip` lists folders to leave out (Orca's own folders
    /// when the working folder is the workspace root).
    pub fn take(dir: &Path, skip: &[PathBuf]) -> Snapshot {
        if let Some(dirty) = git_dirty(dir) {
            let files = dirty
                .into_iter()
                .filter(|p| {
                    let full = dir.join(p);
                    !skip.iter().any(|s| full.starts_with(s))
                })
                .filter_map(|p| stamp(&dir.join(&p)).map(|s| (p, s)))
                .collect();
            return Snapshot {
                root: dir.to_path_buf(),
                git: true,
                files,
            };
        }
        let mut files = BTreeMap::new();
        walk(dir, skip, &mut files);
        Snapshot {
            root: dir.to_path_buf(),
            git: false,
            files,
        }
    }

    /// How the snapshot was taken: `git` or `stamps`.
    pub fn method(&self) -> &'static str {
        if self.git {
            "git"
        } else {
            "stamps"
        }
    }

    /// The files that differ between `self` (before) and a new snapshot of the same folder.
    pub fn changed_since(&self, skip: &[PathBuf]) -> Vec<String> {
        let after = Snapshot::take(&self.root, skip);
        let mut changed = BTreeSet::new();
        if self.git && after.git {
            // Dirty after and new or different; or dirty before and clean (or gone) after.
            for (p, s) in &after.files {
                if self.files.get(p) != Some(s) {
                    changed.insert(p.clone());
                }
            }
            for p in self.files.keys() {
                if !after.files.contains_key(p) {
                    changed.insert(p.clone());
                }
            }
        } else {
            for (p, s) in &after.files {
                if self.files.get(p) != Some(s) {
                    changed.insert(p.clone());
                }
            }
            for p in self.files.keys() {
                if !after.files.contains_key(p) {
                    changed.insert(p.clone());
                }
            }
        }
        changed.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_find_new_changed_and_deleted_files() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join("keep.txt"), "same").expect("write");
        std::fs::write(d.path().join("edit.txt"), "before").expect("write");
        std::fs::write(d.path().join("gone.txt"), "x").expect("write");
        std::fs::create_dir(d.path().join("skipme")).expect("mkdir");
        let skip = vec![d.path().join("skipme")];
        let before = Snapshot::take(d.path(), &skip);
        assert_eq!(before.method(), "stamps");
        std::fs::write(d.path().join("edit.txt"), "after!").expect("write");
        std::fs::write(d.path().join("new.txt"), "n").expect("write");
        std::fs::remove_file(d.path().join("gone.txt")).expect("rm");
        std::fs::write(d.path().join("skipme/ignored.txt"), "i").expect("write");
        assert_eq!(
            before.changed_since(&skip),
            ["edit.txt", "gone.txt", "new.txt"]
        );
    }

    #[test]
    fn git_status_is_used_in_a_repository() {
        let d = tempfile::tempdir().expect("tempdir");
        let git = |args: &[&str]| {
            Command::new("git")
                .args(args)
                .current_dir(d.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
        };
        if !git(&["init", "-q"]).map(|s| s.success()).unwrap_or(false) {
            panic!("git is needed for this test");
        }
        std::fs::write(d.path().join("a.txt"), "a").expect("write");
        std::fs::write(d.path().join("dirty.txt"), "d").expect("write");
        let before = Snapshot::take(d.path(), &[]);
        assert_eq!(before.method(), "git");
        std::fs::write(d.path().join("a.txt"), "changed").expect("write");
        std::fs::create_dir(d.path().join("sub")).expect("mkdir");
        std::fs::write(d.path().join("sub/b.txt"), "b").expect("write");
        assert_eq!(before.changed_since(&[]), ["a.txt", "sub/b.txt"]);
        // Skipped folders stay out in a repository too.
        let skip = vec![d.path().join("logs")];
        let before = Snapshot::take(d.path(), &skip);
        std::fs::create_dir(d.path().join("logs")).expect("mkdir");
        std::fs::write(d.path().join("logs/x.log"), "l").expect("write");
        std::fs::write(d.path().join("c.txt"), "c").expect("write");
        assert_eq!(before.changed_since(&skip), ["c.txt"]);
    }
}

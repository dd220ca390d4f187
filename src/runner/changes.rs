//! Which files an agent changed in its working folder: `git status` when the folder is in a
//! git repository, otherwise a before/after comparison of file stamps.
//!
//! Stamps are metadata (size, inode, mtime, ctime), so a snapshot costs one `stat` per file;
//! only "racy" files, modified within [`RACY`] of the snapshot ([`RACY_FINE`] where
//! timestamps have fractions of a second), are also hashed, because a change within the
//! same timestamp tick would not show in their metadata (git's own "racy clean" rule); a
//! folder's listing is reused only under the same rule. Whether a folder is in a repository
//! is found by looking for `.git` in it and its parents, so `git` is only started where
//! there is one.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::hash::Hasher;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::path_memo::PathMemo;
use crate::task::paths::is_plain;

/// Folder entries looked at, at most, in a folder that is not a git repository.
const MAX_FILES: usize = 20_000;
/// Files larger than this are compared by stamp only.
const MAX_HASH_BYTES: u64 = 4 * 1024 * 1024;
/// Files modified this recently when a snapshot is taken are hashed too, where timestamps
/// are whole seconds (FAT keeps 2 s, ext3 1 s).
const RACY: Duration = Duration::from_secs(2);
/// The same where timestamps have a fraction of a second (ext4, xfs, btrfs, tmpfs: set from
/// the kernel's coarse clock, whose tick is at most 10 ms); five ticks, to be safe.
const RACY_FINE: Duration = Duration::from_millis(50);
/// Bytes of recently modified files a small snapshot may hash on the calling thread.
pub const SMALL_HASH_BYTES: u64 = 256 * 1024;

/// What one file looked like.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    ino: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    /// Content hash, for files modified within [`RACY`] of the snapshot.
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
    // Small: zeroing the buffer is paid per file, and racy files are mostly small.
    let mut buf = [0u8; 8 * 1024];
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        h.write(&buf[..n]);
    }
    Some(h.finish())
}

fn is_racy(m: &std::fs::Metadata, now: SystemTime) -> bool {
    racy_at(m.modified().ok(), m.mtime_nsec(), now)
}

/// Whether a file last modified at `mtime` (whose nanoseconds are `nsec`) may still change
/// without its stamp showing it. A time with no fraction of a second is taken to come from
/// a filesystem with whole-second timestamps (on others that happens once in 10^9 writes,
/// and then costs a hash, not a missed change). No time or one ahead of `now`: racy.
fn racy_at(mtime: Option<SystemTime>, nsec: i64, now: SystemTime) -> bool {
    let window = if nsec == 0 { RACY } else { RACY_FINE };
    mtime
        .and_then(|t| now.duration_since(t).ok())
        .is_none_or(|age| age < window)
}

/// Seconds and nanoseconds as one number of nanoseconds.
fn ns(secs: i64, nsec: i64) -> i128 {
    i128::from(secs) * 1_000_000_000 + i128::from(nsec)
}

fn stamp_of(path: &Path, m: &std::fs::Metadata, now: SystemTime) -> Stamp {
    Stamp {
        len: m.len(),
        ino: m.ino(),
        mtime_ns: ns(m.mtime(), m.mtime_nsec()),
        ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        hash: if is_racy(m, now) {
            hash_file(path, m.len())
        } else {
            None
        },
    }
}

fn stamp(path: &Path, now: SystemTime) -> Option<Stamp> {
    let m = std::fs::symlink_metadata(path).ok()?;
    m.is_file().then(|| stamp_of(path, &m, now))
}

/// The top of the git work tree holding the canonical folder `dir` (the nearest folder,
/// `dir` or a parent, with a `.git` folder or file), found without starting `git`.
fn git_top(dir: &Path) -> Option<PathBuf> {
    if let Some((top, _)) = GIT_TOPS.get(dir, |(_, at)| at.elapsed() < GIT_TOP_TTL) {
        return top;
    }
    let top = find_git_top(dir).map(Path::to_path_buf);
    GIT_TOPS.put(dir, (top.clone(), std::time::Instant::now()));
    top
}

/// [`git_top`] without the reuse: looks at the folder and its parents now (also for
/// [`crate::verify::git::base`], which starts `git` only where this finds a `.git`).
pub(crate) fn find_git_top(dir: &Path) -> Option<&Path> {
    dir.ancestors()
        .find(|a| std::fs::symlink_metadata(a.join(".git")).is_ok())
}

/// How long the answer of [`git_top`] for a folder is reused: tasks in a burst share their
/// working folder, and a repository made or removed meanwhile is seen this much later (the
/// stamp comparison is right either way; git only makes it cheaper in large folders).
const GIT_TOP_TTL: Duration = Duration::from_secs(2);

/// Recent answers of [`git_top`], by folder, with when they were found.
static GIT_TOPS: PathMemo<(Option<PathBuf>, std::time::Instant)> = PathMemo::new(64);

/// What a folder entry is, as its listing says (symlinks are neither folder nor file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    Dir,
    File,
    Other,
}

/// A folder's identity and last change: while these are the same, so are its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FolderKey {
    dev: u64,
    ino: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FolderKey {
    fn of(m: &std::fs::Metadata) -> FolderKey {
        FolderKey {
            dev: m.dev(),
            ino: m.ino(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        }
    }
}

/// A folder's entries: name and kind.
type Listing = Arc<[(OsString, EntryKind)]>;

/// Listings of small folders, reused while the folder's key is unchanged: a working folder
/// shared by a burst of tasks is listed twice per task, and its entries rarely change.
static LISTINGS: PathMemo<(FolderKey, Listing)> = PathMemo::new(64);
/// Folders with more entries than this are listed anew each time.
const LISTING_MEMO_ENTRIES: usize = 256;

/// The entries of `dir` (not following a symlink at `dir` itself), from the memo when the
/// folder has not changed since it was listed.
fn list(dir: &Path) -> Option<Listing> {
    let m = std::fs::symlink_metadata(dir).ok()?;
    let key = FolderKey::of(&m);
    if let Some((_, entries)) = LISTINGS.get(dir, |(k, _)| *k == key) {
        return Some(entries);
    }
    let started = SystemTime::now();
    let entries: Listing = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let ft = e.file_type().ok()?;
            let kind = if ft.is_dir() {
                EntryKind::Dir
            } else if ft.is_file() {
                EntryKind::File
            } else {
                EntryKind::Other
            };
            Some((e.file_name(), kind))
        })
        .collect();
    // Kept only when the folder's last change is no longer racy: a later change then has
    // another mtime, whatever the file system's timestamp granularity.
    if !is_racy(&m, started) && entries.len() <= LISTING_MEMO_ENTRIES {
        LISTINGS.put(dir, (key, Arc::clone(&entries)));
    }
    Some(entries)
}

/// Paths (relative to `dir`) that `git status` reports as modified, added or untracked;
/// None when `dir` is not in a repository or git cannot tell.
fn git_dirty(dir: &Path) -> Option<BTreeSet<String>> {
    let canonical = dir.canonicalize().ok()?;
    let top = git_top(&canonical)?;
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
    let prefix = canonical.strip_prefix(top).ok()?;
    let mut set = BTreeSet::new();
    for entry in out.stdout.split(|b| *b == 0) {
        if entry.len() < 4 {
            continue;
        }
        let p = String::from_utf8_lossy(&entry[3..]).into_owned();
        let rel = Path::new(&p)
            .strip_prefix(prefix)
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or(p);
        set.insert(rel);
    }
    Some(set)
}

/// How much a walk may do: folder entries looked at, and bytes of racy files hashed.
struct Budget {
    entries: usize,
    hash_bytes: u64,
}

/// Stamps the files under `root` into `out`; false when the budget ran out first (what was
/// walked until then is in `out`).
fn walk(
    root: &Path,
    skip: &[PathBuf],
    now: SystemTime,
    budget: &mut Budget,
    out: &mut BTreeMap<String, Stamp>,
) -> bool {
    // Entries are compared with `skip` as bytes when every path involved is written plainly
    // (then bytes and `Path`'s component-by-component equality agree), else as `Path`s.
    let plain = is_plain(root) && skip.iter().all(|s| is_plain(s));
    let skipped = |path: &Path| {
        if plain {
            skip.iter().any(|s| s.as_os_str() == path.as_os_str())
        } else {
            skip.iter().any(|s| s == path)
        }
    };
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Some(entries) = list(&dir) else {
            continue;
        };
        for (name, kind) in entries.iter() {
            if budget.entries == 0 {
                return false;
            }
            budget.entries -= 1;
            let path = dir.join(name);
            if name == ".git" || skipped(&path) {
                continue;
            }
            match kind {
                EntryKind::Dir => stack.push(path),
                EntryKind::File => {
                    let Ok(m) = std::fs::symlink_metadata(&path) else {
                        continue;
                    };
                    if !m.is_file() {
                        continue; // replaced since the listing
                    }
                    if is_racy(&m, now) && m.len() <= MAX_HASH_BYTES {
                        if m.len() > budget.hash_bytes {
                            return false;
                        }
                        budget.hash_bytes -= m.len();
                    }
                    if let Ok(rel) = path.strip_prefix(root) {
                        out.insert(rel.to_string_lossy().into_owned(), stamp_of(&path, &m, now));
                    }
                }
                EntryKind::Other => {}
            }
        }
    }
    true
}

impl Snapshot {
    /// Takes a snapshot of `dir`; `skip` lists folders to leave out (Orca's own folders
    /// when the working folder is the workspace root).
    pub fn take(dir: &Path, skip: &[PathBuf]) -> Snapshot {
        let now = SystemTime::now();
        if let Some(dirty) = git_dirty(dir) {
            let files = dirty
                .into_iter()
                .filter(|p| {
                    let full = dir.join(p);
                    !skip.iter().any(|s| full.starts_with(s))
                })
                .filter_map(|p| stamp(&dir.join(&p), now).map(|s| (p, s)))
                .collect();
            return Snapshot {
                root: dir.to_path_buf(),
                git: true,
                files,
            };
        }
        let mut files = BTreeMap::new();
        let mut budget = Budget {
            entries: MAX_FILES,
            hash_bytes: u64::MAX,
        };
        walk(dir, skip, now, &mut budget, &mut files);
        Snapshot {
            root: dir.to_path_buf(),
            git: false,
            files,
        }
    }

    /// [`Snapshot::take`] for a small folder outside any git repository, cheap enough for the
    /// calling thread: None when `dir` is in a repository (that takes `git`), has more than
    /// `max_entries` entries, or more than [`SMALL_HASH_BYTES`] of recently modified files
    /// to hash. The caller then takes the full snapshot on a blocking thread. `dir` must be
    /// canonical (as task paths are once resolved), so its parents are its real ones.
    pub fn take_small(dir: &Path, skip: &[PathBuf], max_entries: usize) -> Option<Snapshot> {
        if git_top(dir).is_some() {
            return None;
        }
        Self::walk_small(dir, skip, max_entries)
    }

    fn walk_small(dir: &Path, skip: &[PathBuf], max_entries: usize) -> Option<Snapshot> {
        let mut files = BTreeMap::new();
        let mut budget = Budget {
            entries: max_entries,
            hash_bytes: SMALL_HASH_BYTES,
        };
        walk(dir, skip, SystemTime::now(), &mut budget, &mut files).then(|| Snapshot {
            root: dir.to_path_buf(),
            git: false,
            files,
        })
    }

    /// How the snapshot was taken: `git` or `stamps`.
    pub fn method(&self) -> &'static str {
        if self.git {
            "git"
        } else {
            "stamps"
        }
    }

    /// The files that differ between `self` (before) and a new snapshot of the same folder:
    /// new, gone, or with other metadata; a racy file with the same metadata is compared by
    /// content.
    pub fn changed_since(&self, skip: &[PathBuf]) -> Vec<String> {
        self.changes_to(&Snapshot::take(&self.root, skip))
    }

    /// [`Snapshot::changed_since`] when the folder is still small (see
    /// [`Snapshot::take_small`]); None when it is not, or is in a git repository.
    pub fn changed_since_small(&self, skip: &[PathBuf], max_entries: usize) -> Option<Vec<String>> {
        // Comparing may hash the files that were racy before: keep that small too.
        let hashed: u64 = self
            .files
            .values()
            .filter(|s| s.hash.is_some())
            .map(|s| s.len)
            .sum();
        if self.git || self.files.len() > max_entries || hashed > SMALL_HASH_BYTES {
            return None;
        }
        // Not in a repository before the run: stamps are compared with stamps, even if a
        // repository appeared meanwhile.
        let after = Snapshot::walk_small(&self.root, skip, max_entries)?;
        Some(self.changes_to(&after))
    }

    fn changes_to(&self, after: &Snapshot) -> Vec<String> {
        let mut changed = BTreeSet::new();
        for (p, s) in &after.files {
            let same = self.files.get(p).is_some_and(|b| {
                let meta_same = (b.len, b.ino, b.mtime_ns, b.ctime_ns)
                    == (s.len, s.ino, s.mtime_ns, s.ctime_ns);
                match b.hash {
                    Some(h) if meta_same => {
                        s.hash.or_else(|| hash_file(&self.root.join(p), s.len)) == Some(h)
                    }
                    _ => meta_same,
                }
            });
            if !same {
                changed.insert(p.clone());
            }
        }
        for p in self.files.keys() {
            if !after.files.contains_key(p) {
                changed.insert(p.clone());
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

    /// Sets the modification time of a folder (or file) `secs` into the past.
    fn age(path: &Path, secs: u64) {
        set_mtime(path, SystemTime::now() - Duration::from_secs(secs));
    }

    fn set_mtime(path: &Path, t: SystemTime) {
        let f = std::fs::File::open(path).expect("open");
        f.set_times(std::fs::FileTimes::new().set_modified(t).set_accessed(t))
            .expect("set times");
    }

    /// A change "just now" however slowly the test runs: the mtime ahead of the clock.
    fn fresh(path: &Path) {
        set_mtime(path, SystemTime::now() + Duration::from_secs(3600));
    }

    #[test]
    fn folder_listings_are_reused_only_while_the_folder_is_unchanged() {
        let d = tempfile::tempdir().expect("tempdir");
        let sub = d.path().join("sub");
        std::fs::create_dir(&sub).expect("mkdir");
        std::fs::write(sub.join("a.txt"), "a").expect("write");
        // The remembered listing that still holds, by its number of entries.
        let memo = |dir: &Path| {
            let key = FolderKey::of(&std::fs::symlink_metadata(dir).expect("stat"));
            LISTINGS.get(dir, |(k, _)| *k == key).map(|(_, e)| e.len())
        };
        // Listed right after a change: not remembered (a change in the same clock tick
        // would not show in the folder's mtime).
        fresh(&sub);
        assert_eq!(list(&sub).map(|e| e.len()), Some(1));
        assert_eq!(memo(&sub), None);
        // Where timestamps are whole seconds, a change a second ago is still that recent.
        let whole = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        set_mtime(
            &sub,
            SystemTime::UNIX_EPOCH + Duration::from_secs(whole - 1),
        );
        assert_eq!(list(&sub).map(|e| e.len()), Some(1));
        assert_eq!(memo(&sub), None);
        // Settled: remembered, and reused while the folder's stamp is the same.
        age(&sub, 10);
        let before = Snapshot::take(d.path(), &[]);
        assert_eq!(memo(&sub), Some(1));
        // A new entry changes the folder's mtime: listed anew, the new file is seen.
        std::fs::write(sub.join("b.txt"), "b").expect("write");
        fresh(&sub);
        assert_eq!(before.changed_since(&[]), ["sub/b.txt"]);
        assert_eq!(
            memo(&sub),
            None,
            "listed too soon after its change to be kept"
        );
        // A file replaced by a folder of the same name under a remembered listing (the
        // listing's stamp then differs too) is not stamped as a file.
        age(&sub, 10);
        let before = Snapshot::take(d.path(), &[]);
        assert_eq!(memo(&sub), Some(2));
        std::fs::remove_file(sub.join("a.txt")).expect("rm");
        std::fs::create_dir(sub.join("a.txt")).expect("mkdir");
        assert_eq!(before.changed_since(&[]), ["sub/a.txt"]);
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

    #[test]
    fn only_recent_files_are_hashed_and_a_same_stamp_change_is_caught() {
        let d = tempfile::tempdir().expect("tempdir");
        let old = d.path().join("old.txt");
        let racy = d.path().join("racy.txt");
        std::fs::write(&old, "old").expect("write");
        std::fs::write(&racy, "racy").expect("write");
        let long_ago = SystemTime::now() - Duration::from_secs(3600);
        // Ahead of the clock: recent however slowly this test runs.
        let ahead = SystemTime::now() + Duration::from_secs(3600);
        for (path, t) in [(&old, long_ago), (&racy, ahead)] {
            std::fs::File::options()
                .write(true)
                .open(path)
                .and_then(|f| f.set_modified(t))
                .expect("set mtime");
        }
        let before = Snapshot::take(d.path(), &[]);
        assert_eq!(
            before.files["old.txt"].hash, None,
            "old files cost a stat only"
        );
        assert!(
            before.files["racy.txt"].hash.is_some(),
            "recent files are hashed"
        );
        assert!(before.changed_since(&[]).is_empty());
        // The same metadata with other content (a write within one timestamp tick) is caught
        // by the racy file's hash.
        let mut forged = before.clone();
        if let Some(s) = forged.files.get_mut("racy.txt") {
            s.hash = Some(s.hash.unwrap_or(0) ^ 1);
        }
        assert_eq!(forged.changed_since(&[]), ["racy.txt"]);
    }

    #[test]
    fn the_racy_window_follows_the_timestamp_granularity() {
        let now = SystemTime::now();
        let ago = |ms| Some(now - Duration::from_millis(ms));
        // Whole seconds: two of them.
        assert!(racy_at(ago(1_500), 0, now));
        assert!(!racy_at(ago(2_500), 0, now));
        // Fractions of a second: 50 ms.
        assert!(racy_at(ago(30), 123_456_789, now));
        assert!(!racy_at(ago(80), 123_456_789, now));
        assert!(!racy_at(ago(1_500), 1, now));
        // Unknown, or ahead of the clock.
        assert!(racy_at(None, 5, now));
        assert!(racy_at(Some(now + Duration::from_secs(1)), 5, now));
    }

    #[test]
    fn the_git_top_is_found_without_git() {
        let d = tempfile::tempdir().expect("tempdir");
        let top = d.path().canonicalize().expect("canonical");
        std::fs::create_dir_all(top.join("a/b")).expect("mkdir");
        assert_eq!(
            find_git_top(&top.join("a/b")),
            None,
            "no .git: git is never started"
        );
        std::fs::create_dir(top.join(".git")).expect("mkdir");
        assert_eq!(find_git_top(&top.join("a/b")), Some(top.as_path()));
        // A worktree or submodule has a `.git` file.
        std::fs::write(top.join("a/.git"), "gitdir: elsewhere\n").expect("write");
        assert_eq!(
            find_git_top(&top.join("a/b")),
            Some(top.join("a").as_path())
        );
    }

    #[test]
    fn folders_to_skip_are_skipped_however_they_are_written() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path().canonicalize().expect("canonical");
        std::fs::create_dir_all(root.join("tasks")).expect("mkdir");
        std::fs::write(root.join("tasks/t.md"), "t").expect("write");
        std::fs::write(root.join("a.txt"), "a").expect("write");
        for skip in [
            root.join("tasks"),
            root.join("./tasks/"),
            PathBuf::from(format!("{}//tasks", root.display())),
        ] {
            let snap = Snapshot::take(&root, std::slice::from_ref(&skip));
            assert_eq!(
                snap.files.keys().collect::<Vec<_>>(),
                ["a.txt"],
                "{}",
                skip.display()
            );
        }
    }

    #[test]
    fn the_git_top_of_a_folder_is_reused_for_a_while() {
        let d = tempfile::tempdir().expect("tempdir");
        let top = d.path().canonicalize().expect("canonical");
        std::fs::create_dir_all(top.join("a")).expect("mkdir");
        assert_eq!(git_top(&top.join("a")), None);
        std::fs::create_dir(top.join(".git")).expect("mkdir");
        // Looked up again only after GIT_TOP_TTL; another folder is its own entry.
        assert_eq!(git_top(&top.join("a")), None, "the answer is reused");
        assert_eq!(git_top(&top), Some(top.clone()));
        std::thread::sleep(GIT_TOP_TTL + Duration::from_millis(50));
        assert_eq!(git_top(&top.join("a")), Some(top.clone()), "and renewed");
    }

    #[test]
    fn small_snapshots_match_full_ones_and_refuse_what_is_not_small() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path().canonicalize().expect("canonical").join("w");
        std::fs::create_dir_all(root.join("sub")).expect("mkdir");
        std::fs::write(root.join("a.txt"), "a").expect("write");
        std::fs::write(root.join("sub/b.txt"), "b").expect("write");
        let small = Snapshot::take_small(&root, &[], 16).expect("a small folder");
        let full = Snapshot::take(&root, &[]);
        assert_eq!(small.files, full.files);
        assert_eq!(small.method(), "stamps");

        // The same change is found either way.
        std::fs::write(root.join("sub/b.txt"), "changed").expect("write");
        std::fs::write(root.join("new.txt"), "n").expect("write");
        let via_small = small.changed_since_small(&[], 16).expect("still small");
        assert_eq!(via_small, full.changed_since(&[]));
        assert_eq!(
            via_small,
            vec!["new.txt".to_string(), "sub/b.txt".to_string()]
        );

        // Too many entries: the caller must take it elsewhere.
        assert!(Snapshot::take_small(&root, &[], 2).is_none());
        assert!(small.changed_since_small(&[], 2).is_none());

        // Too much to hash: a large file modified just now.
        std::fs::write(
            root.join("big.bin"),
            vec![7u8; (SMALL_HASH_BYTES + 1) as usize],
        )
        .expect("write");
        assert!(Snapshot::take_small(&root, &[], 16).is_none());
        std::fs::remove_file(root.join("big.bin")).expect("rm");

        // In a git repository: `git status` is needed, never on the calling thread. (A folder
        // not looked at before: `root`'s answer is reused for GIT_TOP_TTL.)
        std::fs::create_dir(d.path().join(".git")).expect("mkdir");
        let in_repo = d.path().canonicalize().expect("canonical").join("w2");
        std::fs::create_dir_all(&in_repo).expect("mkdir");
        assert!(Snapshot::take_small(&in_repo, &[], 16).is_none());
    }
}

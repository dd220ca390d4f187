//! Path policy: resolve working dirs and target files against CLAUDE_BASE_CWD, normalise
//! `..`, resolve symlinks where they exist, refuse anything outside CLAUDE_ALLOWED_ROOT.

use std::path::{Component, Path, PathBuf};

use super::{Task, TaskError, TaskErrorKind};
use crate::path_memo::PathMemo;

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path '{path}' resolves to {resolved}, outside the allowed root {root}")]
    OutsideRoot {
        path: String,
        resolved: PathBuf,
        root: PathBuf,
    },
    #[error("id '{0}' is not valid: use 1 to 64 of A-Z a-z 0-9 _ . - (ids become file names)")]
    BadId(String),
    #[error("cannot resolve path '{path}': {reason}")]
    Unresolvable { path: String, reason: String },
}

/// Resolves `rel` (relative or absolute) against `base`, normalising `..` and following
/// symlinks of the longest existing prefix, and checks the result lies inside `allowed_root`
/// (itself canonicalised). A not-yet-existing path inside the root is accepted.
///
/// `..` is normalised lexically first (`a/link/..` is `a`), then the longest prefix that
/// exists is canonicalised (following its symlinks) and the rest appended; so what is
/// checked is exactly the path the agent will be given. A dangling symlink is refused, as
/// its target cannot be checked.
pub fn resolve_inside(base: &Path, allowed_root: &Path, rel: &str) -> Result<PathBuf, PathError> {
    let unresolvable = |reason: String| PathError::Unresolvable {
        path: rel.into(),
        reason,
    };
    if rel.contains('\0') {
        return Err(unresolvable("it contains a NUL character".into()));
    }
    let rel_path = Path::new(if rel.is_empty() { "." } else { rel });
    let joined = if rel_path.is_absolute() {
        rel_path.to_path_buf()
    } else {
        absolute(base)
            .map_err(|e| unresolvable(e.to_string()))?
            .join(rel_path)
    };
    let joined = normalise(&joined);
    let resolved = canonical_cached(&joined).map_err(unresolvable)?;
    let root_path = normalise(&absolute(allowed_root).map_err(|e| unresolvable(e.to_string()))?);
    // The working folder is often the allowed root itself: resolved once.
    let root = if root_path == joined {
        resolved.clone()
    } else {
        canonical_cached(&root_path).map_err(|reason| PathError::Unresolvable {
            path: allowed_root.display().to_string(),
            reason,
        })?
    };
    if resolved.starts_with(&root) {
        Ok(resolved)
    } else {
        Err(PathError::OutsideRoot {
            path: rel.into(),
            resolved,
            root,
        })
    }
}

/// Where a task's agent runs and the files it names, resolved and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPaths {
    pub working_dir: PathBuf,
    pub target_files: Vec<PathBuf>,
}

/// Resolves a task's `working_dir` (against `base_cwd`, default `.`) and its target files
/// (against the working dir), all inside `allowed_root`. A refusal names the line of the
/// `working_dir` key or target item, found by re-reading `file` (only on the error path).
/// The first error, when there are several: see [`resolve_task_paths_all`].
pub fn resolve_task_paths(
    task: &Task,
    file: &Path,
    base_cwd: &Path,
    allowed_root: &Path,
) -> Result<ResolvedPaths, TaskError> {
    resolve_task_paths_all(task, file, base_cwd, allowed_root).map_err(|errors| {
        errors
            .into_iter()
            .next()
            .unwrap_or_else(|| unreachable_error(file))
    })
}

fn unreachable_error(file: &Path) -> TaskError {
    TaskError {
        file: file.to_path_buf(),
        line: None,
        kind: TaskErrorKind::Other("a path could not be resolved".into()),
    }
}

/// [`resolve_task_paths`], reporting every refused path (the working dir, then each target
/// file; targets are not looked at when the working dir they are relative to is refused).
pub fn resolve_task_paths_all(
    task: &Task,
    file: &Path,
    base_cwd: &Path,
    allowed_root: &Path,
) -> Result<ResolvedPaths, Vec<TaskError>> {
    let text = std::cell::OnceCell::new();
    let text = || {
        text.get_or_init(|| {
            super::read_limited(file)
                .ok()
                .and_then(|bytes| super::decode::decode(&bytes).ok().map(|t| t.into_owned()))
        })
        .as_deref()
    };
    let fail = |field: &'static str, error: PathError, line: Option<usize>| TaskError {
        file: file.to_path_buf(),
        line,
        kind: TaskErrorKind::Path {
            field,
            error: Box::new(error),
        },
    };
    let wd_rel = task.working_dir.as_deref().unwrap_or(".");
    let working_dir = resolve_inside(base_cwd, allowed_root, wd_rel).map_err(|e| {
        let line = text().and_then(|t| key_line(t, "working_dir"));
        vec![fail("working_dir", e, line)]
    })?;
    let mut target_files = Vec::with_capacity(task.target_files.len());
    let mut errors = Vec::new();
    for t in &task.target_files {
        match resolve_inside(&working_dir, allowed_root, t) {
            Ok(p) => target_files.push(p),
            Err(e) => {
                let line = text().and_then(|text| {
                    let split = super::front::split(text).ok()?;
                    super::body::find_target_line(split.body, split.body_line, t)
                });
                errors.push(fail("target file", e, line));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ResolvedPaths {
        working_dir,
        target_files,
    })
}

/// File line of a top-level front-matter key (`key:` at column 0), if any.
fn key_line(text: &str, key: &str) -> Option<usize> {
    let split = super::front::split(text).ok()?;
    let yaml = split.yaml?;
    yaml.split('\n').enumerate().find_map(|(i, line)| {
        let rest = line.strip_prefix(key)?;
        rest.trim_start().starts_with(':').then_some(i + 2)
    })
}

fn absolute(p: &Path) -> std::io::Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(p))
    }
}

/// Lexical normalisation: drops `.`, applies `..` (never above the root).
fn normalise(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                // `pop` refuses to remove the root, so `/..` stays `/`.
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// True when `p` is written the way `Path::components` would put it back together: no empty
/// or `.` components after the first, no trailing `/` (so byte equality is path equality).
pub fn is_plain(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let b = p.as_os_str().as_bytes();
    let body = b.strip_prefix(b"./").unwrap_or(b);
    !(body.ends_with(b"/") && body.len() > 1
        || body.ends_with(b"/.")
        || body == b"."
        || memchr::memmem::find(body, b"//").is_some()
        || memchr::memmem::find(body, b"/./").is_some())
}

/// Paths canonicalised so far: the absolute path given, the file or folder (device, inode)
/// it reached then, and its canonical path.
static CANONICAL: PathMemo<((u64, u64), PathBuf)> = PathMemo::new(64);

/// [`resolve_existing_prefix`] of an absolute, normalised path (an allowed root, a working
/// folder, a target file), canonicalised again only when the path now reaches another file
/// than when it was last: one `stat` instead of a `realpath` (a `readlink` per component)
/// for every path checked. The answer is a path that was inside the root when it was
/// checked, and it is that path the agent is given.
fn canonical_cached(path: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return resolve_existing_prefix(path);
    };
    let id = (meta.dev(), meta.ino());
    if let Some((_, canon)) = CANONICAL.get(path, |(reached, _)| *reached == id) {
        return Ok(canon);
    }
    let canon = resolve_existing_prefix(path)?;
    CANONICAL.put(path, (id, canon.clone()));
    Ok(canon)
}

/// Canonicalises the longest existing prefix of an absolute, normalised path and appends
/// the rest. Errors (as a reason) on a dangling symlink or an unreadable component.
fn resolve_existing_prefix(p: &Path) -> Result<PathBuf, String> {
    let mut prefix = p;
    let mut rest: Vec<&std::ffi::OsStr> = Vec::new();
    loop {
        match std::fs::symlink_metadata(prefix) {
            Ok(_) => {
                let mut canon = std::fs::canonicalize(prefix).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        format!("{} is a dangling symlink", prefix.display())
                    } else {
                        format!("{}: {e}", prefix.display())
                    }
                })?;
                for name in rest.iter().rev() {
                    canon.push(name);
                }
                return Ok(canon);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (Some(parent), Some(name)) = (prefix.parent(), prefix.file_name()) else {
                    return Err(format!("no part of {} exists", p.display()));
                };
                rest.push(name);
                prefix = parent;
            }
            Err(e) => return Err(format!("{}: {e}", prefix.display())),
        }
    }
}

/// Checks a task id: `[A-Za-z0-9_.-]`, 1..=64 chars, not `.` or `..`.
pub fn validate_id(id: &str) -> Result<(), PathError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(PathError::BadId(id.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn plain_paths_are_those_components_give_back() {
        for p in ["/a/b", "a", "/", "./a/b", "a/b.c", "/a/.b", "/a/..", ".."] {
            let back: PathBuf = Path::new(p).components().collect();
            assert!(is_plain(Path::new(p)), "{p}");
            assert_eq!(back.as_os_str(), Path::new(p).as_os_str(), "{p}");
        }
        for p in ["/a//b", "/a/./b", "/a/b/", "/a/b/.", "a/.", "."] {
            assert!(!is_plain(Path::new(p)), "{p}");
        }
    }

    /// The allowed root is canonicalised once, and again when its path reaches another
    /// folder (a symlinked root pointed elsewhere).
    #[test]
    fn a_repointed_root_symlink_is_followed_anew() {
        let dir = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir_all(base.join("a/w")).unwrap();
        fs::create_dir_all(base.join("b/w")).unwrap();
        let root = base.join("root");
        std::os::unix::fs::symlink(base.join("a"), &root).unwrap();
        assert_eq!(resolve_inside(&root, &root, "w").unwrap(), base.join("a/w"));
        assert_eq!(resolve_inside(&root, &root, "w").unwrap(), base.join("a/w"));
        fs::remove_file(&root).unwrap();
        std::os::unix::fs::symlink(base.join("b"), &root).unwrap();
        assert_eq!(resolve_inside(&root, &root, "w").unwrap(), base.join("b/w"));
        // What was inside the old root is outside the new one.
        assert!(matches!(
            resolve_inside(&root, &root, &base.join("a/w").display().to_string()),
            Err(PathError::OutsideRoot { .. })
        ));
        // A root that does not exist (yet) is not remembered.
        let later = base.join("later");
        assert!(resolve_inside(&later, &later, "x").is_ok());
        fs::create_dir_all(base.join("c")).unwrap();
        std::os::unix::fs::symlink(base.join("c"), &later).unwrap();
        assert_eq!(
            resolve_inside(&later, &later, "x").unwrap(),
            base.join("c/x")
        );
    }

    /// Working folders and target files are remembered the same way: a symlink on the way
    /// that now leads elsewhere is followed anew, and the new place is checked.
    #[test]
    fn a_repointed_working_folder_symlink_is_followed_anew() {
        let dir = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(dir.path()).unwrap();
        fs::create_dir_all(root.join("a")).unwrap();
        fs::create_dir_all(root.join("b")).unwrap();
        fs::write(root.join("b/f.txt"), "f").unwrap();
        let outside = tempfile::tempdir().unwrap();
        let outside = fs::canonicalize(outside.path()).unwrap();
        std::os::unix::fs::symlink(root.join("a"), root.join("w")).unwrap();
        for _ in 0..2 {
            assert_eq!(resolve_inside(&root, &root, "w").unwrap(), root.join("a"));
        }
        fs::remove_file(root.join("w")).unwrap();
        std::os::unix::fs::symlink(root.join("b"), root.join("w")).unwrap();
        assert_eq!(resolve_inside(&root, &root, "w").unwrap(), root.join("b"));
        assert_eq!(
            resolve_inside(&root, &root, "w/f.txt").unwrap(),
            root.join("b/f.txt")
        );
        fs::remove_file(root.join("w")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("w")).unwrap();
        assert!(matches!(
            resolve_inside(&root, &root, "w"),
            Err(PathError::OutsideRoot { .. })
        ));
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        root: PathBuf,
        outside: PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(dir.path()).unwrap();
        let root = base.join("root");
        let outside = base.join("outside");
        fs::create_dir_all(root.join("backend/src")).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("secret.txt"), "s").unwrap();
        Fixture {
            _dir: dir,
            root,
            outside,
        }
    }

    fn outside(r: Result<PathBuf, PathError>) -> bool {
        matches!(r, Err(PathError::OutsideRoot { .. }))
    }

    #[test]
    fn inside_paths_resolve() {
        let f = fixture();
        assert_eq!(
            resolve_inside(&f.root, &f.root, "backend").unwrap(),
            f.root.join("backend")
        );
        assert_eq!(
            resolve_inside(&f.root, &f.root, "backend/../backend/./src").unwrap(),
            f.root.join("backend/src")
        );
        assert_eq!(resolve_inside(&f.root, &f.root, ".").unwrap(), f.root);
        assert_eq!(resolve_inside(&f.root, &f.root, "").unwrap(), f.root);
        let abs = f.root.join("backend").display().to_string();
        assert_eq!(
            resolve_inside(Path::new("/"), &f.root, &abs).unwrap(),
            f.root.join("backend")
        );
    }

    #[test]
    fn not_yet_existing_file_inside_is_accepted() {
        let f = fixture();
        assert_eq!(
            resolve_inside(&f.root.join("backend"), &f.root, "new/dir/file.rs").unwrap(),
            f.root.join("backend/new/dir/file.rs")
        );
    }

    #[test]
    fn dotdot_traversal_is_refused() {
        let f = fixture();
        let r = resolve_inside(&f.root.join("backend"), &f.root, "../../outside/secret.txt");
        match r {
            Err(PathError::OutsideRoot {
                path,
                resolved,
                root,
            }) => {
                assert_eq!(path, "../../outside/secret.txt");
                assert_eq!(resolved, f.outside.join("secret.txt"));
                assert_eq!(root, f.root);
            }
            other => panic!("{other:?}"),
        }
        assert!(outside(resolve_inside(
            &f.root,
            &f.root,
            "../../../../../../.."
        )));
    }

    #[test]
    fn absolute_outside_is_refused() {
        let f = fixture();
        assert!(outside(resolve_inside(&f.root, &f.root, "/etc/passwd")));
        let abs = f.outside.display().to_string();
        assert!(outside(resolve_inside(&f.root, &f.root, &abs)));
    }

    #[test]
    fn sibling_with_common_prefix_is_refused() {
        let f = fixture();
        let sibling = f.root.with_file_name("root2");
        fs::create_dir_all(&sibling).unwrap();
        assert!(outside(resolve_inside(&f.root, &f.root, "../root2")));
    }

    #[cfg(unix)]
    #[test]
    fn symlink_inside_pointing_outside_is_refused() {
        let f = fixture();
        std::os::unix::fs::symlink(&f.outside, f.root.join("escape")).unwrap();
        assert!(outside(resolve_inside(&f.root, &f.root, "escape")));
        assert!(outside(resolve_inside(
            &f.root,
            &f.root,
            "escape/secret.txt"
        )));
        assert!(outside(resolve_inside(
            &f.root,
            &f.root,
            "escape/not/yet.txt"
        )));
        // A dangling link cannot be checked: refused.
        std::os::unix::fs::symlink(f.outside.join("nope"), f.root.join("dangling")).unwrap();
        assert!(matches!(
            resolve_inside(&f.root, &f.root, "dangling"),
            Err(PathError::Unresolvable { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn symlinked_root_and_inner_links_are_followed() {
        let f = fixture();
        let link_root = f.root.with_file_name("root_link");
        std::os::unix::fs::symlink(&f.root, &link_root).unwrap();
        std::os::unix::fs::symlink(f.root.join("backend"), f.root.join("be")).unwrap();
        assert_eq!(
            resolve_inside(&link_root, &link_root, "be/src/x.rs").unwrap(),
            f.root.join("backend/src/x.rs")
        );
    }

    #[test]
    fn ids() {
        for bad in [
            "../x",
            "a/b",
            "/abs",
            "..",
            ".",
            "",
            "a b",
            "é",
            &"a".repeat(65),
        ] {
            assert_eq!(validate_id(bad), Err(PathError::BadId(bad.to_string())));
        }
        for good in ["a", "fix_db-timeout.2", "...", &"a".repeat(64)] {
            assert_eq!(validate_id(good), Ok(()));
        }
    }

    fn task_file(f: &Fixture, text: &str) -> (PathBuf, Task) {
        let tasks = f.root.join("tasks");
        fs::create_dir_all(&tasks).unwrap();
        let file = tasks.join("t.task.md");
        fs::write(&file, text).unwrap();
        let task = super::super::parse_file(&file).unwrap();
        (file, task)
    }

    #[test]
    fn task_paths_resolve_against_working_dir() {
        let f = fixture();
        let (file, task) = task_file(
            &f,
            "---\nworking_dir: backend\n---\n**Target Files:**\n- src/db.py\n- `../README.md`\n**Prompt:** x\n",
        );
        let r = resolve_task_paths(&task, &file, &f.root, &f.root).unwrap();
        assert_eq!(r.working_dir, f.root.join("backend"));
        assert_eq!(
            r.target_files,
            vec![f.root.join("backend/src/db.py"), f.root.join("README.md")]
        );
        // No working_dir: the base.
        let (file, task) = task_file(&f, "x\n");
        let r = resolve_task_paths(&task, &file, &f.root, &f.root).unwrap();
        assert_eq!(r.working_dir, f.root);
    }

    #[test]
    fn task_path_errors_name_their_line() {
        let f = fixture();
        let (file, task) = task_file(&f, "---\nid: t\nworking_dir: ../outside\n---\nx\n");
        let e = resolve_task_paths(&task, &file, &f.root, &f.root).unwrap_err();
        assert_eq!(e.line, Some(3));
        assert_eq!(e.kind_name(), "path_outside_root");
        assert_eq!(
            e.message(),
            format!(
                "working_dir: path '../outside' resolves to {}, outside the allowed root {}",
                f.outside.display(),
                f.root.display()
            )
        );

        let (file, task) = task_file(
            &f,
            "# T\n\n**Target Files:**\n- ok.rs\n- `../../etc/passwd`\n\n**Prompt:** x\n",
        );
        let e = resolve_task_paths(&task, &file, &f.root.join("backend"), &f.root).unwrap_err();
        assert_eq!(e.line, Some(5));
        assert!(e
            .message()
            .starts_with("target file: path '../../etc/passwd'"));
        assert!(e
            .to_string()
            .contains("\nhint: use a path inside CLAUDE_ALLOWED_ROOT"));

        // The file is gone: the error still comes, without a line.
        fs::remove_file(&file).unwrap();
        let e = resolve_task_paths(&task, &file, &f.root.join("backend"), &f.root).unwrap_err();
        assert_eq!(e.line, None);
    }
}

//! The git facts of a working folder, from the `git` binary (argument vectors): the
//! repository, its HEAD before the attempt, the branch, and the diff stat since.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::artifacts::result::GitInfo;

/// Longest diff stat kept, in bytes.
pub const MAX_DIFFSTAT_BYTES: usize = 8192;

/// The repository of a working folder, as it was before the attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    /// The repository's top folder.
    pub repo: String,
    /// HEAD before the attempt (None: a repository without commits).
    pub commit: Option<String>,
    /// The checked-out branch (None: detached HEAD).
    pub branch: Option<String>,
}

/// The repository holding `dir` and its HEAD now; None when `dir` is in no repository (or
/// git is not installed).
pub fn base(dir: &Path) -> Option<Base> {
    let repo = git(dir, &["rev-parse", "--show-toplevel"])?;
    Some(Base {
        repo,
        commit: git(dir, &["rev-parse", "--verify", "--quiet", "HEAD"]),
        branch: git(dir, &["symbolic-ref", "--quiet", "--short", "HEAD"]),
    })
}

/// The result's `git` after the attempt: `base` with the diff stat of the working tree
/// against the base commit (bounded). No worktree and no commit of Orca's (yet).
pub fn info(base: Base, dir: &Path) -> GitInfo {
    let diffstat = base.commit.as_deref().and_then(|c| {
        git(
            dir,
            &["diff", "--stat", "--no-color", "--no-ext-diff", c, "--"],
        )
        .map(|s| bounded(s, MAX_DIFFSTAT_BYTES))
    });
    GitInfo {
        repo: base.repo,
        base_commit: base.commit,
        branch: base.branch,
        worktree: None,
        commit: None,
        diffstat,
    }
}

/// `git -C dir ARGS`'s trimmed output when it exits 0 and says something.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8_lossy(&out.stdout).trim_end().to_owned();
    (!s.is_empty()).then_some(s)
}

/// A diff stat cut to [`MAX_DIFFSTAT_BYTES`].
pub fn bounded_diffstat(s: String) -> String {
    bounded(s, MAX_DIFFSTAT_BYTES)
}

/// `s` cut to at most `max` bytes at a line end, marked when cut.
fn bounded(s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let end = s[..end].rfind('\n').unwrap_or(end);
    format!(
        "{}\n… (cut; run `git diff --stat` for all of it)",
        &s[..end]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_cuts_at_a_line() {
        assert_eq!(bounded("a\nb".into(), 10), "a\nb");
        let s = bounded("aaaa\nbbbb\ncccc".into(), 11);
        assert!(s.starts_with("aaaa\nbbbb\n…"), "{s}");
    }
}

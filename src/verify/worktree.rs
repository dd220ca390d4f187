//! `worktree: true`: the attempt runs in a fresh `git worktree` of the working folder's
//! repository, on branch `orca/<id>` from HEAD, under `.orca/worktrees/<id>` of the
//! workspace; on success the agent's changes are committed there (author Orca). The user's
//! checkout, index and uncommitted work are never touched. The `git` binary, argument vectors.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::git::Base;
use crate::artifacts::result::GitInfo;

/// Branches of Orca's worktrees are `orca/<task id>`.
pub const BRANCH_PREFIX: &str = "orca/";
/// The author (and committer) of Orca's commits.
pub const AUTHOR_NAME: &str = "Orca";
pub const AUTHOR_EMAIL: &str = "orca@localhost";

/// Why a worktree cannot be made or committed to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorktreeError {
    #[error("worktree: true, but the working folder {} is not in a git repository (or git is not installed)", dir.display())]
    NotARepository { dir: PathBuf },
    #[error("worktree: true, but the repository {repo} has no commit yet to branch from")]
    NoCommit { repo: String },
    #[error("{} is in the way of the task's worktree (it is not a worktree of branch {branch})", path.display())]
    InTheWay { path: PathBuf, branch: String },
    #[error("git {what} failed: {stderr}")]
    Git { what: String, stderr: String },
    #[error("cannot make {}: {reason}", path.display())]
    Io { path: PathBuf, reason: String },
}

impl WorktreeError {
    /// How to fix it.
    pub fn hint(&self) -> String {
        match self {
            WorktreeError::NotARepository { .. } => {
                "run `git init` (and commit) in the working folder, or remove `worktree: true`"
                    .into()
            }
            WorktreeError::NoCommit { .. } => {
                "commit something first (`git commit --allow-empty -m start`), or remove `worktree: true`".into()
            }
            WorktreeError::InTheWay { .. } => {
                "remove that folder (`orca clean worktrees` removes Orca's finished worktrees)"
                    .into()
            }
            WorktreeError::Git { .. } => "run the same git command by hand to see why".into(),
            WorktreeError::Io { .. } => "check the workspace's .orca folder".into(),
        }
    }
}

/// The worktree an attempt runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worktree {
    /// The worktree's top folder.
    pub path: PathBuf,
    /// The task's working folder inside it (the same place relative to the repository).
    pub dir: PathBuf,
    pub branch: String,
    /// The user's repository and the commit the branch started from.
    pub base: Base,
    /// False: the task's worktree from an earlier attempt, used again.
    pub created: bool,
}

/// Where a workspace keeps its worktrees.
pub fn worktrees_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("worktrees")
}

/// The refusal of a task with `worktree: true` whose working folder is in no repository.
pub fn refusal(working_dir: &Path) -> Option<WorktreeError> {
    match super::git::base(working_dir) {
        None => Some(WorktreeError::NotARepository {
            dir: working_dir.to_path_buf(),
        }),
        Some(Base {
            commit: None, repo, ..
        }) => Some(WorktreeError::NoCommit { repo }),
        Some(_) => None,
    }
}

/// Intake's refusal of a task file with `worktree: true` whose working folder is in no
/// repository (or one without commits), naming the `worktree:` line.
pub fn check_task(file: &Path, working_dir: &Path) -> Result<(), crate::task::TaskError> {
    let Some(e) = refusal(working_dir) else {
        return Ok(());
    };
    let line = std::fs::read_to_string(file).ok().and_then(|text| {
        text.lines()
            .position(|l| l.trim_start().starts_with("worktree:"))
            .map(|i| i + 1)
    });
    Err(crate::task::TaskError {
        file: file.to_path_buf(),
        line,
        kind: crate::task::TaskErrorKind::Worktree {
            reason: e.to_string(),
            fix: e.hint(),
        },
    })
}

/// The worktree of task `id` for `working_dir`: the one an earlier attempt made, or a new
/// one on branch `orca/<id>` (`orca/<id>-2`, ... when that branch is taken) from HEAD.
pub fn prepare(worktrees: &Path, id: &str, working_dir: &Path) -> Result<Worktree, WorktreeError> {
    let user = super::git::base(working_dir).ok_or_else(|| WorktreeError::NotARepository {
        dir: working_dir.to_path_buf(),
    })?;
    let head = user.commit.clone().ok_or_else(|| WorktreeError::NoCommit {
        repo: user.repo.clone(),
    })?;
    let top = PathBuf::from(&user.repo);
    let rel = working_dir
        .strip_prefix(&top)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let path = worktrees.join(id);
    let io = |p: &Path, e: std::io::Error| WorktreeError::Io {
        path: p.to_path_buf(),
        reason: e.to_string(),
    };
    let branch_base = format!("{BRANCH_PREFIX}{id}");
    let (branch, commit, created) = if path.exists() {
        // An earlier attempt's worktree: its branch must be the task's.
        let branch = git_out(&path, &["symbolic-ref", "--quiet", "--short", "HEAD"]).ok();
        let is_top = git_out(&path, &["rev-parse", "--show-toplevel"])
            .ok()
            .and_then(|t| std::fs::canonicalize(t).ok())
            == std::fs::canonicalize(&path).ok();
        match branch {
            Some(b)
                if is_top && (b == branch_base || b.starts_with(&format!("{branch_base}-"))) =>
            {
                let commit = git_out(&path, &["rev-parse", "HEAD"]).unwrap_or(head);
                (b, commit, false)
            }
            _ => {
                return Err(WorktreeError::InTheWay {
                    path,
                    branch: branch_base,
                })
            }
        }
    } else {
        std::fs::create_dir_all(worktrees).map_err(|e| io(worktrees, e))?;
        let mut n = 1;
        loop {
            let branch = if n == 1 {
                branch_base.clone()
            } else {
                format!("{branch_base}-{n}")
            };
            let taken = git_out(
                &top,
                &[
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    &format!("refs/heads/{branch}"),
                ],
            )
            .is_ok();
            if taken && n < 100 {
                n += 1;
                continue;
            }
            let p = path.display().to_string();
            git_out(
                &top,
                &["worktree", "add", "--quiet", "-b", &branch, &p, &head],
            )?;
            break (branch, head, true);
        }
    };
    let dir = path.join(&rel);
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    Ok(Worktree {
        path,
        dir,
        branch: branch.clone(),
        base: Base {
            repo: user.repo,
            commit: Some(commit),
            branch: Some(branch),
        },
        created,
    })
}

/// Commits everything the agent changed in the worktree on its branch (author and committer
/// Orca, message the task's title, no hooks, no signing). None: nothing to commit.
pub fn commit(wt: &Worktree, title: &str, id: &str) -> Result<Option<String>, WorktreeError> {
    git_out(&wt.path, &["add", "--all"])?;
    let staged = run_git(&wt.path, &["diff", "--cached", "--quiet"])?;
    if staged.status.success() {
        return Ok(None);
    }
    let message = format!("{title}\n\nOrca task {id}");
    let author = format!("{AUTHOR_NAME} <{AUTHOR_EMAIL}>");
    let name = format!("user.name={AUTHOR_NAME}");
    let email = format!("user.email={AUTHOR_EMAIL}");
    git_out(
        &wt.path,
        &[
            "-c",
            &name,
            "-c",
            &email,
            "-c",
            "commit.gpgsign=false",
            "commit",
            "--quiet",
            "--no-verify",
            "--author",
            &author,
            "-m",
            &message,
        ],
    )?;
    git_out(&wt.path, &["rev-parse", "HEAD"]).map(Some)
}

/// The result's `git` of a worktree run: the diff stat since the base (of the commit when
/// there is one, else of the working tree).
pub fn info(wt: &Worktree, commit: Option<&str>) -> GitInfo {
    let base = wt.base.commit.clone();
    let diffstat = base.as_deref().and_then(|b| {
        let mut args = vec!["diff", "--stat", "--no-color", "--no-ext-diff", b];
        if let Some(c) = commit {
            args.push(c);
        }
        args.push("--");
        git_out(&wt.path, &args)
            .ok()
            .filter(|s| !s.is_empty())
            .map(super::git::bounded_diffstat)
    });
    GitInfo {
        repo: wt.base.repo.clone(),
        base_commit: base,
        branch: Some(wt.branch.clone()),
        worktree: Some(wt.path.display().to_string()),
        commit: commit.map(str::to_owned),
        diffstat,
    }
}

/// The files changed in the working folder since the base, from git (relative to the
/// working folder): committed, staged, unstaged and untracked.
pub fn changed_files(wt: &Worktree) -> Vec<String> {
    let Some(base) = wt.base.commit.as_deref() else {
        return Vec::new();
    };
    let mut files: Vec<String> = Vec::new();
    for args in [
        vec![
            "diff",
            "--name-only",
            "--relative",
            "--no-ext-diff",
            base,
            "--",
        ],
        vec!["ls-files", "--others", "--exclude-standard"],
    ] {
        if let Ok(out) = git_out(&wt.dir, &args) {
            files.extend(out.lines().filter(|l| !l.is_empty()).map(str::to_owned));
        }
    }
    files.sort();
    files.dedup();
    files
}

/// What `orca clean worktrees` does with the worktrees in `dir`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanPlan {
    /// Worktrees of finished (or unknown) tasks, to remove.
    pub remove: Vec<PathBuf>,
    /// How many are kept (their task is queued or running).
    pub kept: usize,
}

/// The worktrees in `dir` (one folder per task id) split by whether `finished(id)`.
pub fn finished_worktrees(dir: &Path, finished: &dyn Fn(&str) -> bool) -> CleanPlan {
    let mut plan = CleanPlan::default();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return plan;
    };
    let mut entries: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        let id = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if finished(&id) {
            plan.remove.push(p);
        } else {
            plan.kept += 1;
        }
    }
    plan
}

/// Removes a worktree folder (the branch stays) and prunes git's record of it.
pub fn remove(path: &Path) -> Result<(), WorktreeError> {
    let common = git_out(
        path,
        &["rev-parse", "--path-format=absolute", "--git-common-dir"],
    )?;
    let repo = Path::new(&common);
    let p = path.display().to_string();
    git_out(repo, &["worktree", "remove", "--force", "--force", &p])?;
    let _ = git_out(repo, &["worktree", "prune"]);
    Ok(())
}

fn run_git(dir: &Path, args: &[&str]) -> Result<std::process::Output, WorktreeError> {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|e| WorktreeError::Git {
            what: args.first().copied().unwrap_or("").to_owned(),
            stderr: e.to_string(),
        })
}

/// `git -C dir ARGS`'s trimmed stdout; an error with git's message when it fails.
fn git_out(dir: &Path, args: &[&str]) -> Result<String, WorktreeError> {
    let out = run_git(dir, args)?;
    if !out.status.success() {
        return Err(WorktreeError::Git {
            what: args
                .iter()
                .find(|a| !a.starts_with('-') && !a.contains('='))
                .copied()
                .unwrap_or("")
                .to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh_git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=T", "-c", "user.email=t@e"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    #[test]
    fn a_worktree_is_made_used_again_committed_and_removed() {
        let d = tempfile::tempdir().unwrap();
        let repo = std::fs::canonicalize(d.path()).unwrap().join("repo");
        std::fs::create_dir_all(repo.join("sub")).unwrap();
        sh_git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("sub/a.txt"), "a\n").unwrap();
        sh_git(&repo, &["add", "."]);
        sh_git(&repo, &["commit", "-q", "-m", "one"]);
        let head = sh_git(&repo, &["rev-parse", "HEAD"]);
        let wts = d.path().join("wts");
        assert_eq!(
            refusal(d.path()),
            Some(WorktreeError::NotARepository {
                dir: d.path().to_path_buf()
            })
        );
        assert_eq!(refusal(&repo.join("sub")), None);

        let wt = prepare(&wts, "t1", &repo.join("sub")).unwrap();
        assert!(wt.created);
        assert_eq!(wt.branch, "orca/t1");
        assert_eq!(wt.dir, wts.join("t1/sub"));
        assert_eq!(wt.base.commit.as_deref(), Some(head.as_str()));
        std::fs::write(wt.dir.join("b.txt"), "b\n").unwrap();
        let again = prepare(&wts, "t1", &repo.join("sub")).unwrap();
        assert!(!again.created);
        assert_eq!(again.branch, "orca/t1");
        assert_eq!(changed_files(&again), ["b.txt"]);

        let c = commit(&again, "Add b", "t1").unwrap().unwrap();
        assert_eq!(sh_git(&repo, &["rev-parse", "orca/t1"]), c);
        assert_eq!(
            sh_git(&repo, &["log", "-1", "--format=%an <%ae>|%s", "orca/t1"]),
            "Orca <orca@localhost>|Add b"
        );
        assert_eq!(commit(&again, "Nothing", "t1").unwrap(), None);
        let g = info(&again, Some(&c));
        assert!(g.diffstat.unwrap().contains("b.txt"));
        assert_eq!(changed_files(&again), ["b.txt"]);

        remove(&again.path).unwrap();
        assert!(!again.path.exists());
        assert_eq!(
            sh_git(&repo, &["rev-parse", "orca/t1"]),
            c,
            "the branch stays"
        );
        // The branch is taken now: a new worktree of the same id gets the next name.
        let next = prepare(&wts, "t1", &repo.join("sub")).unwrap();
        assert_eq!(next.branch, "orca/t1-2");
        // A folder in the way is refused.
        std::fs::create_dir_all(wts.join("t2")).unwrap();
        assert!(matches!(
            prepare(&wts, "t2", &repo),
            Err(WorktreeError::InTheWay { .. })
        ));
    }
}

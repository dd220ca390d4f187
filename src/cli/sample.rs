//! `orca create-sample`: a valid, commented sample task for each task type, written into
//! `tasks/` whole (hidden temp name, then linked into place) and never over another file.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{CreateSampleArgs, Ctx, EXIT_FAILED, EXIT_OK};
use crate::task::{Priority, TaskType};
use crate::workspace::Workspace;

/// Writes the sample and prints its path; returns the exit code.
pub fn run(ctx: &Ctx, args: &CreateSampleArgs, out: &mut dyn Write) -> i32 {
    let priority = args.priority.unwrap_or_default();
    let dir = Workspace::new(&ctx.root).tasks();
    match write_sample(&dir, args.task_type, priority) {
        Ok(path) => match writeln!(out, "{}", ctx.display_path(&path).display()) {
            Ok(()) => EXIT_OK,
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => EXIT_OK,
            Err(e) => {
                eprintln!("error: cannot write the output: {e}");
                EXIT_FAILED
            }
        },
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILED
        }
    }
}

/// Why a sample could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("cannot create the folder `{}`: {source}; check the permissions of the workspace root", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot write `{}`: {source}; check the permissions and free space of tasks/", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("no free name for `{stem}` in `{}` after {tries} tries; remove old samples", dir.display())]
    NoFreeName {
        stem: String,
        dir: PathBuf,
        tries: u32,
    },
}

/// Most `-N` suffixes tried before giving up.
const MAX_TRIES: u32 = 10_000;

/// Writes the sample task for `task_type` into `dir` (created when missing) as
/// `sample_<type>.task.md`, or `sample_<type>-2.task.md`, ... when the name is taken.
/// The file appears whole: it is written under a hidden temp name that the watcher
/// ignores, then hard-linked to the first free name (so nothing is ever overwritten).
pub fn write_sample(
    dir: &Path,
    task_type: TaskType,
    priority: Priority,
) -> Result<PathBuf, SampleError> {
    fs::create_dir_all(dir).map_err(|source| SampleError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let stem = format!("sample_{}", task_type.as_str());
    let text = sample_text(task_type, priority);

    let (tmp, mut file) = create_temp(dir, &stem)?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all());
    drop(file);
    if let Err(source) = written {
        let _ = fs::remove_file(&tmp);
        return Err(SampleError::Write { path: tmp, source });
    }
    let result = place(&tmp, dir, &stem, text.as_bytes());
    let _ = fs::remove_file(&tmp);
    result
}

/// Creates a fresh hidden temp file in `dir` (`.sample_fix.task.md.<pid>.<n>.tmp`).
fn create_temp(dir: &Path, stem: &str) -> Result<(PathBuf, fs::File), SampleError> {
    let pid = std::process::id();
    for n in 0..MAX_TRIES {
        let tmp = dir.join(format!(".{stem}.task.md.{pid}.{n}.tmp"));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(SampleError::Write { path: tmp, source }),
        }
    }
    Err(SampleError::NoFreeName {
        stem: stem.to_string(),
        dir: dir.to_path_buf(),
        tries: MAX_TRIES,
    })
}

/// Links `tmp` to the first free `stem[-N].task.md`. Where hard links are not supported,
/// falls back to creating the final file with `create_new` and writing `text` into it.
fn place(tmp: &Path, dir: &Path, stem: &str, text: &[u8]) -> Result<PathBuf, SampleError> {
    for n in 1..=MAX_TRIES {
        let name = if n == 1 {
            format!("{stem}.task.md")
        } else {
            format!("{stem}-{n}.task.md")
        };
        let path = dir.join(name);
        match fs::hard_link(tmp, &path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(_) => match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    return f
                        .write_all(text)
                        .and_then(|()| f.sync_all())
                        .map(|()| path.clone())
                        .map_err(|source| SampleError::Write { path, source })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(SampleError::Write { path, source }),
            },
        }
    }
    Err(SampleError::NoFreeName {
        stem: stem.to_string(),
        dir: dir.to_path_buf(),
        tries: MAX_TRIES,
    })
}

/// Title, target files, prompt, success criteria and context of each type's sample.
/// The samples are harmless when a running daemon picks them up at once: the fix works
/// on its own small file, the others change nothing.
struct Body {
    title: &'static str,
    targets: &'static [&'static str],
    prompt: &'static str,
    criteria: &'static [&'static str],
    context: &'static str,
}

fn body(task_type: TaskType) -> Body {
    match task_type {
        TaskType::Fix => Body {
            title: "Fix the greeting in orca_sample/greet.py",
            targets: &["orca_sample/greet.py"],
            prompt: "`orca_sample/greet.py` should print `Hello, Orca!` but prints `Hello, world!`.\n\
                     Fix it. If the file does not exist yet, create it with a `main()` that prints\n\
                     the greeting, called under `if __name__ == \"__main__\":`.",
            criteria: &[
                "`python3 orca_sample/greet.py` prints `Hello, Orca!`",
                "No other file is changed",
            ],
            context: "This is Orca's sample fix task; delete orca_sample/ afterwards.",
        },
        TaskType::CodeReview => Body {
            title: "Review the README for mistakes",
            targets: &["README.md"],
            prompt: "Review the files listed under Target Files. Report bugs, unclear passages and\n\
                     commands that would not work, each with its file and line and a suggested fix.\n\
                     Do not change any file.",
            criteria: &[
                "Every finding names a file and a line",
                "No file is changed",
            ],
            context: "This is Orca's sample code review task.",
        },
        TaskType::Analyze => Body {
            title: "Describe how this project is built and tested",
            targets: &[],
            prompt: "Look at this folder and describe the project: its languages, its entry points,\n\
                     how to build it and how to run its tests. Do not change any file.",
            criteria: &[
                "Names the build and test commands",
                "No file is changed",
            ],
            context: "This is Orca's sample analysis task.",
        },
        TaskType::Summarize => Body {
            title: "Summarize the README for a new team member",
            targets: &["README.md"],
            prompt: "Summarize README.md in at most five bullet points for someone who joins the\n\
                     team today. Do not change any file.",
            criteria: &["At most five bullet points", "No file is changed"],
            context: "This is Orca's sample summarize task.",
        },
    }
}

/// The full text of the sample task for `task_type`.
pub fn sample_text(task_type: TaskType, priority: Priority) -> String {
    let b = body(task_type);
    let mut s = String::new();
    s.push_str("---\n");
    s.push_str(&format!(
        "# Orca sample task ({}). A running `orca` runs it at once; for your own tasks, copy it\n# outside tasks/, edit it, then move it into tasks/.\n",
        task_type.as_str()
    ));
    s.push_str("# `orca check FILE` shows what Orca understood. Every key below is optional.\n");
    s.push_str("# id: my_task             # default: the file name without .task.md; A-Z a-z 0-9 _ . - (1..64)\n");
    s.push_str(&format!(
        "type: {:<20}# fix | code_review | analyze | summarize; leave out to let Orca route it\n",
        task_type.as_str()
    ));
    s.push_str(&format!(
        "priority: {:<16}# high | medium | low; high runs first (default medium)\n",
        priority.as_str()
    ));
    s.push_str("# created: 2026-11-25T10:30:00Z  # when the task was written (RFC 3339)\n");
    s.push_str("# working_dir: backend    # where the agent starts, relative to CLAUDE_BASE_CWD; must stay inside CLAUDE_ALLOWED_ROOT\n");
    s.push_str("# timeout_sec: 600        # seconds per attempt; overrides CLAUDE_TIMEOUT_SEC\n");
    s.push_str("# max_turns: 20           # agent turns; overrides CLAUDE_MAX_TURNS\n");
    s.push_str(
        "# retries: 1              # retries of transient failures; overrides ORCA_MAX_RETRIES\n",
    );
    s.push_str("# model: sonnet           # model passed to the agent; overrides CLAUDE_MODEL\n");
    s.push_str("# resume_on_retry: true   # a retried attempt resumes the agent's session\n");
    s.push_str(
        "# requires: [repo-a]      # only workers with these labels run it (ORCA_NODE_LABELS)\n",
    );
    s.push_str("# x-owner: you            # keys starting with x- are kept and ignored\n");
    s.push_str("#\n");
    s.push_str(
        "# The body: the first `# ` heading is the title; sections start with a bold label\n",
    );
    s.push_str("# (**Prompt:**) or a heading (## Prompt). Only the prompt is required.\n");
    s.push_str("---\n\n");
    s.push_str(&format!("# {}\n\n", b.title));
    if !b.targets.is_empty() {
        s.push_str("**Target Files:**\n");
        for t in b.targets {
            s.push_str(&format!("- {t}\n"));
        }
        s.push('\n');
    }
    s.push_str("**Prompt:**\n");
    s.push_str(b.prompt);
    s.push_str("\n\n**Success Criteria:**\n");
    for c in b.criteria {
        s.push_str(&format!("- [ ] {c}\n"));
    }
    s.push_str("\n**Context:**\n");
    s.push_str(b.context);
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_count_up_and_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let tasks = dir.path().join("tasks");
        let a = write_sample(&tasks, TaskType::Fix, Priority::High).unwrap();
        let b = write_sample(&tasks, TaskType::Fix, Priority::Low).unwrap();
        let c = write_sample(&tasks, TaskType::Analyze, Priority::Medium).unwrap();
        assert_eq!(a, tasks.join("sample_fix.task.md"));
        assert_eq!(b, tasks.join("sample_fix-2.task.md"));
        assert_eq!(c, tasks.join("sample_analyze.task.md"));
        assert!(fs::read_to_string(&a).unwrap().contains("priority: high "));
        assert!(fs::read_to_string(&b).unwrap().contains("priority: low "));
        // No temp file is left behind.
        let mut names: Vec<String> = fs::read_dir(&tasks)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "sample_analyze.task.md",
                "sample_fix-2.task.md",
                "sample_fix.task.md"
            ]
        );
    }

    #[test]
    fn an_existing_file_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("sample_summarize.task.md"), "mine").unwrap();
        let p = write_sample(dir.path(), TaskType::Summarize, Priority::Medium).unwrap();
        assert_eq!(p, dir.path().join("sample_summarize-2.task.md"));
        assert_eq!(
            fs::read_to_string(dir.path().join("sample_summarize.task.md")).unwrap(),
            "mine"
        );
    }

    #[test]
    fn every_sample_shows_every_section_and_key() {
        for t in TaskType::ALL {
            let text = sample_text(t, Priority::Medium);
            assert!(text.contains(&format!("type: {} ", t.as_str())), "{text}");
            for key in [
                "# id:",
                "# created:",
                "# working_dir:",
                "# timeout_sec:",
                "# max_turns:",
                "# retries:",
                "# model:",
                "# resume_on_retry:",
                "# requires:",
            ] {
                assert!(text.contains(key), "{t}: {key} missing");
            }
            for section in ["**Prompt:**", "**Success Criteria:**", "**Context:**"] {
                assert!(text.contains(section), "{t}: {section} missing");
            }
            let body = text.splitn(3, "---\n").nth(2).unwrap();
            assert!(body.lines().any(|l| l.starts_with("# ")), "{t}: no title");
        }
    }
}

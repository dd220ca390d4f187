//! `orca check FILE...`: parses task files and applies the path policy with the effective
//! configuration, then prints what Orca understood (aligned text or stable JSON) or the errors.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{CheckArgs, Ctx, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::config::Config;
use crate::task::{Task, TaskError};

/// What `check` reports for one good file.
#[derive(Debug, Clone, Serialize)]
pub struct Understood {
    pub id: String,
    /// `null`: routed by Orca.
    #[serde(rename = "type")]
    pub task_type: Option<String>,
    pub priority: String,
    pub title: Option<String>,
    pub created: Option<String>,
    /// Resolved, absolute.
    pub working_dir: PathBuf,
    /// Resolved, absolute, in file order.
    pub target_files: Vec<PathBuf>,
    pub success_criteria: Vec<CriterionOut>,
    pub prompt: String,
    pub prompt_chars: usize,
    pub prompt_lines: usize,
    pub context: Option<String>,
    pub timeout_sec: Option<u64>,
    pub max_turns: Option<u32>,
    pub retries: Option<u32>,
    pub model: Option<String>,
    pub resume_on_retry: bool,
    pub requires: Vec<String>,
    /// Fix rounds after unmet checks (absent: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix_rounds: Option<u32>,
    /// Runs in a git worktree (absent: no).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub worktree: bool,
}

/// One success criterion as written.
#[derive(Debug, Clone, Serialize)]
pub struct CriterionOut {
    pub text: String,
    pub checked: bool,
}

/// The error of one bad file, as in the result's `error` object.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorOut {
    pub kind: String,
    pub message: String,
    pub line: Option<usize>,
    pub hint: String,
}

/// One entry of `check --json`.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub file: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<Understood>,
    /// The first error (kept for scripts that read one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorOut>,
    /// Every error, in file order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorOut>,
}

/// Runs `orca check`; returns the exit code (0 all good, 1 any bad file, 2 bad config).
pub fn run(ctx: &Ctx, args: &CheckArgs, out: &mut dyn Write) -> io::Result<i32> {
    if args.files.is_empty() {
        eprintln!("error: no task files given\n\nUsage: orca check <FILE>...");
        return Ok(EXIT_USAGE);
    }
    let config = match Config::load(&ctx.root, &ctx.flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let mut reports = Vec::with_capacity(args.files.len());
    let mut results = Vec::with_capacity(args.files.len());
    for file in &args.files {
        let result = check_file(file, &config);
        reports.push(report(file, &result));
        results.push((file, result));
    }
    let failed = reports.iter().filter(|r| !r.ok).count();
    if args.json {
        let text = serde_json::to_string_pretty(&reports).map_err(io::Error::other)?;
        writeln!(out, "{text}")?;
    } else {
        for (i, (file, result)) in results.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            match result {
                Ok(u) => write_text(out, file, u)?,
                Err(errors) => {
                    for e in errors {
                        writeln!(out, "{e}")?;
                    }
                    if errors.len() > 1 {
                        writeln!(out, "{}: {} errors", file.display(), errors.len())?;
                    }
                }
            }
        }
        if results.len() > 1 {
            writeln!(
                out,
                "\n{} file{} checked: {} ok, {} with errors",
                results.len(),
                if results.len() == 1 { "" } else { "s" },
                results.len() - failed,
                failed
            )?;
        }
    }
    Ok(if failed > 0 { EXIT_FAILED } else { EXIT_OK })
}

/// Parses one file and applies the path policy of DESIGN §2 with `config`'s
/// CLAUDE_BASE_CWD and CLAUDE_ALLOWED_ROOT. Every error is reported, not just the first:
/// each bad front-matter key or value, an empty prompt, each refused path.
pub fn check_file(file: &Path, config: &Config) -> Result<Understood, Vec<TaskError>> {
    let parsed = crate::task::parse_file_all(file);
    let mut errors = parsed.errors;
    let Some(task) = parsed.task else {
        return Err(errors);
    };
    let resolved = crate::task::paths::resolve_task_paths_all(
        &task,
        file,
        &config.claude_base_cwd,
        &config.claude_allowed_root,
    );
    // `worktree: true` needs a repository with a commit, as intake does.
    if let Ok(r) = &resolved {
        if task.worktree {
            if let Err(e) = crate::verify::worktree::check_task(file, &r.working_dir) {
                errors.push(e);
            }
        }
    }
    match resolved {
        Ok(r) if errors.is_empty() => Ok(understood(&task, r.working_dir, r.target_files)),
        Ok(_) => Err(errors),
        Err(more) => {
            errors.extend(more);
            // In file order; errors without a line (the file as a whole) first.
            errors.sort_by_key(|e| e.line.unwrap_or(0));
            Err(errors)
        }
    }
}

fn understood(task: &Task, working_dir: PathBuf, target_files: Vec<PathBuf>) -> Understood {
    Understood {
        id: task.id.clone(),
        task_type: task.task_type.map(|t| t.as_str().to_string()),
        priority: task.priority.as_str().to_string(),
        title: task.title.clone(),
        created: task.created.clone(),
        working_dir,
        target_files,
        success_criteria: task
            .success_criteria
            .iter()
            .map(|c| CriterionOut {
                text: c.text.clone(),
                checked: c.checked,
            })
            .collect(),
        prompt: task.prompt.clone(),
        prompt_chars: task.prompt.chars().count(),
        prompt_lines: task.prompt.lines().count(),
        context: task.context.clone(),
        timeout_sec: task.timeout_sec,
        max_turns: task.max_turns,
        retries: task.retries,
        model: task.model.clone(),
        resume_on_retry: task.resume_on_retry,
        requires: task.requires.clone(),
        fix_rounds: task.fix_rounds.filter(|n| *n > 0),
        worktree: task.worktree,
    }
}

fn report(file: &Path, result: &Result<Understood, Vec<TaskError>>) -> FileReport {
    let file = file.display().to_string();
    match result {
        Ok(u) => FileReport {
            file,
            ok: true,
            task: Some(u.clone()),
            error: None,
            errors: Vec::new(),
        },
        Err(errors) => {
            let errors: Vec<ErrorOut> = errors
                .iter()
                .map(|e| ErrorOut {
                    kind: e.kind_name().to_string(),
                    message: e.message(),
                    line: e.line,
                    hint: e.hint(),
                })
                .collect();
            FileReport {
                file,
                ok: false,
                task: None,
                error: errors.first().cloned(),
                errors,
            }
        }
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The aligned text report of one good file.
fn write_text(out: &mut dyn Write, file: &Path, u: &Understood) -> io::Result<()> {
    let mut rows: Vec<(&str, String)> = vec![
        ("id", u.id.clone()),
        (
            "type",
            u.task_type.clone().unwrap_or_else(|| "(routed)".into()),
        ),
        ("priority", u.priority.clone()),
        ("title", u.title.clone().unwrap_or_else(|| "(none)".into())),
    ];
    if let Some(c) = &u.created {
        rows.push(("created", c.clone()));
    }
    rows.push(("working dir", u.working_dir.display().to_string()));
    let optional: [(&str, Option<String>); 4] = [
        ("timeout", u.timeout_sec.map(|s| format!("{s} s"))),
        ("max turns", u.max_turns.map(|n| n.to_string())),
        ("retries", u.retries.map(|n| n.to_string())),
        ("model", u.model.clone()),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            rows.push((k, v));
        }
    }
    if u.resume_on_retry {
        rows.push(("resume on retry", "yes".into()));
    }
    if !u.requires.is_empty() {
        rows.push(("requires", u.requires.join(", ")));
    }
    if let Some(n) = u.fix_rounds {
        rows.push(("fix rounds", n.to_string()));
    }
    if u.worktree {
        rows.push(("worktree", "yes (branch orca/<id>)".into()));
    }
    let mut tail: Vec<(&str, String)> = Vec::new();
    tail.push((
        "prompt",
        format!(
            "{}, {}",
            plural(u.prompt_chars, "char", "chars"),
            plural(u.prompt_lines, "line", "lines")
        ),
    ));
    if let Some(c) = &u.context {
        tail.push((
            "context",
            format!(
                "{}, {}",
                plural(c.chars().count(), "char", "chars"),
                plural(c.lines().count(), "line", "lines")
            ),
        ));
    }
    let width = ["targets", "success criteria"]
        .iter()
        .copied()
        .chain(rows.iter().chain(&tail).map(|(k, _)| *k))
        .map(str::len)
        .max()
        .unwrap_or(0)
        + 1;

    writeln!(out, "{}: ok", file.display())?;
    for (k, v) in &rows {
        writeln!(out, "  {:<width$} {v}", format!("{k}:"))?;
    }
    if u.target_files.is_empty() {
        writeln!(out, "  {:<width$} (none)", "targets:")?;
    } else {
        writeln!(out, "  {:<width$} {}", "targets:", u.target_files.len())?;
        for t in &u.target_files {
            writeln!(out, "    - {}", t.display())?;
        }
    }
    writeln!(
        out,
        "  {:<width$} {}",
        "success criteria:",
        u.success_criteria.len()
    )?;
    for c in &u.success_criteria {
        writeln!(
            out,
            "    - [{}] {}",
            if c.checked { "x" } else { " " },
            c.text
        )?;
    }
    for (k, v) in &tail {
        writeln!(out, "  {:<width$} {v}", format!("{k}:"))?;
    }
    Ok(())
}

//! Intake -> store: a task file read from `tasks/` becomes the store's new record.
//!
//! The daemon's intake (scheduler) still does its own ingest; moving it here, so that every
//! front end and the daemon record a task the same way, is planned (DESIGN §11: intake ->
//! ops::ingest -> store). What is here is the part `cancel` of a pending file needs.

use std::path::Path;

use crate::artifacts::result::SourceKind;
use crate::config::Config;
use crate::store::{NewTask, TaskState};
use crate::task::{self, TaskError};
use crate::workspace::Workspace;

/// The store record for the task file at `path` (`file_rel` is its path relative to the
/// root, e.g. `tasks/x.task.md`), parsed and checked as the daemon's intake does: read
/// within CLAUDE_ALLOWED_ROOT, working folder and targets resolved, a free stem picked.
pub fn new_task(
    cfg: &Config,
    ws: &Workspace,
    path: &Path,
    file_rel: String,
    received_at_ms: i64,
) -> Result<NewTask, TaskError> {
    let t = task::parse_file_within(path, &cfg.claude_allowed_root)?;
    task::paths::resolve_task_paths(&t, path, &cfg.claude_base_cwd, &cfg.claude_allowed_root)?;
    let stem = crate::artifacts::free_stem(ws, &Workspace::stem_of(path));
    Ok(NewTask {
        desired_id: t.id.clone(),
        stem,
        file: file_rel,
        source: source_of(&t),
        source_user: None,
        priority: t.priority,
        max_retries: t.retries.unwrap_or(cfg.max_retries),
        task: Some(t),
        state: TaskState::Queued,
        error: None,
        received_at_ms,
    })
}

/// Where a parsed task came from: `orca submit` marks its files with `x-orca-source: cli`.
pub fn source_of(t: &task::Task) -> SourceKind {
    if t.extra.get("x-orca-source").and_then(|v| v.as_str()) == Some("cli") {
        SourceKind::Cli
    } else {
        SourceKind::File
    }
}

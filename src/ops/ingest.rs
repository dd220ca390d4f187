//! Intake -> store: a task file read from `tasks/` becomes the store's new record, with its
//! events (DESIGN §11: intake -> ops::ingest -> store). The daemon's intake, `cancel` of a
//! pending file and, later, other front ends record a task the same way.

use std::path::Path;

use crate::artifacts::result::{ResultError, SourceKind};
use crate::config::Config;
use crate::events::{Event, EventBus, EventKind};
use crate::store::{NewTask, Store, StoreError, TaskRecord, TaskState};
use crate::task::{self, TaskError};
use crate::workspace::Workspace;

/// The store record for the task file at `path` (`file_rel` is its path relative to the
/// root, e.g. `tasks/x.task.md`), parsed and checked: read within CLAUDE_ALLOWED_ROOT,
/// working folder and targets resolved, a free stem picked.
pub fn new_task(
    cfg: &Config,
    ws: &Workspace,
    path: &Path,
    file_rel: String,
    received_at_ms: i64,
) -> Result<NewTask, TaskError> {
    let t = task::parse_file_within(path, &cfg.claude_allowed_root)?;
    let resolved =
        task::paths::resolve_task_paths(&t, path, &cfg.claude_base_cwd, &cfg.claude_allowed_root)?;
    if t.worktree {
        crate::verify::worktree::check_task(path, &resolved.working_dir)?;
    }
    // A stem whose artifacts already exist (say, from before the store was reset) is
    // suffixed too, so no task's artifacts are ever overwritten by another's.
    let stem = crate::artifacts::free_stem(ws, &Workspace::stem_of(path));
    Ok(NewTask {
        desired_id: t.id.clone(),
        stem,
        file: file_rel,
        source: source_of(&t),
        source_user: super::origin::source_user(&t),
        priority: t.priority,
        max_retries: t.retries.unwrap_or(cfg.max_retries),
        task: Some(t),
        state: TaskState::Queued,
        error: None,
        received_at_ms,
    })
}

/// Where a parsed task came from: `orca submit` marks its files with `x-orca-source: cli`,
/// the Telegram bot with `telegram` ([`super::origin`]).
pub fn source_of(t: &task::Task) -> SourceKind {
    super::origin::source_kind(t)
}

/// Queues valid tasks in one store transaction (a burst of files costs one commit, not one
/// each) and publishes their events. When the store refuses the batch, each task is queued
/// alone, so that one bad record does not hold up the others. One answer per task, in order.
pub fn queue(
    store: &dyn Store,
    events: &EventBus,
    news: Vec<NewTask>,
) -> Vec<Result<TaskRecord, StoreError>> {
    if news.is_empty() {
        return Vec::new();
    }
    let answers: Vec<Result<TaskRecord, StoreError>> = match store.enqueue_many(&news) {
        Ok(recs) => recs.into_iter().map(Ok).collect(),
        Err(_) => news.into_iter().map(|n| store.enqueue(n)).collect(),
    };
    for rec in answers.iter().flatten() {
        events.publish_all(queued_events(rec));
        tracing::info!(task = %rec.id, file = %rec.file, "queued");
    }
    answers
}

/// The events of a task just queued: received, parsed, queued.
fn queued_events(rec: &TaskRecord) -> Vec<Event> {
    let renamed = rec.id != rec.desired_id;
    let mut kinds = vec![EventKind::TaskReceived {
        file: rec.file.clone(),
        note: renamed.then(|| {
            format!(
                "id '{}' is taken; this task is '{}'",
                rec.desired_id, rec.id
            )
        }),
        renamed_from: renamed.then(|| rec.desired_id.clone()),
        source: source_name(rec.source).to_owned(),
        stem: rec.stem.clone(),
    }];
    if let Some(t) = &rec.task {
        kinds.push(EventKind::Parsed {
            criteria: t.success_criteria.len(),
            priority: t.priority.as_str().to_owned(),
            targets: t.target_files.len(),
            title: t.title.clone(),
            task_type: t.task_type.map(|x| x.as_str().to_owned()),
        });
    }
    kinds.push(EventKind::Queued {
        by: None,
        priority: rec.priority.as_str().to_owned(),
        retry: None,
        seq: Some(rec.seq),
    });
    kinds.into_iter().map(|k| Event::task(&rec.id, k)).collect()
}

fn source_name(s: SourceKind) -> &'static str {
    match s {
        SourceKind::Cli => "cli",
        SourceKind::Telegram => "telegram",
        SourceKind::File => "file",
    }
}

/// Records a task file that cannot run as rejected, publishes its events, then writes its
/// result and summary and moves the file to `tasks/rejected/` (a failure there is logged;
/// the daemon finishes it later).
pub fn reject(
    ws: &Workspace,
    store: &dyn Store,
    events: &EventBus,
    file_rel: &str,
    err: &TaskError,
    received_at_ms: i64,
) -> Result<(), StoreError> {
    let stem = crate::artifacts::free_stem(ws, &Workspace::stem_of(&ws.root.join(file_rel)));
    let error = ResultError {
        kind: err.kind_name().to_owned(),
        message: err
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
        line: err.line.map(|l| l as u64),
        hint: Some(err.hint()),
    };
    let rec = store.enqueue(NewTask {
        desired_id: id_from_stem(&stem),
        stem,
        file: file_rel.to_owned(),
        source: SourceKind::File,
        source_user: None,
        task: None,
        priority: Default::default(),
        max_retries: 0,
        state: TaskState::Rejected,
        error: serde_json::to_value(&error).ok(),
        received_at_ms,
    })?;
    events.publish_all(vec![
        Event::task(
            &rec.id,
            EventKind::TaskReceived {
                file: file_rel.to_owned(),
                note: None,
                renamed_from: None,
                source: "file".into(),
                stem: rec.stem.clone(),
            },
        ),
        Event::task(
            &rec.id,
            EventKind::TaskRejected {
                error: error.message.clone(),
                file: file_rel.to_owned(),
                hint: error.hint.clone(),
                kind: error.kind.clone(),
                line: error.line,
            },
        ),
    ]);
    tracing::warn!(file = %file_rel, on_console = true, "rejected: {}", err);
    finalize(ws, store, events, &rec);
    Ok(())
}

/// Writes a finished record's artifacts and archives its file; a failure is logged (the
/// daemon tries again on its next pass over unfinished records).
pub fn finalize(ws: &Workspace, store: &dyn Store, events: &EventBus, rec: &TaskRecord) {
    if let Err(e) = crate::scheduler::finalize::finalize(ws, store, events, rec, None, None) {
        tracing::error!(task = %rec.id, "cannot write the artifacts or archive the task file (will try again): {e}");
    }
}

/// A file-system-safe id made from a file stem, for tasks rejected before their id is known.
pub fn id_from_stem(stem: &str) -> String {
    let mut id: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if id.is_empty() {
        id = "task".into();
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_stems_are_safe() {
        assert_eq!(id_from_stem("fix db"), "fix_db");
        assert_eq!(id_from_stem(""), "task");
        assert_eq!(id_from_stem("a.b"), "a_b");
    }
}

//! `submit`: a task given as a file's bytes or as a prompt becomes a task file in `tasks/`,
//! written atomically under an id that neither the store nor `tasks/` has, however many
//! submitters run at once.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::json;

use crate::clock::now_ms;
use crate::task::{Criterion, Priority, Task, TaskType};

use super::views::{DaemonView, SubmitView};
use super::{Ops, OpsError};

/// A task file's contents to submit, with the path it came from (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitSource {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

/// What to submit: a file (`source`), or a prompt; the other fields override the file's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubmitRequest {
    pub source: Option<SubmitSource>,
    pub prompt: Option<String>,
    pub task_type: Option<TaskType>,
    pub priority: Option<Priority>,
    pub targets: Vec<String>,
    pub criteria: Vec<String>,
    pub dir: Option<String>,
    pub id: Option<String>,
}

/// How many ids `submit` tries before it gives up (each a name taken by someone else).
const MAX_ID_TRIES: u32 = 10_000;

/// Ids made in this process so far (two submits in one process within a millisecond).
static SEQ: AtomicU32 = AtomicU32::new(0);

/// The default id of a task written on the command line: `cli_<ms>_<pid>[_<n>]`, distinct
/// between processes (the pid) and within one (a counter).
pub fn default_id() -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    if n == 0 {
        format!("cli_{}_{pid}", now_ms())
    } else {
        format!("cli_{}_{pid}_{n}", now_ms())
    }
}

/// `base` with the suffix `-n` (n >= 2), cut so that it stays within 64 characters.
fn suffixed(base: &str, n: u32) -> String {
    if n < 2 {
        return base.to_string();
    }
    let suffix = format!("-{n}");
    let mut keep = 64usize.saturating_sub(suffix.len()).min(base.len());
    while !base.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{}", &base[..keep], suffix)
}

/// Writes the task into `tasks/` and returns its id.
pub fn submit(ops: &Ops<'_>, req: SubmitRequest) -> Result<SubmitView, OpsError> {
    let mut extra = std::collections::BTreeMap::new();
    extra.insert("x-orca-source".to_owned(), json!("cli"));
    submit_as(ops, req, None, extra)
}

/// [`submit`] for another front end: the task gets `title` (when given) and the `x-orca-*`
/// keys `extra` (where it came from, see [`super::origin`]) instead of `x-orca-source: cli`.
pub fn submit_as(
    ops: &Ops<'_>,
    req: SubmitRequest,
    title: Option<String>,
    extra: std::collections::BTreeMap<String, serde_json::Value>,
) -> Result<SubmitView, OpsError> {
    let mut task = match &req.source {
        Some(src) => crate::task::parse_bytes(&src.path, &src.bytes)
            .map_err(|e| OpsError::BadTask(e.to_string()))?,
        None => {
            let Some(prompt) = req.prompt.clone().filter(|p| !p.trim().is_empty()) else {
                return Err(OpsError::Usage("nothing to submit\nhint: give a task file, `-` for standard input, or a prompt with -p \"...\"".into()));
            };
            Task {
                created: Some(crate::clock::now_rfc3339()),
                ..Task::new(default_id(), prompt)
            }
        }
    };
    if req.source.is_some() {
        if let Some(p) = &req.prompt {
            task.prompt = p.clone();
        }
    }
    if let Some(t) = req.task_type {
        task.task_type = Some(t);
    }
    if let Some(p) = req.priority {
        task.priority = p;
    }
    if let Some(d) = &req.dir {
        task.working_dir = Some(d.clone());
    }
    task.target_files.extend(req.targets.iter().cloned());
    task.success_criteria
        .extend(req.criteria.iter().map(|c| Criterion {
            text: c.clone(),
            checked: false,
        }));
    if let Some(id) = &req.id {
        task.id = id.clone();
    }
    if req.source.is_none() && req.priority.is_none() {
        // A request in plain words: routing decides its priority too.
        task.extra.insert(
            crate::mediate::routing::PRIORITY_UNSET_KEY.into(),
            json!(true),
        );
    }
    if title.is_some() {
        task.title = title;
    }
    task.extra.extend(extra);
    crate::task::paths::validate_id(&task.id).map_err(|e| OpsError::Usage(e.to_string()))?;
    let tasks = ops.ws.tasks();
    // Check the rendered file parses and its paths are allowed before it reaches tasks/.
    let probe = tasks.join(format!("{}.task.md", task.id));
    let text = crate::task::render(&task);
    crate::task::parse_bytes(&probe, text.as_bytes())
        .and_then(|t| {
            crate::task::paths::resolve_task_paths(
                &t,
                &probe,
                &ops.cfg.claude_base_cwd,
                &ops.cfg.claude_allowed_root,
            )
            .map(|_| t)
        })
        .map_err(|e| OpsError::BadTask(e.to_string()))?;
    // Pick an id (and file name) that neither the store nor tasks/ has; a name another
    // submitter takes between the look and the link is retried with the next suffix.
    let base = task.id.clone();
    let mut n = 1;
    loop {
        if n > MAX_ID_TRIES {
            return Err(OpsError::Other(format!(
                "no free task id after {MAX_ID_TRIES} tries starting at '{base}'; choose another with --id"
            )));
        }
        task.id = suffixed(&base, n);
        n += 1;
        let dest = tasks.join(format!("{}.task.md", task.id));
        if ops.store.get(&task.id)?.is_some() || dest.exists() {
            continue;
        }
        let text = crate::task::render(&task);
        match write_new_atomically(&tasks, &dest, text.as_bytes()) {
            Ok(()) => {
                let pid = crate::store::lock::holder(ops.ws);
                return Ok(SubmitView {
                    daemon: DaemonView {
                        pid,
                        running: pid.is_some(),
                    },
                    file: format!("tasks/{}.task.md", task.id),
                    id: task.id,
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(OpsError::Write {
                    path: dest.display().to_string(),
                    source: e,
                })
            }
        }
    }
}

/// Writes `bytes` to a hidden temporary file in `dir`, then links it to `dest` (never
/// replacing an existing file: `AlreadyExists` when it is taken) and removes the temporary
/// name.
pub fn write_new_atomically(dir: &Path, dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, dest));
    let _ = std::fs::remove_file(&tmp);
    linked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_stay_within_64_characters() {
        assert_eq!(suffixed("a", 1), "a");
        assert_eq!(suffixed("a", 2), "a-2");
        let long = "x".repeat(64);
        assert_eq!(suffixed(&long, 10).len(), 64);
        assert!(suffixed(&long, 10).ends_with("-10"));
    }

    #[test]
    fn default_ids_differ_within_a_process() {
        let a = default_id();
        let b = default_id();
        assert_ne!(a, b);
        for id in [&a, &b] {
            crate::task::paths::validate_id(id).unwrap();
        }
    }

    #[test]
    fn a_taken_name_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a.task.md");
        write_new_atomically(dir.path(), &dest, b"first").unwrap();
        let err = write_new_atomically(dir.path(), &dest, b"second").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&dest).unwrap(), b"first");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

//! Task files in `tasks/` that no daemon has taken into the store yet: `orca submit` wrote
//! them, or a person dropped them there while no daemon ran. They are `pending`: `list` and
//! `show` know them at once, `cancel` cancels them, `status` counts them.

use std::path::PathBuf;

use crate::artifacts::result::SourceKind;
use crate::clock::rfc3339_ms;
use crate::workspace::Workspace;

use super::views::{TaskView, PENDING};
use super::{ingest, Ops, OpsError};

/// One pending task file.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// Where the file is.
    pub path: PathBuf,
    /// What `list` and `show` show (state `pending`).
    pub view: TaskView,
}

/// The names of the task files directly in `tasks/`, sorted (none when it does not exist).
/// Names that are not UTF-8 are left to the daemon's intake.
pub fn task_file_names(ws: &Workspace) -> Result<Vec<String>, OpsError> {
    let rd = match std::fs::read_dir(ws.tasks()) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(OpsError::Other(format!(
                "cannot read {}: {e}",
                ws.tasks().display()
            )))
        }
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().map(|t| !t.is_dir()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| Workspace::is_task_file_name(n))
        .collect();
    names.sort();
    Ok(names)
}

/// The names of the task files in `tasks/` that have no open record in the store.
fn pending_names(ops: &Ops<'_>) -> Result<Vec<String>, OpsError> {
    let names = task_file_names(ops.ws)?;
    let rels: Vec<String> = names.iter().map(|n| format!("tasks/{n}")).collect();
    let refs: Vec<&str> = rels.iter().map(String::as_str).collect();
    let open = ops.store.find_open_by_files(&refs)?;
    Ok(names
        .into_iter()
        .zip(open)
        .filter(|(_, rec)| rec.is_none())
        .map(|(n, _)| n)
        .collect())
}

/// How many task files are pending.
pub fn count(ops: &Ops<'_>) -> Result<usize, OpsError> {
    Ok(pending_names(ops)?.len())
}

/// Every pending task file, by name, each read for its id, title, type and priority.
pub fn list(ops: &Ops<'_>) -> Result<Vec<Pending>, OpsError> {
    Ok(pending_names(ops)?
        .into_iter()
        .map(|name| pending_view(ops, &name))
        .collect())
}

/// The pending task file whose id (or stem) is `id`.
pub fn find(ops: &Ops<'_>, id: &str) -> Result<Option<Pending>, OpsError> {
    let all = list(ops)?;
    let by_id = all.iter().position(|p| p.view.id == id);
    let by_stem = || all.iter().position(|p| p.view.stem == id);
    Ok(by_id.or_else(by_stem).map(|i| all[i].clone()))
}

fn pending_view(ops: &Ops<'_>, name: &str) -> Pending {
    let path = ops.ws.tasks().join(name);
    let stem = Workspace::stem_of(&path);
    let received = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .unwrap_or(0);
    let parsed = crate::task::parse_file_within(&path, &ops.cfg.claude_allowed_root);
    let mut view = TaskView {
        archived_to: None,
        attempts: 0,
        cancel_requested: false,
        error: None,
        file: format!("tasks/{name}"),
        finished_at: None,
        id: stem.clone(),
        max_retries: ops.cfg.max_retries,
        priority: crate::task::Priority::Medium.as_str(),
        progress: None,
        received_at: rfc3339_ms(received),
        session_id: None,
        source: SourceKind::File,
        started_at: None,
        state: PENDING.to_string(),
        stem,
        title: None,
        task_type: None,
        waiting_for: Some(match crate::store::lock::holder(ops.ws) {
            Some(pid) => format!("the daemon (pid {pid}) takes it in a moment"),
            None => "no daemon is running; start one with `orca run`".to_string(),
        }),
        parsed: false,
    };
    match parsed {
        Ok(t) => {
            view.parsed = true;
            view.id = t.id.clone();
            view.priority = t.priority.as_str();
            view.max_retries = t.retries.unwrap_or(ops.cfg.max_retries);
            view.source = ingest::source_of(&t);
            view.title = t.title.clone();
            view.task_type = t.task_type.map(|x| x.as_str());
        }
        Err(e) => {
            view.error = Some(serde_json::json!({
                "kind": e.kind_name(),
                "message": e.to_string(),
            }));
        }
    }
    Pending { path, view }
}

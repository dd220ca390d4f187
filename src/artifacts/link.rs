//! Links between results written after the fact: a follow-up task (a reply to a task's
//! notification) is named in the result of the task it continues (`source.followed_by`).

use super::error::ArtifactError;
use super::result::TaskResult;
use crate::workspace::Workspace;

/// Adds `child` to `source.followed_by` of the result `results/<stem>_result.json` (once),
/// validated and rewritten atomically like every result.
pub fn add_follow_up(ws: &Workspace, stem: &str, child: &str) -> Result<(), ArtifactError> {
    let path = ws.result_file(stem);
    let text = std::fs::read_to_string(&path).map_err(|e| ArtifactError::Serialize {
        path: path.clone(),
        reason: format!("cannot read it: {e}"),
    })?;
    let mut result: TaskResult =
        serde_json::from_str(&text).map_err(|e| ArtifactError::Serialize {
            path: path.clone(),
            reason: format!("not a result document: {e}"),
        })?;
    if result.source.followed_by.iter().any(|c| c == child) {
        return Ok(());
    }
    result.source.followed_by.push(child.to_owned());
    super::write::write_result(ws, stem, &result).map(|_| ())
}

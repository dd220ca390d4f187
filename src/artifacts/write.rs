//! Atomic writes of a task's artifacts: the result JSON (validated against the schema
//! before anything touches the disk) and the summary text, each via `.partial` + rename.
//!
//! Durability: the data is not fsynced. The rename makes the write atomic for every reader
//! (a file is either the old one, absent, or complete), which is what crash recovery of the
//! *process* needs; a result lost to a power cut is written again from the store.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::ArtifactError;
use super::result::TaskResult;
use super::summary::render_summary;
use super::validate::validate_value;
use crate::workspace::{in_folder, private_file_options, FolderError, Workspace};

/// Writes `results/<stem>_result.json` atomically, after validating it; not fsynced.
/// A result that breaks the schema is an error and nothing is written.
pub fn write_result(
    ws: &Workspace,
    stem: &str,
    result: &TaskResult,
) -> Result<PathBuf, ArtifactError> {
    check_stem(stem)?;
    let path = ws.result_file(stem);
    let value = serde_json::to_value(result).map_err(|e| ArtifactError::Serialize {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    validate_value(&value).map_err(|violations| ArtifactError::Invalid {
        path: path.clone(),
        violations,
    })?;
    let mut text = serde_json::to_string_pretty(&value).map_err(|e| ArtifactError::Serialize {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    text.push('\n');
    write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

/// Writes `summaries/<stem>_summary.txt` (the text of [`render_summary`]) atomically; not fsynced.
pub fn write_summary(
    ws: &Workspace,
    stem: &str,
    result: &TaskResult,
) -> Result<PathBuf, ArtifactError> {
    check_stem(stem)?;
    let path = ws.summary_file(stem);
    write_atomic(&path, render_summary(result).as_bytes())?;
    Ok(path)
}

/// A stem becomes part of a file name: refuse anything that could leave the folder.
fn check_stem(stem: &str) -> Result<(), ArtifactError> {
    if stem.is_empty() || stem == "." || stem == ".." || stem.contains(['/', '\\', '\0']) {
        return Err(ArtifactError::BadStem(stem.to_owned()));
    }
    Ok(())
}

/// Writes `bytes` to `path` through `.<name>.partial` in the same folder, then renames it
/// over `path`. Creates the folder when missing. On any failure the partial file is removed
/// and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ArtifactError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = dir.join(format!(".{name}.partial"));
    let written = (|| {
        // Private whatever the umask: results and summaries hold prompts and agent output.
        let create = || private_file_options().truncate(true).open(&partial);
        let mut f = in_folder(dir, create).map_err(|e| match e {
            FolderError::Make(e) => ArtifactError::io("create folder", dir, e),
            FolderError::Op(e) => ArtifactError::io("create", &partial, e),
        })?;
        f.write_all(bytes)
            .map_err(|e| ArtifactError::io("write", &partial, e))?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&partial, path) {
        let _ = std::fs::remove_file(&partial);
        return Err(ArtifactError::io("rename into place", path, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::result::ResultStatus;

    fn ws() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::new(dir.path());
        (dir, ws)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_valid_result_atomically_and_round_trips() {
        let (_d, ws) = ws();
        let r = TaskResult::example();
        let p = write_result(&ws, "fix_db_timeout", &r).unwrap();
        assert_eq!(p, ws.root.join("results/fix_db_timeout_result.json"));
        assert_eq!(names(&ws.results()), vec!["fix_db_timeout_result.json"]);
        let back: TaskResult = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(back, r);
        // Overwriting the same stem replaces the file, still no partial left.
        let mut r2 = r.clone();
        r2.status = ResultStatus::Failed;
        write_result(&ws, "fix_db_timeout", &r2).unwrap();
        assert_eq!(names(&ws.results()), vec!["fix_db_timeout_result.json"]);
        let back: TaskResult = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(back.status, ResultStatus::Failed);
    }

    #[test]
    fn refuses_invalid_result_and_writes_nothing() {
        let (_d, ws) = ws();
        let mut r = TaskResult::example();
        r.schema_version = 2;
        r.received_at = "yesterday".into();
        let err = write_result(&ws, "x", &r).unwrap_err();
        match &err {
            ArtifactError::Invalid { violations, .. } => {
                let ptrs: Vec<&str> = violations.iter().map(|v| v.pointer.as_str()).collect();
                assert!(ptrs.contains(&"/schema_version"), "{ptrs:?}");
                assert!(ptrs.contains(&"/received_at"), "{ptrs:?}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("x_result.json"), "{err}");
        assert!(!ws.result_file("x").exists());
        // The folder may have been created, but holds nothing.
        if ws.results().exists() {
            assert!(names(&ws.results()).is_empty());
        }
    }

    #[test]
    fn results_path_is_a_file_gives_clear_error() {
        let (_d, ws) = ws();
        std::fs::write(ws.results(), "not a folder").unwrap();
        let err = write_result(&ws, "x", &TaskResult::example()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("results"), "{msg}");
        assert!(
            msg.contains("must be a folder") || msg.contains("check"),
            "{msg}"
        );
        std::fs::write(ws.root.join("summaries"), "nope").unwrap();
        assert!(write_summary(&ws, "x", &TaskResult::example()).is_err());
    }

    #[test]
    fn rejects_stems_that_leave_the_folder() {
        let (_d, ws) = ws();
        for bad in ["", "..", "a/b", "../x"] {
            assert!(matches!(
                write_result(&ws, bad, &TaskResult::example()),
                Err(ArtifactError::BadStem(_))
            ));
        }
    }

    #[test]
    fn writes_summary() {
        let (_d, ws) = ws();
        let p = write_summary(&ws, "s", &TaskResult::example()).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("Fix the database connection timeout"));
        assert_eq!(names(&ws.summaries()), vec!["s_summary.txt"]);
    }
}

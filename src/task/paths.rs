//! Path policy: resolve working dirs and target files against CLAUDE_BASE_CWD, normalise
//! `..`, resolve symlinks where they exist, refuse anything outside CLAUDE_ALLOWED_ROOT.

use std::path::{Path, PathBuf};

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path '{path}' resolves to {resolved}, outside the allowed root {root}")]
    OutsideRoot {
        path: String,
        resolved: PathBuf,
        root: PathBuf,
    },
    #[error("id '{0}' is not valid: use 1 to 64 of A-Z a-z 0-9 _ . - (ids become file names)")]
    BadId(String),
    #[error("cannot resolve path '{path}': {reason}")]
    Unresolvable { path: String, reason: String },
}

/// Resolves `rel` (relative or absolute) against `base`, normalising `..` and following
/// symlinks of the longest existing prefix, and checks the result lies inside `allowed_root`
/// (itself canonicalised). A not-yet-existing path inside the root is accepted.
pub fn resolve_inside(base: &Path, allowed_root: &Path, rel: &str) -> Result<PathBuf, PathError> {
    let _ = (base, allowed_root);
    Err(PathError::Unresolvable {
        path: rel.into(),
        reason: "not written yet".into(),
    })
}

/// Checks a task id: `[A-Za-z0-9_.-]`, 1..=64 chars, not `.` or `..`.
pub fn validate_id(id: &str) -> Result<(), PathError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(PathError::BadId(id.into()))
    }
}

//! The error of every artifact operation (write, archive, clean): names the file, what
//! failed, and what the user can do about it.

use std::io;
use std::path::{Path, PathBuf};

use super::validate::Violation;

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// A file-system operation failed.
    #[error("cannot {op} {}: {source}; {}", path.display(), io_hint(source, path))]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The result does not match the schema; nothing was written.
    #[error(
        "refusing to write {}: the result does not match the schema ({}); nothing was written. This is a bug in Orca, please report it",
        path.display(),
        violations.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("; ")
    )]
    Invalid {
        path: PathBuf,
        violations: Vec<Violation>,
    },
    #[error("cannot serialize the result for {}: {reason}; this is a bug in Orca, please report it", path.display())]
    Serialize { path: PathBuf, reason: String },
    #[error("'{0}' cannot be used in an artifact file name: it must be non-empty and contain no '/', '\\' or NUL")]
    BadStem(String),
}

impl ArtifactError {
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        ArtifactError::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What to do about an I/O error on `path`, by kind.
fn io_hint(e: &io::Error, path: &Path) -> String {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(path);
    match e.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            format!(
                "the disk is full: free some space on the disk holding {}",
                dir.display()
            )
        }
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            format!(
                "check permissions of {} (Orca needs to write there)",
                dir.display()
            )
        }
        io::ErrorKind::NotADirectory | io::ErrorKind::AlreadyExists => format!(
            "{} must be a folder: move away the file of that name",
            first_non_dir(path).unwrap_or(dir).display()
        ),
        io::ErrorKind::NotFound => format!("check that {} exists", dir.display()),
        _ => format!("check that {} exists and is writable", dir.display()),
    }
}

/// The shallowest of `path` and its ancestors that exists and is not a folder (the usual
/// cause of NotADirectory / "File exists" when creating a folder), if any.
fn first_non_dir(path: &Path) -> Option<&Path> {
    path.ancestors()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .find(|p| !p.as_os_str().is_empty() && p.exists() && !p.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_by_kind() {
        let p = Path::new("/ws/results/x_result.json");
        let full = ArtifactError::io("write", p, io::ErrorKind::StorageFull.into()).to_string();
        assert!(
            full.starts_with("cannot write /ws/results/x_result.json: "),
            "{full}"
        );
        assert!(
            full.contains("disk is full") && full.contains("/ws/results"),
            "{full}"
        );
        let perm =
            ArtifactError::io("write", p, io::ErrorKind::PermissionDenied.into()).to_string();
        assert!(perm.contains("check permissions of /ws/results"), "{perm}");
        let other = ArtifactError::io("write", p, io::ErrorKind::Other.into()).to_string();
        assert!(other.contains("exists and is writable"), "{other}");
    }
}

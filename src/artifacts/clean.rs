//! `orca clean tasks` (archive loose task files) and `orca clean artifacts --days N`
//! (remove old results, summaries, run logs and archived task files by modification time).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::archive::{archive, ArchiveDest};
use super::error::ArtifactError;
use crate::workspace::Workspace;

/// Moves every task file directly in `tasks/` to `tasks/processed/` (via [`archive`], so
/// never overwriting). Returns `(from, to)` for each file moved, in name order.
pub fn clean_tasks(ws: &Workspace) -> Result<Vec<(PathBuf, PathBuf)>, ArtifactError> {
    clean_tasks_where(ws, |_| true)
}

/// Like [`clean_tasks`], for the files where `select(path)` is true (e.g. the caller skips
/// files whose task is still queued or running in the store).
pub fn clean_tasks_where(
    ws: &Workspace,
    select: impl Fn(&Path) -> bool,
) -> Result<Vec<(PathBuf, PathBuf)>, ArtifactError> {
    let mut moved = Vec::new();
    for file in list_files(&ws.tasks(), Workspace::is_task_file_name)? {
        if !select(&file) {
            continue;
        }
        if let Some(to) = archive(ws, &file, ArchiveDest::Processed)? {
            moved.push((file, to));
        }
    }
    Ok(moved)
}

/// Removes artifacts last modified more than `days` days ago: `results/*.json`,
/// `summaries/*.txt`, `logs/runs/*.ndjson`, `*.task.md` in `tasks/processed/` and
/// `tasks/rejected/`, and leftover `.partial` files. Other files are left alone. With
/// `dry_run`, removes nothing and returns what would go. Returns the paths in folder
/// then name order.
pub fn clean_artifacts(
    ws: &Workspace,
    days: u64,
    dry_run: bool,
) -> Result<Vec<PathBuf>, ArtifactError> {
    let age = Duration::from_secs(days.saturating_mul(86_400));
    let Some(cutoff) = SystemTime::now().checked_sub(age) else {
        return Ok(Vec::new()); // nothing can be that old
    };
    let sets: [(PathBuf, &str); 5] = [
        (ws.results(), ".json"),
        (ws.summaries(), ".txt"),
        (ws.runs(), ".ndjson"),
        (ws.processed(), ".task.md"),
        (ws.rejected(), ".task.md"),
    ];
    let mut old = Vec::new();
    for (dir, ext) in &sets {
        let wanted = |name: &str| {
            if name.starts_with('.') {
                name.ends_with(".partial")
            } else {
                name.ends_with(ext)
            }
        };
        for file in list_files(dir, wanted)? {
            let modified = std::fs::symlink_metadata(&file).and_then(|m| m.modified());
            match modified {
                Ok(m) if m < cutoff => old.push(file),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ArtifactError::io("read the time of", &file, e)),
            }
        }
    }
    if !dry_run {
        for file in &old {
            match std::fs::remove_file(file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ArtifactError::io("remove", file, e)),
            }
        }
    }
    Ok(old)
}

/// Regular files and symlinks directly in `dir` whose names pass `wanted`, sorted;
/// a missing folder is empty.
fn list_files(dir: &Path, wanted: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>, ArtifactError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ArtifactError::io("list", dir, e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ArtifactError::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !wanted(name) {
            continue;
        }
        match entry.file_type() {
            Ok(t) if t.is_file() || t.is_symlink() => files.push(entry.path()),
            _ => {}
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_tasks_moves_only_task_files() {
        let d = tempfile::tempdir().unwrap();
        let ws = Workspace::new(d.path());
        ws.create_all().unwrap();
        for n in [
            "b.task.md",
            "a.task.md",
            ".hidden.task.md",
            "notes.txt",
            "c.task.md.tmp",
        ] {
            std::fs::write(ws.tasks().join(n), n).unwrap();
        }
        std::fs::write(ws.processed().join("a.task.md"), "old").unwrap();
        let moved = clean_tasks(&ws).unwrap();
        assert_eq!(
            moved,
            vec![
                (
                    ws.tasks().join("a.task.md"),
                    ws.processed().join("a-2.task.md")
                ),
                (
                    ws.tasks().join("b.task.md"),
                    ws.processed().join("b.task.md")
                ),
            ]
        );
        for n in [".hidden.task.md", "notes.txt", "c.task.md.tmp"] {
            assert!(ws.tasks().join(n).exists(), "{n}");
        }
        assert!(clean_tasks(&ws).unwrap().is_empty());
    }

    #[test]
    fn clean_tasks_where_filters() {
        let d = tempfile::tempdir().unwrap();
        let ws = Workspace::new(d.path());
        ws.create_all().unwrap();
        std::fs::write(ws.tasks().join("keep.task.md"), "").unwrap();
        std::fs::write(ws.tasks().join("go.task.md"), "").unwrap();
        let moved = clean_tasks_where(&ws, |p| !p.ends_with("keep.task.md")).unwrap();
        assert_eq!(moved.len(), 1);
        assert!(ws.tasks().join("keep.task.md").exists());
    }
}

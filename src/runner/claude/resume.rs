//! Resuming a Claude Code session: the CLI keeps each session in
//! `<config>/projects/<cwd>/<session_id>.jsonl`, where `<config>` is `$CLAUDE_CONFIG_DIR` or
//! `$HOME/.claude` and `<cwd>` is the working folder with every character that is not an
//! ASCII letter or digit replaced by `-` (`/tmp/w.d_x y` gives `-tmp-w-d-x-y`; checked with
//! the CLI 2.1.197).

use std::path::{Path, PathBuf};

use crate::scheduler::resume::safe_session_id;

/// The CLI's project folder name for a working folder.
pub fn project_dir_name(cwd: &Path) -> String {
    cwd.to_string_lossy()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// Claude Code's configuration folder for the agent's environment: `CLAUDE_CONFIG_DIR`,
/// else `$HOME/.claude` (the agent's extra environment first, then Orca's own).
pub fn claude_config_dir(agent_env: &[(String, String)]) -> Option<PathBuf> {
    let get = |name: &str| {
        agent_env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(name).ok())
            .filter(|v| !v.is_empty())
    };
    if let Some(dir) = get("CLAUDE_CONFIG_DIR") {
        return Some(PathBuf::from(dir));
    }
    get("HOME").map(|h| PathBuf::from(h).join(".claude"))
}

/// The transcript of `session_id` for `cwd` when the CLI still has it. Long paths are
/// shortened by the CLI, so when the expected folder has no such file every project
/// folder is looked at.
pub fn transcript(config_dir: &Path, cwd: &Path, session_id: &str) -> Option<PathBuf> {
    if !safe_session_id(session_id) {
        return None;
    }
    let projects = config_dir.join("projects");
    let file = format!("{session_id}.jsonl");
    let expected = projects.join(project_dir_name(cwd)).join(&file);
    if expected.is_file() {
        return Some(expected);
    }
    std::fs::read_dir(&projects)
        .ok()?
        .flatten()
        .map(|e| e.path().join(&file))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_folder_names_follow_the_cli() {
        assert_eq!(project_dir_name(Path::new("/tmp/cc-work")), "-tmp-cc-work");
        assert_eq!(project_dir_name(Path::new("/tmp/w.d_x y")), "-tmp-w-d-x-y");
    }

    #[test]
    fn transcripts_are_found() {
        let d = tempfile::tempdir().expect("tempdir");
        let cwd = Path::new("/srv/app_1");
        assert_eq!(transcript(d.path(), cwd, "abc"), None);
        let dir = d.path().join("projects/-srv-app-1");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("abc.jsonl"), "{}\n").expect("write");
        assert_eq!(
            transcript(d.path(), cwd, "abc"),
            Some(dir.join("abc.jsonl"))
        );
        let other = d.path().join("projects/-shortened-123");
        std::fs::create_dir_all(&other).expect("mkdir");
        std::fs::write(other.join("def.jsonl"), "{}\n").expect("write");
        assert_eq!(
            transcript(d.path(), cwd, "def"),
            Some(other.join("def.jsonl"))
        );
        assert_eq!(transcript(d.path(), cwd, "../abc"), None);
    }

    #[test]
    fn config_dir_prefers_the_agent_environment() {
        let env = vec![("HOME".to_string(), "/h".to_string())];
        assert_eq!(claude_config_dir(&env), Some(PathBuf::from("/h/.claude")));
        let env = vec![
            ("HOME".to_string(), "/h".to_string()),
            ("CLAUDE_CONFIG_DIR".to_string(), "/c".to_string()),
        ];
        assert_eq!(claude_config_dir(&env), Some(PathBuf::from("/c")));
    }
}

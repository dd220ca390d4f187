//! What a message asks for (pure): a command, or a task in plain words with the folder it
//! names ("in /project"), and who may ask at all.

use std::path::{Path, PathBuf};

/// The commands registered with `setMyCommands`, with their descriptions.
pub const COMMANDS: &[(&str, &str)] = &[
    ("start", "What this bot does"),
    ("help", "Commands and examples"),
    ("task", "Start a task: /task <description>"),
    ("status", "Queue counts and running tasks"),
    ("list", "The latest tasks"),
    (
        "progress",
        "A task's last events and live turn: /progress <id>",
    ),
    ("cancel", "Cancel a task: /cancel <id>"),
    ("retry", "Run a finished task again: /retry <id>"),
];

/// What a message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Start,
    Help,
    /// `/task <text>` (empty: usage) or a plain message.
    Task(String),
    Status,
    List,
    Progress(String),
    Cancel(String),
    Retry(String),
    /// `/something` this bot does not know.
    Unknown(String),
}

/// Parses a message's text. `/cmd@botname` is the same command (groups).
pub fn parse(text: &str) -> Command {
    let t = text.trim();
    let Some(rest) = t.strip_prefix('/') else {
        return Command::Task(t.to_owned());
    };
    let (head, arg) = match rest.split_once(char::is_whitespace) {
        Some((h, a)) => (h, a.trim()),
        None => (rest, ""),
    };
    let name = head.split('@').next().unwrap_or("").to_ascii_lowercase();
    let arg = arg.to_owned();
    match name.as_str() {
        "start" => Command::Start,
        "help" => Command::Help,
        "task" => Command::Task(arg),
        "status" => Command::Status,
        "list" => Command::List,
        "progress" => Command::Progress(first_word(&arg)),
        "cancel" => Command::Cancel(first_word(&arg)),
        "retry" => Command::Retry(first_word(&arg)),
        _ => Command::Unknown(name),
    }
}

fn first_word(s: &str) -> String {
    s.split_whitespace().next().unwrap_or("").to_owned()
}

/// Who may use the bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Allowed,
    /// TELEGRAM_ALLOWED_USERS is empty: the bot serves nobody.
    NobodyAllowed,
    Refused,
}

pub fn access(allowed: &[i64], user: i64) -> Access {
    if allowed.is_empty() {
        Access::NobodyAllowed
    } else if allowed.contains(&user) {
        Access::Allowed
    } else {
        Access::Refused
    }
}

/// The folder a plain-words task names: the word after the last " in " that looks like a
/// path (`/x`, `./x`, `~/x`), trailing punctuation dropped.
pub fn named_folder(text: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut found = None;
    for w in words.windows(2) {
        if w[0].eq_ignore_ascii_case("in") {
            let p = w[1].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', '"', '\'']);
            if p.starts_with('/') || p.starts_with("./") || p.starts_with("~/") {
                found = Some(p.to_owned());
            }
        }
    }
    found
}

/// Resolves a named folder: `/project` is first looked for under CLAUDE_BASE_CWD, then as an
/// absolute path, which must lie inside CLAUDE_ALLOWED_ROOT. The error is the reason, for
/// the user.
pub fn resolve_folder(named: &str, base: &Path, allowed: &Path) -> Result<PathBuf, String> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let under_base = base.join(named.trim_start_matches("./").trim_start_matches('/'));
    let absolute = match named.strip_prefix("~/") {
        Some(rest) => home.map(|h| h.join(rest)),
        None => named.starts_with('/').then(|| PathBuf::from(named)),
    };
    let inside = |p: &Path| {
        let root = allowed
            .canonicalize()
            .unwrap_or_else(|_| allowed.to_path_buf());
        p.canonicalize().is_ok_and(|c| c.starts_with(&root))
    };
    if !named.starts_with("~/") && under_base.is_dir() {
        if inside(&under_base) {
            return Ok(under_base);
        }
        return Err(format!(
            "{} is outside CLAUDE_ALLOWED_ROOT ({}); name a folder inside it",
            under_base.display(),
            allowed.display()
        ));
    }
    match absolute {
        Some(abs) if abs.is_dir() => {
            if inside(&abs) {
                Ok(abs)
            } else {
                Err(format!(
                    "{} is outside CLAUDE_ALLOWED_ROOT ({}); name a folder inside it",
                    abs.display(),
                    allowed.display()
                ))
            }
        }
        Some(abs) => Err(format!(
            "no folder {} (nor {} under CLAUDE_BASE_CWD)",
            abs.display(),
            under_base.display()
        )),
        None => Err(format!(
            "no folder {} under CLAUDE_BASE_CWD",
            under_base.display()
        )),
    }
}

/// A title for a task in plain words: its first line, at most 60 characters.
pub fn title_of(text: &str) -> String {
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let mut t: String = line.chars().take(60).collect();
    if line.chars().count() > 60 {
        t.push('…');
    }
    t
}

/// The task type a plain-words task would be routed to (shown in the answer; the pipeline
/// routes the task itself). The one place to point at an LLM router later.
pub fn route_words(text: &str) -> crate::task::TaskType {
    let t = crate::task::Task {
        title: Some(title_of(text)),
        ..crate::task::Task::new("telegram", text)
    };
    crate::mediate::rules::route(&t).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_table() {
        let cases = [
            ("/start", Command::Start),
            ("/help@orca_test_bot", Command::Help),
            ("/task fix the build", Command::Task("fix the build".into())),
            ("/task", Command::Task(String::new())),
            ("/STATUS", Command::Status),
            ("/list", Command::List),
            ("/progress t1 extra", Command::Progress("t1".into())),
            ("/cancel@bot  t2", Command::Cancel("t2".into())),
            ("/retry", Command::Retry(String::new())),
            ("/nope", Command::Unknown("nope".into())),
            (
                "  summarise the logs ",
                Command::Task("summarise the logs".into()),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), want, "{text}");
        }
    }

    #[test]
    fn access_table() {
        assert_eq!(access(&[], 1), Access::NobodyAllowed);
        assert_eq!(access(&[1, 2], 2), Access::Allowed);
        assert_eq!(access(&[1, 2], 3), Access::Refused);
    }

    #[test]
    fn folders_named_in_words() {
        let cases = [
            ("fix the bug in /project", Some("/project")),
            ("fix it in /project.", Some("/project")),
            ("look in ./web, then", Some("./web")),
            ("in the end", None),
            ("fix in /a then in /b", Some("/b")),
            ("no folder here", None),
        ];
        for (text, want) in cases {
            assert_eq!(named_folder(text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn folders_resolve_under_the_base_or_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("base");
        std::fs::create_dir_all(base.join("project")).unwrap();
        let outside = tempfile::tempdir().unwrap();
        assert_eq!(
            resolve_folder("/project", &base, &base).unwrap(),
            base.join("project")
        );
        let inside_abs = base.join("project").display().to_string();
        assert_eq!(
            resolve_folder(&inside_abs, &base, &base).unwrap(),
            base.join("project")
        );
        let err = resolve_folder(&outside.path().display().to_string(), &base, &base).unwrap_err();
        assert!(err.contains("outside CLAUDE_ALLOWED_ROOT"), "{err}");
        let err = resolve_folder("/no-such-dir-x", &base, &base).unwrap_err();
        assert!(err.contains("no folder"), "{err}");
    }

    #[test]
    fn words_are_routed_by_the_rules() {
        assert_eq!(route_words("fix the crash"), crate::task::TaskType::Fix);
        assert_eq!(
            route_words("look at the code"),
            crate::task::TaskType::Analyze
        );
    }
}

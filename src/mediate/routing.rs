//! Routing before a task takes an agent slot, only for what the task does not say: type,
//! priority, working folder, title and a cleaned prompt, from the LLM or from the rules
//! (keywords, "in <path>"). The outcome rides in the task's `x-orca-routing` key to its
//! result's `routing`.

use std::path::Path;

use serde::Deserialize;
use serde_json::{json, Value};

use super::client::LlmError;
use crate::artifacts::result::{Method, Routing};
use crate::task::{Priority, Task, TaskType};

/// The task key that carries the routing to the result.
pub const ROUTING_KEY: &str = "x-orca-routing";
/// Set by `orca submit -p` without `--priority`: the priority is Orca's to decide.
pub const PRIORITY_UNSET_KEY: &str = "x-orca-priority-unset";

/// What a task leaves to routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Need {
    pub task_type: bool,
    pub priority: bool,
    pub folder: bool,
    pub title: bool,
}

impl Need {
    /// Whether routing is worth a call: type or priority missing.
    pub fn any(&self) -> bool {
        self.task_type || self.priority
    }
}

/// What `task` leaves to routing; `priority_given`: its front matter names a priority.
pub fn need(task: &Task, priority_given: bool) -> Need {
    Need {
        task_type: task.task_type.is_none(),
        priority: !priority_given || task.extra.contains_key(PRIORITY_UNSET_KEY),
        folder: task.working_dir.is_none(),
        title: task.title.is_none(),
    }
}

/// Whether the front matter of a task file's text has a `priority:` key.
pub fn front_has_priority(text: &str) -> bool {
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("---") {
        return false;
    }
    lines
        .take_while(|l| l.trim() != "---")
        .any(|l| l.trim_start().starts_with("priority:"))
}

/// What routing made of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub task_type: TaskType,
    pub priority: Priority,
    pub folder: Option<String>,
    pub title: Option<String>,
    /// The request cleaned of routing words (LLM only).
    pub prompt: Option<String>,
}

/// The JSON Schema of the LLM's routing answer.
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "type": {"type": "string", "enum": ["fix", "code_review", "summarize", "analyze"]},
            "priority": {"type": "string", "enum": ["high", "medium", "low"]},
            "folder": {"type": ["string", "null"]},
            "title": {"type": "string"},
            "prompt": {"type": "string"}
        },
        "required": ["type", "priority", "folder", "title", "prompt"]
    })
}

/// The system and user messages of a routing call.
pub fn prompt(task: &Task) -> (String, String) {
    let system = "You route coding tasks for Orca. From the request, decide: type (fix: repair a bug or error; code_review: review code or a change; summarize: summarise text or code; analyze: anything else), priority (high when urgent, low when it can wait, else medium), folder (the working folder the request names, e.g. \"in /backend\" gives \"/backend\", \"in the auth-system repo\" gives \"auth-system\"; null when none), title (at most 8 words) and prompt (the request restated as an instruction, without the folder and urgency words).".to_owned();
    let mut user = String::new();
    if let Some(t) = &task.title {
        user.push_str(&format!("Title: {t}\n"));
    }
    user.push_str(&format!("Request: {}", cut(&task.prompt, 4000)));
    (system, user)
}

#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "type")]
    task_type: String,
    priority: String,
    #[serde(default)]
    folder: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
}

/// Reads the LLM's answer; anything off the schema is a wrong shape.
pub fn parse_answer(v: Value) -> Result<Routed, LlmError> {
    let a: Answer = serde_json::from_value(v).map_err(|e| LlmError::WrongShape(e.to_string()))?;
    let task_type = TaskType::ALL
        .into_iter()
        .find(|t| t.as_str() == a.task_type.trim())
        .ok_or_else(|| {
            LlmError::WrongShape(format!("type '{}' is not a task type", a.task_type))
        })?;
    let priority = Priority::ALL
        .into_iter()
        .find(|p| p.as_str() == a.priority.trim())
        .ok_or_else(|| {
            LlmError::WrongShape(format!("priority '{}' is not a priority", a.priority))
        })?;
    let clean = |s: Option<String>| s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    Ok(Routed {
        task_type,
        priority,
        folder: clean(a.folder).filter(|f| f != "null"),
        title: clean(a.title).map(|t| cut(&t, 120)),
        prompt: clean(a.prompt),
    })
}

const HIGH_WORDS: &[&str] = &[
    "urgent",
    "urgently",
    "asap",
    "critical",
    "immediately",
    "emergency",
];
const LOW_WORDS: &[&str] = &["whenever", "eventually", "someday"];
const LOW_PHRASES: &[&str] = &[
    "low priority",
    "no rush",
    "when you have time",
    "not urgent",
];

/// The rules' routing: the type by keywords ([`super::rules::route`]), the priority by
/// urgency words, the folder from "in <path>" (a path with a `/`). Returns the reason.
pub fn rules(task: &Task) -> (Routed, String) {
    let (task_type, r) = super::rules::route(task);
    let text = format!("{} {}", task.title.as_deref().unwrap_or(""), task.prompt);
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let mut reasons = vec![r.reason];
    let priority = if let Some(p) = LOW_PHRASES.iter().find(|p| lower.contains(*p)) {
        reasons.push(format!("'{p}' makes it low priority"));
        Priority::Low
    } else if let Some(w) = words.iter().find(|w| HIGH_WORDS.contains(w)) {
        reasons.push(format!("'{w}' makes it high priority"));
        Priority::High
    } else if let Some(w) = words.iter().find(|w| LOW_WORDS.contains(w)) {
        reasons.push(format!("'{w}' makes it low priority"));
        Priority::Low
    } else {
        Priority::Medium
    };
    let folder = in_path(&text);
    if let Some(f) = &folder {
        reasons.push(format!("folder from 'in {f}'"));
    }
    (
        Routed {
            task_type,
            priority,
            folder,
            title: rules_title(&task.prompt),
            prompt: None,
        },
        reasons.join("; "),
    )
}

/// Most words in a title the rules make.
const TITLE_WORDS: usize = 8;

/// The rules' title: the request's first clause without its "in <path>", at most
/// [`TITLE_WORDS`] words (an ellipsis when cut), capitalised; None when nothing is left.
pub fn rules_title(prompt: &str) -> Option<String> {
    let line = prompt.lines().map(str::trim).find(|l| !l.is_empty())?;
    // The clause ends at `,;!?` or a full stop before a space (not the dot of `a.rs`).
    let end = line
        .char_indices()
        .find(|&(i, c)| {
            matches!(c, ',' | ';' | '!' | '?')
                || (c == '.' && line[i + 1..].starts_with(char::is_whitespace))
        })
        .map_or(line.len(), |(i, _)| i);
    let clause = line[..end].trim_end_matches('.');
    let mut words: Vec<&str> = Vec::new();
    let mut it = clause.split_whitespace().peekable();
    while let Some(w) = it.next() {
        let next_is_path = it
            .peek()
            .is_some_and(|p| p.contains('/') || p.contains('\\'));
        if w.eq_ignore_ascii_case("in") && next_is_path {
            it.next();
            continue;
        }
        words.push(w);
    }
    let cut = words.len() > TITLE_WORDS;
    let mut title = words
        .into_iter()
        .take(TITLE_WORDS)
        .collect::<Vec<_>>()
        .join(" ");
    if title.is_empty() {
        return None;
    }
    if cut {
        title.push('…');
    }
    let mut chars = title.chars();
    let first = chars.next()?;
    Some(first.to_uppercase().chain(chars).collect())
}

/// The path of the first "in <path>" whose path has a `/` or `\` (`in /backend`,
/// `in C:\work\api`, `in services/auth`), without trailing punctuation.
pub fn in_path(text: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words.windows(2).find_map(|w| {
        if !w[0].eq_ignore_ascii_case("in") {
            return None;
        }
        let p = w[1].trim_end_matches(['.', ',', ';', ':', '!', '?', ')']);
        let p = p.trim_matches(['"', '\'', '`']);
        (p.contains('/') || p.contains('\\')).then(|| p.to_owned())
    })
}

/// Puts routing's answer into the fields the task left open. A folder is kept only when it
/// is a folder inside the allowed root (`check_folder` says; `Err` is the refusal), else it
/// is dropped with a note. Returns the notes.
pub fn apply(
    task: &mut Task,
    need: Need,
    routed: &Routed,
    check_folder: impl Fn(&Task) -> Result<(), String>,
) -> Vec<String> {
    let mut notes = Vec::new();
    if need.task_type {
        task.task_type = Some(routed.task_type);
    }
    if need.priority {
        task.priority = routed.priority;
    }
    task.extra.remove(PRIORITY_UNSET_KEY);
    let request = format!("{} {}", task.title.as_deref().unwrap_or(""), task.prompt);
    if let (true, Some(folder)) = (need.folder, &routed.folder) {
        let candidates = if folder_named(folder, &request) {
            folder_candidates(folder)
        } else {
            Vec::new()
        };
        let mut refusal = candidates
            .is_empty()
            .then(|| "the request does not name it".to_owned());
        for c in candidates {
            task.working_dir = Some(c);
            match check_folder(task) {
                Ok(()) => {
                    refusal = None;
                    break;
                }
                Err(e) => {
                    task.working_dir = None;
                    refusal.get_or_insert(e);
                }
            }
        }
        if let Some(e) = refusal {
            notes.push(format!(
                "folder '{folder}' refused ({e}); the default folder is used"
            ));
        }
    }
    if need.title {
        if let Some(t) = &routed.title {
            task.title = Some(t.clone());
        }
        if let Some(p) = &routed.prompt {
            if keeps_request(p, &task.prompt, routed.folder.as_deref()) {
                task.prompt = p.clone();
            } else {
                notes.push(
                    "the cleaned prompt drops most of the request; the request is kept as written"
                        .into(),
                );
            }
        }
    }
    notes
}

/// Whether `request` names `folder`: its last component (`backend` of `/srv/backend`,
/// `auth-system`), case aside. A folder the request does not name is a model's guess (a
/// small model copies the prompt's example) and is refused.
pub fn folder_named(folder: &str, request: &str) -> bool {
    let last = folder
        .split(['/', '\\'])
        .rfind(|c| !c.is_empty() && *c != ".")
        .unwrap_or("");
    !last.is_empty() && request.to_lowercase().contains(&last.to_lowercase())
}

/// Whether a cleaned prompt keeps the request: at least half of the request's words of 4
/// letters or more, leaving out the urgency words and the folder's, are in it.
pub fn keeps_request(cleaned: &str, request: &str, folder: Option<&str>) -> bool {
    let words = |s: &str| -> Vec<String> {
        s.to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.chars().count() >= 4)
            .map(str::to_owned)
            .collect()
    };
    let folder_words = folder.map(words).unwrap_or_default();
    let routing_word = |w: &str| {
        HIGH_WORDS.contains(&w)
            || LOW_WORDS.contains(&w)
            || LOW_PHRASES.iter().any(|p| p.split(' ').any(|x| x == w))
            || w == "priority"
            || folder_words.iter().any(|f| f == w)
    };
    let wanted: Vec<String> = words(request)
        .into_iter()
        .filter(|w| !routing_word(w))
        .collect();
    if wanted.is_empty() {
        return !cleaned.trim().is_empty();
    }
    let have = words(cleaned);
    let kept = wanted.iter().filter(|w| have.contains(w)).count();
    kept * 2 >= wanted.len()
}

/// An absolute folder as written, then the same inside the base folder (`/backend` is
/// read as the project's `backend` too).
fn folder_candidates(folder: &str) -> Vec<String> {
    let mut out = vec![folder.to_owned()];
    let rel = folder.trim_start_matches(['/', '\\']);
    if rel != folder && !rel.is_empty() {
        out.push(rel.to_owned());
    }
    out
}

/// The result's `routing` recorded in the task.
pub fn record(task: &mut Task, routing: &Routing) {
    if let Ok(v) = serde_json::to_value(routing) {
        task.extra.insert(ROUTING_KEY.into(), v);
    }
}

/// The routing recorded in the task, if any.
pub fn recorded(task: &Task) -> Option<Routing> {
    serde_json::from_value(task.extra.get(ROUTING_KEY)?.clone()).ok()
}

/// A routing by the rules with `reason`.
pub fn by_rules(reason: String) -> Routing {
    Routing {
        method: Method::Rules,
        model: None,
        reason,
        latency_ms: None,
    }
}

/// At most `max` chars of `s`.
fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Whether `dir` (resolved) is a directory: used by the folder check with the task paths.
pub fn is_dir(dir: &Path) -> bool {
    dir.is_dir()
}

/// Asks `llm` to route `task`: the prompt, the schema and the answer's check in one call.
pub async fn ask(llm: &super::llm::Llm, task: &Task) -> Result<Routed, LlmError> {
    let (system, user) = prompt(task);
    llm.ask(&system, &user, "orca_routing", &schema(), parse_answer)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_paths() {
        let table = [
            (
                "Review the code in /auth-system, it is urgent",
                Some("/auth-system"),
            ),
            ("fix it in services/api.", Some("services/api")),
            (
                r"look in C:\path\to\project please",
                Some(r"C:\path\to\project"),
            ),
            ("fix the bug in the parser", None),
            ("in", None),
        ];
        for (text, want) in table {
            assert_eq!(in_path(text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn rules_table() {
        let t = |p: &str| Task::new("t", p);
        let table = [
            (
                "Fix the crash in /api, it is urgent",
                TaskType::Fix,
                Priority::High,
            ),
            (
                "Review this diff, no rush",
                TaskType::CodeReview,
                Priority::Low,
            ),
            ("Summarise the notes", TaskType::Summarize, Priority::Medium),
            ("Look at the design", TaskType::Analyze, Priority::Medium),
        ];
        for (p, ty, pr) in table {
            let (r, reason) = rules(&t(p));
            assert_eq!((r.task_type, r.priority), (ty, pr), "{p}: {reason}");
        }
        assert_eq!(
            rules(&t("Fix in /api now")).0.folder.as_deref(),
            Some("/api")
        );
    }

    #[test]
    fn rules_titles() {
        let table = [
            (
                "Review the code in /backend, it is urgent",
                Some("Review the code"),
            ),
            (
                "fix the login bug in services/auth.",
                Some("Fix the login bug"),
            ),
            (
                "summarise every design note we have written about the new storage layer",
                Some("Summarise every design note we have written about…"),
            ),
            (
                "\n\n  look at the logs\nthen more",
                Some("Look at the logs"),
            ),
            ("Fix main.rs in src/. Then test", Some("Fix main.rs")),
            ("in /backend", None),
            ("...", None),
            ("", None),
        ];
        for (prompt, want) in table {
            assert_eq!(rules_title(prompt).as_deref(), want, "{prompt:?}");
        }
        let (r, _) = rules(&Task::new("t", "Fix the crash in /api, it is urgent"));
        assert_eq!(r.title.as_deref(), Some("Fix the crash"));
    }

    #[test]
    fn folders_must_be_named_and_prompts_kept() {
        let req = "Review the code in the auth-system repo when you have time";
        let table = [
            ("auth-system", true),
            ("/srv/Auth-System/", true),
            ("backend", false),
            ("/", false),
            ("", false),
        ];
        for (folder, want) in table {
            assert_eq!(folder_named(folder, req), want, "{folder}");
        }
        let req = "Fix the crash in the login page in /web, it is urgent";
        let table = [
            ("Fix the crash in the login page", true),
            ("Fix the login page crash.", true),
            ("The error occurred.", false),
            ("Fix it", false),
        ];
        for (cleaned, want) in table {
            assert_eq!(keeps_request(cleaned, req, Some("/web")), want, "{cleaned}");
        }
        assert!(keeps_request(
            "Review the code",
            "Review the code in /backend when you have time",
            Some("/backend")
        ));
        assert!(keeps_request("Do it", "it is urgent", None));
    }

    #[test]
    fn answers_are_checked() {
        let ok =
            json!({"type": "fix", "priority": "high", "folder": "/b", "title": "T", "prompt": "P"});
        let r = parse_answer(ok).unwrap();
        assert_eq!((r.task_type, r.priority), (TaskType::Fix, Priority::High));
        for bad in [
            json!({"type": "bugfix", "priority": "high"}),
            json!({"type": "fix", "priority": "now"}),
            json!({"priority": "high"}),
            json!({"type": 3, "priority": "high"}),
        ] {
            assert_eq!(parse_answer(bad).unwrap_err().kind(), "wrong_shape");
        }
    }

    #[test]
    fn needs_and_apply() {
        let mut task = Task::new("t", "x");
        assert!(front_has_priority("---\nid: a\npriority: high\n---\nbody"));
        assert!(!front_has_priority("---\nid: a\n---\npriority: high"));
        let n = need(&task, false);
        assert!(n.any() && n.folder && n.title);
        task.task_type = Some(TaskType::Fix);
        assert!(!need(&task, true).any());
        let routed = Routed {
            task_type: TaskType::Analyze,
            priority: Priority::Low,
            folder: Some("/outside".into()),
            title: Some("T".into()),
            prompt: Some("P".into()),
        };
        let n = need(&task, false);
        let notes = apply(&mut task, n, &routed, |_| {
            Err("outside the allowed root".into())
        });
        assert_eq!(task.task_type, Some(TaskType::Fix));
        assert_eq!(task.priority, Priority::Low);
        assert_eq!(task.working_dir, None);
        assert_eq!(
            (task.title.as_deref(), task.prompt.as_str()),
            (Some("T"), "P")
        );
        assert!(notes[0].contains("refused"), "{notes:?}");
    }
}

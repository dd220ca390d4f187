//! The `.task.md` file format of DESIGN §2: the `Task` type, parsing (encodings, front
//! matter, sections), rendering back to text, the error type, and the path policy.
//!
//! OWNER NOTE (skeleton): the types and function signatures below are the contract other
//! modules build on; the bodies are filled in by the task-format work.

pub mod paths;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Largest task file accepted, checked before the file is read whole.
pub const MAX_TASK_FILE_BYTES: u64 = 1024 * 1024;

/// What kind of work a task asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskType {
    Fix,
    CodeReview,
    Analyze,
    Summarize,
}

impl TaskType {
    pub const ALL: [TaskType; 4] = [
        TaskType::Fix,
        TaskType::CodeReview,
        TaskType::Analyze,
        TaskType::Summarize,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            TaskType::Fix => "fix",
            TaskType::CodeReview => "code_review",
            TaskType::Analyze => "analyze",
            TaskType::Summarize => "summarize",
        }
    }
}

impl std::str::FromStr for TaskType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TaskType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("'{s}' is not one of fix, code_review, analyze, summarize"))
    }
}

impl std::fmt::Display for TaskType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Scheduling priority: high runs before medium before low.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    High,
    #[default]
    Medium,
    Low,
}

impl Priority {
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Medium, Priority::Low];
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Medium => "medium",
            Priority::Low => "low",
        }
    }
    /// Sort key: smaller runs first.
    pub fn rank(self) -> i64 {
        match self {
            Priority::High => 0,
            Priority::Medium => 1,
            Priority::Low => 2,
        }
    }
}

impl std::str::FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Priority::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("priority '{s}' is not one of high, medium, low"))
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One success criterion: `- [ ] text`, `- [x] text` or `- text`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Criterion {
    pub text: String,
    /// `- [x]` in the file.
    pub checked: bool,
}

/// A parsed task file. Front-matter keys map to fields; sections to the body fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// From front matter, or the file stem. `[A-Za-z0-9_.-]`, 1..=64 chars.
    pub id: String,
    /// None: routed by Orca.
    pub task_type: Option<TaskType>,
    pub priority: Priority,
    /// RFC 3339, as written (validated).
    pub created: Option<String>,
    pub working_dir: Option<String>,
    pub timeout_sec: Option<u64>,
    pub max_turns: Option<u32>,
    pub retries: Option<u32>,
    pub model: Option<String>,
    pub resume_on_retry: bool,
    pub requires: Vec<String>,
    /// `x-` keys, kept as JSON values (ignored by Orca).
    pub extra: BTreeMap<String, serde_json::Value>,
    /// The first `#` heading.
    pub title: Option<String>,
    pub prompt: String,
    pub target_files: Vec<String>,
    pub success_criteria: Vec<Criterion>,
    pub context: Option<String>,
}

/// A parse or validation failure, tied to a file and (where there is one) a line.
/// Display: `path:line: message` then `hint: fix` on the next line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {kind}\nhint: {}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default(), kind.hint())]
pub struct TaskError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub kind: TaskErrorKind,
}

impl TaskError {
    /// Short machine name of the error (result `error.kind`).
    pub fn kind_name(&self) -> &'static str {
        self.kind.name()
    }
    /// The message without file and line.
    pub fn message(&self) -> String {
        self.kind.to_string()
    }
    /// How to fix it.
    pub fn hint(&self) -> String {
        self.kind.hint()
    }
}

/// What is wrong with a task file. The task-format work extends this enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskErrorKind {
    #[error("cannot read the file: {0}")]
    Io(String),
    #[error("the file is {size} bytes; task files are limited to {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("{0}")]
    Other(String),
}

impl TaskErrorKind {
    pub fn name(&self) -> &'static str {
        match self {
            TaskErrorKind::Io(_) => "io",
            TaskErrorKind::TooLarge { .. } => "too_large",
            TaskErrorKind::EmptyPrompt => "empty_prompt",
            TaskErrorKind::Other(_) => "invalid",
        }
    }
    pub fn hint(&self) -> String {
        match self {
            TaskErrorKind::Io(_) => "check that the file exists and is readable".into(),
            TaskErrorKind::TooLarge { .. } => {
                "split the task or move large context into files it names".into()
            }
            TaskErrorKind::EmptyPrompt => "add a `**Prompt:**` section or some body text".into(),
            TaskErrorKind::Other(_) => "see the task format in the README".into(),
        }
    }
}

/// Reads and parses a task file; refuses files over [`MAX_TASK_FILE_BYTES`] before reading.
pub fn parse_file(path: &Path) -> Result<Task, TaskError> {
    let bytes = std::fs::read(path).map_err(|e| TaskError {
        file: path.to_path_buf(),
        line: None,
        kind: TaskErrorKind::Io(e.to_string()),
    })?;
    parse_bytes(path, &bytes)
}

/// Parses task-file bytes; `file` names the file in errors and gives the default id (stem).
pub fn parse_bytes(file: &Path, bytes: &[u8]) -> Result<Task, TaskError> {
    let _ = bytes;
    Err(TaskError {
        file: file.to_path_buf(),
        line: None,
        kind: TaskErrorKind::Other("parser not written yet".into()),
    })
}

/// Renders a task back to `.task.md` text; `parse_bytes(render(t)) == t`.
pub fn render(task: &Task) -> String {
    format!(
        "---\nid: {}\n---\n\n**Prompt:**\n{}\n",
        task.id, task.prompt
    )
}

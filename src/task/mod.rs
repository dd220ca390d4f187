//! The `.task.md` file format of DESIGN §2: the `Task` type, parsing (encodings, front
//! matter, sections), rendering back to text, the error type, and the path policy.
//!
//! Parsing runs in four steps, each in its own file:
//! - [`decode`]: bytes to text (UTF-8 with or without BOM, UTF-16 with a BOM, CRLF to LF;
//!   NUL bytes and invalid sequences are refused with their byte offset);
//! - [`front`]: the optional `---` front matter, read as YAML into entries with the file
//!   line of every key;
//! - [`fields`]: the table of front-matter fields (one row per key: how it is read into the
//!   [`Task`] and written back), unknown keys refused with a did-you-mean;
//! - [`body`]: the markdown body, split into title, target files, prompt, success criteria
//!   and context by bold labels (`**Prompt:**`) or headings (`## Prompt`);
//! - [`render()`](render()): the canonical text of a task (`parse_bytes(render(t)) == t`).
//!
//! # Why serde-saphyr for YAML
//!
//! Task files come from people, scripts and agents, and a daemon parses them unattended, so
//! the YAML reader must be safe on hostile input. `serde_yaml` is deprecated and archived;
//! `serde_yml`, its fork, has had unsound `unsafe` code. `serde-saphyr` is pure Rust with
//! `#![forbid(unsafe_code)]`, fuzzed, and enforces *budgets* while it parses: we set tight
//! limits on nesting depth, flow nesting, node/event counts, anchors, aliases and alias
//! replay (see [`front::yaml_options`]), so a billion-laughs bomb or 10,000 nested `[` is
//! refused in bounded time and memory with a `yaml_limit` error instead of exhausting the
//! machine. It also reports line numbers for every key, which our errors need.
//!
//! # Body rules worth knowing
//!
//! - Labels are `Target Files`, `Prompt`, `Success Criteria` and `Context` (any case, also
//!   `Targets`, `Criteria`, `Acceptance Criteria`); a section runs until the next label.
//!   Headings that are not labels stay in the section they appear in.
//! - Nothing inside a fenced code block (```` ``` ```` or `~~~`) is a label or a title.
//! - The title is the first `# ` heading before the first section.
//! - Without a Prompt section, the text before the first section (minus the title) is the
//!   prompt. List sections keep only list items (`- x`, `* x`, `+ x`, `1. x`), plus text
//!   written on the label's own line.
//! - Without `id:`, the id is the file name minus `.task.md`, with characters outside
//!   `[A-Za-z0-9_.-]` replaced by `_` (cut to 64 characters).

mod body;
mod decode;
mod fields;
mod front;
pub mod paths;
mod render;

pub use paths::{resolve_task_paths, ResolvedPaths};
pub use render::render;

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
    /// An unmet check fails the task (None: ORCA_STRICT_CRITERIA decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// The time limit of each executed check (None: 120 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_timeout_sec: Option<u64>,
    /// Fix rounds after unmet checks (None: 0, no fix loop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix_rounds: Option<u32>,
    /// Run in a fresh git worktree on branch `orca/<id>` (DESIGN §5).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub worktree: bool,
    /// `x-` keys, kept as JSON values (ignored by Orca).
    pub extra: BTreeMap<String, serde_json::Value>,
    /// The first `#` heading.
    pub title: Option<String>,
    pub prompt: String,
    pub target_files: Vec<String>,
    pub success_criteria: Vec<Criterion>,
    pub context: Option<String>,
}

impl Task {
    /// A task with this id and prompt and every other field at its default.
    pub fn new(id: impl Into<String>, prompt: impl Into<String>) -> Task {
        Task {
            id: id.into(),
            task_type: None,
            priority: Priority::Medium,
            created: None,
            working_dir: None,
            timeout_sec: None,
            max_turns: None,
            retries: None,
            model: None,
            resume_on_retry: false,
            requires: Vec::new(),
            strict: None,
            check_timeout_sec: None,
            fix_rounds: None,
            worktree: false,
            extra: BTreeMap::new(),
            title: None,
            prompt: prompt.into(),
            target_files: Vec::new(),
            success_criteria: Vec::new(),
            context: None,
        }
    }
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

/// What is wrong with a task file: one variant per rule, each with a [`name`](Self::name)
/// (the result's `error.kind`) and a [`hint`](Self::hint) saying how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskErrorKind {
    #[error("cannot read the file: {0}")]
    Io(String),
    #[error("the file is {size} bytes; task files are limited to {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("the file is empty")]
    EmptyFile,
    #[error("the file contains binary data (a NUL byte at byte {offset})")]
    Binary { offset: usize },
    #[error("invalid UTF-8 at byte {offset}")]
    InvalidUtf8 { offset: usize },
    #[error("invalid UTF-16 at byte {offset}")]
    InvalidUtf16 { offset: usize },
    #[error("the front matter opened with '---' is never closed")]
    UnclosedFrontMatter,
    #[error("the front matter is not valid YAML: {0}")]
    Yaml(String),
    #[error("the front matter exceeds the YAML safety limits: {0}")]
    YamlLimit(String),
    #[error("the front matter must be a mapping of `key: value` lines, not {found}")]
    FrontMatterNotMapping { found: &'static str },
    #[error("unknown field '{field}'{}", suggestion.as_ref().map(|s| format!(" (did you mean '{s}'?)")).unwrap_or_default())]
    UnknownField {
        field: String,
        suggestion: Option<String>,
    },
    #[error("a key must be a plain name, not {found}")]
    BadKey { found: &'static str },
    #[error("the key '{field}' appears twice")]
    DuplicateKey { field: String },
    #[error("{field} must be a single value, not {found}")]
    NotScalar { field: String, found: &'static str },
    #[error("{field} must not be empty")]
    EmptyValue { field: String },
    #[error("id '{id}' is not valid: use 1 to 64 of A-Z a-z 0-9 _ . - (ids become file names)")]
    BadId { id: String },
    #[error("type '{value}' is not one of fix, code_review, analyze, summarize")]
    BadType { value: String },
    #[error("priority '{value}' is not one of high, medium, low")]
    BadPriority { value: String },
    #[error("created '{value}' is not an RFC 3339 timestamp")]
    BadCreated { value: String },
    #[error("{field} '{value}' is not {expected}")]
    BadNumber {
        field: String,
        value: String,
        expected: &'static str,
    },
    #[error("{field} '{value}' is not true or false")]
    BadBool { field: String, value: String },
    #[error("{field} must be a list of labels, not {found}")]
    BadList { field: String, found: &'static str },
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("{field}: {error}")]
    Path {
        field: &'static str,
        error: Box<paths::PathError>,
    },
    #[error("the task file is a symbolic link to {target}, outside the allowed root {root}")]
    LinkOutsideRoot { target: String, root: String },
    /// `worktree: true` for a working folder where no worktree can be made.
    #[error("{reason}")]
    Worktree { reason: String, fix: String },
    #[error("{0}")]
    Other(String),
}

impl TaskErrorKind {
    pub fn name(&self) -> &'static str {
        match self {
            TaskErrorKind::Io(_) => "io",
            TaskErrorKind::TooLarge { .. } => "too_large",
            TaskErrorKind::EmptyFile => "empty_file",
            TaskErrorKind::Binary { .. } => "binary",
            TaskErrorKind::InvalidUtf8 { .. } => "invalid_utf8",
            TaskErrorKind::InvalidUtf16 { .. } => "invalid_utf16",
            TaskErrorKind::UnclosedFrontMatter => "unclosed_front_matter",
            TaskErrorKind::Yaml(_) => "yaml_syntax",
            TaskErrorKind::YamlLimit(_) => "yaml_limit",
            TaskErrorKind::FrontMatterNotMapping { .. } => "front_matter_not_mapping",
            TaskErrorKind::UnknownField { .. } => "unknown_field",
            TaskErrorKind::BadKey { .. } => "bad_key",
            TaskErrorKind::DuplicateKey { .. } => "duplicate_key",
            TaskErrorKind::NotScalar { .. } => "not_scalar",
            TaskErrorKind::EmptyValue { .. } => "empty_value",
            TaskErrorKind::BadId { .. } => "bad_id",
            TaskErrorKind::BadType { .. } => "bad_type",
            TaskErrorKind::BadPriority { .. } => "bad_priority",
            TaskErrorKind::BadCreated { .. } => "bad_created",
            TaskErrorKind::BadNumber { .. } => "bad_number",
            TaskErrorKind::BadBool { .. } => "bad_bool",
            TaskErrorKind::BadList { .. } => "bad_list",
            TaskErrorKind::EmptyPrompt => "empty_prompt",
            TaskErrorKind::Path { error, .. } => match **error {
                paths::PathError::OutsideRoot { .. } => "path_outside_root",
                paths::PathError::BadId(_) => "bad_id",
                paths::PathError::Unresolvable { .. } => "path_unresolvable",
            },
            TaskErrorKind::LinkOutsideRoot { .. } => "link_outside_root",
            TaskErrorKind::Worktree { .. } => "worktree",
            TaskErrorKind::Other(_) => "invalid",
        }
    }

    pub fn hint(&self) -> String {
        match self {
            TaskErrorKind::Io(_) => "check that the file exists and is readable".into(),
            TaskErrorKind::TooLarge { .. } => {
                "split the task or move large context into files it names".into()
            }
            TaskErrorKind::EmptyFile => {
                "write the task: a `**Prompt:**` section or some body text".into()
            }
            TaskErrorKind::Binary { .. } => {
                "task files are text; save it as UTF-8 markdown".into()
            }
            TaskErrorKind::InvalidUtf8 { .. } | TaskErrorKind::InvalidUtf16 { .. } => {
                "save the file as UTF-8 (or UTF-16 with a byte-order mark)".into()
            }
            TaskErrorKind::UnclosedFrontMatter => {
                "end the front matter with a line holding only `---`, or remove the `---` on line 1"
                    .into()
            }
            TaskErrorKind::Yaml(_) => {
                "fix the YAML between the `---` lines; quote values that contain `: ` or `#`".into()
            }
            TaskErrorKind::YamlLimit(_) => {
                "keep the front matter to flat `key: value` lines without deep nesting or many aliases"
                    .into()
            }
            TaskErrorKind::FrontMatterNotMapping { .. } => {
                "write one `key: value` per line, e.g. `priority: high`".into()
            }
            TaskErrorKind::UnknownField { suggestion, .. } => {
                let mut h = match suggestion {
                    Some(s) => format!("rename it to '{s}'; known fields are "),
                    None => "known fields are ".to_string(),
                };
                h.push_str(&fields::keys().collect::<Vec<_>>().join(", "));
                h.push_str("; keys starting with `x-` are kept and ignored");
                h
            }
            TaskErrorKind::BadKey { .. } => {
                "write one `key: value` per line, with a field name as the key".into()
            }
            TaskErrorKind::DuplicateKey { field } => format!("keep one `{field}:` line"),
            TaskErrorKind::NotScalar { field, .. } => {
                format!("write `{field}: value` on one line")
            }
            TaskErrorKind::EmptyValue { field } => {
                format!("give {field} a value or remove the line")
            }
            TaskErrorKind::BadId { .. } => {
                "use letters, digits, `_`, `.` and `-` only, e.g. `id: fix_db_timeout`".into()
            }
            TaskErrorKind::BadType { value } => {
                let all: Vec<&str> = TaskType::ALL.iter().map(|t| t.as_str()).collect();
                suggest_line(value, &all, "write e.g. `type: fix`, or remove it to let Orca route the task")
            }
            TaskErrorKind::BadPriority { value } => {
                let all: Vec<&str> = Priority::ALL.iter().map(|p| p.as_str()).collect();
                suggest_line(value, &all, "write e.g. `priority: high`, or remove it for medium")
            }
            TaskErrorKind::BadCreated { .. } => {
                "write a UTC or offset timestamp, e.g. `created: 2026-11-25T10:30:00Z`".into()
            }
            TaskErrorKind::BadNumber { field, .. } => {
                format!("write a whole number, e.g. `{field}: 10`")
            }
            TaskErrorKind::BadBool { field, .. } => format!("write `{field}: true` or `{field}: false`"),
            TaskErrorKind::BadList { field, .. } => {
                format!("write `{field}: [label-a, label-b]`")
            }
            TaskErrorKind::EmptyPrompt => "add a `**Prompt:**` section or some body text".into(),
            TaskErrorKind::Path { error, .. } => match **error {
                paths::PathError::OutsideRoot { .. } => {
                    "use a path inside CLAUDE_ALLOWED_ROOT (relative paths start at CLAUDE_BASE_CWD)"
                        .into()
                }
                paths::PathError::BadId(_) => {
                    "use letters, digits, `_`, `.` and `-` only".into()
                }
                paths::PathError::Unresolvable { .. } => {
                    "check the path: it must be readable and not a dangling symlink".into()
                }
            },
            TaskErrorKind::LinkOutsideRoot { .. } => {
                "copy the file into tasks/ instead of linking to it (a link is read only when it leads inside CLAUDE_ALLOWED_ROOT)".into()
            }
            TaskErrorKind::Worktree { fix, .. } => fix.clone(),
            TaskErrorKind::Other(_) => "see the task format in the README".into(),
        }
    }
}

/// A hint naming the closest allowed value when there is one, else `fallback`.
fn suggest_line(value: &str, allowed: &[&str], fallback: &str) -> String {
    match front::closest(value, allowed.iter().copied()) {
        Some(s) => format!("did you mean '{s}'? {fallback}"),
        None => fallback.to_string(),
    }
}

/// Reads and parses a task file; refuses files over [`MAX_TASK_FILE_BYTES`] before reading.
///
/// Only regular files are read (a FIFO or device is refused without opening it for long),
/// and the read is capped, so a file that grows while being read cannot make us read more.
pub fn parse_file(path: &Path) -> Result<Task, TaskError> {
    let bytes = read_limited(path).map_err(|kind| TaskError {
        file: path.to_path_buf(),
        line: None,
        kind,
    })?;
    parse_bytes(path, &bytes)
}

/// [`parse_file`] for the daemon, which hands the file's text to the agent: a task file that
/// is a symbolic link is read only when it leads inside `allowed_root`, so that a link dropped
/// into tasks/ cannot make Orca read a file its writer could not (a key elsewhere on the
/// machine). A plain file costs nothing more: it is opened without following a link first.
///
/// The decision is made on the opened file, not on the path: a link is opened (followed),
/// and the real path of the open descriptor (`/proc/self/fd/N`) must lie inside the root
/// before a byte is read. A parent folder swapped for a link between a check and the read
/// (a race) therefore cannot lead the read outside.
pub fn parse_file_within(path: &Path, allowed_root: &Path) -> Result<Task, TaskError> {
    let err = |kind| TaskError {
        file: path.to_path_buf(),
        line: None,
        kind,
    };
    let bytes = match open_task_file(path, false).map_err(err)? {
        Some(file) => read_opened(file),
        None => open_link_target(path).and_then(|file| {
            check_opened_inside(&file, allowed_root)?;
            read_opened(file)
        }),
    }
    .map_err(err)?;
    parse_bytes(path, &bytes)
}

/// Opens what the link `path` leads to (never blocking on a FIFO); a link that cannot be
/// followed (a loop) is unresolvable.
fn open_link_target(path: &Path) -> Result<std::fs::File, TaskErrorKind> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits());
    }
    opts.open(path).map_err(|e| {
        #[cfg(unix)]
        if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) {
            return TaskErrorKind::Path {
                field: "task file",
                error: Box::new(paths::PathError::Unresolvable {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                }),
            };
        }
        TaskErrorKind::Io(e.to_string())
    })
}

/// Refuses an opened task file whose real path lies outside `allowed_root`.
fn check_opened_inside(file: &std::fs::File, allowed_root: &Path) -> Result<(), TaskErrorKind> {
    let root = std::fs::canonicalize(allowed_root).map_err(|e| TaskErrorKind::Path {
        field: "task file",
        error: Box::new(paths::PathError::Unresolvable {
            path: allowed_root.display().to_string(),
            reason: e.to_string(),
        }),
    })?;
    let real = opened_path(file)?;
    if real.starts_with(&root) {
        Ok(())
    } else {
        Err(TaskErrorKind::LinkOutsideRoot {
            target: real.display().to_string(),
            root: root.display().to_string(),
        })
    }
}

/// The real path of an open file, as the kernel knows it.
#[cfg(target_os = "linux")]
fn opened_path(file: &std::fs::File) -> Result<PathBuf, TaskErrorKind> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|e| TaskErrorKind::Io(format!("cannot tell where the link leads: {e}")))
}

/// The real path of an open file: not known here, so a link is never read.
#[cfg(not(target_os = "linux"))]
fn opened_path(_file: &std::fs::File) -> Result<PathBuf, TaskErrorKind> {
    Err(TaskErrorKind::Io(
        "a symbolic link (links are read only on Linux)".into(),
    ))
}

/// Reads at most [`MAX_TASK_FILE_BYTES`] of a regular file, checking its size first.
pub(crate) fn read_limited(path: &Path) -> Result<Vec<u8>, TaskErrorKind> {
    match open_task_file(path, true)? {
        Some(file) => read_opened(file),
        None => Err(TaskErrorKind::Io("a symbolic link".into())),
    }
}

/// Opens a task file for reading, never blocking on a FIFO (what it is, is checked once
/// open). Without `follow`, a symbolic link is not opened: `Ok(None)` says it is one.
fn open_task_file(path: &Path, follow: bool) -> Result<Option<std::fs::File>, TaskErrorKind> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut flags = nix::fcntl::OFlag::O_NONBLOCK;
        if !follow {
            flags |= nix::fcntl::OFlag::O_NOFOLLOW;
        }
        opts.custom_flags(flags.bits());
    }
    match opts.open(path) {
        Ok(f) => Ok(Some(f)),
        #[cfg(unix)]
        Err(e) if !follow && e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) => Ok(None),
        Err(e) => Err(TaskErrorKind::Io(e.to_string())),
    }
}

/// Reads at most [`MAX_TASK_FILE_BYTES`] of an open task file, checking its size first.
fn read_opened(file: std::fs::File) -> Result<Vec<u8>, TaskErrorKind> {
    use std::io::Read;
    let io = |e: std::io::Error| TaskErrorKind::Io(e.to_string());
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(TaskErrorKind::Io("not a regular file".into()));
    }
    if meta.len() > MAX_TASK_FILE_BYTES {
        return Err(TaskErrorKind::TooLarge {
            size: meta.len(),
            limit: MAX_TASK_FILE_BYTES,
        });
    }
    // The size is at most 1 MiB here, so the cast cannot truncate.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_TASK_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_TASK_FILE_BYTES {
        return Err(TaskErrorKind::TooLarge {
            size: bytes.len() as u64,
            limit: MAX_TASK_FILE_BYTES,
        });
    }
    Ok(bytes)
}

/// Parses task-file bytes; `file` names the file in errors and gives the default id (stem).
/// The first error, when there are several: see [`parse_bytes_all`].
pub fn parse_bytes(file: &Path, bytes: &[u8]) -> Result<Task, TaskError> {
    let parsed = parse_bytes_all(file, bytes);
    match (parsed.errors.into_iter().next(), parsed.task) {
        (Some(e), _) => Err(e),
        (None, Some(t)) => Ok(t),
        // Never: no task comes with an error.
        (None, None) => Err(TaskError {
            file: file.to_path_buf(),
            line: None,
            kind: TaskErrorKind::Other("the file could not be read as a task".into()),
        }),
    }
}

/// Every error of a task file, where reading can go on past the first one.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// What could be read (with every field that was valid); None when the file could not be
    /// read as a task at all (size, encoding, front-matter syntax).
    pub task: Option<Task>,
    /// Every error found, in file order; empty when `task` is the valid task.
    pub errors: Vec<TaskError>,
}

/// [`parse_file`], reporting every error (for `orca check`).
pub fn parse_file_all(path: &Path) -> Parsed {
    match read_limited(path) {
        Ok(bytes) => parse_bytes_all(path, &bytes),
        Err(kind) => Parsed {
            task: None,
            errors: vec![TaskError {
                file: path.to_path_buf(),
                line: None,
                kind,
            }],
        },
    }
}

/// [`parse_bytes`], reporting every error: each bad front-matter key or value, and an empty
/// prompt, are all reported; an error that stops the reading (size, encoding, YAML syntax)
/// is the only one.
pub fn parse_bytes_all(file: &Path, bytes: &[u8]) -> Parsed {
    let err = |line: Option<usize>, kind: TaskErrorKind| TaskError {
        file: file.to_path_buf(),
        line,
        kind,
    };
    let fatal = |line: Option<usize>, kind: TaskErrorKind| Parsed {
        task: None,
        errors: vec![err(line, kind)],
    };
    if bytes.len() as u64 > MAX_TASK_FILE_BYTES {
        return fatal(
            None,
            TaskErrorKind::TooLarge {
                size: bytes.len() as u64,
                limit: MAX_TASK_FILE_BYTES,
            },
        );
    }
    let text = match decode::decode(bytes) {
        Ok(t) => t,
        Err(k) => return fatal(None, k),
    };
    if text.trim().is_empty() {
        return fatal(None, TaskErrorKind::EmptyFile);
    }
    let split = match front::split(&text) {
        Ok(s) => s,
        Err((line, k)) => return fatal(Some(line), k),
    };
    let mut task = Task::new(String::new(), String::new());
    let mut errors = Vec::new();
    if let Some(yaml) = split.yaml {
        match front::parse(yaml) {
            Ok(entries) => {
                for (line, kind) in fields::apply(&mut task, entries, yaml) {
                    errors.push(err(line, kind));
                }
            }
            Err((line, k)) => return fatal(line, k),
        }
    }
    let body = body::parse(split.body, split.body_line);
    match body.prompt {
        Some(p) if !p.is_empty() => task.prompt = p,
        _ => errors.push(err(body.prompt_line, TaskErrorKind::EmptyPrompt)),
    }
    if task.id.is_empty() {
        task.id = default_id(file);
    }
    task.title = body.title;
    task.target_files = body.target_files;
    task.success_criteria = body.success_criteria;
    task.context = body.context;
    Parsed {
        task: Some(task),
        errors,
    }
}

/// The id of a task without `id:`: the file name minus `.task.md` (or its extension),
/// with characters outside `[A-Za-z0-9_.-]` replaced by `_`, cut to 64 characters.
pub fn default_id(file: &Path) -> String {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let stem = match name.strip_suffix(".task.md") {
        Some(s) => s.to_string(),
        None => file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let mut id: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if id.is_empty() || id == "." || id == ".." {
        id = "task".into();
    }
    id
}

#[cfg(test)]
mod tests;

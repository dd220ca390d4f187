//! The result document of DESIGN §10 (`results/<stem>_result.json`). These Rust types are
//! the single source of the JSON Schema that `orca schema` prints and results are checked by.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::task::{Priority, TaskType};

/// Current `schema_version`.
pub const SCHEMA_VERSION: u32 = 1;

/// Final state of a task, as written in the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResultStatus {
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Rejected,
}

impl ResultStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ResultStatus::Succeeded => "succeeded",
            ResultStatus::Failed => "failed",
            ResultStatus::TimedOut => "timed_out",
            ResultStatus::Cancelled => "cancelled",
            ResultStatus::Rejected => "rejected",
        }
    }
}

/// Why a task did not succeed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultError {
    /// Machine-readable kind, e.g. `parse`, `unknown_field`, `timeout`, `agent_error`, `max_turns`.
    pub kind: String,
    pub message: String,
    /// Line in the task file, where there is one.
    pub line: Option<u64>,
    /// How to fix it.
    pub hint: Option<String>,
}

/// One attempt at running the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Attempt {
    pub attempt: u32,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// succeeded, failed, timed_out, cancelled, interrupted, retry
    pub outcome: String,
    pub error: Option<String>,
    pub exit_code: Option<i32>,
    pub session_id: Option<String>,
    /// True when this attempt resumed an earlier session (`--resume`).
    #[serde(default)]
    pub resumed: bool,
}

/// One success criterion with the verdict on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CriterionVerdict {
    pub text: String,
    pub verdict: Verdict,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Met,
    Unmet,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Llm,
    Rules,
}

/// How the task's type and priority were decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    pub method: Method,
    pub model: Option<String>,
    pub reason: String,
}

/// What the agent reported.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentInfo {
    /// e.g. `claude`.
    pub name: String,
    pub version: Option<String>,
    pub session_id: Option<String>,
    pub model: Option<String>,
    pub num_turns: Option<u32>,
    pub cost_usd: Option<f64>,
    /// Token usage as the agent reported it.
    pub usage: Option<serde_json::Value>,
    pub exit_code: Option<i32>,
}

/// How the agent's claims were checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Verification {
    /// `rules`, `llm` or `none`.
    pub method: String,
    pub claims: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    File,
    Cli,
    Telegram,
}

/// Where the task came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSource {
    pub kind: SourceKind,
    pub user: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SummaryMethod {
    Llm,
    Extract,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    pub method: SummaryMethod,
    pub text: String,
}

/// The result document. Timestamps are RFC 3339 UTC with milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "Orca task result",
    description = "results/<stem>_result.json, schema_version 1"
)]
pub struct TaskResult {
    #[schemars(range(min = 1, max = 1))]
    pub schema_version: u32,
    pub orca_version: String,
    pub task_id: String,
    /// The task file as received (path relative to the workspace root where possible).
    pub file: String,
    /// Where the task file was archived to.
    pub archived_to: Option<String>,
    pub title: Option<String>,
    #[serde(rename = "type")]
    pub task_type: Option<TaskType>,
    pub priority: Priority,
    pub status: ResultStatus,
    pub error: Option<ResultError>,
    pub created_at: Option<String>,
    pub received_at: String,
    pub started_at: Option<String>,
    pub finished_at: String,
    pub duration_ms: u64,
    pub attempts: u32,
    pub attempt_history: Vec<Attempt>,
    pub working_dir: Option<String>,
    pub target_files: Vec<String>,
    pub prompt: String,
    pub success_criteria: Vec<CriterionVerdict>,
    pub routing: Routing,
    pub agent: Option<AgentInfo>,
    pub output: Option<String>,
    /// Path of the raw agent stream (logs/runs/...), when there was a run.
    pub transcript: Option<String>,
    pub changed_files: Vec<String>,
    pub verification: Verification,
    pub source: TaskSource,
    pub summary: Summary,
}

/// The JSON Schema of [`TaskResult`], as `orca schema` prints it.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(TaskResult)).unwrap_or(serde_json::Value::Null)
}

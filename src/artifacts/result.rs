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
    #[schemars(extend("format" = "date-time"))]
    pub started_at: String,
    #[schemars(extend("format" = "date-time"))]
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
    #[schemars(range(min = 0))]
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

pub use crate::store::SourceKind;

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
    #[schemars(extend("const" = 1))]
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
    #[schemars(extend("format" = "date-time"))]
    pub created_at: Option<String>,
    #[schemars(extend("format" = "date-time"))]
    pub received_at: String,
    #[schemars(extend("format" = "date-time"))]
    pub started_at: Option<String>,
    #[schemars(extend("format" = "date-time"))]
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
///
/// Every field is required (written even when `null`), except those with a `default`:
/// a reader can rely on each key being present.
pub fn schema() -> serde_json::Value {
    let mut s =
        serde_json::to_value(schemars::schema_for!(TaskResult)).unwrap_or(serde_json::Value::Null);
    require_all_fields(&mut s);
    s
}

/// Sets `required` of every object schema to all its properties that have no `default`.
fn require_all_fields(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Object(props)) = map.get("properties") {
                let required: Vec<serde_json::Value> = props
                    .iter()
                    .filter(|(_, p)| p.get("default").is_none())
                    .map(|(k, _)| serde_json::Value::String(k.clone()))
                    .collect();
                map.insert("required".to_owned(), serde_json::Value::Array(required));
            }
            map.values_mut().for_each(require_all_fields);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(require_all_fields),
        _ => {}
    }
}

impl TaskResult {
    /// The result of a task file that could not be accepted (status `rejected`): no run, no
    /// routing, the parse error as `error` and as the summary text. Works for any bad file,
    /// even one whose bytes were not UTF-8: only the path, the id and the error are needed.
    /// `archived_to` is left `None` for the caller to fill in once the file is moved.
    pub fn rejected(
        file: &str,
        task_id: &str,
        err: &crate::task::TaskError,
        received_at_ms: i64,
        finished_at_ms: i64,
        source: TaskSource,
    ) -> TaskResult {
        let duration_ms = u64::try_from(finished_at_ms.saturating_sub(received_at_ms)).unwrap_or(0);
        TaskResult {
            schema_version: SCHEMA_VERSION,
            orca_version: crate::VERSION.to_owned(),
            task_id: task_id.to_owned(),
            file: file.to_owned(),
            archived_to: None,
            title: None,
            task_type: None,
            priority: Priority::default(),
            status: ResultStatus::Rejected,
            error: Some(ResultError {
                kind: err.kind_name().to_owned(),
                message: err.message(),
                line: err.line.map(|l| l as u64),
                hint: Some(err.hint()),
            }),
            created_at: None,
            received_at: crate::clock::rfc3339_ms(received_at_ms),
            started_at: None,
            finished_at: crate::clock::rfc3339_ms(finished_at_ms),
            duration_ms,
            attempts: 0,
            attempt_history: Vec::new(),
            working_dir: None,
            target_files: Vec::new(),
            prompt: String::new(),
            success_criteria: Vec::new(),
            routing: Routing {
                method: Method::Rules,
                model: None,
                reason: "not routed: rejected".to_owned(),
            },
            agent: None,
            output: None,
            transcript: None,
            changed_files: Vec::new(),
            verification: Verification {
                method: "none".to_owned(),
                claims: Vec::new(),
            },
            source,
            summary: Summary {
                method: SummaryMethod::Extract,
                text: err.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{TaskError, TaskErrorKind};
    use std::path::PathBuf;

    #[test]
    fn rejected_builder_fills_error_and_times() {
        let err = TaskError {
            file: PathBuf::from("tasks/bad.task.md"),
            line: Some(4),
            kind: TaskErrorKind::Other("priority 'urgent' is not one of high, medium, low".into()),
        };
        let src = TaskSource {
            kind: SourceKind::File,
            user: None,
        };
        let r = TaskResult::rejected("tasks/bad.task.md", "bad", &err, 1_000, 1_250, src);
        assert_eq!(r.status, ResultStatus::Rejected);
        assert_eq!(r.duration_ms, 250);
        assert_eq!(r.received_at, "1970-01-01T00:00:01.000Z");
        assert_eq!(r.finished_at, "1970-01-01T00:00:01.250Z");
        let e = r.error.as_ref().unwrap();
        assert_eq!(e.kind, "invalid");
        assert_eq!(e.line, Some(4));
        assert_eq!(
            e.message,
            "priority 'urgent' is not one of high, medium, low"
        );
        assert!(r.summary.text.starts_with("tasks/bad.task.md:4: priority"));
        assert_eq!(r.routing.reason, "not routed: rejected");
        // Clock going backwards never underflows.
        let r2 = TaskResult::rejected("f", "f", &err, 2_000, 1_000, r.source.clone());
        assert_eq!(r2.duration_ms, 0);
    }
}

impl TaskResult {
    /// A complete, valid, succeeded result with every optional part filled in, for tests,
    /// docs and examples (fixed timestamps, so it is stable in snapshots).
    pub fn example() -> TaskResult {
        TaskResult {
            schema_version: SCHEMA_VERSION,
            orca_version: "0.1.0".to_owned(),
            task_id: "fix_db_timeout".to_owned(),
            file: "tasks/fix_db_timeout.task.md".to_owned(),
            archived_to: Some("tasks/processed/fix_db_timeout.task.md".to_owned()),
            title: Some("Fix the database connection timeout".to_owned()),
            task_type: Some(TaskType::Fix),
            priority: Priority::High,
            status: ResultStatus::Succeeded,
            error: None,
            created_at: Some("2026-11-25T10:30:00.000Z".to_owned()),
            received_at: "2026-11-25T10:30:01.000Z".to_owned(),
            started_at: Some("2026-11-25T10:30:01.250Z".to_owned()),
            finished_at: "2026-11-25T10:31:24.650Z".to_owned(),
            duration_ms: 83_650,
            attempts: 1,
            attempt_history: vec![Attempt {
                attempt: 1,
                started_at: "2026-11-25T10:30:01.250Z".to_owned(),
                finished_at: Some("2026-11-25T10:31:24.650Z".to_owned()),
                outcome: "succeeded".to_owned(),
                error: None,
                exit_code: Some(0),
                session_id: Some("9f1c2d3e-0000-4000-8000-000000000001".to_owned()),
                resumed: false,
            }],
            working_dir: Some("backend".to_owned()),
            target_files: vec!["src/db.py".to_owned()],
            prompt: "The pool times out under load; find out why and fix it.".to_owned(),
            success_criteria: vec![
                CriterionVerdict {
                    text: "Pool no longer times out with 50 clients".to_owned(),
                    verdict: Verdict::Unknown,
                    reason: Some("no LLM configured to judge".to_owned()),
                },
                CriterionVerdict {
                    text: "Tests pass".to_owned(),
                    verdict: Verdict::Met,
                    reason: Some("the agent ran the test suite: 42 passed".to_owned()),
                },
            ],
            routing: Routing {
                method: Method::Rules,
                model: None,
                reason: "type given in the task file".to_owned(),
            },
            agent: Some(AgentInfo {
                name: "claude".to_owned(),
                version: Some("2.1.0".to_owned()),
                session_id: Some("9f1c2d3e-0000-4000-8000-000000000001".to_owned()),
                model: Some("sonnet".to_owned()),
                num_turns: Some(12),
                cost_usd: Some(0.0421),
                usage: Some(serde_json::json!({"input_tokens": 1200, "output_tokens": 800})),
                exit_code: Some(0),
            }),
            output: Some(
                "The pool was capped at 5 connections. I raised it to 20 and added a timeout.\n\nAll tests pass."
                    .to_owned(),
            ),
            transcript: Some("logs/runs/fix_db_timeout.1.ndjson".to_owned()),
            changed_files: vec!["src/db.py".to_owned(), "tests/test_db.py".to_owned()],
            verification: Verification {
                method: "rules".to_owned(),
                claims: vec!["tests pass".to_owned()],
            },
            source: TaskSource {
                kind: SourceKind::File,
                user: None,
            },
            summary: Summary {
                method: SummaryMethod::Extract,
                text: "The pool was capped at 5 connections. I raised it to 20 and added a timeout."
                    .to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod schema_tests {
    #[test]
    fn schema_snapshot() {
        let s = super::schema();
        assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert_eq!(s["title"], "Orca task result");
        assert_eq!(s["properties"]["schema_version"]["const"], 1);
        insta::assert_snapshot!(serde_json::to_string_pretty(&s).unwrap());
    }
}

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
    /// The node that ran it (fleet mode, DESIGN §12); null on a single machine.
    #[serde(default)]
    pub node: Option<String>,
    /// Fix rounds this attempt took (unmet checks fed back to the agent); null when none ran.
    #[serde(default)]
    pub rounds: Option<u32>,
}

/// One success criterion with the verdict on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CriterionVerdict {
    pub text: String,
    pub verdict: Verdict,
    pub reason: Option<String>,
    /// How the verdict was reached; null in results written before verdict methods.
    #[serde(default)]
    pub method: Option<CriterionMethod>,
    /// The executed check of a criterion that ends in a backticked command.
    #[serde(default)]
    pub check: Option<CheckRun>,
}

/// Verdict methods, strongest first (DESIGN §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CriterionMethod {
    Check,
    Llm,
    None,
}

/// One run of a criterion's check command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRun {
    pub command: String,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// The last lines of its output.
    pub output_tail: String,
    pub duration_ms: u64,
}

/// The git facts of a task that ran in a repository (DESIGN §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GitInfo {
    /// The repository's top folder.
    pub repo: String,
    pub base_commit: Option<String>,
    pub branch: Option<String>,
    /// The worktree the attempt ran in (`worktree: true`).
    pub worktree: Option<String>,
    /// The commit of the agent's changes.
    pub commit: Option<String>,
    pub diffstat: Option<String>,
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
    /// How long the LLM's routing call took (null for the rules).
    #[serde(default)]
    pub latency_ms: Option<u64>,
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

/// Most turns taken as the agent's real count; more is a broken report.
pub const MAX_PLAUSIBLE_TURNS: u32 = 1_000_000;
/// Highest cost (USD) of one task taken as real; more is a broken report.
pub const MAX_PLAUSIBLE_COST_USD: f64 = 1_000_000.0;

impl AgentInfo {
    /// The report with every value the agent gave out of range (a negative, NaN or huge
    /// cost; an absurd turn count) recorded as null, and one warning for each: a bad number
    /// never makes the result invalid, so the agent's output is never lost to validation.
    pub fn checked(mut self) -> (AgentInfo, Vec<String>) {
        let mut warnings = Vec::new();
        if let Some(c) = self.cost_usd {
            if !(c.is_finite() && (0.0..=MAX_PLAUSIBLE_COST_USD).contains(&c)) {
                warnings.push(format!(
                    "the agent reported a cost of {c} USD, out of range (0 to {MAX_PLAUSIBLE_COST_USD}); recorded as null"
                ));
                self.cost_usd = None;
            }
        }
        if let Some(t) = self.num_turns.filter(|t| *t > MAX_PLAUSIBLE_TURNS) {
            warnings.push(format!(
                "the agent reported {t} turns, out of range (at most {MAX_PLAUSIBLE_TURNS}); recorded as null"
            ));
            self.num_turns = None;
        }
        (self, warnings)
    }
}

/// How the agent's claims were checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Verification {
    pub method: VerificationMethod,
    pub claims: Vec<Claim>,
}

/// `events`: checked against the stream's tool events and the diff; `llm`; `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerificationMethod {
    Events,
    Llm,
    None,
}

/// One thing the agent says it did, and whether the evidence backs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    pub text: String,
    pub status: ClaimStatus,
    pub evidence: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClaimStatus {
    Backed,
    Unbacked,
    Unknown,
}

pub use crate::store::SourceKind;

/// Where the task came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSource {
    pub kind: SourceKind,
    pub user: Option<String>,
    /// The sender's Telegram user id (tasks from Telegram).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = null))]
    pub user_id: Option<i64>,
    /// The Telegram chat the task was sent from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = null))]
    pub chat_id: Option<i64>,
    /// The task this one continues (a reply to its notification): same session and folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = null))]
    pub follows: Option<String>,
    /// The tasks that continue this one, in the order they were asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("default" = []))]
    pub followed_by: Vec<String>,
}

impl TaskSource {
    /// A source of `kind` by `user`, with no Telegram details and no links.
    pub fn new(kind: SourceKind, user: Option<String>) -> TaskSource {
        TaskSource {
            kind,
            user,
            user_id: None,
            chat_id: None,
            follows: None,
            followed_by: Vec::new(),
        }
    }
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
    /// Where the task ran in a git repository; null outside one.
    #[serde(default)]
    pub git: Option<GitInfo>,
    pub verification: Verification,
    pub source: TaskSource,
    pub summary: Summary,
    /// What Orca changed in what the agent reported (e.g. a negative cost recorded as null),
    /// one sentence each. Not part of the document: shown in the summary file (and in
    /// `summary.text`, which the document keeps).
    #[serde(skip)]
    #[schemars(skip)]
    pub warnings: Vec<String>,
}

impl TaskResult {
    /// Takes every secret value `r` knows out of the document's text: what the agent wrote
    /// (output, error messages, check output, usage), what the task said, and paths.
    pub fn redact(&mut self, r: &crate::config::Redactor) {
        if r.is_empty() {
            return;
        }
        let s = |v: &mut String| r.redact_string(v);
        let o = |v: &mut Option<String>| {
            if let Some(v) = v {
                r.redact_string(v);
            }
        };
        s(&mut self.task_id);
        s(&mut self.file);
        o(&mut self.archived_to);
        o(&mut self.title);
        if let Some(e) = &mut self.error {
            s(&mut e.kind);
            s(&mut e.message);
            o(&mut e.hint);
        }
        for a in &mut self.attempt_history {
            s(&mut a.outcome);
            o(&mut a.error);
            o(&mut a.session_id);
            o(&mut a.node);
        }
        o(&mut self.working_dir);
        self.target_files.iter_mut().for_each(s);
        s(&mut self.prompt);
        for c in &mut self.success_criteria {
            s(&mut c.text);
            o(&mut c.reason);
            if let Some(check) = &mut c.check {
                s(&mut check.command);
                s(&mut check.output_tail);
            }
        }
        s(&mut self.routing.reason);
        o(&mut self.routing.model);
        if let Some(a) = &mut self.agent {
            s(&mut a.name);
            o(&mut a.version);
            o(&mut a.session_id);
            o(&mut a.model);
            if let Some(u) = &mut a.usage {
                r.redact_json(u);
            }
        }
        o(&mut self.output);
        o(&mut self.transcript);
        self.changed_files.iter_mut().for_each(s);
        if let Some(g) = &mut self.git {
            s(&mut g.repo);
            for v in [
                &mut g.base_commit,
                &mut g.branch,
                &mut g.worktree,
                &mut g.commit,
                &mut g.diffstat,
            ] {
                o(v);
            }
        }
        for c in &mut self.verification.claims {
            s(&mut c.text);
            o(&mut c.evidence);
        }
        o(&mut self.source.user);
        s(&mut self.summary.text);
        self.warnings.iter_mut().for_each(s);
    }
}

/// The JSON Schema of [`TaskResult`], as `orca schema` prints it.
///
/// Every field is required (written even when `null`), except those with a `default`:
/// a reader can rely on each key being present. Integers carry the bounds of their Rust
/// type as `minimum`/`maximum` (validators ignore the `uint32`-style formats), so that
/// every document the schema accepts is one Orca's types can read.
pub fn schema() -> serde_json::Value {
    let mut s =
        serde_json::to_value(schemars::schema_for!(TaskResult)).unwrap_or(serde_json::Value::Null);
    require_all_fields(&mut s);
    bound_integers(&mut s);
    s
}

/// Adds `minimum`/`maximum` to every schema whose `format` names a sized integer.
fn bound_integers(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            let bounds: Option<(serde_json::Value, serde_json::Value)> =
                match map.get("format").and_then(serde_json::Value::as_str) {
                    Some("int32") => Some((i32::MIN.into(), i32::MAX.into())),
                    Some("uint32") => Some((0.into(), u32::MAX.into())),
                    Some("int64") => Some((i64::MIN.into(), i64::MAX.into())),
                    Some("uint64") => Some((0.into(), u64::MAX.into())),
                    _ => None,
                };
            if let Some((min, max)) = bounds {
                map.entry("minimum").or_insert(min);
                map.entry("maximum").or_insert(max);
            }
            map.values_mut().for_each(bound_integers);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(bound_integers),
        _ => {}
    }
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
                latency_ms: None,
            },
            agent: None,
            output: None,
            transcript: None,
            changed_files: Vec::new(),
            git: None,
            verification: Verification {
                method: VerificationMethod::None,
                claims: Vec::new(),
            },
            source,
            summary: Summary {
                method: SummaryMethod::Extract,
                text: err.to_string(),
            },
            warnings: Vec::new(),
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
        let src = TaskSource::new(SourceKind::File, None);
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
                node: None,
                rounds: None,
            }],
            working_dir: Some("backend".to_owned()),
            target_files: vec!["src/db.py".to_owned()],
            prompt: "The pool times out under load; find out why and fix it.".to_owned(),
            success_criteria: vec![
                CriterionVerdict {
                    text: "Pool no longer times out with 50 clients".to_owned(),
                    verdict: Verdict::Unknown,
                    reason: Some("no LLM configured to judge".to_owned()),
                    method: Some(CriterionMethod::None),
                    check: None,
                },
                CriterionVerdict {
                    text: "Tests pass".to_owned(),
                    verdict: Verdict::Met,
                    reason: Some("the agent ran the test suite: 42 passed".to_owned()),
                    method: Some(CriterionMethod::Check),
                    check: Some(CheckRun {
                        command: "cargo test --quiet".to_owned(),
                        exit_code: Some(0),
                        timed_out: false,
                        output_tail: "test result: ok. 42 passed; 0 failed".to_owned(),
                        duration_ms: 8_200,
                    }),
                },
            ],
            routing: Routing {
                method: Method::Rules,
                model: None,
                reason: "type given in the task file".to_owned(),
                latency_ms: None,
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
            git: Some(GitInfo {
                repo: "backend".to_owned(),
                base_commit: Some("64f912b0c3a1d2e4f5a6b7c8d9e0f1a2b3c4d5e6".to_owned()),
                branch: Some("orca/fix_db_timeout".to_owned()),
                worktree: None,
                commit: Some("a1b2c3d4e5f60718293a4b5c6d7e8f9012345678".to_owned()),
                diffstat: Some("2 files changed, 14 insertions(+), 3 deletions(-)".to_owned()),
            }),
            verification: Verification {
                method: VerificationMethod::Events,
                claims: vec![Claim {
                    text: "tests pass".to_owned(),
                    status: ClaimStatus::Backed,
                    evidence: Some("`cargo test` ran after the last edit and passed".to_owned()),
                }],
            },
            source: TaskSource::new(SourceKind::File, None),
            summary: Summary {
                method: SummaryMethod::Extract,
                text: "The pool was capped at 5 connections. I raised it to 20 and added a timeout."
                    .to_owned(),
            },
            warnings: Vec::new(),
        }
    }
}

#[cfg(test)]
mod checked_tests {
    use super::*;

    /// What happens to each reported value: kept, or null with a warning.
    #[test]
    fn out_of_range_agent_values_become_null_with_a_warning() {
        for (cost, turns, kept_cost, kept_turns, warnings) in [
            (Some(0.0421), Some(12), Some(0.0421), Some(12), 0),
            (Some(0.0), Some(0), Some(0.0), Some(0), 0),
            (None, None, None, None, 0),
            (Some(-0.5), Some(3), None, Some(3), 1),
            (Some(-0.0), Some(3), Some(-0.0), Some(3), 0),
            (Some(f64::NAN), Some(3), None, Some(3), 1),
            (Some(f64::INFINITY), Some(3), None, Some(3), 1),
            (Some(2e6), Some(3), None, Some(3), 1),
            (
                Some(1.0),
                Some(MAX_PLAUSIBLE_TURNS),
                Some(1.0),
                Some(MAX_PLAUSIBLE_TURNS),
                0,
            ),
            (Some(1.0), Some(u32::MAX), Some(1.0), None, 1),
            (Some(-1.0), Some(u32::MAX), None, None, 2),
        ] {
            let info = AgentInfo {
                name: "claude".into(),
                session_id: Some("s".into()),
                cost_usd: cost,
                num_turns: turns,
                ..AgentInfo::default()
            };
            let (got, w) = info.checked();
            assert_eq!(
                (got.cost_usd.map(f64::to_bits), got.num_turns, w.len()),
                (kept_cost.map(f64::to_bits), kept_turns, warnings),
                "{cost:?} {turns:?}: {w:?}"
            );
            assert_eq!(got.session_id.as_deref(), Some("s"), "the rest is kept");
            assert!(w.iter().all(|w| w.contains("recorded as null")), "{w:?}");
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

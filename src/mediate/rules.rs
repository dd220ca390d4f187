//! Rule-based mediation, used when no LLM is configured or it fails: route a task to a type
//! by keywords, and give honest verdicts on success criteria.

use crate::artifacts::result::{
    CriterionMethod, CriterionVerdict, Method, ResultStatus, Routing, Verdict,
};
use crate::task::{Criterion, Task, TaskType};

/// Keywords per type, as whole words (lower case). The first keyword found in the title
/// (else in the prompt), reading left to right, decides.
const KEYWORDS: &[(TaskType, &[&str])] = &[
    (
        TaskType::Fix,
        &[
            "fix", "fixes", "fixed", "fixing", "bug", "bugs", "buggy", "error", "errors", "crash",
            "crashes", "crashed", "crashing", "broken", "failing",
        ],
    ),
    (
        TaskType::CodeReview,
        &[
            "review",
            "reviews",
            "reviewing",
            "pr",
            "prs",
            "diff",
            "diffs",
        ],
    ),
    (
        TaskType::Summarize,
        &[
            "summarize",
            "summarise",
            "summarized",
            "summarised",
            "summarizing",
            "summarising",
            "summary",
            "summaries",
            "tl;dr",
            "tldr",
        ],
    ),
];

/// Routes a task: a type given in the file wins; otherwise the first keyword in the title,
/// then in the prompt; otherwise `analyze`. The reason names what decided.
pub fn route(task: &Task) -> (TaskType, Routing) {
    let routing = |reason: String| Routing {
        method: Method::Rules,
        model: None,
        reason,
        latency_ms: None,
    };
    if let Some(t) = task.task_type {
        return (t, routing("type given in the task file".to_owned()));
    }
    let places = [
        ("title", task.title.as_deref().unwrap_or("")),
        ("prompt", task.prompt.as_str()),
    ];
    for (place, text) in places {
        if let Some((t, word)) = first_keyword(text) {
            return (t, routing(format!("keyword '{word}' in the {place}")));
        }
    }
    (
        TaskType::Analyze,
        routing("no fix, review or summary keyword in the title or prompt: default analyze".into()),
    )
}

/// The first keyword of any type in `text`, as a whole word.
fn first_keyword(text: &str) -> Option<(TaskType, String)> {
    let lower = text.to_lowercase();
    // Words are runs of letters, digits and ';' (so `tl;dr` stays one word); a trailing
    // ';' (end of a clause) is dropped.
    lower
        .split(|c: char| !(c.is_alphanumeric() || c == ';'))
        .map(|w| w.trim_matches(';'))
        .filter(|w| !w.is_empty())
        .find_map(|w| {
            KEYWORDS
                .iter()
                .find(|(_, words)| words.contains(&w))
                .map(|(t, _)| (*t, w.to_owned()))
        })
}

/// Verdicts without an LLM, honest about what rules can know: a criterion of a task that
/// failed, timed out or was rejected is `unmet` (the work did not complete); otherwise the
/// verdict is `unknown` (nothing here can check it).
pub fn judge_criteria(
    criteria: &[Criterion],
    output: Option<&str>,
    status: ResultStatus,
) -> Vec<CriterionVerdict> {
    judge_criteria_with(criteria, output, status, NO_LLM)
}

/// Why a succeeded task's criteria are `unknown` when no LLM is configured.
pub const NO_LLM: &str = "no LLM configured to judge";

/// [`judge_criteria`], where `unjudged` says why a succeeded task's criteria were not
/// judged (no LLM configured, or how the LLM failed).
pub fn judge_criteria_with(
    criteria: &[Criterion],
    output: Option<&str>,
    status: ResultStatus,
    unjudged: &str,
) -> Vec<CriterionVerdict> {
    let (verdict, reason) = match status {
        ResultStatus::Failed => (Verdict::Unmet, "the task failed before completing"),
        ResultStatus::TimedOut => (Verdict::Unmet, "the task timed out before completing"),
        ResultStatus::Rejected => (Verdict::Unmet, "the task file was rejected; nothing ran"),
        ResultStatus::Cancelled => (
            Verdict::Unknown,
            "the task was cancelled; any work done was not judged",
        ),
        ResultStatus::Succeeded if output.is_none_or(|o| o.trim().is_empty()) => {
            (Verdict::Unknown, "the agent gave no output to judge")
        }
        ResultStatus::Succeeded => (Verdict::Unknown, unjudged),
    };
    criteria
        .iter()
        .map(|c| {
            let mut reason = reason.to_owned();
            if c.checked {
                reason.push_str("; marked [x] in the task file, not verified");
            }
            CriterionVerdict {
                text: c.text.clone(),
                verdict,
                reason: Some(reason),
                method: Some(CriterionMethod::None),
                check: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(title: Option<&str>, prompt: &str, t: Option<TaskType>) -> Task {
        Task {
            task_type: t,
            title: title.map(str::to_owned),
            ..Task::new("t", prompt)
        }
    }

    fn routed(title: Option<&str>, prompt: &str) -> (TaskType, String) {
        let (t, r) = route(&task(title, prompt, None));
        assert_eq!(r.method, Method::Rules);
        (t, r.reason)
    }

    #[test]
    fn given_type_wins() {
        let (t, r) = route(&task(
            Some("Fix the bug"),
            "fix it",
            Some(TaskType::Summarize),
        ));
        assert_eq!(t, TaskType::Summarize);
        assert_eq!(r.reason, "type given in the task file");
    }

    #[test]
    fn keywords() {
        assert_eq!(
            routed(Some("Fix the database timeout"), "whatever"),
            (TaskType::Fix, "keyword 'fix' in the title".into())
        );
        assert_eq!(
            routed(None, "The app CRASHES on start"),
            (TaskType::Fix, "keyword 'crashes' in the prompt".into())
        );
        assert_eq!(
            routed(Some("Please review PR #42"), "").0,
            TaskType::CodeReview
        );
        assert_eq!(
            routed(None, "look at this diff").1,
            "keyword 'diff' in the prompt"
        );
        assert_eq!(
            routed(None, "tl;dr of the design doc, please").0,
            TaskType::Summarize
        );
        assert_eq!(
            routed(None, "Summarise the meeting notes").0,
            TaskType::Summarize
        );
        // The first keyword decides: summarising errors is a summary.
        assert_eq!(
            routed(None, "Summarize the errors in the log").0,
            TaskType::Summarize
        );
        // The title is read before the prompt.
        assert_eq!(
            routed(Some("Weekly summary"), "fix nothing").0,
            TaskType::Summarize
        );
    }

    #[test]
    fn whole_words_only_and_default() {
        // prefix, terror, preview, diffuse: no whole-word keyword.
        let (t, reason) = routed(Some("Prefix handling"), "terror preview diffuse");
        assert_eq!(t, TaskType::Analyze);
        assert!(reason.contains("default analyze"), "{reason}");
    }

    #[test]
    fn criteria_verdicts() {
        let cs = vec![
            Criterion {
                text: "Tests pass".into(),
                checked: false,
            },
            Criterion {
                text: "Docs updated".into(),
                checked: true,
            },
        ];
        let ok = judge_criteria(&cs, Some("done"), ResultStatus::Succeeded);
        assert_eq!(ok.len(), 2);
        assert!(ok.iter().all(|v| v.verdict == Verdict::Unknown));
        assert_eq!(ok[0].reason.as_deref(), Some("no LLM configured to judge"));
        assert!(ok[1].reason.as_deref().unwrap().contains("marked [x]"));
        let failed = judge_criteria(&cs, None, ResultStatus::Failed);
        assert!(failed.iter().all(|v| v.verdict == Verdict::Unmet));
        assert_eq!(failed[0].text, "Tests pass");
        let empty = judge_criteria(&cs, Some("  "), ResultStatus::Succeeded);
        assert_eq!(
            empty[0].reason.as_deref(),
            Some("the agent gave no output to judge")
        );
        let cancelled = judge_criteria(&cs, None, ResultStatus::Cancelled);
        assert!(cancelled.iter().all(|v| v.verdict == Verdict::Unknown));
        assert!(judge_criteria(&[], None, ResultStatus::Failed).is_empty());
    }
}

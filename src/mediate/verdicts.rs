//! The summary and the criteria verdicts of a finished task in one LLM call, from the
//! agent's final output, the changed files and a size-bounded diff (each cut with a visible
//! marker). Criteria an executed check decided are not asked about.

use serde::Deserialize;
use serde_json::{json, Value};

use super::client::LlmError;
use crate::artifacts::result::{CriterionMethod, CriterionVerdict, Verdict};

/// Most characters of the agent's output sent.
pub const MAX_OUTPUT_CHARS: usize = 6000;
/// Most characters of the diff sent.
pub const MAX_DIFF_CHARS: usize = 6000;
/// Most changed file names sent.
pub const MAX_FILES: usize = 100;

/// What the call is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs {
    pub title: Option<String>,
    pub prompt: String,
    pub status: String,
    pub output: String,
    pub changed_files: Vec<String>,
    pub diff: Option<String>,
    /// (index in the task's criteria, text) of each criterion to judge.
    pub criteria: Vec<(usize, String)>,
}

/// What the LLM said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    /// The model that judged.
    pub model: String,
    pub summary: String,
    /// (criterion index, verdict, reason).
    pub verdicts: Vec<(usize, Verdict, String)>,
}

/// What mediation made of a finished task: the LLM's judgement, or why it gave none (the
/// extract and the rules stand in, and the verdicts' reason says why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    Judged(Judged),
    /// The LLM failed: the `llm_fallback` reason and message.
    Failed(String),
}

impl Judgement {
    pub fn judged(&self) -> Option<&Judged> {
        match self {
            Judgement::Judged(j) => Some(j),
            Judgement::Failed(_) => None,
        }
    }
}

/// `s` cut to `max` characters with a marker saying how much was left out.
pub fn bounded(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_owned();
    }
    let head: String = s.chars().take(max).collect();
    format!(
        "{head}\n[… truncated: {} more characters not shown]",
        n - max
    )
}

/// The JSON Schema of the answer for `criteria` numbered criteria: each verdict's
/// `criterion` is one of 1..=criteria, and there are at most that many verdicts (a server
/// that constrains its output by the schema cannot number one that does not exist).
pub fn schema(criteria: usize) -> Value {
    let numbers: Vec<usize> = (1..=criteria).collect();
    let criterion = if numbers.is_empty() {
        json!({"type": "integer"})
    } else {
        json!({"type": "integer", "enum": numbers})
    };
    json!({
        "type": "object",
        "properties": {
            "done": {"type": "string"},
            "left": {"type": "string"},
            "verdicts": {"type": "array", "maxItems": criteria, "items": {
                "type": "object",
                "properties": {
                    "criterion": criterion,
                    "verdict": {"type": "string", "enum": ["met", "unmet", "unknown"]},
                    "reason": {"type": "string"}
                },
                "required": ["criterion", "verdict", "reason"]
            }}
        },
        "required": ["done", "left", "verdicts"]
    })
}

/// The system and user messages.
pub fn prompt(i: &Inputs) -> (String, String) {
    let system = "You summarise what a coding agent did for Orca and judge the task's success criteria. done: what was done, in at most 3 sentences. left: what is left to do, or \"nothing\". verdicts: one per numbered criterion, met / unmet / unknown (unknown when the evidence does not say), with a one-line reason. Judge only from the evidence given.".to_owned();
    let mut u = String::new();
    if let Some(t) = &i.title {
        u.push_str(&format!("Task: {t}\n"));
    }
    u.push_str(&format!("Request: {}\n", bounded(&i.prompt, 2000)));
    u.push_str(&format!("Status: {}\n", i.status));
    let files: Vec<&str> = i
        .changed_files
        .iter()
        .take(MAX_FILES)
        .map(String::as_str)
        .collect();
    u.push_str(&format!(
        "Changed files: {}",
        if files.is_empty() {
            "none".to_owned()
        } else {
            files.join(", ")
        }
    ));
    if i.changed_files.len() > MAX_FILES {
        u.push_str(&format!(
            " [… truncated: {} more files]",
            i.changed_files.len() - MAX_FILES
        ));
    }
    u.push('\n');
    if let Some(d) = &i.diff {
        u.push_str(&format!("Diff:\n{}\n", bounded(d, MAX_DIFF_CHARS)));
    }
    u.push_str(&format!(
        "Agent's final output:\n{}\n",
        bounded(&i.output, MAX_OUTPUT_CHARS)
    ));
    if i.criteria.is_empty() {
        u.push_str("Criteria: none (answer verdicts: [])\n");
    } else {
        u.push_str("Criteria:\n");
        for (n, (_, text)) in i.criteria.iter().enumerate() {
            u.push_str(&format!("{}. {text}\n", n + 1));
        }
    }
    (system, u)
}

/// Whether `s` has a word: two letters in a row.
fn has_words(s: &str) -> bool {
    let mut run = 0;
    s.chars().any(|c| {
        run = if c.is_alphabetic() { run + 1 } else { 0 };
        run >= 2
    })
}

#[derive(Deserialize)]
struct Answer {
    done: String,
    #[serde(default)]
    left: Option<String>,
    #[serde(default)]
    verdicts: Vec<AnswerVerdict>,
}

#[derive(Deserialize)]
struct AnswerVerdict {
    criterion: i64,
    verdict: String,
    #[serde(default)]
    reason: String,
}

/// Puts the LLM's verdicts into the rules' ones (`method: llm`); run before the executed
/// checks are applied, which win.
pub fn apply(criteria: &mut [CriterionVerdict], judged: &Judged) {
    for (i, verdict, reason) in &judged.verdicts {
        if let Some(c) = criteria.get_mut(*i) {
            c.verdict = *verdict;
            c.reason = Some(if reason.is_empty() {
                format!("judged by {}", judged.model)
            } else {
                reason.clone()
            });
            c.method = Some(CriterionMethod::Llm);
        }
    }
}

/// Reads the answer: the summary text and each numbered criterion's verdict (a criterion
/// the answer skips stays with the rules).
pub fn parse_answer(v: Value, i: &Inputs) -> Result<Judged, LlmError> {
    let a: Answer = serde_json::from_value(v).map_err(|e| LlmError::WrongShape(e.to_string()))?;
    if !has_words(&a.done) {
        // A small model can fill the string with punctuation (`][`): no summary.
        return Err(LlmError::WrongShape(format!(
            "`done` has no words: {:?}",
            a.done.chars().take(40).collect::<String>()
        )));
    }
    let mut verdicts = Vec::new();
    for v in a.verdicts {
        let verdict = match v.verdict.trim() {
            "met" => Verdict::Met,
            "unmet" => Verdict::Unmet,
            "unknown" => Verdict::Unknown,
            other => return Err(LlmError::WrongShape(format!("verdict '{other}'"))),
        };
        let Some((index, _)) = usize::try_from(v.criterion - 1)
            .ok()
            .and_then(|n| i.criteria.get(n))
        else {
            return Err(LlmError::WrongShape(format!(
                "no criterion {}",
                v.criterion
            )));
        };
        let reason: String = v
            .reason
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(300)
            .collect();
        verdicts.push((*index, verdict, reason));
    }
    let mut summary = a.done.trim().to_owned();
    if let Some(left) = a
        .left
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
    {
        summary.push_str(&format!("\nLeft: {left}"));
    }
    Ok(Judged {
        model: String::new(),
        summary,
        verdicts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs {
        Inputs {
            prompt: "fix".into(),
            status: "succeeded".into(),
            output: "x".repeat(MAX_OUTPUT_CHARS + 10),
            changed_files: vec!["a.rs".into()],
            criteria: vec![(0, "Tests pass".into()), (2, "Docs".into())],
            ..Default::default()
        }
    }

    #[test]
    fn inputs_are_bounded_with_a_marker() {
        let (_, user) = prompt(&inputs());
        assert!(
            user.contains("[… truncated: 10 more characters not shown]"),
            "{user}"
        );
        assert!(user.contains("1. Tests pass\n2. Docs"), "{user}");
        assert_eq!(bounded("abc", 3), "abc");
    }

    #[test]
    fn answers_are_checked() {
        let i = inputs();
        let ok = json!({"done": "Fixed it.", "left": "nothing",
            "verdicts": [{"criterion": 2, "verdict": "met", "reason": "docs changed\nmore"}]});
        let j = parse_answer(ok, &i).unwrap();
        assert_eq!(j.summary, "Fixed it.\nLeft: nothing");
        assert_eq!(j.verdicts, vec![(2, Verdict::Met, "docs changed".into())]);
        for bad in [
            json!({"left": "x", "verdicts": []}),
            json!({"done": "][", "left": "", "verdicts": []}),
            json!({"done": " ", "left": "", "verdicts": []}),
            json!({"done": "d", "left": "", "verdicts": [{"criterion": 3, "verdict": "met", "reason": ""}]}),
            json!({"done": "d", "left": "", "verdicts": [{"criterion": 1, "verdict": "yes", "reason": ""}]}),
        ] {
            assert_eq!(parse_answer(bad, &i).unwrap_err().kind(), "wrong_shape");
        }
    }

    #[test]
    fn the_schema_numbers_only_the_criteria_asked() {
        let v = |n: usize| jsonschema::validator_for(&schema(n)).unwrap();
        let answer = |verdicts: Value| json!({"done": "d", "left": "l", "verdicts": verdicts});
        let one = |c: i64| json!({"criterion": c, "verdict": "met", "reason": "r"});
        // (criteria asked, the answer's verdicts, valid)
        let table = [
            (2, json!([one(1), one(2)]), true),
            (2, json!([one(3)]), false),
            (2, json!([one(0)]), false),
            (2, json!([one(1), one(2), one(1)]), false),
            (0, json!([]), true),
            (0, json!([one(1)]), false),
        ];
        for (n, verdicts, valid) in table {
            assert_eq!(
                v(n).is_valid(&answer(verdicts.clone())),
                valid,
                "{n}: {verdicts}"
            );
        }
    }
}

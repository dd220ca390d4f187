//! Validation of result documents against the JSON Schema of [`super::result::schema`]:
//! one value, one file, or every `results/*.json` (the body of `orca validate-artifacts`).
//! The checking itself is the `jsonschema` crate (draft 2020-12, formats checked).

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use serde::Serialize;
use serde_json::{json, Value};

use super::result;

/// Longest message kept per violation; the validator may quote whole sub-documents.
pub(super) const MAX_MESSAGE_CHARS: usize = 300;

/// The compiled schema, built once on first use and shared by every caller.
/// `Err` holds why the schema did not compile (a bug: the schema is generated from our types,
/// and a unit test compiles it).
static VALIDATOR: LazyLock<Result<jsonschema::Validator, String>> = LazyLock::new(|| {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&result::schema())
        .map_err(|e| e.to_string())
});

/// One place where a document breaks the schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON pointer of the instance location (`""` is the whole document; for a missing
    /// field it is the object that lacks it).
    pub pointer: String,
    /// What is wrong, e.g. `"status" is a required property`.
    pub message: String,
    /// The schema keyword that failed (`required`, `enum`, `type`, `additionalProperties`, ...).
    pub keyword: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.pointer.is_empty() {
            "(root)"
        } else {
            &self.pointer
        };
        write!(f, "{at}: {}", self.message)
    }
}

/// Why a result file is not a valid result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileInvalid {
    #[error("{}: cannot read the file: {reason}; check that it exists and is readable", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{}:{line}:{column}: not JSON: {message}", path.display())]
    NotJson {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {} schema violation(s): {}", path.display(), violations.len(), join_violations(violations))]
    Violations {
        path: PathBuf,
        violations: Vec<Violation>,
    },
}

fn join_violations(v: &[Violation]) -> String {
    v.iter()
        .map(Violation::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

pub(super) fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Checks a JSON value against the result schema; `Err` lists every violation, in the
/// validator's order.
pub fn validate_value(v: &Value) -> Result<(), Vec<Violation>> {
    let validator = match &*VALIDATOR {
        Ok(v) => v,
        Err(e) => {
            return Err(vec![Violation {
                pointer: String::new(),
                message: format!(
                "the result schema does not compile ({e}); this is a bug in Orca, please report it"
            ),
                keyword: "schema".into(),
            }])
        }
    };
    // The usual case, a valid result, takes the validator's fast path; the errors are
    // collected only when there are some.
    if validator.is_valid(v) {
        return Ok(());
    }
    let mut violations = Vec::new();
    for e in validator.iter_errors(v) {
        collect(&e, &mut violations);
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations)
    }
}

/// Adds the violations of one validator error. A nullable sub-object is `anyOf: [{$ref},
/// {type: null}]`; when it fails, the useful errors are those of the non-null branch (with
/// precise pointers), not "is not valid under any of the schemas".
fn collect(e: &jsonschema::ValidationError<'_>, out: &mut Vec<Violation>) {
    if let jsonschema::error::ValidationErrorKind::AnyOf { context } = e.kind() {
        let here = e.instance_path().as_str();
        let real: Vec<&Vec<jsonschema::ValidationError<'static>>> = context
            .iter()
            .filter(|branch| {
                !(branch.len() == 1
                    && branch[0].kind().keyword() == "type"
                    && branch[0].instance_path().as_str() == here)
            })
            .collect();
        if let [branch] = real.as_slice() {
            for sub in branch.iter() {
                collect(sub, out);
            }
            return;
        }
    }
    out.push(Violation {
        pointer: e.instance_path().as_str().to_owned(),
        message: truncate_chars(&e.to_string(), MAX_MESSAGE_CHARS),
        keyword: e.kind().keyword().to_owned(),
    });
}

/// Reads, parses and validates one result file.
pub fn validate_file(path: &Path) -> Result<(), FileInvalid> {
    let bytes = std::fs::read(path).map_err(|e| FileInvalid::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| FileInvalid::NotJson {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    validate_value(&value).map_err(|violations| FileInvalid::Violations {
        path: path.to_path_buf(),
        violations,
    })
}

/// Validates every `*.json` file directly in `results_dir` (hidden files skipped), in name
/// order. A missing folder gives an empty list; an unreadable one gives one entry for it.
pub fn validate_dir(results_dir: &Path) -> Vec<(PathBuf, Result<(), FileInvalid>)> {
    let entries = match std::fs::read_dir(results_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            return vec![(
                results_dir.to_path_buf(),
                Err(FileInvalid::Unreadable {
                    path: results_dir.to_path_buf(),
                    reason: e.to_string(),
                }),
            )]
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".json") && !name.starts_with('.')
        })
        .filter(|e| e.path().is_file())
        .map(|e| e.path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let r = validate_file(&p);
            (p, r)
        })
        .collect()
}

/// Renders the outcome of [`validate_dir`] for `orca validate-artifacts [--json]`.
/// Returns the text to print on stdout and the exit code: 0 when every file is valid
/// (or there are none), 1 when any is invalid.
///
/// JSON form (stable): `{"checked": N, "invalid": K, "files": [{"file", "valid",
/// "error": null | {"kind": "unreadable"|"not_json"|"schema", "message", "line"?, "column"?,
/// "violations"?: [{"pointer", "message", "keyword"}]}}]}`.
pub fn render_report(report: &[(PathBuf, Result<(), FileInvalid>)], json: bool) -> (String, i32) {
    let invalid = report.iter().filter(|(_, r)| r.is_err()).count();
    let code = i32::from(invalid > 0);
    if json {
        let files: Vec<Value> = report
            .iter()
            .map(|(path, r)| {
                let error = match r {
                    Ok(()) => Value::Null,
                    Err(FileInvalid::Unreadable { reason, .. }) => {
                        json!({"kind": "unreadable", "message": reason})
                    }
                    Err(FileInvalid::NotJson {
                        line,
                        column,
                        message,
                        ..
                    }) => {
                        json!({"kind": "not_json", "message": message, "line": line, "column": column})
                    }
                    Err(FileInvalid::Violations { violations, .. }) => json!({
                        "kind": "schema",
                        "message": format!("{} schema violation(s)", violations.len()),
                        "violations": violations,
                    }),
                };
                json!({"file": path.display().to_string(), "valid": r.is_ok(), "error": error})
            })
            .collect();
        let doc = json!({"checked": report.len(), "invalid": invalid, "files": files});
        let text = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".to_owned());
        return (format!("{text}\n"), code);
    }
    let mut out = String::new();
    if report.is_empty() {
        out.push_str("no result files to check\n");
        return (out, 0);
    }
    for (path, r) in report {
        match r {
            Ok(()) => out.push_str(&format!("ok       {}\n", path.display())),
            Err(FileInvalid::Violations { violations, .. }) => {
                out.push_str(&format!("INVALID  {}\n", path.display()));
                for v in violations {
                    out.push_str(&format!("         {v}\n"));
                }
            }
            Err(e) => out.push_str(&format!("INVALID  {e}\n")),
        }
    }
    out.push_str(&format!(
        "{} file(s) checked, {} invalid\n",
        report.len(),
        invalid
    ));
    if invalid > 0 {
        out.push_str("hint: compare with `orca schema`; results are written by Orca, so an invalid one was edited by hand or written by another version\n");
    }
    (out, code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::result::TaskResult;

    fn example() -> Value {
        serde_json::to_value(TaskResult::example()).unwrap()
    }

    fn pointers(v: &Value) -> Vec<(String, String)> {
        validate_value(v)
            .unwrap_err()
            .into_iter()
            .map(|v| (v.pointer, v.keyword))
            .collect()
    }

    #[test]
    fn full_example_and_rejected_results_validate() {
        assert_eq!(validate_value(&example()), Ok(()));
        let err = crate::task::TaskError {
            file: "tasks/x.task.md".into(),
            line: None,
            kind: crate::task::TaskErrorKind::EmptyPrompt,
        };
        let r = TaskResult::rejected(
            "tasks/x.task.md",
            "x",
            &err,
            0,
            5,
            crate::artifacts::result::TaskSource::new(
                crate::artifacts::result::SourceKind::Cli,
                Some("alice".into()),
            ),
        );
        assert_eq!(validate_value(&serde_json::to_value(r).unwrap()), Ok(()));
    }

    #[test]
    fn missing_field_points_at_its_object() {
        let mut v = example();
        v.as_object_mut().unwrap().remove("status");
        let errs = validate_value(&v).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].pointer, "");
        assert_eq!(errs[0].keyword, "required");
        assert!(errs[0].message.contains("status"), "{}", errs[0].message);
        // A nullable field must still be present.
        let mut v = example();
        v["agent"].as_object_mut().unwrap().remove("cost_usd");
        assert_eq!(pointers(&v), vec![("/agent".into(), "required".into())]);
    }

    #[test]
    fn wrong_enum_points_at_the_value() {
        let mut v = example();
        v["status"] = "done".into();
        v["success_criteria"][1]["verdict"] = "maybe".into();
        assert_eq!(
            pointers(&v),
            vec![
                ("/status".into(), "enum".into()),
                ("/success_criteria/1/verdict".into(), "enum".into())
            ]
        );
    }

    #[test]
    fn extra_field_is_refused() {
        let mut v = example();
        v["routing"]["confidence"] = 0.5.into();
        let errs = validate_value(&v).unwrap_err();
        assert_eq!(errs[0].pointer, "/routing");
        assert_eq!(errs[0].keyword, "additionalProperties");
        assert!(errs[0].message.contains("confidence"));
    }

    #[test]
    fn wrong_type_version_and_timestamp() {
        let mut v = example();
        v["duration_ms"] = "83650".into();
        v["attempt_history"][0]["attempt"] = (-1).into();
        v["schema_version"] = 2.into();
        v["finished_at"] = "yesterday".into();
        let got = pointers(&v);
        for (p, k) in [
            ("/duration_ms", "type"),
            ("/attempt_history/0/attempt", "minimum"),
            ("/schema_version", "const"),
            ("/finished_at", "format"),
        ] {
            assert!(
                got.contains(&(p.into(), k.into())),
                "{p} {k} not in {got:?}"
            );
        }
    }

    #[test]
    fn long_messages_are_truncated() {
        let mut v = example();
        v["output"] = serde_json::json!({"x": "y".repeat(2000)});
        let errs = validate_value(&v).unwrap_err();
        assert!(errs
            .iter()
            .all(|e| e.message.chars().count() <= MAX_MESSAGE_CHARS + 1));
    }

    #[test]
    fn files_and_dir_report() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        std::fs::write(
            dir.join("a_result.json"),
            serde_json::to_string(&example()).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.join("b_result.json"), "{\n  \"x\": 1,\n  oops\n}").unwrap();
        let mut bad = example();
        bad["priority"] = "urgent".into();
        std::fs::write(dir.join("c_result.json"), bad.to_string()).unwrap();
        std::fs::write(dir.join(".d_result.json.partial"), "{").unwrap();
        std::fs::write(dir.join("notes.txt"), "x").unwrap();
        let report = validate_dir(dir);
        let names: Vec<String> = report
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a_result.json", "b_result.json", "c_result.json"]);
        assert!(report[0].1.is_ok());
        match &report[1].1 {
            Err(FileInvalid::NotJson { line, column, .. }) => assert_eq!((*line, *column), (3, 3)),
            other => panic!("{other:?}"),
        }
        let (text, code) = render_report(&report, false);
        assert_eq!(code, 1);
        assert!(text.contains("b_result.json:3:3: not JSON"), "{text}");
        assert!(text.contains("/priority:"), "{text}");
        assert!(text.contains("3 file(s) checked, 2 invalid"), "{text}");
        let (json, code) = render_report(&report, true);
        assert_eq!(code, 1);
        let doc: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(doc["checked"], 3);
        assert_eq!(doc["invalid"], 2);
        assert_eq!(doc["files"][0]["valid"], true);
        assert_eq!(doc["files"][1]["error"]["kind"], "not_json");
        assert_eq!(
            doc["files"][2]["error"]["violations"][0]["pointer"],
            "/priority"
        );

        assert_eq!(
            render_report(&[], false),
            ("no result files to check\n".into(), 0)
        );
        assert!(validate_dir(&dir.join("missing")).is_empty());
        assert!(matches!(
            validate_file(&dir.join("missing.json")),
            Err(FileInvalid::Unreadable { .. })
        ));
    }
}

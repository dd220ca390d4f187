//! The result types and the result schema agree: every document the schema accepts is one
//! Orca's own types read back with nothing lost (so a result that `orca validate-artifacts`
//! passes is one `orca show` and crash recovery can use), and every document the types
//! write is valid. Checked on every single mutation of three real results (each of ~50
//! values put in place of each value, each key removed, an unknown key added), and on
//! generated results with up to five random mutations.
//!
//! The schema is stricter than the types, on purpose (not checked in that direction):
//! every key must be present (serde reads a missing `Option` as null), timestamps must be
//! RFC 3339, `schema_version` must be 1, a cost must not be negative. One deliberate
//! difference the other way: JSON Schema counts `1.0` as an integer, serde does not; Orca
//! never writes an integer that way.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::result::{
    AgentInfo, Attempt, CheckRun, Claim, ClaimStatus, CriterionMethod, CriterionVerdict, Method,
    ResultError, ResultStatus, Routing, SourceKind, Summary, SummaryMethod, TaskResult, TaskSource,
    Verdict, Verification, VerificationMethod,
};
use super::validate::validate_value;
use crate::task::{Priority, TaskType};

/// Numbers compare by value (an integer read into an `f64` field comes back as a float).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, a)| y.get(k).is_some_and(|b| same(a, b)))
        }
        _ => a == b,
    }
}

/// Every key of `doc` is in `back` with the same value (`back` may add keys with defaults).
fn kept(doc: &Value, back: &Value) -> bool {
    match (doc, back) {
        (Value::Object(x), Value::Object(y)) => {
            x.iter().all(|(k, a)| y.get(k).is_some_and(|b| kept(a, b)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| kept(a, b))
        }
        _ => same(doc, back),
    }
}

/// A whole number written as a float (`1.0`): an integer to JSON Schema, not to serde.
fn has_whole_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64() && n.as_f64().is_some_and(|f| f.fract() == 0.0),
        Value::Array(a) => a.iter().any(has_whole_float),
        Value::Object(m) => m.values().any(has_whole_float),
        _ => false,
    }
}

/// Asserts the agreement on `doc`; returns whether the schema accepted it.
fn agree(doc: &Value) -> bool {
    let valid = validate_value(doc).is_ok();
    if valid && !has_whole_float(doc) {
        let typed = serde_json::from_value::<TaskResult>(doc.clone());
        let typed = match typed {
            Ok(t) => t,
            Err(e) => panic!("valid to the schema, unreadable to the types ({e}): {doc}"),
        };
        let back = serde_json::to_value(&typed).unwrap();
        assert!(kept(doc, &back), "lost in the round trip:\n{doc}\n{back}");
        assert_eq!(validate_value(&back), Ok(()), "{back}");
    }
    valid
}

fn rejected() -> TaskResult {
    let err = crate::task::TaskError {
        file: "tasks/x.task.md".into(),
        line: Some(3),
        kind: crate::task::TaskErrorKind::EmptyPrompt,
    };
    TaskResult::rejected(
        "tasks/x.task.md",
        "x",
        &err,
        1_764_066_600_000,
        1_764_066_600_003,
        TaskSource::new(SourceKind::Telegram, Some("alice".into())),
    )
}

/// Values put in place of others: every JSON type, the edges of the integer formats,
/// strings of every enum in the schema, good and bad date-times.
fn pool() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(false),
        json!(0),
        json!(1),
        json!(2),
        json!(-1),
        json!(1.0),
        json!(1.5),
        json!(-0.5),
        json!(0.0421),
        json!(i32::MIN),
        json!(i64::from(i32::MIN) - 1),
        json!(u32::MAX),
        json!(u64::from(u32::MAX) + 1),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1e20),
        json!(-1e20),
        json!(""),
        json!("bogus"),
        json!("succeeded"),
        json!("rejected"),
        json!("met"),
        json!("high"),
        json!("low"),
        json!("fix"),
        json!("code_review"),
        json!("llm"),
        json!("rules"),
        json!("extract"),
        json!("file"),
        json!("telegram"),
        json!("2026-11-25T10:30:00.000Z"),
        json!("2026-11-25t10:30:00+05:30"),
        json!("1998-12-31T23:59:60Z"),
        json!("1998-12-31T23:59:60+01:00"),
        json!("2026-02-29T10:30:00Z"),
        json!("2026-11-25 10:30:00Z"),
        json!("2026-11-25T10:30:00"),
        json!("yesterday"),
        json!([]),
        json!(["x"]),
        json!([1, null]),
        json!({}),
        json!({"a": 1}),
        json!({"name": "claude"}),
        json!({"method": "llm", "text": "t"}),
        json!({"kind": "cli", "user": null}),
        json!({"text": "t", "verdict": "met", "reason": null}),
        json!("check"),
        json!("events"),
        json!("backed"),
        json!({"text": "t", "status": "unknown", "evidence": null}),
        json!({"repo": "r", "base_commit": null, "branch": null, "worktree": null, "commit": null, "diffstat": null}),
        json!({"command": "c", "exit_code": 1, "timed_out": true, "output_tail": "", "duration_ms": 5}),
    ]
}

/// Every location in `v` (pointer), the root included.
fn locations(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, sub) in m {
                locations(sub, format!("{at}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, sub) in a.iter().enumerate() {
                locations(sub, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

fn parent_and_key(ptr: &str) -> Option<(&str, &str)> {
    ptr.rfind('/').map(|i| (&ptr[..i], &ptr[i + 1..]))
}

#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize),
    Remove,
    AddKey,
}

/// Applies `m` at `ptr`; false when it does not apply there.
fn apply(doc: &mut Value, ptr: &str, m: &Mutation, pool: &[Value]) -> bool {
    match m {
        Mutation::Replace(i) => match doc.pointer_mut(ptr) {
            Some(slot) => {
                *slot = pool[i % pool.len()].clone();
                true
            }
            None => false,
        },
        Mutation::Remove => {
            let Some((parent, key)) = parent_and_key(ptr) else {
                return false;
            };
            match doc.pointer_mut(parent) {
                Some(Value::Object(m)) => m.remove(key).is_some(),
                Some(Value::Array(a)) => match key.parse::<usize>() {
                    Ok(i) if i < a.len() => {
                        a.remove(i);
                        true
                    }
                    _ => false,
                },
                _ => false,
            }
        }
        Mutation::AddKey => match doc.pointer_mut(ptr) {
            Some(Value::Object(m)) => {
                m.insert("unexpected_key".into(), json!(1));
                true
            }
            _ => false,
        },
    }
}

fn bases() -> Vec<Value> {
    let mut failed = TaskResult::example();
    failed.status = ResultStatus::Failed;
    failed.error = Some(ResultError {
        kind: "agent_error".into(),
        message: "boom".into(),
        line: None,
        hint: None,
    });
    failed.task_type = None;
    failed.agent = Some(AgentInfo::default());
    failed.attempt_history.push(Attempt {
        attempt: 2,
        started_at: "2026-11-25T10:31:25.000Z".into(),
        finished_at: None,
        outcome: "failed".into(),
        error: Some("exit 1".into()),
        exit_code: Some(-1),
        session_id: None,
        resumed: true,
        node: Some("node-a".into()),
        rounds: Some(2),
    });
    failed.git = None;
    failed.verification.claims.push(Claim {
        text: "I ran the tests".into(),
        status: ClaimStatus::Unbacked,
        evidence: None,
    });
    [TaskResult::example(), rejected(), failed]
        .iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect()
}

/// Every single mutation at every location of three real results.
#[test]
fn agree_on_every_single_mutation() {
    let pool = pool();
    let mut checked = 0;
    let mut invalid = 0;
    for base in bases() {
        assert_eq!(validate_value(&base), Ok(()));
        assert!(agree(&base));
        let mut locs = Vec::new();
        locations(&base, String::new(), &mut locs);
        let mutations: Vec<Mutation> = (0..pool.len())
            .map(Mutation::Replace)
            .chain([Mutation::Remove, Mutation::AddKey])
            .collect();
        for ptr in &locs {
            for m in &mutations {
                let mut doc = base.clone();
                if apply(&mut doc, ptr, m, &pool) {
                    checked += 1;
                    invalid += usize::from(!agree(&doc));
                }
            }
        }
    }
    assert!(checked > 5_000, "{checked}");
    assert!(invalid > checked / 2, "{invalid} of {checked}");
}

/// Integers carry the bounds of their Rust types in the schema: a value the types cannot
/// hold is refused by both, the edges are accepted by both.
#[test]
fn integer_bounds_agree_with_the_types() {
    let mut v = serde_json::to_value(TaskResult::example()).unwrap();
    v["attempts"] = json!(u64::from(u32::MAX) + 1);
    v["attempt_history"][0]["exit_code"] = json!(i64::from(i32::MAX) + 1);
    v["duration_ms"] = json!(1e20);
    assert!(serde_json::from_value::<TaskResult>(v.clone()).is_err());
    let got: Vec<(String, String)> = validate_value(&v)
        .unwrap_err()
        .into_iter()
        .map(|x| (x.pointer, x.keyword))
        .collect();
    for want in [
        ("/attempt_history/0/exit_code", "maximum"),
        ("/attempts", "maximum"),
        ("/duration_ms", "maximum"),
    ] {
        assert!(
            got.contains(&(want.0.to_owned(), want.1.to_owned())),
            "{want:?} not in {got:?}"
        );
    }
    v["attempts"] = json!(u32::MAX);
    v["attempt_history"][0]["exit_code"] = json!(i32::MIN);
    v["duration_ms"] = json!(u64::MAX);
    assert_eq!(validate_value(&v), Ok(()));
    assert!(agree(&v));
}

/// Results written before the fields of DESIGN §10 that came later (`git`, `node`,
/// `rounds`, a criterion's `method` and `check`) still validate.
#[test]
fn results_without_the_later_fields_still_validate() {
    let mut v = serde_json::to_value(TaskResult::example()).unwrap();
    v.as_object_mut().unwrap().remove("git");
    for a in v["attempt_history"].as_array_mut().unwrap() {
        a.as_object_mut().unwrap().remove("node");
        a.as_object_mut().unwrap().remove("rounds");
    }
    for c in v["success_criteria"].as_array_mut().unwrap() {
        c.as_object_mut().unwrap().remove("method");
        c.as_object_mut().unwrap().remove("check");
    }
    v["verification"] = json!({"method": "none", "claims": []});
    assert_eq!(validate_value(&v), Ok(()));
    assert!(agree(&v));
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

fn time() -> impl Strategy<Value = String> {
    (-62_000_000_000_000i64..260_000_000_000_000).prop_map(crate::clock::rfc3339_ms)
}

fn attempt() -> impl Strategy<Value = Attempt> {
    (
        any::<u32>(),
        time(),
        proptest::option::of(time()),
        text(),
        opt_text(),
        proptest::option::of(any::<i32>()),
        opt_text(),
        any::<bool>(),
        (opt_text(), proptest::option::of(any::<u32>())),
    )
        .prop_map(
            |(
                attempt,
                started_at,
                finished_at,
                outcome,
                error,
                exit_code,
                session_id,
                resumed,
                (node, rounds),
            )| {
                Attempt {
                    attempt,
                    started_at,
                    finished_at,
                    outcome,
                    error,
                    exit_code,
                    session_id,
                    resumed,
                    node,
                    rounds,
                }
            },
        )
}

fn agent() -> impl Strategy<Value = AgentInfo> {
    (
        text(),
        opt_text(),
        opt_text(),
        proptest::option::of(any::<u32>()),
        proptest::option::of(0.0f64..1e6),
        proptest::option::of(prop_oneof![
            Just(json!({"input_tokens": 1})),
            Just(json!([1, "x", null])),
            Just(json!("anything")),
        ]),
        proptest::option::of(any::<i32>()),
    )
        .prop_map(
            |(name, version, session_id, num_turns, cost_usd, usage, exit_code)| AgentInfo {
                name,
                version,
                session_id,
                model: None,
                num_turns,
                cost_usd,
                usage,
                exit_code,
            },
        )
}

/// Valid results from the real types, with every part varied.
fn result() -> impl Strategy<Value = TaskResult> {
    let statuses = prop::sample::select(vec![
        ResultStatus::Succeeded,
        ResultStatus::Failed,
        ResultStatus::TimedOut,
        ResultStatus::Cancelled,
        ResultStatus::Rejected,
    ]);
    let criteria = prop::collection::vec(
        (
            text(),
            prop::sample::select(vec![Verdict::Met, Verdict::Unmet, Verdict::Unknown]),
            opt_text(),
            proptest::option::of(prop::sample::select(vec![
                CriterionMethod::Check,
                CriterionMethod::Llm,
                CriterionMethod::None,
            ])),
            proptest::option::of((
                text(),
                proptest::option::of(any::<i32>()),
                any::<bool>(),
                any::<u64>(),
            )),
        )
            .prop_map(|(text, verdict, reason, method, check)| CriterionVerdict {
                check: check.map(|(command, exit_code, timed_out, duration_ms)| CheckRun {
                    output_tail: command.clone(),
                    command,
                    exit_code,
                    timed_out,
                    duration_ms,
                }),
                text,
                verdict,
                reason,
                method,
            }),
        0..3,
    );
    let error = proptest::option::of(
        (
            text(),
            text(),
            proptest::option::of(any::<u64>()),
            opt_text(),
        )
            .prop_map(|(kind, message, line, hint)| ResultError {
                kind,
                message,
                line,
                hint,
            }),
    );
    (
        (
            statuses,
            proptest::option::of(prop::sample::select(TaskType::ALL.to_vec())),
            prop::sample::select(Priority::ALL.to_vec()),
            error,
            proptest::option::of(time()),
            time(),
            proptest::option::of(time()),
            time(),
            any::<u64>(),
            any::<u32>(),
        ),
        (
            prop::collection::vec(attempt(), 0..3),
            criteria,
            proptest::option::of(agent()),
            prop::collection::vec(text(), 0..3),
            prop::sample::select(vec![
                SourceKind::File,
                SourceKind::Cli,
                SourceKind::Telegram,
            ]),
            prop::sample::select(vec![Method::Llm, Method::Rules]),
            prop::sample::select(vec![SummaryMethod::Llm, SummaryMethod::Extract]),
            opt_text(),
            text(),
        ),
    )
        .prop_map(
            |(
                (
                    status,
                    task_type,
                    priority,
                    error,
                    created,
                    received,
                    started,
                    finished,
                    duration,
                    attempts,
                ),
                (history, criteria, agent, files, source, method, summary_method, title, prompt),
            )| {
                let source = TaskSource::new(source, title.clone());
                let routing = Routing {
                    method,
                    model: title.clone(),
                    reason: prompt.clone(),
                    latency_ms: None,
                };
                let summary = Summary {
                    method: summary_method,
                    text: prompt.clone(),
                };
                let verification = Verification {
                    method: VerificationMethod::Events,
                    claims: files
                        .iter()
                        .map(|f| Claim {
                            text: f.clone(),
                            status: ClaimStatus::Unknown,
                            evidence: title.clone(),
                        })
                        .collect(),
                };
                TaskResult {
                    status,
                    task_type,
                    priority,
                    error,
                    created_at: created,
                    received_at: received,
                    started_at: started,
                    finished_at: finished,
                    duration_ms: duration,
                    attempts,
                    attempt_history: history,
                    success_criteria: criteria,
                    agent,
                    changed_files: files.clone(),
                    target_files: files,
                    source,
                    routing,
                    summary,
                    verification,
                    title,
                    prompt,
                    ..TaskResult::example()
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Results built from the real types are valid, and read back whole.
    #[test]
    fn generated_results_are_valid(r in result()) {
        let v = serde_json::to_value(&r).unwrap();
        prop_assert_eq!(validate_value(&v), Ok(()));
        prop_assert!(agree(&v));
    }

    /// Up to five mutations at random places of a generated result: whatever the schema
    /// accepts, the types read whole.
    #[test]
    fn agree_on_mutated_results(
        r in result(),
        edits in prop::collection::vec(
            (any::<prop::sample::Index>(), prop_oneof![
                8 => (0usize..1000).prop_map(Mutation::Replace),
                1 => Just(Mutation::Remove),
                1 => Just(Mutation::AddKey),
            ]),
            1..6,
        ),
    ) {
        let pool = pool();
        let mut v = serde_json::to_value(&r).unwrap();
        for (at, m) in &edits {
            let mut locs = Vec::new();
            locations(&v, String::new(), &mut locs);
            let ptr = at.get(&locs).clone();
            apply(&mut v, &ptr, m, &pool);
        }
        agree(&v);
    }
}

//! Orca's own result validator ([`super::schema_check`], behind [`validate_value`]) against
//! the `jsonschema` crate (draft 2020-12, formats on), the validator it replaced: on valid
//! results built from the real types and on many mutated ones, both must agree on
//! valid/invalid and on the failures, pointer by pointer.
//!
//! Deliberate differences, allowed for here and nowhere else:
//! - integer formats (`uint32`, `uint64`, `int32`) are checked by range; `jsonschema`
//!   ignores them as unknown formats, so an out-of-range integer is valid to it only;
//! - an `enum` of more than three options lists them all, where `jsonschema` shows two
//!   and "or N other candidates".

use proptest::prelude::*;
use serde_json::{json, Value};

use super::result::{
    AgentInfo, Attempt, CriterionVerdict, Method, ResultError, ResultStatus, Routing, SourceKind,
    Summary, SummaryMethod, TaskResult, TaskSource, Verdict, Verification,
};
use super::validate::{truncate_chars, validate_value, Violation, MAX_MESSAGE_CHARS};
use crate::task::{Priority, TaskType};

/// (pointer, keyword, message) of each failure.
type Found = Vec<(String, String, String)>;

fn reference() -> &'static jsonschema::Validator {
    static V: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&super::result::schema())
            .unwrap()
    })
}

/// `jsonschema`'s failures, a nullable sub-object's `anyOf` unfolded into the failures of
/// its non-null branch exactly as Orca's `validate.rs` did while it used `jsonschema`.
fn theirs(v: &Value) -> Found {
    fn collect(e: &jsonschema::ValidationError<'_>, out: &mut Found) {
        if let jsonschema::error::ValidationErrorKind::AnyOf { context } = e.kind() {
            let here = e.instance_path().as_str();
            let real: Vec<_> = context
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
        out.push((
            e.instance_path().as_str().to_owned(),
            e.kind().keyword().to_owned(),
            e.to_string(),
        ));
    }
    let mut out = Vec::new();
    for e in reference().iter_errors(v) {
        collect(&e, &mut out);
    }
    assert_eq!(reference().is_valid(v), out.is_empty(), "{v}");
    out
}

fn is_int_format(v: &Violation) -> bool {
    v.keyword == "format" && v.message.contains("(an integer from ")
}

/// Ours, without the integer-format failures `jsonschema` cannot report.
fn ours(v: &Value) -> Found {
    match validate_value(v) {
        Ok(()) => Vec::new(),
        Err(vs) => vs
            .into_iter()
            .filter(|x| !is_int_format(x))
            .map(|x| (x.pointer, x.keyword, x.message))
            .collect(),
    }
}

/// Asserts that both validators find the same failures, in the same order, with the same
/// messages (but for an `enum` of more than three options, whose message we make longer).
fn agree(v: &Value) {
    let (a, b) = (ours(v), theirs(v));
    let key = |f: &Found| -> Vec<(String, String)> {
        f.iter().map(|(p, k, _)| (p.clone(), k.clone())).collect()
    };
    assert_eq!(
        key(&a),
        key(&b),
        "document: {v}\nours: {a:#?}\ntheirs: {b:#?}"
    );
    for ((_, k, ma), (_, _, mb)) in a.iter().zip(&b) {
        if k == "enum" && mb.contains("other candidates") {
            let head = mb.split(" or ").next().unwrap_or(mb);
            assert!(ma.starts_with(head), "{ma} / {mb}");
        } else {
            let mb = truncate_chars(mb, MAX_MESSAGE_CHARS);
            assert_eq!(ma, &mb, "document: {v}");
        }
    }
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
        TaskSource {
            kind: SourceKind::Telegram,
            user: Some("alice".into()),
        },
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
    });
    [TaskResult::example(), rejected(), failed]
        .iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect()
}

/// Every single mutation at every location of three real results: each pool value in
/// place of each value, each key removed, an unknown key added to each object.
#[test]
fn agree_on_every_single_mutation() {
    let pool = pool();
    let mut checked = 0;
    let mut invalid = 0;
    for base in bases() {
        assert_eq!(validate_value(&base), Ok(()));
        agree(&base);
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
                    agree(&doc);
                    checked += 1;
                    invalid += usize::from(validate_value(&doc).is_err());
                }
            }
        }
    }
    assert!(checked > 5_000, "{checked}");
    assert!(invalid > checked / 2, "{invalid} of {checked}");
}

/// Where the two differ on purpose: an integer out of its format's range.
#[test]
fn integer_formats_are_checked_by_range_where_jsonschema_does_not() {
    let mut v = serde_json::to_value(TaskResult::example()).unwrap();
    v["attempts"] = json!(u64::from(u32::MAX) + 1);
    v["attempt_history"][0]["exit_code"] = json!(i64::from(i32::MAX) + 1);
    v["duration_ms"] = json!(1e20);
    assert!(theirs(&v).is_empty());
    let got: Vec<(String, String)> = validate_value(&v)
        .unwrap_err()
        .into_iter()
        .map(|x| (x.pointer, x.keyword))
        .collect();
    assert_eq!(
        got,
        [
            ("/attempt_history/0/exit_code", "format"),
            ("/attempts", "format"),
            ("/duration_ms", "format"),
        ]
        .map(|(p, k)| (p.to_owned(), k.to_owned()))
    );
    // At the edges, both accept.
    v["attempts"] = json!(u32::MAX);
    v["attempt_history"][0]["exit_code"] = json!(i32::MIN);
    v["duration_ms"] = json!(u64::MAX);
    assert_eq!(validate_value(&v), Ok(()));
    agree(&v);
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
    )
        .prop_map(
            |(attempt, started_at, finished_at, outcome, error, exit_code, session_id, resumed)| {
                Attempt {
                    attempt,
                    started_at,
                    finished_at,
                    outcome,
                    error,
                    exit_code,
                    session_id,
                    resumed,
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
        )
            .prop_map(|(text, verdict, reason)| CriterionVerdict {
                text,
                verdict,
                reason,
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
                let source = TaskSource {
                    kind: source,
                    user: title.clone(),
                };
                let routing = Routing {
                    method,
                    model: title.clone(),
                    reason: prompt.clone(),
                };
                let summary = Summary {
                    method: summary_method,
                    text: prompt.clone(),
                };
                let verification = Verification {
                    method: "none".into(),
                    claims: files.clone(),
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

    /// Results built from the real types are valid to both.
    #[test]
    fn generated_results_are_valid_to_both(r in result()) {
        let v = serde_json::to_value(&r).unwrap();
        prop_assert_eq!(validate_value(&v), Ok(()));
        prop_assert!(theirs(&v).is_empty(), "{}", v);
    }

    /// Up to five mutations at random places of a generated result: both agree.
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

/// Strings shaped like date-times, with every part allowed to be out of range.
fn date_time_like() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[0-9]{4}-(0[0-9]|1[0-3])-([0-3][0-9])[Tt](([01][0-9]|2[0-4]):[0-5][0-9]:[0-6][0-9]|23:59:60)(\\.[0-9]{0,4})?([Zz]|[+-]([01][0-9]|2[0-4]):[0-6][0-9])",
        1 => "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,2})?([Zz]|[+-][0-9]{2}:?[0-9]{2})?",
        1 => "[0-9T:.Z+-]{0,26}",
        1 => "\\PC{0,24}",
    ]
}

/// A number of any kind: small, at the edges of the integer formats, huge, fractional.
fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-3i64..3).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        any::<u32>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (-2.0f64..2.0).prop_map(|x| Value::from(x.round())),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Date-times: both accept and refuse the same strings, at a required and a nullable
    /// place.
    #[test]
    fn agree_on_date_times(s in date_time_like()) {
        let mut v = serde_json::to_value(TaskResult::example()).unwrap();
        v["finished_at"] = s.clone().into();
        v["attempt_history"][0]["finished_at"] = s.into();
        agree(&v);
    }

    /// Numbers at every numeric place (and in the `schema_version` const).
    #[test]
    fn agree_on_numbers(n in number(), at in 0usize..8) {
        let mut v = serde_json::to_value(TaskResult::example()).unwrap();
        let mut e = serde_json::to_value(rejected()).unwrap();
        e["error"]["line"] = n.clone();
        agree(&e);
        let ptr = [
            "/schema_version",
            "/duration_ms",
            "/attempts",
            "/attempt_history/0/attempt",
            "/attempt_history/0/exit_code",
            "/agent/num_turns",
            "/agent/cost_usd",
            "/agent/exit_code",
        ][at];
        if let Some(slot) = v.pointer_mut(ptr) {
            *slot = n;
        }
        agree(&v);
    }
}

//! LLM mediation against fake Ollama and OpenAI-compatible servers (real HTTP on
//! 127.0.0.1, the real wire formats): routing, summaries and verdicts by the LLM, the rules
//! on every failure, the breaker, the concurrency limit, `orca route` and `orca doctor`.

mod common;

use std::time::Duration;

use common::fake_llm::{Api, Call, FakeLlm, Reply};
use common::Ws;
use serde_json::{json, Value};

const MODEL: &str = "llama3.1:8b";

fn ollama_ws(fake: &FakeLlm, extra: &[(&str, &str)]) -> Ws {
    let mut env = vec![
        ("ORCA_LLM".to_owned(), "ollama".to_owned()),
        ("OLLAMA_HOST".to_owned(), fake.url()),
        ("OLLAMA_MODEL".to_owned(), MODEL.to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Ws::new().with_env(env)
}

/// A task file with no type and no priority, in plain words.
fn plain(text: &str) -> String {
    format!("# {text}\n\n**Prompt:**\n{text}\n")
}

fn out_of(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn routing_summary_and_verdicts_by_the_llm() {
    let fake = FakeLlm::start(Api::Ollama, &[MODEL]);
    let mut ws = ollama_ws(&fake, &[]);
    std::fs::create_dir_all(ws.path().join("svc")).unwrap();
    ws.start();
    // Routed by the LLM: type, priority, folder, title and prompt.
    ws.drop_task(
        "plain.task.md",
        "**Prompt:**\nReview the code in /svc, it is urgent\n\n**Success Criteria:**\n- [ ] The review is written\n- [ ] It runs `true`\n",
    );
    let r = ws.wait_result("plain");
    assert_eq!(r["routing"]["method"], "llm", "{r:#}");
    assert_eq!(r["routing"]["model"], MODEL);
    assert!(r["routing"]["latency_ms"].is_u64(), "{r:#}");
    assert_eq!(r["type"], "code_review");
    assert_eq!(r["priority"], "high");
    assert_eq!(r["title"], "LLM title");
    assert_eq!(
        r["prompt"],
        "LLM prompt: Review the code in /svc, it is urgent"
    );
    assert!(
        r["working_dir"].as_str().unwrap().ends_with("/svc"),
        "{r:#}"
    );
    // Summary and the verdict the check did not decide, in one call.
    assert_eq!(r["summary"]["method"], "llm", "{r:#}");
    assert!(r["summary"]["text"]
        .as_str()
        .unwrap()
        .starts_with("LLM summary: the work is done."));
    assert_eq!(r["success_criteria"][0]["method"], "llm", "{r:#}");
    assert_eq!(r["success_criteria"][0]["verdict"], "met");
    assert_eq!(r["success_criteria"][1]["method"], "check", "{r:#}");
    let summaries: Vec<Call> = fake
        .questions()
        .into_iter()
        .filter(Call::is_summary)
        .collect();
    assert_eq!(summaries.len(), 1);
    let asked = summaries[0].user();
    assert!(asked.contains("1. The review is written"), "{asked}");
    assert!(
        !asked.contains("It runs"),
        "a checked criterion is not asked: {asked}"
    );
    assert!(
        asked.contains("Done: LLM prompt"),
        "the agent's output: {asked}"
    );

    // The wire format: non-streaming chat, the schema as `format` and in the prompt,
    // keep_alive; the warm-up (no messages) came first.
    let calls = fake.calls();
    let warm = calls
        .iter()
        .position(|c| c.path == "/api/chat" && c.body["messages"] == json!([]))
        .expect("warm-up");
    let first_q = calls.iter().position(Call::is_question).unwrap();
    assert!(warm < first_q);
    let q = &fake.questions()[0];
    assert_eq!(q.body["stream"], false);
    assert_eq!(q.body["model"], MODEL);
    assert!(q.body["keep_alive"].is_string());
    assert_eq!(
        q.body["format"]["properties"]["priority"]["enum"],
        json!(["high", "medium", "low"])
    );
    assert!(
        q.system().contains("\"priority\""),
        "schema in the prompt: {}",
        q.system()
    );

    // A task whose front matter says everything makes no routing call.
    let before = fake.questions().iter().filter(|c| c.is_routing()).count();
    ws.drop_task(
        "full.task.md",
        "---\ntype: fix\npriority: low\n---\n**Prompt:**\nFix the FULLTASK thing, it is urgent\n",
    );
    let r = ws.wait_result("full");
    let routings: Vec<Call> = fake
        .questions()
        .into_iter()
        .filter(Call::is_routing)
        .collect();
    assert_eq!(
        routings.len(),
        before,
        "no routing call for a complete task"
    );
    assert!(!routings.iter().any(|c| c.user().contains("FULLTASK")));
    assert_eq!(r["routing"]["method"], "rules");
    assert_eq!(
        (r["type"].as_str(), r["priority"].as_str()),
        (Some("fix"), Some("low"))
    );
    assert!(
        ws.events_named("llm_fallback").is_empty(),
        "{}",
        ws.events_text()
    );
    // `orca status` says which LLM the daemon uses.
    let status = out_of(&ws.run(&["status"]));
    assert!(
        status.contains("llm       ORCA_LLM=ollama: Ollama at"),
        "{status}"
    );
    ws.stop();
    let out = ws.daemon_output();
    assert!(
        out.contains("orca: LLM mediation: ORCA_LLM=ollama"),
        "{out}"
    );
}

#[test]
fn a_request_in_plain_words_from_submit_is_routed() {
    let fake = FakeLlm::start(Api::Ollama, &[MODEL]);
    let mut ws = ollama_ws(&fake, &[]);
    ws.start();
    let o = ws.run(&[
        "submit",
        "--id",
        "words",
        "-p",
        "Review the login code, it is urgent",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", out_of(&o));
    let r = ws.wait_result("words");
    ws.stop();
    assert_eq!(r["routing"]["method"], "llm", "{r:#}");
    // The priority was left to routing (submit wrote the default without --priority).
    assert_eq!(
        (r["type"].as_str(), r["priority"].as_str()),
        (Some("code_review"), Some("high"))
    );
    assert_eq!(r["title"], "LLM title");
    let daemon = ws.daemon_output();
    assert!(!daemon.contains("warning"), "{daemon}");
}

#[test]
fn no_agent_slot_waits_for_the_llm_and_the_result_waits_for_it() {
    let fake = FakeLlm::start(Api::Ollama, &[MODEL]);
    fake.answer_with(|c| Reply::Held(Box::new(common::fake_llm::default_answer(c))));
    let mut ws = ollama_ws(&fake, &[("MAX_CONCURRENT_TASKS", "1")]);
    ws.start();
    for i in 0..3 {
        ws.drop_task(
            &format!("s{i}.task.md"),
            "---\ntype: fix\npriority: medium\n---\n**Prompt:**\nDo the thing.\n",
        );
    }
    // One agent slot, the LLM holding every answer: all three agents still run.
    ws.wait_for(
        || ws.events_named("claude_finished").len() == 3,
        "three agents finished while the LLM holds its answers",
    );
    // No result before its mediation ended.
    for i in 0..3 {
        assert!(!ws.result_path(&format!("s{i}")).exists());
    }
    fake.release();
    for i in 0..3 {
        let r = ws.wait_result(&format!("s{i}"));
        assert_eq!(r["summary"]["method"], "llm", "{r:#}");
    }
    ws.stop();
    // The front matter said everything: summaries only, no routing.
    assert!(fake.questions().iter().all(Call::is_summary));
}

#[test]
fn a_folder_outside_the_root_is_refused_and_the_rules_decide() {
    let fake = FakeLlm::start(Api::Ollama, &[MODEL]);
    fake.answer_with(|c| {
        if c.is_routing() {
            Reply::Object(json!({"type": "fix", "priority": "high", "folder": "/etc",
                "title": "T", "prompt": "Fix it now"}))
        } else {
            common::fake_llm::default_answer(c)
        }
    });
    let mut ws = ollama_ws(&fake, &[]);
    std::fs::create_dir_all(ws.path().join("rules/dir")).unwrap();
    ws.start();
    ws.drop_task("out.task.md", &plain("Fix the thing in rules/dir"));
    let r = ws.wait_result("out");
    ws.stop();
    assert_eq!(r["routing"]["method"], "llm", "{r:#}");
    let reason = r["routing"]["reason"].as_str().unwrap();
    assert!(reason.contains("folder '/etc' refused"), "{reason}");
    assert!(
        reason.contains("the rules' folder is used"),
        "{reason}: {r:#}"
    );
    assert!(
        r["working_dir"].as_str().unwrap().ends_with("/rules/dir"),
        "{r:#}"
    );
}

/// A small model copies the prompt's example folder and loses the request when it
/// "cleans" it: a folder the request does not name is refused, and a cleaned prompt that
/// drops most of the request is not used (the request is kept as written).
#[test]
fn a_guessed_folder_and_a_lossy_prompt_are_not_used() {
    let fake = FakeLlm::start(Api::Ollama, &[MODEL]);
    let ws = ollama_ws(&fake, &[]);
    std::fs::create_dir_all(ws.path().join("backend")).unwrap();
    fake.script([Reply::Object(json!({
        "type": "fix", "priority": "high", "folder": "/backend",
        "title": "Login crash", "prompt": "The error occurred.",
    }))]);
    let text = "Fix the crash in the login page, it is urgent";
    let out = ws.run(&["route", "--json", text]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["method"], "llm", "{v:#}");
    assert_eq!(
        (v["type"].as_str(), v["priority"].as_str()),
        (Some("fix"), Some("high"))
    );
    assert_eq!(v["folder"], Value::Null, "{v:#}");
    assert_eq!(v["prompt"], text, "{v:#}");
    assert_eq!(v["title"], "Login crash");
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.contains("folder '/backend' refused (the request does not name it)"),
        "{reason}"
    );
    assert!(
        reason.contains("the request is kept as written"),
        "{reason}"
    );
}

#[test]
fn each_failure_falls_back_to_the_rules_with_llm_fallback() {
    let fake = FakeLlm::start(Api::Ollama, &[MODEL]);
    let mut ws = ollama_ws(&fake, &[("ORCA_LLM_TIMEOUT_SEC", "1")]);
    ws.start();
    let bad =
        json!({"type": "bugfix", "priority": "high", "folder": null, "title": "t", "prompt": "p"});
    let cases: [(&str, Vec<Reply>); 4] = [
        (
            "malformed_json",
            vec![Reply::Text("{not json".into()), Reply::Text("nope".into())],
        ),
        (
            "wrong_shape",
            vec![Reply::Object(bad.clone()), Reply::Object(bad)],
        ),
        (
            "http_error",
            vec![
                Reply::Status(500, "the model failed".into()),
                Reply::Status(500, "the model failed".into()),
            ],
        ),
        (
            "timeout",
            vec![Reply::Slow(
                Duration::from_secs(3),
                Box::new(Reply::Text("{}".into())),
            )],
        ),
    ];
    for (i, (kind, replies)) in cases.into_iter().enumerate() {
        let n = replies.len();
        let asked = fake.questions().len();
        fake.script(replies);
        let stem = format!("t{i}");
        ws.drop_task(
            &format!("{stem}.task.md"),
            &plain("Fix the crash, it is urgent"),
        );
        let r = ws.wait_result(&stem);
        assert_eq!(r["routing"]["method"], "rules", "{kind}: {r:#}");
        let reason = r["routing"]["reason"].as_str().unwrap();
        assert!(
            reason.contains(&format!("the LLM failed ({kind}")),
            "{kind}: {reason}"
        );
        // The rules routed it: keyword and urgency.
        assert_eq!(
            (r["type"].as_str(), r["priority"].as_str()),
            (Some("fix"), Some("high")),
            "{kind}"
        );
        // At most one retry: the scripted answers, then the summary's question.
        assert_eq!(fake.questions().len(), asked + n + 1, "{kind}");
        let fb: Vec<Value> = ws
            .events_named("llm_fallback")
            .into_iter()
            .filter(|e| e["task_id"] == stem.as_str())
            .collect();
        assert_eq!(fb.len(), 1, "{kind}: {fb:?}");
        assert_eq!(fb[0]["reason"], kind);
        assert_eq!(fb[0]["stage"], "routing");
        // The summary call succeeded (and closed the breaker again).
        assert_eq!(r["summary"]["method"], "llm", "{kind}");
    }
    ws.stop();
}

#[test]
fn a_refused_connection_falls_back_and_opens_the_breaker() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut ws = Ws::new().with_env([
        ("ORCA_LLM", "ollama".to_owned()),
        ("OLLAMA_HOST", format!("http://127.0.0.1:{port}")),
    ]);
    ws.start();
    // Each task: a refused routing and a refused summary (two failures).
    ws.drop_task(
        "a.task.md",
        &format!(
            "{}\n**Success Criteria:**\n- [ ] The diff is reviewed\n",
            plain("Review this diff")
        ),
    );
    let a = ws.wait_result("a");
    assert_eq!(a["routing"]["method"], "rules");
    assert!(
        a["routing"]["reason"]
            .as_str()
            .unwrap()
            .contains("(refused"),
        "{a:#}"
    );
    assert_eq!(a["summary"]["method"], "extract", "{a:#}");
    // The verdict says how the LLM failed, not that none is configured.
    let v = &a["success_criteria"][0];
    assert_eq!(
        (v["verdict"].as_str(), v["method"].as_str()),
        (Some("unknown"), Some("none"))
    );
    let why = v["reason"].as_str().unwrap();
    assert!(
        why.starts_with(
            "the LLM could not judge it (refused: connection refused by http://127.0.0.1:"
        ),
        "{why}"
    );
    ws.drop_task("b.task.md", &plain("Review that diff"));
    let b = ws.wait_result("b");
    assert_eq!(b["type"], "code_review");
    // The third failure opened the breaker: the rules decide without trying.
    ws.drop_task("c.task.md", &plain("Review one more diff"));
    let c = ws.wait_result("c");
    assert!(
        c["routing"]["reason"]
            .as_str()
            .unwrap()
            .contains("circuit breaker is open"),
        "{c:#}"
    );
    let reasons: Vec<String> = ws
        .events_named("llm_fallback")
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        reasons.iter().filter(|r| *r == "refused").count() >= 3,
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r == "breaker_open"), "{reasons:?}");
    let status = out_of(&ws.run(&["status"]));
    assert!(status.contains("circuit breaker open"), "{status}");
    ws.stop();
}

#[test]
fn calls_never_exceed_the_concurrency_limit() {
    let fake = FakeLlm::start(Api::Ollama, &[MODEL]);
    fake.answer_with(|c| {
        Reply::Slow(
            Duration::from_millis(150),
            Box::new(common::fake_llm::default_answer(c)),
        )
    });
    let mut ws = ollama_ws(
        &fake,
        &[("ORCA_LLM_CONCURRENCY", "2"), ("MAX_CONCURRENT_TASKS", "6")],
    );
    ws.start();
    for i in 0..6 {
        ws.drop_task(&format!("c{i}.task.md"), &plain("Look at the design"));
    }
    for i in 0..6 {
        let r = ws.wait_result(&format!("c{i}"));
        assert_eq!(r["routing"]["method"], "llm", "{r:#}");
    }
    ws.stop();
    assert_eq!(fake.questions().len(), 12);
    assert!(fake.max_in_flight() <= 2, "{}", fake.max_in_flight());
    assert!(fake.max_in_flight() >= 1);
}

/// A burst of plain-words tasks: the LLM routes while fewer routings than agent slots wait
/// for it; the rules route the rest at once (`busy`), so their agents run while the LLM is
/// still holding its answers.
#[test]
fn a_burst_beyond_one_routing_per_slot_is_routed_by_the_rules() {
    let fake = FakeLlm::start(Api::Ollama, &[MODEL]);
    fake.answer_with(|c| Reply::Held(Box::new(common::fake_llm::default_answer(c))));
    let mut ws = ollama_ws(
        &fake,
        &[("MAX_CONCURRENT_TASKS", "2"), ("ORCA_LLM_CONCURRENCY", "2")],
    );
    ws.start();
    for i in 0..5 {
        ws.drop_task(&format!("b{i}.task.md"), &plain("Look at the design"));
    }
    // Three agents ran though the LLM has answered nothing yet.
    ws.wait_for(|| ws.agent_starts().len() >= 3, "three agents to start");
    fake.wait("the two routings", |c| {
        c.iter().filter(|c| c.is_routing()).count() >= 2
    });
    let routings = fake.questions().iter().filter(|c| c.is_routing()).count();
    assert_eq!(
        routings,
        2,
        "one routing per agent slot: {:#?}",
        fake.questions()
    );
    fake.release();
    let results: Vec<Value> = (0..5).map(|i| ws.wait_result(&format!("b{i}"))).collect();
    ws.stop();
    let by = |m: &str| {
        results
            .iter()
            .filter(|r| r["routing"]["method"] == m)
            .count()
    };
    assert_eq!((by("llm"), by("rules")), (2, 3), "{results:#?}");
    for r in results.iter().filter(|r| r["routing"]["method"] == "rules") {
        let reason = r["routing"]["reason"].as_str().unwrap();
        assert!(
            reason.starts_with(
                "the LLM was not asked (busy: the LLM is busy: 2 routings already wait for it"
            ),
            "{reason}"
        );
        assert_eq!(
            r["summary"]["method"], "llm",
            "the summary is still the LLM's: {r:#}"
        );
    }
    let busy = ws
        .events_named("llm_fallback")
        .iter()
        .filter(|e| e["reason"] == "busy" && e["stage"] == "routing")
        .count();
    assert_eq!(busy, 3);
}

#[test]
fn the_openai_path_negotiates_the_format_and_never_shows_the_key() {
    const KEY: &str = "sk-test-SECRETKEY-1234567890";
    let fake = FakeLlm::start(Api::OpenAi, &["smollm2"]);
    fake.refuse_json_schema();
    let mut ws = Ws::new().with_env([
        ("ORCA_LLM", "openai"),
        ("OPENAI_BASE_URL", fake.url().as_str()),
        ("OPENAI_API_KEY", KEY),
        ("ORCA_LLM_MODEL", "smollm2"),
    ]);
    // doctor: reachable, model present, the test call and the format that worked.
    let doctor = out_of(&ws.run(&["doctor"]));
    assert!(doctor.contains("OpenAI-compatible server at"), "{doctor}");
    assert!(doctor.contains("model smollm2 present"), "{doctor}");
    assert!(
        doctor.contains("a schema-constrained test call answered in"),
        "{doctor}"
    );
    assert!(
        doctor.contains("asked with response_format json_object with the schema"),
        "{doctor}"
    );
    ws.start();
    ws.drop_task("o.task.md", &plain("Review the login code, it is urgent"));
    let r = ws.wait_result("o");
    ws.stop();
    assert_eq!(r["routing"]["method"], "llm", "{r:#}");
    assert_eq!(r["routing"]["model"], "smollm2");
    assert_eq!(r["summary"]["method"], "llm", "{r:#}");
    let q = fake.questions();
    assert!(q
        .iter()
        .all(|c| c.header("authorization") == Some(&format!("Bearer {KEY}"))));
    // json_schema was refused once per process, then json_object with the schema.
    let last = q.last().unwrap();
    assert_eq!(last.body["response_format"]["type"], "json_object");
    assert!(last.body["response_format"]["schema"].is_object());
    // The key is in no file Orca wrote, nor in what it printed.
    assert!(!doctor.contains(KEY));
    for entry in walk(ws.path()) {
        if entry.ends_with(".env") {
            continue;
        }
        let bytes = std::fs::read(&entry).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(KEY), "the key is in {}", entry.display());
    }
}

/// A server that knows neither `json_schema` (422, a validation error) nor `json_object`
/// (400): Orca falls to JSON described in the prompt, checks the answer all the same, and
/// `doctor` says so; a server that refuses for another reason gets no second format.
#[test]
fn a_server_refusing_both_formats_is_asked_in_the_prompt_and_still_validated() {
    let fake = FakeLlm::start(Api::OpenAi, &["smollm2"]);
    fake.refuse_formats(
        422,
        r#"[{"type":"literal_error","loc":["body","response_format","type"],"msg":"Input should be 'text'"}]"#,
        &["json_schema", "json_object"],
    );
    let ws = Ws::new().with_env([
        ("ORCA_LLM", "openai"),
        ("OPENAI_BASE_URL", fake.url().as_str()),
        ("ORCA_LLM_MODEL", "smollm2"),
    ]);
    let doctor = out_of(&ws.run(&["doctor"]));
    assert!(
        doctor.contains("asked with JSON described in the prompt"),
        "{doctor}"
    );
    // One process: json_schema and json_object once each, then the prompt from then on.
    let out = ws.run(&["route", "--json", "Fix the login crash, it is urgent"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["method"], "llm", "{v:#}");
    let asked: Vec<String> = fake
        .questions()
        .iter()
        .skip(3)
        .map(|c| {
            c.body["response_format"]["type"]
                .as_str()
                .unwrap_or("none")
                .to_owned()
        })
        .collect();
    assert_eq!(asked, ["json_schema", "json_object", "none"]);
    let last = fake.questions().pop().unwrap();
    assert!(last.system().contains("\"priority\""), "{}", last.system());

    // The prompt-only answer is checked like any other: a wrong shape falls to the rules.
    fake.script([
        Reply::Object(json!({"type": "bugfix", "priority": "now"})),
        Reply::Object(json!({"type": "bugfix", "priority": "now"})),
    ]);
    let out = ws.run(&["route", "--json", "Fix the login crash, it is urgent"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["method"], "rules", "{v:#}");
    assert!(
        v["fallback"].as_str().unwrap().starts_with("wrong_shape"),
        "{v:#}"
    );

    // A 400 that is not about the format is an error, not a reason to try another format.
    let other = FakeLlm::start(Api::OpenAi, &["smollm2"]);
    other.refuse_formats(400, "the prompt is too long", &["json_schema"]);
    let ws = Ws::new().with_env([
        ("ORCA_LLM", "openai"),
        ("OPENAI_BASE_URL", other.url().as_str()),
        ("ORCA_LLM_MODEL", "smollm2"),
    ]);
    let out = ws.run(&["route", "--json", "Fix the login crash, it is urgent"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["method"], "rules", "{v:#}");
    assert!(
        v["fallback"]
            .as_str()
            .unwrap()
            .contains("the prompt is too long"),
        "{v:#}"
    );
    let asked: Vec<Value> = other
        .questions()
        .iter()
        .map(|c| c.body["response_format"]["type"].clone())
        .collect();
    assert_eq!(asked, [json!("json_schema")], "no other format tried");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_model_that_is_not_pulled_says_how_to_pull_it() {
    let fake = FakeLlm::start(Api::Ollama, &["other:latest"]);
    // auto: /api/tags answers without the model: the rules, and the fix.
    let ws = Ws::new().with_env([("ORCA_LLM", "auto".to_owned()), ("OLLAMA_HOST", fake.url())]);
    let doctor = out_of(&ws.run(&["doctor"]));
    assert!(doctor.contains("`ollama pull llama3.1:8b`"), "{doctor}");
    let route = out_of(&ws.run(&["route", "Fix the crash"]));
    assert!(route.contains("method    rules"), "{route}");
    assert!(route.contains("ollama pull llama3.1:8b"), "{route}");
    // ollama: the chat answers 404, the rules decide and say the fix.
    let ws = Ws::new().with_env([
        ("ORCA_LLM", "ollama".to_owned()),
        ("OLLAMA_HOST", fake.url()),
    ]);
    let o = ws.run(&["route", "--json", "Fix the crash"]);
    assert_eq!(o.status.code(), Some(0), "{}", out_of(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["method"], "rules");
    assert!(
        v["fallback"].as_str().unwrap().starts_with("model_missing"),
        "{v:#}"
    );
    assert!(
        v["fallback"]
            .as_str()
            .unwrap()
            .contains("`ollama pull llama3.1:8b`"),
        "{v:#}"
    );
    let doctor = out_of(&ws.run(&["doctor"]));
    assert!(
        doctor.contains("model llama3.1:8b is not pulled"),
        "{doctor}"
    );
    assert!(doctor.contains("fix: ollama pull llama3.1:8b"), "{doctor}");
}

#[test]
fn route_prints_what_routing_makes_of_a_sentence() {
    let fake = FakeLlm::start(Api::Ollama, &[MODEL]);
    let ws = ollama_ws(&fake, &[]);
    std::fs::create_dir_all(ws.path().join("backend")).unwrap();
    let o = ws.run(&[
        "route",
        "--json",
        "Review the code in /backend, it is urgent",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", out_of(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["method"], "llm", "{v:#}");
    assert_eq!(v["type"], "code_review");
    assert_eq!(v["priority"], "high");
    assert_eq!(v["folder"], "backend", "{v:#}");
    assert_eq!(v["title"], "LLM title");
    // The rules: keywords and "in <path>".
    let ws = Ws::new();
    std::fs::create_dir_all(ws.path().join("services/api")).unwrap();
    let o = ws.run(&["route", "Fix the crash in services/api, it is urgent"]);
    let text = out_of(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    for want in [
        "method    rules",
        "type      fix",
        "priority  high",
        "folder    services/api",
        "llm       ORCA_LLM=off",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
}

#[test]
fn doctor_checks_ollama() {
    let fake = FakeLlm::start(Api::Ollama, &[MODEL]);
    let ws = ollama_ws(&fake, &[]);
    let doctor = out_of(&ws.run(&["doctor"]));
    assert!(
        doctor.contains("ok    Ollama at http://127.0.0.1:"),
        "{doctor}"
    );
    assert!(
        doctor.contains("reachable (version 0.0.0-fake)"),
        "{doctor}"
    );
    assert!(
        doctor.contains("ok    model llama3.1:8b present"),
        "{doctor}"
    );
    assert!(
        doctor.contains("ok    a schema-constrained test call answered in"),
        "{doctor}"
    );
    assert_eq!(fake.questions().len(), 1);
}

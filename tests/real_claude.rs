//! Runs the REAL Claude Code CLI (pinned, see scripts/install-claude-code.sh) against `fake_anthropic`.
//! Owns: proof that the fake speaks the protocol the CLI accepts (answers, tools, errors, retries, timeouts, resume).

mod fake_anthropic;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fake_anthropic::{
    claude_bin, claude_env, locate_claude, FakeAnthropic, Reply, FAKE_INPUT_TOKENS,
    FAKE_OUTPUT_TOKENS,
};
use serde_json::{json, Value};
use tempfile::TempDir;

/// Kill a CLI run that takes longer than this (a hung test is worse than a failed one).
const RUN_DEADLINE: Duration = Duration::from_secs(45);

/// A temp HOME and a temp working folder for one or more CLI runs.
struct Sandbox {
    home: TempDir,
    work: TempDir,
}

struct Run {
    rc: Option<i32>,
    stdout: String,
    stderr: String,
    lines: Vec<Value>,
}

impl Run {
    fn result(&self) -> &Value {
        let last = self
            .lines
            .last()
            .unwrap_or_else(|| panic!("no stdout lines; stderr: {}", self.stderr));
        assert_eq!(
            last["type"], "result",
            "last line is not a result line:\n{}\nstderr: {}",
            self.stdout, self.stderr
        );
        last
    }

    fn init(&self) -> &Value {
        let first = &self.lines[0];
        assert_eq!(first["type"], "system");
        assert_eq!(first["subtype"], "init");
        first
    }

    fn context(&self) -> String {
        format!(
            "rc={:?}\nstdout:\n{}\nstderr:\n{}",
            self.rc, self.stdout, self.stderr
        )
    }
}

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox {
            home: TempDir::new().unwrap(),
            work: TempDir::new().unwrap(),
        }
    }

    /// The working folder, canonical (the CLI reports and writes canonical paths).
    fn work(&self) -> PathBuf {
        self.work.path().canonicalize().unwrap()
    }

    /// Runs `claude -p --output-format stream-json --verbose --dangerously-skip-permissions <args>` with `prompt` on stdin.
    fn run(&self, fake: &FakeAnthropic, prompt: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(claude_bin());
        cmd.args([
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--dangerously-skip-permissions",
        ])
        .args(args)
        .current_dir(self.work())
        .env_clear()
        .envs(claude_env(self.home.path(), &fake.url()))
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(prompt.as_bytes()).unwrap();
        drop(stdin);
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let out_t = std::thread::spawn(move || {
            let mut s = String::new();
            out.read_to_string(&mut s).unwrap();
            s
        });
        let err_t = std::thread::spawn(move || {
            let mut s = String::new();
            err.read_to_string(&mut s).unwrap();
            s
        });
        let started = Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if started.elapsed() > RUN_DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "claude did not finish within {RUN_DEADLINE:?}; stderr so far: {:?}",
                    err_t.join().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = out_t.join().unwrap();
        let stderr = err_t.join().unwrap();
        let lines = stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"))
            })
            .collect();
        Run {
            rc: status.code(),
            stdout,
            stderr,
            lines,
        }
    }
}

fn retries(n: &'static str) -> (&'static str, &'static str) {
    ("CLAUDE_CODE_MAX_RETRIES", n)
}

#[test]
fn plain_answer_gives_a_successful_result_and_the_request_carries_key_prompt_and_beta_query() {
    let fake = FakeAnthropic::start(vec![Reply::text("Hello from fake.")]);
    let sb = Sandbox::new();
    let run = sb.run(&fake, "say hello please", &[], &[]);
    assert_eq!(run.rc, Some(0), "{}", run.context());

    let init = run.init();
    assert_eq!(init["cwd"], sb.work().display().to_string());
    assert_eq!(init["apiKeySource"], "ANTHROPIC_API_KEY");
    assert_eq!(init["permissionMode"], "bypassPermissions");
    assert_eq!(
        init["claude_code_version"],
        fake_anthropic::CLAUDE_CODE_VERSION
    );

    let r = run.result();
    assert_eq!(r["subtype"], "success", "{}", run.context());
    assert_eq!(r["is_error"], false);
    assert_eq!(r["result"], "Hello from fake.");
    assert_eq!(r["num_turns"], 1);
    assert_eq!(r["stop_reason"], "end_turn");
    assert_eq!(r["session_id"], init["session_id"]);
    assert!(r["session_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(
        r["total_cost_usd"].as_f64().unwrap() > 0.0,
        "{}",
        run.context()
    );
    assert_eq!(r["usage"]["input_tokens"], FAKE_INPUT_TOKENS);
    assert_eq!(r["usage"]["output_tokens"], FAKE_OUTPUT_TOKENS);

    let assistant: Vec<&Value> = run
        .lines
        .iter()
        .filter(|l| l["type"] == "assistant")
        .collect();
    assert_eq!(assistant.len(), 1);
    assert_eq!(
        assistant[0]["message"]["content"][0]["text"],
        "Hello from fake."
    );

    let all = fake.requests();
    assert!(
        all.iter().any(|q| q.method == "HEAD" && q.path == "/"),
        "connectivity probe: {all:#?}"
    );
    let posts = fake.messages_requests();
    assert_eq!(posts.len(), 1, "{all:#?}");
    let p = &posts[0];
    assert_eq!(p.path, "/v1/messages?beta=true");
    assert_eq!(p.header("x-api-key"), Some("sk-test"));
    assert_eq!(p.header("anthropic-version"), Some("2023-06-01"));
    assert!(p.is_streaming());
    assert!(
        p.user_text().contains("say hello please"),
        "{}",
        p.user_text()
    );
    assert!(p.body["tools"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t["name"] == "Write")));
    assert_eq!(
        p.header("x-claude-code-session-id"),
        r["session_id"].as_str()
    );
}

#[test]
fn write_tool_use_creates_the_file_then_answers() {
    let sb = Sandbox::new();
    let target = sb.work().join("hello.txt");
    let fake = FakeAnthropic::start(vec![
        Reply::tool(
            "Write",
            json!({"file_path": target.display().to_string(), "content": "written by fake\n"}),
        ),
        Reply::text("File written."),
    ]);
    let run = sb.run(&fake, "write hello.txt", &[], &[]);
    assert_eq!(run.rc, Some(0), "{}", run.context());
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "written by fake\n"
    );
    let r = run.result();
    assert_eq!(r["is_error"], false);
    assert_eq!(r["result"], "File written.");
    assert_eq!(r["num_turns"], 2);
    assert_eq!(r["usage"]["output_tokens"], 2 * FAKE_OUTPUT_TOKENS);

    let posts = fake.messages_requests();
    assert_eq!(posts.len(), 2);
    let last_user = posts[1]
        .messages()
        .into_iter()
        .rev()
        .find(|m| m["role"] == "user")
        .unwrap();
    let tool_result = last_user["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_result")
        .unwrap()
        .clone();
    assert_eq!(tool_result["tool_use_id"], "toolu_fake_0001");
    assert!(
        tool_result["content"].to_string().contains("hello.txt"),
        "{tool_result}"
    );
    assert!(run
        .lines
        .iter()
        .any(|l| l["type"] == "user" && l["tool_use_result"]["type"] == "create"));
}

#[test]
fn bash_tool_use_runs_the_command_in_the_working_folder() {
    let sb = Sandbox::new();
    let fake = FakeAnthropic::start(vec![
        Reply::tool(
            "Bash",
            json!({"command": "echo hi > made_by_bash.txt", "description": "make a file"}),
        ),
        Reply::text("Done with bash."),
    ]);
    let run = sb.run(&fake, "run a command", &[], &[]);
    assert_eq!(run.rc, Some(0), "{}", run.context());
    assert_eq!(
        std::fs::read_to_string(sb.work().join("made_by_bash.txt")).unwrap(),
        "hi\n"
    );
    assert_eq!(run.result()["result"], "Done with bash.");
    assert_eq!(run.result()["num_turns"], 2);
}

fn assert_persistent_status_fails_after_one_retry(status: u16) {
    let fake = FakeAnthropic::start(vec![Reply::error(status, format!("fake {status}"))]);
    let sb = Sandbox::new();
    let run = sb.run(&fake, "hi", &[], &[retries("1")]);
    assert_eq!(run.rc, Some(1), "{}", run.context());
    let r = run.result();
    assert_eq!(r["is_error"], true);
    assert_eq!(r["api_error_status"], status, "{}", run.context());
    assert_eq!(fake.messages_requests().len(), 2, "one try plus one retry");
    let retry = run
        .lines
        .iter()
        .find(|l| l["subtype"] == "api_retry")
        .unwrap_or_else(|| panic!("{}", run.context()));
    assert_eq!(retry["error_status"], status);
    assert_eq!(retry["attempt"], 1);
}

#[test]
fn persistent_500_is_retried_once_then_fails() {
    assert_persistent_status_fails_after_one_retry(500);
}

#[test]
fn persistent_529_overloaded_is_retried_once_then_fails() {
    assert_persistent_status_fails_after_one_retry(529);
}

#[test]
fn status_401_fails_with_authentication_error_text() {
    let fake = FakeAnthropic::start(vec![Reply::error(401, "invalid x-api-key")]);
    let sb = Sandbox::new();
    let run = sb.run(&fake, "hi", &[], &[]);
    assert_eq!(run.rc, Some(1), "{}", run.context());
    let r = run.result();
    assert_eq!(r["is_error"], true);
    assert_eq!(r["api_error_status"], 401);
    assert_eq!(
        r["result"],
        "Invalid API key · Fix external API key",
        "{}",
        run.context()
    );
    let synthetic = run.lines.iter().find(|l| l["type"] == "assistant").unwrap();
    assert_eq!(synthetic["error"], "authentication_failed");
    assert_eq!(synthetic["message"]["model"], "<synthetic>");
    assert_eq!(fake.messages_requests().len(), 1);
}

#[test]
fn tool_use_forever_hits_max_turns() {
    let sb = Sandbox::new();
    let target = sb.work().join("loop.txt");
    let fake = FakeAnthropic::start(vec![Reply::tool(
        "Write",
        json!({"file_path": target.display().to_string(), "content": "again\n"}),
    )
    .forever()]);
    let run = sb.run(&fake, "loop", &["--max-turns", "2"], &[]);
    assert_eq!(run.rc, Some(1), "{}", run.context());
    let r = run.result();
    assert_eq!(r["subtype"], "error_max_turns", "{}", run.context());
    assert_eq!(r["is_error"], true);
    assert!(
        r["errors"]
            .to_string()
            .contains("Reached maximum number of turns (2)"),
        "{}",
        run.context()
    );
    assert_eq!(fake.messages_requests().len(), 2);
}

#[test]
fn hanging_api_times_out() {
    let fake = FakeAnthropic::start(vec![Reply::Hang]);
    let sb = Sandbox::new();
    let run = sb.run(
        &fake,
        "hi",
        &[],
        &[retries("0"), ("API_TIMEOUT_MS", "2000")],
    );
    assert_eq!(run.rc, Some(1), "{}", run.context());
    let r = run.result();
    assert_eq!(r["is_error"], true);
    assert!(
        r["result"].as_str().unwrap().contains("Request timed out"),
        "{}",
        run.context()
    );
    assert_eq!(fake.messages_requests().len(), 1);
}

#[test]
fn resume_continues_the_session_with_earlier_messages() {
    let sb = Sandbox::new();
    let fake = FakeAnthropic::start(vec![
        Reply::text("first answer"),
        Reply::text("second answer"),
    ]);
    let first = sb.run(&fake, "first prompt", &[], &[]);
    assert_eq!(first.rc, Some(0), "{}", first.context());
    let sid = first.result()["session_id"].as_str().unwrap().to_string();

    let second = sb.run(&fake, "second prompt", &["--resume", &sid], &[]);
    assert_eq!(second.rc, Some(0), "{}", second.context());
    assert_eq!(second.result()["result"], "second answer");
    assert_eq!(second.result()["session_id"], sid.as_str());

    let posts = fake.messages_requests();
    assert_eq!(posts.len(), 2);
    let msgs = posts[1].messages();
    let all = serde_json::to_string(&msgs).unwrap();
    assert!(
        all.contains("first prompt")
            && all.contains("first answer")
            && all.contains("second prompt"),
        "{all}"
    );
    assert!(msgs
        .iter()
        .any(|m| m["role"] == "assistant" && m.to_string().contains("first answer")));
}

#[test]
fn malformed_stream_falls_back_to_a_non_streaming_request() {
    let fake = FakeAnthropic::start(vec![Reply::Malformed, Reply::text("recovered")]);
    let sb = Sandbox::new();
    let run = sb.run(&fake, "hi", &[], &[]);
    assert_eq!(run.rc, Some(0), "{}", run.context());
    assert_eq!(run.result()["result"], "recovered");
    assert_eq!(run.result()["is_error"], false);
    let modes: Vec<bool> = fake
        .messages_requests()
        .iter()
        .map(|p| p.is_streaming())
        .collect();
    assert_eq!(
        modes,
        [true, false],
        "a streamed try, then the non-streaming fallback"
    );
    assert!(
        run.stderr.contains("Could not parse message into JSON"),
        "{}",
        run.context()
    );
}

#[test]
fn malformed_forever_fails_the_run() {
    let fake = FakeAnthropic::start(vec![Reply::Malformed]);
    let sb = Sandbox::new();
    let run = sb.run(&fake, "hi", &[], &[]);
    assert_eq!(run.rc, Some(1), "{}", run.context());
    let r = run.result();
    assert_eq!(r["is_error"], true, "{}", run.context());
    assert_eq!(r["result"], "API Error: Failed to parse JSON");
    assert_eq!(r["api_error_status"], Value::Null);
    let modes: Vec<bool> = fake
        .messages_requests()
        .iter()
        .map(|p| p.is_streaming())
        .collect();
    assert_eq!(
        modes,
        [true, false],
        "a streamed try, then the non-streaming fallback"
    );
}

#[test]
fn status_429_with_retry_after_waits_that_long() {
    let fake = FakeAnthropic::start(vec![
        Reply::error_retry_after(429, "slow down", 1),
        Reply::text("after the wait"),
    ]);
    let sb = Sandbox::new();
    let run = sb.run(&fake, "hi", &[], &[retries("1")]);
    assert_eq!(run.rc, Some(0), "{}", run.context());
    assert_eq!(run.result()["result"], "after the wait");
    let retry = run
        .lines
        .iter()
        .find(|l| l["subtype"] == "api_retry")
        .unwrap_or_else(|| panic!("{}", run.context()));
    assert_eq!(retry["error_status"], 429);
    assert_eq!(retry["error"], "rate_limit");
    assert_eq!(retry["retry_delay_ms"].as_f64(), Some(1000.0), "{retry}");
    assert_eq!(fake.messages_requests().len(), 2);
}

#[test]
fn missing_binary_fails_with_the_install_hint() {
    let err = locate_claude(Some(Path::new("/nonexistent/claude").into())).unwrap_err();
    assert!(
        err.contains("scripts/install-claude-code.sh") && err.contains("/nonexistent/claude"),
        "{err}"
    );
    let default = locate_claude(None);
    let expected = fake_anthropic::repo_root().join(".tools/claude-code/node_modules/.bin/claude");
    match default {
        Ok(p) => assert_eq!(p, expected),
        Err(e) => assert!(e.contains(&expected.display().to_string()), "{e}"),
    }
}

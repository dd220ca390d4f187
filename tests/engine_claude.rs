//! `orca run` with the REAL Claude Code CLI (pinned, see scripts/install-claude-code.sh) against
//! the fake Anthropic API: results, changed files, retries, timeouts, live progress, resume, doctor.

mod common;
mod fake_anthropic;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{alive, Ws};
use fake_anthropic::{
    claude_bin, claude_env, running_as_root, FakeAnthropic, Reply, CLAUDE_CODE_VERSION,
    FAKE_INPUT_TOKENS,
};
use serde_json::{json, Value};

/// A workspace whose daemon runs the real CLI against `fake`, with state under a temp HOME.
struct Rig {
    ws: Ws,
    fake: FakeAnthropic,
    _home: tempfile::TempDir,
}

impl Rig {
    /// `extra` overrides the defaults (CLAUDE_CODE_MAX_RETRIES=0, API_TIMEOUT_MS=3000, quick
    /// Orca retries). IS_SANDBOX is NOT given: the runner must set it itself as root.
    fn start(script: Vec<Reply>, extra: &[(&str, &str)]) -> Rig {
        Rig::launch(Ws::new(), script, extra)
    }

    /// Like [`Rig::start`] on a workspace prepared by the test (files, paths for the script).
    fn launch(ws: Ws, script: Vec<Reply>, extra: &[(&str, &str)]) -> Rig {
        let fake = FakeAnthropic::start(script);
        let home = tempfile::tempdir().unwrap();
        let mut env: Vec<(String, String)> = claude_env(home.path(), &fake.url())
            .into_iter()
            .filter(|(k, _)| k != "IS_SANDBOX")
            .collect();
        env.push(("CLAUDE_BIN".into(), claude_bin().display().to_string()));
        env.push(("ORCA_RETRY_BASE_MS".into(), "50".into()));
        for (k, v) in extra {
            env.push((k.to_string(), v.to_string()));
        }
        let mut ws = ws.with_env(env);
        ws.start();
        Rig {
            ws,
            fake,
            _home: home,
        }
    }

    /// The workspace root with symlinks resolved (what the agent sees as its cwd).
    fn root(&self) -> PathBuf {
        self.ws.path().canonicalize().unwrap()
    }

    fn result(&self, stem: &str) -> Value {
        let r = self.ws.wait_result(stem);
        self.ws.wait_archived(r["task_id"].as_str().unwrap());
        r
    }
}

/// The result's changed_files without the harness's own file in the workspace root
/// (`daemon.out`, the daemon's stdout, which grows during the run).
fn changed(r: &Value) -> Vec<String> {
    r["changed_files"]
        .as_array()
        .unwrap_or_else(|| panic!("no changed_files: {r:#}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .filter(|f| f != "daemon.out")
        .collect()
}

fn task(front: &str, prompt: &str) -> String {
    format!("---\n{front}\n---\n\n# Test task\n\n**Prompt:**\n{prompt}\n")
}

fn git(dir: &Path, args: &[&str]) {
    let st = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git is needed for this test");
    assert!(st.status.success(), "git {args:?}: {st:?}");
}

/// Processes whose cwd is `dir` (the agent and anything it started there).
fn processes_in(dir: &Path) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| alive(*pid))
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd"))
                .ok()
                .as_deref()
                == Some(dir)
        })
        .collect()
}

#[test]
fn an_analyze_task_succeeds_with_the_cli_data_in_the_result() {
    let rig = Rig::start(vec![Reply::text("The module is fine.")], &[]);
    rig.ws.drop_task(
        "look.task.md",
        &task("type: analyze", "Have a look at the module."),
    );
    let r = rig.result("look");
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(r["output"], "The module is fine.");
    let a = &r["agent"];
    assert_eq!(a["name"], "claude");
    assert_eq!(a["version"], CLAUDE_CODE_VERSION, "agent.version: {a:#}");
    assert!(
        a["session_id"].as_str().is_some_and(|s| s.len() >= 8),
        "{a:#}"
    );
    assert_eq!(a["num_turns"], 1);
    assert!(a["cost_usd"].as_f64().is_some_and(|c| c > 0.0), "{a:#}");
    assert_eq!(a["usage"]["input_tokens"], FAKE_INPUT_TOKENS);
    assert!(
        a["model"]
            .as_str()
            .is_some_and(|m| m.starts_with("claude-")),
        "{a:#}"
    );
    assert_eq!(a["exit_code"], 0);
    assert_eq!(changed(&r), Vec::<String>::new());
    // The prompt reached the API, and the raw stream was kept.
    let posts = rig.fake.messages_requests();
    assert_eq!(posts.len(), 1);
    assert!(posts[0].user_text().contains("Have a look at the module."));
    let transcript = rig.ws.path().join(r["transcript"].as_str().unwrap());
    let raw = std::fs::read_to_string(transcript).unwrap();
    assert!(raw.contains("\"claude_code_version\""));
    let started = rig.ws.events_named("claude_finished");
    assert_eq!(started[0]["session_id"], a["session_id"]);
}

#[test]
fn a_fix_task_in_a_git_repository_edits_the_file_and_lists_it() {
    // The working folder is a git repository inside the workspace.
    let ws = Ws::new();
    let repo = ws.path().canonicalize().unwrap().join("backend");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("db.py"), "timeout = 1\n").unwrap();
    std::fs::write(repo.join("README"), "untouched\n").unwrap();
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "init"]);
    std::fs::write(repo.join("dirty.txt"), "dirty before the run\n").unwrap();
    let db = repo.join("db.py");
    let rig = Rig::launch(
        ws,
        vec![
            Reply::tool("Read", json!({"file_path": db})),
            Reply::tool(
                "Edit",
                json!({"file_path": db, "old_string": "timeout = 1", "new_string": "timeout = 30"}),
            ),
            Reply::text("Raised the timeout."),
        ],
        &[("CLAUDE_SKIP_PERMISSIONS", "true")],
    );
    let ws = &rig.ws;
    ws.drop_task(
        "fix.task.md",
        &task(
            "type: fix\nworking_dir: backend",
            "Raise the timeout in db.py.",
        ),
    );
    let r = ws.wait_result("fix");
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(
        std::fs::read_to_string(repo.join("db.py")).unwrap(),
        "timeout = 30\n"
    );
    assert_eq!(r["changed_files"], json!(["db.py"]), "{r:#}");
    assert_eq!(r["agent"]["num_turns"], 3);
    assert_eq!(r["working_dir"], repo.display().to_string());
    ws.wait_archived("fix");
}

#[test]
fn a_fix_task_in_a_plain_folder_writes_the_file_even_as_root() {
    // Working folder = the workspace root: Orca's own folders stay out of changed_files.
    let ws = Ws::new();
    let root = ws.path().canonicalize().unwrap();
    let rig = Rig::launch(
        ws,
        vec![
            Reply::tool(
                "Write",
                json!({"file_path": root.join("hello.txt"), "content": "written by the agent\n"}),
            ),
            Reply::text("Wrote hello.txt."),
        ],
        &[("CLAUDE_SKIP_PERMISSIONS", "true")],
    );
    let ws = &rig.ws;
    ws.drop_task("write.task.md", &task("type: fix", "Write hello.txt."));
    let r = ws.wait_result("write");
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(
        std::fs::read_to_string(root.join("hello.txt")).unwrap(),
        "written by the agent\n"
    );
    assert_eq!(changed(&r), ["hello.txt"], "{r:#}");
    // As root, the CLI refuses --dangerously-skip-permissions unless IS_SANDBOX=1, which the
    // test did not set: Orca did.
    let raw = std::fs::read_to_string(ws.path().join(r["transcript"].as_str().unwrap())).unwrap();
    assert!(
        raw.contains("\"permissionMode\":\"bypassPermissions\""),
        "root={}: {raw}",
        running_as_root()
    );
    ws.wait_archived("write");
}

#[test]
fn server_errors_are_retried_and_fail_with_the_api_message_when_they_persist() {
    let rig = Rig::start(
        vec![
            Reply::error(500, "fake internal trouble"),
            Reply::error(529, "fake overloaded").forever(),
        ],
        &[("ORCA_MAX_RETRIES", "2")],
    );
    rig.ws
        .drop_task("busy.task.md", &task("type: analyze", "Say hello."));
    let r = rig.result("busy");
    assert_eq!(r["status"], "failed", "{r:#}");
    assert_eq!(r["attempts"], 3);
    assert_eq!(r["error"]["kind"], "transient");
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(msg.contains("fake overloaded"), "{msg}");
    let retries = rig.ws.events_named("retry");
    assert_eq!(retries.len(), 2, "{retries:#?}");
    assert!(retries[0]["reason"]
        .as_str()
        .unwrap()
        .contains("fake internal trouble"));
    assert!(retries[1]["reason"]
        .as_str()
        .unwrap()
        .contains("fake overloaded"));
    assert_eq!(rig.fake.messages_requests().len(), 3);
}

#[test]
fn an_authentication_error_fails_at_once_with_a_hint_about_the_key() {
    let rig = Rig::start(
        vec![Reply::error(401, "invalid x-api-key").forever()],
        &[("ORCA_MAX_RETRIES", "2")],
    );
    rig.ws
        .drop_task("auth.task.md", &task("type: analyze", "Say hello."));
    let r = rig.result("auth");
    assert_eq!(r["status"], "failed", "{r:#}");
    assert_eq!(r["attempts"], 1, "a 401 is not retried");
    assert_eq!(r["error"]["kind"], "auth");
    assert!(r["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("ANTHROPIC_API_KEY"));
    assert!(rig.ws.events_named("retry").is_empty());
}

#[test]
fn reaching_max_turns_fails_with_that_reason() {
    let rig = Rig::start(
        vec![Reply::tool("Read", json!({"file_path": "/nonexistent/orca-test.txt"})).forever()],
        &[],
    );
    rig.ws.drop_task(
        "loop.task.md",
        &task("type: analyze\nmax_turns: 1", "Read forever."),
    );
    let r = rig.result("loop");
    assert_eq!(r["status"], "failed", "{r:#}");
    assert_eq!(r["error"]["kind"], "max_turns");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max turns"));
    assert_eq!(r["attempts"], 1);
}

#[test]
fn a_hanging_api_times_out_and_leaves_no_process_behind() {
    let rig = Rig::start(
        vec![Reply::Hang],
        &[("API_TIMEOUT_MS", "600000"), ("ORCA_MAX_RETRIES", "0")],
    );
    let work = rig.root().join("hang");
    std::fs::create_dir_all(&work).unwrap();
    rig.ws.drop_task(
        "hang.task.md",
        &task("type: analyze\nworking_dir: hang\ntimeout_sec: 2", "Wait."),
    );
    let r = rig.result("hang");
    assert_eq!(r["status"], "timed_out", "{r:#}");
    assert_eq!(r["error"]["kind"], "timeout");
    let pids: Vec<i64> = rig
        .ws
        .events_named("claude_progress")
        .iter()
        .filter_map(|e| e["pid"].as_i64())
        .collect();
    assert!(!pids.is_empty(), "claude_progress carries the CLI's pid");
    for pid in pids {
        assert!(!alive(pid as i32), "the CLI (pid {pid}) is still running");
    }
    assert_eq!(processes_in(&work), Vec::<i32>::new());
    assert_eq!(rig.ws.events_named("timed_out").len(), 1);
}

#[test]
fn status_and_show_print_live_progress_of_the_cli() {
    let ws = Ws::new();
    let root = ws.path().canonicalize().unwrap();
    let rig = Rig::launch(
        ws,
        vec![
            Reply::tool(
                "Write",
                json!({"file_path": root.join("notes.md"), "content": "x\n"}),
            ),
            Reply::text("Done.").after_ms(6000),
        ],
        &[
            ("CLAUDE_SKIP_PERMISSIONS", "true"),
            ("API_TIMEOUT_MS", "600000"),
        ],
    );
    let ws = &rig.ws;
    ws.drop_task("slow.task.md", &task("type: fix", "Write notes."));
    // While the second turn is delayed, the first turn's tool is shown.
    ws.wait_for(
        || {
            let out = ws.run(&["status"]);
            String::from_utf8_lossy(&out.stdout).contains("Write")
        },
        "status to show the Write tool",
    );
    let status = String::from_utf8_lossy(&ws.run(&["status"]).stdout).into_owned();
    let line = status
        .lines()
        .find(|l| l.contains("slow"))
        .unwrap_or_else(|| panic!("no running line for slow:\n{status}"));
    assert!(line.contains("notes.md"), "{status}");
    let show = String::from_utf8_lossy(&ws.run(&["show", "slow"]).stdout).into_owned();
    assert!(show.contains("running"), "{show}");
    let now = show
        .lines()
        .find(|l| l.starts_with("now"))
        .unwrap_or_else(|| panic!("no progress line in show:\n{show}"));
    assert!(now.contains("turn 1") && now.contains("Write"), "{show}");
    let show_json: Value =
        serde_json::from_slice(&ws.run(&["show", "slow", "--json"]).stdout).unwrap();
    let p = &show_json["progress"];
    assert_eq!(p["last_tool"], "Write", "{show_json:#}");
    assert!(p["session_id"].as_str().is_some(), "{show_json:#}");

    let r = ws.wait_result("slow");
    assert_eq!(r["status"], "succeeded", "{r:#}");
    let progress = ws.events_named("claude_progress");
    let with_tool = progress
        .iter()
        .find(|e| e["last_tool"] == "Write")
        .unwrap_or_else(|| panic!("{progress:#?}"));
    for field in [
        "attempt",
        "turns",
        "last_tool_target",
        "cost_usd",
        "model",
        "pid",
        "session_id",
        "updated_at",
    ] {
        assert!(
            with_tool.get(field).is_some(),
            "claude_progress lacks {field}: {with_tool}"
        );
    }
    assert_eq!(with_tool["turns"], 1);
    assert!(with_tool["last_tool_target"]
        .as_str()
        .unwrap()
        .ends_with("notes.md"));
    ws.wait_archived("slow");
}

#[test]
fn a_timed_out_attempt_resumes_the_cli_session_on_retry() {
    let ws = Ws::new();
    let root = ws.path().canonicalize().unwrap();
    let rig = Rig::launch(
        ws,
        vec![
            Reply::tool(
                "Write",
                json!({"file_path": root.join("part1.txt"), "content": "first half\n"}),
            ),
            Reply::Hang,
            Reply::text("Finished after resuming."),
        ],
        &[
            ("CLAUDE_SKIP_PERMISSIONS", "true"),
            ("API_TIMEOUT_MS", "600000"),
        ],
    );
    let (ws, fake) = (&rig.ws, &rig.fake);
    ws.drop_task(
        "long.task.md",
        &task(
            "type: fix\ntimeout_sec: 5\nretries: 1\nresume_on_retry: true",
            "Write both halves.",
        ),
    );
    let r = ws.wait_result("long");
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(r["output"], "Finished after resuming.");
    let hist = r["attempt_history"].as_array().unwrap();
    assert_eq!(hist.len(), 2, "{r:#}");
    assert_eq!(hist[0]["outcome"], "retry");
    assert_eq!(hist[0]["resumed"], false);
    assert_eq!(hist[1]["resumed"], true, "{r:#}");
    let sid = hist[0]["session_id"].as_str().unwrap();
    let started = ws.events_named("claude_started");
    assert_eq!(started[1]["resume_session"], sid);
    // The resumed request carries the first attempt's turns.
    let posts = fake.messages_requests();
    assert_eq!(posts.len(), 3, "{posts:#?}");
    let body = posts[2].body["messages"].to_string();
    assert!(body.contains("Write both halves."), "{body}");
    assert!(
        body.contains("tool_use") && body.contains("part1.txt"),
        "{body}"
    );
    assert!(body.contains("tool_result"), "{body}");
    // Files of both attempts count.
    assert_eq!(changed(&r), ["part1.txt"], "{r:#}");
    ws.wait_archived("long");
}

#[test]
fn doctor_shows_the_cli_version_and_never_the_key() {
    let home = tempfile::tempdir().unwrap();
    let key = "sk-ant-test-SECRET-0123456789";
    let ws = Ws::new().with_env([
        ("CLAUDE_BIN", claude_bin().display().to_string()),
        ("ANTHROPIC_API_KEY", key.to_string()),
        ("HOME", home.path().display().to_string()),
    ]);
    let out = ws.run(&["doctor"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(CLAUDE_CODE_VERSION), "{text}");
    assert!(text.contains("ANTHROPIC_API_KEY is set"), "{text}");
    assert!(!text.contains("SECRET"), "the key leaked:\n{text}");

    // No key and no login in a fresh HOME: a warning with the fix.
    let ws = Ws::new().with_env([
        ("CLAUDE_BIN", claude_bin().display().to_string()),
        ("HOME", home.path().display().to_string()),
    ]);
    let out = ws.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains(CLAUDE_CODE_VERSION), "{text}");
    assert!(text.contains("no ANTHROPIC_API_KEY"), "{text}");
    assert!(text.contains("log in"), "{text}");
}

#[test]
fn a_run_cut_off_by_a_daemon_crash_is_recovered_and_resumed() {
    let ws = Ws::new();
    let root = ws.path().canonicalize().unwrap();
    let mut rig = Rig::launch(
        ws,
        vec![
            Reply::tool(
                "Write",
                json!({"file_path": root.join("step1.txt"), "content": "one\n"}),
            ),
            Reply::Hang,
            Reply::text("Finished after the restart."),
        ],
        &[
            ("CLAUDE_SKIP_PERMISSIONS", "true"),
            ("API_TIMEOUT_MS", "600000"),
        ],
    );
    rig.ws
        .drop_task("crash.task.md", &task("type: fix", "Write the steps."));
    // Wait until the CLI hangs on its second request, after the Write.
    rig.ws.wait_for(
        || rig.fake.messages_requests().len() >= 2,
        "the second API request",
    );
    let pid = rig
        .ws
        .events_named("claude_progress")
        .iter()
        .find_map(|e| e["pid"].as_i64())
        .expect("the CLI's pid") as i32;
    rig.ws.kill9();
    assert!(
        alive(pid),
        "the CLI outlived the daemon (this is what recovery must handle)"
    );
    rig.ws.start();
    let r = rig.result("crash");
    assert!(!alive(pid), "the orphaned CLI (pid {pid}) was stopped");
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(r["output"], "Finished after the restart.");
    let hist = r["attempt_history"].as_array().unwrap();
    assert_eq!(hist.len(), 2, "{r:#}");
    assert_eq!(hist[0]["outcome"], "interrupted");
    assert_eq!(hist[1]["resumed"], true, "{r:#}");
    assert_eq!(rig.ws.events_named("recovered").len(), 1);
    let posts = rig.fake.messages_requests();
    assert_eq!(posts.len(), 3);
    let body = posts[2].body["messages"].to_string();
    assert!(
        body.contains("step1.txt") && body.contains("tool_result"),
        "{body}"
    );
}

//! orca-fake-agent: a stand-in for the Claude Code CLI that speaks its stream-json and exit
//! codes, with behaviour chosen per prompt; used by the test suite and the benchmarks.
//!
//! Mode: the first prompt line `fake-agent: MODE [ARGS]`, else env ORCA_FAKE_AGENT_MODE,
//! else `success`. Modes: success, fail, api-error STATUS, auth, max-turns, hang, garbage,
//! slow MS N, child, crash, flaky N, write PATH TEXT, sleep MS, noop, long N (an N-character
//! answer). With ORCA_FAKE_AGENT_ARGV_FILE set, each start appends its arguments to it.
//! With ORCA_FAKE_AGENT_LOG set, each start appends `pid\ttask_id\tattempt\tmode` to it;
//! with ORCA_FAKE_AGENT_CLOCK=1 also, as a fifth field, the CLOCK_REALTIME nanoseconds at which
//! `main` began (the benchmarks measure pickup latency with it).
//! Hardening tests: ORCA_FAKE_AGENT_CWD_FILE (append the real working folder),
//! ORCA_FAKE_AGENT_ENV_FILE (write the environment, `NAME=VALUE` lines),
//! ORCA_FAKE_AGENT_ESCAPE (start a `sleep 300` detached by a double fork and `setsid`, its
//! pid written to `<that path>.<task id>`, before the mode runs), ORCA_FAKE_AGENT_VERSION_BYTES (print that
//! many bytes before the `--version` line, and leave the version out of the stream).
//! Verification tests: ORCA_FAKE_AGENT_PROMPT_FILE (append each start's prompt after a
//! `=== start` line); ORCA_FAKE_AGENT_STEPS (a file of blocks separated by `---` lines: the
//! n-th start runs block n, the last one again when there are fewer; each line is
//! `write PATH TEXT`, `run COMMAND` (by `sh -c`, reported as a Bash tool call with its exit
//! status) or `say TEXT` (the final message); with CLAUDE_CONFIG_DIR set, the session's
//! transcript file is written as the real CLI does, so that it can be resumed).

// Not under `cargo test`: there the test harness provides `main` (and runs no tests).
#![cfg_attr(not(test), no_main)]
#![cfg_attr(test, allow(dead_code))]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

const VERSION: &str = "0.0.0-fake";
const DEFAULT_MODEL: &str = "claude-fake-1";

/// Flags of the real CLI that take a value (so the value is not read as the prompt).
const VALUE_FLAGS: &[&str] = &[
    "--output-format",
    "--input-format",
    "--max-turns",
    "--model",
    "--resume",
    "-r",
    "--session-id",
    "--permission-mode",
    "--allowedTools",
    "--allowed-tools",
    "--disallowedTools",
    "--disallowed-tools",
    "--add-dir",
    "--max-budget-usd",
    "--fallback-model",
    "--append-system-prompt",
    "--system-prompt",
    "--settings",
    "--mcp-config",
    "--effort",
    "--json-schema",
];

#[derive(Default)]
struct Args {
    version: bool,
    prompt: Option<String>,
    max_turns: Option<u32>,
    model: Option<String>,
    resume: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args::default();
    let mut it = std::env::args().skip(1);
    let mut positional = Vec::new();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        match flag.as_str() {
            "--version" | "-v" => a.version = true,
            f if VALUE_FLAGS.contains(&f) => {
                let v = inline.or_else(|| it.next());
                match f {
                    "--max-turns" => a.max_turns = v.and_then(|v| v.parse().ok()),
                    "--model" => a.model = v,
                    "--resume" | "-r" => a.resume = v,
                    _ => {}
                }
            }
            f if f.starts_with('-') => {} // unknown or boolean flags are ignored
            _ => positional.push(arg),
        }
    }
    if !positional.is_empty() {
        a.prompt = Some(positional.join(" "));
    }
    a
}

/// A stream line as the CLI writes it: `type` first, then `subtype` (Orca reads such lines
/// in one typed pass), then the other fields (serde_json's map would sort them).
fn type_first(v: &Value) -> String {
    let Some(map) = v.as_object() else {
        return v.to_string();
    };
    let first = ["type", "subtype"];
    let fields = first
        .iter()
        .filter_map(|k| map.get_key_value(*k))
        .chain(map.iter().filter(|(k, _)| !first.contains(&k.as_str())));
    let parts: Vec<String> = fields
        .map(|(k, x)| format!("{}:{x}", Value::String(k.clone())))
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// A uuid-shaped id from the pid, the time and a salt.
fn uuid_like(salt: u64) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x =
        nanos ^ (u64::from(std::process::id()) << 32) ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = || {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let (a, b) = (next(), next());
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

struct Out {
    session: String,
    model: String,
    msg_seq: u64,
    tool_seq: u64,
}

impl Out {
    fn line(&self, v: &Value) {
        let text = type_first(v);
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{text}").and_then(|_| out.flush()).is_err() {
            // The reader is gone: behave like a CLI killed by SIGPIPE.
            std::process::exit(141);
        }
    }

    fn raw(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{text}").and_then(|_| out.flush()).is_err() {
            std::process::exit(141);
        }
    }

    fn init(&self) {
        let cwd = std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mut init = json!({
            "type": "system", "subtype": "init", "cwd": cwd, "session_id": self.session,
            "tools": ["Task", "Bash", "Edit", "Read", "Write"], "mcp_servers": [],
            "model": self.model, "permissionMode": "default", "slash_commands": [],
            "apiKeySource": "ANTHROPIC_API_KEY", "claude_code_version": VERSION,
            "output_style": "default", "agents": [], "skills": [], "plugins": [],
            "uuid": uuid_like(1), "fast_mode_state": "off"
        });
        // With a long --version, the stream does not say the version: Orca has to ask.
        if std::env::var_os("ORCA_FAKE_AGENT_VERSION_BYTES").is_some() {
            if let Some(o) = init.as_object_mut() {
                o.remove("claude_code_version");
            }
        }
        self.line(&init);
    }

    fn next_msg_id(&mut self) -> String {
        self.msg_seq += 1;
        format!(
            "msg_fake_{:04}_{}",
            self.msg_seq,
            self.session.chars().take(8).collect::<String>()
        )
    }

    fn assistant(&mut self, content: Value) -> String {
        let id = self.next_msg_id();
        self.assistant_in(&id, content, &self.model.clone(), None);
        id
    }

    fn assistant_in(&self, id: &str, content: Value, model: &str, error: Option<&str>) {
        let mut v = json!({
            "type": "assistant",
            "message": {
                "id": id, "type": "message", "role": "assistant", "model": model,
                "content": [content], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 100, "output_tokens": 20}, "context_management": null
            },
            "parent_tool_use_id": null, "session_id": self.session, "uuid": uuid_like(self.msg_seq + 7),
            "request_id": format!("req_fake_{}", self.msg_seq)
        });
        if let Some(e) = error {
            v["error"] = json!(e);
        }
        self.line(&v);
    }

    fn text(&mut self, text: &str) {
        self.assistant(json!({"type": "text", "text": text}));
    }

    /// A tool_use line; returns the tool_use id.
    fn tool_use(&mut self, name: &str, input: Value) -> String {
        self.tool_seq += 1;
        let tid = format!("toolu_fake_{:04}", self.tool_seq);
        self.assistant(json!({"type": "tool_use", "id": tid, "name": name, "input": input}));
        tid
    }

    fn tool_result(&self, tool_use_id: &str, content: &str, extra: Value) {
        self.line(&json!({
            "type": "user",
            "message": {"role": "user", "content": [
                {"tool_use_id": tool_use_id, "type": "tool_result", "content": content, "is_error": false}
            ]},
            "parent_tool_use_id": null, "session_id": self.session, "uuid": uuid_like(self.tool_seq + 99),
            "timestamp": "2026-11-25T19:11:40.138Z", "tool_use_result": extra
        }));
    }

    /// A tool_result with `is_error` (as the CLI sends a Bash command's non-zero exit).
    fn tool_error(&self, tool_use_id: &str, content: &str) {
        self.line(&json!({
            "type": "user",
            "message": {"role": "user", "content": [
                {"tool_use_id": tool_use_id, "type": "tool_result", "content": content, "is_error": true}
            ]},
            "parent_tool_use_id": null, "session_id": self.session, "uuid": uuid_like(self.tool_seq + 99),
            "timestamp": "2026-11-25T19:11:40.138Z", "tool_use_result": format!("Error: {content}")
        }));
    }

    fn result(&self, subtype: &str, is_error: bool, turns: u32, fields: Value) {
        let cost = 0.001 * f64::from(turns);
        let mut v = json!({
            "type": "result", "subtype": subtype, "is_error": is_error, "api_error_status": null,
            "duration_ms": 12, "duration_api_ms": 3, "num_turns": turns,
            "stop_reason": "end_turn", "session_id": self.session, "total_cost_usd": cost,
            "usage": {
                "input_tokens": 100 * turns, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0, "output_tokens": 20 * turns,
                "service_tier": "standard"
            },
            "modelUsage": {self.model.clone(): {"inputTokens": 100 * turns, "outputTokens": 20 * turns, "costUSD": cost}},
            "permission_denials": [], "terminal_reason": "completed", "fast_mode_state": "off",
            "uuid": uuid_like(42)
        });
        if let (Some(obj), Some(extra)) = (v.as_object_mut(), fields.as_object()) {
            for (k, val) in extra {
                if val.is_null() && k != "api_error_status" {
                    obj.remove(k);
                } else {
                    obj.insert(k.clone(), val.clone());
                }
            }
        }
        self.line(&v);
    }

    fn success(&self, text: &str, turns: u32) -> u8 {
        self.result("success", false, turns, json!({"result": text}));
        0
    }

    fn max_turns(&self, limit: u32) -> u8 {
        self.result(
            "error_max_turns",
            true,
            limit + 1,
            json!({
                "result": null, "stop_reason": "tool_use", "terminal_reason": "max_turns",
                "errors": [format!("Reached maximum number of turns ({limit})")]
            }),
        );
        1
    }

    fn api_error(&mut self, status: u16) -> u8 {
        let kind = match status {
            401 => "authentication_failed",
            429 => "rate_limit",
            529 => "overloaded",
            500..=599 => "server_error",
            _ => "unknown",
        };
        let text = match status {
            401 => format!("API Error: {status} {{\"type\":\"error\",\"error\":{{\"type\":\"authentication_error\",\"message\":\"invalid x-api-key\"}}}}"),
            _ => format!("API Error: {status} fake {kind}. This is a server-side issue, usually temporary."),
        };
        let id = uuid_like(5);
        self.assistant_in(
            &id,
            json!({"type": "text", "text": text}),
            "<synthetic>",
            Some(kind),
        );
        self.result(
            "success",
            true,
            1,
            json!({
                "api_error_status": status, "result": text, "stop_reason": "stop_sequence",
                "total_cost_usd": 0, "modelUsage": {}
            }),
        );
        1
    }
}

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// With ORCA_FAKE_AGENT_ARGV_FILE set, appends this start's arguments to it, one line of
/// tab-separated arguments per start (tests check e.g. `--resume <session>`).
fn log_argv() {
    let Some(path) = std::env::var_os("ORCA_FAKE_AGENT_ARGV_FILE") else {
        return;
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        let _ = writeln!(f, "{}", args.join("\t"));
    }
}

fn log_start(mode: &str) {
    let Some(path) = std::env::var_os("ORCA_FAKE_AGENT_LOG") else {
        return;
    };
    let mut line = format!(
        "{}\t{}\t{}\t{}",
        std::process::id(),
        std::env::var("ORCA_TASK_ID").unwrap_or_default(),
        std::env::var("ORCA_ATTEMPT").unwrap_or_default(),
        mode
    );
    if std::env::var_os("ORCA_FAKE_AGENT_CLOCK").is_some_and(|v| v == "1") {
        let ns = STARTED_NS.load(std::sync::atomic::Ordering::Relaxed);
        line.push_str(&format!("\t{ns}"));
    }
    line.push('\n');
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        // One write of a short line with O_APPEND: concurrent agents do not interleave.
        let _ = f.write_all(line.as_bytes());
    }
}

/// What the hardening tests ask for through the environment (see the module's doc).
fn hardening_probes() {
    let append = |var: &str, text: &str| {
        if let Some(path) = std::env::var_os(var) {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = f.write_all(text.as_bytes());
            }
        }
    };
    let cwd = std::fs::read_link("/proc/self/cwd")
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("unknown: {e}"));
    append("ORCA_FAKE_AGENT_CWD_FILE", &format!("{cwd}\n"));
    let env: String = std::env::vars_os()
        .map(|(k, v)| format!("{}={}\n", k.to_string_lossy(), v.to_string_lossy()))
        .collect();
    append("ORCA_FAKE_AGENT_ENV_FILE", &env);
    if let Some(pidfile) = std::env::var_os("ORCA_FAKE_AGENT_ESCAPE") {
        // One pid file per task: `<path>.<task id>`.
        let mut pidfile = pidfile;
        pidfile.push(format!(
            ".{}",
            std::env::var("ORCA_TASK_ID").unwrap_or_default()
        ));
        // The middle process of the double fork: it detaches, starts the sleep, and exits.
        if let Ok(exe) = std::env::current_exe() {
            let _ = Command::new(exe)
                .env("ORCA_FAKE_AGENT_DETACH_CHILD", pidfile)
                .env_remove("ORCA_FAKE_AGENT_ESCAPE")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The middle process of ORCA_FAKE_AGENT_ESCAPE: a new session, a `sleep 300` in it whose
/// pid goes to `pidfile`, and gone, so the sleep is an orphan outside the agent's group.
fn detached_child(pidfile: &Path) -> u8 {
    if nix::unistd::setsid().is_err() {
        return 1;
    }
    let child = Command::new("sleep")
        .arg("300")
        .env_remove("ORCA_FAKE_AGENT_DETACH_CHILD")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match child {
        Ok(c) => {
            let mut tmp = pidfile.as_os_str().to_owned();
            tmp.push(".tmp");
            if std::fs::write(&tmp, c.id().to_string()).is_ok() {
                let _ = std::fs::rename(&tmp, pidfile);
            }
            0
        }
        Err(_) => 1,
    }
}

/// `sleep 300` in its own session (as Claude's Bash tool does) and a plain `sleep 300`.
fn spawn_children() -> (u32, u32) {
    use std::os::unix::process::CommandExt;
    let mut detached = Command::new("sleep");
    detached
        .arg("300")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    // SAFETY: setsid is async-signal-safe and is the only call made between fork and exec.
    unsafe {
        detached.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let a = detached.spawn().map(|c| c.id()).unwrap_or(0);
    let b = Command::new("sleep")
        .arg("300")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map(|c| c.id())
        .unwrap_or(0);
    (a, b)
}

/// CLOCK_REALTIME nanoseconds at the start of `main`.
static STARTED_NS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The C entry point, without Rust's runtime start-up: that start-up (signal handlers for
/// stack overflows, the main thread's stack bounds read from /proc/self/maps) cost about a
/// fifth of this program's run, and the benchmarks' spawn ceiling is made of such runs.
/// What it did that matters here is done by hand: SIGPIPE ignored (a write to a closed pipe
/// is an error, answered with exit code 141), stdout flushed before leaving.
/// `std::env::args` still works: on glibc the standard library reads them at load time.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let code = fake_main();
    if std::io::stdout().flush().is_err() {
        return 141;
    }
    libc::c_int::from(code)
}

fn fake_main() -> u8 {
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    STARTED_NS.store(started, std::sync::atomic::Ordering::Relaxed);
    if let Some(pidfile) = std::env::var_os("ORCA_FAKE_AGENT_DETACH_CHILD") {
        return detached_child(Path::new(&pidfile));
    }
    let args = parse_args();
    if args.version {
        let junk: u64 = std::env::var("ORCA_FAKE_AGENT_VERSION_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let chunk = vec![b'x'; 64 * 1024];
        let mut left = junk;
        let mut stdout = std::io::stdout().lock();
        while left > 0 {
            let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
            if stdout.write_all(&chunk[..n]).is_err() {
                return 141;
            }
            left -= n as u64;
        }
        let _ = writeln!(stdout, "{VERSION} (Claude Code)");
        return 0;
    }
    let prompt = match args.prompt.clone() {
        Some(p) => p,
        None => {
            let mut s = String::new();
            let _ = std::io::stdin().read_to_string(&mut s);
            s
        }
    };
    if let Some(path) = std::env::var_os("ORCA_FAKE_AGENT_PROMPT_FILE") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "=== start\n{prompt}");
        }
    }
    if let Some(steps) = std::env::var_os("ORCA_FAKE_AGENT_STEPS") {
        return run_steps(Path::new(&steps), &args);
    }
    let directive = prompt
        .lines()
        .find_map(|l| l.trim().strip_prefix("fake-agent:").map(str::trim))
        .map(str::to_owned)
        .or_else(|| std::env::var("ORCA_FAKE_AGENT_MODE").ok())
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| "success".into());
    let mut words = directive.split_whitespace();
    let mode = words.next().unwrap_or("success").to_owned();
    let rest: Vec<&str> = words.collect();
    log_start(&mode);
    log_argv();
    hardening_probes();
    let num = |i: usize, default: u64| -> u64 {
        rest.get(i).and_then(|v| v.parse().ok()).unwrap_or(default)
    };

    let mut out = Out {
        session: args.resume.clone().unwrap_or_else(|| uuid_like(0)),
        model: args.model.clone().unwrap_or_else(|| DEFAULT_MODEL.into()),
        msg_seq: 0,
        tool_seq: 0,
    };
    let max_turns = args.max_turns.filter(|n| *n > 0);
    let summary = prompt
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("fake-agent:"))
        .unwrap_or("the task")
        .chars()
        .take(80)
        .collect::<String>();
    let answer = format!("Done: {summary}");

    match mode.as_str() {
        "noop" => {
            out.init();
            out.success(&answer, 1)
        }
        "fail" => {
            out.init();
            out.text("I could not complete the task.");
            out.result(
                "error_during_execution",
                true,
                1,
                json!({"result": "The fake agent failed on purpose.", "errors": ["fake failure"]}),
            );
            1
        }
        "api-error" => {
            out.init();
            out.api_error(u16::try_from(num(0, 500)).unwrap_or(500))
        }
        "auth" => {
            out.init();
            let text = "Not logged in · Please run /login";
            let id = uuid_like(3);
            out.assistant_in(
                &id,
                json!({"type": "text", "text": text}),
                "<synthetic>",
                Some("authentication_failed"),
            );
            out.result(
                "success",
                true,
                1,
                json!({"result": text, "total_cost_usd": 0, "modelUsage": {}}),
            );
            1
        }
        "max-turns" => {
            out.init();
            let limit = max_turns.unwrap_or(2);
            for i in 0..limit {
                let t = out.tool_use("Bash", json!({"command": format!("echo step {i}")}));
                out.tool_result(
                    &t,
                    &format!("step {i}"),
                    json!({"stdout": format!("step {i}"), "stderr": ""}),
                );
            }
            out.max_turns(limit)
        }
        "hang" => {
            out.init();
            sleep_forever()
        }
        "garbage" => {
            out.init();
            out.raw("this is not json");
            out.raw("{\"type\": \"assistant\", broken");
            out.raw("");
            out.raw(&"x".repeat(2 * 1024 * 1024));
            out.text(&answer);
            out.success(&answer, 1)
        }
        "slow" => {
            let ms = num(0, 100);
            let n = u32::try_from(num(1, 3)).unwrap_or(3);
            out.init();
            for i in 0..n {
                if max_turns.is_some_and(|m| i >= m) {
                    return out.max_turns(i);
                }
                if i > 0 {
                    std::thread::sleep(Duration::from_millis(ms));
                }
                let t = out.tool_use("Bash", json!({"command": format!("echo step {}", i + 1)}));
                out.tool_result(
                    &t,
                    &format!("step {}", i + 1),
                    json!({"stdout": "", "stderr": ""}),
                );
            }
            std::thread::sleep(Duration::from_millis(ms));
            out.text(&answer);
            out.success(&answer, n + 1)
        }
        "child" => {
            let (detached, plain) = spawn_children();
            eprintln!("fake-agent child pids: {detached} {plain}");
            // Also in the start log, so tests can check that no process is left behind.
            log_start(&format!("children {detached} {plain}"));
            out.init();
            sleep_forever()
        }
        "crash" => {
            out.init();
            eprintln!("fake-agent: simulated crash");
            1
        }
        "flaky" => {
            let n = num(0, 1);
            let attempt: u64 = std::env::var("ORCA_ATTEMPT")
                .ok()
                .and_then(|a| a.parse().ok())
                .unwrap_or(1);
            out.init();
            if attempt <= n {
                out.api_error(529)
            } else {
                out.text(&answer);
                out.success(&answer, 1)
            }
        }
        "write" => {
            let (Some(path), text) = (rest.first(), rest.get(1..).unwrap_or(&[]).join(" ")) else {
                eprintln!("fake-agent: usage: fake-agent: write PATH TEXT");
                return 2;
            };
            out.init();
            if max_turns == Some(1) {
                out.tool_use("Write", json!({"file_path": path, "content": text}));
                return out.max_turns(1);
            }
            let abs = std::env::current_dir()
                .map(|d| d.join(path))
                .unwrap_or_else(|_| Path::new(path).to_path_buf());
            let tid = out.tool_use(
                "Write",
                json!({"file_path": abs.display().to_string(), "content": format!("{text}\n")}),
            );
            if let Some(dir) = abs.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            if let Err(e) = std::fs::write(&abs, format!("{text}\n")) {
                eprintln!("fake-agent: cannot write {}: {e}", abs.display());
            }
            out.tool_result(
                &tid,
                &format!("File created successfully at: {}", abs.display()),
                json!({"type": "create", "filePath": abs.display().to_string(), "content": text, "structuredPatch": [], "originalFile": null}),
            );
            let done = format!("Wrote {path}.");
            out.text(&done);
            out.success(&done, 2)
        }
        "sleep" => {
            out.init();
            std::thread::sleep(Duration::from_millis(num(0, 1000)));
            out.text(&answer);
            out.success(&answer, 1)
        }
        "success" => {
            out.init();
            out.text(&answer);
            out.success(&answer, 1)
        }
        "long" => {
            // An answer of N characters in lines of 100 (the last line numbered).
            let n = usize::try_from(num(0, 10_000)).unwrap_or(10_000);
            let mut text = String::with_capacity(n);
            let mut line = 0;
            while text.len() < n {
                line += 1;
                let head = format!("line {line} ");
                let room = (n - text.len()).min(100);
                let mut l: String = head
                    .chars()
                    .chain(std::iter::repeat('x'))
                    .take(room)
                    .collect();
                if text.len() + l.len() < n {
                    l.pop();
                    l.push('\n');
                }
                text.push_str(&l);
            }
            out.init();
            out.text(&text);
            out.success(&text, 1)
        }
        other => {
            eprintln!("fake-agent: unknown mode '{other}'");
            out.init();
            out.result(
                "error_during_execution",
                true,
                0,
                json!({"result": format!("fake-agent: unknown mode '{other}'")}),
            );
            2
        }
    }
}

/// ORCA_FAKE_AGENT_STEPS: runs this start's block of steps (see the module doc).
fn run_steps(file: &Path, args: &Args) -> u8 {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let blocks: Vec<&str> = text.split("\n---\n").collect();
    let counter = file.with_extension("count");
    let n: usize = std::fs::read_to_string(&counter)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let _ = std::fs::write(&counter, format!("{}\n", n + 1));
    let block = blocks.get(n).or(blocks.last()).copied().unwrap_or("");
    let mut out = Out {
        session: args.resume.clone().unwrap_or_else(|| uuid_like(0)),
        model: args.model.clone().unwrap_or_else(|| DEFAULT_MODEL.into()),
        msg_seq: 0,
        tool_seq: 0,
    };
    out.init();
    let cwd = std::env::current_dir().unwrap_or_default();
    if let Some(config) = std::env::var_os("CLAUDE_CONFIG_DIR") {
        let project: String = cwd
            .to_string_lossy()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let dir = Path::new(&config).join("projects").join(project);
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join(format!("{}.jsonl", out.session)), "{}\n");
    }
    let mut say = "Done.".to_owned();
    let mut turns = 1;
    for line in block.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        turns += 1;
        match verb {
            "write" => {
                let (path, content) = rest.split_once(' ').unwrap_or((rest, ""));
                let abs = cwd.join(path);
                let tid = out.tool_use(
                    "Write",
                    json!({"file_path": abs.display().to_string(), "content": format!("{content}\n")}),
                );
                if let Some(d) = abs.parent() {
                    let _ = std::fs::create_dir_all(d);
                }
                let _ = std::fs::write(&abs, format!("{content}\n"));
                out.tool_result(
                    &tid,
                    &format!("File created successfully at: {}", abs.display()),
                    json!({"type": "create", "filePath": abs.display().to_string()}),
                );
            }
            "run" => {
                let tid = out.tool_use("Bash", json!({"command": rest}));
                let res = Command::new("sh")
                    .arg("-c")
                    .arg(rest)
                    .stdin(Stdio::null())
                    .output();
                let (code, text) = match res {
                    Ok(o) => (
                        o.status.code().unwrap_or(1),
                        format!(
                            "{}{}",
                            String::from_utf8_lossy(&o.stdout),
                            String::from_utf8_lossy(&o.stderr)
                        ),
                    ),
                    Err(e) => (127, e.to_string()),
                };
                if code == 0 {
                    out.tool_result(&tid, &text, json!({"stdout": text, "stderr": ""}));
                } else {
                    out.tool_error(&tid, &format!("Exit code {code}\n{text}"));
                }
            }
            "say" => say = rest.to_owned(),
            other => eprintln!("fake-agent: unknown step '{other}'"),
        }
    }
    out.text(&say);
    out.success(&say, turns)
}

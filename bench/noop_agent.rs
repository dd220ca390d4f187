//! The benchmarks' no-op agent: reads the prompt, prints Claude Code's stream-json for a
//! finished one-turn run (an `init` line and a `result` line) at once, and exits 0.
//!
//! It is deliberately the cheapest program that speaks the protocol, so that the benchmark
//! measures Orca rather than its stand-in: no dependencies, no Rust runtime start-up
//! (`no_main`), and the benchmark links it statically (`-C target-feature=+crt-static`), so a
//! start costs no dynamic loading. The test suite's richer stand-in is `orca-fake-agent`.
//! With ORCA_FAKE_AGENT_LOG set it appends `pid\ttask_id\tattempt\tnoop[\tns]` to that file
//! like `orca-fake-agent` does (ns: CLOCK_REALTIME at start, with ORCA_FAKE_AGENT_CLOCK=1).

// Not under `cargo test`: there the test harness provides `main` (and runs no tests).
#![cfg_attr(not(test), no_main)]
#![cfg_attr(test, allow(dead_code))]

use std::io::{Read, Write};
use std::time::{SystemTime, UNIX_EPOCH};

/// A JSON string literal of `s`.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A uuid-shaped session id, unique per run: the pid and the start time, spelled in hex (no
/// randomness is needed; `orca-fake-agent` mixes its ids, this one has no use for that).
fn session_id(nanos: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-a000-{:012x}",
        std::process::id(),
        (nanos >> 48) & 0xffff,
        (nanos >> 36) & 0xfff,
        nanos & 0xffff_ffff_ffff
    )
}

fn log_start(nanos: u64) {
    let Some(path) = std::env::var_os("ORCA_FAKE_AGENT_LOG") else {
        return;
    };
    let mut line = format!(
        "{}\t{}\t{}\tnoop",
        std::process::id(),
        std::env::var("ORCA_TASK_ID").unwrap_or_default(),
        std::env::var("ORCA_ATTEMPT").unwrap_or_default()
    );
    if std::env::var_os("ORCA_FAKE_AGENT_CLOCK").is_some_and(|v| v == "1") {
        line.push_str(&format!("\t{nanos}"));
    }
    line.push('\n');
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        // One short write with O_APPEND: concurrent agents do not interleave.
        let _ = f.write_all(line.as_bytes());
    }
}

fn run() -> i32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    if std::env::args().any(|a| a == "--version" || a == "-v") {
        println!("0.0.0-noop (Claude Code)");
        return 0;
    }
    log_start(nanos);
    // The prompt comes on stdin (`claude -p` with no prompt argument); read it all, as the
    // real CLI does, so the writer never sees a broken pipe.
    let mut prompt = String::new();
    let _ = std::io::stdin().read_to_string(&mut prompt);
    let first = prompt
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("fake-agent:"))
        .unwrap_or("the task");
    let answer = format!("Done: {}", first.chars().take(80).collect::<String>());
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let session = json_str(&session_id(nanos));
    let text = format!(
        "{{\"type\":\"system\",\"subtype\":\"init\",\"cwd\":{cwd},\"session_id\":{session},\
         \"tools\":[\"Bash\",\"Edit\",\"Read\",\"Write\"],\"mcp_servers\":[],\"model\":\"claude-noop-1\",\
         \"permissionMode\":\"default\",\"apiKeySource\":\"ANTHROPIC_API_KEY\",\
         \"claude_code_version\":\"0.0.0-noop\"}}\n\
         {{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"duration_ms\":1,\
         \"duration_api_ms\":0,\"num_turns\":1,\"result\":{answer},\"stop_reason\":\"end_turn\",\
         \"session_id\":{session},\"total_cost_usd\":0,\"usage\":{{\"input_tokens\":1,\
         \"output_tokens\":1}},\"permission_denials\":[]}}\n",
        cwd = json_str(&cwd),
        answer = json_str(&answer),
    );
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(_) => 141, // the reader is gone, as a CLI killed by SIGPIPE would report
    }
}

/// The C entry point: Rust's runtime start-up (stack-overflow handlers, the main thread's
/// stack bounds read from /proc/self/maps) would cost more than the rest of this program.
/// SIGPIPE is ignored by hand, as that start-up would have done.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {
    extern "C" {
        fn signal(sig: i32, handler: usize) -> usize;
    }
    const SIGPIPE: i32 = 13;
    const SIG_IGN: usize = 1;
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe {
        signal(SIGPIPE, SIG_IGN);
    }
    run()
}

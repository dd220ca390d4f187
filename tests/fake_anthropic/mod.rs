//! Fake Anthropic Messages API for tests that drive the REAL Claude Code CLI.
//! Owns: the scripted HTTP/1.1 server (`FakeAnthropic`), its `Reply` script, request recording, and the CLI locator/env helpers.
//!
//! Use from an integration test with `mod fake_anthropic;` (or `#[path = "fake_anthropic/mod.rs"] mod fake_anthropic;`).
//! Protocol details follow /work/shared/research/claude-code-cli.md (§3 traffic, §5 output, §7 retries).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};

#[cfg(test)]
mod tests;

/// The Claude Code version the test suite is pinned to (see scripts/install-claude-code.sh).
pub const CLAUDE_CODE_VERSION: &str = "2.1.197";

/// Input tokens reported for every answer (message_start usage).
pub const FAKE_INPUT_TOKENS: u64 = 100;
/// Output tokens reported for every answer (message_delta usage).
pub const FAKE_OUTPUT_TOKENS: u64 = 20;

/// One scripted answer to a `POST /v1/messages`.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A plain text answer with stop_reason `end_turn`.
    Text(String),
    /// A single tool_use block with stop_reason `tool_use`; the CLI runs the tool and POSTs
    /// again with the tool_result, which the next script entry answers.
    ToolUse { name: String, input: Value },
    /// An HTTP error status with this body (use [`Reply::error`] for the real error JSON shape).
    Status(u16, String),
    /// Like `Status`, plus a `retry-after: <secs>` header.
    StatusRetryAfter {
        status: u16,
        body: String,
        retry_after_secs: u64,
    },
    /// HTTP 200 with a body the CLI cannot parse (broken SSE when streaming, broken JSON otherwise).
    Malformed,
    /// Record the request, then never answer (until the server is dropped).
    Hang,
    /// Answer this entry to every request from here on (later entries are never reached).
    Repeat(Box<Reply>),
    /// Wait this many milliseconds (recording the request first), then answer with the inner reply.
    Delay(u64, Box<Reply>),
}

impl Reply {
    /// `Reply::Text` from anything string-like.
    pub fn text(s: impl Into<String>) -> Reply {
        Reply::Text(s.into())
    }

    /// `Reply::ToolUse` from a tool name and its input.
    pub fn tool(name: impl Into<String>, input: Value) -> Reply {
        Reply::ToolUse {
            name: name.into(),
            input,
        }
    }

    /// An HTTP error with the real Anthropic error body:
    /// `{"type":"error","error":{"type":"overloaded_error","message":"..."}}`.
    pub fn error(status: u16, message: impl Into<String>) -> Reply {
        Reply::Status(status, error_body(status, &message.into()))
    }

    /// An HTTP error with the real error body and a `retry-after` header.
    pub fn error_retry_after(status: u16, message: impl Into<String>, secs: u64) -> Reply {
        Reply::StatusRetryAfter {
            status,
            body: error_body(status, &message.into()),
            retry_after_secs: secs,
        }
    }

    /// Wraps `self` so it answers every request from here on.
    pub fn forever(self) -> Reply {
        Reply::Repeat(Box::new(self))
    }

    /// Wraps `self` so it is sent only after `ms` milliseconds.
    pub fn after_ms(self, ms: u64) -> Reply {
        Reply::Delay(ms, Box::new(self))
    }
}

/// The Anthropic error type name the real API uses for an HTTP status.
pub fn error_type_for(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

/// The real error JSON shape for `status` and `message`.
pub fn error_body(status: u16, message: &str) -> String {
    json!({"type": "error", "error": {"type": error_type_for(status), "message": message}})
        .to_string()
}

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Path including the query string, e.g. `/v1/messages?beta=true`.
    pub path: String,
    /// Header names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON, or `Value::Null` when empty or not JSON.
    pub body: Value,
    pub raw_body: Vec<u8>,
}

impl Recorded {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Path without the query string.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }

    /// Is this a `POST /v1/messages` (any query)?
    pub fn is_messages(&self) -> bool {
        self.method == "POST" && self.path_only() == "/v1/messages"
    }

    /// Did the request ask for a streamed (SSE) answer?
    pub fn is_streaming(&self) -> bool {
        self.body.get("stream").and_then(Value::as_bool) == Some(true)
    }

    /// The `messages` array of the body (empty when absent).
    pub fn messages(&self) -> Vec<Value> {
        self.body
            .get("messages")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }

    /// All text of all user messages (string contents, text blocks and string tool_result contents), joined by newlines.
    pub fn user_text(&self) -> String {
        let mut out = Vec::new();
        for m in self.messages() {
            if m.get("role").and_then(Value::as_str) != Some("user") {
                continue;
            }
            collect_text(m.get("content").unwrap_or(&Value::Null), &mut out);
        }
        out.join("\n")
    }
}

fn collect_text(content: &Value, out: &mut Vec<String>) {
    match content {
        Value::String(s) => out.push(s.clone()),
        Value::Array(blocks) => {
            for b in blocks {
                if let Some(t) = b.get("text").and_then(Value::as_str) {
                    out.push(t.to_string());
                }
                if let Some(c) = b.get("content") {
                    collect_text(c, out);
                }
            }
        }
        _ => {}
    }
}

struct Script {
    entries: Vec<Reply>,
    next: usize,
}

impl Script {
    /// The reply for the next messages request; the last entry repeats when the script runs out.
    fn next_reply(&mut self) -> Reply {
        let Some(last) = self.entries.len().checked_sub(1) else {
            return Reply::Text("(empty fake script)".to_string());
        };
        let idx = self.next.min(last);
        match &self.entries[idx] {
            Reply::Repeat(inner) => (**inner).clone(),
            r => {
                self.next = idx + 1;
                r.clone()
            }
        }
    }
}

struct Shared {
    script: Mutex<Script>,
    requests: Mutex<Vec<Recorded>>,
    streams: Mutex<Vec<TcpStream>>,
    conn_threads: Mutex<Vec<JoinHandle<()>>>,
    stop: AtomicBool,
    counter: AtomicU64,
}

impl Shared {
    fn next_id(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// A scripted fake of the Anthropic Messages API on `127.0.0.1:<random port>`; stops on Drop.
pub struct FakeAnthropic {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_thread: Option<JoinHandle<()>>,
}

impl FakeAnthropic {
    /// Starts the server; `POST /v1/messages` requests are answered by `script` in order.
    pub fn start(script: Vec<Reply>) -> FakeAnthropic {
        let listener = TcpListener::bind("127.0.0.1:0").expect("fake_anthropic: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("fake_anthropic: local_addr");
        let shared = Arc::new(Shared {
            script: Mutex::new(Script {
                entries: script,
                next: 0,
            }),
            requests: Mutex::new(Vec::new()),
            streams: Mutex::new(Vec::new()),
            conn_threads: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            counter: AtomicU64::new(0),
        });
        let sh = Arc::clone(&shared);
        let accept_thread = std::thread::Builder::new()
            .name("fake-anthropic-accept".into())
            .spawn(move || accept_loop(listener, sh))
            .expect("fake_anthropic: spawn accept thread");
        FakeAnthropic {
            addr,
            shared,
            accept_thread: Some(accept_thread),
        }
    }

    /// Base URL for `ANTHROPIC_BASE_URL`, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Only the `POST /v1/messages` requests.
    pub fn messages_requests(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(Recorded::is_messages)
            .collect()
    }
}

impl Drop for FakeAnthropic {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept().
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500));
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        for s in self.shared.streams.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        let threads: Vec<_> = self.shared.conn_threads.lock().unwrap().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = conn else { continue };
        let _ = stream.set_nodelay(true);
        if let Ok(clone) = stream.try_clone() {
            shared.streams.lock().unwrap().push(clone);
        }
        let sh = Arc::clone(&shared);
        if let Ok(t) = std::thread::Builder::new()
            .name("fake-anthropic-conn".into())
            .spawn(move || {
                let _ = serve_connection(stream, &sh);
            })
        {
            shared.conn_threads.lock().unwrap().push(t);
        }
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Serves requests on one keep-alive connection until EOF, `Connection: close`, or stop.
fn serve_connection(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let Some(req) = read_request(&mut reader, &mut writer)? else {
            return Ok(());
        };
        if shared.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let close = req
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let recorded = Recorded {
            method: req.method.clone(),
            path: req.path.clone(),
            headers: req.headers.clone(),
            body: serde_json::from_slice(&req.body).unwrap_or(Value::Null),
            raw_body: req.body.clone(),
        };
        shared.requests.lock().unwrap().push(recorded.clone());
        let keep_open = respond(&mut writer, &req, &recorded, shared)?;
        writer.flush()?;
        if close || !keep_open {
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

fn read_line(reader: &mut impl BufRead) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_string()))
}

fn read_request(
    reader: &mut impl BufRead,
    writer: &mut TcpStream,
) -> std::io::Result<Option<Request>> {
    let request_line = loop {
        match read_line(reader)? {
            None => return Ok(None),
            Some(l) if l.is_empty() => continue,
            Some(l) => break l,
        }
    };
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("/").to_string();
    let mut headers = Vec::new();
    loop {
        let Some(line) = read_line(reader)? else {
            return Ok(None);
        };
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let req_header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if req_header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        writer.flush()?;
    }
    let mut body = Vec::new();
    if req_header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        loop {
            let Some(size_line) = read_line(reader)? else {
                return Ok(None);
            };
            let size_hex = size_line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("bad chunk size {size_line:?}: {e}"),
                )
            })?;
            if size == 0 {
                // Trailers until an empty line.
                while let Some(l) = read_line(reader)? {
                    if l.is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            let _ = read_line(reader)?; // CRLF after the chunk
        }
    } else if let Some(len) = req_header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    }
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}

fn write_head(
    w: &mut TcpStream,
    status: u16,
    reason: &str,
    headers: &[(&str, String)],
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())
}

fn write_full(
    w: &mut TcpStream,
    status: u16,
    content_type: &str,
    extra: &[(&str, String)],
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    let mut headers: Vec<(&str, String)> = vec![
        ("content-length", body.len().to_string()),
        ("connection", "keep-alive".to_string()),
    ];
    if !content_type.is_empty() {
        headers.push(("content-type", content_type.to_string()));
    }
    headers.extend(extra.iter().cloned());
    write_head(w, status, reason_phrase(status), &headers)?;
    if !head_only {
        w.write_all(body)?;
    }
    Ok(())
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        529 => "Overloaded",
        _ => "Status",
    }
}

/// Writes the answer; returns whether the connection may stay open.
fn respond(
    w: &mut TcpStream,
    req: &Request,
    rec: &Recorded,
    shared: &Shared,
) -> std::io::Result<bool> {
    let head_only = req.method == "HEAD";
    let path = rec.path_only();
    if (req.method == "HEAD" || req.method == "GET") && path == "/" {
        write_full(w, 200, "", &[], b"", head_only)?;
        return Ok(true);
    }
    if req.method == "POST" && path == "/v1/messages/count_tokens" {
        let body = json!({"input_tokens": FAKE_INPUT_TOKENS}).to_string();
        write_full(w, 200, "application/json", &[], body.as_bytes(), false)?;
        return Ok(true);
    }
    if !(req.method == "POST" && path == "/v1/messages") {
        let body = error_body(
            404,
            &format!("fake_anthropic: no route for {} {}", req.method, rec.path),
        );
        write_full(w, 404, "application/json", &[], body.as_bytes(), head_only)?;
        return Ok(true);
    }
    let mut reply = shared.script.lock().unwrap().next_reply();
    while let Reply::Delay(ms, inner) = reply {
        let until = std::time::Instant::now() + Duration::from_millis(ms);
        while std::time::Instant::now() < until {
            if shared.stop.load(Ordering::SeqCst) {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        reply = *inner;
    }
    let n = shared.next_id();
    let request_id = format!("req_fake_{n:04}");
    let model = rec
        .body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("claude-fake")
        .to_string();
    let rid = [("request-id", request_id.clone())];
    match reply {
        Reply::Repeat(_) | Reply::Delay(..) => unreachable_repeat(),
        Reply::Status(status, body) => {
            write_full(w, status, "application/json", &rid, body.as_bytes(), false)?;
            Ok(true)
        }
        Reply::StatusRetryAfter {
            status,
            body,
            retry_after_secs,
        } => {
            let extra = [
                ("request-id", request_id),
                ("retry-after", retry_after_secs.to_string()),
            ];
            write_full(
                w,
                status,
                "application/json",
                &extra,
                body.as_bytes(),
                false,
            )?;
            Ok(true)
        }
        Reply::Hang => {
            while !shared.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(false)
        }
        Reply::Malformed => {
            if rec.is_streaming() {
                let body = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{not json at all\n\n";
                write_full(w, 200, "text/event-stream", &rid, body.as_bytes(), false)?;
            } else {
                write_full(
                    w,
                    200,
                    "application/json",
                    &rid,
                    b"{\"id\":\"msg_broken\",\"content\":[",
                    false,
                )?;
            }
            Ok(true)
        }
        Reply::Text(text) => {
            let block = json!({"type": "text", "text": text});
            answer(w, rec, n, &model, &rid, block, "end_turn")
        }
        Reply::ToolUse { name, input } => {
            let block = json!({"type": "tool_use", "id": format!("toolu_fake_{n:04}"), "name": name, "input": input});
            answer(w, rec, n, &model, &rid, block, "tool_use")
        }
    }
}

fn unreachable_repeat() -> std::io::Result<bool> {
    Err(std::io::Error::other(
        "fake_anthropic: a Reply::Repeat nested in Repeat or Delay is not supported",
    ))
}

fn usage(output_tokens: u64) -> Value {
    json!({
        "input_tokens": FAKE_INPUT_TOKENS,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard"
    })
}

/// Answers one content block, streamed (SSE) or as a plain Messages JSON depending on the request.
fn answer(
    w: &mut TcpStream,
    rec: &Recorded,
    n: u64,
    model: &str,
    rid: &[(&str, String)],
    block: Value,
    stop_reason: &str,
) -> std::io::Result<bool> {
    let msg_id = format!("msg_fake_{n:04}");
    if !rec.is_streaming() {
        let body = json!({
            "id": msg_id, "type": "message", "role": "assistant", "model": model,
            "content": [block], "stop_reason": stop_reason, "stop_sequence": null,
            "usage": usage(FAKE_OUTPUT_TOKENS)
        })
        .to_string();
        write_full(w, 200, "application/json", rid, body.as_bytes(), false)?;
        return Ok(true);
    }
    let mut events: Vec<(&str, Value)> = vec![(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": usage(1)
        }}),
    )];
    match block.get("type").and_then(Value::as_str) {
        Some("tool_use") => {
            let start =
                json!({"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}});
            events.push((
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": start}),
            ));
            let partial = block["input"].to_string();
            events.push((
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": partial}}),
            ));
        }
        _ => {
            let text = block["text"].as_str().unwrap_or("").to_string();
            events.push((
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ));
            events.push(("ping", json!({"type": "ping"})));
            // Two deltas, split on a char boundary, like a real stream.
            let mid = text
                .char_indices()
                .map(|(i, _)| i)
                .nth(text.chars().count() / 2)
                .unwrap_or(text.len());
            for piece in [&text[..mid], &text[mid..]] {
                if piece.is_empty() {
                    continue;
                }
                events.push((
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}),
                ));
            }
        }
    }
    events.push((
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push((
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
               "usage": {"output_tokens": FAKE_OUTPUT_TOKENS}}),
    ));
    events.push(("message_stop", json!({"type": "message_stop"})));

    let mut headers: Vec<(&str, String)> = vec![
        (
            "content-type",
            "text/event-stream; charset=utf-8".to_string(),
        ),
        ("cache-control", "no-cache".to_string()),
        ("transfer-encoding", "chunked".to_string()),
        ("connection", "keep-alive".to_string()),
    ];
    headers.extend(rid.iter().cloned());
    write_head(w, 200, "OK", &headers)?;
    for (name, data) in events {
        let chunk = format!("event: {name}\ndata: {data}\n\n");
        write!(w, "{:x}\r\n{chunk}\r\n", chunk.len())?;
        w.flush()?;
    }
    w.write_all(b"0\r\n\r\n")?;
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// Locating and configuring the real CLI.

/// The repository root (where Cargo.toml lives).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where the pinned CLI should be: `env_value` (the value of `ORCA_TEST_CLAUDE_BIN`) if set and non-empty,
/// else `<repo>/.tools/claude-code/node_modules/.bin/claude`; `Err` with the install hint when it is not a file.
pub fn locate_claude(env_value: Option<std::ffi::OsString>) -> Result<PathBuf, String> {
    let (bin, source) = match env_value {
        Some(p) if !p.is_empty() => (PathBuf::from(p), "from ORCA_TEST_CLAUDE_BIN"),
        _ => (
            repo_root().join(".tools/claude-code/node_modules/.bin/claude"),
            "the default location",
        ),
    };
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "Claude Code CLI not found at {} ({source}). These tests run the REAL CLI {CLAUDE_CODE_VERSION}: \
             run `scripts/install-claude-code.sh` (needs the npm registry), or set ORCA_TEST_CLAUDE_BIN to a claude {CLAUDE_CODE_VERSION} binary.",
            bin.display()
        ))
    }
}

/// The pinned Claude Code binary (see [`locate_claude`]). Panics, failing the test (never skipping it),
/// with the install hint when it is missing.
pub fn claude_bin() -> PathBuf {
    match locate_claude(std::env::var_os("ORCA_TEST_CLAUDE_BIN")) {
        Ok(p) => p,
        Err(msg) => panic!("{msg}"),
    }
}

/// Whether the tests run as root (then `IS_SANDBOX=1` is needed for `--dangerously-skip-permissions`).
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Environment for an offline CLI run against the fake at `url` with state under `home`
/// (research note §2). Retries 0 and a 3 s request timeout; override by pushing later entries.
/// Includes PATH from the current process so the Bash tool works after `env_clear()`.
pub fn claude_env(home: &Path, url: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("HOME", home.display().to_string()),
        ("ANTHROPIC_BASE_URL", url.to_string()),
        ("ANTHROPIC_API_KEY", "sk-test".to_string()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".to_string()),
        ("DISABLE_TELEMETRY", "1".to_string()),
        ("DISABLE_AUTOUPDATER", "1".to_string()),
        ("CLAUDE_CODE_MAX_RETRIES", "0".to_string()),
        ("API_TIMEOUT_MS", "3000".to_string()),
        (
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_string()),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if running_as_root() {
        env.push(("IS_SANDBOX".to_string(), "1".to_string()));
    }
    env
}

/// Names of inherited variables that could steer the CLI away from the fake (ANTHROPIC_*, CLAUDE*,
/// proxies); remove them from a child's environment when not using `env_clear()`.
pub fn inherited_vars_to_remove() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| {
            let u = k.to_ascii_uppercase();
            u.starts_with("ANTHROPIC_")
                || u.starts_with("CLAUDE")
                || u.ends_with("_PROXY")
                || u == "IS_SANDBOX"
        })
        .collect()
}

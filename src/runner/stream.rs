//! Claude Code's `--output-format stream-json` protocol: a pure parser of one stdout line
//! into a [`StreamEvent`], and a bounded line reader that never buffers an over-long line.

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

/// Longest stdout line that is kept and parsed; longer lines are skipped (but still logged).
pub const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;

/// One tool call the agent made: the tool's name and what it acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolUse {
    /// The call's `id` (its result names it as `tool_use_id`).
    pub id: Option<String>,
    pub name: String,
    /// `file_path`, `command`, `pattern`, `path`, `url` or `notebook_path` of the input.
    pub target: Option<String>,
}

/// One tool result sent back to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolResult {
    pub tool_use_id: Option<String>,
    pub is_error: bool,
    pub content: Option<String>,
}

/// The final `result` line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResultLine {
    /// `success`, `error_max_turns`, `error_during_execution`, ... (NOT a verdict by itself).
    pub subtype: String,
    pub is_error: bool,
    pub api_error_status: Option<u16>,
    /// The final answer (or the error text).
    pub result: Option<String>,
    pub session_id: Option<String>,
    pub num_turns: Option<u32>,
    pub total_cost_usd: Option<f64>,
    pub usage: Option<Value>,
    pub errors: Vec<String>,
    pub terminal_reason: Option<String>,
    pub stop_reason: Option<String>,
}

/// What one stdout line says.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// `{"type":"system","subtype":"init",...}`, the first line.
    Init {
        session_id: Option<String>,
        model: Option<String>,
        /// `claude_code_version`.
        version: Option<String>,
    },
    /// One content block of an assistant message.
    Assistant {
        message_id: Option<String>,
        model: Option<String>,
        tool_uses: Vec<ToolUse>,
        text: Option<String>,
        /// Set on the synthetic message that precedes an API error result.
        error: Option<String>,
    },
    /// Tool results going back to the model.
    User(Vec<ToolResult>),
    /// `{"type":"system","subtype":"api_retry",...}`.
    ApiRetry {
        attempt: Option<u32>,
        max_retries: Option<u32>,
        retry_delay_ms: Option<f64>,
        error_status: Option<u16>,
        error: Option<String>,
    },
    Result(ResultLine),
    /// Valid JSON of another kind (stream_event, task_started, ...): `type` or `type/subtype`.
    Other(String),
    /// Not a JSON object.
    Garbage,
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn u32_of(v: &Value, key: &str) -> Option<u32> {
    v.get(key)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
}

fn u16_of(v: &Value, key: &str) -> Option<u16> {
    v.get(key)
        .and_then(Value::as_u64)
        .and_then(|n| u16::try_from(n).ok())
}

/// The most telling field of a tool input.
fn tool_target(input: &Value) -> Option<String> {
    [
        "file_path",
        "notebook_path",
        "command",
        "pattern",
        "path",
        "url",
        "query",
    ]
    .iter()
    .find_map(|k| input.get(*k).and_then(Value::as_str))
    .map(str::to_owned)
}

/// Text of a tool_result `content`: a string, or a list of `{type:text,text}` blocks.
fn content_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => {
            let parts: Vec<&str> = items
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect();
            (!parts.is_empty()).then(|| parts.join("\n"))
        }
        _ => None,
    }
}

/// The fields Orca reads from the `system/init` and `result` lines, taken in one typed pass
/// that skips everything else without building it (the init line lists every tool, command,
/// agent and skill; as a [`Value`] it cost most of a run's stream parsing).
#[derive(serde::Deserialize)]
struct InitOrResult {
    #[serde(rename = "type")]
    kind: String,
    subtype: Option<String>,
    session_id: Option<String>,
    model: Option<String>,
    claude_code_version: Option<String>,
    is_error: Option<bool>,
    api_error_status: Option<u64>,
    result: Option<String>,
    num_turns: Option<u64>,
    total_cost_usd: Option<f64>,
    usage: Option<Value>,
    errors: Option<Vec<Value>>,
    terminal_reason: Option<String>,
    stop_reason: Option<String>,
}

impl InitOrResult {
    fn into_event(self) -> Option<StreamEvent> {
        let subtype = self.subtype.unwrap_or_default();
        match (self.kind.as_str(), subtype.as_str()) {
            ("system", "init") => Some(StreamEvent::Init {
                session_id: self.session_id,
                model: self.model,
                version: self.claude_code_version,
            }),
            ("result", _) => Some(StreamEvent::Result(ResultLine {
                subtype,
                is_error: self.is_error.unwrap_or(false),
                api_error_status: self.api_error_status.and_then(|n| u16::try_from(n).ok()),
                result: self.result,
                session_id: self.session_id,
                num_turns: self.num_turns.and_then(|n| u32::try_from(n).ok()),
                total_cost_usd: self.total_cost_usd,
                usage: self.usage,
                errors: self.errors.map(error_texts).unwrap_or_default(),
                terminal_reason: self.terminal_reason,
                stop_reason: self.stop_reason,
            })),
            _ => None,
        }
    }
}

/// A result line's `errors`: strings as they are, anything else as JSON text.
fn error_texts(errors: Vec<Value>) -> Vec<String> {
    errors
        .into_iter()
        .map(|e| match e {
            Value::String(s) => s,
            other => other.to_string(),
        })
        .collect()
}

/// Parses one stdout line (without or with its trailing newline).
pub fn parse_line(line: &[u8]) -> StreamEvent {
    let line = line.trim_ascii();
    // The CLI writes `type` (and for init `subtype`) first: those lines take the typed pass;
    // one it refuses (a field of an unexpected type, say) is read the general way below.
    if line.starts_with(br#"{"type":"result""#)
        || line.starts_with(br#"{"type":"system","subtype":"init""#)
    {
        if let Some(ev) = serde_json::from_slice::<InitOrResult>(line)
            .ok()
            .and_then(InitOrResult::into_event)
        {
            return ev;
        }
    }
    parse_value_line(line)
}

/// [`parse_line`] through a [`Value`]: any line, whatever its field types.
fn parse_value_line(line: &[u8]) -> StreamEvent {
    let v: Value = match serde_json::from_slice(line) {
        Ok(v @ Value::Object(_)) => v,
        _ => return StreamEvent::Garbage,
    };
    let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
    let subtype = v.get("subtype").and_then(Value::as_str).unwrap_or("");
    match (kind, subtype) {
        ("system", "init") => StreamEvent::Init {
            session_id: str_of(&v, "session_id"),
            model: str_of(&v, "model"),
            version: str_of(&v, "claude_code_version"),
        },
        ("system", "api_retry") => StreamEvent::ApiRetry {
            attempt: u32_of(&v, "attempt"),
            max_retries: u32_of(&v, "max_retries"),
            retry_delay_ms: v.get("retry_delay_ms").and_then(Value::as_f64),
            error_status: u16_of(&v, "error_status"),
            error: str_of(&v, "error"),
        },
        ("assistant", _) => {
            let msg = v.get("message").unwrap_or(&Value::Null);
            let mut tool_uses = Vec::new();
            let mut texts = Vec::new();
            if let Some(blocks) = msg.get("content").and_then(Value::as_array) {
                for b in blocks {
                    match b.get("type").and_then(Value::as_str) {
                        Some("tool_use") => tool_uses.push(ToolUse {
                            id: str_of(b, "id"),
                            name: str_of(b, "name").unwrap_or_else(|| "?".into()),
                            target: b.get("input").and_then(tool_target),
                        }),
                        Some("text") => {
                            if let Some(t) = b.get("text").and_then(Value::as_str) {
                                texts.push(t);
                            }
                        }
                        _ => {}
                    }
                }
            }
            StreamEvent::Assistant {
                message_id: str_of(msg, "id"),
                model: str_of(msg, "model"),
                tool_uses,
                text: (!texts.is_empty()).then(|| texts.join("\n")),
                error: str_of(&v, "error"),
            }
        }
        ("user", _) => {
            let results = v
                .get("message")
                .and_then(|m| m.get("content"))
                .and_then(Value::as_array)
                .map(|blocks| {
                    blocks
                        .iter()
                        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
                        .map(|b| ToolResult {
                            tool_use_id: str_of(b, "tool_use_id"),
                            is_error: b.get("is_error").and_then(Value::as_bool).unwrap_or(false),
                            content: b.get("content").and_then(content_text),
                        })
                        .collect()
                })
                .unwrap_or_default();
            StreamEvent::User(results)
        }
        ("result", _) => StreamEvent::Result(ResultLine {
            subtype: subtype.to_owned(),
            is_error: v.get("is_error").and_then(Value::as_bool).unwrap_or(false),
            api_error_status: u16_of(&v, "api_error_status"),
            result: str_of(&v, "result"),
            session_id: str_of(&v, "session_id"),
            num_turns: u32_of(&v, "num_turns"),
            total_cost_usd: v.get("total_cost_usd").and_then(Value::as_f64),
            usage: v.get("usage").filter(|u| !u.is_null()).cloned(),
            errors: v
                .get("errors")
                .and_then(Value::as_array)
                .map(|a| error_texts(a.clone()))
                .unwrap_or_default(),
            terminal_reason: str_of(&v, "terminal_reason"),
            stop_reason: str_of(&v, "stop_reason"),
        }),
        _ if subtype.is_empty() => StreamEvent::Other(kind.to_owned()),
        _ => StreamEvent::Other(format!("{kind}/{subtype}")),
    }
}

/// One line read by [`read_line_bounded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineRead {
    /// A line (in the caller's buffer, without its newline).
    Line,
    /// A line longer than the cap: its bytes were logged but not kept; the buffer is empty.
    TooLong,
    /// End of the stream, nothing read.
    Eof,
}

/// Reads one line into `buf` (cleared first), keeping at most `cap` bytes. Every byte read,
/// newline included, is copied to `log` as it is consumed, so the log is the exact stream
/// while memory stays bounded by `cap` plus the reader's buffer.
pub async fn read_line_bounded<R, W>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
    mut log: Option<&mut W>,
) -> std::io::Result<LineRead>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    buf.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let avail = reader.fill_buf().await?;
        if avail.is_empty() {
            return Ok(match (any, too_long) {
                (false, _) => LineRead::Eof,
                (true, true) => LineRead::TooLong,
                (true, false) => LineRead::Line,
            });
        }
        any = true;
        let (chunk, found) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (&avail[..=i], true),
            None => (avail, false),
        };
        if let Some(w) = log.as_mut() {
            // A failing log must not stop the run; the caller notices on flush.
            let _ = w.write_all(chunk).await;
        }
        if !too_long {
            let body = if found {
                &chunk[..chunk.len() - 1]
            } else {
                chunk
            };
            if buf.len() + body.len() > cap {
                too_long = true;
                buf.clear();
                buf.shrink_to(64 * 1024);
            } else {
                buf.extend_from_slice(body);
            }
        }
        let n = chunk.len();
        reader.consume(n);
        if found {
            return Ok(if too_long {
                LineRead::TooLong
            } else {
                LineRead::Line
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The typed pass of `init` and `result` lines says what the general one says, for the
    /// lines the CLI writes and for odd ones (nulls, wrong types, duplicates, no subtype).
    #[test]
    fn typed_pass_agrees_with_the_general_one() {
        let lines: &[&str] = &[
            r#"{"type":"system","subtype":"init","cwd":"/w","session_id":"8bbb55da-1","tools":["Task","Bash","Write"],"mcp_servers":[],"model":"claude-opus-4-8[1m]","permissionMode":"default","slash_commands":["a","b"],"apiKeySource":"ANTHROPIC_API_KEY","claude_code_version":"2.1.197","output_style":"default","agents":[{"n":1}],"skills":[],"plugins":[],"analytics_disabled":true,"uuid":"u","memory_paths":{"auto":"/m"},"fast_mode_state":"off"}"#,
            r#"{"type":"system","subtype":"init","session_id":null,"model":7}"#,
            r#"{"type":"system","subtype":"init","model":"a","model":"b"}"#,
            r#"{"type":"system","subtype":"initx","session_id":"s"}"#,
            r#"{"type":"result","subtype":"success","is_error":false,"api_error_status":null,"duration_ms":168,"duration_api_ms":28,"ttft_ms":162,"num_turns":1,"result":"Hello from fake.","stop_reason":"end_turn","session_id":"8bbb55da-1","total_cost_usd":0.001,"usage":{"input_tokens":100,"output_tokens":20,"server_tool_use":{"web_search_requests":0}},"modelUsage":{"m":{"costUSD":0.001}},"permission_denials":[],"terminal_reason":"completed","uuid":"u"}"#,
            r#"{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":3,"stop_reason":"tool_use","terminal_reason":"max_turns","errors":["Reached maximum number of turns (2)",{"code":1}]}"#,
            r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":500,"result":"API Error: 500","total_cost_usd":0,"usage":null,"modelUsage":{}}"#,
            r#"{"type":"result","is_error":"yes","num_turns":-1,"api_error_status":70000,"total_cost_usd":"0.1"}"#,
            r#"{"type":"result","num_turns":4294967296,"api_error_status":70000,"errors":"not a list"}"#,
            r#"{"type":"result","subtype":"success","result":"a","result":"b"}"#,
            r#"{"type":"result"}"#,
            r#"{"type":"result" "#,
            concat!(
                "  ",
                r#"{"type":"result","subtype":"success","num_turns":2}"#,
                "\n"
            ),
        ];
        for line in lines {
            let general = parse_value_line(line.trim().as_bytes());
            assert_eq!(parse_line(line.as_bytes()), general, "{line}");
        }
        // The cases above do take the typed pass where they can.
        let typed = |l: &str| {
            serde_json::from_slice::<InitOrResult>(l.as_bytes())
                .ok()
                .and_then(InitOrResult::into_event)
        };
        assert!(typed(lines[0]).is_some() && typed(lines[4]).is_some());
        assert!(typed(lines[1]).is_none() && typed(lines[7]).is_none());
    }

    #[test]
    fn init_line() {
        let l = br#"{"type":"system","subtype":"init","cwd":"/w","session_id":"8bbb55da-1","model":"claude-opus-4-8[1m]","claude_code_version":"2.1.197"}"#;
        assert_eq!(
            parse_line(l),
            StreamEvent::Init {
                session_id: Some("8bbb55da-1".into()),
                model: Some("claude-opus-4-8[1m]".into()),
                version: Some("2.1.197".into()),
            }
        );
    }

    #[test]
    fn assistant_tool_use_and_text() {
        let l = br#"{"type":"assistant","message":{"id":"msg_1","model":"claude-opus-4-8","content":[{"type":"tool_use","id":"toolu_1","name":"Write","input":{"file_path":"/w/hello.txt","content":"x"}},{"type":"text","text":"hi"}]},"session_id":"s"}"#;
        assert_eq!(
            parse_line(l),
            StreamEvent::Assistant {
                message_id: Some("msg_1".into()),
                model: Some("claude-opus-4-8".into()),
                tool_uses: vec![ToolUse {
                    id: Some("toolu_1".into()),
                    name: "Write".into(),
                    target: Some("/w/hello.txt".into())
                }],
                text: Some("hi".into()),
                error: None,
            }
        );
        let bash = br#"{"type":"assistant","message":{"id":"m","content":[{"type":"tool_use","name":"Bash","input":{"command":"ls -la"}}]}}"#;
        match parse_line(bash) {
            StreamEvent::Assistant { tool_uses, .. } => {
                assert_eq!(tool_uses[0].target.as_deref(), Some("ls -la"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn synthetic_error_assistant() {
        let l = br#"{"type":"assistant","message":{"id":"x","model":"<synthetic>","content":[{"type":"text","text":"API Error: 500 boom"}]},"error":"server_error"}"#;
        match parse_line(l) {
            StreamEvent::Assistant { model, error, .. } => {
                assert_eq!(model.as_deref(), Some("<synthetic>"));
                assert_eq!(error.as_deref(), Some("server_error"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn user_tool_result() {
        let l = br#"{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_1","type":"tool_result","content":"/w","is_error":false}]}}"#;
        assert_eq!(
            parse_line(l),
            StreamEvent::User(vec![ToolResult {
                tool_use_id: Some("toolu_1".into()),
                is_error: false,
                content: Some("/w".into()),
            }])
        );
    }

    #[test]
    fn api_retry() {
        let l = br#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":2,"retry_delay_ms":538.08,"error_status":500,"error":"server_error"}"#;
        assert_eq!(
            parse_line(l),
            StreamEvent::ApiRetry {
                attempt: Some(1),
                max_retries: Some(2),
                retry_delay_ms: Some(538.08),
                error_status: Some(500),
                error: Some("server_error".into()),
            }
        );
    }

    #[test]
    fn result_success() {
        let l = br#"{"type":"result","subtype":"success","is_error":false,"api_error_status":null,"num_turns":2,"result":"Hello.","stop_reason":"end_turn","session_id":"s1","total_cost_usd":0.001,"usage":{"input_tokens":100,"output_tokens":20},"terminal_reason":"completed"}"#;
        let StreamEvent::Result(r) = parse_line(l) else {
            panic!("not a result")
        };
        assert_eq!(r.subtype, "success");
        assert!(!r.is_error);
        assert_eq!(r.api_error_status, None);
        assert_eq!(r.result.as_deref(), Some("Hello."));
        assert_eq!(r.num_turns, Some(2));
        assert_eq!(r.total_cost_usd, Some(0.001));
        assert_eq!(r.usage.unwrap()["output_tokens"], 20);
        assert_eq!(r.terminal_reason.as_deref(), Some("completed"));
    }

    #[test]
    fn result_max_turns_and_api_error() {
        let l = br#"{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":3,"errors":["Reached maximum number of turns (2)"],"terminal_reason":"max_turns"}"#;
        let StreamEvent::Result(r) = parse_line(l) else {
            panic!()
        };
        assert_eq!(r.subtype, "error_max_turns");
        assert_eq!(r.errors, vec!["Reached maximum number of turns (2)"]);
        assert_eq!(r.result, None);
        let l = br#"{"type":"result","subtype":"success","is_error":true,"api_error_status":529,"result":"API Error: 529 overloaded","modelUsage":{}}"#;
        let StreamEvent::Result(r) = parse_line(l) else {
            panic!()
        };
        assert!(r.is_error);
        assert_eq!(r.api_error_status, Some(529));
    }

    #[test]
    fn other_and_garbage() {
        assert_eq!(
            parse_line(br#"{"type":"system","subtype":"task_started"}"#),
            StreamEvent::Other("system/task_started".into())
        );
        assert_eq!(
            parse_line(br#"{"type":"stream_event"}"#),
            StreamEvent::Other("stream_event".into())
        );
        assert_eq!(parse_line(b"not json"), StreamEvent::Garbage);
        assert_eq!(parse_line(b"[1,2]"), StreamEvent::Garbage);
        assert_eq!(parse_line(b"\"str\""), StreamEvent::Garbage);
        assert_eq!(parse_line(b""), StreamEvent::Garbage);
        assert_eq!(parse_line(b"\xff\xfe{"), StreamEvent::Garbage);
        // Trailing CR/LF is fine.
        assert_eq!(
            parse_line(b"{\"type\":\"x\"}\r\n"),
            StreamEvent::Other("x".into())
        );
    }

    #[tokio::test]
    async fn bounded_reader_skips_long_lines_and_logs_everything() {
        let mut input: Vec<u8> = Vec::new();
        input.extend_from_slice(b"short\n");
        input.extend(std::iter::repeat_n(b'x', 100));
        input.extend_from_slice(b"\nexact-ten!\nlast");
        let mut reader = tokio::io::BufReader::with_capacity(7, &input[..]);
        let mut log: Vec<u8> = Vec::new();
        let mut buf = Vec::new();
        let mut got = Vec::new();
        loop {
            let r = read_line_bounded(&mut reader, &mut buf, 10, Some(&mut log))
                .await
                .unwrap();
            if r == LineRead::Eof {
                break;
            }
            got.push((r, String::from_utf8(buf.clone()).unwrap()));
        }
        assert_eq!(
            got,
            vec![
                (LineRead::Line, "short".to_string()),
                (LineRead::TooLong, String::new()),
                (LineRead::Line, "exact-ten!".to_string()),
                (LineRead::Line, "last".to_string()),
            ]
        );
        assert_eq!(log, input);
    }
}

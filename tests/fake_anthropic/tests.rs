//! Self-tests of the fake Anthropic server over raw TCP (no CLI needed).
//! Owns: HTTP parsing (keep-alive, chunked bodies), script order, SSE and error shapes.

use super::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn read_resp(r: &mut BufReader<TcpStream>, head_only: bool) -> Resp {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut body = Vec::new();
    let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    if head_only {
    } else if find("transfer-encoding").as_deref() == Some("chunked") {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        let len: usize = find("content-length").unwrap().parse().unwrap();
        body.resize(len, 0);
        r.read_exact(&mut body).unwrap();
    }
    Resp {
        status,
        headers,
        body: String::from_utf8(body).unwrap(),
    }
}

fn post(conn: &mut TcpStream, body: &str) {
    write!(
        conn,
        "POST /v1/messages?beta=true HTTP/1.1\r\nHost: x\r\nX-Api-Key: sk-test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
}

fn connect(fake: &FakeAnthropic) -> (TcpStream, BufReader<TcpStream>) {
    let c = TcpStream::connect(fake.url().trim_start_matches("http://")).unwrap();
    let r = BufReader::new(c.try_clone().unwrap());
    (c, r)
}

fn sse_events(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[test]
fn keep_alive_serves_head_then_script_in_order_and_repeats_last() {
    let fake = FakeAnthropic::start(vec![Reply::text("first"), Reply::text("second")]);
    let (mut c, mut r) = connect(&fake);
    c.write_all(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let head = read_resp(&mut r, true);
    assert_eq!(head.status, 200);
    let mut texts = Vec::new();
    for _ in 0..3 {
        post(
            &mut c,
            r#"{"model":"m1","messages":[{"role":"user","content":"hi"}]}"#,
        );
        let resp = read_resp(&mut r, false);
        assert_eq!(resp.status, 200);
        let v: Value = serde_json::from_str(&resp.body).unwrap();
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(v["model"], "m1");
        texts.push(v["content"][0]["text"].as_str().unwrap().to_string());
    }
    assert_eq!(texts, ["first", "second", "second"]);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 4);
    assert_eq!(reqs[0].method, "HEAD");
    assert_eq!(reqs[1].path, "/v1/messages?beta=true");
    assert_eq!(reqs[1].header("X-API-KEY"), Some("sk-test"));
    assert_eq!(reqs[1].user_text(), "hi");
    assert_eq!(fake.messages_requests().len(), 3);
}

#[test]
fn chunked_request_body_is_parsed() {
    let fake = FakeAnthropic::start(vec![Reply::text("ok")]);
    let (mut c, mut r) = connect(&fake);
    let body =
        r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"chunky"}]}]}"#;
    let (a, b) = body.split_at(10);
    write!(
        c,
        "POST /v1/messages HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    )
    .unwrap();
    assert_eq!(read_resp(&mut r, false).status, 200);
    assert_eq!(fake.requests()[0].user_text(), "chunky");
}

#[test]
fn streaming_tool_use_has_the_standard_sse_sequence() {
    let fake = FakeAnthropic::start(vec![Reply::tool("Bash", json!({"command": "echo hi"}))]);
    let (mut c, mut r) = connect(&fake);
    post(&mut c, r#"{"model":"m","stream":true,"messages":[]}"#);
    let resp = read_resp(&mut r, false);
    assert!(resp
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let events = sse_events(&resp.body);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(events[1]["content_block"]["name"], "Bash");
    let partial: Value =
        serde_json::from_str(events[2]["delta"]["partial_json"].as_str().unwrap()).unwrap();
    assert_eq!(partial, json!({"command": "echo hi"}));
    assert_eq!(events[4]["delta"]["stop_reason"], "tool_use");
    assert_eq!(events[4]["usage"]["output_tokens"], FAKE_OUTPUT_TOKENS);
    assert_eq!(
        events[0]["message"]["usage"]["input_tokens"],
        FAKE_INPUT_TOKENS
    );
}

#[test]
fn streaming_text_deltas_concatenate_to_the_text() {
    let fake = FakeAnthropic::start(vec![Reply::text("héllo wörld")]);
    let (mut c, mut r) = connect(&fake);
    post(&mut c, r#"{"stream":true}"#);
    let events = sse_events(&read_resp(&mut r, false).body);
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "content_block_delta")
        .map(|e| e["delta"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "héllo wörld");
}

#[test]
fn status_replies_carry_the_error_shape_and_retry_after() {
    let fake = FakeAnthropic::start(vec![
        Reply::error(529, "Overloaded"),
        Reply::error_retry_after(429, "slow down", 1),
    ]);
    let (mut c, mut r) = connect(&fake);
    post(&mut c, "{}");
    let a = read_resp(&mut r, false);
    assert_eq!(a.status, 529);
    let v: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(
        v,
        json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})
    );
    post(&mut c, "{}");
    let b = read_resp(&mut r, false);
    assert_eq!(b.status, 429);
    assert_eq!(b.header("retry-after"), Some("1"));
}

#[test]
fn repeat_entry_answers_forever_and_hang_records_then_stays_silent() {
    let fake = FakeAnthropic::start(vec![Reply::text("a").forever(), Reply::text("never")]);
    let (mut c, mut r) = connect(&fake);
    for _ in 0..3 {
        post(&mut c, "{}");
        let v: Value = serde_json::from_str(&read_resp(&mut r, false).body).unwrap();
        assert_eq!(v["content"][0]["text"], "a");
    }
    drop(fake);

    let fake = FakeAnthropic::start(vec![Reply::Hang]);
    let (mut c, _r) = connect(&fake);
    post(&mut c, r#"{"messages":[{"role":"user","content":"wait"}]}"#);
    c.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 16];
    let err = c.read(&mut buf).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err:?}"
    );
    assert_eq!(fake.messages_requests()[0].user_text(), "wait");
    drop(fake); // must not block on the hanging connection
}

#[test]
fn unknown_routes_get_404_and_malformed_is_unparseable() {
    let fake = FakeAnthropic::start(vec![Reply::Malformed]);
    let (mut c, mut r) = connect(&fake);
    c.write_all(b"GET /v1/models HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_resp(&mut r, false).status, 404);
    post(&mut c, "{}");
    let m = read_resp(&mut r, false);
    assert_eq!(m.status, 200);
    assert!(serde_json::from_str::<Value>(&m.body).is_err());
}

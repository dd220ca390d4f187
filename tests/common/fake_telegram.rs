//! A fake Telegram Bot API on 127.0.0.1 for the bot's tests: real HTTP/1.1, the real
//! routes (`/bot<token>/<method>`) and answers (`{"ok":..,"result":..}`), scripted updates
//! (long polling honours `offset` and `timeout`), scripted failures, every call recorded.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// One recorded call.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub body: Value,
    pub at: Instant,
    /// The HTTP status answered.
    pub status: u16,
}

#[derive(Default)]
struct State {
    updates: Vec<Value>,
    calls: Vec<Call>,
    next_message: HashMap<i64, i64>,
    /// (method, status, description, retry_after) answered to the next calls of `method`.
    failures: VecDeque<(String, u16, String, Option<u64>)>,
    /// (method, wait) before answering the next calls of `method`.
    delays: VecDeque<(String, Duration)>,
    raw_paths: Vec<String>,
    /// The method of every request received, answered or not yet.
    received: Vec<String>,
}

struct Shared {
    token: String,
    state: Mutex<State>,
    cv: Condvar,
}

pub struct FakeTelegram {
    shared: Arc<Shared>,
    port: u16,
}

impl FakeTelegram {
    pub fn start(token: &str) -> FakeTelegram {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
        });
        let s = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    let _ = serve(stream, &s);
                });
            }
        });
        FakeTelegram { shared, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Queues an update (its `update_id` is taken as given).
    pub fn push(&self, update: Value) {
        self.shared.state.lock().unwrap().updates.push(update);
        self.shared.cv.notify_all();
    }

    /// The next `n` calls of `method` answer this error.
    pub fn fail(
        &self,
        method: &str,
        n: usize,
        status: u16,
        description: &str,
        retry_after: Option<u64>,
    ) {
        let mut st = self.shared.state.lock().unwrap();
        for _ in 0..n {
            st.failures.push_back((
                method.to_owned(),
                status,
                description.to_owned(),
                retry_after,
            ));
        }
    }

    /// The next `n` calls of `method` are answered only after `wait`.
    pub fn delay(&self, method: &str, n: usize, wait: Duration) {
        let mut st = self.shared.state.lock().unwrap();
        for _ in 0..n {
            st.delays.push_back((method.to_owned(), wait));
        }
    }

    /// Waits until a request for `method` has arrived (answered or not).
    pub fn wait_received(&self, method: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !self
            .shared
            .state
            .lock()
            .unwrap()
            .received
            .iter()
            .any(|m| m == method)
        {
            assert!(Instant::now() < deadline, "no {method} request arrived");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.shared.state.lock().unwrap().calls.clone()
    }

    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.method == method)
            .collect()
    }

    /// Every path requested (with the token), to check nothing else was asked.
    pub fn paths(&self) -> Vec<String> {
        self.shared.state.lock().unwrap().raw_paths.clone()
    }

    /// Successful sendMessage calls to `chat`.
    pub fn sent_to(&self, chat: i64) -> Vec<Call> {
        self.calls_of("sendMessage")
            .into_iter()
            .filter(|c| c.status == 200 && c.body["chat_id"] == chat)
            .collect()
    }

    /// Waits until `cond` holds on the calls (90 s at most).
    pub fn wait(&self, what: &str, cond: impl Fn(&[Call]) -> bool) -> Vec<Call> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let calls = self.calls();
            if cond(&calls) {
                return calls;
            }
            if Instant::now() > deadline {
                let shown: Vec<String> = calls
                    .iter()
                    .map(|c| format!("{} {} {}", c.status, c.method, c.body))
                    .collect();
                panic!("timed out waiting for {what}; calls:\n{}", shown.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits for a call of `method` for which `pred` holds and returns the first such call.
    pub fn wait_call(&self, method: &str, what: &str, pred: impl Fn(&Call) -> bool) -> Call {
        let is = |c: &Call| c.method == method && pred(c);
        let calls = self.wait(what, |calls| calls.iter().any(is));
        calls.into_iter().find(is).expect("the call waited for")
    }

    /// Waits until at least `n` calls of `method` satisfy `pred`; returns them.
    pub fn wait_count(
        &self,
        method: &str,
        what: &str,
        n: usize,
        pred: impl Fn(&Call) -> bool,
    ) -> Vec<Call> {
        let is = |c: &Call| c.method == method && pred(c);
        let calls = self.wait(what, |calls| calls.iter().filter(|c| is(c)).count() >= n);
        calls.into_iter().filter(is).collect()
    }

    /// Forgets the scripted failures not yet answered.
    pub fn clear_failures(&self) {
        self.shared.state.lock().unwrap().failures.clear();
    }

    /// Waits for a successful sendMessage to `chat` whose text contains `needle`.
    pub fn wait_text(&self, chat: i64, needle: &str) -> Call {
        let calls = self.wait(&format!("a message to {chat} with {needle:?}"), |calls| {
            calls.iter().any(|c| is_text_to(c, chat, needle))
        });
        calls
            .into_iter()
            .find(|c| is_text_to(c, chat, needle))
            .unwrap()
    }
}

fn is_text_to(c: &Call, chat: i64, needle: &str) -> bool {
    c.method == "sendMessage"
        && c.status == 200
        && c.body["chat_id"] == chat
        && c.body["text"].as_str().is_some_and(|t| t.contains(needle))
}

/// A private-chat text message from `user` (chat id = user id), optionally a reply.
pub fn message(update_id: i64, user: i64, text: &str, reply_to: Option<i64>) -> Value {
    let mut m = json!({
        "message_id": update_id * 10,
        "from": {"id": user, "is_bot": false, "first_name": "Ada", "username": "ada"},
        "chat": {"id": user, "first_name": "Ada", "username": "ada", "type": "private"},
        "date": 1_700_000_000,
        "text": text,
    });
    if text.starts_with('/') {
        let len = text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .encode_utf16()
            .count();
        m["entities"] = json!([{"offset": 0, "length": len, "type": "bot_command"}]);
    }
    if let Some(r) = reply_to {
        m["reply_to_message"] = json!({
            "message_id": r,
            "from": {"id": 7_000_000_001_i64, "is_bot": true, "first_name": "Orca", "username": "orca_test_bot"},
            "chat": {"id": user, "type": "private"},
            "date": 1_700_000_000,
            "text": "earlier",
        });
    }
    json!({"update_id": update_id, "message": m})
}

/// A message from `user` in the group chat `chat` (negative id).
pub fn group_message(update_id: i64, chat: i64, user: i64, text: &str) -> Value {
    let mut u = message(update_id, user, text, None);
    u["message"]["chat"] = json!({"id": chat, "title": "Team", "type": "supergroup"});
    u
}

/// A button press by `user` on message `message_id` of its private chat.
pub fn press(update_id: i64, user: i64, message_id: i64, data: &str) -> Value {
    json!({"update_id": update_id, "callback_query": {
        "id": format!("cbq{update_id}"),
        "from": {"id": user, "is_bot": false, "first_name": "Ada", "username": "ada"},
        "message": {"message_id": message_id, "chat": {"id": user, "type": "private"}, "date": 1_700_000_000, "text": "x"},
        "chat_instance": "-5399",
        "data": data,
    }})
}

fn serve(stream: TcpStream, s: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let _verb = parts.next().unwrap_or("");
        let path = parts.next().unwrap_or("").to_owned();
        let mut len = 0usize;
        let mut close = false;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                if k == "content-length" {
                    len = v.trim().parse().unwrap_or(0);
                }
                if k == "connection" && v.trim().eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
        }
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body)?;
        let body: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
        let (status, answer) = route(s, &path, body);
        let text = answer.to_string();
        write!(
            writer,
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        )?;
        writer.flush()?;
        if close {
            return Ok(());
        }
    }
}

fn error(code: u16, description: &str, retry_after: Option<u64>) -> (u16, Value) {
    let mut v = json!({"ok": false, "error_code": code, "description": description});
    if let Some(r) = retry_after {
        v["parameters"] = json!({ "retry_after": r });
    }
    (code, v)
}

/// Telegram's HTML check, in short: tags must be known and closed, `&` must start an entity.
fn html_ok(text: &str) -> bool {
    let known = [
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "code",
        "pre",
        "a",
        "blockquote",
        "tg-spoiler",
    ];
    let mut rest = text;
    let mut open: Vec<String> = Vec::new();
    while let Some(i) = rest.find(['<', '&']) {
        let tail = &rest[i..];
        if tail.starts_with('&') {
            let Some(end) = tail.find(';') else {
                return false;
            };
            let name = &tail[1..end];
            if !["lt", "gt", "amp", "quot"].contains(&name) && !name.starts_with('#') {
                return false;
            }
            rest = &tail[end + 1..];
        } else {
            let Some(end) = tail.find('>') else {
                return false;
            };
            let inner = &tail[1..end];
            let (closing, name) = match inner.strip_prefix('/') {
                Some(n) => (true, n),
                None => (false, inner.split_whitespace().next().unwrap_or("")),
            };
            if !known.contains(&name) {
                return false;
            }
            if closing {
                if open.pop().as_deref() != Some(name) {
                    return false;
                }
            } else {
                open.push(name.to_owned());
            }
            rest = &tail[end + 1..];
        }
    }
    open.is_empty()
}

fn check_text(body: &Value) -> Option<(u16, Value)> {
    let text = body["text"].as_str().unwrap_or("");
    if text.trim().is_empty() {
        return Some(error(400, "Bad Request: message text is empty", None));
    }
    if text.encode_utf16().count() > 4096 {
        return Some(error(400, "Bad Request: message is too long", None));
    }
    if body["parse_mode"] == "HTML" && !html_ok(text) {
        return Some(error(
            400,
            "Bad Request: can't parse entities: unsupported start tag or entity",
            None,
        ));
    }
    None
}

fn route(s: &Shared, path: &str, body: Value) -> (u16, Value) {
    let mut segs = path.trim_start_matches('/').splitn(2, '/');
    let bot = segs.next().unwrap_or("");
    let method = segs.next().unwrap_or("").to_owned();
    {
        let mut st = s.state.lock().unwrap();
        st.raw_paths.push(path.to_owned());
        st.received.push(method.clone());
    }
    let (status, answer) = if bot.strip_prefix("bot") != Some(s.token.as_str()) {
        error(401, "Unauthorized", None)
    } else {
        answer(s, &method, &body)
    };
    s.state.lock().unwrap().calls.push(Call {
        method,
        body,
        at: Instant::now(),
        status,
    });
    (status, answer)
}

fn answer(s: &Shared, method: &str, body: &Value) -> (u16, Value) {
    let delay = {
        let mut st = s.state.lock().unwrap();
        let i = st.delays.iter().position(|d| d.0 == method);
        i.and_then(|i| st.delays.remove(i)).map(|d| d.1)
    };
    if let Some(wait) = delay {
        std::thread::sleep(wait);
    }
    {
        let mut st = s.state.lock().unwrap();
        if let Some(i) = st.failures.iter().position(|f| f.0 == method) {
            let (_, code, d, r) = st.failures.remove(i).unwrap();
            return error(code, &d, r);
        }
    }
    let ok = |v: Value| (200, json!({"ok": true, "result": v}));
    match method {
        "getMe" => ok(
            json!({"id": 7_000_000_001_i64, "is_bot": true, "first_name": "Orca", "username": "orca_test_bot"}),
        ),
        "setMyCommands" | "deleteWebhook" | "answerCallbackQuery" => ok(json!(true)),
        "getUpdates" => {
            let offset = body["offset"].as_i64().unwrap_or(i64::MIN);
            let wait = Duration::from_secs(body["timeout"].as_u64().unwrap_or(0).min(5));
            let deadline = Instant::now() + wait;
            let mut st = s.state.lock().unwrap();
            loop {
                let due: Vec<Value> = st
                    .updates
                    .iter()
                    .filter(|u| u["update_id"].as_i64().unwrap_or(0) >= offset)
                    .cloned()
                    .collect();
                let now = Instant::now();
                if !due.is_empty() || now >= deadline {
                    return ok(Value::Array(due));
                }
                st = s.cv.wait_timeout(st, deadline - now).unwrap().0;
            }
        }
        "sendMessage" => {
            if let Some(e) = check_text(body) {
                return e;
            }
            let chat = body["chat_id"].as_i64().unwrap_or(0);
            let mut st = s.state.lock().unwrap();
            let n = st.next_message.entry(chat).or_insert(1000);
            *n += 1;
            ok(
                json!({"message_id": *n, "chat": {"id": chat, "type": "private"}, "date": 1_700_000_000, "text": body["text"]}),
            )
        }
        "editMessageText" => {
            if let Some(e) = check_text(body) {
                return e;
            }
            ok(
                json!({"message_id": body["message_id"], "chat": {"id": body["chat_id"], "type": "private"}, "date": 1_700_000_000, "text": body["text"]}),
            )
        }
        _ => error(404, "Not Found", None),
    }
}

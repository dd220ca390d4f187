//! A fake LLM server on 127.0.0.1 speaking Ollama's native API (`/api/version`,
//! `/api/tags`, `/api/chat`) or the OpenAI-compatible one (`/v1/models`,
//! `/v1/chat/completions`), with the wire formats of /work/shared/research/ollama-api.md.
//! Chat answers come from a script (first) or a closure on the request; every request is
//! recorded, and the most chat calls in flight at once is kept.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Which API the fake speaks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Ollama,
    OpenAi,
}

/// One scripted chat answer.
#[derive(Clone)]
pub enum Reply {
    /// The model's content: this JSON object, as a string in the API's envelope.
    Object(Value),
    /// The model's content as raw text (malformed JSON, say).
    Text(String),
    /// An error status with the API's error body.
    Status(u16, String),
    /// Waits, then answers.
    Slow(Duration, Box<Reply>),
    /// Waits until [`FakeLlm::release`] (at most 60 s), then answers.
    Held(Box<Reply>),
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Call {
    /// The user message's text (chat calls).
    pub fn user(&self) -> String {
        self.body["messages"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["role"] == "user"))
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
            .to_owned()
    }
    pub fn system(&self) -> String {
        self.body["messages"][0]["content"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// A chat call with messages (not the warm-up).
    pub fn is_question(&self) -> bool {
        (self.path.ends_with("/api/chat") || self.path.ends_with("/chat/completions"))
            && self.body["messages"]
                .as_array()
                .is_some_and(|m| !m.is_empty())
    }
    /// A routing question (its schema asks for a priority).
    pub fn is_routing(&self) -> bool {
        self.is_question() && self.schema().pointer("/properties/priority").is_some()
    }
    /// A summary question (its schema asks for verdicts).
    pub fn is_summary(&self) -> bool {
        self.is_question() && self.schema().pointer("/properties/verdicts").is_some()
    }
    /// The JSON Schema the call asked for (Ollama `format`, OpenAI `response_format`).
    pub fn schema(&self) -> Value {
        if let Some(f) = self.body.get("format") {
            return f.clone();
        }
        let rf = &self.body["response_format"];
        rf.pointer("/json_schema/schema")
            .or_else(|| rf.get("schema"))
            .cloned()
            .unwrap_or_else(|| {
                // Prompt mode: the schema is in the system message.
                let s = self.system();
                s.find('{')
                    .and_then(|i| serde_json::from_str(&s[i..]).ok())
                    .unwrap_or(Value::Null)
            })
    }
}

type Answer = Box<dyn Fn(&Call) -> Reply + Send>;

struct State {
    calls: Vec<Call>,
    script: VecDeque<Reply>,
    answer: Answer,
    models: Vec<String>,
    in_flight: usize,
    max_in_flight: usize,
    /// OpenAI: the `response_format` types refused, with the status and error text.
    refuse: Option<(u16, String, Vec<String>)>,
    released: bool,
}

pub struct FakeLlm {
    pub api: Api,
    port: u16,
    state: Arc<Mutex<State>>,
}

/// The default answers: a routing from the request's words, a summary with every
/// numbered criterion met.
pub fn default_answer(call: &Call) -> Reply {
    if call.is_summary() {
        let user = call.user();
        let verdicts: Vec<Value> = user
            .split("Criteria:\n")
            .nth(1)
            .unwrap_or("")
            .lines()
            .filter_map(|l| l.split_once(". "))
            .filter_map(|(n, _)| n.parse::<i64>().ok())
            .map(|n| json!({"criterion": n, "verdict": "met", "reason": "the output says so"}))
            .collect();
        return Reply::Object(
            json!({"done": "LLM summary: the work is done.", "left": "nothing", "verdicts": verdicts}),
        );
    }
    let user = call.user();
    let (ty, pr) = if user.contains("urgent") {
        ("code_review", "high")
    } else {
        ("analyze", "low")
    };
    let request = user
        .split("Request: ")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_owned();
    let folder = user
        .split_whitespace()
        .skip_while(|w| *w != "in")
        .nth(1)
        .map(|f| f.trim_end_matches([',', '.']).to_owned());
    Reply::Object(json!({
        "type": ty, "priority": pr, "folder": folder,
        "title": "LLM title", "prompt": format!("LLM prompt: {request}"),
    }))
}

impl FakeLlm {
    /// A server with `models`, answering with [`default_answer`].
    pub fn start(api: Api, models: &[&str]) -> FakeLlm {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State {
            calls: Vec::new(),
            script: VecDeque::new(),
            answer: Box::new(default_answer),
            models: models.iter().map(|m| m.to_string()).collect(),
            in_flight: 0,
            max_in_flight: 0,
            refuse: None,
            released: false,
        }));
        let s = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    let _ = serve(stream, api, &s);
                });
            }
        });
        FakeLlm { api, port, state }
    }

    /// `http://127.0.0.1:<port>` (Ollama) or `http://127.0.0.1:<port>/v1` (OpenAI).
    pub fn url(&self) -> String {
        match self.api {
            Api::Ollama => format!("http://127.0.0.1:{}", self.port),
            Api::OpenAi => format!("http://127.0.0.1:{}/v1", self.port),
        }
    }

    /// Queues answers for the next questions, before the closure's.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().script.extend(replies);
    }

    pub fn answer_with(&self, f: impl Fn(&Call) -> Reply + Send + 'static) {
        self.state.lock().unwrap().answer = Box::new(f);
    }

    /// Lets every held answer go.
    pub fn release(&self) {
        self.state.lock().unwrap().released = true;
    }

    /// OpenAI: refuses `response_format: json_schema` as llama-cpp-python does.
    pub fn refuse_json_schema(&self) {
        self.refuse_formats(500, "1 validation error: ('body', 'response_format', 'type'): Input should be 'text' or 'json_object'", &["json_schema"]);
    }

    /// OpenAI: answers a request whose `response_format.type` is one of `types` with
    /// `status` and `message` (a server that does not know that format).
    pub fn refuse_formats(&self, status: u16, message: &str, types: &[&str]) {
        self.state.lock().unwrap().refuse = Some((
            status,
            message.to_owned(),
            types.iter().map(|t| t.to_string()).collect(),
        ));
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn questions(&self) -> Vec<Call> {
        self.calls().into_iter().filter(Call::is_question).collect()
    }

    pub fn max_in_flight(&self) -> usize {
        self.state.lock().unwrap().max_in_flight
    }

    /// Waits (up to 30 s) until `cond` holds for the calls.
    pub fn wait(&self, what: &str, cond: impl Fn(&[Call]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if cond(&self.calls()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("timed out waiting for {what}; calls: {:#?}", self.calls());
    }
}

fn serve(stream: TcpStream, api: Api, s: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut headers = Vec::new();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let call = Call {
        method,
        path: path.clone(),
        headers,
        body,
    };
    let question = call.is_question();
    let reply = {
        let mut st = s.lock().unwrap();
        st.calls.push(call.clone());
        if question {
            st.in_flight += 1;
            st.max_in_flight = st.max_in_flight.max(st.in_flight);
        }
        route(&mut st, api, &call)
    };
    let reply = match reply {
        Reply::Held(r) => {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !s.lock().unwrap().released && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            *r
        }
        r => r,
    };
    let (status, body) = resolve(reply, api, &call, question);
    if question {
        s.lock().unwrap().in_flight -= 1;
    }
    let text = body.to_string();
    let mut stream = stream;
    let reason = if status == 200 { "OK" } else { "Error" };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    stream.flush()
}

/// What the request gets, before any delay.
fn route(st: &mut State, api: Api, call: &Call) -> Reply {
    let model = call.body["model"].as_str().unwrap_or("").to_owned();
    let known = st
        .models
        .iter()
        .any(|m| *m == model || *m == format!("{model}:latest"));
    match (api, call.method.as_str(), call.path.as_str()) {
        (Api::Ollama, "GET", "/api/version") => Reply::Object(json!({"version": "0.0.0-fake"})),
        (Api::Ollama, "GET", "/api/tags") => {
            let models: Vec<Value> = st.models.iter().map(|m| json!({"name": m, "model": m, "size": 1, "details": {"family": "llama", "families": null}})).collect();
            Reply::Object(json!({"models": models}))
        }
        (Api::OpenAi, "GET", "/v1/models") => {
            let data: Vec<Value> = st
                .models
                .iter()
                .map(|m| json!({"id": m, "object": "model", "created": 0, "owned_by": "library"}))
                .collect();
            Reply::Object(json!({"object": "list", "data": data}))
        }
        (Api::Ollama, "POST", "/api/chat") | (Api::OpenAi, "POST", "/v1/chat/completions") => {
            if !known && api == Api::Ollama {
                return Reply::Status(404, format!("model '{model}' not found"));
            }
            if let (Api::OpenAi, Some((status, message, types))) = (api, &st.refuse) {
                let asked = call.body["response_format"]["type"].as_str().unwrap_or("");
                if types.iter().any(|t| t == asked) {
                    return Reply::Status(*status, message.clone());
                }
            }
            if !call.is_question() {
                // The warm-up: an empty chat loads the model.
                return Reply::Text(String::new());
            }
            match st.script.pop_front() {
                Some(r) => r,
                None => (st.answer)(call),
            }
        }
        _ => Reply::Status(404, "no such endpoint".into()),
    }
}

/// The status and body of a reply, in the API's envelope.
fn resolve(reply: Reply, api: Api, call: &Call, question: bool) -> (u16, Value) {
    let model = call.body["model"].as_str().unwrap_or("").to_owned();
    let content = match reply {
        Reply::Slow(d, r) => {
            std::thread::sleep(d);
            return resolve(*r, api, call, question);
        }
        Reply::Held(r) => return resolve(*r, api, call, question),
        Reply::Status(code, message) => {
            let body = match api {
                Api::Ollama => json!({"error": message}),
                Api::OpenAi => {
                    json!({"error": {"message": message, "type": if code == 404 {"not_found_error"} else {"api_error"}, "param": null, "code": null}})
                }
            };
            return (code, body);
        }
        Reply::Object(v) if !call.path.contains("chat") => return (200, v),
        Reply::Object(v) => v.to_string(),
        Reply::Text(t) => t,
    };
    let body = match api {
        Api::Ollama => json!({
            "model": model, "created_at": "2026-12-04T00:00:00.000000Z",
            "message": {"role": "assistant", "content": content},
            "done_reason": if question {"stop"} else {"load"}, "done": true,
            "total_duration": 1000, "load_duration": 10, "prompt_eval_count": 10,
            "prompt_eval_duration": 100, "eval_count": 5, "eval_duration": 100,
        }),
        Api::OpenAi => json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1733445000,
            "model": model, "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }),
    };
    (200, body)
}

//! The LLM clients: Ollama's native API (`/api/version`, `/api/tags`, `/api/chat`) and any
//! OpenAI-compatible server (`/v1/chat/completions`), both asked for one JSON object.
//!
//! Ollama is sent the JSON Schema as `format`; an OpenAI-compatible server is asked with
//! `response_format: json_schema`, then `json_object` with the schema, then plain JSON
//! described in the prompt, and the first that works is remembered for that server. The
//! wanted JSON is always described in the prompt too (ollama#8162). Every answer is parsed
//! here and checked for shape by the caller.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::config::Secret;

/// Why an LLM call gave nothing usable. [`LlmError::kind`] is the `llm_fallback` reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    #[error("connection refused by {url}")]
    Refused { url: String },
    #[error("no answer within {ms} ms")]
    Timeout { ms: u64 },
    #[error("HTTP {status}: {message}")]
    Http { status: u16, message: String },
    #[error("model '{model}' is not available on the server; fix: `ollama pull {model}` (or set OLLAMA_MODEL / ORCA_LLM_MODEL to a model it has)")]
    ModelMissing { model: String },
    #[error("the answer is not JSON: {0}")]
    Malformed(String),
    #[error("the answer has the wrong shape: {0}")]
    WrongShape(String),
    #[error("{0}")]
    Transport(String),
    #[error(
        "the circuit breaker is open after repeated failures (rules decide for {secs_left} s more)"
    )]
    BreakerOpen { secs_left: u64 },
    #[error("the LLM is busy: {pending} routings already wait for it, one per agent slot; the rules route this one so that no agent slot waits")]
    Busy { pending: usize },
}

impl LlmError {
    /// A short name of the failure, for `llm_fallback` and the result's reasons.
    pub fn kind(&self) -> &'static str {
        match self {
            LlmError::Refused { .. } => "refused",
            LlmError::Timeout { .. } => "timeout",
            LlmError::Http { .. } => "http_error",
            LlmError::ModelMissing { .. } => "model_missing",
            LlmError::Malformed(_) => "malformed_json",
            LlmError::WrongShape(_) => "wrong_shape",
            LlmError::Transport(_) => "transport",
            LlmError::BreakerOpen { .. } => "breaker_open",
            LlmError::Busy { .. } => "busy",
        }
    }

    /// Whether one more try may help: a bad answer or a server error may, a refused
    /// connection, a timeout or a missing model will not (the breaker handles those).
    pub fn retryable(&self) -> bool {
        match self {
            LlmError::Malformed(_) | LlmError::WrongShape(_) | LlmError::Transport(_) => true,
            LlmError::Http { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// How an OpenAI-compatible server is asked for JSON (negotiated, then remembered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonMode {
    /// `response_format: {type: json_schema, json_schema: {name, schema}}`.
    JsonSchema,
    /// `response_format: {type: json_object, schema}` (llama-cpp-python).
    JsonObject,
    /// No `response_format`: the JSON is described in the prompt only.
    Prompt,
}

impl JsonMode {
    pub fn as_str(self) -> &'static str {
        match self {
            JsonMode::JsonSchema => "response_format json_schema",
            JsonMode::JsonObject => "response_format json_object with the schema",
            JsonMode::Prompt => "JSON described in the prompt",
        }
    }
    fn next(self) -> Option<JsonMode> {
        match self {
            JsonMode::JsonSchema => Some(JsonMode::JsonObject),
            JsonMode::JsonObject => Some(JsonMode::Prompt),
            JsonMode::Prompt => None,
        }
    }

    /// The mode to try after the server answered `status` with `message` to this one: the
    /// next when the server refused the `response_format` (a validation error, 400, 422 or
    /// 500 naming it), else None (the error stands).
    pub fn after_refusal(self, status: u16, message: &str) -> Option<JsonMode> {
        if matches!(status, 400 | 422 | 500) && refuses_format(message) {
            self.next()
        } else {
            None
        }
    }
}

/// What worked with each OpenAI-compatible server (by base URL) in this process: every
/// client of the same server starts from there.
static MODES: LazyLock<Mutex<HashMap<String, JsonMode>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Which server and model.
#[derive(Debug, Clone)]
pub enum Backend {
    Ollama {
        base: String,
        model: String,
    },
    OpenAi {
        /// e.g. `http://127.0.0.1:8080/v1`.
        base: String,
        model: String,
        key: Option<Secret>,
    },
}

/// One LLM server. Cheap to share (behind an `Arc`).
pub struct LlmClient {
    http: reqwest::Client,
    backend: Backend,
    timeout: Duration,
}

impl LlmClient {
    /// A client whose every request is bounded by `timeout`.
    pub fn new(backend: Backend, timeout: Duration) -> Result<LlmClient, LlmError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| LlmError::Transport(format!("cannot set up the HTTP client: {e}")))?;
        Ok(LlmClient {
            http,
            backend,
            timeout,
        })
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub fn model(&self) -> &str {
        match &self.backend {
            Backend::Ollama { model, .. } | Backend::OpenAi { model, .. } => model,
        }
    }

    /// `Ollama at http://…, model llama3.1:8b` (the URL with any password redacted).
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Ollama { base, model } => format!(
                "Ollama at {}, model {model}",
                crate::config::redact_url_password(base)
            ),
            Backend::OpenAi { base, model, .. } => format!(
                "OpenAI-compatible server at {}, model {model}",
                crate::config::redact_url_password(base)
            ),
        }
    }

    /// How the OpenAI-compatible server was last asked for JSON successfully, if known.
    pub fn json_mode(&self) -> Option<JsonMode> {
        let Backend::OpenAi { base, .. } = &self.backend else {
            return None;
        };
        MODES.lock().ok().and_then(|m| m.get(base).copied())
    }

    fn remember(&self, mode: JsonMode) {
        if let (Backend::OpenAi { base, .. }, Ok(mut m)) = (&self.backend, MODES.lock()) {
            m.insert(base.clone(), mode);
        }
    }

    fn error_of(&self, e: reqwest::Error, url: &str) -> LlmError {
        if e.is_timeout() {
            LlmError::Timeout {
                ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            }
        } else if e.is_connect() {
            LlmError::Refused {
                url: crate::config::redact_url_password(url),
            }
        } else {
            // reqwest's text names the URL, never a header (the key is a header).
            LlmError::Transport(crate::config::redact_url_password(&e.to_string()))
        }
    }

    async fn get_json(&self, url: &str, timeout: Option<Duration>) -> Result<Value, LlmError> {
        let mut req = self.http.get(url);
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        if let Backend::OpenAi { key: Some(k), .. } = &self.backend {
            req = req.bearer_auth(k.expose());
        }
        let resp = req.send().await.map_err(|e| self.error_of(e, url))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| self.error_of(e, url))?;
        if status != 200 {
            return Err(LlmError::Http {
                status,
                message: error_message(&body),
            });
        }
        serde_json::from_str(&body).map_err(|e| LlmError::Malformed(e.to_string()))
    }

    /// Ollama's version (`GET /api/version`).
    pub async fn version(&self) -> Result<String, LlmError> {
        let Backend::Ollama { base, .. } = &self.backend else {
            return Ok(String::new());
        };
        let v = self.get_json(&format!("{base}/api/version"), None).await?;
        v.get("version")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| LlmError::WrongShape("no `version` in /api/version".into()))
    }

    /// The models the server has: `GET /api/tags` (Ollama) or `GET /models` (OpenAI).
    pub async fn models(&self, timeout: Option<Duration>) -> Result<Vec<String>, LlmError> {
        match &self.backend {
            Backend::Ollama { base, .. } => {
                let v = self.get_json(&format!("{base}/api/tags"), timeout).await?;
                let models = v
                    .get("models")
                    .and_then(Value::as_array)
                    .ok_or_else(|| LlmError::WrongShape("no `models` in /api/tags".into()))?;
                Ok(models
                    .iter()
                    .filter_map(|m| m.get("name").or(m.get("model")))
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect())
            }
            Backend::OpenAi { base, .. } => {
                let v = self.get_json(&format!("{base}/models"), timeout).await?;
                Ok(v.get("data")
                    .and_then(Value::as_array)
                    .map(|d| {
                        d.iter()
                            .filter_map(|m| m.get("id").and_then(Value::as_str))
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default())
            }
        }
    }

    /// Loads the model without asking anything (Ollama: a chat with no messages), so that
    /// the first task does not pay the model's load.
    pub async fn warm(&self) -> Result<(), LlmError> {
        match &self.backend {
            Backend::Ollama { base, model } => {
                let body = json!({"model": model, "messages": [], "stream": false, "keep_alive": KEEP_ALIVE});
                self.post(&format!("{base}/api/chat"), &body)
                    .await
                    .map(|_| ())
            }
            // Nothing standard loads a model there; the first call does.
            Backend::OpenAi { .. } => Ok(()),
        }
    }

    async fn post(&self, url: &str, body: &Value) -> Result<Value, LlmError> {
        let mut req = self.http.post(url).json(body);
        if let Backend::OpenAi { key: Some(k), .. } = &self.backend {
            req = req.bearer_auth(k.expose());
        }
        let resp = req.send().await.map_err(|e| self.error_of(e, url))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| self.error_of(e, url))?;
        if status == 404 {
            return Err(LlmError::ModelMissing {
                model: self.model().to_owned(),
            });
        }
        if status != 200 {
            return Err(LlmError::Http {
                status,
                message: error_message(&text),
            });
        }
        serde_json::from_str(&text).map_err(|e| LlmError::Malformed(format!("the HTTP body: {e}")))
    }

    /// One question whose answer is a JSON object of `schema`: returns the object (parsed,
    /// not yet checked for shape).
    pub async fn chat_json(
        &self,
        system: &str,
        user: &str,
        name: &str,
        schema: &Value,
    ) -> Result<Value, LlmError> {
        let system = format!(
            "{system}\nAnswer with one JSON object only, no other text, matching this JSON Schema:\n{schema}"
        );
        let messages = json!([
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ]);
        let content = match &self.backend {
            Backend::Ollama { base, model } => {
                let body = json!({
                    "model": model, "messages": messages, "stream": false,
                    "format": schema, "keep_alive": KEEP_ALIVE,
                    "options": {"temperature": 0, "num_predict": MAX_ANSWER_TOKENS},
                });
                let v = self.post(&format!("{base}/api/chat"), &body).await?;
                v.pointer("/message/content")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        LlmError::WrongShape("no message.content in the answer".into())
                    })?
            }
            Backend::OpenAi { base, model, .. } => {
                let url = format!("{base}/chat/completions");
                let mut mode = self.json_mode().unwrap_or(JsonMode::JsonSchema);
                loop {
                    let mut body = json!({
                        "model": model, "messages": messages, "stream": false, "temperature": 0,
                        "max_tokens": MAX_ANSWER_TOKENS,
                    });
                    match mode {
                        JsonMode::JsonSchema => {
                            body["response_format"] = json!({"type": "json_schema",
                                "json_schema": {"name": name, "strict": true, "schema": schema}})
                        }
                        JsonMode::JsonObject => {
                            body["response_format"] =
                                json!({"type": "json_object", "schema": schema})
                        }
                        JsonMode::Prompt => {}
                    }
                    match self.post(&url, &body).await {
                        Ok(v) => {
                            self.remember(mode);
                            break v
                                .pointer("/choices/0/message/content")
                                .and_then(Value::as_str)
                                .map(str::to_owned)
                                .ok_or_else(|| {
                                    LlmError::WrongShape(
                                        "no choices[0].message.content in the answer".into(),
                                    )
                                })?;
                        }
                        Err(LlmError::Http { status, message }) => {
                            match mode.after_refusal(status, &message) {
                                Some(n) => {
                                    tracing::debug!(
                                        "{} refused {} (HTTP {status}); trying {}",
                                        self.describe(),
                                        mode.as_str(),
                                        n.as_str()
                                    );
                                    mode = n;
                                }
                                None => return Err(LlmError::Http { status, message }),
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        };
        parse_object(&content)
    }
}

/// The longest answer asked for, in tokens: a routing or a summary is far shorter, and a
/// model that loops inside a JSON string is cut (its answer is then malformed, and the
/// rules decide) instead of running until the timeout.
const MAX_ANSWER_TOKENS: u32 = 768;

/// How long Ollama keeps the model loaded after a call.
const KEEP_ALIVE: &str = "10m";

/// Whether an error message is a server refusing the `response_format` asked for.
fn refuses_format(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("response_format") || m.contains("json_schema") || m.contains("json_object")
}

/// The `error` of an error body (`{"error":"…"}` or `{"error":{"message":"…"}}`), else the
/// body's start.
fn error_message(body: &str) -> String {
    let v: Option<Value> = serde_json::from_str(body).ok();
    let msg = v.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .or_else(|| v.get("error"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let text = msg.unwrap_or_else(|| body.trim().to_owned());
    text.chars().take(300).collect()
}

/// The JSON object in a model's text: the whole text, else the span from its first `{` to
/// its last `}` (a model that wraps the object in prose or a code fence).
pub fn parse_object(text: &str) -> Result<Value, LlmError> {
    let parsed = serde_json::from_str::<Value>(text.trim()).or_else(|e| {
        match (text.find('{'), text.rfind('}')) {
            (Some(a), Some(b)) if a < b => serde_json::from_str::<Value>(&text[a..=b]),
            _ => Err(e),
        }
    });
    match parsed {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(LlmError::WrongShape(
            "the answer is not a JSON object".into(),
        )),
        Err(e) => Err(LlmError::Malformed(e.to_string())),
    }
}

/// Whether `have` (a server's model list) holds `want`; `name` means `name:latest`.
pub fn has_model(have: &[String], want: &str) -> bool {
    let norm = |s: &str| {
        if s.contains(':') {
            s.to_owned()
        } else {
            format!("{s}:latest")
        }
    };
    let want = norm(want);
    have.iter().any(|h| norm(h) == want)
}

/// Milliseconds since `start`.
pub fn elapsed_ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_found_in_text() {
        assert_eq!(parse_object("{\"a\":1}").unwrap(), json!({"a": 1}));
        assert_eq!(
            parse_object("Sure:\n```json\n{\"a\": 2}\n```").unwrap(),
            json!({"a": 2})
        );
        assert_eq!(parse_object("nope").unwrap_err().kind(), "malformed_json");
        assert_eq!(parse_object("[1]").unwrap_err().kind(), "wrong_shape");
    }

    #[test]
    fn model_names_are_normalised() {
        let have = vec!["llama3.1:8b".to_owned(), "smol:latest".to_owned()];
        assert!(has_model(&have, "llama3.1:8b"));
        assert!(has_model(&have, "smol"));
        assert!(!has_model(&have, "llama3.1"));
    }

    #[test]
    fn error_kinds_and_retries() {
        let table: [(LlmError, &str, bool); 6] = [
            (LlmError::Refused { url: "u".into() }, "refused", false),
            (LlmError::Timeout { ms: 1 }, "timeout", false),
            (
                LlmError::Http {
                    status: 500,
                    message: "x".into(),
                },
                "http_error",
                true,
            ),
            (
                LlmError::Http {
                    status: 400,
                    message: "x".into(),
                },
                "http_error",
                false,
            ),
            (LlmError::Malformed("x".into()), "malformed_json", true),
            (
                LlmError::ModelMissing { model: "m".into() },
                "model_missing",
                false,
            ),
        ];
        for (e, kind, retry) in table {
            assert_eq!((e.kind(), e.retryable()), (kind, retry), "{e}");
        }
        let e = LlmError::ModelMissing {
            model: "llama3.1:8b".into(),
        };
        assert!(e.to_string().contains("`ollama pull llama3.1:8b`"));
        assert_eq!(
            error_message(r#"{"error":{"message":"bad format"}}"#),
            "bad format"
        );
        assert_eq!(
            error_message(r#"{"error":"model 'x' not found"}"#),
            "model 'x' not found"
        );
        assert!(refuses_format("Input should be 'text' or 'json_object'"));
    }

    #[test]
    fn format_negotiation_table() {
        use JsonMode::*;
        let pydantic = r#"[{"type":"literal_error","loc":["body","response_format","type"],"msg":"Input should be 'text' or 'json_object'"}]"#;
        // (mode tried, status, message, the mode to try next)
        let table: [(JsonMode, u16, &str, Option<JsonMode>); 8] = [
            (JsonSchema, 422, pydantic, Some(JsonObject)),
            (
                JsonSchema,
                400,
                "response_format json_schema is not supported",
                Some(JsonObject),
            ),
            (
                JsonSchema,
                500,
                "1 validation error: response_format",
                Some(JsonObject),
            ),
            (JsonObject, 400, "unknown field json_object", Some(Prompt)),
            (Prompt, 400, "response_format missing", None),
            (JsonSchema, 400, "the prompt is too long", None),
            (JsonSchema, 401, "bad key for response_format", None),
            (JsonSchema, 503, "response_format: overloaded", None),
        ];
        for (mode, status, msg, want) in table {
            assert_eq!(
                mode.after_refusal(status, msg),
                want,
                "{mode:?} {status} {msg}"
            );
        }
    }
}

//! The Bot API client: `POST <base>/bot<token>/<method>` with a JSON body, answers decoded
//! from `{"ok":..,"result":..}`. The token is part of every URL, so no error names the URL
//! and every error text is scrubbed of the token.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::Secret;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// Telegram answered with an error (`error_code`, `description`, `parameters`).
    #[error("Telegram answered {code}: {description}")]
    Api {
        code: u16,
        description: String,
        retry_after: Option<u64>,
    },
    /// No answer: the connection failed or timed out.
    #[error("cannot reach the Telegram Bot API: {0}")]
    Network(String),
    /// An answer that is not the Bot API's JSON.
    #[error("unexpected answer from the Telegram Bot API: {0}")]
    Decode(String),
}

impl ApiError {
    pub fn code(&self) -> Option<u16> {
        match self {
            ApiError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// An edit that changed nothing: as good as done.
    pub fn not_modified(&self) -> bool {
        matches!(self, ApiError::Api { code: 400, description, .. } if description.contains("message is not modified"))
    }
}

/// A Telegram user.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    pub id: i64,
    #[serde(default)]
    pub is_bot: bool,
    #[serde(default)]
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
}

impl User {
    /// "Ada Lovelace (@ada)".
    pub fn display(&self) -> String {
        let mut s = self.first_name.clone();
        if let Some(l) = &self.last_name {
            s.push(' ');
            s.push_str(l);
        }
        if let Some(u) = &self.username {
            if s.is_empty() {
                s = format!("@{u}");
            } else {
                s.push_str(&format!(" (@{u})"));
            }
        }
        if s.is_empty() {
            s = self.id.to_string();
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Chat {
    pub id: i64,
    #[serde(rename = "type", default)]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Message {
    pub message_id: i64,
    pub from: Option<User>,
    pub chat: Chat,
    pub text: Option<String>,
    pub reply_to_message: Option<Box<Message>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CallbackQuery {
    pub id: String,
    pub from: User,
    pub message: Option<Message>,
    pub data: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Update {
    pub update_id: i64,
    pub message: Option<Message>,
    pub callback_query: Option<CallbackQuery>,
}

/// One inline button: a label and the data sent back when it is pressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    pub text: String,
    pub callback_data: String,
}

/// Rows of inline buttons (`reply_markup.inline_keyboard`).
pub type Keyboard = Vec<Vec<Button>>;

/// The client. Cheap to clone.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: Secret,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("base", &self.base).finish()
    }
}

/// Long-poll wait of `getUpdates`, seconds.
pub const POLL_TIMEOUT_SEC: u64 = 30;

impl Api {
    pub fn new(base: &str, token: Secret) -> Result<Api, ApiError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ApiError::Network(e.without_url().to_string()))?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    fn scrub(&self, s: String) -> String {
        let t = self.token.expose();
        if t.is_empty() {
            s
        } else {
            s.replace(t, "<redacted>")
        }
    }

    /// Calls `method` with `body`; `wait` bounds the whole call.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        body: &Value,
        wait: Duration,
    ) -> Result<T, ApiError> {
        let url = format!("{}/bot{}/{method}", self.base, self.token.expose());
        let resp = self
            .http
            .post(url)
            .json(body)
            .timeout(wait)
            .send()
            .await
            .map_err(|e| ApiError::Network(self.scrub(e.without_url().to_string())))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ApiError::Network(self.scrub(e.without_url().to_string())))?;
        #[derive(Deserialize)]
        struct Answer {
            ok: bool,
            result: Option<Value>,
            error_code: Option<u16>,
            description: Option<String>,
            parameters: Option<Params>,
        }
        #[derive(Deserialize)]
        struct Params {
            retry_after: Option<u64>,
        }
        let a: Answer = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::Decode(self.scrub(format!("HTTP {status}, {e}"))))?;
        if !a.ok {
            return Err(ApiError::Api {
                code: a.error_code.unwrap_or(status),
                description: self.scrub(a.description.unwrap_or_default()),
                retry_after: a.parameters.and_then(|p| p.retry_after),
            });
        }
        serde_json::from_value(a.result.unwrap_or(Value::Null))
            .map_err(|e| ApiError::Decode(self.scrub(e.to_string())))
    }

    fn short() -> Duration {
        Duration::from_secs(30)
    }

    pub async fn get_me(&self) -> Result<User, ApiError> {
        self.call("getMe", &json!({}), Self::short()).await
    }

    pub async fn get_updates(&self, offset: Option<i64>) -> Result<Vec<Update>, ApiError> {
        let mut body = json!({
            "timeout": POLL_TIMEOUT_SEC,
            "allowed_updates": ["message", "callback_query"],
        });
        if let Some(o) = offset {
            body["offset"] = json!(o);
        }
        self.call(
            "getUpdates",
            &body,
            Duration::from_secs(POLL_TIMEOUT_SEC + 15),
        )
        .await
    }

    pub async fn set_my_commands(&self, commands: &[(&str, &str)]) -> Result<bool, ApiError> {
        let list: Vec<Value> = commands
            .iter()
            .map(|(c, d)| json!({"command": c, "description": d}))
            .collect();
        self.call("setMyCommands", &json!({ "commands": list }), Self::short())
            .await
    }

    /// `sendMessage` in HTML; returns the new message's id.
    pub async fn send_message(
        &self,
        chat: i64,
        html: &str,
        buttons: Option<&Keyboard>,
        reply_to: Option<i64>,
    ) -> Result<i64, ApiError> {
        let mut body = json!({
            "chat_id": chat,
            "text": html,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": true},
        });
        if let Some(b) = buttons {
            body["reply_markup"] = json!({ "inline_keyboard": b });
        }
        if let Some(r) = reply_to {
            body["reply_parameters"] =
                json!({"message_id": r, "allow_sending_without_reply": true});
        }
        let m: Message = self.call("sendMessage", &body, Self::short()).await?;
        Ok(m.message_id)
    }

    /// `editMessageText` in HTML; `buttons: None` removes the buttons.
    pub async fn edit_message(
        &self,
        chat: i64,
        message_id: i64,
        html: &str,
        buttons: Option<&Keyboard>,
    ) -> Result<(), ApiError> {
        let body = json!({
            "chat_id": chat,
            "message_id": message_id,
            "text": html,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": true},
            "reply_markup": {"inline_keyboard": buttons.cloned().unwrap_or_default()},
        });
        match self
            .call::<Value>("editMessageText", &body, Self::short())
            .await
        {
            Err(e) if e.not_modified() => Ok(()),
            r => r.map(|_| ()),
        }
    }

    pub async fn answer_callback(&self, id: &str, text: &str) -> Result<(), ApiError> {
        let text: String = text.chars().take(200).collect();
        self.call::<Value>(
            "answerCallbackQuery",
            &json!({"callback_query_id": id, "text": text}),
            Self::short(),
        )
        .await
        .map(|_| ())
    }
}

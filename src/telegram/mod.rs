//! The Telegram bot (issue #20), started inside `orca run` when TELEGRAM_BOT_TOKEN is set:
//! long polling ([`poll`]), commands and plain-words tasks through `ops` ([`handle`]), live
//! progress and notifications from the event bus ([`notify`]), one paced [`outbox`].

pub mod api;
pub mod commands;
pub mod handle;
pub mod notify;
pub mod outbox;
pub mod poll;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::config::Config;
use crate::events::EventBus;
use crate::ops::Ops;
use crate::store::Store;
use crate::workspace::Workspace;

/// Store meta key of the next update id to ask for (`{"offset": n}`).
pub const OFFSET_KEY: &str = "telegram_offset";
/// Store meta key of the bot's state for `orca status` (`{"state": .., "detail": ..}`).
pub const STATUS_KEY: &str = "telegram_status";

/// The store meta key mapping a message the bot sent to its task.
pub fn message_key(chat: i64, message_id: i64) -> String {
    format!("telegram_msg:{chat}:{message_id}")
}

/// What the bot's parts share.
pub struct Bot {
    pub cfg: Arc<Config>,
    pub ws: Workspace,
    pub store: Arc<dyn Store>,
    pub events: EventBus,
    pub api: api::Api,
    pub outbox: outbox::Outbox,
    /// Users refused once already (each gets one refusal per run).
    refused: Mutex<HashSet<i64>>,
}

/// Starts the bot on the current runtime when a token is set; None otherwise (or when the
/// client cannot be made, which is logged).
pub fn start(
    cfg: Arc<Config>,
    ws: Workspace,
    store: Arc<dyn Store>,
    events: EventBus,
) -> Option<tokio::task::JoinHandle<()>> {
    let token = cfg.telegram_bot_token.clone()?;
    let api = match api::Api::new(&cfg.telegram_api_url, token) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("cannot start the Telegram bot: {e}");
            return None;
        }
    };
    if cfg.telegram_allowed_users.is_empty() {
        tracing::warn!("the Telegram bot serves nobody: TELEGRAM_ALLOWED_USERS is empty (set it to the user ids allowed to use the bot)");
    }
    let outbox = outbox::Outbox::start(api.clone());
    let bot = Arc::new(Bot {
        cfg,
        ws,
        store,
        events,
        api,
        outbox,
        refused: Mutex::new(HashSet::new()),
    });
    notify::start(Arc::clone(&bot));
    Some(tokio::spawn(poll::run(bot)))
}

impl Bot {
    /// The operations, as every front end uses them.
    pub fn ops(&self) -> Ops<'_> {
        Ops {
            cfg: &self.cfg,
            ws: &self.ws,
            store: self.store.as_ref(),
            events: Some(&self.events),
        }
    }

    /// Runs `f` (store calls, file I/O) on a blocking thread.
    pub async fn blocking<R: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Bot) -> R + Send + 'static,
    ) -> Option<R> {
        let me = Arc::clone(self);
        match tokio::task::spawn_blocking(move || f(&me)).await {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!("a Telegram bot step failed: {e}");
                None
            }
        }
    }

    /// Whether `user` gets a refusal now (the first time only).
    fn first_refusal(&self, user: i64) -> bool {
        self.refused
            .lock()
            .map(|mut s| s.insert(user))
            .unwrap_or(false)
    }

    /// Records the bot's state for `orca status`.
    pub fn set_status(&self, state: &str, detail: &str) {
        let doc = json!({"state": state, "detail": detail, "since": crate::clock::now_rfc3339()});
        if let Err(e) = self.store.put_meta(STATUS_KEY, &doc) {
            tracing::warn!("cannot record the Telegram bot's state: {e}");
        }
    }

    /// Remembers that `message_id` in `chat` is about `task` (replies and buttons find it).
    pub fn remember(&self, chat: i64, message_id: i64, task: &str) {
        if let Err(e) = self
            .store
            .put_meta(&message_key(chat, message_id), &json!({ "task": task }))
        {
            tracing::warn!(task, "cannot remember the Telegram message of a task: {e}");
        }
    }

    /// The task a message the bot sent is about.
    pub fn task_of_message(&self, chat: i64, message_id: i64) -> Option<String> {
        let v = self.store.get_meta(&message_key(chat, message_id)).ok()??;
        v.get("task").and_then(Value::as_str).map(str::to_owned)
    }

    /// Wakes this daemon's loop so it acts on a cancel or retry at once (the store's change
    /// counter does not move for writes of this very process).
    pub fn poke(&self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGUSR1);
    }
}

/// `orca status`'s view of the bot (the state the daemon recorded), if any.
pub fn status_of(store: &dyn Store) -> Option<Value> {
    store.get_meta(STATUS_KEY).ok().flatten()
}

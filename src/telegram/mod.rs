//! The Telegram bot (issue #20), started inside `orca run` when TELEGRAM_BOT_TOKEN is set:
//! long polling ([`poll`]), commands and plain-words tasks through `ops` ([`handle`]), live
//! progress and notifications from the event bus ([`notify`]), one paced [`outbox`], and
//! notifications kept until delivered ([`pending`]).

pub mod api;
pub mod commands;
pub mod handle;
pub mod notify;
pub mod outbox;
pub mod pending;
pub mod poll;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::config::Config;
use crate::events::EventBus;
use crate::ops::Ops;
use crate::runner::Agent;
use crate::store::Store;
use crate::workspace::Workspace;

/// How long a stopping daemon waits at most for the outbox to send what is queued.
pub const DRAIN_WITHIN: Duration = Duration::from_secs(5);

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
    /// The configuration in force (replaced on a reload, see [`Handle::reconfigure`]).
    cfg: RwLock<Arc<Config>>,
    /// The agent in force (asked whether a follow-up can resume its parent's session).
    agent: RwLock<Arc<dyn Agent>>,
    pub ws: Workspace,
    pub store: Arc<dyn Store>,
    pub events: EventBus,
    pub api: api::Api,
    pub outbox: outbox::Outbox,
    /// Users refused once already (each gets one refusal per run, or per allow-list).
    refused: Mutex<HashSet<i64>>,
    /// The bus sequence number of the last event the notifier has acted on.
    seen: AtomicU64,
    /// Notifications in the outbox, not yet sent or given up: key -> (task, chat).
    undelivered: Mutex<HashMap<String, (String, i64)>>,
}

/// The daemon's handle on its running bot: reloads and the drain at stop.
#[derive(Clone)]
pub struct Handle {
    bot: Arc<Bot>,
}

/// Starts the bot on the current runtime when a token is set; None otherwise (or when the
/// client cannot be made, which is logged).
pub fn start(
    cfg: Arc<Config>,
    agent: Arc<dyn Agent>,
    ws: Workspace,
    store: Arc<dyn Store>,
    events: EventBus,
) -> Option<Handle> {
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
        cfg: RwLock::new(cfg),
        agent: RwLock::new(agent),
        ws,
        store,
        events,
        api,
        outbox,
        refused: Mutex::new(HashSet::new()),
        seen: AtomicU64::new(0),
        undelivered: Mutex::new(HashMap::new()),
    });
    notify::start(Arc::clone(&bot));
    tokio::spawn(poll::run(Arc::clone(&bot)));
    Some(Handle { bot })
}

impl Handle {
    /// Takes the reloaded configuration: the allow-list and TELEGRAM_CHAT_ID apply at once;
    /// the token and TELEGRAM_API_URL need a restart (the daemon's reload says so).
    pub fn reconfigure(&self, cfg: Arc<Config>, agent: Arc<dyn Agent>) {
        let b = &self.bot;
        let old = b.cfg();
        if old.telegram_allowed_users != cfg.telegram_allowed_users {
            if cfg.telegram_allowed_users.is_empty() {
                tracing::warn!("the Telegram bot serves nobody now: TELEGRAM_ALLOWED_USERS is empty (set it to the user ids allowed to use the bot)");
            } else {
                tracing::info!(
                    users = cfg.telegram_allowed_users.len(),
                    "Telegram: the allow-list was reloaded"
                );
            }
            // Everyone refused before may be refused (once) again under the new list.
            if let Ok(mut r) = b.refused.lock() {
                r.clear();
            }
        }
        if old.telegram_chat_id != cfg.telegram_chat_id {
            tracing::info!(
                chat = ?cfg.telegram_chat_id,
                "Telegram: notifications of tasks from files and the CLI go to the reloaded TELEGRAM_CHAT_ID"
            );
        }
        match b.cfg.write() {
            Ok(mut c) => *c = cfg,
            Err(p) => *p.into_inner() = cfg,
        }
        match b.agent.write() {
            Ok(mut a) => *a = agent,
            Err(p) => *p.into_inner() = agent,
        }
    }

    /// At stop: waits (at most `within`) until the notifier has acted on every event
    /// published so far and the outbox is done with every notification; each one still
    /// unsent is logged (it is kept, and the next start sends it).
    pub async fn drain(&self, within: Duration) {
        let b = &self.bot;
        let deadline = Instant::now() + within;
        let target = b.events.published();
        // Progress edits of tasks the stop cut off are not waited for: only notifications.
        let unsent = || b.undelivered.lock().map(|m| !m.is_empty()).unwrap_or(false);
        while (b.seen.load(Ordering::SeqCst) < target || unsent()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left: Vec<(String, i64)> = b
            .undelivered
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        for (task, chat) in left {
            tracing::warn!(
                task = %task,
                chat,
                "Telegram: the notification of task {task} was not sent before the stop; it is kept in {} and sent at the next start",
                pending::dir(&b.ws).display()
            );
        }
    }
}

impl Bot {
    /// The configuration in force.
    pub fn cfg(&self) -> Arc<Config> {
        match self.cfg.read() {
            Ok(c) => Arc::clone(&c),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// The agent in force.
    pub fn agent(&self) -> Arc<dyn Agent> {
        match self.agent.read() {
            Ok(a) => Arc::clone(&a),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// Runs `f` with the operations, as every front end uses them, under the configuration
    /// in force.
    pub fn with_ops<R>(&self, f: impl FnOnce(&Ops<'_>) -> R) -> R {
        let cfg = self.cfg();
        f(&Ops {
            cfg: &cfg,
            ws: &self.ws,
            store: self.store.as_ref(),
            events: Some(&self.events),
        })
    }

    /// Marks a notification as in the outbox (see [`Handle::drain`]).
    fn track(&self, key: &str, task: &str, chat: i64) {
        if let Ok(mut m) = self.undelivered.lock() {
            m.insert(key.to_owned(), (task.to_owned(), chat));
        }
    }

    fn untrack(&self, key: &str) {
        if let Ok(mut m) = self.undelivered.lock() {
            m.remove(key);
        }
    }

    /// The notifier has acted on the event `seq`.
    fn saw(&self, seq: u64) {
        self.seen.fetch_max(seq, Ordering::SeqCst);
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

/// `orca status`'s view of the bot (the state the daemon recorded), if any, with `unsent`:
/// how many notifications are kept, waiting to be delivered.
pub fn status_of(store: &dyn Store, ws: &Workspace) -> Option<Value> {
    let mut v = store.get_meta(STATUS_KEY).ok().flatten()?;
    if let Some(o) = v.as_object_mut() {
        o.insert("unsent".into(), json!(pending::count(ws)));
    }
    Some(v)
}

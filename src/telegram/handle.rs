//! One update: access first, then the command, the plain-words task, the reply that
//! continues a task, or the button pressed; every action through `ops`.

use std::sync::Arc;

use super::api::{CallbackQuery, Message, Update, User};
use super::commands::{self, Access, Command};
use super::outbox::escape;
use super::Bot;
use crate::ops::origin::Origin;
use crate::ops::{ListFilter, OpsError, SubmitRequest};

const HELP: &str = "<b>Orca</b> runs coding tasks for you.\n\
Send a task in plain words, e.g.\n\
<code>fix the failing test in /backend</code>\n\
(\"in /project\" picks the folder under CLAUDE_BASE_CWD).\n\
Reply to a task's notification to continue it in the same session.\n\n\
/task &lt;description&gt; – start a task\n\
/status – queue counts and running tasks\n\
/list – the latest tasks\n\
/progress &lt;id&gt; – last events and the live turn\n\
/cancel &lt;id&gt; – cancel a task\n\
/retry &lt;id&gt; – run a finished task again";

pub async fn update(bot: &Arc<Bot>, u: Update) {
    if let Some(m) = u.message {
        message(bot, m).await;
    } else if let Some(q) = u.callback_query {
        callback(bot, q).await;
    }
}

fn reply(bot: &Bot, m: &Message, html: String) {
    bot.outbox.post(m.chat.id, html, Some(m.message_id));
}

/// Access control: true when `user` may act; otherwise logs and refuses (once per user).
fn admitted(bot: &Bot, user: &User, chat: i64, what: &str) -> bool {
    match commands::access(&bot.cfg().telegram_allowed_users, user.id) {
        Access::Allowed => true,
        a => {
            let text = crate::text_escape::escape_line(what);
            tracing::warn!(
                user_id = user.id,
                chat,
                "Telegram: ignored a message from a user not in TELEGRAM_ALLOWED_USERS: {text}"
            );
            if bot.first_refusal(user.id) {
                let html = match a {
                    Access::NobodyAllowed => format!("This Orca bot serves nobody yet. To allow yourself, set <code>TELEGRAM_ALLOWED_USERS={}</code> in Orca's .env or config/orca.toml; <code>orca run</code> picks it up without a restart.", user.id),
                    _ => "Sorry, you are not allowed to use this bot.".to_owned(),
                };
                bot.outbox.post(chat, html, None);
            }
            false
        }
    }
}

async fn message(bot: &Arc<Bot>, m: Message) {
    let Some(from) = m.from.clone() else { return };
    let Some(text) = m.text.clone() else { return };
    if from.is_bot || !admitted(bot, &from, m.chat.id, &text) {
        return;
    }
    let cmd = commands::parse(&text);
    // A reply to one of the bot's messages about a task continues that task.
    if let (Command::Task(words), Some(to)) = (&cmd, &m.reply_to_message) {
        let (chat, mid) = (m.chat.id, to.message_id);
        if let Some(Some(parent)) = bot.blocking(move |b| b.task_of_message(chat, mid)).await {
            if !words.is_empty() {
                follow_up(bot, &m, &from, parent, words.clone()).await;
                return;
            }
        }
    }
    let html = match cmd {
        Command::Start | Command::Help => HELP.to_owned(),
        Command::Unknown(name) => format!(
            "Unknown command /{}. {}",
            escape(&name),
            "Send /help for the list."
        ),
        Command::Task(words) if words.is_empty() => {
            "Usage: <code>/task fix the login bug in /web</code>, or send the task in plain words."
                .to_owned()
        }
        Command::Task(words) => new_task(bot, &m, &from, words).await,
        Command::Status => bot.blocking(status_text).await.unwrap_or_default(),
        Command::List => bot.blocking(list_text).await.unwrap_or_default(),
        Command::Progress(id) | Command::Cancel(id) | Command::Retry(id) if id.is_empty() => {
            "Give the task id, e.g. <code>/progress fix_db</code> (see /list).".to_owned()
        }
        Command::Progress(id) => bot
            .blocking(move |b| progress_text(b, &id))
            .await
            .unwrap_or_default(),
        Command::Cancel(id) => bot
            .blocking(move |b| cancel_text(b, &id))
            .await
            .unwrap_or_default(),
        Command::Retry(id) => bot
            .blocking(move |b| retry_text(b, &id))
            .await
            .unwrap_or_default(),
    };
    if !html.is_empty() {
        reply(bot, &m, html);
    }
}

fn origin(m: &Message, from: &User) -> Origin {
    Origin {
        user: Some(from.display()),
        user_id: Some(from.id),
        chat_id: Some(m.chat.id),
        follows: None,
    }
}

fn new_id() -> String {
    format!("tg_{}", crate::clock::now_ms())
}

fn err_text(e: &OpsError) -> String {
    escape(&e.to_string())
}

async fn new_task(bot: &Arc<Bot>, m: &Message, from: &User, words: String) -> String {
    let dir = match commands::named_folder(&words) {
        Some(named) => {
            let cfg = bot.cfg();
            match commands::resolve_folder(&named, &cfg.claude_base_cwd, &cfg.claude_allowed_root) {
                Ok(d) => Some(d),
                Err(why) => {
                    tracing::info!(user_id = from.id, "Telegram: task refused: {why}");
                    return format!("Not queued: {}", escape(&why));
                }
            }
        }
        None => None,
    };
    let origin = origin(m, from);
    let kind = commands::route_words(&words);
    let title = commands::title_of(&words);
    let shown_dir = dir.as_ref().map(|d| d.display().to_string());
    let req = SubmitRequest {
        prompt: Some(words),
        dir: shown_dir.clone(),
        id: Some(new_id()),
        ..Default::default()
    };
    let extra = origin.telegram_extra();
    let done = bot
        .blocking(move |b| b.with_ops(|o| crate::ops::submit_as(o, req, Some(title), extra)))
        .await;
    match done {
        Some(Ok(v)) => {
            tracing::info!(task = %v.id, user_id = from.id, "Telegram: task submitted");
            format!(
                "Task <code>{}</code> queued ({}){}. I will post its progress here.",
                escape(&v.id),
                kind.as_str(),
                shown_dir
                    .map(|d| format!(" in {}", escape(&d)))
                    .unwrap_or_default()
            )
        }
        Some(Err(e)) => format!("Not queued: {}", err_text(&e)),
        None => "Not queued: an internal error (see the log).".to_owned(),
    }
}

/// A reply to a task's message: a new task resuming its session in its folder, linked both
/// ways.
async fn follow_up(bot: &Arc<Bot>, m: &Message, from: &User, parent: String, words: String) {
    let mut origin = origin(m, from);
    let id = new_id();
    let title = commands::title_of(&words);
    let answer = bot
        .blocking(move |b| -> Result<String, String> {
            let rec = b
                .store
                .get(&parent)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("task {parent} is no longer in the store"))?;
            if !rec.state.is_final() {
                return Err(format!("task {parent} is still {}; reply once it has finished (or /cancel {parent})", rec.state));
            }
            let result: Option<serde_json::Value> = std::fs::read_to_string(b.ws.result_file(&rec.stem))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
            let dir = result
                .as_ref()
                .and_then(|r| r["working_dir"].as_str().map(str::to_owned));
            let session = session_plan(b, &parent, rec.session_id.as_deref(), dir.as_deref());
            origin.follows = Some((parent.clone(), rec.session_id.clone()));
            let req = SubmitRequest {
                prompt: Some(words),
                dir,
                id: Some(id),
                ..Default::default()
            };
            let v = b
                .with_ops(|o| crate::ops::submit_as(o, req, Some(title), origin.telegram_extra()))
                .map_err(|e| e.to_string())?;
            if let Err(e) = crate::artifacts::link::add_follow_up(&b.ws, &rec.stem, &v.id) {
                tracing::warn!(task = %parent, "cannot link the follow-up {} in the result: {e}", v.id);
            }
            Ok(format!(
                "Follow-up <code>{}</code> of <code>{}</code> queued: {}.",
                escape(&v.id),
                escape(&parent),
                escape(&session.text(&parent))
            ))
        })
        .await;
    let html = match answer {
        Some(Ok(h)) => h,
        Some(Err(e)) => format!("Not queued: {}", escape(&e)),
        None => "Not queued: an internal error (see the log).".to_owned(),
    };
    reply(bot, m, html);
}

/// How a follow-up's agent session relates to its parent's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionPlan {
    /// The agent still has the parent's session: the follow-up resumes it.
    Same,
    /// The agent no longer has it (the reason): a fresh session.
    Gone(String),
    /// The parent ran no agent session.
    None,
}

impl SessionPlan {
    /// What the user is told (plain text, to be escaped).
    pub fn text(&self, parent: &str) -> String {
        match self {
            SessionPlan::Same => "same session, same folder".to_owned(),
            SessionPlan::Gone(why) => format!(
                "a fresh agent session in the same folder, linked to {parent} (its session cannot be resumed: {why})"
            ),
            SessionPlan::None => format!(
                "a fresh agent session in the same folder, linked to {parent} (it had no session to resume)"
            ),
        }
    }
}

/// Whether the agent in force can resume the parent's session for a follow-up in `dir`.
fn session_plan(b: &Bot, parent: &str, session: Option<&str>, dir: Option<&str>) -> SessionPlan {
    let Some(sid) = session else {
        return SessionPlan::None;
    };
    let cfg = b.cfg();
    let cwd = dir
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| cfg.claude_base_cwd.clone());
    let env = crate::runner::agent_env::for_agent(&cfg);
    match b.agent().can_resume(sid, &cwd, &env) {
        Ok(()) => SessionPlan::Same,
        Err(why) => {
            tracing::info!(task = %parent, session = %sid, "a follow-up starts a fresh session: {why}");
            SessionPlan::Gone(why)
        }
    }
}

fn status_text(b: &Bot) -> String {
    match b.with_ops(crate::ops::status) {
        Ok(s) => {
            let counts: Vec<String> = s
                .counts
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let mut out = format!(
                "<b>Orca</b> {} · {}\n",
                escape(s.version),
                if counts.is_empty() {
                    "no tasks yet".to_owned()
                } else {
                    escape(&counts.join(", "))
                }
            );
            if s.task_files_waiting > 0 {
                out.push_str(&format!(
                    "{} task file(s) waiting in tasks/\n",
                    s.task_files_waiting
                ));
            }
            for r in &s.running {
                out.push_str(&format!(
                    "▶ <code>{}</code> {} · {}s\n",
                    escape(&r.task.id),
                    escape(r.task.title.as_deref().unwrap_or("")),
                    r.elapsed_ms / 1000
                ));
            }
            if let Some(t) = super::status_of(b.store.as_ref(), &b.ws) {
                if t["state"] != "polling" {
                    out.push_str(&format!(
                        "Telegram: {}\n",
                        escape(t["detail"].as_str().unwrap_or(""))
                    ));
                }
                if let Some(n) = t["unsent"].as_u64().filter(|n| *n > 0) {
                    out.push_str(&format!("{n} notification(s) not delivered yet\n"));
                }
            }
            out
        }
        Err(e) => err_text(&e),
    }
}

fn list_text(b: &Bot) -> String {
    match b.with_ops(|o| crate::ops::list(o, ListFilter::All)) {
        Ok(v) if v.is_empty() => "No tasks yet.".to_owned(),
        Ok(v) => {
            let skip = v.len().saturating_sub(15);
            v.iter()
                .skip(skip)
                .map(|t| {
                    format!(
                        "<code>{}</code> {} – {}",
                        escape(&t.id),
                        escape(&t.state),
                        escape(t.title.as_deref().unwrap_or(""))
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
        Err(e) => err_text(&e),
    }
}

fn progress_text(b: &Bot, id: &str) -> String {
    match b.with_ops(|o| crate::ops::show(o, id)) {
        Ok(s) => {
            let mut out = format!(
                "<code>{}</code> {} · attempt {}\n",
                escape(&s.task.id),
                escape(&s.task.state),
                s.task.attempts
            );
            if let Some(p) = &s.task.progress {
                out.push_str(&format!(
                    "turn {} · tool {}\n",
                    p["turns"].as_u64().unwrap_or(0),
                    escape(p["last_tool"].as_str().unwrap_or("none"))
                ));
            }
            for e in s.last_events.iter().rev().take(8).rev() {
                let ts = e["ts"].as_str().unwrap_or("");
                out.push_str(&format!(
                    "{} {}\n",
                    escape(ts.get(11..19).unwrap_or(ts)),
                    escape(e["event"].as_str().unwrap_or(""))
                ));
            }
            out
        }
        Err(e) => err_text(&e),
    }
}

fn cancel_text(b: &Bot, id: &str) -> String {
    let r = b.with_ops(|o| crate::ops::cancel(o, id));
    b.poke();
    match r {
        Ok(crate::ops::CancelView::Cancelled { id, .. }) => {
            format!("Cancelled <code>{}</code>: it will not start.", escape(&id))
        }
        Ok(crate::ops::CancelView::Requested { id }) => {
            format!("Stopping <code>{}</code>…", escape(&id))
        }
        Err(e) => err_text(&e),
    }
}

fn retry_text(b: &Bot, id: &str) -> String {
    let r = b.with_ops(|o| crate::ops::retry(o, id));
    b.poke();
    match r {
        Ok(v) => format!(
            "<code>{}</code> queued again (attempt {}).",
            escape(&v.id),
            v.next_attempt
        ),
        Err(e) => err_text(&e),
    }
}

async fn callback(bot: &Arc<Bot>, q: CallbackQuery) {
    let chat = q.message.as_ref().map(|m| m.chat.id).unwrap_or(q.from.id);
    let data = q.data.clone().unwrap_or_default();
    if !admitted(bot, &q.from, chat, &format!("button {data}")) {
        let _ = bot.api.answer_callback(&q.id, "Not allowed").await;
        return;
    }
    let answer = match data.split_once(':') {
        Some(("cancel", id)) => {
            let id = id.to_owned();
            bot.blocking(move |b| cancel_text(b, &id)).await
        }
        Some(("retry", id)) => {
            let id = id.to_owned();
            bot.blocking(move |b| retry_text(b, &id)).await
        }
        _ => Some("Unknown button".to_owned()),
    }
    .unwrap_or_default();
    // The answer is plain text: the HTML of the message drops its tags.
    let plain = answer.replace("<code>", "").replace("</code>", "");
    if let Err(e) = bot.api.answer_callback(&q.id, &html_unescape(&plain)).await {
        tracing::warn!("Telegram: cannot answer a button press: {e}");
    }
    if let Some(m) = &q.message {
        bot.outbox.post(m.chat.id, answer, Some(m.message_id));
    }
}

fn html_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follow_up_says_which_session_it_gets() {
        for (plan, has, lacks) in [
            (SessionPlan::Same, "same session, same folder", "fresh"),
            (
                SessionPlan::Gone("the agent no longer has the session".into()),
                "a fresh agent session in the same folder, linked to p1 (its session cannot be resumed: the agent no longer has the session)",
                "same session",
            ),
            (
                SessionPlan::None,
                "a fresh agent session in the same folder, linked to p1 (it had no session to resume)",
                "same session",
            ),
        ] {
            let t = plan.text("p1");
            assert!(t.contains(has) && !t.contains(lacks), "{plan:?}: {t}");
        }
    }
}

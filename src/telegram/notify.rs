//! From the event bus to Telegram: a live progress message for each running task from
//! Telegram (edited in place, at most every [`EDIT_EVERY`]), and a notification when any
//! task ends, to the chat that created it or to TELEGRAM_CHAT_ID; each notification is
//! kept ([`super::pending`]) until delivered, and what a previous run left is sent at start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::api::{Button, Keyboard};
use super::outbox::escape;
use super::pending::{self, AfterSend, OnStart, Pending};
use super::Bot;
use crate::events::{EventKind, Notice};

/// The least time between two edits of one progress message.
pub const EDIT_EVERY: Duration = Duration::from_secs(2);

struct Live {
    chat: i64,
    /// None until the message is sent.
    message_id: Option<i64>,
    title: String,
    attempt: u32,
    started: Instant,
    turns: u32,
    tool: Option<String>,
    last_edit: Instant,
    shown: String,
}

type LiveMap = Arc<Mutex<HashMap<String, Live>>>;

pub fn start(bot: Arc<Bot>) {
    let live: LiveMap = Arc::new(Mutex::new(HashMap::new()));
    let mut sub = bot.events.subscribe();
    let (b, l) = (Arc::clone(&bot), Arc::clone(&live));
    tokio::spawn(async move {
        send_kept(&b).await;
        while let Some(n) = sub.recv().await {
            match n {
                Notice::Event(e) => {
                    if let Some(task) = e.event.task_id.clone() {
                        on_event(&b, &l, task, e.event.attempt, &e.event.kind).await;
                    }
                    b.saw(e.seq);
                }
                Notice::Lagged { missed } => {
                    tracing::warn!(
                        missed,
                        "Telegram: fell behind the event bus; some progress updates were skipped"
                    );
                }
            }
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            refresh(&bot, &live, false);
        }
    });
}

fn lock(l: &LiveMap) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
    l.lock().unwrap_or_else(|p| p.into_inner())
}

fn cancel_button(task: &str) -> Keyboard {
    vec![vec![Button {
        text: "Cancel".into(),
        callback_data: format!("cancel:{task}"),
    }]]
}

fn retry_button(task: &str) -> Keyboard {
    vec![vec![Button {
        text: "Retry".into(),
        callback_data: format!("retry:{task}"),
    }]]
}

fn progress_html(task: &str, l: &Live) -> String {
    let tool = l
        .tool
        .as_deref()
        .map(|t| format!(" · {}", escape(t)))
        .unwrap_or_default();
    format!(
        "⏳ <b>{}</b>\n<code>{}</code> attempt {} · turn {}{} · {}s",
        escape(&l.title),
        escape(task),
        l.attempt,
        l.turns,
        tool,
        l.started.elapsed().as_secs()
    )
}

/// Edits the progress messages whose text changed and whose last edit is old enough.
fn refresh(bot: &Bot, live: &LiveMap, _force: bool) {
    let mut map = lock(live);
    for (task, l) in map.iter_mut() {
        let Some(mid) = l.message_id else { continue };
        if l.last_edit.elapsed() < EDIT_EVERY {
            continue;
        }
        let html = progress_html(task, l);
        if html == l.shown {
            continue;
        }
        l.last_edit = Instant::now();
        l.shown = html.clone();
        bot.outbox
            .edit(l.chat, mid, html, Some(cancel_button(task)));
    }
}

async fn on_event(
    bot: &Arc<Bot>,
    live: &LiveMap,
    task: String,
    attempt: Option<u32>,
    kind: &EventKind,
) {
    match kind {
        EventKind::ClaudeStarted { .. } => {
            let t = task.clone();
            let Some(Some((chat, title))) = bot.blocking(move |b| telegram_chat(b, &t)).await
            else {
                return;
            };
            let l = Live {
                chat,
                message_id: None,
                title,
                attempt: attempt.unwrap_or(1),
                started: Instant::now(),
                turns: 0,
                tool: None,
                last_edit: Instant::now(),
                shown: String::new(),
            };
            let html = progress_html(&task, &l);
            let rx = bot
                .outbox
                .send(chat, html.clone(), Some(cancel_button(&task)), None);
            lock(live).insert(task.clone(), Live { shown: html, ..l });
            let (b, lv) = (Arc::clone(bot), Arc::clone(live));
            tokio::spawn(async move {
                if let Ok(Ok(mid)) = rx.await {
                    if let Some(l) = lock(&lv).get_mut(&task) {
                        l.message_id = Some(mid);
                        l.last_edit = Instant::now();
                    }
                    let t = task.clone();
                    b.blocking(move |b| b.remember(chat, mid, &t)).await;
                }
            });
        }
        EventKind::ClaudeProgress {
            turns, last_tool, ..
        } => {
            if let Some(l) = lock(live).get_mut(&task) {
                l.turns = *turns;
                l.tool.clone_from(last_tool);
            }
        }
        EventKind::ArtifactsWritten { result, status, .. } => {
            if let Some(l) = lock(live).remove(&task) {
                if let Some(mid) = l.message_id {
                    let html = format!(
                        "{}\nfinished",
                        progress_html(&task, &l).replacen('⏳', "⏹", 1)
                    );
                    bot.outbox.edit(l.chat, mid, html, None);
                }
            }
            let (t, r, st) = (task.clone(), result.clone(), status.clone());
            let kept = bot.blocking(move |b| {
                let (chat, html, buttons) = notification(b, &t, &r)?;
                let p = Pending::new(&t, chat, html, buttons, &st);
                if let Err(e) = pending::save(&b.ws, &p) {
                    tracing::warn!(task = %t, chat, "cannot keep the Telegram notification until it is delivered ({e}); it is sent, but a stop before then loses it");
                }
                Some(p)
            });
            if let Some(Some(p)) = kept.await {
                deliver(bot, p);
            }
        }
        _ => {}
    }
}

/// Queues a kept notification and settles it once the outbox is done with it: delivered
/// (the message is remembered for replies and buttons) or refused for good, its file goes;
/// otherwise it stays for the next start. Either way the end is logged and `notified` says it.
fn deliver(bot: &Arc<Bot>, p: Pending) {
    let rx = bot
        .outbox
        .send(p.chat, p.html.clone(), p.buttons.clone(), None);
    bot.track(&p.key, &p.task, p.chat);
    let b = Arc::clone(bot);
    tokio::spawn(async move {
        // The outbox is gone only when the daemon stops: the file stays for the next start.
        let Ok(sent) = rx.await else { return };
        b.untrack(&p.key);
        let (task, chat) = (p.task.clone(), p.chat);
        match &sent {
            Ok(_) => {}
            Err(f) if f.permanent => tracing::error!(
                task = %task,
                chat,
                "Telegram refused the notification of task {task}: {}; it is dropped",
                f.error
            ),
            Err(f) => tracing::error!(
                task = %task,
                chat,
                "Telegram: the notification of task {task} could not be sent ({}); it is kept in {} and sent again at the next start",
                f.error,
                pending::dir(&b.ws).display()
            ),
        }
        let after = pending::after_send(sent.as_ref().err().map(|f| f.permanent));
        let (key, delivered) = (p.key.clone(), sent.as_ref().ok().copied());
        b.blocking(move |b| {
            if let Some(mid) = delivered {
                b.remember(chat, mid, &p.task);
            }
            if after == AfterSend::Forget {
                pending::forget(&b.ws, &key);
            }
        })
        .await;
        b.events.publish(crate::events::Event::task(
            &task,
            EventKind::Notified {
                channel: "telegram".into(),
                chat_id: Some(chat),
                delivered: sent.is_ok(),
                status: p.status,
            },
        ));
    });
}

/// Sends the notifications a previous run left (or gives up those tried by too many starts).
async fn send_kept(bot: &Arc<Bot>) {
    let Some(kept) = bot.blocking(|b| pending::load_all(&b.ws)).await else {
        return;
    };
    for mut p in kept {
        match pending::on_start(&p) {
            OnStart::GiveUp => {
                tracing::error!(
                    task = %p.task,
                    chat = p.chat,
                    "Telegram: gave up the notification of task {} (queued {}) after {} starts could not send it",
                    p.task,
                    p.queued_at,
                    p.starts
                );
                let key = p.key.clone();
                bot.blocking(move |b| pending::forget(&b.ws, &key)).await;
            }
            OnStart::Send => {
                p.starts += 1;
                tracing::info!(
                    task = %p.task,
                    chat = p.chat,
                    "Telegram: sending the notification of task {} left by an earlier run",
                    p.task
                );
                let copy = p.clone();
                bot.blocking(move |b| {
                    if let Err(e) = pending::save(&b.ws, &copy) {
                        tracing::warn!(task = %copy.task, "cannot count this start on the kept Telegram notification: {e}");
                    }
                })
                .await;
                deliver(bot, p);
            }
        }
    }
}

/// The chat and title of a task from Telegram.
fn telegram_chat(b: &Bot, task: &str) -> Option<(i64, String)> {
    let rec = b.store.get(task).ok()??;
    let t = rec.task.as_ref()?;
    let chat = crate::ops::origin::chat_id(t)?;
    let title = t
        .title
        .clone()
        .unwrap_or_else(|| super::commands::title_of(&t.prompt));
    Some((chat, title))
}

/// Where a task's notification goes: its Telegram chat, else TELEGRAM_CHAT_ID.
fn chat_for(b: &Bot, task: &str) -> Option<i64> {
    b.store
        .get(task)
        .ok()
        .flatten()
        .and_then(|r| r.task.as_ref().and_then(crate::ops::origin::chat_id))
        .or(b.cfg().telegram_chat_id)
}

/// The notification of a finished task, read from its result document.
fn notification(b: &Bot, task: &str, result_rel: &str) -> Option<(i64, String, Option<Keyboard>)> {
    let chat = chat_for(b, task)?;
    let text = std::fs::read_to_string(b.ws.root.join(result_rel)).ok()?;
    let r: Value = serde_json::from_str(&text).ok()?;
    let status = r["status"].as_str().unwrap_or("unknown");
    let (html, retry) = render(task, &r);
    let buttons = retry.then(|| retry_button(task));
    tracing::info!(task, chat, status, "Telegram: notification queued");
    Some((chat, html, buttons))
}

/// The notification's text (HTML) and whether it offers Retry.
pub fn render(task: &str, r: &Value) -> (String, bool) {
    let status = r["status"].as_str().unwrap_or("unknown");
    let icon = match status {
        "succeeded" => "✅",
        "cancelled" => "⏹",
        "rejected" => "🚫",
        _ => "❌",
    };
    let title = r["title"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| super::commands::title_of(r["prompt"].as_str().unwrap_or(task)));
    let mut out = format!(
        "{icon} <b>{}</b>\n<code>{}</code> {status}",
        escape(&title),
        escape(task)
    );
    let secs = r["duration_ms"].as_u64().unwrap_or(0) as f64 / 1000.0;
    out.push_str(&format!(" · {secs:.1}s"));
    if let Some(c) = r["agent"]["cost_usd"].as_f64() {
        out.push_str(&format!(" · ${c:.4}"));
    }
    out.push('\n');
    if let Some(e) = r["error"]["message"].as_str() {
        out.push_str(&format!("Error: {}\n", escape(e)));
    }
    if let Some(list) = r["success_criteria"].as_array() {
        for c in list {
            let mark = match c["verdict"].as_str() {
                Some("met") => "✅",
                Some("unmet") => "❌",
                _ => "❔",
            };
            out.push_str(&format!(
                "{mark} {}\n",
                escape(c["text"].as_str().unwrap_or(""))
            ));
        }
    }
    if let Some(s) = r["summary"]["text"].as_str() {
        let short: String = s.chars().take(500).collect();
        out.push_str(&format!("\n<b>Summary</b>\n{}\n", escape(&short)));
    }
    if let Some(o) = r["output"].as_str().filter(|o| !o.trim().is_empty()) {
        let cap: String = o.chars().take(20_000).collect();
        out.push_str(&format!("\n<b>Answer</b>\n{}\n", escape(&cap)));
    }
    let retry = matches!(status, "failed" | "timed_out" | "cancelled");
    let next = match status {
        "succeeded" => "Reply to this message to continue in the same session.",
        "rejected" => "Fix the task and send it again.",
        _ => "Press Retry, or reply to this message with more instructions.",
    };
    out.push_str(&format!("\nNext: {next}"));
    (out, retry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn notifications_name_the_facts_and_offer_retry_after_a_failure() {
        let r = json!({"status": "failed", "title": "Fix <db>", "duration_ms": 1500,
            "agent": {"cost_usd": 0.25}, "error": {"message": "agent exited 1"},
            "success_criteria": [{"text": "tests pass", "verdict": "unmet"}],
            "summary": {"text": "It broke."}, "output": "a & b"});
        let (html, retry) = render("t1", &r);
        assert!(retry);
        for want in [
            "Fix &lt;db&gt;",
            "failed",
            "1.5s",
            "$0.2500",
            "agent exited 1",
            "❌ tests pass",
            "It broke.",
            "a &amp; b",
            "Press Retry",
        ] {
            assert!(html.contains(want), "{want} in {html}");
        }
        let (html, retry) = render("t2", &json!({"status": "succeeded", "prompt": "do it"}));
        assert!(!retry);
        assert!(html.contains("continue in the same session"), "{html}");
    }
}

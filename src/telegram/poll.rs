//! Long polling: `getUpdates` with the offset kept in the store. The offset moves past an
//! update before it is acted on, so no update is handled twice across restarts or crashes
//! (one cut off mid-way is lost, never repeated). 409 (another poller or a webhook) is
//! reported once in the log and `orca status`; errors back off and never stop the daemon.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::api::ApiError;
use super::{Bot, OFFSET_KEY};

/// The longest wait between tries after errors.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The problem last reported, so each is logged once until polling works again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trouble {
    Conflict,
    Unauthorized,
    Network,
    Other,
}

fn trouble_of(e: &ApiError) -> Trouble {
    match e.code() {
        Some(409) => Trouble::Conflict,
        Some(401) | Some(404) => Trouble::Unauthorized,
        None => Trouble::Network,
        Some(_) => Trouble::Other,
    }
}

pub async fn run(bot: Arc<Bot>) {
    register(&bot).await;
    let mut backoff = Duration::from_secs(1);
    let mut reported: Option<Trouble> = None;
    bot.blocking(|b| b.set_status("polling", "long polling getUpdates"))
        .await;
    loop {
        let offset = bot.blocking(offset).await.flatten();
        match bot.api.get_updates(offset).await {
            Ok(updates) => {
                backoff = Duration::from_secs(1);
                if reported.take().is_some() {
                    tracing::info!("Telegram: polling works again");
                    bot.blocking(|b| b.set_status("polling", "long polling getUpdates"))
                        .await;
                }
                for u in updates {
                    if offset.is_some_and(|o| u.update_id < o) {
                        continue;
                    }
                    let next = u.update_id + 1;
                    // Taken first: a crash while acting loses this update, never repeats it.
                    let saved = bot
                        .blocking(move |b| b.store.put_meta(OFFSET_KEY, &json!({ "offset": next })))
                        .await;
                    if !matches!(saved, Some(Ok(()))) {
                        tracing::error!("cannot record the Telegram update offset; the update is skipped so it is never handled twice");
                        continue;
                    }
                    super::handle::update(&bot, u).await;
                }
            }
            Err(e) => {
                let t = trouble_of(&e);
                if reported != Some(t) {
                    reported = Some(t);
                    let (state, text) = match t {
                        Trouble::Conflict => ("conflict", format!("another bot instance or a webhook uses this token ({e}); stop the other poller or delete the webhook")),
                        Trouble::Unauthorized => ("unauthorized", format!("Telegram refused the bot token ({e}); check TELEGRAM_BOT_TOKEN")),
                        Trouble::Network => ("unreachable", format!("{e}; retrying with backoff")),
                        Trouble::Other => ("error", format!("{e}; retrying with backoff")),
                    };
                    tracing::error!("Telegram: {text}");
                    bot.blocking(move |b| b.set_status(state, &text)).await;
                }
                let wait = match &e {
                    ApiError::Api {
                        code: 429,
                        retry_after: Some(s),
                        ..
                    } => Duration::from_secs(*s),
                    _ => backoff,
                };
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

fn offset(b: &Bot) -> Option<i64> {
    let v = b.store.get_meta(OFFSET_KEY).ok()??;
    v.get("offset").and_then(serde_json::Value::as_i64)
}

/// `getMe` (logged) and `setMyCommands`, tried a few times at start.
async fn register(bot: &Arc<Bot>) {
    for i in 0..3u32 {
        match bot.api.set_my_commands(super::commands::COMMANDS).await {
            Ok(_) => break,
            Err(e) => {
                tracing::warn!("Telegram: cannot register the bot's commands: {e}");
                tokio::time::sleep(Duration::from_secs(1 << i)).await;
            }
        }
    }
    match bot.api.get_me().await {
        Ok(me) => tracing::info!("Telegram bot @{} started", me.username.unwrap_or_default()),
        Err(e) => tracing::warn!("Telegram: getMe failed: {e}"),
    }
}

//! What the Telegram bot's tests share: the token and users, a workspace whose bot talks to
//! the fake Bot API, readers of the calls it recorded, and a task run to its notification.
#![allow(dead_code)]

use std::path::Path;

use serde_json::Value;

use crate::common::Ws;
use crate::fake_telegram::{message, Call, FakeTelegram};

pub const TOKEN: &str = "123456:TEST-SECRET-TOKEN";
pub const ADA: i64 = 408_258_968;
pub const EVE: i64 = 666;

pub fn bot_ws(fake: &FakeTelegram, allowed: &str) -> Ws {
    let ws = Ws::new();
    ws.set_env(&[
        ("TELEGRAM_BOT_TOKEN", TOKEN),
        ("TELEGRAM_API_URL", &fake.url()),
        ("TELEGRAM_ALLOWED_USERS", allowed),
    ]);
    ws
}

pub fn text(c: &Call) -> String {
    c.body["text"].as_str().unwrap_or("").to_owned()
}

/// The id of the task a "queued" answer names.
pub fn queued_id(c: &Call) -> String {
    let t = text(c);
    let start = t.find("<code>").expect("an id") + 6;
    let end = t[start..].find("</code>").expect("an id") + start;
    t[start..end].to_owned()
}

pub fn buttons(c: &Call) -> Vec<String> {
    c.body["reply_markup"]["inline_keyboard"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .flat_map(|r| r.as_array().cloned().unwrap_or_default())
                .filter_map(|b| b["callback_data"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// No file under `dir` holds the token (results, logs, the store, agent env dumps, ...).
pub fn assert_token_nowhere(dir: &Path) {
    let secret = TOKEN.split(':').nth(1).unwrap();
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != ".env") {
                let bytes = std::fs::read(&p).unwrap_or_default();
                let hay = String::from_utf8_lossy(&bytes);
                assert!(!hay.contains(secret), "the token is in {}", p.display());
                seen += 1;
            }
        }
    }
    assert!(seen > 3, "only {seen} files looked at");
}

pub fn wait_result(ws: &Ws, id: &str) -> Value {
    ws.wait_archived(id);
    ws.wait_result(id)
}

/// A task from Telegram run to its end, and the message id of its notification.
pub fn finished_parent(fake: &FakeTelegram, ws: &Ws) -> (String, Value, i64) {
    fake.push(message(
        1,
        ADA,
        "start the work in /project\nfake-agent: success",
        None,
    ));
    let parent = queued_id(&fake.wait_text(ADA, "queued"));
    let r = wait_result(ws, &parent);
    fake.wait_text(ADA, "✅");
    let sent = fake.sent_to(ADA);
    let note_id = 1001 + sent.iter().position(|c| text(c).contains("✅")).unwrap() as i64;
    (parent, r, note_id)
}

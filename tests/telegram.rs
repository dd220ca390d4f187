//! The Telegram bot inside `orca run`, against a fake Bot API on 127.0.0.1 (real HTTP,
//! scripted updates, every call recorded): commands, plain-words tasks and their folder,
//! access control, progress edits, notifications and buttons, replies that continue a
//! session, 429, 409, long answers, restarts, and the token kept out of every file.

mod common;
#[path = "common/fake_telegram.rs"]
mod fake_telegram;

use std::path::Path;
use std::time::Duration;

use common::Ws;
use fake_telegram::{message, press, Call, FakeTelegram};
use serde_json::Value;

const TOKEN: &str = "123456:TEST-SECRET-TOKEN";
const ADA: i64 = 408_258_968;
const EVE: i64 = 666;

fn bot_ws(fake: &FakeTelegram, allowed: &str) -> Ws {
    let ws = Ws::new();
    ws.set_env(&[
        ("TELEGRAM_BOT_TOKEN", TOKEN),
        ("TELEGRAM_API_URL", &fake.url()),
        ("TELEGRAM_ALLOWED_USERS", allowed),
    ]);
    ws
}

fn text(c: &Call) -> String {
    c.body["text"].as_str().unwrap_or("").to_owned()
}

/// The id of the task a "queued" answer names.
fn queued_id(c: &Call) -> String {
    let t = text(c);
    let start = t.find("<code>").expect("an id") + 6;
    let end = t[start..].find("</code>").expect("an id") + start;
    t[start..end].to_owned()
}

fn buttons(c: &Call) -> Vec<String> {
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
fn assert_token_nowhere(dir: &Path) {
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

fn wait_result(ws: &Ws, id: &str) -> Value {
    ws.wait_archived(id);
    ws.wait_result(id)
}

#[test]
fn commands_tasks_in_plain_words_and_their_folder() {
    let fake = FakeTelegram::start(TOKEN);
    // The token in the process environment too: the agent must not inherit it.
    let mut ws = bot_ws(&fake, &ADA.to_string()).with_env([("TELEGRAM_BOT_TOKEN", TOKEN)]);
    std::fs::create_dir_all(ws.path().join("project")).unwrap();
    ws.set_env(&[(
        "ORCA_FAKE_AGENT_ENV_FILE",
        &ws.path().join("agent-env.txt").display().to_string(),
    )]);
    ws.start();
    let calls = fake.wait("setMyCommands", |c| {
        c.iter().any(|c| c.method == "setMyCommands")
    });
    let cmds: Vec<String> = calls
        .iter()
        .find(|c| c.method == "setMyCommands")
        .unwrap()
        .body["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        cmds,
        ["start", "help", "task", "status", "list", "progress", "cancel", "retry"]
    );

    fake.push(message(1, ADA, "/start", None));
    let help = fake.wait_text(ADA, "plain words");
    assert!(
        text(&help).contains("fix the failing test in /backend"),
        "{}",
        text(&help)
    );
    fake.push(message(2, ADA, "/help@orca_test_bot", None));
    fake.wait("a second help", |c| {
        c.iter()
            .filter(|c| c.method == "sendMessage" && text(c).contains("plain words"))
            .count()
            == 2
    });

    // A task in plain words, in a folder under CLAUDE_BASE_CWD.
    fake.push(message(
        3,
        ADA,
        "look at the code in /project\nfake-agent: success",
        None,
    ));
    let queued = fake.wait_text(ADA, "queued");
    let id = queued_id(&queued);
    assert!(text(&queued).contains("(analyze)"), "{}", text(&queued));
    let r = wait_result(&ws, &id);
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(r["source"]["kind"], "telegram");
    assert_eq!(r["source"]["user"], "Ada (@ada)");
    assert_eq!(r["source"]["user_id"], ADA);
    assert_eq!(r["source"]["chat_id"], ADA);
    let wd = Path::new(r["working_dir"].as_str().unwrap())
        .canonicalize()
        .unwrap();
    assert_eq!(wd, ws.path().join("project").canonicalize().unwrap());
    assert!(ws
        .path()
        .join("tasks/processed")
        .join(format!("{id}.task.md"))
        .is_file());
    // Its progress message (with Cancel) and its notification.
    let progress = fake.wait_text(ADA, "attempt 1");
    assert_eq!(buttons(&progress), [format!("cancel:{id}")]);
    let note = fake.wait_text(ADA, "✅");
    for want in [
        "succeeded",
        "Summary",
        "Answer",
        "Done: look at the code",
        "continue in the same session",
    ] {
        assert!(text(&note).contains(want), "{want}: {}", text(&note));
    }
    assert!(buttons(&note).is_empty());
    ws.wait_for(
        || {
            ws.events_named("notified").iter().any(|e| {
                e["task_id"] == id.as_str() && e["delivered"] == true && e["chat_id"] == ADA
            })
        },
        "the notified event",
    );

    // A folder outside CLAUDE_ALLOWED_ROOT is refused with the reason; nothing is queued.
    let outside = tempfile::tempdir().unwrap();
    fake.push(message(
        4,
        ADA,
        &format!("fix it in {}", outside.path().display()),
        None,
    ));
    let refused = fake.wait_text(ADA, "Not queued");
    assert!(
        text(&refused).contains("outside CLAUDE_ALLOWED_ROOT"),
        "{}",
        text(&refused)
    );

    fake.push(message(5, ADA, "/status", None));
    let st = fake.wait_text(ADA, "succeeded 1");
    assert!(text(&st).contains("<b>Orca</b>"), "{}", text(&st));
    fake.push(message(6, ADA, "/list", None));
    fake.wait_text(ADA, &format!("<code>{id}</code> succeeded"));
    fake.push(message(7, ADA, &format!("/progress {id}"), None));
    fake.wait_text(ADA, "task_archived");
    fake.push(message(8, ADA, &format!("/cancel {id}"), None));
    fake.wait_text(ADA, "already finished");
    fake.push(message(9, ADA, "/progress", None));
    fake.wait_text(ADA, "Give the task id");
    fake.push(message(10, ADA, "/frobnicate", None));
    fake.wait_text(ADA, "Unknown command /frobnicate");
    fake.push(message(11, ADA, "/task", None));
    fake.wait_text(ADA, "Usage:");
    fake.push(message(12, ADA, &format!("/retry {id}"), None));
    fake.wait_text(ADA, "queued again (attempt 2)");
    ws.wait_for(
        || ws.agent_starts().iter().filter(|s| s[1] == id).count() == 2,
        "the retried attempt",
    );
    // The only list of tasks shows exactly the one task: the refused one left no file.
    let list = ws.run(&["list", "--json"]);
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list:#}");
    ws.wait_for(
        || ws.events_named("artifacts_written").len() >= 2,
        "the retry's end",
    );
    ws.stop();
    // The token is in no file Orca wrote, nor in the agent's environment, nor the log.
    let env = std::fs::read_to_string(ws.path().join("agent-env.txt")).unwrap();
    assert!(!env.contains("TELEGRAM_BOT_TOKEN"), "{env}");
    assert_token_nowhere(ws.path());
    let doctor = ws.run(&["doctor"]);
    let out = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        !out.contains("TEST-SECRET-TOKEN") && out.contains("allowed users"),
        "{out}"
    );
    // Every call went to /bot<token>/<method>.
    assert!(fake
        .paths()
        .iter()
        .all(|p| p.starts_with(&format!("/bot{TOKEN}/"))));
}

#[test]
fn strangers_get_one_refusal_and_nothing_is_done() {
    let fake = FakeTelegram::start(TOKEN);
    let mut ws = bot_ws(&fake, &ADA.to_string());
    ws.start();
    fake.push(message(
        1,
        EVE,
        "delete everything\nfake-agent: success",
        None,
    ));
    fake.push(message(2, EVE, "/status", None));
    fake.push(press(3, EVE, 5, "retry:x"));
    fake.push(message(4, ADA, "/status", None));
    fake.wait_text(ADA, "<b>Orca</b>");
    let to_eve = fake.sent_to(EVE);
    assert_eq!(to_eve.len(), 1, "{to_eve:?}");
    assert!(text(&to_eve[0]).contains("not allowed"));
    assert!(fake
        .calls_of("answerCallbackQuery")
        .iter()
        .any(|c| c.body["text"] == "Not allowed"));
    assert!(ws.files_in("tasks").is_empty());
    ws.stop();
    let log = std::fs::read_to_string(ws.path().join("logs/orchestrator.log")).unwrap();
    assert!(
        log.contains("user_id=666") && log.contains("delete everything"),
        "{log}"
    );
}

#[test]
fn an_empty_allow_list_serves_nobody_and_says_how_to_configure() {
    let fake = FakeTelegram::start(TOKEN);
    let mut ws = bot_ws(&fake, "");
    ws.start();
    fake.push(message(1, ADA, "do the thing\nfake-agent: success", None));
    let m = fake.wait_text(ADA, "serves nobody");
    assert!(
        text(&m).contains(&format!("TELEGRAM_ALLOWED_USERS={ADA}")),
        "{}",
        text(&m)
    );
    fake.push(message(2, ADA, "/status", None));
    // Processed (the offset moved past it) without a second answer.
    fake.wait("the second update taken", |c| {
        c.iter()
            .any(|c| c.method == "getUpdates" && c.body["offset"] == 3)
    });
    assert_eq!(fake.sent_to(ADA).len(), 1);
    assert!(ws.files_in("tasks").is_empty());
    ws.stop();
}

#[test]
fn buttons_cancel_a_running_task_and_retry_it() {
    let fake = FakeTelegram::start(TOKEN);
    let mut ws = bot_ws(&fake, &ADA.to_string());
    ws.start();
    fake.push(message(1, ADA, "wait a while\nfake-agent: hang", None));
    let id = queued_id(&fake.wait_text(ADA, "queued"));
    let progress = fake.wait_text(ADA, "attempt 1");
    assert_eq!(buttons(&progress), [format!("cancel:{id}")]);
    // The progress message's id, as the fake gave it out: the first message after "queued".
    let sent = fake.sent_to(ADA);
    let index = sent
        .iter()
        .position(|c| text(c).contains("attempt 1"))
        .unwrap();
    let progress_id = 1001 + index as i64;
    fake.push(press(2, ADA, progress_id, &format!("cancel:{id}")));
    let r = wait_result(&ws, &id);
    assert_eq!(r["status"], "cancelled", "{r:#}");
    let answered = fake.wait("the press answered", |c| {
        c.iter()
            .any(|c| c.method == "answerCallbackQuery" && c.body["callback_query_id"] == "cbq2")
    });
    let a = answered
        .iter()
        .find(|c| c.method == "answerCallbackQuery")
        .unwrap();
    assert!(
        a.body["text"].as_str().unwrap().contains("Stopping"),
        "{:?}",
        a.body
    );
    let note = fake.wait_text(ADA, "⏹ <b>");
    assert_eq!(buttons(&note), [format!("retry:{id}")]);
    assert!(text(&note).contains("cancelled"));
    // The progress message was edited to its end, without buttons.
    fake.wait("the progress message's last edit", |c| {
        c.iter().any(|c| {
            c.method == "editMessageText" && text(c).contains("finished") && buttons(c).is_empty()
        })
    });
    let sent = fake.sent_to(ADA);
    let note_id = 1001 + sent.iter().position(|c| text(c).contains("⏹ <b>")).unwrap() as i64;
    fake.push(press(3, ADA, note_id, &format!("retry:{id}")));
    fake.wait_text(ADA, "queued again (attempt 2)");
    ws.wait_for(
        || ws.agent_starts().iter().filter(|s| s[1] == id).count() == 2,
        "the retried attempt",
    );
    ws.stop();
}

#[test]
fn the_progress_message_is_edited_in_place_at_most_every_two_seconds() {
    let fake = FakeTelegram::start(TOKEN);
    let mut ws = bot_ws(&fake, &ADA.to_string());
    ws.start();
    fake.push(message(1, ADA, "take steps\nfake-agent: slow 300 20", None));
    let id = queued_id(&fake.wait_text(ADA, "queued"));
    wait_result(&ws, &id);
    let calls = fake.wait("the final edit", |c| {
        c.iter()
            .any(|c| c.method == "editMessageText" && text(c).contains("finished"))
    });
    let edits: Vec<&Call> = calls
        .iter()
        .filter(|c| c.method == "editMessageText")
        .collect();
    assert!(edits.len() >= 2, "{edits:?}");
    let mid = &edits[0].body["message_id"];
    assert!(edits.iter().all(|e| &e.body["message_id"] == mid));
    assert!(edits.iter().any(|e| text(e).contains("Bash")), "{edits:?}");
    // Edits while running are at least ~2 s apart (the last one, at the end, may be sooner).
    let running: Vec<&&Call> = edits
        .iter()
        .filter(|e| !text(e).contains("finished"))
        .collect();
    for w in running.windows(2) {
        let gap = w[1].at.duration_since(w[0].at);
        assert!(gap >= Duration::from_millis(1800), "edits {gap:?} apart");
    }
    let progress_events = ws.events_named("claude_progress").len();
    assert!(
        running.len() < progress_events.max(2),
        "{} edits for {progress_events} progress events",
        running.len()
    );
    ws.stop();
}

#[test]
fn a_reply_to_a_notification_continues_the_session() {
    let fake = FakeTelegram::start(TOKEN);
    let config = tempfile::tempdir().unwrap();
    let mut ws = bot_ws(&fake, &ADA.to_string());
    ws.set_env(&[
        ("CLAUDE_CONFIG_DIR", &config.path().display().to_string()),
        (
            "ORCA_FAKE_AGENT_ARGV_FILE",
            &ws.path().join("argv.log").display().to_string(),
        ),
    ]);
    std::fs::create_dir_all(ws.path().join("project")).unwrap();
    ws.start();
    fake.push(message(
        1,
        ADA,
        "start the work in /project\nfake-agent: success",
        None,
    ));
    let parent = queued_id(&fake.wait_text(ADA, "queued"));
    let r = wait_result(&ws, &parent);
    let sid = r["agent"]["session_id"].as_str().unwrap().to_owned();
    // The CLI keeps the session's transcript; the follow-up finds it.
    let proj = config.path().join("projects/some-project");
    std::fs::create_dir_all(&proj).unwrap();
    std::fs::write(proj.join(format!("{sid}.jsonl")), "{}\n").unwrap();
    fake.wait_text(ADA, "✅");
    let sent = fake.sent_to(ADA);
    let note_id = 1001 + sent.iter().position(|c| text(c).contains("✅")).unwrap() as i64;
    fake.push(message(
        2,
        ADA,
        "now add tests\nfake-agent: success",
        Some(note_id),
    ));
    let follow = fake.wait_text(ADA, "Follow-up");
    assert!(text(&follow).contains("same session"), "{}", text(&follow));
    let child = queued_id(&follow);
    let c = wait_result(&ws, &child);
    assert_eq!(c["status"], "succeeded", "{c:#}");
    assert_eq!(c["source"]["follows"], parent.as_str());
    assert_eq!(c["working_dir"], r["working_dir"]);
    assert_eq!(c["attempt_history"][0]["resumed"], true, "{c:#}");
    let argv = std::fs::read_to_string(ws.path().join("argv.log")).unwrap();
    let lines: Vec<&str> = argv.lines().collect();
    assert_eq!(lines.len(), 2, "{argv}");
    assert!(!lines[0].contains("--resume"), "{argv}");
    assert!(lines[1].contains(&format!("--resume\t{sid}")), "{argv}");
    let p = ws.wait_result(&parent);
    assert_eq!(p["source"]["followed_by"], serde_json::json!([child]));
    let check = ws.run(&["validate-artifacts"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    ws.stop();
}

#[test]
fn rate_limits_are_honoured_and_long_answers_split() {
    let fake = FakeTelegram::start(TOKEN);
    let mut ws = bot_ws(&fake, &ADA.to_string());
    fake.fail(
        "sendMessage",
        1,
        429,
        "Too Many Requests: retry after 1",
        Some(1),
    );
    ws.start();
    fake.push(message(1, ADA, "/help", None));
    fake.wait_text(ADA, "plain words");
    let helps = fake.calls_of("sendMessage");
    assert_eq!(helps[0].status, 429);
    assert!(helps[1].at.duration_since(helps[0].at) >= Duration::from_millis(900));

    fake.push(message(2, ADA, "write a lot\nfake-agent: long 10000", None));
    let id = queued_id(&fake.wait_text(ADA, "queued"));
    wait_result(&ws, &id);
    let calls = fake.wait("the whole answer", |c| {
        c.iter()
            .any(|c| c.method == "sendMessage" && text(c).contains("Next:"))
    });
    let sends: Vec<&Call> = calls.iter().filter(|c| c.method == "sendMessage").collect();
    let start = sends.iter().position(|c| text(c).contains("✅")).unwrap();
    assert!(
        sends[start..].iter().all(|c| c.status == 200),
        "a send was refused"
    );
    let parts: Vec<String> = sends[start..].iter().map(|c| text(c)).collect();
    assert!(parts.len() >= 3, "{} parts", parts.len());
    assert!(parts.iter().all(|p| p.encode_utf16().count() <= 4096));
    let all = parts.join("\n");
    assert!(
        all.contains("line 1 x") && all.contains("line 100 "),
        "{all}"
    );
    ws.stop();
}

#[test]
fn a_conflict_is_reported_once_and_polling_recovers() {
    let fake = FakeTelegram::start(TOKEN);
    let mut ws = bot_ws(&fake, &ADA.to_string());
    fake.fail(
        "getUpdates",
        3,
        409,
        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
        None,
    );
    ws.start();
    fake.wait("the conflict recorded", |c| {
        c.iter()
            .filter(|c| c.method == "getUpdates" && c.status == 409)
            .count()
            >= 1
    });
    ws.wait_for(
        || String::from_utf8_lossy(&ws.run(&["status"]).stdout).contains("another bot instance"),
        "the conflict in status",
    );
    let status = ws.run(&["status", "--json"]);
    let st: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(st["telegram"]["state"], "conflict", "{st:#}");
    fake.wait("the conflicts passed", |c| {
        c.iter()
            .filter(|c| c.method == "getUpdates" && c.status == 409)
            .count()
            == 3
    });
    fake.push(message(1, ADA, "/status", None));
    fake.wait_text(ADA, "<b>Orca</b>");
    ws.stop();
    let log = std::fs::read_to_string(ws.path().join("logs/orchestrator.log")).unwrap();
    assert_eq!(log.matches("another bot instance").count(), 1, "{log}");
    assert!(log.contains("polling works again"), "{log}");
    assert_token_nowhere(ws.path());
}

#[test]
fn a_restart_handles_no_update_twice() {
    let fake = FakeTelegram::start(TOKEN);
    let mut ws = bot_ws(&fake, &ADA.to_string());
    ws.start();
    fake.push(message(1, ADA, "once only\nfake-agent: success", None));
    let id = queued_id(&fake.wait_text(ADA, "queued"));
    wait_result(&ws, &id);
    ws.stop();
    // The fake still holds update 1: only the stored offset keeps it from coming back.
    ws.start();
    fake.push(message(2, ADA, "/list", None));
    fake.wait_text(ADA, &format!("<code>{id}</code>"));
    let queued = fake
        .calls_of("sendMessage")
        .iter()
        .filter(|c| text(c).contains("queued ("))
        .count();
    assert_eq!(queued, 1);
    let list: Value = serde_json::from_slice(&ws.run(&["list", "--json"]).stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list:#}");
    ws.stop();
}

#[test]
fn tasks_from_files_are_notified_to_the_configured_chat_with_retry() {
    let fake = FakeTelegram::start(TOKEN);
    let mut ws = bot_ws(&fake, &ADA.to_string());
    ws.set_env(&[("TELEGRAM_CHAT_ID", "-100123")]);
    ws.start();
    ws.drop_task("broken.task.md", &common::task("broken", "high", "fail"));
    let r = wait_result(&ws, "broken");
    assert_eq!(r["status"], "failed");
    let calls = fake.wait("the group notification", |c| {
        c.iter()
            .any(|c| c.method == "sendMessage" && c.body["chat_id"] == -100_123)
    });
    let note = calls
        .iter()
        .find(|c| c.method == "sendMessage" && c.body["chat_id"] == -100_123)
        .unwrap();
    assert!(
        text(note).contains("❌ <b>Task broken</b>"),
        "{}",
        text(note)
    );
    assert!(text(note).contains("Press Retry"), "{}", text(note));
    assert_eq!(buttons(note), ["retry:broken"]);
    // No live progress for a task from a file: only the notification went out.
    assert!(fake.calls_of("editMessageText").is_empty());
    assert_eq!(fake.calls_of("sendMessage").len(), 1);
    ws.stop();
}

//! The Telegram bot inside `orca run`, against a fake Bot API on 127.0.0.1 (real HTTP,
//! scripted updates, every call recorded): commands, plain-words tasks and their folder,
//! access control (groups too), progress edits, buttons, 429, 409, long answers, restarts
//! and crashes, and the token kept out of every file. Notifications: tests/telegram_notify.rs.

#[path = "common/bot.rs"]
mod bot;
mod common;
#[path = "common/fake_telegram.rs"]
mod fake_telegram;

use std::path::Path;
use std::time::Duration;

use bot::{assert_token_nowhere, bot_ws, buttons, queued_id, text, wait_result, ADA, EVE, TOKEN};
use fake_telegram::{group_message, message, press, Call, FakeTelegram};
use serde_json::Value;

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
    let cmds: Vec<String> = fake
        .wait_call("setMyCommands", "setMyCommands", |_| true)
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
    fake.wait_count("sendMessage", "a second help", 2, |c| {
        text(c).contains("plain words")
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
    fake.wait_call("getUpdates", "the second update taken", |c| {
        c.body["offset"] == 3
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
    let a = fake.wait_call("answerCallbackQuery", "the press answered", |c| {
        c.body["callback_query_id"] == "cbq2"
    });
    assert!(
        a.body["text"].as_str().unwrap().contains("Stopping"),
        "{:?}",
        a.body
    );
    let note = fake.wait_text(ADA, "⏹ <b>");
    assert_eq!(buttons(&note), [format!("retry:{id}")]);
    assert!(text(&note).contains("cancelled"));
    // The progress message was edited to its end, without buttons.
    fake.wait_call("editMessageText", "the progress message's last edit", |c| {
        text(c).contains("finished") && buttons(c).is_empty()
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
    fake.wait_call("editMessageText", "the final edit", |c| {
        text(c).contains("finished")
    });
    let edits = fake.calls_of("editMessageText");
    assert!(edits.len() >= 2, "{edits:?}");
    let mid = &edits[0].body["message_id"];
    assert!(edits.iter().all(|e| &e.body["message_id"] == mid));
    assert!(edits.iter().any(|e| text(e).contains("Bash")), "{edits:?}");
    // Edits while running are at least ~2 s apart (the last one, at the end, may be sooner).
    let running: Vec<&Call> = edits
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
    fake.wait_call("sendMessage", "the whole answer", |c| {
        text(c).contains("Next:")
    });
    let sends = fake.calls_of("sendMessage");
    let start = sends.iter().position(|c| text(c).contains("✅")).unwrap();
    assert!(
        sends[start..].iter().all(|c| c.status == 200),
        "a send was refused"
    );
    let parts: Vec<String> = sends[start..].iter().map(text).collect();
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
    fake.wait_count("getUpdates", "the conflict recorded", 1, |c| {
        c.status == 409
    });
    ws.wait_for(
        || String::from_utf8_lossy(&ws.run(&["status"]).stdout).contains("another bot instance"),
        "the conflict in status",
    );
    let status = ws.run(&["status", "--json"]);
    let st: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(st["telegram"]["state"], "conflict", "{st:#}");
    fake.wait_count("getUpdates", "the conflicts passed", 3, |c| c.status == 409);
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
    let listed = format!("<code>{id}</code> succeeded – ");
    fake.wait_text(ADA, &listed);
    let queued = fake
        .calls_of("sendMessage")
        .iter()
        .filter(|c| text(c).contains("queued ("))
        .count();
    assert_eq!(queued, 1);
    let list: Value = serde_json::from_slice(&ws.run(&["list", "--json"]).stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list:#}");
    // A crash (SIGKILL) does not bring them back either.
    ws.kill9();
    ws.start();
    fake.push(message(3, ADA, "/status", None));
    fake.wait_text(ADA, "<b>Orca</b>");
    let lists = fake
        .sent_to(ADA)
        .iter()
        .filter(|c| text(c).contains(&listed))
        .count();
    assert_eq!(lists, 1, "the /list was answered again");
    let queued = fake
        .calls_of("sendMessage")
        .iter()
        .filter(|c| text(c).contains("queued ("))
        .count();
    assert_eq!(queued, 1);
    ws.stop();
}

#[test]
fn commands_act_on_a_running_task_and_groups_hear_only_allowed_users() {
    let fake = FakeTelegram::start(TOKEN);
    let mut ws = bot_ws(&fake, &ADA.to_string());
    ws.start();
    fake.push(message(
        1,
        ADA,
        "/task wait for the build\nfake-agent: hang",
        None,
    ));
    let queued = fake.wait_text(ADA, "queued");
    let id = queued_id(&queued);
    assert!(id.starts_with("tg_"), "{id}");
    fake.wait_text(ADA, "attempt 1");
    ws.wait_for(
        || ws.agent_starts().iter().any(|s| s[1] == id),
        "the agent started",
    );
    fake.push(message(2, ADA, &format!("/progress {id}"), None));
    let p = fake.wait_text(ADA, &format!("<code>{id}</code> running · attempt 1"));
    assert!(text(&p).contains("claude_started"), "{}", text(&p));
    // A group: a stranger's command is not acted on, an allowed user's is.
    const GROUP: i64 = -100_555;
    fake.push(group_message(3, GROUP, EVE, &format!("/cancel {id}")));
    fake.push(group_message(4, GROUP, ADA, "/list"));
    fake.wait_text(GROUP, &format!("<code>{id}</code> running"));
    let to_group = fake.sent_to(GROUP);
    assert_eq!(to_group.len(), 2, "{to_group:?}");
    assert!(
        to_group.iter().any(|c| text(c).contains("not allowed")),
        "{to_group:?}"
    );
    assert!(ws.events_named("cancel_requested").is_empty());
    // /cancel of the running task stops it.
    fake.push(message(5, ADA, &format!("/cancel {id}"), None));
    fake.wait_text(ADA, &format!("Stopping <code>{id}</code>"));
    let r = wait_result(&ws, &id);
    assert_eq!(r["status"], "cancelled", "{r:#}");
    assert_eq!(r["source"]["kind"], "telegram");
    ws.stop();
    let log = std::fs::read_to_string(ws.path().join("logs/orchestrator.log")).unwrap();
    assert!(log.contains("user_id=666"), "{log}");
}

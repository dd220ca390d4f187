//! The Telegram bot's notifications, against the fake Bot API: their content and buttons,
//! replies that continue a task (its session resumed, or a fresh one when it is gone),
//! notifications kept across a stop, and the bot's settings reloaded live.

#[path = "common/bot.rs"]
mod bot;
mod common;
#[path = "common/fake_telegram.rs"]
mod fake_telegram;

use std::time::Duration;

use bot::{
    assert_token_nowhere, bot_ws, buttons, finished_parent, queued_id, text, wait_result, ADA, EVE,
    TOKEN,
};
use fake_telegram::{message, Call, FakeTelegram};
use serde_json::Value;

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
    let (parent, r, note_id) = finished_parent(&fake, &ws);
    let sid = r["agent"]["session_id"].as_str().unwrap().to_owned();
    // The CLI keeps the session's transcript; the follow-up finds it.
    let proj = config.path().join("projects/some-project");
    std::fs::create_dir_all(&proj).unwrap();
    std::fs::write(proj.join(format!("{sid}.jsonl")), "{}\n").unwrap();
    fake.push(message(
        2,
        ADA,
        "now add tests\nfake-agent: success",
        Some(note_id),
    ));
    let follow = fake.wait_text(ADA, "Follow-up");
    assert!(
        text(&follow).contains("same session, same folder"),
        "{}",
        text(&follow)
    );
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
fn a_reply_whose_session_is_gone_starts_a_fresh_session_linked_to_it() {
    let fake = FakeTelegram::start(TOKEN);
    // The CLI's configuration folder holds no transcript of the parent's session.
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
    let (parent, r, note_id) = finished_parent(&fake, &ws);
    assert!(r["agent"]["session_id"].is_string(), "{r:#}");
    fake.push(message(
        2,
        ADA,
        "now add tests\nfake-agent: success",
        Some(note_id),
    ));
    let follow = fake.wait_text(ADA, "Follow-up");
    let t = text(&follow);
    assert!(!t.contains("same session"), "{t}");
    assert!(
        t.contains("a fresh agent session in the same folder")
            && t.contains(&format!("linked to {parent}"))
            && t.contains("no longer has the session"),
        "{t}"
    );
    let child = queued_id(&follow);
    let c = wait_result(&ws, &child);
    assert_eq!(c["status"], "succeeded", "{c:#}");
    assert_eq!(c["source"]["follows"], parent.as_str());
    assert_eq!(c["working_dir"], r["working_dir"]);
    assert_eq!(c["attempt_history"][0]["resumed"], false, "{c:#}");
    let argv = std::fs::read_to_string(ws.path().join("argv.log")).unwrap();
    assert_eq!(argv.lines().count(), 2, "{argv}");
    assert!(!argv.contains("--resume"), "{argv}");
    let p = ws.wait_result(&parent);
    assert_eq!(p["source"]["followed_by"], serde_json::json!([child]));
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
    let note = fake.wait_call("sendMessage", "the group notification", |c| {
        c.body["chat_id"] == -100_123
    });
    assert!(
        text(&note).contains("❌ <b>Task broken</b>"),
        "{}",
        text(&note)
    );
    assert!(text(&note).contains("Press Retry"), "{}", text(&note));
    assert_eq!(buttons(&note), ["retry:broken"]);
    // The criteria's verdicts, the duration and the cost.
    ws.drop_task(
        "checked.task.md",
        "# Checked\n\n**Prompt:**\nDo it.\nfake-agent: success\n\n**Success Criteria:**\n- [ ] It runs: `true`\n- [ ] It is broken: `false`\n",
    );
    let r = wait_result(&ws, "checked");
    assert_eq!(r["status"], "succeeded", "{r:#}");
    let note = fake.wait_call("sendMessage", "the second notification", |c| {
        text(c).contains("<code>checked</code>")
    });
    let t = text(&note);
    for want in [
        "✅ <b>Checked</b>",
        "<code>checked</code> succeeded · ",
        "s · $",
        "✅ It runs",
        "❌ It is broken",
        "Next: Reply to this message",
    ] {
        assert!(t.contains(want), "{want}: {t}");
    }
    assert!(buttons(&note).is_empty());
    // No live progress for tasks from files: only the notifications went out.
    assert!(fake.calls_of("editMessageText").is_empty());
    assert_eq!(fake.calls_of("sendMessage").len(), 2);
    ws.stop();
}

#[test]
fn a_notification_unsent_at_the_stop_is_kept_and_sent_at_the_next_start() {
    let fake = FakeTelegram::start(TOKEN);
    let mut ws = bot_ws(&fake, &ADA.to_string());
    ws.set_env(&[("TELEGRAM_CHAT_ID", "-100123")]);
    ws.start();
    // Telegram fails every send from now on.
    fake.fail("sendMessage", 1000, 502, "Bad Gateway", None);
    ws.drop_task("late.task.md", &common::task("late", "high", "success"));
    wait_result(&ws, "late");
    fake.wait_count("sendMessage", "a failed try", 1, |c| c.status == 502);
    // `orca status` counts it as not delivered yet.
    ws.wait_for(
        || {
            let st: Value =
                serde_json::from_slice(&ws.run(&["status", "--json"]).stdout).unwrap_or_default();
            st["telegram"]["unsent"] == 1
        },
        "the unsent notification in `orca status --json`",
    );
    let st = String::from_utf8_lossy(&ws.run(&["status"]).stdout).into_owned();
    assert!(st.contains("1 notification(s) not delivered yet"), "{st}");
    ws.stop();
    let log = std::fs::read_to_string(ws.path().join("logs/orchestrator.log")).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("the notification of task late was not sent before the stop"))
        .unwrap_or_else(|| panic!("no line names the unsent notification:\n{log}"));
    assert!(
        line.contains("chat=-100123") && line.contains("sent at the next start"),
        "{line}"
    );
    let kept = ws.files_in(".orca/telegram-outbox");
    assert_eq!(kept.len(), 1, "{kept:?}");
    // One that three earlier starts could not send: this start gives it up, and logs it.
    let ancient = serde_json::json!({
        "key": "1-ancient", "task": "ancient", "chat": -100123, "html": "old news",
        "buttons": null, "status": "failed", "starts": 3, "queued_at": "2026-01-01T00:00:00Z"
    });
    std::fs::write(
        ws.path().join(".orca/telegram-outbox/1-ancient.json"),
        ancient.to_string(),
    )
    .unwrap();

    // Telegram is back: the next start delivers it, once.
    fake.clear_failures();
    ws.start();
    let note = fake.wait_call("sendMessage", "the kept notification", |c| {
        c.status == 200 && c.body["chat_id"] == -100_123
    });
    assert!(
        text(&note).contains("✅ <b>Task late</b>"),
        "{}",
        text(&note)
    );
    ws.wait_for(
        || {
            ws.events_named("notified")
                .iter()
                .any(|e| e["task_id"] == "late" && e["delivered"] == true)
        },
        "the notified event",
    );
    ws.wait_for(
        || ws.files_in(".orca/telegram-outbox").is_empty(),
        "the kept notifications gone",
    );
    ws.stop();
    let delivered: Vec<Call> = fake
        .calls_of("sendMessage")
        .into_iter()
        .filter(|c| c.status == 200)
        .collect();
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    let log = std::fs::read_to_string(ws.path().join("logs/orchestrator.log")).unwrap();
    assert!(
        log.contains("gave up the notification of task ancient")
            && log.contains("left by an earlier run"),
        "{log}"
    );
    assert_token_nowhere(ws.path());
}

#[test]
fn a_slow_telegram_does_not_hold_up_the_stop_and_the_notification_survives_it() {
    let fake = FakeTelegram::start(TOKEN);
    let mut ws = bot_ws(&fake, &ADA.to_string());
    ws.set_env(&[("TELEGRAM_CHAT_ID", "-100123")]);
    ws.start();
    // The first notification's send hangs far longer than the stop waits.
    fake.delay("sendMessage", 1, Duration::from_secs(300));
    ws.drop_task("slow.task.md", &common::task("slow", "high", "success"));
    wait_result(&ws, "slow");
    fake.wait_received("sendMessage");
    ws.stop();
    // The daemon stopped while Telegram still held the request unanswered.
    assert!(fake.calls_of("sendMessage").is_empty());
    let log = std::fs::read_to_string(ws.path().join("logs/orchestrator.log")).unwrap();
    assert!(
        log.contains("the notification of task slow was not sent before the stop"),
        "{log}"
    );
    ws.start();
    let note = fake.wait_call("sendMessage", "the kept notification", |c| {
        c.status == 200 && c.body["chat_id"] == -100_123
    });
    assert!(text(&note).contains("<b>Task slow</b>"), "{}", text(&note));
    ws.wait_for(
        || ws.files_in(".orca/telegram-outbox").is_empty(),
        "the kept notification gone",
    );
    ws.stop();
}

#[test]
fn the_allow_list_and_chat_reload_live_and_the_token_needs_a_restart() {
    let fake = FakeTelegram::start(TOKEN);
    let mut ws = bot_ws(&fake, &ADA.to_string());
    ws.start();
    fake.push(message(1, EVE, "/status", None));
    fake.wait_text(EVE, "not allowed");
    // Eve is added, notifications of file tasks get a chat, and the token changes.
    let env_file = ws.path().join(".env");
    let env = std::fs::read_to_string(&env_file).unwrap();
    let env = env
        .replace(
            &format!("TELEGRAM_ALLOWED_USERS={ADA}"),
            &format!("TELEGRAM_ALLOWED_USERS={ADA},{EVE}\nTELEGRAM_CHAT_ID=-100777"),
        )
        .replace(
            &format!("TELEGRAM_BOT_TOKEN={TOKEN}"),
            "TELEGRAM_BOT_TOKEN=999:NEW-SECRET-TOKEN",
        );
    std::fs::write(&env_file, env).unwrap();
    ws.signal(libc::SIGHUP);
    ws.wait_for(
        || {
            ws.events_named("config_reloaded").iter().any(|e| {
                e["changed"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|n| n == "TELEGRAM_ALLOWED_USERS"))
            })
        },
        "the reload",
    );
    fake.push(message(2, EVE, "/status", None));
    fake.wait_text(EVE, "<b>Orca</b>");
    ws.drop_task("filed.task.md", &common::task("filed", "high", "success"));
    let note = fake.wait_call("sendMessage", "the notification to the new chat", |c| {
        c.body["chat_id"] == -100_777
    });
    assert!(text(&note).contains("<b>Task filed</b>"), "{}", text(&note));
    ws.stop();
    // The bot kept its token: every call used the one it started with.
    assert!(fake
        .paths()
        .iter()
        .all(|p| p.starts_with(&format!("/bot{TOKEN}/"))));
    let log = std::fs::read_to_string(ws.path().join("logs/orchestrator.log")).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("take effect only when `orca run` is restarted"))
        .unwrap_or_else(|| panic!("no line names the setting that needs a restart:\n{log}"));
    assert!(line.contains("TELEGRAM_BOT_TOKEN"), "{line}");
    assert!(!log.contains("NEW-SECRET-TOKEN"), "{log}");
    assert!(log.contains("the allow-list was reloaded"), "{log}");
}

//! The fix loop with the REAL Claude Code CLI (pinned, see scripts/install-claude-code.sh)
//! against the fake Anthropic API: the first answer leaves a check failing, the resumed
//! session gets the check's output and fixes it.

mod common;
mod fake_anthropic;

use common::Ws;
use fake_anthropic::{claude_bin, claude_env, FakeAnthropic, Reply};
use serde_json::json;

#[test]
fn a_failing_check_is_fed_back_to_the_resumed_cli_session_which_fixes_it() {
    let ws = Ws::new();
    let root = ws.path().canonicalize().unwrap();
    let file = root.join("ok.txt");
    let fake = FakeAnthropic::start(vec![
        Reply::tool("Write", json!({"file_path": file, "content": "wrong\n"})),
        Reply::text("Done. All tests pass."),
        Reply::tool("Write", json!({"file_path": file, "content": "right\n"})),
        Reply::text("I fixed ok.txt."),
    ]);
    let home = tempfile::tempdir().unwrap();
    let mut env: Vec<(String, String)> = claude_env(home.path(), &fake.url())
        .into_iter()
        .filter(|(k, _)| k != "IS_SANDBOX")
        .collect();
    env.push(("CLAUDE_BIN".into(), claude_bin().display().to_string()));
    env.push(("CLAUDE_SKIP_PERMISSIONS".into(), "true".into()));
    let mut ws = ws.with_env(env);
    ws.start();
    let check = "sh -c 'cat ok.txt; grep -q right ok.txt'";
    ws.drop_task(
        "fix.task.md",
        &format!(
            "---\ntype: fix\nfix_rounds: 2\nstrict: true\n---\n\n# Fix the file\n\n**Prompt:**\nMake ok.txt right.\n\n**Success Criteria:**\n- [ ] It is right: `{check}`\n"
        ),
    );
    let r = ws.wait_result("fix");
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(r["attempt_history"][0]["rounds"], 1, "{r:#}");
    assert_eq!(r["success_criteria"][0]["verdict"], "met", "{r:#}");
    assert_eq!(r["output"], "I fixed ok.txt.");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "right\n");
    let posts = fake.messages_requests();
    assert_eq!(posts.len(), 4, "{posts:#?}");
    // The round's request: the same session (the task's prompt and the first write are in
    // it) and the failing check with its output.
    let round = posts[2].user_text();
    assert!(round.contains("Make ok.txt right."), "{round}");
    assert!(
        round.contains(&format!("The check `{check}` failed with exit 1")),
        "{round}"
    );
    assert!(round.contains("wrong"), "{round}");
    assert!(posts[2].body["messages"].to_string().contains("tool_use"));
    let ev = ws.events_named("fix_round");
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["unmet"], 0);
    assert_eq!(ev[0]["session_id"], r["agent"]["session_id"]);
    // The claim in the final message is backed by the stream's Write.
    let claims = r["verification"]["claims"].as_array().unwrap();
    assert_eq!(claims.len(), 1, "{r:#}");
    assert_eq!(claims[0]["status"], "backed", "{r:#}");
    ws.wait_archived(r["task_id"].as_str().unwrap());
    ws.stop();
}

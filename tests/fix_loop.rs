//! The fix loop through the real `orca` daemon and the fake agent (its `ORCA_FAKE_AGENT_STEPS`
//! script: one block of steps per start): unmet checks are fed back to the agent's session
//! until they are met, the rounds run out, or a round changes nothing; a cancel during the
//! checks ends them.

mod common;

use common::{alive, Ws};
use serde_json::Value;

/// A workspace whose fake agent runs `steps` (blocks separated by `---` lines), resumable
/// (its transcripts go to a config folder of the workspace), logging each start's prompt.
fn ws_with_steps(steps: &str) -> Ws {
    let ws = Ws::new();
    std::fs::create_dir_all(ws.path().join("work")).unwrap();
    let steps_file = ws.path().join("steps.txt");
    std::fs::write(&steps_file, steps).unwrap();
    let p = |rel: &str| ws.path().join(rel).display().to_string();
    let (prompts, config) = (p("prompts.txt"), p("claude-config"));
    ws.with_env([
        ("ORCA_FAKE_AGENT_STEPS", steps_file.display().to_string()),
        ("ORCA_FAKE_AGENT_PROMPT_FILE", prompts),
        ("CLAUDE_CONFIG_DIR", config),
    ])
}

fn task(id: &str, front: &str, criteria: &[&str]) -> String {
    let mut s = format!(
        "---\nid: {id}\nworking_dir: work\n{front}---\n\n# Task {id}\n\n**Prompt:**\nMake it right.\n\n**Success Criteria:**\n"
    );
    for c in criteria {
        s.push_str(&format!("- [ ] {c}\n"));
    }
    s
}

/// Each start's prompt, in order.
fn prompts(ws: &Ws) -> Vec<String> {
    std::fs::read_to_string(ws.path().join("prompts.txt"))
        .unwrap_or_default()
        .split("=== start\n")
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn rounds(r: &Value) -> &Value {
    &r["attempt_history"][0]["rounds"]
}

#[test]
fn a_fix_loop_that_succeeds_in_round_two_resumes_the_session_with_the_failure() {
    let mut ws = ws_with_steps(
        "write ok.txt wrong\nsay All done.\n---\nwrite ok.txt still wrong\n---\nwrite ok.txt right\nsay Fixed ok.txt.\n",
    );
    ws.start();
    ws.drop_task(
        "fix.task.md",
        &task(
            "fix",
            "fix_rounds: 3\nstrict: true\n",
            &[
                "It is right: `sh -c 'cat ok.txt; grep -q right ok.txt'`",
                "It exists: `test -f ok.txt`",
            ],
        ),
    );
    let r = ws.wait_result("fix");
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(rounds(&r), 2, "{r:#}");
    assert_eq!(r["success_criteria"][0]["verdict"], "met", "{r:#}");
    assert_eq!(r["output"], "Fixed ok.txt.");
    assert_eq!(r["changed_files"], serde_json::json!(["ok.txt"]), "{r:#}");
    let p = prompts(&ws);
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(p[0].contains("Make it right."), "{}", p[0]);
    // The rounds resume the session: only the failure, with the check's output tail.
    for (i, round) in p[1..].iter().enumerate() {
        assert!(
            round.starts_with("Orca ran the task's success checks"),
            "{round}"
        );
        assert!(!round.contains("Make it right."), "{round}");
        assert!(
            round.contains(&format!("(fix round {} of 3)", i + 1)),
            "{round}"
        );
        assert!(
            round.contains(
                "The check `sh -c 'cat ok.txt; grep -q right ok.txt'` failed with exit 1"
            ),
            "{round}"
        );
        assert!(
            !round.contains("test -f ok.txt"),
            "a met check is not named: {round}"
        );
    }
    assert!(p[1].contains("\nwrong\n"), "{}", p[1]);
    assert!(p[2].contains("still wrong"), "{}", p[2]);
    let ev = ws.events_named("fix_round");
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(ev[0]["round"], 1);
    assert_eq!(ev[0]["unmet"], 1);
    assert_eq!(ev[0]["changed"], true);
    assert_eq!(ev[1]["round"], 2);
    assert_eq!(ev[1]["unmet"], 0);
    assert_eq!(ev[1]["max_rounds"], 3);
    // The checks ran three times, the session was one.
    assert_eq!(ws.events_named("check_finished").len(), 6);
    let sessions: Vec<&Value> = ev.iter().map(|e| &e["session_id"]).collect();
    assert_eq!(sessions[0], sessions[1]);
    assert_eq!(&r["agent"]["session_id"], sessions[0]);
    ws.stop();
}

#[test]
fn a_fix_loop_gives_up_after_its_rounds_and_strict_fails_the_task() {
    let mut ws = ws_with_steps(
        "write a.txt 1\n---\nwrite a.txt 2\n---\nwrite a.txt 3\n---\nwrite a.txt 4\n",
    );
    ws.start();
    ws.drop_task(
        "stuck.task.md",
        &task(
            "stuck",
            "fix_rounds: 2\nstrict: true\n",
            &["Says right: `grep -q right a.txt`"],
        ),
    );
    let r = ws.wait_result("stuck");
    assert_eq!(r["status"], "failed", "{r:#}");
    assert_eq!(r["error"]["kind"], "checks_failed", "{r:#}");
    assert_eq!(rounds(&r), 2, "{r:#}");
    assert_eq!(prompts(&ws).len(), 3, "the first run and two rounds");
    assert_eq!(ws.events_named("fix_round").len(), 2);
    assert_eq!(
        std::fs::read_to_string(ws.path().join("work/a.txt")).unwrap(),
        "3\n"
    );
    ws.stop();
}

#[test]
fn a_round_that_changes_nothing_ends_the_loop_and_without_rounds_there_is_none() {
    let mut ws = ws_with_steps("write a.txt 1\n---\nsay I fixed it.\n");
    ws.start();
    ws.drop_task(
        "same.task.md",
        &task(
            "same",
            "fix_rounds: 5\n",
            &["Says right: `grep -q right a.txt`"],
        ),
    );
    let r = ws.wait_result("same");
    // Not strict: the status stands, the unmet check is shown.
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(rounds(&r), 1, "{r:#}");
    assert_eq!(r["success_criteria"][0]["verdict"], "unmet");
    let ev = ws.events_named("fix_round");
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["changed"], false);
    assert_eq!(prompts(&ws).len(), 2);

    // fix_rounds 0 (the default): no round, `rounds` null.
    ws.drop_task(
        "none.task.md",
        &task("none", "", &["Says right: `grep -q right a.txt`"]),
    );
    let r = ws.wait_result("none");
    assert!(rounds(&r).is_null(), "{r:#}");
    assert_eq!(ws.events_named("fix_round").len(), 1);
    ws.stop();
}

#[test]
fn a_cancel_during_the_checks_kills_them_and_cancels_the_task() {
    let mut ws = ws_with_steps("write a.txt 1\n");
    ws.start();
    ws.drop_task(
        "slow.task.md",
        &task(
            "slow",
            "fix_rounds: 2\n",
            &[
                "Hangs: `sh -c 'echo $$ > check.pid; exec sleep 600'`",
                "Never runs: `touch never.txt`",
            ],
        ),
    );
    let pid_file = ws.path().join("work/check.pid");
    ws.wait_for(
        || {
            std::fs::read_to_string(&pid_file)
                .map(|s| s.ends_with('\n'))
                .unwrap_or(false)
        },
        "the check to start",
    );
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let out = ws.run(&["cancel", "slow"]);
    assert!(out.status.success(), "{out:?}");
    let r = ws.wait_result("slow");
    assert_eq!(r["status"], "cancelled", "{r:#}");
    assert!(!alive(pid), "the check {pid} still runs");
    assert!(!ws.path().join("work/never.txt").exists());
    assert!(rounds(&r).is_null(), "{r:#}");
    ws.stop();
}

#[test]
fn claims_are_checked_against_the_tool_events_and_unbacked_ones_lead_the_summary() {
    let mut ws = ws_with_steps(
        "run echo cargo test\nwrite a.txt x\nsay I created a.txt and b.txt. All tests pass. I ran `make lint`.\n---\nwrite c.txt y\nrun echo cargo test\nsay I updated c.txt. All tests pass.\n",
    );
    ws.start();
    ws.drop_task("claims.task.md", &task("claims", "", &[]));
    let r = ws.wait_result("claims");
    assert_eq!(r["verification"]["method"], "events", "{r:#}");
    let claims: Vec<(String, String)> = r["verification"]["claims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["status"].as_str().unwrap().to_owned(),
                c["evidence"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = [
        ("backed", "a.txt: written by the agent"),
        (
            "unbacked",
            "b.txt: no write to it in the tool events and no change of it in the working folder",
        ),
        ("unbacked", "the tests ran only before the last edit"),
        ("unbacked", "no command like `make lint` in the tool events"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(claims, want, "{r:#}");
    let text = r["summary"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("Unbacked claims: \"I created a.txt and b.txt.\""),
        "{text}"
    );
    ws.wait_archived("claims");
    let summary = std::fs::read_to_string(ws.path().join("summaries/claims_summary.txt")).unwrap();
    let at = summary.find("UNBACKED CLAIMS:").expect(&summary);
    assert!(at < summary.find("Status:").unwrap(), "{summary}");

    // A test run after the last edit backs "All tests pass".
    ws.drop_task("backed.task.md", &task("backed", "", &[]));
    let r = ws.wait_result("backed");
    let claims = r["verification"]["claims"].as_array().unwrap();
    assert_eq!(claims.len(), 2, "{r:#}");
    assert!(claims.iter().all(|c| c["status"] == "backed"), "{r:#}");
    assert_eq!(
        claims[1]["evidence"],
        "`echo cargo test` ran after the last edit and passed"
    );
    ws.stop();
}

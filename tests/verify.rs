//! Verification after the agent, through the real `orca` daemon and the fake agent: the
//! task's checks (pass, fail, hang, loud, missing), strict mode, and the git facts of real
//! repositories in temporary folders.

mod common;

use std::path::Path;
use std::process::Command;

use common::{alive, Ws};
use serde_json::Value;

/// `git ARGS` in `dir`, which must succeed; its trimmed stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A repository at `dir` with one commit of README.md on branch `main`; its HEAD.
fn repo(dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("README.md"), "first\n").unwrap();
    git(dir, &["add", "README.md"]);
    git(dir, &["commit", "-q", "-m", "first"]);
    git(dir, &["rev-parse", "HEAD"])
}

/// A task run in `dir` by the fake agent in `mode`, with these front-matter lines and
/// criteria lines.
fn task(id: &str, dir: &str, mode: &str, front: &str, criteria: &[&str]) -> String {
    let mut s = format!("---\nid: {id}\nworking_dir: {dir}\n{front}---\n\n# Task {id}\n\n**Prompt:**\nDo it.\nfake-agent: {mode}\n\n**Success Criteria:**\n");
    for c in criteria {
        s.push_str("- [ ] ");
        s.push_str(c);
        s.push('\n');
    }
    s
}

fn criterion(r: &Value, i: usize) -> &Value {
    &r["success_criteria"][i]
}

/// The processes whose process group is `pgid`.
fn group_members(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let rest: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        // rest[0] state, rest[1] ppid, rest[2] pgrp
        if rest.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid) && rest[0] != "Z" {
            out.push(pid);
        }
    }
    out
}

#[test]
fn checks_pass_fail_hang_print_a_lot_and_fail_to_start() {
    let mut ws = Ws::new();
    let head = repo(&ws.path().join("repo"));
    ws.set_env(&[("MAX_CONCURRENT_TASKS", "4")]);
    ws.start();
    ws.drop_task(
        "pass.task.md",
        &task(
            "pass",
            "repo",
            "write out.txt hello there",
            "",
            &[
                "The file exists: `test -f out.txt`",
                "It greets: `grep -q hello out.txt`",
                "The code reads well",
            ],
        ),
    );
    ws.drop_task(
        "fail.task.md",
        &task(
            "fail",
            "repo",
            "success",
            "",
            &["Builds: `sh -c 'echo first line; echo the build broke >&2; exit 3'`"],
        ),
    );
    ws.drop_task(
        "hang.task.md",
        &task(
            "hang",
            "repo",
            "success",
            "check_timeout_sec: 1\n",
            &["Finishes: `sh -c 'echo $$ > hang.pid; sleep 600 & exec sleep 600'`"],
        ),
    );
    ws.drop_task(
        "loud.task.md",
        &task("loud", "repo", "success", "", &["Quiet: `seq 1 200000`"]),
    );
    ws.drop_task(
        "missing.task.md",
        &task(
            "missing",
            "repo",
            "success",
            "",
            &["Lints: `orca-no-such-linter --all`"],
        ),
    );

    let pass = ws.wait_result("pass");
    assert_eq!(pass["status"], "succeeded", "{pass:#}");
    for i in 0..2 {
        let c = criterion(&pass, i);
        assert_eq!(c["verdict"], "met", "{c:#}");
        assert_eq!(c["method"], "check", "{c:#}");
        assert_eq!(c["check"]["exit_code"], 0, "{c:#}");
        assert_eq!(c["check"]["timed_out"], false, "{c:#}");
    }
    assert_eq!(criterion(&pass, 0)["check"]["command"], "test -f out.txt");
    // A criterion without a command keeps its rule verdict.
    assert_eq!(criterion(&pass, 2)["method"], "none");
    assert_eq!(criterion(&pass, 2)["verdict"], "unknown");
    assert!(criterion(&pass, 2)["check"].is_null());
    // In a repository: the git facts, with HEAD from before the attempt.
    let g = &pass["git"];
    let top = std::fs::canonicalize(ws.path().join("repo")).unwrap();
    assert_eq!(g["repo"], top.display().to_string(), "{g:#}");
    assert_eq!(g["base_commit"], head.as_str(), "{g:#}");
    assert_eq!(g["branch"], "main", "{g:#}");
    assert!(g["worktree"].is_null() && g["commit"].is_null(), "{g:#}");

    let fail = ws.wait_result("fail");
    // Not strict: the agent's success stands, the unmet check is in the result...
    assert_eq!(fail["status"], "succeeded", "{fail:#}");
    let c = criterion(&fail, 0);
    assert_eq!(c["verdict"], "unmet", "{c:#}");
    assert_eq!(c["method"], "check");
    assert_eq!(c["check"]["exit_code"], 3, "{c:#}");
    assert_eq!(c["reason"], "exit code 3");
    let tail = c["check"]["output_tail"].as_str().unwrap();
    assert!(
        tail.contains("first line") && tail.contains("the build broke"),
        "{tail}"
    );
    // ... and first in the summary text and the summary file.
    let text = fail["summary"]["text"].as_str().unwrap();
    assert!(
        text.starts_with("Unmet checks: `sh -c 'echo first line; echo the build broke >&2; exit 3'` (exit code 3)"),
        "{text}"
    );
    ws.wait_archived("fail");
    let summary = std::fs::read_to_string(ws.path().join("summaries/fail_summary.txt")).unwrap();
    let unmet_at = summary.find("UNMET CHECKS:").expect(&summary);
    assert!(unmet_at < summary.find("Status:").unwrap(), "{summary}");
    assert!(summary.contains("(exit code 3)"), "{summary}");
    assert!(
        summary.contains("last output: the build broke"),
        "{summary}"
    );

    let hang = ws.wait_result("hang");
    let c = criterion(&hang, 0);
    assert_eq!(c["verdict"], "unmet", "{c:#}");
    assert_eq!(c["check"]["timed_out"], true, "{c:#}");
    assert!(c["check"]["exit_code"].is_null(), "{c:#}");
    assert_eq!(c["reason"], "timed out after 1 s");
    let pid: i32 = std::fs::read_to_string(ws.path().join("repo/hang.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The check and the child it left in its group are gone.
    assert!(!alive(pid), "the check {pid} still runs");
    assert_eq!(
        group_members(pid),
        Vec::<i32>::new(),
        "its process group still runs"
    );

    let loud = ws.wait_result("loud");
    let c = criterion(&loud, 0);
    assert_eq!(c["verdict"], "met", "{c:#}");
    let tail = c["check"]["output_tail"].as_str().unwrap();
    assert!(tail.len() <= 4096, "{}", tail.len());
    assert!(tail.len() > 3000, "{}", tail.len());
    assert!(tail.ends_with("199999\n200000\n"), "{tail}");

    let missing = ws.wait_result("missing");
    let c = criterion(&missing, 0);
    assert_eq!(c["verdict"], "unmet", "{c:#}");
    assert!(c["check"]["exit_code"].is_null(), "{c:#}");
    let reason = c["reason"].as_str().unwrap();
    assert!(
        reason.contains("'orca-no-such-linter' was not found"),
        "{reason}"
    );

    // One `check_finished` per check, with its verdict.
    for id in ["pass", "fail", "hang", "loud", "missing"] {
        ws.wait_archived(id);
    }
    let finished = ws.events_named("check_finished");
    let of = |id: &str| -> Vec<&Value> { finished.iter().filter(|e| e["task_id"] == id).collect() };
    assert_eq!(of("pass").len(), 2);
    assert!(of("pass")
        .iter()
        .all(|e| e["verdict"] == "met" && e["exit_code"] == 0));
    assert_eq!(of("fail")[0]["exit_code"], 3);
    assert_eq!(of("fail")[0]["verdict"], "unmet");
    assert_eq!(of("hang")[0]["timed_out"], true);
    assert_eq!(of("missing").len(), 1);
    assert!(of("pass")[0]["command"] == "test -f out.txt");
    assert!(of("pass")[0]["duration_ms"].is_u64());
    ws.stop();
}

#[test]
fn strict_fails_a_success_with_an_unmet_check_and_git_is_null_outside_a_repository() {
    let mut ws = Ws::new();
    let head = repo(&ws.path().join("repo"));
    std::fs::create_dir_all(ws.path().join("plain")).unwrap();
    ws.set_env(&[("MAX_CONCURRENT_TASKS", "3")]);
    ws.start();
    ws.drop_task(
        "strict.task.md",
        &task(
            "strict",
            "repo",
            "write README.md changed by the agent",
            "strict: true\n",
            &[
                "The notes exist: `test -f NOTES.md`",
                "The readme exists: `test -f README.md`",
            ],
        ),
    );
    ws.drop_task(
        "plain.task.md",
        &task("plain", "plain", "success", "", &["Runs: `true`"]),
    );
    // An agent cut off by its time limit is not checked.
    ws.drop_task(
        "cut.task.md",
        &task(
            "cut",
            "plain",
            "hang",
            "timeout_sec: 1\nretries: 0\n",
            &["Runs: `true`"],
        ),
    );

    let r = ws.wait_result("strict");
    assert_eq!(r["status"], "failed", "{r:#}");
    assert_eq!(r["error"]["kind"], "checks_failed", "{r:#}");
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(msg.contains("`test -f NOTES.md` (exit code 1)"), "{msg}");
    assert!(
        !msg.contains("README"),
        "only the unmet check is named: {msg}"
    );
    assert_eq!(criterion(&r, 0)["verdict"], "unmet");
    assert_eq!(criterion(&r, 1)["verdict"], "met");
    // The diff since the base commit: the agent's change of README.md.
    assert_eq!(r["git"]["base_commit"], head.as_str(), "{r:#}");
    let stat = r["git"]["diffstat"].as_str().unwrap();
    assert!(
        stat.contains("README.md") && stat.contains("1 file changed"),
        "{stat}"
    );
    ws.wait_archived("strict");
    let rec = ws.run(&["show", "strict", "--json"]);
    // The store says so too (not only the result file).
    let shown: Value = serde_json::from_slice(&rec.stdout).unwrap();
    assert_eq!(shown["state"], "failed", "{shown:#}");

    let plain = ws.wait_result("plain");
    assert_eq!(plain["status"], "succeeded", "{plain:#}");
    assert_eq!(criterion(&plain, 0)["verdict"], "met");
    assert!(plain["git"].is_null(), "{plain:#}");

    let cut = ws.wait_result("cut");
    assert_eq!(cut["status"], "timed_out", "{cut:#}");
    assert_eq!(criterion(&cut, 0)["method"], "none", "{cut:#}");
    assert!(criterion(&cut, 0)["check"].is_null());
    ws.wait_archived("cut");
    assert!(ws
        .events_named("check_finished")
        .iter()
        .all(|e| e["task_id"] != "cut"));
    ws.stop();
}

#[test]
fn orca_strict_criteria_makes_every_task_strict_unless_it_says_otherwise() {
    let mut ws = Ws::new();
    std::fs::create_dir_all(ws.path().join("plain")).unwrap();
    ws.set_env(&[
        ("ORCA_STRICT_CRITERIA", "true"),
        ("MAX_CONCURRENT_TASKS", "2"),
    ]);
    ws.start();
    ws.drop_task(
        "env.task.md",
        &task("env", "plain", "success", "", &["Fails: `false`"]),
    );
    ws.drop_task(
        "lenient.task.md",
        &task(
            "lenient",
            "plain",
            "success",
            "strict: false\n",
            &["Fails: `false`"],
        ),
    );
    let r = ws.wait_result("env");
    assert_eq!(r["status"], "failed", "{r:#}");
    assert_eq!(r["error"]["kind"], "checks_failed");
    assert!(r["error"]["message"].as_str().unwrap().contains("`false`"));
    let r = ws.wait_result("lenient");
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(criterion(&r, 0)["verdict"], "unmet");
    ws.stop();
}

#[test]
fn fix_rounds_must_be_a_whole_number() {
    let ws = Ws::new();
    let p = ws.write_task(
        "fr.task.md",
        b"---\nfix_rounds: many\n---\n\n**Prompt:**\nDo it.\n",
    );
    let out = ws.run(&["check", &p.display().to_string()]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("fr.task.md:2: fix_rounds 'many'"), "{text}");
}

#[test]
fn a_child_a_check_detaches_into_its_own_session_is_killed_with_it() {
    let mut ws = Ws::new();
    std::fs::create_dir_all(ws.path().join("plain")).unwrap();
    ws.start();
    // The detached `sleep` keeps the output pipe open and leaves the check's process group.
    ws.drop_task(
        "detach.task.md",
        &task(
            "detach",
            "plain",
            "success",
            "",
            &["Detaches: `sh -c 'setsid sleep 600 & echo $! > det.pid; sleep 1; echo done'`"],
        ),
    );
    let r = ws.wait_result("detach");
    let c = criterion(&r, 0);
    assert_eq!(c["verdict"], "met", "{c:#}");
    assert!(
        c["check"]["output_tail"].as_str().unwrap().contains("done"),
        "{c:#}"
    );
    let pid: i32 = std::fs::read_to_string(ws.path().join("plain/det.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    ws.wait_for(
        || !alive(pid),
        "the detached child of the check to be killed",
    );
    ws.stop();
}

/// Everything about a checkout a worktree run must leave alone.
fn checkout_state(dir: &Path) -> Vec<String> {
    let mut v = vec![
        git(dir, &["status", "--porcelain", "--untracked-files=all"]),
        git(dir, &["diff"]),
        git(dir, &["diff", "--cached"]),
        git(dir, &["rev-parse", "HEAD"]),
        git(dir, &["symbolic-ref", "HEAD"]),
    ];
    for f in ["README.md", "staged.txt", "notes.txt"] {
        v.push(std::fs::read_to_string(dir.join(f)).unwrap_or_default());
    }
    v
}

#[test]
fn a_worktree_run_commits_on_its_branch_and_leaves_a_dirty_checkout_as_it_was() {
    let mut ws = Ws::new();
    let repo_dir = ws.path().join("repo");
    let head = repo(&repo_dir);
    // The user's uncommitted work: a change, a staged file, an untracked file.
    std::fs::write(repo_dir.join("README.md"), "first\nmine, not committed\n").unwrap();
    std::fs::write(repo_dir.join("staged.txt"), "staged\n").unwrap();
    git(&repo_dir, &["add", "staged.txt"]);
    std::fs::write(repo_dir.join("notes.txt"), "untracked\n").unwrap();
    let before = checkout_state(&repo_dir);
    ws.start();
    ws.drop_task(
        "wt.task.md",
        &task(
            "wt",
            "repo",
            "write out.txt hello",
            "worktree: true\nstrict: true\n",
            &[
                "It is there: `test -f out.txt`",
                "Clean start: `test ! -e notes.txt`",
            ],
        ),
    );
    let r = ws.wait_result("wt");
    assert_eq!(r["status"], "succeeded", "{r:#}");
    let g = &r["git"];
    let top = std::fs::canonicalize(&repo_dir).unwrap();
    assert_eq!(g["repo"], top.display().to_string(), "{g:#}");
    assert_eq!(g["base_commit"], head.as_str(), "{g:#}");
    assert_eq!(g["branch"], "orca/wt", "{g:#}");
    let wt = std::path::PathBuf::from(g["worktree"].as_str().unwrap());
    assert!(
        wt.starts_with(ws.path().join(".orca/worktrees")) || wt.ends_with(".orca/worktrees/wt"),
        "{g:#}"
    );
    assert!(wt.join("out.txt").is_file());
    let commit = git(&repo_dir, &["rev-parse", "orca/wt"]);
    assert_eq!(g["commit"], commit.as_str(), "{g:#}");
    assert!(g["diffstat"].as_str().unwrap().contains("out.txt"), "{g:#}");
    assert_eq!(
        git(&repo_dir, &["log", "-1", "--format=%an|%s|%P", "orca/wt"]),
        format!("Orca|Task wt|{head}")
    );
    assert_eq!(
        git(&repo_dir, &["show", "--name-only", "--format=", "orca/wt"]),
        "out.txt"
    );
    assert_eq!(r["changed_files"], serde_json::json!(["out.txt"]), "{r:#}");
    // The user's checkout, index and uncommitted work are exactly as they were.
    assert_eq!(checkout_state(&repo_dir), before);
    assert!(!repo_dir.join("out.txt").exists());
    let ev = ws.events_named("worktree_created");
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["branch"], "orca/wt");
    assert_eq!(ev[0]["created"], true);

    // `orca clean worktrees` removes the finished task's worktree; the branch stays.
    ws.wait_archived("wt");
    let out = ws.run(&["clean", "worktrees", "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("would remove") && text.contains("worktrees/wt"),
        "{text}"
    );
    assert!(wt.is_dir());
    let out = ws.run(&["clean", "worktrees"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("removed 1 worktree(s)"), "{text}");
    assert!(!wt.exists());
    assert_eq!(git(&repo_dir, &["rev-parse", "orca/wt"]), commit);
    assert!(!git(&repo_dir, &["worktree", "list"]).contains("worktrees/wt"));
    assert_eq!(checkout_state(&repo_dir), before);
    ws.stop();
}

#[test]
fn worktree_true_outside_a_repository_is_rejected_at_intake() {
    let mut ws = Ws::new();
    std::fs::create_dir_all(ws.path().join("plain")).unwrap();
    // `orca check` says so too.
    let f = ws.path().join("c.task.md");
    std::fs::write(&f, task("c", "plain", "success", "worktree: true\n", &[])).unwrap();
    let out = ws.run(&["check", &f.display().to_string()]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("c.task.md:4: worktree: true, but the working folder"),
        "{text}"
    );
    ws.start();
    ws.drop_task(
        "norepo.task.md",
        &task("norepo", "plain", "success", "worktree: true\n", &[]),
    );
    let r = ws.wait_result("norepo");
    assert_eq!(r["status"], "rejected", "{r:#}");
    assert_eq!(r["error"]["kind"], "worktree", "{r:#}");
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(msg.contains("is not in a git repository"), "{msg}");
    assert_eq!(r["error"]["line"], 4, "{r:#}");
    assert!(r["error"]["hint"].as_str().unwrap().contains("git init"));
    ws.wait_for(
        || ws.path().join("tasks/rejected/norepo.task.md").is_file(),
        "the task file in tasks/rejected/",
    );
    assert!(ws.agent_starts().is_empty(), "no agent ran");
    ws.stop();
}

//! Stopping `orca run`: the first Ctrl-C drains (running agents may finish within the
//! grace period) and says a second one stops at once; the second stops the agents now and
//! leaves their tasks queued for the next start.

use std::time::{Duration, Instant};

mod common;

use common::{task, Ws};

#[test]
fn a_second_ctrl_c_stops_at_once_and_the_task_stays_queued() {
    let mut ws = Ws::new();
    // A long grace period: only the second Ctrl-C can end the wait early.
    ws.set_env(&[("ORCA_SHUTDOWN_GRACE_SEC", "600")]);
    ws.start();
    ws.drop_task("long.task.md", &task("long", "", "hang"));
    ws.wait_for(
        || ws.events_named("claude_started").len() == 1,
        "the agent started",
    );
    ws.signal(libc::SIGINT);
    ws.wait_for(
        || ws.daemon_output().contains("Ctrl-C again to stop now"),
        "the first Ctrl-C's message",
    );
    // Still draining: the daemon waits for the agent.
    std::thread::sleep(Duration::from_millis(300));
    let child = ws.daemon.as_mut().unwrap();
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first Ctrl-C drains"
    );
    ws.signal(libc::SIGINT);
    let deadline = Instant::now() + common::TIMEOUT;
    let status = loop {
        let child = ws.daemon.as_mut().unwrap();
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "{}", ws.daemon_output());
        std::thread::sleep(Duration::from_millis(25));
    };
    ws.daemon = None;
    assert_eq!(status.code(), Some(0), "{}", ws.daemon_output());
    let out = ws.daemon_output();
    assert!(
        out.contains("stopping now: 1 agent(s) stopped; their tasks stay queued"),
        "{out}"
    );
    let show = ws.run(&["show", "long", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(v["state"], "queued", "{v:#}");
    // Its file is still in tasks/, for the next start.
    assert!(ws.path().join("tasks/long.task.md").exists());
}

//! Integration tests of the durable queue (`orca::store`) and the workspace lock, against
//! real SQLite files in temporary folders, with several connections, threads and processes.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use orca::store::SourceKind;
use orca::store::{
    self, CancelOutcome, Finish, LockError, NewTask, NextClaim, SqliteStore, Store, StoreError,
    TaskState,
};
use orca::task::{Priority, Task};
use orca::workspace::Workspace;
use serde_json::json;

const LEASE: i64 = 30_000;
const T0: i64 = 1_764_066_600_000;

fn task(id: &str, priority: Priority, requires: &[&str]) -> Task {
    Task {
        id: id.to_owned(),
        task_type: None,
        priority,
        created: None,
        working_dir: None,
        timeout_sec: None,
        max_turns: None,
        retries: None,
        model: None,
        resume_on_retry: false,
        requires: requires.iter().map(|s| s.to_string()).collect(),
        strict: None,
        check_timeout_sec: None,
        fix_rounds: None,
        worktree: false,
        extra: BTreeMap::new(),
        title: Some(format!("title of {id}")),
        prompt: format!("do {id}"),
        target_files: vec![],
        success_criteria: vec![],
        context: None,
    }
}

fn new_task(id: &str, priority: Priority) -> NewTask {
    new_task_req(id, priority, &[])
}

fn new_task_req(id: &str, priority: Priority, requires: &[&str]) -> NewTask {
    NewTask {
        desired_id: id.to_owned(),
        stem: id.to_owned(),
        file: format!("tasks/{id}.task.md"),
        source: SourceKind::File,
        source_user: None,
        task: Some(task(id, priority, requires)),
        priority,
        max_retries: 2,
        state: TaskState::Queued,
        error: None,
        received_at_ms: T0,
    }
}

fn open(dir: &Path) -> SqliteStore {
    SqliteStore::open_in_workspace(&Workspace::new(dir)).unwrap()
}

fn finish(state: TaskState, now_ms: i64) -> Finish {
    Finish {
        state,
        outcome: state.to_string(),
        error: None,
        exit_code: Some(0),
        session_id: Some("sess-1".into()),
        now_ms,
    }
}

fn claim(s: &SqliteStore, worker: &str, now: i64) -> Option<String> {
    s.claim(worker, &[], LEASE, now).unwrap().map(|r| r.id)
}

#[test]
fn enqueue_round_trips_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut t = new_task("fix_db", Priority::High);
    t.source = SourceKind::Telegram;
    t.source_user = Some("@ann".into());
    let rec = s.enqueue(t.clone()).unwrap();
    assert_eq!(rec.id, "fix_db");
    assert_eq!(rec.stem, "fix_db");
    assert_eq!(rec.file, "tasks/fix_db.task.md");
    assert_eq!(rec.source, SourceKind::Telegram);
    assert_eq!(rec.source_user.as_deref(), Some("@ann"));
    assert_eq!(rec.state, TaskState::Queued);
    assert_eq!(rec.priority, Priority::High);
    assert_eq!(rec.task, t.task);
    assert_eq!(rec.attempts, 0);
    assert_eq!(rec.max_retries, 2);
    assert_eq!(rec.received_at_ms, T0);
    assert!(!rec.finalized && !rec.artifacts_written && !rec.cancel_requested);
    assert_eq!(s.get("fix_db").unwrap(), Some(rec.clone()));
    assert_eq!(s.get("nope").unwrap(), None);
    assert!(dir.path().join(".orca/orca.db").is_file());
}

#[test]
fn priority_first_then_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    for (id, p) in [
        ("l1", Priority::Low),
        ("m1", Priority::Medium),
        ("h1", Priority::High),
        ("m2", Priority::Medium),
        ("h2", Priority::High),
        ("l2", Priority::Low),
    ] {
        s.enqueue(new_task(id, p)).unwrap();
    }
    let order: Vec<String> = std::iter::from_fn(|| claim(&s, "w", T0)).collect();
    assert_eq!(order, ["h1", "h2", "m1", "m2", "l1", "l2"]);
    let seqs: Vec<i64> = s.list(None).unwrap().iter().map(|r| r.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[test]
fn ids_and_stems_get_suffixes_when_taken() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = s.enqueue(new_task("x", Priority::Medium)).unwrap();
    let b = s.enqueue(new_task("x", Priority::Medium)).unwrap();
    let c = s.enqueue(new_task("x", Priority::Medium)).unwrap();
    assert_eq!(
        [a.id.as_str(), b.id.as_str(), c.id.as_str()],
        ["x", "x-2", "x-3"]
    );
    assert_eq!([a.stem, b.stem, c.stem], ["x", "x-2", "x-3"]);
    assert_eq!(c.desired_id, "x");
    // Id and stem are suffixed independently.
    let mut other = new_task("y", Priority::Medium);
    other.stem = "x".into();
    let d = s.enqueue(other).unwrap();
    assert_eq!((d.id.as_str(), d.stem.as_str()), ("y", "x-4"));
    // Finished (even finalized) records keep their names forever.
    let id = claim(&s, "w", T0).unwrap();
    s.finish(&id, "w", finish(TaskState::Succeeded, T0 + 1))
        .unwrap();
    s.mark_finalized(&id, "tasks/processed/x.task.md").unwrap();
    let e = s.enqueue(new_task("x", Priority::Medium)).unwrap();
    assert_eq!((e.id.as_str(), e.stem.as_str()), ("x-4", "x-5"));
}

#[test]
fn concurrent_claimers_never_get_the_same_task() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        for i in 0..200 {
            s.enqueue(new_task(&format!("t{i:03}"), Priority::Medium))
                .unwrap();
        }
    }
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|w| {
            let root = dir.path().to_path_buf();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let s = open(&root);
                let worker = format!("w{w}");
                barrier.wait();
                let mut got = Vec::new();
                while let Some(rec) = s.claim(&worker, &[], LEASE, T0).unwrap() {
                    assert_eq!(rec.lease_owner.as_deref(), Some(worker.as_str()));
                    s.finish(&rec.id, &worker, finish(TaskState::Succeeded, T0))
                        .unwrap();
                    got.push(rec.id);
                }
                got
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().unwrap());
    }
    assert_eq!(all.len(), 200, "every task claimed exactly once");
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), 200);
    let s = open(dir.path());
    assert_eq!(s.counts().unwrap()["succeeded"], 200);
    for rec in s.list(None).unwrap() {
        assert_eq!(rec.attempts, 1, "{}", rec.id);
        assert_eq!(s.attempts(&rec.id).unwrap().len(), 1);
    }
}

#[test]
fn claim_sets_lease_and_attempt_row() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.enqueue(new_task("a", Priority::Medium)).unwrap();
    let rec = s.claim("node1:w0", &[], LEASE, T0 + 5).unwrap().unwrap();
    assert_eq!(rec.state, TaskState::Running);
    assert_eq!(rec.attempts, 1);
    assert_eq!(rec.lease_owner.as_deref(), Some("node1:w0"));
    assert_eq!(rec.lease_expires_ms, Some(T0 + 5 + LEASE));
    assert_eq!(rec.started_at_ms, Some(T0 + 5));
    let att = s.attempts("a").unwrap();
    assert_eq!(att.len(), 1);
    assert_eq!(att[0].attempt, 1);
    assert_eq!(att[0].worker, "node1:w0");
    assert_eq!(att[0].started_at_ms, T0 + 5);
    assert_eq!(att[0].outcome, None);
    assert!(s.claim("other", &[], LEASE, T0 + 6).unwrap().is_none());
}

#[test]
fn expired_leases_are_requeued() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.enqueue(new_task("a", Priority::Medium)).unwrap();
    s.enqueue(new_task("b", Priority::Medium)).unwrap();
    s.claim("w1", &[], 1_000, T0).unwrap().unwrap();
    s.claim("w2", &[], 5_000, T0).unwrap().unwrap();
    assert_eq!(s.requeue_expired(T0 + 1_000).unwrap(), Vec::<String>::new());
    assert_eq!(s.requeue_expired(T0 + 1_001).unwrap(), ["a"]);
    let a = s.get("a").unwrap().unwrap();
    assert_eq!(a.state, TaskState::Queued);
    assert_eq!((a.lease_owner, a.lease_expires_ms), (None, None));
    let att = s.attempts("a").unwrap();
    assert_eq!(att[0].outcome.as_deref(), Some("interrupted"));
    assert!(att[0].error.as_deref().unwrap().contains("w1"));
    // The old owner lost it: its heartbeat and finish are refused.
    assert!(!s.heartbeat("a", "w1", 1_000, T0 + 1_002).unwrap());
    assert!(matches!(
        s.finish("a", "w1", finish(TaskState::Succeeded, T0 + 1_003)),
        Err(StoreError::LeaseLost { .. })
    ));
    // Another worker runs it again as attempt 2.
    let again = s.claim("w3", &[], LEASE, T0 + 1_004).unwrap().unwrap();
    assert_eq!((again.id.as_str(), again.attempts), ("a", 2));
    assert_eq!(again.started_at_ms, Some(T0), "first start is kept");
    assert_eq!(s.get("b").unwrap().unwrap().state, TaskState::Running);
}

#[test]
fn heartbeat_renews_and_reports_lost_leases() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.enqueue(new_task("a", Priority::Medium)).unwrap();
    s.claim("w1", &[], 1_000, T0).unwrap().unwrap();
    assert!(s.heartbeat("a", "w1", 1_000, T0 + 900).unwrap());
    assert_eq!(
        s.get("a").unwrap().unwrap().lease_expires_ms,
        Some(T0 + 1_900)
    );
    // Renewed: not expired at the old deadline.
    assert!(s.requeue_expired(T0 + 1_500).unwrap().is_empty());
    assert!(!s.heartbeat("a", "intruder", 1_000, T0 + 1_000).unwrap());
    assert!(!s.heartbeat("missing", "w1", 1_000, T0 + 1_000).unwrap());
    s.finish("a", "w1", finish(TaskState::Failed, T0 + 1_600))
        .unwrap();
    assert!(!s.heartbeat("a", "w1", 1_000, T0 + 1_700).unwrap());
}

#[test]
fn progress_and_session_are_recorded_for_the_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.enqueue(new_task("a", Priority::Medium)).unwrap();
    s.claim("w1", &[], LEASE, T0).unwrap().unwrap();
    s.set_progress("a", "w1", &json!({"turns": 3}), Some("sess-9"))
        .unwrap();
    s.set_progress("a", "w2", &json!({"turns": 99}), Some("bad"))
        .unwrap();
    let rec = s.get("a").unwrap().unwrap();
    assert_eq!(rec.progress, Some(json!({"turns": 3})));
    assert_eq!(rec.session_id.as_deref(), Some("sess-9"));
    assert_eq!(
        s.attempts("a").unwrap()[0].session_id.as_deref(),
        Some("sess-9")
    );
    s.mark_resumed("a", 1).unwrap();
    assert!(s.attempts("a").unwrap()[0].resumed);
    assert!(matches!(
        s.mark_resumed("a", 7),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn finish_closes_the_attempt_and_clears_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.enqueue(new_task("a", Priority::Medium)).unwrap();
    s.claim("w1", &[], LEASE, T0).unwrap().unwrap();
    let bad = Finish {
        state: TaskState::Queued,
        ..finish(TaskState::Succeeded, T0)
    };
    assert!(matches!(
        s.finish("a", "w1", bad),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.finish("zz", "w1", finish(TaskState::Succeeded, T0)),
        Err(StoreError::NotFound(_))
    ));
    let f = Finish {
        state: TaskState::TimedOut,
        outcome: "timed_out".into(),
        error: Some(json!({"kind": "timeout", "message": "ran over 60 s"})),
        exit_code: Some(143),
        session_id: Some("s-1".into()),
        now_ms: T0 + 60_000,
    };
    s.finish("a", "w1", f).unwrap();
    let rec = s.get("a").unwrap().unwrap();
    assert_eq!(rec.state, TaskState::TimedOut);
    assert_eq!(rec.finished_at_ms, Some(T0 + 60_000));
    assert_eq!(
        rec.error,
        Some(json!({"kind": "timeout", "message": "ran over 60 s"}))
    );
    assert_eq!((rec.lease_owner, rec.lease_expires_ms), (None, None));
    assert_eq!(rec.session_id.as_deref(), Some("s-1"));
    let att = &s.attempts("a").unwrap()[0];
    assert_eq!(att.outcome.as_deref(), Some("timed_out"));
    assert_eq!(att.error.as_deref(), Some("ran over 60 s"));
    assert_eq!(att.exit_code, Some(143));
    assert_eq!(att.finished_at_ms, Some(T0 + 60_000));
    // A second finish is refused, and so is one of a task that does not exist.
    assert!(matches!(
        s.finish("a", "w1", finish(TaskState::Succeeded, T0)),
        Err(StoreError::LeaseLost { .. })
    ));
    assert!(matches!(
        s.finish("ghost", "w1", finish(TaskState::Succeeded, T0)),
        Err(StoreError::NotFound(id)) if id == "ghost"
    ));
}

#[test]
fn requeue_backs_off_and_release_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.enqueue(new_task("a", Priority::High)).unwrap();
    s.enqueue(new_task("b", Priority::Low)).unwrap();
    let now = orca::clock::now_ms();
    s.claim("w", &[], LEASE, now).unwrap().unwrap();
    s.requeue(
        "a",
        "w",
        now + 60_000,
        "rate limited",
        Some(1),
        Some("sess-r"),
    )
    .unwrap();
    let a = s.get("a").unwrap().unwrap();
    assert_eq!(a.state, TaskState::Queued);
    assert_eq!(a.not_before_ms, Some(now + 60_000));
    assert!(a.may_retry(), "attempt 1 of max_retries 2");
    assert_eq!(s.next_not_before().unwrap(), Some(now + 60_000));
    let att = &s.attempts("a").unwrap()[0];
    assert_eq!(att.outcome.as_deref(), Some("retry"));
    assert_eq!(att.error.as_deref(), Some("rate limited"));
    assert_eq!(att.exit_code, Some(1));
    assert_eq!(
        att.session_id.as_deref(),
        Some("sess-r"),
        "kept for resuming"
    );
    // High-priority `a` waits for its backoff; low `b` runs meanwhile.
    assert_eq!(claim(&s, "w", now + 1).as_deref(), Some("b"));
    s.release("b", "w", "shutting down").unwrap();
    let b = s.get("b").unwrap().unwrap();
    assert_eq!((b.state, b.not_before_ms), (TaskState::Queued, None));
    assert_eq!(
        s.attempts("b").unwrap()[0].outcome.as_deref(),
        Some("interrupted")
    );
    assert_eq!(claim(&s, "w", now + 2).as_deref(), Some("b"));
    assert_eq!(claim(&s, "w", now + 60_000).as_deref(), Some("a"));
    assert_eq!(s.get("a").unwrap().unwrap().attempts, 2);
    assert_eq!(s.next_not_before().unwrap(), None);
    assert!(matches!(
        s.release("a", "someone-else", "x"),
        Err(StoreError::LeaseLost { .. })
    ));
}

#[test]
fn cancel_queued_running_finished_and_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.enqueue(new_task("run", Priority::High)).unwrap();
    s.enqueue(new_task("wait", Priority::Low)).unwrap();
    s.enqueue(new_task("done", Priority::Low)).unwrap();
    assert_eq!(claim(&s, "w", T0).as_deref(), Some("run"));

    assert_eq!(
        s.request_cancel("wait", T0 + 1).unwrap(),
        CancelOutcome::Cancelled
    );
    let wait = s.get("wait").unwrap().unwrap();
    assert_eq!(wait.state, TaskState::Cancelled);
    assert_eq!(wait.finished_at_ms, Some(T0 + 1));
    assert!(s.pending_finalize().unwrap().iter().any(|r| r.id == "wait"));

    assert!(!s.is_cancel_requested("run").unwrap());
    assert_eq!(
        s.request_cancel("run", T0 + 2).unwrap(),
        CancelOutcome::Requested
    );
    assert!(s.is_cancel_requested("run").unwrap());
    assert_eq!(s.get("run").unwrap().unwrap().state, TaskState::Running);
    s.finish("run", "w", finish(TaskState::Cancelled, T0 + 3))
        .unwrap();

    assert_eq!(claim(&s, "w", T0).as_deref(), Some("done"));
    s.finish("done", "w", finish(TaskState::Succeeded, T0 + 4))
        .unwrap();
    assert_eq!(
        s.request_cancel("done", T0 + 5).unwrap(),
        CancelOutcome::AlreadyFinished(TaskState::Succeeded)
    );
    assert_eq!(
        s.request_cancel("wait", T0 + 5).unwrap(),
        CancelOutcome::AlreadyFinished(TaskState::Cancelled)
    );
    assert_eq!(
        s.request_cancel("ghost", T0).unwrap(),
        CancelOutcome::NotFound
    );
    assert!(matches!(
        s.is_cancel_requested("ghost"),
        Err(StoreError::NotFound(id)) if id == "ghost"
    ));
    // A queued task that was cancelled never starts.
    assert_eq!(claim(&s, "w", T0 + 10), None);
}

#[test]
fn a_cancelled_running_task_that_is_released_ends_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.enqueue(new_task("a", Priority::Medium)).unwrap();
    claim(&s, "w", T0).unwrap();
    s.request_cancel("a", T0 + 1).unwrap();
    s.release("a", "w", "shutting down").unwrap();
    let a = s.get("a").unwrap().unwrap();
    assert_eq!(a.state, TaskState::Cancelled);
    assert!(a.finished_at_ms.is_some());
    assert_eq!(claim(&s, "w", T0 + 2), None);
}

#[test]
fn retry_of_a_finished_task_renews_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.enqueue(new_task("a", Priority::Medium)).unwrap();
    // Three attempts: two retries, then final failure (budget max_retries = 2).
    for n in 1..=3u32 {
        let rec = s.claim("w", &[], LEASE, T0).unwrap().unwrap();
        assert_eq!(rec.attempts, n);
        if rec.may_retry() {
            s.requeue("a", "w", T0, "transient", None, None).unwrap();
        } else {
            assert_eq!(n, 3);
            s.finish("a", "w", finish(TaskState::Failed, T0 + 1))
                .unwrap();
        }
    }
    s.mark_finalized("a", "tasks/processed/a.task.md").unwrap();

    let rec = s.retry("a", T0 + 10).unwrap();
    assert_eq!(rec.state, TaskState::Queued);
    assert!(!rec.finalized && !rec.artifacts_written && !rec.cancel_requested);
    assert_eq!(
        (rec.result, rec.error, rec.finished_at_ms),
        (None, None, None)
    );
    assert_eq!(rec.attempts, 3);
    assert_eq!(rec.max_retries, 5, "attempts 4..=6 may run");
    assert_eq!(
        rec.archived_to.as_deref(),
        Some("tasks/processed/a.task.md")
    );
    assert_eq!(
        s.find_open_by_file("tasks/a.task.md").unwrap().unwrap().id,
        "a"
    );
    let again = s.claim("w", &[], LEASE, T0 + 11).unwrap().unwrap();
    assert_eq!(again.attempts, 4, "numbering goes on");
    assert!(again.may_retry());
    let numbers: Vec<u32> = s.attempts("a").unwrap().iter().map(|a| a.attempt).collect();
    assert_eq!(numbers, [1, 2, 3, 4]);

    assert!(matches!(
        s.retry("a", T0),
        Err(StoreError::NotFinished {
            state: TaskState::Running,
            ..
        })
    ));
    assert!(matches!(s.retry("ghost", T0), Err(StoreError::NotFound(_))));
}

fn rejected(id: &str) -> NewTask {
    NewTask {
        task: None,
        state: TaskState::Rejected,
        error: Some(json!({"kind": "invalid", "message": "bad front matter"})),
        ..new_task(id, Priority::Medium)
    }
}

#[test]
fn rejected_records_wait_for_finalize_and_cannot_be_retried() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let rec = s.enqueue(rejected("broken")).unwrap();
    assert_eq!(rec.state, TaskState::Rejected);
    assert_eq!(rec.task, None);
    assert_eq!(rec.finished_at_ms, Some(T0));
    assert_eq!(rec.error.as_ref().unwrap()["kind"], "invalid");
    assert_eq!(claim(&s, "w", T0), None, "rejected records never run");
    let pending: Vec<String> = s
        .pending_finalize()
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(pending, ["broken"]);
    assert!(matches!(
        s.retry("broken", T0),
        Err(StoreError::NotRetryable { .. })
    ));
    // A queued task without a parsed task, or a new task in another state, is refused.
    let mut no_task = new_task("q", Priority::Medium);
    no_task.task = None;
    assert!(matches!(s.enqueue(no_task), Err(StoreError::Invalid(_))));
    let mut running = new_task("r", Priority::Medium);
    running.state = TaskState::Running;
    assert!(matches!(s.enqueue(running), Err(StoreError::Invalid(_))));
}

#[test]
fn finalize_flow() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.enqueue(new_task("a", Priority::Medium)).unwrap();
    s.enqueue(new_task("b", Priority::Medium)).unwrap();
    let open_a = s.find_open_by_file("tasks/a.task.md").unwrap().unwrap();
    assert_eq!(open_a.id, "a");
    assert!(
        s.pending_finalize().unwrap().is_empty(),
        "queued is not final"
    );
    claim(&s, "w", T0).unwrap();
    s.finish("a", "w", finish(TaskState::Succeeded, T0 + 1))
        .unwrap();
    let pending = s.pending_finalize().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, "a");

    s.mark_finalized("a", "tasks/processed/a.task.md").unwrap();
    let a = s.get("a").unwrap().unwrap();
    assert!(a.finalized && a.artifacts_written);
    assert_eq!(a.archived_to.as_deref(), Some("tasks/processed/a.task.md"));
    assert!(s.pending_finalize().unwrap().is_empty());
    assert_eq!(s.find_open_by_file("tasks/a.task.md").unwrap(), None);
    assert_eq!(
        s.find_open_by_file("tasks/b.task.md").unwrap().unwrap().id,
        "b"
    );

    // The same file dropped again is a new record, once the first is finalized.
    let second = s.enqueue(new_task("a", Priority::Medium)).unwrap();
    assert_eq!(
        s.find_open_by_file("tasks/a.task.md").unwrap().unwrap().id,
        second.id
    );
}

#[test]
fn recover_after_a_simulated_crash() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        s.enqueue(new_task("a", Priority::Medium)).unwrap();
        s.enqueue(new_task("b", Priority::Medium)).unwrap();
        s.enqueue(new_task("c", Priority::Medium)).unwrap();
        s.claim("host-1:111:w0", &[], LEASE, T0).unwrap().unwrap();
        s.claim("host-1:111:w1", &[], LEASE, T0).unwrap().unwrap();
        s.claim("host-2:222:w0", &[], LEASE, T0).unwrap().unwrap();
        // Dropped without finish: the process "crashed".
    }
    let s = open(dir.path());
    assert_eq!(s.counts().unwrap()["running"], 3);
    assert_eq!(s.recover_worker(Some("host-1:111:")).unwrap(), ["a", "b"]);
    for id in ["a", "b"] {
        let rec = s.get(id).unwrap().unwrap();
        assert_eq!(rec.state, TaskState::Queued);
        assert_eq!(rec.lease_owner, None);
        let att = s.attempts(id).unwrap();
        assert_eq!(att.len(), 1);
        assert_eq!(att[0].outcome.as_deref(), Some("interrupted"));
        assert!(att[0].finished_at_ms.is_some());
    }
    assert_eq!(s.get("c").unwrap().unwrap().state, TaskState::Running);
    assert_eq!(s.recover_worker(None).unwrap(), ["c"]);
    assert!(s.recover_worker(None).unwrap().is_empty());
    assert_eq!(s.counts().unwrap()["queued"], 3);
}

#[test]
fn requires_must_be_a_subset_of_the_worker_labels() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.enqueue(new_task_req("gpu_job", Priority::High, &["gpu"]))
        .unwrap();
    s.enqueue(new_task_req("gpu_linux", Priority::High, &["gpu", "linux"]))
        .unwrap();
    s.enqueue(new_task("any", Priority::Low)).unwrap();
    let labels = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let take = |l: &[&str]| s.claim("w", &labels(l), LEASE, T0).unwrap().map(|r| r.id);
    assert_eq!(take(&[]).as_deref(), Some("any"));
    assert_eq!(take(&["linux"]), None);
    assert_eq!(take(&["gpu"]).as_deref(), Some("gpu_job"));
    assert_eq!(take(&["gpu"]), None, "gpu_linux also needs linux");
    assert_eq!(take(&["linux", "gpu", "big"]).as_deref(), Some("gpu_linux"));
}

#[test]
fn data_version_changes_after_another_connection_writes() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = open(dir.path());
    let cli = open(dir.path());
    let v0 = daemon.data_version().unwrap();
    assert_eq!(daemon.data_version().unwrap(), v0, "stable without writes");
    cli.enqueue(new_task("a", Priority::Medium)).unwrap();
    let v1 = daemon.data_version().unwrap();
    assert_ne!(v1, v0);
    // Our own writes do not count: only other connections'.
    daemon.enqueue(new_task("b", Priority::Medium)).unwrap();
    assert_eq!(daemon.data_version().unwrap(), v1);
    cli.request_cancel("b", T0).unwrap();
    assert_ne!(daemon.data_version().unwrap(), v1);
}

#[test]
fn counts_has_every_state() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let c = s.counts().unwrap();
    let keys: Vec<&str> = c.keys().map(String::as_str).collect();
    let mut want: Vec<&str> = TaskState::ALL.iter().map(|s| s.as_str()).collect();
    want.sort();
    assert_eq!(keys, want);
    assert!(c.values().all(|&n| n == 0));
    s.enqueue(new_task("a", Priority::Medium)).unwrap();
    s.enqueue(new_task("b", Priority::Medium)).unwrap();
    s.enqueue(rejected("c")).unwrap();
    claim(&s, "w", T0).unwrap();
    let c = s.counts().unwrap();
    assert_eq!(
        (c["queued"], c["running"], c["rejected"], c["succeeded"]),
        (1, 1, 1, 0)
    );
    assert_eq!(s.list(Some(TaskState::Queued)).unwrap()[0].id, "b");
    assert_eq!(s.list(None).unwrap().len(), 3);
}

#[test]
fn a_database_from_a_newer_orca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("orca.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA user_version = 42").unwrap();
    }
    let err = SqliteStore::open(&db).unwrap_err();
    match &err {
        StoreError::NewerSchema {
            found,
            supported,
            db: at,
        } => {
            assert_eq!(*found, 42);
            assert!(*supported < 42);
            assert_eq!(at, &db.display().to_string());
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("schema version 42"), "{msg}");
    assert!(msg.contains("upgrade orca"), "{msg}");
}

#[test]
fn a_file_that_is_no_database_is_refused_with_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("orca.db");
    let noise: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&db, &noise).unwrap();
    let err = SqliteStore::open(&db).unwrap_err();
    assert!(
        matches!(&err, StoreError::Damaged { db: at, .. } if at == &db.display().to_string()),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&db.display().to_string()), "{msg}");
    assert!(
        msg.contains("move it away") && msg.contains("queued anew"),
        "{msg}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), noise, "left as it was");
}

#[test]
fn a_locked_database_reports_busy_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let db = dir.path().join(".orca/orca.db");
    let blocker = rusqlite::Connection::open(&db).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = s.enqueue(new_task("a", Priority::Medium)).unwrap_err();
    assert!(matches!(err, StoreError::Busy { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&db.display().to_string()), "{msg}");
    assert!(msg.contains("locked by another process"), "{msg}");
    blocker.execute_batch("ROLLBACK").unwrap();
    s.enqueue(new_task("a", Priority::Medium)).unwrap();
}

#[test]
fn lock_is_exclusive_within_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::new(dir.path());
    let guard = store::acquire(&ws).unwrap();
    match store::acquire(&ws) {
        Err(LockError::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
        other => panic!("expected Held, got {other:?}"),
    }
    assert_eq!(store::holder(&ws), Some(std::process::id()));
    drop(guard);
    assert_eq!(store::holder(&ws), None);
    let _again = store::acquire(&ws).unwrap();
}

const CHILD_ENV: &str = "ORCA_TEST_LOCK_CHILD_ROOT";

/// Not a test of its own: when started by `lock_is_released_when_the_holder_is_killed`
/// with `CHILD_ENV` set, it takes the lock and sleeps until killed.
#[test]
fn lock_child_process() {
    let Ok(root) = std::env::var(CHILD_ENV) else {
        return;
    };
    let _guard = store::acquire(&Workspace::new(root)).unwrap();
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn lock_is_released_when_the_holder_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::new(dir.path());
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lock_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while store::holder(&ws) != Some(child.id()) {
        assert!(Instant::now() < deadline, "child never took the lock");
        assert!(child.try_wait().unwrap().is_none(), "child exited early");
        std::thread::sleep(Duration::from_millis(20));
    }
    match store::acquire(&ws) {
        Err(e @ LockError::Held { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&format!("pid {}", child.id())), "{msg}");
        }
        other => panic!("expected Held, got {other:?}"),
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    let guard = store::acquire(&ws).expect("a SIGKILLed holder leaves no stale lock");
    assert_eq!(store::holder(&ws), Some(std::process::id()));
    drop(guard);
}

#[test]
fn enqueue_many_is_all_or_nothing_and_suffixes_within_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let mut bad = new_task("bad", Priority::Medium);
    bad.task = None;
    let err = s
        .enqueue_many(&[new_task("a", Priority::Medium), bad])
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)));
    assert!(s.list(None).unwrap().is_empty(), "nothing inserted");
    let recs = s
        .enqueue_many(&[
            new_task("a", Priority::Low),
            new_task("a", Priority::High),
            rejected("r"),
        ])
        .unwrap();
    let ids: Vec<&str> = recs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["a", "a-2", "r"]);
    assert_eq!(recs[2].state, TaskState::Rejected);
    // What enqueue returns is exactly what a later read gives (it is not read back).
    for rec in &recs {
        assert_eq!(s.get(&rec.id).unwrap().as_ref(), Some(rec));
    }
    assert!(recs[2].error.is_some() && recs[2].finished_at_ms.is_some());
    assert_eq!(claim(&s, "w", T0).as_deref(), Some("a-2"));
}

#[test]
fn mark_finalized_does_both_steps_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.enqueue(rejected("r")).unwrap();
    s.mark_finalized("r", "tasks/rejected/r.task.md").unwrap();
    let r = s.get("r").unwrap().unwrap();
    assert!(r.artifacts_written && r.finalized);
    assert_eq!(r.archived_to.as_deref(), Some("tasks/rejected/r.task.md"));
    assert!(s.pending_finalize().unwrap().is_empty());
    assert!(matches!(
        s.mark_finalized("ghost", "x"),
        Err(StoreError::NotFound(_))
    ));
}

const CLAIM_CHILD_ENV: &str = "ORCA_TEST_CLAIM_CHILD_ROOT";

/// Not a test of its own: when started by `processes_claiming_at_once_never_share_a_task`
/// with `CLAIM_CHILD_ENV` set, it claims and finishes until the queue is empty, printing
/// one `claimed <id>` line per task.
#[test]
fn claim_child_process() {
    let Ok(root) = std::env::var(CLAIM_CHILD_ENV) else {
        return;
    };
    let s = open(Path::new(&root));
    let worker = format!("pid{}", std::process::id());
    while let Some(rec) = s.claim(&worker, &[], LEASE, T0).unwrap() {
        s.finish(&rec.id, &worker, finish(TaskState::Succeeded, T0))
            .unwrap();
        println!("claimed {}", rec.id);
    }
}

#[test]
fn processes_claiming_at_once_never_share_a_task() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.enqueue_many(
        &(0..300)
            .map(|i| new_task(&format!("p{i:03}"), Priority::Medium))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let children: Vec<_> = (0..3)
        .map(|_| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "claim_child_process",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CLAIM_CHILD_ENV, dir.path())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut all = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        all.extend(
            text.lines()
                // libtest prints `test claim_child_process ... ` before the first line.
                .filter_map(|l| l.split_once("claimed ").map(|(_, id)| id.trim().to_owned())),
        );
    }
    assert_eq!(all.len(), 300, "every task claimed exactly once");
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 300);
    assert_eq!(s.counts().unwrap()["succeeded"], 300);
}

#[test]
fn finish_claimed_returns_what_the_store_holds_and_the_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.enqueue(new_task("a", Priority::Medium)).unwrap();
    let claimed = s.claim("w", &[], LEASE, T0).unwrap().unwrap();
    s.set_progress("a", "w", &json!({"turns": 1}), Some("sess-1"))
        .unwrap();
    let mut f = finish(TaskState::Failed, T0 + 5);
    f.error = Some(json!({"kind": "agent_error", "message": "it broke"}));
    f.exit_code = Some(3);
    let ended = s.finish_claimed(&claimed, "w", f, None).unwrap();
    let (rec, attempts) = (ended.record, ended.attempts);
    assert_eq!(ended.next, None, "not asked to claim");
    // Carried over from the claim or returned by the update: the same as a fresh read.
    assert_eq!(rec, s.get("a").unwrap().unwrap());
    assert_eq!(rec.state, TaskState::Failed);
    assert_eq!(rec.session_id.as_deref(), Some("sess-1"));
    assert_eq!(rec.progress, Some(json!({"turns": 1})));
    assert_eq!(rec.lease_owner, None);
    assert_eq!(attempts, s.attempts("a").unwrap());
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome.as_deref(), Some("failed"));
    assert_eq!(attempts[0].error.as_deref(), Some("it broke"));
    assert_eq!(attempts[0].exit_code, Some(3));

    // Only the lease holder finishes, and a refusal changes nothing.
    s.enqueue(new_task("b", Priority::Medium)).unwrap();
    let b = s.claim("w", &[], LEASE, T0).unwrap().unwrap();
    let refused = s.finish_claimed(&b, "other", finish(TaskState::Succeeded, T0 + 6), None);
    assert!(
        matches!(refused, Err(StoreError::LeaseLost { .. })),
        "{refused:?}"
    );
    assert_eq!(s.get("b").unwrap().unwrap().state, TaskState::Running);
    let mut ghost = b.clone();
    ghost.id = "ghost".into();
    assert!(matches!(
        s.finish_claimed(&ghost, "w", finish(TaskState::Succeeded, T0 + 6), None),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.finish_claimed(&b, "w", finish(TaskState::Queued, T0 + 6), None),
        Err(StoreError::Invalid(_))
    ));
}

/// Runs task `id` (already queued) to success under worker "w"; returns its attempt.
fn run_to_success(s: &SqliteStore, id: &str, now_ms: i64) -> u32 {
    let claimed = s.claim("w", &[], LEASE, now_ms).unwrap().unwrap();
    assert_eq!(claimed.id, id);
    s.finish_claimed(
        &claimed,
        "w",
        finish(TaskState::Succeeded, now_ms + 1),
        None,
    )
    .unwrap()
    .record
    .attempts
}

/// Hands the store the finalize marker of task `id`'s attempt, archived to tasks/processed/.
fn mark_soon(s: &SqliteStore, id: &str, attempt: u32) {
    s.mark_finalized_soon(id, attempt, &format!("tasks/processed/{id}.task.md"))
        .unwrap();
}

#[test]
fn a_deferred_finalize_marker_rides_with_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.enqueue(new_task("a", Priority::Medium)).unwrap();
    let attempt = run_to_success(&s, "a", T0);
    mark_soon(&s, "a", attempt);
    // Not written yet, but this store already treats it as finalized.
    assert!(!s.get("a").unwrap().unwrap().finalized);
    assert!(s.pending_finalize().unwrap().is_empty());
    assert_eq!(s.find_open_by_file("tasks/a.task.md").unwrap(), None);
    // Another connection (a CLI command) sees it once the next write commits.
    let other = open(dir.path());
    assert_eq!(other.pending_finalize().unwrap().len(), 1);
    s.enqueue(new_task("b", Priority::Medium)).unwrap();
    let a = other.get("a").unwrap().unwrap();
    assert!(a.finalized && a.artifacts_written);
    assert_eq!(a.archived_to.as_deref(), Some("tasks/processed/a.task.md"));
    assert!(other.pending_finalize().unwrap().is_empty());
}

#[test]
fn a_deferred_marker_survives_a_rolled_back_write_and_is_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.enqueue(new_task("a", Priority::Medium)).unwrap();
    s.enqueue(new_task("b", Priority::Medium)).unwrap();
    let attempt = run_to_success(&s, "a", T0);
    let b = s.claim("w", &[], LEASE, T0).unwrap().unwrap();
    mark_soon(&s, "a", attempt);
    // This write fails and rolls back: the marker waits for the next one.
    assert!(s
        .finish_claimed(&b, "other", finish(TaskState::Succeeded, T0 + 2), None)
        .is_err());
    assert!(!s.get("a").unwrap().unwrap().finalized);
    assert!(s.pending_finalize().unwrap().is_empty());
    s.flush_marks().unwrap();
    assert!(s.get("a").unwrap().unwrap().finalized);
    // Nothing held: flushing again writes nothing (another connection sees no commit).
    let other = open(dir.path());
    let version = other.data_version().unwrap();
    s.flush_marks().unwrap();
    assert_eq!(other.data_version().unwrap(), version);
    s.enqueue(new_task("c", Priority::Medium)).unwrap();
    assert_ne!(other.data_version().unwrap(), version, "the check can fail");
}

#[test]
fn a_deferred_marker_is_written_on_drop_and_lost_only_in_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = open(dir.path());
        s.enqueue(new_task("a", Priority::Medium)).unwrap();
        s.enqueue(new_task("b", Priority::Medium)).unwrap();
        let a = run_to_success(&s, "a", T0);
        mark_soon(&s, "a", a);
        let b = run_to_success(&s, "b", T0);
        // A clean stop (the store dropped) writes "a"'s marker.
        let crashing = open(dir.path());
        mark_soon(&crashing, "b", b);
        // A crash does not write "b"'s: the next start finalizes it again.
        std::mem::forget(crashing);
    }
    let s = open(dir.path());
    assert!(s.get("a").unwrap().unwrap().finalized);
    let pending: Vec<String> = s
        .pending_finalize()
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(pending, ["b"]);
}

#[test]
fn a_deferred_marker_is_dropped_when_the_task_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.enqueue(new_task("a", Priority::Medium)).unwrap();
    let first = run_to_success(&s, "a", T0);
    mark_soon(&s, "a", first);
    // `orca retry` from another process before the marker is written.
    open(dir.path()).retry("a", T0 + 10).unwrap();
    s.flush_marks().unwrap();
    let a = s.get("a").unwrap().unwrap();
    assert_eq!(a.state, TaskState::Queued);
    assert!(!a.finalized);
    // Its second run is final and not finalized: the old marker did not count for it.
    assert_eq!(run_to_success(&s, "a", T0 + 20), first + 1);
    s.flush_marks().unwrap();
    assert!(!s.get("a").unwrap().unwrap().finalized);
    assert_eq!(s.pending_finalize().unwrap().len(), 1);
}

#[test]
fn a_finish_can_claim_the_workers_next_task_in_the_same_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    s.enqueue(new_task("a", Priority::Medium)).unwrap();
    s.enqueue(new_task("low", Priority::Low)).unwrap();
    s.enqueue(new_task_req("gpu", Priority::High, &["gpu"]))
        .unwrap();
    s.enqueue(new_task("high", Priority::High)).unwrap();
    let a = s.claim("w", &[], LEASE, T0).unwrap().unwrap();
    assert_eq!(a.id, "high");
    let next = |labels: &'static [String]| {
        Some(NextClaim {
            labels,
            lease_ms: LEASE,
        })
    };
    // The best ready task this worker may take (not "gpu": it lacks the label).
    let ended = s
        .finish_claimed(&a, "w", finish(TaskState::Succeeded, T0 + 1), next(&[]))
        .unwrap();
    assert_eq!(ended.record.state, TaskState::Succeeded);
    let b = ended.next.expect("a next task");
    assert_eq!(b.id, "a");
    assert_eq!(b, s.get("a").unwrap().unwrap());
    assert_eq!(b.state, TaskState::Running);
    assert_eq!(b.lease_owner.as_deref(), Some("w"));
    assert_eq!(b.lease_expires_ms, Some(T0 + 1 + LEASE));
    assert_eq!(s.attempts("a").unwrap().len(), 1);
    assert_eq!(s.attempts("a").unwrap()[0].started_at_ms, T0 + 1);

    // A failed finish claims nothing either.
    assert!(matches!(
        s.finish_claimed(&b, "other", finish(TaskState::Succeeded, T0 + 2), next(&[])),
        Err(StoreError::LeaseLost { .. })
    ));
    assert_eq!(s.get("low").unwrap().unwrap().state, TaskState::Queued);

    let ended = s
        .finish_claimed(&b, "w", finish(TaskState::Failed, T0 + 3), next(&[]))
        .unwrap();
    let c = ended.next.expect("low is next");
    assert_eq!(c.id, "low");
    // Nothing left that this worker may take.
    let ended = s
        .finish_claimed(&c, "w", finish(TaskState::Succeeded, T0 + 4), next(&[]))
        .unwrap();
    assert_eq!(ended.next, None);
    assert_eq!(s.get("gpu").unwrap().unwrap().state, TaskState::Queued);
    assert_eq!(s.counts().unwrap()["running"], 0);
}

// ---- store::open and store faults, through the real `orca` binary ----

/// `orca ARGS` in the workspace `root` with `ORCA_DATABASE_URL` set (or not) and no other
/// Orca settings from the environment.
fn orca(root: &Path, url: Option<&str>, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_orca"));
    c.env_remove("ORCA_DATABASE_URL")
        .env_remove("ORCA_ROOT")
        .env("CLAUDE_BIN", "/nonexistent/claude")
        .env("ORCA_LLM", "off")
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(std::process::Stdio::null());
    if let Some(url) = url {
        c.env("ORCA_DATABASE_URL", url);
    }
    c
}

fn output_of(mut c: std::process::Command) -> (Option<i32>, String) {
    let out = c.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn an_unreachable_postgres_url_is_refused_by_run_and_status_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tasks")).unwrap();
    // Nothing listens on port 1.
    for url in [
        "postgres://x@127.0.0.1:1/fleetdb",
        "postgresql://orca:hunter2@127.0.0.1:1/fleetdb",
    ] {
        for args in [&["run"][..], &["status"][..], &["list"][..]] {
            let (code, text) = output_of(orca(dir.path(), Some(url), args));
            assert_eq!(code, Some(2), "{url} {args:?}: {text}");
            assert!(
                text.contains(
                    "cannot connect to the PostgreSQL server at 127.0.0.1:1 (database fleetdb)"
                ),
                "{url} {args:?}: {text}"
            );
            assert!(text.contains("ORCA_DATABASE_URL"), "{text}");
            assert!(!text.contains("hunter2"), "the password is shown: {text}");
        }
    }
    // Nothing was started against a database nobody asked for.
    assert!(!dir.path().join(".orca/orca.db").exists());
}

#[test]
fn a_sqlite_url_names_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tasks")).unwrap();
    let (code, text) = output_of(orca(dir.path(), Some("sqlite:elsewhere/q.db"), &["list"]));
    assert_eq!(code, Some(0), "{text}");
    assert!(dir.path().join("elsewhere/q.db").is_file());
    assert!(!dir.path().join(".orca/orca.db").exists());
    let (code, text) = output_of(orca(dir.path(), None, &["list"]));
    assert_eq!(code, Some(0), "{text}");
    assert!(dir.path().join(".orca/orca.db").is_file(), "the default");
}

#[test]
fn a_url_of_another_kind_is_refused_naming_it_and_the_accepted_forms() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tasks")).unwrap();
    for args in [&["run"][..], &["status"][..]] {
        let (code, text) = output_of(orca(dir.path(), Some("mysql://u:hunter2@h/d"), args));
        assert_eq!(code, Some(2), "{args:?}: {text}");
        assert!(text.contains("mysql://u:<redacted>@h/d"), "{text}");
        assert!(text.contains("sqlite:"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
    let ws = Workspace::new("/w");
    let err = match store::open("mysql://u:hunter2@h/d", &ws) {
        Err(e) => e,
        Ok(_) => panic!("mysql accepted"),
    };
    let msg = err.to_string();
    assert!(msg.contains("mysql://u:<redacted>@h/d"), "{msg}");
    assert!(msg.contains("sqlite:PATH"), "{msg}");
    assert_eq!(err.exit_code(), 2);
}

/// Sets or clears the immutable flag (`chattr`), which stops writes even by root; false
/// when the file system or the machine cannot do that.
fn immutable(path: &Path, on: bool) -> bool {
    std::process::Command::new("chattr")
        .arg(if on { "+i" } else { "-i" })
        .arg(path)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Clears the immutable flag when dropped, so the temporary folder can be removed.
struct Unfreeze(std::path::PathBuf);
impl Drop for Unfreeze {
    fn drop(&mut self) {
        immutable(&self.0, false);
    }
}

#[test]
fn run_refuses_a_database_it_cannot_write_naming_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tasks")).unwrap();
    let (code, text) = output_of(orca(dir.path(), None, &["list"]));
    assert_eq!(code, Some(0), "{text}");
    let db = dir.path().join(".orca/orca.db");
    if !immutable(&db, true) {
        eprintln!("skipped: chattr +i does not work here");
        return;
    }
    let _thaw = Unfreeze(db.clone());
    let (code, text) = output_of(orca(dir.path(), None, &["run"]));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains(&db.display().to_string()), "{text}");
    assert!(text.contains("cannot be written"), "{text}");
    assert!(text.contains("writable"), "{text}");
    // Reading still works: status shows what is there.
    let (code, text) = output_of(orca(dir.path(), None, &["status"]));
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn run_refuses_a_database_whose_folder_it_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tasks")).unwrap();
    let (code, text) = output_of(orca(dir.path(), None, &["list"]));
    assert_eq!(code, Some(0), "{text}");
    let state = dir.path().join(".orca");
    // The -wal and -shm files are gone once the last connection closed; SQLite cannot make
    // them again in a folder that cannot be written.
    for extra in ["orca.db-wal", "orca.db-shm"] {
        let _ = std::fs::remove_file(state.join(extra));
    }
    // The lock file exists from an earlier run: the lock is taken before the store opens.
    std::fs::File::create(state.join("orca.lock")).unwrap();
    if !immutable(&state, true) {
        eprintln!("skipped: chattr +i does not work here");
        return;
    }
    let _thaw = Unfreeze(state.clone());
    let (code, text) = output_of(orca(dir.path(), None, &["run"]));
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains(&state.join("orca.db").display().to_string()),
        "{text}"
    );
    assert!(
        text.contains("its folder") && text.contains("cannot be written"),
        "{text}"
    );
}

/// Starts `orca run` in `root`, its output in `root/daemon.out`; waits for its start.
fn start_daemon(root: &Path, env: &[(&str, &str)]) -> std::process::Child {
    let out = std::fs::File::create(root.join("daemon.out")).unwrap();
    let mut c = orca(root, None, &["run"]);
    c.envs(env.iter().copied())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    let child = c.spawn().unwrap();
    wait_until(
        || {
            std::fs::read_to_string(root.join("logs/events.ndjson"))
                .is_ok_and(|t| t.contains("daemon_started"))
        },
        "daemon_started",
    );
    child
}

fn wait_until(cond: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Waits for the daemon to exit by itself; its exit code and output.
fn wait_exit(mut child: std::process::Child, root: &Path) -> (Option<i32>, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let text = std::fs::read_to_string(root.join("daemon.out")).unwrap_or_default();
            return (st.code(), text);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let text = std::fs::read_to_string(root.join("daemon.out")).unwrap_or_default();
            panic!("the daemon did not stop by itself:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn the_daemon_stops_when_its_database_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tasks")).unwrap();
    let child = start_daemon(dir.path(), &[]);
    let db = dir.path().join(".orca/orca.db");
    std::fs::remove_file(&db).unwrap();
    let (code, text) = wait_exit(child, dir.path());
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(&db.display().to_string()), "{text}");
    assert!(text.contains("deleted or replaced"), "{text}");
    let log = std::fs::read_to_string(dir.path().join("logs/orchestrator.log")).unwrap();
    assert!(log.contains("deleted or replaced"), "{log}");
}

#[test]
fn the_daemon_stops_when_its_database_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tasks")).unwrap();
    let child = start_daemon(dir.path(), &[]);
    let db = dir.path().join(".orca/orca.db");
    // A copy put in its place (say, a backup restored): another file from now on.
    let copy = dir.path().join("copy.db");
    std::fs::copy(&db, &copy).unwrap();
    std::fs::rename(&copy, &db).unwrap();
    let (code, text) = wait_exit(child, dir.path());
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("deleted or replaced"), "{text}");
}

#[test]
fn a_lasting_claim_error_is_logged_with_backoff_not_on_every_tick() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tasks")).unwrap();
    {
        let s = open(dir.path());
        s.enqueue(new_task("broken", Priority::Medium)).unwrap();
    }
    // A damaged record: its labels are no JSON, so every claim fails.
    let conn = rusqlite::Connection::open(dir.path().join(".orca/orca.db")).unwrap();
    conn.execute(
        "UPDATE tasks SET requires = 'not json' WHERE id = 'broken'",
        [],
    )
    .unwrap();
    drop(conn);
    let mut child = start_daemon(dir.path(), &[]);
    let log_path = dir.path().join("logs/orchestrator.log");
    let claim_errors = || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .matches("cannot claim a task")
            .count()
    };
    wait_until(|| claim_errors() >= 1, "the first claim error in the log");
    // The daemon ticks 4 times a second and tries to claim on each: over 3 s that was a
    // dozen identical lines; now the first, then one after 1 s and one after 3 s at most.
    std::thread::sleep(Duration::from_secs(3));
    let n = claim_errors();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(0));
    let log = std::fs::read_to_string(&log_path).unwrap();
    eprintln!("{n} claim errors logged in 3 s");
    assert!((1..=4).contains(&n), "{n} claim errors logged:\n{log}");
    assert!(log.contains("malformed JSON"), "{log}");
}

//! Integration tests of the PostgreSQL store (`orca::store::postgres`) against a real
//! server: each test makes a database of its own (random name) and drops it at the end,
//! also when it fails. The server is `ORCA_TEST_PG_URL` (default
//! postgres://postgres@127.0.0.1:5432/test, the one `.ci/run` starts); when it cannot be
//! reached the tests fail in CI (CI=true) and are skipped, saying so, elsewhere.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use orca::store::postgres::{self as pg, PgOptions, PostgresStore};
use orca::store::{
    CancelOutcome, Finish, NewTask, NextClaim, SourceKind, Store, StoreError, TaskState,
};
use orca::task::{Priority, Task};
use serde_json::json;

const LEASE: i64 = 30_000;
const T0: i64 = 1_764_066_600_000;

#[path = "common/test_db.rs"]
#[macro_use]
mod test_db;
use test_db::{admin_url, TestDb};

impl TestDb {
    fn store(&self, node: &str) -> PostgresStore {
        PostgresStore::connect(&self.url, node).unwrap()
    }

    fn poll_store(&self, node: &str) -> PostgresStore {
        let opts = PgOptions {
            poll_only: true,
            ..PgOptions::default()
        };
        PostgresStore::connect_with(&self.url, node, &opts).unwrap()
    }

    /// A plain client on the test database.
    fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }
}

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

fn rejected(id: &str) -> NewTask {
    NewTask {
        task: None,
        state: TaskState::Rejected,
        error: Some(json!({"kind": "invalid", "message": "bad front matter"})),
        ..new_task(id, Priority::Medium)
    }
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

fn claim(s: &PostgresStore, worker: &str, now: i64) -> Option<String> {
    s.claim(worker, &[], LEASE, now).unwrap().map(|r| r.id)
}

fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn enqueue_round_trips_every_field_and_records_the_origin_node() {
    let db = db_or_skip!();
    let s = db.store("node-a");
    let mut t = new_task("fix_db", Priority::High);
    t.source = SourceKind::Telegram;
    t.source_user = Some("@ann".into());
    t.task
        .as_mut()
        .unwrap()
        .extra
        .insert("x-cost".into(), json!({"usd": 0.1 + 0.2, "n": 3}));
    let rec = s.enqueue(t.clone()).unwrap();
    assert_eq!((rec.id.as_str(), rec.stem.as_str()), ("fix_db", "fix_db"));
    assert_eq!(rec.file, "tasks/fix_db.task.md");
    assert_eq!(rec.source, SourceKind::Telegram);
    assert_eq!(rec.source_user.as_deref(), Some("@ann"));
    assert_eq!(
        (rec.state, rec.priority),
        (TaskState::Queued, Priority::High)
    );
    assert_eq!(rec.task, t.task);
    assert_eq!((rec.attempts, rec.max_retries), (0, 2));
    assert_eq!(rec.received_at_ms, T0);
    assert!(!rec.finalized && !rec.artifacts_written && !rec.cancel_requested);
    // What enqueue returns is exactly what a later read gives (from any node).
    assert_eq!(s.get("fix_db").unwrap(), Some(rec.clone()));
    assert_eq!(db.store("node-b").get("fix_db").unwrap(), Some(rec));
    assert_eq!(s.get("nope").unwrap(), None);
    let origin: String = db
        .client()
        .query_one(
            "SELECT origin_node FROM orca_tasks WHERE id = 'fix_db'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(origin, "node-a");
    let info = s.describe();
    assert_eq!(info.kind, "postgres");
    assert!(info.db.ends_with(&db.name), "{}", info.db);
    s.check_writable().unwrap();
}

#[test]
fn priority_first_then_arrival_order_with_labels() {
    let db = db_or_skip!();
    let s = db.store("n");
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
fn requires_must_be_a_subset_of_the_worker_labels() {
    let db = db_or_skip!();
    let s = db.store("n");
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
fn ids_and_stems_get_suffixes_when_taken() {
    let db = db_or_skip!();
    let s = db.store("n");
    let a = s.enqueue(new_task("x", Priority::Medium)).unwrap();
    let b = s.enqueue(new_task("x", Priority::Medium)).unwrap();
    let c = s.enqueue(new_task("x", Priority::Medium)).unwrap();
    assert_eq!([a.id, b.id, c.id.clone()], ["x", "x-2", "x-3"]);
    assert_eq!([a.stem, b.stem, c.stem], ["x", "x-2", "x-3"]);
    assert_eq!(c.desired_id, "x");
    let mut other = new_task("y", Priority::Medium);
    other.stem = "x".into();
    let d = s.enqueue(other).unwrap();
    assert_eq!((d.id.as_str(), d.stem.as_str()), ("y", "x-4"));
    let id = claim(&s, "w", T0).unwrap();
    s.finish(&id, "w", finish(TaskState::Succeeded, T0 + 1))
        .unwrap();
    s.mark_finalized(&id, "tasks/processed/x.task.md").unwrap();
    let e = s.enqueue(new_task("x", Priority::Medium)).unwrap();
    assert_eq!((e.id.as_str(), e.stem.as_str()), ("x-4", "x-5"));
    // All or nothing, suffixed within the batch.
    let mut bad = new_task("bad", Priority::Medium);
    bad.task = None;
    assert!(matches!(
        s.enqueue_many(&[new_task("z", Priority::Medium), bad]),
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(s.get("z").unwrap(), None, "nothing inserted");
    let recs = s
        .enqueue_many(&[
            new_task("z", Priority::Low),
            new_task("z", Priority::High),
            rejected("r"),
        ])
        .unwrap();
    let ids: Vec<&str> = recs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["z", "z-2", "r"]);
    for rec in &recs {
        assert_eq!(s.get(&rec.id).unwrap().as_ref(), Some(rec));
    }
}

#[test]
fn two_nodes_enqueuing_the_same_name_at_once_get_distinct_ids() {
    let db = db_or_skip!();
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|node| {
            let s = db.store(node);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                (0..20)
                    .map(|_| s.enqueue(new_task("same", Priority::Medium)).unwrap().id)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let all: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 40, "{all:?}");
}

#[test]
fn claim_sets_lease_and_attempt_row_naming_the_node() {
    let db = db_or_skip!();
    let s = db.store("node1");
    s.enqueue(new_task("a", Priority::Medium)).unwrap();
    let rec = s.claim("node1:w0", &[], LEASE, T0 + 5).unwrap().unwrap();
    assert_eq!((rec.state, rec.attempts), (TaskState::Running, 1));
    assert_eq!(rec.lease_owner.as_deref(), Some("node1:w0"));
    assert_eq!(rec.lease_expires_ms, Some(T0 + 5 + LEASE));
    assert_eq!(rec.started_at_ms, Some(T0 + 5));
    assert_eq!(s.get("a").unwrap().unwrap(), rec);
    let att = s.attempts("a").unwrap();
    assert_eq!(att.len(), 1);
    assert_eq!((att[0].attempt, att[0].worker.as_str()), (1, "node1:w0"));
    assert_eq!(
        (att[0].started_at_ms, att[0].outcome.clone()),
        (T0 + 5, None)
    );
    let node: String = db
        .client()
        .query_one("SELECT node FROM orca_attempts WHERE task_id = 'a'", &[])
        .unwrap()
        .get(0);
    assert_eq!(node, "node1");
    assert!(s.claim("other", &[], LEASE, T0 + 6).unwrap().is_none());
}

#[test]
fn a_batch_claim_gives_each_worker_the_next_best_task() {
    let db = db_or_skip!();
    let s = db.store("n");
    for (id, p) in [
        ("l", Priority::Low),
        ("m", Priority::Medium),
        ("h", Priority::High),
    ] {
        s.enqueue(new_task(id, p)).unwrap();
    }
    let got = s.claim_batch(&["n:w0", "n:w1"], &[], LEASE, T0).unwrap();
    let pairs: Vec<(&str, &str)> = got
        .iter()
        .map(|r| (r.id.as_str(), r.lease_owner.as_deref().unwrap()))
        .collect();
    assert_eq!(pairs, [("h", "n:w0"), ("m", "n:w1")]);
    let rest = s.claim_batch(&["n:w2", "n:w3"], &[], LEASE, T0).unwrap();
    assert_eq!(rest.len(), 1, "fewer when fewer are ready");
    assert_eq!(rest[0].id, "l");
    assert_eq!(s.attempts("l").unwrap()[0].worker, "n:w2");
    assert!(s.claim_batch(&[], &[], LEASE, T0).unwrap().is_empty());
}

#[test]
fn heartbeat_renews_and_reports_lost_leases_and_progress_is_for_the_owner() {
    let db = db_or_skip!();
    let s = db.store("n");
    s.enqueue(new_task("a", Priority::Medium)).unwrap();
    s.claim("w1", &[], 1_000, T0).unwrap().unwrap();
    assert!(s.heartbeat("a", "w1", 1_000, T0 + 900).unwrap());
    assert_eq!(
        s.get("a").unwrap().unwrap().lease_expires_ms,
        Some(T0 + 1_900)
    );
    assert!(s.requeue_expired(T0 + 1_500).unwrap().is_empty());
    assert!(!s.heartbeat("a", "intruder", 1_000, T0 + 1_000).unwrap());
    assert!(!s.heartbeat("missing", "w1", 1_000, T0 + 1_000).unwrap());
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
    s.finish("a", "w1", finish(TaskState::Failed, T0 + 1_600))
        .unwrap();
    assert!(!s.heartbeat("a", "w1", 1_000, T0 + 1_700).unwrap());
}

#[test]
fn finish_closes_the_attempt_and_clears_the_lease() {
    let db = db_or_skip!();
    let s = db.store("n");
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
    let f = Finish {
        state: TaskState::TimedOut,
        outcome: "timed_out".into(),
        error: Some(json!({"kind": "timeout", "message": "ran over 60 s"})),
        exit_code: Some(143),
        session_id: Some("s-1".into()),
        now_ms: T0 + 60_000,
    };
    let ended = s.finish("a", "w1", f).unwrap();
    let rec = s.get("a").unwrap().unwrap();
    assert_eq!(ended, rec);
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
    assert_eq!(
        (att.exit_code, att.finished_at_ms),
        (Some(143), Some(T0 + 60_000))
    );
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
    let db = db_or_skip!();
    let s = db.store("n");
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
    assert_eq!(
        (a.state, a.not_before_ms),
        (TaskState::Queued, Some(now + 60_000))
    );
    assert!(a.may_retry(), "attempt 1 of max_retries 2");
    assert_eq!(s.next_not_before().unwrap(), Some(now + 60_000));
    let att = &s.attempts("a").unwrap()[0];
    assert_eq!(att.outcome.as_deref(), Some("retry"));
    assert_eq!(att.error.as_deref(), Some("rate limited"));
    assert_eq!(att.exit_code, Some(1));
    assert_eq!(att.session_id.as_deref(), Some("sess-r"));
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
    assert!(matches!(
        s.requeue("ghost", "w", now, "x", None, None),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn retry_of_a_finished_task_renews_the_budget() {
    let db = db_or_skip!();
    let s = db.store("n");
    s.enqueue(new_task("a", Priority::Medium)).unwrap();
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
    assert_eq!(
        (rec.attempts, rec.max_retries),
        (3, 5),
        "attempts 4..=6 may run"
    );
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
    s.enqueue(rejected("broken")).unwrap();
    assert!(matches!(
        s.retry("broken", T0),
        Err(StoreError::NotRetryable { .. })
    ));
}

#[test]
fn cancel_queued_running_finished_and_unknown() {
    let db = db_or_skip!();
    let s = db.store("n");
    s.enqueue(new_task("run", Priority::High)).unwrap();
    s.enqueue(new_task("wait", Priority::Low)).unwrap();
    s.enqueue(new_task("done", Priority::Low)).unwrap();
    s.enqueue(new_task("rel", Priority::Low)).unwrap();
    assert_eq!(claim(&s, "w", T0).as_deref(), Some("run"));
    // From another node: the cancel is in the shared queue.
    let other = db.store("other-node");
    assert_eq!(
        other.request_cancel("wait", T0 + 1).unwrap(),
        CancelOutcome::Cancelled
    );
    let wait = s.get("wait").unwrap().unwrap();
    assert_eq!(
        (wait.state, wait.finished_at_ms),
        (TaskState::Cancelled, Some(T0 + 1))
    );
    assert!(s.pending_finalize().unwrap().iter().any(|r| r.id == "wait"));
    assert!(!s.is_cancel_requested("run").unwrap());
    assert_eq!(
        other.request_cancel("run", T0 + 2).unwrap(),
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
        s.request_cancel("ghost", T0).unwrap(),
        CancelOutcome::NotFound
    );
    assert!(matches!(
        s.is_cancel_requested("ghost"),
        Err(StoreError::NotFound(_))
    ));
    // A running task whose cancel was requested and that is released ends cancelled.
    assert_eq!(claim(&s, "w", T0).as_deref(), Some("rel"));
    s.request_cancel("rel", T0 + 6).unwrap();
    s.release("rel", "w", "shutting down").unwrap();
    let rel = s.get("rel").unwrap().unwrap();
    assert_eq!(rel.state, TaskState::Cancelled);
    assert!(rel.finished_at_ms.is_some());
    assert_eq!(claim(&s, "w", T0 + 10), None, "cancelled tasks never start");
}

#[test]
fn counts_list_and_the_finalize_flow() {
    let db = db_or_skip!();
    let s = db.store("n");
    let c = s.counts().unwrap();
    let mut want: Vec<&str> = TaskState::ALL.iter().map(|s| s.as_str()).collect();
    want.sort();
    assert_eq!(c.keys().map(String::as_str).collect::<Vec<_>>(), want);
    assert!(c.values().all(|&n| n == 0));
    s.enqueue(new_task("a", Priority::Medium)).unwrap();
    s.enqueue(new_task("b", Priority::Medium)).unwrap();
    let r = s.enqueue(rejected("c")).unwrap();
    assert_eq!(
        (r.state, r.task.clone(), r.finished_at_ms),
        (TaskState::Rejected, None, Some(T0))
    );
    assert!(s.pending_finalize().unwrap().iter().all(|r| r.id == "c"));
    claim(&s, "w", T0).unwrap();
    let c = s.counts().unwrap();
    assert_eq!(
        (c["queued"], c["running"], c["rejected"], c["succeeded"]),
        (1, 1, 1, 0)
    );
    assert_eq!(s.list(Some(TaskState::Queued)).unwrap()[0].id, "b");
    assert_eq!(s.list(Some(TaskState::Rejected)).unwrap()[0].id, "c");
    assert_eq!(s.list(None).unwrap().len(), 3);

    s.finish("a", "w", finish(TaskState::Succeeded, T0 + 1))
        .unwrap();
    let pending: Vec<String> = s
        .pending_finalize()
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(pending, ["a", "c"]);
    let files = ["tasks/b.task.md", "tasks/none.task.md", "tasks/a.task.md"];
    let open_ids = |s: &PostgresStore| -> Vec<Option<String>> {
        let together: Vec<Option<String>> = s
            .find_open_by_files(&files)
            .unwrap()
            .into_iter()
            .map(|r| r.map(|r| r.id))
            .collect();
        let one_by_one: Vec<Option<String>> = files
            .iter()
            .map(|f| s.find_open_by_file(f).unwrap().map(|r| r.id))
            .collect();
        assert_eq!(together, one_by_one);
        together
    };
    assert_eq!(open_ids(&s), [Some("b".into()), None, Some("a".into())]);
    s.mark_finalized("a", "tasks/processed/a.task.md").unwrap();
    let a = s.get("a").unwrap().unwrap();
    assert!(a.finalized && a.artifacts_written);
    assert_eq!(a.archived_to.as_deref(), Some("tasks/processed/a.task.md"));
    assert_eq!(open_ids(&s), [Some("b".into()), None, None]);
    // The same file dropped again is a new record, once the first is finalized.
    let second = s.enqueue(new_task("a", Priority::Medium)).unwrap();
    assert_eq!(
        s.find_open_by_file("tasks/a.task.md").unwrap().unwrap().id,
        second.id
    );
    // mark_finalized_later holds the marker back: this handle sees the task as finalized at
    // once, another handle only once the marker went out with a write of this one.
    s.mark_finalized_later("c", 0, "tasks/rejected/c.task.md")
        .unwrap();
    assert!(s.pending_finalize().unwrap().iter().all(|r| r.id != "c"));
    assert!(!db.store("other").get("c").unwrap().unwrap().finalized);
    s.flush().unwrap();
    let c = db.store("other").get("c").unwrap().unwrap();
    assert!(c.finalized && c.archived_to.as_deref() == Some("tasks/rejected/c.task.md"));
    // Held back again, it rides along with the next write.
    s.enqueue(new_task("d", Priority::Medium)).unwrap();
    let rec = s.claim("w", &[], LEASE, T0).unwrap().unwrap();
    s.finish(&rec.id, "w", finish(TaskState::Succeeded, T0 + 1))
        .unwrap();
    s.mark_finalized_later(&rec.id, rec.attempts, "tasks/processed/x.task.md")
        .unwrap();
    s.enqueue(new_task("e", Priority::Medium)).unwrap();
    assert!(db.store("other").get(&rec.id).unwrap().unwrap().finalized);
    assert!(matches!(
        s.mark_finalized("ghost", "x"),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn a_finish_can_claim_the_workers_next_task_in_the_same_transaction() {
    let db = db_or_skip!();
    let s = db.store("n");
    s.enqueue(new_task("a", Priority::Medium)).unwrap();
    s.enqueue(new_task("low", Priority::Low)).unwrap();
    s.enqueue(new_task_req("gpu", Priority::High, &["gpu"]))
        .unwrap();
    s.enqueue(new_task("high", Priority::High)).unwrap();
    let a = s.claim("w", &[], LEASE, T0).unwrap().unwrap();
    assert_eq!(a.id, "high");
    s.set_progress("high", "w", &json!({"turns": 1}), Some("sess-1"))
        .unwrap();
    let next = |labels: &'static [String]| {
        Some(NextClaim {
            labels,
            lease_ms: LEASE,
        })
    };
    let mut f = finish(TaskState::Succeeded, T0 + 1);
    f.error = Some(json!({"kind": "none", "message": "fine"}));
    let ended = s.finish_claimed(&a, "w", f, next(&[])).unwrap();
    assert_eq!(ended.record, s.get("high").unwrap().unwrap());
    assert_eq!(ended.record.progress, Some(json!({"turns": 1})));
    assert_eq!(ended.attempts, s.attempts("high").unwrap());
    assert_eq!(ended.attempts[0].outcome.as_deref(), Some("succeeded"));
    let b = ended.next.expect("a next task");
    assert_eq!(b.id, "a", "not gpu: the worker lacks the label");
    assert_eq!(b, s.get("a").unwrap().unwrap());
    assert_eq!(b.lease_expires_ms, Some(T0 + 1 + LEASE));
    assert_eq!(s.attempts("a").unwrap()[0].started_at_ms, T0 + 1);
    // A refused finish claims nothing either.
    assert!(matches!(
        s.finish_claimed(&b, "other", finish(TaskState::Succeeded, T0 + 2), next(&[])),
        Err(StoreError::LeaseLost { .. })
    ));
    assert_eq!(s.get("low").unwrap().unwrap().state, TaskState::Queued);
    let mut ghost = b.clone();
    ghost.id = "ghost".into();
    assert!(matches!(
        s.finish_claimed(&ghost, "w", finish(TaskState::Succeeded, T0 + 2), None),
        Err(StoreError::NotFound(_))
    ));
    let ended = s
        .finish_claimed(&b, "w", finish(TaskState::Failed, T0 + 3), next(&[]))
        .unwrap();
    let c = ended.next.expect("low is next");
    assert_eq!(c.id, "low");
    let ended = s
        .finish_claimed(&c, "w", finish(TaskState::Succeeded, T0 + 4), next(&[]))
        .unwrap();
    assert_eq!(ended.next, None);
    assert_eq!(s.get("gpu").unwrap().unwrap().state, TaskState::Queued);
    assert_eq!(s.counts().unwrap()["running"], 0);
}

#[test]
fn three_nodes_claiming_300_tasks_at_once_take_each_exactly_once() {
    let db = db_or_skip!();
    let s = db.store("origin");
    s.enqueue_many(
        &(0..300)
            .map(|i| new_task(&format!("p{i:03}"), Priority::Medium))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let barrier = Arc::new(Barrier::new(3));
    let handles: Vec<_> = (0..3)
        .map(|n| {
            let node = db.store(&format!("node{n}"));
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let worker = format!("node{n}:w0");
                let next = || {
                    Some(NextClaim {
                        labels: &[],
                        lease_ms: LEASE,
                    })
                };
                barrier.wait();
                let mut got = Vec::new();
                let mut current = node.claim(&worker, &[], LEASE, T0).unwrap();
                while let Some(rec) = current {
                    assert_eq!(rec.lease_owner.as_deref(), Some(worker.as_str()));
                    got.push(rec.id.clone());
                    current = node
                        .finish_claimed(&rec, &worker, finish(TaskState::Succeeded, T0), next())
                        .unwrap()
                        .next;
                }
                got
            })
        })
        .collect();
    let per_node: Vec<Vec<String>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let all: Vec<&String> = per_node.iter().flatten().collect();
    assert_eq!(all.len(), 300, "every task claimed exactly once");
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 300);
    eprintln!(
        "tasks per node: {:?}",
        per_node.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert_eq!(s.counts().unwrap()["succeeded"], 300);
    for rec in s.list(None).unwrap() {
        assert_eq!(rec.attempts, 1, "{}", rec.id);
        assert_eq!(s.attempts(&rec.id).unwrap().len(), 1);
    }
}

#[test]
fn an_expired_lease_is_requeued_by_another_node_and_the_old_owner_is_fenced_off() {
    let db = db_or_skip!();
    let a = db.store("node-a");
    let b = db.store("node-b");
    a.enqueue(new_task("t", Priority::Medium)).unwrap();
    a.enqueue(new_task("u", Priority::Low)).unwrap();
    let old = a.claim("node-a:w0", &[], 1_000, T0).unwrap().unwrap();
    a.claim("node-a:w1", &[], 5_000, T0).unwrap().unwrap();
    // node-a goes silent; node-b, alive, puts the expired lease back.
    assert!(b.requeue_expired(T0 + 1_000).unwrap().is_empty());
    assert_eq!(b.requeue_expired(T0 + 1_001).unwrap(), ["t"]);
    let t = b.get("t").unwrap().unwrap();
    assert_eq!((t.state, t.lease_owner.clone()), (TaskState::Queued, None));
    let att = b.attempts("t").unwrap();
    assert_eq!(
        att[0].outcome.as_deref(),
        Some("interrupted"),
        "the attempt counted"
    );
    assert!(att[0].error.as_deref().unwrap().contains("node-a:w0"));
    let taken = b
        .claim("node-b:w0", &[], LEASE, T0 + 1_002)
        .unwrap()
        .unwrap();
    assert_eq!((taken.id.as_str(), taken.attempts), ("t", 2));
    // node-a comes back: its heartbeat, finish, requeue and release of `t` are refused.
    assert!(!a.heartbeat("t", "node-a:w0", 1_000, T0 + 1_003).unwrap());
    for refused in [
        a.finish("t", "node-a:w0", finish(TaskState::Succeeded, T0 + 1_004))
            .map(|_| ()),
        a.finish_claimed(
            &old,
            "node-a:w0",
            finish(TaskState::Succeeded, T0 + 1_004),
            None,
        )
        .map(|_| ()),
        a.requeue("t", "node-a:w0", T0, "x", None, None),
        a.release("t", "node-a:w0", "x"),
    ] {
        assert!(
            matches!(refused, Err(StoreError::LeaseLost { .. })),
            "{refused:?}"
        );
    }
    let t = b.get("t").unwrap().unwrap();
    assert_eq!(
        (t.state, t.lease_owner.as_deref()),
        (TaskState::Running, Some("node-b:w0"))
    );
    assert_eq!(b.get("u").unwrap().unwrap().state, TaskState::Running);
    b.finish_claimed(
        &taken,
        "node-b:w0",
        finish(TaskState::Succeeded, T0 + 2_000),
        None,
    )
    .unwrap();
}

#[test]
fn the_fencing_token_refuses_an_older_claim_under_the_same_worker_name() {
    let db = db_or_skip!();
    let s = db.store("n");
    s.enqueue(new_task("t", Priority::Medium)).unwrap();
    let first = s.claim("n:w0", &[], 1_000, T0).unwrap().unwrap();
    assert_eq!(s.requeue_expired(T0 + 2_000).unwrap(), ["t"]);
    // The same worker name (a restarted node with the same ORCA_NODE_ID) claims it again.
    let second = s.claim("n:w0", &[], LEASE, T0 + 2_001).unwrap().unwrap();
    assert_eq!(second.attempts, first.attempts + 1);
    let stale = s.finish_claimed(
        &first,
        "n:w0",
        finish(TaskState::Succeeded, T0 + 2_002),
        None,
    );
    assert!(
        matches!(stale, Err(StoreError::LeaseLost { .. })),
        "{stale:?}"
    );
    assert_eq!(s.get("t").unwrap().unwrap().state, TaskState::Running);
    let ended = s
        .finish_claimed(
            &second,
            "n:w0",
            finish(TaskState::Succeeded, T0 + 2_003),
            None,
        )
        .unwrap();
    assert_eq!(ended.record.state, TaskState::Succeeded);
}

#[test]
fn recover_worker_requeues_a_crashed_nodes_tasks() {
    let db = db_or_skip!();
    {
        let s = db.store("host-1");
        for id in ["a", "b", "c"] {
            s.enqueue(new_task(id, Priority::Medium)).unwrap();
        }
        s.claim("host-1:111:w0", &[], LEASE, T0).unwrap().unwrap();
        s.claim("host-1:111:w1", &[], LEASE, T0).unwrap().unwrap();
        s.claim("host-2:222:w0", &[], LEASE, T0).unwrap().unwrap();
    }
    let s = db.store("host-1");
    assert_eq!(s.counts().unwrap()["running"], 3);
    assert_eq!(s.recover_worker(Some("host-1:111:")).unwrap(), ["a", "b"]);
    for id in ["a", "b"] {
        let att = s.attempts(id).unwrap();
        assert_eq!(att[0].outcome.as_deref(), Some("interrupted"));
        assert!(att[0].finished_at_ms.is_some());
    }
    assert_eq!(s.get("c").unwrap().unwrap().state, TaskState::Running);
    assert_eq!(s.recover_worker(None).unwrap(), ["c"]);
    assert!(s.recover_worker(None).unwrap().is_empty());
    assert_eq!(s.counts().unwrap()["queued"], 3);
}

#[test]
fn two_nodes_connecting_at_once_both_migrate_safely() {
    let db = db_or_skip!();
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|n| {
            let url = db.url.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                PostgresStore::connect(&url, &format!("node{n}"))
            })
        })
        .collect();
    let stores: Vec<PostgresStore> = handles
        .into_iter()
        .map(|h| h.join().unwrap().expect("both nodes connect"))
        .collect();
    let versions: Vec<i64> = db
        .client()
        .query("SELECT version FROM orca_schema ORDER BY version", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1, 2, 3, 4], "each migration applied once");
    stores[0].enqueue(new_task("a", Priority::Medium)).unwrap();
    assert_eq!(
        stores[1]
            .claim("node1:w0", &[], LEASE, T0)
            .unwrap()
            .unwrap()
            .id,
        "a"
    );
    // A third start finds the schema current and changes nothing.
    drop(db.store("node2"));
    let n: i64 = db
        .client()
        .query_one("SELECT count(*) FROM orca_schema", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 4);
}

#[test]
fn a_database_from_a_newer_orca_is_refused() {
    let db = db_or_skip!();
    drop(db.store("n"));
    db.client()
        .batch_execute("INSERT INTO orca_schema (version) VALUES (42)")
        .unwrap();
    let err = PostgresStore::connect(&db.url, "n").unwrap_err();
    match &err {
        StoreError::NewerSchema {
            found, supported, ..
        } => {
            assert_eq!(*found, 42);
            assert!(*supported < 42);
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    assert!(err.to_string().contains("upgrade orca"), "{err}");
}

#[test]
fn a_server_that_cannot_be_reached_is_a_clear_error_naming_host_and_database() {
    // Port 1 on this machine: nothing listens there.
    let err =
        PostgresStore::connect("postgres://orca:hunter2@127.0.0.1:1/fleetdb", "n").unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, StoreError::Unsupported { .. }), "{err:?}");
    assert_eq!(err.exit_code(), 2);
    assert!(
        msg.contains("127.0.0.1:1") && msg.contains("fleetdb"),
        "{msg}"
    );
    assert!(msg.contains("check that the server runs"), "{msg}");
    assert!(!msg.contains("hunter2"), "the password is shown: {msg}");
    let bad = PostgresStore::connect("postgres://h:notaport/db", "n").unwrap_err();
    assert!(bad.to_string().contains("postgres://USER"), "{bad}");
    assert!(matches!(
        PostgresStore::connect(&admin_url(), " "),
        Err(StoreError::Invalid(_))
    ));
}

#[test]
fn a_write_from_another_node_changes_the_listening_token() {
    let db = db_or_skip!();
    let daemon = db.store("daemon");
    let cli = db.store("cli");
    assert!(daemon.listening());
    let t0 = daemon.changes().unwrap();
    cli.enqueue(new_task("a", Priority::Medium)).unwrap();
    wait_until("the enqueue's notification", || {
        daemon.changes().unwrap() != t0
    });
    let t1 = daemon.changes().unwrap();
    cli.request_cancel("a", T0).unwrap();
    wait_until("the cancel's notification", || {
        daemon.changes().unwrap() != t1
    });
    // Writes that change nothing send nothing: a later write is the next change seen.
    let t2 = daemon.changes().unwrap();
    assert!(cli.requeue_expired(T0).unwrap().is_empty());
    assert_eq!(
        cli.request_cancel("a", T0).unwrap(),
        CancelOutcome::AlreadyFinished(TaskState::Cancelled)
    );
    cli.enqueue(new_task("b", Priority::Medium)).unwrap();
    wait_until("the second enqueue's notification", || {
        daemon.changes().unwrap() != t2
    });
    assert_eq!(
        daemon.changes().unwrap().0,
        t2.0 + 1,
        "one notification: the no-op writes sent none"
    );
}

/// The change signal wakes a listening handle for another handle's write, at once, and
/// not for its own writes (they are neither counted nor signalled).
#[test]
fn the_change_signal_fires_for_other_handles_writes_only() {
    let db = db_or_skip!();
    let daemon = db.store("daemon");
    let cli = db.store("cli");
    let signal = daemon
        .change_signal()
        .expect("a listening store has a signal");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let fires = |within: Duration| {
        rt.block_on(async {
            tokio::time::timeout(within, signal.notified())
                .await
                .is_ok()
        })
    };
    // Whatever the set-up sent (the listener's own start) is drained first.
    while fires(Duration::from_millis(300)) {}
    let t0 = daemon.changes().unwrap();
    daemon.enqueue(new_task("own", Priority::Medium)).unwrap();
    assert!(!fires(Duration::from_millis(500)), "its own write woke it");
    assert_eq!(daemon.changes().unwrap(), t0, "its own write was counted");
    cli.enqueue(new_task("other", Priority::Medium)).unwrap();
    assert!(
        fires(Duration::from_secs(10)),
        "another handle's write did not wake it"
    );
    assert_ne!(daemon.changes().unwrap(), t0);
    assert!(db.poll_store("poller").change_signal().is_none());
}

#[test]
fn a_poll_only_token_changes_with_every_committed_change_and_only_then() {
    let db = db_or_skip!();
    let daemon = db.poll_store("daemon");
    let cli = db.store("cli");
    assert!(!daemon.listening());
    let t0 = daemon.changes().unwrap();
    assert_eq!(daemon.changes().unwrap(), t0, "stable without writes");
    cli.enqueue(new_task("a", Priority::Medium)).unwrap();
    let t1 = daemon.changes().unwrap();
    assert_ne!(t1, t0, "committed before enqueue returned");
    // A claim, a heartbeat and writes that change nothing are no news for other nodes.
    let rec = cli.claim("cli:w0", &[], LEASE, T0).unwrap().unwrap();
    let t2 = daemon.changes().unwrap();
    assert_eq!(t2, t1, "a claim counted as a change");
    assert!(cli.heartbeat(&rec.id, "cli:w0", LEASE, T0 + 1).unwrap());
    assert!(cli.requeue_expired(T0 + 2).unwrap().is_empty());
    assert_eq!(daemon.changes().unwrap(), t2);
    cli.request_cancel("a", T0 + 3).unwrap();
    assert_ne!(daemon.changes().unwrap(), t2);
}

#[test]
fn a_read_only_database_is_reported_by_check_writable_and_by_writes() {
    let db = db_or_skip!();
    drop(db.store("n"));
    db.client()
        .batch_execute(&format!(
            "ALTER DATABASE {} SET default_transaction_read_only = on",
            db.name
        ))
        .unwrap();
    // Migrations are done: a read-only server can still be read.
    let s = db.poll_store("n");
    let err = s.check_writable().unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
    assert!(err.to_string().contains("read-only"), "{err}");
    assert_eq!(err.exit_code(), 2);
    assert!(matches!(
        s.enqueue(new_task("a", Priority::Medium)),
        Err(StoreError::ReadOnly { .. })
    ));
    assert!(s.list(None).unwrap().is_empty());
}

#[test]
fn nodes_register_heartbeat_and_are_listed() {
    let db = db_or_skip!();
    let a = db.store("node-a");
    let b = db.store("node-b");
    a.register_node(&["gpu".into(), "repo-a".into()], 4, T0)
        .unwrap();
    b.register_node(&[], 2, T0 + 10).unwrap();
    assert!(a.node_heartbeat(3, T0 + 5_000).unwrap());
    let all = b.nodes(None).unwrap();
    let ids: Vec<&str> = all.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["node-a", "node-b"]);
    assert_eq!(all[0].labels, ["gpu", "repo-a"]);
    assert_eq!((all[0].running, all[0].max_running), (3, 4));
    assert_eq!(
        (all[0].started_at_ms, all[0].heartbeat_at_ms),
        (T0, T0 + 5_000)
    );
    let live: Vec<String> = b
        .nodes(Some(T0 + 1_000))
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(live, ["node-a"], "node-b's heartbeat is older");
    // Registering again (a restart) resets the row; unregistering removes it.
    a.register_node(&["gpu".into()], 4, T0 + 6_000).unwrap();
    assert_eq!(a.nodes(None).unwrap()[0].running, 0);
    a.unregister_node().unwrap();
    assert!(!a.node_heartbeat(1, T0 + 7_000).unwrap(), "the row is gone");
    assert_eq!(b.nodes(None).unwrap().len(), 1);
}

#[test]
fn the_store_runs_on_tokio_blocking_threads() {
    let db = db_or_skip!();
    let store: Arc<dyn Store> = pg::open(&db.url, "async-node", &PgOptions::default()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let s = Arc::clone(&store);
        let done = tokio::task::spawn_blocking(move || {
            s.enqueue(new_task("a", Priority::Medium)).unwrap();
            let rec = s.claim("w", &[], LEASE, T0).unwrap().unwrap();
            assert_eq!(rec.id, "a");
            s.finish("a", "w", finish(TaskState::Succeeded, T0 + 1))
                .unwrap()
        })
        .await
        .unwrap();
        assert_eq!(done.state, TaskState::Succeeded);
        let s = Arc::clone(&store);
        let got = tokio::task::block_in_place(|| s.get("a").unwrap().unwrap());
        assert_eq!(got.state, TaskState::Succeeded);
        assert_eq!(store.describe().kind, "postgres");
        // The last handle goes here, on the runtime's thread: closing the connections must
        // not block on their own runtimes here (that panics; they close on a thread).
        drop(store);
    });
}

/// What a node publishes for other commands (its settings for `status`) is read back.
#[test]
fn meta_documents_are_published_and_read_back() {
    let db = db_or_skip!();
    let a = PostgresStore::connect(&db.url, "node-a").unwrap();
    let b = PostgresStore::connect(&db.url, "node-b").unwrap();
    assert_eq!(b.get_meta("daemon_settings").unwrap(), None);
    a.put_meta("daemon_settings", &json!({"pid": 1})).unwrap();
    a.put_meta("daemon_settings", &json!({"pid": 2})).unwrap();
    assert_eq!(
        b.get_meta("daemon_settings").unwrap(),
        Some(json!({"pid": 2}))
    );
}

/// Ends every server connection to the test database but `keep`'s own (as a server restart
/// or a network cut would); returns how many.
fn cut_connections(keep: &mut postgres::Client) -> i64 {
    keep.query_one(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
        &[],
    )
    .unwrap()
    .get(0)
}

#[test]
fn lost_connections_are_replaced_and_the_change_feed_comes_back() {
    let db = db_or_skip!();
    let daemon = db.store("daemon");
    let cli = db.store("cli");
    let t0 = daemon.changes().unwrap();
    cli.enqueue(new_task("a", Priority::Medium)).unwrap();
    // The enqueue's own notification first: arriving after `before`, it would pass for the
    // reconnection below while the listener has not noticed the cut yet.
    wait_until("the enqueue's notification", || {
        daemon.changes().unwrap() != t0
    });
    let before = daemon.changes().unwrap();
    let mut admin = db.client();
    assert!(
        cut_connections(&mut admin) >= 3,
        "pools and listener were cut"
    );
    // The feed notices, reconnects and counts that as a change (something may be missed).
    wait_until("the change feed to reconnect", || {
        daemon.listening() && daemon.changes().unwrap() != before
    });
    // A call on a cut pooled connection may fail once, naming the database; then the pool
    // opens a new one.
    let mut answers = Vec::new();
    for _ in 0..(pg::DEFAULT_POOL_SIZE + 1) {
        answers.push(cli.get("a"));
    }
    for a in &answers {
        if let Err(e) = a {
            assert!(e.to_string().contains(&db.name), "{e}");
        }
    }
    assert!(answers.last().unwrap().as_ref().unwrap().is_some());
    let t = daemon.changes().unwrap();
    let mut done = false;
    for _ in 0..(pg::DEFAULT_POOL_SIZE + 1) {
        if cli.request_cancel("a", T0).is_ok() {
            done = true;
            break;
        }
    }
    assert!(done, "a write goes through on a new connection");
    wait_until("the cancel's notification after the reconnect", || {
        daemon.changes().unwrap() != t
    });
}

#[test]
fn a_row_held_by_another_transaction_too_long_is_busy_not_a_hang() {
    let db = db_or_skip!();
    let s = db.store("n");
    s.enqueue(new_task("a", Priority::Medium)).unwrap();
    let mut other = db.client();
    let mut tx = other.transaction().unwrap();
    tx.execute("SELECT 1 FROM orca_tasks WHERE id = 'a' FOR UPDATE", &[])
        .unwrap();
    // A claim skips the locked row at once; a cancel must wait for it, and gives up.
    assert_eq!(claim(&s, "w", T0), None);
    let err = s.request_cancel("a", T0).unwrap_err();
    assert!(matches!(err, StoreError::Busy { .. }), "{err:?}");
    assert!(err.to_string().contains(&db.name), "{err}");
    tx.rollback().unwrap();
    assert_eq!(s.request_cancel("a", T0).unwrap(), CancelOutcome::Cancelled);
}

#[test]
fn a_damaged_record_is_reported_naming_the_task_and_the_column() {
    let db = db_or_skip!();
    let s = db.store("n");
    s.enqueue(new_task("ok", Priority::Medium)).unwrap();
    s.enqueue(new_task("broken", Priority::Medium)).unwrap();
    db.client()
        .batch_execute("UPDATE orca_tasks SET task_json = 'not json' WHERE id = 'broken'")
        .unwrap();
    let err = s.get("broken").unwrap_err();
    match &err {
        StoreError::Corrupt { id, detail, .. } => {
            assert_eq!(id, "broken");
            assert!(detail.contains("task_json"), "{detail}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(err.to_string().contains(&db.name), "{err}");
    assert_eq!(
        s.get("ok").unwrap().unwrap().id,
        "ok",
        "the others still read"
    );
}

/// Throughput probe (prints, never asserts timing): 3 nodes running 900 tasks through
/// claim and finish_claimed (which claims the next), each call its own transaction.
#[test]
fn throughput_probe_three_nodes() {
    let db = db_or_skip!();
    let s = db.store("origin");
    s.enqueue_many(
        &(0..900)
            .map(|i| new_task(&format!("p{i:03}"), Priority::Medium))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let start = Instant::now();
    let handles: Vec<_> = (0..3)
        .map(|n| {
            let node = db.store(&format!("node{n}"));
            std::thread::spawn(move || {
                let worker = format!("node{n}:w0");
                let mut done = 0;
                let mut current = node.claim(&worker, &[], LEASE, T0).unwrap();
                while let Some(rec) = current {
                    done += 1;
                    current = node
                        .finish_claimed(
                            &rec,
                            &worker,
                            finish(TaskState::Succeeded, T0),
                            Some(NextClaim {
                                labels: &[],
                                lease_ms: LEASE,
                            }),
                        )
                        .unwrap()
                        .next;
                }
                done
            })
        })
        .collect();
    let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, 900);
    let took = start.elapsed();
    eprintln!(
        "postgres store throughput: 900 tasks on 3 nodes in {took:?} ({:.0} tasks/s)",
        900.0 / took.as_secs_f64()
    );
}

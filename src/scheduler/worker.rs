//! Workers: one attempt of a claimed task, from its working folder to its recorded end.
//! The daemon ([`super::daemon`]) claims and wires; what follows an attempt is [`policy`]'s.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::daemon::{Daemon, FIRST_PROGRESS_AFTER, SMALL_FOLDER_ENTRIES};
use super::finalize::RunEnd;
use super::policy::{self, Next, Situation};
use super::resume;
use crate::artifacts::result::{ResultError, ResultStatus};
use crate::clock::now_ms;
use crate::config::Config;
use crate::events::{Event, EventKind};
use crate::runner::changes::Snapshot;
use crate::runner::{Outcome, Progress, RunOutcome, RunRequest};
use crate::store::{Finish, TaskRecord};
use crate::task;

impl Daemon {
    /// Runs one attempt of a claimed task and records what happened. Returns the task the
    /// run's finish claimed next, already registered as running.
    pub(super) async fn work(
        self: &Arc<Self>,
        rec: TaskRecord,
        cancel: watch::Receiver<bool>,
    ) -> Option<(TaskRecord, watch::Receiver<bool>)> {
        let cfg = self.cfg();
        let node = cfg.node_id.clone();
        let attempt = rec.attempts;
        let Some(task) = rec.task.clone() else {
            self.fail_now(
                &rec,
                &node,
                "internal",
                "the task has no parsed task file in the store",
                None,
            );
            return None;
        };
        let resolved = match task::paths::resolve_task_paths(
            &task,
            &self.ws.root.join(&rec.file),
            &cfg.claude_base_cwd,
            &cfg.claude_allowed_root,
        ) {
            Ok(r) => r,
            Err(e) => {
                self.fail_now(&rec, &node, e.kind_name(), &e.message(), Some(e.hint()));
                return None;
            }
        };
        // `worktree: true`: the attempt runs in the task's git worktree (made or reused).
        let worktree = match self.worktree_for(&rec, &task, &resolved.working_dir).await {
            Ok(w) => w,
            Err(e) => {
                self.fail_now(&rec, &node, "worktree", &e.to_string(), Some(e.hint()));
                return None;
            }
        };
        let (open_root, open_dir) = match &worktree {
            Some(w) => (
                crate::verify::worktree::worktrees_dir(&self.ws.state_dir()),
                w.dir.clone(),
            ),
            None => (
                cfg.claude_allowed_root.clone(),
                resolved.working_dir.clone(),
            ),
        };
        // Opened once beneath the allowed root (or Orca's worktrees folder), following no
        // link: the agent starts in this very folder, whatever its path names by then.
        let opened = match crate::runner::workdir::open_beneath(&open_root, &open_dir) {
            Ok(o) => o,
            // Out of file descriptors or memory: as transient as an agent that cannot start
            // for the same reason (retried with backoff, then failed with the limit to raise).
            Err(e) if e.is_resource_limit() => {
                let out = self.no_run(Outcome::Transient {
                    reason: format!("{e} ({})", e.limit_reached().unwrap_or_default()),
                });
                return self
                    .record_off_thread(rec, node, out, None, Vec::new(), Default::default())
                    .await;
            }
            Err(e) => {
                self.fail_now(
                    &rec,
                    &node,
                    "working_dir",
                    &e.to_string(),
                    Some(e.hint().into()),
                );
                return None;
            }
        };
        let env = crate::runner::agent_env::for_agent(&cfg);
        let resumed = self.resume_for(&rec, &task, &env, &opened.path);
        // A follow-up (a reply to a task's notification) resumes the session it continues.
        let follow_up = match &resumed {
            Some(_) => None,
            None => self.follow_up_session(&rec, &task, &env, &opened.path),
        };
        let prompt = match &resumed {
            Some((_, why)) => resume::continuation_prompt(why),
            None => crate::runner::prompt::build_prompt(&task),
        };
        let req = RunRequest {
            task_id: rec.id.clone(),
            attempt,
            prompt,
            working_dir: opened.path.clone(),
            working_dir_fd: Some(Arc::new(opened.fd)),
            timeout: Duration::from_secs(task.timeout_sec.unwrap_or(cfg.claude_timeout_sec)),
            max_turns: task.max_turns.or(if cfg.claude_max_turns > 0 {
                Some(cfg.claude_max_turns)
            } else {
                None
            }),
            model: task.model.clone().or(cfg.claude_model.clone()),
            skip_permissions: cfg.claude_skip_permissions,
            resume_session: resumed.as_ref().map(|(sid, _)| sid.clone()).or(follow_up),
            raw_log: self.ws.run_log(&rec.id, attempt),
            env,
            remove_env: crate::runner::agent_env::withheld(&cfg),
        };
        let working_dir = opened.path.display().to_string();
        let skip = Arc::clone(&self.own_folders);
        let before = self.snapshot_before(&rec.id, &opened.path, &skip).await;
        let git_base = if let Some(w) = &worktree {
            Some(w.base.clone())
        } else if !crate::verify::git::may_be_in_repo(&opened.path) {
            // A few `stat`s: no repository, no trip to a blocking thread.
            None
        } else {
            let d = opened.path.clone();
            tokio::task::spawn_blocking(move || crate::verify::git::base(&d))
                .await
                .ok()
                .flatten()
        };
        let agent = self.current_agent();
        self.events.publish(Event::attempt(
            &rec.id,
            attempt,
            EventKind::ClaudeStarted {
                agent: agent.name().to_owned(),
                bin: cfg.claude_bin.clone(),
                resume_session: req.resume_session.clone(),
                timeout_sec: req.timeout.as_secs(),
                working_dir: working_dir.clone(),
            },
        ));
        let (ptx, prx) = mpsc::unbounded_channel::<Box<Progress>>();
        let round_req = req.clone();
        let agent_started = Instant::now();
        // Progress is forwarded alongside the run, in this task (it ends when the run drops
        // its sender): no task of its own to start and wake on another thread.
        let (mut out, ()) = tokio::join!(
            agent.run(req, cancel.clone(), ptx),
            forward_progress(
                Arc::clone(self),
                rec.id.clone(),
                attempt,
                node.clone(),
                agent.name().to_owned(),
                prx
            ),
        );
        if out.agent_version.is_none() {
            out.agent_version = agent.version().await;
        }
        let agent_time = agent_started.elapsed();
        let changed = changed_files(before.clone(), Arc::clone(&skip)).await;
        self.events.publish(Event::attempt(
            &rec.id,
            attempt,
            EventKind::ClaudeFinished {
                agent: out.agent.clone(),
                changed_files: changed.len(),
                cost_usd: out.cost_usd,
                exit_code: out.exit_code,
                num_turns: out.num_turns,
                outcome: out.outcome.name().to_owned(),
                session_id: out.session_id.clone(),
            },
        ));
        let (mut verified, mut changed) = self
            .verify_and_fix(
                super::fixing::Fixing {
                    rec: &rec,
                    task: &task,
                    cfg: &cfg,
                    node: &node,
                    req: round_req,
                    cancel,
                    agent_time,
                    git_base,
                    before,
                    changed,
                },
                &mut out,
            )
            .await;
        if let Some(w) = worktree {
            self.finish_worktree(&rec, &task, &out, w, &mut verified, &mut changed)
                .await;
        }
        self.record_off_thread(rec, node, out, Some(working_dir), changed, verified)
            .await
    }

    /// Runs the task's checks after a finished agent (on a blocking thread), one
    /// `check_finished` each, and gathers the git facts and strict mode's verdict. A cancel
    /// stops the checks (`cancelled`).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn verify_attempt(
        &self,
        rec: &TaskRecord,
        task: &task::Task,
        cfg: &Config,
        out: &RunOutcome,
        dir: &Path,
        git_base: Option<crate::verify::git::Base>,
        cancel: &watch::Receiver<bool>,
    ) -> crate::verify::Verified {
        let run = crate::verify::runs_checks(&out.outcome);
        let criteria = task.success_criteria.clone();
        let timeout = Duration::from_secs(
            task.check_timeout_sec
                .unwrap_or(crate::verify::check::DEFAULT_TIMEOUT_SEC),
        );
        let remove = crate::runner::agent_env::withheld(cfg);
        let d = dir.to_path_buf();
        let rx = cancel.clone();
        // Nothing to run and no repository: no trip to a blocking thread.
        let idle = (!run || criteria.is_empty()) && git_base.is_none();
        let (checks, git, cancelled) = if idle {
            (Vec::new(), None, false)
        } else {
            tokio::task::spawn_blocking(move || {
                let is_cancelled = move || *rx.borrow();
                let checks = if run {
                    crate::verify::check::run_checks(&criteria, &d, timeout, &remove, &is_cancelled)
                } else {
                    Vec::new()
                };
                let cancelled = run && is_cancelled();
                (
                    checks,
                    git_base.map(|b| crate::verify::git::info(b, &d)),
                    cancelled,
                )
            })
            .await
            .unwrap_or_default()
        };
        for c in &checks {
            self.events.publish(Event::attempt(
                &rec.id,
                rec.attempts,
                EventKind::CheckFinished {
                    command: c.run.command.clone(),
                    duration_ms: c.run.duration_ms,
                    exit_code: c.run.exit_code,
                    timed_out: c.run.timed_out,
                    verdict: crate::verify::verdict_name(c.verdict).to_owned(),
                },
            ));
        }
        let strict = task.strict.unwrap_or(cfg.strict_criteria);
        let strict_failure = crate::verify::strict_failure(strict, &out.outcome, &checks);
        crate::verify::Verified {
            checks,
            git,
            strict_failure,
            rounds: None,
            cancelled,
            claims: None,
        }
    }

    /// [`Self::record_outcome`] off the runtime's threads (store writes, result and summary
    /// files).
    async fn record_off_thread(
        self: &Arc<Self>,
        rec: TaskRecord,
        node: String,
        out: RunOutcome,
        working_dir: Option<String>,
        changed: Vec<String>,
        verified: crate::verify::Verified,
    ) -> Option<(TaskRecord, watch::Receiver<bool>)> {
        let me = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            me.record_outcome(&rec, &node, &out, working_dir, changed, verified)
        })
        .await
        .unwrap_or_else(|e| {
            tracing::error!("recording the end of an attempt stopped: {e}; the task is recovered on the next start");
            None
        })
    }

    /// The outcome of an attempt whose agent never started.
    fn no_run(&self, outcome: Outcome) -> RunOutcome {
        RunOutcome::bare(self.current_agent().name(), outcome)
    }

    /// The session to resume for this attempt: the previous attempt's, when it was cut off
    /// (see [`resume::resumable_session`]) and the CLI still has its transcript. Marks the
    /// attempt as resumed.
    fn resume_for(
        &self,
        rec: &TaskRecord,
        task: &task::Task,
        env: &[(String, String)],
        cwd: &Path,
    ) -> Option<(String, &'static str)> {
        if rec.attempts < 2 {
            return None;
        }
        let attempts = tokio::task::block_in_place(|| self.store.attempts(&rec.id)).ok()?;
        let (sid, why) = resume::resumable_session(&attempts, rec.attempts, task.resume_on_retry)?;
        let agent = self.current_agent();
        if let Err(why_not) = agent.can_resume(&sid, cwd, env) {
            tracing::info!(task = %rec.id, session = %sid, "not resuming: {why_not}");
            return None;
        }
        if let Err(e) =
            tokio::task::block_in_place(|| self.store.mark_resumed(&rec.id, rec.attempts))
        {
            tracing::warn!(task = %rec.id, "cannot mark the attempt as resumed: {e}");
        }
        tracing::info!(task = %rec.id, session = %sid, "resuming the agent's session ({why})");
        Some((sid, why))
    }

    /// The session a follow-up task resumes (`x-orca-resume-session`, the session of the
    /// task it continues), when the agent still has it. Marks the attempt as resumed.
    fn follow_up_session(
        &self,
        rec: &TaskRecord,
        task: &task::Task,
        env: &[(String, String)],
        cwd: &Path,
    ) -> Option<String> {
        let sid = crate::ops::origin::resume_session(task)?;
        if let Err(why_not) = self.current_agent().can_resume(&sid, cwd, env) {
            tracing::info!(task = %rec.id, session = %sid, "not resuming the session of the task it follows: {why_not}");
            return None;
        }
        if let Err(e) = self.store.mark_resumed(&rec.id, rec.attempts) {
            tracing::warn!(task = %rec.id, "cannot mark the attempt as resumed: {e}");
        }
        tracing::info!(task = %rec.id, session = %sid, "resuming the session of the task it follows");
        Some(sid)
    }

    /// The snapshot of the working folder before the task's first attempt (kept across
    /// retries), or a new one.
    async fn snapshot_before(
        &self,
        id: &str,
        dir: &Path,
        skip: &Arc<[std::path::PathBuf]>,
    ) -> Snapshot {
        if let Some(s) = self.snapshots.lock().ok().and_then(|m| m.get(id).cloned()) {
            return s;
        }
        let snap = match Snapshot::take_small(dir, skip, SMALL_FOLDER_ENTRIES) {
            Some(s) => s,
            None => {
                let (d, sk) = (dir.to_path_buf(), Arc::clone(skip));
                match tokio::task::spawn_blocking(move || Snapshot::take(&d, &sk)).await {
                    Ok(s) => s,
                    Err(_) => Snapshot::take(dir, skip),
                }
            }
        };
        if let Ok(mut m) = self.snapshots.lock() {
            m.insert(id.to_owned(), snap.clone());
        }
        snap
    }

    /// Records how an attempt ended, as [`policy::next`] decides: finished (result and
    /// archive follow), back to the queue with backoff, or released (the daemon stops).
    /// Runs on a blocking thread (store writes and artifact files). Returns the task the
    /// finish claimed next, already registered as running.
    fn record_outcome(
        &self,
        rec: &TaskRecord,
        node: &str,
        out: &RunOutcome,
        working_dir: Option<String>,
        changed: Vec<String>,
        mut verified: crate::verify::Verified,
    ) -> Option<(TaskRecord, watch::Receiver<bool>)> {
        let id = rec.id.as_str();
        let attempt = rec.attempts;
        let cfg = self.cfg();
        let situation = self.situation(rec, &out.outcome, &cfg);
        let (status, failure) = match policy::next(&out.outcome, &situation) {
            Next::Finish { status, failure } => (status, failure),
            Next::Retry {
                reason,
                retry,
                delay,
            } => {
                self.retry_later(rec, node, out, &reason, retry, delay);
                return None;
            }
            Next::Release => {
                if let Err(e) = self.store.release(id, node, "daemon stopped") {
                    tracing::error!(task = %id, "cannot put the task back in the queue: {e}");
                }
                return None;
            }
        };
        let redactor = crate::config::redactor_for(&self.ws.root);
        // Strict mode: a success whose checks are not all met is a failure.
        let strict_failure = verified.strict_failure.take();
        let decided = policy::under_strict(status, strict_failure.is_some());
        let strict_error = strict_failure.filter(|_| decided != status).map(|e| {
            let mut e = json!(e);
            redactor.redact_json(&mut e);
            e
        });
        let state = decided.state();
        let error = strict_error.or(failure.map(|f| {
            let mut e = json!(ResultError {
                kind: f.kind.as_str().to_owned(),
                message: f.message,
                line: None,
                hint: f.hint,
            });
            // Agent text (an error quoting a key) is stored redacted, as results are.
            redactor.redact_json(&mut e);
            e
        }));
        let finish = Finish {
            state,
            outcome: state.to_string(),
            error,
            exit_code: out.exit_code,
            session_id: out.session_id.clone(),
            now_ms: now_ms(),
        };
        let ended = match self.until_recorded("record the end of the task", || {
            self.store
                .finish_claimed(rec, node, finish.clone(), self.next_claim(&cfg))
        }) {
            Ok(ended) => ended,
            Err(e) => {
                tracing::error!(task = %id, "cannot record the end of the task: {e}");
                return None;
            }
        };
        // Running from now on (before this task's finalize, which takes a while).
        let next = ended.next.map(|n| {
            let rx = self.register(&n.id);
            self.claimed_by_workers.store(true, Ordering::SeqCst);
            (n, rx)
        });
        let done = ended.record;
        match decided {
            ResultStatus::TimedOut => {
                self.events
                    .publish(Event::attempt(id, attempt, EventKind::TimedOut {}))
            }
            ResultStatus::Cancelled => {
                self.events
                    .publish(Event::attempt(id, attempt, EventKind::cancelled("running")))
            }
            _ => {}
        }
        if let Ok(mut m) = self.snapshots.lock() {
            m.remove(id);
        }
        self.finalize_run(
            &done,
            RunEnd {
                outcome: out,
                attempts: ended.attempts,
                working_dir,
                changed_files: changed,
                verified,
                judged: None,
            },
        );
        next
    }

    /// What the policy needs besides the outcome. The store is asked only where the
    /// outcome's next step depends on it (retries used, a cancel request).
    fn situation(&self, rec: &TaskRecord, outcome: &Outcome, cfg: &Config) -> Situation {
        let asks = matches!(
            outcome,
            Outcome::TimedOut | Outcome::Transient { .. } | Outcome::Cancelled
        );
        let retries_done = if asks {
            self.store
                .attempts(&rec.id)
                .map(|a| {
                    a.iter()
                        .filter(|x| x.outcome.as_deref() == Some("retry"))
                        .count() as u32
                })
                .unwrap_or(0)
        } else {
            0
        };
        let cancel_requested = asks && self.store.is_cancel_requested(&rec.id).unwrap_or(false);
        Situation {
            attempt: rec.attempts,
            retries_done,
            max_retries: rec.max_retries,
            resume_on_retry: rec.task.as_ref().is_some_and(|t| t.resume_on_retry),
            cancel_requested,
            shutting_down: self.shutting_down.load(Ordering::SeqCst),
            retry_base: Duration::from_millis(cfg.retry_base_ms),
        }
    }

    /// Puts the task back in the queue, to run again after `delay`.
    fn retry_later(
        &self,
        rec: &TaskRecord,
        node: &str,
        out: &RunOutcome,
        reason: &str,
        retry: u32,
        delay: Duration,
    ) {
        let id = rec.id.as_str();
        let attempt = rec.attempts;
        let at = now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
        match self.store.requeue(
            id,
            node,
            at,
            reason,
            out.exit_code,
            out.session_id.as_deref(),
        ) {
            Ok(()) => {
                self.next_wake_stale.store(true, Ordering::SeqCst);
                self.events.publish(Event::attempt(
                    id,
                    attempt,
                    EventKind::Retry {
                        delay_ms: delay.as_millis() as u64,
                        max_retries: rec.max_retries,
                        reason: reason.to_owned(),
                        retry,
                        session_id: out.session_id.clone(),
                    },
                ));
                tracing::warn!(task = %id, on_console = true, "attempt {attempt} failed ({reason}); retry {retry} in {delay:?}");
            }
            Err(e) => tracing::error!(task = %id, "cannot requeue: {e}"),
        }
    }

    /// Ends a claimed task as failed before its agent started.
    fn fail_now(
        &self,
        rec: &TaskRecord,
        node: &str,
        kind: &str,
        message: &str,
        hint: Option<String>,
    ) {
        let out = self.no_run(Outcome::TaskFailed {
            reason: message.to_owned(),
        });
        let error = json!(ResultError {
            kind: kind.to_owned(),
            message: message.to_owned(),
            line: None,
            hint
        });
        let finish = Finish {
            state: ResultStatus::Failed.state(),
            outcome: ResultStatus::Failed.as_str().into(),
            error: Some(error),
            exit_code: None,
            session_id: None,
            now_ms: now_ms(),
        };
        // Store and files block: off the runtime's threads.
        let ended = tokio::task::block_in_place(|| {
            self.until_recorded("record the failure", || {
                self.store.finish_claimed(rec, node, finish.clone(), None)
            })
        });
        match ended {
            Ok(ended) => tokio::task::block_in_place(|| {
                self.finalize_run(
                    &ended.record,
                    RunEnd {
                        outcome: &out,
                        attempts: ended.attempts,
                        working_dir: None,
                        changed_files: Vec::new(),
                        verified: Default::default(),
                        judged: None,
                    },
                )
            }),
            Err(e) => tracing::error!(task = %rec.id, "cannot record the failure: {e}"),
        }
    }
}

/// The files changed in the working folder since `before` (off the async threads).
pub(super) async fn changed_files(
    before: Snapshot,
    skip: Arc<[std::path::PathBuf]>,
) -> Vec<String> {
    if let Some(changed) = before.changed_since_small(&skip, SMALL_FOLDER_ENTRIES) {
        return changed;
    }
    tokio::task::spawn_blocking(move || before.changed_since(&skip))
        .await
        .unwrap_or_default()
}

/// Records live progress: a `claude_progress` event whenever the turn or tool changes, and
/// the store's copy (for `status`/`show`; it carries the agent's pid and session, which
/// start-up recovery and resuming need) once the agent has run for [`FIRST_PROGRESS_AFTER`]
/// and then at most every 250 ms. A run that ends sooner costs no progress write at all: its
/// end is recorded next, with the session.
pub(super) async fn forward_progress(
    d: Arc<Daemon>,
    id: String,
    attempt: u32,
    node: String,
    agent_name: String,
    mut rx: mpsc::UnboundedReceiver<Box<Progress>>,
) {
    const EVERY: Duration = Duration::from_millis(250);
    let mut last: Option<(u32, Option<String>)> = None;
    let mut next_write = Instant::now() + FIRST_PROGRESS_AFTER;
    let mut pending: Option<Box<Progress>> = None;
    loop {
        // A report held back by the rate limit is stored when its turn comes, even if the
        // agent then stays quiet for a long time.
        let p = tokio::select! {
            p = rx.recv() => match p {
                Some(p) => p,
                None => break,
            },
            _ = tokio::time::sleep_until(next_write.into()), if pending.is_some() => {
                if let Some(p) = pending.take() {
                    store_progress(&d, &id, &node, attempt, &p);
                    next_write = Instant::now() + EVERY;
                }
                continue;
            }
        };
        let key = (p.turns, p.last_tool.clone());
        let changed = last.as_ref() != Some(&key);
        if changed {
            d.events.publish(Event::attempt(
                &id,
                attempt,
                EventKind::ClaudeProgress {
                    agent: agent_name.clone(),
                    cost_usd: p.cost_usd,
                    last_tool: p.last_tool.clone(),
                    last_tool_target: p.last_tool_target.clone(),
                    model: p.model.clone(),
                    pid: p.pid,
                    session_id: p.session_id.clone(),
                    turns: p.turns,
                    updated_at: crate::clock::now_rfc3339(),
                },
            ));
            last = Some(key);
        }
        if Instant::now() >= next_write {
            store_progress(&d, &id, &node, attempt, &p);
            next_write = Instant::now() + EVERY;
            pending = None;
        } else {
            pending = Some(p);
        }
    }
    // A report still held back when the agent ends is dropped: the attempt's end is
    // recorded next.
}

fn progress_json(attempt: u32, p: &Progress) -> serde_json::Value {
    json!({"attempt": attempt, "turns": p.turns, "last_tool": p.last_tool, "last_tool_target": p.last_tool_target,
           "cost_usd": p.cost_usd, "model": p.model, "pid": p.pid, "session_id": p.session_id,
           "updated_at": crate::clock::now_rfc3339()})
}

fn store_progress(d: &Daemon, id: &str, node: &str, attempt: u32, p: &Progress) {
    let v = progress_json(attempt, p);
    let stored =
        tokio::task::block_in_place(|| d.store.set_progress(id, node, &v, p.session_id.as_deref()));
    if let Err(e) = stored {
        tracing::warn!(task = %id, "cannot record progress: {e}");
    }
}

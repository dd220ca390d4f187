//! The daemon's side of mediation: routing a new task before it is queued (so before it
//! takes an agent slot) and judging a finished one after its slot is free, each in a task
//! of its own; the result is written once, after the LLM answered or the rules took over.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::daemon::Daemon;
use super::finalize::{self, RunEnd};
use crate::events::{Event, EventKind};
use crate::mediate::client::LlmError;
use crate::mediate::routing;
use crate::mediate::service::{self, check_folder};
use crate::mediate::verdicts::{Inputs, Judgement};
use crate::ops::ingest as record;
use crate::runner::RunOutcome;
use crate::store::{AttemptRecord, NewTask, TaskRecord};
use crate::verify::Verified;

/// Most bytes of `git diff` read for a summary.
const MAX_DIFF_BYTES: usize = 64 * 1024;

impl Daemon {
    /// At start: publishes the LLM state for `orca status` and warms the model with an
    /// empty request, so that the first task does not pay its load.
    pub(super) fn start_mediation(&self) {
        publish_state(self.store.as_ref(), &self.mediator);
        if let Some(llm) = self.mediator.llm().cloned() {
            tokio::spawn(async move {
                if let Err(e) = llm.client.warm().await {
                    tracing::warn!("LLM warm-up failed ({}): {e}", e.kind());
                    eprintln!("orca: LLM warm-up failed: {e}");
                }
            });
        }
    }

    /// At shutdown: lets the routings and summaries in flight end (each is bounded by the
    /// LLM's timeout and one retry), so that no result loses its run's data.
    pub(super) async fn wait_for_mediation(&self) {
        let cfg = self.cfg();
        let limit = std::time::Duration::from_secs(cfg.llm_timeout_sec * 2 + 5);
        let deadline = std::time::Instant::now() + limit;
        while self.mediator.busy_count() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Routes a task file just parsed: returns it to be queued now (nothing to route, or
    /// routed by the rules), or None when the LLM routes it (it is queued when done).
    pub(super) fn route_new(
        self: &Arc<Self>,
        mut new: NewTask,
        path: &Path,
        done: &mpsc::UnboundedSender<()>,
    ) -> Option<NewTask> {
        let cfg = self.cfg();
        let task = new.task.as_mut()?;
        // A priority other than the default was given; the default may have been (the file
        // says, read only then).
        let priority_given = task.priority != crate::task::Priority::default()
            || routing::front_has_priority(&std::fs::read_to_string(path).unwrap_or_default());
        let need = routing::need(task, priority_given);
        if !need.any() {
            return Some(new);
        }
        let file = path.to_path_buf();
        // The LLM routes unless there is none, its breaker is open, or it already has one
        // routing per agent slot waiting (then the rules, so that no slot waits for it).
        let failure = match self.mediator.llm() {
            None => None,
            Some(l) => match l.gate.open_secs() {
                Some(secs_left) => Some(LlmError::BreakerOpen { secs_left }),
                None => self.mediator.begin_routing(cfg.max_concurrent_tasks).err(),
            },
        };
        let llm = self.mediator.llm().filter(|_| failure.is_none()).cloned();
        let Some(llm) = llm else {
            let check = |t: &crate::task::Task| check_folder(&cfg, &file, t);
            let r = service::route_by_rules(task, need, check, failure.as_ref());
            if let Some(e) = &failure {
                fallback(&self.events, &new.desired_id, "routing", e);
            }
            routing::record(task, &r);
            new.priority = task.priority;
            return Some(new);
        };
        if !self.mediator.mark(&new.file) {
            self.mediator.end_routing();
            return None;
        }
        let me = Arc::clone(self);
        let done = done.clone();
        tokio::spawn(async move {
            let key = new.file.clone();
            if let Some(task) = new.task.as_mut() {
                let check = |t: &crate::task::Task| check_folder(&cfg, &file, t);
                let (r, failure) = service::route_task(Some(&llm), task, need, check).await;
                if let Some(e) = failure {
                    fallback(&me.events, &new.desired_id, "routing", &e);
                    let m = Arc::clone(&me);
                    let _ = tokio::task::spawn_blocking(move || {
                        publish_state(m.store.as_ref(), &m.mediator)
                    })
                    .await;
                }
                routing::record(task, &r);
                new.priority = task.priority;
            }
            me.mediator.end_routing();
            let me2 = Arc::clone(&me);
            let queued = tokio::task::spawn_blocking(move || {
                record::queue(me2.store.as_ref(), &me2.events, vec![new])
            })
            .await;
            match queued {
                Ok(answers) => {
                    for a in answers {
                        if let Err(e) = a {
                            tracing::error!(file = %key, "cannot queue the routed task (taken again at the next scan): {e}");
                        }
                    }
                }
                Err(e) => tracing::error!(file = %key, "queueing the routed task stopped: {e}"),
            }
            me.mediator.unmark(&key);
            let _ = done.send(());
        });
        None
    }

    /// Hands a just-finished task to the LLM for its summary and verdicts, when there is
    /// one and something to judge. The result is written by that task, after the answer or
    /// the fallback. False: finalize it now.
    pub(super) fn judge_later(&self, rec: &TaskRecord, end: &RunEnd<'_>) -> bool {
        let Some(llm) = self.mediator.llm().cloned() else {
            return false;
        };
        let output = end.outcome.output.clone().unwrap_or_default();
        if output.trim().is_empty() || rec.task.is_none() {
            return false;
        }
        if !self.mediator.mark(&rec.id) {
            return false;
        }
        let task = rec
            .task
            .clone()
            .unwrap_or_else(|| crate::task::Task::new("", ""));
        let decided: Vec<usize> = end.verified.checks.iter().map(|c| c.criterion).collect();
        let inputs = Inputs {
            title: task.title.clone(),
            prompt: task.prompt.clone(),
            status: crate::scheduler::finalize::status_of(rec.state)
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            output,
            changed_files: end.changed_files.clone(),
            diff: None,
            criteria: task
                .success_criteria
                .iter()
                .enumerate()
                .filter(|(i, _)| !decided.contains(i))
                .map(|(i, c)| (i, c.text.clone()))
                .collect(),
        };
        let owned = Owned {
            rec: rec.clone(),
            outcome: end.outcome.clone(),
            attempts: end.attempts.clone(),
            working_dir: end.working_dir.clone(),
            changed_files: end.changed_files.clone(),
            verified: end.verified.clone(),
        };
        let (ws, store, events, mediator) = (
            self.ws.clone(),
            Arc::clone(&self.store),
            self.events.clone(),
            Arc::clone(&self.mediator),
        );
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            mediator.unmark(&rec.id);
            return false;
        };
        rt.spawn(async move {
            let mut inputs = inputs;
            if let Some(dir) = owned.working_dir.clone() {
                inputs.diff = tokio::task::spawn_blocking(move || git_diff(Path::new(&dir)))
                    .await
                    .ok()
                    .flatten();
            }
            let judged = match service::judge(&llm, &inputs).await {
                Ok(j) => Judgement::Judged(j),
                Err(e) => {
                    fallback(&events, &owned.rec.id, "summary", &e);
                    let (s, m) = (Arc::clone(&store), Arc::clone(&mediator));
                    let _ = tokio::task::spawn_blocking(move || publish_state(s.as_ref(), &m)).await;
                    Judgement::Failed(format!("{}: {e}", e.kind()))
                }
            };
            let id = owned.rec.id.clone();
            let _ = tokio::task::spawn_blocking(move || {
                let end = RunEnd {
                    outcome: &owned.outcome,
                    attempts: owned.attempts,
                    working_dir: owned.working_dir,
                    changed_files: owned.changed_files,
                    verified: owned.verified,
                    judged: Some(judged),
                };
                if let Err(e) = finalize::finalize_run(
                    &ws,
                    store.as_ref(),
                    &events,
                    &owned.rec,
                    end,
                ) {
                    tracing::error!(task = %owned.rec.id, "cannot write the artifacts or archive the task file (will try again): {e}");
                }
            })
            .await;
            mediator.unmark(&id);
        });
        true
    }
}

/// What a judged task's finalize needs, owned by the mediation task.
struct Owned {
    rec: TaskRecord,
    outcome: RunOutcome,
    attempts: Vec<AttemptRecord>,
    working_dir: Option<String>,
    changed_files: Vec<String>,
    verified: Verified,
}

/// The working folder's uncommitted diff (tracked files), at most [`MAX_DIFF_BYTES`]; None
/// outside git or when git fails.
fn git_diff(dir: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["diff", "--no-color", "--no-ext-diff", "HEAD"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() || out.stdout.is_empty() {
        return None;
    }
    let n = out.stdout.len().min(MAX_DIFF_BYTES);
    let mut text = String::from_utf8_lossy(&out.stdout[..n]).into_owned();
    if out.stdout.len() > n {
        text.push_str(&format!(
            "\n[… truncated: {} more bytes of diff not shown]",
            out.stdout.len() - n
        ));
    }
    Some(text)
}

/// Publishes `llm_fallback` (and logs it).
fn fallback(events: &crate::events::EventBus, id: &str, stage: &str, e: &LlmError) {
    tracing::warn!(task = %id, "LLM {stage} fell back to the rules: {e}");
    events.publish(Event::task(
        id,
        EventKind::LlmFallback {
            message: e.to_string(),
            reason: e.kind().to_owned(),
            stage: stage.to_owned(),
        },
    ));
}

/// Puts the LLM state (method, model, why, breaker) in the store for `orca status`.
fn publish_state(store: &dyn crate::store::Store, mediator: &crate::mediate::service::Mediator) {
    if let Err(e) = store.put_meta(service::META_KEY, &mediator.state()) {
        tracing::warn!("cannot publish the LLM state for `orca status`: {e}");
    }
}

//! The fix loop of an attempt: its checks run after the agent; while some are unmet and
//! `fix_rounds` allow, the agent's session is resumed with the failures and the checks run
//! again (policy in [`crate::verify::rounds`]). Checks' time does not count as agent time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::daemon::Daemon;
use super::worker::{changed_files, forward_progress, outcome_name};
use crate::config::Config;
use crate::events::{Event, EventKind};
use crate::runner::changes::Snapshot;
use crate::runner::{Outcome, Progress, RunOutcome, RunRequest};
use crate::store::TaskRecord;
use crate::task;
use crate::verify::rounds::{self, Stop};
use crate::verify::worktree::{Worktree, WorktreeError};
use crate::verify::Verified;

/// What the fix loop needs of the attempt that has just run.
pub(super) struct Fixing<'a> {
    pub rec: &'a TaskRecord,
    pub task: &'a task::Task,
    pub cfg: &'a Config,
    pub node: &'a str,
    /// The attempt's request (its timeout is the agent's whole budget).
    pub req: RunRequest,
    pub cancel: watch::Receiver<bool>,
    /// Time the agent has used so far.
    pub agent_time: Duration,
    pub git_base: Option<crate::verify::git::Base>,
    /// The working folder before the attempt, and the files changed since.
    pub before: Snapshot,
    pub changed: Vec<String>,
}

impl Daemon {
    /// The git worktree a `worktree: true` task runs in: made on the first attempt, reused
    /// by retries (event `worktree_created` either way). None: the task has none.
    pub(super) async fn worktree_for(
        &self,
        rec: &TaskRecord,
        task: &task::Task,
        working_dir: &std::path::Path,
    ) -> Result<Option<Worktree>, WorktreeError> {
        if !task.worktree {
            return Ok(None);
        }
        let wts = crate::verify::worktree::worktrees_dir(&self.ws.state_dir());
        let (id, wd) = (rec.id.clone(), working_dir.to_path_buf());
        let w =
            tokio::task::spawn_blocking(move || crate::verify::worktree::prepare(&wts, &id, &wd))
                .await
                .map_err(|e| WorktreeError::Io {
                    path: working_dir.to_path_buf(),
                    reason: e.to_string(),
                })??;
        self.events.publish(Event::attempt(
            &rec.id,
            rec.attempts,
            EventKind::WorktreeCreated {
                base_commit: w.base.commit.clone(),
                branch: w.branch.clone(),
                created: w.created,
                path: w.path.display().to_string(),
            },
        ));
        Ok(Some(w))
    }

    /// After a worktree attempt: a success (strict mode's verdict included) is committed on
    /// the task's branch; the result's `git` and changed files come from git.
    pub(super) async fn finish_worktree(
        &self,
        rec: &TaskRecord,
        task: &task::Task,
        out: &RunOutcome,
        w: Worktree,
        verified: &mut Verified,
        changed: &mut Vec<String>,
    ) {
        let succeeded =
            matches!(out.outcome, Outcome::Succeeded) && verified.strict_failure.is_none();
        let title = task.title.clone().unwrap_or_else(|| rec.id.clone());
        let id = rec.id.clone();
        let done = tokio::task::spawn_blocking(move || {
            let commit = if succeeded {
                match crate::verify::worktree::commit(&w, &title, &id) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(task = %id, "cannot commit the worktree's changes: {e}");
                        None
                    }
                }
            } else {
                None
            };
            (
                crate::verify::worktree::info(&w, commit.as_deref()),
                crate::verify::worktree::changed_files(&w),
            )
        })
        .await;
        if let Ok((git, files)) = done {
            verified.git = Some(git);
            *changed = files;
        }
    }

    /// Runs the checks, then the fix rounds; `out` becomes the attempt's joined outcome.
    /// Returns the last verification (with `rounds`) and the files changed by the attempt.
    pub(super) async fn verify_and_fix(
        self: &Arc<Self>,
        f: Fixing<'_>,
        out: &mut RunOutcome,
    ) -> (Verified, Vec<String>) {
        let Fixing {
            rec,
            task,
            cfg,
            node,
            mut req,
            cancel,
            mut agent_time,
            git_base,
            before,
            mut changed,
        } = f;
        let dir = req.working_dir.clone();
        let mut verified = self
            .verify_attempt(rec, task, cfg, out, &dir, git_base.clone(), &cancel)
            .await;
        let max = task.fix_rounds.unwrap_or(0);
        let budget = req.timeout;
        let mut done = 0u32;
        let skip = Arc::clone(&self.own_folders);
        let stop = loop {
            if verified.cancelled || *cancel.borrow() {
                break Stop::Cancelled;
            }
            let left = budget.saturating_sub(agent_time);
            if let Err(stop) = rounds::next_round(done, max, &out.outcome, &verified.checks, left) {
                break stop;
            }
            done += 1;
            let commands = rounds::unmet_commands(&verified.checks);
            let fix = rounds::fix_prompt(done, max, &verified.checks);
            let agent = self.current_agent();
            // The round resumes the agent's session; when the agent cannot (it no longer
            // keeps it), it starts afresh with the task's prompt and the failures.
            let resume = out
                .session_id
                .clone()
                .filter(|sid| match agent.can_resume(sid, &dir, &req.env) {
                    Ok(()) => true,
                    Err(why) => {
                        tracing::info!(task = %rec.id, "fix round {done} starts a new session: {why}");
                        false
                    }
                });
            req.prompt = match resume {
                Some(_) => fix,
                None => format!("{}\n\n{fix}", crate::runner::prompt::build_prompt(task)),
            };
            req.resume_session = resume;
            req.timeout = left;
            let snap = {
                let (d, sk) = (dir.clone(), Arc::clone(&skip));
                tokio::task::spawn_blocking(move || Snapshot::take(&d, &sk))
                    .await
                    .ok()
            };
            tracing::info!(task = %rec.id, on_console = false, "fix round {done} of {max}: {}", commands.join(", "));
            let (ptx, prx) = mpsc::unbounded_channel::<Box<Progress>>();
            let started = Instant::now();
            let (mut round, ()) = tokio::join!(
                agent.run(req.clone(), cancel.clone(), ptx),
                forward_progress(
                    Arc::clone(self),
                    rec.id.clone(),
                    rec.attempts,
                    node.to_owned(),
                    agent.name().to_owned(),
                    prx
                ),
            );
            agent_time += started.elapsed();
            if round.agent_version.is_none() {
                round.agent_version = out.agent_version.clone();
            }
            let round_changed = match snap {
                Some(s) => !changed_files(s, Arc::clone(&skip)).await.is_empty(),
                // Not known: taken as changed (the round limit still ends the loop).
                None => true,
            };
            let round_outcome = outcome_name(&round.outcome).to_owned();
            let round_session = round.session_id.clone();
            rounds::join_round(out, round);
            if matches!(out.outcome, Outcome::Cancelled) {
                verified.rounds = Some(done);
                break Stop::Cancelled;
            }
            let rounds_so_far = Some(done);
            verified = self
                .verify_attempt(rec, task, cfg, out, &dir, git_base.clone(), &cancel)
                .await;
            verified.rounds = rounds_so_far;
            let unmet = verified
                .checks
                .iter()
                .filter(|c| c.verdict != crate::artifacts::result::Verdict::Met)
                .count();
            self.events.publish(Event::attempt(
                &rec.id,
                rec.attempts,
                EventKind::FixRound {
                    changed: round_changed,
                    commands,
                    max_rounds: max,
                    outcome: round_outcome,
                    round: done,
                    session_id: round_session,
                    unmet,
                },
            ));
            if !round_changed {
                break Stop::Unchanged;
            }
        };
        if done > 0 {
            tracing::info!(task = %rec.id, "fix loop ended after {done} round(s): {}", stop.describe());
            changed = changed_files(before, skip).await;
        }
        if verified.cancelled {
            out.outcome = Outcome::Cancelled;
        }
        verified.rounds = (done > 0).then_some(done);
        if let Some(message) = out.output.clone() {
            let (log, files) = (req.raw_log.clone(), changed.clone());
            verified.claims = tokio::task::spawn_blocking(move || {
                let events = read_tool_events(&log);
                crate::verify::claims::check_claims(&message, events.as_ref(), &files)
            })
            .await
            .ok();
        }
        (verified, changed)
    }
}

/// Largest raw stream read for the claims check; a bigger one leaves the claims `unknown`.
const MAX_STREAM_BYTES: u64 = 64 << 20;

/// The tool events of the attempt's raw stream (None: it cannot be read).
fn read_tool_events(path: &std::path::Path) -> Option<crate::verify::claims::ToolEvents> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() > MAX_STREAM_BYTES {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    Some(crate::verify::claims::tool_events(
        bytes.split(|b| *b == b'\n'),
    ))
}

//! Finishing a task: build its result document from the store's record (and the last run),
//! write result and summary, archive the task file, in the crash-safe order of DESIGN §3.

use std::path::{Path, PathBuf};

use crate::artifacts::archive::{archive, ArchiveDest};
use crate::artifacts::result::{
    AgentInfo, Attempt, Method, ResultError, ResultStatus, Routing, TaskResult, Verification,
    VerificationMethod, SCHEMA_VERSION,
};
use crate::artifacts::write::{write_result, write_summary};
use crate::clock::{now_ms, rfc3339_ms};
use crate::events::{Event, EventBus, EventKind};
use crate::mediate::rules::{judge_criteria_with, route};
use crate::mediate::summary::{note_unmet_checks, summarize};
use crate::mediate::verdicts::Judgement;
use crate::runner::RunOutcome;
use crate::store::{AttemptRecord, Store, StoreError, TaskRecord, TaskState};
use crate::task::paths::is_plain;
use crate::verify::{apply_checks, Verified};
use crate::workspace::Workspace;

/// Why finishing a task could not complete; the task stays pending and is tried again.
#[derive(Debug, thiserror::Error)]
pub enum FinalizeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Artifact(#[from] crate::artifacts::ArtifactError),
    #[error("task '{0}' is not in a final state")]
    NotFinal(String),
}

/// Where the task file will be archived to: the first free name in the destination.
pub fn predict_archive(ws: &Workspace, file_name: &str, dest: ArchiveDest) -> PathBuf {
    let dir = match dest {
        ArchiveDest::Processed => ws.processed(),
        ArchiveDest::Rejected => ws.rejected(),
    };
    let stem = file_name.strip_suffix(".task.md").unwrap_or(file_name);
    let mut candidate = dir.join(file_name);
    let mut n = 2;
    while candidate.exists() {
        candidate = dir.join(format!("{stem}-{n}.task.md"));
        n += 1;
    }
    candidate
}

/// A path relative to the workspace root where possible, for results and events.
pub fn rel(ws: &Workspace, p: &Path) -> String {
    // The usual case, a plain path under the root as Orca joins them, is cut as text
    // (`strip_prefix` walks both paths component by component, six times per task); both
    // written plainly, bytes and components agree.
    use std::os::unix::ffi::OsStrExt;
    let root = ws.root.as_os_str().as_bytes();
    if let Some(rest) = p
        .as_os_str()
        .as_bytes()
        .strip_prefix(root)
        .and_then(|r| r.strip_prefix(b"/"))
    {
        if !rest.is_empty() && !root.ends_with(b"/") && is_plain(&ws.root) && is_plain(p) {
            return String::from_utf8_lossy(rest).into_owned();
        }
    }
    p.strip_prefix(&ws.root)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

fn attempt_of(a: &AttemptRecord) -> Attempt {
    Attempt {
        attempt: a.attempt,
        started_at: rfc3339_ms(a.started_at_ms),
        finished_at: a.finished_at_ms.map(rfc3339_ms),
        outcome: a.outcome.clone().unwrap_or_else(|| "running".into()),
        error: a.error.clone(),
        exit_code: a.exit_code,
        session_id: a.session_id.clone(),
        resumed: a.resumed,
        node: a.node.clone(),
        rounds: None,
    }
}

/// Builds the result document of a final task. Values the agent reported out of range are
/// recorded as null, each with a warning (logged, in `warnings` and in `summary.text`).
pub fn build_result(
    rec: &TaskRecord,
    attempts: &[AttemptRecord],
    run: Option<&RunOutcome>,
    agent_name: &str,
    archived_to: Option<String>,
    facts: RunFacts,
) -> Option<TaskResult> {
    let RunFacts {
        working_dir,
        changed_files,
        verified,
        judged,
    } = facts;
    let status = ResultStatus::of(rec.state)?;
    let error: Option<ResultError> = rec
        .error
        .as_ref()
        .and_then(|e| serde_json::from_value(e.clone()).ok());
    let finished_ms = rec.finished_at_ms.unwrap_or_else(now_ms);
    let (task_type, routing) = match &rec.task {
        Some(t) => {
            let (ty, r) = route(t);
            // Routed at intake (LLM or rules): that routing, and the type it set.
            match crate::mediate::routing::recorded(t) {
                Some(recorded) => (t.task_type.or(Some(ty)), recorded),
                None => (Some(ty), r),
            }
        }
        None => (
            None,
            Routing {
                method: Method::Rules,
                model: None,
                reason: "not routed: the task was rejected".into(),
                latency_ms: None,
            },
        ),
    };
    let output = run.and_then(|r| r.output.clone());
    // After an LLM failure the verdicts say what failed, not that no LLM is configured.
    let unjudged = match &judged {
        Some(Judgement::Failed(why)) => format!("the LLM could not judge it ({why})"),
        _ => crate::mediate::rules::NO_LLM.to_owned(),
    };
    let judged = judged.as_ref().and_then(Judgement::judged);
    let mut criteria = rec
        .task
        .as_ref()
        .map(|t| judge_criteria_with(&t.success_criteria, output.as_deref(), status, &unjudged))
        .unwrap_or_default();
    if let Some(j) = judged {
        crate::mediate::verdicts::apply(&mut criteria, j);
    }
    apply_checks(&mut criteria, &verified.checks);
    let mut attempt_history: Vec<_> = attempts.iter().map(attempt_of).collect();
    // The fix rounds were this run's, the task's last attempt.
    if let Some(a) = attempt_history
        .iter_mut()
        .rev()
        .find(|a| a.attempt == rec.attempts)
    {
        a.rounds = verified.rounds;
    }
    let reported = run.map(|r| {
        AgentInfo {
            name: agent_name.to_owned(),
            version: r.agent_version.clone(),
            session_id: r.session_id.clone().or_else(|| rec.session_id.clone()),
            model: r.model.clone(),
            num_turns: r.num_turns,
            cost_usd: r.cost_usd,
            usage: r.usage.clone(),
            exit_code: r.exit_code,
        }
        .checked()
    });
    let (agent, warnings) = match reported {
        Some((a, w)) => (Some(a), w),
        None => (None, Vec::new()),
    };
    let mut summary = match judged {
        Some(j) => crate::artifacts::result::Summary {
            method: crate::artifacts::result::SummaryMethod::Llm,
            text: j.summary.clone(),
        },
        None => summarize(output.as_deref(), error.as_ref(), status),
    };
    note_unmet_checks(&mut summary, &criteria);
    let verification = match &verified.claims {
        Some(claims) => {
            crate::verify::claims::note_unbacked(&mut summary.text, claims);
            Verification {
                method: VerificationMethod::Events,
                claims: claims.clone(),
            }
        }
        None => Verification {
            method: VerificationMethod::None,
            claims: Vec::new(),
        },
    };
    for w in &warnings {
        tracing::warn!(task = %rec.id, "{w}");
        summary.text.push_str("\nWarning: ");
        summary.text.push_str(w);
    }
    let transcript = if rec.attempts > 0 {
        Some(format!("logs/runs/{}.{}.ndjson", rec.id, rec.attempts))
    } else {
        None
    };
    Some(TaskResult {
        schema_version: SCHEMA_VERSION,
        orca_version: crate::VERSION.to_owned(),
        task_id: rec.id.clone(),
        file: rec.file.clone(),
        archived_to,
        title: rec.task.as_ref().and_then(|t| t.title.clone()),
        task_type,
        priority: rec.priority,
        status,
        error,
        created_at: rec.task.as_ref().and_then(|t| t.created.clone()),
        received_at: rfc3339_ms(rec.received_at_ms),
        started_at: rec.started_at_ms.map(rfc3339_ms),
        finished_at: rfc3339_ms(finished_ms),
        duration_ms: u64::try_from(finished_ms - rec.started_at_ms.unwrap_or(rec.received_at_ms))
            .unwrap_or(0),
        attempts: rec.attempts,
        attempt_history,
        working_dir,
        target_files: rec
            .task
            .as_ref()
            .map(|t| t.target_files.clone())
            .unwrap_or_default(),
        prompt: rec
            .task
            .as_ref()
            .map(|t| t.prompt.clone())
            .unwrap_or_default(),
        success_criteria: criteria,
        routing,
        agent,
        output,
        transcript,
        changed_files,
        git: verified.git.clone(),
        verification,
        source: crate::ops::origin::task_source(rec),
        summary,
        warnings,
    })
}

/// What a run left in its working folder, for its result.
#[derive(Debug, Clone, Default)]
pub struct RunFacts {
    pub working_dir: Option<String>,
    /// The files the run changed (the result's `changed_files`).
    pub changed_files: Vec<String>,
    /// Its checks and git facts (the result's criteria verdicts and `git`).
    pub verified: Verified,
    /// The LLM's summary and verdicts (None: the extract and the rules).
    pub judged: Option<crate::mediate::verdicts::Judgement>,
}

/// What the worker that has just ended a run (with [`Store::finish_claimed`]) knows, so that
/// finalize need not ask the store again.
pub struct RunEnd<'a> {
    pub outcome: &'a RunOutcome,
    /// The task's attempts, as `finish_claimed` returned them.
    pub attempts: Vec<AttemptRecord>,
    pub working_dir: Option<String>,
    /// The files the run changed in its working folder (the result's `changed_files`).
    pub changed_files: Vec<String>,
    /// The checks run after the agent and the git facts (the result's criteria and `git`).
    pub verified: Verified,
    /// The LLM's summary and verdicts, when mediation gave them.
    pub judged: Option<crate::mediate::verdicts::Judgement>,
}

/// Writes the artifacts of a final task and archives its file, recording each step in the
/// store and the event log. Safe to call again after a crash at any point.
pub fn finalize(
    ws: &Workspace,
    store: &dyn Store,
    events: &EventBus,
    rec: &TaskRecord,
    run: Option<&RunOutcome>,
    working_dir: Option<String>,
) -> Result<(), FinalizeError> {
    let known = Known {
        working_dir,
        changed_files: Vec::new(),
        attempts: None,
        verified: Verified::default(),
        judged: None,
    };
    finalize_known(ws, store, events, rec, run, known)
}

/// [`finalize`] of a run just ended: the attempts come with `end`, and the finalize marker
/// rides along with the store's next write ([`Store::mark_finalized_later`]).
pub fn finalize_run(
    ws: &Workspace,
    store: &dyn Store,
    events: &EventBus,
    rec: &TaskRecord,
    end: RunEnd<'_>,
) -> Result<(), FinalizeError> {
    let known = Known {
        working_dir: end.working_dir,
        changed_files: end.changed_files,
        attempts: Some(end.attempts),
        verified: end.verified,
        judged: end.judged,
    };
    finalize_known(ws, store, events, rec, Some(end.outcome), known)
}

/// What the caller of [`finalize_known`] already has.
struct Known {
    working_dir: Option<String>,
    changed_files: Vec<String>,
    /// Some: the run was just finished by this worker (see [`finalize_run`]).
    attempts: Option<Vec<AttemptRecord>>,
    verified: Verified,
    judged: Option<crate::mediate::verdicts::Judgement>,
}

fn finalize_known(
    ws: &Workspace,
    store: &dyn Store,
    events: &EventBus,
    rec: &TaskRecord,
    run: Option<&RunOutcome>,
    known: Known,
) -> Result<(), FinalizeError> {
    if !rec.state.is_final() {
        return Err(FinalizeError::NotFinal(rec.id.clone()));
    }
    let dest = if rec.state == TaskState::Rejected {
        ArchiveDest::Rejected
    } else {
        ArchiveDest::Processed
    };
    let src = ws.root.join(&rec.file);
    let file_name = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let src_exists = src.is_file() && rec.file.starts_with("tasks/");
    let mut predicted = if src_exists {
        Some(rel(ws, &predict_archive(ws, &file_name, dest)))
    } else {
        rec.archived_to.clone()
    };
    let attempt = rec.attempts;
    // The events of the artifacts written just now, if any (logged with the archive move).
    let mut written: Vec<EventKind> = Vec::new();
    if !rec.artifacts_written {
        // The task's events so far are in the log before its result appears.
        events.flush();
        // A result written by an earlier, interrupted finalize keeps its run data (and,
        // when the file was archived before the cut, where it went).
        let stored = match run {
            None => earlier_result(ws, rec),
            Some(_) => None,
        };
        let result = match stored {
            Some(mut r) => {
                predicted = predicted.or(r.archived_to.take());
                r.archived_to = predicted.clone();
                r
            }
            None => {
                let attempts = match known.attempts.as_deref() {
                    Some(a) => a,
                    None => &store.attempts(&rec.id)?,
                };
                build_result(
                    rec,
                    attempts,
                    run,
                    run.map_or("claude", |r| r.agent.as_str()),
                    predicted.clone(),
                    RunFacts {
                        working_dir: known.working_dir,
                        changed_files: known.changed_files,
                        verified: known.verified,
                        judged: known.judged,
                    },
                )
                .ok_or_else(|| FinalizeError::NotFinal(rec.id.clone()))?
            }
        };
        // Agent text may quote a secret (an error message with an API key): no known
        // secret value reaches the result or the summary.
        let mut result = result;
        result.redact(&crate::config::redactor_for(&ws.root));
        let result_path = write_result(ws, &rec.stem, &result)?;
        let validated = EventKind::Validated {
            result: rel(ws, &result_path),
        };
        let summary_path = match write_summary(ws, &rec.stem, &result) {
            Ok(p) => p,
            Err(e) => {
                events.publish(Event::attempt(&rec.id, attempt, validated));
                return Err(e.into());
            }
        };
        written = vec![
            validated,
            EventKind::Summarized {
                method: match result.summary.method {
                    crate::artifacts::result::SummaryMethod::Llm => "llm".into(),
                    crate::artifacts::result::SummaryMethod::Extract => "extract".into(),
                },
                summary: rel(ws, &summary_path),
            },
            EventKind::ArtifactsWritten {
                result: rel(ws, &result_path),
                status: result.status.as_str().to_owned(),
                summary: rel(ws, &summary_path),
            },
        ];
    }
    let archived_to = if src_exists {
        // The artifacts' events and the move's go out in one write. Cut off before it, a
        // restart finds the artifacts not marked as written and logs them again, and the
        // move by the file's absence from tasks/ (below).
        let moved = archive(ws, &src, dest);
        if let Ok(Some(to)) = &moved {
            written.push(EventKind::TaskArchived {
                from: rec.file.clone(),
                to: rel(ws, to),
            });
        }
        events.publish_all(of_attempt(&rec.id, attempt, written));
        match moved? {
            Some(to) => rel(ws, &to),
            None => predicted.unwrap_or_default(),
        }
    } else {
        events.publish_all(of_attempt(&rec.id, attempt, written));
        let to = rec.archived_to.clone().or(predicted).unwrap_or_default();
        // A finalize cut off after its archive move (a SIGKILL that lands during the rename
        // takes effect once the rename is done) may not have logged the move: log it now,
        // unless it did. The move was this attempt's when the store has no archive path yet.
        // Whether it did is asked of the log itself: a move logged just before the crash and
        // one cut off before its event leave the store and the files in the same state (the
        // finalize marker is deferred), so only the log can tell them apart.
        let moved = rec.archived_to.is_none() && !to.is_empty() && ws.root.join(&to).is_file();
        if moved && !events.logged(&rec.id, Some(attempt), "task_archived") {
            events.publish(Event::attempt(
                &rec.id,
                attempt,
                EventKind::TaskArchived {
                    from: rec.file.clone(),
                    to: to.clone(),
                },
            ));
        }
        to
    };
    // One update for both markers: a crash before it redoes the (idempotent) steps above,
    // reusing the result file already written. The events go first: a task counts as
    // finished only once its events are in the log.
    events.flush();
    if known.attempts.is_some() {
        store.mark_finalized_later(&rec.id, attempt, &archived_to)?;
    } else {
        store.mark_finalized(&rec.id, &archived_to)?;
    }
    tracing::info!(
        task = %rec.id,
        status = ResultStatus::of(rec.state).map_or("?", |s| s.as_str()),
        duration_ms = rec.started_at_ms.zip(rec.finished_at_ms).map(|(a, b)| b - a),
        cost_usd = run.and_then(|r| r.cost_usd),
        "task finished"
    );
    Ok(())
}

/// `kinds` as events of attempt `attempt` of task `id`.
fn of_attempt(id: &str, attempt: u32, kinds: Vec<EventKind>) -> Vec<Event> {
    kinds
        .into_iter()
        .map(|k| Event::attempt(id, attempt, k))
        .collect()
}

/// The result an earlier finalize of this very run wrote (the stem is the record's own; the
/// attempt count and end time tell this run's result from one of a run before `orca retry`),
/// or the one older versions kept in the store.
fn earlier_result(ws: &Workspace, rec: &TaskRecord) -> Option<TaskResult> {
    let finished = rec.finished_at_ms.map(rfc3339_ms);
    let from_file = std::fs::read(ws.result_file(&rec.stem))
        .ok()
        .and_then(|b| serde_json::from_slice::<TaskResult>(&b).ok())
        .filter(|r| {
            r.task_id == rec.id
                && r.attempts == rec.attempts
                && Some(&r.finished_at) == finished.as_ref()
        });
    from_file.or_else(|| {
        rec.result
            .as_ref()
            .and_then(|v| serde_json::from_value::<TaskResult>(v.clone()).ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::Outcome;
    use crate::store::SourceKind;
    use crate::store::{Finish, NewTask, SqliteStore};
    use serde_json::json;

    fn run_said(text: &str) -> RunOutcome {
        RunOutcome {
            agent: "claude".into(),
            outcome: Outcome::Succeeded,
            exit_code: Some(0),
            output: Some(text.into()),
            session_id: Some("s-1".into()),
            num_turns: Some(1),
            cost_usd: None,
            usage: None,
            model: None,
            agent_version: None,
            stderr_tail: String::new(),
        }
    }

    fn ended(state: TaskState, exit_code: Option<i32>, now_ms: i64) -> Finish {
        Finish {
            state,
            outcome: state.to_string(),
            error: None,
            exit_code,
            session_id: None,
            now_ms,
        }
    }

    #[test]
    fn rel_cuts_as_strip_prefix_does() {
        for root in ["/w/ws", "/w/ws/", "ws", "/"] {
            let ws = Workspace::new(root);
            for p in [
                "/w/ws/results/a_result.json",
                "/w/ws/tasks/processed/a.task.md",
                "/w/ws",
                "/w/ws/",
                "/w/wsx/a",
                "/w/ws//a",
                "/w/ws/./a",
                "/w/ws/a/../b",
                "/w/ws/a/",
                "/elsewhere/a",
                "ws/tasks/a.task.md",
                "/a",
            ] {
                let p = Path::new(p);
                let want = p
                    .strip_prefix(&ws.root)
                    .unwrap_or(p)
                    .to_string_lossy()
                    .into_owned();
                assert_eq!(rel(&ws, p), want, "{root} {}", p.display());
            }
        }
    }

    /// A fresh workspace with its event log (the folder lives as long as the first value).
    fn workspace() -> (tempfile::TempDir, Workspace, EventBus) {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::new(dir.path());
        ws.create_all().unwrap();
        let events = EventBus::open_log(ws.events_file(), 1 << 20, 2).unwrap();
        (dir, ws, events)
    }

    /// Writes tasks/t.task.md and queues it as task `t`.
    fn queue_t(ws: &Workspace, store: &SqliteStore) {
        std::fs::write(
            ws.root.join("tasks/t.task.md"),
            "---\nid: t\n---\n\n**Prompt:**\nx\n",
        )
        .unwrap();
        store
            .enqueue(NewTask {
                desired_id: "t".into(),
                stem: "t".into(),
                file: "tasks/t.task.md".into(),
                source: SourceKind::File,
                source_user: None,
                task: Some(crate::task::Task::new("t", "x")),
                priority: Default::default(),
                max_retries: 0,
                state: TaskState::Queued,
                error: None,
                received_at_ms: 1,
            })
            .unwrap();
    }

    /// Queues task `t`, claims it as worker "w" and ends its run as succeeded.
    fn run_t(ws: &Workspace, store: &SqliteStore) -> crate::store::Finished {
        queue_t(ws, store);
        let claimed = store.claim("w", &[], 60_000, 2).unwrap().unwrap();
        store
            .finish_claimed(&claimed, "w", ended(TaskState::Succeeded, Some(0), 3), None)
            .unwrap()
    }

    /// A run's finalize leaves its marker to the store's next write; when a crash loses the
    /// marker, the next start finalizes again from the result file and keeps where the task
    /// file went (it is no longer in tasks/ to say so).
    #[test]
    fn a_lost_deferred_marker_is_redone_and_keeps_the_archive_path() {
        let (_dir, ws, events) = workspace();
        {
            let store = SqliteStore::open_in_workspace(&ws).unwrap();
            let done = run_t(&ws, &store);
            let (rec, attempts) = (done.record, done.attempts);
            let run = run_said("Finished the work.");
            let end = RunEnd {
                outcome: &run,
                attempts,
                working_dir: None,
                changed_files: vec!["src/lib.rs".into()],
                verified: Verified::default(),
                judged: None,
            };
            finalize_run(&ws, &store, &events, &rec, end).unwrap();
            assert!(!store.get("t").unwrap().unwrap().finalized, "deferred");
            assert!(store.pending_finalize().unwrap().is_empty());
            std::mem::forget(store); // the crash: the marker is never written
        }
        let store = SqliteStore::open_in_workspace(&ws).unwrap();
        let pending = store.pending_finalize().unwrap();
        assert_eq!(pending.len(), 1);
        finalize(&ws, &store, &events, &pending[0], None, None).unwrap();
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(ws.result_file("t")).unwrap()).unwrap();
        assert_eq!(r["output"], "Finished the work.", "{r:#}");
        assert_eq!(r["changed_files"], json!(["src/lib.rs"]), "{r:#}");
        assert_eq!(r["archived_to"], "tasks/processed/t.task.md", "{r:#}");
        let rec = store.get("t").unwrap().unwrap();
        assert!(rec.finalized);
        assert_eq!(
            rec.archived_to.as_deref(),
            Some("tasks/processed/t.task.md")
        );
        let archived: Vec<_> = std::fs::read_dir(ws.processed()).unwrap().collect();
        assert_eq!(archived.len(), 1, "archived once");
        assert_eq!(
            archive_events(&ws),
            1,
            "the move was logged before the crash, once"
        );
    }

    /// How many `task_archived` events of task `t` the workspace's log holds.
    fn archive_events(ws: &Workspace) -> usize {
        std::fs::read_to_string(ws.events_file())
            .unwrap()
            .lines()
            .filter(|l| l.contains("\"event\":\"task_archived\",\"task_id\":\"t\""))
            .count()
    }

    /// A finalize killed during its archive move (the rename completes, the process dies
    /// before logging it): the restart's finalize logs the move, once.
    #[test]
    fn a_move_cut_off_before_its_event_is_logged_by_the_restart() {
        let (_dir, ws, events) = workspace();
        let store = SqliteStore::open_in_workspace(&ws).unwrap();
        let done = run_t(&ws, &store);
        // What the cut-off finalize got done: the result (with its archive path) and the move.
        let first = build_result(
            &done.record,
            &done.attempts,
            Some(&run_said("Moved.")),
            "claude",
            Some("tasks/processed/t.task.md".into()),
            RunFacts::default(),
        )
        .unwrap();
        write_result(&ws, "t", &first).unwrap();
        std::fs::rename(
            ws.root.join("tasks/t.task.md"),
            ws.processed().join("t.task.md"),
        )
        .unwrap();
        assert_eq!(archive_events(&ws), 0);

        let pending = store.pending_finalize().unwrap();
        finalize(&ws, &store, &events, &pending[0], None, None).unwrap();
        assert_eq!(archive_events(&ws), 1);
        let rec = store.get("t").unwrap().unwrap();
        assert!(rec.finalized);
        assert_eq!(
            rec.archived_to.as_deref(),
            Some("tasks/processed/t.task.md")
        );
        // Finalizing again (the marker lost once more) logs nothing new.
        let mut again = rec.clone();
        again.finalized = false;
        again.artifacts_written = false;
        again.archived_to = None;
        finalize(&ws, &store, &events, &again, None, None).unwrap();
        assert_eq!(archive_events(&ws), 1);
    }

    /// A finalize cut off after the result was written (before the store marked it) is
    /// completed from that result file: the agent's output survives the restart.
    #[test]
    fn a_cut_off_finalize_reuses_the_result_file() {
        let (_dir, ws, events) = workspace();
        let store = SqliteStore::open_in_workspace(&ws).unwrap();
        queue_t(&ws, &store);
        store.claim("w", &[], 60_000, 2).unwrap().unwrap();
        let rec = store
            .finish("t", "w", ended(TaskState::Succeeded, Some(0), 3))
            .unwrap();
        // The interrupted finalize got as far as the result file.
        let attempts = store.attempts("t").unwrap();
        let first = build_result(
            &rec,
            &attempts,
            Some(&run_said("All done here.")),
            "claude",
            None,
            RunFacts::default(),
        )
        .unwrap();
        write_result(&ws, "t", &first).unwrap();

        // The restart finalizes from the store alone (no run in memory).
        let rec = store.get("t").unwrap().unwrap();
        assert!(!rec.artifacts_written && !rec.finalized);
        finalize(&ws, &store, &events, &rec, None, None).unwrap();

        let text = std::fs::read_to_string(ws.result_file("t")).unwrap();
        let r: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(r["output"], "All done here.", "{r:#}");
        assert_eq!(r["archived_to"], "tasks/processed/t.task.md", "{r:#}");
        assert!(ws.root.join("tasks/processed/t.task.md").is_file());
        assert!(!ws.root.join("tasks/t.task.md").exists());
        let rec = store.get("t").unwrap().unwrap();
        assert!(rec.artifacts_written && rec.finalized);
        assert_eq!(
            rec.archived_to.as_deref(),
            Some("tasks/processed/t.task.md")
        );
        let summary = std::fs::read_to_string(ws.summary_file("t")).unwrap();
        assert!(summary.contains("All done here."), "{summary}");

        // `orca retry`, and the new run's finalize is cut off before its result is written:
        // the old run's result file is not taken for the new run's.
        std::fs::rename(
            ws.root.join("tasks/processed/t.task.md"),
            ws.root.join("tasks/t.task.md"),
        )
        .unwrap();
        store.retry("t", 10).unwrap();
        store.claim("w", &[], 60_000, 11).unwrap().unwrap();
        let rec = store
            .finish("t", "w", ended(TaskState::Failed, Some(1), 12))
            .unwrap();
        finalize(&ws, &store, &events, &rec, None, None).unwrap();
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(ws.result_file("t")).unwrap()).unwrap();
        assert_eq!(r["status"], "failed", "{r:#}");
        assert_eq!(r["attempts"], 2, "{r:#}");
        assert!(
            r["output"].is_null(),
            "the old run's output is not reused: {r:#}"
        );
    }
}

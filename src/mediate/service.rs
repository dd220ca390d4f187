//! Mediation as the daemon and the commands use it: the chosen LLM (or none), routing a
//! task with the LLM or the rules, judging a finished task, and what is in flight.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{json, Value};

use super::client::{elapsed_ms, LlmError};
use super::llm::{choose, Choice, Llm};
use super::routing::{self, Need};
use super::verdicts::{self, Inputs, Judged};
use crate::artifacts::result::{Method, Routing};
use crate::config::Config;
use crate::task::Task;

/// The store's meta key the daemon publishes its LLM state under (for `orca status`).
pub const META_KEY: &str = "llm";

/// The daemon's mediation.
pub struct Mediator {
    llm: Option<Arc<Llm>>,
    reason: String,
    /// Task files being routed and task ids being judged right now.
    busy: Mutex<HashSet<String>>,
    /// How many of those are routings (by the LLM, in flight or waiting for the gate).
    routings: AtomicUsize,
}

/// Whether the LLM may route one more task while `pending` routings wait for it, with
/// `slots` agent slots: only while fewer than one per slot wait, so that a burst of tasks
/// does not leave the agents idle behind the LLM (the rules route the rest at once).
pub fn llm_may_route(pending: usize, slots: usize) -> bool {
    pending < slots.max(1)
}

impl Mediator {
    /// Chooses per ORCA_LLM (see [`choose`]).
    pub async fn start(cfg: &Config) -> Mediator {
        match choose(cfg).await {
            Choice::Rules { reason } => Mediator::rules(reason),
            Choice::Llm { client, reason } => Mediator {
                llm: Some(Arc::new(Llm::new(client, reason.clone(), cfg))),
                reason,
                busy: Mutex::new(HashSet::new()),
                routings: AtomicUsize::new(0),
            },
        }
    }

    /// Rules only.
    pub fn rules(reason: String) -> Mediator {
        Mediator {
            llm: None,
            reason,
            busy: Mutex::new(HashSet::new()),
            routings: AtomicUsize::new(0),
        }
    }

    pub fn llm(&self) -> Option<&Arc<Llm>> {
        self.llm.as_ref()
    }

    /// Why this LLM, or why none.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The line said at start-up and in `status`.
    pub fn line(&self) -> String {
        match &self.llm {
            Some(l) => match l.gate.open_secs() {
                Some(s) => format!(
                    "{}; circuit breaker open: rules decide for {s} s more",
                    self.reason
                ),
                None => self.reason.clone(),
            },
            None => self.reason.clone(),
        }
    }

    /// What `orca status` shows.
    pub fn state(&self) -> Value {
        json!({
            "method": if self.llm.is_some() { "llm" } else { "rules" },
            "model": self.llm.as_ref().map(|l| l.model().to_owned()),
            "reason": self.reason,
            "breaker_open_until_ms": self.llm.as_ref().and_then(|l| l.gate.open_secs())
                .map(|s| crate::clock::now_ms() + i64::try_from(s * 1000).unwrap_or(0)),
        })
    }

    /// Marks `key` as in flight; false when it already was.
    pub fn mark(&self, key: &str) -> bool {
        self.busy.lock().is_ok_and(|mut b| b.insert(key.to_owned()))
    }

    pub fn unmark(&self, key: &str) {
        if let Ok(mut b) = self.busy.lock() {
            b.remove(key);
        }
    }

    pub fn is_busy(&self, key: &str) -> bool {
        self.busy.lock().is_ok_and(|b| b.contains(key))
    }

    /// Counts one more LLM routing pending: false (and nothing counted) when
    /// [`llm_may_route`] says the rules must route it.
    pub fn begin_routing(&self, slots: usize) -> Result<(), LlmError> {
        let pending = self.routings.fetch_add(1, Ordering::SeqCst);
        if llm_may_route(pending, slots) {
            Ok(())
        } else {
            self.routings.fetch_sub(1, Ordering::SeqCst);
            Err(LlmError::Busy { pending })
        }
    }

    /// Ends a routing counted by [`Mediator::begin_routing`].
    pub fn end_routing(&self) {
        self.routings.fetch_sub(1, Ordering::SeqCst);
    }

    /// How many things are in flight.
    pub fn busy_count(&self) -> usize {
        self.busy.lock().map(|b| b.len()).unwrap_or(0)
    }
}

/// Routes `task` for what `need` leaves open: with `llm` when given, else (or when it
/// fails) by the rules. `check_folder` refuses a folder outside the allowed root. Returns
/// the routing and the LLM's failure, if any (for `llm_fallback`).
pub async fn route_task(
    llm: Option<&Llm>,
    task: &mut Task,
    need: Need,
    check_folder: impl Fn(&Task) -> Result<(), String>,
) -> (Routing, Option<LlmError>) {
    let mut failure = None;
    if let Some(llm) = llm {
        let start = Instant::now();
        match routing::ask(llm, task).await {
            Ok(routed) => {
                let latency = elapsed_ms(start);
                let original = task.clone();
                let notes = routing::apply(task, need, &routed, &check_folder);
                let mut reason = format!(
                    "routed by the LLM: type {}, priority {}",
                    routed.task_type, routed.priority
                );
                if need.title && task.title.is_none() {
                    // The model left the title empty: the rules make one.
                    task.title = routing::rules_title(&original.prompt);
                }
                if !notes.is_empty() {
                    reason.push_str(&format!("; {}", notes.join("; ")));
                }
                if need.folder && routed.folder.is_some() && task.working_dir.is_none() {
                    // The folder was refused: the rules decide it.
                    let (rules, _) = routing::rules(&original);
                    let folder_need = Need {
                        folder: true,
                        ..Need::default()
                    };
                    let more = routing::apply(task, folder_need, &rules, &check_folder);
                    if task.working_dir.is_some() && more.is_empty() {
                        reason.push_str("; the rules' folder is used");
                    }
                }
                let routing = Routing {
                    method: Method::Llm,
                    model: Some(llm.model().to_owned()),
                    reason,
                    latency_ms: Some(latency),
                };
                return (routing, None);
            }
            Err(e) => failure = Some(e),
        }
    }
    let routing = route_by_rules(task, need, check_folder, failure.as_ref());
    (routing, failure)
}

/// The rules' routing of `task` (after the LLM's `failure`, if any).
pub fn route_by_rules(
    task: &mut Task,
    need: Need,
    check_folder: impl Fn(&Task) -> Result<(), String>,
    failure: Option<&LlmError>,
) -> Routing {
    let (routed, mut reason) = routing::rules(task);
    let notes = routing::apply(task, need, &routed, &check_folder);
    // The rules' "in <path>" is a guess: a refused one is only noted.
    for n in notes {
        reason.push_str(&format!("; {n}"));
    }
    match failure {
        Some(e @ LlmError::Busy { .. }) => {
            reason = format!("the LLM was not asked ({}: {e}); rules: {reason}", e.kind());
        }
        Some(e) => reason = format!("the LLM failed ({}: {e}); rules: {reason}", e.kind()),
        None => {}
    }
    routing::by_rules(reason)
}

/// The summary and verdicts of a finished task in one call.
pub async fn judge(llm: &Llm, inputs: &Inputs) -> Result<Judged, LlmError> {
    let (system, user) = verdicts::prompt(inputs);
    let mut j = llm
        .ask(
            &system,
            &user,
            "orca_summary",
            &verdicts::schema(inputs.criteria.len()),
            |v| verdicts::parse_answer(v, inputs),
        )
        .await?;
    j.model = llm.model().to_owned();
    Ok(j)
}

/// The folder check of routing: `task`'s working folder, resolved for the task file at
/// `file`, must be a folder inside CLAUDE_ALLOWED_ROOT.
pub fn check_folder(cfg: &Config, file: &Path, task: &Task) -> Result<(), String> {
    let r = crate::task::paths::resolve_task_paths(
        task,
        file,
        &cfg.claude_base_cwd,
        &cfg.claude_allowed_root,
    )
    .map_err(|e| e.kind.to_string())?;
    if !r.working_dir.starts_with(&cfg.claude_allowed_root) {
        return Err(format!(
            "outside CLAUDE_ALLOWED_ROOT ({})",
            cfg.claude_allowed_root.display()
        ));
    }
    if !r.working_dir.is_dir() {
        return Err(format!("{} is not a folder", r.working_dir.display()));
    }
    Ok(())
}

/// The `llm` line of `orca status` from the daemon's published state.
pub fn status_line(state: Option<&Value>) -> Option<String> {
    let s = state?;
    let reason = s.get("reason").and_then(Value::as_str).unwrap_or("");
    let mut line = reason.to_owned();
    if let Some(until) = s.get("breaker_open_until_ms").and_then(Value::as_i64) {
        let left = (until - crate::clock::now_ms()) / 1000;
        if left > 0 {
            line.push_str(&format!(
                "; circuit breaker open: the rules decide for {left} s more"
            ));
        }
    }
    Some(line)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_llm_routes_while_fewer_than_one_per_slot_wait() {
        // (routings pending, agent slots, the LLM may route one more)
        let table = [
            (0, 4, true),
            (3, 4, true),
            (4, 4, false),
            (9, 4, false),
            (0, 0, true),
            (1, 1, false),
        ];
        for (pending, slots, want) in table {
            assert_eq!(
                super::llm_may_route(pending, slots),
                want,
                "{pending} {slots}"
            );
        }
        let m = super::Mediator::rules(String::new());
        assert!(m.begin_routing(2).is_ok() && m.begin_routing(2).is_ok());
        assert_eq!(m.begin_routing(2).unwrap_err().kind(), "busy");
        m.end_routing();
        assert!(m.begin_routing(2).is_ok());
    }
}

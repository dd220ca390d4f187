//! The daemon's side of intake: a batch of ready files is looked up in the store (a file
//! already known is not taken twice), parsed, and handed to [`crate::ops::ingest`], which
//! records valid tasks and rejects bad ones. A file that may still be being written is
//! deferred, never rejected.

use std::path::Path;
use std::time::Duration;

use crate::config::Config;
use crate::events::EventBus;
use crate::intake::{IntakeHandle, Ready};
use crate::ops::ingest as record;
use crate::scheduler::finalize::rel;
use crate::store::{NewTask, Store, TaskRecord};
use crate::task::TaskErrorKind;
use crate::workspace::Workspace;

/// What intake needs to take files into the store.
pub struct Ingest<'a> {
    pub cfg: &'a Config,
    pub ws: &'a Workspace,
    pub store: &'a dyn Store,
    pub events: &'a EventBus,
    /// Whether a worker holds the task right now (it finalizes the task itself then), or
    /// mediation holds the task or file (`tasks/x.task.md`) being routed.
    pub is_running: &'a dyn Fn(&str) -> bool,
    /// Routing of a parsed task: Some to queue it now, None when it is queued later (the
    /// LLM routes it).
    pub route: &'a dyn Fn(NewTask, &Path) -> Option<NewTask>,
}

impl Ingest<'_> {
    /// Takes a batch of ready files: known ones and rejects one by one, the valid ones queued
    /// in one store transaction.
    pub fn take(&self, intake: &IntakeHandle, batch: Vec<Ready>) {
        let rels: Vec<String> = batch.iter().map(|r| rel(self.ws, &r.path)).collect();
        let refs: Vec<&str> = rels.iter().map(String::as_str).collect();
        // Looked up together; when that fails, each file is looked up (and deferred) alone.
        let mut open = self
            .store
            .find_open_by_files(&refs)
            .unwrap_or_default()
            .into_iter();
        let (mut news, mut paths) = (Vec::new(), Vec::new());
        for (ready, file_rel) in batch.into_iter().zip(rels) {
            let open = open
                .next()
                .map(Ok)
                .unwrap_or_else(|| self.store.find_open_by_file(&file_rel));
            if (self.is_running)(&file_rel) {
                // Being routed: queued when routing ends.
                continue;
            }
            match open.and_then(|open| self.take_file(intake, &ready, file_rel, open)) {
                Ok(Some(new)) => {
                    if let Some(new) = (self.route)(new, &ready.path) {
                        news.push(new);
                        paths.push(ready.path);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    // The store is busy or failing: the file stays in tasks/; look at it again soon.
                    tracing::error!(file = %ready.path.display(), "cannot take the task file (will try again): {e}");
                    intake.defer(ready.path);
                }
            }
        }
        for (answer, path) in record::queue(self.store, self.events, news)
            .into_iter()
            .zip(paths)
        {
            if let Err(e) = answer {
                tracing::error!(file = %path.display(), "cannot take the task file (will try again): {e}");
                intake.defer(path);
            }
        }
    }

    /// One ready file: dedup against the store (`open`: its unfinalized record for the file,
    /// if any) and parse. A valid task is returned to be queued; a bad one is rejected here.
    fn take_file(
        &self,
        intake: &IntakeHandle,
        ready: &Ready,
        file_rel: String,
        open: Option<TaskRecord>,
    ) -> Result<Option<NewTask>, crate::store::StoreError> {
        let path = &ready.path;
        if let Some(rec) = open {
            // A final record still in tasks/ is finalized here, unless its worker is doing
            // that right now (a rescan can report the file again meanwhile).
            if rec.state.is_final() && !(self.is_running)(&rec.id) {
                record::finalize(self.ws, self.store, self.events, &rec);
            }
            return Ok(None);
        }
        let received = crate::clock::now_ms();
        match record::new_task(self.cfg, self.ws, path, file_rel.clone(), received) {
            Ok(new) => Ok(Some(new)),
            // Gone, or not a file (any more): nothing to take. Looked at only here, when the
            // read failed, rather than with a stat before every read.
            Err(err) if matches!(err.kind, TaskErrorKind::Io(_)) && !path.is_file() => Ok(None),
            Err(err) => {
                let may_be_half_written = !ready.settled
                    && !matches!(err.kind, TaskErrorKind::TooLarge { .. })
                    && recently_modified(path, Duration::from_secs(2));
                if may_be_half_written {
                    intake.defer(path.clone());
                    return Ok(None);
                }
                record::reject(self.ws, self.store, self.events, &file_rel, &err, received)?;
                Ok(None)
            }
        }
    }
}

fn recently_modified(path: &Path, within: Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map(|age| age < within)
        .unwrap_or(false)
}

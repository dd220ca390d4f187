//! The fleet's copy of the event log (DESIGN §12, issue #22): a thread that copies every
//! event this node publishes into the shared store, in batches, so that `orca tail-events`
//! on any node of the fleet sees them all. The node's own `events.ndjson` stays the lossless
//! log; this copy is best effort (a database outage longer than its retries loses lines
//! here, and says so).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::bus::{EventBus, Notice, Subscriber};
use crate::store::Store;

/// The most lines one insert carries.
const BATCH: usize = 512;
/// How often the thread looks for new events when there were none.
const IDLE: Duration = Duration::from_millis(50);
/// How many times a batch the database refused is tried again before it is dropped.
const RETRIES: u32 = 20;

/// The copying thread; dropping it copies what is left, then stops it.
pub struct Forwarder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Starts copying `bus`'s events into `store`'s fleet log; None when the store is not
/// shared (SQLite) or no thread can be made.
pub fn start(bus: &EventBus, store: Arc<dyn Store>) -> Option<Forwarder> {
    store.fleet()?;
    let stop = Arc::new(AtomicBool::new(false));
    let sub = bus.subscribe();
    let flag = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("orca-fleet-events".into())
        .spawn(move || run(sub, store, &flag))
        .map_err(|e| tracing::warn!("cannot start copying events to the fleet's log: {e}"))
        .ok()?;
    Some(Forwarder {
        stop,
        thread: Some(thread),
    })
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(mut sub: Subscriber, store: Arc<dyn Store>, stop: &AtomicBool) {
    let Some(fleet) = store.fleet() else { return };
    let mut batch: Vec<(Option<String>, String)> = Vec::new();
    let mut failures = 0u32;
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let mut closed = false;
        while batch.len() < BATCH {
            match sub.try_recv() {
                Ok(Some(Notice::Event(e))) => {
                    let mut line = e.line();
                    line.truncate(line.trim_end_matches('\n').len());
                    batch.push((e.event.task_id.clone(), line));
                }
                Ok(Some(Notice::Lagged { missed })) => tracing::warn!(
                    "{missed} event(s) were not copied to the fleet's event log (it fell behind); \
                     they are in this node's logs/events.ndjson"
                ),
                Ok(None) => break,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        if !batch.is_empty() {
            let full = batch.len() >= BATCH;
            let rows: Vec<(Option<&str>, &str)> = batch
                .iter()
                .map(|(t, l)| (t.as_deref(), l.as_str()))
                .collect();
            match fleet.put_events(&rows) {
                Ok(()) => {
                    batch.clear();
                    failures = 0;
                }
                Err(e) => {
                    failures += 1;
                    if failures > RETRIES || stopping {
                        tracing::error!(
                            "cannot copy {} event(s) to the fleet's event log, dropping them \
                             (they are in this node's logs/events.ndjson): {e}",
                            batch.len()
                        );
                        batch.clear();
                        failures = 0;
                    } else {
                        std::thread::sleep(IDLE * failures.min(20));
                    }
                    continue;
                }
            }
            // More may be waiting (a full batch), or new ones may have come meanwhile.
            if full || !(stopping || closed) {
                continue;
            }
        }
        if stopping || closed {
            return;
        }
        std::thread::sleep(IDLE);
    }
}

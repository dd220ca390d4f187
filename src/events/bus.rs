//! The in-process event bus: every event is published once, stamped with a sequence
//! number and a time, and handed to every subscriber in the same order.
//!
//! - The NDJSON log ([`EventBus::open_log`]) is the one lossless subscriber: publishing
//!   queues the event and never waits for the disk; a thread of its own writes the queue,
//!   in order, gathering a burst's events for a moment into one write (it is woken only
//!   when it sleeps and the queue was empty, not once per event).
//!   [`EventBus::flush`] writes what was published so far itself, on the caller's thread
//!   (finalize calls it before the result appears and before a task counts as finished, so
//!   the log holds a task's events by then, as it did when events were written on the
//!   spot), with no hand-off to the log thread and back.
//! - Any number of further subscribers ([`EventBus::subscribe`]: the console, Telegram, the
//!   dashboard) read from a bounded ring. One that falls behind by more than
//!   [`SUBSCRIBER_BACKLOG`] events never holds up the pipeline: it misses the oldest and is
//!   told how many ([`Notice::Lagged`]).
//!
//! Subscribing from the daemon: `let mut sub = daemon.events.subscribe();` then, in a task
//! of its own, `while let Some(n) = sub.recv().await { match n { Notice::Event(e) => ..,
//! Notice::Lagged { missed } => .. } }`; it ends when the bus is dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use tokio::sync::broadcast;

use super::kind::Event;
use super::ndjson::{push_line, NdjsonFile};

/// How many events a subscriber may fall behind before it misses the oldest.
pub const SUBSCRIBER_BACKLOG: usize = 1024;

/// How long [`EventBus::flush`] waits for the log thread at most (a disk that hangs must
/// not stop the daemon for good; what is late is still written, just later).
const FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// How long the log thread gathers events after it is woken before it writes them.
const GATHER: Duration = Duration::from_millis(5);

/// An event as published: its place in the order of the bus and when it happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamped {
    /// 1, 2, 3, ... in publishing order (per bus, i.e. per process).
    pub seq: u64,
    /// RFC 3339 UTC with milliseconds: the line's `ts`.
    pub ts: String,
    pub event: Event,
}

impl Stamped {
    /// The event's NDJSON line, `\n` included.
    pub fn line(&self) -> String {
        let mut s = String::with_capacity(160);
        push_line(&mut s, &self.ts, &self.event);
        s
    }
}

/// What a [`Subscriber`] receives.
#[derive(Debug, Clone)]
pub enum Notice {
    Event(Arc<Stamped>),
    /// The subscriber fell behind and `missed` events went by unseen; what follows is
    /// the oldest event still held.
    Lagged {
        missed: u64,
    },
}

/// A subscription to the bus (see [`EventBus::subscribe`]).
pub struct Subscriber {
    rx: broadcast::Receiver<Arc<Stamped>>,
}

impl Subscriber {
    /// The next notice; `None` once the bus is gone and everything was read.
    pub async fn recv(&mut self) -> Option<Notice> {
        match self.rx.recv().await {
            Ok(e) => Some(Notice::Event(e)),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(Notice::Lagged { missed }),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The next notice if one is waiting (never blocks); `Ok(None)` when none is.
    pub fn try_recv(&mut self) -> Result<Option<Notice>, Closed> {
        match self.rx.try_recv() {
            Ok(e) => Ok(Some(Notice::Event(e))),
            Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                Ok(Some(Notice::Lagged { missed }))
            }
            Err(broadcast::error::TryRecvError::Empty) => Ok(None),
            Err(broadcast::error::TryRecvError::Closed) => Err(Closed),
        }
    }

    /// [`Subscriber::recv`] for a thread outside the async runtime.
    pub fn blocking_recv(&mut self) -> Option<Notice> {
        match self.rx.blocking_recv() {
            Ok(e) => Some(Notice::Event(e)),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(Notice::Lagged { missed }),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// The bus is gone (the daemon stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the event bus is closed")]
pub struct Closed;

/// The event bus. Cheap to clone; every clone publishes to the same subscribers.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("published", &self.inner.published.load(Ordering::SeqCst))
            .field("log", &self.inner.log.as_ref().map(|l| &l.path))
            .finish()
    }
}

struct Inner {
    /// The last sequence number given out; held while an event is handed on, so that the
    /// log and every subscriber see one order.
    order: Mutex<u64>,
    published: AtomicU64,
    tx: broadcast::Sender<Arc<Stamped>>,
    log: Option<Log>,
}

/// The event log's end of the bus: the queue publishers fill, and the file that the log
/// thread, or a [`EventBus::flush`], empties it into.
struct Log {
    path: std::path::PathBuf,
    shared: Arc<LogShared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

struct LogShared {
    queue: Mutex<Queue>,
    /// Rung when work arrives while the log thread sleeps (see [`Queue::idle`]).
    work: Condvar,
    /// The writer's lock: whoever holds it takes the queue and writes it, so that the file
    /// gets the events in their order whoever writes them.
    file: Mutex<NdjsonFile>,
    /// The highest sequence number written (or given up on).
    written: AtomicU64,
}

#[derive(Default)]
struct Queue {
    events: Vec<Arc<Stamped>>,
    /// The log thread waits for work (a publisher rings it; else nobody does).
    idle: bool,
    /// The bus is gone: the thread writes what is left and ends.
    closed: bool,
}

impl LogShared {
    /// Takes every queued event and writes it with one write (the caller holds `file`).
    fn write_queued(&self, file: &mut NdjsonFile, text: &mut String) {
        let batch = std::mem::take(&mut lock(&self.queue).events);
        let Some(last) = batch.last().map(|e| e.seq) else {
            return;
        };
        text.clear();
        for e in &batch {
            push_line(text, &e.ts, &e.event);
        }
        if let Err(err) = file.write_lines(text.as_bytes()) {
            let mut names: Vec<&'static str> = batch.iter().map(|e| e.event.name()).collect();
            names.dedup();
            tracing::warn!(
                "cannot write event(s) '{}' to {}: {err}",
                names.join("', '"),
                file.path().display()
            );
        }
        self.written.store(last, Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl EventBus {
    /// A bus without a log (tests, and front ends that only pass events on).
    pub fn new() -> EventBus {
        EventBus::with_log(None)
    }

    /// A bus whose events are written to the NDJSON log at `path` (created with its
    /// folder when missing), rotated past `max_bytes`, keeping `files` old files.
    pub fn open_log(
        path: std::path::PathBuf,
        max_bytes: u64,
        files: u32,
    ) -> std::io::Result<EventBus> {
        let file = NdjsonFile::open(path, max_bytes, files)?;
        Ok(EventBus::with_log(Some(file)))
    }

    fn with_log(file: Option<NdjsonFile>) -> EventBus {
        let (tx, _) = broadcast::channel(SUBSCRIBER_BACKLOG);
        let log = match file {
            Some(file) => match start_log_thread(file) {
                Ok(log) => Some(log),
                Err(e) => {
                    tracing::error!(
                        "cannot start the event log's thread: {e}; events are not logged"
                    );
                    None
                }
            },
            None => None,
        };
        EventBus {
            inner: Arc::new(Inner {
                order: Mutex::new(0),
                published: AtomicU64::new(0),
                tx,
                log,
            }),
        }
    }

    /// The log file this bus writes to, if any.
    pub fn log_path(&self) -> Option<&std::path::Path> {
        self.inner.log.as_ref().map(|l| l.path.as_path())
    }

    /// Publishes one event. Never waits for the disk or a subscriber.
    pub fn publish(&self, event: Event) {
        self.publish_all(vec![event]);
    }

    /// Publishes several events, in order, with one time stamp (the log writes them with
    /// one write).
    pub fn publish_all(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let ts = crate::clock::now_rfc3339();
        let mut seq = lock(&self.inner.order);
        let batch: Vec<Arc<Stamped>> = events
            .into_iter()
            .map(|event| {
                *seq += 1;
                Arc::new(Stamped {
                    seq: *seq,
                    ts: ts.clone(),
                    event,
                })
            })
            .collect();
        for e in &batch {
            // No subscriber: nothing is kept.
            let _ = self.inner.tx.send(Arc::clone(e));
        }
        if let Some(log) = &self.inner.log {
            let mut q = lock(&log.shared.queue);
            q.events.extend(batch);
            if q.idle {
                q.idle = false;
                log.shared.work.notify_one();
            }
        }
        // Counted once queued: a flush that sees this number finds the events to write.
        self.inner.published.store(*seq, Ordering::SeqCst);
    }

    /// A new subscriber: it sees every event published from now on, in order, unless it
    /// falls more than [`SUBSCRIBER_BACKLOG`] behind (then it is told what it missed).
    pub fn subscribe(&self) -> Subscriber {
        Subscriber {
            rx: self.inner.tx.subscribe(),
        }
    }

    /// The sequence number of the last event published (0 before the first).
    pub fn published(&self) -> u64 {
        self.inner.published.load(Ordering::SeqCst)
    }

    /// How many subscribers there are now (the log not counted).
    pub fn subscribers(&self) -> usize {
        self.inner.tx.receiver_count()
    }

    /// Writes every event published so far to the log file, on this thread, unless the
    /// log thread already did (waits at most a few seconds for a write in progress; a log
    /// that cannot be written counts as done, its failure is logged). Cheap when there is
    /// nothing to write. Blocking: call it where file I/O is fine.
    pub fn flush(&self) {
        let Some(log) = &self.inner.log else { return };
        let target = self.inner.published.load(Ordering::SeqCst);
        let shared = &log.shared;
        let deadline = std::time::Instant::now() + FLUSH_LIMIT;
        let mut pause = Duration::from_micros(50);
        while shared.written.load(Ordering::SeqCst) < target {
            match shared.file.try_lock() {
                Ok(mut file) => shared.write_queued(&mut file, &mut String::new()),
                Err(TryLockError::Poisoned(p)) => {
                    shared.write_queued(&mut p.into_inner(), &mut String::new())
                }
                // Another writer is at it: what it writes may be all that was missing.
                Err(TryLockError::WouldBlock) => {
                    if std::time::Instant::now() >= deadline {
                        tracing::warn!(
                            "the event log {} is more than {}s behind",
                            log.path.display(),
                            FLUSH_LIMIT.as_secs()
                        );
                        return;
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(5));
                }
            }
        }
    }
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle: the log thread writes what is left and ends.
        if let Some(log) = &self.log {
            lock(&log.shared.queue).closed = true;
            log.shared.work.notify_one();
            if let Some(t) = lock(&log.thread).take() {
                let _ = t.join();
            }
        }
    }
}

fn start_log_thread(file: NdjsonFile) -> std::io::Result<Log> {
    let path = file.path().to_path_buf();
    let shared = Arc::new(LogShared {
        queue: Mutex::new(Queue::default()),
        work: Condvar::new(),
        file: Mutex::new(file),
        written: AtomicU64::new(0),
    });
    let me = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("orca-events".into())
        .spawn(move || {
            let mut text = String::new();
            loop {
                let closed = {
                    let mut q = lock(&me.queue);
                    while q.events.is_empty() && !q.closed {
                        q.idle = true;
                        q = me.work.wait(q).unwrap_or_else(|p| p.into_inner());
                    }
                    q.idle = false;
                    if q.events.is_empty() {
                        return;
                    }
                    q.closed
                };
                // The rest of a burst joins this write (a flush may write it sooner).
                if !closed {
                    std::thread::sleep(GATHER);
                }
                me.write_queued(&mut lock(&me.file), &mut text);
            }
        })?;
    Ok(Log {
        path,
        shared,
        thread: Mutex::new(Some(thread)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;

    /// Publishers on four threads, each flushing after every other event: the log holds
    /// every event once, in the bus's order, whichever thread wrote it.
    #[test]
    fn flushes_and_the_log_thread_write_every_event_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        let bus = EventBus::open_log(path.clone(), 1 << 30, 1).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let bus = bus.clone();
                std::thread::spawn(move || {
                    for i in 0..250u32 {
                        bus.publish(Event::attempt(&format!("t{t}"), i, EventKind::TimedOut {}));
                        if i % 2 == 0 {
                            // Once flushed, the event is in the file.
                            bus.flush();
                            let text = std::fs::read_to_string(bus.log_path().unwrap()).unwrap();
                            let key = format!("\"task_id\":\"t{t}\",\"attempt\":{i}");
                            assert!(
                                text.contains(&format!("{key},"))
                                    || text.contains(&format!("{key}}}")),
                                "t{t} attempt {i} not in the log after a flush"
                            );
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        bus.flush();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1000);
        // Per publisher, the attempts come in the order they were published.
        for t in 0..4 {
            let key = format!("\"task_id\":\"t{t}\"");
            let attempts: Vec<u32> = text
                .lines()
                .filter(|l| l.contains(&key))
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v["attempt"].as_u64().unwrap() as u32
                })
                .collect();
            assert_eq!(attempts, (0..250).collect::<Vec<_>>(), "publisher t{t}");
        }
        // Dropping the last handle writes what is left and ends the thread.
        bus.publish(Event::daemon(EventKind::TimedOut {}));
        drop(bus);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().lines().count(),
            1001
        );
    }
}

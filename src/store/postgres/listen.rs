//! The change feed: a connection of its own that `LISTEN`s on [`CHANNEL`] on a background
//! thread and counts the notifications (every write transaction that changed something sends
//! one when it commits). [`Store::changes`](crate::store::Store::changes) reads the count;
//! while the listener is down (reconnecting) it reads the poll token instead.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Config, NoTls};

/// The notification channel every write announces itself on.
pub(crate) const CHANNEL: &str = "orca_changes";

/// How often the listener thread looks at its stop flag while no notification comes.
const WAKE: Duration = Duration::from_millis(200);

/// What the listener thread and the store share.
#[derive(Debug, Default)]
pub(crate) struct Feed {
    /// Notifications received, plus one per (re)connection (some may have been missed).
    pub(crate) count: AtomicU64,
    /// Listening now: `count` is current.
    pub(crate) live: AtomicBool,
    stop: AtomicBool,
    /// Notified when `count` moves (see [`Store::change_signal`](crate::store::Store)).
    pub(crate) wake: Arc<tokio::sync::Notify>,
    /// The payload of this handle's own notifications: they are not counted (its own
    /// writes need not wake it).
    pub(crate) own: String,
}

/// The running listener; stops (within [`WAKE`]) when dropped.
pub(crate) struct Listener {
    pub(crate) feed: Arc<Feed>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Starts listening on `client` (already connected) on a thread of its own; `config`
    /// is used to reconnect after a lost connection.
    pub(crate) fn start(
        mut client: Client,
        config: Config,
        db: String,
        own: String,
    ) -> Result<Listener, postgres::Error> {
        client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
        let feed = Arc::new(Feed {
            own,
            ..Feed::default()
        });
        feed.live.store(true, Ordering::SeqCst);
        let shared = Arc::clone(&feed);
        let thread = std::thread::Builder::new()
            .name("orca-pg-listen".into())
            .spawn(move || run(client, &config, &shared, &db))
            .map_err(|e| {
                tracing::error!("cannot start the change listener thread: {e}");
                e
            })
            .ok();
        if thread.is_none() {
            feed.live.store(false, Ordering::SeqCst);
        }
        Ok(Listener { feed, thread })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.feed.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The listener thread: counts notifications; on a lost connection marks the feed not live,
/// reconnects with backoff (up to 5 s), and counts the reconnection as a change.
fn run(mut client: Client, config: &Config, feed: &Feed, db: &str) {
    let mut backoff = Duration::from_millis(100);
    while !feed.stop.load(Ordering::SeqCst) {
        let outcome = {
            let mut notes = client.notifications();
            let mut it = notes.timeout_iter(WAKE);
            loop {
                match it.next() {
                    // Counted and signalled as each one arrives: the iterator ends only
                    // after WAKE without any, which under load may be never.
                    Ok(Some(n)) if n.payload() != feed.own => {
                        feed.count.fetch_add(1, Ordering::SeqCst);
                        feed.wake.notify_one();
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
                if feed.stop.load(Ordering::SeqCst) {
                    break Ok(());
                }
            }
        };
        let lost = match outcome {
            Err(e) => Some(e.to_string()),
            Ok(()) if client.is_closed() => Some("the connection was closed".to_owned()),
            Ok(()) => None,
        };
        let Some(why) = lost else { continue };
        feed.live.store(false, Ordering::SeqCst);
        tracing::warn!("lost the change feed of {db} ({why}); reconnecting");
        loop {
            if feed.stop.load(Ordering::SeqCst) {
                return;
            }
            sleep_unless_stopped(feed, backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
            match config.connect(NoTls).and_then(|mut c| {
                c.batch_execute(&format!("LISTEN {CHANNEL}"))?;
                Ok(c)
            }) {
                Ok(c) => {
                    client = c;
                    backoff = Duration::from_millis(100);
                    feed.count.fetch_add(1, Ordering::SeqCst);
                    feed.live.store(true, Ordering::SeqCst);
                    feed.wake.notify_one();
                    tracing::info!("change feed of {db} is back");
                    break;
                }
                Err(e) => tracing::debug!("change feed of {db}: reconnect failed: {e}"),
            }
        }
    }
}

fn sleep_unless_stopped(feed: &Feed, total: Duration) {
    let mut left = total;
    while !left.is_zero() && !feed.stop.load(Ordering::SeqCst) {
        let step = left.min(WAKE);
        std::thread::sleep(step);
        left -= step;
    }
}

//! Notifications not yet delivered, kept as one file each in `.orca/telegram-outbox/`
//! from the moment they are queued until Telegram has them: a stop, a crash or an outage
//! does not lose them; the next start sends what is left ([`on_start`] decides).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::api::Keyboard;
use crate::workspace::Workspace;

/// A notification is tried by at most this many starts of the daemon, then given up
/// (and logged).
pub const MAX_STARTS: u32 = 3;

/// One kept notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The file's stem (unique per notification).
    pub key: String,
    pub task: String,
    pub chat: i64,
    pub html: String,
    pub buttons: Option<Keyboard>,
    /// The task's status, for the `notified` event.
    pub status: String,
    /// Starts of the daemon that have tried to send it (the one that queued it is 1).
    pub starts: u32,
    /// When it was first queued (RFC 3339).
    pub queued_at: String,
}

impl Pending {
    pub fn new(
        task: &str,
        chat: i64,
        html: String,
        buttons: Option<Keyboard>,
        status: &str,
    ) -> Pending {
        let safe: String = task
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(80)
            .collect();
        Pending {
            key: format!("{}-{safe}", crate::clock::now_ms()),
            task: task.to_owned(),
            chat,
            html,
            buttons,
            status: status.to_owned(),
            starts: 1,
            queued_at: crate::clock::now_rfc3339(),
        }
    }
}

/// What a start does with a notification a previous run left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStart {
    /// Send it (again), counting this start.
    Send,
    /// Too many starts have tried: log it and drop it.
    GiveUp,
}

/// The policy for a kept notification at start.
pub fn on_start(p: &Pending) -> OnStart {
    if p.starts >= MAX_STARTS {
        OnStart::GiveUp
    } else {
        OnStart::Send
    }
}

/// What to do with a kept notification once its send has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterSend {
    /// Delivered, or refused for good: the file goes.
    Forget,
    /// Could not be sent for now (network, 5xx, too many 429s): the next start tries again.
    Keep,
}

/// The policy after a send: `None` is delivered, `Some(permanent)` a failure.
pub fn after_send(failure: Option<bool>) -> AfterSend {
    match failure {
        Some(false) => AfterSend::Keep,
        None | Some(true) => AfterSend::Forget,
    }
}

/// The folder of kept notifications.
pub fn dir(ws: &Workspace) -> PathBuf {
    ws.state_dir().join("telegram-outbox")
}

fn file(ws: &Workspace, key: &str) -> PathBuf {
    dir(ws).join(format!("{key}.json"))
}

/// Keeps `p` (replacing an earlier copy).
pub fn save(ws: &Workspace, p: &Pending) -> Result<(), String> {
    let bytes = serde_json::to_vec_pretty(p).map_err(|e| e.to_string())?;
    crate::artifacts::write::write_atomic(&file(ws, &p.key), &bytes).map_err(|e| e.to_string())
}

/// Forgets the notification `key` (logged when the file cannot be removed).
pub fn forget(ws: &Workspace, key: &str) {
    let f = file(ws, key);
    match std::fs::remove_file(&f) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(
            "cannot remove the delivered Telegram notification {}: {e}; remove it by hand, or it is sent again at the next start",
            f.display()
        ),
    }
}

/// Every kept notification, oldest first; a file that cannot be read is named in the log
/// and left where it is.
pub fn load_all(ws: &Workspace) -> Vec<Pending> {
    let d = dir(ws);
    let Ok(rd) = std::fs::read_dir(&d) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| is_kept_file(p))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| {
            let read = std::fs::read(&p)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Pending>(&b).map_err(|e| e.to_string()));
            match read {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::error!(
                        "cannot read the kept Telegram notification {}: {e}; it is left there (fix or delete it)",
                        p.display()
                    );
                    None
                }
            }
        })
        .collect()
}

/// How many notifications are kept (files, read or not).
pub fn count(ws: &Workspace) -> usize {
    std::fs::read_dir(dir(ws))
        .map(|rd| rd.flatten().filter(|e| is_kept_file(&e.path())).count())
        .unwrap_or(0)
}

fn is_kept_file(p: &Path) -> bool {
    p.extension().is_some_and(|x| x == "json")
        && p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| !n.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policies_as_a_table() {
        let mut p = Pending::new("t", 1, "x".into(), None, "failed");
        for (starts, want) in [
            (1, OnStart::Send),
            (2, OnStart::Send),
            (3, OnStart::GiveUp),
            (9, OnStart::GiveUp),
        ] {
            p.starts = starts;
            assert_eq!(on_start(&p), want, "{starts} starts");
        }
        for (failure, want) in [
            (None, AfterSend::Forget),
            (Some(true), AfterSend::Forget),
            (Some(false), AfterSend::Keep),
        ] {
            assert_eq!(after_send(failure), want, "{failure:?}");
        }
    }

    #[test]
    fn kept_notifications_round_trip_and_bad_files_stay() {
        let d = tempfile::tempdir().expect("tempdir");
        let ws = Workspace::new(d.path());
        assert!(load_all(&ws).is_empty());
        let p = Pending::new("a/b c", -100, "<b>x</b>".into(), None, "failed");
        assert!(!p.key.contains('/') && !p.key.contains(' '), "{}", p.key);
        save(&ws, &p).expect("save");
        std::fs::write(dir(&ws).join("broken.json"), "{").expect("write");
        assert_eq!(load_all(&ws), vec![p.clone()]);
        assert_eq!(count(&ws), 2);
        forget(&ws, &p.key);
        assert!(load_all(&ws).is_empty());
        assert_eq!(count(&ws), 1);
        assert!(dir(&ws).join("broken.json").is_file());
    }
}

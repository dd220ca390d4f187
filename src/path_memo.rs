//! A small memo of answers about paths (a canonical path, a git top, a folder listing), each
//! kept with what tells whether it still holds; bounded, shared between threads.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// At most `cap` answers by path, newest last; the oldest goes when a new one comes.
pub struct PathMemo<V> {
    entries: Mutex<Vec<(PathBuf, V)>>,
    cap: usize,
}

impl<V: Clone> PathMemo<V> {
    pub const fn new(cap: usize) -> PathMemo<V> {
        PathMemo {
            entries: Mutex::new(Vec::new()),
            cap,
        }
    }

    /// The answer remembered for `path` (compared as written), if `holds` says it still does.
    pub fn get(&self, path: &Path, holds: impl Fn(&V) -> bool) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .iter()
            .rev()
            .find(|(p, v)| p.as_os_str() == path.as_os_str() && holds(v))
            .map(|(_, v)| v.clone())
    }

    /// Remembers `value` for `path`, replacing an earlier answer.
    pub fn put(&self, path: &Path, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|(p, _)| p.as_os_str() != path.as_os_str());
        if entries.len() >= self.cap.max(1) {
            entries.remove(0);
        }
        entries.push((path.to_path_buf(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_hold_until_replaced_invalid_or_pushed_out() {
        let memo: PathMemo<u32> = PathMemo::new(2);
        memo.put(Path::new("/a"), 1);
        assert_eq!(memo.get(Path::new("/a"), |_| true), Some(1));
        assert_eq!(
            memo.get(Path::new("/a"), |v| *v == 2),
            None,
            "no longer holds"
        );
        assert_eq!(
            memo.get(Path::new("/a/"), |_| true),
            None,
            "compared as written"
        );
        memo.put(Path::new("/a"), 2);
        assert_eq!(memo.get(Path::new("/a"), |_| true), Some(2));
        memo.put(Path::new("/b"), 3);
        memo.put(Path::new("/c"), 4);
        assert_eq!(memo.get(Path::new("/a"), |_| true), None, "the oldest went");
        assert_eq!(memo.get(Path::new("/b"), |_| true), Some(3));
        assert_eq!(memo.get(Path::new("/c"), |_| true), Some(4));
    }
}

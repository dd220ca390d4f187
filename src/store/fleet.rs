//! The fleet side of a shared store (DESIGN §12): what a node of several `orca run`
//! processes on one database needs beyond the queue (register, heartbeat, the live nodes,
//! repair of its own runs). Reached by [`Store::fleet`](super::Store::fleet); None on SQLite.

use serde::Serialize;

#[allow(unused_imports)]
use super::Store;
use super::StoreError;

/// One node as the database knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeRecord {
    pub id: String,
    pub labels: Vec<String>,
    pub started_at_ms: i64,
    pub heartbeat_at_ms: i64,
    /// Tasks running on it at its last heartbeat.
    pub running: u32,
    /// Its MAX_CONCURRENT_TASKS.
    pub max_running: u32,
}

/// Who opens a store, for a backend shared by a fleet: the node id (ORCA_NODE_ID; the lease
/// owner and each attempt's `node`), the workspace's origin key (the tasks it takes from its
/// own `tasks/` carry it, and only it writes their artifacts), and poll-only mode.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Opener {
    pub node_id: String,
    pub origin: String,
    pub poll_only: bool,
}

impl Opener {
    /// The opener of a node in workspace `root`: its origin key is `HOSTNAME:ROOT` (stable
    /// over restarts, unlike the default node id `HOSTNAME-PID`), so that a node restarted
    /// in the same folder catches up on the artifacts of its tasks.
    pub fn of(cfg: &crate::config::Config) -> Opener {
        Opener {
            node_id: cfg.node_id.clone(),
            origin: origin_of(&cfg.root),
            poll_only: cfg.pg_poll_only,
        }
    }
}

/// The origin key of the workspace at `root`: `HOSTNAME:ROOT` (symlinks resolved).
pub fn origin_of(root: &std::path::Path) -> String {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    format!("{}:{}", crate::config::hostname(), root.display())
}

/// A node's heartbeat is current when it is at most this many leases old: a node that
/// misses two lease renewals in a row counts as gone.
pub fn alive_since_ms(now_ms: i64, lease_ms: i64) -> i64 {
    now_ms.saturating_sub(lease_ms.saturating_mul(2))
}

/// Fleet operations of a shared store. All block like the store's own methods.
pub trait Fleet: Send + Sync {
    /// This handle's node id.
    fn node_id(&self) -> &str;
    /// Registers this node (or renews its row after a restart).
    fn register(&self, labels: &[String], max_running: u32, now_ms: i64) -> Result<(), StoreError>;
    /// Renews this node's row with its running count; false when the row is gone.
    fn node_heartbeat(&self, running: u32, now_ms: i64) -> Result<bool, StoreError>;
    /// Removes this node's row (a clean stop).
    fn unregister(&self) -> Result<(), StoreError>;
    /// Nodes whose heartbeat is at `alive_since_ms` or later (all when None), by id.
    fn nodes(&self, alive_since_ms: Option<i64>) -> Result<Vec<NodeRecord>, StoreError>;
    /// Start-up repair of THIS node: its running tasks (lease owner == node id) go back to
    /// the queue; returns their ids. Other nodes' runs are theirs (or their leases expire).
    fn recover_own(&self) -> Result<Vec<String>, StoreError>;
    /// Whether the database answers now (a cheap round trip).
    fn ping(&self) -> Result<(), StoreError>;
    /// The origin key of the tasks this handle enqueues (its workspace).
    fn origin(&self) -> &str;
    /// The origin key of task `id` (None: no such task).
    fn origin_of(&self, id: &str) -> Result<Option<String>, StoreError>;
    /// Hands the result document of attempt `attempt` (just finished here) to the task's
    /// origin node, which writes it into its `results/` ([`Store::pending_finalize`] there).
    fn store_result(
        &self,
        id: &str,
        attempt: u32,
        result: &serde_json::Value,
    ) -> Result<(), StoreError>;
    /// Appends events this node published to the fleet's event log: `(task id, line)`,
    /// the line as in `events.ndjson` without its `\n`. One transaction.
    fn put_events(&self, events: &[(Option<&str>, &str)]) -> Result<(), StoreError>;
    /// The fleet's events after `after` (a [`SharedEvent::seq`]; 0: from the start), of
    /// task `task` only when given, oldest first; with `last`, only the newest `last` of them.
    fn events_after(
        &self,
        after: i64,
        task: Option<&str>,
        last: Option<usize>,
    ) -> Result<Vec<SharedEvent>, StoreError>;
}

/// One line of the fleet's event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedEvent {
    /// Its place in the log (insertion order; a concurrent insert may commit a smaller one
    /// a moment later, so a reader that follows looks back a little, see
    /// [`FOLLOW_LOOKBACK`]).
    pub seq: i64,
    /// The node that published it.
    pub node: String,
    pub line: String,
}

/// How far back (in seqs) a follower of the shared event log looks again on every poll, for
/// lines whose transactions committed after a later one's.
pub const FOLLOW_LOOKBACK: i64 = 4096;

/// Why a queued task with `requires` cannot run on any of `nodes` (the live ones): the
/// labels no live node has all of; None when some live node has them all (or none needed).
pub fn unroutable_reason(requires: &[String], nodes: &[NodeRecord]) -> Option<String> {
    if requires.is_empty() {
        return None;
    }
    if nodes
        .iter()
        .any(|n| requires.iter().all(|r| n.labels.contains(r)))
    {
        return None;
    }
    let live = if nodes.is_empty() {
        "no node is live".to_owned()
    } else {
        let list: Vec<String> = nodes
            .iter()
            .map(|n| {
                if n.labels.is_empty() {
                    format!("{} (no labels)", n.id)
                } else {
                    format!("{} ({})", n.id, n.labels.join(","))
                }
            })
            .collect();
        format!("live nodes: {}", list.join(", "))
    };
    Some(format!(
        "waiting for a node with labels {} (ORCA_NODE_LABELS); {live}",
        requires.join(",")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, labels: &[&str]) -> NodeRecord {
        NodeRecord {
            id: id.into(),
            labels: labels.iter().map(|s| s.to_string()).collect(),
            started_at_ms: 0,
            heartbeat_at_ms: 0,
            running: 0,
            max_running: 1,
        }
    }

    #[test]
    fn routing_reasons() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let nodes = vec![node("a", &["gpu"]), node("b", &["repo-a", "gpu"])];
        let table: &[(&[&str], &[NodeRecord], Option<&str>)] = &[
            (&[], &[], None),
            (&["gpu"], &nodes, None),
            (&["gpu", "repo-a"], &nodes, None),
            (
                &["tpu"],
                &nodes,
                Some("waiting for a node with labels tpu (ORCA_NODE_LABELS); live nodes: a (gpu), b (repo-a,gpu)"),
            ),
            (
                &["gpu"],
                &[],
                Some("waiting for a node with labels gpu (ORCA_NODE_LABELS); no node is live"),
            ),
        ];
        for (req, nodes, want) in table {
            assert_eq!(
                unroutable_reason(&s(req), nodes).as_deref(),
                *want,
                "{req:?}"
            );
        }
        assert_eq!(alive_since_ms(100_000, 30_000), 40_000);
    }
}

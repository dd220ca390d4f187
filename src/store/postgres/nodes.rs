//! The nodes of a fleet: each `orca run` registers its row (`orca_nodes`: id, labels,
//! heartbeat, running tasks) and renews it by heartbeat, so that `status` can list the live
//! nodes and say why a task no live node can run stays queued.

use super::rows::int;
use super::PostgresStore;
use crate::store::fleet::{Fleet, NodeRecord};
use crate::store::StoreError;

impl PostgresStore {
    /// Registers this node (or renews its row after a restart): its labels and how many
    /// tasks it runs at most. Other nodes are notified (the fleet changed).
    pub fn register_node(
        &self,
        labels: &[String],
        max_running: u32,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO orca_nodes (id, labels, started_at_ms, heartbeat_at_ms, running, \
                 max_running) VALUES ($1, $2, $3, $3, 0, $4) \
                 ON CONFLICT (id) DO UPDATE SET labels = $2, started_at_ms = $3, \
                 heartbeat_at_ms = $3, running = 0, max_running = $4",
                &[&self.node, &labels, &now_ms, &int(max_running)],
            )
            .map(|_| ())
        })
    }

    /// Renews this node's row with its running count; false when the row is gone (another
    /// node pruned it as dead): register again. Not a change other nodes act on (no notify).
    pub fn node_heartbeat(&self, running: u32, now_ms: i64) -> Result<bool, StoreError> {
        let rows = self.read(
            "UPDATE orca_nodes SET heartbeat_at_ms = $2, running = $3 WHERE id = $1 RETURNING id",
            &[&self.node, &now_ms, &int(running)],
        )?;
        Ok(!rows.is_empty())
    }

    /// Removes this node's row (a clean stop).
    pub fn unregister_node(&self) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute("DELETE FROM orca_nodes WHERE id = $1", &[&self.node])
                .map(|_| ())
        })
    }

    /// The nodes whose last heartbeat is at `alive_since_ms` or later (all when None), by id.
    pub fn nodes(&self, alive_since_ms: Option<i64>) -> Result<Vec<NodeRecord>, StoreError> {
        let rows = self.read(
            "SELECT id, labels, started_at_ms, heartbeat_at_ms, running, max_running \
             FROM orca_nodes WHERE $1::int8 IS NULL OR heartbeat_at_ms >= $1 ORDER BY id",
            &[&alive_since_ms],
        )?;
        rows.iter()
            .map(|r| {
                let get_err = |e| self.err(e);
                let running: i32 = r.try_get(4).map_err(get_err)?;
                let max_running: i32 = r.try_get(5).map_err(get_err)?;
                Ok(NodeRecord {
                    id: r.try_get(0).map_err(get_err)?,
                    labels: r.try_get(1).map_err(get_err)?,
                    started_at_ms: r.try_get(2).map_err(get_err)?,
                    heartbeat_at_ms: r.try_get(3).map_err(get_err)?,
                    running: u32::try_from(running).unwrap_or(0),
                    max_running: u32::try_from(max_running).unwrap_or(0),
                })
            })
            .collect()
    }
}

impl Fleet for PostgresStore {
    fn node_id(&self) -> &str {
        &self.node
    }

    fn register(&self, labels: &[String], max_running: u32, now_ms: i64) -> Result<(), StoreError> {
        self.register_node(labels, max_running, now_ms)
    }

    fn node_heartbeat(&self, running: u32, now_ms: i64) -> Result<bool, StoreError> {
        PostgresStore::node_heartbeat(self, running, now_ms)
    }

    fn unregister(&self) -> Result<(), StoreError> {
        self.unregister_node()
    }

    fn nodes(&self, alive_since_ms: Option<i64>) -> Result<Vec<NodeRecord>, StoreError> {
        PostgresStore::nodes(self, alive_since_ms)
    }

    fn recover_own(&self) -> Result<Vec<String>, StoreError> {
        self.recover_owner(&self.node)
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.read("SELECT 1", &[]).map(|_| ())
    }

    fn origin(&self) -> &str {
        &self.origin
    }

    fn origin_of(&self, id: &str) -> Result<Option<String>, StoreError> {
        let rows = self.read("SELECT origin_node FROM orca_tasks WHERE id = $1", &[&id])?;
        match rows.first() {
            Some(r) => r.try_get(0).map(Some).map_err(|e| self.err(e)),
            None => Ok(None),
        }
    }

    fn store_result(
        &self,
        id: &str,
        attempt: u32,
        result: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let text = super::rows::to_json(result)?;
        self.write(|tx| {
            tx.execute(
                "UPDATE orca_tasks SET result = $3 WHERE id = $1 AND attempts = $2 \
                 AND NOT finalized",
                &[&id, &int(attempt), &text],
            )
            .map(|_| ())
        })
    }

    fn put_events(&self, events: &[(Option<&str>, &str)]) -> Result<(), StoreError> {
        PostgresStore::put_events(self, events)
    }

    fn events_after(
        &self,
        after: i64,
        task: Option<&str>,
        last: Option<usize>,
    ) -> Result<Vec<crate::store::fleet::SharedEvent>, StoreError> {
        PostgresStore::events_after(self, after, task, last)
    }
}

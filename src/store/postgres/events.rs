//! The fleet's event log in PostgreSQL (`orca_events`): each node appends the lines it
//! publishes, in batches; `orca tail-events` on any node reads them back.

use super::PostgresStore;
use crate::store::fleet::SharedEvent;
use crate::store::StoreError;

impl PostgresStore {
    /// [`Fleet::put_events`](crate::store::Fleet::put_events): one insert of all of them. No
    /// notification (followers poll).
    pub fn put_events(&self, events: &[(Option<&str>, &str)]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let tasks: Vec<Option<&str>> = events.iter().map(|e| e.0).collect();
        let lines: Vec<&str> = events.iter().map(|e| e.1).collect();
        self.write_quiet(|tx| {
            tx.execute(
                "INSERT INTO orca_events (node, task_id, line) \
                 SELECT $1, t, l FROM unnest($2::text[], $3::text[]) AS u(t, l)",
                &[&self.node, &tasks, &lines],
            )
            .map(|_| ())
        })
    }

    /// [`Fleet::events_after`](crate::store::Fleet::events_after).
    pub fn events_after(
        &self,
        after: i64,
        task: Option<&str>,
        last: Option<usize>,
    ) -> Result<Vec<SharedEvent>, StoreError> {
        // Newest first when only the last few are wanted, then put back in order.
        const SQL: &str = "SELECT seq, node, line FROM orca_events WHERE seq > $1 \
             AND ($2::text IS NULL OR task_id = $2) \
             ORDER BY CASE WHEN $3::int8 IS NULL THEN seq ELSE -seq END LIMIT $3";
        let limit = last.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let rows = self.read(SQL, &[&after, &task, &limit])?;
        let mut out = rows
            .iter()
            .map(|r| {
                let get = |e| self.err(e);
                Ok(SharedEvent {
                    seq: r.try_get(0).map_err(get)?,
                    node: r.try_get(1).map_err(get)?,
                    line: r.try_get(2).map_err(get)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by_key(|e| e.seq);
        Ok(out)
    }
}

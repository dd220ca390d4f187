//! The durable queue: the `Store` trait (claim with lease, heartbeat, finish) and SQLite.

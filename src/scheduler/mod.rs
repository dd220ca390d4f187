//! Scheduler and daemon: priority order, the worker pool, retries, leases, shutdown.

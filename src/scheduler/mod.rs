//! Scheduler and daemon (`orca run`): intake to store, priority order, the worker pool,
//! retries with backoff, cancellation, leases, crash recovery, reload and shutdown.

pub mod backoff;
pub mod daemon;
pub mod finalize;
pub mod resume;

pub use daemon::run;

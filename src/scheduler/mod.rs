//! Scheduler and daemon (`orca run`): the daemon wires intake, the store and the workers;
//! workers run attempts; the policy decides what follows an attempt (retries, backoff).

pub mod backoff;
pub mod daemon;
pub mod finalize;
mod fixing;
mod fleet;
mod mediation;
pub mod policy;
pub mod resume;
mod worker;

pub use daemon::{run, run_with_agent};

//! Orca: an AI task orchestrator. Users drop `.task.md` files into `tasks/`; Orca queues
//! them durably, runs a coding agent (Claude Code) on each, and writes verified results.
//!
//! Modules follow the data: `intake` -> `store` -> `scheduler` -> `runner` -> `artifacts`
//! -> `events`; `task` is the file format, `config` the settings, `cli` the command line.

pub mod artifacts;
pub mod cli;
pub mod clock;
pub mod config;
pub mod events;
pub mod intake;
pub mod logging;
pub mod mediate;
pub mod ops;
pub mod path_memo;
pub mod runner;
pub mod scheduler;
pub mod store;
pub mod task;
pub mod telegram;
pub mod text_escape;
pub mod value_text;
pub mod verify;
pub mod workspace;

/// Orca's version, as written into results and printed by `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

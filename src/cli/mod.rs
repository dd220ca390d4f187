//! The command line of DESIGN §7 (clap derive) and the handlers of each command.

pub mod doctor;

/// Entry point of the `orca` binary.
pub fn main() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}

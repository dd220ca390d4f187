//! The `orca` binary: parses the command line and hands over to the library.

/// mimalloc instead of the C library's allocator: the daemon's many short-lived allocations
/// (a task's parse, its result document, its events) cost ~100 k instructions per task less
/// (bench/instructions.sh: 868 k -> 768 k), mostly glibc's fast-bin consolidation and chunk
/// unlinking. Built with `no_thp`, so its arenas are not advised into transparent huge
/// pages, which would add ~5 MiB of resident memory to an idle daemon.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    orca::cli::main()
}

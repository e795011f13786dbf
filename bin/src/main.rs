//! `cryptoutil`: parse the command line and hand over to [`cryptoutil_bin::cli::main`].

use std::process::ExitCode;

use clap::Parser as _;

/// mimalloc instead of glibc's malloc: tokio moves tasks between worker threads, so memory is
/// often freed on another thread than the one that allocated it, and glibc's per-arena locks
/// then cost a fifth of a busy KMS's time in lock waits and wake-ups (measured with perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cryptoutil_bin::cli::main(cryptoutil_bin::cli::Cli::parse())
}

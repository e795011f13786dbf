//! `cryptoutil`: parse the command line and hand over to [`cryptoutil_bin::cli::main`].

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    cryptoutil_bin::cli::main(cryptoutil_bin::cli::Cli::parse())
}

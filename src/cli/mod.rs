//! The thin command line: parse flags, call the library, render the result,
//! return the exit code. No migration logic lives here.
//!
//! `args.rs` has the global flags and the list of commands; each command is
//! one file in `commands/` (its flags, its library call, its rendering);
//! `output.rs` and `progress.rs` hold the rendering several commands share.

pub mod args;
pub mod commands;
pub mod output;
pub mod progress;
pub mod selection;

use std::path::Path;

use migsafe::error::{Error, Result};
use migsafe::events::Interrupt;

use args::Cli;
pub use commands::name as command_name;

/// Runs the parsed command; returns the exit code on success paths that are
/// not plain 0 (a plan that would be refused exits 1).
pub async fn run(cli: Cli, interrupt: Interrupt) -> Result<i32> {
    let cwd = std::env::current_dir()
        .map_err(|e| Error::io(Path::new("."), "read the working directory", &e))?;
    let ctx = commands::Context {
        global: &cli.global,
        cwd,
        interrupt,
    };
    commands::exec(&cli.command, &ctx).await
}

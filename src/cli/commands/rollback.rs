//! `migsafe rollback`: down scripts, newest first, after a backup.

use migsafe::error::Result;
use migsafe::pipeline::rollback::RollbackOptions;

use super::Context;
use crate::cli::output::render_runs;
use crate::cli::selection::parse_version;

/// `rollback` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many applied migrations to undo [default: 1].
    #[arg(long, value_name = "N", conflicts_with = "to")]
    pub steps: Option<usize>,
    /// Undo every applied migration newer than VERSION.
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// Do not take a pg_dump backup first.
    #[arg(long)]
    pub skip_backup: bool,
}

/// Rolls back; reports what was undone per namespace.
pub async fn exec(args: &Args, ctx: &Context<'_>) -> Result<i32> {
    let migrator = ctx.migrator(true)?;
    let options = RollbackOptions {
        steps: args.steps,
        to: args.to.as_deref().map(parse_version).transpose()?,
        skip_backup: args.skip_backup,
    };
    let runs = migrator.rollback(ctx.target(), &options).await?;
    render_runs(
        "rollback",
        &runs,
        ctx.json(),
        "rolled back",
        "nothing to roll back",
    );
    Ok(0)
}

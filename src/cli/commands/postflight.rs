//! `migsafe postflight`: read-only checks of the database after migrating;
//! exit 3 on a failure.

use migsafe::error::Result;
use migsafe::report::Status;

use super::Context;
use crate::cli::output::{json, render_phase};

/// `postflight` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Look for orphaned rows behind every foreign key, not only NOT VALID ones.
    #[arg(long)]
    pub deep: bool,
}

/// Runs the checks and prints the report.
pub async fn exec(args: &Args, ctx: &Context<'_>) -> Result<i32> {
    let migrator = ctx.migrator(false)?;
    let report = migrator.postflight(ctx.target(), args.deep).await?;
    if ctx.json() {
        json("postflight", &report);
    } else {
        render_phase(&report);
    }
    Ok(if report.result == Status::Fail { 3 } else { 0 })
}

//! `migsafe preflight`: the read-only checks apply runs first, on their
//! own; a report in the log directory; exit 1 on a failure.

use migsafe::error::Result;
use migsafe::report::Status;

use super::Context;
use crate::cli::output::{json, render_phase};
use crate::cli::selection::{Selection, apply_options};

/// `preflight` options: which pending migrations.
pub type Args = Selection;

/// Runs the checks per namespace and prints each report.
pub async fn exec(args: &Args, ctx: &Context<'_>) -> Result<i32> {
    let migrator = ctx.migrator(false)?;
    let reports = migrator
        .preflight(ctx.target(), &apply_options(args)?)
        .await?;
    let failed = reports.iter().any(|r| r.result == Status::Fail);
    if ctx.json() {
        json("preflight", &serde_json::json!({ "reports": reports }));
    } else {
        for report in &reports {
            render_phase(report);
        }
    }
    Ok(if failed { 1 } else { 0 })
}

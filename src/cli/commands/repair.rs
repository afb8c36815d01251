//! `migsafe repair`: change the history by hand (accept a checksum, clear
//! a dirty flag, forget a row), with a reason kept in the audit table.

use migsafe::error::{Code, Error, Result};
use migsafe::pipeline::repair::RepairAction;

use super::Context;
use crate::cli::output::{json, out};
use crate::cli::selection::parse_version;

/// `repair` options: exactly one action, and a reason.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Record the file's current checksum for an applied VERSION (cosmetic edits only).
    #[arg(long, value_name = "VERSION", conflicts_with_all = ["clear_dirty", "forget"])]
    pub accept_checksum: Option<String>,
    /// Mark a dirty VERSION as finished (you completed its statements by hand).
    #[arg(long, value_name = "VERSION", conflicts_with = "forget")]
    pub clear_dirty: Option<String>,
    /// Delete VERSION's history row (you undid it by hand; it becomes pending).
    #[arg(long, value_name = "VERSION")]
    pub forget: Option<String>,
    /// Why; kept in the audit table and the event log.
    #[arg(long, required = true)]
    pub reason: String,
}

/// Repairs; lists what changed.
pub async fn exec(args: &Args, ctx: &Context<'_>) -> Result<i32> {
    let migrator = ctx.migrator(true)?;
    let action = match (&args.accept_checksum, &args.clear_dirty, &args.forget) {
        (Some(v), _, _) => RepairAction::AcceptChecksum(parse_version(v)?),
        (_, Some(v), _) => RepairAction::ClearDirty(parse_version(v)?),
        (_, _, Some(v)) => RepairAction::Forget(parse_version(v)?),
        _ => {
            return Err(Error::config(
                Code::Usage,
                "give --accept-checksum, --clear-dirty or --forget",
            ));
        }
    };
    let repaired = migrator.repair(ctx.target(), &action, &args.reason).await?;
    if ctx.json() {
        json("repair", &serde_json::json!({ "repaired": repaired }));
    } else {
        for r in &repaired {
            out(&format!(
                "{}: {} {}{} (recorded in the audit table)",
                r.namespace,
                r.action,
                r.version,
                r.detail
                    .as_ref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ));
        }
    }
    Ok(0)
}

//! `migsafe adopt [--from TOOL] [--dry-run]`: take over another migration
//! tool's history (SPEC 14). The library reads that tool's table, matches it
//! to the files and records it; this file renders what it recorded.

use migsafe::adopt::Tool;
use migsafe::error::Result;

use super::Context;
use crate::cli::output::{BOLD, DIM, json, out, paint};

/// `adopt` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tool whose history to take over: golang-migrate, dbmate, sqlx,
    /// diesel, flyway, goose, sql-migrate, pop, prisma, drizzle, sqitch, liquibase [default: the one whose
    /// history table is present].
    #[arg(long, value_name = "TOOL")]
    pub from: Option<String>,
    /// Print what would be recorded; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Adopts; lists what was (or would be) recorded.
pub async fn exec(args: &Args, ctx: &Context<'_>) -> Result<i32> {
    let from = args.from.as_deref().map(Tool::parse).transpose()?;
    let migrator = ctx.migrator(!args.dry_run)?;
    let adoptions = migrator.adopt(ctx.target(), from, args.dry_run).await?;
    if ctx.json() {
        json(
            "adopt",
            &serde_json::json!({ "dry_run": args.dry_run, "namespaces": adoptions }),
        );
        return Ok(0);
    }
    for adoption in &adoptions {
        let verb = if adoption.dry_run {
            "would record"
        } else {
            "recorded"
        };
        out(&paint(
            BOLD,
            format!(
                "{}: {verb} {} migration(s) from {} ({})",
                adoption.namespace,
                adoption.recorded.len(),
                adoption.tool,
                adoption.table
            ),
        ));
        for adopted in &adoption.recorded {
            let time = if adopted.original_time {
                String::new()
            } else {
                paint(DIM, "  (the tool keeps no time: adoption time)")
            };
            let again = if adopted.runs_again {
                paint(
                    DIM,
                    "  (changed since that run: `migsafe apply` runs it again)",
                )
            } else {
                String::new()
            };
            out(&format!(
                "  {:<16} {:<36} applied {}{time}{again}",
                adopted.version,
                adopted.name,
                adopted.applied_at.format("%Y-%m-%d %H:%M:%S UTC"),
            ));
        }
        if !adoption.already_recorded.is_empty() {
            out(&format!(
                "  already in migsafe's history: {}",
                adoption.already_recorded.join(", ")
            ));
        }
        if !adoption.pending.is_empty() {
            out(&format!(
                "  not applied by {}, left pending for `migsafe apply`: {}",
                adoption.tool,
                adoption.pending.join(", ")
            ));
        }
    }
    Ok(0)
}

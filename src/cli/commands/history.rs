//! `migsafe history`: the applied migrations of each namespace, with when,
//! how long and who.

use serde::Serialize;

use migsafe::config::format_duration;
use migsafe::error::Result;

use super::Context;
use crate::cli::output::{BOLD, RED, json, out, paint};

/// `history` takes no flags of its own.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Reads the history tables and prints one line per applied migration.
pub async fn exec(_args: &Args, ctx: &Context<'_>) -> Result<i32> {
    let migrator = ctx.migrator(false)?;
    let histories = migrator.history(ctx.target()).await?;
    if ctx.json() {
        #[derive(Serialize)]
        struct Body {
            namespaces: Vec<serde_json::Value>,
        }
        let namespaces = histories
            .iter()
            .map(|(ns, rows)| serde_json::json!({ "namespace": ns, "applied": rows }))
            .collect();
        json("history", &Body { namespaces });
        return Ok(0);
    }
    for (namespace, rows) in &histories {
        out(&paint(
            BOLD,
            format!("{namespace} ({} applied)", rows.len()),
        ));
        for row in rows {
            let dirty = if row.dirty {
                paint(RED, " DIRTY")
            } else {
                String::new()
            };
            out(&format!(
                "  {:<16} {:<36} {}  {:>8}  {}{dirty}",
                row.version.as_str(),
                row.name,
                row.applied_at.format("%Y-%m-%d %H:%M:%S UTC"),
                format_duration(std::time::Duration::from_millis(
                    u64::try_from(row.execution_ms).unwrap_or(0)
                )),
                row.applied_by
            ));
        }
    }
    Ok(0)
}

//! `migsafe stamp VERSION`: record versions as applied without running
//! them (a baseline for a database that already has the schema).

use migsafe::error::Result;

use super::Context;
use crate::cli::output::{json, out};
use crate::cli::selection::parse_version;

/// `stamp` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The newest version to record.
    #[arg(value_name = "VERSION")]
    pub up_to: String,
}

/// Stamps; lists what was recorded.
pub async fn exec(args: &Args, ctx: &Context<'_>) -> Result<i32> {
    let migrator = ctx.migrator(true)?;
    let version = parse_version(&args.up_to)?;
    let stamped = migrator.stamp(ctx.target(), &version).await?;
    if ctx.json() {
        json("stamp", &serde_json::json!({ "stamped": stamped }));
    } else if stamped.is_empty() {
        out("nothing to stamp: every version up to it is already recorded");
    } else {
        out(&format!(
            "recorded as applied without running: {}",
            stamped.join(", ")
        ));
    }
    Ok(0)
}

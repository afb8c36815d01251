//! `migsafe wait`: block until the database accepts connections (and, with
//! `--migrated`, every namespace is fully applied); exit 7 on the timeout.

use migsafe::config::format_duration;
use migsafe::error::Result;

use super::Context;
use crate::cli::output::{json, out};

/// `wait` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Give up after this long (exit 7).
    #[arg(long, default_value = "60s", value_parser = parse_duration_arg)]
    pub timeout: std::time::Duration,
    /// Also wait until every namespace is fully applied, clean and unedited.
    #[arg(long)]
    pub migrated: bool,
}

fn parse_duration_arg(text: &str) -> Result<std::time::Duration, String> {
    migsafe::config::parse_duration(text)
}

/// Waits and says how long it took.
pub async fn exec(args: &Args, ctx: &Context<'_>) -> Result<i32> {
    let migrator = ctx.migrator(false)?;
    let took = migrator
        .wait(ctx.target(), args.timeout, args.migrated)
        .await?;
    if ctx.json() {
        json(
            "wait",
            &serde_json::json!({ "ready": true, "waited_ms": took.as_millis() as u64 }),
        );
    } else {
        out(&format!(
            "ready{} after {}",
            if args.migrated {
                " and fully migrated"
            } else {
                ""
            },
            format_duration(took)
        ));
    }
    Ok(0)
}

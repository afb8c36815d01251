//! `migsafe init`: a commented migsafe.toml and a migrations/ directory in
//! the working directory. Runs without a config (there is none yet).

use migsafe::error::Result;
use migsafe::source::scaffold;

use super::Context;
use crate::cli::output::{json, out, report_created};

/// `init` takes no flags of its own.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Writes the files; reports what was created and updated.
pub async fn exec(_args: &Args, ctx: &Context<'_>) -> Result<i32> {
    let done = scaffold::init(&ctx.cwd)?;
    if ctx.json() {
        json("init", &done);
    } else {
        report_created("init", &done.created, false);
        for path in &done.updated {
            out(&format!(
                "updated {}: it now ignores {} (lines added at its end)",
                path.display(),
                scaffold::GITIGNORE_LINES.join(" and ")
            ));
        }
    }
    Ok(0)
}

//! `migsafe new NAME`: the next migration's files in the one selected
//! namespace, named after its next version.

use migsafe::error::{Code, Error, Result};
use migsafe::source::scaffold;

use super::Context;
use crate::cli::output::report_created;

/// `new` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What the migration does, e.g. add_email_to_users.
    pub name: String,
}

/// Creates the up and down files (or one when forward-only).
pub async fn exec(args: &Args, ctx: &Context<'_>) -> Result<i32> {
    let migrator = ctx.migrator(false)?;
    let selected = migrator.sources(ctx.target())?;
    if selected.len() != 1 {
        return Err(Error::config(
            Code::Usage,
            "`new` needs one namespace: name it with --target",
        ));
    }
    let (namespace, set) = &selected[0];
    let version = scaffold::next_version(set, chrono::Utc::now());
    let created = scaffold::new_migration(
        &namespace.dir,
        &version,
        &args.name,
        namespace.forward_only || set.forward_only(),
        namespace
            .layout
            .or_else(|| set.migrations.last().map(|m| m.layout)),
    )?;
    report_created("new", &created, ctx.json());
    Ok(0)
}

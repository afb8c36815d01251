//! `migsafe apply`: the guarded pipeline (preflight, backup, apply under
//! the namespace lock, postflight), or with `--sql` a psql-runnable script.

use migsafe::error::Result;

use super::Context;
use crate::cli::output::{json, render_runs};
use crate::cli::selection::{Selection, apply_options};

/// `apply` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which migrations.
    #[command(flatten)]
    pub selection: Selection,
    /// Print a psql-runnable script (with history inserts) instead of running.
    #[arg(long)]
    pub sql: bool,
    /// Go on although preflight fails (recorded in the report; never overrides
    /// dirty or edited migrations).
    #[arg(long)]
    pub force: bool,
    /// Do not take a pg_dump backup first.
    #[arg(long)]
    pub skip_backup: bool,
    /// Do not run the postflight checks (the schema checksum is still recorded).
    #[arg(long)]
    pub no_postflight: bool,
    /// Postflight looks for orphaned rows behind every foreign key.
    #[arg(long)]
    pub deep: bool,
}

/// Applies (or prints the script); reports what ran per namespace.
pub async fn exec(args: &Args, ctx: &Context<'_>) -> Result<i32> {
    let migrator = ctx.migrator(!args.sql)?;
    let mut options = apply_options(&args.selection)?;
    options.force = args.force;
    options.skip_backup = args.skip_backup;
    options.skip_postflight = args.no_postflight;
    options.deep = args.deep;
    if args.sql {
        let script = migrator.apply_sql(ctx.target(), &options).await?;
        // A script with a secret masked would run and be wrong (a role
        // whose password is `****`); one with it shown would leak it.
        if migsafe::db::scrub(&script) != script {
            return Err(migsafe::error::Error::config(
                migsafe::error::Code::Usage,
                "the script would hold a secret (the value of a placeholder named like a password or token, or the database password): migsafe neither prints it nor prints the script with it masked; nothing ran",
            )
            .with_hint("run `migsafe apply`, which sends it to the server without showing it; if the value is not a secret, give the placeholder a name without password/secret/token/pwd/credential in it"));
        }
        if ctx.json() {
            json("apply", &serde_json::json!({ "sql": script }));
        } else {
            print!("{script}");
        }
        return Ok(0);
    }
    let report = migrator.apply(ctx.target(), &options).await?;
    if ctx.json() {
        json("apply", &report);
    } else {
        render_runs("apply", &report.namespaces, false, "applied", "up to date");
    }
    Ok(0)
}

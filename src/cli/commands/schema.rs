//! `migsafe schema dump | checksum | diff`: the canonical schema (one
//! sorted line per object), its SHA-256, or what differs between two
//! databases (exit 6 with `--exit-code` when they differ).

use clap::Subcommand;

use migsafe::error::Result;

use super::Context;
use crate::cli::output::{err, json, out};

/// `schema` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

/// `schema` subcommands.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Print the canonical schema (one `object: definition` line each, sorted).
    Dump,
    /// Print the SHA-256 of the canonical schema.
    Checksum,
    /// Show what differs between two databases' schemas.
    Diff {
        /// The first database (the "before" side).
        #[arg(value_name = "URL-A")]
        url_a: String,
        /// The second database (the "after" side).
        #[arg(value_name = "URL-B")]
        url_b: String,
        /// Exit 6 when the schemas differ.
        #[arg(long)]
        exit_code: bool,
    },
}

/// Runs a `schema` subcommand.
pub async fn exec(args: &Args, ctx: &Context<'_>) -> Result<i32> {
    let migrator = ctx.migrator(false)?;
    match &args.action {
        Action::Dump => {
            let snapshot = migrator.snapshot(ctx.target(), None).await?;
            if ctx.json() {
                json(
                    "schema dump",
                    &serde_json::json!({ "checksum": snapshot.checksum(), "objects": snapshot.objects }),
                );
            } else {
                print!("{}", migsafe::db::scrub(&snapshot.canonical_text()));
            }
        }
        Action::Checksum => {
            let snapshot = migrator.snapshot(ctx.target(), None).await?;
            if ctx.json() {
                json(
                    "schema checksum",
                    &serde_json::json!({ "checksum": snapshot.checksum(), "objects": snapshot.objects.len() }),
                );
            } else {
                out(&snapshot.checksum());
            }
        }
        Action::Diff {
            url_a,
            url_b,
            exit_code,
        } => {
            let (a, b) = tokio::join!(
                migrator.snapshot(None, Some(url_a)),
                migrator.snapshot(None, Some(url_b))
            );
            let (a, b) = (a?, b?);
            let changes = migsafe::schema::diff(&a, &b);
            if ctx.json() {
                json(
                    "schema diff",
                    &serde_json::json!({
                        "checksum_a": a.checksum(),
                        "checksum_b": b.checksum(),
                        "identical": changes.is_empty(),
                        "changes": changes,
                    }),
                );
            } else if changes.is_empty() {
                out(&format!(
                    "identical schemas ({} objects, checksum {})",
                    a.objects.len(),
                    a.checksum()
                ));
            } else {
                print!(
                    "{}",
                    migsafe::db::scrub(&migsafe::schema::diff::render(&changes))
                );
                err(&format!("{} difference(s)", changes.len()));
            }
            if *exit_code && !changes.is_empty() {
                return Ok(6);
            }
        }
    }
    Ok(0)
}

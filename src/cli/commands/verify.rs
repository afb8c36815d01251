//! `migsafe verify`: every migration up, down, up on a scratch database (or
//! with `--quick` all up, all down, all up); exit 6 on a failure.

use migsafe::config::format_duration;
use migsafe::error::Result;
use migsafe::report::Status;
use migsafe::verify::{VerifyOptions, VerifyReport};

use super::Context;
use crate::cli::output::{BOLD, DIM, GREEN, RED, YELLOW, json, out, paint};

/// `verify` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A server where verify creates (and always drops) a scratch database;
    /// without it, a sandbox is started. Never the production database.
    #[arg(long, value_name = "URL")]
    pub scratch_url: Option<String>,
    /// The default (each migration up, down, up); accepted so older scripts keep working.
    #[arg(long, conflicts_with = "quick")]
    pub stepwise: bool,
    /// Only all up, all down, all up: faster but weaker — a down script that
    /// forgets something a later down script removes (a column of a table
    /// dropped later) passes.
    #[arg(long)]
    pub quick: bool,
    /// Warnings fail the run (exit 6): migrations over `migration_time_budget`, and
    /// migrations without a down script in a namespace that has down scripts.
    #[arg(long)]
    pub strict: bool,
}

/// Verifies and prints the result per namespace.
pub async fn exec(args: &Args, ctx: &Context<'_>) -> Result<i32> {
    let migrator = ctx.migrator(false)?;
    let options = VerifyOptions {
        quick: args.quick,
        strict: args.strict,
        ..VerifyOptions::default()
    };
    let report = migrator
        .verify(ctx.target(), args.scratch_url.as_deref(), &options)
        .await?;
    if ctx.json() {
        json("verify", &report);
    } else {
        render_verify(&report, &options);
    }
    Ok(report.exit_code())
}

fn render_verify(report: &VerifyReport, options: &VerifyOptions) {
    for namespace in &report.namespaces {
        let mode = if namespace.forward_only {
            "forward-only: up only, nothing to reverse"
        } else if options.quick {
            "quick: all up, all down, all up; a down that misses what a later down removes still passes"
        } else {
            "each migration up, down, up"
        };
        out(&format!(
            "{}: {} migration(s) verified ({mode})",
            paint(BOLD, &namespace.namespace),
            namespace.migrations.len()
        ));
    }
    let details = migsafe::verify::describe(report);
    if !details.is_empty() {
        out(details.trim_end());
    }
    let (word, style) = match report.result {
        Status::Pass => ("verify passed", GREEN),
        Status::Warn => ("verify passed with warnings", YELLOW),
        Status::Fail => ("verify FAILED", RED),
    };
    out(&format!(
        "{} {}",
        paint(style, word),
        paint(
            DIM,
            format!(
                "({}, on a scratch database: {})",
                format_duration(std::time::Duration::from_millis(report.duration_ms)),
                report.scratch
            )
        )
    ));
}

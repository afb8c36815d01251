//! Which migrations a command works on: the `--steps`/`--to` selection that
//! plan, apply and preflight share, and versions typed on the command line.

use clap::Args;

use migsafe::error::{Code, Error, Result};
use migsafe::pipeline::apply::ApplyOptions;
use migsafe::plan::Tolerance;
use migsafe::source::Version;

/// Which pending migrations.
#[derive(Debug, Args, Clone, Default)]
pub struct Selection {
    /// Only the first N pending migrations.
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// Only up to and including this version.
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// Apply pending versions older than the newest applied one.
    #[arg(long)]
    pub allow_out_of_order: bool,
    /// Go on although applied versions have no file.
    #[arg(long)]
    pub ignore_missing: bool,
    /// Let recovery of an interrupted migration run its down script even
    /// though that destroys rows written after the interruption (they are in
    /// the backup taken first).
    #[arg(long)]
    pub recover: bool,
    /// Run risky statements (CREATE INDEX, ADD FOREIGN KEY / CHECK / UNIQUE /
    /// PRIMARY KEY, SET NOT NULL) in their online form, step by step
    /// (docs/online.md).
    #[arg(long)]
    pub online: bool,
}

/// A version given on the command line; a bad one is a usage error.
pub fn parse_version(text: &str) -> Result<Version> {
    Version::parse(text)
        .map_err(|e| Error::config(Code::Usage, format!("`{text}` is not a version: {e}")))
}

/// The library's options for a selection (apply adds its own flags).
pub fn apply_options(selection: &Selection) -> Result<ApplyOptions> {
    Ok(ApplyOptions {
        steps: selection.steps,
        to: selection.to.as_deref().map(parse_version).transpose()?,
        tolerance: Tolerance {
            allow_out_of_order: selection.allow_out_of_order,
            ignore_missing: selection.ignore_missing,
            recover: selection.recover,
            ..Tolerance::default()
        },
        online: selection.online,
        ..ApplyOptions::default()
    })
}

//! `migsafe check --profile NAME`: a readiness profile's rules, every unmet
//! one with its reason code; exit 7 when any is unmet.

use migsafe::error::Result;

use super::Context;
use crate::cli::output::{GREEN, RED, json, out, paint};

/// `check` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The profile, `[profiles.<name>]` in migsafe.toml.
    #[arg(long)]
    pub profile: String,
    /// Also require every namespace applied, clean and unedited.
    #[arg(long)]
    pub check_migrations: bool,
}

/// Checks the profile and lists the unmet rules.
pub async fn exec(args: &Args, ctx: &Context<'_>) -> Result<i32> {
    let migrator = ctx.migrator(false)?;
    let profile = &args.profile;
    let unmet = migrator
        .check(ctx.target(), profile, args.check_migrations)
        .await?;
    if ctx.json() {
        json(
            "check",
            &serde_json::json!({ "profile": profile, "ready": unmet.is_empty(), "unmet": unmet }),
        );
    } else if unmet.is_empty() {
        out(&format!(
            "profile `{profile}`: {}",
            paint(GREEN, "every rule is met")
        ));
    } else {
        for rule in &unmet {
            out(&format!(
                "{} {}",
                paint(RED, format!("[{}]", rule.reason)),
                rule.message
            ));
        }
        out(&format!(
            "profile `{profile}`: {} rule(s) not met; do not start the application",
            unmet.len()
        ));
    }
    Ok(if unmet.is_empty() { 0 } else { 7 })
}

//! `migsafe sandbox [-- CMD…]`: a throwaway server for trying things (its
//! URL printed, or CMD run against it). Runs without a config.

use std::process::Stdio;

use clap::Args as ClapArgs;

use migsafe::error::{Code, Error, ReasonCode, Result};
use migsafe::sandbox::Sandbox;

use super::Context;
use crate::cli::output::{err, json};

/// `sandbox` options.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Also start N streaming standbys of it (pg_basebackup -R, each on
    /// its own port); their URLs are printed after the primary's.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub standbys: usize,
    /// A command to run with DATABASE_URL set; the server stops when it ends.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Starts a sandbox off the async runtime (initdb takes a few seconds).
pub(super) async fn start() -> Result<Sandbox> {
    start_with_standbys(0).await
}

/// Starts a sandbox with `standbys` streaming standbys, off the runtime.
async fn start_with_standbys(standbys: usize) -> Result<Sandbox> {
    tokio::task::spawn_blocking(move || Sandbox::start_with_standbys(standbys))
        .await
        .map_err(|e| Error::Sandbox {
            reason: ReasonCode::new(Code::SandboxFailed),
            message: format!("the sandbox start-up task failed: {e}"),
            source: None,
        })?
}

/// Starts the sandbox; prints its URL and waits for Ctrl-C, or runs CMD.
pub async fn exec(args: &Args, ctx: &Context<'_>) -> Result<i32> {
    let (command, interrupt, json_format) = (&args.command, ctx.interrupt.clone(), ctx.json());
    err("starting a throwaway PostgreSQL (initdb in a temporary directory)…");
    let mut sandbox = start_with_standbys(args.standbys).await?;
    let url = sandbox.url("postgres");
    let standbys: Vec<serde_json::Value> = sandbox
        .standbys()
        .iter()
        .map(
            |s| serde_json::json!({ "name": s.name(), "url": s.url("postgres"), "port": s.port() }),
        )
        .collect();
    if command.is_empty() {
        // The URL (with its throwaway password) is the product here: print it.
        if json_format {
            json(
                "sandbox",
                &serde_json::json!({ "url": url, "port": sandbox.port(), "standbys": standbys }),
            );
        } else {
            println!("{url}");
            for standby in sandbox.standbys() {
                println!("{}", standby.url("postgres"));
                err(&format!(
                    "{} streams from it on port {} (read-only)",
                    standby.name(),
                    standby.port()
                ));
            }
            err(&format!(
                "ready on port {}; try: DATABASE_URL='{url}' migsafe status\nCtrl-C stops it and deletes everything.",
                sandbox.port()
            ));
        }
        interrupt.wait().await;
        err("stopping the sandbox…");
        tokio::task::spawn_blocking(move || sandbox.stop())
            .await
            .ok();
        return Ok(0);
    }
    let mut child = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .env("DATABASE_URL", &url)
        .stdin(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::config(Code::Usage, format!("cannot run {}: {e}", command[0])))?;
    let status = tokio::select! {
        status = child.wait() => status.ok(),
        () = interrupt.wait() => {
            let _ = child.kill().await;
            None
        }
    };
    tokio::task::spawn_blocking(move || sandbox.stop())
        .await
        .ok();
    Ok(status.and_then(|s| s.code()).unwrap_or(130))
}

//! `migsafe backup create | list | verify | restore`: pg_dump backups, and
//! which database (on which server) each one holds.

use std::path::PathBuf;

use clap::Subcommand;

use migsafe::error::{Code, Error, Result};
use migsafe::pipeline::backup::{BackupFile, Recorded, RestoreOptions, Restored};
use migsafe::pipeline::preflight::human_bytes;

use super::Context;
use crate::cli::output::{BOLD, YELLOW, json, out, paint};

/// `backup` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

/// `backup` subcommands.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Write a verified pg_dump (custom format) into the backup directory.
    Create,
    /// List the backups, newest first.
    List,
    /// Check that a backup can be read back (pg_restore --list).
    Verify {
        /// The backup file.
        file: PathBuf,
    },
    /// Restore a backup into the database (pg_restore --clean, in one
    /// transaction), after a verified safety backup of the database as it is.
    Restore {
        /// The backup file.
        file: PathBuf,
        /// Confirm: this replaces the objects in the backup, and migsafe's history.
        #[arg(long)]
        yes: bool,
        /// Do not back up the current database first (you have another copy).
        #[arg(long)]
        no_safety_backup: bool,
    },
}

/// Runs a `backup` subcommand.
pub async fn exec(args: &Args, ctx: &Context<'_>) -> Result<i32> {
    let migrator = ctx.migrator(false)?;
    let (target, json_format) = (ctx.target(), ctx.json());
    match &args.action {
        Action::Create => {
            let file = migrator.backup(target).await?;
            if json_format {
                json("backup create", &file);
            } else {
                out(&format!("{}", file.path.display()));
            }
        }
        Action::List => {
            let dir = &migrator.config().backup.dir;
            let files = migsafe::pipeline::backup::list_described(dir).await?;
            if json_format {
                json("backup list", &serde_json::json!({ "backups": files }));
            } else if files.is_empty() {
                out(&format!("no backups in {}", dir.display()));
            } else {
                for file in &files {
                    out(&format!(
                        "{}  {:>9}  {}",
                        file.path.display(),
                        human_bytes(file.bytes),
                        origin(file)
                    ));
                }
            }
        }
        Action::Verify { file } => {
            let checked = migsafe::pipeline::backup::verify(file).await?;
            if json_format {
                json("backup verify", &checked);
            } else {
                out(&format!(
                    "{}: readable, {} entries, {}",
                    file.display(),
                    checked.entries.unwrap_or(0),
                    origin(&checked)
                ));
            }
        }
        Action::Restore {
            file,
            yes,
            no_safety_backup,
        } => {
            if !yes {
                return Err(Error::config(
                    Code::Usage,
                    format!(
                        "restoring {} replaces the objects it holds in the database, and migsafe's history with the one in the dump; add --yes to go on (a safety backup of the database is taken first)",
                        file.display()
                    ),
                ));
            }
            let options = RestoreOptions {
                safety_backup: !no_safety_backup,
            };
            let restored = migrator.restore(target, file, &options).await?;
            if json_format {
                json("backup restore", &restored);
            } else {
                render_restored(&restored);
            }
        }
    }
    Ok(0)
}

/// `database app on db.internal:5432`, as far as it is known.
fn origin(file: &BackupFile) -> String {
    match (&file.database, &file.server) {
        (Some(db), Some(server)) => format!("database {db} on {server}"),
        (Some(db), None) => format!("database {db} (server not recorded)"),
        (None, _) => "database unknown (pg_restore could not read its header)".to_string(),
    }
}

/// What the restore did, what is kept safe, what to do next.
fn render_restored(restored: &Restored) {
    match &restored.safety_backup {
        Some(safety) => out(&format!(
            "safety backup of the database before the restore: {} (restore it to undo this)",
            safety.path.display()
        )),
        None => out(&paint(
            YELLOW,
            "no safety backup was taken (--no-safety-backup)",
        )),
    }
    let of = restored
        .dump_database
        .as_ref()
        .map(|db| format!(" (a dump of database {db})"))
        .unwrap_or_default();
    out(&format!(
        "restored {}{of} into {}",
        restored.restored.display(),
        restored.into
    ));
    let list = |rows: &[Recorded]| {
        rows.iter()
            .map(|r| format!("{} {}", r.namespace, r.version))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if restored.no_longer_recorded.is_empty() && restored.newly_recorded.is_empty() {
        out(
            "migsafe's history is the one in the dump, and records the same applied versions as before",
        );
        return;
    }
    out(&paint(
        BOLD,
        "migsafe's history in the database is now the one in the dump:",
    ));
    if !restored.no_longer_recorded.is_empty() {
        out(&format!(
            "  no longer recorded as applied: {}",
            list(&restored.no_longer_recorded)
        ));
    }
    if !restored.newly_recorded.is_empty() {
        out(&format!(
            "  now recorded as applied: {}",
            list(&restored.newly_recorded)
        ));
    }
    if !restored.no_longer_recorded.is_empty() {
        out(&format!(
            "{} `migsafe status` shows them as pending and `migsafe apply` would run them again; objects they created that the dump does not hold are not dropped by the restore, so check the schema (`migsafe schema dump`) first",
            paint(BOLD, "next:")
        ));
    }
}

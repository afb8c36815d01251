//! `migsafe backup create | list | verify | restore`: pg_dump backups, and
//! which database (on which server) each one holds.

use migsafe::Migrator;
use migsafe::error::{Code, Error, Result};
use migsafe::pipeline::backup::BackupFile;
use migsafe::pipeline::preflight::human_bytes;

use super::args::BackupAction;
use super::output::{json, out};

/// Runs a `backup` subcommand.
pub async fn backup(
    migrator: &Migrator,
    target: Option<&str>,
    action: &BackupAction,
    json_format: bool,
) -> Result<i32> {
    match action {
        BackupAction::Create => {
            let file = migrator.backup(target).await?;
            if json_format {
                json("backup create", &file);
            } else {
                out(&format!("{}", file.path.display()));
            }
        }
        BackupAction::List => {
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
        BackupAction::Verify { file } => {
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
        BackupAction::Restore { file, yes } => {
            if !yes {
                return Err(Error::config(
                    Code::Usage,
                    format!(
                        "restoring {} replaces the objects it holds in the database; add --yes to go on",
                        file.display()
                    ),
                ));
            }
            migrator.restore(target, file).await?;
            if json_format {
                json("backup restore", &serde_json::json!({ "restored": file }));
            } else {
                out(&format!("restored {}", file.display()));
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

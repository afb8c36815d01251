//! Writing new files: the commented `migsafe.toml` of `init`, and the next
//! migration of `new`. Never overwrites anything.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::layout::Layout;
use super::{MigrationSet, Version};
use crate::error::{Error, Result};

/// The commented configuration `migsafe init` writes.
pub const CONFIG_TEMPLATE: &str = r#"# migsafe configuration. Every key has a default; see docs/configuration.md.

# Schema of the history table (<history_schema>.schema_migrations).
history_schema = "migsafe"

[defaults]
lock_timeout = "1s"          # set before each migration: a blocked DDL gives up fast
lock_retries = 10            # retries on SQLSTATE 55P03, backoff 1s -> 30s + jitter
statement_timeout = "0"      # 0 = none
migration_time_budget = "30s"
long_transaction = "30s"     # preflight threshold
lock_wait = "5m"             # how long a runner waits for the namespace lock
allow_newer_applied = true   # versions applied by a newer release are noted, not refused (false: strict)
online = false               # true: risky DDL runs in its online form, as `apply --online` (docs/online.md)
batch_time = "200ms"         # target time of one `-- migsafe:backfill` batch

[backup]
dir = "backups/migrations"
keep = 10
sqlite_dir = "backups/sqlite" # online backups of SQLite files (cutover sqlite run)

[lint]
large_table = "10MB"         # size-dependent lint findings: error at or above, warning below

[logs]
keep = 50                    # report files kept per kind in the log directory (0 keeps all)

# One section per namespace; without any, `migrations/` is the namespace "default".
[namespaces.app]
dir = "migrations"
forward_only = false         # true: rollback refused, down files optional
# database_url_env = "APP_DATABASE_URL"   # used when neither --database-url nor DATABASE_URL is set
"#;

/// What `init` wrote.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Initialized {
    /// Files and directories it created.
    pub created: Vec<PathBuf>,
    /// Existing files it added lines to (a `.gitignore`).
    pub updated: Vec<PathBuf>,
}

/// What `.gitignore` needs so that backups (pg_dump files: the whole
/// database, data included) and run logs are never committed.
pub const GITIGNORE_LINES: &[&str] = &["backups/", "logs/"];

/// Writes `migsafe.toml` and `migrations/` in `dir`, and makes `.gitignore`
/// ignore `backups/` and `logs/` (creating it, or appending the lines it
/// lacks).
pub fn init(dir: &Path) -> Result<Initialized> {
    let config = dir.join(crate::config::CONFIG_FILE);
    write_new(&config, CONFIG_TEMPLATE.as_bytes())?;
    let mut done = Initialized {
        created: vec![config],
        updated: Vec::new(),
    };
    let migrations = dir.join("migrations");
    if !migrations.exists() {
        std::fs::create_dir_all(&migrations).map_err(|e| Error::io(&migrations, "create", &e))?;
        done.created.push(migrations);
    }
    let gitignore = dir.join(".gitignore");
    match ignore_outputs(&gitignore)? {
        GitignoreChange::Created => done.created.push(gitignore),
        GitignoreChange::Appended => done.updated.push(gitignore),
        GitignoreChange::Unchanged => {}
    }
    Ok(done)
}

/// What [`ignore_outputs`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitignoreChange {
    /// There was no `.gitignore`; it was written.
    Created,
    /// Lines were added at its end.
    Appended,
    /// It already ignored both directories.
    Unchanged,
}

/// Adds the [`GITIGNORE_LINES`] a `.gitignore` lacks, at its end; a line
/// already there in another spelling (`/logs`, `logs`, `logs/`) counts.
pub fn ignore_outputs(path: &Path) -> Result<GitignoreChange> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(path, "read", &e)),
    };
    let text = existing.as_deref().unwrap_or("");
    let present = |wanted: &str| {
        text.lines()
            .map(|l| l.trim().trim_start_matches('/').trim_end_matches('/'))
            .any(|l| l == wanted.trim_end_matches('/'))
    };
    let missing: Vec<&str> = GITIGNORE_LINES
        .iter()
        .copied()
        .filter(|l| !present(l))
        .collect();
    if missing.is_empty() {
        return Ok(GitignoreChange::Unchanged);
    }
    let mut addition = String::new();
    if !text.is_empty() && !text.ends_with('\n') {
        addition.push('\n');
    }
    for line in missing {
        addition.push_str(line);
        addition.push('\n');
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, "write", &e))?;
    file.write_all(addition.as_bytes())
        .map_err(|e| Error::io(path, "write", &e))?;
    Ok(if existing.is_some() {
        GitignoreChange::Appended
    } else {
        GitignoreChange::Created
    })
}

/// The version `new` gives the next migration: the next sequence number when
/// the namespace numbers its migrations (`0007` → `0008`, width kept),
/// otherwise a UTC timestamp `YYYYMMDDHHMMSS`, bumped past the newest version.
pub fn next_version(set: &MigrationSet, now: chrono::DateTime<chrono::Utc>) -> String {
    let newest = set.migrations.last().map(|m| &m.version);
    let sequential =
        !set.migrations.is_empty() && set.migrations.iter().all(|m| m.version.is_sequential());
    if sequential && let Some(number) = newest.and_then(Version::as_u64) {
        let width = newest.map_or(4, |v| v.as_str().len());
        return format!("{:0width$}", number + 1);
    }
    // Flyway's dotted numbering (`V1`, `V1_1`, `V2`): the next whole number
    // after the newest's first component, not a timestamp that a teammate's
    // `V3` would then be out of order against.
    let first = |v: &Version| v.as_str().split('.').next().unwrap_or("").to_string();
    let dotted_sequence = !set.migrations.is_empty()
        && set.migrations.iter().all(|m| {
            let head = first(&m.version);
            !head.is_empty() && head.len() <= 6
        });
    if dotted_sequence
        && let Some(newest) = newest
        && let Ok(number) = first(newest).parse::<u64>()
    {
        let width = first(newest).len();
        return format!("{:0width$}", number + 1);
    }
    let mut stamp: u64 = now.format("%Y%m%d%H%M%S").to_string().parse().unwrap_or(0);
    if let Some(newest) = newest.and_then(Version::as_u64)
        && stamp <= newest
    {
        stamp = newest + 1;
    }
    stamp.to_string()
}

/// Turns a description into a file-name-safe name: `Add email to users` →
/// `add_email_to_users`.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for ch in name.trim().chars() {
        if ch.is_alphanumeric() {
            out.extend(ch.to_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_string()
}

/// Creates the files of a new migration in `dir`, in the namespace's
/// `layout` (its configured one, else that of its newest migration):
/// `<v>_<name>.up.sql` and `.down.sql` by default, one `<v>_<name>.sql` for a
/// forward-only namespace, and each other tool's own form (a goose or
/// sql-migrate file with its markers, a Prisma folder, a Drizzle file with
/// its journal entry…).
pub fn new_migration(
    dir: &Path,
    version: &str,
    name: &str,
    forward_only: bool,
    layout: Option<Layout>,
) -> Result<Vec<PathBuf>> {
    let name = slug(name);
    if name.is_empty() {
        return Err(Error::config(
            crate::error::Code::Usage,
            "the migration name must contain letters or digits, e.g. `migsafe new add_email_to_users`",
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create", &e))?;
    let one = |file: String, text: String| -> Result<Vec<PathBuf>> {
        let path = dir.join(file);
        write_new(&path, text.as_bytes())?;
        Ok(vec![path])
    };
    match layout {
        Some(Layout::Goose) => {
            return one(
                format!("{version}_{name}.sql"),
                format!("-- {name}\n-- +goose Up\n\n-- +goose Down\n"),
            );
        }
        Some(Layout::SqlMigrate) => {
            return one(
                format!("{version}_{name}.sql"),
                format!("-- {name}\n-- +migrate Up\n\n-- +migrate Down\n"),
            );
        }
        Some(Layout::Dbmate) => {
            return one(
                format!("{version}_{name}.sql"),
                "-- migrate:up\n\n-- migrate:down\n".to_string(),
            );
        }
        Some(Layout::Prisma) => {
            let folder = dir.join(format!("{version}_{name}"));
            std::fs::create_dir(&folder).map_err(|e| Error::io(&folder, "create", &e))?;
            let path = folder.join(super::layouts::prisma::SCRIPT);
            write_new(&path, format!("-- {name}\n\n").as_bytes())?;
            return Ok(vec![path]);
        }
        Some(Layout::Drizzle) => return new_drizzle(dir, version, &name),
        Some(Layout::Diesel) => {
            let folder = dir.join(format!("{version}_{name}"));
            std::fs::create_dir(&folder).map_err(|e| Error::io(&folder, "create", &e))?;
            let (up, down) = (folder.join("up.sql"), folder.join("down.sql"));
            write_new(&up, format!("-- {name}\n\n").as_bytes())?;
            write_new(&down, format!("-- undo {name}\n\n").as_bytes())?;
            return Ok(vec![up, down]);
        }
        Some(Layout::Flyway) => {
            let up = dir.join(format!("V{version}__{name}.sql"));
            write_new(&up, format!("-- {name}\n\n").as_bytes())?;
            if forward_only {
                return Ok(vec![up]);
            }
            let down = dir.join(format!("U{version}__{name}.sql"));
            write_new(&down, format!("-- undo {name}\n\n").as_bytes())?;
            return Ok(vec![up, down]);
        }
        Some(Layout::Liquibase) => return new_liquibase(dir, &name),
        Some(Layout::Sqitch) => {
            return Err(Error::config(
                crate::error::Code::Usage,
                "this namespace is a Sqitch project: add the change with `sqitch add`, which writes the plan line and the deploy, revert and verify scripts",
            ));
        }
        Some(Layout::Reversible | Layout::UpOnly | Layout::Pop) | None => {}
    }
    if forward_only {
        let path = dir.join(format!("{version}_{name}.sql"));
        write_new(
            &path,
            format!("-- {name}: forward-only (this namespace refuses rollback)\n\n").as_bytes(),
        )?;
        return Ok(vec![path]);
    }
    let up = dir.join(format!("{version}_{name}.up.sql"));
    let down = dir.join(format!("{version}_{name}.down.sql"));
    write_new(&up, format!("-- {name}\n-- Add `-- migsafe:no-transaction` above for CREATE INDEX CONCURRENTLY and the like.\n\n").as_bytes())?;
    write_new(&down, format!("-- undo {name}\n\n").as_bytes())?;
    Ok(vec![up, down])
}

/// A Liquibase changeset, appended to the last formatted SQL file (by
/// name: files run in name order and changesets in file order, so it runs
/// last), or to a new `changelog.sql` when there is none. Its author is
/// `migsafe` and its id the name.
fn new_liquibase(dir: &Path, name: &str) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, "read the directory", &e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "sql") && path.is_file())
        .filter(|path| {
            std::fs::read(path).is_ok_and(|bytes| {
                super::layouts::liquibase::is_formatted(&String::from_utf8_lossy(&bytes))
            })
        })
        .collect();
    files.sort();
    let changeset = format!("--changeset migsafe:{name}\n\n--rollback \n");
    let Some(last) = files.pop() else {
        let path = dir.join("changelog.sql");
        write_new(
            &path,
            format!("--liquibase formatted sql\n\n{changeset}").as_bytes(),
        )?;
        return Ok(vec![path]);
    };
    let existing = std::fs::read_to_string(&last).map_err(|e| Error::io(&last, "read", &e))?;
    // Right after the last line: a blank line in between would belong to,
    // and change the checksum of, the changeset before.
    let separator = if existing.ends_with('\n') { "" } else { "\n" };
    let mut file = OpenOptions::new()
        .append(true)
        .open(&last)
        .map_err(|e| Error::io(&last, "write", &e))?;
    file.write_all(format!("{separator}{changeset}").as_bytes())
        .map_err(|e| Error::io(&last, "write", &e))?;
    Ok(vec![last])
}

/// A Drizzle migration: `<version>_<name>.sql` and its entry at the end of
/// `meta/_journal.json` (the journal decides what exists, so the file alone
/// would never run).
fn new_drizzle(dir: &Path, version: &str, name: &str) -> Result<Vec<PathBuf>> {
    let journal_path = dir.join(super::layouts::drizzle::JOURNAL);
    let invalid = |message: String| {
        Error::config(
            crate::error::Code::MigrationFileInvalid,
            format!("{}: {message}", journal_path.display()),
        )
    };
    let text = match std::fs::read_to_string(&journal_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "{\"version\":\"7\",\"dialect\":\"postgresql\",\"entries\":[]}".to_string()
        }
        Err(e) => return Err(Error::io(&journal_path, "read", &e)),
    };
    let mut journal: serde_json::Value = serde_json::from_str(text.trim_start_matches('\u{feff}'))
        .map_err(|e| invalid(format!("is not a Drizzle journal: {e}")))?;
    let format_version = journal
        .get("version")
        .cloned()
        .unwrap_or_else(|| serde_json::Value::from("7"));
    let Some(entries) = journal
        .get_mut("entries")
        .and_then(serde_json::Value::as_array_mut)
    else {
        return Err(invalid("has no `entries` list".into()));
    };
    let tag = format!("{version}_{name}");
    let path = dir.join(format!("{tag}.sql"));
    write_new(&path, format!("-- {name}\n\n").as_bytes())?;
    entries.push(serde_json::json!({
        "idx": entries.len(),
        "version": format_version,
        "when": chrono::Utc::now().timestamp_millis(),
        "tag": tag,
        "breakpoints": true,
    }));
    let mut out = serde_json::to_string_pretty(&journal)
        .map_err(|e| invalid(format!("cannot be written: {e}")))?;
    out.push('\n');
    if let Some(meta) = journal_path.parent() {
        std::fs::create_dir_all(meta).map_err(|e| Error::io(meta, "create", &e))?;
    }
    std::fs::write(&journal_path, out).map_err(|e| Error::io(&journal_path, "write", &e))?;
    Ok(vec![path, journal_path])
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::config(
                    crate::error::Code::Usage,
                    format!(
                        "{} already exists; migsafe never overwrites it",
                        path.display()
                    ),
                )
            } else {
                Error::io(path, "create", &e)
            }
        })?;
    file.write_all(bytes)
        .map_err(|e| Error::io(path, "write", &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flyway_dotted_numbering_gets_the_next_whole_number() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["V1__a.sql", "V1_1__b.sql", "V2__c.sql", "V7__d.sql"] {
            std::fs::write(dir.path().join(name), "SELECT 1;\n").unwrap();
        }
        let set = crate::source::load("app", dir.path()).unwrap();
        assert_eq!(next_version(&set, chrono::Utc::now()), "8");
        std::fs::write(dir.path().join("V7_2__e.sql"), "SELECT 1;\n").unwrap();
        let set = crate::source::load("app", dir.path()).unwrap();
        assert_eq!(next_version(&set, chrono::Utc::now()), "8");
    }

    #[test]
    fn slugs_are_file_name_safe() {
        assert_eq!(slug(" Add email to Users! "), "add_email_to_users");
        assert_eq!(slug("--"), "");
    }

    #[test]
    fn gitignore_gets_the_missing_lines_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".gitignore");
        assert_eq!(ignore_outputs(&path).unwrap(), GitignoreChange::Created);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "backups/\nlogs/\n");
        assert_eq!(ignore_outputs(&path).unwrap(), GitignoreChange::Unchanged);

        std::fs::write(&path, "target\n/logs").unwrap();
        assert_eq!(ignore_outputs(&path).unwrap(), GitignoreChange::Appended);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "target\n/logs\nbackups/\n"
        );
        assert_eq!(ignore_outputs(&path).unwrap(), GitignoreChange::Unchanged);
    }

    #[test]
    fn the_template_is_a_valid_config() {
        let config =
            crate::Config::parse(CONFIG_TEMPLATE, Path::new("/p"), None, "migsafe.toml").unwrap();
        assert_eq!(config.namespaces[0].name, "app");
    }
}

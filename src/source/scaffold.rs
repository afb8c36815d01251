//! Writing new files: the commented `migsafe.toml` of `init`, and the next
//! migration of `new`. Never overwrites anything.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

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

/// Writes `migsafe.toml` and `migrations/` in `dir`. Returns what was created.
pub fn init(dir: &Path) -> Result<Vec<PathBuf>> {
    let config = dir.join(crate::config::CONFIG_FILE);
    write_new(&config, CONFIG_TEMPLATE.as_bytes())?;
    let mut created = vec![config];
    let migrations = dir.join("migrations");
    if !migrations.exists() {
        std::fs::create_dir_all(&migrations).map_err(|e| Error::io(&migrations, "create", &e))?;
        created.push(migrations);
    }
    Ok(created)
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

/// Creates the files of a new migration in `dir`: `<v>_<name>.up.sql` and
/// `.down.sql`, or one `<v>_<name>.sql` for a forward-only namespace.
pub fn new_migration(
    dir: &Path,
    version: &str,
    name: &str,
    forward_only: bool,
) -> Result<Vec<PathBuf>> {
    let name = slug(name);
    if name.is_empty() {
        return Err(Error::config(
            crate::error::Code::Usage,
            "the migration name must contain letters or digits, e.g. `migsafe new add_email_to_users`",
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create", &e))?;
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
    fn slugs_are_file_name_safe() {
        assert_eq!(slug(" Add email to Users! "), "add_email_to_users");
        assert_eq!(slug("--"), "");
    }

    #[test]
    fn the_template_is_a_valid_config() {
        let config =
            crate::Config::parse(CONFIG_TEMPLATE, Path::new("/p"), None, "migsafe.toml").unwrap();
        assert_eq!(config.namespaces[0].name, "app");
    }
}

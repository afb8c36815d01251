//! Prisma Migrate: one folder per migration, `<ts>_<name>/migration.sql`,
//! and `migration_lock.toml` beside them (the provider Prisma locked the
//! history to). Prisma has no down scripts. Each script runs in one
//! transaction unless it needs none, which migsafe infers from the SQL as for
//! any script (SPEC section 2).

use std::path::Path;

/// The file Prisma writes in each migration folder.
pub const SCRIPT: &str = "migration.sql";
/// Prisma's lock file, naming the database provider.
pub const LOCK_FILE: &str = "migration_lock.toml";

/// True for a Prisma migration folder.
pub fn is_migration_dir(dir: &Path) -> bool {
    dir.join(SCRIPT).is_file() && !dir.join("up.sql").exists()
}

/// Checks that `migration_lock.toml` locks the history to PostgreSQL: a
/// history written for another database is refused rather than half-applied.
pub fn check_lock(text: &str) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Lock {
        provider: Option<String>,
    }
    let lock: Lock =
        toml::from_str(text).map_err(|e| format!("is not valid TOML: {}", e.message().trim()))?;
    match lock.provider.as_deref() {
        None | Some("postgresql" | "postgres") => Ok(()),
        Some(other) => Err(format!(
            "locks this history to provider `{other}`, not postgresql; these migrations were written for another database"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_must_name_postgresql() {
        assert!(check_lock("# comment\nprovider = \"postgresql\"\n").is_ok());
        assert!(check_lock("provider = \"mysql\"\n").is_err());
        assert!(check_lock("provider = \n").is_err());
    }
}

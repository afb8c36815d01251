//! The migration value type that flows through the pipeline.

use std::path::PathBuf;

use super::directives::Directives;
use super::layout::Layout;
use super::version::Version;

/// One script (up or down) as read from disk, normalised.
#[derive(Debug, Clone)]
pub struct Script {
    /// The file it came from.
    pub path: PathBuf,
    /// Normalised text (no BOM, LF line ends): what is checksummed and run.
    pub sql: String,
    /// SHA-256 hex of `sql`.
    pub checksum: String,
    /// Header directives.
    pub directives: Directives,
    /// 1-based line of the file where `sql` starts (dbmate sections start
    /// below their marker), so server error positions map to the file.
    pub first_line: usize,
}

impl Script {
    /// True when the script must run outside a transaction.
    pub fn no_transaction(&self) -> bool {
        self.directives.no_transaction
    }

    /// The SQL to send: the file's text, without the `BEGIN;` and `COMMIT;`
    /// of a script that wraps itself in one transaction (migsafe's
    /// transaction takes their place, with the history row).
    #[cfg(feature = "engine")]
    pub fn runnable_sql(&self) -> std::borrow::Cow<'_, str> {
        if self.directives.wrapped {
            std::borrow::Cow::Owned(super::statements::unwrap(&self.sql))
        } else {
            std::borrow::Cow::Borrowed(&self.sql)
        }
    }

    #[cfg(feature = "engine")]
    /// What runs on the session before the script, when its Flyway
    /// configuration names schemas (`flyway_schemas`): the missing ones
    /// created (Flyway's `createSchemas`), the default one put first in
    /// `search_path` before what the session had (Flyway's
    /// `changeCurrentSchemaTo`); and what undoes the latter after it.
    pub fn flyway_schema_sql(&self) -> Option<(String, &'static str)> {
        use crate::db::quote_ident;
        let default = self.directives.flyway_schemas.first()?;
        let literal = |text: &str| format!("'{}'", text.replace('\'', "''"));
        let mut sql = String::new();
        if self.directives.flyway_create_schemas {
            for schema in &self.directives.flyway_schemas {
                sql.push_str(&crate::db::create_schema_if_missing_sql(schema));
                sql.push('\n');
            }
        }
        // Only a schema that exists (Flyway's check, made before each
        // migration): one the migrations create themselves counts from the
        // migration after the one that created it.
        let first = literal(&quote_ident(default));
        sql.push_str(&format!(
            "SELECT set_config('search_path', CASE WHEN to_regnamespace({first}) IS NULL THEN current_setting('search_path') WHEN current_setting('search_path') = '' THEN {first} ELSE {first} || ', ' || current_setting('search_path') END, false);\n"
        ));
        Some((sql, "RESET search_path;\n"))
    }
}

/// A migration: a version, a name, an up script and maybe a down script.
#[derive(Debug, Clone)]
pub struct Migration {
    /// Its version.
    pub version: Version,
    /// Its descriptive name.
    pub name: String,
    /// The layout its files follow.
    pub layout: Layout,
    /// The up script.
    pub up: Script,
    /// The down script, when there is one.
    pub down: Option<Script>,
    /// A script run right after the up script, in its transaction, whose
    /// failure undoes the migration (Sqitch's `verify/`). Not part of the
    /// checksum: Sqitch records the deploy script's hash only.
    pub verify: Option<Script>,
    /// Set by the plan, never by the files: this migration already ran and
    /// runs again in place (a Liquibase `runOnChange` changeset whose SQL
    /// changed since). The checksum its history row holds now; that row is
    /// rewritten instead of a new one inserted.
    pub rerun_of: Option<String>,
}

/// Everything found in one namespace's directory.
#[derive(Debug, Clone, Default)]
pub struct MigrationSet {
    /// Migrations in version order.
    pub migrations: Vec<Migration>,
    /// Flyway repeatable migrations (`R__<name>.sql`), in the order they run
    /// (by description): after every versioned migration, and again
    /// whenever their checksum changes. Their version is
    /// [`Version::repeatable`]; they have no down script.
    pub repeatables: Vec<Migration>,
    /// Files and directories that do not start with a version, for `status -v`.
    pub ignored: Vec<PathBuf>,
    /// Why a file in `ignored` is, when it is not the plain "does not start
    /// with a version" (another dialect's pop file, a file the Drizzle journal
    /// does not list…).
    pub why_ignored: std::collections::BTreeMap<PathBuf, String>,
    /// The schemas the scripts name, read once ([`crate::schema::Scope`]).
    pub named_schemas: std::sync::OnceLock<std::collections::BTreeSet<String>>,
}

impl MigrationSet {
    /// A history with migrations and not one down script is forward-only
    /// without configuration (up-only layouts, Flyway `V` files only).
    pub fn forward_only(&self) -> bool {
        !self.migrations.is_empty() && self.migrations.iter().all(|m| m.down.is_none())
    }

    /// The layouts the migrations follow, each once, in the order first met.
    pub fn layouts(&self) -> Vec<Layout> {
        let mut out: Vec<Layout> = Vec::new();
        for migration in self.migrations.iter().chain(&self.repeatables) {
            if !out.contains(&migration.layout) {
                out.push(migration.layout);
            }
        }
        out
    }

    /// Why `path` is ignored.
    pub fn why_ignored(&self, path: &std::path::Path) -> &str {
        if let Some(why) = self.why_ignored.get(path) {
            return why;
        }
        let leftover = path
            .file_name()
            .is_some_and(|name| super::layout::is_leftover(&name.to_string_lossy()));
        if leftover {
            "a hidden file or an editor, merge or backup copy"
        } else {
            "does not start with a version"
        }
    }

    /// The migration with this version.
    pub fn get(&self, version: &Version) -> Option<&Migration> {
        self.migrations
            .binary_search_by(|m| m.version.cmp(version))
            .ok()
            .map(|index| &self.migrations[index])
    }
}

//! Migrations embedded in an application binary at compile time.
//!
//! A build script reads the migrations directory with the same code as the
//! CLI ([`super::load`]): a malformed file name, a duplicate version, a file
//! that is not UTF-8 or an invalid directive fails the build, with every
//! problem listed. It writes the normalised scripts and their build-time
//! checksums as Rust code into `OUT_DIR`, and [`embedded_migrations!`]
//! includes that code. At start-up, [`Embedded::load`] rebuilds the
//! [`MigrationSet`] without touching the file system and checks that every
//! checksum still matches the one computed at build time.
//!
//! `build.rs` of the application (with `migsafe` as a build-dependency too):
//!
//! ```no_run
//! // in build.rs, inside fn main():
//! migsafe::source::embed::build("app", "migrations");
//! ```
//!
//! The application:
//!
//! ```ignore
//! static MIGRATIONS: migsafe::source::embed::Embedded = migsafe::embedded_migrations!("app");
//!
//! let migrator = migsafe::Migrator::new(config).with_embedded(&MIGRATIONS)?;
//! migrator.apply(Some("app"), &Default::default()).await?;
//! ```
//!
//! [`embedded_migrations!`]: crate::embedded_migrations

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::layout::Layout;
use super::migration::{Migration, MigrationSet, Script};
use super::version::Version;
use crate::error::{Code, Error, FileProblem, ReasonCode, Result};

/// One script as embedded: its normalised text and build-time checksum.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedScript {
    /// The file it came from (as a path relative to the crate, for messages).
    pub path: &'static str,
    /// Normalised text (no BOM, LF line ends).
    pub sql: &'static str,
    /// 1-based line of the file where `sql` starts.
    pub first_line: usize,
    /// No-transaction from metadata outside the text (diesel's metadata.toml).
    pub no_transaction: bool,
    /// SHA-256 computed at build time.
    pub checksum: &'static str,
    /// What the file's tool asks for that migsafe does not honour, from
    /// outside the text (a Liquibase changeset's `context`, a Flyway
    /// `.sql.conf` setting): the script is refused if it is to run.
    pub unsupported: Option<&'static str>,
    /// Flyway `placeholderReplacement=false` (its `.sql.conf`).
    pub literal_placeholders: bool,
}

/// One migration as embedded.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedMigration {
    /// Its version as written.
    pub version: &'static str,
    /// Its name.
    pub name: &'static str,
    /// Its layout (`reversible`, `up-only`, `diesel`, `dbmate`, `flyway`).
    pub layout: &'static str,
    /// The up script.
    pub up: EmbeddedScript,
    /// The down script, if any.
    pub down: Option<EmbeddedScript>,
    /// The verify script (Sqitch), if any.
    pub verify: Option<EmbeddedScript>,
}

/// A namespace's migrations compiled into the binary.
#[derive(Debug, Clone, Copy)]
pub struct Embedded {
    /// The namespace they belong to.
    pub namespace: &'static str,
    /// In version order, then the Flyway repeatables (version `R__<name>`).
    pub migrations: &'static [EmbeddedMigration],
}

fn layout_name(layout: Layout) -> &'static str {
    layout.name()
}

fn layout_of(name: &str) -> Option<Layout> {
    Layout::from_name(name)
}

impl Embedded {
    /// The migration set, rebuilt from the embedded text. Fails (exit 5) when
    /// a checksum differs from the build-time one — a migsafe library newer
    /// than the build script normalising differently — rather than run
    /// scripts whose history rows would not match the CLI's.
    pub fn load(&self) -> Result<MigrationSet> {
        let mut problems = Vec::new();
        let mut migrations = Vec::with_capacity(self.migrations.len());
        let mut repeatables = Vec::new();
        for embedded in self.migrations {
            match self.migration(embedded) {
                Ok(migration) if migration.version.is_repeatable() => repeatables.push(migration),
                Ok(migration) => migrations.push(migration),
                Err(problem) => problems.push(problem),
            }
        }
        if let Some(first) = problems.first() {
            return Err(Error::Source {
                reason: first.reason.clone(),
                problems,
            });
        }
        migrations.sort_by(|a, b| a.version.cmp(&b.version));
        repeatables.sort_by(|a, b| a.version.cmp(&b.version));
        Ok(MigrationSet {
            migrations,
            repeatables,
            ignored: Vec::new(),
            why_ignored: std::collections::BTreeMap::new(),
            named_schemas: std::sync::OnceLock::new(),
        })
    }

    fn migration(
        &self,
        embedded: &EmbeddedMigration,
    ) -> std::result::Result<Migration, FileProblem> {
        let problem = |path: &str, message: String| FileProblem {
            reason: ReasonCode::about(Code::MigrationFileInvalid, self.namespace),
            path: PathBuf::from(path),
            message,
        };
        let version = match embedded.version.strip_prefix("R__") {
            Some(name) => Version::repeatable(name),
            None => Version::parse(embedded.version)
                .map_err(|e| problem(embedded.up.path, format!("embedded version: {e}")))?,
        };
        let layout = layout_of(embedded.layout).ok_or_else(|| {
            problem(
                embedded.up.path,
                format!("unknown embedded layout `{}`", embedded.layout),
            )
        })?;
        let script = |s: &EmbeddedScript| -> std::result::Result<Script, FileProblem> {
            let rebuilt = super::script_from_text(
                self.namespace,
                Path::new(s.path),
                s.sql.to_string(),
                s.first_line,
                s.no_transaction,
            )
            .map_err(|mut found| found.remove(0))?;
            let mut rebuilt = rebuilt;
            rebuilt.directives.unsupported = s.unsupported.map(str::to_string);
            rebuilt.directives.literal_placeholders = s.literal_placeholders;
            if rebuilt.checksum != s.checksum {
                return Err(problem(
                    s.path,
                    format!(
                        "its checksum at start-up ({}) differs from the one computed at build time ({}): rebuild the application with the same migsafe version",
                        rebuilt.checksum, s.checksum
                    ),
                ));
            }
            Ok(rebuilt)
        };
        let mut up = script(&embedded.up)?;
        // A Liquibase changeset's text starts at its `--changeset` line:
        // what that line and its instruction lines ask for is read again.
        if layout == Layout::Liquibase
            && let Ok(changesets) = super::layouts::liquibase::parse(&up.sql)
            && let Some(changeset) = changesets.first()
        {
            let carried = up.directives.unsupported.take();
            changeset.direct(&mut up.directives);
            // What is refused came with the build, worded with the file's
            // lines; what only the grammar finds (a check that is not one
            // query) is found again here.
            if carried.is_some() {
                up.directives.unsupported = carried;
            }
            if let Some(preconditions) = &mut up.directives.liquibase_preconditions {
                for check in &mut preconditions.checks {
                    check.line += up.first_line.saturating_sub(1);
                }
            }
        }
        Ok(Migration {
            version,
            name: embedded.name.to_string(),
            layout,
            up,
            down: embedded.down.as_ref().map(script).transpose()?,
            verify: embedded.verify.as_ref().map(script).transpose()?,
            rerun_of: None,
        })
    }
}

/// The Rust expression (an [`Embedded`]) for the migrations of `dir`, or the
/// problems that must fail the build.
pub fn generate(namespace: &str, dir: &Path) -> Result<String> {
    let set = super::load(namespace, dir)?;
    let shown = |path: &Path| -> String {
        path.strip_prefix(dir.parent().unwrap_or(dir))
            .unwrap_or(path)
            .display()
            .to_string()
    };
    let script = |s: &Script| {
        format!(
            "::migsafe::source::embed::EmbeddedScript {{ path: {:?}, sql: {:?}, first_line: {}, no_transaction: {}, checksum: {:?}, unsupported: {:?}, literal_placeholders: {} }}",
            shown(&s.path),
            s.sql,
            s.first_line,
            // What the text says is read again at start-up; only what came
            // from outside it (diesel's metadata.toml) is carried, so the
            // code is the same whether or not the build script has the SQL
            // grammar.
            s.directives.no_transaction && s.directives.inferred.is_none(),
            s.checksum,
            s.directives.unsupported,
            s.directives.literal_placeholders,
        )
    };
    let optional = |s: &Option<Script>| match s {
        Some(s) => format!("Some({})", script(s)),
        None => "None".into(),
    };
    let mut code = format!(
        "// @generated by migsafe::source::embed from {} — do not edit.\n::migsafe::source::embed::Embedded {{\n    namespace: {namespace:?},\n    migrations: &[\n",
        dir.display()
    );
    // Repeatables (`R__<name>`) go in the same list; their version text
    // tells them apart at start-up.
    for migration in set.migrations.iter().chain(&set.repeatables) {
        let _ = writeln!(
            code,
            "        ::migsafe::source::embed::EmbeddedMigration {{\n            version: {:?},\n            name: {:?},\n            layout: {:?},\n            up: {},\n            down: {},\n            verify: {},\n        }},",
            migration.version.to_string(),
            migration.name,
            layout_name(migration.layout),
            script(&migration.up),
            optional(&migration.down),
            optional(&migration.verify),
        );
    }
    code.push_str("    ],\n}\n");
    Ok(code)
}

/// The file [`build`] writes for `namespace` in `out_dir`.
pub fn generated_path(out_dir: &Path, namespace: &str) -> PathBuf {
    out_dir.join(format!("migsafe-{namespace}.rs"))
}

/// For a build script: embeds the migrations of `dir` (relative to the
/// crate) for namespace `namespace`, and asks Cargo to run again when the
/// directory changes. A malformed migration fails the build, every problem
/// printed.
pub fn build(namespace: &str, dir: impl AsRef<Path>) {
    let dir = dir.as_ref();
    println!("cargo:rerun-if-changed={}", dir.display());
    let out_dir = std::env::var_os("OUT_DIR").map(PathBuf::from);
    let result = match &out_dir {
        Some(out_dir) => generate(namespace, dir).and_then(|code| {
            let path = generated_path(out_dir, namespace);
            std::fs::write(&path, code).map_err(|e| Error::io(&path, "write", &e))
        }),
        None => Err(Error::config(
            Code::Usage,
            "migsafe::source::embed::build runs in a build script (OUT_DIR is not set)",
        )),
    };
    if let Err(err) = result {
        eprintln!(
            "error[{}]: the migrations of namespace `{namespace}` in {} cannot be embedded:\n{err}",
            err.reason(),
            dir.display()
        );
        std::process::exit(1);
    }
}

/// Includes the migrations a build script embedded with
/// [`source::embed::build`](crate::source::embed::build): an expression of
/// type [`Embedded`](crate::source::embed::Embedded).
#[macro_export]
macro_rules! embedded_migrations {
    ($namespace:literal) => {
        include!(concat!(env!("OUT_DIR"), "/migsafe-", $namespace, ".rs"))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_directories_fail_with_every_problem() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let write = |name: &str, text: &[u8]| {
            std::fs::write(dir.path().join(name), text).unwrap_or_else(|e| panic!("{e}"));
        };
        write("0001_a.up.sql", b"SELECT 1;");
        write("0001_b.up.sql", b"SELECT 2;");
        write("0002_c.up.sql", b"\xff\xfe");
        let Err(err) = generate("app", dir.path()) else {
            panic!("a malformed directory must not generate code");
        };
        let text = err.to_string();
        assert!(text.contains("0001"), "{text}");
        assert!(text.contains("0002_c.up.sql"), "{text}");
    }

    #[test]
    fn repeatables_are_embedded_and_come_back_as_repeatables() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let write = |name: &str, text: &[u8]| {
            std::fs::write(dir.path().join(name), text).unwrap_or_else(|e| panic!("{e}"));
        };
        write("V1__a.sql", b"CREATE TABLE a (id int);\n");
        write(
            "R__a_view.sql",
            b"CREATE OR REPLACE VIEW v AS SELECT id FROM a;\n",
        );
        let code = generate("app", dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(code.contains("\"R__a_view\""), "{code}");
        // What `embedded_migrations!` gives back, rebuilt from the same text.
        let set = super::super::load("app", dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let script = |s: &Script| EmbeddedScript {
            path: "x",
            sql: Box::leak(s.sql.clone().into_boxed_str()),
            first_line: 1,
            no_transaction: false,
            checksum: Box::leak(s.checksum.clone().into_boxed_str()),
            unsupported: None,
            literal_placeholders: false,
        };
        let migrations: Vec<EmbeddedMigration> = set
            .migrations
            .iter()
            .chain(&set.repeatables)
            .map(|m| EmbeddedMigration {
                version: Box::leak(m.version.to_string().into_boxed_str()),
                name: Box::leak(m.name.clone().into_boxed_str()),
                layout: "flyway",
                up: script(&m.up),
                down: None,
                verify: None,
            })
            .collect();
        let embedded = Embedded {
            namespace: "app",
            migrations: Box::leak(migrations.into_boxed_slice()),
        };
        let loaded = embedded.load().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.migrations.len(), 1);
        assert_eq!(loaded.repeatables.len(), 1);
        assert_eq!(loaded.repeatables[0].version, Version::repeatable("a_view"));
    }

    #[test]
    fn a_liquibase_changeset_keeps_what_its_changeset_line_asks_for() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            dir.path().join("001.sql"),
            "--liquibase formatted sql\n--changeset a:v runOnChange:true context:prod\n--preconditions onFail:MARK_RAN\n--precondition-sql-check expectedResult:0 SELECT 0\nCREATE OR REPLACE VIEW v AS SELECT 1;\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let set = super::super::load("app", dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let up = &set.migrations[0].up;
        let embedded = Embedded {
            namespace: "app",
            migrations: Box::leak(Box::new([EmbeddedMigration {
                version: "1",
                name: "a:v",
                layout: "liquibase",
                up: EmbeddedScript {
                    path: "x",
                    sql: Box::leak(up.sql.clone().into_boxed_str()),
                    first_line: up.first_line,
                    no_transaction: false,
                    checksum: Box::leak(up.checksum.clone().into_boxed_str()),
                    unsupported: None,
                    literal_placeholders: false,
                },
                down: None,
                verify: None,
            }])),
        };
        let loaded = embedded.load().unwrap_or_else(|e| panic!("{e}"));
        let directives = &loaded.migrations[0].up.directives;
        assert_eq!(directives, &up.directives);
        assert!(directives.run_on_change && directives.liquibase_preconditions.is_some());
        assert_eq!(directives.liquibase_context.as_deref(), Some("prod"));
    }

    #[test]
    fn generated_code_names_every_script_with_its_checksum() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/migrations/app");
        let code = generate("app", &dir).unwrap_or_else(|e| panic!("{e}"));
        let set = super::super::load("app", &dir).unwrap_or_else(|e| panic!("{e}"));
        for migration in &set.migrations {
            assert!(code.contains(&migration.up.checksum));
            assert!(code.contains(&format!("{:?}", migration.version.to_string())));
        }
        assert!(
            code.contains("no_transaction: true"),
            "the CONCURRENTLY migration"
        );
    }
}

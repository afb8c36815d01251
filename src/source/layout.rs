//! File and directory names of the five layouts of SPEC section 2.
//!
//! Pure functions on names, so the rules can be property-tested without a disk.
//! A name that does not start with a version is ignored (README.md, .keep,
//! seed_data.sql); so are the copies editors, merge tools and patch leave
//! beside a migration (`0001_x.up.sql~`, `.bak`, `.orig`, `.rej`, `.swp`…),
//! which are never migrations. A name that starts with a version but does not
//! otherwise parse is an error, because a migration that silently never runs
//! is worse than a stop.

use super::version::Version;

/// Which tool's conventions a migration follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// `<ver>_<name>.up.sql` / `<ver>_<name>.down.sql` (golang-migrate, sqlx).
    Reversible,
    /// `<ver>_<name>.sql`, forward only.
    UpOnly,
    /// `<ver>_<name>/up.sql` and `down.sql`.
    Diesel,
    /// `<ver>_<name>.sql` with `-- migrate:up` / `-- migrate:down` sections.
    Dbmate,
    /// `V<ver>__<name>.sql` and `U<ver>__<name>.sql`.
    Flyway,
    /// goose: `<ver>_<name>.sql` with `-- +goose Up` / `-- +goose Down`.
    Goose,
    /// sql-migrate: `<ver>_<name>.sql` with `-- +migrate Up` / `Down` sections.
    SqlMigrate,
    /// ory/pop: `<ver>_<name>[.<dialect>][.autocommit].(up|down).sql`.
    Pop,
    /// Prisma Migrate: `<ts>_<name>/migration.sql`.
    Prisma,
    /// Drizzle: `<tag>.sql` listed in `meta/_journal.json`.
    Drizzle,
    /// Liquibase formatted SQL: `--changeset author:id` in files that start
    /// with `--liquibase formatted sql`.
    Liquibase,
    /// Sqitch: `sqitch.plan` with `deploy/`, `revert/` and `verify/`.
    Sqitch,
}

impl Layout {
    /// Every layout, in the order docs list them.
    pub const ALL: [Layout; 12] = [
        Layout::Reversible,
        Layout::UpOnly,
        Layout::Diesel,
        Layout::Dbmate,
        Layout::Flyway,
        Layout::Goose,
        Layout::SqlMigrate,
        Layout::Pop,
        Layout::Prisma,
        Layout::Drizzle,
        Layout::Liquibase,
        Layout::Sqitch,
    ];

    /// The name used in `layout = "…"`, `status -v` and embedded migrations.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Reversible => "reversible",
            Layout::UpOnly => "up-only",
            Layout::Diesel => "diesel",
            Layout::Dbmate => "dbmate",
            Layout::Flyway => "flyway",
            Layout::Goose => "goose",
            Layout::SqlMigrate => "sql-migrate",
            Layout::Pop => "pop",
            Layout::Prisma => "prisma",
            Layout::Drizzle => "drizzle",
            Layout::Liquibase => "liquibase",
            Layout::Sqitch => "sqitch",
        }
    }

    /// The layout with this [`Layout::name`].
    pub fn from_name(name: &str) -> Option<Layout> {
        Layout::ALL.into_iter().find(|layout| layout.name() == name)
    }
}

/// The part a file plays in a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An up script.
    Up,
    /// A down script.
    Down,
    /// A `.sql` file that is either up-only or a dbmate file; its content decides.
    Plain,
    /// A Flyway repeatable migration (`R__<name>.sql`): no version, run after
    /// the versioned ones and again whenever its checksum changes.
    Repeatable,
}

/// What a file name says about the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationName {
    /// The version.
    pub version: Version,
    /// The descriptive name after the version.
    pub name: String,
    /// Up, down, or content-decided.
    pub role: Role,
    /// The layout the name belongs to (`UpOnly` for plain files until read).
    pub layout: Layout,
    /// ory/pop: the database dialect the file is for (`postgres`, `mysql`…).
    pub dialect: Option<String>,
    /// ory/pop: `.autocommit`, run without a transaction.
    pub autocommit: bool,
}

/// Dialects ory/pop names in file names. Only `postgres` (and its aliases)
/// is for this database; the others are another database's copy.
const POP_DIALECTS: &[&str] = &[
    "postgres",
    "postgresql",
    "pg",
    "cockroach",
    "cockroachdb",
    "crdb",
    "mysql",
    "mariadb",
    "sqlite",
    "sqlite3",
    "mssql",
    "sqlserver",
];

/// True for a pop dialect that means PostgreSQL.
pub fn is_postgres_dialect(dialect: &str) -> bool {
    matches!(dialect, "postgres" | "postgresql" | "pg")
}

/// Endings of the copies that editors (vim swap files, emacs and nano
/// backups), merge tools (`.orig`), `patch` (`.rej`) and scripts leave next to
/// a file they change.
const LEFTOVER_SUFFIXES: &[&str] = &[
    "~", ".bak", ".orig", ".rej", ".tmp", ".swp", ".swo", ".swx", ".save", ".old",
];

/// True for a name no tool gives a migration: hidden files (`.keep`, vim's
/// `.0001_x.up.sql.swp`, emacs' `.#0001_x.up.sql` lock), emacs auto-saves
/// (`#0001_x.up.sql#`) and editor or backup copies (`0001_x.up.sql~`,
/// `0001_x.up.sql.bak`, `.orig`, `.rej`, `.tmp`…). Such a file or directory is
/// ignored, and listed as ignored by `status -v`, instead of being read as a
/// badly named migration.
pub fn is_leftover(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || (name.starts_with('#') && name.ends_with('#'))
        || LEFTOVER_SUFFIXES
            .iter()
            .any(|suffix| lower.ends_with(suffix))
}

/// Reads a file name. `Ok(None)`: not a migration, ignore it.
pub fn parse_file_name(file_name: &str) -> Result<Option<MigrationName>, String> {
    if is_leftover(file_name) {
        return Ok(None);
    }
    if let Some(rest) = file_name.strip_prefix("R__") {
        return parse_repeatable(rest).map(Some);
    }
    if let Some(event) = super::layouts::flyway::callback(file_name) {
        return Err(format!(
            "is a Flyway callback ({event}), which Flyway runs around its commands and migsafe does not run; left as it is, what it does (grants, refreshes) would silently stop happening. Turn it into a repeatable R__{event}.sql (run again whenever it changes, not after every run) or move its statements into the versioned migrations that need them"
        ));
    }
    // `v1__x.sql`, `r__views.sql`: Flyway names with a lowercase prefix,
    // which Flyway does not read either; a stop, not a migration that
    // silently never runs.
    if lowercase_flyway(file_name) {
        let mut fixed = file_name.to_string();
        fixed.replace_range(..1, &file_name[..1].to_ascii_uppercase());
        return Err(format!(
            "looks like a Flyway migration with a lowercase prefix, which Flyway does not read (nor does migsafe); rename it to {fixed}"
        ));
    }
    let mut chars = file_name.chars();
    let first = chars.next();
    let second = chars.next();
    match (first, second) {
        (Some(prefix @ ('V' | 'U')), Some(digit)) if digit.is_ascii_digit() => {
            parse_flyway(file_name, prefix).map(Some)
        }
        (Some(digit), _) if digit.is_ascii_digit() => parse_plain(file_name).map(Some),
        _ => Ok(None),
    }
}

/// Reads a diesel migration directory name. `Ok(None)`: not a migration.
pub fn parse_dir_name(dir_name: &str) -> Result<Option<(Version, String)>, String> {
    if is_leftover(dir_name) || !dir_name.starts_with(|c: char| c.is_ascii_digit()) {
        return Ok(None);
    }
    let (version, name) = split_version(dir_name)
        .ok_or_else(|| "expected a directory named `<version>_<name>`".to_string())?;
    Ok(Some((version, name.to_string())))
}

fn parse_flyway(file_name: &str, prefix: char) -> Result<MigrationName, String> {
    let expected = format!("expected `{prefix}<version>__<name>.sql`");
    let stem = file_name.strip_suffix(".sql").ok_or_else(|| {
        format!("starts with a Flyway version but is not a .sql file ({expected})")
    })?;
    let (raw_version, name) = stem[1..]
        .split_once("__")
        .ok_or_else(|| format!("{expected}: the `__` after the version is missing"))?;
    if name.is_empty() {
        return Err(format!("{expected}: the name after `__` is empty"));
    }
    let version =
        Version::parse(&raw_version.replace('_', ".")).map_err(|e| format!("{expected}: {e}"))?;
    Ok(MigrationName {
        version,
        name: name.to_string(),
        role: if prefix == 'V' { Role::Up } else { Role::Down },
        layout: Layout::Flyway,
        dialect: None,
        autocommit: false,
    })
}

/// `v1__x.sql`, `r__views.sql`: a Flyway name with a lowercase prefix.
fn lowercase_flyway(file_name: &str) -> bool {
    let mut chars = file_name.chars();
    let shaped = match (chars.next(), chars.next()) {
        (Some('r'), Some('_')) => file_name.starts_with("r__"),
        (Some('v' | 'u'), Some(digit)) => digit.is_ascii_digit() && file_name.contains("__"),
        _ => false,
    };
    shaped && file_name.to_ascii_lowercase().ends_with(".sql")
}

/// True for a file Flyway would read (or a misnamed one it is meant for): a
/// `V`/`U`/`R__` script, its `.sql.conf`, a callback, a lowercase prefix.
/// What a Flyway project keeps in subfolders, which Flyway scans too.
pub fn is_flyway_file(file_name: &str) -> bool {
    let script = file_name
        .strip_suffix(super::layouts::flyway::CONF_SUFFIX)
        .unwrap_or(file_name);
    matches!(parse_file_name(script), Ok(Some(ref p)) if p.layout == Layout::Flyway)
        || super::layouts::flyway::callback(script).is_some()
        || lowercase_flyway(script)
}

/// `R__<name>.sql` with `R__` already taken off.
fn parse_repeatable(rest: &str) -> Result<MigrationName, String> {
    let expected = "expected `R__<name>.sql` (a Flyway repeatable migration)";
    let name = rest
        .strip_suffix(".sql")
        .ok_or_else(|| format!("starts with `R__` but is not a .sql file ({expected})"))?;
    if name.trim().is_empty() {
        return Err(format!("{expected}: the name after `R__` is empty"));
    }
    Ok(MigrationName {
        version: Version::repeatable(name),
        name: name.to_string(),
        role: Role::Repeatable,
        layout: Layout::Flyway,
        dialect: None,
        autocommit: false,
    })
}

fn parse_plain(file_name: &str) -> Result<MigrationName, String> {
    let (stem, role, layout) = if let Some(stem) = file_name.strip_suffix(".up.sql") {
        (stem, Role::Up, Layout::Reversible)
    } else if let Some(stem) = file_name.strip_suffix(".down.sql") {
        (stem, Role::Down, Layout::Reversible)
    } else if let Some(stem) = file_name.strip_suffix(".sql") {
        (stem, Role::Plain, Layout::UpOnly)
    } else {
        return Err(
            "starts with a version but is not a .sql file (expected `<version>_<name>.sql`, `.up.sql` or `.down.sql`); rename or move it".into(),
        );
    };
    let (mut stem, mut layout) = (stem, layout);
    let (mut dialect, mut autocommit) = (None, false);
    if role != Role::Plain {
        // ory/pop: `<ver>_<name>[.<dialect>][.autocommit].(up|down).sql`.
        if let Some(rest) = stem.strip_suffix(".autocommit") {
            (stem, autocommit, layout) = (rest, true, Layout::Pop);
        }
        if let Some((rest, last)) = stem.rsplit_once('.')
            && POP_DIALECTS.contains(&last.to_ascii_lowercase().as_str())
        {
            dialect = Some(last.to_ascii_lowercase());
            (stem, layout) = (rest, Layout::Pop);
        }
    }
    let (version, name) = split_version(stem).ok_or_else(|| {
        "expected `<version>_<name>.sql`, `.up.sql` or `.down.sql` (digits, then `_`, then a name)".to_string()
    })?;
    Ok(MigrationName {
        version,
        name: name.to_string(),
        role,
        layout,
        dialect,
        autocommit,
    })
}

/// Splits `<version>_<name>`: the version is the leading run of digits, `.`
/// and `-`; the name follows the first `_` and must not be empty.
fn split_version(stem: &str) -> Option<(Version, &str)> {
    let end = stem
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(stem.len());
    let (raw_version, rest) = stem.split_at(end);
    let name = rest.strip_prefix('_')?;
    if name.is_empty() {
        return None;
    }
    let version = Version::parse(raw_version).ok()?;
    Some((version, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parsed(name: &str) -> MigrationName {
        parse_file_name(name).unwrap().unwrap()
    }

    #[test]
    fn reads_every_layout() {
        let up = parsed("20240101120000_create_users.up.sql");
        assert_eq!(
            (up.version.as_str(), up.name.as_str(), up.role),
            ("20240101120000", "create_users", Role::Up)
        );
        assert_eq!(parsed("0002_add.down.sql").role, Role::Down);
        assert_eq!(parsed("0003_seed.sql").role, Role::Plain);
        let flyway = parsed("V1_2__add_orders.sql");
        assert_eq!(
            (flyway.version.as_str(), flyway.name.as_str(), flyway.layout),
            ("1.2", "add_orders", Layout::Flyway)
        );
        assert_eq!(
            parsed("V1.10__x.sql").version,
            Version::parse("1.10").unwrap()
        );
        assert_eq!(parsed("U3__undo.sql").role, Role::Down);
        let (v, n) = parse_dir_name("2019-01-01-000000_create_users")
            .unwrap()
            .unwrap();
        assert_eq!((v.as_str(), n.as_str()), ("20190101000000", "create_users"));
    }

    #[test]
    fn ignores_files_that_do_not_start_with_a_version() {
        for name in [
            "README.md",
            ".keep",
            "seed_data.sql",
            "V_x.sql",
            ".0001_x.sql.swp",
            "Vacuum.sql",
        ] {
            assert_eq!(parse_file_name(name), Ok(None), "{name}");
        }
        assert_eq!(parse_dir_name("helpers"), Ok(None));
    }

    #[test]
    fn ignores_editor_and_backup_copies_of_migrations() {
        for name in [
            "0001_x.up.sql.bak",
            "0001_x.up.sql~",
            ".0001_x.up.sql.swp",
            "#0001_x.up.sql#",
            ".#0001_x.up.sql",
            "0001_x.up.sql.orig",
            "0001_x.down.sql.rej",
            "0001_x.sql.tmp",
            "0001_x.sql.swp",
            "0001_X.SQL.BAK",
            "V1__x.sql.orig",
            "U1__x.sql~",
        ] {
            assert_eq!(parse_file_name(name), Ok(None), "{name}");
        }
        assert_eq!(parse_dir_name("0001_x.bak"), Ok(None));
        assert_eq!(parse_dir_name("0001_x~"), Ok(None));
        // Real migrations whose names merely contain those words still count.
        for name in [
            "0001_bak.up.sql",
            "0001_tmp_table.sql",
            "0001_orig.down.sql",
        ] {
            assert!(matches!(parse_file_name(name), Ok(Some(_))), "{name}");
        }
        let views = parse_file_name("R__create_views.sql").unwrap().unwrap();
        assert_eq!(views.role, Role::Repeatable);
        assert_eq!(views.version, Version::repeatable("create_views"));
        // And a misnamed migration is still an error, not silently skipped.
        assert!(parse_file_name("0001_x.up.sql.txt").is_err());
    }

    #[test]
    fn rejects_names_that_start_with_a_version_but_do_not_parse() {
        for name in [
            "0001.sql",
            "0001_.sql",
            "0001_x.txt",
            "0001-x.sql",
            "V1_x.sql",
            "V1__.sql",
            "R__.sql",
            "R__views.txt",
            "r__views.sql",
            "v2__add.sql",
            "1..2_x.sql",
            "V1.__x.sql",
        ] {
            assert!(parse_file_name(name).is_err(), "{name}");
        }
        assert!(parse_dir_name("0001").is_err());
    }

    proptest! {
        #[test]
        fn never_panics_on_any_name(name in "\\PC{0,40}") {
            let _ = parse_file_name(&name);
            let _ = parse_dir_name(&name);
        }

        #[test]
        fn round_trips_generated_names(version in "[0-9]{1,20}", name in "[a-z][a-z0-9_]{0,20}",
                                       suffix in prop::sample::select(vec![".up.sql", ".down.sql", ".sql"])) {
            let file = format!("{version}_{name}{suffix}");
            let parsed = parse_file_name(&file).unwrap().unwrap();
            prop_assert_eq!(parsed.version, Version::parse(&version).unwrap());
            prop_assert_eq!(parsed.name, name);
        }

        #[test]
        fn flyway_underscores_are_dots(parts in proptest::collection::vec(0u32..500, 1..4), name in "[a-z]{1,10}") {
            let dotted = parts.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
            let underscored = parts.iter().map(u32::to_string).collect::<Vec<_>>().join("_");
            let a = parse_file_name(&format!("V{dotted}__{name}.sql")).unwrap().unwrap();
            let b = parse_file_name(&format!("V{underscored}__{name}.sql")).unwrap().unwrap();
            prop_assert_eq!(a.version, b.version);
        }
    }
}

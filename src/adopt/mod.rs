//! `adopt`: take over another migration tool's history (SPEC 14).
//!
//! A team moving to migsafe already has a database that its previous tool
//! migrated, and that tool's record of what ran. `adopt` reads that record
//! (one file per tool here, each reading its table exactly as the tool
//! creates it), matches every applied row to a migration of the namespace,
//! checks the checksum where the tool keeps one, and records those
//! migrations in migsafe's history with their original applied time — under
//! the namespace lock, in one transaction, running nothing and leaving the
//! other tool's table as it is. Anything it cannot vouch for (a row without
//! a file, a different checksum, a dirty or failed row, a gap in a record
//! that lists every version) refuses the whole adoption by name, so
//! nothing is half-recorded.

/// The SQL expression (a string literal, for constants) turning a
/// `timestamp without time zone` column that a tool filled with `now()` /
/// `CURRENT_TIMESTAMP` back into the moment: it was written in the session's
/// time zone, which for a tool that sets none is the server's default
/// (`reset_val`), not necessarily this session's.
macro_rules! local_time {
    ($column:literal) => {
        concat!(
            "(",
            $column,
            " AT TIME ZONE (SELECT reset_val FROM pg_catalog.pg_settings WHERE name = 'TimeZone'))"
        )
    };
}

pub mod dbmate;
pub mod diesel;
pub mod drizzle;
pub mod flyway;
pub mod golang_migrate;
pub mod goose;
pub mod liquibase;
pub mod pop;
pub mod prisma;
pub mod required;
pub mod sqitch;
pub mod sql_migrate;
pub mod sqlx;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db::Db;
use crate::db::history::{AdoptRow, AuditEntry, History, database_error, operator};
use crate::db::repeatables::Repeatables;
use crate::error::{Code, Error, ReasonCode, Result};
use crate::pipeline::{Env, Target, lock_namespace, unlock_namespace};
use crate::source::{Migration, Version};

/// A tool whose history `adopt` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    /// golang-migrate: `schema_migrations(version bigint, dirty boolean)`.
    GolangMigrate,
    /// dbmate: `schema_migrations(version varchar)`.
    Dbmate,
    /// sqlx: `_sqlx_migrations`.
    Sqlx,
    /// diesel: `__diesel_schema_migrations`.
    Diesel,
    /// Flyway: `flyway_schema_history`.
    Flyway,
    /// goose: `goose_db_version`.
    Goose,
    /// sql-migrate: `gorp_migrations`.
    SqlMigrate,
    /// ory/pop: `schema_migration`.
    Pop,
    /// Drizzle: `drizzle.__drizzle_migrations`.
    Drizzle,
    /// Prisma Migrate: `_prisma_migrations`.
    Prisma,
    /// Liquibase: `databasechangelog`.
    Liquibase,
    /// Sqitch: `sqitch.changes`.
    Sqitch,
}

impl Tool {
    /// Every tool, in the order detection reports them.
    pub const ALL: [Tool; 12] = [
        Tool::GolangMigrate,
        Tool::Dbmate,
        Tool::Sqlx,
        Tool::Diesel,
        Tool::Flyway,
        Tool::Goose,
        Tool::SqlMigrate,
        Tool::Pop,
        Tool::Drizzle,
        Tool::Prisma,
        Tool::Liquibase,
        Tool::Sqitch,
    ];

    /// The name used by `--from`.
    pub fn name(self) -> &'static str {
        match self {
            Tool::GolangMigrate => "golang-migrate",
            Tool::Dbmate => "dbmate",
            Tool::Sqlx => "sqlx",
            Tool::Diesel => "diesel",
            Tool::Flyway => "flyway",
            Tool::Goose => "goose",
            Tool::SqlMigrate => "sql-migrate",
            Tool::Pop => "pop",
            Tool::Drizzle => "drizzle",
            Tool::Prisma => "prisma",
            Tool::Liquibase => "liquibase",
            Tool::Sqitch => "sqitch",
        }
    }

    /// Reads a `--from` value.
    pub fn parse(name: &str) -> Result<Tool> {
        let wanted = name.trim().to_ascii_lowercase();
        Tool::ALL
            .into_iter()
            .find(|tool| {
                tool.name() == wanted
                    || (wanted == "migrate" && *tool == Tool::GolangMigrate)
                    || (wanted == "ory-pop" && *tool == Tool::Pop)
            })
            .ok_or_else(|| {
                Error::config(
                    Code::Usage,
                    format!(
                        "`--from {name}` is not a tool adopt reads; use one of: {}",
                        Tool::ALL.map(Tool::name).join(", ")
                    ),
                )
            })
    }

    /// The history table the tool keeps (as found through `search_path`).
    pub fn table(self) -> &'static str {
        match self {
            Tool::GolangMigrate | Tool::Dbmate => "schema_migrations",
            Tool::Sqlx => sqlx::TABLE,
            Tool::Diesel => diesel::TABLE,
            Tool::Flyway => flyway::TABLE,
            Tool::Goose => goose::TABLE,
            Tool::SqlMigrate => sql_migrate::TABLE,
            Tool::Pop => pop::TABLE,
            Tool::Drizzle => drizzle::TABLE,
            Tool::Prisma => prisma::TABLE,
            Tool::Liquibase => liquibase::TABLE,
            Tool::Sqitch => sqitch::TABLE,
        }
    }

    /// The history table for the project in `dir`: Sqitch's registry schema
    /// can be another than `sqitch` (`sqitch.conf`), Flyway's table and
    /// schema others than its defaults (`flyway.conf`); the others are fixed.
    pub fn table_in(self, dir: &std::path::Path) -> String {
        match self {
            Tool::Sqitch => sqitch::table(dir),
            Tool::Flyway => flyway::table(dir),
            other => other.table().to_string(),
        }
    }

    /// The columns that tell this tool's table from another one of the same
    /// name (golang-migrate and dbmate both name theirs `schema_migrations`).
    fn recognises(self, columns: &[String]) -> bool {
        let has = |name: &str| columns.iter().any(|c| c == name);
        match self {
            Tool::GolangMigrate => has("version") && has("dirty"),
            Tool::Dbmate => has("version") && !has("dirty"),
            Tool::Sqlx => has("version") && has("checksum") && has("success"),
            Tool::Diesel => has("version") && has("run_on"),
            Tool::Flyway => has("installed_rank") && has("version") && has("checksum"),
            Tool::Goose => has("version_id") && has("is_applied"),
            Tool::SqlMigrate => has("id") && has("applied_at"),
            Tool::Pop => has("version"),
            Tool::Drizzle => has("hash") && has("created_at"),
            Tool::Prisma => has("migration_name") && has("checksum") && has("finished_at"),
            Tool::Liquibase => has("id") && has("author") && has("filename") && has("md5sum"),
            Tool::Sqitch => has("change_id") && has("change") && has("project"),
        }
    }

    /// Reads the tool's record (`dir`: the namespace's directory, for
    /// tools whose rows only make sense with their own index of files).
    async fn read(self, db: &Db, dir: &std::path::Path) -> Result<Record> {
        match self {
            Tool::GolangMigrate => golang_migrate::read(db).await,
            Tool::Dbmate => dbmate::read(db).await,
            Tool::Sqlx => sqlx::read(db).await,
            Tool::Diesel => diesel::read(db).await,
            Tool::Flyway => flyway::read(db, &flyway::table(dir)).await,
            Tool::Goose => goose::read(db).await,
            Tool::SqlMigrate => sql_migrate::read(db).await,
            Tool::Pop => pop::read(db).await,
            Tool::Drizzle => drizzle::read(db, dir).await,
            Tool::Prisma => prisma::read(db).await,
            Tool::Liquibase => liquibase::read(db).await,
            Tool::Sqitch => sqitch::read(db, dir).await,
        }
    }
}

impl std::fmt::Display for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What another tool's table says was applied.
#[derive(Debug, Clone)]
pub struct Record {
    /// Its rows, in the order the tool wrote them.
    pub rows: Vec<Row>,
    /// The tool writes one row per applied version (so a file older than the
    /// newest row but without a row of its own was never applied: a gap).
    /// golang-migrate keeps only the current version.
    pub every_version: bool,
}

/// One row of another tool's history.
#[derive(Debug, Clone)]
pub struct Row {
    /// Which migration it is about.
    pub key: Key,
    /// When the tool applied it, when the tool keeps that.
    pub applied_at: Option<DateTime<Utc>>,
    /// How long it ran (ms), when the tool keeps that.
    pub execution_ms: i64,
    /// Whether it finished.
    pub status: Status,
    /// The checksum the tool recorded, when it keeps one.
    pub checksum: Expected,
    /// The row as the tool names it, for messages (`V3__add.sql`, `20240101`).
    pub label: String,
}

/// How a row names its migration.
#[derive(Debug, Clone)]
pub enum Key {
    /// By version.
    Version(Version),
    /// By file name (sql-migrate's id), with the version it starts with.
    FileName(Option<Version>, String),
    /// By the name of the folder holding the script (Prisma), with the
    /// version it starts with.
    Folder(Option<Version>, String),
    /// The `occurrence`-th (0-based, in version order) migration of this
    /// name (a Sqitch change, reworked changes appearing several times).
    Occurrence {
        /// The change name.
        name: String,
        /// Which of the migrations of that name.
        occurrence: usize,
    },
    /// By migration name and file name (a Liquibase changeset: `author:id`
    /// in a file).
    Named {
        /// The migration's name (`author:id`).
        name: String,
        /// The file's name.
        file: String,
    },
    /// A row migsafe cannot take over (a Flyway Java migration): refused,
    /// named by this.
    Unsupported(String),
    /// The last run of a Flyway repeatable migration `R__<name>.sql`.
    Repeatable(String),
    /// Every version up to this one (golang-migrate's current version,
    /// Flyway's baseline). `file_required`: the version itself must have a
    /// file (golang-migrate); a Flyway baseline usually has none.
    UpTo {
        /// The newest version counted as applied.
        version: Version,
        /// Whether that version must have a file.
        file_required: bool,
    },
}

impl Key {
    /// What reason codes name the row by: its version, or its file name.
    fn subject(&self) -> String {
        match self {
            Key::Version(v) | Key::UpTo { version: v, .. } => v.to_string(),
            Key::FileName(Some(v), _) | Key::Folder(Some(v), _) => v.to_string(),
            Key::FileName(None, file) | Key::Folder(None, file) => file.clone(),
            Key::Unsupported(what) => what.clone(),
            Key::Repeatable(name) => Version::repeatable(name).to_string(),
            Key::Named { name, .. } | Key::Occurrence { name, .. } => name.clone(),
        }
    }
}

/// Whether a row's migration finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Applied completely.
    Applied,
    /// Interrupted part-way (golang-migrate `dirty`).
    Dirty,
    /// Failed (sqlx and Flyway `success = false`, Prisma unfinished).
    Failed,
    /// Rolled back and not applied again (Prisma `rolled_back_at`).
    RolledBack,
}

/// A checksum as the other tool computes it over the migration's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// The tool keeps none.
    None,
    /// Flyway's line-by-line CRC32, as a signed 32-bit integer.
    FlywayCrc32(i32),
    /// SHA-384 of the file's bytes (sqlx).
    Sha384(Vec<u8>),
    /// SHA-256 of the file's bytes, hex (Drizzle, Prisma).
    Sha256Hex(String),
    /// SHA-1 of the file's bytes, hex (Sqitch's `script_hash`).
    Sha1Hex(String),
    /// Liquibase's `MD5SUM` of one changeset, checksum version 9 (`9:…`),
    /// with the `--validCheckSum` values it also accepts.
    LiquibaseV9(String),
}

impl Expected {
    /// The checksum of `bytes` computed the same way, when it differs from
    /// the recorded one (both as text for the message); `None` when equal.
    ///
    /// The hashes are of the file's bytes as the tool read them, so the same
    /// file checked out with the other line ending (git's `autocrlf`) would
    /// look changed although not one statement differs (sqlx#2659). The file
    /// matches when it does as it is, with CRLF turned into LF, or with LF
    /// turned into CRLF — what Prisma's own `script_matches_checksum` accepts,
    /// and what migsafe's checksum ignores anyway.
    fn differs(&self, bytes: &[u8]) -> Option<(String, String)> {
        use sha2::{Digest, Sha256, Sha384};
        let variants = || {
            let text = String::from_utf8_lossy(bytes);
            let lf = text.replace("\r\n", "\n");
            let crlf = lf.replace('\n', "\r\n");
            [bytes.to_vec(), lf.into_bytes(), crlf.into_bytes()]
        };
        match self {
            Expected::None => None,
            Expected::FlywayCrc32(recorded) => {
                let actual = flyway::checksum(bytes);
                (actual != *recorded).then(|| (recorded.to_string(), actual.to_string()))
            }
            Expected::Sha384(recorded) => {
                let matches = variants()
                    .iter()
                    .any(|v| Sha384::digest(v).as_slice() == recorded.as_slice());
                (!matches).then(|| (hex::encode(recorded), hex::encode(Sha384::digest(bytes))))
            }
            Expected::Sha1Hex(recorded) => {
                use sha1::Sha1;
                let matches = variants()
                    .iter()
                    .any(|v| hex::encode(Sha1::digest(v)).eq_ignore_ascii_case(recorded));
                (!matches).then(|| (recorded.clone(), hex::encode(Sha1::digest(bytes))))
            }
            Expected::LiquibaseV9(recorded) => {
                let actual = liquibase::checksum_v9(bytes);
                (actual != *recorded).then(|| (recorded.clone(), actual))
            }
            Expected::Sha256Hex(recorded) => {
                let matches = variants()
                    .iter()
                    .any(|v| hex::encode(Sha256::digest(v)).eq_ignore_ascii_case(recorded));
                (!matches).then(|| (recorded.clone(), hex::encode(Sha256::digest(bytes))))
            }
        }
    }
}

/// One migration adopt records (or would record, with `--dry-run`).
#[derive(Debug, Clone, Serialize)]
pub struct Adopted {
    /// Version.
    pub version: String,
    /// Name.
    pub name: String,
    /// When the other tool applied it (the adoption time when it keeps none).
    pub applied_at: DateTime<Utc>,
    /// Whether that time is the other tool's (false: it keeps none).
    pub original_time: bool,
    /// How long it ran, when the other tool kept that.
    pub execution_ms: i64,
    /// A repeatable, or a Liquibase `runOnChange` changeset, that changed
    /// since the other tool last ran it: `apply` runs it again, as that tool
    /// would have.
    pub runs_again: bool,
    /// A repeatable's checksum to record (its file's, or a stand-in for the
    /// changed file's that the next `apply` runs again).
    #[serde(skip)]
    repeatable_checksum: Option<String>,
    /// A changed runOnChange changeset's stand-in checksum, recorded
    /// instead of its file's so that the next `apply` runs it again.
    #[serde(skip)]
    stand_in: Option<String>,
}

/// What `adopt` did for one namespace.
#[derive(Debug, Clone, Serialize)]
pub struct Adoption {
    /// Namespace.
    pub namespace: String,
    /// The tool whose history was read.
    pub tool: Tool,
    /// Its table.
    pub table: String,
    /// Nothing was written.
    pub dry_run: bool,
    /// Recorded in migsafe's history (or would be).
    pub recorded: Vec<Adopted>,
    /// Already in migsafe's history, left as they are.
    pub already_recorded: Vec<String>,
    /// Files the other tool never applied: `apply` will run them.
    pub pending: Vec<String>,
}

const COLUMNS: &str = "SELECT a.attname::text FROM pg_catalog.pg_attribute a \
     WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped";
const NOW: &str = "SELECT now()";

/// The columns of `table` (resolved through `search_path`); `None` when it
/// does not exist.
async fn columns(db: &Db, table: &str) -> Result<Option<Vec<String>>> {
    let exists = db
        .client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .map_err(|e| database_error(db, "look for other tools' history tables", &e))?;
    if !exists.get::<_, bool>(0) {
        return Ok(None);
    }
    let rows = db
        .client
        .query(COLUMNS, &[&table])
        .await
        .map_err(|e| database_error(db, "read the columns of another tool's table", &e))?;
    Ok(Some(rows.iter().map(|r| r.get(0)).collect()))
}

/// The tools whose history table this database has.
pub(crate) async fn detect(db: &Db, dir: &std::path::Path) -> Result<Vec<Tool>> {
    let mut found = Vec::new();
    for tool in Tool::ALL {
        if let Some(columns) = columns(db, &tool.table_in(dir)).await?
            && tool.recognises(&columns)
        {
            found.push(tool);
        }
    }
    Ok(found)
}

/// Another tool's history that holds rows: the tool, its table, how many.
#[derive(Debug, Clone)]
pub struct OtherHistory {
    /// The tool.
    pub tool: Tool,
    /// Its table, as looked up.
    pub table: String,
    /// Its rows.
    pub rows: i64,
}

/// The other tools' history tables on this database that hold rows, for
/// the project in `dir`; migsafe's own history table (`own`, which has
/// golang-migrate's columns when the history schema is on `search_path`) is
/// never one.
pub(crate) async fn other_histories(
    db: &Db,
    dir: &std::path::Path,
    own: &str,
) -> Result<Vec<OtherHistory>> {
    let mut out = Vec::new();
    for tool in detect(db, dir).await? {
        let table = tool.table_in(dir);
        let same: bool = db
            .client
            .query_one(
                "SELECT to_regclass($1) IS NOT DISTINCT FROM to_regclass($2)",
                &[&table, &own],
            )
            .await
            .map_err(|e| database_error(db, "look for other tools' history tables", &e))?
            .get(0);
        if same {
            continue;
        }
        // The tools' own table names, or a registry schema through
        // quote_ident: SQL as they stand.
        let rows: i64 = db
            .client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .map_err(|e| database_error(db, "count another tool's history rows", &e))?
            .get(0);
        if rows > 0 {
            out.push(OtherHistory { tool, table, rows });
        }
    }
    Ok(out)
}

/// The tool to adopt from: the one asked for (its table must be there), or
/// the only one whose table is present.
async fn choose(
    db: &Db,
    namespace: &str,
    from: Option<Tool>,
    dir: &std::path::Path,
) -> Result<Tool> {
    if let Some(tool) = from {
        return match columns(db, &tool.table_in(dir)).await? {
            Some(columns) if tool.recognises(&columns) => Ok(tool),
            Some(_) => Err(Error::Refused {
                reason: ReasonCode::about(Code::AdoptSourceMissing, namespace),
                message: format!(
                    "{} exists on {} but is not {tool}'s history table (its columns differ)",
                    tool.table_in(dir),
                    db.target
                ),
                hint: Some("name the tool that created it with --from; nothing was recorded".into()),
             source: None, }),
            None => Err(Error::Refused {
                reason: ReasonCode::about(Code::AdoptSourceMissing, namespace),
                message: format!(
                    "{tool}'s history table {} is not on {} (looked up through search_path)",
                    tool.table_in(dir),
                    db.target
                ),
                hint: Some(
                    "connect to the database that tool migrated, with the search_path it used; nothing was recorded"
                        .into(),
                ),
             source: None, }),
        };
    }
    let found = detect(db, dir).await?;
    match found.as_slice() {
        [tool] => Ok(*tool),
        [] => Err(Error::Refused {
            reason: ReasonCode::about(Code::AdoptSourceMissing, namespace),
            message: format!(
                "no other tool's history table is on {} (looked for {})",
                db.target,
                Tool::ALL
                    .iter()
                    .map(|t| format!("{} ({t})", t.table_in(dir)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            hint: Some(
                "name the tool with --from, and connect with the search_path it used; nothing was recorded"
                    .into(),
            ),
         source: None, }),
        several => Err(Error::Refused {
            reason: ReasonCode::about(Code::AdoptSourceAmbiguous, namespace),
            message: format!(
                "the history tables of several tools are on {}: {}",
                db.target,
                several
                    .iter()
                    .map(|t| format!("{t} ({})", t.table()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            hint: Some("choose one with --from TOOL; nothing was recorded".into()),
         source: None, }),
    }
}

fn mismatch(
    namespace: &str,
    version: impl std::fmt::Display,
    message: String,
    hint: &str,
) -> Error {
    Error::Refused {
        reason: ReasonCode::migration(Code::AdoptMismatch, namespace, version),
        message,
        hint: Some(format!("{hint}; nothing was recorded")),
        source: None,
    }
}

/// A migration chosen for recording, with what the other tool said of it.
struct Chosen<'a> {
    migration: &'a Migration,
    applied_at: Option<DateTime<Utc>>,
    execution_ms: i64,
    /// A runOnChange changeset changed since the tool ran it: the checksum
    /// to record instead of the file's (one no file has), so that `apply`
    /// runs it again, as the tool would.
    runs_again: Option<String>,
}

/// Matches the tool's rows to the namespace's files; refuses by name
/// whatever cannot be matched and vouched for.
fn match_rows<'a>(
    namespace: &str,
    tool: Tool,
    table: &str,
    migrations: &'a [Migration],
    record: &Record,
) -> Result<BTreeMap<Version, Chosen<'a>>> {
    let by_version = |v: &Version| {
        migrations
            .binary_search_by(|m| m.version.cmp(v))
            .ok()
            .map(|i| &migrations[i])
    };
    let mut chosen: BTreeMap<Version, Chosen<'a>> = BTreeMap::new();
    for row in &record.rows {
        let version = row.key.subject();
        let version = &version;
        match row.status {
            Status::Applied => {}
            Status::Dirty => {
                return Err(mismatch(
                    namespace,
                    version,
                    format!(
                        "{tool} marks {} dirty in {}: it stopped part-way, and what it left is unknown",
                        row.label, table
                    ),
                    &format!(
                        "finish or undo that migration by hand, clear the flag the way {tool} does (`migrate force`), then adopt again"
                    ),
                ));
            }
            Status::RolledBack => {
                return Err(mismatch(
                    namespace,
                    version,
                    format!(
                        "{tool} recorded {} as rolled back in {}, and it was not applied again",
                        row.label, table
                    ),
                    &format!(
                        "apply it with {tool} again (or remove its folder if it must never run), then adopt again"
                    ),
                ));
            }
            Status::Failed => {
                return Err(mismatch(
                    namespace,
                    version,
                    format!("{tool} recorded {} as failed in {}", row.label, table),
                    &format!(
                        "repair it with {tool} first (undo what it left, remove or repair the failed row), then adopt again"
                    ),
                ));
            }
        }
        let no_file = || {
            mismatch(
                namespace,
                version,
                format!(
                    "{tool} applied {} ({}), but namespace `{namespace}` has no migration file for it",
                    row.label, table
                ),
                "restore the file from version control (or point the namespace's dir at the tool's migrations)",
            )
        };
        match &row.key {
            Key::Version(v) => {
                let migration = by_version(v).ok_or_else(no_file)?;
                let runs_again = check(namespace, tool, table, row, migration)?;
                chosen.insert(
                    v.clone(),
                    Chosen {
                        migration,
                        applied_at: row.applied_at,
                        execution_ms: row.execution_ms,
                        runs_again,
                    },
                );
            }
            // Taken by `match_repeatables`.
            Key::Repeatable(_) => {}
            Key::Unsupported(_) => {
                return Err(mismatch(
                    namespace,
                    version,
                    format!(
                        "{tool} applied {}, which migsafe cannot take over",
                        row.label
                    ),
                    "turn it into a versioned SQL migration of this namespace with the other tool first",
                ));
            }
            Key::Occurrence { name, occurrence } => {
                let migration = migrations
                    .iter()
                    .filter(|m| &m.name == name)
                    .nth(*occurrence)
                    .ok_or_else(no_file)?;
                let runs_again = check(namespace, tool, table, row, migration)?;
                chosen.insert(
                    migration.version.clone(),
                    Chosen {
                        migration,
                        applied_at: row.applied_at,
                        execution_ms: row.execution_ms,
                        runs_again,
                    },
                );
            }
            Key::Named { name, file } => {
                let migration = migrations
                    .iter()
                    .find(|m| {
                        &m.name == name
                            && m.up
                                .path
                                .file_name()
                                .is_some_and(|n| n.to_string_lossy() == file.as_str())
                    })
                    .ok_or_else(no_file)?;
                let runs_again = check(namespace, tool, table, row, migration)?;
                chosen.insert(
                    migration.version.clone(),
                    Chosen {
                        migration,
                        applied_at: row.applied_at,
                        execution_ms: row.execution_ms,
                        runs_again,
                    },
                );
            }
            Key::FileName(_, file) | Key::Folder(_, file) => {
                let folder = matches!(row.key, Key::Folder(..));
                let migration = migrations
                    .iter()
                    .find(|m| {
                        let named = if folder {
                            m.up.path.parent().and_then(std::path::Path::file_name)
                        } else {
                            m.up.path.file_name()
                        };
                        named.is_some_and(|n| n.to_string_lossy() == file.as_str())
                    })
                    .ok_or_else(no_file)?;
                let runs_again = check(namespace, tool, table, row, migration)?;
                chosen.insert(
                    migration.version.clone(),
                    Chosen {
                        migration,
                        applied_at: row.applied_at,
                        execution_ms: row.execution_ms,
                        runs_again,
                    },
                );
            }
            Key::UpTo {
                version,
                file_required,
            } => {
                if *file_required && by_version(version).is_none() {
                    return Err(no_file());
                }
                for migration in migrations.iter().filter(|m| m.version <= *version) {
                    chosen.entry(migration.version.clone()).or_insert(Chosen {
                        migration,
                        applied_at: row.applied_at,
                        execution_ms: 0,
                        runs_again: None,
                    });
                }
            }
        }
    }
    if record.every_version
        && let Some(newest) = chosen.keys().next_back()
        && let Some(gap) = migrations
            .iter()
            .find(|m| m.version < *newest && !chosen.contains_key(&m.version))
    {
        return Err(mismatch(
            namespace,
            &gap.version,
            format!(
                "{} is older than {newest}, the newest migration {tool} applied, but {} has no row for it: {tool} never applied it",
                gap.up.path.display(),
                table
            ),
            &format!(
                "apply it with {tool} first (or remove the file if it must never run), then adopt again"
            ),
        ));
    }
    Ok(chosen)
}

/// A repeatable chosen for recording: its file, what the tool said of its
/// last run, and the checksum to record.
struct ChosenRepeatable<'a> {
    migration: &'a Migration,
    applied_at: Option<DateTime<Utc>>,
    execution_ms: i64,
    /// The file's checksum when the tool last ran this very file, else a
    /// value no file has, so that `apply` runs the changed file again.
    checksum: String,
}

/// Matches the tool's repeatable rows to the namespace's `R__` files. A
/// changed file is not refused (the tool would run it again); a failed last
/// run or a row without a file is.
fn match_repeatables<'a>(
    namespace: &str,
    tool: Tool,
    table: &str,
    repeatables: &'a [Migration],
    rows: &[&Row],
) -> Result<Vec<ChosenRepeatable<'a>>> {
    let mut out = Vec::new();
    for row in rows {
        let Key::Repeatable(name) = &row.key else {
            continue;
        };
        let version = Version::repeatable(name);
        if row.status != Status::Applied {
            return Err(mismatch(
                namespace,
                &version,
                format!(
                    "{tool} recorded the last run of {} as failed in {}",
                    row.label, table
                ),
                &format!(
                    "run it again with {tool} (or `{tool} repair` to remove the failed row), then adopt again"
                ),
            ));
        }
        let Some(migration) = repeatables.iter().find(|m| m.version == version) else {
            return Err(mismatch(
                namespace,
                &version,
                format!(
                    "{tool} ran {} ({}), but namespace `{namespace}` has no file {version}.sql",
                    row.label, table
                ),
                &format!(
                    "restore the file from version control, or, if it was removed on purpose, record that with `{tool} repair` (Flyway 9+ marks it deleted)"
                ),
            ));
        };
        // Flyway checksums a repeatable after its placeholders are replaced
        // (a new value runs it again): that text, when it had any.
        let bytes = if migration.up.directives.placeholders_replaced {
            migration.up.sql.clone().into_bytes()
        } else {
            let path = &migration.up.path;
            std::fs::read(path).map_err(|e| Error::io(path, "read", &e))?
        };
        let unchanged = row.checksum == Expected::None || row.checksum.differs(&bytes).is_none();
        out.push(ChosenRepeatable {
            migration,
            applied_at: row.applied_at,
            execution_ms: row.execution_ms,
            checksum: if unchanged {
                migration.up.checksum.clone()
            } else {
                match &row.checksum {
                    Expected::FlywayCrc32(crc) => format!("{tool}-crc32:{crc}"),
                    other => format!("{tool}:{other:?}"),
                }
            },
        });
    }
    Ok(out)
}

/// Refuses when the tool's checksum differs from the file's, unless the
/// migration runs again when it changes (Liquibase `runOnChange`): then the
/// checksum to record, one that makes `apply` run it again.
fn check(
    namespace: &str,
    tool: Tool,
    table: &str,
    row: &Row,
    migration: &Migration,
) -> Result<Option<String>> {
    if row.checksum == Expected::None {
        return Ok(None);
    }
    let path = &migration.up.path;
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, "read", &e))?;
    // Liquibase keeps a checksum per changeset, of its SQL as Liquibase
    // reads it, and accepts the values its `--validCheckSum` lines list.
    let bytes = match &row.checksum {
        Expected::LiquibaseV9(recorded) => match liquibase::changeset(&bytes, &migration.name) {
            Some(changeset) if liquibase::accepts(&changeset, recorded) => return Ok(None),
            Some(changeset) => changeset.checked_sql.into_bytes(),
            None => return Ok(None),
        },
        _ => bytes,
    };
    if let Some((recorded, actual)) = row.checksum.differs(&bytes) {
        if migration.up.directives.run_on_change {
            return Ok(Some(format!("{tool}:{recorded}")));
        }
        return Err(mismatch(
            namespace,
            &migration.version,
            format!(
                "{} has changed since {tool} applied it: {} records checksum {recorded}, the file has {actual}",
                path.display(),
                table
            ),
            "restore the file as it was applied (version control), or, if the change is intended, repair the checksum with the other tool first",
        ));
    }
    Ok(None)
}

/// Adopts the history of `from` (or the detected tool) into one namespace.
pub(crate) async fn adopt(
    env: &Env<'_>,
    target: &Target<'_>,
    from: Option<Tool>,
    dry_run: bool,
) -> Result<Adoption> {
    let db = target.settings.connect().await?;
    let history = History::new(&env.config.history_schema);
    if dry_run {
        // Reads only: no lock, nothing created (SPEC 13).
        return plan(&db, &history, target, from, true)
            .await
            .map(|(a, _)| a);
    }
    // What would be refused is refused before the lock: taking it creates
    // migsafe's history tables, and a refusal must leave nothing behind.
    plan(&db, &history, target, from, true).await?;
    let key = lock_namespace(env, target, &db, &history).await?;
    let result = record(env, &db, &history, target, from).await;
    unlock_namespace(&db, key).await;
    result
}

/// Reads both histories and decides what to record.
async fn plan(
    db: &Db,
    history: &History,
    target: &Target<'_>,
    from: Option<Tool>,
    dry_run: bool,
) -> Result<(Adoption, Vec<Adopted>)> {
    let namespace = target.name();
    let tool = choose(db, namespace, from, &target.namespace.dir).await?;
    let record = tool.read(db, &target.namespace.dir).await?;
    let migrations = &target.sources.migrations;
    let table = tool.table_in(&target.namespace.dir);
    let chosen = match_rows(namespace, tool, &table, migrations, &record)?;
    let repeatable_rows: Vec<&Row> = record
        .rows
        .iter()
        .filter(|r| matches!(r.key, Key::Repeatable(_)))
        .collect();
    let repeatables = match_repeatables(
        namespace,
        tool,
        &table,
        &target.sources.repeatables,
        &repeatable_rows,
    )?;
    let existing = history.read(db, namespace).await?;
    let existing_repeatables = if target.sources.repeatables.is_empty() {
        Vec::new()
    } else {
        Repeatables::of(history).read(db, namespace).await?
    };
    let now: DateTime<Utc> = db
        .client
        .query_one(NOW, &[])
        .await
        .map_err(|e| database_error(db, "read the server's clock", &e))?
        .get(0);
    let mut recorded = Vec::new();
    let mut already = Vec::new();
    for (version, chosen) in &chosen {
        if existing.iter().any(|r| &r.version == version) {
            already.push(version.to_string());
            continue;
        }
        recorded.push(Adopted {
            version: chosen.migration.version.to_string(),
            name: chosen.migration.name.clone(),
            applied_at: chosen.applied_at.unwrap_or(now),
            original_time: chosen.applied_at.is_some(),
            execution_ms: chosen.execution_ms,
            runs_again: chosen.runs_again.is_some(),
            repeatable_checksum: None,
            stand_in: chosen.runs_again.clone(),
        });
    }
    for chosen in &repeatables {
        let version = &chosen.migration.version;
        if existing_repeatables.iter().any(|r| &r.version() == version) {
            already.push(version.to_string());
            continue;
        }
        recorded.push(Adopted {
            version: version.to_string(),
            name: chosen.migration.name.clone(),
            applied_at: chosen.applied_at.unwrap_or(now),
            original_time: chosen.applied_at.is_some(),
            execution_ms: chosen.execution_ms,
            runs_again: chosen.checksum != chosen.migration.up.checksum,
            repeatable_checksum: Some(chosen.checksum.clone()),
            stand_in: None,
        });
    }
    let mut pending: Vec<String> = migrations
        .iter()
        .filter(|m| {
            !chosen.contains_key(&m.version) && !existing.iter().any(|r| r.version == m.version)
        })
        .map(|m| m.version.to_string())
        .collect();
    pending.extend(
        target
            .sources
            .repeatables
            .iter()
            .filter(|m| {
                !repeatables.iter().any(|c| c.migration.version == m.version)
                    && !existing_repeatables
                        .iter()
                        .any(|r| r.version() == m.version)
            })
            .map(|m| m.version.to_string()),
    );
    let adoption = Adoption {
        namespace: namespace.to_string(),
        tool,
        table: tool.table_in(&target.namespace.dir),
        dry_run,
        recorded: recorded.clone(),
        already_recorded: already,
        pending,
    };
    Ok((adoption, recorded))
}

/// Records the adoption in one transaction (the lock is held).
async fn record(
    env: &Env<'_>,
    db: &Db,
    history: &History,
    target: &Target<'_>,
    from: Option<Tool>,
) -> Result<Adoption> {
    let namespace = target.name();
    let (adoption, recorded) = plan(db, history, target, from, false).await?;
    if recorded.is_empty() {
        return Ok(adoption);
    }
    let by = operator();
    db.client
        .batch_execute("BEGIN")
        .await
        .map_err(|e| database_error(db, "start the adoption's transaction", &e))?;
    let repeatables = Repeatables::of(history);
    if recorded.iter().any(|a| a.repeatable_checksum.is_some()) {
        repeatables.ensure(db).await?;
    }
    let written = async {
        for adopted in &recorded {
            let note = if adopted.repeatable_checksum.is_some() {
                if adopted.runs_again {
                    "; repeatable: the file changed since its last run, apply runs it again"
                } else {
                    "; repeatable"
                }
            } else if adopted.runs_again {
                "; runOnChange: the changeset changed since the tool ran it, apply runs it again"
            } else if adopted.original_time {
                ""
            } else {
                "; the tool keeps no applied time: adoption time recorded"
            };
            if let Some(checksum) = &adopted.repeatable_checksum {
                repeatables
                    .insert_adopted(
                        db,
                        namespace,
                        &adopted.name,
                        checksum,
                        adopted.applied_at,
                        adopted.execution_ms,
                        &by,
                    )
                    .await?;
            } else {
                let Some(migration) = Version::parse(&adopted.version)
                    .ok()
                    .and_then(|v| target.sources.get(&v))
                else {
                    continue;
                };
                history
                    .insert_adopted(
                        db,
                        &AdoptRow {
                            namespace,
                            version: migration.version.as_str(),
                            name: &migration.name,
                            checksum: adopted
                                .stand_in
                                .as_deref()
                                .unwrap_or(&migration.up.checksum),
                            down_checksum: migration.down.as_ref().map(|d| d.checksum.as_str()),
                            applied_at: adopted.applied_at,
                            execution_ms: adopted.execution_ms,
                            applied_by: &by,
                        },
                    )
                    .await?;
            }
            history
                .audit(
                    db,
                    &AuditEntry {
                        namespace,
                        version: &adopted.version,
                        action: "adopt",
                        reason: "taken over from another tool's history without running",
                        detail: Some(format!("from {} ({}){note}", adoption.tool, adoption.table)),
                        performed_by: &by,
                    },
                )
                .await?;
        }
        Ok::<(), Error>(())
    }
    .await;
    if let Err(err) = written {
        let _ = db.client.batch_execute("ROLLBACK").await;
        return Err(err);
    }
    db.client
        .batch_execute("COMMIT")
        .await
        .map_err(|e| database_error(db, "commit the adoption", &e))?;
    for adopted in &recorded {
        env.events.emit(&crate::events::Event::Adopted {
            namespace: namespace.to_string(),
            version: adopted.version.clone(),
            tool: adoption.tool.to_string(),
            applied_at: adopted.applied_at.to_rfc3339(),
        });
    }
    // Drift detection compares later runs with the schema as adopted.
    crate::pipeline::record_schema(env, db, history, &[target]).await?;
    Ok(adoption)
}

/// The version a file or folder name starts with (its leading digits).
pub(crate) fn leading_version(name: &str) -> Option<Version> {
    let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
    Version::parse(&digits).ok()
}

/// A version read from another tool's table, or a refusal naming it.
pub(crate) fn parse_version(tool: Tool, text: &str) -> Result<Version> {
    Version::parse(text.trim()).map_err(|e| Error::Config {
        reason: ReasonCode::new(Code::HistoryInvalid),
        message: format!(
            "{tool}'s table {} holds the version {text:?}, which is not a version migsafe reads: {e}",
            tool.table()
        ),
        hint: Some("fix or delete that row with the other tool; nothing was recorded".into()),
     source: None, })
}

/// The error of a failed read of another tool's table.
pub(crate) fn read_error(db: &Db, tool: Tool, err: &tokio_postgres::Error) -> Error {
    database_error(db, &format!("read {tool}'s table {}", tool.table()), err)
}

/// The record of a tool that keeps one row per applied version and nothing
/// else (dbmate, pop): no time, no checksum.
pub(crate) async fn versions_only(db: &Db, tool: Tool, read: &str) -> Result<Record> {
    let rows = db
        .client
        .query(read, &[])
        .await
        .map_err(|e| read_error(db, tool, &e))?;
    let mut out = Vec::new();
    for row in rows {
        let text: String = row.get(0);
        out.push(Row {
            key: Key::Version(parse_version(tool, &text)?),
            label: format!("version {text}"),
            applied_at: None,
            execution_ms: 0,
            status: Status::Applied,
            checksum: Expected::None,
        });
    }
    Ok(Record {
        rows: out,
        every_version: true,
    })
}

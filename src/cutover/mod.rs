//! `migsafe cutover sqlite` (SPEC 10): move a service's data from a SQLite
//! file into the PostgreSQL schema its migrations build, and prove the copy
//! is exact.
//!
//! - [`precheck`]: what would stop an exact copy — tables or columns the
//!   target lacks, values that do not fit their target column, foreign keys
//!   whose parent row is missing — read-only on both sides.
//! - [`copy`]: the load: binary COPY in one transaction, bounded memory,
//!   all-or-nothing; [`constraints`] takes the foreign keys and indexes out
//!   for it and puts them back.
//! - [`run`]: the `Migrator` methods the CLI calls (precheck, run, verify),
//!   which resolve the namespace and write the reports.
//! - [`verify`]: per table, row counts and an order-independent content hash
//!   computed the same way on both sides, with sample keys that differ.
//!
//! Tables and columns are matched by name ([`map`]); the value conversion
//! is decided by the target column's type ([`types`]).

pub mod charset;
pub mod constraints;
pub mod copy;
mod copy_rows;
pub mod epoch;
mod json;
pub mod precheck;
pub mod ranges;
pub mod run;
mod snapshot;
pub mod sqlite;
pub mod target;
pub mod types;
pub mod unique;
pub mod verify;

use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Code, ReasonCode};
use crate::report::Status;
use sqlite::SourceTable;
use target::TargetSchema;
use types::Kind;

/// The report format version of cutover reports.
pub const REPORT_VERSION: u32 = 1;

/// What to copy where.
#[derive(Debug, Clone)]
pub struct CutoverOptions {
    /// The SQLite file.
    pub from: PathBuf,
    /// The PostgreSQL schema holding the target tables.
    pub schema: String,
    /// SQLite tables to leave out.
    pub exclude: Vec<String>,
    /// Tables copied (or hashed) at once, each on its own connection.
    pub jobs: usize,
    /// `--epoch-unit`: how the numbers of date columns are read, where the
    /// operator decided (the others are detected from the values).
    pub epoch_units: Vec<epoch::EpochChoice>,
}

/// Something precheck found.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// Stable reason code.
    pub reason: ReasonCode,
    /// `fail` stops `run`; `warn` is worth knowing.
    pub status: Status,
    /// The SQLite table.
    pub table: String,
    /// The column, when it is about one.
    pub column: Option<String>,
    /// Short stable name (`text_in_integer_column`, `missing_parent`…).
    pub problem: String,
    /// How many rows (0 when not about rows).
    pub count: u64,
    /// The first examples (`key: value`), up to 100; `count` has them all.
    pub samples: Vec<String>,
    /// What it means and what to do.
    pub detail: String,
}

impl Problem {
    fn about(
        code: Code,
        status: Status,
        table: &str,
        column: Option<&str>,
        problem: &str,
        detail: String,
    ) -> Problem {
        let subject = match column {
            Some(column) => format!("{table}.{column}"),
            None => table.to_string(),
        };
        Problem {
            reason: ReasonCode::about(code, subject),
            status,
            table: table.to_string(),
            column: column.map(str::to_string),
            problem: problem.to_string(),
            count: 0,
            samples: Vec::new(),
            detail,
        }
    }
}

/// One copied column.
#[derive(Debug, Clone)]
pub struct ColumnMap {
    /// Its SQLite name.
    pub source: String,
    /// Its PostgreSQL name.
    pub target: String,
    /// The conversion.
    pub kind: Kind,
    /// The target type as PostgreSQL writes it (`numeric(12,2)`), for messages.
    pub type_display: String,
    /// NULL is a misfit.
    pub not_null: bool,
}

/// One SQLite table and the PostgreSQL table it goes to.
#[derive(Debug, Clone)]
pub struct TableMap {
    /// SQLite name.
    pub source: String,
    /// PostgreSQL name.
    pub target: String,
    /// The PostgreSQL schema.
    pub schema: String,
    /// `"schema"."table"`.
    pub qualified: String,
    /// The copied columns, in copy order.
    pub columns: Vec<ColumnMap>,
    /// Positions (in `columns`) of the target's primary key, used to name
    /// rows in messages and to find differing rows; empty when the target
    /// has none (rows are then named by their position or all values).
    pub key: Vec<usize>,
    /// How to name the SQLite rowid of this table (`None`: `WITHOUT ROWID`).
    pub rowid: Option<&'static str>,
    /// The target column fed by SQLite's `INTEGER PRIMARY KEY` (the rowid
    /// itself, unique by construction).
    pub rowid_column: Option<String>,
    /// `(target column, value)`: the highest id SQLite's `AUTOINCREMENT` has
    /// handed out (`sqlite_sequence`); the column's sequence is set past it.
    pub sequence_floor: Option<(String, i64)>,
    /// Target columns no SQLite column feeds (defaults, generated columns):
    /// not copied, so not compared either.
    pub not_compared: Vec<String>,
}

impl TableMap {
    /// The SQLite `SELECT` of the copied columns.
    pub fn source_select(&self) -> String {
        format!(
            "SELECT {} FROM {}",
            self.columns
                .iter()
                .map(|c| sqlite::quote(&c.source))
                .collect::<Vec<_>>()
                .join(", "),
            sqlite::quote(&self.source)
        )
    }

    /// The target column names in copy order.
    pub fn target_columns(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.target.clone()).collect()
    }

    /// The kinds in copy order.
    pub fn kinds(&self) -> Vec<Kind> {
        self.columns.iter().map(|c| c.kind.clone()).collect()
    }
}

/// The SQLite tables matched to target tables.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    /// Tables that will be copied.
    pub tables: Vec<TableMap>,
    /// What does not match.
    pub problems: Vec<Problem>,
}

/// Matches SQLite tables and columns to the target schema by name.
pub fn map(
    sources: &[SourceTable],
    virtual_tables: &[String],
    target: &TargetSchema,
    options: &CutoverOptions,
) -> Mapping {
    let excluded = |name: &str| options.exclude.iter().any(|e| e.eq_ignore_ascii_case(name));
    let mut mapping = Mapping::default();
    for name in virtual_tables.iter().filter(|n| !excluded(n)) {
        mapping.problems.push(Problem::about(
            Code::CutoverTableSkipped,
            Status::Warn,
            name,
            None,
            "virtual_table",
            "a virtual table (full-text search or an extension): its rows are not copied; rebuild it in PostgreSQL (for example with a tsvector column), or --exclude it".into(),
        ));
    }
    let mut used_targets = Vec::new();
    for source in sources.iter().filter(|s| !excluded(&s.name)) {
        let Some(table) = target.find(&source.name) else {
            mapping.problems.push(Problem::about(
                Code::CutoverTableMissing,
                Status::Fail,
                &source.name,
                None,
                "table_missing_on_target",
                format!(
                    "the target schema `{}` has no table `{}`: its rows would be lost. Add it with a migration, or leave it out with --exclude {}",
                    options.schema, source.name, source.name
                ),
            ));
            continue;
        };
        used_targets.push(table.name.clone());
        let mut columns = Vec::new();
        for name in &source.columns {
            let Some(column) = table.column(name) else {
                mapping.problems.push(Problem::about(
                    Code::CutoverColumnMissing,
                    Status::Fail,
                    &source.name,
                    Some(name),
                    "column_missing_on_target",
                    format!(
                        "table `{}` on the target has no column `{name}`: its values would be lost. Add it with a migration",
                        table.name
                    ),
                ));
                continue;
            };
            if column.generated {
                mapping.problems.push(Problem::about(
                    Code::CutoverColumnSkipped,
                    Status::Warn,
                    &source.name,
                    Some(name),
                    "generated_on_target",
                    "a generated column on the target: PostgreSQL computes it, the SQLite values are not copied or compared".into(),
                ));
                continue;
            }
            let Some(kind) = column.kind.clone() else {
                mapping.problems.push(Problem::about(
                    Code::CutoverTypeUnsupported,
                    Status::Fail,
                    &source.name,
                    Some(name),
                    "type_unsupported",
                    format!(
                        "migsafe cannot convert values for a `{}` column; see docs/cutover.md for the supported types (copy this column with its own script, or change its type)",
                        column.type_display
                    ),
                ));
                continue;
            };
            columns.push(ColumnMap {
                source: name.clone(),
                target: column.name.clone(),
                kind,
                type_display: column.type_display.clone(),
                not_null: column.not_null,
            });
        }
        for column in &table.columns {
            let copied = columns.iter().any(|c| c.target == column.name);
            if !copied
                && !source
                    .columns
                    .iter()
                    .any(|c| table.column(c).is_some_and(|t| t.name == column.name))
                && column.not_null
                && !column.has_default
                && !column.generated
            {
                mapping.problems.push(Problem::about(
                    Code::CutoverColumnRequired,
                    Status::Fail,
                    &source.name,
                    Some(&column.name),
                    "required_column_without_source",
                    format!(
                        "`{}.{}` is NOT NULL without a default and SQLite has no such column: every row would fail. Give it a default in a migration",
                        table.name, column.name
                    ),
                ));
            }
        }
        let key = table
            .primary_key
            .iter()
            .filter_map(|k| columns.iter().position(|c| c.target == *k))
            .collect::<Vec<_>>();
        let key = if key.len() == table.primary_key.len() {
            key
        } else {
            Vec::new()
        };
        let rowid_column = source.rowid_alias.as_ref().and_then(|alias| {
            columns
                .iter()
                .find(|c| c.source == *alias)
                .map(|c| c.target.clone())
        });
        let sequence_floor = rowid_column.clone().zip(source.sqlite_sequence);
        let not_compared = table
            .columns
            .iter()
            .filter(|t| !columns.iter().any(|c| c.target == t.name))
            .map(|t| t.name.clone())
            .collect();
        mapping.tables.push(TableMap {
            source: source.name.clone(),
            target: table.name.clone(),
            schema: options.schema.clone(),
            qualified: target::qualified(&options.schema, &table.name),
            columns,
            key,
            rowid: sqlite::rowid_name(source),
            rowid_column,
            sequence_floor,
            not_compared,
        });
    }
    for table in &target.tables {
        if !used_targets.contains(&table.name) && !excluded(&table.name) {
            mapping.problems.push(Problem::about(
                Code::CutoverTableUnmapped,
                Status::Warn,
                &table.name,
                None,
                "table_missing_in_sqlite",
                format!(
                    "the target table `{}` has no SQLite table: it is left as it is",
                    table.name
                ),
            ));
        }
    }
    // LATIN1 and SQL_ASCII are checked value by value in precheck.
    if target.encoding != "UTF8" && charset::Charset::of(&target.encoding).is_none() {
        let textual: Vec<String> = mapping
            .tables
            .iter()
            .flat_map(|t| {
                t.columns
                    .iter()
                    .filter(|c| matches!(c.kind, Kind::Text { .. } | Kind::Json | Kind::Jsonb))
                    .map(move |c| format!("{}.{}", t.source, c.source))
            })
            .collect();
        if !textual.is_empty() {
            mapping.problems.push(Problem::about(
                Code::CutoverValueMisfit,
                Status::Warn,
                "(database)",
                None,
                "target_encoding",
                format!(
                    "the target database's encoding is {}, not UTF8, and migsafe does not check each value against it (it does for LATIN1 and SQL_ASCII): text with a character it cannot hold fails the load, which then rolls back as a whole. Text columns: {}. A UTF8 database holds every value",
                    target.encoding,
                    textual.join(", ")
                ),
            ));
        }
    }
    mapping
}

/// The worst status of a list of problems.
pub fn result_of(problems: &[Problem]) -> Status {
    problems
        .iter()
        .map(|p| p.status)
        .max()
        .unwrap_or(Status::Pass)
}

//! `cutover sqlite precheck`: everything that would stop an exact copy,
//! found before anything is loaded. Read-only on both sides.
//!
//! Every value of every copied column goes through the same conversion as
//! the load ([`super::types::convert`]), so a clean precheck means the load
//! will not meet a value it cannot convert. Foreign keys are checked in the
//! SQLite file for both what SQLite declares and what the target enforces
//! (the target's are the ones that would fail the load). The target's unique
//! indexes are evaluated by PostgreSQL itself ([`super::unique`]).

use std::collections::BTreeMap;
use std::path::Path;

use futures_util::StreamExt;
use serde::Serialize;

use super::charset::Charset;
use super::sqlite::{self, quote};
use super::target::TargetSchema;
use super::types::{Misfit, convert, show};
use super::{CutoverOptions, Mapping, Problem, TableMap, result_of};
use crate::error::{Code, Error, ReasonCode, Result};
use crate::events::Interrupt;
use crate::report::Status;

/// Examples kept per problem in the report (the terminal shows five): enough
/// to fix a file in one round rather than five at a time.
const SAMPLES: usize = 100;

/// Rows of one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableRows {
    /// SQLite table.
    pub table: String,
    /// Target table.
    pub target: String,
    /// Rows in the SQLite file.
    pub rows: u64,
}

/// What precheck found.
#[derive(Debug, Clone, Serialize)]
pub struct PrecheckReport {
    /// Format version.
    pub schema_version: u32,
    /// The SQLite file.
    pub source: String,
    /// The target database (no password).
    pub target: String,
    /// The target schema.
    pub schema: String,
    /// Where the target's tables were read: `target`, or `scratch` when the
    /// target still had pending migrations (they were applied to a scratch
    /// database instead; the target was not touched).
    pub schema_from: String,
    /// Per copied table.
    pub tables: Vec<TableRows>,
    /// Everything found, failures first.
    pub problems: Vec<Problem>,
    /// `fail` when the copy could not be exact.
    pub result: Status,
}

/// Runs every check of the SQLite file against the target schema.
///
/// `values: false` leaves out the conversion of every value (a full read of
/// the file): `run` uses that, because its load converts every value anyway
/// and stops at the first misfit, rolling the load back. The unique
/// indexes are evaluated on `keys_on`, the database `schema` was read from
/// (in a temporary table that is rolled back, see [`super::unique`]).
pub async fn precheck(
    source: &Path,
    schema: &TargetSchema,
    keys_on: &crate::db::ConnectionSettings,
    options: &CutoverOptions,
    values: bool,
    interrupt: &Interrupt,
) -> Result<(Mapping, Vec<TableRows>, Vec<Problem>)> {
    let path = source.to_path_buf();
    let (tables, virtual_tables) = blocking(move || {
        let db = sqlite::open(&path)?;
        sqlite::tables(&db, &path)
    })
    .await?;
    let mapping = super::map(&tables, &virtual_tables, schema, options);
    // Independent reads of the file, run at the same time: the foreign
    // keys, the row counts, and — once the date units are decided, which
    // the converted values need — every value (precheck) and the unique keys.
    let orphaned = {
        let path = source.to_path_buf();
        let checks = foreign_key_checks(&tables, &mapping, schema);
        blocking(move || orphans(&path, &tables, &checks))
    };
    let counts = async {
        if values {
            Vec::new()
        } else {
            read_tables(
                source,
                mapping.tables.clone(),
                None,
                options.jobs,
                interrupt,
            )
            .await
        }
    };
    let keys = async {
        let path = source.to_path_buf();
        let choices = options.epoch_units.clone();
        let mut mapping = mapping.clone();
        let (mapping, units) = blocking(move || {
            let units = super::epoch::decide(&path, &mut mapping, &choices)?;
            Ok((mapping, units))
        })
        .await?;
        let scanned = async {
            if values {
                read_tables(
                    source,
                    mapping.tables.clone(),
                    Some(Charset::of(&schema.encoding)),
                    options.jobs,
                    interrupt,
                )
                .await
            } else {
                Vec::new()
            }
        };
        let (scanned, conflicts) = tokio::join!(
            scanned,
            super::unique::conflicts(keys_on, source, &mapping, schema, interrupt)
        );
        Ok::<_, Error>((mapping, units, scanned, conflicts?))
    };
    let (orphaned, counts, keys) = tokio::join!(orphaned, counts, keys);
    let (mapping, units, scanned, conflicts) = keys?;
    let scans = if values { scanned } else { counts };
    let mut problems = mapping.problems.clone();
    problems.extend(units);
    let mut rows = Vec::new();
    for (table, scanned) in mapping.tables.iter().zip(scans) {
        let (count, found) = scanned?;
        rows.push(TableRows {
            table: table.source.clone(),
            target: table.target.clone(),
            rows: count,
        });
        problems.extend(found);
    }
    problems.extend(orphaned?);
    problems.extend(conflicts);
    problems.sort_by_key(|p| std::cmp::Reverse(p.status));
    Ok((mapping, rows, problems))
}

/// Per table, its row count, or with `values` its row count and every value
/// converted (its misfits; and checked against the target's encoding when
/// that is a [`Charset`]), `jobs` tables at a time.
async fn read_tables(
    source: &Path,
    tables: Vec<TableMap>,
    values: Option<Option<Charset>>,
    jobs: usize,
    interrupt: &Interrupt,
) -> Vec<Result<(u64, Vec<Problem>)>> {
    futures_util::stream::iter(tables.into_iter().map(|table| {
        let path = source.to_path_buf();
        let interrupt = interrupt.clone();
        blocking(move || {
            if let Some(charset) = values {
                scan(&path, &table, charset, &interrupt)
            } else {
                let db = sqlite::open(&path)?;
                let rows = sqlite::count(&db, &table.source)
                    .map_err(|e| source_error(&path, &table.source, e))?;
                Ok((rows, Vec::new()))
            }
        })
    }))
    .buffered(jobs.max(1))
    .collect::<Vec<_>>()
    .await
}

/// Builds the report from [`precheck`]'s findings.
pub fn report(
    source: &Path,
    target: String,
    options: &CutoverOptions,
    schema_from: &str,
    tables: Vec<TableRows>,
    problems: Vec<Problem>,
) -> PrecheckReport {
    PrecheckReport {
        schema_version: super::REPORT_VERSION,
        source: source.display().to_string(),
        target,
        schema: options.schema.clone(),
        schema_from: schema_from.to_string(),
        tables,
        result: result_of(&problems),
        problems,
    }
}

/// Runs blocking SQLite work off the async runtime (a reader thread).
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::config(Code::Io, format!("a SQLite reader thread failed: {e}")))?
}

/// How a row is named in messages: its primary key values, else its position.
pub fn row_name(table: &TableMap, row: &rusqlite::Row<'_>, position: u64) -> String {
    if table.key.is_empty() {
        return format!("row {position}");
    }
    let values: Vec<String> = table
        .key
        .iter()
        .map(|&k| row.get_ref(k).map(show).unwrap_or_default())
        .collect();
    let names: Vec<&str> = table
        .key
        .iter()
        .map(|&k| table.columns[k].target.as_str())
        .collect();
    format!("({})=({})", names.join(", "), values.join(", "))
}

fn source_error(path: &Path, table: &str, err: rusqlite::Error) -> Error {
    Error::Config {
        reason: ReasonCode::new(Code::SqliteSourceInvalid),
        message: format!(
            "cannot read table `{table}` of the SQLite file {}: {err}",
            path.display()
        ),
        hint: None,
        source: None,
    }
}

/// Converts every value of one table; returns its row count and misfits.
fn scan(
    path: &Path,
    table: &TableMap,
    charset: Option<Charset>,
    interrupt: &Interrupt,
) -> Result<(u64, Vec<Problem>)> {
    let db = sqlite::open(path)?;
    let mut found: BTreeMap<(usize, &'static str), (u64, Vec<String>)> = BTreeMap::new();
    let mut count = 0u64;
    each_row(
        &db,
        path,
        &table.source,
        &table.source_select(),
        [],
        |row| {
            count += 1;
            if count.is_multiple_of(65_536) && interrupt.is_triggered() {
                return Err(interrupted());
            }
            for (index, column) in table.columns.iter().enumerate() {
                let value = row
                    .get_ref(index)
                    .map_err(|e| source_error(path, &table.source, e))?;
                let converted = convert(value, &column.kind, column.not_null);
                let misfit = match (converted, charset) {
                    (Err(misfit), _) => Some(misfit),
                    (Ok(cell), Some(charset)) => {
                        charset.refused(&cell).map(|(c, escaped)| Misfit {
                            problem: NOT_IN_ENCODING,
                            detail: super::charset::shown(c, escaped),
                        })
                    }
                    (Ok(_), None) => None,
                };
                if let Some(misfit) = misfit {
                    let entry = found.entry((index, misfit.problem)).or_default();
                    entry.0 += 1;
                    if entry.1.len() < SAMPLES {
                        entry.1.push(format!(
                            "{}: {}",
                            row_name(table, row, count),
                            misfit.detail
                        ));
                    }
                }
            }
            Ok(())
        },
    )?;
    let problems = found
        .into_iter()
        .map(|((index, problem), (count, samples))| {
            let column = &table.columns[index];
            let detail = if problem == NOT_IN_ENCODING {
                let what = match charset {
                    Some(Charset::SqlAscii) => {
                        "a jsonb \\u escape beyond ASCII, which jsonb on a SQL_ASCII database cannot store"
                    }
                    _ => "a character a LATIN1 database has no place for",
                };
                format!(
                    "{count} value(s) hold {what} (the load would fail on the first and roll back); create the database with ENCODING 'UTF8', or change those values in the SQLite file, and run precheck again"
                )
            } else {
                format!(
                    "{count} value(s) cannot become {} exactly ({}); fix them in the SQLite file (or change the column in a migration) and run precheck again",
                    column.type_display,
                    problem.replace('_', " ")
                )
            };
            let mut p = Problem::about(
                Code::CutoverValueMisfit,
                Status::Fail,
                &table.source,
                Some(&column.source),
                problem,
                detail,
            );
            p.count = count;
            p.samples = samples;
            p
        })
        .collect();
    Ok((count, problems))
}

/// The misfit of a value the target's encoding cannot hold.
const NOT_IN_ENCODING: &str = "not_in_target_encoding";

/// Runs `sql` on the SQLite file and hands every row to `each`; a read
/// error names the table.
fn each_row(
    db: &rusqlite::Connection,
    path: &Path,
    table: &str,
    sql: &str,
    params: impl rusqlite::Params,
    mut each: impl FnMut(&rusqlite::Row<'_>) -> Result<()>,
) -> Result<()> {
    let mut statement = db.prepare(sql).map_err(|e| source_error(path, table, e))?;
    let mut rows = statement
        .query(params)
        .map_err(|e| source_error(path, table, e))?;
    while let Some(row) = rows.next().map_err(|e| source_error(path, table, e))? {
        each(row)?;
    }
    Ok(())
}

/// `(a, b)=(1, "x")`: `columns.len()` values of a row from `offset` on, named.
fn key_text(columns: &[String], row: &rusqlite::Row<'_>, offset: usize) -> String {
    let values: Vec<String> = (offset..offset + columns.len())
        .map(|i| row.get_ref(i).map(show).unwrap_or_default())
        .collect();
    format!("({})=({})", columns.join(", "), values.join(", "))
}

/// How a SQLite row is named in samples: its primary key, else its rowid.
fn row_identity(table: Option<&sqlite::SourceTable>) -> Vec<String> {
    match table {
        Some(t) if !t.primary_key.is_empty() => t.primary_key.clone(),
        Some(t) => sqlite::rowid_name(t)
            .map(|r| vec![r.to_string()])
            .unwrap_or_default(),
        None => Vec::new(),
    }
}

/// Ctrl-C during a read-only step (precheck, verify): nothing was changed.
pub fn interrupted() -> Error {
    Error::Refused {
        reason: ReasonCode::new(Code::CutoverCancelled),
        message: "interrupted; nothing was changed".into(),
        hint: None,
        source: None,
    }
}

/// A reference to check in the SQLite file, in SQLite names.
#[derive(Debug, Clone)]
struct ForeignKeyCheck {
    /// Constraint name (target) or a description (SQLite-declared).
    name: String,
    table: String,
    columns: Vec<String>,
    parent: String,
    parent_columns: Vec<String>,
    /// Enforced by the target (the load would fail), or only declared in SQLite.
    enforced: bool,
}

fn foreign_key_checks(
    sources: &[sqlite::SourceTable],
    mapping: &Mapping,
    schema: &TargetSchema,
) -> Vec<ForeignKeyCheck> {
    let source_of = |target: &str| mapping.tables.iter().find(|t| t.target == target);
    let source_column = |table: &TableMap, target: &str| {
        table
            .columns
            .iter()
            .find(|c| c.target == target)
            .map(|c| c.source.clone())
    };
    let mut checks: Vec<ForeignKeyCheck> = Vec::new();
    for fk in &schema.foreign_keys {
        let (Some(child), Some(parent)) = (source_of(&fk.table), source_of(&fk.parent)) else {
            continue;
        };
        let columns: Option<Vec<String>> =
            fk.columns.iter().map(|c| source_column(child, c)).collect();
        let parent_columns: Option<Vec<String>> = fk
            .parent_columns
            .iter()
            .map(|c| source_column(parent, c))
            .collect();
        if let (Some(columns), Some(parent_columns)) = (columns, parent_columns) {
            checks.push(ForeignKeyCheck {
                name: fk.name.clone(),
                table: child.source.clone(),
                columns,
                parent: parent.source.clone(),
                parent_columns,
                enforced: true,
            });
        }
    }
    // What SQLite declares but the target does not enforce: still dangling data.
    for table in sources {
        for declared in &table.foreign_keys {
            let parent = sources
                .iter()
                .find(|s| s.name.eq_ignore_ascii_case(&declared.parent));
            let Some(parent) = parent else { continue };
            let parent_columns = if declared.parent_columns.is_empty() {
                parent.primary_key.clone()
            } else {
                declared.parent_columns.clone()
            };
            let same = |c: &ForeignKeyCheck| {
                c.table.eq_ignore_ascii_case(&table.name)
                    && c.parent.eq_ignore_ascii_case(&parent.name)
                    && c.columns.len() == declared.columns.len()
                    && c.columns
                        .iter()
                        .zip(&declared.columns)
                        .all(|(a, b)| a.eq_ignore_ascii_case(b))
            };
            if parent_columns.len() != declared.columns.len() || checks.iter().any(same) {
                continue;
            }
            if !mapping.tables.iter().any(|t| t.source == table.name) {
                continue;
            }
            checks.push(ForeignKeyCheck {
                name: format!(
                    "{}({})->{}",
                    table.name,
                    declared.columns.join(","),
                    parent.name
                ),
                table: table.name.clone(),
                columns: declared.columns.clone(),
                parent: parent.name.clone(),
                parent_columns,
                enforced: false,
            });
        }
    }
    checks
}

/// Rows whose reference has no parent row (MATCH SIMPLE: a NULL in any
/// referencing column means no reference).
fn orphans(
    path: &Path,
    tables: &[sqlite::SourceTable],
    checks: &[ForeignKeyCheck],
) -> Result<Vec<Problem>> {
    let db = sqlite::open(path)?;
    let mut problems = Vec::new();
    for check in checks {
        // Each orphan is named by its own key, not by the parent it misses
        // (five rows pointing at one missing parent are five rows to fix).
        let identity = row_identity(tables.iter().find(|t| t.name == check.table));
        let not_null = check
            .columns
            .iter()
            .map(|c| format!("c.{} IS NOT NULL", quote(c)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let matches = check
            .columns
            .iter()
            .zip(&check.parent_columns)
            .map(|(c, p)| format!("p.{} = c.{}", quote(p), quote(c)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let shown = identity
            .iter()
            .map(|c| {
                if ["rowid", "_rowid_", "oid"].contains(&c.as_str()) {
                    format!("c.{c}")
                } else {
                    format!("c.{}", quote(c))
                }
            })
            .chain(check.columns.iter().map(|c| format!("c.{}", quote(c))))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {shown} FROM {} AS c WHERE {not_null} AND NOT EXISTS (SELECT 1 FROM {} AS p WHERE {matches})",
            quote(&check.table),
            quote(&check.parent)
        );
        // One anti-join per row of a big table: its rowid slices are
        // checked at the same time, one thread and connection each, and
        // their orphans put together in rowid order.
        let child = tables.iter().find(|t| t.name == check.table);
        let slices = match child.and_then(sqlite::rowid_name) {
            Some(rowid) => {
                super::ranges::source_slices(&db, &check.table, rowid, super::ranges::threads())
                    .map_err(|e| source_error(path, &check.table, e))?
                    .map(|slices| (rowid, slices))
            }
            None => None,
        };
        let find = |db: &rusqlite::Connection, sql: &str, bounds: Option<[i64; 2]>| {
            let mut count = 0u64;
            let mut samples = Vec::new();
            let mut each = |row: &rusqlite::Row<'_>| {
                count += 1;
                if samples.len() < SAMPLES {
                    let reference = key_text(&check.columns, row, identity.len());
                    samples.push(if identity.is_empty() {
                        format!("{reference} has no row in {}", check.parent)
                    } else {
                        format!(
                            "{}: {reference} has no row in {}",
                            key_text(&identity, row, 0),
                            check.parent
                        )
                    });
                }
                Ok(())
            };
            match bounds {
                Some(bounds) => each_row(db, path, &check.table, sql, bounds, &mut each)?,
                None => each_row(db, path, &check.table, sql, [], &mut each)?,
            }
            Ok::<_, Error>((count, samples))
        };
        let (count, samples) = match slices {
            None => find(&db, &sql, None)?,
            Some((rowid, slices)) => {
                let sliced = format!("{sql} AND c.{rowid} BETWEEN ?1 AND ?2");
                let found = super::ranges::on_threads(path, &slices, |db, slice| {
                    find(db, &sliced, Some([slice.first, slice.last]))
                });
                let mut count = 0u64;
                let mut samples = Vec::new();
                for part in found {
                    let (n, some) = part?;
                    count += n;
                    samples.extend(some);
                }
                samples.truncate(SAMPLES);
                (count, samples)
            }
        };
        if count == 0 {
            continue;
        }
        let detail = if check.enforced {
            format!(
                "{count} row(s) of `{}` refer to rows of `{}` that do not exist; the target enforces this key ({}) and the load would fail. Delete or fix those rows in SQLite (or add the parents) and run precheck again",
                check.table, check.parent, check.name
            )
        } else {
            format!(
                "{count} row(s) of `{}` refer to rows of `{}` that do not exist (declared in SQLite, not enforced on the target): dangling data would be copied as it is. Fix it, or add the foreign key to the target",
                check.table, check.parent
            )
        };
        problems.push(Problem {
            reason: ReasonCode::about(Code::FkOrphanedRows, &check.name),
            status: Status::Fail,
            table: check.table.clone(),
            column: Some(check.columns.join(",")),
            problem: "missing_parent".into(),
            count,
            samples,
            detail,
        });
    }
    Ok(problems)
}

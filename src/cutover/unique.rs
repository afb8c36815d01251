//! The uniqueness half of the precheck: every row the target's unique
//! indexes would refuse, found before the load, all of them at once.
//!
//! SQLite rarely enforces what the target does, and PostgreSQL does not
//! compare keys the way SQLite (or Rust) would: a `citext` column or a
//! case-insensitive collation makes `'Urgent'` and `'urgent'` equal, an index
//! on `lower(sku)` compares an expression, a partial index only the rows of
//! its WHERE, `NULLS NOT DISTINCT` makes NULLs collide, and `'2024-01-02'`
//! equals `'2024-01-02 00:00:00'` once both are timestamps. So the keys are
//! not compared here at all: the converted values of the columns an index
//! reads (the same conversion as the load) are copied into a temporary
//! table of the same types and collations, and PostgreSQL groups them by
//! the index's own key expressions, under its own WHERE. Every group of more
//! than one row is a conflict, reported with the SQLite rowids involved.
//!
//! The temporary table lives in a transaction that is rolled back (on the
//! target, or on the scratch database when precheck built the schema
//! there): nothing of it remains, and the target's tables are only read
//! from the catalog.

use std::path::Path;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use super::target::{TargetSchema, UniqueIndex};
use super::types::{Cell, Kind, convert};
use super::{Mapping, Problem, TableMap, sqlite};
use crate::db::{ConnectionSettings, Db, history::database_error, quote_ident};
use crate::error::{Code, Error, ReasonCode, Result};
use crate::events::Interrupt;
use crate::report::Status;

/// Conflicting groups kept per index in the report (all are counted).
pub const GROUPS_KEPT: i64 = 100;
/// Rows named per group.
const ROWS_SHOWN: usize = 5;
/// Rows per batch from the reader thread.
const BATCH_ROWS: usize = 4096;
/// The temporary table (dropped with the transaction).
const KEYS_TABLE: &str = "pg_temp.migsafe_unique_keys";

/// One index to evaluate: positions (in `TableMap::columns`) of the columns
/// it reads.
struct Check<'a> {
    index: &'a UniqueIndex,
    columns: Vec<usize>,
}

/// Every conflict of every unique index of every table, in one pass per
/// table over the columns those indexes read.
pub async fn conflicts(
    settings: &ConnectionSettings,
    source: &Path,
    mapping: &Mapping,
    schema: &TargetSchema,
    interrupt: &Interrupt,
) -> Result<Vec<Problem>> {
    let mut problems = Vec::new();
    let mut db: Option<Db> = None;
    for table in &mapping.tables {
        let Some(target) = schema.tables.iter().find(|t| t.name == table.target) else {
            continue;
        };
        let mut checks = Vec::new();
        for index in &target.unique_indexes {
            let columns: Vec<Option<usize>> = index
                .columns
                .iter()
                .map(|name| table.columns.iter().position(|c| c.target == *name))
                .collect();
            if columns.iter().any(Option::is_none) {
                let missing: Vec<&str> = index
                    .columns
                    .iter()
                    .zip(&columns)
                    .filter(|(_, p)| p.is_none())
                    .map(|(n, _)| n.as_str())
                    .collect();
                problems.push(Problem::about(
                    Code::CutoverDuplicateKey,
                    Status::Warn,
                    &table.source,
                    None,
                    "unique_not_checked",
                    format!(
                        "the unique index {} reads {}, which the cutover does not copy (generated on the target, or filled by its default): precheck cannot evaluate it, the load will",
                        index.name,
                        missing.join(", ")
                    ),
                ));
                continue;
            }
            let columns: Vec<usize> = columns.into_iter().flatten().collect();
            if unique_in_sqlite(table, index, &columns) {
                continue;
            }
            checks.push(Check { index, columns });
        }
        if checks.is_empty() {
            continue;
        }
        if db.is_none() {
            db = Some(settings.connect().await?);
        }
        let Some(connection) = db.as_ref() else {
            continue;
        };
        problems.extend(check_table(connection, source, table, target, &checks, interrupt).await?);
    }
    Ok(problems)
}

/// An index on SQLite's `INTEGER PRIMARY KEY` alone, copied into an integer
/// column, holds by construction: that column is the rowid.
fn unique_in_sqlite(table: &TableMap, index: &UniqueIndex, columns: &[usize]) -> bool {
    let [only] = columns else { return false };
    let column = &table.columns[*only];
    index.plain
        && index.predicate.is_none()
        && index.keys.len() == 1
        && table.rowid_column.as_deref() == Some(column.target.as_str())
        && matches!(column.kind, Kind::Int2 | Kind::Int4 | Kind::Int8)
}

/// The name of the row column in the keys table: one no target column has.
fn row_column(table: &TableMap) -> String {
    let mut name = "migsafe_row".to_string();
    while table.columns.iter().any(|c| c.target == name) {
        name.push('_');
    }
    name
}

async fn check_table(
    db: &Db,
    source: &Path,
    table: &TableMap,
    target: &super::target::TargetTable,
    checks: &[Check<'_>],
    interrupt: &Interrupt,
) -> Result<Vec<Problem>> {
    let mut used: Vec<usize> = checks.iter().flat_map(|c| c.columns.clone()).collect();
    used.sort_unstable();
    used.dedup();
    let row = row_column(table);
    let mut definition = vec![format!("{} bigint", quote_ident(&row))];
    for &index in &used {
        let name = &table.columns[index].target;
        let Some(column) = target.columns.iter().find(|c| c.name == *name) else {
            continue;
        };
        let collation = column
            .collation
            .as_ref()
            .map(|c| format!(" COLLATE {c}"))
            .unwrap_or_default();
        definition.push(format!(
            "{} {}{collation}",
            quote_ident(name),
            column.sql_type
        ));
    }
    let setup = format!(
        "BEGIN; SET LOCAL statement_timeout = 0; SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO'; \
         CREATE TEMPORARY TABLE {KEYS_TABLE} ({}) ON COMMIT DROP",
        definition.join(", ")
    );
    db.client.batch_execute(&setup).await.map_err(|e| {
        database_error(db, "create the temporary table of the uniqueness check", &e).with_hint(
            "precheck lets PostgreSQL compare the keys in a temporary table, rolled back at the end: the role needs the TEMPORARY privilege on the database (and a server that is not read-only)",
        )
    })?;
    let result = async {
        load_keys(db, source, table, &row, &used, interrupt).await?;
        let mut problems = Vec::new();
        for check in checks {
            problems.extend(groups(db, table, &row, check).await?);
        }
        Ok::<_, Error>(problems)
    }
    .await;
    let _ = db.client.batch_execute("ROLLBACK").await;
    result
}

/// Copies the converted values of `used` (and the row's rowid) into the
/// keys table. A row whose value does not convert is left out: it is a
/// misfit of its own, and the load refuses it anyway.
async fn load_keys(
    db: &Db,
    source: &Path,
    table: &TableMap,
    row: &str,
    used: &[usize],
    interrupt: &Interrupt,
) -> Result<()> {
    let mut names = vec![row.to_string()];
    names.extend(used.iter().map(|&i| table.columns[i].target.clone()));
    let types: Vec<Type> = super::target::column_types(db, KEYS_TABLE, &names).await?;
    let list = names
        .iter()
        .map(|n| quote_ident(n))
        .collect::<Vec<_>>()
        .join(", ");
    let sink = db
        .client
        .copy_in::<_, Bytes>(&format!(
            "COPY {KEYS_TABLE} ({list}) FROM STDIN (FORMAT binary)"
        ))
        .await
        .map_err(|e| database_error(db, "load the keys of the uniqueness check", &e))?;
    let writer = BinaryCopyInWriter::new(sink, &types);
    tokio::pin!(writer);
    let (sender, mut batches) = mpsc::channel::<Vec<Vec<Cell>>>(4);
    let reader = {
        let path = source.to_path_buf();
        let table = table.clone();
        let used = used.to_vec();
        let interrupt = interrupt.clone();
        tokio::task::spawn_blocking(move || read_keys(&path, &table, &used, &sender, &interrupt))
    };
    while let Some(batch) = batches.recv().await {
        for cells in &batch {
            writer
                .as_mut()
                .write_raw(cells.iter())
                .await
                .map_err(|e| database_error(db, "load the keys of the uniqueness check", &e))?;
        }
    }
    reader
        .await
        .map_err(|e| Error::config(Code::Io, format!("a SQLite reader thread failed: {e}")))??;
    writer
        .as_mut()
        .finish()
        .await
        .map_err(|e| database_error(db, "load the keys of the uniqueness check", &e))?;
    Ok(())
}

fn read_keys(
    path: &Path,
    table: &TableMap,
    used: &[usize],
    sender: &mpsc::Sender<Vec<Vec<Cell>>>,
    interrupt: &Interrupt,
) -> Result<()> {
    let db = sqlite::open(path)?;
    let read_error = sqlite::read_error(&table.source, path);
    let sql = format!(
        "SELECT {}, {} FROM {}",
        table.rowid.unwrap_or("NULL"),
        used.iter()
            .map(|&i| sqlite::quote(&table.columns[i].source))
            .collect::<Vec<_>>()
            .join(", "),
        sqlite::quote(&table.source)
    );
    let mut statement = db.prepare(&sql).map_err(&read_error)?;
    let mut rows = statement.query([]).map_err(&read_error)?;
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    let mut position = 0u64;
    'rows: while let Some(row) = rows.next().map_err(&read_error)? {
        position += 1;
        if position.is_multiple_of(65_536) && interrupt.is_triggered() {
            return Err(super::precheck::interrupted());
        }
        // WITHOUT ROWID tables: the row's position in key order.
        let id = row.get::<_, Option<i64>>(0).map_err(&read_error)?;
        let mut cells = Vec::with_capacity(used.len() + 1);
        cells.push(Cell::I64(
            id.unwrap_or_else(|| i64::try_from(position).unwrap_or(i64::MAX)),
        ));
        for (offset, &index) in used.iter().enumerate() {
            let value = row.get_ref(offset + 1).map_err(&read_error)?;
            match convert(value, &table.columns[index].kind, false) {
                Ok(cell) => cells.push(cell),
                Err(_) => continue 'rows,
            }
        }
        batch.push(cells);
        if batch.len() >= BATCH_ROWS
            && sender
                .blocking_send(std::mem::replace(
                    &mut batch,
                    Vec::with_capacity(BATCH_ROWS),
                ))
                .is_err()
        {
            // The writer failed and says why.
            return Ok(());
        }
    }
    if !batch.is_empty() {
        let _ = sender.blocking_send(batch);
    }
    Ok(())
}

/// The conflicting groups of one index, as PostgreSQL groups its keys.
async fn groups(db: &Db, table: &TableMap, row: &str, check: &Check<'_>) -> Result<Vec<Problem>> {
    let index = check.index;
    let r = quote_ident(row);
    let keys: Vec<String> = index.keys.iter().map(|k| format!("({k})")).collect();
    let key_text = index
        .shown
        .iter()
        .map(|k| format!("(({k}))::text"))
        .collect::<Vec<_>>()
        .join(", ");
    // Each row as people know it: its key, or for an expression index the
    // columns the expression reads.
    let column_text = if index.plain {
        key_text.clone()
    } else {
        check
            .columns
            .iter()
            .map(|&i| format!("({})::text", quote_ident(&table.columns[i].target)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut conditions = Vec::new();
    if let Some(predicate) = &index.predicate {
        conditions.push(format!("({predicate})"));
    }
    if !index.nulls_not_distinct {
        // Rows with a NULL in the key never conflict (NULLS DISTINCT).
        conditions.extend(keys.iter().map(|k| format!("{k} IS NOT NULL")));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT count(*)::bigint, count(*) OVER ()::bigint, (sum(count(*) - 1) OVER ())::bigint,
                (array_agg({r} ORDER BY {r}))[1:{shown}],
                (array_agg(json_build_array({key_text})::text ORDER BY {r}))[1],
                (array_agg(json_build_array({column_text})::text ORDER BY {r}))[1:{shown}]
         FROM {KEYS_TABLE} {filter}
         GROUP BY {group}
         HAVING count(*) > 1
         ORDER BY min({r})
         LIMIT {GROUPS_KEPT}",
        shown = ROWS_SHOWN,
        group = keys.join(", "),
    );
    let found = db.client.query(&sql, &[]).await.map_err(|e| {
        database_error(db, &format!("evaluate the unique index {}", index.name), &e)
    })?;
    let Some(first) = found.first() else {
        return Ok(Vec::new());
    };
    let total_groups: i64 = first.get(1);
    let extra: i64 = first.get(2);
    let label = if table.rowid.is_some() {
        "rowid"
    } else {
        "row"
    };
    let column_names: Vec<&str> = check
        .columns
        .iter()
        .map(|&i| table.columns[i].target.as_str())
        .collect();
    let samples = found
        .iter()
        .map(|group| {
            let times: i64 = group.get(0);
            let rows: Vec<i64> = group.get(3);
            let key = values(&group.get::<_, String>(4));
            let each: Vec<Vec<Option<String>>> = group
                .get::<_, Vec<String>>(5)
                .iter()
                .map(|v| values(v))
                .collect();
            let more = if times as usize > rows.len() {
                ", …"
            } else {
                ""
            };
            let same = index.plain && each.iter().all(|v| *v == key);
            let named = if same {
                format!(
                    "{label}s {}",
                    rows.iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                rows.iter()
                    .zip(&each)
                    .map(|(id, v)| {
                        if index.plain {
                            format!("{label} {id} ({})", shown(v))
                        } else {
                            format!("{label} {id} ({})=({})", column_names.join(", "), shown(v))
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "({})=({}) appears {times} times: {named}{more}",
                index.shown.join(", "),
                shown(&key)
            )
        })
        .collect();
    let source_columns: Vec<&str> = check
        .columns
        .iter()
        .map(|&i| table.columns[i].source.as_str())
        .collect();
    let kept = if total_groups > GROUPS_KEPT {
        format!(" (the first {GROUPS_KEPT} are listed)")
    } else {
        String::new()
    };
    Ok(vec![Problem {
        reason: ReasonCode::about(Code::CutoverDuplicateKey, &index.name),
        status: Status::Fail,
        table: table.source.clone(),
        column: Some(source_columns.join(",")),
        problem: "duplicate_key".into(),
        count: u64::try_from(extra).unwrap_or(0),
        samples,
        detail: format!(
            "{total_groups} key(s) of `{}` appear more than once{kept}, compared as PostgreSQL compares them ({}); the load would fail on the first. Remove or fix the duplicates in SQLite (it did not enforce this key) and run precheck again",
            table.source, index.definition
        ),
    }])
}

/// The elements of a JSON array of text values.
fn values(json: &str) -> Vec<Option<String>> {
    serde_json::from_str(json).unwrap_or_default()
}

/// `"a", NULL` for people, long values shortened.
fn shown(values: &[Option<String>]) -> String {
    const MAX: usize = 40;
    values
        .iter()
        .map(|v| match v {
            None => "NULL".to_string(),
            Some(text) => {
                let short: String = text.chars().take(MAX).collect();
                let more = if text.chars().count() > MAX {
                    "…"
                } else {
                    ""
                };
                format!("{short:?}{more}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

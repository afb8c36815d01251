//! `cutover sqlite verify`: per table, row counts and an order-independent
//! content hash computed the same way on both sides.
//!
//! Each row becomes the canonical form of its binary COPY fields
//! ([`super::types::canonical`]): on the SQLite side after the same
//! conversion the load uses, on the PostgreSQL side as the server sends them
//! (`COPY … TO STDOUT (FORMAT binary)`). A row's hash is the first 128 bits
//! of SHA-256 of that form; a table's hash is the sum of its rows' hashes
//! (mod 2^128), so order does not matter and duplicate rows still count.
//!
//! To name rows that differ without holding a table in memory, rows are
//! also summed into buckets by their primary key; only the few buckets that
//! differ are read a second time, and only their rows are kept. When a row
//! is on both sides with other values, a third read keeps just those rows,
//! column by column, so that the report names the columns that differ and
//! shows both values as text ([`super::types::display_value`]).
//!
//! What this can prove: the target holds exactly the rows the conversion
//! makes of the file. What it cannot: that the conversion chose what the
//! application meant (a date column's unit, for one) — both sides go through
//! it, so a wrong choice matches itself. That is precheck's job
//! ([`super::epoch`]).

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::Path;

use bytes::BytesMut;
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_postgres::binary_copy::BinaryCopyOutStream;
use tokio_postgres::types::{FromSql, Type};

use super::precheck::blocking;
use super::target;
use super::types::{Kind, UNCONVERTIBLE, canonical, convert, display_value, encode};
use super::{TableMap, sqlite};
use crate::db::{ConnectionSettings, Db, history::database_error, quote_ident};
use crate::error::{Code, ReasonCode, Result};
use crate::events::Interrupt;
use crate::report::Status;

/// Key buckets per table.
const BUCKETS: usize = 1024;
/// Differing buckets read a second time to name rows.
const BUCKETS_EXAMINED: usize = 4;
/// Differing rows named per table.
const SAMPLES: usize = 10;

/// One table's comparison.
#[derive(Debug, Clone, Serialize)]
pub struct TableVerify {
    /// SQLite table.
    pub table: String,
    /// Target table.
    pub target: String,
    /// Rows in SQLite.
    pub source_rows: u64,
    /// Rows in PostgreSQL.
    pub target_rows: u64,
    /// Content hash of the SQLite rows (hex).
    pub source_hash: String,
    /// Content hash of the PostgreSQL rows (hex).
    pub target_hash: String,
    /// Same rows, same values.
    pub matches: bool,
    /// Reason code when it does not.
    pub reason: Option<ReasonCode>,
    /// Rows that differ, by key: `missing on target`, `extra on target`,
    /// `values differ in name (SQLite "a", PostgreSQL "b")`.
    pub differences: Vec<String>,
}

/// The verify report (`logs/cutover-verify-<timestamp>.json`).
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Format version.
    pub schema_version: u32,
    /// The SQLite file compared.
    pub source: String,
    /// The target database (no password).
    pub target: String,
    /// The target schema.
    pub schema: String,
    /// How long it took.
    pub duration_ms: u64,
    /// Per table.
    pub tables: Vec<TableVerify>,
    /// SQLite tables or columns the target lacks: data that is not there.
    pub problems: Vec<super::Problem>,
    /// `pass`, or `fail` when any table differs or data is missing.
    pub result: Status,
}

/// A field as the server sent it.
struct Raw<'a>(Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw)))
    }

    fn from_sql_null(
        _: &Type,
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// One side's sums.
#[derive(Default)]
struct Side {
    rows: u64,
    sum: u128,
    buckets: Vec<(u128, u64)>,
    /// Rows of the examined buckets: key → (key for people, row hashes).
    picked: HashMap<Vec<u8>, (String, Vec<u128>)>,
    /// Rows of the focused keys, column by column: key → per row, per
    /// column, (hash of its canonical form, the value for people).
    detail: HashMap<Vec<u8>, Vec<Vec<(u64, String)>>>,
}

/// What to keep while hashing, beyond the sums: the rows of some buckets
/// (to name the keys that differ), or of some keys (to name the columns).
#[derive(Clone, Default)]
struct Keep {
    buckets: Option<HashSet<usize>>,
    keys: Option<HashSet<Vec<u8>>>,
}

/// Hashes rows into a [`Side`].
struct Digester<'a> {
    kinds: &'a [Kind],
    key: &'a [usize],
    names: Vec<&'a str>,
    keep: &'a Keep,
    row: Vec<u8>,
    key_bytes: Vec<u8>,
    side: Side,
}

impl<'a> Digester<'a> {
    fn new(table: &'a TableMap, kinds: &'a [Kind], keep: &'a Keep) -> Self {
        Digester {
            kinds,
            key: &table.key,
            names: table.columns.iter().map(|c| c.target.as_str()).collect(),
            keep,
            row: Vec::new(),
            key_bytes: Vec::new(),
            side: Side {
                buckets: vec![(0, 0); BUCKETS],
                ..Side::default()
            },
        }
    }

    fn add(&mut self, fields: &[Option<&[u8]>]) {
        self.row.clear();
        for (kind, field) in self.kinds.iter().zip(fields) {
            canonical(kind, *field, &mut self.row);
        }
        let digest = Sha256::digest(&self.row);
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        let hash = u128::from_le_bytes(first);
        self.key_bytes.clear();
        if self.key.is_empty() {
            self.key_bytes.extend_from_slice(&self.row);
        } else {
            for &k in self.key {
                canonical(&self.kinds[k], fields[k], &mut self.key_bytes);
            }
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.key_bytes.hash(&mut hasher);
        let bucket = (hasher.finish() % BUCKETS as u64) as usize;
        let side = &mut self.side;
        side.rows += 1;
        side.sum = side.sum.wrapping_add(hash);
        let slot = &mut side.buckets[bucket];
        slot.0 = slot.0.wrapping_add(hash);
        slot.1 += 1;
        if let Some(keys) = &self.keep.keys
            && keys.contains(&self.key_bytes)
        {
            let mut field = Vec::new();
            let columns = self
                .kinds
                .iter()
                .zip(fields)
                .map(|(kind, raw)| {
                    field.clear();
                    canonical(kind, *raw, &mut field);
                    let mut hasher = std::collections::hash_map::DefaultHasher::new();
                    field.hash(&mut hasher);
                    (hasher.finish(), display_value(kind, *raw))
                })
                .collect();
            side.detail
                .entry(self.key_bytes.clone())
                .or_default()
                .push(columns);
        }
        if self
            .keep
            .buckets
            .as_ref()
            .is_some_and(|e| e.contains(&bucket))
        {
            let shown: Vec<usize> = if self.key.is_empty() {
                (0..self.kinds.len()).collect()
            } else {
                self.key.to_vec()
            };
            let names: Vec<&str> = shown.iter().map(|&i| self.names[i]).collect();
            let values: Vec<String> = shown
                .iter()
                .map(|&i| display_value(&self.kinds[i], fields[i]))
                .collect();
            let entry = side
                .picked
                .entry(self.key_bytes.clone())
                .or_insert_with(|| {
                    (
                        format!("({})=({})", names.join(", "), values.join(", ")),
                        Vec::new(),
                    )
                });
            entry.1.push(hash);
        }
    }
}

/// The SQLite side: the same conversion as the load, then the binary form.
fn hash_source(
    path: &Path,
    table: &TableMap,
    types: &[Type],
    keep: &Keep,
    interrupt: &Interrupt,
) -> Result<Side> {
    let db = sqlite::open(path)?;
    let read_error = sqlite::read_error(&table.source, path);
    let mut statement = db.prepare(&table.source_select()).map_err(&read_error)?;
    let mut rows = statement.query([]).map_err(&read_error)?;
    let kinds = table.kinds();
    let mut digester = Digester::new(table, &kinds, keep);
    let mut buf = BytesMut::new();
    let mut encoded = BytesMut::new();
    let mut spans: Vec<Option<(usize, usize)>> = Vec::with_capacity(kinds.len());
    while let Some(row) = rows.next().map_err(&read_error)? {
        if digester.side.rows.is_multiple_of(65_536) && interrupt.is_triggered() {
            return Err(super::precheck::interrupted());
        }
        encoded.clear();
        spans.clear();
        for (index, column) in table.columns.iter().enumerate() {
            let value = row.get_ref(index).map_err(&read_error)?;
            let span = match convert(value, &column.kind, false) {
                Ok(cell) => encode(&cell, &types[index], &mut buf).map(|_| {
                    let start = encoded.len();
                    encoded.extend_from_slice(&buf);
                    (start, encoded.len())
                }),
                // Cannot be on the target as it is: make it differ.
                Err(misfit) => {
                    let start = encoded.len();
                    encoded.extend_from_slice(UNCONVERTIBLE);
                    encoded.extend_from_slice(misfit.detail.as_bytes());
                    Some((start, encoded.len()))
                }
            };
            spans.push(span);
        }
        let fields: Vec<Option<&[u8]>> = spans
            .iter()
            .map(|s| s.map(|(a, b)| &encoded[a..b]))
            .collect();
        digester.add(&fields);
    }
    Ok(digester.side)
}

/// The PostgreSQL side: the fields exactly as the server sends them.
async fn hash_target(db: &Db, table: &TableMap, types: &[Type], keep: &Keep) -> Result<Side> {
    let columns = table
        .target_columns()
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "COPY (SELECT {columns} FROM {}) TO STDOUT (FORMAT binary)",
        table.qualified
    );
    let stream = db
        .client
        .copy_out(&sql)
        .await
        .map_err(|e| database_error(db, "read the target table", &e))?;
    let rows = BinaryCopyOutStream::new(stream, types);
    tokio::pin!(rows);
    let kinds = table.kinds();
    let mut digester = Digester::new(table, &kinds, keep);
    while let Some(row) = rows
        .try_next()
        .await
        .map_err(|e| database_error(db, "read the target table", &e))?
    {
        let fields = (0..kinds.len())
            .map(|index| row.try_get::<Raw<'_>>(index).map(|Raw(raw)| raw))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| database_error(db, "read the target table", &e))?;
        digester.add(&fields);
    }
    Ok(digester.side)
}

async fn both_sides(
    db: &Db,
    source: &Path,
    table: &TableMap,
    types: &[Type],
    keep: Keep,
    interrupt: &Interrupt,
) -> Result<(Side, Side)> {
    let reading = {
        let path = source.to_path_buf();
        let table = table.clone();
        let types = types.to_vec();
        let keep = keep.clone();
        let interrupt = interrupt.clone();
        blocking(move || hash_source(&path, &table, &types, &keep, &interrupt))
    };
    let (source_side, target_side) = tokio::join!(reading, hash_target(db, table, types, &keep));
    Ok((source_side?, target_side?))
}

async fn verify_table(
    settings: &ConnectionSettings,
    source: &Path,
    table: &TableMap,
    interrupt: &Interrupt,
) -> Result<TableVerify> {
    let db = settings.connect().await?;
    // One snapshot for both reads of the target.
    db.client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(|e| database_error(&db, "start a read-only transaction", &e))?;
    let types = target::column_types(&db, &table.qualified, &table.target_columns()).await?;
    let (ours, theirs) = both_sides(&db, source, table, &types, Keep::default(), interrupt).await?;
    let matches = ours.rows == theirs.rows && ours.sum == theirs.sum;
    let mut differences = Vec::new();
    if !matches {
        let examine: HashSet<usize> = (0..BUCKETS)
            .filter(|&b| ours.buckets[b] != theirs.buckets[b])
            .take(BUCKETS_EXAMINED)
            .collect();
        let keep = Keep {
            buckets: Some(examine),
            keys: None,
        };
        let (ours, theirs) = both_sides(&db, source, table, &types, keep, interrupt).await?;
        let found = compare(&ours.picked, &theirs.picked);
        // Rows whose values differ: one more pass keeps just those rows,
        // column by column, to say which columns differ and how.
        let changed: HashSet<Vec<u8>> = found
            .iter()
            .filter(|d| d.values_differ)
            .map(|d| d.key.clone())
            .collect();
        let detail = if changed.is_empty() {
            None
        } else {
            let keep = Keep {
                buckets: None,
                keys: Some(changed),
            };
            Some(both_sides(&db, source, table, &types, keep, interrupt).await?)
        };
        differences = found
            .into_iter()
            .map(|d| match &detail {
                Some((ours, theirs)) if d.values_differ => {
                    match columns_differing(
                        table,
                        ours.detail.get(&d.key),
                        theirs.detail.get(&d.key),
                    ) {
                        Some(columns) => format!("{}: values differ in {columns}", d.shown),
                        None => d.line,
                    }
                }
                _ => d.line,
            })
            .collect();
    }
    let _ = db.client.batch_execute("COMMIT").await;
    Ok(TableVerify {
        table: table.source.clone(),
        target: table.target.clone(),
        source_rows: ours.rows,
        target_rows: theirs.rows,
        source_hash: format!("{:032x}", ours.sum),
        target_hash: format!("{:032x}", theirs.sum),
        matches,
        reason: (!matches).then(|| ReasonCode::about(Code::CutoverMismatch, &table.target)),
        differences,
    })
}

/// A row (by key) that differs.
struct Difference {
    key: Vec<u8>,
    /// The key for people.
    shown: String,
    /// What differs, for people.
    line: String,
    /// One row on each side, with different values.
    values_differ: bool,
}

/// Names the rows that differ in the examined buckets.
fn compare(
    ours: &HashMap<Vec<u8>, (String, Vec<u128>)>,
    theirs: &HashMap<Vec<u8>, (String, Vec<u128>)>,
) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut keys: Vec<&Vec<u8>> = ours.keys().chain(theirs.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let (shown, line, values_differ) = match (ours.get(key), theirs.get(key)) {
            (Some((shown, _)), None) => (shown, format!("{shown}: missing on target"), false),
            (None, Some((shown, _))) => (shown, format!("{shown}: extra on target"), false),
            (Some((shown, a)), Some((_, b))) => {
                let (mut a, mut b) = (a.clone(), b.clone());
                a.sort_unstable();
                b.sort_unstable();
                if a == b {
                    continue;
                }
                if a.len() != b.len() {
                    (
                        shown,
                        format!(
                            "{shown}: {} row(s) in SQLite, {} on target",
                            a.len(),
                            b.len()
                        ),
                        false,
                    )
                } else {
                    (shown, format!("{shown}: values differ"), a.len() == 1)
                }
            }
            (None, None) => continue,
        };
        out.push(Difference {
            key: key.clone(),
            shown: shown.clone(),
            line,
            values_differ,
        });
        if out.len() >= SAMPLES {
            break;
        }
    }
    out
}

/// `name (SQLite "a", PostgreSQL "b"), active (…)`: the columns in which one
/// row differs between the sides, with both values as text.
fn columns_differing(
    table: &TableMap,
    ours: Option<&Vec<Vec<(u64, String)>>>,
    theirs: Option<&Vec<Vec<(u64, String)>>>,
) -> Option<String> {
    let (Some([ours]), Some([theirs])) = (ours.map(Vec::as_slice), theirs.map(Vec::as_slice))
    else {
        return None;
    };
    let columns: Vec<String> = table
        .columns
        .iter()
        .zip(ours.iter().zip(theirs))
        .filter(|(_, (a, b))| a.0 != b.0)
        .map(|(column, (a, b))| format!("{} (SQLite {}, PostgreSQL {})", column.target, a.1, b.1))
        .collect();
    (!columns.is_empty()).then(|| columns.join(", "))
}

/// Compares every table.
pub async fn verify(
    settings: &ConnectionSettings,
    source: &Path,
    tables: &[TableMap],
    jobs: usize,
    interrupt: &Interrupt,
) -> Result<Vec<TableVerify>> {
    futures_util::stream::iter(
        tables
            .iter()
            .map(|table| verify_table(settings, source, table, interrupt)),
    )
    .buffered(jobs.max(1))
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect()
}

/// The worst result of the tables.
pub fn result_of(tables: &[TableVerify]) -> Status {
    if tables.iter().all(|t| t.matches) {
        Status::Pass
    } else {
        Status::Fail
    }
}

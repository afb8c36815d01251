//! `cutover sqlite verify`: per table, row counts and an order-independent
//! content hash computed the same way on both sides.
//!
//! Each row becomes the canonical form of its binary COPY fields
//! ([`super::types::canonical`]): on the SQLite side after the same
//! conversion the load uses, on the PostgreSQL side as the server sends them
//! (`COPY … TO STDOUT (FORMAT binary)`; jsonb as the server prints it, so
//! that side needs no JSON parse). A row's hash is XXH3-128 of that form; a
//! table's hash is the sum of its rows' hashes (mod 2^128), so order does
//! not matter and duplicate rows still count. The hash guards against
//! accidents, not an adversary: whoever could forge a collision already
//! writes both the file and the target.
//!
//! Because both are sums, a big table is hashed in slices that are added
//! up ([`super::ranges`]): SQLite by rowid, the target by heap block, all
//! slices of all tables `jobs` at a time, each side of a slice on its own
//! thread and the two sides at once, every target read on one exported
//! snapshot (`cutover::snapshot`) so that the result is about one state.
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
use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use tokio_postgres::types::Type;
use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

use super::copy_rows::{CopyRows, Malformed, Stop};
use super::precheck::blocking;
use super::ranges::{self, BlockSlice, RowidSlice};
use super::snapshot::Snapshot;
use super::target;
use super::types::{
    Kind, UNCONVERTIBLE, canonical, canonical_from_server, canonical_of_sqlite, convert,
    display_value, encode,
};
use super::{TableMap, sqlite};
use crate::db::{ConnectionSettings, Db, history::database_error, quote_ident};
use crate::error::{Code, Error, ReasonCode, Result};
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
    /// Slices the SQLite table was read in (by rowid, at the same time).
    pub source_slices: usize,
    /// Slices the target table was read in (by heap block, at the same
    /// time, on one snapshot).
    pub target_slices: usize,
    /// Rows that differ, by key: `missing on target`, `extra on target`,
    /// `values differ in name (SQLite "a", PostgreSQL "b")`.
    pub differences: Vec<String>,
    /// Target columns not compared: no SQLite column feeds them (their
    /// default or a generated expression filled them).
    pub not_compared: Vec<String>,
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

/// One side's sums.
#[derive(Default)]
struct Side {
    rows: u64,
    sum: u128,
    buckets: Vec<(u128, u64)>,
    /// Rows of the examined buckets: key → (key for people, row hashes).
    picked: HashMap<Vec<u8>, (String, Vec<u128>)>,
    /// Rows of the focused keys, column by column: key → per row, per
    /// column, what was compared and how to show it.
    detail: HashMap<Vec<u8>, Vec<Vec<Shown>>>,
}

/// One field of a row whose columns are named.
struct Shown {
    /// The hash of its canonical form.
    hash: u64,
    /// The value for people, short.
    value: String,
    /// For text, json and jsonb: the very text that was compared (jsonb
    /// normalised on both sides), to show where two values part.
    text: Option<String>,
}

/// The text a textual field's canonical form compares (its bytes after the
/// tag and length), when it is UTF-8.
fn compared_text(kind: &Kind, canonical: &[u8]) -> Option<String> {
    match kind {
        Kind::Text { .. } | Kind::Enum { .. } | Kind::Json | Kind::Jsonb => canonical
            .get(9..)
            .and_then(|text| std::str::from_utf8(text).ok())
            .map(str::to_string),
        _ => None,
    }
}

/// Both texts as compared, for people: whole when short, else from a little
/// before the first character in which they differ, and that character's
/// place (1-based) when the window does not start at the beginning. A change deep in a long value
/// (a key in a JSON document) shows, where the first characters of each
/// would look the same.
fn where_texts_part(a: &str, b: &str) -> (Option<usize>, String, String) {
    const BEFORE: usize = 15;
    const SHOWN: usize = 50;
    let first = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    let short = a.chars().count() <= SHOWN && b.chars().count() <= SHOWN;
    let start = if short {
        0
    } else {
        first.saturating_sub(BEFORE)
    };
    let window = |text: &str| {
        let total = text.chars().count();
        let part: String = text.chars().skip(start).take(SHOWN).collect();
        format!(
            "{}{part:?}{}",
            if start > 0 { "…" } else { "" },
            if start + SHOWN < total { "…" } else { "" }
        )
    };
    ((start > 0).then_some(first + 1), window(a), window(b))
}

impl Side {
    fn new() -> Side {
        Side {
            buckets: vec![(0, 0); BUCKETS],
            ..Side::default()
        }
    }

    /// Adds another slice of the same table.
    fn merge(&mut self, other: Side) {
        self.rows += other.rows;
        self.sum = self.sum.wrapping_add(other.sum);
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            mine.0 = mine.0.wrapping_add(theirs.0);
            mine.1 += theirs.1;
        }
        for (key, (shown, hashes)) in other.picked {
            self.picked
                .entry(key)
                .or_insert_with(|| (shown, Vec::new()))
                .1
                .extend(hashes);
        }
        for (key, rows) in other.detail {
            self.detail.entry(key).or_default().extend(rows);
        }
    }
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
    /// Fields as the server sent them (the target side): jsonb is taken
    /// as printed ([`canonical_from_server`]).
    from_server: bool,
    key: &'a [usize],
    names: Vec<&'a str>,
    keep: &'a Keep,
    /// The row's canonical form, field after field.
    row: Vec<u8>,
    /// Where each field's canonical form ends in `row`.
    ends: Vec<usize>,
    key_bytes: Vec<u8>,
    /// The hash of the row last summed.
    last_hash: u128,
    side: Side,
}

impl<'a> Digester<'a> {
    fn new(table: &'a TableMap, kinds: &'a [Kind], keep: &'a Keep, from_server: bool) -> Self {
        Digester {
            kinds,
            from_server,
            key: &table.key,
            names: table.columns.iter().map(|c| c.target.as_str()).collect(),
            keep,
            row: Vec::new(),
            ends: Vec::with_capacity(kinds.len()),
            key_bytes: Vec::new(),
            last_hash: 0,
            side: Side::new(),
        }
    }

    /// Whether only the sums are wanted: then a row needs no field in its
    /// binary form (which naming rows and columns shows), just the
    /// canonical one.
    fn sums_only(&self) -> bool {
        self.keep.buckets.is_none() && self.keep.keys.is_none()
    }

    /// Starts a row given as canonical forms: push each field's onto `row`,
    /// then [`Digester::end_field`] after it, then [`Digester::sum`].
    fn start_row(&mut self) {
        self.row.clear();
        self.ends.clear();
    }

    fn end_field(&mut self) {
        self.ends.push(self.row.len());
    }

    /// Adds a row given as binary COPY fields.
    fn add(&mut self, fields: &[Option<&[u8]>]) {
        self.start_row();
        let mut row = std::mem::take(&mut self.row);
        for (kind, field) in self.kinds.iter().zip(fields) {
            field_canonical(self.from_server, kind, *field, &mut row);
            self.ends.push(row.len());
        }
        self.row = row;
        let bucket = self.sum();
        if !self.sums_only() {
            self.keep_row(fields, bucket);
        }
    }

    /// Adds the row in `row` to the sums; its bucket.
    fn sum(&mut self) -> usize {
        let hash = xxh3_128(&self.row);
        self.key_bytes.clear();
        if self.key.is_empty() {
            self.key_bytes.extend_from_slice(&self.row);
        } else {
            for &k in self.key {
                let start = if k == 0 { 0 } else { self.ends[k - 1] };
                self.key_bytes
                    .extend_from_slice(&self.row[start..self.ends[k]]);
            }
        }
        let bucket = (xxh3_64(&self.key_bytes) % BUCKETS as u64) as usize;
        let side = &mut self.side;
        side.rows += 1;
        side.sum = side.sum.wrapping_add(hash);
        let slot = &mut side.buckets[bucket];
        slot.0 = slot.0.wrapping_add(hash);
        slot.1 += 1;
        self.last_hash = hash;
        bucket
    }

    /// Keeps what the naming passes asked for of the row just summed.
    fn keep_row(&mut self, fields: &[Option<&[u8]>], bucket: usize) {
        let hash = self.last_hash;
        let from_server = self.from_server;
        let side = &mut self.side;
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
                    field_canonical(from_server, kind, *raw, &mut field);
                    Shown {
                        hash: xxh3_64(&field),
                        value: display_value(kind, *raw),
                        text: compared_text(kind, &field),
                    }
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

/// The canonical form of one field, as its side has it.
fn field_canonical(from_server: bool, kind: &Kind, raw: Option<&[u8]>, out: &mut Vec<u8>) {
    if from_server {
        canonical_from_server(kind, raw, out);
    } else {
        canonical(kind, raw, out);
    }
}

/// What one slice reads of the SQLite table.
#[derive(Debug, Clone, Copy)]
enum SourceRead {
    /// The whole table, in one stream.
    Whole,
    /// The rows of a rowid slice.
    Rowids(RowidSlice),
}

/// A slice of one table, hashed on both sides at the same time; either
/// side may have nothing to read in it (the sides are cut independently).
#[derive(Debug, Clone, Copy)]
struct Unit {
    source: Option<SourceRead>,
    target: Option<BlockSlice>,
    /// Rough size, to start the big slices first.
    weight: u64,
}

/// A table's column types and slices.
struct Plan {
    types: Vec<Type>,
    /// The server's jsonb text is hashed as it comes
    /// ([`canonical_from_server`]): only on a UTF-8 database, where jsonb
    /// orders keys by their UTF-8 length as the SQLite side predicts. Any
    /// other server encoding orders by its own byte lengths, so there both
    /// sides are put in the same order by the same parser.
    jsonb_as_printed: bool,
    units: Vec<Unit>,
}

/// Why a read of the target stopped, on the thread that hashes it.
enum Stopped {
    Database(tokio_postgres::Error),
    Malformed(Malformed),
    Interrupted,
}

/// The SQLite side: the same conversion as the load, then the binary form.
fn hash_source(
    path: &Path,
    table: &TableMap,
    types: &[Type],
    keep: &Keep,
    read: SourceRead,
    interrupt: &Interrupt,
) -> Result<Side> {
    let db = sqlite::open(path)?;
    let read_error = sqlite::read_error(&table.source, path);
    let (sql, bounds) = match (read, table.rowid) {
        (SourceRead::Rowids(slice), Some(rowid)) => (
            format!("{}{}", table.source_select(), ranges::rowid_filter(rowid)),
            Some((slice.first, slice.last)),
        ),
        _ => (table.source_select(), None),
    };
    let mut statement = db.prepare(&sql).map_err(&read_error)?;
    let mut rows = match bounds {
        Some((first, last)) => statement.query([first, last]),
        None => statement.query([]),
    }
    .map_err(&read_error)?;
    let kinds = table.kinds();
    let mut digester = Digester::new(table, &kinds, keep, false);
    let mut buf = BytesMut::new();
    let mut encoded: Vec<u8> = Vec::new();
    let mut spans: Vec<Option<(usize, usize)>> = Vec::with_capacity(kinds.len());
    let sums_only = digester.sums_only();
    while let Some(row) = rows.next().map_err(&read_error)? {
        if digester.side.rows.is_multiple_of(65_536) && interrupt.is_triggered() {
            return Err(super::precheck::interrupted());
        }
        if sums_only {
            // Straight to the canonical form: each field either directly
            // or through the binary form the load would send.
            digester.start_row();
            for (index, column) in table.columns.iter().enumerate() {
                let value = row.get_ref(index).map_err(&read_error)?;
                if !canonical_of_sqlite(&column.kind, value, &mut digester.row) {
                    encoded.clear();
                    let span = encode_source(value, column, &types[index], &mut buf, &mut encoded);
                    canonical(
                        &column.kind,
                        span.map(|(a, b)| &encoded[a..b]),
                        &mut digester.row,
                    );
                }
                digester.end_field();
            }
            digester.sum();
            continue;
        }
        encoded.clear();
        spans.clear();
        for (index, column) in table.columns.iter().enumerate() {
            let value = row.get_ref(index).map_err(&read_error)?;
            spans.push(encode_source(
                value,
                column,
                &types[index],
                &mut buf,
                &mut encoded,
            ));
        }
        let fields: Vec<Option<&[u8]>> = spans
            .iter()
            .map(|s| s.map(|(a, b)| &encoded[a..b]))
            .collect();
        digester.add(&fields);
    }
    Ok(digester.side)
}

/// Appends the binary COPY form the load sends for a SQLite value to
/// `encoded`: its span there, `None` for NULL. A value that does not
/// convert becomes a marker no target value matches.
fn encode_source(
    value: rusqlite::types::ValueRef<'_>,
    column: &super::ColumnMap,
    ty: &Type,
    buf: &mut BytesMut,
    encoded: &mut Vec<u8>,
) -> Option<(usize, usize)> {
    let start = encoded.len();
    match convert(value, &column.kind, false) {
        Ok(cell) => encode(&cell, ty, buf).map(|_| {
            encoded.extend_from_slice(buf);
            (start, encoded.len())
        }),
        // Cannot be on the target as it is: make it differ.
        Err(misfit) => {
            encoded.extend_from_slice(UNCONVERTIBLE);
            encoded.extend_from_slice(misfit.detail.as_bytes());
            Some((start, encoded.len()))
        }
    }
}

/// Hashes the rows of a binary COPY stream (on a blocking thread: the
/// runtime's own thread only moves the bytes).
async fn digest_copy(
    stream: tokio_postgres::CopyOutStream,
    table: &TableMap,
    jsonb_as_printed: bool,
    keep: &Keep,
    interrupt: &Interrupt,
) -> std::result::Result<Side, Stopped> {
    tokio::pin!(stream);
    let kinds = table.kinds();
    let mut digester = Digester::new(table, &kinds, keep, jsonb_as_printed);
    let sums_only = digester.sums_only();
    let mut rows = CopyRows::new(kinds.len());
    while let Some(message) = stream.try_next().await.map_err(Stopped::Database)? {
        if digester.side.rows.is_multiple_of(65_536) && interrupt.is_triggered() {
            return Err(Stopped::Interrupted);
        }
        rows.feed::<()>(&message, |fields| {
            if sums_only {
                // Field by field into the row's canonical form: nothing kept.
                digester.start_row();
                for (index, kind) in kinds.iter().enumerate() {
                    field_canonical(jsonb_as_printed, kind, fields.get(index), &mut digester.row);
                    digester.end_field();
                }
                digester.sum();
            } else {
                digester.add(&fields.to_vec());
            }
            Ok(())
        })
        .map_err(|stop| match stop {
            Stop::Malformed(m) => Stopped::Malformed(m),
            Stop::Stopped(()) => Stopped::Interrupted,
        })?;
    }
    rows.finish().map_err(Stopped::Malformed)?;
    Ok(digester.side)
}

/// The PostgreSQL side: the fields exactly as the server sends them.
async fn hash_target(
    db: &Db,
    table: &TableMap,
    plan: &Plan,
    keep: &Arc<Keep>,
    slice: BlockSlice,
    interrupt: &Interrupt,
) -> Result<Side> {
    let columns = table
        .target_columns()
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "COPY (SELECT {columns} FROM {}{}) TO STDOUT (FORMAT binary)",
        table.qualified,
        ranges::block_filter(&slice)
    );
    let stream = db
        .client
        .copy_out(&sql)
        .await
        .map_err(|e| database_error(db, "read the target table", &e))?;
    let runtime = tokio::runtime::Handle::current();
    let name = table.qualified.clone();
    let (table, printed, keep, interrupt) = (
        table.clone(),
        plan.jsonb_as_printed,
        Arc::clone(keep),
        interrupt.clone(),
    );
    let hashed = tokio::task::spawn_blocking(move || {
        runtime.block_on(digest_copy(stream, &table, printed, &keep, &interrupt))
    })
    .await
    .map_err(|e| Error::config(Code::Io, format!("a verify thread failed: {e}")))?;
    match hashed {
        Ok(side) => Ok(side),
        Err(Stopped::Database(e)) => Err(database_error(db, "read the target table", &e)),
        Err(Stopped::Malformed(Malformed(what))) => Err(Error::config(
            Code::Io,
            format!("the server's COPY of {name} could not be read ({what}); nothing was compared"),
        )),
        Err(Stopped::Interrupted) => Err(super::precheck::interrupted()),
    }
}

/// Both sides of one slice, at the same time.
async fn hash_unit(
    snapshot: &Snapshot,
    source: &Path,
    table: &TableMap,
    plan: &Plan,
    keep: &Arc<Keep>,
    unit: Unit,
    interrupt: &Interrupt,
) -> Result<(Side, Side)> {
    let reading = async {
        let Some(read) = unit.source else {
            return Ok(Side::new());
        };
        let path = source.to_path_buf();
        let table = table.clone();
        let types = plan.types.clone();
        let keep = Arc::clone(keep);
        let interrupt = interrupt.clone();
        blocking(move || hash_source(&path, &table, &types, &keep, read, &interrupt)).await
    };
    let target = async {
        let Some(slice) = unit.target else {
            return Ok(Side::new());
        };
        let db = snapshot.lease().await;
        hash_target(&db, table, plan, keep, slice, interrupt).await
    };
    let (source_side, target_side) = tokio::join!(reading, target);
    Ok((source_side?, target_side?))
}

/// Reads a table's column types and cuts it into slices.
async fn plan(
    snapshot: &Snapshot,
    source: &Path,
    table: &TableMap,
    jobs: usize,
    jsonb_as_printed: bool,
) -> Result<Plan> {
    let (types, blocks) = {
        let db = snapshot.lease().await;
        let types = target::column_types(&db, &table.qualified, &table.target_columns()).await?;
        let blocks: Option<i64> = db
            .client
            .query_opt(ranges::TARGET_BLOCKS, &[&table.qualified])
            .await
            .map_err(|e| database_error(&db, "read the size of the target table", &e))?
            .and_then(|row| row.get(0));
        (types, blocks.and_then(|b| u64::try_from(b).ok()))
    };
    let rowids = match table.rowid {
        Some(rowid) => {
            let (path, name) = (source.to_path_buf(), table.source.clone());
            blocking(move || {
                let db = sqlite::open(&path)?;
                ranges::rowid_bounds(&db, &name, rowid).map_err(sqlite::read_error(&name, &path))
            })
            .await?
        }
        None => (None, None),
    };
    let sources: Vec<(SourceRead, u64)> = match rowids {
        (Some(min), Some(max)) => {
            let span = u64::try_from(i128::from(max) - i128::from(min) + 1).unwrap_or(u64::MAX);
            let parts = ranges::slices(span, ranges::MIN_SLICE_ROWS, jobs);
            ranges::rowid_slices(min, max, parts)
                .into_iter()
                .map(|slice| (SourceRead::Rowids(slice), span / parts as u64))
                .collect()
        }
        _ => vec![(SourceRead::Whole, 0)],
    };
    let targets: Vec<BlockSlice> = match blocks {
        Some(blocks) => ranges::block_slices(
            blocks,
            ranges::slices(blocks, ranges::MIN_SLICE_BLOCKS, jobs),
        ),
        None => vec![BlockSlice {
            start: 0,
            end: None,
        }],
    };
    let units = (0..sources.len().max(targets.len()))
        .map(|i| Unit {
            source: sources.get(i).map(|(read, _)| *read),
            target: targets.get(i).copied(),
            weight: sources.get(i).map_or(0, |(_, rows)| *rows),
        })
        .collect();
    Ok(Plan {
        types,
        units,
        jsonb_as_printed,
    })
}

/// Hashes the asked tables, each with what to keep, all their slices
/// `jobs` at a time, and adds the slices up per table.
#[allow(clippy::too_many_arguments)]
async fn pass(
    snapshot: &Snapshot,
    source: &Path,
    tables: &[TableMap],
    plans: &[Plan],
    wanted: &[(usize, Keep)],
    jobs: usize,
    interrupt: &Interrupt,
) -> Result<Vec<(Side, Side)>> {
    let mut units: Vec<(usize, usize, Arc<Keep>, Unit)> = Vec::new();
    for (slot, (table, keep)) in wanted.iter().enumerate() {
        let keep = Arc::new(keep.clone());
        for unit in &plans[*table].units {
            units.push((slot, *table, Arc::clone(&keep), *unit));
        }
    }
    // The big slices first: the last one to finish decides the wall time.
    units.sort_by_key(|(_, _, _, unit)| std::cmp::Reverse(unit.weight));
    let mut sums: Vec<(Side, Side)> = wanted.iter().map(|_| (Side::new(), Side::new())).collect();
    let mut hashed =
        futures_util::stream::iter(units.into_iter().map(|(slot, table, keep, unit)| {
            let (tables, plans) = (tables, plans);
            async move {
                let sides = hash_unit(
                    snapshot,
                    source,
                    &tables[table],
                    &plans[table],
                    &keep,
                    unit,
                    interrupt,
                )
                .await?;
                Ok::<_, Error>((slot, sides))
            }
        }))
        .buffer_unordered(jobs.max(1));
    while let Some(done) = hashed.next().await {
        let (slot, (ours, theirs)) = done?;
        sums[slot].0.merge(ours);
        sums[slot].1.merge(theirs);
    }
    Ok(sums)
}

/// Names the rows (and, for a row on both sides, the columns) of a table
/// whose sums differ: the differing buckets are read again, keeping their
/// rows, then the rows whose values differ, column by column.
#[allow(clippy::too_many_arguments)]
async fn name_differences(
    snapshot: &Snapshot,
    source: &Path,
    tables: &[TableMap],
    plans: &[Plan],
    index: usize,
    ours: &Side,
    theirs: &Side,
    jobs: usize,
    interrupt: &Interrupt,
) -> Result<Vec<String>> {
    let table = &tables[index];
    let differing = (0..BUCKETS)
        .filter(|&b| ours.buckets[b] != theirs.buckets[b])
        .count();
    let examine: HashSet<usize> = (0..BUCKETS)
        .filter(|&b| ours.buckets[b] != theirs.buckets[b])
        .take(BUCKETS_EXAMINED)
        .collect();
    // Said, so that a list of named rows is never read as all of them.
    let unexamined = (differing > examine.len()).then(|| {
        format!(
            "…and rows in {} more key bucket(s) of {BUCKETS} differ too, not named here: fix the ones above and verify again",
            differing - examine.len()
        )
    });
    let keep = Keep {
        buckets: Some(examine),
        keys: None,
    };
    let picked = pass(
        snapshot,
        source,
        tables,
        plans,
        &[(index, keep)],
        jobs,
        interrupt,
    )
    .await?;
    let Some((ours, theirs)) = picked.into_iter().next() else {
        return Ok(Vec::new());
    };
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
        pass(
            snapshot,
            source,
            tables,
            plans,
            &[(index, keep)],
            jobs,
            interrupt,
        )
        .await?
        .into_iter()
        .next()
    };
    let named = found.len();
    let mut lines: Vec<String> = found
        .into_iter()
        .map(|d| match &detail {
            Some((ours, theirs)) if d.values_differ => {
                match columns_differing(table, ours.detail.get(&d.key), theirs.detail.get(&d.key)) {
                    Some(columns) => format!("{}: values differ in {columns}", d.shown),
                    None => d.line,
                }
            }
            _ => d.line,
        })
        .collect();
    match unexamined {
        Some(more) => lines.push(more),
        None if named >= SAMPLES => lines.push(format!(
            "…named the first {SAMPLES}; more rows may differ: fix these and verify again"
        )),
        None => {}
    }
    Ok(lines)
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
    ours: Option<&Vec<Vec<Shown>>>,
    theirs: Option<&Vec<Vec<Shown>>>,
) -> Option<String> {
    let (Some([ours]), Some([theirs])) = (ours.map(Vec::as_slice), theirs.map(Vec::as_slice))
    else {
        return None;
    };
    let columns: Vec<String> = table
        .columns
        .iter()
        .zip(ours.iter().zip(theirs))
        .filter(|(_, (a, b))| a.hash != b.hash)
        .map(|(column, (a, b))| match (&a.text, &b.text) {
            (Some(x), Some(y)) => match where_texts_part(x, y) {
                (Some(at), x, y) => format!(
                    "{} (first difference at character {at}: SQLite {x}, PostgreSQL {y})",
                    column.target
                ),
                (None, x, y) => format!("{} (SQLite {x}, PostgreSQL {y})", column.target),
            },
            _ => format!(
                "{} (SQLite {}, PostgreSQL {})",
                column.target, a.value, b.value
            ),
        })
        .collect();
    (!columns.is_empty()).then(|| columns.join(", "))
}

/// Compares every table, all on one snapshot of the target read over
/// `jobs` connections: big tables in slices at the same time.
pub async fn verify(
    settings: &ConnectionSettings,
    source: &Path,
    tables: &[TableMap],
    jobs: usize,
    interrupt: &Interrupt,
) -> Result<Vec<TableVerify>> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let jobs = jobs.max(1);
    // The target is read on one exported snapshot; the SQLite file is read
    // by several connections (slices, later passes), each at its own moment.
    // A write to the file in between would count a row twice or not at all,
    // so a commit by anyone else while verify reads is detected and refused.
    let guard = sqlite::open(source)?;
    let version = data_version(&guard, source)?;
    let snapshot = Snapshot::open(settings, jobs).await?;
    let compared = verify_in(&snapshot, source, tables, jobs, interrupt).await;
    // On a failure (Ctrl-C among them) the read-only connections are just
    // dropped: committing them would first drain every COPY still streaming.
    let compared = match compared {
        Ok(compared) => {
            snapshot.close().await;
            compared
        }
        Err(err) => return Err(err),
    };
    if data_version(&guard, source)? != version {
        return Err(crate::error::Error::Refused {
            reason: ReasonCode::new(Code::CutoverSourceChanged),
            message: format!(
                "{} changed while verify read it (another connection committed to it), so the comparison is not of one state of the file; nothing was reported as matching",
                source.display()
            ),
            hint: Some(
                "verify the backup the run loaded (--from backups/sqlite/<file>.db), or stop the application writing to the file and verify again".into(),
            ),
            source: None,
        });
    }
    Ok(compared)
}

/// SQLite's `PRAGMA data_version`: changes on this connection's next read
/// whenever another connection has committed to the file.
fn data_version(db: &rusqlite::Connection, path: &Path) -> Result<i64> {
    db.query_row("PRAGMA data_version", [], |r| r.get(0))
        .map_err(sqlite::read_error("PRAGMA data_version", path))
}

async fn verify_in(
    snapshot: &Snapshot,
    source: &Path,
    tables: &[TableMap],
    jobs: usize,
    interrupt: &Interrupt,
) -> Result<Vec<TableVerify>> {
    // One database, one encoding: asked once, not per table.
    let utf8 = {
        let db = snapshot.lease().await;
        target::server_encoding(&db).await? == "UTF8"
    };
    let mut plans = Vec::with_capacity(tables.len());
    for table in tables {
        plans.push(plan(snapshot, source, table, jobs, utf8).await?);
    }
    let every: Vec<(usize, Keep)> = (0..tables.len()).map(|t| (t, Keep::default())).collect();
    let sums = pass(snapshot, source, tables, &plans, &every, jobs, interrupt).await?;
    let mut out = Vec::with_capacity(tables.len());
    for (index, (ours, theirs)) in sums.into_iter().enumerate() {
        let table = &tables[index];
        let matches = ours.rows == theirs.rows && ours.sum == theirs.sum;
        let differences = if matches {
            Vec::new()
        } else {
            name_differences(
                snapshot, source, tables, &plans, index, &ours, &theirs, jobs, interrupt,
            )
            .await?
        };
        out.push(TableVerify {
            table: table.source.clone(),
            target: table.target.clone(),
            source_rows: ours.rows,
            target_rows: theirs.rows,
            source_hash: format!("{:032x}", ours.sum),
            target_hash: format!("{:032x}", theirs.sum),
            matches,
            reason: (!matches).then(|| ReasonCode::about(Code::CutoverMismatch, &table.target)),
            source_slices: plans[index]
                .units
                .iter()
                .filter(|u| u.source.is_some())
                .count(),
            target_slices: plans[index]
                .units
                .iter()
                .filter(|u| u.target.is_some())
                .count(),
            differences,
            not_compared: table.not_compared.clone(),
        });
    }
    Ok(out)
}

/// The worst result of the tables.
pub fn result_of(tables: &[TableVerify]) -> Status {
    if tables.iter().all(|t| t.matches) {
        Status::Pass
    } else {
        Status::Fail
    }
}

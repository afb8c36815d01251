//! The load of `cutover sqlite run`: every table by binary COPY, several at
//! once on separate connections, all or nothing.
//!
//! Per table, a reader thread walks the SQLite rows and converts them
//! ([`super::types::convert`]) into batches of bounded size; the async side
//! writes them into `COPY … FROM STDIN (FORMAT binary)`. A bounded channel
//! between the two keeps memory flat whatever the table's size.
//!
//! Tables load in waves that follow the target's foreign keys (parents
//! first), each table in its own transaction together with its sequences.
//! Tables in a foreign-key cycle load in one transaction with constraints
//! deferred. If anything fails — a row, the server, Ctrl-C — every table of
//! the cutover is emptied again, so the target is as it was before.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::{Semaphore, SemaphorePermit, mpsc};
use tokio_postgres::binary_copy::BinaryCopyInWriter;

use super::TableMap;
use super::precheck::{blocking, row_name};
use super::sqlite;
use super::target::{self, SequenceSet, TargetForeignKey};
use super::types::{Cell, convert};
use crate::db::{ConnectionSettings, Db, quote_ident, scrub};
use crate::error::{Code, Error, ReasonCode, Result};
use crate::events::{Event, EventSink, Interrupt};

/// Rows per batch handed from the reader thread to the writer.
const BATCH_ROWS: usize = 2048;
/// Bytes per batch (a batch closes at whichever comes first).
const BATCH_BYTES: usize = 4 << 20;
/// Batches queued per table.
const BATCHES_IN_FLIGHT: usize = 4;
/// Converted rows waiting to be sent, all tables together, in KiB: the
/// load's memory stays flat however big the file, its tables or its blobs
/// are (a single row larger than this still goes through, alone).
const QUEUED_KIB: u32 = 64 * 1024;
static QUEUED: Semaphore = Semaphore::const_new(QUEUED_KIB as usize);
/// Tables of at least twice this many rows load in parts, one per job.
const ROWS_PER_PART: u64 = 50_000;
/// Progress at most this often per table.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// What one table's load did.
#[derive(Debug, Clone, Serialize)]
pub struct TableCopy {
    /// SQLite table.
    pub table: String,
    /// Target table.
    pub target: String,
    /// Rows copied (as counted by the server).
    pub rows: u64,
    /// Bytes of value data sent.
    pub bytes: u64,
    /// Wall time of the table's load.
    pub seconds: f64,
    /// Sequences moved past the copied maximum.
    pub sequences: Vec<SequenceSet>,
}

/// How to load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Empty the target tables first instead of refusing non-empty ones.
    pub truncate: bool,
    /// Tables loading at once.
    pub jobs: usize,
    /// `lock_timeout` for the load sessions.
    pub lock_timeout: Duration,
}

/// What to load: the SQLite file (the backup), the mapped tables, the
/// target's foreign keys (for the load order) and each table's row count
/// (for progress).
#[derive(Debug, Clone, Copy)]
pub struct LoadPlan<'a> {
    /// The SQLite file to read.
    pub source: &'a Path,
    /// The tables.
    pub tables: &'a [TableMap],
    /// Foreign keys of the target schema.
    pub keys: &'a [TargetForeignKey],
    /// Rows per table, in `tables` order.
    pub totals: &'a [u64],
}

struct Batch {
    rows: Vec<Vec<Cell>>,
    bytes: u64,
    /// Its share of [`QUEUED`], given back when the batch is written.
    _queued: Option<SemaphorePermit<'static>>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            rows: Vec::with_capacity(BATCH_ROWS),
            bytes: 0,
            _queued: None,
        }
    }
}

/// Waits (on a reader thread) until the batch fits in the queue budget.
fn queue(mut batch: Batch, runtime: &tokio::runtime::Handle) -> Batch {
    let kib = u32::try_from(batch.bytes.div_ceil(1024))
        .unwrap_or(u32::MAX)
        .clamp(1, QUEUED_KIB);
    batch._queued = runtime.block_on(QUEUED.acquire_many(kib)).ok();
    batch
}

/// A group of tables loaded in one transaction.
#[derive(Debug, Clone, PartialEq)]
struct Unit {
    tables: Vec<usize>,
    /// A foreign-key cycle: constraints deferred to the commit.
    deferred: bool,
}

/// Orders tables so that every parent is committed before its children
/// load: waves of units that can load at the same time.
fn waves(tables: &[TableMap], keys: &[TargetForeignKey]) -> Vec<Vec<Unit>> {
    let parents = |i: usize| -> Vec<usize> {
        keys.iter()
            .filter(|k| k.table == tables[i].target && k.parent != k.table)
            .filter_map(|k| tables.iter().position(|t| t.target == k.parent))
            .collect()
    };
    let mut placed = vec![false; tables.len()];
    let mut waves = Vec::new();
    while placed.iter().any(|p| !p) {
        let ready: Vec<usize> = (0..tables.len())
            .filter(|&i| !placed[i] && parents(i).iter().all(|&p| placed[p]))
            .collect();
        if ready.is_empty() {
            let rest: Vec<usize> = (0..tables.len()).filter(|&i| !placed[i]).collect();
            for &i in &rest {
                placed[i] = true;
            }
            waves.push(vec![Unit {
                tables: rest,
                deferred: true,
            }]);
            continue;
        }
        for &i in &ready {
            placed[i] = true;
        }
        waves.push(
            ready
                .into_iter()
                .map(|i| Unit {
                    tables: vec![i],
                    deferred: false,
                })
                .collect(),
        );
    }
    waves
}

fn cancelled(table: &str) -> Error {
    Error::Migration {
        reason: ReasonCode::about(Code::CutoverCancelled, table),
        message: format!("interrupted while loading `{table}`"),
        hint: Some(
            "nothing stays half-loaded: the cutover's tables were emptied again. Run it again when ready".into(),
        ),
     source: None, }
}

fn failed(table: &str, message: String, hint: &str) -> Error {
    Error::Migration {
        reason: ReasonCode::about(Code::CutoverCopyFailed, table),
        message,
        hint: Some(hint.to_string()),
        source: None,
    }
}

fn db_failure(db: &Db, table: &str, doing: &str, err: &tokio_postgres::Error) -> Error {
    let message = match err.as_db_error() {
        Some(e) => {
            let mut text = format!(
                "loading `{table}` failed: {} ({})",
                e.message(),
                e.code().code()
            );
            if let Some(detail) = e.detail() {
                text.push_str(&format!("\n  detail: {detail}"));
            }
            // "COPY t, line 17, column x: …": the line is the row's position.
            if let Some(at) = e.where_() {
                text.push_str(&format!(
                    "\n  where: {at} (line = row position in the SQLite table)"
                ));
            }
            text
        }
        None => format!(
            "loading `{table}` failed while {doing} on {}: {}",
            db.target,
            crate::db::connect::error_chain(err)
        ),
    };
    failed(
        table,
        scrub(&message),
        "nothing stays half-loaded: the cutover's tables were emptied again. Fix the cause and run again",
    )
}

/// Loads every table; on any failure empties them all again.
pub async fn load(
    settings: &ConnectionSettings,
    plan: &LoadPlan<'_>,
    options: &LoadOptions,
    events: &dyn EventSink,
    interrupt: &Interrupt,
) -> Result<Vec<TableCopy>> {
    let control = settings.connect().await?;
    prepare_targets(&control, plan.tables, options.truncate).await?;
    let result = async {
        let parts = load_waves(settings, plan, options, events, interrupt).await?;
        let mut copies = Vec::new();
        for (index, table) in plan.tables.iter().enumerate() {
            let mine: Vec<&PartCopy> = parts.iter().filter(|p| p.table == index).collect();
            let (Some(first), Some(last)) = (
                mine.iter().map(|p| p.started).min(),
                mine.iter().map(|p| p.finished).max(),
            ) else {
                continue;
            };
            copies.push(TableCopy {
                table: table.source.clone(),
                target: table.target.clone(),
                rows: mine.iter().map(|p| p.rows).sum(),
                bytes: mine.iter().map(|p| p.bytes).sum(),
                seconds: (last - first).as_secs_f64(),
                sequences: target::set_sequences(&control, table).await?,
            });
        }
        Ok(copies)
    }
    .await;
    if let Err(err) = result {
        return Err(match empty_again(settings, plan.tables).await {
            Ok(()) => err,
            Err(cleanup) => {
                let hint = format!(
                    "emptying the tables again failed too ({cleanup}): the target may hold part of the data. Run again with --truncate once the server is reachable, or TRUNCATE {} by hand",
                    table_list(plan.tables)
                );
                err.with_hint(hint)
            }
        });
    }
    result
}

/// `"s"."a", "s"."b"`: the cutover's tables, for TRUNCATE and messages.
fn table_list(tables: &[TableMap]) -> String {
    tables
        .iter()
        .map(|t| t.qualified.clone())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses non-empty target tables, or empties them with `--truncate`.
async fn prepare_targets(db: &Db, tables: &[TableMap], truncate: bool) -> Result<()> {
    if truncate {
        let list = table_list(tables);
        if list.is_empty() {
            return Ok(());
        }
        return db
            .client
            .batch_execute(&format!("TRUNCATE {list}"))
            .await
            .map_err(|e| {
                Error::Refused {
                    reason: ReasonCode::new(Code::CutoverTargetNotEmpty),
                    message: scrub(&format!(
                        "--truncate could not empty the target tables: {}",
                        e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string())
                    )),
                    hint: Some("another table refers to them (TRUNCATE would need CASCADE, which migsafe never does on its own): empty that one first, or --exclude nothing and let the cutover own it".into()),
                 source: None, }
            });
    }
    let mut full = Vec::new();
    for table in tables {
        if target::has_rows(db, &table.qualified).await? {
            full.push(table.target.clone());
        }
    }
    if let Some(first) = full.first() {
        return Err(Error::Refused {
            reason: ReasonCode::about(Code::CutoverTargetNotEmpty, first),
            message: format!(
                "target table(s) already hold rows: {}; nothing was loaded",
                full.join(", ")
            ),
            hint: Some(
                "a cutover loads into empty tables. If those rows are from an earlier attempt, run again with --truncate (it empties every table of the cutover first)".into(),
            ),
         source: None, });
    }
    Ok(())
}

/// How long emptying the tables after a failure keeps trying while the
/// server is unreachable (a restart, a failover).
const EMPTY_AGAIN_FOR: Duration = Duration::from_secs(30);

async fn empty_again(settings: &ConnectionSettings, tables: &[TableMap]) -> Result<()> {
    let list = table_list(tables);
    if list.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    loop {
        let attempt = async {
            let db = settings.connect().await?;
            db.client
                .batch_execute(&format!("TRUNCATE {list}"))
                .await
                .map_err(|e| crate::db::history::database_error(&db, "empty the target tables", &e))
        };
        match attempt.await {
            Err(err)
                if err.reason().code() == Code::DatabaseUnreachable
                    && started.elapsed() < EMPTY_AGAIN_FOR =>
            {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            other => return other,
        }
    }
}

/// What one part (a table, or a rowid range of a big one) did.
struct PartCopy {
    table: usize,
    rows: u64,
    bytes: u64,
    started: Instant,
    finished: Instant,
}

/// Rowid ranges to load a big table on several connections at once (the
/// server's side of COPY is the bottleneck: one backend per part). `None`
/// when the table stays whole: small, WITHOUT ROWID, or a column named like
/// the rowid.
fn split(path: &Path, table: &TableMap, rows: u64, jobs: usize) -> Result<Vec<Option<(i64, i64)>>> {
    let parts = usize::try_from(rows / ROWS_PER_PART)
        .unwrap_or(usize::MAX)
        .min(jobs);
    let shadowed = table.columns.iter().any(|c| {
        ["rowid", "_rowid_", "oid"]
            .iter()
            .any(|r| c.source.eq_ignore_ascii_case(r))
    });
    if parts < 2 || shadowed {
        return Ok(vec![None]);
    }
    let db = sqlite::open(path)?;
    let bounds = db.query_row(
        &format!(
            "SELECT min(rowid), max(rowid) FROM {}",
            sqlite::quote(&table.source)
        ),
        [],
        |r| Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?)),
    );
    let Ok((Some(low), Some(high))) = bounds else {
        return Ok(vec![None]);
    };
    let span = i128::from(high) - i128::from(low) + 1;
    let count = parts as i128;
    Ok((0..count)
        .map(|i| {
            let from = i128::from(low) + span * i / count;
            let to = i128::from(low) + span * (i + 1) / count - 1;
            Some((
                i64::try_from(from).unwrap_or(i64::MIN),
                i64::try_from(to).unwrap_or(i64::MAX),
            ))
        })
        .collect())
}

async fn load_waves(
    settings: &ConnectionSettings,
    plan: &LoadPlan<'_>,
    options: &LoadOptions,
    events: &dyn EventSink,
    interrupt: &Interrupt,
) -> Result<Vec<PartCopy>> {
    let mut done = Vec::new();
    for wave in waves(plan.tables, plan.keys) {
        if interrupt.is_triggered() {
            return Err(cancelled(&plan.tables[wave[0].tables[0]].target));
        }
        // A table alone in its unit may be split; a cycle loads whole, in one transaction.
        let mut units = Vec::new();
        for unit in wave {
            if let [index] = unit.tables[..] {
                let (path, table) = (plan.source.to_path_buf(), plan.tables[index].clone());
                let (rows, jobs) = (plan.totals[index], options.jobs);
                let ranges = blocking(move || split(&path, &table, rows, jobs)).await?;
                let parts = ranges.len();
                for (number, range) in ranges.into_iter().enumerate() {
                    units.push((unit.clone(), range, (number + 1, parts)));
                }
            } else {
                units.push((unit, None, (1, 1)));
            }
        }
        let mut running =
            futures_util::stream::iter(units.into_iter().map(|(unit, range, part)| {
                load_unit(
                    settings, plan, unit, range, part, options, events, interrupt,
                )
            }))
            .buffer_unordered(options.jobs.max(1));
        // The first failure stops the others: dropping them closes their
        // connections, and the server rolls their COPY back.
        while let Some(result) = running.next().await {
            done.extend(result?);
        }
    }
    Ok(done)
}

#[allow(clippy::too_many_arguments)]
async fn load_unit(
    settings: &ConnectionSettings,
    plan: &LoadPlan<'_>,
    unit: Unit,
    range: Option<(i64, i64)>,
    (part, parts): (usize, usize),
    options: &LoadOptions,
    events: &dyn EventSink,
    interrupt: &Interrupt,
) -> Result<Vec<PartCopy>> {
    let db = settings.connect().await?;
    let first = &plan.tables[unit.tables[0]].target;
    let setup = format!(
        "BEGIN; SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = {}{}",
        options.lock_timeout.as_millis(),
        if unit.deferred {
            "; SET CONSTRAINTS ALL DEFERRED"
        } else {
            ""
        }
    );
    db.client
        .batch_execute(&setup)
        .await
        .map_err(|e| db_failure(&db, first, "starting the transaction", &e))?;
    let mut copies = Vec::new();
    for &index in &unit.tables {
        let table = &plan.tables[index];
        let label = if parts > 1 {
            format!("{} [part {part}/{parts}]", table.target)
        } else {
            table.target.clone()
        };
        let total = plan.totals[index] / parts as u64;
        let started = Instant::now();
        let (rows, bytes) = copy_table(
            &db,
            plan.source,
            table,
            range,
            &label,
            total,
            events,
            interrupt,
        )
        .await?;
        copies.push(PartCopy {
            table: index,
            rows,
            bytes,
            started,
            finished: Instant::now(),
        });
    }
    db.client
        .batch_execute("COMMIT")
        .await
        .map_err(|e| db_failure(&db, first, "committing", &e))?;
    Ok(copies)
}

/// Streams one table (or one rowid range of it) into COPY; returns rows and bytes.
#[allow(clippy::too_many_arguments)]
async fn copy_table(
    db: &Db,
    source: &Path,
    table: &TableMap,
    range: Option<(i64, i64)>,
    label: &str,
    total: u64,
    events: &dyn EventSink,
    interrupt: &Interrupt,
) -> Result<(u64, u64)> {
    let started = Instant::now();
    events.emit(&Event::CopyStarted {
        table: label.to_string(),
        rows: total,
    });
    let columns = table.target_columns();
    let types = target::column_types(db, &table.qualified, &columns).await?;
    let sql = format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        table.qualified,
        columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let sink = db
        .client
        .copy_in::<_, Bytes>(&sql)
        .await
        .map_err(|e| db_failure(db, &table.target, "starting COPY", &e))?;
    let writer = BinaryCopyInWriter::new(sink, &types);
    tokio::pin!(writer);

    let (sender, mut batches) = mpsc::channel::<Batch>(BATCHES_IN_FLIGHT);
    let reader = {
        let path = source.to_path_buf();
        let table = table.clone();
        let interrupt = interrupt.clone();
        tokio::task::spawn_blocking(move || read(&path, &table, range, &sender, &interrupt))
    };
    let streaming = async {
        let mut rows = 0u64;
        let mut bytes = 0u64;
        let mut last_progress = Instant::now();
        while let Some(batch) = batches.recv().await {
            if interrupt.is_triggered() {
                return Err(cancelled(&table.target));
            }
            for row in &batch.rows {
                writer
                    .as_mut()
                    .write_raw(row.iter())
                    .await
                    .map_err(|e| db_failure(db, &table.target, "sending rows", &e))?;
            }
            rows += batch.rows.len() as u64;
            bytes += batch.bytes;
            if last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                events.emit(&Event::CopyProgress {
                    table: label.to_string(),
                    rows,
                    total,
                });
            }
        }
        // The channel closed: the reader is done, or stopped at a bad row or a
        // Ctrl-C. Only a reader that read every row lets the COPY finish.
        if interrupt.is_triggered() {
            return Err(cancelled(&table.target));
        }
        match reader.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(err),
            Err(err) => {
                return Err(failed(
                    &table.target,
                    format!("the SQLite reader of `{}` failed: {err}", table.source),
                    "the cutover's tables were emptied again",
                ));
            }
        }
        let loaded = writer
            .as_mut()
            .finish()
            .await
            .map_err(|e| db_failure(db, &table.target, "finishing COPY", &e))?;
        if loaded != rows {
            return Err(failed(
                &table.target,
                format!(
                    "`{}`: the server loaded {loaded} rows, migsafe sent {rows}",
                    table.target
                ),
                "the cutover's tables were emptied again; please report this",
            ));
        }
        Ok::<_, Error>((rows, bytes))
    };
    // Rows may already sit in socket buffers when Ctrl-C comes: cancel the
    // COPY on the server instead of waiting for it to finish.
    let (rows, bytes) = tokio::select! {
        done = streaming => done?,
        () = interrupt.wait() => {
            db.cancel_running().await;
            return Err(cancelled(&table.target));
        }
    };
    events.emit(&Event::CopyFinished {
        table: label.to_string(),
        rows,
        bytes,
        duration_ms: crate::events::millis(started.elapsed()),
    });
    Ok((rows, bytes))
}

/// The reader thread: SQLite rows → converted batches.
fn read(
    path: &Path,
    table: &TableMap,
    range: Option<(i64, i64)>,
    sender: &mpsc::Sender<Batch>,
    interrupt: &Interrupt,
) -> Result<()> {
    let source_error = |e: rusqlite::Error| {
        failed(
            &table.target,
            format!(
                "cannot read `{}` from {}: {e}",
                table.source,
                path.display()
            ),
            "the cutover's tables were emptied again",
        )
    };
    let db = sqlite::open(path)?;
    let (sql, bounds) = match range {
        Some((from, to)) => (
            format!("{} WHERE rowid BETWEEN ?1 AND ?2", table.source_select()),
            vec![from, to],
        ),
        None => (table.source_select(), Vec::new()),
    };
    let mut statement = db.prepare(&sql).map_err(source_error)?;
    let mut rows = statement
        .query(rusqlite::params_from_iter(bounds))
        .map_err(source_error)?;
    let runtime = tokio::runtime::Handle::current();
    let mut batch = Batch::new();
    let mut position = 0u64;
    while let Some(row) = rows.next().map_err(source_error)? {
        position += 1;
        let mut cells = Vec::with_capacity(table.columns.len());
        for (index, column) in table.columns.iter().enumerate() {
            let value = row.get_ref(index).map_err(source_error)?;
            match convert(value, &column.kind, column.not_null) {
                Ok(cell) => {
                    batch.bytes += cell.size() as u64;
                    cells.push(cell);
                }
                Err(misfit) => {
                    return Err(failed(
                        &table.target,
                        format!(
                            "`{}` {}: column `{}`: {} ({})",
                            table.source,
                            row_name(table, row, position),
                            column.source,
                            misfit.detail,
                            misfit.problem.replace('_', " ")
                        ),
                        "the cutover's tables were emptied again. Run `migsafe cutover sqlite precheck` to see every such value",
                    ));
                }
            }
        }
        batch.rows.push(cells);
        if batch.rows.len() >= BATCH_ROWS || batch.bytes as usize >= BATCH_BYTES {
            let full = queue(std::mem::replace(&mut batch, Batch::new()), &runtime);
            // The writer hung up: it failed and says why.
            // A Ctrl-C, or the writer hung up (it failed and says why):
            // never end as if every row had been read.
            if interrupt.is_triggered() || sender.blocking_send(full).is_err() {
                return Err(cancelled(&table.target));
            }
        }
    }
    if !batch.rows.is_empty() {
        let _ = sender.blocking_send(queue(batch, &runtime));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str) -> TableMap {
        TableMap {
            source: name.into(),
            target: name.into(),
            schema: "public".into(),
            qualified: format!("\"public\".\"{name}\""),
            columns: Vec::new(),
            key: Vec::new(),
            rowid: Some("rowid"),
            rowid_column: None,
            sequence_floor: None,
        }
    }

    fn key(table: &str, parent: &str) -> TargetForeignKey {
        TargetForeignKey {
            name: format!("{table}_{parent}_fkey"),
            table: table.into(),
            columns: vec!["x".into()],
            parent: parent.into(),
            parent_columns: vec!["id".into()],
        }
    }

    #[test]
    fn parents_load_before_children_and_cycles_load_together() {
        let tables = vec![
            table("orders"),
            table("users"),
            table("items"),
            table("a"),
            table("b"),
        ];
        let keys = vec![
            key("orders", "users"),
            key("items", "orders"),
            key("users", "users"),
            key("a", "b"),
            key("b", "a"),
        ];
        let waves = waves(&tables, &keys);
        let names: Vec<Vec<Vec<&str>>> = waves
            .iter()
            .map(|w| {
                w.iter()
                    .map(|u| {
                        u.tables
                            .iter()
                            .map(|&i| tables[i].target.as_str())
                            .collect()
                    })
                    .collect()
            })
            .collect();
        assert_eq!(
            names,
            vec![
                vec![vec!["users"]],
                vec![vec!["orders"]],
                vec![vec!["items"]],
                vec![vec!["a", "b"]],
            ]
        );
        assert!(waves[3][0].deferred);
    }
}

//! The load of `cutover sqlite run`: every table by binary COPY, all or
//! nothing, in one transaction.
//!
//! Per table, a reader thread walks the SQLite rows, converts them
//! ([`super::types::convert`]) and writes them in binary COPY format into
//! batches of bounded size; the async side only hands those bytes to
//! `COPY … FROM STDIN (FORMAT binary)`, a batch per message. A bounded
//! channel between the two keeps memory flat whatever the table's size, and
//! keeps the conversion (migsafe's core) and the server's COPY (the
//! server's) working at the same time, on different cores: the runtime's
//! one thread does no per-row work.
//!
//! The order is pg_restore's: the foreign keys and indexes of the loaded
//! tables are taken out ([`super::constraints`]), the rows loaded, the
//! indexes built again and the keys added `NOT VALID` and validated, the
//! sequences moved — all in one transaction on one connection, committed
//! once. That is what makes it all or nothing whatever happens: a row, a
//! failed validation, Ctrl-C, a server restart, even migsafe killed — the
//! server rolls the transaction back, drops and rows together, and the
//! target is exactly as before. (Loads committed on several connections
//! would each be visible, and a crash between them would leave tables
//! without their keys: no cleanup afterwards can promise what a single
//! transaction does.) Parents load before children, so that a constraint
//! left in place is met as rows arrive.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::SinkExt;
use serde::Serialize;
use tokio::sync::{Semaphore, SemaphorePermit, mpsc};
use tokio_postgres::types::{IsNull, ToSql, Type};

use super::TableMap;
use super::charset::Charset;
use super::precheck::row_name;
use super::target::{self, SequenceSet, TargetForeignKey};
use super::types::convert;
use super::{constraints, sqlite};
use crate::db::{ConnectionSettings, Db, quote_ident, scrub};
use crate::error::{Code, Error, ReasonCode, Result};
use crate::events::{Event, EventSink, Interrupt};

/// Rows per batch handed from the reader thread to the writer.
const BATCH_ROWS: usize = 4096;
/// Bytes per batch (a batch closes at whichever comes first).
const BATCH_BYTES: usize = 1 << 20;
/// The start of a binary COPY stream: its signature, no flags, no extension.
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Batches queued per table.
const BATCHES_IN_FLIGHT: usize = 4;
/// Converted rows waiting to be sent, all tables together, in KiB: the
/// load's memory stays flat however big the file, its tables or its blobs
/// are (a single row larger than this still goes through, alone).
const QUEUED_KIB: u32 = 64 * 1024;
static QUEUED: Semaphore = Semaphore::const_new(QUEUED_KIB as usize);
/// The hint of a failed load.
const ROLLED_BACK: &str = "nothing was loaded: the load is one transaction, rolled back; the target's tables are as they were before the load";
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
    /// The target's encoding, when values are checked against it.
    pub charset: Option<Charset>,
}

struct Batch {
    /// The rows in binary COPY format.
    data: BytesMut,
    rows: u64,
    /// Bytes of value data (for the report).
    bytes: u64,
    /// Its share of [`QUEUED`], given back when the batch is written.
    _queued: Option<SemaphorePermit<'static>>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            data: BytesMut::with_capacity(BATCH_BYTES / 4),
            rows: 0,
            bytes: 0,
            _queued: None,
        }
    }
}

/// Waits (on a reader thread) until the batch fits in the queue budget.
fn queue(mut batch: Batch, runtime: &tokio::runtime::Handle) -> Batch {
    let kib = u32::try_from(batch.data.len().div_ceil(1024))
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
    cancelled_while(table, &format!("loading `{table}`"))
}

/// Ctrl-C while `doing` (about `table`, the reason code's subject).
fn cancelled_while(table: &str, doing: &str) -> Error {
    Error::Migration {
        reason: ReasonCode::about(Code::CutoverCancelled, table),
        message: format!("interrupted while {doing}"),
        hint: Some(
            "nothing was loaded: the load is one transaction, rolled back; the target's tables are as they were before the load. Run it again when ready".into(),
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
        "nothing was loaded: the load is one transaction, rolled back; the target's tables are as they were before the load. Fix the cause and run again",
    )
}

/// The load session: no statement timeout (a big table takes what it
/// takes), the configured lock timeout, and constraints left in place (a
/// partitioned table's, say) checked at the commit when they can be.
const BEGIN_LOAD: &str = "BEGIN; SET LOCAL statement_timeout = 0; SET CONSTRAINTS ALL DEFERRED";

/// Loads every table in one transaction: take out the foreign keys and
/// indexes, COPY every table, build them again, validate the keys, move the
/// sequences, commit. Any failure rolls all of it back.
pub async fn load(
    settings: &ConnectionSettings,
    plan: &LoadPlan<'_>,
    options: &LoadOptions,
    events: &dyn EventSink,
    interrupt: &Interrupt,
) -> Result<Vec<TableCopy>> {
    let db = settings.connect().await?;
    let first = plan.tables.first().map_or("", |t| t.target.as_str());
    db.client
        .batch_execute(&format!(
            "{BEGIN_LOAD}; SET LOCAL lock_timeout = {}",
            options.lock_timeout.as_millis()
        ))
        .await
        .map_err(|e| db_failure(&db, first, "starting the transaction", &e))?;
    let loaded = load_in(&db, plan, options, events, interrupt).await;
    let copies = match loaded {
        Ok(copies) => copies,
        Err(err) => {
            // The server rolls back by itself when the connection is gone;
            // a ROLLBACK that cannot be sent changes nothing.
            let _ = db.client.batch_execute("ROLLBACK").await;
            return Err(err);
        }
    };
    if let Err(e) = db.client.batch_execute("COMMIT").await {
        return Err(match e.as_db_error() {
            Some(_) => db_failure(&db, first, "committing", &e),
            None => failed(
                first,
                format!(
                    "the connection broke while the load committed: {}",
                    crate::db::connect::error_chain(&e)
                ),
                &format!(
                    "the commit may or may not have happened (the server decides alone). Once it is back, `SELECT count(*) FROM {}` says which: rows mean it committed (run `migsafe cutover sqlite verify`), none that it did not and the target is as before",
                    first
                ),
            ),
        });
    }
    Ok(copies)
}

/// Everything of the load that runs inside its transaction.
async fn load_in(
    db: &Db,
    plan: &LoadPlan<'_>,
    options: &LoadOptions,
    events: &dyn EventSink,
    interrupt: &Interrupt,
) -> Result<Vec<TableCopy>> {
    prepare_targets(db, plan.tables, options.truncate).await?;
    let names: Vec<String> = plan.tables.iter().map(|t| t.target.clone()).collect();
    let detached = match plan.tables.first() {
        Some(table) => constraints::take_out(db, &table.schema, &names).await?,
        None => constraints::Detached::default(),
    };
    let mut copies = Vec::new();
    for index in waves(plan.tables, plan.keys)
        .into_iter()
        .flatten()
        .flat_map(|unit| unit.tables)
    {
        let table = &plan.tables[index];
        if interrupt.is_triggered() {
            return Err(cancelled(&table.target));
        }
        let started = Instant::now();
        let (rows, bytes) = copy_table(db, plan, index, events, interrupt).await?;
        copies.push(TableCopy {
            table: table.source.clone(),
            target: table.target.clone(),
            rows,
            bytes,
            seconds: started.elapsed().as_secs_f64(),
            sequences: Vec::new(),
        });
    }
    // Index builds and validations can take a while: Ctrl-C cancels the
    // statement on the server instead of waiting for it, and names the
    // table whose index or key was being built.
    let building = constraints::Building::default();
    let last = plan.tables.last().map_or("", |t| t.target.as_str());
    tokio::select! {
        built = constraints::put_back(db, &detached, &building) => built?,
        () = interrupt.wait() => {
            db.cancel_running().await;
            // Before the first build (a moment): the last table loaded.
            let table = building.table();
            let table = if table.is_empty() { last } else { table.as_str() };
            return Err(cancelled_while(
                table,
                &format!("building the indexes and keys of `{table}` again after the load"),
            ));
        }
    }
    for (copy, table) in copies.iter_mut().zip(
        waves(plan.tables, plan.keys)
            .into_iter()
            .flatten()
            .flat_map(|unit| unit.tables)
            .map(|i| &plan.tables[i]),
    ) {
        copy.sequences = target::set_sequences(db, table).await?;
    }
    Ok(copies)
}

/// `"s"."a", "s"."b"`: the cutover's tables, for TRUNCATE and messages.
fn table_list(tables: &[TableMap]) -> String {
    tables
        .iter()
        .map(|t| t.qualified.clone())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses non-empty target tables, or empties them with `--truncate`
/// (inside the load's transaction: a failed run gives the rows back).
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
    refuse_rows(db, tables).await
}

/// Refuses when a target table of the cutover already holds rows (a
/// cutover loads into empty tables). The load asks inside its transaction;
/// `cutover sqlite run` asks again before anything else, so that a refused
/// run has not applied migrations first.
pub(crate) async fn refuse_rows(db: &Db, tables: &[TableMap]) -> Result<()> {
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

/// Streams one table into COPY; returns rows and bytes.
#[allow(clippy::too_many_arguments)]
async fn copy_table(
    db: &Db,
    plan: &LoadPlan<'_>,
    index: usize,
    events: &dyn EventSink,
    interrupt: &Interrupt,
) -> Result<(u64, u64)> {
    let (source, table, total) = (plan.source, &plan.tables[index], plan.totals[index]);
    let label = table.target.as_str();
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
    tokio::pin!(sink);

    let (sender, mut batches) = mpsc::channel::<Batch>(BATCHES_IN_FLIGHT);
    let reader = {
        let path = source.to_path_buf();
        let table = table.clone();
        let interrupt = interrupt.clone();
        let charset = plan.charset;
        tokio::task::spawn_blocking(move || {
            read(&path, &table, &types, charset, &sender, &interrupt)
        })
    };
    let streaming = async {
        let mut rows = 0u64;
        let mut bytes = 0u64;
        let mut last_progress = Instant::now();
        while let Some(batch) = batches.recv().await {
            if interrupt.is_triggered() {
                return Err(cancelled(&table.target));
            }
            let Batch {
                data,
                rows: in_batch,
                bytes: value_bytes,
                _queued,
            } = batch;
            sink.as_mut()
                .send(data.freeze())
                .await
                .map_err(|e| db_failure(db, &table.target, "sending rows", &e))?;
            drop(_queued);
            rows += in_batch;
            bytes += value_bytes;
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
                    ROLLED_BACK,
                ));
            }
        }
        sink.as_mut()
            .send(Bytes::from_static(b"\xff\xff"))
            .await
            .map_err(|e| db_failure(db, &table.target, "sending rows", &e))?;
        let loaded = sink
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
                "nothing was loaded (the load is one transaction, rolled back); please report this",
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
    types: &[Type],
    charset: Option<Charset>,
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
            ROLLED_BACK,
        )
    };
    let db = sqlite::open(path)?;
    let mut statement = db.prepare(&table.source_select()).map_err(source_error)?;
    let mut rows = statement.query([]).map_err(source_error)?;
    let runtime = tokio::runtime::Handle::current();
    let mut batch = Batch::new();
    batch.data.extend_from_slice(COPY_HEADER);
    let fields = i16::try_from(table.columns.len()).unwrap_or(i16::MAX);
    let mut position = 0u64;
    while let Some(row) = rows.next().map_err(source_error)? {
        position += 1;
        batch.data.put_i16(fields);
        for (index, column) in table.columns.iter().enumerate() {
            let value = row.get_ref(index).map_err(source_error)?;
            match convert(value, &column.kind, column.not_null) {
                // Said here with the row's key and the character, rather
                // than by the server as a line number.
                Ok(cell) if let Some((c, escaped)) = charset.and_then(|cs| cs.refused(&cell)) => {
                    return Err(failed(
                        &table.target,
                        format!(
                            "`{}` {}: column `{}`: {} has no place in a {} database",
                            table.source,
                            row_name(table, row, position),
                            column.source,
                            super::charset::shown(c, escaped),
                            charset.map_or("", Charset::name)
                        ),
                        "nothing was loaded (the load is one transaction, rolled back). Run `migsafe cutover sqlite precheck` to see every such value, or create the database with ENCODING 'UTF8'",
                    ));
                }
                Ok(cell) => {
                    batch.bytes += cell.size() as u64;
                    let at = batch.data.len();
                    batch.data.put_i32(0);
                    let length = match cell.to_sql(&types[index], &mut batch.data) {
                        Ok(IsNull::Yes) => -1,
                        // PostgreSQL refuses a field over 1 GB (its varlena limit).
                        Ok(IsNull::No) => i32::try_from(batch.data.len() - at - 4)
                            .ok()
                            .filter(|&len| len < 1 << 30)
                            .ok_or_else(|| {
                            failed(
                                &table.target,
                                format!(
                                    "`{}` {}: column `{}`: a value of {} bytes is over PostgreSQL's limit of 1 GB per field",
                                    table.source,
                                    row_name(table, row, position),
                                    column.source,
                                    batch.data.len() - at - 4
                                ),
                                ROLLED_BACK,
                            )
                        })?,
                        Err(e) => {
                            return Err(failed(
                                &table.target,
                                format!(
                                    "`{}` {}: column `{}`: cannot encode the value: {e}",
                                    table.source,
                                    row_name(table, row, position),
                                    column.source
                                ),
                                ROLLED_BACK,
                            ));
                        }
                    };
                    if length == -1 {
                        batch.data.truncate(at + 4);
                    }
                    batch.data[at..at + 4].copy_from_slice(&length.to_be_bytes());
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
                        "nothing was loaded (the load is one transaction, rolled back). Run `migsafe cutover sqlite precheck` to see every such value",
                    ));
                }
            }
        }
        batch.rows += 1;
        if batch.rows as usize >= BATCH_ROWS || batch.data.len() >= BATCH_BYTES {
            let full = queue(std::mem::replace(&mut batch, Batch::new()), &runtime);
            // The writer hung up: it failed and says why.
            // A Ctrl-C, or the writer hung up (it failed and says why):
            // never end as if every row had been read.
            if interrupt.is_triggered() || sender.blocking_send(full).is_err() {
                return Err(cancelled(&table.target));
            }
        }
    }
    if !batch.data.is_empty() {
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
            not_compared: Vec::new(),
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

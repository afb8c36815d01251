//! Backfills (SPEC 16): the one `UPDATE … SET … [WHERE …]` of a
//! `-- migsafe:backfill` migration runs outside a transaction, in ranges of
//! the table's primary key, each range its own short transaction.
//!
//! The range is added to the statement's parse tree (its `WHERE`, or none,
//! AND `pk > $1 AND pk <= $2`) and deparsed; the statement text is never
//! edited. Each batch commits with its progress row (the last key), so a
//! crash or Ctrl-C loses at most the batch in flight, and the next apply
//! resumes after the last committed key. Batch sizes adapt so one batch
//! takes about `batch_time`; before each batch `pause::before_batch`
//! waits while other sessions wait for locks.

use std::time::{Duration, Instant};

use pg_query::NodeEnum;
use pg_query::protobuf::{BoolExpr, BoolExprType, Node, UpdateStmt};
use tokio_postgres::error::SqlState;

use super::progress::ProgressTable;
use super::run::{begin, cancellable, finish, local_limits};
use crate::db::connect::{error_chain, scrub};
use crate::db::execute::{Runner, backoff};
use crate::db::quote_ident;
use crate::error::{Code, Error, ReasonCode, Result};
use crate::events::Event;
use crate::source::{Migration, Script, statements};

/// Keys in the first batch, before any timing is known.
const FIRST_BATCH: i64 = 1000;
/// Bounds of the batch size.
const MIN_BATCH: i64 = 10;
const MAX_BATCH: i64 = 1_000_000;
/// At most one progress event per this long.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// A backfill's `UPDATE`, read from its script.
#[derive(Debug, Clone)]
pub struct Backfill {
    update: UpdateStmt,
    /// The table as written, quoted (`"app"."users"`).
    pub table: String,
    /// The table as written, for messages (`app.users`).
    pub shown: String,
}

/// Reads the backfill's statement; the error says why it cannot be batched.
pub fn compile(script: &Script) -> std::result::Result<Backfill, String> {
    let parts = statements::split(&script.sql)?;
    let [part] = parts.as_slice() else {
        return Err(format!(
            "a backfill holds exactly one UPDATE statement; this script has {}",
            parts.len()
        ));
    };
    let parsed = pg_query::parse(&part.text, 0).map_err(|e| e.to_string())?;
    let Some(NodeEnum::UpdateStmt(update)) = parsed
        .protobuf
        .stmts
        .first()
        .and_then(|raw| raw.stmt.as_ref())
        .and_then(|n| n.node.as_ref())
    else {
        return Err("a backfill holds one UPDATE statement; this is another statement".into());
    };
    if update.with_clause.is_some() {
        return Err("the UPDATE has a WITH clause, which cannot be run in key ranges".into());
    }
    if update.returning_clause.is_some() {
        return Err("the UPDATE has RETURNING: a backfill has nowhere to return rows to".into());
    }
    let Some(relation) = update.relation.as_ref() else {
        return Err("the UPDATE names no table".into());
    };
    let table = crate::db::catalog::qualified(
        Some(relation.schemaname.as_str()).filter(|s| !s.is_empty()),
        &relation.relname,
    );
    Ok(Backfill {
        update: update.as_ref().clone(),
        table,
        shown: crate::lint::ast::table_name(Some(relation)),
    })
}

/// The table's key: column and SQL type.
struct Key {
    column: String,
    sql_type: &'static str,
    relation: u32,
    estimate: f64,
}

const KEY: &str = "SELECT c.oid, c.reltuples::float8, \
     (SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary), \
     (SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
       WHERE i.indrelid = c.oid AND i.indisprimary AND i.indnkeyatts = 1), \
     (SELECT t.typname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
       JOIN pg_type t ON t.oid = a.atttypid WHERE i.indrelid = c.oid AND i.indisprimary AND i.indnkeyatts = 1) \
     FROM pg_class c WHERE c.oid = to_regclass($1)";

fn refused(runner: &Runner<'_>, migration: &Migration, why: &str) -> Error {
    Error::Migration {
        reason: ReasonCode::migration(Code::BackfillRefused, runner.namespace, &migration.version),
        message: format!(
            "{} {}: cannot run as a backfill: {why}",
            migration.version, migration.name
        ),
        hint: Some(
            "nothing of it ran. A backfill walks the table by a single-column integer or uuid primary key; add one, or remove `-- migsafe:backfill` to run the UPDATE as one statement".into(),
        ),
        source: None,
    }
}

async fn key(runner: &Runner<'_>, migration: &Migration, table: &str) -> Result<Key> {
    let row = runner
        .db
        .client
        .query_opt(KEY, &[&table])
        .await
        .map_err(|e| {
            crate::db::history::database_error(runner.db, "read the table's primary key", &e)
        })?;
    let Some(row) = row else {
        return Err(refused(
            runner,
            migration,
            &format!("table {table} does not exist"),
        ));
    };
    let relation: u32 = row.get(0);
    let estimate: f64 = row.get(1);
    let primary: i64 = row.get(2);
    let column: Option<String> = row.get(3);
    let type_name: Option<String> = row.get(4);
    let (Some(column), Some(type_name)) = (column, type_name) else {
        return Err(refused(
            runner,
            migration,
            &if primary == 0 {
                format!("{table} has no primary key")
            } else {
                format!("{table}'s primary key has several columns")
            },
        ));
    };
    let sql_type = match type_name.as_str() {
        "int2" => "smallint",
        "int4" => "integer",
        "int8" => "bigint",
        "uuid" => "uuid",
        other => {
            return Err(refused(
                runner,
                migration,
                &format!(
                    "{table}'s primary key {column} is of type {other}, not an integer or uuid"
                ),
            ));
        }
    };
    Ok(Key {
        column,
        sql_type,
        relation,
        estimate,
    })
}

impl Backfill {
    /// Whether the UPDATE's SET list assigns `column`.
    fn sets(&self, column: &str) -> bool {
        self.update.target_list.iter().any(|node| {
            matches!(node.node.as_ref(), Some(NodeEnum::ResTarget(target)) if target.name == column)
        })
    }

    /// The batch statement: the UPDATE with `AND key > $1 AND key <= $2`
    /// (`$1` NULL for the first batch), keys as text.
    fn batch_sql(&self, key: &Key) -> std::result::Result<String, String> {
        let qualifier = match self.update.relation.as_ref().and_then(|r| r.alias.as_ref()) {
            Some(alias) => quote_ident(&alias.aliasname),
            None => self.table.clone(),
        };
        let column = format!("{qualifier}.{}", quote_ident(&key.column));
        let ty = key.sql_type;
        let template = format!(
            "SELECT WHERE ($1::text IS NULL OR {column} > $1::text::{ty}) AND {column} <= $2::text::{ty}"
        );
        let parsed = pg_query::parse(&template, 0).map_err(|e| e.to_string())?;
        let range = match parsed
            .protobuf
            .stmts
            .first()
            .and_then(|raw| raw.stmt.as_ref())
            .and_then(|n| n.node.as_ref())
        {
            Some(NodeEnum::SelectStmt(select)) => select.where_clause.clone(),
            _ => None,
        }
        .ok_or("cannot build the key range")?;
        let mut update = self.update.clone();
        update.where_clause = Some(match update.where_clause.take() {
            Some(own) => Box::new(Node {
                node: Some(NodeEnum::BoolExpr(Box::new(BoolExpr {
                    boolop: BoolExprType::AndExpr as i32,
                    args: vec![*own, *range],
                    location: -1,
                    ..BoolExpr::default()
                }))),
            }),
            None => range,
        });
        NodeEnum::UpdateStmt(Box::new(update))
            .deparse(pg_query::DeparseOptions::default())
            .map_err(|e| e.to_string())
    }

    /// The query giving the next range's upper key and how many keys it holds.
    fn bound_sql(&self, key: &Key) -> String {
        let column = quote_ident(&key.column);
        let ty = key.sql_type;
        format!(
            // No max(): there is none for uuid.
            "WITH s AS (SELECT {column} AS k FROM {} WHERE ($1::text IS NULL OR {column} > $1::text::{ty}) ORDER BY {column} LIMIT $2) \
             SELECT (SELECT k::text FROM s ORDER BY k DESC LIMIT 1), (SELECT count(*) FROM s)",
            self.table
        )
    }
}

/// The next batch size: scaled toward `target` from the last batch's time,
/// at most doubling or halving at once.
fn next_size(size: i64, took: Duration, target: Duration) -> i64 {
    let took = took.as_secs_f64().max(0.001);
    let scaled = (size as f64 * target.as_secs_f64() / took).round() as i64;
    scaled.clamp(size / 2, size * 2).clamp(MIN_BATCH, MAX_BATCH)
}

/// Runs a backfill migration to the end, resuming after the last committed batch.
pub(crate) async fn run(
    runner: &Runner<'_>,
    migration: &Migration,
    batch_time: Duration,
) -> Result<Duration> {
    let started = Instant::now();
    let version = migration.version.as_str();
    let backfill = compile(&migration.up).map_err(|why| refused(runner, migration, &why))?;
    let key = key(runner, migration, &backfill.table).await?;
    if backfill.sets(&key.column) {
        // Rows would move ahead of the walk and be updated again, without end.
        return Err(refused(
            runner,
            migration,
            &format!(
                "the UPDATE sets {}, the primary key the batches walk by: a row moved ahead of the walk would be updated again",
                key.column
            ),
        ));
    }
    let batch_sql = backfill
        .batch_sql(&key)
        .map_err(|why| refused(runner, migration, &why))?;
    let bound_sql = backfill.bound_sql(&key);
    let table = ProgressTable::of(runner.history);
    let progress = begin(runner, &table, migration).await?;
    let mut last_key = progress.as_ref().and_then(|p| p.last_key.clone());
    let mut rows = progress.as_ref().map_or(0, |p| p.rows);
    let mut scanned = progress.as_ref().map_or(0, |p| p.scanned);
    let mut batches = progress.as_ref().map_or(0, |p| p.batches);
    if let Some(p) = &progress {
        runner.events.emit(&Event::OnlineResumed {
            namespace: runner.namespace.to_string(),
            version: version.to_string(),
            detail: match &p.last_key {
                Some(k) => format!(
                    "backfill of {} resumes after {} = {k}: {} rows in {} batches were committed by an earlier run",
                    backfill.shown, key.column, p.rows, p.batches
                ),
                None => format!("backfill of {} starts again: no batch was committed", backfill.shown),
            },
        });
    }
    let client = &runner.db.client;
    let begin_sql = format!("BEGIN; {}", local_limits(runner, &migration.up));
    let done_sql = table.batch_done_sql();
    let mut size = FIRST_BATCH;
    let mut attempt = 0;
    let run_started = Instant::now();
    let scanned_before = scanned;
    let mut last_event = Instant::now();
    loop {
        if let Err(err) = super::pause::before_batch(runner, version, key.relation).await {
            // A standby stayed behind for `lock_wait`: what committed stays,
            // the next apply resumes after it.
            return Err(err.after_work_landed(&format!(
                "the backfill stopped before its next batch: {rows} row(s) in {batches} batch(es) are committed and the next apply resumes after them"
            )));
        }
        if runner.interrupt.is_triggered() {
            return Err(stopped(
                runner,
                migration,
                rows,
                batches,
                last_key.as_deref(),
                None,
            ));
        }
        let batch_started = Instant::now();
        let work = async {
            client.batch_execute(&begin_sql).await?;
            let bound = client.query_one(&bound_sql, &[&last_key, &size]).await?;
            let upper: Option<String> = bound.get(0);
            let keys: i64 = bound.get(1);
            let Some(upper) = upper else {
                client.batch_execute("COMMIT").await?;
                return Ok(None);
            };
            let updated = client.execute(&batch_sql, &[&last_key, &upper]).await?;
            let updated = i64::try_from(updated).unwrap_or(i64::MAX);
            client
                .execute(
                    &done_sql,
                    &[&runner.namespace, &version, &upper, &updated, &keys],
                )
                .await?;
            client.batch_execute("COMMIT").await?;
            Ok::<_, tokio_postgres::Error>(Some((upper, updated, keys)))
        };
        let (result, cancelled) = cancellable(runner, work).await;
        match result {
            Ok(None) => break,
            Ok(Some((upper, updated, keys))) => {
                attempt = 0;
                last_key = Some(upper);
                rows += updated;
                scanned += keys;
                batches += 1;
                size = next_size(size, batch_started.elapsed(), batch_time);
                if last_event.elapsed() >= PROGRESS_EVERY {
                    last_event = Instant::now();
                    emit_progress(
                        runner,
                        version,
                        &backfill,
                        &key,
                        rows,
                        batches,
                        size,
                        scanned,
                        scanned_before,
                        run_started,
                    );
                }
            }
            Err(err) => {
                let _ = client.batch_execute("ROLLBACK").await;
                if cancelled {
                    return Err(stopped(
                        runner,
                        migration,
                        rows,
                        batches,
                        last_key.as_deref(),
                        None,
                    ));
                }
                let lock = err.code() == Some(&SqlState::LOCK_NOT_AVAILABLE);
                attempt += 1;
                if !lock || attempt > runner.limits.lock_retries {
                    return Err(stopped(
                        runner,
                        migration,
                        rows,
                        batches,
                        last_key.as_deref(),
                        Some(&err),
                    ));
                }
                // A smaller batch holds its row locks for less time.
                size = (size / 2).max(MIN_BATCH);
                let delay = backoff(runner.limits.lock_retry_delay, attempt);
                runner.events.emit(&Event::MigrationRetried {
                    namespace: runner.namespace.to_string(),
                    version: version.to_string(),
                    attempt,
                    delay_ms: crate::events::millis(delay),
                    reason: ReasonCode::migration(
                        Code::LockTimeout,
                        runner.namespace,
                        &migration.version,
                    )
                    .to_string(),
                    blockers: Vec::new(),
                });
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = runner.interrupt.wait() => {}
                }
            }
        }
    }
    emit_progress(
        runner,
        version,
        &backfill,
        &key,
        rows,
        batches,
        size,
        scanned,
        scanned_before,
        run_started,
    );
    let (result, cancelled) = cancellable(runner, finish(runner, &table, migration)).await;
    if let Err(err) = result {
        let shown = (!cancelled).then_some(&err);
        return Err(stopped(
            runner,
            migration,
            rows,
            batches,
            last_key.as_deref(),
            shown,
        ));
    }
    Ok(started.elapsed())
}

#[allow(clippy::too_many_arguments)]
fn emit_progress(
    runner: &Runner<'_>,
    version: &str,
    backfill: &Backfill,
    key: &Key,
    rows: i64,
    batches: i64,
    size: i64,
    scanned: i64,
    scanned_before: i64,
    run_started: Instant,
) {
    let elapsed = run_started.elapsed().as_secs_f64().max(0.001);
    let rate = ((scanned - scanned_before).max(0) as f64 / elapsed) as u64;
    let eta_ms = (key.estimate > 0.0 && rate > 0).then(|| {
        let left = (key.estimate - scanned as f64).max(0.0);
        (left / rate as f64 * 1000.0) as u64
    });
    runner.events.emit(&Event::BackfillProgress {
        namespace: runner.namespace.to_string(),
        version: version.to_string(),
        table: backfill.shown.clone(),
        rows: u64::try_from(rows).unwrap_or(0),
        batches: u64::try_from(batches).unwrap_or(0),
        batch_size: u64::try_from(size).unwrap_or(0),
        rate,
        eta_ms,
    });
}

/// The error of a backfill that stopped (Ctrl-C, a failed batch), saying
/// what is committed and where the next apply resumes.
fn stopped(
    runner: &Runner<'_>,
    migration: &Migration,
    rows: i64,
    batches: i64,
    last_key: Option<&str>,
    err: Option<&tokio_postgres::Error>,
) -> Error {
    let (code, what) = match err {
        None => (Code::MigrationCancelled, "interrupted".to_string()),
        Some(err) if err.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => (
            Code::LockTimeout,
            "a batch gave up waiting for its row locks after every retry".to_string(),
        ),
        Some(err) => (
            Code::MigrationFailed,
            match err.as_db_error() {
                Some(db) => format!(
                    "a batch failed: {} {}: {}",
                    db.severity(),
                    db.code().code(),
                    db.message()
                ),
                None => format!("a batch failed: {}", error_chain(err)),
            },
        ),
    };
    let resume = match last_key {
        Some(k) => format!("the next `migsafe apply` resumes after key {k}"),
        None => "the next `migsafe apply` starts it from the first key".to_string(),
    };
    Error::Migration {
        reason: ReasonCode::migration(code, runner.namespace, &migration.version),
        message: scrub(&format!(
            "{} {} (backfill): {what}",
            migration.version, migration.name
        )),
        hint: Some(format!(
            "{rows} rows in {batches} batches are committed (the batch in flight was rolled back); the migration stays pending and {resume}"
        )),
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(sql: &str) -> Script {
        Script {
            path: "0002_fill.up.sql".into(),
            sql: sql.into(),
            checksum: String::new(),
            directives: crate::source::directives::parse(sql).unwrap(),
            first_line: 1,
        }
    }

    fn key() -> Key {
        Key {
            column: "id".into(),
            sql_type: "bigint",
            relation: 0,
            estimate: 0.0,
        }
    }

    #[test]
    fn the_range_joins_the_statements_own_where() {
        let b = compile(&script("-- migsafe:backfill\nUPDATE app.users SET email_lower = lower(email) WHERE email_lower IS NULL;")).unwrap();
        assert_eq!(
            b.batch_sql(&key()).unwrap(),
            "UPDATE app.users SET email_lower = lower(email) WHERE email_lower IS NULL AND (($1::text IS NULL OR app.users.id > $1::text::bigint) AND app.users.id <= $2::text::bigint)"
        );
        assert_eq!(b.shown, "app.users");
        let b = compile(&script("UPDATE users u SET n = 0")).unwrap();
        assert!(b.batch_sql(&key()).unwrap().ends_with(
            "WHERE ($1::text IS NULL OR u.id > $1::text::bigint) AND u.id <= $2::text::bigint"
        ));
    }

    #[test]
    fn only_one_plain_update_is_a_backfill() {
        assert!(compile(&script("UPDATE a SET n = 1; UPDATE b SET n = 1;")).is_err());
        assert!(compile(&script("DELETE FROM a")).is_err());
        assert!(compile(&script("UPDATE a SET n = 1 RETURNING id")).is_err());
        assert!(compile(&script("WITH x AS (SELECT 1) UPDATE a SET n = 1")).is_err());
    }

    #[test]
    fn batch_sizes_follow_the_target_time() {
        let target = Duration::from_millis(200);
        assert_eq!(next_size(1000, Duration::from_millis(100), target), 2000);
        assert_eq!(next_size(1000, Duration::from_millis(10), target), 2000);
        assert_eq!(next_size(1000, Duration::from_millis(400), target), 500);
        assert_eq!(next_size(1000, Duration::from_millis(250), target), 800);
        assert_eq!(next_size(10, Duration::from_secs(5), target), MIN_BATCH);
    }
}

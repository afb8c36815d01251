//! Runs an [`OnlinePlan`] step by step, resuming at the step an earlier run
//! stopped in.
//!
//! Each transactional step commits together with its progress row; a step
//! outside a transaction (a concurrent index build) is marked started first
//! and done after. A step that gives up waiting for its lock (SQLSTATE
//! 55P03, `lock_timeout`) is rolled back and tried again with the run's
//! backoff, an INVALID index left by a cut-short build dropped first. The
//! history row is written with the removal of the progress row, in one
//! transaction, after the last step.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::progress::{Progress, ProgressTable};
use super::{BuiltIndex, OnlinePlan, PlannedStep, Unnamed};
use crate::db::Db;
use crate::db::connect::{error_chain, scrub};
use crate::db::execute::{Runner, backoff};
use crate::error::{Code, Error, ReasonCode, Result};
use crate::events::Event;
use crate::source::{Migration, Script};

/// Awaits `work`; on Ctrl-C asks the server to cancel it and still awaits
/// it (it then ends with an error). Returns whether a cancel was sent.
pub(crate) async fn cancellable<F: Future>(runner: &Runner<'_>, work: F) -> (F::Output, bool) {
    tokio::pin!(work);
    let mut cancelled = false;
    loop {
        tokio::select! {
            output = &mut work => return (output, cancelled),
            () = runner.interrupt.wait(), if !cancelled => {
                cancelled = true;
                runner.db.cancel_running().await;
            }
        }
    }
}

/// `SET LOCAL` of the script's own timeouts, for a step's transaction.
pub(crate) fn local_limits(runner: &Runner<'_>, script: &Script) -> String {
    let (lock, statement) = runner.timeouts(script);
    format!(
        "SET LOCAL lock_timeout = {}; SET LOCAL statement_timeout = {}",
        lock.as_millis(),
        statement.as_millis()
    )
}

/// `SET` of the script's own timeouts for work outside a transaction, and
/// the `SET` restoring the run's.
fn session_limits(runner: &Runner<'_>, script: &Script) -> (String, String) {
    let (lock, statement) = runner.timeouts(script);
    (
        format!(
            "SET lock_timeout = {}; SET statement_timeout = {}",
            lock.as_millis(),
            statement.as_millis()
        ),
        runner.limits.session_sql(),
    )
}

/// Reads (or creates) the progress of `migration`; an edited script cannot resume.
pub(crate) async fn begin(
    runner: &Runner<'_>,
    table: &ProgressTable,
    migration: &Migration,
) -> Result<Option<Progress>> {
    table.ensure(runner.db).await?;
    let version = migration.version.as_str();
    let progress = table.read(runner.db, runner.namespace, version).await?;
    match &progress {
        Some(p) if p.checksum != migration.up.checksum => Err(Error::Migration {
            reason: ReasonCode::migration(
                Code::OnlineProgressMismatch,
                runner.namespace,
                &migration.version,
            ),
            message: format!(
                "{} {} was interrupted part-way, but its file changed since: the committed steps belong to the old script, so it cannot resume",
                migration.version, migration.name
            ),
            hint: Some(format!(
                "restore the file as it was and apply again to finish it; or undo what the committed steps did by hand and delete its row: `DELETE FROM {} WHERE namespace = '{}' AND version = '{}'`",
                table.table(),
                runner.namespace,
                version
            )),
            source: None,
        }),
        Some(_) => Ok(progress),
        None => {
            table
                .start(runner.db, runner.namespace, version, &migration.up.checksum)
                .await?;
            Ok(None)
        }
    }
}

/// Writes the history row and removes the progress row, in one transaction.
pub(crate) async fn finish(
    runner: &Runner<'_>,
    table: &ProgressTable,
    migration: &Migration,
) -> std::result::Result<(), tokio_postgres::Error> {
    let client = &runner.db.client;
    let down_checksum = migration.down.as_ref().map(|d| d.checksum.as_str());
    let params: [&(dyn ToSql + Sync); 7] = [
        &runner.namespace,
        &migration.version.as_str(),
        &migration.name,
        &migration.up.checksum,
        &down_checksum,
        &runner.applied_by,
        &env!("CARGO_PKG_VERSION"),
    ];
    let delete = table.finish_sql();
    let version = migration.version.as_str();
    client.batch_execute("BEGIN").await?;
    let result = async {
        client
            .execute(&runner.prepared.insert_applied, &params)
            .await?;
        client
            .execute(&delete, &[&runner.namespace, &version])
            .await?;
        client.batch_execute("COMMIT").await
    }
    .await;
    if result.is_err() {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    result
}

/// Runs the steps of `plan` from where the progress says, then records the
/// migration as applied.
pub(crate) async fn run(
    runner: &Runner<'_>,
    migration: &Migration,
    plan: &OnlinePlan,
) -> Result<Duration> {
    let started = Instant::now();
    let table = ProgressTable::of(runner.history);
    let progress = begin(runner, &table, migration).await?;
    let total = plan.steps.len();
    let first = progress
        .as_ref()
        .map_or(0, |p| usize::try_from(p.steps).unwrap_or(0));
    let cut_short = progress.as_ref().is_some_and(|p| p.step_started);
    if progress.is_some() {
        runner.events.emit(&Event::OnlineResumed {
            namespace: runner.namespace.to_string(),
            version: migration.version.to_string(),
            detail: if first >= total {
                format!("every step of {total} is committed; recording it as applied")
            } else {
                format!(
                    "resuming at step {} of {total} (steps 1–{first} were committed by an earlier run)",
                    first + 1
                )
            },
        });
    }
    for (index, planned) in plan.steps.iter().enumerate().skip(first) {
        runner.events.emit(&Event::OnlineStep {
            namespace: runner.namespace.to_string(),
            version: migration.version.to_string(),
            step: index + 1,
            total,
            sql: planned.step.sql.clone(),
            locks: planned.step.locks.to_string(),
        });
        let resumed_build = cut_short && index == first;
        run_step(
            runner,
            &table,
            migration,
            planned,
            index,
            total,
            resumed_build,
        )
        .await
        .map_err(|err| match leftovers(&plan.steps[..index]) {
            Some(note) => with_note(err, &note),
            None => err,
        })?;
    }
    let (result, cancelled) = cancellable(runner, finish(runner, &table, migration)).await;
    if let Err(err) = result {
        return Err(step_failed(
            runner, migration, total, total, &err, cancelled, None,
        ));
    }
    Ok(started.elapsed())
}

/// Runs one step with its lock retries.
async fn run_step(
    runner: &Runner<'_>,
    table: &ProgressTable,
    migration: &Migration,
    planned: &PlannedStep,
    index: usize,
    total: usize,
    resumed_build: bool,
) -> Result<()> {
    let step = &planned.step;
    let version = migration.version.as_str();
    let done = i32::try_from(index + 1).unwrap_or(i32::MAX);
    let client = &runner.db.client;
    if let Some(built) = &step.index {
        match index_state(runner.db, built).await {
            // The build of an earlier run finished before it was cut short.
            Some(true) if resumed_build => {
                client
                    .execute(
                        &table.step_done_sql(),
                        &[&runner.namespace, &version, &done],
                    )
                    .await
                    .map_err(|e| step_failed(runner, migration, index, total, &e, false, None))?;
                return Ok(());
            }
            Some(false) => {
                let _ = drop_invalid(runner, built).await;
            }
            _ => {}
        }
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = if step.transaction {
            let begin = format!("BEGIN; {}", local_limits(runner, &migration.up));
            let sql = step_sql(runner, table, migration, planned, index).await?;
            let key = index.to_string();
            let work = async {
                client.batch_execute(&begin).await?;
                client.batch_execute(&sql).await?;
                if let Some(Unnamed::Records(relation)) = &step.unnamed {
                    let name: String = client
                        .query_one(NAMED_HERE, &[&qualified(relation)])
                        .await?
                        .get(0);
                    client
                        .execute(
                            &table.name_sql(),
                            &[&runner.namespace, &version, &key, &name],
                        )
                        .await?;
                }
                client
                    .execute(
                        &table.step_done_sql(),
                        &[&runner.namespace, &version, &done],
                    )
                    .await?;
                client.batch_execute("COMMIT").await
            };
            let (result, cancelled) = cancellable(runner, work).await;
            if result.is_err() {
                let _ = client.batch_execute("ROLLBACK").await;
            }
            (result, cancelled)
        } else {
            let (own, restore) = session_limits(runner, &migration.up);
            let work = async {
                table
                    .step_started(runner.db, runner.namespace, version)
                    .await
                    .map_err(|_| None)?;
                client.batch_execute(&own).await.map_err(Some)?;
                let ran = client.batch_execute(&step.sql).await;
                let _ = client.batch_execute(&restore).await;
                ran.map_err(Some)?;
                client
                    .execute(
                        &table.step_done_sql(),
                        &[&runner.namespace, &version, &done],
                    )
                    .await
                    .map(|_| ())
                    .map_err(Some)
            };
            let (result, cancelled) = cancellable(runner, work).await;
            match result {
                Ok(()) => (Ok(()), cancelled),
                Err(Some(err)) => (Err(err), cancelled),
                Err(None) => {
                    return Err(Error::Migration {
                        reason: ReasonCode::migration(
                            Code::MigrationFailed,
                            runner.namespace,
                            &migration.version,
                        ),
                        message: format!(
                            "{} {}: could not record that step {} of {total} starts",
                            migration.version,
                            migration.name,
                            index + 1
                        ),
                        hint: Some("nothing of the step ran; apply again".into()),
                        source: None,
                    });
                }
            }
        };
        let (result, cancelled) = outcome;
        let Err(err) = result else {
            return Ok(());
        };
        let lock = err.code() == Some(&SqlState::LOCK_NOT_AVAILABLE);
        if !lock || cancelled || attempt > runner.limits.lock_retries {
            let failed = step_failed(
                runner,
                migration,
                index,
                total,
                &err,
                cancelled,
                lock.then_some(attempt),
            );
            // A failed concurrent build leaves an INVALID index that is
            // still maintained (a unique one refuses duplicates): dropped
            // now, as the plain statement would have left nothing.
            let Some(built) = &step.index else {
                return Err(failed);
            };
            return Err(match drop_invalid(runner, built).await {
                None => with_note(failed, "The INVALID index the build left was dropped"),
                Some(drop) => with_note(
                    failed,
                    &format!(
                        "The INVALID index the build left could not be dropped and is still maintained (a unique one refuses duplicates): run `{drop}`, or apply again"
                    ),
                ),
            });
        }
        if let Some(built) = &step.index {
            let _ = drop_invalid(runner, built).await;
        }
        let delay = backoff(runner.limits.lock_retry_delay, attempt);
        runner.events.emit(&Event::MigrationRetried {
            namespace: runner.namespace.to_string(),
            version: migration.version.to_string(),
            attempt,
            delay_ms: crate::events::millis(delay),
            reason: ReasonCode::migration(Code::LockTimeout, runner.namespace, &migration.version)
                .to_string(),
            blockers: Vec::new(),
        });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = runner.interrupt.wait() => {
                return Err(step_failed(runner, migration, index, total, &err, true, None));
            }
        }
    }
}

/// The constraint the running transaction added to a table, not yet
/// validated: the one a step added without a name.
const NAMED_HERE: &str = "SELECT conname::text FROM pg_constraint WHERE conrelid = to_regclass($1) \
     AND NOT convalidated AND xmin::text::bigint = txid_current() % 4294967296";

fn qualified(relation: &pg_query::protobuf::RangeVar) -> String {
    crate::db::catalog::qualified(
        Some(relation.schemaname.as_str()).filter(|s| !s.is_empty()),
        &relation.relname,
    )
}

/// The SQL a step runs: as planned, or, for the validation of a constraint
/// PostgreSQL named in the step before, built from the recorded name.
async fn step_sql(
    runner: &Runner<'_>,
    table: &ProgressTable,
    migration: &Migration,
    planned: &PlannedStep,
    index: usize,
) -> Result<String> {
    let Some(Unnamed::Validates(relation)) = &planned.step.unnamed else {
        return Ok(planned.step.sql.clone());
    };
    let name = match index.checked_sub(1) {
        Some(before) => {
            table
                .recorded_name(
                    runner.db,
                    runner.namespace,
                    migration.version.as_str(),
                    before,
                )
                .await?
        }
        None => None,
    };
    let built = name.ok_or_else(|| "the step before recorded no constraint name".to_string());
    built
        .and_then(|name| super::rewrite::validate_sql(relation, &name))
        .map_err(|why| Error::Migration {
            reason: ReasonCode::migration(
                Code::MigrationFailed,
                runner.namespace,
                &migration.version,
            ),
            message: format!(
                "{} {}: step {} cannot be built: {why}",
                migration.version,
                migration.name,
                index + 1
            ),
            hint: Some("name the constraint in the file (ADD CONSTRAINT <name> …)".into()),
            source: None,
        })
}

/// `Some(valid)` when the index exists.
async fn index_state(db: &Db, built: &BuiltIndex) -> Option<bool> {
    db.client
        .query_opt(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)",
            &[&built.qualified()],
        )
        .await
        .ok()
        .flatten()
        .map(|row| row.get(0))
}

/// Drops the index when it is INVALID (left by a build cut short). Returns
/// the statement to run by hand when it is still there.
async fn drop_invalid(runner: &Runner<'_>, built: &BuiltIndex) -> Option<String> {
    if index_state(runner.db, built).await == Some(false) {
        let drop = format!("DROP INDEX CONCURRENTLY IF EXISTS {}", built.qualified());
        if let Err(err) = runner.db.client.batch_execute(&drop).await {
            tracing::warn!(
                "could not drop the invalid index {}: {}",
                built.qualified(),
                error_chain(&err)
            );
            return Some(drop);
        }
    }
    None
}

/// What a failed step's error adds to its hint.
fn with_note(err: Error, note: &str) -> Error {
    let hint = match err.hint() {
        Some(hint) => format!("{hint}. {note}"),
        None => note.to_string(),
    };
    err.with_hint(hint)
}

/// What the committed steps before `index` left in the database that acts
/// on the application's writes already (a NOT VALID constraint checks new
/// rows; a unique index refuses duplicates), for the error of a later step.
fn leftovers(steps: &[PlannedStep]) -> Option<String> {
    let acting: Vec<String> = steps
        .iter()
        .filter(|p| p.step.sql.contains("NOT VALID") || p.step.index.is_some())
        .map(|p| format!("`{}`", p.step.sql.lines().next().unwrap_or("").trim()))
        .collect();
    (!acting.is_empty()).then(|| {
        format!(
            "Still in the database from the committed steps, and already acting on new writes (a NOT VALID constraint checks every new row, an index is maintained): {}; apply again once the cause is fixed, or undo them by hand",
            acting.join(", ")
        )
    })
}

/// The error of a step that failed, saying what is committed and that the
/// next apply resumes.
fn step_failed(
    runner: &Runner<'_>,
    migration: &Migration,
    index: usize,
    total: usize,
    err: &tokio_postgres::Error,
    cancelled: bool,
    lock_attempts: Option<u32>,
) -> Error {
    let committed = if index == 0 {
        "no step is committed".to_string()
    } else {
        format!("steps 1–{index} of {total} are committed")
    };
    let (code, what) = if cancelled {
        (
            Code::MigrationCancelled,
            format!("interrupted during step {} of {total}", index + 1),
        )
    } else if let Some(attempts) = lock_attempts {
        (
            Code::LockTimeout,
            format!(
                "step {} of {total} gave up after {attempts} attempts waiting for its lock (lock_timeout)",
                index + 1
            ),
        )
    } else if index >= total {
        (
            Code::MigrationFailed,
            format!(
                "every step ran, but recording it as applied failed: {}",
                error_chain(err)
            ),
        )
    } else {
        let detail = match err.as_db_error() {
            Some(db) => {
                let mut text = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
                if let Some(detail) = db.detail() {
                    text.push_str(&format!("\n    DETAIL: {detail}"));
                }
                text
            }
            None => error_chain(err),
        };
        (
            Code::MigrationFailed,
            format!("step {} of {total} failed: {detail}", index + 1),
        )
    };
    let message = scrub(&format!(
        "{} {} ({}, online): {what}",
        migration.version,
        migration.name,
        migration.up.path.display()
    ));
    let hint = if index >= total {
        format!(
            "every step of {total} is committed; the migration stays pending until its history row is written: the next `migsafe apply` records it"
        )
    } else {
        format!(
            "{committed}; the step that stopped was rolled back. The migration stays pending: the next `migsafe apply` resumes at step {}{}",
            index + 1,
            if code == Code::MigrationFailed {
                " once the cause is fixed"
            } else {
                ""
            }
        )
    };
    Error::Migration {
        reason: ReasonCode::migration(code, runner.namespace, &migration.version),
        message,
        hint: Some(hint),
        source: None,
    }
}

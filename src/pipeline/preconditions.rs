//! Liquibase preconditions (`--preconditions onFail:… onError:…` with
//! `--precondition-sql-check expectedResult:… <SQL>` lines), checked just
//! before their changeset runs, under the namespace lock, as `liquibase
//! update` checks them: each check's SQL must return one value, and that
//! value as text must be the expected one.
//!
//! - Holds: the changeset runs.
//! - Does not hold (`onFail`), or its SQL fails (`onError`): `HALT` (the
//!   default) stops the run there with `PRECONDITION_FAILED`; `MARK_RAN`
//!   records the changeset as applied without running it (audited);
//!   `WARN` says so and runs it.

use crate::db::Db;
use crate::db::execute::Runner;
use crate::db::history::{AuditEntry, History, StampRow, database_error};
use crate::error::{Code, Error, ReasonCode, Result};
use crate::events::Event;
use crate::source::Migration;
use crate::source::layouts::liquibase::{OnFail, Preconditions, SqlCheck};

use super::Env;

/// What the preconditions decide.
pub(crate) enum Decision {
    /// Every check held (or `WARN`): run it.
    Run,
    /// A check did not hold with `MARK_RAN`: record it without running it.
    MarkRan,
}

/// Checks `migration`'s preconditions, if it has any, on the runner's
/// connection.
pub(crate) async fn check(
    env: &Env<'_>,
    runner: &Runner<'_>,
    migration: &Migration,
) -> Result<Decision> {
    let Some(preconditions) = &migration.up.directives.liquibase_preconditions else {
        return Ok(Decision::Run);
    };
    for Failing {
        check,
        action,
        got,
        error,
    } in failing(runner.db, preconditions).await
    {
        env.events.emit(&Event::PreconditionFailed {
            namespace: runner.namespace.to_string(),
            version: migration.version.to_string(),
            name: migration.name.clone(),
            line: check.line,
            sql: crate::db::scrub(&check.sql),
            expected: check.expected.clone(),
            got: got.clone(),
            error: error.clone(),
            action,
            message: preconditions.message.clone(),
        });
        match action {
            OnFail::Warn => continue,
            OnFail::MarkRan => return Ok(Decision::MarkRan),
            OnFail::Halt => {
                return Err(halted(runner, migration, preconditions, check, got, error));
            }
        }
    }
    Ok(Decision::Run)
}

/// A check that does not hold (`got`), or could not be checked (`error`),
/// and what its changeset says to do then.
pub(crate) struct Failing<'a> {
    /// The check.
    pub check: &'a SqlCheck,
    /// `onFail`, or `onError`.
    pub action: OnFail,
    /// What it returned.
    pub got: Option<String>,
    /// Why it could not be checked.
    pub error: Option<String>,
}

/// The checks of `preconditions` that do not hold on `db`, in order, up to
/// the first whose action is not `WARN` (the checks after it do not matter).
pub(crate) async fn failing<'a>(db: &Db, preconditions: &'a Preconditions) -> Vec<Failing<'a>> {
    let mut out = Vec::new();
    for check in &preconditions.checks {
        let (action, got, error) = match ask(db, check).await {
            Ok(value) if value == check.expected => continue,
            Ok(value) => (preconditions.on_fail, Some(value), None),
            Err(why) => (preconditions.on_error, None, Some(why)),
        };
        out.push(Failing {
            check,
            action,
            got,
            error,
        });
        if action != OnFail::Warn {
            break;
        }
    }
    out
}

/// The check's one value as text (`null` for NULL), or why there is none.
/// It runs in a read-only transaction rolled back after: a check looks, it
/// never changes anything, whatever its SQL tries.
async fn ask(db: &Db, check: &SqlCheck) -> std::result::Result<String, String> {
    let failed = |err: tokio_postgres::Error| {
        crate::db::scrub(&match err.as_db_error() {
            Some(server) => format!("ERROR {}: {}", server.code().code(), server.message()),
            None => crate::db::connect::error_chain(&err),
        })
    };
    db.client
        .batch_execute("BEGIN READ ONLY")
        .await
        .map_err(failed)?;
    let asked = db.client.simple_query(&check.sql).await;
    let ended = db.client.batch_execute("ROLLBACK").await;
    let messages = asked.map_err(failed)?;
    ended.map_err(failed)?;
    let rows: Vec<&tokio_postgres::SimpleQueryRow> = messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .collect();
    match rows.as_slice() {
        [] => Err("it returned no row".into()),
        [row] if row.len() == 1 => Ok(row.get(0).unwrap_or("null").to_string()),
        [row] => Err(format!("it returned {} columns, not one", row.len())),
        _ => Err(format!("it returned {} rows, not one", rows.len())),
    }
}

fn halted(
    runner: &Runner<'_>,
    migration: &Migration,
    preconditions: &Preconditions,
    check: &SqlCheck,
    got: Option<String>,
    error: Option<String>,
) -> Error {
    let what = match (&got, &error) {
        (Some(got), _) => format!("returned `{got}`, expected `{}`", check.expected),
        (_, Some(error)) => format!("could not be checked: {error} (onError:HALT)"),
        _ => String::new(),
    };
    let hint = if error.is_some() {
        "onError:HALT stops here, as Liquibase does; the migrations before it in this run are applied. Fix the check's SQL (it must return one row of one value), or say what to do when it cannot run (onError:MARK_RAN, onError:WARN)"
    } else {
        "onFail:HALT stops here, as Liquibase does; the migrations before it in this run are applied. Make the database what the precondition expects, or change the precondition (onFail:MARK_RAN records the changeset as applied without running it)"
    };
    let said = preconditions
        .message
        .as_ref()
        .map(|m| format!(" ({m})"))
        .unwrap_or_default();
    Error::Migration {
        reason: ReasonCode::migration(
            Code::PreconditionFailed,
            runner.namespace,
            &migration.version,
        ),
        message: format!(
            "{} {} did not run: its Liquibase precondition{said} at {}:{} does not hold: `{}` {what}",
            migration.version,
            migration.name,
            migration.up.path.display(),
            check.line,
            crate::db::scrub(&check.sql),
        ),
        hint: Some(hint.into()),
        source: None,
    }
}

/// Rolls back a changeset recorded by [`mark_ran`]: it never ran here, and
/// its down script would undo what it did not do (drop the schema its
/// precondition found already there), so only its row goes, audited.
pub(crate) async fn forget_marked_ran(
    env: &Env<'_>,
    runner: &Runner<'_>,
    history: &History,
    migration: &Migration,
    recorded: &str,
) -> Result<()> {
    let db = runner.db;
    in_transaction(db, "remove a history row", async {
        history.forget(db, runner.namespace, recorded).await?;
        history
            .audit(
                db,
                &AuditEntry {
                    namespace: runner.namespace,
                    version: recorded,
                    action: "rollback-mark-ran",
                    reason: "rolled back a changeset recorded without running (MARK_RAN): its down script was not run",
                    detail: None,
                    performed_by: runner.applied_by,
                },
            )
            .await
    })
    .await?;
    env.events.emit(&Event::MarkedRanForgotten {
        namespace: runner.namespace.to_string(),
        version: migration.version.to_string(),
        name: migration.name.clone(),
    });
    Ok(())
}

/// Records `migration` as applied without running it (`onFail:MARK_RAN`,
/// Liquibase's `MARK_RAN`), with an audit row, in one transaction. A
/// changed runOnChange changeset keeps its row, with the new checksum.
pub(crate) async fn mark_ran(
    env: &Env<'_>,
    runner: &Runner<'_>,
    history: &History,
    migration: &Migration,
) -> Result<()> {
    let db = runner.db;
    let namespace = runner.namespace;
    let version = migration.version.as_str();
    let down = migration.down.as_ref().map(|d| d.checksum.as_str());
    in_transaction(db, "record a changeset as ran", async {
        if migration.rerun_of.is_some() {
            history
                .set_checksum(db, namespace, version, &migration.up.checksum, down)
                .await?;
        } else {
            history
                .insert_stamped(
                    db,
                    &StampRow {
                        namespace,
                        version,
                        name: &migration.name,
                        checksum: &migration.up.checksum,
                        down_checksum: down,
                        applied_by: runner.applied_by,
                    },
                )
                .await?;
        }
        history
            .audit(
                db,
                &AuditEntry {
                    namespace,
                    version,
                    action: "mark-ran",
                    reason: "its Liquibase precondition did not hold (onFail:MARK_RAN): recorded as applied without running",
                    detail: None,
                    performed_by: runner.applied_by,
                },
            )
            .await
    })
    .await?;
    env.events.emit(&Event::MarkedRan {
        namespace: namespace.to_string(),
        version: version.to_string(),
        name: migration.name.clone(),
    });
    Ok(())
}

/// Runs `work` in one transaction: committed when it succeeds, rolled back
/// when it fails (a history row and its audit row land together or not).
async fn in_transaction(
    db: &Db,
    doing: &str,
    work: impl std::future::Future<Output = Result<()>>,
) -> Result<()> {
    db.client
        .batch_execute("BEGIN")
        .await
        .map_err(|e| database_error(db, doing, &e))?;
    let done = async {
        work.await?;
        db.client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| database_error(db, doing, &e))
    }
    .await;
    if done.is_err() {
        let _ = db.client.batch_execute("ROLLBACK").await;
    }
    done
}

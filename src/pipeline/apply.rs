//! `apply`: run the pending migrations of a namespace, each exactly once.
//!
//! Nothing pending is the common case in deploy pipelines, so it is decided
//! from one history read without taking the lock. Otherwise the lock is
//! taken, the history read again (another runner may have applied things
//! meanwhile) and the selection recomputed from that fresh state.

use serde::Serialize;
use std::time::Instant;

use super::{Env, RunnerParts, Target, millis};
use crate::db::Db;
use crate::db::execute::{Runner, check_script};
use crate::db::history::History;
use crate::error::Result;
use crate::events::{Direction, Event};
use crate::plan::Tolerance;
use crate::source::{Migration, Version};

/// What `apply` may do.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Only the first N pending migrations.
    pub steps: Option<usize>,
    /// Only up to and including this version.
    pub to: Option<Version>,
    /// What problems to tolerate.
    pub tolerance: Tolerance,
    /// Go on although preflight fails (recorded in its report).
    pub force: bool,
    /// Do not back up first.
    pub skip_backup: bool,
    /// Do not run the postflight checks (the schema is still recorded).
    pub skip_postflight: bool,
    /// Postflight checks every foreign key for orphans.
    pub deep: bool,
    /// Risky statements run in their online form (SPEC 15).
    pub online: bool,
}

/// One migration that ran.
#[derive(Debug, Clone, Serialize)]
pub struct Ran {
    /// Version.
    pub version: String,
    /// Name.
    pub name: String,
    /// Wall time of the script and its history write.
    pub duration_ms: u64,
    /// Ran outside a transaction.
    pub no_transaction: bool,
    /// Not run: recorded as applied because its Liquibase precondition did
    /// not hold (`onFail:MARK_RAN`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub marked_ran: bool,
}

impl Ran {
    /// `migration`, recorded (or its record removed) without running: its
    /// Liquibase precondition said `MARK_RAN`.
    pub(crate) fn marked(migration: &Migration) -> Ran {
        Ran {
            version: migration.version.to_string(),
            name: migration.name.clone(),
            duration_ms: 0,
            no_transaction: false,
            marked_ran: true,
        }
    }
}

/// The outcome of `apply` or `rollback` in one namespace.
#[derive(Debug, Clone, Serialize)]
pub struct NamespaceRun {
    /// Namespace.
    pub namespace: String,
    /// What ran, in order.
    pub ran: Vec<Ran>,
    /// Total wall time.
    pub duration_ms: u64,
}

/// The result of a run that found nothing to do, with its event.
pub fn nothing_to_do(env: &Env<'_>, namespace: &str, started: Instant) -> NamespaceRun {
    env.events.emit(&Event::UpToDate {
        namespace: namespace.to_string(),
    });
    NamespaceRun {
        namespace: namespace.to_string(),
        ran: Vec::new(),
        duration_ms: millis(started.elapsed()),
    }
}

/// Checks every selected script before the first one runs, so a bad file
/// late in the plan does not stop the run half way.
pub fn check_scripts<'m>(
    namespace: &str,
    migrations: impl IntoIterator<Item = (&'m Migration, Direction)>,
) -> Result<()> {
    let migrations: Vec<(&Migration, Direction)> = migrations.into_iter().collect();
    // Every placeholder without a value of every file, in one go.
    crate::db::execute::check_placeholders_of(
        namespace,
        migrations
            .iter()
            .filter_map(|(migration, direction)| match direction {
                Direction::Up => Some((*migration, &migration.up)),
                Direction::Down => migration.down.as_ref().map(|d| (*migration, d)),
            }),
    )?;
    for (migration, direction) in migrations {
        let script = match direction {
            Direction::Up => Some(&migration.up),
            Direction::Down => migration.down.as_ref(),
        };
        if let Some(script) = script {
            check_script(namespace, migration, script)?;
        }
        if direction == Direction::Up && migration.up.directives.backfill.is_some() {
            crate::online::backfill::compile(&migration.up).map_err(|why| {
                crate::error::Error::Config {
                    reason: crate::error::ReasonCode::migration(
                        crate::error::Code::BackfillRefused,
                        namespace,
                        &migration.version,
                    ),
                    message: format!(
                        "{}: `-- migsafe:backfill` cannot batch this script: {why}",
                        migration.up.path.display()
                    ),
                    hint: Some("a backfill migration holds one `UPDATE … SET … [WHERE …]` and nothing else".into()),
                    source: None,
                }
            })?;
        }
    }
    Ok(())
}

/// Runs `selected` (pending migrations of one namespace, in order) on `db`,
/// which must hold the namespace lock.
pub(crate) async fn run_selected(
    env: &Env<'_>,
    target: &Target<'_>,
    db: &Db,
    selected: &[&Migration],
    online: bool,
) -> Result<NamespaceRun> {
    let started = Instant::now();
    let namespace = target.name();
    if selected.is_empty() {
        return Ok(nothing_to_do(env, namespace, started));
    }
    let history = History::new(&env.config.history_schema);
    env.events.emit(&Event::Plan {
        namespace: namespace.to_string(),
        direction: Direction::Up,
        versions: selected.iter().map(|m| m.version.to_string()).collect(),
    });
    if selected.iter().any(|m| m.version.is_repeatable()) {
        crate::db::repeatables::Repeatables::of(&history)
            .ensure(db)
            .await?;
    }
    let parts = RunnerParts::load(env, db, &history).await?;
    let runner = parts.runner(env, target, db, &history);
    // Interrupted online migrations and backfills resume in their online
    // form whatever this run asks.
    let interrupted = crate::online::progress::ProgressTable::of(&history)
        .versions(db, &history, namespace)
        .await?;
    let mut ran = Vec::with_capacity(selected.len());
    for migration in selected {
        // Not while a standby is far behind (SPEC 17): once some migrations
        // of this run have landed, giving up is this run failing (exit 2).
        // (The runner's watch does not ask again for a while after seeing
        // no standby: many small migrations, one question a second.)
        let waited = runner
            .replicas
            .before(
                crate::db::replicas::Step::Migration,
                db,
                env.events,
                env.interrupt,
            )
            .await;
        if let Err(err) = waited {
            return Err(if ran.is_empty() {
                err
            } else {
                err.after_work_landed(&format!(
                    "{} migration(s) of this run applied before it",
                    ran.len()
                ))
            });
        }
        // Liquibase preconditions, just before their changeset.
        let decided = match super::preconditions::check(env, &runner, migration).await {
            Ok(super::preconditions::Decision::MarkRan) => {
                super::preconditions::mark_ran(env, &runner, &history, migration)
                    .await
                    .map(|()| super::preconditions::Decision::MarkRan)
            }
            other => other,
        };
        match decided {
            Ok(super::preconditions::Decision::Run) => {}
            Ok(super::preconditions::Decision::MarkRan) => {
                ran.push(Ran::marked(migration));
                continue;
            }
            Err(err) if ran.is_empty() => return Err(err),
            Err(err) => {
                return Err(err.after_work_landed(&format!(
                    "{} migration(s) of this run applied before it",
                    ran.len()
                )));
            }
        }
        let resumes = interrupted.iter().any(|v| v == migration.version.as_str());
        let how = How::of(env, migration, online || resumes);
        ran.push(
            run_one_as(
                env,
                &runner,
                migration,
                Direction::Up,
                migration.version.as_str(),
                &how,
            )
            .await?,
        );
    }
    Ok(NamespaceRun {
        namespace: namespace.to_string(),
        ran,
        duration_ms: millis(started.elapsed()),
    })
}

/// How an up script runs: as written, in its online steps, or as a backfill.
pub(crate) enum How {
    /// As written (a down script always).
    Written,
    /// In its online steps (SPEC 15).
    Online(crate::online::OnlinePlan),
    /// In primary-key batches of this target time (SPEC 16).
    Backfill(std::time::Duration),
}

impl How {
    /// How `migration`'s up script runs; `online` when asked for by the run.
    pub(crate) fn of(env: &Env<'_>, migration: &Migration, online: bool) -> How {
        // A repeatable or a changed runOnChange changeset reruns as a
        // whole: no online steps, no batches.
        if migration.version.is_repeatable() || migration.rerun_of.is_some() {
            return How::Written;
        }
        if let Some(backfill) = &migration.up.directives.backfill {
            return How::Backfill(
                backfill
                    .batch_time
                    .unwrap_or(env.config.defaults.batch_time),
            );
        }
        if crate::online::requested(online, env.config, migration)
            && let Some(plan) = crate::online::plan(&migration.up)
        {
            return How::Online(plan);
        }
        How::Written
    }
}

/// What the server said while `migration` ran, as events (secrets masked);
/// false when it said nothing since the last call.
fn emit_notices(env: &Env<'_>, runner: &Runner<'_>, migration: &Migration) -> bool {
    let (notices, dropped) = runner.db.take_notices();
    let said = dropped > 0 || !notices.is_empty();
    let scrub = |text: Option<String>| text.map(|t| crate::db::scrub(&t));
    if dropped > 0 {
        env.events.emit(&Event::ServerNoticesDropped {
            namespace: runner.namespace.to_string(),
            version: migration.version.to_string(),
            count: dropped,
        });
    }
    for notice in notices {
        env.events.emit(&Event::ServerNotice {
            namespace: runner.namespace.to_string(),
            version: migration.version.to_string(),
            severity: notice.severity,
            message: crate::db::scrub(&notice.message),
            detail: scrub(notice.detail),
            hint: scrub(notice.hint),
        });
    }
    said
}

/// Runs `work` (a script of `migration`), emitting what the server says
/// while it runs: a long backfill that reports with `RAISE NOTICE` is heard
/// as it goes. At most one batch a second after the first, of at most the
/// last 200: a notice per row is then a count of those not kept, not a
/// line per row.
async fn with_live_notices<T>(
    env: &Env<'_>,
    runner: &Runner<'_>,
    migration: &Migration,
    work: impl std::future::Future<Output = T>,
) -> T {
    let pause = std::time::Duration::from_secs(1);
    let mut work = std::pin::pin!(work);
    loop {
        let said = tokio::select! {
            biased;
            out = &mut work => return out,
            () = runner.db.notice_arrived() => emit_notices(env, runner, migration),
        };
        // A wake-up left from notices already taken: no pause.
        if !said {
            continue;
        }
        tokio::select! {
            biased;
            out = &mut work => return out,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// Runs one script with its start / finish / failure events.
pub(crate) async fn run_one(
    env: &Env<'_>,
    runner: &Runner<'_>,
    migration: &Migration,
    direction: Direction,
    recorded: &str,
) -> Result<Ran> {
    run_one_as(env, runner, migration, direction, recorded, &How::Written).await
}

/// [`run_one`], the up script run as `how` says.
pub(crate) async fn run_one_as(
    env: &Env<'_>,
    runner: &Runner<'_>,
    migration: &Migration,
    direction: Direction,
    recorded: &str,
    how: &How,
) -> Result<Ran> {
    let script = match direction {
        Direction::Up => Some(&migration.up),
        Direction::Down => migration.down.as_ref(),
    };
    let no_transaction = script.is_some_and(|s| s.no_transaction()) || !matches!(how, How::Written);
    // What the server said before (history checks) is not this script's.
    runner.db.take_notices();
    env.events.emit(&Event::MigrationStarted {
        namespace: runner.namespace.to_string(),
        version: migration.version.to_string(),
        name: migration.name.clone(),
        direction,
        transactional: !no_transaction,
        reruns: direction == Direction::Up && migration.rerun_of.is_some(),
    });
    let started = Instant::now();
    let work = async {
        match (how, direction) {
            (How::Online(plan), Direction::Up) => {
                crate::online::run::run(runner, migration, plan).await
            }
            (How::Backfill(batch_time), Direction::Up) => {
                crate::online::backfill::run(runner, migration, *batch_time).await
            }
            _ => runner.run(migration, direction, recorded).await,
        }
    };
    let result = with_live_notices(env, runner, migration, work).await;
    let _ = emit_notices(env, runner, migration);
    match result {
        Ok(duration) => {
            env.events.emit(&Event::MigrationFinished {
                namespace: runner.namespace.to_string(),
                version: migration.version.to_string(),
                name: migration.name.clone(),
                direction,
                duration_ms: millis(duration),
            });
            Ok(Ran {
                version: migration.version.to_string(),
                name: migration.name.clone(),
                duration_ms: millis(duration),
                no_transaction,
                marked_ran: false,
            })
        }
        Err(err) => {
            env.events.emit(&Event::MigrationFailed {
                namespace: runner.namespace.to_string(),
                version: migration.version.to_string(),
                name: migration.name.clone(),
                direction,
                reason: err.reason().to_string(),
                message: err.to_string(),
                duration_ms: millis(started.elapsed()),
            });
            Err(err)
        }
    }
}

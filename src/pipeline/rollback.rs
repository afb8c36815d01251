//! `rollback`: run down scripts, newest first, under the namespace lock.
//!
//! Every migration to undo is checked before the first down script runs
//! (forward-only namespace, missing down file, unreadable script), so a
//! rollback is refused as a whole rather than stopping half way.

use std::time::Instant;

use super::apply::{NamespaceRun, check_scripts, nothing_to_do, run_one};
use super::{Env, RunnerParts, Target, millis, record_schema, with_namespace_lock};
use crate::db::history::History;
use crate::error::{Error, Result};
use crate::events::{Direction, Event};
use crate::plan::Tolerance;
use crate::source::Version;

/// What `rollback` may do.
#[derive(Debug, Clone, Default)]
pub struct RollbackOptions {
    /// How many applied migrations to undo (default 1).
    pub steps: Option<usize>,
    /// Undo every applied migration newer than this version.
    pub to: Option<Version>,
    /// Do not back up first.
    pub skip_backup: bool,
}

/// Rolls back one namespace.
pub async fn rollback(
    env: &Env<'_>,
    target: &Target<'_>,
    options: &RollbackOptions,
) -> Result<NamespaceRun> {
    rollback_into(env, target, options, &mut None).await
}

/// [`rollback`], leaving the schema diff before → after in `diff` when
/// report files are written (the run report shows it), also on a failure.
pub(crate) async fn rollback_into(
    env: &Env<'_>,
    target: &Target<'_>,
    options: &RollbackOptions,
    diff: &mut Option<crate::run_report::SchemaDiff>,
) -> Result<NamespaceRun> {
    let started = Instant::now();
    let namespace = target.name();
    let db = target.settings.connect().await?;
    let history = History::new(&env.config.history_schema);
    // Missing files of versions we do not touch are no reason to refuse.
    let tolerance = Tolerance {
        allow_out_of_order: true,
        ignore_missing: true,
        recover_dirty: false,
        recover: false,
        refuse_newer_applied: false,
    };
    let state = target.state(&db, &history).await?;
    state.check_can_move(&tolerance)?;
    let selected = state.select_down(options.steps, options.to.as_ref())?;
    if selected.is_empty() {
        return Ok(nothing_to_do(env, namespace, started));
    }
    check_scripts(
        namespace,
        selected.iter().map(|(_, m)| (*m, Direction::Down)),
    )?;

    let ran = with_namespace_lock(env, target, &db, &history, || async {
        let state = target.state(&db, &history).await?;
        state.check_can_move(&tolerance)?;
        let selected = state.select_down(options.steps, options.to.as_ref())?;
        env.events.emit(&Event::Plan {
            namespace: namespace.to_string(),
            direction: Direction::Down,
            versions: selected
                .iter()
                .map(|(e, _)| e.version.to_string())
                .collect(),
        });
        if !options.skip_backup {
            super::backup::create(env.config, target.settings, &db, env.events, env.interrupt)
                .await?;
        }
        let before = match env.log_dir {
            Some(_) => Some(crate::schema::read(&db, &env.config.history_schema).await?),
            None => None,
        };
        let mut compare = |after: &crate::schema::Snapshot| {
            if let Some(before) = &before {
                *diff = Some(crate::run_report::SchemaDiff {
                    database: target.settings.to_string(),
                    changes: crate::schema::diff(before, after),
                });
            }
        };
        let parts = RunnerParts::load(env, &db, &history).await?;
        let runner = parts.runner(env, target, &db, &history);
        let mut ran = Vec::with_capacity(selected.len());
        for (entry, migration) in selected {
            let recorded = entry
                .applied
                .as_ref()
                .map_or_else(|| migration.version.to_string(), |r| r.version.to_string());
            // Only a changeset with preconditions can have been marked as
            // ran: no extra round trip for every other down script.
            if migration.up.directives.liquibase_preconditions.is_some()
                && history.marked_ran(&db, namespace, &recorded).await?
            {
                super::preconditions::forget_marked_ran(
                    env, &runner, &history, migration, &recorded,
                )
                .await?;
                ran.push(super::apply::Ran::marked(migration));
                continue;
            }
            // A down script writes WAL as an up does: not while a standby
            // is far behind (SPEC 17), as apply waits. Once some down
            // scripts ran, giving up is this rollback failing (exit 4).
            if let Err(err) = runner
                .replicas
                .before(
                    crate::db::replicas::Step::Migration,
                    &db,
                    env.events,
                    env.interrupt,
                )
                .await
            {
                return Err(if ran.is_empty() {
                    err
                } else {
                    match err {
                        Error::Refused {
                            reason,
                            message,
                            hint,
                            source,
                        } => Error::Rollback {
                            reason,
                            message: format!(
                                "{message}; {} down script(s) of this rollback ran before it",
                                ran.len()
                            ),
                            hint,
                            source,
                        },
                        other => other,
                    }
                });
            }
            match run_one(env, &runner, migration, Direction::Down, &recorded).await {
                Ok(done) => ran.push(done),
                Err(err) => {
                    match record_schema(env, &db, &history, &[target]).await {
                        Ok(after) => compare(&after),
                        Err(record_err) => tracing::warn!(
                            "could not record the schema after the failure: {record_err}"
                        ),
                    }
                    return Err(err);
                }
            }
        }
        compare(&record_schema(env, &db, &history, &[target]).await?);
        Ok(ran)
    })
    .await?;
    Ok(NamespaceRun {
        namespace: namespace.to_string(),
        ran,
        duration_ms: millis(started.elapsed()),
    })
}

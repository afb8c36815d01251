//! The guarded apply of SPEC 12a: preflight → backup → migrate → postflight,
//! each phase with its report, over every selected namespace.
//!
//! Nothing pending is decided first, from one history read per namespace,
//! and costs no lock, no snapshot, no backup: deploy pipelines call `apply`
//! on every release. Phases that look at a database (preflight, backup,
//! postflight) run once per distinct database, not once per namespace.

use std::collections::BTreeMap;

use serde::Serialize;

use super::apply::{ApplyOptions, NamespaceRun, nothing_to_do, run_selected};
use super::backup::{self, BackupFile};
use super::postflight::{self, PostflightOptions};
use super::preflight::{self, Pending};
use super::recovery;
use super::{Env, Target, lock_namespace, record_schema, store_schema, unlock_namespace};
use crate::db::Db;
use crate::db::history::History;
use crate::error::{Error, Result};
use crate::events::Direction;
use crate::plan::NamespaceState;
use crate::report::{PhaseReport, Status};
use crate::schema;

/// A namespace with its open connection.
pub(crate) struct Opened<'a> {
    /// The namespace, files and settings.
    pub target: Target<'a>,
    /// Its connection, shared by the namespaces on the same database: one
    /// session holds each of their locks, and phases run one at a time.
    pub db: std::sync::Arc<Db>,
}

/// Everything `apply` did.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ApplyReport {
    /// Per namespace, what ran.
    pub namespaces: Vec<NamespaceRun>,
    /// Preflight reports (one per database).
    pub preflight: Vec<PhaseReport>,
    /// Backups written (one per database).
    pub backups: Vec<BackupFile>,
    /// Postflight reports (one per database).
    pub postflight: Vec<PhaseReport>,
    /// The schema before → after, per database, when report files are
    /// written (the run report shows it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub schema_changes: Vec<crate::run_report::SchemaDiff>,
}

/// Indexes of `opened` grouped by database, in first-seen order.
fn databases(opened: &[Opened<'_>]) -> Vec<Vec<usize>> {
    let mut order: Vec<String> = Vec::new();
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (index, item) in opened.iter().enumerate() {
        let key = item.target.settings.to_string();
        if !groups.contains_key(&key) {
            order.push(key.clone());
        }
        groups.entry(key).or_default().push(index);
    }
    order
        .into_iter()
        .filter_map(|k| groups.remove(&k))
        .collect()
}

/// Runs the whole guarded apply (the cutover's; the migrator fills its
/// report with [`apply_into`]).
#[cfg_attr(not(feature = "cutover-sqlite"), allow(dead_code))]
pub(crate) async fn apply(
    env: &Env<'_>,
    opened: &[Opened<'_>],
    options: &ApplyOptions,
) -> Result<ApplyReport> {
    let mut report = ApplyReport::default();
    apply_into(env, opened, options, &mut report)
        .await
        .map(|()| report)
}

/// [`apply`], filling `report` as it goes: on a failure it holds what was
/// done until then (the run report shows it).
pub(crate) async fn apply_into(
    env: &Env<'_>,
    opened: &[Opened<'_>],
    options: &ApplyOptions,
    report: &mut ApplyReport,
) -> Result<()> {
    let history = History::new(&env.config.history_schema);
    let options = &ApplyOptions {
        tolerance: options
            .tolerance
            .clone()
            .with_defaults(&env.config.defaults),
        ..options.clone()
    };
    // Without a lock: refusals and the nothing-pending case.
    let mut anything = false;
    for item in opened {
        let state = item.target.state(&item.db, &history).await?;
        state.check_can_move(&options.tolerance)?;
        // A previous release starting again during a rolling deploy.
        if let Some(note) = state.newer_applied_note() {
            env.events.emit(&note);
        }
        let selected = state.select_up(options.steps, options.to.as_ref())?;
        super::apply::check_scripts(
            item.target.name(),
            selected.iter().map(|m| (*m, Direction::Up)),
        )?;
        anything |= !selected.is_empty()
            || (options.tolerance.recover_dirty && state.recoverable().next().is_some());
    }
    if !anything {
        for item in opened {
            report.namespaces.push(nothing_to_do(
                env,
                item.target.name(),
                std::time::Instant::now(),
            ));
        }
        return Ok(());
    }
    // The whole apply holds every namespace lock, taken in config order.
    let mut keys = Vec::with_capacity(opened.len());
    for item in opened {
        match lock_namespace(env, &item.target, &item.db, &history).await {
            Ok(key) => keys.push(key),
            Err(err) => {
                release(opened, &keys).await;
                return Err(err);
            }
        }
    }
    let result = locked(env, &history, opened, options, report).await;
    release(opened, &keys).await;
    result
}

async fn release(opened: &[Opened<'_>], keys: &[i64]) {
    for (item, key) in opened.iter().zip(keys) {
        unlock_namespace(&item.db, *key).await;
    }
}

/// The part of apply that runs under the locks: preflight, the verified
/// backup, recovery of interrupted migrations, the migrations, postflight.
async fn locked(
    env: &Env<'_>,
    history: &History,
    opened: &[Opened<'_>],
    options: &ApplyOptions,
    report: &mut ApplyReport,
) -> Result<()> {
    // Another runner may have applied everything while we waited.
    let mut states = Vec::with_capacity(opened.len());
    let mut assessments = Vec::with_capacity(opened.len());
    for item in opened {
        let state = item.target.state(&item.db, history).await?;
        state.check_can_move(&options.tolerance)?;
        assessments.push(if options.tolerance.recover_dirty {
            recovery::assess(&item.db, history, &state).await?
        } else {
            Vec::new()
        });
        states.push(state);
    }
    let mut selected = Vec::with_capacity(states.len());
    for state in &states {
        selected.push(state.select_up(options.steps, options.to.as_ref())?);
    }
    let mut scopes = Vec::with_capacity(opened.len());
    for item in opened {
        scopes.push(item.target.scope().on(&item.db).await?);
    }
    if selected.iter().all(Vec::is_empty) && assessments.iter().all(Vec::is_empty) {
        for item in opened {
            report.namespaces.push(nothing_to_do(
                env,
                item.target.name(),
                std::time::Instant::now(),
            ));
        }
        return Ok(());
    }
    let groups = databases(opened);
    // The schema before, for the run report's diff: the one each
    // database's preflight read.
    let mut before = Vec::with_capacity(groups.len());
    let backup_dir = (!options.skip_backup).then_some(env.config.backup.dir.as_path());
    for group in &groups {
        let first = &opened[group[0]];
        let pending: Vec<Pending<'_>> = group
            .iter()
            .map(|&i| {
                Pending::new(
                    &states[i],
                    selected[i].clone(),
                    assessments[i].clone(),
                    scopes[i].clone(),
                )
                .online(options.online)
            })
            .collect();
        let mut phase = preflight::preflight(
            env.config,
            first.target.settings,
            &first.db,
            &pending,
            &options.tolerance,
            backup_dir,
        )
        .await?;
        let failed = phase.result == Status::Fail;
        // --force skips preflight's other failures, never this one: only
        // --recover lets a down script destroy rows written since.
        let recovery_refused = if options.tolerance.recover {
            None
        } else {
            group
                .iter()
                .flat_map(|&i| &assessments[i])
                .find_map(recovery::Assessment::refusal)
        };
        // A preflight that could not read the schema (a table held ACCESS
        // EXCLUSIVE), or a standby that is expected and missing (refused
        // again before each migration): no --force.
        let unforceable = phase.unforceable.is_some();
        phase.forced = failed && options.force && recovery_refused.is_none() && !unforceable;
        phase.write_and_announce(env.log_dir, env.config.logs.keep, env.events)?;
        before.push(phase.live_schema.take().unwrap_or_default());
        report.preflight.push(phase.clone());
        if let Some(refusal) = recovery_refused {
            return Err(refusal);
        }
        if failed && (!options.force || unforceable) {
            return Err(preflight::failed(&phase));
        }
    }
    // ...and only with a backup of the rows it destroys.
    for assessment in assessments.iter().flatten() {
        if assessment.refusal().is_some() && options.skip_backup {
            return Err(Error::Refused {
                reason: assessment.reason(),
                message: format!(
                    "recovering without a backup (--skip-backup, or a library Migrator without with_backups) would destroy rows written after {} {} was interrupted without a copy of them; nothing was changed",
                    assessment.version, assessment.name
                ),
                hint: Some("run `migsafe apply --recover` without --skip-backup (in a service: `Migrator::with_backups(true)`)".into()),
             source: None, });
        }
    }
    // Writes go on while the backup is taken: mark its start, so recovery can
    // refuse when rows it would destroy may be missing from the backup.
    let mut marks = vec![None; opened.len()];
    for (i, assessed) in assessments.iter().enumerate() {
        if !assessed.is_empty() {
            marks[i] = Some(recovery::backup_mark(&opened[i].db).await?);
        }
    }
    if !options.skip_backup {
        for group in &groups {
            let first = &opened[group[0]];
            report.backups.push(
                backup::create(
                    env.config,
                    first.target.settings,
                    &first.db,
                    env.events,
                    env.interrupt,
                )
                .await?,
            );
        }
    }
    let mut recovered_any = false;
    if options.tolerance.recover_dirty {
        for (item, mark) in opened.iter().zip(&marks) {
            if let Some(mark) = mark {
                let state = item.target.state(&item.db, history).await?;
                recovery::recheck(&item.db, history, &state, mark, options.tolerance.recover)
                    .await?;
                recovered_any |= !recovery::recover(env, history, item, !options.skip_backup)
                    .await?
                    .is_empty();
            }
        }
    }
    // The recovered migrations are pending again: select from fresh states.
    let fresh: Vec<NamespaceState>;
    let selected = if recovered_any {
        let mut read = Vec::with_capacity(opened.len());
        for item in opened {
            read.push(item.target.state(&item.db, history).await?);
        }
        fresh = read;
        let mut again = Vec::with_capacity(fresh.len());
        for state in &fresh {
            again.push(state.select_up(options.steps, options.to.as_ref())?);
        }
        again
    } else {
        selected
    };
    let mut failure = None;
    for (item, chosen) in opened.iter().zip(&selected) {
        match run_selected(env, &item.target, &item.db, chosen, options.online).await {
            Ok(run) => report.namespaces.push(run),
            Err(err) => {
                failure = Some(err);
                break;
            }
        }
    }
    // Whatever happened, record the schema as it now is, so the next
    // preflight compares against the truth and not a stale snapshot.
    let mut postflight_error: Option<Error> = None;
    for (index, group) in groups.iter().enumerate() {
        let first = &opened[group[0]];
        let runs: Vec<NamespaceRun> = report
            .namespaces
            .iter()
            .filter(|run| {
                group
                    .iter()
                    .any(|&i| opened[i].target.name() == run.namespace)
            })
            .cloned()
            .collect();
        if failure.is_some() {
            // Best effort, on a fresh connection (the old one may be what
            // broke); never hides the failure itself.
            match record_fresh(env, history, opened, group).await {
                Ok(after) => {
                    if let Some(before) = before.get(index) {
                        report.schema_changes.push(crate::run_report::SchemaDiff {
                            database: first.target.settings.to_string(),
                            changes: schema::diff(before, &after),
                        });
                    }
                }
                Err(err) => {
                    tracing::warn!("could not record the schema after the failure: {err}");
                }
            }
            continue;
        }
        if options.skip_postflight {
            // No snapshot (its cost is the point of --no-postflight): mark the
            // recorded one unknown rather than leave a stale one to compare with.
            for &i in group {
                history
                    .forget_schema(&first.db, opened[i].target.name())
                    .await?;
            }
            continue;
        }
        let snapshot = {
            let (mut phase, snapshot) = postflight::postflight(
                env.config,
                first.target.settings,
                &first.db,
                &runs,
                &PostflightOptions { deep: options.deep },
            )
            .await?;
            for &i in group {
                let target = &opened[i].target;
                phase.namespace_checksums.insert(
                    target.name().to_string(),
                    scopes[i].apply(&snapshot).checksum(),
                );
            }
            phase.write_and_announce(env.log_dir, env.config.logs.keep, env.events)?;
            if phase.result == Status::Fail && postflight_error.is_none() {
                postflight_error = Some(postflight::failed(&phase));
            }
            report.postflight.push(phase);
            snapshot
        };
        if let Some(before) = before.get(index) {
            report.schema_changes.push(crate::run_report::SchemaDiff {
                database: first.target.settings.to_string(),
                changes: schema::diff(before, &snapshot),
            });
        }
        record(history, opened, group, &snapshot).await?;
    }
    match failure.or(postflight_error) {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

async fn record_fresh(
    env: &Env<'_>,
    history: &History,
    opened: &[Opened<'_>],
    group: &[usize],
) -> Result<schema::Snapshot> {
    let db = opened[group[0]].target.settings.connect().await?;
    let targets: Vec<&Target<'_>> = group.iter().map(|&i| &opened[i].target).collect();
    record_schema(env, &db, history, &targets).await
}

/// Stores the snapshot for every namespace of a database.
async fn record(
    history: &History,
    opened: &[Opened<'_>],
    group: &[usize],
    snapshot: &schema::Snapshot,
) -> Result<()> {
    for &i in group {
        let item = &opened[i];
        store_schema(&item.db, history, &[&item.target], snapshot).await?;
    }
    Ok(())
}

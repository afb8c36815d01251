//! Preflight (SPEC 5): read-only checks before anything changes, each a
//! pass / warn / fail with a reason code, written as
//! `logs/preflight-report-<timestamp>.json`.
//!
//! Integrity problems (dirty, edited, missing, out of order) are reported
//! here and also refused by `apply` itself; `--force` overrides the other
//! failures (drift, blocking sessions, backup space), never those.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::Utc;

use crate::config::{Config, format_duration};
use crate::db::activity::{self, Session};
use crate::db::catalog;
use crate::db::history::History;
use crate::db::{ConnectionSettings, Db};
use crate::error::{Code, Error, ReasonCode, Result};
use crate::pipeline::recovery::Assessment;
use crate::plan::{NamespaceState, State, Tolerance};
use crate::report::{Check, PhaseReport};
use crate::schema::{self, Scope, Snapshot};
use crate::source::Migration;

const PREFLIGHT_LOCK_TIMEOUT: &str = "SET lock_timeout = '10s'";
/// How long a running statement holding ACCESS EXCLUSIVE is waited for.
const PREFLIGHT_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// One namespace as preflight sees it: its state and what would run.
pub struct Pending<'a> {
    /// Files + history.
    pub state: &'a NamespaceState,
    /// The migrations apply would run.
    pub selected: Vec<&'a Migration>,
    /// What recovering its dirty migrations would destroy.
    pub recovery: Vec<Assessment>,
    /// The schemas it answers for (drift).
    pub scope: Scope,
    /// The run is `--online`: statements with an online form are not lint findings.
    pub online: bool,
}

impl<'a> Pending<'a> {
    /// A namespace with what would run and what recovery would destroy.
    pub fn new(
        state: &'a NamespaceState,
        selected: Vec<&'a Migration>,
        recovery: Vec<Assessment>,
        scope: Scope,
    ) -> Self {
        Pending {
            state,
            selected,
            recovery,
            scope,
            online: false,
        }
    }

    /// The same, for an `--online` run (SPEC 15).
    pub fn online(mut self, online: bool) -> Self {
        self.online = online;
        self
    }

    /// What preflight lints: the selected migrations and, first, the dirty
    /// ones recovery applies again.
    fn to_lint(&self) -> Vec<&'a Migration> {
        let mut out: Vec<&'a Migration> = Vec::new();
        for assessed in &self.recovery {
            if let Some(m) = self
                .state
                .entries
                .iter()
                .find(|e| e.version.as_str() == assessed.version)
                .and_then(|e| e.migration.as_ref())
            {
                out.push(m);
            }
        }
        out.extend(self.selected.iter().copied());
        out
    }
}

/// Runs every preflight check for the namespaces on one database.
pub(crate) async fn preflight(
    config: &Config,
    settings: &ConnectionSettings,
    db: &Db,
    namespaces: &[Pending<'_>],
    tolerance: &Tolerance,
    backup_dir: Option<&Path>,
) -> Result<PhaseReport> {
    let started = Utc::now();
    let history = History::new(&config.history_schema);
    let relations = touched_relations(namespaces);
    // Preflight only reads, but reading a relation's size or definition
    // queues behind another session's ACCESS EXCLUSIVE lock: give up
    // instead of hanging (the runner sets its own timeouts afterwards).
    db.client
        .batch_execute(PREFLIGHT_LOCK_TIMEOUT)
        .await
        .map_err(|e| crate::db::history::database_error(db, "prepare the preflight session", &e))?;
    let first = Phase {
        config,
        settings,
        db,
        namespaces,
        tolerance,
        backup_dir,
        started,
    };
    if let Some(report) = blocked_report(&first, Some(&relations)).await? {
        return Ok(report);
    }
    let recorded_all = async {
        let mut out = Vec::with_capacity(namespaces.len());
        for pending in namespaces {
            out.push(history.recorded_schema(db, &pending.state.namespace).await);
        }
        out
    };
    let (version, recorded, live, long, holders, waiters, size, sizes, existing) = tokio::join!(
        catalog::server_version(db),
        recorded_all,
        schema::read(db, &config.history_schema),
        activity::long_transactions(db, config.defaults.long_transaction),
        activity::lock_holders(db, &relations),
        activity::lock_waiters(db),
        catalog::database_size(db),
        catalog::table_sizes(db),
        catalog::relation_names(db),
    );
    let live = match live {
        Err(err) if is_lock_timeout(&err) => {
            // A lock on a table the migrations do not touch, which the
            // schema read waited for (or one taken since): said the same way.
            if let Some(report) = blocked_report(&first, None).await? {
                return Ok(report);
            }
            Err(err)
        }
        other => other,
    };
    let (version, version_num) = version?;
    let mut checks = first_checks(
        &version, settings, namespaces, tolerance, config, backup_dir,
    );
    // Online migrations and backfills interrupted part-way: apply resumes
    // them in their online form, and the schema holds their committed steps.
    let progress = crate::online::progress::ProgressTable::of(&history);
    let mut resuming = Vec::with_capacity(namespaces.len());
    for pending in namespaces {
        resuming.push(
            progress
                .versions(db, &history, &pending.state.namespace)
                .await?,
        );
    }
    checks.extend(lint_checks(
        namespaces,
        &resuming,
        config,
        sizes?,
        existing?,
        version_num,
    ));
    let live = live?;
    for ((pending, recorded), resuming) in namespaces.iter().zip(recorded).zip(&resuming) {
        let mut dirty: Vec<String> = pending
            .state
            .in_state(crate::plan::State::Dirty)
            .map(|e| e.version.to_string())
            .collect();
        let online_only = dirty.is_empty() && !resuming.is_empty();
        dirty.extend(resuming.iter().cloned());
        let mut check = drift_check(
            recorded?,
            &live,
            &pending.scope,
            &pending.state.namespace,
            &dirty,
        );
        if online_only && check.status == crate::report::Status::Warn {
            check.detail = check.detail.replacen(
                "recovery rolls that back with the down script, or `migsafe repair` records what you decide",
                "apply resumes it at the step it stopped in (docs/online.md)",
                1,
            );
        }
        checks.push(check);
    }

    let session_error = |e: tokio_postgres::Error| {
        crate::db::history::database_error(db, "read pg_stat_activity", &e)
    };
    let long = long.map_err(session_error)?;
    if long.is_empty() {
        checks.push(Check::pass(
            "long_transactions",
            format!(
                "no transaction open longer than {}",
                format_duration(config.defaults.long_transaction)
            ),
        ));
    }
    for session in &long {
        checks.push(Check::warn(
            "long_transactions",
            ReasonCode::about(Code::LongRunningTransaction, session.pid.to_string()),
            format!(
                "{}; DDL waiting behind it would stall every query queued after it",
                session.describe()
            ),
        ));
    }
    let holders = holders.map_err(session_error)?;
    let long_transaction_secs = config.defaults.long_transaction.as_secs_f64();
    if holders.is_empty() {
        checks.push(Check::pass(
            "blocking_locks",
            format!(
                "no other session holds a lock on the {} table(s) the pending migrations touch",
                relations.len()
            ),
        ));
    }
    for (session, relation, mode) in &holders {
        let detail = format!(
            "{} holds {mode} on {relation}, which a pending migration changes",
            session.describe()
        );
        // Ordinary traffic (an active query, a transaction younger than
        // long_transaction) is waited out by the lock_timeout retries; a
        // session idle in its transaction, or one older than
        // long_transaction, may never let go (SPEC 5).
        let idle = session
            .state
            .as_deref()
            .is_some_and(|s| s.starts_with("idle in transaction"));
        if idle || session.transaction_secs.unwrap_or(0.0) >= long_transaction_secs {
            checks.push(Check::fail(
                "blocking_locks",
                ReasonCode::about(Code::BlockingLock, session.pid.to_string()),
                detail,
            ));
        } else {
            checks.push(Check::warn(
                "blocking_locks",
                ReasonCode::about(Code::BlockingLock, session.pid.to_string()),
                detail,
            ));
        }
    }
    let waiters = waiters.map_err(session_error)?;
    if !waiters.is_empty() {
        checks.push(Check::warn(
            "lock_waiters",
            ReasonCode::new(Code::LockWaiters),
            format!(
                "{} session(s) are waiting for locks now: {}",
                waiters.len(),
                waiters
                    .iter()
                    .take(5)
                    .map(Session::describe)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ));
    }
    for pending in namespaces {
        if let Some(check) = other_history_check(config, db, &history, pending).await? {
            checks.push(check);
        }
    }
    if catalog::in_recovery(db).await? {
        checks.push(standby_check(settings));
    }
    checks.extend(replica_checks(
        config,
        &crate::db::replicas::standbys(db).await?,
    ));
    if let Some(dir) = backup_dir {
        checks.push(space_check(dir, size?));
    }
    let failing = |code: Code| {
        checks.iter().any(|c| {
            c.status == crate::report::Status::Fail
                && c.reason.as_ref().is_some_and(|r| r.code() == code)
        })
    };
    let unforceable = if failing(Code::DatabaseIsStandby) {
        Some(
            "point the database URL at the primary; --force does not go past this (a standby cannot be written)",
        )
    } else if failing(Code::ReplicaMissing) {
        Some(
            "bring the standby back or lower expect_standbys; --force does not go past this (apply asks again before each migration)",
        )
    } else {
        None
    };
    let mut report = PhaseReport::new("preflight", started, &settings.to_string(), checks);
    report.live_schema = Some(live);
    report.unforceable = unforceable.map(str::to_string);
    Ok(report)
}

/// What every preflight check is run with.
#[derive(Clone, Copy)]
struct Phase<'p, 'n> {
    config: &'p Config,
    settings: &'p ConnectionSettings,
    db: &'p Db,
    namespaces: &'p [Pending<'n>],
    tolerance: &'p Tolerance,
    backup_dir: Option<&'p Path>,
    started: chrono::DateTime<Utc>,
}

/// While another session holds ACCESS EXCLUSIVE on a table, the schema
/// cannot be read (and no migration could take its locks): the preflight
/// that says who, instead of a lock timeout. `None` when nobody does.
/// Its report has no live schema, which `--force` cannot go on without.
async fn blocked_report(
    phase: &Phase<'_, '_>,
    on: Option<&[String]>,
) -> Result<Option<PhaseReport>> {
    let db = phase.db;
    // A statement that is running (another runner's DDL, a quick LOCK) is
    // given as long as preflight's own lock_timeout; a transaction sitting
    // idle with the lock may never let go, and is named at once. After the
    // schema read timed out (`on` is None) there is nothing left to wait for.
    let waited = std::time::Instant::now();
    let mut said_waiting = false;
    let holders = loop {
        let holders = match on {
            Some(relations) => activity::lock_holders(db, relations).await.map(|all| {
                all.into_iter()
                    .filter(|(_, _, mode)| mode == "AccessExclusiveLock")
                    .collect::<Vec<_>>()
            }),
            None => activity::exclusive_holders(db).await,
        }
        .map_err(|e| crate::db::history::database_error(db, "read pg_locks", &e))?;
        let all_active = holders
            .iter()
            .all(|(s, _, _)| s.state.as_deref() == Some("active"));
        if holders.is_empty() {
            return Ok(None);
        }
        if on.is_none() || !all_active || waited.elapsed() >= PREFLIGHT_LOCK_WAIT {
            break holders;
        }
        // Said once, so that a silent pause of up to 10 s is not taken for a hang.
        if !said_waiting {
            said_waiting = true;
            let who: Vec<String> = holders
                .iter()
                .map(|(s, relation, _)| format!("pid {} on {relation}", s.pid))
                .collect();
            tracing::warn!(
                "ACCESS EXCLUSIVE held by a running statement ({}): preflight waits up to {} s for it to finish, then fails naming it",
                who.join(", "),
                PREFLIGHT_LOCK_WAIT.as_secs()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let (version, _) = catalog::server_version(db).await?;
    let mut checks = first_checks(
        &version,
        phase.settings,
        phase.namespaces,
        phase.tolerance,
        phase.config,
        phase.backup_dir,
    );
    let mut by_session: Vec<(&Session, Vec<&str>)> = Vec::new();
    for (session, relation, _) in &holders {
        match by_session.iter_mut().find(|(s, _)| s.pid == session.pid) {
            Some((_, relations)) => relations.push(relation),
            None => by_session.push((session, vec![relation])),
        }
    }
    for (session, relations) in by_session {
        checks.push(Check::fail(
            "blocking_locks",
            ReasonCode::about(Code::BlockingLock, session.pid.to_string()),
            format!(
                "{} holds ACCESS EXCLUSIVE on {}: nothing can read or change that table until its transaction ends, so the schema was not read and no other check ran. Wait for it, or end it with `SELECT pg_terminate_backend({})`",
                session.describe(),
                relations.join(", "),
                session.pid
            ),
        ));
    }
    let mut report = PhaseReport::new(
        "preflight",
        phase.started,
        &phase.settings.to_string(),
        checks,
    );
    report.unforceable = Some(
        "end the transaction that holds the lock (its pid is in the reason code), then run again; --force cannot go on while the schema cannot be read".into(),
    );
    Ok(Some(report))
}

/// The URL leads to a standby: nothing can be applied here (`plan` and
/// `preflight` say so, as `apply` refuses).
fn standby_check(settings: &ConnectionSettings) -> Check {
    Check::fail(
        "primary",
        ReasonCode::new(Code::DatabaseIsStandby),
        format!(
            "{settings} is a standby in recovery (pg_is_in_recovery()): it cannot be written, and what it shows may lag the primary; point the URL at the primary"
        ),
    )
}

/// Connectivity, then each namespace's integrity: what every preflight
/// report starts with.
fn first_checks(
    version: &str,
    settings: &ConnectionSettings,
    namespaces: &[Pending<'_>],
    tolerance: &Tolerance,
    config: &Config,
    backup_dir: Option<&Path>,
) -> Vec<Check> {
    let mut checks = vec![Check::pass(
        "connectivity",
        format!("PostgreSQL {version} at {settings}"),
    )];
    for pending in namespaces {
        integrity_checks(
            pending,
            tolerance,
            config,
            backup_dir.is_some(),
            &mut checks,
        );
    }
    checks
}

fn is_lock_timeout(err: &Error) -> bool {
    err.sqlstate() == Some(tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE)
}

fn integrity_checks(
    pending: &Pending<'_>,
    tolerance: &Tolerance,
    config: &Config,
    backed_up: bool,
    checks: &mut Vec<Check>,
) {
    let state = pending.state;
    let ns = &state.namespace;
    checks.push(Check::pass(
        "pending",
        format!("{ns}: {} migration(s) to apply", pending.selected.len()),
    ));
    let mut problems = 0;
    for entry in &state.entries {
        let check = match entry.state {
            State::ChecksumMismatch => Check::fail(
                "checksums",
                ReasonCode::migration(Code::PostgresMigrationChecksumMismatch, ns, &entry.version),
                format!(
                    "{ns} {} {} was edited after it was applied",
                    entry.version, entry.name
                ),
            ),
            State::FileMissing => tolerated(
                tolerance.ignore_missing,
                "--ignore-missing",
                "missing_files",
                ReasonCode::migration(Code::MigrationFileMissing, ns, &entry.version),
                format!("{ns} {} is applied but its file is gone", entry.version),
            ),
            State::NewerApplied if tolerance.refuse_newer_applied => tolerated(
                tolerance.ignore_missing,
                "--ignore-missing",
                "missing_files",
                ReasonCode::migration(Code::MigrationFileMissing, ns, &entry.version),
                format!(
                    "{ns} {} is applied but this release has no file for it (newer than its newest; allow_newer_applied = false)",
                    entry.version
                ),
            ),
            State::NewerApplied => Check::warn(
                "newer_applied",
                ReasonCode::migration(Code::MigrationNewerThanRelease, ns, &entry.version),
                format!(
                    "{ns} {} was applied by a newer release (no file here, newer than every file); allowed",
                    entry.version
                ),
            ),
            State::OutOfOrder => tolerated(
                tolerance.allow_out_of_order,
                "--allow-out-of-order",
                "out_of_order",
                ReasonCode::migration(Code::MigrationOutOfOrder, ns, &entry.version),
                format!("{ns} {} is older than applied versions", entry.version),
            ),
            State::Dirty => {
                let recoverable = config.defaults.recovery == "auto"
                    && entry.migration.as_ref().is_some_and(|m| m.down.is_some());
                let reason = ReasonCode::migration(Code::MigrationDirty, ns, &entry.version);
                let assessed = pending
                    .recovery
                    .iter()
                    .find(|a| a.version == entry.version.as_str());
                if let Some(refusal) = assessed.and_then(|a| a.refusal()) {
                    let detail = refusal.to_string();
                    if tolerance.recover {
                        Check::warn(
                            "dirty",
                            refusal.reason().clone(),
                            format!("{detail} (--recover: the backup taken first keeps them)"),
                        )
                    } else {
                        Check::fail("dirty", refusal.reason().clone(), detail)
                    }
                } else if recoverable {
                    Check::warn(
                        "dirty",
                        reason,
                        format!(
                            "{ns} {} is dirty; after this preflight{}, recovery = \"auto\" rolls it back with its down script (nothing it destroys holds rows written since it stopped) and applies it again",
                            entry.version,
                            if backed_up {
                                " and the backup"
                            } else {
                                " (no backup: --skip-backup)"
                            }
                        ),
                    )
                } else {
                    Check::fail(
                        "dirty",
                        reason,
                        format!(
                            "{ns} {} is dirty and needs `migsafe repair` after a manual check",
                            entry.version
                        ),
                    )
                }
            }
            // Changed ones are in the selection: they run again.
            State::Applied | State::Pending | State::Changed | State::Excluded => continue,
        };
        problems += 1;
        checks.push(check);
    }
    if problems == 0 {
        checks.push(Check::pass(
            "history",
            format!("{ns}: checksums match, no missing file, nothing dirty or out of order"),
        ));
    }
}

/// Lints the migrations about to run, with live table sizes: an error fails
/// preflight, a warning warns.
fn lint_checks(
    namespaces: &[Pending<'_>],
    resuming: &[Vec<String>],
    config: &Config,
    sizes: std::collections::HashMap<String, crate::lint::TableSize>,
    existing: std::collections::HashSet<String>,
    server_version: i32,
) -> Vec<Check> {
    let scripts: Vec<crate::lint::Script> = namespaces
        .iter()
        .zip(resuming)
        .flat_map(|(p, resuming)| {
            p.to_lint().into_iter().map(move |m| {
                let mut script = crate::lint::Script::of(&p.state.namespace, m);
                script.online |= p.online
                    || config.defaults.online
                    || resuming.iter().any(|v| v == m.version.as_str());
                script
            })
        })
        .collect();
    let context = crate::lint::Context {
        sizes,
        existing: Some(existing),
        server_version: Some(server_version),
        large_table_bytes: config.lint.large_table_bytes,
        ..crate::lint::Context::default()
    };
    let findings = crate::lint::lint(&scripts, &context);
    if findings.is_empty() {
        return vec![Check::pass(
            "lint",
            format!(
                "{} pending migration(s) linted with live table sizes: no finding",
                scripts.len()
            ),
        )];
    }
    findings
        .into_iter()
        .map(|f| {
            let (ns, version) = f.migration.clone().unwrap_or_default();
            let reason = ReasonCode::migration(Code::LintError, &ns, &version);
            let detail = format!(
                "{}:{}:{}: {} [{}] (fix: {})",
                f.path.display(),
                f.line,
                f.column,
                f.message,
                f.rule,
                f.help
            );
            match f.severity {
                crate::lint::Severity::Error => Check::fail("lint", reason, detail),
                crate::lint::Severity::Warning => Check::warn("lint", reason, detail),
            }
        })
        .collect()
}

/// `status`: the schema drift preflight would report for one namespace,
/// when there is any (`SCHEMA_DRIFT:{ns}`, warn or fail); `None` when the
/// live schema is the one recorded after the last run, or none is recorded.
pub(crate) async fn drift_of(
    config: &Config,
    db: &Db,
    history: &History,
    state: &NamespaceState,
    scope: &Scope,
) -> Result<Option<Check>> {
    // Behind a table someone holds ACCESS EXCLUSIVE on, give up soon and
    // say who, instead of waiting as long as they hold it. Only for this
    // read: the session (a library user's, maybe) gets its own back.
    let failed = |e: &tokio_postgres::Error| {
        crate::db::history::database_error(db, "prepare the status session", e)
    };
    // One round trip: the subquery (kept apart by OFFSET 0) reads the old
    // value before set_config replaces it.
    let previous: String = db
        .client
        .query_one(
            "SELECT p.previous, set_config('lock_timeout', '2s', false) \
             FROM (SELECT current_setting('lock_timeout') AS previous OFFSET 0) p",
            &[],
        )
        .await
        .map_err(|e| failed(&e))?
        .get(0);
    let drift = drift_within(config, db, history, state, scope).await;
    db.client
        .execute("SELECT set_config('lock_timeout', $1, false)", &[&previous])
        .await
        .map_err(|e| failed(&e))?;
    drift
}

/// [`drift_of`]'s read, while the short `lock_timeout` is set.
async fn drift_within(
    config: &Config,
    db: &Db,
    history: &History,
    state: &NamespaceState,
    scope: &Scope,
) -> Result<Option<Check>> {
    let recorded = history.recorded_schema(db, &state.namespace).await?;
    let live = match schema::read(db, &config.history_schema).await {
        Err(err) if is_lock_timeout(&err) => {
            let holders = activity::exclusive_holders(db)
                .await
                .map_err(|e| crate::db::history::database_error(db, "read pg_locks", &e))?;
            let Some((session, relation, _)) = holders.first() else {
                return Err(err);
            };
            return Ok(Some(Check::warn(
                "schema_drift",
                ReasonCode::about(Code::BlockingLock, session.pid.to_string()),
                format!(
                    "{}: schema not compared: {} holds ACCESS EXCLUSIVE on {relation}, and reading it would wait",
                    state.namespace,
                    session.describe()
                ),
            )));
        }
        other => other?,
    };
    let dirty: Vec<String> = state
        .in_state(State::Dirty)
        .map(|e| e.version.to_string())
        .collect();
    let check = drift_check(recorded, &live, scope, &state.namespace, &dirty);
    Ok((check.status != crate::report::Status::Pass).then_some(check))
}

/// Drift of one namespace: the live schema against the one recorded after
/// its last run, both cut to the schemas it answers for.
fn drift_check(
    recorded: Option<(String, serde_json::Value)>,
    live: &Snapshot,
    scope: &Scope,
    namespace: &str,
    dirty: &[String],
) -> Check {
    let Some((checksum, stored)) = recorded else {
        return Check::pass(
            "schema_drift",
            format!(
                "{namespace}: no schema recorded yet (first run with migsafe's safety pipeline)"
            ),
        );
    };
    if checksum == crate::db::history::UNRECORDED {
        return Check::pass(
            "schema_drift",
            format!(
                "{namespace}: not checked: the last run skipped postflight (--no-postflight), so no schema was recorded; the next full run records it again"
            ),
        );
    }
    let Ok(before) = serde_json::from_value::<Snapshot>(stored) else {
        return Check::warn(
            "schema_drift",
            ReasonCode::about(Code::SchemaDrift, namespace),
            format!(
                "{namespace}: the recorded snapshot cannot be read, so drift is not checked; the next run records it again"
            ),
        );
    };
    // Cut both: a snapshot recorded by an older migsafe covers the whole database.
    let (before, now) = (scope.apply(&before), scope.apply(live));
    let live_checksum = now.checksum();
    if before == now {
        return Check::pass(
            "schema_drift",
            format!(
                "{namespace}: live schema matches the one recorded after its last run ({live_checksum}; schemas {})",
                scope.describe()
            ),
        );
    }
    let diff = schema::diff::render(&schema::diff(&before, &now));
    let shown: Vec<&str> = diff.lines().take(40).collect();
    // An interrupted no-transaction migration changed the schema part way
    // (an INVALID index, some of its statements): the difference is its
    // own, and recovery (or repair) deals with it. Refusing here would make
    // the interrupted migration impossible to recover.
    if !dirty.is_empty() {
        return Check::warn(
            "schema_drift",
            ReasonCode::about(Code::SchemaDrift, namespace),
            format!(
                "{namespace}: the live schema of {} differs from the one recorded after the last migsafe run, as expected after the interrupted migration(s) {} (what it did before it stopped); recovery rolls that back with the down script, or `migsafe repair` records what you decide. Check that nothing else is listed:\n{}",
                scope.describe(),
                dirty.join(", "),
                shown.join("\n")
            ),
        );
    }
    Check::fail(
        "schema_drift",
        ReasonCode::about(Code::SchemaDrift, namespace),
        format!(
            "{namespace}: the live schema of {} ({live_checksum}) differs from the one recorded after the last migsafe run ({}): someone changed it outside migsafe:\n{}",
            scope.describe(),
            before.checksum(),
            shown.join("\n")
        ),
    )
}

/// A namespace that migsafe has recorded nothing for, on a database where
/// another tool's history table holds rows: what would run may be what that
/// tool already ran (SPEC 14). A failure, so nothing runs (`--force` goes on,
/// for a table that is about other migrations).
async fn other_history_check(
    config: &Config,
    db: &Db,
    history: &History,
    pending: &Pending<'_>,
) -> Result<Option<Check>> {
    let found = crate::adopt::required::adopt_required(
        config,
        db,
        pending.state,
        history.table(),
        pending.selected.len(),
    )
    .await?;
    Ok(found.map(|found| {
        // One tool: `adopt` finds it alone; several: name the first.
        let command = if found.histories.len() > 1 {
            found.hint.as_str()
        } else {
            "migsafe adopt"
        };
        Check::fail(
            "other_tool_history",
            found.reason.clone(),
            format!(
                "{}. Take over its history first: `{command}` (docs/adopt.md); if that table is about other migrations, `apply --force` goes on",
                found.message
            ),
        )
    }))
}

/// Streaming standbys and their lag (SPEC 17). A lagging standby warns
/// (apply waits for it before each migration); fewer connected than
/// `expect_standbys` fails.
fn replica_checks(config: &Config, standbys: &[crate::db::replicas::Standby]) -> Vec<Check> {
    let limits = crate::db::replicas::Limits::of(config);
    let mut checks = Vec::new();
    for standby in standbys {
        if !standby.readable() {
            checks.push(Check::warn(
                "replicas",
                standby.reason(),
                format!(
                    "standby {}: this role may not read its replay position (grant it pg_monitor or pg_read_all_stats), so apply cannot wait for it",
                    standby.name
                ),
            ));
        } else if standby.behind(&limits) {
            checks.push(Check::warn(
                "replicas",
                standby.reason(),
                format!(
                    "standby {}, over the limits ({}); apply waits before each migration until it catches up, up to lock_wait ({})",
                    standby.describe(),
                    limits.describe(),
                    format_duration(limits.wait)
                ),
            ));
        } else {
            checks.push(Check::pass(
                "replicas",
                format!("standby {}", standby.describe()),
            ));
        }
    }
    let connected: Vec<&str> = standbys
        .iter()
        .filter(|s| matches!(s.state.as_deref(), Some("streaming" | "catchup")))
        .map(|s| s.name.as_str())
        .collect();
    match config.defaults.expect_standbys {
        Some(expected) if connected.len() < expected as usize => checks.push(Check::fail(
            "replicas",
            ReasonCode::new(Code::ReplicaMissing),
            format!(
                "expect_standbys = {expected}, but {} standby(s) are streaming{}",
                connected.len(),
                if connected.is_empty() {
                    String::new()
                } else {
                    format!(": {}", connected.join(", "))
                }
            ),
        )),
        _ if standbys.is_empty() => {
            checks.push(Check::pass("replicas", "no streaming standby is connected"))
        }
        _ => {}
    }
    checks
}

fn space_check(dir: &Path, database_bytes: i64) -> Check {
    let mut probe = dir.to_path_buf();
    while !probe.exists() {
        if !probe.pop() {
            break;
        }
    }
    let probe = if probe.as_os_str().is_empty() {
        Path::new(".").to_path_buf()
    } else {
        probe
    };
    // The field types differ between platforms; on Linux they are u64.
    #[allow(clippy::unnecessary_cast)]
    let free = match nix::sys::statvfs::statvfs(&probe) {
        Ok(stat) => (stat.blocks_available() as u64).saturating_mul(stat.fragment_size() as u64),
        Err(e) => {
            return Check::warn(
                "backup_space",
                ReasonCode::new(Code::BackupSpaceLow),
                format!("cannot read the free space of {}: {e}", probe.display()),
            );
        }
    };
    let size = u64::try_from(database_bytes).unwrap_or(0);
    let detail = format!(
        "{} free in {} for a database of {}",
        human_bytes(free),
        probe.display(),
        human_bytes(size)
    );
    // pg_dump's custom format is compressed; half the on-disk size is a
    // conservative floor, the full size comfortable.
    if free < size / 2 {
        Check::fail(
            "backup_space",
            ReasonCode::new(Code::BackupSpaceLow),
            detail,
        )
    } else if free < size {
        Check::warn(
            "backup_space",
            ReasonCode::new(Code::BackupSpaceLow),
            detail,
        )
    } else {
        Check::pass("backup_space", detail)
    }
}

/// Tables the selected migrations name, from the grammar, quoted for
/// `to_regclass` (`"My Schema"."Ar chive"`, `users`).
fn touched_relations(namespaces: &[Pending<'_>]) -> Vec<String> {
    let mut tables = BTreeSet::new();
    for pending in namespaces {
        for migration in pending.to_lint() {
            let Ok(parsed) = pg_query::parse(&migration.up.sql, 0) else {
                continue;
            };
            for (node, _, _, _) in parsed.protobuf.nodes() {
                if let pg_query::NodeRef::RangeVar(r) = node
                    && !r.relname.is_empty()
                {
                    let name = crate::db::quote_ident(&r.relname);
                    tables.insert(if r.schemaname.is_empty() {
                        name
                    } else {
                        format!("{}.{name}", crate::db::quote_ident(&r.schemaname))
                    });
                }
            }
        }
    }
    tables.into_iter().collect()
}

/// Sizes for people: `48.2 GB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The error for a failed preflight (exit 1): nothing was changed.
pub fn failed(report: &PhaseReport) -> Error {
    let (reason, lines) = report.failure_summary(Code::PreflightFailed);
    // One failure is the error's own reason code: its detail follows the
    // code once (`plan` and `apply` printed `ADOPT_REQUIRED:ns` twice,
    // the second time as a list of one). Several are listed, each coded.
    let failures: Vec<&crate::report::Check> = report.failures().collect();
    let (message, fix) = match failures.as_slice() {
        [only] if only.reason.as_ref() == Some(&reason) => (
            format!("preflight failed; nothing was changed: {}", only.detail),
            "fix it",
        ),
        _ => (
            format!(
                "preflight failed; nothing was changed:\n{}",
                lines.join("\n")
            ),
            "fix what is listed",
        ),
    };
    let path = report
        .path
        .as_ref()
        .map_or_else(|| "not written".to_string(), |p| p.display().to_string());
    let hint = match &report.unforceable {
        Some(why) => format!("{why}. Report: {path}"),
        None => format!(
            "{fix}, or pass --force to go on anyway (recorded in the report; never overrides dirty or edited migrations, nor a recovery that would destroy data). Report: {path}"
        ),
    };
    Error::Refused {
        reason,
        message,
        hint: Some(hint),
        source: None,
    }
}

/// A failing check, or a warning naming the flag that tolerates it.
fn tolerated(allowed: bool, flag: &str, check: &str, reason: ReasonCode, detail: String) -> Check {
    if allowed {
        Check::warn(check, reason, format!("{detail} ({flag})"))
    } else {
        Check::fail(check, reason, detail)
    }
}

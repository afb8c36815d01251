//! Fleets (SPEC 17): the same migrations over many databases — a database
//! per tenant, per region, per shard — with a bounded number in flight, a
//! canary first, and a stop after too many failures.
//!
//! Every database gets exactly the guarded apply of `migsafe apply` (a
//! [`Migrator`] of its own, the same code path): its own namespace locks,
//! history, preflight, backup, postflight and reports. Nothing is shared
//! between databases but the configuration and the migration files, so a
//! fleet run is a shell loop of `migsafe apply` with the loop's missing
//! parts: `parallel` databases at a time, `canary` databases first and
//! alone, no new database started after `max_failures` failures (the ones
//! running then finish), and a rerun that skips what has nothing pending.
//!
//! Memory is bounded by `parallel`, not by the fleet: a database's
//! [`Migrator`] lives only while it runs; what stays is one small outcome
//! per database.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde::Serialize;

use crate::config::Config;
use crate::db::ConnectionSettings;
use crate::error::{Code, Error, ReasonCode, Result};
use crate::events::{Event, EventSink, Fanout, Interrupt, NoEvents, millis};
use crate::migrator::Migrator;
use crate::pipeline::apply::ApplyOptions;
use crate::plan::State;
use crate::report::EventLog;

/// Collects what committed in one database's run from its events: an up
/// migration finished, less one rolled back by recovery after it. A run
/// that fails or is interrupted returns an error, not its report; this is
/// how its outcome still lists what landed.
#[derive(Default)]
struct Landed(std::sync::Mutex<Vec<String>>);

impl Landed {
    fn take(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

impl EventSink for Landed {
    fn emit(&self, event: &Event) {
        if let Event::MigrationFinished {
            namespace,
            version,
            direction,
            ..
        } = event
        {
            let key = format!("{namespace}:{version}");
            let mut landed = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            landed.retain(|k| *k != key);
            if *direction == crate::events::Direction::Up {
                landed.push(key);
            }
        }
    }
}

/// One database of the fleet.
#[derive(Debug, Clone)]
pub struct FleetDatabase {
    /// `host:port/dbname`: how it is named in output, logs and reports
    /// (never with its password).
    pub name: String,
    /// Its directory under the log directory (and the backup directory):
    /// the name with anything but letters, digits, `.`, `-` turned into `_`.
    pub dir: String,
    /// Where it is.
    pub settings: ConnectionSettings,
    /// Its line in the databases file.
    pub line: usize,
}

/// Reads a databases file: one URL or key=value string per line; blank
/// lines and lines starting with `#` are skipped. Two lines naming the same
/// `host:port/dbname` are an error (they would share logs and reports).
pub fn read_databases(path: &Path) -> Result<Vec<FleetDatabase>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "read", &e))?;
    parse_databases(&text, &path.display().to_string())
}

/// [`read_databases`] on text already read (`shown` names it in errors).
pub fn parse_databases(text: &str, shown: &str) -> Result<Vec<FleetDatabase>> {
    let mut out: Vec<FleetDatabase> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = without_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        let settings = ConnectionSettings::parse(line).map_err(|e| {
            Error::config(
                Code::DatabaseUrlInvalid,
                format!("{shown}:{}: {e}", index + 1),
            )
            .with_hint(format!(
                "fix line {} of {shown} (a postgres:// URL or a key=value string; `#` starts a comment); nothing ran",
                index + 1
            ))
        })?;
        let name = format!(
            "{}/{}",
            settings.server().unwrap_or_else(|| "localhost".into()),
            settings
                .dbname()
                .or(settings.config().get_user())
                .unwrap_or("postgres")
        );
        if let Some(first) = out.iter().find(|d| d.name == name) {
            return Err(Error::config(
                Code::ConfigInvalid,
                format!(
                    "{shown}:{}: {name} is already listed on line {}",
                    index + 1,
                    first.line
                ),
            )
            .with_hint(format!(
                "remove one of the two lines from {shown} (each database once); nothing ran"
            )));
        }
        let dir = directory_of(&name);
        out.push(FleetDatabase {
            name,
            dir,
            settings,
            line: index + 1,
        });
    }
    if out.is_empty() {
        return Err(Error::config(
            Code::ConfigInvalid,
            format!("{shown} lists no database (one URL or key=value string per line)"),
        )
        .with_hint(format!(
            "add the databases to {shown}, one per line; nothing ran"
        )));
    }
    Ok(out)
}

/// A line without its `#` comment: one at the start, or after a space
/// (`postgres://…/tenant7  # tenant 7`). A `#` inside a URL is
/// percent-encoded (`%23`), and inside a quoted key=value value it stays.
fn without_comment(line: &str) -> &str {
    let mut quoted = false;
    let mut previous_blank = true;
    for (at, c) in line.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '#' if !quoted && previous_blank => return &line[..at],
            _ => {}
        }
        previous_blank = c.is_whitespace();
    }
    line
}

/// Gives the event sink of one database's run (the CLI: its lines,
/// prefixed with the database). Its JSONL log is added by the fleet.
pub type DatabaseEvents = Arc<dyn Fn(&FleetDatabase) -> Arc<dyn EventSink> + Send + Sync>;

/// A fleet: the configuration and migrations every database gets, and
/// where each database's logs and backups go.
pub struct Fleet {
    config: Config,
    databases: Vec<FleetDatabase>,
    log_dir: Option<PathBuf>,
    events: Arc<dyn EventSink>,
    database_events: Option<DatabaseEvents>,
    interrupt: Interrupt,
    backups: bool,
}

/// How `fleet apply` runs.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Databases in flight at a time (at least 1).
    pub parallel: usize,
    /// Databases run first, before any other starts; a canary that fails
    /// stops the fleet whatever `max_failures` says.
    pub canary: usize,
    /// Failures tolerated; one more and no new database starts.
    pub max_failures: usize,
    /// `--target`.
    pub target: Option<String>,
    /// What every database's apply may do.
    pub apply: ApplyOptions,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            parallel: 4,
            canary: 1,
            max_failures: 0,
            target: None,
            apply: ApplyOptions::default(),
        }
    }
}

/// How one database ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Migrations were applied.
    Applied,
    /// Nothing was pending (status: nothing is).
    UpToDate,
    /// Status: migrations are pending.
    Pending,
    /// It failed (apply) or could not be read, or holds a dirty, edited or
    /// missing migration (status).
    Failed,
    /// Ctrl-C cut it short: what committed before is in `migrations`.
    Interrupted,
    /// It was not started (the fleet stopped first).
    NotStarted,
}

impl Outcome {
    /// The word for output.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::UpToDate => "up_to_date",
            Outcome::Pending => "pending",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
            Outcome::NotStarted => "not_started",
        }
    }
}

/// One database's result.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseOutcome {
    /// `host:port/dbname`.
    pub database: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Versions applied (apply; on a failure or an interruption, those
    /// that committed before it) or pending (status), `namespace:version`.
    pub migrations: Vec<String>,
    /// The reason code of its failure.
    pub reason: Option<String>,
    /// Its failure's message.
    pub message: Option<String>,
    /// The exit code `migsafe apply` gave it (0 applied or up to date);
    /// `None` for a database not started, and in `fleet status` for one
    /// that was read (its problem is in `reason`).
    pub exit_code: Option<i32>,
    /// Wall time.
    pub duration_ms: u64,
    /// Its log directory (event log and reports).
    pub log_dir: Option<String>,
}

impl DatabaseOutcome {
    /// `database` with `outcome` and nothing else known yet.
    fn of(database: &FleetDatabase, outcome: Outcome) -> DatabaseOutcome {
        DatabaseOutcome {
            database: database.name.clone(),
            outcome,
            migrations: Vec::new(),
            reason: None,
            message: None,
            exit_code: None,
            duration_ms: 0,
            log_dir: None,
        }
    }

    /// The `fleet_database_done` event of this outcome, `done` of `total`
    /// databases ended so far, `failed` of them failed.
    fn done_event(&self, done: usize, total: usize, failed: usize) -> Event {
        Event::FleetDatabaseDone {
            database: self.database.clone(),
            outcome: self.outcome.as_str().to_string(),
            migrations: self.migrations.len(),
            reason: self.reason.clone(),
            message: self.message.clone(),
            done,
            total,
            failed,
            duration_ms: self.duration_ms,
        }
    }
}

/// What a fleet run did, database by database in file order.
#[derive(Debug, Clone, Serialize)]
pub struct FleetReport {
    /// Per database, in the order of the file.
    pub databases: Vec<DatabaseOutcome>,
    /// Databases that applied migrations or had none pending.
    pub succeeded: usize,
    /// Databases that failed.
    pub failed: usize,
    /// Databases cut short by Ctrl-C.
    pub interrupted: usize,
    /// Databases that were not started.
    pub not_started: usize,
    /// Status: databases with migrations pending.
    pub pending: usize,
    /// Status: databases that could not be read (unreachable, refused, a
    /// history that cannot be read); counted among `failed`. Always 0 for
    /// apply, whose failures are in `failed`.
    pub unreadable: usize,
    /// `INTERRUPTED` after a Ctrl-C, else `FLEET_STOPPED` when databases
    /// were left unstarted.
    pub stopped: Option<String>,
}

impl FleetReport {
    fn of(databases: Vec<DatabaseOutcome>, stopped: Option<String>) -> FleetReport {
        let count = |o: Outcome| databases.iter().filter(|d| d.outcome == o).count();
        FleetReport {
            succeeded: count(Outcome::Applied) + count(Outcome::UpToDate),
            failed: count(Outcome::Failed),
            interrupted: count(Outcome::Interrupted),
            not_started: count(Outcome::NotStarted),
            pending: count(Outcome::Pending),
            unreadable: 0,
            stopped,
            databases,
        }
    }

    /// `None` when every database succeeded; after a Ctrl-C, `INTERRUPTED`
    /// (exit 130, SPEC 11: stopped by the operator, not failed); else the
    /// fleet's failure, an [`Error::Migration`] (exit 2: a run that changed
    /// some databases and not others), coded `FLEET_STOPPED` when databases
    /// were left unstarted, else `FLEET_FAILED`; its message names every
    /// failed database with its own reason code.
    pub fn error(&self) -> Option<Error> {
        let failed: Vec<&DatabaseOutcome> = self
            .databases
            .iter()
            .filter(|d| d.outcome == Outcome::Failed)
            .collect();
        let interrupted = ReasonCode::new(Code::Interrupted).to_string();
        if self.stopped.as_ref() == Some(&interrupted) {
            let cut: Vec<String> = self
                .databases
                .iter()
                .filter(|d| d.outcome == Outcome::Interrupted)
                .map(|d| {
                    format!(
                        "{} ({} migration(s) committed)",
                        d.database,
                        d.migrations.len()
                    )
                })
                .collect();
            let message = format!(
                "interrupted: {} database(s) cut short{}, {} not started",
                cut.len(),
                if cut.is_empty() {
                    String::new()
                } else {
                    format!(": {}", cut.join(", "))
                },
                self.not_started
            );
            // A failure is the louder news: exit 2, the interruption said.
            if !failed.is_empty() {
                return self.failure(&failed).map(|err| match err {
                    Error::Migration {
                        reason,
                        message: failure,
                        hint,
                        source,
                    } => Error::Migration {
                        reason,
                        message: format!("{failure}; then {message}"),
                        hint,
                        source,
                    },
                    other => other,
                });
            }
            return Some(Error::Refused {
                reason: ReasonCode::new(Code::Interrupted),
                message,
                hint: Some(
                    "what committed stays committed (each database's history says so); run `migsafe fleet apply` again to go on: databases with nothing pending are skipped, the others resume where they stopped"
                        .into(),
                ),
                source: None,
            });
        }
        self.failure(&failed)
    }

    /// `fleet status`: `None` when every database was read, whatever it
    /// holds (pending, dirty and edited migrations are the report's news,
    /// as with `status`); else `FLEET_UNREADABLE`, a configuration-class
    /// error (exit 5, SPEC 11: cannot connect), so that a monitoring
    /// script sees a database it cannot watch. Its message says how many.
    pub fn status_error(&self) -> Option<Error> {
        if self.unreadable == 0 {
            return None;
        }
        Some(
            Error::config(
                Code::FleetUnreadable,
                format!(
                    "{} of {} database(s) could not be read",
                    self.unreadable,
                    self.databases.len()
                ),
            )
            .with_hint(
                "each is named with its own reason code and message; its state is unknown, not up to date",
            ),
        )
    }

    /// The error naming the failed databases, when any failed.
    fn failure(&self, failed: &[&DatabaseOutcome]) -> Option<Error> {
        if failed.is_empty() {
            return None;
        }
        let reason = if self.not_started > 0 {
            ReasonCode::new(Code::FleetStopped)
        } else {
            ReasonCode::new(Code::FleetFailed)
        };
        let names: Vec<String> = failed
            .iter()
            .map(|d| {
                format!(
                    "{} ({})",
                    d.database,
                    d.reason.as_deref().unwrap_or("failed")
                )
            })
            .collect();
        Some(Error::Migration {
            reason,
            message: format!(
                "{} of {} database(s) failed: {}{}",
                failed.len(),
                self.databases.len(),
                names.join(", "),
                if self.not_started > 0 {
                    format!("; {} not started", self.not_started)
                } else {
                    String::new()
                }
            ),
            hint: Some(
                "each database's event log and reports are in <log-dir>/<database>/; fix what failed, then run `migsafe fleet apply` again: databases with nothing pending are skipped"
                    .into(),
            ),
            source: None,
        })
    }
}

impl Fleet {
    /// A fleet of `databases`, each to get `config`'s migrations.
    pub fn new(config: Config, databases: Vec<FleetDatabase>) -> Fleet {
        Fleet {
            config,
            databases,
            log_dir: None,
            events: Arc::new(NoEvents),
            database_events: None,
            interrupt: Interrupt::new(),
            backups: false,
        }
    }

    /// Each database writes its event log and reports into
    /// `dir/<database>/` (the CLI: `logs/<database>/`).
    pub fn with_log_dir(mut self, dir: PathBuf) -> Fleet {
        self.log_dir = Some(dir);
        self
    }

    /// Where the fleet's own events go ([`Event::FleetDatabaseDone`]).
    pub fn with_events(mut self, events: Arc<dyn EventSink>) -> Fleet {
        self.events = events;
        self
    }

    /// Where each database's events go, besides its JSONL log.
    pub fn with_database_events(mut self, events: DatabaseEvents) -> Fleet {
        self.database_events = Some(events);
        self
    }

    /// Ctrl-C: no new database starts, the running ones stop as
    /// `migsafe apply` does.
    pub fn with_interrupt(mut self, interrupt: Interrupt) -> Fleet {
        self.interrupt = interrupt;
        self
    }

    /// Every database is backed up first, into `[backup] dir/<database>/`.
    pub fn with_backups(mut self, backups: bool) -> Fleet {
        self.backups = backups;
        self
    }

    /// The databases.
    pub fn databases(&self) -> &[FleetDatabase] {
        &self.databases
    }

    /// The migrator of one database: the configuration with its own
    /// backup directory, its own log directory and event log.
    fn migrator(
        &self,
        database: &FleetDatabase,
        landed: Arc<Landed>,
    ) -> Result<(Migrator, Option<String>)> {
        let mut config = self.config.clone();
        config.backup.dir = config.backup.dir.join(&database.dir);
        let mut sinks: Vec<Arc<dyn EventSink>> = vec![landed];
        if let Some(events) = &self.database_events {
            sinks.push(events(database));
        }
        let mut migrator = Migrator::new(config)
            .with_connection(database.settings.clone())
            .with_interrupt(self.interrupt.clone())
            .with_backups(self.backups);
        let mut shown = None;
        if let Some(root) = &self.log_dir {
            let dir = root.join(&database.dir);
            sinks.push(Arc::new(EventLog::open(&dir)?));
            shown = Some(dir.display().to_string());
            migrator = migrator.with_log_dir(dir);
        }
        Ok((migrator.with_events(Arc::new(Fanout(sinks))), shown))
    }

    async fn apply_one(&self, index: usize, options: &FleetOptions) -> (usize, DatabaseOutcome) {
        let database = &self.databases[index];
        let started = Instant::now();
        let mut outcome = DatabaseOutcome::of(database, Outcome::Failed);
        let landed = Arc::new(Landed::default());
        let result = match self.migrator(database, landed.clone()) {
            Ok((migrator, log_dir)) => {
                outcome.log_dir = log_dir;
                migrator
                    .apply(options.target.as_deref(), &options.apply)
                    .await
            }
            Err(err) => Err(err),
        };
        match result {
            Ok(report) => {
                outcome.migrations = report
                    .namespaces
                    .iter()
                    .flat_map(|n| {
                        n.ran
                            .iter()
                            .map(|r| format!("{}:{}", n.namespace, r.version))
                    })
                    .collect();
                outcome.outcome = if outcome.migrations.is_empty() {
                    Outcome::UpToDate
                } else {
                    Outcome::Applied
                };
                outcome.exit_code = Some(0);
            }
            Err(err) => {
                // Cut short by Ctrl-C (a cancelled statement, a wait ended),
                // not failed: the operator stopped it.
                // By what the error is, not only by the flag: a database
                // that failed on its own stays failed after a Ctrl-C.
                // A no-transaction migration cancelled part way is DIRTY
                // (its code says so, for the recovery the next apply runs).
                let cancelled = matches!(
                    err.reason().code(),
                    Code::Interrupted | Code::MigrationCancelled | Code::MigrationDirty
                );
                if cancelled && self.interrupt.is_triggered() {
                    outcome.outcome = Outcome::Interrupted;
                }
                outcome.migrations = landed.take();
                outcome.reason = Some(err.reason().to_string());
                outcome.message = Some(crate::db::scrub(&err.to_string()));
                outcome.exit_code = Some(err.exit_code());
            }
        }
        outcome.duration_ms = millis(started.elapsed());
        (index, outcome)
    }

    /// `fleet apply`: the guarded apply on every database (SPEC 17).
    /// Errors only before anything starts; every database's failure is in
    /// the report (see [`FleetReport::error`]).
    pub async fn apply(&self, options: &FleetOptions) -> Result<FleetReport> {
        // A bad file or a bad --target stops the fleet before any database.
        self.config.select(options.target.as_deref())?;
        let total = self.databases.len();
        let parallel = options.parallel.max(1);
        let canary = options.canary.min(total);
        let mut results: Vec<Option<DatabaseOutcome>> = vec![None; total];
        let mut next = 0;
        let mut done = 0;
        let mut failed = 0;
        let mut stopped = false;
        let mut running = FuturesUnordered::new();
        loop {
            // The canaries first, one at a time and alone; then the rest,
            // `parallel` at a time.
            let (limit, width) = if done < canary {
                (canary, 1)
            } else {
                (total, parallel)
            };
            while !stopped
                && next < limit
                && running.len() < width
                && !self.interrupt.is_triggered()
            {
                running.push(self.apply_one(next, options));
                next += 1;
            }
            let Some((index, outcome)) = running.next().await else {
                break;
            };
            done += 1;
            if outcome.outcome == Outcome::Failed {
                failed += 1;
                if failed > options.max_failures || index < canary {
                    stopped = true;
                }
            }
            self.events.emit(&outcome.done_event(done, total, failed));
            results[index] = Some(outcome);
        }
        let databases: Vec<DatabaseOutcome> = results
            .into_iter()
            .zip(&self.databases)
            .map(|(result, database)| {
                result.unwrap_or_else(|| DatabaseOutcome::of(database, Outcome::NotStarted))
            })
            .collect();
        let left = databases.iter().any(|d| d.outcome == Outcome::NotStarted);
        let cut = databases.iter().any(|d| d.outcome == Outcome::Interrupted);
        // A Ctrl-C that left something undone stops the fleet as the
        // operator's choice; one after the last database ended changes nothing.
        let stopped = if self.interrupt.is_triggered() && (left || cut) {
            Some(ReasonCode::new(Code::Interrupted).to_string())
        } else {
            left.then(|| ReasonCode::new(Code::FleetStopped).to_string())
        };
        Ok(FleetReport::of(databases, stopped))
    }

    /// One database's state, and whether it could not be read at all.
    async fn status_one(
        &self,
        index: usize,
        target: Option<&str>,
    ) -> (usize, DatabaseOutcome, bool) {
        let database = &self.databases[index];
        let started = Instant::now();
        let migrator = Migrator::new(self.config.clone())
            .with_connection(database.settings.clone())
            .with_interrupt(self.interrupt.clone());
        let mut outcome = DatabaseOutcome::of(database, Outcome::Failed);
        let mut unread = false;
        match migrator.status(target).await {
            Ok(states) => {
                let mut problem = None;
                let mut detail = None;
                for status in &states {
                    let state = &status.state;
                    for entry in &state.entries {
                        match entry.state {
                            State::Pending | State::OutOfOrder | State::Changed => outcome
                                .migrations
                                .push(format!("{}:{}", state.namespace, entry.version)),
                            State::Dirty => {
                                problem.get_or_insert(ReasonCode::migration(
                                    Code::MigrationDirty,
                                    &state.namespace,
                                    &entry.version,
                                ));
                            }
                            State::ChecksumMismatch => {
                                problem.get_or_insert(ReasonCode::migration(
                                    Code::PostgresMigrationChecksumMismatch,
                                    &state.namespace,
                                    &entry.version,
                                ));
                            }
                            State::FileMissing => {
                                problem.get_or_insert(ReasonCode::migration(
                                    Code::MigrationFileMissing,
                                    &state.namespace,
                                    &entry.version,
                                ));
                            }
                            State::Applied | State::NewerApplied | State::Excluded => {}
                        }
                    }
                    // What apply would refuse on, as `status` shows it.
                    if status.standby {
                        problem.get_or_insert(ReasonCode::new(Code::DatabaseIsStandby));
                    }
                    if let Some(adopt) = &status.adopt_required
                        && problem.is_none()
                    {
                        problem = Some(adopt.reason.clone());
                        detail = Some(format!("{} (next: {})", adopt.message, adopt.hint));
                    }
                    if let Some(drift) = status
                        .drift
                        .as_ref()
                        .filter(|d| d.status == crate::report::Status::Fail)
                        && problem.is_none()
                    {
                        problem = drift.reason.clone();
                        detail = Some(format!(
                            "{} (next: if that change is meant, `migsafe apply --force` on this database records the schema again)",
                            drift.detail
                        ));
                    }
                    // New or changed Flyway repeatables run at the next apply.
                    for entry in state.pending_repeatables() {
                        outcome
                            .migrations
                            .push(format!("{}:{}", state.namespace, entry.version));
                    }
                }
                outcome.outcome = match (&problem, outcome.migrations.is_empty()) {
                    (Some(_), _) => Outcome::Failed,
                    (None, true) => Outcome::UpToDate,
                    (None, false) => Outcome::Pending,
                };
                outcome.reason = problem.map(|p| p.to_string());
                outcome.message = detail;
            }
            Err(err) => {
                unread = true;
                outcome.reason = Some(err.reason().to_string());
                outcome.message = Some(crate::db::scrub(&err.to_string()));
                outcome.exit_code = Some(err.exit_code());
            }
        }
        outcome.duration_ms = millis(started.elapsed());
        (index, outcome, unread)
    }

    /// `fleet status`: every database's state, read-only, `parallel` at a
    /// time: up to date, N pending, or its problem (dirty, edited, missing,
    /// unreachable) with its reason code.
    pub async fn status(&self, target: Option<&str>, parallel: usize) -> Result<FleetReport> {
        self.config.select(target)?;
        let total = self.databases.len();
        let mut results: Vec<Option<DatabaseOutcome>> = vec![None; total];
        let mut running = FuturesUnordered::new();
        let mut next = 0;
        let mut done = 0;
        let mut failed = 0;
        let mut unreadable = 0;
        loop {
            while next < total && running.len() < parallel.max(1) && !self.interrupt.is_triggered()
            {
                running.push(self.status_one(next, target));
                next += 1;
            }
            let Some((index, outcome, unread)) = running.next().await else {
                break;
            };
            done += 1;
            unreadable += usize::from(unread);
            failed += usize::from(outcome.outcome == Outcome::Failed);
            self.events.emit(&outcome.done_event(done, total, failed));
            results[index] = Some(outcome);
        }
        let databases: Vec<DatabaseOutcome> = results
            .into_iter()
            .zip(&self.databases)
            .map(|(result, database)| {
                result.unwrap_or_else(|| DatabaseOutcome::of(database, Outcome::NotStarted))
            })
            .collect();
        let stopped = databases
            .iter()
            .any(|d| d.outcome == Outcome::NotStarted)
            .then(|| ReasonCode::new(Code::Interrupted).to_string());
        Ok(FleetReport {
            unreadable,
            ..FleetReport::of(databases, stopped)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_databases_file_names_each_database_without_its_password() {
        let text = "# tenants\n\npostgres://app:s3cretpw@db1.internal:5433/tenant_1\nhost=db2 port=5432 dbname=tenant_2 user=app password=s3cretpw\n";
        let databases = parse_databases(text, "fleet.txt").unwrap();
        assert_eq!(databases.len(), 2);
        assert_eq!(databases[0].name, "db1.internal:5433/tenant_1");
        assert_eq!(databases[0].dir, "db1.internal_5433_tenant_1");
        assert_eq!(databases[0].line, 3);
        assert_eq!(databases[1].name, "db2:5432/tenant_2");
        assert!(!format!("{databases:?}").contains("s3cretpw"));
    }

    #[test]
    fn a_comment_after_a_database_is_not_part_of_it() {
        let text = "postgres://a@h/x   # tenant 7\n  # indented comment\nhost=h dbname=y password='p #1'  # quoted stays\npostgres://a:p%23w@h/z#\n";
        let databases = parse_databases(text, "f").unwrap();
        assert_eq!(databases.len(), 3, "{databases:?}");
        assert_eq!(databases[0].name, "h:5432/x");
        assert_eq!(
            databases[1].settings.config().get_password(),
            Some(&b"p #1"[..])
        );
        assert_eq!(
            without_comment("postgres://a@h/x#frag"),
            "postgres://a@h/x#frag"
        );
        let empty = parse_databases("# only\n  # comments\n", "f").unwrap_err();
        assert_eq!(empty.reason().code(), Code::ConfigInvalid);
    }

    #[test]
    fn an_interrupted_fleet_exits_130_and_counts_no_failure() {
        let dbs = parse_databases("postgres://a@h/x\npostgres://a@h/y\n", "f").unwrap();
        let mut cut = DatabaseOutcome::of(&dbs[0], Outcome::Interrupted);
        cut.migrations = vec!["default:0001".into()];
        let report = FleetReport::of(
            vec![cut, DatabaseOutcome::of(&dbs[1], Outcome::NotStarted)],
            Some(ReasonCode::new(Code::Interrupted).to_string()),
        );
        assert_eq!(
            (report.failed, report.interrupted, report.not_started),
            (0, 1, 1)
        );
        let err = report.error().unwrap();
        assert_eq!(err.exit_code(), 130);
        assert_eq!(err.reason().to_string(), "INTERRUPTED");
        assert!(
            err.to_string().contains("/x (1 migration(s) committed)"),
            "{err}"
        );
        assert!(err.to_string().contains("1 not started"), "{err}");
    }

    #[test]
    fn a_failure_before_the_interruption_is_the_exit_code() {
        let dbs = parse_databases(
            "postgres://a@h/x\npostgres://a@h/y\npostgres://a@h/z\n",
            "f",
        )
        .unwrap();
        let mut failed = DatabaseOutcome::of(&dbs[0], Outcome::Failed);
        failed.reason = Some("MIGRATION_FAILED:default:0002".into());
        let report = FleetReport::of(
            vec![
                failed,
                DatabaseOutcome::of(&dbs[1], Outcome::Interrupted),
                DatabaseOutcome::of(&dbs[2], Outcome::NotStarted),
            ],
            Some(ReasonCode::new(Code::Interrupted).to_string()),
        );
        let err = report.error().unwrap();
        assert_eq!(err.exit_code(), 2, "{err}");
        assert_eq!(err.reason().to_string(), "FLEET_STOPPED");
        assert!(
            err.to_string().contains("MIGRATION_FAILED:default:0002"),
            "{err}"
        );
        assert!(err.to_string().contains("then interrupted"), "{err}");
    }

    #[test]
    fn a_database_listed_twice_is_refused() {
        let text = "postgres://a@h/x\npostgres://b@h/x\n";
        let err = parse_databases(text, "fleet.txt").unwrap_err();
        assert!(err.to_string().contains("fleet.txt:2"), "{err}");
        assert!(parse_databases("# nothing\n", "f").is_err());
    }
}

/// The directory of a database's logs and backups: `host_port_dbname`, and
/// when the host or database name holds other characters than letters,
/// digits, `_`, `.` and `-` (which become `_`), a short hash of the whole
/// name, so that `t?x` and `t_x` never share one (nor their
/// `latest-backup.txt`).
fn directory_of(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let (server, db) = name.split_once('/').unwrap_or((name, ""));
    let host = server.rsplit_once(':').map_or(server, |(h, _)| h);
    let dir: String = name
        .chars()
        .map(|c| if plain(c) { c } else { '_' })
        .collect();
    if host.chars().all(plain) && db.chars().all(plain) {
        dir
    } else {
        format!(
            "{dir}-{}",
            &hex::encode(Sha256::digest(name.as_bytes()))[..8]
        )
    }
}

#[cfg(test)]
mod directory_tests {
    #[test]
    fn names_that_look_alike_get_directories_of_their_own() {
        assert_eq!(
            super::directory_of("127.0.0.1:5432/tenant_01"),
            "127.0.0.1_5432_tenant_01"
        );
        let a = super::directory_of("127.0.0.1:5432/t?x");
        let b = super::directory_of("127.0.0.1:5432/t_x");
        assert_ne!(a, b);
        assert!(a.starts_with("127.0.0.1_5432_t_x-"), "{a}");
        assert_eq!(b, "127.0.0.1_5432_t_x");
    }
}

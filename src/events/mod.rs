//! Events the library sends while it works, and the sink trait they go to.
//!
//! The library never prints: the CLI renders events as human lines, and
//! `report::EventLog` appends them to `logs/migrations.jsonl`. An embedding
//! application can pass its own sink (or [`NoEvents`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use tokio::sync::Notify;

use crate::db::activity::Session;

mod trace;
pub use trace::TracingEvents;

/// A duration in whole milliseconds, as events and reports carry it.
pub fn millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Applying an up script.
    Up,
    /// Applying a down script.
    Down,
}

/// Something that happened, in the order it happened.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// The work about to be done in a namespace.
    Plan {
        /// Namespace.
        namespace: String,
        /// Direction.
        direction: Direction,
        /// Versions in the order they will run.
        versions: Vec<String>,
    },
    /// The namespace lock is held by someone else; waiting.
    LockWaiting {
        /// Namespace.
        namespace: String,
        /// The session holding it, when known.
        holder: Option<Session>,
    },
    /// The namespace lock is ours.
    LockAcquired {
        /// Namespace.
        namespace: String,
        /// How long we waited.
        duration_ms: u64,
    },
    /// Versions applied by a newer release than this one (no file here,
    /// newer than every file): allowed (`allow_newer_applied`), noted.
    NewerApplied {
        /// Namespace.
        namespace: String,
        /// The newer versions, in order.
        versions: Vec<String>,
        /// The newest version this release has.
        known: String,
        /// Reason code (`MIGRATION_NEWER_THAN_RELEASE:{ns}:{v}`, the newest one).
        reason: String,
    },
    /// Nothing to do in a namespace.
    UpToDate {
        /// Namespace.
        namespace: String,
    },
    /// A script starts.
    MigrationStarted {
        /// Namespace.
        namespace: String,
        /// Version.
        version: String,
        /// Name.
        name: String,
        /// Up or down.
        direction: Direction,
        /// Runs in one transaction with its history row.
        transactional: bool,
        /// It ran before and runs again in place because it changed (a
        /// Liquibase `runOnChange` changeset); its history row is rewritten.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        reruns: bool,
    },
    /// A Liquibase precondition of a changeset did not hold, or its SQL
    /// failed; `action` says what follows (`HALT`: it does not run, the run
    /// stops; `MARK_RAN`: recorded as applied without running; `WARN`: it
    /// runs anyway).
    PreconditionFailed {
        /// Namespace.
        namespace: String,
        /// Version.
        version: String,
        /// Name (`author:id`).
        name: String,
        /// Line of the `--precondition-sql-check` in its file.
        line: usize,
        /// The check's SQL (secrets masked).
        sql: String,
        /// What it had to return.
        expected: String,
        /// What it returned, when it ran.
        #[serde(skip_serializing_if = "Option::is_none")]
        got: Option<String>,
        /// Why it could not be checked, when its SQL failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// `onFail` (or `onError`) of the changeset.
        action: crate::source::layouts::liquibase::OnFail,
        /// Its `onFailMessage`, when it has one.
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// A changeset was recorded as applied without running, its
    /// precondition having said `MARK_RAN`; the record is committed.
    MarkedRan {
        /// Namespace.
        namespace: String,
        /// Version.
        version: String,
        /// Name.
        name: String,
    },
    /// Rollback of a changeset recorded without running (`MARK_RAN`): its
    /// down script would undo what it never did, so only its history row
    /// was removed.
    MarkedRanForgotten {
        /// Namespace.
        namespace: String,
        /// Version.
        version: String,
        /// Name.
        name: String,
    },
    /// A lock wait timed out (SQLSTATE 55P03); the script will run again.
    MigrationRetried {
        /// Namespace.
        namespace: String,
        /// Version.
        version: String,
        /// Which attempt failed (1-based).
        attempt: u32,
        /// Wait before the next attempt.
        delay_ms: u64,
        /// Reason code.
        reason: String,
        /// Sessions that were blocking it, queries redacted.
        blockers: Vec<Session>,
    },
    /// A script finished and its history row is committed.
    MigrationFinished {
        /// Namespace.
        namespace: String,
        /// Version.
        version: String,
        /// Name.
        name: String,
        /// Up or down.
        direction: Direction,
        /// Wall time of the script and its history write.
        duration_ms: u64,
    },
    /// What the server said while a script ran (`RAISE NOTICE`, a
    /// `WARNING`), sent while the script runs (at most one batch a second
    /// after the first), before its end.
    ServerNotice {
        /// Namespace.
        namespace: String,
        /// Version.
        version: String,
        /// `NOTICE`, `WARNING`, `INFO`…
        severity: String,
        /// The message (secrets masked).
        message: String,
        /// Its DETAIL.
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// Its HINT.
        #[serde(skip_serializing_if = "Option::is_none")]
        hint: Option<String>,
    },
    /// Older notices of a script that were not kept (a loop raising one per
    /// row): only the last 200 are.
    ServerNoticesDropped {
        /// Namespace.
        namespace: String,
        /// Version.
        version: String,
        /// How many.
        count: usize,
    },
    /// A script failed.
    MigrationFailed {
        /// Namespace.
        namespace: String,
        /// Version.
        version: String,
        /// Name.
        name: String,
        /// Up or down.
        direction: Direction,
        /// Reason code.
        reason: String,
        /// What the server said, with the position in the file.
        message: String,
        /// Time spent before the failure.
        duration_ms: u64,
    },
    /// Preflight or postflight finished; its report is written.
    PhaseChecked {
        /// `preflight` or `postflight`.
        phase: String,
        /// `pass`, `warn` or `fail`.
        result: crate::report::Status,
        /// Failing checks.
        failures: usize,
        /// Warnings.
        warnings: usize,
        /// `--force` overrode a failure.
        forced: bool,
        /// The report file, when the migrator writes reports (the CLI
        /// always does; a library caller opts in with `with_log_dir`).
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// Every warning and failure, `CODE: detail`, for people to read
        /// without opening the report.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        notes: Vec<String>,
    },
    /// A verified backup was written.
    BackupWritten {
        /// The file.
        path: String,
        /// Its size.
        bytes: u64,
        /// How long pg_dump and the verification took.
        duration_ms: u64,
    },
    /// A dirty migration was recovered (down script, then retried).
    Recovered {
        /// Namespace.
        namespace: String,
        /// Version.
        version: String,
        /// What was done.
        detail: String,
    },
    /// A history row was written without running the script.
    Stamped {
        /// Namespace.
        namespace: String,
        /// Version.
        version: String,
    },
    /// A migration another tool applied was recorded by `adopt`, without
    /// running it (sent after the adoption committed).
    Adopted {
        /// Namespace.
        namespace: String,
        /// Version.
        version: String,
        /// The tool whose history it came from.
        tool: String,
        /// When that tool applied it (RFC 3339; the adoption time when the
        /// tool keeps none).
        applied_at: String,
    },
    /// The history was changed by `repair`.
    Repaired {
        /// Namespace.
        namespace: String,
        /// Version.
        version: String,
        /// `accept-checksum`, `clear-dirty`, `forget`.
        action: String,
        /// The operator's reason.
        reason: String,
    },
    /// The SQLite file was copied with SQLite's online backup API.
    SourceBackupWritten {
        /// The copy.
        path: String,
        /// Its size.
        bytes: u64,
        /// How long the backup and its check took.
        duration_ms: u64,
    },
    /// An online migration (SPEC 15) starts one of its steps.
    OnlineStep {
        /// Namespace.
        namespace: String,
        /// Version.
        version: String,
        /// 1-based step number.
        step: usize,
        /// Steps in all.
        total: usize,
        /// The step's SQL.
        sql: String,
        /// The lock it takes.
        locks: String,
    },
    /// An interrupted online migration or backfill picks up where it stopped.
    OnlineResumed {
        /// Namespace.
        namespace: String,
        /// Version.
        version: String,
        /// Where it resumes ("at step 3 of 5", "after id 41000: 41000 rows done").
        detail: String,
    },
    /// A backfill (SPEC 16) committed batches (at most about once a second).
    BackfillProgress {
        /// Namespace.
        namespace: String,
        /// Version.
        version: String,
        /// The table.
        table: String,
        /// Rows updated so far.
        rows: u64,
        /// Batches committed so far.
        batches: u64,
        /// Keys per batch now (adapted to `batch_time`).
        batch_size: u64,
        /// Rows visited per second, this run.
        rate: u64,
        /// Estimated time left, from the table's row estimate.
        eta_ms: Option<u64>,
    },
    /// A backfill waits before its next batch (sessions waiting for locks on
    /// its table, or replicas behind).
    BackfillPaused {
        /// Namespace.
        namespace: String,
        /// Version.
        version: String,
        /// Why.
        reason: String,
    },
    /// A streaming standby is behind `max_replica_lag` /
    /// `max_replica_lag_bytes`: the next migration (or backfill batch) waits
    /// (sent when the wait starts and then every few seconds).
    ReplicaLag {
        /// The standby (`application_name`, else its address).
        standby: String,
        /// WAL not yet replayed, in bytes.
        lag_bytes: i64,
        /// Its replay lag in time, when the server measured one.
        lag_ms: Option<u64>,
        /// How long this wait has lasted so far.
        waited_ms: u64,
        /// What waits: `migration` (the next migration) or `batch` (a
        /// backfill's next batch).
        before: String,
        /// Reason code (`REPLICA_LAG:{standby}`).
        reason: String,
    },
    /// One database of `fleet apply` (or `fleet status`) ended.
    FleetDatabaseDone {
        /// The database (`host:port/dbname`, never a password).
        database: String,
        /// `applied`, `up_to_date`, `failed`, or for status the state.
        outcome: String,
        /// Migrations applied (apply) or pending (status).
        migrations: usize,
        /// Reason code of its failure.
        reason: Option<String>,
        /// Its failure, first line.
        message: Option<String>,
        /// Databases ended so far.
        done: usize,
        /// Databases in the file.
        total: usize,
        /// Failures so far.
        failed: usize,
        /// Wall time.
        duration_ms: u64,
    },
    /// A cutover table starts loading.
    CopyStarted {
        /// Target table.
        table: String,
        /// Rows to copy.
        rows: u64,
    },
    /// A cutover table is loading (at most every two seconds per table).
    CopyProgress {
        /// Target table.
        table: String,
        /// Rows sent so far.
        rows: u64,
        /// Rows to copy.
        total: u64,
    },
    /// A cutover table is loaded (not yet committed when others still load).
    CopyFinished {
        /// Target table.
        table: String,
        /// Rows copied.
        rows: u64,
        /// Bytes sent.
        bytes: u64,
        /// Wall time.
        duration_ms: u64,
    },
    /// An `apply` or `rollback` ended in a namespace that ran something,
    /// or that it did not finish (a failure). Nothing pending sends none.
    RunFinished {
        /// `apply` or `rollback`.
        command: String,
        /// Namespace.
        namespace: String,
        /// The versions that ran, in order.
        versions: Vec<String>,
        /// Everything ran.
        succeeded: bool,
        /// The failure's reason code.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// The failure's message.
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// Wall time of the whole run.
        duration_ms: u64,
    },
    /// A webhook notice (`[notify]`) failed or took longer than 5 s: a
    /// warning, never a failed run.
    NoticeFailed {
        /// The notice: `start`, `success`, `failure` or `rollback`.
        notice: String,
        /// Namespace.
        namespace: String,
        /// What went wrong (the webhook URL is never shown).
        message: String,
    },
    /// The run's report was written (`report-<timestamp>.html` and
    /// `run-report-<timestamp>.json`).
    ReportWritten {
        /// The HTML report, when built with the `html-report` feature.
        #[serde(skip_serializing_if = "Option::is_none")]
        html: Option<String>,
        /// The JSON document it was rendered from.
        json: String,
    },
    /// Long work advancing (verify steps, a backfill's rows): the CLI
    /// draws a progress bar on a terminal, a line now and then elsewhere.
    Progress {
        /// What is advancing (`verify`, `backfill app:0003`…), one bar each.
        task: String,
        /// Done so far.
        done: u64,
        /// The whole, when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
        /// `rows`, `steps` or `bytes`.
        unit: String,
    },
}

/// Where events go.
pub trait EventSink: Send + Sync {
    /// Receives one event.
    fn emit(&self, event: &Event);
}

/// A sink that drops everything.
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _event: &Event) {}
}

/// Sends each event to several sinks.
pub struct Fanout(pub Vec<Arc<dyn EventSink>>);

impl EventSink for Fanout {
    fn emit(&self, event: &Event) {
        for sink in &self.0 {
            sink.emit(event);
        }
    }
}

/// A Ctrl-C (or any stop request) shared between the signal handler and the
/// running migration, which then cancels its statement on the server.
#[derive(Clone, Default)]
pub struct Interrupt {
    flag: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl Interrupt {
    /// A fresh, untriggered interrupt.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests the stop.
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// True once a stop was requested.
    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Resolves when a stop is requested.
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_triggered() {
                return;
            }
            notified.await;
        }
    }
}

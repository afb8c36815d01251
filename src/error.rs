//! The one error type of the library, its stable reason codes, and the only
//! mapping from an error to the process exit code of SPEC section 11.
//!
//! Tests and scripts assert reason codes (`MIGRATION_DIRTY:app:2`), never prose,
//! so the prose can keep improving without breaking anyone.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// The family of a reason code: the stable, greppable part before the first `:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum Code {
    /// An applied migration's file no longer matches the recorded checksum.
    PostgresMigrationChecksumMismatch,
    /// A migration was interrupted (no-transaction) and needs recovery.
    MigrationDirty,
    /// An applied version has no file any more.
    MigrationFileMissing,
    /// A pending version sorts before the newest applied one.
    MigrationOutOfOrder,
    /// An applied version is newer than every migration of this release
    /// (applied by a newer release): a note, unless `allow_newer_applied = false`.
    MigrationNewerThanRelease,
    /// A statement gave up waiting for a lock after every retry.
    LockTimeout,
    /// Another runner holds the namespace lock past `lock_wait`.
    AdvisoryLockBusy,
    /// A rollback needs a down script that does not exist.
    DownScriptMissing,
    /// An up script failed on the server.
    MigrationFailed,
    /// A Liquibase precondition (`onFail:HALT`) did not hold, or could not
    /// be checked (`onError:HALT`): the changeset did not run.
    PreconditionFailed,
    /// A down script failed on the server.
    RollbackFailed,
    /// The run was interrupted (Ctrl-C); the running statement was cancelled.
    MigrationCancelled,
    /// Ctrl-C or SIGTERM before anything started (exit 130).
    Interrupted,
    /// Recovery's down script would destroy rows written after the interruption.
    RecoveryWouldDestroyData,
    /// The connection broke after COMMIT was sent: the outcome must be checked.
    MigrationOutcomeUnknown,
    /// A transactional script contains BEGIN/COMMIT/ROLLBACK of its own.
    MigrationTransactionControl,
    /// A migration file exists but cannot be used (name, encoding, emptiness).
    MigrationFileInvalid,
    /// Two files claim the same version in one namespace.
    MigrationVersionDuplicate,
    /// The migrations directory of a namespace does not exist.
    MigrationDirMissing,
    /// The directory holds files, but none in a layout migsafe reads.
    MigrationLayoutUnknown,
    /// `migsafe.toml` cannot be read or is invalid.
    ConfigInvalid,
    /// No database URL was given for a namespace that needs one.
    DatabaseUrlMissing,
    /// The database URL cannot be parsed.
    DatabaseUrlInvalid,
    /// Nothing answered at the address, or the connection broke.
    DatabaseUnreachable,
    /// The server rejected the credentials.
    DatabaseAuthFailed,
    /// The server has no database of that name.
    DatabaseNotFound,
    /// The URL leads to a standby in recovery: it cannot be migrated.
    DatabaseIsStandby,
    /// The TLS handshake or certificate verification failed.
    DatabaseTlsFailed,
    /// The server answered with an error outside a migration.
    DatabaseError,
    /// `--target` names a namespace that is not configured.
    NamespaceUnknown,
    /// A version given on the command line matches no migration.
    VersionUnknown,
    /// The command line or its combination of options is not usable.
    Usage,
    /// A local file could not be read or written.
    Io,
    /// The throwaway PostgreSQL server could not be started.
    SandboxFailed,
    /// The history table holds something migsafe cannot read.
    HistoryInvalid,
    /// The live schema differs from the one recorded after the last run.
    SchemaDrift,
    /// A transaction has been open longer than `long_transaction`.
    LongRunningTransaction,
    /// A session holds a lock that pending DDL would wait for.
    BlockingLock,
    /// Sessions are waiting for locks right now.
    LockWaiters,
    /// A foreign key is NOT VALID.
    FkNotValidated,
    /// A check constraint is NOT VALID.
    CheckNotValidated,
    /// Rows whose foreign key points at no parent.
    FkOrphanedRows,
    /// An index is INVALID.
    IndexInvalid,
    /// A migration took longer than `migration_time_budget`.
    MigrationOverBudget,
    /// Preflight found a failing check.
    PreflightFailed,
    /// Postflight found a failing check.
    PostflightFailed,
    /// The backup could not be written or verified.
    BackupFailed,
    /// Not enough free space for the backup.
    BackupSpaceLow,
    /// pg_dump is older than the server.
    BackupToolTooOld,
    /// A lint error in a pending migration.
    LintError,
    /// `wait` gave up: the database (or its migrations) was not ready in time.
    WaitTimeout,
    /// A migration is not applied (readiness check).
    MigrationPending,
    /// The SQLite file of a cutover is missing or unreadable.
    SqliteSourceInvalid,
    /// A SQLite table has no table in the target schema.
    CutoverTableMissing,
    /// A target table has no SQLite table (left as it is).
    CutoverTableUnmapped,
    /// A SQLite table that is not copied (virtual table).
    CutoverTableSkipped,
    /// A SQLite column has no column in the target table.
    CutoverColumnMissing,
    /// A target column is NOT NULL without default and has no source.
    CutoverColumnRequired,
    /// A column that is not copied (generated on the target).
    CutoverColumnSkipped,
    /// A target column's type has no conversion.
    CutoverTypeUnsupported,
    /// Values that cannot become the target type exactly.
    CutoverValueMisfit,
    /// The cutover precheck found problems; nothing was loaded.
    CutoverPrecheckFailed,
    /// Target tables already hold rows.
    CutoverTargetNotEmpty,
    /// The load failed; the target tables were emptied again.
    CutoverCopyFailed,
    /// A table's rows differ between SQLite and PostgreSQL.
    CutoverMismatch,
    /// Rows the target's primary or unique key would refuse as duplicates.
    CutoverDuplicateKey,
    /// How the numbers of a date column are read (detected or decided).
    CutoverEpochUnit,
    /// A cutover step was interrupted (Ctrl-C, SIGTERM).
    CutoverCancelled,
    /// `cutover sqlite verify`: another connection committed to the SQLite
    /// file while verify read it, so its slices and passes did not all see
    /// one state: the comparison means nothing.
    CutoverSourceChanged,
    /// The `[verify] setup` file could not be read or failed on a scratch database.
    VerifySetupFailed,
    /// `adopt` cannot vouch for a migration of the other tool's history.
    AdoptMismatch,
    /// `adopt` found no history table of the tool (or of any tool).
    AdoptSourceMissing,
    /// `adopt` found the history tables of several tools: `--from` decides.
    AdoptSourceAmbiguous,
    /// Preflight: another tool's history table holds rows and migsafe has
    /// recorded nothing for the namespace: `adopt` first, or apply would run
    /// again what that tool ran.
    AdoptRequired,
    /// A `-- migsafe:backfill` migration cannot run in batches (no single-column
    /// integer or uuid primary key, not one plain `UPDATE`…); nothing ran.
    BackfillRefused,
    /// An interrupted online migration or backfill was recorded for a different
    /// script than the file holds now: it cannot resume.
    OnlineProgressMismatch,
    /// A streaming standby replays later than `max_replica_lag` /
    /// `max_replica_lag_bytes` (subject: the standby's name).
    ReplicaLag,
    /// Fewer streaming standbys are connected than `expect_standbys`.
    ReplicaMissing,
    /// `fleet apply` stopped starting databases after `--max-failures`
    /// failures (or a failed canary).
    FleetStopped,
    /// `fleet apply` ran every database and some failed (each is named
    /// with its own reason code).
    FleetFailed,
    /// `fleet status` could not read some databases (unreachable, or their
    /// history could not be read; each is named with its own reason code).
    FleetUnreadable,
}

impl Code {
    /// The stable text of the code, as printed and stored in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::PostgresMigrationChecksumMismatch => "POSTGRES_MIGRATION_CHECKSUM_MISMATCH",
            Code::MigrationDirty => "MIGRATION_DIRTY",
            Code::MigrationFileMissing => "MIGRATION_FILE_MISSING",
            Code::MigrationOutOfOrder => "MIGRATION_OUT_OF_ORDER",
            Code::MigrationNewerThanRelease => "MIGRATION_NEWER_THAN_RELEASE",
            Code::LockTimeout => "LOCK_TIMEOUT",
            Code::AdvisoryLockBusy => "ADVISORY_LOCK_BUSY",
            Code::DownScriptMissing => "DOWN_SCRIPT_MISSING",
            Code::MigrationFailed => "MIGRATION_FAILED",
            Code::PreconditionFailed => "PRECONDITION_FAILED",
            Code::RollbackFailed => "ROLLBACK_FAILED",
            Code::MigrationCancelled => "MIGRATION_CANCELLED",
            Code::Interrupted => "INTERRUPTED",
            Code::RecoveryWouldDestroyData => "RECOVERY_WOULD_DESTROY_DATA",
            Code::MigrationOutcomeUnknown => "MIGRATION_OUTCOME_UNKNOWN",
            Code::MigrationTransactionControl => "MIGRATION_TRANSACTION_CONTROL",
            Code::MigrationFileInvalid => "MIGRATION_FILE_INVALID",
            Code::MigrationVersionDuplicate => "MIGRATION_VERSION_DUPLICATE",
            Code::MigrationDirMissing => "MIGRATION_DIR_MISSING",
            Code::MigrationLayoutUnknown => "MIGRATION_LAYOUT_UNKNOWN",
            Code::ConfigInvalid => "CONFIG_INVALID",
            Code::DatabaseUrlMissing => "DATABASE_URL_MISSING",
            Code::DatabaseUrlInvalid => "DATABASE_URL_INVALID",
            Code::DatabaseUnreachable => "DATABASE_UNREACHABLE",
            Code::DatabaseAuthFailed => "DATABASE_AUTH_FAILED",
            Code::DatabaseNotFound => "DATABASE_NOT_FOUND",
            Code::DatabaseIsStandby => "DATABASE_IS_STANDBY",
            Code::DatabaseTlsFailed => "DATABASE_TLS_FAILED",
            Code::DatabaseError => "DATABASE_ERROR",
            Code::NamespaceUnknown => "NAMESPACE_UNKNOWN",
            Code::VersionUnknown => "VERSION_UNKNOWN",
            Code::Usage => "USAGE",
            Code::Io => "IO_ERROR",
            Code::SandboxFailed => "SANDBOX_FAILED",
            Code::HistoryInvalid => "HISTORY_INVALID",
            Code::SchemaDrift => "SCHEMA_DRIFT",
            Code::LongRunningTransaction => "LONG_RUNNING_TRANSACTION",
            Code::BlockingLock => "BLOCKING_LOCK",
            Code::LockWaiters => "LOCK_WAITERS",
            Code::FkNotValidated => "FK_NOT_VALIDATED",
            Code::CheckNotValidated => "CHECK_NOT_VALIDATED",
            Code::FkOrphanedRows => "FK_ORPHANED_ROWS",
            Code::IndexInvalid => "INDEX_INVALID",
            Code::MigrationOverBudget => "MIGRATION_OVER_BUDGET",
            Code::PreflightFailed => "PREFLIGHT_FAILED",
            Code::PostflightFailed => "POSTFLIGHT_FAILED",
            Code::BackupFailed => "BACKUP_FAILED",
            Code::BackupSpaceLow => "BACKUP_SPACE_LOW",
            Code::BackupToolTooOld => "BACKUP_TOOL_TOO_OLD",
            Code::LintError => "LINT_ERROR",
            Code::WaitTimeout => "WAIT_TIMEOUT",
            Code::MigrationPending => "MIGRATION_PENDING",
            Code::SqliteSourceInvalid => "SQLITE_SOURCE_INVALID",
            Code::CutoverTableMissing => "CUTOVER_TABLE_MISSING",
            Code::CutoverTableUnmapped => "CUTOVER_TABLE_UNMAPPED",
            Code::CutoverTableSkipped => "CUTOVER_TABLE_SKIPPED",
            Code::CutoverColumnMissing => "CUTOVER_COLUMN_MISSING",
            Code::CutoverColumnRequired => "CUTOVER_COLUMN_REQUIRED",
            Code::CutoverColumnSkipped => "CUTOVER_COLUMN_SKIPPED",
            Code::CutoverTypeUnsupported => "CUTOVER_TYPE_UNSUPPORTED",
            Code::CutoverValueMisfit => "CUTOVER_VALUE_MISFIT",
            Code::CutoverPrecheckFailed => "CUTOVER_PRECHECK_FAILED",
            Code::CutoverTargetNotEmpty => "CUTOVER_TARGET_NOT_EMPTY",
            Code::CutoverCopyFailed => "CUTOVER_COPY_FAILED",
            Code::CutoverMismatch => "CUTOVER_MISMATCH",
            Code::CutoverDuplicateKey => "CUTOVER_DUPLICATE_KEY",
            Code::CutoverEpochUnit => "CUTOVER_EPOCH_UNIT",
            Code::CutoverCancelled => "CUTOVER_CANCELLED",
            Code::CutoverSourceChanged => "CUTOVER_SOURCE_CHANGED",
            Code::VerifySetupFailed => "VERIFY_SETUP_FAILED",
            Code::AdoptMismatch => "ADOPT_MISMATCH",
            Code::AdoptSourceMissing => "ADOPT_SOURCE_MISSING",
            Code::AdoptSourceAmbiguous => "ADOPT_SOURCE_AMBIGUOUS",
            Code::AdoptRequired => "ADOPT_REQUIRED",
            Code::BackfillRefused => "BACKFILL_REFUSED",
            Code::OnlineProgressMismatch => "ONLINE_PROGRESS_MISMATCH",
            Code::ReplicaLag => "REPLICA_LAG",
            Code::ReplicaMissing => "REPLICA_MISSING",
            Code::FleetStopped => "FLEET_STOPPED",
            Code::FleetFailed => "FLEET_FAILED",
            Code::FleetUnreadable => "FLEET_UNREADABLE",
        }
    }
}

/// A stable reason code: a [`Code`] plus its subject (namespace, version, pid…),
/// displayed as `CODE:subject:subject`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReasonCode {
    code: Code,
    subject: Vec<String>,
}

impl ReasonCode {
    /// A code without a subject.
    pub fn new(code: Code) -> Self {
        ReasonCode {
            code,
            subject: Vec::new(),
        }
    }

    /// A code about one thing (a namespace, a pid…).
    pub fn about(code: Code, subject: impl Into<String>) -> Self {
        ReasonCode {
            code,
            subject: vec![subject.into()],
        }
    }

    /// A code about one version of one namespace.
    pub fn migration(code: Code, namespace: &str, version: impl fmt::Display) -> Self {
        ReasonCode {
            code,
            subject: vec![namespace.to_string(), version.to_string()],
        }
    }

    /// The family of this code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The namespace this code is about, for the codes whose subject starts
    /// with one (`MIGRATION_DIRTY:{ns}:{v}`, `ADVISORY_LOCK_BUSY:{ns}`, …;
    /// docs/reason-codes.md). `None` for `BLOCKING_LOCK:{pid}` and the like.
    pub fn namespace(&self) -> Option<&str> {
        match self.code.subject() {
            Subject::Namespace => self.subject.first().map(String::as_str),
            Subject::Other => None,
        }
    }

    /// The migration version this code is about (`MIGRATION_DIRTY:{ns}:{v}`),
    /// as a [`Version`](crate::source::Version).
    pub fn version(&self) -> Option<crate::source::Version> {
        match self.code.subject() {
            Subject::Namespace => self
                .subject
                .get(1)
                .and_then(|v| crate::source::Version::parse(v).ok()),
            Subject::Other => None,
        }
    }

    /// The subject as written after the code, part by part (`["app", "0003"]`,
    /// `["4242"]` for a pid, `["orders_customer_fk"]` for a constraint).
    pub fn subject(&self) -> &[String] {
        &self.subject
    }
}

/// What the first part of a code's subject is.
enum Subject {
    /// A namespace, maybe followed by a version.
    Namespace,
    /// A pid, a constraint, an index, a table, a standby, a host.
    Other,
}

impl Code {
    /// What this code's subject names (docs/reason-codes.md, SPEC 12).
    fn subject(self) -> Subject {
        match self {
            Code::PostgresMigrationChecksumMismatch
            | Code::MigrationDirty
            | Code::MigrationFileMissing
            | Code::MigrationOutOfOrder
            | Code::MigrationNewerThanRelease
            | Code::LockTimeout
            | Code::AdvisoryLockBusy
            | Code::DownScriptMissing
            | Code::MigrationFailed
            | Code::PreconditionFailed
            | Code::RollbackFailed
            | Code::MigrationCancelled
            | Code::Interrupted
            | Code::RecoveryWouldDestroyData
            | Code::MigrationOutcomeUnknown
            | Code::MigrationTransactionControl
            | Code::MigrationFileInvalid
            | Code::MigrationVersionDuplicate
            | Code::MigrationDirMissing
            | Code::MigrationLayoutUnknown
            | Code::DatabaseUrlMissing
            | Code::NamespaceUnknown
            | Code::VersionUnknown
            | Code::HistoryInvalid
            | Code::SchemaDrift
            | Code::MigrationOverBudget
            | Code::LintError
            | Code::MigrationPending
            | Code::AdoptMismatch
            | Code::BackfillRefused
            | Code::OnlineProgressMismatch
            | Code::AdoptSourceMissing
            | Code::AdoptSourceAmbiguous
            | Code::AdoptRequired => Subject::Namespace,
            _ => Subject::Other,
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code.as_str())?;
        for part in &self.subject {
            write!(f, ":{part}")?;
        }
        Ok(())
    }
}

impl Serialize for ReasonCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A lower-level error kept as the cause of an [`Error`].
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The SQLSTATE of a server error, kept as the source of an [`Error`]
/// built from a borrowed driver error ([`Error::sqlstate`] reads it).
#[cfg(feature = "engine")]
#[derive(Debug)]
pub(crate) struct ServerCode(pub(crate) tokio_postgres::error::SqlState);

#[cfg(feature = "engine")]
impl std::fmt::Display for ServerCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SQLSTATE {}", self.0.code())
    }
}

#[cfg(feature = "engine")]
impl std::error::Error for ServerCode {}

/// Every failure the library reports. Each variant names what happened; each
/// carries a reason code; [`Error::exit_code`] maps it to SPEC section 11.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad configuration, bad files, bad command line, or no usable connection.
    #[error("{message}")]
    Config {
        reason: ReasonCode,
        message: String,
        hint: Option<String>,
        /// The lower-level error this one comes from (a driver, I/O or
        /// server error), for `std::error::Error::source`.
        source: Option<Source>,
    },
    /// Migration files that cannot be used, one line per file.
    #[error("{}", render_problems(.problems))]
    Source {
        reason: ReasonCode,
        problems: Vec<FileProblem>,
    },
    /// A check before any change refused to go on; nothing was changed.
    #[error("{message}")]
    Refused {
        reason: ReasonCode,
        message: String,
        hint: Option<String>,
        /// The lower-level error this one comes from (a driver, I/O or
        /// server error), for `std::error::Error::source`.
        source: Option<Source>,
    },
    /// An up script (or the history write of it) failed; it was rolled back
    /// unless it is a no-transaction migration, which is then left dirty.
    #[error("{message}")]
    Migration {
        reason: ReasonCode,
        message: String,
        hint: Option<String>,
        /// The lower-level error this one comes from (a driver, I/O or
        /// server error), for `std::error::Error::source`.
        source: Option<Source>,
    },
    /// A rollback could not be done, or a down script failed.
    #[error("{message}")]
    Rollback {
        reason: ReasonCode,
        message: String,
        hint: Option<String>,
        /// The lower-level error this one comes from (a driver, I/O or
        /// server error), for `std::error::Error::source`.
        source: Option<Source>,
    },
    /// The throwaway server could not be started or used.
    #[error("{message}")]
    Sandbox {
        reason: ReasonCode,
        message: String,
        /// The lower-level error.
        source: Option<Source>,
    },
    /// The readiness contract is not met (SPEC 9): not ready to start.
    #[error("{message}")]
    NotReady {
        reason: ReasonCode,
        message: String,
        hint: Option<String>,
        /// Every unmet reason, in the order found (`reason` is the first).
        unmet: Vec<ReasonCode>,
        /// The lower-level error, when one unmet reason came from one.
        source: Option<Source>,
    },
    /// The migrations ran, but a postflight check failed.
    #[error("{message}")]
    Postflight {
        reason: ReasonCode,
        message: String,
        hint: Option<String>,
        /// The lower-level error this one comes from (a driver, I/O or
        /// server error), for `std::error::Error::source`.
        source: Option<Source>,
    },
}

/// One unusable migration file and why.
#[derive(Debug, Clone, Serialize)]
pub struct FileProblem {
    /// The stable code of this problem.
    pub reason: ReasonCode,
    /// The file (or directory) at fault.
    pub path: PathBuf,
    /// What is wrong with it and how to fix it.
    pub message: String,
}

fn render_problems(problems: &[FileProblem]) -> String {
    let mut out = String::new();
    for (index, problem) in problems.iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        out.push_str(&format!("{}: {}", problem.path.display(), problem.message));
    }
    out
}

/// What to do next, for errors raised without a hint of their own: every
/// failure a user meets ends with a `next:` line.
fn default_hint(code: Code) -> Option<&'static str> {
    Some(match code {
        Code::MigrationVersionDuplicate => {
            "give each migration its own version: rename one of the files (`migsafe new` picks the next version); nothing ran"
        }
        Code::MigrationFileInvalid => {
            "fix the file(s) listed (saved as UTF-8, named like 0001_name.up.sql, with SQL in the up script); every problem is listed at once, and nothing ran"
        }
        Code::MigrationDirMissing => {
            "create the directory, or point the namespace's `dir` in migsafe.toml at it; nothing ran"
        }
        Code::ConfigInvalid => {
            "fix migsafe.toml (docs/configuration.md lists every key and its default); nothing ran"
        }
        Code::Io => "check the path and its permissions; nothing ran",
        Code::SandboxFailed => {
            "install the PostgreSQL server binaries (scripts/test does, as root) or set MIGSAFE_PG_BIN to their directory"
        }
        Code::Usage => "see `migsafe <command> --help`; nothing ran",
        Code::DatabaseUrlMissing => {
            "give --database-url, set DATABASE_URL, or set the namespace's database_url_env"
        }
        _ => return None,
    })
}

impl Error {
    /// A configuration or usage error (exit 5).
    pub fn config(code: Code, message: impl Into<String>) -> Self {
        Error::Config {
            reason: ReasonCode::new(code),
            message: message.into(),
            hint: None,
            source: None,
        }
    }

    /// A configuration or usage error about one local file (exit 5).
    pub fn io(path: &std::path::Path, what: &str, err: &std::io::Error) -> Self {
        Error::Config {
            reason: ReasonCode::new(Code::Io),
            message: format!("cannot {what} {}: {err}", path.display()),
            hint: None,
            source: Some(Box::new(std::io::Error::new(err.kind(), err.to_string()))),
        }
    }

    /// A lost connection after a run has started is a failure of that run
    /// (exit 2 for apply, 4 for rollback), not a configuration problem (5):
    /// this turns `DATABASE_UNREACHABLE` into the run's failure, keeping its
    /// reason code and message.
    pub fn during_run(self, rollback: bool) -> Error {
        match self {
            Error::Config {
                reason,
                message,
                hint,
                source,
            } if reason.code() == Code::DatabaseUnreachable => {
                let hint = hint.or_else(|| {
                    Some(
                        "the connection broke during the run; nothing is half-applied (a transactional migration rolls back, a no-transaction one is marked dirty). Run `migsafe status` when the server is back, then run again"
                            .into(),
                    )
                });
                if rollback {
                    Error::Rollback {
                        reason,
                        message,
                        hint,
                        source,
                    }
                } else {
                    Error::Migration {
                        reason,
                        message,
                        hint,
                        source,
                    }
                }
            }
            other => other,
        }
    }
    /// A refusal that comes after some of this run's work committed is the
    /// run failing half way (exit 2, not 1): [`Error::Refused`] becomes
    /// [`Error::Migration`], `landed` (what committed) said after its
    /// message. Any other error is returned as it is.
    pub(crate) fn after_work_landed(self, landed: &str) -> Error {
        match self {
            Error::Refused {
                reason,
                message,
                hint,
                source,
            } => Error::Migration {
                reason,
                message: format!("{message}; {landed}"),
                hint,
                source,
            },
            other => other,
        }
    }

    /// Keeps `cause` as this error's [`std::error::Error::source`] (a driver,
    /// I/O or server error), so a caller can walk the chain or downcast it
    /// (`tokio_postgres::Error` for the SQLSTATE and the server's fields).
    pub fn caused_by(mut self, cause: impl Into<Source>) -> Self {
        match &mut self {
            Error::Config { source, .. }
            | Error::Refused { source, .. }
            | Error::Migration { source, .. }
            | Error::Rollback { source, .. }
            | Error::NotReady { source, .. }
            | Error::Postflight { source, .. }
            | Error::Sandbox { source, .. } => *source = Some(cause.into()),
            Error::Source { .. } => {}
        }
        self
    }

    /// The SQLSTATE of the server error this one comes from, when it comes
    /// from one (`55P03` for a lock wait that gave up): for branching on
    /// what the server said, not on message text.
    #[cfg(feature = "engine")]
    pub fn sqlstate(&self) -> Option<tokio_postgres::error::SqlState> {
        let mut cause = std::error::Error::source(self);
        while let Some(error) = cause {
            if let Some(server) = error.downcast_ref::<tokio_postgres::Error>() {
                return server.code().cloned();
            }
            if let Some(ServerCode(code)) = error.downcast_ref::<ServerCode>() {
                return Some(code.clone());
            }
            cause = error.source();
        }
        None
    }

    /// Adds a "what to do next" line.
    pub fn with_hint(mut self, text: impl Into<String>) -> Self {
        match &mut self {
            Error::Config { hint, .. }
            | Error::Refused { hint, .. }
            | Error::Migration { hint, .. }
            | Error::Rollback { hint, .. }
            | Error::NotReady { hint, .. }
            | Error::Postflight { hint, .. } => *hint = Some(text.into()),
            Error::Source { .. } | Error::Sandbox { .. } => {}
        }
        self
    }

    /// The stable reason code of this failure.
    pub fn reason(&self) -> &ReasonCode {
        match self {
            Error::Config { reason, .. }
            | Error::Source { reason, .. }
            | Error::Refused { reason, .. }
            | Error::Migration { reason, .. }
            | Error::Rollback { reason, .. }
            | Error::Sandbox { reason, .. }
            | Error::NotReady { reason, .. }
            | Error::Postflight { reason, .. } => reason,
        }
    }

    /// What the operator should do next, when migsafe knows.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::Config { hint, .. }
            | Error::Refused { hint, .. }
            | Error::Migration { hint, .. }
            | Error::Rollback { hint, .. }
            | Error::NotReady { hint, .. }
            | Error::Postflight { hint, .. } => hint
                .as_deref()
                .or_else(|| default_hint(self.reason().code())),
            Error::Source { reason, .. } => default_hint(reason.code()),
            Error::Sandbox { .. } => default_hint(Code::SandboxFailed),
        }
    }

    /// Every reason this failure has: for [`Error::NotReady`] each unmet
    /// rule, for [`Error::Source`] each unusable file, else the one reason.
    pub fn reasons(&self) -> Vec<&ReasonCode> {
        match self {
            Error::NotReady { unmet, .. } if !unmet.is_empty() => unmet.iter().collect(),
            Error::Source { problems, .. } if !problems.is_empty() => {
                problems.iter().map(|p| &p.reason).collect()
            }
            other => vec![other.reason()],
        }
    }

    /// The process exit code (SPEC section 11). This is the only mapping.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Refused { reason, .. } if reason.code() == Code::DownScriptMissing => 4,
            // The shell's convention for "stopped by SIGINT": nothing started.
            Error::Refused { reason, .. } if reason.code() == Code::Interrupted => 130,
            Error::Refused { .. } => 1,
            Error::Migration { .. } => 2,
            Error::Postflight { .. } => 3,
            Error::NotReady { .. } => 7,
            Error::Rollback { .. } => 4,
            Error::Config { .. } | Error::Source { .. } | Error::Sandbox { .. } => 5,
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_display_with_their_subject() {
        let code = ReasonCode::migration(Code::PostgresMigrationChecksumMismatch, "orders", "0002");
        assert_eq!(
            code.to_string(),
            "POSTGRES_MIGRATION_CHECKSUM_MISMATCH:orders:0002"
        );
        assert_eq!(
            ReasonCode::about(Code::AdvisoryLockBusy, "app").to_string(),
            "ADVISORY_LOCK_BUSY:app"
        );
        assert_eq!(ReasonCode::new(Code::Usage).to_string(), "USAGE");
    }

    #[test]
    fn exit_codes_follow_the_spec() {
        let refused = Error::Refused {
            reason: ReasonCode::migration(Code::MigrationDirty, "a", 1),
            message: String::new(),
            hint: None,
            source: None,
        };
        assert_eq!(refused.exit_code(), 1);
        let down = Error::Refused {
            reason: ReasonCode::migration(Code::DownScriptMissing, "a", 1),
            message: String::new(),
            hint: None,
            source: None,
        };
        assert_eq!(down.exit_code(), 4);
        assert_eq!(Error::config(Code::ConfigInvalid, "x").exit_code(), 5);
    }

    #[test]
    fn a_connection_lost_during_a_run_is_that_run_failing() {
        let lost = || Error::config(Code::DatabaseUnreachable, "connection closed");
        assert_eq!(lost().during_run(false).exit_code(), 2);
        assert_eq!(lost().during_run(true).exit_code(), 4);
        assert_eq!(
            lost().during_run(false).reason().to_string(),
            "DATABASE_UNREACHABLE"
        );
        assert_eq!(
            Error::config(Code::ConfigInvalid, "x")
                .during_run(false)
                .exit_code(),
            5
        );
    }
}

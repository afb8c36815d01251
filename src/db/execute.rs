//! Running one migration script and writing its history row.
//!
//! A transactional script is sent as a pipeline of four requests written
//! before any answer is read: `BEGIN; SET LOCAL …`, the script, the prepared
//! history write, `COMMIT`. That is one network round trip per migration, and
//! the script and its history row commit together or not at all: after an
//! error the server skips the history write and turns `COMMIT` into a rollback.
//!
//! A no-transaction script is split into statements with the PostgreSQL
//! grammar and run one by one, its history row marked dirty before the first
//! statement and clean after the last, so an interruption is never mistaken
//! for success.
//!
//! Both retry a statement that gave up waiting for a lock (SQLSTATE 55P03)
//! with exponential backoff and jitter, logging who was blocking it. While a
//! script runs longer than half its `lock_timeout`, a second connection samples
//! `pg_blocking_pids` so the blockers can be named after the fact.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_postgres::error::{ErrorPosition, SqlState};
use tokio_postgres::types::ToSql;

use super::activity::{Session, blockers_of};
use super::connect::{ConnectionSettings, Db, error_chain, scrub};
use super::history::{History, Prepared};
use crate::config::format_duration;
use crate::error::{Code, Error, ReasonCode, Result};
use crate::events::{Direction, Event, EventSink, Interrupt};
use crate::source::statements::{self, ConcurrentIndex, Statement};
use crate::source::{Migration, Script};

/// Timeouts and retry policy for one run.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Default `lock_timeout` per migration.
    pub lock_timeout: Duration,
    /// Default `statement_timeout` per migration.
    pub statement_timeout: Duration,
    /// Retries after 55P03.
    pub lock_retries: u32,
    /// First retry delay (doubles up to 30 s).
    pub lock_retry_delay: Duration,
}

impl Limits {
    /// The session-level settings a run starts with. Set once, so a
    /// migration that keeps the defaults costs the server no extra statement.
    pub fn session_sql(&self) -> String {
        format!(
            "SET lock_timeout = {}; SET statement_timeout = {}",
            self.lock_timeout.as_millis(),
            self.statement_timeout.as_millis()
        )
    }
}

const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// Work still running after this long may be waiting for a lock: the side
/// connection that names blockers is opened then at the earliest (later
/// when the first sample is further away: see [`warm_side_after`]).
const WARM_SIDE_AFTER: Duration = Duration::from_millis(20);

/// When the side connection is opened, for a first blocker sample `every`
/// into the work: a quarter of the way there, never before
/// [`WARM_SIDE_AFTER`]. With the default lock_timeout (1 s, a sample at
/// 500 ms) that is 125 ms, still 375 ms ahead of the sample; a statement
/// that merely runs slowly on a busy server (a fleet's 8 databases on two
/// cores take 20-30 ms for a small CREATE INDEX CONCURRENTLY) no longer
/// pays a backend start and an authentication it never uses. Small
/// lock_timeouts (100-200 ms, the retry tests) keep the 20 ms.
fn warm_side_after(every: Duration) -> Duration {
    (every / 4).max(WARM_SIDE_AFTER)
}

/// Makes the server notice a dead client within a second, even in the
/// middle of a long statement (PostgreSQL 14+).
pub const CHECK_CLIENT: &str = "DO $$ BEGIN IF current_setting('server_version_num')::int >= 140000 THEN \
     PERFORM set_config('client_connection_check_interval', '1000', false); END IF; END $$";

/// Everything a migration needs to run on one connection.
pub(crate) struct Runner<'a> {
    /// The connection holding the namespace lock.
    pub db: &'a Db,
    /// To open the side connection that samples blockers.
    pub settings: &'a ConnectionSettings,
    /// The history table.
    pub history: &'a History,
    /// Its prepared statements.
    pub prepared: &'a Prepared,
    /// `pg_backend_pid()` of `db`.
    pub backend_pid: i32,
    /// Namespace being migrated.
    pub namespace: &'a str,
    /// Recorded as `applied_by`.
    pub applied_by: &'a str,
    /// Timeouts and retries.
    pub limits: Limits,
    /// Where events go.
    pub events: &'a dyn EventSink,
    /// Ctrl-C.
    pub interrupt: &'a Interrupt,
    /// `recovery = "auto"`: the next apply recovers a dirty migration that
    /// has a down script (what a failure's message must say).
    pub auto_recovery: bool,
    /// Lazily opened second connection for blocker sampling.
    pub side: tokio::sync::Mutex<Option<Db>>,
    /// How far standbys may lag before the next migration or backfill
    /// batch waits (SPEC 17), and whether the server was seen without any
    /// lately (shared by both, so neither asks before every step).
    pub replicas: super::replicas::Watch,
}

/// How one attempt failed.
enum Failure {
    /// 55P03: gave up waiting for a lock; nothing of the attempt remains.
    Lock(tokio_postgres::Error),
    /// Ctrl-C cancelled it on the server.
    Cancelled,
    /// The server rejected it.
    Server(tokio_postgres::Error),
    /// The connection broke; whether the last COMMIT happened is unknown.
    Lost(tokio_postgres::Error),
}

/// `verify` as it is sent: its `BEGIN … ROLLBACK` wrapper blanked (same
/// lines), so a failing check is found by statement, not lost in the wrapper.
fn as_sent(verify: &Script) -> Script {
    Script {
        sql: statements::verify_body(&verify.sql).unwrap_or_else(|_| verify.sql.clone()),
        ..verify.clone()
    }
}

/// What a verify script is sent after: its checks run under this savepoint.
const VERIFY_PREFIX: &str = "SAVEPOINT migsafe_verify;\n";

/// The text sent for `verify`: its statements (without Sqitch's
/// `BEGIN … ROLLBACK` wrapper) under a savepoint that is rolled back after.
pub(crate) fn verify_sql(
    namespace: &str,
    migration: &Migration,
    verify: &Script,
) -> Result<String> {
    let body = statements::verify_body(&verify.sql).map_err(|message| Error::Config {
        reason: ReasonCode::migration(Code::MigrationFileInvalid, namespace, &migration.version),
        message: format!("{}: {message}", verify.path.display()),
        hint: Some("fix the verify script; nothing ran".into()),
        source: None,
    })?;
    Ok(format!(
        "{VERIFY_PREFIX}{body}\n;\nROLLBACK TO SAVEPOINT migsafe_verify;\nRELEASE SAVEPOINT migsafe_verify"
    ))
}

/// Checks, before anything runs, that a script can be run the way it asks:
/// an up script must hold SQL, a transactional script must not carry its own BEGIN/COMMIT, and a
/// no-transaction script must split into statements.
/// A Flyway script with a placeholder that has no value is refused, every
/// such placeholder named: left as written inside a function body or a
/// string it would run and be wrong.
pub fn check_placeholders(namespace: &str, migration: &Migration, script: &Script) -> Result<()> {
    check_placeholders_of(namespace, [(migration, script)])
}

/// [`check_placeholders`] for many scripts at once: every placeholder
/// without a value in all of them, in one refusal (not one round per file).
pub fn check_placeholders_of<'m>(
    namespace: &str,
    scripts: impl IntoIterator<Item = (&'m Migration, &'m Script)>,
) -> Result<()> {
    let mut first: Option<&Migration> = None;
    let mut named = Vec::new();
    let mut builtin = false;
    for (migration, script) in scripts {
        for placeholder in &script.directives.unresolved_placeholders {
            first.get_or_insert(migration);
            builtin |= placeholder
                .name
                .to_ascii_lowercase()
                .starts_with("${flyway:");
            named.push(format!(
                "{}:{}:{}: `{}`",
                script.path.display(),
                placeholder.line,
                placeholder.column,
                placeholder.name
            ));
        }
    }
    let Some(migration) = first else {
        return Ok(());
    };
    let mut hint = String::from(
        "nothing ran. Give each a value as Flyway takes it — `[flyway.placeholders]` in the project's flyway.toml (`flyway.placeholders.<name>=…` in a flyway.conf), `FLYWAY_PLACEHOLDERS_<NAME>` in the environment — or in migsafe.toml (`[placeholders]`, or `placeholders = { … }` under the namespace); if the text is meant literally, set `placeholderReplacement=false` in the script's .sql.conf",
    );
    if builtin {
        hint.push_str(". Flyway's own: `${flyway:defaultSchema}` is the namespace's first `schemas` entry (or the Flyway configuration's defaultSchema / schemas), `${flyway:user}` and `${flyway:database}` the user and database named in the database URL");
    }
    Err(Error::Config {
        reason: ReasonCode::migration(Code::MigrationFileInvalid, namespace, &migration.version),
        message: format!(
            "Flyway placeholder(s) without a value, which would reach the server unreplaced:\n  {}",
            named.join("\n  ")
        ),
        hint: Some(hint),
        source: None,
    })
}

pub fn check_script(namespace: &str, migration: &Migration, script: &Script) -> Result<()> {
    let refuse = |code: Code, message: String, hint: &str| Error::Config {
        reason: ReasonCode::migration(code, namespace, &migration.version),
        message,
        hint: Some(hint.into()),
        source: None,
    };
    if std::ptr::eq(script, &migration.up)
        && !script.directives.empty_ok
        && !crate::source::checksum::has_sql(&script.sql)
    {
        return Err(refuse(
            Code::MigrationFileInvalid,
            format!(
                "{}: the up script is empty (no SQL besides comments)",
                script.path.display()
            ),
            "write the migration or delete the file",
        ));
    }
    if let Some((line, text)) = statements::psql_only(&script.sql) {
        return Err(refuse(
            Code::MigrationFileInvalid,
            format!(
                "{}:{}: `{text}` is psql syntax (a meta-command or a psql variable); migsafe sends the script to the server as SQL, which cannot read it",
                script.path.display(),
                line + script.first_line - 1
            ),
            "nothing ran. Write the value in place of the variable (or read it with current_setting()), and drop the meta-command (migsafe already stops at the first error and runs each migration in its transaction)",
        ));
    }
    check_placeholders(namespace, migration, script)?;
    if std::ptr::eq(script, &migration.up)
        && let Some(why) = &script.directives.unsupported
    {
        return Err(refuse(
            Code::MigrationFileInvalid,
            format!(
                "{} {} ({}) cannot run as written: {why}",
                migration.version,
                migration.name,
                script.path.display()
            ),
            if migration.layout == crate::source::layout::Layout::Flyway {
                "nothing ran. Decide for migsafe: remove the setting from the script's .sql.conf if the script must run on every database, or delete the migration if it must not run here (migsafe does not decide per environment)"
            } else {
                "nothing ran. Decide for migsafe: run it with Liquibase (then `migsafe adopt`), or remove what migsafe cannot honour from the changeset if it must run on every database, or delete the changeset if it must not run here"
            },
        ));
    }
    if std::ptr::eq(script, &migration.up)
        && let Some(verify) = &migration.verify
    {
        verify_sql(namespace, migration, verify)?;
    }
    if migration.version.is_repeatable() && script.directives.backfill.is_some() {
        return Err(refuse(
            Code::BackfillRefused,
            format!(
                "{}: `-- migsafe:backfill` in a repeatable migration: it would run again, whole, at every change of the file",
                script.path.display()
            ),
            "nothing ran. Move the backfill to a versioned migration (V<version>__<name>.sql)",
        ));
    }
    if migration.version.is_repeatable() && script.no_transaction() {
        return Err(refuse(
            Code::MigrationTransactionControl,
            format!(
                "{}: a repeatable migration runs in one transaction with its record, so that a failure leaves it to run again as a whole; this one must run outside a transaction ({})",
                script.path.display(),
                script.directives.inferred.unwrap_or(
                    "`-- migsafe:no-transaction`, or `executeInTransaction=false` in its .sql.conf"
                )
            ),
            "nothing ran. Put that statement in a versioned migration (V<version>__<name>.sql) and keep the repeatable to what a transaction can hold (views, functions, grants)",
        ));
    }
    if script.no_transaction() {
        if let Some(line) = statements::unterminated_block(&script.sql) {
            return Err(refuse(
                Code::MigrationTransactionControl,
                format!(
                    "{}:{}: the script opens a transaction with BEGIN and never ends it; run statement by statement, everything after it would be rolled back when the session ends, its history row included",
                    script.path.display(),
                    line + script.first_line - 1
                ),
                "end the block with COMMIT (or remove the BEGIN); nothing ran",
            ));
        }
        statements::split(&script.sql).map_err(|message| refuse(
            Code::MigrationFileInvalid,
            format!(
                "{}: a no-transaction script must be split into statements, but the PostgreSQL grammar cannot read it: {message}",
                script.path.display()
            ),
            "fix the SQL; it runs statement by statement, so every statement must parse",
        ))?;
        return Ok(());
    }
    if let Some((keyword, line)) = statements::transaction_control(&script.runnable_sql()) {
        return Err(refuse(
            Code::MigrationTransactionControl,
            format!(
                "{}:{}: the script contains {keyword}; migsafe runs it in one transaction together with its history row, and a {keyword} inside would break that guarantee",
                script.path.display(),
                line + script.first_line - 1
            ),
            "remove BEGIN/COMMIT from the file (migsafe adds the transaction), or put `-- migsafe:no-transaction` at its top",
        ));
    }
    Ok(())
}

impl Runner<'_> {
    /// Runs the up or down script of `migration` and writes the history.
    /// `recorded` is the version text as stored in history (for down).
    pub async fn run(
        &self,
        migration: &Migration,
        direction: Direction,
        recorded: &str,
    ) -> Result<Duration> {
        let script = match direction {
            Direction::Up => &migration.up,
            Direction::Down => migration.down.as_ref().ok_or_else(|| Error::Refused {
                reason: ReasonCode::migration(
                    Code::DownScriptMissing,
                    self.namespace,
                    &migration.version,
                ),
                message: format!("{} has no down script", migration.version),
                hint: None,
                source: None,
            })?,
        };
        if self.interrupt.is_triggered() {
            return Err(self.cancelled(migration, direction, false));
        }
        // A Flyway project's schemas, as Flyway sets them up before it runs
        // a migration.
        let flyway_schemas = script.flyway_schema_sql();
        if let Some((before, _)) = &flyway_schemas {
            self.db
                .client
                .batch_execute(before)
                .await
                .map_err(|e| self.flyway_schemas_failed(migration, direction, &e))?;
        }
        let result = self
            .run_script(migration, script, direction, recorded)
            .await;
        if let Some((_, after)) = &flyway_schemas
            && let Err(err) = self.db.client.batch_execute(after).await
        {
            tracing::warn!(
                "could not reset search_path after {}: {err}",
                migration.version
            );
        }
        // A `SET search_path` (or role…) in one migration must not decide
        // where the next one's objects go: that would depend on how
        // migrations happen to be batched into runs.
        if statements::changes_session(&script.sql) {
            let reset = format!(
                "RESET SESSION AUTHORIZATION; RESET ALL; {}; {CHECK_CLIENT}",
                self.limits.session_sql()
            );
            if let Err(err) = self.db.client.batch_execute(&reset).await {
                tracing::warn!(
                    "could not reset the session after {}: {err}",
                    migration.version
                );
            }
        }
        result
    }

    async fn run_script(
        &self,
        migration: &Migration,
        script: &Script,
        direction: Direction,
        recorded: &str,
    ) -> Result<Duration> {
        if script.no_transaction() {
            let started = Instant::now();
            let result = self
                .run_statements(migration, script, direction, recorded)
                .await;
            if let Err(err) = &result
                && err.reason().code() == Code::MigrationDirty
            {
                let version = match direction {
                    Direction::Up => migration.version.as_str(),
                    Direction::Down => recorded,
                };
                let ran_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
                self.history
                    .mark_interrupted(self.db, self.namespace, version, ran_ms)
                    .await;
            }
            result
        } else {
            self.run_transactional(migration, script, direction, recorded)
                .await
        }
    }

    /// The history write of a migration: insert its row (up), or delete its
    /// recorded row (down); `dirty` (before a no-transaction script's first
    /// statement): insert it dirty, or mark the recorded row dirty. A rerun
    /// ([`Migration::rerun_of`]) rewrites its row instead of inserting one.
    /// Sent when first polled, so it pipelines behind the script.
    async fn write_history(
        &self,
        direction: Direction,
        dirty: bool,
        migration: &Migration,
        script: &Script,
        recorded: &str,
    ) -> Result<u64, tokio_postgres::Error> {
        let client = &self.db.client;
        let (insert, down) = if dirty {
            (&self.prepared.insert_dirty, &self.prepared.mark_dirty)
        } else {
            (&self.prepared.insert_applied, &self.prepared.delete)
        };
        match direction {
            // A repeatable's record is one row per name, rewritten by each run.
            Direction::Up if migration.version.is_repeatable() => {
                let table = super::repeatables::Repeatables::of(self.history);
                let params: [&(dyn ToSql + Sync); 5] = [
                    &self.namespace,
                    &migration.name,
                    &script.checksum,
                    &self.applied_by,
                    &env!("CARGO_PKG_VERSION"),
                ];
                let statement = client
                    .prepare_typed(&table.upsert_sql(), super::repeatables::UPSERT_TYPES)
                    .await?;
                client.execute(&statement, &params).await
            }
            Direction::Up => {
                let down_checksum = migration.down.as_ref().map(|d| d.checksum.as_str());
                let params: [&(dyn ToSql + Sync); 8] = [
                    &self.namespace,
                    &migration.version.as_str(),
                    &migration.name,
                    &script.checksum,
                    &down_checksum,
                    &self.applied_by,
                    &env!("CARGO_PKG_VERSION"),
                    &dirty,
                ];
                if migration.rerun_of.is_some() {
                    // Its row stays, rewritten: it now records this text.
                    let statement = client
                        .prepare_typed(&self.history.rerun_sql(), super::history::RERUN_TYPES)
                        .await?;
                    client.execute(&statement, &params).await
                } else {
                    client.execute(insert, &params[..7]).await
                }
            }
            Direction::Down => client.execute(down, &[&self.namespace, &recorded]).await,
        }
    }

    /// The script's own `lock_timeout` and `statement_timeout`, else the run's.
    pub(crate) fn timeouts(&self, script: &Script) -> (Duration, Duration) {
        (
            script
                .directives
                .lock_timeout
                .unwrap_or(self.limits.lock_timeout),
            script
                .directives
                .statement_timeout
                .unwrap_or(self.limits.statement_timeout),
        )
    }

    async fn run_transactional(
        &self,
        migration: &Migration,
        script: &Script,
        direction: Direction,
        recorded: &str,
    ) -> Result<Duration> {
        let (lock_timeout, statement_timeout) = self.timeouts(script);
        // BEGIN travels in the same message as the script: the server does
        // exactly the work of the script, its history row and COMMIT.
        let mut sent = String::from("BEGIN;\n");
        if lock_timeout != self.limits.lock_timeout {
            sent.push_str(&format!(
                "SET LOCAL lock_timeout = {};\n",
                lock_timeout.as_millis()
            ));
        }
        if statement_timeout != self.limits.statement_timeout {
            sent.push_str(&format!(
                "SET LOCAL statement_timeout = {};\n",
                statement_timeout.as_millis()
            ));
        }
        let prefix_chars = sent.chars().count();
        // BEGIN and the SET LOCALs before the script: the server completes
        // them first.
        let prefix_statements = sent.matches(";\n").count();
        let runnable = script.runnable_sql();
        sent.push_str(&runnable);
        // The statements the server completed before an error: which of the
        // script's statements failed, even when the server gives no position
        // (`index "x" does not exist`), without parsing scripts that succeed.
        let completed = std::cell::Cell::new(None::<usize>);
        // A verify script (Sqitch) runs after the script, in its transaction,
        // under a savepoint rolled back after: its failure undoes the deploy,
        // and what it does itself is never kept.
        let verify = match (direction, &migration.verify) {
            (Direction::Up, Some(verify)) => {
                Some((verify, verify_sql(self.namespace, migration, verify)?))
            }
            _ => None,
        };
        let verify_failed = std::cell::Cell::new(false);
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            completed.set(None);
            verify_failed.set(false);
            let client = &self.db.client;
            let send_script = async {
                let stream = client.simple_query_raw(&sent).await?;
                futures_util::pin_mut!(stream);
                let mut done = 0usize;
                while let Some(message) = futures_util::StreamExt::next(&mut stream).await {
                    match message {
                        Ok(tokio_postgres::SimpleQueryMessage::CommandComplete(_)) => done += 1,
                        Ok(_) => {}
                        Err(err) => {
                            completed.set(Some(done));
                            return Err(err);
                        }
                    }
                }
                Ok(())
            };
            let pipeline = async {
                let write = self.write_history(direction, false, migration, script, recorded);
                let send_verify = async {
                    let Some((_, sql)) = &verify else {
                        return Ok(());
                    };
                    let result = client.batch_execute(sql).await;
                    if let Err(err) = &result
                        && err.code() != Some(&SqlState::IN_FAILED_SQL_TRANSACTION)
                    {
                        verify_failed.set(true);
                    }
                    result
                };
                let (script_result, verify_result, write_result, commit_result) = tokio::join!(
                    send_script,
                    send_verify,
                    write,
                    client.batch_execute("COMMIT"),
                );
                first_failure([
                    script_result.err(),
                    verify_result.err(),
                    write_result.err(),
                    commit_result.err(),
                ])
            };
            let (failure, blockers, cancelled) = self.drive(pipeline, lock_timeout).await;
            let Some(err) = failure else {
                return Ok(started.elapsed());
            };
            match classify(err, cancelled) {
                Failure::Lock(err) => {
                    self.retry_or_give_up(
                        migration,
                        direction,
                        attempt,
                        &err,
                        blockers,
                        lock_timeout,
                        None,
                    )
                    .await?;
                }
                Failure::Cancelled => return Err(self.cancelled(migration, direction, false)),
                Failure::Server(err) => {
                    if let Some((verify, _)) = verify.as_ref().filter(|_| verify_failed.get()) {
                        let what = format!(
                            "its verify script failed, so the deploy was rolled back with it:\n{}",
                            describe_server_error(
                                &err,
                                &as_sent(verify),
                                None,
                                VERIFY_PREFIX.chars().count(),
                                statement_timeout
                            )
                        );
                        return Err(self
                            .failed(
                                migration,
                                direction,
                                &what,
                                rolled_back_state(direction, migration.rerun_of.is_some()),
                            )
                            .caused_by(err));
                    }
                    // Parsed only now, and only when the server gave no
                    // position, to name the statement that failed (a
                    // position counts in the whole text sent).
                    let positioned = err.as_db_error().is_some_and(|d| d.position().is_some());
                    let failed = completed
                        .get()
                        .filter(|_| !positioned)
                        .and_then(|done| done.checked_sub(prefix_statements))
                        .and_then(|index| {
                            statements::split(&runnable)
                                .ok()
                                .filter(|p| p.len() > 1)
                                .and_then(|mut p| (index < p.len()).then(|| p.swap_remove(index)))
                        });
                    let statement = failed.as_ref();
                    let prefix = if statement.is_some() { 0 } else { prefix_chars };
                    return Err(self
                        .failed(
                            migration,
                            direction,
                            &describe_server_error(
                                &err,
                                script,
                                statement,
                                prefix,
                                statement_timeout,
                            ),
                            rolled_back_state(direction, migration.rerun_of.is_some()),
                        )
                        .caused_by(err));
                }
                Failure::Lost(err) => {
                    let lost = self.lost(migration, direction, recorded, &err, true).await;
                    return Err(lost.caused_by(err));
                }
            }
        }
    }

    async fn run_statements(
        &self,
        migration: &Migration,
        script: &Script,
        direction: Direction,
        recorded: &str,
    ) -> Result<Duration> {
        let statements = statements::split(&script.sql).map_err(|message| Error::Config {
            reason: ReasonCode::migration(
                Code::MigrationFileInvalid,
                self.namespace,
                &migration.version,
            ),
            message: format!(
                "{}: cannot split into statements: {message}",
                script.path.display()
            ),
            hint: None,
            source: None,
        })?;
        let (lock_timeout, statement_timeout) = self.timeouts(script);
        let own_limits = lock_timeout != self.limits.lock_timeout
            || statement_timeout != self.limits.statement_timeout;
        let session_limits = if own_limits {
            format!(
                "SET lock_timeout = {}; SET statement_timeout = {}",
                lock_timeout.as_millis(),
                statement_timeout.as_millis()
            )
        } else {
            String::new()
        };
        let client = &self.db.client;
        let version = migration.version.as_str();
        let started = Instant::now();

        // Dirty before the first statement: a crash from here on is visible.
        let mark = self.write_history(direction, true, migration, script, recorded);
        let (limits_result, mark_result) =
            tokio::join!(client.batch_execute(&session_limits), mark);
        if let Some(err) = first_failure([limits_result.err(), mark_result.err()]) {
            return Err(self.failed(
                migration,
                direction,
                &scrub(&error_chain(&err)),
                "nothing ran: the history row could not be marked dirty first",
            ));
        }

        let total = statements.len();
        // The BEGIN of a block of the script's own that is open now.
        let mut block: Option<usize> = None;
        for (index, statement) in statements.iter().enumerate() {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let (failure, blockers, cancelled) = self
                    .drive(
                        async { client.batch_execute(&statement.text).await.err() },
                        lock_timeout,
                    )
                    .await;
                let Some(err) = failure else { break };
                // Inside the script's own block, a failure aborts the whole
                // block: end it, or the session is stuck in a failed
                // transaction, and count only what committed before it.
                let committed = block.unwrap_or(index);
                let mut done = if committed == 0 {
                    format!("no statement of {total} committed; the migration is left DIRTY")
                } else {
                    format!(
                        "statements 1–{committed} of {total} ran and are committed; the migration is left DIRTY"
                    )
                };
                if let Some(start) = block {
                    let _ = client.batch_execute("ROLLBACK").await;
                    done.push_str(&format!(
                        " (statements {}–{} were in the script's own BEGIN block and were rolled back with it)",
                        start + 1,
                        index + 1
                    ));
                }
                let classified = match classify(err, cancelled) {
                    // A retry cannot resume inside a rolled-back block.
                    Failure::Lock(err) if block.is_some() => Failure::Server(err),
                    other => other,
                };
                match classified {
                    Failure::Lock(err) => {
                        self.retry_or_give_up(
                            migration,
                            direction,
                            attempt,
                            &err,
                            blockers,
                            lock_timeout,
                            statement.concurrent_index.as_ref(),
                        )
                        .await
                        .map_err(|e| self.leave_dirty(e, migration, direction, &done))?;
                    }
                    Failure::Cancelled => {
                        return Err(self.leave_dirty(
                            self.cancelled(migration, direction, true),
                            migration,
                            direction,
                            &done,
                        ));
                    }
                    Failure::Server(err) => {
                        let mut what = describe_server_error(
                            &err,
                            script,
                            Some(statement),
                            0,
                            statement_timeout,
                        );
                        if let Some(index_info) = &statement.concurrent_index {
                            what.push_str(&format!(
                                "\n    a CREATE INDEX CONCURRENTLY that failed while building leaves an INVALID index behind; if it did: {}",
                                drop_invalid_index_hint(index_info)
                            ));
                        }
                        return Err(self.leave_dirty(
                            self.failed(migration, direction, &what, &done)
                                .caused_by(err),
                            migration,
                            direction,
                            &done,
                        ));
                    }
                    Failure::Lost(err) => {
                        let lost = self.lost(migration, direction, recorded, &err, false).await;
                        return Err(lost.caused_by(err));
                    }
                }
            }
            if statement.opens {
                block = Some(index);
            } else if statement.closes {
                block = None;
            }
        }

        if let (Direction::Up, Some(verify)) = (direction, &migration.verify) {
            self.verify_after_statements(migration, verify, total, statement_timeout)
                .await?;
        }

        let elapsed_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let finish = async {
            match direction {
                Direction::Up => {
                    client
                        .execute(
                            &self.prepared.mark_clean,
                            &[&self.namespace, &version, &elapsed_ms],
                        )
                        .await
                }
                Direction::Down => {
                    client
                        .execute(&self.prepared.delete, &[&self.namespace, &recorded])
                        .await
                }
            }
        };
        let restore = if own_limits {
            self.limits.session_sql()
        } else {
            String::new()
        };
        let (finish_result, reset_result) = tokio::join!(finish, client.batch_execute(&restore));
        if let Some(err) = first_failure([finish_result.err(), reset_result.err()]) {
            return Err(self.failed(
                migration,
                direction,
                &scrub(&error_chain(&err)),
                "every statement ran, but the history row could not be marked clean; it stays DIRTY",
            ));
        }
        Ok(started.elapsed())
    }

    /// Runs the verify script of a no-transaction migration whose
    /// statements have all committed, in a transaction rolled back after.
    /// Its failure leaves the migration DIRTY, since the deploy cannot be
    /// undone by a rollback.
    async fn verify_after_statements(
        &self,
        migration: &Migration,
        verify: &Script,
        total: usize,
        statement_timeout: Duration,
    ) -> Result<()> {
        let body = verify_sql(self.namespace, migration, verify)?;
        let client = &self.db.client;
        let sent = format!("BEGIN;\n{body}");
        let (result, _, cancelled) = self
            .drive(
                async { client.batch_execute(&sent).await.err() },
                self.limits.lock_timeout,
            )
            .await;
        let _ = client.batch_execute("ROLLBACK").await;
        let Some(err) = result else {
            return Ok(());
        };
        let done = format!(
            "all {total} statements ran and are committed, but the verify script failed; the migration is left DIRTY"
        );
        let failed = match classify(err, cancelled) {
            Failure::Cancelled => self.cancelled(migration, Direction::Up, true),
            Failure::Lost(err) => {
                let lost = self
                    .lost(
                        migration,
                        Direction::Up,
                        migration.version.as_str(),
                        &err,
                        false,
                    )
                    .await;
                return Err(lost.caused_by(err));
            }
            Failure::Lock(err) | Failure::Server(err) => {
                let what = format!(
                    "its verify script failed:\n{}",
                    describe_server_error(
                        &err,
                        &as_sent(verify),
                        None,
                        "BEGIN;\n".len() + VERIFY_PREFIX.len(),
                        statement_timeout
                    )
                );
                self.failed(migration, Direction::Up, &what, &done)
                    .caused_by(err)
            }
        };
        Err(self.leave_dirty(failed, migration, Direction::Up, &done))
    }

    /// Awaits `work` while sampling blockers and honouring Ctrl-C. Returns
    /// the work's output, the last non-empty blocker sample, and whether a
    /// cancel was sent.
    async fn drive<F: Future>(
        &self,
        work: F,
        lock_timeout: Duration,
    ) -> (F::Output, Vec<Session>, bool) {
        tokio::pin!(work);
        let every = if lock_timeout.is_zero() {
            Duration::from_secs(2)
        } else {
            (lock_timeout / 2).max(Duration::from_millis(100))
        };
        let sleep = tokio::time::sleep(every);
        tokio::pin!(sleep);
        let mut blockers = Vec::new();
        let mut cancelled = false;
        // The side connection is opened while the work runs, so that the
        // first sample (half of lock_timeout in) does not spend that time
        // connecting and miss the blocker; not for work that ends before a
        // quarter of the way to that sample.
        let warm = async {
            tokio::time::sleep(warm_side_after(every)).await;
            self.warm_side().await;
        };
        tokio::pin!(warm);
        let mut warmed = false;
        loop {
            tokio::select! {
                output = &mut work => return (output, blockers, cancelled),
                () = &mut warm, if !warmed => warmed = true,
                () = &mut sleep => {
                    let sample = self.sample_blockers().await;
                    if !sample.is_empty() {
                        blockers = sample;
                    }
                    sleep.as_mut().reset(tokio::time::Instant::now() + every);
                }
                () = self.interrupt.wait(), if !cancelled => {
                    cancelled = true;
                    self.db.cancel_running().await;
                }
            }
        }
    }

    /// Opens the side connection for blocker sampling if it is not open.
    ///
    /// The lock is not held while connecting: `drive` runs the sampling in
    /// a select arm while this future is suspended, and a guard held across
    /// the connect would deadlock them.
    async fn warm_side(&self) {
        if self.side.lock().await.is_some() {
            return;
        }
        match self.settings.connect().await {
            Ok(db) => {
                let mut side = self.side.lock().await;
                if side.is_none() {
                    *side = Some(db);
                }
            }
            Err(err) => tracing::debug!("no side connection for blocker sampling: {err}"),
        }
    }

    async fn sample_blockers(&self) -> Vec<Session> {
        let mut side = self.side.lock().await;
        if side.is_none() {
            match self.settings.connect().await {
                Ok(db) => *side = Some(db),
                Err(err) => {
                    tracing::debug!("no side connection for blocker sampling: {err}");
                    return Vec::new();
                }
            }
        }
        let Some(db) = side.as_ref() else {
            return Vec::new();
        };
        blockers_of(db, self.backend_pid).await.unwrap_or_default()
    }

    /// After a 55P03: waits and returns Ok to retry, or the final LOCK_TIMEOUT.
    #[allow(clippy::too_many_arguments)]
    async fn retry_or_give_up(
        &self,
        migration: &Migration,
        direction: Direction,
        attempt: u32,
        err: &tokio_postgres::Error,
        blockers: Vec<Session>,
        lock_timeout: Duration,
        concurrent_index: Option<&ConcurrentIndex>,
    ) -> Result<()> {
        let reason = ReasonCode::migration(Code::LockTimeout, self.namespace, &migration.version);
        if attempt > self.limits.lock_retries {
            let who = if blockers.is_empty() {
                "the blocking sessions had ended when we looked".to_string()
            } else {
                blockers
                    .iter()
                    .map(Session::describe)
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            let message = err
                .as_db_error()
                .map_or_else(|| error_chain(err), |db| db.message().to_string());
            let message = scrub(&format!(
                "{} {}: gave up after {attempt} attempts, each waiting at most lock_timeout = {} for a lock ({message}); blocked by: {who}",
                migration.version,
                migration.name,
                format_duration(lock_timeout),
            ));
            let (command, state) = match direction {
                Direction::Up => ("apply", "the migration is not applied"),
                Direction::Down => ("rollback", "the migration is still applied"),
            };
            let hint = Some(format!(
                "each attempt was rolled back, so the history is unchanged and {state}. Let the blocking sessions finish (or end them), then run {command} again; raise lock_retries or `-- migsafe:lock-timeout` if the table is always busy"
            ));
            return Err(match direction {
                Direction::Up => Error::Migration {
                    reason,
                    message,
                    hint,
                    source: None,
                },
                Direction::Down => Error::Rollback {
                    reason,
                    message,
                    hint,
                    source: None,
                },
            });
        }
        if let Some(index) = concurrent_index {
            self.drop_invalid_index(index).await;
        }
        let delay = backoff(self.limits.lock_retry_delay, attempt);
        self.events.emit(&Event::MigrationRetried {
            namespace: self.namespace.to_string(),
            version: migration.version.to_string(),
            attempt,
            delay_ms: crate::events::millis(delay),
            reason: reason.to_string(),
            blockers,
        });
        tokio::select! {
            () = tokio::time::sleep(delay) => Ok(()),
            () = self.interrupt.wait() => Err(self.cancelled(migration, direction, false)),
        }
    }

    /// A CREATE INDEX CONCURRENTLY that timed out leaves an INVALID index
    /// that would make the retry fail (or, with IF NOT EXISTS, silently keep
    /// the broken index): drop it first. Returns the index when dropped.
    async fn drop_invalid_index(&self, index: &ConcurrentIndex) -> Option<String> {
        let qualified = qualified_index(index)?;
        let invalid = self
            .db
            .client
            .query_opt(
                "SELECT 1 FROM pg_index WHERE indexrelid = to_regclass($1) AND NOT indisvalid",
                &[&qualified],
            )
            .await;
        if let Ok(Some(_)) = invalid {
            let drop = format!("DROP INDEX CONCURRENTLY IF EXISTS {qualified}");
            match self.db.client.batch_execute(&drop).await {
                Ok(()) => return Some(qualified),
                Err(err) => tracing::warn!("could not drop the invalid index {qualified}: {err}"),
            }
        }
        None
    }

    /// Drops the INVALID indexes left by the `CREATE INDEX CONCURRENTLY`
    /// statements of `script` (dirty recovery). Returns what was dropped.
    pub async fn drop_invalid_indexes(&self, script: &Script) -> Vec<String> {
        let mut dropped = Vec::new();
        for statement in statements::split(&script.sql).unwrap_or_default() {
            if let Some(index) = &statement.concurrent_index
                && let Some(name) = self.drop_invalid_index(index).await
            {
                dropped.push(name);
            }
        }
        dropped
    }

    fn failed(
        &self,
        migration: &Migration,
        direction: Direction,
        what: &str,
        state: &str,
    ) -> Error {
        let (code, verb) = match direction {
            Direction::Up => (Code::MigrationFailed, "failed"),
            Direction::Down => (Code::RollbackFailed, "failed to roll back"),
        };
        let message = scrub(&format!(
            "{} {} {verb}:\n{what}",
            migration.version, migration.name
        ));
        let hint = format!("{state}.");
        let reason = ReasonCode::migration(code, self.namespace, &migration.version);
        match direction {
            Direction::Up => Error::Migration {
                reason,
                message,
                hint: Some(hint),
                source: None,
            },
            Direction::Down => Error::Rollback {
                reason,
                message,
                hint: Some(hint),
                source: None,
            },
        }
    }

    fn leave_dirty(
        &self,
        err: Error,
        migration: &Migration,
        direction: Direction,
        done: &str,
    ) -> Error {
        let (ns, v) = (self.namespace, &migration.version);
        let broken = matches!(
            err.reason().code(),
            Code::MigrationFailed | Code::RollbackFailed
        );
        let repair = match direction {
            Direction::Up if self.auto_recovery && migration.down.is_some() => {
                let first = if broken {
                    "Fix the failing statement in the file first (it would fail again). Then the"
                } else {
                    "The"
                };
                format!(
                    "{done}. {first} next `migsafe apply` runs preflight, takes a verified backup, then rolls it back with its down script and applies it again; it refuses (RECOVERY_WOULD_DESTROY_DATA) if the down script would destroy rows written after now, unless you pass --recover. To settle it by hand instead: `migsafe repair --target {ns} --clear-dirty {v} --reason \"…\"` (finished) or `--forget {v}` (undone)"
                )
            }
            Direction::Up => format!(
                "{done}. migsafe refuses to move this namespace until it is repaired: check the schema by hand and finish or undo what is missing, then record the outcome: `migsafe repair --target {ns} --clear-dirty {v} --reason \"…\"` (finished: it stays applied) or `--forget {v}` (undone: it is pending again)"
            ),
            Direction::Down => format!(
                "{done}. The rollback stopped part-way{fix}: check the schema by hand, then record the outcome: `migsafe repair --target {ns} --forget {v} --reason \"…\"` if you finished undoing it (it is then pending), or `--clear-dirty {v}` if you restored what the down script removed (it is then applied)",
                fix = if broken { " (fix the down script)" } else { "" }
            ),
        };
        let reason =
            ReasonCode::migration(Code::MigrationDirty, self.namespace, &migration.version);
        match (err, direction) {
            (Error::Migration { message, .. }, _)
            | (Error::Rollback { message, .. }, Direction::Up) => Error::Migration {
                reason,
                message,
                hint: Some(repair),
                source: None,
            },
            (Error::Rollback { message, .. }, Direction::Down) => Error::Rollback {
                reason,
                message,
                hint: Some(repair),
                source: None,
            },
            (other, _) => other,
        }
    }

    /// Creating a Flyway project's schemas (or setting `search_path` to
    /// them) failed: nothing of the migration ran.
    fn flyway_schemas_failed(
        &self,
        migration: &Migration,
        direction: Direction,
        err: &tokio_postgres::Error,
    ) -> Error {
        let (code, hint) = match direction {
            Direction::Up => (
                Code::MigrationFailed,
                "nothing of it ran: create the schemas the Flyway configuration names (`schemas`, `defaultSchema`), or let this role create them, then run apply again",
            ),
            Direction::Down => (
                Code::RollbackFailed,
                "nothing of it ran: create the schemas the Flyway configuration names, then run rollback again",
            ),
        };
        let reason = ReasonCode::migration(code, self.namespace, &migration.version);
        let message = format!(
            "{} {}: the schemas of its Flyway configuration could not be set up, as Flyway does before a migration: {}",
            migration.version,
            migration.name,
            crate::db::scrub(
                &err.as_db_error()
                    .map_or_else(|| err.to_string(), |e| e.message().to_string())
            )
        );
        match direction {
            Direction::Up => Error::Migration {
                reason,
                message,
                hint: Some(hint.into()),
                source: None,
            },
            Direction::Down => Error::Rollback {
                reason,
                message,
                hint: Some(hint.into()),
                source: None,
            },
        }
    }

    fn cancelled(&self, migration: &Migration, direction: Direction, dirty: bool) -> Error {
        let state = if dirty {
            "the running statement was cancelled on the server; statements before it are committed and the migration is DIRTY"
        } else {
            "the running statement was cancelled on the server and rolled back; the history is unchanged"
        };
        let reason =
            ReasonCode::migration(Code::MigrationCancelled, self.namespace, &migration.version);
        let message = format!(
            "interrupted during {} {}: {state}",
            migration.version, migration.name
        );
        match direction {
            Direction::Up => Error::Migration {
                reason,
                message,
                hint: Some("run apply again when ready".into()),
                source: None,
            },
            Direction::Down => Error::Rollback {
                reason,
                message,
                hint: Some("run rollback again when ready".into()),
                source: None,
            },
        }
    }

    /// The connection broke mid-migration. Looks at the history from a new
    /// connection to say what happened, or says it cannot know.
    async fn lost(
        &self,
        migration: &Migration,
        direction: Direction,
        recorded: &str,
        err: &tokio_postgres::Error,
        transactional: bool,
    ) -> Error {
        let cause = scrub(&error_chain(err));
        // A restarting server refuses connections for a moment: ask for up to
        // ~10 s before saying the outcome is unknown.
        let ask = async {
            let mut delay = Duration::from_millis(200);
            loop {
                let Ok(db) = self.settings.connect().await else {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                    continue;
                };
                // Whether its record is there, and dirty. A repeatable's
                // record holds the checksum of its last run: this one
                // committed when it holds this file's.
                if migration.version.is_repeatable() {
                    let table = super::repeatables::Repeatables::of(self.history);
                    if let Ok(rows) = table.read(&db, self.namespace).await {
                        return rows
                            .iter()
                            .any(|r| {
                                r.name == migration.name && r.checksum == migration.up.checksum
                            })
                            .then_some(false);
                    }
                } else if let Ok(rows) = self.history.read(&db, self.namespace).await {
                    // A rerun's row was there before: it is this run's
                    // when it holds this text's checksum.
                    let rerun = direction == Direction::Up && migration.rerun_of.is_some();
                    return rows
                        .into_iter()
                        .find(|r| r.version.as_str() == recorded)
                        .filter(|r| !rerun || r.checksum == migration.up.checksum)
                        .map(|r| r.dirty);
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        };
        let row = tokio::time::timeout(Duration::from_secs(10), ask)
            .await
            .ok();
        let reason = |code| ReasonCode::migration(code, self.namespace, &migration.version);
        let (code, state) = match (row, direction, transactional) {
            (None, _, _) => (
                Code::MigrationOutcomeUnknown,
                "the server could not be asked what happened; run `migsafe status` when it is back".to_string(),
            ),
            (Some(Some(true)), _, _) => (
                Code::MigrationDirty,
                "the migration is DIRTY: part of it may have run; check by hand, then use `migsafe repair`".to_string(),
            ),
            (Some(Some(_)), Direction::Up, _) => (
                Code::MigrationFailed,
                "it was committed before the connection broke (its history row is present)".to_string(),
            ),
            (Some(None), Direction::Up, _) if migration.rerun_of.is_some() => (
                Code::MigrationFailed,
                "it was rolled back (its history row still records the earlier run): nothing of this run remains".to_string(),
            ),
            (Some(None), Direction::Up, _) => (
                Code::MigrationFailed,
                "it was rolled back (no history row): nothing of it remains".to_string(),
            ),
            (Some(Some(_)), Direction::Down, _) => (
                Code::RollbackFailed,
                "the rollback was not committed: the migration is still applied".to_string(),
            ),
            (Some(None), Direction::Down, _) => (
                Code::RollbackFailed,
                "the rollback was committed before the connection broke".to_string(),
            ),
        };
        let message = format!(
            "the connection broke during {} {}: {cause}; {state}",
            migration.version, migration.name
        );
        match direction {
            Direction::Up => Error::Migration {
                reason: reason(code),
                message,
                hint: Some("run apply again once the server is reachable".into()),
                source: None,
            },
            Direction::Down => Error::Rollback {
                reason: reason(code),
                message,
                hint: Some("check `migsafe status`, then run rollback again if needed".into()),
                source: None,
            },
        }
    }
}

/// What a failed transactional script left: nothing of its own transaction.
fn rolled_back_state(direction: Direction, rerun: bool) -> &'static str {
    match direction {
        Direction::Up if rerun => {
            "it was rolled back: nothing of this run remains; what its earlier run made and its history row are kept, and it is still `changed` (the next apply runs it again)"
        }
        Direction::Up => {
            "it was rolled back: nothing of it remains and its history row was not written; the migration is still pending"
        }
        Direction::Down => {
            "the down script's transaction was rolled back: nothing of it remains, the migration is still applied and its history row is unchanged"
        }
    }
}

fn first_failure<const N: usize>(
    results: [Option<tokio_postgres::Error>; N],
) -> Option<tokio_postgres::Error> {
    // A server error explains the failure better than the "transaction is
    // aborted" errors that follow it, and better than a later broken pipe.
    let mut first_other = None;
    for err in results.into_iter().flatten() {
        if err.as_db_error().is_some() && err.code() != Some(&SqlState::IN_FAILED_SQL_TRANSACTION) {
            return Some(err);
        }
        if first_other.is_none() {
            first_other = Some(err);
        }
    }
    first_other
}

fn classify(err: tokio_postgres::Error, cancelled: bool) -> Failure {
    match err.code() {
        Some(code) if *code == SqlState::LOCK_NOT_AVAILABLE => Failure::Lock(err),
        Some(code) if *code == SqlState::QUERY_CANCELED && cancelled => Failure::Cancelled,
        Some(_) => Failure::Server(err),
        None if err.as_db_error().is_none() => {
            if cancelled {
                Failure::Cancelled
            } else {
                Failure::Lost(err)
            }
        }
        None => Failure::Server(err),
    }
}

/// Exponential backoff from `base`, capped at 30 s, plus up to 50 % jitter so
/// that several runners do not retry in lockstep.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(16);
    let delay = base.saturating_mul(1 << exponent).min(MAX_RETRY_DELAY);
    let jitter_ms = u64::try_from(delay.as_millis() / 2).unwrap_or(0);
    delay + Duration::from_millis(fastrand::u64(0..=jitter_ms))
}

fn qualified_index(index: &ConcurrentIndex) -> Option<String> {
    index
        .name
        .as_ref()
        .map(|name| super::catalog::qualified(index.schema.as_deref(), name))
}

fn drop_invalid_index_hint(index: &ConcurrentIndex) -> String {
    match qualified_index(index) {
        Some(qualified) => format!("drop it with `DROP INDEX CONCURRENTLY IF EXISTS {qualified};` before retrying"),
        None => "find it with `SELECT indexrelid::regclass FROM pg_index WHERE NOT indisvalid` and drop it before retrying".into(),
    }
}

/// A server error with its SQLSTATE, detail, hint, and its position mapped to
/// `file:line:column`, followed by the offending line and a caret.
pub fn describe_server_error(
    err: &tokio_postgres::Error,
    script: &Script,
    statement: Option<&Statement>,
    prefix_chars: usize,
    statement_timeout: Duration,
) -> String {
    let Some(db) = err.as_db_error() else {
        return scrub(&error_chain(err));
    };
    let (sent, base) = match statement {
        Some(s) => (s.text.as_str(), s.offset),
        None => (script.sql.as_str(), 0),
    };
    let mut location = script.path.display().to_string();
    let mut excerpt = None;
    let position = match db.position() {
        Some(ErrorPosition::Original(pos)) => {
            (*pos as usize).checked_sub(prefix_chars).filter(|p| *p > 0)
        }
        _ => None,
    };
    let byte = position
        .and_then(|pos| {
            sent.char_indices()
                .nth(pos.saturating_sub(1))
                .map(|(b, _)| b)
        })
        .map(|b| base + b)
        .or_else(|| statement.map(|s| s.offset))
        // A runtime error (division by zero, a raised exception) carries no
        // position: in a script of one statement, that statement is the one.
        .or_else(|| {
            statements::split(&script.sql)
                .ok()
                .filter(|parts| parts.len() == 1)
                .map(|parts| parts[0].offset)
        });
    if let Some(byte) = byte.filter(|b| *b <= script.sql.len()) {
        let head = &script.sql[..byte];
        let line_in_script = head.matches('\n').count();
        let line_start = head.rfind('\n').map_or(0, |i| i + 1);
        let column = script.sql[line_start..byte].chars().count() + 1;
        let line_text = script.sql[line_start..].lines().next().unwrap_or("");
        location = format!("{location}:{}:{column}", line_in_script + script.first_line);
        if position.is_some() {
            excerpt = Some(format!(
                "    | {line_text}\n    | {}^",
                " ".repeat(column.saturating_sub(1))
            ));
        }
    }
    let mut text = format!(
        "{location}: {} {}: {}",
        db.severity(),
        db.code().code(),
        db.message()
    );
    if let Some(excerpt) = excerpt {
        text.push('\n');
        text.push_str(&excerpt);
    }
    if let Some(detail) = db.detail() {
        text.push_str(&format!("\n    DETAIL: {detail}"));
    }
    if let Some(hint) = db.hint() {
        text.push_str(&format!("\n    HINT: {hint}"));
    }
    if let Some(context) = db.where_() {
        text.push_str(&format!(
            "\n    CONTEXT: {}",
            context.replace('\n', "\n             ")
        ));
    }
    if *db.code() == SqlState::ACTIVE_SQL_TRANSACTION {
        text.push_str("\n    migsafe: this statement cannot run inside a transaction; put `-- migsafe:no-transaction` at the top of the file");
    }
    if *db.code() == SqlState::QUERY_CANCELED && !statement_timeout.is_zero() {
        text.push_str(&format!(
            "\n    migsafe: statement_timeout is {}; raise it for this file with `-- migsafe:statement-timeout 10min`",
            format_duration(statement_timeout)
        ));
    }
    scrub(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let base = Duration::from_secs(1);
        for attempt in 1..20 {
            let delay = backoff(base, attempt);
            let floor = base
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(MAX_RETRY_DELAY);
            assert!(
                delay >= floor && delay <= floor + floor / 2,
                "{attempt}: {delay:?}"
            );
        }
    }
}

//! `migsafe verify` (SPEC 8): prove on a scratch database that every
//! migration reverses cleanly — up, down, up — comparing canonical schema
//! snapshots, before the migrations reach production.
//!
//! Stepwise (the default), every migration N goes through SPEC 8's
//! procedure: up; snapshot A; down; compare with the schema before N; up
//! again; compare with A. The first check that fails names N and why (the
//! PostgreSQL error, or the structural diff). A later migration is never
//! blamed for N's fault: after a broken step the schema is rebuilt from the up
//! scripts through N on a fresh scratch database before the next step runs, so
//! each later step is checked from the schema a forward run would have.
//!
//! Faster paths must give the same verdict. A step whose up script only
//! creates objects is proved from a DDL record (event triggers) instead of
//! snapshots; whenever the record cannot prove a check, the check is made
//! with snapshots, a missing one rebuilt from the up scripts on a second
//! scratch database. [`VerifyOptions::exact`] turns every fast path off, and
//! the tests run generated histories both ways and compare the verdicts.
//!
//! The scratch database is created on `--scratch-url`'s server under a unique
//! name and always dropped (also on failure and Ctrl-C), or lives in a
//! sandbox that removes itself; so are the second ones. The production URL
//! is never used. `[verify] setup` runs on each of them before anything else.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;

use crate::config::{Config, Namespace, format_duration};
use crate::db::history::{History, database_error};
use crate::db::{ConnectionSettings, Db, quote_ident};
use crate::error::{Code, Error, ReasonCode, Result};
use crate::events::{Direction, Interrupt, NoEvents};
use crate::pipeline::{Env, RunnerParts, Target, lock_namespace, unlock_namespace};
use crate::schema::{Change, Reader, Snapshot, diff};
use crate::source::{Migration, MigrationSet};

/// How to verify. The default checks every migration on its own: up → down →
/// same as before → up again → same as after the first up.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Only the full cycle (all up, all down, all up). Weaker: a down script
    /// that forgets something a later down script removes anyway (a column of
    /// a table dropped further down) passes, and a difference is blamed on
    /// the namespace, not on a migration.
    pub quick: bool,
    /// Warnings fail the run: over-budget migrations, and migrations without
    /// a down script in a namespace that has down scripts.
    pub strict: bool,
    /// SPEC 8's procedure with every snapshot it names and nothing else: no
    /// DDL record, no schema rebuilt elsewhere to stand in for a snapshot.
    /// Slower; the default gives the same verdict, which the tests check by
    /// running both.
    pub exact: bool,
}

/// One migration's result.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationResult {
    /// Version.
    pub version: String,
    /// Name.
    pub name: String,
    /// Up script time (the first up).
    pub up_ms: u64,
    /// Down script time, when it ran.
    pub down_ms: Option<u64>,
    /// Longer than `migration_time_budget`.
    pub over_budget: bool,
}

/// A broken step: a script that failed, or a schema that was not what it
/// should have been.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mismatch {
    /// Namespace.
    pub namespace: String,
    /// The migration whose step broke; for the full cycle's comparisons, none
    /// (the namespace's whole set).
    pub version: Option<String>,
    /// Which part of the step: `up` (the first up failed: verify stopped
    /// there), `down` (the down failed, or did not give back the schema
    /// before the up), `up-again` (the second up failed, or gave a schema
    /// other than the first up's).
    pub step: String,
    /// What differs, when a comparison failed: `before` is the expected side.
    pub changes: Vec<Change>,
    /// When a script failed: its reason code (`MIGRATION_FAILED:ns:v`,
    /// `ROLLBACK_FAILED:ns:v`, `MIGRATION_DIRTY:ns:v`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When a script failed: the error, with the file position and the
    /// server's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One namespace's verification.
#[derive(Debug, Clone, Serialize)]
pub struct NamespaceResult {
    /// Namespace.
    pub namespace: String,
    /// Forward-only (configured, or no down script at all): only the up half
    /// was run.
    pub forward_only: bool,
    /// Migrations without a down script in a namespace that has down
    /// scripts (`DOWN_SCRIPT_MISSING`): applied, not reversed.
    pub down_missing: Vec<String>,
    /// Per migration whose up script ran.
    pub migrations: Vec<MigrationResult>,
}

/// The verify report (`logs/verify-report-<timestamp>.json`).
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Format version.
    pub schema_version: u32,
    /// `stepwise` (the default) or `quick` (the full cycle only).
    pub mode: &'static str,
    /// Where it ran (`sandbox`, or the scratch server without password).
    pub scratch: String,
    /// When it started.
    pub started_at: chrono::DateTime<Utc>,
    /// How long it took.
    pub duration_ms: u64,
    /// Per namespace.
    pub namespaces: Vec<NamespaceResult>,
    /// Every broken step, in the order found: the first is the first broken
    /// step.
    pub mismatches: Vec<Mismatch>,
    /// `pass`, `warn` (over budget, down scripts missing) or `fail`.
    pub result: crate::report::Status,
}

impl VerifyReport {
    /// SPEC 11: 2 when a script failed, 6 for any other failure (a
    /// difference, or a warning under `--strict`), else 0.
    pub fn exit_code(&self) -> i32 {
        match self.result {
            crate::report::Status::Fail if self.mismatches.iter().any(|m| m.error.is_some()) => 2,
            crate::report::Status::Fail => 6,
            _ => 0,
        }
    }
}

/// Runs verify for the given namespaces on a fresh scratch database.
pub async fn verify(
    config: &Config,
    namespaces: &[(Namespace, MigrationSet)],
    scratch_url: Option<&str>,
    options: &VerifyOptions,
    interrupt: &Interrupt,
) -> Result<VerifyReport> {
    let setup = Setup::read(config)?;
    let scratch = crate::scratch::Scratch::create(scratch_url, "verify").await?;
    let result = run(
        config,
        namespaces,
        &scratch.settings,
        &scratch.shown,
        setup.as_ref(),
        options,
        interrupt,
    )
    .await;
    scratch.remove().await;
    result
}

const SETUP_HINT: &str = "the setup file runs on every scratch database verify creates, on a fresh connection before the migrations' own: create roles and other cluster-wide objects only if missing (DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app') THEN CREATE ROLE app; END IF; END $$), and name the database with current_database() (DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET search_path = app, public', current_database()); END $$); nothing ran on any real database";

/// The `[verify] setup` file (SPEC 8), read once.
struct Setup {
    path: PathBuf,
    sql: String,
}

impl Setup {
    fn read(config: &Config) -> Result<Option<Setup>> {
        let Some(path) = &config.verify.setup else {
            return Ok(None);
        };
        let sql = std::fs::read_to_string(path).map_err(|e| Error::Config {
            reason: ReasonCode::new(Code::VerifySetupFailed),
            message: format!("cannot read the verify setup file {}: {e}", path.display()),
            hint: Some(
                "`[verify] setup` is relative to the config file's directory; nothing ran".into(),
            ),
        })?;
        Ok(Some(Setup {
            path: path.clone(),
            sql,
        }))
    }

    /// Runs the file on a scratch database, on a connection of its own that
    /// is closed before the migrations' connections open: `ALTER DATABASE …
    /// SET` takes effect for them.
    async fn run(&self, settings: &ConnectionSettings) -> Result<()> {
        let db = settings.connect().await?;
        db.client.batch_execute(&self.sql).await.map_err(|e| {
            let detail = match e.as_db_error() {
                Some(server) => {
                    let line = match server.position() {
                        Some(tokio_postgres::error::ErrorPosition::Original(at)) => {
                            let at = usize::try_from(*at).unwrap_or(0).saturating_sub(1);
                            let upto: String = self.sql.chars().take(at).collect();
                            format!(" (line {})", upto.matches('\n').count() + 1)
                        }
                        _ => String::new(),
                    };
                    format!("ERROR {}: {}{line}", server.code().code(), server.message())
                }
                None => database_error(&db, "run the verify setup file", &e).to_string(),
            };
            Error::Config {
                reason: ReasonCode::new(Code::VerifySetupFailed),
                message: crate::db::scrub(&format!(
                    "verify: the setup file {} failed on the scratch database: {detail}",
                    self.path.display()
                )),
                hint: Some(SETUP_HINT.into()),
            }
        })
    }
}

/// A script's own failure on the scratch database: the step's verdict.
/// (Losing the server or Ctrl-C end the run instead.)
struct Failed {
    reason: ReasonCode,
    message: String,
}

impl Failed {
    fn blame(self, namespace: &Namespace, migration: &Migration, step: &str) -> Mismatch {
        Mismatch {
            namespace: namespace.name.clone(),
            version: Some(migration.version.to_string()),
            step: step.to_string(),
            changes: Vec::new(),
            reason: Some(self.reason.to_string()),
            error: Some(self.message),
        }
    }

    /// As an error, for a script that failed where it had succeeded before
    /// (rebuilding a schema on another scratch database).
    fn into_error(self, doing: &str) -> Error {
        Error::Migration {
            reason: self.reason,
            message: format!("verify: {} ({doing})", self.message),
            hint: Some(
                "an up script that gives a different result when run again on the same schema (it depends on the time, random values or rows) cannot be verified step by step; `migsafe verify --quick` runs each up script once per cycle"
                    .into(),
            ),
        }
    }
}

/// A script's time, or its own failure.
type Ran = std::result::Result<u64, Failed>;

struct Session<'a> {
    config: &'a Config,
    settings: ConnectionSettings,
    db: Db,
    reader: Reader,
    history: History,
    parts: RunnerParts,
    interrupt: &'a Interrupt,
    /// The DDL tracker of [`TRACKER`] is installed (it needs a superuser).
    tracking: bool,
}

/// Records, on the session that runs the scripts, the OID of every object a
/// DDL command creates, alters or drops (event triggers), in the session
/// setting `migsafe.touched`, and each command with the object's identity in
/// `migsafe.commands`. Both start with `#` (see [`Session::mark`]): a script's
/// `RESET ALL` empties them, and a record without its `#` proves nothing.
/// Lives in `pg_temp`: never part of a snapshot.
const TRACKER: &str = r#"
CREATE FUNCTION pg_temp.migsafe_verify_touched() RETURNS event_trigger LANGUAGE plpgsql AS $fn$
DECLARE
  seen text := coalesce(current_setting('migsafe.touched', true), '');
  done text := coalesce(current_setting('migsafe.commands', true), '');
BEGIN
  IF TG_EVENT = 'sql_drop' THEN
    SELECT seen || coalesce(string_agg(' ' || objid::text, ''), ''),
           done || coalesce(string_agg(E'\n' || 'DROP ' || object_type || ' ' || coalesce(object_identity, ''), ''), '')
      INTO seen, done FROM pg_event_trigger_dropped_objects();
  ELSE
    SELECT seen || coalesce(string_agg(' ' || coalesce(objid, 0)::text, ''), ''),
           done || coalesce(string_agg(E'\n' || command_tag || ' ' || coalesce(object_type, '') || ' ' || coalesce(object_identity, ''), ''), '')
      INTO seen, done FROM pg_event_trigger_ddl_commands();
  END IF;
  PERFORM set_config('migsafe.touched', seen, false);
  PERFORM set_config('migsafe.commands', done, false);
END $fn$;
CREATE EVENT TRIGGER migsafe_verify_ddl ON ddl_command_end EXECUTE FUNCTION pg_temp.migsafe_verify_touched();
CREATE EVENT TRIGGER migsafe_verify_drop ON sql_drop EXECUTE FUNCTION pg_temp.migsafe_verify_touched();
"#;

/// The highest OID of any object a snapshot can show. On a scratch database
/// the OID counter only grows, so every object created later has a higher one.
const NEWEST_OID: &str = "greatest(
  (SELECT max(oid) FROM pg_namespace), (SELECT max(oid) FROM pg_class), (SELECT max(oid) FROM pg_type),
  (SELECT max(oid) FROM pg_proc), (SELECT max(oid) FROM pg_constraint), (SELECT max(oid) FROM pg_attrdef),
  (SELECT max(oid) FROM pg_trigger), (SELECT max(oid) FROM pg_rewrite), (SELECT max(oid) FROM pg_policy),
  (SELECT max(oid) FROM pg_enum), (SELECT max(oid) FROM pg_extension), (SELECT max(oid) FROM pg_collation),
  (SELECT max(oid) FROM pg_opclass), (SELECT max(oid) FROM pg_operator), (SELECT max(oid) FROM pg_cast),
  (SELECT max(oid) FROM pg_default_acl))::text::bigint";

/// What DDL did since the last [`Session::mark`] or [`Session::record`].
struct Record {
    /// The record survived (no `RESET ALL` emptied it).
    complete: bool,
    /// OIDs of the objects created, altered or dropped.
    oids: Vec<i64>,
    /// Each command and the identity of its object, in order.
    commands: String,
    /// The newest OID now.
    newest: i64,
}

impl Record {
    /// Every object touched is newer than `mark`: nothing that existed at the
    /// mark was changed or dropped.
    fn only_newer_than(&self, mark: i64) -> bool {
        self.complete && self.oids.iter().all(|oid| *oid > mark)
    }
}

impl<'a> Session<'a> {
    /// Connects to a scratch database and prepares to run scripts and read
    /// snapshots there (`split`: snapshots on two connections).
    async fn open(
        config: &'a Config,
        settings: ConnectionSettings,
        interrupt: &'a Interrupt,
        split: bool,
    ) -> Result<Session<'a>> {
        let db = settings.connect().await?;
        let history = History::new(&config.history_schema);
        // A fresh scratch database: nobody else creates the tables concurrently.
        history.ensure(&db).await?;
        let reader = if split {
            Reader::prepare_split(&db, settings.connect().await?).await?
        } else {
            Reader::prepare(&db).await?
        };
        let parts = RunnerParts::load(&env(config, interrupt), &db, &history).await?;
        Ok(Session {
            config,
            settings,
            db,
            reader,
            history,
            parts,
            interrupt,
            tracking: false,
        })
    }

    /// Installs the DDL tracker; without the rights for event triggers,
    /// every step takes its snapshots.
    async fn track(&mut self) {
        match self.db.client.batch_execute(TRACKER).await {
            Ok(()) => self.tracking = true,
            Err(err) => tracing::debug!("verify without the DDL tracker: {err}"),
        }
    }

    /// Starts a new DDL record; returns the newest OID now.
    async fn mark(&self) -> Result<i64> {
        let row = self
            .db
            .client
            .query_one(
                &format!(
                    "SELECT set_config('migsafe.touched', '#', false), set_config('migsafe.commands', '#', false), {NEWEST_OID}"
                ),
                &[],
            )
            .await
            .map_err(|e| database_error(&self.db, "mark the schema", &e))?;
        Ok(row.get(2))
    }

    /// Reads the DDL record since the last mark or record, and starts a new one.
    async fn record(&self) -> Result<Record> {
        let row = self
            .db
            .client
            .query_one(
                &format!(
                    "SELECT coalesce(current_setting('migsafe.touched', true), ''), coalesce(current_setting('migsafe.commands', true), ''), \
                     set_config('migsafe.touched', '#', false), set_config('migsafe.commands', '#', false), {NEWEST_OID}"
                ),
                &[],
            )
            .await
            .map_err(|e| database_error(&self.db, "read the DDL record", &e))?;
        let touched: String = row.get(0);
        let commands: String = row.get(1);
        let complete = touched.starts_with('#') && commands.starts_with('#');
        let oids: Option<Vec<i64>> = touched
            .trim_start_matches('#')
            .split_whitespace()
            .map(|oid| oid.parse().ok())
            .collect();
        Ok(Record {
            complete: complete && oids.is_some(),
            oids: oids.unwrap_or_default(),
            commands,
            newest: row.get(4),
        })
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        self.reader
            .read(&self.db, &self.config.history_schema)
            .await
    }

    /// Runs one script. The script's own failure (its SQL failed: the
    /// message has the migration, the statement and the server's message
    /// with its position) is the inner error; anything else (Ctrl-C, the
    /// server gone) ends the run.
    async fn run(
        &self,
        namespace: &Namespace,
        sources: &MigrationSet,
        migration: &Migration,
        direction: Direction,
    ) -> Result<Ran> {
        let env = env(self.config, self.interrupt);
        let target = Target {
            namespace,
            sources,
            settings: &self.settings,
        };
        let runner = self.parts.runner(&env, &target, &self.db, &self.history);
        match runner
            .run(migration, direction, migration.version.as_str())
            .await
        {
            Ok(duration) => Ok(Ok(crate::events::millis(duration))),
            Err(err) => {
                let own = matches!(
                    err.reason().code(),
                    Code::MigrationFailed | Code::RollbackFailed | Code::MigrationDirty
                ) && !self.db.client.is_closed();
                if !own {
                    return Err(err);
                }
                Ok(Err(Failed {
                    reason: err.reason().clone(),
                    message: format!(
                        "the {} script of {} {} failed on the scratch database:\n{err}",
                        if direction == Direction::Up {
                            "up"
                        } else {
                            "down"
                        },
                        migration.version,
                        migration.name
                    ),
                }))
            }
        }
    }

    /// Runs the up scripts of every earlier namespace and of
    /// `migrations`, each of which succeeded before on the same schema.
    async fn forward(
        &self,
        earlier: &[(Namespace, MigrationSet)],
        namespace: &Namespace,
        sources: &MigrationSet,
        migrations: &[Migration],
    ) -> Result<()> {
        let doing = "while rebuilding the schema on another scratch database";
        for (earlier_namespace, earlier_sources) in earlier {
            for migration in &earlier_sources.migrations {
                self.run(earlier_namespace, earlier_sources, migration, Direction::Up)
                    .await?
                    .map_err(|f| f.into_error(doing))?;
            }
        }
        for migration in migrations {
            self.run(namespace, sources, migration, Direction::Up)
                .await?
                .map_err(|f| f.into_error(doing))?;
        }
        Ok(())
    }
}

fn env<'a>(config: &'a Config, interrupt: &'a Interrupt) -> Env<'a> {
    Env {
        config,
        events: &NoEvents,
        interrupt,
        log_dir: std::path::Path::new("logs"),
    }
}

/// One step's outcome.
enum Verdict {
    /// Every check held.
    Passed,
    /// A check failed; the schema is no longer what a forward run would have.
    Broken(Mismatch),
    /// The first up failed: nothing after it can be checked.
    Stopped(Mismatch),
}

/// The state of one verify run.
struct Run<'a> {
    config: &'a Config,
    interrupt: &'a Interrupt,
    options: &'a VerifyOptions,
    setup: Option<&'a Setup>,
    scratch: &'a ConnectionSettings,
    /// On the scratch database: creates and drops the second ones.
    admin: Db,
    /// Where the steps run: the scratch database, or the one the schema was
    /// last rebuilt on.
    session: Session<'a>,
    /// The database `session` is on when it was rebuilt (dropped when
    /// replaced, and at the end).
    rebuilt: Option<String>,
    /// A step broke: the next one needs the schema rebuilt first.
    stale: bool,
    budget: Duration,
}

async fn run(
    config: &Config,
    namespaces: &[(Namespace, MigrationSet)],
    scratch: &ConnectionSettings,
    shown: &str,
    setup: Option<&Setup>,
    options: &VerifyOptions,
    interrupt: &Interrupt,
) -> Result<VerifyReport> {
    let started_at = Utc::now();
    let started = Instant::now();
    if let Some(setup) = setup {
        setup.run(scratch).await?;
    }
    let admin = scratch.connect().await?;
    let mut session = Session::open(config, scratch.clone(), interrupt, true).await?;
    if !options.quick && !options.exact {
        session.track().await;
    }
    let mut run = Run {
        config,
        interrupt,
        options,
        setup,
        scratch,
        admin,
        session,
        rebuilt: None,
        stale: false,
        budget: config.defaults.migration_time_budget,
    };
    let mut mismatches = Vec::new();
    let outcome = run.namespaces(namespaces, &mut mismatches).await;
    if let Some(name) = run.rebuilt.take() {
        run.drop_database(&name).await;
    }
    let results = outcome?;
    let over_budget = results
        .iter()
        .flat_map(|r| &r.migrations)
        .any(|m| m.over_budget);
    let warned = over_budget || results.iter().any(|r| !r.down_missing.is_empty());
    let result = if !mismatches.is_empty() || (options.strict && warned) {
        crate::report::Status::Fail
    } else if warned {
        crate::report::Status::Warn
    } else {
        crate::report::Status::Pass
    };
    Ok(VerifyReport {
        schema_version: 1,
        mode: if options.quick { "quick" } else { "stepwise" },
        scratch: shown.to_string(),
        started_at,
        duration_ms: crate::events::millis(started.elapsed()),
        namespaces: results,
        mismatches,
        result,
    })
}

impl<'a> Run<'a> {
    async fn namespaces(
        &mut self,
        namespaces: &[(Namespace, MigrationSet)],
        mismatches: &mut Vec<Mismatch>,
    ) -> Result<Vec<NamespaceResult>> {
        let mut results = Vec::new();
        for (index, (namespace, sources)) in namespaces.iter().enumerate() {
            let earlier = &namespaces[..index];
            if self.stale {
                self.rebuild(earlier, namespace, sources, 0).await?;
            }
            let key = self.lock(namespace, sources).await?;
            let outcome = if self.options.quick {
                self.full_cycle(namespace, sources, mismatches).await
            } else {
                self.stepwise(earlier, namespace, sources, mismatches).await
            };
            unlock_namespace(&self.session.db, key).await;
            let (result, stopped) = outcome?;
            results.push(result);
            if stopped {
                // Later namespaces may build on this one: nothing to check them on.
                break;
            }
        }
        Ok(results)
    }

    async fn lock(&self, namespace: &Namespace, sources: &MigrationSet) -> Result<i64> {
        let target = Target {
            namespace,
            sources,
            settings: &self.session.settings,
        };
        lock_namespace(
            &env(self.config, self.interrupt),
            &target,
            &self.session.db,
            &self.session.history,
        )
        .await
    }

    /// For each migration, SPEC 8's step (see [`Run::step`]); a migration
    /// without a down script is applied and named, a forward-only namespace
    /// is applied only.
    async fn stepwise(
        &mut self,
        earlier: &[(Namespace, MigrationSet)],
        namespace: &Namespace,
        sources: &MigrationSet,
        mismatches: &mut Vec<Mismatch>,
    ) -> Result<(NamespaceResult, bool)> {
        let forward_only = namespace.forward_only || sources.forward_only();
        let mut result = NamespaceResult {
            namespace: namespace.name.clone(),
            forward_only,
            down_missing: Vec::new(),
            migrations: Vec::new(),
        };
        // The snapshot of the schema as it is now, when one was taken and still holds.
        let mut known: Option<Snapshot> = None;
        for (index, migration) in sources.migrations.iter().enumerate() {
            if self.stale {
                self.rebuild(earlier, namespace, sources, index).await?;
                known = None;
            }
            if forward_only || migration.down.is_none() {
                known = None;
                match self
                    .session
                    .run(namespace, sources, migration, Direction::Up)
                    .await?
                {
                    Ok(up) => {
                        result
                            .migrations
                            .push(result_for(migration, up, None, self.budget));
                    }
                    Err(failed) => {
                        mismatches.push(failed.blame(namespace, migration, "up"));
                        return Ok((result, true));
                    }
                }
                if !forward_only {
                    result.down_missing.push(migration.version.to_string());
                }
                continue;
            }
            let (times, verdict) = self
                .step(earlier, namespace, sources, index, &mut known)
                .await?;
            if let Some((up, down)) = times {
                result
                    .migrations
                    .push(result_for(migration, up, down, self.budget));
            }
            match verdict {
                Verdict::Passed => {}
                Verdict::Broken(mismatch) => {
                    mismatches.push(mismatch);
                    self.stale = true;
                }
                Verdict::Stopped(mismatch) => {
                    mismatches.push(mismatch);
                    return Ok((result, true));
                }
            }
        }
        Ok((result, false))
    }

    /// SPEC 8's step for `sources.migrations[index]`: up; snapshot A; down;
    /// compare with the schema before; up again; compare with A. The first
    /// check that fails is the verdict.
    ///
    /// Fast path, for an up script that only creates objects: the DDL record
    /// proves "down gave back the schema before" when up and down touched
    /// only objects newer than the step's start and none is left, and "up
    /// again gave A" when, on that same schema, the second up again touched
    /// only new objects and ran the same commands on the same objects. What
    /// the record cannot prove is compared with snapshots; a snapshot not
    /// taken (before, A) is rebuilt on a second scratch database from the up
    /// scripts.
    async fn step(
        &self,
        earlier: &[(Namespace, MigrationSet)],
        namespace: &Namespace,
        sources: &MigrationSet,
        index: usize,
        known: &mut Option<Snapshot>,
    ) -> Result<(Option<(u64, Option<u64>)>, Verdict)> {
        let migration = &sources.migrations[index];
        let session = &self.session;
        let fast = session.tracking && !self.options.exact && creates_only(&migration.up);
        let mut before = known.take();
        if !fast && before.is_none() {
            before = Some(session.snapshot().await?);
        }
        let mark = if fast {
            Some(session.mark().await?)
        } else {
            None
        };
        let broken = |step: &str, changes: Vec<Change>| {
            Verdict::Broken(Mismatch {
                namespace: namespace.name.clone(),
                version: Some(migration.version.to_string()),
                step: step.to_string(),
                changes,
                reason: None,
                error: None,
            })
        };

        // Up; snapshot A.
        let up = match session
            .run(namespace, sources, migration, Direction::Up)
            .await?
        {
            Ok(ms) => ms,
            Err(failed) => {
                return Ok((
                    None,
                    Verdict::Stopped(failed.blame(namespace, migration, "up")),
                ));
            }
        };
        let up_record = match mark {
            Some(_) => Some(session.record().await?),
            None => None,
        };
        let proving = match (&up_record, mark) {
            (Some(record), Some(mark)) => record.only_newer_than(mark),
            _ => false,
        };
        // The record already shows the down check will need snapshots: take A now.
        let mut after_up = if proving {
            None
        } else {
            Some(session.snapshot().await?)
        };

        // Down; compare with the schema before.
        let down = match session
            .run(namespace, sources, migration, Direction::Down)
            .await?
        {
            Ok(ms) => ms,
            Err(failed) => {
                return Ok((
                    Some((up, None)),
                    Verdict::Broken(failed.blame(namespace, migration, "down")),
                ));
            }
        };
        let times = Some((up, Some(down)));
        let restored = match mark {
            Some(mark) if proving => {
                let record = session.record().await?;
                record.only_newer_than(mark) && record.newest <= mark
            }
            _ => false,
        };
        if !restored {
            let before = match before {
                Some(snapshot) => snapshot,
                None => {
                    let (before, after) = self.replay(earlier, namespace, sources, index).await?;
                    after_up.get_or_insert(after);
                    before
                }
            };
            let changes = diff(&before, &session.snapshot().await?);
            if !changes.is_empty() {
                return Ok((times, broken("down", changes)));
            }
        }

        // Up again; compare with A.
        let again_mark = if restored {
            Some(session.mark().await?)
        } else {
            None
        };
        if let Err(failed) = session
            .run(namespace, sources, migration, Direction::Up)
            .await?
        {
            return Ok((
                times,
                Verdict::Broken(failed.blame(namespace, migration, "up-again")),
            ));
        }
        if let (Some(mark), Some(first)) = (again_mark, &up_record) {
            let again = session.record().await?;
            if again.only_newer_than(mark) && again.commands == first.commands {
                return Ok((times, Verdict::Passed));
            }
        }
        let after_up = match after_up {
            Some(snapshot) => snapshot,
            None => self.replay(earlier, namespace, sources, index).await?.1,
        };
        let now = session.snapshot().await?;
        let changes = diff(&after_up, &now);
        if !changes.is_empty() {
            return Ok((times, broken("up-again", changes)));
        }
        *known = Some(now);
        Ok((times, Verdict::Passed))
    }

    /// before → up all → A → down all → must equal before → up all → must
    /// equal A. Migrations without a down script are applied and named; the
    /// cycle then covers the migrations after the last of them.
    async fn full_cycle(
        &mut self,
        namespace: &Namespace,
        sources: &MigrationSet,
        mismatches: &mut Vec<Mismatch>,
    ) -> Result<(NamespaceResult, bool)> {
        let forward_only = namespace.forward_only || sources.forward_only();
        let mut result = NamespaceResult {
            namespace: namespace.name.clone(),
            forward_only,
            down_missing: Vec::new(),
            migrations: Vec::new(),
        };
        let session = &self.session;
        let mut base = if forward_only {
            None
        } else {
            Some(session.snapshot().await?)
        };
        // The reversible tail: the migrations after the last one without a down.
        let count = sources.migrations.len();
        let mut tail = 0;
        let mut ups = Vec::new();
        for (index, migration) in sources.migrations.iter().enumerate() {
            match session
                .run(namespace, sources, migration, Direction::Up)
                .await?
            {
                Ok(up) => ups.push(up),
                Err(failed) => {
                    mismatches.push(failed.blame(namespace, migration, "up"));
                    return Ok((result, true));
                }
            }
            result
                .migrations
                .push(result_for(migration, ups[index], None, self.budget));
            if !forward_only && migration.down.is_none() {
                result.down_missing.push(migration.version.to_string());
                tail = index + 1;
                base = if tail < count {
                    Some(session.snapshot().await?)
                } else {
                    None
                };
            }
        }
        let Some(base) = base.filter(|_| !forward_only && tail < count) else {
            return Ok((result, false));
        };
        let after = session.snapshot().await?;
        let found = mismatches.len();
        for index in (tail..count).rev() {
            let migration = &sources.migrations[index];
            match session
                .run(namespace, sources, migration, Direction::Down)
                .await?
            {
                Ok(down) => {
                    result.migrations[index] =
                        result_for(migration, ups[index], Some(down), self.budget);
                }
                Err(failed) => {
                    mismatches.push(failed.blame(namespace, migration, "down"));
                    break;
                }
            }
        }
        let whole = |step: &str, changes: Vec<Change>| Mismatch {
            namespace: namespace.name.clone(),
            version: None,
            step: step.to_string(),
            changes,
            reason: None,
            error: None,
        };
        if mismatches.len() == found {
            let changes = diff(&base, &session.snapshot().await?);
            if !changes.is_empty() {
                mismatches.push(whole("down", changes));
            }
        }
        if mismatches.len() == found {
            for migration in &sources.migrations[tail..] {
                if let Err(failed) = session
                    .run(namespace, sources, migration, Direction::Up)
                    .await?
                {
                    mismatches.push(failed.blame(namespace, migration, "up-again"));
                    break;
                }
            }
        }
        if mismatches.len() == found {
            let changes = diff(&after, &session.snapshot().await?);
            if !changes.is_empty() {
                mismatches.push(whole("up-again", changes));
            }
        }
        // A later namespace is checked on the schema a forward run gives.
        self.stale = mismatches.len() > found;
        Ok((result, false))
    }

    /// A new database on the scratch server for `purpose`.
    async fn create_database(&self, purpose: &str) -> Result<(ConnectionSettings, String)> {
        let name = format!(
            "{}_{purpose}_{}",
            self.scratch.dbname().unwrap_or("migsafe_verify"),
            fastrand::u32(..)
        );
        self.admin
            .client
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .await
            .map_err(|e| database_error(&self.admin, "create a second scratch database", &e))?;
        let settings = self.scratch.with_dbname(&name);
        if let Some(setup) = self.setup
            && let Err(err) = setup.run(&settings).await
        {
            self.drop_database(&name).await;
            return Err(err);
        }
        Ok((settings, name))
    }

    async fn drop_database(&self, name: &str) {
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name));
        if let Err(err) = self.admin.client.batch_execute(&drop).await {
            tracing::warn!("could not drop the scratch database {name}: {err}");
        }
    }

    /// The schema before and after `sources.migrations[index]` as a forward
    /// run gives them: built on a second scratch database (same server,
    /// always dropped) from every earlier namespace and the migrations up to
    /// it, then read.
    async fn replay(
        &self,
        earlier: &[(Namespace, MigrationSet)],
        namespace: &Namespace,
        sources: &MigrationSet,
        index: usize,
    ) -> Result<(Snapshot, Snapshot)> {
        let (settings, name) = self.create_database("replay").await?;
        let result = async {
            let replay = Session::open(self.config, settings, self.interrupt, false).await?;
            replay
                .forward(earlier, namespace, sources, &sources.migrations[..index])
                .await?;
            let before = replay.snapshot().await?;
            let after = match sources.migrations.get(index) {
                Some(migration) => {
                    replay
                        .forward(&[], namespace, sources, std::slice::from_ref(migration))
                        .await?;
                    replay.snapshot().await?
                }
                None => before.clone(),
            };
            Ok((before, after))
        }
        .await;
        self.drop_database(&name).await;
        result
    }

    /// Moves the run to a new scratch database holding the schema a forward
    /// run gives before `sources.migrations[upto]`, after a broken step left
    /// the current one otherwise.
    async fn rebuild(
        &mut self,
        earlier: &[(Namespace, MigrationSet)],
        namespace: &Namespace,
        sources: &MigrationSet,
        upto: usize,
    ) -> Result<()> {
        let (settings, name) = self.create_database("step").await?;
        let result = async {
            let mut session = Session::open(self.config, settings, self.interrupt, true).await?;
            if self.session.tracking {
                session.track().await;
            }
            let target = Target {
                namespace,
                sources,
                settings: &session.settings,
            };
            lock_namespace(
                &env(self.config, self.interrupt),
                &target,
                &session.db,
                &session.history,
            )
            .await?;
            session
                .forward(earlier, namespace, sources, &sources.migrations[..upto])
                .await?;
            Ok(session)
        }
        .await;
        match result {
            Ok(session) => {
                drop(std::mem::replace(&mut self.session, session));
                if let Some(old) = self.rebuilt.replace(name) {
                    self.drop_database(&old).await;
                }
                self.stale = false;
                Ok(())
            }
            Err(err) => {
                self.drop_database(&name).await;
                Err(err)
            }
        }
    }
}

fn result_for(
    migration: &Migration,
    up_ms: u64,
    down_ms: Option<u64>,
    budget: Duration,
) -> MigrationResult {
    let slowest = up_ms.max(down_ms.unwrap_or(0));
    MigrationResult {
        version: migration.version.to_string(),
        name: migration.name.clone(),
        up_ms,
        down_ms,
        over_budget: !budget.is_zero() && Duration::from_millis(slowest) > budget,
    }
}

/// An up script that only makes new objects (tables, indexes, views,
/// functions, types…) and moves data: its down script usually drops exactly
/// those, which the DDL tracker can confirm without a snapshot.
fn creates_only(script: &crate::source::Script) -> bool {
    use pg_query::NodeEnum;
    let Ok(parsed) = pg_query::parse(&script.sql, 0) else {
        return false;
    };
    parsed.protobuf.stmts.iter().all(
        |raw| match raw.stmt.as_ref().and_then(|n| n.node.as_ref()) {
            Some(NodeEnum::CreateStmt(_))
            | Some(NodeEnum::IndexStmt(_))
            | Some(NodeEnum::CreateSeqStmt(_))
            | Some(NodeEnum::CreateEnumStmt(_))
            | Some(NodeEnum::CompositeTypeStmt(_))
            | Some(NodeEnum::CreateDomainStmt(_))
            | Some(NodeEnum::CreateRangeStmt(_))
            | Some(NodeEnum::CreateSchemaStmt(_))
            | Some(NodeEnum::CreatePolicyStmt(_))
            | Some(NodeEnum::CreateTableAsStmt(_))
            | Some(NodeEnum::CreateExtensionStmt(_))
            | Some(NodeEnum::SelectStmt(_)) => true,
            // Data changes, but never of the catalogs themselves: those would
            // change the schema without a DDL command to record.
            Some(NodeEnum::InsertStmt(insert)) => !catalog(insert.relation.as_ref()),
            Some(NodeEnum::UpdateStmt(update)) => !catalog(update.relation.as_ref()),
            Some(NodeEnum::DeleteStmt(delete)) => !catalog(delete.relation.as_ref()),
            Some(NodeEnum::ViewStmt(view)) => !view.replace,
            Some(NodeEnum::CreateFunctionStmt(function)) => !function.replace,
            Some(NodeEnum::CreateTrigStmt(trigger)) => !trigger.replace,
            _ => false,
        },
    )
}

/// A relation of the system catalogs (or one that could resolve to one).
fn catalog(relation: Option<&pg_query::protobuf::RangeVar>) -> bool {
    relation.is_none_or(|r| {
        r.schemaname == "pg_catalog"
            || r.schemaname == "information_schema"
            || r.relname.starts_with("pg_")
    })
}

/// One paragraph per broken step (the error, or the structural diff), then
/// the warnings, for people.
pub fn describe(report: &VerifyReport) -> String {
    let mut out = String::new();
    for mismatch in &report.mismatches {
        let subject = match &mismatch.version {
            Some(version) => format!("{} {version}", mismatch.namespace),
            None => mismatch.namespace.clone(),
        };
        if let Some(error) = &mismatch.error {
            let what = match mismatch.step.as_str() {
                "up" => {
                    "its up script failed; verify stopped here, as the migrations after it build on it"
                }
                "down" => "its down script failed",
                _ => {
                    "its up script failed when applied again after its down script (the down script does not give back the schema the up script needs)"
                }
            };
            out.push_str(&format!(
                "{subject}: {what}:\n  error[{}]: ",
                mismatch.reason.as_deref().unwrap_or("MIGRATION_FAILED")
            ));
            out.push_str(&error.replace('\n', "\n    "));
            out.push('\n');
            continue;
        }
        let what = match (&mismatch.version, mismatch.step.as_str()) {
            (Some(_), "down") => format!("{subject}: its down script did not undo its up script"),
            (None, "down") => format!(
                "{subject}: rolling everything back did not return to the schema before it (`verify --quick` cannot say which migration: run `migsafe verify` without --quick to name it)"
            ),
            (Some(_), _) => format!(
                "{subject}: applying it again after its down script gave another schema than the first time"
            ),
            (None, _) => format!("{subject}: applying again gave a different schema"),
        };
        out.push_str(&what);
        out.push_str(" (`-` expected, `+` found):\n");
        for line in crate::schema::diff::render(&mismatch.changes).lines() {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    for namespace in &report.namespaces {
        for version in &namespace.down_missing {
            let name = namespace
                .migrations
                .iter()
                .find(|m| &m.version == version)
                .map_or("", |m| m.name.as_str());
            out.push_str(&format!(
                "{ns} {version} {name}: no down script (DOWN_SCRIPT_MISSING:{ns}:{version}): applied, not reversed; add one, or set `forward_only = true` on the namespace\n",
                ns = namespace.namespace
            ));
        }
        for m in namespace.migrations.iter().filter(|m| m.over_budget) {
            out.push_str(&format!(
                "{} {} {} is over the time budget: up {}{}\n",
                namespace.namespace,
                m.version,
                m.name,
                format_duration(Duration::from_millis(m.up_ms)),
                m.down_ms
                    .map(|d| format!(", down {}", format_duration(Duration::from_millis(d))))
                    .unwrap_or_default()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::creates_only;
    use crate::source::Script;

    fn script(sql: &str) -> Script {
        Script {
            path: "x.sql".into(),
            sql: sql.into(),
            checksum: String::new(),
            directives: Default::default(),
            first_line: 1,
        }
    }

    #[test]
    fn only_scripts_that_make_new_objects_skip_the_snapshots() {
        for sql in [
            "CREATE TABLE t (id int); CREATE INDEX t_id ON t (id);",
            "CREATE VIEW v AS SELECT 1; INSERT INTO t VALUES (1);",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';",
            "CREATE TYPE mood AS ENUM ('ok'); UPDATE t SET id = 2;",
        ] {
            assert!(creates_only(&script(sql)), "{sql}");
        }
        for sql in [
            "ALTER TABLE t ADD COLUMN x int;",
            "CREATE OR REPLACE VIEW v AS SELECT 1;",
            "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';",
            "GRANT SELECT ON t TO PUBLIC;",
            "COMMENT ON TABLE t IS 'x';",
            "UPDATE pg_catalog.pg_class SET relname = 'x' WHERE false;",
            "DELETE FROM pg_attribute WHERE false;",
            "DROP TABLE t;",
            "not sql at all",
        ] {
            assert!(!creates_only(&script(sql)), "{sql}");
        }
    }
}

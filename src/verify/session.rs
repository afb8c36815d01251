//! A connection to a scratch database as verify uses it: runs scripts
//! (telling a script's own failure from losing the server), reads snapshots
//! and the DDL record of the fast path, and runs the `[verify] setup` file
//! on each new scratch database before anything else.

use std::path::PathBuf;

use crate::config::{Config, Namespace};
use crate::db::history::{History, database_error};
use crate::db::{ConnectionSettings, Db};
use crate::error::{Code, Error, ReasonCode, Result};
use crate::events::{Direction, Interrupt, NoEvents};
use crate::pipeline::{Env, RunnerParts, Target};
use crate::schema::{Reader, Snapshot};
use crate::source::{Migration, MigrationSet};

use super::Mismatch;

const SETUP_HINT: &str = "the setup file runs on every scratch database verify creates, on a fresh connection before the migrations' own: create roles and other cluster-wide objects only if missing (DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app') THEN CREATE ROLE app; END IF; END $$), and name the database with current_database() (DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET search_path = app, public', current_database()); END $$); nothing ran on any real database";

/// The `[verify] setup` file (SPEC 8), read once.
pub(super) struct Setup {
    path: PathBuf,
    sql: String,
}

impl Setup {
    pub(super) fn read(config: &Config) -> Result<Option<Setup>> {
        let Some(path) = &config.verify.setup else {
            return Ok(None);
        };
        let sql = std::fs::read_to_string(path).map_err(|e| Error::Config {
            reason: ReasonCode::new(Code::VerifySetupFailed),
            message: format!("cannot read the verify setup file {}: {e}", path.display()),
            hint: Some(
                "`[verify] setup` is relative to the config file's directory; nothing ran".into(),
            ),
            source: None,
        })?;
        Ok(Some(Setup {
            path: path.clone(),
            sql,
        }))
    }

    /// Runs the file on a scratch database, on a connection of its own that
    /// is closed before the migrations' connections open: `ALTER DATABASE …
    /// SET` takes effect for them.
    pub(super) async fn run(&self, settings: &ConnectionSettings) -> Result<()> {
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
                source: None,
            }
        })
    }
}

/// A script's own failure on the scratch database: the step's verdict.
/// (Losing the server or Ctrl-C end the run instead.)
pub(super) struct Failed {
    reason: ReasonCode,
    message: String,
}

impl Failed {
    pub(super) fn blame(
        self,
        namespace: &Namespace,
        migration: &Migration,
        step: &str,
    ) -> Mismatch {
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
         source: None, }
    }
}

/// A script's time, or its own failure.
pub(super) type Ran = std::result::Result<u64, Failed>;

pub(super) struct Session<'a> {
    pub(super) config: &'a Config,
    pub(super) settings: ConnectionSettings,
    pub(super) db: Db,
    pub(super) reader: Reader,
    pub(super) history: History,
    pub(super) parts: RunnerParts,
    pub(super) interrupt: &'a Interrupt,
    /// The DDL tracker of [`TRACKER`], when it could be installed (it needs
    /// a superuser).
    tracker: Option<Tracker>,
    /// The schemas Flyway projects have created before their first
    /// migration ([`flyway_schemas`]): there from the start, so that no
    /// migration's down script is expected to drop them.
    pub(super) flyway_schemas: Vec<String>,
}

/// The schemas Flyway creates before it migrates (`createSchemas`), of
/// every Flyway project among `namespaces`.
pub(super) fn flyway_schemas(namespaces: &[(Namespace, MigrationSet)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (_, set) in namespaces {
        for migration in &set.migrations {
            let directives = &migration.up.directives;
            if directives.flyway_create_schemas {
                for schema in &directives.flyway_schemas {
                    if !out.contains(schema) {
                        out.push(schema.clone());
                    }
                }
            }
        }
    }
    out
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

/// The tracker's queries, prepared once: a step reads the record up to
/// three times.
struct Tracker {
    read: tokio_postgres::Statement,
    read_newest: tokio_postgres::Statement,
}

/// What DDL did since the last [`Session::mark`] or [`Session::record`].
pub(super) struct Record {
    /// The record survived (no `RESET ALL` emptied it).
    pub(super) complete: bool,
    /// OIDs of the objects created, altered or dropped.
    pub(super) oids: Vec<i64>,
    /// Each command and the identity of its object, in order.
    pub(super) commands: String,
    /// The newest OID now.
    pub(super) newest: i64,
}

impl Record {
    /// Every object touched is newer than `mark`: nothing that existed at the
    /// mark was changed or dropped.
    pub(super) fn only_newer_than(&self, mark: i64) -> bool {
        self.complete && self.oids.iter().all(|oid| *oid > mark)
    }
}

impl<'a> Session<'a> {
    /// Connects to a scratch database and prepares to run scripts and read
    /// snapshots there (`split`: snapshots on two connections).
    pub(super) async fn open(
        config: &'a Config,
        settings: ConnectionSettings,
        interrupt: &'a Interrupt,
        split: bool,
        flyway_schemas: Vec<String>,
    ) -> Result<Session<'a>> {
        let db = settings.connect().await?;
        let history = History::new(&config.history_schema);
        // A fresh scratch database: nobody else creates the tables concurrently.
        history.ensure(&db).await?;
        for schema in &flyway_schemas {
            db.client
                .batch_execute(&crate::db::create_schema_if_missing_sql(schema))
                .await
                .map_err(|e| {
                    crate::db::history::database_error(
                        &db,
                        &format!("create the Flyway schema {schema} on the scratch database"),
                        &e,
                    )
                })?;
        }
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
            tracker: None,
            flyway_schemas,
        })
    }

    /// Installs the DDL tracker; without the rights for event triggers,
    /// every step takes its snapshots.
    pub(super) async fn track(&mut self) {
        let installed = async {
            self.db.client.batch_execute(TRACKER).await?;
            let read = "coalesce(current_setting('migsafe.touched', true), ''), coalesce(current_setting('migsafe.commands', true), ''), \
                        set_config('migsafe.touched', '#', false), set_config('migsafe.commands', '#', false)";
            Ok::<_, tokio_postgres::Error>(Tracker {
                read: self.db.client.prepare(&format!("SELECT {read}")).await?,
                read_newest: self
                    .db
                    .client
                    .prepare(&format!("SELECT {read}, {NEWEST_OID}"))
                    .await?,
            })
        };
        match installed.await {
            Ok(tracker) => self.tracker = Some(tracker),
            Err(err) => tracing::debug!("verify without the DDL tracker: {err}"),
        }
    }

    /// The DDL tracker is installed.
    pub(super) fn tracking(&self) -> bool {
        self.tracker.is_some()
    }

    /// Starts a new DDL record; returns the newest OID now.
    pub(super) async fn mark(&self) -> Result<i64> {
        Ok(self.record(true).await?.newest)
    }

    /// Reads the DDL record since the last mark or record and starts a new
    /// one; with `newest`, also the newest OID now (else 0).
    pub(super) async fn record(&self, newest: bool) -> Result<Record> {
        let Some(tracker) = &self.tracker else {
            return Ok(Record {
                complete: false,
                oids: Vec::new(),
                commands: String::new(),
                newest: 0,
            });
        };
        let statement = if newest {
            &tracker.read_newest
        } else {
            &tracker.read
        };
        let row = self
            .db
            .client
            .query_one(statement, &[])
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
            newest: if newest { row.get(4) } else { 0 },
        })
    }

    pub(super) async fn snapshot(&self) -> Result<Snapshot> {
        self.reader
            .read(&self.db, &self.config.history_schema)
            .await
    }

    /// Runs one script. The script's own failure (its SQL failed: the
    /// message has the migration, the statement and the server's message
    /// with its position) is the inner error; anything else (Ctrl-C, the
    /// server gone) ends the run.
    pub(super) async fn run(
        &self,
        namespace: &Namespace,
        sources: &MigrationSet,
        migration: &Migration,
        direction: Direction,
    ) -> Result<Ran> {
        // Liquibase preconditions, checked before an up as apply checks
        // them: a changeset they mark as ran is not run, and then not
        // rolled back either (no row: its guard found what it makes already
        // there); one they halt fails.
        if migration.up.directives.liquibase_preconditions.is_some() && direction == Direction::Down
        {
            let rows = self.history.read(&self.db, &namespace.name).await?;
            if !rows.iter().any(|r| r.version == migration.version) {
                return Ok(Ok(0));
            }
        }
        if let (Some(preconditions), Direction::Up) =
            (&migration.up.directives.liquibase_preconditions, direction)
        {
            use crate::source::layouts::liquibase::OnFail;
            let failing = crate::pipeline::preconditions::failing(&self.db, preconditions).await;
            match failing.last() {
                Some(f) if f.action == OnFail::MarkRan => return Ok(Ok(0)),
                Some(f) if f.action == OnFail::Halt => {
                    let what = match (&f.got, &f.error) {
                        (Some(got), _) => {
                            format!("returned `{got}`, expected `{}`", f.check.expected)
                        }
                        (_, Some(error)) => format!("could not be checked: {error}"),
                        _ => String::new(),
                    };
                    return Ok(Err(Failed {
                        reason: ReasonCode::migration(
                            Code::PreconditionFailed,
                            &namespace.name,
                            &migration.version,
                        ),
                        message: format!(
                            "{} {} would not run on a fresh database: its Liquibase precondition at {}:{} (`{}`) {what} (HALT)",
                            migration.version,
                            migration.name,
                            migration.up.path.display(),
                            f.check.line,
                            crate::db::scrub(&f.check.sql)
                        ),
                    }));
                }
                _ => {}
            }
        }
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
    pub(super) async fn forward(
        &self,
        earlier: &[(Namespace, MigrationSet)],
        namespace: &Namespace,
        sources: &MigrationSet,
        migrations: &[Migration],
    ) -> Result<()> {
        let doing = "while rebuilding the schema on another scratch database";
        for (earlier_namespace, earlier_sources) in earlier {
            if !earlier_sources.repeatables.is_empty() {
                crate::db::repeatables::Repeatables::of(&self.history)
                    .ensure(&self.db)
                    .await?;
            }
            for migration in earlier_sources
                .migrations
                .iter()
                .chain(&earlier_sources.repeatables)
            {
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

pub(super) fn env<'a>(config: &'a Config, interrupt: &'a Interrupt) -> Env<'a> {
    Env {
        config,
        events: &NoEvents,
        interrupt,
        log_dir: None,
    }
}

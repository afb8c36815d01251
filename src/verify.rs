//! `migsafe verify` (SPEC 8): prove on a scratch database that every
//! migration reverses cleanly — up, down, up — comparing canonical schema
//! snapshots, before the migrations reach production.
//!
//! The scratch database is created on `--scratch-url`'s server under a unique
//! name and always dropped (also on failure and Ctrl-C), or lives in a
//! sandbox that removes itself. The production URL is never used.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;

use crate::config::{Config, Namespace, format_duration};
use crate::db::history::History;
use crate::db::{ConnectionSettings, Db, quote_ident};
use crate::error::{Error, Result};
use crate::events::{Direction, Interrupt, NoEvents};
use crate::pipeline::{Env, RunnerParts, Target, lock_namespace, unlock_namespace};
use crate::schema::{Change, Reader, Snapshot, diff};
use crate::source::{Migration, MigrationSet};

/// How to verify. The default checks every migration on its own: up → down →
/// same as before → up again.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Only the full cycle (all up, all down, all up). Weaker: a down script
    /// that forgets something a later down script removes anyway (a column of
    /// a table dropped further down) passes, and a difference is blamed on
    /// the namespace, not on a migration.
    pub quick: bool,
    /// Over-budget migrations fail the run instead of warning.
    pub strict: bool,
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

/// A schema that was not what it should have been.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    /// Namespace.
    pub namespace: String,
    /// The migration whose down (or re-up) left a difference; for the full
    /// cycle, the namespace's whole set.
    pub version: Option<String>,
    /// Which comparison: `down` (must equal the schema before the up), `up-again`
    /// (must equal the schema after the first up).
    pub step: String,
    /// What differs: `before` is the expected side.
    pub changes: Vec<Change>,
}

/// One namespace's verification.
#[derive(Debug, Clone, Serialize)]
pub struct NamespaceResult {
    /// Namespace.
    pub namespace: String,
    /// Forward-only: only the up half was run.
    pub forward_only: bool,
    /// Per migration.
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
    /// Every difference found.
    pub mismatches: Vec<Mismatch>,
    /// `pass`, `warn` (over budget) or `fail`.
    pub result: crate::report::Status,
}

/// Runs verify for the given namespaces on a fresh scratch database.
pub async fn verify(
    config: &Config,
    namespaces: &[(Namespace, MigrationSet)],
    scratch_url: Option<&str>,
    options: &VerifyOptions,
    interrupt: &Interrupt,
) -> Result<VerifyReport> {
    let scratch = crate::scratch::Scratch::create(scratch_url, "verify").await?;
    let result = run(
        config,
        namespaces,
        &scratch.settings,
        &scratch.shown,
        options,
        interrupt,
    )
    .await;
    scratch.remove().await;
    result
}

struct Session<'a> {
    config: &'a Config,
    settings: &'a ConnectionSettings,
    db: Db,
    reader: Reader,
    history: History,
    parts: RunnerParts,
    interrupt: &'a Interrupt,
    /// The DDL tracker of [`TRACKER`] is installed (it needs a superuser).
    tracking: bool,
}

/// Records, on the session that runs the scripts, the OID of every object
/// a DDL command creates, alters or drops (event triggers), in the session
/// setting `migsafe.touched`. Lives in `pg_temp`: never part of a snapshot.
const TRACKER: &str = r#"
CREATE FUNCTION pg_temp.migsafe_verify_touched() RETURNS event_trigger LANGUAGE plpgsql AS $fn$
DECLARE seen text := coalesce(current_setting('migsafe.touched', true), '');
BEGIN
  IF TG_EVENT = 'sql_drop' THEN
    SELECT seen || coalesce(string_agg(' ' || objid::text, ''), '') INTO seen FROM pg_event_trigger_dropped_objects();
  ELSE
    SELECT seen || coalesce(string_agg(' ' || coalesce(objid, 0)::text, ''), '') INTO seen FROM pg_event_trigger_ddl_commands();
  END IF;
  PERFORM set_config('migsafe.touched', seen, false);
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

impl<'a> Session<'a> {
    /// Connects to a scratch database and prepares to run scripts and read
    /// snapshots there (`split`: snapshots on two connections).
    async fn open(
        config: &'a Config,
        settings: &'a ConnectionSettings,
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
        let env = Env {
            config,
            events: &NoEvents,
            interrupt,
            log_dir: std::path::Path::new("logs"),
        };
        let parts = RunnerParts::load(&env, &db, &history).await?;
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
    /// every step takes its two snapshots.
    async fn track(&mut self) {
        match self.db.client.batch_execute(TRACKER).await {
            Ok(()) => self.tracking = true,
            Err(err) => tracing::debug!("verify without the DDL tracker: {err}"),
        }
    }

    /// The newest OID now, with the tracker's record cleared.
    async fn mark(&self) -> Result<i64> {
        let row = self
            .db
            .client
            .query_one(
                &format!("SELECT set_config('migsafe.touched', '', false), {NEWEST_OID}"),
                &[],
            )
            .await
            .map_err(|e| crate::db::history::database_error(&self.db, "mark the schema", &e))?;
        Ok(row.get(1))
    }

    /// True when, since `mark`, DDL touched only objects newer than the mark
    /// and none of them is left: the schema is then exactly what it was at
    /// the mark, without reading it. False means: compare snapshots.
    async fn restored(&self, mark: i64) -> Result<bool> {
        let row = self
            .db
            .client
            .query_one(
                &format!(
                    "SELECT coalesce(current_setting('migsafe.touched', true), ''), set_config('migsafe.touched', '', false), {NEWEST_OID}"
                ),
                &[],
            )
            .await
            .map_err(|e| crate::db::history::database_error(&self.db, "read the DDL record", &e))?;
        let touched: String = row.get(0);
        let newest: i64 = row.get(2);
        let only_new = touched
            .split_whitespace()
            .all(|oid| oid.parse::<i64>().is_ok_and(|oid| oid > mark));
        Ok(only_new && newest <= mark)
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        self.reader
            .read(&self.db, &self.config.history_schema)
            .await
    }

    /// Runs one script; a failure is a verify failure (exit 2) naming the
    /// migration, the statement and the server's message with its position.
    async fn run(
        &self,
        namespace: &Namespace,
        sources: &MigrationSet,
        migration: &Migration,
        direction: Direction,
    ) -> Result<u64> {
        let env = Env {
            config: self.config,
            events: &NoEvents,
            interrupt: self.interrupt,
            log_dir: std::path::Path::new("logs"),
        };
        let target = Target {
            namespace,
            sources,
            settings: self.settings,
        };
        let runner = self.parts.runner(&env, &target, &self.db, &self.history);
        match runner
            .run(migration, direction, migration.version.as_str())
            .await
        {
            Ok(duration) => Ok(crate::events::millis(duration)),
            Err(err) => Err(Error::Migration {
                reason: err.reason().clone(),
                message: format!(
                    "verify: the {} script of {} {} failed on the scratch database:\n{err}",
                    if direction == Direction::Up {
                        "up"
                    } else {
                        "down"
                    },
                    migration.version,
                    migration.name
                ),
                hint: Some("fix the script; verify never touches the production database".into()),
            }),
        }
    }
}

async fn run(
    config: &Config,
    namespaces: &[(Namespace, MigrationSet)],
    scratch: &ConnectionSettings,
    shown: &str,
    options: &VerifyOptions,
    interrupt: &Interrupt,
) -> Result<VerifyReport> {
    let started_at = Utc::now();
    let started = Instant::now();
    let mut session = Session::open(config, scratch, interrupt, true).await?;
    if !options.quick {
        session.track().await;
    }
    let budget = config.defaults.migration_time_budget;
    let mut results = Vec::new();
    let mut mismatches = Vec::new();
    for (index, (namespace, sources)) in namespaces.iter().enumerate() {
        let env = Env {
            config,
            events: &NoEvents,
            interrupt,
            log_dir: std::path::Path::new("logs"),
        };
        let target = Target {
            namespace,
            sources,
            settings: scratch,
        };
        let key = lock_namespace(&env, &target, &session.db, &session.history).await?;
        let outcome = if !options.quick {
            stepwise(
                &session,
                &namespaces[..index],
                namespace,
                sources,
                budget,
                &mut mismatches,
            )
            .await
        } else {
            full_cycle(&session, namespace, sources, budget, &mut mismatches).await
        };
        unlock_namespace(&session.db, key).await;
        results.push(outcome?);
    }
    let over_budget = results
        .iter()
        .flat_map(|r| &r.migrations)
        .any(|m| m.over_budget);
    let result = if !mismatches.is_empty() || (options.strict && over_budget) {
        crate::report::Status::Fail
    } else if over_budget {
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

fn compare(
    expected: &Snapshot,
    actual: &Snapshot,
    namespace: &str,
    version: Option<&Migration>,
    step: &str,
    into: &mut Vec<Mismatch>,
) {
    let changes = diff(expected, actual);
    if !changes.is_empty() {
        into.push(Mismatch {
            namespace: namespace.to_string(),
            version: version.map(|m| m.version.to_string()),
            step: step.to_string(),
            changes,
        });
    }
}

/// before → up all → A → down all → must equal before → up all → must equal A.
async fn full_cycle(
    session: &Session<'_>,
    namespace: &Namespace,
    sources: &MigrationSet,
    budget: Duration,
    mismatches: &mut Vec<Mismatch>,
) -> Result<NamespaceResult> {
    let before = session.snapshot().await?;
    let mut ups = Vec::new();
    for migration in &sources.migrations {
        ups.push(
            session
                .run(namespace, sources, migration, Direction::Up)
                .await?,
        );
    }
    let mut results: Vec<MigrationResult> = sources
        .migrations
        .iter()
        .zip(&ups)
        .map(|(m, up)| result_for(m, *up, None, budget))
        .collect();
    if namespace.forward_only {
        return Ok(NamespaceResult {
            namespace: namespace.name.clone(),
            forward_only: true,
            migrations: results,
        });
    }
    let after = session.snapshot().await?;
    for (index, migration) in sources.migrations.iter().enumerate().rev() {
        let down = session
            .run(namespace, sources, migration, Direction::Down)
            .await?;
        results[index] = result_for(migration, ups[index], Some(down), budget);
    }
    let found = mismatches.len();
    compare(
        &before,
        &session.snapshot().await?,
        &namespace.name,
        None,
        "down",
        mismatches,
    );
    if mismatches.len() > found {
        // Applying again on top of what the down scripts left would fail on
        // the same fault; it is reported, verify without --quick finds the migration.
        return Ok(NamespaceResult {
            namespace: namespace.name.clone(),
            forward_only: false,
            migrations: results,
        });
    }
    for migration in &sources.migrations {
        session
            .run(namespace, sources, migration, Direction::Up)
            .await?;
    }
    compare(
        &after,
        &session.snapshot().await?,
        &namespace.name,
        None,
        "up-again",
        mismatches,
    );
    Ok(NamespaceResult {
        namespace: namespace.name.clone(),
        forward_only: false,
        migrations: results,
    })
}

/// For each migration: up → down → must equal before → up again.
///
/// A step whose up script only creates new objects (the common case) is
/// checked without reading the schema: the DDL tracker shows that up and
/// down touched only objects newer than the step's start and none is left,
/// which makes the schema exactly what it was. Any other step — or one where
/// the tracker saw more — compares full snapshots; the "before" snapshot of a
/// step that was expected to be simple is rebuilt on a second scratch
/// database from the migrations before it.
async fn stepwise(
    session: &Session<'_>,
    earlier: &[(Namespace, MigrationSet)],
    namespace: &Namespace,
    sources: &MigrationSet,
    budget: Duration,
    mismatches: &mut Vec<Mismatch>,
) -> Result<NamespaceResult> {
    let mut results = Vec::new();
    // The snapshot of the current schema, when one was taken and still holds.
    let mut known: Option<Snapshot> = None;
    for (index, migration) in sources.migrations.iter().enumerate() {
        if namespace.forward_only {
            let up = session
                .run(namespace, sources, migration, Direction::Up)
                .await?;
            results.push(result_for(migration, up, None, budget));
            continue;
        }
        // After a mismatch the replayed schema would not hold what the
        // faulty down scripts left: take snapshots from then on.
        let tracked = session.tracking && mismatches.is_empty() && creates_only(&migration.up);
        let before = if tracked {
            None
        } else {
            match known.take() {
                Some(snapshot) => Some(snapshot),
                None => Some(session.snapshot().await?),
            }
        };
        let mark = if tracked {
            Some(session.mark().await?)
        } else {
            None
        };
        let up = session
            .run(namespace, sources, migration, Direction::Up)
            .await?;
        let down = session
            .run(namespace, sources, migration, Direction::Down)
            .await?;
        let found = mismatches.len();
        let restored = match mark {
            Some(mark) => session.restored(mark).await?,
            None => false,
        };
        if !restored {
            let before = match before {
                Some(snapshot) => snapshot,
                None => replay(session, earlier, namespace, sources, index).await?,
            };
            compare(
                &before,
                &session.snapshot().await?,
                &namespace.name,
                Some(migration),
                "down",
                mismatches,
            );
        }
        let incomplete_down = mismatches.len() > found;
        results.push(result_for(migration, up, Some(down), budget));
        match session
            .run(namespace, sources, migration, Direction::Up)
            .await
        {
            Ok(_) => {}
            // What the down script left behind usually makes the up script
            // fail again: the same fault, already reported. Go on from the
            // schema as it is, so the next migrations are still checked.
            Err(_) if incomplete_down => {}
            Err(err) => return Err(err),
        }
    }
    Ok(NamespaceResult {
        namespace: namespace.name.clone(),
        forward_only: namespace.forward_only,
        migrations: results,
    })
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

/// The schema as it was before `sources.migrations[upto]`: built on a second
/// scratch database (same server, always dropped) from every earlier
/// namespace and the migrations before it, then read.
async fn replay(
    session: &Session<'_>,
    earlier: &[(Namespace, MigrationSet)],
    namespace: &Namespace,
    sources: &MigrationSet,
    upto: usize,
) -> Result<Snapshot> {
    let name = format!(
        "{}_replay_{}",
        session.settings.dbname().unwrap_or("migsafe_verify"),
        fastrand::u32(..)
    );
    session
        .db
        .client
        .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
        .await
        .map_err(|e| {
            crate::db::history::database_error(&session.db, "create the replay database", &e)
        })?;
    let settings = session.settings.with_dbname(&name);
    let result = async {
        let replay = Session::open(session.config, &settings, session.interrupt, false).await?;
        for (earlier_namespace, earlier_sources) in earlier {
            for migration in &earlier_sources.migrations {
                replay
                    .run(earlier_namespace, earlier_sources, migration, Direction::Up)
                    .await?;
            }
        }
        for migration in &sources.migrations[..upto] {
            replay
                .run(namespace, sources, migration, Direction::Up)
                .await?;
        }
        replay.snapshot().await
    }
    .await;
    let drop = format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_ident(&name)
    );
    if let Err(err) = session.db.client.batch_execute(&drop).await {
        tracing::warn!("could not drop the replay database {name}: {err}");
    }
    result
}

/// One line per mismatch and its structural diff, for people.
pub fn describe(report: &VerifyReport) -> String {
    let mut out = String::new();
    for mismatch in &report.mismatches {
        let what = match (&mismatch.version, mismatch.step.as_str()) {
            (Some(v), "down") => format!(
                "{} {v}: its down script did not undo its up script",
                mismatch.namespace
            ),
            (None, "down") => format!(
                "{}: rolling everything back did not return to the schema before it (`verify --quick` cannot say which migration: run `migsafe verify` without --quick to name it)",
                mismatch.namespace
            ),
            (_, _) => format!(
                "{}: applying again gave a different schema",
                mismatch.namespace
            ),
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

//! SPEC 8's procedure, step by step or as the full cycle, over every
//! namespace: the verdicts, the schemas rebuilt after a broken step, and the
//! replays that stand in for a snapshot the fast path did not take.

use std::time::{Duration, Instant};

use chrono::Utc;

use crate::config::{Config, Namespace};
use crate::db::history::database_error;
use crate::db::{ConnectionSettings, Db, quote_ident};
use crate::error::Result;
use crate::events::{Direction, Event, EventSink, Interrupt};
use crate::pipeline::{Target, lock_namespace, unlock_namespace};
use crate::schema::{Change, Snapshot, diff};
use crate::source::{Migration, MigrationSet};

use super::creates_only::creates_only;
use super::session::{Session, Setup, env};
use super::{MigrationResult, Mismatch, NamespaceResult, VerifyOptions, VerifyReport};

/// One step's outcome.
enum Verdict {
    /// Every check held.
    Passed,
    /// A check failed; the schema is no longer what a forward run would have.
    Broken(Mismatch),
    /// The first up failed: nothing after it can be checked.
    Stopped(Mismatch),
}

/// What is known of the schema as it is now, between two steps.
#[derive(Default)]
struct Now {
    /// Its snapshot.
    snapshot: Option<Snapshot>,
    /// The DDL record was just restarted, and this was the newest OID: the
    /// next step's mark, without asking again.
    mark: Option<i64>,
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
    /// Where the progress events go.
    events: &'a dyn EventSink,
    /// Migrations to verify, and how many are done (stepwise: counted
    /// when the next one starts).
    total: u64,
    done: u64,
}

// The run's inputs, each borrowed from its own owner; a struct for them
// would only be built to be taken apart into `Run`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
    config: &Config,
    namespaces: &[(Namespace, MigrationSet)],
    scratch: &ConnectionSettings,
    shown: &str,
    setup: Option<&Setup>,
    options: &VerifyOptions,
    interrupt: &Interrupt,
    events: &dyn EventSink,
) -> Result<VerifyReport> {
    let started_at = Utc::now();
    let started = Instant::now();
    if let Some(setup) = setup {
        setup.run(scratch).await?;
    }
    let admin = scratch.connect().await?;
    let mut session = Session::open(
        config,
        scratch.clone(),
        interrupt,
        true,
        super::session::flyway_schemas(namespaces),
    )
    .await?;
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
        events,
        total: namespaces
            .iter()
            .map(|(_, set)| (set.migrations.len() + set.repeatables.len()) as u64)
            .sum(),
        done: 0,
    };
    let mut mismatches = Vec::new();
    let outcome = run.namespaces(namespaces, &mut mismatches).await;
    if outcome.is_ok() {
        run.done = run.total;
        run.progress();
    }
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
            if self.options.quick {
                self.done += sources.migrations.len() as u64;
                self.progress();
            }
            let (mut result, mut stopped) = outcome?;
            if !stopped && !sources.repeatables.is_empty() {
                stopped = self
                    .repeatables(namespace, sources, &mut result, mismatches)
                    .await?;
            }
            results.push(result);
            if stopped {
                // Later namespaces may build on this one: nothing to check them on.
                break;
            }
        }
        Ok(results)
    }

    /// Flyway repeatables, after the namespace's versioned migrations: each
    /// runs, then runs again, and the second run must leave the schema as
    /// the first did — `apply` reruns it whenever the file changes, so a
    /// repeatable that cannot run twice (`CREATE VIEW` without `OR
    /// REPLACE`) fails at the next edit, in production. True when verify
    /// must stop (a first run failed: later namespaces may need it).
    async fn repeatables(
        &mut self,
        namespace: &Namespace,
        sources: &MigrationSet,
        result: &mut NamespaceResult,
        mismatches: &mut Vec<Mismatch>,
    ) -> Result<bool> {
        crate::db::repeatables::Repeatables::of(&self.session.history)
            .ensure(&self.session.db)
            .await?;
        for migration in &sources.repeatables {
            self.progress();
            self.done += 1;
            let session = &self.session;
            let up = match session
                .run(namespace, sources, migration, Direction::Up)
                .await?
            {
                Ok(up) => up,
                Err(failed) => {
                    mismatches.push(failed.blame(namespace, migration, "up"));
                    return Ok(true);
                }
            };
            result
                .migrations
                .push(result_for(migration, up, None, self.budget));
            self.rerun(namespace, sources, migration, mismatches)
                .await?;
        }
        Ok(false)
    }

    /// Runs `migration`'s up script again over itself, as `apply` does when
    /// its file changes (a repeatable, a Liquibase `runOnChange`
    /// changeset): it must run, and leave the schema as it was. A
    /// `CREATE VIEW` without `OR REPLACE` fails here, not at the next edit
    /// in production.
    async fn rerun(
        &mut self,
        namespace: &Namespace,
        sources: &MigrationSet,
        migration: &Migration,
        mismatches: &mut Vec<Mismatch>,
    ) -> Result<()> {
        let session = &self.session;
        let after = session.snapshot().await?;
        let again = Migration {
            rerun_of: Some(migration.up.checksum.clone()),
            ..migration.clone()
        };
        if let Err(failed) = session
            .run(namespace, sources, &again, Direction::Up)
            .await?
        {
            mismatches.push(failed.blame(namespace, migration, "rerun"));
            self.stale = true;
            return Ok(());
        }
        let changes = diff(&after, &session.snapshot().await?);
        if !changes.is_empty() {
            mismatches.push(Mismatch {
                namespace: namespace.name.clone(),
                version: Some(migration.version.to_string()),
                step: "rerun".to_string(),
                changes,
                reason: None,
                error: None,
            });
            self.stale = true;
        }
        Ok(())
    }

    /// How many migrations are verified so far.
    fn progress(&self) {
        self.events.emit(&Event::Progress {
            task: "verify".into(),
            done: self.done.min(self.total),
            total: Some(self.total),
            unit: "migrations".into(),
        });
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
        let mut now = Now::default();
        for (index, migration) in sources.migrations.iter().enumerate() {
            // The ones before this are done.
            self.progress();
            self.done += 1;
            if self.stale {
                self.rebuild(earlier, namespace, sources, index).await?;
                now = Now::default();
            }
            if forward_only || migration.down.is_none() {
                now = Now::default();
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
                if migration.up.directives.run_on_change {
                    self.rerun(namespace, sources, migration, mismatches)
                        .await?;
                }
                if !forward_only {
                    result.down_missing.push(migration.version.to_string());
                }
                continue;
            }
            let (times, verdict) = self
                .step(earlier, namespace, sources, index, &mut now)
                .await?;
            if let Some((up, down)) = times {
                result
                    .migrations
                    .push(result_for(migration, up, down, self.budget));
            }
            match verdict {
                Verdict::Passed if migration.up.directives.run_on_change => {
                    now = Now::default();
                    self.rerun(namespace, sources, migration, mismatches)
                        .await?;
                }
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
        now: &mut Now,
    ) -> Result<(Option<(u64, Option<u64>)>, Verdict)> {
        let migration = &sources.migrations[index];
        let session = &self.session;
        let fast = session.tracking() && !self.options.exact && creates_only(&migration.up);
        let (mut before, hint) = (now.snapshot.take(), now.mark.take());
        if !fast && before.is_none() {
            before = Some(session.snapshot().await?);
        }
        let mark = match (fast, hint) {
            (false, _) => None,
            (true, Some(mark)) => Some(mark),
            (true, None) => Some(session.mark().await?),
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
            Some(_) => Some(session.record(false).await?),
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
        // Reading the record restarts it: its newest OID marks the second up.
        let (restored, again_mark) = match mark {
            Some(mark) if proving => {
                let record = session.record(true).await?;
                (
                    record.only_newer_than(mark) && record.newest <= mark,
                    record.newest,
                )
            }
            _ => (false, 0),
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
        if let Err(failed) = session
            .run(namespace, sources, migration, Direction::Up)
            .await?
        {
            return Ok((
                times,
                Verdict::Broken(failed.blame(namespace, migration, "up-again")),
            ));
        }
        if let (true, Some(first)) = (restored, &up_record) {
            let again = session.record(true).await?;
            if again.only_newer_than(again_mark) && again.commands == first.commands {
                // The record restarted here: the next step's mark.
                now.mark = Some(again.newest);
                return Ok((times, Verdict::Passed));
            }
        }
        let after_up = match after_up {
            Some(snapshot) => snapshot,
            None => self.replay(earlier, namespace, sources, index).await?.1,
        };
        let after = session.snapshot().await?;
        let changes = diff(&after_up, &after);
        if !changes.is_empty() {
            return Ok((times, broken("up-again", changes)));
        }
        now.snapshot = Some(after);
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
            let replay = Session::open(
                self.config,
                settings,
                self.interrupt,
                false,
                self.session.flyway_schemas.clone(),
            )
            .await?;
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
            let mut session = Session::open(
                self.config,
                settings,
                self.interrupt,
                true,
                self.session.flyway_schemas.clone(),
            )
            .await?;
            if self.session.tracking() {
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

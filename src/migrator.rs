//! [`Migrator`]: the public entry point. It resolves `--target`, loads every
//! selected namespace's files and database URL before touching any database
//! (so a bad file or URL stops the run before anything changes), then runs
//! the pipeline phases namespace by namespace in config order.

use std::sync::Arc;

use serde::Serialize;

use crate::config::{Config, Namespace};
use crate::db::ConnectionSettings;
use crate::db::history::{History, HistoryRow};
use crate::error::{Code, Error, ReasonCode, Result};
use crate::events::{EventSink, Interrupt, NoEvents};
use crate::pipeline::apply::{ApplyOptions, NamespaceRun};
use crate::pipeline::backup::BackupFile;
use crate::pipeline::guarded::{ApplyReport, Opened};
use crate::pipeline::repair::{RepairAction, Repaired};
use crate::pipeline::rollback::RollbackOptions;
use crate::pipeline::{Env, Target};
use crate::plan::NamespaceState;
use crate::report::PhaseReport;
use crate::source::{self, MigrationSet, Version};

// The cutover commands are `impl Migrator` blocks in `cutover/run.rs`.
#[cfg(feature = "cutover-sqlite")]
pub use crate::cutover::run::{CutoverReport, CutoverRunOptions, describe_problems};

/// Runs migsafe's commands against the configured namespaces.
pub struct Migrator {
    pub(crate) config: Config,
    database_url: Option<String>,
    /// Settings given in code (a service's own Config, TLS or password
    /// source); used for every namespace instead of a URL.
    connection: Option<ConnectionSettings>,
    pub(crate) events: Arc<dyn EventSink>,
    pub(crate) interrupt: Interrupt,
    pub(crate) log_dir: Option<std::path::PathBuf>,
    /// Whether `apply` takes a pg_dump backup first (the CLI: yes, unless
    /// `--skip-backup`; the library: when asked with `with_backups`).
    backups: bool,
    /// Namespaces whose migrations are compiled in (no directory is read).
    embedded: Vec<(String, MigrationSet)>,
}

/// A namespace with its files and its database.
pub(crate) struct Loaded {
    /// The namespace.
    pub namespace: Namespace,
    /// Its files.
    pub sources: MigrationSet,
    /// Its database, when a URL was found.
    pub settings: ConnectionSettings,
}

impl Loaded {
    fn waited(&self) -> crate::readiness::Waited<'_> {
        crate::readiness::Waited {
            namespace: &self.namespace,
            sources: &self.sources,
            settings: &self.settings,
        }
    }

    pub(crate) fn target(&self) -> Target<'_> {
        Target {
            namespace: &self.namespace,
            sources: &self.sources,
            settings: &self.settings,
        }
    }
}

/// What `lint` found.
#[derive(Debug, Clone, Serialize)]
pub struct LintReport {
    /// Scripts linted.
    pub files: usize,
    /// The database whose live sizes were used, if any.
    pub database: Option<String>,
    /// Findings, in plan order.
    pub findings: Vec<crate::lint::Finding>,
    /// Directories given that hold no migration: nothing in them was
    /// linted (a wrong path must not pass as a clean one).
    pub empty_dirs: Vec<String>,
}

/// What `plan` shows for one namespace.
#[derive(Debug, Clone, Serialize)]
pub struct NamespacePlan {
    /// Namespace.
    pub namespace: String,
    /// Dirty versions apply would first roll back with their down script
    /// and then apply again (`recovery = "auto"`).
    pub recover: Vec<String>,
    /// Migrations `apply` would run, in order.
    pub migrations: Vec<PlannedMigration>,
    /// Lint findings for those migrations, with live table sizes.
    pub findings: Vec<crate::lint::Finding>,
    /// Why `apply` would refuse, if it would.
    pub refused: Option<Refusal>,
}

/// One planned migration.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedMigration {
    /// Version.
    pub version: String,
    /// Name.
    pub name: String,
    /// File.
    pub path: String,
    /// `transaction` or `no-transaction`.
    pub mode: &'static str,
    /// Why, when no directive said so (`CREATE INDEX CONCURRENTLY`, `its own
    /// BEGIN/COMMIT blocks`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inferred: Option<&'static str>,
    /// Effective lock_timeout in ms.
    pub lock_timeout_ms: u64,
    /// Effective statement_timeout in ms (0 = none).
    pub statement_timeout_ms: u64,
    /// Whether a down script exists.
    pub reversible: bool,
    /// It ran before and runs again in place because it changed (a
    /// Liquibase `runOnChange` changeset).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reruns: bool,
    /// Its Liquibase preconditions, checked by apply just before it runs
    /// (`onFail:MARK_RAN onError:HALT, 1 check`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preconditions: Option<String>,
    /// With `--online` (SPEC 15): the steps it runs as, when it has an online form.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub online: Option<Vec<crate::online::PlannedStep>>,
}

/// A refusal as data.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    /// Reason code.
    pub reason: String,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub hint: Option<String>,
}

/// A preflight of one database, not yet written.
struct Preflighted {
    /// The namespaces on that database.
    namespaces: Vec<String>,
    /// The report.
    report: PhaseReport,
    /// What recovering their dirty migrations would destroy.
    recovery: Vec<crate::pipeline::recovery::Assessment>,
}

impl Preflighted {
    /// The refusal apply would give for `namespace` after this preflight:
    /// a failed preflight (without --force), or recovery destroying rows
    /// (without --recover, --force or not).
    fn refusal(&self, namespace: &str, options: &ApplyOptions) -> Option<Refusal> {
        if !self.namespaces.iter().any(|n| n == namespace) {
            return None;
        }
        if !options.tolerance.recover
            && let Some(err) = self
                .recovery
                .iter()
                .filter(|a| a.namespace == namespace)
                .find_map(|a| a.refusal())
        {
            return Some(Refusal::from(&err));
        }
        (self.report.result == crate::report::Status::Fail && !options.force)
            .then(|| Refusal::from(&crate::pipeline::preflight::failed(&self.report)))
    }
}

impl From<&Error> for Refusal {
    fn from(err: &Error) -> Self {
        Refusal {
            reason: err.reason().to_string(),
            message: err.to_string(),
            hint: err.hint().map(str::to_string),
        }
    }
}

impl Migrator {
    /// A migrator for `config`, with no database URL, no event sink, and its
    /// own interrupt.
    pub fn new(config: Config) -> Self {
        // Namespace names are in reason codes and JSON: never masked.
        for namespace in &config.namespaces {
            crate::db::register_public_word(&namespace.name);
        }
        crate::db::register_public_word(&config.history_schema);
        Migrator {
            config,
            database_url: None,
            connection: None,
            events: Arc::new(NoEvents),
            interrupt: Interrupt::new(),
            log_dir: None,
            backups: false,
            embedded: Vec::new(),
        }
    }

    /// A migrator for one namespace whose migrations are compiled in, with
    /// the default settings (`Config::builder().namespace(…)` for others):
    /// no `migsafe.toml`, no migrations directory, no report files and no
    /// backups unless asked for.
    pub fn for_embedded(embedded: &crate::source::embed::Embedded) -> Result<Self> {
        let config = Config::builder().namespace(embedded.namespace).build()?;
        Migrator::new(config).with_embedded(embedded)
    }

    /// Uses migrations compiled into the binary for their namespace instead
    /// of its directory (see [`crate::source::embed`]). Same lock, history and
    /// checksums as the CLI reading the same files. Fails (exit 5) when the
    /// namespace is not configured, or a checksum differs from build time.
    pub fn with_embedded(mut self, embedded: &crate::source::embed::Embedded) -> Result<Self> {
        if !self
            .config
            .namespaces
            .iter()
            .any(|n| n.name == embedded.namespace)
        {
            return Err(Error::Config {
                reason: ReasonCode::about(Code::NamespaceUnknown, embedded.namespace),
                message: format!(
                    "the embedded migrations belong to namespace `{}`, which the configuration does not have",
                    embedded.namespace
                ),
                hint: Some(format!(
                    "add [namespaces.{}] to migsafe.toml, or build the configuration with Config::parse",
                    embedded.namespace
                )),
                source: None,
            });
        }
        let set = embedded.load()?;
        self.embedded.retain(|(name, _)| name != embedded.namespace);
        self.embedded.push((embedded.namespace.to_string(), set));
        Ok(self)
    }

    /// A namespace's migrations: compiled in, or read from its directory.
    fn read_sources(
        embedded: &[(String, MigrationSet)],
        namespace: &Namespace,
    ) -> Result<MigrationSet> {
        match embedded.iter().find(|(name, _)| *name == namespace.name) {
            Some((_, set)) => Ok(set.clone()),
            None => source::load_as(&namespace.name, &namespace.dir, namespace.layout),
        }
    }

    /// The URL from `--database-url` / `DATABASE_URL`.
    pub fn with_database_url(mut self, url: Option<String>) -> Self {
        self.database_url = url;
        self
    }

    /// Connects with these settings instead of a URL: a service's own
    /// `tokio_postgres::Config` ([`ConnectionSettings::from_config`]), with
    /// its TLS ([`ConnectionSettings::with_tls`]) and a password asked for
    /// before every connection ([`ConnectionSettings::with_password_source`]).
    pub fn with_connection(mut self, settings: ConnectionSettings) -> Self {
        self.connection = Some(settings);
        self
    }

    /// Where events go.
    pub fn with_events(mut self, events: Arc<dyn EventSink>) -> Self {
        self.events = events;
        self
    }

    /// Writes preflight, postflight, verify and cutover reports into `dir`
    /// (the CLI: `logs`). Without it the library writes no file: reports
    /// are returned as values and events go to the sink.
    pub fn with_log_dir(mut self, dir: std::path::PathBuf) -> Self {
        self.log_dir = Some(dir);
        self
    }

    /// Takes a verified pg_dump backup before `apply` and `rollback` change
    /// anything, into `[backup] dir` (the CLI always does, unless
    /// `--skip-backup`). Without it the library needs no `pg_dump` and no
    /// writable directory, and refuses what is only safe with a backup (a
    /// recovery that would destroy rows written after an interruption).
    pub fn with_backups(mut self, backups: bool) -> Self {
        self.backups = backups;
        self
    }

    /// `options` with the backup skipped unless backups were asked for.
    fn backup_rule(&self, options: &ApplyOptions) -> ApplyOptions {
        let mut options = options.clone();
        options.skip_backup |= !self.backups;
        options
    }

    /// The interrupt to honour (Ctrl-C).
    pub fn with_interrupt(mut self, interrupt: Interrupt) -> Self {
        self.interrupt = interrupt;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn env(&self) -> Env<'_> {
        Env {
            config: &self.config,
            events: self.events.as_ref(),
            interrupt: &self.interrupt,
            log_dir: self.log_dir.as_deref(),
        }
    }

    /// Loads the files of the selected namespaces (no database needed).
    pub fn sources(&self, target: Option<&str>) -> Result<Vec<(Namespace, MigrationSet)>> {
        self.config
            .select(target)?
            .into_iter()
            .map(|ns| {
                let mut set = Self::read_sources(&self.embedded, ns)?;
                self.prepare_sources(ns, &mut set)?;
                Ok((ns.clone(), set))
            })
            .collect()
    }

    /// What the files leave to their tool's configuration: Flyway
    /// placeholders ([`Self::replace_placeholders`]) and which Liquibase
    /// changesets are for this database (contexts, labels).
    fn prepare_sources(&self, namespace: &Namespace, set: &mut MigrationSet) -> Result<()> {
        self.replace_placeholders(namespace, set)?;
        crate::source::layouts::liquibase_filter::select(
            &namespace.name,
            &namespace.liquibase.with_environment(),
            set,
        )
    }

    /// Flyway scripts as Flyway runs them: their `${name}` placeholders
    /// replaced ([`flyway_placeholders`]); the environment's
    /// `FLYWAY_PLACEHOLDERS_*` over the configured values.
    fn replace_placeholders(&self, namespace: &Namespace, set: &mut MigrationSet) -> Result<()> {
        use crate::source::layouts::flyway_placeholders::{self, Builtins, FlywayConf};
        if !set
            .migrations
            .iter()
            .chain(&set.repeatables)
            .any(|m| m.layout == crate::source::layout::Layout::Flyway)
        {
            return Ok(());
        }
        let flyway = FlywayConf::find(&namespace.dir).map_err(|e| Error::Config {
            reason: ReasonCode::new(Code::ConfigInvalid),
            message: e,
            hint: Some(
                "fix that setting of the Flyway configuration (migsafe reads its placeholder settings); nothing ran"
                    .into(),
            ),
            source: None,
        })?;
        let mut values = crate::source::layouts::flyway_placeholders::Placeholders::default();
        for (name, value) in &flyway.placeholders {
            values.set(name, value);
        }
        for (name, value) in namespace.placeholders.iter() {
            values.set(name, value);
        }
        // `vars()` would panic on a variable that is not UTF-8; those are
        // not Flyway's anyway.
        values.add_environment(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        );
        // A password given to a migration stays out of every output.
        for secret in values.secrets() {
            crate::db::register_secret_in_sql(secret);
        }
        let settings = self.settings_of(namespace).ok();
        let builtins = Builtins {
            default_schema: namespace
                .schemas
                .as_ref()
                .and_then(|s| s.first().cloned())
                .or_else(|| flyway.default_schema.clone()),
            user: settings
                .as_ref()
                .and_then(|s| s.config().get_user().map(str::to_string)),
            database: settings
                .as_ref()
                .and_then(|s| s.dbname().map(str::to_string)),
            table: flyway
                .table
                .clone()
                .unwrap_or_else(|| "flyway_schema_history".into()),
            working_directory: std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            timestamp: chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string(),
        };
        flyway_placeholders::apply(set, &values, &builtins, flyway.literal);
        for migration in set.migrations.iter_mut().chain(set.repeatables.iter_mut()) {
            if migration.layout != crate::source::layout::Layout::Flyway {
                continue;
            }
            for script in std::iter::once(&mut migration.up).chain(migration.down.as_mut()) {
                script.directives.flyway_schemas = flyway.schemas.clone();
                script.directives.flyway_create_schemas = flyway.create_schemas;
            }
        }
        Ok(())
    }

    /// The database settings of a namespace (URL resolution of SPEC 3);
    /// a Ctrl-C ends their connection attempts at once.
    fn settings_of(&self, namespace: &Namespace) -> Result<ConnectionSettings> {
        if let Some(settings) = &self.connection {
            return Ok(settings.clone().with_interrupt(&self.interrupt));
        }
        Ok(ConnectionSettings::parse(
            &self
                .config
                .database_url(namespace, self.database_url.as_deref())?,
        )?
        .with_interrupt(&self.interrupt))
    }

    /// Loads files and database settings of the selected namespaces.
    pub(crate) fn load(&self, target: Option<&str>) -> Result<Vec<Loaded>> {
        let mut loaded = Vec::new();
        for (namespace, sources) in self.sources(target)? {
            let settings = self.settings_of(&namespace)?;
            loaded.push(Loaded {
                namespace,
                sources,
                settings,
            });
        }
        Ok(loaded)
    }

    /// One namespace: the one named, or the only one configured.
    pub(crate) fn single(&self, target: Option<&str>, command: &str) -> Result<Vec<Loaded>> {
        if target.is_none() && self.config.namespaces.len() > 1 {
            return Err(Error::Config {
                reason: ReasonCode::new(Code::Usage),
                message: format!(
                    "`{command}` changes one namespace at a time; name it with --target (configured: {})",
                    self.config
                        .namespaces
                        .iter()
                        .map(|n| n.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                hint: None,
                source: None,
            });
        }
        if target == Some("all") {
            return Err(Error::config(
                Code::Usage,
                format!("`{command}` needs one namespace, not --target all"),
            ));
        }
        self.load(target)
    }

    /// The database of the first selected namespace (for commands about a
    /// whole database: schema, backup).
    pub fn primary_settings(&self, target: Option<&str>) -> Result<ConnectionSettings> {
        let namespaces = self.config.select(target)?;
        let Some(namespace) = namespaces.first() else {
            return Err(Error::config(Code::Usage, "no namespace is configured"));
        };
        self.settings_of(namespace)
    }

    /// The canonical schema snapshot of a database (the selected one, or `url`).
    pub async fn snapshot(
        &self,
        target: Option<&str>,
        url: Option<&str>,
    ) -> Result<crate::schema::Snapshot> {
        let settings = match url {
            Some(url) => ConnectionSettings::parse(url)?.with_interrupt(&self.interrupt),
            None => self.primary_settings(target)?,
        };
        let db = settings.connect().await?;
        crate::schema::read(&db, &self.config.history_schema).await
    }

    /// The state of every selected namespace (read-only: creates nothing),
    /// with what was read from its directory and whether another tool's
    /// history must be adopted first (the preflight's own detection).
    pub async fn status(&self, target: Option<&str>) -> Result<Vec<NamespaceStatus>> {
        let history = History::new(&self.config.history_schema);
        let mut out = Vec::new();
        for loaded in self.load(target)? {
            let db = loaded.settings.connect().await?;
            let state = loaded.target().state(&db, &history).await?;
            let pending = state.to_run().count() + state.pending_repeatables().count();
            // A warning, not the state: a table status may not read (no
            // SELECT on another tool's history) leaves it out, and says so,
            // instead of failing status. Preflight still refuses on it.
            let adopt_required = crate::adopt::required::adopt_required(
                &self.config,
                &db,
                &state,
                history.table(),
                pending,
            )
            .await
            .unwrap_or_else(|err| {
                tracing::warn!(
                    "{}: could not look for another tool's history: {err}",
                    state.namespace
                );
                None
            });
            let standby = crate::db::catalog::in_recovery(&db).await?;
            // As preflight would see it; a schema status cannot read is
            // left out with a warning, as above. Never stuck behind a
            // table someone holds: status is what people watch.
            let drift = async {
                let scope = loaded.target().scope().on(&db).await?;
                crate::pipeline::preflight::drift_of(&self.config, &db, &history, &state, &scope)
                    .await
            };
            let drift = tokio::select! {
                drift = drift => drift,
                () = self.interrupt.wait() => Err(crate::error::Error::Refused {
                    reason: crate::error::ReasonCode::new(Code::Interrupted),
                    message: "interrupted while comparing the schema; nothing was changed".into(),
                    hint: None,
                    source: None,
                }),
            }
            .unwrap_or_else(|err| {
                tracing::warn!("{}: could not compare the schema: {err}", state.namespace);
                None
            });
            out.push(NamespaceStatus {
                state,
                sources: SourceSummary::of(&loaded.sources),
                adopt_required,
                drift,
                standby,
            });
        }
        Ok(out)
    }

    /// The applied rows of every selected namespace.
    pub async fn history(&self, target: Option<&str>) -> Result<Vec<(String, Vec<HistoryRow>)>> {
        let history = History::new(&self.config.history_schema);
        let mut out = Vec::new();
        for namespace in self.config.select(target)? {
            let db = self.settings_of(namespace)?.connect().await?;
            out.push((
                namespace.name.clone(),
                history.read(&db, &namespace.name).await?,
            ));
        }
        Ok(out)
    }

    /// What `apply` would do, and whether it would refuse (no lock, no writes).
    pub async fn plan(
        &self,
        target: Option<&str>,
        options: &ApplyOptions,
    ) -> Result<Vec<NamespacePlan>> {
        let history = History::new(&self.config.history_schema);
        let defaults = &self.config.defaults;
        let mut out = Vec::new();
        // The same preflight apply runs: a plan that passes is an apply that
        // does not refuse (at this moment; sessions and locks change).
        let preflights = self.preflight_unwritten(target, options).await?;
        for loaded in self.load(target)? {
            let db = loaded.settings.connect().await?;
            let state = loaded.target().state(&db, &history).await?;
            let tolerance = options
                .tolerance
                .clone()
                .with_defaults(&self.config.defaults);
            let refused = state.check_can_move(&tolerance).err();
            let recover: Vec<String> = if tolerance.recover_dirty {
                state.recoverable().map(|e| e.version.to_string()).collect()
            } else {
                Vec::new()
            };
            // What apply runs: the recovered migrations again first (after
            // their down scripts), then the pending ones.
            let mut selected: Vec<&crate::source::Migration> = if tolerance.recover_dirty {
                state
                    .recoverable()
                    .filter_map(|e| e.migration.as_ref())
                    .collect()
            } else {
                Vec::new()
            };
            selected.extend(state.select_up(options.steps, options.to.as_ref())?);
            // --steps counts the recovered migrations too, as apply does.
            if let Some(steps) = options.steps {
                selected.truncate(steps);
            }
            let mut refused = refused.as_ref().map(Refusal::from);
            if refused.is_none()
                && let Err(err) = crate::pipeline::apply::check_scripts(
                    &loaded.namespace.name,
                    selected.iter().map(|m| (*m, crate::events::Direction::Up)),
                )
            {
                refused = Some(Refusal::from(&err));
            }
            let ms = crate::events::millis;
            let migrations = selected
                .iter()
                .map(|m| PlannedMigration {
                    version: m.version.to_string(),
                    name: m.name.clone(),
                    path: m.up.path.display().to_string(),
                    mode: crate::online::mode(options.online, &self.config, m).unwrap_or(
                        if m.up.no_transaction() {
                            "no-transaction"
                        } else {
                            "transaction"
                        },
                    ),
                    inferred: m.up.directives.inferred,
                    lock_timeout_ms: ms(m
                        .up
                        .directives
                        .lock_timeout
                        .unwrap_or(defaults.lock_timeout)),
                    statement_timeout_ms: ms(m
                        .up
                        .directives
                        .statement_timeout
                        .unwrap_or(defaults.statement_timeout)),
                    reversible: m.down.is_some(),
                    reruns: m.rerun_of.is_some(),
                    preconditions: m.up.directives.liquibase_preconditions.as_ref().map(|p| {
                        format!(
                            "onFail:{} onError:{}, {} check(s)",
                            p.on_fail.name(),
                            p.on_error.name(),
                            p.checks.len()
                        )
                    }),
                    online: crate::online::planned_steps(options.online, &self.config, m),
                })
                .collect();
            let context = crate::lint::Context {
                sizes: crate::db::catalog::table_sizes(&db).await?,
                existing: Some(crate::db::catalog::relation_names(&db).await?),
                server_version: Some(crate::db::catalog::server_version(&db).await?.1),
                large_table_bytes: self.config.lint.large_table_bytes,
                ..crate::lint::Context::default()
            };
            let scripts: Vec<crate::lint::Script> = selected
                .iter()
                .map(|m| {
                    let mut script = crate::lint::Script::of(&loaded.namespace.name, m);
                    script.online |= options.online || defaults.online;
                    script
                })
                .collect();
            if refused.is_none() {
                refused = preflights
                    .iter()
                    .find_map(|p| p.refusal(&loaded.namespace.name, options));
            }
            out.push(NamespacePlan {
                namespace: loaded.namespace.name.clone(),
                recover,
                migrations,
                findings: crate::lint::lint(&scripts, &context),
                refused,
            });
        }
        Ok(out)
    }

    /// Applies pending migrations, namespace by namespace in config order.
    ///
    /// The first connection is opened while the files are read (on another
    /// thread): on the common "nothing pending" deploy, the two take about
    /// as long as each other. Every file of every selected namespace is still
    /// checked before anything is written.
    pub async fn apply(&self, target: Option<&str>, options: &ApplyOptions) -> Result<ApplyReport> {
        let run = self.start_run(target);
        let env = run.env(self);
        let mut report = ApplyReport::default();
        let result = self.apply_run(&env, target, options, &mut report).await;
        let runs = report.namespaces.clone();
        let mut recorded = run.finish_events(&env, "apply", &runs, result.as_ref().err());
        if let Some(recorded) = recorded.as_mut() {
            recorded.preflight = report.preflight.clone();
            recorded.postflight = report.postflight.clone();
            if !report.backups.is_empty() {
                recorded.backups = report.backups.clone();
            }
            recorded.schema_changes = report.schema_changes.clone();
        }
        run.finish(self, &env, recorded).await;
        result.map(|()| report)
    }

    /// The body of [`Migrator::apply`], on the run's events.
    async fn apply_run(
        &self,
        env: &Env<'_>,
        target: Option<&str>,
        options: &ApplyOptions,
        report: &mut ApplyReport,
    ) -> Result<()> {
        let options = &self.backup_rule(options);
        let namespaces: Vec<Namespace> = self.config.select(target)?.into_iter().cloned().collect();
        let mut settings = Vec::with_capacity(namespaces.len());
        for namespace in &namespaces {
            settings.push(self.settings_of(namespace)?);
        }
        let to_read: Vec<Namespace> = namespaces.clone();
        let embedded = self.embedded.clone();
        let reading = tokio::task::spawn_blocking(move || {
            to_read
                .iter()
                .map(|namespace| Self::read_sources(&embedded, namespace))
                .collect::<Result<Vec<MigrationSet>>>()
        });
        let first = async {
            match settings.first() {
                Some(first) => Some(first.connect().await),
                None => None,
            }
        };
        let (sources, first_db) = tokio::join!(reading, first);
        let mut sources = sources.map_err(|e| {
            Error::config(Code::Io, format!("reading the migration files failed: {e}"))
        })??;
        for (namespace, set) in namespaces.iter().zip(sources.iter_mut()) {
            self.prepare_sources(namespace, set)?;
        }
        let mut first_db = first_db.transpose()?.map(Arc::new);
        let mut opened = Vec::with_capacity(namespaces.len());
        // Namespaces on the same database share one connection (one
        // session holds each one's lock; the phases run one at a time):
        // a connection less per extra namespace, for every database of a fleet.
        let mut connected: Vec<(&ConnectionSettings, Arc<crate::db::Db>)> = Vec::new();
        for ((namespace, sources), settings) in namespaces.iter().zip(&sources).zip(&settings) {
            let shared = connected.iter().find(|(s, _)| s.same_session(settings));
            let db = match (first_db.take(), shared) {
                (Some(db), _) => db,
                (None, Some((_, db))) => db.clone(),
                (None, None) => Arc::new(settings.connect().await?),
            };
            if shared.is_none() {
                connected.push((settings, db.clone()));
            }
            opened.push(Opened {
                target: Target {
                    namespace,
                    sources,
                    settings,
                },
                db,
            });
        }
        crate::pipeline::guarded::apply_into(env, &opened, options, report)
            .await
            .map_err(|e| e.during_run(false))
    }

    /// The psql script `apply` would run (read-only).
    pub async fn apply_sql(&self, target: Option<&str>, options: &ApplyOptions) -> Result<String> {
        let history = History::new(&self.config.history_schema);
        let mut out = String::new();
        for loaded in self.load(target)? {
            let db = loaded.settings.connect().await?;
            let state = loaded.target().state(&db, &history).await?;
            // The script recovers nothing: dirty rows refuse here.
            state.check_can_move(&crate::plan::Tolerance {
                refuse_newer_applied: !self.config.defaults.allow_newer_applied,
                ..options.tolerance.clone()
            })?;
            let selected = state.select_up(options.steps, options.to.as_ref())?;
            crate::pipeline::apply::check_scripts(
                &loaded.namespace.name,
                selected.iter().map(|m| (*m, crate::events::Direction::Up)),
            )?;
            // A psql script cannot decide at run time what apply decides.
            if let Some(guarded) = selected
                .iter()
                .find(|m| m.up.directives.liquibase_preconditions.is_some())
            {
                return Err(Error::Config {
                    reason: ReasonCode::migration(
                        Code::MigrationFileInvalid,
                        &loaded.namespace.name,
                        &guarded.version,
                    ),
                    message: format!(
                        "{} {} has Liquibase preconditions, which `apply` checks just before it runs; a psql script cannot decide that ahead",
                        guarded.version, guarded.name
                    ),
                    hint: Some(format!(
                        "run `migsafe apply`, or write the script up to the one before it (`apply --sql --to <version before {}>`)",
                        guarded.version
                    )),
                    source: None,
                });
            }
            out.push_str(&crate::pipeline::script::render(
                &history,
                &self.config.defaults,
                &loaded.namespace.name,
                &selected,
                options.online,
            ));
        }
        Ok(out)
    }

    /// Preflight checks of what `apply` would do (read-only); one report per
    /// database, written to the log directory.
    pub async fn preflight(
        &self,
        target: Option<&str>,
        options: &ApplyOptions,
    ) -> Result<Vec<PhaseReport>> {
        let mut reports = Vec::new();
        for mut checked in self.preflight_unwritten(target, options).await? {
            checked
                .report
                .write(self.log_dir.as_deref(), self.config.logs.keep)?;
            reports.push(checked.report);
        }
        Ok(reports)
    }

    /// The preflight apply would run, per database, without writing its
    /// report: `preflight` writes it, `plan` turns its failures into the
    /// refusal apply would give.
    async fn preflight_unwritten(
        &self,
        target: Option<&str>,
        options: &ApplyOptions,
    ) -> Result<Vec<Preflighted>> {
        let options = &self.backup_rule(options);
        let history = History::new(&self.config.history_schema);
        let tolerance = options
            .tolerance
            .clone()
            .with_defaults(&self.config.defaults);
        let mut out = Vec::new();
        let loaded = self.load(target)?;
        let mut by_database: Vec<(String, Vec<usize>)> = Vec::new();
        for (index, item) in loaded.iter().enumerate() {
            let key = item.settings.to_string();
            match by_database.iter_mut().find(|(k, _)| *k == key) {
                Some((_, group)) => group.push(index),
                None => by_database.push((key, vec![index])),
            }
        }
        for (_, group) in by_database {
            let first = &loaded[group[0]];
            let db = first.settings.connect().await?;
            let mut states = Vec::new();
            let mut assessments = Vec::new();
            for &i in &group {
                let state = loaded[i].target().state(&db, &history).await?;
                assessments.push(if tolerance.recover_dirty {
                    crate::pipeline::recovery::assess(&db, &history, &state).await?
                } else {
                    Vec::new()
                });
                states.push(state);
            }
            let mut pending = Vec::new();
            for ((state, assessed), &i) in states.iter().zip(&assessments).zip(&group) {
                pending.push(
                    crate::pipeline::preflight::Pending::new(
                        state,
                        state.select_up(options.steps, options.to.as_ref())?,
                        assessed.clone(),
                        loaded[i].target().scope().on(&db).await?,
                    )
                    .online(options.online),
                );
            }
            let backup_dir = (!options.skip_backup).then_some(self.config.backup.dir.as_path());
            let report = crate::pipeline::preflight::preflight(
                &self.config,
                &first.settings,
                &db,
                &pending,
                &tolerance,
                backup_dir,
            )
            .await?;
            out.push(Preflighted {
                namespaces: group
                    .iter()
                    .map(|&i| loaded[i].namespace.name.clone())
                    .collect(),
                report,
                recovery: assessments.into_iter().flatten().collect(),
            });
        }
        Ok(out)
    }

    /// Postflight checks of the database as it is (read-only).
    pub async fn postflight(&self, target: Option<&str>, deep: bool) -> Result<PhaseReport> {
        let settings = self.primary_settings(target)?;
        let db = settings.connect().await?;
        let (mut report, _) = crate::pipeline::postflight::postflight(
            &self.config,
            &settings,
            &db,
            &[],
            &crate::pipeline::postflight::PostflightOptions { deep },
        )
        .await?;
        report.write(self.log_dir.as_deref(), self.config.logs.keep)?;
        Ok(report)
    }

    /// Writes a verified pg_dump backup of the selected database.
    pub async fn backup(&self, target: Option<&str>) -> Result<BackupFile> {
        let settings = self.primary_settings(target)?;
        let db = settings.connect().await?;
        crate::pipeline::backup::create(
            &self.config,
            &settings,
            &db,
            self.events.as_ref(),
            &self.interrupt,
        )
        .await
    }

    /// Restores a backup into the selected database, after a safety backup
    /// of it; says how the history changed.
    pub async fn restore(
        &self,
        target: Option<&str>,
        file: &std::path::Path,
        options: &crate::pipeline::backup::RestoreOptions,
    ) -> Result<crate::pipeline::backup::Restored> {
        let settings = self.primary_settings(target)?;
        let db = settings.connect().await?;
        crate::pipeline::backup::restore_guarded(
            &self.config,
            &settings,
            &db,
            file,
            options,
            self.events.as_ref(),
            &self.interrupt,
        )
        .await
    }

    /// Verifies the selected namespaces on a scratch database (SPEC 8) and
    /// writes the report to the log directory.
    pub async fn verify(
        &self,
        target: Option<&str>,
        scratch_url: Option<&str>,
        options: &crate::verify::VerifyOptions,
    ) -> Result<crate::verify::VerifyReport> {
        let started_at = chrono::Utc::now();
        let result = async {
            let mut sources = self.sources(target)?;
            // Liquibase changesets that are not for this database (context,
            // labels): apply never runs them, so they are not verified.
            for (_, set) in &mut sources {
                set.migrations
                    .retain(|m| m.up.directives.excluded.is_none());
            }
            // What apply would refuse to send, verify does not send either.
            for (namespace, set) in &sources {
                crate::db::execute::check_placeholders_of(
                    &namespace.name,
                    set.migrations.iter().chain(&set.repeatables).flat_map(|m| {
                        std::iter::once((m, &m.up)).chain(m.down.as_ref().map(|d| (m, d)))
                    }),
                )?;
            }
            let report = crate::verify::verify_with_events(
                &self.config,
                &sources,
                scratch_url,
                options,
                &self.interrupt,
                self.events.as_ref(),
            )
            .await?;
            if let Some(dir) = &self.log_dir {
                crate::report::write_report(
                    dir,
                    "verify-report",
                    report.started_at,
                    &report,
                    self.config.logs.keep,
                )?;
            }
            Ok(report)
        }
        .await;
        let mut recorded = crate::run_report::Recorder::new().report("verify", started_at);
        match &result {
            Ok(report) => {
                recorded.result = match report.result {
                    crate::report::Status::Pass => "pass",
                    crate::report::Status::Warn => "warn",
                    crate::report::Status::Fail => "fail",
                }
                .into();
                recorded.databases = vec![report.scratch.clone()];
                recorded.verify = Some(report.clone());
            }
            Err(err) => recorded.failed(err),
        }
        // A usage or configuration error (a bad scratch URL) leaves no file.
        if result.as_ref().err().is_none_or(|e| !unreached(e)) {
            recorded.write_and_announce(
                self.log_dir.as_deref(),
                self.config.logs.keep,
                self.events.as_ref(),
            );
        }
        result
    }

    /// Lints migrations (SPEC 7). `paths` are files or namespace names; without
    /// any, the selected namespaces: their pending migrations when a database
    /// is reachable (with live table sizes), else all of them.
    pub async fn lint(&self, target: Option<&str>, paths: &[String]) -> Result<LintReport> {
        let mut context = crate::lint::Context {
            large_table_bytes: self.config.lint.large_table_bytes,
            ..crate::lint::Context::default()
        };
        let mut scripts = Vec::new();
        let mut empty_dirs = Vec::new();
        let mut database = None;
        if paths.is_empty() {
            let sources = self.sources(target)?;
            let settings = self.primary_settings(target).ok();
            let db = match &settings {
                Some(settings) => Some(settings.connect().await?),
                None => None,
            };
            let history = History::new(&self.config.history_schema);
            for (namespace, set) in &sources {
                match &db {
                    Some(db) => {
                        let state =
                            crate::pipeline::read_state(db, &history, namespace, set).await?;
                        let pending = state.to_run().filter_map(|e| e.migration.as_ref());
                        let repeatables = state
                            .pending_repeatables()
                            .filter_map(|e| e.migration.as_ref());
                        for migration in pending.chain(repeatables) {
                            scripts.push(crate::lint::Script::of(&namespace.name, migration));
                        }
                    }
                    None => scripts.extend(
                        set.migrations
                            .iter()
                            .chain(&set.repeatables)
                            .map(|m| crate::lint::Script::of(&namespace.name, m)),
                    ),
                }
            }
            if let (Some(db), Some(settings)) = (&db, &settings) {
                context.sizes = crate::db::catalog::table_sizes(db).await?;
                context.existing = Some(crate::db::catalog::relation_names(db).await?);
                context.server_version = Some(crate::db::catalog::server_version(db).await?.1);
                database = Some(settings.to_string());
            }
        } else {
            // The namespaces' Flyway files, read once for all the paths.
            let mut flyway_files: Option<Vec<FlywayFile>> = None;
            for path in paths {
                let namespace = match self.config.namespaces.iter().find(|n| &n.name == path) {
                    Some(namespace) => Some(namespace.clone()),
                    None => self.namespace_of_dir(std::path::Path::new(path)),
                };
                match namespace {
                    Some(namespace) => {
                        let mut set = Self::read_sources(&self.embedded, &namespace)?;
                        self.prepare_sources(&namespace, &mut set)?;
                        if set.migrations.is_empty() && set.repeatables.is_empty() {
                            empty_dirs.push(path.clone());
                        }
                        scripts.extend(
                            set.migrations
                                .iter()
                                .chain(&set.repeatables)
                                .map(|m| crate::lint::Script::of(&namespace.name, m)),
                        );
                    }
                    // A migration's file is linted as the migration (a Flyway
                    // one with its placeholders replaced), any other as it is.
                    None => {
                        let files = match &mut flyway_files {
                            Some(files) => files,
                            None => flyway_files.insert(self.flyway_files()?),
                        };
                        let wanted = std::path::Path::new(path).canonicalize().ok();
                        match files.iter().find(|f| Some(&f.path) == wanted.as_ref()) {
                            Some(file) => {
                                scripts.push(crate::lint::Script::of(
                                    &file.namespace,
                                    &file.migration,
                                ));
                            }
                            None => {
                                scripts
                                    .push(crate::lint::Script::file(std::path::Path::new(path))?);
                            }
                        }
                    }
                }
            }
        }
        // A file named twice (a directory and its namespace, a file and its
        // directory) is linted once, where it first came.
        let mut seen = std::collections::HashSet::new();
        scripts.retain(|s| {
            seen.insert((
                s.path.canonicalize().unwrap_or_else(|_| s.path.clone()),
                s.first_line,
            ))
        });
        let findings = crate::lint::lint(&scripts, &context);
        Ok(LintReport {
            files: scripts.len(),
            database,
            findings,
            empty_dirs,
        })
    }

    /// A directory given to `lint` read as migrations: the namespace whose
    /// directory it is, or else one of its own (layout detected, the
    /// top-level placeholders), named after the directory.
    fn namespace_of_dir(&self, dir: &std::path::Path) -> Option<Namespace> {
        let wanted = dir.canonicalize().ok().filter(|d| d.is_dir())?;
        if let Some(namespace) = self
            .config
            .namespaces
            .iter()
            .find(|n| n.dir.canonicalize().ok().as_ref() == Some(&wanted))
        {
            return Some(namespace.clone());
        }
        Some(Namespace {
            name: wanted
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| dir.display().to_string()),
            dir: dir.to_path_buf(),
            forward_only: false,
            database_url_env: None,
            schemas: None,
            layout: None,
            placeholders: self.config.placeholders.clone(),
            liquibase: self.config.liquibase.clone(),
        })
    }

    /// Every Flyway migration of the configured namespaces, by the
    /// canonical path of its up script, placeholders replaced (a namespace
    /// that cannot be read has none: its files are then linted as files).
    fn flyway_files(&self) -> Result<Vec<FlywayFile>> {
        let mut out = Vec::new();
        for namespace in &self.config.namespaces {
            let Ok(mut set) = Self::read_sources(&self.embedded, namespace) else {
                continue;
            };
            self.prepare_sources(namespace, &mut set)?;
            for migration in set.migrations.into_iter().chain(set.repeatables) {
                if migration.layout != crate::source::layout::Layout::Flyway {
                    continue;
                }
                if let Ok(path) = migration.up.path.canonicalize() {
                    out.push(FlywayFile {
                        path,
                        namespace: namespace.name.clone(),
                        migration,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Waits until the databases of the selected namespaces accept
    /// connections (and, with `migrated`, every namespace is fully applied).
    pub async fn wait(
        &self,
        target: Option<&str>,
        timeout: std::time::Duration,
        migrated: bool,
    ) -> Result<std::time::Duration> {
        // Only --migrated needs the files; a plain wait needs just the URLs.
        let loaded = if migrated {
            self.load(target)?
        } else {
            let mut loaded = Vec::new();
            for namespace in self.config.select(target)? {
                loaded.push(Loaded {
                    namespace: namespace.clone(),
                    sources: MigrationSet::default(),
                    settings: self.settings_of(namespace)?,
                });
            }
            loaded
        };
        let items: Vec<crate::readiness::Waited<'_>> = loaded.iter().map(Loaded::waited).collect();
        crate::readiness::wait(&self.env(), &items, timeout, migrated).await
    }

    /// For services at start-up: `Ok` when every selected namespace is fully
    /// applied, with nothing dirty, edited or missing; otherwise a
    /// [`Error::NotReady`] (exit 7) whose reason is the first problem's code and
    /// whose message lists every problem with its code. Reads only; the same
    /// history as the CLI.
    pub async fn require_up_to_date(&self, target: Option<&str>) -> Result<()> {
        let loaded = self.load(target)?;
        let items: Vec<crate::readiness::Waited<'_>> = loaded.iter().map(Loaded::waited).collect();
        let unmet = crate::readiness::until_interrupted(
            &self.interrupt,
            std::time::Instant::now(),
            crate::readiness::check_migrated_reachable(&self.env(), &items),
        )
        .await??;
        let Some(first) = unmet.first() else {
            return Ok(());
        };
        let reasons: Vec<ReasonCode> = unmet
            .iter()
            .map(|u| {
                u.code
                    .clone()
                    .unwrap_or_else(|| ReasonCode::new(Code::MigrationPending))
            })
            .collect();
        let reason = first
            .code
            .clone()
            .unwrap_or_else(|| ReasonCode::new(Code::MigrationPending));
        // One line of advice per kind of problem, in the order met: a
        // checksum mismatch is not cured by `migsafe apply`.
        let mut hints: Vec<&str> = Vec::new();
        for code in &reasons {
            let hint = not_ready_hint(code.code());
            if !hints.contains(&hint) {
                hints.push(hint);
            }
        }
        Err(Error::NotReady {
            reason,
            message: unmet
                .iter()
                .map(|u| format!("{}: {}", u.reason, u.message))
                .collect::<Vec<_>>()
                .join("\n"),
            hint: Some(hints.join("; ")),
            unmet: reasons,
            source: None,
        })
    }

    /// Evaluates a readiness profile (SPEC 9); returns every unmet rule.
    /// `check_migrations` adds the migration rule even when the profile
    /// does not ask for it.
    pub async fn check(
        &self,
        target: Option<&str>,
        profile: &str,
        check_migrations: bool,
    ) -> Result<Vec<crate::readiness::Unmet>> {
        let profile = crate::readiness::profile(&self.config, profile)?;
        let checks = async {
            let mut unmet = crate::readiness::check_profile(&profile).await;
            if profile.require_migrated || check_migrations {
                match self.load(target) {
                    Ok(loaded) => {
                        let items: Vec<crate::readiness::Waited<'_>> =
                            loaded.iter().map(Loaded::waited).collect();
                        unmet.extend(crate::readiness::check_migrated(&self.env(), &items).await);
                    }
                    Err(err) => unmet.push(crate::readiness::Unmet::from(&err)),
                }
            }
            unmet
        };
        // Read-only: a Ctrl-C may stop it anywhere, also between databases.
        crate::readiness::until_interrupted(&self.interrupt, std::time::Instant::now(), checks)
            .await
    }

    /// Rolls back one namespace.
    pub async fn rollback(
        &self,
        target: Option<&str>,
        options: &RollbackOptions,
    ) -> Result<Vec<NamespaceRun>> {
        let mut options = options.clone();
        options.skip_backup |= !self.backups;
        let options = &options;
        let run = self.start_run(target);
        let env = run.env(self);
        let mut runs = Vec::new();
        let mut diffs = Vec::new();
        let result = async {
            let loaded = self.single(target, "rollback")?;
            for item in &loaded {
                let mut diff = None;
                let done = crate::pipeline::rollback::rollback_into(
                    &env,
                    &item.target(),
                    options,
                    &mut diff,
                )
                .await;
                diffs.extend(diff);
                runs.push(done.map_err(|e| e.during_run(true))?);
            }
            Ok(())
        }
        .await;
        let mut recorded = run.finish_events(&env, "rollback", &runs, result.as_ref().err());
        if let Some(recorded) = recorded.as_mut() {
            recorded.schema_changes = diffs;
        }
        run.finish(self, &env, recorded).await;
        result.map(|()| runs)
    }

    /// What a run of `apply` or `rollback` sends its events to besides the
    /// migrator's sink: the run report's recorder and, with `[notify]`,
    /// the webhook notices.
    fn start_run(&self, target: Option<&str>) -> Run {
        let namespaces: Vec<String> = self
            .config
            .select(target)
            .map(|list| list.into_iter().map(|n| n.name.clone()).collect())
            .unwrap_or_default();
        let databases: std::collections::BTreeMap<String, String> = self
            .config
            .select(target)
            .unwrap_or_default()
            .into_iter()
            .map(|n| {
                let shown = self
                    .settings_of(n)
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                (n.name.clone(), shown)
            })
            .collect();
        let recorder = Arc::new(crate::run_report::Recorder::new());
        #[cfg_attr(not(feature = "notify"), allow(unused_mut))]
        let mut sinks: Vec<Arc<dyn EventSink>> = vec![self.events.clone(), recorder.clone()];
        #[cfg(feature = "notify")]
        let notifier = self.config.notify.webhook_url_env.as_deref().map(|name| {
            Arc::new(crate::notify::Notifier::from_env(
                name,
                databases.clone(),
                self.events.clone(),
            ))
        });
        #[cfg(feature = "notify")]
        if let Some(notifier) = &notifier {
            sinks.push(notifier.clone());
        }
        Run {
            started_at: chrono::Utc::now(),
            started: std::time::Instant::now(),
            namespaces,
            databases,
            recorder,
            events: crate::events::Fanout(sinks),
            #[cfg(feature = "notify")]
            notifier,
        }
    }

    /// Records versions up to `version` as applied in one namespace.
    pub async fn stamp(&self, target: Option<&str>, version: &Version) -> Result<Vec<String>> {
        let loaded = self.single(target, "stamp")?;
        let env = self.env();
        let mut stamped = Vec::new();
        for item in &loaded {
            stamped.extend(crate::pipeline::stamp::stamp(&env, &item.target(), version).await?);
        }
        Ok(stamped)
    }

    /// Takes over another tool's history in one namespace (SPEC 14):
    /// records what it applied, with its times, running nothing.
    pub async fn adopt(
        &self,
        target: Option<&str>,
        from: Option<crate::adopt::Tool>,
        dry_run: bool,
    ) -> Result<Vec<crate::adopt::Adoption>> {
        let loaded = self.single(target, "adopt")?;
        let env = self.env();
        let mut adopted = Vec::new();
        for item in &loaded {
            adopted.push(crate::adopt::adopt(&env, &item.target(), from, dry_run).await?);
        }
        Ok(adopted)
    }

    /// Repairs one history row of one namespace.
    pub async fn repair(
        &self,
        target: Option<&str>,
        action: &RepairAction,
        reason: &str,
    ) -> Result<Vec<Repaired>> {
        let loaded = self.single(target, "repair")?;
        let env = self.env();
        let mut repaired = Vec::new();
        for item in &loaded {
            repaired
                .push(crate::pipeline::repair::repair(&env, &item.target(), action, reason).await?);
        }
        Ok(repaired)
    }
}

/// What to do about one reason the service may not start.
fn not_ready_hint(code: Code) -> &'static str {
    match code {
        Code::MigrationPending => {
            "apply the migrations first (the release's migration job: `migsafe apply`, or the service's own apply)"
        }
        Code::PostgresMigrationChecksumMismatch => {
            "an applied migration differs from the one built into this release: build from the files that were applied (put changes in a new migration), or for a cosmetic edit `migsafe repair --target <namespace> --accept-checksum <version> --reason \"…\"`"
        }
        Code::MigrationDirty => {
            "a no-transaction migration was interrupted: `migsafe status`, then `migsafe apply` (recovers it with its down script) or `migsafe repair`"
        }
        Code::MigrationFileMissing => {
            "an applied migration is not in this release: deploy the release that has it (or, under `allow_newer_applied = false`, a newer one)"
        }
        Code::MigrationOutOfOrder => {
            "a migration of this release is older than the newest applied one: give it a newer version (rename the file), or apply it out of order on purpose (`migsafe apply --allow-out-of-order`, `Tolerance::allow_out_of_order` in code)"
        }
        Code::DatabaseUnreachable
        | Code::DatabaseAuthFailed
        | Code::DatabaseNotFound
        | Code::DatabaseTlsFailed => "check the database URL, the server and the network from here",
        _ => "run `migsafe status` to see the namespace's state",
    }
}

/// One namespace as `status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct NamespaceStatus {
    /// Files + history.
    #[serde(flatten)]
    pub state: NamespaceState,
    /// What was read from its directory.
    #[serde(flatten)]
    pub sources: SourceSummary,
    /// Another tool's history holds rows and migsafe has recorded nothing
    /// here: `apply` would refuse (`ADOPT_REQUIRED:{ns}`) until it is adopted.
    pub adopt_required: Option<crate::adopt::required::AdoptRequired>,
    /// The live schema differs from the one recorded after the last run
    /// (`SCHEMA_DRIFT:{ns}`, as preflight reports it); `None` when it does not.
    pub drift: Option<crate::report::Check>,
    /// The database is a standby in recovery: what it shows may lag the
    /// primary, and apply refuses it (`DATABASE_IS_STANDBY`).
    pub standby: bool,
}

/// What `status -v` shows of a namespace's directory: the layouts its
/// migrations were read in and every file it ignored, with why.
#[derive(Debug, Clone, Serialize)]
pub struct SourceSummary {
    /// Layout names (`goose`, `drizzle`…), each once.
    pub layouts: Vec<&'static str>,
    /// Ignored files and directories.
    pub ignored: Vec<IgnoredFile>,
}

/// One ignored file and why.
#[derive(Debug, Clone, Serialize)]
pub struct IgnoredFile {
    /// Its path.
    pub path: std::path::PathBuf,
    /// Why it is not a migration.
    pub reason: String,
}

impl SourceSummary {
    fn of(set: &MigrationSet) -> SourceSummary {
        SourceSummary {
            layouts: set.layouts().into_iter().map(|l| l.name()).collect(),
            ignored: set
                .ignored
                .iter()
                .map(|path| IgnoredFile {
                    path: path.clone(),
                    reason: set.why_ignored(path).to_string(),
                })
                .collect(),
        }
    }
}

/// A usage or configuration error (exit 5), or a database never reached:
/// such a run did nothing worth a report or a notice.
fn unreached(err: &Error) -> bool {
    // DATABASE_ERROR is the server answering (a catalog read that timed out
    // behind a lock, a permission): the run reached it, people are told.
    (err.exit_code() == 5 && err.reason().code() != Code::DatabaseError)
        || matches!(
            err.reason().code(),
            Code::DatabaseUnreachable
                | Code::DatabaseAuthFailed
                | Code::DatabaseNotFound
                | Code::DatabaseTlsFailed
        )
}

/// The sinks and facts of one `apply` or `rollback` (see
/// [`Migrator::start_run`]).
struct Run {
    started_at: chrono::DateTime<chrono::Utc>,
    started: std::time::Instant,
    /// The selected namespaces.
    namespaces: Vec<String>,
    /// Each one's database as shown (no password).
    databases: std::collections::BTreeMap<String, String>,
    recorder: Arc<crate::run_report::Recorder>,
    events: crate::events::Fanout,
    #[cfg(feature = "notify")]
    notifier: Option<Arc<crate::notify::Notifier>>,
}

impl Run {
    fn env<'a>(&'a self, migrator: &'a Migrator) -> Env<'a> {
        Env {
            config: &migrator.config,
            events: &self.events,
            interrupt: &migrator.interrupt,
            log_dir: migrator.log_dir.as_deref(),
        }
    }

    /// Sends `run_finished` for every namespace that ran something (or did
    /// not finish, on a failure) and returns the run report so far. A run
    /// refused as a usage or configuration error (exit 5: a bad file or
    /// URL) or that never reached its database, before anything happened,
    /// sends nothing and has no report: it leaves no file behind.
    fn finish_events(
        &self,
        env: &Env<'_>,
        command: &str,
        runs: &[NamespaceRun],
        failure: Option<&Error>,
    ) -> Option<crate::run_report::RunReport> {
        let duration_ms = crate::events::millis(self.started.elapsed());
        let mut report = self.recorder.report(command, self.started_at);
        if failure.is_some_and(unreached)
            && runs.is_empty()
            && report.plan.is_empty()
            && report.lock_waits.is_empty()
        {
            return None;
        }
        for run in runs.iter().filter(|r| !r.ran.is_empty()) {
            env.events.emit(&crate::events::Event::RunFinished {
                command: command.to_string(),
                namespace: run.namespace.clone(),
                versions: run.ran.iter().map(|r| r.version.clone()).collect(),
                succeeded: true,
                reason: None,
                message: None,
                duration_ms,
            });
        }
        if let Some(err) = failure {
            let reason = err.reason().to_string();
            // `CODE:namespace:…` names the namespace that failed; other
            // failures belong to every namespace that did not finish.
            let named = reason.split(':').nth(1).map(str::to_string);
            let unfinished: Vec<&String> = self
                .namespaces
                .iter()
                .filter(|n| !runs.iter().any(|r| &r.namespace == *n))
                .collect();
            let failed: Vec<&String> = match &named {
                Some(name) if self.namespaces.contains(name) => vec![name],
                _ => unfinished,
            };
            for namespace in failed {
                // What committed before the failure (a no-transaction or
                // online migration cut short is not among them).
                let landed: Vec<String> = report
                    .timeline
                    .iter()
                    .filter(|e| {
                        &e.namespace == namespace
                            && (e.outcome == "done" || e.outcome == "marked-ran")
                    })
                    .map(|e| e.version.clone())
                    .collect();
                env.events.emit(&crate::events::Event::RunFinished {
                    command: command.to_string(),
                    namespace: namespace.clone(),
                    versions: landed,
                    succeeded: false,
                    reason: Some(reason.clone()),
                    message: Some(err.to_string()),
                    duration_ms,
                });
            }
        }
        let mut databases: Vec<String> = Vec::new();
        for shown in self.databases.values() {
            if !shown.is_empty() && !databases.contains(shown) {
                databases.push(shown.clone());
            }
        }
        report.databases = databases;
        if let Some(err) = failure {
            report.failed(err);
        }
        Some(report)
    }

    /// Writes the run report and waits (bounded) for the notices.
    async fn finish(
        &self,
        migrator: &Migrator,
        env: &Env<'_>,
        report: Option<crate::run_report::RunReport>,
    ) {
        if let Some(report) = report {
            report.write_and_announce(env.log_dir, migrator.config.logs.keep, env.events);
        }
        #[cfg(feature = "notify")]
        if let Some(notifier) = &self.notifier {
            notifier.finish().await;
        }
    }
}

/// A Flyway migration found by the path of its file (`lint FILE`).
struct FlywayFile {
    path: std::path::PathBuf,
    namespace: String,
    migration: crate::source::Migration,
}

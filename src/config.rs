//! `migsafe.toml`: the model, its defaults, and database URL resolution
//! (SPEC section 3).
//!
//! Every key has a default, so a bare `migrations/` directory works without a
//! config file (one namespace named `default`). Unknown keys are errors: a typo
//! such as `lock_timout` must not silently fall back to a default in production.

use crate::source::layouts::flyway_placeholders::Placeholders;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Code, Error, ReasonCode, Result};

/// The file name looked for in the working directory.
pub const CONFIG_FILE: &str = "migsafe.toml";

/// The namespace used when the config declares none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The whole configuration, with every default filled in.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file, when one was read.
    pub path: Option<PathBuf>,
    /// Schema of the history table.
    pub history_schema: String,
    /// Defaults for every namespace.
    pub defaults: Defaults,
    /// Backup settings.
    pub backup: BackupConfig,
    /// Namespaces in config order (`--target all` runs them in this order).
    pub namespaces: Vec<Namespace>,
    /// Readiness profiles, kept as written (SPEC section 9).
    pub profiles: toml::Table,
    /// Lint settings.
    pub lint: LintConfig,
    /// Log directory settings.
    pub logs: LogsConfig,
    /// Verify settings.
    pub verify: VerifyConfig,
    /// Webhook notices (SPEC 18).
    pub notify: NotifyConfig,
    /// The top-level `[placeholders]` (every namespace starts from them):
    /// for a migrations directory that no namespace names (`lint DIR`).
    pub placeholders: Placeholders,
    /// The top-level `[liquibase]` filter (every namespace starts from it).
    pub liquibase: LiquibaseFilter,
}

/// Which Liquibase changesets are for this database, as `liquibase update
/// --contexts … --label-filter …` decides. `None`: not configured, and a
/// pending changeset with a context (or labels) is refused rather than run
/// everywhere. `Some("")`: run them all, as Liquibase does when given none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiquibaseFilter {
    /// The contexts this database runs (`prod`, `prod,eu`).
    pub contexts: Option<String>,
    /// The label expression (`v2 and !test`).
    pub label_filter: Option<String>,
}

impl LiquibaseFilter {
    /// This filter with `over`'s settings where it has them.
    fn under(&self, over: &LiquibaseFilter) -> LiquibaseFilter {
        LiquibaseFilter {
            contexts: over.contexts.clone().or_else(|| self.contexts.clone()),
            label_filter: over
                .label_filter
                .clone()
                .or_else(|| self.label_filter.clone()),
        }
    }

    /// With Liquibase's own environment variables over it
    /// (`LIQUIBASE_COMMAND_CONTEXTS`, `LIQUIBASE_COMMAND_LABEL_FILTER`, as a
    /// Liquibase deploy sets them per environment). An empty variable is
    /// unset: a deploy template's `${LB_CONTEXTS}` left empty must not turn
    /// `contexts = "prod"` into "every changeset".
    pub fn with_environment(&self) -> LiquibaseFilter {
        let set = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        self.under(&LiquibaseFilter {
            contexts: set("LIQUIBASE_COMMAND_CONTEXTS"),
            label_filter: set("LIQUIBASE_COMMAND_LABEL_FILTER"),
        })
    }
}

/// `[notify]`.
#[derive(Debug, Clone, Default)]
pub struct NotifyConfig {
    /// The environment variable holding the webhook URL (a secret, so the
    /// URL itself never sits in the config). `None`: no notices.
    pub webhook_url_env: Option<String>,
}

/// `[verify]`.
#[derive(Debug, Clone, Default)]
pub struct VerifyConfig {
    /// SQL run on every scratch database before the first migration, for
    /// histories that assume schemas, roles, extensions or database settings
    /// made outside them; resolved against the config file's directory.
    pub setup: Option<PathBuf>,
}

/// `[logs]`.
#[derive(Debug, Clone)]
pub struct LogsConfig {
    /// How many report files of each kind (preflight, postflight, verify,
    /// cutover…) to keep in the log directory; 0 keeps all. The JSONL event
    /// log is one file and is never pruned.
    pub keep: u32,
}

/// `[lint]`.
#[derive(Debug, Clone)]
pub struct LintConfig {
    /// Tables at least this big (bytes) make size-dependent findings errors.
    pub large_table_bytes: i64,
}

/// `[defaults]`.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// Set before each migration: a blocked DDL gives up fast instead of
    /// queueing every query behind it.
    pub lock_timeout: Duration,
    /// Retries after SQLSTATE 55P03 (lock_not_available).
    pub lock_retries: u32,
    /// First retry delay; doubles up to 30 s, plus jitter.
    pub lock_retry_delay: Duration,
    /// `statement_timeout` per migration; zero means none.
    pub statement_timeout: Duration,
    /// A migration slower than this is reported.
    pub migration_time_budget: Duration,
    /// Preflight threshold for open transactions.
    pub long_transaction: Duration,
    /// How long a runner waits for another runner's namespace lock (and,
    /// before each migration, for lagging standbys).
    pub lock_wait: Duration,
    /// A standby replaying later than this holds the next migration back.
    pub max_replica_lag: Duration,
    /// A standby this many bytes of WAL behind holds the next migration back.
    pub max_replica_lag_bytes: i64,
    /// Streaming standbys that must be connected (preflight fails with fewer).
    pub expect_standbys: Option<u32>,
    /// Postflight policy for NOT VALID constraints: `fail` or `warn`.
    pub not_valid: String,
    /// Dirty recovery: `auto` or `manual`.
    pub recovery: String,
    /// Applied versions newer than every migration this release has (a
    /// newer release applied them) are reported, not refused: the previous
    /// release must start again during a rolling deploy or a redeploy.
    /// `false` refuses them as `MIGRATION_FILE_MISSING` (strict).
    pub allow_newer_applied: bool,
    /// Run risky statements in their online form (SPEC 15), as `apply --online`.
    pub online: bool,
    /// Target time of one backfill batch (SPEC 16); batch sizes adapt to it.
    pub batch_time: Duration,
}

/// `[backup]`.
#[derive(Debug, Clone)]
pub struct BackupConfig {
    /// Where pg_dump files go.
    pub dir: PathBuf,
    /// How many backups to keep.
    pub keep: u32,
    /// Where `cutover sqlite run` puts its online backups of the SQLite file.
    pub sqlite_dir: PathBuf,
}

/// `[namespaces.<name>]`.
#[derive(Debug, Clone)]
pub struct Namespace {
    /// The namespace name (history rows, lock key, reason codes).
    pub name: String,
    /// Its migrations directory, resolved against the config file's directory.
    pub dir: PathBuf,
    /// Rollback refused, down files optional.
    pub forward_only: bool,
    /// Environment variable holding this namespace's database URL.
    pub database_url_env: Option<String>,
    /// The schemas drift detection and the recorded schema checksum look at;
    /// `None`: the schemas its migrations create or change.
    pub schemas: Option<Vec<String>>,
    /// `layout = "…"`: read the directory in this layout instead of detecting it.
    pub layout: Option<crate::source::layout::Layout>,
    /// Values for Flyway's `${name}` placeholders: `placeholders` at the top
    /// of migsafe.toml, then the namespace's own (over the project's
    /// flyway.toml or flyway.conf, and under `FLYWAY_PLACEHOLDERS_*` in the environment,
    /// when the migrations are read).
    pub placeholders: Placeholders,
    /// Which Liquibase changesets are for this database: `[liquibase]`,
    /// then the namespace's `liquibase_contexts` / `liquibase_label_filter`
    /// (under `LIQUIBASE_COMMAND_CONTEXTS` / `…_LABEL_FILTER` in the
    /// environment, when the migrations are read).
    pub liquibase: LiquibaseFilter,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    history_schema: Option<String>,
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    backup: RawBackup,
    #[serde(default)]
    namespaces: toml::Table,
    #[serde(default)]
    profiles: toml::Table,
    #[serde(default)]
    lint: RawLint,
    #[serde(default)]
    logs: RawLogs,
    #[serde(default)]
    verify: RawVerify,
    #[serde(default)]
    notify: RawNotify,
    #[serde(default)]
    placeholders: toml::Table,
    #[serde(default)]
    liquibase: RawLiquibase,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLiquibase {
    contexts: Option<String>,
    label_filter: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    webhook_url_env: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawVerify {
    setup: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLogs {
    keep: Option<u32>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLint {
    large_table: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    lock_timeout: Option<String>,
    lock_retries: Option<u32>,
    lock_retry_delay: Option<String>,
    statement_timeout: Option<String>,
    migration_time_budget: Option<String>,
    long_transaction: Option<String>,
    lock_wait: Option<String>,
    max_replica_lag: Option<String>,
    max_replica_lag_bytes: Option<String>,
    expect_standbys: Option<u32>,
    not_valid: Option<String>,
    recovery: Option<String>,
    allow_newer_applied: Option<bool>,
    online: Option<bool>,
    batch_time: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBackup {
    dir: Option<String>,
    keep: Option<u32>,
    sqlite_dir: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNamespace {
    dir: Option<String>,
    #[serde(default)]
    forward_only: bool,
    database_url_env: Option<String>,
    schemas: Option<Vec<String>>,
    layout: Option<String>,
    placeholders: Option<toml::Table>,
    liquibase_contexts: Option<String>,
    liquibase_label_filter: Option<String>,
}

/// `name = "value"` pairs of a `placeholders` table (numbers and booleans
/// as they are written).
fn add_placeholders(
    into: &mut Placeholders,
    table: &toml::Table,
    at: &str,
) -> std::result::Result<(), String> {
    for (name, value) in table {
        let text = match value {
            toml::Value::String(text) => text.clone(),
            toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
                value.to_string()
            }
            _ => return Err(format!("{at}.{name}: a placeholder's value is a string")),
        };
        into.set(name, &text);
    }
    Ok(())
}

/// Parses a human duration: `0`, `500ms`, `5s`, `10min`, `1h 30m`.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration ({e}); write e.g. 500ms, 5s, 10min"))
}

/// Parses a size: `10MB`, `500kB`, `2GB`, `1048576` (bytes; decimal units).
pub fn parse_size(text: &str) -> std::result::Result<i64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size; write e.g. 500kB, 10MB, 2GB"))?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        other => {
            return Err(format!(
                "unknown size unit `{other}`; use B, kB, MB, GB or TB"
            ));
        }
    };
    Ok((value * factor) as i64)
}

/// Prints a duration for humans: `850ms`, `5s`, `2m 3s`.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let secs = duration.as_secs();
    if secs < 60 {
        let tenths = (millis % 1000) / 100;
        return if tenths == 0 {
            format!("{secs}s")
        } else {
            format!("{secs}.{tenths}s")
        };
    }
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

impl Config {
    /// Loads `path`, or `migsafe.toml` in `cwd` when present, or the defaults.
    pub fn load(explicit: Option<&Path>, cwd: &Path) -> Result<Config> {
        let (path, text) = match explicit {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
                    reason: ReasonCode::new(Code::ConfigInvalid),
                    message: format!("cannot read the config file {}: {e}", path.display()),
                    hint: Some(format!(
                        "check the path given to --config (relative paths start at {}); `migsafe init` writes a commented migsafe.toml; nothing ran",
                        cwd.display()
                    )),
                 source: None, })?;
                (Some(path.to_path_buf()), text)
            }
            None => {
                let candidate = cwd.join(CONFIG_FILE);
                match std::fs::read_to_string(&candidate) {
                    Ok(text) => (Some(candidate), text),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, String::new()),
                    Err(e) => {
                        return Err(Error::config(
                            Code::ConfigInvalid,
                            format!("cannot read the config file {}: {e}", candidate.display()),
                        ));
                    }
                }
            }
        };
        let base = match &path {
            Some(p) => p
                .parent()
                .map(|d| {
                    if d.as_os_str().is_empty() {
                        cwd.to_path_buf()
                    } else {
                        cwd.join(d)
                    }
                })
                .unwrap_or_else(|| cwd.to_path_buf()),
            None => cwd.to_path_buf(),
        };
        let shown = path
            .as_ref()
            .map_or_else(|| CONFIG_FILE.to_string(), |p| p.display().to_string());
        Config::parse(&text, &base, path, &shown)
    }

    /// Parses config text; relative paths resolve against `base`.
    pub fn parse(text: &str, base: &Path, path: Option<PathBuf>, shown: &str) -> Result<Config> {
        let invalid = |message: String| Error::Config {
            reason: ReasonCode::new(Code::ConfigInvalid),
            message: format!("{shown}: {message}"),
            hint: Some("fix the file; `migsafe init` writes a commented example".into()),
            source: None,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| invalid(toml_message(&e, text)))?;
        let duration = |key: &str, value: Option<String>, default: &str| -> Result<Duration> {
            parse_duration(value.as_deref().unwrap_or(default))
                .map_err(|e| invalid(format!("defaults.{key}: {e}")))
        };
        let d = raw.defaults;
        let not_valid = d.not_valid.unwrap_or_else(|| "fail".into());
        if not_valid != "fail" && not_valid != "warn" {
            return Err(invalid(format!(
                "defaults.not_valid must be \"fail\" or \"warn\", not {not_valid:?}"
            )));
        }
        let recovery = d.recovery.unwrap_or_else(|| "auto".into());
        if recovery != "auto" && recovery != "manual" {
            return Err(invalid(format!(
                "defaults.recovery must be \"auto\" or \"manual\", not {recovery:?}"
            )));
        }
        let defaults = Defaults {
            lock_timeout: duration("lock_timeout", d.lock_timeout, "1s")?,
            lock_retries: d.lock_retries.unwrap_or(10),
            lock_retry_delay: duration("lock_retry_delay", d.lock_retry_delay, "1s")?,
            statement_timeout: duration("statement_timeout", d.statement_timeout, "0")?,
            migration_time_budget: duration(
                "migration_time_budget",
                d.migration_time_budget,
                "30s",
            )?,
            long_transaction: duration("long_transaction", d.long_transaction, "30s")?,
            lock_wait: duration("lock_wait", d.lock_wait, "5m")?,
            max_replica_lag: duration("max_replica_lag", d.max_replica_lag, "30s")?,
            max_replica_lag_bytes: parse_size(
                d.max_replica_lag_bytes.as_deref().unwrap_or("256MB"),
            )
            .map_err(|e| invalid(format!("defaults.max_replica_lag_bytes: {e}")))?,
            expect_standbys: d.expect_standbys,
            not_valid,
            recovery,
            allow_newer_applied: d.allow_newer_applied.unwrap_or(true),
            online: d.online.unwrap_or(false),
            batch_time: duration("batch_time", d.batch_time, "200ms")?,
        };
        let history_schema = raw.history_schema.unwrap_or_else(|| "migsafe".into());
        if history_schema.is_empty() {
            return Err(invalid("history_schema must not be empty".into()));
        }
        let backup = BackupConfig {
            dir: base.join(
                raw.backup
                    .dir
                    .unwrap_or_else(|| "backups/migrations".into()),
            ),
            keep: raw.backup.keep.unwrap_or(10),
            sqlite_dir: base.join(
                raw.backup
                    .sqlite_dir
                    .unwrap_or_else(|| "backups/sqlite".into()),
            ),
        };
        let mut shared = Placeholders::default();
        add_placeholders(&mut shared, &raw.placeholders, "placeholders").map_err(&invalid)?;
        let liquibase = LiquibaseFilter {
            contexts: raw.liquibase.contexts,
            label_filter: raw.liquibase.label_filter,
        };
        let mut namespaces = Vec::new();
        for (name, value) in raw.namespaces {
            if name.is_empty() || name.contains(':') || name.chars().any(char::is_whitespace) {
                return Err(invalid(format!(
                    "namespace name {name:?} must be non-empty, without spaces or `:`"
                )));
            }
            let ns: RawNamespace = value.try_into().map_err(|e: toml::de::Error| {
                invalid(format!("namespaces.{name}: {}", e.message()))
            })?;
            let layout = match ns.layout.as_deref() {
                None => None,
                Some(wanted) => Some(crate::source::layout::Layout::from_name(wanted).ok_or_else(
                    || {
                        invalid(format!(
                            "namespaces.{name}: layout {wanted:?} is not one migsafe reads ({})",
                            crate::source::layout::Layout::ALL
                                .map(crate::source::layout::Layout::name)
                                .join(", ")
                        ))
                    },
                )?),
            };
            let mut placeholders = shared.clone();
            if let Some(own) = &ns.placeholders {
                add_placeholders(
                    &mut placeholders,
                    own,
                    &format!("namespaces.{name}.placeholders"),
                )
                .map_err(&invalid)?;
            }
            namespaces.push(Namespace {
                dir: base.join(ns.dir.unwrap_or_else(|| format!("migrations/{name}"))),
                name,
                forward_only: ns.forward_only,
                database_url_env: ns.database_url_env,
                schemas: ns.schemas,
                layout,
                placeholders,
                liquibase: liquibase.under(&LiquibaseFilter {
                    contexts: ns.liquibase_contexts,
                    label_filter: ns.liquibase_label_filter,
                }),
            });
        }
        if namespaces.is_empty() {
            namespaces.push(Namespace {
                name: DEFAULT_NAMESPACE.into(),
                dir: base.join("migrations"),
                forward_only: false,
                database_url_env: None,
                schemas: None,
                layout: None,
                placeholders: shared.clone(),
                liquibase: liquibase.clone(),
            });
        }
        let lint = LintConfig {
            large_table_bytes: parse_size(raw.lint.large_table.as_deref().unwrap_or("10MB"))
                .map_err(|e| invalid(format!("lint.large_table: {e}")))?,
        };
        let logs = LogsConfig {
            keep: raw.logs.keep.unwrap_or(50),
        };
        if raw
            .verify
            .setup
            .as_deref()
            .is_some_and(|s| s.trim().is_empty())
        {
            return Err(invalid("verify.setup must name a file".into()));
        }
        let verify = VerifyConfig {
            setup: raw.verify.setup.map(|file| base.join(file)),
        };
        if raw
            .notify
            .webhook_url_env
            .as_deref()
            .is_some_and(|s| s.trim().is_empty())
        {
            return Err(invalid(
                "notify.webhook_url_env must name an environment variable".into(),
            ));
        }
        let notify = NotifyConfig {
            webhook_url_env: raw.notify.webhook_url_env,
        };
        Ok(Config {
            path,
            history_schema,
            defaults,
            backup,
            namespaces,
            profiles: raw.profiles,
            lint,
            logs,
            verify,
            notify,
            placeholders: shared,
            liquibase,
        })
    }

    /// The namespaces a `--target` selects: one by name, or all (`all` or none
    /// given) in config order.
    pub fn select(&self, target: Option<&str>) -> Result<Vec<&Namespace>> {
        match target {
            None | Some("all") => Ok(self.namespaces.iter().collect()),
            Some(name) => self
                .namespaces
                .iter()
                .find(|ns| ns.name == name)
                .map(|ns| vec![ns])
                .ok_or_else(|| Error::Config {
                    reason: ReasonCode::about(Code::NamespaceUnknown, name),
                    message: format!("there is no namespace `{name}` in the configuration"),
                    hint: Some(format!(
                        "configured namespaces: {}",
                        self.namespaces
                            .iter()
                            .map(|n| n.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                    source: None,
                }),
        }
    }

    /// The database URL for a namespace: `--database-url`, else `DATABASE_URL`
    /// (both arrive as `explicit`), else the namespace's `database_url_env`.
    pub fn database_url(&self, namespace: &Namespace, explicit: Option<&str>) -> Result<String> {
        if let Some(url) = explicit.filter(|u| !u.trim().is_empty()) {
            return Ok(url.to_string());
        }
        if let Some(var) = &namespace.database_url_env {
            match std::env::var(var) {
                Ok(url) if !url.trim().is_empty() => return Ok(url),
                _ => {
                    return Err(Error::Config {
                        reason: ReasonCode::about(Code::DatabaseUrlMissing, &namespace.name),
                        message: format!(
                            "no database URL for namespace `{}`: --database-url and DATABASE_URL are not set, and neither is {var}",
                            namespace.name
                        ),
                        hint: Some(format!(
                            "export {var}=postgres://user@host:5432/db (or DATABASE_URL)"
                        )),
                        source: None,
                    });
                }
            }
        }
        Err(Error::Config {
            reason: ReasonCode::about(Code::DatabaseUrlMissing, &namespace.name),
            message: format!(
                "no database URL for namespace `{}`: give --database-url or set DATABASE_URL",
                namespace.name
            ),
            hint: Some("for a throwaway server to try things on, run `migsafe sandbox`".into()),
            source: None,
        })
    }
}

fn toml_message(err: &toml::de::Error, text: &str) -> String {
    match err.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {}", err.message())
        }
        None => err.message().to_string(),
    }
}

/// A configuration built in code, for a service that embeds its migrations
/// and has no `migsafe.toml`: the same keys and defaults as the file, checked
/// by the same code ([`Config::parse`]).
///
/// ```
/// use std::time::Duration;
///
/// let config = migsafe::Config::builder()
///     .namespace("app")
///     .lock_timeout(Duration::from_secs(2))
///     .lock_wait(Duration::from_secs(60))
///     .build()?;
/// assert_eq!(config.namespaces[0].name, "app");
/// assert_eq!(config.defaults.lock_timeout, Duration::from_secs(2));
/// # Ok::<(), migsafe::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ConfigBuilder {
    table: toml::Table,
    base: Option<PathBuf>,
}

impl Config {
    /// Starts a configuration in code (see [`ConfigBuilder`]).
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }
}

impl ConfigBuilder {
    fn section(&mut self, name: &str) -> &mut toml::Table {
        let entry = self
            .table
            .entry(name.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        match entry {
            toml::Value::Table(table) => table,
            _ => unreachable!("just made a table"),
        }
    }

    fn default_key(mut self, key: &str, value: toml::Value) -> Self {
        self.section("defaults").insert(key.into(), value);
        self
    }

    fn millis(duration: Duration) -> toml::Value {
        toml::Value::String(format!("{}ms", duration.as_millis()))
    }

    /// Adds a namespace (its history rows, lock and reason codes use the
    /// name). Its directory is `migrations/<name>` unless [`Self::dir`]
    /// says otherwise; embedded migrations read none.
    pub fn namespace(mut self, name: &str) -> Self {
        self.section("namespaces")
            .entry(name.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        self
    }

    /// The migrations directory of namespace `name` (added if new).
    pub fn dir(mut self, name: &str, dir: impl AsRef<Path>) -> Self {
        self = self.namespace(name);
        if let Some(toml::Value::Table(ns)) = self.section("namespaces").get_mut(name) {
            ns.insert(
                "dir".into(),
                toml::Value::String(dir.as_ref().display().to_string()),
            );
        }
        self
    }

    /// What relative paths (directories, `[backup] dir`) are resolved
    /// against; default the working directory.
    pub fn base(mut self, base: impl Into<PathBuf>) -> Self {
        self.base = Some(base.into());
        self
    }

    /// The schema holding migsafe's history table (default `migsafe`).
    pub fn history_schema(mut self, schema: &str) -> Self {
        self.table
            .insert("history_schema".into(), toml::Value::String(schema.into()));
        self
    }

    /// `lock_timeout` set before each migration (default 1 s).
    pub fn lock_timeout(self, duration: Duration) -> Self {
        self.default_key("lock_timeout", Self::millis(duration))
    }

    /// `statement_timeout` per migration (default none).
    pub fn statement_timeout(self, duration: Duration) -> Self {
        self.default_key("statement_timeout", Self::millis(duration))
    }

    /// How long to wait for another runner's namespace lock (default 5 min).
    pub fn lock_wait(self, duration: Duration) -> Self {
        self.default_key("lock_wait", Self::millis(duration))
    }

    /// Preflight's threshold for long transactions (default 30 s).
    pub fn long_transaction(self, duration: Duration) -> Self {
        self.default_key("long_transaction", Self::millis(duration))
    }

    /// Whether versions applied by a newer release are allowed (default
    /// true; docs/deploy.md, rolling deploys).
    pub fn allow_newer_applied(self, allow: bool) -> Self {
        self.default_key("allow_newer_applied", toml::Value::Boolean(allow))
    }

    /// `recovery = "manual"`: a dirty migration is left for `repair`
    /// instead of being rolled back with its down script and run again.
    pub fn manual_recovery(self) -> Self {
        self.default_key("recovery", toml::Value::String("manual".into()))
    }

    /// The configuration, checked as a `migsafe.toml` would be (exit 5,
    /// `CONFIG_INVALID`, on a bad namespace name or schema).
    pub fn build(self) -> Result<Config> {
        let base = match self.base {
            Some(base) => base,
            None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
        };
        let text = toml::to_string(&self.table).map_err(|e| {
            Error::config(
                Code::ConfigInvalid,
                format!("the configuration built in code cannot be written: {e}"),
            )
        })?;
        Config::parse(&text, &base, None, "the configuration built in code")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new("/project"), None, "migsafe.toml")
    }

    #[test]
    fn empty_config_is_one_default_namespace_with_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config.history_schema, "migsafe");
        assert_eq!(config.namespaces.len(), 1);
        assert_eq!(config.namespaces[0].name, "default");
        assert_eq!(config.namespaces[0].dir, Path::new("/project/migrations"));
        assert_eq!(config.defaults.lock_timeout, Duration::from_secs(1));
        assert_eq!(config.defaults.lock_retries, 10);
        assert_eq!(config.defaults.lock_wait, Duration::from_secs(300));
        assert_eq!(config.defaults.statement_timeout, Duration::ZERO);
        assert_eq!(config.backup.keep, 10);
        assert_eq!(config.logs.keep, 50);
        assert_eq!(config.verify.setup, None);
    }

    #[test]
    fn the_verify_setup_file_is_relative_to_the_config_file() {
        let config = parse("[verify]\nsetup = \"db/setup.sql\"\n").unwrap();
        assert_eq!(
            config.verify.setup.as_deref(),
            Some(Path::new("/project/db/setup.sql"))
        );
        assert!(parse("[verify]\nsetup = \"\"\n").is_err());
        assert!(parse("[verify]\nsetpu = \"x.sql\"\n").is_err());
    }

    #[test]
    fn namespaces_keep_config_order_and_resolve_relative_dirs() {
        let config = parse(
            "[namespaces.zeta]\ndir = \"db/z\"\n[namespaces.alpha]\nforward_only = true\ndatabase_url_env = \"ALPHA_DSN\"\n",
        )
        .unwrap();
        let names: Vec<_> = config.namespaces.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["zeta", "alpha"]);
        assert_eq!(config.namespaces[0].dir, Path::new("/project/db/z"));
        assert_eq!(
            config.namespaces[1].dir,
            Path::new("/project/migrations/alpha")
        );
        assert!(config.namespaces[1].forward_only);
        assert!(config.select(Some("nope")).is_err());
        assert_eq!(config.select(Some("alpha")).unwrap().len(), 1);
    }

    #[test]
    fn typos_and_bad_values_are_errors_with_a_line() {
        let err = parse("[defaults]\nlock_timout = \"1s\"\n").unwrap_err();
        assert_eq!(err.reason().to_string(), "CONFIG_INVALID");
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(parse("[defaults]\nlock_timeout = \"soon\"\n").is_err());
        assert!(parse("[defaults]\nnot_valid = \"maybe\"\n").is_err());
        assert!(parse("[namespaces.\"a b\"]\n").is_err());
        assert!(parse("[namespaces.a]\nforward_only = \"yes\"\n").is_err());
        assert!(parse("history_schema = [").is_err());
    }

    #[test]
    fn durations_parse_and_print_for_humans() {
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("10min").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("").is_err());
        assert_eq!(format_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(format_duration(Duration::from_millis(5200)), "5.2s");
        assert_eq!(format_duration(Duration::from_secs(123)), "2m 3s");
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert!(parse_size("10 parsecs").is_err());
    }
}

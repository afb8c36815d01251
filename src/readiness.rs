//! Start-up ordering and the readiness contract (SPEC 9): `migsafe wait`
//! blocks until the database accepts connections — and, with `--migrated`,
//! until every namespace is fully applied, clean and unedited — so container
//! replicas start only once migrations have completed.

use std::time::{Duration, Instant};

use crate::config::{Config, Namespace, format_duration};
use crate::db::ConnectionSettings;
use crate::db::history::History;
use crate::error::{Code, Error, ReasonCode, Result};
use crate::events::{Event, Interrupt};
use crate::pipeline::Env;
use crate::plan::Tolerance;
use crate::source::MigrationSet;

/// How often `wait` looks again.
const POLL: Duration = Duration::from_millis(500);

/// One namespace to wait for.
pub struct Waited<'a> {
    /// The namespace.
    pub namespace: &'a Namespace,
    /// Its files (for `--migrated`).
    pub sources: &'a MigrationSet,
    /// Its database.
    pub settings: &'a ConnectionSettings,
}

/// `Err(why)` while a namespace is not ready; once it is, the note on
/// versions applied by a newer release, if any.
async fn not_ready(
    item: &Waited<'_>,
    config: &Config,
    migrated: bool,
) -> std::result::Result<Option<Event>, String> {
    let db = item.settings.connect().await.map_err(|e| e.to_string())?;
    if !migrated {
        return Ok(None);
    }
    let history = History::new(&config.history_schema);
    let state = crate::pipeline::read_state(&db, &history, item.namespace, item.sources)
        .await
        .map_err(|e| e.to_string())?;
    // Not `with_defaults`: a dirty migration is not ready, recoverable or not.
    let tolerance = Tolerance {
        refuse_newer_applied: !config.defaults.allow_newer_applied,
        ..Tolerance::default()
    };
    if let Err(err) = state.check_can_move(&tolerance) {
        return Err(format!("{}: {err}", err.reason()));
    }
    let pending = state.to_run().count() + state.pending_repeatables().count();
    if pending > 0 {
        return Err(format!(
            "namespace `{}` has {pending} pending migration(s)",
            item.namespace.name
        ));
    }
    Ok(state.newer_applied_note())
}

/// Waits until every database accepts connections (and, with `migrated`,
/// every namespace is fully applied), at most `timeout`. Returns how long it
/// took.
///
/// The timeout is kept to the second: each look is cut off when the time is
/// up, whatever it is waiting for (a connection setup bounded only by the
/// longer `connect_timeout`, a server that accepted the socket and never
/// answers). The first Ctrl-C or SIGTERM ends the wait at once
/// (`INTERRUPTED`, exit 130): nothing has started, so there is nothing to
/// finish.
pub async fn wait(
    env: &Env<'_>,
    items: &[Waited<'_>],
    timeout: Duration,
    migrated: bool,
) -> Result<Duration> {
    let interrupt = env.interrupt;
    let started = Instant::now();
    let deadline = started + timeout;
    // What the last finished look said: a look cut off by the deadline says
    // nothing new, unless no look ever finished.
    let mut last_why: Option<String> = None;
    loop {
        let mut waiting_for = None;
        let mut notes = Vec::new();
        for item in items {
            let left = deadline.saturating_duration_since(Instant::now());
            let look = tokio::time::timeout(left, not_ready(item, env.config, migrated));
            let why = match until_interrupted(interrupt, started, look).await? {
                Ok(Ok(note)) => {
                    notes.extend(note);
                    None
                }
                Ok(Err(why)) => Some(why),
                Err(_) if last_why.is_some() => last_why.clone(),
                Err(_) => Some(format!(
                    "{}: no answer yet (still waiting for the server when the time ran out; a connection setup alone may take up to connect_timeout, {})",
                    item.settings,
                    format_duration(item.settings.connect_limit())
                )),
            };
            if why.is_some() {
                last_why.clone_from(&why);
                waiting_for = why;
                break;
            }
        }
        let Some(why) = waiting_for else {
            for note in &notes {
                env.events.emit(note);
            }
            return Ok(started.elapsed());
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if !remaining.is_zero() {
            until_interrupted(interrupt, started, tokio::time::sleep(POLL.min(remaining))).await?;
        }
        // No new look once the time is up: it could only be cut off at once,
        // and this one says more.
        if Instant::now() >= deadline {
            return Err(Error::NotReady {
                reason: ReasonCode::new(Code::WaitTimeout),
                message: format!(
                    "not ready after {}: {why}",
                    format_duration(started.elapsed())
                ),
                hint: Some(if migrated {
                    "start the application only after `migsafe apply` has completed; raise --timeout if migrations are slow".into()
                } else {
                    "check that the database is running and reachable from here; raise --timeout for slow starts".into()
                }),
                unmet: vec![ReasonCode::new(Code::WaitTimeout)],
                source: None,
            });
        }
    }
}

/// `future`'s outcome, or `INTERRUPTED` as soon as a stop is requested
/// (for read-only work, which may stop anywhere).
pub(crate) async fn until_interrupted<T>(
    interrupt: &Interrupt,
    started: Instant,
    future: impl std::future::Future<Output = T>,
) -> Result<T> {
    tokio::select! {
        biased;
        () = interrupt.wait() => Err(interrupted(started.elapsed())),
        outcome = future => Ok(outcome),
    }
}

/// The stop request that ended a wait.
fn interrupted(waited: Duration) -> Error {
    Error::Refused {
        reason: ReasonCode::new(Code::Interrupted),
        message: format!(
            "interrupted after waiting {}: nothing was started and nothing changed",
            format_duration(waited)
        ),
        hint: Some("run it again when the database should be ready".into()),
        source: None,
    }
}

/// One rule of a profile that does not hold.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Unmet {
    /// The profile's reason code (or migsafe's, for migration rules).
    pub reason: String,
    /// What is wrong.
    pub message: String,
    /// migsafe's own reason code, when the rule is migsafe's (not a
    /// profile's free-form code).
    #[serde(skip)]
    pub code: Option<ReasonCode>,
}

impl Unmet {
    /// A rule of the profile, with the profile's own reason text.
    fn profile(reason: String, message: String) -> Unmet {
        Unmet {
            reason,
            message,
            code: None,
        }
    }

    /// One of migsafe's own rules.
    fn migsafe(code: ReasonCode, message: String) -> Unmet {
        Unmet {
            reason: code.to_string(),
            message,
            code: Some(code),
        }
    }
}

impl From<&Error> for Unmet {
    fn from(err: &Error) -> Unmet {
        Unmet::migsafe(err.reason().clone(), err.to_string())
    }
}

/// `[profiles.<name>]`, parsed.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Every namespace applied, clean and unedited.
    #[serde(default)]
    pub require_migrated: bool,
    /// Environment variables holding database URLs that must be set and reachable.
    #[serde(default)]
    pub require_database_urls: Vec<String>,
    /// Environment variables and what they must hold.
    #[serde(default)]
    pub require_env: std::collections::BTreeMap<String, EnvRule>,
}

/// A rule on one environment variable.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvRule {
    /// The exact value it must have.
    pub equals: Option<String>,
    /// It must be set (to anything non-empty).
    #[serde(default)]
    pub set: bool,
    /// The reason code printed when the rule is not met.
    pub reason: Option<String>,
}

/// Reads a profile from the config.
pub fn profile(config: &crate::config::Config, name: &str) -> Result<Profile> {
    let Some(value) = config.profiles.get(name) else {
        return Err(Error::Config {
            reason: ReasonCode::about(Code::ConfigInvalid, name),
            message: format!("there is no [profiles.{name}] in the configuration"),
            hint: Some(if config.profiles.is_empty() {
                format!(
                    "no profile is defined{}; add `[profiles.{name}]` with its rules (docs/configuration.md, readiness profiles)",
                    config
                        .path
                        .as_ref()
                        .map(|p| format!(" in {}", p.display()))
                        .unwrap_or_else(|| " (there is no migsafe.toml here)".into())
                )
            } else {
                format!(
                    "profiles defined: {}",
                    config
                        .profiles
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }),
            source: None,
        });
    };
    value.clone().try_into().map_err(|e: toml::de::Error| {
        Error::config(
            Code::ConfigInvalid,
            format!("profiles.{name}: {}", e.message()),
        )
    })
}

/// Evaluates the environment and database-URL rules of a profile; every unmet
/// rule is returned, not only the first.
pub async fn check_profile(profile: &Profile) -> Vec<Unmet> {
    let mut unmet = Vec::new();
    for (name, rule) in &profile.require_env {
        let value = std::env::var(name).ok().filter(|v| !v.is_empty());
        let reason = rule
            .reason
            .clone()
            .unwrap_or_else(|| format!("ENV_REQUIRED:{name}"));
        match (&rule.equals, value) {
            (Some(expected), Some(actual)) if &actual == expected => {}
            (Some(expected), Some(actual)) => unmet.push(Unmet::profile(
                reason,
                format!("{name} is {actual:?}, but this profile requires {expected:?}"),
            )),
            (Some(expected), None) => unmet.push(Unmet::profile(
                reason,
                format!("{name} is not set; this profile requires {expected:?}"),
            )),
            (None, None) if rule.set => unmet.push(Unmet::profile(
                reason,
                format!("{name} is not set; this profile requires it"),
            )),
            (None, _) => {}
        }
    }
    for name in &profile.require_database_urls {
        let reason = format!("DATABASE_URL_REQUIRED:{name}");
        match std::env::var(name).ok().filter(|v| !v.trim().is_empty()) {
            None => unmet.push(Unmet::profile(
                reason,
                format!("{name} is not set; this profile requires a reachable database URL in it"),
            )),
            Some(url) => {
                let reached = match ConnectionSettings::parse(&url) {
                    Ok(settings) => settings.connect().await.map(|_| ()),
                    Err(err) => Err(err),
                };
                if let Err(err) = reached {
                    unmet.push(Unmet::profile(
                        format!("{}:{name}", err.reason()),
                        format!("{name}: {err}"),
                    ));
                }
            }
        }
    }
    unmet
}

/// The migration rule: every namespace applied, clean, unedited. Every
/// problem of every namespace is listed. Versions applied by a newer
/// release are allowed and noted (an event), unless
/// `allow_newer_applied = false`.
pub async fn check_migrated(env: &Env<'_>, items: &[Waited<'_>]) -> Vec<Unmet> {
    let mut unmet = Vec::new();
    for item in items {
        match check_one(env, item).await {
            Ok(found) => unmet.extend(found),
            Err(err) => unmet.push(Unmet::from(&err)),
        }
    }
    unmet
}

/// As [`check_migrated`], but a database that cannot be reached or read is
/// that error (exit 5, its own advice), not one more unmet rule: a service
/// and its orchestrator must tell "database down" from "not migrated".
pub(crate) async fn check_migrated_reachable(
    env: &Env<'_>,
    items: &[Waited<'_>],
) -> Result<Vec<Unmet>> {
    let mut unmet = Vec::new();
    for item in items {
        unmet.extend(check_one(env, item).await?);
    }
    Ok(unmet)
}

async fn check_one(env: &Env<'_>, item: &Waited<'_>) -> Result<Vec<Unmet>> {
    let history_schema = &env.config.history_schema;
    let strict = !env.config.defaults.allow_newer_applied;
    let mut unmet = Vec::new();
    {
        let db = item.settings.connect().await?;
        let state = crate::pipeline::read_state(
            &db,
            &History::new(history_schema),
            item.namespace,
            item.sources,
        )
        .await?;
        let ns = &item.namespace.name;
        if !strict && let Some(note) = state.newer_applied_note() {
            env.events.emit(&note);
        }
        let older_release = state.newer_applied().next().is_some();
        for entry in &state.entries {
            let (code, what) = match entry.state {
                crate::plan::State::Pending => (Code::MigrationPending, "is not applied"),
                // An older release does not run it again (`to_run`).
                crate::plan::State::Changed if !older_release => (
                    Code::MigrationPending,
                    "changed since it ran and runs again (runOnChange)",
                ),
                // What apply would refuse it with, so the advice fits.
                crate::plan::State::OutOfOrder => (
                    Code::MigrationOutOfOrder,
                    "is not applied and is older than the newest applied migration",
                ),
                crate::plan::State::Dirty => (Code::MigrationDirty, "is dirty (interrupted)"),
                crate::plan::State::ChecksumMismatch => (
                    Code::PostgresMigrationChecksumMismatch,
                    "was edited after it was applied",
                ),
                crate::plan::State::FileMissing => (
                    Code::MigrationFileMissing,
                    "is applied but its file is gone",
                ),
                crate::plan::State::NewerApplied if strict => (
                    Code::MigrationFileMissing,
                    "is applied but this release has no file for it (applied by a newer release; allow_newer_applied = false)",
                ),
                crate::plan::State::Applied
                | crate::plan::State::NewerApplied
                | crate::plan::State::Changed
                | crate::plan::State::Excluded => continue,
            };
            unmet.push(Unmet::migsafe(
                ReasonCode::migration(code, ns, &entry.version),
                format!("{ns} {} {} {what}", entry.version, entry.name),
            ));
        }
        for entry in state.pending_repeatables() {
            let what = match entry.state {
                crate::plan::RepeatableState::Changed => "changed since it last ran",
                _ => "never ran",
            };
            unmet.push(Unmet::migsafe(
                ReasonCode::migration(Code::MigrationPending, ns, &entry.version),
                format!("{ns} repeatable {} {what}", entry.version),
            ));
        }
    }
    Ok(unmet)
}

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
use crate::db::{ConnectionSettings, Db};
use crate::error::{Error, Result};
use crate::events::{Direction, Interrupt, NoEvents};
use crate::pipeline::{Env, RunnerParts, Target, lock_namespace, unlock_namespace};
use crate::schema::{Change, Reader, Snapshot, diff};
use crate::source::{Migration, MigrationSet};

/// How to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Every migration on its own: up → down → same as before → up again.
    pub stepwise: bool,
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
    /// `full` or `stepwise`.
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
}

impl Session<'_> {
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
            Ok(duration) => Ok(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)),
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
    let db = scratch.connect().await?;
    let history = History::new(&config.history_schema);
    // A fresh scratch database: nobody else creates the tables concurrently.
    history.ensure(&db).await?;
    let reader = Reader::prepare_split(&db, scratch.connect().await?).await?;
    let env = Env {
        config,
        events: &NoEvents,
        interrupt,
        log_dir: std::path::Path::new("logs"),
    };
    let parts = RunnerParts::load(&env, &db, &history).await?;
    let session = Session {
        config,
        settings: scratch,
        db,
        reader,
        history,
        parts,
        interrupt,
    };
    let budget = config.defaults.migration_time_budget;
    let mut results = Vec::new();
    let mut mismatches = Vec::new();
    for (namespace, sources) in namespaces {
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
        let outcome = if options.stepwise {
            stepwise(&session, namespace, sources, budget, &mut mismatches).await
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
        mode: if options.stepwise { "stepwise" } else { "full" },
        scratch: shown.to_string(),
        started_at,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
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
        // the same fault; it is reported, run --stepwise to find the migration.
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
async fn stepwise(
    session: &Session<'_>,
    namespace: &Namespace,
    sources: &MigrationSet,
    budget: Duration,
    mismatches: &mut Vec<Mismatch>,
) -> Result<NamespaceResult> {
    let mut before = session.snapshot().await?;
    let mut results = Vec::new();
    for migration in &sources.migrations {
        let up = session
            .run(namespace, sources, migration, Direction::Up)
            .await?;
        if namespace.forward_only {
            results.push(result_for(migration, up, None, budget));
            continue;
        }
        let after = session.snapshot().await?;
        let down = session
            .run(namespace, sources, migration, Direction::Down)
            .await?;
        let found = mismatches.len();
        compare(
            &before,
            &session.snapshot().await?,
            &namespace.name,
            Some(migration),
            "down",
            mismatches,
        );
        let incomplete_down = mismatches.len() > found;
        results.push(result_for(migration, up, Some(down), budget));
        match session
            .run(namespace, sources, migration, Direction::Up)
            .await
        {
            Ok(_) => before = after,
            // What the down script left behind usually makes the up script
            // fail again: the same fault, already reported. Go on from the
            // schema as it is, so the next migrations are still checked.
            Err(_) if incomplete_down => before = session.snapshot().await?,
            Err(err) => return Err(err),
        }
    }
    Ok(NamespaceResult {
        namespace: namespace.name.clone(),
        forward_only: namespace.forward_only,
        migrations: results,
    })
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
                "{}: rolling everything back did not return to the schema before it (run `migsafe verify --stepwise` to find the migration)",
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

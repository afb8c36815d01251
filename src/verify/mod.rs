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
//!
//! `procedure.rs` holds the steps, `session.rs` the connection to a scratch
//! database (scripts, snapshots, the DDL record, the setup file), and
//! `creates_only.rs` which up scripts the DDL record can prove.

mod creates_only;
mod procedure;
mod session;

use std::time::Duration;

use chrono::Utc;
use serde::Serialize;

use crate::config::{Config, Namespace, format_duration};
use crate::error::Result;
use crate::events::Interrupt;
use crate::schema::Change;
use crate::source::MigrationSet;

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
    /// other than the first up's), `rerun` (a Flyway repeatable run a second
    /// time failed, or changed the schema).
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
    verify_with_events(
        config,
        namespaces,
        scratch_url,
        options,
        interrupt,
        &crate::events::NoEvents,
    )
    .await
}

/// [`verify`], sending its progress (`progress` events, one per migration
/// started) to `events`.
pub async fn verify_with_events(
    config: &Config,
    namespaces: &[(Namespace, MigrationSet)],
    scratch_url: Option<&str>,
    options: &VerifyOptions,
    interrupt: &Interrupt,
    events: &dyn crate::events::EventSink,
) -> Result<VerifyReport> {
    let setup = session::Setup::read(config)?;
    let scratch = crate::scratch::Scratch::create(scratch_url, "verify").await?;
    let result = procedure::run(
        config,
        namespaces,
        &scratch.settings,
        &scratch.shown,
        setup.as_ref(),
        options,
        interrupt,
        events,
    )
    .await;
    scratch.remove().await;
    result
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
                "rerun" => {
                    "it failed when run a second time over itself (a repeatable or runOnChange changeset: apply runs it again at every change of its text, so write it to be re-runnable: CREATE OR REPLACE, or DROP … IF EXISTS first)"
                }
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
            (Some(_), "rerun") => format!(
                "{subject}: the repeatable run a second time changed the schema again (apply runs it at every change of the file: it must give the same schema each time)"
            ),
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

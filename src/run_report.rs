//! The report of one `apply`, `rollback` or `verify` (SPEC 18): the plan,
//! a timeline of every migration (start, duration, retries with the
//! sessions that blocked them), lint findings, preflight and postflight
//! checks, the backup, the schema diff before → after.
//!
//! One value, [`RunReport`], made of the reports the run already returns
//! (phase reports, backups, the verify report) and of its events as they
//! happened ([`Recorder`]). It is written as `run-report-<timestamp>.json`
//! and rendered from that same value as `report-<timestamp>.html` (feature
//! `html-report`, see [`html`]): one self-contained page to attach to an
//! incident review instead of pasted logs.

#[cfg(feature = "html-report")]
pub mod html;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db::activity::Session;
use crate::events::{Direction, Event, EventSink};
use crate::pipeline::backup::BackupFile;
use crate::report::PhaseReport;
use crate::schema::Change;

/// What one run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Format version of this document.
    pub schema_version: u32,
    /// `apply`, `rollback` or `verify`.
    pub command: String,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// How long it took.
    pub duration_ms: u64,
    /// `success` or `failure` (verify: `pass`, `warn` or `fail`).
    pub result: String,
    /// The failure's reason code.
    pub reason: Option<String>,
    /// The failure's message.
    pub message: Option<String>,
    /// The databases it worked on (no password).
    pub databases: Vec<String>,
    /// What was about to run, per namespace (`plan` events).
    pub plan: Vec<PlannedRun>,
    /// Every migration that started, in order.
    pub timeline: Vec<TimelineEntry>,
    /// Waits for another runner's namespace lock.
    pub lock_waits: Vec<LockWait>,
    /// Preflight reports (their `lint` checks are the lint findings).
    pub preflight: Vec<PhaseReport>,
    /// Postflight reports.
    pub postflight: Vec<PhaseReport>,
    /// Backups written.
    pub backups: Vec<BackupFile>,
    /// The schema before → after, per database.
    pub schema_changes: Vec<SchemaDiff>,
    /// The verify report, for `verify`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<crate::verify::VerifyReport>,
}

/// The plan of one namespace.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedRun {
    /// Namespace.
    pub namespace: String,
    /// Up or down.
    pub direction: Direction,
    /// Versions in run order.
    pub versions: Vec<String>,
}

/// One migration's run.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    /// Namespace.
    pub namespace: String,
    /// Version.
    pub version: String,
    /// Name.
    pub name: String,
    /// Up or down.
    pub direction: Direction,
    /// When its (first) attempt started.
    pub started_at: DateTime<Utc>,
    /// Its wall time, retries included (`None`: it never ended).
    pub duration_ms: Option<u64>,
    /// `done`, `failed`, `running` (interrupted before an end event) or
    /// `marked-ran` (recorded without running, or that record removed by a
    /// rollback: a Liquibase precondition said `MARK_RAN`).
    pub outcome: String,
    /// The failure's reason code.
    pub reason: Option<String>,
    /// The failure's message.
    pub message: Option<String>,
    /// Lock timeouts it met and retried after.
    pub retries: Vec<Retry>,
    /// What the server said while it ran (`RAISE NOTICE`, warnings), the
    /// last 200.
    pub notices: Vec<crate::db::notices::ServerNotice>,
    /// Older notices that were not kept.
    pub notices_dropped: usize,
}

/// One lock timeout and the retry after it.
#[derive(Debug, Clone, Serialize)]
pub struct Retry {
    /// When.
    pub at: DateTime<Utc>,
    /// The attempt that failed (1-based).
    pub attempt: u32,
    /// The wait before the next attempt.
    pub delay_ms: u64,
    /// Reason code (`LOCK_TIMEOUT:…`).
    pub reason: String,
    /// The sessions that blocked it (queries redacted).
    pub blockers: Vec<Session>,
}

/// A wait for the namespace lock.
#[derive(Debug, Clone, Serialize)]
pub struct LockWait {
    /// When it started.
    pub at: DateTime<Utc>,
    /// Namespace.
    pub namespace: String,
    /// The session holding the lock, when known.
    pub holder: Option<Session>,
    /// How long the wait took, when it ended.
    pub duration_ms: Option<u64>,
}

/// The schema diff of one database.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaDiff {
    /// The database (no password).
    pub database: String,
    /// What changed, in key order.
    pub changes: Vec<Change>,
}

/// Records the events of a run, with their time, into a report's plan,
/// timeline and lock waits.
#[derive(Default)]
pub struct Recorder {
    state: Mutex<Recorded>,
}

#[derive(Default)]
struct Recorded {
    plan: Vec<PlannedRun>,
    timeline: Vec<TimelineEntry>,
    lock_waits: Vec<LockWait>,
    backups: Vec<BackupFile>,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// A report of what was recorded; the caller adds the rest.
    pub fn report(&self, command: &str, started_at: DateTime<Utc>) -> RunReport {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        RunReport {
            schema_version: 1,
            command: command.to_string(),
            started_at,
            duration_ms: u64::try_from((Utc::now() - started_at).num_milliseconds()).unwrap_or(0),
            result: "success".into(),
            reason: None,
            message: None,
            databases: Vec::new(),
            plan: state.plan.clone(),
            timeline: state.timeline.clone(),
            lock_waits: state.lock_waits.clone(),
            preflight: Vec::new(),
            postflight: Vec::new(),
            backups: state.backups.clone(),
            schema_changes: Vec::new(),
            verify: None,
        }
    }
}

impl EventSink for Recorder {
    fn emit(&self, event: &Event) {
        let now = Utc::now();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match event {
            Event::Plan {
                namespace,
                direction,
                versions,
            } => state.plan.push(PlannedRun {
                namespace: namespace.clone(),
                direction: *direction,
                versions: versions.clone(),
            }),
            // Recorded without running (MARK_RAN), or such a record
            // removed by a rollback: committed, and part of what landed.
            Event::MarkedRan {
                namespace,
                version,
                name,
            }
            | Event::MarkedRanForgotten {
                namespace,
                version,
                name,
            } => state.timeline.push(TimelineEntry {
                namespace: namespace.clone(),
                version: version.clone(),
                name: name.clone(),
                direction: if matches!(event, Event::MarkedRan { .. }) {
                    Direction::Up
                } else {
                    Direction::Down
                },
                started_at: now,
                duration_ms: Some(0),
                outcome: "marked-ran".into(),
                reason: None,
                message: Some(
                    if matches!(event, Event::MarkedRan { .. }) {
                        "recorded without running: its Liquibase precondition said MARK_RAN"
                    } else {
                        "its record (MARK_RAN) removed; no down script ran: it never ran"
                    }
                    .into(),
                ),
                retries: Vec::new(),
                notices: Vec::new(),
                notices_dropped: 0,
            }),
            Event::LockWaiting { namespace, holder } => state.lock_waits.push(LockWait {
                at: now,
                namespace: namespace.clone(),
                holder: holder.clone(),
                duration_ms: None,
            }),
            Event::LockAcquired {
                namespace,
                duration_ms,
            } => {
                if let Some(wait) = state
                    .lock_waits
                    .iter_mut()
                    .rev()
                    .find(|w| &w.namespace == namespace && w.duration_ms.is_none())
                {
                    wait.duration_ms = Some(*duration_ms);
                }
            }
            // A retry starts the script again: one entry per migration.
            Event::MigrationStarted {
                namespace,
                version,
                name,
                direction,
                ..
            } if find_open(&mut state.timeline, namespace, version).is_none() => {
                state.timeline.push(TimelineEntry {
                    namespace: namespace.clone(),
                    version: version.clone(),
                    name: name.clone(),
                    direction: *direction,
                    started_at: now,
                    duration_ms: None,
                    outcome: "running".into(),
                    reason: None,
                    message: None,
                    retries: Vec::new(),
                    notices: Vec::new(),
                    notices_dropped: 0,
                });
            }
            Event::ServerNotice {
                namespace,
                version,
                severity,
                message,
                detail,
                hint,
            } => {
                if let Some(entry) = find_open(&mut state.timeline, namespace, version) {
                    entry.notices.push(crate::db::notices::ServerNotice {
                        severity: severity.clone(),
                        message: message.clone(),
                        detail: detail.clone(),
                        hint: hint.clone(),
                    });
                }
            }
            Event::ServerNoticesDropped {
                namespace,
                version,
                count,
            } => {
                if let Some(entry) = find_open(&mut state.timeline, namespace, version) {
                    entry.notices_dropped += count;
                }
            }
            Event::MigrationRetried {
                namespace,
                version,
                attempt,
                delay_ms,
                reason,
                blockers,
            } => {
                if let Some(entry) = find_open(&mut state.timeline, namespace, version) {
                    entry.retries.push(Retry {
                        at: now,
                        attempt: *attempt,
                        delay_ms: *delay_ms,
                        reason: reason.clone(),
                        blockers: blockers.clone(),
                    });
                }
            }
            Event::MigrationFinished {
                namespace, version, ..
            } => {
                if let Some(entry) = find_open(&mut state.timeline, namespace, version) {
                    entry.outcome = "done".into();
                    entry.duration_ms = Some(since(entry.started_at, now));
                }
            }
            Event::MigrationFailed {
                namespace,
                version,
                reason,
                message,
                ..
            } => {
                if let Some(entry) = find_open(&mut state.timeline, namespace, version) {
                    entry.outcome = "failed".into();
                    entry.duration_ms = Some(since(entry.started_at, now));
                    entry.reason = Some(reason.clone());
                    entry.message = Some(message.clone());
                }
            }
            Event::BackupWritten { path, bytes, .. } => state.backups.push(BackupFile {
                path: PathBuf::from(path),
                bytes: *bytes,
                entries: None,
                database: None,
                server: None,
            }),
            _ => {}
        }
    }
}

/// A failure's message on one line for a header or a chat message: the
/// lines that say what failed, without the quoted source and its caret,
/// at most 300 characters.
pub fn summary(message: &str) -> String {
    let text = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|') && !l.starts_with("next:"))
        .collect::<Vec<_>>()
        .join(" ");
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn find_open<'a>(
    timeline: &'a mut [TimelineEntry],
    namespace: &str,
    version: &str,
) -> Option<&'a mut TimelineEntry> {
    timeline
        .iter_mut()
        .rev()
        .find(|e| e.namespace == namespace && e.version == version && e.outcome == "running")
}

fn since(start: DateTime<Utc>, end: DateTime<Utc>) -> u64 {
    u64::try_from((end - start).num_milliseconds()).unwrap_or(0)
}

impl RunReport {
    /// Marks the run failed with `err`.
    pub fn failed(&mut self, err: &crate::Error) {
        self.result = "failure".into();
        self.reason = Some(err.reason().to_string());
        self.message = Some(err.to_string());
    }

    /// Writes `<dir>/run-report-<timestamp>.json` and, with the
    /// `html-report` feature, `<dir>/report-<timestamp>.html` rendered from
    /// the same value: both 0600, secrets scrubbed, written atomically,
    /// the newest `[logs] keep` of each kind kept. Returns (json, html).
    pub fn write(&self, dir: &Path, keep: u32) -> crate::Result<(PathBuf, Option<PathBuf>)> {
        let json = crate::report::write_report(dir, "run-report", self.started_at, self, keep)?;
        #[cfg(feature = "html-report")]
        {
            let path = dir.join(format!(
                "report-{}.html",
                crate::report::file_stamp(self.started_at)
            ));
            crate::report::write_private_text(&path, &html::render(self)?)?;
            crate::report::prune_files(dir, "report", "html", keep);
            Ok((json, Some(path)))
        }
        #[cfg(not(feature = "html-report"))]
        Ok((json, None))
    }

    /// Writes the report (see [`RunReport::write`]) and tells the sink; a
    /// report that cannot be written is a warning, never the run's error.
    pub fn write_and_announce(&self, dir: Option<&Path>, keep: u32, events: &dyn EventSink) {
        let Some(dir) = dir else {
            return;
        };
        match self.write(dir, keep) {
            Ok((json, html)) => events.emit(&Event::ReportWritten {
                html: html.map(|p| p.display().to_string()),
                json: json.display().to_string(),
            }),
            Err(err) => tracing::warn!("cannot write the run report: {err}"),
        }
    }
}

//! The JSONL event log (`logs/migrations.jsonl`, SPEC 12a) and the helpers
//! every report file uses: owner-only permissions, secrets scrubbed, and
//! retention (`[logs] keep`: the newest N files of each kind, like backups).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{SecondsFormat, Utc};
use serde::Serialize;

use crate::db::scrub;
use crate::error::{Error, ReasonCode, Result};
use crate::events::{Event, EventSink};

/// The event log file name inside the log directory.
pub const EVENT_LOG: &str = "migrations.jsonl";

/// Appends one JSON object per event to `<log dir>/migrations.jsonl`.
///
/// The file (and the directory) are created with the first event, not
/// before: a command refused before it did anything (a bad URL, a missing
/// file) leaves no stray `logs/` behind.
pub struct EventLog {
    dir: PathBuf,
    path: PathBuf,
    file: Mutex<Option<File>>,
}

#[derive(Serialize)]
struct Line<'a> {
    ts: String,
    tool_version: &'static str,
    #[serde(flatten)]
    event: &'a Event,
}

impl EventLog {
    /// The event log of `log_dir`, opened (mode 0600, in a 0700 directory)
    /// at the first event. Fails now when the log could not be written then.
    pub fn open(log_dir: &Path) -> Result<EventLog> {
        let path = log_dir.join(EVENT_LOG);
        writable(log_dir).map_err(|e| Error::io(&path, "open the event log", &e))?;
        Ok(EventLog {
            dir: log_dir.to_path_buf(),
            path,
            file: Mutex::new(None),
        })
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn create(&self) -> Result<File> {
        create_private_dir(&self.dir)?;
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, "open the event log", &e))
    }
}

/// Whether `dir` (or, while it does not exist, its nearest existing
/// ancestor) is a directory this process can write into.
fn writable(dir: &Path) -> std::io::Result<()> {
    let mut at = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    loop {
        match std::fs::metadata(at) {
            Ok(meta) if meta.is_dir() => {
                return nix::unistd::access(at, nix::unistd::AccessFlags::W_OK)
                    .map_err(std::io::Error::from);
            }
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotADirectory,
                    format!("{} is not a directory", at.display()),
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                at = match at.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => parent,
                    _ => Path::new("."),
                };
            }
            Err(e) => return Err(e),
        }
    }
}

impl EventSink for EventLog {
    fn emit(&self, event: &Event) {
        // Progress is for the screen; the log keeps what happened.
        if matches!(event, Event::Progress { .. }) {
            return;
        }
        let line = Line {
            ts: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            tool_version: env!("CARGO_PKG_VERSION"),
            event,
        };
        let Ok(mut text) = serde_json::to_string(&line) else {
            return;
        };
        text = scrub(&text);
        text.push('\n');
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if file.is_none() {
            match self.create() {
                Ok(opened) => *file = Some(opened),
                Err(err) => {
                    tracing::warn!("cannot write the event log: {err}");
                    return;
                }
            }
        }
        // One write per line with O_APPEND: concurrent runners never interleave lines.
        if let Some(file) = file.as_mut()
            && let Err(err) = file.write_all(text.as_bytes())
        {
            tracing::warn!("cannot write the event log {}: {err}", self.path.display());
        }
    }
}

/// The UTC timestamp in report and backup file names (`20261124T081500.123Z`):
/// sorts in time order, no characters a shell or a file system dislikes.
pub fn file_stamp(at: chrono::DateTime<Utc>) -> String {
    at.format("%Y%m%dT%H%M%S%.3fZ").to_string()
}

/// Writes `<dir>/<kind>-<timestamp>.json` (0600, secrets scrubbed), then
/// keeps only the newest `keep` files of that kind (0 keeps all).
pub fn write_report<T: Serialize>(
    dir: &Path,
    kind: &str,
    at: chrono::DateTime<Utc>,
    value: &T,
    keep: u32,
) -> Result<PathBuf> {
    let path = dir.join(format!("{kind}-{}.json", file_stamp(at)));
    write_private_json(&path, value)?;
    prune_reports(dir, kind, keep);
    Ok(path)
}

/// Deletes all but the newest `keep` report files `<kind>-<timestamp>.json`
/// in `dir` (0 keeps all). Only names of exactly that shape are touched:
/// other kinds, the event log and anything a person put there stay. The
/// report just written is kept whatever happens, so a file that cannot be
/// removed is a warning in the debug log, never a failed run.
pub fn prune_reports(dir: &Path, kind: &str, keep: u32) {
    prune_files(dir, kind, "json", keep);
}

/// [`prune_reports`] for files `<kind>-<timestamp>.<extension>`.
pub fn prune_files(dir: &Path, kind: &str, extension: &str, keep: u32) {
    let suffix = format!(".{extension}");
    if keep == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut reports: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(kind))
                .and_then(|n| n.strip_prefix('-'))
                .and_then(|n| n.strip_suffix(suffix.as_str()))
                .is_some_and(is_file_stamp)
        })
        .map(|e| e.path())
        .collect();
    // The stamps sort in time order: newest first.
    reports.sort_by(|a, b| b.cmp(a));
    for old in reports.into_iter().skip(keep as usize) {
        if let Err(err) = std::fs::remove_file(&old) {
            tracing::warn!("cannot remove the old report {}: {err}", old.display());
        }
    }
}

/// True for text written by [`file_stamp`].
fn is_file_stamp(text: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%S%.3fZ").is_ok()
}

/// Creates a directory (and parents) readable only by its owner.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(dir, "create the directory", &e))
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Pass,
    /// Worth a look; does not stop the run.
    Warn,
    /// Stops the run (unless forced).
    Fail,
}

impl Status {
    /// `pass`, `warn`, `FAIL`: as printed in front of a check.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

/// One check of a phase report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked (`dirty_rows`, `invalid_indexes`…).
    pub check: String,
    /// Pass, warn or fail.
    pub status: Status,
    /// Reason code, for warn and fail.
    pub reason: Option<ReasonCode>,
    /// What was found, for people.
    pub detail: String,
}

impl Check {
    /// `CODE: detail`, as a check is quoted in messages.
    pub fn coded(&self) -> String {
        let code = self
            .reason
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        format!("{code}: {}", self.detail)
    }

    /// A passing check.
    pub fn pass(check: &str, detail: impl Into<String>) -> Check {
        Check {
            check: check.to_string(),
            status: Status::Pass,
            reason: None,
            detail: detail.into(),
        }
    }

    /// A warning with its reason code.
    pub fn warn(check: &str, reason: ReasonCode, detail: impl Into<String>) -> Check {
        Check {
            check: check.to_string(),
            status: Status::Warn,
            reason: Some(reason),
            detail: detail.into(),
        }
    }

    /// A failure with its reason code.
    pub fn fail(check: &str, reason: ReasonCode, detail: impl Into<String>) -> Check {
        Check {
            check: check.to_string(),
            status: Status::Fail,
            reason: Some(reason),
            detail: detail.into(),
        }
    }
}

/// A preflight or postflight report (`logs/<phase>-report-<timestamp>.json`).
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    /// Format version of this document.
    pub schema_version: u32,
    /// `preflight` or `postflight`.
    pub phase: String,
    /// When the checks started.
    pub started_at: chrono::DateTime<Utc>,
    /// How long they took.
    pub duration_ms: u64,
    /// The database (no password).
    pub database: String,
    /// The worst status of all checks.
    pub result: Status,
    /// `--force` was given and a failure was overridden.
    pub forced: bool,
    /// Every check, in the order run.
    pub checks: Vec<Check>,
    /// Canonical schema checksum of the whole database (postflight).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_checksum: Option<String>,
    /// Per namespace, the checksum of the schemas it answers for, as recorded
    /// on its newest history row (postflight within apply).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub namespace_checksums: std::collections::BTreeMap<String, String>,
    /// Where the report was written.
    #[serde(skip)]
    pub path: Option<PathBuf>,
    /// The live schema preflight read for its drift check: the "before"
    /// of the run report's schema diff (not part of the JSON report).
    #[serde(skip)]
    pub live_schema: Option<crate::schema::Snapshot>,
    /// Why `--force` cannot go past this report's failures, when it
    /// cannot (the schema could not be read; a standby that is expected
    /// is missing, which apply checks again before each migration).
    #[serde(skip)]
    pub unforceable: Option<String>,
}

impl PhaseReport {
    /// A report from its checks.
    pub fn new(
        phase: &str,
        started_at: chrono::DateTime<Utc>,
        database: &str,
        checks: Vec<Check>,
    ) -> PhaseReport {
        let result = checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Pass);
        PhaseReport {
            schema_version: 1,
            phase: phase.to_string(),
            duration_ms: u64::try_from((Utc::now() - started_at).num_milliseconds()).unwrap_or(0),
            started_at,
            database: database.to_string(),
            result,
            forced: false,
            checks,
            schema_checksum: None,
            namespace_checksums: std::collections::BTreeMap::new(),
            path: None,
            live_schema: None,
            unforceable: None,
        }
    }

    /// The failing checks.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Fail)
    }

    /// The first failure's reason code (or `fallback`), and one
    /// `CODE: detail` line per failure, for the phase's error.
    pub fn failure_summary(&self, fallback: crate::error::Code) -> (ReasonCode, Vec<String>) {
        let reason = self
            .failures()
            .find_map(|c| c.reason.clone())
            .unwrap_or_else(|| ReasonCode::new(fallback));
        let lines = self.failures().map(Check::coded).collect();
        (reason, lines)
    }

    /// Writes the report as `<dir>/<phase>-report-<timestamp>.json`, 0600,
    /// keeping the newest `keep` reports of the phase (`[logs] keep`).
    /// Nothing is written without a directory (library use that did not
    /// opt in to report files).
    pub fn write(&mut self, dir: Option<&Path>, keep: u32) -> Result<Option<PathBuf>> {
        let Some(dir) = dir else {
            return Ok(None);
        };
        let kind = format!("{}-report", self.phase);
        let path = write_report(dir, &kind, self.started_at, self, keep)?;
        self.path = Some(path.clone());
        Ok(Some(path))
    }

    /// Writes the report (see [`PhaseReport::write`]) and tells the event sink.
    pub fn write_and_announce(
        &mut self,
        dir: Option<&Path>,
        keep: u32,
        events: &dyn EventSink,
    ) -> Result<Option<PathBuf>> {
        let path = self.write(dir, keep)?;
        let count = |status| self.checks.iter().filter(|c| c.status == status).count();
        events.emit(&Event::PhaseChecked {
            phase: self.phase.clone(),
            result: self.result,
            failures: count(Status::Fail),
            warnings: count(Status::Warn),
            forced: self.forced,
            path: path.as_ref().map(|p| p.display().to_string()),
            notes: self
                .checks
                .iter()
                .filter(|c| c.status != Status::Pass)
                .map(|c| format!("{} {}", c.status.label(), c.coded()))
                .collect(),
        });
        Ok(path)
    }
}

/// Writes a JSON document with owner-only permissions (in a 0700 directory),
/// secrets scrubbed.
pub fn write_private_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let text = serde_json::to_string_pretty(value).map_err(|e| {
        Error::config(
            crate::error::Code::Io,
            format!("cannot render {}: {e}", path.display()),
        )
    })?;
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, "write", &e))?;
    file.write_all(scrub(&text).as_bytes())
        .map_err(|e| Error::io(path, "write", &e))
}

/// Writes a text file with owner-only permissions (in a 0700 directory),
/// secrets scrubbed, atomically: a temporary file in the same directory
/// (created 0600) renamed over the path, so a reader never sees half a
/// report.
pub fn write_private_text(path: &Path, text: &str) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    create_private_dir(dir)?;
    let mut file = tempfile::Builder::new()
        .prefix(".report-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(path, "write", &e))?;
    file.write_all(scrub(text).as_bytes())
        .map_err(|e| Error::io(path, "write", &e))?;
    file.persist(path)
        .map_err(|e| Error::io(path, "write", &e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{file_stamp, prune_reports, write_report};

    #[test]
    fn keeps_the_newest_reports_of_each_kind_and_nothing_else_is_touched() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let start = chrono::Utc::now();
        for i in 0..4 {
            let at = start + chrono::Duration::seconds(i);
            write_report(dir.path(), "preflight-report", at, &i, 2)
                .unwrap_or_else(|e| panic!("{e}"));
            write_report(dir.path(), "postflight-report", at, &i, 0)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        for other in ["migrations.jsonl", "preflight-report-notes.json"] {
            std::fs::write(dir.path().join(other), "x").unwrap_or_else(|e| panic!("{e}"));
        }
        prune_reports(dir.path(), "preflight-report", 2);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        let newest = |i: i64| {
            format!(
                "preflight-report-{}.json",
                file_stamp(start + chrono::Duration::seconds(i))
            )
        };
        assert!(
            names.contains(&newest(3)) && names.contains(&newest(2)),
            "{names:?}"
        );
        assert!(
            !names.contains(&newest(1)) && !names.contains(&newest(0)),
            "{names:?}"
        );
        assert_eq!(
            names
                .iter()
                .filter(|n| n.starts_with("postflight-report-"))
                .count(),
            4,
            "keep = 0 keeps all: {names:?}"
        );
        assert!(names.contains(&"migrations.jsonl".to_string()));
        assert!(names.contains(&"preflight-report-notes.json".to_string()));
    }
}

//! Live progress on stderr: one line per event, as it happens.

use migsafe::config::format_duration;
use migsafe::db::activity::Session;
use migsafe::events::{Direction, Event, EventSink};
use migsafe::report::Status;
use std::time::Duration;

use super::output::{DIM, GREEN, RED, YELLOW, err, paint};

/// Renders events for people.
pub struct HumanProgress;

fn ms(value: u64) -> String {
    format_duration(Duration::from_millis(value))
}

fn verb(direction: Direction) -> &'static str {
    match direction {
        Direction::Up => "applying",
        Direction::Down => "rolling back",
    }
}

impl EventSink for HumanProgress {
    fn emit(&self, event: &Event) {
        // Every event the library has is placed in one group; `Event` is
        // non_exhaustive for embedders, so a new one needs placing here.
        match event {
            Event::Plan { .. }
            | Event::LockWaiting { .. }
            | Event::LockAcquired { .. }
            | Event::UpToDate { .. }
            | Event::NewerApplied { .. }
            | Event::MigrationStarted { .. }
            | Event::MigrationRetried { .. }
            | Event::MigrationFinished { .. }
            | Event::MigrationFailed { .. } => migration(event),
            Event::PhaseChecked { .. }
            | Event::BackupWritten { .. }
            | Event::Recovered { .. }
            | Event::Stamped { .. }
            | Event::Repaired { .. } => pipeline(event),
            Event::ReplicaLag { .. } => replica(event),
            Event::SourceBackupWritten { .. }
            | Event::CopyStarted { .. }
            | Event::CopyProgress { .. }
            | Event::CopyFinished { .. } => cutover(event),
            _ => {}
        }
    }
}

/// A migration's lock, start, retries and end.
fn migration(event: &Event) {
    match event {
        Event::Plan {
            namespace,
            direction,
            versions,
        } => err(&format!(
            "{namespace}: {} {} migration(s): {}",
            verb(*direction),
            versions.len(),
            versions.join(", ")
        )),
        Event::LockWaiting { namespace, holder } => err(&format!(
            "{namespace}: {} the namespace lock is held by {}; waiting",
            paint(YELLOW, "waiting:"),
            holder
                .as_ref()
                .map_or_else(|| "another session".to_string(), Session::describe)
        )),
        Event::LockAcquired {
            namespace,
            duration_ms,
        } if *duration_ms > 0 => {
            err(&format!(
                "{namespace}: lock acquired after {}",
                ms(*duration_ms)
            ));
        }
        Event::LockAcquired { .. } => {}
        Event::UpToDate { .. } => {}
        Event::NewerApplied {
            namespace,
            versions,
            known,
            ..
        } => err(&format!(
            "{namespace}: {} {} applied by a newer release (this one knows up to {known}); allowed, nothing runs below it (allow_newer_applied)",
            paint(YELLOW, "note:"),
            versions.join(", ")
        )),
        Event::MigrationStarted {
            namespace,
            version,
            name,
            direction,
            transactional,
        } => err(&format!(
            "{namespace}: {} {version} {name}{}",
            verb(*direction),
            if *transactional {
                ""
            } else {
                " (no transaction)"
            }
        )),
        Event::MigrationRetried {
            namespace,
            version,
            attempt,
            delay_ms,
            blockers,
            ..
        } => {
            err(&format!(
                "{namespace}: {} {version} could not get a lock in time (attempt {attempt}); rolled back, retrying in {}",
                paint(YELLOW, "retry:"),
                ms(*delay_ms)
            ));
            for blocker in blockers {
                err(&format!("    blocked by {}", blocker.describe()));
            }
        }
        Event::MigrationFinished {
            namespace,
            version,
            name,
            duration_ms,
            ..
        } => err(&format!(
            "{namespace}: {} {version} {name} {}",
            paint(GREEN, "done"),
            paint(DIM, format!("in {}", ms(*duration_ms)))
        )),
        Event::MigrationFailed {
            namespace,
            version,
            name,
            reason,
            ..
        } => err(&format!(
            "{namespace}: {} {version} {name} ({reason})",
            paint(RED, "FAILED")
        )),
        _ => {}
    }
}

/// A standby holding the next migration back.
fn replica(event: &Event) {
    if let Event::ReplicaLag {
        lag_bytes,
        lag_ms,
        waited_ms,
        reason,
        ..
    } = event
    {
        let bytes = u64::try_from(*lag_bytes).map_or_else(
            |_| "replay position unknown".to_string(),
            migsafe::pipeline::preflight::human_bytes,
        );
        let time = lag_ms.map_or_else(String::new, |ms| format!(", {}", self::ms(ms)));
        err(&format!(
            "{} standby {bytes}{time} behind; waiting before the next migration ({} so far)",
            paint(YELLOW, reason),
            self::ms(*waited_ms)
        ));
    }
}

/// Phases, backups, recovery, stamp and repair.
fn pipeline(event: &Event) {
    match event {
        Event::PhaseChecked {
            phase,
            result,
            failures,
            warnings,
            forced,
            path,
            notes,
        } => {
            let (word, style) = match result {
                Status::Pass => ("passed".to_string(), GREEN),
                Status::Warn => (format!("passed with {warnings} warning(s)"), YELLOW),
                Status::Fail if *forced => {
                    (format!("FAILED {failures} check(s), forced past"), RED)
                }
                Status::Fail => (format!("FAILED {failures} check(s)"), RED),
            };
            let written = path
                .as_deref()
                .map(|p| format!(" {}", paint(DIM, format!("({p})"))))
                .unwrap_or_default();
            err(&format!("{phase} {}{written}", paint(style, word)));
            for note in notes {
                err(&format!("  {}", note.replace('\n', "\n    ")));
            }
        }
        Event::BackupWritten {
            path,
            bytes,
            duration_ms,
        } => err(&format!(
            "backup: {path} ({}, verified with pg_restore --list) {}",
            migsafe::pipeline::preflight::human_bytes(*bytes),
            paint(DIM, format!("in {}", ms(*duration_ms)))
        )),
        Event::Recovered {
            namespace,
            version,
            detail,
        } => err(&format!(
            "{namespace}: {} {version}: {detail}",
            paint(YELLOW, "recovered")
        )),
        Event::Stamped { namespace, version } => err(&format!("{namespace}: stamped {version}")),
        Event::Repaired {
            namespace,
            version,
            action,
            ..
        } => err(&format!("{namespace}: repaired {version} ({action})")),
        _ => {}
    }
}

/// A cutover's source backup and table copies.
fn cutover(event: &Event) {
    match event {
        Event::SourceBackupWritten {
            path,
            bytes,
            duration_ms,
        } => err(&format!(
            "backup: {path} ({}, SQLite online backup, checked with PRAGMA quick_check) {}",
            migsafe::pipeline::preflight::human_bytes(*bytes),
            paint(DIM, format!("in {}", ms(*duration_ms)))
        )),
        Event::CopyStarted { table, rows } => err(&format!("copying {table} ({rows} rows)")),
        Event::CopyProgress { table, rows, total } => {
            let percent = if *total > 0 { rows * 100 / total } else { 100 };
            err(&format!(
                "  {table}: {rows}/{total} rows {}",
                paint(DIM, format!("({percent}%)"))
            ))
        }
        Event::CopyFinished {
            table,
            rows,
            bytes,
            duration_ms,
        } => {
            let rate = if *duration_ms > 0 {
                rows * 1000 / duration_ms
            } else {
                *rows
            };
            err(&format!(
                "copied {table}: {rows} rows, {} {}",
                migsafe::pipeline::preflight::human_bytes(*bytes),
                paint(DIM, format!("in {} ({rate} rows/s)", ms(*duration_ms)))
            ))
        }
        _ => {}
    }
}

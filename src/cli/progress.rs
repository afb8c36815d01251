//! Live progress on stderr: one line per event, as it happens, and on a
//! terminal a progress bar (indicatif) for long work — backup, cutover
//! copy, verify, and any task sending `progress` events (backfills) — with
//! its rows or steps, rate and ETA. Off a terminal the bars are progress
//! lines, as in logs. `-q` leaves this sink out, so both go quiet.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use migsafe::config::format_duration;
use migsafe::db::activity::Session;
use migsafe::events::{Direction, Event, EventSink};
use migsafe::report::Status;

use super::output::{DIM, GREEN, RED, YELLOW, err, paint};

/// Renders events for people.
pub struct HumanProgress {
    /// On a terminal: the bars drawn.
    bars: Option<Bars>,
    /// Off a terminal: when each task last printed a progress line.
    lines: Mutex<HashMap<String, Instant>>,
}

/// How often a task prints a progress line off a terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);

impl HumanProgress {
    /// Bars when stderr is a terminal, lines otherwise.
    pub fn new() -> Self {
        HumanProgress {
            bars: std::io::stderr().is_terminal().then(Bars::new),
            lines: Mutex::new(HashMap::new()),
        }
    }

    /// Prints the line of a `progress` event off a terminal, at most every
    /// [`LINE_EVERY`] per task, and always its last one.
    fn progress_line(&self, task: &str, done: u64, total: Option<u64>, unit: &str) {
        // Nothing done of an unknown whole (a backup starting) says nothing.
        if done == 0 && total.is_none() {
            return;
        }
        let finished = total.is_some_and(|t| done >= t);
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        let due = lines.get(task).is_none_or(|at| at.elapsed() >= LINE_EVERY);
        if !due && !finished {
            return;
        }
        lines.insert(task.to_string(), Instant::now());
        err(&progress_text(task, done, total, unit));
    }
}

impl Default for HumanProgress {
    fn default() -> Self {
        Self::new()
    }
}

/// `verify: 3/10 migrations (30%)`, `backup: 12.0 MB`.
fn progress_text(task: &str, done: u64, total: Option<u64>, unit: &str) -> String {
    let amount = |n: u64| {
        if unit == "bytes" {
            migsafe::pipeline::preflight::human_bytes(n)
        } else {
            n.to_string()
        }
    };
    match total {
        Some(total) => {
            let percent = (done * 100).checked_div(total).unwrap_or(100);
            format!(
                "{task}: {}/{} {} {}",
                amount(done),
                amount(total),
                if unit == "bytes" { "" } else { unit },
                paint(DIM, format!("({percent}%)"))
            )
        }
        None => format!(
            "{task}: {} {}",
            amount(done),
            if unit == "bytes" { "" } else { unit }
        ),
    }
}

/// The bars on a terminal, one per task.
struct Bars {
    multi: MultiProgress,
    active: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    fn new() -> Bars {
        Bars {
            multi: MultiProgress::new(),
            active: Mutex::new(HashMap::new()),
        }
    }

    /// The task's bar, made on first use: a bar with rate and ETA when the
    /// total is known, a spinner with the amount and rate when not.
    fn update(&self, task: &str, done: u64, total: Option<u64>, unit: &str) {
        let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        let bar = active.entry(task.to_string()).or_insert_with(|| {
            let (bar, template) = match (total, unit) {
                (Some(total), "bytes") => (
                    ProgressBar::new(total),
                    "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                ),
                (Some(total), _) => (
                    ProgressBar::new(total),
                    "{prefix:>12} [{bar:30}] {human_pos}/{human_len} {msg} {per_sec:1} ETA {eta}",
                ),
                (None, "bytes") => (
                    ProgressBar::new_spinner(),
                    "{prefix:>12} {spinner} {bytes} {bytes_per_sec} {elapsed}",
                ),
                (None, _) => (
                    ProgressBar::new_spinner(),
                    "{prefix:>12} {spinner} {human_pos} {msg} {per_sec:1} {elapsed}",
                ),
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(task.to_string());
            bar.set_message(unit.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            self.multi.add(bar)
        });
        if let Some(total) = total {
            bar.set_length(total);
        }
        bar.set_position(done);
        if total.is_some_and(|t| done >= t) {
            bar.finish_and_clear();
            active.remove(task);
        }
    }

    /// Removes a task's bar (its work ended).
    fn end(&self, task: &str) {
        let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bar) = active.remove(task) {
            bar.finish_and_clear();
        }
    }
}

impl Bars {
    /// Removes the bars whose task starts with `prefix`.
    fn end_prefixed(&self, prefix: &str) {
        let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        active.retain(|task, bar| {
            let ended = task.starts_with(prefix);
            if ended {
                bar.finish_and_clear();
            }
            !ended
        });
    }

    /// Removes every bar.
    fn end_all(&self) {
        let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, bar) in active.drain() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.end_all();
    }
}

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
        match &self.bars {
            Some(bars) => {
                if bar(bars, event) {
                    return;
                }
                // Lines are printed with the bars hidden, then redrawn.
                bars.multi.suspend(|| lines(event));
            }
            None => match event {
                Event::Progress {
                    task,
                    done,
                    total,
                    unit,
                } => self.progress_line(task, *done, *total, unit),
                _ => lines(event),
            },
        }
    }
}

/// On a terminal: draws the event as a bar when it is progress; true when
/// nothing else is to be printed for it.
fn bar(bars: &Bars, event: &Event) -> bool {
    match event {
        Event::Progress {
            task,
            done,
            total,
            unit,
        } => {
            bars.update(task, *done, *total, unit);
            true
        }
        Event::CopyStarted { table, rows } => {
            bars.update(&format!("copy {table}"), 0, Some(*rows), "rows");
            true
        }
        Event::CopyProgress { table, rows, total } => {
            bars.update(&format!("copy {table}"), *rows, Some(*total), "rows");
            true
        }
        Event::CopyFinished { table, .. } => {
            bars.end(&format!("copy {table}"));
            false
        }
        Event::BackupWritten { .. } => {
            bars.end("backup");
            false
        }
        // The rows a backfill updated and its rate; the line form (off a
        // terminal) also gives the ETA.
        Event::BackfillProgress {
            namespace,
            version,
            table,
            rows,
            ..
        } => {
            bars.update(
                &format!("backfill {namespace}:{version} {table}"),
                *rows,
                None,
                "rows",
            );
            true
        }
        Event::MigrationFinished {
            namespace, version, ..
        }
        | Event::MigrationFailed {
            namespace, version, ..
        } => {
            bars.end_prefixed(&format!("backfill {namespace}:{version} "));
            false
        }
        // The run is over (also when it failed half way): no bar stays
        // drawn under the error that follows.
        Event::RunFinished { .. } | Event::ReportWritten { .. } => {
            bars.end_all();
            false
        }
        _ => false,
    }
}

/// The line (or lines) of an event.
fn lines(event: &Event) {
    {
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
            | Event::MigrationFailed { .. }
            | Event::ServerNotice { .. }
            | Event::ServerNoticesDropped { .. }
            | Event::PreconditionFailed { .. }
            | Event::MarkedRanForgotten { .. }
            | Event::MarkedRan { .. } => migration(event),
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
            Event::OnlineStep { .. }
            | Event::OnlineResumed { .. }
            | Event::BackfillProgress { .. }
            | Event::BackfillPaused { .. } => online(event),
            Event::RunFinished { .. }
            | Event::NoticeFailed { .. }
            | Event::ReportWritten { .. }
            | Event::Progress { .. } => reporting(event),
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
            reruns,
        } => err(&format!(
            "{namespace}: {} {version} {name}{}{}",
            verb(*direction),
            if *reruns {
                " (again: it changed since it ran, runOnChange)"
            } else {
                ""
            },
            if *transactional {
                ""
            } else {
                " (no transaction)"
            }
        )),
        Event::PreconditionFailed {
            namespace,
            version,
            name,
            line,
            sql,
            expected,
            got,
            error,
            action,
            message,
        } => {
            use migsafe::source::layouts::liquibase::OnFail;
            let what = match (got, error) {
                (Some(got), _) => format!("gave `{got}`, expected `{expected}`"),
                (_, Some(error)) => format!("could not be checked: {error}"),
                _ => String::new(),
            };
            let (label, then) = match action {
                OnFail::Halt => (paint(RED, "precondition failed:"), "not run (HALT)"),
                OnFail::MarkRan => (
                    paint(YELLOW, "precondition:"),
                    "recorded as applied without running it (MARK_RAN)",
                ),
                OnFail::Warn => (paint(YELLOW, "precondition:"), "run anyway (WARN)"),
            };
            let said = message
                .as_ref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            err(&format!(
                "{namespace}: {version} {name} {label}{said} `{sql}` (line {line}) {what}; {then}"
            ));
        }
        Event::MarkedRanForgotten {
            namespace,
            version,
            name,
        } => err(&format!(
            "{namespace}: {version} {name} was recorded without running (its precondition said MARK_RAN): its down script is not run, only its history row is removed"
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
        // What the migration itself said: `DB NOTICE: backfilled 300 rows`.
        Event::ServerNotice {
            namespace,
            version,
            severity,
            message,
            detail,
            hint,
        } => {
            let label = format!("DB {severity}:");
            let label = if severity == "WARNING" {
                paint(YELLOW, label)
            } else {
                paint(DIM, label)
            };
            err(&format!("{namespace}: {version} {label} {message}"));
            for (what, text) in [("DETAIL", detail), ("HINT", hint)] {
                if let Some(text) = text {
                    err(&format!("    {what}: {text}"));
                }
            }
        }
        Event::ServerNoticesDropped {
            namespace,
            version,
            count,
        } => err(&format!(
            "{namespace}: {version} {}",
            paint(
                DIM,
                format!("({count} earlier server notice(s) not shown; the last 200 follow)")
            )
        )),
        _ => {}
    }
}

/// A standby holding the next migration (or backfill batch) back.
fn replica(event: &Event) {
    if let Event::ReplicaLag {
        lag_bytes,
        lag_ms,
        waited_ms,
        before,
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
            "{} standby {bytes}{time} behind; waiting before the next {before} ({} so far)",
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
            // A phase that stops the run has its failures listed once, by
            // the error that follows; only its warnings are listed here.
            let stopped = *result == Status::Fail && !*forced;
            let fail = format!("{} ", Status::Fail.label());
            for note in notes.iter().filter(|n| !(stopped && n.starts_with(&fail))) {
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
            // A rate says something only about a table big enough to
            // take a while; `3 rows/s` of a three-row table does not.
            let rate = match rows * 1000 / (*duration_ms).max(1) {
                rate if *rows >= RATE_SHOWN_FROM => format!(" ({rate} rows/s)"),
                _ => String::new(),
            };
            err(&format!(
                "copied {table}: {rows} rows, {} {}",
                migsafe::pipeline::preflight::human_bytes(*bytes),
                paint(DIM, format!("in {}{rate}", ms(*duration_ms)))
            ))
        }
        _ => {}
    }
}

/// Rows from which a copy's rate is shown.
pub const RATE_SHOWN_FROM: u64 = 10_000;

/// Online steps and backfill batches (SPEC 15, 16).
fn online(event: &Event) {
    match event {
        Event::OnlineStep {
            namespace,
            version,
            step,
            total,
            sql,
            locks,
        } => err(&format!(
            "{namespace}: {version} step {step}/{total}: {} {}",
            sql.lines().next().unwrap_or(""),
            paint(DIM, format!("({locks})"))
        )),
        Event::OnlineResumed {
            namespace,
            version,
            detail,
        } => err(&format!(
            "{namespace}: {} {version}: {detail}",
            paint(YELLOW, "resumed")
        )),
        Event::BackfillProgress {
            namespace,
            version,
            table,
            rows,
            batches,
            batch_size,
            rate,
            eta_ms,
        } => err(&format!(
            "{namespace}: {version} backfill {table}: {rows} rows in {batches} batches {}",
            paint(
                DIM,
                format!(
                    "({rate} rows/s, {batch_size} per batch{})",
                    eta_ms
                        .filter(|ms| *ms > 0)
                        .map(|ms| format!(", about {} left", self::ms(ms)))
                        .unwrap_or_default()
                )
            )
        )),
        Event::BackfillPaused {
            namespace,
            version,
            reason,
        } => err(&format!(
            "{namespace}: {version} backfill {} {reason}",
            paint(YELLOW, "paused:")
        )),
        _ => {}
    }
}

/// Notices, the run report, progress off a terminal.
fn reporting(event: &Event) {
    match event {
        Event::NoticeFailed {
            notice, message, ..
        } => err(&format!(
            "{} notice `{notice}` not delivered: {message} (the run goes on)",
            paint(YELLOW, "warning:")
        )),
        Event::ReportWritten { html, json } => err(&format!(
            "report: {}",
            paint(DIM, html.as_deref().unwrap_or(json))
        )),
        Event::Progress {
            task,
            done,
            total,
            unit,
        } => err(&progress_text(task, *done, *total, unit)),
        // The migrations' own lines said it.
        _ => {}
    }
}

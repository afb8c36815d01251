//! `migsafe fleet apply | status --databases FILE`: the same migrations over
//! many databases (SPEC 17), through the library's [`migsafe::fleet`].
//!
//! A line per database as it ends, with a running count, then a summary;
//! `--format json` one document. Databases are named `host:port/dbname`:
//! the file's URLs hold passwords, which never reach the output.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Subcommand;

use migsafe::config::format_duration;
use migsafe::error::{Code, Result};
use migsafe::events::{Event, EventSink, Fanout};
use migsafe::fleet::{Fleet, FleetDatabase, FleetOptions, FleetReport, Outcome, read_databases};
use migsafe::report::EventLog;
use migsafe::{Config, Error};

use super::Context;
use crate::cli::output::{GREEN, RED, YELLOW, err, json, out, paint};
use crate::cli::selection::{Selection, apply_options};

/// `fleet` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
    /// Refused here (the databases come from `--databases`), so hidden
    /// from fleet's help and usage: clap gives a subcommand the global
    /// flag only when it has no argument of that id, and this one shadows
    /// it for `fleet` and, being global, for `fleet apply | status`. A
    /// value given still reaches [`Global`](crate::cli::args::Global)
    /// (clap copies global values up), where [`fleet`] refuses it. No
    /// `env`: `DATABASE_URL` is ignored by fleet.
    #[arg(long, global = true, hide = true, value_name = "URL")]
    pub database_url: Option<String>,
}

/// Where the databases are listed.
#[derive(Debug, clap::Args)]
pub struct Databases {
    /// One database URL or key=value string per line; `#` starts a comment.
    /// The databases come from this file alone: `--database-url` is refused.
    #[arg(long, value_name = "FILE")]
    pub databases: PathBuf,
    /// Databases worked on at a time (at least 1).
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = at_least_one)]
    pub parallel: usize,
}

/// `fleet` subcommands.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// The guarded apply (preflight, backup, migrate, postflight) on every
    /// database: canaries first and alone, then `--parallel` at a time; no
    /// new database starts after `--max-failures` failures.
    Apply {
        /// The databases file and how many at a time.
        #[command(flatten)]
        databases: Databases,
        /// Databases applied first, one at a time, before any other starts;
        /// a failed canary stops the fleet.
        #[arg(long, default_value_t = 1, value_name = "K")]
        canary: usize,
        /// Failures tolerated before no new database starts (the running
        /// ones finish).
        #[arg(long, default_value_t = 0, value_name = "F")]
        max_failures: usize,
        /// Which migrations.
        #[command(flatten)]
        selection: Selection,
        /// Go on although a database's preflight fails.
        #[arg(long)]
        force: bool,
        /// Do not take a pg_dump backup of each database first.
        #[arg(long)]
        skip_backup: bool,
        /// Do not run the postflight checks.
        #[arg(long)]
        no_postflight: bool,
    },
    /// Every database's state (read-only): up to date, pending, or its problem.
    Status {
        /// The databases file and how many at a time.
        #[command(flatten)]
        databases: Databases,
    },
}

/// Prints each database's line as it ends.
struct Lines {
    json: bool,
    quiet: bool,
}

impl EventSink for Lines {
    fn emit(&self, event: &Event) {
        let Event::FleetDatabaseDone {
            database,
            outcome,
            migrations,
            reason,
            message,
            done,
            total,
            failed,
            duration_ms,
            ..
        } = event
        else {
            return;
        };
        if self.quiet {
            return;
        }
        let width = total.to_string().len();
        let count = if *failed > 0 {
            format!("[{done:>width$}/{total}, {failed} failed]")
        } else {
            format!("[{done:>width$}/{total}]")
        };
        let took = format_duration(std::time::Duration::from_millis(*duration_ms));
        let detail = match outcome.as_str() {
            "applied" => format!(
                "{} {migrations} migration(s) in {took}",
                paint(GREEN, "applied")
            ),
            "up_to_date" => paint(GREEN, "up to date"),
            "pending" => paint(YELLOW, format!("{migrations} pending")),
            "interrupted" => format!(
                "{} after {migrations} migration(s) committed: {}{}",
                paint(YELLOW, "INTERRUPTED"),
                reason.as_deref().unwrap_or(""),
                first_line(message.as_deref())
            ),
            _ => format!(
                "{} {}{}",
                paint(RED, "FAILED"),
                reason.as_deref().unwrap_or(""),
                first_line(message.as_deref())
            ),
        };
        let line = format!("{count} {database}: {detail}");
        if self.json { err(&line) } else { out(&line) }
    }
}

/// `: ` and the head of a failure's message, or nothing: its first line,
/// and when that line only introduces what follows (`0002 orders failed:`),
/// the next one too, which is the server's own error
/// (`…up.sql:1:14: ERROR 42P07: relation "orders" already exists`). The
/// excerpt, DETAIL and HINT lines stay in the database's logs and the JSON.
fn first_line(message: Option<&str>) -> String {
    let Some(message) = message else {
        return String::new();
    };
    let mut lines = message.lines().map(str::trim).filter(|l| !l.is_empty());
    let Some(mut head) = lines.next().map(str::to_string) else {
        return String::new();
    };
    while head.ends_with(':')
        && let Some(next) = lines.next()
    {
        head.push(' ');
        head.push_str(next);
    }
    format!(": {head}")
}

/// A database's own events worth a line during a fleet run: waits.
struct Waits {
    database: String,
}

impl EventSink for Waits {
    fn emit(&self, event: &Event) {
        match event {
            Event::ReplicaLag {
                lag_bytes,
                waited_ms,
                before,
                reason,
                ..
            } => err(&format!(
                "{}: {} standby {} behind; waiting before the next {before} ({} so far)",
                self.database,
                paint(YELLOW, reason),
                migsafe::pipeline::preflight::human_bytes(u64::try_from(*lag_bytes).unwrap_or(0)),
                format_duration(std::time::Duration::from_millis(*waited_ms))
            )),
            Event::LockWaiting { namespace, .. } => err(&format!(
                "{}: {namespace}: {} the namespace lock is held by another run",
                self.database,
                paint(YELLOW, "waiting:")
            )),
            _ => {}
        }
    }
}

fn fleet(ctx: &Context<'_>, databases: &Databases) -> Result<Fleet> {
    let g = ctx.global;
    // Honouring it would run one database's migrations on the whole file's
    // behalf, or the file's on it; ignoring it silently is worse (SPEC 17
    // names the databases by the file alone). DATABASE_URL in the
    // environment is ambient (a sandbox, a CI job) and stays ignored.
    if g.database_url_given {
        return Err(Error::config(
            Code::Usage,
            format!(
                "`fleet` takes its databases from --databases {}, one URL per line; --database-url names a single database",
                databases.databases.display()
            ),
        )
        .with_hint(
            "put the URL in the databases file, or run `migsafe apply --database-url …` for that one database; nothing ran",
        ));
    }
    let config = Config::load(g.config.as_deref(), &ctx.cwd)?;
    let list = read_databases(&ctx.cwd.join(&databases.databases))?;
    let quiet = g.quiet;
    Ok(Fleet::new(config, list)
        .with_events(Arc::new(Lines {
            json: ctx.json(),
            quiet,
        }))
        .with_database_events(Arc::new(move |db: &FleetDatabase| {
            if quiet {
                Arc::new(migsafe::events::NoEvents) as Arc<dyn EventSink>
            } else {
                Arc::new(Waits {
                    database: db.name.clone(),
                })
            }
        }))
        .with_interrupt(ctx.interrupt.clone()))
}

fn summary(command: &str, report: &FleetReport, options: Option<&FleetOptions>) {
    let count = |o: Outcome| report.databases.iter().filter(|d| d.outcome == o).count();
    let mut parts = vec![];
    for (outcome, word) in [
        (Outcome::Applied, "applied"),
        (Outcome::UpToDate, "up to date"),
        (Outcome::Pending, "pending"),
        (Outcome::Failed, "failed"),
        (Outcome::Interrupted, "interrupted"),
        (Outcome::NotStarted, "not started"),
    ] {
        let n = count(outcome);
        if n > 0 || matches!(outcome, Outcome::Failed) {
            parts.push(format!("{n} {word}"));
        }
    }
    out(&format!(
        "{command}: {} database(s): {}",
        report.databases.len(),
        parts.join(", ")
    ));
    let interrupted = migsafe::error::ReasonCode::new(Code::Interrupted).to_string();
    if report.stopped.as_ref() == Some(&interrupted) {
        out(&format!(
            "{}: stopped by Ctrl-C or a signal (SIGTERM, SIGHUP); no new database started, {} cut short (what committed stays: each database's history says so)",
            paint(YELLOW, &interrupted),
            report.interrupted
        ));
    } else if let (Some(stopped), Some(options)) = (&report.stopped, options) {
        out(&format!(
            "{}: no new database started after {} failure(s) (--max-failures {}, --canary {})",
            paint(RED, stopped),
            report.failed,
            options.max_failures,
            options.canary
        ));
    } else if let (Some(err), Some(_)) = (report.error(), options) {
        out(&format!(
            "{}: every database was tried; {} failed (each below with its own reason code)",
            paint(RED, err.reason().to_string()),
            report.failed
        ));
    } else if let (Some(err), None) = (report.status_error(), options) {
        out(&format!(
            "{}: {err} (each below with its own reason code)",
            paint(RED, err.reason().to_string()),
        ));
    }
    for failed in report
        .databases
        .iter()
        .filter(|d| matches!(d.outcome, Outcome::Failed | Outcome::Interrupted))
    {
        out(&format!(
            "  {}: {}{}{}",
            failed.database,
            failed.reason.as_deref().unwrap_or("failed"),
            if failed.outcome == Outcome::Interrupted {
                format!(
                    " (interrupted; committed: {})",
                    if failed.migrations.is_empty() {
                        "nothing".to_string()
                    } else {
                        failed.migrations.join(", ")
                    }
                )
            } else {
                String::new()
            },
            failed
                .log_dir
                .as_deref()
                .map(|d| format!(" (logs: {d})"))
                .unwrap_or_default()
        ));
    }
}

/// Runs `fleet apply` (exit 0 only when every database succeeded, else
/// [`FleetReport::error`]'s exit code, 2) or `fleet status` (exit 0 when
/// every database was read, else [`FleetReport::status_error`]'s, 5).
pub async fn exec(args: &Args, ctx: &Context<'_>) -> Result<i32> {
    match &args.action {
        Action::Apply {
            databases,
            canary,
            max_failures,
            selection,
            force,
            skip_backup,
            no_postflight,
        } => {
            let mut apply = apply_options(selection)?;
            apply.force = *force;
            apply.skip_backup = *skip_backup;
            apply.skip_postflight = *no_postflight;
            let options = FleetOptions {
                parallel: databases.parallel,
                canary: *canary,
                max_failures: *max_failures,
                target: ctx.target().map(str::to_string),
                apply,
            };
            // The fleet's own lines (a `fleet_database_done` per database)
            // go to <log-dir>/migrations.jsonl; each database logs under its
            // own directory.
            let log: Arc<dyn EventSink> = Arc::new(EventLog::open(&ctx.global.log_dir)?);
            let lines: Arc<dyn EventSink> = Arc::new(Lines {
                json: ctx.json(),
                quiet: ctx.global.quiet,
            });
            let fleet = fleet(ctx, databases)?
                .with_events(Arc::new(Fanout(vec![lines, log])))
                .with_log_dir(ctx.global.log_dir.clone())
                .with_backups(!skip_backup);
            let report = fleet.apply(&options).await?;
            if ctx.json() {
                json("fleet apply", &report);
            } else {
                summary("fleet apply", &report, Some(&options));
            }
            Ok(report.error().as_ref().map_or(0, Error::exit_code))
        }
        Action::Status { databases } => {
            let fleet = fleet(ctx, databases)?;
            let report = fleet.status(ctx.target(), databases.parallel).await?;
            if ctx.json() {
                json("fleet status", &report);
            } else {
                summary("fleet status", &report, None);
            }
            // Read-only and informational, as `status` is: the problems
            // are in the lines and the document. A Ctrl-C that left
            // databases unread says so (130); a database that could not
            // be read is a state nobody knows, which a monitoring script
            // must see (5).
            Ok(if report.stopped.is_some() {
                130
            } else {
                report.status_error().as_ref().map_or(0, Error::exit_code)
            })
        }
    }
}

/// `--parallel`: a count of databases at a time, 1 or more.
fn at_least_one(text: &str) -> std::result::Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("at least 1 database must be worked on at a time".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{text}` is not a whole number")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failure_line_carries_the_servers_error() {
        let message = "0002 create_orders failed:\nmigrations/0002_create_orders.up.sql:1:14: ERROR 42P07: relation \"orders\" already exists\n    | CREATE TABLE orders\n    DETAIL: x";
        assert_eq!(
            super::first_line(Some(message)),
            ": 0002 create_orders failed: migrations/0002_create_orders.up.sql:1:14: ERROR 42P07: relation \"orders\" already exists"
        );
        assert_eq!(
            super::first_line(Some("cannot connect: refused (08001)")),
            ": cannot connect: refused (08001)"
        );
        assert_eq!(super::first_line(None), "");
    }
}

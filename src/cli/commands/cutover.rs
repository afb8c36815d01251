//! `migsafe cutover sqlite precheck | run | verify`: calls the library and
//! renders its reports (human or JSON). Exit codes: precheck problems 1, a
//! failed load 2 (from the error), a verify mismatch 6.

use std::path::PathBuf;

use clap::Subcommand;

use migsafe::cutover::verify::VerifyReport;
use migsafe::cutover::{CutoverOptions, Problem};
use migsafe::error::Result;
use migsafe::migrator::{CutoverRunOptions, describe_problems};
use migsafe::report::Status;

use super::Context;
use crate::cli::output::{BOLD, DIM, GREEN, RED, YELLOW, json, out, paint};

/// `cutover` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the data comes from.
    #[command(subcommand)]
    pub source: Source,
}

/// Where a cutover's data comes from.
#[derive(Debug, Subcommand)]
pub enum Source {
    /// A SQLite file (only ever read; `run` loads from an online backup of it).
    Sqlite {
        /// The step.
        #[command(subcommand)]
        step: Step,
    },
}

/// The steps of a cutover.
#[derive(Debug, Subcommand)]
pub enum Step {
    /// What would stop an exact copy: missing tables or columns, values that do
    /// not fit their column, rows whose parent is missing. Exit 1 when any.
    Precheck {
        /// Source, schema, exclusions.
        #[command(flatten)]
        common: CommonArgs,
        /// When the target still has pending migrations, build the schema on a
        /// scratch database on this server (default: a sandbox).
        #[arg(long, value_name = "URL")]
        scratch_url: Option<String>,
    },
    /// Back up the file, apply the migrations, load every table by binary COPY,
    /// set sequences, verify. All or nothing.
    Run {
        /// Source, schema, exclusions.
        #[command(flatten)]
        common: CommonArgs,
        /// Empty the target tables first (default: refuse tables that hold rows).
        #[arg(long)]
        truncate: bool,
        /// Do not end with a verify.
        #[arg(long)]
        no_verify: bool,
        /// Skip the pg_dump backup of the target before its migrations run.
        /// (The online copy of the SQLite file is always made: the load
        /// reads that copy, so that it is of one state of the file.)
        #[arg(long)]
        skip_backup: bool,
    },
    /// Compare every table: row counts and a content hash on both sides.
    Verify {
        /// Source, schema, exclusions.
        #[command(flatten)]
        common: CommonArgs,
        /// Exit 6 when any table differs (default: report only).
        #[arg(long)]
        fail_on_mismatch: bool,
    },
}

/// Options of every cutover step.
#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// The SQLite database file.
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// The PostgreSQL schema holding the target tables.
    #[arg(long, default_value = "public", value_name = "SCHEMA")]
    pub schema: String,
    /// A SQLite table to leave out (repeatable).
    #[arg(long, value_name = "TABLE")]
    pub exclude: Vec<String>,
    /// Slices verify reads at once, each on its own connection to the
    /// target. (The load is one transaction on one connection; its index
    /// builds and precheck's reads use up to four threads of their own.)
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// How the numbers of a date column are read: s, ms, us (Unix time) or
    /// julian (Julian days), e.g. `events.created_at=ms` (repeatable; the
    /// same in precheck, run and verify). Default: detected from the values.
    #[arg(long, value_name = "[TABLE.]COLUMN=UNIT")]
    pub epoch_unit: Vec<migsafe::cutover::epoch::EpochChoice>,
}

fn options(common: &CommonArgs) -> CutoverOptions {
    CutoverOptions {
        from: common.from.clone(),
        schema: common.schema.clone(),
        exclude: common.exclude.clone(),
        jobs: usize::from(common.jobs),
        epoch_units: common.epoch_unit.clone(),
    }
}

fn verdict(status: Status, pass: &str, warn: &str, fail: &str) -> String {
    match status {
        Status::Pass => paint(GREEN, pass),
        Status::Warn => paint(YELLOW, warn),
        Status::Fail => paint(RED, fail),
    }
}

/// Runs one cutover step; returns the exit code.
pub async fn exec(args: &Args, ctx: &Context<'_>) -> Result<i32> {
    let Source::Sqlite { step } = &args.source;
    // Only `run` writes (the target's migrations and its rows).
    let migrator = ctx.migrator(matches!(step, Step::Run { .. }))?;
    let (target, json_format) = (ctx.target(), ctx.json());
    match step {
        Step::Precheck {
            common,
            scratch_url,
        } => {
            let report = migrator
                .cutover_precheck(target, &options(common), scratch_url.as_deref())
                .await?;
            if json_format {
                json("cutover", &report);
            } else {
                out(&paint(
                    BOLD,
                    format!("precheck of {} against {}", report.source, report.target),
                ));
                if report.schema_from == "scratch" {
                    out(&paint(
                        DIM,
                        "  (the target has pending migrations: its schema was built on a scratch database)",
                    ));
                }
                for table in &report.tables {
                    out(&format!("  {:<32} {:>12} rows", table.table, table.rows));
                }
                render_problems(&report.problems);
                out(&verdict(
                    report.result,
                    "precheck passed: the copy can be exact",
                    "precheck passed with warnings",
                    "precheck FAILED: the copy could not be exact",
                ));
            }
            Ok(if report.result == Status::Fail { 1 } else { 0 })
        }
        Step::Run {
            common,
            truncate,
            no_verify,
            skip_backup,
        } => {
            let run = CutoverRunOptions {
                cutover: options(common),
                truncate: *truncate,
                verify: !*no_verify,
                skip_backup: *skip_backup,
            };
            let report = migrator.cutover_run(target, &run).await?;
            if json_format {
                json("cutover", &report);
            } else {
                render_problems(&report.warnings);
                let rate = if report.rows >= crate::cli::progress::RATE_SHOWN_FROM {
                    let rate = report.rows as f64 / report.load_seconds.max(0.001);
                    format!(" ({} rows/s)", rate as u64)
                } else {
                    String::new()
                };
                out(&format!(
                    "loaded {} rows in {} table(s) in {:.1}s{rate} from {}",
                    report.rows,
                    report.tables.len(),
                    report.load_seconds,
                    report.backup
                ));
                if let Some(verify) = &report.verify {
                    render_verify(verify);
                } else {
                    out(&paint(
                        YELLOW,
                        "not verified (--no-verify): run `migsafe cutover sqlite verify`",
                    ));
                }
            }
            said_late_interrupt(ctx);
            Ok(if report.result == Status::Fail { 6 } else { 0 })
        }
        Step::Verify {
            common,
            fail_on_mismatch,
        } => {
            let report = migrator.cutover_verify(target, &options(common)).await?;
            if json_format {
                json("cutover", &report);
            } else {
                render_verify(&report);
            }
            said_late_interrupt(ctx);
            Ok(if report.result == Status::Fail && *fail_on_mismatch {
                6
            } else {
                0
            })
        }
    }
}

/// A Ctrl-C that came when nothing was left to stop: said, so that
/// "interrupted: stopping" followed by a full result is not read as a
/// partial one.
fn said_late_interrupt(ctx: &Context<'_>) {
    if ctx.interrupt.is_triggered() {
        crate::cli::output::err(
            "the interrupt came after every row had been read: nothing was cut short, the result above is complete",
        );
    }
}

fn render_problems(problems: &[Problem]) {
    if !problems.is_empty() {
        out(describe_problems(problems, 50).trim_end());
    }
}

fn render_verify(report: &VerifyReport) {
    for table in &report.tables {
        // A column PostgreSQL lacks is data that is not there, whatever
        // the columns both sides have say.
        let lacks_column = report.problems.iter().any(|p| p.table == table.table);
        let mark = if !table.matches {
            paint(RED, "DIFFERS")
        } else if lacks_column {
            paint(RED, "INCOMPLETE")
        } else {
            paint(GREEN, "same")
        };
        out(&format!(
            "  {mark} {:<32} {} rows in SQLite, {} in PostgreSQL {}",
            table.table,
            table.source_rows,
            table.target_rows,
            paint(DIM, &table.target_hash[..12.min(table.target_hash.len())])
        ));
        for difference in &table.differences {
            out(&format!("      {difference}"));
        }
        if !table.not_compared.is_empty() {
            out(&paint(
                DIM,
                format!(
                    "      not compared, no SQLite column feeds them (defaults, generated): {}",
                    table.not_compared.join(", ")
                ),
            ));
        }
    }
    render_problems(&report.problems);
    let differ = report.tables.iter().any(|t| !t.matches);
    let fail = match (differ, report.problems.is_empty()) {
        (true, true) => "verify FAILED: the tables above differ".to_string(),
        (true, false) => format!(
            "verify FAILED: the tables above differ, and {} table(s) or column(s) of SQLite are not in PostgreSQL",
            report.problems.len()
        ),
        (false, _) => format!(
            "verify FAILED: the rows compared are the same, but {} table(s) or column(s) of SQLite are not in PostgreSQL (listed above): their data is not there",
            report.problems.len()
        ),
    };
    let pass = if report.tables.iter().any(|t| !t.not_compared.is_empty()) {
        "verify passed: every table is identical in every column SQLite has"
    } else {
        "verify passed: every table is identical"
    };
    out(&verdict(
        report.result,
        pass,
        "verify passed with warnings",
        &fail,
    ));
}

//! `migsafe cutover sqlite precheck | run | verify`: calls the library and
//! renders its reports (human or JSON). Exit codes: precheck problems 1, a
//! failed load 2 (from the error), a verify mismatch 6.

use migsafe::Migrator;
use migsafe::cutover::verify::VerifyReport;
use migsafe::cutover::{CutoverOptions, Problem};
use migsafe::error::Result;
use migsafe::migrator::{CutoverRunOptions, describe_problems};
use migsafe::report::Status;

use super::args::{CutoverArgs, CutoverStep};
use super::output::{BOLD, DIM, GREEN, RED, YELLOW, json, out, paint};

fn options(common: &CutoverArgs) -> CutoverOptions {
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
pub async fn cutover(
    migrator: &Migrator,
    target: Option<&str>,
    step: &CutoverStep,
    json_format: bool,
) -> Result<i32> {
    match step {
        CutoverStep::Precheck {
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
        CutoverStep::Run {
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
                let rate = if report.load_seconds > 0.0 {
                    (report.rows as f64 / report.load_seconds) as u64
                } else {
                    report.rows
                };
                out(&format!(
                    "loaded {} rows in {} table(s) in {:.1}s ({rate} rows/s) from {}",
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
            Ok(if report.result == Status::Fail { 6 } else { 0 })
        }
        CutoverStep::Verify {
            common,
            fail_on_mismatch,
        } => {
            let report = migrator.cutover_verify(target, &options(common)).await?;
            if json_format {
                json("cutover", &report);
            } else {
                render_verify(&report);
            }
            Ok(if report.result == Status::Fail && *fail_on_mismatch {
                6
            } else {
                0
            })
        }
    }
}

fn render_problems(problems: &[Problem]) {
    if !problems.is_empty() {
        out(describe_problems(problems, 50).trim_end());
    }
}

fn render_verify(report: &VerifyReport) {
    for table in &report.tables {
        let mark = if table.matches {
            paint(GREEN, "same")
        } else {
            paint(RED, "DIFFERS")
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
    }
    render_problems(&report.problems);
    out(&verdict(
        report.result,
        "verify passed: every table is identical",
        "verify passed with warnings",
        "verify FAILED: the tables above differ",
    ));
}

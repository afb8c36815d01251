//! The thin command line: parse flags, call the library, render the result,
//! return the exit code. No migration logic lives here.

pub mod args;
pub mod backup;
pub mod cutover;
pub mod output;
pub mod progress;
pub mod sandbox;

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use migsafe::config::format_duration;
use migsafe::error::{Code, Error, Result};
use migsafe::events::{EventSink, Fanout, Interrupt};
use migsafe::pipeline::apply::{ApplyOptions, NamespaceRun};
use migsafe::pipeline::repair::RepairAction;
use migsafe::pipeline::rollback::RollbackOptions;
use migsafe::plan::{State, Tolerance};
use migsafe::report::EventLog;
use migsafe::source::Version;
use migsafe::source::scaffold;
use migsafe::{Config, Migrator};

use args::{Cli, Command, Format, SchemaAction, Selection};
use migsafe::report::{PhaseReport, Status};
use output::{BOLD, DIM, GREEN, RED, YELLOW, err, json, out, paint};

/// The name of a command for JSON documents and messages.
pub fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Init => "init",
        Command::New { .. } => "new",
        Command::Status => "status",
        Command::History => "history",
        Command::Plan(_) => "plan",
        Command::Apply(_) => "apply",
        Command::Rollback(_) => "rollback",
        Command::Stamp { .. } => "stamp",
        Command::Repair(_) => "repair",
        Command::Schema { .. } => "schema",
        Command::Preflight(_) => "preflight",
        Command::Postflight { .. } => "postflight",
        Command::Backup { .. } => "backup",
        Command::Verify { .. } => "verify",
        Command::Cutover { .. } => "cutover",
        Command::Lint { .. } => "lint",
        Command::Wait { .. } => "wait",
        Command::Check { .. } => "check",
        Command::Sandbox { .. } => "sandbox",
        Command::Demo => "demo",
    }
}

fn parse_version(text: &str) -> Result<Version> {
    Version::parse(text)
        .map_err(|e| Error::config(Code::Usage, format!("`{text}` is not a version: {e}")))
}

fn apply_options(selection: &Selection) -> Result<ApplyOptions> {
    Ok(ApplyOptions {
        steps: selection.steps,
        to: selection.to.as_deref().map(parse_version).transpose()?,
        tolerance: Tolerance {
            allow_out_of_order: selection.allow_out_of_order,
            ignore_missing: selection.ignore_missing,
            recover_dirty: false,
            recover: selection.recover,
        },
        ..ApplyOptions::default()
    })
}

/// Runs the parsed command; returns the exit code on success paths that are
/// not plain 0 (a plan that would be refused exits 1).
pub async fn run(cli: Cli, interrupt: Interrupt) -> Result<i32> {
    let g = &cli.global;
    let json_format = g.format == Format::Json;
    let cwd = std::env::current_dir()
        .map_err(|e| Error::io(Path::new("."), "read the working directory", &e))?;
    match &cli.command {
        Command::Init => {
            let done = scaffold::init(&cwd)?;
            if json_format {
                json("init", &done);
            } else {
                report_created("init", &done.created, false);
                for path in &done.updated {
                    out(&format!(
                        "updated {}: it now ignores {} (lines added at its end)",
                        path.display(),
                        scaffold::GITIGNORE_LINES.join(" and ")
                    ));
                }
            }
            return Ok(0);
        }
        Command::Sandbox { command } => {
            return sandbox::sandbox(command, interrupt, json_format).await;
        }
        Command::Demo => return sandbox::demo(interrupt).await,
        _ => {}
    }

    let config = Config::load(g.config.as_deref(), &cwd)?;
    let writes = matches!(
        cli.command,
        Command::Apply(ref a) if !a.sql
    ) || matches!(
        cli.command,
        Command::Rollback(_) | Command::Stamp { .. } | Command::Repair(_)
    ) || matches!(
        cli.command,
        Command::Cutover {
            source: args::CutoverSource::Sqlite {
                step: args::CutoverStep::Run { .. }
            }
        }
    );
    let mut sinks: Vec<Arc<dyn EventSink>> = Vec::new();
    if !g.quiet {
        sinks.push(Arc::new(progress::HumanProgress));
    }
    if writes {
        sinks.push(Arc::new(EventLog::open(&g.log_dir)?));
    }
    let migrator = Migrator::new(config)
        .with_database_url(g.database_url.clone())
        .with_events(Arc::new(Fanout(sinks)))
        .with_interrupt(interrupt)
        .with_log_dir(g.log_dir.clone());
    let target = g.target.as_deref();

    match &cli.command {
        Command::New { name } => {
            let selected = migrator.sources(target)?;
            if selected.len() != 1 {
                return Err(Error::config(
                    Code::Usage,
                    "`new` needs one namespace: name it with --target",
                ));
            }
            let (namespace, set) = &selected[0];
            let version = scaffold::next_version(set, chrono::Utc::now());
            let created = scaffold::new_migration(
                &namespace.dir,
                &version,
                name,
                namespace.forward_only || set.forward_only(),
            )?;
            report_created("new", &created, json_format);
        }
        Command::Status => {
            let states = migrator.status(target).await?;
            if json_format {
                #[derive(Serialize)]
                struct Body<'a> {
                    namespaces: Vec<StatusJson<'a>>,
                }
                #[derive(Serialize)]
                struct StatusJson<'a> {
                    #[serde(flatten)]
                    state: &'a migsafe::NamespaceState,
                    ignored: &'a [std::path::PathBuf],
                }
                json(
                    "status",
                    &Body {
                        namespaces: states
                            .iter()
                            .map(|(state, ignored)| StatusJson { state, ignored })
                            .collect(),
                    },
                );
            } else {
                for (state, ignored) in &states {
                    render_status(state, ignored, g.verbose > 0);
                }
            }
        }
        Command::History => {
            let histories = migrator.history(target).await?;
            if json_format {
                #[derive(Serialize)]
                struct Body {
                    namespaces: Vec<serde_json::Value>,
                }
                let namespaces = histories
                    .iter()
                    .map(|(ns, rows)| serde_json::json!({ "namespace": ns, "applied": rows }))
                    .collect();
                json("history", &Body { namespaces });
            } else {
                for (namespace, rows) in &histories {
                    out(&paint(
                        BOLD,
                        format!("{namespace} ({} applied)", rows.len()),
                    ));
                    for row in rows {
                        let dirty = if row.dirty {
                            paint(RED, " DIRTY")
                        } else {
                            String::new()
                        };
                        out(&format!(
                            "  {:<16} {:<36} {}  {:>8}  {}{dirty}",
                            row.version.as_str(),
                            row.name,
                            row.applied_at.format("%Y-%m-%d %H:%M:%S UTC"),
                            format_duration(std::time::Duration::from_millis(
                                u64::try_from(row.execution_ms).unwrap_or(0)
                            )),
                            row.applied_by
                        ));
                    }
                }
            }
        }
        Command::Plan(selection) => {
            let plans = migrator.plan(target, &apply_options(selection)?).await?;
            let refused = plans.iter().any(|p| p.refused.is_some());
            if json_format {
                #[derive(Serialize)]
                struct Body<'a> {
                    namespaces: &'a [migsafe::migrator::NamespacePlan],
                }
                json("plan", &Body { namespaces: &plans });
            } else {
                for plan in &plans {
                    render_plan(plan);
                }
            }
            return Ok(if refused { 1 } else { 0 });
        }
        Command::Apply(apply) => {
            let mut options = apply_options(&apply.selection)?;
            options.force = apply.force;
            options.skip_backup = apply.skip_backup;
            options.skip_postflight = apply.no_postflight;
            options.deep = apply.deep;
            if apply.sql {
                let script = migrator.apply_sql(target, &options).await?;
                if json_format {
                    json("apply", &serde_json::json!({ "sql": script }));
                } else {
                    print!("{}", migsafe::db::scrub(&script));
                }
                return Ok(0);
            }
            let report = migrator.apply(target, &options).await?;
            if json_format {
                json("apply", &report);
            } else {
                render_runs("apply", &report.namespaces, false, "applied", "up to date");
            }
        }
        Command::Rollback(rollback) => {
            let options = RollbackOptions {
                steps: rollback.steps,
                to: rollback.to.as_deref().map(parse_version).transpose()?,
                skip_backup: rollback.skip_backup,
            };
            let runs = migrator.rollback(target, &options).await?;
            render_runs(
                "rollback",
                &runs,
                json_format,
                "rolled back",
                "nothing to roll back",
            );
        }
        Command::Stamp { up_to } => {
            let version = parse_version(up_to)?;
            let stamped = migrator.stamp(target, &version).await?;
            if json_format {
                json("stamp", &serde_json::json!({ "stamped": stamped }));
            } else if stamped.is_empty() {
                out("nothing to stamp: every version up to it is already recorded");
            } else {
                out(&format!(
                    "recorded as applied without running: {}",
                    stamped.join(", ")
                ));
            }
        }
        Command::Repair(repair) => {
            let action = match (&repair.accept_checksum, &repair.clear_dirty, &repair.forget) {
                (Some(v), _, _) => RepairAction::AcceptChecksum(parse_version(v)?),
                (_, Some(v), _) => RepairAction::ClearDirty(parse_version(v)?),
                (_, _, Some(v)) => RepairAction::Forget(parse_version(v)?),
                _ => {
                    return Err(Error::config(
                        Code::Usage,
                        "give --accept-checksum, --clear-dirty or --forget",
                    ));
                }
            };
            let repaired = migrator.repair(target, &action, &repair.reason).await?;
            if json_format {
                json("repair", &serde_json::json!({ "repaired": repaired }));
            } else {
                for r in &repaired {
                    out(&format!(
                        "{}: {} {}{} (recorded in the audit table)",
                        r.namespace,
                        r.action,
                        r.version,
                        r.detail
                            .as_ref()
                            .map(|d| format!(": {d}"))
                            .unwrap_or_default()
                    ));
                }
            }
        }
        Command::Schema { action } => return schema(&migrator, target, action, json_format).await,
        Command::Preflight(selection) => {
            let reports = migrator
                .preflight(target, &apply_options(selection)?)
                .await?;
            let failed = reports.iter().any(|r| r.result == Status::Fail);
            if json_format {
                json("preflight", &serde_json::json!({ "reports": reports }));
            } else {
                for report in &reports {
                    render_phase(report);
                }
            }
            return Ok(if failed { 1 } else { 0 });
        }
        Command::Postflight { deep } => {
            let report = migrator.postflight(target, *deep).await?;
            if json_format {
                json("postflight", &report);
            } else {
                render_phase(&report);
            }
            return Ok(if report.result == Status::Fail { 3 } else { 0 });
        }
        Command::Backup { action } => {
            return backup::backup(&migrator, target, action, json_format).await;
        }
        Command::Check {
            profile,
            check_migrations,
        } => {
            let unmet = migrator.check(target, profile, *check_migrations).await?;
            if json_format {
                json(
                    "check",
                    &serde_json::json!({ "profile": profile, "ready": unmet.is_empty(), "unmet": unmet }),
                );
            } else if unmet.is_empty() {
                out(&format!(
                    "profile `{profile}`: {}",
                    paint(GREEN, "every rule is met")
                ));
            } else {
                for rule in &unmet {
                    out(&format!(
                        "{} {}",
                        paint(RED, format!("[{}]", rule.reason)),
                        rule.message
                    ));
                }
                out(&format!(
                    "profile `{profile}`: {} rule(s) not met; do not start the application",
                    unmet.len()
                ));
            }
            return Ok(if unmet.is_empty() { 0 } else { 7 });
        }
        Command::Wait { timeout, migrated } => {
            let took = migrator.wait(target, *timeout, *migrated).await?;
            if json_format {
                json(
                    "wait",
                    &serde_json::json!({ "ready": true, "waited_ms": took.as_millis() as u64 }),
                );
            } else {
                out(&format!(
                    "ready{} after {}",
                    if *migrated { " and fully migrated" } else { "" },
                    format_duration(took)
                ));
            }
        }
        Command::Lint { paths, rules_doc } => {
            if *rules_doc {
                print!("{}", migsafe::lint::docs::markdown());
                return Ok(0);
            }
            let report = migrator.lint(target, paths).await?;
            let errors = report
                .findings
                .iter()
                .filter(|f| f.severity == migsafe::lint::Severity::Error)
                .count();
            match g.format {
                Format::Json => json("lint", &report),
                Format::Github => {
                    for finding in &report.findings {
                        println!("{}", github_annotation(finding));
                    }
                }
                Format::Human => render_lint(&report),
            }
            return Ok(if errors > 0 { 1 } else { 0 });
        }
        Command::Verify {
            scratch_url,
            quick,
            strict,
            ..
        } => {
            let options = migsafe::verify::VerifyOptions {
                quick: *quick,
                strict: *strict,
                ..Default::default()
            };
            let report = migrator
                .verify(target, scratch_url.as_deref(), &options)
                .await?;
            if json_format {
                json("verify", &report);
            } else {
                for namespace in &report.namespaces {
                    let mode = if namespace.forward_only {
                        "forward-only: up only, nothing to reverse"
                    } else if options.quick {
                        "quick: all up, all down, all up; a down that misses what a later down removes still passes"
                    } else {
                        "each migration up, down, up"
                    };
                    out(&format!(
                        "{}: {} migration(s) verified ({mode})",
                        paint(BOLD, &namespace.namespace),
                        namespace.migrations.len()
                    ));
                }
                let details = migsafe::verify::describe(&report);
                if !details.is_empty() {
                    out(details.trim_end());
                }
                let (word, style) = match report.result {
                    Status::Pass => ("verify passed", GREEN),
                    Status::Warn => ("verify passed with warnings", YELLOW),
                    Status::Fail => ("verify FAILED", RED),
                };
                out(&format!(
                    "{} {}",
                    paint(style, word),
                    paint(
                        DIM,
                        format!(
                            "({}, on a scratch database: {})",
                            format_duration(std::time::Duration::from_millis(report.duration_ms)),
                            report.scratch
                        )
                    )
                ));
            }
            return Ok(report.exit_code());
        }
        Command::Cutover {
            source: args::CutoverSource::Sqlite { step },
        } => return cutover::cutover(&migrator, target, step, json_format).await,
        Command::Init | Command::Sandbox { .. } | Command::Demo => {}
    }
    Ok(0)
}

async fn schema(
    migrator: &Migrator,
    target: Option<&str>,
    action: &SchemaAction,
    json_format: bool,
) -> Result<i32> {
    match action {
        SchemaAction::Dump => {
            let snapshot = migrator.snapshot(target, None).await?;
            if json_format {
                json(
                    "schema dump",
                    &serde_json::json!({ "checksum": snapshot.checksum(), "objects": snapshot.objects }),
                );
            } else {
                print!("{}", migsafe::db::scrub(&snapshot.canonical_text()));
            }
        }
        SchemaAction::Checksum => {
            let snapshot = migrator.snapshot(target, None).await?;
            if json_format {
                json(
                    "schema checksum",
                    &serde_json::json!({ "checksum": snapshot.checksum(), "objects": snapshot.objects.len() }),
                );
            } else {
                out(&snapshot.checksum());
            }
        }
        SchemaAction::Diff {
            url_a,
            url_b,
            exit_code,
        } => {
            let (a, b) = tokio::join!(
                migrator.snapshot(None, Some(url_a)),
                migrator.snapshot(None, Some(url_b))
            );
            let (a, b) = (a?, b?);
            let changes = migsafe::schema::diff(&a, &b);
            if json_format {
                json(
                    "schema diff",
                    &serde_json::json!({
                        "checksum_a": a.checksum(),
                        "checksum_b": b.checksum(),
                        "identical": changes.is_empty(),
                        "changes": changes,
                    }),
                );
            } else if changes.is_empty() {
                out(&format!(
                    "identical schemas ({} objects, checksum {})",
                    a.objects.len(),
                    a.checksum()
                ));
            } else {
                print!(
                    "{}",
                    migsafe::db::scrub(&migsafe::schema::diff::render(&changes))
                );
                err(&format!("{} difference(s)", changes.len()));
            }
            if *exit_code && !changes.is_empty() {
                return Ok(6);
            }
        }
    }
    Ok(0)
}

fn render_lint(report: &migsafe::migrator::LintReport) {
    for finding in &report.findings {
        render_finding(finding);
    }
    let errors = report
        .findings
        .iter()
        .filter(|f| f.severity == migsafe::lint::Severity::Error)
        .count();
    let warnings = report.findings.len() - errors;
    let sizes = report
        .database
        .as_ref()
        .map(|d| format!(", live table sizes from {d}"))
        .unwrap_or_default();
    out(&format!(
        "{errors} error(s), {warnings} warning(s) in {} file(s){sizes}",
        report.files
    ));
}

fn render_finding(finding: &migsafe::lint::Finding) {
    let (label, style) = match finding.severity {
        migsafe::lint::Severity::Error => ("error", RED),
        migsafe::lint::Severity::Warning => ("warning", YELLOW),
    };
    out(&format!(
        "{}:{}:{}: {}: {}",
        finding.path.display(),
        finding.line,
        finding.column,
        paint(style, format!("{label}[{}]", finding.rule)),
        finding.message
    ));
    if !finding.statement.is_empty() {
        out(&format!("    | {}", finding.statement));
    }
    out(&format!("    = {} {}", paint(BOLD, "fix:"), finding.help));
}

/// A GitHub Actions workflow command: `::error file=…,line=…,col=…,title=…::message`.
fn github_annotation(finding: &migsafe::lint::Finding) -> String {
    let escape = |text: &str| {
        text.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let property = |text: &str| escape(text).replace(':', "%3A").replace(',', "%2C");
    let level = match finding.severity {
        migsafe::lint::Severity::Error => "error",
        migsafe::lint::Severity::Warning => "warning",
    };
    format!(
        "::{level} file={},line={},col={},title={}::{} (fix: {})",
        property(&finding.path.display().to_string()),
        finding.line,
        finding.column,
        property(finding.rule),
        escape(&finding.message),
        escape(finding.help)
    )
}

fn render_phase(report: &PhaseReport) {
    out(&paint(
        BOLD,
        format!("{} of {}", report.phase, report.database),
    ));
    for check in &report.checks {
        let (label, style) = match check.status {
            Status::Pass => ("pass", GREEN),
            Status::Warn => ("warn", YELLOW),
            Status::Fail => ("FAIL", RED),
        };
        let reason = check
            .reason
            .as_ref()
            .map(|r| format!(" [{r}]"))
            .unwrap_or_default();
        let detail = check.detail.replace('\n', "\n        ");
        out(&format!(
            "  {} {}{}: {detail}",
            paint(style, label),
            check.check,
            paint(DIM, reason)
        ));
    }
    render_phase_summary(report);
}

fn render_phase_summary(report: &PhaseReport) {
    let (word, style) = match report.result {
        Status::Pass => ("passed", GREEN),
        Status::Warn => ("passed with warnings", YELLOW),
        Status::Fail if report.forced => ("FAILED (forced past)", RED),
        Status::Fail => ("FAILED", RED),
    };
    let path = report
        .path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    out(&format!(
        "{} {} {}",
        report.phase,
        paint(style, word),
        paint(DIM, format!("({path})"))
    ));
}

fn report_created(command: &str, created: &[std::path::PathBuf], json_format: bool) {
    if json_format {
        json(command, &serde_json::json!({ "created": created }));
    } else {
        for path in created {
            out(&format!("created {}", path.display()));
        }
    }
}

fn render_status(state: &migsafe::NamespaceState, ignored: &[std::path::PathBuf], verbose: bool) {
    let count = |s: State| state.in_state(s).count();
    let pending = count(State::Pending) + count(State::OutOfOrder);
    let mut summary = format!(
        "{} applied, {pending} pending",
        // A dirty migration is not applied: it stopped part-way.
        count(State::Applied) + count(State::ChecksumMismatch) + count(State::FileMissing)
    );
    for (s, label) in [
        (State::Dirty, "dirty"),
        (State::ChecksumMismatch, "edited after apply"),
        (State::FileMissing, "file missing"),
        (State::OutOfOrder, "out of order"),
    ] {
        if count(s) > 0 {
            summary.push_str(&format!(", {} {label}", count(s)));
        }
    }
    let mode = if state.forward_only {
        ", forward-only"
    } else {
        ""
    };
    out(&format!(
        "{} ({summary}{mode})",
        paint(BOLD, &state.namespace)
    ));
    for entry in &state.entries {
        let (label, style) = match entry.state {
            State::Applied => ("applied", GREEN),
            State::Pending => ("pending", YELLOW),
            State::OutOfOrder => ("OUT OF ORDER", RED),
            State::Dirty => ("DIRTY", RED),
            State::ChecksumMismatch => ("EDITED", RED),
            State::FileMissing => ("FILE MISSING", RED),
        };
        let when = entry
            .applied
            .as_ref()
            .map(|r| format!("  {}", r.applied_at.format("%Y-%m-%d %H:%M:%S UTC")))
            .unwrap_or_default();
        let notes = if entry.no_transaction {
            "  no-transaction"
        } else {
            ""
        };
        let line = format!(
            "  {} {:<16} {:<36}{}{}",
            // Padded before painting: escape codes must not count as width.
            paint(style, format!("{label:<12}")),
            entry.version.as_str(),
            entry.name,
            paint(DIM, when),
            paint(DIM, notes)
        );
        out(line.trim_end());
    }
    if verbose {
        for entry in &state.entries {
            let Some(down) = entry.migration.as_ref().and_then(|m| m.down.as_ref()) else {
                continue;
            };
            let file = down
                .path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !file.contains(&entry.name) && !file.starts_with("down.") {
                out(&format!(
                    "  {} {} pairs by version with {file}",
                    paint(DIM, format!("{:<12}", "note")),
                    entry.version.as_str()
                ));
            }
        }
        for path in ignored {
            out(&format!(
                "  {} {}",
                paint(DIM, format!("{:<12}", "ignored")),
                path.display()
            ));
        }
    }
}

fn render_plan(plan: &migsafe::migrator::NamespacePlan) {
    for version in &plan.recover {
        out(&format!(
            "{}: {} {version} is dirty; after preflight and the backup, apply rolls it back with its down script and applies it again",
            paint(BOLD, &plan.namespace),
            paint(YELLOW, "recover:")
        ));
    }
    if plan.migrations.is_empty() {
        out(&format!(
            "{}: nothing to apply",
            paint(BOLD, &plan.namespace)
        ));
    } else {
        out(&format!(
            "{}: {} migration(s) to apply, in this order:",
            paint(BOLD, &plan.namespace),
            plan.migrations.len()
        ));
        for m in &plan.migrations {
            let timeout = if m.statement_timeout_ms > 0 {
                format!(
                    ", statement_timeout {}",
                    format_duration(std::time::Duration::from_millis(m.statement_timeout_ms))
                )
            } else {
                String::new()
            };
            out(&format!(
                "  {:<16} {:<36} {}",
                m.version,
                m.name,
                paint(
                    DIM,
                    format!(
                        "{}{}, lock_timeout {}{timeout}{}",
                        m.mode,
                        m.inferred
                            .map(|why| format!(" (inferred: {why})"))
                            .unwrap_or_default(),
                        format_duration(std::time::Duration::from_millis(m.lock_timeout_ms)),
                        if m.reversible { "" } else { ", no down script" }
                    )
                )
            ));
        }
    }
    for finding in &plan.findings {
        render_finding(finding);
    }
    if let Some(refused) = &plan.refused {
        out(&format!(
            "  {} {}: {}",
            paint(RED, "apply would refuse:"),
            refused.reason,
            refused.message
        ));
        if let Some(hint) = &refused.hint {
            out(&format!("  {} {hint}", paint(BOLD, "next:")));
        }
    }
}

fn render_runs(command: &str, runs: &[NamespaceRun], json_format: bool, done: &str, nothing: &str) {
    if json_format {
        json(command, &serde_json::json!({ "namespaces": runs }));
        return;
    }
    for run in runs {
        if run.ran.is_empty() {
            out(&format!("{}: {nothing}", run.namespace));
        } else {
            out(&format!(
                "{}: {done} {} migration(s) in {}",
                run.namespace,
                run.ran.len(),
                format_duration(std::time::Duration::from_millis(run.duration_ms))
            ));
        }
    }
}

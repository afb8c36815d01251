//! Rendering results for people (colour on a terminal) and programs (one
//! JSON document on stdout). Everything printed passes through `scrub`.

use anstyle::{AnsiColor, Style};
use serde::Serialize;

use migsafe::config::format_duration;
use migsafe::db::scrub;
use migsafe::error::Error;
use migsafe::pipeline::apply::NamespaceRun;
use migsafe::report::{PhaseReport, Status};

/// Bump when a JSON document changes incompatibly.
pub const SCHEMA_VERSION: u32 = 1;

pub const GREEN: Style = AnsiColor::Green.on_default();
pub const YELLOW: Style = AnsiColor::Yellow.on_default();
pub const RED: Style = AnsiColor::Red.on_default().bold();
pub const DIM: Style = Style::new().dimmed();
pub const BOLD: Style = Style::new().bold();

/// Wraps text in a style (stripped by anstream when not on a terminal).
pub fn paint(style: Style, text: impl std::fmt::Display) -> String {
    format!("{style}{text}{style:#}")
}

/// Prints a result line on stdout. A closed stream (a dropped ssh session,
/// `| head`) is ignored: printing must never stop a migration half-way.
pub fn out(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(anstream::stdout(), "{}", scrub(text));
}

/// Prints a diagnostic line on stderr (a closed stream is ignored, as for
/// [`out`]).
pub fn err(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(anstream::stderr(), "{}", scrub(text));
}

#[derive(Serialize)]
struct Document<'a, T: Serialize> {
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_version: Option<u32>,
    command: &'a str,
    #[serde(flatten)]
    body: &'a T,
}

/// Prints the one JSON document of a command: `schema_version`, `command`,
/// then the body's fields in their order. A body that is a report with its
/// own `schema_version` keeps that one (one key, not two).
pub fn json<T: Serialize>(command: &str, body: &T) {
    let own_version = matches!(
        serde_json::to_value(body),
        Ok(serde_json::Value::Object(fields)) if fields.contains_key("schema_version")
    );
    let document = Document {
        schema_version: (!own_version).then_some(SCHEMA_VERSION),
        command,
        body,
    };
    match serde_json::to_string_pretty(&document) {
        Ok(text) => {
            use std::io::Write as _;
            let _ = writeln!(std::io::stdout(), "{}", scrub(&text));
        }
        Err(e) => err(&format!("cannot render JSON: {e}")),
    }
}

/// What committed in each namespace before a failure, as the runs'
/// `run_finished` events said: the error document carries it, so that a
/// pipeline reading JSON knows what landed although the command failed.
static COMMITTED: std::sync::Mutex<Vec<Committed>> = std::sync::Mutex::new(Vec::new());

/// One namespace's committed versions.
#[derive(Debug, Clone, Serialize)]
struct Committed {
    command: String,
    namespace: String,
    versions: Vec<String>,
}

/// The sink that remembers what committed (see [`COMMITTED`]).
pub struct CommittedRuns;

impl migsafe::events::EventSink for CommittedRuns {
    fn emit(&self, event: &migsafe::events::Event) {
        if let migsafe::events::Event::RunFinished {
            command,
            namespace,
            versions,
            ..
        } = event
            && !versions.is_empty()
            && let Ok(mut seen) = COMMITTED.lock()
        {
            seen.push(Committed {
                command: command.clone(),
                namespace: namespace.clone(),
                versions: versions.clone(),
            });
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorJson<'a>,
    /// What committed before the failure (apply, rollback), per namespace.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    committed: Vec<Committed>,
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    reason: String,
    message: String,
    hint: Option<&'a str>,
    exit_code: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    problems: Option<&'a [migsafe::error::FileProblem]>,
}

/// Prints a failure: `error[REASON]: message` and the hint on stderr, or the
/// JSON error document on stdout.
pub fn error(command: &str, error: &Error, json_format: bool) {
    if json_format {
        let problems = match error {
            Error::Source { problems, .. } => Some(problems.as_slice()),
            _ => None,
        };
        json(
            command,
            &ErrorBody {
                error: ErrorJson {
                    reason: error.reason().to_string(),
                    message: error.to_string(),
                    hint: error.hint(),
                    exit_code: error.exit_code(),
                    problems,
                },
                committed: COMMITTED.lock().map(|c| c.clone()).unwrap_or_default(),
            },
        );
        return;
    }
    let head = paint(RED, format!("error[{}]", error.reason()));
    let message = error.to_string();
    let mut lines = message.lines();
    err(&format!("{head}: {}", lines.next().unwrap_or("")));
    for line in lines {
        err(&format!("  {line}"));
    }
    if let Some(hint) = error.hint() {
        err(&format!("  {} {hint}", paint(BOLD, "next:")));
    }
}

/// `created <path>` per file, or `{"created": […]}`.
pub fn report_created(command: &str, created: &[std::path::PathBuf], json_format: bool) {
    if json_format {
        json(command, &serde_json::json!({ "created": created }));
    } else {
        for path in created {
            out(&format!("created {}", path.display()));
        }
    }
}

/// One lint finding, compiler style: where, rule, statement, fix.
pub fn render_finding(finding: &migsafe::lint::Finding) {
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

/// A preflight or postflight report: every check, then the verdict.
pub fn render_phase(report: &PhaseReport) {
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

/// What apply or rollback did, per namespace.
pub fn render_runs(
    command: &str,
    runs: &[NamespaceRun],
    json_format: bool,
    done: &str,
    nothing: &str,
) {
    if json_format {
        json(command, &serde_json::json!({ "namespaces": runs }));
        return;
    }
    for run in runs {
        if run.ran.is_empty() {
            out(&format!("{}: {nothing}", run.namespace));
        } else {
            let marked = run.ran.iter().filter(|r| r.marked_ran).count();
            out(&format!(
                "{}: {done} {} migration(s){} in {}",
                run.namespace,
                run.ran.len(),
                if marked > 0 {
                    format!(" ({marked} of them not run: their precondition said MARK_RAN)")
                } else {
                    String::new()
                },
                format_duration(std::time::Duration::from_millis(run.duration_ms))
            ));
        }
    }
}

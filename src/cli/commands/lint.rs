//! `migsafe lint [PATHS…]`: the lint rules over files or namespaces
//! (pending migrations by default when a database is given), as compiler
//! style text, JSON or GitHub annotations; exit 1 on any error.

use clap::Args as ClapArgs;

use migsafe::error::Result;

use super::Context;
use crate::cli::args::Format;
use crate::cli::output::{YELLOW, json, out, paint, render_finding};

/// `lint` options.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// SQL files, migrations directories or namespace names [default: the
    /// selected namespaces].
    pub paths: Vec<String>,
    /// Print docs/lint.md, generated from the rules.
    #[arg(long, hide = true)]
    pub rules_doc: bool,
}

/// Lints and prints the findings in the chosen format.
pub async fn exec(args: &Args, ctx: &Context<'_>) -> Result<i32> {
    let migrator = ctx.migrator(false)?;
    if args.rules_doc {
        print!("{}", migsafe::lint::docs::markdown());
        return Ok(0);
    }
    let report = migrator.lint(ctx.target(), &args.paths).await?;
    let errors = report
        .findings
        .iter()
        .filter(|f| f.severity == migsafe::lint::Severity::Error)
        .count();
    match ctx.global.format {
        Format::Json => json("lint", &report),
        Format::Github => {
            for finding in &report.findings {
                println!("{}", github_annotation(finding));
            }
            for dir in &report.empty_dirs {
                println!(
                    "::warning title=migsafe lint::{dir} holds no migration: nothing in it was linted"
                );
            }
        }
        Format::Human => render_lint(&report),
    }
    Ok(if errors > 0 { 1 } else { 0 })
}

fn render_lint(report: &migsafe::migrator::LintReport) {
    for finding in &report.findings {
        render_finding(finding);
    }
    for dir in &report.empty_dirs {
        out(&format!(
            "{} {dir} holds no migration: nothing in it was linted (a wrong path?)",
            paint(YELLOW, "warning:")
        ));
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
    let empty = match report.empty_dirs.len() {
        0 => String::new(),
        n => format!("; {n} director(ies) held no migration"),
    };
    out(&format!(
        "{errors} error(s), {warnings} warning(s) in {} file(s){sizes}{empty}",
        report.files
    ));
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

//! Running the rules over scripts, in plan order.
//!
//! Each script is split into statements by the PostgreSQL scanner and every
//! statement is parsed on its own, so an unparseable statement is reported
//! with the parser's message and the statements around it are still linted.
//! Suppressions come from the file header: `-- migsafe:allow <rule> -- <reason>`;
//! one without a reason is itself a finding.

use std::path::PathBuf;

use serde::Serialize;

use super::context::Context;
use super::rules;
use crate::source::directives::Allow;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing.
    Warning,
    /// Fails `lint` and preflight.
    Error,
}

/// One script to lint.
#[derive(Debug, Clone)]
pub struct Script {
    /// Its file.
    pub path: PathBuf,
    /// Its text.
    pub sql: String,
    /// 1-based line of the file where `sql` starts.
    pub first_line: usize,
    /// Runs inside a transaction.
    pub transactional: bool,
    /// Its suppressions.
    pub allows: Vec<Allow>,
    /// `-- migsafe:lock-timeout` of its header, when given.
    pub lock_timeout: Option<std::time::Duration>,
    /// Namespace and version, for preflight's reason codes.
    pub migration: Option<(String, String)>,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Rule id.
    pub rule: &'static str,
    /// Severity.
    pub severity: Severity,
    /// What happens in PostgreSQL, with the table and its size when known.
    pub message: String,
    /// The safe alternative, in short.
    pub help: &'static str,
    /// The file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The statement, shortened.
    pub statement: String,
    /// Namespace and version, when linting migrations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration: Option<(String, String)>,
}

impl Script {
    /// The up script of a migration, as the linter sees it.
    pub fn of(namespace: &str, migration: &crate::source::Migration) -> Script {
        Script {
            path: migration.up.path.clone(),
            sql: migration.up.sql.clone(),
            first_line: migration.up.first_line,
            transactional: !migration.up.no_transaction(),
            allows: migration.up.directives.allows.clone(),
            lock_timeout: migration.up.directives.lock_timeout,
            migration: Some((namespace.to_string(), migration.version.to_string())),
        }
    }

    /// A loose SQL file.
    pub fn file(path: &std::path::Path) -> crate::error::Result<Script> {
        let bytes = std::fs::read(path).map_err(|e| crate::error::Error::io(path, "read", &e))?;
        let sql = crate::source::checksum::normalize(&bytes).map_err(|m| {
            crate::error::Error::config(
                crate::error::Code::MigrationFileInvalid,
                format!("{}: {m}", path.display()),
            )
        })?;
        let directives = crate::source::directives::parse(&sql).map_err(|m| {
            crate::error::Error::config(
                crate::error::Code::MigrationFileInvalid,
                format!("{}: {m}", path.display()),
            )
        })?;
        Ok(Script {
            path: path.to_path_buf(),
            sql,
            first_line: 1,
            transactional: !directives.no_transaction,
            allows: directives.allows,
            lock_timeout: directives.lock_timeout,
            migration: None,
        })
    }
}

/// Lints scripts in order: tables created by earlier statements count as new
/// for later ones.
pub fn lint(scripts: &[Script], base: &Context) -> Vec<Finding> {
    let mut context = base.clone();
    let mut findings = Vec::new();
    for script in scripts {
        context.transactional = script.transactional;
        lint_script(script, &mut context, &mut findings);
    }
    findings
}

/// Statements with their byte offsets, by the scanner (falls back to the
/// whole text when even the scanner cannot read it).
fn statements(sql: &str) -> Vec<(usize, &str)> {
    match pg_query::split_with_scanner(sql) {
        Ok(parts) => parts
            .into_iter()
            .map(|part| {
                let offset = part.as_ptr() as usize - sql.as_ptr() as usize;
                let skip = leading_comments(part);
                (offset + skip, &part[skip..])
            })
            .filter(|(_, text)| !text.trim().is_empty())
            .collect(),
        Err(_) => vec![(0, sql)],
    }
}

/// Bytes of whitespace and comments before the first token of a statement,
/// read with the scanner, so positions and excerpts point at the SQL itself.
fn leading_comments(part: &str) -> usize {
    use pg_query::protobuf::Token;
    let first = pg_query::scan(part).ok().and_then(|scan| {
        scan.tokens
            .iter()
            .find(|t| t.token != Token::SqlComment as i32 && t.token != Token::CComment as i32)
            .map(|t| usize::try_from(t.start).unwrap_or(0))
    });
    match first {
        Some(start) if part.is_char_boundary(start) => start,
        _ => part.len() - part.trim_start().len(),
    }
}

fn lint_script(script: &Script, context: &mut Context, findings: &mut Vec<Finding>) {
    for allow in script.allows.iter().filter(|a| a.reason.trim().is_empty()) {
        findings.push(Finding {
            rule: "allow-without-reason",
            severity: Severity::Warning,
            message: format!(
                "`migsafe:allow {}` gives no reason; say why the finding is acceptable",
                allow.rule
            ),
            help: "write `-- migsafe:allow <rule> -- <reason>`",
            path: script.path.clone(),
            line: allow.line + script.first_line - 1,
            column: 1,
            statement: String::new(),
            migration: script.migration.clone(),
        });
    }
    let allowed = |rule: &str| {
        script
            .allows
            .iter()
            .any(|a| a.rule == rule && !a.reason.trim().is_empty())
    };
    if script.lock_timeout == Some(std::time::Duration::ZERO) && !allowed("lock-timeout-disabled") {
        let rule = &rules::lock_timeout_disabled::LockTimeoutDisabled as &dyn rules::Rule;
        findings.push(Finding {
            rule: rule.id(),
            severity: rule.severity(),
            message: "`-- migsafe:lock-timeout 0` turns off the lock_timeout migsafe sets: DDL here may wait for its lock forever, with every query on the table queued behind it".into(),
            help: rule.help(),
            path: script.path.clone(),
            line: script.first_line,
            column: 1,
            statement: String::new(),
            migration: script.migration.clone(),
        });
    }
    for (offset, text) in statements(&script.sql) {
        let (line, column) = position(&script.sql, offset, script.first_line);
        let excerpt = shorten(text);
        let parsed = match pg_query::parse(text, 0) {
            Ok(parsed) => parsed,
            Err(err) => {
                findings.push(Finding {
                    rule: "syntax-error",
                    severity: Severity::Error,
                    message: format!("the PostgreSQL grammar cannot read this statement: {err}"),
                    help: "fix the SQL",
                    path: script.path.clone(),
                    line,
                    column,
                    statement: excerpt,
                    migration: script.migration.clone(),
                });
                continue;
            }
        };
        for raw in &parsed.protobuf.stmts {
            let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
                continue;
            };
            for rule in rules::all() {
                if script
                    .allows
                    .iter()
                    .any(|a| a.rule == rule.id() && !a.reason.trim().is_empty())
                {
                    continue;
                }
                for hit in rule.check(node, context) {
                    findings.push(Finding {
                        rule: rule.id(),
                        severity: hit.severity.unwrap_or(rule.severity()),
                        message: hit.message,
                        help: rule.help(),
                        path: script.path.clone(),
                        line,
                        column,
                        statement: excerpt.clone(),
                        migration: script.migration.clone(),
                    });
                }
            }
            // Later statements may use the tables this one creates.
            if let pg_query::NodeEnum::CreateStmt(create) = node
                && let Some(relation) = &create.relation
            {
                context.created.insert(relation.relname.to_lowercase());
            }
        }
    }
}

fn position(sql: &str, offset: usize, first_line: usize) -> (usize, usize) {
    let head = &sql[..offset.min(sql.len())];
    let line = head.matches('\n').count() + first_line;
    let column = head.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn shorten(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 120 {
        format!("{}…", one_line.chars().take(119).collect::<String>())
    } else {
        one_line
    }
}

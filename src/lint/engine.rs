//! Running the rules over scripts, in plan order.
//!
//! Each script is split into statements by the PostgreSQL scanner and every
//! statement is parsed on its own, so an unparseable statement is reported
//! (`syntax-error`, at the parser's cursor) and the statements around it are
//! still linted. After a syntax error linting resumes after the next `;`,
//! because the scanner's split keeps an unclosed parenthesis open to the end
//! of the file and would otherwise hide everything after it.
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
    /// Runs in its online form (SPEC 15): statements with one are not flagged.
    pub online: bool,
    /// Flyway placeholders without a value: (line in the file, `${name}`).
    pub unresolved_placeholders: Vec<crate::source::directives::UnresolvedPlaceholder>,
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
            online: migration.up.directives.online,
            unresolved_placeholders: migration.up.directives.unresolved_placeholders.clone(),
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
            online: directives.online,
            unresolved_placeholders: Vec::new(),
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

/// Statements with their byte offsets, by the scanner, and whether the
/// scanner could read the text. The splitter leaves out text after an
/// unclosed parenthesis; that rest is returned as one more statement, so the
/// grammar reports it instead of lint passing over it in silence. When even
/// the scanner cannot read the text (an unterminated quote), it is returned
/// whole.
fn statements(sql: &str) -> (Vec<(usize, &str)>, bool) {
    let Ok(parts) = pg_query::split_with_scanner(sql) else {
        return (vec![(0, sql)], false);
    };
    let mut end = 0;
    let mut found = Vec::new();
    for part in parts {
        let offset = part.as_ptr() as usize - sql.as_ptr() as usize;
        end = offset + part.len();
        let skip = first_token(part);
        if !part[skip..].trim().is_empty() {
            found.push((offset + skip, &part[skip..]));
        }
    }
    let tail = &sql[end..];
    let skip = first_token(tail);
    if skip < tail.len() {
        found.push((end + skip, &tail[skip..]));
    }
    (found, true)
}

/// Bytes of whitespace, comments and empty statements (`;`) before the
/// first token of a statement, read with the scanner, so positions and
/// excerpts point at the SQL itself.
fn first_token(part: &str) -> usize {
    use pg_query::protobuf::Token;
    let first = pg_query::scan(part).ok().map(|scan| {
        scan.tokens
            .iter()
            .find(|t| {
                t.token != Token::SqlComment as i32
                    && t.token != Token::CComment as i32
                    && t.token != Token::Ascii59 as i32
            })
            .map_or(part.len(), |t| usize::try_from(t.start).unwrap_or(0))
    });
    match first {
        Some(start) if part.is_char_boundary(start) => start,
        _ => part.len() - part.trim_start().len(),
    }
}

/// The byte offset just after the first `;` at or after `from`, whatever the
/// parentheses around it: where linting resumes after a syntax error.
fn after_next_terminator(sql: &str, from: usize) -> Option<usize> {
    use pg_query::protobuf::Token;
    let rest = sql.get(from..)?;
    let scan = pg_query::scan(rest).ok()?;
    let semicolon = scan
        .tokens
        .iter()
        .find(|t| t.token == Token::Ascii59 as i32)?;
    Some(from + usize::try_from(semicolon.end).ok()?)
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
    // A Flyway script with a placeholder that has no value cannot run (and
    // does not parse): said as that, not as a syntax error to correct.
    if !script.unresolved_placeholders.is_empty() {
        for placeholder in &script.unresolved_placeholders {
            findings.push(Finding {
                rule: "placeholder-without-value",
                severity: Severity::Error,
                message: format!(
                    "the Flyway placeholder `{}` has no value: apply refuses the script until it has one",
                    placeholder.name
                ),
                help: "give it a value: [flyway.placeholders] in flyway.toml (flyway.placeholders.<name> in flyway.conf), FLYWAY_PLACEHOLDERS_<NAME>, or [placeholders] in migsafe.toml",
                path: script.path.clone(),
                line: placeholder.line,
                column: placeholder.column,
                statement: placeholder.name.clone(),
                migration: script.migration.clone(),
            });
        }
        return;
    }
    let mut from = 0;
    while from < script.sql.len() {
        let (found, scanned) = statements(&script.sql[from..]);
        let mut resume = None;
        for (offset, text) in found {
            let offset = from + offset;
            match pg_query::parse(text, 0) {
                Ok(parsed) => lint_statement(script, &parsed, offset, text, context, findings),
                Err(err) => {
                    let at = syntax_error(script, offset, text, &err, findings);
                    // The rest of this piece may hold statements the splitter
                    // merged into it; start again after the next `;`.
                    resume = if scanned {
                        after_next_terminator(&script.sql, at)
                    } else {
                        None
                    };
                    break;
                }
            }
        }
        match resume {
            Some(next) if next > from => from = next,
            _ => break,
        }
    }
}

/// Reports a `syntax-error` at the parser's cursor; returns its byte offset
/// in the script.
fn syntax_error(
    script: &Script,
    offset: usize,
    text: &str,
    err: &pg_query::Error,
    findings: &mut Vec<Finding>,
) -> usize {
    let rule = &rules::syntax_error::SyntaxError as &dyn rules::Rule;
    let located = rules::syntax_error::locate(text);
    let message = located
        .as_ref()
        .map_or_else(|| err.to_string(), |l| l.message.clone());
    let at = offset + located.and_then(|l| l.offset).unwrap_or(0);
    let (line, column) = position(&script.sql, at, script.first_line);
    let statement_end = after_next_terminator(&script.sql, at).unwrap_or(script.sql.len());
    findings.push(Finding {
        rule: rule.id(),
        severity: rule.severity(),
        message: format!(
            "the PostgreSQL grammar cannot read this statement: {message} (the server would reject it too); the statements after the next `;` are still linted"
        ),
        help: rule.help(),
        path: script.path.clone(),
        line,
        column,
        statement: shorten(script.sql.get(offset..statement_end).unwrap_or(text)),
        migration: script.migration.clone(),
    });
    at
}

/// Runs every rule over one parsed statement found at `offset`.
fn lint_statement(
    script: &Script,
    parsed: &pg_query::ParseResult,
    offset: usize,
    text: &str,
    context: &mut Context,
    findings: &mut Vec<Finding>,
) {
    let (line, column) = position(&script.sql, offset, script.first_line);
    let excerpt = shorten(text);
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
                let message = match super::online::judge(rule.id(), node, context, script.online) {
                    super::online::Verdict::Drop => continue,
                    super::online::Verdict::Note(note) => format!("{}{note}", hit.message),
                    super::online::Verdict::Keep => hit.message,
                };
                findings.push(Finding {
                    rule: rule.id(),
                    severity: hit.severity.unwrap_or(rule.severity()),
                    message,
                    help: rule.help(),
                    path: script.path.clone(),
                    line,
                    column,
                    statement: excerpt.clone(),
                    migration: script.migration.clone(),
                });
            }
        }
        // Later statements may use the relations this one creates or renames.
        context.learn(node);
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

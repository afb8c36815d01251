//! Directives: `-- migsafe:…` comments in the header of a script (SPEC section 2).
//!
//! The header is the run of blank lines and `--` comment lines before the first
//! line of SQL. Directives are read from comments only, never from SQL text;
//! an unknown `migsafe:` directive is an error, because a typo in
//! `no-transaction` would otherwise silently change how a script runs.

use std::time::Duration;

use crate::config::parse_duration;

/// What the header of one script asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// Run outside a transaction, statement by statement (`-- migsafe:no-transaction`,
    /// dbmate's `transaction:false`, diesel's `run_in_transaction = false`).
    pub no_transaction: bool,
    /// `lock_timeout` for this script instead of the configured default.
    pub lock_timeout: Option<Duration>,
    /// `statement_timeout` for this script instead of the configured default.
    pub statement_timeout: Option<Duration>,
    /// Lint suppressions: `-- migsafe:allow <rule> -- <reason>`.
    pub allows: Vec<Allow>,
    /// Why migsafe chose how the script runs when no directive said so
    /// ("CREATE INDEX CONCURRENTLY", "its own BEGIN/COMMIT blocks"), for `plan`.
    pub inferred: Option<&'static str>,
    /// One `BEGIN; … COMMIT;` wraps the whole script: it runs without those
    /// two statements, inside migsafe's transaction.
    pub wrapped: bool,
    /// An empty script is a valid no-op (ory/pop), not an unfinished file.
    pub empty_ok: bool,
    /// Liquibase `runOnChange:true`: once applied, an edit of the script is
    /// not a checksum mismatch; `apply` runs it again in place and records
    /// its new checksum (views, functions, grants kept in one changeset).
    pub run_on_change: bool,
    /// A Liquibase changeset's `context:` expression.
    pub liquibase_context: Option<String>,
    /// A Liquibase changeset's `labels:` list.
    pub liquibase_labels: Option<String>,
    /// A Liquibase changeset's `--preconditions` (sql-checks), checked by
    /// `apply` just before it runs.
    pub liquibase_preconditions: Option<crate::source::layouts::liquibase::Preconditions>,
    /// Not for this database: its Liquibase context or labels do not match
    /// the namespace's `liquibase_contexts` / `liquibase_label_filter`
    /// (why). A pending one is not run, as Liquibase would not run it; an
    /// applied one stays applied.
    pub excluded: Option<String>,
    /// Why migsafe must not run this script as it is: it asks for something
    /// migsafe does not evaluate (a Liquibase precondition, context or label,
    /// `runAlways`). Applied ones are read as usual; a pending one is
    /// refused before anything runs.
    pub unsupported: Option<String>,
    /// Flyway `placeholderReplacement=false` (its `.sql.conf`): `${…}` in
    /// the script is meant literally.
    pub literal_placeholders: bool,
    /// Flyway placeholders of the file as written that had no value when
    /// the others were replaced. A pending script with any is refused
    /// before anything runs.
    pub unresolved_placeholders: Vec<UnresolvedPlaceholder>,
    /// Flyway placeholders were replaced in `sql`: it is no longer the
    /// file's text (a repeatable's checksum is then of this text, as
    /// Flyway's is).
    pub placeholders_replaced: bool,
    /// A Flyway script's schemas from its Flyway configuration (`schemas`,
    /// `defaultSchema`), the default first: as Flyway does, the missing
    /// ones are created and the script runs with the default one first in
    /// `search_path`, so that unqualified names land where Flyway put them.
    pub flyway_schemas: Vec<String>,
    /// Flyway's `createSchemas` for them (false: they are the migrations'
    /// own to create).
    pub flyway_create_schemas: bool,
    /// `-- migsafe:online`: risky statements run in their online form
    /// (SPEC 15), as with `apply --online`.
    pub online: bool,
    /// `-- migsafe:backfill [BATCH_TIME]`: the script's one `UPDATE` runs in
    /// primary-key batches (SPEC 16); the argument overrides `batch_time`.
    pub backfill: Option<Backfill>,
}

/// What `-- migsafe:backfill` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backfill {
    /// Target time per batch instead of `[defaults] batch_time`.
    pub batch_time: Option<Duration>,
}

/// One lint suppression and the reason given for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    /// The lint rule id.
    pub rule: String,
    /// Why the finding is accepted; empty when none was given (itself a finding).
    pub reason: String,
    /// 1-based line of the directive.
    pub line: usize,
}

/// Reads the directives from the header of `sql`. Errors name the line.
pub fn parse(sql: &str) -> Result<Directives, String> {
    let mut directives = Directives::default();
    for (index, raw_line) in sql.lines().enumerate() {
        let line = raw_line.trim();
        if line.is_empty() {
            continue;
        }
        let Some(comment) = line.strip_prefix("--") else {
            break;
        };
        let comment = comment.trim();
        let line_no = index + 1;
        if let Some(rest) = comment.strip_prefix("migrate:") {
            // dbmate section markers carry options such as `transaction:false`.
            if rest
                .split_whitespace()
                .skip(1)
                .any(|option| option == "transaction:false")
            {
                directives.no_transaction = true;
            }
            continue;
        }
        let Some(body) = comment.strip_prefix("migsafe:") else {
            continue;
        };
        let (name, argument) = match body.split_once(char::is_whitespace) {
            Some((name, argument)) => (name, argument.trim()),
            None => (body, ""),
        };
        match name {
            "no-transaction" => {
                if !argument.is_empty() {
                    return Err(format!(
                        "line {line_no}: `migsafe:no-transaction` takes no argument"
                    ));
                }
                directives.no_transaction = true;
            }
            "lock-timeout" => {
                directives.lock_timeout = Some(
                    parse_duration(argument)
                        .map_err(|e| format!("line {line_no}: migsafe:lock-timeout: {e}"))?,
                );
            }
            "statement-timeout" => {
                directives.statement_timeout = Some(
                    parse_duration(argument)
                        .map_err(|e| format!("line {line_no}: migsafe:statement-timeout: {e}"))?,
                );
            }
            "allow" => {
                let (rule, reason) = match argument.split_once("--") {
                    Some((rule, reason)) => (rule.trim(), reason.trim()),
                    None => (argument, ""),
                };
                if rule.is_empty() || rule.contains(char::is_whitespace) {
                    return Err(format!(
                        "line {line_no}: write `-- migsafe:allow <rule> -- <reason>`"
                    ));
                }
                directives.allows.push(Allow {
                    rule: rule.to_string(),
                    reason: reason.to_string(),
                    line: line_no,
                });
            }
            "online" => {
                if !argument.is_empty() {
                    return Err(format!(
                        "line {line_no}: `migsafe:online` takes no argument"
                    ));
                }
                directives.online = true;
            }
            "backfill" => {
                let batch_time = if argument.is_empty() {
                    None
                } else {
                    Some(
                        parse_duration(argument)
                            .map_err(|e| format!("line {line_no}: migsafe:backfill: {e}"))?,
                    )
                };
                directives.backfill = Some(Backfill { batch_time });
            }
            other => {
                return Err(format!(
                    "line {line_no}: unknown directive `migsafe:{other}` (known: no-transaction, lock-timeout, statement-timeout, allow, online, backfill)"
                ));
            }
        }
    }
    Ok(directives)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_directive_in_the_header() {
        let sql = "\n-- a comment\n-- migsafe:no-transaction\n--migsafe:lock-timeout 5s\n-- migsafe:statement-timeout 10min\n-- migsafe:allow require-concurrent-index -- table is tiny\nCREATE INDEX CONCURRENTLY i ON t (a);\n-- migsafe:lock-timeout nonsense\n";
        let d = parse(sql).unwrap();
        assert!(d.no_transaction);
        assert_eq!(d.lock_timeout, Some(Duration::from_secs(5)));
        assert_eq!(d.statement_timeout, Some(Duration::from_secs(600)));
        assert_eq!(d.allows.len(), 1);
        assert_eq!(d.allows[0].rule, "require-concurrent-index");
        assert_eq!(d.allows[0].reason, "table is tiny");
        assert_eq!(d.allows[0].line, 6);
    }

    #[test]
    fn reads_online_and_backfill() {
        let d = parse("-- migsafe:online\nCREATE INDEX i ON t (a);").unwrap();
        assert!(d.online);
        assert_eq!(d.backfill, None);
        let d = parse("-- migsafe:backfill 500ms\nUPDATE t SET a = 1;").unwrap();
        assert_eq!(
            d.backfill.unwrap().batch_time,
            Some(Duration::from_millis(500))
        );
        let d = parse("-- migsafe:backfill\nUPDATE t SET a = 1;").unwrap();
        assert_eq!(d.backfill, Some(Backfill::default()));
        assert!(parse("-- migsafe:online now\n").is_err());
        assert!(parse("-- migsafe:backfill soon\n").is_err());
    }

    #[test]
    fn stops_at_the_first_sql_line() {
        let d = parse("SELECT 1;\n-- migsafe:no-transaction\n").unwrap();
        assert!(!d.no_transaction);
    }

    #[test]
    fn honours_dbmate_transaction_false() {
        let d = parse("-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON t (a);")
            .unwrap();
        assert!(d.no_transaction);
    }

    #[test]
    fn rejects_unknown_and_malformed_directives() {
        assert!(
            parse("-- migsafe:no-transactoin\nSELECT 1;")
                .unwrap_err()
                .contains("unknown directive")
        );
        assert!(
            parse("-- migsafe:lock-timeout soon\n")
                .unwrap_err()
                .contains("line 1")
        );
        assert!(parse("-- migsafe:allow\n").is_err());
    }

    #[test]
    fn an_allow_without_reason_keeps_an_empty_reason() {
        let d = parse("-- migsafe:allow ban-drop-column\n").unwrap();
        assert_eq!(d.allows[0].reason, "");
    }
}

/// A Flyway placeholder without a value, where the file has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnresolvedPlaceholder {
    /// 1-based line in the file.
    pub line: usize,
    /// 1-based column (in characters) of its `$`.
    pub column: usize,
    /// As written: `${name}`.
    pub name: String,
}

//! Liquibase formatted SQL: files that start with `--liquibase formatted sql`,
//! each holding changesets that start at `--changeset author:id [attributes]`.
//!
//! - Order: files by name, then changesets in file order. A changeset's
//!   migsafe version is its position in that order (1, 2, 3 …) and its name
//!   is `author:id`; Liquibase files are appended to, so positions stay put.
//!   Inserting a changeset before others moves theirs, and `status` then shows
//!   checksum mismatches rather than running anything twice.
//! - `runInTransaction:false` runs the changeset without a transaction.
//! - `runOnChange:true`: once applied, an edit of the changeset is not a
//!   checksum mismatch; `apply` runs it again in place (views, functions).
//! - `splitStatements:false` needs nothing: statements are read with the
//!   PostgreSQL grammar, never split at a `;` inside a body.
//! - `endDelimiter:X`: a line holding only `X` ends a statement (it is sent as
//!   `;`), so `/` or `GO` between statements works as in Liquibase.
//! - `dbms:` naming other databases only: the changeset is skipped, as
//!   Liquibase skips it on PostgreSQL.
//! - `--rollback …` lines, in order, are the down script (their text after
//!   `--rollback`); they are left out of the up script.
//! - `--preconditions onFail:… onError:…` with `--precondition-sql-check
//!   expectedResult:… <SQL>` lines are [`Preconditions`], checked by `apply`
//!   just before the changeset runs; other precondition kinds and
//!   `onFail:CONTINUE` are refused for a pending changeset.
//! - `--comment`, `--preconditions`, `--precondition-…` and `--validCheckSum`
//!   lines are comments of the SQL.
//! - [`Changeset::checked_sql`] keeps the lines Liquibase's `MD5SUM` is computed
//!   from (the changeset's SQL without its directive lines), for `adopt`.

use super::Section;

/// One changeset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changeset {
    /// Its author.
    pub author: String,
    /// Its id.
    pub id: String,
    /// Its SQL, from its `--changeset` line on (rollback lines blank).
    pub up: Section,
    /// The `--rollback` lines' SQL, when there are any.
    pub down: Option<Section>,
    /// Liquibase skips it on PostgreSQL (`dbms:` names other databases only).
    pub other_dbms: Option<String>,
    /// The SQL as Liquibase reads it for its checksum: the lines after
    /// `--changeset` without `--rollback`, `--comment:`, `--preconditions`,
    /// `--precondition-…`, `--validCheckSum` and `--ignoreLines` lines (an
    /// `endDelimiter` line stays as written).
    pub checked_sql: String,
    /// The `--validCheckSum:` values: Liquibase accepts a recorded checksum
    /// that is one of them (or any, with `ANY`).
    pub valid_checksums: Vec<String>,
    /// `runOnChange:true`: when its SQL changes after it ran, it runs again
    /// in place instead of being an edit that refuses the namespace.
    pub run_on_change: bool,
    /// Its `context:` (`contextFilter:`) expression, quotes removed.
    pub context: Option<String>,
    /// Its `labels:` list.
    pub labels: Option<String>,
    /// Its `--preconditions` with their SQL checks.
    pub preconditions: Option<Preconditions>,
    /// What Liquibase would decide at run time that migsafe does not: a
    /// precondition other than `sql-check`, `onFail:CONTINUE`, `runAlways`. (Contexts and labels are matched
    /// against the namespace's configuration when the migrations are read.) Running such a changeset unconditionally could put test
    /// data in production or run what a precondition guards, so a pending one
    /// is refused ([`crate::source::directives::Directives::unsupported`]).
    pub unsupported: Option<String>,
}

/// What Liquibase does when a precondition does not hold (`onFail`) or
/// cannot be checked (`onError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OnFail {
    /// Stop: the changeset and those after it do not run (the default).
    Halt,
    /// Record it as applied without running it.
    MarkRan,
    /// Say so, and run it anyway.
    Warn,
}

impl OnFail {
    /// As Liquibase writes it.
    pub fn name(self) -> &'static str {
        match self {
            OnFail::Halt => "HALT",
            OnFail::MarkRan => "MARK_RAN",
            OnFail::Warn => "WARN",
        }
    }
}

/// A changeset's preconditions: every check must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preconditions {
    /// When a check does not hold.
    pub on_fail: OnFail,
    /// When a check's SQL fails.
    pub on_error: OnFail,
    /// `onFailMessage:`, when given.
    pub message: Option<String>,
    /// The `--precondition-sql-check` lines, in order.
    pub checks: Vec<SqlCheck>,
}

/// `--precondition-sql-check expectedResult:<value> <SQL>`: the SQL's one
/// value, as text, must be `<value>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlCheck {
    /// What the SQL must return.
    pub expected: String,
    /// The query.
    pub sql: String,
    /// 1-based line of the file.
    pub line: usize,
}

/// `HALT`, `MARK_RAN`, `WARN` (`CONTINUE` is not one migsafe can honour:
/// the changeset would run later, after those that follow it).
fn on_fail(value: &str) -> Result<OnFail, String> {
    match value.to_ascii_uppercase().as_str() {
        "HALT" => Ok(OnFail::Halt),
        "MARK_RAN" => Ok(OnFail::MarkRan),
        "WARN" => Ok(OnFail::Warn),
        other => Err(other.to_string()),
    }
}

/// The value after `key:` of a `--precondition…` line's words, quotes
/// removed, and what follows the word.
fn keyed<'a>(rest: &'a str, key: &str) -> Option<(String, &'a str)> {
    let at = rest.to_ascii_lowercase().find(&key.to_ascii_lowercase())?;
    let value = &rest[at + key.len()..];
    let (word, after) = match value.strip_prefix('"') {
        Some(quoted) => {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        }
        None => {
            let end = value.find(char::is_whitespace).unwrap_or(value.len());
            (&value[..end], &value[end..])
        }
    };
    Some((word.to_string(), after))
}

/// A line of a changeset that Liquibase reads as an instruction, not SQL,
/// and leaves out of its checksum; the `--validCheckSum:` value when it is one.
fn instruction(line: &str) -> Option<Option<String>> {
    let rest = line.trim_start().strip_prefix("--")?.trim_start();
    let lower = rest.to_ascii_lowercase();
    if let Some(value) = lower.strip_prefix("validchecksum") {
        let value = value.trim_start().strip_prefix(':').unwrap_or(value);
        let start = rest.len() - value.len();
        return Some(Some(rest[start..].trim().to_string()));
    }
    ["comment:", "preconditions", "precondition-", "ignorelines"]
        .iter()
        .any(|p| lower.starts_with(p))
        .then_some(None)
}

/// True when `head` (a file's first bytes) marks Liquibase formatted SQL.
pub fn is_formatted(head: &str) -> bool {
    head.trim_start_matches('\u{feff}')
        .lines()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| l.trim().strip_prefix("--"))
        .is_some_and(|rest| {
            let words: Vec<String> = rest
                .split_whitespace()
                .map(str::to_ascii_lowercase)
                .collect();
            words.len() >= 3 && words[..3] == ["liquibase", "formatted", "sql"]
        })
}

/// The keyword after `--` when a line is one of Liquibase's (`--changeset`,
/// `-- changeset`, `--rollback`), and the rest of the line.
fn directive(line: &str) -> Option<(String, &str)> {
    let rest = line.trim_start().strip_prefix("--")?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .unwrap_or(rest.len());
    let word = rest[..end].to_ascii_lowercase();
    matches!(word.as_str(), "changeset" | "rollback").then(|| (word, &rest[end..]))
}

/// The words of a `--changeset` line; a value in double quotes
/// (`context:"prod and !eu"`) stays one word.
fn attributes(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                word.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

impl Changeset {
    /// What its `--changeset` line and instruction lines ask for, onto its
    /// up script's directives (files and embedded migrations alike).
    pub fn direct(&self, directives: &mut crate::source::directives::Directives) {
        directives.unsupported.clone_from(&self.unsupported);
        directives.run_on_change = self.run_on_change;
        directives.liquibase_context.clone_from(&self.context);
        directives.liquibase_labels.clone_from(&self.labels);
        directives
            .liquibase_preconditions
            .clone_from(&self.preconditions);
    }
}

/// A changeset being read.
struct OpenChangeset {
    author: String,
    id: String,
    first: usize,
    no_transaction: bool,
    end_delimiter: Option<String>,
    other_dbms: Option<String>,
    up: String,
    down: String,
    down_first: Option<usize>,
    checked: String,
    valid: Vec<String>,
    run_on_change: bool,
    context: Option<String>,
    labels: Option<String>,
    preconditions: Option<Preconditions>,
    unsupported: Vec<String>,
}

/// Reads a `--preconditions …` or `--precondition-<kind> …` line into the
/// changeset being read; what migsafe cannot check is `unsupported`.
fn precondition(line: &str, number: usize, changeset: &mut OpenChangeset) {
    let Some(rest) = line.trim_start().strip_prefix("--") else {
        return;
    };
    let rest = rest.trim();
    let lower = rest.to_ascii_lowercase();
    let preconditions = changeset.preconditions.get_or_insert(Preconditions {
        on_fail: OnFail::Halt,
        on_error: OnFail::Halt,
        message: None,
        checks: Vec::new(),
    });
    if lower.starts_with("preconditions") {
        for (key, slot) in [("onFail:", 0), ("onError:", 1)] {
            let Some((value, _)) = keyed(rest, key) else {
                continue;
            };
            match on_fail(&value) {
                Ok(action) if slot == 0 => preconditions.on_fail = action,
                Ok(action) => preconditions.on_error = action,
                Err(other) if other == "CONTINUE" => changeset.unsupported.push(format!(
                    "`--preconditions {key}{other}` (line {number}): migsafe runs changesets in order and cannot leave this one for later (`CONTINUE`); use HALT, MARK_RAN or WARN"
                )),
                Err(other) => changeset.unsupported.push(format!(
                    "`--preconditions {key}{other}` (line {number}): `{other}` is not one of Liquibase's HALT, CONTINUE, MARK_RAN, WARN"
                )),
            }
        }
        preconditions.message = keyed(rest, "onFailMessage:").map(|(m, _)| m);
    } else if lower.starts_with("precondition-sql-check") {
        match keyed(rest, "expectedResult:") {
            Some((expected, sql)) => {
                let sql = sql.trim().trim_end_matches(';').trim().to_string();
                // One query, readable: `expectedResult:hello world SELECT …`
                // unquoted would be `hello` and a broken query, found here
                // rather than when its onError decides. (The build-time
                // crate has no grammar: an embedded changeset is checked
                // when the service reads it again.)
                #[cfg(feature = "engine")]
                match crate::source::statements::split(&sql) {
                    Ok(statements) if statements.len() == 1 => {}
                    Ok(statements) => changeset.unsupported.push(format!(
                        "`--precondition-sql-check` (line {number}) holds {} statements; a check is one query",
                        statements.len()
                    )),
                    Err(why) => changeset.unsupported.push(format!(
                        "`--precondition-sql-check` (line {number}): its SQL cannot be read ({why}); an `expectedResult` with spaces must be quoted"
                    )),
                }
                preconditions.checks.push(SqlCheck {
                    expected,
                    sql,
                    line: number,
                });
            }
            None => changeset.unsupported.push(format!(
                "`--precondition-sql-check` (line {number}) without `expectedResult:`"
            )),
        }
    } else if lower.starts_with("precondition-") {
        let kind = rest.split_whitespace().next().unwrap_or(rest);
        changeset.unsupported.push(format!(
            "`--{kind}` (line {number}): migsafe checks `--precondition-sql-check` only, and would run the changeset whatever this says; write it as a sql-check (`expectedResult:0 SELECT count(*) FROM …`)"
        ));
    }
}

/// Reads the changesets of one file. Errors name the line.
pub fn parse(text: &str) -> Result<Vec<Changeset>, String> {
    let mut out: Vec<Changeset> = Vec::new();
    let mut open: Option<OpenChangeset> = None;
    let close = |open: OpenChangeset, out: &mut Vec<Changeset>| {
        // The blank lines that separate it from the next changeset are not
        // part of it: appending a changeset after a blank line, as Liquibase
        // files are written, must not change the one before.
        let kept = open.up.trim_end_matches(|c: char| c.is_whitespace()).len();
        let mut up = open.up;
        if kept < up.len() {
            up.truncate(kept);
            up.push('\n');
        }
        out.push(Changeset {
            author: open.author,
            id: open.id,
            up: Section {
                text: up,
                first_line: open.first,
                no_transaction: open.no_transaction,
            },
            down: open.down_first.map(|first_line| Section {
                text: open.down,
                first_line,
                no_transaction: open.no_transaction,
            }),
            other_dbms: open.other_dbms,
            checked_sql: open.checked,
            valid_checksums: open.valid,
            run_on_change: open.run_on_change,
            context: open.context,
            labels: open.labels,
            preconditions: open.preconditions,
            unsupported: (!open.unsupported.is_empty()).then(|| open.unsupported.join("; ")),
        });
    };
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let number = index + 1;
        match directive(line) {
            Some((word, rest)) if word == "changeset" => {
                if let Some(done) = open.take() {
                    close(done, &mut out);
                }
                let words = attributes(rest);
                let mut words = words.iter().map(String::as_str);
                let identity = words.next().unwrap_or("");
                let Some((author, id)) = identity.split_once(':') else {
                    return Err(format!(
                        "line {number}: `--changeset {identity}` has no id; write `--changeset author:id`"
                    ));
                };
                if author.is_empty() || id.is_empty() {
                    return Err(format!(
                        "line {number}: `--changeset {identity}` needs both an author and an id (`author:id`)"
                    ));
                }
                if out.iter().any(|c| c.author == author && c.id == id) {
                    return Err(format!(
                        "line {number}: changeset `{author}:{id}` appears twice in this file"
                    ));
                }
                let mut changeset = OpenChangeset {
                    author: author.to_string(),
                    id: id.to_string(),
                    first: number,
                    no_transaction: false,
                    end_delimiter: None,
                    other_dbms: None,
                    up: line.to_string(),
                    down: String::new(),
                    down_first: None,
                    checked: String::new(),
                    valid: Vec::new(),
                    run_on_change: false,
                    context: None,
                    labels: None,
                    preconditions: None,
                    unsupported: Vec::new(),
                };
                let mut previous: Option<&str> = None;
                for attribute in words {
                    // `context:prod and !eu` unquoted: the expression is
                    // `prod`, and the rest would be dropped without a word.
                    let operator = matches!(
                        attribute.to_ascii_lowercase().as_str(),
                        "and" | "or" | "not"
                    ) || attribute.starts_with(['!', '(']);
                    if let Some(filter) = previous
                        && operator
                        && !attribute.contains(':')
                    {
                        return Err(format!(
                            "line {number}: `{attribute}` follows `{filter}` on the changeset line: an expression with spaces must be quoted (`context:\"prod and !eu\"`), or only its first word is read"
                        ));
                    }
                    let (key, value) = attribute.split_once(':').unwrap_or((attribute, ""));
                    if matches!(
                        key.to_ascii_lowercase().as_str(),
                        "context" | "contexts" | "contextfilter" | "labels" | "label"
                    ) {
                        previous = Some(attribute);
                    } else if attribute.contains(':') {
                        previous = None;
                    }
                    match key.to_ascii_lowercase().as_str() {
                        "context" | "contexts" | "contextfilter" if !value.is_empty() => {
                            changeset.context = Some(value.trim_matches('"').to_string());
                        }
                        "labels" | "label" if !value.is_empty() => {
                            changeset.labels = Some(value.trim_matches('"').to_string());
                        }
                        "runonchange" => {
                            changeset.run_on_change = value.eq_ignore_ascii_case("true");
                        }
                        "runalways" if value.eq_ignore_ascii_case("true") => {
                            changeset.unsupported.push(format!(
                                "`{attribute}`: migsafe runs a changeset once (again only when it changes, with runOnChange:true), never at every apply"
                            ));
                        }
                        "runintransaction" => {
                            changeset.no_transaction = value.eq_ignore_ascii_case("false");
                        }
                        "enddelimiter" if !value.is_empty() && value != ";" => {
                            changeset.end_delimiter = Some(value.to_string());
                        }
                        "dbms" => {
                            let names: Vec<String> = value
                                .split(',')
                                .map(|d| d.trim().to_ascii_lowercase())
                                .collect();
                            let ours = names
                                .iter()
                                .any(|d| matches!(d.as_str(), "postgresql" | "postgres" | "all"));
                            let excluded = names.iter().any(|d| d == "!postgresql");
                            let only_others = names.iter().all(|d| !d.starts_with('!'));
                            if excluded || (!ours && only_others && !value.is_empty()) {
                                changeset.other_dbms = Some(value.to_string());
                            }
                        }
                        _ => {}
                    }
                }
                open = Some(changeset);
            }
            Some((_, rest)) => {
                let Some(changeset) = open.as_mut() else {
                    return Err(format!(
                        "line {number}: `--rollback` before the first `--changeset`"
                    ));
                };
                changeset.up.push('\n');
                changeset.down_first.get_or_insert(number);
                changeset.down.push_str(rest.trim());
                changeset.down.push('\n');
            }
            None => {
                let Some(changeset) = open.as_mut() else {
                    if !line.trim().is_empty() && !line.trim_start().starts_with("--") {
                        return Err(format!(
                            "line {number}: SQL before the first `--changeset`; Liquibase would not run it"
                        ));
                    }
                    continue;
                };
                precondition(line, number, changeset);
                match instruction(line) {
                    Some(Some(valid)) => changeset.valid.push(valid),
                    Some(None) => {}
                    None => changeset.checked.push_str(line),
                }
                match &changeset.end_delimiter {
                    Some(delimiter) if line.trim() == delimiter => changeset.up.push_str(";\n"),
                    _ => changeset.up.push_str(line),
                }
            }
        }
    }
    if let Some(done) = open.take() {
        close(done, &mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_changesets_with_their_attributes_and_rollbacks() {
        let text = "--liquibase formatted sql\n\n--changeset ana:1\nCREATE TABLE a (id int);\n--rollback DROP TABLE a;\n\n-- changeset ana:2 runInTransaction:false\nCREATE INDEX CONCURRENTLY a_id ON a (id);\n--rollback DROP INDEX CONCURRENTLY a_id;\n--changeset bo:fn endDelimiter:/ splitStatements:false\nCREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$\n/\n--changeset bo:my dbms:mysql\nSELECT 1;\n";
        assert!(is_formatted(text));
        let sets = parse(text).unwrap();
        assert_eq!(sets.len(), 4);
        assert_eq!((sets[0].author.as_str(), sets[0].id.as_str()), ("ana", "1"));
        assert_eq!(sets[0].up.first_line, 3);
        assert!(!sets[0].up.text.contains("DROP"));
        assert_eq!(sets[0].down.as_ref().unwrap().text, "DROP TABLE a;\n");
        assert!(sets[1].up.no_transaction && !sets[0].up.no_transaction);
        assert!(sets[2].up.text.ends_with("$$\n;\n"));
        assert!(sets[2].down.is_none());
        assert_eq!(sets[3].other_dbms.as_deref(), Some("mysql"));
        assert!(sets[0].other_dbms.is_none());
        assert_eq!(sets[0].checked_sql, "CREATE TABLE a (id int);\n\n");
        assert!(
            sets[2].checked_sql.ends_with("$$\n/\n"),
            "{}",
            sets[2].checked_sql
        );
    }

    #[test]
    fn a_blank_line_before_the_next_changeset_is_not_part_of_this_one() {
        let one = parse("--liquibase formatted sql\n--changeset a:1\nSELECT 1;\n").unwrap();
        let two = parse("--liquibase formatted sql\n--changeset a:1\nSELECT 1;\n\n\n--changeset a:2\nSELECT 2;\n").unwrap();
        assert_eq!(one[0].up.text, two[0].up.text);
    }

    #[test]
    fn what_liquibase_decides_at_run_time_is_named() {
        let sets = parse("--liquibase formatted sql\n--changeset a:1 context:test\nINSERT INTO t VALUES (1);\n--changeset a:2\n--preconditions onFail:MARK_RAN\n--precondition-sql-check expectedResult:0 SELECT 1\nDELETE FROM t;\n--changeset a:3 runAlways:true\nSELECT 1;\n--changeset a:4 runInTransaction:false runOnChange:true\nSELECT 1;\n").unwrap();
        // Contexts are matched against the configuration later.
        assert!(sets[0].unsupported.is_none());
        assert_eq!(sets[0].context.as_deref(), Some("test"));
        // A sql-check precondition is checked by apply.
        assert!(sets[1].unsupported.is_none());
        let checks = &sets[1].preconditions.as_ref().unwrap().checks;
        assert_eq!(checks[0].expected, "0");
        assert_eq!(checks[0].sql, "SELECT 1");
        assert_eq!(checks[0].line, 6);
        assert!(
            sets[2]
                .unsupported
                .as_deref()
                .is_some_and(|u| u.contains("runAlways"))
        );
        // runOnChange is honoured: an edit reruns it in place.
        assert!(sets[3].unsupported.is_none() && sets[3].run_on_change);
        assert!(!sets[2].run_on_change && sets[3].up.no_transaction);
    }

    #[test]
    fn preconditions_are_read_and_what_cannot_be_checked_is_named() {
        let sets = parse("--liquibase formatted sql\n--changeset a:1\n--preconditions onFail:mark_ran onError:WARN onFailMessage:\"already there\"\n--precondition-sql-check expectedResult:\"0\" SELECT count(*) FROM t;\n-- precondition-sql-check expectedResult:1 SELECT 1\nSELECT 1;\n--changeset a:2\n--preconditions onFail:CONTINUE\n--precondition-table-exists tableName:t\nSELECT 2;\n").unwrap();
        let first = sets[0].preconditions.as_ref().unwrap();
        assert_eq!(
            (first.on_fail, first.on_error),
            (OnFail::MarkRan, OnFail::Warn)
        );
        assert_eq!(first.message.as_deref(), Some("already there"));
        assert_eq!(first.checks.len(), 2);
        assert_eq!(first.checks[0].sql, "SELECT count(*) FROM t");
        assert_eq!(first.checks[0].expected, "0");
        assert!(sets[0].unsupported.is_none());
        let refused = sets[1].unsupported.as_deref().unwrap();
        assert!(
            refused.contains("CONTINUE") && refused.contains("precondition-table-exists"),
            "{refused}"
        );
        // Preconditions are not part of Liquibase's checksum.
        assert_eq!(sets[0].checked_sql, "SELECT 1;\n");
        // Not one readable query: refused; a misspelt action is named.
        let odd = parse("--liquibase formatted sql\n--changeset a:1\n--preconditions onFail:MARKRAN\n--precondition-sql-check expectedResult:hello world SELECT 'hello world'\nSELECT 1;\n").unwrap();
        let refused = odd[0].unsupported.as_deref().unwrap();
        assert!(
            refused.contains("`MARKRAN` is not one of") && refused.contains("must be quoted"),
            "{refused}"
        );
    }

    #[test]
    fn quoted_contexts_and_labels_are_read_whole() {
        let sets = parse("--liquibase formatted sql\n--changeset a:1 context:\"prod and !eu\" labels:v1,billing runOnChange:true\nSELECT 1;\n--changeset a:2 contextFilter:test\nSELECT 1;\n").unwrap();
        assert_eq!(sets[0].context.as_deref(), Some("prod and !eu"));
        assert_eq!(sets[0].labels.as_deref(), Some("v1,billing"));
        assert!(sets[0].run_on_change);
        assert_eq!(sets[1].context.as_deref(), Some("test"));
        // Unquoted, only `prod` would be read: refused, named.
        let unquoted = parse(
            "--liquibase formatted sql\n--changeset a:1 contextFilter:prod and !eu\nSELECT 1;\n",
        )
        .unwrap_err();
        assert!(
            unquoted.contains("line 2") && unquoted.contains("must be quoted"),
            "{unquoted}"
        );
    }

    #[test]
    fn liquibase_instructions_are_left_out_of_the_checked_sql() {
        let text = "--liquibase formatted sql\n--changeset a:1\n--comment: why\n-- kept\n--preconditions onFail:MARK_RAN\n--precondition-sql-check expectedResult:0 SELECT 1\n--validCheckSum: 9:abc\n-- validCheckSum ANY\nSELECT 1;\n";
        let sets = parse(text).unwrap();
        assert_eq!(sets[0].checked_sql, "-- kept\nSELECT 1;\n");
        assert_eq!(sets[0].valid_checksums, ["9:abc", "ANY"]);
    }

    #[test]
    fn refuses_what_liquibase_refuses() {
        assert!(
            parse("--changeset ana\nSELECT 1;\n")
                .unwrap_err()
                .contains("no id")
        );
        assert!(
            parse("--changeset a:1\nSELECT 1;\n--changeset a:1\nSELECT 2;\n")
                .unwrap_err()
                .contains("twice")
        );
        assert!(parse("--rollback DROP TABLE a;\n").is_err());
        assert!(!is_formatted("-- liquibase is great\nSELECT 1;"));
        assert!(is_formatted("\u{feff}-- Liquibase Formatted SQL\n"));
    }
}

//! Statement boundaries and transaction-control detection, read with the real
//! PostgreSQL grammar (pg_query), so dollar quotes, comments, `E''` strings and
//! semicolons inside function bodies never split a statement.

use pg_query::NodeEnum;
use pg_query::protobuf::TransactionStmtKind;

/// One top-level statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The statement text, without its terminating semicolon.
    pub text: String,
    /// Byte offset of the statement in the script.
    pub offset: usize,
    /// 1-based line of the statement in the script.
    pub line: usize,
    /// The index built when the statement is `CREATE INDEX CONCURRENTLY`
    /// (schema, index name, table): a failed build leaves it INVALID.
    pub concurrent_index: Option<ConcurrentIndex>,
    /// `BEGIN` / `START TRANSACTION`: a block of the script's own starts.
    pub opens: bool,
    /// `COMMIT` / `ROLLBACK` / `PREPARE TRANSACTION`: the block ends.
    pub closes: bool,
}

/// What a `CREATE INDEX CONCURRENTLY` statement builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcurrentIndex {
    /// The schema written on the table, if any (the index lives there).
    pub schema: Option<String>,
    /// The index name, when the statement gives one.
    pub name: Option<String>,
}

/// Splits a script into its statements. The error is the parser's message.
pub fn split(sql: &str) -> Result<Vec<Statement>, String> {
    let parsed = pg_query::parse(sql, 0).map_err(|e| parse_message(&e))?;
    let mut statements = Vec::with_capacity(parsed.protobuf.stmts.len());
    for raw in &parsed.protobuf.stmts {
        let start = usize::try_from(raw.stmt_location).unwrap_or(0);
        let end = match usize::try_from(raw.stmt_len) {
            Ok(0) | Err(_) => sql.len(),
            Ok(len) => start.saturating_add(len).min(sql.len()),
        };
        let Some(text) = sql.get(start..end) else {
            return Err(format!("cannot cut the statement at byte {start}"));
        };
        let leading = text.len() - text.trim_start().len();
        let offset = start + leading;
        let line = sql[..offset].matches('\n').count() + 1;
        let concurrent_index = match raw.stmt.as_ref().and_then(|n| n.node.as_ref()) {
            Some(NodeEnum::IndexStmt(index)) if index.concurrent => Some(ConcurrentIndex {
                schema: index
                    .relation
                    .as_ref()
                    .map(|r| r.schemaname.clone())
                    .filter(|s| !s.is_empty()),
                name: Some(index.idxname.clone()).filter(|s| !s.is_empty()),
            }),
            _ => None,
        };
        let kind = match raw.stmt.as_ref().and_then(|n| n.node.as_ref()) {
            Some(NodeEnum::TransactionStmt(t)) => TransactionStmtKind::try_from(t.kind).ok(),
            _ => None,
        };
        statements.push(Statement {
            text: text.trim().to_string(),
            offset,
            line,
            concurrent_index,
            opens: matches!(
                kind,
                Some(TransactionStmtKind::TransStmtBegin | TransactionStmtKind::TransStmtStart)
            ),
            closes: matches!(
                kind,
                Some(
                    TransactionStmtKind::TransStmtCommit
                        | TransactionStmtKind::TransStmtRollback
                        | TransactionStmtKind::TransStmtPrepare
                )
            ),
        });
    }
    Ok(statements)
}

/// The first statement that ends or starts a transaction (BEGIN, COMMIT,
/// ROLLBACK, PREPARE TRANSACTION…), as (keyword, 1-based line). Savepoints are
/// fine inside a migration's transaction. `None` also when the grammar cannot
/// read the script: the server then reports the syntax error itself.
pub fn transaction_control(sql: &str) -> Option<(&'static str, usize)> {
    // Most migrations hold none of these words at all: then no statement can
    // be transaction control, and the full parse (a few µs each, thousands of
    // times in a big plan) is not needed. Any occurrence, even inside an
    // identifier, falls through to the grammar, which decides.
    const WORDS: [&[u8]; 7] = [
        b"begin",
        b"start",
        b"commit",
        b"end",
        b"rollback",
        b"abort",
        b"prepare",
    ];
    if !mentions_any(sql, &WORDS) {
        return None;
    }
    let parsed = pg_query::parse(sql, 0).ok()?;
    for raw in &parsed.protobuf.stmts {
        let Some(NodeEnum::TransactionStmt(stmt)) = raw.stmt.as_ref().and_then(|n| n.node.as_ref())
        else {
            continue;
        };
        let keyword = match TransactionStmtKind::try_from(stmt.kind) {
            Ok(TransactionStmtKind::TransStmtBegin | TransactionStmtKind::TransStmtStart) => {
                "BEGIN"
            }
            Ok(TransactionStmtKind::TransStmtCommit) => "COMMIT",
            Ok(TransactionStmtKind::TransStmtRollback) => "ROLLBACK",
            Ok(TransactionStmtKind::TransStmtPrepare) => "PREPARE TRANSACTION",
            Ok(TransactionStmtKind::TransStmtCommitPrepared) => "COMMIT PREPARED",
            Ok(TransactionStmtKind::TransStmtRollbackPrepared) => "ROLLBACK PREPARED",
            _ => continue,
        };
        let offset = usize::try_from(raw.stmt_location)
            .unwrap_or(0)
            .min(sql.len());
        let skipped = sql
            .get(offset..)
            .map_or(0, |rest| rest.len() - rest.trim_start().len());
        let line = sql
            .get(..offset + skipped)
            .map_or(1, |head| head.matches('\n').count() + 1);
        return Some((keyword, line));
    }
    None
}

/// Whether `sql` holds any of `words` (lower case ASCII), in any case and
/// anywhere, even inside an identifier: the cheap test before a parse that
/// most scripts do not need.
fn mentions_any(sql: &str, words: &[&[u8]]) -> bool {
    let lower = sql.to_ascii_lowercase();
    words
        .iter()
        .any(|word| lower.as_bytes().windows(word.len()).any(|w| w == *word))
}

/// How a script without a `no-transaction` directive must run, read with
/// the grammar (SPEC 2: real histories are taken as they are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionMode {
    /// In migsafe's transaction, together with its history row.
    Plain,
    /// One `BEGIN; … COMMIT;` wraps the whole script: its body runs in
    /// migsafe's transaction (the two statements are left out, see [`unwrap`]).
    Wrapped,
    /// Outside a transaction, statement by statement, and why.
    NoTransaction(&'static str),
}

/// Decides [`TransactionMode`]. Text the grammar cannot read is `Plain`
/// (the server reports the error, in a transaction that changes nothing).
pub fn transaction_mode(sql: &str) -> TransactionMode {
    // Most scripts hold none of these words: no parse needed (a no-op apply
    // reads every file of a long history).
    const WORDS: [&[u8]; 8] = [
        b"begin",
        b"start",
        b"commit",
        b"concurrently",
        b"vacuum",
        b"system",
        b"database",
        b"tablespace",
    ];
    if !mentions_any(sql, &WORDS) {
        return TransactionMode::Plain;
    }
    let Ok(parsed) = pg_query::parse(sql, 0) else {
        return TransactionMode::Plain;
    };
    let nodes: Vec<&NodeEnum> = parsed
        .protobuf
        .stmts
        .iter()
        .filter_map(|raw| raw.stmt.as_ref().and_then(|n| n.node.as_ref()))
        .collect();
    for node in &nodes {
        if let Some(why) = needs_no_transaction(node) {
            return TransactionMode::NoTransaction(why);
        }
    }
    let kind = |node: &NodeEnum| match node {
        NodeEnum::TransactionStmt(t) => TransactionStmtKind::try_from(t.kind).ok(),
        _ => None,
    };
    let control: Vec<usize> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| {
            !matches!(
                kind(n),
                None | Some(
                    TransactionStmtKind::TransStmtSavepoint
                        | TransactionStmtKind::TransStmtRelease
                        | TransactionStmtKind::TransStmtRollbackTo
                )
            )
        })
        .map(|(i, _)| i)
        .collect();
    if control.is_empty() {
        return TransactionMode::Plain;
    }
    let begins = |i: usize| {
        matches!(
            kind(nodes[i]),
            Some(TransactionStmtKind::TransStmtBegin | TransactionStmtKind::TransStmtStart)
        )
    };
    let commits = |i: usize| matches!(kind(nodes[i]), Some(TransactionStmtKind::TransStmtCommit));
    // `START TRANSACTION ISOLATION LEVEL …` keeps its options only when the
    // script runs as written.
    let plain_begin = matches!(nodes[0], NodeEnum::TransactionStmt(t) if t.options.is_empty());
    if control == [0, nodes.len() - 1]
        && nodes.len() >= 2
        && begins(0)
        && plain_begin
        && commits(nodes.len() - 1)
    {
        return TransactionMode::Wrapped;
    }
    TransactionMode::NoTransaction("its own BEGIN/COMMIT blocks")
}

/// Statements PostgreSQL refuses inside a transaction block.
fn needs_no_transaction(node: &NodeEnum) -> Option<&'static str> {
    Some(match node {
        NodeEnum::IndexStmt(i) if i.concurrent => "CREATE INDEX CONCURRENTLY",
        NodeEnum::DropStmt(d) if d.concurrent => "DROP INDEX CONCURRENTLY",
        NodeEnum::ReindexStmt(r)
            if r.params.iter().any(|p| {
                matches!(p.node.as_ref(), Some(NodeEnum::DefElem(d)) if d.defname == "concurrently")
            }) =>
        {
            "REINDEX CONCURRENTLY"
        }
        NodeEnum::VacuumStmt(v) if v.is_vacuumcmd => "VACUUM",
        NodeEnum::AlterSystemStmt(_) => "ALTER SYSTEM",
        NodeEnum::CreatedbStmt(_) => "CREATE DATABASE",
        NodeEnum::DropdbStmt(_) => "DROP DATABASE",
        NodeEnum::CreateTableSpaceStmt(_) => "CREATE TABLESPACE",
        NodeEnum::DropTableSpaceStmt(_) => "DROP TABLESPACE",
        _ => return None,
    })
}

/// `sql` with the `BEGIN;` and `COMMIT;` of a [`TransactionMode::Wrapped`]
/// script blanked out (same length, same lines), so positions in errors
/// still point into the file.
pub fn unwrap(sql: &str) -> String {
    let Ok(parsed) = pg_query::parse(sql, 0) else {
        return sql.to_string();
    };
    let stmts = &parsed.protobuf.stmts;
    let (Some(first), Some(last)) = (stmts.first(), stmts.last()) else {
        return sql.to_string();
    };
    let mut bytes = sql.as_bytes().to_vec();
    for raw in [first, last] {
        let start = usize::try_from(raw.stmt_location)
            .unwrap_or(0)
            .min(bytes.len());
        let end = match usize::try_from(raw.stmt_len) {
            Ok(0) | Err(_) => bytes.len(),
            Ok(len) => (start + len).min(bytes.len()),
        };
        // The statement and the `;` after it.
        let mut stop = end;
        while stop < bytes.len() && bytes[stop].is_ascii_whitespace() {
            stop += 1;
        }
        if stop < bytes.len() && bytes[stop] == b';' {
            stop += 1;
        } else {
            stop = end;
        }
        for byte in &mut bytes[start..stop] {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
    }
    // Only ASCII bytes of whole statements were replaced.
    String::from_utf8(bytes).unwrap_or_else(|_| sql.to_string())
}

/// The statements of a verify script (Sqitch's `verify/`) as migsafe runs
/// them: inside the migration's transaction, under a savepoint rolled back
/// after. Sqitch's template wraps the checks in `BEGIN; … ROLLBACK;`; that
/// wrapper is blanked out (same lines, so error positions still point into
/// the file). Any other transaction control, or a statement that cannot run
/// in a transaction, is refused with the reason.
pub fn verify_body(sql: &str) -> Result<String, String> {
    let parsed =
        pg_query::parse(sql, 0).map_err(|e| format!("the SQL grammar cannot read it: {e}"))?;
    let kind =
        |raw: &pg_query::protobuf::RawStmt| match raw.stmt.as_ref().and_then(|n| n.node.as_ref()) {
            Some(NodeEnum::TransactionStmt(t)) => TransactionStmtKind::try_from(t.kind).ok(),
            _ => None,
        };
    let stmts = &parsed.protobuf.stmts;
    let wrapped = stmts.len() >= 2
        && matches!(
            stmts.first().and_then(kind),
            Some(TransactionStmtKind::TransStmtBegin | TransactionStmtKind::TransStmtStart)
        )
        && matches!(
            stmts.last().and_then(kind),
            Some(TransactionStmtKind::TransStmtRollback | TransactionStmtKind::TransStmtCommit)
        );
    let body = if wrapped {
        unwrap(sql)
    } else {
        sql.to_string()
    };
    if let Some((keyword, line)) = transaction_control(&body) {
        return Err(format!(
            "line {line}: {keyword}; a verify script runs inside the migration's transaction, so only a BEGIN at its top and a ROLLBACK or COMMIT at its end are allowed (they are left out)"
        ));
    }
    for raw in &pg_query::parse(&body, 0)
        .map_err(|e| format!("the SQL grammar cannot read it: {e}"))?
        .protobuf
        .stmts
    {
        if let Some(why) = raw
            .stmt
            .as_ref()
            .and_then(|n| n.node.as_ref())
            .and_then(needs_no_transaction)
        {
            return Err(format!(
                "{why} cannot run inside the migration's transaction, where a verify script runs"
            ));
        }
    }
    Ok(body)
}

/// The first line of a script the SQL grammar cannot read that holds what
/// only psql understands: a meta-command (`\set`, `\i`, `\connect`, a COPY
/// data block's `\.`) or a variable (`:name`, `:'name'`, `:"name"`). Sqitch
/// and hand-run scripts go through psql; migsafe sends SQL to the server, so
/// these must be named before anything runs, not reported as a syntax error.
pub fn psql_only(sql: &str) -> Option<(usize, String)> {
    if !sql.contains('\\') && !sql.contains(':') {
        return None;
    }
    let err = pg_query::parse(sql, 0).err()?;
    for (index, line) in sql.lines().enumerate() {
        if line.trim_start().starts_with('\\') {
            return Some((index + 1, line.trim().to_string()));
        }
    }
    let message = err.to_string();
    if message.contains("at or near \":\"") {
        let line = sql
            .lines()
            .position(|l| l.contains(":'") || l.contains(":\"") || l.contains(" :"))
            .map_or(1, |i| i + 1);
        let text = sql.lines().nth(line - 1).unwrap_or("").trim().to_string();
        return Some((line, text));
    }
    None
}

/// The line of a `BEGIN` the script never ends: run statement by statement,
/// everything after it would stay in an open transaction that the session
/// then rolls back, history row and all.
pub fn unterminated_block(sql: &str) -> Option<usize> {
    let statements = split(sql).ok()?;
    let mut open = None;
    for statement in &statements {
        if statement.opens {
            open = Some(statement.line);
        } else if statement.closes {
            open = None;
        }
    }
    open
}

/// Whether `sql` changes the session beyond its own transaction (`SET`
/// without LOCAL, `RESET`, `SET ROLE`, `SET SESSION AUTHORIZATION`, `DISCARD`,
/// `set_config(…, false)`): such a change would carry into the migrations
/// that run after it on the same connection, so the runner resets it.
pub fn changes_session(sql: &str) -> bool {
    const WORDS: [&[u8]; 2] = [b"set", b"discard"];
    if !mentions_any(sql, &WORDS) {
        return false;
    }
    // Unreadable: it may change anything.
    let Ok(parsed) = pg_query::parse(sql, 0) else {
        return true;
    };
    parsed.protobuf.nodes().into_iter().any(|(node, _, _, _)| match node {
        pg_query::NodeRef::VariableSetStmt(set) => !set.is_local,
        pg_query::NodeRef::DiscardStmt(_) => true,
        pg_query::NodeRef::FuncCall(call) => call.funcname.iter().any(|n| {
            matches!(n.node.as_ref(), Some(NodeEnum::String(s)) if s.sval.eq_ignore_ascii_case("set_config"))
        }),
        _ => false,
    })
}

/// Replaces every constant in a query with a placeholder (`$1`), so a query
/// seen in `pg_stat_activity` can be logged without the values it carries
/// (passwords in `ALTER ROLE`, personal data in `WHERE`).
pub fn redact_query(query: &str) -> String {
    match pg_query::normalize(query) {
        Ok(normalized) => normalized,
        Err(_) => {
            // Truncated by track_activity_query_size, or not SQL: keep only the
            // leading keyword, never the values.
            let keyword: String = query
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            format!(
                "{} … (not shown: {} characters)",
                keyword.to_uppercase(),
                query.chars().count()
            )
        }
    }
}

fn parse_message(err: &pg_query::Error) -> String {
    match err {
        pg_query::Error::Parse(message) | pg_query::Error::Split(message) => message.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn what_only_psql_reads_is_found() {
        assert_eq!(
            psql_only("\\set ON_ERROR_STOP 1\nSELECT 1;").map(|p| p.0),
            Some(1)
        );
        assert_eq!(
            psql_only("SELECT 1;\nCREATE SCHEMA :\"schema\";\n").map(|p| p.0),
            Some(2)
        );
        assert_eq!(psql_only("SELECT '\\x'::bytea, 1::int;"), None);
        assert_eq!(psql_only("SELECT 1;"), None);
    }

    #[test]
    fn verify_body_drops_sqitch_wrapper_and_refuses_control() {
        let body =
            verify_body("-- Verify users\nBEGIN;\nSELECT id FROM users WHERE FALSE;\nROLLBACK;\n")
                .unwrap();
        assert!(body.contains("SELECT id FROM users WHERE FALSE;"), "{body}");
        assert!(!body.to_lowercase().contains("begin"), "{body}");
        assert!(!body.to_lowercase().contains("rollback"), "{body}");
        assert_eq!(
            body.lines().count(),
            4,
            "lines are kept for error positions"
        );
        assert_eq!(verify_body("SELECT 1;").unwrap(), "SELECT 1;");
        let err = verify_body("SELECT 1;\nCOMMIT;\nSELECT 2;").unwrap_err();
        assert!(err.contains("COMMIT"), "{err}");
        let err = verify_body("CREATE INDEX CONCURRENTLY i ON t (a);").unwrap_err();
        assert!(err.contains("CONCURRENTLY"), "{err}");
        assert!(verify_body("SELEC 1").is_err());
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_around_dollar_quotes_comments_and_e_strings() {
        let sql = "-- header; not a statement\nCREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n/* a ; comment */ SELECT E'it\\'s; fine';\nCREATE INDEX CONCURRENTLY idx_a ON app.t (a)";
        let statements = split(sql).unwrap();
        assert_eq!(statements.len(), 3);
        assert!(statements[0].text.starts_with("CREATE FUNCTION"));
        assert!(statements[0].text.contains("SELECT 1; $body$"));
        assert!(statements[1].text.ends_with("'it\\'s; fine'"));
        assert_eq!(statements[2].line, 4);
        assert_eq!(
            statements[2].concurrent_index,
            Some(ConcurrentIndex {
                schema: Some("app".into()),
                name: Some("idx_a".into())
            })
        );
    }

    #[test]
    fn reports_the_parser_message() {
        let err = split("SELECT 1; this is not sql;").unwrap_err();
        assert!(err.contains("syntax error"), "{err}");
    }

    #[test]
    fn finds_transaction_control_but_not_savepoints() {
        assert_eq!(
            transaction_control("CREATE TABLE t (a int);\n\nCOMMIT;"),
            Some(("COMMIT", 3))
        );
        assert_eq!(
            transaction_control("BEGIN; SELECT 1;").map(|t| t.0),
            Some("BEGIN")
        );
        assert_eq!(
            transaction_control("SAVEPOINT a; RELEASE a; ROLLBACK TO a;"),
            None
        );
        assert_eq!(
            transaction_control(
                "CREATE FUNCTION f() RETURNS void AS $$ BEGIN END $$ LANGUAGE plpgsql;"
            ),
            None
        );
    }

    #[test]
    fn infers_how_a_script_must_run() {
        use super::{TransactionMode as M, transaction_mode, unwrap};
        assert_eq!(transaction_mode("CREATE TABLE t (id int);"), M::Plain);
        assert_eq!(
            transaction_mode("BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\n"),
            M::Wrapped
        );
        assert_eq!(
            transaction_mode(
                "BEGIN; CREATE TABLE a (id int); COMMIT; BEGIN; CREATE TABLE b (id int); COMMIT;"
            ),
            M::NoTransaction("its own BEGIN/COMMIT blocks")
        );
        assert_eq!(
            transaction_mode(
                "START TRANSACTION ISOLATION LEVEL SERIALIZABLE; CREATE TABLE a (id int); COMMIT;"
            ),
            M::NoTransaction("its own BEGIN/COMMIT blocks")
        );
        assert_eq!(
            transaction_mode("CREATE TABLE a (id int); COMMIT;"),
            M::NoTransaction("its own BEGIN/COMMIT blocks")
        );
        assert_eq!(
            transaction_mode("CREATE INDEX CONCURRENTLY i ON t (a);"),
            M::NoTransaction("CREATE INDEX CONCURRENTLY")
        );
        assert_eq!(
            transaction_mode("REINDEX INDEX CONCURRENTLY i;"),
            M::NoTransaction("REINDEX CONCURRENTLY")
        );
        assert_eq!(
            transaction_mode("VACUUM ANALYZE t;"),
            M::NoTransaction("VACUUM")
        );
        assert_eq!(transaction_mode("ANALYZE t;"), M::Plain);
        assert_eq!(
            transaction_mode(
                "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;"
            ),
            M::Plain
        );
        let sql = "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\n";
        let unwrapped = unwrap(sql);
        assert_eq!(unwrapped.len(), sql.len());
        assert_eq!(unwrapped.lines().count(), sql.lines().count());
        assert!(
            !unwrapped.contains("BEGIN") && !unwrapped.contains("COMMIT"),
            "{unwrapped}"
        );
        assert!(unwrapped.contains("CREATE TABLE t (id int);"));
    }

    #[test]
    fn finds_session_changes_but_not_local_ones() {
        use super::changes_session;
        assert!(changes_session(
            "SET search_path = billing; CREATE TABLE t (id int);"
        ));
        assert!(changes_session("SET ROLE app_owner"));
        assert!(changes_session("RESET search_path"));
        assert!(changes_session(
            "SELECT set_config('search_path', 'x', false)"
        ));
        assert!(!changes_session(
            "SET LOCAL lock_timeout = '1s'; ALTER TABLE t ALTER COLUMN a SET NOT NULL"
        ));
        assert!(!changes_session("UPDATE t SET a = 1"));
        assert!(!changes_session("CREATE TABLE t (id int)"));
    }

    #[test]
    fn redacts_constants() {
        let redacted = redact_query("ALTER ROLE app PASSWORD 'hunter2'");
        assert!(!redacted.contains("hunter2"), "{redacted}");
        let truncated = redact_query("UPDATE users SET email = 'a@b.c' WHERE id = 4");
        assert!(!truncated.contains("a@b.c"));
        assert!(!redact_query("SELECT 'secret' FROM (").contains("secret"));
    }

    proptest! {
        #[test]
        fn never_panics(sql in "\\PC{0,200}") {
            let _ = split(&sql);
            let _ = transaction_control(&sql);
            let _ = redact_query(&sql);
        }

        #[test]
        fn splits_generated_scripts(count in 1usize..8, body in "[a-z ;]{0,12}") {
            let script: String = (0..count)
                .map(|i| format!("CREATE FUNCTION f{i}() RETURNS text AS $$ SELECT '{body}' $$ LANGUAGE sql;\n"))
                .collect();
            let statements = split(&script).unwrap();
            prop_assert_eq!(statements.len(), count);
            for (i, statement) in statements.iter().enumerate() {
                prop_assert_eq!(statement.line, i + 1);
            }
        }
    }
}

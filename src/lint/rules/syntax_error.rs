//! `syntax-error`: SQL the PostgreSQL grammar cannot read.
//!
//! The engine reports it (the grammar fails before any rule could look at the
//! statement); this file holds its documentation and [`locate`], which asks
//! pg_query for the error's cursor position. The `pg_query` crate returns
//! only the message, so the position comes from the C library it links,
//! through its documented `pg_query_parse` entry point (`pg_query.h`).

#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int};

use pg_query::NodeEnum;

use super::{Hit, Rule};
use crate::lint::context::Context;
use crate::lint::engine::Severity;

/// A statement, or the rest of a file, that does not parse.
pub struct SyntaxError;

impl Rule for SyntaxError {
    fn id(&self) -> &'static str {
        "syntax-error"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn summary(&self) -> &'static str {
        "SQL the PostgreSQL grammar cannot read"
    }
    fn help(&self) -> &'static str {
        "correct the SQL at this line and column; until it parses, preflight fails and apply stops before this migration"
    }
    fn doc(&self) -> &'static str {
        "migsafe reads every statement with PostgreSQL's own grammar. One it cannot read \
would fail on the server too, so it is an error, with the line and column where the \
grammar stopped (the error cursor, as `psql` shows it), and preflight fails on it. \
The finding cannot be suppressed. Lint does not stop there: it goes on after the next \
`;` the scanner can find, so an unclosed parenthesis does not hide a dangerous \
statement further down the file.\n\n\
```sql\n-- syntax-error at 2:27, the `;`: the column list is never closed\nCREATE TABLE af (id bigint;\n\
-- still linted: require-concurrent-index\nCREATE INDEX af_id ON accounts (id);\n```"
    }
    fn check(&self, _statement: &NodeEnum, _context: &Context) -> Vec<Hit> {
        // Statements that reach the rules parsed; the engine reports the rest.
        Vec::new()
    }
}

/// What the grammar said about `sql`, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The parser's message (`syntax error at or near ";"`).
    pub message: String,
    /// Byte offset in `sql` of the token where it stopped (the end of `sql`
    /// for "at end of input"); `None` when the parser gave no position.
    pub offset: Option<usize>,
}

#[repr(C)]
struct PgQueryError {
    message: *mut c_char,
    funcname: *mut c_char,
    filename: *mut c_char,
    lineno: c_int,
    cursorpos: c_int,
    context: *mut c_char,
}

#[repr(C)]
struct PgQueryParseResult {
    parse_tree: *mut c_char,
    stderr_buffer: *mut c_char,
    error: *mut PgQueryError,
}

unsafe extern "C" {
    fn pg_query_parse(input: *const c_char) -> PgQueryParseResult;
    fn pg_query_free_parse_result(result: PgQueryParseResult);
}

/// Parses `sql` and, when it does not parse, returns the message and the
/// position of the error; `None` when it parses.
pub fn locate(sql: &str) -> Option<Located> {
    // A NUL byte cannot reach the C parser; the statement is unreadable there.
    let Ok(input) = CString::new(sql) else {
        return Some(Located {
            message: "the text holds a NUL byte".into(),
            offset: sql.find('\0'),
        });
    };
    // SAFETY: `input` is a valid NUL-terminated string that outlives the
    // call; the result is read only before it is freed, exactly once, with
    // the function pg_query.h pairs with `pg_query_parse`.
    let (message, cursor) = unsafe {
        let result = pg_query_parse(input.as_ptr());
        let found = if result.error.is_null() {
            None
        } else {
            let error = &*result.error;
            let message = if error.message.is_null() {
                String::from("syntax error")
            } else {
                CStr::from_ptr(error.message).to_string_lossy().into_owned()
            };
            Some((message, error.cursorpos))
        };
        pg_query_free_parse_result(result);
        found?
    };
    // The cursor counts characters from 1 (0: no position).
    let offset = usize::try_from(cursor).ok().filter(|&c| c > 0).map(|c| {
        sql.char_indices()
            .nth(c - 1)
            .map_or(sql.len(), |(byte, _)| byte)
    });
    Some(Located { message, offset })
}

#[cfg(test)]
mod tests {
    use super::locate;

    #[test]
    fn finds_the_token_where_the_grammar_stops() {
        let sql = "CREATE TABLE af (id bigint;";
        let found = locate(sql).expect("does not parse");
        assert_eq!(found.offset, Some(sql.find(';').unwrap_or(0)));
        assert!(found.message.contains("syntax error"), "{found:?}");
    }

    #[test]
    fn counts_characters_not_bytes_before_the_error() {
        let sql = "SELECT 'é€' FROM WHERE";
        let found = locate(sql).expect("does not parse");
        assert_eq!(found.offset, Some(sql.find("WHERE").unwrap_or(0)));
    }

    #[test]
    fn says_nothing_about_sql_that_parses() {
        assert_eq!(locate("CREATE TABLE t (id bigint);"), None);
    }
}

//! Everything that talks to PostgreSQL: connecting (TLS, redaction), the
//! history table, the namespace lock, running scripts, and the catalog
//! queries about other sessions.
//!
//! `db` knows nothing of the pipeline: it runs what it is given and reports
//! what happened in typed values.

pub mod activity;
pub mod catalog;
pub mod connect;
pub mod execute;
pub mod history;
pub mod lock;
pub mod notices;
pub mod repeatables;
pub mod replicas;
pub mod tls;

pub(crate) use connect::Db;
pub use connect::{
    ConnectionSettings, PasswordFuture, PasswordSource, register_public_word, register_secret,
    register_secret_in_sql, scrub,
};

/// SQL that creates schema `name` when it is missing. Not `CREATE SCHEMA IF
/// NOT EXISTS`: that asks for CREATE on the database even when the schema
/// is there, which a role that owns its schemas may not have.
pub fn create_schema_if_missing_sql(name: &str) -> String {
    let quoted = quote_ident(name);
    format!(
        "DO $migsafe_schema$ BEGIN IF to_regnamespace('{}') IS NULL THEN CREATE SCHEMA {quoted}; END IF; END $migsafe_schema$;",
        quoted.replace('\'', "''")
    )
}

/// Quotes an identifier for SQL text (`my"schema` → `"my""schema"`). The one
/// place identifiers are turned into SQL; values always go as parameters.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a value as a SQL string literal, for the psql script of
/// `apply --sql` only (a script has no bind parameters). The script sets
/// `standard_conforming_strings = on`, under which only `'` needs doubling.
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(super::quote_ident("migsafe"), "\"migsafe\"");
        assert_eq!(super::quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(super::quote_literal("it's"), "'it''s'");
    }
}

//! What the linter knows besides the statement: the rest of the plan, and,
//! with a database, the live tables.

use std::collections::{HashMap, HashSet};

/// A live table's size, from the catalog.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TableSize {
    /// Bytes, with indexes and TOAST.
    pub bytes: i64,
    /// Estimated rows (`reltuples`, or from the pages when never analyzed).
    pub rows: f64,
    /// The table was never analyzed: `rows` is its pages times the rows that
    /// fit in a page, not a statistic.
    pub estimated_from_pages: bool,
}

/// Everything rules may consult.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Tables created earlier in the plan (unqualified, lower case): DDL on
    /// them blocks nobody.
    pub created: HashSet<String>,
    /// Live table sizes by unqualified and qualified name, with a database.
    pub sizes: HashMap<String, TableSize>,
    /// `server_version_num`, with a database.
    pub server_version: Option<i32>,
    /// Tables at least this big make rewrite and lock findings errors;
    /// smaller ones warnings.
    pub large_table_bytes: i64,
    /// The script runs inside a transaction.
    pub transactional: bool,
}

impl Context {
    /// True when the table was created earlier in this plan.
    pub fn is_new(&self, table: &str) -> bool {
        self.created
            .contains(&super::ast::unqualified(table).to_lowercase())
    }

    /// The live size of a table, when a database was given.
    pub fn size(&self, table: &str) -> Option<TableSize> {
        self.sizes
            .get(table)
            .or_else(|| self.sizes.get(super::ast::unqualified(table)))
            .copied()
    }

    /// ` (users: 48.2 GB, ~1,000,000 rows)` for messages, when known; for a
    /// table never analyzed, says the rows are estimated from its size.
    pub fn describe(&self, table: &str) -> String {
        match self.size(table) {
            Some(size) => format!(
                " (`{table}`: {}, ~{} rows{})",
                crate::pipeline::preflight::human_bytes(u64::try_from(size.bytes).unwrap_or(0)),
                size.rows.max(0.0).round(),
                if size.estimated_from_pages {
                    " estimated from its pages: never analyzed"
                } else {
                    ""
                }
            ),
            None => String::new(),
        }
    }

    /// Error for a large (or unknown-size) table, warning for a small one:
    /// live sizes lower the severity where they can.
    pub fn by_size(&self, table: &str, default: super::Severity) -> super::Severity {
        match self.size(table) {
            Some(size) if size.bytes < self.large_table_bytes => super::Severity::Warning,
            Some(_) => super::Severity::Error,
            None => default,
        }
    }
}

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
    /// Relations created earlier in the plan (unqualified, lower case), in
    /// every form (tables, partitions, `CREATE TABLE AS`, `SELECT INTO`, views,
    /// materialized views) and under the names renames gave them: DDL on
    /// them blocks nobody.
    pub created: HashSet<String>,
    /// Renames earlier in the plan: new name → old name (unqualified, lower
    /// case), so a renamed live table is still the live table.
    pub renamed: HashMap<String, String>,
    /// With a database: every relation that exists there (qualified and
    /// unqualified, lower case). A relation that does not exist yet is new
    /// and empty, whatever the plan's earlier statements are.
    pub existing: Option<HashSet<String>>,
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
    /// True when the relation was created earlier in this plan, or, with a
    /// database, does not exist there (under its name before any rename).
    pub fn is_new(&self, table: &str) -> bool {
        let mut name = super::ast::unqualified(table).to_lowercase();
        if self.created.contains(&name) {
            return true;
        }
        // Follow renames back to the name the relation has in the database.
        let mut qualified = table.to_lowercase();
        for _ in 0..64 {
            match self.renamed.get(&name) {
                Some(old) => {
                    name = old.clone();
                    qualified = old.clone();
                    if self.created.contains(&name) {
                        return true;
                    }
                }
                None => break,
            }
        }
        match &self.existing {
            Some(existing) => !existing.contains(&qualified) && !existing.contains(&name),
            None => false,
        }
    }

    /// Records what a statement creates or renames, for the statements after it.
    pub fn learn(&mut self, node: &pg_query::NodeEnum) {
        use pg_query::NodeEnum;
        use pg_query::protobuf::ObjectType;
        let mut create = |relation: Option<&pg_query::protobuf::RangeVar>| {
            if let Some(r) = relation {
                self.created.insert(r.relname.to_lowercase());
            }
        };
        match node {
            NodeEnum::CreateStmt(c) => create(c.relation.as_ref()),
            NodeEnum::CreateTableAsStmt(c) => {
                create(c.into.as_ref().and_then(|i| i.rel.as_ref()));
            }
            NodeEnum::SelectStmt(s) => create(s.into_clause.as_ref().and_then(|i| i.rel.as_ref())),
            NodeEnum::ViewStmt(v) => create(v.view.as_ref()),
            NodeEnum::CreateForeignTableStmt(f) => {
                create(f.base_stmt.as_ref().and_then(|b| b.relation.as_ref()));
            }
            NodeEnum::RenameStmt(r) => {
                let kind = ObjectType::try_from(r.rename_type).unwrap_or(ObjectType::Undefined);
                let relation_kind = matches!(
                    kind,
                    ObjectType::ObjectTable
                        | ObjectType::ObjectView
                        | ObjectType::ObjectMatview
                        | ObjectType::ObjectForeignTable
                );
                if let (true, Some(relation)) = (relation_kind, r.relation.as_ref())
                    && !r.newname.is_empty()
                {
                    let old = relation.relname.to_lowercase();
                    let new = r.newname.to_lowercase();
                    if self.created.contains(&old) {
                        self.created.insert(new);
                    } else {
                        self.renamed.insert(new, old);
                    }
                }
            }
            _ => {}
        }
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

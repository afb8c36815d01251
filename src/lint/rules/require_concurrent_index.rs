//! `require-concurrent-index`: CREATE INDEX without CONCURRENTLY on an existing table.

use pg_query::NodeEnum;

use super::{Hit, Rule};
use crate::lint::context::Context;
use crate::lint::engine::Severity;

/// CREATE INDEX without CONCURRENTLY on a table that already exists.
pub struct RequireConcurrentIndex;

impl Rule for RequireConcurrentIndex {
    fn id(&self) -> &'static str {
        "require-concurrent-index"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn summary(&self) -> &'static str {
        "CREATE INDEX without CONCURRENTLY on an existing table"
    }
    fn help(&self) -> &'static str {
        "use CREATE INDEX CONCURRENTLY in a `-- migsafe:no-transaction` migration"
    }
    fn doc(&self) -> &'static str {
        "A plain `CREATE INDEX` takes a SHARE lock on the table for the whole build: every \
INSERT, UPDATE and DELETE waits until the index is built, which on a big table is \
minutes. `CREATE INDEX CONCURRENTLY` takes SHARE UPDATE EXCLUSIVE, which lets writes \
go on; it cannot run in a transaction, so it goes in a no-transaction migration of \
its own. An index on a table created earlier in the same plan is fine.\n\n\
```sql\n-- migsafe:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS orders_created_at_idx ON orders (created_at);\n```\n\n`apply --online` (or `-- migsafe:online` in the file, or `[defaults] online = true`) runs the statement as written in this safe form, step by step, and resumes an interrupted run at its step: see [online.md](online.md)."
    }
    fn check(&self, statement: &NodeEnum, context: &Context) -> Vec<Hit> {
        let NodeEnum::IndexStmt(index) = statement else {
            return Vec::new();
        };
        let table = crate::lint::ast::table_name(index.relation.as_ref());
        if index.concurrent || context.is_new(&table) {
            return Vec::new();
        }
        vec![Hit::with(
            format!(
                "CREATE INDEX on `{table}`{} takes a SHARE lock that blocks every write to it until the index is built",
                context.describe(&table)
            ),
            context.by_size(&table, Severity::Error),
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::rules::test_support::{check, with_new};

    #[test]
    fn flags_a_blocking_index_on_an_existing_table() {
        let hits = check(
            &RequireConcurrentIndex,
            "CREATE INDEX i ON app.orders (created_at);",
            &with_new(&[]),
        );
        assert_eq!(hits.len(), 1);
        assert!(hits[0].message.contains("`app.orders`"));
    }

    #[test]
    fn accepts_concurrently_and_tables_created_in_the_plan() {
        assert!(
            check(
                &RequireConcurrentIndex,
                "CREATE INDEX CONCURRENTLY i ON orders (a);",
                &with_new(&[])
            )
            .is_empty()
        );
        assert!(
            check(
                &RequireConcurrentIndex,
                "CREATE INDEX i ON orders (a);",
                &with_new(&["orders"])
            )
            .is_empty()
        );
    }

    #[test]
    fn a_small_live_table_is_only_a_warning() {
        let mut context = with_new(&[]);
        context.sizes.insert(
            "orders".into(),
            crate::lint::TableSize {
                bytes: 8192,
                rows: 3.0,
                estimated_from_pages: false,
            },
        );
        let hits = check(
            &RequireConcurrentIndex,
            "CREATE INDEX i ON orders (a);",
            &context,
        );
        assert_eq!(hits[0].severity, Some(Severity::Warning));
        assert!(hits[0].message.contains("8.2 kB"));
    }
}

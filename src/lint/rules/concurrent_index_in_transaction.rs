//! `concurrent-index-in-transaction`: CONCURRENTLY in a transactional migration.

use pg_query::NodeEnum;

use super::{Hit, Rule};
use crate::lint::context::Context;
use crate::lint::engine::Severity;

/// CREATE/DROP INDEX CONCURRENTLY or REINDEX CONCURRENTLY in a transaction.
pub struct ConcurrentIndexInTransaction;

impl Rule for ConcurrentIndexInTransaction {
    fn id(&self) -> &'static str {
        "concurrent-index-in-transaction"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn summary(&self) -> &'static str {
        "CONCURRENTLY inside a transactional migration"
    }
    fn help(&self) -> &'static str {
        "put `-- migsafe:no-transaction` at the top of the file"
    }
    fn doc(&self) -> &'static str {
        "`CREATE INDEX CONCURRENTLY`, `DROP INDEX CONCURRENTLY` and `REINDEX … CONCURRENTLY` \
cannot run inside a transaction block: PostgreSQL rejects them (SQLSTATE 25001) and \
the migration fails. migsafe runs a migration in a transaction unless its header says \
otherwise.\n\n```sql\n-- migsafe:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS users_email_idx ON users (email);\n```"
    }
    fn check(&self, statement: &NodeEnum, context: &Context) -> Vec<Hit> {
        if !context.transactional {
            return Vec::new();
        }
        let concurrent = match statement {
            NodeEnum::IndexStmt(index) => index.concurrent,
            NodeEnum::DropStmt(drop) => drop.concurrent,
            NodeEnum::ReindexStmt(reindex) => {
                super::blocking_maintenance::has_option(&reindex.params, "concurrently")
            }
            _ => false,
        };
        if concurrent {
            vec![Hit::new(
                "CONCURRENTLY cannot run inside a transaction block; this migration would fail with SQLSTATE 25001",
            )]
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::rules::test_support::{check, with_new};

    #[test]
    fn flags_concurrently_in_a_transaction() {
        assert_eq!(
            check(
                &ConcurrentIndexInTransaction,
                "CREATE INDEX CONCURRENTLY i ON t (a);",
                &with_new(&[])
            )
            .len(),
            1
        );
        assert_eq!(
            check(
                &ConcurrentIndexInTransaction,
                "DROP INDEX CONCURRENTLY i;",
                &with_new(&[])
            )
            .len(),
            1
        );
    }

    #[test]
    fn accepts_it_outside_a_transaction() {
        let mut context = with_new(&[]);
        context.transactional = false;
        assert!(
            check(
                &ConcurrentIndexInTransaction,
                "CREATE INDEX CONCURRENTLY i ON t (a);",
                &context
            )
            .is_empty()
        );
        assert!(
            check(
                &ConcurrentIndexInTransaction,
                "CREATE INDEX i ON t (a);",
                &with_new(&[])
            )
            .is_empty()
        );
    }
}

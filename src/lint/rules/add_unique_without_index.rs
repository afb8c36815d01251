//! `add-unique-without-index`: ADD UNIQUE / PRIMARY KEY builds its index while locking.

use pg_query::NodeEnum;
use pg_query::protobuf::ConstrType;

use super::{Hit, Rule, constraints_added_to_existing};
use crate::lint::context::Context;
use crate::lint::engine::Severity;

/// ADD UNIQUE / PRIMARY KEY without USING INDEX on an existing table.
pub struct AddUniqueWithoutIndex;

impl Rule for AddUniqueWithoutIndex {
    fn id(&self) -> &'static str {
        "add-unique-without-index"
    }
    fn severity(&self) -> Severity {
        Severity::Warning
    }
    fn summary(&self) -> &'static str {
        "ADD UNIQUE / PRIMARY KEY without an existing index"
    }
    fn help(&self) -> &'static str {
        "CREATE UNIQUE INDEX CONCURRENTLY first, then ADD CONSTRAINT … USING INDEX"
    }
    fn doc(&self) -> &'static str {
        "`ADD CONSTRAINT … UNIQUE` or `PRIMARY KEY` builds its index under an ACCESS \
EXCLUSIVE lock: no reads, no writes until it is built. Build the index concurrently \
first, then attach it, which is instant.\n\n```sql\n-- migsafe:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email);\n-- next migration:\nALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key;\n```\n\n`apply --online` (or `-- migsafe:online` in the file, or `[defaults] online = true`) runs the statement as written in this safe form, step by step, and resumes an interrupted run at its step: see [online.md](online.md)."
    }
    fn check(&self, statement: &NodeEnum, context: &Context) -> Vec<Hit> {
        let Some((table, constraints)) = constraints_added_to_existing(statement, context) else {
            return Vec::new();
        };
        let mut hits = Vec::new();
        for con in constraints {
            let kind = if con.contype == ConstrType::ConstrUnique as i32 {
                "UNIQUE"
            } else if con.contype == ConstrType::ConstrPrimary as i32 {
                "PRIMARY KEY"
            } else {
                continue;
            };
            if !con.indexname.is_empty() {
                continue;
            }
            hits.push(Hit::with(
                format!(
                    "{kind} on `{table}`{} builds its index under ACCESS EXCLUSIVE (reads and writes blocked)",
                    context.describe(&table)
                ),
                context.by_size(&table, Severity::Warning),
            ));
        }
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::rules::test_support::{check, with_new};

    #[test]
    fn flags_unique_and_primary_key_without_index() {
        assert_eq!(
            check(
                &AddUniqueWithoutIndex,
                "ALTER TABLE u ADD CONSTRAINT k UNIQUE (email);",
                &with_new(&[])
            )
            .len(),
            1
        );
        assert_eq!(
            check(
                &AddUniqueWithoutIndex,
                "ALTER TABLE u ADD PRIMARY KEY (id);",
                &with_new(&[])
            )
            .len(),
            1
        );
    }

    #[test]
    fn accepts_using_index_and_new_tables() {
        assert!(
            check(
                &AddUniqueWithoutIndex,
                "ALTER TABLE u ADD CONSTRAINT k UNIQUE USING INDEX k;",
                &with_new(&[])
            )
            .is_empty()
        );
        assert!(
            check(
                &AddUniqueWithoutIndex,
                "ALTER TABLE u ADD PRIMARY KEY (id);",
                &with_new(&["u"])
            )
            .is_empty()
        );
    }
}

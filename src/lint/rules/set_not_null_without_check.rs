//! `set-not-null-without-check`: SET NOT NULL scans the table under ACCESS EXCLUSIVE.

use pg_query::NodeEnum;
use pg_query::protobuf::AlterTableType;

use super::{Hit, Rule, existing_table_changes};
use crate::lint::context::Context;
use crate::lint::engine::Severity;

/// ALTER COLUMN … SET NOT NULL on an existing table.
pub struct SetNotNullWithoutCheck;

impl Rule for SetNotNullWithoutCheck {
    fn id(&self) -> &'static str {
        "set-not-null-without-check"
    }
    fn severity(&self) -> Severity {
        Severity::Warning
    }
    fn summary(&self) -> &'static str {
        "SET NOT NULL without a validated CHECK"
    }
    fn help(&self) -> &'static str {
        "add CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL"
    }
    fn doc(&self) -> &'static str {
        "`SET NOT NULL` scans the whole table to prove there is no NULL, holding an ACCESS \
EXCLUSIVE lock (reads and writes blocked) for the scan. Since PostgreSQL 12 the scan \
is skipped when a validated `CHECK (col IS NOT NULL)` exists, and that check can be \
validated without blocking writes.\n\n```sql\nALTER TABLE users ADD CONSTRAINT users_email_not_null CHECK (email IS NOT NULL) NOT VALID;\n-- next migration:\nALTER TABLE users VALIDATE CONSTRAINT users_email_not_null;\nALTER TABLE users ALTER COLUMN email SET NOT NULL;\nALTER TABLE users DROP CONSTRAINT users_email_not_null;\n```\n\n`apply --online` (or `-- migsafe:online` in the file, or `[defaults] online = true`) runs the statement as written in this safe form, step by step, and resumes an interrupted run at its step: see [online.md](online.md)."
    }
    fn check(&self, statement: &NodeEnum, context: &Context) -> Vec<Hit> {
        let Some((table, cmds)) =
            existing_table_changes(statement, context, AlterTableType::AtSetNotNull)
        else {
            return Vec::new();
        };
        cmds.into_iter()
            .map(|c| {
                Hit::with(
                    format!(
                        "SET NOT NULL on `{table}.{}` scans `{table}`{} under ACCESS EXCLUSIVE unless a validated CHECK (… IS NOT NULL) exists",
                        c.name,
                        context.describe(&table)
                    ),
                    context.by_size(&table, Severity::Warning),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::rules::test_support::{check, with_new};

    #[test]
    fn flags_set_not_null() {
        assert_eq!(
            check(
                &SetNotNullWithoutCheck,
                "ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
                &with_new(&[])
            )
            .len(),
            1
        );
    }

    #[test]
    fn accepts_new_tables_and_drop_not_null() {
        assert!(
            check(
                &SetNotNullWithoutCheck,
                "ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
                &with_new(&["users"])
            )
            .is_empty()
        );
        assert!(
            check(
                &SetNotNullWithoutCheck,
                "ALTER TABLE users ALTER COLUMN email DROP NOT NULL;",
                &with_new(&[])
            )
            .is_empty()
        );
    }
}

//! `alter-column-type`: ALTER COLUMN … TYPE usually rewrites the table.

use pg_query::NodeEnum;
use pg_query::protobuf::AlterTableType;

use super::{Hit, Rule, existing_table_changes};
use crate::lint::context::Context;
use crate::lint::engine::Severity;

/// ALTER COLUMN … TYPE on an existing table.
pub struct AlterColumnType;

impl Rule for AlterColumnType {
    fn id(&self) -> &'static str {
        "alter-column-type"
    }
    fn severity(&self) -> Severity {
        Severity::Warning
    }
    fn summary(&self) -> &'static str {
        "ALTER COLUMN … TYPE (table rewrite)"
    }
    fn help(&self) -> &'static str {
        "add a new column, backfill, switch readers and writers, drop the old column"
    }
    fn doc(&self) -> &'static str {
        "Changing a column's type rewrites the table and rebuilds its indexes under an \
ACCESS EXCLUSIVE lock, blocking reads and writes for the whole rewrite. Only a few \
changes are catalog-only (`varchar(n)` to a larger `n` or to `text`). For anything \
else, migrate in steps.\n\n```sql\nALTER TABLE events ADD COLUMN payload_new jsonb;\n-- backfill in batches, dual-write from the application, then:\nALTER TABLE events RENAME COLUMN payload TO payload_old;\nALTER TABLE events RENAME COLUMN payload_new TO payload;\n```\n\n`--online` has no online form for it: the table is rewritten whatever the steps. Add a new column, fill it with a `-- migsafe:backfill` migration, and switch over (see [online.md](online.md))."
    }
    fn check(&self, statement: &NodeEnum, context: &Context) -> Vec<Hit> {
        let Some((table, cmds)) =
            existing_table_changes(statement, context, AlterTableType::AtAlterColumnType)
        else {
            return Vec::new();
        };
        cmds.into_iter()
            .map(|c| {
                Hit::with(
                    format!(
                        "changing the type of `{table}.{}` rewrites `{table}`{} under ACCESS EXCLUSIVE (reads and writes blocked)",
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
    fn flags_type_changes_on_existing_tables() {
        assert_eq!(
            check(
                &AlterColumnType,
                "ALTER TABLE t ALTER COLUMN n TYPE bigint;",
                &with_new(&[])
            )
            .len(),
            1
        );
    }

    #[test]
    fn accepts_new_tables_and_other_alters() {
        assert!(
            check(
                &AlterColumnType,
                "ALTER TABLE t ALTER COLUMN n TYPE bigint;",
                &with_new(&["t"])
            )
            .is_empty()
        );
        assert!(
            check(
                &AlterColumnType,
                "ALTER TABLE t ALTER COLUMN n SET DEFAULT 1;",
                &with_new(&[])
            )
            .is_empty()
        );
    }
}

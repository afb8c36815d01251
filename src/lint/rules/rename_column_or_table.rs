//! `rename-column-or-table`: renames break the application that is running.

use pg_query::NodeEnum;
use pg_query::protobuf::ObjectType;

use super::{Hit, Rule};
use crate::lint::context::Context;
use crate::lint::engine::Severity;

/// ALTER TABLE … RENAME (COLUMN) on an existing table.
pub struct RenameColumnOrTable;

impl Rule for RenameColumnOrTable {
    fn id(&self) -> &'static str {
        "rename-column-or-table"
    }
    fn severity(&self) -> Severity {
        Severity::Warning
    }
    fn summary(&self) -> &'static str {
        "RENAME of a column or table (breaks the running application)"
    }
    fn help(&self) -> &'static str {
        "add the new name, dual-write, move readers, then drop the old name"
    }
    fn doc(&self) -> &'static str {
        "A rename is instant, but the application version that is running still uses \
the old name and starts failing the moment the migration commits; during a rolling \
deploy, old and new versions run side by side. Expand and contract instead.\n\n\
```sql\nALTER TABLE users ADD COLUMN full_name text;\n-- deploy code that writes both, backfill, deploy code that reads full_name, then:\nALTER TABLE users DROP COLUMN name;\n```"
    }
    fn check(&self, statement: &NodeEnum, context: &Context) -> Vec<Hit> {
        let NodeEnum::RenameStmt(rename) = statement else {
            return Vec::new();
        };
        let table = crate::lint::ast::table_name(rename.relation.as_ref());
        if context.is_new(&table) {
            return Vec::new();
        }
        let what = if rename.rename_type == ObjectType::ObjectColumn as i32 {
            format!(
                "renaming column `{table}.{}` to `{}`",
                rename.subname, rename.newname
            )
        } else if rename.rename_type == ObjectType::ObjectTable as i32 {
            format!("renaming table `{table}` to `{}`", rename.newname)
        } else {
            return Vec::new();
        };
        vec![Hit::new(format!(
            "{what} breaks every running query that uses the old name"
        ))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::rules::test_support::{check, with_new};

    #[test]
    fn flags_column_and_table_renames() {
        assert_eq!(
            check(
                &RenameColumnOrTable,
                "ALTER TABLE users RENAME COLUMN name TO full_name;",
                &with_new(&[])
            )
            .len(),
            1
        );
        assert_eq!(
            check(
                &RenameColumnOrTable,
                "ALTER TABLE users RENAME TO people;",
                &with_new(&[])
            )
            .len(),
            1
        );
    }

    #[test]
    fn accepts_other_renames_and_new_tables() {
        assert!(
            check(
                &RenameColumnOrTable,
                "ALTER INDEX i RENAME TO j;",
                &with_new(&[])
            )
            .is_empty()
        );
        assert!(
            check(
                &RenameColumnOrTable,
                "ALTER TABLE users RENAME TO people;",
                &with_new(&["users"])
            )
            .is_empty()
        );
    }
}

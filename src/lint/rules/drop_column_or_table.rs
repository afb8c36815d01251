//! `drop-column-or-table`: destructive, and breaks the running application.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ObjectType};

use super::{Hit, Rule, existing_table_changes};
use crate::lint::context::Context;
use crate::lint::engine::Severity;

/// DROP TABLE or ALTER TABLE … DROP COLUMN.
pub struct DropColumnOrTable;

impl Rule for DropColumnOrTable {
    fn id(&self) -> &'static str {
        "drop-column-or-table"
    }
    fn severity(&self) -> Severity {
        Severity::Warning
    }
    fn summary(&self) -> &'static str {
        "DROP TABLE / DROP COLUMN (destructive)"
    }
    fn help(&self) -> &'static str {
        "stop using it in the application first; keep a backup; then drop"
    }
    fn doc(&self) -> &'static str {
        "Dropping a table or column destroys its data (only a backup brings it back) and \
breaks any running code that still uses it. Deploy the application that no longer \
uses it first, then drop it in a later migration; suppress this finding there with \
a reason.\n\n```sql\n-- migsafe:allow drop-column-or-table -- unused since release 42\nALTER TABLE users DROP COLUMN legacy_flags;\n```"
    }
    fn check(&self, statement: &NodeEnum, context: &Context) -> Vec<Hit> {
        if let NodeEnum::DropStmt(drop) = statement {
            if drop.remove_type != ObjectType::ObjectTable as i32 {
                return Vec::new();
            }
            return drop
                .objects
                .iter()
                .filter_map(|o| match o.node.as_ref() {
                    Some(NodeEnum::List(list)) => {
                        Some(crate::lint::ast::strings(&list.items).join("."))
                    }
                    _ => None,
                })
                .filter(|table| !context.is_new(table))
                .map(|table| {
                    Hit::new(format!(
                        "DROP TABLE `{table}`{} destroys its data",
                        context.describe(&table)
                    ))
                })
                .collect();
        }
        let Some((table, cmds)) =
            existing_table_changes(statement, context, AlterTableType::AtDropColumn)
        else {
            return Vec::new();
        };
        cmds.into_iter()
            .map(|c| {
                Hit::new(format!(
                    "dropping `{table}.{}` destroys its data and breaks running code that still reads it",
                    c.name
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::rules::test_support::{check, with_new};

    #[test]
    fn flags_drops() {
        assert_eq!(
            check(&DropColumnOrTable, "DROP TABLE app.users;", &with_new(&[])).len(),
            1
        );
        assert_eq!(
            check(
                &DropColumnOrTable,
                "ALTER TABLE users DROP COLUMN name;",
                &with_new(&[])
            )
            .len(),
            1
        );
    }

    #[test]
    fn accepts_tables_created_in_the_plan_and_other_drops() {
        assert!(
            check(
                &DropColumnOrTable,
                "DROP TABLE users;",
                &with_new(&["users"])
            )
            .is_empty()
        );
        assert!(check(&DropColumnOrTable, "DROP INDEX i;", &with_new(&[])).is_empty());
    }
}

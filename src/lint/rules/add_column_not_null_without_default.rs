//! `add-column-not-null-without-default`: ADD COLUMN … NOT NULL with no default.

use pg_query::NodeEnum;
use pg_query::protobuf::ConstrType;

use super::{Hit, Rule, new_columns};
use crate::lint::context::Context;
use crate::lint::engine::Severity;

/// ADD COLUMN … NOT NULL without a DEFAULT on an existing table.
pub struct AddColumnNotNullWithoutDefault;

/// The column's constraints of one kind.
pub fn has_constraint(column: &pg_query::protobuf::ColumnDef, kind: ConstrType) -> bool {
    column.constraints.iter().any(|c| {
        matches!(c.node.as_ref(), Some(NodeEnum::Constraint(con)) if con.contype == kind as i32)
    })
}

impl Rule for AddColumnNotNullWithoutDefault {
    fn id(&self) -> &'static str {
        "add-column-not-null-without-default"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn summary(&self) -> &'static str {
        "ADD COLUMN … NOT NULL without a DEFAULT"
    }
    fn help(&self) -> &'static str {
        "add it nullable (or with a constant DEFAULT), backfill, then enforce NOT NULL"
    }
    fn doc(&self) -> &'static str {
        "Adding a NOT NULL column without a default fails on any table that has rows \
(`column … contains null values`), so the migration works on an empty development \
database and breaks in production. Add the column with a constant default (since \
PostgreSQL 11 a catalog-only change), or nullable, backfill in batches, and enforce \
NOT NULL afterwards.\n\n```sql\nALTER TABLE users ADD COLUMN plan text NOT NULL DEFAULT 'free';\n-- or: ADD COLUMN plan text; backfill; then see set-not-null-without-check\n```"
    }
    fn check(&self, statement: &NodeEnum, context: &Context) -> Vec<Hit> {
        if !matches!(statement, NodeEnum::AlterTableStmt(_)) {
            return Vec::new();
        }
        new_columns(statement)
            .into_iter()
            .filter(|(table, _)| !context.is_new(table))
            .filter(|(_, col)| {
                let not_null = col.is_not_null || has_constraint(col, ConstrType::ConstrNotnull);
                let default = col.raw_default.is_some()
                    || has_constraint(col, ConstrType::ConstrDefault)
                    || !col.identity.is_empty()
                    || has_constraint(col, ConstrType::ConstrIdentity)
                    || has_constraint(col, ConstrType::ConstrGenerated);
                not_null && !default
            })
            .map(|(table, col)| {
                Hit::new(format!(
                    "column `{}` is added NOT NULL without a default to `{table}`{}: this fails as soon as the table has a row",
                    col.colname,
                    context.describe(&table)
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
    fn flags_not_null_without_default() {
        assert_eq!(
            check(
                &AddColumnNotNullWithoutDefault,
                "ALTER TABLE users ADD COLUMN plan text NOT NULL;",
                &with_new(&[])
            )
            .len(),
            1
        );
    }

    #[test]
    fn accepts_defaults_nullable_columns_and_new_tables() {
        for sql in [
            "ALTER TABLE users ADD COLUMN plan text NOT NULL DEFAULT 'free';",
            "ALTER TABLE users ADD COLUMN plan text;",
            "ALTER TABLE users ADD COLUMN id2 bigint GENERATED ALWAYS AS IDENTITY NOT NULL;",
            "CREATE TABLE users (plan text NOT NULL);",
        ] {
            assert!(
                check(&AddColumnNotNullWithoutDefault, sql, &with_new(&[])).is_empty(),
                "{sql}"
            );
        }
        assert!(
            check(
                &AddColumnNotNullWithoutDefault,
                "ALTER TABLE users ADD COLUMN plan text NOT NULL;",
                &with_new(&["users"])
            )
            .is_empty()
        );
    }
}

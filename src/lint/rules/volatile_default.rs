//! `volatile-default`: ADD COLUMN with a volatile default rewrites the table.

use pg_query::NodeEnum;
use pg_query::protobuf::ConstrType;

use super::{Hit, Rule, new_columns};
use crate::lint::context::Context;
use crate::lint::engine::Severity;

/// ADD COLUMN … DEFAULT `<volatile function>` on an existing table.
pub struct VolatileDefault;

/// Functions whose value differs per row: a default calling one must be
/// computed for every existing row.
const VOLATILE: [&str; 8] = [
    "random",
    "clock_timestamp",
    "timeofday",
    "gen_random_uuid",
    "uuid_generate_v4",
    "uuid_generate_v1",
    "nextval",
    "txid_current",
];

impl Rule for VolatileDefault {
    fn id(&self) -> &'static str {
        "volatile-default"
    }
    fn severity(&self) -> Severity {
        Severity::Warning
    }
    fn summary(&self) -> &'static str {
        "ADD COLUMN with a volatile DEFAULT (table rewrite)"
    }
    fn help(&self) -> &'static str {
        "add the column without a default, backfill in batches, then SET DEFAULT"
    }
    fn doc(&self) -> &'static str {
        "Since PostgreSQL 11 a constant default is stored in the catalog and `ADD COLUMN` \
is instant. A volatile default (`gen_random_uuid()`, `clock_timestamp()`, \
`random()`, `nextval(…)`) must be evaluated for every existing row: the table is \
rewritten under an ACCESS EXCLUSIVE lock that blocks reads and writes for the whole \
rewrite.\n\n```sql\nALTER TABLE orders ADD COLUMN public_id uuid;\n-- backfill in batches:\nUPDATE orders SET public_id = gen_random_uuid() WHERE id BETWEEN 1 AND 10000 AND public_id IS NULL;\nALTER TABLE orders ALTER COLUMN public_id SET DEFAULT gen_random_uuid();\n```\n\n`--online` has no online form for it: add the column without the default, then fill it with a `-- migsafe:backfill` migration (see [online.md](online.md))."
    }
    fn check(&self, statement: &NodeEnum, context: &Context) -> Vec<Hit> {
        if !matches!(statement, NodeEnum::AlterTableStmt(_)) {
            return Vec::new();
        }
        let mut hits = Vec::new();
        for (table, column) in new_columns(statement) {
            if context.is_new(&table) {
                continue;
            }
            let mut defaults: Vec<Option<&pg_query::protobuf::Node>> =
                vec![column.raw_default.as_deref()];
            for constraint in &column.constraints {
                if let Some(NodeEnum::Constraint(con)) = constraint.node.as_ref()
                    && con.contype == ConstrType::ConstrDefault as i32
                {
                    defaults.push(con.raw_expr.as_deref());
                }
            }
            let volatile: Vec<String> = defaults
                .into_iter()
                .flat_map(crate::lint::ast::called_functions)
                .filter(|f| VOLATILE.contains(&f.as_str()))
                .collect();
            if let Some(function) = volatile.first() {
                hits.push(Hit::with(
                    format!(
                        "column `{}` gets a volatile default ({function}()): `{table}`{} is rewritten under ACCESS EXCLUSIVE, blocking reads and writes",
                        column.colname,
                        context.describe(&table)
                    ),
                    context.by_size(&table, Severity::Warning),
                ));
            }
        }
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::rules::test_support::{check, with_new};

    #[test]
    fn flags_volatile_defaults() {
        assert_eq!(
            check(
                &VolatileDefault,
                "ALTER TABLE t ADD COLUMN u uuid DEFAULT gen_random_uuid();",
                &with_new(&[])
            )
            .len(),
            1
        );
        assert_eq!(
            check(
                &VolatileDefault,
                "ALTER TABLE t ADD COLUMN at timestamptz NOT NULL DEFAULT clock_timestamp();",
                &with_new(&[])
            )
            .len(),
            1
        );
    }

    #[test]
    fn accepts_constant_and_stable_defaults() {
        for sql in [
            "ALTER TABLE t ADD COLUMN n int DEFAULT 0;",
            "ALTER TABLE t ADD COLUMN at timestamptz DEFAULT now();",
            "CREATE TABLE t (u uuid DEFAULT gen_random_uuid());",
        ] {
            assert!(
                check(&VolatileDefault, sql, &with_new(&[])).is_empty(),
                "{sql}"
            );
        }
    }
}

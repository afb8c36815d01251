//! `truncate-or-delete-without-where`: a migration that empties a table.

use pg_query::NodeEnum;

use super::{Hit, Rule};
use crate::lint::context::Context;
use crate::lint::engine::Severity;

/// TRUNCATE, or DELETE without WHERE.
pub struct TruncateOrDeleteWithoutWhere;

impl Rule for TruncateOrDeleteWithoutWhere {
    fn id(&self) -> &'static str {
        "truncate-or-delete-without-where"
    }
    fn severity(&self) -> Severity {
        Severity::Warning
    }
    fn summary(&self) -> &'static str {
        "TRUNCATE, or DELETE without WHERE"
    }
    fn help(&self) -> &'static str {
        "make sure it is meant; DELETE in batches with a WHERE on big tables"
    }
    fn doc(&self) -> &'static str {
        "`TRUNCATE` takes an ACCESS EXCLUSIVE lock and removes every row; a `DELETE` \
without `WHERE` removes every row while holding row locks on all of them, and bloats \
the table. In a schema migration this is usually a mistake; when it is meant, say so \
with a suppression, and delete in batches on big tables.\n\n```sql\nDELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires_at < now() LIMIT 10000);\n```"
    }
    fn check(&self, statement: &NodeEnum, context: &Context) -> Vec<Hit> {
        match statement {
            NodeEnum::TruncateStmt(truncate) => {
                let tables: Vec<String> = truncate
                    .relations
                    .iter()
                    .filter_map(|r| match r.node.as_ref() {
                        Some(NodeEnum::RangeVar(rv)) => {
                            Some(crate::lint::ast::table_name(Some(rv)))
                        }
                        _ => None,
                    })
                    .filter(|t| !context.is_new(t))
                    .collect();
                if tables.is_empty() {
                    return Vec::new();
                }
                vec![Hit::new(format!(
                    "TRUNCATE removes every row of {}",
                    tables.join(", ")
                ))]
            }
            NodeEnum::DeleteStmt(delete) if delete.where_clause.is_none() => {
                let table = crate::lint::ast::table_name(delete.relation.as_ref());
                if context.is_new(&table) {
                    return Vec::new();
                }
                vec![Hit::new(format!(
                    "DELETE without WHERE removes every row of `{table}`{}",
                    context.describe(&table)
                ))]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::rules::test_support::{check, with_new};

    #[test]
    fn flags_truncate_and_unbounded_delete() {
        assert_eq!(
            check(
                &TruncateOrDeleteWithoutWhere,
                "TRUNCATE sessions;",
                &with_new(&[])
            )
            .len(),
            1
        );
        assert_eq!(
            check(
                &TruncateOrDeleteWithoutWhere,
                "DELETE FROM sessions;",
                &with_new(&[])
            )
            .len(),
            1
        );
    }

    #[test]
    fn accepts_bounded_deletes() {
        assert!(
            check(
                &TruncateOrDeleteWithoutWhere,
                "DELETE FROM sessions WHERE expired;",
                &with_new(&[])
            )
            .is_empty()
        );
        assert!(
            check(
                &TruncateOrDeleteWithoutWhere,
                "TRUNCATE staging;",
                &with_new(&["staging"])
            )
            .is_empty()
        );
    }
}

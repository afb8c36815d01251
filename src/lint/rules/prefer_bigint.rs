//! `prefer-bigint`: Prefer bigint to integer and smallint.

use pg_query::NodeEnum;

use super::{Hit, Rule, columns_of_type};
use crate::lint::context::Context;
use crate::lint::engine::Severity;

/// Prefer bigint to integer and smallint.
pub struct PreferBigint;

impl Rule for PreferBigint {
    fn id(&self) -> &'static str {
        "prefer-bigint"
    }
    fn severity(&self) -> Severity {
        Severity::Warning
    }
    fn summary(&self) -> &'static str {
        "Prefer bigint to integer and smallint"
    }
    fn help(&self) -> &'static str {
        "use bigint (and bigint identity for keys)"
    }
    fn doc(&self) -> &'static str {
        "`integer` runs out at 2,147,483,647 (`smallint` at 32,767); an id or counter that reaches it stops every insert, and widening it later rewrites the table under ACCESS EXCLUSIVE (see alter-column-type). `bigint` costs four bytes more per row.\n\n```sql\nCREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, attempts bigint NOT NULL DEFAULT 0);\n```"
    }
    fn check(&self, statement: &NodeEnum, _context: &Context) -> Vec<Hit> {
        columns_of_type(
            statement,
            &[
                "int4",
                "int2",
                "serial",
                "serial4",
                "smallserial",
                "serial2",
            ],
            |ty| {
                let (shown, limit) = match ty {
                    "int4" => ("integer", "2,147,483,647"),
                    "int2" => ("smallint", "32,767"),
                    "smallserial" | "serial2" => (ty, "32,767"),
                    _ => (ty, "2,147,483,647"),
                };
                format!("is `{shown}`, which overflows at {limit}; use bigint")
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::rules::test_support::{check, with_new};

    #[test]
    fn flags_the_type() {
        assert_eq!(
            check(
                &PreferBigint,
                "CREATE TABLE t (id integer PRIMARY KEY, n smallint);",
                &with_new(&[])
            )
            .len(),
            2
        );
    }

    #[test]
    fn accepts_the_preferred_types() {
        assert!(
            check(
                &PreferBigint,
                "CREATE TABLE t (id bigint, n numeric, flags boolean);",
                &with_new(&[])
            )
            .is_empty()
        );
    }
}

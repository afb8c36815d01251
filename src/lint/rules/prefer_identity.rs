//! `prefer-identity`: Prefer identity columns to serial.

use pg_query::NodeEnum;

use super::{Hit, Rule, columns_of_type};
use crate::lint::context::Context;
use crate::lint::engine::Severity;

/// Prefer identity columns to serial.
pub struct PreferIdentity;

impl Rule for PreferIdentity {
    fn id(&self) -> &'static str {
        "prefer-identity"
    }
    fn severity(&self) -> Severity {
        Severity::Warning
    }
    fn summary(&self) -> &'static str {
        "Prefer identity columns to serial"
    }
    fn help(&self) -> &'static str {
        "use bigint GENERATED ALWAYS AS IDENTITY"
    }
    fn doc(&self) -> &'static str {
        "`serial` is a shorthand for an integer column with a separate sequence default: grants, `CREATE TABLE … LIKE` and dump/restore treat the sequence separately, and clients may insert ids that later collide with it. An identity column is the SQL-standard form, binds the sequence to the column and, with GENERATED ALWAYS, refuses ids from clients.\n\n```sql\nCREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY);\n```"
    }
    fn check(&self, statement: &NodeEnum, _context: &Context) -> Vec<Hit> {
        columns_of_type(
            statement,
            &[
                "serial",
                "serial4",
                "bigserial",
                "serial8",
                "smallserial",
                "serial2",
            ],
            |ty| format!("is `{ty}`; use bigint GENERATED ALWAYS AS IDENTITY"),
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
                &PreferIdentity,
                "CREATE TABLE t (id bigserial PRIMARY KEY);",
                &with_new(&[])
            )
            .len(),
            1
        );
    }

    #[test]
    fn accepts_the_preferred_types() {
        assert!(
            check(
                &PreferIdentity,
                "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY);",
                &with_new(&[])
            )
            .is_empty()
        );
    }
}

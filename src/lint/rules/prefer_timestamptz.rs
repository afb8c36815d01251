//! `prefer-timestamptz`: Prefer timestamptz to timestamp without time zone.

use pg_query::NodeEnum;

use super::{Hit, Rule, columns_of_type};
use crate::lint::context::Context;
use crate::lint::engine::Severity;

/// Prefer timestamptz to timestamp without time zone.
pub struct PreferTimestamptz;

impl Rule for PreferTimestamptz {
    fn id(&self) -> &'static str {
        "prefer-timestamptz"
    }
    fn severity(&self) -> Severity {
        Severity::Warning
    }
    fn summary(&self) -> &'static str {
        "Prefer timestamptz to timestamp without time zone"
    }
    fn help(&self) -> &'static str {
        "use timestamptz"
    }
    fn doc(&self) -> &'static str {
        "`timestamp without time zone` stores a wall-clock reading without a zone: the same value means different instants to clients in different zones and around daylight-saving changes. `timestamptz` stores an instant and converts on output; it costs nothing more.\n\n```sql\nALTER TABLE orders ADD COLUMN shipped_at timestamptz;\n```"
    }
    fn check(&self, statement: &NodeEnum, _context: &Context) -> Vec<Hit> {
        columns_of_type(statement, &["timestamp"], |_| {
            "is `timestamp without time zone`; use timestamptz".to_string()
        })
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
                &PreferTimestamptz,
                "ALTER TABLE t ADD COLUMN at timestamp;",
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
                &PreferTimestamptz,
                "CREATE TABLE t (at timestamptz, d date);",
                &with_new(&[])
            )
            .is_empty()
        );
    }
}

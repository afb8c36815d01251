//! `prefer-text`: Prefer text to varchar(n) and char(n).

use pg_query::NodeEnum;

use super::{Hit, Rule, columns_of_type};
use crate::lint::context::Context;
use crate::lint::engine::Severity;

/// Prefer text to varchar(n) and char(n).
pub struct PreferText;

impl Rule for PreferText {
    fn id(&self) -> &'static str {
        "prefer-text"
    }
    fn severity(&self) -> Severity {
        Severity::Warning
    }
    fn summary(&self) -> &'static str {
        "Prefer text to varchar(n) and char(n)"
    }
    fn help(&self) -> &'static str {
        "use text, with a CHECK on its length when a limit matters"
    }
    fn doc(&self) -> &'static str {
        "In PostgreSQL `varchar(n)` is `text` with a length check whose change needs an ACCESS EXCLUSIVE lock, and `char(n)` pads with spaces. Use `text`, and a CHECK constraint when a limit matters (it can be replaced with NOT VALID / VALIDATE without blocking).\n\n```sql\nALTER TABLE users ADD COLUMN nickname text CONSTRAINT users_nickname_len CHECK (length(nickname) <= 40);\n```"
    }
    fn check(&self, statement: &NodeEnum, _context: &Context) -> Vec<Hit> {
        columns_of_type(statement, &["varchar", "bpchar"], |ty| {
            format!(
                "is `{}`; use text (with a CHECK on its length when a limit matters)",
                if ty == "bpchar" {
                    "char(n)"
                } else {
                    "varchar(n)"
                }
            )
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
                &PreferText,
                "CREATE TABLE t (name varchar(40), code char(2));",
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
                &PreferText,
                "CREATE TABLE t (name text, data bytea);",
                &with_new(&[])
            )
            .is_empty()
        );
    }
}

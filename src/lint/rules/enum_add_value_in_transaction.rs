//! `enum-add-value-in-transaction`: ALTER TYPE … ADD VALUE in a transaction before PostgreSQL 12.

use pg_query::NodeEnum;

use super::{Hit, Rule};
use crate::lint::context::Context;
use crate::lint::engine::Severity;

/// ALTER TYPE … ADD VALUE inside a transaction on a server older than 12.
pub struct EnumAddValueInTransaction;

impl Rule for EnumAddValueInTransaction {
    fn id(&self) -> &'static str {
        "enum-add-value-in-transaction"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn summary(&self) -> &'static str {
        "ALTER TYPE … ADD VALUE in a transaction on PostgreSQL < 12"
    }
    fn help(&self) -> &'static str {
        "put `-- migsafe:no-transaction` at the top of the file"
    }
    fn doc(&self) -> &'static str {
        "Before PostgreSQL 12, `ALTER TYPE … ADD VALUE` cannot run inside a transaction \
block and the migration fails. From 12 on it can, but the new value cannot be used in \
the same transaction. Checked only when the server version is known (with a \
database).\n\n```sql\n-- migsafe:no-transaction\nALTER TYPE order_status ADD VALUE IF NOT EXISTS 'refunded';\n```"
    }
    fn check(&self, statement: &NodeEnum, context: &Context) -> Vec<Hit> {
        let NodeEnum::AlterEnumStmt(alter) = statement else {
            return Vec::new();
        };
        let adds = !alter.new_val.is_empty() && alter.old_val.is_empty();
        match context.server_version {
            Some(version) if adds && context.transactional && version < 120_000 => {
                vec![Hit::new(format!(
                    "ADD VALUE '{}' cannot run inside a transaction on this server (PostgreSQL {})",
                    alter.new_val,
                    version / 10_000
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
    fn flags_add_value_in_a_transaction_on_old_servers() {
        let mut context = with_new(&[]);
        context.server_version = Some(110_000);
        assert_eq!(
            check(
                &EnumAddValueInTransaction,
                "ALTER TYPE s ADD VALUE 'x';",
                &context
            )
            .len(),
            1
        );
    }

    #[test]
    fn accepts_new_servers_unknown_servers_and_renames() {
        let mut context = with_new(&[]);
        assert!(
            check(
                &EnumAddValueInTransaction,
                "ALTER TYPE s ADD VALUE 'x';",
                &context
            )
            .is_empty()
        );
        context.server_version = Some(150_000);
        assert!(
            check(
                &EnumAddValueInTransaction,
                "ALTER TYPE s ADD VALUE 'x';",
                &context
            )
            .is_empty()
        );
        context.server_version = Some(110_000);
        assert!(
            check(
                &EnumAddValueInTransaction,
                "ALTER TYPE s RENAME VALUE 'x' TO 'y';",
                &context
            )
            .is_empty()
        );
    }
}

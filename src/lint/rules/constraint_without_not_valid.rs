//! `constraint-without-not-valid`: FOREIGN KEY / CHECK validated while locking.

use pg_query::NodeEnum;
use pg_query::protobuf::ConstrType;

use super::{Hit, Rule, constraints_added_to_existing};
use crate::lint::context::Context;
use crate::lint::engine::Severity;

/// ADD CONSTRAINT … FOREIGN KEY / CHECK without NOT VALID on an existing table.
pub struct ConstraintWithoutNotValid;

impl Rule for ConstraintWithoutNotValid {
    fn id(&self) -> &'static str {
        "constraint-without-not-valid"
    }
    fn severity(&self) -> Severity {
        Severity::Warning
    }
    fn summary(&self) -> &'static str {
        "FOREIGN KEY or CHECK added without NOT VALID"
    }
    fn help(&self) -> &'static str {
        "add it NOT VALID, then VALIDATE CONSTRAINT in a later migration"
    }
    fn doc(&self) -> &'static str {
        "Adding a foreign key or check constraint checks every existing row while holding \
a SHARE ROW EXCLUSIVE lock (on both tables, for a foreign key), which blocks writes \
for the whole scan. Added `NOT VALID`, it only applies to new rows and takes the lock \
briefly; `VALIDATE CONSTRAINT` later checks the old rows under SHARE UPDATE EXCLUSIVE, \
which lets writes go on. `NOT VALID` followed by `VALIDATE CONSTRAINT` in a later \
migration of the same plan is the safe pattern and is not flagged.\n\n```sql\nALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;\n-- later migration:\nALTER TABLE orders VALIDATE CONSTRAINT orders_user_fk;\n```\n\n`apply --online` (or `-- migsafe:online` in the file, or `[defaults] online = true`) runs the statement as written in this safe form, step by step, and resumes an interrupted run at its step: see [online.md](online.md)."
    }
    fn check(&self, statement: &NodeEnum, context: &Context) -> Vec<Hit> {
        let Some((table, constraints)) = constraints_added_to_existing(statement, context) else {
            return Vec::new();
        };
        let mut hits = Vec::new();
        for con in constraints {
            let kind = if con.contype == ConstrType::ConstrForeign as i32 {
                "FOREIGN KEY"
            } else if con.contype == ConstrType::ConstrCheck as i32 {
                "CHECK"
            } else {
                continue;
            };
            if con.skip_validation {
                continue;
            }
            hits.push(Hit::with(
                format!(
                    "{kind} {}on `{table}`{} is validated while it blocks writes; add it NOT VALID and validate it later",
                    if con.conname.is_empty() { String::new() } else { format!("`{}` ", con.conname) },
                    context.describe(&table)
                ),
                context.by_size(&table, Severity::Warning),
            ));
        }
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::rules::test_support::{check, with_new};

    #[test]
    fn flags_validating_constraints() {
        assert_eq!(
            check(
                &ConstraintWithoutNotValid,
                "ALTER TABLE o ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES users (id);",
                &with_new(&[])
            )
            .len(),
            1
        );
        assert_eq!(
            check(
                &ConstraintWithoutNotValid,
                "ALTER TABLE o ADD CONSTRAINT c CHECK (n > 0);",
                &with_new(&[])
            )
            .len(),
            1
        );
    }

    #[test]
    fn accepts_not_valid_new_tables_and_other_constraints() {
        assert!(
            check(
                &ConstraintWithoutNotValid,
                "ALTER TABLE o ADD CONSTRAINT fk FOREIGN KEY (u) REFERENCES users (id) NOT VALID;",
                &with_new(&[])
            )
            .is_empty()
        );
        assert!(
            check(
                &ConstraintWithoutNotValid,
                "ALTER TABLE o ADD CONSTRAINT c CHECK (n > 0);",
                &with_new(&["o"])
            )
            .is_empty()
        );
        assert!(
            check(
                &ConstraintWithoutNotValid,
                "ALTER TABLE o VALIDATE CONSTRAINT fk;",
                &with_new(&[])
            )
            .is_empty()
        );
    }
}

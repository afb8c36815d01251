//! The steps of an online migration as psql text, for `apply --sql --online`:
//! each transactional step in its own `BEGIN … COMMIT`, each concurrent
//! build outside any transaction, preceded by a `\gexec` that drops an
//! INVALID index a cut-short earlier build left.

use std::fmt::Write;

use super::{OnlinePlan, Unnamed};
use crate::db::quote_literal;

fn qualified(relation: &pg_query::protobuf::RangeVar) -> String {
    crate::db::catalog::qualified(
        Some(relation.schemaname.as_str()).filter(|s| !s.is_empty()),
        &relation.relname,
    )
}

/// Appends the steps of `plan` to `out`, with the timeouts to set.
pub fn render(
    out: &mut String,
    plan: &OnlinePlan,
    lock_timeout_ms: u128,
    statement_timeout_ms: u128,
) {
    let total = plan.steps.len();
    for (index, planned) in plan.steps.iter().enumerate() {
        let step = &planned.step;
        let _ = writeln!(
            out,
            "-- online step {} of {total} (line {}): {}",
            index + 1,
            planned.line,
            step.locks
        );
        if step.transaction {
            let _ = writeln!(
                out,
                "BEGIN;\nSET LOCAL lock_timeout = {lock_timeout_ms};\nSET LOCAL statement_timeout = {statement_timeout_ms};"
            );
            match &step.unnamed {
                // The name PostgreSQL chose, into a psql variable, and the
                // validation built from it.
                Some(Unnamed::Records(relation)) => {
                    let _ = writeln!(
                        out,
                        "{};\nSELECT conname AS migsafe_step_{index} FROM pg_constraint WHERE conrelid = to_regclass({}) AND NOT convalidated AND xmin::text::bigint = txid_current() % 4294967296 \\gset",
                        step.sql,
                        quote_literal(&qualified(relation))
                    );
                }
                Some(Unnamed::Validates(relation)) => {
                    let _ = writeln!(
                        out,
                        "SELECT format('ALTER TABLE %s VALIDATE CONSTRAINT %I', to_regclass({}), :'migsafe_step_{}') \\gexec",
                        quote_literal(&qualified(relation)),
                        index.saturating_sub(1)
                    );
                }
                None => {
                    let _ = writeln!(out, "{};", step.sql);
                }
            }
            let _ = writeln!(out, "COMMIT;");
        } else {
            if let Some(index) = &step.index {
                let _ = writeln!(
                    out,
                    "SELECT format('DROP INDEX CONCURRENTLY %s', indexrelid::regclass) FROM pg_index WHERE indexrelid = to_regclass({}) AND NOT indisvalid \\gexec",
                    quote_literal(&index.qualified())
                );
            }
            let _ = writeln!(
                out,
                "SET lock_timeout = {lock_timeout_ms};\nSET statement_timeout = {statement_timeout_ms};\n{};\nRESET lock_timeout;\nRESET statement_timeout;",
                step.sql
            );
        }
    }
}

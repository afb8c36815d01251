//! The steps of an online migration as psql text, for `apply --sql --online`:
//! each transactional step in its own `BEGIN … COMMIT`, each concurrent
//! build outside any transaction, preceded by a `\gexec` that drops an
//! INVALID index a cut-short earlier build left.

use std::fmt::Write;

use super::OnlinePlan;
use crate::db::quote_literal;

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
                "BEGIN;\nSET LOCAL lock_timeout = {lock_timeout_ms};\nSET LOCAL statement_timeout = {statement_timeout_ms};\n{};\nCOMMIT;",
                step.sql
            );
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

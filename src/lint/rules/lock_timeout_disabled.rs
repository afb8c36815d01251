//! `lock-timeout-disabled`: a migration that turns off its own lock_timeout.

use pg_query::NodeEnum;
use pg_query::protobuf::a_const::Val;

use super::{Hit, Rule};
use crate::lint::context::Context;
use crate::lint::engine::Severity;

/// `SET lock_timeout = 0` (or `-- migsafe:lock-timeout 0`) in a migration.
pub struct LockTimeoutDisabled;

/// True when a `SET` statement sets lock_timeout to 0 (no limit).
fn disables(statement: &NodeEnum) -> bool {
    let NodeEnum::VariableSetStmt(set) = statement else {
        return false;
    };
    if !set.name.eq_ignore_ascii_case("lock_timeout") {
        return false;
    }
    set.args.iter().any(|arg| match arg.node.as_ref() {
        Some(NodeEnum::AConst(constant)) => match &constant.val {
            Some(Val::Ival(i)) => i.ival == 0,
            Some(Val::Sval(s)) => s.sval.trim() == "0" || s.sval.trim().eq_ignore_ascii_case("0ms"),
            _ => false,
        },
        _ => false,
    })
}

impl Rule for LockTimeoutDisabled {
    fn id(&self) -> &'static str {
        "lock-timeout-disabled"
    }
    fn severity(&self) -> Severity {
        Severity::Warning
    }
    fn summary(&self) -> &'static str {
        "lock_timeout turned off in a migration"
    }
    fn help(&self) -> &'static str {
        "keep a lock_timeout (`-- migsafe:lock-timeout 5s`) and let migsafe retry"
    }
    fn doc(&self) -> &'static str {
        "migsafe sets `lock_timeout` before every migration (default 1 s) so that DDL which \
cannot get its lock gives up quickly instead of waiting — because while it waits, every \
query on that table queues behind it and the application stalls. A file that sets \
`lock_timeout = 0`, by `SET` or by `-- migsafe:lock-timeout 0`, removes that guard. \
A lock_timeout the file sets itself counts: a longer one is fine.\n\n\
```sql\n-- migsafe:lock-timeout 5s\nALTER TABLE orders ADD COLUMN note text;\n```"
    }
    fn check(&self, statement: &NodeEnum, _context: &Context) -> Vec<Hit> {
        if disables(statement) {
            vec![Hit::new(
                "lock_timeout = 0: DDL in this migration may wait for its lock forever, with every query on the table queued behind it",
            )]
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::rules::test_support::{check, with_new};

    #[test]
    fn flags_lock_timeout_zero() {
        for sql in [
            "SET lock_timeout = 0;",
            "SET lock_timeout TO '0';",
            "SET LOCAL lock_timeout = 0;",
        ] {
            assert_eq!(
                check(&LockTimeoutDisabled, sql, &with_new(&[])).len(),
                1,
                "{sql}"
            );
        }
    }

    #[test]
    fn accepts_a_lock_timeout_the_file_sets() {
        for sql in [
            "SET lock_timeout = '5s';",
            "SET lock_timeout = 3000;",
            "SET statement_timeout = 0;",
        ] {
            assert!(
                check(&LockTimeoutDisabled, sql, &with_new(&[])).is_empty(),
                "{sql}"
            );
        }
    }
}

//! `vacuum-full-cluster-reindex`: maintenance that locks the whole table.

use pg_query::NodeEnum;
use pg_query::protobuf::Node;

use super::{Hit, Rule};
use crate::lint::context::Context;
use crate::lint::engine::Severity;

/// VACUUM FULL, CLUSTER, REINDEX without CONCURRENTLY.
pub struct BlockingMaintenance;

/// True when a DefElem option list holds `name` (`full`, `concurrently`).
pub fn has_option(options: &[Node], name: &str) -> bool {
    options.iter().any(|o| matches!(o.node.as_ref(), Some(NodeEnum::DefElem(d)) if d.defname.eq_ignore_ascii_case(name)))
}

impl Rule for BlockingMaintenance {
    fn id(&self) -> &'static str {
        "vacuum-full-cluster-reindex"
    }
    fn severity(&self) -> Severity {
        Severity::Error
    }
    fn summary(&self) -> &'static str {
        "VACUUM FULL, CLUSTER or REINDEX without CONCURRENTLY"
    }
    fn help(&self) -> &'static str {
        "use REINDEX … CONCURRENTLY; for bloat use pg_repack outside migrations"
    }
    fn doc(&self) -> &'static str {
        "`VACUUM FULL` and `CLUSTER` rewrite the table under an ACCESS EXCLUSIVE lock: no \
reads, no writes until they finish. `REINDEX` without `CONCURRENTLY` blocks writes (and \
reads that would use the index). In a migration use the concurrent form; remove bloat \
with tools that rebuild online (pg_repack), outside migrations.\n\n```sql\n-- migsafe:no-transaction\nREINDEX INDEX CONCURRENTLY orders_created_at_idx;\n```"
    }
    fn check(&self, statement: &NodeEnum, _context: &Context) -> Vec<Hit> {
        match statement {
            NodeEnum::VacuumStmt(vacuum)
                if vacuum.is_vacuumcmd && has_option(&vacuum.options, "full") =>
            {
                vec![Hit::new(
                    "VACUUM FULL rewrites the table under ACCESS EXCLUSIVE: reads and writes wait until it finishes",
                )]
            }
            NodeEnum::ClusterStmt(_) => {
                vec![Hit::new(
                    "CLUSTER rewrites the table under ACCESS EXCLUSIVE: reads and writes wait until it finishes",
                )]
            }
            NodeEnum::ReindexStmt(reindex) if !has_option(&reindex.params, "concurrently") => {
                vec![Hit::new(
                    "REINDEX without CONCURRENTLY blocks writes to the table until it finishes",
                )]
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
    fn flags_blocking_maintenance() {
        for sql in [
            "VACUUM FULL t;",
            "VACUUM (FULL) t;",
            "CLUSTER t USING i;",
            "REINDEX TABLE t;",
        ] {
            assert_eq!(
                check(&BlockingMaintenance, sql, &with_new(&[])).len(),
                1,
                "{sql}"
            );
        }
    }

    #[test]
    fn accepts_plain_vacuum_and_concurrent_reindex() {
        for sql in [
            "VACUUM t;",
            "VACUUM (ANALYZE) t;",
            "REINDEX TABLE CONCURRENTLY t;",
            "ANALYZE t;",
        ] {
            assert!(
                check(&BlockingMaintenance, sql, &with_new(&[])).is_empty(),
                "{sql}"
            );
        }
    }
}

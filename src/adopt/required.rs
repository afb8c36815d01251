//! Whether a namespace has to be adopted before it moves (SPEC 14): migsafe
//! has recorded nothing for it, migrations are pending, and another tool's
//! history table on the database holds rows. What would run may be what
//! that tool already ran. Preflight fails on it (so `apply` and `plan`
//! refuse); `status` shows it as a warning. One detection, used by both, so
//! that they cannot disagree about what counts.

use serde::Serialize;

use super::{OtherHistory, Tool, other_histories};
use crate::config::Config;
use crate::db::Db;
use crate::error::{Code, ReasonCode, Result};
use crate::plan::NamespaceState;

/// Another tool's history holds rows and migsafe has recorded nothing for
/// the namespace.
#[derive(Debug, Clone, Serialize)]
pub struct AdoptRequired {
    /// `ADOPT_REQUIRED:{namespace}`.
    pub reason: ReasonCode,
    /// The tool to adopt from: the first whose table holds rows.
    pub tool: Tool,
    /// Every other tool's table that holds rows.
    pub histories: Vec<OtherHistoryRows>,
    /// The migrations apply would run again.
    pub pending: usize,
    /// What it means, in one sentence.
    pub message: String,
    /// The command that takes the history over.
    pub hint: String,
}

/// One other tool's history table and its rows (for reports and JSON).
#[derive(Debug, Clone, Serialize)]
pub struct OtherHistoryRows {
    /// The tool.
    pub tool: Tool,
    /// Its table.
    pub table: String,
    /// How many rows it holds.
    pub rows: i64,
}

/// Looks for another tool's history when `state` has nothing recorded and
/// `pending` migrations would run; `own` is migsafe's history table.
pub(crate) async fn adopt_required(
    config: &Config,
    db: &Db,
    state: &NamespaceState,
    own: &str,
    pending: usize,
) -> Result<Option<AdoptRequired>> {
    let recorded_any = state.entries.iter().any(|e| e.applied.is_some())
        || state.repeatables.iter().any(|e| e.applied.is_some());
    if pending == 0 || recorded_any {
        return Ok(None);
    }
    let Some(namespace) = config.namespaces.iter().find(|n| n.name == state.namespace) else {
        return Ok(None);
    };
    let others = other_histories(db, &namespace.dir, own).await?;
    Ok(describe(&state.namespace, &others, pending))
}

/// The finding for `others` (none: no finding).
fn describe(namespace: &str, others: &[OtherHistory], pending: usize) -> Option<AdoptRequired> {
    let first = others.first()?;
    let tables = others
        .iter()
        .map(|o| {
            // Rails keeps the same `schema_migrations (version)` as dbmate.
            let tool = if o.tool == Tool::Dbmate {
                "dbmate's (or Rails')".to_string()
            } else {
                format!("{}'s", o.tool)
            };
            format!("{tool} {} ({} row(s))", o.table, o.rows)
        })
        .collect::<Vec<_>>()
        .join(", ");
    Some(AdoptRequired {
        reason: ReasonCode::about(Code::AdoptRequired, namespace),
        tool: first.tool,
        histories: others
            .iter()
            .map(|o| OtherHistoryRows {
                tool: o.tool,
                table: o.table.clone(),
                rows: o.rows,
            })
            .collect(),
        pending,
        message: format!(
            "this database holds {tables}, and migsafe has recorded nothing for namespace `{namespace}`: apply would run again the {pending} migration(s) {} may already have run",
            first.tool
        ),
        hint: format!("migsafe adopt --from {}", first.tool),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_tool_is_the_one_to_adopt_from_and_every_table_is_named() {
        let others = [
            OtherHistory {
                tool: Tool::Flyway,
                table: "flyway_schema_history".into(),
                rows: 7,
            },
            OtherHistory {
                tool: Tool::Dbmate,
                table: "schema_migrations".into(),
                rows: 2,
            },
        ];
        let found = describe("app", &others, 4).unwrap();
        assert_eq!(found.reason.to_string(), "ADOPT_REQUIRED:app");
        assert_eq!(found.hint, "migsafe adopt --from flyway");
        assert!(
            found
                .message
                .contains("flyway's flyway_schema_history (7 row(s)), dbmate's (or Rails') schema_migrations (2 row(s))"),
            "{}",
            found.message
        );
        assert!(describe("app", &[], 4).is_none());
    }
}

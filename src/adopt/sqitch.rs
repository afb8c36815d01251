//! Sqitch: the registry schema `sqitch`, whose `changes` table Sqitch's
//! PostgreSQL engine creates as `change_id TEXT PRIMARY KEY, script_hash
//! TEXT, change TEXT NOT NULL, project TEXT NOT NULL, note TEXT NOT NULL,
//! committed_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
//! committer_name TEXT NOT NULL, committer_email TEXT NOT NULL, planned_at
//! TIMESTAMPTZ NOT NULL, planner_name TEXT NOT NULL, planner_email TEXT NOT
//! NULL` (`lib/App/Sqitch/Engine/pg.sql`). It holds the changes deployed
//! now (a revert deletes the row and appends to `sqitch.events`), of every
//! project using that registry: only the plan's `%project` is read. A
//! reworked change is deployed once per instance, in plan order, so the
//! n-th deployed row of a change name is the n-th change of that name in the
//! plan. `script_hash` is the SHA-1 of the deploy script's bytes
//! (`App::Sqitch::Plan::Change::script_hash`) and is compared with the file;
//! a registry upgraded from before Sqitch 0.9993 copied `change_id` into it
//! for the changes deployed until then, and those rows are not compared.

use std::path::Path;

use chrono::{DateTime, Utc};

use super::{Expected, Key, Record, Row, Status, Tool, read_error};
use crate::db::Db;
use crate::error::Result;

/// The table's name, schema-qualified as Sqitch creates it.
pub const TABLE: &str = "sqitch.changes";

/// The deployed changes of one project, in the order they were deployed.
const READ: &str = "SELECT change, committed_at, script_hash, change_id FROM \"sqitch\".\"changes\" \
     WHERE project = $1 OR $1 = '' ORDER BY committed_at, change_id";

/// The `%project=` pragma of the plan (empty when there is none).
fn project(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(crate::source::layouts::sqitch::PLAN))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.trim().strip_prefix("%project="))
        .map(|p| p.trim().to_string())
        .unwrap_or_default()
}

/// Reads the deployed changes of the plan's project.
pub(crate) async fn read(db: &Db, dir: &Path) -> Result<Record> {
    let project = project(dir);
    let rows = db
        .client
        .query(READ, &[&project])
        .await
        .map_err(|e| read_error(db, Tool::Sqitch, &e))?;
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for row in rows {
        let change: String = row.get(0);
        let committed_at: DateTime<Utc> = row.get(1);
        let script_hash: Option<String> = row.get(2);
        let change_id: String = row.get(3);
        let checksum = match script_hash {
            Some(hash) if hash.trim() != change_id.trim() && !hash.trim().is_empty() => {
                Expected::Sha1Hex(hash.trim().to_string())
            }
            _ => Expected::None,
        };
        let occurrence = seen.entry(change.clone()).or_insert(0);
        out.push(Row {
            label: format!("change {change}"),
            key: Key::Occurrence {
                name: change.clone(),
                occurrence: *occurrence,
            },
            applied_at: Some(committed_at),
            execution_ms: 0,
            status: Status::Applied,
            checksum,
        });
        *occurrence += 1;
    }
    Ok(Record {
        rows: out,
        every_version: true,
    })
}

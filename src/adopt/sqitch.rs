//! Sqitch: the registry schema (`sqitch`, or the one `sqitch.conf` names),
//! whose `changes` table Sqitch's
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

/// The table's name, schema-qualified as Sqitch creates it by default.
pub const TABLE: &str = "sqitch.changes";

/// `sqitch.conf` beside the plan.
const CONF: &str = "sqitch.conf";

/// The registry schema of the project in `dir`: `registry` of the target
/// that `engine.pg.target` (or `core.target`) names, else `engine.pg.registry`,
/// else `sqitch` — how Sqitch resolves it from its configuration file.
pub fn registry(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join(CONF)).unwrap_or_default();
    let values = read_conf(&text);
    let get = |key: &str| {
        values
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let target = get("engine.pg.target").or_else(|| get("core.target"));
    target
        .and_then(|t| get(&format!("target.{t}.registry")))
        .or_else(|| get("engine.pg.registry"))
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "sqitch".to_string())
}

/// The `changes` table of the project in `dir`, quoted.
pub fn table(dir: &Path) -> String {
    format!("{}.changes", crate::db::quote_ident(&registry(dir)))
}

/// `section.subsection.key = value` pairs of a git-config style file, the
/// format of `sqitch.conf` (`[engine "pg"]` then `registry = x`); section
/// and key names lowercased, as git-config compares them.
fn read_conf(text: &str) -> Vec<(String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            section = match header.split_once(char::is_whitespace) {
                Some((name, sub)) => format!(
                    "{}.{}",
                    name.to_ascii_lowercase(),
                    sub.trim().trim_matches('"')
                ),
                None => header.to_ascii_lowercase(),
            };
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            let value = value.trim().split([' ', '\t']).next().unwrap_or("");
            let value = value.trim_matches('"');
            out.push((
                format!("{section}.{}", key.trim().to_ascii_lowercase()),
                value.to_string(),
            ));
        }
    }
    out
}

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
    let read = format!(
        "SELECT change, committed_at, script_hash, change_id FROM {} \
         WHERE project = $1 OR $1 = '' ORDER BY committed_at, change_id",
        table(dir)
    );
    let rows = db
        .client
        .query(&read, &[&project])
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_comes_from_sqitch_conf() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(registry(dir.path()), "sqitch");
        let conf = |text: &str| {
            std::fs::write(dir.path().join(CONF), text).unwrap_or_else(|e| panic!("{e}"));
            registry(dir.path())
        };
        assert_eq!(
            conf("[core]\n\tengine = pg\n[engine \"pg\"]\n\tregistry = app_sqitch # ours\n"),
            "app_sqitch"
        );
        assert_eq!(
            conf(
                "[engine \"pg\"]\n\tregistry = a\n\ttarget = prod\n[target \"prod\"]\n\turi = db:pg:app\n\tregistry = b\n"
            ),
            "b"
        );
        assert_eq!(table(dir.path()), "\"b\".changes");
    }
}

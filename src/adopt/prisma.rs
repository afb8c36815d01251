//! Prisma Migrate: `_prisma_migrations (id VARCHAR(36) PRIMARY KEY NOT NULL,
//! checksum VARCHAR(64) NOT NULL, finished_at TIMESTAMPTZ, migration_name
//! VARCHAR(255) NOT NULL, logs TEXT, rolled_back_at TIMESTAMPTZ, started_at
//! TIMESTAMPTZ NOT NULL DEFAULT now(), applied_steps_count INTEGER NOT NULL
//! DEFAULT 0)`, as the schema engine creates it on PostgreSQL
//! (`sql-schema-connector`, postgres flavour). One row per attempt:
//! `migration_name` is the folder, `checksum` the SHA-256 (hex) of its
//! `migration.sql` (`checksum.rs`: either line ending matches). A row with
//! `rolled_back_at` was taken back (`migrate resolve --rolled-back`) and only
//! a later finished row of the same folder applies it again; a row without
//! `finished_at` is a failed or interrupted migration.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{Expected, Key, Record, Row, Status, Tool, read_error};
use crate::db::Db;
use crate::error::Result;

/// The table's name.
pub const TABLE: &str = "_prisma_migrations";

/// Every attempt, oldest first.
const READ: &str = "SELECT migration_name, checksum, started_at, finished_at, rolled_back_at \
     FROM \"_prisma_migrations\" ORDER BY started_at, id";

/// Reads the attempts; per folder, the newest attempt that was not rolled
/// back decides (a rolled-back one only when there is no other).
pub(crate) async fn read(db: &Db) -> Result<Record> {
    let rows = db
        .client
        .query(READ, &[])
        .await
        .map_err(|e| read_error(db, Tool::Prisma, &e))?;
    let mut order: Vec<String> = Vec::new();
    let mut by_name: BTreeMap<String, Row> = BTreeMap::new();
    for row in rows {
        let name: String = row.get(0);
        let checksum: String = row.get(1);
        let started_at: DateTime<Utc> = row.get(2);
        let finished_at: Option<DateTime<Utc>> = row.get(3);
        let rolled_back_at: Option<DateTime<Utc>> = row.get(4);
        let status = match (finished_at, rolled_back_at) {
            (_, Some(_)) => Status::RolledBack,
            (Some(_), None) => Status::Applied,
            (None, None) => Status::Failed,
        };
        let replaces = match by_name.get(&name) {
            None => true,
            // A rolled-back attempt never hides another one.
            Some(_) if status == Status::RolledBack => false,
            Some(_) => true,
        };
        if !by_name.contains_key(&name) {
            order.push(name.clone());
        }
        if replaces {
            by_name.insert(
                name.clone(),
                Row {
                    key: Key::Folder(super::leading_version(&name), name.clone()),
                    label: name,
                    applied_at: finished_at.or(Some(started_at)),
                    execution_ms: finished_at
                        .map_or(0, |f| (f - started_at).num_milliseconds().max(0)),
                    status,
                    checksum: Expected::Sha256Hex(checksum),
                },
            );
        }
    }
    Ok(Record {
        rows: order
            .into_iter()
            .filter_map(|name| by_name.remove(&name))
            .collect(),
        every_version: true,
    })
}

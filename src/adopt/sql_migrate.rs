//! sql-migrate: `gorp_migrations (id text NOT NULL PRIMARY KEY, applied_at
//! timestamp with time zone)`, as its `MigrationRecord` is mapped by gorp
//! (`migrate.go`). `id` is the migration's file name; rows are matched to
//! files by that name. No checksum.

use chrono::{DateTime, Utc};

use super::{Expected, Key, Record, Row, Status, Tool, read_error};
use crate::db::Db;
use crate::error::Result;

/// The table's name.
pub const TABLE: &str = "gorp_migrations";

/// Every applied migration.
const READ: &str = "SELECT id::text, applied_at FROM \"gorp_migrations\"";

/// Reads every row.
pub(crate) async fn read(db: &Db) -> Result<Record> {
    let rows = db
        .client
        .query(READ, &[])
        .await
        .map_err(|e| read_error(db, Tool::SqlMigrate, &e))?;
    let mut out = Vec::new();
    for row in rows {
        let id: String = row.get(0);
        let applied_at: Option<DateTime<Utc>> = row.get(1);
        out.push(Row {
            key: Key::FileName(super::leading_version(&id), id.clone()),
            label: id,
            applied_at,
            execution_ms: 0,
            status: Status::Applied,
            checksum: Expected::None,
        });
    }
    Ok(Record {
        rows: out,
        every_version: true,
    })
}

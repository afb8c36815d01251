//! ory/pop: `schema_migration (version varchar(14) NOT NULL)` with the
//! unique index `schema_migration_version_idx`, as pop's migrator creates it
//! (`migrator.go`, `CreateSchemaMigrations`; ory's fork widens it to
//! `varchar(48)` and adds `version_self`). One row per applied version; no
//! time, no checksum.

use super::{Expected, Key, Record, Row, Status, Tool, parse_version, read_error};
use crate::db::Db;
use crate::error::Result;

/// The table's name.
pub const TABLE: &str = "schema_migration";

/// Every applied version.
const READ: &str = "SELECT version::text FROM \"schema_migration\"";

/// Reads the applied versions.
pub(crate) async fn read(db: &Db) -> Result<Record> {
    let rows = db
        .client
        .query(READ, &[])
        .await
        .map_err(|e| read_error(db, Tool::Pop, &e))?;
    let mut out = Vec::new();
    for row in rows {
        let text: String = row.get(0);
        out.push(Row {
            key: Key::Version(parse_version(Tool::Pop, &text)?),
            label: format!("version {text}"),
            applied_at: None,
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

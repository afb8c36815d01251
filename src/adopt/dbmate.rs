//! dbmate: `schema_migrations (version varchar(128) PRIMARY KEY)`, as its
//! postgres driver creates it (`pkg/driver/postgres/postgres.go`,
//! `CreateMigrationsTable`). One row per applied version (the digits before
//! the file name's first `_`); no time, no checksum.

use super::{Expected, Key, Record, Row, Status, Tool, parse_version, read_error};
use crate::db::Db;
use crate::error::Result;

/// Every applied version.
const READ: &str = "SELECT version::text FROM \"schema_migrations\"";

/// Reads the applied versions.
pub(crate) async fn read(db: &Db) -> Result<Record> {
    let rows = db
        .client
        .query(READ, &[])
        .await
        .map_err(|e| read_error(db, Tool::Dbmate, &e))?;
    let mut out = Vec::new();
    for row in rows {
        let text: String = row.get(0);
        out.push(Row {
            key: Key::Version(parse_version(Tool::Dbmate, &text)?),
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

//! golang-migrate: `schema_migrations (version bigint NOT NULL PRIMARY KEY,
//! dirty boolean NOT NULL)`, as its postgres driver creates it
//! (`database/postgres/postgres.go`, `ensureVersionTable`). It keeps one row:
//! the current version, and `dirty` while a migration is part-way. Every
//! version up to the current one counts as applied; a dirty row is refused.
//! It keeps no time and no checksum.

use super::{Expected, Key, Record, Row, Status, Tool, parse_version, read_error};
use crate::db::Db;
use crate::error::Result;

/// The current version and its dirty flag (golang-migrate keeps one row).
const READ: &str = "SELECT version::text, dirty FROM \"schema_migrations\" LIMIT 1";

/// Reads the current version.
pub(crate) async fn read(db: &Db) -> Result<Record> {
    let rows = db
        .client
        .query(READ, &[])
        .await
        .map_err(|e| read_error(db, Tool::GolangMigrate, &e))?;
    let mut out = Vec::new();
    for row in rows {
        let text: String = row.get(0);
        let dirty: bool = row.get(1);
        // -1 is golang-migrate's "no version" (NilVersion).
        if text.starts_with('-') {
            continue;
        }
        let version = parse_version(Tool::GolangMigrate, &text)?;
        out.push(Row {
            label: format!("version {text}"),
            key: Key::UpTo {
                version,
                file_required: true,
            },
            applied_at: None,
            execution_ms: 0,
            status: if dirty {
                Status::Dirty
            } else {
                Status::Applied
            },
            checksum: Expected::None,
        });
    }
    Ok(Record {
        rows: out,
        every_version: false,
    })
}

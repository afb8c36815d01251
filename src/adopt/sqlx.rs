//! sqlx: `_sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT
//! NULL, installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT
//! NULL, checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)`, as
//! `sqlx-postgres/src/migrate.rs` creates it (also `sideeffects.md`). The
//! checksum is the SHA-384 of the up script's text as read from the file
//! (`sqlx-core/src/migrate/migration.rs`); `execution_time` is in
//! nanoseconds; a row with `success = false` is a failed migration.

use chrono::{DateTime, Utc};

use super::{Expected, Key, Record, Row, Status, Tool, parse_version, read_error};
use crate::db::Db;
use crate::error::Result;

/// The table's name.
pub const TABLE: &str = "_sqlx_migrations";

/// Every row, oldest version first.
const READ: &str = "SELECT version::text, description, installed_on, success, checksum, execution_time \
     FROM \"_sqlx_migrations\" ORDER BY version";

/// Reads every row.
pub(crate) async fn read(db: &Db) -> Result<Record> {
    let rows = db
        .client
        .query(READ, &[])
        .await
        .map_err(|e| read_error(db, Tool::Sqlx, &e))?;
    let mut out = Vec::new();
    for row in rows {
        let text: String = row.get(0);
        let description: String = row.get(1);
        let installed_on: DateTime<Utc> = row.get(2);
        let success: bool = row.get(3);
        let checksum: Vec<u8> = row.get(4);
        let nanos: i64 = row.get(5);
        out.push(Row {
            key: Key::Version(parse_version(Tool::Sqlx, &text)?),
            label: format!("{text} ({description})"),
            applied_at: Some(installed_on),
            execution_ms: nanos / 1_000_000,
            status: if success {
                Status::Applied
            } else {
                Status::Failed
            },
            checksum: Expected::Sha384(checksum),
        });
    }
    Ok(Record {
        rows: out,
        every_version: true,
    })
}

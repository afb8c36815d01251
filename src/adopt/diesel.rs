//! diesel: `__diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT
//! NULL, run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)`, as
//! `diesel_migrations` creates it (`setup_migration_table.sql` of the pg
//! backend). `version` is the directory name's version (diesel drops its
//! dashes); `run_on` is local time in the server's default time zone. No
//! checksum.

use chrono::{DateTime, Utc};

use super::{Expected, Key, Record, Row, Status, Tool, parse_version, read_error};
use crate::db::Db;
use crate::error::Result;

/// The table's name.
pub const TABLE: &str = "__diesel_schema_migrations";

/// Every applied version with its time.
const READ: &str = concat!(
    "SELECT version::text, ",
    local_time!("run_on"),
    " FROM \"__diesel_schema_migrations\""
);

/// Reads every row.
pub(crate) async fn read(db: &Db) -> Result<Record> {
    let rows = db
        .client
        .query(READ, &[])
        .await
        .map_err(|e| read_error(db, Tool::Diesel, &e))?;
    let mut out = Vec::new();
    for row in rows {
        let text: String = row.get(0);
        let run_on: DateTime<Utc> = row.get(1);
        out.push(Row {
            key: Key::Version(parse_version(Tool::Diesel, &text)?),
            label: format!("version {text}"),
            applied_at: Some(run_on),
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

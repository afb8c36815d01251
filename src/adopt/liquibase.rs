//! Liquibase: `databasechangelog`, as Liquibase creates it on PostgreSQL
//! (unquoted, so lower case): `id VARCHAR(255) NOT NULL, author VARCHAR(255)
//! NOT NULL, filename VARCHAR(255) NOT NULL, dateexecuted TIMESTAMP NOT NULL,
//! orderexecuted INTEGER NOT NULL, exectype VARCHAR(10) NOT NULL, md5sum
//! VARCHAR(35), description VARCHAR(255), comments VARCHAR(255), tag
//! VARCHAR(255), liquibase VARCHAR(20), contexts VARCHAR(255), labels
//! VARCHAR(255), deployment_id VARCHAR(10)` (`StandardChangeLogHistoryService`).
//! One row per changeset that ran, matched by `author:id` and the file's
//! name (`filename` is the path as the changelog named it). `exectype`
//! `EXECUTED`, `RERAN` and `MARK_RAN` count as applied (`MARK_RAN` is what
//! Liquibase itself treats as applied without running); `FAILED` is refused.
//! `md5sum` (`9:…`, or NULL after `clear-checksums`) is not compared: its
//! normalisation of a formatted-SQL changeset differs between Liquibase
//! versions and is not reproduced here.

use chrono::{DateTime, Utc};

use super::{Expected, Key, Record, Row, Status, Tool, read_error};
use crate::db::Db;
use crate::error::Result;

/// The table's name.
pub const TABLE: &str = "databasechangelog";

/// Every row in the order Liquibase ran them.
const READ: &str = concat!(
    "SELECT id, author, filename, exectype, ",
    local_time!("dateexecuted"),
    " FROM \"databasechangelog\" ORDER BY orderexecuted, dateexecuted"
);

/// Reads every row.
pub(crate) async fn read(db: &Db) -> Result<Record> {
    let rows = db
        .client
        .query(READ, &[])
        .await
        .map_err(|e| read_error(db, Tool::Liquibase, &e))?;
    let mut out = Vec::new();
    for row in rows {
        let id: String = row.get(0);
        let author: String = row.get(1);
        let filename: String = row.get(2);
        let exectype: String = row.get(3);
        let executed: DateTime<Utc> = row.get(4);
        let file = filename
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or(filename.as_str())
            .to_string();
        let name = format!("{author}:{id}");
        out.push(Row {
            label: format!(
                "changeset {name} of {filename} ({})",
                exectype.to_lowercase()
            ),
            key: Key::Named { name, file },
            applied_at: Some(executed),
            execution_ms: 0,
            status: if exectype.eq_ignore_ascii_case("FAILED") {
                Status::Failed
            } else {
                Status::Applied
            },
            checksum: Expected::None,
        });
    }
    Ok(Record {
        rows: out,
        every_version: true,
    })
}

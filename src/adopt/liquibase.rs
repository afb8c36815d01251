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
//! `md5sum` is compared when it is a version-9 checksum (`9:…`, Liquibase
//! 4.22 and later): the MD5 of `9:` + the MD5 of the changeset's SQL with
//! every space, tab and line end removed + `:`
//! (`AbstractSQLChange.NormalizingStream`, `ChangeSet.generateCheckSum`);
//! a value a `--validCheckSum` line lists (or `ANY`) is accepted, as
//! Liquibase accepts it. NULL (after `clear-checksums`, filled in by
//! Liquibase's next run) and older versions (`8:…`, which Liquibase itself
//! recomputes on its next run) have nothing to compare.

use chrono::{DateTime, Utc};

use super::{Expected, Key, Record, Row, Status, Tool, read_error};
use crate::db::Db;
use crate::error::Result;
use crate::source::layouts::liquibase::Changeset;

/// The table's name.
pub const TABLE: &str = "databasechangelog";

/// Every row in the order Liquibase ran them.
const READ: &str = concat!(
    "SELECT id, author, filename, exectype, md5sum, ",
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
        let md5sum: Option<String> = row.get(4);
        let executed: DateTime<Utc> = row.get(5);
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
            checksum: match md5sum {
                Some(sum) if sum.trim().starts_with("9:") => {
                    Expected::LiquibaseV9(sum.trim().to_ascii_lowercase())
                }
                _ => Expected::None,
            },
        });
    }
    Ok(Record {
        rows: out,
        every_version: true,
    })
}

/// Liquibase's version-9 checksum (`9:…`) of a changeset's SQL.
pub(crate) fn checksum_v9(sql: &[u8]) -> String {
    use md5::{Digest, Md5};
    // Its SQL is trimmed and every space, tab, CR and LF dropped.
    let stripped: Vec<u8> = sql
        .iter()
        .copied()
        .filter(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .collect();
    let change = hex::encode(Md5::digest(&stripped));
    format!("9:{}", hex::encode(Md5::digest(format!("9:{change}:"))))
}

/// The changeset `name` (`author:id`) of a formatted-SQL file.
pub(crate) fn changeset(file: &[u8], name: &str) -> Option<Changeset> {
    let text = crate::source::checksum::normalize(file).ok()?;
    crate::source::layouts::liquibase::parse(&text)
        .ok()?
        .into_iter()
        .find(|c| format!("{}:{}", c.author, c.id) == name)
}

/// Whether Liquibase accepts `recorded` for `changeset` because one of its
/// `--validCheckSum` lines lists it (or `ANY`).
pub(crate) fn accepts(changeset: &Changeset, recorded: &str) -> bool {
    changeset
        .valid_checksums
        .iter()
        .any(|v| v.eq_ignore_ascii_case("any") || v.eq_ignore_ascii_case(recorded))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known answers: what Liquibase 4.28 recorded for these changesets.
    #[test]
    fn version_9_checksums_are_liquibases() {
        assert_eq!(
            checksum_v9(b"CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);\n\n"),
            "9:3171c3bec2e9e4c673d6a994a6d09ad4"
        );
        assert_eq!(
            checksum_v9(b"ALTER TABLE users ADD COLUMN name text;\n"),
            "9:ea39762615a2c02657f019435367f5e6"
        );
    }
}

//! Flyway: `flyway_schema_history`, as Flyway's PostgreSQL support creates
//! it (`createMetaDataTable.sql` of `flyway-database-postgresql`):
//! `installed_rank INT NOT NULL` (primary key), `version VARCHAR(50)`,
//! `description VARCHAR(200) NOT NULL`, `type VARCHAR(20) NOT NULL`,
//! `script VARCHAR(1000) NOT NULL`, `checksum INTEGER`, `installed_by
//! VARCHAR(100) NOT NULL`, `installed_on TIMESTAMP NOT NULL DEFAULT now()`,
//! `execution_time INTEGER NOT NULL` (ms), `success BOOLEAN NOT NULL`.
//!
//! Rows are read in `installed_rank` order: `SCHEMA` (the schema-creation
//! marker) is skipped, `BASELINE` counts every version up to it as applied,
//! `UNDO_*` and `DELETE` (Flyway 9+ `repair`) take a version back out,
//! everything else with a version is a versioned migration whose checksum
//! is compared. A row without a version is a run of a repeatable (`R__`)
//! migration: its last run counts, and a checksum that differs from the
//! file is not a refusal — Flyway would run it again, and so will `apply`.
//!
//! The checksum is Flyway's `ChecksumCalculator`: one CRC32 over the UTF-8
//! bytes of every line as `BufferedReader.readLine` returns them (without
//! `\n`, `\r` or `\r\n`), a BOM removed from the first line, stored as a
//! signed 32-bit integer — so line endings and blank lines do not change it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{Expected, Key, Record, Row, Status, Tool, parse_version, read_error};
use std::path::Path;

use crate::db::Db;
use crate::error::Result;
use crate::source::layouts::flyway_placeholders::FlywayConf;

/// The table's name.
pub const TABLE: &str = "flyway_schema_history";

/// The columns read, every row in the order Flyway wrote them.
const COLUMNS: &str = concat!(
    "SELECT installed_rank, version, description, type, script, checksum, ",
    local_time!("installed_on"),
    ", execution_time, success FROM "
);

/// The history table of the Flyway project whose migrations are in `dir`:
/// `flyway.table` in its flyway.toml or flyway.conf (in `dir` or up to three directories
/// above it, where Flyway projects keep it), in Flyway's default schema
/// (`flyway.defaultSchema`, else the first of `flyway.schemas`); without
/// those, `flyway_schema_history` as found through `search_path`.
pub fn table(dir: &Path) -> String {
    let conf = FlywayConf::find(dir).unwrap_or_default();
    match (conf.default_schema, conf.table) {
        (None, None) => TABLE.to_string(),
        (schema, table) => {
            let table = crate::db::quote_ident(table.as_deref().unwrap_or(TABLE));
            match schema {
                Some(schema) => format!("{}.{table}", crate::db::quote_ident(&schema)),
                None => table,
            }
        }
    }
}

/// Reads the rows of `table` and replays undo and delete rows.
pub(crate) async fn read(db: &Db, table: &str) -> Result<Record> {
    let rows = db
        .client
        .query(&format!("{COLUMNS}{table} ORDER BY installed_rank"), &[])
        .await
        .map_err(|e| read_error(db, Tool::Flyway, &e))?;
    // Applied versions by their text, in rank order; undo/delete remove them.
    let mut applied: BTreeMap<String, Row> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for row in rows {
        let version: Option<String> = row.get(1);
        let kind: String = row.get(3);
        let script: String = row.get(4);
        let checksum: Option<i32> = row.get(5);
        let installed_on: DateTime<Utc> = row.get(6);
        let execution_time: i32 = row.get(7);
        let success: bool = row.get(8);
        let kind = kind.to_ascii_uppercase();
        if kind == "SCHEMA" {
            continue;
        }
        let Some(text) = version else {
            // A repeatable: a row per run, the last one counts. `DELETE`
            // (Flyway 9+ `repair` of a removed file) takes it back out.
            let key = format!("repeatable {script}");
            if kind == "DELETE" {
                applied.remove(&key);
                continue;
            }
            let file = script.rsplit(['/', '\\']).next().unwrap_or(&script);
            let name = file
                .strip_prefix("R__")
                .and_then(|rest| rest.strip_suffix(".sql"))
                .filter(|_| kind == "SQL");
            order.push(key.clone());
            applied.insert(
                key.clone(),
                Row {
                    key: match name {
                        Some(name) => Key::Repeatable(name.to_string()),
                        // A Java or script-config repeatable has no SQL file.
                        None => Key::Unsupported(script.clone()),
                    },
                    label: format!("the repeatable migration {script}"),
                    applied_at: Some(installed_on),
                    execution_ms: i64::from(execution_time),
                    status: if success {
                        Status::Applied
                    } else {
                        Status::Failed
                    },
                    checksum: checksum.map_or(Expected::None, Expected::FlywayCrc32),
                },
            );
            continue;
        };
        if kind.starts_with("UNDO") || kind == "DELETE" {
            applied.remove(&text);
            continue;
        }
        let parsed = parse_version(Tool::Flyway, &text)?;
        let key = if kind.ends_with("BASELINE") {
            Key::UpTo {
                version: parsed,
                file_required: false,
            }
        } else {
            Key::Version(parsed)
        };
        let status = if success {
            Status::Applied
        } else {
            Status::Failed
        };
        order.push(text.clone());
        applied.insert(
            text.clone(),
            Row {
                key,
                label: format!("{script} (version {text}, {})", kind.to_lowercase()),
                applied_at: Some(installed_on),
                execution_ms: i64::from(execution_time),
                status,
                checksum: match checksum {
                    Some(value) if !kind.ends_with("BASELINE") => Expected::FlywayCrc32(value),
                    _ => Expected::None,
                },
            },
        );
    }
    let mut out = Vec::new();
    for key in order {
        if let Some(row) = applied.remove(&key) {
            out.push(row);
        }
    }
    Ok(Record {
        rows: out,
        every_version: true,
    })
}

/// Flyway's checksum of a script file (see the module docs).
pub fn checksum(bytes: &[u8]) -> i32 {
    let text = String::from_utf8_lossy(bytes);
    let mut crc = Crc32::new();
    let mut first = true;
    for line in java_lines(&text) {
        let line = if first {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        first = false;
        crc.update(line.as_bytes());
    }
    // Java's `(int) crc32.getValue()`: the low 32 bits, as a signed integer.
    i32::from_ne_bytes(crc.finish().to_ne_bytes())
}

/// Lines as Java's `BufferedReader.readLine` returns them: ended by `\n`,
/// `\r` or `\r\n`, without the terminator, and no empty last line after a
/// final terminator.
fn java_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                lines.push(&text[start..i]);
                i += 1;
                start = i;
            }
            b'\r' => {
                lines.push(&text[start..i]);
                i += 1;
                if bytes.get(i) == Some(&b'\n') {
                    i += 1;
                }
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < bytes.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// CRC-32 (IEEE 802.3, reflected), as `java.util.zip.CRC32`.
struct Crc32(crc32fast::Hasher);

impl Crc32 {
    fn new() -> Self {
        Crc32(crc32fast::Hasher::new())
    }

    fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u32 {
        self.0.clone().finalize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_the_ieee_one() {
        let mut crc = Crc32::new();
        crc.update(b"123456789");
        assert_eq!(crc.finish(), 0xCBF4_3926);
    }

    #[test]
    fn checksum_ignores_line_endings_bom_and_blank_lines() {
        let unix = checksum(b"CREATE TABLE t (id int);\nSELECT 1;\n");
        assert_eq!(checksum(b"CREATE TABLE t (id int);\r\nSELECT 1;\r\n"), unix);
        assert_eq!(checksum(b"CREATE TABLE t (id int);\rSELECT 1;"), unix);
        assert_eq!(
            checksum(b"\xEF\xBB\xBFCREATE TABLE t (id int);\n\n\nSELECT 1;"),
            unix
        );
        assert_ne!(checksum(b"CREATE TABLE t (id int);\nSELECT 2;\n"), unix);
        // One CRC over the concatenated lines, signed as Java's int.
        let mut crc = Crc32::new();
        crc.update(b"CREATE TABLE t (id int);SELECT 1;");
        assert_eq!(unix, i32::from_ne_bytes(crc.finish().to_ne_bytes()));
        assert_eq!(checksum(b""), 0);
    }
}

//! Drizzle: `drizzle.__drizzle_migrations (id SERIAL PRIMARY KEY, hash text
//! NOT NULL, created_at bigint)`, as drizzle-orm's PostgreSQL dialect creates
//! it (`pg-core/dialect.ts`, `migrate`). Each row is one applied journal
//! entry: `created_at` is the entry's `when` from `meta/_journal.json` (when
//! drizzle-kit generated it, not when it ran — Drizzle keeps no applied
//! time), `hash` the SHA-256 (hex) of `<tag>.sql` as read
//! (`migrator.ts`, `readMigrationFiles`). Rows are matched to files through
//! the journal; the hash is compared.

use std::path::Path;

use super::{Expected, Key, Record, Row, Status, Tool, read_error};
use crate::db::Db;
use crate::error::{Code, Error, ReasonCode, Result};

/// The table's name, schema-qualified as Drizzle creates it.
pub const TABLE: &str = "drizzle.__drizzle_migrations";

/// Every row in the order Drizzle wrote them.
const READ: &str =
    "SELECT hash, created_at::text FROM \"drizzle\".\"__drizzle_migrations\" ORDER BY id";

#[derive(serde::Deserialize)]
struct Journal {
    entries: Vec<Entry>,
}

#[derive(serde::Deserialize)]
struct Entry {
    when: i64,
    tag: String,
}

/// Reads the rows and names their files through `dir/meta/_journal.json`.
pub(crate) async fn read(db: &Db, dir: &Path) -> Result<Record> {
    let path = dir.join("meta").join("_journal.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, "read", &e))?;
    let journal: Journal = serde_json::from_str(&text).map_err(|e| Error::Config {
        reason: ReasonCode::new(Code::ConfigInvalid),
        message: format!("{} is not a Drizzle journal: {e}", path.display()),
        hint: Some(
            "point the namespace's dir at Drizzle's migrations folder; nothing was recorded".into(),
        ),
        source: None,
    })?;
    let rows = db
        .client
        .query(READ, &[])
        .await
        .map_err(|e| read_error(db, Tool::Drizzle, &e))?;
    let mut out = Vec::new();
    for row in rows {
        let hash: String = row.get(0);
        let created_at: Option<String> = row.get(1);
        let created_at = created_at.unwrap_or_default();
        let entry = journal
            .entries
            .iter()
            .find(|e| e.when.to_string() == created_at);
        let (key, label) = match entry {
            Some(entry) => (
                Key::FileName(None, format!("{}.sql", entry.tag)),
                format!("{} (journal entry {created_at})", entry.tag),
            ),
            None => (
                Key::FileName(None, created_at.clone()),
                format!(
                    "the migration created at {created_at}, which meta/_journal.json does not list"
                ),
            ),
        };
        out.push(Row {
            key,
            label,
            applied_at: None,
            execution_ms: 0,
            status: Status::Applied,
            checksum: Expected::Sha256Hex(hash),
        });
    }
    Ok(Record {
        rows: out,
        every_version: true,
    })
}

//! The SQLite side of a cutover: opening the file strictly read-only, the
//! online backup, and what the file declares (tables, columns, foreign keys).
//!
//! The source file is never written: it is opened with
//! `SQLITE_OPEN_READ_ONLY`, and `run` reads from a backup taken with SQLite's
//! own online backup API, which is consistent even while the application is
//! still writing.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::error::{Code, Error, ReasonCode, Result};

/// A table in the SQLite file.
#[derive(Debug, Clone)]
pub struct SourceTable {
    /// Its name.
    pub name: String,
    /// Its columns, in declaration order.
    pub columns: Vec<String>,
    /// Its primary key columns, in key order.
    pub primary_key: Vec<String>,
    /// The foreign keys it declares.
    pub foreign_keys: Vec<SourceForeignKey>,
    /// Whether it has a rowid (not `WITHOUT ROWID`).
    pub has_rowid: bool,
    /// Its `INTEGER PRIMARY KEY` column, the rowid under another name:
    /// unique by construction.
    pub rowid_alias: Option<String>,
    /// The highest id `AUTOINCREMENT` ever handed out (`sqlite_sequence`),
    /// which is above `max(id)` when the last rows were deleted: ids SQLite
    /// never gives out again.
    pub sqlite_sequence: Option<i64>,
}

/// A foreign key the SQLite file declares.
#[derive(Debug, Clone)]
pub struct SourceForeignKey {
    /// The table with the reference.
    pub table: String,
    /// Its columns.
    pub columns: Vec<String>,
    /// The table referred to.
    pub parent: String,
    /// The parent's columns (empty: its primary key).
    pub parent_columns: Vec<String>,
    /// SQLite's id of the key within the table.
    pub id: i64,
}

fn invalid(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::Config {
        reason: ReasonCode::new(Code::SqliteSourceInvalid),
        message: format!("cannot read the SQLite file {}: {what}", path.display()),
        hint: Some("check the path (--from) and that it is a SQLite 3 database".into()),
        source: None,
    }
}

/// Opens a SQLite file read-only; fails clearly when it is missing or not SQLite.
pub fn open(path: &Path) -> Result<Connection> {
    if !path.is_file() {
        return Err(invalid(path, "no such file"));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let db = Connection::open_with_flags(path, flags).map_err(|e| invalid(path, e))?;
    // Opening is lazy: the first read tells whether this is a database at all.
    db.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|e| invalid(path, e))?;
    // Read the pages where the kernel keeps them, not through a copy into
    // SQLite's own cache: the whole-table reads of load and verify spend a
    // part of their time on that copy. (Read-only; SQLite falls back to
    // ordinary reads where mapping is not possible.)
    db.pragma_update(None, "mmap_size", MMAP_BYTES)
        .map_err(|e| invalid(path, e))?;
    Ok(db)
}

/// How much of a SQLite file is read through a memory map.
const MMAP_BYTES: i64 = 1 << 40;

/// The error for a failed read of `table` from the SQLite file at `path`.
pub fn read_error(table: &str, path: &Path) -> impl Fn(rusqlite::Error) -> Error {
    let (table, path) = (table.to_string(), path.display().to_string());
    move |e| {
        Error::config(
            Code::SqliteSourceInvalid,
            format!("cannot read `{table}` from {path}: {e}"),
        )
    }
}

/// `"name"` for SQLite (same quoting rule as PostgreSQL).
pub fn quote(name: &str) -> String {
    crate::db::quote_ident(name)
}

/// The tables to copy: every ordinary table, not SQLite's own, not virtual
/// ones (their contents live in shadow tables). Virtual tables are returned
/// in the second list so that they can be named.
pub fn tables(db: &Connection, path: &Path) -> Result<(Vec<SourceTable>, Vec<String>)> {
    let mut statement = db
        .prepare(
            "SELECT name, coalesce(sql, '') FROM sqlite_schema \
             WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )
        .map_err(|e| invalid(path, e))?;
    let rows: Vec<(String, String)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(|e| invalid(path, e))?;
    let sequences: bool = db
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'sqlite_sequence')",
            [],
            |r| r.get(0),
        )
        .map_err(|e| invalid(path, e))?;
    let mut tables = Vec::new();
    let mut virtual_tables = Vec::new();
    for (name, sql) in rows {
        if sql
            .trim_start()
            .to_ascii_uppercase()
            .starts_with("CREATE VIRTUAL")
        {
            virtual_tables.push(name);
            continue;
        }
        let info: Vec<(String, String, i64)> = db
            .prepare(&format!("PRAGMA table_info({})", quote(&name)))
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok((
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(5)?,
                    ))
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            })
            .map_err(|e| invalid(path, e))?;
        let mut key: Vec<&(String, String, i64)> =
            info.iter().filter(|(_, _, pk)| *pk > 0).collect();
        key.sort_by_key(|(_, _, pk)| *pk);
        let primary_key: Vec<String> = key.iter().map(|(c, _, _)| c.clone()).collect();
        let has_rowid = has_rowid(db, &name).map_err(|e| invalid(path, e))?;
        // SQLite's rule: a single-column key declared exactly INTEGER.
        let rowid_alias = match key[..] {
            [(column, declared, _)] if has_rowid && declared.eq_ignore_ascii_case("INTEGER") => {
                Some(column.clone())
            }
            _ => None,
        };
        let sqlite_sequence = if sequences {
            db.query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = ?1",
                [&name],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                other => Err(other),
            })
            .map_err(|e| invalid(path, e))?
            .flatten()
        } else {
            None
        };
        let foreign_keys = foreign_keys(db, &name).map_err(|e| invalid(path, e))?;
        tables.push(SourceTable {
            columns: info.into_iter().map(|(c, _, _)| c).collect(),
            name,
            primary_key,
            foreign_keys,
            has_rowid,
            rowid_alias,
            sqlite_sequence,
        });
    }
    Ok((tables, virtual_tables))
}

/// Whether a table has a rowid (`PRAGMA table_list` says `wr` = 1 for
/// `WITHOUT ROWID` tables).
fn has_rowid(db: &Connection, table: &str) -> rusqlite::Result<bool> {
    db.query_row(
        "SELECT wr FROM pragma_table_list(?1) WHERE schema = 'main'",
        [table],
        |r| r.get::<_, i64>(0),
    )
    .map(|wr| wr == 0)
}

/// The name of the rowid that a table's own columns do not shadow, or
/// `None` when it has none (`WITHOUT ROWID`) or every alias is a column.
pub fn rowid_name(table: &SourceTable) -> Option<&'static str> {
    if !table.has_rowid {
        return None;
    }
    ["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|alias| !table.columns.iter().any(|c| c.eq_ignore_ascii_case(alias)))
}

/// The foreign keys a table declares.
pub fn foreign_keys(db: &Connection, table: &str) -> rusqlite::Result<Vec<SourceForeignKey>> {
    let mut statement = db.prepare(&format!("PRAGMA foreign_key_list({})", quote(table)))?;
    let rows: Vec<(i64, String, String, Option<String>)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut keys: Vec<SourceForeignKey> = Vec::new();
    for (id, parent, from, to) in rows {
        match keys.iter_mut().find(|k| k.id == id) {
            Some(key) => {
                key.columns.push(from);
                key.parent_columns.extend(to);
            }
            None => keys.push(SourceForeignKey {
                table: table.to_string(),
                columns: vec![from],
                parent,
                parent_columns: to.into_iter().collect(),
                id,
            }),
        }
    }
    Ok(keys)
}

/// Row count of a table.
pub fn count(db: &Connection, table: &str) -> rusqlite::Result<u64> {
    db.query_row(&format!("SELECT count(*) FROM {}", quote(table)), [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| u64::try_from(n).unwrap_or(0))
}

/// Copies the SQLite file with SQLite's online backup API into
/// `<dir>/<stem>-<timestamp>.db` (0600), checks the copy with
/// `PRAGMA quick_check`, and only then gives it its final name: a file with
/// that name is always a complete, checked copy.
pub fn backup(source: &Path, dir: &Path) -> Result<PathBuf> {
    crate::report::create_private_dir(dir)?;
    let stem = stem(source);
    let stamp = crate::report::file_stamp(chrono::Utc::now());
    let path = dir.join(format!("{stem}-{stamp}.db"));
    let partial = dir.join(format!(".{stem}-{stamp}.db.partial"));
    // Created 0600 before SQLite writes a byte into it.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| Error::io(&partial, "create", &e))?;
    let result = (|| -> std::result::Result<(), String> {
        let db = open(source).map_err(|e| e.to_string())?;
        db.backup(
            rusqlite::MAIN_DB,
            &partial,
            None::<fn(rusqlite::backup::Progress)>,
        )
        .map_err(|e| format!("the online backup failed: {e}"))?;
        let copy = Connection::open_with_flags(&partial, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| e.to_string())?;
        let check: String = copy
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| e.to_string())?;
        if check != "ok" {
            return Err(format!("the copy failed PRAGMA quick_check: {check}"));
        }
        Ok(())
    })();
    match result {
        Ok(()) => {
            std::fs::rename(&partial, &path).map_err(|e| Error::io(&path, "rename", &e))?;
            Ok(path)
        }
        Err(message) => {
            let _ = std::fs::remove_file(&partial);
            // Like a failed pg_dump: refused before anything changed (exit 1).
            Err(Error::Refused {
                reason: ReasonCode::new(Code::BackupFailed),
                message: format!(
                    "the backup of {} could not be made: {message}",
                    source.display()
                ),
                hint: Some(
                    "nothing was loaded; the source file was only read. Check free space in the backup directory".into(),
                ),
             source: None, })
        }
    }
}

/// The name backups of `source` start with (`app` for `app.db`).
fn stem(source: &Path) -> String {
    source
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sqlite".into())
}

/// Deletes all but the newest `keep` backups of `source` in `dir`
/// (`[backup] keep`; 0 keeps all). Only files named as [`backup`] names
/// them (`<stem>-<timestamp>.db`) are counted or touched.
pub fn prune(source: &Path, dir: &Path, keep: u32) -> Result<()> {
    if keep == 0 {
        return Ok(());
    }
    let prefix = format!("{}-", stem(source));
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(dir, "read", &e)),
    };
    let mut backups: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            e.file_name().to_str().is_some_and(|name| {
                name.strip_prefix(&prefix)
                    .and_then(|rest| rest.strip_suffix(".db"))
                    .is_some_and(is_stamp)
            })
        })
        .map(|e| e.path())
        .collect();
    // The stamp sorts in time order: newest first.
    backups.sort_by(|a, b| b.cmp(a));
    for old in backups.into_iter().skip(keep as usize) {
        std::fs::remove_file(&old).map_err(|e| Error::io(&old, "remove the old backup", &e))?;
    }
    Ok(())
}

/// `20261124T081500.123Z`, as [`crate::report::file_stamp`] writes it.
fn is_stamp(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 20
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 => *b == b'T',
            15 => *b == b'.',
            19 => *b == b'Z',
            _ => b.is_ascii_digit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_backup_names_are_pruned() {
        assert!(is_stamp(&crate::report::file_stamp(chrono::Utc::now())));
        assert!(!is_stamp("old"));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for name in [
            "app-20240101T000000.000Z.db",
            "app-20240102T000000.000Z.db",
            "app-20240103T000000.000Z.db",
            "app-old.db",
            "other-20240101T000000.000Z.db",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap_or_else(|e| panic!("{e}"));
        }
        prune(Path::new("/srv/app.db"), dir.path(), 2).unwrap_or_else(|e| panic!("{e}"));
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "app-20240102T000000.000Z.db",
                "app-20240103T000000.000Z.db",
                "app-old.db",
                "other-20240101T000000.000Z.db"
            ]
        );
    }
}

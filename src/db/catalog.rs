//! Catalog queries about schema objects, shared by preflight and postflight:
//! invalid indexes, NOT VALID constraints, foreign keys and their orphans,
//! server version and size.

use serde::Serialize;

use super::Db;
use super::history::database_error;
use super::quote_ident;
use crate::error::Result;

/// A constraint that was added NOT VALID and never validated.
#[derive(Debug, Clone, Serialize)]
pub struct NotValid {
    /// `schema.table.constraint`.
    pub name: String,
    /// `FOREIGN KEY` or `CHECK`.
    pub kind: String,
    /// Its definition.
    pub definition: String,
}

/// A foreign key, with quoted identifiers ready for an anti-join.
#[derive(Debug, Clone)]
pub struct ForeignKey {
    /// `schema.table.constraint` (for codes and messages).
    pub name: String,
    /// Whether it was validated.
    pub validated: bool,
    child: String,
    child_columns: Vec<String>,
    parent: String,
    parent_columns: Vec<String>,
}

/// The server's version text and number (`15.18`, 150018).
pub(crate) async fn server_version(db: &Db) -> Result<(String, i32)> {
    let row = db
        .client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int",
            &[],
        )
        .await
        .map_err(|e| database_error(db, "read the server version", &e))?;
    Ok((row.get(0), row.get(1)))
}

/// Whether the server is a standby in recovery.
pub(crate) async fn in_recovery(db: &Db) -> Result<bool> {
    let row = db
        .client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .map_err(|e| database_error(db, "ask whether the server is a standby", &e))?;
    Ok(row.get(0))
}

/// The size of the current database in bytes.
pub(crate) async fn database_size(db: &Db) -> Result<i64> {
    let row = db
        .client
        .query_one("SELECT pg_database_size(current_database())", &[])
        .await
        .map_err(|e| database_error(db, "read the database size", &e))?;
    Ok(row.get(0))
}

/// Indexes left INVALID (a failed or interrupted CREATE INDEX CONCURRENTLY).
pub(crate) async fn invalid_indexes(db: &Db) -> Result<Vec<String>> {
    let rows = db
        .client
        .query(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE NOT i.indisvalid ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| database_error(db, "look for invalid indexes", &e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Foreign key and check constraints that are NOT VALID.
pub(crate) async fn not_valid_constraints(db: &Db) -> Result<Vec<NotValid>> {
    let rows = db
        .client
        .query(
            "SELECT n.nspname || '.' || c.relname || '.' || con.conname, \
                    CASE con.contype WHEN 'f' THEN 'FOREIGN KEY' ELSE 'CHECK' END, pg_get_constraintdef(con.oid) \
             FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE NOT con.convalidated AND con.contype IN ('f', 'c') ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| database_error(db, "look for NOT VALID constraints", &e))?;
    Ok(rows
        .iter()
        .map(|r| NotValid {
            name: r.get(0),
            kind: r.get(1),
            definition: r.get(2),
        })
        .collect())
}

/// Foreign keys: the NOT VALID ones, or all of them (`deep`).
pub(crate) async fn foreign_keys(db: &Db, deep: bool) -> Result<Vec<ForeignKey>> {
    let rows = db
        .client
        .query(
            "SELECT n.nspname || '.' || c.relname || '.' || con.conname, con.convalidated, \
                    quote_ident(n.nspname) || '.' || quote_ident(c.relname), \
                    ARRAY(SELECT quote_ident(a.attname) FROM unnest(con.conkey) WITH ORDINALITY k(num, ord) \
                          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.ord), \
                    quote_ident(pn.nspname) || '.' || quote_ident(p.relname), \
                    ARRAY(SELECT quote_ident(a.attname) FROM unnest(con.confkey) WITH ORDINALITY k(num, ord) \
                          JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.ord) \
             FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_class p ON p.oid = con.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace \
             WHERE con.contype = 'f' AND con.conparentid = 0 AND ($1 OR NOT con.convalidated) ORDER BY 1",
            &[&deep],
        )
        .await
        .map_err(|e| database_error(db, "list the foreign keys", &e))?;
    Ok(rows
        .iter()
        .map(|r| ForeignKey {
            name: r.get(0),
            validated: r.get(1),
            child: r.get(2),
            child_columns: r.get(3),
            parent: r.get(4),
            parent_columns: r.get(5),
        })
        .collect())
}

/// How many child rows have no parent (MATCH SIMPLE: rows with a NULL key
/// column are exempt), counted up to `cap`.
pub(crate) async fn orphan_count(db: &Db, fk: &ForeignKey, cap: i64) -> Result<i64> {
    let not_null: Vec<String> = fk
        .child_columns
        .iter()
        .map(|c| format!("c.{c} IS NOT NULL"))
        .collect();
    let join: Vec<String> = fk
        .child_columns
        .iter()
        .zip(&fk.parent_columns)
        .map(|(c, p)| format!("p.{p} = c.{c}"))
        .collect();
    let sql = format!(
        "SELECT count(*) FROM (SELECT 1 FROM {} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {}) LIMIT $1) orphans",
        fk.child,
        not_null.join(" AND "),
        fk.parent,
        join.join(" AND ")
    );
    let row = db
        .client
        .query_one(&sql, &[&cap])
        .await
        .map_err(|e| database_error(db, &format!("count orphaned rows of {}", fk.name), &e))?;
    Ok(row.get(0))
}

/// Quoted `schema.name` from a possibly qualified, unquoted name.
pub fn qualified(schema: Option<&str>, name: &str) -> String {
    match schema {
        Some(schema) => format!("{}.{}", quote_ident(schema), quote_ident(name)),
        None => quote_ident(name),
    }
}

/// Live sizes of tables and materialized views, by `schema.name` and by
/// `name` (the first schema wins for a name used twice).
///
/// Rows come from `reltuples`, which PostgreSQL sets on VACUUM and ANALYZE. A
/// table never analyzed has none (-1 since PostgreSQL 14; before, 0 with
/// `relpages` 0) however big it is, so its rows are estimated the way the
/// planner does (`estimate_rel_size`): its pages times the rows that fit in a
/// page, from the columns' widths (`attlen`, or 32 bytes for a variable-width
/// column) plus the tuple header and line pointer.
pub(crate) async fn table_sizes(
    db: &Db,
) -> Result<std::collections::HashMap<String, crate::lint::TableSize>> {
    let rows = db
        .client
        .query(TABLE_SIZES, &[])
        .await
        .map_err(|e| database_error(db, "read table sizes", &e))?;
    let mut sizes = std::collections::HashMap::new();
    for row in rows {
        let schema: String = row.get(0);
        let name: String = row.get(1);
        let size = crate::lint::TableSize {
            bytes: row.get(2),
            rows: row.get(3),
            estimated_from_pages: row.get(4),
        };
        sizes.insert(format!("{schema}.{name}"), size);
        sizes.entry(name).or_insert(size);
    }
    Ok(sizes)
}

/// Every relation of the database outside the system schemas, as
/// `schema.name` and `name`, lower case: lint's "does it exist yet".
pub(crate) async fn relation_names(db: &Db) -> Result<std::collections::HashSet<String>> {
    let rows = db
        .client
        .query(RELATION_NAMES, &[])
        .await
        .map_err(|e| database_error(db, "read the relation names", &e))?;
    let mut names = std::collections::HashSet::with_capacity(rows.len() * 2);
    for row in rows {
        let schema: String = row.get(0);
        let name: String = row.get(1);
        let name = name.to_lowercase();
        names.insert(format!("{}.{name}", schema.to_lowercase()));
        names.insert(name);
    }
    Ok(names)
}

const RELATION_NAMES: &str = "SELECT n.nspname, c.relname FROM pg_class c \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind IN ('r', 'p', 'm', 'v', 'f') \
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')";

/// Per table: schema, name, total bytes, rows, and whether the rows were
/// estimated from the pages (never analyzed). 24 bytes of page header; per
/// row, the 23-byte tuple header aligned to 24 and a 4-byte line pointer.
const TABLE_SIZES: &str = "
WITH t AS (
  SELECT n.nspname, c.relname,
         CASE WHEN l.locked THEN c.relpages::bigint * current_setting('block_size')::bigint
              ELSE pg_total_relation_size(c.oid) END AS total_bytes,
         CASE WHEN l.locked THEN c.relpages::bigint * current_setting('block_size')::bigint
              ELSE pg_relation_size(c.oid) END AS heap_bytes,
         c.reltuples::float8 AS reltuples, c.relpages,
         current_setting('block_size')::float8 AS block,
         (SELECT coalesce(sum(CASE WHEN a.attlen > 0 THEN a.attlen ELSE 32 END), 0)
            FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)::float8 AS width
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  -- Reading a size takes ACCESS SHARE, which queues behind an ACCESS EXCLUSIVE
  -- lock held or awaited by another session: preflight would hang there. Such
  -- a table's size comes from pg_class instead.
  CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM pg_locks k WHERE k.locktype = 'relation'
         AND k.relation = c.oid AND k.mode = 'AccessExclusiveLock' AND k.pid <> pg_backend_pid())) AS l(locked)
  WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
), e AS (
  SELECT *, (reltuples < 0 OR relpages = 0) AND heap_bytes > 0 AS unanalyzed FROM t
)
SELECT nspname, relname, total_bytes,
       CASE WHEN unanalyzed
            THEN floor(heap_bytes / block) * greatest(1, floor((block - 24) / (ceil(width / 8) * 8 + 28)))
            ELSE greatest(reltuples, 0) END,
       unanalyzed
FROM e ORDER BY nspname <> 'public', 1, 2";

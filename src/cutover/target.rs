//! The PostgreSQL side of a cutover: the tables, columns, keys and
//! sequences of the target schema, read from the catalog.

use tokio_postgres::types::Type;

use super::types::Kind;
use crate::db::{Db, history::database_error, quote_ident};
use crate::error::Result;

/// A column of a target table.
#[derive(Debug, Clone)]
pub struct TargetColumn {
    /// Name.
    pub name: String,
    /// `format_type()` of it, for messages.
    pub type_display: String,
    /// How values are converted for it; `None` when migsafe cannot.
    pub kind: Option<Kind>,
    /// NOT NULL (on the column or its domain).
    pub not_null: bool,
    /// A generated column: computed by the server, never copied.
    pub generated: bool,
    /// Has a default or is an identity column.
    pub has_default: bool,
    /// Its type as SQL, domains resolved to their base type
    /// (`character varying(20)`, `citext`), for a table of the same values.
    pub sql_type: String,
    /// Its collation as SQL (`"pg_catalog"."default"`, `"public"."nocase"`),
    /// when the type has one.
    pub collation: Option<String>,
}

/// A table of the target schema.
#[derive(Debug, Clone)]
pub struct TargetTable {
    /// Name (in the cutover schema).
    pub name: String,
    /// Columns in order.
    pub columns: Vec<TargetColumn>,
    /// Primary key columns, in key order.
    pub primary_key: Vec<String>,
    /// Every unique index (primary keys and unique constraints included):
    /// what PostgreSQL will refuse as duplicates.
    pub unique_indexes: Vec<UniqueIndex>,
}

/// A unique index of a target table, as PostgreSQL evaluates it.
#[derive(Debug, Clone)]
pub struct UniqueIndex {
    /// The index (the constraint's name when it backs one).
    pub name: String,
    /// `CREATE UNIQUE INDEX …` as the server prints it, for messages.
    pub definition: String,
    /// The key, one SQL expression per key column over the table's column
    /// names, with the index's collation (`("sku") COLLATE "pg_catalog"."C"`,
    /// `(lower(sku)) COLLATE …`).
    pub keys: Vec<String>,
    /// The key as people read it (`email`, `lower(sku)`).
    pub shown: Vec<String>,
    /// Every key column is a plain column (no expression).
    pub plain: bool,
    /// The WHERE of a partial index.
    pub predicate: Option<String>,
    /// `NULLS NOT DISTINCT` (PostgreSQL 15 and later): NULLs conflict too.
    pub nulls_not_distinct: bool,
    /// The table's columns it reads (keys, expressions, predicate).
    pub columns: Vec<String>,
}

/// A foreign key between two tables of the target schema.
#[derive(Debug, Clone)]
pub struct TargetForeignKey {
    /// Constraint name.
    pub name: String,
    /// Referencing table.
    pub table: String,
    /// Its columns.
    pub columns: Vec<String>,
    /// Referenced table.
    pub parent: String,
    /// Its columns.
    pub parent_columns: Vec<String>,
}

/// The target schema as the copy sees it.
#[derive(Debug, Clone, Default)]
pub struct TargetSchema {
    /// Tables by name.
    pub tables: Vec<TargetTable>,
    /// The target database's `server_encoding` (the real target's, also
    /// when the schema was built on a scratch database).
    pub encoding: String,
    /// Foreign keys whose both ends are in the schema.
    pub foreign_keys: Vec<TargetForeignKey>,
}

const COLUMNS: &str = "
SELECT c.relname, a.attname, bt.typname::text, bt.typtype::text,
       CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
       a.attnotnull OR t.typnotnull, a.attgenerated <> '', a.atthasdef OR a.attidentity <> '',
       format_type(a.atttypid, a.atttypmod),
       coalesce((SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
                 FROM pg_enum e WHERE e.enumtypid = bt.oid), '{}'),
       format_type(bt.oid, CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END),
       (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co
          JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY c.relname, a.attnum";

const PRIMARY_KEYS: &str = "
SELECT c.relname, array_agg(a.attname::text ORDER BY k.ord)
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE n.nspname = $1 AND con.contype = 'p'
GROUP BY c.relname, con.conname";

/// Every unique index that enforces uniqueness on inserts (`indisready`; an
/// INVALID leftover of a concurrent build enforces it too): per key column
/// its expression and collation, the partial WHERE, NULLS NOT DISTINCT
/// (read through to_jsonb so that servers before 15 answer false), and the
/// columns it reads (the key's, and for expressions and predicates those
/// pg_depend records).
const UNIQUE_INDEXES: &str = "
SELECT c.relname::text, i.relname::text, pg_get_indexdef(x.indexrelid),
       ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, true)
               FROM generate_series(1, x.indnkeyatts) AS k ORDER BY k),
       ARRAY(SELECT (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co
                       JOIN pg_namespace cn ON cn.oid = co.collnamespace
                      WHERE co.oid = x.indcollation[k - 1])
               FROM generate_series(1, x.indnkeyatts) AS k ORDER BY k),
       x.indexprs IS NULL,
       pg_get_expr(x.indpred, x.indrelid),
       coalesce((to_jsonb(x) ->> 'indnullsnotdistinct')::boolean, false),
       ARRAY(SELECT a.attname::text FROM pg_attribute a
              WHERE a.attrelid = x.indrelid AND a.attnum > 0 AND NOT a.attisdropped
                AND (a.attnum IN (SELECT x.indkey[k] FROM generate_series(0, x.indnkeyatts - 1) AS k)
                     OR ((x.indexprs IS NOT NULL OR x.indpred IS NOT NULL)
                         AND a.attnum IN (SELECT d.refobjsubid FROM pg_depend d
                                           WHERE d.classid = 'pg_class'::regclass
                                             AND d.objid = x.indexrelid
                                             AND d.refclassid = 'pg_class'::regclass
                                             AND d.refobjid = x.indrelid)))
              ORDER BY a.attnum)
FROM pg_index x
JOIN pg_class c ON c.oid = x.indrelid
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND x.indisunique AND x.indisready AND x.indislive
  AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY c.relname, i.relname";

const FOREIGN_KEYS: &str = "
SELECT con.conname::text, c.relname::text, p.relname::text,
       (SELECT array_agg(a.attname::text ORDER BY k.ord)
          FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum),
       (SELECT array_agg(a.attname::text ORDER BY k.ord)
          FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum)
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class p ON p.oid = con.confrelid
JOIN pg_namespace pn ON pn.oid = p.relnamespace
WHERE n.nspname = $1 AND pn.nspname = $1 AND con.contype = 'f'
ORDER BY con.conname";

/// Every serial or identity column's sequence in one table.
const SEQUENCES: &str = "
SELECT a.attname::text, pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = $1 AND c.relname = $2
  AND pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname) IS NOT NULL";

/// The database's `server_encoding` (`UTF8`, `LATIN1`, `SQL_ASCII`…).
pub(crate) async fn server_encoding(db: &Db) -> Result<String> {
    Ok(db
        .client
        .query_one("SELECT current_setting('server_encoding')", &[])
        .await
        .map_err(|e| database_error(db, "read the server encoding", &e))?
        .get(0))
}

impl TargetSchema {
    /// Reads the tables of `schema`.
    pub(crate) async fn read(db: &Db, schema: &str) -> Result<TargetSchema> {
        let columns = db
            .client
            .query(COLUMNS, &[&schema])
            .await
            .map_err(|e| database_error(db, "read the target tables", &e))?;
        let mut tables: Vec<TargetTable> = Vec::new();
        for row in columns {
            let table: String = row.get(0);
            let typname: String = row.get(2);
            let typtype: String = row.get(3);
            let typmod: i32 = row.get(4);
            let labels: Vec<String> = row.get(9);
            let column = TargetColumn {
                name: row.get(1),
                kind: Kind::from_catalog(&typname, &typtype, typmod, &labels),
                not_null: row.get(5),
                generated: row.get(6),
                has_default: row.get(7),
                type_display: row.get(8),
                sql_type: row.get(10),
                collation: row.get(11),
            };
            match tables.last_mut() {
                Some(last) if last.name == table => last.columns.push(column),
                _ => tables.push(TargetTable {
                    name: table,
                    columns: vec![column],
                    primary_key: Vec::new(),
                    unique_indexes: Vec::new(),
                }),
            }
        }
        let keys = db
            .client
            .query(PRIMARY_KEYS, &[&schema])
            .await
            .map_err(|e| database_error(db, "read the primary keys", &e))?;
        for row in keys {
            let table: String = row.get(0);
            if let Some(t) = tables.iter_mut().find(|t| t.name == table) {
                t.primary_key = row.get(1);
            }
        }
        let indexes = db
            .client
            .query(UNIQUE_INDEXES, &[&schema])
            .await
            .map_err(|e| database_error(db, "read the unique indexes", &e))?;
        for row in indexes {
            let table: String = row.get(0);
            let Some(t) = tables.iter_mut().find(|t| t.name == table) else {
                continue;
            };
            let shown: Vec<String> = row.get(3);
            let collations: Vec<Option<String>> = row.get(4);
            let keys = shown
                .iter()
                .zip(collations.iter().chain(std::iter::repeat(&None)))
                .map(|(key, collation)| match collation {
                    Some(collation) => format!("({key}) COLLATE {collation}"),
                    None => format!("({key})"),
                })
                .collect();
            t.unique_indexes.push(UniqueIndex {
                name: row.get(1),
                definition: row.get(2),
                keys,
                shown,
                plain: row.get(5),
                predicate: row.get(6),
                nulls_not_distinct: row.get(7),
                columns: row.get(8),
            });
        }
        let foreign_keys = db
            .client
            .query(FOREIGN_KEYS, &[&schema])
            .await
            .map_err(|e| database_error(db, "read the foreign keys", &e))?
            .into_iter()
            .map(|row| TargetForeignKey {
                name: row.get(0),
                table: row.get(1),
                parent: row.get(2),
                columns: row.get(3),
                parent_columns: row.get(4),
            })
            .collect();
        let encoding = server_encoding(db).await?;
        Ok(TargetSchema {
            tables,
            foreign_keys,
            encoding,
        })
    }

    /// The table SQLite's `name` maps to: the same name, else the only one
    /// equal ignoring case (SQLite names are case-insensitive; unquoted
    /// PostgreSQL names are lower case).
    pub fn find(&self, name: &str) -> Option<&TargetTable> {
        by_name(&self.tables, name, |t| &t.name)
    }
}

impl TargetTable {
    /// The column SQLite's `name` maps to (same rule as tables).
    pub fn column(&self, name: &str) -> Option<&TargetColumn> {
        by_name(&self.columns, name, |c| &c.name)
    }
}

/// The item named exactly `name`, else the only one equal ignoring case.
fn by_name<'a, T>(items: &'a [T], name: &str, name_of: impl Fn(&T) -> &String) -> Option<&'a T> {
    items.iter().find(|i| name_of(i) == name).or_else(|| {
        let mut same = items
            .iter()
            .filter(|i| name_of(i).eq_ignore_ascii_case(name));
        match (same.next(), same.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    })
}

/// `"schema"."table"`.
pub fn qualified(schema: &str, table: &str) -> String {
    crate::db::catalog::qualified(Some(schema), table)
}

/// The wire types of `columns` of a table, as the server will describe them
/// to COPY (custom types such as enums resolved by the driver).
pub(crate) async fn column_types(db: &Db, table: &str, columns: &[String]) -> Result<Vec<Type>> {
    let list = columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let statement = db
        .client
        .prepare(&format!("SELECT {list} FROM {table} LIMIT 0"))
        .await
        .map_err(|e| database_error(db, "describe the target table", &e))?;
    Ok(statement
        .columns()
        .iter()
        .map(|c| c.type_().clone())
        .collect())
}

/// Whether a table has any row.
pub(crate) async fn has_rows(db: &Db, table: &str) -> Result<bool> {
    let row = db
        .client
        .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])
        .await
        .map_err(|e| database_error(db, "look into the target table", &e))?;
    Ok(row.get(0))
}

/// One sequence moved past the copied maximum.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SequenceSet {
    /// The column it feeds.
    pub column: String,
    /// The sequence.
    pub sequence: String,
    /// The highest id SQLite's `AUTOINCREMENT` had handed out, when it is
    /// this column's (`sqlite_sequence`).
    pub sqlite_sequence: Option<i64>,
    /// Its new value (the next `nextval` returns one more).
    pub value: Option<i64>,
}

/// Sets every serial/identity sequence of a table past the column's
/// maximum, and past the highest id SQLite's `AUTOINCREMENT` ever handed
/// out (rows deleted at the end keep their ids used), so that the
/// application's next insert gets an id SQLite never gave.
pub(crate) async fn set_sequences(db: &Db, table: &super::TableMap) -> Result<Vec<SequenceSet>> {
    let rows = db
        .client
        .query(SEQUENCES, &[&table.schema, &table.target])
        .await
        .map_err(|e| database_error(db, "find the table's sequences", &e))?;
    let mut set = Vec::new();
    for row in rows {
        let column: String = row.get(0);
        let sequence: String = row.get(1);
        let floor = table
            .sequence_floor
            .as_ref()
            .filter(|(c, _)| *c == column)
            .map(|(_, value)| *value);
        // setval() alone is not transactional; on a sequence rewritten by
        // ALTER SEQUENCE … RESTART in this transaction it is (the rewrite is
        // rolled back with it), so a failed load leaves it as it was.
        db.client
            .batch_execute(&format!("ALTER SEQUENCE {sequence} RESTART"))
            .await
            .map_err(|e| database_error(db, "set the sequence", &e))?;
        // greatest() ignores NULL: an empty table still moves past the floor.
        let sql = format!(
            "SELECT setval($1::text::regclass, m) \
             FROM (SELECT greatest(max({})::bigint, $2::bigint) AS m FROM {}) AS x \
             WHERE m >= (SELECT seqmin FROM pg_sequence WHERE seqrelid = $1::text::regclass)",
            quote_ident(&column),
            table.qualified
        );
        let value = db
            .client
            .query_opt(&sql, &[&sequence, &floor])
            .await
            .map_err(|e| database_error(db, "set the sequence", &e))?
            .map(|r| r.get::<_, i64>(0));
        set.push(SequenceSet {
            column,
            sequence,
            sqlite_sequence: floor,
            value,
        });
    }
    Ok(set)
}

//! Take-out and put-back of what makes a load slow: the foreign keys and
//! indexes of the tables being loaded, the way pg_restore orders a restore
//! (data first, then what depends on it).
//!
//! A foreign key checked during COPY costs an index probe of the parent per
//! row, and every index is maintained row by row; built afterwards, an index
//! is one sort and a foreign key one set-based check (`VALIDATE CONSTRAINT`,
//! an anti-join). The exact definitions are read from the catalog
//! (`pg_get_indexdef`, `pg_get_constraintdef`) inside the load's own
//! transaction, the objects dropped there, and recreated there before the
//! commit: the whole sequence is one transaction, so a failure, Ctrl-C, a
//! server restart or a failed `VALIDATE` rolls the drops back with the rows,
//! and no other session ever sees a table without its constraints.
//!
//! Primary keys and unique constraints are taken out too (measured faster:
//! one sorted build instead of a btree insert per row; precheck has already
//! compared every key as PostgreSQL does, and the rebuild refuses a duplicate
//! all the same, naming it). What is left in place, because recreating it
//! from its definition would not give back the same object: exclusion
//! constraints, indexes of partitioned tables and partitions of partitioned
//! indexes, the replica-identity and the clustered index, indexes in another
//! tablespace or with per-column statistics targets, INVALID indexes, and
//! keys that a foreign key of a table outside the load refers to.

use crate::db::{Db, history::database_error, quote_ident};
use crate::error::{Code, Error, ReasonCode, Result};

/// The foreign keys of the loaded tables: name, table, definition (without
/// ` NOT VALID`), whether it was validated, its comment, and the table's
/// bare name.
const FOREIGN_KEYS: &str = "
SELECT con.conname::text, format('%I.%I', n.nspname, c.relname),
       regexp_replace(pg_get_constraintdef(con.oid), ' NOT VALID$', ''),
       con.convalidated, obj_description(con.oid, 'pg_constraint'), c.relname::text
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = ANY($2) AND c.relkind = 'r'
  AND con.contype = 'f' AND con.conparentid = 0
ORDER BY c.relname, con.conname";

/// The indexes of the loaded tables that can be dropped and built again
/// from their definition: per index its name, table, `CREATE INDEX …`, the
/// primary key or unique constraint it backs (name and definition), the
/// comments of both, its qualified name and the table's bare name. Left
/// out (left in place): see the module docs. An index or constraint
/// something else depends on (a foreign key of a table outside the load, a
/// view that groups by the primary key…) stays too.
const INDEXES: &str = "
SELECT i.relname::text, format('%I.%I', n.nspname, c.relname),
       pg_get_indexdef(x.indexrelid), con.conname::text, pg_get_constraintdef(con.oid),
       obj_description(x.indexrelid, 'pg_class'), obj_description(con.oid, 'pg_constraint'),
       format('%I.%I', n.nspname, i.relname), c.relname::text
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class c ON c.oid = x.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_constraint con ON con.conindid = x.indexrelid AND con.conrelid = x.indrelid
                           AND con.contype IN ('p', 'u', 'x')
WHERE n.nspname = $1 AND c.relname = ANY($2) AND c.relkind = 'r'
  AND x.indisvalid AND x.indisready AND x.indislive
  AND NOT x.indisreplident AND NOT x.indisclustered
  AND i.reltablespace = 0
  AND con.contype IS DISTINCT FROM 'x'
  AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = x.indexrelid)
  AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                   WHERE a.attrelid = x.indexrelid AND coalesce(a.attstattarget::int, -1) <> -1)
  AND NOT EXISTS (
    SELECT 1 FROM pg_depend d
     WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = x.indexrelid AND d.deptype = 'n'
       AND NOT (d.classid = 'pg_constraint'::regclass AND d.objid IN (
             SELECT f.oid FROM pg_constraint f
              JOIN pg_class fc ON fc.oid = f.conrelid
              JOIN pg_namespace fn ON fn.oid = fc.relnamespace
             WHERE f.contype = 'f' AND fn.nspname = $1 AND fc.relname = ANY($2) AND fc.relkind = 'r')))
  AND NOT EXISTS (
    SELECT 1 FROM pg_depend d
     WHERE d.refclassid = 'pg_constraint'::regclass AND d.refobjid = con.oid AND d.deptype = 'n')
ORDER BY c.relname, i.relname";

/// Sorts get room for an index build (and a parallel one its workers), for
/// this transaction only, unless the server already gives more.
const MAINTENANCE_MEMORY: &str = "
SELECT set_config('maintenance_work_mem', '256MB', true)
WHERE pg_size_bytes(current_setting('maintenance_work_mem')) < 256 * 1024 * 1024";

/// A foreign key taken out for the load.
#[derive(Debug, Clone)]
pub struct ForeignKey {
    /// Constraint name.
    pub name: String,
    /// `"schema"."table"` it is on.
    pub table: String,
    /// That table's name alone, as the cutover names its tables.
    pub table_name: String,
    /// `FOREIGN KEY (…) REFERENCES …` as the server prints it.
    pub definition: String,
    /// It was validated before (a `NOT VALID` one is put back as it was).
    pub validated: bool,
    /// `COMMENT ON CONSTRAINT`, if any.
    pub comment: Option<String>,
}

/// An index (or the primary key or unique constraint it backs) taken out.
#[derive(Debug, Clone)]
pub struct Index {
    /// Index name.
    pub name: String,
    /// `"schema"."index"`.
    pub qualified: String,
    /// `"schema"."table"` it is on.
    pub table: String,
    /// That table's name alone, as the cutover names its tables.
    pub table_name: String,
    /// `CREATE [UNIQUE] INDEX …` as the server prints it.
    pub definition: String,
    /// `(name, PRIMARY KEY (…) / UNIQUE (…))` when it backs a constraint.
    pub constraint: Option<(String, String)>,
    /// `COMMENT ON INDEX`, if any.
    pub comment: Option<String>,
    /// `COMMENT ON CONSTRAINT`, if any.
    pub constraint_comment: Option<String>,
}

/// What was taken out of the loaded tables, to be put back.
#[derive(Debug, Clone, Default)]
pub struct Detached {
    /// Foreign keys.
    pub foreign_keys: Vec<ForeignKey>,
    /// Indexes, primary keys and unique constraints.
    pub indexes: Vec<Index>,
}

impl Detached {
    /// The statements that drop them: foreign keys first (they depend on
    /// the parents' unique indexes).
    pub fn drops(&self) -> Vec<String> {
        let keys = self.foreign_keys.iter().map(|k| {
            format!(
                "ALTER TABLE {} DROP CONSTRAINT {}",
                k.table,
                quote_ident(&k.name)
            )
        });
        let indexes = self.indexes.iter().map(|i| match &i.constraint {
            Some((name, _)) => format!(
                "ALTER TABLE {} DROP CONSTRAINT {}",
                i.table,
                quote_ident(name)
            ),
            None => format!("DROP INDEX {}", index_name(i)),
        });
        keys.chain(indexes).collect()
    }
}

/// `"schema"."index"`.
fn index_name(index: &Index) -> &str {
    &index.qualified
}

/// Reads (inside the load's transaction) what can be taken out of
/// `tables` (target names in `schema`) and drops it.
pub(crate) async fn take_out(db: &Db, schema: &str, tables: &[String]) -> Result<Detached> {
    let foreign_keys = db
        .client
        .query(FOREIGN_KEYS, &[&schema, &tables])
        .await
        .map_err(|e| database_error(db, "read the foreign keys of the target tables", &e))?
        .into_iter()
        .map(|row| ForeignKey {
            name: row.get(0),
            table: row.get(1),
            definition: row.get(2),
            validated: row.get(3),
            comment: row.get(4),
            table_name: row.get(5),
        })
        .collect();
    let indexes = db
        .client
        .query(INDEXES, &[&schema, &tables])
        .await
        .map_err(|e| database_error(db, "read the indexes of the target tables", &e))?
        .into_iter()
        .map(|row| Index {
            name: row.get(0),
            table: row.get(1),
            definition: row.get(2),
            constraint: row
                .get::<_, Option<String>>(3)
                .zip(row.get::<_, Option<String>>(4)),
            comment: row.get(5),
            constraint_comment: row.get(6),
            qualified: row.get(7),
            table_name: row.get(8),
        })
        .collect();
    let detached = Detached {
        foreign_keys,
        indexes,
    };
    let drops = detached.drops();
    if !drops.is_empty() {
        db.client
            .batch_execute(&drops.join(";\n"))
            .await
            .map_err(|e| database_error(db, "take out the indexes and foreign keys", &e))?;
    }
    Ok(detached)
}

/// Builds the indexes and keys again (primary keys and unique constraints
/// first: foreign keys need them), then adds every foreign key `NOT VALID`
/// and validates it: one set-based check per key. Comments are put back.
/// `building` holds the name of the table whose index or key is being
/// built, for the caller to name when Ctrl-C cancels the build.
pub(crate) async fn put_back(db: &Db, detached: &Detached, building: &Building) -> Result<()> {
    db.client
        .batch_execute(MAINTENANCE_MEMORY)
        .await
        .map_err(|e| database_error(db, "set maintenance_work_mem", &e))?;
    let mut ordered: Vec<&Index> = detached.indexes.iter().collect();
    ordered.sort_by_key(|i| i.constraint.is_none());
    for index in ordered {
        building.set(&index.table_name);
        let sql = match &index.constraint {
            Some((name, definition)) => format!(
                "ALTER TABLE {} ADD CONSTRAINT {} {definition}",
                index.table,
                quote_ident(name)
            ),
            None => index.definition.clone(),
        };
        run(db, &sql, &index.name).await?;
        if let Some(comment) = &index.comment {
            comment_on(db, &format!("INDEX {}", index_name(index)), comment).await?;
        }
        if let (Some((name, _)), Some(comment)) = (&index.constraint, &index.constraint_comment) {
            let on = format!("CONSTRAINT {} ON {}", quote_ident(name), index.table);
            comment_on(db, &on, comment).await?;
        }
    }
    for key in &detached.foreign_keys {
        building.set(&key.table_name);
        let add = format!(
            "ALTER TABLE {} ADD CONSTRAINT {} {} NOT VALID",
            key.table,
            quote_ident(&key.name),
            key.definition
        );
        run(db, &add, &key.name).await?;
        if key.validated {
            let validate = format!(
                "ALTER TABLE {} VALIDATE CONSTRAINT {}",
                key.table,
                quote_ident(&key.name)
            );
            run(db, &validate, &key.name).await?;
        }
        if let Some(comment) = &key.comment {
            let on = format!("CONSTRAINT {} ON {}", quote_ident(&key.name), key.table);
            comment_on(db, &on, comment).await?;
        }
    }
    Ok(())
}

/// The table [`put_back`] is working on, shared with the caller that
/// waits for Ctrl-C beside it (a lock only the two of them take, briefly).
#[derive(Debug, Default)]
pub(crate) struct Building(std::sync::Mutex<String>);

impl Building {
    fn set(&self, table: &str) {
        // A poisoned lock means a panic elsewhere; the name is only for a
        // message, so the last one set stays.
        if let Ok(mut current) = self.0.lock() {
            table.clone_into(&mut current);
        }
    }

    /// The table whose index or key is being built (empty before the first).
    pub(crate) fn table(&self) -> String {
        self.0.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

/// The server quotes a comment as a literal (a utility statement takes no
/// bind parameters).
const QUOTE_LITERAL: &str = "SELECT quote_literal($1::text)";

/// `COMMENT ON … IS '…'`.
async fn comment_on(db: &Db, object: &str, comment: &str) -> Result<()> {
    let put = async {
        let literal: String = db
            .client
            .query_one(QUOTE_LITERAL, &[&comment])
            .await?
            .get(0);
        db.client
            .batch_execute(&format!("COMMENT ON {object} IS {literal}"))
            .await
    };
    put.await
        .map_err(|e| database_error(db, "put a comment back", &e))
}

/// Runs one put-back statement; a refusal names the index or key and the
/// row the server names.
async fn run(db: &Db, sql: &str, object: &str) -> Result<()> {
    db.client.batch_execute(sql).await.map_err(|e| {
        let Some(server) = e.as_db_error() else {
            return database_error(db, "build the indexes and foreign keys again", &e);
        };
        let code = match server.code().code() {
            "23503" => Code::FkOrphanedRows,
            "23505" => Code::CutoverDuplicateKey,
            _ => Code::CutoverCopyFailed,
        };
        let mut message = format!(
            "putting `{object}` back after the load failed: {} ({})",
            server.message(),
            server.code().code()
        );
        if let Some(detail) = server.detail() {
            message.push_str(&format!("\n  detail: {detail}"));
        }
        Error::Migration {
            reason: ReasonCode::about(code, object),
            message: crate::db::scrub(&message),
            hint: Some(
                "nothing was loaded: the load, its indexes and its keys are one transaction, rolled back; the target's tables are as they were before the load. Fix the data (precheck names what it can find) and run again".into(),
            ),
         source: None, }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_keys_are_dropped_before_the_keys_they_refer_to() {
        let detached = Detached {
            foreign_keys: vec![ForeignKey {
                name: "orders_user\"fk".into(),
                table: "\"s\".\"orders\"".into(),
                table_name: "orders".into(),
                definition: "FOREIGN KEY (user_id) REFERENCES s.users(id)".into(),
                validated: true,
                comment: None,
            }],
            indexes: vec![
                Index {
                    name: "users_pkey".into(),
                    qualified: "\"s\".\"users_pkey\"".into(),
                    table: "\"s\".\"users\"".into(),
                    table_name: "users".into(),
                    definition: "CREATE UNIQUE INDEX users_pkey ON s.users USING btree (id)".into(),
                    constraint: Some(("users_pkey".into(), "PRIMARY KEY (id)".into())),
                    comment: None,
                    constraint_comment: None,
                },
                Index {
                    name: "orders_at".into(),
                    qualified: "\"s\".\"orders_at\"".into(),
                    table: "\"s\".\"orders\"".into(),
                    table_name: "orders".into(),
                    definition: "CREATE INDEX orders_at ON s.orders USING btree (at)".into(),
                    constraint: None,
                    comment: None,
                    constraint_comment: None,
                },
            ],
        };
        assert_eq!(
            detached.drops(),
            vec![
                "ALTER TABLE \"s\".\"orders\" DROP CONSTRAINT \"orders_user\"\"fk\"",
                "ALTER TABLE \"s\".\"users\" DROP CONSTRAINT \"users_pkey\"",
                "DROP INDEX \"s\".\"orders_at\"",
            ]
        );
    }
}

//! Reading the schema from the catalogs into a canonical model.
//!
//! The model is a sorted map from an object key (`table app.users`,
//! `column app.users.email`, `index app.users_email_idx`…) to the object's
//! canonical description. Keys are names, never OIDs, and the map is sorted,
//! so two databases with the same schema give the same snapshot whatever order
//! their objects were created in. Definitions come from PostgreSQL's own
//! deparsers (`pg_get_indexdef`, `pg_get_constraintdef`, `pg_get_viewdef`,
//! `pg_get_functiondef`, `pg_get_triggerdef`, `pg_get_expr`), so they are
//! normalised the way the server sees them. Objects that belong to an
//! extension and migsafe's own history tables are left out.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::db::Db;
use crate::db::history::database_error;
use crate::error::Result;

/// A canonical schema: object key → description.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// Every object, sorted by key.
    pub objects: BTreeMap<String, String>,
}

impl Snapshot {
    /// The canonical text: one `key: description` line per object, sorted.
    pub fn canonical_text(&self) -> String {
        let mut text = String::new();
        for (key, value) in &self.objects {
            text.push_str(key);
            if !value.is_empty() {
                text.push_str(": ");
                text.push_str(&value.replace('\n', "\n    "));
            }
            text.push('\n');
        }
        text
    }

    /// SHA-256 (hex) of the canonical text.
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_text().as_bytes()))
    }
}

/// Schemas never part of a snapshot.
const SYSTEM_SCHEMAS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
     AND n.nspname NOT LIKE 'pg_temp_%' AND n.nspname NOT LIKE 'pg_toast_temp_%'";

/// Objects created by an extension (class oid, object oid column).
fn not_extension_member(classid: &str, objid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{classid}'::regclass AND d.objid = {objid} AND d.deptype = 'e')"
    )
}

/// migsafe's own tables in the history schema ($1).
const NOT_HISTORY: &str = "NOT (n.nspname = $1 AND c.relname IN ('schema_migrations', 'history_audit', 'history_audit_id_seq', \
     'schema_migrations_pkey', 'history_audit_pkey', 'schema_snapshots', 'schema_snapshots_pkey', \
     'online_progress', 'online_progress_pkey', 'repeatable_migrations', 'repeatable_migrations_pkey'))";

/// Reads the snapshot of every non-system schema of the database.
pub(crate) async fn read(db: &Db, history_schema: &str) -> Result<Snapshot> {
    Reader::prepare(db).await?.read(db, history_schema).await
}

/// The snapshot queries prepared on one connection (or two), for reading many
/// snapshots in a row (verify takes two per step): the server plans them once.
pub struct Reader {
    statements: Vec<tokio_postgres::Statement>,
    /// A second connection and the queries it runs, so the server works on
    /// two of them at once.
    helper: Option<(Db, Vec<tokio_postgres::Statement>)>,
}

/// The heaviest queries (indexes, sequences, functions), run on the helper
/// connection when there is one; about half the server time of a snapshot.
const HELPER_QUERIES: [usize; 3] = [5, 7, 8];

async fn prepare_on(db: &Db, sqls: &[&String]) -> Result<Vec<tokio_postgres::Statement>> {
    let prepared = futures_util::future::join_all(sqls.iter().map(|sql| {
        db.client
            .prepare_typed(sql, &[tokio_postgres::types::Type::TEXT])
    }))
    .await;
    let mut statements = Vec::with_capacity(prepared.len());
    for statement in prepared {
        statements
            .push(statement.map_err(|e| database_error(db, "prepare the schema queries", &e))?);
    }
    Ok(statements)
}

impl Reader {
    /// Prepares the catalog queries on `db`.
    pub(crate) async fn prepare(db: &Db) -> Result<Reader> {
        let queries = queries();
        let all: Vec<&String> = queries.iter().collect();
        Ok(Reader {
            statements: prepare_on(db, &all).await?,
            helper: None,
        })
    }

    /// Prepares the queries split over `db` and a second connection to the
    /// same database. Only for a database nobody else changes meanwhile
    /// (verify's scratch database): the two connections read separately.
    pub(crate) async fn prepare_split(db: &Db, helper: Db) -> Result<Reader> {
        let queries = queries();
        let (mine, theirs): (Vec<_>, Vec<_>) = queries
            .iter()
            .enumerate()
            .partition(|(i, _)| !HELPER_QUERIES.contains(i));
        let mine: Vec<&String> = mine.into_iter().map(|(_, q)| q).collect();
        let theirs: Vec<&String> = theirs.into_iter().map(|(_, q)| q).collect();
        let (statements, helper_statements) =
            tokio::join!(prepare_on(db, &mine), prepare_on(&helper, &theirs));
        Ok(Reader {
            statements: statements?,
            helper: Some((helper, helper_statements?)),
        })
    }

    /// Reads a snapshot (on the connection the reader was prepared on).
    pub(crate) async fn read(&self, db: &Db, history_schema: &str) -> Result<Snapshot> {
        let h: &(dyn tokio_postgres::types::ToSql + Sync) = &history_schema;
        let params = [h];
        // Sent together: tokio-postgres pipelines them on each connection.
        let main = futures_util::future::join_all(
            self.statements
                .iter()
                .map(|statement| db.client.query(statement, &params)),
        );
        let helper = async {
            match &self.helper {
                Some((helper, statements)) => {
                    futures_util::future::join_all(
                        statements
                            .iter()
                            .map(|statement| helper.client.query(statement, &params)),
                    )
                    .await
                }
                None => Vec::new(),
            }
        };
        let (main, helper) = tokio::join!(main, helper);
        let mut objects = BTreeMap::new();
        for result in main.into_iter().chain(helper) {
            let rows =
                result.map_err(|e| database_error(db, "read the schema from the catalogs", &e))?;
            for row in rows {
                let key: Option<String> = row.get(0);
                let value: Option<String> = row.get(1);
                if let Some(key) = key {
                    objects.insert(key, value.unwrap_or_default());
                }
            }
        }
        Ok(Snapshot { objects })
    }
}

/// The catalog queries; each takes the history schema as $1.
fn queries() -> Vec<String> {
    let rel_filter = format!(
        "{SYSTEM_SCHEMAS} AND {NOT_HISTORY} AND {}",
        not_extension_member("pg_class", "c.oid")
    );
    let schemas_sql = format!(
        "SELECT 'schema ' || quote_ident(n.nspname), coalesce(array_to_string(ARRAY(SELECT x::text FROM unnest(n.nspacl) x ORDER BY 1), ' '), '') \
         FROM pg_namespace n WHERE {SYSTEM_SCHEMAS} AND n.nspname <> $1 AND {}",
        not_extension_member("pg_namespace", "n.oid")
    );
    let extensions_sql = "SELECT 'extension ' || quote_ident(e.extname), 'schema ' || quote_ident(n.nspname) || ', version ' || e.extversion \
         FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE $1::text IS NOT NULL"
        .to_string();
    let tables_sql = format!(
        "SELECT 'table ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname), \
           concat_ws(', ', \
             CASE c.relkind WHEN 'p' THEN 'partitioned' WHEN 'f' THEN 'foreign' ELSE 'table' END, \
             CASE c.relpersistence WHEN 'u' THEN 'unlogged' WHEN 't' THEN 'temporary' ELSE NULL END, \
             CASE WHEN c.relkind = 'p' THEN 'partition by ' || pg_get_partkeydef(c.oid) END, \
             CASE WHEN c.relispartition THEN 'partition of ' || (SELECT quote_ident(pn.nspname) || '.' || quote_ident(pc.relname) FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE i.inhrelid = c.oid) || ' ' || pg_get_expr(c.relpartbound, c.oid) END, \
             CASE WHEN c.relrowsecurity THEN 'row level security' END, \
             CASE WHEN c.relforcerowsecurity THEN 'forced' END, \
             CASE WHEN c.relacl IS NOT NULL THEN 'grants ' || array_to_string(ARRAY(SELECT x::text FROM unnest(c.relacl) x ORDER BY 1), ' ') END) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'f') AND {rel_filter}"
    );
    let columns_sql = format!(
        "SELECT 'column ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) || '.' || quote_ident(a.attname), \
           concat_ws(' ', '#' || row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum), \
             format_type(a.atttypid, a.atttypmod), \
             CASE WHEN a.attnotnull THEN 'not null' END, \
             CASE a.attidentity WHEN 'a' THEN 'generated always as identity' WHEN 'd' THEN 'generated by default as identity' END, \
             CASE WHEN a.attgenerated = 's' THEN 'generated always as (' || pg_get_expr(ad.adbin, ad.adrelid) || ') stored' \
                  WHEN ad.adbin IS NOT NULL THEN 'default ' || pg_get_expr(ad.adbin, ad.adrelid) END, \
             CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN 'collate ' || quote_ident(co.collname) END, \
             CASE WHEN a.attacl IS NOT NULL THEN 'grants ' || array_to_string(ARRAY(SELECT x::text FROM unnest(a.attacl) x ORDER BY 1), ' ') END) \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_type t ON t.oid = a.atttypid \
         LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
         LEFT JOIN pg_collation co ON co.oid = a.attcollation \
         WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'c') AND {rel_filter}"
    );
    let constraints_sql = format!(
        "SELECT 'constraint ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) || '.' || quote_ident(con.conname), \
           pg_get_constraintdef(con.oid) || CASE WHEN NOT con.convalidated AND pg_get_constraintdef(con.oid) NOT LIKE '%NOT VALID' THEN ' NOT VALID' ELSE '' END \
         FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE con.contype <> 't' AND con.conparentid = 0 AND {rel_filter}"
    );
    let indexes_sql = format!(
        "SELECT 'index ' || quote_ident(n.nspname) || '.' || quote_ident(ic.relname), \
           pg_get_indexdef(i.indexrelid) || CASE WHEN NOT i.indisvalid THEN ' -- INVALID' ELSE '' END \
         FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class c ON c.oid = i.indrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE {rel_filter} AND NOT EXISTS (SELECT 1 FROM pg_inherits inh WHERE inh.inhrelid = i.indexrelid)"
    );
    let views_sql = format!(
        "SELECT CASE c.relkind WHEN 'm' THEN 'materialized view ' ELSE 'view ' END || quote_ident(n.nspname) || '.' || quote_ident(c.relname), \
           pg_get_viewdef(c.oid, true) || CASE WHEN c.relacl IS NOT NULL THEN ' -- grants ' || array_to_string(ARRAY(SELECT x::text FROM unnest(c.relacl) x ORDER BY 1), ' ') ELSE '' END \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('v', 'm') AND {rel_filter}"
    );
    let sequences_sql = format!(
        "SELECT 'sequence ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname), \
           concat_ws(' ', format_type(s.seqtypid, NULL), 'start', s.seqstart, 'increment', s.seqincrement, 'min', s.seqmin, 'max', s.seqmax, 'cache', s.seqcache, \
             CASE WHEN s.seqcycle THEN 'cycle' END, \
             (SELECT 'owned by ' || quote_ident(dn.nspname) || '.' || quote_ident(dc.relname) || '.' || quote_ident(da.attname) \
                FROM pg_depend d JOIN pg_class dc ON dc.oid = d.refobjid JOIN pg_namespace dn ON dn.oid = dc.relnamespace \
                JOIN pg_attribute da ON da.attrelid = d.refobjid AND da.attnum = d.refobjsubid \
                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i') LIMIT 1), \
             CASE WHEN c.relacl IS NOT NULL THEN 'grants ' || array_to_string(ARRAY(SELECT x::text FROM unnest(c.relacl) x ORDER BY 1), ' ') END) \
         FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {rel_filter}"
    );
    let functions_sql = format!(
        "SELECT CASE p.prokind WHEN 'p' THEN 'procedure ' WHEN 'a' THEN 'aggregate ' ELSE 'function ' END \
             || quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')', \
           CASE WHEN p.prokind = 'a' THEN 'returns ' || format_type(p.prorettype, NULL) ELSE pg_get_functiondef(p.oid) END \
             || CASE WHEN p.proacl IS NOT NULL THEN E'\\n-- grants ' || array_to_string(ARRAY(SELECT x::text FROM unnest(p.proacl) x ORDER BY 1), ' ') ELSE '' END \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE {SYSTEM_SCHEMAS} AND $1::text IS NOT NULL AND {}",
        not_extension_member("pg_proc", "p.oid")
    );
    let triggers_sql = format!(
        "SELECT 'trigger ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) || '.' || quote_ident(t.tgname), \
           pg_get_triggerdef(t.oid, true) || CASE t.tgenabled WHEN 'D' THEN ' -- disabled' WHEN 'R' THEN ' -- replica' WHEN 'A' THEN ' -- always' ELSE '' END \
         FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE NOT t.tgisinternal AND t.tgparentid = 0 AND {rel_filter}"
    );
    let types_sql = format!(
        "SELECT CASE t.typtype WHEN 'e' THEN 'enum ' WHEN 'd' THEN 'domain ' WHEN 'r' THEN 'range ' ELSE 'type ' END || quote_ident(n.nspname) || '.' || quote_ident(t.typname), \
           CASE t.typtype \
             WHEN 'e' THEN '(' || array_to_string(ARRAY(SELECT quote_literal(e.enumlabel) FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder), ', ') || ')' \
             WHEN 'd' THEN concat_ws(' ', format_type(t.typbasetype, t.typtypmod), CASE WHEN t.typnotnull THEN 'not null' END, \
                   CASE WHEN t.typdefault IS NOT NULL THEN 'default ' || t.typdefault END, \
                   (SELECT string_agg(quote_ident(dc.conname) || ' ' || pg_get_constraintdef(dc.oid), ', ' ORDER BY dc.conname) FROM pg_constraint dc WHERE dc.contypid = t.oid)) \
             WHEN 'r' THEN 'subtype ' || (SELECT format_type(r.rngsubtype, NULL) FROM pg_range r WHERE r.rngtypid = t.oid) \
             ELSE '(' || (SELECT string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum) \
                          FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped) || ')' END \
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
         LEFT JOIN pg_class c ON c.oid = t.typrelid \
         WHERE {SYSTEM_SCHEMAS} AND $1::text IS NOT NULL \
           AND (t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND c.relkind = 'c')) AND {}",
        not_extension_member("pg_type", "t.oid")
    );
    let policies_sql = format!(
        "SELECT 'policy ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) || '.' || quote_ident(p.polname), \
           concat_ws(' ', CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END, \
             'for', CASE p.polcmd WHEN 'r' THEN 'select' WHEN 'a' THEN 'insert' WHEN 'w' THEN 'update' WHEN 'd' THEN 'delete' ELSE 'all' END, \
             'to', (SELECT string_agg(CASE WHEN r = 0 THEN 'public' ELSE quote_ident(pg_get_userbyid(r)) END, ', ' ORDER BY 1) FROM unnest(p.polroles) r), \
             CASE WHEN p.polqual IS NOT NULL THEN 'using (' || pg_get_expr(p.polqual, p.polrelid) || ')' END, \
             CASE WHEN p.polwithcheck IS NOT NULL THEN 'with check (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')' END) \
         FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {rel_filter}"
    );
    vec![
        schemas_sql,
        extensions_sql,
        tables_sql,
        columns_sql,
        constraints_sql,
        indexes_sql,
        views_sql,
        sequences_sql,
        functions_sql,
        triggers_sql,
        types_sql,
        policies_sql,
    ]
}

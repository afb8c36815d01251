//! Which part of a database a namespace answers for: drift detection and
//! the recorded schema checksum look only at the schemas its migrations
//! create or change (or the `schemas = [...]` of its config), so another
//! project in the same database — its own tables, its own migsafe history
//! schema — is never taken for drift.
//!
//! The schemas are read from the migration files with the PostgreSQL
//! grammar: every schema-qualified name, every `CREATE SCHEMA`, every
//! `SET search_path`, and `public` for unqualified names. A migsafe history
//! schema (any schema holding `schema_migrations`, `history_audit` and
//! `schema_snapshots`) is always left out.

use std::collections::BTreeSet;

use pg_query::NodeRef;

use super::Snapshot;
use crate::config::Namespace;
use crate::source::MigrationSet;

/// The schemas a namespace answers for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope {
    /// Schema names, unquoted.
    pub schemas: BTreeSet<String>,
}

/// Stands for "the schema unqualified names land in" until the scope is
/// [`Scope::on`] a connection (it is not a valid identifier in a script).
const DEFAULT_SCHEMA: &str = "\u{0}current_schema";

/// migsafe's own tables, in whatever history schema: every history schema
/// holds these three.
const HISTORY_TABLES: [&str; 3] = ["schema_migrations", "history_audit", "schema_snapshots"];

/// migsafe's tables a history schema holds once a feature needed them.
const LATER_HISTORY_TABLES: [&str; 2] = ["repeatable_migrations", "online_progress"];

impl Scope {
    /// The scope of `namespace`: its configured `schemas`, else those its
    /// migrations name.
    pub fn of(namespace: &Namespace, set: &MigrationSet) -> Scope {
        if let Some(schemas) = &namespace.schemas {
            return Scope {
                schemas: schemas.iter().cloned().collect(),
            };
        }
        let schemas = set.named_schemas.get_or_init(|| {
            let mut schemas = BTreeSet::new();
            for migration in &set.migrations {
                named_schemas(&migration.up.sql, &mut schemas);
                if let Some(down) = &migration.down {
                    named_schemas(&down.sql, &mut schemas);
                }
                // A Flyway project's schemas: unqualified names land in
                // them (`search_path`, as Flyway sets it).
                schemas.extend(migration.up.directives.flyway_schemas.iter().cloned());
            }
            if schemas.is_empty() {
                schemas.insert(DEFAULT_SCHEMA.to_string());
            }
            schemas
        });
        Scope {
            schemas: schemas.clone(),
        }
    }

    /// The scope with unqualified names placed in `current_schema` (the first
    /// existing schema of the session's search_path: `public` unless the
    /// database or role sets another).
    pub fn resolved(mut self, current_schema: &str) -> Scope {
        if self.schemas.remove(DEFAULT_SCHEMA) {
            self.schemas.insert(current_schema.to_string());
        }
        self
    }

    /// [`Scope::resolved`] with the current schema of `db`.
    pub(crate) async fn on(self, db: &crate::db::Db) -> crate::error::Result<Scope> {
        let row = db
            .client
            .query_one("SELECT coalesce(current_schema(), 'public')", &[])
            .await
            .map_err(|e| crate::db::history::database_error(db, "read the current schema", &e))?;
        let current: String = row.get(0);
        Ok(self.resolved(&current))
    }

    /// The objects of `snapshot` in this scope, without any migsafe history
    /// tables.
    pub fn apply(&self, snapshot: &Snapshot) -> Snapshot {
        let histories = history_schemas(snapshot);
        let mut objects = std::collections::BTreeMap::new();
        for (key, value) in &snapshot.objects {
            let Some((schema, rest)) = object_schema(key, value) else {
                continue;
            };
            if !self.schemas.contains(&schema) {
                continue;
            }
            if histories.contains(&schema) && is_history_object(key, rest.as_deref()) {
                continue;
            }
            objects.insert(key.clone(), value.clone());
        }
        // A history schema in scope holding nothing else is not the namespace's.
        objects.retain(|key, _| {
            let Some(name) = key.strip_prefix("schema ") else {
                return true;
            };
            let name = unquote(name).0;
            !histories.contains(&name) || objects_in(snapshot, &name, &histories)
        });
        Snapshot { objects }
    }

    /// The schema names, for messages.
    pub fn describe(&self) -> String {
        self.schemas
            .iter()
            .map(|s| {
                if s == DEFAULT_SCHEMA {
                    "(the current schema)"
                } else {
                    s.as_str()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whether `schema` holds objects other than migsafe's history tables.
fn objects_in(snapshot: &Snapshot, schema: &str, histories: &BTreeSet<String>) -> bool {
    snapshot.objects.iter().any(|(key, value)| {
        !key.starts_with("schema ")
            && object_schema(key, value).is_some_and(|(s, rest)| {
                s == schema && !(histories.contains(&s) && is_history_object(key, rest.as_deref()))
            })
    })
}

/// Schemas holding all three migsafe history tables.
fn history_schemas(snapshot: &Snapshot) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for key in snapshot.objects.keys() {
        let Some(name) = key.strip_prefix("table ") else {
            continue;
        };
        let (schema, rest) = unquote(name);
        if rest.as_deref().map(|r| unquote(r).0).as_deref() == Some("schema_migrations")
            && HISTORY_TABLES.iter().all(|t| {
                snapshot.objects.keys().any(|k| {
                    k.strip_prefix("table ").is_some_and(|n| {
                        let (s, r) = unquote(n);
                        s == schema && r.map(|r| unquote(&r).0).as_deref() == Some(*t)
                    })
                })
            })
        {
            out.insert(schema);
        }
    }
    out
}

/// Whether an object (key, and the part after its schema) is one of
/// migsafe's history tables or belongs to one.
fn is_history_object(key: &str, rest: Option<&str>) -> bool {
    let Some(rest) = rest else {
        return key.starts_with("schema ");
    };
    let first = unquote(rest).0;
    HISTORY_TABLES
        .iter()
        .chain(&LATER_HISTORY_TABLES)
        .any(|t| first == *t || first == format!("{t}_pkey") || first == format!("{t}_id_seq"))
        || first == "history_audit_id_seq"
}

/// The kinds of object keys (see `snapshot.rs`), longest first.
const KINDS: [&str; 16] = [
    "materialized view ",
    "constraint ",
    "extension ",
    "procedure ",
    "aggregate ",
    "function ",
    "sequence ",
    "trigger ",
    "column ",
    "domain ",
    "policy ",
    "schema ",
    "index ",
    "table ",
    "range ",
    "view ",
];

/// The schema an object is in (unquoted) and the rest of its name after
/// `schema.`; an extension is in the schema its value names.
fn object_schema(key: &str, value: &str) -> Option<(String, Option<String>)> {
    if let Some(name) = key.strip_prefix("extension ") {
        let _ = name;
        let schema = value.strip_prefix("schema ")?;
        let schema = schema.split(", version ").next()?;
        return Some((unquote(schema).0, None));
    }
    let name = KINDS
        .iter()
        .chain(["enum ", "type "].iter())
        .find_map(|kind| key.strip_prefix(kind))?;
    Some(unquote(name))
}

/// Reads one identifier as `quote_ident` writes it from the start of
/// `text`; returns it unquoted and what follows its `.` (if any).
fn unquote(text: &str) -> (String, Option<String>) {
    let mut chars = text.char_indices().peekable();
    let mut name = String::new();
    let end;
    if text.starts_with('"') {
        chars.next();
        loop {
            match chars.next() {
                Some((_, '"')) if chars.peek().is_some_and(|(_, c)| *c == '"') => {
                    chars.next();
                    name.push('"');
                }
                Some((i, '"')) => {
                    end = i + 1;
                    break;
                }
                Some((_, c)) => name.push(c),
                None => return (name, None),
            }
        }
    } else {
        end = text.find('.').unwrap_or(text.len());
        name.push_str(&text[..end]);
    }
    let rest = text[end..].strip_prefix('.').map(str::to_string);
    (name, rest)
}

/// Adds the schemas `sql` names: qualified names, CREATE SCHEMA, SET
/// search_path, and the default schema for unqualified relations.
fn named_schemas(sql: &str, schemas: &mut BTreeSet<String>) {
    let pieces: Vec<String> = match pg_query::parse(sql, 0) {
        Ok(_) => vec![sql.to_string()],
        Err(_) => pg_query::split_with_scanner(sql)
            .map(|p| p.into_iter().map(str::to_string).collect())
            .unwrap_or_default(),
    };
    for piece in pieces {
        let Ok(parsed) = pg_query::parse(&piece, 0) else {
            continue;
        };
        for (node, _, _, _) in parsed.protobuf.nodes() {
            match node {
                NodeRef::RangeVar(r) if !r.relname.is_empty() => {
                    // A CTE name or a relation in the default schema: either
                    // way, `public` is where an unqualified table lives.
                    schemas.insert(if r.schemaname.is_empty() {
                        DEFAULT_SCHEMA.to_string()
                    } else {
                        r.schemaname.clone()
                    });
                }
                NodeRef::CreateSchemaStmt(c) if !c.schemaname.is_empty() => {
                    schemas.insert(c.schemaname.clone());
                }
                NodeRef::VariableSetStmt(set) if set.name.eq_ignore_ascii_case("search_path") => {
                    for arg in &set.args {
                        if let Some(pg_query::NodeEnum::AConst(constant)) = arg.node.as_ref()
                            && let Some(pg_query::protobuf::a_const::Val::Sval(s)) = &constant.val
                        {
                            schemas.insert(s.sval.clone());
                        }
                    }
                }
                NodeRef::CreateFunctionStmt(f) => qualified(&f.funcname, schemas),
                NodeRef::CreateEnumStmt(e) => qualified(&e.type_name, schemas),
                NodeRef::CreateDomainStmt(d) => qualified(&d.domainname, schemas),
                NodeRef::DefineStmt(d) => qualified(&d.defnames, schemas),
                NodeRef::AlterEnumStmt(e) => qualified(&e.type_name, schemas),
                _ => {}
            }
        }
    }
}

fn qualified(names: &[pg_query::protobuf::Node], schemas: &mut BTreeSet<String>) {
    let parts = crate::lint::ast::strings(names);
    if parts.len() >= 2 {
        schemas.insert(parts[parts.len() - 2].clone());
    } else if !parts.is_empty() {
        schemas.insert(DEFAULT_SCHEMA.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope_of(sql: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        named_schemas(sql, &mut out);
        Scope { schemas: out }.resolved("public").schemas
    }

    #[test]
    fn schemas_come_from_qualified_names_create_schema_and_search_path() {
        assert_eq!(
            scope_of("CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);"),
            BTreeSet::from(["billing".to_string()])
        );
        assert_eq!(
            scope_of(
                "CREATE TABLE users (id int); CREATE FUNCTION app.f() RETURNS int LANGUAGE sql AS 'select 1';"
            ),
            BTreeSet::from(["app".to_string(), "public".to_string()])
        );
        assert_eq!(
            scope_of("SET search_path TO shop; CREATE TYPE shop.mood AS ENUM ('a');"),
            BTreeSet::from(["shop".to_string()])
        );
    }

    #[test]
    fn quoted_names_are_read_as_quote_ident_writes_them() {
        assert_eq!(
            unquote("\"My \"\"odd\"\" schema\".t"),
            ("My \"odd\" schema".to_string(), Some("t".to_string()))
        );
        assert_eq!(
            unquote("app.users.id"),
            ("app".to_string(), Some("users.id".to_string()))
        );
        assert_eq!(unquote("app"), ("app".to_string(), None));
    }

    #[test]
    fn a_snapshot_is_cut_to_the_scope_without_history_tables() {
        let mut snapshot = Snapshot::default();
        for key in [
            "schema billing",
            "table billing.invoices",
            "column billing.invoices.id",
            "schema other",
            "table other.x",
            "schema hist_b",
            "table hist_b.schema_migrations",
            "table hist_b.history_audit",
            "table hist_b.schema_snapshots",
            "index hist_b.schema_migrations_pkey",
            "sequence hist_b.history_audit_id_seq",
        ] {
            snapshot.objects.insert(key.to_string(), String::new());
        }
        snapshot.objects.insert(
            "extension citext".into(),
            "schema billing, version 1.6".into(),
        );
        let scope = Scope {
            schemas: BTreeSet::from(["billing".to_string(), "hist_b".to_string()]),
        };
        let cut = scope.apply(&snapshot);
        let keys: Vec<&str> = cut.objects.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "column billing.invoices.id",
                "extension citext",
                "schema billing",
                "table billing.invoices"
            ]
        );
    }
}

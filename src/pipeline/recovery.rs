//! Recovery of interrupted no-transaction migrations (`recovery = "auto"`):
//! roll the dirty migration back with its down script, then apply it again.
//!
//! A down script destroys what the up script made, and by the time the next
//! apply runs, the application may have written rows into it (the table a
//! half-run `CREATE TABLE archive AS …` made is live). So recovery is a step
//! of the guarded pipeline, after preflight and the verified backup, and it
//! first assesses (`assess`) what the down script would destroy: a relation it
//! drops, truncates, deletes from or drops a column of, that holds rows
//! written after the interruption, makes apply refuse
//! (`RECOVERY_WOULD_DESTROY_DATA`) unless the operator passes `--recover`.
//!
//! "After the interruption" is told by transaction age: when migsafe sees a
//! no-transaction migration stop, it touches the dirty history row, so every
//! row whose `xmin` is younger than that row's was written later. When the
//! process died without touching it (SIGKILL, lost network), the row's age
//! is that of the dirty mark, so the migration's own rows count too: the
//! check then errs on the side of refusing.

use pg_query::NodeEnum;
use pg_query::protobuf::{AlterTableType, ObjectType};
use serde::Serialize;

use super::guarded::Opened;
use super::{Env, RunnerParts, record_schema};
use crate::db::Db;
use crate::db::history::History;
use crate::error::{Code, Error, ReasonCode, Result};
use crate::events::{Direction, Event};
use crate::lint::ast;
use crate::plan::NamespaceState;

/// A relation a down script would destroy data in, and what it holds.
#[derive(Debug, Clone, Serialize)]
pub struct AtRisk {
    /// The relation, as the server names it.
    pub relation: String,
    /// What the down script does to it (`DROP TABLE`, `TRUNCATE`…).
    pub action: String,
    /// Rows written after the interruption (counted up to [`COUNT_CAP`]).
    pub rows: i64,
}

/// What recovering one dirty migration would do.
#[derive(Debug, Clone, Serialize)]
pub struct Assessment {
    /// Namespace.
    pub namespace: String,
    /// Version.
    pub version: String,
    /// Migration name.
    pub name: String,
    /// Whether migsafe recorded the moment it stopped (else the count also
    /// includes the rows the interrupted migration wrote itself).
    pub interruption_recorded: bool,
    /// Relations holding rows the down script would destroy.
    pub at_risk: Vec<AtRisk>,
    /// Statements of the down script migsafe cannot see into (a DO block, a
    /// CALL…): what they destroy is unknown.
    pub opaque: Vec<String>,
    /// Every existing relation the down script would destroy rows of.
    #[serde(skip)]
    pub destroys: Vec<(String, String)>,
}

impl Assessment {
    /// The refusal for this assessment (when something is at risk).
    pub fn refusal(&self) -> Option<Error> {
        if self.at_risk.is_empty() && self.opaque.is_empty() {
            return None;
        }
        let mut what: Vec<String> = self
            .at_risk
            .iter()
            .map(|r| {
                let rows = if r.rows >= COUNT_CAP {
                    format!("{COUNT_CAP}+")
                } else {
                    r.rows.to_string()
                };
                format!("{} ({}) holds {rows} row(s)", r.relation, r.action)
            })
            .collect();
        let since = if self.interruption_recorded {
            "written after it was interrupted"
        } else {
            "that may have been written after it was interrupted (migsafe could not record when it stopped, so rows the migration wrote itself count too)"
        };
        let mut message = format!(
            "{ns} {v} {name} is dirty, and recovering it would run its down script",
            ns = self.namespace,
            v = self.version,
            name = self.name,
        );
        if !what.is_empty() {
            message.push_str(&format!(
                ", which destroys data {since}: {}",
                what.join(", ")
            ));
            what.clear();
        }
        if !self.opaque.is_empty() {
            message.push_str(&format!(
                "{}it holds {} that migsafe cannot see into, so what it destroys is unknown",
                if self.at_risk.is_empty() {
                    ", and "
                } else {
                    "; also, "
                },
                self.opaque.join(", ")
            ));
        }
        message.push_str("; nothing was changed");
        Some(Error::Refused {
            reason: self.reason(),
            message,
            hint: Some(format!(
                "look at those rows first. To recover anyway: `migsafe apply --recover` (preflight and a verified backup come first, so the rows are in the backup); to keep the objects and settle it by hand: `migsafe repair --target {ns} --clear-dirty {v} --reason \"…\"` (finished) or `--forget {v}` (undone)",
                ns = self.namespace,
                v = self.version,
            )),
            source: None,
        })
    }

    /// `RECOVERY_WOULD_DESTROY_DATA:{namespace}:{version}`.
    pub fn reason(&self) -> ReasonCode {
        ReasonCode::migration(
            Code::RecoveryWouldDestroyData,
            &self.namespace,
            &self.version,
        )
    }
}

/// Counting stops here: the point is whether data is at risk, not how much.
pub const COUNT_CAP: i64 = 10_000;

/// What recovering each recoverable dirty migration of `state` would
/// destroy (read-only).
pub(crate) async fn assess(
    db: &Db,
    history: &History,
    state: &NamespaceState,
) -> Result<Vec<Assessment>> {
    let mut out = Vec::new();
    for entry in state.recoverable() {
        let (Some(migration), Some(row)) = (entry.migration.as_ref(), entry.applied.as_ref())
        else {
            continue;
        };
        let Some(down) = migration.down.as_ref() else {
            continue;
        };
        let destroyed = destroyed(db, &down.sql).await?;
        let mut at_risk = Vec::new();
        for (relation, action) in &destroyed.relations {
            let rows = history
                .rows_written_after(
                    db,
                    &state.namespace,
                    row.version.as_str(),
                    relation,
                    COUNT_CAP,
                )
                .await?;
            if rows > 0 {
                at_risk.push(AtRisk {
                    relation: relation.clone(),
                    action: action.clone(),
                    rows,
                });
            }
        }
        out.push(Assessment {
            namespace: state.namespace.clone(),
            version: row.version.to_string(),
            name: migration.name.clone(),
            interruption_recorded: row.execution_ms > 0,
            at_risk,
            opaque: destroyed.opaque,
            destroys: destroyed.relations,
        });
    }
    Ok(out)
}

/// A transaction-age mark taken just before the backup: rows whose `xmin`
/// is not older than it may be missing from the dump.
pub(crate) async fn backup_mark(db: &Db) -> Result<String> {
    db.client
        .query_one(
            "SELECT ((pg_snapshot_xmin(pg_current_snapshot())::text::bigint) % 4294967296)::text",
            &[],
        )
        .await
        .map(|row| row.get(0))
        .map_err(|e| crate::db::history::database_error(db, "mark the start of the backup", &e))
}

/// After the backup: refuses when rows were written into what recovery
/// destroys while the backup was taken (they may not be in it), or since
/// the interruption without `--recover` (the first check ran before the
/// backup; writes go on meanwhile).
pub(crate) async fn recheck(
    db: &Db,
    history: &History,
    state: &NamespaceState,
    mark: &str,
    recover: bool,
) -> Result<()> {
    for assessed in assess(db, history, state).await? {
        if !recover && let Some(refusal) = assessed.refusal() {
            return Err(refusal);
        }
        let mut late = Vec::new();
        for (relation, action) in &assessed.destroys {
            let rows = history
                .rows_newer_than(db, relation, mark, COUNT_CAP)
                .await?;
            if rows > 0 {
                late.push(format!("{relation} ({action}): {rows} row(s)"));
            }
        }
        if !late.is_empty() {
            return Err(Error::Refused {
                reason: assessed.reason(),
                message: format!(
                    "rows were written into what recovering {} {} would destroy while the backup was being taken, so the backup may not hold them: {}; recovery did not run and nothing was changed",
                    assessed.version,
                    assessed.name,
                    late.join(", ")
                ),
                hint: Some("stop the writes to those tables (or let them finish), then run apply again: it takes a new backup".into()),
             source: None, });
        }
    }
    Ok(())
}

/// A relation named in a down script, as written.
#[derive(Debug, Clone)]
struct Named {
    /// The schema written, or the `search_path` in force at that statement.
    schemas: Vec<String>,
    /// The relation (or type) name.
    name: String,
    /// What the script does to it.
    action: &'static str,
    /// What else it reaches: rows of referencing tables (TRUNCATE CASCADE,
    /// DELETE through ON DELETE CASCADE / SET NULL), or the columns of a
    /// dropped type.
    reach: Reach,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// The relation itself.
    Itself,
    /// The relation and every table referencing it (TRUNCATE … CASCADE).
    AllReferencing,
    /// The relation and the tables whose foreign keys act on delete.
    DeleteActions,
    /// The tables with a column of this type or domain (DROP TYPE … CASCADE).
    ColumnsOfType,
}

/// What a down script would destroy: the relations (as the server names
/// them) with how, and the statements migsafe cannot see into.
struct Destroyed {
    relations: Vec<(String, String)>,
    opaque: Vec<String>,
}

/// Reads `sql` statement by statement (the scanner's split, so one
/// unreadable statement does not hide the rest).
fn analyse(sql: &str) -> (Vec<Named>, Vec<String>) {
    let mut named = Vec::new();
    let mut opaque = Vec::new();
    let mut search_path: Vec<String> = Vec::new();
    // Renames earlier in the script: new name → (schemas, old name).
    let mut aliases: std::collections::HashMap<String, (Vec<String>, String)> =
        std::collections::HashMap::new();
    let pieces: Vec<String> = match pg_query::split_with_scanner(sql) {
        Ok(pieces) => pieces.into_iter().map(str::to_string).collect(),
        Err(_) => vec![sql.to_string()],
    };
    for piece in pieces {
        let Ok(parsed) = pg_query::parse(&piece, 0) else {
            opaque.push(format!(
                "a statement the grammar cannot read ({})",
                one_line(&piece)
            ));
            continue;
        };
        for raw in &parsed.protobuf.stmts {
            let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) else {
                continue;
            };
            let at = |schema: &str| -> Vec<String> {
                if schema.is_empty() {
                    search_path.clone()
                } else {
                    vec![schema.to_string()]
                }
            };
            let mut found: Vec<(String, String, &'static str, Reach)> = Vec::new();
            let mut new_path: Option<Vec<String>> = None;
            let mut push = |schema: &str, name: &str, action: &'static str, reach: Reach| {
                found.push((schema.to_string(), name.to_string(), action, reach));
            };
            if let Some(why) = unanalysed(node) {
                opaque.push(why);
            }
            match node {
                NodeEnum::RenameStmt(r)
                    if matches!(
                        ObjectType::try_from(r.rename_type),
                        Ok(ObjectType::ObjectTable
                            | ObjectType::ObjectMatview
                            | ObjectType::ObjectForeignTable)
                    ) && r.relation.is_some()
                        && !r.newname.is_empty() =>
                {
                    // A later DROP of the new name destroys the old relation.
                    if let Some(rel) = &r.relation {
                        let old = aliases
                            .get(&rel.relname.to_lowercase())
                            .cloned()
                            .unwrap_or_else(|| (at(&rel.schemaname), rel.relname.clone()));
                        aliases.insert(r.newname.to_lowercase(), old);
                    }
                }
                NodeEnum::InsertStmt(insert) => {
                    let overwrites = insert.on_conflict_clause.as_ref().is_some_and(|c| {
                        c.action == pg_query::protobuf::OnConflictAction::OnconflictUpdate as i32
                    });
                    if overwrites && let Some(r) = insert.relation.as_ref() {
                        push(
                            &r.schemaname,
                            &r.relname,
                            "INSERT … ON CONFLICT DO UPDATE",
                            Reach::Itself,
                        );
                    }
                }
                NodeEnum::DropStmt(drop) => {
                    let kind =
                        ObjectType::try_from(drop.remove_type).unwrap_or(ObjectType::Undefined);
                    let cascade =
                        drop.behavior == pg_query::protobuf::DropBehavior::DropCascade as i32;
                    for object in &drop.objects {
                        let parts = match object.node.as_ref() {
                            Some(NodeEnum::List(list)) => ast::strings(&list.items),
                            Some(NodeEnum::String(s)) => vec![s.sval.clone()],
                            Some(NodeEnum::TypeName(t)) => ast::strings(&t.names),
                            _ => Vec::new(),
                        };
                        let Some((name, schema)) = parts.split_last() else {
                            continue;
                        };
                        let schema = schema.last().map_or("", String::as_str);
                        match kind {
                            ObjectType::ObjectTable => {
                                push(schema, name, "DROP TABLE", Reach::Itself)
                            }
                            ObjectType::ObjectMatview => {
                                push(schema, name, "DROP MATERIALIZED VIEW", Reach::Itself)
                            }
                            ObjectType::ObjectSchema => {
                                push(name, "", "DROP SCHEMA", Reach::Itself)
                            }
                            ObjectType::ObjectType | ObjectType::ObjectDomain if cascade => push(
                                schema,
                                name,
                                "DROP TYPE … CASCADE (drops the columns of that type)",
                                Reach::ColumnsOfType,
                            ),
                            ObjectType::ObjectExtension if cascade => opaque.push(format!(
                                "DROP EXTENSION {name} CASCADE (drops whatever uses it)"
                            )),
                            _ => {}
                        }
                    }
                }
                NodeEnum::TruncateStmt(truncate) => {
                    let cascade =
                        truncate.behavior == pg_query::protobuf::DropBehavior::DropCascade as i32;
                    for relation in &truncate.relations {
                        if let Some(NodeEnum::RangeVar(r)) = relation.node.as_ref() {
                            push(
                                &r.schemaname,
                                &r.relname,
                                "TRUNCATE",
                                if cascade {
                                    Reach::AllReferencing
                                } else {
                                    Reach::Itself
                                },
                            );
                        }
                    }
                }
                NodeEnum::DeleteStmt(delete) => {
                    if let Some(r) = delete.relation.as_ref() {
                        push(&r.schemaname, &r.relname, "DELETE", Reach::DeleteActions);
                    }
                }
                NodeEnum::UpdateStmt(update) => {
                    if let Some(r) = update.relation.as_ref() {
                        push(&r.schemaname, &r.relname, "UPDATE", Reach::Itself);
                    }
                }
                NodeEnum::AlterTableStmt(alter) => {
                    let drops_column = alter.cmds.iter().any(|c| {
                        matches!(c.node.as_ref(), Some(NodeEnum::AlterTableCmd(cmd))
                            if cmd.subtype == AlterTableType::AtDropColumn as i32
                                || cmd.subtype == AlterTableType::AtAlterColumnType as i32)
                    });
                    if drops_column && let Some(r) = alter.relation.as_ref() {
                        push(
                            &r.schemaname,
                            &r.relname,
                            "ALTER TABLE … DROP COLUMN / ALTER COLUMN TYPE",
                            Reach::Itself,
                        );
                    }
                }
                NodeEnum::VariableSetStmt(set) if set.name.eq_ignore_ascii_case("search_path") => {
                    new_path = Some(
                        set.args
                            .iter()
                            .filter_map(|arg| match arg.node.as_ref() {
                                Some(NodeEnum::AConst(c)) => match &c.val {
                                    Some(pg_query::protobuf::a_const::Val::Sval(s)) => {
                                        Some(s.sval.clone())
                                    }
                                    _ => None,
                                },
                                _ => None,
                            })
                            .collect(),
                    );
                }
                NodeEnum::DoStmt(_) => opaque.push("a DO block".into()),
                NodeEnum::CallStmt(_) => opaque.push("a CALL of a procedure".into()),
                NodeEnum::ExecuteStmt(_) => {
                    opaque.push("an EXECUTE of a prepared statement".into())
                }
                _ => {}
            }
            for (schema, name, action, reach) in found {
                let (schemas, name) = match aliases.get(&name.to_lowercase()) {
                    Some((schemas, old))
                        if reach != Reach::ColumnsOfType && action != "DROP SCHEMA" =>
                    {
                        (schemas.clone(), old.clone())
                    }
                    _ => (at(&schema), name),
                };
                named.push(Named {
                    schemas,
                    name,
                    action,
                    reach,
                });
            }
            if let Some(path) = new_path {
                search_path = path;
            }
        }
    }
    (named, opaque)
}

/// Functions a down script may call without migsafe losing sight of what
/// it destroys (built-ins that read, format or sleep).
const KNOWN_FUNCTIONS: [&str; 26] = [
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "now",
    "lower",
    "upper",
    "length",
    "format",
    "concat",
    "md5",
    "pg_sleep",
    "current_setting",
    "set_config",
    "to_regclass",
    "nextval",
    "setval",
    "currval",
    "gen_random_uuid",
    "string_agg",
    "array_agg",
    "date_trunc",
    "generate_series",
    "pg_advisory_lock",
    "pg_advisory_unlock",
];

/// Why migsafe cannot tell what a statement destroys (`None`: it can).
/// Anything it does not know is unknown: the safe answer for a down script.
fn unanalysed(node: &NodeEnum) -> Option<String> {
    let runs_queries = match node {
        NodeEnum::SelectStmt(_)
        | NodeEnum::InsertStmt(_)
        | NodeEnum::UpdateStmt(_)
        | NodeEnum::DeleteStmt(_)
        | NodeEnum::CreateTableAsStmt(_) => true,
        NodeEnum::DropStmt(_)
        | NodeEnum::TruncateStmt(_)
        | NodeEnum::AlterTableStmt(_)
        | NodeEnum::RenameStmt(_)
        | NodeEnum::VariableSetStmt(_)
        | NodeEnum::TransactionStmt(_)
        | NodeEnum::CreateStmt(_)
        | NodeEnum::IndexStmt(_)
        | NodeEnum::ViewStmt(_)
        | NodeEnum::CreateFunctionStmt(_)
        | NodeEnum::CreateTrigStmt(_)
        | NodeEnum::CommentStmt(_)
        | NodeEnum::GrantStmt(_)
        | NodeEnum::GrantRoleStmt(_)
        | NodeEnum::CreateSeqStmt(_)
        | NodeEnum::AlterSeqStmt(_)
        | NodeEnum::CreateEnumStmt(_)
        | NodeEnum::AlterEnumStmt(_)
        | NodeEnum::CreateDomainStmt(_)
        | NodeEnum::AlterDomainStmt(_)
        | NodeEnum::CreateSchemaStmt(_)
        | NodeEnum::CompositeTypeStmt(_)
        | NodeEnum::DefineStmt(_)
        | NodeEnum::CreateExtensionStmt(_)
        | NodeEnum::AlterDefaultPrivilegesStmt(_)
        | NodeEnum::AlterOwnerStmt(_)
        | NodeEnum::AlterObjectSchemaStmt(_)
        | NodeEnum::CreatePolicyStmt(_)
        | NodeEnum::AlterPolicyStmt(_)
        | NodeEnum::CreateRoleStmt(_)
        | NodeEnum::AlterRoleStmt(_)
        | NodeEnum::DropRoleStmt(_)
        | NodeEnum::RefreshMatViewStmt(_)
        | NodeEnum::ReindexStmt(_)
        | NodeEnum::VacuumStmt(_)
        | NodeEnum::LockStmt(_)
        | NodeEnum::RuleStmt(_) => false,
        // Reported on their own.
        NodeEnum::DoStmt(_) | NodeEnum::CallStmt(_) | NodeEnum::ExecuteStmt(_) => return None,
        NodeEnum::MergeStmt(_) => return Some("a MERGE".into()),
        NodeEnum::CopyStmt(_) => return Some("a COPY".into()),
        other => {
            let kind = format!("{other:?}");
            let kind = kind.split('(').next().unwrap_or("statement").to_string();
            return Some(format!("a {kind} migsafe does not analyse"));
        }
    };
    if !runs_queries {
        return None;
    }
    for (child, depth, _, _) in node.nodes() {
        match child {
            pg_query::NodeRef::FuncCall(call) => {
                let name = ast::strings(&call.funcname).join(".");
                let bare = name.rsplit('.').next().unwrap_or(&name).to_lowercase();
                if !KNOWN_FUNCTIONS.contains(&bare.as_str()) {
                    return Some(format!("a call of {name}() (what it changes is unknown)"));
                }
            }
            // Data-modifying statements inside another one (WITH d AS (DELETE …)).
            pg_query::NodeRef::DeleteStmt(_)
            | pg_query::NodeRef::UpdateStmt(_)
            | pg_query::NodeRef::MergeStmt(_)
                if depth > 1 =>
            {
                return Some("a data-modifying WITH".into());
            }
            _ => {}
        }
    }
    None
}

fn one_line(sql: &str) -> String {
    crate::db::activity::one_line(sql, 60)
}

/// The existing relations whose rows `sql` would destroy, with how, as the
/// server names them (`public.archive`), and what migsafe cannot see into.
async fn destroyed(db: &Db, sql: &str) -> Result<Destroyed> {
    let (named, opaque) = analyse(sql);
    let mut relations: Vec<(String, String)> = Vec::new();
    for item in &named {
        for relation in resolve(db, item).await? {
            if !relations.iter().any(|(r, _)| *r == relation) {
                relations.push((relation, item.action.to_string()));
            }
        }
    }
    Ok(Destroyed { relations, opaque })
}

/// The first of the candidate schemas (the one written, else the script's
/// `search_path`, else the session's) where `name` exists, as a regclass.
const FIND_RELATION: &str = "SELECT c.oid FROM unnest($1::text[]) WITH ORDINALITY AS s(schema, n) \
     JOIN pg_namespace ns ON ns.nspname = s.schema \
     JOIN pg_class c ON c.relnamespace = ns.oid AND c.relname = $2 \
     WHERE c.relkind IN ('r', 'm', 'p') ORDER BY s.n LIMIT 1";

const FIND_TYPE: &str = "SELECT t.oid FROM unnest($1::text[]) WITH ORDINALITY AS s(schema, n) \
     JOIN pg_namespace ns ON ns.nspname = s.schema \
     JOIN pg_type t ON t.typnamespace = ns.oid AND t.typname = $2 ORDER BY s.n LIMIT 1";

const SESSION_PATH: &str =
    "SELECT coalesce(array_agg(s), '{}') FROM unnest(current_schemas(false)) s";

const TABLES_IN_SCHEMA: &str = "SELECT c.oid::regclass::text FROM pg_class c \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = $1 AND c.relkind IN ('r', 'm', 'p') ORDER BY 1";

/// Tables reached from `$1` through foreign keys: every referencing table
/// (`$2` true: TRUNCATE CASCADE) or those whose key acts on delete.
const REFERENCING: &str = "WITH RECURSIVE r(oid) AS ( \
       SELECT $1::oid \
       UNION SELECT k.conrelid FROM pg_constraint k JOIN r ON k.confrelid = r.oid \
       WHERE k.contype = 'f' AND ($2 OR k.confdeltype IN ('c', 'n', 'd'))) \
     SELECT oid::regclass::text FROM r";

const COLUMNS_OF_TYPE: &str = "SELECT DISTINCT a.attrelid::regclass::text FROM pg_attribute a \
     JOIN pg_class c ON c.oid = a.attrelid \
     LEFT JOIN pg_type d ON d.oid = a.atttypid \
     WHERE (a.atttypid = $1 OR d.typbasetype = $1 OR d.typelem = $1) \
       AND c.relkind IN ('r', 'p', 'm') AND NOT a.attisdropped ORDER BY 1";

async fn resolve(db: &Db, item: &Named) -> Result<Vec<String>> {
    let error = |e: tokio_postgres::Error| {
        crate::db::history::database_error(db, "look up what a down script destroys", &e)
    };
    if item.action == "DROP SCHEMA" {
        let schema = item.schemas.first().cloned().unwrap_or_default();
        let rows = db
            .client
            .query(TABLES_IN_SCHEMA, &[&schema])
            .await
            .map_err(error)?;
        return Ok(rows.iter().map(|r| r.get(0)).collect());
    }
    let schemas = if item.schemas.is_empty() {
        let row = db
            .client
            .query_one(SESSION_PATH, &[])
            .await
            .map_err(error)?;
        row.get::<_, Vec<String>>(0)
    } else {
        item.schemas.clone()
    };
    let find = if item.reach == Reach::ColumnsOfType {
        FIND_TYPE
    } else {
        FIND_RELATION
    };
    let Some(row) = db
        .client
        .query_opt(find, &[&schemas, &item.name])
        .await
        .map_err(error)?
    else {
        return Ok(Vec::new());
    };
    let oid: u32 = row.get(0);
    let rows = match item.reach {
        Reach::Itself => db
            .client
            .query("SELECT $1::oid::regclass::text", &[&oid])
            .await
            .map_err(error)?,
        Reach::AllReferencing | Reach::DeleteActions => db
            .client
            .query(REFERENCING, &[&oid, &(item.reach == Reach::AllReferencing)])
            .await
            .map_err(error)?,
        Reach::ColumnsOfType => db
            .client
            .query(COLUMNS_OF_TYPE, &[&oid])
            .await
            .map_err(error)?,
    };
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Rolls each recoverable dirty migration of `item` back with its down
/// script (after dropping the INVALID indexes its failed concurrent builds
/// left), so that it is pending again and applied in this run. Called after
/// the backup, with the assessments already checked.
pub(crate) async fn recover(
    env: &Env<'_>,
    history: &History,
    item: &Opened<'_>,
    backed_up: bool,
) -> Result<Vec<String>> {
    let state = item.target.state(&item.db, history).await?;
    let dirty: Vec<_> = state.recoverable().collect();
    if dirty.is_empty() {
        return Ok(Vec::new());
    }
    let parts = RunnerParts::load(env, &item.db, history).await?;
    let runner = parts.runner(env, &item.target, &item.db, history);
    let mut recovered = Vec::new();
    for entry in dirty.into_iter().rev() {
        let Some(migration) = entry.migration.as_ref() else {
            continue;
        };
        let recorded = entry.applied.as_ref().map_or_else(
            || migration.version.to_string(),
            |row| row.version.to_string(),
        );
        let dropped = runner.drop_invalid_indexes(&migration.up).await;
        if let Err(err) = runner.run(migration, Direction::Down, &recorded).await {
            let still = if matches!(err.reason().code(), Code::MigrationDirty) {
                "its down script stopped part-way, so the migration is still DIRTY"
            } else {
                "its down script was rolled back, so the migration is still DIRTY as before"
            };
            return Err(Error::Migration {
                reason: ReasonCode::migration(
                    Code::MigrationDirty,
                    item.target.name(),
                    &migration.version,
                ),
                message: format!(
                    "{} {} is dirty and its automatic recovery failed ({still}){}:\n{err}",
                    migration.version,
                    migration.name,
                    if backed_up {
                        "; the backup taken just before it holds the database as it was"
                    } else {
                        "; no backup was taken in this run (--skip-backup)"
                    }
                ),
                hint: Some(format!(
                    "check the schema by hand, then `migsafe repair --target {ns} --clear-dirty {v} --reason \"…\"` (finished) or `--forget {v}` (undone); or set recovery = \"manual\"",
                    ns = item.target.name(),
                    v = migration.version
                )),
                source: None,
            });
        }
        let mut detail = String::from("interrupted earlier; rolled back with its down script");
        if !dropped.is_empty() {
            detail.push_str(&format!(
                " after dropping the INVALID index(es) {}",
                dropped.join(", ")
            ));
        }
        detail.push_str("; it is applied again now");
        env.events.emit(&Event::Recovered {
            namespace: item.target.name().to_string(),
            version: migration.version.to_string(),
            detail,
        });
        recovered.push(migration.version.to_string());
    }
    // The recovery is migsafe's own change: record it, or the next preflight
    // would take it for drift.
    record_schema(env, &item.db, history, &[&item.target]).await?;
    Ok(recovered)
}

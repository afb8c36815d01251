//! Recovery of interrupted no-transaction migrations (`recovery = "auto"`):
//! roll the dirty migration back with its down script, then apply it again.
//!
//! A down script destroys what the up script made, and by the time the next
//! apply runs, the application may have written rows into it (the table a
//! half-run `CREATE TABLE archive AS …` made is live). So recovery is a step
//! of the guarded pipeline, after preflight and the verified backup, and it
//! first [`assess`]es what the down script would destroy: a relation it
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
}

impl Assessment {
    /// The refusal for this assessment (when something is at risk).
    pub fn refusal(&self) -> Option<Error> {
        if self.at_risk.is_empty() {
            return None;
        }
        let what: Vec<String> = self
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
        Some(Error::Refused {
            reason: self.reason(),
            message: format!(
                "{ns} {v} {name} is dirty, and recovering it would run its down script, which destroys data {since}: {}; nothing was changed",
                what.join(", "),
                ns = self.namespace,
                v = self.version,
                name = self.name,
            ),
            hint: Some(format!(
                "look at those rows first. To recover anyway: `migsafe apply --recover` (preflight and a verified backup come first, so the rows are in the backup); to keep the objects and settle it by hand: `migsafe repair --target {ns} --clear-dirty {v} --reason \"…\"` (finished) or `--forget {v}` (undone)",
                ns = self.namespace,
                v = self.version,
            )),
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
pub async fn assess(db: &Db, history: &History, state: &NamespaceState) -> Result<Vec<Assessment>> {
    let mut out = Vec::new();
    for entry in state.recoverable() {
        let (Some(migration), Some(row)) = (entry.migration.as_ref(), entry.applied.as_ref())
        else {
            continue;
        };
        let Some(down) = migration.down.as_ref() else {
            continue;
        };
        let mut at_risk = Vec::new();
        for (relation, action) in destroyed(db, &down.sql).await? {
            let rows = history
                .rows_written_after(
                    db,
                    &state.namespace,
                    row.version.as_str(),
                    &relation,
                    COUNT_CAP,
                )
                .await?;
            if rows > 0 {
                at_risk.push(AtRisk {
                    relation,
                    action,
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
        });
    }
    Ok(out)
}

/// The existing relations whose rows `sql` would destroy, with how, as the
/// server names them (`public.archive`).
async fn destroyed(db: &Db, sql: &str) -> Result<Vec<(String, String)>> {
    let mut named: Vec<(String, String)> = Vec::new();
    let mut schemas: Vec<String> = Vec::new();
    // A down script the grammar cannot read is not assessed statement by
    // statement: every relation it names counts.
    let Ok(parsed) = pg_query::parse(sql, 0) else {
        if let Ok(pieces) = pg_query::split_with_scanner(sql) {
            for piece in pieces {
                if let Ok(p) = pg_query::parse(piece, 0) {
                    named.extend(
                        p.tables()
                            .into_iter()
                            .map(|t| (t, "unparsed down script".into())),
                    );
                }
            }
        }
        return resolve(db, named, schemas).await;
    };
    for raw in &parsed.protobuf.stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) else {
            continue;
        };
        match node {
            NodeEnum::DropStmt(drop) => {
                let kind = ObjectType::try_from(drop.remove_type).unwrap_or(ObjectType::Undefined);
                let names = drop.objects.iter().filter_map(|o| match o.node.as_ref() {
                    Some(NodeEnum::List(list)) => Some(ast::strings(&list.items).join(".")),
                    Some(NodeEnum::String(s)) => Some(s.sval.clone()),
                    _ => None,
                });
                match kind {
                    ObjectType::ObjectTable => {
                        named.extend(names.map(|n| (n, "DROP TABLE".to_string())));
                    }
                    ObjectType::ObjectMatview => {
                        named.extend(names.map(|n| (n, "DROP MATERIALIZED VIEW".to_string())));
                    }
                    ObjectType::ObjectSchema => schemas.extend(names),
                    _ => {}
                }
            }
            NodeEnum::TruncateStmt(truncate) => {
                for relation in &truncate.relations {
                    if let Some(NodeEnum::RangeVar(r)) = relation.node.as_ref() {
                        named.push((ast::table_name(Some(r)), "TRUNCATE".into()));
                    }
                }
            }
            NodeEnum::DeleteStmt(delete) => {
                named.push((ast::table_name(delete.relation.as_ref()), "DELETE".into()));
            }
            NodeEnum::AlterTableStmt(alter) => {
                let drops_column = alter.cmds.iter().any(|c| {
                    matches!(c.node.as_ref(), Some(NodeEnum::AlterTableCmd(cmd))
                        if cmd.subtype == AlterTableType::AtDropColumn as i32)
                });
                if drops_column {
                    named.push((
                        ast::table_name(alter.relation.as_ref()),
                        "ALTER TABLE … DROP COLUMN".into(),
                    ));
                }
            }
            _ => {}
        }
    }
    resolve(db, named, schemas).await
}

const EXISTING_RELATIONS: &str = "SELECT r.name, c.oid::regclass::text \
     FROM unnest($1::text[]) WITH ORDINALITY AS r(name, n) \
     JOIN pg_class c ON c.oid = to_regclass(r.name) \
     WHERE c.relkind IN ('r', 'm', 'p') ORDER BY r.n";

const TABLES_IN_SCHEMAS: &str = "SELECT c.oid::regclass::text FROM pg_class c \
     JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = ANY ($1) AND c.relkind IN ('r', 'm', 'p') ORDER BY 1";

async fn resolve(
    db: &Db,
    named: Vec<(String, String)>,
    schemas: Vec<String>,
) -> Result<Vec<(String, String)>> {
    let error = |e: tokio_postgres::Error| {
        crate::db::history::database_error(db, "look up what a down script drops", &e)
    };
    let names: Vec<String> = named.iter().map(|(n, _)| n.clone()).collect();
    let mut out: Vec<(String, String)> = Vec::new();
    // to_regclass raises on a malformed name; those are skipped one by one.
    let rows = match db.client.query(EXISTING_RELATIONS, &[&names]).await {
        Ok(rows) => rows,
        Err(_) => {
            let mut rows = Vec::new();
            for name in &names {
                if let Ok(mut found) = db
                    .client
                    .query(EXISTING_RELATIONS, &[&vec![name.clone()]])
                    .await
                {
                    rows.append(&mut found);
                }
            }
            rows
        }
    };
    for row in rows {
        let written: String = row.get(0);
        let relation: String = row.get(1);
        if let Some((_, action)) = named.iter().find(|(n, _)| *n == written)
            && !out.iter().any(|(r, _)| *r == relation)
        {
            out.push((relation, action.clone()));
        }
    }
    if !schemas.is_empty() {
        for row in db
            .client
            .query(TABLES_IN_SCHEMAS, &[&schemas])
            .await
            .map_err(error)?
        {
            let relation: String = row.get(0);
            if !out.iter().any(|(r, _)| *r == relation) {
                out.push((relation, "DROP SCHEMA".into()));
            }
        }
    }
    Ok(out)
}

/// Rolls each recoverable dirty migration of `item` back with its down
/// script (after dropping the INVALID indexes its failed concurrent builds
/// left), so that it is pending again and applied in this run. Called after
/// the backup, with the assessments already checked.
pub async fn recover(env: &Env<'_>, history: &History, item: &Opened<'_>) -> Result<Vec<String>> {
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
                    "{} {} is dirty and its automatic recovery failed ({still}); the backup taken before it holds the database as it was:\n{err}",
                    migration.version, migration.name
                ),
                hint: Some(format!(
                    "check the schema by hand, then `migsafe repair --target {ns} --clear-dirty {v} --reason \"…\"` (finished) or `--forget {v}` (undone); or set recovery = \"manual\"",
                    ns = item.target.name(),
                    v = migration.version
                )),
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

//! Every lint rule, one file each (named after its id), and the registry.

use pg_query::NodeEnum;

use super::context::Context;
use super::engine::Severity;

pub mod add_column_not_null_without_default;
pub mod add_unique_without_index;
pub mod alter_column_type;
pub mod blocking_maintenance;
pub mod concurrent_index_in_transaction;
pub mod constraint_without_not_valid;
pub mod drop_column_or_table;
pub mod enum_add_value_in_transaction;
pub mod lock_timeout_disabled;
pub mod prefer_bigint;
pub mod prefer_identity;
pub mod prefer_text;
pub mod prefer_timestamptz;
pub mod rename_column_or_table;
pub mod require_concurrent_index;
pub mod set_not_null_without_check;
pub mod syntax_error;
pub mod truncate_or_delete_without_where;
pub mod volatile_default;

/// What a rule found in one statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The message, naming the table (and its size when known).
    pub message: String,
    /// A severity other than the rule's default (live sizes decide).
    pub severity: Option<Severity>,
}

impl Hit {
    /// A hit with the rule's default severity.
    pub fn new(message: impl Into<String>) -> Hit {
        Hit {
            message: message.into(),
            severity: None,
        }
    }

    /// A hit with a given severity.
    pub fn with(message: impl Into<String>, severity: Severity) -> Hit {
        Hit {
            message: message.into(),
            severity: Some(severity),
        }
    }
}

/// A lint rule.
pub trait Rule: Sync {
    /// Stable id, used in output and in `-- migsafe:allow <id>`.
    fn id(&self) -> &'static str;
    /// Default severity.
    fn severity(&self) -> Severity;
    /// One line: what is flagged.
    fn summary(&self) -> &'static str;
    /// One line: the safe alternative.
    fn help(&self) -> &'static str;
    /// What happens in PostgreSQL (the lock, what it blocks) and the safe
    /// alternative written out as SQL (markdown).
    fn doc(&self) -> &'static str;
    /// Checks one statement.
    fn check(&self, statement: &NodeEnum, context: &Context) -> Vec<Hit>;
}

/// Every rule, in documentation order.
pub fn all() -> &'static [&'static dyn Rule] {
    &[
        &syntax_error::SyntaxError,
        &require_concurrent_index::RequireConcurrentIndex,
        &concurrent_index_in_transaction::ConcurrentIndexInTransaction,
        &add_column_not_null_without_default::AddColumnNotNullWithoutDefault,
        &volatile_default::VolatileDefault,
        &alter_column_type::AlterColumnType,
        &set_not_null_without_check::SetNotNullWithoutCheck,
        &constraint_without_not_valid::ConstraintWithoutNotValid,
        &add_unique_without_index::AddUniqueWithoutIndex,
        &rename_column_or_table::RenameColumnOrTable,
        &drop_column_or_table::DropColumnOrTable,
        &enum_add_value_in_transaction::EnumAddValueInTransaction,
        &blocking_maintenance::BlockingMaintenance,
        &truncate_or_delete_without_where::TruncateOrDeleteWithoutWhere,
        &lock_timeout_disabled::LockTimeoutDisabled,
        &prefer_bigint::PreferBigint,
        &prefer_identity::PreferIdentity,
        &prefer_timestamptz::PreferTimestamptz,
        &prefer_text::PreferText,
    ]
}

/// The commands of an `ALTER TABLE` with its table, when `statement` is one.
pub fn alter_table(
    statement: &NodeEnum,
) -> Option<(String, Vec<&pg_query::protobuf::AlterTableCmd>)> {
    let NodeEnum::AlterTableStmt(alter) = statement else {
        return None;
    };
    let table = super::ast::table_name(alter.relation.as_ref());
    let cmds = alter
        .cmds
        .iter()
        .filter_map(|c| match c.node.as_ref() {
            Some(NodeEnum::AlterTableCmd(cmd)) => Some(cmd.as_ref()),
            _ => None,
        })
        .collect();
    Some((table, cmds))
}

/// The subcommands of one kind (`AtSetNotNull`…) of an `ALTER TABLE` on a
/// table that exists before the plan; `None` for other statements and for
/// tables the plan itself creates (empty: nothing to rewrite, scan or block).
pub fn existing_table_changes<'a>(
    statement: &'a NodeEnum,
    context: &Context,
    kind: pg_query::protobuf::AlterTableType,
) -> Option<(String, Vec<&'a pg_query::protobuf::AlterTableCmd>)> {
    let (table, cmds) = alter_table(statement)?;
    if context.is_new(&table) {
        return None;
    }
    let cmds = cmds
        .into_iter()
        .filter(|c| c.subtype == kind as i32)
        .collect();
    Some((table, cmds))
}

/// [`added_constraints`] on a table that exists before the plan.
pub fn constraints_added_to_existing<'a>(
    statement: &'a NodeEnum,
    context: &Context,
) -> Option<(String, Vec<&'a pg_query::protobuf::Constraint>)> {
    added_constraints(statement).filter(|(table, _)| !context.is_new(table))
}

/// The constraints an `ALTER TABLE … ADD CONSTRAINT` adds, with the table.
pub fn added_constraints(
    statement: &NodeEnum,
) -> Option<(String, Vec<&pg_query::protobuf::Constraint>)> {
    let (table, cmds) = alter_table(statement)?;
    let constraints = cmds
        .into_iter()
        .filter(|c| c.subtype == pg_query::protobuf::AlterTableType::AtAddConstraint as i32)
        .filter_map(|c| match c.def.as_ref().and_then(|d| d.node.as_ref()) {
            Some(NodeEnum::Constraint(con)) => Some(con.as_ref()),
            _ => None,
        })
        .collect();
    Some((table, constraints))
}

/// The column definitions a statement adds (CREATE TABLE, ADD COLUMN), with
/// their table.
pub fn new_columns(statement: &NodeEnum) -> Vec<(String, &pg_query::protobuf::ColumnDef)> {
    match statement {
        NodeEnum::CreateStmt(create) => {
            let table = super::ast::table_name(create.relation.as_ref());
            create
                .table_elts
                .iter()
                .filter_map(|e| match e.node.as_ref() {
                    Some(NodeEnum::ColumnDef(col)) => Some((table.clone(), col.as_ref())),
                    _ => None,
                })
                .collect()
        }
        _ => match alter_table(statement) {
            Some((table, cmds)) => cmds
                .into_iter()
                .filter(|c| c.subtype == pg_query::protobuf::AlterTableType::AtAddColumn as i32)
                .filter_map(|c| match c.def.as_ref().and_then(|d| d.node.as_ref()) {
                    Some(NodeEnum::ColumnDef(col)) => Some((table.clone(), col.as_ref())),
                    _ => None,
                })
                .collect(),
            None => Vec::new(),
        },
    }
}

/// Hits for the new columns whose type is one of `types`; `why` says what
/// is wrong with the type.
pub fn columns_of_type(
    statement: &NodeEnum,
    types: &[&str],
    why: impl Fn(&str) -> String,
) -> Vec<Hit> {
    new_columns(statement)
        .into_iter()
        .filter_map(|(table, column)| {
            let ty = super::ast::type_name(column.type_name.as_ref());
            types
                .contains(&ty.as_str())
                .then(|| Hit::new(format!("column `{table}.{}` {}", column.colname, why(&ty))))
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::{Hit, Rule};
    use crate::lint::context::Context;

    /// Runs one rule over every statement of `sql`.
    pub fn check(rule: &dyn Rule, sql: &str, context: &Context) -> Vec<Hit> {
        let parsed = pg_query::parse(sql, 0).expect("test SQL parses");
        parsed
            .protobuf
            .stmts
            .iter()
            .filter_map(|raw| raw.stmt.as_ref().and_then(|n| n.node.as_ref()))
            .flat_map(|node| rule.check(node, context))
            .collect()
    }

    /// A context where `created` tables are new in the plan.
    pub fn with_new(created: &[&str]) -> Context {
        Context {
            created: created.iter().map(|t| t.to_string()).collect(),
            transactional: true,
            large_table_bytes: 10_000_000,
            ..Context::default()
        }
    }
}

//! One statement → its online steps (SPEC 15), built on pg_query's parse
//! tree and deparsed: the user's SQL text is never edited.
//!
//! | written | online |
//! |---|---|
//! | `CREATE [UNIQUE] INDEX` | the same with `CONCURRENTLY`, outside a transaction |
//! | `ADD FOREIGN KEY` / `ADD CHECK` | `… NOT VALID`, then `VALIDATE CONSTRAINT` |
//! | `ALTER COLUMN … SET NOT NULL` | `CHECK (col IS NOT NULL) NOT VALID`, validate, `SET NOT NULL` + drop the check |
//! | `ADD UNIQUE` / `ADD PRIMARY KEY` | unique index `CONCURRENTLY`, then `ADD CONSTRAINT … USING INDEX` |
//!
//! A statement that would be rewritten but cannot be (an index, UNIQUE or
//! PRIMARY KEY without a name: an interrupted build could not be found
//! again) is [`Online::Cannot`] with the reason, and runs as written. A
//! FOREIGN KEY or CHECK without a name is rewritten: PostgreSQL names it in
//! the step that adds it, and the validation step is built from that name
//! when it runs ([`super::Unnamed`]).

use pg_query::protobuf::{
    AlterTableCmd, AlterTableStmt, AlterTableType, ColumnRef, ConstrType, Constraint, DropBehavior,
    IndexElem, IndexStmt, Node, NullTest, NullTestType, ObjectType, RangeVar, SortByDir,
    SortByNulls,
};
use pg_query::{NodeEnum, protobuf};

use super::{BuiltIndex, Step, Unnamed};

/// What `plan` shows in place of the name PostgreSQL gives a constraint
/// written without one.
pub const UNNAMED: &str = "<the name PostgreSQL gives it in the step before>";

/// `ALTER TABLE <relation> VALIDATE CONSTRAINT <name>`, for a constraint
/// PostgreSQL named when an earlier step added it.
pub fn validate_sql(relation: &RangeVar, name: &str) -> Result<String, String> {
    let alter = AlterTableStmt {
        relation: Some(relation.clone()),
        objtype: ObjectType::ObjectTable as i32,
        ..AlterTableStmt::default()
    };
    alter_one(&alter, validate(name))
}

/// What `--online` does with one statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Online {
    /// Nothing risky to rewrite: it runs as written.
    Plain,
    /// Its online steps, in order.
    Steps(Vec<Step>),
    /// It would need the online form but cannot have it; the reason.
    Cannot(String),
}

/// The online form of one parsed statement. `is_new` says whether a table
/// is created earlier in the same script (nothing to protect there).
pub fn rewrite(node: &NodeEnum, is_new: &dyn Fn(&str) -> bool) -> Online {
    match node {
        NodeEnum::IndexStmt(index) => {
            let table = crate::lint::ast::table_name(index.relation.as_ref());
            if index.concurrent || is_new(&table) {
                return Online::Plain;
            }
            index_steps(index)
        }
        NodeEnum::AlterTableStmt(alter) => {
            let table = crate::lint::ast::table_name(alter.relation.as_ref());
            if alter.objtype != ObjectType::ObjectTable as i32 || is_new(&table) {
                return Online::Plain;
            }
            alter_steps(alter)
        }
        _ => Online::Plain,
    }
}

fn deparse(node: NodeEnum) -> Result<String, String> {
    node.deparse(pg_query::DeparseOptions::default())
        .map_err(|e| format!("pg_query cannot write the online form back as SQL: {e}"))
}

fn built(relation: Option<&RangeVar>, name: &str) -> BuiltIndex {
    BuiltIndex {
        schema: relation
            .map(|r| r.schemaname.clone())
            .filter(|s| !s.is_empty()),
        name: name.to_string(),
    }
}

fn index_steps(index: &IndexStmt) -> Online {
    if index.idxname.is_empty() {
        return Online::Cannot(
            "the index has no name: an interrupted concurrent build leaves an INVALID index that must be found and dropped by name; name it".into(),
        );
    }
    let mut online = index.clone();
    online.concurrent = true;
    match deparse(NodeEnum::IndexStmt(Box::new(online))) {
        Ok(sql) => Online::Steps(vec![Step {
            sql,
            transaction: false,
            unnamed: None,
            index: Some(built(index.relation.as_ref(), &index.idxname)),
            locks: "SHARE UPDATE EXCLUSIVE for the build: reads and writes go on",
        }]),
        Err(reason) => Online::Cannot(reason),
    }
}

fn cmd_node(cmd: AlterTableCmd) -> Node {
    Node {
        node: Some(NodeEnum::AlterTableCmd(Box::new(cmd))),
    }
}

/// `ALTER TABLE <relation> <cmd>` as SQL.
fn alter_one(alter: &AlterTableStmt, cmd: AlterTableCmd) -> Result<String, String> {
    deparse(NodeEnum::AlterTableStmt(AlterTableStmt {
        relation: alter.relation.clone(),
        cmds: vec![cmd_node(cmd)],
        objtype: alter.objtype,
        missing_ok: alter.missing_ok,
    }))
}

fn add_constraint(constraint: Constraint) -> AlterTableCmd {
    AlterTableCmd {
        subtype: AlterTableType::AtAddConstraint as i32,
        def: Some(Box::new(Node {
            node: Some(NodeEnum::Constraint(Box::new(constraint))),
        })),
        behavior: DropBehavior::DropRestrict as i32,
        ..AlterTableCmd::default()
    }
}

fn validate(name: &str) -> AlterTableCmd {
    AlterTableCmd {
        subtype: AlterTableType::AtValidateConstraint as i32,
        name: name.to_string(),
        behavior: DropBehavior::DropRestrict as i32,
        ..AlterTableCmd::default()
    }
}

fn string_node(value: &str) -> Node {
    Node {
        node: Some(NodeEnum::String(protobuf::String {
            sval: value.to_string(),
        })),
    }
}

/// The steps of one `ALTER TABLE`: commands with an online form become their
/// steps, runs of other commands stay together in one statement, in order.
fn alter_steps(alter: &AlterTableStmt) -> Online {
    let cmds: Vec<&AlterTableCmd> = alter
        .cmds
        .iter()
        .filter_map(|c| match c.node.as_ref() {
            Some(NodeEnum::AlterTableCmd(cmd)) => Some(cmd.as_ref()),
            _ => None,
        })
        .collect();
    let mut steps = Vec::new();
    let mut plain: Vec<AlterTableCmd> = Vec::new();
    let mut rewritten = false;
    let flush = |plain: &mut Vec<AlterTableCmd>, steps: &mut Vec<Step>| -> Result<(), String> {
        if plain.is_empty() {
            return Ok(());
        }
        let sql = deparse(NodeEnum::AlterTableStmt(AlterTableStmt {
            relation: alter.relation.clone(),
            cmds: plain.drain(..).map(cmd_node).collect(),
            objtype: alter.objtype,
            missing_ok: alter.missing_ok,
        }))?;
        steps.push(Step {
            sql,
            transaction: true,
            unnamed: None,
            index: None,
            locks: "as written",
        });
        Ok(())
    };
    for cmd in cmds {
        match cmd_steps(alter, cmd) {
            Online::Plain => plain.push(cmd.clone()),
            Online::Cannot(reason) => return Online::Cannot(reason),
            Online::Steps(own) => {
                if let Err(reason) = flush(&mut plain, &mut steps) {
                    return Online::Cannot(reason);
                }
                steps.extend(own);
                rewritten = true;
            }
        }
    }
    if !rewritten {
        return Online::Plain;
    }
    if let Err(reason) = flush(&mut plain, &mut steps) {
        return Online::Cannot(reason);
    }
    Online::Steps(steps)
}

fn cmd_steps(alter: &AlterTableStmt, cmd: &AlterTableCmd) -> Online {
    let result = if cmd.subtype == AlterTableType::AtSetNotNull as i32 {
        not_null_steps(alter, &cmd.name)
    } else if cmd.subtype == AlterTableType::AtAddConstraint as i32 {
        match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
            Some(NodeEnum::Constraint(constraint)) => constraint_steps(alter, constraint),
            _ => Ok(None),
        }
    } else {
        Ok(None)
    };
    match result {
        Ok(Some(steps)) => Online::Steps(steps),
        Ok(None) => Online::Plain,
        Err(reason) => Online::Cannot(reason),
    }
}

/// The name of the temporary check that proves a column NOT NULL, within
/// PostgreSQL's 63 bytes.
pub fn not_null_check_name(table: &str, column: &str) -> String {
    let mut name = format!("migsafe_nn_{table}_{column}");
    while name.len() > 63 {
        name.pop();
    }
    name
}

fn not_null_steps(alter: &AlterTableStmt, column: &str) -> Result<Option<Vec<Step>>, String> {
    let table = alter
        .relation
        .as_ref()
        .map(|r| r.relname.clone())
        .unwrap_or_default();
    let check = not_null_check_name(&table, column);
    let test = NullTest {
        arg: Some(Box::new(Node {
            node: Some(NodeEnum::ColumnRef(ColumnRef {
                fields: vec![string_node(column)],
                location: -1,
            })),
        })),
        nulltesttype: NullTestType::IsNotNull as i32,
        location: -1,
        ..NullTest::default()
    };
    let constraint = Constraint {
        contype: ConstrType::ConstrCheck as i32,
        conname: check.clone(),
        raw_expr: Some(Box::new(Node {
            node: Some(NodeEnum::NullTest(Box::new(test))),
        })),
        skip_validation: true,
        initially_valid: false,
        is_enforced: true,
        location: -1,
        ..Constraint::default()
    };
    let set = AlterTableCmd {
        subtype: AlterTableType::AtSetNotNull as i32,
        name: column.to_string(),
        behavior: DropBehavior::DropRestrict as i32,
        ..AlterTableCmd::default()
    };
    let drop = AlterTableCmd {
        subtype: AlterTableType::AtDropConstraint as i32,
        name: check.clone(),
        behavior: DropBehavior::DropRestrict as i32,
        ..AlterTableCmd::default()
    };
    Ok(Some(vec![
        Step {
            sql: alter_one(alter, add_constraint(constraint))?,
            transaction: true,
            unnamed: None,
            index: None,
            locks: "ACCESS EXCLUSIVE for a moment (no scan: NOT VALID)",
        },
        Step {
            sql: alter_one(alter, validate(&check))?,
            transaction: true,
            unnamed: None,
            index: None,
            locks: "SHARE UPDATE EXCLUSIVE while it scans: reads and writes go on",
        },
        Step {
            sql: format!("{};\n{}", alter_one(alter, set)?, alter_one(alter, drop)?),
            transaction: true,
            unnamed: None,
            index: None,
            locks: "ACCESS EXCLUSIVE for a moment (no scan: the validated check proves the column has no NULL)",
        },
    ]))
}

fn constraint_steps(
    alter: &AlterTableStmt,
    constraint: &Constraint,
) -> Result<Option<Vec<Step>>, String> {
    let kind = ConstrType::try_from(constraint.contype).unwrap_or(ConstrType::Undefined);
    match kind {
        ConstrType::ConstrForeign | ConstrType::ConstrCheck if !constraint.skip_validation => {
            // Without a name PostgreSQL chooses one when it adds the
            // constraint: read back in that step, recorded, and validated by it.
            let unnamed = constraint.conname.is_empty();
            let relation = alter.relation.clone().unwrap_or_default();
            let name = if unnamed {
                UNNAMED
            } else {
                constraint.conname.as_str()
            };
            let mut not_valid = constraint.clone();
            not_valid.skip_validation = true;
            not_valid.initially_valid = false;
            let brief = if kind == ConstrType::ConstrForeign {
                "SHARE ROW EXCLUSIVE on both tables for a moment (no scan: NOT VALID)"
            } else {
                "ACCESS EXCLUSIVE for a moment (no scan: NOT VALID)"
            };
            Ok(Some(vec![
                Step {
                    sql: alter_one(alter, add_constraint(not_valid))?,
                    transaction: true,
                    unnamed: unnamed.then(|| Unnamed::Records(relation.clone())),
                    index: None,
                    locks: brief,
                },
                Step {
                    sql: alter_one(alter, validate(name))?,
                    transaction: true,
                    unnamed: unnamed.then(|| Unnamed::Validates(relation.clone())),
                    index: None,
                    locks: if kind == ConstrType::ConstrForeign {
                        "SHARE UPDATE EXCLUSIVE (ROW SHARE on the referenced table) while it scans: reads and writes go on"
                    } else {
                        "SHARE UPDATE EXCLUSIVE while it scans: reads and writes go on"
                    },
                },
            ]))
        }
        ConstrType::ConstrUnique | ConstrType::ConstrPrimary if constraint.indexname.is_empty() => {
            unique_steps(alter, constraint, kind).map(Some)
        }
        _ => Ok(None),
    }
}

fn unique_steps(
    alter: &AlterTableStmt,
    constraint: &Constraint,
    kind: ConstrType,
) -> Result<Vec<Step>, String> {
    let what = if kind == ConstrType::ConstrPrimary {
        "PRIMARY KEY"
    } else {
        "UNIQUE"
    };
    if constraint.conname.is_empty() {
        return Err(format!(
            "the {what} constraint has no name: its index is built first and must be found by name if the build is interrupted; name it (ADD CONSTRAINT <name> {what} …)"
        ));
    }
    if constraint.deferrable
        || !constraint.including.is_empty()
        || !constraint.options.is_empty()
        || !constraint.indexspace.is_empty()
        || constraint.without_overlaps
        || constraint.where_clause.is_some()
        || !constraint.exclusions.is_empty()
    {
        return Err(format!(
            "the {what} constraint has options (DEFERRABLE, INCLUDE, WITH, USING INDEX TABLESPACE, WITHOUT OVERLAPS) that its online form does not carry over"
        ));
    }
    let columns: Vec<String> = crate::lint::ast::strings(&constraint.keys);
    if columns.is_empty() {
        return Err(format!("the {what} constraint names no column"));
    }
    let mut steps = Vec::new();
    // ADD PRIMARY KEY … USING INDEX would set NOT NULL on each column with a
    // full scan under ACCESS EXCLUSIVE: prove NOT NULL the online way first.
    if kind == ConstrType::ConstrPrimary {
        for column in &columns {
            if let Some(own) = not_null_steps(alter, column)? {
                steps.extend(own);
            }
        }
    }
    let index = IndexStmt {
        idxname: constraint.conname.clone(),
        relation: alter.relation.clone(),
        access_method: "btree".into(),
        index_params: columns
            .iter()
            .map(|c| Node {
                node: Some(NodeEnum::IndexElem(Box::new(IndexElem {
                    name: c.clone(),
                    ordering: SortByDir::SortbyDefault as i32,
                    nulls_ordering: SortByNulls::SortbyNullsDefault as i32,
                    ..IndexElem::default()
                }))),
            })
            .collect(),
        unique: true,
        nulls_not_distinct: constraint.nulls_not_distinct,
        concurrent: true,
        ..IndexStmt::default()
    };
    steps.push(Step {
        sql: deparse(NodeEnum::IndexStmt(Box::new(index)))?,
        transaction: false,
        unnamed: None,
        index: Some(built(alter.relation.as_ref(), &constraint.conname)),
        locks: "SHARE UPDATE EXCLUSIVE for the build: reads and writes go on",
    });
    let using = Constraint {
        contype: constraint.contype,
        conname: constraint.conname.clone(),
        indexname: constraint.conname.clone(),
        initially_valid: true,
        is_enforced: true,
        location: -1,
        ..Constraint::default()
    };
    steps.push(Step {
        sql: alter_one(alter, add_constraint(using))?,
        transaction: true,
        unnamed: None,
        index: None,
        locks: "ACCESS EXCLUSIVE for a moment (the index is already built)",
    });
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(sql: &str) -> Online {
        let parsed = pg_query::parse(sql, 0).unwrap();
        let node = parsed.protobuf.stmts[0]
            .stmt
            .as_ref()
            .and_then(|n| n.node.as_ref())
            .unwrap()
            .clone();
        rewrite(&node, &|t| t == "fresh")
    }

    fn sqls(online: Online) -> Vec<String> {
        match online {
            Online::Steps(steps) => steps.into_iter().map(|s| s.sql).collect(),
            other => panic!("not rewritten: {other:?}"),
        }
    }

    #[test]
    fn an_index_is_built_concurrently() {
        assert_eq!(
            sqls(steps(
                "CREATE UNIQUE INDEX i ON app.t USING btree (lower(a)) WHERE b > 1"
            )),
            ["CREATE UNIQUE INDEX CONCURRENTLY i ON app.t USING btree (lower(a)) WHERE b > 1"]
        );
        assert_eq!(steps("CREATE INDEX i ON fresh (a)"), Online::Plain);
        assert_eq!(steps("CREATE INDEX CONCURRENTLY i ON t (a)"), Online::Plain);
        assert!(
            matches!(steps("CREATE INDEX ON t (a)"), Online::Cannot(r) if r.contains("no name"))
        );
    }

    #[test]
    fn constraints_are_added_not_valid_then_validated() {
        assert_eq!(
            sqls(steps(
                "ALTER TABLE o ADD CONSTRAINT o_u FOREIGN KEY (u) REFERENCES users (id) ON DELETE CASCADE"
            )),
            [
                "ALTER TABLE o ADD CONSTRAINT o_u FOREIGN KEY (u) REFERENCES users (id) ON DELETE CASCADE NOT VALID",
                "ALTER TABLE o VALIDATE CONSTRAINT o_u",
            ]
        );
        assert_eq!(
            sqls(steps("ALTER TABLE o ADD CONSTRAINT pos CHECK (n > 0)")),
            [
                "ALTER TABLE o ADD CONSTRAINT pos CHECK (n > 0) NOT VALID",
                "ALTER TABLE o VALIDATE CONSTRAINT pos",
            ]
        );
        assert_eq!(
            steps("ALTER TABLE o ADD CONSTRAINT pos CHECK (n > 0) NOT VALID"),
            Online::Plain
        );
        match steps("ALTER TABLE o ADD CHECK (n > 0)") {
            Online::Steps(two) => {
                assert_eq!(two[0].sql, "ALTER TABLE o ADD CHECK (n > 0) NOT VALID");
                assert!(matches!(two[0].unnamed, Some(Unnamed::Records(_))));
                let Some(Unnamed::Validates(relation)) = &two[1].unnamed else {
                    panic!("{two:?}")
                };
                assert_eq!(
                    validate_sql(relation, "o_n_check").unwrap(),
                    "ALTER TABLE o VALIDATE CONSTRAINT o_n_check"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn set_not_null_goes_through_a_check() {
        assert_eq!(
            sqls(steps(
                "ALTER TABLE \"My T\" ALTER COLUMN \"E-mail\" SET NOT NULL"
            )),
            [
                "ALTER TABLE \"My T\" ADD CONSTRAINT \"migsafe_nn_My T_E-mail\" CHECK (\"E-mail\" IS NOT NULL) NOT VALID",
                "ALTER TABLE \"My T\" VALIDATE CONSTRAINT \"migsafe_nn_My T_E-mail\"",
                "ALTER TABLE \"My T\" ALTER COLUMN \"E-mail\" SET NOT NULL;\nALTER TABLE \"My T\" DROP CONSTRAINT \"migsafe_nn_My T_E-mail\"",
            ]
        );
    }

    #[test]
    fn unique_and_primary_keys_use_a_concurrent_index() {
        assert_eq!(
            sqls(steps("ALTER TABLE t ADD CONSTRAINT t_a_key UNIQUE (a, b)")),
            [
                "CREATE UNIQUE INDEX CONCURRENTLY t_a_key ON t USING btree (a, b)",
                "ALTER TABLE t ADD CONSTRAINT t_a_key UNIQUE USING INDEX t_a_key",
            ]
        );
        let pk = sqls(steps(
            "ALTER TABLE t ADD CONSTRAINT t_pkey PRIMARY KEY (id)",
        ));
        assert_eq!(pk.len(), 5);
        assert_eq!(
            pk[4],
            "ALTER TABLE t ADD CONSTRAINT t_pkey PRIMARY KEY USING INDEX t_pkey"
        );
        assert!(matches!(
            steps("ALTER TABLE t ADD UNIQUE (a)"),
            Online::Cannot(_)
        ));
    }

    #[test]
    fn other_commands_of_the_statement_keep_their_order() {
        assert_eq!(
            sqls(steps(
                "ALTER TABLE t ADD COLUMN n int, ADD CONSTRAINT pos CHECK (n > 0), ALTER COLUMN m SET DEFAULT 1"
            )),
            [
                "ALTER TABLE t ADD COLUMN n int",
                "ALTER TABLE t ADD CONSTRAINT pos CHECK (n > 0) NOT VALID",
                "ALTER TABLE t VALIDATE CONSTRAINT pos",
                "ALTER TABLE t ALTER COLUMN m SET DEFAULT 1",
            ]
        );
        assert_eq!(steps("ALTER TABLE t ADD COLUMN n int"), Online::Plain);
    }
}

//! Which up scripts the DDL record can prove without snapshots.

/// An up script that only makes new objects (tables, indexes, views,
/// functions, types…) and moves data: its down script usually drops exactly
/// those, which the DDL tracker can confirm without a snapshot.
pub(super) fn creates_only(script: &crate::source::Script) -> bool {
    use pg_query::NodeEnum;
    let Ok(parsed) = pg_query::parse(&script.sql, 0) else {
        return false;
    };
    parsed.protobuf.stmts.iter().all(
        |raw| match raw.stmt.as_ref().and_then(|n| n.node.as_ref()) {
            Some(NodeEnum::CreateStmt(_))
            | Some(NodeEnum::IndexStmt(_))
            | Some(NodeEnum::CreateSeqStmt(_))
            | Some(NodeEnum::CreateEnumStmt(_))
            | Some(NodeEnum::CompositeTypeStmt(_))
            | Some(NodeEnum::CreateDomainStmt(_))
            | Some(NodeEnum::CreateRangeStmt(_))
            | Some(NodeEnum::CreateSchemaStmt(_))
            | Some(NodeEnum::CreatePolicyStmt(_))
            | Some(NodeEnum::CreateTableAsStmt(_))
            | Some(NodeEnum::CreateExtensionStmt(_))
            | Some(NodeEnum::SelectStmt(_)) => true,
            // Data changes, but never of the catalogs themselves: those would
            // change the schema without a DDL command to record.
            Some(NodeEnum::InsertStmt(insert)) => !catalog(insert.relation.as_ref()),
            Some(NodeEnum::UpdateStmt(update)) => !catalog(update.relation.as_ref()),
            Some(NodeEnum::DeleteStmt(delete)) => !catalog(delete.relation.as_ref()),
            Some(NodeEnum::ViewStmt(view)) => !view.replace,
            Some(NodeEnum::CreateFunctionStmt(function)) => !function.replace,
            Some(NodeEnum::CreateTrigStmt(trigger)) => !trigger.replace,
            _ => false,
        },
    )
}

/// A relation of the system catalogs (or one that could resolve to one).
fn catalog(relation: Option<&pg_query::protobuf::RangeVar>) -> bool {
    relation.is_none_or(|r| {
        r.schemaname == "pg_catalog"
            || r.schemaname == "information_schema"
            || r.relname.starts_with("pg_")
    })
}

#[cfg(test)]
mod tests {
    use super::creates_only;
    use crate::source::Script;

    fn script(sql: &str) -> Script {
        Script {
            path: "x.sql".into(),
            sql: sql.into(),
            checksum: String::new(),
            directives: Default::default(),
            first_line: 1,
        }
    }

    #[test]
    fn only_scripts_that_make_new_objects_skip_the_snapshots() {
        for sql in [
            "CREATE TABLE t (id int); CREATE INDEX t_id ON t (id);",
            "CREATE VIEW v AS SELECT 1; INSERT INTO t VALUES (1);",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';",
            "CREATE TYPE mood AS ENUM ('ok'); UPDATE t SET id = 2;",
        ] {
            assert!(creates_only(&script(sql)), "{sql}");
        }
        for sql in [
            "ALTER TABLE t ADD COLUMN x int;",
            "CREATE OR REPLACE VIEW v AS SELECT 1;",
            "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';",
            "GRANT SELECT ON t TO PUBLIC;",
            "COMMENT ON TABLE t IS 'x';",
            "UPDATE pg_catalog.pg_class SET relname = 'x' WHERE false;",
            "DELETE FROM pg_attribute WHERE false;",
            "DROP TABLE t;",
            "not sql at all",
        ] {
            assert!(!creates_only(&script(sql)), "{sql}");
        }
    }
}

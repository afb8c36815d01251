//! Small readers of pg_query's parse tree that the rules share.

use pg_query::NodeEnum;
use pg_query::protobuf::{Node, RangeVar, TypeName};

/// `schema.table` or `table`, as written.
pub fn table_name(relation: Option<&RangeVar>) -> String {
    match relation {
        Some(r) if !r.schemaname.is_empty() => format!("{}.{}", r.schemaname, r.relname),
        Some(r) => r.relname.clone(),
        None => String::new(),
    }
}

/// The unqualified name of a table name (`app.users` → `users`).
pub fn unqualified(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// The strings of a name list (`pg_catalog.int4` → ["pg_catalog", "int4"]).
pub fn strings(nodes: &[Node]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|n| match n.node.as_ref() {
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
        .collect()
}

/// The last part of a type name, lower case (`int4`, `varchar`, `serial`).
pub fn type_name(type_name: Option<&TypeName>) -> String {
    type_name
        .map(|t| {
            strings(&t.names)
                .last()
                .cloned()
                .unwrap_or_default()
                .to_lowercase()
        })
        .unwrap_or_default()
}

/// Every function called anywhere inside `node`, lower case, unqualified.
pub fn called_functions(node: Option<&Node>) -> Vec<String> {
    let Some(node) = node.and_then(|n| n.node.as_ref()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = node
        .nodes()
        .into_iter()
        .filter_map(|(child, _, _, _)| match child {
            pg_query::NodeRef::FuncCall(call) => {
                strings(&call.funcname).last().map(|n| n.to_lowercase())
            }
            _ => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

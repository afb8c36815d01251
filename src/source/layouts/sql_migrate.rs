//! sql-migrate: `<ver>_<name>.sql` or `<ver>.sql` with one or more
//! `-- +migrate Up` / `-- +migrate Down` sections, each direction's sections
//! concatenated in file order. `notransaction` on a marker runs that
//! direction without a transaction. `-- +migrate StatementBegin` /
//! `StatementEnd` guide sql-migrate's own splitter only; migsafe reads
//! statements with the PostgreSQL grammar and leaves them as comments.

use super::{Marker, Sections, split_sections};

const PREFIX: &str = "-- +migrate";

fn words(line: &str) -> Option<Vec<String>> {
    let head = line.get(..PREFIX.len())?;
    let rest = &line[PREFIX.len()..];
    if !head.eq_ignore_ascii_case(PREFIX) || !rest.starts_with(char::is_whitespace) {
        return None;
    }
    Some(
        rest.split_whitespace()
            .map(str::to_ascii_lowercase)
            .collect(),
    )
}

fn marker(line: &str) -> Option<Marker> {
    let words = words(line)?;
    let no_transaction = words.iter().skip(1).any(|w| w == "notransaction");
    match words.first()?.as_str() {
        "up" => Some(Marker::Up { no_transaction }),
        "down" => Some(Marker::Down { no_transaction }),
        _ => None,
    }
}

/// True when the file has a sql-migrate `Up` or `Down` marker.
pub fn is_sql_migrate(text: &str) -> bool {
    text.lines().any(|line| marker(line.trim()).is_some())
}

/// Splits a sql-migrate file into its up and down scripts.
pub fn split(text: &str) -> Result<Sections, String> {
    split_sections(text, "sql-migrate", marker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_several_sections_and_notransaction_per_direction() {
        let text = "-- +migrate Up\nCREATE TABLE a (id int);\n-- +migrate Down\nDROP TABLE a;\n-- +migrate Up notransaction\nCREATE INDEX CONCURRENTLY a_id ON a (id);\n";
        assert!(is_sql_migrate(text));
        let s = split(text).unwrap();
        assert!(s.up.no_transaction);
        assert!(s.up.text.contains("CREATE TABLE a") && s.up.text.contains("CONCURRENTLY"));
        let down = s.down.unwrap();
        assert!(!down.no_transaction && down.text.contains("DROP TABLE a"));
        assert!(!is_sql_migrate("-- migrate:up\nSELECT 1;\n"));
        assert!(!is_sql_migrate("-- +migrated Up\n"));
    }
}

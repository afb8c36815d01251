//! goose: `<ver>_<name>.sql` with `-- +goose Up` and `-- +goose Down`
//! sections. `-- +goose StatementBegin` / `StatementEnd` only tell goose's own
//! splitter where a statement with semicolons inside ends; migsafe reads
//! statements with the PostgreSQL grammar, so they stay as the comments they
//! are. `-- +goose NO TRANSACTION`, in any case and anywhere in the file,
//! runs both directions without a transaction, as goose does.

use super::{Marker, Sections, split_sections};

const PREFIX: &str = "-- +goose";

/// The annotation of a `-- +goose …` line, upper-cased (goose reads them in
/// any case).
fn annotation(line: &str) -> Option<String> {
    let head = line.get(..PREFIX.len())?;
    if !head.eq_ignore_ascii_case(PREFIX) {
        return None;
    }
    Some(
        line[PREFIX.len()..]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_uppercase(),
    )
}

/// True when the file has a goose `Up` or `Down` marker.
pub fn is_goose(text: &str) -> bool {
    text.lines()
        .filter_map(|line| annotation(line.trim()))
        .any(|a| a == "UP" || a == "DOWN")
}

/// Splits a goose file into its up and down scripts.
pub fn split(text: &str) -> Result<Sections, String> {
    let no_transaction = text
        .lines()
        .filter_map(|line| annotation(line.trim()))
        .any(|a| a == "NO TRANSACTION");
    let mut sections = split_sections(text, "goose", |line| match annotation(line)?.as_str() {
        "UP" => Some(Marker::Up { no_transaction }),
        "DOWN" => Some(Marker::Down { no_transaction }),
        _ => None,
    })?;
    // Before its `Up` marker, a file may hold the NO TRANSACTION line.
    sections.up.no_transaction |= no_transaction;
    if let Some(down) = &mut sections.down {
        down.no_transaction |= no_transaction;
    }
    Ok(sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sections_and_no_transaction_in_any_case() {
        let text = "-- +goose no transaction\n-- +goose Up\n-- +goose StatementBegin\nCREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$;\n-- +goose StatementEnd\n\n-- +goose Down\nDROP FUNCTION f();\n";
        assert!(is_goose(text));
        let s = split(text).unwrap();
        assert!(s.up.no_transaction && s.down.as_ref().unwrap().no_transaction);
        assert_eq!(s.up.first_line, 2);
        assert!(s.up.text.contains("SELECT 1; $$;"));
        assert!(!s.up.text.contains("DROP"));
        assert!(!is_goose("-- +goosey Up\nSELECT 1;\n"));
        assert!(!is_goose("SELECT 1;\n"));
        assert!(
            !split("-- +goose UP\nSELECT 1;\n")
                .unwrap()
                .up
                .no_transaction
        );
    }
}
